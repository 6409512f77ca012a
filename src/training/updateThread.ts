/** One slice of the coordinator's update pass (updateThreads.ts), on shared memory. */
import { receiveMessageOnPort, workerData } from 'worker_threads';
import { UpdateScalars } from './optimizer';
import { CTRL, FRAME_SLOT, OP, ParamsFrame, SCALAR_KEYS, UpdateThreadInit, updateSlice } from './updateThreads';

const init = workerData as UpdateThreadInit;
const ctrl = new Int32Array(init.control, 0, CTRL.int32s);
const scalars = new Float64Array(init.control, CTRL.int32s * 4);
const f32 = (b: SharedArrayBuffer) => new Float32Array(b);
const state = { params: f32(init.params), ema: f32(init.ema), adamM: f32(init.adamM), adamV: f32(init.adamV) };
const mean = f32(init.mean);

for (let seen = 0; ;) {
  Atomics.wait(ctrl, CTRL.generation, seen);
  seen = Atomics.load(ctrl, CTRL.generation);
  const op = Atomics.load(ctrl, CTRL.op);
  if (op === OP.exit) break;
  if (op === OP.update) {
    const k = Object.fromEntries(SCALAR_KEYS.map((key, i) => [key, scalars[i]])) as unknown as UpdateScalars;
    const expectFrame = Atomics.load(ctrl, FRAME_SLOT) === 1;
    const frame = expectFrame ? (receiveMessageOnPort(init.port)?.message as ParamsFrame | undefined) : undefined;
    if (expectFrame && frame === undefined) throw new Error('update thread: the parameters frame did not arrive');
    updateSlice(state, mean, k, init.lo, init.hi, frame);
  }
  Atomics.add(ctrl, CTRL.done, 1);
  Atomics.notify(ctrl, CTRL.done);
}
