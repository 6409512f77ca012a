/**
 * A benchmark child process, driven by its parent over IPC. Roles:
 *
 * - `delay-worker`: a worker that speaks the product's ddpm.v1 protocol over the product's
 *   ZmqClient (REGISTER, WELCOME, PARAMETERS, WORK, RESULT, HEARTBEAT, GOODBYE), decodes what it
 *   receives with the product's decoders exactly as src/worker/worker.ts does, and whose "compute"
 *   is a fixed delay; its RESULT carries a real gradient vector of the model's size (a fixed
 *   finite pattern), encoded by the product's encodeResult in the run's transport dtype.
 * - `peer`: one end of the transport benchmark: `product` (ZmqClient + ddpm.v1 messages and their
 *   decoders), `channel` (ZmqClient moving frames of the same sizes, no codec) or `raw` (a bare
 *   zeromq Dealer moving frames of the same sizes).
 *
 * A child serves one role at a time and returns to idle when the role ends ('done' event), so one
 * pool of processes serves every configuration of a benchmark.
 */
import * as zmq from 'zeromq';
import { ZmqClient } from '../../src/transport/zmq';
import { DType, bytesPerElement } from '../../src/protocol/dtypes';
import { Kind, Message, decodeMessage, encodeMessage } from '../../src/protocol/messages';
import { decodeParameters, decodeWork, encodeResult } from '../../src/protocol/units';
import { LOSS_BUCKETS, UnitResult } from '../../src/training/workUnit';
import { UNetConfig } from '../../src/model/config';
import { parameterCount } from '../../src/model/paramSpecs';
import { gradientPattern } from './common';

type Command =
  /** A straggler: every slowEvery-th unit takes slowFactor times the delay, and so does every unit
   * begun in the slowSpell's seconds from its afterUnits-th unit on (a slow spell that ends). */
  | { cmd: 'delay-worker'; endpoint: string; name: string; delayMs: number; slowEvery?: number; slowFactor?: number; slowSpell?: { afterUnits: number; seconds: number } }
  | { cmd: 'peer'; endpoint: string; name: string; mode: 'raw' | 'channel' | 'product'; dtype: DType; parameterCount: number; rawResultHeaderBytes: number }
  | { cmd: 'exit' };

const send = (event: Record<string, unknown>) => process.send?.(event);
const debug = process.env.BENCH_DEBUG ? (line: string) => process.stderr.write(`[${process.pid}] ${line}\n`) : () => undefined;
const secondsSince = (t: bigint) => Number(process.hrtime.bigint() - t) / 1e9;

function fakeResult(m: Message, paramVersion: number, grad: Float32Array, computeSeconds: number): UnitResult {
  const count = m.envelope.work?.count ?? 1;
  const lossByBucket = new Float64Array(LOSS_BUCKETS);
  const countByBucket = new Float64Array(LOSS_BUCKETS);
  lossByBucket[0] = count * 0.5;
  countByBucket[0] = count;
  return { step: m.envelope.step, unitId: m.envelope.unitIds[0], paramVersion, count, lossSum: count * 0.5, lossByBucket, countByBucket, gradSum: grad, computeSeconds };
}

async function delayWorker(c: Extract<Command, { cmd: 'delay-worker' }>): Promise<Record<string, unknown>> {
  const channel = new ZmqClient(c.name, { lingerMs: 0 });
  channel.connect(c.endpoint);
  await channel.send(encodeMessage({ kind: Kind.REGISTER, register: { workerName: c.name, backend: 'fixed-delay', pid: process.pid } }));
  let run: { runId: string; dtype: DType; config: UNetConfig; timesteps: number; grad: Float32Array; parameterCount: number } | undefined;
  let version = -1;
  let units = 0;
  let spellEnds: number | undefined;
  let paramMessages = 0;
  let paramDecodeSeconds = 0;
  let lastBeat = Date.now();
  let lastHeard = Date.now();
  for (;;) {
    const frames = await channel.receive(1000);
    // The coordinator heartbeats every 250 ms: silence means it is gone (a lost GOODBYE).
    if (frames === undefined && run && Date.now() - lastHeard > 10000) {
      channel.close();
      return { units, paramMessages, paramDecodeSeconds, goodbye: false };
    }
    if (frames !== undefined) lastHeard = Date.now();
    if (run && Date.now() - lastBeat >= 1000) {
      lastBeat = Date.now();
      // With a timeout: a DEALER with `immediate` blocks a send while the coordinator is gone.
      await channel.send(encodeMessage({ kind: Kind.HEARTBEAT, runId: run.runId, heartbeat: { outstandingUnits: 0 } }), 2000).catch(() => debug(`${c.name}: heartbeat not sent`));
    }
    if (frames === undefined) continue;
    const m = decodeMessage(frames);
    const e = m.envelope;
    debug(`${c.name} got ${Kind[e.kind]} step ${e.step}`);
    switch (e.kind) {
      case Kind.WELCOME: {
        const w = e.welcome;
        const config = JSON.parse(w?.modelConfigJson ?? '') as UNetConfig;
        const n = parameterCount(config);
        run = { runId: e.runId, dtype: w?.transportDtype ?? DType.FLOAT32, config, timesteps: w?.timesteps ?? 1000, grad: gradientPattern(n), parameterCount: n };
        break;
      }
      case Kind.PARAMETERS: {
        if (!run) break;
        const t = process.hrtime.bigint();
        // As Worker.handle: decode (with its finiteness check) and copy out of the frame.
        decodeParameters(m, run.parameterCount, run.dtype).slice();
        paramDecodeSeconds += secondsSince(t);
        paramMessages++;
        version = e.paramVersion;
        break;
      }
      case Kind.WORK: {
        if (!run) break;
        if (version !== e.paramVersion) throw new Error(`WORK for version ${e.paramVersion}, holding ${version}`);
        decodeWork(m, run.config, run.timesteps);
        const t = process.hrtime.bigint();
        if (c.slowSpell && units === c.slowSpell.afterUnits) spellEnds ??= Date.now() + c.slowSpell.seconds * 1000;
        const slow = (c.slowEvery !== undefined && units % c.slowEvery === c.slowEvery - 1) || (spellEnds !== undefined && Date.now() < spellEnds);
        await new Promise((resolve) => setTimeout(resolve, slow ? c.delayMs * (c.slowFactor ?? 1) : c.delayMs));
        const computeSeconds = secondsSince(t);
        // Bounded, as the product's worker: a unit whose backup won may end after the run has.
        await channel.send(encodeResult(fakeResult(m, version, run.grad, computeSeconds), run.runId, run.dtype), 5000).catch(() => debug(`${c.name}: result not sent`));
        units++;
        await new Promise((resolve) => setImmediate(resolve));
        break;
      }
      case Kind.GOODBYE:
        channel.close();
        return { units, paramMessages, paramDecodeSeconds, goodbye: true };
      default:
        break;
    }
  }
}

async function productPeer(c: Extract<Command, { cmd: 'peer' }>): Promise<Record<string, unknown>> {
  const channel = new ZmqClient(c.name, { lingerMs: 0 });
  channel.connect(c.endpoint);
  const grad = gradientPattern(c.parameterCount);
  await channel.send(encodeMessage({ kind: Kind.HEARTBEAT, runId: 'bench', heartbeat: {} }));
  let received = 0;
  for (;;) {
    const frames = await channel.receive(1000);
    if (frames === undefined) continue;
    const m = decodeMessage(frames);
    switch (m.envelope.kind) {
      case Kind.PARAMETERS:
        // The worker's receive path: decode, finiteness check, copy out of the frame.
        decodeParameters(m, c.parameterCount, c.dtype).slice();
        received++;
        await channel.send(encodeMessage({ kind: Kind.HEARTBEAT, runId: 'bench', heartbeat: {} }));
        break;
      case Kind.HEARTBEAT: {
        const lossByBucket = new Float64Array(LOSS_BUCKETS);
        const countByBucket = new Float64Array(LOSS_BUCKETS);
        countByBucket[0] = 1;
        const r: UnitResult = { step: m.envelope.step, unitId: 0, paramVersion: m.envelope.paramVersion, count: 1, lossSum: 0.5, lossByBucket, countByBucket, gradSum: grad, computeSeconds: 0 };
        await channel.send(encodeResult(r, 'bench', c.dtype));
        break;
      }
      case Kind.GOODBYE:
        channel.close();
        return { received };
      default:
        break;
    }
  }
}

/**
 * Frame 0's first byte says what a raw message is: 1 parameters, 2 send a gradient, 3 bye.
 * `raw` uses a bare zeromq Dealer; `channel` the product's ZmqClient with the same frames and no
 * ddpm.v1 encoding or decoding (to tell the socket wrapper's cost from the codec's).
 */
async function framePeer(c: Extract<Command, { cmd: 'peer' }>): Promise<Record<string, unknown>> {
  let sendFrames: (frames: Buffer[]) => Promise<void>;
  let receive: () => Promise<Buffer[] | undefined>;
  let close: () => void;
  if (c.mode === 'raw') {
    const socket = new zmq.Dealer({ routingId: c.name, linger: 0 });
    socket.connect(c.endpoint);
    sendFrames = (frames) => socket.send(frames);
    receive = () => socket.receive();
    close = () => socket.close();
  } else {
    const channel = new ZmqClient(c.name, { lingerMs: 0 });
    channel.connect(c.endpoint);
    sendFrames = (frames) => channel.send(frames);
    receive = () => channel.receive(1000);
    close = () => channel.close();
  }
  const header = Buffer.alloc(c.rawResultHeaderBytes, 7);
  const body = Buffer.alloc(c.parameterCount * bytesPerElement(c.dtype), 1);
  await sendFrames([Buffer.from([0])]);
  let received = 0;
  for (;;) {
    const frames = await receive();
    if (frames === undefined) continue;
    switch (frames[0][0]) {
      case 1:
        received++;
        await sendFrames([Buffer.from([0])]);
        break;
      case 2:
        await sendFrames([header, body]);
        break;
      case 3:
        close();
        return { received };
      default:
        break;
    }
  }
}

let busy = false;
process.on('message', (c: Command) => {
  if (c.cmd === 'exit') {
    process.exit(0);
  }
  if (busy) {
    send({ event: 'error', message: `busy, cannot start ${c.cmd}` });
    return;
  }
  busy = true;
  const role = c.cmd === 'delay-worker' ? delayWorker(c) : c.mode === 'product' ? productPeer(c) : framePeer(c);
  role.then(
    (stats) => { busy = false; send({ event: 'done', ...stats }); },
    (err: Error) => { busy = false; send({ event: 'error', message: err.stack ?? err.message }); },
  );
});
process.on('disconnect', () => process.exit(0));
send({ event: 'ready', pid: process.pid });
