/**
 * A worker's compute threads: k worker_threads, each with its own tfjs backend and copy of the
 * model (computeThread.ts). A unit goes to the thread with the fewest queued; parameters go to
 * every thread, in order with the units, so each unit sees the version it was given under.
 */
import { Worker as Thread } from 'worker_threads';
import { threadScript } from '../util/threadScript';
import type { UNetConfig } from '../model/config';
import type { ScheduleName } from '../schedule';
import type { Objective } from '../diffusion/types';
import type { UnitResult, WorkUnit } from '../training/workUnit';
import type { UnitComputer } from './unitComputer';

/** What a worker computes with: its backend, and the run's model, schedule and objective. */
export interface ThreadInit extends Objective {
  backend: string;
  model: UNetConfig;
  schedule: ScheduleName;
  timesteps: number;
}
export type ThreadRequest = { type: 'params'; flat: Float32Array; version: number } | { type: 'unit'; id: number; unit: WorkUnit };
export type ThreadReply =
  | { type: 'ready'; backend: string }
  | { type: 'failed'; message: string }
  | { type: 'result'; id: number; result: UnitResult }
  | { type: 'error'; id: number; message: string };

interface Pending {
  resolve(r: UnitResult): void;
  reject(e: Error): void;
}
interface Lane {
  thread: Thread;
  pending: Map<number, Pending>;
}

export class ComputeThreads implements UnitComputer {
  private version = -1;
  private nextId = 0;
  private failure: Error | undefined;

  private constructor(private readonly lanes: Lane[]) {
    for (const lane of lanes) {
      lane.thread.on('message', (m: ThreadReply) => this.onReply(lane, m));
      lane.thread.on('error', (err) => this.fail(err));
      lane.thread.on('exit', (code) => this.fail(new Error(`compute thread exited (code ${code})`)));
    }
  }

  /** Starts k threads and waits until each has its backend; fails if any cannot start. */
  static async start(k: number, init: ThreadInit): Promise<ComputeThreads> {
    const script = threadScript(__dirname, 'worker', 'computeThread');
    const lanes: Lane[] = Array.from({ length: k }, () => ({ thread: new Thread(script, { workerData: init }), pending: new Map() }));
    try {
      // All at once: each loads its own backend (wasm: a module and its kernels), which takes a while.
      await Promise.all(lanes.map(({ thread }, i) => new Promise<void>((resolve, reject) => {
        thread.once('message', (m: ThreadReply) => {
          thread.off('error', reject);
          if (m.type === 'ready') resolve();
          else reject(new Error(`compute thread ${i}: ${m.type === 'failed' ? m.message : 'unexpected first message'}`));
        });
        thread.once('error', reject);
      })));
    } catch (err) {
      await Promise.all(lanes.map((l) => l.thread.terminate()));
      throw err;
    }
    return new ComputeThreads(lanes);
  }

  get slots(): number {
    return this.lanes.length;
  }

  get paramVersion(): number {
    return this.version;
  }

  setParams(flat: Float32Array, version: number): void {
    for (const lane of this.lanes) lane.thread.postMessage({ type: 'params', flat, version } satisfies ThreadRequest);
    this.version = version;
  }

  compute(unit: WorkUnit): Promise<UnitResult> {
    if (this.failure) return Promise.reject(this.failure);
    const lane = this.lanes.reduce((a, b) => (b.pending.size < a.pending.size ? b : a));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      lane.pending.set(id, { resolve, reject });
      lane.thread.postMessage({ type: 'unit', id, unit } satisfies ThreadRequest);
    });
  }

  private onReply(lane: Lane, m: ThreadReply): void {
    if (m.type !== 'result' && m.type !== 'error') return;
    const p = lane.pending.get(m.id);
    lane.pending.delete(m.id);
    if (m.type === 'result') p?.resolve(m.result);
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

  async dispose(): Promise<void> {
    this.fail(new Error('compute threads stopped'));
    await Promise.all(this.lanes.map((l) => l.thread.terminate()));
  }
}
