/** The coordinator's view of attached workers. */

export interface WorkerRecord {
  /** ZeroMQ routing id; equal to the worker's name, so a returning worker takes over its identity. */
  id: string;
  name: string;
  backend: string;
  /** Units the worker computes at once (its compute threads). */
  slots: number;
  /** Parameter version the worker holds (-1: none). */
  paramVersion: number;
  /** Units in flight on this worker: unit id -> deadline (ms since epoch). */
  outstanding: Map<number, number>;
  lastSeen: number;
  /** When the worker was last given a unit while it held none, or returned one: while it holds
   * units, the one it runs has taken at least the time since. */
  progressAt: number;
  unitsDone: number;
  computeSeconds: number;
  /** Moving average of the compute seconds per unit the worker reports; undefined until measured. */
  secondsPerUnit?: number;
  /** secondsPerUnit is old: the mean of the next `needed` measurements replaces it, instead of
   * their joining the average (its first unit's, with its `warmUp`; a worker measured again,
   * Remeasures). */
  remeasuring?: { needed: number; seconds: number[]; warmUp?: boolean };
  joinedAt: number;
}

export class WorkerRegistry {
  private readonly workers = new Map<string, WorkerRecord>();
  private waiters: (() => void)[] = [];

  add(id: string, name: string, backend: string, now: number, slots = 1): { record: WorkerRecord; replaced?: WorkerRecord } {
    const replaced = this.workers.get(id);
    this.workers.delete(id);
    const record: WorkerRecord = { id, name, backend, slots, paramVersion: -1, outstanding: new Map(), lastSeen: now, progressAt: now, unitsDone: 0, computeSeconds: 0, joinedAt: now };
    this.workers.set(id, record);
    this.waiters.splice(0).forEach((wake) => wake());
    return { record, replaced };
  }

  /** Whether `n` workers are attached within `timeoutMs`. */
  async waitForSize(n: number, timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (this.workers.size < n) {
      if (Date.now() >= deadline) return false;
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.min(200, deadline - Date.now()));
        this.waiters.push(() => { clearTimeout(t); resolve(); });
      });
    }
    return true;
  }

  get(id: string): WorkerRecord | undefined {
    return this.workers.get(id);
  }

  remove(id: string): WorkerRecord | undefined {
    const w = this.workers.get(id);
    this.workers.delete(id);
    return w;
  }

  /** Time the coordinator could not read its socket (process stopped, VM paused, event loop
   * blocked, clock stepped forward) is not the workers' silence, nor time they were late: their
   * messages from then are queued, unread. Moves every worker's last-seen and progress times and unit
   * deadlines on by `ms`. */
  excuse(ms: number): void {
    for (const w of this.workers.values()) {
      w.lastSeen += ms;
      w.progressAt += ms;
      for (const [unit, deadline] of w.outstanding) w.outstanding.set(unit, deadline + ms);
    }
  }

  all(): WorkerRecord[] {
    return [...this.workers.values()];
  }

  get size(): number {
    return this.workers.size;
  }
}
