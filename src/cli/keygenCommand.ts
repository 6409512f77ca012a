/**
 * `ddpm keygen`: write a CurveZMQ key pair; and the CURVE flags of `ddpm coordinator` and
 * `ddpm worker`, turned into transport options (key file errors become UsageErrors: one line, exit 2).
 *
 * Files: DIR/NAME.key (secret, 0600) and DIR/NAME.pub (public), Z85 text (see transport/curve.ts).
 * The coordinator gets its .key and an allow-list of worker .pub keys; a worker gets the
 * coordinator's .pub and its own .key (its public key is derived from the secret key).
 */
import type { Argv, CommandModule } from 'yargs';
import { UsageError } from './errors';
import { CurveClientConfig, CurveKeyError, CurveServerConfig, loadCurveClientConfig, loadCurveServerConfig, writeCurveKeyPair } from '../transport/curve';
import type { ZapDecision } from '../transport/zap';

interface KeygenArgs {
  out: string;
  name: string;
}

function asUsageError(err: unknown): never {
  if (err instanceof CurveKeyError) throw new UsageError(err.message);
  throw err;
}

export const keygenCommand: CommandModule<object, KeygenArgs> = {
  command: 'keygen',
  describe: 'write a CurveZMQ key pair: DIR/NAME.key (secret, mode 0600) and DIR/NAME.pub',
  builder: (y) => y
    .option('out', { type: 'string', demandOption: true, describe: 'directory for the key files (created if missing)' })
    .option('name', { type: 'string', default: 'ddpm', describe: 'file name stem: NAME.key and NAME.pub' }) as never,
  handler: (a) => {
    let files;
    try {
      files = writeCurveKeyPair(a.out, a.name);
    } catch (err) {
      asUsageError(err);
    }
    process.stdout.write(`secret key: ${files.secretFile} (keep it private)\n`);
    process.stdout.write(`public key: ${files.publicFile}\n`);
    process.stdout.write(`${files.publicKey}\n`);
  },
};

export interface CurveServerArgs {
  'curve-secret-key'?: string;
  'allow-keys'?: string;
}

export interface CurveClientArgs {
  'curve-server-key'?: string;
  'curve-secret-key'?: string;
}

/** `ddpm coordinator`'s CURVE flags. */
export function withCurveServerOptions<T>(y: Argv<T>) {
  return y
    .option('curve-secret-key', { type: 'string', describe: 'CurveZMQ: the coordinator\'s secret key file (from ddpm keygen); needs --allow-keys' })
    .option('allow-keys', { type: 'string', describe: 'CurveZMQ: file of worker public keys allowed in, one Z85 key per line (# comments)' });
}

/** `ddpm worker`'s CURVE flags. */
export function withCurveClientOptions<T>(y: Argv<T>) {
  return y
    .option('curve-server-key', { type: 'string', describe: 'CurveZMQ: the coordinator\'s public key file (.pub); needs --curve-secret-key' })
    .option('curve-secret-key', { type: 'string', describe: 'CurveZMQ: this worker\'s secret key file (.key); its .pub goes on the coordinator\'s --allow-keys' });
}

/** The coordinator's CURVE settings, or undefined when the flags are absent (plaintext). */
export function curveServerFromArgs(a: CurveServerArgs): CurveServerConfig | undefined {
  const secret = a['curve-secret-key'];
  const allow = a['allow-keys'];
  if (secret === undefined && allow === undefined) return undefined;
  if (secret === undefined) throw new UsageError('--allow-keys needs --curve-secret-key (the coordinator\'s secret key)');
  if (allow === undefined) throw new UsageError('--curve-secret-key needs --allow-keys (the workers\' public keys)');
  try {
    return loadCurveServerConfig(secret, allow);
  } catch (err) {
    asUsageError(err);
  }
}

/** A worker's CURVE settings, or undefined when the flags are absent (plaintext). */
export function curveClientFromArgs(a: CurveClientArgs): CurveClientConfig | undefined {
  const server = a['curve-server-key'];
  const secret = a['curve-secret-key'];
  if (server === undefined && secret === undefined) return undefined;
  if (server === undefined) throw new UsageError('--curve-secret-key needs --curve-server-key (the coordinator\'s public key)');
  if (secret === undefined) throw new UsageError('--curve-server-key needs --curve-secret-key (this worker\'s secret key)');
  try {
    return loadCurveClientConfig(server, secret);
  } catch (err) {
    asUsageError(err);
  }
}

/** A ZAP decision logger that reports each refused key/address pair once, not every reconnect. */
export function zapRefusalLogger(log: (line: string) => void): (decision: ZapDecision) => void {
  const seen = new Set<string>();
  return (d) => {
    if (d.allowed) return;
    const key = `${d.publicKey ?? '-'}@${d.address}`;
    if (seen.has(key)) return;
    if (seen.size < 10_000) seen.add(key);
    log(`coordinator: refused a ${d.mechanism} client from ${d.address || '?'}${d.identity ? ` (id ${d.identity})` : ''}` +
      `${d.publicKey ? ` with key ${d.publicKey}` : ''}: ${d.reason}`);
  };
}
