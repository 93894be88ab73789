/**
 * Isolation between tenants and the gateway origin, through a real policy server over HTTP
 * with a real upstream server (issue 10, items 5 and 12):
 * - proxied responses carry `X-Content-Type-Options: nosniff` and a Content-Security-Policy
 *   (the default, or the ApiSchema's own), so a backend's `text/html` cannot run script on the
 *   gateway's origin;
 * - the caller's `Authorization` and `Cookie` (KEA's session cookie) reach a backend only when
 *   its ApiSchema lists them in `spec.security.forwardCredentials`;
 * - every service has its own upstream lane (pool + in-flight limit): 130 requests hanging on
 *   one tenant's operation do not delay another tenant's request, and a service over its limit
 *   gets a fast 503 `upstream-busy` with `Retry-After`; lanes of services removed from the
 *   configuration are closed.
 */
import { createServer, request, type IncomingHttpHeaders, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { createLogger } from '../lib/log.js';
import { POLICY_API_VERSION, DEFAULT_CONTENT_SECURITY_POLICY, policyOperation as op, type PolicyService } from '../lib/policy/config.js';
import { UpstreamLanes } from './datapath/upstream.js';
import { createPolicyServer, type PolicyServer, type PolicyServerOptions } from './server.js';
import { SnapshotStore } from './snapshot/store.js';
import { bearer, configMapsFor, INTERNAL_TOKEN, testAuthenticator } from './testing/fixtures.js';
import { send } from './testing/http.js';

const HTML = '<!doctype html><html><body><script>fetch("/services",{credentials:"include"})</script></body></html>';

/** A tenant API at `/<name>` with public operations html, echo (headers seen), hang, and a cached html. */
function tenant(name: string, extra: Partial<PolicyService> = {}): PolicyService {
  return {
    apiVersion: POLICY_API_VERSION,
    id: `${name}/api`,
    namespace: name,
    name: 'api',
    title: name,
    version: '1.0.0',
    basePath: `/${name}`,
    configVersion: `${name}-1`,
    mode: 'enforce',
    upstream: { host: `api.${name}.kea.internal` },
    traffic: [],
    authorization: {},
    operations: [
      op({ operationId: 'html', method: 'GET', path: `/${name}/html`, upstreamPath: '/html', access: { mode: 'public' } }),
      op({
        operationId: 'html_cached',
        method: 'GET',
        path: `/${name}/html-cached`,
        upstreamPath: '/html',
        access: { mode: 'public' },
        cache: { ttlSeconds: 60, scope: 'shared' },
      }),
      op({ operationId: 'echo', method: 'GET', path: `/${name}/echo`, upstreamPath: '/echo', access: { mode: 'authenticated' } }),
      op({ operationId: 'hang', method: 'GET', path: `/${name}/hang`, upstreamPath: '/hang', access: { mode: 'public' }, timeoutMs: 20_000 }),
      op({
        operationId: 'upload',
        method: 'POST',
        path: `/${name}/upload`,
        upstreamPath: '/echo',
        access: { mode: 'public' },
        requestBody: { required: true, contentType: 'application/octet-stream', schema: {} },
      }),
    ],
    ...extra,
  };
}

/** The upstream (standing in for the gateway's internal listener and the models). */
interface Upstream {
  url: string;
  /** Headers of the last /echo request, by Host. */
  seen: Map<string, IncomingHttpHeaders>;
  /** /hang requests currently held, by Host. */
  hanging: Map<string, ServerResponse[]>;
  close(): Promise<void>;
  server: Server;
}

async function startUpstream(): Promise<Upstream> {
  const seen = new Map<string, IncomingHttpHeaders>();
  const hanging = new Map<string, ServerResponse[]>();
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      const host = req.headers.host ?? '';
      if (req.headers['x-kea-internal-token'] !== INTERNAL_TOKEN) return void res.writeHead(403).end();
      if (req.url === '/html') {
        // A backend trying to weaken the browser's defences.
        res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'x-content-type-options': 'sniff', 'content-security-policy': "script-src 'self'" });
        return void res.end(HTML);
      }
      if (req.url === '/echo') {
        seen.set(host, req.headers);
        res.writeHead(200, { 'content-type': 'application/json' });
        return void res.end(JSON.stringify({ host }));
      }
      if (req.url === '/hang') {
        const list = hanging.get(host) ?? [];
        list.push(res);
        hanging.set(host, list);
        res.on('close', () => list.splice(list.indexOf(res), 1));
        return;
      }
      res.writeHead(404).end();
    });
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    seen,
    hanging,
    server,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

interface Running {
  ps: PolicyServer;
  url: string;
  store: SnapshotStore;
  lanes: UpstreamLanes;
  close(): Promise<void>;
}

async function startPolicy(
  up: Upstream,
  services: PolicyService[],
  lanes?: { connectionsPerService?: number; maxInflightPerService?: number },
  extra: Partial<PolicyServerOptions> = {},
): Promise<Running> {
  const logger = createLogger('policy-server', { level: 'error', stream: new Writable({ write: (_c, _e, cb) => cb() }) });
  const store = new SnapshotStore({ logger });
  store.apply(configMapsFor(...services), 'source');
  const upstream = new UpstreamLanes({ url: up.url, ...lanes });
  const ps = createPolicyServer({
    store,
    auth: testAuthenticator(),
    upstreamUrl: up.url,
    upstream,
    internalToken: INTERNAL_TOKEN,
    logger,
    drainTimeoutMs: 50,
    ...extra,
  });
  const port = await ps.listen(0, '127.0.0.1');
  return { ps, store, lanes: upstream, url: `http://127.0.0.1:${port}`, close: () => ps.close() };
}

describe('proxied responses cannot act on the gateway origin (item 5)', () => {
  let up: Upstream;
  let p: Running;
  const ownCsp = "default-src 'none'; img-src 'self'; frame-ancestors 'none'; sandbox allow-downloads";
  beforeAll(async () => {
    up = await startUpstream();
    p = await startPolicy(up, [tenant('a'), tenant('b', { contentSecurityPolicy: ownCsp })]);
  });
  afterAll(async () => {
    await p.close();
    await up.close();
  });

  test.each([
    ['streamed', '/a/html'],
    ['buffered for the cache (miss, then hit)', '/a/html-cached'],
    ['served from the cache', '/a/html-cached'],
  ])('text/html from a backend, %s: nosniff and the default CSP; the backend cannot loosen nosniff', async (_how, path) => {
    const r = await send('GET', `${p.url}${path}`);
    expect(r.status).toBe(200);
    expect(r.text).toBe(HTML);
    expect(r.headers['x-content-type-options']).toBe('nosniff');
    // Node joins repeated fields with ", ": KEA's policy and the backend's, both enforced by browsers.
    const csp = String(r.headers['content-security-policy']);
    expect(csp.startsWith(DEFAULT_CONTENT_SECURITY_POLICY) || csp.endsWith(DEFAULT_CONTENT_SECURITY_POLICY)).toBe(true);
    expect(csp).toContain('sandbox');
  });

  test("an ApiSchema's own contentSecurityPolicy replaces the default", async () => {
    const r = await send('GET', `${p.url}/b/html`);
    expect(r.status).toBe(200);
    expect(r.headers['x-content-type-options']).toBe('nosniff');
    expect(String(r.headers['content-security-policy'])).toContain(ownCsp);
    expect(String(r.headers['content-security-policy'])).not.toContain(DEFAULT_CONTENT_SECURITY_POLICY);
  });
});

describe('credentials reach a backend only when its ApiSchema opts in (item 5)', () => {
  let up: Upstream;
  let p: Running;
  beforeAll(async () => {
    up = await startUpstream();
    p = await startPolicy(up, [
      tenant('none'),
      tenant('tok', { forwardCredentials: ['authorization'] }),
      tenant('both', { forwardCredentials: ['authorization', 'cookie'] }),
    ]);
  });
  afterAll(async () => {
    await p.close();
    await up.close();
  });

  const auth = bearer('sam', 'student');
  const cookie = 'kea_session=stolen-if-forwarded; theme=dark';

  test.each([
    ['none', undefined, undefined],
    ['tok', auth, undefined],
    ['both', auth, cookie],
  ])('ApiSchema %s: Authorization %s, Cookie %s', async (name, wantAuth, wantCookie) => {
    const r = await send('GET', `${p.url}/${name}/echo`, { headers: { authorization: auth, cookie } });
    expect(r.status).toBe(200);
    const h = up.seen.get(`api.${name}.kea.internal`)!;
    expect(h).toBeDefined();
    expect(h.authorization).toBe(wantAuth);
    expect(h.cookie).toBe(wantCookie);
    // The identity still arrives, as KEA's own headers.
    expect(h['x-kea-user']).toBe('sam');
  });
});

describe('one upstream lane per service (item 12)', () => {
  let up: Upstream;
  beforeEach(async () => {
    up = await startUpstream();
  });
  afterEach(async () => {
    await up.close();
  });

  const hangers = (url: string, n: number) =>
    Array.from({ length: n }, () => send('GET', url, { agent: false, timeoutMs: 30_000 }).catch((e: Error) => ({ status: 0, error: e.message })));

  test("130 requests hanging on one tenant's operation do not delay another tenant (default lanes)", async () => {
    const p = await startPolicy(up, [tenant('slow'), tenant('fast')]);
    try {
      const held = hangers(`${p.url}/slow/hang`, 130);
      // Wait until the backend holds as many as the slow lane's connections allow (64 by default),
      // i.e. the old shared pool's 128 connections would be mostly taken.
      const t0 = Date.now();
      while ((up.hanging.get('api.slow.kea.internal')?.length ?? 0) < 64 && Date.now() - t0 < 10_000) await new Promise((r) => setTimeout(r, 20));
      expect(up.hanging.get('api.slow.kea.internal')!.length).toBeGreaterThanOrEqual(64);
      const start = Date.now();
      const r = await send('GET', `${p.url}/fast/html`, { timeoutMs: 5000 });
      expect(r.status).toBe(200);
      expect(Date.now() - start).toBeLessThan(1000);
      for (const res of up.hanging.get('api.slow.kea.internal') ?? []) res.destroy();
      await p.close();
      await Promise.all(held);
    } finally {
      await p.close();
    }
  }, 30_000);

  test('over its in-flight limit a service gets 503 upstream-busy with Retry-After; the other service still answers', async () => {
    const p = await startPolicy(up, [tenant('slow'), tenant('fast')], { connectionsPerService: 2, maxInflightPerService: 4 });
    try {
      const held = hangers(`${p.url}/slow/hang`, 4);
      const t0 = Date.now();
      while ((up.hanging.get('api.slow.kea.internal')?.length ?? 0) < 2 && Date.now() - t0 < 5_000) await new Promise((r) => setTimeout(r, 10));
      await new Promise((r) => setTimeout(r, 50)); // the other 2 are queued in the slow lane's pool
      const start = Date.now();
      const busy = await send('GET', `${p.url}/slow/hang`, { timeoutMs: 5000 });
      expect(busy.status).toBe(503);
      expect(busy.headers['content-type']).toBe('application/problem+json');
      expect(busy.headers['retry-after']).toBe('1');
      expect(busy.json.code).toBe('upstream-busy');
      expect(Date.now() - start).toBeLessThan(1000);
      // Another service is not affected.
      expect((await send('GET', `${p.url}/fast/html`)).status).toBe(200);
      // Once the held requests end (the backend drops them: 502), the lane's count is back to 0.
      const drop = setInterval(() => {
        for (const res of [...(up.hanging.get('api.slow.kea.internal') ?? [])]) res.destroy();
      }, 10);
      const ended = await Promise.all(held);
      clearInterval(drop);
      expect(ended.map((r) => r.status)).toEqual([502, 502, 502, 502]);
      const statuses = await Promise.all(Array.from({ length: 4 }, () => send('GET', `${p.url}/slow/html`)));
      expect(statuses.map((r) => r.status)).toEqual([200, 200, 200, 200]);
    } finally {
      await p.close();
    }
  }, 30_000);

  test('the lane of a service removed from the configuration is closed', async () => {
    const p = await startPolicy(up, [tenant('a'), tenant('b')]);
    try {
      expect((await send('GET', `${p.url}/a/html`)).status).toBe(200);
      expect((await send('GET', `${p.url}/b/html`)).status).toBe(200);
      expect(p.lanes.hosts().sort()).toEqual(['api.a.kea.internal', 'api.b.kea.internal']);
      p.store.apply(configMapsFor(tenant('b')), 'source');
      expect(p.lanes.hosts()).toEqual(['api.b.kea.internal']);
      expect((await send('GET', `${p.url}/b/html`)).status).toBe(200);
    } finally {
      await p.close();
    }
  });
});

describe('management endpoints are not reachable through the data port (low: tenant routes to the policy Service)', () => {
  test('/readyz and /metrics answer 404 on the data port and are served on the admin port', async () => {
    const up = await startUpstream();
    // A broken ConfigMap: its error is what /readyz would list.
    const store = new SnapshotStore({ logger: createLogger('policy-server', { level: 'error', stream: new Writable({ write: (_c, _e, cb) => cb() }) }) });
    store.apply(
      [
        ...configMapsFor(tenant('a')),
        { name: 'kea-api-evil-x', labels: { 'kea.dev/component': 'api-config' }, annotations: {}, data: { 'policy.json': '{not json' } },
      ],
      'source',
    );
    const ps = createPolicyServer({ store, auth: testAuthenticator(), upstreamUrl: up.url, internalToken: INTERNAL_TOKEN, drainTimeoutMs: 50 });
    try {
      const data = `http://127.0.0.1:${await ps.listen(0, '127.0.0.1')}`;
      const admin = `http://127.0.0.1:${await ps.listenAdmin(0, '127.0.0.1')}`;
      // What a tenant HTTPRoute whose backendRef is the policy Service reaches (with or without
      // an x-kea-operation header of its own choosing).
      for (const headers of [{}, { 'x-kea-operation': 'a/api/html' }] as Array<Record<string, string>>) {
        for (const path of ['/readyz', '/metrics']) {
          const r = await send('GET', `${data}${path}`, { headers });
          expect([path, r.status]).toEqual([path, 404]);
          expect(r.text).not.toContain('kea-api-evil-x');
          expect(r.text).not.toContain('kea_policy_');
        }
      }
      expect((await send('GET', `${data}/healthz`)).json).toEqual({ status: 'ok' });
      const rz = await send('GET', `${admin}/readyz`);
      expect(rz.status).toBe(200);
      expect(JSON.stringify(rz.json.configErrors)).toContain('kea-api-evil-x');
      expect((await send('GET', `${admin}/metrics`)).text).toContain('kea_policy_config_errors 1');
      // The admin port serves nothing else: no data path, no management API.
      expect((await send('GET', `${admin}/a/html`)).status).toBe(404);
      expect((await send('GET', `${admin}/services`)).status).toBe(404);
    } finally {
      await ps.close();
      await up.close();
    }
  });
});

describe('request bodies buffered at once are bounded (low: fully buffered bodies up to 64 MiB)', () => {
  test('past maxBufferedRequestBytes a new body gets 503 server-busy with Retry-After; the reservation is released', async () => {
    const up = await startUpstream();
    const p = await startPolicy(up, [tenant('a')], undefined, { maxBufferedRequestBytes: 1024 * 1024 });
    try {
      const u = new URL(p.url);
      // A slow client: declares 600 kB, sends 1 kB, holds the rest.
      const slowBody = Buffer.alloc(600_000, 'a');
      let slowStatus = 0;
      const slowDone = new Promise<void>((resolve, reject) => {
        const req = request(
          {
            method: 'POST',
            hostname: u.hostname,
            port: u.port,
            path: '/a/upload',
            agent: false,
            headers: { 'content-type': 'application/octet-stream', 'content-length': String(slowBody.length) },
          },
          (res) => {
            slowStatus = res.statusCode ?? 0;
            res.resume();
            res.on('end', () => resolve());
          },
        );
        req.on('error', reject);
        req.write(slowBody.subarray(0, 1000));
        const t0 = Date.now();
        const wait = (): void => {
          if (p.ps.dataPath.bufferedRequestBytes > 0 || Date.now() - t0 > 5000) {
            void (async () => {
              // 600 kB more would exceed the 1 MiB bound: refused at once, before reading it.
              const busy = await send('POST', `${p.url}/a/upload`, {
                headers: { 'content-type': 'application/octet-stream' },
                body: Buffer.alloc(600_000, 'b'),
                agent: false,
              });
              expect(busy.status).toBe(503);
              expect(busy.json.code).toBe('server-busy');
              expect(busy.headers['retry-after']).toBe('1');
              // A small body still fits.
              const small = await send('POST', `${p.url}/a/upload`, {
                headers: { 'content-type': 'application/octet-stream' },
                body: Buffer.alloc(1000, 'c'),
                agent: false,
              });
              expect(small.status).toBe(200);
              req.end(slowBody.subarray(1000));
            })().catch(reject);
          } else setTimeout(wait, 10);
        };
        wait();
      });
      await slowDone;
      expect(slowStatus).toBe(200);
      expect(p.ps.dataPath.bufferedRequestBytes).toBe(0);
      const after = await send('POST', `${p.url}/a/upload`, {
        headers: { 'content-type': 'application/octet-stream' },
        body: Buffer.alloc(600_000, 'd'),
        agent: false,
      });
      expect(after.status).toBe(200);
    } finally {
      await p.close();
      await up.close();
    }
  });
});
