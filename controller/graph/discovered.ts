/**
 * Operations imported from the OpenAPI document an ApiSchema's target serves
 * (`spec.source.openapi`, fetched by controller/discover).
 *
 * Takes in: an ApiSchema and the {@link DiscoveredDoc} for it (if any).
 * Gives out: the *effective* ApiSchema (a copy whose `spec.operations` are the inline
 * operations followed by the imported ones, and whose `spec.components.schemas` add the
 * imported components) and an {@link ImportInfo} saying what happened. Inline operations win:
 * an imported operation with the operationId, or the method and path template, of an inline
 * one is left out (listed in `shadowed`); inline components win by name. The document is
 * converted by lib/import (`importOpenApi`: 3.1 → 3.0, pydantic idioms); whatever it cannot
 * route is listed in `unroutable`, never dropped silently.
 *
 * Access: the served document belongs to the target, not to the ApiSchema's author, so unless
 * `spec.source.openapi.trustAccess` is true an imported operation's `x-kea-access` may only
 * tighten `spec.defaults.access` (else `authenticated`), never loosen it ({@link tightenAccess}),
 * and its `x-kea-cache` scope `shared` on an operation that is not public becomes `identity`;
 * what was not applied is listed in `unroutable`. Discovery refused for the ApiSchema (a path
 * that is not a plain path on the target, or a target in another namespace without a
 * ReferenceGrant: graph's `discoveryRefusal`) imports nothing, whatever was fetched. Pure.
 */
import type { Access, ApiSchema, Operation } from '../../lib/api/types.js';
import { importOpenApi } from '../../lib/import/index.js';
import { POLICY_DEFAULTS } from '../../lib/policy/config.js';
import type { DiscoveredDoc } from '../model.js';

/** Outcome of importing an ApiSchema's served OpenAPI document. */
export interface ImportInfo {
  /**
   * `pending`: nothing fetched yet; `failed`: every fetch so far failed; `invalid`: the fetched
   * document cannot be imported; `imported`: imported from the latest fetch; `stale`: the
   * latest fetch failed, the document of an earlier fetch is used; `refused`: the controller
   * may not fetch it (`error` says why), nothing is imported.
   */
  state: 'pending' | 'failed' | 'invalid' | 'imported' | 'stale' | 'refused';
  /** Path of the document on the target (default `/openapi.json`). */
  path: string;
  /** sha256 (hex) of the document used (or rejected). */
  digest?: string;
  /** The fetch error (failed, stale), import error (invalid) or why discovery is refused (refused). */
  error?: string;
  /** Operations taken from the document. */
  imported: number;
  /** operationIds of imported operations replaced by inline ones. */
  shadowed: string[];
  /** What the document holds that is not routed (lib/import `unroutable`). */
  unroutable: string[];
}

const routeKey = (o: Operation): string => `${o.method} ${o.path.replace(/\{[^}]+\}/g, '{}')}`;

/** Access modes from loosest to tightest. */
const ACCESS_RANK: Record<Access['mode'], number> = { public: 0, authenticated: 1, restricted: 2 };

const describeAccess = (a: Access): string =>
  a.mode !== 'restricted'
    ? a.mode
    : `restricted (${[
        ['roles', a.roles],
        ['groups', a.groups],
        ['scopes', a.scopes],
      ]
        .filter(([, v]) => v && v.length)
        .map(([k, v]) => `${k} ${(v as string[]).join(', ')}`)
        .join('; ')})`;

/**
 * Access that requires at least what `base` requires and, where it can be expressed, what
 * `wanted` requires too (authorization as in policy-server/auth/authorize.ts: `restricted`
 * allows a caller with any listed role or group, and every listed scope).
 *   - `wanted` looser than `base` (public < authenticated < restricted): `base`, noted;
 *   - `base` not restricted: `wanted` (as tight or tighter);
 *   - both restricted: scopes are united (all of both required); roles and groups, where both
 *     list some, are intersected per kind (a caller must hold one the ApiSchema names *and*
 *     the document names, which the intersection approximates from the tight side); when
 *     that intersection is empty `base`'s roles and groups are kept and it is noted, since an
 *     empty list would drop the role check rather than refuse everyone.
 * Returns the access and, when `wanted` was not (fully) applied, why.
 */
export function tightenAccess(base: Access, raw: Access): { access: Access; note?: string } {
  // The document is untrusted JSON: keep only string lists (a string `roles` would otherwise
  // reach the policy server's authorizer as a string).
  const list = (v: unknown): string[] => (Array.isArray(v) ? [...new Set(v.filter((x): x is string => typeof x === 'string'))] : []);
  const rank = Object.hasOwn(ACCESS_RANK, raw.mode) ? ACCESS_RANK[raw.mode] : undefined;
  if (rank === undefined) return { access: base, note: `x-kea-access mode ${JSON.stringify(raw.mode)} is unknown; ${describeAccess(base)} applies` };
  const wanted: Access =
    raw.mode !== 'restricted'
      ? { mode: raw.mode }
      : {
          mode: 'restricted',
          ...(list(raw.roles).length ? { roles: list(raw.roles) } : {}),
          ...(list(raw.groups).length ? { groups: list(raw.groups) } : {}),
          ...(list(raw.scopes).length ? { scopes: list(raw.scopes) } : {}),
        };
  if (rank < ACCESS_RANK[base.mode])
    return { access: base, note: `x-kea-access ${describeAccess(wanted)} would loosen the ApiSchema's ${describeAccess(base)}; ignored` };
  if (base.mode !== 'restricted') return { access: wanted };
  const scopes = [...new Set([...list(base.scopes), ...list(wanted.scopes)])];
  const basePrincipals = list(base.roles).length + list(base.groups).length > 0;
  const wantedPrincipals = list(wanted.roles).length + list(wanted.groups).length > 0;
  let roles = list(base.roles);
  let groups = list(base.groups);
  let note: string | undefined;
  if (!basePrincipals) {
    roles = list(wanted.roles);
    groups = list(wanted.groups);
  } else if (wantedPrincipals) {
    const r = roles.filter((x) => list(wanted.roles).includes(x));
    const g = groups.filter((x) => list(wanted.groups).includes(x));
    if (r.length + g.length > 0) {
      roles = r;
      groups = g;
    } else {
      note = `x-kea-access roles/groups of ${describeAccess(wanted)} share none with the ApiSchema's ${describeAccess(base)}; the ApiSchema's roles and groups apply`;
    }
  }
  const access: Access = { mode: 'restricted', ...(roles.length ? { roles } : {}), ...(groups.length ? { groups } : {}), ...(scopes.length ? { scopes } : {}) };
  return note ? { access, note } : { access };
}

/**
 * The effective ApiSchema with imported operations, and what the import did. ApiSchemas
 * without `spec.source.openapi` are returned as they are, with no info.
 * @param refusal why the controller may not fetch this ApiSchema's document (graph
 *   `discoveryRefusal`); when set, `found` is ignored and nothing is imported.
 */
export function withDiscovered(a: ApiSchema, found: DiscoveredDoc | undefined, refusal?: string): { resource: ApiSchema; info?: ImportInfo } {
  const src = a.spec.source?.openapi;
  if (!src) return { resource: a };
  const path = src.path ?? '/openapi.json';
  const base = { path, imported: 0, shadowed: [], unroutable: [] };
  if (refusal) return { resource: a, info: { ...base, state: 'refused', error: refusal } };
  if (!found || found.doc === undefined) {
    return { resource: a, info: { ...base, state: found?.error ? 'failed' : 'pending', ...(found?.error ? { error: found.error } : {}) } };
  }
  const digest = found.digest;
  let result: ReturnType<typeof importOpenApi>;
  try {
    result = importOpenApi(found.doc, { name: a.metadata.name, namespace: a.metadata.namespace, basePath: a.spec.basePath, target: a.spec.target });
  } catch (e) {
    return { resource: a, info: { ...base, state: 'invalid', digest, error: (e as Error).message } };
  }
  const inline = a.spec.operations ?? [];
  const ids = new Set(inline.map((o) => o.operationId));
  const routes = new Set(inline.map(routeKey));
  const shadowed: string[] = [];
  const accessNotes: string[] = [];
  const baseAccess: Access = a.spec.defaults?.access ?? POLICY_DEFAULTS.access;
  const imported = (result.schema.spec.operations ?? [])
    .filter((o) => {
      if (ids.has(o.operationId) || routes.has(routeKey(o))) {
        shadowed.push(o.operationId);
        return false;
      }
      return true;
    })
    .map((o) => {
      if (src.trustAccess) return o;
      const why = ' (spec.source.openapi.trustAccess is not set)';
      let out = o;
      if (o.access) {
        const { access, note } = tightenAccess(baseAccess, o.access);
        if (note) accessNotes.push(`${o.method} ${o.path}: ${note}${why}`);
        out = { ...out, access };
      }
      // A shared cache entry answers every caller with the first caller's response: for an
      // operation that is not public that, too, is the document loosening access.
      const mode = (out.access ?? baseAccess).mode;
      if (out.cache?.scope === 'shared' && mode !== 'public') {
        accessNotes.push(
          `${o.method} ${o.path}: x-kea-cache scope shared on an operation with access ${mode} would answer one caller with another's response; scope identity applies${why}`,
        );
        out = { ...out, cache: { ...out.cache, scope: 'identity' } };
      }
      return out;
    });
  const schemas = { ...(result.schema.spec.components?.schemas ?? {}), ...(a.spec.components?.schemas ?? {}) };
  const resource: ApiSchema = {
    ...a,
    spec: {
      ...a.spec,
      operations: [...inline, ...imported],
      ...(Object.keys(schemas).length ? { components: { ...(a.spec.components ?? {}), schemas } } : {}),
    },
  };
  return {
    resource,
    info: {
      state: found.error ? 'stale' : 'imported',
      path,
      ...(digest ? { digest } : {}),
      ...(found.error ? { error: found.error } : {}),
      imported: imported.length,
      shadowed,
      unroutable: [...result.unroutable, ...accessNotes],
    },
  };
}
