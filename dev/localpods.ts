/**
 * A minimal stand-in for the kubelet and the EndpointSlice controller, for the local stack only.
 * There is no container runtime here, so Deployments whose image names a folder of `examples/`
 * are run as plain processes, each in its own network namespace (dev/netns.ts); every Service
 * with a selector gets an EndpointSlice listing the ready "pods" it selects.
 *
 * Takes in (polled from the API server every `pollMs`): apps/v1 Deployments, v1 Services.
 * Gives out: processes (one per Deployment, whatever `replicas` says), EndpointSlices
 * `<service>-kea`, and Deployment `status` (replicas, readyReplicas, availableReplicas,
 * observedGeneration), which KEA's controller reads for MLService readiness.
 *
 * Which example a Deployment runs: the image named by a `docker build ... -t <image>` line in
 * `examples/<dir>/Dockerfile` (e.g. `ghcr.io/kea-dev/examples-iris:v1` → examples/iris-v1), else
 * `<anything>/<dir>[:<tag>]` when examples/<dir> exists. A hand-written Service with a selector
 * that no Deployment serves runs examples/<service name> when that folder has a Dockerfile. The command is the container's
 * `command`+`args` if set, else the JSON-form `ENTRYPOINT`/`CMD` of `examples/<dir>/Dockerfile`,
 * else `uvicorn app:app`. `uvicorn`/`python`/`pip` resolve to the `$KEA_CACHE/venv`. `--host`
 * becomes 0.0.0.0 and `--port` the container port named `http` (or the first one); `ENV`
 * lines of the Dockerfile and the container's literal `env` values are passed on.
 * Readiness: the container's readinessProbe httpGet path (default `/`) answers < 500.
 * Deployments with any other image are left alone (no endpoints).
 */
import { LABELS, MANAGED_BY_VALUE } from '../lib/api/types.js';
import { readFile, readdir } from 'node:fs/promises';
import { openSync, closeSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import {
  AppsV1Api,
  KubeConfig,
  KubernetesObjectApi,
  PatchStrategy,
  setHeaderOptions,
  type KubernetesObject,
  type V1Deployment,
  type V1Service,
} from '@kubernetes/client-node';
import { createHost, deleteHost, spawnInNetns, type Bridge, type NetnsHost } from './netns.js';
import { KEA_CACHE, REPO_ROOT } from './controlplane.js';
import { pathExists, stopProcess } from '../lib/process.js';

/** Label on every EndpointSlice written here. */
export const MANAGED_BY = 'kea.dev-local';
const FIELD_MANAGER = 'kea-dev-localpods';

export interface LocalPodsOptions {
  kubeconfig: string;
  bridge: Bridge;
  /** Where each pod's log goes (`<ns>_<name>.log`). */
  logDir: string;
  /** Folder of the examples; default `<repo>/examples`. */
  examplesDir?: string;
  /** Python virtual environment; default `$KEA_CACHE/venv`. */
  venv?: string;
  /** Poll period, ms; default 1000. */
  pollMs?: number;
  log?: (msg: string) => void;
}

/** One running local pod. */
export interface LocalPod {
  namespace: string;
  deployment: string;
  example: string;
  host: NetnsHost;
  port: number;
  labels: Record<string, string>;
  ready: boolean;
  generation: number;
  proc?: ChildProcess;
  restarts: number;
  /** Spec hash: a change restarts the pod. */
  specKey: string;
  stopping: boolean;
}

export interface LocalPods {
  /** Current pods, keyed `<ns>/<deployment>`. */
  pods(): ReadonlyMap<string, LocalPod>;
  /** Resolves after one full sync pass (list, start/stop pods, write EndpointSlices). */
  syncOnce(): Promise<void>;
  /** Resolves when every pod that exists is ready, or rejects after `timeoutMs`. */
  waitReady(timeoutMs: number): Promise<void>;
  /** Stops polling, kills every pod and deletes its namespace. Slices stay (the API server may be gone). */
  stop(): Promise<void>;
}

/** Parses the JSON (exec) form of ENTRYPOINT and CMD and simple `ENV` lines of a Dockerfile. */
export function parseDockerfile(text: string): { entrypoint: string[]; cmd: string[]; env: Record<string, string> } {
  const out = { entrypoint: [] as string[], cmd: [] as string[], env: {} as Record<string, string> };
  const lines = text.replace(/\\\n/g, ' ').split('\n');
  for (const raw of lines) {
    const line = raw.trim();
    const m = /^(ENTRYPOINT|CMD|ENV)\s+(.*)$/i.exec(line);
    if (!m) continue;
    const [, kw, rest] = m;
    if (kw.toUpperCase() === 'ENV') {
      const pairs = rest.match(/(\w+)=("[^"]*"|\S+)/g);
      if (pairs)
        for (const p of pairs) {
          const i = p.indexOf('=');
          out.env[p.slice(0, i)] = p.slice(i + 1).replace(/^"|"$/g, '');
        }
      else {
        const [k, ...v] = rest.split(/\s+/);
        out.env[k] = v.join(' ');
      }
      continue;
    }
    let argv: string[];
    try {
      argv = JSON.parse(rest) as string[];
    } catch {
      argv = ['sh', '-c', rest];
    }
    if (kw.toUpperCase() === 'CMD') out.cmd = argv;
    else out.entrypoint = argv;
  }
  return out;
}

/** `examples/<dir>` named by an image reference, or undefined. */
export function exampleOfImage(image: string | undefined): string | undefined {
  if (!image) return undefined;
  const noDigest = image.split('@')[0];
  const lastSlash = noDigest.lastIndexOf('/');
  const repo = noDigest.slice(lastSlash + 1).split(':')[0];
  return /^[a-z0-9][a-z0-9._-]*$/.test(repo) ? repo : undefined;
}

function setFlag(argv: string[], flag: string, value: string): string[] {
  const out = [...argv];
  const i = out.indexOf(flag);
  if (i >= 0 && i + 1 < out.length) out[i + 1] = value;
  else {
    const j = out.findIndex((a) => a.startsWith(`${flag}=`));
    if (j >= 0) out[j] = `${flag}=${value}`;
    else out.push(flag, value);
  }
  return out;
}

function selects(selector: Record<string, string> | undefined, labels: Record<string, string>): boolean {
  if (!selector || !Object.keys(selector).length) return false;
  return Object.entries(selector).every(([k, v]) => labels[k] === v);
}

/**
 * Starts the local pod runner. Resolves after the first sync pass (pods started, not necessarily ready).
 * @throws Error when the first list from the API server fails.
 */
export async function startLocalPods(opts: LocalPodsOptions): Promise<LocalPods> {
  const kc = new KubeConfig();
  kc.loadFromFile(opts.kubeconfig);
  const objects = KubernetesObjectApi.makeApiClient(kc);
  const apps = kc.makeApiClient(AppsV1Api);
  const examplesDir = opts.examplesDir ?? join(REPO_ROOT, 'examples');
  const venv = opts.venv ?? join(KEA_CACHE, 'venv');
  const log = opts.log ?? (() => undefined);
  mkdirSync(opts.logDir, { recursive: true });
  const pods = new Map<string, LocalPod>();
  const sliceCache = new Map<string, string>();
  const statusCache = new Map<string, string>();
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let syncing: Promise<void> | undefined;

  /** image → example folder, from the `docker build ... -t <image>` line each examples/<dir>/Dockerfile documents. */
  async function imageIndex(): Promise<Map<string, string>> {
    const out = new Map<string, string>();
    for (const dir of await readdir(examplesDir).catch(() => [] as string[])) {
      const text = await readFile(join(examplesDir, dir, 'Dockerfile'), 'utf8').catch(() => '');
      for (const m of text.matchAll(/-t\s+(\S+)/g)) out.set(m[1], dir);
    }
    return out;
  }

  async function commandFor(d: V1Deployment, example: string, port: number): Promise<{ argv: string[]; env: Record<string, string> }> {
    const c = d.spec!.template.spec!.containers[0];
    let df = { entrypoint: [] as string[], cmd: [] as string[], env: {} as Record<string, string> };
    try {
      df = parseDockerfile(await readFile(join(examplesDir, example, 'Dockerfile'), 'utf8'));
    } catch {
      /* no Dockerfile: defaults */
    }
    const entry = c.command?.length ? c.command : df.entrypoint;
    const args = c.args?.length ? c.args : c.command?.length ? [] : df.cmd;
    let argv = [...entry, ...args];
    if (!argv.length) argv = ['uvicorn', 'app:app'];
    const tools: Record<string, string> = { uvicorn: 'uvicorn', python: 'python', python3: 'python', pip: 'pip' };
    if (tools[argv[0]]) argv[0] = join(venv, 'bin', tools[argv[0]]);
    if (argv.some((a) => /uvicorn$/.test(a)) || argv.includes('uvicorn')) {
      argv = setFlag(setFlag(argv, '--host', '0.0.0.0'), '--port', String(port));
    }
    const env: Record<string, string> = { ...df.env };
    for (const e of c.env ?? []) if (e.value !== undefined) env[e.name] = e.value;
    env.PORT = String(port);
    return { argv, env };
  }

  function containerPort(d: V1Deployment): number {
    const ports = d.spec!.template.spec!.containers[0].ports ?? [];
    return (ports.find((p) => p.name === 'http') ?? ports[0])?.containerPort ?? 8080;
  }

  async function probeReady(pod: LocalPod, path: string): Promise<void> {
    while (!pod.stopping && pod.proc && pod.proc.exitCode === null) {
      try {
        const r = await fetch(`http://${pod.host.address}:${pod.port}${path}`, { signal: AbortSignal.timeout(2000) });
        await r.arrayBuffer();
        if (r.status < 500) {
          pod.ready = true;
          log(`pod ${pod.namespace}/${pod.deployment} ready at ${pod.host.address}:${pod.port}`);
          kick();
          return;
        }
      } catch {
        /* not yet */
      }
      await new Promise((r) => setTimeout(r, 250));
    }
  }

  async function runPod(d: V1Deployment, pod: LocalPod): Promise<void> {
    const { argv, env } = await commandFor(d, pod.example, pod.port);
    const path = d.spec!.template.spec!.containers[0].readinessProbe?.httpGet?.path ?? '/';
    const logPath = join(opts.logDir, `${pod.namespace}_${pod.deployment}.log`);
    const fd = openSync(logPath, 'a');
    const proc = spawnInNetns(pod.host, argv[0], argv.slice(1), {
      cwd: join(examplesDir, pod.example),
      env: { ...process.env, ...env, PATH: `${join(venv, 'bin')}:${process.env.PATH}`, PYTHONUNBUFFERED: '1' },
      stdio: ['ignore', fd, fd],
    });
    closeSync(fd);
    pod.proc = proc;
    pod.ready = false;
    log(`pod ${pod.namespace}/${pod.deployment}: ${argv.join(' ')} in ${pod.host.netns} (log ${logPath})`);
    proc.once('exit', (code, sig) => {
      pod.ready = false;
      if (pod.stopping || stopped) return;
      pod.restarts++;
      const backoff = Math.min(10000, 1000 * 2 ** Math.min(pod.restarts - 1, 4));
      log(`pod ${pod.namespace}/${pod.deployment} exited (${code ?? sig}); restart #${pod.restarts} in ${backoff} ms`);
      kick();
      setTimeout(() => {
        if (!pod.stopping && !stopped) void runPod(d, pod);
      }, backoff);
    });
    void probeReady(pod, path);
  }

  async function stopPod(key: string, pod: LocalPod): Promise<void> {
    pod.stopping = true;
    pod.ready = false;
    await stopProcess(pod.proc, 5000);
    await deleteHost(pod.host);
    pods.delete(key);
  }

  function hostName(ns: string, name: string): string {
    const base = `${ns}-${name}`.toLowerCase().replace(/[^a-z0-9-]/g, '-');
    return base.length > 40 ? `${base.slice(0, 33)}-${Math.abs(hash(base)).toString(36).slice(0, 6)}` : base;
  }

  async function sync(): Promise<void> {
    const deps = (await objects.list<V1Deployment & KubernetesObject>('apps/v1', 'Deployment')).items;
    const svcs = (await objects.list<V1Service & KubernetesObject>('v1', 'Service')).items;
    const wanted = new Map<string, { d: V1Deployment; example: string; synthetic?: boolean }>();
    const images = await imageIndex();
    const exampleFor = async (image: string | undefined): Promise<string | undefined> => {
      if (image && images.has(image)) return images.get(image);
      const byName = exampleOfImage(image);
      return byName && (await pathExists(join(examplesDir, byName))) ? byName : undefined;
    };
    for (const d of deps) {
      const example = await exampleFor(d.spec?.template.spec?.containers[0]?.image);
      if (!example || (d.spec?.replicas ?? 1) === 0) continue;
      wanted.set(`${d.metadata!.namespace}/${d.metadata!.name}`, { d, example });
    }
    // A hand-written Service with a selector that no Deployment serves, named like an example
    // folder (e.g. Service `grades` → examples/grades): run that example as its pod.
    for (const svc of svcs) {
      const sel = svc.spec?.selector;
      const name = svc.metadata!.name!;
      const ns = svc.metadata!.namespace!;
      if (!sel || !Object.keys(sel).length) continue;
      // Services KEA's controller emits always come with their own Deployment, which may just
      // not be listed yet: never stand in for them (that raced the v2 rollout).
      if (svc.metadata?.labels?.[LABELS.managedBy] === MANAGED_BY_VALUE) continue;
      const served = [...wanted.values()].some(({ d }) => d.metadata?.namespace === ns && selects(sel, d.spec?.template.metadata?.labels ?? {}));
      if (served || !(await pathExists(join(examplesDir, name, 'Dockerfile')))) continue;
      const sp = svc.spec?.ports?.[0];
      const target = typeof sp?.targetPort === 'number' ? sp.targetPort : Number(sp?.targetPort) || sp?.port || 8080;
      const d: V1Deployment = {
        metadata: { namespace: ns, name, generation: 0 },
        spec: {
          selector: { matchLabels: sel },
          template: {
            metadata: { labels: sel },
            spec: {
              containers: [
                {
                  name: 'app',
                  image: `local/${name}`,
                  ports: [{ name: 'http', containerPort: target }],
                  readinessProbe: { httpGet: { path: '/openapi.json', port: target } },
                },
              ],
            },
          },
        },
      };
      wanted.set(`${ns}/svc-${name}`, { d, example: name, synthetic: true });
    }
    // Stop pods whose Deployment went away or changed.
    for (const [key, pod] of pods) {
      const w = wanted.get(key);
      const specKey = w ? JSON.stringify(w.d.spec?.template) : '';
      if (!w || specKey !== pod.specKey) {
        log(`pod ${key}: ${w ? 'spec changed, restarting' : 'deployment gone, stopping'}`);
        await stopPod(key, pod);
      } else pod.generation = w.d.metadata?.generation ?? 0;
    }
    // Start missing pods.
    for (const [key, { d, example }] of wanted) {
      if (pods.has(key) || stopped) continue;
      const [ns, name] = key.split('/');
      const hn = hostName(ns, name);
      await deleteHost(`${opts.bridge.name}-${hn}`); // leftover of a crashed run
      const host = await createHost(opts.bridge, hn);
      const pod: LocalPod = {
        namespace: ns,
        deployment: name,
        example,
        host,
        port: containerPort(d),
        labels: d.spec?.template.metadata?.labels ?? {},
        ready: false,
        generation: d.metadata?.generation ?? 0,
        restarts: 0,
        specKey: JSON.stringify(d.spec?.template),
        stopping: false,
      };
      pods.set(key, pod);
      await runPod(d, pod);
    }
    // Deployment status.
    for (const [key, { d, synthetic }] of wanted) {
      if (synthetic) continue;
      const pod = pods.get(key);
      const n = pod?.ready ? 1 : 0;
      const status = {
        observedGeneration: d.metadata?.generation,
        replicas: 1,
        updatedReplicas: 1,
        readyReplicas: n,
        availableReplicas: n,
        unavailableReplicas: 1 - n,
      };
      const s = JSON.stringify(status);
      if (statusCache.get(key) === s && d.status?.availableReplicas === n) continue;
      try {
        await apps.patchNamespacedDeploymentStatus(
          { name: d.metadata!.name!, namespace: d.metadata!.namespace!, body: { status } },
          setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
        );
        statusCache.set(key, s);
      } catch (e) {
        log(`deployment status ${key}: ${String(e)}`);
      }
    }
    // EndpointSlices for Services with a selector that matches a local pod's labels.
    const live = new Set<string>();
    for (const svc of svcs) {
      const ns = svc.metadata!.namespace!;
      const sel = svc.spec?.selector;
      const matched = [...pods.values()].filter((p) => p.namespace === ns && selects(sel, p.labels));
      if (!sel || !matched.length) continue;
      const name = `${svc.metadata!.name}-kea`;
      live.add(`${ns}/${name}`);
      const ports = (svc.spec?.ports ?? []).map((p) => ({
        name: p.name ?? '',
        protocol: p.protocol ?? 'TCP',
        port: typeof p.targetPort === 'number' ? p.targetPort : /^\d+$/.test(String(p.targetPort ?? '')) ? Number(p.targetPort) : matched[0].port,
      }));
      const slice = {
        apiVersion: 'discovery.k8s.io/v1',
        kind: 'EndpointSlice',
        metadata: { name, namespace: ns, labels: { 'kubernetes.io/service-name': svc.metadata!.name!, 'endpointslice.kubernetes.io/managed-by': MANAGED_BY } },
        addressType: 'IPv4',
        ports,
        endpoints: matched.map((p) => ({ addresses: [p.host.address], conditions: { ready: p.ready, serving: p.ready, terminating: false } })),
      };
      const s = JSON.stringify(slice);
      if (sliceCache.get(`${ns}/${name}`) === s) continue;
      await objects.patch(slice, undefined, undefined, FIELD_MANAGER, true, PatchStrategy.ServerSideApply);
      sliceCache.set(`${ns}/${name}`, s);
    }
    // Delete slices of ours whose Service or pods are gone.
    for (const key of [...sliceCache.keys()]) {
      if (live.has(key)) continue;
      const [namespace, name] = key.split('/');
      await objects.delete({ apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', metadata: { name, namespace } }).catch(() => undefined);
      sliceCache.delete(key);
    }
  }

  function runSync(): Promise<void> {
    if (!syncing) {
      syncing = sync()
        .catch((e) => log(`localpods sync failed: ${String(e)}`))
        .finally(() => {
          syncing = undefined;
        });
    }
    return syncing;
  }

  function kick(): void {
    if (!stopped) void runSync();
  }

  function schedule(): void {
    if (stopped) return;
    timer = setTimeout(() => {
      void runSync().finally(schedule);
    }, opts.pollMs ?? 1000);
  }

  const syncOnce = async () => {
    await syncing;
    await runSync();
  };

  await sync();
  schedule();

  return {
    pods: () => pods,
    syncOnce,
    async waitReady(timeoutMs: number) {
      const deadline = Date.now() + timeoutMs;
      while (Date.now() < deadline) {
        if ([...pods.values()].every((p) => p.ready)) {
          await syncOnce();
          return;
        }
        await new Promise((r) => setTimeout(r, 200));
      }
      const notReady = [...pods.values()].filter((p) => !p.ready).map((p) => `${p.namespace}/${p.deployment}`);
      throw new Error(`local pods not ready after ${timeoutMs} ms: ${notReady.join(', ')} (logs in ${opts.logDir})`);
    },
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      await syncing;
      for (const [key, pod] of [...pods]) await stopPod(key, pod);
    },
  };
}

function hash(s: string): number {
  let h = 0;
  for (let i = 0; i < s.length; i++) h = (Math.imul(31, h) + s.charCodeAt(i)) | 0;
  return h;
}
