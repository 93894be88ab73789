/**
 * Pure logic of the response cache key (datapath/cache.ts): query canonicalisation, `Vary`
 * parsing and the unambiguity of the key. The behaviour through a real policy server and
 * upstream is tested in policy-server/cache-key.test.ts and policy-server/tenants.test.ts.
 */
import { canonicalQuery, keyHeaders, ResponseCache, varyNames } from './cache.js';

describe('canonicalQuery', () => {
  test('sorts parameters by name, stably: repeated values keep their order', () => {
    expect(canonicalQuery('b=2&a=1')).toBe('a=1&b=2');
    expect(canonicalQuery('lang=fr&lang=en')).toBe('lang=fr&lang=en');
    expect(canonicalQuery('lang=en&lang=fr')).toBe('lang=en&lang=fr');
    expect(canonicalQuery('z=1&lang=fr&page=2&lang=en')).toBe('lang=fr&lang=en&page=2&z=1');
    expect(canonicalQuery('flag&a=1')).toBe('a=1&flag');
    expect(canonicalQuery('a=1&&b=2&')).toBe('a=1&b=2');
    expect(canonicalQuery('')).toBe('');
    expect(canonicalQuery('only=1')).toBe('only=1');
  });

  test('leaves the order alone where a backend could read names differently', () => {
    // `l%61ng` decodes to `lang`: reordering could swap the values a backend sees.
    expect(canonicalQuery('lang=en&l%61ng=fr')).toBe('lang=en&l%61ng=fr');
    expect(canonicalQuery('a+b=1&a=2')).toBe('a+b=1&a=2');
    expect(canonicalQuery('b=1;a=2&a=3')).toBe('b=1;a=2&a=3');
    // Encoded values are fine: only names decide the order.
    expect(canonicalQuery('q=a%26b&a=1')).toBe('a=1&q=a%26b');
  });
});

describe('varyNames', () => {
  test('lower case, trimmed, unique, sorted; * means not storable', () => {
    expect(varyNames(undefined, undefined)).toEqual([]);
    expect(varyNames('Accept-Encoding', undefined)).toEqual(['accept-encoding']);
    expect(varyNames(['X-Client, accept-language', ' x-client '], undefined)).toEqual(['accept-language', 'x-client']);
    expect(varyNames('Accept-Encoding, *', undefined)).toBeNull();
    expect(varyNames(',', undefined)).toEqual([]);
  });

  test('an encoded body varies on Accept-Encoding even without Vary', () => {
    expect(varyNames(undefined, 'gzip')).toEqual(['accept-encoding']);
    expect(varyNames('X-Client', 'br')).toEqual(['accept-encoding', 'x-client']);
    expect(varyNames('accept-encoding', 'gzip')).toEqual(['accept-encoding']);
    expect(varyNames(undefined, 'identity')).toEqual([]);
  });
});

describe('key', () => {
  const c = new ResponseCache();
  const key = (o: Partial<{ path: string; query: string; headers: string; subject: string; body: string }>) =>
    c.key('ns/api', 'op', 'v1', o.path ?? '/p', o.query ?? '', o.headers ?? '', o.subject, o.body ?? '');

  test('every part changes the key; equivalent queries do not', () => {
    const base = key({});
    expect(
      new Set([
        base,
        key({ path: '/q' }),
        key({ query: 'a=1' }),
        key({ headers: keyHeaders(['x-lang'], { 'x-lang': 'en' }) }),
        key({ subject: 'b:ann' }),
        key({ body: '{}' }),
      ]).size,
    ).toBe(6);
    expect(key({ query: 'a=1&b=2' })).toBe(key({ query: 'b=2&a=1' }));
    expect(key({ query: 'a=1&a=2' })).not.toBe(key({ query: 'a=2&a=1' }));
    expect(c.key('ns/api', 'op', 'v1', '/p', '', '', undefined, '')).not.toBe(c.key('ns/other', 'op', 'v1', '/p', '', '', undefined, ''));
    expect(c.key('ns/api', 'op', 'v1', '/p', '', '', undefined, '')).not.toBe(c.key('ns/api', 'op', 'v2', '/p', '', '', undefined, ''));
  });

  test('fields cannot bleed into each other (length-prefixed)', () => {
    // A subject containing the separator and a body that completes it.
    expect(key({ subject: 'b:x\0y', body: 'z' })).not.toBe(key({ subject: 'b:x', body: 'y\0z' }));
    expect(key({ path: '/a', query: 'b' })).not.toBe(key({ path: '/ab', query: '' }));
    // A missing header differs from an empty one, and from the next header's value.
    expect(keyHeaders(['a', 'b'], { b: 'x' })).not.toBe(keyHeaders(['a', 'b'], { a: 'x' }));
    expect(keyHeaders(['a'], {})).not.toBe(keyHeaders(['a'], { a: '' }));
    expect(c.variantKey('k', ['a', 'b'], [undefined, 'x'])).not.toBe(c.variantKey('k', ['a', 'b'], ['x', undefined]));
  });
});

describe('Vary index', () => {
  test('a variant is stored under its own key, and the first key names the Vary headers', () => {
    const c = new ResponseCache();
    const entry = (s: string) => ({ status: 200, headers: [], body: Buffer.from(s), storedAt: Date.now(), serviceId: 'ns/api' });
    const gz = c.variantKey('base', ['accept-encoding'], ['gzip']);
    const plain = c.variantKey('base', ['accept-encoding'], [undefined]);
    expect(c.set(gz, entry('gz'), 60, { base: 'base', names: ['accept-encoding'] })).toBe(true);
    expect(c.lookup('base')).toEqual({ vary: ['accept-encoding'], serviceId: 'ns/api' });
    expect(c.get('base', 'ns/api')).toBeUndefined(); // an index is not a response
    expect(c.get(gz, 'ns/api')?.body.toString()).toBe('gz');
    expect(c.get(plain, 'ns/api')).toBeUndefined();
    // A later answer without Vary replaces the index.
    expect(c.set('base', entry('novary'), 60)).toBe(true);
    expect(c.get('base', 'ns/api')?.body.toString()).toBe('novary');
    expect(c.purgeService('ns/api')).toBe(2);
    expect(c.lookup(gz)).toBeUndefined();
  });
});
