/**
 * gateway.networking.k8s.io/v1beta1 ReferenceGrants (GEP-709).
 *
 * Takes in: an owner's internal host and backends, or a namespace whose public routes point at
 * the policy server; the {@link ControllerConfig}.
 * Gives out:
 *   - beside an owner's internal route ({@link internalGrants}): in each backend namespace other
 *     than the system namespace, a grant named like the route ({@link internalRouteName}) letting
 *     HTTPRoutes of the system namespace reach exactly those Services (with an ownerReference
 *     when it sits in the owner's namespace), namespaces sorted;
 *   - `kea-policy-from-<ns>` in the system namespace ({@link policyGrant}): HTTPRoutes of `ns`
 *     → the policy server Service.
 * Pure.
 */
import type { IReferenceGrant } from '@kubernetes-models/gateway-api/gateway.networking.k8s.io/v1beta1';
import { internalRouteName, policyGrantName } from '../graph/index.js';
import type { BackendIR, OwnerRef } from '../ir/index.js';
import type { ControllerConfig } from '../model.js';
import { metadata } from './metadata.js';

/** The ReferenceGrants of an owner's internal route (see the module comment). */
export function internalGrants(owner: OwnerRef, host: string, backends: readonly BackendIR[], config: ControllerConfig): IReferenceGrant[] {
  const sys = config.systemNamespace;
  const name = internalRouteName(host);
  const byNs = new Map<string, Set<string>>();
  for (const b of backends) if (b.namespace !== sys) byNs.set(b.namespace, (byNs.get(b.namespace) ?? new Set()).add(b.name));
  return [...byNs.keys()].sort().map((ns) => ({
    apiVersion: 'gateway.networking.k8s.io/v1beta1',
    kind: 'ReferenceGrant',
    metadata: metadata(name, ns, owner),
    spec: {
      from: [{ group: 'gateway.networking.k8s.io', kind: 'HTTPRoute', namespace: sys }],
      to: [...byNs.get(ns)!].sort().map((svc) => ({ group: '', kind: 'Service', name: svc })),
    },
  }));
}

/** The ReferenceGrant letting HTTPRoutes of namespace `ns` reach the policy server. */
export function policyGrant(ns: string, config: ControllerConfig): IReferenceGrant {
  return {
    apiVersion: 'gateway.networking.k8s.io/v1beta1',
    kind: 'ReferenceGrant',
    metadata: metadata(policyGrantName(ns), config.systemNamespace, { kind: 'Namespace', namespace: config.systemNamespace, name: ns }),
    spec: {
      from: [{ group: 'gateway.networking.k8s.io', kind: 'HTTPRoute', namespace: ns }],
      to: [{ group: '', kind: 'Service', name: config.policyServer.name }],
    },
  };
}
