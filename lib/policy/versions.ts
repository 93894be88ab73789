/**
 * Reading a version-history ConfigMap (`kea.dev/component=api-version`, lib/policy/config.ts):
 * the one set of rules the controller (its published history, controller/graph/versions.ts)
 * and the policy server (the portal's version list, policy-server/snapshot/build.ts) share.
 *
 * The controller writes every field as an annotation ({@link VERSION_ANNOTATIONS}); the
 * fallbacks serve ConfigMaps written by hand or by an older controller:
 *   - ApiSchema: annotation `kea.dev/api-schema` (`<ns>/<name>`), else the `kea.dev/owner`
 *     label `ApiSchema.<ns>.<name>` ({@link versionOwnerId});
 *   - version: annotation `kea.dev/version`, else the label `kea.dev/api-version` (info.version
 *     made label-safe), else the document's `info.version`, else `''`;
 *   - digest: annotation `kea.dev/digest`, else the sha256 (hex) of the `openapi.json` text;
 *   - publishedAt: annotation `kea.dev/published-at`, else the ConfigMap's creationTimestamp,
 *     else `1970-01-01T00:00:00Z`.
 */
import { sha256Hex } from '../hash.js';

/** Annotations of a version-history ConfigMap. */
export const VERSION_ANNOTATIONS = {
  apiSchema: 'kea.dev/api-schema',
  digest: 'kea.dev/digest',
  version: 'kea.dev/version',
  publishedAt: 'kea.dev/published-at',
} as const;

/** Label carrying the (label-safe) info.version on a version-history ConfigMap. */
export const API_VERSION_LABEL = 'kea.dev/api-version';

/** The owner label (`<kind>.<namespace>.<name>`, controller/model.ts `ownerLabelValue`). */
const OWNER_LABEL = 'kea.dev/owner';

/** publishedAt of a version ConfigMap that says nothing about when (RFC 3339). */
export const EPOCH = '1970-01-01T00:00:00Z';

/** The metadata of a version-history ConfigMap that {@link versionFields} reads. */
export interface VersionConfigMapMeta {
  annotations?: Record<string, string>;
  labels?: Record<string, string>;
  /** RFC 3339 text or a Date (as @kubernetes/client-node parses it). */
  creationTimestamp?: string | Date;
}

/** What a version-history ConfigMap says about its version. */
export interface VersionFields {
  /** info.version, exactly (`''` when nothing says). */
  version: string;
  /** sha256 (hex) of the published `openapi.json` text. */
  digest: string;
  /** RFC 3339. */
  publishedAt: string;
}

/**
 * The version, digest and publication time of a version-history ConfigMap, by the rules in the
 * module comment.
 * @param text - returns the `openapi.json` text; called only when an annotation is missing.
 *   The document is parsed only for `info.version`, and a text that is not JSON gives `''`.
 */
export function versionFields(meta: VersionConfigMapMeta, text: () => string): VersionFields {
  const a = meta.annotations ?? {};
  const l = meta.labels ?? {};
  let version = a[VERSION_ANNOTATIONS.version] ?? l[API_VERSION_LABEL];
  if (version === undefined) {
    try {
      const v = (JSON.parse(text()) as { info?: { version?: unknown } } | null)?.info?.version;
      version = typeof v === 'string' ? v : '';
    } catch {
      version = ''; // not JSON: version unknown
    }
  }
  const created = meta.creationTimestamp;
  const createdAt = typeof created === 'string' ? created : created instanceof Date ? created.toISOString() : undefined;
  return {
    version,
    digest: a[VERSION_ANNOTATIONS.digest] ?? sha256Hex(text()),
    publishedAt: a[VERSION_ANNOTATIONS.publishedAt] ?? createdAt ?? EPOCH,
  };
}

/**
 * The ApiSchema (`<namespace>/<name>`) a version-history ConfigMap belongs to, from the
 * ConfigMap alone: annotation `kea.dev/api-schema`, else an owner label
 * `ApiSchema.<namespace>.<name>` that was not shortened (a label value over 63 characters is
 * cut and ends in `-<10 hex digits>`; it cannot be read back, only matched by recomputing it, as
 * the controller does). Undefined when neither tells.
 */
export function versionOwnerId(meta: VersionConfigMapMeta): string | undefined {
  const id = meta.annotations?.[VERSION_ANNOTATIONS.apiSchema];
  if (id !== undefined) return id;
  const owner = meta.labels?.[OWNER_LABEL];
  const m = owner ? /^ApiSchema\.([a-z0-9-]+)\.(.+)$/.exec(owner) : null;
  return m && !/-[0-9a-f]{10}$/.test(owner!) ? `${m[1]}/${m[2]}` : undefined;
}

/**
 * Orders published versions newest first: by publishedAt descending (as instants: RFC 3339
 * texts with and without fractional seconds do not sort as text); ties put `preferDigest`
 * first, then by ConfigMap name (a total order, so the result never depends on input order).
 * @returns a new sorted array.
 */
export function sortNewestFirst<T extends { name: string; digest: string; publishedAt: string }>(entries: readonly T[], preferDigest?: string): T[] {
  return [...entries].sort((x, y) => {
    if (x.publishedAt !== y.publishedAt) {
      const tx = Date.parse(x.publishedAt);
      const ty = Date.parse(y.publishedAt);
      if (!Number.isNaN(tx) && !Number.isNaN(ty) && tx !== ty) return ty - tx;
      if (Number.isNaN(tx) || Number.isNaN(ty)) return x.publishedAt < y.publishedAt ? 1 : -1;
    }
    if (preferDigest && (x.digest === preferDigest) !== (y.digest === preferDigest)) return x.digest === preferDigest ? -1 : 1;
    return x.name < y.name ? -1 : x.name > y.name ? 1 : 0;
  });
}

/**
 * {@link sortNewestFirst}, then one entry per digest (the newest; a duplicate can only come from
 * hand-made ConfigMaps).
 */
export function newestPerDigest<T extends { name: string; digest: string; publishedAt: string }>(entries: readonly T[]): T[] {
  const seen = new Set<string>();
  return sortNewestFirst(entries).filter((e) => (seen.has(e.digest) ? false : (seen.add(e.digest), true)));
}
