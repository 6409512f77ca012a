/**
 * CurveZMQ (RELIABILITY.md 14): with CURVE on, only an allow-listed client holding the right
 * server key gets a message in or out; plaintext clients, wrong server keys and unlisted keys get
 * nothing through. Real ZmqServer/ZmqClient sockets on loopback; everything closed after each test.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import yargs from 'yargs';
import * as zmq from 'zeromq';
import { HandshakeFailure, ZmqClient, ZmqClientOptions, ZmqServer, ZmqServerOptions } from '../src/transport/zmq';
import { Incoming } from '../src/transport/channel';
import {
  CurveKeyError, curvePublicKey, loadCurveClientConfig, loadCurveServerConfig, readAllowList, readCurveKeyFile, z85Decode, z85Encode,
} from '../src/transport/curve';
import { ZapHandler } from '../src/transport/zap';
import { curveClientFromArgs, curveServerFromArgs, keygenCommand } from '../src/cli/keygenCommand';
import { UsageError } from '../src/cli/errors';
import { waitFor } from './helpers/cli';

/** How long a refused client is given to get anything through. */
const QUIET_MS = 1500;

let dir: string;
const open: { close(): void }[] = [];

beforeEach(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ddpm-curve-')); });
afterEach(() => {
  while (open.length > 0) open.pop()!.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

const FAST = { lingerMs: 0, heartbeatMs: 500 };

async function server(opts: ZmqServerOptions = {}): Promise<{ server: ZmqServer; endpoint: string }> {
  const s = new ZmqServer({ ...FAST, ...opts });
  open.push(s);
  await s.bind('tcp://127.0.0.1:*');
  return { server: s, endpoint: s.endpoint as string };
}

function client(id: string, endpoint: string, opts: ZmqClientOptions = {}): ZmqClient {
  const c = new ZmqClient(id, { ...FAST, ...opts });
  open.push(c);
  c.connect(endpoint);
  return c;
}

/** A receive that timed out stays pending (one per socket at a time): the next wait reuses it. */
const pendingReceive = new Map<ZmqServer, Promise<Incoming | undefined>>();

/** The server's next message, or undefined after `ms`. */
function receiveWithin(s: ZmqServer, ms: number): Promise<Incoming | undefined> {
  let next = pendingReceive.get(s);
  if (!next) {
    next = s.receive().finally(() => pendingReceive.delete(s));
    pendingReceive.set(s, next);
  }
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    next,
    new Promise<undefined>((resolve) => { timer = setTimeout(() => resolve(undefined), ms); }),
  ]).finally(() => clearTimeout(timer));
}

/** Both directions work: the client's message arrives, and the server's answer comes back. */
async function expectExchange(s: ZmqServer, c: ZmqClient, id: string): Promise<void> {
  await c.send([Buffer.from('hello'), Buffer.from([1, 2, 3])], 5000);
  const got = await receiveWithin(s, 5000);
  expect(got?.peer).toBe(id);
  expect(got?.frames.map((f) => f.toString('hex'))).toEqual([Buffer.from('hello').toString('hex'), '010203']);
  await s.send(id, [Buffer.from('welcome')]);
  const back = await c.receive(5000);
  expect(back?.map((f) => f.toString())).toEqual(['welcome']);
}

/** Nothing gets through in either direction within QUIET_MS. */
async function expectNothingThrough(s: ZmqServer, c: ZmqClient, id: string): Promise<void> {
  const sent = c.send([Buffer.from('let me in')], QUIET_MS).then(() => 'queued', () => 'refused');
  const got = await receiveWithin(s, QUIET_MS);
  expect(got).toBeUndefined();
  // The handshake never completed, so the client could not even queue the message (ZMQ_IMMEDIATE).
  expect(await sent).toBe('refused');
  await s.send(id, [Buffer.from('secret')]); // unroutable: no such peer
  expect(await c.receive(300)).toBeUndefined();
}

describe('Z85 and keys', () => {
  it('encodes and decodes the RFC 32 test vector', () => {
    const bytes = Buffer.from([0x86, 0x4f, 0xd2, 0x6f, 0xb5, 0x59, 0xf7, 0x5b]);
    expect(z85Encode(bytes)).toBe('HelloWorld');
    expect(z85Decode('HelloWorld')).toEqual(bytes);
    expect(z85Decode('Hello')?.length).toBe(4);
    expect(z85Decode('Hell')).toBeUndefined(); // not a multiple of 5
    expect(z85Decode('Hell~')).toBeUndefined(); // '~' is not Z85
    expect(z85Decode('#####')).toBeUndefined(); // 84*(85^4+...+1) > 2^32 - 1
  });

  it('derives the public key from the secret key exactly as libzmq pairs them', () => {
    for (let i = 0; i < 20; i++) {
      const pair = zmq.curveKeyPair();
      expect(curvePublicKey(pair.secretKey)).toBe(pair.publicKey);
    }
  });
});

describe('with CURVE on', () => {
  const serverPair = zmq.curveKeyPair();
  const allowedPair = zmq.curveKeyPair();
  const curveServer = (allowed = [allowedPair.publicKey]) => ({ secretKey: serverPair.secretKey, allowedKeys: allowed });

  it('(a) an allowed client with the right server key exchanges messages both ways', async () => {
    const { server: s, endpoint } = await server({ curve: curveServer() });
    const c = client('w-allowed', endpoint, { curve: { serverKey: serverPair.publicKey, secretKey: allowedPair.secretKey } });
    await expectExchange(s, c, 'w-allowed');
    expect(s.zap?.accepted).toBeGreaterThanOrEqual(1);
    expect(s.zap?.denied).toBe(0);
  });

  it('(b) a plaintext client gets nothing in or out', async () => {
    const { server: s, endpoint } = await server({ curve: curveServer() });
    const failures: HandshakeFailure[] = [];
    const c = client('w-plain', endpoint, { onHandshakeError: (f) => failures.push(f) });
    await expectNothingThrough(s, c, 'w-plain');
    expect(s.zap?.accepted).toBe(0);
    await waitFor(() => failures.length > 0, 10_000, 'the handshake failure event');
    expect(failures[0]).toMatchObject({ kind: 'protocol', final: true });
  });

  it('(c) a client with the wrong server key gets nothing in or out', async () => {
    const { server: s, endpoint } = await server({ curve: curveServer() });
    const failures: HandshakeFailure[] = [];
    const c = client('w-wrong-server', endpoint, {
      curve: { serverKey: zmq.curveKeyPair().publicKey, secretKey: allowedPair.secretKey }, onHandshakeError: (f) => failures.push(f),
    });
    await expectNothingThrough(s, c, 'w-wrong-server');
    expect(s.zap?.accepted).toBe(0);
    await waitFor(() => failures.length > 0, 10_000, 'the handshake failure event');
    expect(failures[0]).toMatchObject({ kind: 'other', final: false });
  });

  it('(d) a client whose key is not on the allow-list gets nothing in or out, while an allowed one does', async () => {
    const decisions: string[] = [];
    const { server: s, endpoint } = await server({ curve: curveServer(), onZapDecision: (d) => decisions.push(`${d.statusCode} ${d.publicKey}`) });
    const stranger = zmq.curveKeyPair();
    const failures: HandshakeFailure[] = [];
    const bad = client('w-stranger', endpoint, {
      curve: { serverKey: serverPair.publicKey, secretKey: stranger.secretKey }, onHandshakeError: (f) => failures.push(f),
    });
    await expectNothingThrough(s, bad, 'w-stranger');
    await waitFor(() => failures.length > 0 && decisions.includes(`400 ${stranger.publicKey}`), 10_000, 'the handshake failure event and the ZAP decision');
    expect(failures[0]).toMatchObject({ kind: 'auth', status: 400, final: true });
    expect(s.zap?.denied).toBeGreaterThanOrEqual(1);
    expect(decisions).toContain(`400 ${stranger.publicKey}`);
    const good = client('w-allowed', endpoint, { curve: { serverKey: serverPair.publicKey, secretKey: allowedPair.secretKey } });
    await expectExchange(s, good, 'w-allowed');
    expect(decisions).toContain(`200 ${allowedPair.publicKey}`);
  });

  it('two servers in one process keep their own allow-lists (one shared ZAP endpoint, one domain each)', async () => {
    const otherPair = zmq.curveKeyPair();
    const a = await server({ curve: curveServer([allowedPair.publicKey]) });
    const b = await server({ curve: curveServer([otherPair.publicKey]) });
    const toB = client('w-not-for-b', b.endpoint, { curve: { serverKey: serverPair.publicKey, secretKey: allowedPair.secretKey } });
    await expectNothingThrough(b.server, toB, 'w-not-for-b');
    const toA = client('w-for-a', a.endpoint, { curve: { serverKey: serverPair.publicKey, secretKey: allowedPair.secretKey } });
    await expectExchange(a.server, toA, 'w-for-a');
    const otherToB = client('w-for-b', b.endpoint, { curve: { serverKey: serverPair.publicKey, secretKey: otherPair.secretKey } });
    await expectExchange(b.server, otherToB, 'w-for-b');
  });

  it('a ZapHandler starts and stops idempotently and can start again', async () => {
    const h = new ZapHandler({ domain: 'test-idempotent', allowedKeys: [allowedPair.publicKey] });
    await Promise.all([h.start(), h.start()]);
    await h.start();
    h.stop();
    h.stop();
    await h.start(); // rebinding the just-released inproc endpoint
    open.push({ close: () => h.stop() });
    // And a server guarded by a fresh handler still works after all that.
    const { server: s, endpoint } = await server({ curve: curveServer() });
    await expectExchange(s, client('w-again', endpoint, { curve: { serverKey: serverPair.publicKey, secretKey: allowedPair.secretKey } }), 'w-again');
  });
});

describe('with CURVE on and no ZAP handler answering', () => {
  it('refuses even an allowed key (fail closed: zapEnforceDomain)', async () => {
    const serverPair = zmq.curveKeyPair();
    const allowedPair = zmq.curveKeyPair();
    const s = new ZmqServer({ ...FAST, curve: { secretKey: serverPair.secretKey, allowedKeys: [allowedPair.publicKey] } });
    open.push(s);
    await s.socket.bind('tcp://127.0.0.1:*'); // bypasses ZmqServer.bind, which starts the handler first
    const c = client('w-unguarded', s.endpoint as string, { curve: { serverKey: serverPair.publicKey, secretKey: allowedPair.secretKey } });
    await expectNothingThrough(s, c, 'w-unguarded');
  });
});

describe('without CURVE', () => {
  it('a plaintext server and client work as before, with no ZAP handler', async () => {
    const { server: s, endpoint } = await server();
    expect(s.zap).toBeUndefined();
    expect(s.socket.securityMechanism).toBeNull();
    await expectExchange(s, client('w-plain', endpoint), 'w-plain');
  });
});

async function keygen(args: string[]): Promise<string> {
  let out = '';
  const write = jest.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => { out += chunk.toString(); return true; });
  try {
    await yargs(['keygen', ...args]).command(keygenCommand).strict().exitProcess(false)
      .fail((msg, err) => { throw err ?? new UsageError(msg); }).parseAsync();
  } finally {
    write.mockRestore();
  }
  return out;
}

describe('(e) ddpm keygen', () => {
  it('writes pairs that work end to end through the coordinator/worker flags', async () => {
    const keys = path.join(dir, 'keys');
    const printed = await keygen(['--out', keys, '--name', 'coordinator']);
    await keygen(['--out', keys, '--name', 'worker1']);
    await keygen(['--out', keys]); // default name
    expect(fs.readdirSync(keys).sort()).toEqual(['coordinator.key', 'coordinator.pub', 'ddpm.key', 'ddpm.pub', 'worker1.key', 'worker1.pub']);
    expect(fs.statSync(path.join(keys, 'coordinator.key')).mode & 0o777).toBe(0o600);
    expect(fs.statSync(path.join(keys, 'coordinator.pub')).mode & 0o777).toBe(0o644);
    const coordinatorPub = readCurveKeyFile(path.join(keys, 'coordinator.pub'), 'public');
    expect(printed).toContain(coordinatorPub);
    expect(curvePublicKey(readCurveKeyFile(path.join(keys, 'coordinator.key'), 'secret'))).toBe(coordinatorPub);

    const allow = path.join(dir, 'allowed_workers');
    fs.writeFileSync(allow, `# workers allowed in\n\n${fs.readFileSync(path.join(keys, 'worker1.pub'), 'utf8').trim()}   # worker 1\n`);
    const serverCurve = curveServerFromArgs({ 'curve-secret-key': path.join(keys, 'coordinator.key'), 'allow-keys': allow });
    const clientCurve = curveClientFromArgs({ 'curve-server-key': path.join(keys, 'coordinator.pub'), 'curve-secret-key': path.join(keys, 'worker1.key') });
    const { server: s, endpoint } = await server({ curve: serverCurve });
    await expectExchange(s, client('worker1', endpoint, { curve: clientCurve }), 'worker1');
    // The ddpm pair is not on the allow-list.
    const outsider = client('outsider', endpoint, { curve: loadCurveClientConfig(path.join(keys, 'coordinator.pub'), path.join(keys, 'ddpm.key')) });
    await expectNothingThrough(s, outsider, 'outsider');
  });

  it('refuses to overwrite an existing key file and leaves both files as they were', async () => {
    await keygen(['--out', dir, '--name', 'k']);
    const before = ['k.key', 'k.pub'].map((f) => fs.readFileSync(path.join(dir, f), 'utf8'));
    await expect(keygen(['--out', dir, '--name', 'k'])).rejects.toThrow(UsageError);
    await expect(keygen(['--out', dir, '--name', 'k'])).rejects.toThrow(/k\.key already exists; refusing to overwrite/);
    expect(['k.key', 'k.pub'].map((f) => fs.readFileSync(path.join(dir, f), 'utf8'))).toEqual(before);
    // Only the public half present: still refused, and no secret key is written beside it.
    fs.writeFileSync(path.join(dir, 'lone.pub'), 'x\n');
    await expect(keygen(['--out', dir, '--name', 'lone'])).rejects.toThrow(/lone\.pub already exists/);
    expect(fs.existsSync(path.join(dir, 'lone.key'))).toBe(false);
    await expect(keygen(['--out', dir, '--name', '../escape'])).rejects.toThrow(/key name/);
  });
});

describe('(f) key file and allow-list errors are one clear line naming the file', () => {
  const good = zmq.curveKeyPair();
  function file(name: string, text: string): string {
    const p = path.join(dir, name);
    fs.writeFileSync(p, text);
    return p;
  }
  function problem(fn: () => unknown): string {
    try {
      fn();
    } catch (err) {
      expect(err).toBeInstanceOf(CurveKeyError);
      const message = (err as Error).message;
      expect(message).not.toContain('\n');
      return message;
    }
    throw new Error('expected a CurveKeyError');
  }

  it('for a malformed allow-list', () => {
    const short = file('short', `${good.publicKey}\n${good.publicKey.slice(0, 39)}\n`);
    expect(problem(() => readAllowList(short))).toBe(`allow-list ${short}: line 2: the key has 39 characters, a Z85 CURVE key has 40`);
    const notZ85 = file('notz85', `# ok\n${good.publicKey.slice(0, 39)}~\n`);
    expect(problem(() => readAllowList(notZ85))).toBe(`allow-list ${notZ85}: line 2: the key contains "~", which is not a Z85 character`);
    const overflow = file('overflow', `${'#'.repeat(40)}\n`);
    expect(problem(() => readAllowList(overflow))).toMatch(/line 1: the key is not valid Z85/);
    const twoPerLine = file('two', `${good.publicKey} ${good.publicKey}\n`);
    expect(problem(() => readAllowList(twoPerLine))).toMatch(/two: line 1: expected one key per line/);
    const empty = file('empty', '# nobody\n\n');
    expect(problem(() => readAllowList(empty))).toMatch(/empty: holds no keys/);
    const missing = path.join(dir, 'missing');
    expect(problem(() => readAllowList(missing))).toBe(`allow-list ${missing}: cannot read: no such file`);
    // Through the coordinator's flags it is a UsageError (one line, exit 2).
    const secret = file('c.key', `${zmq.curveKeyPair().secretKey}\n`);
    expect(() => curveServerFromArgs({ 'curve-secret-key': secret, 'allow-keys': short })).toThrow(UsageError);
    expect(() => curveServerFromArgs({ 'curve-secret-key': secret, 'allow-keys': short })).toThrow(/line 2/);
  });

  it('accepts comments, blank lines, CRLF and trailing comments in an allow-list', () => {
    const other = zmq.curveKeyPair();
    const list = file('list', `#\n# workers\r\n\r\n  ${good.publicKey}  # a\r\n${other.publicKey}\n${good.publicKey}\n`);
    expect(readAllowList(list)).toEqual([good.publicKey, other.publicKey]);
  });

  it('for bad key files and flag combinations', () => {
    const twoKeys = file('two.key', `${good.secretKey}\n${good.secretKey}\n`);
    expect(problem(() => readCurveKeyFile(twoKeys, 'secret'))).toMatch(/^secret key file .*two\.key: holds 2 lines/);
    const wrongLength = file('w.key', 'abc\n');
    expect(problem(() => readCurveKeyFile(wrongLength, 'secret'))).toBe(`secret key file ${wrongLength}: the key has 3 characters, a Z85 CURVE key has 40`);
    const pub = file('c.pub', `${good.publicKey}\n`);
    const key = file('c.key', `${good.secretKey}\n`);
    expect(problem(() => loadCurveServerConfig(pub, pub))).toMatch(/is a public key file \(\.pub\); give the secret key/);
    expect(problem(() => loadCurveClientConfig(key, key))).toMatch(/is a secret key file \(\.key\); give the public key/);
    expect(() => curveServerFromArgs({ 'curve-secret-key': key })).toThrow(/--curve-secret-key needs --allow-keys/);
    expect(() => curveClientFromArgs({ 'curve-server-key': pub })).toThrow(/--curve-server-key needs --curve-secret-key/);
    expect(() => curveClientFromArgs({ 'curve-server-key': pub, 'curve-secret-key': wrongLength })).toThrow(UsageError);
    expect(curveServerFromArgs({})).toBeUndefined();
    expect(curveClientFromArgs({})).toBeUndefined();
    expect(curveClientFromArgs({ 'curve-server-key': pub, 'curve-secret-key': key })).toEqual({ serverKey: good.publicKey, secretKey: good.secretKey, publicKey: good.publicKey });
  });
});
