/** Options and set-up shared by `ddpm coordinator` and `ddpm train --workers N`. */
import type { Argv } from 'yargs';
import { ZmqServer } from '../transport/zmq';
import { ExecutorEvents, RemoteExecutor } from '../coordinator/remoteExecutor';
import type { WorkerSource } from '../metrics/trainingTelemetry';
import { TRANSPORT_DTYPES, TransportDtype, transportDtypeCode } from '../protocol/dtypes';
import { TrainConfig } from '../training/config';
import { parameterCount } from '../model/paramSpecs';
import { log } from './trainJob';
import { UsageError } from './errors';
import type { CurveServerConfig } from '../transport/curve';
import { zapRefusalLogger } from './keygenCommand';

export interface ClusterArgs {
  'transport-dtype': string;
  'min-workers': number;
  'start-timeout': number;
  'worker-timeout': number;
  'unit-deadline': number;
  'unit-backups': boolean;
  'max-message-size': number;
}

export function withClusterOptions<T>(y: Argv<T>) {
  return y
    .option('transport-dtype', { type: 'string', choices: TRANSPORT_DTYPES, default: 'float32', describe: 'dtype of parameters and gradients on the wire' })
    .option('min-workers', { type: 'number', default: 0, describe: 'workers to wait for before the first step (0: at least one)' })
    .option('start-timeout', { type: 'number', default: 120, describe: 'seconds to wait for --min-workers' })
    .option('worker-timeout', { type: 'number', default: 5, describe: 'seconds of silence before a worker is dropped and its units reassigned' })
    .option('unit-deadline', { type: 'number', default: 300, describe: 'seconds before an unanswered work unit is reassigned' })
    .option('unit-backups', { type: 'boolean', default: true, describe: 'give a straggling unit (twice its expected time, 1 s over) a backup copy on an idle worker at a step\'s end; the first result counts (--no-unit-backups: off)' })
    .option('max-message-size', { type: 'number', default: 1 << 30, describe: 'largest accepted message in bytes' });
}

export async function startRemoteExecutor(a: ClusterArgs & { bind: string }, config: TrainConfig, events?: ExecutorEvents, curve?: CurveServerConfig): Promise<{ executor: RemoteExecutor; endpoint: string }> {
  const channel = new ZmqServer({ maxMessageSize: a['max-message-size'], curve, onZapDecision: curve ? zapRefusalLogger(log) : undefined });
  try {
    await channel.bind(a.bind);
  } catch (err) {
    channel.close();
    throw new UsageError(`cannot bind ${a.bind}: ${(err as Error).message}`);
  }
  const endpoint = channel.endpoint ?? a.bind;
  const executor = new RemoteExecutor({
    channel, config, parameterCount: parameterCount(config.model), transportDtype: transportDtypeCode(a['transport-dtype'] as TransportDtype),
    workerTimeoutMs: a['worker-timeout'] * 1000, unitDeadlineMs: a['unit-deadline'] * 1000, backups: a['unit-backups'], log, events,
  });
  await executor.start();
  log(`coordinator: listening on ${endpoint} (run ${executor.runId})${curve ? `, CurveZMQ on, ${curve.allowedKeys.length} worker key(s) allowed` : ''}`);
  return { executor, endpoint };
}

/** The attached workers, as metrics and the status page see them. */
export function remoteWorkerSource(executor: RemoteExecutor): WorkerSource {
  return {
    count: () => executor.workerCount(),
    rows: () => executor.workers.all().map((w) => ({ name: w.name, backend: w.backend, lastSeen: w.lastSeen, joinedAt: w.joinedAt, secondsPerUnit: w.secondsPerUnit })),
  };
}
