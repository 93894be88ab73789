/**
 * Identity and order of the Kubernetes objects KEA renders and applies, shared by the
 * controller's render stage (deterministic output order), apply stage (write order, caches) and
 * incremental reconcile (which owner rendered which object).
 */

/** The parts of a Kubernetes object that identify it (apiVersion, kind, metadata.namespace/name). */
export interface ObjectRef {
  apiVersion?: string;
  kind?: string;
  metadata?: { namespace?: string; name?: string };
}

/**
 * `<group>/<kind>/<namespace>/<name>`, version-free (`core` for the core group, `''` for a
 * cluster-scoped object's namespace): the identity of an object across KEA's caches, so the
 * same HTTPRoute read as `gateway.networking.k8s.io/v1beta1` and written as `.../v1` is one
 * object (the API server serves every version of a kind from one storage).
 */
export function objectKey(o: ObjectRef): string {
  const av = o.apiVersion ?? 'v1';
  const group = av.includes('/') ? av.slice(0, av.indexOf('/')) : 'core';
  return `${group}/${o.kind}/${o.metadata?.namespace ?? ''}/${o.metadata?.name}`;
}

/**
 * Kinds in dependency order: what a route or policy refers to (ConfigMaps with the policy
 * configuration, Secrets, Services, Deployments, ReferenceGrants) comes before it. Render sorts
 * its output in this order and apply writes in this order (so a route never points at a
 * backend or grant that is not there yet).
 */
export const KIND_ORDER: readonly string[] = [
  'ConfigMap',
  'Secret',
  'Service',
  'Deployment',
  'ReferenceGrant',
  'HTTPRoute',
  'ClientSettingsPolicy',
  'UpstreamSettingsPolicy',
];

/**
 * Position of a kind in {@link KIND_ORDER} (0-based); a kind not listed ranks after all listed
 * ones ({@link KIND_ORDER}.length).
 */
export function kindRank(kind: string | undefined): number {
  const i = KIND_ORDER.indexOf(kind ?? '');
  return i < 0 ? KIND_ORDER.length : i;
}

/**
 * Total order of objects for deterministic output: by {@link kindRank}, then by
 * `<namespace>/<name>` (UTF-16 code unit order).
 * @returns negative, zero or positive, as `Array.prototype.sort` expects.
 */
export function compareObjects(a: ObjectRef, b: ObjectRef): number {
  const ka = kindRank(a.kind);
  const kb = kindRank(b.kind);
  if (ka !== kb) return ka - kb;
  const na = `${a.metadata?.namespace ?? ''}/${a.metadata?.name ?? ''}`;
  const nb = `${b.metadata?.namespace ?? ''}/${b.metadata?.name ?? ''}`;
  return na < nb ? -1 : na > nb ? 1 : 0;
}
