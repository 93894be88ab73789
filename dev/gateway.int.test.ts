/**
 * The Gateway API behaviour KEA relies on, through the local stack's gateway: real
 * nginx-gateway-fabric 1.6.2 + nginx (dev/ngf.ts) programmed only through standard Gateway API
 * objects in a real kube-apiserver, sending real traffic to backends in network namespaces
 * registered by Service + EndpointSlice (dev/netns.ts): weighted split and weight changes,
 * RequestHeaderModifier, cross-namespace backendRefs and ReferenceGrant, the internal listener
 * (hostname + header match, `allowedRoutes: Same`, token rotation), route deletion.
 * dev/ngf.int.test.ts covers the runner itself (statuses, NGF restarts, clean stop).
 *
 * Needs root (ip netns, unshare, mount, nsenter) and the NGF binary (scripts/build-ngf.sh);
 * KUBECONFIG comes from the integration project's global setup (test/global-setup.mjs). The
 * Gateway lives in a namespace of its own (`gwt-gw-<random>`), where the internal routes live too.
 *
 * Every request opens a new connection (`agent: false`): each route change reloads nginx, which
 * closes idle keep-alive connections (issue 11 item 8), which is not what these tests are about.
 */
import { readFile } from 'node:fs/promises';
import { execFileSync } from 'node:child_process';
import type { KubernetesObject, KubernetesObjectApi } from '@kubernetes/client-node';
import type { RunningNgf } from './ngf.js';
import { listNetns } from './netns.js';
import { GatewayTestbed, httpRequest, split } from './testing/testbed.js';
import { internalRouteName } from '../controller/graph/names.js';
import { waitFor } from './testing/wait.js';

const ECHO = `
const http = require('node:http');
const name = process.argv[1];
http.createServer((req, res) => {
  res.setHeader('content-type', 'application/json');
  res.end(JSON.stringify({ backend: name, path: req.url, operation: req.headers['x-kea-operation'] ?? null }));
}).listen(8080, '0.0.0.0', () => console.log('listening'));
`;

const FM = 'kea-gateway-test';
const suffix = Math.random().toString(36).slice(2, 7);
const APPS = `gwt-apps-${suffix}`;
const OTHER = `gwt-other-${suffix}`;
/** The Gateway's namespace (kea-system in the stack): the only one the internal listener admits routes from. */
const GW_NS = `gwt-gw-${suffix}`;

let tb: GatewayTestbed;
let api: KubernetesObjectApi;
let gw: RunningNgf;

const apply = (o: KubernetesObject) => tb.apply(o);

interface Reply {
  status: number;
  backend?: string;
  operation?: string | null;
}

/** GET on a new connection; the echo's backend name and the operation header it saw. */
async function get(url: string, headers: Record<string, string> = {}): Promise<Reply> {
  const r = await httpRequest(url, { headers });
  if (r.status !== 200) return { status: r.status };
  const body = JSON.parse(r.text) as { backend: string; operation: string | null };
  return { status: 200, backend: body.backend, operation: body.operation };
}

function route(name: string, namespace: string, weights: [number, number], extra: Record<string, unknown> = {}): KubernetesObject {
  return {
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'HTTPRoute',
    metadata: { name, namespace },
    spec: {
      parentRefs: [{ name: 'kea', namespace: GW_NS, sectionName: 'public' }],
      rules: [
        {
          matches: [{ path: { type: 'PathPrefix', value: `/${name}` } }],
          filters: [{ type: 'RequestHeaderModifier', requestHeaderModifier: { set: [{ name: 'x-kea-operation', value: `${namespace}/${name}/op` }] } }],
          backendRefs: [
            { name: 'echo-v1', namespace: APPS, port: 80, weight: weights[0] },
            { name: 'echo-v2', namespace: APPS, port: 80, weight: weights[1] },
          ],
        },
      ],
      ...extra,
    },
  } as KubernetesObject;
}

beforeAll(async () => {
  tb = await GatewayTestbed.create('kea-gw-', FM);
  api = tb.api;
  for (const v of ['v1', 'v2']) await tb.service({ namespace: APPS, name: `echo-${v}`, host: v, script: ECHO, args: [v] });
  await apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: OTHER } });
  gw = await tb.gateway({ namespace: GW_NS });
}, 120000);

afterAll(async () => {
  await tb?.stop();
});

describe("Gateway API through nginx-gateway-fabric + nginx (the local stack's gateway)", () => {
  test('weighted backendRefs 80/20 split 1000 requests within ±5%', async () => {
    await apply(route('split', APPS, [80, 20]));
    // Served by every nginx worker (20 × 200: after a reload an old worker may answer a new connection for a few ms).
    await waitFor('route served', 10000, async () => {
      const c = await split(`${gw.publicUrl}/split`, 20, 4);
      return Object.keys(c).every((k) => !k.startsWith('status:')) ? c : undefined;
    });
    const counts = await split(`${gw.publicUrl}/split`, 1000);
    process.stdout.write(`80/20 split over 1000 requests: ${JSON.stringify(counts)}\n`);
    expect((counts.v1 ?? 0) + (counts.v2 ?? 0)).toBe(1000);
    expect(counts.v1).toBeGreaterThanOrEqual(750);
    expect(counts.v1).toBeLessThanOrEqual(850);
    // The RequestHeaderModifier filter reached the backend.
    expect((await get(`${gw.publicUrl}/split`)).operation).toBe(`${APPS}/split/op`);
  });

  test('a weight change by server-side apply shows in traffic within 5 s', async () => {
    const t0 = Date.now();
    await apply(route('split', APPS, [20, 80]));
    // New split visible: 100 consecutive requests with v2's share within 80% ± 10%.
    await waitFor('new split', 5000, async () => {
      const c = await split(`${gw.publicUrl}/split`, 100, 4);
      return (c.v2 ?? 0) >= 70 && (c.v2 ?? 0) <= 90 ? c : undefined;
    });
    const ms = Date.now() - t0;
    process.stdout.write(`weight change 80/20 -> 20/80 visible in traffic after ${ms} ms\n`);
    expect(ms).toBeLessThanOrEqual(5000);
    const counts = await split(`${gw.publicUrl}/split`, 1000);
    expect(counts.v2).toBeGreaterThanOrEqual(750);
    expect(counts.v2).toBeLessThanOrEqual(850);
  });

  test('a cross-namespace backendRef needs a ReferenceGrant', async () => {
    await apply(route('xns', OTHER, [1, 0]));
    // Without a grant the route is refused with ResolvedRefs=False/RefNotPermitted and no traffic reaches the backend.
    const cond = await waitFor('ResolvedRefs=False', 10000, async () => {
      const r = await api.read<
        KubernetesObject & {
          status?: { parents?: { conditions?: { type: string; status: string; reason: string }[] }[] };
        }
      >({ apiVersion: 'gateway.networking.k8s.io/v1', kind: 'HTTPRoute', metadata: { name: 'xns', namespace: OTHER } });
      const c = r.status?.parents?.[0]?.conditions?.find((x) => x.type === 'ResolvedRefs');
      return c?.status === 'False' ? c : undefined;
    });
    expect(cond.reason).toBe('RefNotPermitted');
    expect((await get(`${gw.publicUrl}/xns`)).status).not.toBe(200);
    await apply({
      apiVersion: 'gateway.networking.k8s.io/v1beta1',
      kind: 'ReferenceGrant',
      metadata: { name: 'allow-other', namespace: APPS },
      spec: { from: [{ group: 'gateway.networking.k8s.io', kind: 'HTTPRoute', namespace: OTHER }], to: [{ group: '', kind: 'Service' }] },
    } as KubernetesObject);
    const r = await waitFor('served after grant', 5000, async () => {
      const x = await get(`${gw.publicUrl}/xns`);
      return x.status === 200 ? x : undefined;
    });
    expect(r.backend).toBe('v1');
  });

  // KEA's internal routes live in the Gateway's namespace (kea-system in the stack, GW_NS here:
  // the only namespace the internal listener admits, dev/ngf.ts gatewayObjects) and reach the
  // revision Services of a tenant namespace through a ReferenceGrant there
  // (docs/adr/0009-internal-routes.md).
  const internalRoute = (tokens: string[]): KubernetesObject =>
    ({
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'HTTPRoute',
      metadata: { name: internalRouteName('echo.apps.kea.internal'), namespace: GW_NS },
      spec: {
        parentRefs: [{ name: 'kea', namespace: GW_NS, sectionName: 'internal' }],
        hostnames: ['echo.apps.kea.internal'],
        rules: [
          {
            matches: tokens.map((value) => ({ path: { type: 'PathPrefix', value: '/' }, headers: [{ name: 'x-kea-internal-token', value }] })),
            backendRefs: [{ name: 'echo-v2', namespace: APPS, port: 80 }],
          },
        ],
      },
    }) as KubernetesObject;

  test("internal listener: a route in the Gateway's namespace, hostname + header match, backend through a ReferenceGrant", async () => {
    await apply({
      apiVersion: 'gateway.networking.k8s.io/v1beta1',
      kind: 'ReferenceGrant',
      metadata: { name: internalRouteName('echo.apps.kea.internal'), namespace: APPS },
      spec: { from: [{ group: 'gateway.networking.k8s.io', kind: 'HTTPRoute', namespace: GW_NS }], to: [{ group: '', kind: 'Service', name: 'echo-v2' }] },
    } as KubernetesObject);
    await apply(internalRoute(['s3cret']));
    const ok = await waitFor('internal route', 5000, async () => {
      const x = await get(`${gw.internalUrl}/predict`, { host: 'echo.apps.kea.internal', 'x-kea-internal-token': 's3cret' });
      return x.status === 200 ? x : undefined;
    });
    expect(ok.backend).toBe('v2');
    expect((await get(`${gw.internalUrl}/predict`, { host: 'echo.apps.kea.internal' })).status).toBe(404);
    expect((await get(`${gw.internalUrl}/predict`, { host: 'echo.apps.kea.internal', 'x-kea-internal-token': 'wrong' })).status).toBe(404);
    expect((await get(`${gw.internalUrl}/predict`, { host: 'other.kea.internal', 'x-kea-internal-token': 's3cret' })).status).toBe(404);
    // The public listener does not serve internal routes.
    expect((await get(`${gw.publicUrl}/predict`, { host: 'echo.apps.kea.internal', 'x-kea-internal-token': 's3cret' })).status).toBe(404);
  });

  test("internal listener: a tenant route is refused (NotAllowedByListeners) and cannot outrank KEA's route", async () => {
    // Issue 10 item 4: a tenant attaches a route for the victim's internal host with a more
    // specific path and no token match, pointing at its own backend (echo-v1).
    await apply({
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'HTTPRoute',
      metadata: { name: 'hijack', namespace: OTHER },
      spec: {
        parentRefs: [{ name: 'kea', namespace: GW_NS, sectionName: 'internal' }],
        hostnames: ['echo.apps.kea.internal'],
        rules: [{ matches: [{ path: { type: 'PathPrefix', value: '/predict' } }], backendRefs: [{ name: 'echo-v1', namespace: APPS, port: 80 }] }],
      },
    } as KubernetesObject);
    // Even a grant from the tenant's namespace to the backend does not let it in.
    await apply({
      apiVersion: 'gateway.networking.k8s.io/v1beta1',
      kind: 'ReferenceGrant',
      metadata: { name: 'allow-other-internal', namespace: APPS },
      spec: { from: [{ group: 'gateway.networking.k8s.io', kind: 'HTTPRoute', namespace: OTHER }], to: [{ group: '', kind: 'Service' }] },
    } as KubernetesObject);
    const accepted = await waitFor('hijack route status', 10000, async () => {
      const r = await api.read<
        KubernetesObject & {
          status?: { parents?: { parentRef: { sectionName?: string }; conditions?: { type: string; status: string; reason: string }[] }[] };
        }
      >({ apiVersion: 'gateway.networking.k8s.io/v1', kind: 'HTTPRoute', metadata: { name: 'hijack', namespace: OTHER } });
      return r.status?.parents?.find((p) => p.parentRef.sectionName === 'internal')?.conditions?.find((c) => c.type === 'Accepted');
    });
    expect(accepted).toMatchObject({ status: 'False', reason: 'NotAllowedByListeners' });
    // Give NGF time to have programmed anything it would, then: no request reaches echo-v1.
    await new Promise((r) => setTimeout(r, 1000));
    for (const path of ['/predict', '/predict/x']) {
      expect((await get(`${gw.internalUrl}${path}`, { host: 'echo.apps.kea.internal' })).status).toBe(404);
      const kea = await get(`${gw.internalUrl}${path}`, { host: 'echo.apps.kea.internal', 'x-kea-internal-token': 's3cret' });
      expect(kea).toMatchObject({ status: 200, backend: 'v2' });
    }
    await api.delete({ apiVersion: 'gateway.networking.k8s.io/v1', kind: 'HTTPRoute', metadata: { name: 'hijack', namespace: OTHER } });
  });

  test('internal listener: token rotation with two accepted values loses no request', async () => {
    // The sender (the policy server) switches from the old to the new token only while the
    // route accepts both: next added → sender switches → previous dropped. A client sends
    // without pause through all three steps; every request must get the backend's 200.
    let token = 's3cret';
    let stop = false;
    const failures: string[] = [];
    let sent = 0;
    const client = (async () => {
      while (!stop) {
        const r = await get(`${gw.internalUrl}/predict`, { host: 'echo.apps.kea.internal', 'x-kea-internal-token': token }).catch((e: Error) => ({
          status: 0,
          error: e.message,
        }));
        sent++;
        if (r.status !== 200) failures.push(`${token}: ${r.status}`);
      }
    })();
    // Served by every nginx worker: after a reload, a new connection may still land on an old
    // worker for a few ms (until it has taken its QUIT); 20 answers in a row rule that out.
    const waitServes = (t: string) =>
      waitFor(`route accepts ${t}`, 5000, async () => {
        for (let i = 0; i < 20; i++)
          if ((await get(`${gw.internalUrl}/predict`, { host: 'echo.apps.kea.internal', 'x-kea-internal-token': t })).status !== 200) return undefined;
        return true;
      });
    await apply(internalRoute(['s3cret', 'n3w-token'])); // 1. the next token is accepted too
    await waitServes('n3w-token');
    await new Promise((r) => setTimeout(r, 300));
    token = 'n3w-token'; // 2. the sender switches
    await new Promise((r) => setTimeout(r, 300));
    await apply(internalRoute(['n3w-token'])); // 3. the previous token is dropped
    await waitFor('old token refused', 5000, async () =>
      (await get(`${gw.internalUrl}/predict`, { host: 'echo.apps.kea.internal', 'x-kea-internal-token': 's3cret' })).status === 404 ? true : undefined,
    );
    await new Promise((r) => setTimeout(r, 300));
    stop = true;
    await client;
    process.stdout.write(`token rotation: ${sent} requests, ${failures.length} failed\n`);
    expect(sent).toBeGreaterThan(50);
    expect(failures).toEqual([]);
  });

  test('deleting the route makes it answer 404', async () => {
    expect((await get(`${gw.publicUrl}/split`)).status).toBe(200);
    const t0 = Date.now();
    await api.delete({ apiVersion: 'gateway.networking.k8s.io/v1', kind: 'HTTPRoute', metadata: { name: 'split', namespace: APPS } });
    await waitFor('404 after delete', 5000, async () => ((await get(`${gw.publicUrl}/split`)).status === 404 ? true : undefined));
    process.stdout.write(`route deletion visible after ${Date.now() - t0} ms\n`);
  });

  test("the test bed's stop() leaves no process or namespace behind", async () => {
    const [nginx, ngf] = [gw.nginxPid, gw.ngfPid()!];
    const bridge = await tb.bridge();
    const log = await readFile(gw.logPath, 'utf8');
    await tb.stop();
    expect(() => process.kill(nginx, 0)).toThrow();
    expect(() => process.kill(ngf, 0)).toThrow();
    expect(await listNetns(bridge)).toEqual([]);
    expect(() => execFileSync('ip', ['link', 'show', 'dev', bridge.name], { stdio: 'ignore' })).toThrow();
    await new Promise((r) => setTimeout(r, 200)); // SIGTERM was sent; let the exits be reaped
    for (const p of tb.processes) expect(p.exitCode !== null || p.signalCode !== null).toBe(true);
    expect(log).not.toMatch(/"level":"(fatal|panic)"/i);
  });
});
