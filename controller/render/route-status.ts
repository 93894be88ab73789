/**
 * The gateway's verdict on KEA's HTTPRoutes, as the `Programmed` condition of their owner
 * (issue 11 item 3). Pure: no I/O.
 *
 * Takes in: the HTTPRoutes an owner (ApiSchema, MLService) is rendered with this run, the live
 * copies of KEA's HTTPRoutes as the watch stage caches them (metadata and a slim
 * `status.parents`, watch/index.ts `slimRoute`), KEA's Gateway (ControllerConfig `gateway`),
 * and the `Programmed` condition the IR decided from KEA's own checks.
 * Gives out: the `Programmed` condition the owner's status carries:
 *  - `True` (the IR's reason and message, plus which Gateway accepted what) only when every
 *    route's live copy is what KEA renders now and, for its parentRef to KEA's Gateway, the
 *    gateway wrote `Accepted=True` and `ResolvedRefs=True` with `observedGeneration` equal to
 *    the route's `metadata.generation` (Gateway API v1.2 RouteParentStatus, GEP-1364);
 *  - `False` with the gateway's own reason (e.g. `BackendNotFound`, `RefNotPermitted`,
 *    `NoMatchingListenerHostname`, `NotAllowedByListeners`) and message when it wrote
 *    `Accepted=False` or `ResolvedRefs=False` (or `PartiallyInvalid=True`: rules dropped) for
 *    the route's current generation;
 *  - `Unknown`, reason {@link PENDING_REASON}, otherwise: a route not created yet, about to be
 *    rewritten by this run's apply (its `kea.dev/applied-hash` differs from the desired one),
 *    or no status from the gateway for its current generation yet.
 * A condition the IR already set to `False` or `Unknown` (nothing rendered, invalid spec, ...)
 * is left as it is: the gateway's verdict only qualifies what KEA routes.
 *
 * Several controllers may have written entries for KEA's parentRef (e.g. a previous gateway's
 * stale entries after a swap): only conditions for the route's current generation count, and
 * any refusal among them wins.
 */
import type { KubernetesObject } from '@kubernetes/client-node';
import type { ControllerConfig, ObservedRoute, RouteParentCondition, RouteParentStatus } from '../model.js';
import type { ConditionIR } from '../ir/index.js';
import { APPLIED_HASH, desiredHash } from '../kube/applied-hash.js';

/** Reason of `Programmed=Unknown` while the gateway's verdict on the current routes is not in. */
export const PENDING_REASON = 'Pending';

/** Why a route is pending when the gateway wrote nothing for KEA's Gateway (or it does not exist yet). */
const NO_VERDICT = 'no status from the gateway yet';

/** Longest gateway message quoted per route (characters); longer ones are cut with `…`. */
export const MAX_QUOTED_MESSAGE = 512;

/** The gateway's verdict on one route. */
export type RouteVerdict =
  | { state: 'accepted' }
  | { state: 'pending'; why: string }
  | { state: 'refused'; type: string; status: string; reason: string; message: string; controllerName?: string };

const GATEWAY_GROUP = 'gateway.networking.k8s.io';

/**
 * The `status.parents` entries of `route` whose parentRef is KEA's Gateway (group
 * `gateway.networking.k8s.io` and kind `Gateway` by default, namespace by default the route's;
 * any sectionName), in the order the gateway wrote them.
 */
export function gatewayParents(route: ObservedRoute, gateway: Pick<ControllerConfig['gateway'], 'namespace' | 'name'>): RouteParentStatus[] {
  const routeNs = route.metadata?.namespace ?? '';
  return (route.status?.parents ?? []).filter((p) => {
    const r = p.parentRef ?? ({} as RouteParentStatus['parentRef']);
    return (
      (r.group ?? GATEWAY_GROUP) === GATEWAY_GROUP &&
      (r.kind ?? 'Gateway') === 'Gateway' &&
      (r.namespace ?? routeNs) === gateway.namespace &&
      r.name === gateway.name
    );
  });
}

/**
 * The gateway's verdict on one route (see the module comment).
 * @param live the route's live copy, undefined when it does not exist (yet).
 * @param current false when this run's apply is about to rewrite the route (its live copy is
 *   not what KEA renders now): the gateway has not judged what KEA wants yet.
 */
export function routeVerdict(
  live: ObservedRoute | undefined,
  current: boolean,
  gateway: Pick<ControllerConfig['gateway'], 'namespace' | 'name'>,
): RouteVerdict {
  // Not created yet and created without a status read the same: KEA creating a route is no
  // news for its owner (the incremental reconcile does not render it again for that).
  const entries = live ? gatewayParents(live, gateway) : [];
  if (!live || !entries.length) return { state: 'pending', why: NO_VERDICT };
  if (!current) return { state: 'pending', why: 'being updated by this reconcile' };
  const generation = live.metadata?.generation;
  const atGeneration = (c: RouteParentCondition) => c.observedGeneration === generation;
  let accepted = false;
  for (const order of [
    ['Accepted', 'False'],
    ['ResolvedRefs', 'False'],
    ['PartiallyInvalid', 'True'],
  ] as const) {
    for (const e of entries) {
      const c = (e.conditions ?? []).find((x) => x.type === order[0] && x.status === order[1] && atGeneration(x));
      if (c)
        return {
          state: 'refused',
          type: c.type,
          status: c.status,
          reason: c.reason || (order[1] === 'False' ? `Not${c.type}` : c.type),
          message: c.message ?? '',
          ...(e.controllerName ? { controllerName: e.controllerName } : {}),
        };
    }
  }
  for (const e of entries) {
    const ok = (t: string) => (e.conditions ?? []).some((x) => x.type === t && x.status === 'True' && atGeneration(x));
    if (ok('Accepted') && ok('ResolvedRefs')) accepted = true;
  }
  if (accepted) return { state: 'accepted' };
  const seen = [...new Set(entries.flatMap((e) => (e.conditions ?? []).map((c) => c.observedGeneration)).filter((g): g is number => g !== undefined))].sort(
    (a, b) => a - b,
  );
  return {
    state: 'pending',
    why:
      seen.length && !seen.includes(generation as number)
        ? `the gateway's status is for generation ${seen.join(', ')}, the route is at generation ${generation}`
        : `no Accepted and ResolvedRefs verdict from the gateway for generation ${generation} yet`,
  };
}

const quote = (s: string): string => (s.length > MAX_QUOTED_MESSAGE ? `${s.slice(0, MAX_QUOTED_MESSAGE - 1)}…` : s);

/** A route rendered this run with what is known of its live copy: the input of {@link programmedCondition}. */
export interface JudgedRoute {
  /** `<namespace>/<name>`. */
  key: string;
  live: ObservedRoute | undefined;
  /** The live copy carries the desired object's `kea.dev/applied-hash` (apply will not rewrite it). */
  current: boolean;
}

/**
 * A desired HTTPRoute with its live copy from `live` (keyed `<namespace>/<name>`): current when
 * the live copy's `kea.dev/applied-hash` is the desired object's hash (kube/applied-hash.ts
 * `desiredHash`, the same test apply makes before writing).
 */
export function judgedRoute(desired: KubernetesObject, live: ReadonlyMap<string, KubernetesObject> | undefined): JudgedRoute {
  const key = `${desired.metadata?.namespace ?? ''}/${desired.metadata?.name ?? ''}`;
  const l = live?.get(key);
  return { key, live: l, current: l !== undefined && l.metadata?.annotations?.[APPLIED_HASH] === desiredHash(desired) };
}

/**
 * `conds` with its `Programmed` condition replaced by {@link programmedCondition} over `routes`
 * (the others unchanged; a new array, `conds` is not modified).
 */
export function withGatewayVerdict(
  conds: readonly ConditionIR[],
  routes: JudgedRoute[],
  gateway: Pick<ControllerConfig['gateway'], 'namespace' | 'name'>,
): readonly ConditionIR[] {
  if (!routes.length) return conds;
  return conds.map((c) => (c.type === 'Programmed' ? programmedCondition(c, routes, gateway) : c));
}

/**
 * The `Programmed` condition of an owner given the gateway's verdict on its routes (see the
 * module comment). Routes are judged in the order given; the reason of a refusal is the first
 * refused route's, the message names every refused route.
 * @param programmed the IR's `Programmed` condition; returned unchanged unless `True`, or when
 *   `routes` is empty (nothing to judge).
 * @param routes this run's rendered routes of the owner: `<namespace>/<name>`, the live copy
 *   (undefined: none yet) and whether that live copy is what KEA renders now.
 */
export function programmedCondition(
  programmed: ConditionIR,
  routes: JudgedRoute[],
  gateway: Pick<ControllerConfig['gateway'], 'namespace' | 'name'>,
): ConditionIR {
  if (programmed.status !== 'True' || !routes.length) return programmed;
  const gw = `Gateway ${gateway.namespace}/${gateway.name}`;
  const verdicts = routes.map((r) => ({ key: r.key, v: routeVerdict(r.live, r.current, gateway) }));
  const refused = verdicts.filter((x): x is { key: string; v: Extract<RouteVerdict, { state: 'refused' }> } => x.v.state === 'refused');
  if (refused.length) {
    const first = refused[0].v;
    const lines = refused.map(
      ({ key, v }) => `HTTPRoute ${key}: ${v.type}=${v.status} (${v.reason}${v.controllerName ? `, ${v.controllerName}` : ''}): ${quote(v.message)}`,
    );
    return {
      type: programmed.type,
      status: 'False',
      reason: first.reason,
      message: `${gw} did not program ${refused.length} of ${routes.length} HTTPRoute(s): ${lines.join('; ')}`,
    };
  }
  const pending = verdicts.filter((x): x is { key: string; v: Extract<RouteVerdict, { state: 'pending' }> } => x.v.state === 'pending');
  if (pending.length) {
    return {
      type: programmed.type,
      status: 'Unknown',
      reason: PENDING_REASON,
      message: `${programmed.message}; waiting for the verdict of ${gw} on ${pending.length} of ${routes.length} HTTPRoute(s): ${pending.map(({ key, v }) => `${key}: ${v.why}`).join('; ')}`,
    };
  }
  return { ...programmed, message: `${programmed.message}; accepted with references resolved by ${gw}: HTTPRoute ${routes.map((r) => r.key).join(', ')}` };
}

/**
 * What of a route's status the `Programmed` condition reads, as a string for the incremental
 * reconcile's input token (controller/incremental.ts): the route's generation and
 * `kea.dev/applied-hash` and, per entry for KEA's Gateway, the controller and each condition's
 * type, status, reason, message and observedGeneration (not lastTransitionTime). Empty when the
 * gateway wrote no entry for KEA's Gateway: a route KEA just created changes nothing until the
 * gateway speaks.
 */
export function routeStatusToken(route: ObservedRoute, gateway: Pick<ControllerConfig['gateway'], 'namespace' | 'name'>): string {
  const entries = gatewayParents(route, gateway);
  if (!entries.length) return '';
  const md = route.metadata ?? {};
  const conds = entries.map(
    (e) =>
      `${e.controllerName ?? ''}|${(e.conditions ?? []).map((c) => `${c.type}=${c.status}/${c.reason ?? ''}/${c.observedGeneration ?? ''}/${c.message ?? ''}`).join('|')}`,
  );
  return `${md.namespace ?? ''}/${md.name ?? ''}@${md.generation ?? ''}#${md.annotations?.[APPLIED_HASH] ?? ''}:${conds.join('\u0001')}`;
}
