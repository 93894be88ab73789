/**
 * One request/response exchange of the data path: the per-request state that the policy steps
 * (datapath/steps/) read and write, the ways an exchange ends (a problem, an answer, the
 * upstream's response), and the undici dispatch handler of its upstream request (the response
 * phase: streaming or buffering, response validation, cache store, stale-connection retry).
 *
 * Takes in: a raw `node:http` request matched to a {@link CompiledOperation}, the operation's
 * {@link OperationPlan} (compiled once per operation, datapath/chain.ts) and the server's
 * {@link DataPathContext}. Gives out: exactly one answer on `res` and one call of every
 * {@link EndHook} of the plan (the audit record) when the exchange ends.
 *
 * Per request the data path allocates one Exchange: every step's per-request state lives on
 * it, so the steps themselves are shared objects without per-request closures.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import type { Dispatcher } from 'undici';
import { identityHeaders, type ClaimPaths, type Identity } from '../auth/index.js';
import type { AuditLog } from '../audit.js';
import type { Metrics } from '../metrics.js';
import { isJsonMediaType, mediaTypeOf, type CompiledOperation } from '../snapshot/build.js';
import { encodeSegment, renderTemplate } from '../snapshot/path-router.js';
import { varyNames, type CachedResponse, type ResponseCache } from './cache.js';
import { clientHeaders } from './headers.js';
import { explainErrors } from './params.js';
import { problem, sendProblem, type FieldError, type ProblemBody } from './problem.js';
import type { Forwarding } from './service-settings.js';
import type { SharedCache } from './shared-cache.js';
import type { SharedStore } from '../redis.js';
import type { Upstream, UpstreamLane } from './upstream.js';

/** The part of the auth module the data path needs (see `policy-server/auth/index.ts`). */
export interface RequestAuthenticator {
  authenticate(req: IncomingMessage): Promise<Identity | null>;
  authenticateCached?(req: IncomingMessage): Identity | null | undefined;
  loginUrl(returnTo: string): string;
}

/**
 * What exchanges and steps use of the server's data path (datapath/handler.ts `DataPath`): its
 * collaborators, bounds and shared counters. One per server.
 */
export interface DataPathContext {
  readonly auth: RequestAuthenticator;
  readonly upstream: Upstream;
  readonly cache: ResponseCache;
  /** The cache's second level in Redis (datapath/shared-cache.ts); undefined without `--redis-url`. */
  readonly sharedCache?: SharedCache;
  /**
   * The shared store (policy-server/redis.ts, `--redis-url`) the rate limits count in
   * (datapath/steps/rate-limit.ts); undefined: every limit is counted by this process alone.
   */
  readonly sharedStore?: SharedStore;
  readonly audit: AuditLog;
  readonly metrics: Metrics;
  /** Value of `x-kea-internal-token` on forwarded requests; replaced on a token rotation, so read per request. */
  readonly internalToken: string;
  /** Maximum JSON nesting depth of request bodies. */
  readonly maxJsonDepth: number;
  /** Largest upstream response buffered for caching or response validation, bytes. */
  readonly maxBufferedResponseBytes: number;
  /** Request body bytes all exchanges may reserve at once (one request alone is always admitted). */
  readonly maxBufferedRequestBytes: number;
  /** Request body bytes reserved by exchanges now (each releases its {@link Exchange.bodyReserved} when it ends). */
  bufferedRequestBytes: number;
  /** Requests in the data path now (for graceful drain). */
  inflight: number;
  /** Starts (or restarts) an exchange's upstream deadline: `op.timeoutMs` from now. */
  track(x: Exchange): void;
  /** Stops tracking an exchange's deadline. */
  untrack(x: Exchange): void;
}

/** Called once when an exchange ends, however it ends (a step's `end` hook, datapath/step.ts). */
export interface EndHook {
  end(x: Exchange): void;
}

/** The compiled, per-operation part of an exchange (built once per operation: datapath/chain.ts `Chain`). */
export interface OperationPlan {
  /** Claim paths of the operation's service, server defaults filled in. */
  readonly claims: ClaimPaths;
  /** Forwarding settings of the operation's service. */
  readonly forwarding: Forwarding;
  /** The end hooks of the operation's steps, in chain order. */
  readonly ends: readonly EndHook[];
}

/** How an exchange ended: `x-cache` value for the audit record. */
export type CacheStatus = 'HIT' | 'MISS';

const EMPTY_BUF = Buffer.alloc(0);
/** Path parameter values of an operation without any (shared, never written). */
const NO_VALUES: Record<string, string> = Object.freeze(Object.create(null) as Record<string, string>);

/** The error an exchange is aborted with when its deadline passes (undici's codes). */
export function timeoutError(body = false): Error {
  return body
    ? Object.assign(new Error('upstream response body stalled longer than the operation timeout'), { code: 'UND_ERR_BODY_TIMEOUT' })
    : Object.assign(new Error('upstream did not answer within the operation timeout'), { code: 'UND_ERR_HEADERS_TIMEOUT' });
}

/** Maps an undici error to a problem code. */
function upstreamProblem(err: Error & { code?: string }): { body: ProblemBody; outcome: string } {
  const code = err.code ?? '';
  if (code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT' || code === 'UND_ERR_CONNECT_TIMEOUT') {
    return { body: problem('upstream-timeout', 'the service did not answer in time'), outcome: 'upstream_timeout' };
  }
  return { body: problem('upstream-unavailable', 'the service could not be reached'), outcome: 'upstream_error' };
}

/**
 * Socket-level failures that, before any byte of the response, mean the gateway closed a pooled
 * keep-alive connection under the request (a reload, `keepalive_timeout`, a worker shutting
 * down): undici's `SocketError` ("other side closed", UND_ERR_SOCKET) and the kernel's
 * ECONNRESET / EPIPE. See {@link Exchange.retryStale}.
 */
const STALE_CONNECTION_CODES: ReadonlySet<string> = new Set(['UND_ERR_SOCKET', 'ECONNRESET', 'EPIPE']);
/**
 * Most redispatches of one request after stale connections. A reload makes every idle pooled
 * connection stale at once, so a retry can land on another one (each such attempt fails within
 * microseconds and removes that connection from the pool); Go's net/http likewise retries as long
 * as the error says "stale connection". Bounded all the same, and by the operation's deadline.
 */
const MAX_STALE_RETRIES = 8;

/** Dispatches an exchange's request again (a retry of {@link Exchange.retryStale}). */
function redispatch(x: Exchange): void {
  // The client left (onClientClose answered 499) or the deadline passed (the sweep answered 504).
  if (x.done || x.lane === undefined) return;
  x.upstreamStarted = true;
  x.lane.dispatch(x.upstreamOpts!, x);
}

function responseCacheable(headers: Record<string, string | string[] | undefined>): boolean {
  if (headers['set-cookie'] !== undefined) return false;
  const cc = headers['cache-control'];
  return !(typeof cc === 'string' && /(?:^|[\s,])(?:no-store|private)\b/i.test(cc));
}

/**
 * One request/response exchange; also the undici dispatch handler of its upstream request
 * (OnRequestStart/OnResponseStart/Data/End/Error, undici ≥ 7 handler API).
 */
export class Exchange implements Dispatcher.DispatchHandler {
  readonly dp: DataPathContext;
  readonly plan: OperationPlan;
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly op: CompiledOperation;
  readonly requestId: string;
  /** performance.now() when the exchange started, ms. */
  readonly t0: number;
  /** The canonical (re-encoded) request path without query (snapshot/path-router.ts `canonicalPath`). */
  readonly path: string;
  /** Decoded values of the operation's path template parameters, in order. */
  readonly pathParams: readonly string[];
  /** The raw query string, without `?`. */
  readonly rawQuery: string;
  /** The caller (authenticate step); null = anonymous. */
  identity: Identity | null = null;
  /**
   * Response headers a step adds to every answer of this exchange, however it ends (a problem,
   * a cache hit, the upstream's answer): a flat `[name, value, ...]` list, e.g. the rate-limit
   * step's `RateLimit-Policy` and `RateLimit`. Written through {@link Exchange.extraHeaders}.
   */
  addedHeaders?: string[];
  /** The request body as read (body steps); empty when there was none. */
  body: Buffer = EMPTY_BUF;
  /**
   * base64url SHA-256 of the canonical JSON of a validated body, for the cache key (body step,
   * on cacheable operations only); undefined otherwise.
   */
  bodyDigest?: string;
  /** The upstream path without query ({@link Exchange.upstreamTarget}), once computed. */
  private target?: string;
  /** The request's first cache key ({@link ResponseCache.key}); undefined = the response is not stored. */
  cacheKey?: string;
  /**
   * The generation the cache's second level was read under (shared-cache.ts
   * `SharedLookup.generation`): the response is stored there only if no purge happened since.
   */
  cacheGeneration?: string;
  /** The response's `Vary` names ({@link varyNames}) when it has any: it is stored under {@link Exchange.variantKey}. */
  varyNames?: readonly string[];
  variantKey?: string;
  controller?: Dispatcher.DispatchController;
  /** The upstream response's status (0 until its headers arrive). */
  status = 0;
  buffering = false;
  chunks?: Buffer[];
  bytes = 0;
  headersOut?: string[];
  revision?: string;
  contentType?: string;
  done = false;
  clientGone = false;
  upstreamStarted = false;
  /**
   * performance.now() by which the next upstream event must arrive, ms: the response headers,
   * then (body phase) each body chunk. 0 = not tracked.
   */
  deadline = 0;
  /** Response headers arrived: a passed deadline is a body timeout. */
  bodyPhase = false;
  timedOut = false;
  /** Neighbours in the data path's list of exchanges waiting on the upstream (see handler.ts `DataPath.track`). */
  prevWaiting: Exchange | null = null;
  nextWaiting: Exchange | null = null;
  isWaiting = false;
  /** The upstream lane this exchange was dispatched on (its in-flight count includes it). */
  lane?: UpstreamLane;
  /** Bytes of {@link DataPathContext.bufferedRequestBytes} this exchange's request body reserved. */
  bodyReserved = 0;
  /** The upstream request as dispatched (kept for the retries of {@link Exchange.retryStale}). */
  upstreamOpts?: Dispatcher.DispatchOptions;
  /** Times the upstream request was dispatched again after a stale connection ({@link Exchange.retryStale}). */
  retries = 0;
  // How the exchange ended, for the end hooks (set by {@link Exchange.finish}).
  /** Status answered to the client (499: the client left first). */
  endStatus = 0;
  /** Outcome label of the audit record and the metrics (`forwarded`, `cache_hit`, `invalid_request`, ...). */
  outcome = '';
  /** `x-cache` of the answer, when the operation is cacheable. */
  cacheStatus?: CacheStatus;
  /** Field errors of a refused request or of a response that failed validation. */
  validation?: FieldError[];
  /** The upstream error's code or message. */
  error?: string;

  constructor(
    dp: DataPathContext,
    plan: OperationPlan,
    req: IncomingMessage,
    res: ServerResponse,
    op: CompiledOperation,
    requestId: string,
    path: string,
    pathParams: readonly string[],
    rawQuery: string,
  ) {
    this.dp = dp;
    this.plan = plan;
    this.req = req;
    this.res = res;
    this.op = op;
    this.requestId = requestId;
    this.path = path;
    this.pathParams = pathParams;
    this.rawQuery = rawQuery;
    this.t0 = performance.now();
  }

  /**
   * The upstream path without query: the operation's upstream template with the path values
   * re-encoded deterministically (docs/architecture.md, "Canonical request path"). Computed on
   * first use (cache key, forward) and kept.
   */
  upstreamTarget(): string {
    let t = this.target;
    if (t === undefined) {
      const names = this.op.pathParamNames;
      let values = NO_VALUES;
      if (names.length > 0) {
        values = Object.create(null) as Record<string, string>;
        for (let i = 0; i < names.length; i++) values[names[i]] = encodeSegment(this.pathParams[i] ?? '');
      }
      t = this.target = renderTemplate(this.op.upstream, values);
    }
    return t;
  }

  /**
   * The values the backend sees (or saw) for the request headers a response's `Vary` names,
   * in the order of `names`: KEA's own values for the headers it sets (identity headers from
   * the caller's identity, `x-forwarded-for` as forwarded, `host` constant), the client's
   * value for every other header (also for one KEA strips: more specific, never less).
   * @returns the values (undefined = absent), or null when one is unique per request
   *   (`x-request-id`): such a response is not cacheable.
   */
  varyValues(names: readonly string[]): (string | undefined)[] | null {
    const h = this.req.headers;
    const out: (string | undefined)[] = [];
    for (const name of names) {
      if (name === 'x-request-id') return null;
      if (name === 'host') out.push(undefined);
      else if (name.startsWith('x-kea-')) out.push(this.identity ? identityHeaders(this.identity, this.plan.claims)[name] : undefined);
      else if (name === 'x-forwarded-for') out.push(this.forwardedFor());
      else {
        const v = h[name];
        out.push(v === undefined || typeof v === 'string' ? v : v.join(', '));
      }
    }
    return out;
  }

  /** `X-Forwarded-For` as forwarded: the received chain plus the peer (the gateway). */
  forwardedFor(): string {
    const xff = this.req.headers['x-forwarded-for'];
    const remote = this.req.socket.remoteAddress ?? '';
    return xff ? `${String(xff)}, ${remote}` : remote;
  }

  /** Response headers KEA adds for the client (flat list): the request id, `x-cache`, a refreshed session cookie, {@link Exchange.addedHeaders}. */
  extraHeaders(cache: CacheStatus | undefined): string[] {
    const h = ['x-request-id', this.requestId];
    if (cache) h.push('x-cache', cache);
    if (this.identity?.setCookie) h.push('set-cookie', this.identity.setCookie);
    const added = this.addedHeaders;
    if (added !== undefined) for (let i = 0; i < added.length; i++) h.push(added[i]);
    return h;
  }

  /**
   * Ends the exchange with a problem response (RFC 9457) and finishes it. How a step refuses a
   * request.
   * @param outcome - the audit/metrics outcome label, e.g. `invalid_request`.
   * @param extra - response headers (flat list), `close` (add `Connection: close`: the request
   *   body was not consumed), the field errors and the upstream error for the audit record.
   */
  fail(body: ProblemBody, outcome: string, extra?: { headers?: string[]; close?: boolean; validation?: FieldError[]; error?: string }): void {
    body.requestId = this.requestId;
    const h = this.extraHeaders(undefined);
    if (extra?.headers) for (const x of extra.headers) h.push(x);
    sendProblem(this.res, body, h, extra?.close);
    this.finish(body.status, outcome, undefined, extra?.validation, extra?.error);
  }

  /**
   * Marks the exchange ended (idempotent): releases what it holds (the data path's in-flight
   * count, its lane slot, its body reservation, its deadline) and calls the plan's end hooks
   * (the audit step: metrics and the audit record). The answer itself is the caller's.
   * @param status - the status answered (499: the client left first).
   */
  finish(status: number, outcome: string, cache?: CacheStatus, validation?: FieldError[], error?: string): void {
    if (this.done) return;
    this.done = true;
    const dp = this.dp;
    dp.inflight--;
    if (this.lane !== undefined) {
      this.lane.inflight--;
      this.lane = undefined;
    }
    if (this.bodyReserved !== 0) {
      dp.bufferedRequestBytes -= this.bodyReserved;
      this.bodyReserved = 0;
    }
    if (this.deadline !== 0) dp.untrack(this);
    this.endStatus = status;
    this.outcome = outcome;
    this.cacheStatus = cache;
    this.validation = validation;
    this.error = error;
    const ends = this.plan.ends;
    for (let i = 0; i < ends.length; i++) ends[i].end(this);
  }

  /** An unexpected error in a step: logged with the request id, answered 500 `internal` if nothing was answered yet. */
  crash(err: unknown): void {
    this.dp.audit.logger.error('data path failure', { requestId: this.requestId, operation: this.op.key, error: (err as Error)?.stack ?? String(err) });
    if (!this.done) this.fail(problem('internal', 'unexpected error'), 'internal_error', { close: true });
  }

  // ---- undici DispatchHandler -------------------------------------------------------------

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    this.upstreamStarted = true;
    if (this.clientGone) controller.abort(new Error('client closed the connection'));
    else if (this.timedOut) controller.abort(timeoutError());
  }

  onResponseStart(controller: Dispatcher.DispatchController, statusCode: number, headers: Record<string, string | string[] | undefined>): void {
    if (this.done) {
      controller.abort(timeoutError());
      return;
    }
    if (this.deadline !== 0) {
      this.bodyPhase = true;
      this.deadline = performance.now() + this.op.timeoutMs;
    }
    this.status = statusCode;
    const rev = headers['x-kea-revision'];
    if (typeof rev === 'string') this.revision = rev;
    const ct = headers['content-type'];
    this.contentType = typeof ct === 'string' ? ct : undefined;
    const out = clientHeaders(headers, this.plan.forwarding.responseHeaders);
    this.buffering = this.mustBuffer(statusCode, headers);
    if (this.buffering) {
      this.headersOut = out;
      this.chunks = [];
      return;
    }
    if (this.clientGone) return;
    for (const x of this.extraHeaders(this.op.cache ? 'MISS' : undefined)) out.push(x);
    this.res.writeHead(statusCode, out);
  }

  /**
   * Whether the response is buffered whole: it is to be stored in the cache (a 200 the backend
   * lets a shared cache store; keyed by `Vary` when it has one) or validated (a JSON answer of
   * an operation with response validation), and its declared length is within
   * {@link DataPathContext.maxBufferedResponseBytes}. Drops the cache key of a response that
   * is not to be stored.
   */
  private mustBuffer(statusCode: number, headers: Record<string, string | string[] | undefined>): boolean {
    const op = this.op;
    const cl = headers['content-length'];
    const small = !(typeof cl === 'string' && Number(cl) > this.dp.maxBufferedResponseBytes);
    const validate =
      op.responseValidators !== undefined && this.contentType !== undefined && isJsonMediaType(mediaTypeOf(this.contentType)) && this.req.method !== 'HEAD';
    if (this.cacheKey !== undefined && (statusCode !== 200 || !responseCacheable(headers))) this.cacheKey = undefined;
    if (this.cacheKey !== undefined && (headers.vary !== undefined || headers['content-encoding'] !== undefined)) this.keyByVary(headers);
    return small && (this.cacheKey !== undefined || validate);
  }

  /**
   * A cacheable response with `Vary` (or a `Content-Encoding`) is stored per value of the
   * request headers it names (RFC 9111 §4.1); `Vary: *`, or a header with a per-request
   * value, makes it not cacheable.
   */
  private keyByVary(headers: Record<string, string | string[] | undefined>): void {
    const names = varyNames(headers.vary, headers['content-encoding']);
    const values = names === null || names.length === 0 ? undefined : this.varyValues(names);
    if (names === null || values === null) this.cacheKey = undefined;
    else if (values !== undefined) {
      this.varyNames = names;
      this.variantKey = this.dp.cache.variantKey(this.cacheKey!, names, values);
    }
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.clientGone || this.done) return;
    if (this.deadline !== 0) this.deadline = performance.now() + this.op.timeoutMs;
    if (this.buffering) {
      this.bytes += chunk.length;
      this.chunks!.push(chunk);
      if (this.bytes > this.dp.maxBufferedResponseBytes) this.stopBuffering();
      return;
    }
    if (!this.res.write(chunk)) {
      // A slow client is not a stalled upstream: no deadline while paused.
      this.dp.untrack(this);
      controller.pause();
      this.res.once('drain', () => {
        if (!this.done) this.dp.track(this);
        controller.resume();
      });
    }
  }

  /** A response grew past the buffer limit: send what we have and stream the rest. */
  private stopBuffering(): void {
    this.buffering = false;
    this.cacheKey = undefined;
    if (this.op.responseValidators) {
      this.dp.audit.logger.warn('response too large to validate; streamed unvalidated', { requestId: this.requestId, operation: this.op.key });
    }
    const out = this.headersOut!;
    for (const x of this.extraHeaders(this.op.cache ? 'MISS' : undefined)) out.push(x);
    this.res.writeHead(this.status, out);
    for (const c of this.chunks!) this.res.write(c);
    this.chunks = undefined;
  }

  onResponseEnd(): void {
    if (this.done) return;
    if (this.clientGone) {
      this.finish(499, 'client_closed');
      return;
    }
    if (!this.buffering) {
      this.res.end();
      this.finish(this.status, 'forwarded', this.op.cache ? 'MISS' : undefined);
      return;
    }
    const chunks = this.chunks!;
    const body = chunks.length === 1 ? chunks[0] : chunks.length === 0 ? EMPTY_BUF : Buffer.concat(chunks, this.bytes);
    const validation = this.validateResponse(body);
    if (this.done) return; // refused (responseValidation: enforce)
    if (this.cacheKey !== undefined && validation === undefined) this.store(body);
    const out = this.headersOut!.slice();
    for (const x of this.extraHeaders(this.op.cache ? 'MISS' : undefined)) out.push(x);
    this.res.writeHead(this.status, out);
    this.res.end(body);
    this.finish(this.status, validation ? 'forwarded_invalid_response' : 'forwarded', this.op.cache ? 'MISS' : undefined, validation);
  }

  /**
   * Validates a buffered JSON response against the operation's schema for its status (exact
   * code, then `NXX`, then `default`; OpenAPI 3.0.3 §4.7.16). A mismatch is counted and logged;
   * with `responseValidation: enforce` it ends the exchange with 502 `invalid-upstream-response`.
   * @returns the field errors, or undefined when the body matches (or nothing validates it).
   */
  private validateResponse(body: Buffer): FieldError[] | undefined {
    const validators = this.op.responseValidators;
    if (!validators || !this.contentType || !isJsonMediaType(mediaTypeOf(this.contentType))) return undefined;
    const s = String(this.status);
    const v = validators.get(s) ?? validators.get(`${s[0]}XX`) ?? validators.get('DEFAULT');
    if (!v) return undefined;
    let validation: FieldError[] | undefined;
    try {
      const value: unknown = JSON.parse(body.toString('utf8'));
      if (!v(value)) validation = explainErrors(v, value, body.length, 'response');
    } catch {
      validation = [{ in: 'response', pointer: '', message: 'is not valid JSON' }];
    }
    if (validation === undefined) return undefined;
    this.dp.metrics.validation(this.op.key, validation);
    this.dp.audit.logger.warn('upstream response does not match the schema', {
      requestId: this.requestId,
      operation: this.op.key,
      revision: this.revision,
      status: this.status,
      errors: validation,
    });
    if (this.op.def.responseValidation === 'enforce') {
      this.fail(
        problem('invalid-upstream-response', 'the service answered with a body that does not match its documented response', { errors: validation }),
        'response_invalid',
        {
          validation,
        },
      );
    }
    return validation;
  }

  /**
   * Stores a buffered response under its cache key (the variant key when it has `Vary`), for
   * the operation's TTL: in the first level, and in the second (Redis) when there is one,
   * without waiting for it.
   */
  private store(body: Buffer): void {
    const entry: CachedResponse = {
      status: this.status,
      headers: this.headersOut!,
      body,
      revision: this.revision,
      storedAt: Date.now(),
      serviceId: this.op.service.id,
    };
    const ttlSeconds = this.op.cache!.ttlSeconds;
    const first = this.varyNames === undefined ? undefined : { base: this.cacheKey!, names: this.varyNames };
    this.dp.cache.set(first ? this.variantKey! : this.cacheKey!, entry, ttlSeconds, first);
    const shared = this.dp.sharedCache;
    if (shared === undefined) return;
    // Redis gets the backend's headers as kept, without the operation's own (nosniff, CSP: the
    // last ones of `headersOut`, clientHeaders' `add`), which a hit there appends again
    // (shared-cache.ts `servedFromShared`).
    const own = this.plan.forwarding.responseHeaders.length;
    const kept: CachedResponse = own === 0 ? entry : { ...entry, headers: entry.headers.slice(0, entry.headers.length - own) };
    if (first) shared.set(first.base, { vary: first.names, serviceId: entry.serviceId }, ttlSeconds * 1000, this.cacheGeneration);
    shared.set(first ? this.variantKey! : this.cacheKey!, kept, ttlSeconds * 1000, this.cacheGeneration);
  }

  onResponseError(_controller: Dispatcher.DispatchController | null, err: Error): void {
    if (this.done) return;
    if (this.clientGone) {
      this.finish(499, 'client_closed');
      return;
    }
    if (this.retryStale(err)) return;
    if (this.res.headersSent) {
      // Mid-stream failure: the status is already out; cut the connection so the client sees it.
      this.res.destroy(err);
      this.finish(this.status, 'upstream_error', undefined, undefined, (err as { code?: string }).code ?? err.message);
      return;
    }
    const { body, outcome } = upstreamProblem(err);
    this.fail(body, outcome, { error: (err as { code?: string }).code ?? err.message });
  }

  /**
   * Retries a request whose pooled connection the gateway closed before answering it (at most
   * {@link MAX_STALE_RETRIES} times):
   * the error is a connection close or reset ({@link STALE_CONNECTION_CODES}), no byte of the
   * response arrived, and neither the deadline nor the client ended the exchange. The request is
   * dispatched again on the same lane (a new or another idle connection) on the next tick.
   *
   * Why this is safe for every method, POST included: the peer is always the gateway's internal
   * listener (nginx), never a model directly. nginx closes a keep-alive connection without a
   * response only while the connection is idle (a reload's old workers close their idle
   * connections at once, `keepalive_timeout`, `keepalive_requests`/`keepalive_time` end with
   * `Connection: close` on the last response instead); once it has read a request it always
   * answers, with the backend's response or its own 502/504. So a close before any response
   * byte means nginx never read the request: the race of a stale keep-alive connection, which
   * HTTP clients retry (RFC 9112 §9.3.1; RFC 9110 §9.2.2 allows it for a non-idempotent method
   * when the client has "some means to detect that the original request was never applied" —
   * here, nginx's behaviour; OkHttp's `retryOnConnectionFailure` does the same). undici already
   * re-queues requests that it had not written when their connection closes; this covers the
   * ones written into a socket the gateway was closing.
   * @returns true when the request was dispatched again (the exchange goes on).
   */
  private retryStale(err: Error): boolean {
    if (this.retries >= MAX_STALE_RETRIES || this.status !== 0 || this.timedOut || this.lane === undefined || this.upstreamOpts === undefined) return false;
    const code = (err as { code?: string }).code;
    if (code === undefined || !STALE_CONNECTION_CODES.has(code)) return false;
    // A FIN ("other side closed") counts only on a connection that had carried a response
    // before (a reused keep-alive connection). A reset or a broken pipe means the peer closed
    // with this request's bytes unread.
    if (code === 'UND_ERR_SOCKET' && !(((err as { socket?: { bytesRead?: number } }).socket?.bytesRead ?? 0) > 0)) return false;
    this.retries++;
    this.controller = undefined;
    // Until the redispatch a client that leaves is answered by onClientClose (499).
    this.upstreamStarted = false;
    // Not from inside undici's socket-error handling: on the next tick, like a fresh dispatch.
    process.nextTick(redispatch, this);
    return true;
  }
}

const EXCHANGE = Symbol('kea.exchange');
type ExchangeResponse = ServerResponse & { [EXCHANGE]?: Exchange };

/** `close` of a response (one shared listener, no closure per request): a client gone before the end aborts the upstream. */
function onClientClose(this: ExchangeResponse): void {
  const x = this[EXCHANGE];
  this[EXCHANGE] = undefined;
  if (!x || this.writableFinished) return;
  x.clientGone = true;
  if (x.controller) x.controller.abort(new Error('client closed the connection'));
  else if (!x.upstreamStarted && !x.done) x.finish(499, 'client_closed');
}

/**
 * Watches the exchange's response for a client that leaves before the answer ends (one shared
 * `close` listener, no closure per request): the upstream request is aborted, or the exchange
 * ends with 499 `client_closed` if it was not dispatched yet.
 */
export function watchClient(x: Exchange): void {
  (x.res as ExchangeResponse)[EXCHANGE] = x;
  x.res.on('close', onClientClose);
}
