/** Authentication errors (always HTTP 401). Re-exported by ./index.ts. */

/** Stable error codes of {@link AuthError}. */
export type AuthErrorCode =
  | 'invalid_token' // bearer token malformed, bad signature, wrong iss/aud/alg, unknown kid, ...
  | 'expired_token' // bearer token past exp (or before nbf: code 'invalid_token')
  | 'invalid_session' // session cookie cannot be decrypted / is malformed
  | 'expired_session' // session past its absolute lifetime, or refresh was refused by the IdP
  | 'invalid_request'; // malformed Authorization header

/**
 * Credentials were presented but are not acceptable. Always HTTP 401. Map it once, at the
 * boundary, to `application/problem+json` and add {@link AuthError.wwwAuthenticate} as the
 * `WWW-Authenticate` header (RFC 6750 §3). If {@link AuthError.setCookie} is set (a dead
 * session), append it as `Set-Cookie` so the browser drops the cookie.
 */
export class AuthError extends Error {
  readonly status = 401 as const;
  readonly code: AuthErrorCode;
  /** `Set-Cookie` value clearing a dead session cookie, when there was one. */
  readonly setCookie?: string;
  constructor(code: AuthErrorCode, message: string, setCookie?: string) {
    super(message);
    this.name = 'AuthError';
    this.code = code;
    if (setCookie !== undefined) this.setCookie = setCookie;
  }
  /** `WWW-Authenticate` header value (RFC 6750 §3), e.g. `Bearer realm="kea", error="invalid_token"`. */
  get wwwAuthenticate(): string {
    const err = this.code === 'invalid_request' ? 'invalid_request' : 'invalid_token';
    const desc = this.message.replace(/["\\\r\n]/g, ' ').slice(0, 200);
    return `Bearer realm="kea", error="${err}", error_description="${desc}"`;
  }
}
