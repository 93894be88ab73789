/**
 * The NGF part of the data-path bench (bench/policy.ts): nginx programmed by
 * nginx-gateway-fabric 1.6.2 (dev/ngf.ts) from Gateway API objects in a local kube-apiserver,
 * with the routes KEA's controller renders (controller/render/index.ts), so that the KEA path
 * crosses the gateway twice as in a cluster:
 *
 *   wrk ──▶ NGF nginx :public ──▶ backend                       (passthrough ApiSchema route)
 *   wrk ──▶ NGF nginx :public ──▶ policy server ──▶ NGF nginx :internal ──▶ backend
 *
 * - `kea-system/bench-echo` (the backend) and `kea-system/kea-policy-bench` (the policy server)
 *   are Services with one EndpointSlice each whose address is the host's address on a bridge
 *   (dev/netns.ts; EndpointSlices cannot hold 127.0.0.0/8), where the backend and the policy
 *   server listen;
 * - the passthrough route is what KEA renders for a `passthrough` ApiSchema (PathPrefix, the
 *   caller's Authorization and Cookie removed, nosniff set on the response);
 * - the KEA route sets `x-kea-operation` (RequestHeaderModifier) and sends to the policy
 *   server; the internal route (listener `internal`, host `echo.bench.kea.internal`, header
 *   match on `x-kea-internal-token`) sends to the backend;
 * - an UpstreamSettingsPolicy per Service with the keep-alive KEA's controller emits for NGF
 *   (64 connections to the policy server, 32 to a model; `KEA_BENCH_NGF_KEEPALIVE=0` leaves
 *   them out: nginx then opens a connection per request on both hops).
 *
 * Needs root (bridge, mount namespace) and NGF's binary (scripts/setup.sh builds it).
 */
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { KubeConfig, KubernetesObjectApi, PatchStrategy, type KubernetesObject } from '@kubernetes/client-node';
import { KEA_CACHE, startControlPlane, installCrds, type ControlPlane } from '../dev/controlplane.js';
import { createBridge, deleteBridge, registerService, type Bridge } from '../dev/netns.js';
import { NGF_VERSION, startNgf, type RunningNgf } from '../dev/ngf.js';
import { INTERNAL_TOKEN_HEADER } from '../lib/policy/config.js';

/** One backend behind NGF: a passthrough route and a KEA route to it. */
export interface NgfBackend {
  /** Service name in kea-system. */
  name: string;
  /** Port of the backend on the bridge address. */
  port: number;
  /** The service's internal hostname (the policy config's `upstream.host`). */
  internalHost: string;
  /** `x-kea-operation` value of the KEA route. */
  operation: string;
  /** Path of the KEA route (POST, Exact), e.g. `/echo/predict`. */
  keaPath: string;
  /** Prefix of the passthrough route, rewritten to `/` (e.g. `/plain`: `/plain/predict` → `/predict`). */
  passthroughPrefix: string;
  /** Keep-alive of a model Service (1 s idle) rather than the policy server's. */
  model?: boolean;
}

/** What {@link startNgfTopology} needs from the bench. */
export interface NgfTopologyOptions {
  /** Folder for the control plane's data and NGF's state (created). */
  dir: string;
  /** Internal token the policy server sends and the internal routes match. */
  internalToken: string;
  backends: NgfBackend[];
  /** Port of the policy server on the bridge address. */
  policyPort: number;
  /** Emit the UpstreamSettingsPolicy keep-alive objects (default true). */
  keepAlive?: boolean;
}

/** A running NGF topology. */
export interface NgfTopology {
  /** Address the backend and the policy server must listen on (the bridge's host address). */
  hostAddress: string;
  /** `http://127.0.0.1:<public>` */
  publicUrl: string;
  /** `http://127.0.0.1:<internal>`: the policy server's upstream URL. */
  internalUrl: string;
  /** nginx master pid (its workers are its children). */
  nginxPid: number;
  /** Programs the routes (after the backend and policy server listen) and waits until both answer. */
  program(check: (url: string) => Promise<boolean>): Promise<void>;
  stop(): Promise<void>;
}

/** True when the NGF binary is there (setup built it) and we are root. */
export function ngfAvailable(): boolean {
  const bin = process.env.KEA_NGF_BIN ?? join(KEA_CACHE, 'bin', `ngf-${NGF_VERSION}`);
  return existsSync(bin) && process.getuid?.() === 0;
}

/**
 * Starts a control plane, a bridge and NGF + nginx (Gateway kea-system/kea); the routes come
 * with {@link NgfTopology.program}.
 * @throws Error when any piece fails to start (what was started is stopped).
 */
export async function startNgfTopology(o: NgfTopologyOptions): Promise<NgfTopology> {
  let cp: ControlPlane | undefined;
  let bridge: Bridge | undefined;
  let gw: RunningNgf | undefined;
  const stop = async (): Promise<void> => {
    await gw?.stop().catch(() => undefined);
    if (bridge) await deleteBridge(bridge).catch(() => undefined);
    await cp?.stop().catch(() => undefined);
  };
  try {
    await mkdir(o.dir, { recursive: true });
    cp = await startControlPlane({ dataDir: join(o.dir, 'cp'), unsafeNoFsync: true });
    await installCrds(cp.kubeconfig);
    bridge = await createBridge();
    gw = await startNgf({ kubeconfig: cp.kubeconfig, stateDir: join(o.dir, 'ngf') });
    const kc = new KubeConfig();
    kc.loadFromFile(cp.kubeconfig);
    const hostAddress = bridge.hostAddress;
    const g = gw;
    const kubeconfig = cp.kubeconfig;
    return {
      hostAddress,
      publicUrl: `http://127.0.0.1:${gw.publicPort}`,
      internalUrl: `http://127.0.0.1:${gw.internalPort}`,
      nginxPid: gw.nginxPid,
      stop,
      program: async (check) => {
        for (const be of o.backends)
          await registerService(kc, { namespace: 'kea-system', name: be.name, port: 8080, targetPort: be.port, addresses: [hostAddress] });
        await registerService(kc, { namespace: 'kea-system', name: 'kea-policy-bench', port: 8080, targetPort: o.policyPort, addresses: [hostAddress] });
        const api = KubernetesObjectApi.makeApiClient(kc);
        for (const obj of routes(o)) await api.patch(obj, undefined, undefined, 'kea-bench', true, PatchStrategy.ServerSideApply);
        const deadline = Date.now() + 60_000;
        for (const path of o.backends.flatMap((be) => [`${be.passthroughPrefix}/predict`, be.keaPath])) {
          while (!(await check(`${`http://127.0.0.1:${g.publicPort}`}${path}`).catch(() => false))) {
            if (Date.now() > deadline) throw new Error(`NGF route ${path} not answering 200 after 60 s (kubeconfig ${kubeconfig}, NGF log ${g.logPath})`);
            await new Promise((r) => setTimeout(r, 250));
          }
        }
      },
    };
  } catch (e) {
    await stop();
    throw e;
  }
}

/** The HTTPRoutes (and UpstreamSettingsPolicies) KEA's controller renders for this topology. */
function routes(o: NgfTopologyOptions): KubernetesObject[] {
  const sys = 'kea-system';
  const parent = (sectionName: string) => ({ group: 'gateway.networking.k8s.io', kind: 'Gateway', namespace: sys, name: 'kea', sectionName });
  const httpRoute = (name: string, spec: object): KubernetesObject =>
    ({ apiVersion: 'gateway.networking.k8s.io/v1', kind: 'HTTPRoute', metadata: { name, namespace: sys }, spec }) as KubernetesObject;
  const usp = (name: string, service: string, keepAlive: object): KubernetesObject =>
    ({
      apiVersion: 'gateway.nginx.org/v1alpha1',
      kind: 'UpstreamSettingsPolicy',
      metadata: { name, namespace: sys },
      spec: { targetRefs: [{ group: '', kind: 'Service', name: service }], keepAlive },
    }) as KubernetesObject;
  // The values of controller/render/index.ts (policy server; a model's revision Services).
  const POLICY_KEEPALIVE = { connections: 64, requests: 10000, time: '1h', timeout: '55s' };
  const MODEL_KEEPALIVE = { connections: 32, requests: 1000, time: '1h', timeout: '1s' };
  const objs: KubernetesObject[] = [];
  for (const be of o.backends) {
    // A passthrough ApiSchema: PathPrefix, prefix rewritten, credentials removed, nosniff.
    objs.push(
      httpRoute(`bench-passthrough-${be.name}`, {
        parentRefs: [parent('public')],
        rules: [
          {
            matches: [{ path: { type: 'PathPrefix', value: be.passthroughPrefix } }],
            filters: [
              { type: 'URLRewrite', urlRewrite: { path: { type: 'ReplacePrefixMatch', replacePrefixMatch: '/' } } },
              { type: 'RequestHeaderModifier', requestHeaderModifier: { remove: ['authorization', 'cookie'] } },
              { type: 'ResponseHeaderModifier', responseHeaderModifier: { set: [{ name: 'x-content-type-options', value: 'nosniff' }] } },
            ],
            backendRefs: [{ name: be.name, port: 8080 }],
          },
        ],
      }),
      // An enforce ApiSchema: one rule per operation (method + path), x-kea-operation, the policy server.
      httpRoute(`kea-api-${be.name}`, {
        parentRefs: [parent('public')],
        rules: [
          {
            matches: [{ method: 'POST', path: { type: 'Exact', value: be.keaPath } }],
            filters: [{ type: 'RequestHeaderModifier', requestHeaderModifier: { set: [{ name: 'x-kea-operation', value: be.operation }] } }],
            backendRefs: [{ name: 'kea-policy-bench', port: 8080 }],
          },
        ],
      }),
      // Its internal route: listener `internal`, the service's host, the token.
      httpRoute(be.internalHost, {
        parentRefs: [parent('internal')],
        hostnames: [be.internalHost],
        rules: [
          {
            matches: [{ path: { type: 'PathPrefix', value: '/' }, headers: [{ type: 'Exact', name: INTERNAL_TOKEN_HEADER, value: o.internalToken }] }],
            backendRefs: [{ name: be.name, port: 8080 }],
          },
        ],
      }),
    );
    if (o.keepAlive !== false) objs.push(usp(`bench-${be.name}-upstream`, be.name, be.model ? MODEL_KEEPALIVE : POLICY_KEEPALIVE));
  }
  if (o.keepAlive !== false) objs.push(usp('bench-policy-upstream', 'kea-policy-bench', POLICY_KEEPALIVE));
  return objs;
}
