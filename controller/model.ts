/**
 * Shared shapes of the controller pipeline stages:
 *   watch → batch → graph → IR → render → apply.
 * watch/batch produce a {@link ClusterSnapshot}; graph+IR+render are pure functions of
 * (snapshot, config) and produce a {@link RenderOutput}; apply makes the cluster match it.
 */
import { sha256Prefix } from '../lib/hash.js';
import type { KubernetesObject } from '@kubernetes/client-node';
import type { ApiSchema, ApiSchemaStatus, MLService, MLServiceStatus } from '../lib/api/types.js';

/** The latest result of fetching one ApiSchema's served OpenAPI document (the discover stage's output). */
export interface DiscoveredDoc {
  /** RFC 3339 time of the last attempt. */
  fetchedAt: string;
  /** The parsed document (OpenAPI 3.0 or 3.1), when the last successful fetch had one. */
  doc?: unknown;
  /** sha256 (hex) of the document's JSON text. */
  digest?: string;
  /** Why the last attempt failed; absent after a success. */
  error?: string;
}

/** One condition of a RouteParentStatus, as cached (Gateway API `metav1.Condition`, no lastTransitionTime). */
export interface RouteParentCondition {
  type: string;
  status: string;
  reason?: string;
  message?: string;
  observedGeneration?: number;
}

/** A `status.parents[]` entry of an HTTPRoute (Gateway API RouteParentStatus), as the watch stage caches it. */
export interface RouteParentStatus {
  parentRef: { group?: string; kind?: string; namespace?: string; name: string; sectionName?: string; port?: number };
  controllerName?: string;
  conditions?: RouteParentCondition[];
}

/** A live HTTPRoute as the watch stage caches it: metadata and `status.parents`, no spec. */
export type ObservedRoute = KubernetesObject & { status?: { parents?: RouteParentStatus[] } };

/** Static controller configuration (flags/env). */
export interface ControllerConfig {
  /** Namespace of KEA's own components (policy server, api-config ConfigMaps). */
  systemNamespace: string;
  /** The Gateway every emitted HTTPRoute attaches to (parentRef). */
  gateway: { namespace: string; name: string; publicListener: string; internalListener: string };
  /** The policy server's Service (backendRef of public routes). */
  policyServer: { name: string; port: number };
  /**
   * Shared secret the internal HTTPRoutes require in header x-kea-internal-token: the current
   * value, which discovery sends. The routes live in the system namespace only (tenants cannot
   * read them), docs/adr/0009-internal-routes.md.
   */
  internalToken: string;
  /**
   * Further values the internal routes accept besides {@link internalToken} during a rotation
   * (the previous and/or the next token); each becomes one more `matches` entry (ORed).
   * Optional; absent or empty = only the current one.
   */
  acceptedInternalTokens?: string[];
  /** Public base URL of the gateway, for docs/openapi URLs and curl examples. */
  gatewayUrl: string;
  /** Suffix of internal hostnames, e.g. `kea.internal` → `iris.models.kea.internal`. */
  internalDomain: string;
  /** Port of the Gateway's internal listener, for MLService `status.url` (default 8081). */
  internalPort?: number;
  /** OIDC issuer URL, for the openIdConnect security scheme of generated OpenAPI documents. */
  issuerUrl?: string;
  /**
   * The Gateway API implementation that programs the Gateway: `ngf` (nginx-gateway-fabric)
   * adds NGF's own policies (`gateway.nginx.org/v1alpha1` ClientSettingsPolicy for the body
   * size, UpstreamSettingsPolicy for upstream keep-alive; render/ngf-policies.ts); `generic` emits
   * standard Gateway API objects only. Absent = `generic` (the flag's default is `ngf`, and the
   * controller falls back to `generic` when NGF's CRDs are not served).
   */
  gatewayImplementation?: 'ngf' | 'generic';
}

/** Everything the pure stages read. Lists are in any order; stages sort. */
export interface ClusterSnapshot {
  apiSchemas: ApiSchema[];
  mlServices: MLService[];
  /** core/v1 Services (hand-written targets are resolved against these). */
  services: KubernetesObject[];
  /** gateway.networking.k8s.io/v1beta1 ReferenceGrants. */
  referenceGrants: KubernetesObject[];
  /** ConfigMaps labelled kea.dev/component=api-version (published version history). */
  publishedVersions: KubernetesObject[];
  /**
   * apps/v1 Deployments KEA manages (label kea.dev/managed-by=kea), read only for their
   * `status` (MLService `Ready` condition). Optional: when absent, `Ready` is `Unknown`.
   */
  deployments?: KubernetesObject[];
  /**
   * gateway.networking.k8s.io/v1 HTTPRoutes KEA manages (label kea.dev/managed-by=kea), read
   * only for their metadata (owner label, generation, applied hash) and `status.parents` (the
   * gateway's verdict: the owners' `Programmed` condition, render/route-status.ts). Optional:
   * absent = no route observed (a rendered owner is then `Programmed=Unknown`, Pending).
   */
  routes?: KubernetesObject[];
  /**
   * OpenAPI documents served by the targets of ApiSchemas with `spec.source.openapi`, keyed
   * `<namespace>/<name>` of the ApiSchema (controller/discover). Optional: absent = nothing
   * discovered yet.
   */
  discovered?: Record<string, DiscoveredDoc>;
}

export interface StatusUpdate {
  kind: 'ApiSchema' | 'MLService';
  namespace: string;
  name: string;
  status: ApiSchemaStatus | MLServiceStatus;
}

export interface EventRecord {
  regarding: { kind: string; namespace: string; name: string; uid?: string };
  type: 'Normal' | 'Warning';
  reason: string;
  message: string;
}

/** Output of render: the complete desired state, sorted, with stable names. */
export interface RenderOutput {
  /** Every object KEA wants to exist, each labelled kea.dev/managed-by=kea. */
  objects: KubernetesObject[];
  statuses: StatusUpdate[];
  events: EventRecord[];
  /**
   * `kea.dev/owner` label values of resources whose own spec became invalid (`Accepted=False`
   * reason `Invalid`), or that front such a resource. Nothing is rendered for them; apply must
   * leave their existing objects as they are (neither update nor prune them), so a bad edit
   * loses nothing that already runs. Sorted. Optional for compatibility; absent = none.
   */
  retainOwners?: string[];
  /**
   * Version-history ConfigMaps (`kea.dev/component=api-version`) to delete although their
   * ApiSchema still exists: the oldest ones beyond the history cap of
   * {@link MAX_PUBLISHED_VERSIONS} per ApiSchema. Each `<namespace>/<name>`. Sorted. Optional
   * for compatibility; absent = none. Version ConfigMaps neither desired nor listed here are
   * kept while their ApiSchema exists.
   */
  droppedVersions?: string[];
  /**
   * Keys (apply's `objectKey`) of desired objects not rendered this run because their owner's
   * inputs did not change since they were last applied (incremental reconcile,
   * controller/incremental.ts): apply counts them as desired and up to date, so it neither
   * applies nor prunes them. Optional; absent = none.
   */
  unchangedKeys?: string[];
}

/**
 * A pause point in a stage run as a generator (controller/reconcile.ts `reconcileStream`):
 * not a value; the consumer may return to the event loop before taking the next one, so a
 * long run of the pure stages is not one synchronous stretch.
 */
export const PAUSE: unique symbol = Symbol('kea.pause');

/** How many published versions (api-version ConfigMaps) are kept per ApiSchema; older ones are dropped. */
export const MAX_PUBLISHED_VERSIONS = 10;

/**
 * Value of the `kea.dev/owner` label for objects owned by `<kind>/<namespace>/<name>`:
 * `<kind>.<namespace>.<name>` (e.g. `ApiSchema.models.iris`). Label values are limited to 63
 * characters (Kubernetes label syntax); a longer value is cut to 52 characters and suffixed
 * with `-` and the first 10 hex digits of the sha256 of the full value, so it stays unique and
 * stable. Shared objects not owned by one resource use a pseudo-owner, e.g.
 * `Gateway.kea-system.kea` (the portal route) or `Namespace.kea-system.models` (the
 * ReferenceGrant letting routes of namespace `models` reach the policy server).
 */
export function ownerLabelValue(kind: string, namespace: string, name: string): string {
  const full = `${kind}.${namespace}.${name}`;
  if (full.length <= 63) return full;
  const digest = sha256Prefix(full, 10);
  return `${full.slice(0, 52).replace(/[^A-Za-z0-9]+$/, '')}-${digest}`;
}
