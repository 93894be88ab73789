/**
 * Proves dev/ngf.ts: a real nginx-gateway-fabric 1.6.2 (static mode, built by
 * scripts/build-ngf.sh) and Debian's nginx in a private mount namespace, programmed only through
 * standard Gateway API objects in a real kube-apiserver, sending real traffic to backends in
 * network namespaces registered by Service + EndpointSlice (dev/netns.ts). The Gateway API
 * behaviour KEA relies on is in dev/gateway.int.test.ts; this file is about the runner.
 *
 * Needs root (ip netns, unshare, mount, nsenter) and the NGF binary (scripts/setup.sh builds it);
 * KUBECONFIG comes from the integration project's global setup (test/global-setup.mjs). The
 * Gateway lives in a namespace of its own (`ngft-gw-<random>`), so that the Gateway
 * kea-system/kea of other suites is left alone.
 */
import { readFile, readdir, readlink, stat } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { KubernetesObject, KubernetesObjectApi } from '@kubernetes/client-node';
import { KEA_CACHE, KUBE_VERSION } from './controlplane.js';
import { NGF_VERSION, NGF_CONTROLLER_NAME, NGF_GATEWAY_CLASS, type RunningNgf } from './ngf.js';
import { GatewayTestbed, httpRequest, split } from './testing/testbed.js';
import { waitFor } from './testing/wait.js';

// Skip only when setup has never run here (then there is no control plane binary either, and the
// integration project could not start). After setup the NGF binary must exist: its absence fails.
const ngfBin = process.env.KEA_NGF_BIN ?? join(KEA_CACHE, 'bin', `ngf-${NGF_VERSION}`);
const setupRan = existsSync(join(KEA_CACHE, 'bin', `kube-apiserver-${KUBE_VERSION}`));
const skip = !existsSync(ngfBin) && !setupRan;
if (skip) process.stdout.write(`\n[ngf.int.test] SKIPPED: ${ngfBin} is missing and scripts/setup.sh has not run here (it builds NGF ${NGF_VERSION}).\n`);

const ECHO = `
const http = require('node:http');
const name = process.argv[1];
http.createServer((req, res) => {
  res.setHeader('content-type', 'application/json');
  res.end(JSON.stringify({ backend: name, path: req.url }));
}).listen(8080, '0.0.0.0', () => console.log('listening'));
`;

const FM = 'kea-ngf-test';
const suffix = Math.random().toString(36).slice(2, 7);
const APPS = `ngft-apps-${suffix}`;
const GW_NS = `ngft-gw-${suffix}`;

let tb: GatewayTestbed;
let api: KubernetesObjectApi;
let gw: RunningNgf;
let stateDir: string;
let hostBefore: string[];
let firstRouteMs = 0;
const supervisorLog: string[] = [];

const apply = (o: KubernetesObject) => tb.apply(o);

interface Reply {
  status: number;
  server?: string;
  backend?: string;
}

/** GET on a new connection each time: an nginx reload closes idle keep-alive connections (issue 11 item 8), which is not what these tests are about. */
async function get(url: string): Promise<Reply> {
  const r = await httpRequest(url);
  const server = [r.headers.server ?? []].flat().join(', ') || undefined;
  return r.status === 200 ? { status: 200, server, backend: (JSON.parse(r.text) as { backend: string }).backend } : { status: r.status, server };
}

interface Condition {
  type: string;
  status: string;
  reason?: string;
  message?: string;
}

function route(name: string, backends: Array<{ name: string; weight: number }>): KubernetesObject {
  return {
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'HTTPRoute',
    metadata: { name, namespace: APPS },
    spec: {
      parentRefs: [{ name: 'kea', namespace: GW_NS, sectionName: 'public' }],
      rules: [{ matches: [{ path: { type: 'PathPrefix', value: `/${name}` } }], backendRefs: backends.map((b) => ({ ...b, port: 80 })) }],
    },
  } as KubernetesObject;
}

/** The conditions NGF wrote for the route's parentRef to the test Gateway (undefined until it has). */
async function routeConditions(name: string): Promise<{ controllerName: string; conditions: Condition[] } | undefined> {
  const r = await api.read<
    KubernetesObject & {
      metadata: { generation?: number };
      status?: {
        parents?: Array<{
          parentRef: { name: string; namespace?: string };
          controllerName: string;
          conditions?: Array<Condition & { observedGeneration?: number }>;
        }>;
      };
    }
  >({ apiVersion: 'gateway.networking.k8s.io/v1', kind: 'HTTPRoute', metadata: { name, namespace: APPS } });
  const p = r.status?.parents?.find((x) => x.parentRef.name === 'kea' && x.parentRef.namespace === GW_NS);
  if (!p?.conditions?.length || p.conditions.some((c) => c.observedGeneration !== r.metadata.generation)) return undefined;
  return { controllerName: p.controllerName, conditions: p.conditions };
}

/** What nginx and NGF must not change on the host: names, sizes and mtimes under these paths, and whether /run/nginx exists. */
async function hostSnapshot(): Promise<string[]> {
  const out: string[] = [];
  const walk = async (dir: string) => {
    for (const e of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
      const p = join(dir, e.name);
      const s = await stat(p).catch(() => undefined);
      out.push(`${p} ${s?.size ?? '?'} ${s?.mtimeMs ?? '?'}`);
      if (e.isDirectory()) await walk(p);
    }
  };
  for (const d of ['/etc/nginx', '/var/lib/nginx', '/var/log/nginx']) await walk(d);
  out.push(`/run/nginx exists: ${existsSync('/run/nginx')}`);
  return out;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Pids of every process whose mount namespace is `ns` (the `mnt:[inode]` link). */
async function pidsInMountNs(ns: string): Promise<number[]> {
  const pids: number[] = [];
  for (const d of await readdir('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    if ((await readlink(`/proc/${d}/ns/mnt`).catch(() => '')) === ns) pids.push(Number(d));
  }
  return pids;
}

(skip ? describe.skip : describe)('nginx-gateway-fabric + nginx as a local Gateway API implementation (dev/ngf.ts)', () => {
  beforeAll(async () => {
    hostBefore = await hostSnapshot();
    tb = await GatewayTestbed.create('kea-ngf-', FM);
    api = tb.api;
    stateDir = tb.stateDir;
    for (const v of ['v1', 'v2']) await tb.service({ namespace: APPS, name: `echo-${v}`, host: v, script: ECHO, args: [v] });
    gw = await tb.gateway({ namespace: GW_NS, log: (l) => supervisorLog.push(l) });
    process.stdout.write(`NGF ${NGF_VERSION}: start to Gateway Programmed ${gw.startMs} ms (NGF spawn to /readyz ${gw.ngfReadyMs} ms)\n`);
  }, 120000);

  afterAll(async () => {
    await tb?.stop();
  });

  test('GatewayClass nginx is accepted with its NginxProxy, the Gateway and both listeners are programmed', async () => {
    const gc = await api.read<
      KubernetesObject & {
        status?: { conditions?: Condition[] };
      }
    >({ apiVersion: 'gateway.networking.k8s.io/v1', kind: 'GatewayClass', metadata: { name: NGF_GATEWAY_CLASS } });
    const cond = (t: string) => gc.status?.conditions?.find((c) => c.type === t);
    expect(cond('Accepted')?.status).toBe('True');
    expect(cond('ResolvedRefs')?.status).toBe('True'); // the NginxProxy parametersRef resolved
    // The project's Gateway API CRDs (v1.6.1) are newer than NGF 1.6.2's v1.2.1: NGF says so and works ("best effort").
    process.stdout.write(`GatewayClass SupportedVersion: ${JSON.stringify(cond('SupportedVersion'))}\n`);
    expect(cond('SupportedVersion')).toMatchObject({ status: 'False', reason: 'UnsupportedVersion' });
    const g = await api.read<
      KubernetesObject & {
        status?: { listeners?: Array<{ name: string; conditions: Condition[] }> };
      }
    >({ apiVersion: 'gateway.networking.k8s.io/v1', kind: 'Gateway', metadata: { name: 'kea', namespace: GW_NS } });
    for (const name of ['public', 'internal']) {
      const l = g.status?.listeners?.find((x) => x.name === name);
      expect(l?.conditions.find((c) => c.type === 'Programmed')?.status).toBe('True');
    }
  });

  test('weighted backendRefs: traffic flows through nginx, NGF writes Accepted/ResolvedRefs, 80/20 within ±5% over 1000 requests', async () => {
    const t0 = Date.now();
    await apply(
      route('split', [
        { name: 'echo-v1', weight: 80 },
        { name: 'echo-v2', weight: 20 },
      ]),
    );
    const first = await waitFor('route served', 10000, async () => {
      const r = await get(`${gw.publicUrl}/split`);
      return r.status === 200 ? r : undefined;
    });
    firstRouteMs = Date.now() - t0;
    expect(first.server).toBe('nginx');
    const st = await waitFor('route status', 10000, () => routeConditions('split'));
    // NGF writes the status once nginx's new workers run; until the old ones have taken their
    // QUIT, a new connection may still land on one of them (the route's 404): wait for 20 × 200.
    await waitFor('route served by every worker', 10000, async () => {
      const c = await split(`${gw.publicUrl}/split`, 20, 4);
      return Object.keys(c).every((k) => !k.startsWith('status:')) ? c : undefined;
    });
    process.stdout.write(`NGF: new HTTPRoute to first 200 in ${firstRouteMs} ms, to status and 20 × 200 in ${Date.now() - t0} ms\n`);
    expect(st.controllerName).toBe(NGF_CONTROLLER_NAME);
    expect(st.conditions.find((c) => c.type === 'Accepted')).toMatchObject({ status: 'True', reason: 'Accepted' });
    expect(st.conditions.find((c) => c.type === 'ResolvedRefs')).toMatchObject({ status: 'True', reason: 'ResolvedRefs' });
    const counts = await split(`${gw.publicUrl}/split`, 1000);
    process.stdout.write(`NGF 80/20 split over 1000 requests: ${JSON.stringify(counts)}\n`);
    expect((counts.v1 ?? 0) + (counts.v2 ?? 0)).toBe(1000);
    expect(counts.v1).toBeGreaterThanOrEqual(750);
    expect(counts.v1).toBeLessThanOrEqual(850);
  });

  test('a route to a missing Service gets ResolvedRefs=False (BackendNotFound) and no backend answers', async () => {
    await apply(route('missing', [{ name: 'no-such-service', weight: 1 }]));
    const st = await waitFor('route status', 10000, () => routeConditions('missing'));
    expect(st.conditions.find((c) => c.type === 'ResolvedRefs')).toMatchObject({ status: 'False', reason: 'BackendNotFound' });
    const r = await waitFor('route programmed', 10000, async () => {
      const x = await get(`${gw.publicUrl}/missing`);
      return x.status !== 404 ? x : undefined;
    });
    // NGF programs the rule with no upstream: nginx answers 500 itself.
    expect(r.status).toBe(500);
    expect(r.server).toBe('nginx');
  });

  test('NGF killed: nginx keeps serving, the supervisor restarts NGF, the new NGF programs changes', async () => {
    const nginxPid = gw.nginxPid;
    const oldNgf = gw.ngfPid()!;
    let stop = false;
    const results: string[] = [];
    const client = (async () => {
      while (!stop) {
        const r = await get(`${gw.publicUrl}/split`).catch((e: Error) => ({ status: 0, error: e.message }));
        results.push(r.status === 200 ? 'ok' : JSON.stringify(r));
        await new Promise((res) => setTimeout(res, 20));
      }
    })();
    process.kill(oldNgf, 'SIGKILL');
    await waitFor('NGF restarted', 15000, async () => (gw.restarts() === 1 && gw.ngfPid() !== oldNgf ? true : undefined));
    await gw.waitReady(30000);
    stop = true;
    await client;
    process.stdout.write(`NGF killed and restarted: ${results.length} requests meanwhile; supervisor: ${JSON.stringify(supervisorLog)}\n`);
    expect(alive(oldNgf)).toBe(false);
    expect(gw.nginxPid).toBe(nginxPid);
    expect(alive(nginxPid)).toBe(true);
    expect(results.length).toBeGreaterThan(20);
    expect(results.filter((r) => r !== 'ok')).toEqual([]);
    // The restarted NGF programs nginx: a weight change reaches traffic.
    await apply(
      route('split', [
        { name: 'echo-v1', weight: 0 },
        { name: 'echo-v2', weight: 100 },
      ]),
    );
    await waitFor('new weights served', 10000, async () => {
      const c = await split(`${gw.publicUrl}/split`, 40, 4);
      return c.v2 === 40 ? c : undefined;
    });
  });

  test('stop(): TERM to NGF, QUIT to nginx; no process, mount namespace or host change left behind', async () => {
    const master = gw.nginxPid;
    const ngf = gw.ngfPid()!;
    const workers = (await readFile(`/proc/${master}/task/${master}/children`, 'utf8')).split(/\s+/).filter(Boolean).map(Number);
    expect(workers.length).toBeGreaterThan(0);
    const mntNs = await readlink(`/proc/${master}/ns/mnt`);
    expect(mntNs).not.toBe(await readlink('/proc/self/ns/mnt'));
    expect((await pidsInMountNs(mntNs)).sort()).toEqual(expect.arrayContaining([master, ngf, ...workers]));
    // The bind mounts exist only inside nginx's namespace, never in the host's.
    expect(await readFile(`/proc/${master}/mountinfo`, 'utf8')).toContain(join(stateDir, 'etc-nginx'));
    expect(await readFile('/proc/self/mountinfo', 'utf8')).not.toContain(stateDir);
    await gw.stop();
    for (const pid of [master, ngf, ...workers]) expect(alive(pid)).toBe(false);
    expect(await pidsInMountNs(mntNs)).toEqual([]);
    expect(await readFile('/proc/self/mountinfo', 'utf8')).not.toContain(stateDir);
    expect(await hostSnapshot()).toEqual(hostBefore);
    // nginx shut down gracefully (QUIT), NGF on TERM.
    expect(await readFile(gw.nginxLogPath, 'utf8')).toMatch(/gracefully shutting down/);
    expect(await readFile(gw.logPath, 'utf8')).not.toMatch(/"level":"(fatal|panic)"/i);
    await gw.stop(); // twice is fine
  });
});
