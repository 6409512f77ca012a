/**
 * A worker process's metrics (`ddpm worker --metrics-port`). The Worker class exposes only
 * `unitsDone`, so units are polled at scrape time, and per-unit compute time and bytes are read
 * off the channel: a wrapper sees each RESULT envelope (its computeSeconds) and every frame's size.
 */
import { Counter, Histogram, Registry } from 'prom-client';
import { registerDefaultMetrics } from './defaultMetrics';
import { ddpm } from '../protocol/generated/ddpm';
import { Kind } from '../protocol/messages';
import type { ClientChannel } from '../transport/channel';
import { METRIC } from './names';
import { Route, text } from './httpServer';

const UNIT_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

const frameBytes = (frames: Buffer[]) => frames.reduce((n, f) => n + f.byteLength, 0);

/** The envelope of a message, or undefined if frame 0 does not decode (the worker reports those). */
function envelopeOf(frames: Buffer[]): ddpm.v1.Envelope | undefined {
  try {
    return frames.length > 0 ? ddpm.v1.Envelope.decode(frames[0]) : undefined;
  } catch {
    return undefined;
  }
}

export class WorkerMetrics {
  readonly registry = new Registry();
  private readonly unitDuration: Histogram;
  private readonly sentBytes: Counter;
  private readonly receivedBytes: Counter;
  private welcomed = false;
  stopping = false;

  constructor(unitsDone: () => number) {
    const registers = [this.registry];
    registerDefaultMetrics(this.registry);
    let counted = 0;
    new Counter({
      name: METRIC.workerUnits, help: 'Work units computed by this worker', registers,
      collect() {
        const done = unitsDone();
        if (done > counted) this.inc(done - counted);
        counted = done;
      },
    });
    this.unitDuration = new Histogram({ name: METRIC.workerUnitDuration, help: 'Compute time of one work unit (forward, backward, gradient sum)', buckets: UNIT_BUCKETS, registers });
    this.sentBytes = new Counter({ name: METRIC.sentBytes, help: 'Bytes sent to the coordinator', registers });
    this.receivedBytes = new Counter({ name: METRIC.receivedBytes, help: 'Bytes received from the coordinator', registers });
  }

  /** The same channel, counting bytes and unit times on the way through. */
  observe(channel: ClientChannel): ClientChannel {
    return {
      send: (frames, timeoutMs) => {
        this.sentBytes.inc(frameBytes(frames));
        const e = envelopeOf(frames);
        if (e?.kind === Kind.RESULT && e.result) this.unitDuration.observe(Math.max(0, e.result.computeSeconds ?? 0));
        return channel.send(frames, timeoutMs);
      },
      receive: async (timeoutMs) => {
        const frames = await channel.receive(timeoutMs);
        if (frames !== undefined) {
          this.receivedBytes.inc(frameBytes(frames));
          if (envelopeOf(frames)?.kind === Kind.WELCOME) this.welcomed = true;
        }
        return frames;
      },
      get reconnects() { return channel.reconnects; },
      close: () => channel.close(),
    };
  }

  routes(): Record<string, Route> {
    return {
      '/metrics': async () => ({ status: 200, contentType: this.registry.contentType, body: await this.registry.metrics() }),
      '/healthz': () => text(200, 'ok\n'),
      // Ready once a coordinator has welcomed this worker into a run.
      '/readyz': () => (this.welcomed && !this.stopping ? text(200, 'ready\n') : text(503, `not ready: ${this.stopping ? 'stopping' : 'no coordinator has welcomed this worker yet'}\n`)),
    };
  }
}
