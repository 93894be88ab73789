/**
 * Cache step: the response cache lookup (policy.json `operations[].cache`: `ttlSeconds`,
 * `scope`; datapath/cache.ts says what the key covers and how `Vary` is honoured).
 *
 * Takes in: the upstream path as it will be forwarded, the query, the declared header
 * parameters, the credentials the ApiSchema forwards, the body (`x.bodyDigest`, else its raw
 * bytes), the service's config version and, for `scope: identity`, the caller. A hit ends the
 * exchange with the stored answer (`x-cache: HIT`, `Age`); a miss sets `x.cacheKey`, under
 * which the response is stored when it ends (exchange.ts `onResponseEnd`: a 200 that the
 * backend allows to be stored). `Cache-Control: no-cache`/`no-store` or `Pragma: no-cache`
 * bypasses the lookup (the answer is still stored).
 *
 * Two levels: the process's LRU (datapath/cache.ts), then, when the server has one, the
 * second level in Redis (datapath/shared-cache.ts). The first is synchronous; only a miss
 * there waits, for one bounded Redis round trip (two for a response with `Vary` not known
 * here yet). A hit in Redis fills the first level and is answered like a first-level hit
 * (`x-cache: HIT`, kept for compatibility); the RFC 9211 `Cache-Status` header says which
 * level answered: `kea; hit` from this process, `kea-shared; hit, kea; fwd=uri-miss` from
 * Redis. Redis down or slow is a miss: the model answers, never an error.
 */
import type { IncomingMessage } from 'node:http';
import type { CachePolicy } from '../../../lib/api/types.js';
import type { CompiledOperation } from '../../snapshot/build.js';
import { keyHeaders, type CachedResponse, type VaryIndex } from '../cache.js';
import { servedFromShared } from '../shared-cache.js';
import type { Exchange } from '../exchange.js';
import type { Step, StepContext, StepFactory, StepResult } from '../step.js';

/** RFC 9211 `Cache-Status` of a first-level hit. */
const STATUS_L1 = 'kea; hit';
/** RFC 9211 `Cache-Status` of a second-level hit: the shared cache (closest to the model) hit, this process's missed. */
const STATUS_L2 = 'kea-shared; hit, kea; fwd=uri-miss';

/** Writes a stored answer (either level) and ends the exchange. */
function answer(x: Exchange, hit: CachedResponse, cacheStatus: string): void {
  x.revision = hit.revision;
  const out = hit.headers.slice();
  out.push('age', String(Math.max(0, Math.floor((Date.now() - hit.storedAt) / 1000))), 'cache-status', cacheStatus);
  for (const e of x.extraHeaders('HIT')) out.push(e);
  x.res.writeHead(hit.status, out);
  x.res.end(hit.body);
  x.finish(hit.status, 'cache_hit', 'HIT');
}

function hasNoCache(req: IncomingMessage): boolean {
  const cc = req.headers['cache-control'];
  if (cc !== undefined && /(?:^|[\s,])no-(?:cache|store)\b/i.test(cc)) return true;
  return req.headers.pragma === 'no-cache';
}

class Cache implements Step {
  readonly name = 'cache';
  private readonly policy: CachePolicy;
  /** Lower-case names of the declared header parameters (`CompiledOperation.cacheKeyHeaders`). */
  private readonly keyHeaders: readonly string[];
  /** The credential headers the service forwards (service-settings.ts `Forwarding.credentialHeaders`). */
  private readonly credentialHeaders: readonly string[];

  constructor(policy: CachePolicy, op: CompiledOperation, credentialHeaders: readonly string[]) {
    this.policy = policy;
    this.keyHeaders = op.cacheKeyHeaders;
    this.credentialHeaders = credentialHeaders;
  }

  run(x: Exchange): StepResult {
    const req = x.req;
    const key = this.key(x);
    if (hasNoCache(req)) {
      x.dp.cache.countBypass(x.op.service.id);
      x.dp.metrics.cache(false);
    } else {
      const cache = x.dp.cache;
      let found = cache.lookup(key);
      let index: VaryIndex | undefined;
      if (found !== undefined && found.vary !== undefined) {
        index = found;
        const vv = x.varyValues(found.vary);
        // A value unique per request (x-request-id): no variant is stored, in either level.
        if (vv === null) return this.miss(x, key, false);
        found = cache.lookup(cache.variantKey(key, found.vary, vv));
      }
      if (found !== undefined && found.vary === undefined) {
        cache.count(x.op.service.id, true);
        x.dp.metrics.cache(true);
        answer(x, found, STATUS_L1);
        return undefined;
      }
      const shared = x.dp.sharedCache;
      if (shared !== undefined) {
        if (shared.available()) return this.lookupShared(x, key, index);
        shared.count('error'); // Redis unavailable: the first level only, without waiting
      }
      return this.miss(x, key, false);
    }
    if (req.method !== 'HEAD') x.cacheKey = key;
    return undefined;
  }

  /** Counts a miss (both levels looked, or only the first when there is no second) and lets the exchange go on to the model. */
  private miss(x: Exchange, key: string, shared: boolean): undefined {
    x.dp.cache.count(x.op.service.id, false);
    x.dp.metrics.cache(false);
    if (shared) x.dp.sharedCache!.count('miss');
    if (x.req.method !== 'HEAD') x.cacheKey = key;
    return undefined;
  }

  /**
   * The second level, after a first-level miss: the entry under the first key, through its
   * `Vary` index to the variant (RFC 9111 §4.1; the first level's index when it has one). A
   * hit fills the first level for what is left of the entry's TTL and answers; a miss, or
   * Redis failing (counted by shared-cache.ts), goes on to the model.
   * @param index - the first level's `Vary` index for `key`, when it had one.
   */
  private async lookupShared(x: Exchange, key: string, index: VaryIndex | undefined): Promise<void> {
    const cache = x.dp.cache;
    const shared = x.dp.sharedCache!;
    const serviceId = x.op.service.id;
    let names = index?.vary;
    let k = key;
    if (names !== undefined) k = cache.variantKey(key, names, x.varyValues(names)!);
    let r = await shared.lookup(k, serviceId);
    if (r !== undefined && names === undefined && r.found !== undefined && r.found.vary !== undefined) {
      names = r.found.vary;
      const vv = x.varyValues(names);
      if (vv === null) r = { generation: r.generation };
      else {
        k = cache.variantKey(key, names, vv);
        r = await shared.lookup(k, serviceId);
      }
    }
    if (x.done) return; // the client left meanwhile (answered 499)
    if (r === undefined) {
      this.miss(x, key, false); // Redis failed: counted as `error` there
      return;
    }
    x.cacheGeneration = r.generation;
    if (r.found === undefined || r.found.vary !== undefined) {
      this.miss(x, key, true);
      return;
    }
    const hit = servedFromShared(r.found, x.plan.forwarding.responseHeaders);
    // Fill the first level for the rest of the entry's TTL (clamped: the writer's clock may differ from ours).
    const left = Math.min(this.policy.ttlSeconds * 1000, this.policy.ttlSeconds * 1000 - (Date.now() - hit.storedAt));
    if (left >= 1) cache.set(k, hit, Math.ceil(left) / 1000, names !== undefined ? { base: key, names } : undefined);
    cache.count(serviceId, true);
    x.dp.metrics.cache(true);
    shared.count('hit');
    answer(x, hit, STATUS_L2);
  }

  /** The request's first cache key (cache.ts `ResponseCache.key`). */
  private key(x: Exchange): string {
    const { op, req } = x;
    const svc = op.service;
    const h = req.headers;
    const canonical = x.bodyDigest ?? x.body.toString('latin1');
    const subject = this.policy.scope === 'identity' ? (x.identity ? `${x.identity.via === 'session' ? 's' : 'b'}:${x.identity.subject}` : '') : undefined;
    let hk = this.keyHeaders.length > 0 ? keyHeaders(this.keyHeaders, h) : '';
    if (this.credentialHeaders.length > 0) hk += keyHeaders(this.credentialHeaders, h);
    return x.dp.cache.key(svc.id, op.def.operationId, svc.def.configVersion, x.upstreamTarget(), x.rawQuery, hk, subject, canonical);
  }
}

/** Operations with a `cache` policy (`ttlSeconds` > 0: `CompiledOperation.cache`). */
export const cacheStep: StepFactory = {
  name: 'cache',
  compile: (op: CompiledOperation, ctx: StepContext) => (op.cache ? new Cache(op.cache, op, ctx.plan.forwarding.credentialHeaders) : undefined),
};
