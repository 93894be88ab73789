/**
 * Stage `apply`.
 *
 * Takes in: a {@link RenderOutput} (desired objects, statuses, events), whole or as a
 * {@link DesiredStream} (objects one at a time, then the rest), and a {@link LiveView}
 * (the watch stage's caches: live owned objects and live ApiSchemas/MLServices).
 * Gives out: writes to the API server, and an {@link ApplyResult} counting them:
 *  - server-side apply (PATCH `application/apply-patch+yaml`, field manager `kea-controller`,
 *    `force=true`) of every desired object whose live copy does not already carry the same
 *    `kea.dev/applied-hash` annotation (sha256 of the desired object's canonical JSON), or that
 *    changed since KEA last wrote it (drift: generation, else resourceVersion, moved on);
 *  - deletion of owned objects (label `kea.dev/managed-by=kea`) no longer desired, except
 *    version-history ConfigMaps (`kea.dev/component=api-version`) whose owning ApiSchema
 *    still exists and that render did not drop (`RenderOutput.droppedVersions`), and objects
 *    of owners render retains (`RenderOutput.retainOwners`);
 *  - status writes through the status subresource, only when the status changed (a
 *    condition whose status did not change keeps its previous lastTransitionTime);
 *  - core/v1 Events, deduplicated by a deterministic name (a repeat is a 409, not a write).
 * At most `concurrency` requests are in flight. Once converged it sends no write at all.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { KubernetesObject } from '@kubernetes/client-node';
import { FIELD_MANAGER, LABELS, API_VERSION, type Condition } from '../../lib/api/types.js';
import { COMPONENT_API_VERSION } from '../../lib/policy/config.js';
import { PAUSE, ownerLabelValue, type EventRecord, type RenderOutput, type StatusUpdate } from '../model.js';
import { KubeError, RESOURCES, type KubeClient } from '../kube/client.js';
import { kindRank, objectKey } from '../../lib/kube/objects.js';
import { APPLIED_HASH, desiredHash } from '../kube/applied-hash.js';
import { canonicalJson } from '../../lib/canonical-json.js';
import { sha256Hex, sha256Prefix } from '../../lib/hash.js';

/** What apply reads from the watch stage. */
export interface LiveView {
  /** Live owned objects by {@link objectKey}. */
  ownedIndex(): Map<string, KubernetesObject>;
  /** Live ApiSchema / MLService, or undefined when it does not exist (anymore). */
  getResource(kind: 'ApiSchema' | 'MLService', namespace: string, name: string): KubernetesObject | undefined;
  /** Every live ApiSchema (to decide whether a version ConfigMap's owner is gone). */
  apiSchemas(): KubernetesObject[];
}

export type WriteVerb = 'apply' | 'delete' | 'status' | 'event';

export interface ApplyResult {
  applied: number;
  /** Desired objects skipped because the live copy is current. */
  unchanged: number;
  pruned: number;
  statusWrites: number;
  events: number;
  /** One line per failed request: `<verb> <key>: <message>`. */
  errors: string[];
  /** Desired objects seen (applied + unchanged + failed). */
  desired: number;
}

/**
 * Render's output as a stream: the desired objects one at a time, then everything else;
 * {@link PAUSE} values in between are chances to return to the event loop.
 */
export type DesiredStream = Iterator<KubernetesObject | typeof PAUSE, Omit<RenderOutput, 'objects'>, undefined>;

/**
 * At most this many objects to write are held before they are applied (a chunk). 64, not 256:
 * objects waiting for a write outlive two scavenges and are promoted to the old generation;
 * with 256 the scale benchmark's VmHWM showed 15–25 MiB spikes above the sampled RSS (major
 * GCs evacuating them), with 64 none above 5 MiB, at the same convergence time.
 */
export const APPLY_CHUNK = 64;

/** A whole RenderOutput as a {@link DesiredStream}. */
export function streamOfOutput(out: RenderOutput): DesiredStream {
  const { objects, ...rest } = out;
  let i = 0;
  return { next: () => (i < objects.length ? { done: false, value: objects[i++] } : { done: true, value: rest }) };
}

export interface ApplierOptions {
  fieldManager?: string;
  /** Maximum requests in flight (default 16). */
  concurrency?: number;
  /** Reported as the Event's reportingInstance. */
  identity?: string;
  /** Called for every successful write (metrics). */
  onWrite?: (verb: WriteVerb, kind: string) => void;
  /** Clock (epoch ms), for tests. */
  now?: () => number;
}

/** A shallow copy of `obj` carrying the applied-hash annotation (nested spec shared, not copied). */
function withHash(obj: KubernetesObject, hash: string): KubernetesObject {
  return { ...obj, metadata: { ...obj.metadata, annotations: { ...(obj.metadata?.annotations ?? {}), [APPLIED_HASH]: hash } } };
}

/** RFC 3339 timestamp with second precision (metav1.Time). */
export function rfc3339(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/**
 * Carries over lastTransitionTime from the live conditions when a condition's status did not
 * change (KEP-1623 semantics); new or flipped conditions get `now`.
 */
export function mergeStatus(desired: StatusUpdate['status'], live: { conditions?: Condition[] } | undefined, nowMs: number): StatusUpdate['status'] {
  const out = structuredClone(desired) as { conditions?: Condition[] };
  const prev = new Map((live?.conditions ?? []).map((c) => [c.type, c]));
  for (const c of out.conditions ?? []) {
    const p = prev.get(c.type);
    if (p && p.status === c.status && p.lastTransitionTime) c.lastTransitionTime = p.lastTransitionTime;
    else c.lastTransitionTime = c.lastTransitionTime && !p ? c.lastTransitionTime : rfc3339(nowMs);
  }
  return out;
}

/** Error entry of an apply run cut short by `stop()` (e.g. leadership lost). */
export const STOPPED = 'stopped: no longer allowed to write (leadership lost or shutting down)';

/**
 * sha256 (hex) of the canonical JSON of a status without condition lastTransitionTimes: 64
 * characters kept per resource instead of the whole status text.
 */
function statusSignature(st: StatusUpdate['status']): string {
  const c = st as { conditions?: Condition[] };
  return sha256Hex(canonicalJson({ ...c, conditions: c.conditions?.map((x) => ({ ...x, lastTransitionTime: undefined })) }));
}

/** Compares opaque resourceVersions/generations; numeric when both are integers. */
function isNewer(a: string, b: string): boolean {
  if (/^\d+$/.test(a) && /^\d+$/.test(b)) return BigInt(a) > BigInt(b);
  return false;
}

function marker(o: KubernetesObject): string {
  const md = o.metadata ?? {};
  return md.generation !== undefined ? `g${md.generation}` : `r${md.resourceVersion ?? ''}`;
}

function markerNewer(recorded: string, live: string): boolean {
  return recorded[0] === live[0] && isNewer(recorded.slice(1), live.slice(1));
}

/**
 * Returns to the event loop through its timers phase (a 1 ms timer, not setImmediate): V8
 * schedules its incremental-marking work as (delayed) platform tasks, and only a timer turn
 * let them run between two stretches of synchronous work in our measurements.
 */
export function yieldToLoop(): Promise<void> {
  return sleep(1);
}

/**
 * Runs `fn` over `items` with at most `limit` in flight. Returns to the event loop after every
 * {@link APPLY_CHUNK} items, so a run of calls that complete without I/O (statuses that did not
 * change) does not become one long synchronous stretch (see {@link Applier.apply}).
 */
export async function pool<T>(items: T[], limit: number, fn: (t: T) => Promise<void>): Promise<void> {
  let i = 0;
  const workers = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (i < items.length) {
      const t = items[i++];
      if (i % APPLY_CHUNK === 0) await yieldToLoop();
      await fn(t);
    }
  });
  await Promise.all(workers);
}

/** Makes the cluster match a RenderOutput. One instance per controller process. */
export class Applier {
  private readonly client: KubeClient;
  private readonly fieldManager: string;
  private readonly concurrency: number;
  private readonly identity: string;
  private readonly onWrite: (verb: WriteVerb, kind: string) => void;
  private readonly now: () => number;
  /** What KEA last wrote, per object key: the desired hash and the live marker it produced. */
  private readonly written = new Map<string, { hash: string; marker: string; rv?: string }>();
  /** Last status written per resource: signature (without lastTransitionTime) and resulting resourceVersion. */
  private readonly statusWritten = new Map<string, { sig: string; rv: string }>();
  /** Event names known to exist. */
  private readonly eventsSeen = new Set<string>();

  constructor(client: KubeClient, opts: ApplierOptions = {}) {
    this.client = client;
    this.fieldManager = opts.fieldManager ?? FIELD_MANAGER;
    this.concurrency = opts.concurrency ?? 16;
    this.identity = opts.identity ?? 'kea-controller';
    this.onWrite = opts.onWrite ?? (() => {});
    this.now = opts.now ?? Date.now;
  }

  /**
   * Applies desired objects, prunes, writes statuses and events.
   *
   * `out` is either a whole {@link RenderOutput} or a {@link DesiredStream} (render's stream:
   * objects, then the rest). Objects are taken one at a time: each is hashed and compared with
   * its live copy at once (an up-to-date one is released right away), and those to write are
   * applied in chunks of {@link APPLY_CHUNK}, each chunk in kind order (ConfigMaps and
   * Services before Deployments, ReferenceGrants and HTTPRoutes). Render yields an owner's
   * objects together, its ConfigMap before its routes, so a route never precedes the
   * ConfigMap it needs. Only the desired objects' keys are kept for pruning.
   * `statusQueue`, when given, is filled by the stream's producer (render's `onStatus`) with
   * each owner's status after its objects: the statuses queued when a chunk is flushed are
   * written right after it (instead of all at the end of the run, held until then), the rest
   * with the returned ones after pruning. `observe` sees every desired object with its key and
   * hash (the incremental reconcile remembers them).
   * Never throws for a failed request: failures are listed in `errors` (the caller retries).
   */
  async apply(
    out: RenderOutput | DesiredStream,
    live: LiveView,
    stop: () => boolean = () => false,
    observe?: (key: string, hash: string, obj: KubernetesObject) => void,
    statusQueue?: StatusUpdate[],
  ): Promise<ApplyResult> {
    const res: ApplyResult = { applied: 0, unchanged: 0, pruned: 0, statusWrites: 0, events: 0, errors: [], desired: 0 };
    // `stop()` is checked before every request (e.g. leadership lost): no new write starts.
    const guarded =
      <T>(fn: (t: T) => Promise<void>) =>
      async (t: T) => {
        if (stop()) {
          if (!res.errors.includes(STOPPED)) res.errors.push(STOPPED);
          return;
        }
        await fn(t);
      };
    const liveIdx = live.ownedIndex();
    const stream = 'next' in out ? out : streamOfOutput(out);

    const writeStatus = guarded(async (s: StatusUpdate) => {
      // eslint-disable-next-line @typescript-eslint/no-unnecessary-type-assertion -- tsc needs it (status is not on KubernetesObject); the rule's program disagrees
      const cur = live.getResource(s.kind, s.namespace, s.name) as (KubernetesObject & { status?: { conditions?: Condition[] } }) | undefined;
      if (!cur || cur.metadata?.deletionTimestamp) return;
      const merged = mergeStatus(s.status, cur.status, this.now());
      if (canonicalJson(merged) === canonicalJson(cur.status ?? {})) return;
      // Our own write not yet seen by the informer (cache lag): do not send it again.
      const skey = `${s.kind}/${s.namespace}/${s.name}`;
      const sig = statusSignature(merged);
      const rec = this.statusWritten.get(skey);
      if (rec && rec.sig === sig && isNewer(rec.rv, cur.metadata?.resourceVersion ?? '')) return;
      try {
        const got = await this.client.replaceStatus(RESOURCES[`${API_VERSION}/${s.kind}`], s.namespace, s.name, merged, this.fieldManager, {
          metadataOnly: true,
        });
        this.statusWritten.set(skey, { sig, rv: got.metadata?.resourceVersion ?? '' });
        res.statusWrites++;
        this.onWrite('status', s.kind);
      } catch (err) {
        if (err instanceof KubeError && err.statusCode === 404) return; // deleted meanwhile
        res.errors.push(`status ${s.kind}/${s.namespace}/${s.name}: ${(err as Error).message}`);
      }
    });

    // 1. Server-side apply, in chunks, dependencies first within a chunk.
    const desiredKeys = new Set<string>();
    type Pending = { key: string; obj: KubernetesObject; hash: string; rank: number };
    let chunk: Pending[] = [];
    const ssa = guarded(async ({ key, obj, hash }: Pending) => {
      try {
        const got = await this.client.apply(withHash(obj, hash), this.fieldManager, { metadataOnly: true });
        this.written.set(key, { hash, marker: marker(got), rv: got.metadata?.resourceVersion });
        res.applied++;
        this.onWrite('apply', obj.kind ?? '');
      } catch (err) {
        res.errors.push(`apply ${key}: ${(err as Error).message}`);
      }
    });
    const flush = async () => {
      // Statuses queued so far belong to owners whose objects have all been taken from the
      // stream, i.e. are in this chunk or applied before: written once the chunk is.
      const ready = statusQueue ? statusQueue.splice(0) : [];
      const todo = chunk.sort((a, b) => a.rank - b.rank); // stable: stream order within a kind
      chunk = [];
      for (let i = 0; i < todo.length;) {
        let j = i;
        while (j < todo.length && todo[j].rank === todo[i].rank) j++;
        await pool(todo.slice(i, j), this.concurrency, ssa);
        i = j;
      }
      if (ready.length) await pool(ready, this.concurrency, writeStatus);
    };
    let next = stream.next();
    while (!next.done) {
      if (next.value === PAUSE) {
        await yieldToLoop();
        next = stream.next();
        continue;
      }
      const obj = next.value;
      const key = objectKey(obj);
      desiredKeys.add(key);
      res.desired++;
      const hash = desiredHash(obj);
      observe?.(key, hash, obj);
      const cur = liveIdx.get(key);
      if (cur && this.upToDate(key, cur, hash)) res.unchanged++;
      else chunk.push({ key, obj, hash, rank: kindRank(obj.kind) });
      if (chunk.length >= APPLY_CHUNK) await flush();
      // Back to the event loop now and then, even when nothing is written: V8 finishes a
      // major GC's incremental marking in a task, and in one long synchronous stretch it let
      // the young generation grow to ~24 MB instead (measured at 1000 ApiSchemas); the
      // health server and the Lease renewal get their turn too.
      if (res.desired % APPLY_CHUNK === 0) await yieldToLoop();
      next = stream.next();
    }
    await flush();
    const rest = next.value;
    // Objects of owners not rendered this run (incremental reconcile): desired and current.
    for (const key of rest.unchangedKeys ?? []) {
      if (desiredKeys.has(key)) continue;
      desiredKeys.add(key);
      res.desired++;
      res.unchanged++;
    }

    // 2. Prune owned objects no longer desired.
    const schemaOwners = new Set(live.apiSchemas().map((s) => ownerLabelValue('ApiSchema', s.metadata?.namespace ?? '', s.metadata?.name ?? '')));
    const dropped = new Set(rest.droppedVersions ?? []);
    const retained = new Set(rest.retainOwners ?? []);
    const doomed = [...liveIdx.entries()].filter(([key, o]) => {
      if (desiredKeys.has(key) || o.metadata?.deletionTimestamp) return false;
      const labels = o.metadata?.labels ?? {};
      // Owners render left as they are (invalid spec, awaiting an OpenAPI document):
      // RenderOutput.retainOwners; their existing objects are kept.
      const owner0 = labels[LABELS.owner];
      if (owner0 !== undefined && retained.has(owner0) && !dropped.has(`${o.metadata?.namespace ?? ''}/${o.metadata?.name ?? ''}`)) return false;
      if (o.kind === 'ConfigMap' && labels[LABELS.component] === COMPONENT_API_VERSION) {
        // Version history: kept while its ApiSchema exists (or when the owner is unknown),
        // unless render dropped it (history cap, RenderOutput.droppedVersions).
        if (dropped.has(`${o.metadata?.namespace ?? ''}/${o.metadata?.name ?? ''}`)) return true;
        const owner = labels[LABELS.owner];
        return owner !== undefined && owner.startsWith('ApiSchema.') && !schemaOwners.has(owner);
      }
      return true;
    });
    await pool(
      doomed,
      this.concurrency,
      guarded(async ([key, o]: [string, KubernetesObject]) => {
        try {
          const ref = await this.client.resource(o.apiVersion!, o.kind!);
          await this.client.delete(ref, o.metadata?.namespace, o.metadata!.name!, { uid: o.metadata?.uid });
          this.written.delete(key);
          res.pruned++;
          this.onWrite('delete', o.kind ?? '');
        } catch (err) {
          if (err instanceof KubeError && err.statusCode === 409) return; // uid precondition: already replaced
          res.errors.push(`delete ${key}: ${(err as Error).message}`);
        }
      }),
    );

    // 3. Status, only when changed (those not written after their chunk already).
    await pool([...(statusQueue ? statusQueue.splice(0) : []), ...rest.statuses], this.concurrency, writeStatus);

    // 4. Events, deduplicated.
    await pool(
      rest.events,
      this.concurrency,
      guarded(async (e: EventRecord) => {
        const ev = this.eventObject(e, live);
        const name = ev.metadata!.name!;
        if (this.eventsSeen.has(name)) return;
        try {
          await this.client.create(ev);
          res.events++;
          this.onWrite('event', e.regarding.kind);
          this.eventsSeen.add(name);
        } catch (err) {
          if (err instanceof KubeError && err.statusCode === 409) {
            this.eventsSeen.add(name);
            return;
          }
          res.errors.push(`event ${name}: ${(err as Error).message}`);
        }
      }),
    );
    if (this.eventsSeen.size > 50_000) this.eventsSeen.clear();
    return res;
  }

  /**
   * True when `obj` (a watch event's object) is exactly what one of KEA's own writes
   * produced: the resourceVersion its server-side apply or status write returned. Such an
   * echo carries nothing a new reconcile would act on, so the caller need not trigger one.
   */
  isOwnEcho(obj: KubernetesObject): boolean {
    const rv = obj.metadata?.resourceVersion;
    if (!rv) return false;
    if (obj.kind === 'ApiSchema' || obj.kind === 'MLService') {
      return this.statusWritten.get(`${obj.kind}/${obj.metadata?.namespace}/${obj.metadata?.name}`)?.rv === rv;
    }
    return this.written.get(objectKey(obj))?.rv === rv;
  }

  /**
   * True when `cur`, the live copy of the object with key `key`, is what KEA's apply of a
   * desired object with hash `hash` left (same applied-hash annotation, and no write by anyone
   * else since: generation, else resourceVersion, unchanged). False means apply would write it.
   */
  isCurrent(key: string, cur: KubernetesObject, hash: string): boolean {
    return this.upToDate(key, cur, hash);
  }

  /** The resourceVersion KEA's last status write of this ApiSchema / MLService returned, if any. */
  statusResourceVersion(kind: 'ApiSchema' | 'MLService', namespace: string, name: string): string | undefined {
    return this.statusWritten.get(`${kind}/${namespace}/${name}`)?.rv;
  }

  /** True when the live copy carries `hash` and nobody changed it since KEA wrote it. */
  private upToDate(key: string, cur: KubernetesObject, hash: string): boolean {
    const rec = this.written.get(key);
    const liveHash = cur.metadata?.annotations?.[APPLIED_HASH];
    const m = marker(cur);
    if (rec && rec.hash === hash && markerNewer(rec.marker, m)) return true; // cache lags our own write
    if (liveHash !== hash) return false;
    if (!rec || rec.hash !== hash) {
      // First sight (e.g. after a restart): trust the annotation, remember the marker.
      this.written.set(key, { hash, marker: m });
      return true;
    }
    if (rec.marker === m) return true;
    // Changed by someone else since our write: re-apply (a no-op at the server if only
    // fields KEA does not own moved) and remember the new marker.
    return false;
  }

  private eventObject(e: EventRecord, live: LiveView): KubernetesObject {
    const r = e.regarding;
    const uid = r.uid ?? (r.kind === 'ApiSchema' || r.kind === 'MLService' ? live.getResource(r.kind, r.namespace, r.name)?.metadata?.uid : undefined);
    const digest = sha256Prefix(canonicalJson({ r: { ...r, uid }, t: e.type, reason: e.reason, m: e.message }), 16);
    const apiVersion =
      r.kind === 'ApiSchema' || r.kind === 'MLService' ? API_VERSION : (Object.values(RESOURCES).find((x) => x.kind === r.kind)?.apiVersion ?? 'v1');
    const ts = rfc3339(this.now());
    const base = r.name.slice(0, 253 - 17).replace(/[^a-z0-9.-]/g, '-');
    return {
      apiVersion: 'v1',
      kind: 'Event',
      metadata: { name: `${base}.${digest}`, namespace: r.namespace },
      involvedObject: { apiVersion, kind: r.kind, name: r.name, namespace: r.namespace, ...(uid ? { uid } : {}) },
      type: e.type,
      reason: e.reason,
      message: e.message.slice(0, 1024),
      source: { component: this.fieldManager },
      reportingComponent: this.fieldManager,
      reportingInstance: this.identity.slice(0, 128),
      firstTimestamp: ts,
      lastTimestamp: ts,
      count: 1,
    } as KubernetesObject;
  }
}
