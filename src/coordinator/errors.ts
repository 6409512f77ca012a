export class NotEnoughWorkersError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'NotEnoughWorkersError';
  }
}
