/**
 * Configuration sources: where the policy server's ConfigMaps come from.
 *
 * A source pushes the complete current list of relevant ConfigMaps (never a delta) to its
 * listener whenever something changes. The snapshot store debounces, builds and swaps.
 */
import type { SourceConfigMap } from '../snapshot/build.js';

/** Liveness of a source, for /readyz and /metrics. */
export interface SourceHealth {
  /** Source kind: `kubernetes` or `file`. */
  kind: string;
  /** True while the source believes it is in sync (watch open, directory readable). */
  connected: boolean;
  /** ms since epoch of the last full list or event seen; 0 = never. */
  lastSyncAt: number;
  /** Last error message, if the most recent attempt failed. */
  lastError?: string;
  /** Restarts after errors since start. */
  restarts: number;
}

/** A configuration source. */
export interface ConfigSource {
  /**
   * Starts delivering. `onList` gets the complete list after the first successful sync and
   * after every change. Resolves after the first attempt (successful or not): a source that
   * cannot reach its backend keeps retrying with backoff in the background.
   */
  start(onList: (list: SourceConfigMap[]) => void): Promise<void>;
  stop(): Promise<void>;
  health(): SourceHealth;
}
