/**
 * The data path (hot path): one request for one configured operation.
 *
 * Takes in: a raw `node:http` request already matched to a {@link CompiledOperation} (by the
 * `x-kea-operation` header or by method + path template) and its decoded path parameters.
 * Gives out: the upstream's response (streamed, or buffered when it must be cached or
 * validated), or an RFC 9457 problem.
 *
 * Each operation runs its own chain of policy steps (datapath/chain.ts, one file per step in
 * datapath/steps/), compiled once per operation on its first request: authenticate (credentials
 * optional on public operations) → authorize → parameters (400) → body: content type (415),
 * size (413), JSON structure and schema (400) — or read-body for operations without a
 * requestBody → cache lookup → forward through the service's lane to the gateway's internal
 * listener (Host = the service's internal hostname, plus `x-kea-internal-token`) → and, when
 * the exchange ends, audit. The response phase (optional response validation, cache store)
 * is the exchange's (datapath/exchange.ts).
 *
 * Per request it allocates one {@link Exchange} (which is also the undici dispatch handler),
 * the upstream header list, and the body buffer; no express, no streams for small bodies, no
 * per-request closures, and no promise unless a step really waits (an uncached token, a body).
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import type { ClaimPaths } from '../auth/index.js';
import type { AuditLog } from '../audit.js';
import type { Metrics } from '../metrics.js';
import type { CompiledOperation } from '../snapshot/build.js';
import type { ResponseCache } from './cache.js';
import { SharedCache } from './shared-cache.js';
import type { SharedStore } from '../redis.js';
import { compileChain, runChain, type Chain } from './chain.js';
import { Exchange, timeoutError, watchClient, type DataPathContext, type RequestAuthenticator } from './exchange.js';
import { acceptRequestId } from './headers.js';
import { problem, sendProblem } from './problem.js';
import type { Upstream } from './upstream.js';

export type { RequestAuthenticator } from './exchange.js';
export type { Upstream, UpstreamLane } from './upstream.js';

/** Options of {@link DataPath}. */
export interface DataPathOptions {
  auth: RequestAuthenticator;
  upstream: Upstream;
  cache: ResponseCache;
  /**
   * The shared store (policy-server/redis.ts), when the server has one: the rate limits'
   * counters and the response cache's second level ({@link DataPath.sharedCache}) live there.
   */
  sharedStore?: SharedStore;
  audit: AuditLog;
  metrics: Metrics;
  /** Shared secret the internal HTTPRoutes require (`x-kea-internal-token`). */
  internalToken: string;
  /** Claim paths used when a service does not set its own. */
  claimDefaults?: ClaimPaths;
  /** Maximum JSON nesting depth of request bodies (default 64). */
  maxJsonDepth?: number;
  /** Largest upstream response buffered for caching or response validation, bytes (default 4 MiB). */
  maxBufferedResponseBytes?: number;
  /**
   * Request bodies buffered at once by this process, bytes (default 128 MiB): each request
   * reserves its declared Content-Length (a chunked one its operation's maxBodyBytes) while it
   * is in the data path; beyond the bound it gets 503 `server-busy` with `Retry-After: 1`
   * (one request alone is always admitted). The CRD lets an operation accept bodies up to 64 MiB.
   */
  maxBufferedRequestBytes?: number;
}

/** Deadline sweep period, ms (the precision of per-operation upstream timeouts). */
const SWEEP_MS = 25;

/** The per-request data path. One per server. */
export class DataPath implements DataPathContext {
  readonly auth: RequestAuthenticator;
  readonly upstream: Upstream;
  readonly cache: ResponseCache;
  /** The cache's second level, in {@link DataPathOptions.sharedStore} when there is one (datapath/shared-cache.ts). */
  readonly sharedCache?: SharedCache;
  readonly sharedStore?: SharedStore;
  readonly audit: AuditLog;
  readonly metrics: Metrics;
  /**
   * Value of `x-kea-internal-token` on every forwarded request: the current token. Not
   * readonly: main.ts replaces it when the token file changes (a rotation,
   * docs/adr/0009-internal-routes.md); the next request sends the new value.
   */
  internalToken: string;
  readonly maxJsonDepth: number;
  readonly maxBufferedResponseBytes: number;
  readonly maxBufferedRequestBytes: number;
  /** Request body bytes reserved by exchanges in the data path now (see {@link DataPathOptions.maxBufferedRequestBytes}). */
  bufferedRequestBytes = 0;
  private readonly claimDefaults: ClaimPaths;
  /** Each operation's chain of steps, compiled on its first request ({@link DataPath.chainOf}). */
  private readonly chains = new WeakMap<CompiledOperation, Chain>();
  /** Requests currently in the data path (for graceful drain). */
  inflight = 0;
  /**
   * Exchanges waiting on the upstream (for response headers, then for each body chunk),
   * checked every {@link SWEEP_MS} against their deadline: the only upstream timeouts. undici's
   * own headers/body timeouts are off: they run on coarse "fast timers" (≈0.5–1 s resolution),
   * too coarse for per-operation timeouts, and cost timer objects per request.
   * An intrusive doubly linked list through the exchanges, not a `Set`: adding each exchange
   * to a Set and deleting it again cost 7–9 µs of CPU per request under load (interleaved A/B
   * against builds without the Set, 6 rounds each, reproduced; docs/performance.md).
   */
  private waitingHead: Exchange | null = null;
  private sweeper?: NodeJS.Timeout;

  constructor(opts: DataPathOptions) {
    this.auth = opts.auth;
    this.upstream = opts.upstream;
    this.cache = opts.cache;
    this.sharedCache = opts.sharedStore
      ? new SharedCache(opts.sharedStore, { maxEntryBytes: opts.cache.maxEntryBytes, count: (result) => opts.metrics.cacheL2.labels(result).inc() })
      : undefined;
    this.sharedStore = opts.sharedStore;
    // kea_redis_available, kea_redis_errors_total (read at scrape time).
    if (opts.sharedStore) opts.metrics.watchSharedStore(opts.sharedStore.stats.bind(opts.sharedStore));
    this.audit = opts.audit;
    this.metrics = opts.metrics;
    this.internalToken = opts.internalToken;
    this.maxJsonDepth = opts.maxJsonDepth ?? 64;
    this.maxBufferedResponseBytes = opts.maxBufferedResponseBytes ?? 4 * 1024 * 1024;
    this.maxBufferedRequestBytes = opts.maxBufferedRequestBytes ?? 128 * 1024 * 1024;
    this.claimDefaults = opts.claimDefaults ?? {};
  }

  /**
   * The operation's chain of steps (datapath/chain.ts), compiled on its first request and kept
   * as long as the operation object (a snapshot's service; an unchanged service keeps its
   * operations across snapshots). One WeakMap lookup per request.
   */
  chainOf(op: CompiledOperation): Chain {
    let c = this.chains.get(op);
    if (c === undefined) this.chains.set(op, (c = compileChain(op, this, this.claimDefaults)));
    return c;
  }

  /** Starts tracking an exchange's deadline. */
  track(x: Exchange): void {
    x.deadline = performance.now() + x.op.timeoutMs;
    if (!x.isWaiting) {
      x.isWaiting = true;
      x.nextWaiting = this.waitingHead;
      if (this.waitingHead) this.waitingHead.prevWaiting = x;
      this.waitingHead = x;
    }
    if (!this.sweeper) {
      this.sweeper = setInterval(() => this.sweep(), SWEEP_MS);
      this.sweeper.unref();
    }
  }

  /** Stops tracking (response headers arrived, or the exchange ended). */
  untrack(x: Exchange): void {
    x.deadline = 0;
    if (!x.isWaiting) return;
    x.isWaiting = false;
    const prev = x.prevWaiting;
    const next = x.nextWaiting;
    if (prev) prev.nextWaiting = next;
    else this.waitingHead = next;
    if (next) next.prevWaiting = prev;
    x.prevWaiting = x.nextWaiting = null;
  }

  private sweep(): void {
    if (this.waitingHead === null) {
      clearInterval(this.sweeper);
      this.sweeper = undefined;
      return;
    }
    const now = performance.now();
    // Collect first: aborting an exchange runs its handlers synchronously, which unlink it.
    let expired: Exchange[] | undefined;
    for (let x: Exchange | null = this.waitingHead; x; x = x.nextWaiting) if (now >= x.deadline) (expired ??= []).push(x);
    if (!expired) return;
    for (const x of expired) {
      if (!x.isWaiting || now < x.deadline) continue;
      this.untrack(x);
      x.timedOut = true;
      if (x.controller) x.controller.abort(timeoutError(x.bodyPhase));
      else x.onResponseError(null, timeoutError()); // still queued in the pool: answer now
    }
  }

  /** Generates or accepts the request id. */
  static requestId(req: IncomingMessage): string {
    return acceptRequestId(req.headers['x-request-id']) ?? randomUUID();
  }

  /**
   * Handles one request for `op`: runs the operation's chain of steps. Never throws; every
   * failure becomes a problem response. Returns as soon as the chain waits or hands the
   * exchange to the upstream; the answer follows asynchronously.
   * @param pathParams - decoded values of the operation's path template parameters, in order
   *   (from the canonical path, snapshot/path-router.ts `canonicalPath`).
   * @param rawQuery - the raw query string (without `?`).
   * @param path - the canonical (re-encoded) request path without query (for the audit record).
   */
  handle(req: IncomingMessage, res: ServerResponse, op: CompiledOperation, pathParams: readonly string[], rawQuery: string, path: string): void {
    let chain: Chain;
    try {
      chain = this.chainOf(op);
    } catch (err) {
      // A step factory that cannot compile this operation: nothing of the chain can run.
      this.audit.logger.error('data path failure', { operation: op.key, error: (err as Error)?.stack ?? String(err) });
      const body = problem('internal', 'unexpected error');
      body.requestId = DataPath.requestId(req);
      sendProblem(res, body, ['x-request-id', body.requestId], true);
      return;
    }
    this.inflight++;
    const x = new Exchange(this, chain, req, res, op, DataPath.requestId(req), path, pathParams, rawQuery);
    if (this.audit.debug) this.audit.start(x.requestId, req.method ?? '', path, op.key);
    watchClient(x);
    runChain(x, chain.request);
  }
}
