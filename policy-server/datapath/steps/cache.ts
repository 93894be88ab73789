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
 * bypasses the lookup (the answer is still stored). Always synchronous.
 */
import type { IncomingMessage } from 'node:http';
import type { CachePolicy } from '../../../lib/api/types.js';
import type { CompiledOperation } from '../../snapshot/build.js';
import { keyHeaders, type CachedResponse } from '../cache.js';
import type { Exchange } from '../exchange.js';
import type { Step, StepContext, StepFactory, StepResult } from '../step.js';

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
      const hit = this.lookup(x, key);
      if (hit) {
        x.revision = hit.revision;
        const out = hit.headers.slice();
        out.push('age', String(Math.floor((Date.now() - hit.storedAt) / 1000)));
        for (const e of x.extraHeaders('HIT')) out.push(e);
        x.res.writeHead(hit.status, out);
        x.res.end(hit.body);
        x.finish(hit.status, 'cache_hit', 'HIT');
        return undefined;
      }
    }
    if (req.method !== 'HEAD') x.cacheKey = key;
    return undefined;
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

  /** The stored response for `key` (through its `Vary` index, RFC 9111 §4.1), counted as a hit or a miss. */
  private lookup(x: Exchange, key: string): CachedResponse | undefined {
    const cache = x.dp.cache;
    let found = cache.lookup(key);
    if (found !== undefined && found.vary !== undefined) {
      const vv = x.varyValues(found.vary);
      found = vv === null ? undefined : cache.lookup(cache.variantKey(key, found.vary, vv));
    }
    const hit = found === undefined || found.vary !== undefined ? undefined : found;
    cache.count(x.op.service.id, hit !== undefined);
    x.dp.metrics.cache(hit !== undefined);
    return hit;
  }
}

/** Operations with a `cache` policy (`ttlSeconds` > 0: `CompiledOperation.cache`). */
export const cacheStep: StepFactory = {
  name: 'cache',
  compile: (op: CompiledOperation, ctx: StepContext) => (op.cache ? new Cache(op.cache, op, ctx.plan.forwarding.credentialHeaders) : undefined),
};
