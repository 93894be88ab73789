import { prng as rng } from './testing/prng.js';
import { canonicalJson } from './canonical-json.js';

/** The reference: a sorted copy serialized by JSON.stringify (what canonicalJson must equal). */
function reference(value: unknown, indent?: number): string {
  const sort = (v: unknown): unknown => {
    if (v !== null && typeof v === 'object' && typeof (v as { toJSON?: unknown }).toJSON === 'function') v = (v as { toJSON: () => unknown }).toJSON();
    if (Array.isArray(v)) return v.map(sort);
    if (v && typeof v === 'object') {
      const o = v as Record<string, unknown>;
      const out: Record<string, unknown> = {};
      for (const k of Object.keys(o).sort()) if (o[k] !== undefined) out[k] = sort(o[k]);
      return out;
    }
    return v;
  };
  return JSON.stringify(sort(value), null, indent);
}

const KEYS = [
  'a',
  'B',
  'z',
  '200',
  '404',
  '10',
  '9',
  '0',
  '01',
  '-1',
  '1.5',
  'default',
  'é',
  '\u{1F600}',
  'with "quote"',
  'line\nbreak',
  '',
  '4294967294',
  '4294967295',
  'x-kea',
];
const STRINGS = ['', 'plain', 'quote " and \\ backslash', 'ctrl \u0001 \t', 'unicode é 😀', '\u2028sep', 'lone \ud800 surrogate'];

function randomValue(r: () => number, depth: number): unknown {
  const pick = r();
  if (depth > 4 || pick < 0.35) {
    const p = r();
    if (p < 0.2) return STRINGS[Math.floor(r() * STRINGS.length)];
    if (p < 0.4) return Math.floor(r() * 2000) - 1000;
    if (p < 0.5) return r() * 1e6;
    if (p < 0.6) return r() < 0.5;
    if (p < 0.7) return null;
    if (p < 0.8) return undefined;
    if (p < 0.85) return Number.NaN;
    return `s${Math.floor(r() * 100)}`;
  }
  if (pick < 0.6) return Array.from({ length: Math.floor(r() * 4) }, () => randomValue(r, depth + 1));
  const o: Record<string, unknown> = {};
  const n = Math.floor(r() * 6);
  for (let i = 0; i < n; i++) o[KEYS[Math.floor(r() * KEYS.length)]] = randomValue(r, depth + 1);
  return o;
}

describe('canonicalJson', () => {
  test('sorts keys, drops undefined members, keeps array slots as null', () => {
    expect(canonicalJson({ b: 1, a: { d: [{ z: 1, y: 2 }, undefined], c: undefined } })).toBe('{"a":{"d":[{"y":2,"z":1},null]},"b":1}');
  });

  test('integer-like keys first, in numeric order, as JSON.stringify orders a sorted copy', () => {
    expect(canonicalJson({ default: 0, '404': 1, '10': 2, '9': 3, '01': 4 })).toBe('{"9":3,"10":2,"404":1,"01":4,"default":0}');
  });

  test('indentation matches JSON.stringify, empty containers stay inline', () => {
    const v = { b: [1, { c: [] }], a: {}, e: { f: undefined } };
    expect(canonicalJson(v, 2)).toBe(JSON.stringify({ a: {}, b: [1, { c: [] }], e: {} }, null, 2));
  });

  test('Dates serialize through toJSON', () => {
    expect(canonicalJson({ t: new Date(0) })).toBe('{"t":"1970-01-01T00:00:00.000Z"}');
  });

  test('cycles and BigInt throw TypeError', () => {
    const a: Record<string, unknown> = {};
    a.self = a;
    expect(() => canonicalJson(a)).toThrow(TypeError);
    expect(() => canonicalJson({ n: BigInt(1) })).toThrow(TypeError);
  });

  test('arrays of primitives (the one-call fast path) read as the general path writes them', () => {
    expect(canonicalJson({ f: [1, 'a', null, undefined, Number.NaN, true, () => 1] })).toBe('{"f":[1,"a",null,null,null,true,null]}');
    expect(
      canonicalJson([
        [5.1, 3.5],
        [1.4, 0.2],
      ]),
    ).toBe('[[5.1,3.5],[1.4,0.2]]');
    expect(() => canonicalJson([BigInt(1)])).toThrow(TypeError);
  });

  test('request bodies that differ only in key order or whitespace give one text (policy server cache keys)', () => {
    const a = JSON.parse('{"model":"iris","options":{"tag":"x","explain":false},"features":[[1,2],[3,4]]}') as unknown;
    const b = JSON.parse('{ "features": [[1, 2], [3, 4]], "options": { "explain": false, "tag": "x" }, "model": "iris" }') as unknown;
    expect(canonicalJson(a)).toBe(canonicalJson(b));
    expect(canonicalJson(JSON.parse('{"__proto__":{"x":1}}'))).toBe('{"__proto__":{"x":1}}');
  });

  test('equals the sorted-copy reference on 3000 random values, with and without indent', () => {
    const r = rng(20261121);
    for (let i = 0; i < 3000; i++) {
      const v = randomValue(r, 0);
      const wrapped = { v };
      expect(canonicalJson(wrapped)).toBe(reference(wrapped));
      expect(canonicalJson(wrapped, 2)).toBe(reference(wrapped, 2));
    }
  });
});
