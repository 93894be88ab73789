/**
 * KEA controller entrypoint: wires watch → batch → reconcile (graph → IR → render, pure) →
 * apply, with Lease leader election (only the leader applies), a small node:http server for
 * `/healthz`, `/readyz` and `/metrics` (Prometheus text format, prom-client), a JSON logger,
 * and graceful SIGTERM/SIGINT handling (the Lease is released so a standby takes over at
 * once).
 *
 * Run: `node dist/controller/main.js --internal-token-file=<path> [--help]` (or env KEA_INTERNAL_TOKEN).
 * In-process (tests): `startController(loadConfig(argv), deps)`.
 */
import { createServer, type Server } from 'node:http';
import { pathToFileURL } from 'node:url';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { createLogger, flushLogs, type Logger } from '../lib/log.js';
import { exitOnCommandLineError } from '../lib/command-line.js';
import { type ClusterSnapshot, type ControllerConfig, type DiscoveredDoc, type RenderOutput, type StatusUpdate } from './model.js';
import { loadConfig, type LoadedConfig } from './config.js';
import { ClusterWatcher } from './watch/index.js';
import { Batcher } from './batch/index.js';
import { Applier, type ApplyResult, type DesiredStream, streamOfOutput } from './apply/index.js';
import { KubeClient, KubeError, RESOURCES } from './kube/client.js';
import { type ApiSchema, LABELS, MANAGED_BY_VALUE } from '../lib/api/types.js';
import { loadClusterAuth, type ClusterAuth } from './kube/kubeconfig.js';
import { LeaderElector } from './leader/index.js';
import { IncrementalReconciler, IncrementalRestart } from './incremental.js';
import { type DocFetcher, OpenApiDiscovery, gatewayFetcher } from './discover/index.js';
import { apiSchemaHost } from './graph/names.js';
import { checkInternalListener } from './internal-listener.js';
import { GraphMemo, discoverableApiSchemas, type GraphInput } from './graph/index.js';

/** The pure stages: graph → IR → render. */
export type ReconcileFn = (snapshot: ClusterSnapshot, config: ControllerConfig) => RenderOutput;

export interface ControllerDeps {
  /**
   * The pure stages, giving a whole RenderOutput; default: controller/reconcile.ts's
   * `reconcileStream`, applied a chunk at a time.
   */
  reconcile?: ReconcileFn;
  logger?: Logger;
  /** Use these credentials instead of loading them (--kubeconfig, KUBECONFIG, in-cluster). */
  cluster?: ClusterAuth;
  /**
   * Fetches served OpenAPI documents (spec.source.openapi); default: through the Gateway's
   * internal listener at `runtime.internalGatewayUrl` (discover/gatewayFetcher).
   */
  fetchDoc?: DocFetcher;
}

/** Discovery entries when no internal gateway URL is configured: a clear error per ApiSchema. */
function discoveryOff(schemas: ApiSchema[]): Record<string, DiscoveredDoc> {
  const out: Record<string, DiscoveredDoc> = {};
  for (const s of schemas) {
    if (!s.spec.source?.openapi) continue;
    out[`${s.metadata.namespace ?? 'default'}/${s.metadata.name}`] = {
      fetchedAt: new Date(0).toISOString(),
      error:
        'OpenAPI discovery is off: start the controller with --internal-gateway-url (KEA_INTERNAL_GATEWAY_URL), the base URL of the Gateway internal listener',
    };
  }
  return out;
}

/** A running controller. */
export interface ControllerHandle {
  /** Bound port of the health/metrics server. */
  port: number;
  isLeader(): boolean;
  /** True once every informer has listed. */
  isSynced(): boolean;
  /** Result of the last apply run (undefined before the first one). */
  lastApply(): ApplyResult | undefined;
  /** Resolves when no reconcile run is pending or running. */
  idle(): Promise<void>;
  /** Graceful stop: releases the Lease, stops watching, closes the server. */
  stop(): Promise<void>;
}

/**
 * Starts the controller. Resolves once the HTTP server listens (informers sync in the
 * background; `/readyz` turns 200 when they have).
 */
export async function startController(loaded: LoadedConfig, deps: ControllerDeps = {}): Promise<ControllerHandle> {
  const { runtime } = loaded;
  // A copy: gatewayImplementation may fall back to `generic` below.
  const config: ControllerConfig = { ...loaded.config };
  const log = deps.logger ?? createLogger('controller');
  const cluster = deps.cluster ?? loadClusterAuth(runtime.kubeconfig);
  const client = new KubeClient(cluster);

  // ---- metrics
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'kea_controller_' });
  const m = {
    requests: new Counter({
      name: 'kea_controller_api_requests_total',
      help: 'Kubernetes API requests sent (watches excluded), by method and HTTP status (0 = transport error)',
      labelNames: ['method', 'code'],
      registers: [registry],
    }),
    writes: new Counter({
      name: 'kea_controller_writes_total',
      help: 'Successful writes by verb (apply, delete, status, event) and kind',
      labelNames: ['verb', 'kind'],
      registers: [registry],
    }),
    reconciles: new Counter({
      name: 'kea_controller_reconcile_total',
      help: 'Reconcile runs by result (ok, error, follower)',
      labelNames: ['result'],
      registers: [registry],
    }),
    renderSeconds: new Histogram({
      name: 'kea_controller_render_duration_seconds',
      help: 'Time of the pure stages (graph, IR, render) per run',
      buckets: [0.001, 0.005, 0.02, 0.1, 0.5, 2, 10],
      registers: [registry],
    }),
    applySeconds: new Histogram({
      name: 'kea_controller_apply_duration_seconds',
      help: 'Time of the apply stage per run',
      buckets: [0.005, 0.02, 0.1, 0.5, 2, 10, 60],
      registers: [registry],
    }),
    desired: new Gauge({ name: 'kea_controller_desired_objects', help: 'Objects in the last desired state', registers: [registry] }),
    leader: new Gauge({ name: 'kea_controller_leader', help: '1 when this replica holds the Lease', registers: [registry] }),
    watchErrors: new Counter({
      name: 'kea_controller_watch_errors_total',
      help: 'List/watch errors by informer',
      labelNames: ['informer'],
      registers: [registry],
    }),
    ownersRendered: new Counter({
      name: 'kea_controller_owners_rendered_total',
      help: 'ApiSchemas and MLServices run through graph → IR → render by the leader (incremental reconcile), by kind',
      labelNames: ['kind'],
      registers: [registry],
    }),
    ownersSkipped: new Counter({
      name: 'kea_controller_owners_skipped_total',
      help: 'ApiSchemas and MLServices left out of a leader run because none of their inputs changed',
      registers: [registry],
    }),
    fullRestarts: new Counter({
      name: 'kea_controller_incremental_restarts_total',
      help: 'Incremental runs abandoned for a full reconcile (an object claimed across owners)',
      registers: [registry],
    }),
    internalListenerProblems: new Gauge({
      name: 'kea_controller_internal_listener_problems',
      help: 'Findings of the last internal listener check (controller/internal-listener.ts): a Gateway listener admitting other namespaces, foreign routes on it',
      registers: [registry],
    }),
    lastEvent: new Gauge({
      name: 'kea_controller_last_event_timestamp_seconds',
      help: 'When any informer last saw an event or completed a list (Unix seconds)',
      registers: [registry],
    }),
  };
  client.observer = (method, _path, status) => m.requests.inc({ method, code: String(status) });

  // ---- pipeline
  let leader: LeaderElector | undefined;
  let last: ApplyResult | undefined;
  let stopping = false;
  const isLeader = () => (runtime.leaderElection ? (leader?.isLeader() ?? false) : true);
  const applier = new Applier(client, {
    concurrency: runtime.concurrency,
    identity: runtime.identity,
    onWrite: (verb, kind) => m.writes.inc({ verb, kind }),
  });

  // Renders only owners whose inputs changed (controller/incremental.ts); leader only.
  const incremental = new IncrementalReconciler();
  const graphMemo = new GraphMemo();

  // The periodic full reconcile (--full-reconcile-ms): due when the timer fired; taken at the
  // start of the next run, never in the middle of one.
  let fullDue = false;
  const fullTimer =
    runtime.fullReconcileMs > 0
      ? setInterval(() => {
          fullDue = true;
          batcher.trigger();
        }, runtime.fullReconcileMs)
      : undefined;
  fullTimer?.unref();

  const run = async (restarted = false): Promise<void> => {
    if (stopping || !watcher.synced) return; // the last informer's sync triggers again
    if (fullDue) {
      fullDue = false;
      incremental.reset();
    }
    const snapshot: GraphInput = { ...watcher.snapshot(), graphMemo };
    // Served OpenAPI documents: start/stop fetch loops for the current ApiSchemas, then read
    // what has been found so far (a new document or error triggers another batch). Only
    // targets the ApiSchema may reference, by a plain path (graph discoveryRefusal): the
    // fetch carries the internal token.
    if (discovery) {
      discovery.sync(discoverableApiSchemas(snapshot));
      snapshot.discovered = discovery.snapshot();
    } else {
      snapshot.discovered = discoveryOff(snapshot.apiSchemas);
    }
    if (!isLeader()) {
      // A follower keeps its informers and discovered documents warm and renders nothing: a
      // full render per batch would cost a full reconcile's CPU and memory for no write.
      // It applies nothing, so it can remember nothing: taking over renders every owner.
      incremental.reset();
      m.reconciles.inc({ result: 'follower' });
      return;
    }
    // The pure stages run as a stream (graph and IR at the first object, then render object
    // by object) that apply takes a chunk at a time; a custom `deps.reconcile` gives a whole
    // RenderOutput. Time spent inside the stream counts as render time.
    const t0 = performance.now();
    let renderMs = 0;
    // The owned-object cache, indexed once per run: the incremental stream checks skipped
    // owners' objects against it, and apply compares and prunes with it.
    const liveIdx = watcher.ownedIndex();
    let stream: DesiredStream;
    // Statuses of the incremental stream, written by apply after their owner's chunk.
    const statusQueue: StatusUpdate[] = [];
    if (deps.reconcile) stream = streamOfOutput(deps.reconcile(snapshot, config));
    else {
      stream = incremental.stream(
        snapshot,
        config,
        (k, h) => {
          const cur = liveIdx.get(k);
          return cur !== undefined && applier.isCurrent(k, cur, h);
        },
        undefined,
        (st) => statusQueue.push(st),
      );
    }
    const timed: DesiredStream = {
      next: () => {
        const t = performance.now();
        try {
          return stream.next();
        } finally {
          renderMs += performance.now() - t;
        }
      },
    };
    let res: ApplyResult;
    try {
      res = await applier.apply(
        timed,
        {
          ownedIndex: () => liveIdx,
          getResource: (k, ns, n) => watcher.getResource(k, ns, n),
          apiSchemas: () => watcher.informers.apiSchemas.list(),
        },
        () => stopping || !isLeader(),
        deps.reconcile ? undefined : incremental.observe,
        statusQueue,
      );
    } catch (err) {
      if (!(err instanceof IncrementalRestart) || restarted) throw err;
      incremental.reset();
      m.fullRestarts.inc();
      log.info('incremental reconcile abandoned, running in full', { reason: err.message });
      return run(true);
    }
    if (!deps.reconcile) {
      incremental.commit(res.errors.length === 0, (k, ns, n) => applier.statusResourceVersion(k, ns, n));
      const st = incremental.stats;
      m.ownersRendered.inc({ kind: 'ApiSchema' }, st.renderedApiSchemas.length);
      m.ownersRendered.inc({ kind: 'MLService' }, st.renderedMLServices.length);
      m.ownersSkipped.inc(st.skipped);
    }
    m.renderSeconds.observe(renderMs / 1000);
    m.desired.set(res.desired);
    const applyMs = performance.now() - t0 - renderMs;
    m.applySeconds.observe(applyMs / 1000);
    last = res;
    const wrote = res.applied + res.pruned + res.statusWrites + res.events;
    const st = deps.reconcile ? undefined : incremental.stats;
    const renderedOwners = st ? st.renderedApiSchemas.length + st.renderedMLServices.length : 0;
    if (wrote > 0 || res.errors.length > 0 || renderedOwners > 0) {
      log.info('reconciled', {
        schemas: snapshot.apiSchemas.length,
        mlServices: snapshot.mlServices.length,
        desired: res.desired,
        rendered: st ? renderedOwners : undefined,
        // Which owners, when few (the usual case once converged).
        ...(st && renderedOwners > 0 && renderedOwners <= 20 ? { renderedApiSchemas: st.renderedApiSchemas, renderedMLServices: st.renderedMLServices } : {}),
        applied: res.applied,
        unchanged: res.unchanged,
        pruned: res.pruned,
        statusWrites: res.statusWrites,
        events: res.events,
        errors: res.errors.length,
        renderMs: Math.round(renderMs),
        applyMs: Math.round(applyMs),
      });
    }
    if (res.errors.length > 0) {
      m.reconciles.inc({ result: 'error' });
      for (const e of res.errors.slice(0, 10)) log.warn('apply failed', { error: e });
      throw new Error(`${res.errors.length} apply request(s) failed; first: ${res.errors[0]}`);
    }
    m.reconciles.inc({ result: 'ok' });
  };

  const batcher = new Batcher(
    async () => {
      try {
        await run();
      } catch (err) {
        if (!(err instanceof Error && err.message.includes('apply request(s) failed'))) {
          m.reconciles.inc({ result: 'error' });
          log.error('reconcile failed', { error: err instanceof Error ? (err.stack ?? err.message) : String(err) });
        }
        throw err;
      }
    },
    {
      debounceMs: runtime.debounceMs,
      maxDelayMs: runtime.maxDelayMs,
      onError: (_err, retryInMs) => log.info('reconcile will be retried', { retryInMs }),
    },
  );

  const fetchDoc =
    deps.fetchDoc ??
    (runtime.internalGatewayUrl
      ? gatewayFetcher({ internalGatewayUrl: runtime.internalGatewayUrl, internalToken: config.internalToken, hostFor: (s) => apiSchemaHost(config, s) })
      : undefined);
  const discovery = fetchDoc ? new OpenApiDiscovery({ fetchDoc, onChange: () => batcher.trigger() }) : undefined;

  // NGF's policies (render/index.ts) only where NGF's CRDs are served; checked once, at start
  // (restart the controller after installing them). A failed check keeps `ngf`: applying the
  // policies then fails and is reported like any other apply error.
  if (config.gatewayImplementation === 'ngf') {
    try {
      // A real request (the kinds are in RESOURCES, so resource() alone would not ask).
      for (const kind of ['ClientSettingsPolicy', 'UpstreamSettingsPolicy']) {
        await client.list(RESOURCES[`gateway.nginx.org/v1alpha1/${kind}`], { labelSelector: `${LABELS.managedBy}=${MANAGED_BY_VALUE}`, metadataOnly: true });
      }
    } catch (e) {
      if (e instanceof KubeError && e.statusCode === 404) {
        config.gatewayImplementation = 'generic';
        log.info("NGF's ClientSettingsPolicy/UpstreamSettingsPolicy CRDs are not served: emitting standard Gateway API objects only", {
          gatewayImplementation: 'generic',
        });
      } else {
        log.warn("could not check whether NGF's policy CRDs are served; emitting NGF policies", { error: (e as Error).message });
      }
    }
  }

  const watcher = new ClusterWatcher(client, {
    systemNamespace: config.systemNamespace,
    ngfPolicies: config.gatewayImplementation === 'ngf',
    relistMs: runtime.relistMs,
    onChange: (_informer, verb, obj) => {
      m.lastEvent.set(Date.now() / 1000);
      // The echo of KEA's own write (its status write or server-side apply, same
      // resourceVersion) changes nothing a reconcile would act on: no new run for it.
      if ((verb === 'update' || verb === 'add') && obj && applier.isOwnEcho(obj)) return;
      batcher.trigger();
    },
    onError: (informer, err, retryInMs) => {
      m.watchErrors.inc({ informer });
      log.warn('watch error, restarting', { informer, error: err instanceof Error ? err.message : String(err), retryInMs });
    },
  });

  if (runtime.leaderElection) {
    leader = new LeaderElector(client, {
      namespace: runtime.leaseNamespace,
      name: runtime.leaseName,
      identity: runtime.identity,
      leaseDurationMs: runtime.leaseDurationMs,
      renewDeadlineMs: runtime.renewDeadlineMs,
      retryPeriodMs: runtime.retryPeriodMs,
      onStartedLeading: () => {
        m.leader.set(1);
        log.info('became leader', { identity: runtime.identity, lease: `${runtime.leaseNamespace}/${runtime.leaseName}` });
        batcher.trigger();
      },
      onStoppedLeading: () => {
        m.leader.set(0);
        log.warn('stopped leading', { identity: runtime.identity });
      },
      onError: (err) => log.warn('leader election error', { error: err instanceof Error ? err.message : String(err) }),
    });
  } else {
    m.leader.set(1);
  }

  // ---- internal listener guard (docs/adr/0009-internal-routes.md): read-only, at start and
  // every --internal-listener-check-ms; each new set of findings is logged once.
  let listenerReport = '';
  const checkListener = async (): Promise<void> => {
    try {
      const problems = await checkInternalListener(client, config);
      m.internalListenerProblems.set(problems.length);
      const report = JSON.stringify(problems);
      if (report !== listenerReport) for (const p of problems) log.warn('internal listener problem', { ...p });
      listenerReport = report;
    } catch (err) {
      if (!stopping) log.warn('internal listener check failed', { error: err instanceof Error ? err.message : String(err) });
    }
  };
  const listenerTimer = runtime.internalListenerCheckMs > 0 ? setInterval(() => void checkListener(), runtime.internalListenerCheckMs) : undefined;
  listenerTimer?.unref();
  if (listenerTimer) void checkListener();

  // ---- health server
  const health = () => {
    const now = Date.now();
    const informers = watcher.health();
    const failing = informers.filter((h) => h.failingSince && now - h.failingSince > runtime.staleAfterMs);
    return { ok: failing.length === 0, informers, failing: failing.map((h) => h.name), lastEventAt: watcher.lastEventAt() };
  };
  const server: Server = createServer((req, res) => {
    const url = (req.url ?? '/').split('?')[0];
    const json = (code: number, body: unknown) => {
      res.writeHead(code, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    if (url === '/healthz' || url === '/livez') {
      const h = health();
      json(h.ok ? 200 : 503, {
        status: h.ok ? 'ok' : 'failing',
        failing: h.failing,
        lastEventAt: h.lastEventAt ? new Date(h.lastEventAt).toISOString() : null,
        leader: isLeader(),
        identity: runtime.identity,
      });
    } else if (url === '/readyz') {
      const ready = watcher.synced && !stopping;
      json(ready ? 200 : 503, { status: ready ? 'ready' : 'not ready', synced: watcher.synced, leader: isLeader(), informers: health().informers });
    } else if (url === '/metrics') {
      registry.metrics().then(
        (text) => {
          res.writeHead(200, { 'content-type': registry.contentType });
          res.end(text);
        },
        (err: Error) => json(500, { error: err.message }),
      );
    } else {
      json(404, { error: 'not found' });
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(runtime.httpPort, runtime.httpHost, () => resolve());
  });
  const port = (server.address() as { port: number }).port;

  watcher.start();
  leader?.start();
  log.info('controller started', {
    port,
    identity: runtime.identity,
    leaderElection: runtime.leaderElection,
    systemNamespace: config.systemNamespace,
    server: cluster.server,
    credentials: cluster.source,
  });

  return {
    port,
    isLeader,
    isSynced: () => watcher.synced,
    lastApply: () => last,
    idle: () => batcher.idle(),
    async stop() {
      if (stopping) return;
      stopping = true;
      clearInterval(fullTimer);
      clearInterval(listenerTimer);
      log.info('stopping');
      await batcher.close();
      await leader?.stop();
      discovery?.stop();
      watcher.stop();
      await new Promise<void>((r) => server.close(() => r()));
      server.closeAllConnections();
      await client.close();
      log.info('stopped');
    },
  };
}

async function main(): Promise<void> {
  const log = createLogger('controller');
  let loaded: LoadedConfig;
  try {
    loaded = loadConfig(process.argv);
  } catch (err) {
    // --help: exit 0; a bad flag or value: one stderr line and exit 2 (lib/command-line.ts).
    exitOnCommandLineError('kea-controller', err);
    throw err;
  }
  const handle = await startController(loaded, { logger: log });
  let signalled = false;
  const onSignal = (sig: string) => {
    if (signalled) return;
    signalled = true;
    log.info('signal received', { signal: sig });
    const force = setTimeout(() => {
      log.error('graceful stop timed out');
      flushLogs();
      process.exit(1);
    }, 10_000);
    force.unref();
    handle.stop().then(
      () => {
        flushLogs();
        process.exit(0);
      },
      (err: unknown) => {
        log.error('stop failed', { error: String(err) });
        flushLogs();
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => onSignal('SIGTERM'));
  process.on('SIGINT', () => onSignal('SIGINT'));
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((err: unknown) => {
    process.stderr.write(`kea-controller: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  });
}
