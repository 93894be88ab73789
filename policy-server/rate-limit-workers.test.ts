/**
 * Rate limits with `--workers 2` (policy-server/cluster.ts) and the shared store from the
 * command line: the compiled server (dist/, build first: `npm run build`) started as
 * `node dist/policy-server/main.js --workers 2` with `KEA_REDIS_URL` and `KEA_REDIS_PASSWORD`,
 * a real redis-server that requires the password (dev/testing/redis.ts), a real backend. Each
 * worker opens its own connection; the limit holds over both; `/metrics` aggregates the
 * store's metrics over the workers.
 */
import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { startRedis, type TestRedis } from '../dev/testing/redis.js';
import { waitFor } from '../dev/testing/wait.js';
import { irisService, INTERNAL_TOKEN, policyServerArgs, startBackend, writeConfigDir, type Backend } from './testing/fixtures.js';
import { send } from './testing/http.js';
import { spawnPolicyServer } from './testing/process.js';

/** Iris with a limit of 6 per minute on `health`, every caller together. */
function iris() {
  const svc = irisService('rl-workers');
  return {
    ...svc,
    operations: svc.operations.map((o) =>
      o.operationId === 'health'
        ? { ...o, rateLimits: [{ name: 'per-minute', requests: 6, periodMs: 60_000, burst: 0, key: 'api' as const, scope: 'ml/iris' }] }
        : o,
    ),
  };
}

describe('--workers 2 with --redis-url: one limit over both workers', () => {
  let redis: TestRedis;
  let backend: Backend;
  let dir: string;
  let child: ChildProcessWithoutNullStreams;
  let records: Array<Record<string, unknown>> = [];
  let stderr = () => '';

  beforeAll(async () => {
    redis = await startRedis({ password: 'workers-pw' });
    backend = await startBackend({ requireToken: INTERNAL_TOKEN, quiet: true });
    dir = await mkdtemp(join(tmpdir(), 'kea-rl-workers-'));
    await writeConfigDir(join(dir, 'cfg'), iris());
    ({ child, records, stderr } = spawnPolicyServer(
      ['--workers', '2', ...policyServerArgs({ upstreamUrl: backend.url, configDir: join(dir, 'cfg'), stateDir: join(dir, 'state') })],
      { KEA_REDIS_URL: redis.url, KEA_REDIS_PASSWORD: 'workers-pw', KEA_REDIS_TIMEOUT_MS: '1000' },
    ));
    await waitFor(
      'both workers listening with Redis available',
      60_000,
      () =>
        (records.filter((r) => r.message === 'worker listening').length === 2 &&
          records.filter((r) => r.message === 'shared store (Redis) available').length === 2) ||
        (child.exitCode !== null && Promise.reject(new Error(stderr()))),
      25,
    );
  });
  afterAll(async () => {
    if (child && child.exitCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    }
    await backend?.close();
    await redis?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('each worker has its own connection; 6 pass over both workers, then 429 from both', async () => {
    const port = records.find((r) => r.message === 'worker listening')!.port as number;
    const url = `http://127.0.0.1:${port}`;
    const probe = new Redis({ port: redis.port, password: 'workers-pw' });
    try {
      const clients = String(await probe.client('LIST')).split('\n');
      // Per worker: its data connection and its pub/sub one (the cache's purges).
      expect(clients.filter((l) => l.includes('name=kea-policy-server '))).toHaveLength(2);
      expect(clients.filter((l) => l.includes('name=kea-policy-server-subscriber '))).toHaveLength(2);
    } finally {
      probe.disconnect();
    }
    const answers: Array<{ status: number; id: string }> = [];
    for (let i = 0; i < 10; i++) {
      const r = await send('GET', `${url}/iris/health`, { agent: false }); // a new connection each: the primary deals them round-robin
      answers.push({ status: r.status, id: r.headers['x-request-id'] as string });
    }
    expect(answers.map((a) => a.status)).toEqual([200, 200, 200, 200, 200, 200, 429, 429, 429, 429]);
    const pids = await waitFor('audit records of all 10', 5000, () => {
      const recs = records.filter((r) => r.message === 'request end' && answers.some((a) => a.id === r.requestId));
      return recs.length === 10 && recs;
    });
    expect(new Set(pids.filter((r) => r.status === 200).map((r) => r.pid)).size).toBe(2); // both workers admitted some
    expect(new Set(pids.filter((r) => r.status === 429).map((r) => r.pid)).size).toBe(2); // and both refused

    const admin = records.find((r) => r.message === 'policy server listening')!.adminPort as number;
    const metrics = (await send('GET', `http://127.0.0.1:${admin}/metrics`, { agent: false })).text;
    expect(metrics).toMatch(/^kea_redis_available 1$/m);
    expect(metrics).toMatch(/^kea_rate_limited_total\{service="ml\/iris",operation="health",identity_class="anonymous"\} 4$/m);
  });
});
