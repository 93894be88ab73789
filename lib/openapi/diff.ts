/**
 * Classified differences between two OpenAPI 3.0 documents (two published versions of one API).
 *
 * Takes the old and the new document and gives an {@link ApiDiff}: every change with a kind,
 * a breaking/non-breaking verdict, a stable JSON-Pointer-like path (RFC 6901 escaping, rooted
 * at the new document where the element exists there, else at the old one) and a human
 * message. The rules are written down in docs/api-diff.md; in short, from the caller's side:
 *   - operations: removed or moved → breaking; added → not;
 *   - request side is contravariant: narrowing what the server accepts (type, enum values,
 *     bounds, new required fields or parameters) is breaking, widening is not;
 *   - response side is covariant: widening what the server may send (new enum values, fields
 *     becoming optional or nullable, removed fields, removed success statuses) is breaking;
 *     adding a response field or narrowing is not (tolerant reader);
 *   - access: tightening (public → authenticated → restricted, fewer roles, more scopes) is
 *     breaking, relaxing is not;
 *   - rate limits (`x-kea-rate-limit`): added, removed, tightened, relaxed or counted differently,
 *     all reported and none breaking (the 429 with `Retry-After` is part of the contract).
 * Operations are matched by method and path template (parameter names ignored), then by
 * operationId. Pure and deterministic (changes sorted by path, kind, message).
 */
import type { OpenAPIObject, OperationObject, ParameterObject, ReferenceObject, SchemaObject } from 'openapi3-ts/oas30';
import type { Access, ApiDiffSummary } from '../api/types.js';
import { parseDurationMs } from '../api/duration.js';

/** One classified change. */
export interface ApiChange {
  /** Stable kind, e.g. `operation.removed`, `schema.property.added` (see docs/api-diff.md). */
  kind: string;
  breaking: boolean;
  /** JSON Pointer (RFC 6901) into the document, e.g. `/paths/~1predict/post/requestBody/content/application~1json/schema/properties/features`. */
  path: string;
  /** Human sentence, starting with the operation (`POST /predict: ...`). */
  message: string;
}

/** Result of {@link diffOpenApi}; the same shape as ApiSchema `status.lastDiff`. */
export interface ApiDiff extends ApiDiffSummary {
  changes: ApiChange[];
}

type Dir = 'request' | 'response';
type Effect = 'narrow' | 'widen' | 'incompatible' | 'neutral';
type Doc = OpenAPIObject;

const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'] as const;

/** RFC 6901 escaping of one reference token. */
export function escapePointer(token: string): string {
  return token.replace(/~/g, '~0').replace(/\//g, '~1');
}

function stable(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(stable).join(',')}]`;
  if (v && typeof v === 'object') {
    return `{${Object.keys(v)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${stable((v as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(v);
}

/** Resolves a local `$ref` (`#/components/...`), following chains; unknown refs resolve to `{}`. */
function deref<T>(doc: Doc, v: T | ReferenceObject | undefined, depth = 0): T | undefined {
  if (!v || typeof v !== 'object' || !('$ref' in (v as object))) return v as T | undefined;
  const ref = (v as ReferenceObject).$ref;
  if (!ref.startsWith('#/') || depth > 32) return {} as T;
  let cur: unknown = doc;
  for (const raw of ref.slice(2).split('/')) {
    const tok = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    cur = cur && typeof cur === 'object' ? (cur as Record<string, unknown>)[tok] : undefined;
  }
  return deref<T>(doc, (cur ?? {}) as T, depth + 1);
}

function breakingFor(dir: Dir, effect: Effect): boolean {
  if (effect === 'incompatible') return true;
  if (effect === 'neutral') return false;
  return dir === 'request' ? effect === 'narrow' : effect === 'widen';
}

function fmt(v: unknown): string {
  return typeof v === 'string' ? `"${v}"` : JSON.stringify(v);
}

class Differ {
  readonly changes: ApiChange[] = [];
  private visited = new Map<object, Set<object>>();
  constructor(
    private readonly a: Doc,
    private readonly b: Doc,
  ) {}

  add(kind: string, breaking: boolean, path: string, message: string): void {
    this.changes.push({ kind, breaking, path, message });
  }

  private schemaChange(dir: Dir, effect: Effect, kind: string, ptr: string, where: string, what: string): void {
    this.add(kind, breakingFor(dir, effect), ptr, `${where}: ${what}`);
  }

  /** Flattens `allOf` (properties and required merged; other keywords from the first member defining them). */
  private flat(doc: Doc, s: SchemaObject | ReferenceObject | undefined): SchemaObject | undefined {
    const r = deref<SchemaObject>(doc, s);
    if (!r || !r.allOf) return r;
    const out: SchemaObject = { ...r };
    delete out.allOf;
    const props: Record<string, SchemaObject | ReferenceObject> = { ...(r.properties ?? {}) };
    const req = new Set(r.required ?? []);
    for (const part of r.allOf) {
      const p = this.flat(doc, part);
      if (!p) continue;
      for (const [k, v] of Object.entries(p)) {
        if (k === 'properties') Object.assign(props, v);
        else if (k === 'required') (v as string[]).forEach((x) => req.add(x));
        else if ((out as Record<string, unknown>)[k] === undefined) (out as Record<string, unknown>)[k] = v;
      }
    }
    if (Object.keys(props).length) out.properties = props;
    if (req.size) out.required = [...req];
    return out;
  }

  /** Compares two schemas in a direction; `where` is the human location, `ptr` the pointer. */
  schema(dir: Dir, so: SchemaObject | ReferenceObject | undefined, sn: SchemaObject | ReferenceObject | undefined, ptr: string, where: string): void {
    const o = this.flat(this.a, so);
    const n = this.flat(this.b, sn);
    if (!o || !n) return;
    // cycle guard on the (old, new) pair of resolved objects
    const seen = this.visited.get(o) ?? new Set<object>();
    if (seen.has(n)) return;
    seen.add(n);
    this.visited.set(o, seen);

    // A plain schema that became a oneOf/anyOf (or the reverse) compares as a one-variant combinator.
    const combOf = (x: SchemaObject) => (x.oneOf ? 'oneOf' : x.anyOf ? 'anyOf' : undefined);
    const co = combOf(o);
    const cn = combOf(n);
    if (!co && cn && !n.type) return this.variants(dir, cn, { [cn]: [o] }, n, ptr, where);
    if (co && !cn && !o.type) return this.variants(dir, co, o, { [co]: [n] }, ptr, where);

    const ot = o.type as string | undefined;
    const nt = n.type as string | undefined;
    if (ot !== nt) {
      if (ot && nt) {
        const effect: Effect = ot === 'integer' && nt === 'number' ? 'widen' : ot === 'number' && nt === 'integer' ? 'narrow' : 'incompatible';
        this.schemaChange(dir, effect, 'schema.type', `${ptr}/type`, where, `type changed from ${ot} to ${nt}`);
        if (effect === 'incompatible') return;
      } else if (nt) this.schemaChange(dir, 'narrow', 'schema.type', `${ptr}/type`, where, `type restricted to ${nt}`);
      else this.schemaChange(dir, 'widen', 'schema.type', `${ptr}/type`, where, `type ${ot} no longer declared (any type)`);
    }
    if (!!o.nullable !== !!n.nullable) {
      this.schemaChange(
        dir,
        n.nullable ? 'widen' : 'narrow',
        'schema.nullable',
        `${ptr}/nullable`,
        where,
        n.nullable ? 'may now be null' : 'may no longer be null',
      );
    }
    this.enums(dir, o, n, ptr, where);
    if (o.format !== n.format) {
      const effect: Effect = !o.format ? 'narrow' : !n.format ? 'widen' : 'incompatible';
      this.schemaChange(dir, effect, 'schema.format', `${ptr}/format`, where, `format changed from ${o.format ?? '(none)'} to ${n.format ?? '(none)'}`);
    }
    this.bounds(dir, o, n, ptr, where);
    this.objects(dir, o, n, ptr, where);
    if (o.items || n.items) {
      if (o.items && n.items) this.schema(dir, o.items, n.items, `${ptr}/items`, `${where}[]`);
    }
    for (const comb of ['oneOf', 'anyOf'] as const) this.variants(dir, comb, o, n, ptr, where);
  }

  private enums(dir: Dir, o: SchemaObject, n: SchemaObject, ptr: string, where: string): void {
    if (!o.enum && !n.enum) return;
    if (!o.enum) return this.schemaChange(dir, 'narrow', 'schema.enum', `${ptr}/enum`, where, `restricted to the values ${n.enum!.map(fmt).join(', ')}`);
    if (!n.enum) return this.schemaChange(dir, 'widen', 'schema.enum', `${ptr}/enum`, where, 'no longer restricted to an enumeration');
    const os = new Set(o.enum.map(stable));
    const ns = new Set(n.enum.map(stable));
    const removed = o.enum.filter((v) => !ns.has(stable(v)));
    const added = n.enum.filter((v) => !os.has(stable(v)));
    if (removed.length)
      this.schemaChange(
        dir,
        'narrow',
        'schema.enum.removed',
        `${ptr}/enum`,
        where,
        `enum value${removed.length > 1 ? 's' : ''} ${removed.map(fmt).join(', ')} removed`,
      );
    if (added.length)
      this.schemaChange(dir, 'widen', 'schema.enum.added', `${ptr}/enum`, where, `enum value${added.length > 1 ? 's' : ''} ${added.map(fmt).join(', ')} added`);
  }

  private bounds(dir: Dir, o: SchemaObject, n: SchemaObject, ptr: string, where: string): void {
    const lower = ['minimum', 'minLength', 'minItems', 'minProperties'] as const;
    const upper = ['maximum', 'maxLength', 'maxItems', 'maxProperties'] as const;
    for (const k of [...lower, ...upper]) {
      const ov = o[k];
      const nv = n[k];
      if (ov === nv) continue;
      const isLower = (lower as readonly string[]).includes(k);
      let effect: Effect;
      if (ov === undefined) effect = 'narrow';
      else if (nv === undefined) effect = 'widen';
      else effect = (isLower ? nv > ov : nv < ov) ? 'narrow' : 'widen';
      this.schemaChange(dir, effect, 'schema.constraint', `${ptr}/${k}`, where, `${k} changed from ${ov ?? '(none)'} to ${nv ?? '(none)'}`);
    }
    for (const k of ['exclusiveMinimum', 'exclusiveMaximum', 'uniqueItems'] as const) {
      if (!!o[k] !== !!n[k]) this.schemaChange(dir, n[k] ? 'narrow' : 'widen', 'schema.constraint', `${ptr}/${k}`, where, `${k} ${n[k] ? 'set' : 'unset'}`);
    }
    if (o.pattern !== n.pattern) {
      const effect: Effect = !o.pattern ? 'narrow' : !n.pattern ? 'widen' : 'incompatible';
      this.schemaChange(dir, effect, 'schema.constraint', `${ptr}/pattern`, where, `pattern changed from ${o.pattern ?? '(none)'} to ${n.pattern ?? '(none)'}`);
    }
    if (o.multipleOf !== n.multipleOf) {
      const effect: Effect =
        o.multipleOf === undefined
          ? 'narrow'
          : n.multipleOf === undefined
            ? 'widen'
            : o.multipleOf % n.multipleOf === 0
              ? 'widen'
              : n.multipleOf % o.multipleOf === 0
                ? 'narrow'
                : 'incompatible';
      this.schemaChange(
        dir,
        effect,
        'schema.constraint',
        `${ptr}/multipleOf`,
        where,
        `multipleOf changed from ${o.multipleOf ?? '(none)'} to ${n.multipleOf ?? '(none)'}`,
      );
    }
  }

  private objects(dir: Dir, o: SchemaObject, n: SchemaObject, ptr: string, where: string): void {
    const op = o.properties ?? {};
    const np = n.properties ?? {};
    const oreq = new Set(o.required ?? []);
    const nreq = new Set(n.required ?? []);
    const apOld = o.additionalProperties;
    const apNew = n.additionalProperties;
    const closedNew = apNew === false;
    const field = (p: string) => `${where}.${p}`;
    const removed = Object.keys(op).filter((p) => !(p in np));
    const added = Object.keys(np).filter((p) => !(p in op));

    // Rename heuristic: a removed and an added property with identical schemas.
    const renamed = new Map<string, string>();
    for (const r of removed) {
      const rs = stable(this.flat(this.a, op[r]));
      const match = added.find((x) => ![...renamed.values()].includes(x) && stable(this.flat(this.b, np[x])) === rs);
      if (match) renamed.set(r, match);
    }
    const removedBreaking = (p: string) => (dir === 'response' ? true : oreq.has(p) || closedNew);
    const addedBreaking = (p: string) => (dir === 'request' ? nreq.has(p) : false);
    for (const [from, to] of renamed) {
      this.add(
        'schema.property.renamed',
        removedBreaking(from) || addedBreaking(to),
        `${ptr}/properties/${escapePointer(to)}`,
        `${where}: property "${from}" renamed to "${to}"${nreq.has(to) ? ' (required)' : ''}`,
      );
    }
    for (const p of removed) {
      if (renamed.has(p)) continue;
      const why =
        dir === 'response'
          ? 'callers reading it get nothing'
          : oreq.has(p)
            ? 'it was required, callers send it'
            : closedNew
              ? 'unknown properties are now rejected'
              : 'it is now ignored';
      this.add('schema.property.removed', removedBreaking(p), `${ptr}/properties/${escapePointer(p)}`, `${field(p)}: property removed (${why})`);
    }
    const renamedTo = new Set(renamed.values());
    for (const p of added) {
      if (renamedTo.has(p)) continue;
      const req = nreq.has(p);
      this.add(
        'schema.property.added',
        addedBreaking(p),
        `${ptr}/properties/${escapePointer(p)}`,
        `${field(p)}: ${req ? 'required' : 'optional'} property added`,
      );
    }
    for (const p of Object.keys(op)) {
      if (!(p in np)) continue;
      const was = oreq.has(p);
      const is = nreq.has(p);
      if (was !== is) {
        // request: optional→required narrows; response: required→optional widens.
        const effect: Effect = is ? 'narrow' : 'widen';
        this.schemaChange(dir, effect, 'schema.required', `${ptr}/required`, field(p), is ? 'became required' : 'became optional');
      }
      this.schema(dir, op[p], np[p], `${ptr}/properties/${escapePointer(p)}`, field(p));
    }
    // additionalProperties: undefined/true = any, false = none, schema = typed.
    const kind = (v: unknown) => (v === undefined || v === true ? 'any' : v === false ? 'none' : 'schema');
    const ko = kind(apOld);
    const kn = kind(apNew);
    if (ko === 'schema' && kn === 'schema') {
      this.schema(dir, apOld as SchemaObject, apNew as SchemaObject, `${ptr}/additionalProperties`, `${where}.*`);
    } else if (ko !== kn && (o.type === 'object' || n.type === 'object' || o.properties || n.properties)) {
      const rank = { none: 0, schema: 1, any: 2 } as const;
      const effect: Effect = rank[kn] < rank[ko] ? 'narrow' : 'widen';
      // Extra fields in a response are tolerated by readers: widening there is not breaking.
      const breaking = dir === 'response' ? false : breakingFor(dir, effect);
      this.add(
        'schema.additionalProperties',
        breaking,
        `${ptr}/additionalProperties`,
        `${where}: additional properties ${kn === 'none' ? 'no longer allowed' : kn === 'any' ? 'now allowed' : 'now typed'}`,
      );
    }
  }

  private variants(dir: Dir, comb: 'oneOf' | 'anyOf', o: SchemaObject, n: SchemaObject, ptr: string, where: string): void {
    const ov = o[comb] ?? [];
    const nv = n[comb] ?? [];
    if (!ov.length && !nv.length) return;
    const key = (doc: Doc, s: SchemaObject | ReferenceObject) => stable(this.flat(doc, s));
    const oKeys = ov.map((s) => key(this.a, s));
    const nKeys = nv.map((s) => key(this.b, s));
    const oLeft = ov.map((_, i) => i).filter((i) => !nKeys.includes(oKeys[i]));
    const nLeft = nv.map((_, i) => i).filter((i) => !oKeys.includes(nKeys[i]));
    if (oLeft.length === nLeft.length) {
      oLeft.forEach((oi, j) => this.schema(dir, ov[oi], nv[nLeft[j]], `${ptr}/${comb}/${nLeft[j]}`, `${where} (variant ${nLeft[j] + 1})`));
      return;
    }
    for (const i of oLeft) this.schemaChange(dir, 'narrow', 'schema.variant.removed', `${ptr}/${comb}/${i}`, where, `${comb} variant ${i + 1} removed`);
    for (const i of nLeft) this.schemaChange(dir, 'widen', 'schema.variant.added', `${ptr}/${comb}/${i}`, where, `${comb} variant ${i + 1} added`);
  }
}

interface OpRef {
  path: string;
  method: string;
  op: OperationObject;
  params: ParameterObject[];
}

function normPath(p: string): string {
  return p.replace(/\{[^}]+\}/g, '{}');
}

function collectOps(doc: Doc): Map<string, OpRef> {
  const out = new Map<string, OpRef>();
  for (const [path, rawItem] of Object.entries(doc.paths ?? {})) {
    const item = deref<Record<string, unknown>>(doc, rawItem as never) ?? {};
    const shared = ((item.parameters ?? []) as Array<ParameterObject | ReferenceObject>).map((p) => deref<ParameterObject>(doc, p)!);
    for (const m of METHODS) {
      const op = item[m] as OperationObject | undefined;
      if (!op) continue;
      const own = (op.parameters ?? []).map((p) => deref<ParameterObject>(doc, p)!);
      const params = [...shared.filter((s) => !own.some((o) => o.name === s.name && o.in === s.in)), ...own];
      out.set(`${m.toUpperCase()} ${normPath(path)}`, { path, method: m, op, params });
    }
  }
  return out;
}

function paramKey(p: ParameterObject, path: string): string {
  if (p.in === 'path') {
    const vars = [...path.matchAll(/\{([^}]+)\}/g)].map((x) => x[1]);
    const i = vars.indexOf(p.name);
    return `path:#${i >= 0 ? i : p.name}`;
  }
  return `${p.in}:${p.in === 'header' ? p.name.toLowerCase() : p.name}`;
}

function paramSchema(p: ParameterObject): SchemaObject | ReferenceObject | undefined {
  if (p.schema) return p.schema;
  const media = p.content ? Object.values(p.content)[0] : undefined;
  return media?.schema;
}

const ACCESS_RANK: Record<string, number> = { public: 0, authenticated: 1, restricted: 2 };

function accessOf(doc: Doc, op: OperationObject): Access {
  const ext = op['x-kea-access'] as Access | undefined;
  if (ext) return ext;
  const sec = op.security ?? doc.security;
  return { mode: sec && sec.length === 0 ? 'public' : sec ? 'authenticated' : 'public' };
}

function compareAccess(d: Differ, a: Access, b: Access, ptr: string, label: string): void {
  if (a.mode !== b.mode) {
    const tighter = ACCESS_RANK[b.mode] > ACCESS_RANK[a.mode];
    d.add(tighter ? 'access.tightened' : 'access.relaxed', tighter, ptr, `${label}: access changed from ${a.mode} to ${b.mode}`);
    if (a.mode !== 'restricted' || b.mode !== 'restricted') return;
  }
  if (b.mode !== 'restricted') return;
  for (const [k, noun] of [
    ['roles', 'role'],
    ['groups', 'group'],
  ] as const) {
    const o = new Set(a[k] ?? []);
    const n = new Set(b[k] ?? []);
    const removed = [...o].filter((x) => !n.has(x));
    const added = [...n].filter((x) => !o.has(x));
    if (removed.length) d.add('access.tightened', true, ptr, `${label}: ${noun}${removed.length > 1 ? 's' : ''} ${removed.join(', ')} no longer allowed`);
    if (added.length) d.add('access.relaxed', false, ptr, `${label}: ${noun}${added.length > 1 ? 's' : ''} ${added.join(', ')} now allowed`);
  }
  const os = new Set(a.scopes ?? []);
  const ns = new Set(b.scopes ?? []);
  const sAdded = [...ns].filter((x) => !os.has(x));
  const sRemoved = [...os].filter((x) => !ns.has(x));
  if (sAdded.length) d.add('access.tightened', true, ptr, `${label}: scope${sAdded.length > 1 ? 's' : ''} ${sAdded.join(', ')} now required`);
  if (sRemoved.length) d.add('access.relaxed', false, ptr, `${label}: scope${sRemoved.length > 1 ? 's' : ''} ${sRemoved.join(', ')} no longer required`);
}

/** One `x-kea-rate-limit` entry, as lib/openapi/generate.ts writes it. */
interface RateLimitExt {
  name: string;
  requests: number;
  period: string;
  burst?: number;
  key?: string;
  shared?: boolean;
}

function rateLimitsOf(op: OperationObject): RateLimitExt[] {
  const ext = op['x-kea-rate-limit'] as unknown;
  return Array.isArray(ext) ? (ext as RateLimitExt[]).filter((l) => l && typeof l.name === 'string') : [];
}

const KEY_WORDS: Record<string, string> = { identity: 'per caller', address: 'per client address', api: 'for all callers together' };

/** `100 requests per 1m (+20 burst) per caller`. */
function limitText(l: RateLimitExt): string {
  return `${l.requests} requests per ${l.period}${l.burst ? ` (+${l.burst} burst)` : ''} ${KEY_WORDS[l.key ?? 'identity'] ?? l.key}`;
}

/**
 * Rate limits matched by name: added or a smaller allowance (requests + burst, or requests per
 * second) → `rateLimit.tightened`; removed or a larger allowance → `rateLimit.relaxed`; another
 * key, or a limit moving between the API's shared defaults and the operation's own →
 * `rateLimit.changed`. None is breaking: callers already get a documented 429 with `Retry-After`.
 */
function compareRateLimits(d: Differ, a: RateLimitExt[], b: RateLimitExt[], ptr: string, label: string): void {
  const old = new Map(a.map((l) => [l.name, l]));
  const now = new Map(b.map((l) => [l.name, l]));
  for (const [name, l] of now) {
    const o = old.get(name);
    if (!o) {
      d.add('rateLimit.tightened', false, ptr, `${label}: rate limit ${name} added (${limitText(l)})`);
      continue;
    }
    const cap = (x: RateLimitExt) => x.requests + (x.burst ?? 0);
    const rate = (x: RateLimitExt) => x.requests / (parseDurationMs(x.period) ?? Number.NaN);
    const tighter = cap(l) < cap(o) || rate(l) < rate(o);
    const looser = cap(l) > cap(o) || rate(l) > rate(o);
    if (tighter || looser)
      d.add(tighter ? 'rateLimit.tightened' : 'rateLimit.relaxed', false, ptr, `${label}: rate limit ${name} changed from ${limitText(o)} to ${limitText(l)}`);
    else if ((o.key ?? 'identity') !== (l.key ?? 'identity'))
      d.add(
        'rateLimit.changed',
        false,
        ptr,
        `${label}: rate limit ${name} now counted ${KEY_WORDS[l.key ?? 'identity'] ?? l.key}, was ${KEY_WORDS[o.key ?? 'identity'] ?? o.key}`,
      );
    if (!!o.shared !== !!l.shared)
      d.add(
        'rateLimit.changed',
        false,
        ptr,
        `${label}: rate limit ${name} ${l.shared ? "now shared with the API's other operations that have no limit of their own" : 'now counted for this operation alone'}`,
      );
  }
  for (const [name, o] of old) if (!now.has(name)) d.add('rateLimit.relaxed', false, ptr, `${label}: rate limit ${name} removed (was ${limitText(o)})`);
}

function compareOperation(d: Differ, a: Doc, b: Doc, o: OpRef, n: OpRef): void {
  const base = `/paths/${escapePointer(n.path)}/${n.method}`;
  const label = `${n.method.toUpperCase()} ${n.path}`;
  if (o.op.operationId !== n.op.operationId) {
    d.add(
      'operation.id.changed',
      false,
      `${base}/operationId`,
      `${label}: operationId changed from ${o.op.operationId} to ${n.op.operationId} (HTTP callers unaffected; generated client method names change)`,
    );
  }
  if (!o.op.deprecated && n.op.deprecated) d.add('operation.deprecated', false, `${base}/deprecated`, `${label}: deprecated`);

  // parameters
  const op = new Map(o.params.map((p) => [paramKey(p, o.path), p]));
  const np = new Map(n.params.map((p) => [paramKey(p, n.path), p]));
  for (const [k, p] of np) {
    const pptr = `${base}/parameters/${p.in}/${escapePointer(p.name)}`;
    const old = op.get(k);
    const plabel = `${label}: ${p.in} parameter "${p.name}"`;
    if (!old) {
      d.add('parameter.added', !!p.required, pptr, `${plabel} added (${p.required ? 'required' : 'optional'})`);
      continue;
    }
    if (!old.required && p.required) d.add('parameter.required', true, pptr, `${plabel} became required`);
    if (old.required && !p.required) d.add('parameter.optional', false, pptr, `${plabel} became optional`);
    d.schema('request', paramSchema(old), paramSchema(p), `${pptr}/schema`, plabel);
  }
  for (const [k, p] of op) {
    if (np.has(k)) continue;
    d.add(
      'parameter.removed',
      true,
      `/paths/${escapePointer(o.path)}/${o.method}/parameters/${p.in}/${escapePointer(p.name)}`,
      `${label}: ${p.in} parameter "${p.name}" removed (callers sending it lose its effect)`,
    );
  }

  // request body
  const ob = deref<import('openapi3-ts/oas30').RequestBodyObject>(a, o.op.requestBody);
  const nb = deref<import('openapi3-ts/oas30').RequestBodyObject>(b, n.op.requestBody);
  const bptr = `${base}/requestBody`;
  if (!ob && nb) d.add('requestBody.added', !!nb.required, bptr, `${label}: request body added (${nb.required ? 'required' : 'optional'})`);
  else if (ob && !nb) d.add('requestBody.removed', true, bptr, `${label}: request body removed`);
  else if (ob && nb) {
    if (!ob.required && nb.required) d.add('requestBody.required', true, bptr, `${label}: request body became required`);
    if (ob.required && !nb.required) d.add('requestBody.optional', false, bptr, `${label}: request body became optional`);
    for (const ct of Object.keys(ob.content ?? {})) {
      if (!(ct in (nb.content ?? {})))
        d.add('requestBody.mediaType.removed', true, `${bptr}/content/${escapePointer(ct)}`, `${label}: request media type ${ct} no longer accepted`);
    }
    for (const [ct, media] of Object.entries(nb.content ?? {})) {
      const old = ob.content?.[ct];
      const cptr = `${bptr}/content/${escapePointer(ct)}`;
      if (!old) d.add('requestBody.mediaType.added', false, cptr, `${label}: request media type ${ct} now accepted`);
      else d.schema('request', old.schema, media.schema, `${cptr}/schema`, `${label}: request body`);
    }
  }

  // responses (the gateway's own error responses follow from other changes: not reported)
  const or = o.op.responses ?? {};
  const nr = n.op.responses ?? {};
  const gw = (doc: Doc, r: unknown) => {
    const ref = (r as ReferenceObject | undefined)?.$ref;
    const names = (doc['x-kea'] as { gatewayComponents?: { responses?: string[] } } | undefined)?.gatewayComponents?.responses ?? [];
    return !!ref && names.some((x) => ref === `#/components/responses/${x}`);
  };
  for (const code of Object.keys(or)) {
    if (code in nr || gw(a, or[code])) continue;
    const success = /^2/.test(code);
    d.add(
      'response.removed',
      success,
      `/paths/${escapePointer(o.path)}/${o.method}/responses/${code}`,
      `${label}: response ${code} no longer documented${success ? ' (callers expecting it break)' : ''}`,
    );
  }
  for (const code of Object.keys(nr)) {
    const rptr = `${base}/responses/${code}`;
    const ro = deref<import('openapi3-ts/oas30').ResponseObject>(a, or[code]);
    const rn = deref<import('openapi3-ts/oas30').ResponseObject>(b, nr[code]);
    if (!ro) {
      if (gw(b, nr[code])) continue;
      d.add('response.added', false, rptr, `${label}: response ${code} added`);
      continue;
    }
    if (!rn) continue;
    const success = /^2/.test(code);
    for (const ct of Object.keys(ro.content ?? {})) {
      if (!(ct in (rn.content ?? {})))
        d.add('response.mediaType.removed', success, `${rptr}/content/${escapePointer(ct)}`, `${label}: response ${code} no longer returns ${ct}`);
    }
    for (const [ct, media] of Object.entries(rn.content ?? {})) {
      const old = ro.content?.[ct];
      const cptr = `${rptr}/content/${escapePointer(ct)}`;
      if (!old) d.add('response.mediaType.added', false, cptr, `${label}: response ${code} may now return ${ct}`);
      else d.schema('response', old.schema, media.schema, `${cptr}/schema`, `${label}: response ${code}`);
    }
  }

  compareAccess(d, accessOf(a, o.op), accessOf(b, n.op), `${base}/x-kea-access`, label);
  compareRateLimits(d, rateLimitsOf(o.op), rateLimitsOf(n.op), `${base}/x-kea-rate-limit`, label);
}

function serverOf(doc: Doc): string {
  const meta = doc['x-kea'] as { basePath?: string } | undefined;
  if (meta && typeof meta.basePath === 'string') return meta.basePath || '/';
  return doc.servers?.[0]?.url ?? '';
}

/**
 * Diffs two OpenAPI 3.0 documents. `from`/`to` are the documents' `info.version`s; `breaking`
 * is true when any change is. Never throws on well-formed documents; unknown `$ref`s compare as
 * empty schemas.
 */
export function diffOpenApi(oldDoc: OpenAPIObject, newDoc: OpenAPIObject): ApiDiff {
  const d = new Differ(oldDoc, newDoc);
  const so = serverOf(oldDoc);
  const sn = serverOf(newDoc);
  if (so !== sn) d.add('server.changed', true, '/servers', `base path changed from ${so || '(none)'} to ${sn || '(none)'}: every URL moves`);

  const oldOps = collectOps(oldDoc);
  const newOps = collectOps(newDoc);
  const unmatchedOld = [...oldOps.keys()].filter((k) => !newOps.has(k));
  const unmatchedNew = [...newOps.keys()].filter((k) => !oldOps.has(k));
  const moved = new Map<string, string>();
  for (const ko of unmatchedOld) {
    const id = oldOps.get(ko)!.op.operationId;
    if (!id) continue;
    const kn = unmatchedNew.find((k) => newOps.get(k)!.op.operationId === id && ![...moved.values()].includes(k));
    if (kn) moved.set(ko, kn);
  }
  for (const [k, n] of newOps) {
    const o = oldOps.get(k);
    if (o) compareOperation(d, oldDoc, newDoc, o, n);
  }
  for (const [ko, kn] of moved) {
    const o = oldOps.get(ko)!;
    const n = newOps.get(kn)!;
    d.add(
      'operation.moved',
      true,
      `/paths/${escapePointer(n.path)}/${n.method}`,
      `${o.method.toUpperCase()} ${o.path}: operation ${n.op.operationId} moved to ${n.method.toUpperCase()} ${n.path}`,
    );
    compareOperation(d, oldDoc, newDoc, o, n);
  }
  for (const ko of unmatchedOld) {
    if (moved.has(ko)) continue;
    const o = oldOps.get(ko)!;
    d.add(
      'operation.removed',
      true,
      `/paths/${escapePointer(o.path)}/${o.method}`,
      `${o.method.toUpperCase()} ${o.path}: operation ${o.op.operationId ?? ''} removed`.replace('  ', ' '),
    );
  }
  const movedTo = new Set(moved.values());
  for (const kn of unmatchedNew) {
    if (movedTo.has(kn)) continue;
    const n = newOps.get(kn)!;
    d.add(
      'operation.added',
      false,
      `/paths/${escapePointer(n.path)}/${n.method}`,
      `${n.method.toUpperCase()} ${n.path}: operation ${n.op.operationId ?? ''} added${n.op.summary ? ` (${n.op.summary})` : ''}`.replace('  ', ' '),
    );
  }

  const seen = new Set<string>();
  const changes = d.changes
    .filter((c) => {
      const k = `${c.kind}|${c.path}|${c.message}`;
      if (seen.has(k)) return false;
      seen.add(k);
      return true;
    })
    .sort(
      (x, y) => Number(y.breaking) - Number(x.breaking) || x.path.localeCompare(y.path) || x.kind.localeCompare(y.kind) || x.message.localeCompare(y.message),
    );
  return {
    from: oldDoc.info?.version ?? '',
    to: newDoc.info?.version ?? '',
    breaking: changes.some((c) => c.breaking),
    changes,
  };
}

/**
 * Renders a diff as Markdown ("What changed in v2"): a heading, counts, then the breaking and
 * the non-breaking changes as lists (message, then the pointer in code).
 */
export function renderDiffMarkdown(diff: ApiDiff, title?: string): string {
  const lines: string[] = [];
  const br = diff.changes.filter((c) => c.breaking);
  const nb = diff.changes.filter((c) => !c.breaking);
  lines.push(`## ${title ? `${title}: ` : ''}What changed in v${diff.to.replace(/^v/, '')} (since v${diff.from.replace(/^v/, '')})`, '');
  if (!diff.changes.length) {
    lines.push('No changes to operations, parameters, bodies, responses or access.', '');
    return lines.join('\n');
  }
  lines.push(`**${br.length} breaking**, ${nb.length} non-breaking change${nb.length === 1 ? '' : 's'}.`, '');
  const esc = (s: string) => s.replace(/([\\`*_[\]<>|])/g, '\\$1');
  if (br.length) {
    lines.push('### Breaking changes', '');
    for (const c of br) lines.push(`- ⚠️ ${esc(c.message)} (\`${c.kind}\` at \`${c.path}\`)`);
    lines.push('');
  }
  if (nb.length) {
    lines.push('### Non-breaking changes', '');
    for (const c of nb) lines.push(`- ${esc(c.message)} (\`${c.kind}\` at \`${c.path}\`)`);
    lines.push('');
  }
  return lines.join('\n');
}

/** Plain-text rendering for terminals: one line per change, breaking ones marked `BREAKING`. */
export function renderDiffText(diff: ApiDiff): string {
  const br = diff.changes.filter((c) => c.breaking).length;
  const lines = [`API diff ${diff.from} → ${diff.to}: ${diff.changes.length} change(s), ${br} breaking`];
  for (const c of diff.changes) lines.push(`${c.breaking ? 'BREAKING    ' : 'non-breaking'}  ${c.message}\n              ${c.kind} ${c.path}`);
  return lines.join('\n') + '\n';
}
