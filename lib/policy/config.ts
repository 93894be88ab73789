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
 */
import { createHash } from 'node:crypto';
import type { Access, CachePolicy, HttpMethod, JsonSchema, Parameter } from '../api/types.js';

export const POLICY_CONFIG_KEY = 'policy.json';
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

/** One operation as enforced in the data path. All schemas are self-contained (components inlined or under `$defs`). */
export interface PolicyOperation {
  operationId: string;
  method: HttpMethod;
  /** Public path template including basePath, e.g. `/iris/items/{id}`. */
  path: string;
  /** Path template at the upstream service (without basePath), e.g. `/items/{id}`. */
  upstreamPath: string;
  access: Access;
  cache?: CachePolicy;
  /** Upstream timeout in ms (default 5000). */
  timeoutMs: number;
  /** Request body limit in bytes (default 1048576). */
  maxBodyBytes: number;
  responseValidation: 'off' | 'log' | 'enforce';
  parameters: Parameter[];
  requestBody?: { required: boolean; contentType: string; schema: JsonSchema };
  /** Response schemas by status code (`"200"`, `"default"`), for responseValidation. */
  responses: Record<string, JsonSchema | undefined>;
}

/** Everything the policy server needs for one ApiSchema. */
export interface PolicyService {
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
  /** The operation /services/{id}/predict maps to (first POST operation named predict*, else first POST). */
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
  operations: PolicyOperation[];
}

/**
 * A {@link PolicyOperation} with the documented defaults filled in (access `authenticated`,
 * timeout 5000 ms, body limit 1048576 bytes, response validation `off`, no parameters, no
 * response schemas), for hand-written configurations (tests, benchmarks).
 */
export function policyOperation(o: Partial<PolicyOperation> & Pick<PolicyOperation, 'operationId' | 'method' | 'path' | 'upstreamPath'>): PolicyOperation {
  return { access: { mode: 'authenticated' }, timeoutMs: 5000, maxBodyBytes: 1048576, responseValidation: 'off', parameters: [], responses: {}, ...o };
}

/** Longest Kubernetes object name (a DNS-1123 subdomain, RFC 1123), in characters. */
const MAX_OBJECT_NAME = 253;

/**
 * The first 8 hex digits of sha256(`<namespace>/<name>`): what makes {@link apiConfigMapName}
 * and {@link apiVersionConfigMapName} differ for ApiSchemas whose `<namespace>-<name>` read the
 * same (`team-x/y` and `team/x-y` both give `team-x-y`). `/` cannot occur in a namespace or a
 * name, so the hashed text is unambiguous.
 */
export function apiSchemaNameHash(namespace: string, name: string): string {
  return createHash('sha256').update(`${namespace}/${name}`).digest('hex').slice(0, 8);
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
