/**
 * Published version history of an ApiSchema, read from the snapshot's version-history
 * ConfigMaps (`kea.dev/component=api-version`, lib/policy/config.ts).
 *
 * Takes in: the snapshot's `publishedVersions` ConfigMaps and one ApiSchema's namespace/name.
 * Gives out: that ApiSchema's {@link PublishedEntry}s, newest first. A ConfigMap belongs to the
 * ApiSchema named by its annotation `kea.dev/api-schema` (`<ns>/<name>`), else by its
 * `kea.dev/owner` label. Version, digest and publishedAt by the rules the policy server reads
 * them with too (lib/policy/versions.ts `versionFields`). ConfigMaps being deleted or without
 * an `openapi.json` key are ignored. Pure.
 *
 * Memory: the watch stage caches these ConfigMaps with their `openapi.json` deflated
 * (watch/packed.ts `packVersionConfigMap`: ~10.5 KB of text → ~1.5 KB); an entry's text is inflated only
 * when asked for ({@link PublishedEntry.text}), i.e. for a diff not cached yet or a ConfigMap
 * written by hand (no digest annotation).
 */
import type { KubernetesObject } from '@kubernetes/client-node';
import { LABELS } from '../../lib/api/types.js';
import { VERSION_ANNOTATIONS, newestPerDigest, versionFields } from '../../lib/policy/versions.js';
import { ownerLabelValue } from '../model.js';
import { openapiLoader } from '../watch/packed.js';

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
    out.push({
      name: md.name ?? '',
      ...versionFields({ annotations: a, labels: l, creationTimestamp: md.creationTimestamp }, load),
      text: load,
      live: { labels: l, annotations: a, ownerUids: (md.ownerReferences ?? []).map((r) => r.uid) },
    });
  }
  return newestPerDigest(out);
}
