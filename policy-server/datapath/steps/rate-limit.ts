/**
 * Rate-limit step: at most `requests + burst` requests per period for each caller, address or
 * API (policy.json `operations[].rateLimits`, the controller having resolved the operation's
 * own `rateLimit` against `spec.defaults.rateLimit`; `services[].rateLimitFailMode`).
 *
 * Counting: rate-limiter-flexible's fixed window ("enhanced fixed window": a window opens at a
 * key's first request and lasts the period), one counter per limit and key value:
 * - with the shared store (`--redis-url`, policy-server/redis.ts): `RateLimiterRedis` on the
 *   store's ioredis client, key `kea:rl:<scope>:<name>:<keyValue>` (one atomic Lua
 *   `SET NX EX` + `INCRBY` + `PTTL` per request), shared by every process and worker. Once a
 *   key has used its quota it is blocked in this process's memory until its window ends
 *   (`inMemoryBlockOnConsumed`), so refused traffic costs no Redis call;
 * - without it, or while it is unavailable with fail mode `open`: `RateLimiterMemory`, the same
 *   numbers counted by this process alone (so n processes admit up to n × the limit);
 * - unavailable with fail mode `closed`: 503 `rate-limit-unavailable`, `Retry-After: 1`.
 * A Redis call that fails or exceeds `--redis-timeout-ms` is counted
 * (`kea_redis_errors_total{op="rate-limit"}`), marks the store unavailable until it answers a
 * PING again (redis.ts), and is answered by the fail mode at once: a slow Redis costs at most
 * one timeout per probe period, not one per request. (This is the library's insurance
 * strategy, written here rather than through `insuranceLimiter`, which hides the error.)
 * Burst: `points = requests + burst` per window (docs/adr/0011-rate-limits.md).
 *
 * Key value (hashed with lib/hash.ts before it reaches Redis or memory): `identity` → the
 * caller's subject (`client:<id>` for client credentials), an anonymous caller's client
 * address; `address` → the client address as the gateway saw it ({@link clientAddress});
 * `api` → one counter. A limit's `scope` (`<ns>/<apischema>` for a `spec.defaults` limit)
 * makes it one counter for every operation that inherits it, in Redis and in memory alike: the
 * limiters are kept per server and limit definition, not per operation.
 *
 * Answers: over any limit → 429 `rate-limited` with `Retry-After` (s, ≥ 1). Every answer of
 * the operation (2xx, 4xx, 429, a cache hit) carries `RateLimit-Policy` (every limit:
 * `"<name>";q=<requests+burst>;w=<period s>`) and `RateLimit` (the limit closest to
 * exhaustion: `"<name>";r=<remaining>;t=<s to reset>`), draft-ietf-httpapi-ratelimit-headers-09
 * (RFC 9651 structured fields), through {@link Exchange.addedHeaders}. A refused request is
 * counted (`kea_rate_limited_total{service,operation,identity_class}`) and audited (outcome
 * `rate_limited`, the limit's name in `error`). A request refused by one limit has still
 * used one request of the others (each is counted independently).
 *
 * Waits (returns a promise) on every request: the counter's answer.
 */
import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible';
import { sha256Prefix } from '../../../lib/hash.js';
import type { PolicyRateLimit, RateLimitFailMode } from '../../../lib/policy/config.js';
import type { IdentityClass } from '../../metrics.js';
import type { SharedStore } from '../../redis.js';
import type { CompiledOperation } from '../../snapshot/build.js';
import type { DataPathContext, Exchange } from '../exchange.js';
import { problem } from '../problem.js';
import type { Step, StepContext, StepFactory } from '../step.js';

/** Prefix of every rate-limit counter in Redis. */
export const RATE_LIMIT_KEY_PREFIX = 'kea:rl:';
/** Hex digits of the hashed key value (128 bits). */
const KEY_HASH_DIGITS = 32;

/** One limit, compiled once per server and definition (shared by the operations that use it). */
interface Limit {
  readonly def: PolicyRateLimit;
  /** Requests per window: `requests + burst`. */
  readonly quota: number;
  /** The window, s (the period rounded up to whole seconds: rate-limiter-flexible counts in s). */
  readonly windowS: number;
  /** This process's counter: the only one without Redis; the fallback of fail mode `open`. */
  readonly local: RateLimiterMemory;
  /** The shared counter in Redis, when the server has a store. */
  readonly shared?: RateLimiterRedis;
}

/** The limiters of each server's data path, by limit definition. */
const registries = new WeakMap<DataPathContext, Map<string, Limit>>();

/**
 * The limiter pair of `def` on `dp`'s server: made at the first operation that uses it, then
 * shared (so a `spec.defaults` limit is one counter for all its operations in memory too).
 */
function limitOf(dp: DataPathContext, def: PolicyRateLimit): Limit {
  let reg = registries.get(dp);
  if (reg === undefined) registries.set(dp, (reg = new Map()));
  const id = `${def.scope}\n${def.name}\n${def.requests}\n${def.burst}\n${def.periodMs}`;
  let l = reg.get(id);
  if (l !== undefined) return l;
  const quota = def.requests + def.burst;
  const windowS = Math.max(1, Math.ceil(def.periodMs / 1000));
  const keyPrefix = `${RATE_LIMIT_KEY_PREFIX}${def.scope}:${def.name}`;
  const local = new RateLimiterMemory({ points: quota, duration: windowS, keyPrefix });
  const store = dp.sharedStore;
  const shared =
    store === undefined
      ? undefined
      : new RateLimiterRedis({
          storeClient: store.client,
          points: quota,
          duration: windowS,
          keyPrefix,
          // A key that has used its quota is refused from memory until its window ends.
          inMemoryBlockOnConsumed: quota,
          // Fail at once while disconnected (the store's client queues nothing either).
          rejectIfRedisNotReady: true,
        });
  l = { def, quota, windowS, local, shared };
  reg.set(id, l);
  return l;
}

/** One limit's answer for one request; `null`: the shared store is unavailable (fail mode `closed`). */
interface Count {
  readonly limit: Limit;
  readonly res: RateLimiterRes;
  /** The request is over this limit. */
  readonly over: boolean;
}

/**
 * The client address as the gateway saw it: the last `X-Forwarded-For` entry (the gateway's
 * nginx appends its `$remote_addr` to whatever the client sent, `$proxy_add_x_forwarded_for`,
 * so entries to its left may be forged but the last one is not), else the connection's peer
 * (a request that did not come through the gateway: tests, local runs). IPv4-mapped IPv6
 * (`::ffff:a.b.c.d`) is written as IPv4. Only the gateway reaches the policy server in a
 * cluster (prod NetworkPolicy `kea-policy`), so nobody else writes that last entry.
 */
export function clientAddress(x: Pick<Exchange, 'req'>): string {
  const xff = x.req.headers['x-forwarded-for'];
  let addr = '';
  if (typeof xff === 'string' && xff.length > 0) {
    const comma = xff.lastIndexOf(',');
    addr = (comma < 0 ? xff : xff.slice(comma + 1)).trim();
  }
  if (addr === '') addr = x.req.socket.remoteAddress ?? '';
  return addr.startsWith('::ffff:') && addr.includes('.') ? addr.slice(7) : addr;
}

/** `user`, `client` or `anonymous`: the `identity_class` label of `kea_rate_limited_total`. */
export function identityClassOf(x: Pick<Exchange, 'identity'>): IdentityClass {
  const id = x.identity;
  return id === null ? 'anonymous' : id.kind === 'client' ? 'client' : 'user';
}

const toCount = (limit: Limit, res: RateLimiterRes, over: boolean): Count => ({ limit, res, over });

class RateLimit implements Step {
  readonly name = 'rate-limit';
  private readonly limits: readonly Limit[];
  private readonly failMode: RateLimitFailMode;
  private readonly store: SharedStore | undefined;
  /** `RateLimit-Policy` of the operation (every limit). */
  private readonly policyHeader: string;
  /** The hashed key value of `key: api`. */
  private readonly apiKey = sha256Prefix('api', KEY_HASH_DIGITS);
  private readonly serviceId: string;
  private readonly operationId: string;

  constructor(op: CompiledOperation, dp: DataPathContext, defs: readonly PolicyRateLimit[]) {
    this.limits = defs.map((d) => limitOf(dp, d));
    this.failMode = op.service.def.rateLimitFailMode ?? 'open';
    this.store = dp.sharedStore;
    this.policyHeader = this.limits.map((l) => `"${l.def.name}";q=${l.quota};w=${l.windowS}`).join(', ');
    this.serviceId = op.service.id;
    this.operationId = op.def.operationId;
  }

  run(x: Exchange): Promise<void> {
    const limits = this.limits;
    if (limits.length === 1) return this.count(limits[0], x).then((c) => this.decide(x, [c]));
    const counts: Promise<Count | null>[] = [];
    for (const l of limits) counts.push(this.count(l, x));
    return Promise.all(counts).then((cs) => this.decide(x, cs));
  }

  /** The request's key value for a limit, hashed. */
  private keyOf(l: Limit, x: Exchange): string {
    const kind = l.def.key;
    if (kind === 'api') return this.apiKey;
    const id = x.identity;
    const value = kind === 'identity' && id !== null ? `s:${id.subject}` : `a:${clientAddress(x)}`;
    return sha256Prefix(value, KEY_HASH_DIGITS);
  }

  /** Counts the request against one limit: in Redis when the store is available, else by the fail mode. */
  private count(l: Limit, x: Exchange): Promise<Count | null> {
    const key = this.keyOf(l, x);
    const shared = l.shared;
    if (shared !== undefined) {
      if (this.store!.available()) {
        return shared.consume(key).then(
          (res) => toCount(l, res, false),
          (err: unknown) => (err instanceof RateLimiterRes ? toCount(l, err, true) : this.sharedFailed(l, key, err)),
        );
      }
      if (this.failMode === 'closed') return Promise.resolve(null);
    }
    return this.countLocally(l, key);
  }

  private countLocally(l: Limit, key: string): Promise<Count> {
    return l.local.consume(key).then(
      (res) => toCount(l, res, false),
      (err: unknown) => {
        if (err instanceof RateLimiterRes) return toCount(l, err, true);
        throw err;
      },
    );
  }

  /** A Redis call failed or timed out: counted, the store marked unavailable, the fail mode answers. */
  private sharedFailed(l: Limit, key: string, err: unknown): Promise<Count | null> | null {
    this.store!.failed('rate-limit', err);
    return this.failMode === 'closed' ? null : this.countLocally(l, key);
  }

  /** Adds the headers and refuses the request when a limit says so (or the store is unavailable and the mode is `closed`). */
  private decide(x: Exchange, counts: readonly (Count | null)[]): void {
    if (x.done) return; // the client left while we counted
    let closest: Count | undefined;
    let refused: Count | undefined;
    let unavailable = false;
    for (const c of counts) {
      if (c === null) {
        unavailable = true;
        continue;
      }
      const r = c.over ? 0 : c.res.remainingPoints;
      if (closest === undefined) closest = c;
      else {
        const rc = closest.over ? 0 : closest.res.remainingPoints;
        if (r < rc || (r === rc && c.res.msBeforeNext > closest.res.msBeforeNext)) closest = c;
      }
      if (c.over && (refused === undefined || c.res.msBeforeNext > refused.res.msBeforeNext)) refused = c;
    }
    const headers = ['ratelimit-policy', this.policyHeader];
    if (closest !== undefined) {
      const r = closest.over ? 0 : closest.res.remainingPoints;
      headers.push('ratelimit', `"${closest.limit.def.name}";r=${r};t=${Math.max(0, Math.ceil(closest.res.msBeforeNext / 1000))}`);
    }
    if (x.addedHeaders === undefined) x.addedHeaders = headers;
    else for (const h of headers) x.addedHeaders.push(h);
    if (unavailable) {
      x.fail(
        problem(
          'rate-limit-unavailable',
          'the shared rate-limit store is unavailable and this API does not admit requests without it (rateLimitFailMode: closed)',
        ),
        'rate_limit_unavailable',
        { headers: ['retry-after', '1'] },
      );
      return;
    }
    if (refused !== undefined) {
      const d = refused.limit.def;
      const after = Math.max(1, Math.ceil(refused.res.msBeforeNext / 1000));
      x.dp.metrics.rateLimited(this.serviceId, this.operationId, identityClassOf(x));
      x.fail(
        problem('rate-limited', `rate limit "${d.name}" (${refused.limit.quota} requests per ${refused.limit.windowS} s) exceeded; retry after ${after} s`),
        'rate_limited',
        { headers: ['retry-after', String(after)], error: `rate limit "${d.name}"` },
      );
    }
  }
}

/** Operations with at least one rate limit (`rateLimits` absent or empty: no step). */
export const rateLimitStep: StepFactory = {
  name: 'rate-limit',
  compile: (op: CompiledOperation, ctx: StepContext) => {
    const defs = op.def.rateLimits;
    return defs === undefined || defs.length === 0 ? undefined : new RateLimit(op, ctx.dp, defs);
  },
};
