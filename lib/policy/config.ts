/**
 * The policy configuration contract between the controller and the policy server.
 *
 * How it travels: for every ApiSchema the controller's render stage emits one ConfigMap in
 * the KEA system namespace, labelled `kea.dev/component=api-config`, named
 * {@link apiConfigMapName}, holding two keys:
 *   - `policy.json`: a {@link PolicyService} (what the data path enforces),
 *   - `openapi.json`: the published OpenAPI 3.0.3 document (what /docs shows).
 * Earlier published versions live in ConfigMaps labelled `kea.dev/component=api-version`
 * ({@link apiVersionConfigMapName}), which are never pruned while the ApiSchema exists, except
 * the oldest beyond the controller's cap of 10 per ApiSchema. Their annotations:
 * `kea.dev/api-schema` (`<ns>/<name>`), `kea.dev/version` (info.version), `kea.dev/digest`
 * (sha256 hex of the `openapi.json` text) and `kea.dev/published-at` (RFC 3339).
 * The policy server watches these ConfigMaps, builds an immutable snapshot (every validator
 * compiled once) and swaps it in atomically; the last good snapshot is also persisted on
 * local disk so a restart with the API server down still serves.
 *
 * `policy.json` is versioned ({@link PolicyService.apiVersion}, {@link POLICY_API_VERSION}) and
 * has a JSON Schema (lib/policy/schema.ts) the policy server validates it with; a version it
 * does not know is refused, naming both versions. Every decision is the controller's: the
 * defaults ({@link POLICY_DEFAULTS}), the default operation, and each schema already in the
 * JSON Schema form ajv compiles (lib/policy/operation.ts); the policy server only compiles.
 */
import { sha256Prefix } from '../hash.js';
import type { Access, CachePolicy, HttpMethod, JsonSchema } from '../api/types.js';

export const POLICY_CONFIG_KEY = 'policy.json';
/**
 * The `policy.json` format this code writes (controller) and reads (policy server):
 * {@link PolicyService.apiVersion}. A change that an older policy server would misread gets a
 * new version; the policy server refuses any version but this one.
 */
export const POLICY_API_VERSION = 'policy.kea.dev/v1';
export const OPENAPI_KEY = 'openapi.json';
export const COMPONENT_API_CONFIG = 'api-config';
export const COMPONENT_API_VERSION = 'api-version';

/** Header set by the public HTTPRoute rule to identify the operation: `<ns>/<name>/<operationId>`. */
export const OPERATION_HEADER = 'x-kea-operation';
/** Header the policy server adds when forwarding; the internal HTTPRoute matches on it. */
export const INTERNAL_TOKEN_HEADER = 'x-kea-internal-token';

/**
 * The `Content-Security-Policy` of proxied responses when the ApiSchema sets none (W3C CSP
 * Level 3): nothing may load, the page may not be framed, and it runs sandboxed in an opaque
 * origin (no script, no access to the gateway origin's cookies or storage).
 */
export const DEFAULT_CONTENT_SECURITY_POLICY = "default-src 'none'; frame-ancestors 'none'; sandbox";

/**
 * The defaults the controller applies to an ApiSchema operation that does not set a field
 * (neither on the operation nor in `spec.defaults`), as documented on the CRD: access
 * `authenticated`, timeout `5s` (a Gateway API Duration, GEP-2257; `timeoutMs` is the same in
 * ms), request body limit 1048576 bytes (1 MiB), response validation `off`, request body media
 * type `application/json`, rate-limit fail mode `open`. The policy server applies none: policy.json carries every value.
 * Frozen (shared by every caller): copy `access` before handing it out as mutable.
 */
export const POLICY_DEFAULTS = Object.freeze({
  access: Object.freeze({ mode: 'authenticated' } as const satisfies Access),
  timeout: '5s',
  timeoutMs: 5000,
  maxBodyBytes: 1_048_576,
  responseValidation: 'off',
  contentType: 'application/json',
  rateLimitFailMode: 'open',
} as const);

/** A parameter as enforced in the data path. */
export interface PolicyParameter {
  name: string;
  in: 'path' | 'query' | 'header';
  /** Always true for `in: path` (OpenAPI 3.0.3 §4.7.12: path parameters are required). */
  required: boolean;
  description?: string;
  example?: unknown;
  /** The value's JSON Schema in the form ajv compiles (see {@link PolicyOperation}); absent: any value. */
  schema?: JsonSchema;
}

/**
 * One operation as enforced in the data path. Every schema is self-contained (components
 * inlined, recursive ones under `$defs`) and already in the JSON Schema form ajv compiles
 * (draft-07 with ajv's `nullable`; lib/openapi/jsonschema.ts `oas30ToJsonSchema`).
 */
export interface PolicyOperation {
  operationId: string;
  method: HttpMethod;
  /** Public path template including basePath, e.g. `/iris/items/{id}`. */
  path: string;
  /** Path template at the upstream service (without basePath), e.g. `/items/{id}`. */
  upstreamPath: string;
  access: Access;
  cache?: CachePolicy;
  /** Upstream timeout in ms, > 0 ({@link POLICY_DEFAULTS} when the ApiSchema sets none). */
  timeoutMs: number;
  /** Request body limit in bytes, 1..{@link MAX_OPERATION_BODY_BYTES}. */
  maxBodyBytes: number;
  responseValidation: 'off' | 'log' | 'enforce';
  parameters: PolicyParameter[];
  requestBody?: { required: boolean; contentType: string; schema: JsonSchema };
  /** Response schemas by status code (`"200"`, `"default"`), for responseValidation. */
  responses: Record<string, JsonSchema | undefined>;
  /**
   * The rate limits that apply to this operation, the controller having resolved the
   * operation's own `rateLimit` against `spec.defaults.rateLimit` (lib/policy/operation.ts).
   * Absent or empty: no limit. Each is counted separately; a request must fit every one.
   */
  rateLimits?: PolicyRateLimit[];
}

/** A rate limit's name: what the CRD admits and the `RateLimit-Policy` header carries as its key. */
export const RATE_LIMIT_NAME = /^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$/;

/**
 * Bounds of a rate limit, the CRD's: `requests` and `burst` at most `maxRequests` (per period),
 * the period from `minPeriodMs` (1 s) to `maxPeriodMs` (24 h), at most `maxPerList` limits in
 * one `rateLimit` list.
 */
export const RATE_LIMIT_BOUNDS = Object.freeze({ maxRequests: 1_000_000_000, minPeriodMs: 1000, maxPeriodMs: 86_400_000, maxPerList: 4 } as const);

/** Who shares one rate-limit counter (the ApiSchema's `RateLimit.key`). */
export type RateLimitKey = 'identity' | 'address' | 'api';

/**
 * One rate limit as enforced in the data path: at most `requests + burst` requests per
 * `periodMs` for each value of `key` within `scope`.
 */
export interface PolicyRateLimit {
  /** The limit's name in the `RateLimit-Policy` / `RateLimit` headers, `^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$`. */
  name: string;
  /** Requests allowed per period, 1..1000000000. */
  requests: number;
  /** The period in ms, 1000..86400000 (1 s..24 h). */
  periodMs: number;
  /** Extra requests allowed above `requests` in a short spike, >= 0. */
  burst: number;
  /**
   * Who shares one counter: `identity` (the caller's subject; a client-credentials caller is
   * `client:<id>`; an anonymous caller falls back to its client address), `address` (the client
   * address as the gateway saw it), `api` (every caller together).
   */
  key: RateLimitKey;
  /**
   * Counter namespace decided by the controller: `<ns>/<apischema>` for a `spec.defaults`
   * limit (one counter shared by every operation that inherits it), `<ns>/<apischema>/<operationId>`
   * for an operation's own limit. The policy server's counter key is
   * `kea:rl:<scope>:<name>:<keyValue>` (keyValue hashed with lib/hash.ts).
   */
  scope: string;
}

/**
 * What the policy server does when the shared store (Redis) behind the rate limits is down or
 * slow: `open` (each process enforces the limits on its own, same numbers), `closed` (503
 * problem `rate-limit-unavailable`).
 */
export type RateLimitFailMode = 'open' | 'closed';

/** Everything the policy server needs for one ApiSchema. */
export interface PolicyService {
  /** The policy.json format, {@link POLICY_API_VERSION}. */
  apiVersion: typeof POLICY_API_VERSION;
  /** `<namespace>/<name>` of the ApiSchema. */
  id: string;
  namespace: string;
  name: string;
  title: string;
  /** info.version */
  version: string;
  basePath: string;
  /** Digest of the service's config and traffic split; part of every cache key. */
  configVersion: string;
  /** `enforce` or `passthrough`; passthrough services carry no operations to enforce. */
  mode: 'enforce' | 'passthrough';
  /** Where to forward: the Host header that selects this service's internal HTTPRoute. */
  upstream: { host: string };
  /** Weighted split currently routed, per revision, in percent (for /router/loadbalancer). */
  traffic: Array<{ revision: string; weight: number }>;
  authorization: { rolesClaim?: string; groupsClaim?: string; scopesClaim?: string };
  /**
   * The operation `/services/{id}/predict` maps to, as the controller decided it
   * (lib/policy/operation.ts `defaultOperationId`); absent: that path answers 404.
   */
  defaultOperationId?: string;
  /**
   * Client credential headers (lower-case) the policy server forwards to the backend, from the
   * ApiSchema's `spec.security.forwardCredentials`. Absent or empty: neither `authorization`
   * nor `cookie` is forwarded.
   */
  forwardCredentials?: Array<'authorization' | 'cookie'>;
  /**
   * `Content-Security-Policy` added to every proxied response (`spec.security.contentSecurityPolicy`);
   * absent: {@link DEFAULT_CONTENT_SECURITY_POLICY}.
   */
  contentSecurityPolicy?: string;
  /**
   * `spec.defaults.rateLimitFailMode` (default `open`): what the rate limits of this service do
   * while the shared store is unavailable ({@link RateLimitFailMode}). The controller writes it
   * whenever an operation has a rate limit; absent means `open`.
   */
  rateLimitFailMode?: RateLimitFailMode;
  operations: PolicyOperation[];
}

/**
 * A {@link PolicyOperation} with {@link POLICY_DEFAULTS} filled in (no parameters, no response
 * schemas; a parameter without `required` is required only `in: path`), for hand-written
 * configurations (tests, benchmarks), as the controller would write it. Schemas are taken as
 * given: write them in the JSON Schema form ajv compiles.
 */
export function policyOperation(
  o: Partial<Omit<PolicyOperation, 'parameters'>> &
    Pick<PolicyOperation, 'operationId' | 'method' | 'path' | 'upstreamPath'> & {
      parameters?: Array<Omit<PolicyParameter, 'required'> & { required?: boolean }>;
    },
): PolicyOperation {
  return {
    access: structuredClone(POLICY_DEFAULTS.access),
    timeoutMs: POLICY_DEFAULTS.timeoutMs,
    maxBodyBytes: POLICY_DEFAULTS.maxBodyBytes,
    responseValidation: POLICY_DEFAULTS.responseValidation,
    responses: {},
    ...o,
    parameters: (o.parameters ?? []).map((p) => ({ ...p, required: p.required ?? p.in === 'path' })),
  };
}

const MIB = 1024 * 1024;

/** The largest request body limit an operation may set (bytes, 64 MiB): the CRD's `maxBodyBytes` maximum. */
export const MAX_OPERATION_BODY_BYTES = 64 * MIB;

/** At least this much (bytes, 8 MiB) above the largest operation limit gets through the gateway to the policy server. */
export const GATEWAY_BODY_SLACK_BYTES = 8 * MIB;

/**
 * The gateway's request body cap (nginx `client_max_body_size`, bytes) for the largest
 * operation limit `largest` (bytes): `largest + max(largest, GATEWAY_BODY_SLACK_BYTES)`,
 * rounded up to a whole MiB. A body over an operation's limit but under the cap reaches the
 * policy server, which answers 413 `application/problem+json`; only a body over the cap gets
 * nginx's own 413 page.
 */
export function gatewayBodyCapBytes(largest: number): number {
  return Math.ceil((largest + Math.max(largest, GATEWAY_BODY_SLACK_BYTES)) / MIB) * MIB;
}

/**
 * {@link gatewayBodyCapBytes} as an NGF Size (`^\d{1,4}(k|m|g)?$`, whole MiB), the
 * ClientSettingsPolicy `body.maxSize` the controller renders: 1 MiB → `9m`, 8 MiB → `16m`,
 * 64 MiB → `128m`.
 */
export function gatewayBodyMaxSize(largest: number): string {
  return `${gatewayBodyCapBytes(largest) / MIB}m`;
}

/**
 * Largest declared request body (bytes, 128 MiB) the policy server reads and discards before
 * its 413, so the connection under the gateway stays open: the gateway's cap for the largest
 * limit an operation may set ({@link gatewayBodyCapBytes} of {@link MAX_OPERATION_BODY_BYTES}).
 * No body over it can come through the gateway.
 */
export const MAX_DRAINED_BODY_BYTES = gatewayBodyCapBytes(MAX_OPERATION_BODY_BYTES);

/** Longest Kubernetes object name (a DNS-1123 subdomain, RFC 1123), in characters. */
const MAX_OBJECT_NAME = 253;

/**
 * The first 8 hex digits of sha256(`<namespace>/<name>`): what makes {@link apiConfigMapName}
 * and {@link apiVersionConfigMapName} differ for ApiSchemas whose `<namespace>-<name>` read the
 * same (`team-x/y` and `team/x-y` both give `team-x-y`). `/` cannot occur in a namespace or a
 * name, so the hashed text is unambiguous.
 */
export function apiSchemaNameHash(namespace: string, name: string): string {
  return sha256Prefix(`${namespace}/${name}`, 8);
}

/**
 * `<prefix><namespace>-<name>` cut so that it plus `suffix` fits in a Kubernetes object name
 * (253 characters), without a trailing `-` or `.` before the suffix (DNS-1123 subdomain rules).
 */
function boundedName(prefix: string, namespace: string, name: string, suffix: string): string {
  const head = `${prefix}${namespace}-${name}`.slice(0, MAX_OBJECT_NAME - suffix.length).replace(/[-.]+$/, '');
  return `${head}${suffix}`;
}

/**
 * Name of the ConfigMap (system namespace) holding an ApiSchema's policy config and current
 * OpenAPI doc: `kea-api-<namespace>-<name>-<hash8>` ({@link apiSchemaNameHash}), the readable
 * part cut to keep the whole within 253 characters. Collision-free across namespaces: the
 * readable part alone is not (`team-x/y` and `team/x-y`). The controller still checks that no
 * two ApiSchemas get the same name (graph stage) and reports a clash in the newer one's status.
 */
export function apiConfigMapName(namespace: string, name: string): string {
  return boundedName('kea-api-', namespace, name, `-${apiSchemaNameHash(namespace, name)}`);
}

/**
 * Name of the ConfigMap (system namespace) holding one published version:
 * `kea-apiver-<namespace>-<name>-<hash8>-<digest10>` (hash8 as in {@link apiConfigMapName},
 * digest10 the first 10 hex digits of the document's sha256 `digest`), within 253 characters.
 */
export function apiVersionConfigMapName(namespace: string, name: string, digest: string): string {
  return boundedName('kea-apiver-', namespace, name, `-${apiSchemaNameHash(namespace, name)}-${digest.slice(0, 10)}`);
}
