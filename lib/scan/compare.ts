/**
 * Compares two ApiSchemas for API equivalence: what `kea scan` derived from source against
 * what `kea import` read from the running service's OpenAPI document.
 *
 * Takes in: two ApiSchemas. Gives out: a list of human-readable differences (empty when
 * equivalent). Compared: the set of operations (method + path), per operation the parameters
 * (name, location, required, schema), the request body (required, schema) and the success
 * response schema. Schemas are normalized first: `$ref`s resolved, single-member `allOf`
 * merged, `title` dropped, `default: null` and `additionalProperties: true` dropped,
 * `required` sorted, descriptions whitespace-trimmed. Not compared: operationId, summary
 * (FastAPI derives them from the function name, the scanner from the docstring), tags and
 * FastAPI's automatic 422 responses (the gateway answers invalid input with 400 first).
 */
import type { ApiSchema, JsonSchema, Operation } from '../api/types.js';

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** A schema with refs resolved and cosmetic keywords removed. */
export function normalizeSchema(schema: unknown, components: Record<string, JsonSchema>, depth = 0): unknown {
  if (Array.isArray(schema)) return schema.map((s) => normalizeSchema(s, components, depth));
  if (!isObj(schema)) return schema;
  if (depth > 24) return { $recursive: true };
  let s: Record<string, unknown> = { ...schema };
  if (typeof s.$ref === 'string') {
    const name = s.$ref.replace(/^#\/components\/schemas\//, '');
    const target = components[name];
    const { $ref: _ref, ...siblings } = s;
    s = { ...(isObj(target) ? target : { $unresolved: name }), ...siblings };
    return normalizeSchema(s, components, depth + 1);
  }
  if (Array.isArray(s.allOf) && s.allOf.length === 1) {
    const { allOf, ...siblings } = s;
    const inner = normalizeSchema(allOf[0], components, depth + 1);
    s = { ...(isObj(inner) ? inner : {}), ...siblings };
  }
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(s)) {
    if (k === 'title') continue;
    if (k === 'default' && v === null) continue;
    if (k === 'additionalProperties' && v === true) continue;
    if (k === 'nullable' && v === false) continue;
    if (k === 'description' && typeof v === 'string') {
      out[k] = v.trim().replace(/\s+/g, ' ');
      continue;
    }
    if (k === 'required' && Array.isArray(v)) {
      out[k] = [...v].sort();
      continue;
    }
    if (k === 'properties' && isObj(v)) {
      out[k] = Object.fromEntries(Object.entries(v).map(([pk, pv]) => [pk, normalizeSchema(pv, components, depth + 1)]));
      continue;
    }
    out[k] = normalizeSchema(v, components, depth + 1);
  }
  return out;
}

interface NormalOp {
  parameters: Record<string, { required: boolean; schema: unknown }>;
  requestBody?: { required: boolean; schema: unknown };
  response?: { status: string; schema: unknown };
}

function normalOp(op: Operation, components: Record<string, JsonSchema>): NormalOp {
  const parameters: NormalOp['parameters'] = {};
  for (const p of op.parameters ?? []) {
    parameters[`${p.in} ${p.name}`] = { required: p.required === true, schema: normalizeSchema(p.schema ?? {}, components) };
  }
  const out: NormalOp = { parameters };
  if (op.requestBody) out.requestBody = { required: op.requestBody.required === true, schema: normalizeSchema(op.requestBody.schema, components) };
  const success = Object.keys(op.responses ?? {})
    .filter((c) => /^2/.test(c))
    .sort()[0];
  if (success) {
    const schema = op.responses![success].schema;
    // FastAPI publishes `{}` when a route declares no response type; the scanner publishes none.
    out.response = { status: success, schema: schema && Object.keys(schema).length ? normalizeSchema(schema, components) : undefined };
  }
  return out;
}

/** Deep differences between two normalized values, as `path: left=… right=…` lines. */
export function deepDiff(a: unknown, b: unknown, path: string, labels: [string, string], out: string[] = []): string[] {
  if (isObj(a) && isObj(b)) {
    for (const k of [...new Set([...Object.keys(a), ...Object.keys(b)])].sort()) deepDiff(a[k], b[k], path ? `${path}.${k}` : k, labels, out);
    return out;
  }
  if (Array.isArray(a) && Array.isArray(b) && a.length === b.length) {
    a.forEach((x, i) => deepDiff(x, b[i], `${path}[${i}]`, labels, out));
    return out;
  }
  if (JSON.stringify(a) !== JSON.stringify(b)) out.push(`${path}: ${labels[0]}=${JSON.stringify(a)} ${labels[1]}=${JSON.stringify(b)}`);
  return out;
}

/**
 * Differences between two ApiSchemas' operations.
 * @param ignore operations (`METHOD /path`) present only on one side that are expected.
 * @returns one line per difference, prefixed with `METHOD /path`; empty when equivalent.
 */
export function diffApiSchemas(left: ApiSchema, right: ApiSchema, labels: [string, string] = ['scan', 'served'], ignore: string[] = []): string[] {
  const ops = (s: ApiSchema) => new Map((s.spec.operations ?? []).map((o) => [`${o.method} ${o.path}`, o]));
  const a = ops(left);
  const b = ops(right);
  const ca = left.spec.components?.schemas ?? {};
  const cb = right.spec.components?.schemas ?? {};
  const out: string[] = [];
  for (const k of [...new Set([...a.keys(), ...b.keys()])].sort()) {
    if (ignore.includes(k)) continue;
    const x = a.get(k);
    const y = b.get(k);
    if (!x) {
      out.push(`${k}: only in ${labels[1]}`);
      continue;
    }
    if (!y) {
      out.push(`${k}: only in ${labels[0]}`);
      continue;
    }
    for (const d of deepDiff(normalOp(x, ca), normalOp(y, cb), '', labels)) out.push(`${k}: ${d}`);
  }
  return out;
}
