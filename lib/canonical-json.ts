/**
 * Canonical JSON: object keys sorted, `undefined` members dropped, so equal values give equal
 * strings. The one implementation behind content digests (a PolicyService's `configVersion`,
 * published OpenAPI document digests), status comparisons in the controller, and the policy
 * server's response cache keys (request bodies that differ only in key order or spacing).
 *
 * Takes in: any JSON-able value (plain objects, arrays, strings, finite numbers, booleans,
 * null; objects with `toJSON`, such as Date, are serialized through it like JSON.stringify
 * does) and an optional indent in spaces.
 * Gives out: exactly the text `JSON.stringify(copy, null, indent)` gives for a copy of the value
 * whose object keys were inserted in sorted order (UTF-16 code unit order), i.e. also with
 * JSON.stringify's own rule that integer-like keys (`"200"`, `"404"`) come first in ascending
 * numeric order. Written out directly instead of building that sorted copy: at the scale
 * benchmark the copies cost ~30 MB of garbage per reconcile for ~2 MB of text
 * (docs/performance.md, "Controller scale"). Pure.
 * @throws TypeError for a BigInt or a cyclic value (as JSON.stringify does).
 */
export function canonicalJson(value: unknown, indent?: number): string {
  const gap = indent && indent > 0 ? ' '.repeat(Math.min(10, indent)) : '';
  if (!gap) return compact(value, new Set()) ?? 'undefined';
  const parts: string[] = [];
  // JSON.stringify returns undefined for undefined/functions/symbols at the top; callers
  // always pass objects, and a string is what they hash or publish.
  if (!write(value, gap, '\n', parts, new Set())) return 'undefined';
  // One join: a flat string. Concatenating with `+=` instead leaves a tree of cons strings
  // that costs ~7× the text's size while it is kept (measured: 3.5 KB for 491 characters).
  return parts.join('');
}

/** True for keys JSON.stringify enumerates first, as array indices (canonical uint32 < 2³²−1). */
function isIndexKey(k: string): boolean {
  if (k.length === 0 || k.length > 10) return false;
  const c = k.charCodeAt(0);
  if (c < 48 || c > 57 || (c === 48 && k.length > 1)) return false;
  for (let i = 1; i < k.length; i++) {
    const d = k.charCodeAt(i);
    if (d < 48 || d > 57) return false;
  }
  return Number(k) < 4294967295;
}

/** Object keys in the order JSON.stringify visits them on a sorted copy. */
function orderedKeys(o: object): string[] {
  const keys = Object.keys(o).sort();
  let indices = 0;
  for (const k of keys) if (isIndexKey(k)) indices++;
  if (indices === 0) return keys;
  const idx: string[] = [];
  const rest: string[] = [];
  for (const k of keys) (isIndexKey(k) ? idx : rest).push(k);
  idx.sort((a, b) => Number(a) - Number(b));
  return idx.concat(rest);
}

/**
 * True when no element is an object or array: JSON.stringify then writes the array exactly as
 * {@link write} would (undefined, functions and symbols as `null`, non-finite numbers as `null`).
 */
function isFlat(a: unknown[]): boolean {
  for (let i = 0; i < a.length; i++) {
    const e = a[i];
    if (e !== null && typeof e === 'object') return false;
  }
  return true;
}

/**
 * {@link write} without indentation, as one string built by concatenation: the digest and
 * cache-key inputs are hashed and dropped at once, so the cons-string tree never lives long,
 * and the policy server's cache keys (request bodies) take this path per request.
 * @returns the text, or undefined for undefined, functions and symbols.
 */
function compact(v: unknown, stack: Set<object>): string | undefined {
  if (v !== null && typeof v === 'object' && typeof (v as { toJSON?: unknown }).toJSON === 'function') {
    v = (v as { toJSON: () => unknown }).toJSON();
  }
  if (v === null || typeof v !== 'object') return JSON.stringify(v);
  if (stack.has(v)) throw new TypeError('Converting circular structure to JSON');
  let s: string;
  if (Array.isArray(v)) {
    if (isFlat(v)) return JSON.stringify(v);
    stack.add(v);
    s = '[';
    for (let i = 0; i < v.length; i++) s += (i ? ',' : '') + (compact(v[i], stack) ?? 'null');
    s += ']';
  } else {
    stack.add(v);
    const rec = v as Record<string, unknown>;
    s = '{';
    let first = true;
    for (const k of orderedKeys(v)) {
      const t = compact(rec[k], stack);
      if (t === undefined) continue; // skipped member
      s += (first ? '' : ',') + JSON.stringify(k) + ':' + t;
      first = false;
    }
    s += '}';
  }
  stack.delete(v);
  return s;
}

/** Appends `v`'s text to `out`; false (nothing appended) for undefined, functions and symbols. */
function write(v: unknown, gap: string, nl: string, out: string[], stack: Set<object>): boolean {
  if (v !== null && typeof v === 'object' && typeof (v as { toJSON?: unknown }).toJSON === 'function') {
    v = (v as { toJSON: () => unknown }).toJSON();
  }
  if (v === null) {
    out.push('null');
    return true;
  }
  switch (typeof v) {
    case 'string':
      out.push(JSON.stringify(v));
      return true;
    case 'number':
      out.push(Number.isFinite(v) ? String(v) : 'null');
      return true;
    case 'boolean':
      out.push(v ? 'true' : 'false');
      return true;
    case 'bigint':
      throw new TypeError('Do not know how to serialize a BigInt');
    case 'object':
      break;
    default:
      return false; // undefined, function, symbol
  }
  const o = v;
  if (stack.has(o)) throw new TypeError('Converting circular structure to JSON');
  stack.add(o);
  const inner = gap ? nl + gap : '';
  if (Array.isArray(o)) {
    if (o.length === 0) out.push('[]');
    else if (!gap && isFlat(o))
      out.push(JSON.stringify(o)); // feature vectors, tensors: one native call
    else {
      out.push('[');
      for (let i = 0; i < o.length; i++) {
        out.push(i > 0 ? `,${inner}` : inner);
        if (!write(o[i], gap, inner, out, stack)) out.push('null');
      }
      out.push(gap ? `${nl}]` : ']');
    }
  } else {
    out.push('{');
    const open = out.length;
    const rec = o as Record<string, unknown>;
    const sep = gap ? ': ' : ':';
    for (const k of orderedKeys(o)) {
      const at = out.length;
      out.push(`${at === open ? '' : ','}${inner}${JSON.stringify(k)}${sep}`);
      if (!write(rec[k], gap, inner, out, stack)) out.length = at; // skipped member
    }
    out.push(out.length === open ? '}' : gap ? `${nl}}` : '}');
  }
  stack.delete(o);
  return true;
}
