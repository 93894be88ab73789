/**
 * Stage 5 of the controller pipeline: **render**.
 *
 * Takes in: an {@link IR} (desired state), the {@link ControllerConfig}, the existing statuses
 * (inside the IR's resources, for condition lastTransitionTime), the live HTTPRoutes (IR
 * `routes`: the gateway's verdict, which qualifies `Programmed`, see ./route-status.ts) and the
 * time `now`.
 * Gives out: a {@link RenderOutput}: every Kubernetes object KEA wants to exist, the status of
 * every ApiSchema and MLService, and Events for errors. Plain JSON objects:
 *   - per MLService revision: an apps/v1 Deployment and a v1 Service `<mls>-<revision>`;
 *   - per MLService: an internal HTTPRoute named after its hostname
 *     `<mls>.<ns>.<internalDomain>` (graph/names.ts internalRouteName: dots → `-`, plus a
 *     hash) in the **system namespace** (listener `internal`, one
 *     header match `x-kea-internal-token` per accepted token: the current one, plus the
 *     previous/next during a rotation) whose cross-namespace backendRefs split traffic by
 *     weight in percent (weight-0 revisions kept at 0), and a ReferenceGrant of the same name in
 *     the MLService's namespace letting system-namespace HTTPRoutes reach exactly its revision
 *     Services (docs/adr/0009-internal-routes.md: tenants can neither read the token nor attach
 *     routes to the internal listener);
 *   - per ApiSchema in `enforce` mode: public HTTPRoute(s) `kea-api-<name>` (listener `public`),
 *     one rule per operation (method + path match, see graph/paths.ts), a RequestHeaderModifier
 *     setting `x-kea-operation: <ns>/<name>/<operationId>`, backendRef the policy server; at
 *     most 16 rules per route (Gateway API limit), further rules in `kea-api-<name>-2`, ...;
 *     in `passthrough` mode one rule PathPrefix basePath with a URLRewrite (ReplacePrefixMatch
 *     `/`), a RequestHeaderModifier removing `Authorization` and `Cookie` (unless
 *     `spec.security.forwardCredentials` keeps them), a ResponseHeaderModifier setting
 *     `X-Content-Type-Options: nosniff` and the Content-Security-Policy, and the weighted
 *     backendRefs of the target itself;
 *   - per enforce-mode ApiSchema with a hand-written Service target, and per ApiSchema with
 *     a Service target and `spec.source.openapi` (programmed or not: discovery fetches the
 *     served document through it): an internal HTTPRoute `<name>.<ns>.api.<internalDomain>`
 *     (same host; system namespace) with one backendRef, and its ReferenceGrant beside the
 *     Service;
 *   - per ApiSchema: a ConfigMap `kea-api-<ns>-<name>-<hash8>` (lib/policy/config.ts
 *     apiConfigMapName: collision-free across namespaces) in the system namespace with
 *     `policy.json` (canonical JSON of the PolicyService) and `openapi.json`
 *     (lib/openapi/generate.ts);
 *   - per ApiSchema: its version history, one ConfigMap per published version
 *     (`kea-apiver-<ns>-<name>-<hash8>-<digest10>`, label `kea.dev/component=api-version`, see
 *     {@link versionConfigMap}): the current document is published at `now` when its digest
 *     (sha256 of the `openapi.json` text) is new; a kept version is rendered only when it is
 *     new or its live labels/annotations/owner differ from what it should carry (republished
 *     after a rollback, made by hand, written by an older KEA); a kept version left out is not
 *     pruned (apply keeps api-version ConfigMaps while their ApiSchema lives), so render output
 *     does not carry every published document on every run; at most MAX_PUBLISHED_VERSIONS are kept (the oldest go to
 *     `RenderOutput.droppedVersions`); status `versions` (newest first) and `lastDiff`
 *     (lib/openapi/diff.ts between the two newest, at most {@link MAX_STATUS_CHANGES} changes);
 *   - per namespace with enforce-mode public routes: a ReferenceGrant
 *     `kea-policy-from-<ns>` in the system namespace (HTTPRoutes of that namespace → the
 *     policy server Service);
 *   - the gateway-level HTTPRoute `kea-portal` (system namespace): /docs, /openapi,
 *     /openapi.json, /auth, /services, /router, /logs, /methods → policy server;
 *   - with `config.gatewayImplementation: ngf` only, nginx-gateway-fabric's policies
 *     (`gateway.nginx.org/v1alpha1`): a ClientSettingsPolicy `kea-client-settings` on the
 *     Gateway (body cap {@link gatewayBodyMaxSize} of `IR.maxBodyBytes`, so the policy server
 *     answers 413 problem+json), an UpstreamSettingsPolicy `kea-policy-upstream` (system
 *     namespace, the policy server Service) and one `kea-upstream-<mls>` per MLService (its
 *     revision Services): upstream keep-alive.
 * Every object is labelled `kea.dev/managed-by=kea`, `kea.dev/owner=<Kind>.<ns>.<name>` and
 * `kea.dev/owner-kind`; objects in the owner's namespace also carry an ownerReference to it
 * (cross-namespace ownerReferences are not allowed by Kubernetes, so those get labels only).
 * Objects are sorted by kind (ConfigMap, Service, Deployment, ReferenceGrant, HTTPRoute,
 * ClientSettingsPolicy, UpstreamSettingsPolicy),
 * namespace and name. Pure and deterministic; no I/O.
 */
import type { KubernetesObject, V1ConfigMap, V1Container, V1Deployment, V1OwnerReference, V1Service, V1Volume } from '@kubernetes/client-node';
import type { IHTTPRoute } from '@kubernetes-models/gateway-api/gateway.networking.k8s.io/v1';
import type { IReferenceGrant } from '@kubernetes-models/gateway-api/gateway.networking.k8s.io/v1beta1';
import { API_VERSION, LABELS, MANAGED_BY_VALUE, type ApiSchemaStatus, type Condition, type MLServiceStatus } from '../../lib/api/types.js';
import type { OpenAPIObject } from '../../lib/openapi/generate.js';
import { diffCached, generateCached, policyJsonText } from '../ir/memo.js';
import {
  COMPONENT_API_CONFIG,
  COMPONENT_API_VERSION,
  DEFAULT_CONTENT_SECURITY_POLICY,
  INTERNAL_TOKEN_HEADER,
  OPENAPI_KEY,
  OPERATION_HEADER,
  POLICY_CONFIG_KEY,
  apiConfigMapName,
  apiVersionConfigMapName,
} from '../../lib/policy/config.js';
import { type ControllerConfig, type EventRecord, MAX_PUBLISHED_VERSIONS, type RenderOutput, type StatusUpdate, ownerLabelValue } from '../model.js';
import {
  API_VERSION_LABEL,
  type PublishedEntry,
  VERSION_ANNOTATIONS,
  sortNewestFirst,
  PORTAL_EXACT_PATHS,
  PORTAL_PATH_PREFIXES,
  PORTAL_ROUTE_NAME,
  internalRouteName,
  policyGrantName,
  publicRouteName,
} from '../graph/index.js';
import { type ApiSchemaIR, type BackendIR, type ConditionIR, type IR, type MLServiceIR, type RevisionIR, type StreamIR, DEFAULT_MAX_BODY_BYTES, canonicalJson, genOptions } from '../ir/index.js';
import { MODEL_MOUNT, PVC_MOUNT, STORAGE_INITIALIZER_IMAGE } from '../ir/runtimes.js';
import { type JudgedRoute, judgedRoute, withGatewayVerdict } from './route-status.js';

/** Gateway API limit on rules per HTTPRoute (v1.2.1 CRD `maxItems: 16`). */
export const MAX_RULES_PER_ROUTE = 16;
/** ConfigMap data limit (1 MiB, etcd object limit), minus headroom for metadata. */
export const MAX_CONFIGMAP_BYTES = 1_000_000;
/** Default port of the Gateway's internal listener (Topology). */
export const DEFAULT_INTERNAL_PORT = 8081;

interface Owner {
  kind: string;
  namespace: string;
  name: string;
  uid?: string;
  apiVersion?: string;
}

/* ------------------------------------------------------------ metadata */

function metadata(name: string, namespace: string, owner: Owner, extraLabels: Record<string, string> = {}, annotations?: Record<string, string>) {
  const labels: Record<string, string> = {
    [LABELS.managedBy]: MANAGED_BY_VALUE,
    [LABELS.owner]: ownerLabelValue(owner.kind, owner.namespace, owner.name),
    [LABELS.ownerKind]: owner.kind,
    ...extraLabels,
  };
  const ownerReferences: V1OwnerReference[] | undefined =
    owner.uid && owner.namespace === namespace
      ? [{ apiVersion: owner.apiVersion ?? API_VERSION, kind: owner.kind, name: owner.name, uid: owner.uid, controller: true, blockOwnerDeletion: true }]
      : undefined;
  return { name, namespace, labels, ...(annotations ? { annotations } : {}), ...(ownerReferences ? { ownerReferences } : {}) };
}

const mlsOwner = (m: MLServiceIR): Owner => ({ kind: 'MLService', namespace: m.namespace, name: m.name, uid: m.uid });
const apiOwner = (a: ApiSchemaIR): Owner => ({ kind: 'ApiSchema', namespace: a.namespace, name: a.name, uid: a.uid });

function parentRef(config: ControllerConfig, section: 'public' | 'internal') {
  return {
    group: 'gateway.networking.k8s.io',
    kind: 'Gateway',
    namespace: config.gateway.namespace,
    name: config.gateway.name,
    sectionName: section === 'public' ? config.gateway.publicListener : config.gateway.internalListener,
  };
}

/** A backendRef with Gateway API defaults spelled out (so a live object compares equal). */
function backendRef(b: BackendIR, routeNamespace: string) {
  return { group: '', kind: 'Service', name: b.name, ...(b.namespace !== routeNamespace ? { namespace: b.namespace } : {}), port: b.port, weight: b.weight };
}

/* ------------------------------------------------------------ MLService objects */

function selector(m: MLServiceIR, r: RevisionIR): Record<string, string> {
  return { [LABELS.owner]: ownerLabelValue('MLService', m.namespace, m.name), [LABELS.revision]: r.name };
}

function probe(path: string, kind: 'readiness' | 'liveness') {
  return {
    httpGet: { path, port: 'http', scheme: 'HTTP' },
    initialDelaySeconds: kind === 'readiness' ? 5 : 30,
    periodSeconds: kind === 'readiness' ? 5 : 10,
    timeoutSeconds: 2,
    successThreshold: 1,
    failureThreshold: kind === 'readiness' ? 3 : 6,
  };
}

function deployment(m: MLServiceIR, r: RevisionIR): V1Deployment {
  const sel = selector(m, r);
  const volumes: V1Volume[] = [];
  const mounts: Array<{ name: string; mountPath: string; readOnly?: boolean }> = [];
  const initContainers: V1Container[] = [];
  if (r.model?.download) {
    volumes.push({ name: 'kea-model', emptyDir: {} });
    mounts.push({ name: 'kea-model', mountPath: MODEL_MOUNT, readOnly: true });
    initContainers.push({
      name: 'storage-initializer',
      image: STORAGE_INITIALIZER_IMAGE,
      args: [r.model.download.uri, MODEL_MOUNT],
      volumeMounts: [{ name: 'kea-model', mountPath: MODEL_MOUNT }],
    });
  } else if (r.model?.pvcClaim) {
    volumes.push({ name: 'kea-model', persistentVolumeClaim: { claimName: r.model.pvcClaim, readOnly: true } });
    mounts.push({ name: 'kea-model', mountPath: PVC_MOUNT, readOnly: true });
  }
  const container: V1Container = {
    name: 'model',
    image: r.image,
    ...(r.command ? { command: r.command } : {}),
    ...(r.args.length ? { args: r.args } : {}),
    ports: [{ name: 'http', containerPort: r.port, protocol: 'TCP' }],
    ...(r.env.length ? { env: r.env } : {}),
    ...(r.resources ? { resources: r.resources } : {}),
    readinessProbe: probe(r.readinessPath, 'readiness'),
    livenessProbe: probe(r.livenessPath, 'liveness'),
    ...(mounts.length ? { volumeMounts: mounts } : {}),
  };
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: metadata(r.objectName, m.namespace, mlsOwner(m), { [LABELS.revision]: r.name }),
    spec: {
      replicas: r.replicas,
      selector: { matchLabels: sel },
      template: {
        metadata: { labels: { ...sel, 'app.kubernetes.io/name': m.name, 'app.kubernetes.io/instance': r.objectName } },
        spec: {
          ...(initContainers.length ? { initContainers } : {}),
          containers: [container],
          ...(volumes.length ? { volumes } : {}),
        },
      },
    },
  };
}

function service(m: MLServiceIR, r: RevisionIR): V1Service {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: metadata(r.objectName, m.namespace, mlsOwner(m), { [LABELS.revision]: r.name }),
    spec: {
      type: 'ClusterIP',
      selector: selector(m, r),
      ports: [{ name: 'http', port: r.port, targetPort: 'http' as unknown as number, protocol: 'TCP' }],
    },
  };
}

/** The token values internal routes accept: the current one first, then the rotation extras, without repeats. */
function acceptedTokens(config: ControllerConfig): string[] {
  return [...new Set([config.internalToken, ...(config.acceptedInternalTokens ?? [])].filter((t) => t !== ''))];
}

/**
 * The internal objects of one owner (docs/adr/0009-internal-routes.md): the HTTPRoute
 * {@link internalRouteName}(host) in the system namespace (where tenants cannot read the token
 * it matches on; the Gateway's internal listener admits routes from there only), one `matches`
 * entry per accepted token (ORed: two values during a rotation), cross-namespace backendRefs to
 * the owner's Services; and, in each backend namespace other than the system namespace, a
 * ReferenceGrant of the same name letting HTTPRoutes of the system namespace reach exactly those
 * Services (GEP-709). The grant carries an ownerReference when it sits in the owner's
 * namespace; the route only the owner labels (apply prunes by label). Grants come first.
 */
function internalObjects(owner: Owner, host: string, backends: BackendIR[], config: ControllerConfig): KubernetesObject[] {
  const sys = config.systemNamespace;
  const name = internalRouteName(host);
  const byNs = new Map<string, Set<string>>();
  for (const b of backends) if (b.namespace !== sys) byNs.set(b.namespace, (byNs.get(b.namespace) ?? new Set()).add(b.name));
  const grants = [...byNs.keys()].sort().map(
    (ns): IReferenceGrant => ({
      apiVersion: 'gateway.networking.k8s.io/v1beta1',
      kind: 'ReferenceGrant',
      metadata: metadata(name, ns, owner),
      spec: {
        from: [{ group: 'gateway.networking.k8s.io', kind: 'HTTPRoute', namespace: sys }],
        to: [...byNs.get(ns)!].sort().map((svc) => ({ group: '', kind: 'Service', name: svc })),
      },
    }),
  );
  const route: IHTTPRoute = {
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'HTTPRoute',
    metadata: metadata(name, sys, owner),
    spec: {
      parentRefs: [parentRef(config, 'internal')],
      hostnames: [host],
      rules: [
        {
          matches: acceptedTokens(config).map((value) => ({ path: { type: 'PathPrefix' as const, value: '/' }, headers: [{ type: 'Exact' as const, name: INTERNAL_TOKEN_HEADER, value }] })),
          backendRefs: backends.map((b) => backendRef(b, sys)),
        },
      ],
    },
  };
  return [...(grants as KubernetesObject[]), route as KubernetesObject];
}

/* ------------------------------------------------------------ ApiSchema objects */

function policyBackend(config: ControllerConfig): BackendIR {
  return { namespace: config.systemNamespace, name: config.policyServer.name, port: config.policyServer.port, weight: 1 };
}

/**
 * Passthrough mode has no policy server to strip credentials or mark responses, so the public
 * route does it (Gateway API HTTPHeaderFilter, core RequestHeaderModifier and extended
 * ResponseHeaderModifier): `Authorization` and `Cookie` are removed unless the ApiSchema lists
 * them in `spec.security.forwardCredentials`, and every response gets
 * `X-Content-Type-Options: nosniff` and the ApiSchema's `Content-Security-Policy` (default
 * {@link DEFAULT_CONTENT_SECURITY_POLICY}), as the policy server does in enforce mode.
 */
function passthroughIsolation(a: ApiSchemaIR): Array<NonNullable<NonNullable<IHTTPRoute['spec']['rules']>[number]['filters']>[number]> {
  const sec = a.resource.spec.security;
  const keep = new Set((sec?.forwardCredentials ?? []).map((h) => h.toLowerCase()));
  const remove = ['Authorization', 'Cookie'].filter((h) => !keep.has(h.toLowerCase()));
  return [
    ...(remove.length ? [{ type: 'RequestHeaderModifier' as const, requestHeaderModifier: { remove } }] : []),
    {
      type: 'ResponseHeaderModifier' as const,
      responseHeaderModifier: {
        set: [
          { name: 'X-Content-Type-Options', value: 'nosniff' },
          { name: 'Content-Security-Policy', value: sec?.contentSecurityPolicy ?? DEFAULT_CONTENT_SECURITY_POLICY },
        ],
      },
    },
  ];
}

function publicRoutes(a: ApiSchemaIR, config: ControllerConfig): IHTTPRoute[] {
  if (a.mode === 'passthrough') {
    return [
      {
        apiVersion: 'gateway.networking.k8s.io/v1',
        kind: 'HTTPRoute',
        metadata: metadata(publicRouteName(a.name), a.namespace, apiOwner(a)),
        spec: {
          parentRefs: [parentRef(config, 'public')],
          rules: [
            {
              matches: [{ path: { type: 'PathPrefix', value: a.basePath } }],
              filters: [{ type: 'URLRewrite', urlRewrite: { path: { type: 'ReplacePrefixMatch', replacePrefixMatch: '/' } } }, ...passthroughIsolation(a)],
              backendRefs: a.passthroughBackends.map((b) => backendRef(b, a.namespace)),
            },
          ],
        },
      },
    ];
  }
  const rules = a.routes.map((r) => ({
    matches: [{ path: { type: r.match.type, value: r.match.value }, method: r.method as 'GET' }],
    filters: [{ type: 'RequestHeaderModifier' as const, requestHeaderModifier: { set: [{ name: OPERATION_HEADER, value: r.headerValue }] } }],
    backendRefs: [backendRef(policyBackend(config), a.namespace)],
  }));
  const out: IHTTPRoute[] = [];
  for (let i = 0; i * MAX_RULES_PER_ROUTE < rules.length; i++) {
    out.push({
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'HTTPRoute',
      metadata: metadata(publicRouteName(a.name, i), a.namespace, apiOwner(a)),
      spec: { parentRefs: [parentRef(config, 'public')], rules: rules.slice(i * MAX_RULES_PER_ROUTE, (i + 1) * MAX_RULES_PER_ROUTE) },
    });
  }
  return out;
}

export { openApiText } from '../ir/memo.js';

/** A string as a Kubernetes label value (≤ 63 characters of [A-Za-z0-9._-], alphanumeric at both ends). */
function labelSafe(v: string): string {
  return v.replace(/[^A-Za-z0-9._-]+/g, '-').slice(0, 63).replace(/^[^A-Za-z0-9]+|[^A-Za-z0-9]+$/g, '');
}

/**
 * One version-history ConfigMap (lib/policy/config.ts): in the system namespace, named
 * `name` (for a new version {@link apiVersionConfigMapName}), labelled
 * `kea.dev/component=api-version`, `kea.dev/owner` and `kea.dev/api-version=<info.version>`
 * (label-safe), annotated with the ApiSchema id, the exact version, the digest (sha256 hex
 * of the `openapi.json` text) and `kea.dev/published-at` (RFC 3339); data `openapi.json`.
 */
export function versionConfigMap(
  owner: { namespace: string; name: string; uid?: string },
  config: Pick<ControllerConfig, 'systemNamespace'>,
  entry: { name?: string; version: string; digest: string; publishedAt: string; openapi: string },
): V1ConfigMap {
  return { apiVersion: 'v1', kind: 'ConfigMap', metadata: versionMetadata(owner, config, entry), data: { [OPENAPI_KEY]: entry.openapi } };
}

/** The metadata of {@link versionConfigMap}. */
function versionMetadata(
  owner: { namespace: string; name: string; uid?: string },
  config: Pick<ControllerConfig, 'systemNamespace'>,
  entry: { name?: string; version: string; digest: string; publishedAt: string },
) {
  const name = entry.name ?? apiVersionConfigMapName(owner.namespace, owner.name, entry.digest);
  const versionLabel = labelSafe(entry.version);
  return metadata(
      name,
      config.systemNamespace,
      { kind: 'ApiSchema', namespace: owner.namespace, name: owner.name, uid: owner.uid },
      { [LABELS.component]: COMPONENT_API_VERSION, ...(versionLabel ? { [API_VERSION_LABEL]: versionLabel } : {}) },
      {
        [VERSION_ANNOTATIONS.apiSchema]: `${owner.namespace}/${owner.name}`,
        [VERSION_ANNOTATIONS.digest]: entry.digest,
        [VERSION_ANNOTATIONS.version]: entry.version,
        [VERSION_ANNOTATIONS.publishedAt]: entry.publishedAt,
      },
    );
}

/**
 * Whether a kept version must be (re-)applied: it is not published yet, or its live ConfigMap
 * lacks a label or annotation value, or the owner reference, that {@link versionConfigMap}
 * would write. (Its data is the published text itself, so it never differs.)
 */
function versionNeedsApply(a: ApiSchemaIR, config: Pick<ControllerConfig, 'systemNamespace'>, e: PublishedEntry): boolean {
  if (!e.live) return true;
  const md = versionMetadata(a, config, e);
  const live = e.live;
  if (Object.entries(md.labels).some(([k, v]) => live.labels[k] !== v)) return true;
  if (Object.entries(md.annotations ?? {}).some(([k, v]) => live.annotations[k] !== v)) return true;
  return (md.ownerReferences ?? []).some((r) => !live.ownerUids.includes(r.uid));
}

/** At most this many changes of `status.lastDiff` are recorded (breaking ones first). */
export const MAX_STATUS_CHANGES = 50;

/**
 * The version history after this render: the published entries plus the current document
 * (a new entry published at `now` when no entry has its digest; an older entry with its digest,
 * as after a rollback, is republished at `now`), newest first, cut to
 * {@link MAX_PUBLISHED_VERSIONS}.
 */
function versionHistory(a: ApiSchemaIR, current: { text: string; digest: string } | undefined, now: string): { kept: PublishedEntry[]; dropped: PublishedEntry[] } {
  let entries = a.published.map((e) => ({ ...e }));
  if (current) {
    const digest = current.digest;
    const found = entries.find((e) => e.digest === digest);
    if (!found) {
      const text = current.text;
      entries.unshift({ name: apiVersionConfigMapName(a.namespace, a.name, digest), version: a.resource.spec.info.version, digest, publishedAt: now, text: () => text });
    } else if (entries[0] !== found) {
      found.publishedAt = Date.parse(now) > Date.parse(entries[0].publishedAt) ? now : entries[0].publishedAt;
    }
    entries = sortNewestFirst(entries, digest);
  }
  return { kept: entries.slice(0, MAX_PUBLISHED_VERSIONS), dropped: entries.slice(MAX_PUBLISHED_VERSIONS) };
}

function configMap(a: ApiSchemaIR, config: ControllerConfig, openapiText: string): V1ConfigMap {
  return {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: metadata(apiConfigMapName(a.namespace, a.name), config.systemNamespace, apiOwner(a), { [LABELS.component]: COMPONENT_API_CONFIG }, {
      'kea.dev/api-schema': a.key,
      'kea.dev/config-version': a.policy!.configVersion,
    }),
    data: {
      [OPENAPI_KEY]: openapiText,
      [POLICY_CONFIG_KEY]: a.policy ? policyJsonText(a.policy) : `${canonicalJson(a.policy, 2)}\n`,
    },
  };
}

function policyGrant(ns: string, config: ControllerConfig): IReferenceGrant {
  return {
    apiVersion: 'gateway.networking.k8s.io/v1beta1',
    kind: 'ReferenceGrant',
    metadata: metadata(policyGrantName(ns), config.systemNamespace, { kind: 'Namespace', namespace: config.systemNamespace, name: ns }),
    spec: {
      from: [{ group: 'gateway.networking.k8s.io', kind: 'HTTPRoute', namespace: ns }],
      to: [{ group: '', kind: 'Service', name: config.policyServer.name }],
    },
  };
}

function portalRoute(config: ControllerConfig): IHTTPRoute {
  const sys = config.systemNamespace;
  return {
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'HTTPRoute',
    metadata: metadata(PORTAL_ROUTE_NAME, sys, { kind: 'Gateway', namespace: config.gateway.namespace, name: config.gateway.name }),
    spec: {
      parentRefs: [parentRef(config, 'public')],
      rules: [
        {
          matches: [
            ...PORTAL_PATH_PREFIXES.map((p) => ({ path: { type: 'PathPrefix' as const, value: p } })),
            ...PORTAL_EXACT_PATHS.map((p) => ({ path: { type: 'Exact' as const, value: p } })),
          ],
          backendRefs: [backendRef(policyBackend(config), sys)],
        },
      ],
    },
  };
}

/* ------------------------------------------------------------ NGF policies */

/** API version of nginx-gateway-fabric's policies (NGF 1.6.2: apis/v1alpha1). */
export const NGF_POLICY_API_VERSION = 'gateway.nginx.org/v1alpha1';
/** Name of the ClientSettingsPolicy attached to KEA's Gateway (in the Gateway's namespace). */
export const CLIENT_SETTINGS_NAME = 'kea-client-settings';
/** Name of the UpstreamSettingsPolicy of the policy server Service (system namespace). */
export const POLICY_UPSTREAM_SETTINGS_NAME = 'kea-policy-upstream';
/** Name of an MLService's UpstreamSettingsPolicy (its namespace), targeting its revision Services. */
export const mlUpstreamSettingsName = (mls: string): string => `kea-upstream-${mls}`;
/** At least this much (bytes) above the largest operation limit gets through the gateway to the policy server. */
export const GATEWAY_BODY_SLACK_BYTES = 8 * 1024 * 1024;
const MIB = 1024 * 1024;

/**
 * The gateway's request body cap (nginx `client_max_body_size`) for the largest operation
 * limit `largest` (bytes): `largest + max(largest, GATEWAY_BODY_SLACK_BYTES)`, rounded up to a
 * whole MiB, as an NGF Size (`^\d{1,4}(k|m|g)?$`), e.g. 1 MiB → `9m`, 8 MiB → `16m`, 64 MiB →
 * `128m`. A body over an operation's limit but under the cap reaches the policy server, which
 * answers 413 `application/problem+json`; only a body over the cap gets nginx's own 413 page.
 */
export function gatewayBodyMaxSize(largest: number): string {
  return `${Math.ceil((largest + Math.max(largest, GATEWAY_BODY_SLACK_BYTES)) / MIB)}m`;
}

/**
 * NGF's ClientSettingsPolicy (an Inherited Attached Policy, GEP-713) attached to KEA's Gateway:
 * `body.maxSize` from {@link gatewayBodyMaxSize} for every server of the Gateway (public and
 * internal listeners). The Gateway, not each HTTPRoute, is the target: NGF 1.6.2 writes a
 * route's policy into every location the route has a match in, and two matches of one route
 * (or of two routes) on the same path give nginx a duplicate `client_max_body_size` and a
 * failed reload (nginx-gateway-fabric#3763); KEA's enforce routes have one match per method.
 */
function clientSettingsPolicy(config: ControllerConfig, largestBodyBytes: number): KubernetesObject {
  const gw = config.gateway;
  return {
    apiVersion: NGF_POLICY_API_VERSION,
    kind: 'ClientSettingsPolicy',
    metadata: metadata(CLIENT_SETTINGS_NAME, gw.namespace, { kind: 'Gateway', namespace: gw.namespace, name: gw.name }),
    spec: {
      targetRef: { group: 'gateway.networking.k8s.io', kind: 'Gateway', name: gw.name },
      body: { maxSize: gatewayBodyMaxSize(largestBodyBytes) },
    },
  } as KubernetesObject;
}

/**
 * Upstream keep-alive of nginx to the policy server (NGF UpstreamSettingsPolicy, a Direct
 * Attached Policy): without one NGF 1.6.2 sends `Connection: close` and opens a TCP connection
 * per request. Idle connections are kept 55 s, below the policy server's own keep-alive
 * timeout (65 s, policy-server/server.ts), so nginx never reuses one the server is closing.
 */
function policyUpstreamSettings(config: ControllerConfig): KubernetesObject {
  const sys = config.systemNamespace;
  return {
    apiVersion: NGF_POLICY_API_VERSION,
    kind: 'UpstreamSettingsPolicy',
    metadata: metadata(POLICY_UPSTREAM_SETTINGS_NAME, sys, { kind: 'Gateway', namespace: config.gateway.namespace, name: config.gateway.name }),
    spec: {
      targetRefs: [{ group: '', kind: 'Service', name: config.policyServer.name }],
      keepAlive: { connections: 64, requests: 10000, time: '1h', timeout: '55s' },
    },
  } as KubernetesObject;
}

/**
 * Upstream keep-alive of nginx to an MLService's revision Services (at most 16, the CRD's
 * limit on both sides). Idle connections are kept 1 s only: model servers close idle
 * connections early (uvicorn 5 s, gunicorn 2 s), and nginx does not retry a POST whose
 * pooled connection the server closed (it answers 502), so the pool only carries bursts.
 */
function modelUpstreamSettings(m: MLServiceIR): KubernetesObject {
  return {
    apiVersion: NGF_POLICY_API_VERSION,
    kind: 'UpstreamSettingsPolicy',
    metadata: metadata(mlUpstreamSettingsName(m.name), m.namespace, mlsOwner(m)),
    spec: {
      targetRefs: m.revisions.map((r) => ({ group: '', kind: 'Service', name: r.objectName })),
      keepAlive: { connections: 32, requests: 1000, time: '1h', timeout: '1s' },
    },
  } as KubernetesObject;
}

/* ------------------------------------------------------------ statuses */

function conditions(conds: ConditionIR[], existing: Condition[] | undefined, generation: number | undefined, now: string): Condition[] {
  return conds.map((c) => {
    const prev = existing?.find((e) => e.type === c.type);
    return {
      type: c.type,
      status: c.status,
      reason: c.reason,
      message: c.message,
      ...(generation !== undefined ? { observedGeneration: generation } : {}),
      lastTransitionTime: prev && prev.status === c.status && prev.lastTransitionTime ? prev.lastTransitionTime : now,
    };
  });
}

/** Conditions that are errors worth an Event (not consequences of another error). */
function errorEvents(kind: 'ApiSchema' | 'MLService', ns: string, name: string, uid: string | undefined, conds: ConditionIR[]): EventRecord[] {
  return conds
    .filter((c) => c.status === 'False' && c.type !== 'Ready' && !(c.type === 'Programmed' && (c.reason === 'Invalid' || c.reason === 'RefsNotResolved' || c.reason === 'AwaitingOpenApi')))
    .map((c) => ({ regarding: { kind, namespace: ns, name, ...(uid ? { uid } : {}) }, type: 'Warning' as const, reason: c.reason, message: `${c.type}: ${c.message}` }));
}

/* ------------------------------------------------------------ render */

const KIND_ORDER = ['ConfigMap', 'Service', 'Deployment', 'ReferenceGrant', 'HTTPRoute', 'ClientSettingsPolicy', 'UpstreamSettingsPolicy'];

function objectKey(o: KubernetesObject): string {
  return `${o.apiVersion}/${o.kind}/${o.metadata?.namespace ?? ''}/${o.metadata?.name ?? ''}`;
}

function compareObjects(a: KubernetesObject, b: KubernetesObject): number {
  const ka = KIND_ORDER.indexOf(a.kind ?? '');
  const kb = KIND_ORDER.indexOf(b.kind ?? '');
  if (ka !== kb) return ka - kb;
  const na = `${a.metadata?.namespace ?? ''}/${a.metadata?.name ?? ''}`;
  const nb = `${b.metadata?.namespace ?? ''}/${b.metadata?.name ?? ''}`;
  return na < nb ? -1 : na > nb ? 1 : 0;
}

/** Everything render gives out besides the objects (see {@link RenderOutput}). */
export type RenderRest = Omit<RenderOutput, 'objects'>;

/** Owner-level facts a render run noted, for the incremental reconcile (controller/incremental.ts). */
export interface RenderTrace {
  /** `kea.dev/owner` values of owners that lost an object to another owner (NameConflict). */
  conflictLosers: Set<string>;
  /** `kea.dev/owner` values of ApiSchemas with version ConfigMaps dropped by the history cap. */
  droppedOwners: Set<string>;
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
 * Render the IR as a stream: yields every desired object once, in owner order (the
 * ReferenceGrants and the portal route first, then per MLService and per ApiSchema in the
 * IR's sorted order, each owner's objects together with its ConfigMap before its routes), and
 * returns the statuses, events (sorted, NameConflict events included), retained owners and
 * dropped versions once the last object has been taken. The same objects as {@link render},
 * unsorted: a consumer can apply and release them a few at a time instead of holding the
 * whole desired state (docs/performance.md, "Controller scale"). Pure and deterministic.
 * @param now RFC 3339 time used as lastTransitionTime of conditions whose status changed.
 */
export function* renderStream(ir: IR | StreamIR, config: ControllerConfig, now: string, opts: RenderStreamOptions = {}): Generator<KubernetesObject, RenderRest, undefined> {
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
        regarding: { kind: o.metadata?.labels?.[LABELS.ownerKind] ?? 'Unknown', namespace: o.metadata?.namespace ?? '', name: owner.split('.').slice(2).join('.') },
        type: 'Warning',
        reason: 'NameConflict',
        message: `${o.kind} ${o.metadata?.namespace}/${o.metadata?.name} is already rendered for ${prev}; not rendered for ${owner}`,
      });
      return false;
    }
    seen.set(k, o.metadata?.labels?.[LABELS.owner] ?? '');
    return true;
  };
  const gw = config.gatewayUrl.replace(/\/+$/, '');
  // The current owner's rendered HTTPRoutes, for the gateway's verdict (route-status.ts).
  const judged: JudgedRoute[] = [];

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
    for (const p of [clientSettingsPolicy(config, ir.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES), policyUpstreamSettings(config)]) if (keep(p)) yield p;
  }

  for (const m of ir.mlServices) {
    if (m.accepted) {
      for (const r of m.revisions) {
        const svc = service(m, r) as KubernetesObject;
        if (keep(svc)) yield svc;
        const dep = deployment(m, r) as KubernetesObject;
        if (keep(dep)) yield dep;
      }
      const internal = internalObjects(
        mlsOwner(m),
        m.host,
        m.revisions.map((r) => ({ namespace: m.namespace, name: r.objectName, port: r.port, weight: r.weight })),
        config,
      );
      for (const o of internal) {
        if (!keep(o)) continue;
        if (o.kind === 'HTTPRoute') judged.push(judgedRoute(o, ir.routes));
        yield o;
      }
      if (ngf && m.revisions.length) {
        const p = modelUpstreamSettings(m);
        if (keep(p)) yield p;
      }
    }
    // Programmed: KEA's own verdict qualified by the gateway's on the routes just rendered.
    const mconds = withGatewayVerdict(m.conditions, judged.splice(0), config.gateway);
    const status: MLServiceStatus = {
      ...(m.generation !== undefined ? { observedGeneration: m.generation } : {}),
      conditions: conditions(mconds, m.resource.status?.conditions, m.generation, now),
      traffic: m.traffic,
      ...(m.traffic.length ? { trafficSplit: m.traffic.map((t) => `${t.revision}=${t.weight}`).join(',') } : {}),
      ...(m.accepted ? { url: `http://${m.host}:${config.internalPort ?? DEFAULT_INTERNAL_PORT}` } : {}),
    };
    emitStatus({ kind: 'MLService', namespace: m.namespace, name: m.name, status });
    events.push(...errorEvents('MLService', m.namespace, m.name, m.uid, mconds));
  }

  const droppedVersions: string[] = [];
  const retainedApis: string[] = [];
  for (const a of ir.apiSchemas) {
    if (a.retain) retainedApis.push(ownerLabelValue('ApiSchema', a.namespace, a.name));
    let conds = a.conditions;
    let programmed = a.programmed;
    let current: { text: string; digest: string } | undefined;
    let rendered: KubernetesObject[] = [];
    if (programmed) {
      try {
        const { text, digest } = a.openapi ?? generateCached(a.resource, genOptions(config));
        const cm = configMap(a, config, text);
        const bytes = Object.values(cm.data ?? {}).reduce((s, v) => s + Buffer.byteLength(v), 0);
        if (bytes > MAX_CONFIGMAP_BYTES) throw new Error(`its policy.json and openapi.json take ${bytes} bytes, over the ConfigMap limit of ${MAX_CONFIGMAP_BYTES}`);
        rendered.push(cm as KubernetesObject, ...(publicRoutes(a, config) as KubernetesObject[]));
        if (a.serviceTarget) {
          rendered.push(...internalObjects(apiOwner(a), a.upstreamHost!, [a.serviceTarget], config));
        }
        current = { text, digest };
      } catch (e) {
        rendered = [];
        programmed = false;
        conds = conds.map((c) => (c.type === 'Programmed' ? { type: c.type, status: 'False', reason: 'RenderFailed', message: `nothing is routed: ${(e as Error).message}` } : c));
      }
    }
    if (!programmed && a.serviceTarget && a.resource.spec.source?.openapi) {
      // Not routed publicly yet, but discovery needs the internal route to fetch the document.
      rendered.push(...internalObjects(apiOwner(a), a.upstreamHost!, [a.serviceTarget], config));
    }
    for (const o of rendered) {
      if (!keep(o)) continue;
      if (o.kind === 'HTTPRoute') judged.push(judgedRoute(o, ir.routes));
      yield o;
    }
    rendered = [];
    conds = withGatewayVerdict(conds, judged.splice(0), config.gateway);
    // Version history: a new version when the current document's digest is not published yet,
    // a kept one only when its live metadata is not what it should be (apply never prunes a
    // kept one); the oldest beyond the cap are dropped.
    const history = versionHistory(a, current, now);
    for (const e of history.kept) {
      if (!versionNeedsApply(a, config, e)) continue;
      const v = versionConfigMap(a, config, { ...e, openapi: e.text() }) as KubernetesObject;
      if (keep(v)) yield v;
    }
    droppedVersions.push(...history.dropped.map((e) => `${config.systemNamespace}/${e.name}`));
    if (history.dropped.length) opts.trace?.droppedOwners.add(ownerLabelValue('ApiSchema', a.namespace, a.name));
    let lastDiff: ApiSchemaStatus['lastDiff'];
    if (history.kept.length >= 2) {
      try {
        const [cur, prev] = history.kept;
        const d = diffCached(prev.digest, cur.digest, () => ({ oldDoc: JSON.parse(prev.text()) as OpenAPIObject, newDoc: JSON.parse(cur.text()) as OpenAPIObject }));
        lastDiff = { from: d.from, to: d.to, breaking: d.breaking, changes: d.changes.slice(0, MAX_STATUS_CHANGES).map((c) => ({ kind: c.kind, breaking: c.breaking, path: c.path, message: c.message })) };
      } catch {
        lastDiff = undefined; // a hand-made version ConfigMap that is not JSON: no diff
      }
    }
    const status: ApiSchemaStatus = {
      ...(a.generation !== undefined ? { observedGeneration: a.generation } : {}),
      conditions: conditions(conds, a.resource.status?.conditions, a.generation, now),
      operationCount: a.operations.length,
      ...(programmed
        ? {
            docsUrl: `${gw}/docs/${a.namespace}/${a.name}`,
            openapiUrl: `${gw}/openapi/${a.namespace}/${a.name}.json`,
            ...(a.curlExample ? { curlExample: a.curlExample } : {}),
          }
        : {}),
      ...(history.kept.length ? { versions: history.kept.map((e) => ({ version: e.version, digest: e.digest, publishedAt: e.publishedAt })) } : {}),
      ...(lastDiff ? { lastDiff } : {}),
      ...(a.imported && ['imported', 'stale'].includes(a.imported.state) ? { unroutable: a.unroutable } : {}),
    };
    emitStatus({ kind: 'ApiSchema', namespace: a.namespace, name: a.name, status });
    events.push(...errorEvents('ApiSchema', a.namespace, a.name, a.uid, conds));
  }

  statuses.sort((x, y) => (`${x.kind}/${x.namespace}/${x.name}` < `${y.kind}/${y.namespace}/${y.name}` ? -1 : 1));
  events.sort((x, y) => {
    const kx = `${x.regarding.kind}/${x.regarding.namespace}/${x.regarding.name}/${x.reason}/${x.message}`;
    const ky = `${y.regarding.kind}/${y.regarding.namespace}/${y.regarding.name}/${y.reason}/${y.message}`;
    return kx < ky ? -1 : kx > ky ? 1 : 0;
  });
  const retainOwners = [
    ...ir.mlServices.filter((m) => !m.accepted).map((m) => ownerLabelValue('MLService', m.namespace, m.name)),
    ...retainedApis,
  ].sort();
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
 * sorted by kind (ConfigMap, Service, Deployment, ReferenceGrant, HTTPRoute), namespace, name.
 * @param now RFC 3339 time used as lastTransitionTime of conditions whose status changed.
 */
export function render(ir: IR, config: ControllerConfig, now: string): RenderOutput {
  const out = drainRenderStream(renderStream(ir, config, now));
  out.objects.sort(compareObjects);
  return out;
}
