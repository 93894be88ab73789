import { safeReturnTo } from './index.js';

const hosts = new Set(['gw.example.com', 'localhost:8080']);

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
    ['javascript:alert(1)', '/'],
    ['JaVaScRiPt:alert(1)', '/'],
    [' javascript:alert(1)', '/'],
    ['java\tscript:alert(1)', '/'],
    ['data:text/html,<script>alert(1)</script>', '/'],
    ['evil.com', '/'],
    ['', '/'],
    [undefined, '/'],
    [['/a', '/b'], '/'],
  ])('%j → %j', (input, want) => {
    expect(safeReturnTo(input, hosts)).toBe(want);
  });
  test.each([
    ['/docs', '/docs'],
    ['/services/ns%2Fgrades?x=1#top', '/services/ns%2Fgrades?x=1#top'],
    ['/a/../b', '/b'],
    ['https://gw.example.com/docs?x=1', 'https://gw.example.com/docs?x=1'],
    ['https://GW.example.com/docs', 'https://gw.example.com/docs'],
    ['http://localhost:8080/docs', 'http://localhost:8080/docs'],
  ])('allowed %j → %j', (input, want) => {
    expect(safeReturnTo(input, hosts)).toBe(want);
  });
  test('same host on another port is not allowed', () => {
    expect(safeReturnTo('http://localhost:9999/x', hosts)).toBe('/');
  });
});
