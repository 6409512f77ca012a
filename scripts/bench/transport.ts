/**
 * Transport benchmark (issue 6.1b): bytes per second of the parameter broadcast and the gradient
 * return through the product's path, against bare ZeroMQ Router/Dealer moving the same frame sizes
 * in the same run, interleaved (the order rotates each repetition) so all see the same load. A
 * third path, the product's ZmqServer/ZmqClient moving the same frames without the ddpm.v1 codec,
 * tells the socket wrapper's share from the codec's; the codec alone is also timed in-process.
 */
import * as os from 'os';
import { DType, TRANSPORT_DTYPES, TransportDtype, transportDtypeCode } from '../../src/protocol/dtypes';
import { decodeMessage } from '../../src/protocol/messages';
import { decodeParameters, decodeResult, encodeParameters, encodeResult } from '../../src/protocol/units';
import { LOSS_BUCKETS } from '../../src/training/workUnit';
import { presetConfig } from '../../src/model/config';
import { parameterCount } from '../../src/model/paramSpecs';
import { describeHardware, fmt, gradientPattern, hardware, median, mib, now, parseFlags, startPool, stopPool, table, writeResults } from './common';
import { Direction, Mode, TransportRun, measureTransport } from './transportLib';

const flags = parseFlags('npm run bench:transport -- [flags]', {
  out: { default: 'transport', help: 'results file: bench-results/OUT.json' },
  presets: { default: ['tiny', 'mnist', 'cifar10'], help: 'model presets whose parameter count sets the message size' },
  dtypes: { default: ['float32', 'bfloat16'], help: `transport dtypes (${TRANSPORT_DTYPES.join(', ')})` },
  peers: { default: [1, 4], help: 'peer (worker) processes per measurement' },
  modes: { default: ['product', 'channel', 'raw'], help: 'paths: product (ZmqServer/ZmqClient + ddpm.v1 codec), channel (the same sockets, no codec), raw (bare zeromq); raw is required' },
  reps: { default: 3, help: 'repetitions of each (product, raw) pair; medians are reported' },
  bytes: { default: 256, help: 'MiB moved per measurement (sets the number of rounds, at least --min-rounds)' },
  'min-rounds': { default: 3, help: 'fewest rounds per measurement' },
  'max-rounds': { default: 300, help: 'most rounds per measurement' },
});

interface Row {
  preset: string;
  parameterCount: number;
  dtype: string;
  peers: number;
  direction: Direction;
  messageBytes: number;
  rounds: number;
  bytesPerSecond: Partial<Record<Mode, number>>;
  /** Median over repetitions of (mode's rate / raw's rate in the same repetition). */
  ratio: Partial<Record<Mode, number>>;
  ratios: Partial<Record<Mode, number[]>>;
}

interface Codec {
  preset: string;
  dtype: string;
  /** Seconds per message, in this process, no sockets. */
  encodeParameters: number;
  decodeParameters: number;
  encodeResult: number;
  decodeResult: number;
}

function time(reps: number, f: () => void): number {
  const ts: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t = now();
    f();
    ts.push(now() - t);
  }
  return median(ts);
}

/** The codec's cost per message alone: what the product path adds to the bytes on each side. */
function codecTimes(preset: string, P: number, dtypeName: string, dtype: DType): Codec {
  const reps = P > 1e7 ? 3 : 20;
  const values = gradientPattern(P);
  const stamp = { runId: 'bench', step: 1, paramVersion: 1 };
  const params = encodeParameters(values, stamp, dtype).map((f) => Buffer.from(f));
  const lossByBucket = new Float64Array(LOSS_BUCKETS);
  const countByBucket = new Float64Array(LOSS_BUCKETS);
  countByBucket[0] = 1;
  const r = { step: 1, unitId: 0, paramVersion: 1, count: 1, lossSum: 0.5, lossByBucket, countByBucket, gradSum: values, computeSeconds: 0 };
  const result = encodeResult(r, 'bench', dtype).map((f) => Buffer.from(f));
  return {
    preset, dtype: dtypeName,
    encodeParameters: time(reps, () => encodeParameters(values, stamp, dtype)),
    decodeParameters: time(reps, () => decodeParameters(decodeMessage(params), P, dtype).slice()),
    encodeResult: time(reps, () => encodeResult(r, 'bench', dtype)),
    decodeResult: time(reps, () => decodeResult(decodeMessage(result), P, dtype)),
  };
}

async function main(): Promise<void> {
  const hw = hardware();
  const maxPeers = Math.max(...flags.peers);
  const pool = await startPool(maxPeers, 'peer');
  const runs: TransportRun[] = [];
  const rows: Row[] = [];
  const codecs: Codec[] = [];
  try {
    for (const preset of flags.presets) {
      const P = parameterCount(presetConfig(preset));
      for (const dtypeName of flags.dtypes) {
        const dtype = transportDtypeCode(dtypeName as TransportDtype);
        codecs.push(codecTimes(preset, P, dtypeName, dtype));
        for (const n of flags.peers) {
          for (const direction of ['broadcast', 'gather'] as Direction[]) {
            const bytesPerRound = n * P * (dtype === DType.FLOAT32 ? 4 : 2);
            const rounds = Math.max(flags['min-rounds'], Math.min(flags['max-rounds'], Math.ceil((flags.bytes * 2 ** 20) / bytesPerRound)));
            const modes = flags.modes as Mode[];
            if (!modes.includes('raw')) throw new Error('--modes must include raw');
            const rates: Partial<Record<Mode, number[]>> = {};
            const ratios: Partial<Record<Mode, number[]>> = {};
            let messageBytes = 0;
            for (let rep = 0; rep < flags.reps; rep++) {
              // Rotate the order, so no path always runs on a warmer (or busier) machine.
              const order = modes.map((_, i) => modes[(i + rep) % modes.length]);
              const got: Partial<Record<Mode, TransportRun>> = {};
              for (const mode of order) {
                const r = await measureTransport(pool.slice(0, n), mode, direction, P, dtype, rounds);
                runs.push({ ...r, roundSeconds: r.roundSeconds.map((x) => Number(x.toFixed(6))) });
                got[mode] = r;
                messageBytes = r.messageBytes;
                (rates[mode] ??= []).push(r.bytesPerSecond);
              }
              const raw = (got.raw as TransportRun).bytesPerSecond;
              for (const mode of modes) (ratios[mode] ??= []).push((got[mode] as TransportRun).bytesPerSecond / raw);
            }
            const row: Row = {
              preset, parameterCount: P, dtype: dtypeName, peers: n, direction, messageBytes, rounds,
              bytesPerSecond: Object.fromEntries(modes.map((m) => [m, median(rates[m] ?? [])])),
              ratio: Object.fromEntries(modes.map((m) => [m, median(ratios[m] ?? [])])), ratios,
            };
            rows.push(row);
            console.error(`${preset} ${dtypeName} N=${n} ${direction}: ${modes.map((m) => `${m} ${mib(row.bytesPerSecond[m] ?? NaN)} MiB/s`).join(', ')}`);
          }
        }
      }
    }
  } finally {
    await stopPool(pool);
  }
  hw.loadAvgEnd = os.loadavg().map((l) => Number(l.toFixed(2)));
  console.log(`\nTransport: product path (ZmqServer/ZmqClient + ddpm.v1 encode/decode) vs bare zeromq Router/Dealer, same frame sizes, same run; rates count all frames, N peers x rounds x message bytes over the wall time.`);
  console.log(`${describeHardware(hw)}; ${flags.reps} repetition(s), medians.\n`);
  const has = (m: Mode) => (flags.modes as string[]).includes(m);
  console.log(table(
    ['preset (params)', 'dtype', 'peers', 'direction', 'message MiB', 'rounds', 'product MiB/s', ...(has('channel') ? ['channel, no codec MiB/s'] : []), 'raw ZeroMQ MiB/s',
      'product / raw', ...(has('channel') ? ['channel / raw'] : []), 'target >= 0.80'],
    rows.map((r) => [
      `${r.preset} (${r.parameterCount.toLocaleString('en-US')})`, r.dtype, r.peers, r.direction, fmt(r.messageBytes / 2 ** 20, 3), r.rounds,
      mib(r.bytesPerSecond.product ?? NaN), ...(has('channel') ? [mib(r.bytesPerSecond.channel ?? NaN)] : []), mib(r.bytesPerSecond.raw ?? NaN),
      fmt(r.ratio.product ?? NaN, 2), ...(has('channel') ? [fmt(r.ratio.channel ?? NaN, 2)] : []), (r.ratio.product ?? 0) >= 0.8 ? 'met' : 'missed',
    ]),
  ));
  console.log('\nThe codec alone, per message, in one process (ms): what the product path adds on each side.\n');
  console.log(table(
    ['preset', 'dtype', 'encodeParameters (coordinator, once per step)', 'decode PARAMETERS + copy (worker)', 'encodeResult (worker)', 'decode RESULT (coordinator)'],
    codecs.map((c) => [c.preset, c.dtype, fmt(c.encodeParameters * 1000, 2), fmt(c.decodeParameters * 1000, 2), fmt(c.encodeResult * 1000, 2), fmt(c.decodeResult * 1000, 2)]),
  ));
  const file = writeResults(flags.out, { benchmark: 'transport', flags, hardware: hw, rows, codecs, runs });
  console.log(`\nwrote ${file}`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
