/**
 * ZAP (ZeroMQ RFC 27) handler: admits a CURVE client only if its public key is on an allow-list.
 *
 * libzmq sends one ZAP request per handshake of a socket with a security mechanism to whatever
 * socket is bound to inproc://zeromq.zap.01 in the socket's context, and waits for the reply.
 * Only one socket per context can hold that endpoint, so handlers share one ROUTER per context
 * (module-private, reference-counted) and each handler serves one ZAP domain: the `zapDomain` of
 * its server socket. Requests for a domain with no handler are refused (400): fail closed.
 */
import * as zmq from 'zeromq';
import { CURVE_KEY_BYTES, decodeCurveKey, z85Encode } from './curve';

export const ZAP_ENDPOINT = 'inproc://zeromq.zap.01';

export interface ZapDecision {
  domain: string;
  /** The client's IP address as libzmq reports it. */
  address: string;
  /** The client's routing id, if it set one. */
  identity: string;
  mechanism: string;
  /** The client's CURVE public key (Z85), when it sent one. */
  publicKey?: string;
  allowed: boolean;
  statusCode: '200' | '400' | '500';
  reason: string;
}

export interface ZapHandlerOptions {
  /** The ZAP domain served; the server socket's `zapDomain`. Must not be empty. */
  domain: string;
  /** Client public keys let in (Z85). */
  allowedKeys: Iterable<string>;
  /** Called after each answered request (for logging). Exceptions are ignored. */
  onDecision?: (decision: ZapDecision) => void;
  /** The server socket's context; zeromq's global context by default. */
  context?: zmq.Context;
}

type Reply = { statusCode: ZapDecision['statusCode']; reason: string; userId: string };

export class ZapHandler {
  readonly domain: string;
  /** Requests answered 200 / otherwise since construction. */
  accepted = 0;
  denied = 0;
  private readonly allowed: Set<string>;
  private readonly context: zmq.Context;
  private readonly onDecision?: (decision: ZapDecision) => void;
  private starting?: Promise<void>;
  private endpoint?: ZapEndpoint;
  private generation = 0;

  constructor(opts: ZapHandlerOptions) {
    if (opts.domain === '') throw new Error('ZapHandler: the ZAP domain must not be empty');
    this.domain = opts.domain;
    this.allowed = new Set([...opts.allowedKeys].map((k) => decodeCurveKey(k, 'allowed key').toString('hex')));
    this.context = opts.context ?? zmq.context;
    this.onDecision = opts.onDecision;
  }

  /** Binds (or joins) the context's ZAP endpoint and serves this domain. Idempotent. */
  start(): Promise<void> {
    if (this.starting) return this.starting;
    const generation = ++this.generation;
    const starting = (async () => {
      const endpoint = await ZapEndpoint.acquire(this.context);
      if (generation !== this.generation) {
        endpoint.release(); // stopped while starting
        return;
      }
      try {
        endpoint.register(this);
      } catch (err) {
        endpoint.release();
        throw err;
      }
      this.endpoint = endpoint;
    })();
    this.starting = starting;
    starting.catch(() => {
      if (this.starting === starting) this.starting = undefined; // a failed start may be retried
    });
    return starting;
  }

  /** Stops serving this domain; the shared endpoint closes with its last handler. Idempotent. */
  stop(): void {
    this.generation++;
    this.starting = undefined;
    const endpoint = this.endpoint;
    this.endpoint = undefined;
    if (endpoint) {
      endpoint.unregister(this);
      endpoint.release();
    }
  }

  /** @internal The answer to one CURVE request of this domain. */
  decide(address: string, identity: string, mechanism: string, credentials: Buffer[]): Reply {
    let publicKey: string | undefined;
    let reply: Reply;
    if (mechanism !== 'CURVE') {
      reply = { statusCode: '400', reason: `mechanism ${mechanism} not allowed`, userId: '' };
    } else if (credentials.length !== 1 || credentials[0].length !== CURVE_KEY_BYTES) {
      reply = { statusCode: '400', reason: 'malformed CURVE credentials', userId: '' };
    } else {
      publicKey = z85Encode(credentials[0]);
      reply = this.allowed.has(credentials[0].toString('hex'))
        ? { statusCode: '200', reason: 'OK', userId: publicKey }
        : { statusCode: '400', reason: 'public key not on the allow-list', userId: '' };
    }
    this.report({ domain: this.domain, address, identity, mechanism, publicKey, allowed: reply.statusCode === '200', statusCode: reply.statusCode, reason: reply.reason });
    return reply;
  }

  /** @internal */
  report(decision: ZapDecision): void {
    if (decision.allowed) this.accepted++;
    else this.denied++;
    try {
      this.onDecision?.(decision);
    } catch {
      // logging must not stop authentication
    }
  }
}

/** The ROUTER bound to the ZAP endpoint of one context, shared by that context's handlers. */
class ZapEndpoint {
  private static readonly byContext = new Map<zmq.Context, ZapEndpoint>();
  private readonly socket: zmq.Router;
  private readonly handlers = new Map<string, ZapHandler>();
  private readonly ready: Promise<void>;
  private refs = 0;
  private closed = false;

  static async acquire(context: zmq.Context): Promise<ZapEndpoint> {
    let endpoint = ZapEndpoint.byContext.get(context);
    if (!endpoint) {
      endpoint = new ZapEndpoint(context);
      ZapEndpoint.byContext.set(context, endpoint);
    }
    endpoint.refs++;
    try {
      await endpoint.ready;
    } catch (err) {
      endpoint.release();
      throw err;
    }
    return endpoint;
  }

  private constructor(private readonly context: zmq.Context) {
    this.socket = new zmq.Router({ context, linger: 0 });
    this.ready = this.bind();
    this.ready.then(() => this.serve(), () => undefined);
  }

  private async bind(): Promise<void> {
    // A just-closed endpoint is unregistered asynchronously by libzmq: retry briefly.
    const deadline = Date.now() + 2000;
    for (;;) {
      try {
        await this.socket.bind(ZAP_ENDPOINT);
        return;
      } catch (err) {
        const code = (err as { code?: string }).code;
        if (this.closed) throw new Error('ZAP handler stopped while starting');
        if (code !== 'EADDRINUSE' || Date.now() > deadline) {
          throw new Error(`cannot bind the ZAP handler to ${ZAP_ENDPOINT}: ${code === 'EADDRINUSE' ? 'another ZAP handler holds it' : (err as Error).message}`);
        }
        await new Promise((r) => setTimeout(r, 25));
      }
    }
  }

  register(handler: ZapHandler): void {
    const current = this.handlers.get(handler.domain);
    if (current && current !== handler) throw new Error(`ZAP domain ${JSON.stringify(handler.domain)} is already served by another handler`);
    this.handlers.set(handler.domain, handler);
  }

  unregister(handler: ZapHandler): void {
    if (this.handlers.get(handler.domain) === handler) this.handlers.delete(handler.domain);
  }

  release(): void {
    if (--this.refs > 0) return;
    this.closed = true;
    if (ZapEndpoint.byContext.get(this.context) === this) ZapEndpoint.byContext.delete(this.context);
    this.socket.close();
  }

  private async serve(): Promise<void> {
    while (!this.closed) {
      let frames: Buffer[];
      try {
        frames = await this.socket.receive();
      } catch {
        // Closed, or broken: either way stop answering, which leaves handshakes unauthenticated (refused).
        return;
      }
      const reply = this.answer(frames);
      if (!reply) continue;
      try {
        await this.socket.send(reply);
      } catch {
        if (this.closed) return;
      }
    }
  }

  /** RFC 27: [routing id, '', version, request id, domain, address, identity, mechanism, credentials...]. */
  private answer(frames: Buffer[]): Buffer[] | undefined {
    if (frames.length < 8 || frames[1].length !== 0) return undefined; // not a ZAP request: drop
    const [routingId, , version, requestId, domainFrame, addressFrame, identityFrame, mechanismFrame, ...credentials] = frames;
    const domain = domainFrame.toString();
    const address = addressFrame.toString();
    const identity = identityFrame.toString();
    const mechanism = mechanismFrame.toString();
    let reply: Reply;
    const handler = this.handlers.get(domain);
    if (version.toString() !== '1.0') {
      reply = { statusCode: '500', reason: 'unsupported ZAP version', userId: '' };
    } else if (!handler) {
      reply = { statusCode: '400', reason: `no ZAP handler for domain ${JSON.stringify(domain)}`, userId: '' };
    } else {
      reply = handler.decide(address, identity, mechanism, credentials);
    }
    return [routingId, Buffer.alloc(0), Buffer.from('1.0'), requestId, Buffer.from(reply.statusCode), Buffer.from(reply.reason), Buffer.from(reply.userId), Buffer.alloc(0)];
  }
}
