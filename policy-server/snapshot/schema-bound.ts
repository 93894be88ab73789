/**
 * Static analysis of a request-body JSON Schema (draft-07 as compiled by ajv, as the controller
 * writes it into policy.json: lib/openapi/jsonschema.ts `oas30ToJsonSchema`): does every value
 * the schema accepts have bounded nesting and no key that prototype pollution uses? When it does, a value that passes the schema needs no
 * separate depth / key walk (policy-server/datapath/body.ts `guardJson`), which is then run
 * only to explain a rejection.
 *
 * Conservative by construction: anything not understood (`$ref` outside the document,
 * recursion, `patternProperties`, `additionalProperties` other than `false`, `unevaluated*`,
 * `dependentSchemas`, a missing `type` on a schema that admits objects or arrays) makes the
 * schema "open" (undefined).
 */

/** Keys {@link guardJson} rejects; a closed schema must not name them as properties. */
const POLLUTION_KEYS = new Set(['__proto__', 'constructor', 'prototype']);
const PRIMITIVES = new Set(['string', 'number', 'integer', 'boolean', 'null']);
const OPEN = Infinity;

type Schema = Record<string, unknown>;

function resolveRef(root: unknown, ref: string): unknown {
  if (ref === '#') return root;
  if (!ref.startsWith('#/')) return undefined;
  let cur: unknown = root;
  for (const raw of ref.slice(2).split('/')) {
    const seg = decodeURIComponent(raw).replace(/~1/g, '/').replace(/~0/g, '~');
    if (cur === null || typeof cur !== 'object' || !Object.prototype.hasOwnProperty.call(cur, seg)) return undefined;
    cur = (cur as Record<string, unknown>)[seg];
  }
  return cur;
}

/**
 * Nesting depth bound of the values `schema` accepts: 0 for primitives, 1 + children for
 * objects and arrays; {@link OPEN} when unbounded or not provable.
 */
function depthOf(root: unknown, schema: unknown, visiting: Set<unknown>): number {
  if (schema === false) return 0; // accepts nothing
  if (schema === null || typeof schema !== 'object' || Array.isArray(schema)) return OPEN;
  const s = schema as Schema;
  if (visiting.has(s)) return OPEN; // recursive schema
  visiting.add(s);
  try {
    for (const k of ['patternProperties', 'unevaluatedProperties', 'unevaluatedItems', 'dependentSchemas', 'dependencies', 'additionalItems', 'contains']) {
      if (k in s) return OPEN;
    }
    // allOf: the value satisfies every branch, so the tightest branch bounds it.
    let bound = OPEN;
    if (Array.isArray(s.allOf)) for (const b of s.allOf) bound = Math.min(bound, depthOf(root, b, visiting));
    // anyOf / oneOf: the value satisfies some branch: every branch must be bounded.
    for (const k of ['anyOf', 'oneOf'] as const) {
      const branches = s[k];
      if (Array.isArray(branches))
        bound = Math.min(
          bound,
          branches.reduce<number>((m, b) => Math.max(m, depthOf(root, b, visiting)), 0),
        );
    }
    if (typeof s.$ref === 'string') {
      const target = resolveRef(root, s.$ref);
      return Math.min(bound, target === undefined ? OPEN : depthOf(root, target, visiting));
    }
    if ('const' in s || Array.isArray(s.enum)) return Math.min(bound, literalDepth(s.const ?? s.enum));
    const types = typeof s.type === 'string' ? [s.type] : Array.isArray(s.type) ? (s.type as unknown[]) : undefined;
    if (!types) return bound; // no type: only a combinator above can bound it
    let own = 0;
    for (const t of types) {
      if (typeof t !== 'string') return bound;
      if (PRIMITIVES.has(t)) continue;
      if (t === 'object') own = Math.max(own, objectDepth(root, s, visiting));
      else if (t === 'array') own = Math.max(own, arrayDepth(root, s, visiting));
      else return bound;
    }
    return Math.min(bound, own);
  } finally {
    visiting.delete(s);
  }
}

function objectDepth(root: unknown, s: Schema, visiting: Set<unknown>): number {
  if (s.additionalProperties !== false) return OPEN;
  const props = (s.properties ?? {}) as Record<string, unknown>;
  if (props === null || typeof props !== 'object') return OPEN;
  let d = 0;
  for (const [name, sub] of Object.entries(props)) {
    if (POLLUTION_KEYS.has(name)) return OPEN;
    d = Math.max(d, depthOf(root, sub, visiting));
  }
  return 1 + d;
}

function arrayDepth(root: unknown, s: Schema, visiting: Set<unknown>): number {
  const items = s.items;
  if (items === undefined || items === true) return OPEN;
  if (Array.isArray(items)) return OPEN; // tuple form admits additional items unless additionalItems: false
  return 1 + depthOf(root, items, visiting);
}

/**
 * Depth of enum/const literals (they may be objects); {@link OPEN} when a literal object has a
 * {@link POLLUTION_KEYS} key, since the schema then admits a body carrying it.
 */
function literalDepth(v: unknown): number {
  if (v === null || typeof v !== 'object') return 0;
  let d = 0;
  if (!Array.isArray(v)) for (const k of Object.keys(v)) if (POLLUTION_KEYS.has(k)) return OPEN;
  for (const x of Object.values(v)) d = Math.max(d, literalDepth(x));
  return 1 + d;
}

/**
 * The nesting bound of every value `schema` accepts, when the schema also admits no
 * `__proto__` / `constructor` / `prototype` key anywhere.
 * @param schema - a normalized draft-07 schema (local `#/...` `$ref`s are followed).
 * @returns the depth bound (0 for primitives), or undefined if the schema is open.
 */
export function closedDepth(schema: unknown): number | undefined {
  const d = depthOf(schema, schema, new Set());
  return Number.isFinite(d) ? d : undefined;
}
