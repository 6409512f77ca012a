/**
 * A worker process's role: register with the coordinator, take parameters and work units, return
 * gradient sums. One backend, one socket; reconnects by itself (ZeroMQ back-off) and registers
 * again when a restarted coordinator does not know it.
 */
import { ClientChannel } from '../transport/channel';
import type { Beacon } from '../transport/beacon';
import { RejectLog } from '../protocol/rejectLog';
import { DType } from '../protocol/dtypes';
import { ErrorCode, Kind, Message, ProtocolError, decodeMessage, encodeMessage } from '../protocol/messages';
import { decodeParameters, decodeWork, encodeResult } from '../protocol/units';
import { UnitComputer, replayStatusLogger, startUnitComputer } from './unitComputer';
import { parameterCount } from '../model/paramSpecs';
import { UNetConfig, validateConfig } from '../model/config';
import type { WorkUnit } from '../training/workUnit';
import { isScheduleName } from '../schedule';
import { isPredictionTarget } from '../diffusion/types';

/** How long a goodbye is given to leave before the socket closes (Worker.stop). */
const GOODBYE_SETTLE_MS = 200;

export interface WorkerOptions {
  name: string;
  backend: string;
  channel: ClientChannel;
  log?: (line: string) => void;
  /** Re-register after this long without hearing from the coordinator. */
  coordinatorTimeoutMs?: number;
  heartbeatMs?: number;
  /** Keeps heartbeating from another thread while a unit computes (transport/beacon.ts). */
  beacon?: Beacon;
  /** Units computed at once, each on a thread of its own (1: in this thread). */
  threads?: number;
}

interface RunInfo {
  runId: string;
  dtype: DType;
  parameterCount: number;
  computer: UnitComputer;
  config: UNetConfig;
  timesteps: number;
  configKey: string;
}

export class Worker {
  private run: RunInfo | undefined;
  private stopping = false;
  private loop: Promise<'finished' | 'stopped'> | undefined;
  private stopped: Promise<void> | undefined;
  private lastHeard = 0;
  private lastRegister = 0;
  /** The run of the latest WELCOME, set before its compute threads start: a worker stopped
   * while they start still says goodbye to it. */
  private welcomedRunId: string | undefined;
  /** A compute failure ends the message loop with it. */
  private failure: Error | undefined;
  /** The next message, read while a unit computed (readAhead), with the unit it carries if any. */
  private ahead: { frames: Buffer[]; message?: Message; unit?: WorkUnit } | undefined;
  unitsDone = 0;

  constructor(private readonly opts: WorkerOptions) {}

  /** Units of the current run computed from images and noise made while the unit before them computed. */
  get unitsPrepared(): number {
    return this.run?.computer.unitsFromPrepared ?? 0;
  }

  private log(line: string): void {
    this.opts.log?.(`worker ${this.opts.name}: ${line}`);
  }

  private readonly logReplay = replayStatusLogger((line) => this.log(line));

  /** Each reason is logged once: a restarted coordinator can cause many rejections. */
  private readonly rejects = new RejectLog((line) => this.log(line));

  /** Starts the message loop; resolves with how it ended (run over, or stop()). Idempotent. */
  start(): Promise<'finished' | 'stopped'> {
    // stop() closes the channel, which fails a send still waiting for a coordinator (the first
    // REGISTER, when none is up yet): that is the stop it asked for, not a failure.
    this.loop ??= this.messageLoop().catch((err: unknown) => {
      if (this.stopping) return 'stopped' as const;
      throw err;
    });
    return this.loop;
  }

  private async register(): Promise<void> {
    this.lastRegister = Date.now();
    await this.opts.channel.send(encodeMessage({
      kind: Kind.REGISTER, register: { workerName: this.opts.name, backend: this.opts.backend, pid: process.pid, computeSlots: this.opts.threads ?? 1 },
    }));
  }

  private async messageLoop(): Promise<'finished' | 'stopped'> {
    const heartbeatMs = this.opts.heartbeatMs ?? 1000;
    const silentMs = this.opts.coordinatorTimeoutMs ?? 5000;
    await this.register();
    this.lastHeard = Date.now();
    let lastBeat = Date.now();
    let reconnectsSeen = this.opts.channel.reconnects ?? 0;
    while (!this.stopping) {
      if (this.failure) throw this.failure;
      const ahead = this.ahead;
      this.ahead = undefined;
      const frames = ahead?.frames ?? await this.opts.channel.receive(heartbeatMs);
      const now = Date.now();
      const reconnects = this.opts.channel.reconnects ?? 0;
      if (reconnects !== reconnectsSeen) {
        reconnectsSeen = reconnects;
        // Results and WORK in flight on the old connection are gone, and the coordinator would
        // wait for them until the unit deadline; registering again makes it hand them out now.
        this.log('connection to the coordinator dropped and was made again: registering again');
        await this.register();
      }
      if (this.run && now - lastBeat >= heartbeatMs) {
        lastBeat = now;
        // Bounded: with the coordinator gone, an unbounded send would wait for its return.
        await this.opts.channel.send(encodeMessage({ kind: Kind.HEARTBEAT, runId: this.run.runId, heartbeat: { outstandingUnits: 0 } }), heartbeatMs).catch(() => undefined);
      }
      if (frames === undefined) {
        if (now - this.lastHeard > silentMs && now - this.lastRegister > silentMs) {
          this.log('coordinator silent: registering again');
          await this.register();
        }
        continue;
      }
      let message: Message;
      try {
        message = ahead?.message ?? decodeMessage(frames);
      } catch (err) {
        this.rejects.add('coordinator', err instanceof ProtocolError ? err.reason : 'malformed', (err as Error).message);
        continue;
      }
      this.lastHeard = now;
      try {
        if ((await this.handle(message, ahead?.unit)) === 'finished') return 'finished';
      } catch (err) {
        if (!(err instanceof ProtocolError)) throw err;
        this.rejects.add('coordinator', err.reason, `${Kind[message.envelope.kind]}: ${err.message}`);
      }
    }
    return 'stopped';
  }

  /** `decoded`: the WORK message's unit, when readAhead decoded it already. */
  private async handle(m: Message, decoded?: WorkUnit): Promise<'finished' | undefined> {
    const e = m.envelope;
    if (e.kind !== Kind.WELCOME && e.kind !== Kind.ERROR && this.run !== undefined && e.runId !== this.run.runId) {
      throw new ProtocolError('run_mismatch', `message for run ${e.runId}, this worker is in run ${this.run.runId}`);
    }
    switch (e.kind) {
      case Kind.WELCOME:
        await this.welcome(m);
        return undefined;
      case Kind.PARAMETERS: {
        const run = this.requireRun();
        // No copy: setParams copies into tensors, and every message arrives in a fresh buffer.
        run.computer.setParams(decodeParameters(m, run.parameterCount, run.dtype), e.paramVersion);
        return undefined;
      }
      case Kind.WORK: {
        const run = this.requireRun();
        if (run.computer.paramVersion !== e.paramVersion) {
          throw new ProtocolError('stale', `WORK for parameter version ${e.paramVersion}, holding ${run.computer.paramVersion}`);
        }
        const unit = decoded ?? decodeWork(m, run.config, run.timesteps);
        const sent = run.computer.compute(unit).then(async (result) => {
          this.unitsDone++;
          this.logReplay(run.computer);
          // Bounded, as a silent coordinator is: one that is gone (its run over while a backup of
          // this unit won, or dead) would hold this send, and so the loop, forever. Once
          // reconnected, the worker registers again and the coordinator hands the unit out again.
          const timeoutMs = this.opts.coordinatorTimeoutMs ?? 5000;
          await this.opts.channel.send(encodeResult(result, run.runId, run.dtype), timeoutMs).catch((err: NodeJS.ErrnoException) => {
            if (err.code !== 'EAGAIN') throw err;
            this.log(`the result of step ${unit.step} unit ${unit.unitId} could not be sent within ${timeoutMs / 1000} s (coordinator unreachable): dropped`);
          });
        }).catch((err: Error) => { this.failure ??= err; });
        // On compute threads the result is sent when it is ready, while messages keep coming;
        // in this thread, the result is read back and sent before the next message is handled,
        // but that message is read now: while a GPU computes this unit, the next one's images and
        // noise are made (the coordinator sends a worker its next unit ahead).
        if (run.computer.slots === 1) {
          await this.readAhead(run);
          await sent;
        }
        // A turn of the event loop between units: queued messages resolve receive() at once,
        // which would otherwise starve timers and the metrics server.
        await new Promise((resolve) => setImmediate(resolve));
        return undefined;
      }
      case Kind.HEARTBEAT:
        return undefined;
      case Kind.GOODBYE:
        this.log(`coordinator says goodbye: ${e.goodbye?.reason ?? ''}`);
        return 'finished';
      case Kind.ERROR:
        if (e.error?.code === ErrorCode.UNKNOWN_WORKER) {
          this.log('coordinator does not know this worker: registering again');
          await this.register();
        } else {
          this.log(`coordinator error: ${e.error?.message ?? ''}`);
        }
        return undefined;
      default:
        throw new ProtocolError('unexpected_kind', `unexpected ${Kind[e.kind]} from the coordinator`);
    }
  }

  private requireRun(): RunInfo {
    if (this.run === undefined) throw new ProtocolError('not_registered', 'no WELCOME received yet');
    return this.run;
  }

  private async welcome(m: Message): Promise<void> {
    const w = m.envelope.welcome;
    if (!w) throw new ProtocolError('malformed', 'WELCOME without body');
    let config: UNetConfig;
    try {
      config = validateConfig(JSON.parse(w.modelConfigJson ?? '') as UNetConfig);
    } catch (err) {
      throw new ProtocolError('malformed', `WELCOME model config: ${(err as Error).message}`);
    }
    const schedule = w.schedule ?? '';
    if (!isScheduleName(schedule)) throw new ProtocolError('malformed', `WELCOME schedule "${schedule}"`);
    const prediction = w.prediction ?? '';
    if (!isPredictionTarget(prediction)) throw new ProtocolError('malformed', `WELCOME prediction "${prediction}"`);
    const snrGamma = w.snrGamma ?? 0;
    if (!(snrGamma >= 0 && Number.isFinite(snrGamma))) throw new ProtocolError('malformed', `WELCOME snr_gamma ${snrGamma}`);
    const key = JSON.stringify([config, schedule, w.timesteps, prediction, snrGamma]);
    this.welcomedRunId = m.envelope.runId;
    // Heartbeats from the beacon thread meanwhile: starting compute threads takes seconds.
    this.opts.beacon?.set(encodeMessage({ kind: Kind.HEARTBEAT, runId: m.envelope.runId, heartbeat: {} }));
    if (this.run?.configKey !== key) {
      const size = parameterCount(config);
      if (size !== Number(w.parameterCount)) throw new ProtocolError('malformed', `WELCOME says ${w.parameterCount} parameters, model has ${size}`);
      await this.run?.computer.dispose();
      this.run = undefined;
      const timesteps = w.timesteps ?? 0;
      const computer = await startUnitComputer(this.opts.threads ?? 1, { backend: this.opts.backend, model: config, schedule, timesteps, prediction, snrGamma });
      this.run = { runId: m.envelope.runId, dtype: w.transportDtype ?? DType.FLOAT32, parameterCount: size, config, timesteps, configKey: key, computer };
    } else {
      this.run = { ...this.run, runId: m.envelope.runId, dtype: w.transportDtype ?? DType.FLOAT32 };
    }
    this.log(`joined run ${m.envelope.runId} as ${w.workerId} (${this.run.parameterCount} parameters)`);
  }

  /** Reads the next message if one is waiting; a unit for the current parameters is prepared. */
  private async readAhead(run: RunInfo): Promise<void> {
    if (run.computer.prepare === undefined || this.stopping) return;
    const frames = await this.opts.channel.receive(0);
    if (frames === undefined) return;
    this.ahead = { frames };
    try {
      const message = decodeMessage(frames);
      this.ahead.message = message;
      const e = message.envelope;
      if (e.kind !== Kind.WORK || e.runId !== run.runId || e.paramVersion !== run.computer.paramVersion) return;
      const unit = decodeWork(message, run.config, run.timesteps);
      this.ahead.unit = unit;
      run.computer.prepare(unit);
    } catch {
      // A malformed message is rejected, with its reason, when the loop handles it.
    }
  }

  /** Says goodbye, closes the channel and waits for the loop. Idempotent. */
  stop(reason = 'stopping'): Promise<void> {
    this.stopped ??= (async () => {
      this.stopping = true;
      // After the coordinator's own goodbye there is no one to tell; otherwise try for a second
      // (bounded even behind a RESULT that waits for a coordinator that is gone: ClientChannel.send).
      if (this.welcomedRunId !== undefined && reason !== 'finished') {
        const said = await this.opts.channel.send(encodeMessage({ kind: Kind.GOODBYE, runId: this.welcomedRunId, goodbye: { reason } }), 1000).then(() => true, () => false);
        // A send resolves once libzmq has the message, not once it is on the wire, and a process
        // that exits right after closing may lose it (zeromq/libzmq#1264): the coordinator would
        // then wait --worker-timeout to call this worker silent. Give its I/O thread a moment.
        if (said) await new Promise((resolve) => setTimeout(resolve, GOODBYE_SETTLE_MS));
      }
      await this.opts.beacon?.stop();
      this.opts.channel.close();
      await this.loop?.catch(() => undefined);
      await this.run?.computer.dispose();
    })();
    return this.stopped;
  }
}
