/**
 * A small read-only HTTP server for /metrics, health and the status page: GET and HEAD on a fixed
 * table of paths, nothing else. Node's http module is enough; a framework would be a dependency
 * for five routes.
 */
import * as http from 'http';

export interface Reply {
  status: number;
  contentType: string;
  body: string | Buffer;
}

/** A route answers from the process's state; the query string is ignored. */
export type Route = () => Reply | Promise<Reply>;

export const text = (status: number, body: string): Reply => ({ status, contentType: 'text/plain; charset=utf-8', body });

export class HttpServer {
  private readonly server: http.Server;
  private closing: Promise<void> | undefined;

  constructor(private readonly routes: Record<string, Route>) {
    this.server = http.createServer((req, res) => { void this.answer(req, res); });
  }

  private async answer(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0];
    let reply: Reply;
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      reply = text(405, `method ${req.method} not allowed: GET or HEAD\n`);
    } else {
      const route = Object.prototype.hasOwnProperty.call(this.routes, path) ? this.routes[path] : undefined;
      try {
        reply = route ? await route() : text(404, `no such path ${JSON.stringify(path.slice(0, 100))}; try ${Object.keys(this.routes).join(' ')}\n`);
      } catch (err) {
        reply = text(500, `${(err as Error).message}\n`);
      }
    }
    res.writeHead(reply.status, { 'Content-Type': reply.contentType, 'Cache-Control': 'no-store', 'Content-Length': Buffer.byteLength(reply.body) });
    res.end(req.method === 'HEAD' ? undefined : reply.body);
  }

  /** Listens on host:port (port 0: any free port); resolves with the port. */
  listen(port: number, host: string): Promise<number> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error) => reject(err);
      this.server.once('error', onError);
      this.server.listen(port, host, () => {
        this.server.off('error', onError);
        resolve((this.server.address() as { port: number }).port);
      });
    });
  }

  /** Stops listening and drops open connections (Prometheus keeps its socket alive between
   * scrapes, which would otherwise hold close() open). Idempotent. */
  close(): Promise<void> {
    this.closing ??= new Promise((resolve) => {
      if (!this.server.listening) return resolve();
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
    return this.closing;
  }
}
