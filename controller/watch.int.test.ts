/**
 * Watch resilience on a dedicated real control plane (dev/controlplane.ts): the controller
 * process keeps converging across kube-apiserver restarts and a longer outage. client-node's
 * ListWatch stops on non-410 errors; the informer wrapper must restart it with backoff and
 * relist, and must never prune from a partial view while the API server is down.
 */
import { readFileSync } from 'node:fs';
import type { KubernetesObject } from '@kubernetes/client-node';
import type { MLService } from '../lib/api/types.js';
import { startControlPlane, installCrds, type ControlPlane } from '../dev/controlplane.js';
import { KubeClient, RESOURCES } from './kube/client.js';
import { WriteCounter, applyAll, ensureBuilt, ensureNamespaces, parseYaml, spawnController, type ControllerProcess } from './testing/testkit.js';
import { waitFor } from '../dev/testing/wait.js';
import { loadClusterAuth } from './kube/kubeconfig.js';
import { internalRouteName } from './graph/names.js';

const REPO = new URL('..', import.meta.url).pathname.replace(/\/$/, '');
const SYS = 'kea-system';
const NS = 'models';
const ROUTE = RESOURCES['gateway.networking.k8s.io/v1/HTTPRoute'];

let cp: ControlPlane;
let client: KubeClient;
let ctl: ControllerProcess;

const mlService = (w1: number, w2: number): KubernetesObject => {
  const m = parseYaml(readFileSync(`${REPO}/manifests/samples/iris-mlservice.yaml`, 'utf8'))[0] as unknown as MLService;
  m.spec.revisions[0].weight = w1;
  m.spec.revisions[1].weight = w2;
  return m as unknown as KubernetesObject;
};
const weights = async () => {
  const r = await client.get<KubernetesObject & { spec: { rules: Array<{ backendRefs: Array<{ weight: number }> }> } }>(
    ROUTE,
    SYS,
    internalRouteName(`iris.${NS}.kea.internal`),
  );
  return r.spec.rules[0].backendRefs.map((b) => b.weight).join('/');
};

beforeAll(async () => {
  await ensureBuilt(REPO);
  cp = await startControlPlane({ unsafeNoFsync: true });
  await installCrds(cp.kubeconfig);
  client = new KubeClient(loadClusterAuth(cp.kubeconfig));
  await ensureNamespaces(client, SYS, NS);
  ctl = await spawnController({ repoRoot: REPO, kubeconfig: cp.kubeconfig, identity: 'resilient', args: ['--leader-election=false'] });
  await applyAll(client, [mlService(80, 20), ...parseYaml(readFileSync(`${REPO}/manifests/samples/iris-apischema.yaml`, 'utf8'))], NS);
  await waitFor('converged 80/20', 30_000, async () => (await weights()) === '80/20', 200);
}, 240_000);

afterAll(async () => {
  await ctl?.stop('SIGKILL');
  await cp?.stop();
});

test('kube-apiserver restart during a watch → informers restart and the controller converges again', async () => {
  await cp.restartApiServer();
  await applyAll(client, [mlService(10, 90)], NS);
  await waitFor('10/90 after restart', 60_000, async () => (await weights()) === '10/90', 250);
  // The restart was seen as watch errors (the recovery path actually ran), and health recovered.
  expect(ctl.logs.some((r) => r.message === 'watch error, restarting')).toBe(true);
  await waitFor('healthz ok', 30_000, async () => (await ctl.http('/healthz')).status === 200, 200);
  expect(ctl.proc.exitCode).toBeNull();
});

test('a 10 s outage: nothing is pruned, and once back, changes and deletions converge', async () => {
  await cp.stopApiServer();
  await new Promise((r) => setTimeout(r, 10_000));
  // Still alive and still healthy (failing for less than --stale-after-ms).
  expect(ctl.proc.exitCode).toBeNull();
  expect((await ctl.http('/healthz')).status).toBe(200);
  const counter = new WriteCounter(client);
  await cp.startApiServer();
  const back = Date.now();
  await counter.start();
  // Relisting after the outage writes nothing (nothing changed, nothing pruned).
  await waitFor(
    'informers relisted',
    60_000,
    async () => {
      const r = JSON.parse((await ctl.http('/readyz')).body) as { informers: Array<{ lastSyncAt: number }> };
      return r.informers.every((i) => i.lastSyncAt >= back);
    },
    250,
  );
  await new Promise((r) => setTimeout(r, 2000));
  counter.stop();
  expect(counter.writes).toEqual([]);
  await applyAll(client, [mlService(50, 50)], NS);
  await waitFor('50/50 after outage', 60_000, async () => (await weights()) === '50/50', 250);
  await client.delete(RESOURCES['kea.dev/v1alpha1/MLService'], NS, 'iris');
  await waitFor(
    'route pruned',
    30_000,
    async () =>
      weights().then(
        () => false,
        () => true,
      ),
    200,
  );
});
