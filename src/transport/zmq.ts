/**
 * ZeroMQ channels: the coordinator binds a ROUTER, workers connect DEALERs with a stable routing
 * id. ZMTP heartbeats detect dead connections; DEALERs reconnect with exponential back-off
 * (1 s doubling to 32 s, the zguide's Paranoid Pirate values). Messages are capped in size.
 *
 * Optional CurveZMQ: the server is a CURVE server whose ZAP handler (zap.ts) admits only
 * allow-listed client keys; a plaintext client, a client with the wrong server key or an unlisted
 * key never completes the handshake, so nothing it sends reaches the server. Without `curve`
 * the sockets are plaintext, as before.
 */
import * as crypto from 'crypto';
import * as zmq from 'zeromq';
import { ClientChannel, Incoming, ServerChannel } from './channel';
import { Beacon, startBeacon } from './beacon';
import { CurveClientConfig, CurveServerConfig, assertCurveAvailable, curvePublicKey, decodeCurveKey } from './curve';
import { ZapDecision, ZapHandler } from './zap';

export interface ZmqOptions {
  /** Largest accepted message in bytes (ZMQ_MAXMSGSIZE); -1 for no limit. */
  maxMessageSize: number;
  heartbeatMs: number;
  /** Milliseconds a closing socket may spend flushing queued messages. */
  lingerMs: number;
}

export const ZMQ_DEFAULTS: ZmqOptions = { maxMessageSize: 1 << 30, heartbeatMs: 1000, lingerMs: 2000 };

export interface ZmqServerOptions extends Partial<ZmqOptions> {
  /** CurveZMQ with a ZAP allow-list; plaintext when absent. */
  curve?: CurveServerConfig;
  /** Called for each CURVE handshake the ZAP handler decides (for logging). */
  onZapDecision?: (decision: ZapDecision) => void;
}

export interface ZmqClientOptions extends Partial<ZmqOptions> {
  /** CurveZMQ client keys; plaintext when absent. */
  curve?: CurveClientConfig;
  /** Called when a security handshake with the server fails (for logging). */
  onHandshakeError?: (failure: HandshakeFailure) => void;
}

export interface HandshakeFailure {
  /**
   * 'auth': the server's ZAP handler refused this client's key (status 400);
   * 'protocol': the mechanisms differ (e.g. plaintext against CURVE);
   * 'other': e.g. the server dropped the handshake because the server key is wrong.
   */
  kind: 'auth' | 'protocol' | 'other';
  address: string;
  message: string;
  /** The ZAP status code, for 'auth'. */
  status?: number;
  /** libzmq (4.3) does not retry this connection after an 'auth' or 'protocol' failure. */
  final: boolean;
}

/** What zeromq.js throws when a send's timeout passes (EAGAIN), for one that never reached the socket. */
function sendTimedOut(): Error {
  return Object.assign(new Error('Operation was not possible or timed out'), { code: 'EAGAIN' });
}

/** zeromq.js allows one send in flight per socket: queue the rest. */
class SendQueue {
  private tail: Promise<void> = Promise.resolve();
  run(send: () => Promise<void>): Promise<void> {
    const next = this.tail.then(send, send);
    this.tail = next.catch(() => undefined);
    return next;
  }
}

function isClosedError(err: unknown): boolean {
  const code = (err as { code?: string }).code;
  return code === 'EBADF' || code === 'ETERM' || code === 'ENOTSOCK' || code === 'EAGAIN';
}

export class ZmqServer implements ServerChannel {
  readonly socket: zmq.Router;
  /** The allow-list's ZAP handler when CURVE is on. */
  readonly zap?: ZapHandler;
  private readonly queue = new SendQueue();
  private closed = false;

  constructor(opts: ZmqServerOptions = {}, socketOptions: ConstructorParameters<typeof zmq.Router>[0] = {}) {
    const o = { ...ZMQ_DEFAULTS, ...opts };
    let curveOptions: ConstructorParameters<typeof zmq.Router>[0] = {};
    if (opts.curve) {
      assertCurveAvailable();
      decodeCurveKey(opts.curve.secretKey, 'server secret key');
      const zapDomain = opts.curve.zapDomain ?? `ddpm-${crypto.randomBytes(8).toString('hex')}`;
      this.zap = new ZapHandler({ domain: zapDomain, allowedKeys: opts.curve.allowedKeys, onDecision: opts.onZapDecision, context: socketOptions.context });
      curveOptions = { curveServer: true, curveSecretKey: opts.curve.secretKey, zapDomain };
    }
    this.socket = new zmq.Router({
      maxMessageSize: o.maxMessageSize,
      heartbeatInterval: o.heartbeatMs,
      heartbeatTimeout: o.heartbeatMs * 3,
      linger: o.lingerMs,
      // A reconnecting worker with the same routing id replaces its stale connection.
      handover: true,
      ...curveOptions,
      ...socketOptions,
    });
    if (this.zap) {
      // Fail closed: refuse CURVE handshakes if no ZAP handler answers (draft option; libzmq 4.3).
      try {
        this.socket.zapEnforceDomain = true;
      } catch {
        // unsupported: the handler is started before bind() anyway
      }
    }
  }

  /** With CURVE, the ZAP handler is started first: a client must never meet an unguarded socket. */
  async bind(address: string): Promise<void> {
    if (this.closed) throw new Error('ZmqServer is closed');
    await this.zap?.start();
    await this.socket.bind(address);
  }

  get endpoint(): string | null {
    return this.socket.lastEndpoint;
  }

  send(peer: string, frames: Buffer[]): Promise<void> {
    if (this.closed) return Promise.resolve();
    return this.queue.run(() => this.socket.send([Buffer.from(peer), ...frames]));
  }

  async receive(): Promise<Incoming | undefined> {
    if (this.closed) return undefined;
    try {
      const [identity, ...frames] = await this.socket.receive();
      return { peer: identity.toString(), frames };
    } catch (err) {
      if (this.closed || isClosedError(err)) return undefined;
      throw err;
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.socket.close();
    this.zap?.stop();
  }
}

export class ZmqClient implements ClientChannel {
  readonly socket: zmq.Dealer;
  private readonly queue = new SendQueue();
  private closed = false;
  private address: string | undefined;
  private readonly curveOptions: Record<string, string> | undefined;
  private reconnectCount = 0;

  constructor(routingId: string, opts: ZmqClientOptions = {}, socketOptions: ConstructorParameters<typeof zmq.Dealer>[0] = {}) {
    const o = { ...ZMQ_DEFAULTS, ...opts };
    let curveOptions: ConstructorParameters<typeof zmq.Dealer>[0] = {};
    if (opts.curve) {
      assertCurveAvailable();
      decodeCurveKey(opts.curve.serverKey, 'server public key');
      decodeCurveKey(opts.curve.secretKey, 'client secret key');
      curveOptions = {
        curveServerKey: opts.curve.serverKey,
        curveSecretKey: opts.curve.secretKey,
        curvePublicKey: opts.curve.publicKey ?? curvePublicKey(opts.curve.secretKey),
      };
    }
    this.curveOptions = opts.curve ? curveOptions as Record<string, string> : undefined;
    this.socket = new zmq.Dealer({
      routingId,
      maxMessageSize: o.maxMessageSize,
      heartbeatInterval: o.heartbeatMs,
      heartbeatTimeout: o.heartbeatMs * 3,
      linger: o.lingerMs,
      reconnectInterval: 1000,
      reconnectMaxInterval: 32000,
      // Queue messages only to completed connections, so nothing waits for a dead peer.
      immediate: true,
      ...curveOptions,
      ...socketOptions,
    });
    void this.watchEvents(opts.onHandshakeError);
  }

  /** See ClientChannel.reconnects. */
  get reconnects(): number {
    return this.reconnectCount;
  }

  /** Reads the socket's events as an async iterator, not through zeromq.js's EventEmitter mode,
   * whose lazily required 'events' module can outlive the module registry that loaded it (seen
   * under jest, which shares the native Observer class across test files in one process). */
  private async watchEvents(report: ZmqClientOptions['onHandshakeError']): Promise<void> {
    let dropped = false;
    try {
      for await (const e of this.socket.events) {
        if (e.type === 'disconnect') dropped = true;
        else if (e.type === 'handshake' && dropped) { dropped = false; this.reconnectCount++; }
        else if (e.type === 'handshake:error:auth') report?.({ kind: 'auth', address: e.address, message: e.error.message, status: e.error.status, final: true });
        else if (e.type === 'handshake:error:protocol') report?.({ kind: 'protocol', address: e.address, message: e.error.message, final: true });
        else if (e.type === 'handshake:error:other') report?.({ kind: 'other', address: e.address, message: e.error.message, final: false });
      }
    } catch {
      // The socket closed: no more events.
    }
  }

  connect(address: string): void {
    this.address = address;
    this.socket.connect(address);
  }

  /** A heartbeat thread beside this socket, with the same address, identity and keys. */
  startBeacon(intervalMs: number): Beacon {
    if (this.address === undefined) throw new Error('connect before starting a beacon');
    return startBeacon({ address: this.address, routingId: this.socket.routingId ?? '', intervalMs, curve: this.curveOptions });
  }

  /** The timeout covers the wait behind earlier sends too: with the coordinator gone, a send
   * without one (a RESULT) waits forever, and a bounded one queued after it (a heartbeat, the
   * goodbye) must still give up in time. */
  send(frames: Buffer[], timeoutMs = -1): Promise<void> {
    if (this.closed) return Promise.resolve();
    if (timeoutMs < 0) {
      return this.queue.run(() => {
        this.socket.sendTimeout = -1;
        return this.socket.send(frames);
      });
    }
    const deadline = Date.now() + timeoutMs;
    let expired = false;
    const queued = this.queue.run(() => {
      const left = deadline - Date.now();
      if (expired || left < 0) return Promise.reject(sendTimedOut());
      this.socket.sendTimeout = left;
      return this.socket.send(frames);
    });
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => { expired = true; reject(sendTimedOut()); }, timeoutMs);
    });
    return Promise.race([queued, late]).finally(() => clearTimeout(timer));
  }

  async receive(timeoutMs: number): Promise<Buffer[] | undefined> {
    if (this.closed) return undefined;
    this.socket.receiveTimeout = timeoutMs;
    try {
      return await this.socket.receive();
    } catch (err) {
      if (this.closed || isClosedError(err)) return undefined;
      throw err;
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.socket.close();
  }
}
