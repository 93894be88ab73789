/**
 * How KEA marks what it owns, decided once for every object it renders (render/metadata.ts)
 * and for the IR's own comparisons with live objects (ir/history.ts: whether a kept version
 * ConfigMap still carries what it should).
 *
 * Takes in: an owner (kind, namespace, name, uid) and the namespace an object goes to.
 * Gives out: the owner labels (`kea.dev/managed-by=kea`, `kea.dev/owner=<Kind>.<ns>.<name>`,
 * `kea.dev/owner-kind`; model.ts `ownerLabelValue`) and the ownerReference, which Kubernetes
 * allows only within one namespace (objects elsewhere carry the labels only). Pure.
 */
import type { V1OwnerReference } from '@kubernetes/client-node';
import { API_VERSION, LABELS, MANAGED_BY_VALUE } from '../../lib/api/types.js';
import { ownerLabelValue } from '../model.js';

/** The resource (or pseudo-owner, e.g. the Gateway for the portal route) an object belongs to. */
export interface OwnerRef {
  kind: string;
  namespace: string;
  name: string;
  /** Absent for pseudo-owners and resources not persisted yet: no ownerReference then. */
  uid?: string;
  /** Default: KEA's CRD API version (`kea.dev/v1alpha1`). */
  apiVersion?: string;
}

/** The three owner labels of every object KEA renders. */
export function ownerLabels(owner: OwnerRef): Record<string, string> {
  return {
    [LABELS.managedBy]: MANAGED_BY_VALUE,
    [LABELS.owner]: ownerLabelValue(owner.kind, owner.namespace, owner.name),
    [LABELS.ownerKind]: owner.kind,
  };
}

/**
 * The ownerReference (controller, blockOwnerDeletion) of an object of `owner` in `namespace`,
 * or undefined when the owner has no uid or lives in another namespace (cross-namespace
 * ownerReferences are not allowed by Kubernetes).
 */
export function ownerReference(owner: OwnerRef, namespace: string): V1OwnerReference | undefined {
  if (!owner.uid || owner.namespace !== namespace) return undefined;
  return { apiVersion: owner.apiVersion ?? API_VERSION, kind: owner.kind, name: owner.name, uid: owner.uid, controller: true, blockOwnerDeletion: true };
}
