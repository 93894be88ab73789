/**
 * Integration test of the incremental reconcile (controller/incremental.ts) in the controller
 * process (`node dist/controller/main.js`, the real pipeline) on the real kube-apiserver of
 * test/global-setup.ts. Counts come from the controller's metric
 * `kea_controller_owners_rendered_total{kind}` (owners run through graph → IR → render):
 *  - a touched ApiSchema (a label) is rendered again alone, the other one not at all; new
 *    operations re-render that ApiSchema only (the `reconciled` log names the owners);
 *  - new weights of one MLService re-render that MLService and the ApiSchema fronting it, and
 *    the internal route follows;
 *  - a drift edit of an owned HTTPRoute by another field manager is repaired, by rendering its
 *    owner (only) again;
 *  - with `--full-reconcile-ms`, a controller with nothing to do still renders every owner that
 *    often (the safety net), and writes nothing.
 */
import type { KubernetesObject } from '@kubernetes/client-node';
import { KubeClient, RESOURCES } from './kube/client.js';
import { applyAll, ensureBuilt, ensureNamespaces, metricSum, spawnController, type ControllerProcess } from './testing/testkit.js';
import { waitFor } from '../dev/testing/wait.js';
import { loadClusterAuth } from './kube/kubeconfig.js';
import { internalRouteName } from './graph/names.js';

const REPO = new URL('..', import.meta.url).pathname.replace(/\/$/, '');
const SYS = 'kea-inc-system';
const NS = 'kea-inc-apps';
const R = {
  route: RESOURCES['gateway.networking.k8s.io/v1/HTTPRoute'],
  schema: RESOURCES['kea.dev/v1alpha1/ApiSchema'],
  mls: RESOURCES['kea.dev/v1alpha1/MLService'],
};
type Obj = KubernetesObject & { spec?: any; status?: any }; // eslint-disable-line @typescript-eslint/no-explicit-any

let client: KubeClient;
let ctl: ControllerProcess;

function pair(name: string, weights: [number, number] = [80, 20]): Obj[] {
  return [
    {
      apiVersion: 'kea.dev/v1alpha1',
      kind: 'MLService',
      metadata: { name, namespace: NS },
      spec: {
        framework: 'custom',
        port: 8080,
        healthPath: '/healthz',
        revisions: [
          { name: 'v1', image: 'example.test/m:v1', weight: weights[0], replicas: 1 },
          { name: 'v2', image: 'example.test/m:v2', weight: weights[1], replicas: 1 },
        ],
      },
    },
    {
      apiVersion: 'kea.dev/v1alpha1',
      kind: 'ApiSchema',
      metadata: { name, namespace: NS },
      spec: {
        target: { mlService: { name } },
        basePath: `/inc/${name}`,
        info: { title: name, version: '1.0.0' },
        operations: [{ operationId: 'predict', method: 'POST', path: '/predict', summary: 'Predict', responses: { '200': { description: 'ok' } } }],
      },
    },
  ];
}

const metric = (prefix: string): Promise<number> => metricSum(ctl, prefix);
const rendered = async () => ({
  api: await metric('kea_controller_owners_rendered_total{kind="ApiSchema"}'),
  mls: await metric('kea_controller_owners_rendered_total{kind="MLService"}'),
});

/** Waits until the controller's writes and renders stayed the same for 2 s; returns the render counts. */
async function settle(): Promise<{ api: number; mls: number }> {
  let last = '';
  let since = Date.now();
  return waitFor(
    'controller at rest',
    60_000,
    async () => {
      const now = JSON.stringify([await rendered(), await metric('kea_controller_writes_total{'), await metric('kea_controller_reconcile_total{')]);
      if (now !== last) {
        last = now;
        since = Date.now();
        return undefined;
      }
      return Date.now() - since >= 2000 ? rendered() : undefined;
    },
    250,
  );
}

const headerValue = (r: Obj): string => r.spec.rules[0].filters[0].requestHeaderModifier.set[0].value;

beforeAll(async () => {
  client = new KubeClient(loadClusterAuth(process.env.KUBECONFIG));
  await ensureBuilt(REPO);
  await ensureNamespaces(client, SYS, NS);
  ctl = await spawnController({
    repoRoot: REPO,
    kubeconfig: process.env.KUBECONFIG!,
    identity: 'inc-1',
    args: [`--system-namespace=${SYS}`, '--lease-name=kea-inc', '--retry-period-ms=500', '--lease-duration-ms=3000'],
  });
  await applyAll(client, [...pair('alpha'), ...pair('beta')], NS);
  for (const n of ['alpha', 'beta']) {
    await waitFor(
      `${n} programmed`,
      60_000,
      async () => {
        const s = await client.get<Obj>(R.schema, NS, n);
        // No gateway writes route statuses here: routed by KEA, awaiting the gateway's verdict.
        return (s.status?.conditions ?? []).some(
          (c: { type: string; status: string; reason: string }) => c.type === 'Programmed' && (c.status === 'True' || c.reason === 'Pending'),
        );
      },
      200,
    );
  }
}, 180_000);

afterAll(async () => {
  await ctl?.stop('SIGKILL');
  for (const ref of [R.schema, R.mls]) for (const o of (await client.list(ref, { namespace: NS })).items) await client.delete(ref, NS, o.metadata!.name!);
});

/** Owners named by the controller's `reconciled` log records from index `from` on. */
function renderedSince(from: number): { api: string[]; mls: string[] } {
  const recs = ctl.logs.slice(from).filter((r) => r.message === 'reconciled');
  return {
    api: recs.flatMap((r) => (r.renderedApiSchemas as string[] | undefined) ?? []),
    mls: recs.flatMap((r) => (r.renderedMLServices as string[] | undefined) ?? []),
  };
}

test('a touched ApiSchema is rendered again, alone; an unchanged one is not', async () => {
  const before = await settle();
  const mark = ctl.logs.length;
  expect(before.api).toBeGreaterThanOrEqual(2);
  const beta = pair('beta')[1];
  beta.metadata!.labels = { touched: '1' };
  await applyAll(client, [beta], NS);
  const after = await settle();
  expect(after.api - before.api).toBe(1);
  expect(after.mls - before.mls).toBe(0);
  expect(renderedSince(mark)).toEqual({ api: [`${NS}/beta`], mls: [] });
});

test('new operations of one ApiSchema re-render that ApiSchema only, once (its own new published version is no change)', async () => {
  const before = await settle();
  const mark = ctl.logs.length;
  const beta = pair('beta')[1];
  beta.spec.operations.push({ operationId: 'info', method: 'GET', path: '/info', summary: 'Info', responses: { '200': { description: 'ok' } } });
  await applyAll(client, [beta], NS);
  await waitFor('beta has 2 operations', 30_000, async () => (await client.get<Obj>(R.schema, NS, 'beta')).status?.operationCount === 2, 200);
  const after = await settle();
  expect(after.mls - before.mls).toBe(0);
  expect(after.api - before.api).toBe(1);
  expect(renderedSince(mark)).toEqual({ api: [`${NS}/beta`], mls: [] });
});

test('new weights of one MLService re-render it and the ApiSchema fronting it; the route follows', async () => {
  const before = await settle();
  const mark = ctl.logs.length;
  await applyAll(client, [pair('alpha', [30, 70])[0]], NS);
  await waitFor(
    'alpha 30/70',
    30_000,
    async () => {
      const r = await client.get<Obj>(R.route, SYS, internalRouteName(`alpha.${NS}.kea.internal`));
      return r.spec.rules[0].backendRefs.map((b: { weight: number }) => b.weight).join() === '30,70';
    },
    200,
  );
  const after = await settle();
  expect(after.mls - before.mls).toBe(1);
  expect(after.api - before.api).toBe(1);
  expect(renderedSince(mark)).toEqual({ api: [`${NS}/alpha`], mls: [`${NS}/alpha`] });
});

test('a drift edit of an owned route by another field manager is repaired, rendering its owner only', async () => {
  const before = await settle();
  const mark = ctl.logs.length;
  const route = await client.get<Obj>(R.route, NS, 'kea-api-alpha');
  const want = headerValue(route);
  await client.request('PATCH', client.objectPath(R.route, NS, 'kea-api-alpha'), {
    body: [{ op: 'replace', path: '/spec/rules/0/filters/0/requestHeaderModifier/set/0/value', value: 'kea-inc-apps/beta/predict' }],
    contentType: 'application/json-patch+json',
    query: { fieldManager: 'intruder' },
  });
  const repaired = await waitFor(
    'drift repaired',
    30_000,
    async () => {
      const r = await client.get<Obj>(R.route, NS, 'kea-api-alpha');
      return r.metadata?.resourceVersion !== route.metadata?.resourceVersion && headerValue(r) === want ? r : undefined;
    },
    200,
  );
  expect(headerValue(repaired)).toBe(want);
  const after = await settle();
  expect(after.api - before.api).toBe(1);
  expect(after.mls - before.mls).toBe(0);
  expect(renderedSince(mark)).toEqual({ api: [`${NS}/alpha`], mls: [] });
});

test('--full-reconcile-ms: every owner is rendered again periodically without any change, and nothing is written', async () => {
  await ctl.stop('SIGTERM');
  ctl = await spawnController({
    repoRoot: REPO,
    kubeconfig: process.env.KUBECONFIG!,
    identity: 'inc-2',
    args: [`--system-namespace=${SYS}`, '--lease-name=kea-inc', '--retry-period-ms=500', '--lease-duration-ms=3000', '--full-reconcile-ms=3000'],
  });
  const first = await settle();
  expect(first.api).toBeGreaterThanOrEqual(2); // the start renders everything
  const writes = await metric('kea_controller_writes_total{');
  const mark = ctl.logs.length;
  // The log line of a run can arrive after its metrics: wait for the logged owners themselves.
  const both = [`${NS}/alpha`, `${NS}/beta`];
  const names = await waitFor(
    'a periodic full reconcile renders every owner',
    20_000,
    () => {
      const n = renderedSince(mark);
      return both.every((o) => n.api.includes(o) && n.mls.includes(o)) ? n : undefined;
    },
    250,
  );
  const after = await rendered();
  expect(after.api - first.api).toBeGreaterThanOrEqual(2);
  expect(after.mls - first.mls).toBeGreaterThanOrEqual(2);
  expect(new Set(names.api)).toEqual(new Set(both));
  expect(new Set(names.mls)).toEqual(new Set(both));
  expect(await metric('kea_controller_writes_total{')).toBe(writes); // converged: the full run writes nothing
}, 60_000);
