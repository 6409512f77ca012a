/**
 * The coordinator's executor against misbehaving workers over real ZeroMQ sockets (RELIABILITY.md
 * 2, 3, 5, 7, 9, 13): whatever they send, the reduced gradient equals the honest one.
 */
import * as zmq from 'zeromq';
import { ZmqServer } from '../src/transport/zmq';
import { RemoteExecutor } from '../src/coordinator/remoteExecutor';
import { TRAIN_DEFAULTS, TrainConfig } from '../src/training/config';
import { presetConfig } from '../src/model/config';
import { parameterCount } from '../src/model/paramSpecs';
import { DType } from '../src/protocol/dtypes';
import { OrderedReducer, ReducedStep } from '../src/training/reduce';
import { WorkUnit } from '../src/training/workUnit';
import { StepWork } from '../src/coordinator/executor';
import { Kind, encodeMessage } from '../src/protocol/messages';
import { Behaviour, FakeWorker, fakeGradient } from './helpers/fakeWorker';
import type { WorkerRecord } from '../src/coordinator/workerRegistry';
import { waitFor } from './helpers/cli';

const config: TrainConfig = { ...TRAIN_DEFAULTS, model: presetConfig('tiny'), batchSize: 12, unitSize: 2 };
const P = parameterCount(config.model);
const UNITS = 6;

function stepWork(step: number): StepWork {
  const units: WorkUnit[] = Array.from({ length: UNITS }, (_, u) => ({
    step, unitId: u, count: 2, pixels: new Uint8Array(2 * 64), timesteps: new Int32Array([1, 2]),
    noiseSeeds: new Uint32Array([u, u + 1]), flips: new Uint8Array(2), dropoutSeed: u,
  }));
  return { step, paramVersion: step, params: new Float32Array(P), units };
}

/** What honest workers produce for a step: fake gradients reduced in unit order. */
function expectedMean(): Float32Array {
  const r = new OrderedReducer(UNITS, P);
  for (let u = 0; u < UNITS; u++) {
    r.add({ step: 0, unitId: u, paramVersion: 0, count: 2, lossSum: 1, lossByBucket: new Float64Array(10), countByBucket: new Float64Array(10), gradSum: fakeGradient(u, 2, P), computeSeconds: 0 });
  }
  return r.finish().meanGrad;
}

let server: ZmqServer;
let executor: RemoteExecutor;
let endpoint: string;
let workers: FakeWorker[];
let reassigned: number;

beforeEach(async () => {
  server = new ZmqServer({ lingerMs: 0 });
  await server.bind('tcp://127.0.0.1:0');
  endpoint = server.endpoint as string;
  reassigned = 0;
  executor = new RemoteExecutor({
    channel: server, config, parameterCount: P, transportDtype: DType.FLOAT32, heartbeatMs: 200, workerTimeoutMs: 1500,
    unitDeadlineMs: 700, events: { onReassigned: (n) => { reassigned += n; } },
  });
  await executor.start();
  workers = [];
});

afterEach(async () => {
  await Promise.all(workers.map((w) => w.stop()));
  await executor.stop();
});

async function attach(name: string, behaviour: Behaviour): Promise<FakeWorker> {
  const w = new FakeWorker(name, endpoint, behaviour, P);
  workers.push(w);
  await w.start();
  return w;
}

async function runStep(step: number): Promise<ReducedStep> {
  const reducer = new OrderedReducer(UNITS, P);
  await executor.run(stepWork(step), (r) => reducer.add(r));
  return reducer.finish();
}

function expectHonest(reduced: ReducedStep): void {
  expect(Buffer.compare(Buffer.from(reduced.meanGrad.buffer), Buffer.from(expectedMean().buffer))).toBe(0);
}

describe('the remote executor', () => {
  it('reduces honest workers\' results to the in-order mean and shares the units out', async () => {
    const a = await attach('a', 'honest');
    const b = await attach('b', 'honest');
    await executor.waitForWorkers(2, 5000);
    expectHonest(await runStep(0));
    expect(a.units().length + b.units().length).toBe(UNITS);
    expect(a.units().length).toBeGreaterThan(0);
    expect(b.units().length).toBeGreaterThan(0);
  });

  it('gives a faster worker more units', async () => {
    const fast = await attach('fast', 'honest');
    const slow = await attach('slow', 'honest');
    slow.delayMs = 120;
    await executor.waitForWorkers(2, 5000);
    for (let step = 0; step < 3; step++) expectHonest(await runStep(step));
    expect(fast.units().length).toBeGreaterThan(2 * slow.units().length);
  });

  it('sends parameters only to workers whose version is stale', async () => {
    const a = await attach('a', 'honest');
    await executor.waitForWorkers(1, 5000);
    await runStep(0);
    await runStep(0);
    await runStep(1);
    const versions = a.received.filter((m) => m.envelope.kind === Kind.PARAMETERS).map((m) => m.envelope.paramVersion);
    expect(versions).toEqual([0, 1]);
  });

  it('applies a result delivered twice once and counts the duplicate (RELIABILITY 2)', async () => {
    await attach('dup', 'duplicate');
    await executor.waitForWorkers(1, 5000);
    expectHonest(await runStep(0));
    // The last unit's second copy may still be on its way when the step resolves.
    await waitFor(() => executor.rejected.get('duplicate') === UNITS, 5_000, 'every second copy rejected');
    expect(executor.rejected.get('duplicate')).toBe(UNITS);
  });

  it('drops and counts results for an older step, and recomputes those units elsewhere (RELIABILITY 3)', async () => {
    await attach('old', 'stale');
    await executor.waitForWorkers(1, 5000);
    await attach('good', 'honest');
    await executor.waitForWorkers(2, 5000);
    expectHonest(await runStep(0));
    expect(executor.rejected.get('stale')).toBeGreaterThan(0);
  });

  it('reassigns the units of a worker that heartbeats but never answers (RELIABILITY 5)', async () => {
    const silent = await attach('mute', 'silent');
    await executor.waitForWorkers(1, 5000);
    await attach('good', 'honest');
    await executor.waitForWorkers(2, 5000);
    const started = Date.now();
    expectHonest(await runStep(0));
    expect(silent.units().length).toBeGreaterThan(0);
    expect(reassigned).toBeGreaterThanOrEqual(silent.units().length);
    expect(Date.now() - started).toBeLessThan(5000);
  });

  it('lets a restarted worker with the same routing id take over its identity (RELIABILITY 7)', async () => {
    const first = await attach('same', 'silent');
    await executor.waitForWorkers(1, 5000);
    const step = runStep(0);
    await waitFor(() => first.units().length > 0, 5_000, 'WORK at the first worker');
    await first.stop();
    const second = await attach('same', 'honest');
    expectHonest(await step);
    expect(second.units().length).toBe(UNITS);
    expect(executor.workerCount()).toBe(1);
  });

  it('admits a worker that joins mid-step and sends it the current parameters first (RELIABILITY 9)', async () => {
    await attach('early', 'silent');
    await executor.waitForWorkers(1, 5000);
    const step = runStep(3);
    await new Promise((r) => setTimeout(r, 100));
    const late = await attach('late', 'honest');
    expectHonest(await step);
    const kinds = late.received.map((m) => m.envelope.kind);
    expect(kinds.indexOf(Kind.PARAMETERS)).toBeLessThan(kinds.indexOf(Kind.WORK));
    expect(late.received.find((m) => m.envelope.kind === Kind.PARAMETERS)?.envelope.paramVersion).toBe(3);
  });
});

describe('hostile input on the coordinator socket (RELIABILITY 13)', () => {
  function randomBytes(n: number, seed: number): Buffer {
    const b = Buffer.alloc(n);
    let x = seed >>> 0 || 1;
    for (let i = 0; i < n; i++) {
      x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
      b[i] = x & 0xff;
    }
    return b;
  }

  function hostileMessages(runId: string, i: number): Buffer[] {
    const grad = new Float32Array(P);
    switch (i % 12) {
      case 0: return [randomBytes(1 + (i % 97), i)];
      case 1: return [encodeMessage({ kind: Kind.HEARTBEAT, runId, heartbeat: {} })[0].subarray(0, 3)];
      case 2: return [encodeMessage({ kind: Kind.RESULT, runId, step: 0, paramVersion: 0, unitIds: [1], result: { count: 2 } }, [{ name: 'grad', dtype: DType.FLOAT32, shape: [P], bytes: Buffer.alloc(P * 4) }])[0]];
      case 3: return encodeMessage({ kind: 99 as Kind, runId, heartbeat: {} });
      case 4: { grad[i % P] = NaN; return encodeMessage({ kind: Kind.RESULT, runId, step: 0, paramVersion: 0, unitIds: [Math.floor(i / 12) % UNITS], result: { count: 2, lossSum: 1, lossByBucket: Array(10).fill(0), countByBucket: Array(10).fill(0) } }, [{ name: 'grad', dtype: DType.FLOAT32, shape: [P], bytes: Buffer.from(grad.buffer) }]); }
      case 5: return encodeMessage({ kind: Kind.RESULT, runId, step: 0, paramVersion: 0, unitIds: [1], result: { count: 2, lossSum: 1, lossByBucket: Array(10).fill(0), countByBucket: Array(10).fill(0) } }, [{ name: 'grad', dtype: DType.FLOAT32, shape: [P - 1], bytes: Buffer.alloc((P - 1) * 4) }]);
      case 6: { const m = encodeMessage({ kind: Kind.RESULT, runId, step: 0, paramVersion: 0, unitIds: [2], result: { count: 2, lossSum: 1, lossByBucket: Array(10).fill(0), countByBucket: Array(10).fill(0) } }, [{ name: 'grad', dtype: DType.FLOAT32, shape: [P], bytes: Buffer.alloc(P * 4) }]); return [m[0], m[1].subarray(0, 100)]; }
      case 7: return encodeMessage({ kind: Kind.RESULT, runId, step: 0, paramVersion: 0, unitIds: [3], result: { count: 2, lossSum: 1, lossByBucket: [], countByBucket: [] } }, [{ name: '__proto__', dtype: DType.FLOAT32, shape: [P], bytes: Buffer.alloc(P * 4) }]);
      case 8: return encodeMessage({ kind: Kind.RESULT, runId, step: 0, paramVersion: 0, unitIds: [4], result: { count: 2, lossSum: Infinity, lossByBucket: Array(10).fill(0), countByBucket: Array(10).fill(0) } }, [{ name: 'grad', dtype: 77 as DType, shape: [P], bytes: Buffer.alloc(P * 4) }]);
      case 9: return [Buffer.alloc(70 * 1024, 0x0a)];
      case 10: { const nested = Buffer.alloc(4000); for (let k = 0; k < 4000; k += 2) { nested[k] = 0x52; nested[k + 1] = 0x7f; } return [nested]; }
      default: return encodeMessage({ kind: Kind.REGISTER, register: { workerName: '', backend: 'x' } });
    }
  }

  it('rejects thousands of malformed messages, stays up, and the step reduces exactly as without them', async () => {
    const good = await attach('good', 'honest');
    // Slow enough that step 0 is still in flight while the hostile messages arrive.
    good.delayMs = 150;
    await executor.waitForWorkers(1, 5000);
    // The fuzzer registers (and re-registers) as a worker so its results reach full validation.
    const fuzzer = new zmq.Dealer({ routingId: 'fuzz', linger: 0 });
    const register = encodeMessage({ kind: Kind.REGISTER, register: { workerName: 'fuzz', backend: 'fuzz' } });
    const stranger = new zmq.Dealer({ linger: 0 });
    fuzzer.connect(endpoint);
    stranger.connect(endpoint);
    try {
      const step = runStep(0);
      const runId = executor.runId;
      for (let i = 0; i < 3000; i++) {
        if (i % 50 === 0) await fuzzer.send(register);
        await (Math.floor(i / 12) % 2 ? stranger : fuzzer).send(hostileMessages(runId, i));
      }
      expectHonest(await step);
      // The step may end with hostile messages still unread (fair queueing between peers).
      const total = () => [...executor.rejected.values()].reduce((a, b) => a + b, 0);
      const reasons = ['malformed', 'unknown_kind', 'non_finite', 'tensor_size', 'frame_count', 'dtype', 'oversized', 'not_assigned', 'unknown_worker'];
      await waitFor(() => total() >= 2500 && reasons.every((r) => executor.rejected.has(r)), 20_000, 'the hostile messages to be rejected');
      expect(total()).toBeGreaterThanOrEqual(2500);
      for (const reason of reasons) {
        expect([reason, (executor.rejected.get(reason) ?? 0) > 0]).toEqual([reason, true]);
      }
      expectHonest(await runStep(1));
    } finally {
      fuzzer.close();
      stranger.close();
    }
  }, 60_000);
});

describe('chooseWorker with compute slots', () => {
  const worker = (id: string, slots: number, outstanding: number, secondsPerUnit?: number) => ({
    id, name: id, backend: 'wasm', slots, paramVersion: 0, lastSeen: 0, progressAt: 0, unitsDone: 0, computeSeconds: 0, joinedAt: 0, secondsPerUnit,
    outstanding: new Map(Array.from({ length: outstanding }, (_, i) => [i, 0] as [number, number])),
  });

  it('counts a k-slot worker as finishing k units in one unit time', async () => {
    const { chooseWorker } = await import('../src/coordinator/unitScheduler');
    // Two busy slots of a 2-slot worker finish a third unit at 2 x 1 s; a 1-slot worker at 1.5 s with one queued: 3 s.
    expect(chooseWorker([worker('a', 1, 1, 1.5), worker('b', 2, 2, 1)], 2, 0)?.id).toBe('b');
    // The same 2-slot worker with one unit outstanding finishes a second at 1 s: before an idle 1-slot worker at 1.5 s.
    expect(chooseWorker([worker('a', 1, 0, 1.5), worker('b', 2, 1, 1)], 2, 0)?.id).toBe('b');
    // One slot: the unit waits for nobody; the idle, slower worker gets it (1.5 s < 2 x 1 s).
    expect(chooseWorker([worker('a', 1, 0, 1.5), worker('b', 1, 1, 1)], 2, 0)?.id).toBe('a');
  });

  it('lets a k-slot worker hold depth + k - 1 units', async () => {
    const { chooseWorker } = await import('../src/coordinator/unitScheduler');
    expect(chooseWorker([worker('b', 3, 3, 1)], 2, 0)?.id).toBe('b');
    expect(chooseWorker([worker('b', 3, 4, 1)], 2, 0)).toBeUndefined();
    expect(chooseWorker([worker('c', 1, 1, 1)], 2, 0)?.id).toBe('c');
    expect(chooseWorker([worker('c', 1, 2, 1)], 2, 0)).toBeUndefined();
  });

  it('stops waiting for a faster worker that has returned nothing for longer than its seconds per unit (hung, stopped)', async () => {
    const { chooseWorker } = await import('../src/coordinator/unitScheduler');
    // `fast` (0.5 s per unit) holds two units, its last progress at t = 0; `slow` (2 s per unit) is idle.
    const fast = worker('fast', 1, 2, 0.5);
    const slow = worker('slow', 1, 0, 2);
    // At 0.4 s fast is on time: its third unit would be done at 3 x 0.5 = 1.5 s, before slow's 2 s.
    expect(chooseWorker([fast, slow], 2, 400)).toBeUndefined();
    // At 0.6 s it is at least 0.6 s per unit: 3 x 0.6 = 1.8 s, still first.
    expect(chooseWorker([fast, slow], 2, 600)).toBeUndefined();
    // At 0.7 s, 3 x 0.7 = 2.1 s: the idle worker is now sooner.
    expect(chooseWorker([fast, slow], 2, 700)?.id).toBe('slow');
    // Progress (a result) resets the clock; an idle worker's silence says nothing of its speed.
    fast.progressAt = 700;
    expect(chooseWorker([fast, slow], 2, 1000)).toBeUndefined();
    expect(chooseWorker([worker('idle', 1, 0, 0.5), worker('busy', 1, 1, 2)], 2, 60_000)?.id).toBe('idle');
  });
});

describe('WorkerSpeeds: seconds per unit', () => {
  it('replaces the first unit\'s time (warm-up) with the second\'s, then averages (0.7 old, 0.3 new); a remeasure replaces it with the mean of its units', async () => {
    const { WorkerSpeeds } = await import('../src/coordinator/workerSpeeds');
    const speeds = new WorkerSpeeds();
    const w = { id: 'w', name: 'w', backend: 'wasm', slots: 1, paramVersion: 0, lastSeen: 0, progressAt: 0, unitsDone: 0, computeSeconds: 0, joinedAt: 0, outstanding: new Map() } as WorkerRecord;
    const seen = (s: number) => { speeds.record(w, s); return w.secondsPerUnit; };
    expect(seen(10)).toBe(10);
    expect(seen(1)).toBe(1);
    expect(seen(2)).toBeCloseTo(1.3, 12);
    expect(seen(2)).toBeCloseTo(1.51, 12);
    w.remeasuring = { needed: 3, seconds: [] };
    expect(seen(0.5)).toBeCloseTo(1.51, 12); // the old time stands until the third
    expect(seen(3.5)).toBeCloseTo(1.51, 12);
    expect(seen(2)).toBe(2); // (0.5 + 3.5 + 2) / 3
    expect(w.remeasuring).toBeUndefined();
    expect(seen(1)).toBeCloseTo(1.7, 12);
    expect(speeds.get('w')).toBeCloseTo(1.7, 12);
  });
});

describe('Remeasures: units for workers measured too slow to be given any', () => {
  const worker = (id: string, secondsPerUnit?: number) => ({
    id, name: id, backend: 'wasm', slots: 1, paramVersion: 0, lastSeen: 0, progressAt: 0, unitsDone: 0, computeSeconds: 0, joinedAt: 0, secondsPerUnit, outstanding: new Map(),
  });

  it('are due after a gap of steps without a unit, then get a copy a step, one at a time, until 4 x gap units (at most 16) are measured; the gap doubles each time, up to 64, and is back to 1 after 16 steps in a row with units', async () => {
    const { Remeasures, WorkerSpeeds } = await import('../src/coordinator/workerSpeeds');
    const r = new Remeasures();
    const speeds = new WorkerSpeeds();
    const slow = worker('slow', 5) as WorkerRecord;
    const due = (step: number) => r.due([slow, worker('unmeasured')], step).map((w) => w.id);
    r.given(slow, 1);
    expect(due(2)).toEqual([]); // given a unit in the previous step
    // Given nothing but copies from step 2 on, each measured (still slow) within its step.
    const copySteps: number[] = [];
    for (let step = 3; step <= 400; step++) {
      if (due(step).length === 0) continue;
      copySteps.push(step);
      r.given(slow, step, true);
      speeds.record(slow, 5);
      r.measured(slow);
    }
    // 4, 8, then 16 copies in a row, starting 1, 2, 4, ... 64 steps after the last copy.
    const runs = (from: [number, number][]) => from.flatMap(([s, n]) => Array.from({ length: n }, (_, i) => s + i));
    expect(copySteps).toEqual(runs([[3, 4], [9, 8], [21, 16], [45, 16], [77, 16], [125, 16], [205, 16], [285, 16], [365, 16]]));
    expect(slow.remeasuring).toBeUndefined();
    // Given units in 16 steps in a row, from step 401: the gap is back to 1.
    for (let step = 401; step <= 416; step++) r.given(slow, step);
    expect(due(418)).toEqual(['slow']);
    r.given(slow, 418, true);
    expect(due(419)).toEqual([]); // its copy is out
    r.measured(slow);
    slow.outstanding.set(7, 0);
    expect(due(420)).toEqual([]); // it holds a unit
    slow.outstanding.clear();
    expect(due(421)).toEqual(['slow']);
    r.given(slow, 421, true);
    expect(due(421 + 64)).toEqual([]);
    expect(due(421 + 65)).toEqual(['slow']); // a copy whose result never came is given up on
    expect(slow.remeasuring?.needed).toBe(4);
  });

  it('take one unit of a worker measured on its first only (its warm-up: a late joiner)', async () => {
    const { Remeasures, WorkerSpeeds } = await import('../src/coordinator/workerSpeeds');
    const r = new Remeasures();
    const speeds = new WorkerSpeeds();
    const late = worker('late') as WorkerRecord;
    r.given(late, 5);
    speeds.record(late, 3); // pipelines built, memory allocated: 30x its later units
    expect(r.due([late], 6)).toEqual([]);
    expect(r.due([late], 7)).toEqual([late]);
    expect(late.remeasuring?.needed).toBe(1);
    r.given(late, 7, true);
    speeds.record(late, 0.1);
    r.measured(late);
    expect(late.secondsPerUnit).toBe(0.1);
    expect(late.remeasuring).toBeUndefined();
  });
});

describe('chooseBackups: speculative copies of a step\'s stragglers', () => {
  const worker = (id: string, slots: number, outstanding: number[], secondsPerUnit?: number) => ({
    id, name: id, backend: 'wasm', slots, paramVersion: 0, lastSeen: 0, progressAt: 0, unitsDone: 0, computeSeconds: 0, joinedAt: 0, secondsPerUnit,
    outstanding: new Map(outstanding.map((u) => [u, 0] as [number, number])),
  });

  it('backs up a unit past twice its expected time and 1 s over it, on the fastest free slot, never its own worker, once', async () => {
    const { chooseBackups } = await import('../src/coordinator/unitScheduler');
    const now = 100_000;
    const starts = new Map([
      [0, { worker: 'slow', at: now - 2_100, expectedMs: 1_000 }], // 2.1 s of an expected 1 s: over 2x and 1 s over
      [1, { worker: 'slow', at: now - 1_900, expectedMs: 1_100 }], // under twice its time (also 0.3 s later)
      [2, { worker: 'slow', at: now - 900, expectedMs: 100 }], // 9x, but only 0.8 s over
      [3, { worker: 'slow', at: now - 50_000, expectedMs: undefined }], // unmeasured worker: no expectation
    ]);
    const slow = worker('slow', 1, [0, 1, 2, 3], 1);
    const idle = [worker('quick', 1, [], 0.1), worker('quicker', 1, [], 0.05), worker('busy', 1, [7], 0.01)];
    expect(chooseBackups(starts, new Set(), new Set(), [slow, ...idle], now).map((b) => [b.unitId, b.worker.id])).toEqual([[0, 'quicker']]);
    // Past the 1 s margin too, unit 2 gets the next free slot; a backed-up or done unit gets none.
    const later = now + 300;
    expect(chooseBackups(starts, new Set(), new Set(), [slow, ...idle], later).map((b) => [b.unitId, b.worker.id])).toEqual([[0, 'quicker'], [2, 'quick']]);
    expect(chooseBackups(starts, new Set([2]), new Set([0]), [slow, ...idle], later)).toEqual([]);
    // No free slot but the straggler's own: nothing.
    expect(chooseBackups(starts, new Set(), new Set(), [slow, worker('busy', 1, [7], 0.01)], later)).toEqual([]);
  });
});

describe('StepLedger: one step\'s units', () => {
  it('requeues a departed worker\'s units in unit order, except those reduced, queued or running elsewhere; a reduced unit leaves the queue', async () => {
    const { StepLedger } = await import('../src/coordinator/stepLedger');
    const ledger = new StepLedger([0, 1, 2, 3, 4, 5]);
    for (const u of ledger.queue.splice(0, 5)) ledger.give(u, u % 2 === 0 ? 'a' : 'b', 1_000, 100);
    expect(ledger.queue).toEqual([5]);
    ledger.markDone(4);
    // a held 0, 2 and 4: 4 is reduced, and 2 runs elsewhere too (a backup).
    expect(ledger.requeue([4, 2, 0], (u) => (u === 2 ? ['b'] : []))).toEqual([0]);
    expect(ledger.queue).toEqual([0, 5]);
    expect(ledger.requeue([0], () => [])).toEqual([]); // already queued
    // b held 1 and 3: both back, in order, ahead of the rest.
    expect(ledger.requeue([3, 1], () => [])).toEqual([1, 3]);
    expect(ledger.queue).toEqual([1, 3, 0, 5]);
    // A requeued unit whose old worker's result arrives after all is reduced and leaves the queue.
    expect(ledger.wasGiven(3, 'b')).toBe(true);
    expect(ledger.wasGiven(3, 'a')).toBe(false);
    ledger.markDone(3);
    expect(ledger.queue).toEqual([1, 0, 5]);
    expect(ledger.startOf(3)).toEqual({ worker: 'b', at: 1_000, expectedMs: 100 });
    ledger.give(3, 'a', 2_000, 50); // a second holder: the start stays the first
    expect(ledger.startOf(3)).toEqual({ worker: 'b', at: 1_000, expectedMs: 100 });
    expect(ledger.complete).toBe(false);
    for (const u of [0, 1, 2, 5]) ledger.markDone(u);
    expect(ledger.complete).toBe(true);
    expect(ledger.queue).toEqual([]);
  });

  it('chooses backups only with an empty queue, records them, and excuses time this process did not run', async () => {
    const { StepLedger } = await import('../src/coordinator/stepLedger');
    const ledger = new StepLedger([0, 1]);
    ledger.give(ledger.queue.shift() as number, 'slow', 0, 1_000);
    const idle = { id: 'idle', name: 'idle', backend: 'wasm', slots: 1, paramVersion: 0, lastSeen: 0, progressAt: 0, unitsDone: 0, computeSeconds: 0, joinedAt: 0, secondsPerUnit: 0.1, outstanding: new Map() };
    expect(ledger.chooseBackups([idle], 5_000)).toEqual([]); // unit 1 still queued
    ledger.give(ledger.queue.shift() as number, 'idle', 0, undefined);
    ledger.excuse(4_000); // a 4 s pause: unit 0 has run 1 s, not 5
    expect(ledger.chooseBackups([idle], 5_000)).toEqual([]);
    expect(ledger.chooseBackups([idle], 6_100).map((b) => b.unitId)).toEqual([0]);
    expect([...ledger.backedUp]).toEqual([0]);
    expect(ledger.chooseBackups([idle], 9_000)).toEqual([]); // once
  });

  it('keeps a copy that measures a worker apart: not the unit\'s start, not a reason to keep it from the queue or a backup, and a second result is expected', async () => {
    const { StepLedger } = await import('../src/coordinator/stepLedger');
    const ledger = new StepLedger([0, 1]);
    ledger.give(1, 'probe', 0, 5_000, true);
    expect(ledger.startOf(1)).toBeUndefined();
    for (const u of ledger.queue.splice(0, 2)) ledger.give(u, 'a', 100, 100);
    expect(ledger.startOf(1)).toEqual({ worker: 'a', at: 100, expectedMs: 100 });
    expect([ledger.isCopy(1, 'probe'), ledger.isCopy(1, 'a'), ledger.wasGiven(1, 'probe')]).toEqual([true, false, true]);
    expect([ledger.hasCopy(1), ledger.hasCopy(0)]).toEqual([true, false]);
    expect([...ledger.backedUp]).toEqual([]);
    // a, holding 0 and 1, is overdue: both are backed up, the copy notwithstanding.
    const idle = { id: 'idle', name: 'idle', backend: 'wasm', slots: 1, paramVersion: 0, lastSeen: 0, progressAt: 0, unitsDone: 0, computeSeconds: 0, joinedAt: 0, secondsPerUnit: 0.1, outstanding: new Map() };
    const idle2 = { ...idle, id: 'idle2', name: 'idle2', outstanding: new Map() };
    expect(ledger.chooseBackups([idle, idle2], 1_300).map((b) => b.unitId).sort()).toEqual([0, 1]);
    // a leaves before the backups are sent: 1 is lost though the probe still holds its copy.
    expect(ledger.requeue([0, 1], (u) => (u === 1 ? ['probe'] : ['idle']))).toEqual([1]);
  });

  it('offers the units likeliest to finish last for copies: queued ones from the back, then those handed out, latest first', async () => {
    const { StepLedger } = await import('../src/coordinator/stepLedger');
    const ledger = new StepLedger([0, 1, 2, 3, 4, 5, 6]);
    for (const u of ledger.queue.splice(0, 4)) ledger.give(u, 'a', 0, 100);
    ledger.markDone(1);
    ledger.give(6, 'probe', 0, undefined, true);
    expect(ledger.unitsToCopy()).toEqual([5, 4, 3, 2, 0]);
  });

  it('UnitScheduler gives copies only to due workers that were given no unit, at most one per unit', async () => {
    const { StepLedger } = await import('../src/coordinator/stepLedger');
    const { UnitScheduler } = await import('../src/coordinator/unitScheduler');
    const worker = (id: string, outstanding: number[]) => ({ id, name: id, backend: 'wasm', slots: 1, paramVersion: 0, lastSeen: 0, progressAt: 0, unitsDone: 0, computeSeconds: 0, joinedAt: 0, secondsPerUnit: 1, outstanding: new Map(outstanding.map((u) => [u, 0] as [number, number])) });
    const ledger = new StepLedger([0, 1]);
    ledger.give(ledger.queue.shift() as number, 'busy', 0, 100);
    const copies = new UnitScheduler(2).copies([worker('busy', [0]), worker('idle', []), worker('idle2', [])], ledger);
    expect(copies.map((c) => [c.worker.id, c.unitId])).toEqual([['idle', 1], ['idle2', 0]]);
    ledger.give(0, 'idle2', 0, undefined, true);
    expect(new UnitScheduler(2).copies([worker('idle3', [])], ledger).map((c) => c.unitId)).toEqual([1]);
  });

  it('FinishedSteps: a late result is a backed-up unit\'s slower copy for the last 64 steps, a duplicate of the newest step, or stale', async () => {
    const { FinishedSteps, StepLedger } = await import('../src/coordinator/stepLedger');
    const finished = new FinishedSteps();
    for (let step = 1; step <= 70; step++) {
      const ledger = new StepLedger([0, 1]);
      if (step % 2 === 0) ledger.backedUp.add(1);
      finished.add(step, step - 1, ledger);
    }
    expect(finished.lateResult(8, 7, 1)).toBe('slower copy');
    expect(finished.lateResult(8, 7, 0)).toBe('stale'); // not backed up, not the newest
    expect(finished.lateResult(8, 8, 1)).toBe('stale'); // another parameter version
    expect(finished.lateResult(7, 6, 1)).toBe('stale'); // odd: not backed up
    expect(finished.lateResult(6, 5, 1)).toBe('stale'); // 64 steps kept, 7-70: 6 is forgotten
    expect(finished.lateResult(70, 69, 0)).toBe('duplicate');
    expect(finished.lateResult(70, 69, 1)).toBe('slower copy');
    expect(finished.lateResult(71, 70, 0)).toBe('stale');
  });
});

describe('the remote executor with a worker that slows down mid-run', () => {
  /** Replaces beforeEach's executor with one whose unit deadline is far off, so that only a
   * backup can spare a step the slow worker's time. */
  async function setUp(backups: boolean, { firstMs = 0, secondMs = 0 } = {}) {
    const events = { backups: 0 };
    const lines: string[] = [];
    await executor.stop();
    server = new ZmqServer({ lingerMs: 0 });
    await server.bind('tcp://127.0.0.1:0');
    endpoint = server.endpoint as string;
    executor = new RemoteExecutor({
      channel: server, config, parameterCount: P, transportDtype: DType.FLOAT32, heartbeatMs: 200, workerTimeoutMs: 5000,
      unitDeadlineMs: 60_000, backups, events: { onBackup: (n) => { events.backups += n; } }, log: (line) => lines.push(line),
    });
    await executor.start();
    const first = await attach('first', 'honest');
    const second = await attach('second', 'honest');
    await executor.waitForWorkers(2, 5000);
    // Each measured at about 1 ms a unit plus its delay.
    first.delayMs = firstMs;
    second.delayMs = secondMs;
    expectHonest(await runStep(0));
    return { first, second, events, lines };
  }

  /** Units a worker measured slow in setUp's step is measured again on: 4, or 1 if that step gave
   * it one unit only (its warm-up; on a busy machine the units are shared out differently). */
  function copiesNeeded(name: string): number {
    return executor.workers.get(name)?.remeasuring?.warmUp === true ? 1 : 4;
  }

  it('does not wait for its units: they are backed up on the idle worker, its late copies are dropped quietly, and it stays', async () => {
    const { second: slow, events } = await setUp(true);
    slow.delayMs = 6_000;
    const started = Date.now();
    expectHonest(await runStep(1));
    // A backup is due after about 1 s: well before the slow copies' 6 s, with room for a busy machine.
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(events.backups).toBeGreaterThan(0);
    expect(slow.units().length).toBeGreaterThan(0);
    slow.delayMs = 0;
    await new Promise((r) => setTimeout(r, 6_500)); // the slow worker's copies arrive, late
    expect([...executor.rejected.keys()]).toEqual([]);
    expectHonest(await runStep(2));
    expect(executor.workerCount()).toBe(2);
  }, 30_000);

  it('stops waiting for a worker measured fast once it has held a unit longer than the other worker takes: the queue goes to the other', async () => {
    // Here the worker that hangs is the one measured fast (1 ms against 150 ms): the queue used to
    // wait for it ("a busy, faster worker") until it was dropped or its units' deadline passed.
    const { second: fast, events } = await setUp(true, { firstMs: 150 });
    fast.delayMs = 6_000;
    const started = Date.now();
    expectHonest(await runStep(1));
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(events.backups).toBeGreaterThan(0); // the units it held, backed up once the queue was empty
    expect(executor.workerCount()).toBe(2);
  }, 30_000);

  it('once measured slow, is measured again: a worker given nothing in a step gets a copy of a unit in each of the next four (one if it was measured on its warm-up unit only), and their mean time replaces the old', async () => {
    const { first, second } = await setUp(true, { firstMs: 1_000 });
    first.delayMs = 0; // its slow spell is over: 1 ms a unit now, as the other
    const copies = copiesNeeded('first');
    const units = () => [first.units().length, second.units().length];
    let before = units();
    expectHonest(await runStep(1));
    expect(units()[0]).toBe(before[0]); // 1 s a unit against 1 ms: given nothing
    for (let step = 2; step <= 9; step++) {
      before = units();
      expectHonest(await runStep(step));
      // Steps 2-5 (with four copies): one copy each, whose results come within the step (after the
      // last's, it may be given units of that step too); then, as fast as the other, it gets its
      // share of the 6 units every step (with its old time it would get none).
      const lastCopy = 1 + copies;
      if (step < lastCopy) expect(units()[0]).toBe(before[0] + 1);
      else expect(units()[0]).toBeGreaterThanOrEqual(before[0] + (step === lastCopy ? 1 : 2));
    }
  }, 30_000);

  it('is measured again on copies of units, one at a time, so that one still slow holds no step, even with backups off; the copies\' late results are no error', async () => {
    const { first, lines } = await setUp(false, { firstMs: 1_500 });
    first.delayMs = 1_200; // still slow, a little less
    const copies = copiesNeeded('first');
    let given = first.units().length;
    const copiesAt: number[] = [];
    for (let step = 1; copiesAt.length < 4 && step < 200; step++) {
      const started = Date.now();
      expectHonest(await runStep(step));
      // Each step is the other worker's 6 units of 1 ms: none waits for a copy's 1.2 s.
      expect(Date.now() - started).toBeLessThan(1_000);
      const now = first.units().length;
      expect(now - given).toBeLessThanOrEqual(1);
      if (now > given) copiesAt.push(step);
      given = now;
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(copiesAt[0]).toBe(2); // due at the start of step 2; each next one once the last is back
    expect(copiesAt[3] - copiesAt[0]).toBeGreaterThan(3);
    // The copies' results come steps after their own: dropped quietly, and their mean, 1.2 s,
    // replaces 1.5 s.
    await waitFor(() => Math.abs((executor.workers.get('first')?.secondsPerUnit ?? 0) - 1.201) < 1e-9, 5_000, 'the copies\' time');
    expect([...executor.rejected.keys()]).toEqual([]);
    expect(lines.filter((l) => l.includes('measured again'))).toEqual([`worker first measured again on ${copies} unit(s): 1.201 s a unit (was 1.501 s)`]);
  }, 30_000);

  it('waits for them with backups off (--no-unit-backups)', async () => {
    const { second: slow, events } = await setUp(false);
    slow.delayMs = 6_000;
    const started = Date.now();
    expectHonest(await runStep(1));
    expect(Date.now() - started).toBeGreaterThanOrEqual(5_900);
    expect(events.backups).toBe(0);
  }, 30_000);
});

describe('ddpm worker --threads', () => {
  it('auto is one per core on wasm and cpu and 1 on GPU backends; bad values are refused', async () => {
    const { resolveComputeThreads } = await import('../src/cli/localWorkers');
    expect(resolveComputeThreads('auto', 'wasm', 8)).toBe(8);
    expect(resolveComputeThreads('auto', 'cpu', 2)).toBe(2);
    expect(resolveComputeThreads('auto', 'webgpu', 16)).toBe(1);
    expect(resolveComputeThreads('auto', 'tensorflow', 16)).toBe(1);
    expect(resolveComputeThreads('4', 'tensorflow', 1)).toBe(4);
    for (const bad of ['0', '-2', '1.5', 'many', '257']) expect(() => resolveComputeThreads(bad, 'wasm', 2)).toThrow(`--threads must be "auto" or an integer from 1 to 256, got ${bad}`);
  });
});
