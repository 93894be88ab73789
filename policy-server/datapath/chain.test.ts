/**
 * The data path as a chain of policy steps (datapath/chain.ts): which steps each kind of
 * operation gets, in which order; that a chain is compiled once per operation, not per request;
 * that the steps finish synchronously on their fast path (a public call, a cached token, a
 * cache hit: dispatched or answered before `handle` returns); and that an `AuthError` is
 * recognised by its class. Against a real policy server (testing/stack.ts) and real backend.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Identity } from '../auth/index.js';
import { AuthError } from '../auth/index.js';
import { compileService, type CompiledOperation } from '../snapshot/build.js';
import { bearer, configMapsFor, irisService, schoolService, testAuthenticator } from '../testing/fixtures.js';
import { send } from '../testing/http.js';
import { startStack, type Stack } from '../testing/stack.js';
import { compileChain, STEPS } from './chain.js';
import type { RequestAuthenticator } from './handler.js';
import { authenticateStep } from './steps/authenticate.js';
import { forwardStep } from './steps/forward.js';

/** The test authenticator plus the synchronous answer for tokens it has verified before (like auth/bearer.ts's token cache). */
function cachingAuthenticator(): RequestAuthenticator {
  const inner = testAuthenticator();
  const known = new Map<string, Identity>();
  return {
    async authenticate(req: IncomingMessage): Promise<Identity | null> {
      const id = await inner.authenticate(req);
      if (id && req.headers.authorization) known.set(req.headers.authorization, id);
      return id;
    },
    authenticateCached(req: IncomingMessage): Identity | null | undefined {
      const h = req.headers.authorization;
      return h === undefined ? null : known.get(h);
    },
    loginUrl: (returnTo: string) => inner.loginUrl(returnTo),
  };
}

/** A limit no test reaches (the chain, not the counting, is under test here; see policy-server/rate-limit.test.ts). */
const roomyLimit = (scope: string) => [{ name: 'per-minute', requests: 100_000, periodMs: 60_000, burst: 0, key: 'identity' as const, scope }];

/** School with `set_grades` also rate-limited and cached per identity: an operation with every policy. */
function school() {
  const sch = schoolService();
  return {
    ...sch,
    operations: sch.operations.map((o) =>
      o.operationId === 'set_grades' ? { ...o, cache: { ttlSeconds: 60, scope: 'identity' as const }, rateLimits: roomyLimit('school/grades/set_grades') } : o,
    ),
  };
}

/** Iris plus `health_cached`: a public, cacheable GET whose backend answers. */
function iris(configVersion = 'iv1') {
  const ir = irisService(configVersion);
  const health = ir.operations.find((o) => o.operationId === 'health')!;
  return {
    ...ir,
    operations: [
      ...ir.operations,
      { ...health, operationId: 'health_cached', path: '/iris/health-cached', cache: { ttlSeconds: 60, scope: 'shared' as const } },
      { ...health, operationId: 'health_limited', path: '/iris/health-limited', rateLimits: roomyLimit('ml/iris') },
    ],
  };
}

let s: Stack;
beforeAll(async () => {
  s = await startStack({ services: [iris(), school()], auth: cachingAuthenticator() });
});
afterAll(async () => {
  await s.close();
});

const opOf = (key: string): CompiledOperation => {
  const op = s.store.current.operations.get(key);
  if (!op) throw new Error(`no operation ${key}`);
  return op;
};
const names = (key: string): string[] => s.ps.dataPath.chainOf(opOf(key)).steps.map((st) => st.name);

describe('which steps an operation gets, in order', () => {
  test.each([
    // public: credentials optional (the identity still reaches the backend), no authorize
    ['public, no parameters, no requestBody', 'ml/iris/health', ['authenticate', 'read-body', 'forward', 'audit']],
    ['public, with parameters', 'ml/iris/items', ['authenticate', 'parameters', 'read-body', 'forward', 'audit']],
    ['public, cacheable', 'ml/iris/health_cached', ['authenticate', 'read-body', 'cache', 'forward', 'audit']],
    // a public operation's limit counts anonymous callers by address, so it needs no authorize
    ['public, rate-limited', 'ml/iris/health_limited', ['authenticate', 'rate-limit', 'read-body', 'forward', 'audit']],
    ['authenticated, body validation', 'ml/iris/predict_nocache', ['authenticate', 'authorize', 'body', 'forward', 'audit']],
    ['authenticated, body validation, cacheable', 'ml/iris/predict', ['authenticate', 'authorize', 'body', 'cache', 'forward', 'audit']],
    ['restricted, with parameters', 'school/grades/get_grades', ['authenticate', 'authorize', 'parameters', 'read-body', 'forward', 'audit']],
    ['restricted, every policy', 'school/grades/set_grades', ['authenticate', 'authorize', 'rate-limit', 'parameters', 'body', 'cache', 'forward', 'audit']],
  ])('%s (%s)', (_what, key, expected) => {
    expect(names(key)).toEqual(expected);
  });

  test('passthrough: the service has no operations, so no chain (the gateway routes it without the policy server)', () => {
    const svc = compileService(configMapsFor(irisService('iv1', { mode: 'passthrough' }))[0]);
    expect(svc.operations.size).toBe(0);
    expect(svc.defaultOperation).toBeUndefined();
  });

  test('request phase: every step but audit, forward last; audit acts when the exchange ends', () => {
    const chain = s.ps.dataPath.chainOf(opOf('school/grades/set_grades'));
    expect(chain.request.map((st) => st.name)).toEqual(['authenticate', 'authorize', 'rate-limit', 'parameters', 'body', 'cache', 'forward']);
    expect(chain.ends.map((st) => (st as { name?: string }).name)).toEqual(['audit']);
  });

  test('the registry lists every policy once, in chain order', () => {
    expect(STEPS.map((f) => f.name)).toEqual(['authenticate', 'authorize', 'rate-limit', 'parameters', 'read-body', 'body', 'cache', 'forward', 'audit']);
  });

  test('a registry with a request step after forward is refused', () => {
    expect(() => compileChain(opOf('ml/iris/health'), s.ps.dataPath, {}, [forwardStep, authenticateStep])).toThrow('step "authenticate" follows "forward"');
  });
});

describe('compiled once per operation', () => {
  test('the same chain for every request of an operation; a new one when its service changes', async () => {
    const dp = s.ps.dataPath;
    const before = opOf('ml/iris/health');
    const chain = dp.chainOf(before);
    expect(dp.chainOf(before)).toBe(chain);
    expect((await send('GET', `${s.url}/iris/health`)).status).toBe(200);
    expect(dp.chainOf(opOf('ml/iris/health'))).toBe(chain);
    // An unchanged service keeps its compiled operations across snapshots, and so its chains.
    s.configure(iris(), school());
    expect(opOf('ml/iris/health')).toBe(before);
    expect(dp.chainOf(opOf('ml/iris/health'))).toBe(chain);
    // A changed one is compiled again.
    s.configure(iris('iv2'), school());
    expect(opOf('ml/iris/health')).not.toBe(before);
    expect(dp.chainOf(opOf('ml/iris/health'))).not.toBe(chain);
    expect((await send('GET', `${s.url}/iris/health`)).status).toBe(200);
    s.configure(iris(), school());
  });
});

describe('steps finish synchronously on their fast path', () => {
  /** Per request through the real server: was it dispatched upstream, or answered, before `handle` returned? */
  interface SyncSeen {
    dispatched: boolean;
    answered: boolean;
  }
  let seen: SyncSeen[] = [];
  beforeAll(() => {
    const dp = s.ps.dataPath;
    const handle = dp.handle.bind(dp);
    dp.handle = (req: IncomingMessage, res: ServerResponse, op: CompiledOperation, pathParams: readonly string[], rawQuery: string, path: string): void => {
      const lane = dp.upstream.lane(op.service.def.upstream.host);
      const inflight = lane.inflight;
      handle(req, res, op, pathParams, rawQuery, path);
      seen.push({ dispatched: lane.inflight === inflight + 1, answered: res.writableEnded });
    };
  });
  beforeEach(() => {
    seen = [];
  });

  test('a public call without credentials is dispatched before handle returns', async () => {
    expect((await send('GET', `${s.url}/iris/items/7?limit=3`)).status).toBe(200);
    expect(seen).toEqual([{ dispatched: true, answered: false }]);
  });

  test('an uncached token waits (a promise); the same token, cached, is authenticated, authorized and validated synchronously', async () => {
    const auth = { authorization: bearer('sync', 'student') };
    expect((await send('GET', `${s.url}/school/grades/alice?term=2`, { headers: auth })).status).toBe(200);
    expect((await send('GET', `${s.url}/school/grades/alice?term=2`, { headers: auth })).status).toBe(200);
    expect(seen).toEqual([
      { dispatched: false, answered: false },
      { dispatched: true, answered: false },
    ]);
  });

  test('a refusal by a synchronous step is answered before handle returns', async () => {
    const r = await send('GET', `${s.url}/school/grades/alice?term=9`, { headers: { authorization: bearer('sync', 'student') } });
    expect(r.status).toBe(400);
    expect((await send('GET', `${s.url}/school/grades/alice`, { headers: { authorization: bearer('sync', 'student'), 'x-school': 'east' } })).status).toBe(400);
    expect(seen.slice(-2)).toEqual([
      { dispatched: false, answered: true },
      { dispatched: false, answered: true },
    ]);
  });

  test('a cache miss is dispatched and a cache hit answered before handle returns', async () => {
    const miss = await send('GET', `${s.url}/iris/health-cached`);
    expect(miss.headers['x-cache']).toBe('MISS');
    const hit = await send('GET', `${s.url}/iris/health-cached`);
    expect(hit.headers['x-cache']).toBe('HIT');
    expect(seen).toEqual([
      { dispatched: true, answered: false },
      { dispatched: false, answered: true },
    ]);
  });

  test('a rate-limited operation waits for its counter (a promise), then is dispatched', async () => {
    const r = await send('GET', `${s.url}/iris/health-limited`);
    expect(r.status).toBe(200);
    expect(r.headers['ratelimit-policy']).toBe('"per-minute";q=100000;w=60');
    expect(seen).toEqual([{ dispatched: false, answered: false }]);
  });

  test('a request body is read asynchronously (the one wait of an uncached request with a body)', async () => {
    const auth = { authorization: bearer('sync', 'student') };
    expect((await send('GET', `${s.url}/school/grades/alice`, { headers: auth })).status).toBe(200);
    seen = [];
    expect((await send('POST', `${s.url}/iris/predict-nocache`, { headers: auth, body: { features: [[1, 2, 3, 4]], model: 'iris' } })).status).toBe(200);
    expect(seen).toEqual([{ dispatched: false, answered: false }]);
  });
});

describe('AuthError is recognised by its class', () => {
  let t: Stack;
  beforeAll(async () => {
    const lookalike: RequestAuthenticator = {
      authenticate(req: IncomingMessage): Promise<Identity | null> {
        // An error that only calls itself AuthError (another module's, a backend library's) is
        // a backend failure, not the caller's bad credentials.
        if (req.headers.authorization === 'Bearer lookalike')
          return Promise.reject(Object.assign(new Error('jwks fetch failed'), { name: 'AuthError', code: 'invalid_token' }));
        return Promise.reject(new AuthError('invalid_token', 'token rejected'));
      },
      loginUrl: (r: string) => `/auth/login?returnTo=${encodeURIComponent(r)}`,
    };
    t = await startStack({ services: [irisService()], auth: lookalike });
  });
  afterAll(async () => {
    await t.close();
  });

  test('a real AuthError is 401 with WWW-Authenticate; a lookalike is 503 auth-unavailable', async () => {
    const real = await send('POST', `${t.url}/iris/predict-nocache`, { headers: { authorization: 'Bearer x' }, body: {} });
    expect(real.status).toBe(401);
    expect(real.headers['www-authenticate']).toMatch(/^Bearer realm="kea", error="invalid_token"/);
    const fake = await send('POST', `${t.url}/iris/predict-nocache`, { headers: { authorization: 'Bearer lookalike' }, body: {} });
    expect(fake.status).toBe(503);
    expect((fake.json as { code: string }).code).toBe('auth-unavailable');
    expect(fake.headers['retry-after']).toBe('1');
  });
});
