/**
 * The version history of an ApiSchema after this run: which versions are published (one
 * version-history ConfigMap each, `kea-apiver-<ns>-<name>-<hash8>-<digest10>`, label
 * `kea.dev/component=api-version`), which ConfigMaps render must write, which are dropped, and
 * `status.lastDiff`.
 *
 * Takes in: the ApiSchema's published versions (graph/versions.ts, newest first), its current
 * OpenAPI document (text and digest, when it is programmed), its identity and `info.version`,
 * the system namespace, and the time `now` (RFC 3339).
 * Gives out: a {@link HistoryIR}:
 *   - the current document is published when no version has its digest, and a version with
 *     its digest that is not the newest (a rollback) is republished, at `now` or, when the
 *     newest version is dated later (a clock behind it, a ConfigMap made by hand with a future
 *     date), at that version's time: the current document is always the newest version, so
 *     the next run publishes nothing (it used to publish at `now` and republish on the next
 *     run, a second write the incremental reconcile's skip of the owner then missed);
 *   - newest first, at most MAX_PUBLISHED_VERSIONS kept; the oldest beyond go to `dropped`;
 *   - a kept version is written (`apply`) only when it is new, or its live ConfigMap lacks a
 *     label or annotation value, or the owner reference, it should carry (republished after a
 *     rollback, made by hand, written by an older KEA): apply keeps a kept version while its
 *     ApiSchema lives, so render output need not carry every published document on every run;
 *   - `lastDiff`: lib/openapi/diff.ts between the two newest, at most {@link MAX_STATUS_CHANGES}
 *     changes (breaking ones first). When the two cannot be compared (a hand-made ConfigMap
 *     whose `openapi.json` is not JSON), there is no `lastDiff` and a Warning Event
 *     `VersionDiffFailed` says which versions and why.
 * Pure; diffs come from the content-keyed cache of ./memo.ts.
 */
import { COMPONENT_API_VERSION, apiVersionConfigMapName } from '../../lib/policy/config.js';
import { LABELS } from '../../lib/api/types.js';
import type { OpenAPIObject } from '../../lib/openapi/generate.js';
import { API_VERSION_LABEL, VERSION_ANNOTATIONS, sortNewestFirst } from '../../lib/policy/versions.js';
import type { PublishedEntry } from '../graph/index.js';
import { type EventRecord, MAX_PUBLISHED_VERSIONS } from '../model.js';
import { diffCached } from './memo.js';
import { type OwnerRef, ownerLabels, ownerReference } from './ownership.js';
import type { HistoryIR, VersionIR } from './types.js';

/** At most this many changes of `status.lastDiff` are recorded (breaking ones first). */
export const MAX_STATUS_CHANGES = 50;

/** The ApiSchema a version ConfigMap belongs to. */
export interface VersionOwner {
  namespace: string;
  name: string;
  uid?: string;
}

/** A string as a Kubernetes label value (≤ 63 characters of [A-Za-z0-9._-], alphanumeric at both ends). */
function labelSafe(v: string): string {
  return v
    .replace(/[^A-Za-z0-9._-]+/g, '-')
    .slice(0, 63)
    .replace(/^[^A-Za-z0-9]+|[^A-Za-z0-9]+$/g, '');
}

/** The owner of a version ConfigMap, as ./ownership.ts labels it. */
export function versionOwnerRef(owner: VersionOwner): OwnerRef {
  return { kind: 'ApiSchema', namespace: owner.namespace, name: owner.name, uid: owner.uid };
}

/**
 * The labels of a version ConfigMap besides the owner labels: `kea.dev/component=api-version`
 * and `kea.dev/api-version=<info.version>` (label-safe; left out when nothing of it is).
 */
export function versionLabels(version: string): Record<string, string> {
  const v = labelSafe(version);
  return { [LABELS.component]: COMPONENT_API_VERSION, ...(v ? { [API_VERSION_LABEL]: v } : {}) };
}

/** The annotations of a version ConfigMap: the ApiSchema id, the digest, the exact version and `kea.dev/published-at`. */
export function versionAnnotations(owner: VersionOwner, entry: { version: string; digest: string; publishedAt: string }): Record<string, string> {
  return {
    [VERSION_ANNOTATIONS.apiSchema]: `${owner.namespace}/${owner.name}`,
    [VERSION_ANNOTATIONS.digest]: entry.digest,
    [VERSION_ANNOTATIONS.version]: entry.version,
    [VERSION_ANNOTATIONS.publishedAt]: entry.publishedAt,
  };
}

/** Whether a kept version must be (re-)applied (see the module comment). Its data is the published text itself, so it never differs. */
function needsApply(owner: VersionOwner, systemNamespace: string, e: PublishedEntry): boolean {
  if (!e.live) return true;
  const live = e.live;
  const ref = versionOwnerRef(owner);
  const labels = { ...ownerLabels(ref), ...versionLabels(e.version) };
  if (Object.entries(labels).some(([k, v]) => live.labels[k] !== v)) return true;
  if (Object.entries(versionAnnotations(owner, e)).some(([k, v]) => live.annotations[k] !== v)) return true;
  const uid = ownerReference(ref, systemNamespace)?.uid;
  return uid !== undefined && !live.ownerUids.includes(uid);
}

/**
 * The version history after this run (see the module comment).
 * @param current the programmed document (`openapi.json` text and its sha256), or undefined.
 * @param version the ApiSchema's `spec.info.version` (of a new version).
 * @param now RFC 3339, the publication time of a new or republished version.
 * @returns the history and the Events it raises (regarding `regarding`).
 */
export function versionHistory(
  owner: VersionOwner,
  systemNamespace: string,
  published: readonly PublishedEntry[],
  current: { text: string; digest: string } | undefined,
  version: string,
  now: string,
  regarding: EventRecord['regarding'],
): { history: HistoryIR; events: EventRecord[] } {
  let entries = published.map((e) => ({ ...e }));
  if (current) {
    const digest = current.digest;
    const found = entries.find((e) => e.digest === digest);
    // The current document is always the newest version: published (or republished) at `now`,
    // or at the newest version's time when that is later (a clock behind it, a ConfigMap made
    // by hand with a future date), so the next run finds it newest and publishes nothing.
    const stamp = (): string => (!entries.length || Date.parse(now) > Date.parse(entries[0].publishedAt) ? now : entries[0].publishedAt);
    if (!found) {
      const text = current.text;
      entries.unshift({ name: apiVersionConfigMapName(owner.namespace, owner.name, digest), version, digest, publishedAt: stamp(), text: () => text });
    } else if (entries[0] !== found) {
      found.publishedAt = stamp();
    }
    entries = sortNewestFirst(entries, digest);
  }
  const keptEntries = entries.slice(0, MAX_PUBLISHED_VERSIONS);
  const kept: VersionIR[] = keptEntries.map((e) => ({
    name: e.name,
    version: e.version,
    digest: e.digest,
    publishedAt: e.publishedAt,
    apply: needsApply(owner, systemNamespace, e),
    text: e.text,
  }));
  const dropped = entries.slice(MAX_PUBLISHED_VERSIONS).map((e) => `${systemNamespace}/${e.name}`);
  const events: EventRecord[] = [];
  let lastDiff: HistoryIR['lastDiff'];
  if (kept.length >= 2) {
    const [cur, prev] = kept;
    try {
      const d = diffCached(prev.digest, cur.digest, () => ({
        oldDoc: JSON.parse(prev.text()) as OpenAPIObject,
        newDoc: JSON.parse(cur.text()) as OpenAPIObject,
      }));
      lastDiff = {
        from: d.from,
        to: d.to,
        breaking: d.breaking,
        changes: d.changes.slice(0, MAX_STATUS_CHANGES).map((c) => ({ kind: c.kind, breaking: c.breaking, path: c.path, message: c.message })),
      };
    } catch (e) {
      events.push({
        regarding,
        type: 'Warning',
        reason: 'VersionDiffFailed',
        message:
          `status.lastDiff is not recorded: version ${cur.version} (ConfigMap ${systemNamespace}/${cur.name}) cannot be compared with version ${prev.version} ` +
          `(ConfigMap ${systemNamespace}/${prev.name}): ${(e as Error).message}`,
      });
    }
  }
  return { history: { kept, dropped, ...(lastDiff ? { lastDiff } : {}) }, events };
}
