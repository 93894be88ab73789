/**
 * Stage 4 of the controller pipeline: **IR** (intermediate representation, the desired state).
 *
 * Takes in: a {@link Graph} (validated resources with resolved references) and the
 * {@link ControllerConfig}.
 * Gives out: an {@link IR}, the desired state with every default applied, independent of
 * Kubernetes object shapes:
 *   - per MLService: its revisions with image (framework runtime default or spec image),
 *     command/args, port, replicas, resources, probe paths, model location, and weights in
 *     percent; its internal hostname; its readiness (from observed Deployments, if given),
 *     and no weight for a revision not available yet while another is ({@link gateWeights});
 *     the contract check of canary revisions ({@link contractCheck}: condition
 *     `ContractChecked`; a refused canary's weight moves to the stable revision, so the
 *     weights and `traffic` are what is actually routed);
 *   - per ApiSchema: the `Imported` condition and `unroutable` items of a served OpenAPI
 *     document (`spec.source.openapi`; until one is imported: `Programmed=False` reason
 *     `AwaitingOpenApi`, objects retained), its published versions (render adds the current
 *     one), its operations with defaults applied (access `authenticated`, timeout
 *     `5s` → ms, maxBodyBytes 1048576, responseValidation `off`), every schema made
 *     self-contained (components inlined), the route matches per operation, the upstream host
 *     and the backends (policy server in `enforce` mode, model revisions in `passthrough`),
 *     and a {@link PolicyService} (lib/policy/config.ts) whose `configVersion` is the sha256
 *     of the canonical JSON of the policy and traffic;
 *   - the namespaces whose public routes need a ReferenceGrant to reach the policy server;
 *   - the largest request body limit of any operation (`maxBodyBytes`, whole graph).
 * Pure and deterministic: lists keep the graph's sorted order.
 */
import { createHash } from 'node:crypto';
import type { Access, ApiSchema, JsonSchema, MLService, Operation, ResourceRequirements } from '../../lib/api/types.js';
import type { PolicyOperation, PolicyService } from '../../lib/policy/config.js';
import type { KubernetesObject } from '@kubernetes/client-node';
import { type ControllerConfig, PAUSE } from '../model.js';
import type { ApiDiff } from '../../lib/openapi/diff.js';
import { type GeneratedDoc, curlExampleCached, diffCached, generateCached, policyConfigVersion } from './memo.js';
import type { GenerateOptions } from '../../lib/openapi/generate.js';
import {
  type ApiSchemaNode,
  type Graph,
  type ImportInfo,
  type PublishedEntry,
  apiSchemaHost,
  type MLServiceNode,
  type PathMatch,
  type Problem,
  internalRouteName,
  isAccepted,
  key,
  mlServiceHost,
  operationPathMatch,
  parseDurationMs,
  refsResolved,
  revisionObjectName,
} from '../graph/index.js';
import { type ModelLocation, RUNTIMES, modelLocation } from './runtimes.js';
import { selfContained } from './schemas.js';

export const DEFAULT_ACCESS: Access = { mode: 'authenticated' };
export const DEFAULT_TIMEOUT = '5s';
export const DEFAULT_MAX_BODY_BYTES = 1_048_576;
export const DEFAULT_PORT = 8080;
export const DEFAULT_CUSTOM_HEALTH_PATH = '/healthz';

/** A condition as the IR decides it (render adds observedGeneration and lastTransitionTime). */
export interface ConditionIR {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  reason: string;
  message: string;
}

/** One model revision, ready to become a Deployment and a Service. */
export interface RevisionIR {
  name: string;
  /** Deployment and Service name, `<mls>-<revision>`. */
  objectName: string;
  /** Share of traffic in percent. */
  weight: number;
  replicas: number;
  /** Container port (= Service port). */
  port: number;
  image: string;
  command?: string[];
  args: string[];
  env: Array<{ name: string; value: string }>;
  resources?: ResourceRequirements;
  readinessPath: string;
  livenessPath: string;
  model?: ModelLocation;
}

export interface MLServiceIR {
  key: string;
  namespace: string;
  name: string;
  uid?: string;
  generation?: number;
  resource: MLService;
  /** False: nothing is rendered for it, only its status. */
  accepted: boolean;
  /** `<mls>.<ns>.<internalDomain>`. */
  host: string;
  revisions: RevisionIR[];
  traffic: Array<{ revision: string; weight: number }>;
  conditions: ConditionIR[];
  /** Contract check of canary revisions (see {@link contractCheck}); absent when no revision names an apiSchema. */
  contract?: ContractCheckIR;
}

/** Result of checking canary revisions' APIs against the stable revision's API. */
export interface ContractCheckIR {
  /** The revision with the highest weight (ties: the first). */
  stable: string;
  /** Revisions whose traffic was moved to the stable revision because their API change is breaking. */
  refused: string[];
  /** One diff per canary revision with another API than the stable one, in spec order. */
  diffs: Array<{ revision: string; apiSchema: string; diff: ApiDiff }>;
}

/** A backend of an HTTPRoute rule (a core Service port). */
export interface BackendIR {
  namespace: string;
  name: string;
  port: number;
  /** Gateway API weight; percent for model revisions, 1 for a single backend. */
  weight: number;
}

/** One public route rule in enforce mode: a method + path match for one (or more) operations. */
export interface OperationRouteIR {
  method: string;
  match: PathMatch;
  /** Operations sharing this match (several only for templates with the same static prefix). */
  operationIds: string[];
  /** Value of the x-kea-operation header: `<ns>/<name>/<operationId>[,<operationId>...]`. */
  headerValue: string;
}

export interface ApiSchemaIR {
  key: string;
  namespace: string;
  name: string;
  uid?: string;
  generation?: number;
  resource: ApiSchema;
  /** Effective operations (inline + imported + inference-derived), as written. */
  operations: Operation[];
  /** Import of the served OpenAPI document (`spec.source.openapi` only). */
  imported?: ImportInfo;
  /** Items of the imported document that are not routed (status.unroutable). */
  unroutable: string[];
  /** Published versions (version-history ConfigMaps), newest first; render adds the current one. */
  published: PublishedEntry[];
  mode: 'enforce' | 'passthrough';
  basePath: string;
  accepted: boolean;
  resolved: boolean;
  /** True when routes and the policy ConfigMap are rendered. */
  programmed: boolean;
  /** Nothing rendered, but existing objects must be kept (see RenderOutput.retainOwners). */
  retain: boolean;
  /** Enforce-mode rules (one per distinct method + match). */
  routes: OperationRouteIR[];
  /** Passthrough-mode backends of the public route (model revisions or the Service). */
  passthroughBackends: BackendIR[];
  /** Hand-written Service target: the backend of this schema's internal route. */
  serviceTarget?: BackendIR;
  upstreamHost?: string;
  policy?: PolicyService;
  curlExample?: string;
  /**
   * The generated OpenAPI document (text and digest) the call example came from, for render
   * (programmed ApiSchemas only): a run does not depend on the memo's LRU still holding it.
   */
  openapi?: GeneratedDoc;
  conditions: ConditionIR[];
}

export interface IR {
  mlServices: MLServiceIR[];
  apiSchemas: ApiSchemaIR[];
  /**
   * Namespaces (other than the system namespace) with enforce-mode public routes, or with
   * retained ApiSchemas (whose existing routes may still point at the policy server).
   */
  policyGrantNamespaces: string[];
  /**
   * The largest request body limit (bytes) of any operation of an accepted ApiSchema in the
   * whole graph (also when only some owners are built), at least {@link DEFAULT_MAX_BODY_BYTES}:
   * what the gateway must let through so the policy server, not nginx, answers 413 (render's
   * ClientSettingsPolicy). Optional for compatibility; absent = the default.
   */
  maxBodyBytes?: number;
  /**
   * KEA's live HTTPRoutes by `<ns>/<name>` (graph `routes`: metadata and `status.parents`):
   * render qualifies a `Programmed=True` with the gateway's verdict on the routes it renders
   * (render/route-status.ts). Optional; absent = none observed.
   */
  routes?: Map<string, KubernetesObject>;
}

/* ------------------------------------------------------------ canonical JSON */

/** JSON with object keys sorted recursively and `undefined` members dropped (stable digests); see controller/canonical.ts. */
export { canonicalJson } from '../canonical.js';

/** Hex sha256 of a string. */
export function sha256(s: string): string {
  return createHash('sha256').update(s).digest('hex');
}

/* ------------------------------------------------------------ MLService */

function revisionsIR(m: MLService): RevisionIR[] {
  const spec = m.spec;
  return spec.revisions.map((r) => {
    const port = r.port ?? spec.port ?? DEFAULT_PORT;
    const model = r.modelUri ? modelLocation(r.modelUri) : undefined;
    // KEA_REVISION lets a model echo its revision (x-kea-revision) for the audit log.
    const env = [{ name: 'KEA_REVISION', value: r.name }, ...(r.env ?? [])];
    const common = {
      name: r.name,
      objectName: revisionObjectName(m.metadata.name, r.name),
      weight: r.weight,
      replicas: r.replicas ?? 1,
      port,
      resources: r.resources,
      model,
    };
    if (spec.framework === 'custom') {
      if (model && r.modelUri) env.push({ name: 'KEA_MODEL_URI', value: r.modelUri }, { name: 'KEA_MODEL_DIR', value: model.dir });
      const health = spec.healthPath ?? DEFAULT_CUSTOM_HEALTH_PATH;
      return { ...common, image: r.image ?? '', args: [...(r.args ?? [])], env, readinessPath: health, livenessPath: health };
    }
    const rt = RUNTIMES[spec.framework];
    const modelName = m.metadata.name;
    const args = model ? rt.args({ model: modelName, dir: model.dir, port }) : rt.args({ model: modelName, dir: '/mnt/models', port });
    return {
      ...common,
      image: r.image ?? rt.image,
      command: rt.command ? [...rt.command] : undefined,
      args: [...args, ...(r.args ?? [])],
      env: [...(rt.env ?? []), ...env],
      readinessPath: spec.healthPath ?? rt.readinessPath(modelName),
      livenessPath: spec.healthPath ?? rt.livenessPath(modelName),
    };
  });
}

function problemConditions(problems: Problem[], type: 'Accepted' | 'ResolvedRefs', okReason: string, okMessage: string): ConditionIR {
  const mine = problems.filter((p) => p.condition === type);
  if (!mine.length) return { type, status: 'True', reason: okReason, message: okMessage };
  return { type, status: 'False', reason: mine[0].reason, message: mine.map((p) => p.message).join('; ') };
}

type DeploymentStatus = { replicas?: number; availableReplicas?: number; observedGeneration?: number };

function readyCondition(node: MLServiceNode, revisions: RevisionIR[], deployments: Map<string, KubernetesObject> | undefined): ConditionIR {
  if (!isAccepted(node)) return { type: 'Ready', status: 'False', reason: 'Invalid', message: 'the spec is not accepted (see Accepted); Deployments of an earlier accepted generation, if any, are kept unchanged' };
  if (!deployments) return { type: 'Ready', status: 'Unknown', reason: 'Pending', message: 'Deployment status not observed yet' };
  const ns = node.resource.metadata.namespace ?? '';
  const serving = revisions.filter((r) => r.weight > 0);
  const lacking: string[] = [];
  const ok: string[] = [];
  for (const r of serving) {
    const d = deployments.get(key(ns, r.objectName)) as (KubernetesObject & { status?: DeploymentStatus }) | undefined;
    const avail = d?.status?.availableReplicas ?? 0;
    if (!d) lacking.push(`revision ${r.name} (weight ${r.weight}%): Deployment ${key(ns, r.objectName)} not created yet`);
    else if (r.replicas === 0) lacking.push(`revision ${r.name} (weight ${r.weight}%): replicas is 0`);
    else if (avail < 1) lacking.push(`revision ${r.name} (weight ${r.weight}%): Deployment ${key(ns, r.objectName)} has ${avail}/${r.replicas} available replicas`);
    else ok.push(`${r.name} ${avail}/${r.replicas}`);
  }
  if (lacking.length) return { type: 'Ready', status: 'False', reason: 'Unavailable', message: lacking.join('; ') };
  return { type: 'Ready', status: 'True', reason: 'Available', message: `every revision with traffic has available replicas: ${ok.join(', ')}` };
}

/** A revision whose weight {@link gateWeights} routes elsewhere until it is available. */
export interface HeldRevision {
  revision: string;
  /** Its configured weight in percent (after a refused canary's move). */
  weight: number;
}

/**
 * Readiness gating of the weighted split (issue 11): a revision with weight > 0 whose
 * Deployment has no available replica (not created yet, `replicas: 0`, or
 * `status.availableReplicas` < 1) gets weight 0, and its share goes to the revisions that are
 * available, in proportion to their weights (largest remainder, ties to the earlier revision in
 * spec order, so the weights still sum to 100). A route would otherwise send that share to a
 * Service without ready endpoints: the gateway answers 503 (measured on NGF 1.6.2: 5 of 33
 * requests while a canary started). Nothing changes when Deployments were not observed, when
 * every serving revision is available, or when none is (there is nothing better to route to).
 * Mutates the weights of `revisions`; returns the revisions held back.
 * @param deployments live Deployments by `<namespace>/<name>` (watch stage), or undefined.
 */
export function gateWeights(ns: string, revisions: RevisionIR[], deployments: Map<string, KubernetesObject> | undefined): HeldRevision[] {
  if (!deployments) return [];
  const serving = revisions.filter((r) => r.weight > 0);
  const available = (r: RevisionIR): boolean => {
    const d = deployments.get(key(ns, r.objectName)) as (KubernetesObject & { status?: DeploymentStatus }) | undefined;
    return r.replicas > 0 && (d?.status?.availableReplicas ?? 0) >= 1;
  };
  const ready = serving.filter(available);
  if (ready.length === 0 || ready.length === serving.length) return [];
  const held = serving.filter((r) => !ready.includes(r));
  const moved = held.reduce((s, r) => s + r.weight, 0);
  const base = ready.reduce((s, r) => s + r.weight, 0);
  const shares = ready.map((r) => ({ r, exact: (r.weight * moved) / base }));
  for (const x of shares) x.r.weight += Math.floor(x.exact);
  let left = moved - shares.reduce((s, x) => s + Math.floor(x.exact), 0);
  const byRemainder = [...shares].sort((a, b) => b.exact - Math.floor(b.exact) - (a.exact - Math.floor(a.exact)) || revisions.indexOf(a.r) - revisions.indexOf(b.r));
  for (const x of byRemainder) {
    if (left <= 0) break;
    x.r.weight += 1;
    left -= 1;
  }
  const out = held.map((r) => ({ revision: r.name, weight: r.weight }));
  for (const r of held) r.weight = 0;
  return out;
}

/**
 * The `Programmed` condition of an MLService as KEA decides it: `True` when its internal
 * HTTPRoute is rendered (accepted spec), `False` reason `Invalid` otherwise. Render qualifies a
 * `True` with the gateway's verdict on that route (render/route-status.ts).
 */
function programmedMLService(node: MLServiceNode, config: ControllerConfig, revisions: RevisionIR[]): ConditionIR {
  if (!isAccepted(node)) {
    return { type: 'Programmed', status: 'False', reason: 'Invalid', message: 'nothing new is routed: the spec is not accepted (see Accepted); objects of an earlier accepted generation, if any, are kept unchanged' };
  }
  const host = mlServiceHost(config, node.resource.metadata.namespace ?? '', node.resource.metadata.name);
  return { type: 'Programmed', status: 'True', reason: 'Programmed', message: `internal HTTPRoute ${config.systemNamespace}/${internalRouteName(host)} with ${revisions.length} revision backend(s)` };
}

/** How many breaking changes a ContractChecked message quotes per refused revision. */
const QUOTED_CHANGES = 3;

/**
 * Contract-checked rollout. The stable revision is the one with the highest weight (ties: the
 * first in spec order). Every other revision with weight > 0 whose `apiSchema` names another
 * ApiSchema than the stable revision's has its API compared with the stable one: both
 * ApiSchemas are turned into OpenAPI documents (lib/openapi/generate.ts; the canary's under the
 * stable one's basePath, since two ApiSchemas cannot share a basePath and only the contract
 * matters here) and diffed (lib/openapi/diff.ts, rules in docs/api-diff.md). A canary with a
 * breaking change is refused unless `spec.allowBreakingChanges` is true: its weight moves to
 * the stable revision (its Deployment and Service stay, so it can warm up).
 * Returns the `ContractChecked` condition (undefined when no revision names an apiSchema)
 * and the check result.
 */
export function contractCheck(
  m: MLService,
  apiByKey: Map<string, ApiSchemaNode>,
  config: Pick<ControllerConfig, 'gatewayUrl' | 'issuerUrl'>,
): { condition?: ConditionIR; check?: ContractCheckIR } {
  const revs = m.spec.revisions ?? [];
  if (!revs.some((r) => r.apiSchema)) return {};
  const ns = m.metadata.namespace ?? '';
  const stable = revs.reduce((best, r) => (r.weight > best.weight ? r : best), revs[0]);
  const canaries = revs.filter((r) => r !== stable && r.weight > 0 && r.apiSchema && r.apiSchema !== stable.apiSchema);
  const check: ContractCheckIR = { stable: stable.name, refused: [], diffs: [] };
  const cond = (status: ConditionIR['status'], reason: string, message: string) => ({ condition: { type: 'ContractChecked', status, reason, message }, check });
  const stableRef = `stable revision ${stable.name}${stable.apiSchema ? ` (ApiSchema ${stable.apiSchema})` : ''}`;
  if (!canaries.length) {
    return cond('True', 'NoApiChange', `every revision with traffic serves the API of the ${stableRef}`);
  }
  const usable = (name: string | undefined): { node?: ApiSchemaNode; why?: string } => {
    if (!name) return { why: 'names no apiSchema' };
    const n = apiByKey.get(key(ns, name));
    if (!n) return { why: `names ApiSchema ${key(ns, name)}, which does not exist` };
    const tm = n.resource.spec.target?.mlService;
    if (!tm || tm.name !== m.metadata.name || (tm.namespace ?? ns) !== ns) return { why: `names ApiSchema ${key(ns, name)}, which does not target this MLService` };
    if (!isAccepted(n)) return { why: `names ApiSchema ${key(ns, name)}, which is not accepted` };
    return { node: n };
  };
  const gen = (a: ApiSchema) => generateCached(a, genOptions(config));
  const s = usable(stable.apiSchema);
  const names = canaries.map((r) => r.name).join(', ');
  if (!s.node) return cond('Unknown', 'NotChecked', `the API of revision(s) ${names} is not checked: the stable revision ${stable.name} ${s.why}; traffic is routed as declared`);
  let stableDoc: ReturnType<typeof generateCached>;
  try {
    stableDoc = gen(s.node.resource);
  } catch (e) {
    return cond('Unknown', 'NotChecked', `the API of revision(s) ${names} is not checked: the OpenAPI document of ApiSchema ${s.node.key} cannot be generated: ${(e as Error).message}; traffic is routed as declared`);
  }
  const unchecked: string[] = [];
  for (const r of canaries) {
    const c = usable(r.apiSchema);
    if (!c.node) {
      unchecked.push(`revision ${r.name} ${c.why}`);
      continue;
    }
    try {
      const canary: ApiSchema = { ...c.node.resource, spec: { ...c.node.resource.spec, basePath: s.node.resource.spec.basePath } };
      const canaryDoc = gen(canary);
      check.diffs.push({ revision: r.name, apiSchema: r.apiSchema!, diff: diffCached(stableDoc.digest, canaryDoc.digest, () => ({ oldDoc: stableDoc.doc, newDoc: canaryDoc.doc })) });
    } catch (e) {
      unchecked.push(`revision ${r.name}: the OpenAPI document of ApiSchema ${c.node.key} cannot be generated: ${(e as Error).message}`);
    }
  }
  const breaking = check.diffs.filter((d) => d.diff.breaking);
  const describe = (d: ContractCheckIR['diffs'][number]) => {
    const br = d.diff.changes.filter((c) => c.breaking);
    const quoted = br.slice(0, QUOTED_CHANGES).map((c) => c.message).join('; ');
    const more = br.length > QUOTED_CHANGES ? `; and ${br.length - QUOTED_CHANGES} more` : '';
    return `revision ${d.revision} (ApiSchema ${d.apiSchema}, version ${d.diff.to}) has ${br.length} breaking change(s) against stable revision ${stable.name} (ApiSchema ${stable.apiSchema}, version ${d.diff.from}): ${quoted}${more}`;
  };
  const tail = unchecked.length ? `; not checked, routed as declared: ${unchecked.join('; ')}` : '';
  if (breaking.length && !m.spec.allowBreakingChanges) {
    check.refused = breaking.map((d) => d.revision);
    const moved = revs.filter((r) => check.refused.includes(r.name)).reduce((sum, r) => sum + r.weight, 0);
    return cond(
      'False',
      'BreakingApiChange',
      `canary refused: ${breaking.map(describe).join('; ')}. Its ${moved}% of traffic is routed to revision ${stable.name} instead; its Deployment still runs. ` +
        `Make the change backward compatible, or set spec.allowBreakingChanges: true to route it as declared (rules: docs/api-diff.md)${tail}`,
    );
  }
  if (breaking.length) {
    return cond('True', 'BreakingChangeAllowed', `routed as declared because spec.allowBreakingChanges is true: ${breaking.map(describe).join('; ')}${tail}`);
  }
  if (unchecked.length) return cond('Unknown', 'NotChecked', `${unchecked.join('; ')}; traffic is routed as declared`);
  const summary = check.diffs
    .map((d) => `revision ${d.revision} (ApiSchema ${d.apiSchema}, version ${d.diff.to}): ${d.diff.changes.length} non-breaking change(s)`)
    .join('; ');
  return cond('True', 'Compatible', `no breaking change against the ${stableRef}: ${summary}`);
}

function mlServiceIR(node: MLServiceNode, config: ControllerConfig, graph: Graph, apiByKey: Map<string, ApiSchemaNode>): MLServiceIR {
  const m = node.resource;
  const ns = m.metadata.namespace ?? '';
  const accepted = isAccepted(node);
  const revisions = accepted ? revisionsIR(m) : [];
  const { condition: contractCondition, check } = accepted ? contractCheck(m, apiByKey, config) : {};
  if (check?.refused.length) {
    // Refused canaries keep their Deployment and Service; their weight goes to the stable revision.
    const moved = revisions.filter((r) => check.refused.includes(r.name)).reduce((sum, r) => sum + r.weight, 0);
    for (const r of revisions) {
      if (check.refused.includes(r.name)) r.weight = 0;
      else if (r.name === check.stable) r.weight += moved;
    }
  }
  const ready = readyCondition(node, revisions, graph.deployments);
  // Weights go to available revisions only; Ready (computed above from the configured
  // weights) says which revision is held back.
  const held = accepted ? gateWeights(ns, revisions, graph.deployments) : [];
  if (held.length) {
    const to = revisions.filter((r) => r.weight > 0).map((r) => `${r.name} ${r.weight}%`).join(', ');
    ready.message += `; held back from routing until available: ${held.map((h) => `revision ${h.revision} (weight ${h.weight}%)`).join(', ')}; routed meanwhile: ${to}`;
  }
  const conditions: ConditionIR[] = [
    problemConditions(node.problems, 'Accepted', 'Accepted', `${m.spec.revisions.length} revision(s), framework ${m.spec.framework}`),
    problemConditions(node.problems, 'ResolvedRefs', 'ResolvedRefs', 'all references resolved'),
    ...(contractCondition ? [contractCondition] : []),
    programmedMLService(node, config, revisions),
    ready,
  ];
  return {
    key: node.key,
    namespace: ns,
    name: m.metadata.name,
    uid: m.metadata.uid,
    generation: m.metadata.generation,
    resource: m,
    accepted,
    host: mlServiceHost(config, ns, m.metadata.name),
    revisions,
    // What is actually routed (after a refused canary's weight moved to the stable revision,
    // and a revision not available yet had its share moved to the available ones).
    traffic: accepted ? revisions.map((r) => ({ revision: r.name, weight: r.weight })) : [],
    conditions,
    ...(check ? { contract: check } : {}),
  };
}

/* ------------------------------------------------------------ ApiSchema */

function policyOperation(a: ApiSchema, o: Operation): PolicyOperation {
  const comps = a.spec.components?.schemas ?? {};
  const d = a.spec.defaults ?? {};
  const responses: Record<string, JsonSchema> = {};
  for (const code of Object.keys(o.responses ?? {}).sort()) {
    const s = o.responses![code].schema;
    if (s) responses[code] = selfContained(s, comps);
  }
  return {
    operationId: o.operationId,
    method: o.method,
    path: `${a.spec.basePath}${o.path}`,
    upstreamPath: o.path,
    access: structuredClone(o.access ?? d.access ?? DEFAULT_ACCESS),
    cache: o.cache ? { ...o.cache } : undefined,
    timeoutMs: parseDurationMs(o.timeout ?? d.timeout ?? DEFAULT_TIMEOUT) ?? 5000,
    maxBodyBytes: o.maxBodyBytes ?? d.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES,
    responseValidation: o.responseValidation ?? 'off',
    parameters: (o.parameters ?? []).map((p) => ({
      ...structuredClone(p),
      required: p.in === 'path' ? true : (p.required ?? false),
      schema: p.schema ? selfContained(p.schema, comps) : undefined,
    })),
    requestBody: o.requestBody
      ? {
          required: o.requestBody.required ?? false,
          contentType: o.requestBody.contentType ?? 'application/json',
          schema: selfContained(o.requestBody.schema, comps),
        }
      : undefined,
    responses,
  };
}

/** Options of the published OpenAPI document, the same for docs, diffs and call examples. */
export function genOptions(config: Pick<ControllerConfig, 'gatewayUrl' | 'issuerUrl'>): GenerateOptions {
  return { gatewayUrl: config.gatewayUrl.replace(/\/+$/, ''), ...(config.issuerUrl ? { issuerUrl: config.issuerUrl } : {}) };
}

/** The operation /services/{id}/predict maps to: the first POST named predict*, else the first POST. */
function defaultOperationId(ops: PolicyOperation[]): string | undefined {
  const posts = ops.filter((o) => o.method === 'POST');
  return (posts.find((o) => /^predict/i.test(o.operationId)) ?? posts[0])?.operationId;
}

/**
 * Whether an ApiSchema that is not programmed keeps its existing objects: yes when its own
 * spec is invalid (a bad edit must not take a working API down) or its MLService's is; no when
 * it lost a conflict, or a reference is missing or no longer permitted (a revoked
 * ReferenceGrant must stop traffic).
 */
function retainObjects(node: ApiSchemaNode): boolean {
  if (node.problems.some((p) => p.condition === 'Accepted' && p.reason !== 'Invalid')) return false;
  if (node.problems.some((p) => p.condition === 'ResolvedRefs' && p.reason !== 'BackendNotAccepted')) return false;
  return node.problems.length > 0;
}

/**
 * What becomes of an ApiSchema, decided from its graph node alone: `unresolved` (not
 * accepted, a reference not resolved, or no target), `awaiting` (operations come from a served
 * OpenAPI document not imported yet, enforce mode), `no-operations` (enforce mode, nothing to
 * route) or `programmed`. {@link apiSchemaIR} branches on it, and {@link needsPolicyGrant} reads
 * it without building the IR.
 */
function programState(node: ApiSchemaNode): 'unresolved' | 'awaiting' | 'no-operations' | 'programmed' {
  if (!isAccepted(node) || !refsResolved(node) || !node.target) return 'unresolved';
  const mode = node.resource.spec.policy?.mode ?? 'enforce';
  if (node.operations.length === 0 && mode === 'enforce') {
    const awaiting = node.imported && ['pending', 'failed', 'invalid', 'refused'].includes(node.imported.state);
    return awaiting ? 'awaiting' : 'no-operations';
  }
  return 'programmed';
}

/**
 * Whether an ApiSchema's namespace needs the ReferenceGrant to the policy server: its IR is
 * programmed in enforce mode, or retained (its existing routes may still point there). The
 * same decision as `(ir.programmed && ir.mode === 'enforce') || ir.retain`, without the IR.
 */
export function needsPolicyGrant(node: ApiSchemaNode): boolean {
  const state = programState(node);
  if (state === 'unresolved') return retainObjects(node);
  if (state === 'awaiting') return true;
  return state === 'programmed' && (node.resource.spec.policy?.mode ?? 'enforce') === 'enforce';
}

/** The `Imported` condition of an ApiSchema with `spec.source.openapi`. */
function importedCondition(info: ImportInfo, host: string): ConditionIR {
  const where = `GET ${info.path} on ${host}`;
  const digest = info.digest ? ` (digest ${info.digest.slice(0, 12)})` : '';
  const notes: string[] = [];
  if (info.shadowed.length) notes.push(`inline operation(s) replace imported ${info.shadowed.join(', ')}`);
  if (info.unroutable.length) notes.push(`${info.unroutable.length} item(s) not routed (status.unroutable), first: ${info.unroutable[0]}`);
  const tail = notes.length ? `; ${notes.join('; ')}` : '';
  switch (info.state) {
    case 'pending':
      return { type: 'Imported', status: 'Unknown', reason: 'Pending', message: `${where} through the gateway's internal listener has not completed yet` };
    case 'failed':
      return { type: 'Imported', status: 'False', reason: 'FetchFailed', message: `nothing imported: ${info.error}` };
    case 'refused':
      return { type: 'Imported', status: 'False', reason: 'Refused', message: `nothing imported: ${info.error}` };
    case 'invalid':
      return { type: 'Imported', status: 'False', reason: 'InvalidDocument', message: `the document served by ${where}${digest} cannot be imported: ${info.error}` };
    case 'stale':
      return { type: 'Imported', status: 'True', reason: 'Stale', message: `${info.imported} operation(s) imported from an earlier fetch${digest}; the latest fetch failed: ${info.error}${tail}` };
    default:
      return { type: 'Imported', status: 'True', reason: 'Imported', message: `${info.imported} operation(s) imported from ${where}${digest}${tail}` };
  }
}

function apiSchemaIR(node: ApiSchemaNode, config: ControllerConfig, mls: Map<string, MLServiceIR>): ApiSchemaIR {
  const a = node.resource;
  const ns = a.metadata.namespace ?? '';
  const mode = a.spec.policy?.mode ?? 'enforce';
  const accepted = isAccepted(node);
  const resolved = refsResolved(node);
  const ops = node.operations;
  const conditions: ConditionIR[] = [
    problemConditions(node.problems, 'Accepted', 'Accepted', `${ops.length} operation(s) at basePath ${a.spec.basePath}, policy mode ${mode}`),
    problemConditions(node.problems, 'ResolvedRefs', 'ResolvedRefs', node.target ? `target ${node.target.kind} ${key(node.target.namespace, node.target.name)} resolved` : 'all references resolved'),
    ...(node.imported ? [importedCondition(node.imported, apiSchemaHost(config, a))] : []),
  ];
  const base: ApiSchemaIR = {
    key: node.key,
    namespace: ns,
    name: a.metadata.name,
    uid: a.metadata.uid,
    generation: a.metadata.generation,
    resource: a,
    operations: ops,
    mode,
    basePath: a.spec.basePath,
    accepted,
    resolved,
    programmed: false,
    retain: false,
    routes: [],
    passthroughBackends: [],
    conditions,
    ...(node.imported ? { imported: node.imported } : {}),
    unroutable: node.imported && ['imported', 'stale'].includes(node.imported.state) ? node.imported.unroutable : [],
    published: node.published,
  };
  const state = programState(node);
  if (state === 'unresolved' || !node.target) {
    const retained = retainObjects(node);
    const why = !accepted ? 'the ApiSchema is not accepted' : 'references are not resolved';
    const message = retained ? `nothing new is routed: ${why}; objects of an earlier accepted generation, if any, are kept unchanged` : `nothing is routed: ${why}`;
    conditions.push({ type: 'Programmed', status: 'False', reason: !accepted ? 'Invalid' : 'RefsNotResolved', message });
    base.retain = retained;
    return base;
  }
  // Discovery fetches a hand-written Service's document through the gateway's internal
  // listener, so its internal route must exist before any operation is known (and in
  // passthrough mode, where nothing else needs it).
  if (node.target.kind === 'Service' && a.spec.source?.openapi) {
    base.serviceTarget = { namespace: node.target.namespace, name: node.target.name, port: node.target.port, weight: 1 };
    base.upstreamHost = apiSchemaHost(config, a);
  }
  if (state === 'awaiting') {
    // Nothing importable yet (e.g. right after a controller restart, before the first fetch):
    // keep whatever an earlier run rendered for this ApiSchema instead of pruning it.
    const why = node.imported!.state === 'pending' ? 'it has not been fetched yet' : node.imported!.state === 'failed' ? 'fetching it failed (see Imported)' : node.imported!.state === 'refused' ? 'fetching it is refused (see Imported)' : 'it cannot be imported (see Imported)';
    conditions.push({
      type: 'Programmed',
      status: 'False',
      reason: 'AwaitingOpenApi',
      message: `nothing new is routed: operations come from the OpenAPI document at ${node.imported!.path} of the target and ${why}; objects of an earlier generation, if any, are kept unchanged`,
    });
    base.retain = true;
    return base;
  }
  if (state === 'no-operations') {
    const why = a.spec.source?.openapi ? 'the imported OpenAPI document has no routable operation (see status.unroutable)' : 'spec.operations is empty';
    conditions.push({ type: 'Programmed', status: 'False', reason: 'NoOperations', message: `nothing to route in enforce mode: ${why}` });
    return base;
  }

  // Upstream and traffic.
  const t = node.target;
  let traffic: Array<{ revision: string; weight: number }> = [];
  let upstreamHost: string;
  let revisionBackends: BackendIR[];
  if (t.kind === 'MLService') {
    const m = mls.get(key(t.namespace, t.name))!;
    traffic = m.traffic;
    upstreamHost = apiSchemaHost(config, a);
    revisionBackends = m.revisions.map((r) => ({ namespace: t.namespace, name: r.objectName, port: r.port, weight: r.weight }));
  } else {
    upstreamHost = apiSchemaHost(config, a);
    revisionBackends = [{ namespace: t.namespace, name: t.name, port: t.port, weight: 1 }];
    // Only the policy server forwards to the internal route; passthrough routes go direct.
    if (mode === 'enforce') base.serviceTarget = revisionBackends[0];
  }

  const allPolicyOps = ops.map((o) => policyOperation(a, o));
  const withoutVersion: Omit<PolicyService, 'configVersion'> = {
    id: node.key,
    namespace: ns,
    name: a.metadata.name,
    title: a.spec.info.title,
    version: a.spec.info.version,
    basePath: a.spec.basePath,
    mode,
    upstream: { host: upstreamHost },
    traffic,
    authorization: { ...(a.spec.authorization ?? {}) },
    defaultOperationId: mode === 'enforce' ? defaultOperationId(allPolicyOps) : undefined,
    operations: mode === 'enforce' ? allPolicyOps : [],
    ...securityPolicy(a),
  };
  const configVersion = policyConfigVersion(withoutVersion);
  const policy: PolicyService = { ...withoutVersion, configVersion };

  // Routes.
  const routes: OperationRouteIR[] = [];
  if (mode === 'enforce') {
    for (const o of ops) {
      const match = operationPathMatch(a.spec.basePath, o.path);
      const same = routes.find((r) => r.method === o.method && r.match.type === match.type && r.match.value === match.value);
      if (same) same.operationIds.push(o.operationId);
      else routes.push({ method: o.method, match, operationIds: [o.operationId], headerValue: '' });
    }
    for (const r of routes) r.headerValue = `${ns}/${a.metadata.name}/${r.operationIds.join(',')}`;
  } else {
    base.passthroughBackends = revisionBackends;
  }

  // The call example shows the service's default operation (what /services/{id}/predict runs).
  const openapi = generateCached(a, genOptions(config));
  const curl = curlExampleCached(openapi, defaultOperationId(allPolicyOps));

  const nRoutes = mode === 'enforce' ? Math.ceil(routes.length / 16) : 1;
  conditions.push({
    type: 'Programmed',
    status: 'True',
    reason: 'Programmed',
    message:
      mode === 'enforce'
        ? `${routes.length} route rule(s) in ${nRoutes} HTTPRoute(s) to the policy server, upstream ${upstreamHost}, config ${configVersion.slice(0, 12)}`
        : `passthrough: 1 HTTPRoute rule with ${revisionBackends.length} backend(s), policy off`,
  });
  return { ...base, programmed: true, routes, upstreamHost, policy, curlExample: curl, openapi };
}

/**
 * The policy.json fields of `spec.security` (lib/policy/config.ts): credential header names
 * lower-cased, sorted and de-duplicated; nothing when the ApiSchema sets nothing (the policy
 * server's defaults apply), so ApiSchemas without the field keep their configVersion.
 */
function securityPolicy(a: ApiSchema): Pick<PolicyService, 'forwardCredentials' | 'contentSecurityPolicy'> {
  const s = a.spec.security;
  const out: Pick<PolicyService, 'forwardCredentials' | 'contentSecurityPolicy'> = {};
  if (s?.forwardCredentials?.length) out.forwardCredentials = [...new Set(s.forwardCredentials.map((h) => h.toLowerCase() as 'authorization' | 'cookie'))].sort();
  if (s?.contentSecurityPolicy !== undefined) out.contentSecurityPolicy = s.contentSecurityPolicy;
  return out;
}

/**
 * Build the IR from the graph. Never throws on bad input (the graph has reported it).
 */
export function buildIR(graph: Graph, config: ControllerConfig): IR {
  const steps = buildIRSteps(graph, config);
  let r = steps.next();
  while (!r.done) r = steps.next();
  return r.value;
}

/**
 * The owners an IR build is asked for (incremental reconcile, controller/incremental.ts): keys
 * `<namespace>/<name>` of the ApiSchemas and MLServices whose IR is wanted. Everything else of
 * the graph is still read (contract checks, targets), but not turned into IR.
 */
export interface IRSelection {
  apiSchemas: ReadonlySet<string>;
  mlServices: ReadonlySet<string>;
}

/** Resources between two {@link PAUSE}s of {@link buildIRSteps}. */
export const IR_PAUSE_EVERY = 100;

/**
 * {@link buildIR} as a generator that yields {@link PAUSE} after every {@link IR_PAUSE_EVERY}
 * resources and returns the IR: a long IR build need not be one synchronous stretch.
 * @param only when given, the IR of these owners only (see {@link IRSelection});
 *   `policyGrantNamespaces` then covers the selected ApiSchemas only.
 */
export function* buildIRSteps(graph: Graph, config: ControllerConfig, only?: IRSelection): Generator<typeof PAUSE, IR, undefined> {
  return (yield* irSteps(graph, config, only, false)) as IR;
}

function* irSteps(graph: Graph, config: ControllerConfig, only: IRSelection | undefined, lazy: boolean): Generator<typeof PAUSE, IR | StreamIR, undefined> {
  const apiByKey = new Map(graph.apiSchemas.map((n) => [n.key, n]));
  // With a selection: the MLServices asked for, plus the targets of the ApiSchemas asked for
  // (an ApiSchema's traffic and backends come from its MLService's IR), the latter left out
  // of the returned IR.
  const apiWanted = only ? graph.apiSchemas.filter((n) => only.apiSchemas.has(n.key)) : graph.apiSchemas;
  const targets = new Set<string>();
  if (only) for (const n of apiWanted) if (n.target?.kind === 'MLService') targets.add(key(n.target.namespace, n.target.name));
  const mlServices: MLServiceIR[] = [];
  const byKey = new Map<string, MLServiceIR>();
  let done = 0;
  for (const n of graph.mlServices) {
    const wanted = !only || only.mlServices.has(n.key);
    if (!wanted && !targets.has(n.key)) continue;
    const m = mlServiceIR(n, config, graph, apiByKey);
    byKey.set(m.key, m);
    if (wanted) mlServices.push(m);
    if (++done % IR_PAUSE_EVERY === 0) yield PAUSE;
  }
  const policyGrantNamespaces = grantNamespaces(apiWanted, config);
  const maxBodyBytes = largestBodyLimit(graph.apiSchemas);
  const routes = graph.routes ? { routes: graph.routes } : {};
  if (lazy) return { mlServices, policyGrantNamespaces, maxBodyBytes, ...routes, apiSchemas: lazyApiSchemaIRs(apiWanted, config, byKey) };
  const apiSchemas: ApiSchemaIR[] = [];
  for (const n of apiWanted) {
    apiSchemas.push(apiSchemaIR(n, config, byKey));
    if (apiSchemas.length % IR_PAUSE_EVERY === 0) yield PAUSE;
  }
  return { mlServices, apiSchemas, policyGrantNamespaces, maxBodyBytes, ...routes };
}

/** See {@link IR.maxBodyBytes}: operation, else `spec.defaults`, else the default limit; accepted ApiSchemas only. */
function largestBodyLimit(nodes: ApiSchemaNode[]): number {
  let max = DEFAULT_MAX_BODY_BYTES;
  for (const n of nodes) {
    if (!isAccepted(n)) continue;
    const d = n.resource.spec.defaults?.maxBodyBytes;
    for (const o of n.operations) max = Math.max(max, o.maxBodyBytes ?? d ?? DEFAULT_MAX_BODY_BYTES);
  }
  return max;
}

function grantNamespaces(nodes: ApiSchemaNode[], config: ControllerConfig): string[] {
  const out = new Set<string>();
  for (const n of nodes) {
    const ns = n.resource.metadata.namespace ?? '';
    if (ns !== config.systemNamespace && needsPolicyGrant(n)) out.add(ns);
  }
  return [...out].sort();
}

function* lazyApiSchemaIRs(nodes: ApiSchemaNode[], config: ControllerConfig, mls: Map<string, MLServiceIR>): Generator<ApiSchemaIR, void, undefined> {
  for (const n of nodes) yield apiSchemaIR(n, config, mls);
}

/**
 * An {@link IR} whose ApiSchema IRs are built one at a time as they are taken (once, in
 * order), so a consumer that renders each and lets it go never holds them all (their policy
 * and OpenAPI text are the bulk of an IR): {@link buildStreamIRSteps}.
 */
export interface StreamIR extends Omit<IR, 'apiSchemas'> {
  apiSchemas: Iterable<ApiSchemaIR>;
}

/**
 * {@link buildIRSteps} with the ApiSchema IRs left lazy (see {@link StreamIR}); the
 * MLService IRs and `policyGrantNamespaces` are complete. Same values as buildIRSteps.
 */
export function* buildStreamIRSteps(graph: Graph, config: ControllerConfig, only?: IRSelection): Generator<typeof PAUSE, StreamIR, undefined> {
  return yield* irSteps(graph, config, only, true);
}
