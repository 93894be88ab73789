/**
 * Shared structured logger factory (winston), used by the controller and the policy server.
 *
 * Every record is one JSON object per line on stdout (Fluentd / Filebeat ingest it as is):
 * `{"level":"info","message":"...","component":"policy-server",...meta,"time":"<ISO 8601>"}`.
 * The level comes from `KEA_LOG_LEVEL` (default `info`; one of winston's npm levels:
 * error, warn, info, http, verbose, debug, silly). `KEA_LOG_LEVEL=silent` disables output.
 *
 * Cost: winston's default `combine(timestamp(), json())` pipeline and its Console transport
 * measured ~13 µs per record here; this factory uses one lean format (a single
 * `JSON.stringify`) and a transport that coalesces records into one `write` per
 * {@link FLUSH_MS} (or per 64 KiB), ~2 µs per record and a few syscalls per second under
 * load. Records are flushed synchronously on process exit and by {@link flushLogs}; a hard
 * crash can lose at most the last {@link FLUSH_MS} of records.
 *
 * Hot paths must check {@link isLevelEnabled} (or `logger.isDebugEnabled()`) before building
 * the metadata object, so a disabled level costs one comparison.
 */
import winston from 'winston';

/** The logger type returned by {@link createLogger}. */
export type Logger = winston.Logger;

const MESSAGE = Symbol.for('message');
/** Longest time a record waits in the buffer, ms. */
export const FLUSH_MS = 20;

const levelFromEnv = (): string => {
  const l = (process.env.KEA_LOG_LEVEL ?? 'info').toLowerCase();
  return l in winston.config.npm.levels || l === 'silent' ? l : 'info';
};

let isoMs = NaN;
let isoText = '';
/**
 * The current time as ISO 8601 (UTC, ms precision), formatted once per millisecond: at a record
 * per request, most records of one millisecond share the string (`toISOString` costs ~0.36 µs).
 */
function isoNow(): string {
  const ms = Date.now();
  if (ms !== isoMs) {
    isoMs = ms;
    isoText = new Date(ms).toISOString();
  }
  return isoText;
}

/** One JSON.stringify per record; adds `time` (ISO 8601, UTC). */
const leanJson = winston.format((info) => {
  const rec = info as Record<string | symbol, unknown>;
  rec.time = isoNow();
  try {
    rec[MESSAGE] = JSON.stringify(info);
  } catch (err) {
    // Circular or BigInt metadata: keep the record, drop the metadata.
    rec[MESSAGE] = JSON.stringify({ level: info.level, message: String(info.message), time: rec.time, logError: String(err) });
  }
  return info;
});

/** The one format instance every logger of this module uses. */
const leanFormat = leanJson();

/**
 * Writes formatted records to a stream, coalescing all records produced in one event-loop
 * turn into a single write.
 */
// Runtime export is `winston.Transport`; its type is declared as `winston.transport`.
const TransportBase = (winston as unknown as { Transport: typeof import('winston-transport') }).Transport;

class BatchingStreamTransport extends TransportBase {
  private buf: string[] = [];
  private bytes = 0;
  private scheduled = false;
  private readonly flushBound = (): void => this.flush();

  private readonly out: NodeJS.WritableStream;

  constructor(out: NodeJS.WritableStream) {
    super();
    this.out = out;
    flushers.add(this.flushBound);
  }

  override log(info: Record<string | symbol, unknown>, next: () => void): void {
    const line = info[MESSAGE] as string;
    this.buf.push(line);
    this.bytes += line.length;
    if (this.bytes > 65536) this.flush();
    else if (!this.scheduled) {
      this.scheduled = true;
      setTimeout(this.flushBound, FLUSH_MS).unref();
    }
    next();
  }

  /** Writes everything buffered now. */
  flush(): void {
    this.scheduled = false;
    if (this.buf.length === 0) return;
    const chunk = this.buf.join('\n') + '\n';
    this.buf = [];
    this.bytes = 0;
    this.out.write(chunk);
  }

  override close(): void {
    this.flush();
    flushers.delete(this.flushBound);
  }
}

const flushers = new Set<() => void>();
let exitHookInstalled = false;

/** Flushes every logger's buffered records now (synchronous for stdout files and pipes). */
export function flushLogs(): void {
  for (const f of flushers) f();
}

/**
 * Creates a JSON logger tagged with `component`.
 *
 * @param component - short name that appears in every record (e.g. `policy-server`, `controller`).
 * @param opts.level - minimum level; defaults to `KEA_LOG_LEVEL` or `info`. `silent` disables.
 * @param opts.stream - write to this stream instead of stdout (tests capture records this way).
 * @returns a winston logger; child loggers (`logger.child({requestId})`) carry extra fields.
 */
export function createLogger(component: string, opts: { level?: string; stream?: NodeJS.WritableStream } = {}): Logger {
  const level = opts.level ?? levelFromEnv();
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.once('exit', flushLogs);
  }
  return winston.createLogger({
    level: level === 'silent' ? 'error' : level,
    silent: level === 'silent',
    defaultMeta: { component },
    format: leanFormat,
    transports: [new BatchingStreamTransport(opts.stream ?? process.stdout)],
  });
}

/**
 * Emits one record like `logger.log(level, message, meta)` (same fields: defaultMeta, meta,
 * `level`, `message`, `time`; same transport, same order with other records), but skips
 * winston's per-record object-mode stream pipeline when the logger's only transport is this
 * module's batching transport: for a record per request (the policy server's audit record)
 * that pipeline is a measurable share of the request (profiled). Falls back to `logger.log` otherwise.
 * The caller checks the level first ({@link isLevelEnabled}).
 */
export function writeRecord(logger: Logger, level: string, message: string, meta: object): void {
  const batch = batchTransport(logger);
  if (!batch) {
    logger.log(level, message, meta);
    return;
  }
  const rec: Record<string | symbol, unknown> = { ...logger.defaultMeta, ...meta, level, message };
  leanFormat.transform(rec as winston.Logform.TransformableInfo);
  batch.log(rec, noop);
}

const noop = (): void => undefined;

/**
 * The logger's only transport when it is this module's batching transport with the lean
 * format, else undefined. Reads the logger's pipe list directly: winston's `transports` getter
 * allocates two arrays per read, and `isLevelEnabled` reads it three times (a heap sampling
 * profile of the policy server put ~1 KB per request on these level checks).
 */
function batchTransport(logger: Logger): BatchingStreamTransport | undefined {
  const pipes = (logger as unknown as { _readableState: { pipes: unknown } })._readableState.pipes;
  const only = Array.isArray(pipes) ? (pipes.length === 1 ? pipes[0] : undefined) : pipes;
  return only instanceof BatchingStreamTransport && logger.format === leanFormat ? only : undefined;
}

/**
 * True when `logger` would emit a record at `level` (cheap guard for hot paths): the same answer
 * as winston's `logger.isLevelEnabled(level)`, without its allocations when the logger is one of
 * {@link createLogger}'s (one batching transport without a level of its own).
 */
export function isLevelEnabled(logger: Logger, level: string): boolean {
  if (logger.silent) return false;
  const batch = batchTransport(logger);
  if (!batch || batch.level !== undefined) return logger.isLevelEnabled(level);
  const want = logger.levels[level];
  const have = logger.levels[logger.level];
  return want !== undefined && have !== undefined && have >= want;
}
