/**
 * Return-to URL checks for `/auth/login?returnTo=` (no open redirect, OWASP "Unvalidated
 * Redirects and Forwards").
 */

/**
 * Returns a safe same-site redirect target for `returnTo`, or `'/'` if it is not safe.
 * Accepted: a relative path starting with a single `/` (not `//`, not `/\`), with no control
 * characters or backslashes; or an absolute `http(s)` URL whose `host` (host[:port], lower
 * case) is in `allowedHosts`. Everything else (`//evil`, `/\evil`, `https://evil`,
 * `javascript:`, `data:`, tabs/newlines inside the scheme) falls back to `'/'`.
 * @param returnTo raw query value (may be undefined or an array from the query parser).
 * @param allowedHosts lower-case `host` or `host:port` values.
 */
export function safeReturnTo(returnTo: unknown, allowedHosts: ReadonlySet<string>): string {
  if (typeof returnTo !== 'string' || returnTo.length === 0 || returnTo.length > 2048) return '/';
  // Control characters, whitespace and backslashes are normalised away by browsers in ways
  // that turn "/\evil" or "/\t/evil" into "//evil": reject them outright.
  // eslint-disable-next-line no-control-regex -- matching control characters is the point
  if (/[\x00-\x20\x7f\\]/.test(returnTo)) return '/';
  if (returnTo.startsWith('/')) {
    if (returnTo.startsWith('//')) return '/';
    // Parse against a dummy origin to be sure the path stays on it.
    try {
      const u = new URL(returnTo, 'http://kea.invalid');
      if (u.origin !== 'http://kea.invalid') return '/';
      return u.pathname + u.search + u.hash;
    } catch {
      return '/';
    }
  }
  let u: URL;
  try {
    u = new URL(returnTo);
  } catch {
    return '/';
  }
  if (u.protocol !== 'https:' && u.protocol !== 'http:') return '/';
  if (u.username || u.password) return '/';
  if (!allowedHosts.has(u.host.toLowerCase())) return '/';
  return u.href;
}
