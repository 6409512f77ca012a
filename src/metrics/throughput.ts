/**
 * Images per second over the steps that ended in the last `windowMs`, from the steps' own
 * durations: a single slow step (a checkpoint, a scrape) does not swing it, and on a slow model
 * whose steps take longer than the window the latest step still gives a rate.
 */
export class Throughput {
  private readonly recent: { at: number; examples: number; seconds: number }[] = [];

  constructor(private readonly windowMs = 30_000, private readonly now = () => Date.now()) {}

  add(examples: number, seconds: number): void {
    this.recent.push({ at: this.now(), examples, seconds });
    const cutoff = this.now() - this.windowMs;
    while (this.recent.length > 1 && this.recent[0].at < cutoff) this.recent.shift();
  }

  perSecond(): number {
    const seconds = this.recent.reduce((s, r) => s + r.seconds, 0);
    return seconds > 0 ? this.recent.reduce((s, r) => s + r.examples, 0) / seconds : 0;
  }
}
