/**
 * Bearer JWT access tokens (RFC 6750, RFC 9068): verification with `jose` against the
 * issuer's remote JWKS, and a bounded cache of verified tokens keyed by SHA-256 of the token.
 *
 * Hot path: a cached token costs one SHA-256 (`crypto.hash`, one shot), one LRU lookup and
 * one `Date.now()` comparison. No signature check, no JSON parse.
 */
import { hash } from 'node:crypto';
import { createRemoteJWKSet, jwtVerify, errors as joseErrors, type JWTPayload } from 'jose';
import { LRUCache } from 'lru-cache';
import { AuthError } from './errors.js';
import type { Identity } from './types.js';

/**
 * Prefix of the `Identity.subject` of a machine client (client-credentials token). A user
 * whose `sub` starts with it is refused, so a subject names one kind of caller only: a client
 * whose id equals a user's `sub` never shares that user's subject (upstream `x-kea-user`, audit
 * lines, per-identity cache entries).
 */
export const CLIENT_SUBJECT_PREFIX = 'client:';

/** Algorithms accepted by default: asymmetric only (never `none`, never HS*). */
export const DEFAULT_ALGORITHMS = ['RS256', 'ES256', 'PS256', 'EdDSA'];
/** Upper bound on how long a verified token stays cached, whatever its exp (ms). */
const MAX_CACHE_TTL_MS = 10 * 60 * 1000;
/** Tokens longer than this are rejected before any parsing (bytes). */
const MAX_TOKEN_LENGTH = 16 * 1024;
/** Compact JWS shape (RFC 7515 §7.1): three base64url segments; the signature may be empty (then rejected by jose). */
const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*$/;

interface Entry {
  identity: Identity;
  /** Token exp in epoch ms. */
  expMs: number;
}

/** Options of {@link BearerVerifier}. */
export interface BearerOptions {
  issuer: string;
  audience: string | string[];
  jwksUri: URL;
  algorithms?: string[];
  /** Seconds, default 5. */
  clockTolerance?: number;
  /** Entries, default 10000. */
  cacheMax?: number;
  /** Minimum ms between JWKS refetches, default 30000. */
  jwksCooldownMs?: number;
}

/**
 * Who a verified access token names, and whether a person or a machine client.
 * A client (client-credentials grant) when the token has no `sub`, when `sub` equals
 * `client_id` (RFC 9068 §2.2: "the value of sub SHOULD correspond to an identifier the
 * authorization server uses to indicate the client application"), or when the IdP says so
 * (`gty: client-credentials`, Auth0; `idtyp: app`, Microsoft Entra). A client's subject is
 * {@link CLIENT_SUBJECT_PREFIX} + its id, so it never equals a user's `sub`.
 * @returns the subject and kind, or an error message (no subject; a user `sub` that uses the
 *   reserved client prefix).
 */
export function bearerSubject(p: JWTPayload): { subject: string; kind: 'user' | 'client' } | { error: string } {
  const c = p as Record<string, unknown>;
  const sub = typeof p.sub === 'string' && p.sub ? p.sub : undefined;
  const cid = typeof c.client_id === 'string' && c.client_id ? c.client_id : undefined;
  if (!sub || sub === cid || c.gty === 'client-credentials' || c.idtyp === 'app') {
    const id = sub ?? cid;
    return id ? { subject: CLIENT_SUBJECT_PREFIX + id, kind: 'client' } : { error: 'token has neither sub nor client_id' };
  }
  if (sub.startsWith(CLIENT_SUBJECT_PREFIX)) return { error: `user subject uses the reserved prefix ${CLIENT_SUBJECT_PREFIX}` };
  return { subject: sub, kind: 'user' };
}

/** Verifies bearer JWTs and caches the verified ones. */
export class BearerVerifier {
  private readonly cache: LRUCache<string, Entry>;
  private readonly jwks: ReturnType<typeof createRemoteJWKSet>;
  private readonly opts: Required<Omit<BearerOptions, 'jwksUri'>>;
  /** Counters for metrics and tests. */
  readonly stats = { hits: 0, misses: 0, failures: 0 };

  constructor(o: BearerOptions) {
    const algorithms = o.algorithms ?? DEFAULT_ALGORITHMS;
    for (const a of algorithms) {
      if (a === 'none' || a.startsWith('HS')) throw new Error(`auth: algorithm ${a} is not allowed for bearer tokens`);
    }
    this.opts = {
      issuer: o.issuer,
      audience: o.audience,
      algorithms,
      clockTolerance: o.clockTolerance ?? 5,
      cacheMax: o.cacheMax ?? 10000,
      jwksCooldownMs: o.jwksCooldownMs ?? 30000,
    };
    this.jwks = createRemoteJWKSet(o.jwksUri, {
      cooldownDuration: this.opts.jwksCooldownMs,
      cacheMaxAge: 10 * 60 * 1000,
      timeoutDuration: 5000,
    });
    this.cache = new LRUCache<string, Entry>({ max: this.opts.cacheMax });
  }

  /**
   * Verifies a bearer token (the part after `Bearer `).
   * Checks: JWS signature against the issuer's JWKS (refetched on unknown `kid`, at most
   * once per cooldown), `alg` in the allow-list, `iss`, `aud`, `exp` (required), `nbf`,
   * with the configured clock tolerance.
   * @returns the identity (shared, frozen object; cached until `exp`, at most 10 min).
   * @throws {AuthError} `expired_token` or `invalid_token`.
   */
  async verify(token: string): Promise<Identity> {
    const hit = this.lookup(token);
    if (hit) return hit;
    this.stats.misses++;
    if (token.length > MAX_TOKEN_LENGTH) throw this.fail('invalid_token', 'token too long');
    if (!COMPACT_JWS.test(token)) throw this.fail('invalid_token', 'bearer token is not a compact JWS');
    const key = hash('sha256', token, 'base64url');
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, this.jwks, {
        issuer: this.opts.issuer,
        audience: this.opts.audience,
        algorithms: this.opts.algorithms,
        clockTolerance: this.opts.clockTolerance,
        requiredClaims: ['exp'],
      }));
    } catch (err) {
      if (err instanceof joseErrors.JWTExpired) throw this.fail('expired_token', 'token expired');
      if (err instanceof joseErrors.JWTClaimValidationFailed) throw this.fail('invalid_token', `claim check failed: ${err.claim} (${err.reason})`);
      if (err instanceof joseErrors.JWKSNoMatchingKey) throw this.fail('invalid_token', 'no matching key in the issuer JWKS');
      if (err instanceof joseErrors.JOSEAlgNotAllowed) throw this.fail('invalid_token', 'algorithm not allowed');
      if (err instanceof joseErrors.JWSSignatureVerificationFailed) throw this.fail('invalid_token', 'signature verification failed');
      if (err instanceof joseErrors.JOSEError) throw this.fail('invalid_token', `token rejected (${err.code})`);
      throw this.fail('invalid_token', 'token could not be verified');
    }
    const who = bearerSubject(payload);
    if ('error' in who) throw this.fail('invalid_token', who.error);
    const identity: Identity = Object.freeze({ subject: who.subject, kind: who.kind, claims: Object.freeze({ ...payload }), via: 'bearer' as const });
    const expMs = (payload.exp as number) * 1000;
    const ttl = Math.min(expMs - Date.now(), MAX_CACHE_TTL_MS);
    if (ttl > 0) this.cache.set(key, { identity, expMs: Date.now() + ttl });
    return identity;
  }

  /**
   * Synchronous cache lookup: one SHA-256 of the token, one LRU get, one clock read.
   * @returns the cached identity if the token was verified before and has not expired, else `undefined`.
   */
  lookup(token: string): Identity | undefined {
    const key = hash('sha256', token, 'base64url');
    const hit = this.cache.get(key);
    if (hit === undefined) return undefined;
    if (hit.expMs > Date.now()) {
      this.stats.hits++;
      return hit.identity;
    }
    this.cache.delete(key);
    return undefined;
  }

  /** Number of cached tokens. */
  get size(): number {
    return this.cache.size;
  }

  /** Drops every cached token. */
  clear(): void {
    this.cache.clear();
  }

  private fail(code: 'invalid_token' | 'expired_token', msg: string): AuthError {
    this.stats.failures++;
    return new AuthError(code, msg);
  }
}
