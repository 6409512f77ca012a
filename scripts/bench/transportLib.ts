/**
 * One transport measurement: the coordinator (this process) and N peer processes move parameter
 * broadcasts or gradient returns of a model's size, either through the product's path (ZmqServer /
 * ZmqClient, ddpm.v1 encode and decode with their validation) or through bare zeromq Router/Dealer
 * sockets moving frames of exactly the same sizes.
 *
 * broadcast round: the coordinator encodes one PARAMETERS message (as RemoteExecutor.dispatch does
 *   once per step) and sends it to every peer; each peer decodes it as the worker does and acks.
 * gather round: the coordinator asks every peer for a gradient; each peer encodes a RESULT of the
 *   model's size, the coordinator receives and decodes all N (decodeMessage + decodeResult, as
 *   RemoteExecutor.result does). Raw rounds move the same frames with no encoding or decoding over
 *   bare sockets; channel rounds move them over the product's ZmqServer/ZmqClient, no codec.
 */
import * as zmq from 'zeromq';
import { ZmqServer } from '../../src/transport/zmq';
import { DType } from '../../src/protocol/dtypes';
import { Kind, decodeMessage, encodeMessage } from '../../src/protocol/messages';
import { decodeResult, encodeParameters, encodeResult } from '../../src/protocol/units';
import { LOSS_BUCKETS } from '../../src/training/workUnit';
import { Child, gradientPattern, median, now } from './common';

export type Mode = 'raw' | 'channel' | 'product';
export type Direction = 'broadcast' | 'gather';

export interface TransportRun {
  mode: Mode;
  direction: Direction;
  peers: number;
  parameterCount: number;
  dtype: string;
  rounds: number;
  /** Bytes of one message, all frames. */
  messageBytes: number;
  seconds: number;
  roundSeconds: number[];
  /** Total bytes over total time. */
  bytesPerSecond: number;
}

/** Frame sizes of the product's PARAMETERS and RESULT messages for this size and dtype. */
export function messageSizes(parameterCount: number, dtype: DType): { params: number[]; result: number[] } {
  const stamp = { runId: 'bench', step: 1, paramVersion: 1 };
  const params = encodeParameters(new Float32Array(parameterCount), stamp, dtype).map((f) => f.byteLength);
  const lossByBucket = new Float64Array(LOSS_BUCKETS);
  const countByBucket = new Float64Array(LOSS_BUCKETS);
  countByBucket[0] = 1;
  const result = encodeResult({ step: 1, unitId: 0, paramVersion: 1, count: 1, lossSum: 0.5, lossByBucket, countByBucket, gradSum: new Float32Array(parameterCount), computeSeconds: 0 }, 'bench', dtype)
    .map((f) => f.byteLength);
  return { params, result };
}

interface Endpoint {
  address: string;
  send(peer: string, frames: Buffer[]): Promise<void>;
  receive(): Promise<{ peer: string; frames: Buffer[] }>;
  close(): void;
}

async function productEndpoint(): Promise<Endpoint> {
  const server = new ZmqServer({ lingerMs: 0 });
  await server.bind('tcp://127.0.0.1:0');
  return {
    address: server.endpoint as string,
    send: (peer, frames) => server.send(peer, frames),
    receive: async () => {
      const m = await server.receive();
      if (!m) throw new Error('server closed');
      return m;
    },
    close: () => server.close(),
  };
}

async function rawEndpoint(): Promise<Endpoint> {
  const router = new zmq.Router({ linger: 0 });
  await router.bind('tcp://127.0.0.1:0');
  // zeromq.js allows one send in flight per socket (the product's SendQueue does the same).
  let tail: Promise<void> = Promise.resolve();
  return {
    address: router.lastEndpoint as string,
    send: (peer, frames) => {
      const next = tail.then(() => router.send([Buffer.from(peer), ...frames]));
      tail = next.catch(() => undefined);
      return next;
    },
    receive: async () => {
      const [id, ...frames] = await router.receive();
      return { peer: id.toString(), frames };
    },
    close: () => router.close(),
  };
}

export async function measureTransport(peers: Child[], mode: Mode, direction: Direction, parameterCount: number, dtype: DType, rounds: number): Promise<TransportRun> {
  const sizes = messageSizes(parameterCount, dtype);
  const ep = mode === 'raw' ? await rawEndpoint() : await productEndpoint();
  const framesOnly = mode !== 'product';
  const names = peers.map((p) => `${p.name}-${mode}`);
  peers.forEach((p, i) => p.send({ cmd: 'peer', endpoint: ep.address, name: names[i], mode, dtype, parameterCount, rawResultHeaderBytes: sizes.result[0] }));
  // Hello from each peer.
  for (let i = 0; i < peers.length; i++) await ep.receive();

  const params = gradientPattern(parameterCount);
  // Raw frames of the product's sizes: a header (first byte says "parameters") and the tensor frame.
  const rawParams = sizes.params.map((n, i) => Buffer.alloc(n, i === 0 ? 1 : 3));
  const go = framesOnly ? [Buffer.from([2])] : encodeMessage({ kind: Kind.HEARTBEAT, runId: 'bench', step: 1, paramVersion: 1, heartbeat: {} });
  const roundSeconds: number[] = [];
  const t0 = now();
  for (let r = 0; r < rounds; r++) {
    const t = now();
    if (direction === 'broadcast') {
      const frames = framesOnly ? rawParams : encodeParameters(params, { runId: 'bench', step: r, paramVersion: r }, dtype);
      await Promise.all(names.map((n) => ep.send(n, frames)));
      for (let i = 0; i < peers.length; i++) await ep.receive();
    } else {
      await Promise.all(names.map((n) => ep.send(n, go)));
      for (let i = 0; i < peers.length; i++) {
        const { frames } = await ep.receive();
        if (mode === 'product') decodeResult(decodeMessage(frames), parameterCount, dtype);
        else if (frames.length !== sizes.result.length || frames[1].byteLength !== sizes.result[1]) throw new Error('raw result of the wrong size');
      }
    }
    roundSeconds.push(now() - t);
  }
  const seconds = now() - t0;
  const bye = framesOnly ? [Buffer.from([3])] : encodeMessage({ kind: Kind.GOODBYE, runId: 'bench', goodbye: { reason: 'done' } });
  await Promise.all(names.map((n) => ep.send(n, bye)));
  await Promise.all(peers.map((p) => p.wait('done', 60000)));
  ep.close();
  const messageBytes = (direction === 'broadcast' ? sizes.params : sizes.result).reduce((a, b) => a + b, 0);
  return {
    mode, direction, peers: peers.length, parameterCount, dtype: DType[dtype], rounds, messageBytes, seconds, roundSeconds,
    bytesPerSecond: (rounds * peers.length * messageBytes) / seconds,
  };
}

/** Bare ZeroMQ's time for one step's traffic with these peers: a parameter message to each, then
 * a gradient from each (medians over `rounds` of each), and the bytes that moves. */
export async function rawStepTime(peers: Child[], parameterCount: number, dtype: DType, rounds: number): Promise<{ seconds: number; bytes: number }> {
  const out = await measureTransport(peers, 'raw', 'broadcast', parameterCount, dtype, rounds);
  const back = await measureTransport(peers, 'raw', 'gather', parameterCount, dtype, rounds);
  return { seconds: median(out.roundSeconds) + median(back.roundSeconds), bytes: peers.length * (out.messageBytes + back.messageBytes) };
}
