/**
 * The problem codes of the policy server: the one registry both the server's error responses
 * (policy-server/datapath/problem.ts) and the published `Problem` schema of every generated
 * OpenAPI document (lib/openapi/generate.ts, its `code` enum) derive from.
 *
 * Every error the policy server answers on the data path, the portal and the management API is
 * Problem Details for HTTP APIs (RFC 9457): `type` `https://kea.dev/problems/<code>`, `title`
 * and `status` from this registry, and the stable `code` (an RFC 9457 §3.2 extension member).
 * A client generated from the published documents with strict enums accepts every body the
 * server can send only if every code is here: policy-server/contract.test.ts checks that each
 * code in the server's sources is registered and that the published enum equals the registry.
 */

/** Title (RFC 9457 §3.1.3: the same for every occurrence of the type) and HTTP status of one code. */
export interface ProblemType {
  /** Short, human-readable summary of the problem type. */
  readonly title: string;
  /** HTTP status code (RFC 9110 §15) the server answers with. */
  readonly status: number;
}

/** Every problem code, in the order the published enum lists them. */
export const PROBLEM_TYPES = {
  'validation-failed': { title: 'Request validation failed', status: 400 },
  'unsupported-media-type': { title: 'Unsupported media type', status: 415 },
  'payload-too-large': { title: 'Request body too large', status: 413 },
  'header-too-large': { title: 'Request line or header fields too large', status: 431 },
  'request-timeout': { title: 'Request not received in time', status: 408 },
  unauthenticated: { title: 'Authentication required', status: 401 },
  forbidden: { title: 'Forbidden', status: 403 },
  'not-found': { title: 'Not found', status: 404 },
  'method-not-allowed': { title: 'Method not allowed', status: 405 },
  'rate-limited': { title: 'Rate limit exceeded', status: 429 },
  'rate-limit-unavailable': { title: 'Rate limit temporarily unavailable', status: 503 },
  'upstream-unavailable': { title: 'Upstream unavailable', status: 502 },
  'upstream-timeout': { title: 'Upstream timeout', status: 504 },
  'upstream-busy': { title: 'Too many requests in flight to this service', status: 503 },
  'server-busy': { title: 'Too many request bodies being received', status: 503 },
  'invalid-upstream-response': { title: 'Upstream response does not match the API schema', status: 502 },
  'auth-unavailable': { title: 'Authentication temporarily unavailable', status: 503 },
  'cluster-incomplete': { title: 'Not every worker process answered', status: 503 },
  internal: { title: 'Internal error', status: 500 },
} as const satisfies Record<string, ProblemType>;

/** A stable problem code (the last segment of a problem's `type`). */
export type ProblemCode = keyof typeof PROBLEM_TYPES;

/** Every {@link ProblemCode}, in registry order (the published `code` enum). */
export const PROBLEM_CODES: readonly ProblemCode[] = Object.keys(PROBLEM_TYPES) as ProblemCode[];

/** The RFC 9457 `type` URI of a code: `https://kea.dev/problems/<code>`. */
export function problemTypeUri(code: ProblemCode): string {
  return `https://kea.dev/problems/${code}`;
}
