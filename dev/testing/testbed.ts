/**
 * The gateway test bed shared by the integration tests that drive real nginx-gateway-fabric
 * (dev/gateway, dev/ngf, dev/ngf-policies, dev/ngf-reloads, dev/passthrough): a client of the
 * integration project's kube-apiserver (KUBECONFIG from test/global-setup.mjs), a state folder,
 * backends in network namespaces on a bridge (dev/netns.ts), the NGF gateway (dev/ngf.ts), and
 * one teardown for all of them. Also the raw HTTP client these tests use: node:http on a new
 * connection per request, because fetch cannot set `Host` and an nginx reload closes idle
 * keep-alive connections, which is not what most of these tests are about.
 *
 * Needs root (network namespaces, mounts) like the tests that use it.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KubeConfig, KubernetesObjectApi, PatchStrategy, type KubernetesObject } from '@kubernetes/client-node';
import { startNgf, type NgfOptions, type RunningNgf } from '../ngf.js';
import { createBridge, createHost, deleteBridge, registerService, spawnInNetns, type Bridge, type NetnsHost } from '../netns.js';

/** One gateway test bed; create with {@link GatewayTestbed.create}, end with {@link GatewayTestbed.stop}. */
export class GatewayTestbed {
  readonly api: KubernetesObjectApi;
  private bridgeP?: Promise<Bridge>;
  private readonly procs: ChildProcess[] = [];
  private stopped = false;
  /** The gateway, once {@link GatewayTestbed.gateway} has started it. */
  gw?: RunningNgf;

  private constructor(
    readonly kc: KubeConfig,
    /** The state folder (NGF's mounts and logs), removed by {@link GatewayTestbed.stop} unless `KEA_KEEP_STATE` is set. */
    readonly stateDir: string,
    private readonly fieldManager: string,
  ) {
    this.api = KubernetesObjectApi.makeApiClient(kc);
  }

  /**
   * @param prefix - state folder name prefix (e.g. `kea-gw-`)
   * @param fieldManager - the server-side apply field manager of {@link GatewayTestbed.apply}
   * @throws when KUBECONFIG is unset or unreadable
   */
  static async create(prefix: string, fieldManager: string): Promise<GatewayTestbed> {
    const kc = new KubeConfig();
    kc.loadFromFile(process.env.KUBECONFIG!);
    return new GatewayTestbed(kc, await mkdtemp(join(tmpdir(), prefix)), fieldManager);
  }

  /** Server-side apply (force) with the test bed's field manager. */
  apply(o: KubernetesObject): Promise<KubernetesObject> {
    return this.api.patch(o, undefined, undefined, this.fieldManager, true, PatchStrategy.ServerSideApply);
  }

  /** The backend processes started so far (for a test of the teardown). */
  get processes(): readonly ChildProcess[] {
    return this.procs;
  }

  /** The bridge the backends live on (created at first use). */
  bridge(): Promise<Bridge> {
    return (this.bridgeP ??= createBridge());
  }

  /**
   * Starts `node -e <script> ...args` in a new network namespace on the bridge and waits for its
   * first stdout line (the script prints one once it listens).
   * @returns the namespace host (its `address` is what a Service's EndpointSlice lists)
   * @throws when the process exits before it printed
   */
  async backend(name: string, script: string, args: string[] = []): Promise<NetnsHost> {
    const host = await createHost(await this.bridge(), name);
    const p = spawnInNetns(host, process.execPath, ['-e', script, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
    this.procs.push(p);
    await new Promise<void>((res, rej) => {
      p.stdout!.once('data', () => res());
      p.once('exit', (c) => rej(new Error(`backend ${name} exited ${c}`)));
    });
    return host;
  }

  /**
   * {@link backend} `host`, then a Service `namespace/name` (`port` → 8080) with an
   * EndpointSlice on the backend's address (dev/netns.ts `registerService`).
   */
  async service(s: { namespace: string; name: string; host: string; script: string; args?: string[]; port?: number }): Promise<NetnsHost> {
    const host = await this.backend(s.host, s.script, s.args);
    await registerService(this.kc, { namespace: s.namespace, name: s.name, port: s.port ?? 80, targetPort: 8080, addresses: [host.address] });
    return host;
  }

  /** Starts NGF and nginx (dev/ngf.ts) with this bed's kubeconfig and state folder. */
  async gateway(opts: Omit<NgfOptions, 'kubeconfig' | 'stateDir'> = {}): Promise<RunningNgf> {
    this.gw = await startNgf({ kubeconfig: process.env.KUBECONFIG!, stateDir: this.stateDir, ...opts });
    return this.gw;
  }

  /** Stops the gateway and the backends, deletes the bridge and (unless `KEA_KEEP_STATE`) the state folder; idempotent. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    await this.gw?.stop();
    for (const p of this.procs) p.kill('SIGTERM');
    if (this.bridgeP) await deleteBridge(await this.bridgeP);
    if (!process.env.KEA_KEEP_STATE) await rm(this.stateDir, { recursive: true, force: true });
  }
}

/** An HTTP answer as the tests read it. */
export interface HttpAnswer {
  status: number;
  headers: http.IncomingHttpHeaders;
  /** The body, decoded as UTF-8. */
  text: string;
}

/**
 * One request on a new connection (no agent), so a test may set `Host`.
 * @param opts.timeoutMs - socket idle timeout, ms (default 5000)
 * @throws on a socket error or the timeout
 */
export function httpRequest(
  url: string,
  opts: { method?: string; headers?: Record<string, string>; body?: Buffer | string; timeoutMs?: number } = {},
): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: opts.method ?? 'GET', headers: opts.headers, agent: false, timeout: opts.timeoutMs ?? 5000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`${opts.method ?? 'GET'} ${url}: timeout`)));
    // nginx may answer (e.g. 413) before the body is sent and close: the answer is what counts.
    req.on('error', reject);
    req.end(opts.body);
  });
}

/**
 * Sends `n` GETs, `concurrency` at a time, to backends that answer JSON `{ "backend": … }`.
 * @returns counts by backend name, or by `status:<code>` for any non-200 answer
 */
export async function split(url: string, n: number, concurrency = 8): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  let sent = 0;
  const worker = async () => {
    while (sent < n) {
      sent++;
      const r = await httpRequest(url);
      const key = r.status === 200 ? (JSON.parse(r.text) as { backend: string }).backend : `status:${r.status}`;
      counts[key] = (counts[key] ?? 0) + 1;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return counts;
}
