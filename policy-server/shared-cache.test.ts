/**
 * The response cache's second level in Redis (issue 13; datapath/shared-cache.ts) through the
 * real data path: two policy servers (`createPolicyServer`, each its own first level and its
 * own Redis connection, as two replicas) in front of one real HTTP upstream
 * (testing/echo-upstream.ts: every answer numbered, so equal numbers mean one model call), and
 * one real `redis-server` (dev/testing/redis.ts) that the tests kill, freeze and restart.
 */
import { Redis } from 'ioredis';
import { createLogger } from '../lib/log.js';
import { POLICY_API_VERSION, policyOperation as op, type PolicyService } from '../lib/policy/config.js';
import { startRedis, type TestRedis } from '../dev/testing/redis.js';
import { waitFor } from '../dev/testing/wait.js';
import { ENTRY_PREFIX, generationKey, SharedCache } from './datapath/shared-cache.js';
import { workerLocalHandlers } from './management.js';
import { startEchoUpstream, type Echo, type EchoUpstream } from './testing/echo-upstream.js';
import { bearer, configMapsFor, INTERNAL_TOKEN } from './testing/fixtures.js';
import { startReplica, type Replica } from './testing/replica.js';
import { send, type RawResponse } from './testing/http.js';

const HOST = 'items.shop.kea.internal';
const reader = { mode: 'restricted' as const, roles: ['reader'] };
const TIMEOUT_MS = 100;

function shop(configVersion = 'c1'): PolicyService {
  const id = { name: 'id', in: 'path' as const, required: true, schema: { type: 'string', pattern: '^[0-9a-z]{1,16}$' } };
  const get = (operationId: string, path: string, upstreamPath: string, scope: 'shared' | 'identity' = 'shared') =>
    op({ operationId, method: 'GET', path: `/t${path}`, upstreamPath, access: reader, cache: { ttlSeconds: 60, scope }, parameters: [id] });
  return {
    apiVersion: POLICY_API_VERSION,
    id: 'shop/items',
    namespace: 'shop',
    name: 'items',
    title: 'Items',
    version: '1.0.0',
    basePath: '/t',
    configVersion,
    mode: 'enforce',
    upstream: { host: HOST },
    traffic: [{ revision: 'v1', weight: 100 }],
    authorization: {},
    operations: [
      get('get_item', '/items/{id}', '/items/{id}'),
      get('mine', '/mine/{id}', '/mine/{id}', 'identity'),
      get('vary_user', '/vary-user/{id}', '/vary-user/{id}'),
    ],
  };
}

let redis: TestRedis;
let upstream: EchoUpstream;
let a: Replica;
let b: Replica;
const replicas: Replica[] = [];
const logger = createLogger('policy-server', { level: 'error' });

async function replica(maxEntryBytes?: number): Promise<Replica> {
  const r = await startReplica({
    services: [shop()],
    redisUrl: redis.url,
    upstreamUrl: upstream.url,
    timeoutMs: TIMEOUT_MS,
    logger,
    extra: () => (maxEntryBytes ? { cache: { maxEntryBytes } } : {}),
  });
  replicas.push(r);
  return r;
}

const available = (...rs: Replica[]) => waitFor('Redis available to every replica', 10_000, () => rs.every((r) => r.shared.available()), 20);

beforeAll(async () => {
  redis = await startRedis();
  upstream = await startEchoUpstream({ token: INTERNAL_TOKEN, hosts: { [HOST]: 'shop' } });
  a = await replica();
  b = await replica();
  await available(a, b);
});

afterAll(async () => {
  for (const r of replicas) {
    await r.ps.close();
    await r.shared.close();
  }
  await upstream?.close();
  await redis?.stop();
});

let serial = 0;
/** A path no earlier test used (so no first level holds it). */
const fresh = (kind = 'items') => `/t/${kind}/k${++serial}`;

const ann = bearer('ann', 'reader');
const ben = bearer('ben', 'reader');

async function get(r: Replica, path: string, auth = ann): Promise<RawResponse & { echo: Echo }> {
  const res = await send('GET', `${r.url}${path}`, { headers: { authorization: auth } });
  expect(res.status).toBe(200);
  return { ...res, echo: JSON.parse(res.text) as Echo };
}

/** `kea_cache_l2_total{result}` of one replica. */
async function l2(r: Replica): Promise<Record<string, number>> {
  const out: Record<string, number> = { hit: 0, miss: 0, error: 0, store: 0 };
  for (const v of (await r.ps.metrics.cacheL2.get()).values) out[String(v.labels.result)] = v.value;
  return out;
}

/** Waits until the fire-and-forget store of `r` is counted (it follows the answer). */
async function stored(r: Replica, before: number): Promise<void> {
  await waitFor('the second-level store', 5_000, async () => (await l2(r)).store > before, 10);
}

describe('second level shared by two replicas', () => {
  test('a miss on replica A is stored in Redis and is a hit on replica B, which fills its first level', async () => {
    const path = fresh();
    const s0 = (await l2(a)).store;
    const first = await get(a, path);
    expect(first.headers['x-cache']).toBe('MISS');
    expect(first.headers['cache-status']).toBeUndefined();
    await stored(a, s0);
    const calls = upstream.count();
    const h0 = await l2(b);
    const onB = await get(b, path, ben);
    expect(onB.headers['x-cache']).toBe('HIT');
    expect(onB.headers['cache-status']).toBe('kea-shared; hit, kea; fwd=uri-miss');
    expect(onB.echo.n).toBe(first.echo.n); // A's answer, no model call
    // The same headers as the model's answer: KEA's own once (stored without them, added on the way out).
    for (const h of ['content-type', 'content-security-policy', 'x-content-type-options', 'content-length']) expect(onB.headers[h]).toBe(first.headers[h]);
    expect(upstream.count()).toBe(calls);
    expect(Number(onB.headers.age)).toBeGreaterThanOrEqual(0);
    expect((await l2(b)).hit).toBe(h0.hit + 1);
    // B's first level now holds it.
    const again = await get(b, path);
    expect([again.headers['x-cache'], again.headers['cache-status'], again.echo.n]).toEqual(['HIT', 'kea; hit', first.echo.n]);
    expect((await l2(b)).hit).toBe(h0.hit + 1);
    // The entry is under `kea:c:` + the first level's key, with the operation's TTL.
    const peek = new Redis(redis.url);
    try {
      const keys = await peek.keys(`${ENTRY_PREFIX}*`);
      expect(keys.length).toBeGreaterThan(0);
      const ttls = await Promise.all(keys.map((k) => peek.pttl(k)));
      for (const t of ttls) expect(t).toBeGreaterThan(50_000);
      for (const t of ttls) expect(t).toBeLessThanOrEqual(60_000);
    } finally {
      peek.disconnect();
    }
  });

  test('a new configVersion never reads the old revision’s entries', async () => {
    const path = fresh();
    const s0 = (await l2(a)).store;
    const old = await get(a, path);
    await stored(a, s0);
    b.store.apply(configMapsFor(shop('c2')), 'source');
    try {
      const calls = upstream.count();
      const now = await get(b, path);
      expect(now.headers['x-cache']).toBe('MISS');
      expect(now.echo.n).not.toBe(old.echo.n);
      expect(upstream.count()).toBe(calls + 1);
    } finally {
      b.store.apply(configMapsFor(shop()), 'source');
    }
    // Control: under the old configVersion the same request is a second-level hit on B.
    expect((await get(b, path)).headers['cache-status']).toBe('kea-shared; hit, kea; fwd=uri-miss');
  });

  test("scope identity: ann's entry reaches ann on the other replica, never ben", async () => {
    const path = fresh('mine');
    const s0 = (await l2(a)).store;
    const annA = await get(a, path, ann);
    expect(annA.echo.user).toBe('ann');
    await stored(a, s0);
    const benB = await get(b, path, ben);
    expect(benB.headers['x-cache']).toBe('MISS');
    expect(benB.echo.user).toBe('ben');
    const annB = await get(b, path, ann);
    expect([annB.headers['cache-status'], annB.echo.n, annB.echo.user]).toEqual(['kea-shared; hit, kea; fwd=uri-miss', annA.echo.n, 'ann']);
  });

  test('Vary on a header KEA sets (x-kea-user): through the Redis Vary index, each caller gets their own variant', async () => {
    const path = fresh('vary-user');
    const s0 = (await l2(a)).store;
    const annA = await get(a, path, ann);
    await stored(a, s0 + 1); // the Vary index and the variant
    const benB = await get(b, path, ben);
    expect([benB.headers['x-cache'], benB.echo.user]).toEqual(['MISS', 'ben']);
    const annB = await get(b, path, ann);
    expect([annB.headers['cache-status'], annB.echo.n, annB.echo.user]).toEqual(['kea-shared; hit, kea; fwd=uri-miss', annA.echo.n, 'ann']);
  });

  test('an answer larger than the first level’s largest entry is not written to Redis', async () => {
    const small = await replica(64);
    await available(small);
    const path = fresh();
    const before = await l2(small);
    const r = await get(small, path);
    expect(r.body.length).toBeGreaterThan(64);
    await new Promise((res) => setTimeout(res, 100));
    expect((await l2(small)).store).toBe(before.store);
    expect((await get(b, path)).headers['x-cache']).toBe('MISS');
  });
});

test('an entry written into Redis by someone else than KEA chooses the body, never a cookie, the CSP or the length', async () => {
  const path = fresh();
  const peek = new Redis(redis.url);
  try {
    const before = new Set(await peek.keys(`${ENTRY_PREFIX}*`));
    const s0 = (await l2(a)).store;
    const miss = await get(a, path);
    await stored(a, s0);
    const added = (await peek.keys(`${ENTRY_PREFIX}*`)).filter((k) => !before.has(k));
    expect(added).toHaveLength(1);
    const raw = (await peek.getBuffer(added[0]))!;
    const generation = raw.subarray(0, raw.indexOf(10)).toString('latin1');
    const body = '{"planted":true}';
    const h = ['content-type', 'application/json', 'content-length', '3', 'set-cookie', 'kea_session=planted', 'x-content-type-options', 'off'];
    h.push('connection', 'close', 'transfer-encoding', 'chunked');
    await peek.set(added[0], Buffer.from(`${generation}\n${JSON.stringify({ s: 200, h, t: Date.now() })}\n${body}`), 'PX', 60_000);
    const r = await send('GET', `${b.url}${path}`, { headers: { authorization: ann } });
    expect([r.status, r.text]).toEqual([200, body]); // write access to Redis does choose the body (docs/security.md)
    expect(r.headers['set-cookie']).toBeUndefined();
    expect(r.headers['x-content-type-options']).toBe('nosniff');
    expect(r.headers['content-security-policy']).toBe(miss.headers['content-security-policy']);
    expect(r.headers['content-length']).toBe(String(body.length));
    expect(r.headers['transfer-encoding']).toBeUndefined();
    // The keep-alive connection is still in step: the next answer on it is whole.
    expect((await get(b, fresh())).headers['x-cache']).toBe('MISS');
  } finally {
    peek.disconnect();
  }
});

describe('purge', () => {
  test('DELETE /router/cache/{ns}/{name} on A purges the second level: B misses', async () => {
    const path = fresh();
    const s0 = (await l2(a)).store;
    const first = await get(a, path);
    await stored(a, s0);
    const purge = await send('DELETE', `${a.url}/router/cache/shop/items`, { headers: { authorization: bearer('ada', 'admin') } });
    expect(purge.status).toBe(200);
    expect(purge.json.shared).toBe('purged');
    const sb = (await l2(b)).store;
    const onB = await get(b, path);
    expect(onB.headers['x-cache']).toBe('MISS');
    expect(onB.echo.n).not.toBe(first.echo.n);
    // What B stored after the purge is served again, on A too (A's first level was purged).
    await stored(b, sb);
    const onA = await get(a, path);
    expect([onA.headers['cache-status'], onA.echo.n]).toEqual(['kea-shared; hit, kea; fwd=uri-miss', onB.echo.n]);
  });

  test('DELETE /router/cache (all services) purges the second level too', async () => {
    const path = fresh();
    const s0 = (await l2(a)).store;
    await get(a, path);
    await stored(a, s0);
    const purge = await send('DELETE', `${a.url}/router/cache`, { headers: { authorization: bearer('ada', 'admin') } });
    expect(purge.status).toBe(200);
    expect((await get(b, path)).headers['x-cache']).toBe('MISS');
  });

  test('with --workers n, a worker’s purge purges the second level too', async () => {
    const path = fresh();
    const s0 = (await l2(a)).store;
    await get(a, path);
    await stored(a, s0);
    const local = workerLocalHandlers({ store: a.store, cache: a.ps.cache, sharedCache: a.ps.dataPath.sharedCache, audit: a.ps.audit, metrics: a.ps.metrics });
    await local.purge({ service: 'shop/items' });
    expect((await get(b, path)).headers['x-cache']).toBe('MISS');
  });

  test('a store whose lookup predates a purge is dropped; a lost generation key loses entries, never revives purged ones', async () => {
    const cache = new SharedCache(a.shared, { maxEntryBytes: 1024 });
    const entry = { status: 200, headers: ['content-type', 'application/json'], body: Buffer.from('{"x":1}'), storedAt: Date.now(), serviceId: 'shop/other' };
    const before = await cache.lookup('race-key', 'shop/other');
    expect(before?.found).toBeUndefined();
    cache.set('race-key', entry, 60_000, undefined);
    await waitFor('stored', 2_000, async () => (await cache.lookup('race-key', 'shop/other'))?.found !== undefined, 10);
    const seen = (await cache.lookup('race-key', 'shop/other'))!;
    await cache.purgeService('shop/other');
    cache.set('race-key', entry, 60_000, seen.generation); // the answer of a request that looked before the purge
    await new Promise((r) => setTimeout(r, 100));
    expect((await cache.lookup('race-key', 'shop/other'))?.found).toBeUndefined();
    // Store again after the purge, then lose the generation key (e.g. evicted): a miss.
    cache.set('race-key', entry, 60_000, (await cache.lookup('race-key', 'shop/other'))!.generation);
    await waitFor('stored', 2_000, async () => (await cache.lookup('race-key', 'shop/other'))?.found !== undefined, 10);
    await a.shared.client.del(generationKey('shop/other'));
    expect((await cache.lookup('race-key', 'shop/other'))?.found).toBeUndefined();
  });
});

describe('Redis down or slow', () => {
  test('frozen Redis: an L1 miss waits at most the timeout, then the model answers 200', async () => {
    const path = fresh();
    redis.freeze();
    try {
      const e0 = (await l2(b)).error;
      const t0 = Date.now();
      const r = await get(b, path);
      const ms = Date.now() - t0;
      expect(r.headers['x-cache']).toBe('MISS');
      expect(ms).toBeLessThan(TIMEOUT_MS + 400);
      expect((await l2(b)).error).toBeGreaterThan(e0);
      // The store now knows Redis is unavailable: the next misses do not wait at all.
      expect(b.shared.available()).toBe(false);
      const t1 = Date.now();
      expect((await get(b, fresh())).headers['x-cache']).toBe('MISS');
      expect(Date.now() - t1).toBeLessThan(TIMEOUT_MS);
    } finally {
      redis.thaw();
    }
    await available(a, b);
  });

  test('killed Redis: every answer 200 from the first level or the model, never 5xx; the purge says 503; Redis back: shared again', async () => {
    const path = fresh();
    const s0 = (await l2(a)).store;
    const cached = await get(a, path);
    await stored(a, s0);
    await redis.kill();
    await waitFor('replicas see Redis gone', 5_000, () => !a.shared.available() && !b.shared.available(), 20);
    const e0 = (await l2(b)).error;
    const statuses: number[] = [];
    for (let i = 0; i < 10; i++) {
      statuses.push((await send('GET', `${b.url}${i % 2 ? path : fresh()}`, { headers: { authorization: ann } })).status);
      statuses.push((await send('GET', `${a.url}${path}`, { headers: { authorization: ann } })).status);
    }
    expect(statuses.every((s) => s === 200)).toBe(true);
    expect((await l2(b)).error).toBeGreaterThan(e0);
    // A still answers from its first level.
    expect((await get(a, path)).echo.n).toBe(cached.echo.n);
    const purge = await send('DELETE', `${a.url}/router/cache/shop/items`, { headers: { authorization: bearer('ada', 'admin') } });
    expect(purge.status).toBe(503);
    expect(purge.headers['content-type']).toBe('application/problem+json');
    expect(purge.json.shared).toBe('failed');
    // With --workers n, each worker's purge fails the same way: the cluster purge then answers 503 cluster-incomplete.
    const local = workerLocalHandlers({ store: a.store, cache: a.ps.cache, sharedCache: a.ps.dataPath.sharedCache, audit: a.ps.audit, metrics: a.ps.metrics });
    await expect(Promise.resolve(local.purge({ service: 'shop/items' }))).rejects.toThrow();

    await redis.restart();
    await available(a, b);
    const next = fresh();
    const s1 = (await l2(a)).store;
    const m = await get(a, next);
    await stored(a, s1);
    const h = await get(b, next);
    expect([h.headers['cache-status'], h.echo.n]).toEqual(['kea-shared; hit, kea; fwd=uri-miss', m.echo.n]);
  });
});
