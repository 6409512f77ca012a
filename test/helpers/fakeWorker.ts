/**
 * A protocol-speaking worker over a real ZeroMQ DEALER that fabricates results instead of
 * computing them, for driving the coordinator's executor into failure cases on purpose.
 */
import * as zmq from 'zeromq';
import { DType } from '../../src/protocol/dtypes';
import { ErrorCode, Kind, Message, decodeMessage, encodeMessage } from '../../src/protocol/messages';
import { encodeResult } from '../../src/protocol/units';
import { LOSS_BUCKETS, UnitResult } from '../../src/training/workUnit';

export type Behaviour = 'honest' | 'silent' | 'duplicate' | 'stale';

/** The gradient a fake worker returns for a unit: a value no other unit shares. */
export function fakeGradient(unitId: number, count: number, size: number): Float32Array {
  return new Float32Array(size).map((_, i) => (unitId + 1) * count * ((i % 7) - 3) * 1e-3);
}

export class FakeWorker {
  readonly socket: zmq.Dealer;
  readonly received: Message[] = [];
  runId = '';
  private loop: Promise<void> | undefined;
  private beat: NodeJS.Timeout | undefined;
  private closed = false;

  /** Milliseconds an honest worker takes per unit. */
  delayMs = 0;

  constructor(readonly name: string, private readonly endpoint: string, public behaviour: Behaviour, private readonly parameterCount: number) {
    this.socket = new zmq.Dealer({ routingId: name, linger: 0 });
  }

  private register(): Promise<void> {
    return this.socket.send(encodeMessage({ kind: Kind.REGISTER, register: { workerName: this.name, backend: 'fake', pid: process.pid } }));
  }

  async start(): Promise<void> {
    this.socket.connect(this.endpoint);
    await this.register();
    this.loop = this.receiveLoop();
    this.beat = setInterval(() => {
      if (this.runId) this.socket.send(encodeMessage({ kind: Kind.HEARTBEAT, runId: this.runId, heartbeat: {} })).catch(() => undefined);
    }, 200);
  }

  units(): number[] {
    return this.received.filter((m) => m.envelope.kind === Kind.WORK).map((m) => m.envelope.unitIds[0]);
  }

  private async receiveLoop(): Promise<void> {
    while (!this.closed) {
      let frames: Buffer[];
      try {
        frames = await this.socket.receive();
      } catch {
        return;
      }
      const m = decodeMessage(frames);
      this.received.push(m);
      if (m.envelope.kind === Kind.WELCOME) this.runId = m.envelope.runId;
      try {
        // As the real worker does when a coordinator has dropped it.
        if (m.envelope.kind === Kind.ERROR && m.envelope.error?.code === ErrorCode.UNKNOWN_WORKER) await this.register();
        if (m.envelope.kind === Kind.WORK && this.behaviour !== 'silent') await this.answer(m);
      } catch {
        if (this.closed) return;
        throw new Error(`fake worker ${this.name} could not send`);
      }
    }
  }

  resultFor(m: Message, stepOffset = 0): Buffer[] {
    const e = m.envelope;
    const count = e.work?.count ?? 0;
    const lossByBucket = new Float64Array(LOSS_BUCKETS);
    const countByBucket = new Float64Array(LOSS_BUCKETS);
    countByBucket[0] = count;
    lossByBucket[0] = count * 0.5;
    const r: UnitResult = {
      step: e.step + stepOffset, unitId: e.unitIds[0], paramVersion: e.paramVersion + stepOffset, count, lossSum: count * 0.5,
      lossByBucket, countByBucket, gradSum: fakeGradient(e.unitIds[0], count, this.parameterCount), computeSeconds: this.delayMs / 1000 + 0.001,
    };
    return encodeResult(r, this.runId, DType.FLOAT32);
  }

  private async answer(m: Message): Promise<void> {
    switch (this.behaviour) {
      case 'honest':
        if (this.delayMs > 0) await new Promise((r) => setTimeout(r, this.delayMs));
        return this.socket.send(this.resultFor(m));
      case 'duplicate':
        await this.socket.send(this.resultFor(m));
        return this.socket.send(this.resultFor(m));
      case 'stale':
        return this.socket.send(this.resultFor(m, -1));
      case 'silent':
        return undefined;
    }
  }

  async send(frames: Buffer[]): Promise<void> {
    await this.socket.send(frames);
  }

  async stop(): Promise<void> {
    this.closed = true;
    clearInterval(this.beat);
    this.socket.close();
    await this.loop;
  }
}
