/**
 * The data path (hot path): one request for one configured operation.
 *
 * Takes in: a raw `node:http` request already matched to a {@link CompiledOperation} (by the
 * `x-kea-operation` header or by method + path template) and its raw path parameters.
 * Gives out: the upstream's response (streamed, or buffered when it must be cached or
 * validated), or an RFC 9457 problem.
 *
 * Order of checks: authenticate (skipped for public operations without credentials) →
 * authorize → parameters (400) → content type (415) → body size (413) → JSON depth,
 * prototype-pollution keys and schema (400) → cache lookup → forward through an undici Pool
 * to the gateway's internal listener (Host = the service's internal hostname, plus
 * `x-kea-internal-token`) → optional response validation → cache store → audit record.
 *
 * Per request it allocates one {@link Exchange} (which is also the undici dispatch handler),
 * the upstream header list, and the body buffer; no express, no streams for small bodies, no
 * per-request closures on the forwarding path.
 */
import { hash, randomUUID } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import type { Dispatcher } from 'undici';
import { AuthError, authorize, identityHeaders, type ClaimPaths, type Identity } from '../auth/index.js';
import { INTERNAL_TOKEN_HEADER } from '../../lib/policy/config.js';
import type { AuditLog, AuditRecord } from '../audit.js';
import type { Metrics } from '../metrics.js';
import { isJsonMediaType, mediaTypeOf, type CompiledOperation, type CompiledService } from '../snapshot/build.js';
import { encodeSegment, renderTemplate } from '../snapshot/path-router.js';
import { BodyError, canonicalJson, charsetOf, findPollution, guardJson, jsonCharsetOk, readBody } from './body.js';
import { keyHeaders, varyNames, type CachedResponse, type ResponseCache } from './cache.js';
import { acceptRequestId, clientHeaders, securityHeaders, upstreamHeaders } from './headers.js';
import { DecodeError, explainErrors, extractParams, mapAjvErrors, validationDetail } from './params.js';
import { problem, sendProblem, type FieldError, type ProblemBody } from './problem.js';

/** The part of the auth module the data path needs (see `policy-server/auth/index.ts`). */
export interface RequestAuthenticator {
  authenticate(req: IncomingMessage): Promise<Identity | null>;
  authenticateCached?(req: IncomingMessage): Identity | null | undefined;
  loginUrl(returnTo: string): string;
}

import type { Upstream, UpstreamLane } from './upstream.js';

export type { Upstream, UpstreamLane } from './upstream.js';

/** A service's forwarding settings, from its policy.json (memoised per compiled service). */
export interface Forwarding {
  /** Forward the caller's `Authorization` header (`spec.security.forwardCredentials`). */
  readonly authorization: boolean;
  /** Forward the caller's `Cookie` header, KEA's session cookie included. */
  readonly cookie: boolean;
  /** Flat `[name, value, ...]` added to every proxied response (headers.ts `securityHeaders`). */
  readonly responseHeaders: readonly string[];
}

/** Options of {@link DataPath}. */
export interface DataPathOptions {
  auth: RequestAuthenticator;
  upstream: Upstream;
  cache: ResponseCache;
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

const EMPTY_BUF = Buffer.alloc(0);
/** Forwarded credential headers that join the cache key ({@link Forwarding}). */
const CREDENTIALS_AUTHORIZATION = ['authorization'] as const;
const CREDENTIALS_COOKIE = ['cookie'] as const;
const CREDENTIALS_BOTH = ['authorization', 'cookie'] as const;
/** Deadline sweep period, ms (the precision of per-operation upstream timeouts). */
const SWEEP_MS = 25;

/** The error an exchange is aborted with when its deadline passes (undici's codes). */
function timeoutError(body = false): Error {
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

/**
 * Largest declared body, bytes (128 MiB), that is read and discarded before a 413 so the
 * connection stays open under the gateway: the gateway's own cap for the CRD's largest
 * operation limit (64 MiB; controller/render gatewayBodyMaxSize).
 */
const MAX_DRAINED_BODY_BYTES = 128 * 1024 * 1024;

/** Dispatches an exchange's request again (a retry of {@link Exchange.retryStale}). */
function redispatch(x: Exchange): void {
  // The client left (onClientClose answered 499) or the deadline passed (the sweep answered 504).
  if (x.done || x.lane === undefined) return;
  x.upstreamStarted = true;
  x.lane.dispatch(x.upstreamOpts!, x);
}

function hasNoCache(req: IncomingMessage): boolean {
  const cc = req.headers['cache-control'];
  if (cc !== undefined && /(?:^|[\s,])no-(?:cache|store)\b/i.test(cc)) return true;
  return req.headers.pragma === 'no-cache';
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
class Exchange implements Dispatcher.DispatchHandler {
  readonly dp: DataPath;
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly op: CompiledOperation;
  readonly requestId: string;
  readonly t0: number;
  readonly path: string;
  identity: Identity | null = null;
  /** The request's first cache key ({@link ResponseCache.key}); undefined = the response is not stored. */
  cacheKey?: string;
  /** The response's `Vary` names ({@link varyNames}) when it has any: it is stored under {@link Exchange.variantKey}. */
  varyNames?: readonly string[];
  variantKey?: string;
  controller?: Dispatcher.DispatchController;
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
  /** Neighbours in the data path's list of exchanges waiting on the upstream (see {@link DataPath.track}). */
  prevWaiting: Exchange | null = null;
  nextWaiting: Exchange | null = null;
  isWaiting = false;
  /** The upstream lane this exchange was dispatched on (its in-flight count includes it). */
  lane?: UpstreamLane;
  /** Bytes of {@link DataPath.bufferedRequestBytes} this exchange's request body reserved. */
  bodyReserved = 0;
  /** The service's forwarding settings ({@link DataPath.forwardingFor}), set when forwarding. */
  fwd?: Forwarding;
  /** The upstream request as dispatched (kept for the retries of {@link Exchange.retryStale}). */
  upstreamOpts?: Dispatcher.DispatchOptions;
  /** Times the upstream request was dispatched again after a stale connection ({@link Exchange.retryStale}). */
  retries = 0;

  constructor(dp: DataPath, req: IncomingMessage, res: ServerResponse, op: CompiledOperation, requestId: string, path: string) {
    this.dp = dp;
    this.req = req;
    this.res = res;
    this.op = op;
    this.requestId = requestId;
    this.path = path;
    this.t0 = performance.now();
  }

  /** Response headers KEA adds for the client (flat list). */
  extraHeaders(cache: 'HIT' | 'MISS' | undefined): string[] {
    const h = ['x-request-id', this.requestId];
    if (cache) h.push('x-cache', cache);
    if (this.identity?.setCookie) h.push('set-cookie', this.identity.setCookie);
    return h;
  }

  /** Ends with a problem response and writes the audit record. */
  fail(body: ProblemBody, outcome: string, extra?: { headers?: string[]; close?: boolean; validation?: FieldError[]; error?: string }): void {
    body.requestId = this.requestId;
    const h = this.extraHeaders(undefined);
    if (extra?.headers) for (const x of extra.headers) h.push(x);
    sendProblem(this.res, body, h, extra?.close);
    this.finish(body.status, outcome, undefined, extra?.validation, extra?.error);
  }

  finish(status: number, outcome: string, cache?: 'HIT' | 'MISS', validation?: FieldError[], error?: string): void {
    if (this.done) return;
    this.done = true;
    this.dp.inflight--;
    if (this.lane !== undefined) {
      this.lane.inflight--;
      this.lane = undefined;
    }
    if (this.bodyReserved !== 0) {
      this.dp.bufferedRequestBytes -= this.bodyReserved;
      this.bodyReserved = 0;
    }
    if (this.deadline !== 0) this.dp.untrack(this);
    const latencyMs = performance.now() - this.t0;
    const op = this.op;
    this.dp.metrics.observe(op.key, outcome, status, latencyMs / 1000);
    const rec: AuditRecord = {
      requestId: this.requestId,
      user: this.identity ? this.identity.subject : null,
      operation: op.key,
      service: op.service.id,
      revision: this.revision,
      method: op.method,
      path: this.path,
      status,
      latencyMs: Math.round(latencyMs * 1000) / 1000,
      cache,
      outcome,
      validation,
      error,
    };
    this.dp.audit.end(rec);
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
    const out = clientHeaders(headers, this.fwd!.responseHeaders);
    const op = this.op;
    const cl = headers['content-length'];
    const small = !(typeof cl === 'string' && Number(cl) > this.dp.maxBufferedResponseBytes);
    const validate =
      op.responseValidators !== undefined && this.contentType !== undefined && isJsonMediaType(mediaTypeOf(this.contentType)) && this.req.method !== 'HEAD';
    if (this.cacheKey !== undefined && (statusCode !== 200 || !responseCacheable(headers))) this.cacheKey = undefined;
    if (this.cacheKey !== undefined && (headers.vary !== undefined || headers['content-encoding'] !== undefined)) this.keyByVary(headers);
    this.buffering = small && (this.cacheKey !== undefined || validate);
    if (this.buffering) {
      this.headersOut = out;
      this.chunks = [];
      return;
    }
    if (this.clientGone) return;
    for (const x of this.extraHeaders(op.cache ? 'MISS' : undefined)) out.push(x);
    this.res.writeHead(statusCode, out);
  }

  /**
   * A cacheable response with `Vary` (or a `Content-Encoding`) is stored per value of the
   * request headers it names (RFC 9111 §4.1); `Vary: *`, or a header with a per-request
   * value, makes it not cacheable.
   */
  private keyByVary(headers: Record<string, string | string[] | undefined>): void {
    const names = varyNames(headers.vary, headers['content-encoding']);
    const values = names === null || names.length === 0 ? undefined : this.dp.varyValues(this, names);
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
    let validation: FieldError[] | undefined;
    const validators = this.op.responseValidators;
    if (validators && this.contentType && isJsonMediaType(mediaTypeOf(this.contentType))) {
      const s = String(this.status);
      const v = validators.get(s) ?? validators.get(`${s[0]}XX`) ?? validators.get('DEFAULT');
      if (v) {
        let ok: boolean;
        try {
          const value: unknown = JSON.parse(body.toString('utf8'));
          ok = v(value) as boolean;
          if (!ok) validation = explainErrors(v, value, body.length, 'response');
        } catch {
          ok = false;
          validation = [{ in: 'response', pointer: '', message: 'is not valid JSON' }];
        }
        if (!ok) {
          this.dp.metrics.validation(this.op.key, validation!);
          this.dp.audit.logger.warn('upstream response does not match the schema', {
            requestId: this.requestId,
            operation: this.op.key,
            revision: this.revision,
            status: this.status,
            errors: validation,
          });
          if (this.op.def.responseValidation === 'enforce') {
            this.fail(problem('invalid-upstream-response', 'the service answered with a body that does not match its documented response', { errors: validation }), 'response_invalid', {
              validation,
            });
            return;
          }
        }
      }
    }
    if (this.cacheKey !== undefined && validation === undefined) {
      const entry: CachedResponse = {
        status: this.status,
        headers: this.headersOut!,
        body,
        revision: this.revision,
        storedAt: Date.now(),
        serviceId: this.op.service.id,
      };
      if (this.varyNames === undefined) this.dp.cache.set(this.cacheKey, entry, this.op.cache!.ttlSeconds);
      else this.dp.cache.set(this.variantKey!, entry, this.op.cache!.ttlSeconds, { base: this.cacheKey, names: this.varyNames });
    }
    const out = this.headersOut!.slice();
    for (const x of this.extraHeaders(this.op.cache ? 'MISS' : undefined)) out.push(x);
    this.res.writeHead(this.status, out);
    this.res.end(body);
    this.finish(this.status, validation ? 'forwarded_invalid_response' : 'forwarded', this.op.cache ? 'MISS' : undefined, validation);
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

/** The per-request data path. One per server. */
export class DataPath {
  readonly auth: RequestAuthenticator;
  readonly upstream: Upstream;
  readonly cache: ResponseCache;
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
  private readonly claimMemo = new WeakMap<CompiledService, ClaimPaths>();
  private readonly forwardingMemo = new WeakMap<CompiledService, Forwarding>();
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
  private readonly bodyMemo = new WeakMap<CompiledOperation, LRUCache<string, string>>();
  private sweeper?: NodeJS.Timeout;

  constructor(opts: DataPathOptions) {
    this.auth = opts.auth;
    this.upstream = opts.upstream;
    this.cache = opts.cache;
    this.audit = opts.audit;
    this.metrics = opts.metrics;
    this.internalToken = opts.internalToken;
    this.maxJsonDepth = opts.maxJsonDepth ?? 64;
    this.maxBufferedResponseBytes = opts.maxBufferedResponseBytes ?? 4 * 1024 * 1024;
    this.maxBufferedRequestBytes = opts.maxBufferedRequestBytes ?? 128 * 1024 * 1024;
    this.claimDefaults = opts.claimDefaults ?? {};
  }

  /** The validated-body memo of a cacheable operation (see run(), step 3). */
  private memoFor(op: CompiledOperation): LRUCache<string, string> {
    let m = this.bodyMemo.get(op);
    if (!m) this.bodyMemo.set(op, (m = new LRUCache<string, string>({ max: 4096 })));
    return m;
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

  /** Forwarding settings of a service (memoised per compiled service: one WeakMap lookup per request). */
  forwardingFor(svc: CompiledService): Forwarding {
    let f = this.forwardingMemo.get(svc);
    if (!f) {
      const creds = svc.def.forwardCredentials ?? [];
      f = { authorization: creds.includes('authorization'), cookie: creds.includes('cookie'), responseHeaders: securityHeaders(svc.def.contentSecurityPolicy) };
      this.forwardingMemo.set(svc, f);
    }
    return f;
  }

  /**
   * The values the backend sees (or saw) for the request headers a response's `Vary` names,
   * in the order of `names`: KEA's own values for the headers it sets (identity headers from
   * the caller's identity, `x-forwarded-for` as forwarded, `host` constant), the client's
   * value for every other header (also for one KEA strips: more specific, never less).
   * @returns the values (undefined = absent), or null when one is unique per request
   *   (`x-request-id`): such a response is not cacheable.
   */
  varyValues(x: Exchange, names: readonly string[]): (string | undefined)[] | null {
    const h = x.req.headers;
    const out: (string | undefined)[] = [];
    for (const name of names) {
      if (name === 'x-request-id') return null;
      if (name === 'host') out.push(undefined);
      else if (name.startsWith('x-kea-')) out.push(x.identity ? identityHeaders(x.identity, this.claimsFor(x.op.service))[name] : undefined);
      else if (name === 'x-forwarded-for') {
        const xff = h['x-forwarded-for'];
        const remote = x.req.socket.remoteAddress ?? '';
        out.push(xff ? `${xff}, ${remote}` : remote);
      } else {
        const v = h[name];
        out.push(v === undefined || typeof v === 'string' ? v : v.join(', '));
      }
    }
    return out;
  }

  /** Claim paths of a service, falling back to the server defaults (memoised per compiled service). */
  claimsFor(svc: CompiledService): ClaimPaths {
    let c = this.claimMemo.get(svc);
    if (!c) {
      const a = svc.def.authorization ?? {};
      c = {
        rolesClaim: a.rolesClaim || this.claimDefaults.rolesClaim,
        groupsClaim: a.groupsClaim || this.claimDefaults.groupsClaim,
        scopesClaim: a.scopesClaim || this.claimDefaults.scopesClaim,
      };
      this.claimMemo.set(svc, c);
    }
    return c;
  }

  /** Generates or accepts the request id. */
  static requestId(req: IncomingMessage): string {
    return acceptRequestId(req.headers['x-request-id']) ?? randomUUID();
  }

  /**
   * Handles one request for `op`. Never throws; every failure becomes a problem response.
   * @param pathParams - decoded values of the operation's path template parameters, in order
   *   (from the canonical path, snapshot/path-router.ts `canonicalPath`).
   * @param rawQuery - the raw query string (without `?`).
   * @param path - the canonical (re-encoded) request path without query (for the audit record).
   */
  async handle(req: IncomingMessage, res: ServerResponse, op: CompiledOperation, pathParams: readonly string[], rawQuery: string, path: string): Promise<void> {
    this.inflight++;
    const x = new Exchange(this, req, res, op, DataPath.requestId(req), path);
    if (this.audit.debug) this.audit.start(x.requestId, req.method ?? '', path, op.key);
    try {
      await this.run(x, pathParams, rawQuery);
    } catch (err) {
      this.audit.logger.error('data path failure', { requestId: x.requestId, operation: op.key, error: (err as Error).stack ?? String(err) });
      if (!x.done) x.fail(problem('internal', 'unexpected error'), 'internal_error', { close: true });
    }
  }

  private async run(x: Exchange, pathParams: readonly string[], rawQuery: string): Promise<void> {
    const { req, res, op } = x;
    const svc = op.service;
    (res as ExchangeResponse)[EXCHANGE] = x;
    res.on('close', onClientClose);

    // 1. Authentication and authorization.
    const access = op.def.access;
    const h = req.headers;
    const needAuth = access.mode !== 'public' || h.authorization !== undefined || h.cookie !== undefined;
    if (needAuth) {
      try {
        const cached = this.auth.authenticateCached?.(req);
        x.identity = cached !== undefined ? cached : await this.auth.authenticate(req);
      } catch (err) {
        if (err instanceof AuthError || (err as Error)?.name === 'AuthError') {
          const ae = err as AuthError;
          if (access.mode !== 'public') {
            const hdrs = ['www-authenticate', ae.wwwAuthenticate];
            if (ae.setCookie) hdrs.push('set-cookie', ae.setCookie);
            x.fail(problem('unauthenticated', ae.message, { authError: ae.code }), 'unauthenticated', { headers: hdrs });
            return;
          }
          // Public operation: bad credentials are ignored; the caller is anonymous.
        } else {
          this.audit.logger.error('authentication backend failure', { requestId: x.requestId, error: (err as Error)?.message });
          x.fail(problem('auth-unavailable', 'credentials could not be checked right now'), 'auth_unavailable', { headers: ['retry-after', '1'] });
          return;
        }
      }
      if (x.done) return;
      const decision = authorize(x.identity, access, this.claimsFor(svc));
      if (decision === 'unauthenticated') {
        const accept = h.accept;
        if (req.method === 'GET' && typeof accept === 'string' && accept.includes('text/html')) {
          x.identity = null;
          res.writeHead(302, ['location', this.auth.loginUrl(req.url ?? '/'), 'cache-control', 'no-store', 'x-request-id', x.requestId, 'content-length', '0']);
          res.end();
          x.finish(302, 'login_redirect');
          return;
        }
        x.fail(problem('unauthenticated', 'this operation requires authentication'), 'unauthenticated', { headers: ['www-authenticate', 'Bearer realm="kea"'] });
        return;
      }
      if (decision === 'forbidden') {
        x.fail(problem('forbidden', 'your identity lacks the role, group or scope this operation requires'), 'forbidden');
        return;
      }
    }

    // 2. Parameters. Path values arrive decoded from the canonical path (server.ts); upstream
    // they are re-encoded deterministically (docs/architecture.md, "Canonical request path").
    const values: Record<string, string> | undefined = op.pathParamNames.length > 0 ? Object.create(null) : undefined;
    for (let i = 0; i < op.pathParamNames.length; i++) values![op.pathParamNames[i]] = encodeSegment(pathParams[i] ?? '');
    if (op.validateParams) {
      let params;
      try {
        params = extractParams(op, pathParams, rawQuery, h, op.headerParams.length > 0 ? req.headersDistinct : undefined);
      } catch (err) {
        if (!(err instanceof DecodeError)) throw err;
        const errors: FieldError[] = [{ in: err.where, pointer: `/${err.param}`, message: err.fieldMessage }];
        this.metrics.validation(op.key, errors);
        x.fail(problem('validation-failed', err.message, { errors }), 'invalid_request', { validation: errors });
        return;
      }
      if (!op.validateParams(params)) {
        const errors = mapAjvErrors(op.validateParams.errors, 'params');
        this.metrics.validation(op.key, errors);
        x.fail(problem('validation-failed', validationDetail(errors, 'parameter'), { errors }), 'invalid_request', { validation: errors });
        return;
      }
    }

    // 3. Body: content type, size, structure, schema.
    const spec = op.body;
    const hasBody = (h['content-length'] !== undefined && h['content-length'] !== '0') || h['transfer-encoding'] !== undefined;
    if (spec && hasBody) {
      const ct = h['content-type'];
      const mt = ct ? mediaTypeOf(ct) : '';
      if (!(mt === spec.mediaType || (spec.isJson && isJsonMediaType(mt)))) {
        x.fail(problem('unsupported-media-type', `expected Content-Type ${spec.mediaType}${ct ? `, got ${mt}` : ''}`, { accept: spec.mediaType }), 'unsupported_media_type', {
          headers: ['accept-post', spec.mediaType],
          close: true,
        });
        return;
      }
      if (spec.isJson && ct !== undefined && !jsonCharsetOk(ct)) {
        x.fail(problem('unsupported-media-type', `JSON bodies must be UTF-8 (RFC 8259 §8.1), got charset=${charsetOf(ct)}`, { accept: `${spec.mediaType}; charset=utf-8` }), 'unsupported_media_type', {
          headers: ['accept-post', spec.mediaType],
          close: true,
        });
        return;
      }
      const ce = h['content-encoding'];
      if (ce !== undefined && ce.toLowerCase() !== 'identity' && spec.validate) {
        x.fail(problem('unsupported-media-type', `Content-Encoding ${ce} is not accepted for validated bodies`), 'unsupported_media_type', { close: true });
        return;
      }
    }
    let body: Buffer = EMPTY_BUF;
    if (hasBody) {
      // Bodies are read whole (validation, cache key, one upstream write): all of them together
      // stay under maxBufferedRequestBytes. A declared length over the limit is refused by readBody.
      const cl = h['content-length'];
      const want = cl === undefined ? op.maxBodyBytes : Number(cl) <= op.maxBodyBytes ? Number(cl) : 0;
      if (want > 0 && this.bufferedRequestBytes > 0 && this.bufferedRequestBytes + want > this.maxBufferedRequestBytes) {
        x.fail(problem('server-busy', 'too many request bodies are being received right now; retry later'), 'server_busy', { headers: ['retry-after', '1'], close: true });
        return;
      }
      this.bufferedRequestBytes += want;
      x.bodyReserved = want;
      try {
        body = await readBody(req, op.maxBodyBytes);
      } catch (err) {
        if (err instanceof BodyError && err.reason === 'too-large') {
          // A declared Content-Length (what nginx sends: it buffers the body, bounded by the
          // gateway's client_max_body_size) over the limit: the body is read and discarded,
          // then answered, on a connection kept open. Answering at once and closing reset the
          // connection under nginx while it still sent the body (nginx answered 502 instead of
          // this 413: 14 of 40 in dev/ngf-policies.int.test.ts); answering at once without
          // closing still gave 2 of 320. A chunked body, or a declared one over the largest
          // gateway cap (128 MiB, controller render gatewayBodyMaxSize for the 64 MiB
          // maximum), is not worth reading: answered at once, connection closed.
          const drain = h['content-length'] !== undefined && Number(h['content-length']) <= MAX_DRAINED_BODY_BYTES;
          if (drain) {
            await new Promise<void>((done) => {
              req.once('end', done);
              req.once('close', done);
              req.once('error', done);
              req.resume();
            });
          }
          x.fail(problem('payload-too-large', err.message, { limit: op.maxBodyBytes }), 'payload_too_large', { close: !drain });
          return;
        }
        if (!x.done) x.finish(499, 'client_closed');
        return;
      }
      if (x.done) return;
    }
    let parsed: unknown;
    let isParsed = false;
    let bodyDigest: string | undefined;
    if (spec) {
      if (body.length === 0) {
        if (spec.required) {
          const errors: FieldError[] = [{ in: 'body', pointer: '', message: 'is required' }];
          this.metrics.validation(op.key, errors);
          x.fail(problem('validation-failed', 'a request body is required', { errors }), 'invalid_request', { validation: errors });
          return;
        }
      } else if (spec.isJson) {
        // Cacheable operations remember, per compiled operation, the canonical digest of
        // every body that passed validation, keyed by the raw bytes' SHA-256: a repeated body
        // (the common inference retry) skips parse, guards, ajv and canonicalisation.
        let memo: LRUCache<string, string> | undefined;
        let rawKey: string | undefined;
        if (op.cache) {
          memo = this.memoFor(op);
          rawKey = hash('sha256', body, 'base64url');
          bodyDigest = memo.get(rawKey);
        }
        if (bodyDigest === undefined) {
          const errors = this.checkJson(op, body);
          if (errors) {
            this.metrics.validation(op.key, errors);
            x.fail(problem('validation-failed', errors[0].message === 'is not valid JSON' ? 'the body is not valid JSON' : validationDetail(errors, 'body'), { errors }), 'invalid_request', {
              validation: errors,
            });
            return;
          }
          parsed = this.parsedScratch;
          this.parsedScratch = undefined;
          isParsed = true;
          if (memo && rawKey !== undefined) {
            bodyDigest = hash('sha256', canonicalJson(parsed), 'base64url');
            memo.set(rawKey, bodyDigest);
          }
        }
      }
    }

    // 4. Cache lookup. The key covers everything the response can depend on (datapath/cache.ts):
    // the upstream path as forwarded, the query, the declared header parameters, credentials
    // the ApiSchema forwards, the body, the config version, the identity for `scope: identity`,
    // and (second key) the request headers the backend's `Vary` names.
    const target = values ? renderTemplate(op.upstream, values) : renderTemplate(op.upstream, {});
    const cachePolicy = op.cache;
    if (cachePolicy) {
      const canonical = bodyDigest ?? (isParsed ? canonicalJson(parsed) : body.toString('latin1'));
      const subject = cachePolicy.scope === 'identity' ? (x.identity ? `${x.identity.via === 'session' ? 's' : 'b'}:${x.identity.subject}` : '') : undefined;
      let hk = op.cacheKeyHeaders.length > 0 ? keyHeaders(op.cacheKeyHeaders, h) : '';
      const fwd = this.forwardingFor(svc);
      if (fwd.authorization || fwd.cookie) hk += keyHeaders(fwd.authorization ? (fwd.cookie ? CREDENTIALS_BOTH : CREDENTIALS_AUTHORIZATION) : CREDENTIALS_COOKIE, h);
      const key = this.cache.key(svc.id, op.def.operationId, svc.def.configVersion, target, rawQuery, hk, subject, canonical);
      if (hasNoCache(req)) {
        this.cache.countBypass(svc.id);
        this.metrics.cache(false);
      } else {
        let found = this.cache.lookup(key);
        if (found !== undefined && found.vary !== undefined) {
          const vv = this.varyValues(x, found.vary);
          found = vv === null ? undefined : this.cache.lookup(this.cache.variantKey(key, found.vary, vv));
        }
        const hit = found === undefined || found.vary !== undefined ? undefined : found;
        this.cache.count(svc.id, hit !== undefined);
        this.metrics.cache(hit !== undefined);
        if (hit) {
          x.revision = hit.revision;
          const out = hit.headers.slice();
          out.push('age', String(Math.floor((Date.now() - hit.storedAt) / 1000)));
          for (const e of x.extraHeaders('HIT')) out.push(e);
          res.writeHead(hit.status, out);
          res.end(hit.body);
          x.finish(hit.status, 'cache_hit', 'HIT');
          return;
        }
      }
      if (req.method !== 'HEAD') x.cacheKey = key;
    }

    // 5. Forward: on the service's own lane (pool + concurrency limit, datapath/upstream.ts).
    const lane = this.upstream.lane(svc.def.upstream.host);
    if (lane.inflight >= lane.limit) {
      x.fail(problem('upstream-busy', `this service already has ${lane.limit} requests in flight; retry later`), 'upstream_busy', { headers: ['retry-after', '1'] });
      return;
    }
    const fwd = this.forwardingFor(svc);
    x.fwd = fwd;
    // Credentials are stripped by upstreamHeaders and put back only where the ApiSchema opts in.
    const headers = upstreamHeaders(h, false);
    if (fwd.authorization && h.authorization !== undefined) headers.push('authorization', h.authorization);
    if (fwd.cookie && h.cookie !== undefined) headers.push('cookie', h.cookie);
    const xff = h['x-forwarded-for'];
    const remote = req.socket.remoteAddress ?? '';
    headers.push(
      'host',
      svc.def.upstream.host,
      INTERNAL_TOKEN_HEADER,
      this.internalToken,
      'x-request-id',
      x.requestId,
      'x-forwarded-for',
      xff ? `${xff}, ${remote}` : remote,
    );
    if (x.identity) {
      const ih = identityHeaders(x.identity, this.claimsFor(svc));
      for (const k in ih) headers.push(k, ih[k]);
    }
    const upstreamPath = target + (rawQuery ? `?${rawQuery}` : '');
    if (x.clientGone) {
      if (!x.done) x.finish(499, 'client_closed');
      return;
    }
    this.track(x);
    lane.inflight++;
    x.lane = lane;
    x.upstreamOpts = {
      path: upstreamPath,
      // HEAD on a GET operation stays HEAD upstream (RFC 9110 §9.3.2): no body is sent back.
      method: (req.method === 'HEAD' ? 'HEAD' : op.method) as Dispatcher.HttpMethod,
      // Also spares undici's per-request net.isIP() check of the Host header.
      servername: svc.def.upstream.host,
      headers,
      body: body.length > 0 ? body : null,
      // Deadlines are the sweeper's (headers, then body idle). undici's own timers allocate
      // up to three timer objects per request that stay referenced ~0.5 s (a heap snapshot at
      // 14k req/s held 15k of them).
      headersTimeout: 0,
      bodyTimeout: 0,
    } as Dispatcher.DispatchOptions;
    lane.dispatch(x.upstreamOpts, x);
  }

  /** The value parsed by the last successful {@link DataPath.checkJson} (consumed at once). */
  private parsedScratch: unknown;

  /**
   * Parse, depth and prototype-pollution guard, schema. On success the parsed value is left in
   * `parsedScratch` for the caller to take synchronously (nothing keeps it alive afterwards).
   * @returns the field errors, or undefined when the body is acceptable.
   */
  private checkJson(op: CompiledOperation, body: Buffer): FieldError[] | undefined {
    let value: unknown;
    try {
      value = JSON.parse(body.toString('utf8'));
    } catch {
      return [{ in: 'body', pointer: '', message: 'is not valid JSON' }];
    }
    const { validate, closedDepth } = op.body!;
    // A closed schema (bounded nesting, no pollution keys admitted) implies the structural
    // guard: validate first, and walk the value only to explain a rejection. ajv cannot recurse
    // deeper than such a schema, so deep input is safe to hand it.
    const closed = validate !== undefined && closedDepth !== undefined && closedDepth <= this.maxJsonDepth;
    if (!closed) {
      const bad = this.guard(value);
      if (bad) return bad;
    }
    if (validate) {
      let ok: boolean;
      try {
        ok = validate(value) as boolean;
      } catch {
        // A recursive schema on pathological data can exhaust the stack: still the client's fault.
        return [{ in: 'body', pointer: '', message: 'cannot be validated (too complex)' }];
      }
      if (!ok) return (closed && this.guard(value)) || explainErrors(validate, value, body.length, 'body');
    }
    this.parsedScratch = value;
    return undefined;
  }

  /** Depth and prototype-pollution guard of a parsed body; the field errors, or undefined. */
  private guard(value: unknown): FieldError[] | undefined {
    const bad = guardJson(value, this.maxJsonDepth);
    if (bad === 'depth') return [{ in: 'body', pointer: '', message: `nesting deeper than ${this.maxJsonDepth} levels` }];
    if (bad === 'key') return [{ in: 'body', pointer: findPollution(value) ?? '', message: 'is a forbidden key (prototype pollution)' }];
    return undefined;
  }
}
