/**
 * Stage 5 of the controller pipeline: **render**, pure serialisation of the IR: every
 * decision (defaults, weights, conditions and which raise Events, the version history and
 * `lastDiff`, the ConfigMap size check, what is retained) is the IR's (controller/ir); render
 * only writes it out as Kubernetes objects, one file per output kind (./configmaps.ts,
 * ./services.ts, ./deployments.ts, ./referencegrants.ts, ./httproutes.ts, ./ngf-policies.ts,
 * ./status.ts; assembled by ./stream.ts).
 *
 * Takes in: an {@link IR} (desired state), the {@link ControllerConfig}, the observed
 * conditions (IR `observedConditions`, for lastTransitionTime), the live HTTPRoutes (IR
 * `routes`: the gateway's verdict, which qualifies `Programmed`, see ./route-status.ts; the one
 * input that needs the rendered objects, so it is applied here) and the time `now`.
 * Gives out: a {@link RenderOutput}: every Kubernetes object KEA wants to exist, the status of
 * every ApiSchema and MLService, and the IR's Events (plus NameConflict when two owners render
 * the same object, and the Event of a `Programmed` the gateway refused). Plain JSON objects:
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
 *   - per programmed ApiSchema: a ConfigMap `kea-api-<ns>-<name>-<hash8>` (lib/policy/config.ts
 *     apiConfigMapName: collision-free across namespaces) in the system namespace with
 *     `policy.json` (canonical JSON of the PolicyService) and `openapi.json`
 *     (lib/openapi/generate.ts);
 *   - per ApiSchema: one ConfigMap per version its IR history marks to write
 *     (`kea-apiver-<ns>-<name>-<hash8>-<digest10>`, label `kea.dev/component=api-version`, see
 *     {@link versionConfigMap}; ir/history.ts decides which: new versions, and kept ones whose
 *     live metadata differs), the dropped ones in `RenderOutput.droppedVersions`, and status
 *     `versions` (newest first) and `lastDiff`;
 *   - per namespace with enforce-mode public routes: a ReferenceGrant
 *     `kea-policy-from-<ns>` in the system namespace (HTTPRoutes of that namespace → the
 *     policy server Service);
 *   - the gateway-level HTTPRoute `kea-portal` (system namespace): /docs, /openapi,
 *     /openapi.json, /auth, /services, /router, /logs, /methods → policy server;
 *   - with `config.gatewayImplementation: ngf` only, nginx-gateway-fabric's policies
 *     (`gateway.nginx.org/v1alpha1`): a ClientSettingsPolicy `kea-client-settings` on the
 *     Gateway (body cap `gatewayBodyMaxSize` (lib/policy/config.ts) of `IR.maxBodyBytes`, so the policy server
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
export { type RenderRest, type RenderStreamOptions, type RenderTrace, drainRenderStream, render, renderStream } from './stream.js';
export { openApiText, policyConfigMap, versionConfigMap } from './configmaps.js';
export { deployment } from './deployments.js';
export { service } from './services.js';
export { internalRoute, portalRoute, publicRoutes } from './httproutes.js';
export { internalGrants, policyGrant } from './referencegrants.js';
export {
  CLIENT_SETTINGS_NAME,
  NGF_POLICY_API_VERSION,
  POLICY_UPSTREAM_SETTINGS_NAME,
  clientSettingsPolicy,
  mlUpstreamSettingsName,
  modelUpstreamSettings,
  policyUpstreamSettings,
} from './ngf-policies.js';
export { apiSchemaStatus, mlServiceStatus, statusConditions } from './status.js';
