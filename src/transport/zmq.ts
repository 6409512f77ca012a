/**
 * ZeroMQ channels: the coordinator binds a ROUTER, workers connect DEALERs with a stable routing
 * id. ZMTP heartbeats detect dead connections; DEALERs reconnect with exponential back-off
 * (1 s doubling to 32 s, the zguide's Paranoid Pirate values). Messages are capped in size.
 */
import * as zmq from 'zeromq';
import { ClientChannel, Incoming, ServerChannel } from './channel';

export interface ZmqOptions {
  /** Largest accepted message in bytes (ZMQ_MAXMSGSIZE); -1 for no limit. */
  maxMessageSize: number;
  heartbeatMs: number;
  /** Milliseconds a closing socket may spend flushing queued messages. */
  lingerMs: number;
}

export const ZMQ_DEFAULTS: ZmqOptions = { maxMessageSize: 1 << 30, heartbeatMs: 1000, lingerMs: 2000 };

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
  private readonly queue = new SendQueue();
  private closed = false;

  constructor(opts: Partial<ZmqOptions> = {}, socketOptions: ConstructorParameters<typeof zmq.Router>[0] = {}) {
    const o = { ...ZMQ_DEFAULTS, ...opts };
    this.socket = new zmq.Router({
      maxMessageSize: o.maxMessageSize,
      heartbeatInterval: o.heartbeatMs,
      heartbeatTimeout: o.heartbeatMs * 3,
      linger: o.lingerMs,
      // A reconnecting worker with the same routing id replaces its stale connection.
      handover: true,
      ...socketOptions,
    });
  }

  async bind(address: string): Promise<void> {
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
  }
}

export class ZmqClient implements ClientChannel {
  readonly socket: zmq.Dealer;
  private readonly queue = new SendQueue();
  private closed = false;

  constructor(routingId: string, opts: Partial<ZmqOptions> = {}, socketOptions: ConstructorParameters<typeof zmq.Dealer>[0] = {}) {
    const o = { ...ZMQ_DEFAULTS, ...opts };
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
      ...socketOptions,
    });
  }

  connect(address: string): void {
    this.socket.connect(address);
  }

  send(frames: Buffer[], timeoutMs = -1): Promise<void> {
    if (this.closed) return Promise.resolve();
    return this.queue.run(() => {
      this.socket.sendTimeout = timeoutMs;
      return this.socket.send(frames);
    });
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
