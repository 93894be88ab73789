/**
 * OpenAPI 3.0 → JSON Schema (lib/openapi/jsonschema.ts), compiled by ajv as the policy server
 * compiles policy.json schemas. `nullable` follows OpenAPI 3.0.3 §4.7.24.1: it adds null to the
 * types of an explicit `type` only, and other keywords (enum) still constrain null.
 */
import { Ajv } from 'ajv';
import { oas30ToJsonSchema } from './jsonschema.js';

const compile = (oas: unknown) => new Ajv({ strict: false, logger: false }).compile(oas30ToJsonSchema(oas) as object);

describe('nullable (OpenAPI 3.0.3)', () => {
  test('with type: null is accepted as well as the type', () => {
    const v = compile({ type: 'integer', nullable: true });
    expect([v(null), v(3), v('3')]).toEqual([true, true, false]);
    expect(oas30ToJsonSchema({ type: 'integer', nullable: true })).toEqual({ type: 'integer', nullable: true });
  });
  test('nullable: false (the default) keeps null out', () => {
    const v = compile({ type: 'string', nullable: false });
    expect([v(null), v('a')]).toEqual([false, true]);
  });
  test('without type it has no effect: dropped (ajv refuses nullable without type)', () => {
    expect(oas30ToJsonSchema({ nullable: true, minLength: 2 })).toEqual({ minLength: 2 });
    expect(() => new Ajv({ strict: false, logger: false }).compile({ nullable: true })).toThrow(/nullable/);
    const v = compile({ nullable: true, properties: { a: { type: 'string' } } });
    expect([v(null), v({ a: 'x' }), v({ a: 1 })]).toEqual([true, true, false]);
  });
  test('an enum without null still refuses null ("other constraints retain their behavior")', () => {
    const v = compile({ type: 'string', enum: ['a', 'b'], nullable: true });
    expect([v('a'), v(null), v('c')]).toEqual([true, false, false]);
    expect(compile({ type: 'string', enum: ['a', null], nullable: true })(null)).toBe(true);
  });
  test('a property named nullable is a name, not the keyword', () => {
    const s = { type: 'object', properties: { nullable: { type: 'boolean' } }, required: ['nullable'] };
    expect(oas30ToJsonSchema(s)).toEqual(s);
    const v = compile(s);
    expect([v({ nullable: true }), v({})]).toEqual([true, false]);
  });
});

describe('exclusive bounds', () => {
  test('boolean exclusiveMinimum/Maximum become draft-07 numbers', () => {
    expect(oas30ToJsonSchema({ type: 'number', minimum: 0, exclusiveMinimum: true })).toEqual({ type: 'number', exclusiveMinimum: 0 });
    expect(oas30ToJsonSchema({ maximum: 5, exclusiveMaximum: false })).toEqual({ maximum: 5 });
    const v = compile({ type: 'number', minimum: 0, exclusiveMinimum: true, maximum: 1, exclusiveMaximum: true });
    expect([v(0), v(0.5), v(1)]).toEqual([false, true, false]);
  });
});

test('data-valued keywords are copied, not converted; nested schemas are', () => {
  const s = {
    type: 'object',
    example: { exclusiveMinimum: true, nullable: true },
    default: { nullable: true },
    enum: [{ exclusiveMaximum: true }],
    properties: { n: { type: 'number', minimum: 1, exclusiveMinimum: true }, list: { type: 'array', items: { nullable: true } } },
    $defs: { D: { allOf: [{ nullable: true, type: 'string' }, { nullable: true }] } },
  };
  expect(oas30ToJsonSchema(s)).toEqual({
    type: 'object',
    example: { exclusiveMinimum: true, nullable: true },
    default: { nullable: true },
    enum: [{ exclusiveMaximum: true }],
    properties: { n: { type: 'number', exclusiveMinimum: 1 }, list: { type: 'array', items: {} } },
    $defs: { D: { allOf: [{ nullable: true, type: 'string' }, {}] } },
  });
  expect(s.properties.n).toEqual({ type: 'number', minimum: 1, exclusiveMinimum: true }); // input untouched
});
