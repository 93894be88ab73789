/**
 * An embedded local Kubernetes control plane: a real etcd and a real kube-apiserver built from
 * the Go module proxy by scripts/build-controlplane.sh (field notes §4), started on loopback
 * with envtest-style flags (controller-runtime pkg/internal/testing/controlplane) and client
 * certificates, plus a kubeconfig for `system:masters`.
 *
 * There is no controller-manager, scheduler or kubelet: no Pods, no EndpointSlices and no
 * garbage collection happen by themselves.
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdtemp, mkdir, writeFile, readFile, readdir, access } from 'node:fs/promises';
import { request } from 'node:https';
import { tmpdir, homedir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { openSync, closeSync } from 'node:fs';
import { freePort, stopProcess } from '../lib/process.js';

const run = promisify(execFile);

/** Pinned versions; keep in sync with scripts/build-controlplane.sh. */
export const KUBE_VERSION = process.env.KUBE_VERSION ?? 'v1.34.4';
export const ETCD_VERSION = process.env.ETCD_VERSION ?? 'v3.6.16';
/**
 * Gateway API release whose CRDs are installed. It serves HTTPRoute v1 and ReferenceGrant
 * v1beta1, which is all KEA emits, as NGF 1.6.2's v1.2.1 does. NGF 1.6.2 (built against
 * v1.2.1) runs on it: it reports GatewayClass SupportedVersion=False ("best effort") and serves
 * normally (dev/ngf.ts). v1.2.1 itself cannot be installed beside it: v1.6.1's
 * `safe-upgrades` admission policy refuses Gateway API CRDs older than v1.5.0.
 */
export const GATEWAY_API_VERSION = 'v1.6.1';

/** Root of the repository (this file is dev/controlplane.ts or dist/dev/controlplane.js). */
export const REPO_ROOT = (() => {
  const parent = dirname(dirname(fileURLToPath(import.meta.url)));
  return parent.endsWith('/dist') ? dirname(parent) : parent;
})();

/** Cache folder for built binaries and runtime state, outside git. */
export const KEA_CACHE = process.env.KEA_CACHE ?? join(homedir(), '.cache', 'kea');

export interface ControlPlaneOptions {
  /** Where certs, etcd data and logs go. Default: a fresh temp folder. Reusing a folder keeps etcd's data. */
  dataDir?: string;
  /** etcd `--unsafe-no-fsync` (tests only; default false). */
  unsafeNoFsync?: boolean;
  /** Fixed secure port for kube-apiserver (default: a free port, reused across restarts). */
  apiPort?: number;
}

/** A running control plane. */
export interface ControlPlane {
  /** Path of a kubeconfig with cluster-admin (O=system:masters) client credentials. */
  kubeconfig: string;
  /** `https://127.0.0.1:<port>` */
  server: string;
  dataDir: string;
  /** Time from spawn to `/readyz` ok and the `default` namespace present, in ms. */
  startMs: number;
  /** Stops kube-apiserver then etcd; resolves when both have exited. */
  stop(): Promise<void>;
  /** Stops and starts kube-apiserver on the same port, keeping etcd (for watch-restart tests). */
  restartApiServer(): Promise<void>;
  /** Stops the API server only (fault tests). */
  stopApiServer(): Promise<void>;
  /** Starts the API server again after stopApiServer(). */
  startApiServer(): Promise<void>;
}

export { freePort } from '../lib/process.js';

/** Path of a cached binary built by scripts/build-controlplane.sh; throws if it is missing. */
export async function binary(name: 'kube-apiserver' | 'etcd'): Promise<string> {
  const version = name === 'etcd' ? ETCD_VERSION : KUBE_VERSION;
  const path = join(KEA_CACHE, 'bin', `${name}-${version}`);
  try {
    await access(path);
  } catch {
    throw new Error(`${path} is missing: run scripts/setup.sh (it builds ${name} ${version} from the Go module proxy)`);
  }
  return path;
}

async function openssl(args: string[], cwd: string): Promise<void> {
  await run('openssl', args, { cwd });
}

/** Writes a CA, a serving cert for 127.0.0.1, an admin client cert and a service-account key pair. */
async function makeCerts(dir: string): Promise<void> {
  try {
    await access(join(dir, 'admin.crt'));
    return; // reuse: a restarted control plane keeps its identity
  } catch {
    /* create below */
  }
  await mkdir(dir, { recursive: true });
  const days = '3650';
  await openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', days, '-subj', '/CN=kea-local-ca'], dir);
  await writeFile(join(dir, 'serving.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes.default.svc\nextendedKeyUsage=serverAuth\n');
  await openssl(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'serving.key', '-out', 'serving.csr', '-subj', '/CN=kube-apiserver'], dir);
  await openssl(
    [
      'x509',
      '-req',
      '-in',
      'serving.csr',
      '-CA',
      'ca.crt',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-out',
      'serving.crt',
      '-days',
      days,
      '-extfile',
      'serving.ext',
    ],
    dir,
  );
  await writeFile(join(dir, 'client.ext'), 'extendedKeyUsage=clientAuth\n');
  await openssl(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'admin.key', '-out', 'admin.csr', '-subj', '/O=system:masters/CN=kea-admin'], dir);
  await openssl(
    ['x509', '-req', '-in', 'admin.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'admin.crt', '-days', days, '-extfile', 'client.ext'],
    dir,
  );
  await openssl(['genrsa', '-out', 'sa.key', '2048'], dir);
  await openssl(['rsa', '-in', 'sa.key', '-pubout', '-out', 'sa.pub'], dir);
}

function b64(s: string | Buffer): string {
  return Buffer.from(s).toString('base64');
}

async function writeKubeconfig(path: string, server: string, certDir: string): Promise<void> {
  const [ca, crt, key] = await Promise.all(['ca.crt', 'admin.crt', 'admin.key'].map((f) => readFile(join(certDir, f))));
  const cfg = `apiVersion: v1
kind: Config
clusters:
- name: kea-local
  cluster:
    server: ${server}
    certificate-authority-data: ${b64(ca)}
users:
- name: kea-admin
  user:
    client-certificate-data: ${b64(crt)}
    client-key-data: ${b64(key)}
contexts:
- name: kea-local
  context: { cluster: kea-local, user: kea-admin }
current-context: kea-local
`;
  await writeFile(path, cfg, { mode: 0o600 });
}

/** GET `path` on the API server with the admin client cert; resolves to the HTTP status (0 on error). */
async function probe(server: string, path: string, certDir: string): Promise<number> {
  const [ca, cert, key] = await Promise.all(['ca.crt', 'admin.crt', 'admin.key'].map((f) => readFile(join(certDir, f))));
  return new Promise((res) => {
    const req = request(`${server}${path}`, { ca, cert, key, timeout: 2000 }, (r) => {
      r.resume();
      r.on('end', () => res(r.statusCode ?? 0));
    });
    req.on('error', () => res(0));
    req.on('timeout', () => {
      req.destroy();
      res(0);
    });
    req.end();
  });
}

async function waitFor(what: string, timeoutMs: number, check: () => Promise<boolean>, proc?: ChildProcess, log?: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (proc && proc.exitCode !== null) {
      const tail = log ? (await readFile(log, 'utf8').catch(() => '')).split('\n').slice(-30).join('\n') : '';
      throw new Error(`${what}: process exited with code ${proc.exitCode}\n${tail}`);
    }
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${what}: timed out after ${timeoutMs} ms${log ? ` (log: ${log})` : ''}`);
}

function spawnLogged(bin: string, args: string[], logPath: string): ChildProcess {
  const fd = openSync(logPath, 'a');
  const child = spawn(bin, args, { stdio: ['ignore', fd, fd], detached: false });
  closeSync(fd);
  return child;
}

/**
 * Starts etcd and kube-apiserver and waits until the API server is ready.
 * @throws Error when a binary is missing (run scripts/setup.sh) or a component fails to start
 *   (the message carries the tail of its log).
 */
export async function startControlPlane(opts: ControlPlaneOptions = {}): Promise<ControlPlane> {
  const t0 = Date.now();
  const dataDir = resolve(opts.dataDir ?? (await mkdtemp(join(tmpdir(), 'kea-cp-'))));
  const certDir = join(dataDir, 'certs');
  await mkdir(dataDir, { recursive: true });
  const [etcdBin, apiBin] = await Promise.all([binary('etcd'), binary('kube-apiserver'), makeCerts(certDir)]).then(([e, a]) => [e, a] as const);
  const [etcdPort, peerPort] = [await freePort(), await freePort()];
  const apiPort = opts.apiPort ?? (await freePort());
  const etcdUrl = `http://127.0.0.1:${etcdPort}`;
  const etcdArgs = [
    '--name=default',
    `--data-dir=${join(dataDir, 'etcd')}`,
    `--listen-client-urls=${etcdUrl}`,
    `--advertise-client-urls=${etcdUrl}`,
    `--listen-peer-urls=http://127.0.0.1:${peerPort}`,
    `--initial-advertise-peer-urls=http://127.0.0.1:${peerPort}`,
    `--initial-cluster=default=http://127.0.0.1:${peerPort}`,
    '--log-level=warn',
    ...(opts.unsafeNoFsync ? ['--unsafe-no-fsync'] : []),
  ];
  const etcd = spawnLogged(etcdBin, etcdArgs, join(dataDir, 'etcd.log'));
  await waitFor(
    'etcd',
    20000,
    async () => {
      try {
        const r = await fetch(`${etcdUrl}/health`);
        return r.ok;
      } catch {
        return false;
      }
    },
    etcd,
    join(dataDir, 'etcd.log'),
  );

  const server = `https://127.0.0.1:${apiPort}`;
  const apiArgs = [
    `--etcd-servers=${etcdUrl}`,
    `--secure-port=${apiPort}`,
    '--bind-address=127.0.0.1',
    '--advertise-address=127.0.0.1',
    `--tls-cert-file=${join(certDir, 'serving.crt')}`,
    `--tls-private-key-file=${join(certDir, 'serving.key')}`,
    `--client-ca-file=${join(certDir, 'ca.crt')}`,
    '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
    `--service-account-key-file=${join(certDir, 'sa.pub')}`,
    `--service-account-signing-key-file=${join(certDir, 'sa.key')}`,
    '--service-cluster-ip-range=10.0.0.0/24',
    '--allow-privileged=true',
    '--disable-admission-plugins=ServiceAccount',
    '--authorization-mode=RBAC',
    `--cert-dir=${certDir}`,
    '--v=0',
  ];
  const apiLog = join(dataDir, 'kube-apiserver.log');
  let api: ChildProcess | undefined;
  // Never leaves a process behind: a running API server is stopped first, and one that does
  // not become ready is killed before the error propagates.
  const startApiServer = async () => {
    await stopProcess(api);
    const proc = spawnLogged(apiBin, apiArgs, apiLog);
    api = proc;
    try {
      await waitFor('kube-apiserver /readyz', 60000, async () => (await probe(server, '/readyz', certDir)) === 200, proc, apiLog);
      await waitFor('namespace default', 30000, async () => (await probe(server, '/api/v1/namespaces/default', certDir)) === 200, proc, apiLog);
    } catch (e) {
      await stopProcess(proc, 2000);
      throw e;
    }
  };
  try {
    await startApiServer();
  } catch (e) {
    await stopProcess(etcd);
    throw e;
  }
  const kubeconfig = join(dataDir, 'kubeconfig');
  await writeKubeconfig(kubeconfig, server, certDir);
  const stopApiServer = () => stopProcess(api);
  return {
    kubeconfig,
    server,
    dataDir,
    startMs: Date.now() - t0,
    stopApiServer,
    startApiServer,
    async restartApiServer() {
      await stopApiServer();
      await startApiServer();
    },
    async stop() {
      await stopApiServer();
      await stopProcess(etcd);
    },
  };
}

/** Directory of a Go module version in the module cache (downloads it through the Go module proxy if needed). */
export async function goModuleDir(module: string, version: string): Promise<string> {
  const { stdout } = await run('go', ['mod', 'download', '-json', `${module}@${version}`], {
    env: { ...process.env, GOFLAGS: '-mod=mod', GOTOOLCHAIN: 'local' },
    maxBuffer: 16 << 20,
  });
  const dir = JSON.parse(stdout) as { Dir?: string; Error?: string };
  if (!dir.Dir) throw new Error(`go mod download ${module}@${version}: ${dir.Error ?? 'no Dir'}`);
  return dir.Dir;
}

async function yamlFiles(dir: string): Promise<string[]> {
  const names = (await readdir(dir)).filter((f) => f.endsWith('.yaml')).sort();
  return names.map((f) => join(dir, f));
}

/**
 * Installs, with server-side apply, the Gateway API standard CRDs ({@link GATEWAY_API_VERSION},
 * from the sigs.k8s.io/gateway-api Go module) and KEA's CRDs (manifests/crds), then waits
 * until all are Established. NGF's own CRDs (NginxProxy, ClientSettingsPolicy, ...) are installed
 * by dev/ngf.ts from the vendored NGF source, when NGF is the gateway.
 * @throws Error with kubectl's stderr when an apply fails.
 */
export async function installCrds(kubeconfig: string): Promise<void> {
  const gw = await goModuleDir('sigs.k8s.io/gateway-api', GATEWAY_API_VERSION);
  const files = await yamlFiles(join(gw, 'config/crd/standard'));
  files.push(...(await yamlFiles(join(REPO_ROOT, 'manifests', 'crds'))));
  const args = ['--kubeconfig', kubeconfig, 'apply', '--server-side', '--force-conflicts', '--field-manager=kea-setup'];
  for (const f of files) args.push('-f', f);
  await run('kubectl', args, { maxBuffer: 16 << 20 });
  // `kubectl wait` fails outright ("status.conditions accessor error") on a CRD whose status is
  // not written yet, so poll until every CRD reports Established.
  await waitFor('CRDs Established', 60000, async () => {
    const { stdout } = await run('kubectl', ['--kubeconfig', kubeconfig, 'get', 'crd', '-o', 'json'], { maxBuffer: 64 << 20 });
    const crds = (JSON.parse(stdout) as { items: Array<{ status?: { conditions?: Array<{ type: string; status: string }> } }> }).items;
    return crds.every((c) => c.status?.conditions?.some((k) => k.type === 'Established' && k.status === 'True'));
  });
}
