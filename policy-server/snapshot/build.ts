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
 * Every `policy.json` is checked first against its JSON Schema and version
 * (lib/policy/schema.ts `checkPolicyService`): a version this server does not read is refused
 * with a message naming both versions. The controller has decided everything a policy.json
 * carries (defaults, the default operation, every schema in the JSON Schema form ajv compiles:
 * lib/policy/operation.ts), so the builder only compiles; it applies no defaults of its own.
 *
 * Each service gets its own pair of Ajv instances (ajv's compiled-schema cache is keyed by
 * object identity and `removeSchema` does not free generated code, so validators must not
 * share an Ajv across configuration versions). A service whose source text is unchanged since
 * the previous snapshot is reused as is, so a rebuild compiles only what changed. A service
 * whose config is malformed or whose schemas do not compile keeps its previous compiled
 * version (if any) and is reported in {@link Snapshot.errors}.
 */
import { Ajv, type ValidateFunction } from 'ajv';
import addFormatsModule from 'ajv-formats';
import type { CachePolicy, JsonSchema } from '../../lib/api/types.js';
import { sha256Hex } from '../../lib/hash.js';
import {
  COMPONENT_API_CONFIG,
  COMPONENT_API_VERSION,
  OPENAPI_KEY,
  POLICY_CONFIG_KEY,
  type PolicyOperation,
  type PolicyParameter,
  type PolicyService,
} from '../../lib/policy/config.js';
import { checkPolicyService } from '../../lib/policy/schema.js';
import { newestPerDigest, versionFields, versionOwnerId } from '../../lib/policy/versions.js';
import { closedDepth } from './schema-bound.js';
import { assertLinearPatterns, linearRegExp } from '../../lib/openapi/patterns.js';
import { compileTemplate, PathRouter, templateParam, templateParams, type PathTemplate } from './path-router.js';

// ajv-formats is CommonJS with a default export; under NodeNext the callable is `.default`.
const addFormats = ((addFormatsModule as unknown as { default?: unknown }).default ?? addFormatsModule) as (ajv: Ajv) => Ajv;

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

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function compileParams(ajv: Ajv, params: readonly PolicyParameter[], pathNames: string[]): ValidateFunction | undefined {
  if (params.length === 0) return undefined;
  const loc = (where: 'path' | 'query' | 'header') => {
    const properties: Record<string, unknown> = {};
    const required: string[] = [];
    for (const p of params) {
      if (p.in !== where) continue;
      const name = where === 'header' ? p.name.toLowerCase() : p.name;
      properties[name] = p.schema ?? {};
      if (p.required) required.push(name);
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
  const parameters = op.parameters;
  const pathParamNames = templateParams(op.path);
  // A pattern RE2 cannot run is a config error naming its JSON pointer (ajv's error names none).
  for (const p of parameters) assertLinearPatterns(p.schema, `${p.in} parameter "${p.name}" schema`);
  assertLinearPatterns(op.requestBody?.schema, 'requestBody.schema');
  for (const [status, schema] of Object.entries(op.responses)) assertLinearPatterns(schema, `responses.${status}.schema`);
  const toCompiled = (p: PolicyParameter): CompiledParam => ({
    name: p.in === 'header' ? p.name.toLowerCase() : p.name,
    in: p.in,
    required: p.required,
    isArray: isObject(p.schema) && p.schema.type === 'array',
  });
  let body: CompiledOperation['body'];
  if (op.requestBody) {
    const mediaType = mediaTypeOf(op.requestBody.contentType);
    const isJson = isJsonMediaType(mediaType);
    const schema = isJson ? op.requestBody.schema : undefined;
    body = {
      mediaType,
      isJson,
      required: op.requestBody.required,
      validate: schema ? compileBody(schema) : undefined,
      closedDepth: schema ? closedDepth(schema) : undefined,
    };
  }
  let responseValidators: Map<string, ValidateFunction & { explain: ValidateFunction }> | undefined;
  if (op.responseValidation !== 'off') {
    responseValidators = new Map();
    for (const [status, schema] of Object.entries(op.responses)) {
      if (schema) responseValidators.set(status.toUpperCase(), compileBody(schema));
    }
  }
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
    cache: op.cache,
    timeoutMs: op.timeoutMs,
    maxBodyBytes: op.maxBodyBytes,
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
  if (def.id !== `${def.namespace}/${def.name}`) throw new Error('policy.json: /id must be "<namespace>/<name>"');
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
  // The controller decided it (lib/policy/operation.ts defaultOperationId); it must exist. A
  // passthrough service enforces nothing: its operations and default operation are not used.
  const defaultId = def.mode === 'passthrough' ? undefined : def.defaultOperationId;
  const defaultOperation = defaultId === undefined ? undefined : operations.get(defaultId);
  if (defaultId !== undefined && !defaultOperation) throw new Error(`policy.json: /defaultOperationId "${defaultId}" is not an operation of this service`);
  const svc: CompiledService = {
    id: def.id,
    def,
    operations,
    defaultOperation,
    openapi,
    sourceDigest: sha256Hex(`${policyText}\n${openapiText ?? ''}`),
    configMap: cm.name,
    sourceConfigMap: cm,
  };
  ref.current = svc;
  return svc;
}

/**
 * Reads one `api-version` ConfigMap: the OpenAPI document under `openapi.json` (a JSON object),
 * the service it belongs to, its version, digest and publication time, by the rules the
 * controller reads them with too (lib/policy/versions.ts `versionOwnerId`, `versionFields`).
 * @throws Error when `openapi.json` is missing or not a JSON object, or nothing says which
 *   service the version belongs to.
 */
export function parseVersionConfigMap(cm: SourceConfigMap): { serviceId: string; entry: VersionEntry } {
  const text = cm.data[OPENAPI_KEY];
  if (typeof text !== 'string') throw new Error(`missing key ${OPENAPI_KEY}`);
  const openapi: unknown = JSON.parse(text);
  if (!isObject(openapi)) throw new Error(`${OPENAPI_KEY}: not a JSON object`);
  const meta = { annotations: cm.annotations, labels: cm.labels, creationTimestamp: cm.creationTimestamp };
  const serviceId = versionOwnerId(meta);
  if (!serviceId) throw new Error('cannot tell which API this version belongs to (annotation kea.dev/api-schema)');
  return { serviceId, entry: { ...versionFields(meta, () => text), openapi } };
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
  const versionsMut = new Map<string, Array<{ name: string; digest: string; publishedAt: string; entry: VersionEntry }>>();
  const good: SourceConfigMap[] = [];
  const sorted = [...source].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const cm of sorted) {
    const component = cm.labels['kea.dev/component'];
    if (component === COMPONENT_API_VERSION) {
      try {
        const { serviceId, entry } = parseVersionConfigMap(cm);
        const list = versionsMut.get(serviceId) ?? [];
        list.push({ name: cm.name, digest: entry.digest, publishedAt: entry.publishedAt, entry });
        versionsMut.set(serviceId, list);
        good.push(cm);
      } catch (err) {
        errors.push({ configMap: cm.name, message: (err as Error).message, keptPrevious: false });
      }
      continue;
    }
    if (component !== COMPONENT_API_CONFIG && component !== undefined) continue;
    const prev = prevByConfigMap.get(cm.name);
    const digest = sha256Hex(`${cm.data[POLICY_CONFIG_KEY] ?? ''}\n${cm.data[OPENAPI_KEY] ?? ''}`);
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
  // Newest first, one per digest, ordered as the controller orders its history.
  for (const [id, list] of versionsMut)
    versions.set(
      id,
      newestPerDigest(list).map((v) => v.entry),
    );
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
