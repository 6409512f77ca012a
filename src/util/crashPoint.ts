/**
 * Fault injection for tests: DDPM_CRASH_AT=NAME:STEP makes the process kill itself with SIGKILL
 * when it reaches crash point NAME at that step, so tests can interrupt real work at exact places.
 */
export function crashPoint(name: string, step: number): void {
  if (requested(name, step)) process.kill(process.pid, 'SIGKILL');
}

/** In a worker thread: DDPM_CRASH_AT=NAME:STEP ends only this thread, with exit code 70, as a
 * thread that dies (out of memory, a native fault) would. */
export function threadCrashPoint(name: string, step: number): void {
  if (requested(name, step)) process.exit(70);
}

function requested(name: string, step: number): boolean {
  return process.env.DDPM_CRASH_AT === `${name}:${step}`;
}
