/**
 * KEA installed on the one-node cluster (dev/cluster.ts) the way a user installs it
 * (docs/install.md, issue 15 milestone 4):
 *   1. the images, built here (scripts/build-images.sh `kea ngf examples`) and imported into the
 *      node's containerd under the names the manifests use (no registry);
 *   2. the Gateway API standard CRDs and KEA's CRDs (dev/controlplane.ts installCrds), NGF's CRDs
 *      (dev/ngf.ts installNgfCrds);
 *   3. NGF 1.6.2 as pods: dev/cluster/ngf-1.6.2.yaml (its Helm chart's objects with the values
 *      that file explains);
 *   4. the dev OpenID provider (dev/idp-main.ts) as a daemon on the node's address
 *      ({@link IDP_ISSUER}), recorded in cluster.json so that `down` stops it;
 *   5. `kubectl apply --server-side -k dev/cluster/kea-dev-ngf1` (kustomize/overlays/dev plus
 *      kustomize/components/ngf-1.x plus the OIDC settings) or `-k dev/cluster/kea-prod-ngf1`
 *      (overlays/prod-ngf1 plus the Secrets it expects, sized for a 2-CPU node); objects of
 *      the other overlay that this one does not render (PodDisruptionBudgets, NetworkPolicies,
 *      HorizontalPodAutoscalers) are deleted; the controller and the policy server as
 *      Deployments; then the Gateway kea-system/kea Programmed;
 *   6. optionally examples' kea.yaml (MLService + ApiSchema) in namespace default.
 * The public listener is NGF's Service (ClusterIP, port 80), reached from the host through
 * kube-proxy: {@link KeaInstall.gatewayUrl}.
 */
import { spawn } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { parseAllDocuments } from 'yaml';
import { installCrds, REPO_ROOT } from './controlplane.js';
import { installNgfCrds, waitGatewayProgrammed, NGF_VERSION } from './ngf.js';
import { importImages, kubectl, readClusterInfo, startDaemon, daemonAlive, NODE_IP, DEFAULT_CLUSTER_DIR, type Daemon } from './cluster.js';

/** KEA's images as kustomize/overlays/dev names them. */
export const KEA_IMAGES = ['ghcr.io/kea-dev/kea-controller:dev', 'ghcr.io/kea-dev/kea-policy:dev'];
/** NGF's images as dev/cluster/ngf-1.6.2.yaml names them. */
export const NGF_IMAGES = [`ghcr.io/nginx/nginx-gateway-fabric:${NGF_VERSION}`, `ghcr.io/nginx/nginx-gateway-fabric/nginx:${NGF_VERSION}`];
/** Port of the dev OpenID provider on the node's address. */
export const IDP_PORT = 9400;
/** Issuer URL of the dev OpenID provider: reachable from the host and from every pod. */
export const IDP_ISSUER = `http://${NODE_IP}:${IDP_PORT}`;
/** Secret of the client-credentials clients `kea-script-<role>` (dev/idp-main.ts default). */
export const SCRIPT_SECRET = 'kea-dev-script-secret';
const NGF_MANIFEST = join(REPO_ROOT, 'dev', 'cluster', `ngf-${NGF_VERSION}.yaml`);
/** KEA's overlays as this cluster applies them (NGF 1.x component, OIDC settings, images tagged dev). */
export const KEA_OVERLAYS = { dev: join(REPO_ROOT, 'dev', 'cluster', 'kea-dev-ngf1'), prod: join(REPO_ROOT, 'dev', 'cluster', 'kea-prod-ngf1') } as const;
/** Redis of kustomize/components/redis as dev/cluster/kea-prod-ngf1 names it (scripts/build-images.sh redis). */
export const REDIS_IMAGE = 'localhost/kea/redis:7.0';
/**
 * Kinds only one overlay has: deleted when the other overlay is installed (`kubectl apply` never
 * prunes); Deployments and Services only in kea-system (the models' are the controller's).
 */
const OVERLAY_ONLY_KINDS = ['PodDisruptionBudget', 'NetworkPolicy', 'HorizontalPodAutoscaler', 'Deployment', 'Service'];

/** The image an example's Dockerfile is built as (its `docker build ... -t <image>` comment line). @throws Error when the line is missing. */
export async function exampleImage(example: string): Promise<string> {
  const text = await readFile(join(REPO_ROOT, 'examples', example, 'Dockerfile'), 'utf8');
  const m = /^#.*docker build .* -t (\S+) /m.exec(text);
  if (!m) throw new Error(`examples/${example}/Dockerfile has no "docker build ... -t <image>" line`);
  return m[1];
}

/**
 * Builds (cached by their inputs) KEA's images, NGF's and the examples' with
 * scripts/build-images.sh; progress lines go to `log`.
 * @throws Error with the script's last output lines when a build fails.
 */
export async function buildImages(targets: string[] = ['kea', 'ngf', 'examples'], log: (l: string) => void = () => undefined): Promise<void> {
  await new Promise<void>((res, rej) => {
    const p = spawn('bash', [join(REPO_ROOT, 'scripts', 'build-images.sh'), ...targets], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    const lines: string[] = [];
    const take = (d: Buffer) => {
      for (const l of d.toString().split('\n').filter(Boolean)) {
        lines.push(l);
        if (l.startsWith('[build-images]')) log(l);
      }
    };
    p.stdout.on('data', take);
    p.stderr.on('data', take);
    p.on('error', rej);
    p.on('exit', (code) => (code === 0 ? res() : rej(new Error(`scripts/build-images.sh ${targets.join(' ')}: exit ${code}\n${lines.slice(-30).join('\n')}`))));
  });
}

/** What {@link installKea} reports. */
export interface KeaInstall {
  /** `http://<NGF Service ClusterIP>`: the Gateway's public listener, from the host. */
  gatewayUrl: string;
  idpIssuer: string;
  /** Time of each step, ms. */
  steps: Array<{ step: string; ms: number }>;
}

/** Starts the dev OpenID provider as a daemon on {@link IDP_ISSUER} (kept when one already runs), recorded in cluster.json `extras`. */
async function ensureIdp(stateDir: string): Promise<void> {
  const info = await readClusterInfo(stateDir);
  if (!info) throw new Error(`no cluster recorded in ${stateDir}`);
  if (await daemonAlive(info.extras?.['dev-idp'])) return;
  const node = process.execPath;
  const d: Daemon = await startDaemon(
    'dev-idp',
    node,
    [join(REPO_ROOT, 'dist', 'dev', 'idp-main.js'), '--host', NODE_IP, '--port', String(IDP_PORT), '--gateway-url', 'http://localhost:8080'],
    join(info.stateDir, 'logs'),
  );
  info.extras = { ...(info.extras ?? {}), 'dev-idp': { pid: d.pid, startTime: d.startTime, log: d.log } };
  await writeFile(join(info.stateDir, 'cluster.json'), JSON.stringify(info, null, 2));
  const deadline = Date.now() + 20000;
  for (;;) {
    const ok = await fetch(`${IDP_ISSUER}/.well-known/openid-configuration`).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`dev IdP not ready on ${IDP_ISSUER} (log: ${d.log})`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Options of {@link installKea}. */
export interface InstallOptions {
  /** Which of {@link KEA_OVERLAYS} (default `dev`). */
  overlay?: keyof typeof KEA_OVERLAYS;
  /** examples/ folders whose images are imported too (default iris-v1, iris-v2, wine: the quick start and the canary). */
  examples?: string[];
}

/**
 * Installs NGF 1.6.2 and KEA (the dev or prod overlay + NGF 1.x component) on the running
 * cluster of `stateDir` and waits until the controller and the policy server are available and
 * the Gateway is Programmed. Idempotent (server-side apply); a Deployment whose image was
 * re-imported is restarted. The images must be built (see buildImages).
 * @throws Error when an image archive is missing, an apply fails (kubectl's stderr), or a
 *   rollout or the Gateway does not become ready in time.
 */
export async function installKea(stateDir = DEFAULT_CLUSTER_DIR, log: (l: string) => void = () => undefined, opts: InstallOptions = {}): Promise<KeaInstall> {
  const overlay = KEA_OVERLAYS[opts.overlay ?? 'dev'];
  const examples = opts.examples ?? ['iris-v1', 'iris-v2', 'wine'];
  const steps: Array<{ step: string; ms: number }> = [];
  let last = Date.now();
  const step = (name: string) => {
    steps.push({ step: name, ms: Date.now() - last });
    log(`${name}: ${Date.now() - last} ms`);
    last = Date.now();
  };
  const info = await readClusterInfo(stateDir);
  if (!info) throw new Error(`no cluster recorded in ${stateDir}: start one first (npm run cluster)`);
  const k = (args: string[], input?: string) => kubectl(stateDir, args, input);
  const exampleImages = await Promise.all(examples.map(exampleImage));
  const imported = await importImages(stateDir, [...KEA_IMAGES, ...NGF_IMAGES, ...exampleImages, ...(opts.overlay === 'prod' ? [REDIS_IMAGE] : [])]);
  step(`images (${imported.length} imported)`);
  // Same tag, new content: running pods keep the old image until restarted.
  const restart = async (ns: string, deployment: string, images: string[], force = false) => {
    if (!force && !images.some((i) => imported.includes(i))) return;
    const exists = await k(['-n', ns, 'get', 'deployment', deployment, '-o', 'name']).then(
      () => true,
      () => false,
    );
    if (exists) await k(['-n', ns, 'rollout', 'restart', `deployment/${deployment}`]);
  };
  await installCrds(info.kubeconfig);
  await installNgfCrds(info.kubeconfig);
  step('crds');
  await k(['apply', '--server-side', '--force-conflicts', '--field-manager=kea-cluster', '-f', NGF_MANIFEST]);
  await restart('nginx-gateway', 'ngf-nginx-gateway-fabric', NGF_IMAGES);
  await k(['-n', 'nginx-gateway', 'rollout', 'status', 'deployment/ngf-nginx-gateway-fabric', '--timeout=180s']);
  step('ngf');
  await ensureIdp(stateDir);
  step('dev-idp');
  // kea-config is a plain ConfigMap read with envFrom at start: a changed one rolls nothing by
  // itself, so the two Deployments are restarted when the apply changed it.
  const configVersion = () => k(['-n', 'kea-system', 'get', 'configmap', 'kea-config', '-o', 'jsonpath={.metadata.resourceVersion}']).catch(() => '');
  const before = await configVersion();
  await k(['apply', '--server-side', '--force-conflicts', '--field-manager=kea-cluster', '-k', overlay]);
  await pruneOverlayOnly(k, overlay, log);
  const configChanged = before !== '' && before !== (await configVersion());
  await restart('kea-system', 'kea-controller', [KEA_IMAGES[0]], configChanged);
  await restart('kea-system', 'kea-policy', [KEA_IMAGES[1]], configChanged);
  await k(['-n', 'kea-system', 'rollout', 'status', 'deployment/kea-controller', 'deployment/kea-policy', '--timeout=240s']);
  step('kea');
  const kc = new KubeConfig();
  kc.loadFromFile(info.kubeconfig);
  await waitGatewayProgrammed(kc, 'kea-system', 'kea', 120000);
  step('gateway-programmed');
  const ip = (await k(['-n', 'nginx-gateway', 'get', 'service', 'ngf-nginx-gateway-fabric', '-o', 'jsonpath={.spec.clusterIP}'])).trim();
  return { gatewayUrl: `http://${ip}`, idpIssuer: IDP_ISSUER, steps };
}

/**
 * Deletes the KEA objects (label `app.kubernetes.io/part-of=kea`) of {@link OVERLAY_ONLY_KINDS}
 * that `overlay` does not render: what another overlay left (e.g. prod's PodDisruptionBudgets
 * when dev is installed after it).
 */
async function pruneOverlayOnly(k: (args: string[]) => Promise<string>, overlay: string, log: (l: string) => void): Promise<void> {
  const rendered = new Set(
    parseAllDocuments(await k(['kustomize', overlay])).map((d) => {
      const o = d.toJS() as { kind?: string; metadata?: { name?: string; namespace?: string } } | null;
      return `${o?.kind}/${o?.metadata?.namespace}/${o?.metadata?.name}`;
    }),
  );
  const types = 'poddisruptionbudgets.policy,networkpolicies.networking.k8s.io,horizontalpodautoscalers.autoscaling,deployments.apps,services';
  const live = JSON.parse(await k(['get', types, '-A', '-l', 'app.kubernetes.io/part-of=kea', '-o', 'json'])) as {
    items: Array<{ kind: string; metadata: { name: string; namespace: string } }>;
  };
  for (const o of live.items) {
    if (!OVERLAY_ONLY_KINDS.includes(o.kind) || rendered.has(`${o.kind}/${o.metadata.namespace}/${o.metadata.name}`)) continue;
    if ((o.kind === 'Deployment' || o.kind === 'Service') && o.metadata.namespace !== 'kea-system') continue;
    log(`delete ${o.kind} ${o.metadata.namespace}/${o.metadata.name} (not in ${overlay})`);
    await k(['-n', o.metadata.namespace, 'delete', o.kind.toLowerCase(), o.metadata.name, '--ignore-not-found']);
  }
}

/** Applies examples/<name>/kea.yaml (MLService + ApiSchema) in `namespace` (server-side). */
export async function applyExample(stateDir: string, name: string, namespace = 'default'): Promise<void> {
  await kubectl(stateDir, [
    'apply',
    '--server-side',
    '--force-conflicts',
    '--field-manager=kea-cluster',
    '-n',
    namespace,
    '-f',
    join(REPO_ROOT, 'examples', name, 'kea.yaml'),
  ]);
}

/** `kubectl` output of the KEA pods and objects, for a failure message. */
export async function describeKea(stateDir: string): Promise<string> {
  const out: string[] = [];
  for (const args of [
    ['get', 'pods', '-A', '-o', 'wide'],
    ['get', 'apischemas,mlservices', '-A'],
    ['-n', 'kea-system', 'get', 'gateway', 'kea', '-o', 'yaml'],
  ]) {
    out.push(`$ kubectl ${args.join(' ')}`, await kubectl(stateDir, args).catch((e: Error) => e.message));
  }
  return out.join('\n');
}
