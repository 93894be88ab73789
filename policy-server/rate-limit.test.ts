/**
 * Rate limits through the real data path (datapath/steps/rate-limit.ts): a real policy server
 * (testing/stack.ts) with a real backend, counting in a real redis-server (dev/testing/redis.ts)
 * through the shared store (redis.ts); for the X-Forwarded-For attack, a real nginx in front
 * setting the forwarding headers exactly as NGF 1.6 does.
 *
 * (a) N per period: N pass, the next is 429 problem+json with Retry-After and the IETF headers,
 *     which every answer of the operation carries (400 too); metrics and audit.
 * (b) two policy servers on one Redis share one limit.
 * (c) Redis killed: no 5xx with fail mode `open`, each server enforces the limit alone; 503
 *     `rate-limit-unavailable` with `closed`; Redis restarted: shared again within a bounded
 *     wait; a frozen (slow) Redis never holds a request longer than the timeout.
 * (d) identity key: a student's limit does not touch a teacher's or another student's.
 * (e) address key: a client-supplied X-Forwarded-For cannot choose its bucket.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { Agent } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { createLogger, flushLogs } from '../lib/log.js';
import { freePort, stopProcess } from '../lib/process.js';
import type { PolicyRateLimit, PolicyService, RateLimitFailMode } from '../lib/policy/config.js';
import { startRedis, type TestRedis } from '../dev/testing/redis.js';
import { waitFor } from '../dev/testing/wait.js';
import { clientAddress } from './datapath/steps/rate-limit.js';
import { openSharedStore, type SharedStore } from './redis.js';
import { bearer, schoolService } from './testing/fixtures.js';
import { send, type RawResponse } from './testing/http.js';
import { startStack, type Stack } from './testing/stack.js';

const quietLogger = () =>
  createLogger('policy-server', {
    level: 'warn',
    stream: new Writable({
      write(_c, _e, cb) {
        cb();
      },
    }),
  });

/** A per-minute limit on get_grades, in its own counter namespace (`scope`). */
function limit(scope: string, requests: number, key: PolicyRateLimit['key'] = 'identity', extra: Partial<PolicyRateLimit> = {}): PolicyRateLimit {
  return { name: 'per-minute', requests, periodMs: 60_000, burst: 0, key, scope: `school/grades/${scope}`, ...extra };
}

/** The school service with `limits` on get_grades (set_grades unlimited). */
function school(limits: PolicyRateLimit[], failMode: RateLimitFailMode = 'open'): PolicyService {
  const s = schoolService(`cv-${limits.map((l) => l.scope).join('-')}`);
  return {
    ...s,
    rateLimitFailMode: failMode,
    operations: s.operations.map((o) => (o.operationId === 'get_grades' ? { ...o, rateLimits: limits } : o)),
  };
}

const get = (s: Stack, who = 'alice', role = 'student', query = ''): Promise<RawResponse> =>
  send('GET', `${s.url}/school/grades/alice${query}`, { headers: { authorization: bearer(who, role) } });

let redis: TestRedis;
const opened: SharedStore[] = [];
const stacks: Stack[] = [];

/**
 * A store on the test Redis. The timeout is generous (tests share a loaded machine: a call over
 * it would fall back per process and the counts below would not be Redis's), except in the
 * slow-Redis test, which uses the default 50 ms.
 */
async function storeOn(url: string, timeoutMs = 1000): Promise<SharedStore> {
  const st = openSharedStore({ url, timeoutMs, log: quietLogger() });
  opened.push(st);
  await waitFor('shared store available', 5000, () => st.available(), 20);
  return st;
}

async function stackWith(service: PolicyService, sharedStore?: SharedStore): Promise<Stack> {
  const s = await startStack({ services: [service], sharedStore, backendQuiet: true });
  stacks.push(s);
  return s;
}

beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  for (const s of stacks) await s.close();
  for (const st of opened) await st.close();
  await redis.stop();
});

describe('(a) N per minute through the data path, counted in Redis', () => {
  let s: Stack;
  beforeAll(async () => {
    s = await stackWith(school([limit('a', 5)]), await storeOn(redis.url));
  });

  test('N pass, the next is 429 problem+json with Retry-After; every answer carries RateLimit-Policy and RateLimit', async () => {
    // A 400 (bad query) is an answer of the limited operation too, and it is counted.
    const bad = await get(s, 'alice', 'student', '?term=9');
    expect(bad.status).toBe(400);
    expect(bad.headers['ratelimit-policy']).toBe('"per-minute";q=5;w=60');
    expect(bad.headers.ratelimit).toMatch(/^"per-minute";r=4;t=(59|60)$/);
    for (let remaining = 3; remaining >= 0; remaining--) {
      const r = await get(s);
      expect(r.status).toBe(200);
      expect(r.headers['ratelimit-policy']).toBe('"per-minute";q=5;w=60');
      expect(r.headers.ratelimit).toMatch(new RegExp(`^"per-minute";r=${remaining};t=(59|60)$`));
      expect(r.headers['retry-after']).toBeUndefined();
    }
    const over = await get(s);
    expect(over.status).toBe(429);
    expect(over.headers['content-type']).toBe('application/problem+json');
    expect(over.json).toMatchObject({ type: 'https://kea.dev/problems/rate-limited', code: 'rate-limited', status: 429, title: 'Rate limit exceeded' });
    expect(over.json.detail).toMatch(/"per-minute" \(5 requests per 60 s\)/);
    const after = Number(over.headers['retry-after']);
    expect(Number.isInteger(after) && after >= 1 && after <= 60).toBe(true);
    expect(over.headers['ratelimit-policy']).toBe('"per-minute";q=5;w=60');
    expect(over.headers.ratelimit).toMatch(/^"per-minute";r=0;t=\d+$/);
    // The counter lives in Redis under the contract's key.
    const keys = await opened[0].client.keys('kea:rl:school/grades/a:per-minute:*');
    expect(keys).toHaveLength(1);
    expect(keys[0]).toMatch(/^kea:rl:school\/grades\/a:per-minute:[0-9a-f]{32}$/);
    expect(Number(await opened[0].client.get(keys[0]))).toBe(5); // the 6th was refused from memory: no Redis call
    // An operation without a limit has none of the headers.
    const unlimited = await send('POST', `${s.url}/school/grades/alice`, {
      headers: { authorization: bearer('tina', 'teacher') },
      body: { subject: 'math', grade: 2 },
    });
    expect(unlimited.status).toBe(200);
    expect(unlimited.headers['ratelimit-policy']).toBeUndefined();
  });

  test('the refusal is counted per service, operation and identity class, and audited', async () => {
    const metrics = await (await fetch(`${s.adminUrl}/metrics`)).text();
    expect(metrics).toMatch(/^kea_rate_limited_total\{service="school\/grades",operation="get_grades",identity_class="user"\} 1$/m);
    expect(metrics).toMatch(/^kea_redis_available 1$/m);
    flushLogs();
    const rec = await waitFor('audit record of the 429', 2000, () => s.logs.find((l) => l.message === 'request end' && l.status === 429));
    expect(rec).toMatchObject({ outcome: 'rate_limited', user: 'alice', operation: 'school/grades/get_grades', error: 'rate limit "per-minute"' });
  });
});

describe('(b) two policy servers on one Redis share one limit', () => {
  test('6 per minute over both servers, alternating: 6 pass, then both refuse', async () => {
    const svc = school([limit('b', 6)]);
    const [s1, s2] = [await stackWith(svc, await storeOn(redis.url)), await stackWith(svc, await storeOn(redis.url))];
    const statuses: number[] = [];
    for (let i = 0; i < 8; i++) statuses.push((await get(i % 2 === 0 ? s1 : s2)).status);
    expect(statuses).toEqual([200, 200, 200, 200, 200, 200, 429, 429]);
  });

  test('without Redis each server counts alone: both admit the whole limit', async () => {
    const svc = school([limit('b-local', 3)]);
    const [s1, s2] = [await stackWith(svc), await stackWith(svc)];
    const statuses: number[] = [];
    for (let i = 0; i < 8; i++) statuses.push((await get(i % 2 === 0 ? s1 : s2)).status);
    expect(statuses).toEqual([200, 200, 200, 200, 200, 200, 429, 429]);
    const m = await (await fetch(`${s1.adminUrl}/metrics`)).text();
    expect(m).not.toMatch(/kea_redis_available/); // no store, no store metrics
  });
});

describe('(c) Redis down, slow, and back', () => {
  test('fail mode open: killed Redis → no 5xx, each server enforces the limit alone; restarted → shared again', async () => {
    const svc = school([limit('c-open', 3)]);
    const [st1, st2] = [await storeOn(redis.url), await storeOn(redis.url)];
    const [s1, s2] = [await stackWith(svc, st1), await stackWith(svc, st2)];
    await redis.kill();
    try {
      const statuses: number[] = [];
      for (let i = 0; i < 8; i++) statuses.push((await get(i % 2 === 0 ? s1 : s2)).status);
      expect(statuses).toEqual([200, 200, 200, 200, 200, 200, 429, 429]); // 3 each
      const m = await (await fetch(`${s1.adminUrl}/metrics`)).text();
      expect(m).toMatch(/^kea_redis_available 0$/m);
      expect(m).toMatch(/^kea_redis_errors_total\{op="(connection|rate-limit)"\} [1-9]\d*$/m);
      // Readiness does not depend on Redis.
      expect((await fetch(`${s1.adminUrl}/readyz`)).status).toBe(200);
    } finally {
      await redis.restart();
    }
    const t0 = Date.now();
    await waitFor('both stores available after the restart', 5000, () => st1.available() && st2.available(), 20);
    expect(Date.now() - t0).toBeLessThan(3000);
    // Shared again: 3 over both servers (Redis restarted empty, so a new window).
    const statuses: number[] = [];
    for (let i = 0; i < 5; i++) statuses.push((await get(i % 2 === 0 ? s1 : s2)).status);
    expect(statuses).toEqual([200, 200, 200, 429, 429]);
  });

  test('fail mode closed: killed Redis → 503 rate-limit-unavailable with Retry-After: 1; unlimited operations unaffected; restarted → served', async () => {
    const st = await storeOn(redis.url);
    const s = await stackWith(school([limit('c-closed', 100)], 'closed'), st);
    expect((await get(s)).status).toBe(200);
    await redis.kill();
    try {
      for (let i = 0; i < 3; i++) {
        const r = await get(s);
        expect(r.status).toBe(503);
        expect(r.headers['content-type']).toBe('application/problem+json');
        expect(r.json).toMatchObject({ code: 'rate-limit-unavailable', status: 503 });
        expect(r.headers['retry-after']).toBe('1');
        expect(r.headers['ratelimit-policy']).toBe('"per-minute";q=100;w=60');
      }
      const unlimited = await send('POST', `${s.url}/school/grades/alice`, {
        headers: { authorization: bearer('tina', 'teacher') },
        body: { subject: 'art', grade: 1 },
      });
      expect(unlimited.status).toBe(200);
    } finally {
      await redis.restart();
    }
    await waitFor('store available after the restart', 5000, () => st.available(), 20);
    expect((await get(s)).status).toBe(200);
  });

  test('frozen (slow) Redis: every request answered within the timeout plus a margin, no 5xx; thawed → shared again', async () => {
    const st = await storeOn(redis.url, 50);
    const s = await stackWith(school([limit('c-slow', 4)]), st);
    redis.freeze();
    try {
      const statuses: number[] = [];
      for (let i = 0; i < 6; i++) {
        const t0 = performance.now();
        statuses.push((await get(s)).status);
        expect(performance.now() - t0).toBeLessThan(50 + 550); // a frozen Redis never answers: the timeout bounds the wait
      }
      expect(statuses).toEqual([200, 200, 200, 200, 429, 429]);
      expect(st.available()).toBe(false);
    } finally {
      redis.thaw();
    }
    await waitFor('store available after the thaw', 3000, () => st.available(), 20);
    expect(st.stats().errors.get('rate-limit')).toBe(1); // one timeout opened the circuit; later requests did not call Redis
    expect((await get(s, 'zoe')).headers.ratelimit).toMatch(/^"per-minute";r=3;/); // counted in Redis again
  });
});

describe('(d) identity key: one counter per caller', () => {
  test("a student's exhausted limit does not touch a teacher's or another student's", async () => {
    const s = await stackWith(school([limit('d', 2)]), await storeOn(redis.url));
    expect((await get(s, 'alice', 'student')).status).toBe(200);
    expect((await get(s, 'alice', 'student')).status).toBe(200);
    expect((await get(s, 'alice', 'student')).status).toBe(429);
    const teacher = await get(s, 'tom', 'teacher');
    expect(teacher.status).toBe(200);
    expect(teacher.headers.ratelimit).toMatch(/^"per-minute";r=1;/);
    expect((await get(s, 'carol', 'student')).status).toBe(200);
    expect((await get(s, 'alice', 'student')).status).toBe(429);
  });

  test('several limits: RateLimit names the one closest to exhaustion; burst adds to the quota', async () => {
    const s = await stackWith(
      school([limit('d2', 10, 'identity', { name: 'per-minute', burst: 2 }), limit('d2', 3, 'api', { name: 'per-day', periodMs: 86_400_000 })]),
      await storeOn(redis.url),
    );
    const r1 = await get(s, 'amy');
    expect(r1.headers['ratelimit-policy']).toBe('"per-minute";q=12;w=60, "per-day";q=3;w=86400');
    expect(r1.headers.ratelimit).toMatch(/^"per-day";r=2;t=(86399|86400)$/);
    expect((await get(s, 'ben')).status).toBe(200); // api key: every caller together
    expect((await get(s, 'cat')).status).toBe(200);
    const over = await get(s, 'dan');
    expect(over.status).toBe(429);
    expect(over.json.detail).toMatch(/"per-day"/);
    expect(Number(over.headers['retry-after'])).toBeGreaterThan(86_000);
  });
});

describe('(e) address key: the client address as the gateway saw it', () => {
  let nginx: ChildProcess | undefined;
  let dir: string;
  let front: string;
  let s: Stack;
  beforeAll(async () => {
    s = await stackWith(school([limit('e', 3, 'address')]), await storeOn(redis.url));
    // A real nginx with NGF 1.6.2's proxy headers (nginx/config/servers.go createBaseProxySetHeaders).
    dir = await mkdtemp(join(tmpdir(), 'kea-rl-nginx-'));
    await mkdir(join(dir, 'logs'));
    const port = await freePort();
    const conf = join(dir, 'nginx.conf');
    await writeFile(
      conf,
      `worker_processes 1;
daemon off;
pid ${join(dir, 'nginx.pid')};
error_log ${join(dir, 'logs', 'error.log')} warn;
events { worker_connections 64; }
http {
  access_log off;
  client_body_temp_path ${dir}; proxy_temp_path ${dir}; fastcgi_temp_path ${dir}; uwsgi_temp_path ${dir}; scgi_temp_path ${dir};
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass ${s.url};
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Real-IP $remote_addr;
      proxy_set_header X-Forwarded-Proto $scheme;
    }
  }
}
`,
    );
    nginx = spawn('nginx', ['-c', conf, '-p', dir], { stdio: 'ignore' });
    front = `http://127.0.0.1:${port}`;
    await waitFor('nginx answers', 10_000, async () => (await send('GET', `${front}/school/grades/alice`, { agent: false })).status > 0, 50);
  });
  afterAll(async () => {
    await stopProcess(nginx, 5000);
    await rm(dir, { recursive: true, force: true });
  });

  /** A request through nginx from a loopback address of our choice (all of 127/8 is local). */
  const from = (addr: string, headers: Record<string, string> = {}): Promise<RawResponse> =>
    send('GET', `${front}/school/grades/alice`, {
      headers: { authorization: bearer('mallory', 'student'), ...headers },
      agent: new Agent({ localAddress: addr }),
    });

  test('a caller forging X-Forwarded-For and X-Real-IP on every request still lands in its own bucket', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 6; i++) {
      const forged = `198.51.100.${i + 1}`;
      statuses.push((await from('127.0.0.7', { 'x-forwarded-for': forged, 'x-real-ip': forged })).status);
    }
    expect(statuses).toEqual([200, 200, 200, 429, 429, 429]);
    // Another client (another address) has its own bucket, whatever it claims.
    expect((await from('127.0.0.8', { 'x-forwarded-for': '127.0.0.7' })).status).toBe(200);
  });

  test('clientAddress: the last X-Forwarded-For entry, else the peer; IPv4-mapped IPv6 as IPv4', () => {
    const x = (xff: string | undefined, peer: string) => ({
      req: { headers: xff === undefined ? {} : { 'x-forwarded-for': xff }, socket: { remoteAddress: peer } },
    });
    expect(clientAddress(x('203.0.113.9, 10.0.0.1', '10.0.0.2') as never)).toBe('10.0.0.1');
    expect(clientAddress(x(undefined, '::ffff:10.0.0.2') as never)).toBe('10.0.0.2');
    expect(clientAddress(x('', '2001:db8::1') as never)).toBe('2001:db8::1');
  });
});
