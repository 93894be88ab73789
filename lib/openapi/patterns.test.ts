/**
 * Linear-time tenant patterns (lib/openapi/patterns.ts): same answers as ECMA-262 on a corpus
 * of the syntax RE2 reads differently, refusals that say why, pointers into the schema, ajv
 * wiring, and the cost of the ReDoS pattern.
 */
import { Ajv } from 'ajv';
import {
  compileLinearPattern,
  linearRegExp,
  MAX_PATTERN_LENGTH,
  MAX_PATTERN_PROGRAM_SIZE,
  toRe2Syntax,
  unsupportedPatterns,
  UnsupportedPatternError,
} from './patterns.js';

describe('compileLinearPattern keeps the ECMA-262 (u flag) meaning', () => {
  // [pattern, input]: the expected answer is V8's own.
  const corpus: Array<[string, string]> = [
    ['^[a-z]([-a-z0-9]*[a-z0-9])?$', 'abc-1'],
    ['^[a-z]([-a-z0-9]*[a-z0-9])?$', 'abc-'],
    ['\\u00e9', 'café'],
    ['^[\\u0041-\\u005A]+$', 'ABC'],
    ['^[\\u0041-\\u005A]+$', 'abc'],
    ['^\\uD83D\\uDE00$', '😀'],
    ['^\\u{1F600}$', '😀'],
    ['^.$', '😀'],
    ['^.$', '\n'],
    ['^.$', '\r'],
    ['^.$', '\u2028'],
    ['^\\s$', '\u00a0'],
    ['^\\s$', '\v'],
    ['^\\s$', '\ufeff'],
    ['^\\S$', '\u3000'],
    ['^\\S+$', 'abc'],
    ['^[\\S\\s]$', '\n'],
    ['^[\\Sa]$', ' '],
    ['^[\\Sa]$', 'b'],
    ['^[\\s\\d]+$', ' 1\u00a02'],
    ['^[]$', 'a'],
    ['^[^]$', '\n'],
    ['^[[:a]+$', ':a['],
    ['^[\\b]$', '\b'],
    ['\\bfoo\\b', 'a foo b'],
    ['\\bfoo\\b', 'afoob'],
    ['^\\cJ$', '\n'],
    ['^\\0$', '\0'],
    ['^a\\/b$', 'a/b'],
    ['^\\p{Script=Greek}+$', 'αβγ'],
    ['^\\p{Lu}\\p{Ll}+$', 'Élan'],
    ['^(?<year>\\d{4})-\\d{2}$', '2026-12'],
    ['^\\d+$', '١٢'], // Arabic-Indic digits: \d is ASCII in both
    ['^\\w+$', 'é'], // \w is ASCII in both
    ['a|b', 'xxb'],
    ['^x{2,3}$', 'xxxx'],
    ['^[^\\n\\d]+$', 'ab\n'],
    ['(?:ab)+?c', 'ababc'],
    ['^\\x41\\x{42}$'.replace('\\x{42}', 'B'), 'AB'],
    ['^\\$\\.\\*\\+\\?\\(\\)\\[\\]\\{\\}\\|\\^\\\\$', '$.*+?()[]{}|^\\'],
  ];
  it.each(corpus)('%j on %j', (pattern, input) => {
    expect(compileLinearPattern(pattern).test(input)).toBe(new RegExp(pattern, 'u').test(input));
  });

  it('translates to RE2 syntax', () => {
    expect(toRe2Syntax('^\\u00e9.$')).toBe('^\\x{e9}[^\\n\\r\\x{2028}\\x{2029}]$');
    expect(toRe2Syntax('[[:a]')).toBe('[\\[:a]');
  });
});

describe('patterns RE2 cannot run are refused with the reason', () => {
  it.each([
    ['^(?=.*[0-9]).{8,}$', 'uses a lookaround assertion (?=…)'],
    ['^(?!admin)', 'uses a lookaround assertion (?!…)'],
    ['(?<=\\$)\\d+', 'uses a lookaround assertion (?<=…)'],
    ['(?<!-)\\d+', 'uses a lookaround assertion (?<!…)'],
    ['^(a+)\\1$', 'uses a backreference (\\1)'],
    ['^(?<q>["\'])x\\k<q>$', 'uses a named backreference'],
    ['[^\\Sx]', 'uses \\S inside a negated character class'],
    ['a{1001}', 'cannot be compiled by RE2'],
    ['\\p{Letter}', 'cannot be compiled by RE2'],
    ['\\z', 'is not a valid ECMA-262 regular expression'],
    ['(', 'is not a valid ECMA-262 regular expression'],
    ['\\p{L}{1000}', `compiles to 1002 RE2 instructions, more than the ${MAX_PATTERN_PROGRAM_SIZE} allowed`],
  ])('%j', (pattern, why) => {
    let err: unknown;
    try {
      compileLinearPattern(pattern);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(UnsupportedPatternError);
    expect((err as Error).message).toContain(`pattern "${pattern}" ${why}`);
  });
});

it('refuses a pattern longer than MAX_PATTERN_LENGTH before compiling it', () => {
  const long = `^(?:${'word|'.repeat(2000)}end)$`;
  const t0 = performance.now();
  expect(() => compileLinearPattern(long)).toThrow(`is ${long.length} characters long, more than the ${MAX_PATTERN_LENGTH} allowed`);
  expect(performance.now() - t0).toBeLessThan(50);
});

describe('unsupportedPatterns locates every refused pattern by JSON pointer', () => {
  it('walks schema keywords, not examples or property names', () => {
    const schema = {
      type: 'object',
      properties: {
        pattern: { type: 'string', pattern: '^(?=x)' }, // a property named "pattern"
        'a/b': { type: 'array', items: { type: 'string', pattern: '(a)\\1' } },
        fine: { type: 'string', pattern: '^(\\w+\\s?)*$' },
      },
      patternProperties: { '^(?!y)': { type: 'integer' }, '^x': { anyOf: [{ pattern: '(?<=a)' }] } },
      example: { pattern: '(?=ignored)' },
      default: { pattern: '(?=ignored)' },
    };
    expect(unsupportedPatterns(schema).map((p) => p.pointer)).toEqual([
      '/patternProperties/^(?!y)',
      '/properties/pattern/pattern',
      '/properties/a~1b/items/pattern',
      '/patternProperties/^x/anyOf/0/pattern',
    ]);
    expect(unsupportedPatterns({ type: 'string', pattern: '^[a-z]+$' })).toEqual([]);
    expect(unsupportedPatterns(undefined)).toEqual([]);
  });
});

describe('ajv with code.regExp = linearRegExp', () => {
  const ajv = new Ajv({ allErrors: true, strict: false, code: { regExp: linearRegExp } });

  it('validates pattern and patternProperties through RE2, one compiled pattern per source', () => {
    const v = ajv.compile({
      type: 'object',
      properties: { a: { type: 'string', pattern: '^a+$' }, b: { type: 'string', pattern: '^b+$' } },
      patternProperties: { '^x-': { type: 'integer' } },
    });
    expect(v({ a: 'aaa', b: 'bbb', 'x-n': 1 })).toBe(true);
    expect(v({ a: 'b', b: 'a', 'x-n': 'one' })).toBe(false);
    expect(v.errors!.map((e) => e.instancePath).sort()).toEqual(['/a', '/b', '/x-n']);
  });

  it('refuses a lookahead at compile time', () => {
    expect(() => ajv.compile({ type: 'string', pattern: '(?=a)' })).toThrow(UnsupportedPatternError);
  });

  it("the issue's ReDoS pattern on a hostile input costs milliseconds, not seconds", () => {
    const v = ajv.compile({ type: 'string', pattern: '^(\\w+\\s?)*$' });
    const t0 = performance.now();
    expect(v(`${'a'.repeat(27)}!`)).toBe(false);
    expect(v(`${'a'.repeat(100_000)}!`)).toBe(false);
    // V8's backtracking engine needs seconds for the first input alone, and never ends on the second.
    expect(performance.now() - t0).toBeLessThan(500);
  });
});
