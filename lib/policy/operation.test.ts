/**
 * The controller's policy.json operation form (lib/policy/operation.ts): defaults, required
 * path parameters, ajv-ready schemas, and the default operation.
 */
import { Ajv } from 'ajv';
import type { JsonSchema, Operation } from '../api/types.js';
import { POLICY_DEFAULTS } from './config.js';
import { defaultOperationId, policyOperationOf } from './operation.js';

const ctx = { basePath: '/iris', inline: (s: JsonSchema) => s };

test('unset fields take spec.defaults, then POLICY_DEFAULTS', () => {
  const o: Operation = { operationId: 'predict', method: 'POST', path: '/predict' };
  expect(policyOperationOf(ctx, o)).toEqual({
    operationId: 'predict',
    method: 'POST',
    path: '/iris/predict',
    upstreamPath: '/predict',
    access: POLICY_DEFAULTS.access,
    cache: undefined,
    timeoutMs: 5000,
    maxBodyBytes: 1048576,
    responseValidation: 'off',
    parameters: [],
    requestBody: undefined,
    responses: {},
  });
  const withDefaults = policyOperationOf({ ...ctx, defaults: { access: { mode: 'public' }, timeout: '1m30s', maxBodyBytes: 10 } }, o);
  expect([withDefaults.access, withDefaults.timeoutMs, withDefaults.maxBodyBytes]).toEqual([{ mode: 'public' }, 90_000, 10]);
  const own = policyOperationOf({ ...ctx, defaults: { timeout: '1s' } }, { ...o, timeout: '250ms', maxBodyBytes: 7, responseValidation: 'log' });
  expect([own.timeoutMs, own.maxBodyBytes, own.responseValidation]).toEqual([250, 7, 'log']);
});

test('path parameters are required; others default to not required; request body defaults', () => {
  const op = policyOperationOf(ctx, {
    operationId: 'get',
    method: 'GET',
    path: '/items/{id}',
    parameters: [
      { name: 'id', in: 'path', required: false, schema: { type: 'integer' } },
      { name: 'q', in: 'query' },
    ],
    requestBody: { schema: { type: 'object' } },
  });
  expect(op.parameters.map((p) => [p.name, p.required])).toEqual([
    ['id', true],
    ['q', false],
  ]);
  expect(op.requestBody).toEqual({ required: false, contentType: 'application/json', schema: { type: 'object' } });
});

test('every schema is inlined, then written in the form ajv compiles', () => {
  const comps: Record<string, JsonSchema> = { Score: { type: 'number', minimum: 0, exclusiveMinimum: true, nullable: true } };
  const inline = (s: JsonSchema): JsonSchema =>
    JSON.parse(JSON.stringify(s).replace(/\{"\$ref":"#\/components\/schemas\/Score"\}/g, JSON.stringify(comps.Score))) as JsonSchema;
  const op = policyOperationOf(
    { basePath: '', inline },
    {
      operationId: 'p',
      method: 'POST',
      path: '/p',
      parameters: [{ name: 'min', in: 'query', schema: { $ref: '#/components/schemas/Score' } }],
      requestBody: { schema: { type: 'object', properties: { s: { $ref: '#/components/schemas/Score' }, any: { nullable: true } } } },
      responses: { '200': { description: 'ok', schema: { $ref: '#/components/schemas/Score' } }, '204': { description: 'none' } },
    },
  );
  const score = { type: 'number', exclusiveMinimum: 0, nullable: true };
  expect(op.parameters[0].schema).toEqual(score);
  expect(op.requestBody!.schema).toEqual({ type: 'object', properties: { s: score, any: {} } });
  expect(op.responses).toEqual({ '200': score });
  // ajv compiles them as they are (draft-07 + nullable), which it would not for the OAS 3.0 form.
  const ajv = new Ajv({ strict: false, logger: false });
  expect(ajv.compile(op.requestBody!.schema)({ s: null, any: null })).toBe(true);
  expect(ajv.compile(op.requestBody!.schema)({ s: 0 })).toBe(false);
  expect(() => new Ajv({ strict: false, logger: false }).compile({ type: 'object', properties: { any: { nullable: true } } })).toThrow();
});

test('the default operation: the first POST named predict*, else the first POST, else none', () => {
  const op = (operationId: string, method: string) => ({ operationId, method });
  expect(defaultOperationId([op('health', 'GET'), op('classify', 'POST'), op('Predict_v2', 'POST')])).toBe('Predict_v2');
  expect(defaultOperationId([op('health', 'GET'), op('classify', 'POST'), op('score', 'POST')])).toBe('classify');
  expect(defaultOperationId([op('predict', 'GET')])).toBeUndefined();
  expect(defaultOperationId([])).toBeUndefined();
});

test('what the CRD cannot have checked (an imported x-kea-cache, x-kea-timeout) is decided here, as the policy server used to', () => {
  const o: Operation = { operationId: 'g', method: 'GET', path: '/g' };
  const cacheOf = (cache: unknown) => policyOperationOf(ctx, { ...o, cache: cache as Operation['cache'] }).cache;
  expect(cacheOf({ ttlSeconds: 60, scope: 'identity', extra: 1 })).toEqual({ ttlSeconds: 60, scope: 'identity' });
  expect(cacheOf({ ttlSeconds: 0, scope: 'shared' })).toBeUndefined();
  expect(cacheOf({ ttlSeconds: '60', scope: 'shared' })).toBeUndefined();
  // An unknown scope must not fall back to one shared entry for every caller.
  expect(cacheOf({ ttlSeconds: 60, scope: 'everyone' })).toBeUndefined();
  expect(policyOperationOf(ctx, { ...o, timeout: '0s' }).timeoutMs).toBe(POLICY_DEFAULTS.timeoutMs);
  expect(policyOperationOf(ctx, { ...o, timeout: 'soon' }).timeoutMs).toBe(POLICY_DEFAULTS.timeoutMs);
});
