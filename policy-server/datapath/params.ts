/**
 * Request parameter extraction and validation-error mapping (OpenAPI 3.0.3 §4.7.12:
 * path, query and header parameters; `style: simple/form`, `explode: true` defaults only).
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { ErrorObject, ValidateFunction } from 'ajv';
import type { CompiledOperation } from '../snapshot/build.js';
import { pointerToken, type FieldError } from './problem.js';

/**
 * Thrown when a declared parameter cannot be read unambiguously: a raw value that is not valid
 * percent-encoding, or a parameter that is not an array but was sent more than once (a
 * backend may read the first or the last copy; FastAPI takes the last).
 */
export class DecodeError extends Error {
  readonly where: 'path' | 'query' | 'header';
  readonly param: string;
  /** The message of the field error (`errors[].message` of the problem). */
  readonly fieldMessage: string;
  constructor(where: 'path' | 'query' | 'header', param: string, repeated = false) {
    super(
      repeated ? `${where} parameter "${param}" is given more than once but is not an array` : `${where} parameter "${param}" is not valid percent-encoding`,
    );
    this.where = where;
    this.param = param;
    this.fieldMessage = repeated ? 'must be given once (not an array)' : 'is not valid percent-encoding';
  }
}

function decode(s: string, where: 'query', name: string, plus: boolean): string {
  if (s.indexOf('%') < 0 && !(plus && s.indexOf('+') >= 0)) return s;
  try {
    return decodeURIComponent(plus ? s.replace(/\+/g, ' ') : s);
  } catch {
    throw new DecodeError(where, name);
  }
}

/**
 * Builds the object the operation's parameter validator checks:
 * `{ path: {name: value}, query: {...}, header: {...} }` with decoded string values. An array
 * parameter collects every occurrence (each is validated); a non-array parameter given more
 * than once is refused, so the value validated is the only one the backend can read.
 * @param pathValues - decoded path parameter values in template order (the canonical path's).
 * @param rawQuery - the raw query string without `?`.
 * @param headers - the request headers (lower-case names).
 * @param distinct - the same headers with every copy kept (`IncomingMessage.headersDistinct`);
 *   when given, a non-array header parameter sent more than once is refused.
 * @throws {DecodeError} on malformed percent-encoding in a declared query parameter, or a
 *   repeated non-array query or header parameter.
 */
export function extractParams(
  op: CompiledOperation,
  pathValues: readonly string[],
  rawQuery: string,
  headers: IncomingHttpHeaders,
  distinct?: Record<string, string[] | undefined>,
): { path: Record<string, string>; query: Record<string, string | string[]>; header: Record<string, string | string[]> } {
  const path: Record<string, string> = Object.create(null) as Record<string, string>;
  for (let i = 0; i < op.pathParamNames.length; i++) path[op.pathParamNames[i]] = pathValues[i] ?? '';
  const query: Record<string, string | string[]> = Object.create(null) as Record<string, string | string[]>;
  if (op.queryParams.length > 0 && rawQuery.length > 0) {
    const wanted = op.queryParams;
    for (const pair of rawQuery.split('&')) {
      if (!pair) continue;
      const eq = pair.indexOf('=');
      const rawName = eq < 0 ? pair : pair.slice(0, eq);
      let name: string;
      try {
        name = decode(rawName, 'query', rawName, true);
      } catch {
        continue; // undeclared junk names are the upstream's business
      }
      const p = wanted.find((w) => w.name === name);
      if (!p) continue;
      const value = decode(eq < 0 ? '' : pair.slice(eq + 1), 'query', name, true);
      const prev = query[name];
      if (p.isArray) query[name] = prev === undefined ? [value] : [...(prev as string[]), value];
      else if (prev === undefined) query[name] = value;
      else throw new DecodeError('query', name, true);
    }
  }
  const header: Record<string, string | string[]> = Object.create(null) as Record<string, string | string[]>;
  for (const p of op.headerParams) {
    const v = headers[p.name];
    if (v === undefined) continue;
    if (!p.isArray && distinct && (distinct[p.name]?.length ?? 0) > 1) throw new DecodeError('header', p.name, true);
    header[p.name] = p.isArray && typeof v === 'string' ? v.split(',').map((s) => s.trim()) : v;
  }
  return { path, query, header };
}

const LOCATIONS = new Set(['path', 'query', 'header']);

/**
 * Most field errors one response, log line or audit record carries. A 1 MiB body can fail
 * in ~100,000 places: listing them all made a 5.5 MB response and audit line (issue 10 #11).
 * The client gets the first {@link MAX_REPORTED_ERRORS} plus the count (`errorCount`).
 */
export const MAX_REPORTED_ERRORS = 20;

/** Longest `pointer` or `message` reported, characters (longer ones end in `…`). */
export const MAX_ERROR_FIELD_CHARS = 256;

/**
 * Largest body (request or response), bytes, whose every error is collected. A larger
 * invalid body reports its first error only: collecting all of them costs time and memory
 * in proportion to the body (ajv `allErrors` built 90,000 error objects, ~0.2 s, for 600 KB).
 */
export const EXPLAIN_MAX_BYTES = 64 * 1024;

/** The first {@link MAX_REPORTED_ERRORS} distinct field errors; `total` counts all of them. */
export interface FieldErrorList extends Array<FieldError> {
  /** Distinct failures found (at least `length`). */
  total: number;
  /** False when validation stopped at the first failure (body over {@link EXPLAIN_MAX_BYTES}). */
  complete: boolean;
}

/** A validator that stops at the first error, with an all-errors twin to explain a failure. */
export type ExplainedValidator = ValidateFunction & { explain?: ValidateFunction };

/** The number of failures behind a list of field errors (its `total` when it has one). */
export function errorCount(errors: readonly FieldError[]): number {
  return (errors as Partial<FieldErrorList>).total ?? errors.length;
}

/**
 * The problem `detail` for failed validation: `"<n> body error(s)"`, plus a note when only the
 * first error was looked for.
 */
export function validationDetail(errors: readonly FieldError[], what: 'body' | 'parameter'): string {
  const incomplete = (errors as Partial<FieldErrorList>).complete === false;
  return `${errorCount(errors)} ${what} error(s)${incomplete ? `; validation stopped at the first error (bodies over ${EXPLAIN_MAX_BYTES / 1024} KiB are not fully explained)` : ''}`;
}

const clip = (s: string): string => (s.length > MAX_ERROR_FIELD_CHARS ? `${s.slice(0, MAX_ERROR_FIELD_CHARS - 1)}…` : s);

/**
 * Maps ajv errors to {@link FieldError}s. For `required` and `additionalProperties` the pointer
 * names the missing or extra property itself, not its parent. Keeps the first `max` distinct
 * ones, each `pointer` and `message` clipped to {@link MAX_ERROR_FIELD_CHARS}, and counts all.
 * @param where - `body` or `response` for body validators; `params` for the parameter
 *   validator, whose instance paths start with `/path`, `/query` or `/header`.
 * @param max - most entries returned (default {@link MAX_REPORTED_ERRORS}).
 */
export function mapAjvErrors(
  errors: readonly ErrorObject[] | null | undefined,
  where: 'body' | 'response' | 'params',
  max = MAX_REPORTED_ERRORS,
): FieldErrorList {
  const out = [] as unknown as FieldErrorList;
  const seen = new Set<string>();
  for (const e of errors ?? []) {
    let ptr = e.instancePath;
    let message: string;
    if (e.keyword === 'required') {
      ptr += '/' + pointerToken(String((e.params as { missingProperty: string }).missingProperty));
      message = 'is required';
    } else if (e.keyword === 'additionalProperties') {
      ptr += '/' + pointerToken(String((e.params as { additionalProperty: string }).additionalProperty));
      message = 'is not allowed';
    } else if (e.keyword === 'enum') {
      message = `must be one of ${JSON.stringify((e.params as { allowedValues: unknown[] }).allowedValues)}`;
    } else message = e.message ?? 'is invalid';
    let loc: FieldError['in'] = where === 'params' ? 'query' : where;
    if (where === 'params') {
      const seg = ptr.split('/')[1] ?? '';
      if (LOCATIONS.has(seg)) {
        loc = seg as FieldError['in'];
        ptr = ptr.slice(seg.length + 1);
      }
    }
    const key = `${loc} ${ptr} ${message}`;
    if (seen.has(key)) continue;
    seen.add(key);
    if (out.length < max) out.push({ in: loc, pointer: clip(ptr), message: clip(message) });
  }
  out.total = seen.size;
  out.complete = true;
  return out;
}

/**
 * The field errors of a value `validate` rejected: every error (through `validate.explain`)
 * when the value's source is at most {@link EXPLAIN_MAX_BYTES}, else the first one only.
 * @param bytes - size of the value's JSON text, bytes.
 */
export function explainErrors(validate: ExplainedValidator, value: unknown, bytes: number, where: 'body' | 'response'): FieldErrorList {
  const explain = validate.explain;
  if (explain && bytes <= EXPLAIN_MAX_BYTES) {
    try {
      if (!explain(value)) return mapAjvErrors(explain.errors, where);
    } catch {
      // Too deep for the all-errors pass (stack): fall back to the first error.
    }
  }
  const out = mapAjvErrors(validate.errors, where);
  out.complete = false;
  return out;
}
