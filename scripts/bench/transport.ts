/**
 * Transport benchmark (issue 6.1b): bytes per second of the parameter broadcast and the gradient
 * return through the product's path, against bare ZeroMQ Router/Dealer moving the same frame sizes
 * in the same run, interleaved (product, raw, product, raw, ...) so both see the same load.
 */
import { DType, TRANSPORT_DTYPES, TransportDtype, transportDtypeCode } from '../../src/protocol/dtypes';
import { presetConfig } from '../../src/model/config';
import { parameterCount } from '../../src/model/paramSpecs';
import { describeHardware, fmt, hardware, median, mib, parseFlags, startPool, stopPool, table, writeResults } from './common';
import { Direction, Mode, TransportRun, measureTransport } from './transportLib';

const flags = parseFlags('npm run bench:transport -- [flags]', {
  presets: { default: ['tiny', 'mnist', 'cifar10'], help: 'model presets whose parameter count sets the message size' },
  dtypes: { default: ['float32', 'bfloat16'], help: `transport dtypes (${TRANSPORT_DTYPES.join(', ')})` },
  peers: { default: [1, 4], help: 'peer (worker) processes per measurement' },
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
  productBytesPerSecond: number;
  rawBytesPerSecond: number;
  ratio: number;
  ratios: number[];
}

async function main(): Promise<void> {
  const hw = hardware();
  const maxPeers = Math.max(...flags.peers);
  const pool = await startPool(maxPeers, 'peer');
  const runs: TransportRun[] = [];
  const rows: Row[] = [];
  try {
    for (const preset of flags.presets) {
      const P = parameterCount(presetConfig(preset));
      for (const dtypeName of flags.dtypes) {
        const dtype = transportDtypeCode(dtypeName as TransportDtype);
        for (const n of flags.peers) {
          for (const direction of ['broadcast', 'gather'] as Direction[]) {
            const bytesPerRound = n * P * (dtype === DType.FLOAT32 ? 4 : 2);
            const rounds = Math.max(flags['min-rounds'], Math.min(flags['max-rounds'], Math.ceil((flags.bytes * 2 ** 20) / bytesPerRound)));
            const product: number[] = [];
            const raw: number[] = [];
            const ratios: number[] = [];
            let messageBytes = 0;
            for (let rep = 0; rep < flags.reps; rep++) {
              // Alternate which goes first, so neither always runs on a warmer (or busier) machine.
              const order: Mode[] = rep % 2 === 0 ? ['product', 'raw'] : ['raw', 'product'];
              const got: Partial<Record<Mode, TransportRun>> = {};
              for (const mode of order) {
                const r = await measureTransport(pool.slice(0, n), mode, direction, P, dtype, rounds);
                runs.push({ ...r, roundSeconds: r.roundSeconds.map((s) => Number(s.toFixed(6))) });
                got[mode] = r;
              }
              const p = got.product as TransportRun;
              const q = got.raw as TransportRun;
              messageBytes = p.messageBytes;
              product.push(p.bytesPerSecond);
              raw.push(q.bytesPerSecond);
              ratios.push(p.bytesPerSecond / q.bytesPerSecond);
            }
            const row: Row = {
              preset, parameterCount: P, dtype: dtypeName, peers: n, direction, messageBytes, rounds,
              productBytesPerSecond: median(product), rawBytesPerSecond: median(raw), ratio: median(ratios), ratios,
            };
            rows.push(row);
            console.error(`${preset} ${dtypeName} N=${n} ${direction}: product ${mib(row.productBytesPerSecond)} MiB/s, raw ${mib(row.rawBytesPerSecond)} MiB/s, ratio ${fmt(row.ratio, 2)}`);
          }
        }
      }
    }
  } finally {
    await stopPool(pool);
  }
  hw.loadAvgEnd = (await import('os')).loadavg().map((l) => Number(l.toFixed(2)));
  console.log(`\nTransport: product path (ZmqServer/ZmqClient + ddpm.v1 encode/decode) vs bare zeromq Router/Dealer, same frame sizes, same run.`);
  console.log(`${describeHardware(hw)}; ${flags.reps} repetition(s), medians.\n`);
  console.log(table(
    ['preset (params)', 'dtype', 'peers', 'direction', 'message MiB', 'rounds', 'product MiB/s', 'raw ZeroMQ MiB/s', 'product / raw', 'target >= 0.80'],
    rows.map((r) => [
      `${r.preset} (${r.parameterCount.toLocaleString('en-US')})`, r.dtype, r.peers, r.direction, fmt(r.messageBytes / 2 ** 20, 3), r.rounds,
      mib(r.productBytesPerSecond), mib(r.rawBytesPerSecond), fmt(r.ratio, 2), r.ratio >= 0.8 ? 'met' : 'missed',
    ]),
  ));
  const file = writeResults('transport', { benchmark: 'transport', flags, hardware: hw, rows, runs });
  console.log(`\nwrote ${file}`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
