/**
 * KEA's custom resources, `kea.dev/v1alpha1` `ApiSchema` and `MLService`, as TypeScript
 * types. These mirror the CRDs in `manifests/crds/` field for field: the CRD (structural
 * schema + CEL) is the admission contract, these types are the in-process contract shared by
 * the controller pipeline, the policy server and the CLI.
 *
 * Units: durations are Gateway API Duration strings (GEP-2257, e.g. `"5s"`, `"500ms"`),
 * weights are integer percent (0–100), sizes are bytes.
 *
 * What admission guarantees (so consumers need not re-check; test/crds.int.test.ts proves it
 * on a real kube-apiserver): MLService — at least one and at most 16 revisions, unique
 * revision names (DNS-1035 labels, ≤ 20 chars), weights summing to 100, `image` on every
 * revision when `framework` is `custom`, `modelUri` or `image` otherwise, metadata.name a
 * DNS-1035 label ≤ 42 chars. ApiSchema — exactly one of `target.mlService`/`target.service`;
 * `basePath` like `/iris` (leading `/`, no trailing `/`, not under `/docs`, `/openapi`,
 * `/auth`, `/services`, `/router`, `/logs`, `/methods`); operations (≤ 64) present unless
 * `source.openapi` or `inference` is set; unique operationIds and unique method+path;
 * parameters (≤ 32) unique by name+in; every `{param}` of a path declared once as a required
 * `in: path` parameter and vice versa; paths
 * start with `/` and use whole-segment templates; no requestBody on GET/HEAD; timeouts are
 * Durations in (0s, 1h]; `cache.ttlSeconds` in 1–86400; rate limits (≤ 4 per list) have
 * unique names, `requests` 1–1e9, `burst` 0–1e9, a `period` Duration in [1s, 24h]; `restricted` access names at least
 * one role, group or scope, and only `restricted` access names any; `inference` only with an
 * MLService target; `source.openapi.path` a plain absolute path on the target (single leading
 * `/`, no `//`, `\`, dot segments or `%2F`/`%5C`/`%00`, printable ASCII). JSON Schema fields
 * are stored verbatim (not validated at admission).
 */

/** API group and version of KEA's resources. */
export const GROUP = 'kea.dev';
export const VERSION = 'v1alpha1';
export const API_VERSION = `${GROUP}/${VERSION}`;

/** Standard Kubernetes object metadata subset used by KEA. */
export interface ObjectMeta {
  name: string;
  namespace?: string;
  uid?: string;
  generation?: number;
  resourceVersion?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  creationTimestamp?: string;
  deletionTimestamp?: string;
}

/** A status condition (metav1.Condition, KEP-1623). */
export interface Condition {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  reason: string;
  message: string;
  observedGeneration?: number;
  lastTransitionTime?: string;
}

/** JSON Schema (OpenAPI 3.0 Schema Object dialect) kept verbatim from the resource. */
export type JsonSchema = Record<string, unknown>;

/* ------------------------------------------------------------------ MLService */

/** Runtimes KEA knows how to deploy. `custom` means "run spec.revisions[].image as is". */
export type Framework = 'sklearn' | 'pytorch' | 'tensorflow' | 'onnx' | 'custom';

/** Kubernetes ResourceRequirements (core/v1), quantities as strings. */
export interface ResourceRequirements {
  requests?: Record<string, string>;
  limits?: Record<string, string>;
}

/** One deployable revision of a model. */
export interface Revision {
  /** DNS label, unique within the MLService, e.g. `v1`. */
  name: string;
  /** Container image. Required for `custom`; defaults to the framework's runtime image. */
  image?: string;
  /** Where the runtime loads the model from (`s3://`, `gs://`, `pvc://`, `file://`). */
  modelUri?: string;
  /** Pod replicas (default 1). */
  replicas?: number;
  /** Container port the model serves HTTP on (default spec.port, else 8080). */
  port?: number;
  /** Share of traffic in percent (0–100). Weights of all revisions sum to 100. */
  weight: number;
  resources?: ResourceRequirements;
  env?: Array<{ name: string; value: string }>;
  args?: string[];
  /** Name of the ApiSchema (same namespace) describing this revision's API, for contract checks. */
  apiSchema?: string;
}

export interface MLServiceSpec {
  framework: Framework;
  /** Default container port for revisions (default 8080). */
  port?: number;
  /** HTTP path of the readiness/liveness probe (default `/healthz` for custom, runtime's own otherwise). */
  healthPath?: string;
  revisions: Revision[];
  /** Allow a canary whose API change is breaking (see docs/api-diff.md). Default false. */
  allowBreakingChanges?: boolean;
}

export interface MLServiceStatus {
  observedGeneration?: number;
  conditions?: Condition[];
  /** Weights currently routed, per revision, in percent. */
  traffic?: Array<{ revision: string; weight: number }>;
  /**
   * The routed split as text, `revision=percent` joined by `,` in spec order, e.g.
   * `v1=80,v2=20`. Shown by `kubectl get mls` (printer column Traffic), because a printer
   * column's JSONPath shows only the first element of a list.
   */
  trafficSplit?: string;
  /** In-cluster URL of the internal route for this service. */
  url?: string;
}

export interface MLService {
  apiVersion: typeof API_VERSION;
  kind: 'MLService';
  metadata: ObjectMeta;
  spec: MLServiceSpec;
  status?: MLServiceStatus;
}

/* ------------------------------------------------------------------ ApiSchema */

export type HttpMethod = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE' | 'HEAD' | 'OPTIONS';

/** Who may call an operation. `restricted` requires any of the roles/groups or all scopes. */
export interface Access {
  mode: 'public' | 'authenticated' | 'restricted';
  roles?: string[];
  groups?: string[];
  scopes?: string[];
}

/** Response caching for an operation (opt-in). */
export interface CachePolicy {
  /** Time to live in seconds (1–86400). */
  ttlSeconds: number;
  /** `shared`: one entry for all callers; `identity`: one entry per authenticated subject. */
  scope: 'shared' | 'identity';
}

/**
 * One rate limit: at most `requests` (+ `burst`) requests per `period` for each caller (or
 * address, or the API as a whole, per `key`). Over it the gateway answers `429`
 * `application/problem+json` (code `rate-limited`) with `Retry-After`; every answer of a
 * limited operation carries the `RateLimit-Policy` and `RateLimit` headers
 * (draft-ietf-httpapi-ratelimit-headers-09).
 *
 * Counting scope: a limit in `spec.defaults.rateLimit` is one counter shared by every
 * operation that inherits it (so `key: api` there caps the API as a whole); a limit on an
 * operation counts that operation alone.
 */
export interface RateLimit {
  /**
   * The limit's name in the `RateLimit-Policy` header, unique in its list:
   * `^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$` (1–32 characters), e.g. `per-minute`.
   */
  name: string;
  /** Requests allowed per period, 1–1000000000. */
  requests: number;
  /** The period, a Gateway API Duration (GEP-2257; lib/api/duration.ts), 1s–24h, e.g. `1s`, `1m`, `24h`. */
  period: string;
  /** Extra requests allowed above `requests` in a short spike, 0–1000000000 (default 0). */
  burst?: number;
  /**
   * Who shares one counter: `identity` (default: the caller's subject; a client-credentials
   * caller is `client:<id>`; an anonymous caller falls back to its client address), `address`
   * (the client address as the gateway saw it), `api` (every caller together).
   */
  key?: 'identity' | 'address' | 'api';
}

/** An OpenAPI 3.0 Parameter Object subset (OpenAPI 3.0.3 §4.7.12). */
export interface Parameter {
  name: string;
  in: 'path' | 'query' | 'header';
  required?: boolean;
  description?: string;
  schema?: JsonSchema;
  example?: unknown;
}

export interface RequestBody {
  required?: boolean;
  description?: string;
  /** Media type, default `application/json`. */
  contentType?: string;
  schema: JsonSchema;
  example?: unknown;
}

export interface ResponseSpec {
  description: string;
  contentType?: string;
  schema?: JsonSchema;
  example?: unknown;
}

export interface Operation {
  /** Unique within the ApiSchema; becomes the OpenAPI operationId. */
  operationId: string;
  method: HttpMethod;
  /** Path template relative to spec.basePath, e.g. `/items/{id}` (OpenAPI §4.7.9). */
  path: string;
  summary?: string;
  description?: string;
  tags?: string[];
  deprecated?: boolean;
  parameters?: Parameter[];
  requestBody?: RequestBody;
  /** Keyed by status code (`"200"`) or `default`. */
  responses?: Record<string, ResponseSpec>;
  /** Default: spec.defaults.access, else `authenticated`. */
  access?: Access;
  cache?: CachePolicy;
  /** Upstream timeout (Duration), default spec.defaults.timeout, else `5s`. */
  timeout?: string;
  /** Check model responses against `responses`: off (default), log, enforce. */
  responseValidation?: 'off' | 'log' | 'enforce';
  /** Body limit in bytes, default spec.defaults.maxBodyBytes, else 1 MiB. */
  maxBodyBytes?: number;
  /**
   * Rate limits of this operation (at most 4, names unique), counted for this operation alone.
   * Set, it replaces `spec.defaults.rateLimit` for this operation; `[]` = no limit. Absent:
   * `spec.defaults.rateLimit`, else none.
   */
  rateLimit?: RateLimit[];
}

/** A declared tensor (Open Inference Protocol v2 / TF Serving), e.g. FP32 [-1, 4]. */
export interface TensorSpec {
  name: string;
  /** OIP v2 datatype: BOOL, UINT8..64, INT8..64, FP16, FP32, FP64, BYTES. */
  datatype: string;
  /** Dimensions; -1 means variable. */
  shape: number[];
  description?: string;
}

/** Predefined-runtime inference signature; KEA derives typed operations from it. */
export interface InferenceSignature {
  protocol: 'v2' | 'tfserving';
  /** Model name in the runtime's URLs (default: the MLService name). */
  modelName?: string;
  inputs: TensorSpec[];
  outputs: TensorSpec[];
}

/** What the API fronts: an MLService, or an existing Service (hand-written APIs). */
export interface Target {
  mlService?: { name: string; namespace?: string };
  service?: { name: string; namespace?: string; port: number };
}

/** Where operations come from when they are not (only) inline. */
export interface SchemaSource {
  /** Import from the OpenAPI document the target serves, e.g. FastAPI's `/openapi.json`. */
  openapi?: {
    /**
     * Path on the target (default `/openapi.json`). Only an absolute path on the target
     * (admission and controller/discover `openApiPathProblem`): a single leading `/`, no `//`,
     * no `\`, no `.`/`..` segment, no `%2F`/`%5C`/`%00`, printable ASCII, ≤ 256 characters.
     */
    path?: string;
    /** Keep the schema current by refetching periodically. */
    refresh?: boolean;
    /** Refresh period in seconds (default 60). */
    intervalSeconds?: number;
    /**
     * Let `x-kea-access` and `x-kea-cache` in the served document loosen access (default
     * false). When false an imported operation's `x-kea-access` may only tighten
     * `spec.defaults.access` (public < authenticated < restricted; both restricted: both
     * requirements hold), and an `x-kea-cache` scope `shared` on an operation that is not public
     * becomes `identity`; what is not applied is listed in `status.unroutable`
     * (controller/graph/discovered.ts).
     */
    trustAccess?: boolean;
  };
}

/**
 * Browser-origin isolation of an API's backend (every API is served on the gateway's one
 * origin, next to KEA's session cookie and the docs UI).
 */
export interface ApiSecurity {
  /**
   * Client credential headers the backend receives, in both policy modes (enforce: the policy
   * server keeps them; passthrough: the public HTTPRoute does not remove them). Default none:
   * `Authorization` (the caller's bearer token, valid for every API on the gateway) and
   * `Cookie` (including KEA's session cookie) never reach the backend unless listed here.
   */
  forwardCredentials?: Array<'Authorization' | 'Cookie'>;
  /**
   * `Content-Security-Policy` (W3C CSP Level 3) put on every proxied response, next to
   * `X-Content-Type-Options: nosniff` (always). Default
   * `default-src 'none'; frame-ancestors 'none'; sandbox`: a backend's HTML cannot run script
   * or be framed on the gateway's origin. A backend's own CSP header is kept too (browsers
   * enforce every policy, so it can only tighten).
   */
  contentSecurityPolicy?: string;
}

export interface ApiSchemaSpec {
  target: Target;
  /** Public path prefix at the gateway, e.g. `/iris`. Unique per gateway. */
  basePath: string;
  info: { title: string; version: string; description?: string };
  /** `enforce` (default): traffic goes through the policy server. `passthrough`: policy off. */
  policy?: { mode: 'enforce' | 'passthrough' };
  defaults?: {
    access?: Access;
    timeout?: string;
    maxBodyBytes?: number;
    /**
     * Rate limits (at most 4, names unique) of every operation that sets no `rateLimit` of its
     * own; each is one counter shared by all those operations.
     */
    rateLimit?: RateLimit[];
    /**
     * What the rate limits do while the policy server's shared store (Redis) is down or slow:
     * `open` (default: each policy-server process enforces the limits on its own, so N
     * processes allow up to N× the limit) or `closed` (503 `rate-limit-unavailable`).
     */
    rateLimitFailMode?: 'open' | 'closed';
  };
  /** Claim paths for authorization (dot-separated), defaults from the policy server config. */
  authorization?: { rolesClaim?: string; groupsClaim?: string; scopesClaim?: string };
  /** What the backend may see of the caller's credentials, and what its responses may do in a browser. */
  security?: ApiSecurity;
  inference?: InferenceSignature;
  source?: SchemaSource;
  /** Shared OpenAPI components (`schemas` only), referenced as `#/components/schemas/X`. */
  components?: { schemas?: Record<string, JsonSchema> };
  operations?: Operation[];
}

/** One entry of an ApiSchema's published version history. */
export interface PublishedVersion {
  version: string;
  /** sha256 of the canonical OpenAPI document, hex. */
  digest: string;
  publishedAt: string;
}

export interface ApiDiffSummary {
  from: string;
  to: string;
  breaking: boolean;
  changes: Array<{ kind: string; breaking: boolean; path: string; message: string }>;
}

export interface ApiSchemaStatus {
  observedGeneration?: number;
  conditions?: Condition[];
  docsUrl?: string;
  openapiUrl?: string;
  /** A curl command that calls the first operation through the gateway. */
  curlExample?: string;
  operationCount?: number;
  versions?: PublishedVersion[];
  lastDiff?: ApiDiffSummary;
  /** Operations found in an imported document that cannot be routed, with the reason. */
  unroutable?: string[];
}

export interface ApiSchema {
  apiVersion: typeof API_VERSION;
  kind: 'ApiSchema';
  metadata: ObjectMeta;
  spec: ApiSchemaSpec;
  status?: ApiSchemaStatus;
}

/* ------------------------------------------------------------------ shared names */

/** Labels KEA puts on everything it emits; pruning selects on `kea.dev/managed-by`. */
export const LABELS = {
  managedBy: 'kea.dev/managed-by',
  owner: 'kea.dev/owner',
  ownerKind: 'kea.dev/owner-kind',
  revision: 'kea.dev/revision',
  component: 'kea.dev/component',
} as const;

/** The one server-side apply field manager KEA writes with. */
export const FIELD_MANAGER = 'kea-controller';
export const MANAGED_BY_VALUE = 'kea';

/** Condition types used on both resources. */
export const CONDITIONS = {
  accepted: 'Accepted',
  resolvedRefs: 'ResolvedRefs',
  programmed: 'Programmed',
  ready: 'Ready',
  published: 'Published',
} as const;

/** What `kea scan` and `kea import` derive; the rest of the spec keeps KEA's defaults. */
export interface DerivedApi {
  name: string;
  namespace?: string;
  /** Default `{ mlService: { name } }`. */
  target?: Target;
  /** Default `/<name>`. */
  basePath?: string;
  title: string;
  version: string;
  description?: string;
  source?: SchemaSource;
  /** Shared schemas (`components.schemas`), keys already sorted; omitted when empty. */
  schemas?: Record<string, JsonSchema>;
  operations: Operation[];
}

/** The ApiSchema resource for a derived API (one shape for scan and import). */
export function derivedApiSchema(d: DerivedApi): ApiSchema {
  return {
    apiVersion: API_VERSION,
    kind: 'ApiSchema',
    metadata: d.namespace ? { name: d.name, namespace: d.namespace } : { name: d.name },
    spec: {
      target: d.target ?? { mlService: { name: d.name } },
      basePath: d.basePath ?? `/${d.name}`,
      info: { title: d.title, version: d.version, ...(d.description ? { description: d.description } : {}) },
      ...(d.source ? { source: d.source } : {}),
      ...(d.schemas && Object.keys(d.schemas).length ? { components: { schemas: d.schemas } } : {}),
      operations: d.operations,
    },
  };
}
