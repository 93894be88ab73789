/**
 * Inference-aware response cache.
 *
 * Opt-in per operation (`cache: { ttlSeconds, scope }` in the ApiSchema). The key is one
 * SHA-256 over everything the upstream response can depend on:
 * - the service id, operationId and the service's `configVersion` (a digest of its config and
 *   traffic split, so a new revision or weight change never serves old answers);
 * - the upstream path exactly as forwarded (the operation's upstream template rendered with the
 *   path parameter values);
 * - the query string, with parameters stably sorted by name so that `?a=1&b=2` and
 *   `?b=2&a=1` share an entry while repeated values keep their order (`?lang=en&lang=fr` is
 *   not `?lang=fr&lang=en`); see {@link canonicalQuery};
 * - the values of every declared header parameter ({@link keyHeaders}); undeclared headers are
 *   left out, so they do not defeat caching, unless the backend's `Vary` names them;
 * - the `Authorization` and `Cookie` values when the ApiSchema forwards them to the backend
 *   (`spec.security.forwardCredentials`). Cookie parameters cannot be declared (the ApiSchema
 *   CRD admits path, query and header), and the Cookie header reaches a backend only then;
 * - the canonical JSON of the request body (key order and whitespace do not matter), or its
 *   raw bytes for non-JSON media types;
 * - for `scope: identity`, the caller's identity (kind and subject).
 *
 * The backend's `Vary` (RFC 9110 §12.5.5) is honoured as in a shared HTTP cache (RFC 9111
 * §4.1): the first key then holds a {@link VaryIndex} naming the headers, and each response
 * is stored under a second key over those headers' values ({@link ResponseCache.variantKey}).
 * `Vary: *` is never stored (see {@link varyNames}); a response with a `Content-Encoding`
 * varies on `Accept-Encoding` even if the backend forgot to say so.
 *
 * Entries live in a byte-bounded LRU (`lru-cache` `maxSize`, sized as body + headers + key)
 * with a per-entry TTL. When a service's `configVersion` changes or the service disappears,
 * its entries are dropped.
 */
import { hash } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { LRUCache } from 'lru-cache';

/** A stored response. */
export interface CachedResponse {
  status: number;
  /** Flat `[name, value, ...]` response headers (hop-by-hop and Set-Cookie removed). */
  headers: string[];
  body: Buffer;
  /** `x-kea-revision` of the upstream that produced it. */
  revision?: string;
  /** ms since epoch. */
  storedAt: number;
  serviceId: string;
  vary?: undefined;
}

/**
 * What the first key holds when the responses to it carry `Vary`: the request header names
 * (lower case, sorted, unique) whose values select the variant.
 */
export interface VaryIndex {
  vary: readonly string[];
  serviceId: string;
}

/** Counters of {@link ResponseCache}. */
export interface CacheStats {
  /** Stored responses plus {@link VaryIndex} records. */
  entries: number;
  bytes: number;
  maxBytes: number;
  hits: number;
  misses: number;
  stores: number;
  evictions: number;
  /** hits / (hits + misses), 0 when nothing was looked up. */
  hitRatio: number;
  perService: Record<string, { entries: number; hits: number; misses: number }>;
}

/** Options of {@link ResponseCache}. */
export interface ResponseCacheOptions {
  /** Total size bound in bytes (default 64 MiB). */
  maxBytes?: number;
  /** Largest single response body stored, bytes (default 1 MiB). */
  maxEntryBytes?: number;
}

/**
 * Canonical form of a raw query string (without `?`) for the cache key: the `&`-separated
 * parameters stably sorted by name, so that parameters of different names may come in any
 * order while the values of one name keep theirs (`lang=en&lang=fr` ≠ `lang=fr&lang=en`:
 * frameworks read repeated values as an ordered list, or take the first or the last). Empty
 * parameters (`a=1&&b=2`) are dropped, as every parser does. The string is returned unchanged
 * (so only byte-identical queries share an entry) when the order could be read differently by
 * the backend: a name with `%` or `+` (it may decode to another parameter's name) or any `;`
 * (a separator for some parsers).
 */
export function canonicalQuery(q: string): string {
  if (!q || q.indexOf('&') < 0 || q.indexOf(';') >= 0) return q;
  const pairs: Array<{ name: string; part: string }> = [];
  for (const part of q.split('&')) {
    if (!part) continue;
    const eq = part.indexOf('=');
    const name = eq < 0 ? part : part.slice(0, eq);
    if (name.indexOf('%') >= 0 || name.indexOf('+') >= 0) return q;
    pairs.push({ name, part });
  }
  // Array.prototype.sort is stable (ES2019): values of one name keep their relative order.
  pairs.sort((x, y) => (x.name < y.name ? -1 : x.name > y.name ? 1 : 0));
  let out = '';
  for (const p of pairs) out += out ? `&${p.part}` : p.part;
  return out;
}

/** Appends one length-prefixed value (absent = `-`) to a key string: no two value lists serialise alike. */
function field(v: string | undefined): string {
  return v === undefined ? '-\0' : `${v.length}:${v}\0`;
}

/** A request header's value as one string (node joins repeated fields; `set-cookie` is a list). */
function headerValue(v: string | string[] | undefined): string | undefined {
  return v === undefined || typeof v === 'string' ? v : v.join(', ');
}

/**
 * The declared header parameters' part of the cache key.
 * @param names - lower-case header names, sorted ({@link CompiledOperation.cacheKeyHeaders}).
 * @param headers - the client's request headers.
 * @returns `''` when `names` is empty, else one length-prefixed value per name.
 */
export function keyHeaders(names: readonly string[], headers: IncomingHttpHeaders): string {
  let out = '';
  for (let i = 0; i < names.length; i++) out += field(headerValue(headers[names[i]]));
  return out;
}

/**
 * Parses a response's `Vary` (RFC 9110 §12.5.5) into the request header names that select a
 * stored variant: lower case, sorted, unique. A `Content-Encoding` other than `identity` adds
 * `accept-encoding` (an encoded body must never reach a client that did not ask for it).
 * @returns the names (empty when the response varies on nothing), or `null` for `Vary: *`
 *   (the response must not be stored).
 */
export function varyNames(vary: string | string[] | undefined, contentEncoding: string | string[] | undefined): string[] | null {
  const names: string[] = [];
  if (vary !== undefined) {
    for (const line of typeof vary === 'string' ? [vary] : vary) {
      for (const raw of line.split(',')) {
        const n = raw.trim().toLowerCase();
        if (n === '*') return null;
        if (n && !names.includes(n)) names.push(n);
      }
    }
  }
  if (contentEncoding !== undefined) {
    const ce = headerValue(contentEncoding)!.trim().toLowerCase();
    if (ce && ce !== 'identity' && !names.includes('accept-encoding')) names.push('accept-encoding');
  }
  return names.length > 1 ? names.sort() : names;
}

/** Byte-bounded LRU of upstream responses, indexed by service for purges. */
export class ResponseCache {
  private readonly lru: LRUCache<string, CachedResponse | VaryIndex>;
  private readonly byService = new Map<string, Set<string>>();
  private readonly counters = new Map<string, { hits: number; misses: number }>();
  readonly maxEntryBytes: number;
  private readonly maxBytes: number;
  private hits = 0;
  private misses = 0;
  private stores = 0;
  private evictions = 0;

  constructor(opts: ResponseCacheOptions = {}) {
    this.maxBytes = opts.maxBytes ?? 64 * 1024 * 1024;
    this.maxEntryBytes = opts.maxEntryBytes ?? 1024 * 1024;
    this.lru = new LRUCache<string, CachedResponse | VaryIndex>({
      maxSize: this.maxBytes,
      sizeCalculation: (v, k) =>
        v.vary !== undefined
          ? k.length + 256 + v.vary.reduce((n, h) => n + h.length, 0)
          : v.body.length + k.length + 256 + v.headers.reduce((n, h) => n + h.length, 0),
      ttlAutopurge: false,
      allowStale: false,
      dispose: (v, k, reason) => {
        if (reason === 'evict') this.evictions++;
        const set = this.byService.get(v.serviceId);
        if (set) {
          set.delete(k);
          if (set.size === 0) this.byService.delete(v.serviceId);
        }
      },
    });
  }

  /**
   * Computes the (first) cache key of a request; see the module comment for what it covers.
   * Every variable field is length-prefixed, so no two different requests serialise alike.
   * @param path - the upstream path as forwarded (rendered template, no query).
   * @param query - the raw query string without `?` (canonicalised here, {@link canonicalQuery}).
   * @param headers - {@link keyHeaders} of the operation's declared header parameters.
   * @param subject - the caller's identity (kind and subject) for `scope: identity`, else undefined.
   * @param canonicalBody - `canonicalJson` (lib/canonical-json.ts) of the parsed body (or its digest), or the raw body text for non-JSON.
   * @returns base64url SHA-256 (43 characters).
   */
  key(
    serviceId: string,
    operationId: string,
    configVersion: string,
    path: string,
    query: string,
    headers: string,
    subject: string | undefined,
    canonicalBody: string,
  ): string {
    // One one-shot hash of the joined fields (the same digest as hashing them in sequence):
    // `crypto.hash` costs ~0.25 µs here against ~1.1 µs for a Hash object and seven updates.
    const scope = subject === undefined ? '\u0001\0' : `\u0002${field(subject)}`;
    return hash(
      'sha256',
      `${field(serviceId)}${field(operationId)}${field(configVersion)}${field(path)}${field(canonicalQuery(query))}${field(headers)}${scope}${canonicalBody}`,
      'base64url',
    );
  }

  /**
   * The key of one variant under a {@link VaryIndex}.
   * @param base - the request's {@link ResponseCache.key}.
   * @param names - the `Vary` header names ({@link varyNames}).
   * @param values - the values the backend sees (or saw) for those headers, in the same order; undefined = absent.
   */
  variantKey(base: string, names: readonly string[], values: readonly (string | undefined)[]): string {
    let s = `${base}\0${names.join(',')}\0`;
    for (let i = 0; i < values.length; i++) s += field(values[i]);
    return hash('sha256', s, 'base64url');
  }

  /** Reads a fresh entry without counting: a response, the {@link VaryIndex} of a first key, or undefined. */
  lookup(key: string): CachedResponse | VaryIndex | undefined {
    return this.lru.get(key);
  }

  /** Counts one lookup of `serviceId` as a hit or a miss. */
  count(serviceId: string, hit: boolean): void {
    let c = this.counters.get(serviceId);
    if (!c) this.counters.set(serviceId, (c = { hits: 0, misses: 0 }));
    if (hit) {
      this.hits++;
      c.hits++;
    } else {
      this.misses++;
      c.misses++;
    }
  }

  /** Looks up a stored response (not a {@link VaryIndex}) and counts a hit or miss for `serviceId`. */
  get(key: string, serviceId: string): CachedResponse | undefined {
    const v = this.lru.get(key);
    const r = v === undefined || v.vary !== undefined ? undefined : v;
    this.count(serviceId, r !== undefined);
    return r;
  }

  /** Counts a lookup skipped because of `Cache-Control: no-cache` as a miss. */
  countBypass(serviceId: string): void {
    this.count(serviceId, false);
  }

  /**
   * Stores a response for `ttlSeconds`.
   * @param vary - for a response with `Vary`: the request's first key and the header names;
   *   `key` is then its {@link ResponseCache.variantKey}, and the first key gets (or keeps) a
   *   {@link VaryIndex} with the same TTL.
   * @returns false if the body is larger than `maxEntryBytes` (or the LRU refused it).
   */
  set(key: string, value: CachedResponse, ttlSeconds: number, vary?: { base: string; names: readonly string[] }): boolean {
    if (value.body.length > this.maxEntryBytes) return false;
    const ttl = ttlSeconds * 1000;
    if (vary && vary.names.length > 0 && vary.base !== key) {
      this.lru.set(vary.base, { vary: vary.names, serviceId: value.serviceId }, { ttl });
      if (!this.lru.has(vary.base)) return false;
      this.index(vary.base, value.serviceId);
    }
    this.lru.set(key, value, { ttl });
    if (!this.lru.has(key)) return false;
    this.index(key, value.serviceId);
    this.stores++;
    return true;
  }

  private index(key: string, serviceId: string): void {
    let set = this.byService.get(serviceId);
    if (!set) this.byService.set(serviceId, (set = new Set()));
    set.add(key);
  }

  /**
   * Drops every entry of one service.
   * @returns the number of entries dropped.
   */
  purgeService(serviceId: string): number {
    const set = this.byService.get(serviceId);
    if (!set) return 0;
    const keys = [...set];
    for (const k of keys) this.lru.delete(k);
    this.byService.delete(serviceId);
    return keys.length;
  }

  /** Drops everything. @returns the number of entries dropped. */
  purgeAll(): number {
    const n = this.lru.size;
    this.lru.clear();
    this.byService.clear();
    return n;
  }

  /** Ids of services with at least one entry. */
  services(): string[] {
    return [...this.byService.keys()];
  }

  stats(): CacheStats {
    const perService: CacheStats['perService'] = {};
    const ids = new Set([...this.byService.keys(), ...this.counters.keys()]);
    for (const id of [...ids].sort()) {
      const c = this.counters.get(id) ?? { hits: 0, misses: 0 };
      perService[id] = { entries: this.byService.get(id)?.size ?? 0, hits: c.hits, misses: c.misses };
    }
    const looked = this.hits + this.misses;
    return {
      entries: this.lru.size,
      bytes: this.lru.calculatedSize,
      maxBytes: this.maxBytes,
      hits: this.hits,
      misses: this.misses,
      stores: this.stores,
      evictions: this.evictions,
      hitRatio: looked ? this.hits / looked : 0,
      perService,
    };
  }
}
