/**
 * Linear-time regular expressions for tenant JSON Schemas (`pattern`, `patternProperties`).
 *
 * A JSON Schema `pattern` is an ECMA-262 regular expression (JSON Schema validation §6.3.3,
 * OpenAPI 3.0.3 §4.7.24). V8's engine backtracks, so a tenant's `^(\w+\s?)*$` against a
 * 28-character input blocks the policy server's event loop for seconds, for every tenant.
 * KEA therefore compiles every tenant pattern with RE2 (the `re2js` port: pure JavaScript,
 * matching in time linear in the input, see docs/adr/0008-linear-time-patterns.md) and
 * refuses the patterns RE2 cannot run: lookaround (`(?=`, `(?!`, `(?<=`, `(?<!`) and
 * backreferences (`\1`, `\k<name>`), plus repetition counts above 1000, programs larger than
 * {@link MAX_PATTERN_PROGRAM_SIZE} instructions and sources longer than
 * {@link MAX_PATTERN_LENGTH} characters.
 *
 * The pattern is first checked as ECMA-262 with the `u` flag (what ajv used before), then
 * translated to RE2 syntax so that it keeps its ECMA-262 meaning:
 * `\uXXXX` / `\u{X}` / surrogate pairs / `\cX` / `\0` become `\x{…}`; `.` excludes the four
 * ECMA-262 line terminators; `\s` and `\S` use ECMA-262's white space set (RE2's is ASCII);
 * `[\b]` is a backspace; `[` inside a class is a literal; `[]` and `[^]` match nothing and
 * anything; `\p{Script=X}` / `\p{General_Category=X}` become `\p{X}`.
 * Not translatable, so refused: `\S` inside a negated class, `\p{Script_Extensions=…}`, and
 * the long Unicode property names RE2 does not know (`\p{Letter}`: write `\p{L}`).
 */
import { RE2JS } from 're2js';
import traverse from 'json-schema-traverse';
import type { Options as AjvOptions } from 'ajv';

/** ajv's `code.regExp` option type: `(source, flags) => { test(s): boolean }` with a `code` string. */
export type RegExpEngine = NonNullable<NonNullable<AjvOptions['code']>['regExp']>;

/**
 * Largest RE2 program (instructions) a tenant pattern may compile to. Matching costs
 * O(input length × program size); measured with re2js on one core: ~0.2–0.6 s for a 1 MiB
 * string against the worst patterns of ~1000 instructions (`\p{L}{1000}`), under 10 ms for
 * typical ones (see the ADR).
 */
export const MAX_PATTERN_PROGRAM_SIZE = 1000;

/**
 * Longest pattern source compiled, characters. Compiling is linear in the source but not free
 * (re2js: 0.2–0.7 s for a 100,000-character pattern), and no pattern this long fits in
 * {@link MAX_PATTERN_PROGRAM_SIZE} instructions unless it is mostly character classes.
 */
export const MAX_PATTERN_LENGTH = 4096;

/** Thrown when a pattern cannot be compiled to a linear-time matcher; `message` says why. */
export class UnsupportedPatternError extends Error {
  /** The pattern as written in the schema. */
  readonly pattern: string;
  constructor(pattern: string, reason: string) {
    // Verbatim between quotes, as the tenant wrote it, unless it holds control characters.
    const control = [...pattern].some((ch) => ch.charCodeAt(0) < 0x20 || ch === '\u007f');
    super(`pattern ${control ? JSON.stringify(pattern) : `"${pattern}"`} ${reason}`);
    this.name = 'UnsupportedPatternError';
    this.pattern = pattern;
  }
}

/** A compiled pattern; `test` searches anywhere in the string, like `RegExp.prototype.test`. */
export class LinearPattern {
  readonly source: string;
  private readonly re: RE2JS;
  constructor(source: string, re: RE2JS) {
    this.source = source;
    this.re = re;
  }
  test(s: string): boolean {
    return this.re.test(s);
  }
  /** Unique per source: ajv keys its compiled-pattern scope by `toString()`. */
  toString(): string {
    return `/${this.source}/u`;
  }
}

const HEX = /^[0-9A-Fa-f]+$/;
const hex = (cp: number): string => `\\x{${cp.toString(16)}}`;
/** ECMA-262 WhiteSpace + LineTerminator (the `\s` set), as RE2 class items. */
const JS_SPACE_ITEMS = '\\t\\n\\v\\f\\r \\x{a0}\\x{1680}\\x{2000}-\\x{200a}\\x{2028}\\x{2029}\\x{202f}\\x{205f}\\x{3000}\\x{feff}';
/** ECMA-262 `.` without the `s` flag: anything but a LineTerminator. */
const JS_DOT = '[^\\n\\r\\x{2028}\\x{2029}]';
const ANY = '[\\x{0}-\\x{10ffff}]';
const NOTHING = '[^\\x{0}-\\x{10ffff}]';

/**
 * Translates an ECMA-262 (`u` flag) pattern to RE2 syntax with the same meaning.
 * @throws {UnsupportedPatternError} for lookaround, backreferences and the constructs listed
 *   in the module comment.
 */
export function toRe2Syntax(src: string): string {
  const fail = (why: string): never => {
    throw new UnsupportedPatternError(src, why);
  };
  let out = '';
  // The open character class, if any: its RE2 items so far, negation, and a `\S` seen in it.
  let cls: { negated: boolean; items: string; nonSpace: boolean } | undefined;
  let i = 0;
  const emit = (s: string): void => {
    if (cls) cls.items += s;
    else out += s;
  };
  /** Reads `\uXXXX` or `\u{X…}` at `j` (pointing at `u`); returns the code point and the next index. */
  const unicodeEscape = (j: number): [number, number] => {
    if (src[j + 1] === '{') {
      const end = src.indexOf('}', j + 2);
      return [parseInt(src.slice(j + 2, end), 16), end + 1];
    }
    const unit = parseInt(src.slice(j + 1, j + 5), 16);
    if (unit >= 0xd800 && unit <= 0xdbff && src[j + 5] === '\\' && src[j + 6] === 'u' && HEX.test(src.slice(j + 7, j + 11))) {
      const low = parseInt(src.slice(j + 7, j + 11), 16);
      if (low >= 0xdc00 && low <= 0xdfff) return [0x10000 + ((unit - 0xd800) << 10) + (low - 0xdc00), j + 11];
    }
    return [unit, j + 5];
  };
  while (i < src.length) {
    const c = src[i];
    if (c === '\\') {
      const d = src[i + 1];
      if (d === 'u') {
        const [cp, next] = unicodeEscape(i + 1);
        emit(hex(cp));
        i = next;
        continue;
      }
      i += 2;
      if (d === 'c') emit(hex(src.charCodeAt(i++) % 32));
      else if (d === '0') emit(hex(0));
      else if (d >= '1' && d <= '9') fail(`uses a backreference (\\${d}), which RE2 (linear-time matching) does not support`);
      else if (d === 'k') fail('uses a named backreference (\\k<…>), which RE2 (linear-time matching) does not support');
      else if (d === 'b' && cls) emit(hex(8));
      else if (d === 's') emit(cls ? JS_SPACE_ITEMS : `[${JS_SPACE_ITEMS}]`);
      else if (d === 'S') {
        if (cls) cls.nonSpace = true;
        else out += `[^${JS_SPACE_ITEMS}]`;
      } else if (d === 'p' || d === 'P') {
        const end = src.indexOf('}', i);
        let name = src.slice(i + 1, end);
        i = end + 1;
        const eq = name.indexOf('=');
        if (eq >= 0) {
          const prop = name.slice(0, eq);
          if (prop !== 'Script' && prop !== 'sc' && prop !== 'General_Category' && prop !== 'gc') fail(`uses \\${d}{${name}}, which RE2 does not support`);
          name = name.slice(eq + 1);
        }
        emit(`\\${d}{${name}}`);
      } else if (d === '/') emit('/');
      else emit(`\\${d}`);
      continue;
    }
    if (cls) {
      if (c === ']') {
        const { negated, items, nonSpace } = cls;
        cls = undefined;
        if (nonSpace) {
          if (negated) fail('uses \\S inside a negated character class, which has no RE2 equivalent');
          out += items ? `(?:[${items}]|[^${JS_SPACE_ITEMS}])` : `[^${JS_SPACE_ITEMS}]`;
        } else if (!items) out += negated ? ANY : NOTHING;
        else out += `[${negated ? '^' : ''}${items}]`;
      } else if (c === '[') cls.items += '\\[';
      else cls.items += c;
      i++;
      continue;
    }
    if (c === '[') {
      const negated = src[i + 1] === '^';
      cls = { negated, items: '', nonSpace: false };
      i += negated ? 2 : 1;
      continue;
    }
    if (c === '(' && src[i + 1] === '?') {
      const look = /^\(\?(=|!|<=|<!)/.exec(src.slice(i, i + 4));
      if (look) fail(`uses a lookaround assertion (?${look[1]}…), which RE2 (linear-time matching) does not support`);
    }
    out += c === '.' ? JS_DOT : c;
    i++;
  }
  return out;
}

/**
 * Compiles one tenant pattern to a linear-time matcher.
 * @param source - the ECMA-262 pattern as written in the schema.
 * @throws {UnsupportedPatternError} when it is longer than {@link MAX_PATTERN_LENGTH}, is not
 *   valid ECMA-262 (`u` flag), uses a construct RE2 cannot run, or compiles to more than
 *   {@link MAX_PATTERN_PROGRAM_SIZE} instructions.
 */
export function compileLinearPattern(source: string): LinearPattern {
  if (source.length > MAX_PATTERN_LENGTH) {
    throw new UnsupportedPatternError(`${source.slice(0, 40)}…`, `is ${source.length} characters long, more than the ${MAX_PATTERN_LENGTH} allowed`);
  }
  try {
    new RegExp(source, 'u'); // syntax only: V8 compiles lazily, on the first match
  } catch (err) {
    throw new UnsupportedPatternError(source, `is not a valid ECMA-262 regular expression: ${(err as Error).message}`);
  }
  const translated = toRe2Syntax(source);
  let re: RE2JS;
  try {
    re = RE2JS.compile(translated);
  } catch (err) {
    throw new UnsupportedPatternError(source, `cannot be compiled by RE2 (linear-time matching): ${(err as Error).message}`);
  }
  const size = re.programSize();
  if (size > MAX_PATTERN_PROGRAM_SIZE) {
    throw new UnsupportedPatternError(
      source,
      `compiles to ${size} RE2 instructions, more than the ${MAX_PATTERN_PROGRAM_SIZE} allowed (matching cost grows with input length × program size)`,
    );
  }
  return new LinearPattern(source, re);
}

/**
 * The `code.regExp` engine for ajv: every `pattern` and `patternProperties` key is compiled
 * with {@link compileLinearPattern}. ajv passes flags `"u"` (option `unicodeRegExp`, default)
 * or `""`; both mean the same here (RE2 always matches code points).
 * @throws {UnsupportedPatternError} from ajv's `compile` for a pattern RE2 cannot run.
 */
export const linearRegExp: RegExpEngine = Object.assign((source: string, _flags: string) => compileLinearPattern(source), {
  // Only read by ajv's standalone code generation (`code.source`), which KEA does not use.
  code: 'require("./lib/openapi/patterns.js").linearRegExp',
});

/** A pattern of a schema that cannot be compiled, located by JSON pointer. */
export interface PatternProblem {
  /** RFC 6901 pointer from the schema root to the `pattern` keyword or `patternProperties` key. */
  pointer: string;
  pattern: string;
  /** Why, starting with the quoted pattern. */
  message: string;
}

/**
 * Every `pattern` and `patternProperties` key in a JSON Schema (or OpenAPI 3.0 Schema Object)
 * that {@link compileLinearPattern} refuses (a schema before its subschemas). Walks the schema keywords
 * ajv applies (json-schema-traverse), not examples, defaults or enums.
 */
export function unsupportedPatterns(schema: unknown): PatternProblem[] {
  const out: PatternProblem[] = [];
  if (!schema || typeof schema !== 'object') return out;
  const check = (pattern: string, pointer: string): void => {
    try {
      compileLinearPattern(pattern);
    } catch (err) {
      if (!(err instanceof UnsupportedPatternError)) throw err;
      out.push({ pointer, pattern, message: err.message });
    }
  };
  // eslint-disable-next-line @typescript-eslint/no-unnecessary-type-assertion -- without it tsc cannot type the callback's parameters
  traverse(schema as traverse.SchemaObject, (node, ptr) => {
    if (typeof node.pattern === 'string') check(node.pattern, `${ptr}/pattern`);
    const pp: unknown = node.patternProperties;
    if (pp && typeof pp === 'object' && !Array.isArray(pp)) {
      for (const k of Object.keys(pp)) check(k, `${ptr}/patternProperties/${k.replace(/~/g, '~0').replace(/\//g, '~1')}`);
    }
  });
  return out;
}

/**
 * Throws when {@link unsupportedPatterns} finds any, naming the first by pointer.
 * @param where - prefix of the message locating the schema (e.g. `requestBody.schema`).
 * @throws {Error} `<where>#<pointer>: pattern "…" <why>`, e.g.
 *   `requestBody.schema#/properties/name/pattern: pattern "^(?=a)" uses a lookaround …`.
 */
export function assertLinearPatterns(schema: unknown, where: string): void {
  const [first] = unsupportedPatterns(schema);
  if (first) throw new Error(`${where}#${first.pointer}: ${first.message}`);
}
