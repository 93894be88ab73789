/**
 * The gateway paths KEA keeps for its own portal, served by the policy server itself: the one
 * list behind the controller's portal HTTPRoute and basePath check (controller/graph,
 * controller/render), the policy server's routing (policy-server/server.ts: never the data path)
 * and, as a copy that cannot import it, the CRD's CEL rule on `spec.basePath`
 * (manifests/crds/kea.dev_apischemas.yaml; lib/policy/reserved-paths.test.ts compares the two).
 */

/** Path prefixes (Gateway API `PathPrefix` matches: the path itself and everything under `<prefix>/`). */
export const PORTAL_PATH_PREFIXES = ['/docs', '/openapi', '/auth', '/services', '/router', '/logs', '/methods'] as const;

/** Exact paths (Gateway API `Exact` matches). */
export const PORTAL_EXACT_PATHS = ['/openapi.json'] as const;

/**
 * Prefixes the policy server answers itself besides the portal's but the gateway does not route
 * to it: health (`/healthz` on the data port) and the admin port's `/readyz` and `/metrics`.
 */
export const POLICY_SERVER_OWN_PREFIXES = ['/healthz', '/readyz', '/metrics'] as const;

/** Every reserved path ({@link PORTAL_PATH_PREFIXES}, then {@link PORTAL_EXACT_PATHS}): what an ApiSchema basePath must keep clear of. */
export const RESERVED_BASE_PATHS: readonly string[] = [...PORTAL_PATH_PREFIXES, ...PORTAL_EXACT_PATHS];

/**
 * The reserved path an ApiSchema `spec.basePath` collides with: one of
 * {@link RESERVED_BASE_PATHS} that it equals or lies under (`<reserved>/...`), else undefined.
 * The same rule as the CRD's CEL rule
 * `![...].exists(p, self == p || self.startsWith(p + '/'))`.
 */
export function reservedBasePath(basePath: string): string | undefined {
  return RESERVED_BASE_PATHS.find((p) => basePath === p || basePath.startsWith(`${p}/`));
}
