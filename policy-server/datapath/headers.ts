/**
 * Header hygiene between client, policy server and upstream (RFC 9110 §7.6.1 hop-by-hop
 * fields; KEA's own `x-kea-*` headers).
 */
import type { IncomingHttpHeaders } from 'node:http';
import { IDENTITY_HEADERS } from '../auth/index.js';
import { DEFAULT_CONTENT_SECURITY_POLICY, INTERNAL_TOKEN_HEADER, OPERATION_HEADER } from '../../lib/policy/config.js';

/** Connection-scoped fields never forwarded in either direction. */
export const HOP_BY_HOP = [
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
] as const;

function table(names: readonly string[]): Record<string, true> {
  const t = Object.create(null) as Record<string, true>;
  for (const n of names) t[n] = true;
  return t;
}

/**
 * Request fields that make some servers or frameworks act on another method or URL than the
 * one KEA authorised (method overrides; IIS/Symfony/Laminas `X-Original-URL` and
 * `X-Rewrite-URL`). Never forwarded.
 */
export const OVERRIDE_HEADERS = [
  'x-http-method-override',
  'x-method-override',
  'x-http-method',
  'x-original-url',
  'x-rewrite-url',
  'x-original-uri',
  'x-original-method',
] as const;

/**
 * Forwarding fields whose client copies are untrusted. The gateway (NGF's nginx) sets
 * its own `X-Forwarded-Proto`/`-Host`/`-Port` and `X-Real-IP` on each hop, including the hop
 * from the policy server through the internal listener to the backend; a copy that reaches
 * the policy server may have been written by the client, so it is dropped rather than passed
 * on. `X-Forwarded-For` is not in this list: the forwarder rebuilds it (the received chain
 * plus the peer address; only its rightmost entries, added by the gateway, are trustworthy).
 */
export const FORWARDING_HEADERS = [
  'forwarded',
  'x-forwarded-host',
  'x-forwarded-proto',
  'x-forwarded-port',
  'x-forwarded-prefix',
  'x-forwarded-server',
  'x-forwarded-scheme',
  'x-real-ip',
  'x-client-ip',
] as const;

/**
 * Request headers dropped before forwarding: hop-by-hop, `host` and `content-length` (set by
 * the forwarder), `expect`, `x-request-id` (re-set), every identity header a client might
 * forge, the internal token and the operation header, the client's `x-forwarded-for` (the
 * forwarder rewrites it), {@link OVERRIDE_HEADERS} and {@link FORWARDING_HEADERS}.
 */
export const STRIP_REQUEST = table([
  ...HOP_BY_HOP,
  'host',
  'content-length',
  'expect',
  'x-request-id',
  ...IDENTITY_HEADERS,
  INTERNAL_TOKEN_HEADER,
  OPERATION_HEADER,
  'x-forwarded-for',
  ...OVERRIDE_HEADERS,
  ...FORWARDING_HEADERS,
]);

/** Credentials, dropped by {@link upstreamHeaders}; the data path puts back those the ApiSchema lists in `spec.security.forwardCredentials`. */
export const CREDENTIAL_HEADERS = table(['authorization', 'cookie']);

/** Response headers dropped before answering the client (and never cached). */
export const STRIP_RESPONSE = table([...HOP_BY_HOP, 'x-request-id', 'x-cache', 'date']);

/** `x-kea-*` headers a client may not send upstream even if not in {@link IDENTITY_HEADERS}. */
const isKeaHeader = (name: string): boolean => name.length > 6 && name.startsWith('x-kea-');

/**
 * Builds the upstream request header list (flat `[name, value, ...]`). Besides
 * {@link STRIP_REQUEST}, `x-kea-*` and (unless forwarded) credentials, every field name with an
 * `_` is dropped: CGI/WSGI-style servers map `_` and `-` to the same variable, so
 * `x_kea_user` would read as `X-Kea-User` (nginx drops such names too, `underscores_in_headers
 * off`).
 * @param headers - the client's (lower-cased) headers.
 * @param forwardCredentials - keep `authorization` and `cookie`.
 * @returns the filtered list; the caller appends host, token, identity, request id.
 */
export function upstreamHeaders(headers: IncomingHttpHeaders, forwardCredentials: boolean): string[] {
  const out: string[] = [];
  const conn = headers.connection;
  const connTokens =
    conn && conn !== 'keep-alive' && conn !== 'close'
      ? conn
          .toLowerCase()
          .split(',')
          .map((s) => s.trim())
      : undefined;
  for (const name in headers) {
    if (STRIP_REQUEST[name] || isKeaHeader(name) || name.indexOf('_') >= 0) continue;
    if (!forwardCredentials && CREDENTIAL_HEADERS[name]) continue;
    if (connTokens && connTokens.includes(name)) continue;
    const v = headers[name];
    if (v === undefined) continue;
    if (typeof v === 'string') out.push(name, v);
    else for (const x of v) out.push(name, x);
  }
  return out;
}

/**
 * The response fields that keep a backend's answer from acting on the gateway's origin (every
 * API shares it with KEA's session cookie and the docs UI): `X-Content-Type-Options: nosniff`
 * (Fetch standard: no MIME sniffing into script or HTML) and `Content-Security-Policy` (W3C CSP
 * Level 3).
 * @param csp - the ApiSchema's policy (`spec.security.contentSecurityPolicy`); default
 *   {@link DEFAULT_CONTENT_SECURITY_POLICY} (nothing loads, no framing, sandboxed: no script).
 * @returns a flat `[name, value, ...]` list, computed once per compiled service.
 */
export function securityHeaders(csp: string | undefined): string[] {
  return ['x-content-type-options', 'nosniff', 'content-security-policy', csp ?? DEFAULT_CONTENT_SECURITY_POLICY];
}

/**
 * Filters upstream response headers for the client (flat list) and appends `add`. The
 * backend's `x-content-type-options` is replaced by the one in `add`; its own
 * `content-security-policy` is kept next to KEA's (browsers enforce every policy they get, so a
 * second one can only tighten).
 * @param headers - undici's parsed response headers (lower-case names).
 * @param add - fields appended to every response, e.g. {@link securityHeaders}.
 */
export function clientHeaders(headers: Record<string, string | string[] | undefined>, add: readonly string[]): string[] {
  const out: string[] = [];
  const conn = headers.connection;
  const connTokens =
    typeof conn === 'string' && conn !== 'keep-alive' && conn !== 'close'
      ? conn
          .toLowerCase()
          .split(',')
          .map((s) => s.trim())
      : undefined;
  for (const name in headers) {
    if (STRIP_RESPONSE[name] || name === 'x-content-type-options') continue;
    if (connTokens && connTokens.includes(name)) continue;
    const v = headers[name];
    if (v === undefined) continue;
    if (typeof v === 'string') out.push(name, v);
    else for (const x of v) out.push(name, x);
  }
  for (const x of add) out.push(x);
  return out;
}

const REQUEST_ID = /^[\w.:@-]{1,128}$/;

/** Accepts a client request id only if it is short and plain; else undefined (generate one). */
export function acceptRequestId(v: string | string[] | undefined): string | undefined {
  return typeof v === 'string' && REQUEST_ID.test(v) ? v : undefined;
}
