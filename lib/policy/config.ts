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
import type { Access, CachePolicy, HttpMethod, JsonSchema, Parameter } from '../api/types.js';

export const POLICY_CONFIG_KEY = 'policy.json';
export const OPENAPI_KEY = 'openapi.json';
export const COMPONENT_API_CONFIG = 'api-config';
export const COMPONENT_API_VERSION = 'api-version';

/** Header set by the public HTTPRoute rule to identify the operation: `<ns>/<name>/<operationId>`. */
export const OPERATION_HEADER = 'x-kea-operation';
/** Header the policy server adds when forwarding; the internal HTTPRoute matches on it. */
export const INTERNAL_TOKEN_HEADER = 'x-kea-internal-token';

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

/** Stable name of the ConfigMap holding an ApiSchema's policy config and current OpenAPI doc. */
export function apiConfigMapName(namespace: string, name: string): string {
  return `kea-api-${namespace}-${name}`;
}

/** Stable name of the ConfigMap holding one published version (digest: hex sha256). */
export function apiVersionConfigMapName(namespace: string, name: string, digest: string): string {
  return `kea-apiver-${namespace}-${name}-${digest.slice(0, 10)}`;
}
