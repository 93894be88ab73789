/**
 * Return-to URL checks for `/auth/login?returnTo=` and `/auth/logout?returnTo=` (no open
 * redirect, OWASP "Unvalidated Redirects and Forwards").
 *
 * The value is parsed first, with the WHATWG URL parser browsers use, resolved against the
 * gateway's own origin; the checks then apply to the normalised result. Checking the raw text
 * before parsing is not enough: the parser removes dot segments (`/.//evil`, `/..//evil`,
 * `/%2e%2e//evil`, `/a/..//evil` all become the path `//evil`), and a `Location: //evil`
 * is a network-path reference (RFC 3986 §4.2) that the browser follows to another host.
 */

/**
 * Returns a safe redirect target for `returnTo`, or `'/'` if it is not safe.
 *
 * Accepted, after parsing against `gatewayOrigin`:
 * - a path (input starting with `/`) that stays on the gateway's origin and whose normalised
 *   path does not start with `//` or `/\`; returned as path + query + fragment, normalised;
 * - an absolute URL with the gateway's scheme, no user info, whose origin is the gateway's or
 *   whose `host` (host[:port], lower case) is in `extraHosts`, with the same path rule;
 *   returned as the normalised absolute URL.
 * Everything else falls back to `'/'`: `//evil`, `/\evil`, `/.//evil`, `https://evil`,
 * `javascript:`, `data:`, relative references without a leading `/`, and any value holding a
 * control character, whitespace or backslash (browsers drop or rewrite those).
 * @param returnTo raw query value (may be undefined or an array from the query parser).
 * @param gatewayOrigin the gateway's origin (`https://gw.example.com`), e.g. the redirect URI's.
 * @param extraHosts lower-case `host` or `host:port` values that absolute URLs may also name
 *   (configuration: `allowedReturnHosts`), with the gateway's scheme.
 */
export function safeReturnTo(returnTo: unknown, gatewayOrigin: string, extraHosts: ReadonlySet<string> = new Set()): string {
  if (typeof returnTo !== 'string' || returnTo.length === 0 || returnTo.length > 2048) return '/';
  // Control characters, whitespace and backslashes are normalised away by browsers in ways
  // that turn "/\evil" or "/\t/evil" into "//evil": reject them outright.
  // eslint-disable-next-line no-control-regex -- matching control characters is the point
  if (/[\x00-\x20\x7f\\]/.test(returnTo)) return '/';
  const isPath = returnTo.startsWith('/');
  if (!isPath && !/^https?:\/\//i.test(returnTo)) return '/';
  let base: URL;
  let u: URL;
  try {
    base = new URL(gatewayOrigin);
    u = new URL(returnTo, base.origin + '/');
  } catch {
    return '/';
  }
  if (u.protocol !== base.protocol || u.username || u.password) return '/';
  const sameOrigin = u.origin === base.origin;
  if (!sameOrigin && (isPath || !extraHosts.has(u.host))) return '/';
  // After normalisation: a path starting with `//` (or `/\`, which browsers read as `//`)
  // would make the relative form a network-path reference to another host.
  if (u.pathname.startsWith('//') || u.pathname.startsWith('/\\')) return '/';
  return isPath ? u.pathname + u.search + u.hash : u.href;
}
