/**
 * Guard of the Gateway's `internal` listener (docs/adr/0009-internal-routes.md): a side check of
 * the controller, outside the reconcile pipeline (read-only, two API reads per run).
 *
 * Takes in: the {@link ControllerConfig} and a {@link KubeClient}.
 * Gives out: the problems that would let a route other than KEA's carry traffic on the internal
 * listener:
 *   - the Gateway's internal listener admits namespaces other than the system namespace:
 *     `allowedRoutes.namespaces.from` is `All`, or `Same` with the Gateway outside the system
 *     namespace, or a `Selector` other than exactly `kubernetes.io/metadata.name: <system ns>`
 *     (Gateway API v1 `RouteNamespaces`; unset `from` means `Same`);
 *   - an HTTPRoute in the system namespace that KEA did not render (no
 *     `kea.dev/managed-by=kea` label) attaches to the internal listener (a parentRef to the
 *     Gateway naming the internal listener, or naming no listener at all).
 * Routes of other namespaces need no check: with the listener restricted, the gateway refuses
 * them (their status: `Accepted=False`, reason `NotAllowedByListeners`).
 */
import type { KubernetesObject } from '@kubernetes/client-node';
import { LABELS, MANAGED_BY_VALUE } from '../lib/api/types.js';
import { KubeError, RESOURCES, type KubeClient } from './kube/client.js';
import type { ControllerConfig } from './model.js';

/** One finding of {@link checkInternalListener}. */
export interface ListenerProblem {
  kind: 'Gateway' | 'HTTPRoute';
  namespace: string;
  name: string;
  message: string;
}

interface Listener {
  name: string;
  allowedRoutes?: { namespaces?: { from?: string; selector?: { matchLabels?: Record<string, string>; matchExpressions?: unknown[] } } };
}
type Gateway = KubernetesObject & { spec?: { listeners?: Listener[] } };
type Route = KubernetesObject & { spec?: { parentRefs?: Array<{ group?: string; kind?: string; namespace?: string; name: string; sectionName?: string }> } };

/** Why a listener's `allowedRoutes` admits more than the system namespace, or undefined. */
export function listenerAdmitsOthers(listener: Listener, gatewayNamespace: string, systemNamespace: string): string | undefined {
  const ns = listener.allowedRoutes?.namespaces;
  const from = ns?.from ?? 'Same';
  if (from === 'Same')
    return gatewayNamespace === systemNamespace ? undefined : `admits routes of the Gateway's namespace ${gatewayNamespace}, not of ${systemNamespace} only`;
  if (from === 'Selector') {
    const labels = ns?.selector?.matchLabels ?? {};
    const only =
      Object.keys(labels).length === 1 && labels['kubernetes.io/metadata.name'] === systemNamespace && !(ns?.selector?.matchExpressions ?? []).length;
    return only ? undefined : `its namespace selector is not exactly kubernetes.io/metadata.name=${systemNamespace}`;
  }
  return `allowedRoutes.namespaces.from is ${from}: routes of any namespace can attach`;
}

/**
 * Reads the Gateway and the system namespace's HTTPRoutes and returns the problems (see the
 * module comment), sorted. A missing Gateway is not a problem (not installed yet).
 * @throws KubeError when the API server refuses a read (e.g. 403: RBAC lacks `get gateways`).
 */
export async function checkInternalListener(client: KubeClient, config: ControllerConfig): Promise<ListenerProblem[]> {
  const { namespace: gwNs, name: gwName, internalListener } = config.gateway;
  const sys = config.systemNamespace;
  const out: ListenerProblem[] = [];
  let gw: Gateway | undefined;
  try {
    gw = await client.get<Gateway>(RESOURCES['gateway.networking.k8s.io/v1/Gateway'], gwNs, gwName);
  } catch (e) {
    if (!(e instanceof KubeError && e.statusCode === 404)) throw e;
  }
  const listener = gw?.spec?.listeners?.find((l) => l.name === internalListener);
  if (gw && listener) {
    const why = listenerAdmitsOthers(listener, gwNs, sys);
    if (why)
      out.push({
        kind: 'Gateway',
        namespace: gwNs,
        name: gwName,
        message: `listener ${internalListener} ${why}; a tenant could attach a route for another tenant's internal host (set allowedRoutes.namespaces.from: Same, docs/adr/0009-internal-routes.md)`,
      });
  }
  const routes = (await client.list(RESOURCES['gateway.networking.k8s.io/v1/HTTPRoute'], { namespace: sys })).items as Route[];
  for (const r of routes) {
    if (r.metadata?.labels?.[LABELS.managedBy] === MANAGED_BY_VALUE) continue;
    const attaches = (r.spec?.parentRefs ?? []).some(
      (p) =>
        (p.kind ?? 'Gateway') === 'Gateway' &&
        (p.group ?? 'gateway.networking.k8s.io') === 'gateway.networking.k8s.io' &&
        p.name === gwName &&
        (p.namespace ?? sys) === gwNs &&
        (p.sectionName === undefined || p.sectionName === internalListener),
    );
    if (attaches)
      out.push({
        kind: 'HTTPRoute',
        namespace: sys,
        name: r.metadata?.name ?? '',
        message: `HTTPRoute ${sys}/${r.metadata?.name} is not rendered by KEA and attaches to the internal listener ${internalListener}`,
      });
  }
  return out.sort((a, b) => `${a.kind}/${a.name}`.localeCompare(`${b.kind}/${b.name}`));
}
