/**
 * Controller scale benchmark (issue 2, item 8): N ApiSchemas, each fronting its own MLService,
 * applied to a dedicated real kube-apiserver + etcd (dev/controlplane.ts) while the built
 * controller (`dist/controller/main.js`, real pipeline, leader election on) runs as a child
 * process.
 *
 * Measures (all wall-clock, this machine, API server and etcd on the same cores):
 *  - `convergeMs`: from the first fixture write until every emitted HTTPRoute exists (public
 *    + internal per ApiSchema), every revision's Deployment and Service exists, and every
 *    ApiSchema has `Accepted=True` for its generation (target ≤ 60 000 ms);
 *  - controller RSS (bytes, from /proc/<pid>/status): peak (the larger of 250 ms VmRSS samples
 *    and VmHWM) and at steady state (target ≤ 150 MiB);
 *  - writes at steady state: every ADDED/MODIFIED/DELETED watch event on the kinds KEA
 *    writes during `steadyMs` (10 s) after convergence (target 0), plus the controller's
 *    own `kea_controller_writes_total` delta.
 *
 * Knobs (env): KEA_SCALE_N (default 1000), KEA_SCALE_NAMESPACES (10), KEA_SCALE_REVISIONS
 * (1 or 2 revisions per MLService; default 1), KEA_SCALE_TIMEOUT_MS (300 000).
 */
import { CONTROLLER_NODE_ARGS, CONTROLLER_ENV } from '../controller/runtime-flags.js';
import type { KubernetesObject } from '@kubernetes/client-node';
import { cpus, totalmem } from 'node:os';
import { startControlPlane, installCrds, REPO_ROOT, KUBE_VERSION, ETCD_VERSION } from '../dev/controlplane.js';
import { pool } from '../controller/apply/index.js';
import { KubeClient, RESOURCES } from '../controller/kube/client.js';
import { Informer } from '../controller/watch/index.js';
import { loadClusterAuth } from '../controller/kube/kubeconfig.js';
import { WriteCounter, ensureBuilt, ensureNamespaces, spawnController } from '../controller/testing/testkit.js';
import { waitFor } from '../dev/testing/wait.js';
import { LABELS, MANAGED_BY_VALUE } from '../lib/api/types.js';

export interface ScaleResult {
  benchmark: 'controller-scale';
  date: string;
  machine: { cpus: number; memBytes: number; node: string; kubeApiserver: string; etcd: string };
  params: { apiSchemas: number; mlServices: number; namespaces: number; revisionsPerMLService: number; expectedRoutes: number; nodeArgs: string[] };
  fixtureApplyMs: number;
  convergeMs: number;
  routesPresent: number;
  servicesPresent: number;
  deploymentsPresent: number;
  acceptedSchemas: number;
  /** Reconcile runs that ended with failed requests (retried). */
  reconcileErrors: number;
  /**
   * Peak controller RSS in bytes: the larger of the 250 ms samples and the kernel's high-water
   * mark (VmHWM), read at the end of the steady window, so a spike between samples counts.
   */
  controllerRssPeakBytes: number;
  /** Highest of the 250 ms RSS samples alone (bytes). */
  controllerRssPeakSampledBytes: number;
  /** VmHWM at the end of the run (bytes). */
  controllerRssHighWaterBytes: number;
  controllerRssSteadyBytes: number;
  /** V8 heap used/total and external memory at steady state (bytes), from prom-client. */
  controllerHeapSteady: { heapUsedBytes: number; heapTotalBytes: number; externalBytes: number };
  steadyWindowMs: number;
  steadyStateWrites: number;
  /** Successful write requests the controller counted in the window (no-ops included). */
  steadyStateControllerWrites: number;
  /** Every API request (GET included) the controller sent in the window. */
  steadyStateControllerRequests: number;
  /** From the first fixture write until the controller sent no write request for 3 s, in ms. */
  quiescentMs: number;
  /** Reconcile runs of the controller (all results), and owners (ApiSchemas + MLServices) it rendered and skipped in them (incremental reconcile). */
  reconcileRuns: number;
  ownersRendered: number;
  ownersSkipped: number;
  controllerWritesTotal: number;
  controllerApiRequests: number;
  targets: { convergeMs: number; rssBytes: number; steadyStateWrites: number };
  pass: { converge: boolean; rss: boolean; steadyWrites: boolean };
}

const MiB = 1024 * 1024;

function fixtures(i: number, ns: string, revisions: number): KubernetesObject[] {
  const name = `svc-${String(i).padStart(4, '0')}`;
  const revs =
    revisions === 2
      ? [
          { name: 'v1', image: 'ghcr.io/kea-dev/examples-iris:v1', weight: 80 },
          { name: 'v2', image: 'ghcr.io/kea-dev/examples-iris:v2', weight: 20 },
        ]
      : [{ name: 'v1', image: 'ghcr.io/kea-dev/examples-iris:v1', weight: 100 }];
  return [
    {
      apiVersion: 'kea.dev/v1alpha1',
      kind: 'MLService',
      metadata: { name, namespace: ns },
      spec: { framework: 'custom', port: 8080, healthPath: '/healthz', revisions: revs.map((r) => ({ ...r, replicas: 1 })) },
    } as KubernetesObject,
    {
      apiVersion: 'kea.dev/v1alpha1',
      kind: 'ApiSchema',
      metadata: { name, namespace: ns },
      spec: {
        target: { mlService: { name } },
        basePath: `/${ns}/${name}`,
        info: { title: `Model ${name}`, version: '1.0.0' },
        defaults: { access: { mode: 'authenticated' }, timeout: '5s' },
        operations: [
          {
            operationId: 'predict',
            method: 'POST',
            path: '/predict',
            summary: 'Predict',
            requestBody: {
              required: true,
              schema: {
                type: 'object',
                required: ['features'],
                properties: { features: { type: 'array', items: { type: 'array', items: { type: 'number' }, minItems: 4, maxItems: 4 } } },
              },
            },
            responses: {
              '200': { description: 'Predictions', schema: { type: 'object', properties: { classes: { type: 'array', items: { type: 'string' } } } } },
            },
            cache: { ttlSeconds: 60, scope: 'shared' },
          },
          {
            operationId: 'info',
            method: 'GET',
            path: '/info',
            summary: 'Model info',
            access: { mode: 'public' },
            responses: { '200': { description: 'Info' } },
          },
        ],
      },
    } as KubernetesObject,
  ];
}

/** Runs the benchmark; returns a JSON-able result (bench/run.ts writes bench/results/scale.json). */
export async function runScaleBench(): Promise<ScaleResult> {
  const N = Number(process.env.KEA_SCALE_N ?? 1000);
  const NSS = Number(process.env.KEA_SCALE_NAMESPACES ?? 10);
  const REVS = Number(process.env.KEA_SCALE_REVISIONS ?? 1) === 2 ? 2 : 1;
  const timeoutMs = Number(process.env.KEA_SCALE_TIMEOUT_MS ?? 300_000);
  const steadyMs = 10_000;
  // Node/V8 settings the controller is meant to run with (docs/performance.md): a small young
  // generation and a capped old generation make V8 collect instead of growing the heap, and
  // two glibc malloc arenas stop per-thread arena growth.
  const nodeArgs = process.env.KEA_SCALE_NODE_ARGS?.split(/\s+/).filter(Boolean) ?? CONTROLLER_NODE_ARGS;
  const log = (m: string) => process.stdout.write(`[scale] ${new Date().toISOString()} ${m}\n`);

  await ensureBuilt(REPO_ROOT);
  const cp = await startControlPlane({ unsafeNoFsync: true });
  log(`control plane up in ${cp.startMs} ms at ${cp.server}`);
  const stopAll: Array<() => Promise<unknown>> = [() => cp.stop()];
  try {
    await installCrds(cp.kubeconfig);
    const client = new KubeClient(loadClusterAuth(cp.kubeconfig));
    const namespaces = Array.from({ length: NSS }, (_, k) => `bench-${k}`);
    await ensureNamespaces(client, 'kea-system', ...namespaces);
    // The dev control plane's service range is a /24 (254 ClusterIPs); N revision Services need
    // more. Extend it with a ServiceCIDR (networking.k8s.io/v1, Kubernetes ≥ 1.33).
    await client.request('POST', '/apis/networking.k8s.io/v1/servicecidrs', {
      body: { apiVersion: 'networking.k8s.io/v1', kind: 'ServiceCIDR', metadata: { name: 'kea-bench' }, spec: { cidrs: ['10.96.0.0/16'] } },
    });

    const ctl = await spawnController({
      repoRoot: REPO_ROOT,
      kubeconfig: cp.kubeconfig,
      identity: 'bench',
      args: ['--system-namespace=kea-system'],
      nodeArgs,
      env: CONTROLLER_ENV,
      echo: true,
    });
    ctl.proc.once('exit', (code, sig) => log(`controller exited: code ${code} signal ${sig}`));
    stopAll.unshift(() => ctl.stop('SIGKILL'));
    await waitFor('controller ready', 30_000, async () => (await ctl.http('/readyz')).status === 200, 200);
    await waitFor('controller leads', 30_000, async () => JSON.parse((await ctl.http('/healthz')).body).leader === true, 200);
    const rssBase = await ctl.rss();
    log(`controller ready, RSS ${(rssBase / MiB).toFixed(1)} MiB`);

    // Track progress with watches (cheaper for the API server than polling lists).
    const expectedRoutes = N * 2;
    const expectedWorkloads = N * REVS;
    const owned = `${LABELS.managedBy}=${MANAGED_BY_VALUE}`;
    const services = new Informer(
      client,
      { name: 'bench-services', ref: RESOURCES['v1/Service'], labelSelector: owned, metadataOnly: true },
      { onChange: () => {}, relistMs: 0 },
    );
    const deployments = new Informer(
      client,
      { name: 'bench-deployments', ref: RESOURCES['apps/v1/Deployment'], labelSelector: owned, metadataOnly: true },
      { onChange: () => {}, relistMs: 0 },
    );
    const routes = new Informer(
      client,
      { name: 'bench-routes', ref: RESOURCES['gateway.networking.k8s.io/v1/HTTPRoute'], labelSelector: `${LABELS.managedBy}=${MANAGED_BY_VALUE}` },
      { onChange: () => {}, relistMs: 0 },
    );
    const schemas = new Informer(client, { name: 'bench-schemas', ref: RESOURCES['kea.dev/v1alpha1/ApiSchema'] }, { onChange: () => {}, relistMs: 0 });
    const trackers = [routes, schemas, services, deployments];
    for (const t of trackers) t.start();
    stopAll.unshift(async () => {
      for (const t of trackers) t.stop();
    });
    await Promise.all(trackers.map((t) => t.waitForSync()));
    const benchCount = (i: Informer) => i.list().filter((r) => r.metadata?.namespace?.startsWith('bench-')).length;
    const benchRoutes = () => routes.list().filter((r) => r.metadata?.namespace?.startsWith('bench-')).length;
    const accepted = () =>
      schemas.list().filter((s) => {
        const st = (s as KubernetesObject & { status?: { conditions?: Array<{ type: string; status: string; observedGeneration?: number }> } }).status;
        const c = st?.conditions?.find((x) => x.type === 'Accepted');
        return c?.status === 'True' && c.observedGeneration === s.metadata?.generation;
      }).length;

    let rssPeak = rssBase;
    // When the high-water mark moved (it catches spikes between two samples): a few lines of
    // `+<s since the first fixture write>: HWM <MiB> (RSS sample <MiB>)`.
    let hwmSeen = 0;
    const hwmSteps: string[] = [];
    let tStart = Date.now();
    const sampler = setInterval(() => {
      void ctl.rss().then(
        (r) => (rssPeak = Math.max(rssPeak, r)),
        () => {},
      );
      void ctl.rssHighWater().then(
        (h) => {
          if (h > hwmSeen + 2 * MiB) {
            hwmSteps.push(
              `+${((Date.now() - tStart) / 1000).toFixed(1)}s: HWM ${(h / MiB).toFixed(1)} MiB (RSS peak sampled so far ${(rssPeak / MiB).toFixed(1)})`,
            );
            hwmSeen = h;
          }
        },
        () => {},
      );
    }, 250);
    stopAll.unshift(async () => clearInterval(sampler));

    const objs = Array.from({ length: N }, (_, i) => fixtures(i, namespaces[i % NSS], REVS)).flat();
    const t0 = Date.now();
    tStart = t0;
    await pool(objs, 32, async (o) => {
      await client.apply(o, 'kea-bench');
    });
    const fixtureApplyMs = Date.now() - t0;
    log(`${objs.length} fixtures applied in ${fixtureApplyMs} ms`);
    let lastLog = 0;
    await waitFor(
      'convergence',
      timeoutMs,
      () => {
        if (ctl.proc.exitCode !== null || ctl.proc.signalCode !== null) return true;
        const r = benchRoutes();
        const a = accepted();
        const sv = benchCount(services);
        const dp = benchCount(deployments);
        if (Date.now() - lastLog > 5000) {
          lastLog = Date.now();
          log(
            `routes ${r}/${expectedRoutes}, services ${sv}/${expectedWorkloads}, deployments ${dp}/${expectedWorkloads}, accepted ${a}/${N}, RSS peak ${(rssPeak / MiB).toFixed(1)} MiB`,
          );
        }
        return r >= expectedRoutes && a >= N && sv >= expectedWorkloads && dp >= expectedWorkloads;
      },
      100,
    ).catch((err: Error) => log(err.message));
    if (ctl.proc.exitCode !== null || ctl.proc.signalCode !== null) throw new Error('controller died during the benchmark (see its stderr above)');
    const convergeMs = Date.now() - t0;
    const routesPresent = benchRoutes();
    const acceptedSchemas = accepted();
    const servicesPresent = benchCount(services);
    const deploymentsPresent = benchCount(deployments);
    log(`converged in ${convergeMs} ms (routes ${routesPresent}, services ${servicesPresent}, deployments ${deploymentsPresent}, accepted ${acceptedSchemas})`);

    // Steady state: let in-flight status writes settle, then count writes for 10 s.
    const metric = async (name: string) => {
      const { body } = await ctl.http('/metrics');
      return body
        .split('\n')
        .filter((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `))
        .reduce((s, l) => s + Number(l.split(' ').pop()), 0);
    };
    // The controller may still be sending its last (no-op) writes: wait until its write
    // counter has not moved for 3 s before the steady-state window. (Its request counter
    // never rests: the Lease is renewed every 2 s.)
    let prev = -1;
    let still = 0;
    while (still < 3 && Date.now() - t0 < timeoutMs) {
      const n = await metric('kea_controller_writes_total');
      still = n === prev ? still + 1 : 0;
      prev = n;
      await new Promise((r) => setTimeout(r, 1000));
    }
    const quiescentMs = Date.now() - t0 - 3000;
    log(`controller quiet after ${quiescentMs} ms`);
    if (process.env.KEA_SCALE_DEBUG) {
      log(
        (await ctl.http('/metrics')).body
          .split('\n')
          .filter(
            (l) =>
              l.startsWith('kea_controller_api_requests_total') ||
              l.startsWith('kea_controller_reconcile_total') ||
              l.startsWith('kea_controller_writes_total'),
          )
          .join('\n'),
      );
      log((await ctl.http('/readyz')).body);
    }
    const writesBefore = await metric('kea_controller_writes_total');
    const requestsBefore = await metric('kea_controller_api_requests_total');
    const counter = new WriteCounter(client);
    await counter.start();
    await new Promise((r) => setTimeout(r, steadyMs));
    counter.stop();
    const writesAfter = await metric('kea_controller_writes_total');
    const requestsAfter = await metric('kea_controller_api_requests_total');
    const rssSteady = await ctl.rss();
    clearInterval(sampler);
    const rssHwm = await ctl.rssHighWater();
    const rssSampled = rssPeak;
    rssPeak = Math.max(rssPeak, rssHwm);
    log(`RSS peak: sampled ${(rssSampled / MiB).toFixed(1)} MiB, VmHWM ${(rssHwm / MiB).toFixed(1)} MiB`);
    log(`VmHWM steps: ${hwmSteps.join('; ')}`);
    const apiRequests = await metric('kea_controller_api_requests_total');
    const heap = {
      heapUsedBytes: await metric('kea_controller_nodejs_heap_size_used_bytes'),
      heapTotalBytes: await metric('kea_controller_nodejs_heap_size_total_bytes'),
      externalBytes: await metric('kea_controller_nodejs_external_memory_bytes'),
    };
    log(`controller heap ${JSON.stringify(heap)}`);
    if (process.env.KEA_SCALE_HEAPSNAPSHOT) {
      // Diagnostics: with KEA_SCALE_NODE_ARGS=--heapsnapshot-signal=SIGUSR2 the controller writes
      // a heap snapshot (after a full GC) into its cwd; the heap after that is the live set.
      ctl.proc.kill('SIGUSR2');
      await new Promise((r) => setTimeout(r, Number(process.env.KEA_SCALE_HEAPSNAPSHOT)));
      log(
        `after snapshot (full GC): heapUsed ${((await metric('kea_controller_nodejs_heap_size_used_bytes')) / MiB).toFixed(1)} MiB, RSS ${((await ctl.rss()) / MiB).toFixed(1)} MiB`,
      );
    }
    // The controller's runs (its `reconciled` log records): owners rendered, objects applied.
    const runs = ctl.logs.filter((r) => r.message === 'reconciled');
    for (const r of runs) {
      const at = typeof r.time === 'string' ? `+${((Date.parse(r.time) - t0) / 1000).toFixed(1)}s` : '';
      log(
        `run ${at}: rendered ${r.rendered ?? '?'}, desired ${r.desired}, applied ${r.applied}, statusWrites ${r.statusWrites}, pruned ${r.pruned}, renderMs ${r.renderMs}, applyMs ${r.applyMs}`,
      );
    }
    const ownersRendered = await metric('kea_controller_owners_rendered_total');
    const ownersSkipped = await metric('kea_controller_owners_skipped_total');
    log(
      `steady: ${counter.writes.length} writes observed, controller writes delta ${writesAfter - writesBefore}, requests delta ${requestsAfter - requestsBefore}, RSS ${(rssSteady / MiB).toFixed(1)} MiB`,
    );

    const targets = { convergeMs: 60_000, rssBytes: 150 * MiB, steadyStateWrites: 0 };
    const converged =
      routesPresent >= expectedRoutes && acceptedSchemas >= N && servicesPresent >= expectedWorkloads && deploymentsPresent >= expectedWorkloads;
    return {
      benchmark: 'controller-scale',
      date: new Date().toISOString(),
      machine: { cpus: cpus().length, memBytes: totalmem(), node: process.version, kubeApiserver: KUBE_VERSION, etcd: ETCD_VERSION },
      params: { apiSchemas: N, mlServices: N, namespaces: NSS, revisionsPerMLService: REVS, expectedRoutes, nodeArgs },
      fixtureApplyMs,
      convergeMs,
      routesPresent,
      servicesPresent,
      deploymentsPresent,
      acceptedSchemas,
      reconcileErrors: await metric('kea_controller_reconcile_total{result="error"}'),
      controllerRssPeakBytes: rssPeak,
      controllerRssPeakSampledBytes: rssSampled,
      controllerRssHighWaterBytes: rssHwm,
      controllerRssSteadyBytes: rssSteady,
      controllerHeapSteady: heap,
      steadyWindowMs: steadyMs,
      steadyStateWrites: counter.writes.length,
      steadyStateControllerWrites: writesAfter - writesBefore,
      steadyStateControllerRequests: requestsAfter - requestsBefore,
      quiescentMs,
      reconcileRuns: await metric('kea_controller_reconcile_total'),
      ownersRendered,
      ownersSkipped,
      controllerWritesTotal: writesAfter,
      controllerApiRequests: apiRequests,
      targets,
      pass: {
        converge: converged && convergeMs <= targets.convergeMs,
        rss: rssPeak <= targets.rssBytes,
        steadyWrites: counter.writes.length === 0 && writesAfter - writesBefore === 0,
      },
    };
  } finally {
    for (const s of stopAll) await s().catch(() => {});
  }
}
