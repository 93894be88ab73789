/**
 * `GET /logs/{ns}/{name}` over several replicas (issue 13; policy-server/shared-audit.ts):
 * two policy servers (`createPolicyServer`, each its own audit ring and Redis connection, as
 * two replicas) in front of one real HTTP upstream (testing/echo-upstream.ts) and one real
 * `redis-server` (dev/testing/redis.ts) that the tests freeze, kill and restart; and the
 * compiled server (dist/, build first: `npm run build`) with `--workers 2` and `--redis-url`,
 * whose cluster-wide `/logs` reads Redis too (an admin token from the dev OpenID Provider).
 */
import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { scriptsClient, startDevIdp, type DevIdp } from '../dev/idp.js';
import { createLogger } from '../lib/log.js';
import { POLICY_API_VERSION, policyOperation as op, type PolicyService } from '../lib/policy/config.js';
import { startRedis, type TestRedis } from '../dev/testing/redis.js';
import { waitFor } from '../dev/testing/wait.js';
import { auditKey, SharedAuditLog, type SharedAuditRecord } from './shared-audit.js';
import { startEchoUpstream, type EchoUpstream } from './testing/echo-upstream.js';
import { bearer, INTERNAL_TOKEN, irisService, policyServerArgs, startBackend, writeConfigDir, type Backend } from './testing/fixtures.js';
import { startReplica, type Replica as Base } from './testing/replica.js';
import { send } from './testing/http.js';
import { spawnPolicyServer } from './testing/process.js';

/** Generous: a request that waited for a frozen Redis would take at least this long. */
const TIMEOUT_MS = 250;
/** Records per service (ring and Redis list). */
const RING = 30;
/** Records buffered at most while Redis is down. */
const MAX_BUFFERED = 20;

function service(ns: string, name: string): PolicyService {
  return {
    apiVersion: POLICY_API_VERSION,
    id: `${ns}/${name}`,
    namespace: ns,
    name,
    title: name,
    version: '1.0.0',
    basePath: `/${ns}`,
    configVersion: 'c1',
    mode: 'enforce',
    upstream: { host: `${name}.${ns}.kea.internal` },
    traffic: [{ revision: 'v1', weight: 100 }],
    authorization: {},
    operations: [
      op({
        operationId: 'get_item',
        method: 'GET',
        path: `/${ns}/items/{id}`,
        upstreamPath: '/items/{id}',
        access: { mode: 'restricted', roles: ['reader'] },
        parameters: [{ name: 'id', in: 'path', required: true, schema: { type: 'string', pattern: '^[0-9a-z-]{1,40}$' } }],
      }),
    ],
  };
}

type Replica = Base & { name: string };

let redis: TestRedis;
let upstream: EchoUpstream;
let a: Replica;
let b: Replica;
const logger = createLogger('policy-server', { level: 'error' });
const reader = bearer('ann', 'reader');
const admin = bearer('ada', 'admin');

async function replica(name: string): Promise<Replica> {
  const r = await startReplica({
    services: [service('shop', 'items'), service('other', 'things')],
    redisUrl: redis.url,
    upstreamUrl: upstream.url,
    timeoutMs: TIMEOUT_MS,
    logger,
    extra: (shared) => ({ auditRingSize: RING, sharedAudit: new SharedAuditLog(shared, { maxRecords: RING, replica: name, maxBuffered: MAX_BUFFERED }) }),
  });
  return { ...r, name };
}

const available = (...rs: Replica[]) => waitFor('Redis available to every replica', 10_000, () => rs.every((r) => r.shared.available()), 20);

beforeAll(async () => {
  redis = await startRedis();
  upstream = await startEchoUpstream({ token: INTERNAL_TOKEN, hosts: { 'items.shop.kea.internal': 'shop', 'things.other.kea.internal': 'other' } });
  a = await replica('replica-a');
  b = await replica('replica-b');
  await available(a, b);
});

afterAll(async () => {
  for (const r of [a, b]) {
    await r?.ps.close();
    await r?.shared.close();
  }
  await upstream?.close();
  await redis?.stop();
});

let serial = 0;
type Call = { id: string; status: number; ms: number };
/** One request through `r`: its request id, status and latency. */
async function call(r: Replica, ns = 'shop'): Promise<Call> {
  const id = `rq-${r.name}-${++serial}`;
  const t0 = Date.now();
  const res = await send('GET', `${r.url}/${ns}/items/k${serial}`, { headers: { authorization: reader, 'x-request-id': id } });
  return { id, status: res.status, ms: Date.now() - t0 };
}

interface LogsBody {
  service: string;
  records: SharedAuditRecord[];
  source?: string;
  partial?: boolean;
  partialReason?: string;
}
async function logs(r: Replica, id = 'shop/items', limit = 1000): Promise<{ status: number; body: LogsBody; ms: number }> {
  const t0 = Date.now();
  const res = await send('GET', `${r.url}/logs/${id}?limit=${limit}`, { headers: { authorization: admin } });
  return { status: res.status, body: res.json as LogsBody, ms: Date.now() - t0 };
}

const ids = (body: LogsBody) => body.records.map((x) => x.requestId);

describe('/logs of every replica through Redis', () => {
  test('requests through A and B: /logs on either shows both, newest first, each with its replica', async () => {
    const sent: string[] = [];
    for (let i = 0; i < 6; i++) for (const r of [a, b]) sent.push((await call(r)).id);
    for (const r of [a, b]) {
      const { status, body } = await logs(r);
      expect(status).toBe(200);
      expect(body.source).toBe('shared');
      expect(body.partial).toBeUndefined();
      // A reads its own writes at once; B's last records come with its next flush (≤ 100 ms).
      const all = await waitFor('both replicas flushed', 2_000, async () => {
        const l = await logs(r);
        return sent.every((id) => ids(l.body).includes(id)) && l.body;
      });
      const mine = all.records.filter((x) => sent.includes(x.requestId));
      expect(mine.map((x) => x.requestId)).toEqual([...sent].reverse());
      expect(new Set(mine.map((x) => x.replica))).toEqual(new Set(['replica-a', 'replica-b']));
      for (const x of mine) {
        expect(x.replica).toBe(x.requestId.startsWith('rq-replica-a') ? 'replica-a' : 'replica-b');
        expect([x.service, x.status, x.operation]).toEqual(['shop/items', 200, 'shop/items/get_item']);
        expect(typeof x.time).toBe('string');
      }
    }
    // limit: the newest n.
    const two = await logs(a, 'shop/items', 2);
    expect(ids(two.body)).toEqual([sent[sent.length - 1], sent[sent.length - 2]]);
    // Admin only, as before.
    expect((await send('GET', `${a.url}/logs/shop/items`, { headers: { authorization: reader } })).status).toBe(403);
  });

  test("tenant isolation: a service's /logs never shows another service's records, even one written into its list", async () => {
    const shop = (await call(a, 'shop')).id;
    const other = [(await call(a, 'other')).id, (await call(b, 'other')).id];
    await waitFor('flushed', 2_000, async () => ids((await logs(b, 'other/things')).body).includes(other[0]));
    const s = await logs(b, 'shop/items');
    expect(ids(s.body)).toContain(shop);
    expect(s.body.records.every((x) => x.service === 'shop/items')).toBe(true);
    const o = await logs(a, 'other/things');
    expect(ids(o.body)).toEqual(expect.arrayContaining(other));
    expect(ids(o.body)).not.toContain(shop);
    expect(o.body.records.every((x) => x.service === 'other/things')).toBe(true);
    // A record of another service in this service's list (written by someone else than KEA) is not shown.
    const planted: SharedAuditRecord = { ...o.body.records[0], requestId: 'planted', time: new Date().toISOString() };
    await a.shared.client.lpush(auditKey('shop/items'), JSON.stringify(planted), 'not json');
    const after = await logs(a, 'shop/items');
    expect(after.status).toBe(200);
    expect(ids(after.body)).not.toContain('planted');
    expect(after.body.records.every((x) => x.service === 'shop/items')).toBe(true);
    // An unknown service: 404 as before.
    expect((await logs(a, 'nobody/here')).status).toBe(404);
  });

  test('bounded: the list holds the ring size and expires', async () => {
    for (let i = 0; i < RING + 10; i++) await call(i % 2 ? a : b);
    await waitFor('flushed', 2_000, async () => (await logs(a)).body.records.length === RING);
    await new Promise((r) => setTimeout(r, 300)); // both replicas' last flush
    expect(await a.shared.client.llen(auditKey('shop/items'))).toBe(RING);
    const ttl = await a.shared.client.pttl(auditKey('shop/items'));
    expect(ttl).toBeGreaterThan(23 * 3600_000);
    expect(ttl).toBeLessThanOrEqual(24 * 3600_000);
    expect((await logs(b)).body.records.length).toBe(RING);
  });
});

describe('Redis down or slow', () => {
  test('frozen Redis: requests are not slowed; /logs answers within the timeout from the local view, marked partial', async () => {
    await available(a, b);
    redis.freeze();
    try {
      const calls: Call[] = [];
      for (let i = 0; i < 12; i++) calls.push(await call(a));
      expect(calls.map((c) => c.status)).toEqual(calls.map(() => 200));
      expect(Math.max(...calls.map((c) => c.ms))).toBeLessThan(TIMEOUT_MS);
      const l = await logs(a);
      expect(l.status).toBe(200);
      expect(l.ms).toBeLessThan(2 * TIMEOUT_MS + 500);
      expect([l.body.source, l.body.partial]).toEqual(['local', true]);
      expect(l.body.partialReason).toMatch(/Redis.*this replica's records only/);
      // The local ring: A's records, B's not.
      expect(ids(l.body).slice(0, 12)).toEqual(calls.map((c) => c.id).reverse());
      expect(l.body.records.every((x) => !x.requestId.startsWith('rq-replica-b'))).toBe(true);
    } finally {
      redis.thaw();
    }
    await available(a, b);
  });

  test('killed Redis: 200s, /logs partial and never 5xx; the buffer keeps the newest records and counts the dropped; back: written', async () => {
    await available(a, b);
    await redis.kill();
    await waitFor('replicas see Redis gone', 5_000, () => !a.shared.available() && !b.shared.available(), 20);
    const dropped0 = a.ps.sharedAudit!.dropped;
    const calls: Call[] = [];
    for (let i = 0; i < MAX_BUFFERED + 5; i++) calls.push(await call(a));
    expect(calls.map((c) => c.status)).toEqual(calls.map(() => 200));
    expect(Math.max(...calls.map((c) => c.ms))).toBeLessThan(TIMEOUT_MS);
    for (const r of [a, b]) {
      const l = await logs(r);
      expect(l.status).toBe(200);
      expect(l.body.partial).toBe(true);
      expect(l.ms).toBeLessThan(TIMEOUT_MS);
    }
    expect(a.ps.sharedAudit!.buffered).toBe(MAX_BUFFERED);
    expect(a.ps.sharedAudit!.dropped - dropped0).toBe(5);
    const metric = (await a.ps.metrics.registry.getSingleMetric('kea_audit_shared_dropped_total')!.get()).values[0].value;
    expect(metric).toBe(a.ps.sharedAudit!.dropped);

    await redis.restart();
    await available(a, b);
    // The newest MAX_BUFFERED were kept and are written now: B shows them (Redis lost the rest).
    const kept = calls.slice(5).map((c) => c.id);
    const l = await waitFor('the buffer written', 3_000, async () => {
      const x = await logs(b);
      return x.body.source === 'shared' && kept.every((id) => ids(x.body).includes(id)) && x.body;
    });
    expect(ids(l).filter((id) => calls.slice(0, 5).some((c) => c.id === id))).toEqual([]);
    expect(a.ps.sharedAudit!.buffered).toBe(0);
  });
});

describe('--workers 2 with --redis-url: /logs reads Redis', () => {
  let wredis: TestRedis;
  let backend: Backend;
  let idp: DevIdp;
  let dir: string;
  let child: ChildProcessWithoutNullStreams;
  let out: Array<Record<string, unknown>> = [];
  let stderr = () => '';

  beforeAll(async () => {
    wredis = await startRedis();
    backend = await startBackend({ requireToken: INTERNAL_TOKEN, quiet: true });
    idp = await startDevIdp({ clients: [scriptsClient('ops', 'ops-secret', ['admin'])] });
    dir = await mkdtemp(join(tmpdir(), 'kea-shared-audit-'));
    await writeConfigDir(join(dir, 'cfg'), irisService('audit-workers'));
    ({
      child,
      records: out,
      stderr,
    } = spawnPolicyServer(['--workers', '2', ...policyServerArgs({ upstreamUrl: backend.url, configDir: join(dir, 'cfg'), stateDir: join(dir, 'state') })], {
      KEA_REDIS_URL: wredis.url,
      KEA_REDIS_TIMEOUT_MS: '1000',
      KEA_OIDC_ISSUER: idp.issuer,
      KEA_OIDC_ALLOW_HTTP_ISSUER: 'true',
      KEA_GATEWAY_URL: 'http://127.0.0.1',
      KEA_SESSION_SECRETS: 'shared-audit-test-session-secret-0123456789',
      KEA_COOKIE_SECURE: 'false',
    }));
    await waitFor(
      'both workers listening, with Redis and the configuration',
      60_000,
      () =>
        (out.filter((r) => r.message === 'worker listening').length === 2 &&
          out.filter((r) => r.message === 'shared store (Redis) available').length === 2 &&
          out.filter((r) => r.message === 'config snapshot swapped' && r.services === 1).length >= 2) ||
        (child.exitCode !== null && Promise.reject(new Error(stderr()))),
      25,
    );
  }, 90_000);

  afterAll(async () => {
    if (child && child.exitCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    }
    await backend?.close();
    await idp?.stop();
    await wredis?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test("every worker's records, each with its worker, from Redis (the workers are not asked)", async () => {
    const url = `http://127.0.0.1:${out.find((r) => r.message === 'worker listening')!.port as number}`;
    const tok = await fetch(`${idp.issuer}/token`, {
      method: 'POST',
      headers: { authorization: `Basic ${Buffer.from('ops:ops-secret').toString('base64')}`, 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'client_credentials', scope: 'api:read', resource: idp.audience }),
    });
    const auth = { authorization: `Bearer ${((await tok.json()) as { access_token: string }).access_token}` };
    const sent: string[] = [];
    for (let i = 0; i < 10; i++) {
      const r = await send('GET', `${url}/iris/health`, { agent: false }); // a new connection each: both workers serve some
      expect(r.status).toBe(200);
      sent.push(r.headers['x-request-id'] as string);
    }
    const body = await waitFor('every record in Redis', 5_000, async () => {
      const r = await send('GET', `${url}/logs/ml/iris?limit=1000`, { agent: false, headers: auth });
      expect(r.status).toBe(200);
      const b = r.json as LogsBody & { cluster?: unknown };
      return sent.every((id) => ids(b).includes(id)) && b;
    });
    expect(body.source).toBe('shared');
    expect(body.cluster).toBeUndefined();
    expect(new Set(body.records.map((x) => x.worker))).toEqual(new Set([1, 2]));
    expect(body.records.every((x) => x.service === 'ml/iris' && typeof x.replica === 'string')).toBe(true);
  });
});
