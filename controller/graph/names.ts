/**
 * Stable names of everything the controller emits, shared by graph (grant checks), IR and
 * render. A name depends only on the owning resource's namespace/name (and revision), never
 * on list order, so re-rendering the same input yields the same objects.
 */
import { sha256Prefix } from '../../lib/hash.js';
import type { ApiSchema } from '../../lib/api/types.js';
import type { ControllerConfig } from '../model.js';

/** `<namespace>/<name>`. */
export function key(namespace: string, name: string): string {
  return `${namespace}/${name}`;
}

/** Deployment and Service of one MLService revision: `<mls>-<revision>` (≤ 63 chars by CRD rule). */
export function revisionObjectName(mlService: string, revision: string): string {
  return `${mlService}-${revision}`;
}

/**
 * Name of an internal HTTPRoute (in the system namespace, where tenants cannot read it) and of
 * the ReferenceGrant beside its backends (in their namespace): the internal hostname
 * (`<mls>.<ns>.<internalDomain>` or `<schema>.<ns>.api.<internalDomain>`, see
 * {@link mlServiceHost}, {@link serviceTargetHost}) with its dots turned into `-`, plus the first
 * 8 hex digits of the hostname's SHA-256, e.g. `iris-default-kea-internal-1a2b3c4d`. One per
 * owner; the hash keeps names apart that the `.` → `-` mapping would merge (`a-b.c`, `a.b-c`) and
 * across namespaces (a plain `<ns>-<name>` would merge `team-x/y` and `team/x-y`).
 * No dots: NGF 1.6.2 names the nginx variable of a weighted rule after the route and replaces
 * only `-` (`$group_<ns>__<route>_rule<n>`), so a dotted route name makes nginx refuse the whole
 * configuration (`unknown "group_kea_system__iris" variable`). Trimmed to 253 characters (RFC
 * 1123 subdomain). docs/adr/0009-internal-routes.md.
 */
export function internalRouteName(host: string): string {
  const suffix = `-${sha256Prefix(host, 8)}`;
  const base = host
    .replace(/\./g, '-')
    .slice(0, 253 - suffix.length)
    .replace(/-+$/, '');
  return base + suffix;
}

/**
 * Public HTTPRoute(s) of an ApiSchema (in its namespace). Gateway API limits a route to 16
 * rules, so operations are split in chunks: chunk 0 is `kea-api-<name>`, chunk i ≥ 1 is
 * `kea-api-<name>-<i+1>`.
 */
export function publicRouteName(apiSchema: string, chunk = 0): string {
  return chunk === 0 ? `kea-api-${apiSchema}` : `kea-api-${apiSchema}-${chunk + 1}`;
}

/** ReferenceGrant in the system namespace letting HTTPRoutes of `fromNamespace` reach the policy server. */
export function policyGrantName(fromNamespace: string): string {
  return `kea-policy-from-${fromNamespace}`;
}

/** Gateway-level HTTPRoute (in the system namespace) for /docs, /openapi, /auth, ... */
export const PORTAL_ROUTE_NAME = 'kea-portal';

/** Internal hostname of an MLService: `<mls>.<ns>.<internalDomain>`. */
export function mlServiceHost(config: Pick<ControllerConfig, 'internalDomain'>, namespace: string, name: string): string {
  return `${name}.${namespace}.${config.internalDomain}`;
}

/**
 * Internal hostname of an ApiSchema fronting a hand-written Service:
 * `<schema>.<ns>.api.<internalDomain>` (one label more than MLService hosts, so the two
 * never collide).
 */
export function serviceTargetHost(config: Pick<ControllerConfig, 'internalDomain'>, namespace: string, name: string): string {
  return `${name}.${namespace}.api.${config.internalDomain}`;
}

/**
 * The internal hostname that reaches an ApiSchema's upstream through the gateway's internal
 * listener: the MLService host (`<mls>.<ns>.<internalDomain>`) for an MLService target, else
 * {@link serviceTargetHost}. The one definition shared by IR (PolicyService `upstream.host`,
 * internal routes) and discovery (Host header of OpenAPI document fetches).
 */
export function apiSchemaHost(config: Pick<ControllerConfig, 'internalDomain'>, schema: ApiSchema): string {
  const ns = schema.metadata.namespace ?? 'default';
  const m = schema.spec.target?.mlService;
  if (m) return mlServiceHost(config, m.namespace ?? ns, m.name);
  return serviceTargetHost(config, ns, schema.metadata.name);
}
