/**
 * Render as a stream: every desired object once, in owner order, then the statuses, Events,
 * retained owners and dropped versions (see ./index.ts for what is rendered).
 *
 * Takes in: an {@link IR} (or {@link StreamIR}), the {@link ControllerConfig}, the time `now`
 * and, for the incremental reconcile, {@link RenderStreamOptions}.
 * Gives out: the objects (a generator) and a {@link RenderRest}; {@link render} collects and
 * sorts them. The one thing decided here rather than in the IR is which owner keeps an object
 * two owners render (NameConflict: the first in owner order), since only rendered names can
 * collide. Pure and deterministic; no I/O.
 */
import type { KubernetesObject } from '@kubernetes/client-node';
import { LABELS } from '../../lib/api/types.js';
import { type ConditionIR, type IR, type StreamIR, conditionEvents, regardingOf } from '../ir/index.js';
import { type ControllerConfig, type EventRecord, type RenderOutput, type StatusUpdate, ownerLabelValue } from '../model.js';
import { policyConfigMap, versionConfigMap } from './configmaps.js';
import { deployment } from './deployments.js';
import { internalRoute, portalRoute, publicRoutes } from './httproutes.js';
import { apiOwner, mlsOwner } from './metadata.js';
import { clientSettingsPolicy, modelUpstreamSettings, policyUpstreamSettings } from './ngf-policies.js';
import { internalGrants, policyGrant } from './referencegrants.js';
import { type JudgedRoute, judgedRoute, withGatewayVerdict } from './route-status.js';
import { service } from './services.js';
import { apiSchemaStatus, mlServiceStatus } from './status.js';
import { compareObjects, objectKey } from '../../lib/kube/objects.js';

/** Everything render gives out besides the objects (see {@link RenderOutput}). */
export type RenderRest = Omit<RenderOutput, 'objects'>;

/** Owner-level facts a render run noted, for the incremental reconcile (controller/incremental.ts). */
export interface RenderTrace {
  /** `kea.dev/owner` values of owners that lost an object to another owner (NameConflict). */
  conflictLosers: Set<string>;
  /** `kea.dev/owner` values of ApiSchemas with version ConfigMaps dropped by the history cap. */
  droppedOwners: Set<string>;
  /**
   * What render read besides the IR: per `kea.dev/owner` value, the `<namespace>/<name>` of
   * each live HTTPRoute whose gateway verdict qualified that owner's `Programmed` condition.
   */
  routeReads: Map<string, string[]>;
}

/** Options of {@link renderStream} used by the incremental reconcile; none changes what is rendered for the IR given. */
export interface RenderStreamOptions {
  /**
   * Objects already held by owners that are not in this IR (not rendered this run): gives the
   * `kea.dev/owner` value of the owner holding an object with the same kind, namespace and
   * name, if any. Such an object of this IR is not rendered (NameConflict Event), after
   * `onClaimed(object, claimedBy)` was called, which may throw to abandon the run.
   */
  claimed?: (o: KubernetesObject) => string | undefined;
  onClaimed?: (o: KubernetesObject, claimedBy: string) => void;
  /** Filled while rendering. */
  trace?: RenderTrace;
  /**
   * Takes each status as soon as it is rendered, after every object of its owner has been
   * yielded; the returned `statuses` are then empty. Lets apply write an owner's status once
   * its objects are applied instead of holding them all until the end.
   */
  onStatus?: (s: StatusUpdate) => void;
}

/**
 * The Events of the conditions the gateway's verdict changed (an IR `Programmed=True` turned
 * `False` by a refusal raises one, by the IR's rule); the IR's own Events come with the IR.
 */
function verdictEvents(
  kind: 'ApiSchema' | 'MLService',
  o: { namespace: string; name: string; uid?: string },
  before: readonly ConditionIR[],
  after: readonly ConditionIR[],
): EventRecord[] {
  if (after === before) return [];
  return conditionEvents(
    regardingOf(kind, o),
    after.filter((c, i) => c !== before[i]),
  );
}

/**
 * Render the IR as a stream: yields every desired object once, in owner order (the
 * ReferenceGrants and the portal route first, then per MLService and per ApiSchema in the
 * IR's sorted order, each owner's objects together with its ConfigMap before its routes), and
 * returns the statuses, events (sorted, NameConflict events included), retained owners and
 * dropped versions once the last object has been taken. The same objects as {@link render},
 * unsorted: a consumer can apply and release them a few at a time instead of holding the
 * whole desired state (docs/performance.md, "Controller scale"). Pure and deterministic.
 * @param now RFC 3339 time used as lastTransitionTime of conditions whose status changed.
 */
export function* renderStream(
  ir: IR | StreamIR,
  config: ControllerConfig,
  now: string,
  opts: RenderStreamOptions = {},
): Generator<KubernetesObject, RenderRest, undefined> {
  const statuses: StatusUpdate[] = [];
  const events: EventRecord[] = [];
  // Two owners rendering the same object (e.g. MLService "a" revision "b-c" and MLService "a-b"
  // revision "c"): the first (in sorted owner order) keeps it; the other owner gets an Event.
  // Only keys and owner labels are remembered, not the objects.
  const seen = new Map<string, string>();
  const claimed = opts.claimed;
  const emitStatus = (u: StatusUpdate) => (opts.onStatus ? opts.onStatus(u) : statuses.push(u));
  const keep = (o: KubernetesObject): boolean => {
    const k = objectKey(o);
    let prev = seen.get(k);
    if (prev === undefined && claimed) {
      prev = claimed(o);
      if (prev !== undefined) opts.onClaimed?.(o, prev);
    }
    if (prev !== undefined) {
      const owner = o.metadata?.labels?.[LABELS.owner] ?? '?';
      opts.trace?.conflictLosers.add(owner);
      events.push({
        regarding: {
          kind: o.metadata?.labels?.[LABELS.ownerKind] ?? 'Unknown',
          namespace: o.metadata?.namespace ?? '',
          name: owner.split('.').slice(2).join('.'),
        },
        type: 'Warning',
        reason: 'NameConflict',
        message: `${o.kind} ${o.metadata?.namespace}/${o.metadata?.name} is already rendered for ${prev}; not rendered for ${owner}`,
      });
      return false;
    }
    seen.set(k, o.metadata?.labels?.[LABELS.owner] ?? '');
    return true;
  };
  // The current owner's rendered HTTPRoutes, for the gateway's verdict (route-status.ts).
  const judged: JudgedRoute[] = [];
  const judge = (label: string, o: KubernetesObject): void => {
    const j = judgedRoute(o, ir.routes);
    judged.push(j);
    const reads = opts.trace?.routeReads;
    if (reads) reads.set(label, [...(reads.get(label) ?? []), j.key]);
  };

  // Shared objects first: a public route finds its ReferenceGrant already there. (Their names
  // cannot collide with an owner's objects: no owner renders a ReferenceGrant or `kea-portal`.)
  for (const ns of ir.policyGrantNamespaces) {
    const g = policyGrant(ns, config) as KubernetesObject;
    if (keep(g)) yield g;
  }
  const portal = portalRoute(config) as KubernetesObject;
  if (keep(portal)) yield portal;
  const ngf = config.gatewayImplementation === 'ngf';
  if (ngf) {
    for (const p of [clientSettingsPolicy(config, ir.maxBodyBytes), policyUpstreamSettings(config)]) if (keep(p)) yield p;
  }

  for (const m of ir.mlServices) {
    const label = ownerLabelValue('MLService', m.namespace, m.name);
    if (m.accepted) {
      for (const r of m.revisions) {
        const svc = service(m, r) as KubernetesObject;
        if (keep(svc)) yield svc;
        const dep = deployment(m, r) as KubernetesObject;
        if (keep(dep)) yield dep;
      }
      const owner = mlsOwner(m);
      for (const o of [...internalGrants(owner, m.host, m.backends, config), internalRoute(owner, m.host, m.backends, config)] as KubernetesObject[]) {
        if (!keep(o)) continue;
        if (o.kind === 'HTTPRoute') judge(label, o);
        yield o;
      }
      if (ngf && m.revisions.length) {
        const p = modelUpstreamSettings(m);
        if (keep(p)) yield p;
      }
    }
    // Programmed: KEA's own verdict qualified by the gateway's on the routes just rendered.
    const conds = withGatewayVerdict(m.conditions, judged.splice(0), config.gateway);
    emitStatus({ kind: 'MLService', namespace: m.namespace, name: m.name, status: mlServiceStatus(m, conds, now) });
    events.push(...m.events, ...verdictEvents('MLService', m, m.conditions, conds));
  }

  const droppedVersions: string[] = [];
  const retainedApis: string[] = [];
  for (const a of ir.apiSchemas) {
    const label = ownerLabelValue('ApiSchema', a.namespace, a.name);
    if (a.retain) retainedApis.push(label);
    const rendered: KubernetesObject[] = [];
    if (a.program) rendered.push(policyConfigMap(a, a.program, config), ...(publicRoutes(a, a.program, config) as KubernetesObject[]));
    if (a.internalRoute) {
      const { host, backends } = a.internalRoute;
      rendered.push(
        ...(internalGrants(apiOwner(a), host, backends, config) as KubernetesObject[]),
        internalRoute(apiOwner(a), host, backends, config) as KubernetesObject,
      );
    }
    for (const o of rendered) {
      if (!keep(o)) continue;
      if (o.kind === 'HTTPRoute') judge(label, o);
      yield o;
    }
    rendered.length = 0;
    const conds = withGatewayVerdict(a.conditions, judged.splice(0), config.gateway);
    for (const v of a.history.kept) {
      if (!v.apply) continue;
      const cm = versionConfigMap(a, config, {
        name: v.name,
        version: v.version,
        digest: v.digest,
        publishedAt: v.publishedAt,
        openapi: v.text(),
      }) as KubernetesObject;
      if (keep(cm)) yield cm;
    }
    droppedVersions.push(...a.history.dropped);
    if (a.history.dropped.length) opts.trace?.droppedOwners.add(label);
    emitStatus({ kind: 'ApiSchema', namespace: a.namespace, name: a.name, status: apiSchemaStatus(a, conds, now) });
    events.push(...a.events, ...verdictEvents('ApiSchema', a, a.conditions, conds));
  }

  statuses.sort((x, y) => (`${x.kind}/${x.namespace}/${x.name}` < `${y.kind}/${y.namespace}/${y.name}` ? -1 : 1));
  events.sort((x, y) => {
    const kx = `${x.regarding.kind}/${x.regarding.namespace}/${x.regarding.name}/${x.reason}/${x.message}`;
    const ky = `${y.regarding.kind}/${y.regarding.namespace}/${y.regarding.name}/${y.reason}/${y.message}`;
    return kx < ky ? -1 : kx > ky ? 1 : 0;
  });
  const retainOwners = [...ir.mlServices.filter((m) => m.retain).map((m) => ownerLabelValue('MLService', m.namespace, m.name)), ...retainedApis].sort();
  return { statuses, events, retainOwners, droppedVersions: droppedVersions.sort() };
}

/** Takes every object of a render stream; returns them with the rest. */
export function drainRenderStream(stream: Generator<KubernetesObject, RenderRest, undefined>): RenderOutput {
  const objects: KubernetesObject[] = [];
  let r = stream.next();
  while (!r.done) {
    objects.push(r.value);
    r = stream.next();
  }
  return { objects, ...r.value };
}

/**
 * Render the IR into objects, statuses and events: {@link renderStream} collected, objects
 * sorted by kind (ConfigMap, Service, Deployment, ReferenceGrant, HTTPRoute,
 * ClientSettingsPolicy, UpstreamSettingsPolicy), namespace, name.
 * @param now RFC 3339 time used as lastTransitionTime of conditions whose status changed.
 */
export function render(ir: IR, config: ControllerConfig, now: string): RenderOutput {
  const out = drainRenderStream(renderStream(ir, config, now));
  out.objects.sort(compareObjects);
  return out;
}
