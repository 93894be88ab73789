/**
 * nginx-gateway-fabric's own policies (`gateway.nginx.org/v1alpha1`), rendered only with
 * `config.gatewayImplementation: ngf`.
 *
 * Takes in: the IR's largest request body limit, the MLService IRs, the {@link ControllerConfig}.
 * Gives out: a ClientSettingsPolicy `kea-client-settings` on the Gateway (body cap
 * lib/policy/config.ts `gatewayBodyMaxSize`, so the policy server answers 413 problem+json), an
 * UpstreamSettingsPolicy `kea-policy-upstream` (system namespace, the policy server Service)
 * and one `kea-upstream-<mls>` per MLService (its revision Services): upstream keep-alive.
 * Pure.
 */
import type { KubernetesObject } from '@kubernetes/client-node';
import type { MLServiceIR } from '../ir/index.js';
import type { ControllerConfig } from '../model.js';
import { gatewayBodyMaxSize } from '../../lib/policy/config.js';
import { metadata, mlsOwner } from './metadata.js';

/** API version of nginx-gateway-fabric's policies (NGF 1.6.2: apis/v1alpha1). */
export const NGF_POLICY_API_VERSION = 'gateway.nginx.org/v1alpha1';
/** Name of the ClientSettingsPolicy attached to KEA's Gateway (in the Gateway's namespace). */
export const CLIENT_SETTINGS_NAME = 'kea-client-settings';
/** Name of the UpstreamSettingsPolicy of the policy server Service (system namespace). */
export const POLICY_UPSTREAM_SETTINGS_NAME = 'kea-policy-upstream';
/** Name of an MLService's UpstreamSettingsPolicy (its namespace), targeting its revision Services. */
export const mlUpstreamSettingsName = (mls: string): string => `kea-upstream-${mls}`;
/**
 * NGF's ClientSettingsPolicy (an Inherited Attached Policy, GEP-713) attached to KEA's Gateway:
 * `body.maxSize` from {@link gatewayBodyMaxSize} for every server of the Gateway (public and
 * internal listeners). The Gateway, not each HTTPRoute, is the target: NGF 1.6.2 writes a
 * route's policy into every location the route has a match in, and two matches of one route
 * (or of two routes) on the same path give nginx a duplicate `client_max_body_size` and a
 * failed reload (nginx-gateway-fabric#3763); KEA's enforce routes have one match per method.
 */
export function clientSettingsPolicy(config: ControllerConfig, largestBodyBytes: number): KubernetesObject {
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
export function policyUpstreamSettings(config: ControllerConfig): KubernetesObject {
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
export function modelUpstreamSettings(m: MLServiceIR): KubernetesObject {
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
