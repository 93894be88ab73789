/**
 * End-to-end test of the controller process (`node dist/controller/main.js`, the real
 * graph → IR → render stages) against the real kube-apiserver + etcd of
 * test/global-setup.ts: two replicas with Lease leader election, the samples from
 * manifests/samples reconciled into Deployments, Services, HTTPRoutes, a ReferenceGrant and
 * policy ConfigMaps; weights changed; an unresolvable cross-namespace reference reported in
 * status and by an Event; the leader killed and the standby taking over; a restart writing
 * nothing; deletion pruning everything. Run in band (one controller set per API server).
 */
import { readFileSync } from 'node:fs';
import type { KubernetesObject } from '@kubernetes/client-node';
import { FIELD_MANAGER, type MLService } from '../lib/api/types.js';
import { apiConfigMapName } from '../lib/policy/config.js';
import { KubeClient, KubeError, RESOURCES } from './kube/client.js';
import { APPLIED_HASH } from './kube/applied-hash.js';
import { WriteCounter, applyAll, ensureBuilt, ensureNamespaces, metricSum, parseYaml, spawnController, type ControllerProcess } from './testing/testkit.js';
import { waitFor } from '../dev/testing/wait.js';
import { loadClusterAuth } from './kube/kubeconfig.js';
import { internalRouteName } from './graph/names.js';

const REPO = new URL('..', import.meta.url).pathname.replace(/\/$/, '');
const SYS = 'kea-it-system';
const NS = 'kea-it-apps';
const OTHER = 'kea-it-backends';
const LEASE = 'kea-it';
const R = {
  route: RESOURCES['gateway.networking.k8s.io/v1/HTTPRoute'],
  grant: RESOURCES['gateway.networking.k8s.io/v1beta1/ReferenceGrant'],
  deploy: RESOURCES['apps/v1/Deployment'],
  svc: RESOURCES['v1/Service'],
  cm: RESOURCES['v1/ConfigMap'],
  schema: RESOURCES['kea.dev/v1alpha1/ApiSchema'],
  mls: RESOURCES['kea.dev/v1alpha1/MLService'],
  lease: RESOURCES['coordination.k8s.io/v1/Lease'],
  event: RESOURCES['v1/Event'],
};

let client: KubeClient;
const procs: ControllerProcess[] = [];

type Obj = KubernetesObject & { spec?: any; status?: any; data?: Record<string, string> }; // eslint-disable-line @typescript-eslint/no-explicit-any

async function spawn(identity: string): Promise<ControllerProcess> {
  const p = await spawnController({
    repoRoot: REPO,
    kubeconfig: process.env.KUBECONFIG!,
    identity,
    args: [`--system-namespace=${SYS}`, `--lease-name=${LEASE}`, '--lease-duration-ms=4000', '--renew-deadline-ms=3000', '--retry-period-ms=500'],
  });
  procs.push(p);
  return p;
}

const samples = (): Obj[] =>
  ['iris-mlservice', 'iris-apischema', 'grades-apischema'].flatMap((f) => parseYaml(readFileSync(`${REPO}/manifests/samples/${f}.yaml`, 'utf8')));

const get = (ref: (typeof R)[keyof typeof R], ns: string, name: string) => client.get<Obj>(ref, ns, name);
const gone = async (ref: (typeof R)[keyof typeof R], ns: string, name: string) => {
  try {
    await client.get(ref, ns, name);
    return false;
  } catch (err) {
    return err instanceof KubeError && err.statusCode === 404;
  }
};
const cond = (o: Obj, type: string) => (o.status?.conditions ?? []).find((c: { type: string }) => c.type === type);
const writesMetric = (p: ControllerProcess): Promise<number> => metricSum(p, 'kea_controller_writes_total{');
const holder = async () => (await get(R.lease, SYS, LEASE)).spec.holderIdentity as string | null;

beforeAll(async () => {
  client = new KubeClient(loadClusterAuth(process.env.KUBECONFIG));
  await ensureBuilt(REPO);
  await ensureNamespaces(client, SYS, NS, OTHER);
  await client.delete(R.grant, OTHER, 'allow-apps'); // left by an earlier run on a reused API server
}, 180_000);

afterAll(async () => {
  for (const p of procs) await p.stop('SIGKILL');
  await client.delete(R.grant, OTHER, 'allow-apps');
  for (const ref of [R.schema, R.mls]) {
    for (const ns of [NS, OTHER]) for (const o of (await client.list(ref, { namespace: ns })).items) await client.delete(ref, ns, o.metadata!.name!);
  }
});

test('two replicas: exactly one leader, only it writes; the samples become Gateway API objects', async () => {
  const a = await spawn('replica-a');
  const b = await spawn('replica-b');
  await waitFor('a leader', 20_000, async () => (await holder().catch(() => null)) ?? undefined, 200);
  await applyAll(client, samples(), NS);

  // Deployments and Services per revision, with owner references, probes and resources.
  const d1 = await waitFor('deployment iris-v1', 30_000, () => get(R.deploy, NS, 'iris-v1').catch(() => undefined), 200);
  const mls = await get(R.mls, NS, 'iris');
  expect(d1.metadata?.ownerReferences?.[0]).toMatchObject({ kind: 'MLService', name: 'iris', uid: mls.metadata?.uid, controller: true });
  const container = d1.spec.template.spec.containers[0];
  expect(container.image).toBe('ghcr.io/kea-dev/examples-iris:v1');
  expect(container.readinessProbe.httpGet.path).toBe('/healthz');
  expect(container.resources.limits.memory).toBe('512Mi');
  expect(d1.metadata?.annotations?.[APPLIED_HASH]).toMatch(/^[0-9a-f]{64}$/);
  expect(d1.metadata?.managedFields?.find((f) => f.manager === FIELD_MANAGER)?.operation).toBe('Apply');
  await waitFor('services', 30_000, async () => (await get(R.svc, NS, 'iris-v1')) && (await get(R.svc, NS, 'iris-v2')), 200);

  // Internal route: in the system namespace (tenants cannot read its token), named after its
  // hostname, weighted backendRefs in percent to the tenant's Services, token match; a
  // ReferenceGrant beside the Services lets it reach them (docs/adr/0009-internal-routes.md).
  const internal = await waitFor('internal route', 30_000, () => get(R.route, SYS, internalRouteName(`iris.${NS}.kea.internal`)).catch(() => undefined), 200);
  expect(internal.spec.hostnames).toEqual([`iris.${NS}.kea.internal`]);
  expect(internal.spec.parentRefs[0]).toMatchObject({ name: 'kea', namespace: SYS, sectionName: 'internal' });
  expect(internal.spec.rules[0].backendRefs.map((r: { name: string; namespace: string; weight: number }) => `${r.namespace}/${r.name}:${r.weight}`)).toEqual([
    `${NS}/iris-v1:80`,
    `${NS}/iris-v2:20`,
  ]);
  expect(JSON.stringify(internal.spec.rules[0].matches)).toContain('x-kea-internal-token');
  expect(internal.metadata?.labels?.['kea.dev/owner']).toBe(`MLService.${NS}.iris`);
  const internalGrant = await waitFor(
    'internal grant',
    30_000,
    () => get(R.grant, NS, internalRouteName(`iris.${NS}.kea.internal`)).catch(() => undefined),
    200,
  );
  expect(internalGrant.spec).toEqual({
    from: [{ group: 'gateway.networking.k8s.io', kind: 'HTTPRoute', namespace: SYS }],
    to: [
      { group: '', kind: 'Service', name: 'iris-v1' },
      { group: '', kind: 'Service', name: 'iris-v2' },
    ],
  });
  // No HTTPRoute in the tenant's namespace names the internal listener.
  const tenantRoutes = (await client.list(R.route, { namespace: NS })).items as Array<
    KubernetesObject & { spec: { parentRefs: Array<{ sectionName?: string }> } }
  >;
  expect(tenantRoutes.filter((r) => r.spec.parentRefs.some((p) => p.sectionName === 'internal')).map((r) => r.metadata?.name)).toEqual([]);

  // Public route: one rule per operation → policy server, operation identified by header.
  const pub = await waitFor('public route', 30_000, () => get(R.route, NS, 'kea-api-grades').catch(() => undefined), 200);
  expect(pub.spec.rules).toHaveLength(2);
  const rule0 = JSON.stringify(pub.spec.rules);
  expect(rule0).toContain(`${NS}/grades/get_grades`);
  expect(rule0).toContain(`${NS}/grades/set_grades`);
  expect(pub.spec.rules[0].backendRefs[0]).toMatchObject({ name: 'kea-policy', namespace: SYS, port: 8000 });
  // Cross-namespace backendRef → a ReferenceGrant in the system namespace.
  const grant = await waitFor('grant', 30_000, () => get(R.grant, SYS, `kea-policy-from-${NS}`).catch(() => undefined), 200);
  expect(grant.spec.from[0]).toMatchObject({ kind: 'HTTPRoute', namespace: NS });
  // Policy config for the policy server.
  const cm = await waitFor('policy configmap', 30_000, () => get(R.cm, SYS, apiConfigMapName(NS, 'iris')).catch(() => undefined), 200);
  expect(JSON.parse(cm.data!['policy.json']).operations[0].operationId).toBe('predict');
  expect(JSON.parse(cm.data!['openapi.json']).openapi).toMatch(/^3\.0\./);
  // The gateway-level portal route.
  await waitFor('portal route', 30_000, () => get(R.route, SYS, 'kea-portal').catch(() => undefined), 200);

  // Status conditions with observedGeneration.
  const iris = await waitFor(
    'iris Accepted',
    30_000,
    async () => {
      const s = await get(R.schema, NS, 'iris');
      return cond(s, 'Accepted')?.status === 'True' && cond(s, 'ResolvedRefs')?.status === 'True' ? s : undefined;
    },
    200,
  );
  expect(cond(iris, 'Accepted').observedGeneration).toBe(iris.metadata?.generation);

  // Ready follows the revisions' Deployment status (no kubelet here: write it as one would).
  // (First "not created yet", until the controller's own Deployments reach its informer.)
  const notReady = await waitFor(
    'iris Ready=False for lack of replicas',
    30_000,
    async () => {
      const m = await get(R.mls, NS, 'iris');
      const c = cond(m, 'Ready');
      return c?.status === 'False' && c.message.includes('available replicas') ? m : undefined;
    },
    200,
  );
  expect(cond(notReady, 'Ready').message).toContain('has 0/1 available replicas');
  for (const name of ['iris-v1', 'iris-v2']) {
    await client.request('PATCH', client.objectPath(R.deploy, NS, name, 'status'), {
      body: { status: { replicas: 1, readyReplicas: 1, availableReplicas: 1 } },
      contentType: 'application/merge-patch+json',
    });
  }
  const ready = await waitFor(
    'iris Ready=True',
    30_000,
    async () => {
      const m = await get(R.mls, NS, 'iris');
      return cond(m, 'Ready')?.status === 'True' ? m : undefined;
    },
    200,
  );
  expect(cond(ready, 'Ready').message).toContain('v1 1/1');

  // Exactly one replica leads and writes.
  const leaderId = await holder();
  const [leader, follower] = leaderId === 'replica-a' ? [a, b] : [b, a];
  expect([a.identity, b.identity]).toContain(leaderId);
  expect(JSON.parse((await leader.http('/healthz')).body).leader).toBe(true);
  expect(JSON.parse((await follower.http('/healthz')).body).leader).toBe(false);
  expect((await follower.http('/readyz')).status).toBe(200);
  expect(await writesMetric(leader)).toBeGreaterThan(0);
  expect(await writesMetric(follower)).toBe(0);
  // The follower ran its batches (informers warm) but rendered nothing.
  expect(await metricSum(follower, 'kea_controller_reconcile_total{result="follower"}')).toBeGreaterThan(0);
  expect(await metricSum(follower, 'kea_controller_owners_rendered_total{')).toBe(0);
  expect(await metricSum(leader, 'kea_controller_owners_rendered_total{')).toBeGreaterThan(0);
});

test('change weights → the internal route follows', async () => {
  const m = samples().find((o) => o.kind === 'MLService') as unknown as MLService;
  m.spec.revisions[0].weight = 30;
  m.spec.revisions[1].weight = 70;
  await applyAll(client, [m as unknown as KubernetesObject], NS);
  await waitFor(
    '30/70',
    30_000,
    async () => {
      const r = await get(R.route, SYS, internalRouteName(`iris.${NS}.kea.internal`));
      return r.spec.rules[0].backendRefs.map((x: { weight: number }) => x.weight).join() === '30,70';
    },
    200,
  );
  await waitFor(
    'mls status traffic',
    30_000,
    async () => {
      const s = await get(R.mls, NS, 'iris');
      return (s.status?.traffic ?? []).map((t: { weight: number }) => t.weight).join() === '30,70';
    },
    200,
  );
});

test('an ungranted cross-namespace reference → ResolvedRefs=False with a message and a Warning Event', async () => {
  const legacy: Obj[] = [
    { apiVersion: 'v1', kind: 'Service', metadata: { name: 'legacy', namespace: OTHER }, spec: { ports: [{ port: 80, protocol: 'TCP' }] } },
    {
      apiVersion: 'kea.dev/v1alpha1',
      kind: 'ApiSchema',
      metadata: { name: 'legacy', namespace: NS },
      spec: {
        target: { service: { name: 'legacy', namespace: OTHER, port: 80 } },
        basePath: '/legacy',
        info: { title: 'Legacy', version: '1.0.0' },
        operations: [{ operationId: 'status', method: 'GET', path: '/status', access: { mode: 'public' } }],
      },
    },
  ];
  await applyAll(client, legacy);
  const s = await waitFor(
    'ResolvedRefs=False',
    30_000,
    async () => {
      const x = await get(R.schema, NS, 'legacy');
      return cond(x, 'ResolvedRefs')?.status === 'False' ? x : undefined;
    },
    200,
  );
  const c = cond(s, 'ResolvedRefs');
  expect(c.reason).toBe('RefNotPermitted');
  expect(c.message).toContain(OTHER);
  expect(c.message).toContain('ReferenceGrant');
  const ev = await waitFor(
    'warning event',
    30_000,
    async () => {
      const l = await client.list(R.event, { namespace: NS });
      return l.items.find((e) => (e as Obj & { involvedObject: { uid: string } }).involvedObject.uid === s.metadata?.uid);
    },
    200,
  );
  expect(ev).toMatchObject({ type: 'Warning' });

  // Granting the reference resolves it.
  await applyAll(client, [
    {
      apiVersion: 'gateway.networking.k8s.io/v1beta1',
      kind: 'ReferenceGrant',
      metadata: { name: 'allow-apps', namespace: OTHER },
      spec: { from: [{ group: 'gateway.networking.k8s.io', kind: 'HTTPRoute', namespace: NS }], to: [{ group: '', kind: 'Service' }] },
    } as Obj,
  ]);
  await waitFor('ResolvedRefs=True', 30_000, async () => cond(await get(R.schema, NS, 'legacy'), 'ResolvedRefs')?.status === 'True', 200);
});

test('kill the leader → the standby takes over and keeps reconciling', async () => {
  const leaderId = await holder();
  const leader = procs.find((p) => p.identity === leaderId)!;
  const standby = procs.find((p) => p.identity !== leaderId && p.proc.exitCode === null)!;
  await leader.stop('SIGKILL');
  const t0 = Date.now();
  await waitFor('standby leads', 20_000, async () => (await holder()) === standby.identity, 200);
  const takeoverMs = Date.now() - t0;
  expect(takeoverMs).toBeLessThan(15_000);
  const m = samples().find((o) => o.kind === 'MLService') as unknown as MLService;
  m.spec.revisions[0].weight = 60;
  m.spec.revisions[1].weight = 40;
  await applyAll(client, [m as unknown as KubernetesObject], NS);
  await waitFor(
    '60/40 by the new leader',
    30_000,
    async () => {
      const r = await get(R.route, SYS, internalRouteName(`iris.${NS}.kea.internal`));
      return r.spec.rules[0].backendRefs.map((x: { weight: number }) => x.weight).join() === '60,40';
    },
    200,
  );
  expect(await writesMetric(standby)).toBeGreaterThan(0);
});

test('restart the controller → zero diff, zero writes', async () => {
  const running = procs.find((p) => p.proc.exitCode === null && p.proc.signalCode === null)!;
  // Converged first: no writes for 2 s.
  await waitFor(
    'converged',
    30_000,
    async () => {
      const c = new WriteCounter(client);
      await c.start();
      await new Promise((r) => setTimeout(r, 2000));
      c.stop();
      return c.writes.length === 0;
    },
    0,
  );
  expect(await running.stop('SIGTERM')).toBe(0);
  // SIGTERM released the Lease.
  expect(await holder()).toBeFalsy();
  const counter = new WriteCounter(client);
  await counter.start();
  const fresh = await spawn('replica-c');
  await waitFor('replica-c leads', 20_000, async () => (await holder()) === 'replica-c', 200);
  await waitFor(
    'first reconcile',
    30_000,
    async () => {
      const { body } = await fresh.http('/metrics');
      return /kea_controller_reconcile_total\{result="ok"\} [1-9]/.test(body);
    },
    200,
  );
  await new Promise((r) => setTimeout(r, 5000));
  counter.stop();
  expect(counter.writes).toEqual([]);
  expect(await writesMetric(fresh)).toBe(0);
});

test('delete → every emitted object is pruned', async () => {
  for (const [ref, name] of [
    [R.schema, 'iris'],
    [R.schema, 'grades'],
    [R.schema, 'legacy'],
    [R.mls, 'iris'],
  ] as const)
    await client.delete(ref, NS, name);
  await waitFor(
    'pruned',
    30_000,
    async () => {
      const checks = await Promise.all([
        gone(R.deploy, NS, 'iris-v1'),
        gone(R.deploy, NS, 'iris-v2'),
        gone(R.svc, NS, 'iris-v1'),
        // Objects in the system namespace have no ownerReference (not allowed across
        // namespaces): apply prunes them by their owner label.
        gone(R.route, SYS, internalRouteName(`iris.${NS}.kea.internal`)),
        gone(R.grant, NS, internalRouteName(`iris.${NS}.kea.internal`)),
        gone(R.route, NS, 'kea-api-grades'),
        gone(R.route, NS, 'kea-api-iris'),
        gone(R.cm, SYS, apiConfigMapName(NS, 'iris')),
        gone(R.grant, SYS, `kea-policy-from-${NS}`),
      ]);
      return checks.every(Boolean);
    },
    200,
  );
  // Hand-written objects are never touched.
  await get(R.svc, NS, 'grades');
  await get(R.svc, OTHER, 'legacy');
});
