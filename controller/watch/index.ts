/**
 * Stage `watch`.
 *
 * Takes in: a {@link KubeClient} and the system namespace (from the ControllerConfig).
 * Gives out: a change signal (`onChange`, one call per informer event, to feed the batch
 * stage), a {@link ClusterSnapshot} built from the informer caches on demand, and the live
 * copies of the objects KEA owns (label `kea.dev/managed-by=kea`) for the apply stage
 * (hash comparison, drift repair, pruning).
 *
 * Informers: ApiSchemas, MLServices, Services, ReferenceGrants (all namespaces); ConfigMaps
 * in the system namespace labelled `kea.dev/component=api-version` (their `openapi.json`
 * cached deflated, see watch/packed.ts {@link packVersionConfigMap}); and the kinds KEA emits,
 * selected by `kea.dev/managed-by=kea`: ConfigMaps cached as metadata only, Deployments as
 * metadata and status, HTTPRoutes as metadata and a slim `status.parents` ({@link slimRoute}:
 * the gateway's verdict, read into the owners' `Programmed` condition, render/route-status.ts);
 * owned Services and ReferenceGrants come from the full caches. Each informer restarts with
 * backoff after an error, relists periodically and on 410 Gone.
 */
import type { KubernetesObject } from '@kubernetes/client-node';
import { LABELS, MANAGED_BY_VALUE, type ApiSchema, type MLService } from '../../lib/api/types.js';
import { COMPONENT_API_VERSION } from '../../lib/policy/config.js';
import type { ClusterSnapshot, RouteParentStatus } from '../model.js';
import { packVersionConfigMap } from './packed.js';
import { RESOURCES, type KubeClient } from '../kube/client.js';
import { objectKey } from '../../lib/kube/objects.js';
import { Informer, type InformerHealth, type InformerOptions, type InformerSpec } from './informer.js';

export { Informer, slim, type InformerHealth, type InformerSpec } from './informer.js';

const MANAGED = `${LABELS.managedBy}=${MANAGED_BY_VALUE}`;

export interface ClusterWatcherOptions {
  systemNamespace: string;
  /**
   * Called for every informer event and completed (re)list, with the informer's name, the
   * verb and (for events) the object as cached.
   */
  onChange: InformerOptions['onChange'];
  onError?: InformerOptions['onError'];
  /** Full relist period in ms (default 300 000). */
  relistMs?: number;
  /**
   * Also cache KEA's own NGF policies (ClientSettingsPolicy, UpstreamSettingsPolicy; metadata
   * only), which render emits when the gateway implementation is `ngf`. Only when their CRDs
   * are served: listing an unserved kind fails with 404 forever.
   */
  ngfPolicies?: boolean;
}

/**
 * Keeps of a Service what the controller reads: its metadata and `spec.ports` (name, port,
 * protocol). In place; returns the object.
 */
export function slimService(svc: KubernetesObject): KubernetesObject {
  const o = svc as KubernetesObject & { spec?: { ports?: Array<{ name?: string; port: number; protocol?: string }> }; status?: unknown };
  const ports = o.spec?.ports;
  o.spec = ports
    ? {
        ports: ports.map((p) => ({
          ...(p.name !== undefined ? { name: p.name } : {}),
          port: p.port,
          ...(p.protocol !== undefined ? { protocol: p.protocol } : {}),
        })),
      }
    : {};
  delete o.status;
  return o;
}

/**
 * Keeps of an HTTPRoute what the controller reads: its metadata (owner label, applied hash,
 * generation) and of `status.parents` (Gateway API RouteParentStatus) each entry's parentRef,
 * controllerName and conditions' type, status, reason, message and observedGeneration (no
 * lastTransitionTime); the spec is dropped. In place; returns the object.
 */
export function slimRoute(route: KubernetesObject): KubernetesObject {
  const o = route as KubernetesObject & { spec?: unknown; status?: { parents?: RouteParentStatus[] } };
  delete o.spec;
  const parents = o.status?.parents;
  if (!Array.isArray(parents) || !parents.length) {
    delete o.status;
    return o;
  }
  const def = <T>(k: string, v: T | undefined): Record<string, T> => (v !== undefined && v !== null ? { [k]: v } : {});
  o.status = {
    parents: parents.map((p) => {
      const r = p.parentRef ?? ({} as RouteParentStatus['parentRef']);
      return {
        parentRef: {
          ...def('group', r.group),
          ...def('kind', r.kind),
          ...def('namespace', r.namespace),
          name: r.name,
          ...def('sectionName', r.sectionName),
          ...def('port', r.port),
        },
        ...def('controllerName', p.controllerName),
        conditions: (p.conditions ?? []).map((c) => ({
          type: c.type,
          status: c.status,
          ...def('reason', c.reason),
          ...def('message', c.message),
          ...def('observedGeneration', c.observedGeneration),
        })),
      };
    }),
  };
  return o;
}

/** The informers of KEA's controller and the views built from them. */
export class ClusterWatcher {
  readonly informers: Record<
    'apiSchemas' | 'mlServices' | 'services' | 'referenceGrants' | 'versions' | 'ownedRoutes' | 'ownedDeployments' | 'ownedConfigMaps',
    Informer
  > &
    Partial<Record<'ownedClientSettingsPolicies' | 'ownedUpstreamSettingsPolicies', Informer>>;

  constructor(client: KubeClient, opts: ClusterWatcherOptions) {
    const io: InformerOptions = { onChange: opts.onChange, onError: opts.onError, relistMs: opts.relistMs };
    const r = (k: string) => RESOURCES[k];
    const mk = (name: string, ref: string, extra: Omit<InformerSpec, 'name' | 'ref'> = {}) => new Informer(client, { name, ref: r(ref), ...extra }, io);
    this.informers = {
      apiSchemas: mk('apischemas', 'kea.dev/v1alpha1/ApiSchema'),
      mlServices: mk('mlservices', 'kea.dev/v1alpha1/MLService'),
      // Services: the graph reads only spec.ports (hand-written targets), apply only the
      // metadata of KEA's own; the rest (clusterIPs, selector, status, ...) is dropped.
      services: mk('services', 'v1/Service', { transform: slimService }),
      referenceGrants: mk('referencegrants', 'gateway.networking.k8s.io/v1beta1/ReferenceGrant'),
      versions: mk('api-versions', 'v1/ConfigMap', {
        namespace: opts.systemNamespace,
        labelSelector: `${LABELS.component}=${COMPONENT_API_VERSION}`,
        // The OpenAPI documents are cached deflated (~7× smaller); graph/versions.ts inflates
        // one only when a diff or a hand-made ConfigMap needs its text.
        transform: packVersionConfigMap,
      }),
      // Owned objects: metadata (hash annotation, labels, generation, resourceVersion); routes
      // also keep the gateway's verdict (status.parents, slimmed), spec dropped.
      ownedRoutes: mk('owned-httproutes', 'gateway.networking.k8s.io/v1/HTTPRoute', { labelSelector: MANAGED, transform: slimRoute }),
      // Deployments: metadata + status (Ready reads availableReplicas), spec dropped.
      ownedDeployments: mk('owned-deployments', 'apps/v1/Deployment', { labelSelector: MANAGED, dropSpec: true }),
      // KEA emits ConfigMaps only in the system namespace; watching there keeps RBAC to a Role (manifests/rbac).
      ownedConfigMaps: mk('owned-configmaps', 'v1/ConfigMap', { namespace: opts.systemNamespace, labelSelector: MANAGED, metadataOnly: true }),
      ...(opts.ngfPolicies
        ? {
            ownedClientSettingsPolicies: mk('owned-clientsettingspolicies', 'gateway.nginx.org/v1alpha1/ClientSettingsPolicy', {
              labelSelector: MANAGED,
              metadataOnly: true,
            }),
            ownedUpstreamSettingsPolicies: mk('owned-upstreamsettingspolicies', 'gateway.nginx.org/v1alpha1/UpstreamSettingsPolicy', {
              labelSelector: MANAGED,
              metadataOnly: true,
            }),
          }
        : {}),
    };
  }

  start(): void {
    for (const i of Object.values(this.informers)) i.start();
  }

  stop(): void {
    for (const i of Object.values(this.informers)) i.stop();
  }

  /** True once every informer has completed its first list. */
  get synced(): boolean {
    return Object.values(this.informers).every((i) => i.synced);
  }

  /** Resolves when every informer has completed its first list. */
  async waitForSync(): Promise<void> {
    await Promise.all(Object.values(this.informers).map((i) => i.waitForSync()));
  }

  /** A consistent-enough view of the world for the pure stages (arrays are fresh copies). */
  snapshot(): ClusterSnapshot {
    const live = (o: KubernetesObject) => !o.metadata?.deletionTimestamp;
    return {
      apiSchemas: this.informers.apiSchemas.list().filter(live) as unknown as ApiSchema[],
      mlServices: this.informers.mlServices.list().filter(live) as unknown as MLService[],
      services: this.informers.services.list().filter(live),
      referenceGrants: this.informers.referenceGrants.list().filter(live),
      publishedVersions: this.informers.versions.list().filter(live),
      deployments: this.informers.ownedDeployments.list().filter(live),
      routes: this.informers.ownedRoutes.list().filter(live),
    };
  }

  /** Live objects labelled `kea.dev/managed-by=kea` of every kind KEA emits. */
  owned(): KubernetesObject[] {
    const isOwned = (o: KubernetesObject) => o.metadata?.labels?.[LABELS.managedBy] === MANAGED_BY_VALUE;
    return [
      ...this.informers.ownedRoutes.list(),
      ...this.informers.ownedDeployments.list(),
      ...this.informers.ownedConfigMaps.list(),
      ...(this.informers.ownedClientSettingsPolicies?.list() ?? []),
      ...(this.informers.ownedUpstreamSettingsPolicies?.list() ?? []),
      ...this.informers.services.list().filter(isOwned),
      ...this.informers.referenceGrants.list().filter(isOwned),
    ];
  }

  /** Map of {@link objectKey} → live owned object. */
  ownedIndex(): Map<string, KubernetesObject> {
    const m = new Map<string, KubernetesObject>();
    for (const o of this.owned()) m.set(objectKey(o), o);
    return m;
  }

  /** The live ApiSchema or MLService (for status comparison). */
  getResource(kind: 'ApiSchema' | 'MLService', namespace: string, name: string): KubernetesObject | undefined {
    return (kind === 'ApiSchema' ? this.informers.apiSchemas : this.informers.mlServices).get(namespace, name);
  }

  health(): InformerHealth[] {
    return Object.values(this.informers).map((i) => i.health());
  }

  /** Latest event seen by any informer (epoch ms, 0 = none). */
  lastEventAt(): number {
    return Math.max(0, ...this.health().map((h) => Math.max(h.lastEventAt, h.lastSyncAt)));
  }
}
