/**
 * The coordinator's per-step pass over every parameter (clipping, Adam and the EMA) split into
 * contiguous slices over this thread and k - 1 worker threads, on SharedArrayBuffers. Each element
 * is computed by the same code as on one thread (optimizer.ts updateRange), so the bits do not
 * depend on k. The mean gradient and its norm come from the reduction's last pass (reduce.ts).
 * Optionally each lane also writes its slice of the new parameters into the next PARAMETERS
 * frame (in the transport dtype), so the coordinator's thread does not encode them.
 *
 * Synchronous, like the single-thread passes it replaces: this thread publishes an operation in a
 * shared control block, does its own slice, and waits (Atomics.wait) for the others.
 */
import { MessageChannel, MessagePort, Worker as Thread } from 'worker_threads';
import { DType, encodeFloatsRange } from '../protocol/dtypes';
import { threadScript } from '../util/threadScript';
import { OptimizerConfig, OptimizerState, UpdateArrays, UpdateScalars, UpdateStats, applyUpdate, globalNorm, updateRange } from './optimizer';

/** Control block, Int32 slots: a generation counter that wakes the threads, the operation, and
 * how many threads finished it. Scalars follow as float64. */
export const CTRL = { generation: 0, op: 1, done: 2, int32s: 4 } as const;
export const OP = { update: 1, exit: 2 } as const;
/** Int32 slot: 1 when this update also fills a parameters frame (posted to each thread's port). */
export const FRAME_SLOT = 3;
/** Float64 slots after the int32 ones: the UpdateScalars in this order. */
export const SCALAR_KEYS = ['clip', 'lr', 'b1', 'b2', 'c1', 'c2', 'eps', 'keep', 'decay'] as const;

export interface UpdateThreadInit {
  control: SharedArrayBuffer;
  params: SharedArrayBuffer;
  ema: SharedArrayBuffer;
  adamM: SharedArrayBuffer;
  adamV: SharedArrayBuffer;
  mean: SharedArrayBuffer;
  /** Where each update's parameters frame arrives, read synchronously (receiveMessageOnPort). */
  port: MessagePort;
  lo: number;
  hi: number;
}

/** The next PARAMETERS frame: the whole parameter vector in the transport dtype, in shared memory. */
export interface ParamsFrame {
  dtype: DType;
  bytes: Uint8Array;
}

/** One lane's share of an update: clip/Adam/EMA over [lo, hi), then that slice of the frame. */
export function updateSlice(state: UpdateArrays, mean: Float32Array, k: UpdateScalars, lo: number, hi: number, frame: ParamsFrame | undefined): void {
  updateRange(state, mean, k, lo, hi);
  if (frame) encodeFloatsRange(state.params, frame.dtype, frame.bytes, lo, hi);
}

/** A copy of `a` in shared memory (or `a` itself if it already is). */
export function sharedFloat32(a: Float32Array): Float32Array {
  if (a.buffer instanceof SharedArrayBuffer) return a;
  const out = new Float32Array(new SharedArrayBuffer(a.byteLength));
  out.set(a);
  return out;
}

/** The optimizer state's arrays moved into shared memory, in place, so that threads can update them. */
export function shareOptimizerState(s: OptimizerState): OptimizerState {
  s.params = sharedFloat32(s.params);
  s.ema = sharedFloat32(s.ema);
  s.adamM = sharedFloat32(s.adamM);
  s.adamV = sharedFloat32(s.adamV);
  return s;
}

/** Slice boundaries of n elements over k lanes, multiples of 16 (no two threads share a cache line). */
export function sliceBounds(n: number, k: number): number[] {
  return Array.from({ length: k + 1 }, (_, i) => (i === k ? n : Math.min(n, Math.floor((n * i) / k / 16) * 16)));
}

export class UpdateThreads {
  private readonly ctrl: Int32Array;
  private readonly scalars: Float64Array;
  private readonly bounds: number[];
  private readonly threads: Thread[];
  private readonly ports: MessagePort[] = [];
  private closed = false;

  /** `lanes` slices: this thread's and lanes - 1 worker threads'. The arrays must be shared. */
  constructor(lanes: number, private readonly state: UpdateArrays, private readonly mean: Float32Array, private readonly timeoutMs = 120_000) {
    const control = new SharedArrayBuffer(CTRL.int32s * 4 + SCALAR_KEYS.length * 8);
    this.ctrl = new Int32Array(control, 0, CTRL.int32s);
    this.scalars = new Float64Array(control, CTRL.int32s * 4);
    const n = state.params.length;
    this.bounds = sliceBounds(n, lanes);
    const shared = (a: ArrayBufferView, what: string) => {
      if (!(a.buffer instanceof SharedArrayBuffer)) throw new Error(`UpdateThreads: ${what} must be in shared memory`);
      return a.buffer;
    };
    const buffers = {
      params: shared(state.params, 'params'), ema: shared(state.ema, 'ema'), adamM: shared(state.adamM, 'adamM'), adamV: shared(state.adamV, 'adamV'),
      mean: shared(mean, 'the mean gradient'),
    };
    const script = threadScript(__dirname, 'training', 'updateThread');
    this.threads = Array.from({ length: lanes - 1 }, (_, i) => {
      const { port1, port2 } = new MessageChannel();
      this.ports.push(port1);
      const init: UpdateThreadInit = { control, ...buffers, port: port2, lo: this.bounds[i + 1], hi: this.bounds[i + 2] };
      const t = new Thread(script, { workerData: init, transferList: [port2] });
      // Blocked in Atomics.wait between passes: they must not keep the process alive.
      t.unref();
      return t;
    });
  }

  get lanes(): number {
    return this.threads.length + 1;
  }

  /** optimizer.ts applyUpdate on these threads: the same result, bit for bit; and, given a
   * frame, the new parameters encoded into it (the bytes encodeFloats would give). */
  applyUpdate(cfg: OptimizerConfig, s: OptimizerState, grad: Float32Array, gradNorm = globalNorm(grad), frame?: ParamsFrame): UpdateStats {
    if (s.params !== this.state.params) throw new Error('UpdateThreads.applyUpdate: not the state it was built with');
    return applyUpdate(cfg, s, grad, gradNorm, (k) => this.update(grad, k, frame));
  }

  /** Clipping, Adam and EMA over every element with the given scalars (optimizer.ts updateRange). */
  private update(grad: Float32Array, k: UpdateScalars, frame?: ParamsFrame): void {
    if (grad !== this.mean) throw new Error('UpdateThreads.update: the gradient must be the shared mean');
    if (frame && !(frame.bytes.buffer instanceof SharedArrayBuffer)) throw new Error('UpdateThreads.update: the parameters frame must be in shared memory');
    SCALAR_KEYS.forEach((key, i) => { this.scalars[i] = k[key]; });
    Atomics.store(this.ctrl, FRAME_SLOT, frame ? 1 : 0);
    // Delivered before the threads wake; each reads it synchronously.
    if (frame) for (const port of this.ports) port.postMessage(frame);
    this.run(OP.update, () => updateSlice(this.state, grad, k, this.bounds[0], this.bounds[1], frame));
  }

  private run(op: number, ownSlice: () => void): void {
    if (this.closed) throw new Error('UpdateThreads: closed');
    const c = this.ctrl;
    Atomics.store(c, CTRL.done, 0);
    Atomics.store(c, CTRL.op, op);
    Atomics.add(c, CTRL.generation, 1);
    Atomics.notify(c, CTRL.generation);
    ownSlice();
    const deadline = Date.now() + this.timeoutMs;
    for (let done = Atomics.load(c, CTRL.done); done < this.threads.length; done = Atomics.load(c, CTRL.done)) {
      if (Date.now() > deadline) throw new Error(`update threads: ${this.threads.length - done} of ${this.threads.length} did not finish within ${this.timeoutMs} ms`);
      Atomics.wait(c, CTRL.done, done, 1000);
    }
  }

  /** Ends the threads. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const port of this.ports) port.close();
    Atomics.store(this.ctrl, CTRL.op, OP.exit);
    Atomics.add(this.ctrl, CTRL.generation, 1);
    Atomics.notify(this.ctrl, CTRL.generation);
    await Promise.all(this.threads.map((t) => new Promise<void>((resolve) => {
      if (t.threadId === -1) return resolve();
      // Referenced while waited for: else, with nothing else pending, the process would exit
      // mid-close (code 0), and whatever the caller does next (rethrow a failed step) never runs.
      t.ref();
      t.once('exit', () => resolve());
      setTimeout(() => void t.terminate().then(() => resolve()), 5000).unref();
    })));
  }
}
