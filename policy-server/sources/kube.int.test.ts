/**
 * The Kubernetes configuration source against a real kube-apiserver + etcd (its own control
 * plane, so the API server can be restarted and stopped):
 * - ConfigMap create/update/delete reach the served snapshot within 2 s (p95 target; asserted
 *   per change here);
 * - version-history ConfigMaps become the published history;
 * - the watch survives an API server restart (informer restarted with backoff);
 * - a policy server restarted while the API server is down serves the persisted snapshot,
 *   then catches up when the API server returns.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { startControlPlane, type ControlPlane } from '../../dev/controlplane.js';
import { SnapshotStore } from '../snapshot/store.js';
import { configMapsFor, irisService, schoolService } from '../testing/fixtures.js';
import { KubeSource } from './kube.js';
import { waitFor, waitForTimed } from '../../dev/testing/wait.js';

const NS = 'kea-system';
let cp: ControlPlane;
let kc: k8s.KubeConfig;
let core: k8s.CoreV1Api;
let stateDir: string;

const cmBody = (svcCm: ReturnType<typeof configMapsFor>[number]): k8s.V1ConfigMap => ({
  metadata: { name: svcCm.name, namespace: NS, labels: svcCm.labels, annotations: svcCm.annotations },
  data: svcCm.data,
});

beforeAll(async () => {
  cp = await startControlPlane({ unsafeNoFsync: true });
  kc = new k8s.KubeConfig();
  kc.loadFromFile(cp.kubeconfig);
  core = kc.makeApiClient(k8s.CoreV1Api);
  await core.createNamespace({ body: { metadata: { name: NS } } });
  stateDir = await mkdtemp(join(tmpdir(), 'kea-policy-state-'));
}, 240_000);

afterAll(async () => {
  await cp?.stop();
  if (stateDir) await rm(stateDir, { recursive: true, force: true });
});

test('changes reach the snapshot within 2 s; versions; deletes; survives an API server restart', async () => {
  const store = new SnapshotStore({ stateDir });
  const src = new KubeSource({ kubeConfig: kc, namespace: NS, backoffMs: 100, maxBackoffMs: 2000 });
  await store.start(src);
  await waitFor('initial (empty) list', 10_000, () => store.origin === 'source', 10);
  expect(store.current.services.size).toBe(0);

  const [iris] = configMapsFor(irisService('k1'));
  await core.createNamespacedConfigMap({ namespace: NS, body: cmBody(iris) });
  const created = (await waitForTimed('created', 5000, () => store.current.services.get('ml/iris')?.def.configVersion === 'k1', 10)).ms;
  expect(created).toBeLessThan(2000);

  const [iris2] = configMapsFor(irisService('k2'));
  await core.replaceNamespacedConfigMap({ name: iris.name, namespace: NS, body: cmBody(iris2) });
  const updated = (await waitForTimed('updated', 5000, () => store.current.services.get('ml/iris')?.def.configVersion === 'k2', 10)).ms;
  expect(updated).toBeLessThan(2000);

  // Unrelated ConfigMaps (no kea.dev/component label) are not seen.
  await core.createNamespacedConfigMap({ namespace: NS, body: { metadata: { name: 'other', namespace: NS }, data: { 'policy.json': '{}' } } });
  await core.createNamespacedConfigMap({
    namespace: NS,
    body: {
      metadata: {
        name: 'kea-apiver-ml-iris-0123456789',
        namespace: NS,
        labels: { 'kea.dev/component': 'api-version' },
        annotations: { 'kea.dev/api-schema': 'ml/iris' },
      },
      data: { 'openapi.json': JSON.stringify({ openapi: '3.0.3', info: { title: 'Iris', version: '1.0.0' }, paths: {} }) },
    },
  });
  await waitFor('version history', 5000, () => (store.current.versions.get('ml/iris') ?? []).length === 1, 10);
  expect(store.current.errors).toEqual([]);

  // Restart the API server; the watch breaks and must be restarted by the source.
  await cp.restartApiServer();
  const [school] = configMapsFor(schoolService('s1'));
  await core.createNamespacedConfigMap({ namespace: NS, body: cmBody(school) });
  await waitFor('seen after restart', 30_000, () => store.current.services.has('school/grades'), 10);
  await waitFor('source connected again', 30_000, () => src.health().connected, 10);

  await core.deleteNamespacedConfigMap({ name: iris.name, namespace: NS });
  const deleted = (await waitForTimed('deleted', 5000, () => !store.current.services.has('ml/iris'), 10)).ms;
  expect(deleted).toBeLessThan(2000);
  await store.stop();
}, 120_000);

test('restart while the API server is down: persisted snapshot served, then live again', async () => {
  await cp.stopApiServer();
  try {
    const store = new SnapshotStore({ stateDir });
    const src = new KubeSource({ kubeConfig: kc, namespace: NS, backoffMs: 100, maxBackoffMs: 1000 });
    await store.start(src);
    // Served from disk: the last good snapshot of the previous "process".
    expect(store.origin).toBe('disk');
    expect(store.ready).toBe(true);
    expect(store.current.services.has('school/grades')).toBe(true);
    expect(store.current.services.get('school/grades')!.operations.get('set_grades')!.body!.validate!({ subject: 'x', grade: 9 })).toBe(false);
    await waitFor('source reports the outage', 10_000, () => !src.health().connected && !!src.health().lastError, 10);

    await cp.startApiServer();
    await waitFor('live again', 30_000, () => store.origin === 'source' && src.health().connected, 10);
    const [iris] = configMapsFor(irisService('k3'));
    await core.createNamespacedConfigMap({ namespace: NS, body: cmBody(iris) });
    const t = (await waitForTimed('change after outage', 5000, () => store.current.services.get('ml/iris')?.def.configVersion === 'k3', 10)).ms;
    expect(t).toBeLessThan(2000);
    expect(src.health().restarts).toBeGreaterThan(0);
    await store.stop();
  } finally {
    await cp.startApiServer().catch(() => undefined);
  }
}, 120_000);
