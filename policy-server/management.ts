/**
 * The management API of seed 003, served with express (off the data path):
 *
 * | method + path | who | what |
 * |---|---|---|
 * | `GET /services` | authenticated | every API: id, title, version, basePath, mode, operation count, docs/openapi URLs |
 * | `GET /services/{ns}/{name}` | authenticated | one API: operations (method, path, access, cache, timeout), traffic, published versions |
 * | `POST /router/validate` | authenticated | dry-run `{operation: "<ns>/<name>/<opId>", body?, params?: {path?, query?, header?}}` → `{valid, errors}` |
 * | `GET /router/loadbalancer[/{ns}/{name}]` | authenticated | current weighted split per revision, in percent |
 * | `GET /router/cache` | admin | cache statistics, per service |
 * | `DELETE /router/cache[/{ns}/{name}]` | admin | purge all, or one service's entries |
 * | `GET /logs/{ns}/{name}?limit=` | admin | newest audit records of a service (of every replica with Redis: {@link logsAnswer}) |
 * | `GET /healthz` | anyone | liveness |
 *
 * On the admin port only ({@link adminRouter}; a tenant HTTPRoute, which may reference the
 * policy Service's data port through KEA's ReferenceGrant, cannot reach it): `GET /healthz`,
 * `GET /readyz` (readiness: a snapshot is served; lists configuration errors), `GET /metrics`
 * (Prometheus text). The rest above is part of KEA's published gateway surface (the portal
 * route): `/services` and `/router/loadbalancer|validate` need an authenticated caller,
 * `/router/cache` and `/logs` the admin role.
 *
 * `/services/{ns}/{name}/predict` is part of the data path (see server.ts), not of this router.
 * With several worker processes (`--workers n`), {@link clusterManagementRouter} answers
 * `/metrics`, `/logs` and `/router/cache` over all workers instead (see its table).
 * "admin" means the role `adminRole` (default `admin`) in the roles claim. Errors are RFC 9457
 * problems, like the data path's.
 */
import express, { type NextFunction, type Request, type Response, type Router } from 'express';
import type { IncomingMessage } from 'node:http';
import { AuthError, authorize, type ClaimPaths, type Identity } from './auth/index.js';
import type { AuditLog, AuditRecord } from './audit.js';
import type { SharedAuditLog, SharedAuditRecord } from './shared-audit.js';
import type { Gathered, LocalHandlers, WorkerAnswer, WorkerPeer } from './cluster.js';
import { findPollution, jsonDepth } from './datapath/body.js';
import { canonicalJson } from '../lib/canonical-json.js';
import type { CacheStats, ResponseCache } from './datapath/cache.js';
import type { SharedCache } from './datapath/shared-cache.js';
import { DecodeError, explainErrors, extractParams, mapAjvErrors } from './datapath/params.js';
import { problem, type FieldError, type ProblemBody } from './datapath/problem.js';
import { aggregateWorkerMetrics, type Metrics } from './metrics.js';
import type { CompiledOperation, Snapshot } from './snapshot/build.js';
import type { SnapshotStore } from './snapshot/store.js';
import type { SourceHealth } from './sources/types.js';

/** What the management router needs. */
export interface ManagementDeps {
  store: SnapshotStore;
  auth: { authenticate(req: IncomingMessage): Promise<Identity | null>; loginUrl(returnTo: string): string };
  cache: ResponseCache;
  /** The cache's second level in Redis (datapath/shared-cache.ts): purged with the first. */
  sharedCache?: SharedCache;
  audit: AuditLog;
  /** Every replica's audit records in Redis (shared-audit.ts): what `/logs` reads when there is one. */
  sharedAudit?: Pick<SharedAuditLog, 'recent'>;
  metrics: Metrics;
  claimDefaults?: ClaimPaths;
  /** Role that may see caches and logs (default `admin`). */
  adminRole?: string;
  /** Source health for /readyz. */
  sourceHealth?: () => SourceHealth | undefined;
  /** Readiness extra check (e.g. not shutting down). */
  accepting?: () => boolean;
}

type Level = 'authenticated' | 'admin';

function send(res: Response, body: ProblemBody, headers: Record<string, string> = {}): void {
  res
    .status(body.status)
    .set({ 'content-type': 'application/problem+json', 'cache-control': 'no-store', ...headers })
    .end(JSON.stringify(body));
}

function serviceSummary(snap: Snapshot, id: string) {
  const s = snap.services.get(id)!;
  const d = s.def;
  return {
    id,
    namespace: d.namespace,
    name: d.name,
    title: d.title,
    version: d.version,
    basePath: d.basePath,
    mode: d.mode,
    configVersion: d.configVersion,
    operations: s.operations.size,
    defaultOperationId: s.defaultOperation?.def.operationId,
    docsUrl: `/docs/${d.namespace}/${d.name}`,
    openapiUrl: `/openapi/${d.namespace}/${d.name}`,
  };
}

type GuardDeps = Pick<ManagementDeps, 'auth' | 'claimDefaults' | 'adminRole'>;

/** express middleware: authenticates and requires `level` (401 / 403 / login redirect). */
function makeGuard(deps: GuardDeps) {
  const adminRole = deps.adminRole ?? 'admin';
  return (level: Level) =>
    async (req: Request, res: Response, next: NextFunction): Promise<void> => {
      let identity: Identity | null;
      try {
        identity = await deps.auth.authenticate(req);
      } catch (err) {
        if (err instanceof AuthError) {
          send(res, problem('unauthenticated', err.message, { authError: err.code }), { 'www-authenticate': err.wwwAuthenticate });
          return;
        }
        send(res, problem('auth-unavailable', 'credentials could not be checked right now'));
        return;
      }
      const decision = authorize(identity, level === 'admin' ? { mode: 'restricted', roles: [adminRole] } : { mode: 'authenticated' }, deps.claimDefaults);
      if (decision === 'unauthenticated') {
        if (req.method === 'GET' && (req.headers.accept ?? '').includes('text/html')) {
          res.redirect(302, deps.auth.loginUrl(req.originalUrl));
          return;
        }
        send(res, problem('unauthenticated', 'this endpoint requires authentication'), { 'www-authenticate': 'Bearer realm="kea"' });
        return;
      }
      if (decision === 'forbidden') {
        send(res, problem('forbidden', `this endpoint requires the role "${adminRole}"`));
        return;
      }
      res.locals.identity = identity;
      next();
    };
}

/** `GET /healthz`: the process answers (liveness). Served on both the data and the admin port. */
function healthz(r: Router): void {
  r.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
}

/**
 * The admin port's router (`--admin-port`, default 8001; not exposed by the gateway-facing
 * Service, so no HTTPRoute can reach it): `GET /healthz`, `GET /readyz` (snapshot, source
 * health and configuration errors: the names and messages of every tenant's broken
 * ConfigMaps) and `GET /metrics` (Prometheus text). Unauthenticated: kubelet probes and
 * Prometheus scrapes reach it on the pod IP only.
 */
export function adminRouter(deps: Pick<ManagementDeps, 'store' | 'metrics' | 'sourceHealth' | 'accepting'>): Router {
  const r = express.Router();
  healthz(r);

  r.get('/readyz', (_req, res) => {
    const store = deps.store;
    const snap = store.current;
    const source = deps.sourceHealth?.();
    const accepting = deps.accepting?.() ?? true;
    const ready = store.ready && accepting;
    res.status(ready ? 200 : 503).json({
      status: ready ? 'ready' : 'not ready',
      snapshot: {
        origin: store.origin,
        generation: snap.generation,
        builtAt: new Date(snap.builtAt).toISOString(),
        services: snap.services.size,
        operations: snap.operations.size,
      },
      source,
      configErrors: snap.errors,
      accepting,
    });
  });

  r.get('/metrics', async (_req, res) => {
    const snap = deps.store.current;
    deps.metrics.configGeneration.set(snap.generation);
    deps.metrics.configErrors.set(snap.errors.length);
    deps.metrics.configServices.set(snap.services.size);
    res.set('content-type', deps.metrics.registry.contentType).send(await deps.metrics.registry.metrics());
  });
  return r;
}

/**
 * Builds the data port's management router (the table above without `/readyz` and
 * `/metrics`, which only {@link adminRouter} serves). Mount at the root.
 */
export function managementRouter(deps: ManagementDeps): Router {
  const r = express.Router();
  const guard = makeGuard(deps);
  healthz(r);

  r.get('/services', guard('authenticated'), (_req, res) => {
    const snap = deps.store.current;
    res.json({ services: [...snap.services.keys()].sort().map((id) => serviceSummary(snap, id)) });
  });

  r.get('/services/:ns/:name', guard('authenticated'), (req, res) => {
    const snap = deps.store.current;
    const id = `${req.params.ns}/${req.params.name}`;
    const s = snap.services.get(id);
    if (!s) return send(res, problem('not-found', `no API ${id}`));
    res.json({
      ...serviceSummary(snap, id),
      upstream: s.def.upstream,
      traffic: s.def.traffic ?? [],
      authorization: s.def.authorization ?? {},
      operations: [...s.operations.values()].map((o) => ({
        operationId: o.def.operationId,
        method: o.method,
        path: o.def.path,
        access: o.def.access,
        cache: o.cache,
        timeoutMs: o.timeoutMs,
        maxBodyBytes: o.maxBodyBytes,
        responseValidation: o.def.responseValidation ?? 'off',
      })),
      versions: (snap.versions.get(id) ?? []).map((v) => ({ version: v.version, digest: v.digest, publishedAt: v.publishedAt })),
    });
  });

  const lb = (snap: Snapshot, id: string) => {
    const s = snap.services.get(id)!;
    return { service: id, configVersion: s.def.configVersion, upstream: s.def.upstream.host, traffic: s.def.traffic ?? [] };
  };
  r.get('/router/loadbalancer', guard('authenticated'), (_req, res) => {
    const snap = deps.store.current;
    res.json({ services: [...snap.services.keys()].sort().map((id) => lb(snap, id)) });
  });
  r.get('/router/loadbalancer/:ns/:name', guard('authenticated'), (req, res) => {
    const snap = deps.store.current;
    const id = `${req.params.ns}/${req.params.name}`;
    if (!snap.services.has(id)) return send(res, problem('not-found', `no API ${id}`));
    res.json(lb(snap, id));
  });

  r.post('/router/validate', guard('authenticated'), express.json({ limit: '2mb' }), (req, res) => {
    const snap = deps.store.current;
    const b = (req.body ?? {}) as { operation?: unknown; service?: unknown; operationId?: unknown; body?: unknown; params?: unknown };
    let key = typeof b.operation === 'string' ? b.operation : undefined;
    if (!key && typeof b.service === 'string') {
      const svc = snap.services.get(b.service);
      key = typeof b.operationId === 'string' ? `${b.service}/${b.operationId}` : svc?.defaultOperation?.key;
    }
    const op: CompiledOperation | undefined = key ? snap.operations.get(key) : undefined;
    if (!op) {
      return send(
        res,
        problem('not-found', 'give "operation": "<ns>/<name>/<operationId>" (or "service" and optional "operationId") of a configured operation'),
      );
    }
    const errors: FieldError[] = [];
    const p = (b.params && typeof b.params === 'object' ? b.params : {}) as {
      path?: Record<string, string>;
      query?: Record<string, string>;
      header?: Record<string, string>;
    };
    if (op.validateParams) {
      const pathValues = op.pathParamNames.map((n) => String(p.path?.[n] ?? ''));
      const rawQuery = Object.entries(p.query ?? {})
        .flatMap(([k, v]) => (Array.isArray(v) ? v : [v]).map((x) => `${encodeURIComponent(k)}=${encodeURIComponent(String(x))}`))
        .join('&');
      const headers: Record<string, string> = {};
      for (const [k, v] of Object.entries(p.header ?? {})) headers[k.toLowerCase()] = String(v);
      try {
        const params = extractParams(op, pathValues, rawQuery, headers);
        if (!op.validateParams(params)) errors.push(...mapAjvErrors(op.validateParams.errors, 'params'));
      } catch (err) {
        if (err instanceof DecodeError) errors.push({ in: err.where, pointer: `/${err.param}`, message: err.fieldMessage });
        else throw err;
      }
    }
    if (op.body) {
      if (b.body === undefined) {
        if (op.body.required) errors.push({ in: 'body', pointer: '', message: 'is required' });
      } else if (op.body.isJson) {
        const raw = Buffer.from(canonicalJson(b.body));
        const polluted = findPollution(b.body);
        if (polluted !== undefined) errors.push({ in: 'body', pointer: polluted, message: 'is a forbidden key (prototype pollution)' });
        else if (jsonDepth(raw, 64) > 64) errors.push({ in: 'body', pointer: '', message: 'nesting deeper than 64 levels' });
        else if (op.body.validate && !op.body.validate(b.body)) errors.push(...explainErrors(op.body.validate, b.body, raw.length, 'body'));
      }
    }
    res.json({ operation: op.key, valid: errors.length === 0, errors });
  });

  r.get('/router/cache', guard('admin'), (_req, res) => {
    res.json(deps.cache.stats());
  });
  r.delete('/router/cache', guard('admin'), (_req, res) => purgeCaches(deps, res));
  r.delete('/router/cache/:ns/:name', guard('admin'), (req, res) => purgeCaches(deps, res, `${req.params.ns}/${req.params.name}`));

  r.get('/logs/:ns/:name', guard('admin'), async (req, res) => {
    const id = `${req.params.ns}/${req.params.name}`;
    const limit = Math.max(1, Math.min(1000, Number(req.query.limit ?? 100) || 100));
    const shared = await readSharedLogs(deps.sharedAudit, id, limit);
    const records = 'records' in shared ? shared.records : deps.audit.recent(id, limit);
    if (!deps.store.current.services.has(id) && records.length === 0) return send(res, problem('not-found', `no API ${id}`));
    res.json(logsAnswer(id, records, shared));
  });

  return r;
}

/**
 * `DELETE /router/cache[/{ns}/{name}]` of one process: the first level is purged at once, the
 * second (Redis), when there is one, by a new generation, and the first level of every other
 * process (replicas, workers) by a pub/sub message in the same Redis script
 * (datapath/shared-cache.ts `followPurges`). Answers
 * `{service?, purged, shared?: 'purged'}`; when Redis does not acknowledge the purge, other
 * replicas may still serve the entries: 503 `cluster-incomplete` with `shared: 'failed'` (retry).
 */
async function purgeCaches(deps: Pick<ManagementDeps, 'cache' | 'sharedCache'>, res: Response, service?: string): Promise<void> {
  const purged = service ? deps.cache.purgeService(service) : deps.cache.purgeAll();
  const body = { ...(service ? { service } : {}), purged, ...(deps.sharedCache ? { shared: 'purged' } : {}) };
  try {
    if (deps.sharedCache) await (service ? deps.sharedCache.purgeService(service) : deps.sharedCache.purgeAll());
  } catch (err) {
    const detail = `the shared cache (Redis) did not acknowledge the purge: other replicas may still serve its entries; retry (${(err as Error).message})`;
    return send(res, problem('cluster-incomplete', detail, { ...body, shared: 'failed' }));
  }
  res.json(body);
}

/** Deps of {@link clusterManagementRouter}. */
export interface ClusterManagementDeps extends GuardDeps {
  store: SnapshotStore;
  /** The worker's side of the cluster IPC (policy-server/cluster.ts). */
  peer: Pick<WorkerPeer, 'ask' | 'worker' | 'workers'>;
  /** Every replica's audit records in Redis (shared-audit.ts): what `/logs` reads when there is one. */
  sharedAudit?: Pick<SharedAuditLog, 'recent'>;
}

/** Summary of who answered, added to every cluster-wide JSON answer. */
function who(g: Gathered) {
  return { workers: g.workers, answered: g.answers.map((a) => ({ worker: a.worker, pid: a.pid })), missing: g.missing, down: g.down };
}

/** Sums the cache statistics of every worker; `hitRatio` is recomputed from the sums. */
export function mergeCacheStats(all: readonly CacheStats[]): CacheStats {
  const out: CacheStats = { entries: 0, bytes: 0, maxBytes: 0, hits: 0, misses: 0, stores: 0, evictions: 0, hitRatio: 0, perService: {} };
  for (const s of all) {
    out.entries += s.entries;
    out.bytes += s.bytes;
    out.maxBytes += s.maxBytes;
    out.hits += s.hits;
    out.misses += s.misses;
    out.stores += s.stores;
    out.evictions += s.evictions;
    for (const [id, p] of Object.entries(s.perService)) {
      const t = (out.perService[id] ??= { entries: 0, hits: 0, misses: 0 });
      t.entries += p.entries;
      t.hits += p.hits;
      t.misses += p.misses;
    }
  }
  const looked = out.hits + out.misses;
  out.hitRatio = looked ? out.hits / looked : 0;
  out.perService = Object.fromEntries(Object.entries(out.perService).sort(([a], [b]) => a.localeCompare(b)));
  return out;
}

/**
 * Merges the audit records of every worker: newest first (by `time`, ISO 8601), each tagged
 * with the worker slot that served it, at most `limit`.
 */
export function mergeAuditRecords(perWorker: ReadonlyArray<WorkerAnswer<AuditRecord[]>>, limit: number): Array<AuditRecord & { worker: number }> {
  const all: Array<AuditRecord & { worker: number }> = [];
  for (const a of perWorker) for (const r of a.value) all.push({ ...r, worker: a.worker });
  all.sort((x, y) => (x.time === y.time ? 0 : (y.time ?? '') < (x.time ?? '') ? -1 : 1));
  return all.slice(0, limit);
}

/** What {@link readSharedLogs} found: the records of every replica, or why there are none. */
type SharedLogs = { records: SharedAuditRecord[] } | { partialReason: string } | { none: true };

/** Reads a service's records from Redis; never throws (a failure is the `partialReason`). */
async function readSharedLogs(shared: Pick<SharedAuditLog, 'recent'> | undefined, id: string, limit: number): Promise<SharedLogs> {
  if (!shared) return { none: true };
  try {
    return { records: await shared.recent(id, limit) };
  } catch (err) {
    return { partialReason: (err as Error).message };
  }
}

/**
 * The body of `GET /logs/{ns}/{name}`: `{service, records}` as without Redis; with Redis,
 * `source: "shared"` (the records of every replica and worker, each with its `replica` and
 * `time`, read from Redis: shared-audit.ts) or, when Redis could not be read, `source: "local"`,
 * `partial: true` and `partialReason` (this replica's records only, still 200).
 */
function logsAnswer(service: string, records: readonly AuditRecord[], shared: SharedLogs) {
  if ('records' in shared) return { service, records, source: 'shared' as const };
  if ('partialReason' in shared)
    return { service, records, source: 'local' as const, partial: true, partialReason: `${shared.partialReason}: this replica's records only` };
  return { service, records };
}

/**
 * What a worker answers when the primary fans a cluster request out (see cluster.ts):
 * its own metrics JSON, audit ring, cache statistics, or a purge.
 */
export function workerLocalHandlers(deps: {
  store: SnapshotStore;
  cache: ResponseCache;
  /** The cache's second level: each worker's purge also purges it (a new generation; several workers' purges are harmless). */
  sharedCache?: SharedCache;
  audit: AuditLog;
  metrics: Metrics;
}): LocalHandlers {
  return {
    metrics: async () => {
      const snap = deps.store.current;
      deps.metrics.configGeneration.set(snap.generation);
      deps.metrics.configErrors.set(snap.errors.length);
      deps.metrics.configServices.set(snap.services.size);
      return deps.metrics.registry.getMetricsAsJSON();
    },
    logs: (args) => {
      const a = args as { service: string; limit: number };
      return deps.audit.recent(a.service, a.limit);
    },
    cacheStats: () => deps.cache.stats(),
    // A second level that does not acknowledge the purge fails this worker's answer: the
    // cluster purge then answers 503 `cluster-incomplete` (its first level is purged all the same).
    purge: async (args) => {
      const service = (args as { service?: string } | undefined)?.service;
      const n = service ? deps.cache.purgeService(service) : deps.cache.purgeAll();
      if (deps.sharedCache) await (service ? deps.sharedCache.purgeService(service) : deps.sharedCache.purgeAll());
      return n;
    },
  };
}

/** 503 `cluster-incomplete`: the primary did not answer a cluster request. */
function clusterUnavailable(res: Response, err: unknown): void {
  send(res, problem('cluster-incomplete', `the cluster did not answer: ${(err as Error).message}`));
}

/**
 * The admin port's `GET /metrics` over every worker (`--workers n`): one exposition aggregated
 * with metrics.ts `aggregateWorkerMetrics`. Mounted before {@link adminRouter}, whose
 * per-process `/metrics` it shadows.
 */
export function clusterAdminRouter(deps: { peer: Pick<WorkerPeer, 'ask'> }): Router {
  const r = express.Router();
  const unavailable = clusterUnavailable;
  r.get('/metrics', async (_req, res) => {
    let g: Gathered<Awaited<ReturnType<Metrics['registry']['getMetricsAsJSON']>>>;
    try {
      g = await deps.peer.ask('metrics');
    } catch (err) {
      return unavailable(res, err);
    }
    const out = await aggregateWorkerMetrics(
      g.answers.map((a) => a.value),
      { workers: g.workers, answered: g.answers.length, restarts: g.restarts },
    );
    res.set('content-type', out.contentType).send(out.text);
  });
  return r;
}

/**
 * The endpoints that must see the whole server when it runs as several worker processes
 * (`--workers n`). Mounted before {@link managementRouter}, whose per-process versions they
 * shadow; same paths, same guards, answers over all workers:
 *
 * | method + path | answer |
 * |---|---|
 * | `GET /logs/{ns}/{name}?limit=` | every worker's records merged, newest first, each with its `worker` (with Redis: read there, see {@link logsAnswer}) |
 * | `GET /router/cache` | statistics summed (`maxBytes` = the configured total), plus `perWorker` |
 * | `DELETE /router/cache[/{ns}/{name}]` | purge broadcast; answered once every running worker acknowledged |
 *
 * Every JSON answer carries `cluster: {workers, answered, missing, down}`. A worker that does
 * not answer within the IPC timeout is listed in `missing` (partial data, still 200); a purge
 * with a `missing` worker answers 503 (retry), since that worker may still hold the entries;
 * `down` workers (restarting) hold nothing. If the primary does not answer: 503.
 *
 * `/metrics` over all workers is on the admin port ({@link clusterAdminRouter}).
 * Deliberately per process: `/healthz`, `/readyz` (a probe's connection lands on one worker,
 * whose own readiness is the answer), `/services`, `/router/loadbalancer`, `/router/validate`
 * (every worker builds its snapshot from the same source).
 */
export function clusterManagementRouter(deps: ClusterManagementDeps): Router {
  const r = express.Router();
  const guard = makeGuard(deps);
  const unavailable = clusterUnavailable;

  r.get('/router/cache', guard('admin'), async (_req, res) => {
    let g: Gathered<CacheStats>;
    try {
      g = await deps.peer.ask('cacheStats');
    } catch (err) {
      return unavailable(res, err);
    }
    res.json({
      ...mergeCacheStats(g.answers.map((a) => a.value)),
      perWorker: g.answers.map((a) => ({
        worker: a.worker,
        pid: a.pid,
        entries: a.value.entries,
        bytes: a.value.bytes,
        maxBytes: a.value.maxBytes,
        hits: a.value.hits,
        misses: a.value.misses,
      })),
      cluster: who(g),
    });
  });

  const purge = async (res: Response, service?: string): Promise<void> => {
    let g: Gathered<number>;
    try {
      g = await deps.peer.ask('purge', { service });
    } catch (err) {
      return unavailable(res, err);
    }
    const purged = g.answers.reduce((n, a) => n + a.value, 0);
    const body = {
      ...(service ? { service } : {}),
      purged,
      perWorker: g.answers.map((a) => ({ worker: a.worker, pid: a.pid, purged: a.value })),
      cluster: who(g),
    };
    if (g.missing.length) {
      return send(res, problem('cluster-incomplete', 'some workers did not acknowledge the purge; they may still serve the entries: retry', body));
    }
    res.json(body);
  };
  r.delete('/router/cache', guard('admin'), (_req, res) => purge(res));
  r.delete('/router/cache/:ns/:name', guard('admin'), (req, res) => purge(res, `${req.params.ns}/${req.params.name}`));

  r.get('/logs/:ns/:name', guard('admin'), async (req, res) => {
    const id = `${req.params.ns}/${req.params.name}`;
    const limit = Math.max(1, Math.min(1000, Number(req.query.limit ?? 100) || 100));
    // With Redis: every worker of every replica wrote there; the workers are not asked.
    const shared = await readSharedLogs(deps.sharedAudit, id, limit);
    if ('records' in shared) {
      if (!deps.store.current.services.has(id) && shared.records.length === 0) return send(res, problem('not-found', `no API ${id}`));
      return res.json(logsAnswer(id, shared.records, shared));
    }
    let g: Gathered<AuditRecord[]>;
    try {
      g = await deps.peer.ask('logs', { service: id, limit });
    } catch (err) {
      return unavailable(res, err);
    }
    const records = mergeAuditRecords(g.answers, limit);
    if (!deps.store.current.services.has(id) && records.length === 0) return send(res, problem('not-found', `no API ${id}`));
    res.json({ ...logsAnswer(id, records, shared), cluster: who(g) });
  });

  return r;
}
