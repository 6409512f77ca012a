/** The --metrics-port/--metrics-host options of `ddpm coordinator`, `train` and `worker`, and serving them. */
import type { Argv } from 'yargs';
import { HttpServer, Route } from './httpServer';
import { UsageError } from '../cli/errors';

export interface MetricsArgs {
  'metrics-port': number;
  'metrics-host': string;
}

export function withMetricsOptions<T>(y: Argv<T>, defaults: { port: number; host: string }) {
  return y
    .option('metrics-port', { type: 'number', default: defaults.port, describe: 'HTTP port for /metrics, /healthz, /readyz (and the status page at / on the coordinator); 0: off' })
    .option('metrics-host', { type: 'string', default: defaults.host, describe: 'address the metrics port listens on' });
}

export interface Serving {
  /** The port listened on; undefined when --metrics-port is 0. */
  port?: number;
  close(): Promise<void>;
}

/** Serves `routes` per the options; a port in use or a bad host is the user's to fix. */
export async function serveMetrics(a: MetricsArgs, routes: Record<string, Route>, log: (line: string) => void): Promise<Serving> {
  const port = a['metrics-port'];
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError(`--metrics-port must be an integer in 0..65535, got ${port}`);
  if (port === 0) return { close: async () => undefined };
  const server = new HttpServer(routes);
  let bound: number;
  try {
    bound = await server.listen(port, a['metrics-host']);
  } catch (err) {
    throw new UsageError(`cannot serve metrics on ${a['metrics-host']}:${port}: ${(err as Error).message} (another --metrics-port, or 0 to turn it off)`);
  }
  log(`metrics: http://${a['metrics-host']}:${bound}/metrics`);
  return { port: bound, close: () => server.close() };
}
