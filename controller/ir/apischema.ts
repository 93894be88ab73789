/**
 * The IR of one ApiSchema.
 *
 * Takes in: the ApiSchema's graph node and published version history, and its target
 * MLService's traffic and backends, all read through {@link OwnerReads} (ir/inputs.ts); the
 * {@link ControllerConfig}; the time `now` (RFC 3339, for a version published this run).
 * Gives out: an {@link ApiSchemaIR}:
 *   - conditions `Accepted`, `ResolvedRefs`, `Imported` (a served OpenAPI document,
 *     `spec.source.openapi`) and `Programmed`: `False` reason `Invalid` / `RefsNotResolved`
 *     (nothing routed; objects retained when only its own or its MLService's spec is invalid),
 *     `AwaitingOpenApi` (operations come from a document not imported yet; objects retained),
 *     `NoOperations`, `RenderFailed` (its policy.json and openapi.json exceed the ConfigMap
 *     limit {@link MAX_CONFIGMAP_BYTES}, or its document cannot be generated), or `True` with
 *     what is routed; and the Events they raise;
 *   - when programmed ({@link ProgramIR}): the route rules per operation (enforce mode) or the
 *     passthrough route's backends and header filters, the upstream host, the
 *     {@link PolicyService} and its published text, the OpenAPI document, the call example and
 *     the docs URLs;
 *   - its internal route (hand-written Service target: in enforce mode, and whenever it serves
 *     its own document, which discovery fetches through it);
 *   - its version history (./history.ts), whether its objects are retained, and whether its
 *     namespace needs the policy server's ReferenceGrant ({@link needsPolicyGrant}).
 * Built complete: nothing is changed after it is returned. Pure.
 */
import { DEFAULT_CONTENT_SECURITY_POLICY } from '../../lib/policy/config.js';
import { type ApiSchemaNode, type ImportInfo, apiSchemaHost, isAccepted, key, operationPathMatch, refsResolved } from '../graph/index.js';
import type { ControllerConfig } from '../model.js';
import { conditionEvents, problemCondition, regardingOf } from './conditions.js';
import { versionHistory } from './history.js';
import type { ApiSchemaView, OwnerReads } from './inputs.js';
import { curlExampleCached, generateCached, policyJsonText } from './memo.js';
import { defaultOperationId } from '../../lib/policy/operation.js';
import { genOptions, policyService } from './policy.js';
import type { ApiSchemaIR, BackendIR, ConditionIR, InternalRouteIR, OperationRouteIR, PassthroughIR, ProgramIR, TrafficIR } from './types.js';

/** ConfigMap data limit (1 MiB, etcd object limit), minus headroom for metadata: bytes of `policy.json` + `openapi.json`. */
export const MAX_CONFIGMAP_BYTES = 1_000_000;
/** Gateway API limit on rules per HTTPRoute (v1.2.1 CRD `maxItems: 16`): render splits enforce-mode rules into HTTPRoutes of this many. */
export const MAX_RULES_PER_ROUTE = 16;

/** What {@link programState} and {@link needsPolicyGrant} read of a node. */
type StateOf = Pick<ApiSchemaNode, 'resource' | 'problems' | 'target' | 'operations' | 'imported'>;

/**
 * Whether an ApiSchema that is not programmed keeps its existing objects: yes when its own
 * spec is invalid (a bad edit must not take a working API down) or its MLService's is; no when
 * it lost a conflict, or a reference is missing or no longer permitted (a revoked
 * ReferenceGrant must stop traffic).
 */
function retainObjects(node: Pick<ApiSchemaNode, 'problems'>): boolean {
  if (node.problems.some((p) => p.condition === 'Accepted' && p.reason !== 'Invalid')) return false;
  if (node.problems.some((p) => p.condition === 'ResolvedRefs' && p.reason !== 'BackendNotAccepted')) return false;
  return node.problems.length > 0;
}

/**
 * What becomes of an ApiSchema, decided from its graph node alone: `unresolved` (not
 * accepted, a reference not resolved, or no target), `awaiting` (operations come from a served
 * OpenAPI document not imported yet, enforce mode), `no-operations` (enforce mode, nothing to
 * route) or `programmed` (unless its objects cannot be published: `RenderFailed`).
 */
function programState(node: StateOf): 'unresolved' | 'awaiting' | 'no-operations' | 'programmed' {
  if (!isAccepted(node) || !refsResolved(node) || !node.target) return 'unresolved';
  const mode = node.resource.spec.policy?.mode ?? 'enforce';
  if (node.operations.length === 0 && mode === 'enforce') {
    const awaiting = node.imported && ['pending', 'failed', 'invalid', 'refused'].includes(node.imported.state);
    return awaiting ? 'awaiting' : 'no-operations';
  }
  return 'programmed';
}

/**
 * Whether an ApiSchema's namespace needs the ReferenceGrant to the policy server: it is
 * programmable in enforce mode (its routes point there; also when its objects then cannot be
 * published, so a route already there keeps working), awaiting its document, or retained (its
 * existing routes may still point there). Decided from the graph node alone, so the IR build
 * lists the namespaces of every ApiSchema without building their IR.
 */
export function needsPolicyGrant(node: StateOf): boolean {
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
      return {
        type: 'Imported',
        status: 'False',
        reason: 'InvalidDocument',
        message: `the document served by ${where}${digest} cannot be imported: ${info.error}`,
      };
    case 'stale':
      return {
        type: 'Imported',
        status: 'True',
        reason: 'Stale',
        message: `${info.imported} operation(s) imported from an earlier fetch${digest}; the latest fetch failed: ${info.error}${tail}`,
      };
    default:
      return { type: 'Imported', status: 'True', reason: 'Imported', message: `${info.imported} operation(s) imported from ${where}${digest}${tail}` };
  }
}

/** Enforce-mode route rules: one per distinct method + path match, operations sharing it listed together (spec order). */
function operationRoutes(node: ApiSchemaView): OperationRouteIR[] {
  const a = node.resource;
  const groups: Array<{ method: string; match: OperationRouteIR['match']; ids: string[] }> = [];
  for (const o of node.operations) {
    const match = operationPathMatch(a.spec.basePath, o.path);
    const same = groups.find((g) => g.method === o.method && g.match.type === match.type && g.match.value === match.value);
    if (same) same.ids.push(o.operationId);
    else groups.push({ method: o.method, match, ids: [o.operationId] });
  }
  const prefix = `${a.metadata.namespace ?? ''}/${a.metadata.name}`;
  return groups.map((g) => ({ method: g.method, match: g.match, operationIds: g.ids, headerValue: `${prefix}/${g.ids.join(',')}` }));
}

/**
 * Passthrough mode has no policy server to strip credentials or mark responses, so the public
 * route does it (Gateway API HTTPHeaderFilter, core RequestHeaderModifier and extended
 * ResponseHeaderModifier): `Authorization` and `Cookie` are removed unless the ApiSchema lists
 * them in `spec.security.forwardCredentials`, and every response gets
 * `X-Content-Type-Options: nosniff` and the ApiSchema's `Content-Security-Policy` (default
 * {@link DEFAULT_CONTENT_SECURITY_POLICY}), as the policy server does in enforce mode.
 */
function passthroughRoute(node: ApiSchemaView, backends: readonly BackendIR[]): PassthroughIR {
  const sec = node.resource.spec.security;
  const keep = new Set((sec?.forwardCredentials ?? []).map((h) => h.toLowerCase()));
  return {
    backends,
    removeRequestHeaders: ['Authorization', 'Cookie'].filter((h) => !keep.has(h.toLowerCase())),
    responseHeaders: [
      { name: 'X-Content-Type-Options', value: 'nosniff' },
      { name: 'Content-Security-Policy', value: sec?.contentSecurityPolicy ?? DEFAULT_CONTENT_SECURITY_POLICY },
    ],
  };
}

/**
 * The IR of ApiSchema `key` (see the module comment), or undefined when the graph has no such
 * ApiSchema. Never throws on bad input.
 */
export function apiSchemaIR(key_: string, reads: OwnerReads, config: ControllerConfig, now: string): ApiSchemaIR | undefined {
  const node = reads.apiSchema(key_);
  if (!node) return undefined;
  const a = node.resource;
  const ns = a.metadata.namespace ?? '';
  const mode = a.spec.policy?.mode ?? 'enforce';
  const accepted = isAccepted(node);
  const ops = node.operations;
  const host = apiSchemaHost(config, a);
  const regarding = regardingOf('ApiSchema', { namespace: ns, name: a.metadata.name, uid: a.metadata.uid });
  const conditions: ConditionIR[] = [
    problemCondition(node.problems, 'Accepted', 'Accepted', `${ops.length} operation(s) at basePath ${a.spec.basePath}, policy mode ${mode}`),
    problemCondition(
      node.problems,
      'ResolvedRefs',
      'ResolvedRefs',
      node.target ? `target ${node.target.kind} ${key(node.target.namespace, node.target.name)} resolved` : 'all references resolved',
    ),
    ...(node.imported ? [importedCondition(node.imported, host)] : []),
  ];
  const published = reads.published(node.key);
  const finish = (programmed: ConditionIR, rest: { retain: boolean; program?: ProgramIR; internalRoute?: InternalRouteIR }): ApiSchemaIR => {
    const conds = [...conditions, programmed];
    const current = rest.program ? rest.program.openapi : undefined;
    const { history, events } = versionHistory(
      { namespace: ns, name: a.metadata.name, uid: a.metadata.uid },
      config.systemNamespace,
      published,
      current,
      a.spec.info.version,
      now,
      regarding,
    );
    return {
      key: node.key,
      namespace: ns,
      name: a.metadata.name,
      uid: a.metadata.uid,
      generation: a.metadata.generation,
      observedConditions: a.status?.conditions,
      mode,
      basePath: a.spec.basePath,
      accepted,
      resolved: refsResolved(node),
      operationCount: ops.length,
      ...(node.imported ? { imported: node.imported } : {}),
      ...(node.imported && ['imported', 'stale'].includes(node.imported.state) ? { unroutable: node.imported.unroutable } : {}),
      policyGrant: needsPolicyGrant(node),
      ...rest,
      history,
      conditions: conds,
      events: [...conditionEvents(regarding, conds), ...events],
    };
  };

  const state = programState(node);
  if (state === 'unresolved' || !node.target) {
    const retained = retainObjects(node);
    const why = !accepted ? 'the ApiSchema is not accepted' : 'references are not resolved';
    const message = retained
      ? `nothing new is routed: ${why}; objects of an earlier accepted generation, if any, are kept unchanged`
      : `nothing is routed: ${why}`;
    return finish({ type: 'Programmed', status: 'False', reason: !accepted ? 'Invalid' : 'RefsNotResolved', message }, { retain: retained });
  }
  const t = node.target;
  // Discovery fetches a hand-written Service's document through the gateway's internal
  // listener, so its internal route must exist before any operation is known (and in
  // passthrough mode, where nothing else needs it).
  const serviceBackend: BackendIR | undefined = t.kind === 'Service' ? { namespace: t.namespace, name: t.name, port: t.port, weight: 1 } : undefined;
  const discovery: InternalRouteIR | undefined = serviceBackend && a.spec.source?.openapi ? { host, backends: [serviceBackend] } : undefined;
  if (state === 'awaiting') {
    // Nothing importable yet (e.g. right after a controller restart, before the first fetch):
    // keep whatever an earlier run rendered for this ApiSchema instead of pruning it.
    const st = node.imported!.state;
    const why =
      st === 'pending'
        ? 'it has not been fetched yet'
        : st === 'failed'
          ? 'fetching it failed (see Imported)'
          : st === 'refused'
            ? 'fetching it is refused (see Imported)'
            : 'it cannot be imported (see Imported)';
    const message = `nothing new is routed: operations come from the OpenAPI document at ${node.imported!.path} of the target and ${why}; objects of an earlier generation, if any, are kept unchanged`;
    return finish(
      { type: 'Programmed', status: 'False', reason: 'AwaitingOpenApi', message },
      { retain: true, ...(discovery ? { internalRoute: discovery } : {}) },
    );
  }
  if (state === 'no-operations') {
    const why = a.spec.source?.openapi ? 'the imported OpenAPI document has no routable operation (see status.unroutable)' : 'spec.operations is empty';
    return finish(
      { type: 'Programmed', status: 'False', reason: 'NoOperations', message: `nothing to route in enforce mode: ${why}` },
      { retain: false, ...(discovery ? { internalRoute: discovery } : {}) },
    );
  }

  // Upstream and traffic.
  let traffic: readonly TrafficIR[] = [];
  let backends: readonly BackendIR[];
  if (t.kind === 'MLService') {
    const m = reads.target(key(t.namespace, t.name))!;
    traffic = m.traffic;
    backends = m.backends;
  } else {
    backends = [serviceBackend!];
  }
  // Only the policy server forwards to the internal route; passthrough routes go direct.
  const internalRoute: InternalRouteIR | undefined = serviceBackend && mode === 'enforce' ? { host, backends: [serviceBackend] } : discovery;
  const policy = policyService(node.key, a, ops, host, traffic);
  const routes = mode === 'enforce' ? operationRoutes(node) : [];
  let openapi: ProgramIR['openapi'];
  let curlExample: string | undefined;
  try {
    const doc = generateCached(a, genOptions(config));
    openapi = { text: doc.text, digest: doc.digest };
    // The call example shows the service's default operation (what /services/{id}/predict runs).
    curlExample = curlExampleCached(doc, defaultOperationId(ops));
  } catch (e) {
    return finish(
      { type: 'Programmed', status: 'False', reason: 'RenderFailed', message: `nothing is routed: ${(e as Error).message}` },
      { retain: false, ...(discovery ? { internalRoute: discovery } : {}) },
    );
  }
  const policyJson = policyJsonText(policy);
  const bytes = Buffer.byteLength(openapi.text) + Buffer.byteLength(policyJson);
  if (bytes > MAX_CONFIGMAP_BYTES) {
    const message = `nothing is routed: its policy.json and openapi.json take ${bytes} bytes, over the ConfigMap limit of ${MAX_CONFIGMAP_BYTES}`;
    return finish(
      { type: 'Programmed', status: 'False', reason: 'RenderFailed', message },
      { retain: false, ...(discovery ? { internalRoute: discovery } : {}) },
    );
  }
  const gw = config.gatewayUrl.replace(/\/+$/, '');
  const program: ProgramIR = {
    upstreamHost: host,
    routes,
    ...(mode === 'passthrough' ? { passthrough: passthroughRoute(node, backends) } : {}),
    policy,
    policyJson,
    openapi,
    ...(curlExample ? { curlExample } : {}),
    docsUrl: `${gw}/docs/${ns}/${a.metadata.name}`,
    openapiUrl: `${gw}/openapi/${ns}/${a.metadata.name}.json`,
  };
  const nRoutes = mode === 'enforce' ? Math.ceil(routes.length / MAX_RULES_PER_ROUTE) : 1;
  const message =
    mode === 'enforce'
      ? `${routes.length} route rule(s) in ${nRoutes} HTTPRoute(s) to the policy server, upstream ${host}, config ${policy.configVersion.slice(0, 12)}`
      : `passthrough: 1 HTTPRoute rule with ${backends.length} backend(s), policy off`;
  return finish({ type: 'Programmed', status: 'True', reason: 'Programmed', message }, { retain: false, program, ...(internalRoute ? { internalRoute } : {}) });
}
