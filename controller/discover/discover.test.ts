import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { OpenApiDiscovery, gatewayFetcher } from './index.js';
import type { ApiSchema } from '../../lib/api/types.js';

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

const until = async (cond: () => boolean, ms = 5000) => {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
};

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

  const fetcher = () =>
    gatewayFetcher({ internalGatewayUrl: base, internalToken: 'secret', hostFor: (s) => `${s.metadata.name}.ns.kea.internal` });

  test('sends the internal Host and token, and reports the document', async () => {
    let changes = 0;
    const d = new OpenApiDiscovery({ fetchDoc: fetcher(), onChange: () => changes++ });
    d.sync([schema('grades')]);
    await until(() => changes === 1);
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
    await until(() => changes === 1);
    version++;
    await until(() => changes === 2, 4000);
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
    await until(() => changes === 1);
    const good = d.snapshot()['ns/grades'];
    healthy = false;
    d.sync([schema('grades', 2)]); // new generation → refetch
    await until(() => changes === 2);
    const bad = d.snapshot()['ns/grades'];
    expect(bad.error).toBe('GET /openapi.json on grades.ns.kea.internal: HTTP 503');
    expect(bad.digest).toBe(good.digest);
    healthy = true;
    await until(() => changes === 3, 3000);
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
