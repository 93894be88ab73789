/**
 * The `x-kea-operation` contract between the controller's render stage and the policy server
 * when several path templates of one API share one HTTPRoute rule (same method and static
 * prefix, e.g. GET /items/{id} and GET /items/{id}/tags → PathPrefix /shop/items): render sets
 * the header to `<ns>/<name>/<id>,<id>` and the policy server must pick the operation whose
 * template matches the request. The configuration is produced by the real controller
 * reconcile (graph → IR → render), not written by hand.
 */
import type { KubernetesObject } from '@kubernetes/client-node';
import type { ApiSchema } from '../lib/api/types.js';
import type { PolicyService } from '../lib/policy/config.js';
import { reconcile } from '../controller/reconcile.js';
import { buildSnapshot } from './snapshot/build.js';
import { resolveOperationHeader } from './server.js';
import { configMapsFor } from './testing/fixtures.js';
import { send } from './testing/http.js';
import { startStack, type Stack } from './testing/stack.js';
import { testControllerConfig } from '../controller/testing/config.js';

const config = testControllerConfig({ internalToken: 'unused', gatewayUrl: 'http://gateway.test' });

const schema: ApiSchema = {
  apiVersion: 'kea.dev/v1alpha1',
  kind: 'ApiSchema',
  metadata: { name: 'items', namespace: 'shop', uid: 'u1', generation: 1, creationTimestamp: '2026-01-01T00:00:00Z' },
  spec: {
    target: { service: { name: 'items', port: 8080 } },
    basePath: '/shop',
    info: { title: 'Items', version: '1.0.0' },
    defaults: { access: { mode: 'public' } },
    operations: [
      { operationId: 'get_item', method: 'GET', path: '/items/{id}', parameters: [{ name: 'id', in: 'path', required: true, schema: { type: 'integer' } }] },
      {
        operationId: 'get_item_tags',
        method: 'GET',
        path: '/items/{id}/tags',
        parameters: [{ name: 'id', in: 'path', required: true, schema: { type: 'integer' } }],
      },
      {
        operationId: 'put_item',
        method: 'PUT',
        path: '/items/{id}',
        parameters: [{ name: 'id', in: 'path', required: true, schema: { type: 'integer' } }],
        requestBody: { required: true, schema: { type: 'object' } },
      },
    ],
  },
};

const out = reconcile(
  {
    apiSchemas: [schema],
    mlServices: [],
    services: [{ apiVersion: 'v1', kind: 'Service', metadata: { name: 'items', namespace: 'shop' }, spec: { ports: [{ port: 8080 }] } } as KubernetesObject],
    referenceGrants: [],
    publishedVersions: [],
  },
  config,
  '2026-01-01T00:00:00Z',
);
const cm = out.objects.find((o) => o.kind === 'ConfigMap' && o.metadata?.labels?.['kea.dev/component'] === 'api-config') as unknown as {
  data: Record<string, string>;
};
const policy = JSON.parse(cm.data['policy.json']) as PolicyService;
type Rule = {
  matches: Array<{ method: string; path: { value: string } }>;
  filters: Array<{ requestHeaderModifier: { set: Array<{ name: string; value: string }> } }>;
};
const rules = out.objects
  .filter((o) => o.kind === 'HTTPRoute' && o.metadata?.name === 'kea-api-items')
  .flatMap((o) => (o as unknown as { spec: { rules: Rule[] } }).spec.rules);
const headerOf = (method: string) => rules.find((r) => r.matches[0].method === method)!.filters[0].requestHeaderModifier.set[0].value;

describe('x-kea-operation naming several operations (shared route rule)', () => {
  it('render shares one rule between the GET templates and names both operations', () => {
    expect(headerOf('GET')).toBe('shop/items/get_item,get_item_tags');
    expect(headerOf('PUT')).toBe('shop/items/put_item');
  });

  it('resolveOperationHeader picks the operation whose method and template match', () => {
    const snap = buildSnapshot(configMapsFor(policy));
    expect(snap.errors).toEqual([]);
    const pick = (v: string, m: string, p: string) => {
      const r = resolveOperationHeader(snap.operations, v, m, p);
      return r.op ? `${r.op.def.operationId} ${JSON.stringify(r.params)}` : `none named=${r.named}`;
    };
    expect(pick(headerOf('GET'), 'GET', '/shop/items/7')).toBe('get_item ["7"]');
    expect(pick(headerOf('GET'), 'GET', '/shop/items/7/tags')).toBe('get_item_tags ["7"]');
    expect(pick(headerOf('GET'), 'HEAD', '/shop/items/7/tags')).toBe('get_item_tags ["7"]');
    expect(pick(headerOf('GET'), 'GET', '/shop/items/7/other')).toBe('none named=true');
    expect(pick(headerOf('GET'), 'POST', '/shop/items/7')).toBe('none named=true');
    expect(pick('shop/items/nope,also_nope', 'GET', '/shop/items/7')).toBe('none named=false');
    expect(pick(headerOf('PUT'), 'PUT', '/shop/items/7')).toBe('put_item ["7"]');
    expect(pick('shop/items/get_item', 'GET', '/shop/items/7/tags')).toBe('none named=true');
  });

  describe('through the running policy server to a real backend', () => {
    let s: Stack;
    beforeAll(async () => {
      s = await startStack({ services: [policy] });
    });
    afterAll(async () => {
      await s.close();
    });

    it('forwards each request to the upstream path of the matching operation', async () => {
      const h = { 'x-kea-operation': headerOf('GET') };
      const a = await send('GET', `${s.url}/shop/items/7`, { headers: h });
      expect(a.status).toBe(200);
      expect(a.json.path).toBe('/items/7');
      const b = await send('GET', `${s.url}/shop/items/7/tags`, { headers: h });
      expect(b.status).toBe(200);
      expect(b.json.path).toBe('/items/7/tags');
    });

    it('validates path parameters of the chosen operation and 404s a path no named template matches', async () => {
      const h = { 'x-kea-operation': headerOf('GET') };
      const bad = await send('GET', `${s.url}/shop/items/abc/tags`, { headers: h });
      expect(bad.status).toBe(400);
      expect(bad.headers['content-type']).toBe('application/problem+json');
      const none = await send('GET', `${s.url}/shop/items/7/other`, { headers: h });
      expect(none.status).toBe(404);
    });
  });
});
