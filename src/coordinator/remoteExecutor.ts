/**
 * The executor over ZeroMQ workers (DESIGN.md, "Failure semantics"). Units are handed out as
 * workers ask for more (a faster worker completes more), parameters go only to workers whose
 * version is stale, a dead, silent or late worker's units go back to the queue and are
 * recomputed by others in the same step, and duplicate or stale results are dropped and counted.
 */
import { randomUUID } from 'crypto';
import { ServerChannel } from '../transport/channel';
import { DType } from '../protocol/dtypes';
import { ErrorCode, Kind, Message, ProtocolError, decodeMessage, encodeMessage } from '../protocol/messages';
import { Stamp, decodeResult, encodeParameters, encodeWork } from '../protocol/units';
import { TrainConfig } from '../training/config';
import { UnitResult } from '../training/workUnit';
import { StepWork, UnitExecutor } from './executor';
import { WorkerRecord, WorkerRegistry } from './workerRegistry';
import { NotEnoughWorkersError } from './errors';
import { UnitScheduler, UnitStart } from './unitScheduler';
import { FinishedSteps, StepLedger } from './stepLedger';
import { RejectLog } from '../protocol/rejectLog';
import { BEACON_SUFFIX } from '../transport/beacon';

export interface RemoteExecutorOptions {
  channel: ServerChannel;
  config: TrainConfig;
  parameterCount: number;
  transportDtype: DType;
  runId?: string;
  heartbeatMs?: number;
  /** A worker silent for this long is dropped and its units reassigned. */
  workerTimeoutMs?: number;
  /** A unit not returned within this long is reassigned. */
  unitDeadlineMs?: number;
  /** Units in flight per worker, so a worker never idles waiting for its next unit. */
  pipelineDepth?: number;
  /** Backup copies of a step's straggling units on idle workers (chooseBackups); default on. */
  backups?: boolean;
  log?: (line: string) => void;
  events?: ExecutorEvents;
}

export interface ExecutorEvents {
  onRejected?(reason: string): void;
  onReassigned?(units: number): void;
  onBackup?(units: number): void;
  onBytes?(direction: 'sent' | 'received', bytes: number): void;
  onWorkersChanged?(workers: WorkerRecord[]): void;
  onUnitDone?(worker: WorkerRecord, computeSeconds: number): void;
}

interface CurrentStep {
  work: StepWork;
  accept: (r: UnitResult) => boolean;
  units: StepLedger;
  paramsFrames?: Buffer[];
  resolve: () => void;
}

export class RemoteExecutor implements UnitExecutor {
  readonly runId: string;
  readonly paramsDtype: DType;
  readonly workers = new WorkerRegistry();
  private readonly rejects = new RejectLog((line) => this.log(line));
  private current: CurrentStep | undefined;
  private readonly finished = new FinishedSteps();
  private receiving: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly tickMs: number;
  private lastTick = 0;
  private closing: Promise<void> | undefined;
  private readonly heartbeatMs: number;
  private readonly workerTimeoutMs: number;
  private readonly unitDeadlineMs: number;
  private readonly scheduler: UnitScheduler;
  /** Every worker that registered in this run, dropped ones included: all are told when it ends. */
  private readonly everRegistered = new Set<string>();

  constructor(private readonly opts: RemoteExecutorOptions) {
    this.paramsDtype = opts.transportDtype;
    this.runId = opts.runId ?? randomUUID();
    this.heartbeatMs = opts.heartbeatMs ?? 1000;
    this.workerTimeoutMs = opts.workerTimeoutMs ?? 5000;
    this.unitDeadlineMs = opts.unitDeadlineMs ?? 120000;
    this.scheduler = new UnitScheduler(opts.pipelineDepth ?? 2, (line) => this.log(line));
    this.tickMs = Math.min(250, this.heartbeatMs);
  }

  private log(line: string): void {
    this.opts.log?.(line);
  }

  async start(): Promise<void> {
    if (this.receiving) return;
    this.receiving = this.receiveLoop();
    this.lastTick = Date.now();
    this.timer = setInterval(() => this.tick(), this.tickMs);
  }

  workerCount(): number {
    return this.workers.size;
  }

  /** Resolves once `n` workers are attached; rejects after `timeoutMs`. */
  async waitForWorkers(n: number, timeoutMs: number): Promise<void> {
    if (!(await this.workers.waitForSize(n, timeoutMs))) throw new NotEnoughWorkersError(`only ${this.workers.size} of --min-workers ${n} workers attached after ${timeoutMs / 1000} s`);
  }

  run(work: StepWork, accept: (r: UnitResult) => boolean): Promise<void> {
    return new Promise<void>((resolve) => {
      const cur: CurrentStep = { work, accept, units: new StepLedger(work.units.map((u) => u.unitId)), resolve };
      this.current = cur;
      const due = this.scheduler.beginStep(this.workers.all());
      this.dispatch();
      for (const { worker, unitId } of this.scheduler.copies(due, cur.units)) this.assign(cur, worker, unitId, true);
    });
  }

  cancel(): void {
    const cur = this.current;
    if (!cur) return;
    this.current = undefined;
    for (const w of this.workers.all()) w.outstanding.clear();
    cur.resolve();
  }

  private stamp(): Stamp {
    const w = (this.current as CurrentStep).work;
    return { runId: this.runId, step: w.step, paramVersion: w.paramVersion };
  }

  private send(worker: WorkerRecord, frames: Buffer[]): void {
    this.opts.events?.onBytes?.('sent', frames.reduce((n, f) => n + f.byteLength, 0));
    this.opts.channel.send(worker.id, frames).catch((err) => this.log(`send to ${worker.name} failed: ${(err as Error).message}`));
  }

  /** Hands queued units out until none is left or the best worker for the next one is busy; then
   * backs up stragglers on idle workers. */
  private dispatch(): void {
    const cur = this.current;
    if (!cur) return;
    const { queue } = cur.units;
    while (queue.length > 0) {
      const worker = this.scheduler.next(this.workers.all(), Date.now());
      if (worker === undefined) return;
      this.assign(cur, worker, queue.shift() as number);
    }
    if (this.opts.backups === false) return;
    const backups = cur.units.chooseBackups(this.workers.all(), Date.now());
    for (const { unitId, worker } of backups) {
      const start = cur.units.startOf(unitId) as UnitStart;
      const straggler = this.workers.get(start.worker)?.name ?? start.worker;
      this.log(`step ${cur.work.step}: unit ${unitId} on ${straggler} is ${((Date.now() - start.at) / 1000).toFixed(1)} s in (expected ${((start.expectedMs ?? 0) / 1000).toFixed(1)} s): backup on ${worker.name}`);
      this.assign(cur, worker, unitId);
    }
    if (backups.length > 0) this.opts.events?.onBackup?.(backups.length);
  }

  /** Sends `w` unit `unitId` (a `copy` to measure it by: UnitScheduler.copies), and the step's
   * parameters first if it lacks them. */
  private assign(cur: CurrentStep, w: WorkerRecord, unitId: number, copy = false): void {
    const image: [number, number, number] = [this.opts.config.model.imageSize, this.opts.config.model.imageSize, this.opts.config.model.imageChannels];
    if (w.paramVersion !== cur.work.paramVersion) {
      cur.paramsFrames ??= encodeParameters(cur.work.params, this.stamp(), this.opts.transportDtype, cur.work.paramsFrame);
      this.send(w, cur.paramsFrames);
      w.paramVersion = cur.work.paramVersion;
    }
    const now = Date.now();
    cur.units.give(unitId, w.id, now, this.scheduler.given(w, now, copy), copy);
    w.outstanding.set(unitId, now + this.unitDeadlineMs);
    this.send(w, encodeWork(cur.work.units[unitId], this.stamp(), this.unitDeadlineMs, image));
  }

  private requeue(worker: WorkerRecord, why: string): void {
    const cur = this.current;
    const units = [...worker.outstanding.keys()];
    worker.outstanding.clear();
    if (!cur || units.length === 0) return;
    const lost = cur.units.requeue(units, (u) => this.workers.all().filter((o) => o !== worker && o.outstanding.has(u)).map((o) => o.id));
    if (lost.length > 0) {
      this.opts.events?.onReassigned?.(lost.length);
      this.log(`reassigning ${lost.length} unit(s) of ${worker.name}: ${why}`);
    }
  }

  private dropWorker(worker: WorkerRecord, why: string): void {
    this.workers.remove(worker.id);
    this.log(`worker ${worker.name} dropped: ${why}`);
    this.requeue(worker, why);
    this.opts.events?.onWorkersChanged?.(this.workers.all());
  }

  private tick(): void {
    const now = Date.now();
    // A late tick: this process was not running its event loop (stopped, paused, starved), so
    // the workers' messages since are still queued. Without this, a coordinator resumed after
    // a pause longer than --worker-timeout dropped every worker as silent.
    const deaf = now - this.lastTick - this.tickMs;
    this.lastTick = now;
    if (deaf > 0) {
      this.workers.excuse(deaf);
      this.current?.units.excuse(deaf);
    }
    for (const w of this.workers.all()) {
      if (now - w.lastSeen > this.workerTimeoutMs) {
        this.dropWorker(w, `silent for ${((now - w.lastSeen) / 1000).toFixed(1)} s`);
        continue;
      }
      const late = [...w.outstanding.values()].some((deadline) => deadline < now);
      if (late) {
        this.scheduler.missedDeadline(w, this.unitDeadlineMs / 1000);
        this.dropWorker(w, 'missed a unit deadline');
        continue;
      }
      this.send(w, encodeMessage({ kind: Kind.HEARTBEAT, runId: this.runId, heartbeat: {} }));
    }
    this.dispatch();
  }

  /** Rejections so far, by reason. */
  get rejected(): ReadonlyMap<string, number> {
    return this.rejects.counts;
  }

  private reject(peer: string, reason: string, detail: string): void {
    this.rejects.add(peer, reason, detail);
    this.opts.events?.onRejected?.(reason);
  }

  private async receiveLoop(): Promise<void> {
    for (;;) {
      const incoming = await this.opts.channel.receive();
      if (incoming === undefined) return;
      this.opts.events?.onBytes?.('received', incoming.frames.reduce((n, f) => n + f.byteLength, 0));
      let message: Message;
      try {
        message = decodeMessage(incoming.frames);
      } catch (err) {
        this.reject(incoming.peer, err instanceof ProtocolError ? err.reason : 'malformed', (err as Error).message);
        continue;
      }
      try {
        this.handle(incoming.peer, message);
      } catch (err) {
        if (!(err instanceof ProtocolError)) throw err;
        this.reject(incoming.peer, err.reason, err.message);
      }
    }
  }

  private handle(peer: string, m: Message): void {
    const e = m.envelope;
    if (peer.endsWith(BEACON_SUFFIX)) return this.beacon(peer.slice(0, -BEACON_SUFFIX.length), m);
    if (e.kind === Kind.REGISTER) return this.register(peer, m);
    const worker = this.workers.get(peer);
    if (worker === undefined) {
      this.opts.channel.send(peer, encodeMessage({ kind: Kind.ERROR, runId: this.runId, error: { code: ErrorCode.UNKNOWN_WORKER, message: 'register first' } })).catch(() => undefined);
      throw new ProtocolError('unknown_worker', `${Kind[e.kind]} from a worker that is not registered`);
    }
    if (e.runId !== this.runId) throw new ProtocolError('run_mismatch', `run id ${e.runId}`);
    worker.lastSeen = Date.now();
    switch (e.kind) {
      case Kind.HEARTBEAT:
        return;
      case Kind.RESULT:
        return this.result(worker, m);
      case Kind.GOODBYE:
        this.dropWorker(worker, `left (${e.goodbye?.reason ?? ''})`);
        return;
      default:
        throw new ProtocolError('unexpected_kind', `unexpected ${Kind[e.kind]} from a worker`);
    }
  }

  /** A worker's beacon thread: heartbeats only, never answered. */
  private beacon(workerId: string, m: Message): void {
    const worker = this.workers.get(workerId);
    if (m.envelope.kind !== Kind.HEARTBEAT) throw new ProtocolError('unexpected_kind', `${Kind[m.envelope.kind]} from a beacon`);
    if (worker === undefined || m.envelope.runId !== this.runId) throw new ProtocolError('unknown_worker', 'beacon of a worker that is not registered');
    worker.lastSeen = Date.now();
  }

  private register(peer: string, m: Message): void {
    const r = m.envelope.register;
    const name = (r?.workerName ?? '').slice(0, 200);
    if (name === '' || name !== peer || name.includes('#')) throw new ProtocolError('malformed', `REGISTER name "${name}" must equal the routing id and not contain '#'`);
    // Bounded: a hostile count must not make one worker take every unit.
    const slots = Math.min(Math.max(r?.computeSlots ?? 1, 1), 256);
    const { record, replaced } = this.workers.add(peer, name, (r?.backend ?? '?').slice(0, 40), Date.now(), slots);
    this.everRegistered.add(peer);
    this.scheduler.attached(record);
    if (replaced) this.requeue(replaced, 'worker re-registered');
    const c = this.opts.config;
    this.send(record, encodeMessage({
      kind: Kind.WELCOME, runId: this.runId,
      welcome: {
        workerId: record.id, modelConfigJson: JSON.stringify(c.model), schedule: c.schedule, timesteps: c.timesteps, prediction: c.prediction, snrGamma: c.snrGamma,
        transportDtype: this.opts.transportDtype, heartbeatMs: this.heartbeatMs, parameterCount: this.opts.parameterCount,
      },
    }));
    this.log(`worker ${name} attached (${record.backend}${slots > 1 ? `, ${slots} threads` : ''})${replaced ? ', taking over its previous identity' : ''}; ${this.workers.size} worker(s)`);
    this.opts.events?.onWorkersChanged?.(this.workers.all());
    this.dispatch();
  }

  private result(worker: WorkerRecord, m: Message): void {
    const cur = this.current;
    const e = m.envelope;
    if (!cur || e.step !== cur.work.step || e.paramVersion !== cur.work.paramVersion) {
      const late = this.finished.lateResult(e.step, e.paramVersion, e.unitIds[0]);
      // The slower copy of a backed-up unit: expected, not an error.
      if (late === 'slower copy') return this.slowerCopy(worker, m);
      throw new ProtocolError(late, late === 'duplicate' ? `result for finished step ${e.step}` : `result for step ${e.step} version ${e.paramVersion}`);
    }
    const unitId = e.unitIds[0];
    if (!cur.units.wasGiven(unitId, worker.id)) throw new ProtocolError('not_assigned', `unit ${unitId} was not given to ${worker.name}`);
    worker.progressAt = Date.now();
    if (cur.units.isDone(unitId)) {
      worker.outstanding.delete(unitId);
      if (cur.units.hasCopy(unitId)) return this.slowerCopy(worker, m);
      throw new ProtocolError('duplicate', `unit ${unitId} already reduced`);
    }
    const result = decodeResult(m, this.opts.parameterCount, this.opts.transportDtype);
    const unit = cur.work.units[unitId];
    if (result.count !== unit.count) throw new ProtocolError('malformed', `unit ${unitId} has ${unit.count} examples, result says ${result.count}`);
    worker.outstanding.delete(unitId);
    if (!cur.accept(result)) throw new ProtocolError('duplicate', `unit ${unitId} already reduced`);
    cur.units.markDone(unitId);
    if (cur.units.hasCopy(unitId)) this.settleCopies(cur, unitId, worker);
    worker.unitsDone++;
    worker.computeSeconds += result.computeSeconds;
    this.scheduler.measured(worker, result.computeSeconds);
    this.opts.events?.onUnitDone?.(worker, result.computeSeconds);
    if (cur.units.complete) {
      this.current = undefined;
      this.finished.add(cur.work.step, cur.work.paramVersion, cur.units);
      cur.resolve();
      return;
    }
    this.dispatch();
  }

  /** The slower copy of a backed-up unit is dropped, but its compute time is a measurement of the
   * worker like any other (the only one of a worker measured again on a copy that lost). */
  private slowerCopy(worker: WorkerRecord, m: Message): void {
    const seconds = m.envelope.result?.computeSeconds;
    if (typeof seconds === 'number' && Number.isFinite(seconds)) this.scheduler.measured(worker, seconds);
  }

  /** A unit with another copy is reduced: the other copy's worker no longer owes it, nor is late
   * for it; if a backup won, the unit's first worker is measured by it (lostToBackup). */
  private settleCopies(cur: CurrentStep, unitId: number, winner: WorkerRecord): void {
    for (const w of this.workers.all()) w.outstanding.delete(unitId);
    if (!cur.units.backedUp.has(unitId)) return;
    const start = cur.units.startOf(unitId) as UnitStart;
    const first = this.workers.get(start.worker);
    if (first === undefined || first === winner) return;
    this.scheduler.lostToBackup(first, start.at, Date.now());
  }

  /** Tells every worker the run is over and closes the channel. Idempotent. */
  stop(reason = 'run over'): Promise<void> {
    this.closing ??= (async () => {
      if (this.timer) clearInterval(this.timer);
      await Promise.all([...this.everRegistered].map((id) =>
        this.opts.channel.send(id, encodeMessage({ kind: Kind.GOODBYE, runId: this.runId, goodbye: { reason } })).catch(() => undefined)));
      // libzmq can drop messages queued just before close despite the linger (zeromq/libzmq#1264):
      // give the goodbyes time to leave, or until every worker has said goodbye back.
      const drainUntil = Date.now() + 500;
      while (this.workers.size > 0 && Date.now() < drainUntil) await new Promise((r) => setTimeout(r, 20));
      this.opts.channel.close();
      await this.receiving;
    })();
    return this.closing;
  }
}
