/**
 * Per-operation authorization (pure): reads roles, groups and scopes from configurable claim
 * paths and decides `allow | unauthenticated | forbidden`, plus the identity headers the
 * upstream receives.
 */
import type { Access } from '../../lib/api/types.js';
import type { ClaimPaths, Identity } from './types.js';

/** Header names carrying the identity upstream. Strip client-sent copies of every one of these. */
export const IDENTITY_HEADERS = ['x-kea-user', 'x-kea-roles', 'x-kea-groups', 'x-kea-scopes', 'x-kea-auth'] as const;

const hasOwn = Object.prototype.hasOwnProperty;

/**
 * Reads a claim by path. The path is first tried as a literal claim name (so namespaced
 * claims such as `https://example.com/roles` work), then as a dot-separated path
 * (`realm_access.roles`). Only own properties are followed (no prototype lookups).
 * @returns the value, or `undefined` when absent.
 */
export function readClaim(claims: Record<string, unknown>, path: string): unknown {
  if (hasOwn.call(claims, path)) return claims[path];
  if (!path.includes('.')) return undefined;
  let cur: unknown = claims;
  for (const seg of path.split('.')) {
    if (cur === null || typeof cur !== 'object' || Array.isArray(cur) || !hasOwn.call(cur, seg)) return undefined;
    cur = (cur as Record<string, unknown>)[seg];
  }
  return cur;
}

/**
 * Normalises a claim value to a list of strings: arrays keep their string members; a string
 * is split on whitespace when `split` is true (OAuth `scope`, RFC 6749 §3.3), else taken whole.
 */
export function claimStrings(value: unknown, split: boolean): string[] {
  if (Array.isArray(value)) return value.filter((v): v is string => typeof v === 'string');
  if (typeof value === 'string') return split ? value.split(/\s+/).filter(Boolean) : value ? [value] : [];
  return [];
}

/**
 * Decides whether `identity` may call an operation guarded by `access`.
 * - `public`: always `allow` (even with no identity).
 * - `authenticated`: `allow` with any identity, else `unauthenticated`.
 * - `restricted`: no identity → `unauthenticated`. Otherwise `allow` iff (no roles and no
 *   groups listed, or any listed role is in the roles claim, or any listed group is in the
 *   groups claim) AND every listed scope is in the scopes claim. A restricted rule listing
 *   nothing at all is `forbidden` (fail closed).
 * Claim paths default to `roles`, `groups`, `scope`.
 */
export function authorize(identity: Identity | null, access: Access, claims: ClaimPaths = {}): 'allow' | 'unauthenticated' | 'forbidden' {
  if (access.mode === 'public') return 'allow';
  if (!identity) return 'unauthenticated';
  if (access.mode === 'authenticated') return 'allow';
  if (access.mode !== 'restricted') return 'forbidden';
  const roles = access.roles ?? [];
  const groups = access.groups ?? [];
  const scopes = access.scopes ?? [];
  if (roles.length === 0 && groups.length === 0 && scopes.length === 0) return 'forbidden';
  if (roles.length > 0 || groups.length > 0) {
    let ok = false;
    if (roles.length > 0) {
      const have = claimStrings(readClaim(identity.claims, claims.rolesClaim || 'roles'), false);
      ok = roles.some((r) => have.includes(r));
    }
    if (!ok && groups.length > 0) {
      const have = claimStrings(readClaim(identity.claims, claims.groupsClaim || 'groups'), false);
      ok = groups.some((g) => have.includes(g));
    }
    if (!ok) return 'forbidden';
  }
  if (scopes.length > 0) {
    const have = claimStrings(readClaim(identity.claims, claims.scopesClaim || 'scope'), true);
    if (!scopes.every((s) => have.includes(s))) return 'forbidden';
  }
  return 'allow';
}

/** Percent-encodes anything outside printable ASCII (and `%`) so a header value is always legal. */
function headerSafe(v: string): string {
  return /^[\x20-\x24\x26-\x7e]*$/.test(v) ? v : v.replace(/[^\x20-\x24\x26-\x7e]/gu, (c) => encodeURIComponent(c));
}

const headerMemo = new WeakMap<Identity, { key: string; headers: Record<string, string> }>();

/**
 * Identity headers for the upstream: `x-kea-user` (subject), `x-kea-roles` and `x-kea-groups`
 * (comma-separated), `x-kea-scopes` (space-separated), `x-kea-auth` (`session` | `bearer`).
 * Values are percent-encoded outside printable ASCII. Memoised per identity object, so cached
 * bearer identities cost a map lookup. Empty object for anonymous callers.
 */
export function identityHeaders(identity: Identity | null, paths: ClaimPaths = {}): Record<string, string> {
  if (!identity) return {};
  const key = `${paths.rolesClaim ?? ''}\n${paths.groupsClaim ?? ''}\n${paths.scopesClaim ?? ''}`;
  const memo = headerMemo.get(identity);
  if (memo && memo.key === key) return memo.headers;
  const roles = claimStrings(readClaim(identity.claims, paths.rolesClaim || 'roles'), false);
  const groups = claimStrings(readClaim(identity.claims, paths.groupsClaim || 'groups'), false);
  const scopes = claimStrings(readClaim(identity.claims, paths.scopesClaim || 'scope'), true);
  const headers: Record<string, string> = {
    'x-kea-user': headerSafe(identity.subject),
    'x-kea-roles': roles.map(headerSafe).join(','),
    'x-kea-groups': groups.map(headerSafe).join(','),
    'x-kea-scopes': scopes.map(headerSafe).join(' '),
    'x-kea-auth': identity.via,
  };
  headerMemo.set(identity, { key, headers });
  return headers;
}
