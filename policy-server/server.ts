/**
 * The policy server's HTTP front: one raw `node:http` server whose request listener routes
 * data-path traffic to {@link DataPath} directly and everything else to an express app.
 *
 * Routing, in order (all on `store.current`, read once per request):
 * 1. `x-kea-operation: <ns>/<name>/<operationId>` (set by the public HTTPRoute) → that
 *    operation, provided the method and path match its template (else 404).
 * 2. `POST /services/{ns}/{name}/predict` → the service's default operation.
 * 3. The reserved portal paths (lib/policy/reserved-paths.ts: `/auth`, `/docs`, `/openapi`,
 *    `/openapi.json`, `/methods`, `/services`, `/router`, `/logs`) and `/healthz`
 *    → express (auth router, portal router, management router). `/readyz` and `/metrics`
 *    are served only on the admin port ({@link PolicyServer.listenAdmin}), which the
 *    gateway-facing Service does not expose: a tenant HTTPRoute that references the policy
 *    Service (KEA's ReferenceGrant allows it) cannot read them.
 * 4. Method + path template of any configured operation (direct calls, tests, benches).
 * 5. Anything else → express (404 problem). A path that is routed for another method → 405.
 * Steps 1, 2 and 4 work on the canonical path (snapshot/path-router.ts `canonicalPath`); a
 * path that has no canonical form gets 400 before any routing.
 *
 * express never sees a data-path request: measured, express halves a Node hot path's
 * throughput (field notes §1).
 *
 * Forwarding goes to the gateway's internal listener through one undici `Pool` (keep-alive)
 * and one concurrency limit per service (datapath/upstream.ts `UpstreamLanes`), so one
 * tenant's hanging operation cannot starve another's.
 * Graceful shutdown ({@link PolicyServer.close}): stop accepting, mark `/readyz` (admin port) 503, answer
 * requests on open keep-alive connections with `Connection: close`, wait for in-flight
 * exchanges (up to `drainTimeoutMs`), then close the pool.
 */
import express, { type ErrorRequestHandler, type Router } from 'express';
import { createServer, STATUS_CODES, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { OPERATION_HEADER } from '../lib/policy/config.js';
import { PORTAL_EXACT_PATHS, PORTAL_PATH_PREFIXES, POLICY_SERVER_OWN_PREFIXES } from '../lib/policy/reserved-paths.js';
import { createLogger, type Logger } from '../lib/log.js';
import { AuditLog } from './audit.js';
import type { ClaimPaths } from './auth/index.js';
import { ResponseCache } from './datapath/cache.js';
import type { SharedStore } from './redis.js';
import { SharedAuditLog } from './shared-audit.js';
import { DataPath, type RequestAuthenticator, type Upstream } from './datapath/handler.js';
import { UpstreamLanes } from './datapath/upstream.js';
import { problem, sendProblem } from './datapath/problem.js';
import { adminRouter, managementRouter } from './management.js';
import { Metrics } from './metrics.js';
import type { CompiledOperation, Snapshot } from './snapshot/build.js';
import { canonicalPath, isRefusal, type PathRefusal } from './snapshot/path-router.js';
import type { SnapshotStore } from './snapshot/store.js';
import type { SourceHealth } from './sources/types.js';

/** Options of {@link createPolicyServer}. */
export interface PolicyServerOptions {
  store: SnapshotStore;
  /** The authenticator (policy-server/auth). Its `router()` is mounted if present. */
  auth: RequestAuthenticator & { router?: () => Router };
  /** Base URL of the gateway's internal listener, e.g. `http://kea-nginx.kea-system:8081`. */
  upstreamUrl: string;
  /** Shared secret the internal HTTPRoutes require. */
  internalToken: string;
  /** Upstream lanes to use instead of creating {@link UpstreamLanes} on `upstreamUrl` (tests). */
  upstream?: Upstream & { close?: () => Promise<void>; retain?: (hosts: ReadonlySet<string>) => void };
  /** Keep-alive connections to the internal listener per service (default 64, datapath/upstream.ts). */
  upstreamConnectionsPerService?: number;
  /** Requests in flight per service before 503 `upstream-busy` (default 256, datapath/upstream.ts). */
  upstreamMaxInflightPerService?: number;
  claimDefaults?: ClaimPaths;
  adminRole?: string;
  cache?: { maxBytes?: number; maxEntryBytes?: number };
  /**
   * The shared store (policy-server/redis.ts, `--redis-url`): the response cache's second
   * level (datapath/shared-cache.ts) lives there. The caller opens and closes it.
   */
  sharedStore?: SharedStore;
  /**
   * Every replica's audit records in the shared store (shared-audit.ts), read by `/logs`;
   * default: one on {@link PolicyServerOptions.sharedStore} when there is one. Flushed on close.
   */
  sharedAudit?: SharedAuditLog;
  maxJsonDepth?: number;
  /** Request bodies buffered at once, bytes (default 128 MiB; datapath/handler.ts `maxBufferedRequestBytes`). */
  maxBufferedRequestBytes?: number;
  logger?: Logger;
  /** Audit ring size per service (default 200). */
  auditRingSize?: number;
  /** Extra express routers mounted before the management API (e.g. the portal at /docs). */
  routers?: Router[];
  /** Extra express routers of the admin port, mounted before its own (e.g. the cluster-wide /metrics). */
  adminRouters?: Router[];
  /** Health of the configuration source, for /readyz and metrics. */
  sourceHealth?: () => SourceHealth | undefined;
  /** Maximum time to wait for in-flight requests on close, ms (default 10000). */
  drainTimeoutMs?: number;
}

/** A running (or ready to run) policy server. */
export interface PolicyServer {
  server: Server;
  dataPath: DataPath;
  cache: ResponseCache;
  metrics: Metrics;
  audit: AuditLog;
  /** The audit records in Redis, with a shared store (shared-audit.ts). */
  sharedAudit?: SharedAuditLog;
  app: express.Express;
  /**
   * The admin port's server (`/healthz`, `/readyz`, `/metrics`; management.ts `adminRouter`),
   * separate from the data port so that no HTTPRoute to the policy Service reaches it.
   */
  admin: Server;
  /** Starts listening. @returns the bound port. */
  listen(port: number, host?: string): Promise<number>;
  /** Starts the admin port's server. @returns the bound port. */
  listenAdmin(port: number, host?: string): Promise<number>;
  /** Graceful shutdown (see module doc). Idempotent. */
  close(): Promise<void>;
}

/** Paths the policy server answers itself, never the data path (lib/policy/reserved-paths.ts). */
const NON_DATA_PREFIXES: readonly string[] = [...PORTAL_PATH_PREFIXES, ...POLICY_SERVER_OWN_PREFIXES];
const NON_DATA_EXACT: readonly string[] = PORTAL_EXACT_PATHS;

function isNonData(path: string): boolean {
  for (const p of NON_DATA_PREFIXES) {
    if (path.startsWith(p) && (path.length === p.length || path.charCodeAt(p.length) === 47) /* / */) return true;
  }
  return NON_DATA_EXACT.includes(path);
}

/**
 * Resolves an `x-kea-operation` header value to the operation a request is for. The value is
 * `<ns>/<name>/<operationId>`, or, when several path templates of one API share a route rule
 * (the controller matches them by their common static prefix), `<ns>/<name>/<id>,<id>,...`:
 * then the first named operation whose method and path template match the request wins.
 * @param path - the decoded canonical path ({@link canonicalPath}).
 * @returns the operation and its decoded path parameter values; `{ op: undefined, named: false }`
 *   when no named operation is configured, `{ op: undefined, named: true }` when some is but
 *   none matches the method and path.
 */
export function resolveOperationHeader(
  operations: ReadonlyMap<string, CompiledOperation>,
  value: string,
  method: string,
  path: string,
): { op: CompiledOperation; params: string[] } | { op: undefined; named: boolean } {
  const methodOk = (op: CompiledOperation) => method === op.method || (method === 'HEAD' && op.method === 'GET');
  if (!value.includes(',')) {
    const op = operations.get(value);
    if (!op) return { op: undefined, named: false };
    const params = methodOk(op) ? matchOperationPath(op, path) : undefined;
    return params ? { op, params } : { op: undefined, named: true };
  }
  const slash = value.lastIndexOf('/');
  const prefix = value.slice(0, slash + 1);
  let named = false;
  for (const id of value.slice(slash + 1).split(',')) {
    const op = operations.get(prefix + id.trim());
    if (!op) continue;
    named = true;
    const params = methodOk(op) ? matchOperationPath(op, path) : undefined;
    if (params) return { op, params };
  }
  return { op: undefined, named };
}

/**
 * Matches a decoded canonical `path` ({@link canonicalPath}) against one operation's template.
 * @returns the decoded path parameter values, or undefined if it does not match.
 */
export function matchOperationPath(op: CompiledOperation, path: string): string[] | undefined {
  const segs = op.pathSegments;
  const params: string[] = [];
  let pos = 1; // skip leading '/'
  if (path.charCodeAt(0) !== 47) return undefined;
  for (let i = 0; i < segs.length; i++) {
    let end = path.indexOf('/', pos);
    if (end < 0) end = path.length;
    else if (i === segs.length - 1) return undefined; // more segments than the template
    const seg = path.slice(pos, end);
    const want = segs[i];
    if (want === null) {
      if (seg.length === 0) return undefined;
      params.push(seg);
    } else if (seg !== want) return undefined;
    pos = end + 1;
    if (end === path.length && i < segs.length - 1) return undefined;
  }
  return params;
}

/**
 * On every snapshot swap: drops the cache entries of each service whose configuration (or
 * traffic split) changed, updates the configuration gauges, and closes the upstream lanes of
 * services that left the configuration.
 */
function followSwaps(store: PolicyServerOptions['store'], cache: ResponseCache, metrics: Metrics, pool: Upstream | UpstreamLanes, logger: Logger): void {
  store.onSwap((next: Snapshot, prev: Snapshot) => {
    for (const [id, svc] of prev.services) {
      const now = next.services.get(id);
      if (!now || now.def.configVersion !== svc.def.configVersion) {
        const n = cache.purgeService(id);
        if (n) logger.info('cache entries dropped after config change', { service: id, entries: n });
      }
    }
    metrics.configGeneration.set(next.generation);
    metrics.configErrors.set(next.errors.length);
    metrics.configServices.set(next.services.size);
    if ('retain' in pool) {
      const hosts = new Set<string>();
      for (const svc of next.services.values()) hosts.add(svc.def.upstream.host);
      pool.retain(hosts);
    }
  });
}

/** Creates the server (not yet listening). */
export function createPolicyServer(opts: PolicyServerOptions): PolicyServer {
  const logger = opts.logger ?? createLogger('policy-server');
  const store = opts.store;
  const cache = new ResponseCache(opts.cache);
  const metrics = new Metrics(
    () => cache.stats(),
    () => {
      const h = opts.sourceHealth?.();
      return { up: h?.connected ?? store.ready, lastSyncAt: h?.lastSyncAt ?? 0 };
    },
  );
  const sharedAudit = opts.sharedAudit ?? (opts.sharedStore ? new SharedAuditLog(opts.sharedStore, { maxRecords: opts.auditRingSize }) : undefined);
  sharedAudit?.registerMetrics(metrics.registry);
  const audit = new AuditLog({ logger, ringSize: opts.auditRingSize, sink: sharedAudit });
  const pool =
    opts.upstream ??
    new UpstreamLanes({
      url: opts.upstreamUrl,
      connectionsPerService: opts.upstreamConnectionsPerService,
      maxInflightPerService: opts.upstreamMaxInflightPerService,
    });
  const dataPath = new DataPath({
    auth: opts.auth,
    upstream: pool,
    cache,
    sharedStore: opts.sharedStore,
    audit,
    metrics,
    internalToken: opts.internalToken,
    claimDefaults: opts.claimDefaults,
    maxJsonDepth: opts.maxJsonDepth,
    maxBufferedRequestBytes: opts.maxBufferedRequestBytes,
  });

  followSwaps(store, cache, metrics, pool, logger);
  // Purges sent to other replicas or workers reach this first level too (Redis pub/sub).
  if (opts.sharedStore) dataPath.sharedCache?.followPurges(opts.sharedStore, cache, logger, () => metrics.cacheL1Resyncs.inc());

  let shuttingDown = false;
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  if (opts.auth.router) app.use(opts.auth.router());
  for (const r of opts.routers ?? []) app.use(r);
  app.use(
    managementRouter({
      store,
      auth: opts.auth,
      cache,
      sharedCache: dataPath.sharedCache,
      audit,
      sharedAudit,
      metrics,
      claimDefaults: opts.claimDefaults,
      adminRole: opts.adminRole,
      sourceHealth: opts.sourceHealth,
      accepting: () => !shuttingDown,
    }),
  );
  const notFoundHandler = (req: express.Request, res: express.Response): void => {
    const body = problem('not-found', `nothing at ${req.method} ${req.path}`);
    res.status(404).set({ 'content-type': 'application/problem+json', 'cache-control': 'no-store' }).end(JSON.stringify(body));
  };
  app.use(notFoundHandler);

  // The admin port: probes and metrics, never routed by the gateway (the Service exposes only
  // the data port), so `/readyz`'s configuration errors and `/metrics` stay off tenant routes.
  const adminApp = express();
  adminApp.disable('x-powered-by');
  adminApp.set('etag', false);
  for (const r of opts.adminRouters ?? []) adminApp.use(r);
  adminApp.use(adminRouter({ store, metrics, sourceHealth: opts.sourceHealth, accepting: () => !shuttingDown }));
  adminApp.use(notFoundHandler);
  const admin = createServer({ keepAliveTimeout: 5_000, requestTimeout: 10_000, headersTimeout: 5_000 }, adminApp);
  const onError: ErrorRequestHandler = (err: { status?: number; statusCode?: number; type?: string; message?: string }, req, res, next) => {
    if (res.headersSent) return next(err);
    const status = err.status ?? err.statusCode ?? 500;
    const body =
      status === 413
        ? problem('payload-too-large', err.message)
        : status === 415
          ? problem('unsupported-media-type', err.message)
          : status >= 400 && status < 500
            ? problem('validation-failed', err.type === 'entity.parse.failed' ? 'the body is not valid JSON' : (err.message ?? 'bad request'), {
                errors: [{ in: 'body', pointer: '', message: err.type === 'entity.parse.failed' ? 'is not valid JSON' : (err.message ?? 'is invalid') }],
              })
            : problem('internal', 'unexpected error');
    if (body.status >= 500) logger.error('management request failed', { path: req.path, error: String(err.message ?? err) });
    res.status(body.status).set({ 'content-type': 'application/problem+json', 'cache-control': 'no-store' }).end(JSON.stringify(body));
  };
  app.use(onError);

  const notFound = (res: ServerResponse, detail: string): void => sendProblem(res, problem('not-found', detail));
  /** 400 for a path {@link canonicalPath} refuses; the pointer names the whole path (`in: path`, pointer ""). */
  const refusePath = (res: ServerResponse, r: PathRefusal): void => {
    const where = r.segment > 0 ? `segment ${r.segment} of the path` : 'the path';
    const errors = [{ in: 'path' as const, pointer: '', message: `${where} ${r.message}` }];
    sendProblem(res, problem('validation-failed', `the request path is not in canonical form: ${where} ${r.message}`, { errors }));
  };

  const onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    if (shuttingDown) res.shouldKeepAlive = false;
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q < 0 ? url : url.slice(0, q);
    const query = q < 0 ? '' : url.slice(q + 1);
    const snap = store.current;
    const method = req.method ?? 'GET';
    const opHeader = req.headers[OPERATION_HEADER];
    const predict = path.startsWith('/services/') && path.endsWith('/predict');
    const data = opHeader !== undefined || predict || !isNonData(path);
    // Data-path requests are routed, authorised and forwarded on the canonical path only
    // (docs/architecture.md, "Canonical request path"): `decoded` for matching and parameter
    // values, `encoded` upstream and in the audit record.
    let decoded = path;
    let encoded = path;
    if (data) {
      const c = canonicalPath(path);
      if (isRefusal(c)) return refusePath(res, c);
      decoded = c.decoded;
      encoded = c.encoded;
    }
    if (opHeader !== undefined) {
      const found =
        typeof opHeader === 'string' ? resolveOperationHeader(snap.operations, opHeader, method, decoded) : ({ op: undefined, named: false } as const);
      if (!found.op) {
        return notFound(
          res,
          found.named ? 'the request does not match the operation named by x-kea-operation' : 'the operation named by x-kea-operation is not configured',
        );
      }
      void dataPath.handle(req, res, found.op, found.params, query, encoded);
      return;
    }
    if (predict) {
      const parts = decoded.split('/');
      if (parts.length === 5) {
        const id = `${parts[2]}/${parts[3]}`;
        const svc = snap.services.get(id);
        const op = svc?.defaultOperation;
        if (!op) return notFound(res, `no API ${id} with a default (predict) operation`);
        if (op.pathParamNames.length > 0) return notFound(res, `the default operation of ${id} needs path parameters; call ${op.def.path}`);
        if (method !== op.method) return sendProblem(res, problem('method-not-allowed', `use ${op.method}`), ['allow', op.method]);
        void dataPath.handle(req, res, op, [], query, encoded);
        return;
      }
    }
    if (!isNonData(path)) {
      const m = snap.router.match(method === 'HEAD' ? 'GET' : method, decoded) ?? snap.router.match(method, decoded);
      if (m) {
        void dataPath.handle(req, res, m.value, m.params, query, encoded);
        return;
      }
      if (snap.router.hasPath(decoded)) return sendProblem(res, problem('method-not-allowed', `${method} is not configured for ${encoded}`));
    }
    app(req, res);
  };

  const server = createServer({ keepAliveTimeout: 65_000, requestTimeout: 60_000, headersTimeout: 20_000 }, onRequest);
  // A request node:http could not parse (RFC 9112 framing errors, header fields over the
  // limit, too slow). The answer is written raw and the connection closed; a HEAD request gets
  // no body (RFC 9110 §9.3.2), else its client would read the body as the next response.
  server.on('clientError', (err: NodeJS.ErrnoException & { rawPacket?: Buffer }, socket) => {
    if (!socket.writable || socket.destroyed) {
      socket.destroy();
      return;
    }
    const p =
      err.code === 'HPE_HEADER_OVERFLOW'
        ? problem('header-too-large', 'the request line and header fields exceed the server limit')
        : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
          ? problem('request-timeout', 'the request was not received in time')
          : problem('validation-failed', 'malformed HTTP request');
    const body = err.rawPacket?.subarray(0, 5).toString('latin1') === 'HEAD ' ? '' : JSON.stringify(p);
    socket.end(
      `HTTP/1.1 ${p.status} ${STATUS_CODES[p.status]}\r\ncontent-type: application/problem+json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
    );
  });

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> =>
    (closing ??= (async () => {
      shuttingDown = true;
      logger.info('shutting down: draining in-flight requests', { inflight: dataPath.inflight });
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      const deadline = Date.now() + (opts.drainTimeoutMs ?? 10_000);
      while (dataPath.inflight > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      if (dataPath.inflight > 0) logger.warn('drain timeout; closing remaining connections', { inflight: dataPath.inflight });
      server.closeIdleConnections();
      // Give responses just ended a moment to flush, then cut whatever is left.
      await Promise.race([closed, new Promise((r) => setTimeout(r, 500))]);
      server.closeAllConnections();
      await closed;
      if ('close' in pool && typeof pool.close === 'function') await pool.close().catch(() => undefined);
      // The last audit records to Redis (bounded by --redis-timeout-ms; the caller closes the store after).
      await sharedAudit?.close();
      // The admin port answered `/readyz` 503 during the drain; it closes last.
      if (admin.listening) {
        const adminClosed = new Promise<void>((resolve) => admin.close(() => resolve()));
        admin.closeAllConnections();
        await adminClosed;
      }
      logger.info('shutdown complete');
    })());

  return {
    server,
    dataPath,
    cache,
    metrics,
    audit,
    sharedAudit,
    app,
    admin,
    listenAdmin: (port, host) =>
      new Promise<number>((resolve, reject) => {
        admin.once('error', reject);
        admin.listen(port, host, () => {
          admin.off('error', reject);
          resolve((admin.address() as AddressInfo).port);
        });
      }),
    listen: (port, host) =>
      new Promise<number>((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, host, () => {
          server.off('error', reject);
          resolve((server.address() as AddressInfo).port);
        });
      }),
    close,
  };
}
