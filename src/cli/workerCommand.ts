/** `ddpm worker`: attach this process (one backend) to a coordinator. */
import type { CommandModule } from 'yargs';
import * as os from 'os';
import { BackendName, initBackend } from '../backend/backend';
import { ZmqClient } from '../transport/zmq';
import { Worker } from '../worker/worker';
import { withBackendOption } from './options';

interface WorkerArgs {
  connect: string;
  name?: string;
  backend: string;
  'coordinator-timeout': number;
}

const log = (line: string) => process.stderr.write(`${line}\n`);

export const workerCommand: CommandModule<object, WorkerArgs> = {
  command: 'worker',
  describe: 'compute gradients for a coordinator',
  builder: (y) => withBackendOption(y)
    .option('connect', { type: 'string', demandOption: true, describe: 'coordinator address, e.g. tcp://HOST:5555' })
    .option('name', { type: 'string', describe: 'stable worker name (default HOSTNAME-PID); a returning name takes over its identity' })
    .option('coordinator-timeout', { type: 'number', default: 5, describe: 'seconds of coordinator silence before registering again' }) as never,
  handler: async (a) => {
    const name = a.name ?? `${os.hostname()}-${process.pid}`;
    const backend = await initBackend(a.backend as BackendName, log);
    log(`worker ${name}: backend ${backend}, connecting to ${a.connect}`);
    const channel = new ZmqClient(name);
    channel.connect(a.connect);
    const worker = new Worker({ name, backend, channel, log, coordinatorTimeoutMs: a['coordinator-timeout'] * 1000 });
    const onSignal = () => { void worker.stop('signal'); };
    process.once('SIGTERM', onSignal);
    process.once('SIGINT', onSignal);
    const how = await worker.start();
    await worker.stop(how);
    log(`worker ${name}: ${how === 'finished' ? 'run over' : 'stopped'} after ${worker.unitsDone} units`);
    process.exit(0);
  },
};
