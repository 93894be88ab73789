/**
 * Hostile schemas and hostile bodies through a real policy server over HTTP (issue 10, items
 * 10 and 11):
 * - ReDoS: a tenant's `^(\w+\s?)*$` against a 28-character input took seconds on V8's
 *   backtracking engine, blocking every tenant. With RE2 (lib/openapi/patterns.ts) it costs
 *   milliseconds, in a body property, a query parameter and a `patternProperties` key, and
 *   another tenant's request is not kept waiting.
 * - A pattern RE2 cannot run (lookahead) is a config error naming its JSON pointer; the server
 *   keeps serving the other services.
 * - A body failing in tens of thousands of places gets a problem of bounded size (the first
 *   20 errors plus `errorCount`), and so does its audit line; a 1 MiB body is checked up to
 *   its first error; the /logs ring stays bounded.
 */
import { flushLogs } from '../lib/log.js';
import { POLICY_API_VERSION, policyOperation as op, type PolicyService } from '../lib/policy/config.js';
import { MAX_REPORTED_ERRORS } from './datapath/params.js';
import { bearer, irisService } from './testing/fixtures.js';
import { send } from './testing/http.js';
import { startStack, type Stack } from './testing/stack.js';

const EVIL = '^(\\w+\\s?)*$';
/** 27 word characters and a non-word one (the 28 characters): seconds of backtracking for V8. */
const HOSTILE = `${'a'.repeat(27)}!`;

function evilService(extra: PolicyService['operations'] = []): PolicyService {
  return {
    apiVersion: POLICY_API_VERSION,
    id: 'evil/redos',
    namespace: 'evil',
    name: 'redos',
    title: 'Hostile schemas',
    version: '1.0.0',
    basePath: '/evil',
    configVersion: 'e1',
    mode: 'enforce',
    upstream: { host: 'redos.evil.kea.internal' },
    traffic: [],
    authorization: {},
    operations: [
      op({
        operationId: 'words',
        method: 'POST',
        path: '/evil/words',
        upstreamPath: '/predict',
        access: { mode: 'public' },
        requestBody: { required: true, contentType: 'application/json', schema: { type: 'object', properties: { text: { type: 'string', pattern: EVIL } } } },
      }),
      op({
        operationId: 'tags',
        method: 'POST',
        path: '/evil/tags',
        upstreamPath: '/predict',
        access: { mode: 'public' },
        requestBody: { required: true, contentType: 'application/json', schema: { type: 'object', patternProperties: { [EVIL]: { type: 'integer' } } } },
      }),
      op({
        operationId: 'search',
        method: 'GET',
        path: '/evil/search',
        upstreamPath: '/health',
        access: { mode: 'public' },
        parameters: [{ name: 'q', in: 'query', schema: { type: 'string', pattern: EVIL } }],
      }),
      op({
        operationId: 'numbers',
        method: 'POST',
        path: '/evil/numbers',
        upstreamPath: '/predict',
        access: { mode: 'public' },
        requestBody: { required: true, contentType: 'application/json', schema: { type: 'array', items: { type: 'string' } } },
      }),
      op({
        operationId: 'item',
        method: 'POST',
        path: '/evil/items/{id}',
        upstreamPath: '/predict',
        access: { mode: 'public' },
        parameters: [{ name: 'id', in: 'path', required: true, schema: { type: 'string' } }],
        requestBody: { required: true, contentType: 'application/json', schema: { type: 'array', items: { type: 'string' } } },
      }),
      op({
        operationId: 'closed',
        method: 'POST',
        path: '/evil/closed',
        upstreamPath: '/predict',
        access: { mode: 'public' },
        requestBody: {
          required: true,
          contentType: 'application/json',
          schema: { type: 'object', additionalProperties: false, properties: { a: { type: 'integer' } } },
        },
      }),
      ...extra,
    ],
  };
}

/** A service whose body schema uses a lookahead: RE2 cannot run it. */
const lookaheadService: PolicyService = {
  ...evilService(),
  id: 'evil/lookahead',
  name: 'lookahead',
  basePath: '/lookahead',
  upstream: { host: 'lookahead.evil.kea.internal' },
  operations: [
    op({
      operationId: 'signup',
      method: 'POST',
      path: '/lookahead/signup',
      upstreamPath: '/predict',
      access: { mode: 'public' },
      requestBody: {
        required: true,
        contentType: 'application/json',
        schema: { type: 'object', properties: { password: { type: 'string', pattern: '^(?=.*[0-9]).{8,}$' } } },
      },
    }),
  ],
};

let s: Stack;
beforeAll(async () => {
  s = await startStack({ services: [evilService(), irisService()] });
});
afterAll(async () => {
  await s.close();
});

/** Sends a request and measures its wall time, ms. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- parsed JSON of any shape, as RawResponse.json
async function timed(method: string, path: string, body?: unknown): Promise<{ status: number; json: any; ms: number; bytes: number }> {
  const t0 = performance.now();
  const r = await send(method, `${s.url}${path}`, { body });
  return { status: r.status, json: r.json, ms: performance.now() - t0, bytes: r.body.length };
}

describe('ReDoS: tenant patterns run in linear time (RE2)', () => {
  beforeAll(async () => {
    expect((await timed('POST', '/evil/words', { text: 'warm up' })).status).toBe(200);
  });

  test('a hostile pattern and input in a body property cost milliseconds; another tenant is not kept waiting', async () => {
    const [evil, other] = await Promise.all([timed('POST', '/evil/words', { text: HOSTILE }), timed('GET', '/iris/health')]);
    expect(evil.status).toBe(400);
    expect(evil.json.errors).toEqual([{ in: 'body', pointer: '/text', message: `must match pattern "${EVIL}"` }]);
    expect(other.status).toBe(200);
    // V8's backtracking engine took seconds for this input (and blocked the health call too).
    expect(evil.ms).toBeLessThan(500);
    expect(other.ms).toBeLessThan(500);
    // Linear, not merely lucky: a 100,000-character hostile input is still fast.
    const long = await timed('POST', '/evil/words', { text: `${'a'.repeat(100_000)}!` });
    expect(long.status).toBe(400);
    expect(long.ms).toBeLessThan(1000);
    expect((await timed('POST', '/evil/words', { text: 'hello world' })).status).toBe(200);
  });

  test('a hostile query parameter costs milliseconds', async () => {
    const r = await timed('GET', `/evil/search?q=${HOSTILE}`);
    expect(r.status).toBe(400);
    expect(r.json.errors[0]).toMatchObject({ in: 'query', pointer: '/q' });
    expect(r.ms).toBeLessThan(500);
    expect((await timed('GET', '/evil/search?q=hello%20world')).status).toBe(200);
  });

  test('a hostile patternProperties key costs milliseconds', async () => {
    const r = await timed('POST', '/evil/tags', { [HOSTILE]: 'not checked: the key does not match', hello: 'x' });
    expect(r.status).toBe(400);
    expect(r.json.errors).toEqual([{ in: 'body', pointer: '/hello', message: 'must be integer' }]);
    expect(r.ms).toBeLessThan(500);
  });
});

describe('a pattern RE2 cannot run is a config error, not a crash', () => {
  afterAll(() => s.configure(evilService(), irisService()));

  test('the lookahead service is reported by JSON pointer; the others keep serving', async () => {
    s.configure(evilService(), irisService(), lookaheadService);
    // What /readyz lists as configErrors (on the admin port): the live snapshot's errors.
    const errors = s.store.current.errors;
    const mine = errors.filter((e) => e.message.includes('lookahead') || e.configMap.includes('lookahead'));
    expect(mine).toHaveLength(1);
    expect(mine[0].message).toContain(
      'operation "signup": requestBody.schema#/properties/password/pattern: pattern "^(?=.*[0-9]).{8,}$" uses a lookaround assertion',
    );
    expect((await send('POST', `${s.url}/lookahead/signup`, { body: { password: 'secret123' } })).status).toBe(404);
    expect((await timed('GET', '/iris/health')).status).toBe(200);
    expect((await timed('POST', '/evil/words', { text: 'hello' })).status).toBe(200);
  });
});

describe('validation errors are bounded (first 20 plus a count)', () => {
  const line = (requestId: string) => {
    flushLogs();
    return s.logs.find((l) => l.requestId === requestId && l.message === 'request end')!;
  };

  test('a 60 KB body failing in 30,000 places: a response under 16 KiB and a bounded audit line', async () => {
    const body = Buffer.from(JSON.stringify(new Array(30_000).fill(1)));
    const r = await send('POST', `${s.url}/evil/numbers`, { body, headers: { 'content-type': 'application/json', 'x-request-id': 'many-errors' } });
    expect(r.status).toBe(400);
    expect(r.body.length).toBeLessThan(16 * 1024);
    expect(r.json.errors).toHaveLength(MAX_REPORTED_ERRORS);
    expect(r.json.errors[0]).toEqual({ in: 'body', pointer: '/0', message: 'must be string' });
    expect(r.json.errorCount).toBe(30_000);
    expect(r.json.detail).toBe('30000 body error(s)');
    const rec = line('many-errors');
    expect(JSON.stringify(rec).length).toBeLessThan(16 * 1024);
    expect(rec.validation).toHaveLength(MAX_REPORTED_ERRORS);
    expect(rec.validationCount).toBe(30_000);
  });

  test('a 1 MiB body is checked up to its first error only', async () => {
    const body = Buffer.from(JSON.stringify(new Array(500_000).fill(1)));
    expect(body.length).toBeGreaterThan(1_000_000);
    const t0 = performance.now();
    const r = await send('POST', `${s.url}/evil/numbers`, { body, headers: { 'content-type': 'application/json', 'x-request-id': 'huge-body' } });
    const ms = performance.now() - t0;
    expect(r.status).toBe(400);
    expect(r.body.length).toBeLessThan(16 * 1024);
    expect(r.json.errors).toEqual([{ in: 'body', pointer: '/0', message: 'must be string' }]);
    expect(r.json.errorCount).toBe(1);
    expect(r.json.detail).toMatch(/^1 body error\(s\); validation stopped at the first error/);
    expect(JSON.stringify(line('huge-body')).length).toBeLessThan(16 * 1024);
    expect(ms).toBeLessThan(2000);
  });

  test('a 200,000-character property name is clipped in the pointer', async () => {
    const key = 'k'.repeat(200_000);
    const r = await send('POST', `${s.url}/evil/closed`, { body: { [key]: 1 }, headers: { 'x-request-id': 'long-key' } });
    expect(r.status).toBe(400);
    expect(r.body.length).toBeLessThan(16 * 1024);
    expect(r.json.errors).toHaveLength(1);
    expect(r.json.errors[0].pointer).toMatch(/^\/k+…$/);
    expect(r.json.errors[0].message).toBe('is not allowed');
    expect(JSON.stringify(line('long-key')).length).toBeLessThan(16 * 1024);
  });

  test('the /logs ring of a service stays under its byte bound after many large records', async () => {
    const body = Buffer.from(JSON.stringify(new Array(100).fill(1)));
    const longPath = `/evil/items/${'x'.repeat(6000)}`;
    for (let i = 0; i < 250; i++) {
      const r = await send('POST', `${s.url}${longPath}`, { body, headers: { 'content-type': 'application/json' } });
      expect(r.status).toBe(400);
    }
    const logs = await send('GET', `${s.url}/logs/evil/redos?limit=1000`, { headers: { authorization: bearer('ada', 'admin') } });
    expect(logs.status).toBe(200);
    // ~3 KB records (path clipped to 2048 characters, 20 failures): the byte bound, not the
    // 200-record count, limits the ring.
    expect(logs.json.records.length).toBeGreaterThan(10);
    expect(logs.json.records.length).toBeLessThan(200);
    expect(JSON.stringify(logs.json.records).length).toBeLessThanOrEqual(256 * 1024);
  });
});
