/**
 * Authentication and authorization for the policy server.
 *
 * Takes in: an incoming HTTP request (its `Authorization` header or session cookie) and an
 * operation's `Access` rule (lib/api/types.ts). Gives out: an {@link Identity} (or `null` for anonymous),
 * an `allow | unauthenticated | forbidden` decision, and the `x-kea-*` identity headers for
 * the upstream.
 *
 * Two ways in (see docs/adr/0003-sessions-and-tokens.md):
 * - Browsers: OpenID Connect authorization code flow with PKCE, state and nonce
 *   (OIDC Core 1.0 §3.1, RFC 7636) via `openid-client`, ending in an encrypted session cookie
 *   (JWE `dir` + `A256GCM`, RFC 7516) valid for every service behind the gateway (`Path=/`).
 * - Scripts: `Authorization: Bearer <JWT>` (RFC 6750) verified with `jose` against the issuer's
 *   JWKS (RFC 7517/7519, JWT access tokens per RFC 9068), cached by token hash until `exp`.
 */
export type { AuthConfig, Authenticator, ClaimPaths, Identity } from './types.js';
export { AuthError, type AuthErrorCode } from './errors.js';
export { authorize, identityHeaders, IDENTITY_HEADERS, readClaim, claimStrings } from './authorize.js';
export { safeReturnTo } from './redirect.js';
export { createAuthenticator } from './authenticator.js';
export { CLIENT_SUBJECT_PREFIX, bearerSubject } from './bearer.js';
export { authConfigFromEnv } from './config.js';
