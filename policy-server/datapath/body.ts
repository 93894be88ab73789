/**
 * Request body handling for the data path: bounded reading, a structural guard of the parsed
 * value (depth, prototype-pollution keys: checked on the parsed keys, never on raw bytes, so a
 * JSON escape such as `"\u005f_proto__"` cannot hide a key); canonical JSON for cache keys is
 * lib/canonical-json.ts.
 */
import type { IncomingMessage } from 'node:http';

/** Why reading a body failed. */
export class BodyError extends Error {
  readonly reason: 'too-large' | 'aborted';
  constructor(reason: 'too-large' | 'aborted', message: string) {
    super(message);
    this.reason = reason;
    this.name = 'BodyError';
  }
}

const EMPTY = Buffer.alloc(0);

/**
 * Reads the whole request body, refusing more than `limit` bytes.
 * A declared `Content-Length` over the limit is refused before reading any byte; a chunked
 * body is refused as soon as the running total exceeds the limit (reading stops; the caller
 * answers 413 with `Connection: close`).
 * @param limit - maximum body size in bytes.
 * @throws {BodyError} `too-large` or `aborted`.
 */
export function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const cl = req.headers['content-length'];
  if (cl !== undefined) {
    const n = Number(cl);
    if (n > limit) return Promise.reject(new BodyError('too-large', `body of ${n} bytes exceeds the limit of ${limit} bytes`));
    if (n === 0) return Promise.resolve(EMPTY);
  } else if (req.headers['transfer-encoding'] === undefined) {
    return Promise.resolve(EMPTY);
  }
  return new Promise<Buffer>((resolve, reject) => {
    let first: Buffer | undefined;
    let chunks: Buffer[] | undefined;
    let total = 0;
    const onData = (c: Buffer): void => {
      total += c.length;
      if (total > limit) {
        cleanup();
        req.pause();
        reject(new BodyError('too-large', `body exceeds the limit of ${limit} bytes`));
        return;
      }
      if (first === undefined) first = c;
      else (chunks ??= [first]).push(c);
    };
    const onEnd = (): void => {
      cleanup();
      resolve(chunks ? Buffer.concat(chunks, total) : (first ?? EMPTY));
    };
    const onAbort = (): void => {
      cleanup();
      reject(new BodyError('aborted', 'client closed the connection while sending the body'));
    };
    const cleanup = (): void => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onAbort);
      req.off('aborted', onAbort);
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onAbort);
    req.on('aborted', onAbort);
  });
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_OBJ = 0x7b;
const OPEN_ARR = 0x5b;
const CLOSE_OBJ = 0x7d;
const CLOSE_ARR = 0x5d;

/**
 * Measures the maximum nesting depth of JSON text without parsing it (string-aware, so
 * brackets inside strings do not count). Stops early once `max` is exceeded.
 * @returns the depth (an object or array at the top level is depth 1), or `max + 1`.
 */
export function jsonDepth(buf: Buffer, max: number): number {
  let depth = 0;
  let deepest = 0;
  let inString = false;
  for (let i = 0, n = buf.length; i < n; i++) {
    const c = buf[i];
    if (inString) {
      if (c === BACKSLASH) i++;
      else if (c === QUOTE) inString = false;
    } else if (c === QUOTE) inString = true;
    else if (c === OPEN_OBJ || c === OPEN_ARR) {
      if (++depth > deepest) {
        deepest = depth;
        if (deepest > max) return max + 1;
      }
    } else if (c === CLOSE_OBJ || c === CLOSE_ARR) depth--;
  }
  return deepest;
}

const walkValues: unknown[] = [];
const walkDepths: number[] = [];

/**
 * Checks parsed JSON in one iterative walk (no recursion, reused scratch stacks): nesting
 * deeper than `maxDepth`, and any key named `__proto__`, or `constructor`/`prototype` holding
 * an object. The keys are the parsed ones (after JSON string escapes are resolved), so
 * `{"\u005f_proto__": 1}` is caught like `{"__proto__": 1}`. Safe for deep input because V8's
 * JSON.parse is itself iterative.
 * @returns `depth` or `key` for the first violation, else undefined. Use {@link findPollution}
 *   to get the offending pointer.
 */
export function guardJson(value: unknown, maxDepth: number): 'depth' | 'key' | undefined {
  if (value === null || typeof value !== 'object') return undefined;
  let n = 0;
  let high = 1;
  walkValues[n] = value;
  walkDepths[n++] = 1;
  let result: 'depth' | 'key' | undefined;
  outer: while (n > 0) {
    const v = walkValues[--n] as object;
    const d = walkDepths[n];
    if (d > maxDepth) {
      result = 'depth';
      break;
    }
    if (Array.isArray(v)) {
      for (let i = 0; i < v.length; i++) {
        const e: unknown = v[i];
        if (e !== null && typeof e === 'object') {
          walkValues[n] = e;
          walkDepths[n++] = d + 1;
        }
      }
    } else {
      const o = v as Record<string, unknown>;
      for (const k in o) {
        const e = o[k];
        const isObj = e !== null && typeof e === 'object';
        if (k === '__proto__' || (isObj && (k === 'constructor' || k === 'prototype'))) {
          result = 'key';
          break outer;
        }
        if (isObj) {
          walkValues[n] = e;
          walkDepths[n++] = d + 1;
        }
      }
    }
    if (n > high) high = n;
  }
  // Drop references but keep the scratch arrays' capacity (re-growing them per request costs
  // more than the walk); shrink only after a pathological document.
  if (high > 4096) {
    walkValues.length = 0;
    walkDepths.length = 0;
  } else for (let i = 0; i < high; i++) walkValues[i] = undefined;
  return result;
}

/**
 * Finds prototype-pollution shapes in parsed JSON: any `__proto__` key, or a `constructor` /
 * `prototype` key whose value is an object (`{"constructor": {"prototype": {...}}}`). Walks
 * the parsed keys (see {@link guardJson}); used to explain a rejection, off the hot path.
 * @returns the RFC 6901 pointer of the first offending key, or undefined.
 */
export function findPollution(value: unknown): string | undefined {
  const stack: Array<[unknown, string]> = [[value, '']];
  while (stack.length) {
    const [v, ptr] = stack.pop()!;
    if (v === null || typeof v !== 'object') continue;
    if (Array.isArray(v)) {
      for (let i = 0; i < v.length; i++) stack.push([v[i], `${ptr}/${i}`]);
      continue;
    }
    for (const k of Object.keys(v)) {
      const child = (v as Record<string, unknown>)[k];
      const p = `${ptr}/${k.replace(/~/g, '~0').replace(/\//g, '~1')}`;
      if (k === '__proto__') return p;
      if ((k === 'constructor' || k === 'prototype') && child !== null && typeof child === 'object') return p;
      stack.push([child, p]);
    }
  }
  return undefined;
}

/**
 * The `charset` parameter of a Content-Type value (RFC 9110 §8.3.1; quoted or not), lower
 * case, or undefined when there is none.
 */
export function charsetOf(contentType: string): string | undefined {
  if (contentType.indexOf(';') < 0) return undefined;
  const m = /;\s*charset\s*=\s*(?:"([^"]*)"|([^;\s]*))/i.exec(contentType);
  return m ? (m[1] ?? m[2]).toLowerCase() : undefined;
}

/**
 * True when a JSON body declared with this Content-Type may be read as UTF-8: no charset, or
 * `utf-8` / `utf8` (RFC 8259 §8.1: JSON exchanged between systems is UTF-8). Any other charset
 * (e.g. `utf-16`) would be misread, so the data path refuses it with 415.
 */
export function jsonCharsetOk(contentType: string): boolean {
  const cs = charsetOf(contentType);
  return cs === undefined || cs === 'utf-8' || cs === 'utf8';
}
