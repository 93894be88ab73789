/**
 * The shapes of the policy server's authentication and authorization ({@link Identity},
 * {@link Authenticator}, {@link AuthConfig}, {@link ClaimPaths}), in a module of their own so
 * that the implementation files import them without going through the `auth/index.ts` barrel
 * (which imports those files back: an import cycle).
 */
import type { IncomingMessage } from 'node:http';
import type { Router } from 'express';

/** Who is calling, once authenticated. */
export interface Identity {
  /**
   * Who: a user's `sub` claim, or for a machine client (`kind: 'client'`)
   * `CLIENT_SUBJECT_PREFIX` (`client:`, bearer.ts) + its `sub` (RFC 9068 §2.2: the client's id), or + `client_id`
   * when the token has no `sub`. Unique across users and clients.
   */
  subject: string;
  /**
   * `user` (a person: browser session, or a bearer token issued to a user) or `client` (a
   * machine identity: a client-credentials token). Absent means `user`. A bearer token is a
   * client's when it has no `sub`, when `sub` equals `client_id` (RFC 9068 §2.2), or when the
   * IdP marks it so (`gty: client-credentials`, Auth0; `idtyp: app`, Microsoft Entra).
   */
  kind?: 'user' | 'client';
  /** All claims: the access token's payload (bearer) or the ID token's claims (session). */
  claims: Record<string, unknown>;
  /** How the caller authenticated. */
  via: 'session' | 'bearer';
  /**
   * A `Set-Cookie` header value the caller MUST append to the response: set when the session
   * was refreshed transparently (new tokens from the IdP, re-sealed cookie). Absent otherwise.
   * Never present on bearer identities, which are shared across requests through the cache.
   */
  setCookie?: string;
}

/** Authentication front end: one per policy server process. */
export interface Authenticator {
  /**
   * Authenticates a request. Bearer token first (if an `Authorization: Bearer` header is
   * present), else the session cookie.
   * @returns the identity, or `null` if the request carries no credentials (anonymous).
   * @throws {AuthError} (401) if credentials are present but invalid or expired.
   * Hot path: a cached bearer token costs one SHA-256 of the token and a map lookup.
   */
  authenticate(req: IncomingMessage): Promise<Identity | null>;
  /**
   * The same answer as {@link Authenticator.authenticate} when it is known without waiting:
   * a cached, unexpired bearer token, or a cached session that needs no refresh; `null` when
   * the request carries no credentials. Never throws.
   * @returns the identity, `null` (anonymous), or `undefined`: call `authenticate` (uncached or
   *   invalid credentials, sessions to unseal or refresh). The data path's hot path: no promise.
   */
  authenticateCached?(req: IncomingMessage): Identity | null | undefined;
  /**
   * Express router with `GET /auth/login?returnTo=`, `GET /auth/callback`, `POST /auth/logout`
   * (same-origin only: `Sec-Fetch-Site` or `Origin`; 403 otherwise), `GET /auth/logout` (a
   * confirmation page whose button makes that POST; it logs nothing out by itself) and
   * `GET /auth/me`. Paths are absolute: mount it at the root,
   * `app.use(auth.router())`.
   */
  router(): Router;
  /** Relative URL that starts a browser login and comes back to `returnTo` (a path or an allowed absolute URL). */
  loginUrl(returnTo: string): string;
  /** Releases timers and caches. */
  close(): Promise<void>;
}

/** Configuration of {@link createAuthenticator}. */
export interface AuthConfig {
  /** OpenID Provider issuer URL (OIDC Discovery 1.0). `http:` is accepted only for loopback hosts unless {@link AuthConfig.allowHttpIssuer}. */
  issuer: string;
  /** OAuth client of the gateway (confidential client for the code flow). */
  clientId: string;
  clientSecret?: string;
  /** Gateway URL + `/auth/callback`, registered at the IdP. Its origin is the gateway's: return-to URLs and logout POSTs are checked against it. */
  redirectUri: string;
  /** Expected `aud` of bearer JWT access tokens (the gateway's resource indicator, RFC 8707). */
  audience: string | string[];
  /** Resource indicator requested in the browser flow (RFC 8707). Default: the first audience. `null`: do not send one. */
  resource?: string | null;
  /** Allowed JWS algorithms. Default `['RS256', 'ES256', 'PS256', 'EdDSA']`. Never `none` or HS*. */
  algorithms?: string[];
  /** Session cookie secrets, each ≥ 32 characters. The first one seals; all unseal (key rotation). */
  sessionSecrets: string[];
  /** Extra hosts (`host` or `host:port`) that absolute return-to URLs may point at, with the gateway's scheme. */
  allowedReturnHosts?: string[];
  /** Session cookie name. Default `__Host-kea_session` when Secure, else `kea_session`. */
  cookieName?: string;
  /** `Secure` cookie attribute. Default true. May be false only when redirectUri is `http://localhost|127.0.0.1` (dev). */
  cookieSecure?: boolean;
  /** Absolute session lifetime in seconds. Default 28800 (8 h). */
  sessionTtlSeconds?: number;
  /** Scopes requested at login. Default `openid profile email offline_access`. */
  scope?: string;
  /** Where the IdP sends the browser after RP-initiated logout. Default: the gateway root. */
  postLogoutRedirectUri?: string;
  /** Allowed clock skew in seconds for exp/nbf/iat. Default 5. */
  clockToleranceSeconds?: number;
  /** Refresh the session this many seconds before its access token expires. Default 60. */
  refreshSkewSeconds?: number;
  /** Maximum number of verified bearer tokens cached. Default 10000. */
  tokenCacheMax?: number;
  /** Accept an `http:` issuer on a non-loopback host (in-cluster dev IdP only). Default false. */
  allowHttpIssuer?: boolean;
  /** Minimum time in ms between JWKS refetches (unknown `kid`). Default 30000. */
  jwksCooldownMs?: number;
}

/** Claim paths used by {@link authorize} and {@link identityHeaders} (dot-separated, e.g. `realm_access.roles`). */
export interface ClaimPaths {
  /** Default `roles`. */
  rolesClaim?: string;
  /** Default `groups`. */
  groupsClaim?: string;
  /** Default `scope` (space-separated string or array). */
  scopesClaim?: string;
}
