/**
 * NGF's policies as the controller renders them (issue 11, items 4 and 8), through a real
 * nginx-gateway-fabric 1.6.2 + nginx (dev/ngf.ts, a Gateway in a namespace of its own), a
 * real policy server (in process, on the bridge's host address, registered as the Service the
 * public routes reach) and a real backend in a network namespace (the MLService's revision
 * Service) that answers with the number of body bytes it received and the client port of the
 * connection. The objects applied are those of `reconcile()` with `gatewayImplementation: ngf`:
 *  - ClientSettingsPolicy on the Gateway: before it, nginx answers a 3 MiB body with its own
 *    413 HTML page (`client_max_body_size 1m`); after it, the 3 MiB body to an operation
 *    allowing 8 MiB reaches the backend through both listeners, and a body over an operation's
 *    limit gets the policy server's 413 `application/problem+json`, every time (no 502);
 *  - UpstreamSettingsPolicies: before them nginx opens a connection to the policy server and
 *    to the backend per request; after them, sequential requests reuse a few;
 *  - timeouts: NGF 1.6.2 has no field for proxy_read_timeout (nginx's 60 s default on both
 *    hops); the policy server's per-operation timeout answers first, 504 problem+json.
 *
 * Needs root (ip netns, unshare, mount, nsenter) and the NGF binary (scripts/build-ngf.sh);
 * KUBECONFIG comes from the integration project's global setup (test/global-setup.mjs).
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import type { KubernetesObject } from '@kubernetes/client-node';
import type { ApiSchema, MLService } from '../lib/api/types.js';
import { createLogger } from '../lib/log.js';
import { reconcile } from '../controller/reconcile.js';
import { testControllerConfig } from '../controller/testing/config.js';
import { KubeClient } from '../controller/kube/client.js';
import { loadClusterAuth } from '../controller/kube/kubeconfig.js';
import { createPolicyServer, type PolicyServer } from '../policy-server/server.js';
import { SnapshotStore } from '../policy-server/snapshot/store.js';
import { testAuthenticator } from '../policy-server/testing/fixtures.js';
import { KEA_CACHE, KUBE_VERSION } from './controlplane.js';
import { NGF_VERSION, type RunningNgf } from './ngf.js';
import { registerService } from './netns.js';
import { GatewayTestbed, httpRequest } from './testing/testbed.js';
import { waitFor } from './testing/wait.js';

const ngfBin = process.env.KEA_NGF_BIN ?? join(KEA_CACHE, 'bin', `ngf-${NGF_VERSION}`);
const skip = !existsSync(ngfBin) && !existsSync(join(KEA_CACHE, 'bin', `kube-apiserver-${KUBE_VERSION}`));
const maybe = skip ? describe.skip : describe;

/** Reads the whole body; answers its length and the connection's client port. */
const ECHO = `
const http = require('node:http');
http.createServer((req, res) => {
  let bytes = 0;
  req.on('data', (c) => { bytes += c.length; });
  req.on('end', () => {
    res.setHeader('content-type', 'application/json');
    const send = () => res.end(JSON.stringify({ bytes, port: req.socket.remotePort }));
    if (req.url.startsWith('/slow')) setTimeout(send, 8000); else send();
  });
}).listen(8080, '0.0.0.0', () => console.log('listening'));
`;

const FM = 'kea-ngf-policies-test';
const suffix = Math.random().toString(36).slice(2, 7);
const APPS = `ngfp-apps-${suffix}`;
const GW_NS = `ngfp-gw-${suffix}`;
const TOKEN = `internal-${suffix}`;
const MIB = 1024 * 1024;

let tb: GatewayTestbed;
let gw: RunningNgf;
let ps: PolicyServer;
let policyConnections = 0;
let ngfPolicies: KubernetesObject[] = [];

const apply = (o: KubernetesObject) => tb.apply(o);

interface Answer {
  status: number;
  contentType: string;
  text: string;
}

/** POSTs `bytes` bytes of JSON (`{"pad":"xxx…"}`) on a new connection. */
async function post(path: string, bytes: number): Promise<Answer> {
  const head = '{"pad":"';
  const body = Buffer.alloc(bytes, 'x');
  body.write(head, 0);
  body.write('"}', bytes - 2);
  const r = await httpRequest(`${gw.publicUrl}${path}`, {
    method: 'POST',
    timeoutMs: 20000,
    headers: { 'content-type': 'application/json', 'content-length': String(bytes) },
    body,
  });
  return { status: r.status, contentType: String(r.headers['content-type'] ?? ''), text: r.text };
}

const mls: MLService = {
  apiVersion: 'kea.dev/v1alpha1',
  kind: 'MLService',
  metadata: { name: 'iris', namespace: APPS, uid: 'uid-mls', generation: 1 },
  spec: { framework: 'sklearn', revisions: [{ name: 'v1', modelUri: 's3://m/iris/1', weight: 100 }] },
};

const apiSchema: ApiSchema = {
  apiVersion: 'kea.dev/v1alpha1',
  kind: 'ApiSchema',
  metadata: { name: 'iris', namespace: APPS, uid: 'uid-api', generation: 1 },
  spec: {
    target: { mlService: { name: 'iris' } },
    basePath: '/iris',
    info: { title: 'Iris', version: '1.0.0' },
    operations: [
      {
        operationId: 'predict',
        method: 'POST',
        path: '/predict',
        access: { mode: 'public' },
        maxBodyBytes: 8 * MIB,
        requestBody: { schema: { type: 'object' } },
      },
      { operationId: 'explain', method: 'POST', path: '/explain', access: { mode: 'public' }, requestBody: { schema: { type: 'object' } } },
      { operationId: 'slow', method: 'POST', path: '/slow', access: { mode: 'public' }, timeout: '2s', requestBody: { schema: { type: 'object' } } },
    ],
  },
};

/** Distinct client ports the backend saw over `n` sequential requests (each client request on a new connection). */
async function backendPorts(n: number): Promise<Set<number>> {
  const ports = new Set<number>();
  for (let i = 0; i < n; i++) {
    const r = await post('/iris/predict', 64);
    expect(r.status).toBe(200);
    ports.add((JSON.parse(r.text) as { port: number }).port);
  }
  return ports;
}

maybe('NGF policies rendered by the controller, through NGF 1.6.2, a policy server and a backend', () => {
  beforeAll(async () => {
    tb = await GatewayTestbed.create('kea-ngfp-', FM);
    await tb.service({ namespace: APPS, name: 'iris-v1', host: 'ngfp-iris', script: ECHO, port: 8080 });
    gw = await tb.gateway({ namespace: GW_NS });
    const bridge = await tb.bridge();

    const store = new SnapshotStore({ logger: createLogger('policy-server', { level: 'error', stream: new Writable({ write: (_c, _e, cb) => cb() }) }) });
    ps = createPolicyServer({
      store,
      auth: testAuthenticator(),
      upstreamUrl: gw.internalUrl,
      internalToken: TOKEN,
      logger: createLogger('policy-server', { level: 'error', stream: new Writable({ write: (_c, _e, cb) => cb() }) }),
    });
    ps.server.on('connection', () => policyConnections++);
    const port = await ps.listen(0, bridge.hostAddress);
    await registerService(tb.kc, { namespace: GW_NS, name: 'kea-policy', port, targetPort: port, addresses: [bridge.hostAddress] });

    const config = testControllerConfig({
      systemNamespace: GW_NS,
      gateway: { namespace: GW_NS, name: 'kea', publicListener: 'public', internalListener: 'internal' },
      policyServer: { name: 'kea-policy', port },
      internalToken: TOKEN,
      gatewayImplementation: 'ngf',
    });
    const out = reconcile(
      { apiSchemas: [apiSchema], mlServices: [mls], services: [], referenceGrants: [], publishedVersions: [] },
      config,
      new Date().toISOString(),
    );
    const cms = out.objects.filter((o) => o.kind === 'ConfigMap' && o.metadata?.labels?.['kea.dev/component'] === 'api-config') as Array<
      KubernetesObject & { data: Record<string, string> }
    >;
    store.apply(
      cms.map((c) => ({ name: c.metadata!.name!, labels: c.metadata!.labels ?? {}, annotations: c.metadata!.annotations ?? {}, data: c.data })),
      'source',
    );
    // Routes and grants now; NGF's policies in the second test (the first one shows nginx without them).
    for (const o of out.objects.filter((x) => x.kind === 'ReferenceGrant' || x.kind === 'HTTPRoute')) await apply(o);
    ngfPolicies = out.objects.filter((o) => o.apiVersion === 'gateway.nginx.org/v1alpha1');
    expect(ngfPolicies.map((o) => `${o.kind} ${o.metadata?.namespace}/${o.metadata?.name}`).sort()).toEqual([
      `ClientSettingsPolicy ${GW_NS}/kea-client-settings`,
      `UpstreamSettingsPolicy ${APPS}/kea-upstream-iris`,
      `UpstreamSettingsPolicy ${GW_NS}/kea-policy-upstream`,
    ]);
  }, 120000);

  afterAll(async () => {
    await tb?.stop();
    await ps?.close();
  });

  test('without the policies: nginx refuses a 3 MiB body with its own HTML 413, and opens a connection per request upstream', async () => {
    await waitFor('route served', 30000, async () => ((await post('/iris/predict', 64)).status === 200 ? true : undefined));
    const r = await post('/iris/predict', 3 * MIB);
    expect([r.status, r.contentType]).toEqual([413, 'text/html']);
    const before = policyConnections;
    const ports = await backendPorts(10);
    expect(policyConnections - before).toBe(10);
    expect(ports.size).toBe(10);
  }, 60000);

  test('with the policies: 3 MiB reaches the backend through both listeners; over the limit, always the policy server 413 problem+json', async () => {
    // Through KEA's own client (its apply stage): the kinds are not in its static table and are
    // resolved by API discovery.
    const kea = new KubeClient(loadClusterAuth(process.env.KUBECONFIG));
    for (const o of ngfPolicies) await kea.apply(o, 'kea-controller');
    await kea.close();
    const ok = await waitFor('3 MiB body accepted', 30000, async () => {
      const r = await post('/iris/predict', 3 * MIB);
      return r.status === 200 ? r : undefined;
    });
    expect(JSON.parse(ok.text)).toMatchObject({ bytes: 3 * MIB });
    const statuses: string[] = [];
    for (let i = 0; i < 20; i++) {
      // Over predict's 8 MiB (under the gateway cap, 16m), and over explain's default 1 MiB.
      for (const [path, bytes, limit] of [
        ['/iris/predict', 9 * MIB, 8 * MIB],
        ['/iris/explain', 3 * MIB, MIB],
      ] as const) {
        const r = await post(path, bytes);
        statuses.push(`${r.status} ${r.contentType}`);
        if (r.status === 413) expect(JSON.parse(r.text)).toMatchObject({ status: 413, limit });
      }
    }
    expect(statuses.filter((s) => s !== '413 application/problem+json')).toEqual([]);
  }, 120000);

  test("the operation's timeout is what the client observes, not nginx's 60 s (NGF 1.6.2 sets no proxy_read_timeout)", async () => {
    const t = Date.now();
    const r = await post('/iris/slow', 64);
    const ms = Date.now() - t;
    expect([r.status, r.contentType]).toEqual([504, 'application/problem+json']);
    expect(ms).toBeGreaterThanOrEqual(1900);
    expect(ms).toBeLessThan(4000);
  }, 30000);

  test('with the policies: nginx keeps its connections to the policy server and to the backend', async () => {
    const before = policyConnections;
    const ports = await backendPorts(10);
    expect(policyConnections - before).toBeLessThanOrEqual(2);
    expect(ports.size).toBeLessThanOrEqual(2);
  }, 60000);
});
