/**
 * Metadata and references shared by every object render writes.
 *
 * Takes in: an object's name and namespace, its owner (ir/ownership.ts {@link OwnerRef}),
 * extra labels and annotations; IR backends; the {@link ControllerConfig} (Gateway, policy
 * server Service).
 * Gives out: `metadata` with KEA's owner labels and, in the owner's namespace, its
 * ownerReference (both decided by ir/ownership.ts); Gateway parentRefs; backendRefs with the
 * Gateway API defaults spelled out. Pure.
 */
import type { V1ObjectMeta } from '@kubernetes/client-node';
import { type ApiSchemaIR, type BackendIR, type MLServiceIR, type OwnerRef, ownerLabels, ownerReference } from '../ir/index.js';
import type { ControllerConfig } from '../model.js';

/** `metadata` of an object KEA renders: owner labels plus `extraLabels`, `annotations` if any, the ownerReference if allowed. */
export function metadata(name: string, namespace: string, owner: OwnerRef, extraLabels: Record<string, string> = {}, annotations?: Record<string, string>) {
  const labels: Record<string, string> = { ...ownerLabels(owner), ...extraLabels };
  const ref = ownerReference(owner, namespace);
  return { name, namespace, labels, ...(annotations ? { annotations } : {}), ...(ref ? { ownerReferences: [ref] } : {}) } satisfies V1ObjectMeta;
}

/** The owner of an MLService's objects. */
export const mlsOwner = (m: MLServiceIR): OwnerRef => ({ kind: 'MLService', namespace: m.namespace, name: m.name, uid: m.uid });
/** The owner of an ApiSchema's objects. */
export const apiOwner = (a: ApiSchemaIR): OwnerRef => ({ kind: 'ApiSchema', namespace: a.namespace, name: a.name, uid: a.uid });

/** A parentRef to KEA's Gateway, on its public or internal listener. */
export function parentRef(config: ControllerConfig, section: 'public' | 'internal') {
  return {
    group: 'gateway.networking.k8s.io',
    kind: 'Gateway',
    namespace: config.gateway.namespace,
    name: config.gateway.name,
    sectionName: section === 'public' ? config.gateway.publicListener : config.gateway.internalListener,
  };
}

/** A backendRef with Gateway API defaults spelled out (so a live object compares equal); namespace only across namespaces. */
export function backendRef(b: BackendIR, routeNamespace: string) {
  return { group: '', kind: 'Service', name: b.name, ...(b.namespace !== routeNamespace ? { namespace: b.namespace } : {}), port: b.port, weight: b.weight };
}

/** The policy server Service as a backend. */
export function policyBackend(config: ControllerConfig): BackendIR {
  return { namespace: config.systemNamespace, name: config.policyServer.name, port: config.policyServer.port, weight: 1 };
}
