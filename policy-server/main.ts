/**
 * Policy server entrypoint: `node dist/policy-server/main.js [options]`.
 *
 * Every option has an environment variable (flags win); a bad flag or value ends the process
 * with one stderr line and exit code 2 (lib/command-line.ts, as for the controller).
 * Authentication settings are the variables `authConfigFromEnv` reads
 * (policy-server/auth/config.ts: `KEA_OIDC_ISSUER`, `KEA_GATEWAY_URL`, `KEA_SESSION_SECRETS`,
 * ...); the `--gateway-url`, `--oidc-*` and `--session-secrets-file` flags override them
 * ({@link authEnv}: a copy of the environment is passed on, `process.env` is never written).
 * Without an issuer, authentication is off: requests carry no identity, so only `public`
 * operations succeed (others answer 401).
 *
 * Configuration source: `--config-dir` (a directory of policy/openapi JSON files, for local
 * runs and benchmarks) or else the Kubernetes API (kubeconfig from `--kubeconfig`,
 * `KUBECONFIG`, or the in-cluster service account), ConfigMaps in `--namespace`.
 * The last good snapshot is persisted under `--state-dir` and served at start.
 *
 * SIGTERM / SIGINT: graceful shutdown (stop accepting, drain in-flight requests, exit 0).
 *
 * Processes: `--workers <n|auto>` (`KEA_POLICY_WORKERS`, default 1). With 1 the server is this
 * one process, exactly as before. With n > 1 this process becomes the cluster primary
 * (policy-server/cluster.ts): it forks n workers sharing the port, restarts crashed ones,
 * relays SIGTERM/SIGINT and exits 0 once every worker has drained. Each worker runs the
 * server below with `--cache-max-bytes / n` (the configured bound stays the total), log
 * records tagged `worker` (slot 1..n) and `pid`, and `/metrics` (admin port), `/logs`,
 * `/router/cache` answered over all workers (management.ts `clusterAdminRouter`,
 * `clusterManagementRouter`).
 *
 * Shared state: `--redis-url` (`KEA_REDIS_URL`, `redis://` or `rediss://` for TLS; password in
 * the URL or `KEA_REDIS_PASSWORD`) and `--redis-timeout-ms` (`KEA_REDIS_TIMEOUT_MS`, default 50,
 * the longest one Redis call may take) give every process (every worker: each opens its own
 * connection) one Redis for the rate-limit counters and the cache's second level
 * (policy-server/redis.ts). Without it, each process enforces every rate limit on its own.
 * Redis being down never fails readiness.
 *
 * Ports: `--port` (data: the gateway's backendRef, the portal, auth and management API) and
 * `--admin-port` (default 8001: `/healthz`, `/readyz`, `/metrics` for kubelet probes and
 * Prometheus; the gateway-facing Service does not expose it).
 */
import cluster from 'node:cluster';
import { readFileSync } from 'node:fs';
import { InvalidArgumentError, Option, type Command } from 'commander';
import type { Router } from 'express';
import { createLogger, flushLogs, type Logger } from '../lib/log.js';
import { exitOnCommandLineError, programCommand } from '../lib/command-line.js';
import type { Authenticator } from './auth/index.js';
import type { AuditRecord } from './audit.js';
import { resolveWorkers, runPrimary, startWorkerPeer, WORKER_ENV, type LocalHandlers } from './cluster.js';
import type { ConfigSource } from './sources/types.js';
import { followTokenFile, tokenFingerprint } from './token-file.js';
// The server's modules (express, the Kubernetes client, auth, prom-client, ...) are imported in
// serve(), not here: the cluster primary never loads them (measured: its RSS stays ~1/3 of a
// server process's).

/** Parsed options. */
export interface MainOptions {
  host: string;
  port: number;
  /** Admin port (`/healthz`, `/readyz`, `/metrics`); 0 = ephemeral. */
  adminPort: number;
  /** Admin listen address (default: `host`). */
  adminHost: string;
  upstreamUrl: string;
  internalToken?: string;
  internalTokenFile?: string;
  /** Period of re-reading `internalTokenFile`, ms. */
  internalTokenReloadMs: number;
  namespace: string;
  stateDir: string;
  configDir?: string;
  kubeconfig?: string;
  rolesClaim?: string;
  groupsClaim?: string;
  scopesClaim?: string;
  adminRole: string;
  cacheMaxBytes: number;
  /** Keep-alive connections to the internal listener per service (and per worker). */
  upstreamConnections: number;
  /** Requests in flight per service (and per worker) before 503 `upstream-busy`. */
  upstreamMaxInflight: number;
  /** Request bodies buffered at once, bytes, over all workers, before 503 `server-busy`. */
  maxBufferedRequestBytes: number;
  gatewayUrl?: string;
  oidcIssuer?: string;
  oidcClientId?: string;
  oidcClientSecretFile?: string;
  oidcAudience?: string;
  sessionSecretsFile?: string;
  drainTimeoutMs: number;
  /** Worker processes (1 = single process, no primary). */
  workers: number;
  /** Longest wait for one worker's answer to a cluster request, ms. */
  ipcTimeoutMs: number;
  /** The shared store (policy-server/redis.ts): `redis://` or `rediss://` URL; absent = none. */
  redisUrl?: string;
  /** Redis password (overrides one in the URL). */
  redisPassword?: string;
  /** Longest wait for one Redis call, ms. */
  redisTimeoutMs: number;
}

/** An option parser for a finite number ≥ 0 (ports, bytes, counts, ms); throws InvalidArgumentError naming the flag. */
function num(flag: string): (value: string) => number {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isFinite(n) || n < 0) throw new InvalidArgumentError(`${flag} must be a number ≥ 0, got "${value}"`);
    return n;
  };
}

/**
 * Default of `--redis-timeout-ms`, ms: a Redis call on the same network answers in well under
 * a millisecond; 50 ms bounds what a slow Redis adds to a request.
 */
export const DEFAULT_REDIS_TIMEOUT_MS = 50;

/** The `--redis-timeout-ms` parser: an integer 1..60000; throws InvalidArgumentError. */
function redisTimeout(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 60000) throw new InvalidArgumentError(`--redis-timeout-ms must be an integer 1..60000, got "${value}"`);
  return n;
}

/** The `--workers` parser: `auto` or 1..256 (cluster.ts `resolveWorkers`); throws InvalidArgumentError. */
function workers(value: string): number {
  try {
    return resolveWorkers(value);
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
}

/** The shared store's flags (policy-server/redis.ts): `--redis-url`, `--redis-password`, `--redis-timeout-ms`. */
function addRedisOptions(cmd: Command): void {
  cmd
    .addOption(
      new Option('--redis-url <url>', 'shared store for rate limits and the cache second level: redis://[user:password@]host:port[/db], rediss:// for TLS').env(
        'KEA_REDIS_URL',
      ),
    )
    .addOption(new Option('--redis-password <secret>', 'Redis password (overrides one in --redis-url)').env('KEA_REDIS_PASSWORD'))
    .addOption(
      new Option('--redis-timeout-ms <n>', 'longest wait for one Redis call, ms; slower calls fall back (per-process limits, cache first level)')
        .env('KEA_REDIS_TIMEOUT_MS')
        .default(DEFAULT_REDIS_TIMEOUT_MS)
        .argParser(redisTimeout),
    );
}

/**
 * Parses argv (+ env, read only) into {@link MainOptions}. `--help` prints the help text to
 * stdout and throws (exit code 0).
 * @param argv - as `process.argv` (node and script entries first).
 * @throws commander's CommanderError on `--help`, an unknown flag, an invalid value or a missing
 *   `--upstream-url`; the message names the flag. The entrypoint turns it into an exit code
 *   (lib/command-line.ts `exitOnCommandLineError`: 2, or 0 after `--help`).
 */
export function parseArgs(argv: string[]): MainOptions {
  const cmd = programCommand('kea-policy-server')
    .description("KEA's policy server: SSO, authorization, validation, caching, audit and forwarding in the data path")
    .addOption(new Option('--host <addr>', 'listen address').env('KEA_LISTEN_HOST').default('0.0.0.0'))
    .addOption(new Option('--port <n>', 'listen port').env('KEA_PORT').default(8000).argParser(num('--port')))
    .addOption(
      new Option('--admin-port <n>', 'port of /healthz, /readyz, /metrics (not for the gateway; 0 = ephemeral)')
        .env('KEA_ADMIN_PORT')
        .default(8001)
        .argParser(num('--admin-port')),
    )
    .addOption(new Option('--admin-host <addr>', 'admin listen address (default: --host)').env('KEA_ADMIN_HOST'))
    .addOption(new Option('--upstream-url <url>', "base URL of the gateway's internal listener").env('KEA_INTERNAL_GATEWAY_URL').makeOptionMandatory())
    .addOption(new Option('--internal-token <secret>', 'x-kea-internal-token value').env('KEA_INTERNAL_TOKEN'))
    .addOption(
      new Option('--internal-token-file <path>', 'file holding the internal token, re-read while running (rotation without restart)').env(
        'KEA_INTERNAL_TOKEN_FILE',
      ),
    )
    .addOption(
      new Option('--internal-token-reload-ms <n>', 'how often the internal token file is re-read, ms')
        .env('KEA_INTERNAL_TOKEN_RELOAD_MS')
        .default(2000)
        .argParser(num('--internal-token-reload-ms')),
    )
    .addOption(new Option('--namespace <ns>', 'KEA system namespace (policy ConfigMaps)').env('KEA_SYSTEM_NAMESPACE').default('kea-system'))
    .addOption(new Option('--state-dir <dir>', 'where the last good snapshot is persisted').env('KEA_STATE_DIR').default('/var/lib/kea-policy'))
    .addOption(new Option('--config-dir <dir>', 'read config from a directory instead of Kubernetes').env('KEA_CONFIG_DIR'))
    .addOption(new Option('--kubeconfig <path>', 'kubeconfig (default: KUBECONFIG or in-cluster)'))
    .addOption(new Option('--roles-claim <path>', 'default claim path of roles').env('KEA_ROLES_CLAIM'))
    .addOption(new Option('--groups-claim <path>', 'default claim path of groups').env('KEA_GROUPS_CLAIM'))
    .addOption(new Option('--scopes-claim <path>', 'default claim path of scopes').env('KEA_SCOPES_CLAIM'))
    .addOption(new Option('--admin-role <role>', 'role allowed to read caches and logs').env('KEA_ADMIN_ROLE').default('admin'))
    .addOption(
      new Option('--cache-max-bytes <n>', 'response cache size bound, bytes')
        .env('KEA_CACHE_MAX_BYTES')
        .default(64 * 1024 * 1024)
        .argParser(num('--cache-max-bytes')),
    )
    .addOption(
      new Option('--upstream-connections <n>', 'keep-alive connections to the internal listener, per service')
        .env('KEA_UPSTREAM_CONNECTIONS')
        .default(64)
        .argParser(num('--upstream-connections')),
    )
    .addOption(
      new Option('--upstream-max-inflight <n>', 'requests in flight per service before 503 upstream-busy')
        .env('KEA_UPSTREAM_MAX_INFLIGHT')
        .default(256)
        .argParser(num('--upstream-max-inflight')),
    )
    .addOption(
      new Option('--max-buffered-request-bytes <n>', 'request bodies buffered at once (all workers), bytes, before 503 server-busy')
        .env('KEA_MAX_BUFFERED_REQUEST_BYTES')
        .default(128 * 1024 * 1024)
        .argParser(num('--max-buffered-request-bytes')),
    )
    .addOption(new Option('--gateway-url <url>', 'public gateway URL (docs links; the OIDC redirect URI is this URL + /auth/callback)').env('KEA_GATEWAY_URL'))
    .addOption(new Option('--oidc-issuer <url>', 'OpenID Provider issuer (overrides KEA_OIDC_ISSUER)'))
    .addOption(new Option('--oidc-client-id <id>', 'OAuth client id (overrides KEA_OIDC_CLIENT_ID)'))
    .addOption(new Option('--oidc-client-secret-file <path>', 'file with the client secret (overrides KEA_OIDC_CLIENT_SECRET)'))
    .addOption(new Option('--oidc-audience <aud>', 'expected access token audience (overrides KEA_OIDC_AUDIENCE)'))
    .addOption(new Option('--session-secrets-file <path>', 'file with comma-separated session secrets (overrides KEA_SESSION_SECRETS)'))
    .addOption(
      new Option('--drain-timeout-ms <n>', 'max wait for in-flight requests on SIGTERM')
        .env('KEA_DRAIN_TIMEOUT_MS')
        .default(10000)
        .argParser(num('--drain-timeout-ms')),
    )
    .addOption(
      new Option('--workers <n|auto>', 'worker processes sharing the port; auto = CPUs allowed by affinity and cgroup quota')
        .env('KEA_POLICY_WORKERS')
        .default(1)
        .argParser(workers),
    )
    .addOption(
      new Option('--ipc-timeout-ms <n>', "max wait for one worker's answer to a cluster request (/metrics, /logs, /router/cache)")
        .env('KEA_POLICY_IPC_TIMEOUT_MS')
        .default(2000)
        .argParser(num('--ipc-timeout-ms')),
    );
  addRedisOptions(cmd);
  cmd.parse(argv, { from: 'node' });
  const o = cmd.opts<Record<string, string | number | undefined>>();
  const str = (k: string): string | undefined => (o[k] === undefined ? undefined : String(o[k]));
  return {
    host: String(o.host),
    port: Number(o.port),
    adminPort: Number(o.adminPort),
    adminHost: String(o.adminHost ?? o.host),
    upstreamUrl: String(o.upstreamUrl),
    internalToken: str('internalToken'),
    internalTokenFile: str('internalTokenFile'),
    internalTokenReloadMs: Math.max(100, Number(o.internalTokenReloadMs)),
    namespace: String(o.namespace),
    stateDir: String(o.stateDir),
    configDir: str('configDir'),
    kubeconfig: str('kubeconfig'),
    rolesClaim: str('rolesClaim'),
    groupsClaim: str('groupsClaim'),
    scopesClaim: str('scopesClaim'),
    adminRole: String(o.adminRole),
    cacheMaxBytes: Number(o.cacheMaxBytes),
    upstreamConnections: Number(o.upstreamConnections),
    upstreamMaxInflight: Number(o.upstreamMaxInflight),
    maxBufferedRequestBytes: Number(o.maxBufferedRequestBytes),
    gatewayUrl: str('gatewayUrl'),
    oidcIssuer: str('oidcIssuer'),
    oidcClientId: str('oidcClientId'),
    oidcClientSecretFile: str('oidcClientSecretFile'),
    oidcAudience: str('oidcAudience'),
    sessionSecretsFile: str('sessionSecretsFile'),
    drainTimeoutMs: Number(o.drainTimeoutMs),
    workers: Number(o.workers),
    ipcTimeoutMs: Number(o.ipcTimeoutMs),
    redisUrl: str('redisUrl') || undefined,
    redisPassword: str('redisPassword') || undefined,
    redisTimeoutMs: Number(o.redisTimeoutMs),
  };
}

/**
 * The variables `authConfigFromEnv` (auth/config.ts) reads: a copy of `env` with the
 * authentication flags applied over it (`--gateway-url` → `KEA_GATEWAY_URL`, `--oidc-issuer` →
 * `KEA_OIDC_ISSUER`, `--oidc-client-id` → `KEA_OIDC_CLIENT_ID`, `--oidc-audience` →
 * `KEA_OIDC_AUDIENCE`, the trimmed text of `--oidc-client-secret-file` →
 * `KEA_OIDC_CLIENT_SECRET` and of `--session-secrets-file` → `KEA_SESSION_SECRETS`). `env` is
 * not modified.
 * @throws Error (ENOENT, EACCES, ...) when a secret file cannot be read.
 */
export function authEnv(opts: MainOptions, env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = { ...env };
  if (opts.gatewayUrl) out.KEA_GATEWAY_URL = opts.gatewayUrl;
  if (opts.oidcIssuer) out.KEA_OIDC_ISSUER = opts.oidcIssuer;
  if (opts.oidcClientId) out.KEA_OIDC_CLIENT_ID = opts.oidcClientId;
  if (opts.oidcClientSecretFile) out.KEA_OIDC_CLIENT_SECRET = readFileSync(opts.oidcClientSecretFile, 'utf8').trim();
  if (opts.oidcAudience) out.KEA_OIDC_AUDIENCE = opts.oidcAudience;
  if (opts.sessionSecretsFile) out.KEA_SESSION_SECRETS = readFileSync(opts.sessionSecretsFile, 'utf8').trim();
  return out;
}

/** Authentication off: no identities; any presented credential is rejected with 401. */
async function noAuthenticator(): Promise<Authenticator> {
  const [{ default: express }, { AuthError }] = await Promise.all([import('express'), import('./auth/index.js')]);
  return {
    authenticate: async (req) => {
      if (req.headers.authorization !== undefined) throw new AuthError('invalid_token', 'authentication is not configured on this gateway');
      return null;
    },
    router: () => express.Router() as Router,
    loginUrl: (returnTo) => `/auth/login?returnTo=${encodeURIComponent(returnTo)}`,
    close: async () => undefined,
  };
}

/** Runs the server until SIGTERM/SIGINT. */
export async function main(argv = process.argv): Promise<void> {
  const opts = parseArgs(argv);
  const logger = createLogger('policy-server');
  const internalToken = opts.internalToken || (opts.internalTokenFile ? readFileSync(opts.internalTokenFile, 'utf8').trim() : undefined);
  if (!internalToken) throw new Error('an internal token is required (--internal-token, --internal-token-file, KEA_INTERNAL_TOKEN)');

  if (cluster.isPrimary && opts.workers > 1) {
    // The primary serves no HTTP: it forks the workers (same argv) and supervises them.
    logger.defaultMeta = { ...logger.defaultMeta, role: 'primary', primaryPid: process.pid };
    runPrimary({ workers: opts.workers, logger, drainTimeoutMs: opts.drainTimeoutMs, ipcTimeoutMs: opts.ipcTimeoutMs });
    return;
  }
  await serve(opts, logger, internalToken, authEnv(opts, process.env));
}

/**
 * The shared state of this process with `--redis-url`, else none: one Redis connection per
 * process (each worker its own; connects in the background, policy-server/redis.ts) and the
 * audit records of every replica and worker for `/logs` in it (shared-audit.ts).
 * @param worker - this worker's slot with `--workers n` (written into the audit records).
 */
async function openSharedState(opts: MainOptions, logger: Logger, worker: number | undefined) {
  if (!opts.redisUrl) return { sharedStore: undefined, sharedAudit: undefined };
  const [{ openSharedStore }, { SharedAuditLog }] = await Promise.all([import('./redis.js'), import('./shared-audit.js')]);
  const sharedStore = openSharedStore({ url: opts.redisUrl, password: opts.redisPassword, timeoutMs: opts.redisTimeoutMs, log: logger });
  return { sharedStore, sharedAudit: new SharedAuditLog(sharedStore, { worker }) };
}

/**
 * Runs one server process (the only one, or a cluster worker) until SIGTERM/SIGINT.
 * @param authVars - the authentication variables ({@link authEnv}).
 */
async function serve(opts: MainOptions, logger: Logger, internalToken: string, authVars: NodeJS.ProcessEnv): Promise<void> {
  const [
    { authConfigFromEnv, createAuthenticator },
    { SnapshotDocsStore },
    { createPortalRouter },
    { clusterAdminRouter, clusterManagementRouter, workerLocalHandlers },
    { createPolicyServer },
    { SnapshotStore },
  ] = await Promise.all([
    import('./auth/index.js'),
    import('./docs-store.js'),
    import('./portal/index.js'),
    import('./management.js'),
    import('./server.js'),
    import('./snapshot/store.js'),
  ]);
  const inCluster = cluster.isWorker && process.env[WORKER_ENV.count] !== undefined;
  const workers = inCluster ? Number(process.env[WORKER_ENV.count]) : 1;
  // Filled once the server exists; the primary asks a worker only after its `ready`.
  const localHandlers = {} as LocalHandlers;
  const peer = inCluster ? startWorkerPeer(localHandlers) : undefined;
  if (peer) logger.defaultMeta = { ...logger.defaultMeta, worker: peer.worker, pid: process.pid };

  const authCfg = authConfigFromEnv(authVars);
  const auth = authCfg ? await createAuthenticator(authCfg) : await noAuthenticator();
  if (!authCfg) logger.warn('KEA_OIDC_ISSUER not set: authentication disabled, only public operations succeed');

  const store = new SnapshotStore({ stateDir: opts.stateDir, logger });
  const { sharedStore, sharedAudit } = await openSharedState(opts, logger, peer?.worker);
  let source: ConfigSource;
  if (opts.configDir) source = new (await import('./sources/file.js')).FileSource(opts.configDir);
  else {
    const [k8s, { KubeSource }] = await Promise.all([import('@kubernetes/client-node'), import('./sources/kube.js')]);
    const kc = new k8s.KubeConfig();
    if (opts.kubeconfig) kc.loadFromFile(opts.kubeconfig);
    else kc.loadFromDefault();
    source = new KubeSource({ kubeConfig: kc, namespace: opts.namespace, logger });
  }

  // The docs portal (/docs, /openapi, /methods) reads the published documents of the snapshot.
  const routers: Router[] = [createPortalRouter(new SnapshotDocsStore(store), { gatewayUrl: opts.gatewayUrl ?? '' })];
  // Cluster-wide /logs, /router/cache, mounted before the per-process management API.
  if (peer)
    routers.unshift(
      clusterManagementRouter({
        store,
        peer,
        sharedAudit,
        auth,
        claimDefaults: { rolesClaim: opts.rolesClaim, groupsClaim: opts.groupsClaim, scopesClaim: opts.scopesClaim },
        adminRole: opts.adminRole,
      }),
    );

  const ps = createPolicyServer({
    store,
    auth,
    upstreamUrl: opts.upstreamUrl,
    internalToken,
    claimDefaults: { rolesClaim: opts.rolesClaim, groupsClaim: opts.groupsClaim, scopesClaim: opts.scopesClaim },
    adminRole: opts.adminRole,
    upstreamConnectionsPerService: opts.upstreamConnections,
    upstreamMaxInflightPerService: opts.upstreamMaxInflight,
    // Like the cache bound, the total over all workers.
    maxBufferedRequestBytes: Math.floor(opts.maxBufferedRequestBytes / workers),
    // The configured bound is the total over all workers.
    cache: { maxBytes: Math.floor(opts.cacheMaxBytes / workers) },
    logger,
    routers,
    // Cluster-wide /metrics on the admin port.
    adminRouters: peer ? [clusterAdminRouter({ peer })] : [],
    sourceHealth: () => source.health(),
    drainTimeoutMs: opts.drainTimeoutMs,
    sharedStore,
    sharedAudit,
  });
  if (peer) {
    // /logs merges the rings of all workers newest first: each record needs its end time,
    // which the ring does not otherwise keep (the log line gets its own `time`).
    const end = ps.audit.end.bind(ps.audit);
    ps.audit.end = (r: AuditRecord) => {
      r.time = new Date().toISOString();
      end(r);
    };
    Object.assign(localHandlers, workerLocalHandlers({ store, cache: ps.cache, sharedCache: ps.dataPath.sharedCache, audit: ps.audit, metrics: ps.metrics }));
  }
  // A rotation (docs/adr/0009-internal-routes.md) rewrites the mounted Secret: follow the file.
  const stopTokenFile =
    opts.internalTokenFile && !opts.internalToken
      ? followTokenFile({
          path: opts.internalTokenFile,
          current: internalToken,
          intervalMs: opts.internalTokenReloadMs,
          onChange: (t) => {
            ps.dataPath.internalToken = t;
            logger.info('internal token reloaded', { file: opts.internalTokenFile, fingerprint: tokenFingerprint(t) });
          },
          onError: (message) => logger.warn('internal token file not usable', { error: message }),
        })
      : undefined;
  await store.start(source);
  const port = await ps.listen(opts.port, opts.host);
  const adminPort = await ps.listenAdmin(opts.adminPort, opts.adminHost);
  logger.info('policy server listening', {
    host: opts.host,
    port,
    adminHost: opts.adminHost,
    adminPort,
    upstream: opts.upstreamUrl,
    source: opts.configDir ? 'file' : 'kubernetes',
    workers,
    sharedStore: sharedStore ? 'redis' : 'none (rate limits per process)',
  });
  peer?.ready(port);

  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    logger.info('signal received', { signal });
    void (async () => {
      stopTokenFile?.();
      await ps.close();
      await sharedStore?.close();
      await store.stop();
      await auth.close();
      flushLogs();
      process.exit(0);
    })();
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

const isEntry = process.argv[1] && import.meta.url === new URL(`file://${process.argv[1]}`).href;
if (isEntry) {
  main().catch((err: unknown) => {
    // --help: exit 0; a bad flag or value: one stderr line and exit 2 (lib/command-line.ts).
    exitOnCommandLineError('kea-policy-server', err);
    process.stderr.write(`policy-server: ${(err as Error).message ?? String(err)}\n`);
    flushLogs();
    process.exit(1);
  });
}
