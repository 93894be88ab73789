/** Unit test of the closed-schema analysis (pure logic). */
import { closedDepth } from './schema-bound.js';
import { oas30ToJsonSchema } from '../../lib/openapi/jsonschema.js';

const matrix = { type: 'array', items: { type: 'array', items: { type: 'number' } } };

test.each([
  ['a primitive', { type: 'string' }, 0],
  ['a nullable primitive list', { type: ['string', 'null'] }, 0],
  ['an array of arrays of numbers', matrix, 2],
  ['a closed object', { type: 'object', additionalProperties: false, properties: { a: { type: 'integer' }, m: matrix } }, 3],
  [
    'the bench/iris body',
    oas30ToJsonSchema({
      type: 'object',
      required: ['features'],
      additionalProperties: false,
      properties: {
        model: { type: 'string' },
        options: { type: 'object', additionalProperties: false, properties: { explain: { type: 'boolean' } } },
        features: matrix,
      },
    }),
    3,
  ],
  ['a local $ref', { type: 'object', additionalProperties: false, properties: { m: { $ref: '#/definitions/M' } }, definitions: { M: matrix } }, 3],
  ['allOf with one closed branch', { allOf: [{ type: 'object' }, { type: 'object', additionalProperties: false, properties: {} }] }, 1],
  ['anyOf of closed branches', { anyOf: [{ type: 'string' }, matrix] }, 2],
  ['an enum of objects', { enum: [{ a: 1 }, 'x'] }, 2],
])('%s is closed with depth %d', (_name, schema, depth) => {
  expect(closedDepth(schema)).toBe(depth);
});

test.each([
  ['no type', { properties: { a: { type: 'string' } }, additionalProperties: false }],
  ['additional properties allowed', { type: 'object', properties: { a: { type: 'string' } } }],
  ['additionalProperties as a schema (any key, __proto__ included)', { type: 'object', additionalProperties: { type: 'string' } }],
  ['patternProperties', { type: 'object', additionalProperties: false, patternProperties: { '^x': { type: 'string' } } }],
  [
    'a property named constructor',
    { type: 'object', additionalProperties: false, properties: { constructor: { type: 'object', additionalProperties: false } } },
  ],
  ['an array without items', { type: 'array' }],
  ['tuple items', { type: 'array', items: [{ type: 'string' }] }],
  ['anyOf with an open branch', { anyOf: [{ type: 'string' }, { type: 'object' }] }],
  ['a recursive $ref', { $ref: '#/definitions/T', definitions: { T: { type: 'array', items: { $ref: '#/definitions/T' } } } }],
  ['a remote $ref', { $ref: 'https://example.com/s.json' }],
  ['true', true],
])('%s is open', (_name, schema) => {
  expect(closedDepth(schema)).toBeUndefined();
});
