/**
 * A real one-node Kubernetes cluster on this machine (`npm run cluster`, issue 15, field notes
 * §7): etcd, kube-apiserver, kube-controller-manager, kube-scheduler, containerd + runc, a
 * kubelet, kube-proxy (iptables mode) and CoreDNS as a Deployment, with images built locally
 * (scripts/build-images.sh) and no registry. Binaries: scripts/build-controlplane.sh and
 * scripts/build-node.sh, cached by version in $KEA_CACHE/bin.
 *
 * Network (one Linux bridge, no dummy device):
 *   bridge {@link NODE_BRIDGE} with {@link NODE_IP}/24: the node's InternalIP, the API server's
 *   address (`https://10.244.0.1:6443`), and the pods' gateway (CNI `bridge` plugin, host-local
 *   IPAM in {@link POD_CIDR}, `ipMasq`, `hairpinMode`); Services in {@link SERVICE_CIDR} (routed
 *   to the bridge, so the host reaches ClusterIPs through kube-proxy's rules); cluster DNS at
 *   {@link DNS_IP}, domain `cluster.local`.
 *
 * The required fixes of field notes §7: containerd CRI `restrict_oom_score_adj = true` (root
 * lacks CAP_SYS_RESOURCE: without it every sandbox fails); `--kubelet-preferred-address-types=
 * InternalIP`; the node IP on a pre-created bridge; the kubelet's `cgroupRoot` created by hand in
 * each cgroup v1 hierarchy, `cgroupDriver: cgroupfs`; `makeIPTablesUtilChains: false`; the
 * sandbox image imported under exactly containerd's `sandbox_image` name; buildah/containerd with
 * runc (Debian's crun 1.8.1 refuses cgroup v1 hybrid).
 *
 * Processes are daemons (own session, logs in `<stateDir>/logs/`), recorded with their start
 * times in `<stateDir>/cluster.json`: `npm run cluster` returns once the node is Ready and DNS
 * answers; {@link stopCluster} (`npm run cluster -- down`) stops them and restores the host
 * (dev/cluster-host.ts: sysctls, iptables chains, mounts, cgroups, fixed paths, the bridge).
 * State kept across runs in `<stateDir>` (default `$KEA_CACHE/cluster`): certificates, etcd's
 * data, containerd's image store (so a warm start imports nothing). Only one cluster per machine
 * (fixed paths, ports 6443/10250 on the node IP). Needs root.
 */
import { spawn, execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdir, writeFile, readFile, readdir, rm, access, readlink } from 'node:fs/promises';
import { openSync, closeSync } from 'node:fs';
import { request } from 'node:https';
import { join, resolve } from 'node:path';
import { KEA_CACHE, KUBE_VERSION, ETCD_VERSION } from './controlplane.js';
import { hostPrefixes, prefixesOverlap } from './netns.js';
import {
  snapshotHost,
  createCgroups,
  cgroupPids,
  removeCgroupTree,
  cleanupChains,
  dropCreatedTables,
  unmountUnder,
  restoreSysctls,
  removeCreatedPaths,
  type HostSnapshot,
} from './cluster-host.js';

const run = promisify(execFile);

/** CoreDNS release (kubeadm's for Kubernetes 1.34); keep in sync with scripts/build-node.sh. */
export const COREDNS_VERSION = process.env.COREDNS_VERSION ?? 'v1.12.1';
/** The node's name (kubelet `--hostname-override`, kube-proxy `hostnameOverride`). */
export const NODE_NAME = 'kea-node';
/** Bridge holding the node IP; the pods' veths are attached to it by the CNI bridge plugin. */
export const NODE_BRIDGE = 'keanode0';
/** The node's InternalIP, the API server's address and the pods' gateway. */
export const NODE_IP = '10.244.0.1';
/** Pod addresses (host-local IPAM, from .10). */
export const POD_CIDR = '10.244.0.0/24';
/** Service ClusterIPs; the first is `kubernetes.default`, {@link DNS_IP} the cluster DNS. */
export const SERVICE_CIDR = '10.96.0.0/16';
export const DNS_IP = '10.96.0.10';
export const CLUSTER_DOMAIN = 'cluster.local';
/** API server port on {@link NODE_IP}. */
export const API_PORT = 6443;
/** The kubelet's `cgroupRoot`, created in every cgroup hierarchy. */
export const CGROUP_ROOT = 'kea-node';
/** Images are referenced as `localhost/kea/<name>:<tag>` (scripts/build-images.sh). */
export const IMAGE_PREFIX = 'localhost/kea';
export const PAUSE_IMAGE = `${IMAGE_PREFIX}/pause:${KUBE_VERSION}`;
export const COREDNS_IMAGE = `${IMAGE_PREFIX}/coredns:${COREDNS_VERSION}`;
/** Default state folder. */
export const DEFAULT_CLUSTER_DIR = process.env.KEA_CLUSTER_DIR ?? join(KEA_CACHE, 'cluster');
/** Where scripts/build-images.sh leaves one docker-archive per image (`<name>_<tag>.tar` + `.inputs`). */
export const IMAGE_ARCHIVES = join(KEA_CACHE, 'images');

/** Components started as daemons, in start order. */
export const COMPONENTS = ['etcd', 'kube-apiserver', 'containerd', 'kube-controller-manager', 'kube-scheduler', 'kubelet', 'kube-proxy'] as const;
export type Component = (typeof COMPONENTS)[number];

/** A recorded daemon: pid plus its start time (field 22 of /proc/<pid>/stat), so a reused pid is never signalled. */
export interface Daemon {
  pid: number;
  startTime: string;
  log: string;
}

/** One measured step of the start. */
export interface ClusterStep {
  step: string;
  ms: number;
}

/** `<stateDir>/cluster.json`: what `down` and the tests read. */
export interface ClusterInfo {
  stateDir: string;
  /** Admin (system:masters) kubeconfig. */
  kubeconfig: string;
  /** `https://10.244.0.1:6443` */
  server: string;
  nodeName: string;
  nodeIp: string;
  dnsIp: string;
  /** containerd's socket (for `ctr --address`). */
  containerdSocket: string;
  daemons: Partial<Record<Component, Daemon>>;
  /** Other daemons started for the cluster (e.g. `dev-idp`, dev/cluster-kea.ts); stopped first by `down`. */
  extras?: Record<string, Daemon>;
  startedAt: string;
  /** Whether etcd's data and containerd's store existed at start. */
  warm: boolean;
  steps: ClusterStep[];
  /** Wall time from the start call to Ready + DNS, ms. */
  totalMs: number;
}

export interface ClusterOptions {
  /** Default {@link DEFAULT_CLUSTER_DIR}. */
  stateDir?: string;
  /** Wipe etcd's data, the kubelet's and containerd's state first (a cold start). */
  fresh?: boolean;
  /** Also import every other image scripts/build-images.sh built (default: only the pause and CoreDNS images; tests import theirs with importImages). */
  importAll?: boolean;
  /** Progress lines; default stderr. */
  log?: (line: string) => void;
}

/** Path of a cached binary built by scripts/build-controlplane.sh or scripts/build-node.sh. @throws Error naming the script when missing. */
export async function clusterBinary(name: Component | 'coredns'): Promise<string> {
  if (name === 'containerd') return '/usr/bin/containerd';
  const version = name === 'etcd' ? ETCD_VERSION : name === 'coredns' ? COREDNS_VERSION : KUBE_VERSION;
  const path = join(KEA_CACHE, 'bin', `${name}-${version}`);
  try {
    await access(path);
  } catch {
    const script = name === 'etcd' || name === 'kube-apiserver' ? 'scripts/build-controlplane.sh' : 'scripts/build-node.sh';
    throw new Error(`${path} is missing: run ${script} (npm run cluster does)`);
  }
  return path;
}

function paths(stateDir: string) {
  const s = resolve(stateDir);
  return {
    state: s,
    certs: join(s, 'certs'),
    logs: join(s, 'logs'),
    etcd: join(s, 'etcd'),
    kubelet: join(s, 'kubelet'),
    containerd: join(s, 'containerd'),
    containerdSock: join(s, 'containerd', 'containerd.sock'),
    cni: join(s, 'cni'),
    runc: join(s, 'runc'),
    config: join(s, 'config'),
    info: join(s, 'cluster.json'),
    host: join(s, 'host.json'),
    kubeconfig: join(s, 'kubeconfig'),
  };
}

/** `<pid>`'s start time in clock ticks since boot ('' when it is gone). */
async function startTimeOf(pid: number): Promise<string> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  // The command name (field 2) may hold spaces: count fields after its closing parenthesis.
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? '';
}

/** Whether the recorded daemon is still the same live process. */
export async function daemonAlive(d: Daemon | undefined): Promise<boolean> {
  return !!d && (await startTimeOf(d.pid)) === d.startTime && d.startTime !== '';
}

async function tail(path: string, n = 25): Promise<string> {
  return (await readFile(path, 'utf8').catch(() => '')).split('\n').slice(-n).join('\n');
}

/**
 * Starts `bin` in its own session (it outlives the caller), output appended to `<logs>/<name>.log`.
 * `exited()` tells whether it exited while this process watched. @throws Error when the spawn fails.
 */
export async function startDaemon(
  name: string,
  bin: string,
  args: string[],
  logs: string,
  env: NodeJS.ProcessEnv = process.env,
): Promise<Daemon & { exited: () => boolean }> {
  const log = join(logs, `${name}.log`);
  const fd = openSync(log, 'a');
  const p = spawn(bin, args, { stdio: ['ignore', fd, fd], detached: true, env });
  closeSync(fd);
  p.unref();
  let gone = false;
  p.once('exit', () => (gone = true));
  if (!p.pid) throw new Error(`${name}: spawn ${bin} failed`);
  return { pid: p.pid, startTime: await startTimeOf(p.pid), log, exited: () => gone };
}

async function waitFor(what: string, timeoutMs: number, check: () => Promise<boolean>, failed?: () => Promise<string | undefined>): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const why = await failed?.();
    if (why) throw new Error(`${what}: ${why}`);
    if (await check().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${what}: not after ${timeoutMs} ms`);
}

const exitedCheck = (name: string, d: { exited: () => boolean; log: string }) => async () => (d.exited() ? `${name} exited:\n${await tail(d.log)}` : undefined);

// ---------------------------------------------------------------------------------------------
// Certificates and kubeconfigs

async function openssl(args: string[], cwd: string): Promise<void> {
  await run('openssl', args, { cwd });
}

/** Client certificates: file name → subject. */
const CLIENTS: Record<string, string> = {
  admin: '/O=system:masters/CN=kea-admin',
  'kube-controller-manager': '/CN=system:kube-controller-manager',
  'kube-scheduler': '/CN=system:kube-scheduler',
  kubelet: `/O=system:nodes/CN=system:node:${NODE_NAME}`,
  'kube-proxy': '/CN=system:kube-proxy',
  'apiserver-kubelet-client': '/O=system:masters/CN=kube-apiserver-kubelet-client',
};

/** A CA, the API server's serving cert (node IP, first Service IP, kubernetes.default names), client certs, the service-account key pair. Kept across runs. */
async function makeCerts(dir: string): Promise<void> {
  try {
    await access(join(dir, 'done'));
    return;
  } catch {
    /* create below */
  }
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  const days = '3650';
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  await openssl(['req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.crt', '-days', days, '-subj', '/CN=kea-cluster-ca'], dir);
  const sign = async (name: string, subj: string, ext: string) => {
    await writeFile(join(dir, `${name}.ext`), ext);
    await openssl(['req', ...ec, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', subj], dir);
    await openssl(
      [
        'x509',
        '-req',
        '-in',
        `${name}.csr`,
        '-CA',
        'ca.crt',
        '-CAkey',
        'ca.key',
        '-CAcreateserial',
        '-out',
        `${name}.crt`,
        '-days',
        days,
        '-extfile',
        `${name}.ext`,
      ],
      dir,
    );
  };
  const svcIp = '10.96.0.1';
  const sans = [
    `IP:${NODE_IP}`,
    'IP:127.0.0.1',
    `IP:${svcIp}`,
    'DNS:localhost',
    'DNS:kubernetes',
    'DNS:kubernetes.default',
    'DNS:kubernetes.default.svc',
    `DNS:kubernetes.default.svc.${CLUSTER_DOMAIN}`,
  ];
  // Sequential: one CA serial file.
  await sign('apiserver', '/CN=kube-apiserver', `subjectAltName=${sans.join(',')}\nextendedKeyUsage=serverAuth\n`);
  for (const [name, subj] of Object.entries(CLIENTS)) await sign(name, subj, 'extendedKeyUsage=clientAuth\n');
  await openssl(['genrsa', '-out', 'sa.key', '2048'], dir);
  await openssl(['rsa', '-in', 'sa.key', '-pubout', '-out', 'sa.pub'], dir);
  await writeFile(join(dir, 'done'), '');
}

async function writeKubeconfig(path: string, certs: string, user: string): Promise<void> {
  const b64 = async (f: string) => (await readFile(join(certs, f))).toString('base64');
  await writeFile(
    path,
    `apiVersion: v1
kind: Config
clusters:
- name: kea-cluster
  cluster:
    server: https://${NODE_IP}:${API_PORT}
    certificate-authority-data: ${await b64('ca.crt')}
users:
- name: ${user}
  user:
    client-certificate-data: ${await b64(`${user}.crt`)}
    client-key-data: ${await b64(`${user}.key`)}
contexts:
- name: kea-cluster
  context: { cluster: kea-cluster, user: ${user} }
current-context: kea-cluster
`,
    { mode: 0o600 },
  );
}

/** GET `path` on the API server as admin; resolves to the HTTP status and body (status 0 on error). */
export async function apiGet(stateDir: string, path: string): Promise<{ status: number; body: string }> {
  const certs = paths(stateDir).certs;
  const [ca, cert, key] = await Promise.all(['ca.crt', 'admin.crt', 'admin.key'].map((f) => readFile(join(certs, f))));
  return new Promise((res) => {
    const req = request(`https://${NODE_IP}:${API_PORT}${path}`, { ca, cert, key, timeout: 3000 }, (r) => {
      let body = '';
      r.on('data', (d: Buffer) => (body += d.toString()));
      r.on('end', () => res({ status: r.statusCode ?? 0, body }));
    });
    req.on('error', () => res({ status: 0, body: '' }));
    req.on('timeout', () => {
      req.destroy();
      res({ status: 0, body: '' });
    });
    req.end();
  });
}

/** Runs kubectl with the cluster's admin kubeconfig; `input` goes to stdin. @throws Error with kubectl's stderr. */
export async function kubectl(stateDir: string, args: string[], input?: string): Promise<string> {
  const kubeconfig = paths(stateDir).kubeconfig;
  return new Promise((res, rej) => {
    const p = spawn('kubectl', ['--kubeconfig', kubeconfig, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr.on('data', (d: Buffer) => (err += d.toString()));
    p.on('error', rej);
    p.on('exit', (code) => (code === 0 ? res(out) : rej(new Error(`kubectl ${args.join(' ')}: exit ${code}: ${err.trim()}`))));
    p.stdin.end(input ?? '');
  });
}

// ---------------------------------------------------------------------------------------------
// Configuration files

function containerdConfig(p: ReturnType<typeof paths>): string {
  const cri = 'plugins."io.containerd.grpc.v1.cri"';
  return `# Written by dev/cluster.ts. containerd 1.6 (Debian bookworm), config version 2.
version = 2
root = "${p.containerd}/root"
state = "${p.containerd}/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]
[grpc]
  address = "${p.containerdSock}"
[ttrpc]
  address = "${p.containerdSock}.ttrpc"
[plugins]
  [plugins."io.containerd.internal.v1.opt"]
    path = "${p.containerd}/opt"
  [${cri}]
    # Exactly the name the pause image is imported under (field notes §7).
    sandbox_image = "${PAUSE_IMAGE}"
    # Root lacks CAP_SYS_RESOURCE here: without this every sandbox fails in runc with
    # "failed to update /proc/self/oom_score_adj: Permission denied" (field notes §7).
    restrict_oom_score_adj = true
    disable_apparmor = true
    enable_selinux = false
    [${cri}.containerd]
      snapshotter = "overlayfs"
      default_runtime_name = "runc"
      [${cri}.containerd.runtimes.runc]
        runtime_type = "io.containerd.runc.v2"
        [${cri}.containerd.runtimes.runc.options]
          BinaryName = "/usr/bin/runc"
          Root = "${p.runc}"
          SystemdCgroup = false
    [${cri}.cni]
      bin_dir = "/usr/lib/cni"
      conf_dir = "${p.cni}/net.d"
      max_conf_num = 1
`;
}

function cniConfig(p: ReturnType<typeof paths>): string {
  return JSON.stringify(
    {
      cniVersion: '0.4.0',
      name: 'kea-node',
      plugins: [
        {
          type: 'bridge',
          bridge: NODE_BRIDGE,
          isGateway: true,
          ipMasq: true,
          hairpinMode: true,
          ipam: {
            type: 'host-local',
            dataDir: join(p.cni, 'ipam'),
            ranges: [[{ subnet: POD_CIDR, gateway: NODE_IP, rangeStart: '10.244.0.10' }]],
            routes: [{ dst: '0.0.0.0/0' }],
          },
        },
        { type: 'portmap', capabilities: { portMappings: true } },
      ],
    },
    null,
    2,
  );
}

function kubeletConfig(p: ReturnType<typeof paths>): string {
  return `# Written by dev/cluster.ts (KubeletConfiguration, kubelet.config.k8s.io/v1beta1).
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
containerRuntimeEndpoint: unix://${p.containerdSock}
# PID 1 is not systemd; cgroups v1 hybrid; the root cgroup is made by hand (field notes §7).
cgroupDriver: cgroupfs
cgroupRoot: /${CGROUP_ROOT}
failCgroupV1: false
# The kubelet must not own the host's iptables utility chains (field notes §7).
makeIPTablesUtilChains: false
address: ${NODE_IP}
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication:
  anonymous: { enabled: false }
  webhook: { enabled: true }
  x509: { clientCAFile: ${p.certs}/ca.crt }
authorization:
  mode: Webhook
clusterDNS: [${DNS_IP}]
clusterDomain: ${CLUSTER_DOMAIN}
resolvConf: /etc/resolv.conf
failSwapOn: false
podLogsDirectory: ${p.state}/pod-logs
volumePluginDir: ${p.state}/volume-plugins
# A shared development machine: evict only when really out of room; never garbage-collect
# images (they cannot be pulled again: there is no registry).
evictionHard:
  memory.available: 50Mi
  nodefs.available: 1%
  nodefs.inodesFree: 1%
  imagefs.available: 1%
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
maxPods: 110
`;
}

function kubeProxyConfig(p: ReturnType<typeof paths>): string {
  return `# Written by dev/cluster.ts (KubeProxyConfiguration, kubeproxy.config.k8s.io/v1alpha1).
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
clientConnection:
  kubeconfig: ${p.config}/kube-proxy.kubeconfig
hostnameOverride: ${NODE_NAME}
bindAddress: ${NODE_IP}
clusterCIDR: ${POD_CIDR}
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
nodePortAddresses: ["${NODE_IP}/32"]
# Leave the host's conntrack table and route_localnet alone.
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
iptables:
  localhostNodePorts: false
`;
}

// ---------------------------------------------------------------------------------------------
// Command lines

function etcdArgs(p: ReturnType<typeof paths>, etcdUrl: string): string[] {
  return [
    '--name=kea-node',
    `--data-dir=${p.etcd}`,
    `--listen-client-urls=${etcdUrl}`,
    `--advertise-client-urls=${etcdUrl}`,
    '--listen-peer-urls=http://127.0.0.1:32380',
    '--initial-advertise-peer-urls=http://127.0.0.1:32380',
    '--initial-cluster=kea-node=http://127.0.0.1:32380',
    '--log-level=warn',
  ];
}

function apiServerArgs(p: ReturnType<typeof paths>, etcdUrl: string): string[] {
  const c = p.certs;
  return [
    `--etcd-servers=${etcdUrl}`,
    `--bind-address=${NODE_IP}`,
    `--advertise-address=${NODE_IP}`,
    `--secure-port=${API_PORT}`,
    `--tls-cert-file=${c}/apiserver.crt`,
    `--tls-private-key-file=${c}/apiserver.key`,
    `--client-ca-file=${c}/ca.crt`,
    `--kubelet-client-certificate=${c}/apiserver-kubelet-client.crt`,
    `--kubelet-client-key=${c}/apiserver-kubelet-client.key`,
    // `kubectl logs/exec` would resolve the node's hostname through DNS otherwise (field notes §7).
    '--kubelet-preferred-address-types=InternalIP',
    `--service-account-issuer=https://kubernetes.default.svc.${CLUSTER_DOMAIN}`,
    `--service-account-key-file=${c}/sa.pub`,
    `--service-account-signing-key-file=${c}/sa.key`,
    `--service-cluster-ip-range=${SERVICE_CIDR}`,
    '--authorization-mode=Node,RBAC',
    '--enable-admission-plugins=NodeRestriction',
    '--allow-privileged=true',
    `--cert-dir=${c}`,
    '--v=0',
  ];
}

function controllerManagerArgs(p: ReturnType<typeof paths>): string[] {
  const c = p.certs;
  const kc = (n: string) => join(p.config, `${n}.kubeconfig`);
  return [
    `--kubeconfig=${kc('kube-controller-manager')}`,
    `--authentication-kubeconfig=${kc('kube-controller-manager')}`,
    `--authorization-kubeconfig=${kc('kube-controller-manager')}`,
    '--bind-address=127.0.0.1',
    '--secure-port=10257',
    '--leader-elect=false',
    '--use-service-account-credentials=true',
    `--service-account-private-key-file=${c}/sa.key`,
    `--root-ca-file=${c}/ca.crt`,
    `--cluster-signing-cert-file=${c}/ca.crt`,
    `--cluster-signing-key-file=${c}/ca.key`,
    `--service-cluster-ip-range=${SERVICE_CIDR}`,
    `--cluster-cidr=${POD_CIDR}`,
    '--allocate-node-cidrs=false',
    // Out of /usr/libexec (field notes §7).
    `--flex-volume-plugin-dir=${p.state}/volume-plugins`,
  ];
}

function schedulerArgs(p: ReturnType<typeof paths>): string[] {
  const kc = (n: string) => join(p.config, `${n}.kubeconfig`);
  return [
    `--kubeconfig=${kc('kube-scheduler')}`,
    `--authentication-kubeconfig=${kc('kube-scheduler')}`,
    `--authorization-kubeconfig=${kc('kube-scheduler')}`,
    '--bind-address=127.0.0.1',
    '--secure-port=10259',
    '--leader-elect=false',
  ];
}

// ---------------------------------------------------------------------------------------------
// Images

/** ref → inputs hash of every docker-archive scripts/build-images.sh left in {@link IMAGE_ARCHIVES}. */
async function builtArchives(): Promise<Map<string, { file: string; inputs: string }>> {
  const out = new Map<string, { file: string; inputs: string }>();
  for (const f of await readdir(IMAGE_ARCHIVES).catch(() => [] as string[])) {
    if (!f.endsWith('.tar')) continue;
    const file = join(IMAGE_ARCHIVES, f);
    const inputs = (await readFile(`${file}.inputs`, 'utf8').catch(() => '')).trim();
    // `<name>_<tag>.tar`, the name's `/` also as `_`: the ref is read from the archive's manifest instead.
    const manifest = await run('tar', ['-xOf', file, 'manifest.json'], { maxBuffer: 1 << 20 }).then(
      (r) => r.stdout,
      () => '',
    );
    const ref = (JSON.parse(manifest || '[{}]') as Array<{ RepoTags?: string[] }>)[0]?.RepoTags?.[0];
    if (ref && inputs) out.set(ref, { file, inputs });
  }
  return out;
}

/** Images in containerd's `k8s.io` namespace (refs). */
async function containerdImages(sock: string): Promise<Set<string>> {
  const { stdout } = await run('ctr', ['--address', sock, '-n', 'k8s.io', 'images', 'ls', '-q'], { maxBuffer: 16 << 20 });
  return new Set(stdout.split('\n').filter(Boolean));
}

/**
 * Imports into the node's containerd every image built by scripts/build-images.sh that it lacks
 * or that was rebuilt since (the `.inputs` hash beside each archive, remembered in
 * `<stateDir>/containerd/imported.json`). `only`: just these refs.
 * @returns the refs imported.
 * @throws Error when a wanted ref has no archive (build it first) or `ctr import` fails.
 */
export async function importImages(stateDir: string, only?: string[]): Promise<string[]> {
  const p = paths(stateDir);
  const archives = await builtArchives();
  for (const ref of only ?? []) if (!archives.has(ref)) throw new Error(`no archive for ${ref} in ${IMAGE_ARCHIVES}: run scripts/build-images.sh`);
  const recordPath = join(p.containerd, 'imported.json');
  const record = JSON.parse(await readFile(recordPath, 'utf8').catch(() => '{}')) as Record<string, string>;
  const present = await containerdImages(p.containerdSock);
  const todo = [...archives].filter(([ref, a]) => (!only || only.includes(ref)) && (!present.has(ref) || record[ref] !== a.inputs));
  for (const [ref, a] of todo) {
    await run('ctr', ['--address', p.containerdSock, '-n', 'k8s.io', 'images', 'import', a.file], { maxBuffer: 16 << 20 });
    record[ref] = a.inputs;
    await writeFile(recordPath, JSON.stringify(record, null, 2));
  }
  return todo.map(([ref]) => ref);
}

/**
 * Tags an image of the node's containerd under a second reference (`ctr images tag --force`), so a
 * Deployment can roll to a new image reference without a rebuild.
 * @throws Error with ctr's message when `from` is not in the node's image store.
 */
export async function tagImage(stateDir: string, from: string, to: string): Promise<void> {
  await run('ctr', ['--address', paths(stateDir).containerdSock, '-n', 'k8s.io', 'images', 'tag', '--force', from, to]);
}

// ---------------------------------------------------------------------------------------------
// CoreDNS

/** The cluster DNS: kubeadm's CoreDNS objects (ServiceAccount, RBAC, Corefile, Deployment, Service kube-dns at {@link DNS_IP}). */
export function corednsManifest(): string {
  return `apiVersion: v1
kind: ServiceAccount
metadata: { name: coredns, namespace: kube-system }
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: { name: "system:coredns" }
rules:
- apiGroups: [""]
  resources: [endpoints, services, pods, namespaces]
  verbs: [list, watch]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: { name: "system:coredns" }
roleRef: { apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:coredns" }
subjects:
- { kind: ServiceAccount, name: coredns, namespace: kube-system }
---
apiVersion: v1
kind: ConfigMap
metadata: { name: coredns, namespace: kube-system }
data:
  Corefile: |
    .:53 {
        errors
        health {
            lameduck 5s
        }
        ready
        kubernetes ${CLUSTER_DOMAIN} in-addr.arpa ip6.arpa {
            pods insecure
            fallthrough in-addr.arpa ip6.arpa
            ttl 30
        }
        forward . /etc/resolv.conf {
            max_concurrent 1000
        }
        cache 30
        loop
        reload
        loadbalance
    }
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: coredns
  namespace: kube-system
  labels: { k8s-app: kube-dns }
spec:
  replicas: 1
  selector: { matchLabels: { k8s-app: kube-dns } }
  template:
    metadata: { labels: { k8s-app: kube-dns } }
    spec:
      serviceAccountName: coredns
      priorityClassName: system-cluster-critical
      dnsPolicy: Default
      securityContext:
        runAsNonRoot: true
        runAsUser: 65532
        runAsGroup: 65532
        # Port 53 without a capability: a namespaced, "safe" sysctl.
        sysctls: [{ name: net.ipv4.ip_unprivileged_port_start, value: "0" }]
      containers:
      - name: coredns
        image: ${COREDNS_IMAGE}
        imagePullPolicy: Never
        args: [-conf, /etc/coredns/Corefile]
        resources:
          requests: { cpu: 50m, memory: 40Mi }
          limits: { memory: 170Mi }
        ports:
        - { name: dns, containerPort: 53, protocol: UDP }
        - { name: dns-tcp, containerPort: 53, protocol: TCP }
        - { name: metrics, containerPort: 9153, protocol: TCP }
        securityContext:
          allowPrivilegeEscalation: false
          readOnlyRootFilesystem: true
          capabilities: { drop: [ALL] }
        livenessProbe:
          httpGet: { path: /health, port: 8080 }
          initialDelaySeconds: 10
          periodSeconds: 10
        readinessProbe:
          httpGet: { path: /ready, port: 8181 }
          periodSeconds: 2
        volumeMounts:
        - { name: config, mountPath: /etc/coredns, readOnly: true }
      volumes:
      - name: config
        configMap: { name: coredns }
---
apiVersion: v1
kind: Service
metadata:
  name: kube-dns
  namespace: kube-system
  labels: { k8s-app: kube-dns, kubernetes.io/name: CoreDNS }
spec:
  selector: { k8s-app: kube-dns }
  clusterIP: ${DNS_IP}
  ports:
  - { name: dns, port: 53, protocol: UDP }
  - { name: dns-tcp, port: 53, protocol: TCP }
  - { name: metrics, port: 9153, protocol: TCP }
`;
}

// ---------------------------------------------------------------------------------------------
// Start

/** Reads `<stateDir>/cluster.json` (undefined when absent). */
export async function readClusterInfo(stateDir = DEFAULT_CLUSTER_DIR): Promise<ClusterInfo | undefined> {
  try {
    return JSON.parse(await readFile(paths(stateDir).info, 'utf8')) as ClusterInfo;
  } catch {
    return undefined;
  }
}

/** Whether the recorded cluster runs: every daemon alive and the node Ready. */
export async function clusterHealthy(info: ClusterInfo | undefined): Promise<boolean> {
  if (!info) return false;
  for (const c of COMPONENTS) if (!(await daemonAlive(info.daemons[c]))) return false;
  return nodeReady(info.stateDir);
}

async function nodeReady(stateDir: string): Promise<boolean> {
  const r = await apiGet(stateDir, `/api/v1/nodes/${NODE_NAME}`);
  if (r.status !== 200) return false;
  const node = JSON.parse(r.body) as { status?: { conditions?: Array<{ type: string; status: string }> } };
  return !!node.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True');
}

async function ip(...args: string[]): Promise<void> {
  await run('ip', args).catch((e: { stderr?: string }) => {
    throw new Error(`ip ${args.join(' ')}: ${e.stderr?.trim() ?? e}`);
  });
}

/** Creates the node bridge with the node IP and the route to the Service range (idempotent). */
async function createNodeBridge(): Promise<void> {
  const exists = await run('ip', ['link', 'show', 'dev', NODE_BRIDGE]).then(
    () => true,
    () => false,
  );
  if (!exists) {
    const conflicts = (await hostPrefixes()).filter(
      (h) => h.dev !== NODE_BRIDGE && (prefixesOverlap(h.prefix, POD_CIDR) || prefixesOverlap(h.prefix, SERVICE_CIDR)),
    );
    if (conflicts.length)
      throw new Error(`${POD_CIDR} or ${SERVICE_CIDR} is already used on this machine: ${conflicts.map((c) => `${c.dev} ${c.prefix}`).join(', ')}`);
    await ip('link', 'add', NODE_BRIDGE, 'type', 'bridge');
  }
  await run('ip', ['addr', 'add', `${NODE_IP}/24`, 'dev', NODE_BRIDGE]).catch(() => undefined); // already there
  await ip('link', 'set', NODE_BRIDGE, 'up');
  await run('ip', ['route', 'replace', SERVICE_CIDR, 'dev', NODE_BRIDGE, 'src', NODE_IP]);
}

/**
 * Starts the one-node cluster and returns once the node is Ready and CoreDNS is available. A
 * cluster left by a crashed run (host.json present, daemons gone) is cleaned up first.
 * @throws Error when one already runs, a binary or image is missing (the message names the build
 *   script), the node's subnets are in use, or a component fails (with the tail of its log);
 *   everything started is stopped and the host restored before the error propagates.
 */
export async function startCluster(opts: ClusterOptions = {}): Promise<ClusterInfo> {
  const t0 = Date.now();
  const log = opts.log ?? ((l: string) => process.stderr.write(`[cluster] ${l}\n`));
  const p = paths(opts.stateDir ?? DEFAULT_CLUSTER_DIR);
  const steps: ClusterStep[] = [];
  let last = Date.now();
  const step = (name: string) => {
    const now = Date.now();
    steps.push({ step: name, ms: now - last });
    log(`${name}: ${now - last} ms`);
    last = now;
  };
  if (process.getuid?.() !== 0) throw new Error('the cluster needs root (containerd, kubelet, iptables, mounts)');
  const previous = await readClusterInfo(p.state);
  if (previous && (await clusterHealthy(previous))) throw new Error(`a cluster already runs from ${p.state} (npm run cluster -- down stops it)`);
  if (
    previous ||
    (await access(p.host).then(
      () => true,
      () => false,
    ))
  ) {
    log('cleaning up what a previous run left');
    await stopCluster(p.state, log);
  }
  const bins = Object.fromEntries(await Promise.all(COMPONENTS.map(async (c) => [c, await clusterBinary(c)] as const))) as Record<Component, string>;
  if (opts.fresh) {
    for (const d of [p.etcd, p.kubelet, p.containerd, p.cni, p.runc]) await rm(d, { recursive: true, force: true });
  }
  const warm = await access(join(p.etcd, 'member')).then(
    () => true,
    () => false,
  );
  for (const d of [p.state, p.logs, p.config, join(p.cni, 'net.d'), p.containerd, p.kubelet]) await mkdir(d, { recursive: true });

  // 1. The host: snapshot first (before anything changes), then bridge, cgroups, bridge netfilter.
  const snap: HostSnapshot = await snapshotHost(CGROUP_ROOT);
  await writeFile(p.host, JSON.stringify(snap, null, 2));
  const daemons: Partial<Record<Component, Daemon>> = {};
  const info: ClusterInfo = {
    stateDir: p.state,
    kubeconfig: p.kubeconfig,
    server: `https://${NODE_IP}:${API_PORT}`,
    nodeName: NODE_NAME,
    nodeIp: NODE_IP,
    dnsIp: DNS_IP,
    containerdSocket: p.containerdSock,
    daemons,
    startedAt: new Date().toISOString(),
    warm,
    steps,
    totalMs: 0,
  };
  const save = () => writeFile(p.info, JSON.stringify(info, null, 2));
  await save();
  try {
    await createNodeBridge();
    await createCgroups(snap.cgroups);
    // Pod → ClusterIP → pod on the same bridge: the reply must pass the host's conntrack (un-DNAT).
    await writeFile('/proc/sys/net/bridge/bridge-nf-call-iptables', '1');
    step('host');

    // 2. Certificates and configuration.
    await makeCerts(p.certs);
    await writeKubeconfig(p.kubeconfig, p.certs, 'admin');
    for (const c of ['kube-controller-manager', 'kube-scheduler', 'kubelet', 'kube-proxy'])
      await writeKubeconfig(join(p.config, `${c}.kubeconfig`), p.certs, c);
    await writeFile(join(p.config, 'containerd.toml'), containerdConfig(p));
    await writeFile(join(p.cni, 'net.d', '10-kea-node.conflist'), cniConfig(p));
    await writeFile(join(p.config, 'kubelet.yaml'), kubeletConfig(p));
    await writeFile(join(p.config, 'kube-proxy.yaml'), kubeProxyConfig(p));
    step('certs+config');

    // 3. etcd, then the API server; containerd and the image import meanwhile.
    const etcdUrl = 'http://127.0.0.1:32379';
    const etcd = await startDaemon('etcd', bins.etcd, etcdArgs(p, etcdUrl), p.logs);
    daemons.etcd = etcd;
    await save();
    const containerd = await startDaemon('containerd', bins.containerd, ['--config', join(p.config, 'containerd.toml')], p.logs);
    daemons.containerd = containerd;
    await save();
    await waitFor('etcd /health', 30000, async () => (await fetch(`${etcdUrl}/health`)).ok, exitedCheck('etcd', etcd));
    step('etcd');
    const api = await startDaemon('kube-apiserver', bins['kube-apiserver'], apiServerArgs(p, etcdUrl), p.logs);
    daemons['kube-apiserver'] = api;
    await save();
    // The node needs the sandbox and DNS images before the kubelet starts; every other built
    // image (opts.importAll) is imported while the node comes up.
    const images = (async () => {
      await waitFor(
        'containerd socket',
        30000,
        async () => (await run('ctr', ['--address', p.containerdSock, 'version'])).stdout.includes('Server'),
        exitedCheck('containerd', containerd),
      );
      const built = await builtArchives();
      for (const ref of [PAUSE_IMAGE, COREDNS_IMAGE]) if (!built.has(ref)) throw new Error(`${ref} is not built: run scripts/build-images.sh base`);
      const tImport = Date.now();
      const imported = await importImages(p.state, [PAUSE_IMAGE, COREDNS_IMAGE]);
      return { imported, ms: Date.now() - tImport };
    })();
    await waitFor('kube-apiserver /readyz', 90000, async () => (await apiGet(p.state, '/readyz')).status === 200, exitedCheck('kube-apiserver', api));
    step('kube-apiserver');
    const img = await images;
    log(`node images imported: ${img.imported.length ? img.imported.join(', ') : 'none (present)'} in ${img.ms} ms`);
    const rest = opts.importAll
      ? (async () => {
          const t = Date.now();
          const imported = await importImages(p.state);
          return { imported, ms: Date.now() - t };
        })()
      : Promise.resolve({ imported: [] as string[], ms: 0 });
    rest.catch(() => undefined); // awaited below; no unhandled rejection meanwhile
    step('containerd+images');

    // 4. Controllers, kubelet, kube-proxy (all wait for the API server themselves).
    daemons['kube-controller-manager'] = await startDaemon('kube-controller-manager', bins['kube-controller-manager'], controllerManagerArgs(p), p.logs);
    daemons['kube-scheduler'] = await startDaemon('kube-scheduler', bins['kube-scheduler'], schedulerArgs(p), p.logs);
    const kubelet = await startKubelet(p, bins.kubelet);
    daemons.kubelet = kubelet;
    const proxy = await startDaemon('kube-proxy', bins['kube-proxy'], [`--config=${join(p.config, 'kube-proxy.yaml')}`], p.logs);
    daemons['kube-proxy'] = proxy;
    await save();
    await waitFor('node Ready', 90000, () => nodeReady(p.state), exitedCheck('kubelet', kubelet));
    step('node-ready');
    await waitFor('kube-proxy /healthz', 60000, async () => (await fetch('http://127.0.0.1:10256/healthz')).ok, exitedCheck('kube-proxy', proxy));
    step('kube-proxy');

    // 5. Cluster DNS.
    await kubectl(p.state, ['apply', '--server-side', '--force-conflicts', '--field-manager=kea-cluster', '-f', '-'], corednsManifest());
    await kubectl(p.state, ['-n', 'kube-system', 'rollout', 'status', 'deployment/coredns', '--timeout=120s']);
    step('dns');
    const more = await rest;
    if (opts.importAll) {
      log(`other images imported: ${more.imported.length ? more.imported.join(', ') : 'none (all present)'} in ${more.ms} ms`);
      step('images');
    }
    info.totalMs = Date.now() - t0;
    await save();
    return info;
  } catch (e) {
    log(`start failed: ${e instanceof Error ? e.message : String(e)}; stopping what was started`);
    await stopCluster(p.state, log).catch((err: Error) => log(`cleanup: ${err.message}`));
    throw e;
  }
}

async function startKubelet(p: ReturnType<typeof paths>, bin: string): Promise<Daemon & { exited: () => boolean }> {
  return startDaemon(
    'kubelet',
    bin,
    [
      `--config=${join(p.config, 'kubelet.yaml')}`,
      `--kubeconfig=${join(p.config, 'kubelet.kubeconfig')}`,
      `--root-dir=${p.kubelet}`,
      `--hostname-override=${NODE_NAME}`,
      `--node-ip=${NODE_IP}`,
      '--v=1',
    ],
    p.logs,
  );
}

/**
 * A node reboot as far as this machine allows: stops the kubelet and containerd (SIGTERM), and
 * with `reboot` (the default) also what a reboot takes away: every container process (SIGTERM,
 * then SIGKILL after 5 s, as a shutdown does), the shims and the pods' network namespaces. Then
 * starts containerd and the kubelet again, which must recreate every pod sandbox. With
 * `reboot: false` the containers keep running under their shims (a runtime restart).
 * Resolves when the node is Ready again.
 * @throws Error when no cluster is recorded or the node is not Ready within 120 s.
 */
export async function restartNode(stateDir = DEFAULT_CLUSTER_DIR, log: (l: string) => void = () => undefined, opts: { reboot?: boolean } = {}): Promise<void> {
  const p = paths(stateDir);
  const info = await readClusterInfo(p.state);
  if (!info) throw new Error(`no cluster recorded in ${p.state}`);
  for (const c of ['kubelet', 'containerd'] as const) await stopDaemon(c, info.daemons[c], log);
  if (opts.reboot ?? true) {
    const snap = JSON.parse(await readFile(p.host, 'utf8').catch(() => 'null')) as HostSnapshot | null;
    await stopContainers(snap?.cgroups ?? [], log);
    await killAll(await pidsMentioning(p.containerdSock));
    await unmountUnder(['/run/netns/cni-'], log);
    for (const n of await readdir('/run/netns').catch(() => [] as string[])) if (n.startsWith('cni-')) await rm(join('/run/netns', n), { force: true });
  }
  const containerd = await startDaemon('containerd', '/usr/bin/containerd', ['--config', join(p.config, 'containerd.toml')], p.logs);
  info.daemons.containerd = containerd;
  await waitFor(
    'containerd socket',
    30000,
    async () => (await run('ctr', ['--address', p.containerdSock, 'version'])).stdout.includes('Server'),
    exitedCheck('containerd', containerd),
  );
  const kubelet = await startKubelet(p, await clusterBinary('kubelet'));
  info.daemons.kubelet = kubelet;
  await writeFile(p.info, JSON.stringify(info, null, 2));
  await waitFor('node Ready after restart', 120000, () => nodeReady(p.state), exitedCheck('kubelet', kubelet));
}

/**
 * Stops every container: each process under the kubelet's cgroup root (`cgroupDirs`, one per
 * hierarchy), SIGTERM first, as a node shutting down does (nginx then removes its unix sockets,
 * uvicorn and node finish their requests), SIGKILL to what is left after 5 s.
 */
async function stopContainers(cgroupDirs: string[], log: (l: string) => void): Promise<void> {
  const containerPids = async () => {
    const pids = new Set<number>();
    for (const dir of cgroupDirs) for (const pid of await cgroupPids(dir)) pids.add(pid);
    return [...pids];
  };
  const first = await containerPids();
  if (first.length) {
    log(`stopping ${first.length} container process(es)`);
    await killAll(first, 'SIGTERM', 5000);
  }
  for (let i = 0; i < 3; i++) {
    const pids = await containerPids();
    if (!pids.length) break;
    log(`killing ${pids.length} container process(es)`);
    await killAll(pids);
  }
}

// ---------------------------------------------------------------------------------------------
// Stop

async function stopDaemon(name: string, d: Daemon | undefined, log: (l: string) => void, timeoutMs = 15000): Promise<void> {
  if (!d || !(await daemonAlive(d))) return;
  const t0 = Date.now();
  process.kill(d.pid, 'SIGTERM');
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline && (await daemonAlive(d))) await new Promise((r) => setTimeout(r, 100));
  if (await daemonAlive(d)) {
    log(`${name} (pid ${d.pid}) ignored SIGTERM for ${timeoutMs} ms: SIGKILL`);
    process.kill(d.pid, 'SIGKILL');
  }
  if (Date.now() - t0 > 2000) log(`${name} took ${Date.now() - t0} ms to stop`);
}

async function cmdline(pid: number): Promise<string[]> {
  return (await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')).split('\0');
}

/** Programs of the node (argv[0] basenames): the daemons and containerd's shims. */
const NODE_PROGRAMS = /^(etcd|kube-apiserver|kube-controller-manager|kube-scheduler|kubelet|kube-proxy)(-v[\d.]+)?$|^containerd(-shim-runc-v2)?$/;

/** Pids of node programs whose command line mentions `needle` (the state dir: the daemons' flags, the shims' `-address <sock>`). */
async function pidsMentioning(needle: string): Promise<number[]> {
  const out: number[] = [];
  for (const d of await readdir('/proc')) {
    if (!/^\d+$/.test(d) || Number(d) === process.pid) continue;
    const cl = await cmdline(Number(d));
    if (NODE_PROGRAMS.test((cl[0] ?? '').split('/').pop() ?? '') && cl.some((a) => a.includes(needle))) out.push(Number(d));
  }
  return out;
}

/** Sends `signal` to every pid and waits up to `timeoutMs` until all have exited. */
async function killAll(pids: number[], signal: NodeJS.Signals = 'SIGKILL', timeoutMs = 10000): Promise<void> {
  for (const pid of pids) {
    try {
      process.kill(pid, signal);
    } catch {
      /* gone */
    }
  }
  const deadline = Date.now() + timeoutMs;
  const alive = (pid: number) => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  };
  while (Date.now() < deadline && pids.some(alive)) await new Promise((r) => setTimeout(r, 100));
}

/**
 * Stops the cluster of `stateDir` and restores the host to its recorded snapshot: kube-proxy and
 * the kubelet (SIGTERM), every container (SIGKILL to the processes of the kubelet's cgroup root),
 * containerd and its shims, the control plane; then unmounts what the node mounted, removes the
 * pod network namespaces, the iptables chains it created, the bridge, the cgroups and the fixed
 * paths it created, and writes back the sysctls. Keeps certificates, etcd's data and the image
 * store (warm restart). Safe to call when nothing runs.
 * @returns false when neither cluster.json nor host.json was there (nothing to stop).
 */
export async function stopCluster(
  stateDir = DEFAULT_CLUSTER_DIR,
  log: (l: string) => void = (l) => process.stderr.write(`[cluster] ${l}\n`),
): Promise<boolean> {
  const p = paths(stateDir);
  const info = await readClusterInfo(p.state);
  const snap = JSON.parse(await readFile(p.host, 'utf8').catch(() => 'null')) as HostSnapshot | null;
  if (!info && !snap) return false;
  const t0 = Date.now();
  const d = info?.daemons ?? {};
  await Promise.all(Object.entries(info?.extras ?? {}).map(([name, x]) => stopDaemon(name, x, log)));
  await Promise.all([stopDaemon('kube-proxy', d['kube-proxy'], log), stopDaemon('kubelet', d.kubelet, log)]);
  await stopContainers(snap?.cgroups ?? [], log);
  await stopDaemon('containerd', d.containerd, log);
  await Promise.all((['kube-scheduler', 'kube-controller-manager', 'kube-apiserver'] as const).map((c) => stopDaemon(c, d[c], log)));
  await stopDaemon('etcd', d.etcd, log);
  // Leftovers: shims (`-address <sock>`) and anything else naming the state dir.
  const left = await pidsMentioning(p.state);
  if (left.length) {
    log(`killing ${left.length} leftover process(es) naming ${p.state}`);
    await killAll(left);
  }
  const unmounted = await unmountUnder([p.state, '/run/containerd', '/var/lib/kubelet', '/run/netns/cni-'], log);
  if (unmounted) log(`unmounted ${unmounted} mount(s)`);
  for (const n of await readdir('/run/netns').catch(() => [] as string[])) if (n.startsWith('cni-')) await rm(join('/run/netns', n), { force: true });
  if (snap) {
    await cleanupChains(snap.chains, log);
    await dropCreatedTables(snap.chains, log);
  }
  await run('ip', ['link', 'del', NODE_BRIDGE]).catch(() => undefined);
  // veths of pods whose namespace is gone disappear with it; one left attached (shouldn't) goes too.
  for (const l of await readdir('/sys/class/net').catch(() => [] as string[])) {
    const master = await readlink(`/sys/class/net/${l}/master`).catch(() => '');
    if (master.endsWith(`/${NODE_BRIDGE}`)) await run('ip', ['link', 'del', l]).catch(() => undefined);
  }
  if (snap) {
    await restoreSysctls(snap, log);
    for (const dir of snap.cgroups) await removeCgroupTree(dir).catch((e: Error) => log(`cgroup ${dir}: ${e.message}`));
    await removeCreatedPaths(snap, log);
  }
  await rm(p.info, { force: true });
  await rm(p.host, { force: true });
  log(`stopped and host restored in ${Date.now() - t0} ms`);
  return true;
}
