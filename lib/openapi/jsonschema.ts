/**
 * OpenAPI 3.0 Schema Object → JSON Schema (draft-07, as ajv compiles it by default).
 *
 * Takes a (dereferenced or `$ref`-bearing) OAS 3.0 schema and gives an equivalent schema ajv
 * accepts: the draft-04 boolean form `exclusiveMinimum: true` + `minimum: n` becomes
 * `exclusiveMinimum: n` (likewise for maximum). `nullable` is left as is (ajv implements the
 * OpenAPI `nullable` keyword), `discriminator` needs ajv's `discriminator: true` option.
 * Pure; returns a new object.
 */
export function oas30ToJsonSchema(schema: unknown): unknown {
  if (Array.isArray(schema)) return schema.map(oas30ToJsonSchema);
  if (!schema || typeof schema !== 'object') return schema;
  const src = schema as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(src)) {
    if (k === 'enum' || k === 'example' || k === 'default' || k === 'examples') out[k] = v;
    else if (k === 'properties' && v && typeof v === 'object') {
      out[k] = Object.fromEntries(Object.entries(v).map(([pk, pv]) => [pk, oas30ToJsonSchema(pv)]));
    } else out[k] = oas30ToJsonSchema(v);
  }
  for (const [ex, bound] of [['exclusiveMinimum', 'minimum'], ['exclusiveMaximum', 'maximum']] as const) {
    if (typeof out[ex] === 'boolean') {
      if (out[ex] === true && typeof out[bound] === 'number') {
        out[ex] = out[bound];
        delete out[bound];
      } else delete out[ex];
    }
  }
  return out;
}
