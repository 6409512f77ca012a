/**
 * The product's training loop against fixed-delay worker processes: Coordinator (planning,
 * ordered reduction, mean, clip, Adam, EMA) over RemoteExecutor over ZmqServer on loopback,
 * exactly as `ddpm coordinator` runs it, with the bench pool's children as workers.
 * Used by the scaling and the overhead benchmarks; optional probes time the loop's phases
 * from outside (wrapped channel and executor), without touching src/.
 */
import { performance } from 'perf_hooks';
import { Coordinator, StepReport } from '../../src/coordinator/coordinator';
import { RemoteExecutor } from '../../src/coordinator/remoteExecutor';
import { StepWork, UnitExecutor } from '../../src/coordinator/executor';
import { ServerChannel } from '../../src/transport/channel';
import { ZmqServer } from '../../src/transport/zmq';
import { DType } from '../../src/protocol/dtypes';
import { ddpm } from '../../src/protocol/generated/ddpm';
import { TRAIN_DEFAULTS, TrainConfig } from '../../src/training/config';
import { presetConfig } from '../../src/model/config';
import { parameterCount } from '../../src/model/paramSpecs';
import { UnitResult } from '../../src/training/workUnit';
import { Child, now, syntheticDataset } from './common';

export interface LoopOptions {
  preset: string;
  workers: number;
  /** Units in each step (the global batch is units x unitSize examples). */
  units: number;
  unitSize: number;
  delayMs: number;
  warmupSteps: number;
  steps: number;
  dtype: DType;
  pipelineDepth?: number;
  /** Time the loop's phases (costs a few microseconds per message). */
  probe?: boolean;
  /** The coordinator's update threads (default 1). */
  updateThreads?: number;
  /** Backup copies of straggling units (the product's default: on). */
  backups?: boolean;
  /** The first worker is a straggler: every `every`-th unit takes `factor` times the delay, or
   * every unit begun in a spell of `spell.seconds` from its `spell.afterUnits`-th unit on. */
  straggler?: { every?: number; factor: number; spell?: { afterUnits: number; seconds: number } };
}

/** Per measured step: what the coordinator's thread spent on each part of the step. */
export interface StepPhases {
  /** Wall time of the step, from the previous step's end (onStep) to this one's. */
  stepSeconds: number;
  /** Longest fixed delay (worker "compute") among this step's units. */
  maxComputeSeconds: number;
  /** runStep before executor.run: planning the batch and copying its pixels into units. */
  planSeconds: number;
  /** executor.run's synchronous part: dispatch, encodeParameters (one copy) and queueing every send. */
  dispatchSeconds: number;
  /** Handling RESULT messages other than the accept callback: decodeMessage, decodeResult
   * (finiteness pass over the gradient), bookkeeping, further dispatch. */
  receiveDecodeSeconds: number;
  /** The accept callback: OrderedReducer.add (the float64 running sum). */
  reduceSeconds: number;
  /** From the executor's resolve to onStep: OrderedReducer.finish (mean) and applyUpdate
   * (global norm, clip, Adam, EMA). */
  updateSeconds: number;
  /** Event-loop busy time of the coordinator's thread over the step (all of the above and the rest). */
  busySeconds: number;
  /** Process CPU time (all threads: ZeroMQ's I/O thread included) over the step. */
  cpuSeconds: number;
}

export interface LoopResult {
  preset: string;
  parameterCount: number;
  workers: number;
  units: number;
  delayMs: number;
  steps: number;
  seconds: number;
  stepsPerSecond: number;
  stepSeconds: number[];
  maxComputeSeconds: number[];
  /** Bytes the coordinator sent and received per measured step (all frames, all workers). */
  bytesSentPerStep: number;
  bytesReceivedPerStep: number;
  reassigned: number;
  rejected: number;
  backups: number;
  /** Mean time a worker spent decoding one PARAMETERS message (decode, finiteness check, copy). */
  workerParamDecodeSeconds: number;
  phases?: StepPhases[];
}

class Probe {
  receiveResolvedAt = 0;
  handling = 0;
  accept = 0;
  dispatch = 0;
  runCalledAt = 0;
  runDoneAt = 0;
  resultMessages = 0;

  reset(): void {
    this.handling = 0;
    this.accept = 0;
    this.dispatch = 0;
    this.resultMessages = 0;
  }

  /** The channel as the executor sees it; time from a RESULT's arrival to the next receive() is
   * the executor's synchronous handling of it (its receive loop does nothing else in between). */
  channel(inner: ServerChannel): ServerChannel {
    let pendingResult = false;
    return {
      send: (peer, frames) => inner.send(peer, frames),
      receive: async () => {
        if (pendingResult) {
          this.handling += now() - this.receiveResolvedAt;
          pendingResult = false;
        }
        const m = await inner.receive();
        if (m && m.frames.length > 1) {
          let kind = -1;
          try {
            kind = ddpm.v1.Envelope.decode(m.frames[0]).kind;
          } catch {
            // the executor will reject it
          }
          if (kind === ddpm.v1.Kind.RESULT) {
            pendingResult = true;
            this.resultMessages++;
          }
        }
        this.receiveResolvedAt = now();
        return m;
      },
      close: () => inner.close(),
    };
  }

  executor(inner: RemoteExecutor): UnitExecutor {
    return {
      paramsDtype: inner.paramsDtype,
      start: () => inner.start(),
      stop: () => inner.stop(),
      cancel: () => inner.cancel(),
      workerCount: () => inner.workerCount(),
      run: (work: StepWork, accept: (r: UnitResult) => boolean) => {
        this.runCalledAt = now();
        const timedAccept = (r: UnitResult) => {
          const t = now();
          const ok = accept(r);
          this.accept += now() - t;
          return ok;
        };
        const done = inner.run(work, timedAccept);
        this.dispatch += now() - this.runCalledAt;
        return done.then(() => { this.runDoneAt = now(); });
      },
    };
  }
}

/**
 * The server with close() deferred by half a second. RemoteExecutor.stop() sends every worker a
 * GOODBYE and closes the socket at once; on this machine about one configuration in three lost a
 * GOODBYE that way (despite the socket's 2 s linger), leaving a worker waiting. The delay is after
 * the measured steps, so it changes no number reported.
 */
function closeLater(server: ZmqServer): ServerChannel {
  return {
    send: (peer, frames) => server.send(peer, frames),
    receive: () => server.receive(),
    close: () => { setTimeout(() => server.close(), 500); },
  };
}

export async function runLoop(pool: Child[], o: LoopOptions): Promise<LoopResult> {
  if (pool.length < o.workers) throw new Error(`pool has ${pool.length} processes, need ${o.workers}`);
  const model = presetConfig(o.preset);
  const P = parameterCount(model);
  const config: TrainConfig = { ...TRAIN_DEFAULTS, model, batchSize: o.units * o.unitSize, unitSize: o.unitSize, steps: o.warmupSteps + o.steps };
  // The product's default linger, so the GOODBYEs sent by stop() are not dropped at close.
  const server = new ZmqServer();
  await server.bind('tcp://127.0.0.1:0');
  const probe = o.probe ? new Probe() : undefined;
  let bytesSent = 0;
  let bytesReceived = 0;
  let reassigned = 0;
  let rejected = 0;
  let backups = 0;
  let stepIndex = 0;
  const computeByStep: number[] = [];
  const executor = new RemoteExecutor({
    channel: probe ? probe.channel(closeLater(server)) : closeLater(server), config, parameterCount: P, transportDtype: o.dtype,
    // Generous failure timers: an overloaded 2-core machine must not turn a slow step into a
    // reassignment (any that happen are counted and reported).
    workerTimeoutMs: 120000, unitDeadlineMs: 600000, pipelineDepth: o.pipelineDepth, backups: o.backups,
    events: {
      onBytes: (dir, n) => { if (dir === 'sent') bytesSent += n; else bytesReceived += n; },
      onReassigned: (n) => { reassigned += n; },
      onBackup: (n) => { backups += n; },
      onRejected: () => { rejected++; },
      onUnitDone: (_w, s) => { computeByStep[stepIndex] = Math.max(computeByStep[stepIndex] ?? 0, s); },
    },
  });
  const stamps: number[] = [];
  const sentAt: number[] = [];
  const receivedAt: number[] = [];
  const phases: StepPhases[] = [];
  let elu = performance.eventLoopUtilization();
  let cpu = process.cpuUsage();
  const coordinator = new Coordinator({
    config, dataset: syntheticDataset(model.imageSize, model.imageChannels), executor: probe ? probe.executor(executor) : executor, updateThreads: o.updateThreads,
    onStep: (_r: StepReport) => {
      const t = now();
      if (probe) {
        const e = performance.eventLoopUtilization(elu);
        const c = process.cpuUsage(cpu);
        const prev = stamps.length > 0 ? stamps[stamps.length - 1] : t;
        phases.push({
          stepSeconds: t - prev, maxComputeSeconds: computeByStep[stepIndex] ?? 0, planSeconds: probe.runCalledAt - prev,
          dispatchSeconds: probe.dispatch, receiveDecodeSeconds: probe.handling - probe.accept, reduceSeconds: probe.accept,
          updateSeconds: t - probe.runDoneAt, busySeconds: e.active / 1000, cpuSeconds: (c.user + c.system) / 1e6,
        });
        probe.reset();
        elu = performance.eventLoopUtilization();
        cpu = process.cpuUsage();
      }
      stamps.push(now());
      sentAt.push(bytesSent);
      receivedAt.push(bytesReceived);
      stepIndex++;
    },
  });
  await coordinator.start();
  const workers = pool.slice(0, o.workers);
  workers.forEach((c, i) => c.send({
    cmd: 'delay-worker', endpoint: server.endpoint, name: `${c.name}`, delayMs: o.delayMs,
    ...(i === 0 && o.straggler ? { slowEvery: o.straggler.every, slowFactor: o.straggler.factor, slowSpell: o.straggler.spell } : {}),
  }));
  await executor.waitForWorkers(o.workers, 60000);
  if (probe) {
    elu = performance.eventLoopUtilization();
    cpu = process.cpuUsage();
  }
  stamps.push(now());
  sentAt.push(bytesSent);
  receivedAt.push(bytesReceived);
  await coordinator.run();
  await coordinator.stop();
  const done = await Promise.all(workers.map((c) => c.wait('done', 120000)));
  const paramMessages = done.reduce((a, d) => a + Number(d.paramMessages), 0);
  const paramDecode = done.reduce((a, d) => a + Number(d.paramDecodeSeconds), 0);
  // stamps[0] is the start; stamps[k] the end of step k.
  const first = o.warmupSteps;
  const last = o.warmupSteps + o.steps;
  const stepSeconds = stamps.slice(first + 1, last + 1).map((t, i) => t - stamps[first + i]);
  const seconds = stamps[last] - stamps[first];
  return {
    preset: o.preset, parameterCount: P, workers: o.workers, units: o.units, delayMs: o.delayMs, steps: o.steps, seconds, stepsPerSecond: o.steps / seconds,
    stepSeconds, maxComputeSeconds: computeByStep.slice(first, last),
    bytesSentPerStep: (sentAt[last] - sentAt[first]) / o.steps, bytesReceivedPerStep: (receivedAt[last] - receivedAt[first]) / o.steps, reassigned, rejected, backups,
    workerParamDecodeSeconds: paramMessages > 0 ? paramDecode / paramMessages : 0,
    phases: probe ? phases.slice(first, last) : undefined,
  };
}
