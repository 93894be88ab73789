/**
 * Integration test of the controller runtime (watch → batch → apply, leader election) on the
 * real kube-apiserver from test/global-setup.ts, driven in-process by a tiny local render
 * function (the real pure stages are covered by controller/controller.int.test.ts). It checks
 * the apply semantics themselves: server-side apply under field manager kea-controller with
 * the applied-hash annotation, status writes with lastTransitionTime kept, deduplicated
 * Events, pruning (version ConfigMaps kept while their ApiSchema exists), drift repair, and
 * zero writes once converged, also after a restart.
 */
import { readFileSync } from 'node:fs';
import type { KubernetesObject } from '@kubernetes/client-node';
import { FIELD_MANAGER, LABELS, MANAGED_BY_VALUE, type ApiSchema, type MLService } from '../lib/api/types.js';
import { COMPONENT_API_VERSION } from '../lib/policy/config.js';
import { ownerLabelValue, type ClusterSnapshot, type ControllerConfig, type RenderOutput } from './model.js';
import { loadConfig } from './config.js';
import { startController, type ControllerHandle } from './main.js';
import { KubeClient, KubeError, RESOURCES } from './kube/client.js';
import { APPLIED_HASH } from './kube/applied-hash.js';
import { WriteCounter, applyAll, countWrites, ensureNamespaces, parseYaml } from './testing/testkit.js';
import { waitFor } from '../dev/testing/wait.js';
import { loadClusterAuth } from './kube/kubeconfig.js';
import { createLogger } from '../lib/log.js';

const NS = 'kea-rt-a';
const SYS = 'kea-rt-system';
const ROUTE = RESOURCES['gateway.networking.k8s.io/v1/HTTPRoute'];
const CM = RESOURCES['v1/ConfigMap'];
const SCHEMA = RESOURCES['kea.dev/v1alpha1/ApiSchema'];
const MLS = RESOURCES['kea.dev/v1alpha1/MLService'];

/**
 * Tiny stand-in for graph → IR → render: one HTTPRoute per ApiSchema (weights from its
 * MLService), one version ConfigMap per ApiSchema and info.version, an Accepted condition,
 * and a Warning event when the MLService is missing.
 */
function tinyRender(s: ClusterSnapshot, cfg: ControllerConfig): RenderOutput {
  const out: RenderOutput = { objects: [], statuses: [], events: [] };
  for (const a of [...s.apiSchemas].sort((x, y) => x.metadata.name.localeCompare(y.metadata.name))) {
    const ns = a.metadata.namespace!;
    if (ns !== NS) continue;
    const owner = ownerLabelValue('ApiSchema', ns, a.metadata.name);
    const labels = { [LABELS.managedBy]: MANAGED_BY_VALUE, [LABELS.owner]: owner };
    const mls = s.mlServices.find((m: MLService) => m.metadata.namespace === ns && m.metadata.name === a.spec.target.mlService?.name);
    out.objects.push({
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'HTTPRoute',
      metadata: { name: `kea-${a.metadata.name}`, namespace: ns, labels },
      spec: {
        parentRefs: [{ name: cfg.gateway.name, namespace: cfg.gateway.namespace, sectionName: cfg.gateway.publicListener }],
        rules: [
          {
            matches: [{ path: { type: 'PathPrefix', value: a.spec.basePath } }],
            backendRefs: (mls?.spec.revisions ?? []).map((r) => ({ name: `${mls!.metadata.name}-${r.name}`, port: 8080, weight: r.weight })),
          },
        ],
      },
    } as KubernetesObject);
    out.objects.push({
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: {
        name: `kea-apiver-${ns}-${a.metadata.name}-${a.spec.info.version.replace(/[^a-z0-9]/g, '-')}`,
        namespace: cfg.systemNamespace,
        labels: { ...labels, [LABELS.component]: COMPONENT_API_VERSION },
      },
      data: { version: a.spec.info.version },
    } as KubernetesObject);
    out.statuses.push({
      kind: 'ApiSchema',
      namespace: ns,
      name: a.metadata.name,
      status: {
        observedGeneration: a.metadata.generation,
        operationCount: a.spec.operations?.length ?? 0,
        conditions: [
          mls
            ? { type: 'Accepted', status: 'True', reason: 'Accepted', message: 'ok', observedGeneration: a.metadata.generation }
            : {
                type: 'Accepted',
                status: 'False',
                reason: 'MLServiceNotFound',
                message: `MLService ${a.spec.target.mlService?.name} not found`,
                observedGeneration: a.metadata.generation,
              },
        ],
      },
    });
    if (!mls)
      out.events.push({
        regarding: { kind: 'ApiSchema', namespace: ns, name: a.metadata.name },
        type: 'Warning',
        reason: 'MLServiceNotFound',
        message: `MLService ${a.spec.target.mlService?.name} not found`,
      });
  }
  return out;
}

let client: KubeClient;
const controllers: ControllerHandle[] = [];
const log = createLogger('test', { level: 'silent' });

async function start(identity: string): Promise<ControllerHandle> {
  const loaded = loadConfig([
    'node',
    'main',
    '--internal-token=t',
    '--http-port=0',
    '--http-host=127.0.0.1',
    `--system-namespace=${SYS}`,
    `--identity=${identity}`,
    '--lease-name=kea-rt',
    '--retry-period-ms=500',
    '--lease-duration-ms=3000',
  ]);
  const h = await startController(loaded, { reconcile: tinyRender, cluster: loadClusterAuth(process.env.KUBECONFIG), logger: log });
  controllers.push(h);
  return h;
}

const samples = () => [
  ...parseYaml(readFileSync(new URL('../manifests/samples/iris-mlservice.yaml', import.meta.url), 'utf8')),
  ...parseYaml(readFileSync(new URL('../manifests/samples/iris-apischema.yaml', import.meta.url), 'utf8')),
];

const getRoute = (name: string) => client.get<KubernetesObject & { spec: { rules: Array<{ backendRefs: Array<{ weight: number }> }> } }>(ROUTE, NS, name);
const getSchema = (name: string) => client.get<ApiSchema>(SCHEMA, NS, name);

beforeAll(async () => {
  client = new KubeClient(loadClusterAuth(process.env.KUBECONFIG));
  await ensureNamespaces(client, NS, SYS);
});

afterAll(async () => {
  for (const c of controllers) await c.stop();
  for (const [ref, ns] of [
    [SCHEMA, NS],
    [MLS, NS],
  ] as const) {
    for (const o of (await client.list(ref, { namespace: ns })).items) await client.delete(ref, ns, o.metadata!.name!);
  }
});

test('converges: SSA objects with field manager and hash, status, events; then zero writes', async () => {
  const c = await start('rt-1');
  const during = new WriteCounter(client);
  await during.start();
  await applyAll(client, samples(), NS);
  const route = await waitFor('route', 20_000, () => getRoute('kea-iris').catch(() => undefined), 200);
  expect(route.metadata?.annotations?.[APPLIED_HASH]).toMatch(/^[0-9a-f]{64}$/);
  expect(route.metadata?.managedFields?.some((f) => f.manager === FIELD_MANAGER && f.operation === 'Apply')).toBe(true);
  expect(route.spec.rules[0].backendRefs.map((b) => b.weight)).toEqual([80, 20]);
  const schema = await waitFor(
    'status',
    30_000,
    async () => {
      const s = await getSchema('iris');
      return s.status?.conditions?.[0]?.status === 'True' ? s : undefined;
    },
    200,
  );
  expect(schema.status?.observedGeneration).toBe(schema.metadata.generation);
  const ltt = schema.status!.conditions![0].lastTransitionTime;
  expect(ltt).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
  await c.idle();
  during.stop();
  // The write counter sees KEA's writes (so an empty count below means something).
  expect(during.writes.some((w) => w.kind === 'HTTPRoute' && w.latestManager === `${FIELD_MANAGER}/Apply`)).toBe(true);
  expect(during.writes.some((w) => w.kind === 'ApiSchema' && w.managers.includes(`${FIELD_MANAGER}/Update/status`))).toBe(true);
  // Converged: nothing is written for 5 s, even though informer events keep arriving.
  const writes = await countWrites(client, 5000);
  expect(writes).toEqual([]);
  expect(c.isLeader()).toBe(true);
});

test('change weights → route updated; condition kept lastTransitionTime', async () => {
  const before = await getSchema('iris');
  const mls = samples().find((o) => o.kind === 'MLService') as MLService;
  mls.spec.revisions[0].weight = 50;
  mls.spec.revisions[1].weight = 50;
  await applyAll(client, [mls as unknown as KubernetesObject], NS);
  await waitFor(
    'weights 50/50',
    30_000,
    async () => {
      const r = await getRoute('kea-iris');
      return r.spec.rules[0].backendRefs.map((b) => b.weight).join() === '50,50';
    },
    200,
  );
  const after = await getSchema('iris');
  expect(after.status!.conditions![0].lastTransitionTime).toBe(before.status!.conditions![0].lastTransitionTime);
});

test('invalid reference → Accepted=False with message, one Warning event (deduplicated)', async () => {
  const bad = structuredClone(samples().find((o) => o.kind === 'ApiSchema')) as ApiSchema;
  bad.metadata.name = 'orphan';
  bad.spec.basePath = '/orphan';
  bad.spec.target = { mlService: { name: 'nope' } };
  await applyAll(client, [bad as unknown as KubernetesObject], NS);
  const s = await waitFor(
    'orphan status',
    30_000,
    async () => {
      const x = await getSchema('orphan');
      return x.status?.conditions?.[0]?.status === 'False' ? x : undefined;
    },
    200,
  );
  expect(s.status!.conditions![0].message).toBe('MLService nope not found');
  const events = await waitFor(
    'event',
    30_000,
    async () => {
      const l = await client.list(RESOURCES['v1/Event'], { namespace: NS });
      const mine = l.items.filter((e) => (e as unknown as { involvedObject: { uid: string } }).involvedObject.uid === s.metadata.uid);
      return mine.length ? mine : undefined;
    },
    200,
  );
  // Trigger more reconciles; the event must not be duplicated.
  await applyAll(client, [{ ...bad, metadata: { ...bad.metadata, labels: { touch: '1' } } } as unknown as KubernetesObject], NS);
  await new Promise((r) => setTimeout(r, 1500));
  const again = (await client.list(RESOURCES['v1/Event'], { namespace: NS })).items.filter(
    (e) => (e as unknown as { involvedObject: { uid: string } }).involvedObject.uid === s.metadata.uid,
  );
  expect(again.length).toBe(events.length);
  expect(again.length).toBe(1);
  expect((again[0] as unknown as { reason: string; type: string }).reason).toBe('MLServiceNotFound');
});

test('drift is repaired: a foreign edit of an owned route is undone', async () => {
  const r = await getRoute('kea-iris');
  await client.request('PATCH', client.objectPath(ROUTE, NS, 'kea-iris'), {
    body: [{ op: 'replace', path: '/spec/rules/0/backendRefs/0/weight', value: 99 }],
    contentType: 'application/json-patch+json',
    query: { fieldManager: 'intruder' },
  });
  await waitFor(
    'drift repaired',
    30_000,
    async () => {
      const x = await getRoute('kea-iris');
      return x.metadata?.resourceVersion !== r.metadata?.resourceVersion && x.spec.rules[0].backendRefs[0].weight === 50;
    },
    200,
  );
});

test('version ConfigMaps survive a version bump; everything of a deleted ApiSchema is pruned', async () => {
  const schema = samples().find((o) => o.kind === 'ApiSchema') as ApiSchema;
  schema.spec.info.version = '2.0.0';
  await applyAll(client, [schema as unknown as KubernetesObject], NS);
  const owner = ownerLabelValue('ApiSchema', NS, 'iris');
  const versions = async () =>
    (await client.list(CM, { namespace: SYS, labelSelector: `${LABELS.component}=${COMPONENT_API_VERSION}` })).items
      .filter((o) => o.metadata?.labels?.[LABELS.owner] === owner)
      .map((o) => (o as unknown as { data: { version: string } }).data.version)
      .sort();
  await waitFor('two versions', 30_000, async () => (await versions()).join() === '1.0.0,2.0.0', 200);
  await client.delete(SCHEMA, NS, 'iris');
  await waitFor(
    'route pruned',
    30_000,
    async () => {
      try {
        await getRoute('kea-iris');
        return false;
      } catch (err) {
        return err instanceof KubeError && err.statusCode === 404;
      }
    },
    200,
  );
  await waitFor('versions pruned', 30_000, async () => (await versions()).length === 0, 200);
});

test('restart: a new controller process state writes nothing', async () => {
  await applyAll(client, samples(), NS);
  await waitFor('route back', 20_000, () => getRoute('kea-iris').catch(() => undefined), 200);
  await waitFor('status', 30_000, async () => (await getSchema('iris')).status?.conditions?.[0]?.status === 'True', 200);
  await controllers[0].idle();
  await controllers[0].stop();
  const c2 = await start('rt-2');
  const counter = countWrites(client, 6000);
  await waitFor('synced and leading', 20_000, () => c2.isSynced() && c2.isLeader(), 200);
  const writes = await counter;
  expect(writes).toEqual([]);
  expect(c2.lastApply()?.applied).toBe(0);
  expect(c2.lastApply()?.unchanged).toBeGreaterThan(0);
});
