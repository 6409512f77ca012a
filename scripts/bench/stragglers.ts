/**
 * Stragglers benchmark: the product's Coordinator + RemoteExecutor on loopback with N fixed-delay
 * workers (benchWorker.ts), one of which is a straggler: every --every-th of its units takes
 * --factor times the delay (a GPU throttling, a noisy neighbour, a pause). Steps/s with unit backups
 * off and on (RemoteExecutor's chooseBackups), and with a straggler slow only for a spell of --spell
 * seconds (it should be given units again after), beside the same workers without a straggler, run
 * interleaved so that each pair shares the machine's load; medians of --reps repetitions.
 */
import { DType } from '../../src/protocol/dtypes';
import { describeHardware, fmt, hardware, median, parseFlags, startPool, stopPool, table, writeResults } from './common';
import { runLoop } from './loop';

const flags = parseFlags('npm run bench:stragglers -- [flags]', {
  out: { default: 'stragglers', help: 'results file: bench-results/OUT.json' },
  preset: { default: 'tiny', help: 'model preset (gradient and parameter sizes)' },
  workers: { default: 4, help: 'workers N, the first of them the straggler' },
  'units-per-worker': { default: 2, help: 'units each worker gets per step' },
  delay: { default: 0.1, help: 'compute delay per unit, seconds' },
  every: { default: 4, help: 'the straggler\'s every E-th unit is slow' },
  factor: { default: 30, help: 'a slow unit takes F times the delay' },
  'spell-after': { default: 8, help: 'in the slow-spell configuration, the spell begins at the straggler\'s N-th unit' },
  spell: { default: 3, help: '... and lasts this many seconds' },
  steps: { default: 60, help: 'measured steps per configuration' },
  warmup: { default: 3, help: 'unmeasured steps first' },
  reps: { default: 2, help: 'repetitions (each over the three configurations)' },
});

interface Row {
  configuration: string;
  stepsPerSecond: number;
  medianStepSeconds: number;
  p90StepSeconds: number;
  backups: number;
  reassigned: number;
}

async function main(): Promise<void> {
  const hw = hardware();
  const n = flags.workers;
  const pool = await startPool(n, 's');
  const configurations = [
    { name: 'no straggler', straggler: undefined, backups: true },
    { name: 'straggler, backups off (--no-unit-backups)', straggler: { every: flags.every, factor: flags.factor }, backups: false },
    { name: 'straggler, backups on (the default)', straggler: { every: flags.every, factor: flags.factor }, backups: true },
    { name: `slow spell of ${flags.spell} s, then as fast as the others`, straggler: { factor: flags.factor, spell: { afterUnits: flags['spell-after'], seconds: flags.spell } }, backups: true },
  ];
  const results = new Map<string, { stepsPerSecond: number[]; stepSeconds: number[]; backups: number; reassigned: number }>();
  try {
    for (let rep = 0; rep < flags.reps; rep++) {
      for (const c of configurations) {
        const r = await runLoop(pool, {
          preset: flags.preset, workers: n, units: n * flags['units-per-worker'], unitSize: 16, delayMs: flags.delay * 1000,
          warmupSteps: flags.warmup, steps: flags.steps, dtype: DType.FLOAT32, backups: c.backups, straggler: c.straggler,
        });
        const acc = results.get(c.name) ?? { stepsPerSecond: [], stepSeconds: [], backups: 0, reassigned: 0 };
        acc.stepsPerSecond.push(r.stepsPerSecond);
        acc.stepSeconds.push(...r.stepSeconds);
        acc.backups += r.backups;
        acc.reassigned += r.reassigned;
        results.set(c.name, acc);
        console.error(`rep ${rep + 1}: ${c.name}: ${fmt(r.stepsPerSecond)} steps/s, ${r.backups} backups`);
      }
    }
  } finally {
    await stopPool(pool);
  }
  hw.loadAvgEnd = (await import('os')).loadavg().map((l) => Number(l.toFixed(2)));
  const rows: Row[] = configurations.map((c) => {
    const r = results.get(c.name)!;
    const sorted = [...r.stepSeconds].sort((a, b) => a - b);
    return {
      configuration: c.name, stepsPerSecond: median(r.stepsPerSecond), medianStepSeconds: median(r.stepSeconds),
      p90StepSeconds: sorted[Math.floor(0.9 * (sorted.length - 1))], backups: r.backups, reassigned: r.reassigned,
    };
  });
  const base = rows[0].stepsPerSecond;
  console.log(`${describeHardware(hw)}`);
  console.log(`${n} workers (${flags['units-per-worker']} units each per step, ${flags.delay} s a unit); the straggler's every ${flags.every}th unit takes ${flags.factor}x, or, in the last row, every unit it begins in ${flags.spell} s from its ${flags['spell-after']}th; ${flags.steps} steps after ${flags.warmup}, ${flags.reps} repetitions\n`);
  console.log(table(['configuration', 'steps/s', 'of no straggler', 'median step s', 'p90 step s', 'backups', 'reassigned'],
    rows.map((r) => [r.configuration, fmt(r.stepsPerSecond), fmt(r.stepsPerSecond / base, 2), fmt(r.medianStepSeconds), fmt(r.p90StepSeconds), r.backups, r.reassigned])));
  const file = writeResults(flags.out, { hardware: hw, flags, rows });
  console.error(`wrote ${file}`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
