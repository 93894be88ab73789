import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import YAML from 'yaml';
import type { ApiSchema } from '../api/types.js';
import { apiSchemaId, buildCatalog, generateOpenApi, listMethods, toOas30Schema, type GenerateOptions, type OpenAPIObject } from './generate.js';
import { scalarSchema } from './inference.js';
import { api, irisV1, VARIED } from './testdata/fixtures.js';
import { requestValidator, responseValidator, validateOpenApi } from './testdata/validate.js';

const OPTS = { gatewayUrl: 'https://gw.example.com/', issuerUrl: 'https://idp.example.com/realms/kea' };
const gen = (s: ApiSchema, o: GenerateOptions = OPTS) => generateOpenApi(s, o);

describe('every generated document passes the OpenAPI 3.0 validator', () => {
  test('there are at least 20 varied fixtures', () => {
    expect(VARIED.length).toBeGreaterThanOrEqual(20);
  });
  test.each(VARIED.map((s) => [`${apiSchemaId(s)}@${s.spec.info.version}`, s] as const))('%s', async (_id, s) => {
    expect(await validateOpenApi(gen(s))).toEqual([]);
    // and without an issuer (bearer only)
    expect(await validateOpenApi(gen(s, { gatewayUrl: 'http://localhost:8080' }))).toEqual([]);
  });
  test('the validator itself rejects broken documents (the check can fail)', async () => {
    const doc = gen(irisV1);
    (doc.paths['/predict'].post as any).responses['200'].content['application/json'].schema.properties.classes.type = 'list';
    expect((await validateOpenApi(doc)).length).toBeGreaterThan(0);
    const doc2 = gen(irisV1);
    (doc2.paths['/predict'].post as any).responses['401'] = { $ref: '#/components/responses/Nope' };
    expect((await validateOpenApi(doc2)).length).toBeGreaterThan(0);
    const doc3 = gen(irisV1);
    (doc3.paths['/predict'].post as any).requestBody.content['application/json'].example = { features: [[1, 2, 3]] };
    expect((await validateOpenApi(doc3)).join()).toMatch(/example invalid/);
  });
});

const samplesDir = join(process.cwd(), 'manifests', 'samples');
const sampleSchemas: Array<[string, ApiSchema]> = [];
if (existsSync(samplesDir)) {
  for (const f of readdirSync(samplesDir)
    .filter((f) => /\.ya?ml$/.test(f))
    .sort()) {
    for (const d of YAML.parseAllDocuments(readFileSync(join(samplesDir, f), 'utf8'))) {
      const o = d.toJS() as ApiSchema | null;
      if (o?.kind === 'ApiSchema') sampleSchemas.push([`${f}:${o.metadata.name}`, o]);
    }
  }
}
(sampleSchemas.length ? describe : describe.skip)('manifests/samples ApiSchemas validate', () => {
  test.each(sampleSchemas.length ? sampleSchemas : [['none', irisV1] as [string, ApiSchema]])('%s', async (_f, s) => {
    expect(await validateOpenApi(gen(s))).toEqual([]);
  });
});

describe('document contents', () => {
  const doc = gen(irisV1);
  test('info, servers = gateway + basePath, x-kea', () => {
    expect(doc.openapi).toBe('3.0.3');
    expect(doc.info).toEqual({ title: 'Iris classifier', version: '1.0.0', description: 'Predicts iris species.' });
    expect(doc.servers).toEqual([{ url: 'https://gw.example.com/iris', description: 'KEA gateway' }]);
    expect(doc['x-kea']).toMatchObject({ id: 'models/iris', basePath: '/iris' });
  });
  test('security schemes: openIdConnect discovery URL and bearer JWT; public ops get security: []', () => {
    expect(doc.components!.securitySchemes).toEqual({
      bearerAuth: expect.objectContaining({ type: 'http', scheme: 'bearer', bearerFormat: 'JWT' }),
      oidc: expect.objectContaining({ type: 'openIdConnect', openIdConnectUrl: 'https://idp.example.com/realms/kea/.well-known/openid-configuration' }),
    });
    expect(doc.paths['/healthz'].get!.security).toEqual([]);
    expect(doc.paths['/predict'].post!.security).toEqual([{ oidc: [] }, { bearerAuth: [] }]);
    const noIdp = gen(irisV1, { gatewayUrl: 'http://x' });
    expect(Object.keys(noIdp.components!.securitySchemes!)).toEqual(['bearerAuth']);
  });
  test('gateway problem+json responses by operation kind', () => {
    const codes = (m: string, p: string, d: OpenAPIObject = doc) => Object.keys((d.paths[p] as any)[m].responses);
    expect(codes('post', '/predict')).toEqual(['200', '400', '401', '413', '415', '502', '504']);
    expect(codes('get', '/healthz')).toEqual(['200', '502', '504']);
    const grades = gen(VARIED.find((s) => s.metadata.name === 'grades')!);
    expect(codes('post', '/set_grades', grades)).toEqual(['200', '400', '401', '403', '413', '415', '502', '504']);
    expect(codes('get', '/me', grades)).toEqual(['200', '401', '502', '504']);
    expect(doc.paths['/predict'].post!.responses['413'].$ref).toBe('#/components/responses/PayloadTooLarge');
    const problem = doc.components!.schemas!.Problem as any;
    expect(problem.properties.errors.items.required).toEqual(['in', 'pointer', 'message']);
    expect(doc.components!.responses!.BadRequest).toMatchObject({
      content: { 'application/problem+json': { schema: { $ref: '#/components/schemas/Problem' } } },
    });
    // an operation's own status wins over the gateway's
    const legacy = gen(VARIED.find((s) => s.metadata.name === 'legacy')!);
    expect(legacy.paths['/v0/predict'].post!.responses['400'].description).toBe('Model-specific error');
  });
  test('restricted access: scopes on the OIDC requirement, roles in the description and x-kea-access', () => {
    const grades = gen(VARIED.find((s) => s.metadata.name === 'grades')!);
    const set = grades.paths['/set_grades'].post!;
    expect(set.security).toEqual([{ oidc: ['grades:write'] }, { bearerAuth: [] }]);
    expect(set['x-kea-access']).toEqual({ mode: 'restricted', roles: ['teacher'], scopes: ['grades:write'] });
    expect(set.description).toMatch(/`teacher`/);
    expect(grades.paths['/courses'].get!['x-kea-cache']).toEqual({ ttlSeconds: 60, scope: 'shared' });
  });
  test('a user Problem schema is kept and the gateway one renamed', () => {
    const d = gen(VARIED.find((s) => s.metadata.name === 'collide')!);
    expect((d.components!.schemas!.Problem as any).properties.question).toBeDefined();
    expect((d.components!.responses!.BadRequest as any).content['application/problem+json'].schema.$ref).toBe('#/components/schemas/KeaProblem');
  });
  test('undeclared path variables become required string path parameters', () => {
    const d = gen(VARIED.find((s) => s.metadata.name === 'items')!);
    expect(d.paths['/items/{itemId}'].delete!.parameters).toEqual([{ name: 'itemId', in: 'path', required: true, schema: { type: 'string' } }]);
  });
  test('JSON Schema 2020 keywords are normalized to 3.0', () => {
    expect(toOas30Schema({ type: ['string', 'null'], const: 'a', exclusiveMinimum: 3, $comment: 'x', examples: ['a'] })).toEqual({
      type: 'string',
      nullable: true,
      enum: ['a'],
      minimum: 3,
      exclusiveMinimum: true,
      example: 'a',
    });
  });
  test('deterministic: same input, same bytes; operation order does not matter', () => {
    const s = VARIED.find((x) => x.metadata.name === 'grades')!;
    const reversed = structuredClone(s);
    reversed.spec.operations!.reverse();
    expect(JSON.stringify(gen(s))).toBe(JSON.stringify(gen(structuredClone(s))));
    expect(JSON.stringify(gen(reversed))).toBe(JSON.stringify(gen(s)));
    expect(Object.keys(gen(s).paths)).toEqual([...Object.keys(gen(s).paths)].sort());
  });
  test('passthrough: KEA enforces nothing, so no security, gateway errors or caching are documented', async () => {
    const s = api('pt', {
      policy: { mode: 'passthrough' },
      defaults: { access: { mode: 'restricted', roles: ['x'] } },
      operations: [{ operationId: 'p', method: 'POST', path: '/p', cache: { ttlSeconds: 5, scope: 'shared' }, requestBody: { schema: { type: 'object' } } }],
    });
    const d = gen(s);
    const op = d.paths['/p'].post!;
    expect(op.security).toEqual([]);
    expect(Object.keys(op.responses)).toEqual(['200']);
    expect(op['x-kea-access']).toEqual({ mode: 'public' });
    expect(op['x-kea-cache']).toBeUndefined();
    expect(op.description).toMatch(/^Passthrough/);
    expect(d.components!.responses).toBeUndefined();
    expect(await validateOpenApi(d)).toEqual([]);
  });
  test('rate limits: a 429 with Retry-After and the RateLimit headers, the limits in the description and x-kea-rate-limit', async () => {
    const s = VARIED.find((x) => x.metadata.name === 'limited')!;
    const d = gen(s);
    const predict = d.paths['/predict'].post!;
    const explain = d.paths['/explain'].post!;
    const health = d.paths['/health'].get!;
    expect(predict['x-kea-rate-limit']).toEqual([
      { name: 'per-second', requests: 10, period: '1s', burst: 5, key: 'identity', shared: true },
      { name: 'per-day', requests: 10000, period: '24h', burst: 0, key: 'api', shared: true },
    ]);
    expect(explain['x-kea-rate-limit']).toEqual([{ name: 'per-minute', requests: 6, period: '1m', burst: 0, key: 'address', shared: false }]);
    expect(health['x-kea-rate-limit']).toBeUndefined();
    expect(predict.description).toContain('Rate limits: `per-second`: 10 requests per 1s (+5 burst) per caller, shared with');
    expect(predict.description).toContain('`per-day`: 10000 requests per 24h for all callers together');
    expect(explain.description).toContain('Rate limits: `per-minute`: 6 requests per 1m per client address. Over a limit the gateway answers 429');
    expect(health.description).not.toMatch(/Rate limit/);
    // 429 for limited operations; 503 because the limits fail closed; neither for the unlimited one.
    expect(Object.keys(predict.responses)).toEqual(['200', '400', '413', '415', '429', '502', '503', '504']);
    expect(Object.keys(health.responses)).toEqual(['200', '502', '504']);
    expect(predict.responses['429']).toEqual({ $ref: '#/components/responses/TooManyRequests' });
    expect(predict.responses['503']).toEqual({ $ref: '#/components/responses/RateLimitUnavailable' });
    const tooMany = d.components!.responses!.TooManyRequests as any;
    expect(Object.keys(tooMany.headers)).toEqual(['Retry-After', 'RateLimit', 'RateLimit-Policy']);
    expect(tooMany.headers['Retry-After'].schema).toEqual({ type: 'integer', minimum: 1 });
    expect(tooMany.content['application/problem+json']).toMatchObject({
      schema: { $ref: '#/components/schemas/Problem' },
      example: { type: 'https://kea.dev/problems/rate-limited', status: 429, code: 'rate-limited' },
    });
    expect(Object.keys((d.components!.responses!.RateLimitUnavailable as any).headers)).toEqual(['Retry-After']);
    // The operation's own responses carry the headers, their example the operation's policy
    // (q = requests + burst, w = period in seconds).
    const ok = predict.responses['200'];
    expect(ok.headers['RateLimit-Policy'].example).toBe('"per-second";q=15;w=1, "per-day";q=10000;w=86400');
    expect(explain.responses['200'].headers['RateLimit-Policy'].example).toBe('"per-minute";q=6;w=60');
    expect(health.responses['200'].headers).toBeUndefined();
    expect(d['x-kea'].gatewayComponents.responses).toEqual([
      'BadGateway',
      'BadRequest',
      'GatewayTimeout',
      'PayloadTooLarge',
      'RateLimitUnavailable',
      'TooManyRequests',
      'UnsupportedMediaType',
    ]);
    expect(await validateOpenApi(d)).toEqual([]);
    // Failing open: no 503; passthrough: nothing is enforced, so no limit is documented.
    const open = gen({ ...s, spec: { ...s.spec, defaults: { ...s.spec.defaults, rateLimitFailMode: 'open' } } });
    expect(Object.keys(open.paths['/predict'].post!.responses)).not.toContain('503');
    const pt = gen({ ...s, spec: { ...s.spec, policy: { mode: 'passthrough' } } });
    expect(pt.paths['/predict'].post!['x-kea-rate-limit']).toBeUndefined();
    expect(Object.keys(pt.paths['/explain'].post!.responses)).toEqual(['200']);
    // /methods (and the portal's operation table) carry them too.
    const m = listMethods([{ id: apiSchemaId(s), doc: d }]);
    expect(m.find((e) => e.operationId === 'explain')!.rateLimit).toEqual(explain['x-kea-rate-limit']);
    expect(m.find((e) => e.operationId === 'health')!.rateLimit).toBeUndefined();
  });
  test('duplicate operationIds and routes are errors', () => {
    const dupId = api('d', {
      operations: [
        { operationId: 'a', method: 'GET', path: '/a' },
        { operationId: 'a', method: 'GET', path: '/b' },
      ],
    });
    expect(() => gen(dupId)).toThrow(/duplicate operationId "a"/);
    const dupRoute = api('d', {
      operations: [
        { operationId: 'a', method: 'GET', path: '/x/{id}' },
        { operationId: 'b', method: 'GET', path: '/x/{key}' },
      ],
    });
    expect(() => gen(dupRoute)).toThrow(/duplicate route/);
  });
});

describe('inference signatures become typed operations', () => {
  test('scalar types per datatype', () => {
    expect(scalarSchema('FP32')).toEqual({ type: 'number', format: 'float' });
    expect(scalarSchema('FP64')).toEqual({ type: 'number', format: 'double' });
    expect(scalarSchema('INT8')).toEqual({ type: 'integer', format: 'int32', minimum: -128, maximum: 127 });
    expect(scalarSchema('UINT8')).toEqual({ type: 'integer', format: 'int32', minimum: 0, maximum: 255 });
    expect(scalarSchema('BYTES')).toEqual({ type: 'string' });
    expect(scalarSchema('BOOL')).toEqual({ type: 'boolean' });
    expect(() => scalarSchema('FP8')).toThrow(/unknown tensor datatype "FP8"/);
  });
  test('v2: FP32 [-1,4] → inputs[].data is an array of arrays of 4 numbers', async () => {
    const d = gen(VARIED.find((s) => s.metadata.name === 'iris-v2')!);
    expect(Object.keys(d.paths)).toEqual(['/v2/models/iris-v2', '/v2/models/iris-v2/infer', '/v2/models/iris-v2/ready']);
    const input = (d.paths['/v2/models/iris-v2/infer'].post!.requestBody as any).content['application/json'].schema.properties.inputs.items;
    expect(input.properties.data.anyOf[0]).toEqual({
      type: 'array',
      items: { type: 'array', items: { type: 'number', format: 'float' }, minItems: 4, maxItems: 4 },
    });
    const ok = await requestValidator(d, 'post', '/v2/models/iris-v2/infer');
    expect(
      ok({
        inputs: [
          {
            name: 'input-0',
            shape: [2, 4],
            datatype: 'FP32',
            data: [
              [5.1, 3.5, 1.4, 0.2],
              [6, 3, 4.8, 1.8],
            ],
          },
        ],
      }),
    ).toBe(true);
    expect(ok({ inputs: [{ name: 'input-0', shape: [1, 4], datatype: 'FP32', data: [5.1, 3.5, 1.4, 0.2] }] })).toBe(true); // flattened
    expect(ok({ inputs: [{ name: 'input-0', shape: [1, 3], datatype: 'FP32', data: [[5.1, 3.5, 1.4]] }] })).toBe(false); // 3 features
    expect(ok({ inputs: [{ name: 'input-0', shape: [1, 4], datatype: 'FP64', data: [[1, 2, 3, 4]] }] })).toBe(false); // wrong dtype
    expect(ok({ inputs: [{ name: 'other', shape: [1, 4], datatype: 'FP32', data: [[1, 2, 3, 4]] }] })).toBe(false); // unknown tensor
    expect(ok({ inputs: [{ name: 'input-0', shape: [1, 4], datatype: 'FP32', data: [['a', 2, 3, 4]] }] })).toBe(false);
    const resp = await responseValidator(d, 'post', '/v2/models/iris-v2/infer');
    expect(resp({ model_name: 'iris-v2', outputs: [{ name: 'output-0', shape: [2], datatype: 'INT64', data: [0, 2] }] })).toBe(true);
    expect(resp({ model_name: 'iris-v2', outputs: [{ name: 'output-0', shape: [2], datatype: 'INT64', data: [0.5, 2] }] })).toBe(false);
  });
  test('v2 multi-input: every declared tensor required, typed per name; INT bounds and BOOL', async () => {
    const d = gen(VARIED.find((s) => s.metadata.name === 'multi')!);
    const ok = await requestValidator(d, 'post', '/v2/models/multi/infer');
    const tokens = { name: 'tokens', shape: [1, 128], datatype: 'INT32', data: [Array(128).fill(7)] };
    const mask = { name: 'mask', shape: [1, 128], datatype: 'BOOL', data: [Array(128).fill(true)] };
    const text = { name: 'text', shape: [1], datatype: 'BYTES', data: ['hello'] };
    expect(ok({ inputs: [tokens, mask, text] })).toBe(true);
    expect(ok({ inputs: [tokens, mask] })).toBe(false);
    expect(ok({ inputs: [{ ...tokens, data: [Array(128).fill(2 ** 40)] }, mask, text] })).toBe(false);
    expect(ok({ inputs: [tokens, { ...mask, data: [Array(128).fill(1)] }, text] })).toBe(false);
  });
  test('UINT8 [2,2] fixed shape and scalar output', async () => {
    const d = gen(VARIED.find((s) => s.metadata.name === 'bytes-v2')!);
    const ok = await requestValidator(d, 'post', '/v2/models/bytes-v2/infer');
    expect(
      ok({
        inputs: [
          {
            name: 'u8',
            shape: [2, 2],
            datatype: 'UINT8',
            data: [
              [0, 255],
              [1, 2],
            ],
          },
        ],
      }),
    ).toBe(true);
    expect(
      ok({
        inputs: [
          {
            name: 'u8',
            shape: [2, 2],
            datatype: 'UINT8',
            data: [
              [0, 256],
              [1, 2],
            ],
          },
        ],
      }),
    ).toBe(false);
    expect(
      ok({
        inputs: [
          {
            name: 'u8',
            shape: [3, 2],
            datatype: 'UINT8',
            data: [
              [0, 1],
              [1, 2],
              [3, 4],
            ],
          },
        ],
      }),
    ).toBe(false);
  });
  test('tfserving: POST /v1/models/{m}:predict with instances = rows without the batch dim', async () => {
    const d = gen(VARIED.find((s) => s.metadata.name === 'mnist')!);
    expect(Object.keys(d.paths)).toEqual(['/v1/models/mnist', '/v1/models/mnist/metadata', '/v1/models/mnist:predict']);
    const ok = await requestValidator(d, 'post', '/v1/models/mnist:predict');
    const img = Array.from({ length: 28 }, () => Array(28).fill(0.1));
    expect(ok({ instances: [img, img] })).toBe(true);
    expect(ok({ instances: [img.slice(1)] })).toBe(false);
    expect(ok({ inputs: [img] })).toBe(false);
    const multi = gen(VARIED.find((s) => s.metadata.name === 'tf-multi')!);
    const ok2 = await requestValidator(multi, 'post', '/v1/models/wide_deep:predict');
    expect(ok2({ instances: [{ age: 42, occupation: 'engineer' }] })).toBe(true);
    expect(ok2({ instances: [{ age: 'old', occupation: 'engineer' }] })).toBe(false);
    const fixed = gen(VARIED.find((s) => s.metadata.name === 'tf-fixed-batch')!);
    const ok3 = await requestValidator(fixed, 'post', '/v1/models/tf-fixed-batch:predict');
    expect(
      ok3({
        instances: [
          [1, 2, 3],
          [4, 5, 6],
        ],
      }),
    ).toBe(true);
    expect(ok3({ instances: [[1, 2, 3]] })).toBe(false);
  });
  test('inline operations override derived ones and are kept alongside', () => {
    const s = api('ov', {
      inference: { protocol: 'v2', inputs: [{ name: 'x', datatype: 'FP32', shape: [-1, 2] }], outputs: [{ name: 'y', datatype: 'FP32', shape: [-1] }] },
      operations: [{ operationId: 'infer', method: 'POST', path: '/v2/models/ov/infer', summary: 'custom', access: { mode: 'public' } }],
    });
    const d = gen(s);
    expect(d.paths['/v2/models/ov/infer'].post!.summary).toBe('custom');
    expect(d.paths['/v2/models/ov/ready'].get).toBeDefined();
  });
  test('bad signatures are rejected with a precise message', () => {
    const bad = api('b', {
      inference: { protocol: 'v2', inputs: [{ name: 'x', datatype: 'FLOAT', shape: [-1] }], outputs: [{ name: 'y', datatype: 'FP32', shape: [-1] }] },
    });
    expect(() => gen(bad)).toThrow(/spec.inference.inputs\[0\]|unknown tensor datatype "FLOAT"/);
    const badShape = api('b', {
      inference: { protocol: 'v2', inputs: [{ name: 'x', datatype: 'FP32', shape: [-2] }], outputs: [{ name: 'y', datatype: 'FP32', shape: [-1] }] },
    });
    expect(() => gen(badShape)).toThrow(/shape of "x"/);
  });
});

describe('catalog and /methods', () => {
  const docs = VARIED.slice(1).map((s) => ({ id: apiSchemaId(s), doc: gen(s) }));
  const cat = buildCatalog(docs, 'https://gw.example.com');
  test('the catalog validates and has every operation once, prefixed by basePath, ids namespaced', async () => {
    expect(await validateOpenApi(cat)).toEqual([]);
    const total = docs.reduce(
      (n, d) => n + Object.values(d.doc.paths).reduce((m, item) => m + Object.keys(item).filter((k) => !k.startsWith('x-')).length, 0),
      0,
    );
    const catOps = Object.values(cat.paths).reduce((m, item) => m + Object.keys(item).length, 0);
    expect(catOps).toBe(total);
    expect(cat.servers).toEqual([{ url: 'https://gw.example.com', description: 'KEA gateway' }]);
    expect(cat.paths['/iris/predict'].post!.operationId).toBe('models.iris.predict');
    expect(cat.paths['/iris-v2/v2/models/iris-v2/infer'].post!.operationId).toBe('models.iris-v2.infer');
    expect(cat.paths['/'].get!.operationId).toBe('apps.root.index');
  });
  test('components: service schemas prefixed and refs rewritten, gateway ones shared', () => {
    const schemas = cat.components!.schemas!;
    expect(schemas['models_shapes_Circle']).toBeDefined();
    expect((schemas['models_shapes_Shape'] as any).oneOf[0].$ref).toBe('#/components/schemas/models_shapes_Circle');
    expect(schemas.Problem).toBeDefined();
    expect(schemas['models_collide_Problem']).toBeDefined();
    expect(schemas['models_collide_KeaProblem']).toBeUndefined();
    expect(cat.components!.responses!.BadRequest).toBeDefined();
    // collide's own BadRequest points at its KeaProblem, so it cannot be shared under the same name
    expect((cat.components!.responses!['models_collide_BadRequest'] as any).content['application/problem+json'].schema.$ref).toBe(
      '#/components/schemas/KeaProblem',
    );
  });
  test('an empty gateway URL still gives a valid catalog (relative server)', async () => {
    const c = buildCatalog(docs.slice(0, 3), '');
    expect(c.servers).toEqual([{ url: '/', description: 'KEA gateway' }]);
    expect(await validateOpenApi(c)).toEqual([]);
  });
  test('deterministic regardless of input order', () => {
    expect(JSON.stringify(buildCatalog([...docs].reverse(), 'https://gw.example.com'))).toBe(JSON.stringify(cat));
  });
  test('listMethods gives service, operationId, method, public path, summary and access', () => {
    const m = listMethods(docs);
    expect(m.find((e) => e.service === 'models/iris' && e.operationId === 'predict')).toEqual({
      service: 'models/iris',
      operationId: 'predict',
      method: 'POST',
      path: '/iris/predict',
      summary: 'Classify iris flowers',
      access: { mode: 'authenticated' },
    });
    expect(m.find((e) => e.operationId === 'health')!.access).toEqual({ mode: 'public' });
    expect(m.filter((e) => e.service === 'models/grades').map((e) => `${e.method} ${e.path} ${e.access.mode}`)).toEqual([
      'GET /grades/courses public',
      'GET /grades/get_grades restricted',
      'GET /grades/me authenticated',
      'POST /grades/set_grades restricted',
      'GET /grades/staff restricted',
    ]);
  });
});
