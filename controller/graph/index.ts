/**
 * Stage 3 of the controller pipeline: **graph**.
 *
 * Takes in: a {@link ClusterSnapshot} (ApiSchemas, MLServices, Services, ReferenceGrants, in
 * any order) and the {@link ControllerConfig}.
 * Gives out: a {@link Graph}: every ApiSchema and MLService, sorted by namespace/name, with
 *   - the semantic problems the CRD's admission rules cannot see (unresolvable `$ref`s,
 *     `pattern`s the policy server's linear-time engine refuses (lookaround, backreferences), path
 *     parameters whose names do not match the template, resource requests above limits,
 *     reserved or conflicting basePaths, inference signatures that do not compile, ...),
 *   - their references resolved: ApiSchema target (MLService or Service + port), MLService
 *     revision `apiSchema` references, and cross-namespace references checked against
 *     ReferenceGrants (gateway.networking.k8s.io/v1beta1, GEP-709),
 *   - operations imported from the OpenAPI document the target serves (`spec.source.openapi`,
 *     from `snapshot.discovered`; see discovered.ts), and the published version history read
 *     from the version-history ConfigMaps (versions.ts),
 *   - basePath conflicts settled: of ApiSchemas sharing a basePath, with nested basePaths
 *     in different namespaces (one a whole-segment prefix of the other, `/grades` and
 *     `/grades/alice`), routing the same method + path match, or whose policy ConfigMap names
 *     (lib/policy/config.ts apiConfigMapName) clash, the oldest (creationTimestamp, then
 *     namespace/name) wins; the others get `Accepted=False` reason `Conflicted` naming the
 *     winner.
 * Each problem is destined for one status condition (`Accepted` or `ResolvedRefs`) with a
 * reason in Gateway API style and a message naming the exact field. Pure: no I/O, no clock.
 */
import type { KubernetesObject } from '@kubernetes/client-node';
import type { ApiSchema, MLService, Operation } from '../../lib/api/types.js';
import { effectiveOperations } from '../../lib/openapi/inference.js';
import type { ClusterSnapshot, ControllerConfig, DiscoveredDoc } from '../model.js';
import { key, revisionObjectName } from './names.js';
import { RESERVED_BASE_PATHS, reservedBasePath } from '../../lib/policy/reserved-paths.js';
import { operationPathMatch, templateParams } from './paths.js';
import { parseDurationMs } from '../../lib/api/duration.js';
import { type ImportInfo, withDiscovered } from './discovered.js';
import { type PublishedEntry, indexVersionConfigMaps, publishedVersionsOf } from './versions.js';
import { apiConfigMapName } from '../../lib/policy/config.js';
import { unsupportedPatterns } from '../../lib/openapi/patterns.js';
import { openApiPathProblem } from '../discover/index.js';

export * from './names.js';
export * from './paths.js';
export * from './discovered.js';
export * from './versions.js';

/** One reason a resource is not (fully) accepted, destined for a status condition. */
export interface Problem {
  condition: 'Accepted' | 'ResolvedRefs';
  /** Condition reason, e.g. `Invalid`, `Conflicted`, `BackendNotFound`, `RefNotPermitted`. */
  reason: string;
  message: string;
}

/** An MLService with its problems and resolved references. */
export interface MLServiceNode {
  key: string;
  resource: MLService;
  problems: Problem[];
}

/** What an ApiSchema fronts, once resolved. */
export type ResolvedTarget =
  { kind: 'MLService'; namespace: string; name: string; node: MLServiceNode } | { kind: 'Service'; namespace: string; name: string; port: number };

/** An ApiSchema with its effective operations, problems and resolved target. */
export interface ApiSchemaNode {
  key: string;
  /**
   * The ApiSchema as it takes effect: for `spec.source.openapi`, a copy whose spec holds the
   * imported operations and components as well (see {@link withDiscovered}); else the resource.
   */
  resource: ApiSchema;
  /** What importing the served OpenAPI document did (only with `spec.source.openapi`). */
  imported?: ImportInfo;
  /** Published versions (version-history ConfigMaps), newest first. */
  published: PublishedEntry[];
  /** Inline operations plus those derived from spec.inference (lib/openapi/inference.ts). */
  operations: Operation[];
  problems: Problem[];
  /** Set when the target exists (even if a grant is missing: see problems). */
  target?: ResolvedTarget;
}

export interface Graph {
  apiSchemas: ApiSchemaNode[];
  mlServices: MLServiceNode[];
  /** Deployments by `<ns>/<name>`, for readiness. Undefined when the snapshot has none. */
  deployments?: Map<string, KubernetesObject>;
  /** KEA's live HTTPRoutes by `<ns>/<name>` (metadata + status.parents), for the gateway's verdict (render/route-status.ts). Undefined when the snapshot has none. */
  routes?: Map<string, KubernetesObject>;
}

/** True when no problem blocks the `Accepted` condition. */
export function isAccepted(node: { problems: Problem[] }): boolean {
  return !node.problems.some((p) => p.condition === 'Accepted');
}

/** True when every reference resolved (and was permitted). */
export function refsResolved(node: { problems: Problem[] }): boolean {
  return !node.problems.some((p) => p.condition === 'ResolvedRefs');
}

function byKey<T extends { metadata?: { namespace?: string; name?: string } }>(a: T, b: T): number {
  const ka = key(a.metadata?.namespace ?? '', a.metadata?.name ?? '');
  const kb = key(b.metadata?.namespace ?? '', b.metadata?.name ?? '');
  return ka < kb ? -1 : ka > kb ? 1 : 0;
}

const invalid = (message: string): Problem => ({ condition: 'Accepted', reason: 'Invalid', message });

/* ------------------------------------------------------------ quantities */

const BINARY: Record<string, number> = { Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, Pi: 2 ** 50, Ei: 2 ** 60 };
const DECIMAL: Record<string, number> = { n: 1e-9, u: 1e-6, m: 1e-3, '': 1, k: 1e3, M: 1e6, G: 1e9, T: 1e12, P: 1e15, E: 1e18 };

/** Parse a Kubernetes resource.Quantity (`500m`, `1Gi`, `1e3`) into a number; undefined if malformed. */
export function parseQuantity(q: string): number | undefined {
  const m = /^([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?[0-9]+)?$/.exec(q);
  if (!m) return undefined;
  const n = Number(m[1]);
  const s = m[2] ?? '';
  if (s in BINARY) return n * BINARY[s];
  if (s in DECIMAL) return n * DECIMAL[s];
  return n * 10 ** Number(s.slice(1));
}

/* ------------------------------------------------------------ MLService checks */

const DNS1035 = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

function checkMLService(m: MLService): Problem[] {
  const out: Problem[] = [];
  const spec = m.spec;
  const revs = spec?.revisions ?? [];
  if (revs.length === 0) out.push(invalid('spec.revisions: at least one revision is required'));
  const sum = revs.reduce((s, r) => s + (r.weight ?? 0), 0);
  if (revs.length && sum !== 100) {
    out.push(invalid(`spec.revisions: weights must sum to 100 (percent), got ${sum} (${revs.map((r) => `${r.name}=${r.weight}`).join(', ')})`));
  }
  const seen = new Set<string>();
  revs.forEach((r, i) => {
    const at = `spec.revisions[${i}]`;
    if (seen.has(r.name)) out.push(invalid(`${at}.name: revision name ${r.name} is used more than once`));
    seen.add(r.name);
    if (!Number.isInteger(r.weight) || r.weight < 0 || r.weight > 100) out.push(invalid(`${at}.weight: must be an integer percent 0–100, got ${r.weight}`));
    const obj = revisionObjectName(m.metadata.name, r.name);
    if (obj.length > 63 || !DNS1035.test(obj)) {
      out.push(invalid(`${at}.name: the Service name ${obj} derived from <mlservice>-<revision> must be a DNS-1035 label of at most 63 characters`));
    }
    if (spec.framework === 'custom' && !r.image) out.push(invalid(`${at}.image: required when spec.framework is custom`));
    if (spec.framework !== 'custom' && !r.image && !r.modelUri) {
      out.push(invalid(`${at}.modelUri: required for framework ${spec.framework} unless image (with the model built in) is set`));
    }
    if (r.modelUri?.startsWith('pvc://')) {
      const claim = r.modelUri.slice('pvc://'.length).split('/')[0];
      if (!DNS1123_SUBDOMAIN.test(claim))
        out.push(invalid(`${at}.modelUri: ${r.modelUri}: the PersistentVolumeClaim name "${claim}" is not a valid DNS-1123 subdomain`));
    }
    for (const [res, limit] of Object.entries(r.resources?.limits ?? {})) {
      const req = r.resources?.requests?.[res];
      if (req === undefined) continue;
      const rq = parseQuantity(req);
      const lq = parseQuantity(limit);
      if (rq === undefined) out.push(invalid(`${at}.resources.requests.${res}: "${req}" is not a Kubernetes quantity`));
      else if (lq === undefined) out.push(invalid(`${at}.resources.limits.${res}: "${limit}" is not a Kubernetes quantity`));
      else if (rq > lq)
        out.push(
          invalid(`${at}.resources.requests.${res}: ${req} exceeds limits.${res} ${limit}; Kubernetes rejects a Deployment whose request is above its limit`),
        );
    }
  });
  return out;
}

/* ------------------------------------------------------------ ApiSchema checks */

/** Every `$ref` string found in a JSON Schema, with its JSON pointer inside `where`. */
function collectRefs(schema: unknown, where: string, out: Array<{ ref: string; at: string }>): void {
  if (Array.isArray(schema)) {
    schema.forEach((s, i) => collectRefs(s, `${where}/${i}`, out));
    return;
  }
  if (!schema || typeof schema !== 'object') return;
  for (const [k, v] of Object.entries(schema as Record<string, unknown>)) {
    if (k === '$ref' && typeof v === 'string') out.push({ ref: v, at: where });
    else if (k !== 'example' && k !== 'examples' && k !== 'default' && k !== 'enum') collectRefs(v, `${where}/${k}`, out);
  }
}

const COMPONENT_REF = /^#\/components\/schemas\/([A-Za-z0-9._-]+)$/;

function checkRefs(a: ApiSchema, ops: Operation[]): Problem[] {
  const comps = a.spec.components?.schemas ?? {};
  const refs: Array<{ ref: string; at: string }> = [];
  for (const [n, s] of Object.entries(comps)) collectRefs(s, `spec.components.schemas.${n}`, refs);
  ops.forEach((o) => {
    const at = `operation ${o.operationId}`;
    (o.parameters ?? []).forEach((p) => collectRefs(p.schema, `${at} parameter ${p.name}`, refs));
    if (o.requestBody) collectRefs(o.requestBody.schema, `${at} requestBody.schema`, refs);
    for (const [code, r] of Object.entries(o.responses ?? {})) collectRefs(r.schema, `${at} responses.${code}.schema`, refs);
  });
  const out: Problem[] = [];
  for (const { ref, at } of refs) {
    const m = COMPONENT_REF.exec(ref);
    if (!m) out.push(invalid(`${at}: $ref "${ref}" is not supported; only local references of the form #/components/schemas/<Name> are`));
    else if (!(m[1] in comps)) {
      const known = Object.keys(comps).sort();
      out.push(invalid(`${at}: $ref "${ref}" points to a schema missing from spec.components.schemas (defined: ${known.length ? known.join(', ') : 'none'})`));
    }
  }
  return out;
}

/**
 * Every `pattern` / `patternProperties` key the policy server could not compile with its
 * linear-time engine (RE2: no lookaround, no backreferences; lib/openapi/patterns.ts), one
 * `Invalid` problem each, located as `<schema>#<JSON pointer>` like the `$ref` problems.
 */
function checkPatterns(a: ApiSchema, ops: Operation[]): Problem[] {
  const schemas: Array<{ schema: unknown; at: string }> = [];
  for (const [n, s] of Object.entries(a.spec.components?.schemas ?? {})) schemas.push({ schema: s, at: `spec.components.schemas.${n}` });
  ops.forEach((o) => {
    const at = `operation ${o.operationId}`;
    (o.parameters ?? []).forEach((p) => schemas.push({ schema: p.schema, at: `${at} parameter ${p.name}` }));
    if (o.requestBody) schemas.push({ schema: o.requestBody.schema, at: `${at} requestBody.schema` });
    for (const [code, r] of Object.entries(o.responses ?? {})) schemas.push({ schema: r.schema, at: `${at} responses.${code}.schema` });
  });
  return schemas.flatMap(({ schema, at }) => unsupportedPatterns(schema).map((p) => invalid(`${at}#${p.pointer}: ${p.message}`)));
}

const BASEPATH = /^(\/[A-Za-z0-9._~:@-]+)+$/;

function checkApiSchema(a: ApiSchema): { problems: Problem[]; operations: Operation[] } {
  const out: Problem[] = [];
  const spec = a.spec;
  const t = spec.target ?? {};
  if (!!t.mlService === !!t.service) out.push(invalid('spec.target: exactly one of mlService or service must be set'));
  if (t.service && a.metadata.name.split('.').some((label) => label.length > 63)) {
    out.push(
      invalid(
        `metadata.name: ${a.metadata.name} has a DNS label over 63 characters, so it cannot form the internal hostname <name>.<namespace>.api.<domain> of a hand-written Service target`,
      ),
    );
  }
  const bp = spec.basePath ?? '';
  if (!BASEPATH.test(bp)) {
    out.push(invalid(`spec.basePath: "${bp}" must be one or more /segments of letters, digits and . _ ~ : @ -, without a trailing slash`));
  } else {
    const reserved = reservedBasePath(bp);
    if (reserved)
      out.push(
        invalid(`spec.basePath: "${bp}" falls under the gateway path ${reserved}, which KEA reserves for its portal (${RESERVED_BASE_PATHS.join(', ')})`),
      );
  }
  const docPath = spec.source?.openapi?.path;
  const docPathProblem = docPath !== undefined ? openApiPathProblem(docPath) : undefined;
  if (docPathProblem) out.push(invalid(`spec.source.openapi.path: ${JSON.stringify(docPath)} ${docPathProblem}`));
  let ops: Operation[] = [];
  try {
    ops = effectiveOperations(spec, t.mlService?.name ?? a.metadata.name);
  } catch (e) {
    out.push(invalid((e as Error).message));
    ops = spec.operations ?? [];
  }
  const ids = new Map<string, number>();
  const routes = new Map<string, string>();
  ops.forEach((o) => {
    const at = `operation ${o.operationId}`;
    ids.set(o.operationId, (ids.get(o.operationId) ?? 0) + 1);
    const rk = `${o.method} ${o.path}`;
    if (routes.has(rk)) out.push(invalid(`${at}: ${rk} is also the method and path of operation ${routes.get(rk)}`));
    else routes.set(rk, o.operationId);
    const tpl = templateParams(o.path);
    const declared = (o.parameters ?? []).filter((p) => p.in === 'path').map((p) => p.name);
    const undeclared = tpl.filter((n) => !declared.includes(n));
    const unused = declared.filter((n) => !tpl.includes(n));
    if (undeclared.length)
      out.push(
        invalid(
          `${at}: path ${o.path} uses {${undeclared.join('}, {')}} but parameters declares no path parameter of that name (declared: ${declared.length ? declared.join(', ') : 'none'})`,
        ),
      );
    if (unused.length) out.push(invalid(`${at}: path parameter(s) ${unused.join(', ')} do not appear in path ${o.path}`));
    if (o.timeout !== undefined && parseDurationMs(o.timeout) === undefined)
      out.push(invalid(`${at}: timeout "${o.timeout}" is not a Gateway API Duration (GEP-2257) such as 5s or 500ms`));
    const full = `${bp}${o.path}`;
    if (full.length > 1024)
      out.push(invalid(`${at}: public path ${full.slice(0, 40)}… is ${full.length} characters; Gateway API path matches are limited to 1024`));
  });
  for (const [id, n] of ids) if (n > 1) out.push(invalid(`operationId ${id} is used by ${n} operations; operationIds must be unique`));
  if (spec.defaults?.timeout !== undefined && parseDurationMs(spec.defaults.timeout) === undefined) {
    out.push(invalid(`spec.defaults.timeout: "${spec.defaults.timeout}" is not a Gateway API Duration (GEP-2257) such as 5s or 500ms`));
  }
  out.push(...checkRefs(a, ops));
  out.push(...checkPatterns(a, ops));
  return { problems: out, operations: ops };
}

/* ------------------------------------------------------------ grants */

/**
 * True when a ReferenceGrant in `toNamespace` lets HTTPRoutes in `fromNamespace` refer to the
 * core Service `toName` (GEP-709: `from` group/kind/namespace, `to` group/kind and optional name).
 */
export function isGranted(grants: KubernetesObject[], fromNamespace: string, toNamespace: string, toName: string): boolean {
  if (fromNamespace === toNamespace) return true;
  return grants.some((g) => {
    if (g.metadata?.namespace !== toNamespace) return false;
    const spec = (g as { spec?: { from?: Array<Record<string, string>>; to?: Array<Record<string, string>> } }).spec;
    const fromOk = (spec?.from ?? []).some((f) => f.group === 'gateway.networking.k8s.io' && f.kind === 'HTTPRoute' && f.namespace === fromNamespace);
    const toOk = (spec?.to ?? []).some((t) => (t.group ?? '') === '' && t.kind === 'Service' && (!t.name || t.name === toName));
    return fromOk && toOk;
  });
}

/**
 * Why the controller must not fetch the OpenAPI document of `a`'s target
 * (`spec.source.openapi`), or undefined when it may (or `a` has no `spec.source.openapi`).
 * The fetch carries the internal token, so it is refused for a path that is not a plain path
 * on the target (controller/discover `openApiPathProblem`), and for a target in another
 * namespace unless ReferenceGrants allow the ApiSchema's namespace to reach it, exactly as for
 * routing to it (GEP-709; {@link isGranted}: every revision Service of an MLService target,
 * the Service of a Service target); a cross-namespace MLService that does not exist cannot be
 * checked, so it is refused too. Used by the controller to choose what discovery fetches and
 * by the graph to import nothing for a refused ApiSchema. Pure.
 * @param mlServices MLServices by `<namespace>/<name>` (deleting ones may be left out).
 */
export function discoveryRefusal(a: ApiSchema, grants: KubernetesObject[], mlServices: ReadonlyMap<string, MLService>): string | undefined {
  const src = a.spec.source?.openapi;
  if (!src) return undefined;
  const path = src.path ?? '/openapi.json';
  const problem = openApiPathProblem(path);
  if (problem) return `spec.source.openapi.path ${JSON.stringify(path)} ${problem}; the document is not fetched`;
  const ns = a.metadata.namespace ?? '';
  const t = a.spec.target ?? {};
  let tns: string;
  let names: string[];
  if (t.mlService) {
    tns = t.mlService.namespace ?? ns;
    if (tns === ns) return undefined;
    const m = mlServices.get(key(tns, t.mlService.name));
    if (!m)
      return `spec.target.mlService: MLService ${key(tns, t.mlService.name)} in another namespace was not found, so no ReferenceGrant can allow fetching its OpenAPI document; the document is not fetched`;
    names = (m.spec.revisions ?? []).map((r) => revisionObjectName(m.metadata.name, r.name));
  } else if (t.service) {
    tns = t.service.namespace ?? ns;
    if (tns === ns) return undefined;
    names = [t.service.name];
  } else return undefined;
  const denied = names.filter((n) => !isGranted(grants, ns, tns, n));
  if (!denied.length) return undefined;
  return (
    `spec.source.openapi: the OpenAPI document of Service(s) ${denied.map((n) => key(tns, n)).join(', ')} in another namespace is fetched only when a ReferenceGrant in namespace ${tns} ` +
    `allows HTTPRoutes of namespace ${ns} to reach it (see ResolvedRefs); the document is not fetched`
  );
}

/**
 * The ApiSchemas whose served OpenAPI document discovery may fetch: those with
 * `spec.source.openapi` for which {@link discoveryRefusal} finds nothing.
 */
export function discoverableApiSchemas(snapshot: Pick<ClusterSnapshot, 'apiSchemas' | 'mlServices' | 'referenceGrants'>): ApiSchema[] {
  const mls = new Map(snapshot.mlServices.filter((m) => !m.metadata.deletionTimestamp).map((m) => [key(m.metadata.namespace ?? '', m.metadata.name), m]));
  return snapshot.apiSchemas.filter((a) => a.spec.source?.openapi && !discoveryRefusal(a, snapshot.referenceGrants, mls));
}

function notPermitted(from: ApiSchema, toNs: string, names: string[]): Problem {
  const ns = from.metadata.namespace ?? '';
  return {
    condition: 'ResolvedRefs',
    reason: 'RefNotPermitted',
    message:
      `spec.target: ApiSchema ${key(ns, from.metadata.name)} refers to Service(s) ${names.map((n) => key(toNs, n)).join(', ')} in another namespace, ` +
      `and no ReferenceGrant in namespace ${toNs} allows it; create one with from {group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: ${ns}} ` +
      `and to {group: "", kind: Service${names.length === 1 ? `, name: ${names[0]}` : ''}}`,
  };
}

/* ------------------------------------------------------------ per-resource memo */

interface ApiCheck {
  generation: number;
  found: DiscoveredDoc | undefined;
  /** Why discovery is refused ({@link discoveryRefusal}), part of the memo key. */
  refusal: string | undefined;
  /** The effective spec when the discovered document was merged in (else the resource's own). */
  spec?: ApiSchema['spec'];
  info?: ImportInfo;
  problems: Problem[];
  operations: Operation[];
  build: number;
}

/**
 * Results of the per-resource checks above, which are pure functions of one resource's spec
 * and name (and, for an ApiSchema, the discovered document), kept per uid and generation (the
 * API server bumps the generation on every spec change, not on status writes): a
 * steady-state reconcile need not walk every schema again (collectRefs builds a path string per
 * schema node), and neither need the run after 1000 status writes (measured: re-checking them
 * in one synchronous stretch made V8's young generation, and RSS, jump ~20 MiB). Only for
 * snapshots of one cluster, where uids are unique: the controller passes one memo with every
 * snapshot ({@link GraphInput.graphMemo}). Entries not used by the latest build are
 * dropped. Callers copy `problems` before adding to it.
 */
export class GraphMemo {
  private readonly api = new Map<string, ApiCheck>();
  private readonly ml = new Map<string, { generation: number; problems: Problem[]; build: number }>();
  private build = 0;

  /** Starts a build (entries not used by it are dropped by {@link endBuild}). */
  beginBuild(): void {
    this.build++;
  }

  endBuild(): void {
    for (const [k, v] of this.api) if (v.build !== this.build) this.api.delete(k);
    for (const [k, v] of this.ml) if (v.build !== this.build) this.ml.delete(k);
  }

  apiSchema(
    raw: ApiSchema,
    found: DiscoveredDoc | undefined,
    refusal?: string,
  ): { resource: ApiSchema; info?: ImportInfo; problems: Problem[]; operations: Operation[] } {
    const { uid, generation } = raw.metadata;
    const hit = uid !== undefined ? this.api.get(uid) : undefined;
    if (hit && hit.generation === generation && hit.found === found && hit.refusal === refusal) {
      hit.build = this.build;
      return {
        resource: hit.spec ? { ...raw, spec: hit.spec } : raw,
        ...(hit.info ? { info: hit.info } : {}),
        problems: hit.problems,
        operations: hit.operations,
      };
    }
    const out = checkedApiSchema(raw, found, refusal);
    if (uid !== undefined && generation !== undefined) {
      this.api.set(uid, {
        generation,
        found,
        refusal,
        ...(out.resource !== raw ? { spec: out.resource.spec } : {}),
        ...(out.info ? { info: out.info } : {}),
        problems: out.problems,
        operations: out.operations,
        build: this.build,
      });
    }
    return out;
  }

  mlService(m: MLService): Problem[] {
    const { uid, generation } = m.metadata;
    const hit = uid !== undefined ? this.ml.get(uid) : undefined;
    if (hit && hit.generation === generation) {
      hit.build = this.build;
      return hit.problems;
    }
    const problems = checkMLService(m);
    if (uid !== undefined && generation !== undefined) this.ml.set(uid, { generation, problems, build: this.build });
    return problems;
  }
}

function checkedApiSchema(
  raw: ApiSchema,
  found: DiscoveredDoc | undefined,
  refusal?: string,
): { resource: ApiSchema; info?: ImportInfo; problems: Problem[]; operations: Operation[] } {
  const { resource, info } = withDiscovered(raw, found, refusal);
  const { problems, operations } = checkApiSchema(resource);
  return { resource, ...(info ? { info } : {}), problems, operations };
}

/* ------------------------------------------------------------ build */

function createdAt(a: ApiSchema): string {
  // A resource without a timestamp (not yet persisted) sorts after every persisted one.
  return a.metadata.creationTimestamp ?? '9999-12-31T23:59:59Z';
}

/**
 * What {@link buildGraph} reads: a {@link ClusterSnapshot} and, optionally, the graph stage's
 * own cache of per-resource checks, kept by the controller from one snapshot of the same cluster
 * to the next (declared here, not in the shared model: only graph knows its shape).
 */
export interface GraphInput extends ClusterSnapshot {
  /** The controller's {@link GraphMemo}. Optional: absent = every resource checked. */
  graphMemo?: GraphMemo;
}

/**
 * Build the graph: validate, resolve references and grants, settle basePath conflicts.
 * Never throws on bad input: every problem ends up in a {@link Problem}.
 */
export function buildGraph(snapshot: GraphInput, _config: ControllerConfig): Graph {
  const memo = snapshot.graphMemo;
  memo?.beginBuild();
  const live = <T extends { metadata?: object }>(xs: T[]): T[] =>
    xs.filter((x) => !(x.metadata as { deletionTimestamp?: unknown } | undefined)?.deletionTimestamp);
  const deleting = new Set(
    [...snapshot.mlServices, ...snapshot.services]
      .filter((x) => x.metadata?.deletionTimestamp)
      .map((x) => `${x.kind}/${key(x.metadata?.namespace ?? '', x.metadata?.name ?? '')}`),
  );
  const gone = (kind: string, k: string): string => (deleting.has(`${kind}/${k}`) ? ' (it is being deleted)' : '');
  const mlResources = live([...snapshot.mlServices]).sort(byKey);
  const apiResources = live([...snapshot.apiSchemas]).sort(byKey);
  const services = new Map(live([...snapshot.services]).map((s) => [key(s.metadata?.namespace ?? '', s.metadata?.name ?? ''), s]));
  const grants = [...snapshot.referenceGrants].sort(byKey);

  const mlServices: MLServiceNode[] = mlResources.map((m) => ({
    key: key(m.metadata.namespace ?? '', m.metadata.name),
    resource: m,
    problems: [...(memo ? memo.mlService(m) : checkMLService(m))],
  }));
  const mlByKey = new Map(mlServices.map((n) => [n.key, n]));
  const mlResourceByKey = new Map(mlResources.map((m) => [key(m.metadata.namespace ?? '', m.metadata.name), m]));

  const versionIndex = indexVersionConfigMaps(snapshot.publishedVersions);
  const apiSchemas: ApiSchemaNode[] = apiResources.map((raw) => {
    const k = key(raw.metadata.namespace ?? '', raw.metadata.name);
    const refusal = discoveryRefusal(raw, grants, mlResourceByKey);
    const {
      resource: a,
      info,
      problems: own,
      operations,
    } = memo ? memo.apiSchema(raw, snapshot.discovered?.[k], refusal) : checkedApiSchema(raw, snapshot.discovered?.[k], refusal);
    const problems = [...own];
    const published = publishedVersionsOf(versionIndex, raw.metadata.namespace ?? '', raw.metadata.name);
    return { key: k, resource: a, ...(info ? { imported: info } : {}), published, operations, problems };
  });
  const apiByKey = new Map(apiSchemas.map((n) => [n.key, n]));
  memo?.endBuild();

  // ApiSchema targets.
  for (const n of apiSchemas) {
    const a = n.resource;
    const ns = a.metadata.namespace ?? '';
    const t = a.spec.target ?? {};
    if (t.mlService) {
      const tns = t.mlService.namespace ?? ns;
      const target = mlByKey.get(key(tns, t.mlService.name));
      if (!target) {
        n.problems.push({
          condition: 'ResolvedRefs',
          reason: 'BackendNotFound',
          message: `spec.target.mlService: MLService ${key(tns, t.mlService.name)} not found${gone('MLService', key(tns, t.mlService.name))}`,
        });
        continue;
      }
      n.target = { kind: 'MLService', namespace: tns, name: t.mlService.name, node: target };
      if (!isAccepted(target)) {
        const why = target.problems.filter((p) => p.condition === 'Accepted');
        n.problems.push({
          condition: 'ResolvedRefs',
          reason: 'BackendNotAccepted',
          message: `spec.target.mlService: MLService ${target.key} is not accepted (${why.length} problem(s), see its Accepted condition), first: ${why[0].message}`,
        });
        continue;
      }
      const names = target.resource.spec.revisions.map((r) => revisionObjectName(target.resource.metadata.name, r.name));
      const denied = names.filter((s) => !isGranted(grants, ns, tns, s));
      if (denied.length) n.problems.push(notPermitted(a, tns, denied));
    } else if (t.service) {
      const tns = t.service.namespace ?? ns;
      const svc = services.get(key(tns, t.service.name));
      if (!svc) {
        n.problems.push({
          condition: 'ResolvedRefs',
          reason: 'BackendNotFound',
          message: `spec.target.service: Service ${key(tns, t.service.name)} not found${gone('Service', key(tns, t.service.name))}`,
        });
        continue;
      }
      const ports = (svc as { spec?: { ports?: Array<{ port: number; protocol?: string }> } }).spec?.ports ?? [];
      n.target = { kind: 'Service', namespace: tns, name: t.service.name, port: t.service.port };
      if (!ports.some((p) => p.port === t.service!.port && (p.protocol ?? 'TCP') === 'TCP')) {
        n.problems.push({
          condition: 'ResolvedRefs',
          reason: 'BackendNotFound',
          message: `spec.target.service.port: Service ${key(tns, t.service.name)} has no TCP port ${t.service.port} (ports: ${ports.length ? ports.map((p) => p.port).join(', ') : 'none'})`,
        });
        continue;
      }
      if (!isGranted(grants, ns, tns, t.service.name)) n.problems.push(notPermitted(a, tns, [t.service.name]));
    }
  }

  // MLService revision apiSchema references (same namespace, must target this MLService).
  for (const m of mlServices) {
    const ns = m.resource.metadata.namespace ?? '';
    (m.resource.spec.revisions ?? []).forEach((r, i) => {
      if (!r.apiSchema) return;
      const at = `spec.revisions[${i}].apiSchema`;
      const a = apiByKey.get(key(ns, r.apiSchema));
      if (!a) {
        m.problems.push({
          condition: 'ResolvedRefs',
          reason: 'ApiSchemaNotFound',
          message: `${at}: ApiSchema ${key(ns, r.apiSchema)} (revision ${r.name}) not found`,
        });
        return;
      }
      const tm = a.resource.spec.target?.mlService;
      const tns = tm?.namespace ?? ns;
      if (!tm || tm.name !== m.resource.metadata.name || tns !== ns) {
        const what = tm
          ? `MLService ${key(tns, tm.name)}`
          : `Service ${key(a.resource.spec.target?.service?.namespace ?? ns, a.resource.spec.target?.service?.name ?? '?')}`;
        m.problems.push({
          condition: 'ResolvedRefs',
          reason: 'InvalidApiSchemaRef',
          message: `${at}: ApiSchema ${a.key} (revision ${r.name}) targets ${what}, not this MLService`,
        });
      }
    });
  }

  // Conflicts among accepted ApiSchemas: same basePath, or same method + path match. Oldest wins.
  const contenders = apiSchemas.filter(isAccepted).sort((x, y) => {
    const cx = createdAt(x.resource);
    const cy = createdAt(y.resource);
    return cx < cy ? -1 : cx > cy ? 1 : x.key < y.key ? -1 : x.key > y.key ? 1 : 0;
  });
  const basePaths = new Map<string, ApiSchemaNode>();
  // Every proper segment-prefix of a claimed basePath (`/a`, `/a/b` for `/a/b/c`) → its claimants.
  const enclosing = new Map<string, ApiSchemaNode[]>();
  const configMaps = new Map<string, ApiSchemaNode>();
  const matches = new Map<string, { node: ApiSchemaNode; op: string }>();
  for (const n of contenders) {
    const bp = n.resource.spec.basePath;
    const owner = basePaths.get(bp);
    if (owner) {
      n.problems.push({
        condition: 'Accepted',
        reason: 'Conflicted',
        message: `spec.basePath: ${bp} is already used by ApiSchema ${owner.key} (created ${createdAt(owner.resource)}); the oldest ApiSchema keeps a basePath`,
      });
      continue;
    }
    const nested = nestedClaim(bp, n.resource.metadata.namespace ?? '', basePaths, enclosing);
    if (nested) {
      const where = nested.outer
        ? `lies under basePath ${nested.other.resource.spec.basePath} of`
        : `encloses basePath ${nested.other.resource.spec.basePath} of`;
      n.problems.push({
        condition: 'Accepted',
        reason: 'Conflicted',
        message:
          `spec.basePath: ${bp} ${where} ApiSchema ${nested.other.key} (created ${createdAt(nested.other.resource)}); ` +
          `nested basePaths across namespaces overlap (the gateway's longest-prefix match would hand requests of one ApiSchema to the other), so the oldest ApiSchema keeps its path space`,
      });
      continue;
    }
    const cmName = apiConfigMapName(n.resource.metadata.namespace ?? '', n.resource.metadata.name);
    const cmOwner = configMaps.get(cmName);
    if (cmOwner) {
      n.problems.push({
        condition: 'Accepted',
        reason: 'Conflicted',
        message: `metadata.name: the policy ConfigMap name ${cmName} derived from this ApiSchema is already used by ApiSchema ${cmOwner.key} (created ${createdAt(cmOwner.resource)}); rename this ApiSchema`,
      });
      continue;
    }
    const mine = routeKeys(n);
    const clash = mine.find((k) => matches.has(k.key));
    if (clash) {
      const other = matches.get(clash.key)!;
      n.problems.push({
        condition: 'Accepted',
        reason: 'Conflicted',
        message: `operation ${clash.op}: ${clash.key} is already routed for operation ${other.op} of ApiSchema ${other.node.key} (created ${createdAt(other.node.resource)}); the oldest ApiSchema keeps a route`,
      });
      continue;
    }
    basePaths.set(bp, n);
    configMaps.set(cmName, n);
    for (const p of segmentPrefixes(bp)) {
      const list = enclosing.get(p);
      if (list) list.push(n);
      else enclosing.set(p, [n]);
    }
    for (const k of mine) matches.set(k.key, { node: n, op: k.op });
  }

  const deployments = snapshot.deployments
    ? new Map(snapshot.deployments.map((d) => [key(d.metadata?.namespace ?? '', d.metadata?.name ?? ''), d]))
    : undefined;
  const routes = snapshot.routes ? new Map(snapshot.routes.map((r) => [key(r.metadata?.namespace ?? '', r.metadata?.name ?? ''), r])) : undefined;
  return { apiSchemas, mlServices, deployments, ...(routes ? { routes } : {}) };
}

/** The proper segment-prefixes of a basePath, shortest first: `/a/b/c` → `/a`, `/a/b`. */
function segmentPrefixes(bp: string): string[] {
  const out: string[] = [];
  for (let i = bp.indexOf('/', 1); i > 0; i = bp.indexOf('/', i + 1)) out.push(bp.slice(0, i));
  return out;
}

/**
 * The claimed basePath of an ApiSchema in another namespace than `ns` that `bp` nests with
 * (Gateway API PathPrefix semantics: whole segments), if any: `outer` when it is a proper
 * segment-prefix of `bp` (`/grades` claimed, `bp` `/grades/alice`), else it lies under `bp`.
 * Every operation path of an ApiSchema starts with its basePath, so nested basePaths are
 * exactly the case where one ApiSchema's operations fall in the other's path space, and the
 * gateway's precedence (longest match first) hands requests to the inner one. Within one
 * namespace (one tenant) nesting is allowed (`/shop` and `/shop/v2`); identical route matches
 * are still a conflict there (routeKeys). O(segments + claimants under `bp`).
 */
function nestedClaim(
  bp: string,
  ns: string,
  claimed: Map<string, ApiSchemaNode>,
  enclosing: Map<string, ApiSchemaNode[]>,
): { other: ApiSchemaNode; outer: boolean } | undefined {
  const foreign = (o: ApiSchemaNode) => (o.resource.metadata.namespace ?? '') !== ns;
  for (const p of segmentPrefixes(bp)) {
    const other = claimed.get(p);
    if (other && foreign(other)) return { other, outer: true };
  }
  const inner = enclosing.get(bp)?.find(foreign);
  return inner ? { other: inner, outer: false } : undefined;
}

/** The route matches an ApiSchema claims at the gateway: `<METHOD> <Exact|PathPrefix> <value>`. */
function routeKeys(n: ApiSchemaNode): Array<{ key: string; op: string }> {
  const bp = n.resource.spec.basePath;
  if ((n.resource.spec.policy?.mode ?? 'enforce') === 'passthrough') return [{ key: `* PathPrefix ${bp}`, op: '(passthrough)' }];
  return n.operations.map((o) => {
    const m = operationPathMatch(bp, o.path);
    return { key: `${o.method} ${m.type} ${m.value}`, op: o.operationId };
  });
}
