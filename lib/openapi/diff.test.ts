import type { ApiSchema, Operation } from '../api/types.js';
import { diffOpenApi, renderDiffMarkdown, renderDiffText, type ApiDiff } from './diff.js';
import { generateOpenApi, type OpenAPIObject } from './generate.js';
import { api, irisV1, irisV2 } from './testdata/fixtures.js';

const gen = (s: ApiSchema) => generateOpenApi(s, { gatewayUrl: 'http://gw.test', issuerUrl: 'http://idp.test' });

/** A one-operation API whose operation the test mutates. */
function one(op: Partial<Operation>, extra: Partial<ApiSchema['spec']> = {}): ApiSchema {
  return api('svc', {
    ...extra,
    operations: [{ operationId: 'op', method: 'POST', path: '/op', ...op }],
  });
}
const body = (schema: Record<string, unknown>, required = true) => ({ requestBody: { schema, required } });
const resp = (schema: Record<string, unknown>) => ({ responses: { '200': { description: 'ok', schema } } });

function diff(a: ApiSchema, b: ApiSchema): ApiDiff {
  return diffOpenApi(gen(a), gen(b));
}
const kinds = (d: ApiDiff) => d.changes.map((c) => `${c.kind}:${c.breaking ? 'B' : 'nb'}`);

describe('diffOpenApi', () => {
  test('identical documents: no changes, not breaking', () => {
    const d = diff(irisV1, structuredClone(irisV1));
    expect(d).toEqual({ from: '1.0.0', to: '1.0.0', breaking: false, changes: [] });
  });

  test('iris v1 → v2: renamed field is breaking, probabilities and explain are not', () => {
    const d = diff(irisV1, irisV2);
    expect(d.from).toBe('1.0.0');
    expect(d.to).toBe('2.0.0');
    expect(d.breaking).toBe(true);
    expect(d.changes).toEqual(
      expect.arrayContaining([
        {
          kind: 'schema.property.renamed',
          breaking: true,
          path: '/paths/~1predict/post/requestBody/content/application~1json/schema/properties/measurements',
          message: 'POST /predict: request body: property "features" renamed to "measurements" (required)',
        },
        {
          kind: 'schema.property.added',
          breaking: false,
          path: '/paths/~1predict/post/responses/200/content/application~1json/schema/properties/probabilities',
          message: 'POST /predict: response 200.probabilities: optional property added',
        },
        expect.objectContaining({ kind: 'operation.added', breaking: false, path: '/paths/~1explain/post' }),
      ]),
    );
    expect(d.changes.filter((c) => c.breaking)).toHaveLength(1);
    expect(d.changes).toHaveLength(3);
  });

  test('iris v2 → v1 (rollback) is breaking the other way: explain and probabilities removed', () => {
    const d = diff(irisV2, irisV1);
    expect(kinds(d)).toEqual(expect.arrayContaining(['operation.removed:B', 'schema.property.removed:B', 'schema.property.renamed:B']));
  });

  test('operation removed → breaking; added → non-breaking', () => {
    const a = api('x', {
      operations: [
        { operationId: 'a', method: 'GET', path: '/a' },
        { operationId: 'b', method: 'GET', path: '/b' },
      ],
    });
    const b = api('x', {
      operations: [
        { operationId: 'a', method: 'GET', path: '/a' },
        { operationId: 'c', method: 'GET', path: '/c' },
      ],
    });
    expect(kinds(diff(a, b))).toEqual(['operation.removed:B', 'operation.added:nb']);
    expect(diff(a, b).changes[0].path).toBe('/paths/~1b/get');
  });

  test('operation moved (same operationId, new path) → breaking; renamed path param → no change', () => {
    const a = api('x', { operations: [{ operationId: 'get', method: 'GET', path: '/items/{id}' }] });
    const b = api('x', { operations: [{ operationId: 'get', method: 'GET', path: '/things/{id}' }] });
    expect(kinds(diff(a, b))).toEqual(['operation.moved:B']);
    const c = api('x', { operations: [{ operationId: 'get', method: 'GET', path: '/items/{itemId}' }] });
    expect(diff(a, c).changes).toEqual([]);
  });

  test('parameters: required added → breaking, optional added → not, removed → breaking, made required → breaking', () => {
    const base = one({ method: 'GET', parameters: [{ name: 'limit', in: 'query', schema: { type: 'integer' } }] });
    expect(
      kinds(
        diff(
          base,
          one({
            method: 'GET',
            parameters: [
              { name: 'limit', in: 'query', schema: { type: 'integer' } },
              { name: 'q', in: 'query', required: true },
            ],
          }),
        ),
      ),
    ).toEqual(['parameter.added:B']);
    expect(
      kinds(
        diff(
          base,
          one({
            method: 'GET',
            parameters: [
              { name: 'limit', in: 'query', schema: { type: 'integer' } },
              { name: 'q', in: 'query' },
            ],
          }),
        ),
      ),
    ).toEqual(['parameter.added:nb']);
    expect(kinds(diff(base, one({ method: 'GET' })))).toEqual(['parameter.removed:B']);
    expect(kinds(diff(base, one({ method: 'GET', parameters: [{ name: 'limit', in: 'query', required: true, schema: { type: 'integer' } }] })))).toEqual([
      'parameter.required:B',
    ]);
    expect(kinds(diff(one({ method: 'GET', parameters: [{ name: 'limit', in: 'query', required: true, schema: { type: 'integer' } }] }), base))).toEqual([
      'parameter.optional:nb',
    ]);
  });

  test('parameter type changes: integer → number widens the request (ok), → string is incompatible', () => {
    const p = (schema: Record<string, unknown>) => one({ method: 'GET', parameters: [{ name: 'limit', in: 'query', schema }] });
    expect(kinds(diff(p({ type: 'integer' }), p({ type: 'number' })))).toEqual(['schema.type:nb']);
    expect(kinds(diff(p({ type: 'number' }), p({ type: 'integer' })))).toEqual(['schema.type:B']);
    const d = diff(p({ type: 'integer' }), p({ type: 'string' }));
    expect(d.changes).toEqual([
      {
        kind: 'schema.type',
        breaking: true,
        path: '/paths/~1op/get/parameters/query/limit/schema/type',
        message: 'GET /op: query parameter "limit": type changed from integer to string',
      },
    ]);
    // header names compare case-insensitively
    const h1 = one({ method: 'GET', parameters: [{ name: 'X-Trace', in: 'header' }] });
    const h2 = one({ method: 'GET', parameters: [{ name: 'x-trace', in: 'header' }] });
    expect(diff(h1, h2).changes).toEqual([]);
  });

  test('request body: required property added → breaking; optional → not; removed required → breaking; removed optional (open object) → not', () => {
    const o = { type: 'object', required: ['a'], properties: { a: { type: 'string' }, b: { type: 'string' } } };
    expect(kinds(diff(one(body(o)), one(body({ ...o, required: ['a', 'c'], properties: { ...o.properties, c: { type: 'integer' } } }))))).toEqual([
      'schema.property.added:B',
    ]);
    expect(kinds(diff(one(body(o)), one(body({ ...o, properties: { ...o.properties, c: { type: 'integer' } } }))))).toEqual(['schema.property.added:nb']);
    expect(kinds(diff(one(body(o)), one(body({ type: 'object', properties: { b: { type: 'string' } } }))))).toEqual(['schema.property.removed:B']);
    expect(kinds(diff(one(body(o)), one(body({ type: 'object', required: ['a'], properties: { a: { type: 'string' } } }))))).toEqual([
      'schema.property.removed:nb',
    ]);
    expect(
      kinds(diff(one(body(o)), one(body({ type: 'object', required: ['a'], properties: { a: { type: 'string' } }, additionalProperties: false })))),
    ).toEqual(expect.arrayContaining(['schema.property.removed:B', 'schema.additionalProperties:B']));
  });

  test('request body: required flag and presence', () => {
    const s = { type: 'object' };
    expect(kinds(diff(one({}), one(body(s, true))))).toEqual(['requestBody.added:B']);
    expect(kinds(diff(one({}), one(body(s, false))))).toEqual(['requestBody.added:nb']);
    expect(kinds(diff(one(body(s)), one({})))).toEqual(['requestBody.removed:B']);
    expect(kinds(diff(one(body(s, false)), one(body(s, true))))).toEqual(['requestBody.required:B']);
    expect(kinds(diff(one(body(s, true)), one(body(s, false))))).toEqual(['requestBody.optional:nb']);
  });

  test('media types: request type dropped → breaking, response type added → not', () => {
    const a = one({ requestBody: { schema: { type: 'string' }, contentType: 'text/plain' } });
    const b = one({ requestBody: { schema: { type: 'string' }, contentType: 'application/json' } });
    expect(kinds(diff(a, b))).toEqual(['requestBody.mediaType.removed:B', 'requestBody.mediaType.added:nb']);
  });

  test('enums: request narrowing breaks, widening does not; response is the mirror image', () => {
    const e = (vals: string[]) => ({ type: 'object', properties: { c: { type: 'string', enum: vals } } });
    expect(kinds(diff(one(body(e(['a', 'b']))), one(body(e(['a'])))))).toEqual(['schema.enum.removed:B']);
    expect(kinds(diff(one(body(e(['a']))), one(body(e(['a', 'b'])))))).toEqual(['schema.enum.added:nb']);
    expect(kinds(diff(one(resp(e(['a']))), one(resp(e(['a', 'b'])))))).toEqual(['schema.enum.added:B']);
    expect(kinds(diff(one(resp(e(['a', 'b']))), one(resp(e(['a'])))))).toEqual(['schema.enum.removed:nb']);
    const msg = diff(one(body(e(['a', 'b']))), one(body(e(['a'])))).changes[0].message;
    expect(msg).toBe('POST /op: request body.c: enum value "b" removed');
  });

  test('responses: field removed → breaking, field became optional → breaking, became nullable → breaking; added → not', () => {
    const r = { type: 'object', required: ['x'], properties: { x: { type: 'number' }, y: { type: 'string' } } };
    expect(kinds(diff(one(resp(r)), one(resp({ ...r, properties: { x: { type: 'number' } } }))))).toEqual(['schema.property.removed:B']);
    expect(kinds(diff(one(resp(r)), one(resp({ ...r, required: [] }))))).toEqual(['schema.required:B']);
    expect(kinds(diff(one(resp(r)), one(resp({ ...r, properties: { ...r.properties, x: { type: 'number', nullable: true } } }))))).toEqual([
      'schema.nullable:B',
    ]);
    expect(kinds(diff(one(resp(r)), one(resp({ ...r, properties: { ...r.properties, z: { type: 'boolean' } } }))))).toEqual(['schema.property.added:nb']);
    expect(kinds(diff(one(resp(r)), one(resp({ ...r, additionalProperties: true }))))).toEqual([]);
  });

  test('status codes: success status removed → breaking; new status → not', () => {
    const a = one({ responses: { '200': { description: 'ok' } } });
    const b = one({ responses: { '201': { description: 'created' } } });
    expect(kinds(diff(a, b))).toEqual(['response.removed:B', 'response.added:nb']);
    const c = one({ responses: { '200': { description: 'ok' }, '404': { description: 'nf' } } });
    expect(kinds(diff(c, a))).toEqual(['response.removed:nb']);
  });

  test('bounds: tighter request bounds break, looser do not; response bounds mirror', () => {
    const n = (c: Record<string, unknown>) => ({ type: 'object', properties: { v: { type: 'number', ...c } } });
    expect(kinds(diff(one(body(n({ maximum: 10 }))), one(body(n({ maximum: 5 })))))).toEqual(['schema.constraint:B']);
    expect(kinds(diff(one(body(n({ maximum: 5 }))), one(body(n({ maximum: 10 })))))).toEqual(['schema.constraint:nb']);
    expect(kinds(diff(one(body(n({}))), one(body(n({ minimum: 0 })))))).toEqual(['schema.constraint:B']);
    expect(kinds(diff(one(resp(n({ maximum: 5 }))), one(resp(n({ maximum: 10 })))))).toEqual(['schema.constraint:B']);
    const arr = (c: Record<string, unknown>) => ({ type: 'array', items: { type: 'number' }, ...c });
    const d = diff(one(body(arr({ maxItems: 100 }))), one(body(arr({ maxItems: 10 }))));
    expect(d.changes[0]).toMatchObject({ breaking: true, path: '/paths/~1op/post/requestBody/content/application~1json/schema/maxItems' });
  });

  test('nested arrays and $ref components are followed', () => {
    const a = one(body({ $ref: '#/components/schemas/In' }), {
      components: {
        schemas: {
          In: { type: 'object', properties: { rows: { type: 'array', items: { $ref: '#/components/schemas/Row' } } } },
          Row: { type: 'object', required: ['id'], properties: { id: { type: 'integer' } } },
        },
      },
    });
    const b = structuredClone(a);
    (b.spec.components!.schemas!.Row as any).properties.id.type = 'string';
    const d = diff(a, b);
    expect(d.changes).toEqual([
      {
        kind: 'schema.type',
        breaking: true,
        path: '/paths/~1op/post/requestBody/content/application~1json/schema/properties/rows/items/properties/id/type',
        message: 'POST /op: request body.rows[].id: type changed from integer to string',
      },
    ]);
  });

  test('recursive schemas terminate', () => {
    const tree = { type: 'object', properties: { children: { type: 'array', items: { $ref: '#/components/schemas/Node' } }, v: { type: 'integer' } } };
    const a = one(body({ $ref: '#/components/schemas/Node' }), { components: { schemas: { Node: tree } } });
    const b = structuredClone(a);
    (b.spec.components!.schemas!.Node as any).properties.v.type = 'number';
    expect(kinds(diff(a, b))).toEqual(['schema.type:nb']);
  });

  test('oneOf variants: removed narrows the request (breaking), added widens it (not)', () => {
    const v = (n: number) => ({ oneOf: [{ type: 'string' }, { type: 'integer' }, { type: 'boolean' }].slice(0, n) });
    expect(kinds(diff(one(body(v(3))), one(body(v(2)))))).toEqual(['schema.variant.removed:B']);
    expect(kinds(diff(one(body(v(2))), one(body(v(3)))))).toEqual(['schema.variant.added:nb']);
  });

  test('access: public → authenticated and restricted role removal break; relaxing does not', () => {
    const acc = (access: Operation['access']) => one({ access });
    expect(kinds(diff(acc({ mode: 'public' }), acc({ mode: 'authenticated' })))).toEqual(['access.tightened:B']);
    expect(kinds(diff(acc({ mode: 'restricted', roles: ['a'] }), acc({ mode: 'authenticated' })))).toEqual(['access.relaxed:nb']);
    expect(kinds(diff(acc({ mode: 'restricted', roles: ['student', 'teacher'] }), acc({ mode: 'restricted', roles: ['teacher'] })))).toEqual([
      'access.tightened:B',
    ]);
    expect(kinds(diff(acc({ mode: 'restricted', roles: ['teacher'] }), acc({ mode: 'restricted', roles: ['teacher', 'admin'] })))).toEqual([
      'access.relaxed:nb',
    ]);
    expect(kinds(diff(acc({ mode: 'restricted', scopes: ['r'] }), acc({ mode: 'restricted', scopes: ['r', 'w'] })))).toEqual(['access.tightened:B']);
    const d = diff(acc({ mode: 'public' }), acc({ mode: 'restricted', roles: ['x'] }));
    expect(d.changes[0].message).toBe('POST /op: access changed from public to restricted');
  });

  test('rate limits: added, tightened, relaxed, removed, re-keyed or re-scoped are reported, never breaking', () => {
    const per = (requests: number, period: string, extra: Record<string, unknown> = {}) => [{ name: 'per-x', requests, period, ...extra }];
    const lim = (rateLimit?: Operation['rateLimit'], defaults?: ApiSchema['spec']['defaults']) => one({ rateLimit }, defaults ? { defaults } : {});
    const d = diff(lim(), lim(per(100, '1m')));
    // Only the limit: the 429 it brings is the gateway's own response, and headers are not compared.
    expect(d.changes).toEqual([
      {
        kind: 'rateLimit.tightened',
        breaking: false,
        path: '/paths/~1op/post/x-kea-rate-limit',
        message: 'POST /op: rate limit per-x added (100 requests per 1m per caller)',
      },
    ]);
    expect(d.breaking).toBe(false);
    const change = (a: unknown, b: unknown) => diff(lim(a as Operation['rateLimit']), lim(b as Operation['rateLimit']));
    expect(kinds(change(per(100, '1m'), per(50, '1m')))).toEqual(['rateLimit.tightened:nb']);
    expect(kinds(change(per(100, '1m'), per(100, '2m')))).toEqual(['rateLimit.tightened:nb']);
    expect(kinds(change(per(100, '1m', { burst: 10 }), per(100, '1m')))).toEqual(['rateLimit.tightened:nb']);
    expect(kinds(change(per(100, '1m'), per(200, '1m')))).toEqual(['rateLimit.relaxed:nb']);
    expect(kinds(change(per(100, '1m'), per(100, '1m', { burst: 0, key: 'identity' })))).toEqual([]);
    expect(change(per(100, '1m'), per(100, '60s')).changes).toEqual([]);
    expect(change(per(100, '1m'), per(200, '1m')).changes[0].message).toBe(
      'POST /op: rate limit per-x changed from 100 requests per 1m per caller to 200 requests per 1m per caller',
    );
    expect(change(per(100, '1m'), [])).toMatchObject({
      breaking: false,
      changes: [{ kind: 'rateLimit.relaxed', message: 'POST /op: rate limit per-x removed (was 100 requests per 1m per caller)' }],
    });
    expect(change(per(100, '1m'), per(100, '1m', { key: 'api' })).changes.map((c) => c.message)).toEqual([
      'POST /op: rate limit per-x now counted for all callers together, was per caller',
    ]);
    // The same numbers moved from the operation to the API's shared defaults.
    const shared = diff(lim(per(100, '1m')), lim(undefined, { rateLimit: per(100, '1m') }));
    expect(shared.changes.map((c) => `${c.kind} ${c.message}`)).toEqual([
      "rateLimit.changed POST /op: rate limit per-x now shared with the API's other operations that have no limit of their own",
    ]);
  });

  test('base path change and deprecation', () => {
    const a = one({});
    const b = { ...structuredClone(a), spec: { ...structuredClone(a.spec), basePath: '/svc2' } };
    expect(kinds(diff(a, b))).toEqual(['server.changed:B']);
    expect(kinds(diff(one({}), one({ deprecated: true })))).toEqual(['operation.deprecated:nb']);
    expect(kinds(diff(one({}), one({ operationId: 'renamed' })))).toEqual(['operation.id.changed:nb']);
  });

  test('inference signatures: changing the input shape [-1,4] → [-1,5] breaks, a new output does not', () => {
    const inf = (inDims: number[], outs = [{ name: 'y', datatype: 'INT64', shape: [-1] }]) =>
      api('m', { inference: { protocol: 'v2', inputs: [{ name: 'x', datatype: 'FP32', shape: inDims }], outputs: outs } });
    const d = diff(inf([-1, 4]), inf([-1, 5]));
    expect(d.breaking).toBe(true);
    expect(d.changes.some((c) => c.kind === 'schema.constraint' && c.path.includes('/requestBody/') && c.path.endsWith('/minItems'))).toBe(true);
    const d2 = diff(
      inf([-1, 4]),
      inf(
        [-1, 4],
        [
          { name: 'y', datatype: 'INT64', shape: [-1] },
          { name: 'p', datatype: 'FP32', shape: [-1, 3] },
        ],
      ),
    );
    // the request may now name output "p" (widening: fine); the response may carry a second tensor kind (oneOf widening: breaking for strict readers)
    expect(d2.changes.map((c) => `${c.kind}:${c.breaking ? 'B' : 'nb'} ${c.path.replace('/paths/~1v2~1models~1m~1infer/post', '')}`)).toEqual([
      'schema.variant.added:B /responses/200/content/application~1json/schema/properties/outputs/items/oneOf/1',
      'schema.constraint:B /responses/200/content/application~1json/schema/properties/outputs/maxItems',
      'schema.enum.added:nb /requestBody/content/application~1json/schema/properties/outputs/items/properties/name/enum',
    ]);
    // and the plain → oneOf direction is handled the same way for requests: a new alternative is fine
    const one = (items: Record<string, unknown>) =>
      api('v', { operations: [{ operationId: 'p', method: 'POST', path: '/p', requestBody: { schema: { type: 'array', items } } }] });
    expect(kinds(diff(one({ type: 'string' }), one({ oneOf: [{ type: 'string' }, { type: 'integer' }] })))).toEqual(['schema.variant.added:nb']);
    expect(kinds(diff(one({ oneOf: [{ type: 'string' }, { type: 'integer' }] }), one({ type: 'string' })))).toEqual(['schema.variant.removed:B']);
  });

  test('works on plain third-party OpenAPI documents (no x-kea extensions)', () => {
    const mk = (extra: Record<string, unknown>): OpenAPIObject => ({
      openapi: '3.0.3',
      info: { title: 't', version: '1' },
      servers: [{ url: 'http://svc/api' }],
      paths: {
        '/p': {
          get: {
            operationId: 'p',
            security: [],
            parameters: [{ name: 'a', in: 'query', schema: { type: 'string' } }],
            responses: { '200': { description: 'ok' } },
            ...extra,
          },
        },
      },
    });
    expect(kinds(diffOpenApi(mk({}), mk({ security: [{ bearer: [] }] })))).toEqual(['access.tightened:B']);
    expect(diffOpenApi(mk({}), mk({})).changes).toEqual([]);
  });

  test('changes are sorted (breaking first) and deterministic', () => {
    const d1 = diff(irisV1, irisV2);
    const d2 = diff(irisV1, irisV2);
    expect(d1).toEqual(d2);
    const idx = d1.changes.findIndex((c) => !c.breaking);
    expect(d1.changes.slice(idx).every((c) => !c.breaking)).toBe(true);
  });
});

describe('rendering', () => {
  test('markdown lists breaking and non-breaking changes', () => {
    const md = renderDiffMarkdown(diffOpenApi(gen(irisV1), gen(irisV2)));
    expect(md).toMatch(/^## What changed in v2\.0\.0 \(since v1\.0\.0\)/);
    expect(md).toMatch(/\*\*1 breaking\*\*, 2 non-breaking changes/);
    expect(md).toMatch(/### Breaking changes\n\n- ⚠️ POST \/predict: request body: property "features" renamed to "measurements"/);
    expect(md).toMatch(/### Non-breaking changes/);
    expect(renderDiffMarkdown(diffOpenApi(gen(irisV1), gen(irisV1)))).toMatch(/No changes/);
  });
  test('text marks breaking lines', () => {
    const t = renderDiffText(diffOpenApi(gen(irisV1), gen(irisV2)));
    expect(t.split('\n')[0]).toBe('API diff 1.0.0 → 2.0.0: 3 change(s), 1 breaking');
    expect(t).toMatch(/^BREAKING {4}\s+POST \/predict/m);
  });
});
