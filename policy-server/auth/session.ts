/**
 * Sealed cookies: the browser session and the login transaction, as compact JWE
 * (RFC 7516) with `alg: dir`, `enc: A256GCM`. AES-GCM is authenticated encryption, so the
 * cookie is both confidential and tamper-evident ("encrypted and signed"). Keys are derived
 * from the configured secrets with HKDF-SHA256 (RFC 5869); the first secret seals, all of
 * them unseal (rotation: prepend the new secret, drop the old one after a session TTL).
 */
import { hkdfSync, hash } from 'node:crypto';
import { CompactEncrypt, compactDecrypt } from 'jose';

/** What the session cookie holds. Times are epoch seconds. */
export interface SessionData {
  /** Purpose marker: prevents a login-transaction cookie from being replayed as a session. */
  t: 'session';
  sub: string;
  /** ID token claims merged over access-token claims, minus protocol claims (iss, aud, nonce, ...). */
  claims: Record<string, unknown>;
  /** Session start. */
  iat: number;
  /** Absolute session end (iat + sessionTtl). */
  exp: number;
  /** Access token expiry: the session is refreshed at `atExp - refreshSkew` when `rt` is set. */
  atExp: number;
  /** Refresh token, when the IdP issued one. */
  rt?: string;
}

/** What the login-transaction cookie holds (OIDC code flow with PKCE, RFC 7636). */
export interface LoginTx {
  t: 'tx';
  state: string;
  nonce: string;
  /** PKCE code_verifier. */
  cv: string;
  /** Validated return-to target. */
  rt: string;
  /** Expiry (epoch s). */
  exp: number;
}

interface Key {
  kid: string;
  key: Uint8Array;
}

/** Seals and unseals JSON payloads with the configured secrets. */
export class Sealer {
  private readonly keys: Key[];
  private readonly byKid: Map<string, Uint8Array>;

  /** @throws Error if no secret is given or one is shorter than 32 characters. */
  constructor(secrets: readonly string[]) {
    if (!secrets.length) throw new Error('auth: sessionSecrets must hold at least one secret');
    this.keys = secrets.map((s, i) => {
      if (typeof s !== 'string' || s.length < 32) throw new Error(`auth: sessionSecrets[${i}] must be at least 32 characters`);
      const key = new Uint8Array(hkdfSync('sha256', s, 'kea-session-v1', 'kea cookie A256GCM', 32));
      const kid = hash('sha256', key, 'base64url').slice(0, 12);
      return { kid, key };
    });
    this.byKid = new Map(this.keys.map((k) => [k.kid, k.key]));
  }

  /** Seals `payload` with the first secret. Returns a compact JWE (cookie-safe base64url). */
  async seal(payload: object): Promise<string> {
    const k = this.keys[0];
    return new CompactEncrypt(new TextEncoder().encode(JSON.stringify(payload))).setProtectedHeader({ alg: 'dir', enc: 'A256GCM', kid: k.kid }).encrypt(k.key);
  }

  /**
   * Unseals a compact JWE sealed by any configured secret.
   * @returns the payload, or `null` if it is malformed, sealed with an unknown key or tampered.
   */
  async unseal(jwe: string): Promise<Record<string, unknown> | null> {
    if (jwe.length > 8192) return null;
    try {
      const { plaintext } = await compactDecrypt(
        jwe,
        (header) => {
          const key = typeof header.kid === 'string' ? this.byKid.get(header.kid) : undefined;
          if (!key) throw new Error('unknown key');
          return key;
        },
        { keyManagementAlgorithms: ['dir'], contentEncryptionAlgorithms: ['A256GCM'] },
      );
      const v: unknown = JSON.parse(new TextDecoder().decode(plaintext));
      return v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
    } catch {
      return null;
    }
  }
}

/** Cookie attributes shared by KEA's cookies. */
export interface CookieOptions {
  secure: boolean;
  /** Default `/`. */
  path?: string;
  /** Max-Age in seconds; 0 deletes the cookie. Omitted: a browser-session cookie. */
  maxAge?: number;
}

/** Serialises a `Set-Cookie` value (RFC 6265 §4.1): HttpOnly, SameSite=Lax, Path, Secure, Max-Age. */
export function serializeCookie(name: string, value: string, o: CookieOptions): string {
  let s = `${name}=${value}; Path=${o.path ?? '/'}; HttpOnly; SameSite=Lax`;
  if (o.secure) s += '; Secure';
  if (o.maxAge !== undefined) {
    s += `; Max-Age=${Math.max(0, Math.floor(o.maxAge))}`;
    if (o.maxAge <= 0) s += '; Expires=Thu, 01 Jan 1970 00:00:00 GMT';
  }
  return s;
}

/**
 * Reads one cookie from a `Cookie` header (RFC 6265 §5.4) without parsing the rest.
 * @returns the raw value, or `undefined`.
 */
export function readCookie(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  let i = 0;
  while (i < header.length) {
    while (header.charCodeAt(i) === 32) i++;
    const end = header.indexOf(';', i);
    const stop = end === -1 ? header.length : end;
    const eq = header.indexOf('=', i);
    if (eq !== -1 && eq < stop && header.slice(i, eq).trim() === name) return header.slice(eq + 1, stop).trim();
    i = stop + 1;
  }
  return undefined;
}
