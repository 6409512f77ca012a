/**
 * k worker_threads that each hold their own state (a tfjs backend and a model) and serve calls one
 * at a time, in arrival order: a worker's compute threads (worker/computeThreads.ts) and
 * `ddpm sample`'s sampling threads (sampling/sampleThreads.ts). A call goes to the thread with the
 * fewest waiting; a broadcast goes to every thread, in order with the calls, so a call always sees
 * the broadcasts posted before it. If any thread dies, every waiting and later call fails.
 */
import { Worker as Thread, parentPort, workerData } from 'worker_threads';

type PoolRequest<C, B> = { type: 'call'; id: number; payload: C } | { type: 'broadcast'; payload: B };
type PoolReply<R> =
  | { type: 'ready'; info: string }
  | { type: 'failed'; message: string }
  | { type: 'done'; id: number; value: R }
  | { type: 'error'; id: number; message: string };

interface Pending<R> {
  resolve(r: R): void;
  reject(e: Error): void;
}
interface Lane<R> {
  thread: Thread;
  pending: Map<number, Pending<R>>;
}

export class ThreadPool<Call, Result, Broadcast = never> {
  private nextId = 0;
  private failure: Error | undefined;

  private constructor(private readonly lanes: Lane<Result>[], readonly info: string, private readonly name: string) {
    for (const lane of lanes) {
      lane.thread.on('message', (m: PoolReply<Result>) => this.onReply(lane, m));
      lane.thread.on('error', (err) => this.fail(err));
      lane.thread.on('exit', (code) => this.fail(new Error(`${this.name} exited (code ${code})`)));
    }
  }

  /** Starts k threads of `script` and waits until each has set up (serveThread's setup); fails,
   * with every thread ended, if any cannot. `info`: what the first thread's setup returned. */
  static async start<C, R, B = never>(script: string, k: number, init: unknown, /** What a thread is, in messages: "compute thread". */ name: string): Promise<ThreadPool<C, R, B>> {
    const lanes: Lane<R>[] = Array.from({ length: k }, () => ({ thread: new Thread(script, { workerData: init }), pending: new Map() }));
    let info = '';
    try {
      // All at once: each loads its own backend (wasm: a module and its kernels), which takes a while.
      await Promise.all(lanes.map(({ thread }, i) => new Promise<void>((resolve, reject) => {
        thread.once('message', (m: PoolReply<R>) => {
          thread.off('error', reject);
          if (m.type === 'ready') {
            if (i === 0) info = m.info;
            resolve();
          } else {
            reject(new Error(`${name} ${i}: ${m.type === 'failed' ? m.message : 'unexpected first message'}`));
          }
        });
        thread.once('error', reject);
      })));
    } catch (err) {
      await Promise.all(lanes.map((l) => l.thread.terminate()));
      throw err;
    }
    return new ThreadPool<C, R, B>(lanes, info, name);
  }

  get size(): number {
    return this.lanes.length;
  }

  broadcast(payload: Broadcast): void {
    for (const lane of this.lanes) lane.thread.postMessage({ type: 'broadcast', payload } satisfies PoolRequest<Call, Broadcast>);
  }

  call(payload: Call): Promise<Result> {
    if (this.failure) return Promise.reject(this.failure);
    const lane = this.lanes.reduce((a, b) => (b.pending.size < a.pending.size ? b : a));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      lane.pending.set(id, { resolve, reject });
      lane.thread.postMessage({ type: 'call', id, payload } satisfies PoolRequest<Call, Broadcast>);
    });
  }

  private onReply(lane: Lane<Result>, m: PoolReply<Result>): void {
    if (m.type !== 'done' && m.type !== 'error') return;
    const p = lane.pending.get(m.id);
    lane.pending.delete(m.id);
    if (m.type === 'done') p?.resolve(m.value);
    else p?.reject(new Error(m.message));
  }

  private fail(err: Error): void {
    if (this.failure) return;
    this.failure = err;
    for (const lane of this.lanes) {
      for (const p of lane.pending.values()) p.reject(err);
      lane.pending.clear();
    }
  }

  /** Ends every thread; waiting calls fail. */
  async dispose(): Promise<void> {
    this.fail(new Error(`${this.name}s stopped`));
    await Promise.all(this.lanes.map((l) => l.thread.terminate()));
  }
}

/** What a pool thread does: built once from the pool's init, then a call at a time. */
export interface ThreadService<C, R, B> {
  /** Reported to the pool at start (ThreadPool.info). */
  info: string;
  call(payload: C): Promise<{ value: R; transfer?: ArrayBuffer[] }>;
  broadcast?(payload: B): void;
}

/** The body of a pool thread: sets up from workerData, then serves calls and broadcasts one at a
 * time in arrival order (a broadcast never lands in the middle of a call). */
export async function serveThread<C, R, B = never>(setup: (init: unknown) => Promise<ThreadService<C, R, B>>): Promise<void> {
  const port = parentPort;
  if (port === null) throw new Error('a pool thread runs only as a worker thread');
  const reply = (m: PoolReply<R>, transfer: ArrayBuffer[] = []) => port.postMessage(m, transfer);
  let service: ThreadService<C, R, B>;
  try {
    service = await setup(workerData);
    reply({ type: 'ready', info: service.info });
  } catch (err) {
    reply({ type: 'failed', message: (err as Error).message });
    return;
  }
  const handle = async (m: PoolRequest<C, B>): Promise<void> => {
    if (m.type === 'broadcast') {
      service.broadcast?.(m.payload);
      return;
    }
    try {
      const { value, transfer } = await service.call(m.payload);
      reply({ type: 'done', id: m.id, value }, transfer);
    } catch (err) {
      reply({ type: 'error', id: m.id, message: (err as Error).message });
    }
  };
  let queue = Promise.resolve();
  port.on('message', (m: PoolRequest<C, B>) => {
    queue = queue.then(() => handle(m));
  });
}
