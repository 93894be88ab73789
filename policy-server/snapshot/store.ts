/**
 * Snapshot store: the one mutable reference of the data path.
 *
 * Takes in: complete ConfigMap lists from a {@link ConfigSource}. Debounces them (default
 * 50 ms, so a burst of controller writes compiles once), builds a new immutable
 * {@link Snapshot} and swaps it in with a single assignment: a request reads `store.current`
 * once and uses that snapshot to the end, so it never sees half a configuration.
 *
 * Persistence: after every successful swap the snapshot's last good source is written to
 * `<stateDir>/snapshot.json` (write to a temp file, fsync, rename: atomic on POSIX). Several
 * writers may share the directory (the worker processes of `--workers n`, each with its own
 * store): each write uses a temp name unique to the process and the write
 * (`.snapshot.json.<pid>.<random>.tmp`), so writers never write into each other's file, and
 * `rename` replaces `snapshot.json` with one complete file; the last rename wins, and every
 * writer's content is a complete last-good list from the same source. A failed write removes
 * its temp file. On start,
 * {@link SnapshotStore.loadPersisted} serves that file before the source has synced, so a
 * restart while the API server (or the controller) is down still serves the last good
 * configuration.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, open, readFile, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../../lib/log.js';
import type { ConfigSource } from '../sources/types.js';
import { buildSnapshot, emptySnapshot, type Snapshot, type SourceConfigMap } from './build.js';

/** Format of the persisted state file. */
interface PersistedState {
  format: 'kea-policy-snapshot/v1';
  savedAt: string;
  configMaps: SourceConfigMap[];
}

/** Called after each swap with the previous and the new snapshot. */
export type SwapListener = (next: Snapshot, prev: Snapshot) => void;

/** Options of {@link SnapshotStore}. */
export interface SnapshotStoreOptions {
  /** Directory for `snapshot.json`; no persistence when absent. */
  stateDir?: string;
  logger?: Logger;
  /** Debounce of source updates, ms (default 50). */
  debounceMs?: number;
}

/** Holds the current snapshot and rebuilds it from a source. */
export class SnapshotStore {
  /** The snapshot requests read. Replaced atomically, never mutated. */
  current: Snapshot = emptySnapshot();
  /** Where the current snapshot came from: nothing yet, the persisted file, or the live source. */
  origin: 'none' | 'disk' | 'source' = 'none';
  private readonly listeners: SwapListener[] = [];
  private pending?: SourceConfigMap[];
  private timer?: NodeJS.Timeout;
  private source?: ConfigSource;
  private persistChain: Promise<void> = Promise.resolve();
  private readonly opts: SnapshotStoreOptions;
  /** Number of swaps so far. */
  swaps = 0;

  constructor(opts: SnapshotStoreOptions = {}) {
    this.opts = opts;
  }

  /** Registers a swap listener (cache invalidation, metrics). */
  onSwap(l: SwapListener): void {
    this.listeners.push(l);
  }

  /** True once a snapshot from disk or from the source is being served. */
  get ready(): boolean {
    return this.origin !== 'none';
  }

  /**
   * Builds from `list` now and swaps (no debounce).
   * @param origin - recorded in {@link SnapshotStore.origin}.
   * @returns the new snapshot.
   */
  apply(list: readonly SourceConfigMap[], origin: 'disk' | 'source' = 'source'): Snapshot {
    const prev = this.current;
    const next = buildSnapshot(list, prev);
    this.current = next;
    this.origin = origin;
    this.swaps++;
    for (const e of next.errors) {
      this.opts.logger?.warn('config rejected', { configMap: e.configMap, serviceId: e.serviceId, error: e.message, keptPrevious: e.keptPrevious });
    }
    this.opts.logger?.info('config snapshot swapped', {
      generation: next.generation,
      origin,
      services: next.services.size,
      operations: next.operations.size,
      errors: next.errors.length,
    });
    for (const l of this.listeners) {
      try {
        l(next, prev);
      } catch (err) {
        this.opts.logger?.error('snapshot listener failed', { error: (err as Error).message });
      }
    }
    if (origin === 'source') this.persist(next);
    return next;
  }

  /** Queues a list from the source; builds after the debounce. */
  offer(list: SourceConfigMap[]): void {
    this.pending = list;
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      const l = this.pending;
      this.pending = undefined;
      if (l) this.apply(l, 'source');
    }, this.opts.debounceMs ?? 50);
  }

  /**
   * Loads `<stateDir>/snapshot.json` if present and serves it (origin `disk`) unless the
   * source has already delivered.
   * @returns true if a persisted snapshot was loaded.
   */
  async loadPersisted(): Promise<boolean> {
    if (!this.opts.stateDir) return false;
    let text: string;
    try {
      text = await readFile(join(this.opts.stateDir, 'snapshot.json'), 'utf8');
    } catch {
      return false;
    }
    try {
      const st = JSON.parse(text) as PersistedState;
      if (st.format !== 'kea-policy-snapshot/v1' || !Array.isArray(st.configMaps)) throw new Error('unknown format');
      if (this.origin === 'source') return false;
      this.apply(st.configMaps, 'disk');
      this.opts.logger?.info('serving persisted config snapshot', { savedAt: st.savedAt });
      return true;
    } catch (err) {
      this.opts.logger?.error('persisted snapshot unreadable; ignoring', { error: (err as Error).message });
      return false;
    }
  }

  /** Starts a source: persisted state first, then live updates. */
  async start(source: ConfigSource): Promise<void> {
    this.source = source;
    await this.loadPersisted();
    await source.start((list) => this.offer(list));
  }

  /** Waits until all queued persistence writes are done (tests, shutdown). */
  async flush(): Promise<void> {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
      const l = this.pending;
      this.pending = undefined;
      if (l) this.apply(l, 'source');
    }
    await this.persistChain;
  }

  async stop(): Promise<void> {
    await this.source?.stop();
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    await this.persistChain;
  }

  private persist(s: Snapshot): void {
    const dir = this.opts.stateDir;
    if (!dir) return;
    const state: PersistedState = { format: 'kea-policy-snapshot/v1', savedAt: new Date().toISOString(), configMaps: [...s.source] };
    this.persistChain = this.persistChain.then(async () => {
      const tmp = join(dir, `.snapshot.json.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
      try {
        await mkdir(dir, { recursive: true });
        const fh = await open(tmp, 'w', 0o600);
        try {
          await fh.writeFile(JSON.stringify(state));
          await fh.sync();
        } finally {
          await fh.close();
        }
        await rename(tmp, join(dir, 'snapshot.json'));
      } catch (err) {
        await unlink(tmp).catch(() => undefined);
        this.opts.logger?.error('persisting config snapshot failed', { error: (err as Error).message });
      }
    });
  }
}
