/**
 * Header hygiene between client, policy server and upstream (RFC 9110 §7.6.1 hop-by-hop
 * fields; KEA's own `x-kea-*` headers).
 */
import type { IncomingHttpHeaders } from 'node:http';
import { IDENTITY_HEADERS } from '../auth/index.js';
import { INTERNAL_TOKEN_HEADER, OPERATION_HEADER } from '../../lib/policy/config.js';

/** Connection-scoped fields never forwarded in either direction. */
export const HOP_BY_HOP = ['connection', 'keep-alive', 'proxy-connection', 'proxy-authenticate', 'proxy-authorization', 'te', 'trailer', 'transfer-encoding', 'upgrade'] as const;

function table(names: readonly string[]): Record<string, true> {
  const t = Object.create(null) as Record<string, true>;
  for (const n of names) t[n] = true;
  return t;
}

/**
 * Request headers dropped before forwarding: hop-by-hop, `host` and `content-length` (set by
 * the forwarder), `expect`, `x-request-id` (re-set), every identity header a client might
 * forge, the internal token and the operation header, and the client's forwarding headers
 * that the forwarder rewrites.
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
]);

/** Credentials, dropped unless the server is configured to forward them. */
export const CREDENTIAL_HEADERS = table(['authorization', 'cookie']);

/** Response headers dropped before answering the client (and never cached). */
export const STRIP_RESPONSE = table([...HOP_BY_HOP, 'x-request-id', 'x-cache', 'date']);

/** `x-kea-*` headers a client may not send upstream even if not in {@link IDENTITY_HEADERS}. */
const isKeaHeader = (name: string): boolean => name.length > 6 && name.startsWith('x-kea-');

/**
 * Builds the upstream request header list (flat `[name, value, ...]`).
 * @param headers - the client's (lower-cased) headers.
 * @param forwardCredentials - keep `authorization` and `cookie`.
 * @returns the filtered list; the caller appends host, token, identity, request id.
 */
export function upstreamHeaders(headers: IncomingHttpHeaders, forwardCredentials: boolean): string[] {
  const out: string[] = [];
  const conn = headers.connection;
  const connTokens = conn && conn !== 'keep-alive' && conn !== 'close' ? conn.toLowerCase().split(',').map((s) => s.trim()) : undefined;
  for (const name in headers) {
    if (STRIP_REQUEST[name] || isKeaHeader(name)) continue;
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
 * Filters upstream response headers for the client (flat list).
 * @param headers - undici's parsed response headers (lower-case names).
 */
export function clientHeaders(headers: Record<string, string | string[] | undefined>): string[] {
  const out: string[] = [];
  const conn = headers.connection;
  const connTokens = typeof conn === 'string' && conn !== 'keep-alive' && conn !== 'close' ? conn.toLowerCase().split(',').map((s) => s.trim()) : undefined;
  for (const name in headers) {
    if (STRIP_RESPONSE[name]) continue;
    if (connTokens && connTokens.includes(name)) continue;
    const v = headers[name];
    if (v === undefined) continue;
    if (typeof v === 'string') out.push(name, v);
    else for (const x of v) out.push(name, x);
  }
  return out;
}

const REQUEST_ID = /^[\w.:@-]{1,128}$/;

/** Accepts a client request id only if it is short and plain; else undefined (generate one). */
export function acceptRequestId(v: string | string[] | undefined): string | undefined {
  return typeof v === 'string' && REQUEST_ID.test(v) ? v : undefined;
}
