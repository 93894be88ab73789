/**
 * The controller's policy.json operation form (lib/policy/operation.ts): defaults, required
 * path parameters, ajv-ready schemas, and the default operation.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Ajv } from 'ajv';
import YAML from 'yaml';
import type { JsonSchema, Operation } from '../api/types.js';
import { POLICY_API_VERSION, POLICY_DEFAULTS, RATE_LIMIT_BOUNDS, RATE_LIMIT_NAME } from './config.js';
import { checkPolicyService } from './schema.js';
import { defaultOperationId, policyOperationOf } from './operation.js';
import { POLICY_SERVICE_SCHEMA } from './schema.js';

const ctx = { id: 'ml/iris', basePath: '/iris', inline: (s: JsonSchema) => s };

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
    rateLimits: undefined,
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
    { id: 'ml/p', basePath: '', inline },
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

test("rate limits: the operation's own replace the defaults ([] = none); defaults share one scope, own ones count the operation alone", () => {
  const defaults = {
    rateLimit: [
      { name: 'per-second', requests: 10, period: '1s', burst: 5 },
      { name: 'per-day', requests: 10_000, period: '24h', key: 'api' as const },
    ],
  };
  const o: Operation = { operationId: 'predict', method: 'POST', path: '/predict' };
  const inherited = policyOperationOf({ ...ctx, defaults }, o);
  expect(inherited.rateLimits).toEqual([
    { name: 'per-second', requests: 10, periodMs: 1000, burst: 5, key: 'identity', scope: 'ml/iris' },
    { name: 'per-day', requests: 10_000, periodMs: 86_400_000, burst: 0, key: 'api', scope: 'ml/iris' },
  ]);
  // Another operation inheriting them gets the same scope: one counter for both.
  expect(policyOperationOf({ ...ctx, defaults }, { ...o, operationId: 'health', method: 'GET', path: '/health' }).rateLimits).toEqual(inherited.rateLimits);
  const own = policyOperationOf({ ...ctx, defaults }, { ...o, rateLimit: [{ name: 'burst', requests: 3, period: '1m30s', key: 'address' }] });
  expect(own.rateLimits).toEqual([{ name: 'burst', requests: 3, periodMs: 90_000, burst: 0, key: 'address', scope: 'ml/iris/predict' }]);
  expect(policyOperationOf({ ...ctx, defaults }, { ...o, rateLimit: [] }).rateLimits).toBeUndefined();
  expect(policyOperationOf(ctx, o).rateLimits).toBeUndefined();
  // What the controller writes passes the policy server's schema.
  const service = {
    apiVersion: POLICY_API_VERSION,
    id: 'ml/iris',
    namespace: 'ml',
    name: 'iris',
    title: 'Iris',
    version: '1',
    basePath: '/iris',
    configVersion: 'x',
    mode: 'enforce',
    upstream: { host: 'h' },
    traffic: [],
    authorization: {},
    rateLimitFailMode: 'closed',
    operations: [JSON.parse(JSON.stringify(inherited)), JSON.parse(JSON.stringify(own))],
  };
  expect(() => checkPolicyService(service)).not.toThrow();
  expect(() => checkPolicyService({ ...service, rateLimitFailMode: 'sometimes' })).toThrow('/rateLimitFailMode must be one of "open", "closed"');
  const broken = structuredClone(service);
  (broken.operations[0] as { rateLimits: Array<Record<string, unknown>> }).rateLimits[0].periodMs = 999;
  expect(() => checkPolicyService(broken)).toThrow('/operations/0/rateLimits/0/periodMs must be >= 1000');
  (broken.operations[0] as { rateLimits: Array<Record<string, unknown>> }).rateLimits[0] = { ...inherited.rateLimits![0], periodMs: 1000, window: 1 };
  expect(() => checkPolicyService(broken)).toThrow('/operations/0/rateLimits/0 has unknown field "window"');
});

test('rate limits the CRD would refuse (from outside admission) are left out, so policy.json stays valid', () => {
  const o: Operation = { operationId: 'g', method: 'GET', path: '/g' };
  const limitsOf = (rateLimit: unknown[]) => policyOperationOf(ctx, { ...o, rateLimit: rateLimit as Operation['rateLimit'] }).rateLimits?.map((l) => l.name);
  const ok = { name: 'ok', requests: 1, period: '1s' };
  expect(
    limitsOf([
      ok,
      { ...ok, name: 'Upper' },
      { ...ok, name: 'zero', requests: 0 },
      { ...ok, name: 'frac', requests: 1.5 },
      { ...ok, name: 'short', period: '999ms' },
      { ...ok, name: 'long', period: '24h1s' },
    ]),
  ).toEqual(['ok']);
  expect(limitsOf([{ ...ok, burst: -1 }, { ...ok, key: 'tenant' }, { ...ok, period: 'soon' }, null])).toBeUndefined();
  // A name twice: the first counts; more than 4: the first 4.
  expect(limitsOf([ok, { ...ok, requests: 2 }])).toEqual(['ok']);
  expect(limitsOf(['a', 'b', 'c', 'd', 'e'].map((name) => ({ ...ok, name })))).toEqual(['a', 'b', 'c', 'd']);
  expect(
    limitsOf([
      { ...ok, name: 'x'.repeat(32) },
      { ...ok, name: 'y'.repeat(33) },
    ]),
  ).toEqual(['x'.repeat(32)]);
});

test('the rate-limit bounds here, in the CRD (both lists) and in the policy.json schema are the same', () => {
  const crd = YAML.parse(readFileSync(join(process.cwd(), 'manifests/crds/kea.dev_apischemas.yaml'), 'utf8'));
  const spec = crd.spec.versions[0].schema.openAPIV3Schema.properties.spec.properties;
  const lists = [spec.defaults.properties.rateLimit, spec.operations.items.properties.rateLimit];
  for (const list of lists) {
    expect(list.maxItems).toBe(RATE_LIMIT_BOUNDS.maxPerList);
    const p = list.items.properties;
    expect(p.name.pattern).toBe(RATE_LIMIT_NAME.source);
    expect([p.requests.minimum, p.requests.maximum]).toEqual([1, RATE_LIMIT_BOUNDS.maxRequests]);
    expect([p.burst.minimum, p.burst.maximum]).toEqual([0, RATE_LIMIT_BOUNDS.maxRequests]);
    expect(p.key.enum).toEqual(['identity', 'address', 'api']);
    expect(list.items.required).toEqual(['name', 'requests', 'period']);
    const rules = p.period['x-kubernetes-validations'].map((v: { rule: string }) => v.rule).join(' ');
    expect(rules).toContain(`duration(self) >= duration('${RATE_LIMIT_BOUNDS.minPeriodMs / 1000}s')`);
    expect(rules).toContain(`duration(self) <= duration('${RATE_LIMIT_BOUNDS.maxPeriodMs / 3_600_000}h')`);
  }
  expect(spec.defaults.properties.rateLimitFailMode.enum).toEqual(['open', 'closed']);
  expect(spec.defaults.properties.rateLimitFailMode.description).toContain(`${POLICY_DEFAULTS.rateLimitFailMode} (default)`);
  const op = POLICY_SERVICE_SCHEMA.properties.operations.items.properties.rateLimits.items.properties;
  expect(op.name.pattern).toBe(RATE_LIMIT_NAME.source);
  expect([op.requests.maximum, op.burst.maximum, op.periodMs.minimum, op.periodMs.maximum]).toEqual([
    RATE_LIMIT_BOUNDS.maxRequests,
    RATE_LIMIT_BOUNDS.maxRequests,
    RATE_LIMIT_BOUNDS.minPeriodMs,
    RATE_LIMIT_BOUNDS.maxPeriodMs,
  ]);
});
