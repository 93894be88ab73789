/**
 * The shared store (policy-server/redis.ts) against a real redis-server (dev/testing/redis.ts):
 * availability follows the connection and the calls, a slow or dead Redis never holds a call
 * longer than the timeout, one log line per change of state, a password from the option.
 */
import { PassThrough } from 'node:stream';
import { createLogger, flushLogs } from '../lib/log.js';
import { startRedis, type TestRedis } from '../dev/testing/redis.js';
import { waitFor } from '../dev/testing/wait.js';
import { openSharedStore, redactRedisUrl, type SharedStore } from './redis.js';

function logSink(): { lines: () => Record<string, unknown>[]; logger: ReturnType<typeof createLogger> } {
  const out = new PassThrough();
  const raw: string[] = [];
  out.on('data', (c: Buffer) => raw.push(...c.toString('utf8').split('\n').filter(Boolean)));
  const logger = createLogger('test', { stream: out, level: 'info' });
  return {
    logger,
    lines: () => {
      flushLogs();
      return raw.map((l) => JSON.parse(l) as Record<string, unknown>);
    },
  };
}

describe('shared store (real redis-server)', () => {
  let redis: TestRedis;
  const stores: SharedStore[] = [];
  beforeAll(async () => {
    redis = await startRedis();
  });
  afterAll(async () => {
    for (const s of stores) await s.close();
    await redis.stop();
  });

  test('available once connected; a killed Redis fails calls at once; back within a bounded wait; one log line per change', async () => {
    const { logger, lines } = logSink();
    const store = openSharedStore({ url: redis.url, timeoutMs: 50, log: logger });
    stores.push(store);
    await waitFor('store available', 5000, () => store.available());
    expect(await store.client.set('kea:test:a', '1')).toBe('OK');

    await redis.kill();
    await waitFor('store unavailable after the kill', 5000, () => !store.available());
    const t0 = performance.now();
    await expect(store.client.get('kea:test:a')).rejects.toThrow();
    expect(performance.now() - t0).toBeLessThan(50); // no offline queue: fails at once
    await new Promise((r) => setTimeout(r, 1000)); // several reconnect attempts fail meanwhile

    await redis.restart();
    const { ms } = await (async () => {
      const s = Date.now();
      await waitFor('store available again', 5000, () => store.available(), 20);
      return { ms: Date.now() - s };
    })();
    expect(ms).toBeLessThan(2500); // reconnect backoff capped at 2 s (+ jitter)

    // A loaded machine may fail the first handshake (its commands have the 50 ms timeout too):
    // then the first line is an `unavailable`; never two lines for one state.
    const states = lines()
      .filter((r) => String(r.message).startsWith('shared store'))
      .map((r) => r.message);
    expect(states.slice(-3)).toEqual([
      'shared store (Redis) available',
      'shared store (Redis) unavailable: rate limits per process, cache first level only',
      'shared store (Redis) available again',
    ]);
    expect(states.length).toBeLessThanOrEqual(4);
    expect(store.stats().errors.get('connection')).toBeGreaterThan(0);
  });

  test('a frozen (slow) Redis: the call fails after the timeout, failed() marks the store down until PING answers again', async () => {
    const { logger, lines } = logSink();
    const store = openSharedStore({ url: redis.url, timeoutMs: 40, log: logger });
    stores.push(store);
    await waitFor('store available', 5000, () => store.available());
    redis.freeze();
    try {
      const t0 = performance.now();
      const err = await store.client.get('kea:test:b').then(
        () => undefined,
        (e: unknown) => e,
      );
      const took = performance.now() - t0;
      expect(String(err)).toMatch(/timed out/i);
      expect(took).toBeLessThan(40 + 60);
      store.failed('test-op', err);
      store.failed('test-op', err);
      expect(store.available()).toBe(false);
      expect(store.stats().errors.get('test-op')).toBe(2);
      await new Promise((r) => setTimeout(r, 600)); // probes time out meanwhile
      expect(store.available()).toBe(false);
    } finally {
      redis.thaw();
    }
    await waitFor('store available after the thaw', 3000, () => store.available(), 20);
    const states = lines()
      .filter((r) => String(r.message).startsWith('shared store'))
      .slice(-3);
    expect(states.map((r) => r.level)).toEqual(['info', 'warn', 'info']); // up, down (once for two failures), up
    expect(states[1]).toMatchObject({ op: 'test-op' });
  });

  test('password from the option (requirepass); a wrong one never makes the store available; no password in logs', async () => {
    const secured = await startRedis({ password: 's3cret-pw' });
    try {
      const ok = openSharedStore({ url: secured.url, password: 's3cret-pw', timeoutMs: 50, log: logSink().logger });
      stores.push(ok);
      await waitFor('authenticated store available', 5000, () => ok.available());
      expect(await ok.client.ping()).toBe('PONG');

      const { logger, lines } = logSink();
      const bad = openSharedStore({ url: `redis://:wrong-pw@127.0.0.1:${secured.port}`, timeoutMs: 50, log: logger });
      stores.push(bad);
      await new Promise((r) => setTimeout(r, 800));
      expect(bad.available()).toBe(false);
      const text = JSON.stringify(lines());
      expect(text).not.toContain('wrong-pw');
      expect(redactRedisUrl('rediss://u:pw@h:6380/0')).toBe('rediss://u:***@h:6380/0');
    } finally {
      await secured.stop();
    }
  });

  test('refuses a URL that is not redis:// or rediss://', () => {
    expect(() => openSharedStore({ url: 'http://127.0.0.1:6379', timeoutMs: 50, log: logSink().logger })).toThrow(/redis:\/\/ or rediss:\/\//);
  });
});
