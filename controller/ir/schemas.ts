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
