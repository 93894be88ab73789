/**
 * A real `node:http` upstream for cache and tenant-isolation tests (not used in production): it
 * plays the gateway's internal listener in front of several tenants' models, and every answer
 * says who was called, by whom and with what, so a test can tell whose response it got.
 *
 * Like the internal listener, it answers 403 without the right `x-kea-internal-token` and 404
 * for an unknown `Host` (each tenant's service has its own internal hostname).
 *
 * Every answer is `application/json` {@link Echo}. Upstream paths (any method):
 * - `/gzip/...`: gzip-encoded when the request's `Accept-Encoding` allows it, with
 *   `Vary: Accept-Encoding`; `/gzip-novary/...` the same without `Vary` (a careless backend).
 * - `/vary-star/...`: `Vary: *`.
 * - `/vary-user/...`: personalised (`user` set) and says so with `Vary: x-kea-user`.
 * - `/vary-client/...`: `Vary: X-Client` (a client header that is no declared parameter).
 * - `/mine/...`, `/live/...`, `/predict-mine`, `/predict-live`: personalised (`user` set).
 * - anything else: not personalised (`user` is null), as a backend behind a `scope: shared`
 *   cache must be.
 */
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gzipSync } from 'node:zlib';

/** The body of every answer. */
export interface Echo {
  /** Serial number of the upstream call (1, 2, ...): equal numbers mean one upstream call. */
  n: number;
  /** The tenant whose internal hostname was called. */
  tenant: string;
  method: string;
  /** Path as received (no query). */
  path: string;
  /** Raw query string as received, without `?` ('' when none). */
  query: string;
  /** `x-kea-user` for personalised routes, else null. */
  user: string | null;
  /** The request body as text ('' when none). */
  body: string;
  /** Request headers as received, minus the internal token. */
  headers: IncomingHttpHeaders;
}

/** A running echo upstream. */
export interface EchoUpstream {
  url: string;
  /** Number of requests answered (200 or not). */
  count(): number;
  close(): Promise<void>;
  server: Server;
}

const PERSONAL = /^\/(?:mine|live|predict-mine|predict-live|vary-user)(?:\/|$)/;

/**
 * Starts the upstream on 127.0.0.1:0.
 * @param opts.token - the internal token required on every request.
 * @param opts.hosts - internal hostname → tenant name.
 */
export async function startEchoUpstream(opts: { token: string; hosts: Record<string, string> }): Promise<EchoUpstream> {
  let n = 0;
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      n++;
      const send = (status: number, body: unknown, headers: Record<string, string> = {}, gzip = false): void => {
        let payload = Buffer.from(JSON.stringify(body));
        if (gzip) payload = gzipSync(payload);
        res.writeHead(status, { 'content-type': 'application/json', 'content-length': String(payload.length), ...headers });
        res.end(payload);
      };
      if (req.headers['x-kea-internal-token'] !== opts.token) return send(403, { error: 'no route' });
      const host = (req.headers.host ?? '').replace(/:\d+$/, '');
      const tenant = opts.hosts[host];
      if (tenant === undefined) return send(404, { error: `no route for host ${host}` });
      const url = req.url ?? '/';
      const q = url.indexOf('?');
      const path = q < 0 ? url : url.slice(0, q);
      const headers = { ...req.headers };
      delete headers['x-kea-internal-token'];
      const user = req.headers['x-kea-user'];
      const echo: Echo = {
        n,
        tenant,
        method: req.method ?? '',
        path,
        query: q < 0 ? '' : url.slice(q + 1),
        user: PERSONAL.test(path) && typeof user === 'string' ? user : null,
        body: Buffer.concat(chunks).toString('utf8'),
        headers,
      };
      if (path.startsWith('/gzip/') || path.startsWith('/gzip-novary/')) {
        const gzip = /\bgzip\b/.test(req.headers['accept-encoding'] ?? '');
        const h: Record<string, string> = gzip ? { 'content-encoding': 'gzip' } : {};
        if (path.startsWith('/gzip/')) h.vary = 'Accept-Encoding';
        return send(200, echo, h, gzip);
      }
      if (path.startsWith('/vary-star/')) return send(200, echo, { vary: '*' });
      if (path.startsWith('/vary-user/')) return send(200, echo, { vary: 'X-Kea-User' });
      if (path.startsWith('/vary-client/')) return send(200, echo, { vary: 'Accept-Language, X-Client' });
      send(200, echo);
    });
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    count: () => n,
    server,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
