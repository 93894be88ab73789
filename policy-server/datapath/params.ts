/**
 * Request parameter extraction and validation-error mapping (OpenAPI 3.0.3 §4.7.12:
 * path, query and header parameters; `style: simple/form`, `explode: true` defaults only).
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { ErrorObject } from 'ajv';
import type { CompiledOperation } from '../snapshot/build.js';
import { pointerToken, type FieldError } from './problem.js';

/** Thrown when a raw value cannot be percent-decoded. */
export class DecodeError extends Error {
  readonly where: 'path' | 'query';
  readonly param: string;
  constructor(where: 'path' | 'query', param: string) {
    super(`${where} parameter "${param}" is not valid percent-encoding`);
    this.where = where;
    this.param = param;
  }
}

function decode(s: string, where: 'path' | 'query', name: string, plus: boolean): string {
  if (s.indexOf('%') < 0 && !(plus && s.indexOf('+') >= 0)) return s;
  try {
    return decodeURIComponent(plus ? s.replace(/\+/g, ' ') : s);
  } catch {
    throw new DecodeError(where, name);
  }
}

/**
 * Builds the object the operation's parameter validator checks:
 * `{ path: {name: value}, query: {...}, header: {...} }` with decoded string values (array
 * parameters collect every occurrence of a query parameter).
 * @param rawPath - raw path parameter values in template order.
 * @param rawQuery - the raw query string without `?`.
 * @throws {DecodeError} on malformed percent-encoding in a declared parameter.
 */
export function extractParams(
  op: CompiledOperation,
  rawPath: readonly string[],
  rawQuery: string,
  headers: IncomingHttpHeaders,
): { path: Record<string, string>; query: Record<string, string | string[]>; header: Record<string, string | string[]> } {
  const path: Record<string, string> = Object.create(null) as Record<string, string>;
  for (let i = 0; i < op.pathParamNames.length; i++) {
    const name = op.pathParamNames[i];
    path[name] = decode(rawPath[i] ?? '', 'path', name, false);
  }
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
    }
  }
  const header: Record<string, string | string[]> = Object.create(null) as Record<string, string | string[]>;
  for (const p of op.headerParams) {
    const v = headers[p.name];
    if (v !== undefined) header[p.name] = p.isArray && typeof v === 'string' ? v.split(',').map((s) => s.trim()) : v;
  }
  return { path, query, header };
}

const LOCATIONS = new Set(['path', 'query', 'header']);

/**
 * Maps ajv errors to {@link FieldError}s. For `required` and `additionalProperties` the pointer
 * names the missing or extra property itself, not its parent.
 * @param where - `body` or `response` for body validators; `params` for the parameter
 *   validator, whose instance paths start with `/path`, `/query` or `/header`.
 */
export function mapAjvErrors(errors: readonly ErrorObject[] | null | undefined, where: 'body' | 'response' | 'params'): FieldError[] {
  const out: FieldError[] = [];
  const seen = new Set<string>();
  for (const e of errors ?? []) {
    let ptr = e.instancePath;
    let message = e.message ?? 'is invalid';
    if (e.keyword === 'required') {
      ptr += '/' + pointerToken(String((e.params as { missingProperty: string }).missingProperty));
      message = 'is required';
    } else if (e.keyword === 'additionalProperties') {
      ptr += '/' + pointerToken(String((e.params as { additionalProperty: string }).additionalProperty));
      message = 'is not allowed';
    } else if (e.keyword === 'enum') {
      message = `must be one of ${JSON.stringify((e.params as { allowedValues: unknown[] }).allowedValues)}`;
    }
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
    out.push({ in: loc, pointer: ptr, message });
  }
  return out;
}
