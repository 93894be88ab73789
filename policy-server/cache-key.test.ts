/**
 * The response cache key covers everything an upstream response can depend on (issue 10
 * item 2): regression tests through a real policy server (`createPolicyServer` on 127.0.0.1:0)
 * to a real HTTP upstream (testing/echo-upstream.ts) that echoes what it was called with.
 * Each test failed before the key covered path and header parameters, kept repeated query
 * values in order and honoured the backend's `Vary`.
 */
import { gunzipSync } from 'node:zlib';
import { createLogger } from '../lib/log.js';
import { POLICY_API_VERSION, policyOperation as op, type PolicyService } from '../lib/policy/config.js';
import { createPolicyServer, type PolicyServer } from './server.js';
import { SnapshotStore } from './snapshot/store.js';
import { startEchoUpstream, type Echo, type EchoUpstream } from './testing/echo-upstream.js';
import { bearer, configMapsFor, INTERNAL_TOKEN, testAuthenticator } from './testing/fixtures.js';
import { send, type RawResponse } from './testing/http.js';

const HOST = 'items.shop.kea.internal';
const reader = { mode: 'restricted' as const, roles: ['reader'] };
const shared = { ttlSeconds: 60, scope: 'shared' as const };

function shop(extra: Partial<PolicyService> = {}): PolicyService {
  const get = (operationId: string, path: string, upstreamPath: string) =>
    op({ operationId, method: 'GET', path: `/t${path}`, upstreamPath, access: reader, cache: shared });
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
        cache: shared,
        parameters: [
          { name: 'id', in: 'path', required: true, schema: { type: 'string', pattern: '^[0-9a-z]{1,8}$' } },
          { name: 'lang', in: 'query', schema: { type: 'array', items: { type: 'string', enum: ['en', 'fr', 'de'] } } },
          { name: 'page', in: 'query', schema: { type: 'integer', minimum: 1 } },
          { name: 'X-Lang', in: 'header', schema: { type: 'string', enum: ['en', 'fr'] } },
        ],
      }),
      get('gzip', '/gzip', '/gzip/report'),
      get('gzip_novary', '/gzip-novary', '/gzip-novary/report'),
      get('vary_star', '/vary-star', '/vary-star/x'),
      get('vary_user', '/vary-user', '/vary-user/x'),
      get('vary_client', '/vary-client', '/vary-client/x'),
    ],
    ...extra,
  };
}

let upstream: EchoUpstream;
let ps: PolicyServer;
let store: SnapshotStore;
let url: string;

beforeAll(async () => {
  upstream = await startEchoUpstream({ token: INTERNAL_TOKEN, hosts: { [HOST]: 'shop' } });
  const logger = createLogger('policy-server', { level: 'error' });
  store = new SnapshotStore({ logger });
  store.apply(configMapsFor(shop()), 'source');
  ps = createPolicyServer({ store, auth: testAuthenticator(), upstreamUrl: upstream.url, internalToken: INTERNAL_TOKEN, logger });
  url = `http://127.0.0.1:${await ps.listen(0, '127.0.0.1')}`;
});

afterAll(async () => {
  await ps?.close();
  await upstream?.close();
});

beforeEach(() => ps.cache.purgeAll());

const ann = bearer('ann', 'reader');
const ben = bearer('ben', 'reader');

async function get(path: string, headers: Record<string, string> = {}): Promise<RawResponse & { echo: Echo }> {
  const r = await send('GET', `${url}${path}`, { headers });
  expect(r.status).toBe(200);
  const text = r.headers['content-encoding'] === 'gzip' ? gunzipSync(r.body).toString('utf8') : r.text;
  return { ...r, echo: JSON.parse(text) as Echo };
}

describe('the cache key covers every declared parameter', () => {
  test('path parameter: /t/items/2 by another user is not the cached /t/items/1', async () => {
    const a1 = await get('/t/items/1', { authorization: ann });
    expect(a1.headers['x-cache']).toBe('MISS');
    const b2 = await get('/t/items/2', { authorization: ben });
    expect(b2.headers['x-cache']).toBe('MISS');
    expect(b2.echo.path).toBe('/items/2');
    // The same path is still one shared entry (scope: shared).
    const b1 = await get('/t/items/1', { authorization: ben });
    expect(b1.headers['x-cache']).toBe('HIT');
    expect(b1.echo).toEqual(a1.echo);
  });

  test('declared header parameter: x-lang fr does not get the cached en answer; undeclared headers do not defeat caching', async () => {
    const en = await get('/t/items/1', { authorization: ann, 'x-lang': 'en' });
    const fr = await get('/t/items/1', { authorization: ann, 'x-lang': 'fr' });
    expect(fr.headers['x-cache']).toBe('MISS');
    expect(fr.echo.headers['x-lang']).toBe('fr');
    const none = await get('/t/items/1', { authorization: ann });
    expect(none.headers['x-cache']).toBe('MISS');
    expect(none.echo.headers['x-lang']).toBeUndefined();
    // Header names are case-insensitive; other (undeclared) headers are not in the key.
    const again = await get('/t/items/1', { authorization: ben, 'X-LANG': 'en', 'user-agent': 'other/1.0', 'x-trace': 'abc' });
    expect(again.headers['x-cache']).toBe('HIT');
    expect(again.echo.n).toBe(en.echo.n);
  });

  test('repeated query values keep their order; parameters of different names may be reordered', async () => {
    const enFr = await get('/t/items/1?lang=en&lang=fr', { authorization: ann });
    const frEn = await get('/t/items/1?lang=fr&lang=en', { authorization: ann });
    expect(frEn.headers['x-cache']).toBe('MISS');
    expect(frEn.echo.query).toBe('lang=fr&lang=en');
    const reordered = await get('/t/items/1?page=2&lang=en&lang=fr', { authorization: ann });
    const same = await get('/t/items/1?lang=en&page=2&lang=fr', { authorization: ann });
    expect(reordered.headers['x-cache']).toBe('MISS');
    expect(same.headers['x-cache']).toBe('HIT');
    expect(same.echo.n).toBe(reordered.echo.n);
    expect((await get('/t/items/1?lang=en&lang=fr', { authorization: ann })).echo.n).toBe(enFr.echo.n);
  });

  test('forwarded credentials are in the key: a backend that reads Authorization never serves one token to another', async () => {
    store.apply(configMapsFor(shop({ configVersion: 'c2', forwardCredentials: ['authorization'] })), 'source');
    try {
      const a = await get('/t/items/1', { authorization: ann });
      expect(a.echo.headers.authorization).toBe(ann);
      const b = await get('/t/items/1', { authorization: ben });
      expect(b.headers['x-cache']).toBe('MISS');
      expect(b.echo.headers.authorization).toBe(ben);
      expect((await get('/t/items/1', { authorization: ann })).headers['x-cache']).toBe('HIT');
    } finally {
      store.apply(configMapsFor(shop()), 'source');
    }
  });
});

describe("the backend's Vary is honoured", () => {
  test('Vary: Accept-Encoding: a gzip body never reaches a client that did not accept it', async () => {
    const gz = await get('/t/gzip', { authorization: ann, 'accept-encoding': 'gzip' });
    expect(gz.headers['content-encoding']).toBe('gzip');
    expect(gz.headers['x-cache']).toBe('MISS');
    const plain = await get('/t/gzip', { authorization: ann });
    expect(plain.headers['content-encoding']).toBeUndefined();
    expect(plain.headers['x-cache']).toBe('MISS');
    expect(JSON.parse(plain.text)).toMatchObject({ path: '/gzip/report' });
    // Both variants are now served from the cache, each to its own kind of client.
    const gz2 = await get('/t/gzip', { authorization: ben, 'accept-encoding': 'gzip' });
    expect([gz2.headers['x-cache'], gz2.headers['content-encoding'], gz2.echo.n]).toEqual(['HIT', 'gzip', gz.echo.n]);
    const plain2 = await get('/t/gzip', { authorization: ben });
    expect([plain2.headers['x-cache'], plain2.headers['content-encoding'], plain2.echo.n]).toEqual(['HIT', undefined, plain.echo.n]);
  });

  test('a Content-Encoding without Vary still varies on Accept-Encoding', async () => {
    const gz = await get('/t/gzip-novary', { authorization: ann, 'accept-encoding': 'gzip, br' });
    expect(gz.headers['content-encoding']).toBe('gzip');
    const plain = await get('/t/gzip-novary', { authorization: ann });
    expect(plain.headers['content-encoding']).toBeUndefined();
    expect(plain.headers['x-cache']).toBe('MISS');
    expect((await get('/t/gzip-novary', { authorization: ann, 'accept-encoding': 'gzip, br' })).headers['x-cache']).toBe('HIT');
  });

  test('Vary: * is never stored', async () => {
    const a = await get('/t/vary-star', { authorization: ann });
    const b = await get('/t/vary-star', { authorization: ann });
    expect(b.headers['x-cache']).toBe('MISS');
    expect(b.echo.n).not.toBe(a.echo.n);
  });

  test('Vary on a header KEA sets (x-kea-user): a personalised answer in a shared scope stays with its caller', async () => {
    const a = await get('/t/vary-user', { authorization: ann });
    expect(a.echo.user).toBe('ann');
    const b = await get('/t/vary-user', { authorization: ben });
    expect(b.headers['x-cache']).toBe('MISS');
    expect(b.echo.user).toBe('ben');
    const a2 = await get('/t/vary-user', { authorization: ann, 'x-kea-user': 'ben' }); // a forged header changes nothing
    expect([a2.headers['x-cache'], a2.echo.user]).toEqual(['HIT', 'ann']);
  });

  test('Vary on client headers that are no declared parameter', async () => {
    const a = await get('/t/vary-client', { authorization: ann, 'x-client': 'a' });
    const b = await get('/t/vary-client', { authorization: ann, 'x-client': 'b' });
    expect(b.headers['x-cache']).toBe('MISS');
    expect(b.echo.headers['x-client']).toBe('b');
    const c = await get('/t/vary-client', { authorization: ann, 'x-client': 'a', 'accept-language': 'fr' });
    expect(c.headers['x-cache']).toBe('MISS');
    const a2 = await get('/t/vary-client', { authorization: ben, 'x-client': 'a', 'x-other': '1' });
    expect([a2.headers['x-cache'], a2.echo.n]).toEqual(['HIT', a.echo.n]);
  });
});
