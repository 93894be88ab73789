/**
 * gateway.networking.k8s.io/v1 HTTPRoutes.
 *
 * Takes in: the IR of an owner (its internal route backends, or an ApiSchema's
 * {@link ProgramIR}) and the {@link ControllerConfig}.
 * Gives out:
 *   - an owner's internal route ({@link internalRoute}, docs/adr/0009-internal-routes.md):
 *     named {@link internalRouteName}(host) in the **system namespace** (where tenants cannot
 *     read the token it matches on; the Gateway's internal listener admits routes from there
 *     only), hostname the owner's internal host, one `matches` entry per accepted
 *     `x-kea-internal-token` value (ORed: the current token, plus the previous/next during a
 *     rotation), cross-namespace backendRefs to the owner's Services weighted in percent;
 *   - an ApiSchema's public routes ({@link publicRoutes}, listener `public`): in enforce mode
 *     `kea-api-<name>`, `kea-api-<name>-2`, ... with at most {@link MAX_RULES_PER_ROUTE} rules
 *     each (Gateway API limit), one rule per IR route rule (method + path match,
 *     graph/paths.ts) setting `x-kea-operation` and pointing at the policy server; in
 *     passthrough mode one rule PathPrefix basePath with a URLRewrite (ReplacePrefixMatch `/`),
 *     the IR's header filters and the target's weighted backendRefs;
 *   - the gateway-level portal route `kea-portal` ({@link portalRoute}, system namespace):
 *     /docs, /openapi, /openapi.json, /auth, /services, /router, /logs, /methods → policy server.
 * Pure.
 */
import type { IHTTPRoute } from '@kubernetes-models/gateway-api/gateway.networking.k8s.io/v1';
import { INTERNAL_TOKEN_HEADER, OPERATION_HEADER } from '../../lib/policy/config.js';
import { PORTAL_EXACT_PATHS, PORTAL_PATH_PREFIXES } from '../../lib/policy/reserved-paths.js';
import { PORTAL_ROUTE_NAME, internalRouteName, publicRouteName } from '../graph/index.js';
import { type ApiSchemaIR, type BackendIR, MAX_RULES_PER_ROUTE, type OwnerRef, type ProgramIR } from '../ir/index.js';
import type { ControllerConfig } from '../model.js';
import { apiOwner, backendRef, metadata, parentRef, policyBackend } from './metadata.js';

/** The token values internal routes accept: the current one first, then the rotation extras, without repeats. */
function acceptedTokens(config: ControllerConfig): string[] {
  return [...new Set([config.internalToken, ...(config.acceptedInternalTokens ?? [])].filter((t) => t !== ''))];
}

/** The internal HTTPRoute of an owner with internal host `host` and these backends (see the module comment). */
export function internalRoute(owner: OwnerRef, host: string, backends: readonly BackendIR[], config: ControllerConfig): IHTTPRoute {
  const sys = config.systemNamespace;
  return {
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'HTTPRoute',
    metadata: metadata(internalRouteName(host), sys, owner),
    spec: {
      parentRefs: [parentRef(config, 'internal')],
      hostnames: [host],
      rules: [
        {
          matches: acceptedTokens(config).map((value) => ({
            path: { type: 'PathPrefix' as const, value: '/' },
            headers: [{ type: 'Exact' as const, name: INTERNAL_TOKEN_HEADER, value }],
          })),
          backendRefs: backends.map((b) => backendRef(b, sys)),
        },
      ],
    },
  };
}

type Filter = NonNullable<NonNullable<IHTTPRoute['spec']['rules']>[number]['filters']>[number];

/** The public HTTPRoute(s) of a programmed ApiSchema (see the module comment). */
export function publicRoutes(a: ApiSchemaIR, p: ProgramIR, config: ControllerConfig): IHTTPRoute[] {
  if (p.passthrough) {
    const pt = p.passthrough;
    const filters: Filter[] = [
      { type: 'URLRewrite', urlRewrite: { path: { type: 'ReplacePrefixMatch', replacePrefixMatch: '/' } } },
      ...(pt.removeRequestHeaders.length ? [{ type: 'RequestHeaderModifier' as const, requestHeaderModifier: { remove: [...pt.removeRequestHeaders] } }] : []),
      { type: 'ResponseHeaderModifier', responseHeaderModifier: { set: pt.responseHeaders.map((h) => ({ name: h.name, value: h.value })) } },
    ];
    return [
      {
        apiVersion: 'gateway.networking.k8s.io/v1',
        kind: 'HTTPRoute',
        metadata: metadata(publicRouteName(a.name), a.namespace, apiOwner(a)),
        spec: {
          parentRefs: [parentRef(config, 'public')],
          rules: [{ matches: [{ path: { type: 'PathPrefix', value: a.basePath } }], filters, backendRefs: pt.backends.map((b) => backendRef(b, a.namespace)) }],
        },
      },
    ];
  }
  const rules = p.routes.map((r) => ({
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

/** The portal route `kea-portal` (see the module comment). */
export function portalRoute(config: ControllerConfig): IHTTPRoute {
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
            // Everything no other route claims (the shortest prefix loses to every other match,
            // Gateway API's precedence): the policy server answers 404 application/problem+json
            // instead of nginx's HTML page.
            { path: { type: 'PathPrefix' as const, value: '/' } },
          ],
          backendRefs: [backendRef(policyBackend(config), sys)],
        },
      ],
    },
  };
}
