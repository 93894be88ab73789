/**
 * Method + path-template matcher (OpenAPI 3.0.3 §4.7.8 path templating).
 *
 * Takes in: operations with a template such as `/iris/items/{id}`. Gives out: for a request
 * method and raw (still percent-encoded) path, the matching operation and its path
 * parameter values, raw. Templates are split into `/`-separated segments; a segment that is
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
  /** Raw (percent-encoded) values of the template's `{params}`, in template order. */
  params: string[];
}

const newNode = <T>(): Node<T> => ({ literal: new Map() });

/** Splits a path (no query string) into segments, skipping the leading `/`. */
function segments(path: string): string[] {
  return (path.startsWith('/') ? path.slice(1) : path).split('/');
}

/** A segment that is exactly one `{name}` template variable. */
export function templateParam(seg: string): string | undefined {
  return seg.length > 2 && seg.startsWith('{') && seg.endsWith('}') && !seg.slice(1, -1).includes('{')
    ? seg.slice(1, -1)
    : undefined;
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

  /** Finds the operation for `method` (upper case) and raw `path` (without `?query`). */
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
 * Renders a compiled template with raw (already percent-encoded) values.
 * @param values - by parameter name; missing values render as empty strings.
 */
export function renderTemplate(t: PathTemplate, values: Record<string, string>): string {
  if (t.length === 1 && typeof t[0] === 'string') return t[0];
  let out = '';
  for (const p of t) out += typeof p === 'string' ? p : (values[p.param] ?? '');
  return out;
}
