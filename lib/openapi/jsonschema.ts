/**
 * OpenAPI 3.0 Schema Object → JSON Schema (draft-07, as ajv compiles it by default, with ajv's
 * implementation of the OpenAPI `nullable` keyword). The one conversion behind the schemas the
 * controller writes into policy.json (lib/policy/operation.ts) and the examples checked against
 * published documents.
 */

/** Keywords whose value is data (or a non-schema object), copied verbatim, never walked. */
const DATA_KEYWORDS = new Set(['enum', 'const', 'default', 'example', 'examples', 'xml', 'externalDocs', 'discriminator']);
/** Keywords whose value maps names to schemas (the names are data, the values schemas). */
const SCHEMA_MAPS = new Set(['properties', 'patternProperties', '$defs', 'definitions', 'dependencies']);

/**
 * Converts an OpenAPI 3.0.3 Schema Object (dereferenced or `$ref`-bearing) into the equivalent
 * JSON Schema ajv compiles:
 *   - the draft-04 boolean form `exclusiveMinimum: true` + `minimum: n` becomes
 *     `exclusiveMinimum: n` (likewise for maximum); `exclusiveMinimum: false` is dropped;
 *   - `nullable` (OAS 3.0.3 §4.7.24.1: "adds null to the allowed types specified by the type
 *     keyword, only if type is explicitly defined within the same Schema Object") is kept where
 *     `type` is set (ajv implements it: null is then accepted unless another keyword such as
 *     `enum` excludes it, as the specification says) and dropped where it is not, since it has
 *     no effect there (and ajv refuses `nullable` without `type`);
 *   - data-valued keywords (`enum`, `const`, `default`, `example`, `examples`, `xml`,
 *     `externalDocs`, `discriminator`) are copied as they are, and the names in `properties`,
 *     `patternProperties`, `$defs`, `definitions` and `dependencies` are names, not keywords (a
 *     property called `nullable` stays); `discriminator` needs ajv's `discriminator: true` option.
 * Pure: returns a new object (data-valued members are shared with the input, not copied).
 * @param schema - an OAS 3.0 Schema Object, or any JSON value (returned as is when not an object).
 */
export function oas30ToJsonSchema(schema: unknown): unknown {
  if (Array.isArray(schema)) return schema.map(oas30ToJsonSchema);
  if (schema === null || typeof schema !== 'object') return schema;
  const src = schema as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(src)) {
    const v = src[k];
    if (DATA_KEYWORDS.has(k)) out[k] = v;
    else if (SCHEMA_MAPS.has(k) && v !== null && typeof v === 'object' && !Array.isArray(v)) {
      const m: Record<string, unknown> = {};
      for (const name of Object.keys(v)) m[name] = oas30ToJsonSchema((v as Record<string, unknown>)[name]);
      out[k] = m;
    } else out[k] = oas30ToJsonSchema(v);
  }
  for (const [ex, bound] of [
    ['exclusiveMinimum', 'minimum'],
    ['exclusiveMaximum', 'maximum'],
  ] as const) {
    if (typeof out[ex] === 'boolean') {
      if (out[ex] === true && typeof out[bound] === 'number') {
        out[ex] = out[bound];
        delete out[bound];
      } else delete out[ex];
    }
  }
  if ('nullable' in out && out.type === undefined) delete out.nullable;
  return out;
}
