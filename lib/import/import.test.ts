/**
 * Unit tests of `kea import` (lib/import): OpenAPI 3.1 → 3.0 conversion, operations and
 * components, KEA extensions, and the report of everything that cannot be routed. The
 * conversion of real FastAPI documents is tested end to end in lib/scan/compare.test.ts.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from '@jest/globals';
import { importOpenApi, importResultToYaml, loadOpenApi, toOpenApi30 } from './index.js';

const doc31 = {
  openapi: '3.1.0',
  info: { title: 'Shop API', version: '3.2.1', description: 'Sells things.' },
  servers: [{ url: 'https://shop.example/api' }],
  webhooks: { newOrder: { post: { responses: { '200': { description: 'ok' } } } } },
  paths: {
    '/items/{id}': {
      parameters: [{ $ref: '#/components/parameters/Id' }],
      get: {
        operationId: 'getItem',
        summary: 'Get an item',
        tags: ['items'],
        'x-kea-access': { mode: 'public' },
        'x-kea-cache': { ttlSeconds: 60, scope: 'shared' },
        parameters: [
          { name: 'fields', in: 'query', schema: { type: ['string', 'null'] } },
          { name: 'session', in: 'cookie', schema: { type: 'string' } },
        ],
        responses: {
          '200': { description: 'The item', content: { 'application/json': { schema: { $ref: '#/components/schemas/Item' } } } },
          '404': { $ref: '#/components/responses/NotFound' },
        },
      },
      put: {
        operationId: 'putItem',
        requestBody: { $ref: '#/components/requestBodies/ItemBody' },
        callbacks: { onChange: { '{$request.body#/hook}': { post: { responses: { '200': { description: 'ok' } } } } } },
        responses: { '204': { description: 'Stored' } },
      },
      trace: { responses: { '200': { description: 'echo' } } },
    },
    '/items/{id}/image': {
      post: {
        operationId: 'upload',
        requestBody: { content: { 'multipart/form-data': { schema: { type: 'object' } } } },
        responses: { '200': { description: 'ok' } },
      },
    },
    '/search/': { get: { operationId: 'search', responses: { '200': { description: 'ok' } } } },
    '/pages': {
      get: {
        responses: { '200': { description: 'A page', content: { 'application/json': { schema: { $ref: '#/components/schemas/Page[Item]' } } } } },
      },
    },
    '/report': {
      get: {
        operationId: 'getItem',
        responses: { '200': { description: 'CSV', content: { 'text/csv': { schema: { type: 'string' } } } } },
      },
    },
  },
  components: {
    parameters: { Id: { name: 'id', in: 'path', required: true, schema: { type: 'integer', exclusiveMinimum: 0 } } },
    requestBodies: {
      ItemBody: { required: true, content: { 'application/json': { schema: { $ref: '#/components/schemas/Item' } } } },
    },
    responses: { NotFound: { description: 'No such item', content: { 'application/problem+json': { schema: { $ref: '#/components/schemas/Problem' } } } } },
    schemas: {
      Item: {
        type: 'object',
        title: 'Item',
        required: ['name'],
        properties: {
          name: { type: 'string', examples: ['pen'] },
          kind: { const: 'thing', type: 'string' },
          parent: { anyOf: [{ $ref: '#/components/schemas/Item' }, { type: 'null' }] },
          price: { anyOf: [{ type: 'number', exclusiveMaximum: 1000 }, { type: 'null' }], description: 'EUR' },
          size: { $ref: '#/components/schemas/Size', description: 'how big' },
        },
      },
      Size: { type: 'string', enum: ['S', 'M', 'L'] },
      Problem: { type: 'object', properties: { title: { type: 'string' } } },
      'Page[Item]': { type: 'object', properties: { items: { type: 'array', items: { $ref: '#/components/schemas/Item' } } } },
      Unused: { type: 'string' },
    },
  },
};

describe('importOpenApi', () => {
  const { schema, unroutable } = importOpenApi(doc31, { namespace: 'shop', target: { service: { name: 'shop', port: 8080 } } });

  test('reports every thing it cannot route, with method, path and reason', () => {
    expect(unroutable).toEqual([
      'webhook newOrder: webhooks are outbound calls; not routed',
      'GET /api/items/{id}: cookie parameter session cannot be declared in an ApiSchema; not validated',
      'PUT /api/items/{id}: callback onChange is an outbound call; not routed',
      'TRACE /api/items/{id}: method TRACE cannot be routed by Gateway API HTTPRoutes; operation skipped',
      'POST /api/items/{id}/image: request body is not JSON (multipart/form-data); KEA validates and forwards JSON bodies only; operation skipped',
      'GET /api/search/: path is not a routable template (segments of [A-Za-z0-9._~:@-] or {name}, no trailing slash); operation skipped',
      'GET /api/report: operationId getItem is used twice; renamed getItem_get',
    ]);
  });

  test('writes the routable operations with parameters, bodies, responses and KEA extensions', () => {
    expect(schema.metadata).toEqual({ name: 'shop-api', namespace: 'shop' });
    expect(schema.spec.basePath).toBe('/shop-api');
    expect(schema.spec.target).toEqual({ service: { name: 'shop', port: 8080 } });
    expect(schema.spec.info).toEqual({ title: 'Shop API', version: '3.2.1', description: 'Sells things.' });
    expect(schema.spec.operations!.map((o) => `${o.operationId} ${o.method} ${o.path}`)).toEqual([
      'getItem GET /api/items/{id}',
      'putItem PUT /api/items/{id}',
      'get_api_pages GET /api/pages',
      'getItem_get GET /api/report',
    ]);
    const [get, put] = schema.spec.operations!;
    expect(get).toEqual({
      operationId: 'getItem',
      method: 'GET',
      path: '/api/items/{id}',
      summary: 'Get an item',
      tags: ['items'],
      parameters: [
        { name: 'id', in: 'path', required: true, schema: { type: 'integer', minimum: 0, exclusiveMinimum: true } },
        { name: 'fields', in: 'query', required: false, schema: { type: 'string', nullable: true } },
      ],
      responses: {
        '200': { description: 'The item', contentType: 'application/json', schema: { $ref: '#/components/schemas/Item' } },
        '404': { description: 'No such item', contentType: 'application/problem+json', schema: { $ref: '#/components/schemas/Problem' } },
      },
      access: { mode: 'public' },
      cache: { ttlSeconds: 60, scope: 'shared' },
    });
    expect(put.requestBody).toEqual({ required: true, contentType: 'application/json', schema: { $ref: '#/components/schemas/Item' } });
    expect(put.responses).toEqual({ '204': { description: 'Stored' } });
    expect(schema.spec.operations![3].responses!['200']).toEqual({ description: 'CSV', contentType: 'text/csv' });
  });

  test('converts 3.1 schemas to 3.0 and keeps only referenced components, with CRD-safe names', () => {
    const s = schema.spec.components!.schemas!;
    expect(Object.keys(s)).toEqual(['Item', 'Page_Item_', 'Problem', 'Size']);
    expect(s.Item).toEqual({
      type: 'object',
      title: 'Item',
      required: ['name'],
      properties: {
        name: { type: 'string', example: 'pen' },
        kind: { enum: ['thing'], type: 'string' },
        parent: { allOf: [{ $ref: '#/components/schemas/Item' }], nullable: true },
        price: { type: 'number', maximum: 1000, exclusiveMaximum: true, nullable: true, description: 'EUR' },
        size: { allOf: [{ $ref: '#/components/schemas/Size' }], description: 'how big' },
      },
    });
    expect(s.Page_Item_).toEqual({ type: 'object', properties: { items: { type: 'array', items: { $ref: '#/components/schemas/Item' } } } });
    expect(schema.spec.operations![2].responses!['200'].schema).toEqual({ $ref: '#/components/schemas/Page_Item_' });
  });

  test('the YAML lists what was not routed in its header', () => {
    const yaml = importResultToYaml({ schema, unroutable }, 'shop.json');
    expect(yaml.split('\n').slice(0, 3)).toEqual([
      '# Generated by `kea import` from shop.json.',
      '# 7 item(s) not routed or not enforced:',
      '#   webhook newOrder: webhooks are outbound calls; not routed',
    ]);
  });

  test('3.0 documents pass through; Swagger 2 and unknown versions are refused', () => {
    const d30 = {
      openapi: '3.0.3',
      info: { title: 't', version: '1' },
      paths: {
        '/a': { post: { operationId: 'a', requestBody: { content: { 'application/json': { schema: { type: 'integer', nullable: true } } } }, responses: {} } },
      },
    };
    const r = importOpenApi(d30, { name: 'a', source: { openapi: { refresh: true } } });
    expect(r.unroutable).toEqual([]);
    expect(r.schema.spec.source).toEqual({ openapi: { refresh: true } });
    expect(r.schema.spec.operations![0].requestBody).toEqual({ required: false, contentType: 'application/json', schema: { type: 'integer', nullable: true } });
    expect(toOpenApi30(d30)).toEqual(d30);
    expect(() => importOpenApi({ swagger: '2.0', paths: {} })).toThrow('Swagger 2.0 is not supported; convert it to OpenAPI 3 first');
    expect(() => importOpenApi({ openapi: '4.0.0' })).toThrow('unsupported OpenAPI version "4.0.0" (expected 3.0.x or 3.1.x)');
    expect(() => importOpenApi('nope')).toThrow('not an OpenAPI document');
  });

  test('undeclared path parameters and external refs are reported, not dropped', () => {
    const d = {
      openapi: '3.1.0',
      info: { title: 'x', version: '1' },
      paths: {
        '/a/{id}': {
          get: { operationId: 'a', responses: { '200': { description: 'ok', content: { 'application/json': { schema: { $ref: 'other.json#/X' } } } } } },
        },
      },
    };
    const r = importOpenApi(d);
    expect(r.unroutable).toEqual([
      'GET /a/{id}: path parameter {id} is not declared; added as a string',
      'external $ref other.json#/X is not supported: replaced by an empty schema',
    ]);
    expect(r.schema.spec.operations![0].parameters).toEqual([{ name: 'id', in: 'path', required: true, schema: { type: 'string' } }]);
  });
});

describe('loadOpenApi', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kea-import-'));
  let server: Server | undefined;
  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
    server?.close();
  });

  test('reads JSON and YAML files and http URLs; HTTP errors are thrown', async () => {
    writeFileSync(join(dir, 'a.json'), JSON.stringify(doc31));
    writeFileSync(join(dir, 'a.yaml'), 'openapi: 3.0.3\ninfo: {title: y, version: "1"}\npaths: {}\n');
    expect(await loadOpenApi(join(dir, 'a.json'))).toEqual(doc31);
    expect(await loadOpenApi(join(dir, 'a.yaml'))).toEqual({ openapi: '3.0.3', info: { title: 'y', version: '1' }, paths: {} });
    server = createServer((req, res) => {
      if (req.url === '/openapi.json') res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(doc31));
      else res.writeHead(404).end();
    });
    await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;
    expect(await loadOpenApi(`http://127.0.0.1:${port}/openapi.json`)).toEqual(doc31);
    await expect(loadOpenApi(`http://127.0.0.1:${port}/nope`)).rejects.toThrow(`GET http://127.0.0.1:${port}/nope: HTTP 404`);
  });
});

describe('JSON Schema 2020-12 keywords without a 3.0 equivalent', () => {
  test('are reported and dropped; tuples become items of any member type; property names are left alone', () => {
    const d = {
      openapi: '3.1.0',
      info: { title: 't', version: '1' },
      paths: {
        '/p': {
          post: {
            operationId: 'p',
            requestBody: {
              content: {
                'application/json': {
                  schema: {
                    type: 'object',
                    properties: {
                      pair: { type: 'array', prefixItems: [{ type: 'integer' }, { type: 'string' }], minItems: 2, maxItems: 2 },
                      same: { type: 'array', prefixItems: [{ type: 'number' }, { type: 'number' }], minItems: 2, maxItems: 2 },
                      contains: { type: 'object', patternProperties: { '^x': { type: 'string' } } },
                      if: { type: 'string' },
                    },
                  },
                },
              },
            },
            responses: {},
          },
        },
      },
    };
    const r = importOpenApi(d);
    expect(r.unroutable).toEqual([
      'schema POST /p requestBody application/json/properties/pair: prefixItems (tuple) has no OpenAPI 3.0 equivalent; each item is validated against any of the member schemas',
      'schema POST /p requestBody application/json/properties/same: prefixItems (tuple) has no OpenAPI 3.0 equivalent; each item is validated against any of the member schemas',
      'schema POST /p requestBody application/json/properties/contains: keyword patternProperties has no OpenAPI 3.0 equivalent; dropped (not validated)',
    ]);
    expect(r.schema.spec.operations![0].requestBody!.schema).toEqual({
      type: 'object',
      properties: {
        pair: { type: 'array', items: { anyOf: [{ type: 'integer' }, { type: 'string' }] }, minItems: 2, maxItems: 2 },
        same: { type: 'array', items: { type: 'number' }, minItems: 2, maxItems: 2 },
        contains: { type: 'object' },
        if: { type: 'string' },
      },
    });
  });
});
