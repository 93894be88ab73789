/**
 * The controller's decisions about each operation of policy.json, made once here so the policy
 * server never re-derives them: the defaults of fields an ApiSchema leaves unset
 * ({@link POLICY_DEFAULTS}), the path parameters' `required`, every schema in the JSON Schema
 * form ajv compiles (lib/openapi/jsonschema.ts), and the default operation of
 * `/services/{id}/predict`.
 *
 * Takes in: an ApiSchema's `spec.basePath` and `spec.defaults`, one effective {@link Operation}
 * (inline, imported or inference-derived, as the graph stage resolved it), and the function that
 * makes a schema self-contained (the IR's component inlining).
 * Gives out: the {@link PolicyOperation} written into policy.json. Pure and deterministic.
 */
import type { ApiSchemaSpec, CachePolicy, JsonSchema, Operation, RateLimit } from '../api/types.js';
import { parseDurationMs } from '../api/duration.js';
import { oas30ToJsonSchema } from '../openapi/jsonschema.js';
import { POLICY_DEFAULTS, RATE_LIMIT_BOUNDS, RATE_LIMIT_NAME, type PolicyOperation, type PolicyRateLimit } from './config.js';

/** What {@link policyOperationOf} reads of the ApiSchema besides the operation. */
export interface PolicyOperationContext {
  /**
   * `<namespace>/<name>` of the ApiSchema: the counting scope of its `spec.defaults.rateLimit`
   * limits, and with `/<operationId>` appended that of an operation's own limits.
   */
  id: string;
  /** `spec.basePath` (`''` or `/x...`, no trailing slash): prefixed to the operation's path. */
  basePath: string;
  /** `spec.defaults`: applied where the operation sets nothing, before {@link POLICY_DEFAULTS}. */
  defaults?: ApiSchemaSpec['defaults'];
  /**
   * Returns a self-contained copy of a schema (every `#/components/schemas/X` reference
   * inlined, recursive components under `$defs`), so the policy server compiles it alone.
   */
  inline: (schema: JsonSchema) => JsonSchema;
}

/**
 * The cache policy policy.json carries: `{ ttlSeconds, scope }` when the TTL is a positive
 * number of seconds and the scope `shared` or `identity`, else none (no caching). The CRD admits
 * only such values; an imported document's `x-kea-cache` is not checked before this point.
 */
function cachePolicy(c: CachePolicy | undefined): CachePolicy | undefined {
  if (!c || typeof c.ttlSeconds !== 'number' || !(c.ttlSeconds > 0) || !Number.isFinite(c.ttlSeconds)) return undefined;
  return c.scope === 'shared' || c.scope === 'identity' ? { ttlSeconds: c.ttlSeconds, scope: c.scope } : undefined;
}

const inRange = (n: unknown, min: number, max: number): n is number => Number.isInteger(n) && (n as number) >= min && (n as number) <= max;

/**
 * One ApiSchema rate limit in its policy.json form ({@link PolicyRateLimit}): `burst` default 0,
 * `key` default `identity`, the period in ms, and the counting `scope` given. Undefined when the
 * limit is outside what the CRD admits (it can only come from outside admission), so policy.json
 * stays valid.
 */
function rateLimitOf(l: RateLimit, scope: string): PolicyRateLimit | undefined {
  const periodMs = typeof l.period === 'string' ? parseDurationMs(l.period) : undefined;
  const burst = l.burst ?? 0;
  const key = l.key ?? 'identity';
  const b = RATE_LIMIT_BOUNDS;
  if (typeof l.name !== 'string' || !RATE_LIMIT_NAME.test(l.name)) return undefined;
  if (!inRange(l.requests, 1, b.maxRequests) || !inRange(burst, 0, b.maxRequests) || !inRange(periodMs, b.minPeriodMs, b.maxPeriodMs)) return undefined;
  if (key !== 'identity' && key !== 'address' && key !== 'api') return undefined;
  return { name: l.name, requests: l.requests, periodMs, burst, key, scope };
}

/**
 * The rate limits an operation enforces: its own `rateLimit` when set (`[]` = none), counted
 * for it alone (scope `<id>/<operationId>`), else `spec.defaults.rateLimit`, one counter per
 * limit shared by every operation that inherits it (scope `<id>`). At most the first
 * {@link RATE_LIMIT_BOUNDS}.maxPerList, first of a name only. Undefined when there is none.
 */
function rateLimitsOf(ctx: PolicyOperationContext, o: Operation): PolicyRateLimit[] | undefined {
  const own = Array.isArray(o.rateLimit);
  const list = own ? o.rateLimit! : Array.isArray(ctx.defaults?.rateLimit) ? ctx.defaults.rateLimit : [];
  const scope = own ? `${ctx.id}/${o.operationId}` : ctx.id;
  const out: PolicyRateLimit[] = [];
  for (const l of list.slice(0, RATE_LIMIT_BOUNDS.maxPerList)) {
    const p = l && typeof l === 'object' ? rateLimitOf(l, scope) : undefined;
    if (p && !out.some((q) => q.name === p.name)) out.push(p);
  }
  return out.length ? out : undefined;
}

/** `n` when it is a number above 0, else undefined. */
const positive = (n: number | undefined): number | undefined => (n !== undefined && n > 0 ? n : undefined);

/** The schema as policy.json carries it: self-contained, then converted for ajv. */
function enforced(ctx: PolicyOperationContext, schema: JsonSchema): JsonSchema {
  return oas30ToJsonSchema(ctx.inline(schema)) as JsonSchema;
}

/**
 * The policy.json form of one operation: public path `basePath + path`, upstream path `path`;
 * access, timeout (Gateway API Duration → ms; one that is not above 0 ms counts as unset) and
 * body limit from the operation, else `spec.defaults`, else {@link POLICY_DEFAULTS}; the cache
 * policy when it is a valid one ({@link cachePolicy}); response validation from the operation, else
 * `off`; the rate limits (the operation's own, else `spec.defaults`', with their counting
 * scope; {@link rateLimitsOf}); parameters with `required` decided (always true for `in: path`, OpenAPI 3.0.3
 * §4.7.12); the request body's media type (default `application/json`) and `required`
 * (default false, OpenAPI 3.0.3 §4.7.13); response schemas by status code, sorted. Every
 * schema is self-contained ({@link PolicyOperationContext.inline}) and converted to the JSON
 * Schema form ajv compiles ({@link oas30ToJsonSchema}). Does not modify its inputs.
 */
export function policyOperationOf(ctx: PolicyOperationContext, o: Operation): PolicyOperation {
  const d = ctx.defaults ?? {};
  const responses: Record<string, JsonSchema> = {};
  for (const code of Object.keys(o.responses ?? {}).sort()) {
    const s = o.responses![code].schema;
    if (s) responses[code] = enforced(ctx, s);
  }
  return {
    operationId: o.operationId,
    method: o.method,
    path: `${ctx.basePath}${o.path}`,
    upstreamPath: o.path,
    access: structuredClone(o.access ?? d.access ?? POLICY_DEFAULTS.access),
    cache: cachePolicy(o.cache),
    timeoutMs: positive(parseDurationMs(o.timeout ?? d.timeout ?? POLICY_DEFAULTS.timeout)) ?? POLICY_DEFAULTS.timeoutMs,
    maxBodyBytes: o.maxBodyBytes ?? d.maxBodyBytes ?? POLICY_DEFAULTS.maxBodyBytes,
    responseValidation: o.responseValidation ?? POLICY_DEFAULTS.responseValidation,
    parameters: (o.parameters ?? []).map((p) => ({
      ...structuredClone(p),
      required: p.in === 'path' ? true : (p.required ?? false),
      schema: p.schema ? enforced(ctx, p.schema) : undefined,
    })),
    requestBody: o.requestBody
      ? {
          required: o.requestBody.required ?? false,
          contentType: o.requestBody.contentType ?? POLICY_DEFAULTS.contentType,
          schema: enforced(ctx, o.requestBody.schema),
        }
      : undefined,
    responses,
    rateLimits: rateLimitsOf(ctx, o),
  };
}

/**
 * The operation `POST /services/{ns}/{name}/predict` runs (and the status call example shows):
 * the first `POST` operation whose operationId starts with `predict` (case-insensitive), else
 * the first `POST` operation, else none.
 * @param ops - the operations in spec order (inline first, then imported or derived).
 */
export function defaultOperationId(ops: ReadonlyArray<{ operationId: string; method: string }>): string | undefined {
  const posts = ops.filter((o) => o.method === 'POST');
  return (posts.find((o) => /^predict/i.test(o.operationId)) ?? posts[0])?.operationId;
}
