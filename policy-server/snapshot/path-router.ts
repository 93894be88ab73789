/**
 * Method + path-template matcher (OpenAPI 3.0.3 §4.7.8 path templating).
 *
 * Takes in: operations with a template such as `/iris/items/{id}`. Gives out: for a request
 * method and a decoded canonical path ({@link canonicalPath}: no segment holds a `/`), the
 * matching operation and its decoded path parameter values. Also: the canonical form of request
 * paths ({@link canonicalPath}) and the deterministic re-encoding used upstream. Templates are split into `/`-separated segments; a segment that is
 * exactly `{name}` matches any one non-empty segment, every other segment matches literally
 * (case-sensitive). Literal segments win over parameters at the same depth, as OpenAPI
 * requires ("concrete paths are matched before templated ones"). Lookup walks one trie node
 * per segment: O(segments), no regular expressions, no allocation besides the result.
 */

interface Node<T> {
  literal: Map<string, Node<T>>;
  param?: Node<T>;
  /** Operations ending at this node, by upper-case method. */
  ops?: Map<string, T>;
}

/** The result of {@link PathRouter.match}. */
export interface RouteMatch<T> {
  value: T;
  /** Decoded values of the template's `{params}`, in template order. */
  params: string[];
}

const newNode = <T>(): Node<T> => ({ literal: new Map() });

/** Splits a path (no query string) into segments, skipping the leading `/`. */
function segments(path: string): string[] {
  return (path.startsWith('/') ? path.slice(1) : path).split('/');
}

/** A segment that is exactly one `{name}` template variable. */
export function templateParam(seg: string): string | undefined {
  return seg.length > 2 && seg.startsWith('{') && seg.endsWith('}') && !seg.slice(1, -1).includes('{') ? seg.slice(1, -1) : undefined;
}

/** A trie of path templates per method. Immutable once built (part of a snapshot). */
export class PathRouter<T> {
  private readonly root: Node<T> = newNode();

  /**
   * Adds an operation.
   * @returns false if the same method + template shape was already taken (first one wins).
   */
  add(method: string, template: string, value: T): boolean {
    let node = this.root;
    for (const seg of segments(template)) {
      if (templateParam(seg) !== undefined) {
        node.param ??= newNode();
        node = node.param;
      } else {
        let next = node.literal.get(seg);
        if (!next) node.literal.set(seg, (next = newNode()));
        node = next;
      }
    }
    node.ops ??= new Map();
    const m = method.toUpperCase();
    if (node.ops.has(m)) return false;
    node.ops.set(m, value);
    return true;
  }

  /** Finds the operation for `method` (upper case) and the decoded canonical `path` (without `?query`). */
  match(method: string, path: string): RouteMatch<T> | undefined {
    const segs = segments(path);
    const params: string[] = [];
    const found = this.walk(this.root, segs, 0, params, method);
    return found === undefined ? undefined : { value: found, params };
  }

  /** True if some method is routed at `path` (for 405 vs 404). */
  hasPath(path: string): boolean {
    const segs = segments(path);
    return this.walk(this.root, segs, 0, [], undefined) !== undefined;
  }

  private walk(node: Node<T>, segs: string[], i: number, params: string[], method: string | undefined): T | undefined {
    if (i === segs.length) {
      if (!node.ops) return undefined;
      if (method === undefined) return node.ops.values().next().value;
      return node.ops.get(method);
    }
    const seg = segs[i];
    const lit = node.literal.get(seg);
    if (lit) {
      const r = this.walk(lit, segs, i + 1, params, method);
      if (r !== undefined) return r;
    }
    if (node.param && seg.length > 0) {
      params.push(seg);
      const r = this.walk(node.param, segs, i + 1, params, method);
      if (r !== undefined) return r;
      params.pop();
    }
    return undefined;
  }
}

/** A compiled path template for building an upstream path from raw parameter values. */
export type PathTemplate = Array<string | { param: string }>;

/** Compiles `/items/{id}` into literal and parameter parts. */
export function compileTemplate(template: string): PathTemplate {
  const parts: PathTemplate = [];
  const re = /\{([^{}]+)\}/g;
  let last = 0;
  for (let m = re.exec(template); m; m = re.exec(template)) {
    if (m.index > last) parts.push(template.slice(last, m.index));
    parts.push({ param: m[1] });
    last = m.index + m[0].length;
  }
  if (last < template.length) parts.push(template.slice(last));
  return parts;
}

/** Parameter names of a template, in order. */
export function templateParams(template: string): string[] {
  return compileTemplate(template).flatMap((p) => (typeof p === 'string' ? [] : [p.param]));
}

/**
 * Renders a compiled template with already percent-encoded values (the data path passes
 * {@link encodeSegment} of each decoded value).
 * @param values - by parameter name; missing values render as empty strings.
 */
export function renderTemplate(t: PathTemplate, values: Record<string, string>): string {
  if (t.length === 1 && typeof t[0] === 'string') return t[0];
  let out = '';
  for (const p of t) out += typeof p === 'string' ? p : (values[p.param] ?? '');
  return out;
}

// ---- Canonical request path ---------------------------------------------------------------

/**
 * Characters a canonical path segment carries unencoded: RFC 3986 §2.3 unreserved plus the
 * sub-delims and `:` `@` of `pchar` (§3.3), except `;` (path parameters, which some servers
 * strip before routing). Everything else is percent-encoded (upper-case hex, UTF-8).
 */
const KEEP = new Uint8Array(128);
for (const c of "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~!$&'()*+,=:@") KEEP[c.charCodeAt(0)] = 1;

/** `encodeURIComponent` escapes of {@link KEEP} characters it encodes (`$&+,=:@`). */
const UNESCAPE = /%(?:24|26|2B|2C|3D|3A|40)/g;
const unescapeOne = (m: string): string => String.fromCharCode(parseInt(m.slice(1), 16));

/** A request path in KEA's canonical form (see {@link canonicalPath}). */
export interface CanonicalPath {
  /** Decoded path: `/`-joined decoded segments. Routing and parameter values use this form. */
  decoded: string;
  /** The decoded path re-encoded deterministically ({@link encodeSegment}): what is forwarded and audited. */
  encoded: string;
}

/** Why a path was refused by {@link canonicalPath}. */
export interface PathRefusal {
  /** 1-based index of the offending segment (0: the path as a whole). */
  segment: number;
  /** Human-readable reason, e.g. `contains an encoded "/" (%2F)`. */
  message: string;
}

/**
 * Percent-encodes one decoded path segment deterministically: {@link KEEP} characters stay,
 * every other UTF-16 code point is encoded as its UTF-8 bytes in upper-case `%XX`.
 * The result decodes (once) back to `seg`.
 */
export function encodeSegment(seg: string): string {
  let i = 0;
  const n = seg.length;
  while (i < n) {
    const c = seg.charCodeAt(i);
    if (c >= 128 || KEEP[c] === 0) break;
    i++;
  }
  if (i === n) return seg;
  // encodeURIComponent escapes exactly the non-KEEP characters plus `$&+,=:@` (ECMA-262
  // §19.2.6.5; upper-case hex, UTF-8), which are put back. A decoded segment has no lone
  // surrogates (canonicalPath refuses them), so this cannot throw for its values.
  const e = encodeURIComponent(seg);
  return e.indexOf('%') < 0 ? e : e.replace(UNESCAPE, unescapeOne);
}

/** True for code points a decoded segment must not hold: C0 and C1 controls, DEL. */
const isControl = (c: number): boolean => c < 0x20 || (c >= 0x7f && c <= 0x9f);

/**
 * Brings a raw request-target path (no `?query`) to KEA's one canonical form, or refuses it
 * (docs/architecture.md, "Canonical request path"). The rule: percent-decoding is applied
 * exactly once, per `/`-separated segment, and the bytes must be valid UTF-8 (no overlong
 * forms, no surrogates). Refused, because a gateway or a backend could read them differently:
 * - an encoded `/` (`%2F`, any hex case) or a `\` (raw or `%5C`) in a segment;
 * - NUL and other control characters (C0, DEL, C1), raw or encoded;
 * - dot segments `.` / `..`, also encoded (`%2e`, `.%2E`, ...);
 * - empty segments (`//`); only a trailing `/` (an empty last segment) is kept;
 * - a raw `;` (path parameters), a raw `#`, raw bytes outside printable ASCII, and a `%` not
 *   followed by two hex digits.
 * Fast path: a path made only of unencoded {@link KEEP} characters and `/`, without dot or
 * empty segments, is returned as is (no allocation).
 * @param raw - the path part of the request target, starting with `/`.
 * @returns the decoded and re-encoded forms, or a {@link PathRefusal}.
 */
export function canonicalPath(raw: string): CanonicalPath | PathRefusal {
  const n = raw.length;
  if (n === 0 || raw.charCodeAt(0) !== 47) return { segment: 0, message: 'must start with "/"' };
  // Pass 1: plain characters only? Check segment shapes on the way.
  let plain = true;
  let segStart = 1;
  let seg = 1;
  for (let i = 1; i <= n; i++) {
    const c = i < n ? raw.charCodeAt(i) : 47;
    if (c === 47) {
      const len = i - segStart;
      if (len === 0 && i < n) return { segment: seg, message: 'is empty ("//")' };
      if ((len === 1 && raw.charCodeAt(segStart) === 46) || (len === 2 && raw.charCodeAt(segStart) === 46 && raw.charCodeAt(segStart + 1) === 46)) {
        return { segment: seg, message: 'is a dot segment' };
      }
      segStart = i + 1;
      seg++;
      continue;
    }
    if (c < 128 && KEEP[c] === 1) continue;
    if (c === 37 /* % */) {
      plain = false;
      continue;
    }
    if (c === 92) return { segment: seg, message: 'contains "\\"' };
    if (c === 59) return { segment: seg, message: 'contains ";" (path parameters are not accepted)' };
    if (c === 35) return { segment: seg, message: 'contains "#"' };
    if (c <= 0x20 || c >= 0x7f) return { segment: seg, message: 'contains a character that must be percent-encoded' };
    plain = false; // printable ASCII that a canonical path encodes (e.g. `"`, `{`, `|`)
  }
  if (plain) return { decoded: raw, encoded: raw };
  // Pass 2: decode each segment once, check it, re-encode it.
  const parts = raw.slice(1).split('/');
  const decoded: string[] = new Array<string>(parts.length);
  const encoded: string[] = new Array<string>(parts.length);
  for (let s = 0; s < parts.length; s++) {
    const p = parts[s];
    let d = p;
    if (p.indexOf('%') >= 0) {
      // decodeURIComponent (ECMA-262 §19.2.6.1 Decode) rejects a `%` without two hex digits and
      // any byte sequence that is not shortest-form UTF-8 of a scalar value (overlong forms,
      // surrogates, truncated sequences) with a URIError.
      try {
        d = decodeURIComponent(p);
      } catch {
        return { segment: s + 1, message: 'is not valid percent-encoded UTF-8 (bad "%", overlong or truncated sequence)' };
      }
      if (d === '.' || d === '..') return { segment: s + 1, message: 'is an encoded dot segment' };
      if (d.length === 0 && s < parts.length - 1) return { segment: s + 1, message: 'is empty' };
      for (let i = 0; i < d.length; i++) {
        const c = d.charCodeAt(i);
        if (c === 47) return { segment: s + 1, message: 'contains an encoded "/" (%2F)' };
        if (c === 92) return { segment: s + 1, message: 'contains an encoded "\\" (%5C)' };
        if (isControl(c)) return { segment: s + 1, message: 'contains an encoded control character' };
      }
    }
    decoded[s] = d;
    encoded[s] = encodeSegment(d);
  }
  return { decoded: '/' + decoded.join('/'), encoded: '/' + encoded.join('/') };
}

/** Narrows a {@link canonicalPath} result. */
export const isRefusal = (r: CanonicalPath | PathRefusal): r is PathRefusal => (r as PathRefusal).message !== undefined;
