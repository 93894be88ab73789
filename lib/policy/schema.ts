/**
 * The JSON Schema (draft-07) of `policy.json` ({@link PolicyService}, lib/policy/config.ts) and
 * its validator, compiled once by ajv: the policy server checks every `policy.json` with it
 * before compiling anything, and tests check what the controller writes with it.
 *
 * Closed objects (`additionalProperties: false`) throughout: a field this version does not know
 * is refused, not ignored, because an ignored field may be a policy that would then silently go
 * unenforced. A change that needs a new field gets a new {@link POLICY_API_VERSION}.
 */
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { MAX_OPERATION_BODY_BYTES, POLICY_API_VERSION, RATE_LIMIT_BOUNDS, RATE_LIMIT_NAME, type PolicyService } from './config.js';

const text = { type: 'string' } as const;
const nonEmpty = { type: 'string', minLength: 1 } as const;
const names = { type: 'array', items: nonEmpty } as const;
/** A JSON Schema: an object or a boolean (draft-07 §4.3.2). */
const jsonSchema = { type: ['object', 'boolean'] } as const;
/** An absolute path template, e.g. `/iris/items/{id}`. */
const pathTemplate = { type: 'string', pattern: '^/' } as const;

const access = {
  type: 'object',
  required: ['mode'],
  additionalProperties: false,
  properties: { mode: { enum: ['public', 'authenticated', 'restricted'] }, roles: names, groups: names, scopes: names },
} as const;

const parameter = {
  type: 'object',
  required: ['name', 'in', 'required'],
  additionalProperties: false,
  properties: { name: nonEmpty, in: { enum: ['path', 'query', 'header'] }, required: { type: 'boolean' }, description: text, example: {}, schema: jsonSchema },
  // OpenAPI 3.0.3 §4.7.12: a path parameter is required; the controller says so.
  if: { properties: { in: { const: 'path' } } },
  then: { properties: { required: { const: true } } },
} as const;

/** A rate limit (`PolicyRateLimit`, lib/policy/config.ts); bounds as the CRD's. */
const rateLimit = {
  type: 'object',
  required: ['name', 'requests', 'periodMs', 'burst', 'key', 'scope'],
  additionalProperties: false,
  properties: {
    name: { type: 'string', pattern: RATE_LIMIT_NAME.source },
    requests: { type: 'integer', minimum: 1, maximum: RATE_LIMIT_BOUNDS.maxRequests },
    periodMs: { type: 'integer', minimum: RATE_LIMIT_BOUNDS.minPeriodMs, maximum: RATE_LIMIT_BOUNDS.maxPeriodMs },
    burst: { type: 'integer', minimum: 0, maximum: RATE_LIMIT_BOUNDS.maxRequests },
    key: { enum: ['identity', 'address', 'api'] },
    scope: nonEmpty,
  },
} as const;

const operation = {
  type: 'object',
  required: ['operationId', 'method', 'path', 'upstreamPath', 'access', 'timeoutMs', 'maxBodyBytes', 'responseValidation', 'parameters', 'responses'],
  additionalProperties: false,
  properties: {
    operationId: nonEmpty,
    method: { enum: ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD', 'OPTIONS'] },
    path: pathTemplate,
    upstreamPath: pathTemplate,
    access,
    cache: {
      type: 'object',
      required: ['ttlSeconds', 'scope'],
      additionalProperties: false,
      properties: { ttlSeconds: { type: 'number', exclusiveMinimum: 0 }, scope: { enum: ['shared', 'identity'] } },
    },
    timeoutMs: { type: 'integer', minimum: 1 },
    maxBodyBytes: { type: 'integer', minimum: 1, maximum: MAX_OPERATION_BODY_BYTES },
    responseValidation: { enum: ['off', 'log', 'enforce'] },
    parameters: { type: 'array', items: parameter },
    requestBody: {
      type: 'object',
      required: ['required', 'contentType', 'schema'],
      additionalProperties: false,
      properties: { required: { type: 'boolean' }, contentType: nonEmpty, schema: jsonSchema },
    },
    // Status code, `1XX`..`5XX` range or `default` (OpenAPI 3.0.3 §4.7.16).
    responses: { type: 'object', propertyNames: { pattern: '^([1-5][0-9]{2}|[1-5][xX]{2}|default)$' }, additionalProperties: jsonSchema },
    rateLimits: { type: 'array', maxItems: RATE_LIMIT_BOUNDS.maxPerList, items: rateLimit },
  },
} as const;

/**
 * JSON Schema (draft-07) of a {@link PolicyService} of {@link POLICY_API_VERSION}. Constraints
 * that span fields (`id` is `<namespace>/<name>`, `defaultOperationId` names an operation,
 * operationIds are unique) are checked by the policy server's snapshot builder.
 */
export const POLICY_SERVICE_SCHEMA = {
  $schema: 'http://json-schema.org/draft-07/schema#',
  $id: 'https://kea.dev/schemas/policy.kea.dev/v1/policy.json',
  title: 'KEA policy.json (PolicyService)',
  type: 'object',
  required: [
    'apiVersion',
    'id',
    'namespace',
    'name',
    'title',
    'version',
    'basePath',
    'configVersion',
    'mode',
    'upstream',
    'traffic',
    'authorization',
    'operations',
  ],
  additionalProperties: false,
  properties: {
    apiVersion: { const: POLICY_API_VERSION },
    id: nonEmpty,
    namespace: nonEmpty,
    name: nonEmpty,
    title: text,
    version: text,
    basePath: text,
    configVersion: nonEmpty,
    mode: { enum: ['enforce', 'passthrough'] },
    upstream: { type: 'object', required: ['host'], additionalProperties: false, properties: { host: nonEmpty } },
    traffic: {
      type: 'array',
      items: {
        type: 'object',
        required: ['revision', 'weight'],
        additionalProperties: false,
        properties: { revision: nonEmpty, weight: { type: 'number', minimum: 0, maximum: 100 } },
      },
    },
    authorization: { type: 'object', additionalProperties: false, properties: { rolesClaim: text, groupsClaim: text, scopesClaim: text } },
    defaultOperationId: nonEmpty,
    forwardCredentials: { type: 'array', uniqueItems: true, items: { enum: ['authorization', 'cookie'] } },
    contentSecurityPolicy: text,
    rateLimitFailMode: { enum: ['open', 'closed'] },
    operations: { type: 'array', items: operation },
  },
} as const;

let validator: ValidateFunction | undefined;

/** The compiled {@link POLICY_SERVICE_SCHEMA} (compiled on first use, then shared). */
function validate(): ValidateFunction {
  if (!validator) validator = new Ajv({ allErrors: true, strict: true, allowUnionTypes: true }).compile(POLICY_SERVICE_SCHEMA);
  return validator;
}

/** One ajv error as `<JSON pointer> <message>` (RFC 6901 pointer; `(root)` for the whole document). */
function describe(e: ErrorObject): string {
  const where = e.instancePath || '(root)';
  if (e.keyword === 'additionalProperties') return `${where} has unknown field "${(e.params as { additionalProperty: string }).additionalProperty}"`;
  if (e.keyword === 'enum')
    return `${where} must be one of ${(e.params as { allowedValues: unknown[] }).allowedValues.map((v) => JSON.stringify(v)).join(', ')}`;
  return `${where} ${e.message ?? 'is invalid'}`;
}

/**
 * Checks a parsed `policy.json` against {@link POLICY_SERVICE_SCHEMA}, its version first.
 * @param value - the parsed JSON.
 * @throws Error `policy.json: apiVersion …` naming the version found and {@link POLICY_API_VERSION}
 *   when the version is missing or another one; else `policy.json: <pointer> <message>` for the
 *   first (at most 3) schema violations, e.g. `policy.json: /operations/0/timeoutMs must be integer`.
 */
export function checkPolicyService(value: unknown): asserts value is PolicyService {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new Error('policy.json: not a JSON object');
  const version = (value as { apiVersion?: unknown }).apiVersion;
  if (version !== POLICY_API_VERSION) {
    const found = version === undefined ? 'no apiVersion' : `apiVersion ${JSON.stringify(version)}`;
    throw new Error(
      `policy.json: ${found} is not supported: this policy server reads apiVersion "${POLICY_API_VERSION}" only (controller and policy server are at different versions; upgrade the older one)`,
    );
  }
  const v = validate();
  if (!v(value)) {
    const errors = v.errors ?? [];
    const shown = errors.slice(0, 3).map(describe).join('; ');
    throw new Error(`policy.json: ${shown}${errors.length > 3 ? `; and ${errors.length - 3} more` : ''}`);
  }
}
