/**
 * CurveZMQ key material: Z85 text, key files, allow-lists and key pairs.
 *
 * Key file convention (what `ddpm keygen` writes and the CURVE flags read):
 * - NAME.key: the secret key, 40 Z85 characters and a newline, mode 0600.
 * - NAME.pub: the public key, the same format, mode 0644. It is what gets distributed: the
 *   coordinator's .pub to every worker (`--curve-server-key`), each worker's .pub into the
 *   coordinator's allow-list. A process never needs its own .pub: the public key is derived from
 *   the secret key (X25519 base-point multiplication, as libzmq's zmq_curve_public does).
 * - In a key file, blank lines and comment lines are ignored; the file must hold exactly one key.
 * - An allow-list holds one key per line, optionally followed by whitespace and a comment that
 *   starts with '#'. A comment line is '#' alone or '#' followed by whitespace ('#' is itself a
 *   Z85 character, so '#abc' is read as a key and then rejected if it is not one).
 */
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import * as zmq from 'zeromq';

/** A key file or allow-list that cannot be used; the message is one line naming the file. */
export class CurveKeyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CurveKeyError';
  }
}

/** The coordinator's CURVE settings. */
export interface CurveServerConfig {
  /** The server's secret key, Z85. */
  secretKey: string;
  /** Public keys (Z85) of the clients allowed in. */
  allowedKeys: string[];
  /** ZAP domain of the server socket; unique per server when omitted. */
  zapDomain?: string;
}

/** A worker's CURVE settings. */
export interface CurveClientConfig {
  /** The server's public key, Z85. */
  serverKey: string;
  /** This client's secret key, Z85. */
  secretKey: string;
  /** This client's public key, Z85; derived from `secretKey` when omitted. */
  publicKey?: string;
}

export const CURVE_KEY_BYTES = 32;
export const CURVE_KEY_Z85_LENGTH = 40;

const Z85_ALPHABET = '0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#';
const Z85_VALUE = new Int16Array(128).fill(-1);
for (let i = 0; i < Z85_ALPHABET.length; i++) Z85_VALUE[Z85_ALPHABET.charCodeAt(i)] = i;

/** Z85 (ZeroMQ RFC 32) encoding; the length must be a multiple of 4. */
export function z85Encode(data: Uint8Array): string {
  if (data.length % 4 !== 0) throw new RangeError(`z85: ${data.length} bytes is not a multiple of 4`);
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  let out = '';
  for (let off = 0; off < data.length; off += 4) {
    let value = view.getUint32(off, false);
    const chunk = new Array<string>(5);
    for (let i = 4; i >= 0; i--) {
      chunk[i] = Z85_ALPHABET[value % 85];
      value = Math.floor(value / 85);
    }
    out += chunk.join('');
  }
  return out;
}

/** Z85 decoding; undefined if `text` is not Z85 (bad length, character or 32-bit overflow). */
export function z85Decode(text: string): Buffer | undefined {
  if (text.length % 5 !== 0) return undefined;
  const out = Buffer.alloc((text.length / 5) * 4);
  for (let i = 0, o = 0; i < text.length; i += 5, o += 4) {
    let value = 0;
    for (let j = 0; j < 5; j++) {
      const code = text.charCodeAt(i + j);
      const digit = code < 128 ? Z85_VALUE[code] : -1;
      if (digit < 0) return undefined;
      value = value * 85 + digit;
    }
    if (value > 0xffffffff) return undefined;
    out.writeUInt32BE(value, o);
  }
  return out;
}

/** Why `text` is not a Z85 CURVE key, or undefined if it is one. */
export function curveKeyProblem(text: string): string | undefined {
  if (text.length !== CURVE_KEY_Z85_LENGTH) return `has ${text.length} characters, a Z85 CURVE key has ${CURVE_KEY_Z85_LENGTH}`;
  const bad = [...text].find((c) => c.charCodeAt(0) >= 128 || Z85_VALUE[c.charCodeAt(0)] < 0);
  if (bad !== undefined) return `contains ${JSON.stringify(bad)}, which is not a Z85 character`;
  if (z85Decode(text) === undefined) return 'is not valid Z85 (a group of 5 characters exceeds 32 bits)';
  return undefined;
}

/** The 32 raw bytes of a Z85 CURVE key; throws CurveKeyError if it is not one. */
export function decodeCurveKey(text: string, what = 'key'): Buffer {
  const problem = curveKeyProblem(text);
  if (problem !== undefined) throw new CurveKeyError(`${what} ${problem}`);
  return z85Decode(text) as Buffer;
}

/** PKCS#8 DER prefix of a raw X25519 private key (RFC 8410). */
const X25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b656e04220420', 'hex');

/** The Z85 public key of a Z85 secret key (libzmq's zmq_curve_public, via Node's X25519). */
export function curvePublicKey(secretKey: string): string {
  const secret = decodeCurveKey(secretKey, 'secret key');
  const privateKey = crypto.createPrivateKey({ key: Buffer.concat([X25519_PKCS8_PREFIX, secret]), format: 'der', type: 'pkcs8' });
  const spki = crypto.createPublicKey(privateKey).export({ format: 'der', type: 'spki' });
  return z85Encode(spki.subarray(spki.length - CURVE_KEY_BYTES));
}

/** Throws CurveKeyError if this libzmq was built without CURVE. */
export function assertCurveAvailable(): void {
  if (!zmq.capability.curve) throw new CurveKeyError(`this libzmq (${zmq.version}) was built without CURVE support`);
}

/** A fresh key pair, Z85. */
export function generateCurveKeyPair(): { publicKey: string; secretKey: string } {
  assertCurveAvailable();
  return zmq.curveKeyPair();
}

function readText(file: string, what: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const why = e.code === 'ENOENT' ? 'no such file' : e.code === 'EACCES' ? 'permission denied' : e.code === 'EISDIR' ? 'is a directory' : e.message;
    throw new CurveKeyError(`${what} ${file}: cannot read: ${why}`);
  }
}

function isCommentLine(line: string): boolean {
  return line === '#' || /^#\s/.test(line);
}

/** Reads a key file (one Z85 key; blank and comment lines ignored) and returns the key. */
export function readCurveKeyFile(file: string, kind: 'secret' | 'public'): string {
  const what = `${kind} key file`;
  // Catch the two mix-ups that matter: a secret key handed out as a server key, or a .pub as a secret.
  if (kind === 'public' && file.endsWith('.key')) throw new CurveKeyError(`${what} ${file}: is a secret key file (.key); give the public key (.pub)`);
  if (kind === 'secret' && file.endsWith('.pub')) throw new CurveKeyError(`${what} ${file}: is a public key file (.pub); give the secret key (.key)`);
  const lines = readText(file, what).split(/\r?\n/).map((l) => l.trim()).filter((l) => l !== '' && !isCommentLine(l));
  if (lines.length === 0) throw new CurveKeyError(`${what} ${file}: holds no key`);
  if (lines.length > 1) throw new CurveKeyError(`${what} ${file}: holds ${lines.length} lines, expected one Z85 key`);
  const problem = curveKeyProblem(lines[0]);
  if (problem !== undefined) throw new CurveKeyError(`${what} ${file}: the key ${problem}`);
  return lines[0];
}

/** Reads an allow-list: one Z85 public key per line, comments allowed; at least one key. */
export function readAllowList(file: string): string[] {
  const what = 'allow-list';
  const keys: string[] = [];
  readText(file, what).split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || isCommentLine(line)) return;
    const [key, ...rest] = line.split(/\s+/);
    if (rest.length > 0 && !rest[0].startsWith('#')) {
      throw new CurveKeyError(`${what} ${file}: line ${i + 1}: expected one key per line, then optionally '# comment'`);
    }
    const problem = curveKeyProblem(key);
    if (problem !== undefined) throw new CurveKeyError(`${what} ${file}: line ${i + 1}: the key ${problem}`);
    if (!keys.includes(key)) keys.push(key);
  });
  if (keys.length === 0) throw new CurveKeyError(`${what} ${file}: holds no keys, so no worker could connect`);
  return keys;
}

/** The coordinator's CURVE settings from its secret key file and the workers' allow-list. */
export function loadCurveServerConfig(secretKeyFile: string, allowListFile: string): CurveServerConfig {
  assertCurveAvailable();
  return { secretKey: readCurveKeyFile(secretKeyFile, 'secret'), allowedKeys: readAllowList(allowListFile) };
}

/** A worker's CURVE settings from the coordinator's public key file and its own secret key file. */
export function loadCurveClientConfig(serverKeyFile: string, secretKeyFile: string): CurveClientConfig {
  assertCurveAvailable();
  const serverKey = readCurveKeyFile(serverKeyFile, 'public');
  const secretKey = readCurveKeyFile(secretKeyFile, 'secret');
  return { serverKey, secretKey, publicKey: curvePublicKey(secretKey) };
}

export interface KeyPairFiles {
  secretFile: string;
  publicFile: string;
  publicKey: string;
}

/** Key pair file paths for `name` in `dir`: DIR/NAME.key and DIR/NAME.pub. */
export function keyPairPaths(dir: string, name: string): { secretFile: string; publicFile: string } {
  return { secretFile: path.join(dir, `${name}.key`), publicFile: path.join(dir, `${name}.pub`) };
}

function writeNew(file: string, text: string, mode: number): void {
  const fd = fs.openSync(file, 'wx', mode); // 'wx': fails if the file exists, so nothing is overwritten
  try {
    fs.fchmodSync(fd, mode); // exact mode regardless of the umask
    fs.writeSync(fd, text);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Generates a key pair and writes DIR/NAME.key (0600) and DIR/NAME.pub (0644), creating DIR.
 * Refuses (CurveKeyError) if either file exists; never overwrites or leaves half a pair.
 */
export function writeCurveKeyPair(dir: string, name: string): KeyPairFiles {
  if (!/^[A-Za-z0-9_][A-Za-z0-9._-]*$/.test(name)) {
    throw new CurveKeyError(`key name ${JSON.stringify(name)}: use letters, digits, '.', '_' and '-' (not starting with '.' or '-')`);
  }
  const { secretFile, publicFile } = keyPairPaths(dir, name);
  for (const file of [secretFile, publicFile]) {
    if (fs.existsSync(file)) throw new CurveKeyError(`${file} already exists; refusing to overwrite it (remove it or pick another --name)`);
  }
  const pair = generateCurveKeyPair();
  try {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  } catch (err) {
    throw new CurveKeyError(`cannot create ${dir}: ${(err as Error).message}`);
  }
  try {
    writeNew(secretFile, `${pair.secretKey}\n`, 0o600);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new CurveKeyError(e.code === 'EEXIST' ? `${secretFile} already exists; refusing to overwrite it` : `cannot write ${secretFile}: ${e.message}`);
  }
  try {
    writeNew(publicFile, `${pair.publicKey}\n`, 0o644);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    fs.rmSync(secretFile, { force: true }); // no half pair
    throw new CurveKeyError(e.code === 'EEXIST' ? `${publicFile} already exists; refusing to overwrite it` : `cannot write ${publicFile}: ${e.message}`);
  }
  return { secretFile, publicFile, publicKey: pair.publicKey };
}
