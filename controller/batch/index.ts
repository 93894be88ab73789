/**
 * Stage `batch`.
 *
 * Takes in: change signals (`trigger()`), typically one per informer event.
 * Gives out: calls of `run()` (which builds one snapshot and reconciles it), coalescing a
 * burst of triggers into a single run: the run starts `debounceMs` after the last trigger,
 * but never later than `maxDelayMs` after the first trigger of the burst. Runs never overlap:
 * a trigger during a run schedules exactly one follow-up run. A failed run is retried with
 * exponential backoff (`retryMs` doubling up to `maxRetryMs`) unless a new trigger comes first.
 */

export interface BatcherOptions {
  /** Quiet time after the last trigger before running, in ms (default 100). */
  debounceMs?: number;
  /** Longest time from the first trigger of a burst to the run, in ms (default 1000). */
  maxDelayMs?: number;
  /** First retry delay after a failed run, in ms (default 500). */
  retryMs?: number;
  /** Maximum retry delay, in ms (default 30 000). */
  maxRetryMs?: number;
  /** Called when a run throws (the batcher retries). */
  onError?: (err: unknown, retryInMs: number) => void;
}

/** Coalesces triggers into non-overlapping runs. */
export class Batcher {
  private readonly run: () => Promise<void>;
  private readonly o: Required<Omit<BatcherOptions, 'onError'>> & Pick<BatcherOptions, 'onError'>;
  private timer?: NodeJS.Timeout;
  private burstStart = 0;
  private running?: Promise<void>;
  private dirty = false;
  private failures = 0;
  private closed = false;
  private idleWaiters: Array<() => void> = [];
  /** Number of runs started (for metrics and tests). */
  runs = 0;
  /** Number of triggers received. */
  triggers = 0;

  constructor(run: () => Promise<void>, opts: BatcherOptions = {}) {
    this.run = run;
    this.o = { debounceMs: 100, maxDelayMs: 1000, retryMs: 500, maxRetryMs: 30_000, ...opts };
  }

  /** Signals a change; schedules a run per the debounce rules. */
  trigger(): void {
    if (this.closed) return;
    this.triggers++;
    this.dirty = true;
    if (this.running) return; // the run's completion reschedules
    this.schedule();
  }

  private schedule(delayOverride?: number): void {
    const now = Date.now();
    if (!this.timer) this.burstStart = now;
    clearTimeout(this.timer);
    const untilMax = Math.max(0, this.burstStart + this.o.maxDelayMs - now);
    const delay = delayOverride ?? Math.min(this.o.debounceMs, untilMax);
    this.timer = setTimeout(() => this.fire(), delay);
  }

  private fire(): void {
    this.timer = undefined;
    if (this.closed || !this.dirty) return this.notifyIdle();
    this.dirty = false;
    this.runs++;
    this.running = (async () => {
      try {
        await this.run();
        this.failures = 0;
      } catch (err) {
        this.failures++;
        const delay = Math.min(this.o.maxRetryMs, this.o.retryMs * 2 ** (this.failures - 1));
        this.o.onError?.(err, delay);
        this.dirty = true;
        this.running = undefined;
        if (!this.closed) this.schedule(delay);
        return;
      }
      this.running = undefined;
      if (this.dirty && !this.closed) this.schedule();
      else this.notifyIdle();
    })();
  }

  private notifyIdle(): void {
    if (this.running || this.timer || this.dirty) return;
    for (const w of this.idleWaiters.splice(0)) w();
  }

  /** Resolves when no run is pending or in progress. */
  idle(): Promise<void> {
    if (!this.running && !this.timer && !this.dirty) return Promise.resolve();
    return new Promise((r) => this.idleWaiters.push(r));
  }

  /** Stops scheduling; resolves when an in-flight run finishes. */
  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.running;
  }
}
