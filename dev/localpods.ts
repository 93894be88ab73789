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
 *
 * Predefined runtimes (controller/ir/runtimes.ts): a Deployment of the `framework: sklearn`
 * image (`kserve/sklearnserver`, any registry or tag) runs MLServer with its scikit-learn runtime
 * (`mlserver_sklearn.SKLearnModel`, from `$KEA_CACHE/venv-mlserver`, examples/runtimes/), which
 * speaks the same Open Inference Protocol v2 REST API as the cluster image. The model name,
 * model path and HTTP port come from the rendered `--model_name`, `--model_dir` and
 * `--http_port` arguments ({@link localRuntimeOf}); MLServer's gRPC and metrics ports are moved
 * off the HTTP port inside the pod's own network namespace ({@link mlserverSettings}). A
 * `file://` model path missing on the host is looked up under `$KEA_CACHE` (so
 * `file:///models/iris-sklearn/v1/model.joblib` is `$KEA_CACHE/models/iris-sklearn/v1/...`,
 * where scripts/setup.sh trains examples/iris-sklearn). Readiness: the probe path
 * (`/v2/health/ready`) answers 200–399, as the kubelet counts an httpGet probe, and so does the
 * model's own OIP v2 `/v2/models/{model}/ready` (MLServer's server-level answer is 200 with no
 * model loaded while it exits after a failed load). The other
 * predefined runtimes (pytorch, tensorflow, onnx) run only in a cluster.
 * Deployments with any other image are left alone (no endpoints).
 */
import { LABELS, MANAGED_BY_VALUE } from '../lib/api/types.js';
import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
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
  type V1Container,
  type V1Deployment,
  type V1Service,
} from '@kubernetes/client-node';
import { RUNTIMES } from '../controller/ir/runtimes.js';
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
  /** MLServer's virtual environment (predefined `sklearn` runtime); default `$KEA_CACHE/venv-mlserver`. */
  mlserverVenv?: string;
  /** Where a `file://` model path missing on the host is looked up; default `$KEA_CACHE`. */
  modelRoot?: string;
  /** Only Deployments and Services in these namespaces (default: every namespace). */
  namespaces?: string[];
  /** Poll period, ms; default 1000. */
  pollMs?: number;
  log?: (msg: string) => void;
}

/** One running local pod. */
export interface LocalPod {
  namespace: string;
  deployment: string;
  example: string;
  /** Set when the pod runs a predefined runtime rather than an example. */
  runtime?: LocalRuntime;
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

/** A predefined runtime a Deployment runs locally (see the module comment). */
export interface LocalRuntime {
  framework: 'sklearn';
  /** Model name in the runtime's URLs (`/v2/models/{model}/...`). */
  model: string;
  /** Model file or directory as the container sees it (`--model_dir`). */
  modelPath: string;
}

/** `registry/repo` of an image reference, without tag or digest. */
function imageRepository(image: string): string {
  const noDigest = image.split('@')[0];
  const lastSlash = noDigest.lastIndexOf('/');
  const colon = noDigest.lastIndexOf(':');
  return colon > lastSlash ? noDigest.slice(0, colon) : noDigest;
}

/** Value of `--flag=value` or `--flag value` in argv, else undefined. */
function flagValue(argv: string[], flag: string): string | undefined {
  for (let i = 0; i < argv.length; i++) {
    if (argv[i].startsWith(`${flag}=`)) return argv[i].slice(flag.length + 1);
    if (argv[i] === flag && i + 1 < argv.length) return argv[i + 1];
  }
  return undefined;
}

/**
 * The predefined runtime a container runs locally, or undefined: its image is the `sklearn`
 * runtime's repository (controller/ir/runtimes.ts `RUNTIMES.sklearn.image`, optionally behind
 * `docker.io/` or another registry, any tag or digest) and its args name the model
 * (`--model_name`, default `model`; a model name that is not a plain file name, such as `..`
 * or one with a `/`, is not run) and the model path (`--model_dir`, default `/mnt/models`).
 * Pure.
 */
export function localRuntimeOf(container: Pick<V1Container, 'image' | 'args' | 'command'>): LocalRuntime | undefined {
  if (!container.image) return undefined;
  const want = imageRepository(RUNTIMES.sklearn.image);
  const repo = imageRepository(container.image);
  if (repo !== want && !repo.endsWith(`/${want}`)) return undefined;
  const argv = [...(container.command ?? []), ...(container.args ?? [])];
  const model = flagValue(argv, '--model_name') ?? 'model';
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(model)) return undefined;
  return { framework: 'sklearn', model, modelPath: flagValue(argv, '--model_dir') ?? '/mnt/models' };
}

/**
 * MLServer 1.7 configuration of a local `sklearn` runtime pod: `settings.json` (server) and
 * `model-settings.json` (the model), for `mlserver start <dir>`. HTTP on `port` on all
 * addresses of the pod's namespace; gRPC on another port of that namespace (MLServer always
 * starts it); the Prometheus metrics server off (`metrics_endpoint: null`); inference in the
 * server process (`parallel_workers: 0`: no worker pool on a 2-CPU machine). `modelPath` is the
 * host path of the model file (or a folder holding `model.joblib`, `model.pickle` or `model.pkl`).
 * Pure.
 */
export function mlserverSettings(
  rt: LocalRuntime,
  port: number,
  modelPath: string,
): { settings: Record<string, unknown>; modelSettings: Record<string, unknown> } {
  const grpcPort = port === 9500 ? 9501 : 9500;
  return {
    settings: { host: '0.0.0.0', http_port: port, grpc_port: grpcPort, metrics_endpoint: null, parallel_workers: 0, load_models_at_startup: true },
    modelSettings: { name: rt.model, implementation: 'mlserver_sklearn.SKLearnModel', parameters: { uri: modelPath } },
  };
}

/**
 * MLServer's argv and env for a runtime pod: writes `settings.json` and
 * `<model>/model-settings.json` ({@link mlserverSettings}) into `<logDir>/<ns>_<deployment>.mlserver`,
 * with the model path resolved on the host (as is when it exists, else under `modelRoot`).
 */
async function mlserverCommand(
  d: V1Deployment,
  pod: LocalPod,
  rt: LocalRuntime,
  where: { logDir: string; mlserverVenv: string; modelRoot: string },
): Promise<{ argv: string[]; env: Record<string, string>; cwd: string }> {
  const onHost = (await pathExists(rt.modelPath)) ? rt.modelPath : join(where.modelRoot, rt.modelPath);
  const { settings, modelSettings } = mlserverSettings(rt, pod.port, onHost);
  const dir = join(where.logDir, `${pod.namespace}_${pod.deployment}.mlserver`);
  await mkdir(join(dir, rt.model), { recursive: true });
  await writeFile(join(dir, 'settings.json'), JSON.stringify(settings, null, 2));
  await writeFile(join(dir, rt.model, 'model-settings.json'), JSON.stringify(modelSettings, null, 2));
  const env: Record<string, string> = {};
  for (const e of d.spec!.template.spec!.containers[0].env ?? []) if (e.value !== undefined) env[e.name] = e.value;
  return { argv: [join(where.mlserverVenv, 'bin', 'mlserver'), 'start', dir], env, cwd: dir };
}

/** What a Deployment runs locally: a predefined runtime, an example folder, or nothing (`replicas: 0` too). */
async function podSource(d: V1Deployment, images: Map<string, string>, examplesDir: string): Promise<{ example: string; runtime?: LocalRuntime } | undefined> {
  if ((d.spec?.replicas ?? 1) === 0) return undefined;
  const c = d.spec?.template.spec?.containers[0];
  const runtime = c && localRuntimeOf(c);
  if (runtime) return { example: `runtime:${runtime.framework}`, runtime };
  const image = c?.image;
  if (image && images.has(image)) return { example: images.get(image)! };
  const byName = exampleOfImage(image);
  return byName && (await pathExists(join(examplesDir, byName))) ? { example: byName } : undefined;
}

/**
 * Polls a starting pod until every path answers a status `ok` accepts (in order, in one round,
 * 2 s timeout each, every 250 ms), then sets `pod.ready` and calls `onReady`. Stops when the
 * pod's process exits or the pod is stopping.
 */
async function probeReady(pod: LocalPod, paths: string[], ok: (status: number) => boolean, onReady: () => void): Promise<void> {
  const answers = async (path: string): Promise<boolean> => {
    const r = await fetch(`http://${pod.host.address}:${pod.port}${path}`, { signal: AbortSignal.timeout(2000) });
    await r.arrayBuffer();
    return ok(r.status);
  };
  while (!pod.stopping && pod.proc && pod.proc.exitCode === null) {
    try {
      let all = true;
      for (const p of paths) if (!(all = await answers(p))) break;
      if (all) {
        pod.ready = true;
        onReady();
        return;
      }
    } catch {
      /* not yet */
    }
    await new Promise((r) => setTimeout(r, 250));
  }
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
  const mlserverVenv = opts.mlserverVenv ?? join(KEA_CACHE, 'venv-mlserver');
  const modelRoot = opts.modelRoot ?? KEA_CACHE;
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

  async function runPod(d: V1Deployment, pod: LocalPod): Promise<void> {
    const { argv, env, cwd } = pod.runtime
      ? await mlserverCommand(d, pod, pod.runtime, { logDir: opts.logDir, mlserverVenv, modelRoot })
      : { ...(await commandFor(d, pod.example, pod.port)), cwd: join(examplesDir, pod.example) };
    const binDir = join(pod.runtime ? mlserverVenv : venv, 'bin');
    const path = d.spec!.template.spec!.containers[0].readinessProbe?.httpGet?.path ?? '/';
    const logPath = join(opts.logDir, `${pod.namespace}_${pod.deployment}.log`);
    const fd = openSync(logPath, 'a');
    const proc = spawnInNetns(pod.host, argv[0], argv.slice(1), {
      cwd,
      env: { ...process.env, ...env, PATH: `${binDir}:${process.env.PATH}`, PYTHONUNBUFFERED: '1' },
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
    // A runtime pod is ready when its probe path answers 2xx/3xx and its model is loaded too:
    // MLServer answers `/v2/health/ready` 200 with no model while it shuts down after a load failure.
    const onReady = () => {
      log(`pod ${pod.namespace}/${pod.deployment} ready at ${pod.host.address}:${pod.port}`);
      kick();
    };
    if (pod.runtime) void probeReady(pod, [path, `/v2/models/${encodeURIComponent(pod.runtime.model)}/ready`], (s) => s >= 200 && s < 400, onReady);
    else void probeReady(pod, [path], (s) => s < 500, onReady);
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
    const mine = (o: KubernetesObject) => !opts.namespaces || opts.namespaces.includes(o.metadata?.namespace ?? '');
    const deps = (await objects.list<V1Deployment & KubernetesObject>('apps/v1', 'Deployment')).items.filter(mine);
    const svcs = (await objects.list<V1Service & KubernetesObject>('v1', 'Service')).items.filter(mine);
    const wanted = new Map<string, { d: V1Deployment; example: string; runtime?: LocalRuntime; synthetic?: boolean }>();
    const images = await imageIndex();
    for (const d of deps) {
      const source = await podSource(d, images, examplesDir);
      if (source) wanted.set(`${d.metadata!.namespace}/${d.metadata!.name}`, { d, ...source });
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
    for (const [key, { d, example, runtime }] of wanted) {
      if (pods.has(key) || stopped) continue;
      const [ns, name] = key.split('/');
      const hn = hostName(ns, name);
      await deleteHost(`${opts.bridge.name}-${hn}`); // leftover of a crashed run
      const host = await createHost(opts.bridge, hn);
      const pod: LocalPod = {
        namespace: ns,
        deployment: name,
        example,
        runtime,
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
