/**
 * Unit tests of the pure helpers behind version history (versions.ts), OpenAPI discovery
 * import (discovered.ts) and the contract check of canary revisions (ir contractCheck). Each
 * runs the real code on small inputs; the golden files cover the assembled output.
 */
import type { KubernetesObject } from '@kubernetes/client-node';
import type { ApiSchema, MLService, Operation } from '../../lib/api/types.js';
import { contractCheck, genOptions } from '../ir/index.js';
import { generateCached } from '../ir/memo.js';
import type { ApiSchemaStatus } from '../../lib/api/types.js';
import { reconcile } from '../reconcile.js';
import { versionConfigMap } from '../render/index.js';
import { buildGraph } from './index.js';
import { publishedVersionsOf, withDiscovered } from './index.js';
import { sortNewestFirst } from '../../lib/policy/versions.js';
import { PACKED_OPENAPI, packVersionConfigMap } from '../watch/packed.js';
import { testControllerConfig } from '../testing/config.js';
import { sha256Hex } from '../../lib/hash.js';

const sha = sha256Hex;

function cm(
  name: string,
  text: string,
  md: { labels?: Record<string, string>; annotations?: Record<string, string>; creationTimestamp?: string; deletionTimestamp?: string } = {},
): KubernetesObject {
  return {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name, namespace: 'kea-system', ...md } as never,
    data: { 'openapi.json': text },
  } as KubernetesObject;
}

describe('publishedVersionsOf', () => {
  const doc = (v: string) => JSON.stringify({ openapi: '3.0.3', info: { title: 't', version: v }, paths: {} });
  it('finds ConfigMaps by api-schema annotation, else by owner label, and fills defaults', () => {
    const list = publishedVersionsOf(
      [
        cm('a', doc('1.0.0'), {
          annotations: { 'kea.dev/api-schema': 'ns/x', 'kea.dev/published-at': '2025-01-01T00:00:00Z', 'kea.dev/digest': 'd1', 'kea.dev/version': '1.0.0' },
        }),
        cm('b', doc('2.0.0'), { labels: { 'kea.dev/owner': 'ApiSchema.ns.x' }, creationTimestamp: '2025-02-01T00:00:00Z' }),
        // Annotation wins over the label: this one belongs to ns/y.
        cm('c', doc('3.0.0'), { labels: { 'kea.dev/owner': 'ApiSchema.ns.x' }, annotations: { 'kea.dev/api-schema': 'ns/y' } }),
        cm('d', doc('4.0.0'), { labels: { 'kea.dev/owner': 'ApiSchema.ns.x' }, deletionTimestamp: '2025-03-01T00:00:00Z' }),
        cm('e', 'not json', {
          labels: { 'kea.dev/owner': 'ApiSchema.ns.x', 'kea.dev/api-version': '0.9' },
          annotations: {},
          creationTimestamp: '2024-01-01T00:00:00Z',
        }),
      ],
      'ns',
      'x',
    );
    expect(list.map((e) => [e.name, e.version, e.publishedAt])).toEqual([
      ['b', '2.0.0', '2025-02-01T00:00:00Z'],
      ['a', '1.0.0', '2025-01-01T00:00:00Z'],
      ['e', '0.9', '2024-01-01T00:00:00Z'],
    ]);
    expect(list[0].digest).toBe(sha(doc('2.0.0')));
    expect(list[1].digest).toBe('d1');
  });
  it('keeps one entry per digest (the newest) and orders ties by preferred digest, then name', () => {
    const t = doc('1');
    const list = publishedVersionsOf(
      [
        cm('old', t, { labels: { 'kea.dev/owner': 'ApiSchema.ns.x' }, annotations: { 'kea.dev/published-at': '2025-01-01T00:00:00Z' } }),
        cm('new', t, { labels: { 'kea.dev/owner': 'ApiSchema.ns.x' }, annotations: { 'kea.dev/published-at': '2025-06-01T00:00:00Z' } }),
      ],
      'ns',
      'x',
    );
    expect(list.map((e) => e.name)).toEqual(['new']);
    const tie = [
      { name: 'b', version: '1', digest: 'B', publishedAt: 'T', text: () => '' },
      { name: 'a', version: '2', digest: 'A', publishedAt: 'T', text: () => '' },
    ];
    expect(sortNewestFirst(tie).map((e) => e.name)).toEqual(['a', 'b']);
    expect(sortNewestFirst(tie, 'B').map((e) => e.name)).toEqual(['b', 'a']);
  });
});

describe('packed version ConfigMaps (the watch cache form)', () => {
  // A document the size of a real one: many paths, so deflate has something to do.
  const big = (v: string) =>
    `${JSON.stringify({ openapi: '3.0.3', info: { title: 't', version: v }, paths: Object.fromEntries(Array.from({ length: 60 }, (_, i) => [`/op${i}`, { post: { operationId: `op${i}`, responses: { '200': { description: 'ok' } } } }])) }, null, 2)}\n`;
  const sample = () => [
    cm('a', big('1.0.0'), {
      annotations: {
        'kea.dev/api-schema': 'ns/x',
        'kea.dev/published-at': '2025-01-01T00:00:00Z',
        'kea.dev/digest': sha(big('1.0.0')),
        'kea.dev/version': '1.0.0',
      },
    }),
    // Hand-made: digest and version come from the text, so the packed form must inflate it.
    cm('b', big('2.0.0'), { labels: { 'kea.dev/owner': 'ApiSchema.ns.x' }, creationTimestamp: '2025-02-01T00:00:00Z' }),
  ];
  it('gives the same entries, texts and digests as the plain ConfigMaps', () => {
    const plain = publishedVersionsOf(sample(), 'ns', 'x');
    const packedCms = sample().map((o) => packVersionConfigMap(o));
    for (const o of packedCms) {
      expect((o as { data?: Record<string, string> }).data?.['openapi.json']).toBeUndefined();
      const buf = (o as unknown as Record<symbol, Buffer>)[PACKED_OPENAPI];
      expect(buf.length).toBeLessThan(Buffer.byteLength(big('1.0.0')) / 4);
      // Its own exact-size memory: a view of zlib's 64 KB chunk or of a pool slab would pin that.
      expect(buf.buffer.byteLength).toBe(buf.length);
    }
    const packed = publishedVersionsOf(packedCms, 'ns', 'x');
    const view = (es: typeof plain) => es.map((e) => ({ name: e.name, version: e.version, digest: e.digest, publishedAt: e.publishedAt, text: e.text() }));
    expect(view(packed)).toEqual(view(plain));
    expect(view(packed).map((e) => [e.name, e.version, e.digest])).toEqual([
      ['b', '2.0.0', sha(big('2.0.0'))],
      ['a', '1.0.0', sha(big('1.0.0'))],
    ]);
  });
});

describe('render of kept versions', () => {
  const config = testControllerConfig();
  const schema: ApiSchema = {
    apiVersion: 'kea.dev/v1alpha1',
    kind: 'ApiSchema',
    metadata: { name: 'grades', namespace: 'school', generation: 1 },
    spec: {
      target: { service: { name: 'grades', port: 8080 } },
      basePath: '/grades',
      info: { title: 'Grades', version: '1.1.0' },
      operations: [{ operationId: 'list', method: 'GET', path: '/grades', access: { mode: 'public' } }],
    },
  };
  const service = {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: 'grades', namespace: 'school' },
    spec: { ports: [{ name: 'http', port: 8080, protocol: 'TCP' }] },
  } as KubernetesObject;
  const text = generateCached(schema, genOptions(config)).text;
  const publishedAt = '2025-07-01T00:00:00Z';
  const liveCm = () =>
    versionConfigMap({ namespace: 'school', name: 'grades' }, config, { version: '1.1.0', digest: sha(text), publishedAt, openapi: text }) as KubernetesObject;
  const run = (cms: KubernetesObject[]) => {
    const out = reconcile(
      {
        apiSchemas: [structuredClone(schema)],
        mlServices: [],
        services: [service],
        referenceGrants: [],
        publishedVersions: cms.map((o) => packVersionConfigMap(o)),
      },
      config,
      '2026-01-01T00:00:00Z',
    );
    const versions = out.objects.filter((o) => o.metadata?.labels?.['kea.dev/component'] === 'api-version');
    const st = out.statuses.find((x) => x.kind === 'ApiSchema')!.status as ApiSchemaStatus;
    return { out, versions, st };
  };

  it('leaves out a live version that already carries what render would write', () => {
    const { out, versions, st } = run([liveCm()]);
    expect(versions).toEqual([]);
    expect(st.versions).toEqual([{ version: '1.1.0', digest: sha(text), publishedAt }]);
    expect(out.droppedVersions).toEqual([]);
  });

  it('re-renders it, with its full text, when a label or annotation is missing or different', () => {
    const stale = liveCm();
    delete stale.metadata!.labels!['kea.dev/owner-kind'];
    const { versions } = run([stale]);
    expect(versions).toHaveLength(1);
    expect(versions[0]).toEqual(liveCm());
    const relabelled = liveCm();
    relabelled.metadata!.labels!['kea.dev/api-version'] = '9.9';
    expect(run([relabelled]).versions).toEqual([liveCm()]);
  });

  it('adopts a hand-made version ConfigMap (annotations filled from its text)', () => {
    const hand = {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: {
        name: 'hand',
        namespace: 'kea-system',
        labels: { 'kea.dev/owner': 'ApiSchema.school.grades', 'kea.dev/component': 'api-version' },
        creationTimestamp: '2025-03-01T00:00:00Z',
      },
      data: { 'openapi.json': text },
    } as unknown as KubernetesObject;
    const { versions } = run([hand]);
    expect(versions).toHaveLength(1);
    expect(versions[0].metadata?.name).toBe('hand');
    expect(versions[0].metadata?.annotations).toEqual({
      'kea.dev/api-schema': 'school/grades',
      'kea.dev/digest': sha(text),
      'kea.dev/version': '1.1.0',
      'kea.dev/published-at': '2025-03-01T00:00:00Z',
    });
    expect((versions[0] as { data?: Record<string, string> }).data?.['openapi.json']).toBe(text);
  });

  it('renders a new version with the current document', () => {
    const { versions, st } = run([]);
    expect(versions).toHaveLength(1);
    expect((versions[0] as { data?: Record<string, string> }).data?.['openapi.json']).toBe(text);
    expect(st.versions?.[0]).toEqual({ version: '1.1.0', digest: sha(text), publishedAt: '2026-01-01T00:00:00Z' });
  });
});

describe('withDiscovered', () => {
  const base: ApiSchema = {
    apiVersion: 'kea.dev/v1alpha1',
    kind: 'ApiSchema',
    metadata: { name: 'svc', namespace: 'ns' },
    spec: {
      target: { service: { name: 'svc', port: 80 } },
      basePath: '/svc',
      info: { title: 'S', version: '1' },
      source: { openapi: { path: '/spec.json' } },
      components: { schemas: { Shared: { type: 'string' } } },
      operations: [{ operationId: 'mine', method: 'GET', path: '/items/{id}', parameters: [{ name: 'id', in: 'path', required: true }] }],
    },
  };
  const served = {
    openapi: '3.0.3',
    info: { title: 'S', version: '1' },
    paths: {
      '/items/{item}': {
        get: {
          operationId: 'theirs',
          parameters: [{ name: 'item', in: 'path', required: true, schema: { type: 'string' } }],
          responses: { '200': { description: 'ok' } },
        },
      },
      '/ping': { get: { operationId: 'mine', responses: { '200': { description: 'ok' } } } },
      '/new': {
        post: {
          operationId: 'create',
          requestBody: { content: { 'application/json': { schema: { $ref: '#/components/schemas/Shared' } } } },
          responses: { '200': { description: 'ok' } },
        },
      },
    },
    components: { schemas: { Shared: { type: 'object' } } },
  };

  it('leaves ApiSchemas without spec.source.openapi alone', () => {
    const plain = { ...base, spec: { ...base.spec, source: undefined } };
    expect(withDiscovered(plain, { fetchedAt: 't', doc: served })).toEqual({ resource: plain });
  });
  it('reports pending, failed and invalid documents without touching operations', () => {
    expect(withDiscovered(base, undefined).info).toMatchObject({ state: 'pending', path: '/spec.json' });
    expect(withDiscovered(base, { fetchedAt: 't', error: 'HTTP 503' }).info).toMatchObject({ state: 'failed', error: 'HTTP 503' });
    const inv = withDiscovered(base, { fetchedAt: 't', doc: { swagger: '2.0' }, digest: 'dd' });
    expect(inv.info).toMatchObject({ state: 'invalid', digest: 'dd' });
    expect(inv.info?.error).toMatch(/Swagger 2.0/);
    expect(inv.resource).toBe(base);
  });
  it('merges imported operations after inline ones; inline wins by operationId and by method + template', () => {
    const r = withDiscovered(base, { fetchedAt: 't', doc: served, digest: 'dd' });
    expect(r.info).toMatchObject({ state: 'imported', imported: 1, digest: 'dd' });
    expect(r.info?.shadowed.sort()).toEqual(['mine', 'theirs']);
    expect((r.resource.spec.operations as Operation[]).map((o) => o.operationId)).toEqual(['mine', 'create']);
    // Inline components win by name.
    expect(r.resource.spec.components?.schemas?.Shared).toEqual({ type: 'string' });
    // The original resource is not mutated.
    expect(base.spec.operations).toHaveLength(1);
  });
  it('uses the earlier document when the latest fetch failed (stale)', () => {
    const r = withDiscovered(base, { fetchedAt: 't', doc: served, digest: 'dd', error: 'timeout' });
    expect(r.info).toMatchObject({ state: 'stale', error: 'timeout', imported: 1 });
  });
  it('feeds imported operations through graph validation', () => {
    const g = buildGraph(
      {
        apiSchemas: [{ ...base, spec: { ...base.spec, operations: [] } }],
        mlServices: [],
        services: [{ apiVersion: 'v1', kind: 'Service', metadata: { name: 'svc', namespace: 'ns' }, spec: { ports: [{ port: 80 }] } } as KubernetesObject],
        referenceGrants: [],
        publishedVersions: [],
        discovered: { 'ns/svc': { fetchedAt: 't', doc: served, digest: 'dd' } },
      },
      {} as never,
    );
    expect(g.apiSchemas[0].operations.map((o) => o.operationId)).toEqual(['theirs', 'mine', 'create']);
    expect(g.apiSchemas[0].problems).toEqual([]);
  });
});

describe('contractCheck', () => {
  const api = (name: string, ops: Operation[], version = '1.0.0', basePath = `/${name}`): ApiSchema => ({
    apiVersion: 'kea.dev/v1alpha1',
    kind: 'ApiSchema',
    metadata: { name, namespace: 'm', creationTimestamp: '2026-01-01T00:00:00Z' },
    spec: { target: { mlService: { name: 'iris' } }, basePath, info: { title: 'I', version }, operations: ops },
  });
  const predict = (required: string[]): Operation => ({
    operationId: 'predict',
    method: 'POST',
    path: '/predict',
    requestBody: { required: true, schema: { type: 'object', required, properties: { a: { type: 'number' }, b: { type: 'number' } } } },
  });
  const mls = (revs: Array<[string, number, string?]>, allow?: boolean): MLService => ({
    apiVersion: 'kea.dev/v1alpha1',
    kind: 'MLService',
    metadata: { name: 'iris', namespace: 'm' },
    spec: {
      framework: 'sklearn',
      ...(allow ? { allowBreakingChanges: true } : {}),
      revisions: revs.map(([name, weight, apiSchema]) => ({ name, weight, modelUri: 's3://x', ...(apiSchema ? { apiSchema } : {}) })),
    },
  });
  const check = (m: MLService, schemas: ApiSchema[]) => {
    const g = buildGraph({ apiSchemas: schemas, mlServices: [m], services: [], referenceGrants: [], publishedVersions: [] }, {} as never);
    return contractCheck(m, new Map(g.apiSchemas.map((n) => [n.key, n])), { gatewayUrl: 'http://gw' });
  };
  const v1 = api('a1', [predict(['a'])]);
  const v2Breaking = api('a2', [predict(['a', 'b'])], '2.0.0');
  const v2Compatible = api('a2', [predict(['a']), { operationId: 'extra', method: 'GET', path: '/extra' }], '1.1.0');

  it('says nothing when no revision names an apiSchema', () => {
    expect(check(mls([['v1', 100]]), [])).toEqual({});
  });
  it('refuses a breaking canary and names the change; the stable is the highest weight (ties: first)', () => {
    const r = check(
      mls([
        ['v1', 50, 'a1'],
        ['v2', 50, 'a2'],
      ]),
      [v1, v2Breaking],
    );
    expect(r.check).toMatchObject({ stable: 'v1', refused: ['v2'] });
    expect(r.condition).toMatchObject({ type: 'ContractChecked', status: 'False', reason: 'BreakingApiChange' });
    expect(r.condition?.message).toContain('POST /predict: request body.b: became required');
    // Not a basePath change: the canary is compared under the stable one's basePath.
    expect(r.condition?.message).not.toMatch(/base path/);
    const swapped = check(
      mls([
        ['v2', 60, 'a2'],
        ['v1', 40, 'a1'],
      ]),
      [v1, v2Breaking],
    );
    expect(swapped.check?.stable).toBe('v2');
    // Seen from v2, v1 drops a required field: widening the request is not breaking.
    expect(swapped.condition).toMatchObject({ status: 'True', reason: 'Compatible' });
  });
  it('routes a breaking canary when allowBreakingChanges is true', () => {
    const r = check(
      mls(
        [
          ['v1', 90, 'a1'],
          ['v2', 10, 'a2'],
        ],
        true,
      ),
      [v1, v2Breaking],
    );
    expect(r.check?.refused).toEqual([]);
    expect(r.condition).toMatchObject({ status: 'True', reason: 'BreakingChangeAllowed' });
  });
  it('passes a compatible canary, skips weight-0 revisions and same-API revisions', () => {
    expect(
      check(
        mls([
          ['v1', 90, 'a1'],
          ['v2', 10, 'a2'],
        ]),
        [v1, v2Compatible],
      ).condition,
    ).toMatchObject({ status: 'True', reason: 'Compatible' });
    expect(
      check(
        mls([
          ['v1', 100, 'a1'],
          ['v2', 0, 'a2'],
        ]),
        [v1, v2Breaking],
      ).condition,
    ).toMatchObject({ status: 'True', reason: 'NoApiChange' });
    expect(
      check(
        mls([
          ['v1', 90, 'a1'],
          ['v2', 10, 'a1'],
        ]),
        [v1],
      ).condition,
    ).toMatchObject({ status: 'True', reason: 'NoApiChange' });
  });
  it('cannot check (Unknown, routed as declared) when a schema is missing or targets another MLService', () => {
    const missing = check(
      mls([
        ['v1', 90, 'a1'],
        ['v2', 10, 'zz'],
      ]),
      [v1],
    );
    expect(missing.condition).toMatchObject({ status: 'Unknown', reason: 'NotChecked' });
    expect(missing.check?.refused).toEqual([]);
    const other = { ...v2Breaking, spec: { ...v2Breaking.spec, target: { mlService: { name: 'wine' } } } };
    expect(
      check(
        mls([
          ['v1', 90, 'a1'],
          ['v2', 10, 'a2'],
        ]),
        [v1, other],
      ).condition?.message,
    ).toContain('does not target this MLService');
    expect(
      check(
        mls([
          ['v1', 90],
          ['v2', 10, 'a2'],
        ]),
        [v2Breaking],
      ).condition,
    ).toMatchObject({ status: 'Unknown', reason: 'NotChecked' });
  });
});
