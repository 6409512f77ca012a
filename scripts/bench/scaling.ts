/**
 * Scaling benchmark (issue 6.1a): the product's Coordinator + RemoteExecutor on loopback with
 * N = 1, 2, 4, 8, 16 worker processes whose compute is a fixed delay but whose gradients are real
 * vectors of the model's size, sent and decoded through the product's protocol.
 *
 * Efficiency is weak scaling by default: every worker gets the same units per step (the global
 * batch grows with N), and E(N) = (examples/s with N workers) / (N x examples/s with one) =
 * (steps/s with N) / (steps/s with 1). This is the reading of PERFORMANCE.md's ">= 0.95 x N x one
 * worker" that keeps a worker's step, and so its delay, fixed, as in Horovod's and DDP's scaling
 * reports; `--mode strong` keeps the global batch fixed instead (E = steps/s(N) / (N x steps/s(1))).
 * Each N and its N=1 baseline run in the same invocation; repetitions cycle through all N so each
 * baseline is close in time to the runs it normalises, and the efficiency reported is the median
 * of per-repetition ratios.
 */
import * as os from 'os';
import { DType, TransportDtype, transportDtypeCode } from '../../src/protocol/dtypes';
import { presetConfig } from '../../src/model/config';
import { parameterCount } from '../../src/model/paramSpecs';
import { describeHardware, fmt, hardware, mean, median, mib, parseFlags, startPool, stopPool, table, writeResults } from './common';
import { LoopResult, runLoop } from './loop';
import { rawStepTime } from './transportLib';

const flags = parseFlags('npm run bench:scaling -- [flags]', {
  out: { default: 'scaling', help: 'results file: bench-results/OUT.json' },
  presets: { default: ['tiny', 'mnist', 'cifar10'], help: 'model presets (gradient and parameter sizes)' },
  workers: { default: [1, 2, 4, 8, 16], help: 'worker counts N' },
  delays: { default: [0.1], help: 'fixed compute delay per unit, seconds (e.g. 0.1,1)' },
  mode: { default: 'weak' as string, help: "'weak' (units per step = N x --units-per-worker) or 'strong' (max N x --units-per-worker units for every N)" },
  'units-per-worker': { default: 1, help: 'units each worker computes per step' },
  'unit-size': { default: 16, help: 'examples per unit' },
  steps: { default: 30, help: 'measured steps per configuration at 0.1 s (scaled down for longer delays: steps x 0.1 / delay, at least 5)' },
  warmup: { default: 3, help: 'unmeasured steps first' },
  reps: { default: 3, help: 'repetitions (each over all N)' },
  dtype: { default: 'float32', help: 'transport dtype' },
  'cifar-max-workers': { default: 4, help: 'largest N for cifar10 (35.7M parameters: 2 x 143 MB per worker per step, and ~0.5 GB of memory per worker process)' },
  'cifar-steps': { default: 4, help: 'measured steps per cifar10 configuration' },
  'cifar-reps': { default: 1, help: 'repetitions for cifar10' },
  'probe-rounds': { default: 3, help: 'rounds of the bare-ZeroMQ probe (per N) that gives the link-limited rates' },
});

interface Row {
  preset: string;
  parameterCount: number;
  delay: number;
  workers: number;
  units: number;
  stepsPerSecond: number;
  imagesPerSecond: number;
  efficiency: number;
  efficiencies: number[];
  /** Steps/s over the zero-overhead ideal 1 / (units per worker x delay). */
  ofIdeal: number;
  medianStepSeconds: number;
  meanMaxComputeSeconds: number;
  /** Median step time minus the step's longest delay: what orchestration adds per step. */
  overheadSeconds: number;
  bytesPerStep: number;
  linkSecondsPerStep: number;
  /** Steps/s if a step were only its traffic at bare ZeroMQ's rate (an upper bound from the link). */
  linkIdealStepsPerSecond: number;
  /** Steps/s if a step were its traffic at bare ZeroMQ's rate and then one worker's delays, not overlapped. */
  linkPlusDelayStepsPerSecond: number;
  rawBytesPerSecond: number;
  reassigned: number;
  rejected: number;
}

async function main(): Promise<void> {
  const hw = hardware();
  if (flags.mode !== 'weak' && flags.mode !== 'strong') throw new Error(`--mode must be weak or strong, got ${flags.mode}`);
  const dtype = transportDtypeCode(flags.dtype as TransportDtype);
  const maxN = Math.max(...flags.workers);
  const pool = await startPool(maxN, 'w');
  const rows: Row[] = [];
  const runs: LoopResult[] = [];
  try {
    for (const delay of flags.delays) {
      for (const preset of flags.presets) {
        const P = parameterCount(presetConfig(preset));
        const big = preset === 'cifar10';
        const ns = flags.workers.filter((n) => !big || n <= flags['cifar-max-workers']);
        const reps = big ? flags['cifar-reps'] : flags.reps;
        const steps = big ? flags['cifar-steps'] : Math.max(5, Math.round((flags.steps * 0.1) / delay));
        // The link-limited rate: bare ZeroMQ moving the step's messages (a parameter message to each
        // of N peers, then a gradient from each), measured with the same N peer processes.
        const rawStep = new Map<number, { seconds: number; bytes: number }>();
        for (const n of ns) rawStep.set(n, await rawStepTime(pool.slice(0, n), P, dtype, flags['probe-rounds']));
        const byN = new Map<number, LoopResult[]>();
        for (let rep = 0; rep < reps; rep++) {
          for (const n of ns) {
            const upw = flags['units-per-worker'];
            const units = flags.mode === 'strong' ? Math.max(...ns) * upw : n * upw;
            const r = await runLoop(pool, {
              preset, workers: n, units, unitSize: flags['unit-size'], delayMs: delay * 1000, warmupSteps: flags.warmup, steps, dtype,
            });
            runs.push(r);
            byN.set(n, [...(byN.get(n) ?? []), r]);
            console.error(`${preset} delay ${delay}s N=${n} rep ${rep + 1}/${reps}: ${fmt(r.stepsPerSecond)} steps/s (median step ${fmt(median(r.stepSeconds))} s)` +
              `${r.reassigned || r.rejected ? `, ${r.reassigned} reassigned, ${r.rejected} rejected` : ''}`);
          }
        }
        const base = byN.get(1) ?? byN.get(ns[0]) ?? [];
        for (const n of ns) {
          const rs = byN.get(n) ?? [];
          const effs = rs.map((r, i) => {
            const b = base[i] ?? base[0];
            return flags.mode === 'strong' ? r.stepsPerSecond / (n * b.stepsPerSecond) : r.stepsPerSecond / b.stepsPerSecond;
          });
          const sps = median(rs.map((r) => r.stepsPerSecond));
          const units = rs[0].units;
          const unitsPerWorker = units / n;
          const stepMedian = median(rs.flatMap((r) => r.stepSeconds));
          const compute = mean(rs.flatMap((r) => r.maxComputeSeconds));
          const bytesPerStep = median(rs.map((r) => r.bytesSentPerStep + r.bytesReceivedPerStep));
          // Bare ZeroMQ's time for this step's traffic (N parameter messages out, one gradient per
          // unit back), from the probe with the same N processes.
          const raw = rawStep.get(n) as { seconds: number; bytes: number };
          const rawBps = raw.bytes / raw.seconds;
          const linkSeconds = bytesPerStep / rawBps;
          rows.push({
            preset, parameterCount: P, delay, workers: n, units, stepsPerSecond: sps, imagesPerSecond: sps * units * flags['unit-size'],
            efficiency: median(effs), efficiencies: effs, ofIdeal: sps * unitsPerWorker * delay, medianStepSeconds: stepMedian,
            meanMaxComputeSeconds: compute, overheadSeconds: stepMedian - compute * unitsPerWorker, bytesPerStep, linkSecondsPerStep: linkSeconds,
            linkIdealStepsPerSecond: 1 / linkSeconds, linkPlusDelayStepsPerSecond: 1 / (linkSeconds + unitsPerWorker * delay), rawBytesPerSecond: rawBps,
            reassigned: rs.reduce((a, r) => a + r.reassigned, 0), rejected: rs.reduce((a, r) => a + r.rejected, 0),
          });
        }
      }
    }
  } finally {
    await stopPool(pool);
  }
  hw.loadAvgEnd = os.loadavg().map((l) => Number(l.toFixed(2)));
  console.log(`\nScaling (${flags.mode}): product Coordinator + RemoteExecutor, N fixed-delay worker processes on loopback, ${flags.dtype} transport,`);
  console.log(`${flags['units-per-worker']} unit(s) of ${flags['unit-size']} examples per worker per step${flags.mode === 'strong' ? ' at the largest N' : ''}; efficiency = ` +
    `${flags.mode === 'strong' ? 'steps/s(N) / (N x steps/s(1))' : 'steps/s(N) / steps/s(1) = images/s(N) / (N x images/s(1))'} (median of per-repetition ratios).`);
  console.log(`${describeHardware(hw)}.\n`);
  console.log(table(
    ['preset (params)', 'delay s', 'N', 'steps/s', 'images/s', 'efficiency', 'target >= 0.95', 'of ideal 1/delay', 'median step s', 'overhead s/step', 'MiB/step', 'raw ZeroMQ MiB/s', 'link-only steps/s', 'link + delay steps/s'],
    rows.map((r) => [
      `${r.preset} (${r.parameterCount.toLocaleString('en-US')})`, r.delay, r.workers, fmt(r.stepsPerSecond, 3), fmt(r.imagesPerSecond, 1), fmt(r.efficiency, 3),
      r.preset === 'cifar10' ? `(${r.efficiency >= 0.95 ? 'met' : 'missed'}; no target)` : r.efficiency >= 0.95 ? 'met' : 'missed',
      fmt(r.ofIdeal, 3), fmt(r.medianStepSeconds, 4), fmt(r.overheadSeconds, 4), mib(r.bytesPerStep), mib(r.rawBytesPerSecond),
      fmt(r.linkIdealStepsPerSecond, 2), fmt(r.linkPlusDelayStepsPerSecond, 3),
    ]),
  ));
  const rejected = rows.reduce((a, r) => a + r.rejected + r.reassigned, 0);
  if (rejected > 0) console.log(`\nnote: ${rejected} unit(s) reassigned or result(s) rejected during the runs (see JSON).`);
  const file = writeResults(flags.out, { benchmark: 'scaling', flags, hardware: hw, transportDtype: DType[dtype], rows, runs });
  console.log(`\nwrote ${file}`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
