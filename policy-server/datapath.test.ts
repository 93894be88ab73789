/**
 * Data path against a real HTTP backend: authorization matrix (the seed's students/teachers),
 * validation matrix (400 with every failing pointer, 415, 413), cache correctness (key order,
 * no leak across identities, no-cache, invalidation on config change, admin-only stats),
 * forwarding (502/504, header hygiene, identity headers, request ids, streaming), response
 * validation, audit records and the management API.
 */
import { flushLogs } from '../lib/log.js';
import { irisBody, irisService, schoolService, bearer, INTERNAL_TOKEN } from './testing/fixtures.js';
import { send } from './testing/http.js';
import { startStack, type Stack } from './testing/stack.js';

let s: Stack;
const student = bearer('sam', 'student');
const teacher = bearer('tess', 'teacher');
const admin = bearer('ada', 'admin');

beforeAll(async () => {
  s = await startStack({ services: [schoolService(), irisService()] });
});
afterAll(async () => {
  await s.close();
});

const lastSeen = () => s.backend.seen[s.backend.seen.length - 1];

describe('authorization matrix (seed: students get_grades, teachers set_grades)', () => {
  const grade = { subject: 'math', grade: 4 };
  test.each([
    ['anonymous', undefined, 'GET', 401],
    ['student', student, 'GET', 200],
    ['teacher', teacher, 'GET', 200],
    ['admin (no student/teacher role)', admin, 'GET', 403],
    ['anonymous', undefined, 'POST', 401],
    ['student', student, 'POST', 403],
    ['teacher', teacher, 'POST', 200],
  ])('%s %s', async (_who, auth, method, status) => {
    const before = s.backend.count();
    const r = await send(method, `${s.url}/school/grades/alice`, {
      headers: { ...(auth ? { authorization: auth } : {}), 'x-kea-operation': method === 'GET' ? 'school/grades/get_grades' : 'school/grades/set_grades' },
      body: method === 'POST' ? grade : undefined,
    });
    expect(r.status).toBe(status);
    if (status === 200) {
      expect(r.json.path).toBe('/grades/alice');
      expect(s.backend.count()).toBe(before + 1);
    } else {
      expect(r.headers['content-type']).toBe('application/problem+json');
      expect(r.json.status).toBe(status);
      expect(s.backend.count()).toBe(before); // never reached the model
    }
    if (status === 401) expect(r.headers['www-authenticate']).toMatch(/^Bearer/);
  });

  test('same matrix without x-kea-operation (method + path template matcher)', async () => {
    expect((await send('GET', `${s.url}/school/grades/alice`, { headers: { authorization: student } })).status).toBe(200);
    expect((await send('POST', `${s.url}/school/grades/alice`, { headers: { authorization: student }, body: grade })).status).toBe(403);
    expect((await send('POST', `${s.url}/school/grades/alice`, { headers: { authorization: teacher }, body: grade })).status).toBe(200);
  });

  test('browser without session is redirected to login; script gets 401', async () => {
    const r = await send('GET', `${s.url}/school/grades/alice?term=2`, { headers: { accept: 'text/html,application/xhtml+xml' } });
    expect(r.status).toBe(302);
    expect(r.headers.location).toBe(`/auth/login?returnTo=${encodeURIComponent('/school/grades/alice?term=2')}`);
    const j = await send('GET', `${s.url}/school/grades/alice`, { headers: { accept: 'application/json' } });
    expect(j.status).toBe(401);
  });

  test('invalid token → 401 with RFC 6750 error; auth backend failure → 503', async () => {
    const r = await send('GET', `${s.url}/school/grades/alice`, { headers: { authorization: 'Bearer bad' } });
    expect(r.status).toBe(401);
    expect(r.headers['www-authenticate']).toContain('error="invalid_token"');
    expect(r.json.authError).toBe('invalid_token');
    const b = await send('GET', `${s.url}/school/grades/alice`, { headers: { authorization: 'Bearer boom' } });
    expect(b.status).toBe(503);
  });

  test('public operation ignores a bad token and needs none', async () => {
    expect((await send('GET', `${s.url}/iris/health`)).status).toBe(200);
    expect((await send('GET', `${s.url}/iris/health`, { headers: { authorization: 'Bearer bad' } })).status).toBe(200);
  });

  test('x-kea-operation must agree with method and path', async () => {
    const r = await send('GET', `${s.url}/iris/health`, { headers: { 'x-kea-operation': 'school/grades/get_grades', authorization: teacher } });
    expect(r.status).toBe(404);
    const u = await send('GET', `${s.url}/iris/health`, { headers: { 'x-kea-operation': 'nope/nope/nope' } });
    expect(u.status).toBe(404);
  });
});

describe('validation matrix', () => {
  const post = (body: unknown, headers: Record<string, string> = {}) =>
    send('POST', `${s.url}/school/grades/alice`, { headers: { authorization: teacher, ...headers }, body });

  test('every failing pointer is listed', async () => {
    const before = s.backend.count();
    const r = await post({ subject: '', grade: 9, extra: true, comment: 7 });
    expect(r.status).toBe(400);
    expect(r.headers['content-type']).toBe('application/problem+json');
    expect(r.json.code).toBe('validation-failed');
    expect(r.json.requestId).toBe(r.headers['x-request-id']);
    const ptrs = (r.json.errors as Array<{ in: string; pointer: string }>).map((e) => `${e.in}:${e.pointer}`).sort();
    expect(ptrs).toEqual(['body:/comment', 'body:/extra', 'body:/grade', 'body:/subject']);
    expect(s.backend.count()).toBe(before);
  });

  test.each([
    ['missing required', { subject: 'x' }, ['body:/grade']],
    ['wrong type', { subject: 'x', grade: '4' }, ['body:/grade']],
    ['null where nullable is fine', { subject: 'x', grade: 3, comment: null }, []],
    ['array instead of object', [1, 2], ['body:']],
    ['string body', 'hello', ['body:']],
  ])('%s', async (_n, body, want) => {
    const r = await send('POST', `${s.url}/school/grades/alice`, {
      headers: { authorization: teacher, 'content-type': 'application/json' },
      body: typeof body === 'string' ? JSON.stringify(body) : body,
    });
    if (want.length === 0) expect(r.status).toBe(200);
    else {
      expect(r.status).toBe(400);
      expect((r.json.errors as Array<{ in: string; pointer: string }>).map((e) => `${e.in}:${e.pointer}`)).toEqual(want);
    }
  });

  test('broken JSON, empty required body, deep nesting, __proto__', async () => {
    const broken = await send('POST', `${s.url}/school/grades/alice`, {
      headers: { authorization: teacher, 'content-type': 'application/json' },
      body: '{"subject":',
    });
    expect(broken.status).toBe(400);
    expect(broken.json.errors[0]).toEqual({ in: 'body', pointer: '', message: 'is not valid JSON' });
    const empty = await send('POST', `${s.url}/school/grades/alice`, {
      headers: { authorization: teacher, 'content-type': 'application/json', 'content-length': '0' },
    });
    expect(empty.status).toBe(400);
    expect(empty.json.errors[0].message).toBe('is required');
    const deep = await send('POST', `${s.url}/school/grades/alice`, {
      headers: { authorization: teacher, 'content-type': 'application/json' },
      body: '['.repeat(5000) + ']'.repeat(5000),
    });
    expect(deep.status).toBe(400);
    expect(deep.json.errors[0].message).toMatch(/nesting deeper/);
    const proto = await send('POST', `${s.url}/school/grades/alice`, {
      headers: { authorization: teacher, 'content-type': 'application/json' },
      body: '{"subject":"m","grade":3,"__proto__":{"admin":true}}',
    });
    expect(proto.status).toBe(400);
    expect(proto.json.errors[0].pointer).toBe('/__proto__');
    const ctor = await send('POST', `${s.url}/iris/predict-raw`, {
      headers: { authorization: teacher, 'content-type': 'application/json' },
      body: '{"a":{"constructor":{"prototype":{"x":1}}}}',
    });
    expect(ctor.status).toBe(400);
    expect(ctor.json.errors[0].pointer).toBe('/a/constructor');
    expect(({} as Record<string, unknown>).admin).toBeUndefined();
  });

  test('415 for a wrong content type, 413 over the body limit', async () => {
    const ct = await post('subject=math', { 'content-type': 'application/x-www-form-urlencoded' });
    expect(ct.status).toBe(415);
    expect(ct.json.code).toBe('unsupported-media-type');
    const vendorJson = await post({ subject: 'm', grade: 2 }, { 'content-type': 'application/vnd.kea+json; charset=utf-8' });
    expect(vendorJson.status).toBe(200);
    const big = await send('POST', `${s.url}/iris/small`, { body: { pad: 'x'.repeat(100) } });
    expect(big.status).toBe(413);
    // A declared length is refused unread and the connection kept (the body is discarded):
    // closing it made nginx answer 502 (policy-server/datapath/steps/body.ts, issue 11).
    expect(big.headers.connection).not.toBe('close');
    expect(big.json.limit).toBe(64);
    const ok = await send('POST', `${s.url}/iris/small`, { body: { a: 1 } });
    expect(ok.status).toBe(200);
  });

  test('413 on a chunked body stops reading early', async () => {
    const r = await send('POST', `${s.url}/iris/small`, {
      headers: { 'content-type': 'application/json', 'transfer-encoding': 'chunked' },
      body: Buffer.alloc(256 * 1024, 0x20),
    });
    expect(r.status).toBe(413);
  });

  test('path, query and header parameters (coerced, arrays, enums, required)', async () => {
    const ok = await send('GET', `${s.url}/iris/items/7?limit=10&tags=a&tags=c`);
    expect(ok.status).toBe(200);
    expect(ok.json).toEqual({ path: '/items/7', query: '?limit=10&tags=a&tags=c' });
    const bad = await send('GET', `${s.url}/iris/items/zero?tags=z&limit=1000`);
    expect(bad.status).toBe(400);
    const got = (bad.json.errors as Array<{ in: string; pointer: string }>).map((e) => `${e.in}:${e.pointer}`).sort();
    expect(got).toEqual(['path:/id', 'query:/limit', 'query:/tags/0']);
    const missing = await send('GET', `${s.url}/iris/items/3`);
    expect(missing.status).toBe(400);
    expect(missing.json.errors).toEqual([{ in: 'query', pointer: '/limit', message: 'is required' }]);
    const hdr = await send('GET', `${s.url}/school/grades/alice?term=9`, { headers: { authorization: student, 'x-school': 'east' } });
    expect(hdr.status).toBe(400);
    expect((hdr.json.errors as Array<{ in: string; pointer: string }>).map((e) => `${e.in}:${e.pointer}`).sort()).toEqual(['header:/x-school', 'query:/term']);
    const badEnc = await send('GET', `${s.url}/iris/items/%E0%A4%A?limit=1`);
    expect(badEnc.status).toBe(400);
    const dots = await send('GET', s.url, { rawPath: '/iris/items/..?limit=1' });
    expect(dots.status).toBe(400);
  });

  test('unknown path → 404 problem; known path, wrong method → 405', async () => {
    const nf = await send('GET', `${s.url}/nowhere`);
    expect(nf.status).toBe(404);
    expect(nf.headers['content-type']).toBe('application/problem+json');
    const na = await send('DELETE', `${s.url}/iris/health`);
    expect(na.status).toBe(405);
  });
});

describe('cache', () => {
  const body = irisBody();
  const shuffled = { options: { tag: 'bench', explain: false }, features: body.features, model: 'iris' };

  test('MISS then HIT, key order irrelevant, no-cache bypasses and refreshes', async () => {
    s.ps.cache.purgeAll();
    const a = await send('POST', `${s.url}/iris/predict`, { headers: { authorization: student }, body });
    expect(a.status).toBe(200);
    expect(a.headers['x-cache']).toBe('MISS');
    expect(a.headers['x-kea-revision']).toBe('v1');
    const before = s.backend.count();
    const b = await send('POST', `${s.url}/iris/predict`, { headers: { authorization: teacher }, body: JSON.stringify(shuffled, null, 3) });
    expect(b.status).toBe(415); // no content-type given for a string body
    const c = await send('POST', `${s.url}/iris/predict`, {
      headers: { authorization: teacher, 'content-type': 'application/json' },
      body: JSON.stringify(shuffled, null, 3),
    });
    expect(c.headers['x-cache']).toBe('HIT');
    expect(c.json).toEqual(a.json); // same n: served from cache
    expect(s.backend.count()).toBe(before);
    const d = await send('POST', `${s.url}/iris/predict`, { headers: { authorization: teacher, 'cache-control': 'no-cache' }, body });
    expect(d.headers['x-cache']).toBe('MISS');
    expect(d.json.n).not.toBe(a.json.n);
    const e = await send('POST', `${s.url}/iris/predict`, { headers: { authorization: student }, body });
    expect(e.headers['x-cache']).toBe('HIT');
    expect(e.json.n).toBe(d.json.n); // no-cache refreshed the entry
    expect(Number(e.headers.age)).toBeGreaterThanOrEqual(0);
  });

  test('scope identity: no leak across identities', async () => {
    const sam1 = await send('POST', `${s.url}/iris/predict-mine`, { headers: { authorization: student }, body });
    const tess1 = await send('POST', `${s.url}/iris/predict-mine`, { headers: { authorization: teacher }, body });
    expect(sam1.headers['x-cache']).toBe('MISS');
    expect(tess1.headers['x-cache']).toBe('MISS');
    expect(tess1.json.n).not.toBe(sam1.json.n);
    const sam2 = await send('POST', `${s.url}/iris/predict-mine`, { headers: { authorization: student }, body });
    const tess2 = await send('POST', `${s.url}/iris/predict-mine`, { headers: { authorization: teacher }, body });
    expect(sam2.headers['x-cache']).toBe('HIT');
    expect(sam2.json.n).toBe(sam1.json.n);
    expect(tess2.json.n).toBe(tess1.json.n);
  });

  test('shared scope never serves an unauthorized caller', async () => {
    const r = await send('POST', `${s.url}/iris/predict`, { body });
    expect(r.status).toBe(401);
  });

  test('different bodies and query strings are different entries', async () => {
    const other = irisBody(3);
    const r = await send('POST', `${s.url}/iris/predict`, { headers: { authorization: student }, body: other });
    expect(r.headers['x-cache']).toBe('MISS');
  });

  test('a memoised valid body is re-validated after the schema changes', async () => {
    const r1 = await send('POST', `${s.url}/iris/predict`, { headers: { authorization: student }, body });
    expect(r1.status).toBe(200);
    const strict = structuredClone(irisService('iv-strict'));
    const predict = strict.operations.find((o) => o.operationId === 'predict')!;
    (predict.requestBody!.schema as { properties: { features: { maxItems: number } } }).properties.features.maxItems = 2;
    s.configure(schoolService(), strict);
    const r2 = await send('POST', `${s.url}/iris/predict`, { headers: { authorization: student }, body });
    expect(r2.status).toBe(400);
    expect(r2.json.errors[0].pointer).toBe('/features');
    s.configure(schoolService(), irisService());
  });

  test('config change of a service drops its entries; /router/cache is admin-only', async () => {
    await send('POST', `${s.url}/iris/predict`, { headers: { authorization: student }, body });
    const hit = await send('POST', `${s.url}/iris/predict`, { headers: { authorization: student }, body });
    expect(hit.headers['x-cache']).toBe('HIT');
    expect((await send('GET', `${s.url}/router/cache`, { headers: { authorization: student } })).status).toBe(403);
    expect((await send('GET', `${s.url}/router/cache`)).status).toBe(401);
    const stats = await send('GET', `${s.url}/router/cache`, { headers: { authorization: admin } });
    expect(stats.status).toBe(200);
    expect(stats.json.perService['ml/iris'].entries).toBeGreaterThan(0);
    expect(stats.json.hits).toBeGreaterThan(0);
    s.configure(schoolService(), irisService('iv2'));
    const after = await send('GET', `${s.url}/router/cache`, { headers: { authorization: admin } });
    expect(after.json.perService['ml/iris']?.entries ?? 0).toBe(0);
    const miss = await send('POST', `${s.url}/iris/predict`, { headers: { authorization: student }, body });
    expect(miss.headers['x-cache']).toBe('MISS');
    const purge = await send('DELETE', `${s.url}/router/cache/ml/iris`, { headers: { authorization: admin } });
    expect(purge.json.purged).toBe(1);
    const again = await send('POST', `${s.url}/iris/predict`, { headers: { authorization: student }, body });
    expect(again.headers['x-cache']).toBe('MISS');
  });
});

describe('forwarding', () => {
  test('HEAD on a GET operation is forwarded as HEAD, and answered without a body', async () => {
    const r = await send('HEAD', `${s.url}/school/grades/alice`, { headers: { authorization: student } });
    expect(r.status).toBe(200);
    expect(r.text).toBe('');
    expect(lastSeen().method).toBe('HEAD');
  });

  test('header hygiene: forged identity/internal headers stripped, identity set, hop-by-hop dropped', async () => {
    const r = await send('GET', `${s.url}/school/grades/alice?term=2`, {
      headers: {
        authorization: student,
        'x-kea-user': 'root',
        'x-kea-roles': 'teacher',
        'x-kea-internal-token': 'forged',
        'x-kea-anything': 'x',
        'x-request-id': 'req-123',
        connection: 'keep-alive, x-drop-me',
        'x-drop-me': 'secret',
        'proxy-authorization': 'Basic Zm9v',
        te: 'trailers',
        cookie: 'kea_session=abc',
        'x-custom': 'kept',
      },
    });
    expect(r.status).toBe(200);
    expect(r.headers['x-request-id']).toBe('req-123');
    const h = lastSeen().headers;
    expect(lastSeen().url).toBe('/grades/alice?term=2');
    expect(h.host).toBe('grades.school.kea.internal');
    expect(h['x-kea-internal-token']).toBe(INTERNAL_TOKEN);
    expect(h['x-kea-user']).toBe('sam');
    expect(h['x-kea-roles']).toBe('student');
    expect(h['x-kea-auth']).toBe('bearer');
    expect(h['x-kea-anything']).toBeUndefined();
    expect(h['x-kea-operation']).toBeUndefined();
    expect(h['x-request-id']).toBe('req-123');
    expect(h['x-drop-me']).toBeUndefined();
    expect(h['proxy-authorization']).toBeUndefined();
    expect(h.te).toBeUndefined();
    expect(h.authorization).toBeUndefined();
    expect(h.cookie).toBeUndefined();
    expect(h['x-custom']).toBe('kept');
    expect(h['x-forwarded-for']).toBe('127.0.0.1');
  });

  test('request id generated when absent or unsafe', async () => {
    const r = await send('GET', `${s.url}/iris/health`, { headers: { 'x-request-id': 'bad id with spaces' } });
    expect(r.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    expect(lastSeen().headers['x-request-id']).toBe(r.headers['x-request-id']);
  });

  test('anonymous caller of a public operation: no identity headers upstream', async () => {
    await send('GET', `${s.url}/iris/health`, { headers: { 'x-kea-user': 'root' } });
    expect(lastSeen().headers['x-kea-user']).toBeUndefined();
  });

  test('a response body that stalls past the operation timeout is cut (streamed) or answered 504 (buffered for the cache)', async () => {
    let t0 = Date.now();
    const streamed = await send('GET', `${s.url}/iris/stall`).then(
      (r) => ({ status: r.status, text: r.text, error: undefined as string | undefined }),
      (err: Error) => ({ status: 0, text: '', error: err.message }),
    );
    expect(Date.now() - t0).toBeLessThan(900);
    // Headers (200) and the first bytes were already sent: the connection is cut mid-body.
    expect(streamed.text).not.toBe('{"stalled":true}');
    if (!streamed.error) expect(streamed.status).toBe(200);
    t0 = Date.now();
    const buffered = await send('GET', `${s.url}/iris/stall-cached`);
    expect(Date.now() - t0).toBeLessThan(900);
    expect(buffered.status).toBe(504);
    expect(buffered.json.code).toBe('upstream-timeout');
  });

  test('504 after the operation timeout; 502 when the upstream is down', async () => {
    const t0 = Date.now();
    const r = await send('GET', `${s.url}/iris/slow`);
    expect(r.status).toBe(504);
    expect(r.json.code).toBe('upstream-timeout');
    expect(Date.now() - t0).toBeLessThan(900);
    // A second server pointed at a closed port.
    const { startStack: start } = await import('./testing/stack.js');
    const down = await start({ services: [irisService()] });
    await down.backend.close();
    const d = await send('GET', `${down.url}/iris/health`);
    expect(d.status).toBe(502);
    expect(d.headers['content-type']).toBe('application/problem+json');
    expect(d.json.code).toBe('upstream-unavailable');
    await down.ps.close();
  });

  test('deadlines of concurrent exchanges are independent (waiting list: first, middle and last entries leave in any order)', async () => {
    // Slow requests time out (504) while fast ones interleaved with them finish (200) and leave
    // the waiting list from every position; a second wave checks the list is still intact.
    for (let wave = 0; wave < 2; wave++) {
      const t0 = Date.now();
      const calls = [];
      for (let i = 0; i < 12; i++) calls.push(send('GET', `${s.url}/iris/${i % 3 === 1 ? 'slow' : 'health'}`));
      const statuses = (await Promise.all(calls)).map((r) => r.status);
      expect(statuses).toEqual(Array.from({ length: 12 }, (_, i) => (i % 3 === 1 ? 504 : 200)));
      expect(Date.now() - t0).toBeLessThan(900);
    }
  });

  test('large responses stream through (8 MiB)', async () => {
    const r = await send('GET', `${s.url}/iris/big?mb=8`);
    expect(r.status).toBe(200);
    expect(r.body.length).toBe(8 * 1024 * 1024);
  });

  test('/services/{ns}/{name}/predict maps to the default operation', async () => {
    const r = await send('POST', `${s.url}/services/ml/iris/predict`, { headers: { authorization: student, 'cache-control': 'no-cache' }, body: irisBody(2) });
    expect(r.status).toBe(200);
    expect(lastSeen().url).toBe('/predict');
    const bad = await send('POST', `${s.url}/services/ml/iris/predict`, { headers: { authorization: student }, body: { features: 'x' } });
    expect(bad.status).toBe(400);
    expect((await send('POST', `${s.url}/services/ml/none/predict`, { body: {} })).status).toBe(404);
  });
});

describe('response validation', () => {
  test('enforce: a drifting model answer becomes 502 with the failing pointers', async () => {
    expect((await send('GET', `${s.url}/iris/info?shape=good`)).status).toBe(200);
    const bad = await send('GET', `${s.url}/iris/info?shape=bad`);
    expect(bad.status).toBe(502);
    expect(bad.json.code).toBe('invalid-upstream-response');
    expect((bad.json.errors as Array<{ in: string; pointer: string }>).map((e) => `${e.in}:${e.pointer}`).sort()).toEqual([
      'response:/classes',
      'response:/name',
    ]);
    expect((await send('GET', `${s.url}/iris/info?shape=notjson`)).status).toBe(502);
  });
  test('log: passes the answer through and logs a warning', async () => {
    const r = await send('GET', `${s.url}/iris/info-log?shape=bad`);
    expect(r.status).toBe(200);
    expect(r.json).toEqual({ name: 42 });
    flushLogs();
    expect(s.logs.some((l) => l.message === 'upstream response does not match the schema' && l.operation === 'ml/iris/info_log')).toBe(true);
  });
});

describe('audit and management API', () => {
  test('audit end record has the required fields and never credentials', async () => {
    await send('POST', `${s.url}/iris/predict-nocache`, {
      headers: { authorization: student, 'x-request-id': 'audit-1', cookie: 'kea_session=SECRET' },
      body: irisBody(1),
    });
    flushLogs();
    const rec = s.logs.find((l) => l.requestId === 'audit-1' && l.message === 'request end')!;
    expect(rec).toMatchObject({
      level: 'info',
      user: 'sam',
      operation: 'ml/iris/predict_nocache',
      service: 'ml/iris',
      revision: 'v1',
      status: 200,
      outcome: 'forwarded',
    });
    expect(typeof rec.latencyMs).toBe('number');
    const all = JSON.stringify(s.logs);
    expect(all).not.toContain('test:sam');
    expect(all).not.toContain('SECRET');
    await send('POST', `${s.url}/school/grades/bob`, { headers: { authorization: teacher, 'x-request-id': 'audit-2' }, body: { grade: 0 } });
    flushLogs();
    const inv = s.logs.find((l) => l.requestId === 'audit-2')!;
    expect(inv.status).toBe(400);
    expect((inv.validation as unknown[]).length).toBe(2);
  });

  test('/logs/{ns}/{name} is admin-only and returns the newest records', async () => {
    expect((await send('GET', `${s.url}/logs/ml/iris`, { headers: { authorization: student } })).status).toBe(403);
    const r = await send('GET', `${s.url}/logs/ml/iris?limit=5`, { headers: { authorization: admin } });
    expect(r.status).toBe(200);
    expect(r.json.records.length).toBe(5);
    expect(r.json.records[0].service).toBe('ml/iris');
  });

  test('/services, /services/{id}, /router/loadbalancer, /router/validate', async () => {
    const list = await send('GET', `${s.url}/services`, { headers: { authorization: student } });
    expect(list.json.services.map((x: { id: string }) => x.id)).toEqual(['ml/iris', 'school/grades']);
    expect((await send('GET', `${s.url}/services`)).status).toBe(401);
    const one = await send('GET', `${s.url}/services/school/grades`, { headers: { authorization: student } });
    expect(one.json.operations.map((o: { operationId: string }) => o.operationId)).toEqual(['get_grades', 'set_grades']);
    const lb = await send('GET', `${s.url}/router/loadbalancer/ml/iris`, { headers: { authorization: student } });
    expect(lb.json.traffic).toEqual([
      { revision: 'v1', weight: 80 },
      { revision: 'v2', weight: 20 },
    ]);
    const v = await send('POST', `${s.url}/router/validate`, {
      headers: { authorization: student },
      body: { operation: 'school/grades/set_grades', body: { subject: 'm', grade: 7 }, params: { path: { student: 'BOB' } } },
    });
    expect(v.status).toBe(200);
    expect(v.json.valid).toBe(false);
    expect(v.json.errors.map((e: { in: string; pointer: string }) => `${e.in}:${e.pointer}`).sort()).toEqual(['body:/grade', 'path:/student']);
    const ok = await send('POST', `${s.url}/router/validate`, { headers: { authorization: student }, body: { service: 'ml/iris', body: irisBody(1) } });
    expect(ok.json).toEqual({ operation: 'ml/iris/predict', valid: true, errors: [] });
  });

  test('/healthz, /readyz, /metrics (admin port)', async () => {
    expect((await send('GET', `${s.adminUrl}/healthz`)).json).toEqual({ status: 'ok' });
    const rz = await send('GET', `${s.adminUrl}/readyz`);
    expect(rz.status).toBe(200);
    expect(rz.json.snapshot.services).toBe(2);
    const m = await send('GET', `${s.adminUrl}/metrics`);
    expect(m.text).toMatch(/kea_policy_requests_total\{operation="ml\/iris\/predict",outcome="cache_hit",code="200"\} \d+/);
    expect(m.text).toMatch(/kea_policy_request_duration_seconds_bucket\{le="0.005",operation="school\/grades\/get_grades",outcome="forwarded"\}/);
    expect(m.text).toMatch(/kea_policy_cache_hit_ratio 0\.\d+/);
    expect(m.text).toMatch(/kea_policy_validation_failures_total\{operation="school\/grades\/set_grades",in="body"\} \d+/);
  });
});

describe('debug level: start and end records tied by request id', () => {
  test('one start and one end record per request', async () => {
    const d = await startStack({ services: [irisService()], logLevel: 'debug' });
    try {
      await send('GET', `${d.url}/iris/health`, { headers: { 'x-request-id': 'dbg-1' } });
      flushLogs();
      const recs = d.logs.filter((l) => l.requestId === 'dbg-1');
      expect(recs.map((r) => `${r.level}:${r.message}`)).toEqual(['debug:request start', 'info:request end']);
      expect(recs[0].operation).toBe('ml/iris/health');
    } finally {
      await d.close();
    }
  });
});
