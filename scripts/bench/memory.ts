/**
 * Memory benchmark (issue 6.1d): the product's Coordinator + RemoteExecutor training the tiny model
 * with real worker processes (the product's Worker computing real gradients on a tfjs backend,
 * wasm by default) for 1,000 steps, sampling the coordinator's heap (process.memoryUsage after a
 * full GC, every --sample-every steps) and each worker's heap and tf.memory() tensor count (every
 * --sample-ms). "Flat" is judged after a warm-up: no tensor-count change at all, and a heap slope
 * (least squares) under --flat-mib MiB per 1,000 steps; rss and arrayBuffers are shown, not judged.
 */
import * as os from 'os';
import { Coordinator } from '../../src/coordinator/coordinator';
import { RemoteExecutor } from '../../src/coordinator/remoteExecutor';
import { ZmqServer } from '../../src/transport/zmq';
import { DType } from '../../src/protocol/dtypes';
import { TRAIN_DEFAULTS, TrainConfig } from '../../src/training/config';
import { presetConfig } from '../../src/model/config';
import { parameterCount } from '../../src/model/paramSpecs';
import { Child, ChildEvent, describeHardware, fmt, hardware, median, mib, now, parseFlags, syntheticDataset, table, writeResults } from './common';

const flags = parseFlags('npm run bench:memory -- [flags]', {
  out: { default: 'memory', help: 'results file: bench-results/OUT.json' },
  steps: { default: 1000, help: 'training steps' },
  workers: { default: 1, help: 'real worker processes' },
  backend: { default: 'wasm', help: "workers' tfjs backend (wasm or cpu; cpu takes ~2.5 s per 16-example tiny unit here)" },
  preset: { default: 'tiny', help: 'model preset' },
  'unit-size': { default: 2, help: 'examples per unit' },
  'units-per-step': { default: 1, help: 'units per step (the global batch is units x unit size)' },
  'sample-every': { default: 25, help: 'coordinator sample every this many steps' },
  'sample-ms': { default: 1000, help: 'worker sample period, ms' },
  'warmup-fraction': { default: 0.1, help: 'fraction of the steps left out of the flatness judgement' },
  'flat-mib': { default: 1, help: 'largest heap slope, MiB per 1,000 steps, still called flat' },
});

interface Sample {
  step: number;
  heapUsed: number;
  rss: number;
  arrayBuffers: number;
  numTensors?: number;
  numBytes?: number;
}

interface Trend {
  series: string;
  first: number;
  last: number;
  min: number;
  max: number;
  slopePer1000: number;
  /** Undefined: shown, not judged (rss and arrayBuffers move with native and ZeroMQ buffers). */
  flat?: boolean;
}

/** Least-squares slope of y over x. */
function slope(xs: number[], ys: number[]): number {
  const mx = xs.reduce((a, b) => a + b, 0) / xs.length;
  const my = ys.reduce((a, b) => a + b, 0) / ys.length;
  let num = 0;
  let den = 0;
  for (let i = 0; i < xs.length; i++) {
    num += (xs[i] - mx) * (ys[i] - my);
    den += (xs[i] - mx) ** 2;
  }
  return den === 0 ? 0 : num / den;
}

function trend(series: string, samples: Sample[], key: keyof Sample, flatPer1000: number | undefined, exact = false): Trend {
  const xs = samples.map((s) => s.step);
  const ys = samples.map((s) => Number(s[key]));
  const k = Math.min(3, ys.length);
  const first = median(ys.slice(0, k));
  const last = median(ys.slice(-k));
  const s = slope(xs, ys) * 1000;
  const min = Math.min(...ys);
  const max = Math.max(...ys);
  return { series, first, last, min, max, slopePer1000: s, flat: exact ? min === max : flatPer1000 === undefined ? undefined : Math.abs(s) < flatPer1000 };
}

async function main(): Promise<void> {
  const hw = hardware();
  const model = presetConfig(flags.preset);
  const P = parameterCount(model);
  const units = flags['units-per-step'];
  const config: TrainConfig = { ...TRAIN_DEFAULTS, model, batchSize: units * flags['unit-size'], unitSize: flags['unit-size'], steps: flags.steps };
  const server = new ZmqServer();
  await server.bind('tcp://127.0.0.1:0');
  let reassigned = 0;
  let rejected = 0;
  const executor = new RemoteExecutor({
    channel: server, config, parameterCount: P, transportDtype: DType.FLOAT32, workerTimeoutMs: 60000,
    events: { onReassigned: (n) => { reassigned += n; }, onRejected: () => { rejected++; } },
  });
  const gc = (globalThis as { gc?: () => void }).gc;
  const coordSamples: Sample[] = [];
  const sampleCoordinator = (step: number) => {
    gc?.();
    const m = process.memoryUsage();
    coordSamples.push({ step, heapUsed: m.heapUsed, rss: m.rss, arrayBuffers: m.arrayBuffers });
  };
  const t0 = now();
  let lastLog = t0;
  const coordinator = new Coordinator({
    config, dataset: syntheticDataset(model.imageSize, model.imageChannels, 1024), executor,
    onStep: (r) => {
      const step = r.step;
      if (step % flags['sample-every'] === 0) sampleCoordinator(step);
      if (now() - lastLog > 15) {
        lastLog = now();
        console.error(`step ${step}/${flags.steps} (${fmt(step / (lastLog - t0), 1)} steps/s), loss ${fmt(r.reduced.meanLoss, 4)}`);
      }
    },
  });
  await coordinator.start();
  const workers = Array.from({ length: flags.workers }, (_, i) => new Child(`real-${i}`, 'realWorker.js'));
  await Promise.all(workers.map((w) => w.wait('ready', 60000)));
  workers.forEach((w) => w.send({ cmd: 'real-worker', endpoint: server.endpoint, name: w.name, backend: flags.backend, sampleMs: flags['sample-ms'] }));
  await executor.waitForWorkers(flags.workers, 120000);
  sampleCoordinator(0);
  const started = now();
  await coordinator.run();
  const seconds = now() - started;
  await coordinator.stop();
  const done = await Promise.all(workers.map((w) => w.wait('done', 60000)));
  await Promise.all(workers.map((w) => w.stop()));
  hw.loadAvgEnd = os.loadavg().map((l) => Number(l.toFixed(2)));

  const warm = Math.round(flags.steps * flags['warmup-fraction']);
  const flatBytes = flags['flat-mib'] * 2 ** 20;
  const trends: Trend[] = [];
  const cs = coordSamples.filter((s) => s.step >= warm);
  trends.push(trend('coordinator heapUsed', cs, 'heapUsed', flatBytes), trend('coordinator rss', cs, 'rss', undefined), trend('coordinator arrayBuffers', cs, 'arrayBuffers', undefined));
  const workerSamples = workers.map((w) => w.samples.map((e: ChildEvent): Sample => ({
    step: Number(e.units) / units, heapUsed: Number(e.heapUsed), rss: Number(e.rss), arrayBuffers: Number(e.arrayBuffers), numTensors: Number(e.numTensors), numBytes: Number(e.numBytes),
  })));
  workerSamples.forEach((ws, i) => {
    const s = ws.filter((x) => x.step >= warm);
    trends.push(
      trend(`worker ${i} heapUsed`, s, 'heapUsed', flatBytes), trend(`worker ${i} rss`, s, 'rss', undefined), trend(`worker ${i} arrayBuffers`, s, 'arrayBuffers', undefined),
      trend(`worker ${i} tf numTensors`, s, 'numTensors', 0, true), trend(`worker ${i} tf numBytes`, s, 'numBytes', 0, true),
    );
  });

  console.log(`\nMemory: ${flags.steps} steps of the ${flags.preset} model (${P.toLocaleString('en-US')} parameters), product Coordinator + RemoteExecutor,`);
  console.log(`${flags.workers} real worker process(es) (product Worker, ${done.map((d) => d.backend).join(', ')} backend), ${units} unit(s) of ${flags['unit-size']} examples per step;` +
    ` ${fmt(flags.steps / seconds, 2)} steps/s; ${reassigned} reassigned, ${rejected} rejected. Heap after a full GC.`);
  console.log(`${describeHardware(hw)}.\n`);
  const picks = [0, 0.1, 0.25, 0.5, 0.75, 1].map((f) => Math.round(f * flags.steps));
  const nearest = (ss: Sample[], step: number) => ss.reduce((b, s) => (Math.abs(s.step - step) < Math.abs(b.step - step) ? s : b), ss[0]);
  console.log(table(
    ['step', 'coordinator heapUsed MiB', 'coordinator rss MiB', 'worker 0 step', 'worker heapUsed MiB', 'worker rss MiB', 'worker arrayBuffers MiB', 'tf numTensors', 'tf numBytes'],
    picks.map((step) => {
      const c = nearest(coordSamples, step);
      const w = nearest(workerSamples[0], step);
      return [c.step, mib(c.heapUsed), mib(c.rss), fmt(w.step, 0), mib(w.heapUsed), mib(w.rss), mib(w.arrayBuffers), w.numTensors ?? '', w.numBytes ?? ''];
    }),
  ));
  console.log(`\nAfter the first ${warm} steps (flat: heapUsed |slope| < ${flags['flat-mib']} MiB per 1,000 steps; tensor count and bytes: no change at all;` +
    ' rss and arrayBuffers shown, not judged: they follow native allocations and ZeroMQ buffers in flight):\n');
  console.log(table(['series', 'first', 'last', 'min', 'max', 'slope per 1,000 steps', 'flat'], trends.map((t) => {
    const bytes = !t.series.includes('numTensors');
    const f = (x: number) => (bytes ? `${mib(x)} MiB` : String(x));
    return [t.series, f(t.first), f(t.last), f(t.min), f(t.max), bytes ? `${mib(t.slopePer1000)} MiB` : fmt(t.slopePer1000, 2), t.flat === undefined ? '(not judged)' : t.flat ? 'yes' : 'NO'];
  })));
  const file = writeResults(flags.out, { benchmark: 'memory', flags, hardware: hw, parameterCount: P, seconds, reassigned, rejected, trends, coordinator: coordSamples, workers: workerSamples });
  console.log(`\nwrote ${file}`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
