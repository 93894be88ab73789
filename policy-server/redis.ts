/**
 * The policy server's shared store: one Redis connection per process (per worker with
 * `--workers n`), used by the data path's rate limits (datapath/steps/rate-limit.ts, counters
 * `kea:rl:*`) and the response cache's second level (datapath/cache.ts), plus one for pub/sub
 * once something subscribes (the cache's purges, datapath/shared-cache.ts).
 *
 * Takes in: `--redis-url` / `KEA_REDIS_URL` (`redis://[user:password@]host:port[/db]`, or
 * `rediss://` for TLS: Node's default CAs plus `NODE_EXTRA_CA_CERTS`), the password from the URL
 * or `--redis-password`'s variable `KEA_REDIS_PASSWORD` (which wins), and `--redis-timeout-ms` /
 * `KEA_REDIS_TIMEOUT_MS` (default 50): the longest any one call may take.
 *
 * Gives out: a {@link SharedStore}, the ioredis client set up so that no request of the data
 * path ever waits for Redis longer than the timeout:
 * - `enableOfflineQueue: false`: while disconnected a call fails at once instead of queueing;
 * - `commandTimeout` = the timeout: a slow Redis fails the call after that many ms;
 * - `maxRetriesPerRequest: 0`, `autoResendUnfulfilledCommands: false`: a call cut by a lost
 *   connection fails at once and is never replayed later (a replayed counter increment would
 *   count a request twice);
 * - reconnects forever with exponential backoff, 50 ms doubling to 2 s, plus up to 100 ms of
 *   jitter (so a restarted Redis is used again within about 2 s);
 * - TLS for `rediss://` (ioredis: `tls: true`);
 * - auto-pipelining: the calls of one event-loop turn are written together.
 *
 * Availability ({@link SharedStore.available}) is this process's view: false from a lost
 * connection or a failed or slow call ({@link SharedStore.failed}) until the connection is
 * ready and a `PING` answers within the timeout (probed every {@link PROBE_MS} ms). While it is
 * false the callers do not call Redis at all (rate limits: per-process limiters or 503 by their
 * fail mode; the cache: its first level only), so a slow Redis costs at most one timeout per
 * caller and probe period, not one per request. Readiness (`/readyz`) never depends on it.
 *
 * Pub/sub ({@link SharedStore.subscribe}): a second connection, opened on the first
 * subscription (`client.duplicate()`: a connection in subscriber mode takes no other command),
 * used only for `SUBSCRIBE` and the messages that follow, never by a request. It reconnects like
 * the first one and subscribes again on every new connection (`SUBSCRIBE` bounded by
 * {@link SUBSCRIBE_TIMEOUT_MS}, retried every {@link RESUBSCRIBE_MS} ms while it fails); a
 * subscription re-established after a loss is reported to its handler (`resumed`), which must
 * assume it missed messages meanwhile. Its failures are counted as `op="subscribe"`; they do not
 * change {@link SharedStore.available} (the data path does not use that connection).
 *
 * Observability: the metrics `kea_redis_available` (gauge, 1 while available; over `--workers`
 * the minimum) and `kea_redis_errors_total{op}` (failed or timed-out calls by operation, and
 * `op="connection"` for connection errors and lost connections) are read at scrape time through
 * {@link SharedStore.stats} (metrics.ts); one log line per change of state (available →
 * unavailable with the cause, unavailable → available with the outage's length), never one per
 * request.
 */
import { Redis } from 'ioredis';
import type { Logger } from '../lib/log.js';

/** How often an unavailable store checks (PING) whether Redis answers again, ms. */
export const PROBE_MS = 250;
/** First reconnect delay, ms; doubles per attempt up to {@link MAX_RECONNECT_MS}. */
const FIRST_RECONNECT_MS = 50;
/** Longest reconnect delay, ms (plus up to 100 ms of jitter). */
export const MAX_RECONNECT_MS = 2000;
/** TCP connect (and TLS handshake) timeout, ms. */
const CONNECT_TIMEOUT_MS = 2000;
/** Longest a `SUBSCRIBE` may take, ms (never on a request's path). */
export const SUBSCRIBE_TIMEOUT_MS = 2000;
/** Delay before a `SUBSCRIBE` that failed on a live connection is tried again, ms. */
export const RESUBSCRIBE_MS = 1000;

/** What a subscriber of one channel is told ({@link SharedStore.subscribe}). */
export interface ChannelHandlers {
  /**
   * One message published on the channel, its payload as UTF-8 text. Runs on the subscriber
   * connection's event, never on a request's path; a throw is counted (`op="subscribe"`) and
   * ignored.
   */
  message(payload: string): void;
  /**
   * The subscription is in place: after the first `SUBSCRIBE` (`resumed` false) and after each
   * one that follows a lost connection (`resumed` true: messages published while it was lost
   * were missed).
   */
  subscribed(resumed: boolean): void;
}

/** What {@link SharedStore.stats} reports for the metrics. */
export interface SharedStoreStats {
  /** {@link SharedStore.available} now. */
  available: boolean;
  /** Failed or slow calls since start, by operation (`rate-limit`, `cache-get`, `connection`, ...). */
  errors: ReadonlyMap<string, number>;
}

/** The shared state of all policy-server processes (see the module doc). */
export interface SharedStore {
  /** The ioredis client: `enableOfflineQueue` false, `commandTimeout` = the timeout. */
  readonly client: Redis;
  /** The per-call timeout, ms (`--redis-timeout-ms`). */
  readonly timeoutMs: number;
  /** true while connected and the last calls succeeded; readiness does NOT depend on it. */
  available(): boolean;
  /**
   * Counts a failed or slow call (metric `kea_redis_errors_total{op}`) and marks the store
   * unavailable until a probe `PING` succeeds; logs one line when this changes the state.
   * @param op - what was called, a small fixed set (`rate-limit`, `cache-get`, `cache-set`).
   * @param err - the error (ioredis' `Command timed out`, a connection error, ...).
   */
  failed(op: string, err: unknown): void;
  /** Counters for the metrics (metrics.ts reads them at scrape time). */
  stats(): SharedStoreStats;
  /**
   * Subscribes to a Redis pub/sub channel (`SUBSCRIBE`) on the store's subscriber connection,
   * opened on the first call, and keeps the subscription across reconnections (see the module
   * doc). Returns at once; the handlers are called when the subscription is in place and per
   * message. One handler per channel (a second call for a channel replaces the first). Does
   * nothing after {@link SharedStore.close}.
   */
  subscribe(channel: string, handlers: ChannelHandlers): void;
  /** Stops probing and closes the connections (calls in flight fail). Idempotent. */
  close(): Promise<void>;
}

/** Options of {@link openSharedStore}. */
export interface SharedStoreOptions {
  /** `redis://` or `rediss://` URL (user and password may be in it). */
  url: string;
  /** The longest one call may take, ms (`commandTimeout`), ≥ 1. */
  timeoutMs: number;
  /** Password (`KEA_REDIS_PASSWORD`); overrides one in the URL. */
  password?: string;
  log: Logger;
}

/** The URL without its password, for logs. */
export function redactRedisUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '(unparsable URL)';
  }
}

/** Reconnect delay after `times` failed attempts, ms: 50 ms doubling to 2 s, plus 0–100 ms jitter. */
export function reconnectDelay(times: number): number {
  return Math.min(FIRST_RECONNECT_MS * 2 ** Math.max(0, times - 1), MAX_RECONNECT_MS) + Math.floor(Math.random() * 100);
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

class RedisSharedStore implements SharedStore {
  readonly client: Redis;
  readonly timeoutMs: number;
  private up = false;
  /** The connection is ready (ioredis `ready` seen, no `close` since). */
  private connected = false;
  /** performance of the state log: when the store became unavailable (ms since epoch), 0 = never up yet. */
  private downSince = 0;
  private everUp = false;
  private probeTimer: NodeJS.Timeout | undefined;
  private probing = false;
  private closed = false;
  private readonly errors = new Map<string, number>();
  private readonly log: Logger;
  private readonly where: string;
  /** The subscriber connection (subscriber mode), opened by the first {@link subscribe}. */
  private subscriber: Redis | undefined;
  private readonly channels = new Map<string, ChannelHandlers>();
  /** Channels subscribed on the current subscriber connection. */
  private readonly live = new Set<string>();
  /** Channels subscribed at least once (a later subscription is `resumed`). */
  private readonly everSubscribed = new Set<string>();
  private subscribeRetry: NodeJS.Timeout | undefined;
  /** The subscription is lost (logged once per loss). */
  private subscriptionLost = false;

  constructor(opts: SharedStoreOptions) {
    if (!/^rediss?:\/\//i.test(opts.url)) throw new Error(`--redis-url must be a redis:// or rediss:// URL, got "${redactRedisUrl(opts.url)}"`);
    if (!(opts.timeoutMs >= 1)) throw new Error(`--redis-timeout-ms must be ≥ 1, got ${opts.timeoutMs}`);
    this.timeoutMs = opts.timeoutMs;
    this.log = opts.log;
    this.where = redactRedisUrl(opts.url);
    this.client = new Redis(opts.url, {
      ...(opts.password !== undefined && opts.password !== '' ? { password: opts.password } : {}),
      enableOfflineQueue: false,
      commandTimeout: opts.timeoutMs,
      maxRetriesPerRequest: 0,
      autoResendUnfulfilledCommands: false,
      connectTimeout: CONNECT_TIMEOUT_MS,
      retryStrategy: reconnectDelay,
      connectionName: 'kea-policy-server',
      // No CLIENT SETINFO at connect (Redis < 7.2 refuses it): one round trip less per handshake.
      disableClientInfo: true,
      // Commands issued in one event-loop turn leave in one write: ~15-20 % less CPU per
      // rate-limit call under concurrent load (measured, docs/adr/0011-rate-limits.md).
      enableAutoPipelining: true,
    });
    this.client.on('ready', () => {
      this.connected = true;
      this.setUp(true, undefined);
    });
    this.client.on('error', (err: unknown) => {
      this.count('connection');
      this.setUp(false, err, 'connection');
    });
    this.client.on('close', () => {
      // A ready connection lost is counted like a connection error.
      if (this.connected && !this.closed) this.count('connection');
      this.connected = false;
      this.setUp(false, new Error('connection closed'), 'connection');
    });
  }

  available(): boolean {
    return this.up;
  }

  failed(op: string, err: unknown): void {
    this.count(op);
    this.setUp(false, err, op);
  }

  stats(): SharedStoreStats {
    return { available: this.up, errors: this.errors };
  }

  subscribe(channel: string, handlers: ChannelHandlers): void {
    if (this.closed) return;
    this.channels.set(channel, handlers);
    if (this.subscriber === undefined) this.openSubscriber();
    else if (this.subscriber.status === 'ready') this.subscribePending();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.up = false;
    if (this.probeTimer) clearTimeout(this.probeTimer);
    this.probeTimer = undefined;
    if (this.subscribeRetry) clearTimeout(this.subscribeRetry);
    this.subscribeRetry = undefined;
    this.client.disconnect(false);
    this.subscriber?.disconnect(false);
    await Promise.resolve();
  }

  /**
   * Opens the subscriber connection: the client's options (URL, password, TLS, reconnect
   * backoff, no offline queue), no automatic re-subscription (done here on each `ready`, so that
   * a resumed subscription is known), a `SUBSCRIBE` timeout of its own.
   */
  private openSubscriber(): void {
    const sub = this.client.duplicate({
      connectionName: 'kea-policy-server-subscriber',
      commandTimeout: SUBSCRIBE_TIMEOUT_MS,
      autoResubscribe: false,
      enableAutoPipelining: false,
    });
    this.subscriber = sub;
    sub.on('ready', () => this.subscribePending());
    sub.on('error', () => this.count('subscribe'));
    sub.on('close', () => {
      if (this.closed) return;
      if (this.live.size > 0) {
        this.count('subscribe');
        if (!this.subscriptionLost) this.log.warn('shared store (Redis) subscription lost: reconnecting', { redis: this.where, channels: [...this.live] });
        this.subscriptionLost = true;
      }
      this.live.clear();
    });
    sub.on('message', (channel: string, payload: string) => {
      try {
        this.channels.get(channel)?.message(payload);
      } catch (err) {
        this.count('subscribe');
        this.log.warn('shared store (Redis) message handler failed', { channel, error: errorText(err) });
      }
    });
  }

  /** Subscribes the channels not yet subscribed on the current connection; retries later on failure. */
  private subscribePending(): void {
    const sub = this.subscriber;
    if (this.closed || sub === undefined || sub.status !== 'ready') return;
    const pending = [...this.channels.keys()].filter((c) => !this.live.has(c));
    if (pending.length === 0) return;
    sub.subscribe(...pending).then(
      () => {
        if (this.closed || sub.status !== 'ready') return;
        if (this.subscriptionLost) this.log.info('shared store (Redis) subscription re-established', { redis: this.where, channels: pending });
        this.subscriptionLost = false;
        for (const c of pending) {
          this.live.add(c);
          const resumed = this.everSubscribed.has(c);
          this.everSubscribed.add(c);
          try {
            this.channels.get(c)?.subscribed(resumed);
          } catch (err) {
            this.count('subscribe');
            this.log.warn('shared store (Redis) subscription handler failed', { channel: c, error: errorText(err) });
          }
        }
      },
      (err: unknown) => {
        this.count('subscribe');
        if (!this.subscriptionLost) this.log.warn('shared store (Redis) subscribe failed: retrying', { redis: this.where, error: errorText(err) });
        this.subscriptionLost = true;
        if (this.subscribeRetry === undefined && !this.closed) {
          this.subscribeRetry = setTimeout(() => {
            this.subscribeRetry = undefined;
            this.subscribePending();
          }, RESUBSCRIBE_MS);
          this.subscribeRetry.unref();
        }
      },
    );
  }

  private count(op: string): void {
    this.errors.set(op, (this.errors.get(op) ?? 0) + 1);
  }

  /** Changes the state; logs only a change. Going down starts the probe. */
  private setUp(up: boolean, err: unknown, op?: string): void {
    if (this.closed) return;
    if (!up) {
      if (this.up || (!this.everUp && this.downSince === 0)) {
        this.log.warn('shared store (Redis) unavailable: rate limits per process, cache first level only', {
          redis: this.where,
          op,
          error: errorText(err),
        });
        this.downSince = Date.now();
      }
      this.up = false;
      this.scheduleProbe();
      return;
    }
    if (this.up) return;
    this.up = true;
    if (!this.everUp) this.log.info('shared store (Redis) available', { redis: this.where });
    else this.log.info('shared store (Redis) available again', { redis: this.where, downMs: Date.now() - this.downSince });
    this.everUp = true;
  }

  /** Checks, every {@link PROBE_MS} ms while unavailable, that a ready connection answers PING in time. */
  private scheduleProbe(): void {
    if (this.probeTimer !== undefined || this.probing || this.closed) return;
    this.probeTimer = setTimeout(() => {
      this.probeTimer = undefined;
      void this.probe();
    }, PROBE_MS);
    this.probeTimer.unref();
  }

  private async probe(): Promise<void> {
    if (this.up || this.closed) return;
    if (!this.connected) {
      // The `ready` event will set the store up; keep looking in case it came and went.
      this.scheduleProbe();
      return;
    }
    this.probing = true;
    try {
      await this.client.ping();
      this.probing = false;
      this.setUp(true, undefined);
    } catch {
      this.probing = false;
      this.scheduleProbe();
    }
  }
}

/**
 * Opens the shared store: connects in the background (the call returns at once; the store is
 * unavailable until the connection is ready) and reconnects forever (see the module doc).
 * @throws Error when `url` is not `redis://` or `rediss://`, or `timeoutMs` < 1.
 */
export function openSharedStore(opts: SharedStoreOptions): SharedStore {
  return new RedisSharedStore(opts);
}
