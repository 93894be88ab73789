/**
 * The bounds of the data path's stale-connection retry (datapath/exchange.ts `Exchange.retryStale`; the
 * retry itself is proven under real nginx reloads in reload.int.test.ts): a request is dispatched
 * again only when the upstream closed a reused keep-alive connection before any byte of the
 * response. A server that reads a request on a fresh connection and then drops it, or that drops
 * the connection after the response has started, gets the request once, and the client its 502.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { createLogger } from '../lib/log.js';
import { POLICY_API_VERSION, policyOperation as op, type PolicyService } from '../lib/policy/config.js';
import { UpstreamLanes } from './datapath/upstream.js';
import { createPolicyServer, type PolicyServer } from './server.js';
import { SnapshotStore } from './snapshot/store.js';
import { configMapsFor, INTERNAL_TOKEN, testAuthenticator } from './testing/fixtures.js';
import { send } from './testing/http.js';

const service: PolicyService = {
  apiVersion: POLICY_API_VERSION,
  id: 'models/crash',
  namespace: 'models',
  name: 'crash',
  title: 'crash',
  version: '1.0.0',
  basePath: '/crash',
  configVersion: 'crash-1',
  mode: 'enforce',
  upstream: { host: 'crash.models.kea.internal' },
  traffic: [],
  authorization: {},
  operations: [
    op({ operationId: 'drop', method: 'POST', path: '/crash/drop', upstreamPath: '/drop', access: { mode: 'public' } }),
    op({ operationId: 'half', method: 'POST', path: '/crash/half', upstreamPath: '/half', access: { mode: 'public' } }),
  ],
};

describe('stale-connection retry: what is not retried', () => {
  let backend: Server;
  let ps: PolicyServer;
  let url: string;
  const seen = new Map<string, number>();

  beforeAll(async () => {
    backend = createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        seen.set(req.url!, (seen.get(req.url!) ?? 0) + 1);
        // Read the whole request, then drop the connection without a byte of response.
        if (req.url === '/drop') return void req.socket.destroy();
        // Start the response, then drop the connection.
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': '100' });
        res.write('{"partial":');
        setTimeout(() => req.socket.destroy(), 20);
      });
    });
    await new Promise<void>((r) => backend.listen(0, '127.0.0.1', r));
    const upstreamUrl = `http://127.0.0.1:${(backend.address() as AddressInfo).port}`;
    const logger = createLogger('policy-server', { level: 'error', stream: new Writable({ write: (_c, _e, cb) => cb() }) });
    const store = new SnapshotStore({ logger });
    store.apply(configMapsFor(service), 'source');
    ps = createPolicyServer({
      store,
      auth: testAuthenticator(),
      upstreamUrl,
      upstream: new UpstreamLanes({ url: upstreamUrl }),
      internalToken: INTERNAL_TOKEN,
      logger,
      drainTimeoutMs: 50,
    });
    url = `http://127.0.0.1:${await ps.listen(0, '127.0.0.1')}`;
  });

  afterAll(async () => {
    await ps.close();
    backend.closeAllConnections();
    await new Promise<void>((r) => backend.close(() => r()));
  });

  test('a connection closed after the request was read, on a fresh connection: one attempt, 502 upstream-unavailable', async () => {
    const r = await send('POST', `${url}/crash/drop`, { body: { x: 1 } });
    expect(r.status).toBe(502);
    expect(r.json.type).toMatch(/upstream-unavailable$/);
    expect(seen.get('/drop')).toBe(1);
  });

  test('a connection dropped after the response started: one attempt, the client sees the cut', async () => {
    await expect(send('POST', `${url}/crash/half`, { body: { x: 1 } })).rejects.toThrow();
    // Give a (wrong) retry the time to arrive.
    await new Promise((r) => setTimeout(r, 100));
    expect(seen.get('/half')).toBe(1);
  });
});
