/**
 * Integration test of OpenAPI discovery, version history and contract-checked rollout with the
 * real controller (startController: watch → batch → graph → IR → render → apply, discovery
 * wired by --internal-gateway-url) on the real kube-apiserver from test/global-setup.ts.
 *
 * The "internal gateway" is a local node:http server standing in for the Gateway's internal
 * listener: it answers only requests with the right Host (`<schema>.<ns>.api.kea.internal`)
 * and `x-kea-internal-token`, and serves the document the test chooses.
 */
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { KubernetesObject } from '@kubernetes/client-node';
import type { ApiSchema, Condition, MLService } from '../lib/api/types.js';
import { createLogger } from '../lib/log.js';
import { apiConfigMapName } from '../lib/policy/config.js';
import { loadConfig } from './config.js';
import { startController, type ControllerHandle } from './main.js';
import { KubeClient, RESOURCES } from './kube/client.js';
import { applyAll, countWrites, ensureNamespaces } from './testing/testkit.js';
import { QUICK_RECONCILE_FLAGS, testControllerArgs } from './testing/config.js';
import { waitFor } from '../dev/testing/wait.js';
import { loadClusterAuth } from './kube/kubeconfig.js';
import { internalRouteName } from './graph/names.js';

const NS = 'kea-disc-a';
const SYS = 'kea-disc-system';
const TOKEN = 'disc-token';
const ROUTE = RESOURCES['gateway.networking.k8s.io/v1/HTTPRoute'];
const CM = RESOURCES['v1/ConfigMap'];
const SCHEMA = RESOURCES['kea.dev/v1alpha1/ApiSchema'];
const MLS = RESOURCES['kea.dev/v1alpha1/MLService'];
const GRANT = RESOURCES['gateway.networking.k8s.io/v1beta1/ReferenceGrant'];
/** A second tenant namespace (issue 10 item 3: cross-namespace discovery targets). */
const NS2 = 'kea-disc-b';

let client: KubeClient;
let controller: ControllerHandle | undefined;
let gateway: Server;
let gatewayUrl = '';
const seen: IncomingHttpHeaders[] = [];
/** What the fake internal listener serves: a document, or an HTTP status. */
let served: { doc?: unknown; status?: number } = {};

function fastapiDoc(extra: boolean): unknown {
  return {
    openapi: '3.1.0',
    info: { title: 'Legacy', version: extra ? '0.2.0' : '0.1.0' },
    paths: {
      '/items/{item_id}': {
        get: {
          operationId: 'read_item',
          parameters: [
            { name: 'item_id', in: 'path', required: true, schema: { type: 'integer' } },
            { name: 'session', in: 'cookie', required: false, schema: { type: 'string' } },
          ],
          responses: { '200': { description: 'OK', content: { 'application/json': { schema: { type: 'object' } } } } },
        },
      },
      '/predict': {
        post: {
          operationId: 'predict',
          requestBody: {
            required: true,
            content: {
              'application/json': {
                schema: {
                  type: 'object',
                  required: extra ? ['rows', 'model'] : ['rows'],
                  properties: { rows: { type: 'array' }, model: { anyOf: [{ type: 'string' }, { type: 'null' }] } },
                },
              },
            },
          },
          responses: { '200': { description: 'OK', content: { 'application/json': { schema: { type: 'object' } } } } },
        },
      },
      ...(extra ? { '/stats': { get: { operationId: 'stats', responses: { '200': { description: 'OK' } } } } } : {}),
    },
  };
}

const cond = (conds: Condition[] | undefined, type: string) => conds?.find((c) => c.type === type);
/**
 * Routed by KEA: `Programmed=True`, or (no gateway writes route statuses in this test)
 * `Unknown`/`Pending` while the gateway's verdict is awaited (render/route-status.ts).
 */
const routed = (conds: Condition[] | undefined): boolean => {
  const p = cond(conds, 'Programmed');
  return p?.status === 'True' || (p?.status === 'Unknown' && p.reason === 'Pending');
};
const getSchema = (name: string) => client.get<ApiSchema>(SCHEMA, NS, name);
type Route = KubernetesObject & {
  spec: { rules: Array<{ matches: Array<{ method?: string; path: { value: string } }>; backendRefs: Array<{ name: string; weight: number }> }> };
};
const routeRules = async (name: string, namespace = NS) =>
  ((await client.get<Route>(ROUTE, namespace, name).catch(() => undefined))?.spec.rules ?? [])
    .map((r) => `${r.matches[0].method ?? '*'} ${r.matches[0].path.value}`)
    .sort();

beforeAll(async () => {
  client = new KubeClient(loadClusterAuth(process.env.KUBECONFIG));
  await ensureNamespaces(client, NS, SYS, NS2);
  gateway = createServer((req, res) => {
    seen.push(req.headers);
    if (req.headers['x-kea-internal-token'] !== TOKEN || req.headers.host !== `legacy.${NS}.api.kea.internal` || req.url !== '/openapi.json') {
      res.writeHead(404).end();
      return;
    }
    if (served.status) {
      res.writeHead(served.status).end('unavailable');
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(served.doc));
  });
  await new Promise<void>((r) => gateway.listen(0, '127.0.0.1', () => r()));
  gatewayUrl = `http://127.0.0.1:${(gateway.address() as { port: number }).port}`;
  controller = await start();
});

async function start(): Promise<ControllerHandle> {
  const loaded = loadConfig(testControllerArgs(SYS, `--internal-token=${TOKEN}`, `--internal-gateway-url=${gatewayUrl}`, ...QUICK_RECONCILE_FLAGS));
  expect(loaded.runtime.internalGatewayUrl).toBe(gatewayUrl);
  return startController(loaded, { cluster: loadClusterAuth(process.env.KUBECONFIG), logger: createLogger('test', { level: 'silent' }) });
}

afterAll(async () => {
  await controller?.stop();
  for (const [ref, ns] of [
    [SCHEMA, NS],
    [MLS, NS],
    [SCHEMA, NS2],
    [GRANT, NS],
  ] as const) {
    for (const o of (await client.list(ref, { namespace: ns })).items) await client.delete(ref, ns, o.metadata!.name!);
  }
  await new Promise<void>((r) => gateway.close(() => r()));
});

test('a served OpenAPI document is imported, routed, published; a breaking change is a new version with a diff', async () => {
  served = { status: 503 };
  await applyAll(
    client,
    [
      { apiVersion: 'v1', kind: 'Service', metadata: { name: 'legacy' }, spec: { ports: [{ port: 8000 }] } } as KubernetesObject,
      {
        apiVersion: 'kea.dev/v1alpha1',
        kind: 'ApiSchema',
        metadata: { name: 'legacy' },
        spec: {
          target: { service: { name: 'legacy', port: 8000 } },
          basePath: '/legacy',
          info: { title: 'Legacy', version: '0.1.0' },
          defaults: { access: { mode: 'public' } },
          source: { openapi: { refresh: true, intervalSeconds: 10 } },
        },
      } as unknown as KubernetesObject,
    ],
    NS,
  );
  // The target answers 503: nothing to route yet, with the fetch error in status.
  const failing = await waitFor(
    'FetchFailed',
    30_000,
    async () => {
      const s = await getSchema('legacy');
      return cond(s.status?.conditions, 'Imported')?.reason === 'FetchFailed' ? s : undefined;
    },
    200,
  );
  expect(cond(failing.status?.conditions, 'Imported')?.message).toContain('HTTP 503');
  expect(cond(failing.status?.conditions, 'Programmed')).toMatchObject({ status: 'False', reason: 'AwaitingOpenApi' });
  expect(await routeRules('kea-api-legacy')).toEqual([]);
  // The internal route discovery fetches through exists before any operation is known.
  expect(await routeRules(internalRouteName(`legacy.${NS}.api.kea.internal`), SYS)).toEqual(['* /']);

  // The document appears: imported, routed through the policy server, published.
  served = { doc: fastapiDoc(false) };
  const ok = await waitFor(
    'imported',
    20_000,
    async () => {
      const s = await getSchema('legacy');
      return routed(s.status?.conditions) ? s : undefined;
    },
    200,
  );
  expect(cond(ok.status?.conditions, 'Imported')).toMatchObject({ status: 'True', reason: 'Imported' });
  expect(ok.status?.unroutable).toEqual([expect.stringContaining('cookie parameter session')]);
  expect(await routeRules('kea-api-legacy')).toEqual(['GET /legacy/items', 'POST /legacy/predict']);
  expect(ok.status?.versions?.map((v) => v.version)).toEqual(['0.1.0']);
  // Every fetch went to the internal listener with the schema's host and the internal token.
  expect(seen.length).toBeGreaterThan(0);
  expect(seen.every((h) => h.host === `legacy.${NS}.api.kea.internal` && h['x-kea-internal-token'] === TOKEN)).toBe(true);

  // The service changes its API under the same declared version; the refresh (every 10 s)
  // finds it: a new published version (new digest) with a breaking diff.
  served = { doc: fastapiDoc(true) };
  const v2 = await waitFor(
    'second version',
    30_000,
    async () => {
      const s = await getSchema('legacy');
      return s.status?.versions?.length === 2 && s.status.lastDiff ? s : undefined;
    },
    200,
  ).catch(async (e: Error) => {
    throw new Error(`${e.message}; status: ${JSON.stringify((await getSchema('legacy')).status)}`);
  });
  expect(v2.status?.versions?.map((v) => v.version)).toEqual(['0.1.0', '0.1.0']);
  expect(v2.status?.versions?.[0].digest).not.toBe(v2.status?.versions?.[1].digest);
  expect(v2.status?.lastDiff).toMatchObject({ from: '0.1.0', to: '0.1.0', breaking: true });
  expect(v2.status?.lastDiff?.changes.map((c) => `${c.breaking ? 'BREAKING' : 'ok'} ${c.message}`)).toEqual([
    'BREAKING POST /predict: request body.model: became required',
    'ok GET /stats: operation stats added',
  ]);
  expect(await routeRules('kea-api-legacy')).toEqual(['GET /legacy/items', 'GET /legacy/stats', 'POST /legacy/predict']);
  const versions = (await client.list(CM, { namespace: SYS, labelSelector: 'kea.dev/component=api-version' })).items.filter(
    (c) => c.metadata?.annotations?.['kea.dev/api-schema'] === `${NS}/legacy`,
  );
  expect(versions.map((c) => c.metadata?.annotations?.['kea.dev/digest']).sort()).toEqual(v2.status!.versions!.map((v) => v.digest).sort());

  // The target fails again: the last good document stays in force (Stale), nothing is pruned.
  served = { status: 500 };
  const stale = await waitFor(
    'stale',
    20_000,
    async () => {
      const s = await getSchema('legacy');
      return cond(s.status?.conditions, 'Imported')?.reason === 'Stale' ? s : undefined;
    },
    200,
  );
  expect(routed(stale.status?.conditions)).toBe(true);
  expect(await routeRules('kea-api-legacy')).toEqual(['GET /legacy/items', 'GET /legacy/stats', 'POST /legacy/predict']);
});

test('a breaking canary is refused (its weight goes to the stable revision) until allowBreakingChanges', async () => {
  const schema = (name: string, basePath: string, required: string[]): KubernetesObject =>
    ({
      apiVersion: 'kea.dev/v1alpha1',
      kind: 'ApiSchema',
      metadata: { name },
      spec: {
        target: { mlService: { name: 'iris' } },
        basePath,
        info: { title: 'Iris', version: required.length > 1 ? '2.0.0' : '1.0.0' },
        operations: [
          {
            operationId: 'predict',
            method: 'POST',
            path: '/predict',
            requestBody: { required: true, schema: { type: 'object', required, properties: { a: { type: 'array' }, b: { type: 'string' } } } },
          },
        ],
      },
    }) as unknown as KubernetesObject;
  const mls = (allow: boolean): KubernetesObject =>
    ({
      apiVersion: 'kea.dev/v1alpha1',
      kind: 'MLService',
      metadata: { name: 'iris', namespace: NS },
      spec: {
        framework: 'sklearn',
        allowBreakingChanges: allow,
        revisions: [
          { name: 'v1', modelUri: 's3://m/1', weight: 90, apiSchema: 'iris-v1' },
          { name: 'v2', modelUri: 's3://m/2', weight: 10, apiSchema: 'iris-v2' },
        ],
      },
    }) as unknown as KubernetesObject;
  await applyAll(client, [schema('iris-v1', '/iris', ['a']), schema('iris-v2', '/iris-v2', ['a', 'b']), mls(false)], NS);
  const weights = async () =>
    (await client.get<Route>(ROUTE, SYS, internalRouteName(`iris.${NS}.kea.internal`)).catch(() => undefined))?.spec.rules[0].backendRefs
      .map((b) => `${b.name}=${b.weight}`)
      .join(',');
  await waitFor('refused canary routes 100/0', 20_000, async () => (await weights()) === 'iris-v1=100,iris-v2=0', 200);
  const refused = await client.get<MLService>(MLS, NS, 'iris');
  expect(cond(refused.status?.conditions, 'ContractChecked')).toMatchObject({ status: 'False', reason: 'BreakingApiChange' });
  expect(cond(refused.status?.conditions, 'ContractChecked')?.message).toContain('POST /predict: request body.b');
  expect(cond(refused.status?.conditions, 'Accepted')?.status).toBe('True');
  expect(refused.status?.traffic).toEqual([
    { revision: 'v1', weight: 100 },
    { revision: 'v2', weight: 0 },
  ]);
  // The canary still gets its Deployment, so it can warm up.
  await waitFor('v2 deployment', 30_000, () => client.get(RESOURCES['apps/v1/Deployment'], NS, 'iris-v2').catch(() => undefined), 200);
  const events = (await client.list(RESOURCES['v1/Event'], { namespace: NS })).items as Array<KubernetesObject & { reason?: string; type?: string }>;
  expect(events.some((e) => e.reason === 'BreakingApiChange' && e.type === 'Warning')).toBe(true);

  await applyAll(client, [mls(true)], NS);
  await waitFor('allowed canary routes 90/10', 20_000, async () => (await weights()) === 'iris-v1=90,iris-v2=10', 200);
  const allowed = await client.get<MLService>(MLS, NS, 'iris');
  expect(cond(allowed.status?.conditions, 'ContractChecked')).toMatchObject({ status: 'True', reason: 'BreakingChangeAllowed' });

  // Converged (history, diffs and contract checks included): no writes for 4 s.
  await controller!.idle();
  expect(await countWrites(client, 4000)).toEqual([]);
});

test('a controller restart while the served document is unreachable prunes nothing (retained until it is fetched again)', async () => {
  const rules = await routeRules('kea-api-legacy');
  expect(rules).toEqual(['GET /legacy/items', 'GET /legacy/stats', 'POST /legacy/predict']);
  const apiConfig = () => client.get(CM, SYS, apiConfigMapName(NS, 'legacy')).catch(() => undefined);
  expect(await apiConfig()).toBeDefined();
  await controller!.stop();
  served = { status: 503 };
  controller = await start();
  // The new process has no document for legacy: AwaitingOpenApi, and its objects are retained.
  const waiting = await waitFor(
    'FetchFailed after restart',
    20_000,
    async () => {
      const s = await getSchema('legacy');
      // Imported is Pending until the first fetch has failed: wait for both.
      return cond(s.status?.conditions, 'Programmed')?.reason === 'AwaitingOpenApi' && cond(s.status?.conditions, 'Imported')?.reason === 'FetchFailed'
        ? s
        : undefined;
    },
    200,
  );
  expect(cond(waiting.status?.conditions, 'Imported')).toMatchObject({ status: 'False', reason: 'FetchFailed' });
  await controller.idle();
  expect(await routeRules('kea-api-legacy')).toEqual(rules);
  expect(await apiConfig()).toBeDefined();
  // The document is back: programmed again, same routes.
  served = { doc: fastapiDoc(true) };
  await waitFor('programmed again', 30_000, async () => routed((await getSchema('legacy')).status?.conditions), 200);
  expect(await routeRules('kea-api-legacy')).toEqual(rules);
});

test('a discovery target in another namespace is fetched only once a ReferenceGrant allows it (issue 10 item 3)', async () => {
  const host = `peek.${NS2}.api.kea.internal`;
  const getPeek = () => client.get<ApiSchema>(SCHEMA, NS2, 'peek');
  // Tenant NS2 points an ApiSchema with spec.source.openapi at tenant NS's Service legacy.
  await applyAll(
    client,
    [
      {
        apiVersion: 'kea.dev/v1alpha1',
        kind: 'ApiSchema',
        metadata: { name: 'peek' },
        spec: {
          target: { service: { name: 'legacy', namespace: NS, port: 8000 } },
          basePath: '/peek',
          info: { title: 'Peek', version: '1' },
          source: { openapi: { refresh: true, intervalSeconds: 10 } },
        },
      } as unknown as KubernetesObject,
    ],
    NS2,
  );
  const refused = await waitFor(
    'Imported=False Refused',
    20_000,
    async () => {
      const s = await getPeek();
      return cond(s.status?.conditions, 'Imported')?.reason === 'Refused' ? s : undefined;
    },
    200,
  );
  expect(cond(refused.status?.conditions, 'ResolvedRefs')).toMatchObject({ status: 'False', reason: 'RefNotPermitted' });
  expect(cond(refused.status?.conditions, 'Imported')?.message).toContain(`ReferenceGrant in namespace ${NS} allows HTTPRoutes of namespace ${NS2}`);
  // Two more batches (debounce 50 ms): still no request for its host reached the internal listener.
  await controller!.idle();
  await new Promise((r) => setTimeout(r, 500));
  expect(seen.filter((h) => h.host === host)).toEqual([]);

  // The owner of NS grants NS2: the document is fetched (the fake listener answers 404 for
  // this host, so the fetch fails, but it was sent).
  await applyAll(
    client,
    [
      {
        apiVersion: 'gateway.networking.k8s.io/v1beta1',
        kind: 'ReferenceGrant',
        metadata: { name: 'allow-disc-b' },
        spec: { from: [{ group: 'gateway.networking.k8s.io', kind: 'HTTPRoute', namespace: NS2 }], to: [{ group: '', kind: 'Service', name: 'legacy' }] },
      } as unknown as KubernetesObject,
    ],
    NS,
  );
  await waitFor('fetched once granted', 20_000, () => seen.some((h) => h.host === host), 200);
  const after = await waitFor(
    'Imported no longer Refused',
    20_000,
    async () => {
      const s = await getPeek();
      const c = cond(s.status?.conditions, 'Imported');
      return c && c.reason !== 'Refused' ? s : undefined;
    },
    200,
  );
  expect(cond(after.status?.conditions, 'Imported')).toMatchObject({ status: 'False', reason: 'FetchFailed' });
});
