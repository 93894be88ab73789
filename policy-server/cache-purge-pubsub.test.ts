/**
 * A cache purge reaches the first level of every replica (issue 13; datapath/shared-cache.ts
 * `followPurges`, policy-server/redis.ts `subscribe`): two policy servers (`createPolicyServer`,
 * each its own first level and its own Redis connections, as two replicas) in front of one real
 * HTTP upstream (testing/echo-upstream.ts: every answer numbered), and one real `redis-server`
 * (dev/testing/redis.ts) that a test kills and restarts. The purge is sent to replica A only;
 * the assertions are on what replica B answers next.
 */
import { Redis } from 'ioredis';
import { createLogger } from '../lib/log.js';
import { POLICY_API_VERSION, policyOperation as op, type PolicyService } from '../lib/policy/config.js';
import { startRedis, type TestRedis } from '../dev/testing/redis.js';
import { waitFor } from '../dev/testing/wait.js';
import { PURGE_CHANNEL } from './datapath/shared-cache.js';
import { startEchoUpstream, type Echo, type EchoUpstream } from './testing/echo-upstream.js';
import { bearer, INTERNAL_TOKEN } from './testing/fixtures.js';
import { startReplica, type Replica } from './testing/replica.js';
import { send, type RawResponse } from './testing/http.js';

const HOST = 'items.shop.kea.internal';
const reader = { mode: 'restricted' as const, roles: ['reader'] };

function shop(): PolicyService {
  const id = { name: 'id', in: 'path' as const, required: true, schema: { type: 'string', pattern: '^[0-9a-z]{1,16}$' } };
  return {
    apiVersion: POLICY_API_VERSION,
    id: 'shop/items',
    namespace: 'shop',
    name: 'items',
    title: 'Items',
    version: '1.0.0',
    basePath: '/t',
    configVersion: 'c1',
    mode: 'enforce',
    upstream: { host: HOST },
    traffic: [{ revision: 'v1', weight: 100 }],
    authorization: {},
    operations: [
      op({
        operationId: 'get_item',
        method: 'GET',
        path: '/t/items/{id}',
        upstreamPath: '/items/{id}',
        access: reader,
        cache: { ttlSeconds: 60, scope: 'shared' },
        parameters: [id],
      }),
    ],
  };
}

let redis: TestRedis;
let upstream: EchoUpstream;
let a: Replica;
let b: Replica;
const logger = createLogger('policy-server', { level: 'error' });
const ann = bearer('ann', 'reader');
const admin = bearer('ada', 'admin');

const replica = (): Promise<Replica> => startReplica({ services: [shop()], redisUrl: redis.url, upstreamUrl: upstream.url, timeoutMs: 100, logger });

/** Waits until both replicas use Redis and both are subscribed to the purge channel. */
async function ready(): Promise<void> {
  await waitFor('Redis available to both replicas', 10_000, () => a.shared.available() && b.shared.available(), 20);
  const peek = new Redis(redis.url);
  try {
    await waitFor('both replicas subscribed', 10_000, async () => Number(((await peek.pubsub('NUMSUB', PURGE_CHANNEL)) as [string, number])[1]) >= 2, 20);
  } finally {
    peek.disconnect();
  }
}

async function get(r: Replica, path: string): Promise<RawResponse & { echo: Echo }> {
  const res = await send('GET', `${r.url}${path}`, { headers: { authorization: ann } });
  expect(res.status).toBe(200);
  return { ...res, echo: JSON.parse(res.text) as Echo };
}

async function l2Stores(r: Replica): Promise<number> {
  return (await r.ps.metrics.cacheL2.get()).values.find((v) => v.labels.result === 'store')?.value ?? 0;
}

async function resyncs(r: Replica): Promise<number> {
  return (await r.ps.metrics.cacheL1Resyncs.get()).values[0]?.value ?? 0;
}

let serial = 0;
/**
 * A fresh path answered once by A (a miss, stored in Redis) and twice by B (a second-level hit
 * that fills B's first level, then a first-level hit): B's first level holds it.
 */
async function heldByB(): Promise<{ path: string; n: number }> {
  const path = `/t/items/k${++serial}`;
  const s0 = await l2Stores(a);
  const first = await get(a, path);
  await waitFor('the second-level store', 5_000, async () => (await l2Stores(a)) > s0, 10);
  expect((await get(b, path)).headers['cache-status']).toBe('kea-shared; hit, kea; fwd=uri-miss');
  const l1 = await get(b, path);
  expect([l1.headers['x-cache'], l1.headers['cache-status'], l1.echo.n]).toEqual(['HIT', 'kea; hit', first.echo.n]);
  return { path, n: first.echo.n };
}

beforeAll(async () => {
  redis = await startRedis();
  upstream = await startEchoUpstream({ token: INTERNAL_TOKEN, hosts: { [HOST]: 'shop' } });
  a = await replica();
  b = await replica();
  await ready();
});

afterAll(async () => {
  for (const r of [a, b]) {
    await r?.ps.close();
    await r?.shared.close();
  }
  await upstream?.close();
  await redis?.stop();
});

describe('a purge sent to one replica reaches the first level of the other (Redis pub/sub)', () => {
  test.each([
    ['one service', '/router/cache/shop/items'],
    ['the whole cache', '/router/cache'],
  ])('purge of %s on A: the next answer of B is a miss, not its first-level entry', async (_what, purgePath) => {
    const { path, n } = await heldByB();
    const purge = await send('DELETE', `${a.url}${purgePath}`, { headers: { authorization: admin } });
    expect(purge.status).toBe(200);
    // Delivery is asynchronous (at most once, about when the purge is answered): B's first level
    // loses the service's entries once the message has arrived; without pub/sub it never does.
    await waitFor('the purge applied by B', 5_000, () => (b.ps.cache.stats().perService['shop/items']?.entries ?? 0) === 0, 5);
    const calls = upstream.count();
    const next = await get(b, path);
    expect([next.headers['x-cache'], next.headers['cache-status']]).toEqual(['MISS', undefined]);
    expect(next.echo.n).not.toBe(n);
    expect(upstream.count()).toBe(calls + 1);
  });

  test('a purge of another service leaves B’s entries alone', async () => {
    const { path, n } = await heldByB();
    const purge = await send('DELETE', `${a.url}/router/cache/shop/other`, { headers: { authorization: admin } });
    expect(purge.status).toBe(200);
    const next = await get(b, path);
    expect([next.headers['cache-status'], next.echo.n]).toEqual(['kea; hit', n]);
  });

  test('Redis restarted: B drops its whole first level when its subscription is back (purges may have been missed)', async () => {
    const { path, n } = await heldByB();
    const r0 = await resyncs(b);
    await redis.kill();
    await waitFor('B sees Redis gone', 5_000, () => !b.shared.available(), 20);
    // Redis down: B still answers from its first level, never an error.
    expect([(await get(b, path)).headers['cache-status'], (await get(b, path)).echo.n]).toEqual(['kea; hit', n]);
    expect(b.shared.stats().errors.get('subscribe') ?? 0).toBeGreaterThan(0);
    await redis.restart();
    await ready();
    await waitFor('B resynchronised its first level', 10_000, async () => (await resyncs(b)) > r0, 20);
    expect(b.ps.cache.stats().entries).toBe(0);
    const next = await get(b, path);
    expect(next.headers['x-cache']).toBe('MISS');
    expect(next.echo.n).not.toBe(n);
  });
});
