/**
 * The local stack (`kea up` without the CLI): every step against the integration project's real
 * kube-apiserver, real nginx-gateway-fabric + nginx (dev/ngf.ts), the dev IdP, the policy server and controller from dist/ (run
 * `npm run build` first; `npm test` does) and the example FastAPI services in network namespaces.
 * Checks a real authenticated predict through the gateway, then that stop() leaves nothing behind,
 * then that `kea down` (stopStack) cleans up after a `kea up` process that was SIGKILLed (nginx's
 * workers and mount namespace included). Also: a warm start on data from the Traefik era drops
 * Traefik's stale route statuses.
 */
import { mkdtemp, readFile, rm, access, stat, readdir, readlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync, spawn } from 'node:child_process';
import { KubeConfig, KubernetesObjectApi, CustomObjectsApi, PatchStrategy, type KubernetesObject } from '@kubernetes/client-node';
import { startStack, stopStack, readStackInfo, exampleManifests, removeStaleGatewayState, TRAEFIK_CONTROLLER_NAME, type Stack } from './stack.js';
import { NGF_CONTROLLER_NAME } from './ngf.js';
import { freePort, REPO_ROOT } from './controlplane.js';
import { listNetns } from './netns.js';
import { waitFor } from './testing/wait.js';

let stack: Stack | undefined;
let stateDir: string;

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function linkExists(name: string): boolean {
  try {
    execFileSync('ip', ['link', 'show', 'dev', name], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** Pids in mount namespace `ns` (`mnt:[<inode>]`). */
async function pidsInMountNs(ns: string): Promise<number[]> {
  const out: number[] = [];
  for (const d of await readdir('/proc')) {
    if (/^\d+$/.test(d) && (await readlink(`/proc/${d}/ns/mnt`).catch(() => '')) === ns) out.push(Number(d));
  }
  return out;
}

const STALE_NS = `kea-stale-${Math.random().toString(36).slice(2, 7)}`;
interface Parent {
  parentRef: { name: string; namespace?: string };
  controllerName: string;
}

/**
 * What a warm start finds in etcd data from the Traefik era: an HTTPRoute whose status carries
 * Traefik's verdict for kea-system/kea, and Traefik's GatewayClass `kea-local`.
 */
async function seedTraefikState(kc: KubeConfig, name: string, otherController?: string): Promise<void> {
  const objects = KubernetesObjectApi.makeApiClient(kc);
  const custom = kc.makeApiClient(CustomObjectsApi);
  await objects
    .patch({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: STALE_NS } }, undefined, undefined, 'kea-test', true, PatchStrategy.ServerSideApply)
    .catch(() => undefined);
  await objects.patch(
    {
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'GatewayClass',
      metadata: { name: 'kea-local' },
      spec: { controllerName: TRAEFIK_CONTROLLER_NAME },
    } as KubernetesObject,
    undefined,
    undefined,
    'kea-test',
    true,
    PatchStrategy.ServerSideApply,
  );
  const route = {
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'HTTPRoute',
    metadata: { name, namespace: STALE_NS },
    spec: {
      parentRefs: [{ name: 'kea', namespace: 'kea-system', sectionName: 'public' }],
      rules: [{ matches: [{ path: { type: 'PathPrefix', value: `/${name}` } }] }],
    },
  };
  const g = { group: 'gateway.networking.k8s.io', version: 'v1', plural: 'httproutes', namespace: STALE_NS };
  await custom.deleteNamespacedCustomObject({ ...g, name }).catch(() => undefined);
  const created = (await custom.createNamespacedCustomObject({ ...g, body: route })) as KubernetesObject;
  const now = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
  await custom.replaceNamespacedCustomObjectStatus({
    ...g,
    name,
    body: {
      ...created,
      status: {
        parents: [
          {
            parentRef: { group: 'gateway.networking.k8s.io', kind: 'Gateway', name: 'kea', namespace: 'kea-system', sectionName: 'public' },
            controllerName: TRAEFIK_CONTROLLER_NAME,
            conditions: [
              { type: 'Accepted', status: 'True', reason: 'Accepted', message: 'stale: written by Traefik', lastTransitionTime: now, observedGeneration: 1 },
            ],
          },
          ...(otherController
            ? [
                {
                  parentRef: { group: 'gateway.networking.k8s.io', kind: 'Gateway', name: 'kea', namespace: 'kea-system', sectionName: 'public' },
                  controllerName: otherController,
                  conditions: [{ type: 'Accepted', status: 'True', reason: 'Accepted', message: 'current', lastTransitionTime: now, observedGeneration: 1 }],
                },
              ]
            : []),
        ],
      },
    },
  });
}

async function routeParents(kc: KubeConfig, name: string): Promise<Parent[]> {
  const r = (await kc
    .makeApiClient(CustomObjectsApi)
    .getNamespacedCustomObject({ group: 'gateway.networking.k8s.io', version: 'v1', plural: 'httproutes', namespace: STALE_NS, name })) as {
    status?: { parents?: Parent[] };
  };
  return r.status?.parents ?? [];
}

async function gatewayClassExists(kc: KubeConfig, name: string): Promise<boolean> {
  return kc
    .makeApiClient(CustomObjectsApi)
    .getClusterCustomObject({ group: 'gateway.networking.k8s.io', version: 'v1', plural: 'gatewayclasses', name })
    .then(
      () => true,
      () => false,
    );
}

async function ports() {
  return {
    publicPort: await freePort(),
    internalPort: await freePort(),
    idpPort: await freePort(),
    policyPort: await freePort(),
    controllerPort: await freePort(),
    redisPort: await freePort(),
  };
}

/** N of bridge `kea<N>`. */
const index = (bridge: string) => Number(bridge.replace(/^kea/, ''));

beforeAll(async () => {
  stateDir = await mkdtemp(join(tmpdir(), 'kea-stack-'));
}, 10000);

afterAll(async () => {
  await stack?.stop();
  // The examples were applied to the shared API server: remove them for the suites after this one.
  try {
    execFileSync('kubectl', ['delete', '--ignore-not-found', '--wait=false', ...(await exampleManifests()).apply.flatMap((f) => ['-f', f])], {
      stdio: 'ignore',
    });
  } catch {
    /* best effort */
  }
  await stopStack(stateDir, () => undefined).catch(() => undefined);
  await rm(stateDir, { recursive: true, force: true });
});

describe('kea up stack', () => {
  test("removeStaleGatewayState drops Traefik's route status entries and GatewayClass, and keeps other controllers' entries", async () => {
    const kc = new KubeConfig();
    kc.loadFromFile(process.env.KUBECONFIG!);
    await seedTraefikState(kc, 'stale-direct', 'example.com/another-gateway');
    expect((await routeParents(kc, 'stale-direct')).map((p) => p.controllerName)).toEqual([TRAEFIK_CONTROLLER_NAME, 'example.com/another-gateway']);
    const line = await removeStaleGatewayState(kc);
    expect(line).toContain(`${STALE_NS}/stale-direct`);
    expect(line).toContain('GatewayClass kea-local');
    expect((await routeParents(kc, 'stale-direct')).map((p) => p.controllerName)).toEqual(['example.com/another-gateway']);
    expect(await gatewayClassExists(kc, 'kea-local')).toBe(false);
    expect(await removeStaleGatewayState(kc)).toBe(''); // nothing left: a no-op
  }, 30000);

  test('every step starts, and an authenticated predict flows through the gateway to the iris model', async () => {
    const lines: string[] = [];
    // Warm start on Traefik-era data: the gateway step drops what Traefik left (checked below).
    const kc = new KubeConfig();
    kc.loadFromFile(process.env.KUBECONFIG!);
    await seedTraefikState(kc, 'stale-warm');
    stack = await startStack({ stateDir, kubeconfig: process.env.KUBECONFIG, ...(await ports()), bridgeIndex: 'auto', log: (l) => lines.push(l) });
    process.stdout.write(`stack up in ${stack.totalMs} ms: ${stack.steps.map((s) => `${s.step}=${s.status}:${s.ms}ms`).join(' ')}\n`);
    expect(stack.steps.filter((s) => s.status === 'failed')).toEqual([]);
    for (const name of ['control-plane', 'crds', 'network', 'redis', 'gateway', 'idp', 'policy-server', 'controller', 'local-pods', 'examples']) {
      expect(stack.steps.find((s) => s.step === name)?.status).toBe('ok');
    }
    // stack.json is what `kea down` reads.
    const info = await readStackInfo(stateDir);
    expect(info?.ownerPid).toBe(process.pid);
    expect(Object.keys(info?.children ?? {})).toEqual(expect.arrayContaining(['gateway', 'redis', 'idp', 'policy-server-1', 'policy-server-2', 'controller']));
    // Two policy-server replicas, each on its own bridge address, both endpoints of kea-system/kea-policy.
    expect(info?.policyServers?.map((r) => new URL(r.url).hostname)).toEqual([`10.213.${index(info!.bridge)}.1`, `10.213.${index(info!.bridge)}.254`]);
    const slice = (await KubernetesObjectApi.makeApiClient(kc).read({
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: { name: 'kea-policy-kea', namespace: 'kea-system' },
    })) as unknown as { endpoints: Array<{ addresses: string[] }> };
    expect(slice.endpoints.flatMap((e) => e.addresses)).toEqual(info!.policyServers!.map((r) => new URL(r.url).hostname));
    // Redis on the bridge address, with a password (0600 file) and no persistence.
    expect(info?.redis?.url).toMatch(new RegExp(`^redis://10\\.213\\.${index(info!.bridge)}\\.1:\\d+$`));
    expect((await stat(info!.redis!.passwordFile)).mode & 0o077).toBe(0);
    expect((await stat(join(stateDir, 'redis', 'redis.conf'))).mode & 0o077).toBe(0);

    // Traefik's stale entry is gone; NGF wrote its own for the same parentRef.
    const parents = await routeParents(kc, 'stale-warm');
    expect(parents.map((p) => p.controllerName)).not.toContain(TRAEFIK_CONTROLLER_NAME);
    expect(await gatewayClassExists(kc, 'kea-local')).toBe(false);
    expect(lines.some((l) => l.includes(`${STALE_NS}/stale-warm`))).toBe(true);
    await waitFor(
      'NGF status on the stale-warm route',
      10000,
      async () => (await routeParents(kc, 'stale-warm')).some((p) => p.controllerName === NGF_CONTROLLER_NAME),
      200,
    );
    expect(info?.gatewayMountNs).toMatch(/^mnt:\[\d+\]$/);

    // Anonymous: the policy server (behind NGF + nginx) refuses with problem+json.
    const anon = await fetch(`${stack.gatewayUrl}/iris/predict`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ features: [[5.1, 3.5, 1.4, 0.2]] }),
    });
    expect(anon.status).toBe(401);
    expect(anon.headers.get('content-type')).toMatch(/application\/problem\+json/);

    // A client-credentials token from the dev IdP, then a real prediction by the iris model in its netns.
    const tok = await fetch(`${stack.idpIssuer}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        grant_type: 'client_credentials',
        client_id: 'kea-script-teacher',
        client_secret: 'kea-dev-script-secret',
        resource: 'urn:kea:gateway',
      }),
    });
    expect(tok.status).toBe(200);
    const { access_token } = (await tok.json()) as { access_token: string };
    let last = 0;
    let body: { classes?: string[] } = {};
    const deadline = Date.now() + 20000;
    while (Date.now() < deadline) {
      const r = await fetch(`${stack.gatewayUrl}/iris/predict`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${access_token}` },
        body: JSON.stringify({
          features: [
            [5.1, 3.5, 1.4, 0.2],
            [6.7, 3.0, 5.2, 2.3],
          ],
        }),
      });
      last = r.status;
      const text = await r.text();
      if (r.status === 200) {
        body = JSON.parse(text) as { classes?: string[] };
        break;
      }
      await new Promise((res) => setTimeout(res, 250));
    }
    expect(last).toBe(200);
    expect(body.classes).toEqual(['setosa', 'virginica']);

    // /docs is served by the policy server through the gateway.
    const docs = await fetch(`${stack.gatewayUrl}/docs`);
    expect(docs.status).toBe(200);

    // Issue 10 (low): no secret on a command line, which `ps` shows to every user. Each child's
    // /proc/<pid>/cmdline must carry none of the stack's secrets; they go through 0600 files.
    const secrets = JSON.parse(await readFile(join(stateDir, 'secrets.json'), 'utf8')) as Record<string, string>;
    const values = Object.entries(secrets)
      .filter(([k]) => k !== 'scriptSecret')
      .map(([, v]) => v);
    expect(values.length).toBeGreaterThanOrEqual(3);
    for (const [name, pid] of Object.entries(info!.children)) {
      const cmdline = (await readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0').join(' ');
      for (const v of values) expect({ name, leaks: cmdline.includes(v) }).toEqual({ name, leaks: false });
    }
    const tokenFile = await stat(join(stateDir, 'internal-token'));
    expect(tokenFile.mode & 0o077).toBe(0);
  }, 240000);

  test('a killed policy-server replica: the other serves at once; both killed: 502/503 at once; each is restarted and serves again', async () => {
    const s = stack!;
    const restarted = async (name: string, before: number) => {
      const after = await waitFor(`${name} restarted`, 30000, () => {
        const p = s.pid(name);
        return p && p !== before ? p : undefined;
      });
      expect((await readStackInfo(stateDir))?.children[name]).toBe(after);
      return after;
    };
    expect((await fetch(`${s.gatewayUrl}/docs`)).status).toBe(200);
    const one = s.pid('policy-server-1')!;
    process.kill(one, 'SIGKILL');
    await waitFor('policy-server-1 gone', 5000, () => !alive(one), 20);
    // nginx passes a request whose connection is refused to the other endpoint.
    for (let i = 0; i < 10; i++) {
      const r = await fetch(`${s.gatewayUrl}/docs`);
      await r.arrayBuffer();
      expect(r.status).toBe(200);
    }
    await restarted('policy-server-1', one);
    await waitFor('policy-server-1 serves', 30000, async () => (await fetch(`${s.policyServers![0].url}/healthz`).catch(() => undefined))?.status === 200, 200);

    const both = [s.pid('policy-server-1')!, s.pid('policy-server-2')!];
    for (const p of both) process.kill(p, 'SIGKILL');
    await waitFor('both gone', 5000, () => both.every((p) => !alive(p)), 20);
    const t0 = Date.now();
    const down = await fetch(`${s.gatewayUrl}/docs`);
    await down.arrayBuffer();
    expect([502, 503]).toContain(down.status);
    expect(Date.now() - t0).toBeLessThan(1000);
    let status = 0;
    const deadline = Date.now() + 30000;
    while (Date.now() < deadline) {
      const r = await fetch(`${s.gatewayUrl}/docs`).catch(() => undefined);
      status = r?.status ?? 0;
      await r?.arrayBuffer();
      if (status === 200) break;
      await new Promise((res) => setTimeout(res, 200));
    }
    expect(status).toBe(200);
    process.stdout.write(`policy servers back after ${Date.now() - t0} ms\n`);
    await restarted('policy-server-1', both[0]);
    await restarted('policy-server-2', both[1]);
  }, 90000);

  test('Redis taken down (pauseChild) stays down and the data path carries on; resumeChild brings it back with the same password', async () => {
    const s = stack!;
    const pid = s.pid('redis')!;
    const { Redis } = await import('ioredis');
    const u = new URL(s.redis!.url);
    const password = (await readFile(s.redis!.passwordFile, 'utf8')).trim();
    const ping = async () => {
      const c = new Redis({
        host: u.hostname,
        port: Number(u.port),
        password,
        lazyConnect: true,
        maxRetriesPerRequest: 0,
        retryStrategy: () => null,
        connectTimeout: 1000,
      });
      c.on('error', () => undefined);
      try {
        await c.connect();
        return await c.ping();
      } catch (e) {
        return String(e);
      } finally {
        c.disconnect();
      }
    };
    expect(await ping()).toBe('PONG');
    await s.pauseChild('redis');
    expect(alive(pid)).toBe(false);
    // Not restarted by the supervisor (it would be within ~1 s).
    await new Promise((r) => setTimeout(r, 2500));
    expect(s.pid('redis')).toBe(pid);
    expect(await ping()).not.toBe('PONG');
    const docs = await fetch(`${s.gatewayUrl}/docs`);
    await docs.arrayBuffer();
    expect(docs.status).toBe(200);
    await s.resumeChild('redis');
    expect(s.pid('redis')).not.toBe(pid);
    expect(await ping()).toBe('PONG');
    expect((await readStackInfo(stateDir))?.children.redis).toBe(s.pid('redis'));
    // Supervised again: a crash is restarted.
    const again = s.pid('redis')!;
    process.kill(again, 'SIGKILL');
    await waitFor('redis restarted by the supervisor', 15000, () => (s.pid('redis') !== again ? true : undefined), 100);
  }, 60000);

  test('stop() leaves no process, namespace or bridge behind', async () => {
    const s = stack!;
    const pids = Object.values(s.children);
    const bridge = s.bridge;
    await s.stop();
    stack = undefined;
    for (const pid of pids) expect(alive(pid)).toBe(false);
    const index = Number(bridge.replace('kea', ''));
    expect(await listNetns({ name: bridge, index, hostAddress: '' })).toEqual([]);
    expect(linkExists(bridge)).toBe(false);
    await expect(access(join(stateDir, 'stack.json'))).rejects.toThrow();
  }, 60000);

  test('kea down cleans up after a kea up process that was killed with SIGKILL', async () => {
    const p = await ports();
    const script = `
      const { startStack } = await import(${JSON.stringify(join(REPO_ROOT, 'dist/dev/stack.js'))});
      const s = await startStack({ stateDir: ${JSON.stringify(stateDir)}, kubeconfig: process.env.KUBECONFIG, ...${JSON.stringify(p)}, bridgeIndex: 'auto', examples: false, log: () => {} });
      console.log('UP ' + s.bridge);
      setInterval(() => {}, 1000);
    `;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'], env: process.env });
    const bridge = await new Promise<string>((res, rej) => {
      let out = '';
      child.stdout.on('data', (c: Buffer) => {
        out += c.toString();
        const m = /UP (kea\d+)/.exec(out);
        if (m) res(m[1]);
      });
      child.once('exit', (c) => rej(new Error(`kea up child exited ${c}`)));
    });
    const info = (await readStackInfo(stateDir))!;
    const pids = Object.values(info.children);
    expect(pids.length).toBeGreaterThanOrEqual(3);
    expect(Object.keys(info.children)).toEqual(expect.arrayContaining(['gateway', 'ngf']));
    // nginx's master, its workers (whose titles name no path) and NGF share the gateway's mount namespace.
    const gatewayNs = info.gatewayMountNs!;
    const inNs = await pidsInMountNs(gatewayNs);
    expect(inNs).toEqual(expect.arrayContaining([info.children.gateway, info.children.ngf]));
    expect(inNs.length).toBeGreaterThan(2);
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    // The children survive their parent's SIGKILL...
    expect(pids.filter(alive).length).toBeGreaterThan(0);
    // ...and so do nginx's workers when their master dies too (a crash of both): orphans whose
    // title names no path, found only by their mount namespace.
    process.kill(info.children.gateway, 'SIGKILL');
    await waitFor('gateway stopped', 5000, () => !alive(info.children.gateway), 200);
    const orphans = (await pidsInMountNs(gatewayNs)).filter((p) => p !== info.children.ngf);
    expect(orphans.length).toBeGreaterThan(0);
    for (const p of orphans) expect((await readFile(`/proc/${p}/cmdline`, 'utf8')).replace(/\0/g, ' ')).toMatch(/^nginx: worker process/);
    expect(linkExists(bridge)).toBe(true);
    // ...until `kea down`.
    expect(await stopStack(stateDir, () => undefined)).toBe(true);
    for (const pid of pids) expect(alive(pid)).toBe(false);
    expect(await pidsInMountNs(gatewayNs)).toEqual([]);
    expect(linkExists(bridge)).toBe(false);
    expect(await readFile(join(stateDir, 'stack.json'), 'utf8').catch(() => 'gone')).toBe('gone');
  }, 120000);
});
