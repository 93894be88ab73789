/**
 * A resilient informer around `@kubernetes/client-node`'s `ListWatch`.
 *
 * client-node's ListWatch relists on 410 Gone and reconnects after its own 30 s inactivity
 * timeout, but it stops for good on any other error (client-node issues #364, #958; field
 * notes §5). This wrapper:
 *  - restarts after an error with exponential backoff (1 s doubling to 30 s, ±20 % jitter);
 *  - relists periodically (default every 5 min) to heal any missed event;
 *  - keeps serving the previous cache until a restarted ListWatch has completed its list, so a
 *    restart never shows the pipeline an empty (or partial) world;
 *  - strips `metadata.managedFields` and the kubectl last-applied annotation from cached
 *    objects (they are never read and dominate memory at scale), and can cache metadata only;
 *  - watches through {@link KubeClient.watch} (one shared connection pool, bookmarks,
 *    server-side timeouts) instead of client-node's `Watch`, whose auth setup builds a new
 *    undici Agent (a new TLS connection) per call;
 *  - exposes health: synced, last event seen, consecutive failures.
 */
import { ListWatch, type Watch, type KubernetesObject, type ObjectCallback } from '@kubernetes/client-node';
import type { KubeClient, ResourceRef } from '../apply/kube.js';

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
}

export interface InformerOptions {
  /** Called after any add/update/delete, and when a (re)list completes. */
  onChange: (informer: string, verb: 'add' | 'update' | 'delete' | 'sync', obj?: KubernetesObject) => void;
  /** Called on a watch or list error (before the backoff restart). */
  onError?: (informer: string, err: unknown, retryInMs: number) => void;
  /** Full relist period in ms (default 300 000). 0 disables. */
  relistMs?: number;
  /** First restart delay in ms (default 1000); doubles per consecutive failure up to maxBackoffMs. */
  backoffMs?: number;
  /** Maximum restart delay in ms (default 30 000). */
  maxBackoffMs?: number;
}

/** Health of one informer. Times are epoch ms (0 = never). */
export interface InformerHealth {
  name: string;
  synced: boolean;
  /** Last add/update/delete event received. */
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

/** A self-healing list+watch cache of one kind. */
export class Informer {
  readonly spec: InformerSpec;
  private readonly client: KubeClient;
  private readonly watch: Watch;
  private readonly opts: Required<Omit<InformerOptions, 'onError'>> & Pick<InformerOptions, 'onError'>;
  /** The ListWatch whose cache is served. */
  private current?: ListWatch<KubernetesObject>;
  /** A (re)started ListWatch still listing. */
  private pending?: ListWatch<KubernetesObject>;
  private gen = 0;
  private stopped = true;
  private restartTimer?: NodeJS.Timeout;
  private relistTimer?: NodeJS.Timeout;
  private syncWaiters: Array<() => void> = [];
  private h: InformerHealth;

  constructor(client: KubeClient, spec: InformerSpec, opts: InformerOptions) {
    this.spec = spec;
    this.client = client;
    // ListWatch only calls watch.watch(path, query, callback, done): drive it with the
    // client's own watch (shared connection pool, bookmarks, metadata-only when asked).
    const { apiVersion, kind } = spec.ref;
    this.watch = {
      watch: (path: string, query: Record<string, string | number | boolean | undefined>, cb: (t: string, o: KubernetesObject) => void, done: (err: unknown) => void) =>
        client.watch(
          path,
          query,
          (type, obj) => {
            if (type !== 'ERROR' && obj) {
              slim(obj);
              obj.apiVersion = apiVersion;
              obj.kind = kind;
            }
            cb(type, obj);
          },
          done,
          { metadataOnly: spec.metadataOnly },
        ),
    } as unknown as Watch;
    this.opts = { relistMs: 300_000, backoffMs: 1000, maxBackoffMs: 30_000, ...opts };
    this.h = { name: spec.name, synced: false, lastEventAt: 0, lastSyncAt: 0, lastErrorAt: 0, consecutiveFailures: 0, failingSince: 0, restarts: 0, objects: 0 };
  }

  /** Starts listing and watching; resolves immediately (see {@link waitForSync}). */
  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.launch();
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
    void this.pending?.stop();
    void this.current?.stop();
    this.pending = undefined;
  }

  /** Forces a fresh list (the old cache is served until it completes). */
  relist(): void {
    if (this.stopped) return;
    this.launch();
  }

  /** Resolves once the first list has completed. */
  waitForSync(): Promise<void> {
    if (this.h.synced) return Promise.resolve();
    return new Promise((r) => this.syncWaiters.push(r));
  }

  get synced(): boolean {
    return this.h.synced;
  }

  /** Every cached object (all namespaces). */
  list(): KubernetesObject[] {
    return this.current ? [...this.current.list()] : [];
  }

  get(namespace: string | undefined, name: string): KubernetesObject | undefined {
    return this.current?.get(name, namespace);
  }

  health(): InformerHealth {
    return { ...this.h, objects: this.current ? this.current.list().length : 0 };
  }

  private launch(): void {
    clearTimeout(this.restartTimer);
    const gen = ++this.gen;
    void this.pending?.stop();
    const path = this.client.collectionPath(this.spec.ref, this.spec.namespace);
    const listFn = async () => {
      const list = await this.client.list(this.spec.ref, { namespace: this.spec.namespace, labelSelector: this.spec.labelSelector, metadataOnly: this.spec.metadataOnly });
      for (const it of list.items) slim(it);
      if (gen === this.gen) {
        // ListWatch fills its cache synchronously after this promise resolves; swap after that.
        setImmediate(() => this.onListed(gen, lw));
      }
      return list;
    };
    const lw: ListWatch<KubernetesObject> = new ListWatch(path, this.watch, listFn, false, this.spec.labelSelector);
    this.pending = lw;
    const event = (verb: 'add' | 'update' | 'delete'): ObjectCallback<KubernetesObject> => (obj) => {
      if (gen !== this.gen || lw !== this.current) return;
      this.h.lastEventAt = Date.now();
      this.h.consecutiveFailures = 0;
      this.h.failingSince = 0;
      this.opts.onChange(this.spec.name, verb, obj);
    };
    lw.on('add', event('add'));
    lw.on('update', event('update'));
    lw.on('delete', event('delete'));
    lw.on('error', (err: unknown) => {
      if (gen !== this.gen || this.stopped) return;
      this.onFailure(err);
    });
    lw.start().catch((err: unknown) => {
      if (gen === this.gen && !this.stopped) this.onFailure(err);
    });
  }

  private onListed(gen: number, lw: ListWatch<KubernetesObject>): void {
    if (gen !== this.gen) return;
    const old = this.current;
    if (old !== lw) {
      this.current = lw;
      this.pending = undefined;
      void old?.stop();
    }
    this.h.synced = true;
    this.h.lastSyncAt = Date.now();
    this.h.consecutiveFailures = 0;
    this.h.failingSince = 0;
    for (const w of this.syncWaiters.splice(0)) w();
    this.opts.onChange(this.spec.name, 'sync');
  }

  private onFailure(err: unknown): void {
    this.h.consecutiveFailures++;
    this.h.lastErrorAt = Date.now();
    if (!this.h.failingSince) this.h.failingSince = this.h.lastErrorAt;
    this.h.lastError = err instanceof Error ? err.message : String(err);
    const base = Math.min(this.opts.maxBackoffMs, this.opts.backoffMs * 2 ** (this.h.consecutiveFailures - 1));
    const delay = Math.round(base * (0.8 + Math.random() * 0.4));
    this.opts.onError?.(this.spec.name, err, delay);
    // A watch error leaves the ListWatch stopped; its cache stays valid (and served) until the
    // restarted one has listed.
    const gen = this.gen;
    clearTimeout(this.restartTimer);
    this.restartTimer = setTimeout(() => {
      if (gen !== this.gen || this.stopped) return;
      this.h.restarts++;
      this.launch();
    }, delay);
    this.restartTimer.unref();
  }
}
