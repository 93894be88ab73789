/**
 * Problem Details for HTTP APIs (RFC 9457), the one error format of the policy server.
 *
 * Every error leaves the server through {@link sendProblem}: `application/problem+json` with
 * `type` (`https://kea.dev/problems/<code>`), `title`, `status`, `detail`, the stable `code`,
 * the `requestId`, and for validation failures `errors: [{ in, pointer, message }]` (one entry
 * per failing JSON pointer, at most the first 20: datapath/params.ts MAX_REPORTED_ERRORS) and
 * `errorCount`, the number of failures found (RFC 9457 §3 allows such extension members).
 * `pointer` is an RFC 6901 JSON pointer into the request body (`in: "body"`), into the named
 * parameter's value (`in: "path" | "query" | "header"`, e.g. `/limit`), or into the response
 * body (`in: "response"`); pointers and messages longer than 256 characters are clipped (`…`).
 */
import type { ServerResponse } from 'node:http';
import { PROBLEM_TYPES, problemTypeUri, type ProblemCode } from '../../lib/policy/problems.js';

/** One failing location. */
export interface FieldError {
  in: 'body' | 'path' | 'query' | 'header' | 'response';
  /** RFC 6901 JSON pointer (empty string = the whole value). */
  pointer: string;
  message: string;
}

/** The JSON body of a problem response. */
export interface ProblemBody {
  type: string;
  title: string;
  status: number;
  detail?: string;
  code: ProblemCode;
  requestId?: string;
  errors?: FieldError[];
  /** Failures found; `errors` lists the first of them (at most 20). */
  errorCount?: number;
  [k: string]: unknown;
}

/** Builds a problem body: `type`, `title` and `status` from the registry (lib/policy/problems.ts). */
export function problem(code: ProblemCode, detail?: string, extra?: Record<string, unknown>): ProblemBody {
  const t = PROBLEM_TYPES[code];
  const body: ProblemBody = { type: problemTypeUri(code), title: t.title, status: t.status, detail, code, ...extra };
  // `errors` lists the first failures only (params.ts FieldErrorList); `errorCount` says how many.
  if (Array.isArray(body.errors) && body.errorCount === undefined) body.errorCount = (body.errors as { total?: number }).total ?? body.errors.length;
  return body;
}

/**
 * Writes a problem response and ends it. Safe to call when headers were already sent (then
 * the response is destroyed instead).
 * @param headers - extra headers as a flat `[name, value, ...]` list (e.g. WWW-Authenticate).
 * @param close - add `Connection: close` (used when the request body was not consumed).
 */
export function sendProblem(res: ServerResponse, body: ProblemBody, headers?: readonly string[], close = false): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const json = JSON.stringify(body);
  const h: string[] = ['content-type', 'application/problem+json', 'content-length', String(Buffer.byteLength(json)), 'cache-control', 'no-store'];
  if (headers) for (const x of headers) h.push(x);
  if (close) h.push('connection', 'close');
  res.writeHead(body.status, h);
  res.end(json);
}

/** Escapes one RFC 6901 reference token. */
export function pointerToken(s: string): string {
  return s.includes('~') || s.includes('/') ? s.replace(/~/g, '~0').replace(/\//g, '~1') : s;
}
