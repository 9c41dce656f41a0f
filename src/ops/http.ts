/**
 * The optional metrics and health listener (config `http: { port, host }`; off by default, and
 * on 127.0.0.1 unless told otherwise: the metrics name files and folders).
 *
 *   GET /metrics   Prometheus text format (./metrics.ts)
 *   GET /healthz   200 {"status":"ok","mode":"normal",...}
 *                  503 {"status":"unhealthy","reason":"...","mode":"degraded","since":"..."}
 *                  503 {"status":"unhealthy","reason":"handler program unavailable: ...",
 *                       "handler":{"available":false,"since":"...","why":"..."},...}
 *
 * node:http directly: two routes do not earn a framework.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import type { Metrics } from './metrics.js';

export interface Health {
  ok: boolean;
  /** Why not ok (or what is notable while ok, e.g. degraded but still working). */
  reason?: string;
  mode: 'normal' | 'degraded';
  /** Epoch ms or ISO time the current mode began. */
  since?: number | string;
  /** Set while the handler program cannot be started (see run/handler-availability.ts). */
  handlerUnavailable?: { since: number; why: string };
}

export interface HttpServerOptions {
  host: string;
  /** 0: an ephemeral port (tests); the bound port is returned. */
  port: number;
  metrics: Metrics;
  health: () => Health | Promise<Health>;
  logger: Logger;
}

export interface HttpServer {
  readonly port: number;
  close(): Promise<void>;
}

/**
 * The usual health answer from a store's mode (FallbackStore.mode()): degraded is unhealthy.
 * ckpt still handles files while degraded, but a person should know: outcomes are in the
 * journal, not yet in the database.
 */
export function healthFromMode(m: { mode: 'normal' | 'degraded'; since: number | null; reason: string | null }): Health {
  const h: Health = { ok: m.mode === 'normal', mode: m.mode };
  if (m.since !== null) h.since = m.since;
  if (m.reason !== null) h.reason = m.reason;
  return h;
}

/**
 * A handler program that is gone makes the process unhealthy whatever its mode: it claims
 * nothing until the program is back.
 */
export function withHandler(h: Health, u: { since: number; why: string } | null): Health {
  if (u === null) return h;
  const reason = `handler program unavailable since ${new Date(u.since).toISOString()}: ${u.why}`;
  return { ...h, ok: false, reason: h.ok || h.reason === undefined ? reason : `${h.reason}; ${reason}`, handlerUnavailable: { since: u.since, why: u.why } };
}

function send(res: http.ServerResponse, status: number, type: string, body: string, head: boolean): void {
  res.writeHead(status, { 'Content-Type': type, 'Content-Length': Buffer.byteLength(body), 'Cache-Control': 'no-store' });
  res.end(head ? undefined : body);
}

function sendJson(res: http.ServerResponse, status: number, value: unknown, head: boolean): void {
  send(res, status, 'application/json; charset=utf-8', `${JSON.stringify(value)}\n`, head);
}

function isoOf(t: number | string | undefined): string | undefined {
  if (t === undefined) return undefined;
  return typeof t === 'number' ? new Date(t).toISOString() : t;
}

export function healthBody(health: Health): { status: number; body: Record<string, unknown> } {
  const body: Record<string, unknown> = { status: health.ok ? 'ok' : 'unhealthy', mode: health.mode };
  const since = isoOf(health.since);
  if (since !== undefined) body.since = since;
  if (health.reason !== undefined) body.reason = health.reason;
  if (health.handlerUnavailable !== undefined) {
    body.handler = { available: false, since: isoOf(health.handlerUnavailable.since), why: health.handlerUnavailable.why };
  }
  return { status: health.ok ? 200 : 503, body };
}

export function startHttpServer(opts: HttpServerOptions): Promise<HttpServer> {
  const log = opts.logger.child({ component: 'http' });
  const server = http.createServer((req, res) => {
    const head = req.method === 'HEAD';
    if (req.method !== 'GET' && !head) {
      res.setHeader('Allow', 'GET, HEAD');
      sendJson(res, 405, { error: 'method not allowed' }, head);
      return;
    }
    const url = (req.url ?? '/').split('?', 1)[0];
    const handle = async (): Promise<void> => {
      if (url === '/metrics') {
        send(res, 200, opts.metrics.contentType, await opts.metrics.text(), head);
      } else if (url === '/healthz') {
        const { status, body } = healthBody(await opts.health());
        sendJson(res, status, body, head);
      } else {
        sendJson(res, 404, { error: 'not found', endpoints: ['/metrics', '/healthz'] }, head);
      }
    };
    handle().catch((err: unknown) => {
      // A failing health callback is itself a health answer: unhealthy, with the reason.
      log.error({ err, url }, 'http request failed');
      if (res.headersSent) {
        res.destroy();
        return;
      }
      const reason = err instanceof Error ? err.message : String(err);
      if (url === '/healthz') sendJson(res, 503, { status: 'unhealthy', reason }, head);
      else sendJson(res, 500, { error: reason }, head);
    });
  });
  // A scraper that keeps connections open must not hold the daemon's shutdown.
  server.keepAliveTimeout = 5_000;

  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) => {
      const why = err.code === 'EADDRINUSE' ? 'the port is in use' : err.code === 'EACCES' ? 'permission denied' : err.message;
      reject(new Error(`cannot listen on ${opts.host}:${opts.port} for /metrics and /healthz: ${why}`, { cause: err }));
    };
    server.once('error', onError);
    server.listen(opts.port, opts.host, () => {
      server.off('error', onError);
      server.on('error', (err) => log.error({ err }, 'http server error'));
      const port = (server.address() as AddressInfo).port;
      log.info({ host: opts.host, port }, 'serving /metrics and /healthz');
      resolve({
        port,
        close: () =>
          new Promise<void>((done) => {
            server.close(() => done());
            server.closeAllConnections();
          }),
      });
    });
  });
}
