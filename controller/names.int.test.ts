/**
 * Integration test of issue 10 item 14 with the real controller (in process, discovery off) on
 * the real kube-apiserver from test/global-setup.ts, read back by the policy server's own
 * Kubernetes source and snapshot builder.
 *
 * ApiSchemas `team-x/y` and `team/x-y` used to share the policy ConfigMap `kea-api-team-x-y`
 * (`kea-api-<ns>-<name>`), so the one applied last replaced the other's policy in the data
 * path. Each now has its own ConfigMap, and the policy server serves both.
 */
import * as k8s from '@kubernetes/client-node';
import type { KubernetesObject } from '@kubernetes/client-node';
import type { ApiSchema } from '../lib/api/types.js';
import { createLogger } from '../lib/log.js';
import { apiConfigMapName, type PolicyService } from '../lib/policy/config.js';
import { KubeSource } from '../policy-server/sources/kube.js';
import { buildSnapshot, type SourceConfigMap } from '../policy-server/snapshot/build.js';
import { loadConfig } from './config.js';
import { startController, type ControllerHandle } from './main.js';
import { KubeClient, RESOURCES } from './kube/client.js';
import { applyAll, ensureNamespaces } from './testing/testkit.js';
import { waitFor } from '../dev/testing/wait.js';
import { loadClusterAuth } from './kube/kubeconfig.js';

/** `<A>-x/y` and `<A>/x-y`: the same `kea-api-<ns>-<name>`. */
const NS_A = 'kea-names-team-x';
const NS_B = 'kea-names-team';
const SYS = 'kea-names-system';
const CM = RESOURCES['v1/ConfigMap'];
const SCHEMA = RESOURCES['kea.dev/v1alpha1/ApiSchema'];

let client: KubeClient;
let controller: ControllerHandle | undefined;
let source: KubeSource | undefined;

beforeAll(async () => {
  client = new KubeClient(loadClusterAuth(process.env.KUBECONFIG));
  await ensureNamespaces(client, NS_A, NS_B, SYS);
  const loaded = loadConfig([
    'node',
    'main',
    '--internal-token=names-token',
    '--http-port=0',
    '--http-host=127.0.0.1',
    `--system-namespace=${SYS}`,
    '--leader-election=false',
    '--debounce-ms=50',
    '--max-delay-ms=300',
  ]);
  controller = await startController(loaded, { cluster: loadClusterAuth(process.env.KUBECONFIG), logger: createLogger('test', { level: 'silent' }) });
});

afterAll(async () => {
  await source?.stop();
  await controller?.stop();
  for (const ns of [NS_A, NS_B]) for (const o of (await client.list(SCHEMA, { namespace: ns })).items) await client.delete(SCHEMA, ns, o.metadata!.name!);
});

const schema = (name: string, basePath: string, access: ApiSchema['spec']['defaults']): KubernetesObject =>
  ({
    apiVersion: 'kea.dev/v1alpha1',
    kind: 'ApiSchema',
    metadata: { name },
    spec: {
      target: { service: { name: 'svc', port: 80 } },
      basePath,
      info: { title: name, version: '1.0.0' },
      defaults: access,
      operations: [{ operationId: 'secret', method: 'GET', path: '/secret' }],
    },
  }) as unknown as KubernetesObject;

test('team-x/y and team/x-y each get their own policy ConfigMap, and the policy server serves both', async () => {
  const svc = { apiVersion: 'v1', kind: 'Service', metadata: { name: 'svc' }, spec: { ports: [{ port: 80 }] } } as KubernetesObject;
  await applyAll(client, [svc, schema('y', '/names-victim', { access: { mode: 'restricted', roles: ['owner'] } })], NS_A);
  await applyAll(client, [svc, schema('x-y', '/names-other', { access: { mode: 'public' } })], NS_B);
  // The readable parts are equal; the names are not.
  expect(apiConfigMapName(NS_A, 'y')).not.toBe(apiConfigMapName(NS_B, 'x-y'));
  const policyOf = async (ns: string, name: string) => {
    const cm = await client.get<KubernetesObject & { data: Record<string, string> }>(CM, SYS, apiConfigMapName(ns, name)).catch(() => undefined);
    return cm ? (JSON.parse(cm.data['policy.json']) as PolicyService) : undefined;
  };
  const victim = await waitFor('victim ConfigMap', 30_000, () => policyOf(NS_A, 'y'), 200);
  const other = await waitFor('other ConfigMap', 30_000, () => policyOf(NS_B, 'x-y'), 200);
  expect([victim.id, victim.operations[0].access]).toEqual([`${NS_A}/y`, { mode: 'restricted', roles: ['owner'] }]);
  expect([other.id, other.operations[0].access]).toEqual([`${NS_B}/x-y`, { mode: 'public' }]);
  await controller!.idle();
  // Still both, after the controller converged (nothing overwrote either).
  expect((await policyOf(NS_A, 'y'))?.id).toBe(`${NS_A}/y`);

  // What the policy server reads (its informer, by label) compiles to both services, each
  // with its own access.
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(process.env.KUBECONFIG!);
  source = new KubeSource({ kubeConfig: kc, namespace: SYS });
  let list: SourceConfigMap[] = [];
  await source.start((l) => (list = l));
  const snap = await waitFor(
    'both services in the policy snapshot',
    30_000,
    () => {
      const s = buildSnapshot(list);
      return s.services.has(`${NS_A}/y`) && s.services.has(`${NS_B}/x-y`) ? s : undefined;
    },
    200,
  );
  expect(snap.errors).toEqual([]);
  expect(snap.services.get(`${NS_A}/y`)!.def.operations[0].access).toEqual({ mode: 'restricted', roles: ['owner'] });
});
