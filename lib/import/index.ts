/**
 * `kea import`: an ApiSchema from the OpenAPI document a service already serves (FastAPI's
 * `/openapi.json`), and the function the controller's refresh mode calls.
 *
 * Takes in: an OpenAPI 3.0.x or 3.1.x document (parsed JSON/YAML). 3.1 documents are
 * down-converted to 3.0 with `@apiture/openapi-down-convert` (const → enum, type arrays →
 * nullable, examples → example, exclusive bounds, `$ref` siblings → `allOf`), followed by
 * KEA's own pass for what the converter leaves: the pydantic idiom `anyOf: [X, {type: 'null'}]` →
 * X + `nullable: true`, and numeric `exclusiveMinimum/Maximum` → boolean form.
 * Gives out: an `ApiSchema` (kea.dev/v1alpha1) with one operation per routable
 * (method, path), referenced `components.schemas`, and `unroutable`: one line per thing that
 * is not routed or not enforced (skipped operations, non-JSON bodies, cookie parameters,
 * callbacks, webhooks, TRACE, invalid paths), never dropped silently.
 * KEA extensions on an operation: `x-kea-access` (Access), `x-kea-cache` (CachePolicy),
 * `x-kea-timeout` (Duration).
 */
import { readFile } from 'node:fs/promises';
import downConvert from '@apiture/openapi-down-convert';
import YAML from 'yaml';
import { commentSafe, toKubeYaml } from '../yaml.js';
import {
  derivedApiSchema,
  type Access,
  type ApiSchema,
  type CachePolicy,
  type HttpMethod,
  type JsonSchema,
  type Operation,
  type Parameter,
  type ResponseSpec,
  type SchemaSource,
  type Target,
} from '../api/types.js';
import { tupleItems } from '../scan/schema.js';

const { Converter } = downConvert as unknown as { Converter: new (doc: object, opts?: object) => { convert(): object } };

export interface ImportOptions {
  /** metadata.name (default: info.title as a DNS label). */
  name?: string;
  namespace?: string;
  /** spec.basePath (default `/<name>`). */
  basePath?: string;
  /** spec.target (default `{ mlService: { name } }`). */
  target?: Target;
  /** spec.source (e.g. `{ openapi: { path: '/openapi.json', refresh: true } }`). */
  source?: SchemaSource;
  /** Overrides of info.title / info.version. */
  title?: string;
  version?: string;
}

export interface ImportResult {
  schema: ApiSchema;
  /** `<METHOD> <path>: <reason>` for everything not routed or not enforced. */
  unroutable: string[];
}

type Doc = Record<string, unknown>;
const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'] as const;
const ROUTABLE = new Set(['GET', 'PUT', 'POST', 'DELETE', 'OPTIONS', 'HEAD', 'PATCH']);
const PATH_RE = /^(\/([A-Za-z0-9._~:@-]+|[{][A-Za-z_][A-Za-z0-9_]*[}]))+$/;
const OPID_RE = /^[A-Za-z_][A-Za-z0-9_.-]*$/;
const STATUS_RE = /^([1-5]([0-9][0-9]|XX)|default)$/;
const COMPONENT_RE = /^[A-Za-z0-9._-]+$/;

/** A DNS-1123 label from any name. */
function dnsLabel(s: string): string {
  const out = s
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 63)
    .replace(/-+$/, '');
  return out || 'api';
}

const isJsonMedia = (m: string) => /^application\/(json|[A-Za-z0-9.+_-]+\+json)(;.*)?$/i.test(m) || m === '*/*';

/**
 * Converts an OpenAPI 3.1 document to 3.0.3 (3.0 documents are returned as a deep copy).
 * @throws Error for Swagger 2.0 or a document without an `openapi` version.
 */
export function toOpenApi30(doc: unknown, dropped?: string[]): Doc {
  if (!isObj(doc)) throw new Error('not an OpenAPI document: expected a JSON/YAML object');
  if (typeof doc.swagger === 'string') throw new Error(`Swagger ${doc.swagger} is not supported; convert it to OpenAPI 3 first`);
  const v = typeof doc.openapi === 'string' ? doc.openapi : '';
  let out: Doc;
  // JSON round trip: the converter clones with v8.serialize, which yields objects of another realm under vm contexts.
  if (/^3\.1\./.test(v)) {
    if (dropped) reportJsonSchema2020(doc, dropped);
    out = JSON.parse(JSON.stringify(new Converter(doc, { allOfTransform: true }).convert())) as Doc;
  } else if (/^3\.0\./.test(v)) out = structuredClone(doc);
  else throw new Error(`unsupported OpenAPI version ${JSON.stringify(doc.openapi)} (expected 3.0.x or 3.1.x)`);
  fixNullUnions(out);
  return out;
}

/** JSON Schema 2020-12 keywords with no OpenAPI 3.0 equivalent (prefixItems is approximated instead). */
const NO_30_EQUIVALENT = [
  'patternProperties',
  'propertyNames',
  'unevaluatedProperties',
  'unevaluatedItems',
  'dependentRequired',
  'dependentSchemas',
  'if',
  'then',
  'else',
  'contains',
  'minContains',
  'maxContains',
  '$dynamicRef',
  '$anchor',
];

/** Walks every schema of a 3.1 document and reports keywords that the conversion must drop or approximate. */
function reportJsonSchema2020(doc: Doc, out: string[]): void {
  const seen = new Set<string>();
  const visit = (s: unknown, ptr: string): void => {
    if (!isObj(s)) return;
    for (const k of NO_30_EQUIVALENT)
      if (k in s && !seen.has(`${ptr}/${k}`)) {
        seen.add(`${ptr}/${k}`);
        out.push(`schema ${ptr}: keyword ${k} has no OpenAPI 3.0 equivalent; dropped (not validated)`);
      }
    if (Array.isArray(s.prefixItems))
      out.push(`schema ${ptr}: prefixItems (tuple) has no OpenAPI 3.0 equivalent; each item is validated against any of the member schemas`);
    if (isObj(s.properties)) for (const [k, v] of Object.entries(s.properties)) visit(v, `${ptr}/properties/${k}`);
    for (const k of ['items', 'additionalProperties', 'not']) visit(s[k], `${ptr}/${k}`);
    for (const k of ['allOf', 'anyOf', 'oneOf', 'prefixItems']) if (Array.isArray(s[k])) (s[k] as unknown[]).forEach((x, i) => visit(x, `${ptr}/${k}/${i}`));
  };
  const comps = isObj(doc.components) && isObj(doc.components.schemas) ? doc.components.schemas : {};
  for (const [k, v] of Object.entries(comps)) visit(v, `#/components/schemas/${k}`);
  const paths = isObj(doc.paths) ? doc.paths : {};
  for (const [p, item] of Object.entries(paths)) {
    if (!isObj(item)) continue;
    for (const m of METHODS) {
      const op = item[m];
      if (!isObj(op)) continue;
      const where = `${m.toUpperCase()} ${p}`;
      for (const [i, prm] of (Array.isArray(op.parameters) ? op.parameters : []).entries()) if (isObj(prm)) visit(prm.schema, `${where} parameters/${i}`);
      const rb = isObj(op.requestBody) && isObj(op.requestBody.content) ? op.requestBody.content : {};
      for (const [mt, c] of Object.entries(rb)) if (isObj(c)) visit(c.schema, `${where} requestBody ${mt}`);
      const rs = isObj(op.responses) ? op.responses : {};
      for (const [code, r] of Object.entries(rs)) {
        const content = isObj(r) && isObj(r.content) ? r.content : {};
        for (const [mt, c] of Object.entries(content)) if (isObj(c)) visit(c.schema, `${where} response ${code} ${mt}`);
      }
    }
  }
}

/**
 * What the converter leaves in 3.1 form: `anyOf/oneOf: [X, {type: 'null'}]` → X with
 * `nullable: true` (a `$ref` X becomes `allOf: [X]`), and numeric `exclusiveMinimum/Maximum`
 * → `minimum/maximum` + boolean. Mutates.
 */
function fixNullUnions(node: unknown, isNameMap = false): void {
  if (Array.isArray(node)) {
    node.forEach((n) => fixNullUnions(n));
    return;
  }
  if (!isObj(node)) return;
  // Keys of `properties` are names, not keywords: transform only their values.
  for (const [k, v] of Object.entries(node)) fixNullUnions(v, !isNameMap && k === 'properties');
  if (isNameMap) return;
  for (const k of NO_30_EQUIVALENT) delete node[k];
  for (const key of ['anyOf', 'oneOf'] as const) {
    const list: unknown = node[key];
    if (!Array.isArray(list)) continue;
    const isNull = (s: unknown) => isObj(s) && (s.type === 'null' || (s.nullable === true && Object.keys(s).length === 1));
    if (!list.some(isNull)) continue;
    const rest: unknown[] = list.filter((s) => !isNull(s));
    delete node[key];
    node.nullable = true;
    if (rest.length === 1 && isObj(rest[0])) {
      const only: Record<string, unknown> = rest[0];
      if ('$ref' in only) node.allOf = [only];
      else for (const [k, v] of Object.entries<unknown>(only)) if (!(k in node)) node[k] = v;
    } else if (rest.length > 1) node[key] = rest;
  }
  if (node.type === 'null') {
    delete node.type;
    node.nullable = true;
  }
  // Tuples: prefixItems → items (the member schema, or anyOf the distinct members); min/maxItems stay.
  if (Array.isArray(node.prefixItems)) {
    const members = node.prefixItems as JsonSchema[];
    delete node.prefixItems;
    if (node.items === undefined || node.items === false) node.items = tupleItems(members);
    else node.items = tupleItems([...members, node.items as JsonSchema]);
  }
  // JSON Schema 2020-12 numeric exclusive bounds → OpenAPI 3.0 boolean form (the converter keeps them).
  for (const [ex, bound] of [
    ['exclusiveMinimum', 'minimum'],
    ['exclusiveMaximum', 'maximum'],
  ] as const) {
    if (typeof node[ex] === 'number') {
      node[bound] = node[ex];
      node[ex] = true;
    }
  }
}

/** Resolves a local `#/...` JSON pointer. @throws Error for external or dangling refs. */
function resolvePointer(doc: Doc, ref: string): unknown {
  if (!ref.startsWith('#/')) throw new Error(`external $ref ${ref} is not supported`);
  let cur: unknown = doc;
  for (const raw of ref.slice(2).split('/')) {
    const part = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    if (!isObj(cur) || !(part in cur)) throw new Error(`dangling $ref ${ref}`);
    cur = cur[part];
  }
  return cur;
}

/** Follows `$ref`s of non-schema objects (parameters, requestBodies, responses, path items). */
function deref<T>(doc: Doc, v: T, depth = 0): T {
  if (isObj(v) && typeof v.$ref === 'string' && depth < 32) return deref(doc, resolvePointer(doc, v.$ref) as T, depth + 1);
  return v;
}

/**
 * Converts an OpenAPI document into an ApiSchema.
 * @param doc parsed OpenAPI 3.0.x / 3.1.x document.
 * @throws Error for documents that are not OpenAPI 3.
 */
export function importOpenApi(doc: unknown, opts: ImportOptions = {}): ImportResult {
  const unroutable: string[] = [];
  const src = isObj(doc) ? doc : {};
  if (isObj(src.webhooks)) for (const w of Object.keys(src.webhooks)) unroutable.push(`webhook ${w}: webhooks are outbound calls; not routed`);
  const d = toOpenApi30(doc, unroutable);
  const info = isObj(d.info) ? d.info : {};
  let serverPrefix = '';
  if (Array.isArray(d.servers) && isObj(d.servers[0]) && typeof d.servers[0].url === 'string') {
    const url = d.servers[0].url;
    const path = /^[a-z]+:\/\//i.test(url) ? new URL(url).pathname : url;
    serverPrefix = path.replace(/\/+$/, '');
    if (/\{/.test(serverPrefix)) {
      unroutable.push(`servers[0].url ${url}: server variables are not supported; paths imported without the server prefix`);
      serverPrefix = '';
    }
  }

  const operations: Operation[] = [];
  const ids = new Set<string>();
  const paths = isObj(d.paths) ? d.paths : {};
  for (const [rawPath, item0] of Object.entries(paths)) {
    let item: Record<string, unknown>;
    try {
      item = deref(d, item0) as Record<string, unknown>;
    } catch (e) {
      unroutable.push(`${rawPath}: ${(e as Error).message}; path skipped`);
      continue;
    }
    if (!isObj(item)) continue;
    const path = serverPrefix + rawPath;
    const shared = Array.isArray(item.parameters) ? item.parameters : [];
    if (Array.isArray(item.servers)) unroutable.push(`${rawPath}: path-level servers are ignored; requests go to the ApiSchema target`);
    for (const m of METHODS) {
      const raw = item[m];
      if (!isObj(raw)) continue;
      const method = m.toUpperCase();
      const where = `${method} ${path}`;
      if (!ROUTABLE.has(method)) {
        unroutable.push(`${where}: method ${method} cannot be routed by Gateway API HTTPRoutes; operation skipped`);
        continue;
      }
      if (!(path === '/' || PATH_RE.test(path))) {
        unroutable.push(`${where}: path is not a routable template (segments of [A-Za-z0-9._~:@-] or {name}, no trailing slash); operation skipped`);
        continue;
      }
      try {
        const op = convertOperation(d, where, method as HttpMethod, path, raw, shared, unroutable);
        if (!op) continue;
        let id = op.operationId;
        if (ids.has(id)) {
          const alt = `${id.slice(0, 56)}_${method.toLowerCase()}`;
          unroutable.push(`${where}: operationId ${id} is used twice; renamed ${alt}`);
          id = alt;
        }
        if (ids.has(id)) {
          unroutable.push(`${where}: operationId ${id} is not unique; operation skipped`);
          continue;
        }
        ids.add(id);
        op.operationId = id;
        operations.push(op);
      } catch (e) {
        unroutable.push(`${where}: ${(e as Error).message}; operation skipped`);
      }
    }
  }

  // Components: every schema reachable from the operations (names made CRD-safe).
  const allSchemas = isObj(d.components) && isObj(d.components.schemas) ? (d.components.schemas as Record<string, JsonSchema>) : {};
  const rename = new Map<string, string>();
  for (const k of Object.keys(allSchemas)) {
    let safe = COMPONENT_RE.test(k) ? k : k.replace(/[^A-Za-z0-9._-]+/g, '_');
    while ([...rename.values()].includes(safe) || (safe !== k && k in allSchemas && safe in allSchemas)) safe += '_';
    rename.set(k, safe);
  }
  const used = new Map<string, JsonSchema>();
  const visitRefs = (node: unknown): void => {
    if (Array.isArray(node)) return node.forEach(visitRefs);
    if (!isObj(node)) return;
    if (typeof node.$ref === 'string') {
      const m = /^#\/components\/schemas\/(.+)$/.exec(node.$ref);
      if (!m) {
        try {
          const target = resolvePointer(d, node.$ref);
          delete node.$ref;
          Object.assign(node, structuredClone(target));
          visitRefs(node);
        } catch (e) {
          unroutable.push(`${(e as Error).message}: replaced by an empty schema`);
          delete node.$ref;
        }
        return;
      }
      const name = decodeURIComponent(m[1]).replace(/~1/g, '/').replace(/~0/g, '~');
      if (!(name in allSchemas)) {
        unroutable.push(`dangling $ref ${node.$ref}: replaced by an empty schema`);
        delete node.$ref;
        return;
      }
      const safe = rename.get(name)!;
      node.$ref = `#/components/schemas/${safe}`;
      if (!used.has(safe)) {
        const copy = structuredClone(allSchemas[name]);
        used.set(safe, copy);
        visitRefs(copy);
      }
      return;
    }
    for (const v of Object.values(node)) visitRefs(v);
  };
  visitRefs(operations);

  const name = dnsLabel(opts.name ?? String(info.title ?? 'api'));
  const description = typeof info.description === 'string' && info.description ? info.description : undefined;
  const schema = derivedApiSchema({
    name,
    namespace: opts.namespace,
    target: opts.target,
    basePath: opts.basePath,
    title: opts.title ?? String(info.title ?? name),
    version: opts.version ?? String(info.version ?? '0.0.0'),
    description,
    source: opts.source,
    schemas: Object.fromEntries([...used].sort(([a], [b]) => a.localeCompare(b))),
    operations,
  });

  return { schema, unroutable };
}

function pickJson(content: unknown): { media?: string; schema?: JsonSchema; example?: unknown; others: string[] } {
  if (!isObj(content)) return { others: [] };
  const medias = Object.keys(content);
  const media = medias.find((m) => /^application\/json/i.test(m)) ?? medias.find(isJsonMedia);
  const others = medias.filter((m) => m !== media);
  if (!media) return { others };
  const mt = isObj(content[media]) ? content[media] : {};
  return { media, schema: isObj(mt.schema) ? mt.schema : undefined, example: mt.example, others };
}

function convertOperation(
  d: Doc,
  where: string,
  method: HttpMethod,
  path: string,
  raw: Record<string, unknown>,
  shared: unknown[],
  unroutable: string[],
): Operation | undefined {
  // Request body first: a non-JSON body makes the operation unroutable.
  let requestBody: Operation['requestBody'];
  if (raw.requestBody !== undefined) {
    const rb = deref(d, raw.requestBody) as Record<string, unknown>;
    const j = pickJson(rb.content);
    if (!j.media) {
      unroutable.push(
        `${where}: request body is not JSON (${j.others.join(', ') || 'no content'}); KEA validates and forwards JSON bodies only; operation skipped`,
      );
      return undefined;
    }
    if (j.others.length) unroutable.push(`${where}: request body media types ${j.others.join(', ')} are not routed (only ${j.media})`);
    if (method === 'GET' || method === 'HEAD') {
      unroutable.push(`${where}: a ${method} request body cannot be routed; body ignored`);
    } else {
      requestBody = { required: rb.required === true, contentType: j.media === '*/*' ? 'application/json' : j.media.split(';')[0], schema: j.schema ?? {} };
      if (typeof rb.description === 'string') requestBody.description = rb.description;
      if (j.example !== undefined) requestBody.example = j.example;
    }
  }

  // Parameters: path-level then operation-level (operation wins on name+in).
  const params = new Map<string, Parameter>();
  const rawParams = [...shared, ...(Array.isArray(raw.parameters) ? raw.parameters : [])];
  for (const p0 of rawParams) {
    const p = deref(d, p0) as Record<string, unknown>;
    const name = String(p.name ?? '');
    const loc = String(p.in ?? '');
    if (loc === 'cookie') {
      unroutable.push(`${where}: cookie parameter ${name} cannot be declared in an ApiSchema; not validated`);
      continue;
    }
    if (!['path', 'query', 'header'].includes(loc)) {
      unroutable.push(`${where}: parameter ${name} in ${loc} is not supported; ignored`);
      continue;
    }
    if (name.length > 48) {
      unroutable.push(`${where}: parameter name ${name} is longer than 48 characters; ignored`);
      continue;
    }
    const param: Parameter = { name, in: loc as Parameter['in'], required: loc === 'path' ? true : p.required === true };
    if (typeof p.description === 'string') param.description = p.description.slice(0, 4096);
    if (isObj(p.schema)) param.schema = p.schema;
    else if (isObj(p.content)) {
      const j = pickJson(p.content);
      if (j.schema) param.schema = j.schema;
      else unroutable.push(`${where}: parameter ${name} has a non-JSON content type; its schema is not validated`);
    }
    if (p.example !== undefined) param.example = p.example;
    params.set(`${loc}:${name}`, param);
  }
  for (const m of path.matchAll(/\{([A-Za-z_][A-Za-z0-9_]*)\}/g)) {
    if (!params.has(`path:${m[1]}`)) {
      unroutable.push(`${where}: path parameter {${m[1]}} is not declared; added as a string`);
      params.set(`path:${m[1]}`, { name: m[1], in: 'path', required: true, schema: { type: 'string' } });
    }
  }
  for (const [k, p] of params) {
    if (p.in === 'path' && !path.includes(`{${p.name}}`)) {
      unroutable.push(`${where}: path parameter ${p.name} is not in the path template; ignored`);
      params.delete(k);
    }
  }

  // Responses.
  const responses: Record<string, ResponseSpec> = {};
  for (const [code, r0] of Object.entries(isObj(raw.responses) ? raw.responses : {})) {
    if (!STATUS_RE.test(code)) {
      unroutable.push(`${where}: response key ${code} is not a status code; ignored`);
      continue;
    }
    const r = deref(d, r0) as Record<string, unknown>;
    const spec: ResponseSpec = { description: String(r.description ?? '').slice(0, 4096) };
    const j = pickJson(r.content);
    if (j.media) {
      spec.contentType = j.media === '*/*' ? 'application/json' : j.media.split(';')[0];
      if (j.schema) spec.schema = j.schema;
      if (j.example !== undefined) spec.example = j.example;
    } else if (j.others.length) {
      spec.contentType = j.others[0].split(';')[0];
    }
    responses[code] = spec;
  }

  if (isObj(raw.callbacks)) {
    for (const c of Object.keys(raw.callbacks)) unroutable.push(`${where}: callback ${c} is an outbound call; not routed`);
  }
  if (Array.isArray(raw.servers)) unroutable.push(`${where}: operation-level servers are ignored; requests go to the ApiSchema target`);

  let operationId = typeof raw.operationId === 'string' && raw.operationId ? raw.operationId : `${method.toLowerCase()}${path.replace(/[^A-Za-z0-9]+/g, '_')}`;
  operationId = operationId.replace(/[^A-Za-z0-9_.-]/g, '_');
  if (!OPID_RE.test(operationId)) operationId = `op_${operationId}`;
  operationId = operationId.slice(0, 64);

  const op: Operation = { operationId, method, path };
  if (typeof raw.summary === 'string') op.summary = raw.summary.slice(0, 512);
  if (typeof raw.description === 'string') op.description = raw.description.slice(0, 16384);
  if (Array.isArray(raw.tags)) op.tags = raw.tags.filter((t): t is string => typeof t === 'string').slice(0, 16);
  if (raw.deprecated === true) op.deprecated = true;
  if (params.size) op.parameters = [...params.values()];
  if (requestBody) op.requestBody = requestBody;
  if (Object.keys(responses).length) op.responses = responses;
  if (isObj(raw['x-kea-access'])) op.access = raw['x-kea-access'] as unknown as Access;
  if (isObj(raw['x-kea-cache'])) op.cache = raw['x-kea-cache'] as unknown as CachePolicy;
  if (typeof raw['x-kea-timeout'] === 'string') op.timeout = raw['x-kea-timeout'];
  return op;
}

/**
 * Reads an OpenAPI document from an http(s) URL or a JSON/YAML file.
 * @param timeoutMs fetch timeout in ms (default 10000).
 * @throws Error on HTTP errors, timeouts, unreadable files or unparsable content.
 */
export async function loadOpenApi(location: string, timeoutMs = 10000): Promise<unknown> {
  let text: string;
  if (/^https?:\/\//i.test(location)) {
    const res = await fetch(location, { signal: AbortSignal.timeout(timeoutMs), headers: { accept: 'application/json, application/yaml;q=0.9' } });
    if (!res.ok) throw new Error(`GET ${location}: HTTP ${res.status}`);
    text = await res.text();
  } else {
    text = await readFile(location, 'utf8');
  }
  try {
    return YAML.parse(text);
  } catch (e) {
    throw new Error(`${location}: not JSON or YAML: ${(e as Error).message}`);
  }
}

/**
 * The ApiSchema as YAML (lib/yaml.ts: safe for go-yaml, so kubectl reads exactly this one
 * object), headed by a comment listing everything not routed. Text from the document goes into
 * the comment escaped, one line per item.
 */
export function importResultToYaml(result: ImportResult, from: string): string {
  const head = [`Generated by \`kea import\` from ${commentSafe(from)}.`];
  if (result.unroutable.length) {
    head.push(`${result.unroutable.length} item(s) not routed or not enforced:`);
    for (const u of result.unroutable) head.push(`  ${commentSafe(u)}`);
  }
  return toKubeYaml(result.schema, head);
}
