/**
 * OpenAPI 3.0.3 generation (render side of the docs).
 *
 * Takes an {@link ApiSchema} and gives one OpenAPI 3.0.3 document (OpenAPI Specification
 * 3.0.3, https://spec.openapis.org/oas/v3.0.3) describing exactly what the gateway serves and
 * enforces for it: the operations (inline + derived from `spec.inference`), the problem+json
 * (RFC 9457) errors the gateway itself adds, and the security schemes of the identity provider.
 * Also the aggregated catalog of many documents ({@link buildCatalog}) and the flat list of
 * operations behind `/methods` ({@link listMethods}).
 *
 * Everything here is pure and deterministic: the same input gives the same document, with
 * paths, responses and components sorted where their order carries no meaning.
 *
 * KEA-specific facts travel in specification extensions (OpenAPI §4.8, `x-` fields):
 *   - root `x-kea`: {@link KeaDocMeta} (service id, basePath, which components are the gateway's);
 *   - operation `x-kea-access`: the effective {@link Access}; `x-kea-cache`: the {@link CachePolicy};
 *     `x-kea-rate-limit`: the effective rate limits ({@link RateLimitDoc}).
 */
import { canonicalJson } from '../canonical-json.js';
import { sha256Hex } from '../hash.js';
import { OpenApiBuilder } from 'openapi3-ts/oas30';
import type {
  HeadersObject,
  OpenAPIObject,
  OperationObject,
  ParameterObject,
  PathItemObject,
  ReferenceObject,
  RequestBodyObject,
  ResponseObject,
  ResponsesObject,
  SchemaObject,
  SecurityRequirementObject,
} from 'openapi3-ts/oas30';
import type { Access, ApiSchema, HttpMethod, JsonSchema, Operation, Parameter, RateLimit } from '../api/types.js';
import { parseDurationMs } from '../api/duration.js';
import { POLICY_DEFAULTS } from '../policy/config.js';
import { PROBLEM_CODES, PROBLEM_TYPES, problemTypeUri, type ProblemCode } from '../policy/problems.js';
import { effectiveOperations } from './inference.js';

export type { OpenAPIObject } from 'openapi3-ts/oas30';

/** Options of {@link generateOpenApi}. */
export interface GenerateOptions {
  /** Public base URL of the gateway, e.g. `https://gw.example.com` (no trailing slash needed). */
  gatewayUrl: string;
  /** OIDC issuer URL; when set, an `openIdConnect` security scheme points at its discovery document. */
  issuerUrl?: string;
}

/** Root extension `x-kea` of every generated document. */
export interface KeaDocMeta {
  /** `<namespace>/<name>` of the ApiSchema. */
  id: string;
  /** spec.basePath, normalized (`''` for `/`). Paths in the document are relative to it. */
  basePath: string;
  /** Components the gateway adds (shared by all services in the catalog). */
  gatewayComponents: { schemas: string[]; responses: string[]; securitySchemes: string[] };
}

export const KEA_EXT = 'x-kea';
export const ACCESS_EXT = 'x-kea-access';
export const CACHE_EXT = 'x-kea-cache';
export const RATE_LIMIT_EXT = 'x-kea-rate-limit';

/**
 * One entry of an operation's `x-kea-rate-limit`: an effective rate limit with its defaults
 * filled in (`burst` 0, `key` `identity`), as the ApiSchema wrote it (`period` a GEP-2257
 * Duration).
 */
export interface RateLimitDoc {
  name: string;
  /** Requests allowed per period. */
  requests: number;
  /** Gateway API Duration, e.g. `1m`. */
  period: string;
  /** Extra requests allowed above `requests` in a short spike. */
  burst: number;
  /** `identity` (per caller), `address` (per client address) or `api` (all callers together). */
  key: 'identity' | 'address' | 'api';
  /** True for a `spec.defaults` limit: one counter shared by every operation that inherits it. */
  shared: boolean;
}

/** Names of the security schemes in generated documents. */
export const SECURITY_SCHEMES = { oidc: 'oidc', bearer: 'bearerAuth' } as const;

/**
 * The problem+json error responses the gateway adds, by status code. Bodies follow RFC 9457
 * as the policy server writes them (policy-server/datapath/problem.ts): `type`
 * `https://kea.dev/problems/<code>`, `title`, `status`, `detail`, stable `code`, `requestId`,
 * and for validation failures `errors[{in, pointer, message}]` (the first 20) and `errorCount`.
 * Status and title come from the problem registry (lib/policy/problems.ts).
 */
export const GATEWAY_ERRORS: Record<string, { name: string; code: ProblemCode; description: string; title: string; detail: string }> = Object.fromEntries(
  (
    [
      ['BadRequest', 'validation-failed', 'The request failed validation against this schema; `errors` lists each failing field.', '1 validation error'],
      ['Unauthorized', 'unauthenticated', 'No valid SSO session or bearer token.', 'sign in or send a bearer token'],
      ['Forbidden', 'forbidden', 'Authenticated, but the roles, groups or scopes do not allow this operation.', 'missing a required role'],
      [
        'PayloadTooLarge',
        'payload-too-large',
        "The request body exceeds the operation's size limit.",
        `request body exceeds ${POLICY_DEFAULTS.maxBodyBytes} bytes`,
      ],
      ['UnsupportedMediaType', 'unsupported-media-type', "The request body's Content-Type is not the documented one.", 'expected application/json'],
      ['TooManyRequests', 'rate-limited', 'A rate limit of this operation is used up: retry after `Retry-After` seconds.', 'rate limit "per-minute" exceeded'],
      [
        'RateLimitUnavailable',
        'rate-limit-unavailable',
        "The rate limits' shared store is unavailable and this API fails closed: retry after `Retry-After` seconds.",
        'rate limit store unavailable',
      ],
      ['BadGateway', 'upstream-unavailable', 'The model service could not be reached, or its response broke the schema.', 'upstream connection failed'],
      [
        'GatewayTimeout',
        'upstream-timeout',
        "The model service did not answer within the operation's timeout.",
        `upstream timed out after ${POLICY_DEFAULTS.timeoutMs} ms`,
      ],
    ] as const
  ).map(([name, code, description, detail]) => [String(PROBLEM_TYPES[code].status), { name, code, title: PROBLEM_TYPES[code].title, description, detail }]),
);

const METHOD_ORDER: HttpMethod[] = ['GET', 'PUT', 'POST', 'DELETE', 'OPTIONS', 'HEAD', 'PATCH'];

/** Keywords of the OpenAPI 3.0 Schema Object (§4.7.24); anything else (bar `x-*`) is dropped. */
const OAS30_SCHEMA_KEYS = new Set([
  '$ref',
  'title',
  'multipleOf',
  'maximum',
  'exclusiveMaximum',
  'minimum',
  'exclusiveMinimum',
  'maxLength',
  'minLength',
  'pattern',
  'maxItems',
  'minItems',
  'uniqueItems',
  'maxProperties',
  'minProperties',
  'required',
  'enum',
  'type',
  'not',
  'allOf',
  'oneOf',
  'anyOf',
  'items',
  'properties',
  'additionalProperties',
  'description',
  'format',
  'default',
  'nullable',
  'discriminator',
  'readOnly',
  'writeOnly',
  'example',
  'externalDocs',
  'deprecated',
  'xml',
]);

/**
 * Normalizes a JSON Schema to the OpenAPI 3.0 Schema Object dialect: `const` → one-value
 * `enum`; `type: [T, 'null']` → `type: T` + `nullable`; JSON Schema 2019+ numeric
 * `exclusiveMinimum/Maximum` → 3.0 boolean form; `examples[0]` → `example`; keywords 3.0 does
 * not know (e.g. `$schema`, `$id`, `$comment`) dropped. Recurses into sub-schemas. Pure.
 */
export function toOas30Schema(input: unknown): SchemaObject | ReferenceObject {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) return {};
  const src = input as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  if (typeof src.$ref === 'string') return { $ref: src.$ref };
  for (const [k, v] of Object.entries(src)) {
    if (k.startsWith('x-')) {
      out[k] = structuredClone(v);
      continue;
    }
    switch (k) {
      case 'const':
        out.enum = [structuredClone(v)];
        break;
      case 'examples':
        if (Array.isArray(v) && v.length > 0 && src.example === undefined) out.example = structuredClone(v[0]);
        break;
      case 'type':
        if (Array.isArray(v)) {
          const nonNull = v.filter((t) => t !== 'null');
          if (nonNull.length === 1) out.type = nonNull[0];
          else if (nonNull.length > 1 && !src.anyOf && !src.oneOf) out.anyOf = nonNull.map((t) => ({ type: t }));
          if (v.includes('null')) out.nullable = true;
        } else if (v === 'null') {
          out.nullable = true;
          out.enum = [null];
        } else out.type = v;
        break;
      case 'exclusiveMinimum':
      case 'exclusiveMaximum':
        if (typeof v === 'number') {
          out[k === 'exclusiveMinimum' ? 'minimum' : 'maximum'] = v;
          out[k] = true;
        } else if (typeof v === 'boolean') out[k] = v;
        break;
      case 'properties': {
        const props: Record<string, unknown> = {};
        for (const [pk, pv] of Object.entries((v ?? {}) as Record<string, unknown>)) props[pk] = toOas30Schema(pv);
        out.properties = props;
        break;
      }
      case 'items':
        out.items = Array.isArray(v) ? (v.length === 1 ? toOas30Schema(v[0]) : {}) : toOas30Schema(v);
        break;
      case 'additionalProperties':
        out.additionalProperties = typeof v === 'boolean' ? v : toOas30Schema(v);
        break;
      case 'not':
        out.not = toOas30Schema(v);
        break;
      case 'allOf':
      case 'oneOf':
      case 'anyOf':
        if (Array.isArray(v)) out[k] = v.map(toOas30Schema);
        break;
      case 'minimum':
      case 'maximum':
        if (out[k] === undefined) out[k] = v;
        break;
      default:
        if (OAS30_SCHEMA_KEYS.has(k)) out[k] = structuredClone(v);
    }
  }
  if (out.type === 'array' && out.items === undefined) out.items = {};
  return out;
}

/** `/` and `` → ``; `/iris/` → `/iris`. */
export function normalizeBasePath(basePath: string | undefined): string {
  const p = (basePath ?? '').trim();
  if (p === '' || p === '/') return '';
  return ('/' + p.replace(/^\/+/, '')).replace(/\/+$/, '');
}

function trimUrl(u: string): string {
  return u.replace(/\/+$/, '');
}

/** The effective access of an operation: its own, else spec.defaults.access, else `authenticated`. */
export function effectiveAccess(op: Operation, schema: ApiSchema): Access {
  const a = op.access ?? schema.spec.defaults?.access ?? { mode: 'authenticated' };
  const out: Access = { mode: a.mode };
  if (a.roles?.length) out.roles = [...a.roles].sort();
  if (a.groups?.length) out.groups = [...a.groups].sort();
  if (a.scopes?.length) out.scopes = [...a.scopes].sort();
  return out;
}

/**
 * The rate limits an operation is documented with: its own `rateLimit` when set (`[]` = none),
 * else `spec.defaults.rateLimit` (marked `shared`), defaults filled in; none in passthrough
 * mode (nothing is enforced). The same resolution as the policy server's (lib/policy/operation.ts).
 */
export function effectiveRateLimits(op: Operation, schema: ApiSchema): RateLimitDoc[] {
  if (schema.spec.policy?.mode === 'passthrough') return [];
  const own = Array.isArray(op.rateLimit);
  const list: RateLimit[] = (own ? op.rateLimit : schema.spec.defaults?.rateLimit) ?? [];
  return list.map((l) => ({ name: l.name, requests: l.requests, period: l.period, burst: l.burst ?? 0, key: l.key ?? 'identity', shared: !own }));
}

const KEY_TEXT: Record<RateLimitDoc['key'], string> = { identity: 'per caller', address: 'per client address', api: 'for all callers together' };

/** One sentence listing an operation's rate limits, for its description. */
function describeRateLimits(limits: readonly RateLimitDoc[]): string {
  const parts = limits.map(
    (l) =>
      `\`${l.name}\`: ${l.requests} requests per ${l.period}${l.burst ? ` (+${l.burst} burst)` : ''} ${KEY_TEXT[l.key]}${l.shared ? ", shared with the API's other operations that have no limit of their own" : ''}`,
  );
  return `Rate limits: ${parts.join('; ')}. Over a limit the gateway answers 429 with \`Retry-After\`; every answer carries \`RateLimit-Policy\` and \`RateLimit\`.`;
}

/** Seconds of a GEP-2257 Duration, rounded up (0 when it is not one; admission refuses those). */
function durationSeconds(d: string): number {
  return Math.ceil((parseDurationMs(d) ?? 0) / 1000);
}

/**
 * The `RateLimit-Policy` value of an operation (draft-ietf-httpapi-ratelimit-headers-09, a
 * Structured Field List): `"<name>";q=<requests + burst>;w=<period in s>` per limit.
 */
export function rateLimitPolicyHeader(limits: readonly RateLimitDoc[]): string {
  return limits.map((l) => `"${l.name}";q=${l.requests + l.burst};w=${durationSeconds(l.period)}`).join(', ');
}

/** The `RateLimit-Policy` and `RateLimit` response headers (examples from `limits` when given). */
function rateLimitHeaders(limits?: readonly RateLimitDoc[]): HeadersObject {
  const first = limits?.[0];
  return {
    RateLimit: {
      description:
        'The rate limit closest to exhaustion (draft-ietf-httpapi-ratelimit-headers-09): `"<name>";r=<requests remaining>;t=<seconds until the window resets>`.',
      schema: { type: 'string' },
      example: first ? `"${first.name}";r=${Math.max(0, first.requests + first.burst - 1)};t=${durationSeconds(first.period)}` : '"per-minute";r=0;t=18',
    },
    'RateLimit-Policy': {
      description:
        'The operation\'s rate limits (draft-ietf-httpapi-ratelimit-headers-09): `"<name>";q=<requests allowed, burst included>;w=<window in seconds>` per limit.',
      schema: { type: 'string' },
      example: limits?.length ? rateLimitPolicyHeader(limits) : '"per-minute";q=100;w=60',
    },
  };
}

/** `Retry-After` of a 429 or 503 answer (RFC 9110 §10.2.3, delay-seconds). */
const RETRY_AFTER: HeadersObject = {
  'Retry-After': { description: 'Seconds to wait before retrying (an integer, at least 1).', schema: { type: 'integer', minimum: 1 }, example: 18 },
};

function describeAccess(a: Access): string {
  if (a.mode === 'public') return 'Access: public (no sign-in needed).';
  if (a.mode === 'authenticated') return 'Access: any signed-in user (SSO session or bearer token).';
  const parts: string[] = [];
  if (a.roles?.length) parts.push(`one of the roles ${a.roles.map((r) => `\`${r}\``).join(', ')}`);
  if (a.groups?.length) parts.push(`one of the groups ${a.groups.map((g) => `\`${g}\``).join(', ')}`);
  if (a.scopes?.length) parts.push(`all of the scopes ${a.scopes.map((s) => `\`${s}\``).join(', ')}`);
  return `Access: restricted, requires ${parts.join(' or ') || 'an explicit grant'}.`;
}

function securityFor(a: Access, hasOidc: boolean): SecurityRequirementObject[] {
  if (a.mode === 'public') return [];
  const reqs: SecurityRequirementObject[] = [];
  if (hasOidc) reqs.push({ [SECURITY_SCHEMES.oidc]: a.mode === 'restricted' ? [...(a.scopes ?? [])] : [] });
  // OpenAPI 3.0 §4.7.30: for non-OAuth2/OIDC schemes the scope list MUST be empty.
  reqs.push({ [SECURITY_SCHEMES.bearer]: [] });
  return reqs;
}

function pathParamNames(template: string): string[] {
  return [...template.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]);
}

function toParameter(p: Parameter): ParameterObject {
  const out: ParameterObject = { name: p.name, in: p.in };
  if (p.description) out.description = p.description;
  out.required = p.in === 'path' ? true : !!p.required;
  out.schema = p.schema ? toOas30Schema(p.schema) : { type: 'string' };
  if (p.example !== undefined) out.example = structuredClone(p.example);
  return out;
}

function statusOrder(a: string, b: string): number {
  const na = /^\d/.test(a) ? 0 : 1;
  const nb = /^\d/.test(b) ? 0 : 1;
  return na - nb || a.localeCompare(b);
}

function sortKeys<T>(obj: Record<string, T>, cmp?: (a: string, b: string) => number): Record<string, T> {
  const out: Record<string, T> = {};
  for (const k of Object.keys(obj).sort(cmp)) out[k] = obj[k];
  return out;
}

function problemSchema(): SchemaObject {
  return {
    type: 'object',
    description: 'Problem Details for HTTP APIs (RFC 9457), as the KEA gateway returns them.',
    required: ['type', 'title', 'status'],
    properties: {
      type: { type: 'string', format: 'uri-reference', description: 'URI identifying the problem type: `https://kea.dev/problems/<code>`.' },
      title: { type: 'string', description: 'Short summary of the problem type.' },
      status: { type: 'integer', minimum: 100, maximum: 599, description: 'HTTP status code.' },
      detail: { type: 'string', description: 'Explanation specific to this occurrence.' },
      instance: { type: 'string', format: 'uri-reference' },
      code: { type: 'string', enum: [...PROBLEM_CODES], description: 'Stable machine-readable code.' },
      requestId: { type: 'string', description: 'The request ID, also in every log line of this request.' },
      errors: {
        type: 'array',
        maxItems: 20,
        description: 'The first (at most 20) failing fields: where (`in`), an RFC 6901 JSON Pointer into that value, and a message.',
        items: {
          type: 'object',
          required: ['in', 'pointer', 'message'],
          properties: {
            in: { type: 'string', enum: ['body', 'path', 'query', 'header', 'response'] },
            pointer: { type: 'string', description: 'JSON Pointer, e.g. `/features/0` (empty = the whole value).' },
            message: { type: 'string' },
          },
        },
      },
      errorCount: { type: 'integer', minimum: 0, description: 'How many failures were found (`errors` lists the first of them).' },
    },
    additionalProperties: true,
  };
}

/** Id of an ApiSchema: `<namespace>/<name>` (namespace `default` when unset). */
export function apiSchemaId(schema: ApiSchema): string {
  return `${schema.metadata.namespace ?? 'default'}/${schema.metadata.name}`;
}

/**
 * The responses an operation declares (a plain `200` when it declares none), as Response
 * Objects; each carries the rate-limit headers when the operation has `limits`.
 */
function declaredResponses(op: Operation, limits: readonly RateLimitDoc[]): ResponsesObject {
  const responses: ResponsesObject = {};
  const declared = op.responses && Object.keys(op.responses).length ? op.responses : { '200': { description: 'Success.' } };
  for (const [code, r] of Object.entries(declared)) {
    const resp: ResponseObject = { description: r.description || `Status ${code}.` };
    if (r.schema !== undefined || r.example !== undefined) {
      const ct = r.contentType ?? 'application/json';
      resp.content = { [ct]: { schema: r.schema !== undefined ? toOas30Schema(r.schema) : {} } };
      if (r.example !== undefined) resp.content[ct].example = structuredClone(r.example);
    }
    if (limits.length) resp.headers = rateLimitHeaders(limits);
    responses[code] = resp;
  }
  return responses;
}

/** The gateway error statuses an enforced operation can answer ({@link generateOpenApi} lists when). */
function gatewayErrorCodes(op: Operation, hasParams: boolean, access: Access, limits: readonly RateLimitDoc[], failClosed: boolean): string[] {
  const codes = ['502', '504'];
  if (hasParams || op.requestBody) codes.push('400');
  if (access.mode !== 'public') codes.push('401');
  if (access.mode === 'restricted') codes.push('403');
  if (op.requestBody) codes.push('413', '415');
  if (limits.length) codes.push('429');
  if (limits.length && failClosed) codes.push('503');
  return codes;
}

/**
 * Generates the OpenAPI 3.0.3 document of one ApiSchema.
 *
 * - `servers`: `[gatewayUrl + basePath]`; paths are the operations' paths (relative to basePath).
 * - Operations: inline `spec.operations` plus those derived from `spec.inference` (see
 *   {@link effectiveOperations}); undeclared path template variables get a string path parameter.
 * - Each operation's `security` follows its effective access: public → `[]`; otherwise the
 *   `openIdConnect` scheme (when `issuerUrl` is given; restricted operations list their scopes)
 *   or the HTTP bearer (JWT) scheme.
 * - Gateway errors as `$ref`s to `components.responses` with the RFC 9457 `Problem` schema:
 *   400 (operations with parameters or a body), 401 (non-public), 403 (restricted), 413 and 415
 *   (operations with a body), 429 (rate-limited operations; 503 too when the API's limits fail
 *   closed), 502 and 504 (all). A status the operation documents itself wins.
 * - Rate limits ({@link effectiveRateLimits}): listed in the description and in
 *   `x-kea-rate-limit`; the operation's own responses document the `RateLimit-Policy` and
 *   `RateLimit` headers, the 429 response `Retry-After` too.
 * - `spec.policy.mode: passthrough`: KEA enforces nothing, so operations are documented as
 *   public (`security: []`), without gateway errors and without caching.
 * @throws Error on duplicate operationIds or duplicate method+path, or a bad inference signature.
 */
export function generateOpenApi(schema: ApiSchema, opts: GenerateOptions): OpenAPIObject {
  const spec = schema.spec;
  const id = apiSchemaId(schema);
  const basePath = normalizeBasePath(spec.basePath);
  const hasOidc = !!opts.issuerUrl;
  const passthrough = spec.policy?.mode === 'passthrough';
  const ops = effectiveOperations(spec, schema.metadata.name);

  const seenIds = new Set<string>();
  const seenRoutes = new Set<string>();
  for (const op of ops) {
    if (seenIds.has(op.operationId)) throw new Error(`duplicate operationId "${op.operationId}"`);
    seenIds.add(op.operationId);
    const route = `${op.method} ${op.path.replace(/\{[^}]+\}/g, '{}')}`;
    if (seenRoutes.has(route)) throw new Error(`duplicate route ${op.method} ${op.path} (operationId "${op.operationId}")`);
    seenRoutes.add(route);
  }

  const userSchemas = spec.components?.schemas ?? {};
  const problemName = 'Problem' in userSchemas ? 'KeaProblem' : 'Problem';
  const usedErrors = new Set<string>();

  const builder = OpenApiBuilder.create().addOpenApiVersion('3.0.3');
  const info: OpenAPIObject['info'] = { title: spec.info.title, version: spec.info.version };
  if (spec.info.description) info.description = spec.info.description;
  builder.addInfo(info);
  builder.addServer({ url: `${trimUrl(opts.gatewayUrl)}${basePath}`, description: 'KEA gateway' });

  const pathItems: Record<string, PathItemObject> = {};
  const sortedOps = [...ops].sort((a, b) => a.path.localeCompare(b.path) || METHOD_ORDER.indexOf(a.method) - METHOD_ORDER.indexOf(b.method));
  for (const op of sortedOps) {
    // Passthrough: the gateway routes straight to the service; KEA neither authenticates,
    // authorizes, validates nor caches, so the document must not promise any of it.
    const access: Access = passthrough ? { mode: 'public' } : effectiveAccess(op, schema);
    const limits = effectiveRateLimits(op, schema);
    const o = { operationId: op.operationId } as OperationObject;
    if (op.summary) o.summary = op.summary;
    o.description = [
      op.description,
      passthrough
        ? 'Passthrough: the gateway forwards this call as is (no sign-in, validation or caching by KEA; the service may apply its own).'
        : describeAccess(access),
      !passthrough && op.cache
        ? `Responses are cached for ${op.cache.ttlSeconds} s (${op.cache.scope === 'shared' ? 'shared by all callers' : 'per caller'}).`
        : '',
      limits.length ? describeRateLimits(limits) : '',
    ]
      .filter(Boolean)
      .join('\n\n');
    if (op.tags?.length) o.tags = [...op.tags];
    if (op.deprecated) o.deprecated = true;

    const params = (op.parameters ?? []).map(toParameter);
    for (const name of pathParamNames(op.path)) {
      if (!params.some((p) => p.in === 'path' && p.name === name)) {
        params.push({ name, in: 'path', required: true, schema: { type: 'string' } });
      }
    }
    if (params.length) o.parameters = params;

    if (op.requestBody) {
      const ct = op.requestBody.contentType ?? 'application/json';
      const rb: RequestBodyObject = { content: { [ct]: { schema: toOas30Schema(op.requestBody.schema) } } };
      if (op.requestBody.example !== undefined) rb.content[ct].example = structuredClone(op.requestBody.example);
      if (op.requestBody.description) rb.description = op.requestBody.description;
      rb.required = op.requestBody.required ?? true;
      o.requestBody = rb;
    }

    const responses = declaredResponses(op, limits);
    const gatewayCodes = passthrough ? [] : gatewayErrorCodes(op, params.length > 0, access, limits, spec.defaults?.rateLimitFailMode === 'closed');
    for (const code of gatewayCodes) {
      if (responses[code]) continue;
      usedErrors.add(code);
      responses[code] = { $ref: `#/components/responses/${GATEWAY_ERRORS[code].name}` };
    }
    o.responses = sortKeys(responses, statusOrder);
    o.security = securityFor(access, hasOidc);
    o[ACCESS_EXT] = access;
    if (op.cache && !passthrough) o[CACHE_EXT] = { ...op.cache };
    if (limits.length) o[RATE_LIMIT_EXT] = limits;

    const item = (pathItems[op.path] ??= {});
    item[op.method.toLowerCase() as 'get'] = o;
  }
  for (const p of Object.keys(pathItems).sort()) builder.addPath(p, pathItems[p]);

  // Components: user schemas (sorted), the Problem schema, used gateway responses, security schemes.
  const schemaNames = [...Object.keys(userSchemas), problemName].sort();
  for (const name of schemaNames) {
    builder.addSchema(name, name === problemName ? problemSchema() : toOas30Schema(userSchemas[name]));
  }
  const responseNames: string[] = [];
  for (const code of [...usedErrors].sort()) {
    const e = GATEWAY_ERRORS[code];
    responseNames.push(e.name);
  }
  const byName = Object.fromEntries(Object.entries(GATEWAY_ERRORS).map(([status, e]) => [e.name, { status, problem: e.code, ...e }]));
  for (const name of [...responseNames].sort()) {
    const e = byName[name];
    const retry = e.status === '429' || e.status === '503';
    builder.addResponse(name, {
      description: e.description,
      ...(retry ? { headers: { ...RETRY_AFTER, ...(e.status === '429' ? rateLimitHeaders() : {}) } } : {}),
      content: {
        'application/problem+json': {
          schema: { $ref: `#/components/schemas/${problemName}` },
          example: {
            type: problemTypeUri(e.code),
            title: e.title,
            status: Number(e.status),
            detail: e.detail,
            code: e.problem,
            requestId: '3f2c9a1e7b5d4c60',
            ...(e.status === '400' ? { errors: [{ in: 'body', pointer: '/features/0/1', message: 'must be number' }], errorCount: 1 } : {}),
          },
        },
      },
    });
  }
  const schemeNames: string[] = [SECURITY_SCHEMES.bearer];
  builder.addSecurityScheme(SECURITY_SCHEMES.bearer, {
    type: 'http',
    scheme: 'bearer',
    bearerFormat: 'JWT',
    description: 'An access token (JWT) from the identity provider. Browsers may use the SSO session cookie instead (sign in at /auth/login).',
  });
  if (opts.issuerUrl) {
    schemeNames.push(SECURITY_SCHEMES.oidc);
    builder.addSecurityScheme(SECURITY_SCHEMES.oidc, {
      type: 'openIdConnect',
      openIdConnectUrl: `${trimUrl(opts.issuerUrl)}/.well-known/openid-configuration`,
      description: 'OpenID Connect single sign-on.',
    });
  }
  const doc = builder.getSpec();
  if (doc.components) {
    const c = doc.components as Record<string, Record<string, unknown> | undefined>;
    for (const k of Object.keys(c)) {
      const section = c[k];
      if (section && Object.keys(section).length === 0) delete c[k];
      else if (section) c[k] = sortKeys(section);
    }
    doc.components = sortKeys(c as Record<string, Record<string, unknown>>);
  }
  const meta: KeaDocMeta = {
    id,
    basePath,
    gatewayComponents: { schemas: [problemName], responses: responseNames.sort(), securitySchemes: schemeNames.sort() },
  };
  doc[KEA_EXT] = meta;
  return doc;
}

/* ------------------------------------------------------------------ catalog */

const COMPONENT_SECTIONS = ['schemas', 'responses', 'parameters', 'examples', 'requestBodies', 'headers', 'securitySchemes', 'links', 'callbacks'] as const;

/** basePath of a document: `x-kea.basePath`, else the path of its first server URL. */
export function docBasePath(doc: OpenAPIObject): string {
  const meta = doc[KEA_EXT] as KeaDocMeta | undefined;
  if (meta && typeof meta.basePath === 'string') return normalizeBasePath(meta.basePath);
  const url = doc.servers?.[0]?.url;
  if (!url) return '';
  try {
    return normalizeBasePath(new URL(url, 'http://kea.invalid').pathname);
  } catch {
    return '';
  }
}

/** sha256 (hex) of the canonical JSON form of a value (lib/canonical-json.ts): stable document digests. */
export function canonicalDigest(v: unknown): string {
  return sha256Hex(canonicalJson(v));
}

function rewriteRefs(node: unknown, map: Map<string, string>): unknown {
  if (Array.isArray(node)) return node.map((n) => rewriteRefs(n, map));
  if (node && typeof node === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(node)) {
      if (k === '$ref' && typeof v === 'string') {
        let ref = v;
        for (const [from, to] of map) {
          if (ref === from || ref.startsWith(from + '/')) {
            ref = to + ref.slice(from.length);
            break;
          }
        }
        out[k] = ref;
      } else out[k] = rewriteRefs(v, map);
    }
    return out;
  }
  return node;
}

/** Component-name prefix of a service in the catalog: `<ns>_<name>_` (Kubernetes names contain no `_`). */
export function catalogPrefix(id: string): string {
  return id.replace(/[^A-Za-z0-9.\-_]/g, '_') + '_';
}

/** Namespaced operationId in the catalog: `<ns>.<name>.<operationId>`. */
export function catalogOperationId(id: string, operationId: string): string {
  return `${id.replace(/\//g, '.')}.${operationId}`;
}

/**
 * Builds the aggregated catalog document served at `/openapi.json`.
 *
 * Input: per-service documents (as from {@link generateOpenApi}) with their ids
 * (`<ns>/<name>`). Output: one OpenAPI 3.0.3 document with `servers = [gatewayUrl]`, every path
 * prefixed by its service's basePath, operationIds namespaced by {@link catalogOperationId},
 * one tag per service, and components merged: a service's own components are prefixed
 * ({@link catalogPrefix}); the gateway's shared components (Problem, error responses, security
 * schemes) stay unprefixed when identical across services. Paths are sorted. A method+path
 * already claimed by an earlier service (ids sorted) is left out and listed in `x-kea-conflicts`.
 */
export function buildCatalog(docs: Array<{ id: string; doc: OpenAPIObject }>, gatewayUrl: string): OpenAPIObject {
  const sorted = [...docs].sort((a, b) => a.id.localeCompare(b.id));
  const components: Record<string, Record<string, unknown>> = {};
  const paths: Record<string, PathItemObject> = {};
  const tags: Array<{ name: string; description?: string }> = [];
  const conflicts: string[] = [];

  for (const { id, doc } of sorted) {
    const meta = doc[KEA_EXT] as KeaDocMeta | undefined;
    const shared = meta?.gatewayComponents ?? { schemas: [], responses: [], securitySchemes: [] };
    const prefix = catalogPrefix(id);
    const refMap = new Map<string, string>();
    const schemeMap = new Map<string, string>();
    const src = (doc.components ?? {}) as Record<string, Record<string, unknown> | undefined>;
    // Decide names first, then rewrite and copy.
    const names: Array<{ section: string; from: string; to: string }> = [];
    for (const section of COMPONENT_SECTIONS) {
      const entries = src[section];
      if (!entries) continue;
      const sharedList = (shared as Record<string, string[] | undefined>)[section] ?? [];
      for (const name of Object.keys(entries)) {
        let to = prefix + name;
        if (sharedList.includes(name)) {
          const existing = components[section]?.[name];
          if (existing === undefined || canonicalJson(existing) === canonicalJson(entries[name])) to = name;
        }
        names.push({ section, from: name, to });
        if (to !== name) refMap.set(`#/components/${section}/${name}`, `#/components/${section}/${to}`);
        if (section === 'securitySchemes') schemeMap.set(name, to);
      }
    }
    for (const { section, from, to } of names) {
      const value = rewriteRefs(src[section]![from], refMap);
      (components[section] ??= {})[to] = value;
    }

    const base = docBasePath(doc);
    const tagName = id;
    tags.push({ name: tagName, description: `${doc.info.title} ${doc.info.version}` });
    for (const [p, item] of Object.entries(doc.paths ?? {})) {
      const fullPath = base + (p === '/' && base ? '' : p) || '/';
      const target = (paths[fullPath] ??= {});
      const rewritten = rewriteRefs(item, refMap) as PathItemObject;
      for (const [k, v] of Object.entries(rewritten)) {
        const method = k.toUpperCase() as HttpMethod;
        if (!METHOD_ORDER.includes(method) && k !== 'trace') {
          if (k === 'parameters' && !target.parameters) target.parameters = v as ParameterObject[];
          continue;
        }
        if ((target as Record<string, unknown>)[k]) {
          conflicts.push(`${k.toUpperCase()} ${fullPath} (${id})`);
          continue;
        }
        const op = v as OperationObject;
        op.operationId = catalogOperationId(id, op.operationId ?? `${k}${p.replace(/[^A-Za-z0-9]+/g, '_')}`);
        op.tags = [tagName];
        if (op.security) op.security = op.security.map((req) => Object.fromEntries(Object.entries(req).map(([s, scopes]) => [schemeMap.get(s) ?? s, scopes])));
        (target as Record<string, unknown>)[k] = op;
      }
    }
  }

  const version = canonicalDigest(sorted.map((d) => [d.id, d.doc.info.version])).slice(0, 12);
  const builder = OpenApiBuilder.create().addOpenApiVersion('3.0.3');
  builder.addInfo({
    title: 'KEA API catalog',
    version,
    description: `All APIs published at this gateway (${sorted.length} service${sorted.length === 1 ? '' : 's'}).`,
  });
  builder.addServer({ url: trimUrl(gatewayUrl) || '/', description: 'KEA gateway' });
  for (const p of Object.keys(paths).sort()) {
    const item = paths[p];
    const ordered: PathItemObject = {};
    if (item.parameters) ordered.parameters = item.parameters;
    for (const m of METHOD_ORDER) {
      const k = m.toLowerCase() as 'get';
      if (item[k]) ordered[k] = item[k];
    }
    builder.addPath(p, ordered);
  }
  for (const t of tags) builder.addTag(t);
  const doc = builder.getSpec();
  const comps: Record<string, Record<string, unknown>> = {};
  for (const section of Object.keys(components).sort()) comps[section] = sortKeys(components[section]);
  doc.components = comps;
  if (conflicts.length) doc['x-kea-conflicts'] = conflicts;
  return doc;
}

/* ------------------------------------------------------------------ /methods */

/** One entry of `/methods`. */
export interface MethodEntry {
  /** `<ns>/<name>` of the service. */
  service: string;
  operationId: string;
  /** Upper-case HTTP method. */
  method: string;
  /** Public path at the gateway, including basePath. */
  path: string;
  summary?: string;
  access: Access;
  /** The operation's rate limits, from `x-kea-rate-limit`; absent when it has none. */
  rateLimit?: RateLimitDoc[];
  deprecated?: boolean;
}

/**
 * Flat list of every operation of the given documents, for `/methods`, sorted by service,
 * path and method. `access` comes from `x-kea-access`; documents without it map `security: []`
 * to public and anything else to authenticated. `rateLimit` comes from `x-kea-rate-limit`.
 */
export function listMethods(docs: Array<{ id: string; doc: OpenAPIObject }>): MethodEntry[] {
  const out: MethodEntry[] = [];
  for (const { id, doc } of docs) {
    const base = docBasePath(doc);
    for (const [p, item] of Object.entries(doc.paths ?? {})) {
      for (const m of METHOD_ORDER) {
        const op = (item as Record<string, OperationObject | undefined>)[m.toLowerCase()];
        if (!op) continue;
        const sec = op.security ?? doc.security;
        const access: Access = (op[ACCESS_EXT] as Access | undefined) ?? { mode: sec && sec.length === 0 ? 'public' : 'authenticated' };
        const e: MethodEntry = { service: id, operationId: op.operationId ?? '', method: m, path: base + (p === '/' && base ? '' : p) || '/', access };
        if (op.summary) e.summary = op.summary;
        const limits = op[RATE_LIMIT_EXT] as RateLimitDoc[] | undefined;
        if (Array.isArray(limits) && limits.length) e.rateLimit = structuredClone(limits);
        if (op.deprecated) e.deprecated = true;
        out.push(e);
      }
    }
  }
  return out.sort(
    (a, b) =>
      a.service.localeCompare(b.service) ||
      a.path.localeCompare(b.path) ||
      METHOD_ORDER.indexOf(a.method as HttpMethod) - METHOD_ORDER.indexOf(b.method as HttpMethod),
  );
}

/** Re-exports so callers need one import. */
export { effectiveOperations, inferenceOperations } from './inference.js';
export type { JsonSchema };
