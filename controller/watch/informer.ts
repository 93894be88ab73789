/**
 * A resilient informer: a list+watch cache of one kind, with the failure handling that
 * client-node's `ListWatch` lacks (it stops for good on any non-410 error: client-node issues
 * #364, #958; field notes §5):
 *  - list, then watch from the list's resourceVersion (with bookmarks, so resumes rarely hit
 *    410); a watch the server ends normally is resumed from the last resourceVersion;
 *  - 410 Gone (an ERROR event or HTTP status) → relist at once;
 *  - any other list or watch error → relist after an exponential backoff (1 s doubling to
 *    30 s, ±20 % jitter);
 *  - a periodic full relist (default every 5 min) heals anything missed;
 *  - the previous cache is served until a relist completes, so the pipeline never sees an
 *    empty or partial world (nothing is pruned during an API server outage);
 *  - cached objects are slimmed (no managedFields, no kubectl last-applied annotation), or
 *    hold metadata only (PartialObjectMetadata) when the spec says so;
 *  - health: synced, last event seen, consecutive failures, failing since.
 *
 * It is written on KEA's {@link KubeClient} rather than on client-node's ListWatch/Watch:
 * importing those loads client-node's generated models (+47 MiB RSS measured), and its
 * Watch opens a new TLS connection per watch (see docs/performance.md, "Controller scale").
 */
import type { KubernetesObject } from '@kubernetes/client-node';
import { KubeError, type KubeClient, type ResourceRef } from '../kube/client.js';

/** What one informer watches. */
export interface InformerSpec {
  /** Short name for logs and metrics, e.g. `apischemas`, `owned-configmaps`. */
  name: string;
  ref: ResourceRef;
  /** Restrict to one namespace (default: all namespaces). */
  namespace?: string;
  /** Kubernetes label selector, e.g. `kea.dev/managed-by=kea`. */
  labelSelector?: string;
  /**
   * Cache metadata only (PartialObjectMetadata lists and watches): enough for hash and drift
   * checks and pruning of owned objects, without holding their bodies in memory.
   */
  metadataOnly?: boolean;
  /** Cache full objects but drop `spec` (metadata + status only: Deployments, for Ready). */
  dropSpec?: boolean;
  /**
   * Applied (in place) to every object before it is cached, after slimming: e.g. the
   * version-history ConfigMaps keep their OpenAPI text deflated (graph/versions.ts).
   */
  transform?: (obj: KubernetesObject) => KubernetesObject;
}

export interface InformerOptions {
  /** Called after any add/update/delete, and when a (re)list completes. */
  onChange: (informer: string, verb: 'add' | 'update' | 'delete' | 'sync', obj?: KubernetesObject) => void;
  /** Called on a watch or list error (before the backoff relist). */
  onError?: (informer: string, err: unknown, retryInMs: number) => void;
  /** Full relist period in ms (default 300 000). 0 disables. */
  relistMs?: number;
  /** First retry delay in ms (default 1000); doubles per consecutive failure up to maxBackoffMs. */
  backoffMs?: number;
  /** Maximum retry delay in ms (default 30 000). */
  maxBackoffMs?: number;
}

/** Health of one informer. Times are epoch ms (0 = never). */
export interface InformerHealth {
  name: string;
  synced: boolean;
  /** Last watch event received (object events and bookmarks). */
  lastEventAt: number;
  /** Last successful list. */
  lastSyncAt: number;
  /** Last list or watch error. */
  lastErrorAt: number;
  lastError?: string;
  /** Errors since the last successful list or event. */
  consecutiveFailures: number;
  /** When the current run of failures began (0 = not failing). */
  failingSince: number;
  /** Relists after errors or 410 Gone. */
  restarts: number;
  objects: number;
}

const LAST_APPLIED = 'kubectl.kubernetes.io/last-applied-configuration';

/** Removes fields the controller never reads, in place. */
export function slim<T extends KubernetesObject>(obj: T): T {
  const md = obj?.metadata;
  if (md) {
    delete md.managedFields;
    if (md.annotations && LAST_APPLIED in md.annotations) {
      delete md.annotations[LAST_APPLIED];
    }
  }
  return obj;
}

const keyOf = (o: KubernetesObject) => `${o.metadata?.namespace ?? ''}/${o.metadata?.name ?? ''}`;

/** A self-healing list+watch cache of one kind. */
export class Informer {
  readonly spec: InformerSpec;
  private readonly client: KubeClient;
  private readonly opts: Required<Omit<InformerOptions, 'onError'>> & Pick<InformerOptions, 'onError'>;
  private store = new Map<string, KubernetesObject>();
  private rv = '';
  /** Bumped by every (re)list; callbacks of older generations are ignored. */
  private gen = 0;
  private watchAbort?: AbortController;
  private stopped = true;
  private restartTimer?: NodeJS.Timeout;
  private relistTimer?: NodeJS.Timeout;
  private syncWaiters: Array<() => void> = [];
  private h: InformerHealth;

  constructor(client: KubeClient, spec: InformerSpec, opts: InformerOptions) {
    this.spec = spec;
    this.client = client;
    this.opts = { relistMs: 300_000, backoffMs: 1000, maxBackoffMs: 30_000, ...opts };
    this.h = {
      name: spec.name,
      synced: false,
      lastEventAt: 0,
      lastSyncAt: 0,
      lastErrorAt: 0,
      consecutiveFailures: 0,
      failingSince: 0,
      restarts: 0,
      objects: 0,
    };
  }

  /** Starts listing and watching; returns at once (see {@link waitForSync}). */
  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.relist();
    if (this.opts.relistMs > 0) {
      this.relistTimer = setInterval(() => this.relist(), this.opts.relistMs);
      this.relistTimer.unref();
    }
  }

  /** Stops watching; the cache stays readable. */
  stop(): void {
    this.stopped = true;
    this.gen++;
    clearTimeout(this.restartTimer);
    clearInterval(this.relistTimer);
    this.watchAbort?.abort();
    this.watchAbort = undefined;
  }

  /** Lists afresh, then watches from the list (the old cache is served until the list completes). */
  relist(): void {
    if (this.stopped) return;
    clearTimeout(this.restartTimer);
    const gen = ++this.gen;
    this.watchAbort?.abort();
    this.watchAbort = undefined;
    void this.listThenWatch(gen);
  }

  /** Resolves once the first list has completed. */
  waitForSync(): Promise<void> {
    if (this.h.synced) return Promise.resolve();
    return new Promise((r) => this.syncWaiters.push(r));
  }

  get synced(): boolean {
    return this.h.synced;
  }

  /** Every cached object (all namespaces), a fresh array. */
  list(): KubernetesObject[] {
    return [...this.store.values()];
  }

  get(namespace: string | undefined, name: string): KubernetesObject | undefined {
    return this.store.get(`${namespace ?? ''}/${name}`);
  }

  health(): InformerHealth {
    return { ...this.h, objects: this.store.size };
  }

  private fix(obj: KubernetesObject): KubernetesObject {
    slim(obj);
    if (this.spec.dropSpec) delete (obj as { spec?: unknown }).spec;
    obj.apiVersion = this.spec.ref.apiVersion;
    obj.kind = this.spec.ref.kind;
    return this.spec.transform ? this.spec.transform(obj) : obj;
  }

  private async listThenWatch(gen: number): Promise<void> {
    let list;
    try {
      list = await this.client.list(this.spec.ref, {
        namespace: this.spec.namespace,
        labelSelector: this.spec.labelSelector,
        metadataOnly: this.spec.metadataOnly,
      });
    } catch (err) {
      if (gen === this.gen && !this.stopped) this.onFailure(err);
      return;
    }
    if (gen !== this.gen || this.stopped) return;
    const fresh = new Map<string, KubernetesObject>();
    for (const it of list.items) fresh.set(keyOf(it), this.fix(it));
    this.store = fresh;
    this.rv = list.metadata.resourceVersion ?? '';
    this.h.synced = true;
    this.h.lastSyncAt = Date.now();
    this.h.consecutiveFailures = 0;
    this.h.failingSince = 0;
    for (const w of this.syncWaiters.splice(0)) w();
    this.opts.onChange(this.spec.name, 'sync');
    this.watchFrom(gen);
  }

  private watchFrom(gen: number): void {
    let gone = false;
    const startedAt = Date.now();
    const onEvent = (type: string, obj: KubernetesObject & { code?: number }) => {
      if (gen !== this.gen) return;
      if (type === 'ERROR') {
        if (obj?.code === 410) gone = true;
        return;
      }
      const rv = obj?.metadata?.resourceVersion;
      if (rv) this.rv = rv;
      this.h.lastEventAt = Date.now();
      if (type === 'BOOKMARK') return;
      this.h.consecutiveFailures = 0;
      this.h.failingSince = 0;
      const key = keyOf(obj);
      if (type === 'DELETED') {
        if (this.store.delete(key)) this.opts.onChange(this.spec.name, 'delete', obj);
        return;
      }
      const prev = this.store.get(key);
      if (prev && prev.metadata?.resourceVersion === rv) return;
      this.store.set(key, this.fix(obj));
      this.opts.onChange(this.spec.name, prev ? 'update' : 'add', obj);
    };
    const onDone = (err: unknown) => {
      if (gen !== this.gen || this.stopped) return;
      if (gone || (err instanceof KubeError && err.statusCode === 410)) {
        this.h.restarts++;
        this.relist();
      } else if ((!err || (err as Error).name === 'TimeoutError') && Date.now() - startedAt > 1000) {
        this.watchFrom(gen); // normal end (server timeout): resume from the last resourceVersion
      } else {
        this.onFailure(err ?? new Error('watch ended immediately'));
      }
    };
    this.client
      .watch(
        this.client.collectionPath(this.spec.ref, this.spec.namespace),
        { labelSelector: this.spec.labelSelector, resourceVersion: this.rv },
        onEvent,
        onDone,
        {
          metadataOnly: this.spec.metadataOnly,
        },
      )
      .then(
        (ac) => {
          if (gen === this.gen && !this.stopped) this.watchAbort = ac;
          else ac.abort();
        },
        (err: unknown) => onDone(err),
      );
  }

  private onFailure(err: unknown): void {
    this.h.consecutiveFailures++;
    this.h.lastErrorAt = Date.now();
    if (!this.h.failingSince) this.h.failingSince = this.h.lastErrorAt;
    this.h.lastError = err instanceof Error ? err.message : String(err);
    const base = Math.min(this.opts.maxBackoffMs, this.opts.backoffMs * 2 ** (this.h.consecutiveFailures - 1));
    const delay = Math.round(base * (0.8 + Math.random() * 0.4));
    this.opts.onError?.(this.spec.name, err, delay);
    const gen = this.gen;
    clearTimeout(this.restartTimer);
    this.restartTimer = setTimeout(() => {
      if (gen !== this.gen || this.stopped) return;
      this.h.restarts++;
      this.relist();
    }, delay);
    this.restartTimer.unref();
  }
}
