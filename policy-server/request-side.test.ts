/**
 * The request side of the data path against a real policy server over HTTP and a real HTTP
 * upstream (issue 10, items 1, 9, 15 and the low items "risky request headers" and "charset"):
 * - canonical request path: encoded separators, dot segments, empty segments, controls,
 *   invalid or overlong UTF-8 and `;` are refused with 400 before routing; accepted paths are
 *   matched decoded and forwarded re-encoded deterministically;
 * - repeated non-array query and header parameters are refused; array values are all checked;
 * - prototype-pollution keys are found after parsing (JSON escapes cannot hide them), also
 *   for schemas the closed-schema shortcut would trust;
 * - method-override, URL-rewrite, client forwarding and underscore headers never reach the
 *   upstream;
 * - a JSON body in another charset than UTF-8 gets 415.
 * The end-to-end counterpart through the real gateway to a real FastAPI backend is the
 * "differential path" block of e2e/kea.e2e.test.ts.
 */
import { flushLogs } from '../lib/log.js';
import type { PolicyService } from '../lib/policy/config.js';
import { POLICY_API_VERSION, policyOperation as op } from '../lib/policy/config.js';
import { canonicalPath, encodeSegment, isRefusal } from './snapshot/path-router.js';
import { closedDepth } from './snapshot/schema-bound.js';
import { bearer } from './testing/fixtures.js';
import { send, type RawResponse } from './testing/http.js';
import { startStack, type Stack } from './testing/stack.js';

const student = bearer('sam', 'student');
const teacher = bearer('tess', 'teacher');

/** A schema the closed-schema analysis would trust if it ignored enum literals' keys. */
const pollutedEnum = { enum: [JSON.parse('{"__proto__":{"polluted":true}}') as unknown] };

function service(): PolicyService {
  return {
    apiVersion: POLICY_API_VERSION,
    id: 't/req',
    namespace: 't',
    name: 'req',
    title: 'Request side',
    version: '1.0.0',
    basePath: '/t',
    configVersion: 'r1',
    mode: 'enforce',
    upstream: { host: 'req.t.kea.internal' },
    traffic: [{ revision: 'v1', weight: 100 }],
    authorization: {},
    operations: [
      op({
        operationId: 'get_grades',
        method: 'GET',
        path: '/t/grades/{student}',
        upstreamPath: '/grades/{student}',
        access: { mode: 'restricted', roles: ['student', 'teacher'] },
        parameters: [{ name: 'student', in: 'path', required: true, schema: { type: 'string', maxLength: 64 } }],
      }),
      op({
        operationId: 'get_private',
        method: 'GET',
        path: '/t/grades/{student}/private',
        upstreamPath: '/grades/{student}/private',
        access: { mode: 'restricted', roles: ['teacher'] },
        parameters: [{ name: 'student', in: 'path', required: true, schema: { type: 'string', maxLength: 64 } }],
      }),
      op({
        operationId: 'items',
        method: 'GET',
        path: '/t/items/{id}',
        upstreamPath: '/items/{id}',
        access: { mode: 'public' },
        parameters: [
          { name: 'id', in: 'path', required: true, schema: { type: 'integer', minimum: 1 } },
          { name: 'limit', in: 'query', schema: { type: 'integer', minimum: 1, maximum: 100 } },
          { name: 'tags', in: 'query', schema: { type: 'array', items: { type: 'string', enum: ['a', 'b'] } } },
          { name: 'x-lang', in: 'header', schema: { type: 'string', enum: ['en', 'fr'] } },
        ],
      }),
      op({
        operationId: 'echo_open',
        method: 'POST',
        path: '/t/echo-open',
        upstreamPath: '/grades/echo-open',
        access: { mode: 'public' },
        requestBody: { required: true, contentType: 'application/json', schema: { type: 'object' } },
      }),
      op({
        operationId: 'echo_closed',
        method: 'POST',
        path: '/t/echo-closed',
        upstreamPath: '/grades/echo-closed',
        access: { mode: 'public' },
        requestBody: {
          required: true,
          contentType: 'application/json',
          schema: { type: 'object', additionalProperties: false, properties: { a: { type: 'integer' } } },
        },
      }),
      op({
        operationId: 'echo_enum',
        method: 'POST',
        path: '/t/echo-enum',
        upstreamPath: '/grades/echo-enum',
        access: { mode: 'public' },
        requestBody: { required: true, contentType: 'application/json', schema: pollutedEnum },
      }),
    ],
  };
}

let s: Stack;
beforeAll(async () => {
  s = await startStack({ services: [service()] });
});
afterAll(async () => {
  await s.close();
});

/** Sends `rawPath` as the request target exactly as written (no client-side normalisation). */
const get = (rawPath: string, headers: Record<string, string | string[]> = {}): Promise<RawResponse> => send('GET', s.url, { rawPath, headers });
const lastSeen = () => s.backend.seen[s.backend.seen.length - 1];

describe('canonical request path (item 1)', () => {
  test('the encoded-slash bypass: a student cannot reach the teacher-only route with %2F', async () => {
    expect((await get('/t/grades/alice/private', { authorization: student })).status).toBe(403);
    for (const viaHeader of [false, true]) {
      const before = s.backend.count();
      const r = await get('/t/grades/alice%2Fprivate', { authorization: student, ...(viaHeader ? { 'x-kea-operation': 't/req/get_grades' } : {}) });
      expect(r.status).toBe(400);
      expect(r.headers['content-type']).toBe('application/problem+json');
      expect(r.json.code).toBe('validation-failed');
      expect(r.json.errors).toEqual([{ in: 'path', pointer: '', message: expect.stringContaining('encoded "/"') }]);
      expect(s.backend.count()).toBe(before);
    }
  });

  test.each([
    ['%2F (lower-case hex)', '/t/grades/alice%2fprivate'],
    ['%5C', '/t/grades/alice%5Cprivate'],
    ['raw backslash', '/t/grades/alice\\private'],
    ['%00', '/t/grades/alice%00'],
    ['encoded newline', '/t/grades/alice%0A'],
    ['encoded DEL', '/t/grades/alice%7F'],
    ['encoded C1 control (NEL)', '/t/grades/alice%C2%85'],
    ['.. segment', '/t/grades/../grades/alice'],
    ['. segment', '/t/grades/./alice'],
    ['%2e%2e segment', '/t/grades/%2e%2e/private'],
    ['.%2E segment', '/t/grades/.%2E'],
    ['%2e segment', '/t/grades/%2E/alice'],
    ['empty segment //', '/t/grades//alice'],
    ['leading //', '//t/grades/alice'],
    ['overlong "/" (%C0%AF)', '/t/grades/alice%C0%AFprivate'],
    ['overlong "." (%C0%AE%C0%AE)', '/t/grades/%C0%AE%C0%AE'],
    ['3-byte overlong "/" (%E0%80%AF)', '/t/grades/alice%E0%80%AFprivate'],
    ['UTF-16 surrogate (%ED%A0%80)', '/t/grades/%ED%A0%80'],
    ['truncated UTF-8', '/t/grades/caf%C3'],
    ['bad percent-encoding', '/t/grades/al%G1ce'],
    ['lone %', '/t/grades/alice%'],
    ['; path parameter', '/t/grades/alice;jsessionid=1'],
    ['; before a segment', '/t/grades/alice;/private'],
  ])('refused with 400 before routing: %s', async (_name, rawPath) => {
    const before = s.backend.count();
    const r = await get(rawPath, { authorization: teacher });
    expect(r.status).toBe(400);
    expect(r.headers['content-type']).toBe('application/problem+json');
    expect(r.json.errors[0].in).toBe('path');
    expect(s.backend.count()).toBe(before);
  });

  test.each([
    ['plain', '/t/grades/alice', '/grades/alice', 'alice'],
    ['an encoded unreserved character is decoded', '/t/grades/%61lice', '/grades/alice', 'alice'],
    ['an encoded literal segment matches its decoded template', '/t/gr%61des/alice', '/grades/alice', 'alice'],
    ['UTF-8, lower-case hex → upper-case hex', '/t/grades/caf%c3%a9', '/grades/caf%C3%A9', 'café'],
    ['encoded ";", "?" and "#" stay data', '/t/grades/a%3Bb%3Fc%23d', '/grades/a%3Bb%3Fc%23d', 'a;b?c#d'],
    ['a double-encoded slash is decoded once', '/t/grades/a%252Fb', '/grades/a%252Fb', 'a%2Fb'],
    ['raw characters a canonical path encodes', '/t/grades/a|b', '/grades/a%7Cb', 'a|b'],
    ['sub-delims stay as they are', "/t/grades/a!$&'()*+,=:@b", "/grades/a!$&'()*+,=:@b", "a!$&'()*+,=:@b"],
  ])('accepted and forwarded canonically: %s', async (_name, rawPath, upstream, decoded) => {
    const r = await get(rawPath, { authorization: teacher });
    expect(r.status).toBe(200);
    expect(lastSeen().url).toBe(upstream);
    const c = canonicalPath(rawPath);
    expect(isRefusal(c) ? c : c.decoded).toBe(`/t/grades/${decoded}`);
  });

  test('the literal route stays literal: an encoded-literal path to the teacher route is still teacher-only', async () => {
    expect((await get('/t/grades/alice/priv%61te', { authorization: student })).status).toBe(403);
    const t = await get('/t/grades/alice/priv%61te', { authorization: teacher });
    expect(t.status).toBe(200);
    expect(lastSeen().url).toBe('/grades/alice/private');
  });

  test('the audit record carries the canonical path', async () => {
    const r = await get('/t/grades/caf%c3%a9', { authorization: teacher, 'x-request-id': 'canon-audit-1' });
    expect(r.status).toBe(200);
    flushLogs();
    const rec = s.logs.find((l) => l.requestId === 'canon-audit-1' && l.message === 'request end');
    expect(rec?.path).toBe('/t/grades/caf%C3%A9');
  });

  test('encodeSegment round-trips through decodeURIComponent and is idempotent on its output', () => {
    for (const v of ['alice', 'café', 'a/b', 'a;b', '%2F', '😀', 'a b', '\u0000']) {
      const e = encodeSegment(v);
      expect(decodeURIComponent(e)).toBe(v);
      expect(e).not.toMatch(/[/;?#%](?![0-9A-F]{2})/);
    }
  });
});

describe('repeated query and header parameters (item 9)', () => {
  test('a repeated non-array query parameter is refused, pointing at it', async () => {
    const before = s.backend.count();
    const r = await get('/t/items/1?limit=1&limit=1000');
    expect(r.status).toBe(400);
    expect(r.json.errors).toEqual([{ in: 'query', pointer: '/limit', message: 'must be given once (not an array)' }]);
    expect(s.backend.count()).toBe(before);
    // The same value twice is still two values the backend could choose between.
    expect((await get('/t/items/1?limit=5&limit=5')).status).toBe(400);
    expect((await get('/t/items/1?limit=5')).status).toBe(200);
  });

  test('every value of an array parameter is validated, in order', async () => {
    const r = await get('/t/items/1?tags=a&tags=zzz');
    expect(r.status).toBe(400);
    expect(r.json.errors.map((e: { in: string; pointer: string }) => `${e.in}:${e.pointer}`)).toEqual(['query:/tags/1']);
    const ok = await get('/t/items/1?tags=a&tags=b');
    expect(ok.status).toBe(200);
    expect(lastSeen().url).toBe('/items/1?tags=a&tags=b');
  });

  test('a repeated non-array header parameter is refused', async () => {
    const r = await get('/t/items/1', { 'x-lang': ['en', 'fr'] });
    expect(r.status).toBe(400);
    expect(r.json.errors).toEqual([{ in: 'header', pointer: '/x-lang', message: 'must be given once (not an array)' }]);
    expect((await get('/t/items/1', { 'x-lang': 'fr' })).status).toBe(200);
  });
});

describe('prototype-pollution guard on parsed keys (item 15)', () => {
  const post = (path: string, body: string) => send('POST', `${s.url}${path}`, { headers: { 'content-type': 'application/json' }, body });

  test.each([
    ['\\u005f_proto__ (open schema)', '/t/echo-open', '{"\\u005f_proto__":{"admin":true}}', '/__proto__'],
    ['__pr\\u006fto__ nested (open schema)', '/t/echo-open', '{"a":{"__pr\\u006fto__":1}}', '/a/__proto__'],
    ['\\u0063onstructor.prototype (open schema)', '/t/echo-open', '{"\\u0063onstructor":{"prototype":{"x":1}}}', '/constructor'],
    ['plain __proto__ (open schema)', '/t/echo-open', '{"__proto__":{"admin":true}}', '/__proto__'],
    ['escaped __proto__ (closed schema)', '/t/echo-closed', '{"a":1,"\\u005f_proto__":{"admin":true}}', '/__proto__'],
    ['__proto__ admitted by an enum literal', '/t/echo-enum', '{"\\u005f_proto__":{"polluted":true}}', '/__proto__'],
  ])('%s → 400 with the key pointer; the upstream is not called', async (_n, path, body, pointer) => {
    const before = s.backend.count();
    const r = await post(path, body);
    expect(r.status).toBe(400);
    expect(r.json.errors).toEqual([{ in: 'body', pointer, message: 'is a forbidden key (prototype pollution)' }]);
    expect(s.backend.count()).toBe(before);
  });

  test('a harmless body with similar text passes', async () => {
    expect((await post('/t/echo-open', '{"note":"__proto__ constructor prototype","constructor":"a string"}')).status).toBe(200);
    expect((await post('/t/echo-closed', '{"a":1}')).status).toBe(200);
  });

  test('the closed-schema analysis refuses schemas whose literals carry pollution keys', () => {
    expect(closedDepth(pollutedEnum)).toBeUndefined();
    expect(closedDepth({ const: JSON.parse('{"constructor":{"prototype":{}}}') as unknown })).toBeUndefined();
    expect(closedDepth({ type: 'object', additionalProperties: false, properties: JSON.parse('{"__proto__":{"type":"object"}}') as unknown })).toBeUndefined();
    expect(closedDepth({ enum: [{ a: 1 }] })).toBe(2);
  });
});

describe('risky request headers are not forwarded (low item)', () => {
  test('method overrides, URL rewrites, client forwarding headers and underscore names are dropped', async () => {
    const r = await get('/t/grades/alice', {
      authorization: teacher,
      'x-http-method-override': 'DELETE',
      'x-method-override': 'DELETE',
      'x-http-method': 'DELETE',
      'x-original-url': '/grades/alice/private',
      'x-rewrite-url': '/grades/alice/private',
      'x-forwarded-host': 'evil.example',
      'x-forwarded-proto': 'https',
      'x-forwarded-port': '443',
      forwarded: 'for=1.2.3.4;host=evil.example;proto=https',
      'x-real-ip': '1.2.3.4',
      x_kea_user: 'mallory',
      x_kea_roles: 'teacher',
      'x-forwarded-for': '203.0.113.7',
      'x-custom': 'kept',
    });
    expect(r.status).toBe(200);
    const h = lastSeen().headers;
    for (const name of [
      'x-http-method-override',
      'x-method-override',
      'x-http-method',
      'x-original-url',
      'x-rewrite-url',
      'x-forwarded-host',
      'x-forwarded-proto',
      'x-forwarded-port',
      'forwarded',
      'x-real-ip',
      'x_kea_user',
      'x_kea_roles',
    ]) {
      expect([name, h[name]]).toEqual([name, undefined]);
    }
    expect(h['x-custom']).toBe('kept');
    expect(h['x-forwarded-for']).toBe('203.0.113.7, 127.0.0.1');
    expect(h['x-kea-user']).toBe('tess');
    expect(lastSeen().method).toBe('GET');
  });
});

describe('charset of JSON bodies (low item)', () => {
  const post = (ct: string, body: Buffer) => send('POST', `${s.url}/t/echo-open`, { headers: { 'content-type': ct }, body });

  test.each([
    ['application/json; charset=utf-16', Buffer.from('\ufeff{"a":1}', 'utf16le')],
    ['application/json; charset=UTF-16LE', Buffer.from('{"a":1}', 'utf16le')],
    ['application/json;charset="iso-8859-1"', Buffer.from('{"a":"\u00e9"}', 'latin1')],
  ])('%s → 415 problem', async (ct, body) => {
    const before = s.backend.count();
    const r = await post(ct, body);
    expect(r.status).toBe(415);
    expect(r.headers['content-type']).toBe('application/problem+json');
    expect(r.json.code).toBe('unsupported-media-type');
    expect(s.backend.count()).toBe(before);
  });

  test.each(['application/json', 'application/json; charset=utf-8', 'application/json; charset="UTF-8"', 'application/json;charset=utf8'])(
    '%s → accepted',
    async (ct) => {
      expect((await post(ct, Buffer.from('{"a":"é"}'))).status).toBe(200);
    },
  );
});
