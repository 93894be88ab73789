/**
 * The local stack's Gateway API implementation: a real Traefik (kubernetesGateway provider), built
 * from the Go module proxy by scripts/build-gateway.sh, run as a plain process outside any cluster
 * against the local kube-apiserver (KUBECONFIG). Why Traefik and not nginx-gateway-fabric:
 * docs/adr/0004-gateway-implementation.md.
 *
 * KEA emits only standard Gateway API objects (HTTPRoute, ReferenceGrant, weighted backendRefs):
 * locally Traefik programs them, in a real cluster NGF does. Each Gateway listener port must have a
 * Traefik entry point on the same port; startGateway() makes `public` and `internal` ones.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, writeFile, readFile, access } from 'node:fs/promises';
import { openSync, closeSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { stringify } from 'yaml';
import { KubeConfig, KubernetesObjectApi, PatchStrategy, type KubernetesObject } from '@kubernetes/client-node';
import { KEA_CACHE, freePort } from './controlplane.js';
import { stopProcess } from '../lib/process.js';

/** Pinned Traefik release; keep in sync with scripts/build-gateway.sh. Gateway API v1.2.1 (standard channel), like NGF 1.6.2. */
export const TRAEFIK_VERSION = process.env.TRAEFIK_VERSION ?? 'v3.4.5';
/** `spec.controllerName` Traefik claims GatewayClasses by (Traefik's pkg/provider/kubernetes/gateway). */
export const TRAEFIK_CONTROLLER_NAME = 'traefik.io/gateway-controller';
/** The local GatewayClass name (the real-cluster manifests use NGF's class `nginx`). */
export const LOCAL_GATEWAY_CLASS = 'kea-local';
/** Field manager for the GatewayClass and Gateway written here. */
export const GATEWAY_FIELD_MANAGER = 'kea-dev-gateway';

/** Path of the cached Traefik binary; throws if missing. */
export async function traefikBinary(): Promise<string> {
  const path = process.env.KEA_TRAEFIK_BIN ?? join(KEA_CACHE, 'bin', `traefik-${TRAEFIK_VERSION}`);
  try {
    await access(path);
  } catch {
    throw new Error(`${path} is missing: run scripts/setup.sh (scripts/build-gateway.sh builds Traefik ${TRAEFIK_VERSION} from the Go module proxy)`);
  }
  return path;
}

export interface GatewayOptions {
  /** Kubeconfig Traefik watches with (passed as KUBECONFIG). */
  kubeconfig: string;
  /** Folder for traefik.yml and traefik.log (created). */
  stateDir: string;
  /** Port of the `public` listener/entry point; default: a free port. */
  publicPort?: number;
  /** Port of the `internal` listener/entry point; default: a free port. */
  internalPort?: number;
  /** Address the entry points bind; default 127.0.0.1 (loopback only). */
  bindAddress?: string;
  /** Traefik log level; default INFO. */
  logLevel?: 'DEBUG' | 'INFO' | 'WARN' | 'ERROR';
  /** How long to wait for Traefik's /ping, ms; default 30000. */
  startTimeoutMs?: number;
}

/** A running gateway data plane + Gateway API controller. */
export interface RunningGateway {
  pid: number;
  publicPort: number;
  internalPort: number;
  /** `http://127.0.0.1:<publicPort>` */
  publicUrl: string;
  /** `http://127.0.0.1:<internalPort>` */
  internalUrl: string;
  logPath: string;
  /** Time from spawn to /ping answering 200, ms. */
  startMs: number;
  /** SIGTERM, SIGKILL after 5 s; resolves once the process has exited. Safe to call twice. */
  stop(): Promise<void>;
}

async function waitForPing(url: string, proc: ChildProcess, timeoutMs: number, logPath: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (proc.exitCode !== null || proc.signalCode !== null) {
      const tail = (await readFile(logPath, 'utf8').catch(() => '')).split('\n').slice(-30).join('\n');
      throw new Error(`traefik exited (${proc.exitCode ?? proc.signalCode}) before it was ready:\n${tail}`);
    }
    try {
      const r = await fetch(url, { signal: AbortSignal.timeout(1000) });
      if (r.ok) return;
    } catch {
      /* not yet */
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`traefik: /ping not ready after ${timeoutMs} ms (log: ${logPath})`);
}

/**
 * Starts Traefik with the kubernetesGateway provider and entry points `public` and `internal`
 * (plus a loopback-only `traefik` entry point for /ping), and waits until /ping answers.
 * Anonymous usage reporting and the new-version check are off (no traffic leaves the machine).
 * @throws Error when the binary is missing or Traefik exits or does not become ready in time
 *   (the message carries the tail of its log).
 */
export async function startGateway(opts: GatewayOptions): Promise<RunningGateway> {
  const t0 = Date.now();
  const bin = await traefikBinary();
  const stateDir = resolve(opts.stateDir);
  await mkdir(stateDir, { recursive: true });
  const publicPort = opts.publicPort ?? (await freePort());
  const internalPort = opts.internalPort ?? (await freePort());
  const pingPort = await freePort();
  const bind = opts.bindAddress ?? '127.0.0.1';
  const lifeCycle = { graceTimeOut: '1s', requestAcceptGraceTimeout: '0s' };
  const config = {
    global: { checkNewVersion: false, sendAnonymousUsage: false },
    log: { level: opts.logLevel ?? 'INFO', noColor: true },
    entryPoints: {
      public: { address: `${bind}:${publicPort}`, transport: { lifeCycle } },
      internal: { address: `${bind}:${internalPort}`, transport: { lifeCycle } },
      traefik: { address: `127.0.0.1:${pingPort}`, transport: { lifeCycle } },
    },
    ping: { entryPoint: 'traefik' },
    // Apply provider changes after 200 ms of quiet instead of the default 2 s.
    providersThrottleDuration: '200ms',
    providers: { kubernetesGateway: { throttleDuration: '200ms', statusAddress: { ip: '127.0.0.1' } } },
  };
  const configPath = join(stateDir, 'traefik.yml');
  await writeFile(configPath, stringify(config));
  const logPath = join(stateDir, 'traefik.log');
  const fd = openSync(logPath, 'a');
  const env: NodeJS.ProcessEnv = { ...process.env, KUBECONFIG: resolve(opts.kubeconfig) };
  delete env.KUBERNETES_SERVICE_HOST;
  delete env.KUBERNETES_SERVICE_PORT;
  const proc = spawn(bin, [`--configFile=${configPath}`], { stdio: ['ignore', fd, fd], env });
  closeSync(fd);
  const stop = () => stopProcess(proc, 5000);
  try {
    await waitForPing(`http://127.0.0.1:${pingPort}/ping`, proc, opts.startTimeoutMs ?? 30000, logPath);
  } catch (e) {
    await stop();
    throw e;
  }
  return {
    pid: proc.pid!,
    publicPort,
    internalPort,
    publicUrl: `http://127.0.0.1:${publicPort}`,
    internalUrl: `http://127.0.0.1:${internalPort}`,
    logPath,
    startMs: Date.now() - t0,
    stop,
  };
}

export interface GatewayResourceOptions {
  /** Gateway namespace; default `kea-system`. */
  namespace?: string;
  /** Gateway name; default `kea`. */
  name?: string;
  /** GatewayClass name; default LOCAL_GATEWAY_CLASS. */
  gatewayClassName?: string;
  publicPort: number;
  internalPort: number;
  /** Hostname of the internal listener; default `*.kea.internal`. */
  internalHostname?: string;
}

/** The GatewayClass and Gateway objects of the KEA topology (docs/TEAM.md), for Traefik. */
export function gatewayObjects(o: GatewayResourceOptions): KubernetesObject[] {
  const namespace = o.namespace ?? 'kea-system';
  const className = o.gatewayClassName ?? LOCAL_GATEWAY_CLASS;
  const allowAll = { namespaces: { from: 'All' } };
  // The internal listener admits only routes of the Gateway's own namespace (kea-system, where
  // KEA renders its internal routes): a tenant cannot attach a route there, nor read the token
  // those routes match on (docs/adr/0009-internal-routes.md). Same as manifests/gateway.yaml.
  const allowSame = { namespaces: { from: 'Same' } };
  return [
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: namespace } },
    {
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'GatewayClass',
      metadata: { name: className },
      spec: { controllerName: TRAEFIK_CONTROLLER_NAME, description: 'KEA local stack: Traefik kubernetesGateway provider' },
    } as KubernetesObject,
    {
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'Gateway',
      metadata: { name: o.name ?? 'kea', namespace },
      spec: {
        gatewayClassName: className,
        listeners: [
          { name: 'public', protocol: 'HTTP', port: o.publicPort, allowedRoutes: allowAll },
          { name: 'internal', protocol: 'HTTP', port: o.internalPort, hostname: o.internalHostname ?? '*.kea.internal', allowedRoutes: allowSame },
        ],
      },
    } as KubernetesObject,
  ];
}

interface Condition {
  type: string;
  status: string;
  reason?: string;
  message?: string;
  observedGeneration?: number;
}

/**
 * Server-side applies the namespace, GatewayClass and Gateway (gatewayObjects) and waits until the
 * Gateway reports `Programmed=True` for its current generation.
 * @throws Error after `timeoutMs` (default 30000) with the Gateway's last conditions.
 */
export async function applyGateway(kc: KubeConfig, o: GatewayResourceOptions, timeoutMs = 30000): Promise<void> {
  const api = KubernetesObjectApi.makeApiClient(kc);
  for (const obj of gatewayObjects(o)) {
    await api.patch(obj, undefined, undefined, GATEWAY_FIELD_MANAGER, true, PatchStrategy.ServerSideApply);
  }
  const ref = { apiVersion: 'gateway.networking.k8s.io/v1', kind: 'Gateway', metadata: { name: o.name ?? 'kea', namespace: o.namespace ?? 'kea-system' } };
  const deadline = Date.now() + timeoutMs;
  let last: Condition[] = [];
  while (Date.now() < deadline) {
    const gw = (await api.read(ref)) as KubernetesObject & { status?: { conditions?: Condition[] } };
    last = gw.status?.conditions ?? [];
    const programmed = last.find((c) => c.type === 'Programmed');
    if (programmed?.status === 'True' && programmed.observedGeneration === gw.metadata?.generation) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`Gateway ${ref.metadata.namespace}/${ref.metadata.name} not Programmed after ${timeoutMs} ms: ${JSON.stringify(last)}`);
}
