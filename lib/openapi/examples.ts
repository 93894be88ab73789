/**
 * Example values and a ready-to-run curl command for an operation of a generated document.
 *
 * Takes an OpenAPI 3.0 document (as from generateOpenApi) and gives:
 *   - {@link sampleFromSchema}: a value that satisfies a schema (explicit `example`/`default`
 *     first, then the first `enum` value, then a value built from type, format, bounds,
 *     `required` and item counts; `pattern` is not solved);
 *   - {@link curlExample}: the curl command for ApiSchema `status.curlExample`: gateway URL +
 *     basePath + path with sample path/query parameters, the bearer header unless the operation
 *     is public, and the documented example body (or a sample). Pure and deterministic.
 */
import type { OpenAPIObject, OperationObject, ParameterObject, ReferenceObject, RequestBodyObject, SchemaObject } from 'openapi3-ts/oas30';

type S = SchemaObject | ReferenceObject | undefined;

function deref<T>(doc: OpenAPIObject | undefined, v: T | ReferenceObject | undefined, depth = 0): T | undefined {
  if (!v || typeof v !== 'object' || !('$ref' in (v as object))) return v as T | undefined;
  const ref = (v as ReferenceObject).$ref;
  if (!doc || !ref.startsWith('#/') || depth > 32) return undefined;
  let cur: unknown = doc;
  for (const raw of ref.slice(2).split('/')) {
    cur = cur && typeof cur === 'object' ? (cur as Record<string, unknown>)[raw.replace(/~1/g, '/').replace(/~0/g, '~')] : undefined;
  }
  return deref<T>(doc, cur as T, depth + 1);
}

function sampleNumber(s: SchemaObject, integer: boolean): number {
  const step = integer ? 1 : 0.5;
  let v: number;
  if (typeof s.minimum === 'number') v = s.exclusiveMinimum ? s.minimum + step : s.minimum;
  else if (typeof s.maximum === 'number' && s.maximum < 0) v = s.exclusiveMaximum ? s.maximum - step : s.maximum;
  else v = integer ? 1 : 0.5;
  if (typeof s.maximum === 'number' && v > s.maximum) v = s.maximum;
  if (typeof s.multipleOf === 'number' && s.multipleOf > 0) v = Math.ceil(v / s.multipleOf) * s.multipleOf;
  return integer ? Math.round(v) : v;
}

function sampleString(s: SchemaObject): string {
  const byFormat: Record<string, string> = {
    'date-time': '2026-01-01T00:00:00Z',
    date: '2026-01-01',
    email: 'user@example.com',
    uuid: '3f2c9a1e-7b5d-4c60-8e1f-2a9b0c4d5e6f',
    uri: 'https://example.com/',
    'uri-reference': '/example',
    hostname: 'example.com',
    ipv4: '192.0.2.1',
    ipv6: '2001:db8::1',
    byte: 'aGVsbG8=',
  };
  let v = (s.format && byFormat[s.format]) || 'text';
  if (typeof s.minLength === 'number' && v.length < s.minLength) v = v.padEnd(s.minLength, 'x');
  if (typeof s.maxLength === 'number' && v.length > s.maxLength) v = v.slice(0, s.maxLength);
  return v;
}

/**
 * A value satisfying `schema` (resolving `$ref`s against `doc`). Objects get their required
 * properties, plus the optional ones near the top (depth < 2); arrays get `minItems` items
 * (at least 1, at most `maxItems`). Cycles end in `{}`/`[]`.
 */
export function sampleFromSchema(schema: S, doc?: OpenAPIObject, depth = 0, seen: Set<object> = new Set()): unknown {
  const s = deref<SchemaObject>(doc, schema);
  if (!s) return {};
  if (s.example !== undefined) return structuredClone(s.example);
  if (s.default !== undefined) return structuredClone(s.default);
  if (s.enum?.length) return structuredClone(s.enum[0]);
  if (seen.has(s) || depth > 12) return s.type === 'array' ? [] : {};
  const inner = new Set(seen).add(s);
  if (s.allOf?.length) {
    const parts = s.allOf.map((p) => sampleFromSchema(p, doc, depth, inner));
    if (!parts.every((p) => p && typeof p === 'object' && !Array.isArray(p))) return parts[0];
    const merged: Record<string, unknown> = Object.assign({}, ...parts);
    // A member with additionalProperties: false rejects every property it does not declare itself.
    for (const member of s.allOf.map((m) => deref<SchemaObject>(doc, m))) {
      if (member?.additionalProperties !== false) continue;
      for (const k of Object.keys(merged)) if (!(k in (member.properties ?? {}))) delete merged[k];
    }
    return merged;
  }
  const alt = s.oneOf?.[0] ?? s.anyOf?.[0];
  if (alt && !s.type) return sampleFromSchema(alt, doc, depth, inner);
  switch (s.type) {
    case 'boolean':
      return true;
    case 'integer':
      return sampleNumber(s, true);
    case 'number':
      return sampleNumber(s, false);
    case 'string':
      return sampleString(s);
    case 'array': {
      const n = Math.max(1, s.minItems ?? 1);
      const count = typeof s.maxItems === 'number' ? Math.min(n, s.maxItems) : n;
      const item = sampleFromSchema(s.items, doc, depth + 1, inner);
      return Array.from({ length: count }, () => structuredClone(item));
    }
    default: {
      if (alt) return sampleFromSchema(alt, doc, depth, inner);
      const out: Record<string, unknown> = {};
      const req = new Set(s.required ?? []);
      for (const [k, v] of Object.entries(s.properties ?? {})) {
        const ps = deref<SchemaObject>(doc, v);
        if (ps?.readOnly) continue;
        if (req.has(k) || depth < 2) out[k] = sampleFromSchema(v, doc, depth + 1, inner);
      }
      return out;
    }
  }
}

const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch'] as const;

/** The operation `status.curlExample` shows: `operationId` if given, else the first POST named predict*, then infer*, then any POST, then the first operation. */
export function pickExampleOperation(doc: OpenAPIObject, operationId?: string): { path: string; method: string; op: OperationObject } | undefined {
  const all: Array<{ path: string; method: string; op: OperationObject }> = [];
  for (const [path, item] of Object.entries(doc.paths ?? {})) {
    for (const m of METHODS) {
      const op = (item as Record<string, OperationObject | undefined>)[m];
      if (op) all.push({ path, method: m, op });
    }
  }
  if (operationId) return all.find((x) => x.op.operationId === operationId);
  const posts = all.filter((x) => x.method === 'post');
  return posts.find((x) => /^predict/i.test(x.op.operationId ?? '')) ?? posts.find((x) => /^infer/i.test(x.op.operationId ?? '')) ?? posts[0] ?? all[0];
}

function shq(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/**
 * A curl command calling one operation through the gateway, e.g.
 * `curl -sS -X POST 'https://gw/iris/predict' -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' -d '{"features":[[5.1,3.5,1.4,0.2]]}'`.
 * The token is left to the shell (`$TOKEN`, double-quoted). Returns undefined for a document without operations.
 * @param opts.serverUrl - base URL to call (default: the document's first server).
 */
export function curlExample(doc: OpenAPIObject, opts: { operationId?: string; serverUrl?: string } = {}): string | undefined {
  const picked = pickExampleOperation(doc, opts.operationId);
  if (!picked) return undefined;
  const { op, method } = picked;
  const base = (opts.serverUrl ?? doc.servers?.[0]?.url ?? '').replace(/\/+$/, '');
  const params = (op.parameters ?? []).map((p) => deref<ParameterObject>(doc, p)!).filter(Boolean);
  const value = (p: ParameterObject) => {
    const v = p.example !== undefined ? p.example : sampleFromSchema(p.schema, doc, 1);
    return Array.isArray(v) ? v.map(String) : [typeof v === 'object' ? JSON.stringify(v) : String(v)];
  };
  let path = picked.path;
  for (const p of params.filter((x) => x.in === 'path')) path = path.replace(`{${p.name}}`, encodeURIComponent(value(p)[0]));
  const query = params
    .filter((p) => p.in === 'query' && p.required)
    .flatMap((p) => value(p).map((v) => `${encodeURIComponent(p.name)}=${encodeURIComponent(v)}`));
  const url = `${base}${path}${query.length ? `?${query.join('&')}` : ''}`;
  const parts = ['curl', '-sS', '-X', method.toUpperCase(), shq(url)];
  const secured = (op.security ?? doc.security ?? []).length > 0;
  if (secured) parts.push('-H', '"Authorization: Bearer $TOKEN"');
  for (const p of params.filter((x) => x.in === 'header' && x.required)) parts.push('-H', shq(`${p.name}: ${value(p)[0]}`));
  const body = deref<RequestBodyObject>(doc, op.requestBody);
  if (body?.content) {
    const ct = 'application/json' in body.content ? 'application/json' : Object.keys(body.content)[0];
    const media = body.content[ct];
    const ex = media.example !== undefined ? media.example : sampleFromSchema(media.schema, doc);
    parts.push('-H', shq(`Content-Type: ${ct}`));
    parts.push('-d', shq(/json/.test(ct) ? JSON.stringify(ex) : typeof ex === 'string' ? ex : JSON.stringify(ex)));
  }
  return parts.join(' ');
}
