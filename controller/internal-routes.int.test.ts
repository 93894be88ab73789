/**
 * Internal routes and the internal token (issue 10 item 4, docs/adr/0009-internal-routes.md),
 * with the real controller (startController) on the real kube-apiserver of test/global-setup:
 *  - the internal HTTPRoutes are in the system namespace, reach the tenants' Services through a
 *    ReferenceGrant per owner in the tenant's namespace, and no object in a tenant namespace
 *    carries the token;
 *  - a rotation: current + next, then the new current + previous, then the new one alone: the
 *    routes carry exactly the accepted values at each step (two during the overlap);
 *  - deleting the owner prunes its system-namespace route and its grant (owner label: an
 *    ownerReference cannot cross namespaces);
 *  - the internal listener guard reports a Gateway whose internal listener admits other
 *    namespaces and a route in the system namespace that KEA did not render.
 */
import type { KubernetesObject } from '@kubernetes/client-node';
import { createLogger } from '../lib/log.js';
import { loadConfig } from './config.js';
import { startController, type ControllerHandle } from './main.js';
import { checkInternalListener } from './internal-listener.js';
import { KubeClient, RESOURCES } from './kube/client.js';
import { applyAll, ensureNamespaces } from './testing/testkit.js';
import { waitFor } from '../dev/testing/wait.js';
import { loadClusterAuth } from './kube/kubeconfig.js';
import { internalRouteName } from './graph/names.js';

const SYS = 'kea-ir-system';
const A = 'kea-ir-a';
const B = 'kea-ir-b';
const T1 = 'tok-current-5f0c1d2e';
const T2 = 'tok-next-8a7b6c5d';
const R = {
  route: RESOURCES['gateway.networking.k8s.io/v1/HTTPRoute'],
  grant: RESOURCES['gateway.networking.k8s.io/v1beta1/ReferenceGrant'],
  svc: RESOURCES['v1/Service'],
  deploy: RESOURCES['apps/v1/Deployment'],
  cm: RESOURCES['v1/ConfigMap'],
  event: RESOURCES['v1/Event'],
  mls: RESOURCES['kea.dev/v1alpha1/MLService'],
  schema: RESOURCES['kea.dev/v1alpha1/ApiSchema'],
};
const GATEWAY = RESOURCES['gateway.networking.k8s.io/v1/Gateway'];
type Route = KubernetesObject & {
  spec: { rules: Array<{ matches: Array<{ headers?: Array<{ name: string; value: string }> }>; backendRefs: Array<{ name: string; namespace?: string }> }> };
};

let client: KubeClient;
let controller: ControllerHandle | undefined;

async function start(tokenFlags: string[]): Promise<ControllerHandle> {
  const loaded = loadConfig([
    'node',
    'main',
    ...tokenFlags,
    '--http-port=0',
    '--http-host=127.0.0.1',
    `--system-namespace=${SYS}`,
    '--leader-election=false',
    '--debounce-ms=50',
    '--max-delay-ms=300',
    '--internal-listener-check-ms=200',
  ]);
  return startController(loaded, { cluster: loadClusterAuth(process.env.KUBECONFIG), logger: createLogger('test', { level: 'silent' }) });
}

/** Token values the route's matches accept, in order. */
const tokensOf = (r: Route | undefined) => (r?.spec.rules[0].matches ?? []).map((m) => m.headers?.find((h) => h.name === 'x-kea-internal-token')?.value);
const route = (name: string) => client.get<Route>(R.route, SYS, name).catch(() => undefined);

beforeAll(async () => {
  client = new KubeClient(loadClusterAuth(process.env.KUBECONFIG));
  await ensureNamespaces(client, SYS, A, B);
  await applyAll(
    client,
    [
      {
        apiVersion: 'kea.dev/v1alpha1',
        kind: 'MLService',
        metadata: { name: 'iris' },
        spec: {
          framework: 'sklearn',
          revisions: [
            { name: 'v1', modelUri: 'gs://bucket/iris/v1', weight: 80 },
            { name: 'v2', modelUri: 'gs://bucket/iris/v2', weight: 20 },
          ],
        },
      } as KubernetesObject,
    ],
    A,
  );
  await applyAll(
    client,
    [
      { apiVersion: 'v1', kind: 'Service', metadata: { name: 'grades' }, spec: { ports: [{ port: 8080 }] } } as KubernetesObject,
      {
        apiVersion: 'kea.dev/v1alpha1',
        kind: 'ApiSchema',
        metadata: { name: 'grades' },
        spec: {
          target: { service: { name: 'grades', port: 8080 } },
          basePath: '/ir-grades',
          info: { title: 'Grades', version: '1.0.0' },
          operations: [{ operationId: 'get_grades', method: 'GET', path: '/get_grades', access: { mode: 'public' } }],
        },
      } as KubernetesObject,
    ],
    B,
  );
});

afterAll(async () => {
  await controller?.stop();
  for (const [ref, ns] of [
    [R.schema, B],
    [R.mls, A],
    [R.svc, B],
  ] as const) {
    for (const o of (await client.list(ref, { namespace: ns })).items) await client.delete(ref, ns, o.metadata!.name!).catch(() => undefined);
  }
});

test('internal routes live in the system namespace; tenant namespaces hold grants and no token', async () => {
  controller = await start([`--internal-token=${T1}`, `--internal-token-next=${T2}`]);
  const mls = await waitFor(
    'MLService internal route',
    30_000,
    async () => {
      const r = await route(internalRouteName(`iris.${A}.kea.internal`));
      return r && tokensOf(r).length === 2 ? r : undefined;
    },
    200,
  );
  expect(tokensOf(mls)).toEqual([T1, T2]);
  expect(mls.spec.rules[0].backendRefs.map((b) => `${b.namespace}/${b.name}`)).toEqual([`${A}/iris-v1`, `${A}/iris-v2`]);
  const svcRoute = await waitFor('ApiSchema internal route', 30_000, () => route(internalRouteName(`grades.${B}.api.kea.internal`)), 200);
  expect(tokensOf(svcRoute)).toEqual([T1, T2]);
  const grantA = await waitFor(
    'grant in A',
    30_000,
    () => client.get<KubernetesObject & { spec: unknown }>(R.grant, A, internalRouteName(`iris.${A}.kea.internal`)).catch(() => undefined),
    200,
  );
  expect(grantA.spec).toEqual({
    from: [{ group: 'gateway.networking.k8s.io', kind: 'HTTPRoute', namespace: SYS }],
    to: [
      { group: '', kind: 'Service', name: 'iris-v1' },
      { group: '', kind: 'Service', name: 'iris-v2' },
    ],
  });
  await waitFor('grant in B', 30_000, () => client.get(R.grant, B, internalRouteName(`grades.${B}.api.kea.internal`)).catch(() => undefined), 200);
  await controller.idle();
  // Nothing a tenant can read in its namespace carries a token value.
  for (const ns of [A, B]) {
    for (const ref of Object.values(R)) {
      for (const o of (await client.list(ref, { namespace: ns })).items) {
        const text = JSON.stringify(o);
        expect({ object: `${o.kind} ${ns}/${o.metadata?.name}`, token: text.includes(T1) || text.includes(T2) }).toEqual({
          object: `${o.kind} ${ns}/${o.metadata?.name}`,
          token: false,
        });
      }
    }
  }
});

test('rotation: the new current with the previous, then the new one alone', async () => {
  await controller!.stop();
  controller = await start([`--internal-token=${T2}`, `--internal-token-previous=${T1}`]);
  await waitFor(
    'current + previous',
    30_000,
    async () => (JSON.stringify(tokensOf(await route(internalRouteName(`iris.${A}.kea.internal`)))) === JSON.stringify([T2, T1]) ? true : undefined),
    200,
  );
  await controller.stop();
  controller = await start([`--internal-token=${T2}`]);
  await waitFor(
    'only the new token',
    30_000,
    async () => (JSON.stringify(tokensOf(await route(internalRouteName(`iris.${A}.kea.internal`)))) === JSON.stringify([T2]) ? true : undefined),
    200,
  );
  await waitFor(
    'only the new token (ApiSchema route)',
    30_000,
    async () => (JSON.stringify(tokensOf(await route(internalRouteName(`grades.${B}.api.kea.internal`)))) === JSON.stringify([T2]) ? true : undefined),
    200,
  );
});

test('deleting the owners prunes their system-namespace routes and their grants', async () => {
  await client.delete(R.mls, A, 'iris');
  await client.delete(R.schema, B, 'grades');
  await waitFor(
    'pruned',
    30_000,
    async () => {
      const left = await Promise.all([
        route(internalRouteName(`iris.${A}.kea.internal`)),
        route(internalRouteName(`grades.${B}.api.kea.internal`)),
        client.get(R.grant, A, internalRouteName(`iris.${A}.kea.internal`)).catch(() => undefined),
        client.get(R.grant, B, internalRouteName(`grades.${B}.api.kea.internal`)).catch(() => undefined),
      ]);
      return left.every((x) => x === undefined) ? true : undefined;
    },
    200,
  );
});

test('the internal listener guard reports a listener open to other namespaces and foreign routes on it', async () => {
  const config = loadConfig(['node', 'main', `--internal-token=${T2}`, `--system-namespace=${SYS}`]).config;
  const gateway = (from: string) =>
    ({
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'Gateway',
      metadata: { name: 'kea', namespace: SYS },
      spec: {
        gatewayClassName: 'nginx',
        listeners: [
          { name: 'public', protocol: 'HTTP', port: 80, allowedRoutes: { namespaces: { from: 'All' } } },
          { name: 'internal', protocol: 'HTTP', port: 8081, hostname: '*.kea.internal', allowedRoutes: { namespaces: { from } } },
        ],
      },
    }) as KubernetesObject;
  await applyAll(client, [gateway('All')]);
  const open = await checkInternalListener(client, config);
  expect(open).toEqual([expect.objectContaining({ kind: 'Gateway', name: 'kea', message: expect.stringContaining('allowedRoutes.namespaces.from is All') })]);
  // The running controller logs it and counts it.
  await waitFor(
    'gauge',
    30_000,
    async () =>
      (await (await fetch(`http://127.0.0.1:${controller!.port}/metrics`)).text()).includes('kea_controller_internal_listener_problems 1') ? true : undefined,
    200,
  );
  await applyAll(client, [gateway('Same')]);
  expect(await checkInternalListener(client, config)).toEqual([]);
  // A route in the system namespace that KEA did not render, on the internal listener.
  await applyAll(client, [
    {
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'HTTPRoute',
      metadata: { name: 'hand-made', namespace: SYS },
      spec: {
        parentRefs: [{ name: 'kea', sectionName: 'internal' }],
        hostnames: [`iris.${A}.kea.internal`],
        rules: [{ backendRefs: [{ name: 'x', port: 80 }] }],
      },
    } as KubernetesObject,
  ]);
  expect(await checkInternalListener(client, config)).toEqual([expect.objectContaining({ kind: 'HTTPRoute', name: 'hand-made' })]);
  await client.delete(R.route, SYS, 'hand-made');
  await client.delete(GATEWAY, SYS, 'kea');
});
