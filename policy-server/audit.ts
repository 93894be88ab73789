/**
 * Audit log of the data path.
 *
 * Every request through the data path produces, tied by `requestId`:
 * - a start record (`message: "request start"`, level debug: only built when debug is on);
 * - an end record (`message: "request end"`, level info): the audit record, with requestId,
 *   user, operation, service, revision, method, path, status, latencyMs, cache, outcome and
 *   validation failures. It never contains tokens, cookies, bodies or query strings.
 * Records are JSON lines on stdout via the shared winston logger (`lib/log.ts`). The last
 * `ringSize` end records per service, and at most `ringBytes` of them, are kept in memory for
 * `GET /logs/{ns}/{name}`; with a shared store they also go to Redis for every replica's
 * `/logs` (shared-audit.ts, through {@link AuditOptions.sink}).
 *
 * Every record is bounded, whatever the request: `validation` keeps the first
 * {@link MAX_AUDIT_VALIDATION} failures (and `validationCount` counts all), and each string
 * an attacker can make long (path, user, pointers, messages, error) is clipped. A 1 MiB body
 * failing in 90,000 places once made one 5.5 MB audit line and a ring holding 200 of them.
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
  /** The first {@link MAX_AUDIT_VALIDATION} validation failures. */
  validation?: FieldError[];
  /** Validation failures found in all (set when `validation` is). */
  validationCount?: number;
  /** Short error text for upstream failures. */
  error?: string;
  /** ISO 8601 time of the end record. */
  time?: string;
}

/** Where end records go besides the ring and the log (shared-audit.ts: Redis). Must not block or throw. */
export interface AuditSink {
  add(record: AuditRecord): void;
}

/** Options of {@link AuditLog}. */
export interface AuditOptions {
  logger?: Logger;
  /** Also hands every (bounded) end record to this sink (shared-audit.ts `SharedAuditLog`, with `--redis-url`). */
  sink?: AuditSink;
  /** Records kept per service for /logs (default 200). */
  ringSize?: number;
  /** Most bytes of records kept per service for /logs, as {@link auditRecordBytes} counts them (default 256 KiB). */
  ringBytes?: number;
}

/** Most validation failures one audit record lists. */
export const MAX_AUDIT_VALIDATION = 20;
/** Longest pointer, message, user or error text in an audit record, characters. */
export const MAX_AUDIT_FIELD_CHARS = 256;
/** Longest request path in an audit record, characters. */
export const MAX_AUDIT_PATH_CHARS = 2048;

const clip = (s: string, max: number): string => (s.length > max ? `${s.slice(0, max - 1)}…` : s);

/**
 * The size of a record's JSON line, bytes, estimated from its string lengths (exact for
 * ASCII text without escapes; the ring's bound, not a serializer). O(fields), no allocation.
 */
export function auditRecordBytes(r: AuditRecord): number {
  // Keys, quotes, separators and the numbers of a record with every field: < 240 bytes.
  let n = 240 + r.requestId.length + (r.user?.length ?? 4) + r.operation.length + r.service.length + r.method.length + r.path.length + r.outcome.length;
  if (r.revision) n += r.revision.length;
  if (r.error) n += r.error.length;
  if (r.time) n += r.time.length;
  if (r.validation) for (const v of r.validation) n += 40 + v.in.length + v.pointer.length + v.message.length;
  return n;
}

/** The record with its unbounded fields bounded (the same object when nothing needs it). */
function bounded(r: AuditRecord): AuditRecord {
  const v = r.validation;
  const long = (s: string | null | undefined, max: number) => s != null && s.length > max;
  const clipValidation =
    v !== undefined && (v.length > MAX_AUDIT_VALIDATION || v.some((e) => long(e.pointer, MAX_AUDIT_FIELD_CHARS) || long(e.message, MAX_AUDIT_FIELD_CHARS)));
  if (
    !clipValidation &&
    (v === undefined || r.validationCount !== undefined) &&
    !long(r.path, MAX_AUDIT_PATH_CHARS) &&
    !long(r.user, MAX_AUDIT_FIELD_CHARS) &&
    !long(r.error, MAX_AUDIT_FIELD_CHARS)
  ) {
    return r;
  }
  const out: AuditRecord = { ...r, path: clip(r.path, MAX_AUDIT_PATH_CHARS), user: r.user === null ? null : clip(r.user, MAX_AUDIT_FIELD_CHARS) };
  if (r.error !== undefined) out.error = clip(r.error, MAX_AUDIT_FIELD_CHARS);
  if (v !== undefined) {
    // A FieldErrorList (datapath/params.ts) carries the count of every failure in `total`.
    out.validationCount = r.validationCount ?? (v as { total?: number }).total ?? v.length;
    out.validation = clipValidation
      ? v
          .slice(0, MAX_AUDIT_VALIDATION)
          .map((e) => ({ in: e.in, pointer: clip(e.pointer, MAX_AUDIT_FIELD_CHARS), message: clip(e.message, MAX_AUDIT_FIELD_CHARS) }))
      : v;
  }
  return out;
}

/** The newest records of one service, bounded by count and by {@link auditRecordBytes}. */
class Ring {
  private readonly recs: Array<AuditRecord | undefined>;
  private readonly sizes: number[];
  /** Index of the oldest record. */
  private head = 0;
  private count = 0;
  /** Sum of the kept records' sizes, bytes. */
  bytes = 0;
  constructor(
    private readonly capacity: number,
    private readonly maxBytes: number,
  ) {
    this.recs = new Array<AuditRecord | undefined>(capacity);
    this.sizes = new Array<number>(capacity).fill(0);
  }
  push(r: AuditRecord, size: number): void {
    if (size > this.maxBytes) return; // cannot happen with the default bounds; never exceed them
    while (this.count > 0 && (this.count === this.capacity || this.bytes + size > this.maxBytes)) {
      this.bytes -= this.sizes[this.head];
      this.recs[this.head] = undefined;
      this.head = (this.head + 1) % this.capacity;
      this.count--;
    }
    const i = (this.head + this.count) % this.capacity;
    this.recs[i] = r;
    this.sizes[i] = size;
    this.count++;
    this.bytes += size;
  }
  /** Newest first. */
  list(limit: number): AuditRecord[] {
    const out: AuditRecord[] = [];
    for (let k = 1; k <= this.count && out.length < limit; k++) out.push(this.recs[(this.head + this.count - k) % this.capacity]!);
    return out;
  }
}

/** Writes audit records and keeps the per-service rings. */
export class AuditLog {
  readonly logger: Logger;
  private readonly rings = new Map<string, Ring>();
  private readonly ringSize: number;
  private readonly ringBytes: number;
  private readonly sink: AuditSink | undefined;

  constructor(opts: AuditOptions = {}) {
    this.logger = opts.logger ?? createLogger('policy-server');
    this.sink = opts.sink;
    this.ringSize = Math.max(1, opts.ringSize ?? 200);
    this.ringBytes = opts.ringBytes ?? 256 * 1024;
  }

  /** True when start records should be built. */
  get debug(): boolean {
    return isLevelEnabled(this.logger, 'debug');
  }

  /** Logs the start record (call only when {@link AuditLog.debug}). */
  start(requestId: string, method: string, path: string, operation: string | undefined): void {
    writeRecord(this.logger, 'debug', 'request start', { requestId, method, path, operation });
  }

  /** Logs the end (audit) record, bounded (see the module comment), and keeps it in the service's ring. */
  end(record: AuditRecord): void {
    const r = bounded(record);
    let ring = this.rings.get(r.service);
    if (!ring) this.rings.set(r.service, (ring = new Ring(this.ringSize, this.ringBytes)));
    ring.push(r, auditRecordBytes(r));
    this.sink?.add(r);
    if (isLevelEnabled(this.logger, 'info')) writeRecord(this.logger, 'info', 'request end', r);
  }

  /** Bytes of records kept for a service ({@link auditRecordBytes} summed); at most `ringBytes`. */
  ringBytesOf(serviceId: string): number {
    return this.rings.get(serviceId)?.bytes ?? 0;
  }

  /** The newest `limit` records of a service, newest first. */
  recent(serviceId: string, limit = 100): AuditRecord[] {
    return this.rings.get(serviceId)?.list(Math.max(0, Math.min(limit, this.ringSize))) ?? [];
  }
}
