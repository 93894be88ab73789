import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { OpenApiDiscovery, gatewayFetcher, internalDocUrl, openApiPathProblem } from './index.js';
import type { ApiSchema } from '../../lib/api/types.js';
import { waitFor } from '../../dev/testing/wait.js';

function schema(name: string, generation = 1, refresh = false): ApiSchema {
  return {
    apiVersion: 'kea.dev/v1alpha1',
    kind: 'ApiSchema',
    metadata: { name, namespace: 'ns', generation },
    spec: {
      target: { service: { name: 'grades', port: 8000 } },
      basePath: '/grades',
      info: { title: 'Grades', version: '1.0.0' },
      source: { openapi: { path: '/openapi.json', refresh, intervalSeconds: 1 } },
    },
  };
}

describe('OpenAPI discovery through the internal listener', () => {
  let server: Server;
  let base: string;
  let version = 1;
  let healthy = true;
  const seen: Array<{ host?: string; token?: string; url?: string }> = [];

  beforeAll(async () => {
    server = createServer((req, res) => {
      seen.push({ host: req.headers.host, token: req.headers['x-kea-internal-token'] as string, url: req.url });
      if (!healthy) return void res.writeHead(503).end();
      if (req.headers['x-kea-internal-token'] !== 'secret') return void res.writeHead(404).end();
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ openapi: '3.1.0', info: { title: 'g', version: String(version) }, paths: {} }));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  const fetcher = () => gatewayFetcher({ internalGatewayUrl: base, internalToken: 'secret', hostFor: (s) => `${s.metadata.name}.ns.kea.internal` });

  test('sends the internal Host and token, and reports the document', async () => {
    let changes = 0;
    const d = new OpenApiDiscovery({ fetchDoc: fetcher(), onChange: () => changes++ });
    d.sync([schema('grades')]);
    await waitFor('discovery state', 5000, () => changes === 1, 20);
    const got = d.snapshot()['ns/grades'];
    expect(got.error).toBeUndefined();
    expect((got.doc as { info: { version: string } }).info.version).toBe(String(version));
    expect(got.digest).toMatch(/^[0-9a-f]{64}$/);
    expect(seen.at(-1)).toEqual({ host: 'grades.ns.kea.internal', token: 'secret', url: '/openapi.json' });
    d.stop();
  });

  test('refresh picks up a changed document; removal stops the loop', async () => {
    let changes = 0;
    const d = new OpenApiDiscovery({ fetchDoc: fetcher(), onChange: () => changes++ });
    d.sync([schema('grades', 1, true)]);
    await waitFor('discovery state', 5000, () => changes === 1, 20);
    version++;
    await waitFor('discovery state', 4000, () => changes === 2, 20);
    expect((d.snapshot()['ns/grades'].doc as { info: { version: string } }).info.version).toBe(String(version));
    d.sync([]);
    expect(d.snapshot()).toEqual({});
    const before = seen.length;
    await new Promise((r) => setTimeout(r, 1300));
    expect(seen.length).toBe(before);
    d.stop();
  });

  test('a failing target reports the error, keeps the last document and retries with backoff', async () => {
    let changes = 0;
    const d = new OpenApiDiscovery({ fetchDoc: fetcher(), onChange: () => changes++, minBackoffMs: 50 });
    d.sync([schema('grades')]);
    await waitFor('discovery state', 5000, () => changes === 1, 20);
    const good = d.snapshot()['ns/grades'];
    healthy = false;
    d.sync([schema('grades', 2)]); // new generation → refetch
    await waitFor('discovery state', 5000, () => changes === 2, 20);
    const bad = d.snapshot()['ns/grades'];
    expect(bad.error).toBe('GET /openapi.json on grades.ns.kea.internal: HTTP 503');
    expect(bad.digest).toBe(good.digest);
    healthy = true;
    await waitFor('discovery state', 3000, () => changes === 3, 20);
    expect(d.snapshot()['ns/grades'].error).toBeUndefined();
    d.stop();
  });

  test('an unreachable gateway gives a readable error', async () => {
    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((r) => closed.close(() => r()));
    const f = gatewayFetcher({ internalGatewayUrl: `http://127.0.0.1:${port}`, internalToken: 'x', hostFor: () => 'h.kea.internal', timeoutMs: 500 });
    await expect(f(schema('x'))).rejects.toThrow(/^GET \/openapi.json on h.kea.internal: .*ECONNREFUSED/);
  });
});

/**
 * Issue 10 item 3: `spec.source.openapi.path` such as `//host:port/x` or `/\\host/x` resolved
 * (WHATWG URL) to another host, and the request carried the cluster-wide internal token. Two
 * real servers: the internal gateway and an "evil host"; whatever the path, the evil host
 * receives nothing, and a refused path sends no request at all.
 */
describe('discovery never sends the internal token to another origin', () => {
  let gateway: Server;
  let evil: Server;
  let gatewayUrl: string;
  let evilPort: number;
  const atGateway: string[] = [];
  const atEvil: Array<{ url?: string; token?: string }> = [];

  beforeAll(async () => {
    gateway = createServer((req, res) => {
      atGateway.push(req.url ?? '');
      if (req.url === '/redirect') return void res.writeHead(302, { location: `http://127.0.0.1:${evilPort}/x` }).end();
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ openapi: '3.0.3', info: { title: 'gw', version: '1' }, paths: {} }));
    });
    evil = createServer((req, res) => {
      atEvil.push({ url: req.url, token: req.headers['x-kea-internal-token'] as string | undefined });
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ openapi: '3.0.3', info: { title: 'stolen', version: '1' }, paths: {} }));
    });
    await new Promise<void>((r) => gateway.listen(0, '127.0.0.1', r));
    await new Promise<void>((r) => evil.listen(0, '127.0.0.1', r));
    gatewayUrl = `http://127.0.0.1:${(gateway.address() as AddressInfo).port}`;
    evilPort = (evil.address() as AddressInfo).port;
  });
  afterAll(async () => {
    await new Promise<void>((r) => gateway.close(() => r()));
    await new Promise<void>((r) => evil.close(() => r()));
  });

  const withPath = (path: string): ApiSchema => {
    const s = schema('grades');
    s.spec.source = { openapi: { path } };
    return s;
  };
  const hostile = () => [
    `//127.0.0.1:${evilPort}/x`,
    `/\\127.0.0.1:${evilPort}/x`,
    `\\\\127.0.0.1:${evilPort}/x`,
    `/\t/127.0.0.1:${evilPort}/x`,
    `/\n/127.0.0.1:${evilPort}/x`,
    `//localhost:${evilPort}/x`,
    `http://127.0.0.1:${evilPort}/x`,
    `///127.0.0.1:${evilPort}/x`,
  ];

  test('each hostile path is refused before any request, and the evil host receives nothing', async () => {
    const f = gatewayFetcher({ internalGatewayUrl: gatewayUrl, internalToken: 'cluster-secret', hostFor: () => 'grades.ns.kea.internal', timeoutMs: 1000 });
    for (const path of hostile()) {
      // Each of these resolves to the evil origin when taken as a URL reference.
      expect(new URL(path, gatewayUrl).origin).not.toBe(new URL(gatewayUrl).origin);
      await expect(f(withPath(path))).rejects.toThrow(/^refusing to fetch spec\.source\.openapi\.path /);
    }
    await new Promise((r) => setTimeout(r, 100));
    expect(atEvil).toEqual([]);
    expect(atGateway).toEqual([]);
  });

  test('through the discovery loop: the error is reported, the evil host receives nothing', async () => {
    let changes = 0;
    const f = gatewayFetcher({ internalGatewayUrl: gatewayUrl, internalToken: 'cluster-secret', hostFor: () => 'grades.ns.kea.internal', timeoutMs: 1000 });
    const d = new OpenApiDiscovery({ fetchDoc: f, onChange: () => changes++, minBackoffMs: 10_000 });
    const s = withPath(`//127.0.0.1:${evilPort}/x`);
    d.sync([s]);
    await waitFor('discovery state', 5000, () => changes === 1, 20);
    expect(d.snapshot()['ns/grades'].error).toMatch(/must not contain '\/\/'/);
    expect(d.snapshot()['ns/grades'].doc).toBeUndefined();
    d.stop();
    expect(atEvil).toEqual([]);
  });

  test('a plain path still reaches the internal gateway, on its origin', async () => {
    const f = gatewayFetcher({ internalGatewayUrl: gatewayUrl, internalToken: 'cluster-secret', hostFor: () => 'grades.ns.kea.internal' });
    await expect(f(withPath('/api/v1/openapi.json?format=json'))).resolves.toMatchObject({ info: { title: 'gw' } });
    expect(atGateway.at(-1)).toBe('/api/v1/openapi.json?format=json');
    expect(internalDocUrl(`${gatewayUrl}/ignored/base/path`, '/openapi.json').toString()).toBe(`${gatewayUrl}/openapi.json`);
    expect(atEvil).toEqual([]);
  });

  test('a redirect from the target is not followed', async () => {
    const f = gatewayFetcher({ internalGatewayUrl: gatewayUrl, internalToken: 'cluster-secret', hostFor: () => 'grades.ns.kea.internal' });
    await expect(f(withPath('/redirect'))).rejects.toThrow('GET /redirect on grades.ns.kea.internal: HTTP 302');
    await new Promise((r) => setTimeout(r, 100));
    expect(atEvil).toEqual([]);
  });

  test.each([
    ['/openapi.json', undefined],
    ['/v2/docs/openapi.yaml', undefined],
    ['/openapi.json?format=json', undefined],
    ['/a..b/openapi.json', undefined],
    ['openapi.json', /absolute path/],
    ['//evil/x', /'\/\/'/],
    ['/a//b', /'\/\/'/],
    ['/\\evil/x', /backslash/],
    ['/x y', /printable ASCII/],
    ['/x\u0000', /printable ASCII/],
    ['/caf\u00e9', /printable ASCII/],
    ['/%2F%2Fevil/x', /percent-encoded/],
    ['/%5cevil', /percent-encoded/],
    ['/../admin', /'\.' or '\.\.' segments/],
    ['/a/./b', /'\.' or '\.\.' segments/],
    ['/a/..', /'\.' or '\.\.' segments/],
    [`/${'a'.repeat(256)}`, /at most 256/],
  ] as Array<[string, RegExp | undefined]>)('openApiPathProblem(%j)', (path, problem) => {
    const got = openApiPathProblem(path);
    if (problem) expect(got).toMatch(problem);
    else expect(got).toBeUndefined();
  });
});
