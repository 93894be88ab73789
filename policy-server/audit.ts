/**
 * Audit log of the data path.
 *
 * Every request through the data path produces, tied by `requestId`:
 * - a start record (`message: "request start"`, level debug: only built when debug is on);
 * - an end record (`message: "request end"`, level info): the audit record, with requestId,
 *   user, operation, service, revision, method, path, status, latencyMs, cache, outcome and
 *   validation failures. It never contains tokens, cookies, bodies or query strings.
 * Records are JSON lines on stdout via the shared winston logger (`lib/log.ts`). The last
 * `ringSize` end records per service are kept in memory for `GET /logs/{ns}/{name}`.
 */
import { createLogger, isLevelEnabled, writeRecord, type Logger } from '../lib/log.js';
import type { FieldError } from './datapath/problem.js';

/** The audit (end) record. */
export interface AuditRecord {
  requestId: string;
  /** Subject of the caller, or null for anonymous. */
  user: string | null;
  /** `<ns>/<name>/<operationId>`. */
  operation: string;
  /** `<ns>/<name>`. */
  service: string;
  /** `x-kea-revision` response header of the upstream, when it sent one. */
  revision?: string;
  method: string;
  /** Request path without the query string. */
  path: string;
  status: number;
  /** Time from request start to response end, ms. */
  latencyMs: number;
  /** `HIT` | `MISS` for cacheable operations. */
  cache?: 'HIT' | 'MISS';
  /** Why the request ended the way it did (also the metrics outcome label). */
  outcome: string;
  validation?: FieldError[];
  /** Short error text for upstream failures. */
  error?: string;
  /** ISO 8601 time of the end record. */
  time?: string;
}

/** Options of {@link AuditLog}. */
export interface AuditOptions {
  logger?: Logger;
  /** Records kept per service for /logs (default 200). */
  ringSize?: number;
}

class Ring {
  private readonly buf: AuditRecord[];
  private next = 0;
  private full = false;
  constructor(size: number) {
    this.buf = new Array<AuditRecord>(size);
  }
  push(r: AuditRecord): void {
    this.buf[this.next] = r;
    this.next = (this.next + 1) % this.buf.length;
    if (this.next === 0) this.full = true;
  }
  /** Newest first. */
  list(limit: number): AuditRecord[] {
    const out: AuditRecord[] = [];
    const n = this.full ? this.buf.length : this.next;
    for (let i = 1; i <= n && out.length < limit; i++) out.push(this.buf[(this.next - i + this.buf.length) % this.buf.length]);
    return out;
  }
}

/** Writes audit records and keeps the per-service rings. */
export class AuditLog {
  readonly logger: Logger;
  private readonly rings = new Map<string, Ring>();
  private readonly ringSize: number;

  constructor(opts: AuditOptions = {}) {
    this.logger = opts.logger ?? createLogger('policy-server');
    this.ringSize = opts.ringSize ?? 200;
  }

  /** True when start records should be built. */
  get debug(): boolean {
    return isLevelEnabled(this.logger, 'debug');
  }

  /** Logs the start record (call only when {@link AuditLog.debug}). */
  start(requestId: string, method: string, path: string, operation: string | undefined): void {
    writeRecord(this.logger, 'debug', 'request start', { requestId, method, path, operation });
  }

  /** Logs the end (audit) record and keeps it in the service's ring. */
  end(r: AuditRecord): void {
    let ring = this.rings.get(r.service);
    if (!ring) this.rings.set(r.service, (ring = new Ring(this.ringSize)));
    ring.push(r);
    if (isLevelEnabled(this.logger, 'info')) writeRecord(this.logger, 'info', 'request end', r);
  }

  /** The newest `limit` records of a service, newest first. */
  recent(serviceId: string, limit = 100): AuditRecord[] {
    return this.rings.get(serviceId)?.list(Math.max(0, Math.min(limit, this.ringSize))) ?? [];
  }
}
