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
 *
 * Memory: the watch stage caches these ConfigMaps with their `openapi.json` deflated
 * ({@link packVersionConfigMap}: ~10.5 KB of text → ~1.5 KB); an entry's text is inflated only
 * when asked for ({@link PublishedEntry.text}), i.e. for a diff not cached yet or a ConfigMap
 * written by hand (no digest annotation).
 */
import { createHash } from 'node:crypto';
import { deflateRawSync, inflateRawSync } from 'node:zlib';
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
  /** The published `openapi.json` text, verbatim (inflated or copied on each call). */
  text: () => string;
  /**
   * The live ConfigMap's labels, annotations and owner reference uids (absent for an entry
   * not published yet): render re-applies a kept version only when these differ from what it
   * would write.
   */
  live?: { labels: Record<string, string>; annotations: Record<string, string>; ownerUids: string[] };
}

/** Where {@link packVersionConfigMap} keeps the deflated `openapi.json` (not a Kubernetes field). */
export const PACKED_OPENAPI: unique symbol = Symbol('kea.packedOpenapi');

/**
 * Replaces a version-history ConfigMap's `openapi.json` text by its raw-deflated UTF-8 bytes
 * (under {@link PACKED_OPENAPI}), in place; other keys stay. For the watch stage's cache.
 */
export function packVersionConfigMap<T extends KubernetesObject>(cm: T): T {
  const data = (cm as { data?: Record<string, string> }).data;
  const text = data?.[OPENAPI_KEY];
  if (data && typeof text === 'string') {
    // An exact-size copy: zlib's result is a view of its 64 KB output chunk, and a pooled
    // copy (Buffer.from) would pin a whole 64 KB pool slab per cached ConfigMap.
    const deflated = deflateRawSync(Buffer.from(text, 'utf8'), { chunkSize: 16 * 1024 });
    const packed = Buffer.allocUnsafeSlow(deflated.length);
    deflated.copy(packed);
    (cm as unknown as Record<symbol, Buffer>)[PACKED_OPENAPI] = packed;
    delete data[OPENAPI_KEY];
  }
  return cm;
}

/** A version ConfigMap's `openapi.json` as a loader (packed or plain), or undefined when it has none. */
function openapiLoader(cm: KubernetesObject): (() => string) | undefined {
  const packed = (cm as unknown as Record<symbol, Buffer | undefined>)[PACKED_OPENAPI];
  if (packed) return () => inflateRawSync(packed, { chunkSize: 32 * 1024 }).toString('utf8');
  const text = (cm as { data?: Record<string, string> }).data?.[OPENAPI_KEY];
  return typeof text === 'string' ? () => text : undefined;
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
    const load = openapiLoader(cm);
    if (!load) continue;
    let docVersion: string | undefined;
    if (a[VERSION_ANNOTATIONS.version] === undefined && l[API_VERSION_LABEL] === undefined) {
      try {
        const v = (JSON.parse(load()) as { info?: { version?: unknown } }).info?.version;
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
      digest: a[VERSION_ANNOTATIONS.digest] ?? sha256(load()),
      publishedAt: a[VERSION_ANNOTATIONS.publishedAt] ?? createdAt ?? '1970-01-01T00:00:00Z',
      text: load,
      live: { labels: l, annotations: a, ownerUids: (md.ownerReferences ?? []).map((r) => r.uid) },
    });
  }
  // One entry per digest: the newest (a duplicate can only come from hand-made ConfigMaps).
  const seen = new Set<string>();
  return sortNewestFirst(out).filter((e) => (seen.has(e.digest) ? false : (seen.add(e.digest), true)));
}
