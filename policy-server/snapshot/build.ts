/**
 * Snapshot builder.
 *
 * Takes in: the configuration source, a list of {@link SourceConfigMap} (the ConfigMaps of
 * `lib/policy/config.ts`: `kea.dev/component=api-config` with `policy.json` + `openapi.json`,
 * and `kea.dev/component=api-version` with one published OpenAPI document each).
 * Gives out: an immutable {@link Snapshot}: services by id, operations indexed by
 * `x-kea-operation` key (`<ns>/<name>/<operationId>`) and by method + path template, and
 * every ajv validator compiled (parameters, JSON request body, responses).
 *
 * Each service gets its own pair of Ajv instances (ajv's compiled-schema cache is keyed by
 * object identity and `removeSchema` does not free generated code, so validators must not
 * share an Ajv across configuration versions). A service whose source text is unchanged since
 * the previous snapshot is reused as is, so a rebuild compiles only what changed. A service
 * whose config is malformed or whose schemas do not compile keeps its previous compiled
 * version (if any) and is reported in {@link Snapshot.errors}.
 */
import { createHash } from 'node:crypto';
import { Ajv, type ValidateFunction } from 'ajv';
import addFormatsModule from 'ajv-formats';
import type { CachePolicy, JsonSchema, Parameter } from '../../lib/api/types.js';
import {
  COMPONENT_API_CONFIG,
  COMPONENT_API_VERSION,
  OPENAPI_KEY,
  POLICY_CONFIG_KEY,
  type PolicyOperation,
  type PolicyService,
} from '../../lib/policy/config.js';
import { closedDepth } from './schema-bound.js';
import { assertLinearPatterns, linearRegExp } from '../../lib/openapi/patterns.js';
import { compileTemplate, PathRouter, templateParam, templateParams, type PathTemplate } from './path-router.js';

// ajv-formats is CommonJS with a default export; under NodeNext the callable is `.default`.
const addFormats = ((addFormatsModule as unknown as { default?: unknown }).default ?? addFormatsModule) as (
  ajv: Ajv,
) => Ajv;

/** A ConfigMap as the snapshot needs it (also the on-disk persisted form). */
export interface SourceConfigMap {
  name: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  /** RFC 3339. */
  creationTimestamp?: string;
  data: Record<string, string>;
}

/** A parameter as checked at request time. */
export interface CompiledParam {
  name: string;
  in: 'path' | 'query' | 'header';
  required: boolean;
  /** Schema type is `array`: every occurrence of a query parameter is collected. */
  isArray: boolean;
}

/** An operation ready for the data path. Immutable. */
export interface CompiledOperation {
  /** `<ns>/<name>/<operationId>` (the `x-kea-operation` header value). */
  readonly key: string;
  readonly service: CompiledService;
  readonly def: PolicyOperation;
  /** Upper-case HTTP method. */
  readonly method: string;
  /** Names of the public path template's parameters, in order. */
  readonly pathParamNames: readonly string[];
  /** The public path template split at `/` (leading `/` dropped); `null` marks a `{param}` segment. */
  readonly pathSegments: readonly (string | null)[];
  /** Upstream path template (without basePath). */
  readonly upstream: PathTemplate;
  readonly queryParams: readonly CompiledParam[];
  readonly headerParams: readonly CompiledParam[];
  /**
   * Lower-case names of the declared header parameters, sorted and unique: their values are
   * part of the response cache key (`datapath/cache.ts` `keyHeaders`). Empty when none.
   */
  readonly cacheKeyHeaders: readonly string[];
  /** Validates `{ path: {...}, query: {...}, header: {...} }` (strings coerced to the declared types). */
  readonly validateParams?: ValidateFunction;
  readonly body?: {
    /** Lower-case media type without parameters, e.g. `application/json`. */
    readonly mediaType: string;
    readonly isJson: boolean;
    readonly required: boolean;
    /** Stops at the first error; `explain` (all errors) says why, for bodies up to 64 KiB. */
    readonly validate?: ValidateFunction & { readonly explain?: ValidateFunction };
    /**
     * Nesting bound of every body the schema accepts, when it also admits no prototype-pollution
     * key ({@link closedDepth}); undefined for open schemas. The data path then skips its own
     * depth/key walk for bodies that pass the schema.
     */
    readonly closedDepth?: number;
  };
  /** Response body validators by status code, `1XX`..`5XX` range or `default` (OpenAPI §4.7.16). */
  readonly responseValidators?: ReadonlyMap<string, ValidateFunction & { readonly explain?: ValidateFunction }>;
  readonly cache?: CachePolicy;
  /** Upstream timeout, ms. */
  readonly timeoutMs: number;
  /** Request body limit, bytes. */
  readonly maxBodyBytes: number;
}

/** One published API version (from a `kea.dev/component=api-version` ConfigMap). */
export interface VersionEntry {
  version: string;
  /** Hex sha256 of the OpenAPI document. */
  digest: string;
  /** RFC 3339. */
  publishedAt: string;
  openapi: Record<string, unknown>;
}

/** A service ready for the data path. Immutable. */
export interface CompiledService {
  readonly id: string;
  readonly def: PolicyService;
  readonly operations: ReadonlyMap<string, CompiledOperation>;
  readonly defaultOperation?: CompiledOperation;
  /** The current published OpenAPI document (parsed `openapi.json`), if any. */
  readonly openapi?: Record<string, unknown>;
  /** sha256 of the ConfigMap's policy.json + openapi.json text (reuse key across snapshots). */
  readonly sourceDigest: string;
  /** Name of the ConfigMap this came from. */
  readonly configMap: string;
  /** The ConfigMap this was compiled from (what gets persisted as last good). */
  readonly sourceConfigMap: SourceConfigMap;
}

/** A configuration error found while building, per ConfigMap. */
export interface SnapshotError {
  configMap: string;
  serviceId?: string;
  message: string;
  /** True if the previous compiled version of the service is still served. */
  keptPrevious: boolean;
}

/** The immutable configuration the data path reads. Swapped atomically, never mutated. */
export interface Snapshot {
  /** Monotonic build number within the process. */
  readonly generation: number;
  /** ms since epoch. */
  readonly builtAt: number;
  readonly services: ReadonlyMap<string, CompiledService>;
  /** By `x-kea-operation` key. */
  readonly operations: ReadonlyMap<string, CompiledOperation>;
  /** Method + public path template matcher. */
  readonly router: PathRouter<CompiledOperation>;
  /** Published versions per service id, newest first. */
  readonly versions: ReadonlyMap<string, readonly VersionEntry[]>;
  readonly errors: readonly SnapshotError[];
  /**
   * The last good ConfigMaps: for each served service the one it was compiled from (a broken
   * update is replaced by the previous good one), plus the version ConfigMaps. This is what
   * gets persisted to disk.
   */
  readonly source: readonly SourceConfigMap[];
}

let generationCounter = 0;

const JSON_TYPE = /^application\/(?:json|[\w.+-]*\+json)$/;

/** Lower-case media type without parameters. */
export function mediaTypeOf(contentType: string): string {
  const i = contentType.indexOf(';');
  return (i < 0 ? contentType : contentType.slice(0, i)).trim().toLowerCase();
}

/** True for `application/json` and `application/*+json`. */
export function isJsonMediaType(mt: string): boolean {
  return JSON_TYPE.test(mt);
}

/**
 * Converts OpenAPI 3.0 Schema Object idioms that draft-07 ajv rejects (without mutating the
 * input): boolean `exclusiveMinimum`/`exclusiveMaximum` (draft-04 style) become numeric
 * bounds; `nullable` without `type` is dropped (it has no effect there).
 */
export function normalizeSchema(schema: unknown): unknown {
  if (Array.isArray(schema)) return schema.map(normalizeSchema);
  if (schema === null || typeof schema !== 'object') return schema;
  const src = schema as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(src)) {
    if (k === 'example' || k === 'xml' || k === 'externalDocs') {
      out[k] = src[k]; // annotations: keep verbatim, never walk
      continue;
    }
    out[k] = normalizeSchema(src[k]);
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

function newAjv(coerce: boolean, allErrors = true): Ajv {
  const ajv = new Ajv({
    allErrors,
    strict: false,
    logger: false,
    coerceTypes: coerce ? 'array' : false,
    useDefaults: false,
    validateSchema: true,
    // Keep compiled code small; we never need `$data` or async schemas on the hot path.
    // Tenant `pattern`s run on RE2 (linear time), never on V8's backtracking engine (ADR 0008).
    code: { optimize: true, regExp: linearRegExp },
  });
  addFormats(ajv);
  return ajv;
}

const sha256 = (s: string): string => createHash('sha256').update(s).digest('hex');

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** Structural check of a parsed `policy.json`; throws with a precise message. */
function checkPolicyService(p: unknown): asserts p is PolicyService {
  if (!isObject(p)) throw new Error('policy.json: not a JSON object');
  for (const k of ['id', 'namespace', 'name', 'configVersion'] as const) {
    if (typeof p[k] !== 'string' || !(p[k] as string)) throw new Error(`policy.json: ${k} must be a non-empty string`);
  }
  if (p.id !== `${p.namespace}/${p.name}`) throw new Error(`policy.json: id must be "<namespace>/<name>"`);
  if (!isObject(p.upstream) || typeof p.upstream.host !== 'string') throw new Error('policy.json: upstream.host must be a string');
  if (!Array.isArray(p.operations)) throw new Error('policy.json: operations must be an array');
  if (p.traffic !== undefined && !Array.isArray(p.traffic)) throw new Error('policy.json: traffic must be an array');
  p.operations.forEach((op: unknown, i: number) => {
    if (!isObject(op)) throw new Error(`policy.json: operations[${i}] is not an object`);
    for (const k of ['operationId', 'method', 'path', 'upstreamPath'] as const) {
      if (typeof op[k] !== 'string' || !(op[k] as string)) throw new Error(`policy.json: operations[${i}].${k} must be a non-empty string`);
    }
    if (!isObject(op.access)) throw new Error(`policy.json: operations[${i}].access must be an object`);
    if (!(op.path as string).startsWith('/')) throw new Error(`policy.json: operations[${i}].path must start with "/"`);
    if (op.parameters !== undefined && !Array.isArray(op.parameters)) {
      throw new Error(`policy.json: operations[${i}].parameters must be an array`);
    }
  });
}

function compileParams(ajv: Ajv, params: Parameter[], pathNames: string[]): ValidateFunction | undefined {
  if (params.length === 0) return undefined;
  const loc = (where: 'path' | 'query' | 'header') => {
    const properties: Record<string, unknown> = {};
    const required: string[] = [];
    for (const p of params) {
      if (p.in !== where) continue;
      const name = where === 'header' ? p.name.toLowerCase() : p.name;
      properties[name] = normalizeSchema(p.schema ?? {});
      if (p.required || where === 'path') required.push(name);
    }
    return { type: 'object', properties, required };
  };
  for (const p of params) {
    if (p.in === 'path' && !pathNames.includes(p.name)) {
      throw new Error(`path parameter "${p.name}" is not in the path template`);
    }
  }
  return ajv.compile({
    type: 'object',
    properties: { path: loc('path'), query: loc('query'), header: loc('header') },
  });
}

function compileOperation(
  svc: PolicyService,
  op: PolicyOperation,
  bodyAjv: Ajv,
  paramAjv: Ajv,
  serviceRef: { current?: CompiledService },
  explainAjv: Ajv,
): CompiledOperation {
  // Body validators stop at the first error (bodyAjv); the all-errors twin explains a failure.
  const compileBody = (schema: JsonSchema) => Object.assign(bodyAjv.compile(schema), { explain: explainAjv.compile(schema) });
  const parameters = (op.parameters ?? []).filter((p) => p && (p.in === 'path' || p.in === 'query' || p.in === 'header'));
  const pathParamNames = templateParams(op.path);
  // A pattern RE2 cannot run is a config error naming its JSON pointer (ajv's error names none).
  for (const p of parameters) assertLinearPatterns(p.schema, `${p.in} parameter "${p.name}" schema`);
  assertLinearPatterns(op.requestBody?.schema, 'requestBody.schema');
  for (const [status, schema] of Object.entries(op.responses ?? {})) assertLinearPatterns(schema, `responses.${status}.schema`);
  const toCompiled = (p: Parameter): CompiledParam => ({
    name: p.in === 'header' ? p.name.toLowerCase() : p.name,
    in: p.in,
    required: !!p.required || p.in === 'path',
    isArray: isObject(p.schema) && p.schema.type === 'array',
  });
  let body: CompiledOperation['body'];
  if (op.requestBody) {
    const mediaType = mediaTypeOf(op.requestBody.contentType || 'application/json');
    const isJson = isJsonMediaType(mediaType);
    const schema = isJson && op.requestBody.schema ? normalizeSchema(op.requestBody.schema) : undefined;
    body = {
      mediaType,
      isJson,
      required: !!op.requestBody.required,
      validate: schema ? compileBody(schema as JsonSchema) : undefined,
      closedDepth: schema ? closedDepth(schema) : undefined,
    };
  }
  let responseValidators: Map<string, ValidateFunction & { explain: ValidateFunction }> | undefined;
  if (op.responseValidation && op.responseValidation !== 'off') {
    responseValidators = new Map();
    for (const [status, schema] of Object.entries(op.responses ?? {})) {
      if (schema) responseValidators.set(status.toUpperCase(), compileBody(normalizeSchema(schema) as JsonSchema));
    }
  }
  const timeoutMs = Number.isFinite(op.timeoutMs) && op.timeoutMs > 0 ? op.timeoutMs : 5000;
  const maxBodyBytes = Number.isFinite(op.maxBodyBytes) && op.maxBodyBytes > 0 ? op.maxBodyBytes : 1048576;
  const compiled: CompiledOperation = {
    key: `${svc.id}/${op.operationId}`,
    get service(): CompiledService {
      return serviceRef.current!;
    },
    def: op,
    method: op.method.toUpperCase(),
    pathParamNames,
    pathSegments: op.path
      .slice(1)
      .split('/')
      .map((seg) => (templateParam(seg) === undefined ? seg : null)),
    upstream: compileTemplate(op.upstreamPath),
    queryParams: parameters.filter((p) => p.in === 'query').map(toCompiled),
    headerParams: parameters.filter((p) => p.in === 'header').map(toCompiled),
    cacheKeyHeaders: [...new Set(parameters.filter((p) => p.in === 'header').map((p) => p.name.toLowerCase()))].sort(),
    validateParams: compileParams(paramAjv, parameters, pathParamNames),
    body,
    responseValidators,
    cache: op.cache && op.cache.ttlSeconds > 0 ? op.cache : undefined,
    timeoutMs,
    maxBodyBytes,
  };
  return compiled;
}

/** Compiles one service from its ConfigMap; throws on malformed config or schemas. */
export function compileService(cm: SourceConfigMap): CompiledService {
  const policyText = cm.data[POLICY_CONFIG_KEY];
  if (typeof policyText !== 'string') throw new Error(`missing key ${POLICY_CONFIG_KEY}`);
  let def: unknown;
  try {
    def = JSON.parse(policyText);
  } catch (err) {
    throw new Error(`${POLICY_CONFIG_KEY}: invalid JSON: ${(err as Error).message}`);
  }
  checkPolicyService(def);
  let openapi: Record<string, unknown> | undefined;
  const openapiText = cm.data[OPENAPI_KEY];
  if (typeof openapiText === 'string' && openapiText.trim()) {
    try {
      const parsed: unknown = JSON.parse(openapiText);
      if (isObject(parsed)) openapi = parsed;
    } catch (err) {
      throw new Error(`${OPENAPI_KEY}: invalid JSON: ${(err as Error).message}`);
    }
  }
  const bodyAjv = newAjv(false, false);
  const explainAjv = newAjv(false);
  const paramAjv = newAjv(true);
  const ref: { current?: CompiledService } = {};
  const operations = new Map<string, CompiledOperation>();
  const ops = def.mode === 'passthrough' ? [] : def.operations;
  for (const op of ops) {
    if (operations.has(op.operationId)) throw new Error(`duplicate operationId "${op.operationId}"`);
    try {
      operations.set(op.operationId, compileOperation(def, op, bodyAjv, paramAjv, ref, explainAjv));
    } catch (err) {
      throw new Error(`operation "${op.operationId}": ${(err as Error).message}`);
    }
  }
  const defaultOperation =
    (def.defaultOperationId ? operations.get(def.defaultOperationId) : undefined) ??
    [...operations.values()].find((o) => o.method === 'POST' && /^predict/i.test(o.def.operationId)) ??
    [...operations.values()].find((o) => o.method === 'POST');
  const svc: CompiledService = {
    id: def.id,
    def,
    operations,
    defaultOperation,
    openapi,
    sourceDigest: sha256(`${policyText}\n${openapiText ?? ''}`),
    configMap: cm.name,
    sourceConfigMap: cm,
  };
  ref.current = svc;
  return svc;
}

/**
 * Reads one `api-version` ConfigMap. Accepted shape (lenient, so the controller may evolve):
 * the OpenAPI document under `openapi.json`; the service id (`<ns>/<name>`) from annotation
 * `kea.dev/api-schema` (as on the api-config ConfigMap) or `kea.dev/api`, data `service`, or
 * the owner label `kea.dev/owner: ApiSchema.<ns>.<name>`; version from
 * data `version` / annotation `kea.dev/version` / `info.version`; digest from data `digest` /
 * annotation `kea.dev/digest` / sha256 of the document text; publishedAt from data
 * `publishedAt` / annotation `kea.dev/published-at` / creationTimestamp.
 */
export function parseVersionConfigMap(cm: SourceConfigMap): { serviceId: string; entry: VersionEntry } {
  const text = cm.data[OPENAPI_KEY];
  if (typeof text !== 'string') throw new Error(`missing key ${OPENAPI_KEY}`);
  const openapi: unknown = JSON.parse(text);
  if (!isObject(openapi)) throw new Error(`${OPENAPI_KEY}: not a JSON object`);
  const a = cm.annotations;
  const l = cm.labels;
  const info = isObject(openapi.info) ? openapi.info : {};
  const xKea = isObject(openapi['x-kea']) ? (openapi['x-kea'] as Record<string, unknown>) : {};
  const owner = l['kea.dev/owner'];
  const ownerMatch = owner ? /^ApiSchema\.([a-z0-9-]+)\.(.+)$/.exec(owner) : null;
  const serviceId =
    a['kea.dev/api-schema'] ??
    a['kea.dev/api'] ??
    cm.data.service ??
    (typeof xKea.service === 'string' ? xKea.service : undefined) ??
    (ownerMatch && !/-[0-9a-f]{10}$/.test(owner!) ? `${ownerMatch[1]}/${ownerMatch[2]}` : undefined);
  if (!serviceId) throw new Error('cannot tell which API this version belongs to (annotation kea.dev/api)');
  return {
    serviceId,
    entry: {
      version: cm.data.version ?? a['kea.dev/version'] ?? (typeof info.version === 'string' ? info.version : '0'),
      digest: cm.data.digest ?? a['kea.dev/digest'] ?? sha256(text),
      publishedAt: cm.data.publishedAt ?? a['kea.dev/published-at'] ?? cm.creationTimestamp ?? new Date(0).toISOString(),
      openapi,
    },
  };
}

/**
 * Builds a snapshot from ConfigMaps.
 * @param source - every relevant ConfigMap (others are ignored by label).
 * @param previous - the snapshot being replaced: unchanged services are reused, broken ones
 *   fall back to their previous version.
 * @returns a new immutable snapshot (never throws for bad config; see `errors`).
 */
export function buildSnapshot(source: readonly SourceConfigMap[], previous?: Snapshot): Snapshot {
  const prevByConfigMap = new Map<string, CompiledService>();
  for (const s of previous?.services.values() ?? []) prevByConfigMap.set(s.configMap, s);
  const services = new Map<string, CompiledService>();
  const errors: SnapshotError[] = [];
  const versionsMut = new Map<string, VersionEntry[]>();
  const good: SourceConfigMap[] = [];
  const sorted = [...source].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const cm of sorted) {
    const component = cm.labels['kea.dev/component'];
    if (component === COMPONENT_API_VERSION) {
      try {
        const { serviceId, entry } = parseVersionConfigMap(cm);
        const list = versionsMut.get(serviceId) ?? [];
        if (!list.some((v) => v.digest === entry.digest)) list.push(entry);
        versionsMut.set(serviceId, list);
        good.push(cm);
      } catch (err) {
        errors.push({ configMap: cm.name, message: (err as Error).message, keptPrevious: false });
      }
      continue;
    }
    if (component !== COMPONENT_API_CONFIG && component !== undefined) continue;
    const prev = prevByConfigMap.get(cm.name);
    const digest = sha256(`${cm.data[POLICY_CONFIG_KEY] ?? ''}\n${cm.data[OPENAPI_KEY] ?? ''}`);
    let svc: CompiledService | undefined;
    if (prev && prev.sourceDigest === digest) svc = prev;
    else {
      try {
        svc = compileService(cm);
      } catch (err) {
        errors.push({ configMap: cm.name, serviceId: prev?.id, message: (err as Error).message, keptPrevious: !!prev });
        svc = prev;
      }
    }
    if (!svc) continue;
    if (services.has(svc.id)) {
      errors.push({ configMap: cm.name, serviceId: svc.id, message: `duplicate service id ${svc.id}`, keptPrevious: false });
      continue;
    }
    services.set(svc.id, svc);
    good.push(svc.sourceConfigMap);
  }
  const operations = new Map<string, CompiledOperation>();
  const router = new PathRouter<CompiledOperation>();
  for (const svc of services.values()) {
    for (const op of svc.operations.values()) {
      operations.set(op.key, op);
      if (!router.add(op.method, op.def.path, op)) {
        errors.push({
          configMap: svc.configMap,
          serviceId: svc.id,
          message: `${op.method} ${op.def.path} is already routed to another operation; reachable by x-kea-operation only`,
          keptPrevious: false,
        });
      }
    }
  }
  const versions = new Map<string, readonly VersionEntry[]>();
  for (const [id, list] of versionsMut) {
    list.sort((a, b) => (a.publishedAt < b.publishedAt ? 1 : a.publishedAt > b.publishedAt ? -1 : 0));
    versions.set(id, list);
  }
  return {
    generation: ++generationCounter,
    builtAt: Date.now(),
    services,
    operations,
    router,
    versions,
    errors,
    source: good,
  };
}

/** An empty snapshot (nothing configured yet). */
export function emptySnapshot(): Snapshot {
  return buildSnapshot([]);
}
