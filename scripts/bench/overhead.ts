/**
 * Coordinator overhead benchmark (issue 6.1c), for the 35.7M-parameter cifar10 model by default.
 *
 * 1. In the loop: the product's Coordinator + RemoteExecutor with N fixed-delay worker processes
 *    on loopback; the loop's phases are timed from outside (a wrapped channel and executor, see
 *    loop.ts): planning, dispatch (encodeParameters + queueing sends), receive/decode of each
 *    RESULT, reduce (OrderedReducer.add), finish + applyUpdate (mean, norm, clip, Adam, EMA),
 *    and the coordinator thread's busy time; against the step's wall time.
 * 2. Alone: the same product functions on vectors of the model's size, one call at a time
 *    (medians), which splits what the loop measures into its parts.
 */
import * as os from 'os';
import { DType, TransportDtype, transportDtypeCode } from '../../src/protocol/dtypes';
import { presetConfig } from '../../src/model/config';
import { parameterCount } from '../../src/model/paramSpecs';
import { decodeMessage } from '../../src/protocol/messages';
import { decodeResult, encodeParameters, encodeResult } from '../../src/protocol/units';
import { OrderedReducer } from '../../src/training/reduce';
import { applyUpdate, globalNorm, initialOptimizerState } from '../../src/training/optimizer';
import { TRAIN_DEFAULTS } from '../../src/training/config';
import { UpdateThreads, shareOptimizerState } from '../../src/training/updateThreads';
import { LOSS_BUCKETS, UnitResult } from '../../src/training/workUnit';
import { describeHardware, fmt, gradientPattern, hardware, median, mib, now, parseFlags, startPool, stopPool, table, writeResults } from './common';
import { LoopResult, StepPhases, runLoop } from './loop';

const flags = parseFlags('npm run bench:overhead -- [flags]', {
  out: { default: 'overhead', help: 'results file: bench-results/OUT.json' },
  preset: { default: 'cifar10', help: 'model preset' },
  workers: { default: [1, 2, 4], help: 'worker counts for the in-loop measurement' },
  delays: { default: [1], help: 'fixed worker compute delay per unit, seconds' },
  steps: { default: 4, help: 'measured steps per in-loop configuration' },
  warmup: { default: 1, help: 'unmeasured steps first' },
  dtypes: { default: ['float32'], help: 'transport dtypes for the in-loop measurement (float32, bfloat16, float16)' },
  reps: { default: 3, help: 'calls per function in the stand-alone timings (median)' },
  'skip-loop': { default: false, help: 'only the stand-alone timings' },
  'update-threads': { default: 1, help: "the coordinator's update threads in the loop (--update-threads of ddpm train/coordinator)" },
});

const ms = (s: number) => fmt(s * 1000, 1);

function timeIt(reps: number, f: () => void, before?: () => void): number {
  const times: number[] = [];
  for (let i = 0; i < reps; i++) {
    before?.();
    const t = now();
    f();
    times.push(now() - t);
  }
  return median(times);
}

interface Micro {
  name: string;
  what: string;
  seconds: number;
  perStep: string;
}

function microTimings(P: number, reps: number): Micro[] {
  const out: Micro[] = [];
  const add = (name: string, what: string, perStep: string, seconds: number) => {
    out.push({ name, what, seconds, perStep });
    console.error(`  ${name}: ${ms(seconds)} ms`);
  };
  const grad = gradientPattern(P);
  const state = initialOptimizerState(gradientPattern(P).map((v) => v * 10));
  const stamp = { runId: 'bench', step: 1, paramVersion: 1 };
  add('encodeParameters float32', 'the one copy of the parameters into the message (RemoteExecutor.dispatch)', 'once', timeIt(reps, () => encodeParameters(state.params, stamp, DType.FLOAT32)));
  add('encodeParameters bfloat16', 'conversion to bfloat16', 'once', timeIt(reps, () => encodeParameters(state.params, stamp, DType.BFLOAT16)));
  const lossByBucket = new Float64Array(LOSS_BUCKETS);
  const countByBucket = new Float64Array(LOSS_BUCKETS);
  countByBucket[0] = 16;
  const r: UnitResult = { step: 1, unitId: 0, paramVersion: 1, count: 16, lossSum: 8, lossByBucket, countByBucket, gradSum: grad, computeSeconds: 0 };
  for (const dtype of [DType.FLOAT32, DType.BFLOAT16]) {
    // A received frame is a buffer of its own: copy, as ZeroMQ delivers it.
    const frames = encodeResult(r, 'bench', dtype).map((f) => Buffer.from(f));
    add(`decode RESULT ${DType[dtype].toLowerCase()}`, 'decodeMessage + decodeResult (view or conversion, finiteness pass)', 'per unit',
      timeIt(reps, () => decodeResult(decodeMessage(frames), P, dtype)));
  }
  add('new OrderedReducer', 'allocates the float64 sum and the mean (once per run)', 'once', timeIt(reps, () => new OrderedReducer(2, P)));
  // One reducer reused across steps (reset), as the coordinator does.
  const reducer = new OrderedReducer(3, P);
  const unit = (unitId: number) => ({ ...r, unitId });
  add('OrderedReducer.add, first of several units', 'sum = gradient (no zeroing pass)', 'per step', timeIt(reps, () => reducer.add(unit(0)), () => reducer.reset(3)));
  add('OrderedReducer.add, a middle unit', 'float64 sum += gradient', 'per unit', timeIt(reps, () => reducer.add(unit(1)), () => { reducer.reset(3); reducer.add(unit(0)); }));
  add('OrderedReducer.add, the last unit', 'mean = (sum + gradient) / examples and the norm\'s sums of squares, one pass', 'per step',
    timeIt(reps, () => reducer.add(unit(2)), () => { reducer.reset(3); reducer.add(unit(0)); reducer.add(unit(1)); }));
  add('OrderedReducer.add, the only unit', 'mean = gradient / examples and the norm, one pass (N = 1)', 'per step', timeIt(reps, () => reducer.add(unit(0)), () => reducer.reset(1)));
  add('globalNorm', 'the gradient norm alone (now computed by the last add)', 'reference', timeIt(reps, () => globalNorm(grad)));
  let g = grad;
  add('applyUpdate', 'clip + Adam + EMA, the norm given', 'once', timeIt(reps, () => applyUpdate(TRAIN_DEFAULTS, state, g, 1), () => { g = grad.slice(); }));
  // The same pass on update threads (the coordinator's --update-threads auto on this machine).
  const lanes = Math.min(os.availableParallelism(), 8);
  const shared = shareOptimizerState(initialOptimizerState(gradientPattern(P).map((v) => v * 10)));
  const sharedReducer = new OrderedReducer(1, P, true);
  const threads = new UpdateThreads(lanes, shared, sharedReducer.mean);
  sharedReducer.add(r);
  add(`applyUpdate, ${lanes} threads`, 'clip + Adam + EMA on UpdateThreads, the norm given', 'once', timeIt(reps, () => threads.applyUpdate(TRAIN_DEFAULTS, shared, sharedReducer.mean, 1)));
  void threads.close();
  add('gradient copy (reference)', 'Float32Array.slice of the gradient: one memory pass', 'reference', timeIt(reps, () => grad.slice()));
  return out;
}

interface LoopRow {
  dtype: string;
  delay: number;
  workers: number;
  phases: StepPhases;
  coordinatorSeconds: number;
  share: number;
  criticalShare: number;
  workerParamDecodeSeconds: number;
  bytesPerStep: number;
  reassigned: number;
}

function medianPhases(ps: StepPhases[]): StepPhases {
  const keys = Object.keys(ps[0]) as (keyof StepPhases)[];
  return Object.fromEntries(keys.map((k) => [k, median(ps.map((p) => p[k]))])) as unknown as StepPhases;
}

async function main(): Promise<void> {
  const hw = hardware();
  const P = parameterCount(presetConfig(flags.preset));
  console.error(`stand-alone timings, ${flags.preset} (${P} parameters):`);
  const micro = microTimings(P, flags.reps);
  const loopRows: LoopRow[] = [];
  const runs: LoopResult[] = [];
  if (!flags['skip-loop']) {
    const pool = await startPool(Math.max(...flags.workers), 'w');
    try {
      for (const dtypeName of flags.dtypes) {
        const dtype = transportDtypeCode(dtypeName as TransportDtype);
        for (const delay of flags.delays) {
          for (const n of flags.workers) {
            const r = await runLoop(pool, { preset: flags.preset, workers: n, units: n, unitSize: 16, delayMs: delay * 1000, warmupSteps: flags.warmup, steps: flags.steps, dtype, probe: true, updateThreads: flags['update-threads'] });
            runs.push(r);
            const ph = medianPhases(r.phases as StepPhases[]);
            const coordinatorSeconds = ph.planSeconds + ph.dispatchSeconds + ph.receiveDecodeSeconds + ph.reduceSeconds + ph.updateSeconds;
            const row: LoopRow = {
              dtype: dtypeName, delay, workers: n, phases: ph, coordinatorSeconds, share: coordinatorSeconds / ph.stepSeconds,
              criticalShare: (ph.stepSeconds - ph.maxComputeSeconds) / ph.stepSeconds, workerParamDecodeSeconds: r.workerParamDecodeSeconds,
              bytesPerStep: r.bytesSentPerStep + r.bytesReceivedPerStep, reassigned: r.reassigned + r.rejected,
            };
            loopRows.push(row);
            console.error(`${dtypeName} delay ${delay}s N=${n}: step ${fmt(ph.stepSeconds)} s, coordinator ${fmt(coordinatorSeconds)} s (${fmt(row.share * 100, 1)}%)`);
          }
        }
      }
    } finally {
      await stopPool(pool);
    }
  }
  hw.loadAvgEnd = os.loadavg().map((l) => Number(l.toFixed(2)));
  console.log(`\nCoordinator overhead, ${flags.preset} (${P.toLocaleString('en-US')} parameters, ${mib(P * 4)} MiB in float32).`);
  console.log(`${describeHardware(hw)}.\n`);
  if (loopRows.length > 0) {
    console.log('In the loop (product Coordinator + RemoteExecutor, N fixed-delay worker processes, 1 unit each; medians over the measured steps; ms):\n');
    console.log(table(
      ['dtype', 'delay s', 'N', 'step', 'worker delay', 'plan + new reducer', 'dispatch (encode + send)', 'receive + decode', 'reduce (add)', 'finish + Adam + EMA', 'coordinator total', 'share of step', 'target < 5%', 'thread busy', 'step - delay', 'worker param decode', 'MiB/step'],
      loopRows.map((r) => [
        r.dtype, r.delay, r.workers, ms(r.phases.stepSeconds), ms(r.phases.maxComputeSeconds), ms(r.phases.planSeconds), ms(r.phases.dispatchSeconds),
        ms(r.phases.receiveDecodeSeconds), ms(r.phases.reduceSeconds), ms(r.phases.updateSeconds), ms(r.coordinatorSeconds),
        `${fmt(r.share * 100, 1)}%`, r.share < 0.05 ? 'met' : 'missed', ms(r.phases.busySeconds), `${ms(r.phases.stepSeconds - r.phases.maxComputeSeconds)} (${fmt(r.criticalShare * 100, 1)}%)`,
        ms(r.workerParamDecodeSeconds), mib(r.bytesPerStep),
      ]),
    ));
    console.log('');
  }
  console.log(`Stand-alone, one call each on ${P.toLocaleString('en-US')}-element vectors (median of ${flags.reps}):\n`);
  console.log(table(['function', 'what', 'per step', 'ms'], micro.map((m) => [m.name, m.what, m.perStep, ms(m.seconds)])));
  const file = writeResults(flags.out, { benchmark: 'overhead', flags, hardware: hw, parameterCount: P, micro, loop: loopRows, runs });
  console.log(`\nwrote ${file}`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
