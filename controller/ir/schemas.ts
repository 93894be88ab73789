/**
 * JSON Schema helpers for the IR: make an operation's schema self-contained (components
 * inlined), and synthesize an example value from a schema (for the status curl example).
 */
import type { JsonSchema } from '../../lib/api/types.js';

const COMPONENT_REF = /^#\/components\/schemas\/([A-Za-z0-9._-]+)$/;

/**
 * Return a copy of `schema` in which every `#/components/schemas/<Name>` reference is replaced
 * by the component itself (recursively), so the policy server can compile it alone. A
 * recursive component (one that reaches itself) cannot be inlined: the cycle is broken with
 * `{"$ref": "#/$defs/<Name>"}` and the component is placed under the root's `$defs` (Ajv
 * resolves `$defs` in every draft it supports). Siblings of `$ref` are dropped, as OpenAPI
 * 3.0 §4.7.24 (Reference Object) prescribes. Unknown references are left as they are (the
 * graph stage has already reported them).
 */
export function selfContained(schema: JsonSchema, components: Record<string, JsonSchema>): JsonSchema {
  const defs = new Map<string, JsonSchema>();
  const pending: string[] = [];
  const walk = (node: unknown, stack: string[]): unknown => {
    if (Array.isArray(node)) return node.map((n) => walk(n, stack));
    if (!node || typeof node !== 'object') return node;
    const obj = node as Record<string, unknown>;
    if (typeof obj.$ref === 'string') {
      const m = COMPONENT_REF.exec(obj.$ref);
      if (m && m[1] in components) {
        const name = m[1];
        if (stack.includes(name)) {
          if (!defs.has(name) && !pending.includes(name)) pending.push(name);
          return { $ref: `#/$defs/${name}` };
        }
        return walk(components[name], [...stack, name]);
      }
      return { ...obj };
    }
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(obj)) {
      out[k] = k === 'example' || k === 'default' || k === 'enum' ? structuredClone(v) : walk(v, stack);
    }
    return out;
  };
  const root = walk(schema, []) as JsonSchema;
  while (pending.length) {
    const name = pending.shift()!;
    defs.set(name, walk(components[name], [name]) as JsonSchema);
  }
  if (defs.size) {
    const sorted = [...defs.keys()].sort();
    root.$defs = Object.fromEntries(sorted.map((n) => [n, defs.get(n)]));
  }
  return root;
}

/**
 * An example value that validates against `schema` (as far as the common keywords go):
 * `example`, then `default`, then the first `enum` value, then one built from `type`
 * (objects get every property, arrays `max(minItems, 1)` items, numbers their `minimum`).
 * `$ref`s to `#/$defs/X` inside a self-contained schema are followed up to depth 6.
 */
export function exampleFor(schema: JsonSchema | undefined, root: JsonSchema = schema ?? {}, depth = 0): unknown {
  if (!schema || depth > 12) return null;
  if ('example' in schema) return schema.example;
  if ('default' in schema) return schema.default;
  if (Array.isArray(schema.enum) && schema.enum.length) return schema.enum[0];
  if (typeof schema.$ref === 'string') {
    const m = /^#\/\$defs\/(.+)$/.exec(schema.$ref);
    const defs = (root.$defs ?? {}) as Record<string, JsonSchema>;
    return m && defs[m[1]] && depth < 6 ? exampleFor(defs[m[1]], root, depth + 1) : null;
  }
  for (const k of ['oneOf', 'anyOf'] as const) {
    const alts = schema[k];
    if (Array.isArray(alts) && alts.length) return exampleFor(alts[0] as JsonSchema, root, depth + 1);
  }
  if (Array.isArray(schema.allOf)) {
    const parts = schema.allOf.map((s) => exampleFor(s as JsonSchema, root, depth + 1));
    if (parts.every((p) => p && typeof p === 'object' && !Array.isArray(p))) return Object.assign({}, ...parts);
    return parts[0] ?? null;
  }
  const type = schema.type ?? (schema.properties ? 'object' : schema.items ? 'array' : undefined);
  switch (type) {
    case 'object': {
      const props = (schema.properties ?? {}) as Record<string, JsonSchema>;
      return Object.fromEntries(Object.entries(props).map(([k, v]) => [k, exampleFor(v, root, depth + 1)]));
    }
    case 'array': {
      const n = Math.max(typeof schema.minItems === 'number' ? schema.minItems : 1, 1);
      const item = exampleFor(schema.items as JsonSchema | undefined, root, depth + 1);
      return Array.from({ length: n }, () => structuredClone(item));
    }
    case 'integer':
      return typeof schema.minimum === 'number' ? Math.ceil(schema.minimum) : 1;
    case 'number':
      return typeof schema.minimum === 'number' ? schema.minimum : 0.5;
    case 'boolean':
      return true;
    case 'string': {
      const formats: Record<string, string> = { 'date-time': '2024-01-01T00:00:00Z', date: '2024-01-01', email: 'user@example.com', uuid: '00000000-0000-4000-8000-000000000000', uri: 'https://example.com' };
      const s = formats[String(schema.format)] ?? 'string';
      const min = typeof schema.minLength === 'number' ? schema.minLength : 0;
      return s.length >= min ? s : s.padEnd(min, 'x');
    }
    default:
      return null;
  }
}
