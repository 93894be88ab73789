import { safeReturnTo } from './index.js';

const GW = 'https://gw.example.com';
const extra = new Set(['docs.example.com', 'localhost:8443']);
const check = (v: unknown) => safeReturnTo(v, GW, extra);

describe('safeReturnTo: no open redirect', () => {
  test.each([
    ['//evil.com', '/'],
    ['//evil.com/path', '/'],
    ['/\\evil.com', '/'],
    ['\\\\evil.com', '/'],
    ['/\t/evil.com', '/'],
    ['/%0a/evil.com', '/%0a/evil.com'], // stays a path on our origin
    ['https://evil.com', '/'],
    ['https://evil.com/gw.example.com', '/'],
    ['https://gw.example.com.evil.com/', '/'],
    ['https://gw.example.com@evil.com/', '/'],
    ['https://user:pw@gw.example.com/', '/'],
    ['http://evil.com:8080', '/'],
    ['http://gw.example.com/docs', '/'], // scheme downgrade: not the gateway's origin
    ['javascript:alert(1)', '/'],
    ['JaVaScRiPt:alert(1)', '/'],
    [' javascript:alert(1)', '/'],
    ['java\tscript:alert(1)', '/'],
    ['data:text/html,<script>alert(1)</script>', '/'],
    ['https:evil.com', '/'],
    ['evil.com', '/'],
    ['docs', '/'],
    ['', '/'],
    [undefined, '/'],
    [['/a', '/b'], '/'],
  ])('%j → %j', (input, want) => {
    expect(check(input)).toBe(want);
  });

  // Issue 10 item 7: dot segments collapse to `//evil` only after parsing.
  test.each([
    '/.//evil.com',
    '/..//evil.com',
    '/%2e%2e//evil.com',
    '/%2E%2E//evil.com',
    '/%2e//evil.com',
    '/.%2e//evil.com',
    '/a/..//evil.com',
    '/a/b/../..//evil.com',
    '/a/%2e%2e//evil.com',
    '/./..//evil.com/x?y#z',
    'https://gw.example.com/..//evil.com',
    'https://gw.example.com/a/..//evil.com',
    'https://docs.example.com/.//evil.com',
  ])('dot segments that normalise to a network-path reference: %j → "/"', (input) => {
    expect(check(input)).toBe('/');
    // The control: the browser's own resolution of what the old check let through leaves the origin.
    expect(new URL(new URL(input, `${GW}/`).pathname, `${GW}/`).origin).not.toBe(GW);
  });

  test.each([
    ['/docs', '/docs'],
    ['/services/ns%2Fgrades?x=1#top', '/services/ns%2Fgrades?x=1#top'],
    ['/a/../b', '/b'],
    ['/a/./b/../c', '/a/c'],
    ['/%2e%2e/docs', '/docs'],
    ['/a/..', '/'],
    ['https://gw.example.com/docs?x=1', 'https://gw.example.com/docs?x=1'],
    ['https://GW.example.com/docs', 'https://gw.example.com/docs'],
    ['https://gw.example.com:443/docs', 'https://gw.example.com/docs'],
    ['https://docs.example.com/x', 'https://docs.example.com/x'],
    ['https://localhost:8443/docs', 'https://localhost:8443/docs'],
  ])('allowed %j → %j', (input, want) => {
    const got = check(input);
    expect(got).toBe(want);
    // Every answer, resolved as a browser resolves a Location header, stays on an allowed origin.
    const origin = new URL(got, `${GW}/`).origin;
    expect([GW, 'https://docs.example.com', 'https://localhost:8443']).toContain(origin);
  });

  test('same host on another port, or an allowed host over http, is not allowed', () => {
    expect(check('https://localhost:9999/x')).toBe('/');
    expect(check('http://docs.example.com/x')).toBe('/');
  });

  test('a plain-http dev gateway keeps its own origin', () => {
    expect(safeReturnTo('http://localhost:8080/docs', 'http://localhost:8080')).toBe('http://localhost:8080/docs');
    expect(safeReturnTo('/..//evil', 'http://localhost:8080')).toBe('/');
    expect(safeReturnTo('https://localhost:8080/docs', 'http://localhost:8080')).toBe('/');
  });
});
