/**
 * Stage 4 of the controller pipeline: **IR** (intermediate representation, the desired state).
 *
 * Takes in: a {@link Graph} (validated resources with resolved references) and the
 * {@link ControllerConfig}.
 * Gives out: an {@link IR}, the desired state with every default applied, independent of
 * Kubernetes object shapes:
 *   - per MLService: its revisions with image (framework runtime default or spec image),
 *     command/args, port, replicas, resources, probe paths, model location, and weights in
 *     percent; its internal hostname; its readiness (from observed Deployments, if given);
 *   - per ApiSchema: its operations with defaults applied (access `authenticated`, timeout
 *     `5s` → ms, maxBodyBytes 1048576, responseValidation `off`), every schema made
 *     self-contained (components inlined), the route matches per operation, the upstream host
 *     and the backends (policy server in `enforce` mode, model revisions in `passthrough`),
 *     and a {@link PolicyService} (lib/policy/config.ts) whose `configVersion` is the sha256
 *     of the canonical JSON of the policy and traffic;
 *   - the namespaces whose public routes need a ReferenceGrant to reach the policy server.
 * Pure and deterministic: lists keep the graph's sorted order.
 */
import { createHash } from 'node:crypto';
import type { Access, ApiSchema, JsonSchema, MLService, Operation, ResourceRequirements } from '../../lib/api/types.js';
import type { PolicyOperation, PolicyService } from '../../lib/policy/config.js';
import type { KubernetesObject } from '@kubernetes/client-node';
import type { ControllerConfig } from '../model.js';
import {
  type ApiSchemaNode,
  type Graph,
  type MLServiceNode,
  type PathMatch,
  type Problem,
  isAccepted,
  key,
  mlServiceHost,
  operationPathMatch,
  parseDurationMs,
  refsResolved,
  revisionObjectName,
  serviceTargetHost,
} from '../graph/index.js';
import { type ModelLocation, RUNTIMES, modelLocation } from './runtimes.js';
import { exampleFor, selfContained } from './schemas.js';

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
  /** Effective operations (inline + inference-derived), as written. */
  operations: Operation[];
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
}

/* ------------------------------------------------------------ canonical JSON */

/** JSON with object keys sorted recursively and `undefined` members dropped (stable digests). */
export function canonicalJson(value: unknown, indent?: number): string {
  const sort = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(sort);
    if (v && typeof v === 'object') {
      const o = v as Record<string, unknown>;
      return Object.fromEntries(
        Object.keys(o)
          .filter((k) => o[k] !== undefined)
          .sort()
          .map((k) => [k, sort(o[k])]),
      );
    }
    return v;
  };
  return JSON.stringify(sort(value), null, indent);
}

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
    const env = [...(r.env ?? [])];
    if (spec.framework === 'custom') {
      if (model && r.modelUri) env.push({ name: 'KEA_MODEL_URI', value: r.modelUri }, { name: 'KEA_MODEL_DIR', value: model.dir });
      const health = spec.healthPath ?? DEFAULT_CUSTOM_HEALTH_PATH;
      return {
        name: r.name,
        objectName: revisionObjectName(m.metadata.name, r.name),
        weight: r.weight,
        replicas: r.replicas ?? 1,
        port,
        image: r.image ?? '',
        args: [...(r.args ?? [])],
        env,
        resources: r.resources,
        readinessPath: health,
        livenessPath: health,
        model,
      };
    }
    const rt = RUNTIMES[spec.framework];
    const modelName = m.metadata.name;
    const args = model ? rt.args({ model: modelName, dir: model.dir, port }) : rt.args({ model: modelName, dir: '/mnt/models', port });
    return {
      name: r.name,
      objectName: revisionObjectName(m.metadata.name, r.name),
      weight: r.weight,
      replicas: r.replicas ?? 1,
      port,
      image: r.image ?? rt.image,
      command: rt.command ? [...rt.command] : undefined,
      args: [...args, ...(r.args ?? [])],
      env: [...(rt.env ?? []), ...env],
      resources: r.resources,
      readinessPath: spec.healthPath ?? rt.readinessPath(modelName),
      livenessPath: spec.healthPath ?? rt.livenessPath(modelName),
      model,
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

function mlServiceIR(node: MLServiceNode, config: ControllerConfig, graph: Graph): MLServiceIR {
  const m = node.resource;
  const ns = m.metadata.namespace ?? '';
  const accepted = isAccepted(node);
  const revisions = accepted ? revisionsIR(m) : [];
  const conditions: ConditionIR[] = [
    problemConditions(node.problems, 'Accepted', 'Accepted', `${m.spec.revisions.length} revision(s), framework ${m.spec.framework}`),
    problemConditions(node.problems, 'ResolvedRefs', 'ResolvedRefs', 'all references resolved'),
    readyCondition(node, revisions, graph.deployments),
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
    traffic: accepted ? m.spec.revisions.map((r) => ({ revision: r.name, weight: r.weight })) : [],
    conditions,
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

/** The operation /services/{id}/predict maps to: the first POST named predict*, else the first POST. */
function defaultOperationId(ops: PolicyOperation[]): string | undefined {
  const posts = ops.filter((o) => o.method === 'POST');
  return (posts.find((o) => /^predict/i.test(o.operationId)) ?? posts[0])?.operationId;
}

const shellQuote = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;

function paramExample(p: { example?: unknown; schema?: JsonSchema }): string {
  const v = p.example !== undefined ? p.example : exampleFor(p.schema);
  return typeof v === 'string' ? v : JSON.stringify(v ?? 'value');
}

/**
 * A curl command calling `op` through the gateway: the public path with path parameters
 * filled from examples, required query and header parameters, the bearer token unless the
 * operation is public (or the schema is passthrough), and an example JSON body.
 */
export function curlExample(gatewayUrl: string, op: PolicyOperation, mode: 'enforce' | 'passthrough', bodyExample: unknown): string {
  const params = op.parameters;
  let path = op.path.replace(/\{([^}]+)\}/g, (_, n: string) => {
    const p = params.find((q) => q.in === 'path' && q.name === n);
    return encodeURIComponent(p ? paramExample(p) : n);
  });
  const query = params.filter((p) => p.in === 'query' && p.required);
  if (query.length) path += `?${query.map((p) => `${encodeURIComponent(p.name)}=${encodeURIComponent(paramExample(p))}`).join('&')}`;
  const parts = ['curl', '-sS', '-X', op.method, shellQuote(`${gatewayUrl.replace(/\/+$/, '')}${path}`)];
  if (mode === 'enforce' && op.access.mode !== 'public') parts.push('-H', '"Authorization: Bearer $TOKEN"');
  for (const p of params.filter((q) => q.in === 'header' && q.required)) parts.push('-H', shellQuote(`${p.name}: ${paramExample(p)}`));
  if (op.requestBody) {
    parts.push('-H', shellQuote(`Content-Type: ${op.requestBody.contentType}`));
    parts.push('-d', shellQuote(JSON.stringify(bodyExample)));
  }
  return parts.join(' ');
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
  };
  if (!accepted || !resolved || !node.target) {
    const retained = retainObjects(node);
    const why = !accepted ? 'the ApiSchema is not accepted' : 'references are not resolved';
    const message = retained ? `nothing new is routed: ${why}; objects of an earlier accepted generation, if any, are kept unchanged` : `nothing is routed: ${why}`;
    conditions.push({ type: 'Programmed', status: 'False', reason: !accepted ? 'Invalid' : 'RefsNotResolved', message });
    base.retain = retained;
    return base;
  }
  if (ops.length === 0 && mode === 'enforce') {
    const why = a.spec.source?.openapi ? 'operations are not imported from spec.source.openapi yet' : 'spec.operations is empty';
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
    upstreamHost = m.host;
    revisionBackends = m.revisions.map((r) => ({ namespace: t.namespace, name: r.objectName, port: r.port, weight: r.weight }));
  } else {
    upstreamHost = serviceTargetHost(config, ns, a.metadata.name);
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
  };
  const configVersion = sha256(canonicalJson(withoutVersion));
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

  const first = allPolicyOps[0];
  const firstOp = ops[0];
  const curl = first
    ? curlExample(config.gatewayUrl, first, mode, firstOp.requestBody?.example ?? (first.requestBody ? exampleFor(first.requestBody.schema) : undefined))
    : undefined;

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
  return { ...base, programmed: true, routes, upstreamHost, policy, curlExample: curl };
}

/**
 * Build the IR from the graph. Never throws on bad input (the graph has reported it).
 */
export function buildIR(graph: Graph, config: ControllerConfig): IR {
  const mlServices = graph.mlServices.map((n) => mlServiceIR(n, config, graph));
  const byKey = new Map(mlServices.map((m) => [m.key, m]));
  const apiSchemas = graph.apiSchemas.map((n) => apiSchemaIR(n, config, byKey));
  const policyGrantNamespaces = [
    ...new Set(
      apiSchemas
        .filter((a) => ((a.programmed && a.mode === 'enforce') || a.retain) && a.namespace !== config.systemNamespace)
        .map((a) => a.namespace),
    ),
  ].sort();
  return { mlServices, apiSchemas, policyGrantNamespaces };
}
