/**
 * Published version history of an ApiSchema, read from the snapshot's version-history
 * ConfigMaps (`kea.dev/component=api-version`, lib/policy/config.ts).
 *
 * Takes in: the snapshot's `publishedVersions` ConfigMaps and one ApiSchema's namespace/name.
 * Gives out: that ApiSchema's {@link PublishedEntry}s, newest first. A ConfigMap belongs to the
 * ApiSchema named by its annotation `kea.dev/api-schema` (`<ns>/<name>`), else by its
 * `kea.dev/owner` label. Version from annotation `kea.dev/version`, else label
 * `kea.dev/api-version`, else the document's `info.version`; digest from annotation
 * `kea.dev/digest`, else the sha256 (hex) of the `openapi.json` text; publishedAt from
 * annotation `kea.dev/published-at`, else creationTimestamp. ConfigMaps being deleted or
 * without an `openapi.json` key are ignored. Pure.
 */
import { createHash } from 'node:crypto';
import type { KubernetesObject } from '@kubernetes/client-node';
import { LABELS } from '../../lib/api/types.js';
import { OPENAPI_KEY } from '../../lib/policy/config.js';
import { ownerLabelValue } from '../model.js';

/** Annotations of a version-history ConfigMap. */
export const VERSION_ANNOTATIONS = {
  apiSchema: 'kea.dev/api-schema',
  digest: 'kea.dev/digest',
  version: 'kea.dev/version',
  publishedAt: 'kea.dev/published-at',
} as const;
/** Label carrying the (label-safe) info.version on a version-history ConfigMap. */
export const API_VERSION_LABEL = 'kea.dev/api-version';

/** One published version of an ApiSchema's OpenAPI document. */
export interface PublishedEntry {
  /** ConfigMap name. */
  name: string;
  /** info.version. */
  version: string;
  /** sha256 (hex) of `openapi` (the exact published text). */
  digest: string;
  /** RFC 3339. */
  publishedAt: string;
  /** The published `openapi.json` text, verbatim. */
  openapi: string;
}

/** Hex sha256 of a string. */
function sha256(s: string): string {
  return createHash('sha256').update(s).digest('hex');
}

/**
 * Orders entries newest first: by publishedAt descending; ties put `preferDigest` first, then
 * by ConfigMap name (a total order, so the result never depends on input order).
 */
export function sortNewestFirst(entries: PublishedEntry[], preferDigest?: string): PublishedEntry[] {
  return [...entries].sort((x, y) => {
    if (x.publishedAt !== y.publishedAt) {
      // RFC 3339 strings with and without fractional seconds do not sort as text ("…40Z" > "…40.5Z").
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
 * Groups version-history ConfigMaps by the ApiSchema they belong to: key `id:<ns>/<name>` (from
 * the `kea.dev/api-schema` annotation) or `owner:<label value>`. One pass over the list, so
 * looking up every ApiSchema's history stays linear.
 */
export function indexVersionConfigMaps(configMaps: KubernetesObject[]): Map<string, KubernetesObject[]> {
  const idx = new Map<string, KubernetesObject[]>();
  for (const cm of configMaps) {
    const md = cm.metadata ?? {};
    const id = md.annotations?.[VERSION_ANNOTATIONS.apiSchema];
    const k = id !== undefined ? `id:${id}` : md.labels?.[LABELS.owner] !== undefined ? `owner:${md.labels[LABELS.owner]}` : undefined;
    if (!k) continue;
    const list = idx.get(k);
    if (list) list.push(cm);
    else idx.set(k, [cm]);
  }
  return idx;
}

/**
 * The published versions of ApiSchema `namespace/name`, newest first, one per digest.
 * @param configMaps the snapshot's version ConfigMaps, or their {@link indexVersionConfigMaps}.
 */
export function publishedVersionsOf(configMaps: KubernetesObject[] | Map<string, KubernetesObject[]>, namespace: string, name: string): PublishedEntry[] {
  const idx = Array.isArray(configMaps) ? indexVersionConfigMaps(configMaps) : configMaps;
  const mineOnly = [...(idx.get(`id:${namespace}/${name}`) ?? []), ...(idx.get(`owner:${ownerLabelValue('ApiSchema', namespace, name)}`) ?? [])];
  const out: PublishedEntry[] = [];
  for (const cm of mineOnly) {
    const md = cm.metadata ?? {};
    if (md.deletionTimestamp) continue;
    const a = md.annotations ?? {};
    const l = md.labels ?? {};
    const text = (cm as { data?: Record<string, string> }).data?.[OPENAPI_KEY];
    if (typeof text !== 'string') continue;
    let docVersion: string | undefined;
    if (a[VERSION_ANNOTATIONS.version] === undefined && l[API_VERSION_LABEL] === undefined) {
      try {
        const v = (JSON.parse(text) as { info?: { version?: unknown } }).info?.version;
        if (typeof v === 'string') docVersion = v;
      } catch {
        /* not JSON: version unknown */
      }
    }
    const created = md.creationTimestamp as unknown;
    const createdAt = typeof created === 'string' ? created : created instanceof Date ? created.toISOString() : undefined;
    out.push({
      name: md.name ?? '',
      version: a[VERSION_ANNOTATIONS.version] ?? l[API_VERSION_LABEL] ?? docVersion ?? '',
      digest: a[VERSION_ANNOTATIONS.digest] ?? sha256(text),
      publishedAt: a[VERSION_ANNOTATIONS.publishedAt] ?? createdAt ?? '1970-01-01T00:00:00Z',
      openapi: text,
    });
  }
  // One entry per digest: the newest (a duplicate can only come from hand-made ConfigMaps).
  const seen = new Set<string>();
  return sortNewestFirst(out).filter((e) => (seen.has(e.digest) ? false : (seen.add(e.digest), true)));
}
