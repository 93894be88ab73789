/**
 * Scale-out end to end (issue 13): the local stack (dev/stack.ts) runs a real `redis-server`
 * and TWO policy-server replicas, both endpoints of Service kea-system/kea-policy, so the
 * gateway (nginx-gateway-fabric + nginx) balances every request between them as between two
 * pods. Every asserted request goes through the gateway's public port; which replica answered
 * is read from the replicas' own logs (the audit record of the request id the test sent).
 *
 * Blocks: the response cache's second level (a miss on one replica is a hit on the other);
 * rate limits shared through Redis (N per minute across both replicas, within a stated
 * tolerance; a student's counter is not a teacher's; the 429 answer and its headers; the
 * served OpenAPI document); Redis killed under load (no 5xx, each replica enforces its own
 * share: at most 2 × N) and back (shared again); the management API with two replicas (a
 * purge through the gateway reaches every replica; /logs shows every replica's records).
 *
 * The rate-limited API is e2e/fixtures/ratelimit/kea.yaml (the path echo backend behind an
 * ApiSchema with `rateLimit`); the cache test uses the wine example.
 */
import { readFile, mkdir, cp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { REPO_ROOT } from '../dev/controlplane.js';
import {
  ARTIFACTS,
  answeredBy,
  bearer,
  hit,
  kubectl,
  measure,
  metricSum,
  pool,
  postJson,
  removeStateDir,
  replicas,
  saveMeasurements,
  scrape,
  serverSideApply,
  startE2EStack,
  until,
  type E2EStack,
  type Hit,
} from './support.js';

const run = promisify(execFile);
let S: E2EStack;
const url = (p: string) => `${S.gw}${p}`;
const json = (h: Hit): any => JSON.parse(h.text); // eslint-disable-line @typescript-eslint/no-explicit-any
let seq = 0;
/** A request id no other request of this run carries (the policy server keeps a client's valid `x-request-id`). */
const rid = (what: string) => `${what}-${Date.now().toString(36)}-${(seq++).toString(36)}`;

/** A finished exchange with the request id it was sent with. */
type Sent = Hit & { id: string };

/** GET through the gateway with a fresh request id. */
/**
 * GET through the gateway. A GET whose kept-alive connection the gateway closed before any
 * answer (nginx closes its idle connections when NGF reloads it, e.g. after a route change) is
 * sent once more, as HTTP clients do (RFC 9112 §9.3.1).
 */
async function get(path: string, token: string, what: string): Promise<Sent> {
  const id = rid(what);
  const send = () => hit(url(path), { headers: { authorization: `Bearer ${token}`, 'x-request-id': id } });
  let h = await send();
  if (h.status === 0 && /UND_ERR_SOCKET|ECONNRESET/.test(h.error ?? '')) h = await send();
  return Object.assign(h, { id });
}

/** Counts by a key. */
function countBy<T>(xs: T[], key: (x: T) => string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const x of xs) out[key(x)] = (out[key(x)] ?? 0) + 1;
  return out;
}

/** Each replica's value of a metric (sum over the samples matching `labelParts`). */
async function perReplica(name: string, ...labelParts: string[]): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const r of replicas(S)) out[r.name] = metricSum(await scrape(r), name, ...labelParts);
  return out;
}

const RL_FIXTURE = join(REPO_ROOT, 'e2e', 'fixtures', 'ratelimit');
const PATHECHO = join(REPO_ROOT, 'e2e', 'fixtures', 'pathecho');

beforeAll(async () => {
  await mkdir(ARTIFACTS, { recursive: true });
  S = await startE2EStack();
  measure('shared.stack.startMs', S.startMs, `steps: ${S.stack.steps.map((s) => `${s.step} ${s.ms}`).join(', ')}`);
  // The examples' pods are ready once the stack is up, but each replica loads the routes'
  // configuration in its own time: ten answers in a row (nginx alternates between the two).
  const auth = { authorization: `Bearer ${await bearer(S, 'teacher')}` };
  let inARow = 0;
  await until(
    'wine served by both replicas',
    60000,
    async () => {
      inARow = (await hit(url('/wine/model'), { headers: auth })).status === 200 ? inARow + 1 : 0;
      return inARow >= 10;
    },
    50,
  );
}, 240000);

afterAll(async () => {
  await saveMeasurements('measurements-shared-state.json').catch(() => undefined);
  if (!S) return;
  await S.stack.stop();
  await rm(join(ARTIFACTS, 'logs-shared-state'), { recursive: true, force: true });
  await cp(join(S.stateDir, 'logs'), join(ARTIFACTS, 'logs-shared-state'), { recursive: true }).catch(() => undefined);
  await removeStateDir(S.stateDir);
}, 120000);

describe('the stack', () => {
  test('two policy-server replicas behind the gateway, each with its own log, both sharing one Redis that requires a password', async () => {
    const rs = replicas(S);
    expect(rs.map((r) => r.name)).toEqual(['policy-server-1', 'policy-server-2']);
    expect(new Set(rs.map((r) => new URL(r.url).hostname)).size).toBe(2);
    // Both are endpoints of the Service the gateway's routes name.
    const slice = JSON.parse(await kubectl(S, ['get', 'endpointslice', 'kea-policy-kea', '-n', 'kea-system', '-o', 'json']));
    expect(slice.endpoints.flatMap((e: { addresses: string[] }) => e.addresses).sort()).toEqual(rs.map((r) => new URL(r.url).hostname).sort());
    // Redis refuses a client without the password (its URL carries none).
    const redis = S.stack.redis!;
    expect(redis.url).toMatch(/^redis:\/\/10\.213\.\d+\.1:\d+$/);
    const u = new URL(redis.url);
    const cli = async (env: NodeJS.ProcessEnv) =>
      (await run('redis-cli', ['-h', u.hostname, '-p', u.port, 'ping'], { env: { ...process.env, ...env }, timeout: 5000 })).stdout.trim();
    expect(await cli({})).toMatch(/NOAUTH/);
    expect(await cli({ REDISCLI_AUTH: (await readFile(redis.passwordFile, 'utf8')).trim() })).toBe('PONG');
    // Both replicas say they are connected to it.
    await until('both replicas connected to Redis', 20000, async () => Object.values(await perReplica('kea_redis_available')).every((v) => v === 1), 250);
    // Traffic reaches both (nginx balances between the two endpoints).
    const token = await bearer(S, 'student');
    const sent = await pool(20, 4, () => get('/wine/model', token, 'spread'));
    expect(sent.map((h) => h.status)).toEqual(sent.map(() => 200));
    const who = await answeredBy(
      S,
      sent.map((h) => h.id),
    );
    const spread = countBy([...who.values()], (x) => x);
    measure('shared.spread20', spread);
    expect(Object.keys(spread).sort()).toEqual(['policy-server-1', 'policy-server-2']);
  });
});

describe('response cache, second level in Redis', () => {
  test('a miss answered by one replica is a hit on the other, and the model is called once', async () => {
    const token = await bearer(S, 'teacher');
    const auth = { authorization: `Bearer ${token}` };
    const modelCalls = async () => json(await hit(url('/wine/model'), { headers: auth })).model_calls as number;
    // The examples' pods are ready once the stack is up; their routes may still be programming.
    await until('wine reachable through the gateway', 30000, async () => (await hit(url('/wine/model'), { headers: auth })).status === 200, 200);
    // A wine no other run sent (the first call must be a miss).
    const sample = [13.2 + Math.random() / 10, 1.78, 2.14, 11.2, 100, 2.65, 2.76, 0.26, 1.28, 4.38, 1.05, 3.4, 1050];
    const calls0 = await modelCalls();
    const predict = async (): Promise<Sent> => {
      const id = rid('l2');
      return Object.assign(await postJson(url('/wine/predict'), { samples: [sample] }, { ...auth, 'x-request-id': id }), { id });
    };
    const first = await predict();
    expect(first.status).toBe(200);
    expect(first.headers.get('x-cache')).toBe('MISS');
    const firstBy = (await answeredBy(S, [first.id])).get(first.id)!;
    expect(firstBy).toMatch(/^policy-server-\d$/);
    // Until the other replica answers (nginx picks at random): its first answer is a hit, from Redis.
    const l2Before = await perReplica('kea_cache_l2_total', 'result="hit"');
    let other: { h: Sent; by: string } | undefined;
    const seen: string[] = [];
    for (let i = 0; i < 40 && !other; i++) {
      const h = await predict();
      const by = (await answeredBy(S, [h.id])).get(h.id) ?? '?';
      seen.push(`${by} ${h.status} ${h.headers.get('x-cache')}`);
      if (by !== firstBy) other = { h, by };
      else expect(h.headers.get('x-cache')).toBe('HIT'); // the first replica's own first level
    }
    measure('shared.cacheAcrossReplicas', { first: `${firstBy} MISS`, then: seen });
    expect(other).toBeDefined();
    expect(other!.h.status).toBe(200);
    expect(other!.h.headers.get('x-cache')).toBe('HIT');
    expect(other!.h.text).toBe(first.text);
    const l2After = await perReplica('kea_cache_l2_total', 'result="hit"');
    expect(l2After[other!.by] - l2Before[other!.by]).toBeGreaterThanOrEqual(1);
    // The model ran once, for the first miss (the /wine/model reads do not use it).
    expect((await modelCalls()) - calls0).toBe(1);
  });
});

describe('rate limits shared through Redis', () => {
  /** The operation's limit (e2e/fixtures/ratelimit/kea.yaml). */
  const N = 20;
  const N_FILE = 30;
  let teacher = '';
  let student = '';
  /** The teacher's answers on the limited operation, from the first test, for the header test. */
  let teacherRun: Sent[] = [];

  beforeAll(async () => {
    const yaml = (await readFile(join(RL_FIXTURE, 'kea.yaml'), 'utf8')).replaceAll('__APP_DIR__', PATHECHO);
    await serverSideApply(S, yaml);
    [teacher, student] = [await bearer(S, 'teacher'), await bearer(S, 'student')];
    // Ready through the gateway on an operation without a limit, on both replicas (each has the configuration).
    const ready = await until(
      'the rate-limited API reachable on both replicas',
      90000,
      async () => {
        const hs = await pool(8, 4, () => get('/rl/grades/alice/private', teacher, 'ready'));
        if (!hs.every((h) => h.status === 200)) return undefined;
        const who = await answeredBy(
          S,
          hs.map((h) => h.id),
          2000,
        );
        return new Set(who.values()).size === 2 ? hs : undefined;
      },
      250,
    );
    measure('shared.rl.readyMs', Math.round(ready.ms));
  }, 120000);

  /**
   * The tolerance of a shared limit: how many answers above N a run over both replicas may
   * get. The counter is exact in Redis (rate-limiter-flexible: one atomic Lua call per request)
   * and its fixed window (60 s from the key's first request) outlasts every run here, so the
   * tolerance is 0, as long as every Redis call of the run succeeded. A call that failed or
   * took longer than --redis-timeout-ms (50 ms; a loaded 2-core machine can do that) is
   * answered by the replica's own limiter, as documented: then the run may get up to N more
   * from each replica, and the measurement says so.
   */
  const tolerance = async (n: number, errorsBefore: Record<string, number>): Promise<{ tol: number; redisErrors: number }> => {
    const now = await perReplica('kea_redis_errors_total');
    const redisErrors = Object.keys(now).reduce((a, k) => a + now[k] - (errorsBefore[k] ?? 0), 0);
    return { tol: redisErrors === 0 ? 0 : 2 * n, redisErrors };
  };

  test('a limit of N per minute holds across both replicas: N answers (within the tolerance), then 429 from either', async () => {
    const errors0 = await perReplica('kea_redis_errors_total');
    const t0 = performance.now();
    teacherRun = await pool(3 * N, 4, () => get('/rl/grades/alice', teacher, 'rl-teacher'));
    const elapsed = performance.now() - t0;
    const ok = teacherRun.filter((h) => h.status === 200);
    const limited = teacherRun.filter((h) => h.status === 429);
    const who = await answeredBy(
      S,
      teacherRun.map((h) => h.id),
    );
    const by = (hs: Sent[]) => countBy(hs, (h) => who.get(h.id) ?? '?');
    const { tol, redisErrors } = await tolerance(N, errors0);
    measure('shared.rl.teacher', {
      sent: teacherRun.length,
      ok: ok.length,
      limited: limited.length,
      okBy: by(ok),
      limitedBy: by(limited),
      elapsedMs: Math.round(elapsed),
      redisErrors,
      tolerance: tol,
    });
    expect(teacherRun.map((h) => h.status).filter((st) => st !== 200 && st !== 429)).toEqual([]);
    expect(ok.length).toBeGreaterThanOrEqual(N);
    // Per process (no sharing) it would be 2 × N.
    expect(ok.length).toBeLessThanOrEqual(N + tol);
    // Both replicas counted on the one shared counter: each answered 200s and 429s.
    expect(Object.keys(by(ok)).sort()).toEqual(['policy-server-1', 'policy-server-2']);
    expect(Object.keys(by(limited)).sort()).toEqual(['policy-server-1', 'policy-server-2']);
    // Counted per operation and identity class on each replica: the 429s of both add up.
    const counted = await perReplica('kea_rate_limited_total', 'service="default/limits"', 'operation="get_grades"', 'identity_class="client"');
    expect(Object.values(counted).reduce((a, b) => a + b, 0)).toBe(limited.length);
  });

  test("a student's limit is not a teacher's: the student still gets N answers after the teacher used up theirs", async () => {
    const errors0 = await perReplica('kea_redis_errors_total');
    const run = await pool(N + 10, 4, () => get('/rl/grades/bob', student, 'rl-student'));
    const ok = run.filter((h) => h.status === 200).length;
    const { tol, redisErrors } = await tolerance(N, errors0);
    measure('shared.rl.student', { sent: run.length, ok, limited: run.filter((h) => h.status === 429).length, redisErrors, tolerance: tol });
    expect(ok).toBeGreaterThanOrEqual(N);
    expect(ok).toBeLessThanOrEqual(N + tol);
    // The teacher is still limited.
    expect((await get('/rl/grades/alice', teacher, 'rl-teacher-again')).status).toBe(429);
  });

  test('the 429 is problem+json with Retry-After, RateLimit-Policy and RateLimit; 200s carry the headers too; an operation without a limit carries none', async () => {
    const limited = teacherRun.find((h) => h.status === 429)!;
    expect(limited).toBeDefined();
    expect(limited.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    const body = json(limited);
    expect(body).toMatchObject({ status: 429, code: 'rate-limited' });
    expect(typeof body.type).toBe('string');
    const retry = limited.headers.get('retry-after') ?? '';
    expect(retry).toMatch(/^\d+$/);
    expect(Number(retry)).toBeGreaterThanOrEqual(1);
    expect(Number(retry)).toBeLessThanOrEqual(60);
    expect(limited.headers.get('ratelimit-policy')).toBe(`"per-minute";q=${N};w=60`);
    const rl = /^"per-minute";r=(\d+);t=(\d+)$/.exec(limited.headers.get('ratelimit') ?? '');
    expect(rl).not.toBeNull();
    expect(Number(rl![1])).toBe(0);
    expect(Number(rl![2])).toBeGreaterThanOrEqual(1);
    expect(Number(rl![2])).toBeLessThanOrEqual(60);
    // A 200 of the limited operation: the same policy, what remains.
    const ok = teacherRun.find((h) => h.status === 200)!;
    expect(ok.headers.get('ratelimit-policy')).toBe(`"per-minute";q=${N};w=60`);
    const rlOk = /^"per-minute";r=(\d+);t=(\d+)$/.exec(ok.headers.get('ratelimit') ?? '');
    expect(rlOk).not.toBeNull();
    expect(Number(rlOk![1])).toBeLessThan(N);
    // No limit, no headers.
    const free = await get('/rl/grades/alice/private', teacher, 'rl-free');
    expect(free.status).toBe(200);
    expect(free.headers.get('ratelimit-policy')).toBeNull();
    expect(free.headers.get('ratelimit')).toBeNull();
  });

  test('the served OpenAPI document documents the limits and the 429 answer of each limited operation, and no 429 where there is no limit', async () => {
    const h = await hit(url('/openapi/default/limits.json'));
    expect(h.status).toBe(200);
    const doc = json(h);
    // Paths are relative to the server URL, which carries the basePath.
    expect(doc.servers[0].url).toMatch(/\/rl$/);
    /** A response object, or the component its `$ref` names (`#/components/responses/...`). */
    const resolve = (r: { $ref?: string }) => {
      if (!r?.$ref) return r;
      let o = doc;
      for (const k of r.$ref.split('/').slice(1)) o = o?.[k];
      return o;
    };
    const op = doc.paths['/grades/{student}'].get;
    const r429 = resolve(op.responses['429']);
    expect(r429).toBeDefined();
    expect(Object.keys(r429.content ?? {})).toContain('application/problem+json');
    expect(Object.keys(r429.headers ?? {}).map((k) => k.toLowerCase())).toEqual(expect.arrayContaining(['retry-after']));
    expect(op['x-kea-rate-limit']).toEqual([expect.objectContaining({ name: 'per-minute', requests: N, period: '1m' })]);
    expect(op.description ?? '').toMatch(/Rate limits?/);
    const file = doc.paths['/files/{a}/{b}'].get;
    expect(file['x-kea-rate-limit']).toEqual([expect.objectContaining({ name: 'per-minute', requests: N_FILE, period: '1m' })]);
    const free = doc.paths['/grades/{student}/private'].get;
    expect(free.responses['429']).toBeUndefined();
    expect(free['x-kea-rate-limit'] ?? []).toEqual([]);
  });

  test('Redis killed under load: no 5xx, each replica enforces its own share (at most 2 × N); Redis back: shared again', async () => {
    const log: Array<Sent & { phase: 'shared' | 'down' | 'back' }> = [];
    let phase: 'shared' | 'down' | 'back' = 'shared';
    let stop = false;
    const load = Promise.all(
      Array.from({ length: 4 }, async (_, w) => {
        for (let i = 0; !stop; i++) {
          const p = phase;
          const h = await get(`/rl/files/w${w}/${i}`, teacher, `rl-load-${p}`);
          log.push(Object.assign(h, { phase: p }));
          // A caller told to wait does not hammer: about 40 requests a second over the 4 workers.
          await new Promise((r) => setTimeout(r, 100));
        }
      }),
    );
    const errors0 = await perReplica('kea_redis_errors_total');
    await new Promise((r) => setTimeout(r, 3000));
    const { tol: sharedTol, redisErrors: sharedErrors } = await tolerance(N_FILE, errors0);
    const killAt = performance.now();
    phase = 'down';
    await S.stack.pauseChild('redis', 'SIGKILL');
    const downAt = performance.now();
    // The replicas notice (a failed call or their probe) and fall back to their own limiters.
    const noticed = await until('both replicas report Redis unavailable', 15000, async () =>
      Object.values(await perReplica('kea_redis_available')).every((v) => v === 0),
    );
    await new Promise((r) => setTimeout(r, 6000));
    const downMs = performance.now() - downAt;
    stop = true;
    await load;
    const redisErrors = await perReplica('kea_redis_errors_total');

    // Redis back (empty: it keeps no data); the replicas reconnect.
    await S.stack.resumeChild('redis');
    const back = await until(
      'both replicas report Redis available again',
      30000,
      async () => Object.values(await perReplica('kea_redis_available')).every((v) => v === 1),
      250,
    );
    phase = 'back';
    // A counter no request touched: shared again means N over both replicas, as before the outage.
    const errors1 = await perReplica('kea_redis_errors_total');
    const again = await pool(3 * N_FILE, 4, async (i) => Object.assign(await get(`/rl/items/${i}`, teacher, 'rl-back'), { phase: 'back' as const }));
    const { tol: backTol, redisErrors: backErrors } = await tolerance(N_FILE, errors1);

    const all = [...log, ...again];
    const who = await answeredBy(
      S,
      all.filter((h) => h.status === 200 || h.status === 429).map((h) => h.id),
    );
    const summary = (hs: Sent[]) => ({
      sent: hs.length,
      statuses: countBy(hs, (h) => String(h.status)),
      okBy: countBy(
        hs.filter((h) => h.status === 200),
        (h) => who.get(h.id) ?? '?',
      ),
      limitedBy: countBy(
        hs.filter((h) => h.status === 429),
        (h) => who.get(h.id) ?? '?',
      ),
    });
    // Shared: answered before Redis died. Down: the rest of the load (a request in flight when
    // Redis died is counted by its replica's own limiter, like those after).
    const shared = log.filter((h) => h.t1 < killAt);
    const down = log.filter((h) => h.t1 >= killAt);
    measure('shared.rl.redisOutage', {
      shared: summary(shared),
      down: summary(down),
      back: summary(again),
      noticedMs: Math.round(noticed.ms),
      downMs: Math.round(downMs),
      reconnectMs: Math.round(back.ms),
      redisErrors,
      redisErrorsWhileShared: sharedErrors,
      redisErrorsAfterBack: backErrors,
    });
    // No 5xx (and no failed exchange) at any time: the data path never waits on a dead Redis.
    expect(all.map((h) => h.status).filter((st) => st !== 200 && st !== 429)).toEqual([]);
    // Shared: N for the one counter in Redis (the load is well over it).
    const okShared = shared.filter((h) => h.status === 200).length;
    expect(okShared).toBeGreaterThanOrEqual(N_FILE);
    expect(okShared).toBeLessThanOrEqual(N_FILE + sharedTol);
    // Down: each replica enforces the limit on its own (its memory counter, exact): still
    // limited (429s from both), at most N each, so at most 2 × N over the two.
    const okDown = down.filter((h) => h.status === 200);
    const okDownBy = countBy(okDown, (h) => who.get(h.id) ?? '?');
    for (const n of Object.values(okDownBy)) expect(n).toBeLessThanOrEqual(N_FILE);
    expect(okDown.length).toBeLessThanOrEqual(2 * N_FILE);
    expect(
      Object.keys(
        countBy(
          down.filter((h) => h.status === 429),
          (h) => who.get(h.id) ?? '?',
        ),
      ).sort(),
    ).toEqual(['policy-server-1', 'policy-server-2']);
    // Back: one shared counter again, over both replicas.
    const okBack = again.filter((h) => h.status === 200);
    expect(okBack.length).toBeGreaterThanOrEqual(N_FILE);
    expect(okBack.length).toBeLessThanOrEqual(N_FILE + backTol);
    expect(Object.keys(countBy(okBack, (h) => who.get(h.id) ?? '?')).sort()).toEqual(['policy-server-1', 'policy-server-2']);
  }, 120000);

  afterAll(async () => {
    // Never leave Redis down for the next blocks.
    await S?.stack.resumeChild('redis').catch(() => undefined);
  });
});

describe('the management API with two replicas', () => {
  test('a cache purge through the gateway reaches every replica: the next answer of each is a miss', async () => {
    const admin = await bearer(S, 'admin');
    const token = await bearer(S, 'teacher');
    const sample = [12.9 + Math.random() / 10, 1.73, 2.04, 12.4, 92, 2.72, 3.27, 0.17, 2.91, 7.2, 1.12, 2.91, 1150];
    const predict = async (): Promise<Sent> => {
      const id = rid('purge');
      return Object.assign(await postJson(url('/wine/predict'), { samples: [sample] }, { authorization: `Bearer ${token}`, 'x-request-id': id }), { id });
    };
    /**
     * Sends until every replica has answered once; each replica's first answer: `MISS`, `HIT L2`
     * (its first level missed, Redis had it: the replica's `kea_cache_l2_total{result="hit"}`
     * moved) or `HIT L1` (its own first level answered).
     */
    const firstOfEach = async (): Promise<Record<string, string>> => {
      const out: Record<string, string> = {};
      for (let i = 0; i < 60 && Object.keys(out).length < 2; i++) {
        const l2 = await perReplica('kea_cache_l2_total', 'result="hit"');
        const h = await predict();
        expect(h.status).toBe(200);
        const by = (await answeredBy(S, [h.id])).get(h.id) ?? '?';
        const fromL2 = (await perReplica('kea_cache_l2_total', 'result="hit"'))[by] > l2[by];
        const cache = h.headers.get('x-cache') ?? '';
        out[by] ??= cache === 'HIT' ? `HIT ${fromL2 ? 'L2' : 'L1'}` : cache;
      }
      return out;
    };
    // Its routes may still be programming when this test runs alone (`-t purge`).
    const auth = { authorization: `Bearer ${token}` };
    await until('wine reachable through the gateway', 30000, async () => (await hit(url('/wine/model'), { headers: auth })).status === 200, 200);
    // A miss, stored in the first level of one replica and (not awaited by the answer) in Redis.
    const stores = async () => Object.values(await perReplica('kea_cache_l2_total', 'result="store"')).reduce((a, b) => a + b, 0);
    const stored = await stores();
    expect((await predict()).status).toBe(200);
    await until('the answer stored in Redis', 10000, async () => (await stores()) > stored, 50);
    const before = await firstOfEach(); // both hold it now (the other from Redis)
    expect(Object.keys(before).sort()).toEqual(['policy-server-1', 'policy-server-2']);
    expect(Object.values(before).every((c) => c.startsWith('HIT'))).toBe(true);
    const held = await perReplica('kea_policy_cache_entries');
    const purge = await hit(url('/router/cache/default/wine'), { method: 'DELETE', headers: { authorization: `Bearer ${admin}` } });
    expect(purge.status).toBeLessThan(300);
    // The other replica applies the purge when its message arrives (asynchronous, pub/sub):
    // each replica's first level has dropped the entry it held.
    await until(
      'the purge applied by both replicas',
      5000,
      async () => {
        const now = await perReplica('kea_policy_cache_entries');
        return Object.keys(held).every((r) => now[r] < held[r]);
      },
      20,
    );
    const after = await firstOfEach();
    measure('shared.purge', { before, purge: `${purge.status} ${purge.text.slice(0, 200)}`, after });
    // Each replica's first answer after the purge is a miss, or a hit from Redis on what the
    // other replica stored after its own miss; never the purged entry from its first level.
    expect(Object.keys(after).sort()).toEqual(['policy-server-1', 'policy-server-2']);
    expect(Object.values(after).filter((c) => c === 'HIT L1')).toEqual([]);
  });

  test('/logs through the gateway shows the audit records of every replica', async () => {
    const admin = await bearer(S, 'admin');
    const token = await bearer(S, 'student');
    const sent = await pool(20, 4, () => get('/wine/model', token, 'logs'));
    const who = await answeredBy(
      S,
      sent.map((h) => h.id),
    );
    expect(new Set(who.values()).size).toBe(2);
    // Whichever replica answers /logs.
    const views = await pool(6, 2, async () => {
      const h = await get('/logs/default/wine?limit=1000', admin, 'logs-read');
      expect(h.status).toBe(200);
      const ids = new Set((json(h).records as Array<{ requestId: string }>).map((r) => r.requestId));
      return sent.filter((s) => ids.has(s.id)).length;
    });
    measure('shared.logsViews', { sent: sent.length, seenPerRead: views });
    expect(views).toEqual(views.map(() => sent.length));
  });
});
