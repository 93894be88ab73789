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
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import http from 'node:http';
import { KubeConfig, KubernetesObjectApi, PatchStrategy, type KubernetesObject } from '@kubernetes/client-node';
import type { ApiSchema } from '../lib/api/types.js';
import { DEFAULT_CONTENT_SECURITY_POLICY } from '../lib/policy/config.js';
import { reconcile } from '../controller/reconcile.js';
import { testControllerConfig } from '../controller/testing/config.js';
import { startNgf, type RunningNgf } from './ngf.js';
import { createBridge, createHost, deleteBridge, registerService, spawnInNetns, type Bridge, type NetnsHost } from './netns.js';

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

let kc: KubeConfig;
let api: KubernetesObjectApi;
let gw: RunningNgf;
let bridge: Bridge;
let stateDir: string;
const hosts: NetnsHost[] = [];
const procs: ChildProcess[] = [];

const apply = (o: KubernetesObject) => api.patch(o, undefined, undefined, FM, true, PatchStrategy.ServerSideApply);

interface Seen {
  status: number;
  headers: http.IncomingHttpHeaders;
  echoed?: { path: string; headers: Record<string, string | undefined> };
}

function get(url: string, headers: Record<string, string>): Promise<Seen> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { headers, agent: false, timeout: 5000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const m = /^<!--(.*?)-->/s.exec(Buffer.concat(chunks).toString('utf8'));
        resolve({ status: res.statusCode ?? 0, headers: res.headers, echoed: m ? (JSON.parse(m[1]) as Seen['echoed']) : undefined });
      });
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${url}: timeout`)));
    req.on('error', reject);
  });
}

async function until<T>(what: string, timeoutMs: number, fn: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${what}: not true after ${timeoutMs} ms${last ? ` (last error: ${String(last)})` : ''}`);
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
  kc = new KubeConfig();
  kc.loadFromFile(process.env.KUBECONFIG!);
  api = KubernetesObjectApi.makeApiClient(kc);
  stateDir = await mkdtemp(join(tmpdir(), 'kea-pt-'));
  bridge = await createBridge();
  const host = await createHost(bridge, 'pt-echo');
  hosts.push(host);
  const p = spawnInNetns(host, process.execPath, ['-e', ECHO], { stdio: ['ignore', 'pipe', 'inherit'] });
  procs.push(p);
  await new Promise<void>((res, rej) => {
    p.stdout!.once('data', () => res());
    p.once('exit', (c) => rej(new Error(`echo exited ${c}`)));
  });
  await registerService(kc, { namespace: NS, name: 'echo', port: 80, targetPort: 8080, addresses: [host.address] });
  gw = await startNgf({ kubeconfig: process.env.KUBECONFIG!, stateDir });

  // What the controller renders for two passthrough ApiSchemas: its public routes, applied as is.
  const service = (await api.read({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'echo', namespace: NS } })) as KubernetesObject;
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
  await gw?.stop();
  for (const p of procs) p.kill('SIGTERM');
  if (bridge) await deleteBridge(bridge);
  if (stateDir) await rm(stateDir, { recursive: true, force: true });
});

const credentials = { authorization: 'Bearer caller-token-valid-for-every-api', cookie: 'kea_session=the-sso-session; theme=dark' };

test('passthrough without spec.security: neither Authorization nor Cookie reaches the backend; nosniff and the default CSP', async () => {
  const r = await until('open route served', 20000, async () => {
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
  const r = await until('app route served', 20000, async () => {
    const x = await get(`${gw.publicUrl}/app/page`, credentials);
    return x.status === 200 && x.echoed ? x : undefined;
  });
  expect(r.echoed!.headers.authorization).toBeUndefined();
  expect(r.echoed!.headers.cookie).toBe(credentials.cookie);
  expect(r.headers['x-content-type-options']).toBe('nosniff');
  expect(r.headers['content-security-policy']).toBe(APP_CSP);
}, 30000);
