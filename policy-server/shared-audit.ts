/**
 * The audit records of every replica, in Redis (issue 13): what `GET /logs/{ns}/{name}` reads
 * when the policy server runs as several replicas (and workers) sharing one Redis
 * (policy-server/redis.ts `SharedStore`).
 *
 * Each process keeps its own ring (audit.ts) as before, and also hands every end record to a
 * {@link SharedAuditLog}, which writes it to a capped Redis list per service:
 *
 * - key `kea:a:<service id>` ({@link auditKey}); value: one JSON record per element, the newest
 *   at the head, each with its `time` (ISO 8601), the `replica` that wrote it (the pod name,
 *   `HOSTNAME`) and, with `--workers n`, its `worker` slot;
 * - bounded: `LTRIM` to the ring size (default 200 records per service, like the ring; one
 *   record is at most ~15 KB, audit.ts bounds every field) and `PEXPIRE` (default 24 h), so
 *   the list of a service that gets no traffic, or no longer exists, goes away;
 * - written off the request path: {@link SharedAuditLog.add} only appends to an in-memory
 *   buffer; a flush every {@link FLUSH_MS} ms, or as soon as {@link FLUSH_RECORDS} records wait,
 *   writes them in one `MULTI` (`LPUSH` + `LTRIM` + `PEXPIRE` per service). One flush at a
 *   time; no request ever waits for Redis;
 * - while the store is unavailable (`SharedStore.available`) nothing is sent; the buffer keeps
 *   the newest {@link SharedAuditOptions.maxBuffered} records (default 1000) and drops the
 *   oldest, counted by `kea_audit_shared_dropped_total`; a short outage thus loses nothing. A
 *   failed flush (error or `--redis-timeout-ms`) drops its batch (counted, and reported to the
 *   store: `kea_redis_errors_total{op="audit-write"}`) rather than risk writing it twice.
 *
 * Reading ({@link SharedAuditLog.recent}): this process's buffer is flushed first (a process
 * reads its own writes), then one `LRANGE`, bounded by `--redis-timeout-ms`. The records are
 * those of every replica that flushed: another replica's last ~{@link FLUSH_MS} ms may be
 * missing. Only records whose `service` is the one asked for are returned (a record never
 * crosses services, whatever is in the key), newest first by `time`. Each record is written
 * once (a failed batch is not retried), so the list holds no duplicates, and the caller reads
 * Redis instead of, never as well as, the local rings.
 * Errors (unavailable, failed or slow) throw {@link SharedAuditUnavailable}: the caller answers
 * from its local view instead (management.ts).
 *
 * Not for Redis Cluster (like the rest of the shared store's keys, not tested there).
 */
import { hostname } from 'node:os';
import client from 'prom-client';
import type { AuditRecord, AuditSink } from './audit.js';
import type { SharedStore } from './redis.js';

/** Prefix of the per-service lists: `kea:a:` + the service id (`<ns>/<name>`). */
export const AUDIT_PREFIX = 'kea:a:';
/** Longest wait of a record in the buffer before it is written, ms. */
export const FLUSH_MS = 100;
/** Records waiting that trigger a flush at once (and the most one `MULTI` carries). */
export const FLUSH_RECORDS = 100;

/** The Redis list of a service's audit records. */
export function auditKey(serviceId: string): string {
  return `${AUDIT_PREFIX}${serviceId}`;
}

/** An audit record as kept in Redis: with its end time and the process that wrote it. */
export interface SharedAuditRecord extends AuditRecord {
  time: string;
  /** The pod (`HOSTNAME`) that served the request. */
  replica?: string;
  /** The worker slot (`--workers n`), when there are workers. */
  worker?: number;
}

/** Options of {@link SharedAuditLog}. */
export interface SharedAuditOptions {
  /** Records kept per service (the list's `LTRIM` bound; default 200, like the ring). */
  maxRecords?: number;
  /** Expiry of a service's list after its last write, ms (default 24 h). */
  ttlMs?: number;
  /** Records buffered at most while Redis is unavailable or a flush runs (default 1000); the oldest are dropped. */
  maxBuffered?: number;
  /** Name of this replica in the records (default `HOSTNAME`, else the host name). */
  replica?: string;
  /** Worker slot of this process (`--workers n`). */
  worker?: number;
}

/** {@link SharedAuditLog.recent} could not read Redis; `message` says why. */
export class SharedAuditUnavailable extends Error {}

/** What the shared audit log needs of the shared store. */
export type SharedAuditStore = Pick<SharedStore, 'client' | 'available' | 'failed'>;

interface Pending {
  record: AuditRecord;
  /** Date.now() when it was added (its `time` when the record has none). */
  at: number;
}

/** Writes the audit records to Redis in batches and reads every replica's back (see the module doc). */
export class SharedAuditLog implements AuditSink {
  readonly maxRecords: number;
  private readonly ttlMs: number;
  private readonly maxBuffered: number;
  private readonly replica: string;
  private readonly worker: number | undefined;
  private buf: Pending[] = [];
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> | undefined;
  private closed = false;
  /** Records dropped (buffer full, or their flush failed) since start. */
  dropped = 0;

  constructor(
    private readonly store: SharedAuditStore,
    opts: SharedAuditOptions = {},
  ) {
    this.maxRecords = Math.max(1, opts.maxRecords ?? 200);
    this.ttlMs = Math.max(1, opts.ttlMs ?? 24 * 3600_000);
    this.maxBuffered = Math.max(1, opts.maxBuffered ?? 1000);
    this.replica = opts.replica ?? (process.env.HOSTNAME || hostname());
    this.worker = opts.worker;
  }

  /**
   * Registers the counter `kea_audit_shared_dropped_total` ({@link SharedAuditLog.dropped}, read
   * at scrape time) in a registry (metrics.ts `Metrics.registry`). Call once per registry.
   */
  registerMetrics(registry: client.Registry): void {
    const dropped = (): number => this.dropped;
    new client.Counter({
      name: 'kea_audit_shared_dropped_total',
      help: 'Audit records not written to the shared store (Redis): buffer full while it was unavailable, or a failed write',
      registers: [registry],
      collect() {
        this.reset();
        this.inc(dropped());
      },
    });
  }

  /** Buffers a record for the next flush (never waits, never throws). Called by audit.ts `AuditLog.end`. */
  add(record: AuditRecord): void {
    if (this.closed) return;
    if (this.buf.length >= this.maxBuffered) {
      this.buf.shift();
      this.dropped++;
    }
    this.buf.push({ record, at: Date.now() });
    if (this.buf.length >= FLUSH_RECORDS && !this.flushing && this.store.available()) {
      if (this.timer) clearTimeout(this.timer);
      this.timer = undefined;
      void this.flush();
    } else this.schedule();
  }

  /** Records waiting to be written. */
  get buffered(): number {
    return this.buf.length;
  }

  private schedule(): void {
    if (this.timer !== undefined || this.closed) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.flush();
    }, FLUSH_MS);
    this.timer.unref();
  }

  /**
   * Writes what is buffered (batches of {@link FLUSH_RECORDS}) unless the store is unavailable;
   * resolves when done (never rejects). A flush already running is waited for first.
   */
  async flush(): Promise<void> {
    while (this.flushing) await this.flushing;
    if (this.buf.length === 0) return;
    if (!this.store.available()) {
      this.schedule(); // keep them until Redis answers again (bounded by maxBuffered)
      return;
    }
    const run = this.write();
    this.flushing = run;
    try {
      await run;
    } finally {
      this.flushing = undefined;
    }
    if (this.buf.length > 0) this.schedule();
  }

  private async write(): Promise<void> {
    while (this.buf.length > 0 && this.store.available()) {
      const batch = this.buf.splice(0, FLUSH_RECORDS);
      const byService = new Map<string, string[]>();
      for (const p of batch) {
        const r: SharedAuditRecord = {
          ...p.record,
          time: p.record.time ?? new Date(p.at).toISOString(),
          replica: this.replica,
          ...(this.worker !== undefined ? { worker: this.worker } : {}),
        };
        const list = byService.get(r.service);
        if (list) list.push(JSON.stringify(r));
        else byService.set(r.service, [JSON.stringify(r)]);
      }
      const m = this.store.client.multi();
      for (const [service, values] of byService) {
        const key = auditKey(service);
        // LPUSH a b c leaves c (the newest) at the head.
        m.lpush(key, ...values)
          .ltrim(key, 0, this.maxRecords - 1)
          .pexpire(key, this.ttlMs);
      }
      try {
        const results = await m.exec();
        const failed = results?.find(([err]) => err);
        if (!results || failed) throw failed?.[0] ?? new Error('transaction aborted');
      } catch (err) {
        this.dropped += batch.length;
        this.store.failed('audit-write', err);
        return;
      }
    }
  }

  /**
   * The newest `limit` records of a service from every replica, newest first by `time` (see the
   * module doc). Reads the whole list (at most {@link SharedAuditOptions.maxRecords}) in one `LRANGE`.
   * @param serviceId - `<ns>/<name>`; only records of this service are returned.
   * @param limit - at most this many (and never more than the list holds).
   * @throws SharedAuditUnavailable when Redis is unavailable, fails or is slower than the timeout.
   */
  async recent(serviceId: string, limit: number): Promise<SharedAuditRecord[]> {
    if (!this.store.available()) throw new SharedAuditUnavailable('the shared store (Redis) is unavailable');
    await this.flush();
    // A flush that just failed marked the store down: do not wait a second timeout.
    if (!this.store.available()) throw new SharedAuditUnavailable('the shared store (Redis) is unavailable');
    let raw: string[];
    try {
      // The whole list (≤ maxRecords): it is in flush order, and the newest by time may be further in.
      raw = await this.store.client.lrange(auditKey(serviceId), 0, this.maxRecords - 1);
    } catch (err) {
      this.store.failed('audit-read', err);
      throw new SharedAuditUnavailable(`the shared store (Redis) did not answer: ${(err as Error).message}`);
    }
    const out: SharedAuditRecord[] = [];
    for (const s of raw) {
      let r: SharedAuditRecord;
      try {
        r = JSON.parse(s) as SharedAuditRecord;
      } catch {
        continue;
      }
      if (r && typeof r === 'object' && r.service === serviceId && typeof r.requestId === 'string') out.push(r);
    }
    // Replicas flush in batches: order by end time (stable for equal times).
    out.sort((x, y) => (x.time === y.time ? 0 : String(y.time) < String(x.time) ? -1 : 1));
    return out.slice(0, Math.max(0, limit));
  }

  /** Stops the timer and writes what is buffered (when the store is available). Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    await this.flush();
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }
}
