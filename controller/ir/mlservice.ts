/**
 * The IR of one MLService.
 *
 * Takes in: the MLService's graph node, the ApiSchemas its revisions name and the availability
 * of its revisions' Deployments, all read through {@link OwnerReads} (ir/inputs.ts), and the
 * {@link ControllerConfig}.
 * Gives out: an {@link MLServiceIR}: its revisions with image (framework runtime default or
 * spec image), command/args, port, replicas, resources, probe paths, model location, and the
 * weights in percent that are actually routed: a refused canary's weight moves to the stable
 * revision ({@link contractCheck}), and a revision not available yet while another is gets no
 * weight ({@link gateWeights}); its revision backends, internal hostname and `status.url`; its
 * conditions (`Accepted`, `ResolvedRefs`, `ContractChecked`, `Programmed`, `Ready`) and the
 * Events they raise. Built complete: nothing is changed after it is returned. Pure.
 */
import type { MLService } from '../../lib/api/types.js';
import { type MLServiceNode, internalRouteName, isAccepted, mlServiceHost, revisionObjectName } from '../graph/index.js';
import type { ControllerConfig } from '../model.js';
import { conditionEvents, problemCondition, regardingOf } from './conditions.js';
import { contractCheck } from './contract.js';
import type { OwnerReads } from './inputs.js';
import { RUNTIMES, modelLocation } from './runtimes.js';
import type { BackendIR, ConditionIR, MLServiceIR, RevisionIR } from './types.js';

/** Container (and Service) port of a revision when neither it nor the MLService sets one. */
export const DEFAULT_PORT = 8080;
/** Readiness and liveness path of a `custom` framework revision when `spec.healthPath` is not set. */
export const DEFAULT_CUSTOM_HEALTH_PATH = '/healthz';
/** Default port of the Gateway's internal listener (Topology), for `status.url`. */
export const DEFAULT_INTERNAL_PORT = 8081;

/** A revision as the spec configures it: everything but the routed weight. */
type RevisionSpec = Omit<RevisionIR, 'weight'>;

function revisionSpecs(m: MLService): RevisionSpec[] {
  const spec = m.spec;
  return spec.revisions.map((r) => {
    const port = r.port ?? spec.port ?? DEFAULT_PORT;
    const model = r.modelUri ? modelLocation(r.modelUri) : undefined;
    // KEA_REVISION lets a model echo its revision (x-kea-revision) for the audit log.
    const env = [{ name: 'KEA_REVISION', value: r.name }, ...(r.env ?? [])];
    const common = {
      name: r.name,
      objectName: revisionObjectName(m.metadata.name, r.name),
      replicas: r.replicas ?? 1,
      port,
      resources: r.resources,
      model,
    };
    if (spec.framework === 'custom') {
      const modelEnv =
        model && r.modelUri
          ? [
              { name: 'KEA_MODEL_URI', value: r.modelUri },
              { name: 'KEA_MODEL_DIR', value: model.dir },
            ]
          : [];
      const health = spec.healthPath ?? DEFAULT_CUSTOM_HEALTH_PATH;
      return { ...common, image: r.image ?? '', args: [...(r.args ?? [])], env: [...env, ...modelEnv], readinessPath: health, livenessPath: health };
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

/** A revision whose weight {@link gateWeights} routes elsewhere until it is available. */
export interface HeldRevision {
  revision: string;
  /** Its configured weight in percent (after a refused canary's move). */
  weight: number;
}

/** What {@link gateWeights} reads of a revision. */
export interface GatedRevision {
  readonly name: string;
  readonly objectName: string;
  readonly replicas: number;
  /** Weight in percent before gating. */
  readonly weight: number;
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
 * Does not modify its inputs.
 * @param availableReplicas a Deployment's `status.availableReplicas` by name (undefined: it
 *   does not exist); undefined when Deployments were not observed.
 * @returns the gated weights (percent, in the order of `revisions`) and the revisions held back.
 */
export function gateWeights(
  revisions: readonly GatedRevision[],
  availableReplicas: ((objectName: string) => number | undefined) | undefined,
): { weights: number[]; held: HeldRevision[] } {
  const weights = revisions.map((r) => r.weight);
  if (!availableReplicas) return { weights, held: [] };
  const serving = revisions.filter((r) => r.weight > 0);
  const available = (r: GatedRevision): boolean => r.replicas > 0 && (availableReplicas(r.objectName) ?? 0) >= 1;
  const ready = serving.filter(available);
  if (ready.length === 0 || ready.length === serving.length) return { weights, held: [] };
  const held = serving.filter((r) => !ready.includes(r));
  const moved = held.reduce((s, r) => s + r.weight, 0);
  const base = ready.reduce((s, r) => s + r.weight, 0);
  const shares = ready.map((r) => ({ i: revisions.indexOf(r), exact: (r.weight * moved) / base }));
  for (const x of shares) weights[x.i] += Math.floor(x.exact);
  let left = moved - shares.reduce((s, x) => s + Math.floor(x.exact), 0);
  const byRemainder = [...shares].sort((a, b) => b.exact - Math.floor(b.exact) - (a.exact - Math.floor(a.exact)) || a.i - b.i);
  for (const x of byRemainder) {
    if (left <= 0) break;
    weights[x.i] += 1;
    left -= 1;
  }
  for (const r of held) weights[revisions.indexOf(r)] = 0;
  return { weights, held: held.map((r) => ({ revision: r.name, weight: r.weight })) };
}

/**
 * The `Ready` condition from the weights before gating: every revision with traffic has an
 * available replica, or which ones lack one; `held` adds which were held back from routing.
 */
function readyCondition(
  node: MLServiceNode,
  revisions: readonly GatedRevision[],
  reads: OwnerReads,
  routed: readonly RevisionIR[],
  held: readonly HeldRevision[],
): ConditionIR {
  if (!isAccepted(node))
    return {
      type: 'Ready',
      status: 'False',
      reason: 'Invalid',
      message: 'the spec is not accepted (see Accepted); Deployments of an earlier accepted generation, if any, are kept unchanged',
    };
  if (!reads.deploymentsObserved()) return { type: 'Ready', status: 'Unknown', reason: 'Pending', message: 'Deployment status not observed yet' };
  const ns = node.resource.metadata.namespace ?? '';
  const lacking: string[] = [];
  const ok: string[] = [];
  for (const r of revisions.filter((x) => x.weight > 0)) {
    const avail = reads.availableReplicas(ns, r.objectName);
    if (avail === undefined) lacking.push(`revision ${r.name} (weight ${r.weight}%): Deployment ${ns}/${r.objectName} not created yet`);
    else if (r.replicas === 0) lacking.push(`revision ${r.name} (weight ${r.weight}%): replicas is 0`);
    else if (avail < 1)
      lacking.push(`revision ${r.name} (weight ${r.weight}%): Deployment ${ns}/${r.objectName} has ${avail}/${r.replicas} available replicas`);
    else ok.push(`${r.name} ${avail}/${r.replicas}`);
  }
  // Weights go to available revisions only; Ready (from the weights before gating) says which revision is held back.
  const heldNote = held.length
    ? `; held back from routing until available: ${held.map((h) => `revision ${h.revision} (weight ${h.weight}%)`).join(', ')}; routed meanwhile: ${routed
        .filter((r) => r.weight > 0)
        .map((r) => `${r.name} ${r.weight}%`)
        .join(', ')}`
    : '';
  if (lacking.length) return { type: 'Ready', status: 'False', reason: 'Unavailable', message: `${lacking.join('; ')}${heldNote}` };
  return { type: 'Ready', status: 'True', reason: 'Available', message: `every revision with traffic has available replicas: ${ok.join(', ')}${heldNote}` };
}

/**
 * The `Programmed` condition of an MLService as KEA decides it: `True` when its internal
 * HTTPRoute is rendered (accepted spec), `False` reason `Invalid` otherwise. Render qualifies a
 * `True` with the gateway's verdict on that route (render/route-status.ts).
 */
function programmedMLService(node: MLServiceNode, config: ControllerConfig, revisions: number): ConditionIR {
  if (!isAccepted(node)) {
    return {
      type: 'Programmed',
      status: 'False',
      reason: 'Invalid',
      message: 'nothing new is routed: the spec is not accepted (see Accepted); objects of an earlier accepted generation, if any, are kept unchanged',
    };
  }
  const host = mlServiceHost(config, node.resource.metadata.namespace ?? '', node.resource.metadata.name);
  return {
    type: 'Programmed',
    status: 'True',
    reason: 'Programmed',
    message: `internal HTTPRoute ${config.systemNamespace}/${internalRouteName(host)} with ${revisions} revision backend(s)`,
  };
}

/**
 * The IR of MLService `key` (see the module comment), or undefined when the graph has no such
 * MLService. Never throws on bad input.
 */
export function mlServiceIR(key: string, reads: OwnerReads, config: ControllerConfig): MLServiceIR | undefined {
  const node = reads.mlService(key);
  if (!node) return undefined;
  const m = node.resource;
  const ns = m.metadata.namespace ?? '';
  const accepted = isAccepted(node);
  const specs = accepted ? revisionSpecs(m) : [];
  const { condition: contractCondition, check } = accepted ? contractCheck(m, { get: (k) => reads.contractApiSchema(k) }, config) : {};
  // Refused canaries keep their Deployment and Service; their weight goes to the stable revision.
  const refused = new Set(check?.refused ?? []);
  const moved = m.spec.revisions.filter((r) => refused.has(r.name)).reduce((sum, r) => sum + r.weight, 0);
  const configured: GatedRevision[] = specs.map((s, i) => ({
    ...s,
    weight: refused.has(s.name) ? 0 : s.name === check?.stable && refused.size ? m.spec.revisions[i].weight + moved : m.spec.revisions[i].weight,
  }));
  const observed = accepted && reads.deploymentsObserved();
  const { weights, held } = gateWeights(configured, observed ? (name) => reads.availableReplicas(ns, name) : undefined);
  const revisions: RevisionIR[] = specs.map((s, i) => ({ ...s, weight: weights[i] }));
  const backends: BackendIR[] = revisions.map((r) => ({ namespace: ns, name: r.objectName, port: r.port, weight: r.weight }));
  const conditions: ConditionIR[] = [
    problemCondition(node.problems, 'Accepted', 'Accepted', `${m.spec.revisions.length} revision(s), framework ${m.spec.framework}`),
    problemCondition(node.problems, 'ResolvedRefs', 'ResolvedRefs', 'all references resolved'),
    ...(contractCondition ? [contractCondition] : []),
    programmedMLService(node, config, revisions.length),
    readyCondition(node, configured, reads, revisions, held),
  ];
  const host = mlServiceHost(config, ns, m.metadata.name);
  return {
    key: node.key,
    namespace: ns,
    name: m.metadata.name,
    uid: m.metadata.uid,
    generation: m.metadata.generation,
    observedConditions: m.status?.conditions,
    accepted,
    retain: !accepted,
    host,
    ...(accepted ? { url: `http://${host}:${config.internalPort ?? DEFAULT_INTERNAL_PORT}` } : {}),
    revisions,
    backends,
    // What is actually routed (after a refused canary's weight moved to the stable revision,
    // and a revision not available yet had its share moved to the available ones).
    traffic: revisions.map((r) => ({ revision: r.name, weight: r.weight })),
    conditions,
    events: conditionEvents(regardingOf('MLService', { namespace: ns, name: m.metadata.name, uid: m.metadata.uid }), conditions),
    ...(check ? { contract: check } : {}),
  };
}
