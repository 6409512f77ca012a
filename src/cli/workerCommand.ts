/** `ddpm worker`: attach this process (one backend) to a coordinator. */
import type { CommandModule } from 'yargs';
import * as os from 'os';
import { BackendName, initBackend } from '../backend/backend';
import { ZmqClient } from '../transport/zmq';
import { Worker } from '../worker/worker';
import { checkEndpoint, withBackendOption } from './options';
import { MetricsArgs, serveMetrics, withMetricsOptions } from '../metrics/cliOptions';
import { WorkerMetrics } from '../metrics/workerMetrics';
import { CurveClientArgs, curveClientFromArgs, withCurveClientOptions } from './keygenCommand';
import { EXIT_USER_ERROR, UsageError } from './errors';
import { availableCores, resolveComputeThreads } from './localWorkers';

interface WorkerArgs extends MetricsArgs, CurveClientArgs {
  connect: string;
  name?: string;
  backend: string;
  threads: string;
  'coordinator-timeout': number;
}

const log = (line: string) => process.stderr.write(`${line}\n`);

export const workerCommand: CommandModule<object, WorkerArgs> = {
  command: 'worker',
  describe: 'compute gradients for a coordinator',
  // Several workers may share a machine: metrics only on request (a port each).
  builder: (y) => withCurveClientOptions(withMetricsOptions(withBackendOption(y), { port: 0, host: '0.0.0.0' }))
    .option('connect', { type: 'string', demandOption: true, describe: 'coordinator address, e.g. tcp://HOST:5555' })
    .option('name', { type: 'string', describe: 'stable worker name (default HOSTNAME-PID); a returning name takes over its identity' })
    .option('threads', { type: 'string', default: 'auto', describe: 'units computed at once, one per thread; auto: one per core on wasm/cpu (which compute on one core per thread), 1 on tensorflow/webgpu' })
    .option('coordinator-timeout', { type: 'number', default: 5, describe: 'seconds of coordinator silence before registering again' }) as never,
  handler: async (a) => {
    checkEndpoint(a.connect, 'connect');
    const curve = curveClientFromArgs(a);
    const name = a.name ?? `${os.hostname()}-${process.pid}`;
    if (name.includes('#')) throw new UsageError(`--name "${name}" must not contain '#' (reserved for the beacon's routing id)`);
    let worker: Worker | undefined;
    const metrics = new WorkerMetrics(() => worker?.unitsDone ?? 0);
    const serving = await serveMetrics(a, metrics.routes(), log);
    const backend = await initBackend(a.backend as BackendName, log);
    const threads = resolveComputeThreads(a.threads, backend, availableCores());
    log(`worker ${name}: backend ${backend}${threads > 1 ? ` on ${threads} threads` : ''}, connecting to ${a.connect}${curve ? ` with CurveZMQ (public key ${curve.publicKey})` : ''}`);
    let refused = false;
    const channel = new ZmqClient(name, {
      curve,
      onHandshakeError: (f) => {
        log(`worker ${name}: security handshake with ${f.address} failed: ${f.kind === 'auth'
          ? `the coordinator refused this worker's key${curve ? ` (add ${curve.publicKey} to its --allow-keys)` : ''}`
          : f.kind === 'protocol' ? 'the coordinator and this worker disagree on CurveZMQ (one side is plaintext)'
            : `${f.message} (is --curve-server-key the coordinator's public key?)`}`);
        // libzmq does not reconnect after these: exit instead of waiting forever.
        if (f.final) { refused = true; void worker?.stop('refused'); }
      },
    });
    channel.connect(a.connect);
    worker = new Worker({
      name, backend, threads, channel: metrics.observe(channel), log, coordinatorTimeoutMs: a['coordinator-timeout'] * 1000, beacon: channel.startBeacon(1000),
    });
    const running = worker;
    const onSignal = () => { metrics.stopping = true; void running.stop('signal'); };
    process.once('SIGTERM', onSignal);
    process.once('SIGINT', onSignal);
    if (process.channel) {
      // Started by `ddpm train` (localWorkers.ts): its death closes this channel.
      process.channel.unref();
      process.once('disconnect', () => {
        log(`worker ${name}: the ddpm process that started it is gone: stopping`);
        onSignal();
      });
    }
    let how: 'finished' | 'stopped' | 'failed';
    try {
      how = await worker.start();
    } catch (err) {
      // E.g. a compute thread died: say goodbye, so the coordinator hands its units out at once.
      log(`worker ${name}: ${(err as Error).message}`);
      how = 'failed';
    }
    metrics.stopping = true;
    await worker.stop(how);
    await serving.close();
    log(`worker ${name}: ${how === 'finished' ? 'run over' : how} after ${worker.unitsDone} units`);
    process.exit(refused ? EXIT_USER_ERROR : how === 'failed' ? 1 : 0);
  },
};
