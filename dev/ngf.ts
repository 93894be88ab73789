/**
 * nginx-gateway-fabric (NGF) 1.6.2, the local stack's Gateway API implementation (dev/stack.ts
 * `gateway` step, hence `kea up` and the e2e suite; why NGF: docs/adr/0010-ngf-local-gateway.md):
 * Debian's nginx (with the njs and stream modules) and NGF's `static-mode` control plane, run
 * outside any cluster against the local kube-apiserver (KUBECONFIG), as in NGF 1.x's pod where
 * both containers share the PID namespace and the /etc/nginx and /var/run/nginx volumes (field
 * notes §3).
 *
 * Layout (a private mount namespace, `unshare -m --propagation private`, bind mounts with
 * `mount -n` so nothing is recorded on the host):
 *
 *   /etc/nginx      ← <stateDir>/etc-nginx   nginx.conf (NGF's own, patched below), mime.types,
 *                                            grpc-error-*.conf, njs/httpmatches.js, and the
 *                                            folders NGF writes: conf.d, stream-conf.d,
 *                                            main-includes, secrets, includes
 *   /run            ← <stateDir>/run         /var/run/nginx: nginx.pid and NGF's unix sockets
 *   /var/lib/nginx  ← <stateDir>/var-lib-nginx   client body and proxy temp files
 *   /var/log/nginx  ← <stateDir>/var-log-nginx   nginx's default access log
 *
 * /run is replaced as a whole inside the namespace (in the pod it is the image's empty /run plus
 * the emptyDir /var/run/nginx): the host has no /run/nginx to mount over, and creating one would
 * leave a trace on the host. nginx and NGF use nothing else under /run (the kubeconfig names the
 * API server by IP address).
 *
 * nginx starts first and holds the namespace (its master is the process `unshare` execs); NGF is
 * started into that namespace with `nsenter --mount=/proc/<nginx>/ns/mnt`, so it can be
 * restarted (supervised, with backoff) while nginx keeps serving. NGF reads
 * /var/run/nginx/nginx.pid, reloads nginx with SIGHUP and checks the new workers and the
 * configuration version through /var/run/nginx/nginx-config-version.sock.
 *
 * The four fixes NGF 1.6.2 needs here (field notes §3): the build's `-X` flags
 * (scripts/build-ngf.sh); an NginxProxy with `disableHTTP2: true` (Debian's nginx 1.22 has no
 * `http2` directive) and `ipFamily: ipv4` as the GatewayClass' `parametersRef`, applied before
 * NGF starts; `load_module` of Debian's dynamic stream module and `js_import` of httpmatches.js
 * from where it is; `--leader-election-disable` (with leader election NGF exits after an API
 * server outage of ~10 s).
 *
 * Where the `load_module` goes: NGF rewrites `main-includes/main.conf` with every configuration it
 * generates (internal/mode/static/nginx/config/main_config.go: `error_log` and main-context
 * snippets), so a `load_module` written there would be gone after NGF's first reload and the
 * `stream {}` block of nginx.conf would then fail. It goes into nginx.conf, which NGF never writes.
 * main.conf is written with what NGF's init container writes (`error_log stderr info;`) so that
 * nginx starts with the main context NGF keeps.
 *
 * Gateway API CRDs: NGF 1.6.2 is built for Gateway API v1.2.1; the project installs v1.6.1
 * (dev/controlplane.ts GATEWAY_API_VERSION), whose CRDs also serve every kind and version NGF
 * 1.6.2 watches without experimental features: GatewayClass, Gateway, HTTPRoute and GRPCRoute v1,
 * ReferenceGrant v1beta1. NGF then reports GatewayClass `SupportedVersion=False`
 * (UnsupportedVersion, "best effort") and works. Installing v1.2.1 instead is refused on an API
 * server that has v1.6.1: v1.6.1 ships the ValidatingAdmissionPolicy
 * `safe-upgrades.gateway.networking.k8s.io`, which forbids CRDs older than v1.5.0.
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { promisify } from 'node:util';
import { randomUUID } from 'node:crypto';
import { mkdir, writeFile, readFile, readdir, copyFile, symlink, rm, access, chmod } from 'node:fs/promises';
import { openSync, closeSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { KubeConfig, KubernetesObjectApi, PatchStrategy, type KubernetesObject } from '@kubernetes/client-node';
import { KEA_CACHE, freePort } from './controlplane.js';
import { readlink } from 'node:fs/promises';

const run = promisify(execFile);

/** Pinned NGF release; keep in sync with scripts/build-ngf.sh. Built for Gateway API v1.2.1. */
export const NGF_VERSION = process.env.NGF_VERSION ?? '1.6.2';
/** `spec.controllerName` of the GatewayClass NGF claims (`--gateway-ctlr-name`). */
export const NGF_CONTROLLER_NAME = 'gateway.nginx.org/nginx-gateway-controller';
/** GatewayClass name (`--gatewayclass`), the same as in a cluster (manifests/gateway.yaml). */
export const NGF_GATEWAY_CLASS = 'nginx';
/** Name of the cluster-scoped NginxProxy (gateway.nginx.org/v1alpha1) the GatewayClass references. */
export const NGF_NGINX_PROXY = 'kea-local';
/** Field manager of every object written here. */
export const NGF_FIELD_MANAGER = 'kea-dev-ngf';
/** Debian's dynamic modules (libnginx-mod-http-js, libnginx-mod-stream). */
export const NGINX_MODULES_DIR = '/usr/lib/nginx/modules';

/** Host paths bind-mounted from the state dir inside the private mount namespace. */
const MOUNTS = [
  { dir: 'etc-nginx', target: '/etc/nginx' },
  { dir: 'var-lib-nginx', target: '/var/lib/nginx' },
  { dir: 'var-log-nginx', target: '/var/log/nginx' },
  { dir: 'run', target: '/run' }, // last: a source under /run would be hidden after it
] as const;
/** Folders under /etc/nginx that NGF writes (and empties at start). */
const NGF_FOLDERS = ['conf.d', 'stream-conf.d', 'main-includes', 'secrets', 'includes'];

/** Sources extracted by scripts/build-ngf.sh (CRDs, nginx.conf, httpmatches.js). */
export function ngfSourceDir(): string {
  return process.env.KEA_NGF_SRC ?? join(KEA_CACHE, 'build', `nginx-gateway-fabric-${NGF_VERSION}`);
}

/** Path of the cached NGF binary (env KEA_NGF_BIN overrides). @throws Error when it or the extracted sources are missing. */
export async function ngfBinary(): Promise<string> {
  const path = process.env.KEA_NGF_BIN ?? join(KEA_CACHE, 'bin', `ngf-${NGF_VERSION}`);
  for (const p of [path, join(ngfSourceDir(), '.complete')]) {
    try {
      await access(p);
    } catch {
      throw new Error(`${p} is missing: run scripts/setup.sh (scripts/build-ngf.sh builds NGF ${NGF_VERSION} from ../shared/vendor)`);
    }
  }
  return path;
}

/**
 * Installs NGF's own CRDs (gateway.nginx.org: NginxProxy, ClientSettingsPolicy,
 * UpstreamSettingsPolicy, ObservabilityPolicy, SnippetsFilter, NginxGateway) from the vendored
 * archive's `config/crd/bases` by server-side apply, and waits until they are Established. The
 * Gateway API CRDs are expected to be installed already (dev/controlplane.ts installCrds).
 * @throws Error with kubectl's stderr when the apply fails, or after 60 s without Established.
 */
export async function installNgfCrds(kubeconfig: string): Promise<void> {
  const dir = join(ngfSourceDir(), 'config', 'crd', 'bases');
  const files = (await readdir(dir))
    .filter((f) => f.endsWith('.yaml'))
    .sort()
    .map((f) => join(dir, f));
  const args = ['--kubeconfig', kubeconfig, 'apply', '--server-side', '--force-conflicts', `--field-manager=${NGF_FIELD_MANAGER}`];
  for (const f of files) args.push('-f', f);
  await run('kubectl', args, { maxBuffer: 16 << 20 });
  const names = files.map((f) => f.replace(/^.*\/gateway\.nginx\.org_(.*)\.yaml$/, '$1.gateway.nginx.org'));
  const deadline = Date.now() + 60000;
  for (;;) {
    const { stdout } = await run('kubectl', ['--kubeconfig', kubeconfig, 'get', 'crd', ...names, '-o', 'json'], { maxBuffer: 16 << 20 });
    const items = (JSON.parse(stdout) as { items: Array<{ status?: { conditions?: Array<{ type: string; status: string }> } }> }).items;
    if (items.length === names.length && items.every((c) => c.status?.conditions?.some((k) => k.type === 'Established' && k.status === 'True'))) return;
    if (Date.now() > deadline) throw new Error(`NGF CRDs not Established after 60 s: ${names.join(', ')}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** A running gateway: data plane + Gateway API controller (the local stack's `gateway` step). */
export interface RunningGateway {
  /** Pid of the data plane's main process (nginx's master). */
  pid: number;
  publicPort: number;
  internalPort: number;
  /** `http://127.0.0.1:<publicPort>` */
  publicUrl: string;
  /** `http://127.0.0.1:<internalPort>` */
  internalUrl: string;
  /** The controller's log. */
  logPath: string;
  /** Time from the start call to ready, ms. */
  startMs: number;
  /** Stops every process of the gateway; resolves once they have exited. Safe to call twice. */
  stop(): Promise<void>;
}

export interface GatewayResourceOptions {
  /** Gateway namespace; default `kea-system`. */
  namespace?: string;
  /** Gateway name; default `kea`. */
  name?: string;
  /** GatewayClass name; default {@link NGF_GATEWAY_CLASS}. */
  gatewayClassName?: string;
  publicPort: number;
  internalPort: number;
  /** Hostname of the internal listener; default `*.kea.internal`. */
  internalHostname?: string;
}

/**
 * The Namespace and Gateway of the KEA topology (docs/TEAM.md): listeners `public` (routes from
 * every namespace) and `internal` (hostname `*.kea.internal`, routes of the Gateway's own
 * namespace only), the same as manifests/gateway.yaml.
 */
export function gatewayObjects(o: GatewayResourceOptions): KubernetesObject[] {
  const namespace = o.namespace ?? 'kea-system';
  const allowAll = { namespaces: { from: 'All' } };
  // The internal listener admits only routes of the Gateway's own namespace (kea-system, where
  // KEA renders its internal routes): a tenant cannot attach a route there, nor read the token
  // those routes match on (docs/adr/0009-internal-routes.md). Same as manifests/gateway.yaml.
  const allowSame = { namespaces: { from: 'Same' } };
  return [
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: namespace } },
    {
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'Gateway',
      metadata: { name: o.name ?? 'kea', namespace },
      spec: {
        gatewayClassName: o.gatewayClassName ?? NGF_GATEWAY_CLASS,
        listeners: [
          { name: 'public', protocol: 'HTTP', port: o.publicPort, allowedRoutes: allowAll },
          { name: 'internal', protocol: 'HTTP', port: o.internalPort, hostname: o.internalHostname ?? '*.kea.internal', allowedRoutes: allowSame },
        ],
      },
    } as KubernetesObject,
  ];
}

/** What {@link ngfObjects} makes the objects for (the Gateway's, see {@link gatewayObjects}). */
export type NgfGatewayOptions = GatewayResourceOptions;

/**
 * The NginxProxy, the GatewayClass referencing it, and the Namespace and Gateway of the KEA
 * topology ({@link gatewayObjects}, the same listeners as manifests/gateway.yaml).
 */
export function ngfObjects(o: NgfGatewayOptions): KubernetesObject[] {
  const className = o.gatewayClassName ?? NGF_GATEWAY_CLASS;
  const topology = gatewayObjects({ ...o, gatewayClassName: className });
  return [
    {
      apiVersion: 'gateway.nginx.org/v1alpha1',
      kind: 'NginxProxy',
      metadata: { name: NGF_NGINX_PROXY },
      // Debian's nginx 1.22 has no `http2` directive (needs >= 1.25.1); IPv4 only: no `listen [::]:`.
      spec: { disableHTTP2: true, ipFamily: 'ipv4' },
    } as KubernetesObject,
    {
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'GatewayClass',
      metadata: { name: className },
      spec: {
        controllerName: NGF_CONTROLLER_NAME,
        description: 'KEA local stack: NGF static mode, Debian nginx',
        parametersRef: { group: 'gateway.nginx.org', kind: 'NginxProxy', name: NGF_NGINX_PROXY },
      },
    } as KubernetesObject,
    ...topology,
  ];
}

/**
 * Server-side applies {@link ngfObjects} (field manager {@link NGF_FIELD_MANAGER}, forced). A
 * 429 (the API server's storage for a CRD installed a moment ago is still initializing) is
 * retried every second for up to 30 s.
 * @throws the API server's error otherwise.
 */
export async function applyNgfObjects(kc: KubeConfig, o: NgfGatewayOptions): Promise<void> {
  const api = KubernetesObjectApi.makeApiClient(kc);
  const deadline = Date.now() + 30000;
  for (const obj of ngfObjects(o)) {
    for (;;) {
      try {
        await api.patch(obj, undefined, undefined, NGF_FIELD_MANAGER, true, PatchStrategy.ServerSideApply);
        break;
      } catch (e) {
        if ((e as { code?: number }).code !== 429 || Date.now() > deadline) throw e;
        await new Promise((r) => setTimeout(r, 1000));
      }
    }
  }
}

interface Condition {
  type: string;
  status: string;
  reason?: string;
  message?: string;
  observedGeneration?: number;
}

/**
 * Waits until the Gateway reports `Programmed=True` for its current generation.
 * @throws Error after `timeoutMs` (default 30000) with the Gateway's last conditions.
 */
export async function waitGatewayProgrammed(kc: KubeConfig, namespace: string, name: string, timeoutMs = 30000): Promise<void> {
  const api = KubernetesObjectApi.makeApiClient(kc);
  const ref = { apiVersion: 'gateway.networking.k8s.io/v1', kind: 'Gateway', metadata: { name, namespace } };
  const deadline = Date.now() + timeoutMs;
  let last: Condition[] = [];
  while (Date.now() < deadline) {
    // A transient error (429 while the API server's storage initializes) is polled through.
    const gw = await api.read<KubernetesObject & { status?: { conditions?: Condition[] } }>(ref).catch(() => undefined);
    if (!gw) {
      await new Promise((r) => setTimeout(r, 200));
      continue;
    }
    last = gw.status?.conditions ?? [];
    const programmed = last.find((c) => c.type === 'Programmed');
    if (programmed?.status === 'True' && programmed.observedGeneration === gw.metadata?.generation) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`Gateway ${namespace}/${name} not Programmed after ${timeoutMs} ms: ${JSON.stringify(last)}`);
}

export interface NgfOptions {
  /**
   * Kubeconfig NGF watches with (passed as KUBECONFIG). Neither it nor `stateDir` may be under
   * /etc/nginx, /run, /var/lib/nginx or /var/log/nginx (replaced in the namespace); its server
   * must be an IP address or a name resolvable without /run.
   */
  kubeconfig: string;
  /** Folder for the mounted directories, the binary link and the logs (created). */
  stateDir: string;
  /** Port of the `public` listener; default: a free port. */
  publicPort?: number;
  /** Port of the `internal` listener; default: a free port. */
  internalPort?: number;
  /** NGF's health port (`/readyz`), default: a free port (NGF's default 8081 is the internal listener's port in a cluster). */
  healthPort?: number;
  /** Gateway namespace/name; default `kea-system`/`kea`. NGF is started with `--gateway=<namespace>/<name>`. */
  namespace?: string;
  name?: string;
  /** Hostname of the internal listener; default `*.kea.internal`. */
  internalHostname?: string;
  /** Install NGF's CRDs first (installNgfCrds); default true. */
  installCrds?: boolean;
  /** Wait for the Gateway's `Programmed=True` after NGF is ready; default true. */
  waitProgrammed?: boolean;
  /** How long to wait for nginx, then NGF's /readyz, then Programmed, ms each; default 30000. */
  startTimeoutMs?: number;
  /** First restart delay of NGF after it exits, ms; doubles per consecutive restart up to `maxBackoffMs`. Default 1000. */
  backoffMs?: number;
  /** Default 10000. */
  maxBackoffMs?: number;
  /** Supervision events (NGF exits and restarts, nginx exits); default: none. */
  log?: (line: string) => void;
  /** Called with NGF's pid at each (re)start, e.g. to record it for a later cleanup. */
  onNgfPid?: (pid: number) => void;
}

/** A running nginx + NGF pair (RunningGateway: `pid` is nginx's master, `logPath` NGF's log). */
export interface RunningNgf extends RunningGateway {
  /** nginx master pid (holds the mount namespace). */
  nginxPid: number;
  /** Current NGF pid (changes on each restart). */
  ngfPid(): number | undefined;
  /** How many times the supervisor restarted NGF. */
  restarts(): number;
  /** NGF's health port; `http://127.0.0.1:<healthPort>/readyz`. */
  healthPort: number;
  stateDir: string;
  /** nginx's stderr (error log). */
  nginxLogPath: string;
  /** Time from NGF's (first) spawn to /readyz 200, ms. */
  ngfReadyMs: number;
  /** nginx's mount namespace (`mnt:[<inode>]`, the /proc/<pid>/ns/mnt link): every process in it belongs to this gateway. */
  mountNs: string;
  /** Resolves when NGF answers /readyz again (e.g. after a restart); @throws Error after `timeoutMs`. */
  waitReady(timeoutMs?: number): Promise<void>;
}

function alive(pid: number | undefined): boolean {
  if (!pid) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function tail(path: string, lines = 30): Promise<string> {
  return (await readFile(path, 'utf8').catch(() => '')).split('\n').slice(-lines).join('\n');
}

async function waitUntil(
  what: string,
  timeoutMs: number,
  check: () => Promise<boolean>,
  failed?: () => Promise<string | undefined>,
  detail?: () => Promise<string>,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const why = await failed?.();
    if (why) throw new Error(`${what}: ${why}`);
    if (await check().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${what}: not after ${timeoutMs} ms${detail ? `\n${await detail()}` : ''}`);
}

/**
 * Writes /etc/nginx's content: NGF's nginx.conf with Debian's stream module loaded and
 * `js_import` pointing at the copied httpmatches.js, mime.types (the host's), NGF's
 * grpc-error-*.conf, the folders NGF writes, and main-includes/main.conf as NGF's init
 * container writes it. @throws Error when NGF's nginx.conf no longer has the lines patched here.
 */
async function writeNginxConfig(etc: string, src: string): Promise<void> {
  const conf = join(src, 'internal/mode/static/nginx/conf');
  const jsImport = 'js_import /usr/lib/nginx/modules/njs/httpmatches.js;';
  const jsModule = `load_module ${NGINX_MODULES_DIR}/ngx_http_js_module.so;`;
  let nginxConf = await readFile(join(conf, 'nginx.conf'), 'utf8');
  if (!nginxConf.includes(jsImport) || !nginxConf.includes(jsModule))
    throw new Error(`NGF's nginx.conf changed: expected "${jsModule}" and "${jsImport}" in ${join(conf, 'nginx.conf')}`);
  nginxConf = nginxConf
    .replace(
      jsModule,
      `${jsModule}\n# KEA: Debian builds the stream module as a dynamic module (NGF's image has it built in).\nload_module ${NGINX_MODULES_DIR}/ngx_stream_module.so;`,
    )
    .replace(jsImport, 'js_import /etc/nginx/njs/httpmatches.js;');
  await mkdir(etc, { recursive: true });
  for (const d of [...NGF_FOLDERS, 'njs']) await mkdir(join(etc, d), { recursive: true });
  await writeFile(join(etc, 'nginx.conf'), nginxConf);
  await copyFile('/etc/nginx/mime.types', join(etc, 'mime.types'));
  for (const f of ['grpc-error-pages.conf', 'grpc-error-locations.conf']) await copyFile(join(conf, f), join(etc, f));
  await copyFile(join(src, 'internal/mode/static/nginx/modules/src/httpmatches.js'), join(etc, 'njs', 'httpmatches.js'));
  await writeFile(join(etc, 'main-includes', 'main.conf'), 'error_log stderr info;\n');
}

/**
 * Starts nginx, then NGF static mode, in one private mount namespace; installs NGF's CRDs and
 * applies the NginxProxy, GatewayClass and Gateway (ngfObjects) before NGF starts; waits for
 * NGF's `/readyz` (nginx configured) and, unless `waitProgrammed: false`, for the Gateway's
 * `Programmed=True`. NGF is supervised: when it exits it is started again with backoff (1 s
 * doubling to 10 s by default) while nginx keeps serving the last configuration. stop(): SIGTERM
 * to NGF, then SIGQUIT to nginx (graceful), SIGKILL after a timeout; the namespace and its mounts
 * go with the last process. Needs root (unshare, mount, nsenter).
 * @throws Error when the binary or sources are missing (run scripts/setup.sh), or nginx or NGF
 *   exits or is not ready in time (the message carries the tail of its log). Nothing is left
 *   running then.
 */
export async function startNgf(opts: NgfOptions): Promise<RunningNgf> {
  const t0 = Date.now();
  const bin = await ngfBinary();
  const src = ngfSourceDir();
  const log = opts.log ?? (() => undefined);
  const timeout = opts.startTimeoutMs ?? 30000;
  const stateDir = resolve(opts.stateDir);
  const namespace = opts.namespace ?? 'kea-system';
  const name = opts.name ?? 'kea';
  const publicPort = opts.publicPort ?? (await freePort());
  const internalPort = opts.internalPort ?? (await freePort());
  let healthPort = opts.healthPort ?? (await freePort());
  // The listener ports are not bound yet: a free port could be one of them.
  while (!opts.healthPort && (healthPort === publicPort || healthPort === internalPort)) healthPort = await freePort();
  if (healthPort === publicPort || healthPort === internalPort) throw new Error(`startNgf: healthPort ${healthPort} is a listener port`);
  const kubeconfig = resolve(opts.kubeconfig);
  const kc = new KubeConfig();
  kc.loadFromFile(kubeconfig);
  // Inside the namespace these paths are the state dir's folders: NGF could not reach its binary
  // link or the kubeconfig under them.
  for (const [what, path] of [
    ['stateDir', stateDir],
    ['kubeconfig', kubeconfig],
  ]) {
    const hidden = MOUNTS.find((m) => path === m.target || path.startsWith(`${m.target}/`) || (m.target === '/run' && path.startsWith('/var/run/')));
    if (hidden) throw new Error(`startNgf: ${what} ${path} is under ${hidden.target}, which is replaced inside nginx's mount namespace`);
  }

  // 1. State dir: the mounted folders (0755: nginx's workers run as nobody), a fresh config.
  await mkdir(stateDir, { recursive: true });
  for (const m of MOUNTS) {
    await rm(join(stateDir, m.dir), { recursive: true, force: true });
    await mkdir(join(stateDir, m.dir), { recursive: true });
    await chmod(join(stateDir, m.dir), 0o755);
  }
  await mkdir(join(stateDir, 'run', 'nginx'), { mode: 0o755 });
  await writeNginxConfig(join(stateDir, 'etc-nginx'), src);
  // NGF runs as <stateDir>/gateway (a link to the cached binary): its command line names the
  // state dir, like nginx's (`env KEA_NGF_STATE=...` below), so leftovers can be found by it.
  const ngfLink = join(stateDir, 'gateway');
  await rm(ngfLink, { force: true });
  await symlink(bin, ngfLink);

  // 2. Kubernetes objects NGF needs before it starts.
  if (opts.installCrds ?? true) await installNgfCrds(kubeconfig);
  await applyNgfObjects(kc, { namespace, name, publicPort, internalPort, internalHostname: opts.internalHostname });

  // 3. nginx: the namespace holder. `unshare` execs sh, which mounts and execs nginx: the child's pid is nginx's master.
  const nginxLogPath = join(stateDir, 'nginx.log');
  const logPath = join(stateDir, 'ngf.log');
  const mountScript = `set -e\n${MOUNTS.map((_, i) => `mount -n --bind "$${i + 1}" ${MOUNTS[i].target}`).join('\n')}\nexec nginx -g "$${MOUNTS.length + 1}"`;
  const nginxArgs = [
    '-m',
    '--propagation',
    'private',
    '--',
    'sh',
    '-c',
    mountScript,
    'kea-ngf-mounts',
    ...MOUNTS.map((m) => join(stateDir, m.dir)),
    `daemon off; env KEA_NGF_STATE=${stateDir};`,
  ];
  for (const m of MOUNTS) {
    try {
      await access(m.target);
    } catch {
      throw new Error(`${m.target} is missing on this host: run scripts/setup.sh (it installs Debian's nginx)`);
    }
  }
  let fd = openSync(nginxLogPath, 'a');
  const nginx = spawn('unshare', nginxArgs, { stdio: ['ignore', fd, fd] });
  closeSync(fd);
  const nginxPid = nginx.pid!;
  const nginxExited = new Promise<void>((r) => nginx.once('exit', () => r()));

  let stopping = false;
  let ngf: ChildProcess | undefined;
  let ngfExited: Promise<void> = Promise.resolve();
  let restarts = 0;
  let consecutive = 0;
  let timer: NodeJS.Timeout | undefined;
  let lastSpawn = 0;
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    KUBECONFIG: kubeconfig,
    POD_NAME: 'kea-ngf-local',
    POD_NAMESPACE: namespace,
    POD_IP: '127.0.0.1',
    POD_UID: randomUUID(),
  };
  delete env.KUBERNETES_SERVICE_HOST;
  delete env.KUBERNETES_SERVICE_PORT;
  const ngfArgs = [
    `--mount=/proc/${nginxPid}/ns/mnt`,
    '--',
    ngfLink,
    'static-mode',
    `--gateway-ctlr-name=${NGF_CONTROLLER_NAME}`,
    `--gatewayclass=${NGF_GATEWAY_CLASS}`,
    `--gateway=${namespace}/${name}`,
    `--health-port=${healthPort}`,
    '--metrics-disable',
    '--leader-election-disable',
    '--product-telemetry-disable',
  ];

  const spawnNgf = () => {
    fd = openSync(logPath, 'a');
    const p = spawn('nsenter', ngfArgs, { stdio: ['ignore', fd, fd], env });
    closeSync(fd);
    ngf = p;
    if (p.pid) opts.onNgfPid?.(p.pid);
    lastSpawn = Date.now();
    ngfExited = new Promise<void>((r) => p.once('exit', () => r()));
    p.once('exit', (code, sig) => {
      if (stopping) return;
      if (!alive(nginxPid) || nginx.exitCode !== null || nginx.signalCode !== null) {
        log(`ngf exited (${code ?? sig}) and nginx is gone: not restarted`);
        return;
      }
      // A run of 60 s or more counts as healthy: the backoff starts again from its first step.
      consecutive = Date.now() - lastSpawn >= 60000 ? 1 : consecutive + 1;
      restarts++;
      const backoff = Math.min(opts.maxBackoffMs ?? 10000, (opts.backoffMs ?? 1000) * 2 ** (consecutive - 1));
      log(`ngf exited (${code ?? sig}); restart #${restarts} in ${backoff} ms`);
      timer = setTimeout(() => {
        if (stopping) return;
        spawnNgf();
        log(`ngf restarted (pid ${ngf?.pid})`);
      }, backoff);
    });
  };

  nginx.once('exit', (code, sig) => {
    if (stopping) return;
    log(`nginx exited (${code ?? sig}) while running: stopping ngf (log: ${nginxLogPath})`);
    stopping = true;
    if (timer) clearTimeout(timer);
    ngf?.kill('SIGTERM');
  });

  const killAfter = async (p: ChildProcess | undefined, exited: Promise<void>, signal: NodeJS.Signals, ms: number) => {
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    p.kill(signal);
    const timed = await Promise.race([exited.then(() => false), new Promise<boolean>((r) => setTimeout(() => r(true), ms).unref())]);
    if (timed) {
      p.kill('SIGKILL');
      await exited;
    }
  };
  let stopped: Promise<void> | undefined;
  const stop = () =>
    (stopped ??= (async () => {
      stopping = true;
      if (timer) clearTimeout(timer);
      await killAfter(ngf, ngfExited, 'SIGTERM', 5000);
      // QUIT: graceful shutdown (workers finish their requests); TERM would be nginx's fast shutdown.
      await killAfter(nginx, nginxExited, 'SIGQUIT', 10000);
    })());

  const readyz = async () => {
    const r = await fetch(`http://127.0.0.1:${healthPort}/readyz`, { signal: AbortSignal.timeout(1000) });
    await r.arrayBuffer();
    return r.status === 200;
  };
  const waitReady = async (timeoutMs = timeout) => waitUntil('ngf /readyz', timeoutMs, readyz, async () => (stopping ? 'stopped' : undefined));

  try {
    const pidFile = join(stateDir, 'run', 'nginx', 'nginx.pid');
    await waitUntil(
      'nginx started (nginx.pid)',
      timeout,
      async () => (await readFile(pidFile, 'utf8')).trim() === String(nginxPid),
      async () =>
        nginx.exitCode !== null || nginx.signalCode !== null ? `nginx exited (${nginx.exitCode ?? nginx.signalCode}):\n${await tail(nginxLogPath)}` : undefined,
    );
    const tNgf = Date.now();
    spawnNgf();
    await waitUntil(
      'ngf /readyz',
      timeout,
      readyz,
      async () => {
        if (nginx.exitCode !== null || nginx.signalCode !== null) return `nginx exited:\n${await tail(nginxLogPath)}`;
        if (restarts > 0) return `ngf exited during start:\n${await tail(logPath)}`;
        return undefined;
      },
      async () => `ngf log (${logPath}):\n${await tail(logPath, 10)}\nnginx log (${nginxLogPath}):\n${await tail(nginxLogPath, 10)}`,
    );
    const ngfReadyMs = Date.now() - tNgf;
    const mountNs = await readlink(`/proc/${nginxPid}/ns/mnt`);
    if (opts.waitProgrammed ?? true) await waitGatewayProgrammed(kc, namespace, name, timeout);
    return {
      pid: nginxPid,
      nginxPid,
      ngfPid: () => ngf?.pid,
      restarts: () => restarts,
      publicPort,
      internalPort,
      healthPort,
      publicUrl: `http://127.0.0.1:${publicPort}`,
      internalUrl: `http://127.0.0.1:${internalPort}`,
      logPath,
      nginxLogPath,
      stateDir,
      startMs: Date.now() - t0,
      ngfReadyMs,
      mountNs,
      waitReady,
      stop,
    };
  } catch (e) {
    await stop();
    throw e;
  }
}
