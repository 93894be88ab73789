/**
 * Passthrough mode through a real gateway (issue 10, item 5): the public HTTPRoute the
 * controller renders for a `policy.mode: passthrough` ApiSchema (controller/render, no policy
 * server in the path) is applied to a real kube-apiserver and programmed by the local stack's
 * gateway, real nginx-gateway-fabric 1.6.2 + nginx (dev/ngf.ts); a real backend in a network namespace echoes the request headers it received
 * and answers `text/html`. Checked: `Authorization` and `Cookie` (KEA's session cookie) reach
 * the backend only when `spec.security.forwardCredentials` lists them, and every answer carries
 * `X-Content-Type-Options: nosniff` and the ApiSchema's Content-Security-Policy.
 *
 * Needs root (ip netns, unshare, mount, nsenter) and the NGF binary (scripts/build-ngf.sh);
 * KUBECONFIG comes from the integration project's global setup (test/global-setup.mjs). The
 * routes attach to Gateway kea-system/kea, as the controller renders them.
 */
import type http from 'node:http';
import type { KubernetesObject, KubernetesObjectApi } from '@kubernetes/client-node';
import type { ApiSchema } from '../lib/api/types.js';
import { DEFAULT_CONTENT_SECURITY_POLICY } from '../lib/policy/config.js';
import { reconcile } from '../controller/reconcile.js';
import { testControllerConfig } from '../controller/testing/config.js';
import type { RunningNgf } from './ngf.js';
import { GatewayTestbed, httpRequest } from './testing/testbed.js';
import { waitFor } from './testing/wait.js';

/** Echoes the request headers as JSON, in a text/html answer (a backend page on the gateway origin). */
const ECHO = `
const http = require('node:http');
http.createServer((req, res) => {
  res.setHeader('content-type', 'text/html; charset=utf-8');
  res.end('<!--' + JSON.stringify({ path: req.url, headers: req.headers }) + '--><script>document.cookie</script>');
}).listen(8080, '0.0.0.0', () => console.log('listening'));
`;

const FM = 'kea-passthrough-test';
const NS = `pt-${Math.random().toString(36).slice(2, 7)}`;
const APP_CSP = "default-src 'self'; frame-ancestors 'none'";

let tb: GatewayTestbed;
let api: KubernetesObjectApi;
let gw: RunningNgf;

const apply = (o: KubernetesObject) => tb.apply(o);

interface Seen {
  status: number;
  headers: http.IncomingHttpHeaders;
  echoed?: { path: string; headers: Record<string, string | undefined> };
}

async function get(url: string, headers: Record<string, string>): Promise<Seen> {
  const r = await httpRequest(url, { headers });
  const m = /^<!--(.*?)-->/s.exec(r.text);
  return { status: r.status, headers: r.headers, echoed: m ? (JSON.parse(m[1]) as Seen['echoed']) : undefined };
}

function passthroughSchema(name: string, security?: ApiSchema['spec']['security']): ApiSchema {
  return {
    apiVersion: 'kea.dev/v1alpha1',
    kind: 'ApiSchema',
    metadata: { name, namespace: NS, uid: `uid-${name}`, generation: 1, creationTimestamp: '2026-01-01T00:00:00Z' },
    spec: {
      target: { service: { name: 'echo', port: 80 } },
      basePath: `/${name}`,
      info: { title: name, version: '1.0.0' },
      policy: { mode: 'passthrough' },
      operations: [{ operationId: 'page', method: 'GET', path: '/page' }],
      ...(security ? { security } : {}),
    },
  };
}

beforeAll(async () => {
  tb = await GatewayTestbed.create('kea-pt-', FM);
  api = tb.api;
  await tb.service({ namespace: NS, name: 'echo', host: 'pt-echo', script: ECHO });
  gw = await tb.gateway();

  // What the controller renders for two passthrough ApiSchemas: its public routes, applied as is.
  const service = await api.read({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'echo', namespace: NS } });
  const out = reconcile(
    {
      apiSchemas: [passthroughSchema('open'), passthroughSchema('app', { forwardCredentials: ['Cookie'], contentSecurityPolicy: APP_CSP })],
      mlServices: [],
      services: [service],
      referenceGrants: [],
      publishedVersions: [],
    },
    testControllerConfig(),
    new Date().toISOString(),
  );
  const routes = out.objects.filter((o) => o.kind === 'HTTPRoute' && o.metadata?.namespace === NS);
  expect(routes.map((r) => r.metadata!.name).sort()).toEqual(['kea-api-app', 'kea-api-open']);
  for (const r of routes) await apply(r);
}, 120000);

afterAll(async () => {
  await tb?.stop();
});

const credentials = { authorization: 'Bearer caller-token-valid-for-every-api', cookie: 'kea_session=the-sso-session; theme=dark' };

test('passthrough without spec.security: neither Authorization nor Cookie reaches the backend; nosniff and the default CSP', async () => {
  const r = await waitFor('open route served', 20000, async () => {
    const x = await get(`${gw.publicUrl}/open/page`, credentials);
    return x.status === 200 && x.echoed ? x : undefined;
  });
  expect(r.echoed!.path).toBe('/page');
  expect(r.echoed!.headers.authorization).toBeUndefined();
  expect(r.echoed!.headers.cookie).toBeUndefined();
  expect(r.headers['x-content-type-options']).toBe('nosniff');
  expect(r.headers['content-security-policy']).toBe(DEFAULT_CONTENT_SECURITY_POLICY);
}, 30000);

test('passthrough with forwardCredentials [Cookie] and its own CSP: only Cookie reaches the backend', async () => {
  const r = await waitFor('app route served', 20000, async () => {
    const x = await get(`${gw.publicUrl}/app/page`, credentials);
    return x.status === 200 && x.echoed ? x : undefined;
  });
  expect(r.echoed!.headers.authorization).toBeUndefined();
  expect(r.echoed!.headers.cookie).toBe(credentials.cookie);
  expect(r.headers['x-content-type-options']).toBe('nosniff');
  expect(r.headers['content-security-policy']).toBe(APP_CSP);
}, 30000);
