/**
 * Shared shapes of the controller pipeline stages:
 *   watch → batch → graph → IR → render → apply.
 * watch/batch produce a {@link ClusterSnapshot}; graph+IR+render are pure functions of
 * (snapshot, config) and produce a {@link RenderOutput}; apply makes the cluster match it.
 */
import type { KubernetesObject } from '@kubernetes/client-node';
import type { ApiSchema, ApiSchemaStatus, MLService, MLServiceStatus } from '../lib/api/types.js';

/** Static controller configuration (flags/env). */
export interface ControllerConfig {
  /** Namespace of KEA's own components (policy server, api-config ConfigMaps). */
  systemNamespace: string;
  /** The Gateway every emitted HTTPRoute attaches to (parentRef). */
  gateway: { namespace: string; name: string; publicListener: string; internalListener: string };
  /** The policy server's Service (backendRef of public routes). */
  policyServer: { name: string; port: number };
  /** Shared secret the internal HTTPRoutes require in header x-kea-internal-token. */
  internalToken: string;
  /** Public base URL of the gateway, for docs/openapi URLs and curl examples. */
  gatewayUrl: string;
  /** Suffix of internal hostnames, e.g. `kea.internal` → `iris.models.kea.internal`. */
  internalDomain: string;
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
}
