/**
 * The response cache's second level, in Redis (issue 13): what one policy-server process
 * stored, every replica and worker can answer from.
 *
 * The per-process LRU (datapath/cache.ts `ResponseCache`) stays the first level (L1). A
 * lookup that misses there looks here (L2) before the model is called (steps/cache.ts); a hit
 * here fills L1; a stored answer goes to both (exchange.ts `store`).
 *
 * Keys: `kea:c:<L1 key>`, the very key of L1 (a SHA-256 over the service, operation, the
 * service's `configVersion`, path, query, declared headers, forwarded credentials, body and,
 * for `scope: identity`, the caller: datapath/cache.ts). A new configuration therefore never
 * reads an old revision's answer, and an identity-scoped entry is as private here as in L1.
 * A response with `Vary` is stored as in L1: a {@link VaryIndex} under the first key, the
 * response under its variant key.
 *
 * Value: `<generation>\n<meta JSON>\n<body bytes>`, the meta being `{"s":status,"h":[flat
 * headers],"r":revision,"t":storedAt}` for a response or `{"v":[names]}` for a Vary index.
 * The headers are the backend's as KEA keeps them, without KEA's own (nosniff, CSP), which a
 * hit gets again ({@link servedFromShared}). Written with `SET … PX <the operation's TTL>`
 * only when the body is at most the L1's `maxEntryBytes`; a value read back that is larger,
 * or does not parse, is a miss.
 *
 * Purge without SCAN: every entry carries the generation it was written under, `<all>.<svc>`,
 * the values of `kea:cg` (all services) and `kea:cg:<service id>`. A lookup reads the entry
 * and both generation keys in one `MGET`; an entry whose generation differs is a miss. A purge
 * sets the key to a new random value ({@link SharedCache.purgeService}: one `SET`), which
 * invalidates every entry of the service at once, on every replica; the entries themselves
 * expire with their TTL. A generation key that is missing (never written, or evicted by a
 * `maxmemory` policy) matches no entry, and the next store writes a fresh one: an eviction
 * can lose entries, never bring purged ones back. A store carries the generation its request's
 * lookup read and is dropped when a purge happened meanwhile (the answer may predate it);
 * both checks and the `SET` are one Lua script, atomic in Redis.
 *
 * Purge of the other processes' first levels (pub/sub): the purge script also `PUBLISH`es, on
 * {@link PURGE_CHANNEL}, `{"o":<origin>,"s":<service id>}` (no `s`: all services), in the same
 * script as the generation's `SET`, so a purge Redis acknowledged has been sent to every
 * subscriber. Every process with a second level subscribes ({@link SharedCache.followPurges}, on
 * the shared store's subscriber connection) and purges its own first level for that service, or
 * all of it; its own messages (`o`, random per process) it skips, having purged already. A
 * process whose subscription was lost (Redis restarted, the connection cut) may have missed
 * purges: when it subscribes again it drops its whole first level (one log line, the metric
 * `kea_cache_l1_resyncs_total`). Delivery is at most once and asynchronous: another replica's
 * first level is purged about when the purge is answered, not before (see docs/architecture.md,
 * "Shared state (Redis)"). Nothing of this is on a request's path.
 *
 * Bounded: every call goes through the shared store's client (policy-server/redis.ts: no
 * offline queue, `commandTimeout` = `--redis-timeout-ms`), so a lookup fails at once while
 * Redis is unreachable and after the timeout while it is slow; while the store says it is
 * unavailable (`SharedStore.available`, until its probe answers) Redis is not called at all.
 * A failure or a skipped call is a miss for the caller (never an error answer), counted as
 * `error`; a failed call is also reported to the store (`kea_redis_errors_total{op}`, one log
 * line per state change). Not for Redis Cluster: the keys of one lookup live in different
 * hash slots.
 */
import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { Logger } from '../../lib/log.js';
import type { SharedStore } from '../redis.js';
import type { CachedResponse, VaryIndex } from './cache.js';
import { clientHeaders } from './headers.js';

/** What the second level needs of the shared store (policy-server/redis.ts). */
export type SharedStoreLike = Pick<SharedStore, 'client' | 'available' | 'failed'>;

/** A result counted by `kea_cache_l2_total{result}`. */
export type SharedCacheResult = 'hit' | 'miss' | 'error' | 'store';

/** Prefix of the entry keys: `kea:c:` + the L1 key. */
export const ENTRY_PREFIX = 'kea:c:';
/** The generation key of every service (a purge of the whole cache). */
export const GENERATION_ALL = 'kea:cg';
/** The pub/sub channel of purge notifications (a channel, not a key). */
export const PURGE_CHANNEL = 'kea:c:purge';
/** The generation key of one service. */
export function generationKey(serviceId: string): string {
  return `${GENERATION_ALL}:${serviceId}`;
}

/**
 * KEYS: entry, `kea:cg`, `kea:cg:<svc>`. ARGV: meta + "\n" + body, TTL ms, the generation the
 * lookup read ('' = any), a fresh generation for a missing generation key.
 * Returns 1 when stored, 0 when a purge happened since the lookup.
 */
const STORE_SCRIPT = `
local a = redis.call('GET', KEYS[2])
if not a then a = ARGV[4]; redis.call('SET', KEYS[2], a) end
local s = redis.call('GET', KEYS[3])
if not s then s = ARGV[4]; redis.call('SET', KEYS[3], s) end
local g = a .. '.' .. s
if ARGV[3] ~= '' and ARGV[3] ~= g then return 0 end
redis.call('SET', KEYS[1], g .. '\\n' .. ARGV[1], 'PX', ARGV[2])
return 1
`;

/**
 * KEYS: the generation key. ARGV: the new generation, the channel, the message.
 * Returns the number of subscribers that received the message.
 */
const PURGE_SCRIPT = `
redis.call('SET', KEYS[1], ARGV[1])
return redis.call('PUBLISH', ARGV[2], ARGV[3])
`;

type PurgeCommand = (generationKey: string, generation: string, channel: string, message: string) => Promise<number>;

/** What {@link SharedCache.followPurges} purges: the process's first level (datapath/cache.ts `ResponseCache`). */
export interface FirstLevel {
  /** Drops one service's entries; returns how many. */
  purgeService(serviceId: string): number;
  /** Drops every entry; returns how many. */
  purgeAll(): number;
}

/** A purge notification on {@link PURGE_CHANNEL}: the publishing process, the service (none: all). */
interface PurgeMessage {
  o: string;
  s?: string;
}

type StoreCommand = (entry: string, all: string, svc: string, payload: Buffer, ttlMs: string, expected: string, fresh: string) => Promise<number>;

/** What a lookup found: the entry (undefined = miss) and the generation it was read under. */
export interface SharedLookup {
  found?: CachedResponse | VaryIndex;
  /** `<all>.<svc>` as read, '' when a generation key is missing (then nothing matches). */
  generation: string;
}

/** Options of {@link SharedCache}. */
export interface SharedCacheOptions {
  /** Largest body stored or served, bytes (the L1's `maxEntryBytes`). */
  maxEntryBytes: number;
  /** Called once per counted result (`kea_cache_l2_total{result}`). */
  count?: (result: SharedCacheResult) => void;
}

/** Stored header names never served from the second level (KEA never stores them; {@link servedFromShared}). */
const NOT_SERVED: ReadonlySet<string> = new Set(['set-cookie', 'content-length', 'age', 'cache-status']);

/**
 * The answer to serve for an entry read from Redis: its headers go through the same hygiene
 * as an upstream answer's (headers.ts `clientHeaders`: hop-by-hop fields, `x-request-id`,
 * `x-content-type-options` dropped), lose `Set-Cookie`, `Age` and `Cache-Status`, get a
 * `Content-Length` that is the body's own length, and end with the operation's own response
 * headers (`nosniff`, the `Content-Security-Policy`: service-settings.ts `Forwarding`). So an
 * entry written by someone else than KEA can choose a body, never set a cookie, drop KEA's CSP,
 * or desynchronise the gateway's keep-alive connection with a false length.
 * @param add - the operation's response headers (flat list), as the store left them out.
 */
export function servedFromShared(entry: CachedResponse, add: readonly string[]): CachedResponse {
  const rec: Record<string, string | string[]> = Object.create(null) as Record<string, string | string[]>;
  const h = entry.headers;
  for (let i = 0; i + 1 < h.length; i += 2) {
    const name = h[i].toLowerCase();
    if (NOT_SERVED.has(name)) continue;
    const prev = rec[name];
    rec[name] = prev === undefined ? h[i + 1] : typeof prev === 'string' ? [prev, h[i + 1]] : [...prev, h[i + 1]];
  }
  const headers = clientHeaders(rec, add);
  headers.push('content-length', String(entry.body.length));
  return { ...entry, headers };
}

/** A fresh random generation value (8 base64url characters). */
function freshGeneration(): string {
  return randomBytes(6).toString('base64url');
}

/**
 * Decodes a stored value.
 * @returns the entry, `null` when its generation is not `generation`, undefined when it does
 *   not parse (or is larger than allowed).
 */
function decode(raw: Buffer, generation: string, serviceId: string, maxBytes: number): CachedResponse | VaryIndex | null | undefined {
  const nl1 = raw.indexOf(10);
  if (nl1 < 0) return undefined;
  if (generation === '' || raw.toString('latin1', 0, nl1) !== generation) return null;
  const nl2 = raw.indexOf(10, nl1 + 1);
  if (nl2 < 0 || raw.length - nl2 - 1 > maxBytes) return undefined;
  let meta: { s?: unknown; h?: unknown; r?: unknown; t?: unknown; v?: unknown };
  try {
    meta = JSON.parse(raw.toString('utf8', nl1 + 1, nl2)) as typeof meta;
  } catch {
    return undefined;
  }
  if (Array.isArray(meta.v)) {
    return meta.v.every((n) => typeof n === 'string') ? { vary: meta.v, serviceId } : undefined;
  }
  const { s, h, r, t } = meta;
  if (typeof s !== 'number' || !Number.isInteger(s) || s < 200 || s > 599 || typeof t !== 'number') return undefined;
  if (!Array.isArray(h) || h.length % 2 !== 0 || !h.every((x) => typeof x === 'string')) return undefined;
  if (r !== undefined && typeof r !== 'string') return undefined;
  return { status: s, headers: h, body: raw.subarray(nl2 + 1), revision: r, storedAt: t, serviceId };
}

/** The response cache's second level (see the module comment). One per server, shared by its exchanges. */
export class SharedCache {
  private readonly store: SharedStoreLike;
  private readonly client: Redis;
  private readonly storeCommand: StoreCommand;
  private readonly purgeCommand: PurgeCommand;
  /** This process's name in its purge messages (random), to skip its own. */
  private readonly origin = randomBytes(9).toString('base64url');
  readonly maxEntryBytes: number;
  private readonly counter: (result: SharedCacheResult) => void;

  constructor(store: SharedStoreLike, opts: SharedCacheOptions) {
    this.store = store;
    this.client = store.client;
    this.maxEntryBytes = opts.maxEntryBytes;
    this.counter = opts.count ?? (() => undefined);
    // ioredis runs a defined command as EVALSHA, falling back to EVAL once per script load.
    const c = this.client as unknown as Record<string, unknown>;
    if (typeof c.keaCacheStore !== 'function') this.client.defineCommand('keaCacheStore', { numberOfKeys: 3, lua: STORE_SCRIPT });
    this.storeCommand = (c.keaCacheStore as StoreCommand).bind(this.client);
    if (typeof c.keaCachePurge !== 'function') this.client.defineCommand('keaCachePurge', { numberOfKeys: 1, lua: PURGE_SCRIPT });
    this.purgeCommand = (c.keaCachePurge as PurgeCommand).bind(this.client);
  }

  /**
   * Keeps this process's first level in step with the purges of every other process: subscribes
   * to {@link PURGE_CHANNEL} (the shared store's subscriber connection) and, per message of
   * another process, purges `l1` for the service named (or all of it); when the subscription is
   * re-established after a loss, or is first made while `l1` holds entries, drops all of `l1`
   * (purges may have been missed), logs one line and calls `resynced`. Call once per server.
   * @param resynced - counts those drops (metric `kea_cache_l1_resyncs_total`).
   */
  followPurges(store: Pick<SharedStore, 'subscribe'>, l1: FirstLevel, log: Logger, resynced?: () => void): void {
    store.subscribe(PURGE_CHANNEL, {
      message: (payload) => {
        let m: Partial<PurgeMessage>;
        try {
          m = JSON.parse(payload) as Partial<PurgeMessage>;
        } catch {
          return; // not KEA's: ignored
        }
        if (typeof m !== 'object' || m === null || m.o === this.origin) return;
        if (typeof m.s === 'string') l1.purgeService(m.s);
        else if (m.s === undefined) l1.purgeAll();
      },
      subscribed: (resumed) => {
        const entries = l1.purgeAll();
        if (!resumed && entries === 0) return;
        log.warn('cache first level dropped: the purge subscription was (re)established, purges may have been missed', { entries, resumed });
        resynced?.();
      },
    });
  }

  /** Whether Redis may be called now (the shared store's `available()`): else the first level only. */
  available(): boolean {
    return this.store.available();
  }

  /** Counts one result (`kea_cache_l2_total{result}`): the caller counts `hit` and `miss`, this class `error` and `store`. */
  count(result: SharedCacheResult): void {
    this.counter(result);
  }

  /**
   * Reads an entry and the generation keys of its service: one `MGET`, bounded by the
   * client's command timeout (fails at once while Redis is unreachable).
   * @param key - the L1 key (first or variant key).
   * @returns what was found, or undefined when Redis did not answer or the store is
   *   unavailable (counted as `error`; the caller goes on as after a miss).
   */
  async lookup(key: string, serviceId: string): Promise<SharedLookup | undefined> {
    if (!this.store.available()) {
      this.counter('error');
      return undefined;
    }
    let r: Array<Buffer | null>;
    try {
      r = await this.client.mgetBuffer(ENTRY_PREFIX + key, GENERATION_ALL, generationKey(serviceId));
    } catch (err) {
      this.store.failed('cache-get', err);
      this.counter('error');
      return undefined;
    }
    const generation = r[1] !== null && r[2] !== null ? `${r[1].toString('latin1')}.${r[2].toString('latin1')}` : '';
    if (r[0] === null) return { generation };
    const found = decode(r[0], generation, serviceId, this.maxEntryBytes);
    if (found === undefined) this.counter('error'); // a value KEA did not write (or a later format): a miss
    return { found: found ?? undefined, generation };
  }

  /**
   * Stores a response (or a Vary index) for `ttlMs`, without waiting: the outcome is counted
   * (`store`, or `error`), never reported to the request. Bodies over
   * {@link SharedCache.maxEntryBytes} are not stored.
   * @param generation - what the request's lookup read ({@link SharedLookup.generation});
   *   undefined when it did not look (no-cache) or Redis did not answer: then the current one.
   *   A purge since then drops the store.
   */
  set(key: string, value: CachedResponse | VaryIndex, ttlMs: number, generation: string | undefined): void {
    if (!this.store.available()) {
      this.counter('error');
      return;
    }
    let payload: Buffer;
    if (value.vary !== undefined) payload = Buffer.from(`${JSON.stringify({ v: value.vary })}\n`);
    else {
      if (value.body.length > this.maxEntryBytes) return;
      const meta = Buffer.from(`${JSON.stringify({ s: value.status, h: value.headers, r: value.revision, t: value.storedAt })}\n`);
      payload = Buffer.concat([meta, value.body], meta.length + value.body.length);
    }
    this.storeCommand(
      ENTRY_PREFIX + key,
      GENERATION_ALL,
      generationKey(value.serviceId),
      payload,
      String(Math.max(1, Math.ceil(ttlMs))),
      generation ?? '',
      freshGeneration(),
    ).then(
      (stored) => {
        if (stored === 1) this.counter('store');
      },
      (err: unknown) => {
        this.store.failed('cache-set', err);
        this.counter('error');
      },
    );
  }

  /**
   * Invalidates every entry of one service on every replica (one `SET` of its generation key)
   * and tells every process to purge it from its first level (`PUBLISH` on
   * {@link PURGE_CHANNEL}, in the same script).
   * @throws the client's error when Redis did not acknowledge it (the entries may still be
   *   served: the caller says so).
   */
  async purgeService(serviceId: string): Promise<void> {
    await this.purge(generationKey(serviceId), serviceId);
  }

  /** Invalidates every entry (one `SET` of `kea:cg`, and the `PUBLISH`). @throws as {@link SharedCache.purgeService}. */
  async purgeAll(): Promise<void> {
    await this.purge(GENERATION_ALL);
  }

  private async purge(key: string, serviceId?: string): Promise<void> {
    const message: PurgeMessage = serviceId === undefined ? { o: this.origin } : { o: this.origin, s: serviceId };
    try {
      await this.purgeCommand(key, freshGeneration(), PURGE_CHANNEL, JSON.stringify(message));
    } catch (err) {
      this.store.failed('cache-purge', err);
      throw err;
    }
  }
}
