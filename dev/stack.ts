/**
 * The whole KEA stack on one machine (`kea up` / `kea down`), as named steps:
 *
 *   control-plane  etcd + kube-apiserver (dev/controlplane.ts), unless KUBECONFIG is set
 *   crds           Gateway API standard CRDs + KEA CRDs (installCrds)
 *   network        bridge kea0, 10.213.0.1/24, and 10.213.0.254 (.253, ...) for more policy-server replicas (dev/netns.ts)
 *   redis          Debian's redis-server on 10.213.0.1:<redisPort>: password auth (generated, kept in
 *                  secrets.json and `redis-password`), no persistence; the policy servers' shared state
 *   gateway        nginx-gateway-fabric 1.6.2 static mode + Debian's nginx in a private mount namespace
 *                  (dev/ngf.ts): NGF's CRDs, NginxProxy, GatewayClass `nginx`, Gateway kea-system/kea
 *   idp            dev OpenID provider (dist/dev/idp-main.js), demo users student/teacher/admin
 *   policy-server  two replicas (`policyReplicas`) of dist/policy-server/main.js, `policy-server-1` on
 *                  10.213.0.1:<policyPort>, `policy-server-2` on 10.213.0.254:<policyPort>, both with
 *                  Redis; Service kea-system/kea-policy + one EndpointSlice naming both addresses, so
 *                  the gateway (nginx) balances between them as between two pods
 *   controller     dist/controller/main.js
 *   local-pods     local stand-in for kubelet + EndpointSlice controller (dev/localpods.ts)
 *   examples       server-side apply of examples/&#42;&#42;/kea.yaml, then wait for their pods to be ready
 *
 * A step whose program is not built (dist/... missing) is reported as `skipped` with the reason;
 * every other failure stops the stack and is thrown. Timings of every step are measured (ms).
 *
 * State lives in `<stateDir>` (default `<repo>/.kea`): `stack.json` (pids, bridge, urls,
 * timings; what `kea down` reads), `kubeconfig`, `secrets.json` (internal token, session and
 * client secrets, Redis password; kept across runs), `controlplane/` (etcd data: kept, so a warm
 * start reuses it), `redis/` (its configuration, 0600) and `logs/` (one log per child).
 *
 * Every host child (redis, the IdP, each policy-server replica, the controller) is supervised
 * like a kubelet supervises a container: restarted with backoff when it exits. Tests take one
 * down for a while with `Stack.pauseChild` (no restart) and bring it back with `Stack.resumeChild`.
 */
import { CONTROLLER_NODE_ARGS, CONTROLLER_ENV } from '../controller/runtime-flags.js';
import { POLICY_NODE_ARGS } from '../policy-server/runtime-flags.js';
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { promisify } from 'node:util';
import { access, mkdir, readFile, writeFile, rm, readdir, readlink, copyFile } from 'node:fs/promises';
import { openSync, closeSync, existsSync, constants as fsConstants } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join, resolve } from 'node:path';
import { KubeConfig, CustomObjectsApi, type KubernetesObject } from '@kubernetes/client-node';
import { parseAllDocuments } from 'yaml';
import { startControlPlane, installCrds, REPO_ROOT, type ControlPlane } from './controlplane.js';
import { startNgf, NGF_VERSION, type RunningNgf } from './ngf.js';
import { addHostAddress, createBridge, deleteBridge, hostAddressFor, registerService, type Bridge } from './netns.js';
import { startLocalPods, type LocalPods } from './localpods.js';
import { freePort, pathExists, stopProcess } from '../lib/process.js';

const run = promisify(execFile);

/** Options of {@link startStack}. Ports default to the documented topology (docs/TEAM.md). */
export interface StackOptions {
  /** Default `<repo>/.kea`. */
  stateDir?: string;
  /** Gateway `public` listener port; default 8080. */
  publicPort?: number;
  /** Gateway `internal` listener port; default 8081. */
  internalPort?: number;
  /** Dev IdP port; default 9000. */
  idpPort?: number;
  /** Policy server port on the bridge address; default 8000. */
  policyPort?: number;
  /** Policy-server replicas (1..6), each its own process on its own bridge address; default 2. */
  policyReplicas?: number;
  /** Redis port on the bridge address; default 6379. */
  redisPort?: number;
  /** Controller /healthz,/readyz,/metrics port; default 8082. */
  controllerPort?: number;
  /** Apply examples/&#42;&#42;/kea.yaml; default true. */
  examples?: boolean;
  /** Use this kubeconfig instead of starting a control plane; default: env KUBECONFIG. */
  kubeconfig?: string;
  /** Bridge kea<N> to use (subnet 10.213.N.0/24); default 0 (kea0, 10.213.0.1), or the first free one when that subnet is already routed on the machine. `auto`: the first free one (tests). */
  bridgeIndex?: number | 'auto';
  /** Wipe the control plane's data first (a cold start); default false. */
  fresh?: boolean;
  /** Progress lines; default: stderr. */
  log?: (line: string) => void;
  /** Aborting stops the start after the current step, stops what was started, and rejects. */
  signal?: AbortSignal;
}

export type StepStatus = 'ok' | 'skipped' | 'failed';

/** One step's outcome. */
export interface StepResult {
  step: string;
  status: StepStatus;
  /** Duration, ms. */
  ms: number;
  detail?: string;
}

/** What `kea up` prints and `kea down` reads (stack.json). */
export interface StackInfo {
  ownerPid: number;
  startedAt: string;
  stateDir: string;
  kubeconfig: string;
  gatewayUrl: string;
  internalUrl: string;
  docsUrl: string;
  idpIssuer?: string;
  bridge: string;
  /** Child processes (name → pid) started by the stack. */
  children: Record<string, number>;
  /** Data dir of the embedded control plane (its processes carry this path in their command line). */
  controlPlaneDir?: string;
  /** Mount namespace of the gateway's nginx and NGF (`mnt:[<inode>]`): every process in it is the gateway's (nginx's workers too). */
  gatewayMountNs?: string;
  steps: StepResult[];
  /** Wall time from start to ready, ms. */
  totalMs?: number;
  /** True when the control plane's etcd data existed at start (warm start). */
  warm: boolean;
  demoLogins: string[];
  /** Example manifests left for the user to apply as upgrades (e.g. examples/iris-v2/kea.yaml). */
  upgrades?: string[];
  /** Where each child listens (name → `host:port` or URL), for `kea status`. */
  endpoints?: Record<string, string>;
  /** The Redis every policy-server replica shares (no password in it: see `redisPasswordFile`). */
  redis?: { url: string; passwordFile: string; log: string };
  /** The policy-server replicas, endpoints of Service kea-system/kea-policy. */
  policyServers?: PolicyReplicaInfo[];
}

/** One policy-server replica of the stack. */
export interface PolicyReplicaInfo {
  /** Child name: `policy-server-<i>`. */
  name: string;
  /** Data port (the gateway's backend, the portal, the management API), `http://<bridge address>:<policyPort>`. */
  url: string;
  /** Admin port (`/healthz`, `/readyz`, `/metrics`), `http://127.0.0.1:<free port>`. */
  adminUrl: string;
  log: string;
}

export interface Stack extends StackInfo {
  /** The embedded control plane (undefined when KUBECONFIG was given): fault tests restart its API server. */
  controlPlane?: ControlPlane;
  /** Current pid of a supervised child (`redis`, `idp`, `policy-server-1`, `policy-server-2`, `controller`); children are restarted when they exit. */
  pid(name: string): number | undefined;
  /**
   * Takes a supervised child down and keeps it down (for fault tests, e.g. "Redis down for a
   * while"): stops restarting it, sends `signal` (default SIGKILL) and resolves once it has exited.
   * @throws Error for an unknown child name.
   */
  pauseChild(name: string, signal?: NodeJS.Signals): Promise<void>;
  /**
   * Starts a child taken down by {@link Stack.pauseChild} again, supervised as before (same
   * command, log and readiness check); resolves once it is ready. A child that runs is left alone.
   * @throws Error for an unknown child name, or when it is not ready within its start timeout.
   */
  resumeChild(name: string): Promise<void>;
  /** Stops everything started, in reverse order; leaves no process or namespace. Safe to call twice. */
  stop(): Promise<void>;
}

export const DEFAULT_STATE_DIR = join(REPO_ROOT, '.kea');

/** Starts a child with stdout/stderr appended to `logPath`; resolves once `ready()` is true. */
async function startChild(
  name: string,
  cmd: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  logPath: string,
  ready: () => Promise<boolean>,
  timeoutMs: number,
  onSpawn?: (p: ChildProcess) => void,
): Promise<ChildProcess> {
  const fd = openSync(logPath, 'a');
  const p = spawn(cmd, args, { stdio: ['ignore', fd, fd], env, cwd: REPO_ROOT });
  closeSync(fd);
  onSpawn?.(p);
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (p.exitCode !== null || p.signalCode !== null) {
      const tail = (await readFile(logPath, 'utf8').catch(() => '')).split('\n').slice(-20).join('\n');
      throw new Error(`${name} exited (${p.exitCode ?? p.signalCode}) during start:\n${tail}`);
    }
    if (await ready().catch(() => false)) return p;
    await new Promise((r) => setTimeout(r, 150));
  }
  await stopProcess(p);
  throw new Error(`${name}: not ready after ${timeoutMs} ms (log: ${logPath})`);
}

/** What a supervised child is started with. */
interface ChildSpec {
  name: string;
  cmd: string;
  args: string[];
  env: NodeJS.ProcessEnv;
  logPath: string;
  ready: () => Promise<boolean>;
  timeoutMs: number;
}

/**
 * Keeps a host process running like a kubelet keeps a container: restarts it with backoff
 * (1 s doubling to 10 s) when it exits unless stop() was called, and reports each new pid.
 */
class Supervised {
  proc?: ChildProcess;
  restarts = 0;
  private stopping = false;
  private timer?: NodeJS.Timeout;

  constructor(
    private readonly spec: ChildSpec,
    private readonly onPid: (pid: number) => void,
    private readonly log: (l: string) => void,
  ) {}

  async start(): Promise<void> {
    // The pid is current from the spawn on (the process may serve before its readiness check passes).
    const p = await startChild(this.spec.name, this.spec.cmd, this.spec.args, this.spec.env, this.spec.logPath, this.spec.ready, this.spec.timeoutMs, (c) => {
      this.proc = c;
      this.onPid(c.pid!);
    });
    p.once('exit', (code, sig) => {
      if (this.stopping) return;
      this.restarts++;
      const backoff = Math.min(10000, 1000 * 2 ** Math.min(this.restarts - 1, 4));
      this.log(`${this.spec.name} exited (${code ?? sig}); restart #${this.restarts} in ${backoff} ms`);
      this.schedule(backoff);
    });
  }

  private schedule(ms: number): void {
    this.timer = setTimeout(() => {
      if (this.stopping) return;
      this.start().then(
        () => this.log(`${this.spec.name} restarted (pid ${this.proc?.pid})`),
        (e) => {
          this.log(`${this.spec.name} restart failed: ${e instanceof Error ? e.message : String(e)}`);
          this.restarts++;
          if (!this.stopping) this.schedule(10000);
        },
      );
    }, ms);
  }

  async stop(): Promise<void> {
    this.stopping = true;
    if (this.timer) clearTimeout(this.timer);
    await stopProcess(this.proc);
  }

  /** Stops supervising (no restart) and kills the process with `signal`; resolves once it has exited. */
  async pause(signal: NodeJS.Signals): Promise<void> {
    this.stopping = true;
    if (this.timer) clearTimeout(this.timer);
    const p = this.proc;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    const exited = new Promise<void>((r) => p.once('exit', () => r()));
    p.kill(signal);
    await exited;
  }

  /** Starts a paused child again (supervised from then on); a running one is left alone. */
  async resume(): Promise<void> {
    const p = this.proc;
    if (!this.stopping && p && p.exitCode === null && p.signalCode === null) return;
    if (this.timer) clearTimeout(this.timer); // a restart scheduled after a crash: this start replaces it
    this.stopping = false;
    this.restarts = 0;
    await this.start();
  }
}

async function httpOk(url: string): Promise<boolean> {
  const r = await fetch(url, { signal: AbortSignal.timeout(1500) });
  await r.arrayBuffer();
  return r.status < 500;
}

interface Secrets {
  internalToken: string;
  sessionSecret: string;
  gatewayClientSecret: string;
  scriptSecret: string;
  /** Redis `requirepass` (added to a secrets.json written before Redis was part of the stack). */
  redisPassword: string;
}

/** The stack's secrets from `path` (0600), generated on the first run; a missing one is generated and saved. */
async function loadSecrets(path: string): Promise<Secrets> {
  const s = (n: number) => randomBytes(n).toString('base64url');
  const fresh = (): Secrets => ({
    internalToken: s(24),
    sessionSecret: s(32),
    gatewayClientSecret: s(24),
    scriptSecret: 'kea-dev-script-secret',
    redisPassword: s(24),
  });
  let saved: Partial<Secrets> | undefined;
  try {
    saved = JSON.parse(await readFile(path, 'utf8')) as Partial<Secrets>;
  } catch {
    saved = undefined;
  }
  const secrets = { ...fresh(), ...saved };
  if (!saved || Object.keys(secrets).some((k) => !(k in saved))) await writeFile(path, JSON.stringify(secrets, null, 2), { mode: 0o600 });
  return secrets;
}

/**
 * redis.conf of the stack's Redis: listens on `bind:port` only, password auth, no persistence
 * (`save ""`, `appendonly no`: the shared state is rate-limit counters and cache entries, both
 * rebuilt after a restart), logs to stdout (the child's log), and a process title naming the
 * configuration file, so that `kea down` recognises a left-over redis-server by its state dir.
 */
export function redisConfig(o: { bind: string; port: number; password: string; dir: string; confPath: string }): string {
  const q = (v: string) => JSON.stringify(v);
  return [
    `bind ${o.bind}`,
    `port ${o.port}`,
    'protected-mode yes',
    `requirepass ${q(o.password)}`,
    'save ""',
    'appendonly no',
    `dir ${q(o.dir)}`,
    'daemonize no',
    'logfile ""',
    // {config-file} is the absolute path of this file, under the stack's state dir.
    'proc-title-template "{title} {listen-addr} {server-mode} {config-file}"',
    '',
  ].join('\n');
}

/** Whether Redis at host:port answers PING after AUTH (ioredis, one connection, no retry). */
async function redisPing(host: string, port: number, password: string): Promise<boolean> {
  const { Redis } = await import('ioredis');
  const c = new Redis({
    host,
    port,
    password,
    lazyConnect: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    connectTimeout: 1000,
  });
  c.on('error', () => undefined);
  try {
    await c.connect();
    return (await c.ping()) === 'PONG';
  } finally {
    c.disconnect();
  }
}

/**
 * The `kea.yaml` files under examples/ (sorted by folder). A file that redefines an object an
 * earlier file already defines (same kind, namespace and name, e.g. iris-v2 redefining MLService
 * `iris`) is an upgrade step, not part of the initial state: it lands in `upgrades`.
 */
export async function exampleManifests(examplesDir = join(REPO_ROOT, 'examples')): Promise<{ apply: string[]; upgrades: string[] }> {
  const out = { apply: [] as string[], upgrades: [] as string[] };
  const seen = new Set<string>();
  for (const d of (await readdir(examplesDir, { withFileTypes: true }).catch(() => [])).sort((a, b) => a.name.localeCompare(b.name))) {
    if (!d.isDirectory()) continue;
    const f = join(examplesDir, d.name, 'kea.yaml');
    if (!(await pathExists(f))) continue;
    const keys = parseAllDocuments(await readFile(f, 'utf8'))
      .map((doc) => doc.toJSON() as { kind?: string; metadata?: { name?: string; namespace?: string } } | null)
      .filter((o): o is { kind: string; metadata: { name?: string; namespace?: string } } => !!o?.kind)
      .map((o) => `${o.kind}/${o.metadata?.namespace ?? 'default'}/${o.metadata?.name}`);
    if (keys.some((k) => seen.has(k))) out.upgrades.push(f);
    else {
      keys.forEach((k) => seen.add(k));
      out.apply.push(f);
    }
  }
  return out;
}

/**
 * The stack's Redis as a supervised child: writes `<stateDir>/redis/redis.conf` (0600, see
 * {@link redisConfig}) and `<stateDir>/redis-password` (0600, for `redis-cli`: `REDISCLI_AUTH`),
 * and returns the child's spec (ready when it answers PING after AUTH), its URL (no password)
 * and the password file.
 */
async function redisChild(o: {
  host: string;
  port: number;
  password: string;
  stateDir: string;
}): Promise<{ spec: ChildSpec; url: string; passwordFile: string }> {
  const dir = join(o.stateDir, 'redis');
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const confPath = join(dir, 'redis.conf');
  await writeFile(confPath, redisConfig({ bind: o.host, port: o.port, password: o.password, dir, confPath }), { mode: 0o600 });
  const passwordFile = join(o.stateDir, 'redis-password');
  await writeFile(passwordFile, o.password, { mode: 0o600 });
  return {
    url: `redis://${o.host}:${o.port}`,
    passwordFile,
    spec: {
      name: 'redis',
      cmd: 'redis-server',
      args: [confPath],
      env: { ...process.env },
      logPath: join(o.stateDir, 'logs', 'redis.log'),
      ready: () => redisPing(o.host, o.port, o.password),
      timeoutMs: 15000,
    },
  };
}

/**
 * Policy-server replica `policy-server-<index>` as a supervised child: data port on `host:port`
 * (a bridge address, an endpoint of kea-system/kea-policy), admin port on 127.0.0.1, its own
 * state dir (`policy-state-<index>`) and log; the stack's internal token, session secrets and
 * OIDC client secret through 0600 files; Redis by `--redis-url` (its password in `env`,
 * `KEA_REDIS_PASSWORD`, never on the command line). Ready when `/healthz` (data port) and
 * `/readyz` (admin port) answer.
 */
function policyReplicaChild(o: {
  index: number;
  host: string;
  port: number;
  adminPort: number;
  stateDir: string;
  internalUrl: string;
  gatewayUrl: string;
  idpIssuer?: string;
  redisUrl?: string;
  env: NodeJS.ProcessEnv;
}): ChildSpec {
  const name = `policy-server-${o.index}`;
  const args = [
    ...POLICY_NODE_ARGS,
    join(REPO_ROOT, 'dist/policy-server/main.js'),
    '--host',
    o.host,
    '--port',
    String(o.port),
    '--admin-host',
    '127.0.0.1',
    '--admin-port',
    String(o.adminPort),
    '--upstream-url',
    o.internalUrl,
    '--internal-token-file',
    join(o.stateDir, 'internal-token'),
    '--state-dir',
    join(o.stateDir, `policy-state-${o.index}`),
    '--gateway-url',
    o.gatewayUrl,
    '--session-secrets-file',
    join(o.stateDir, 'session-secrets'),
  ];
  if (o.idpIssuer) {
    args.push(
      '--oidc-issuer',
      o.idpIssuer,
      '--oidc-client-id',
      'kea-gateway',
      '--oidc-client-secret-file',
      join(o.stateDir, 'gateway-client-secret'),
      '--oidc-audience',
      'urn:kea:gateway',
    );
  }
  if (o.redisUrl) args.push('--redis-url', o.redisUrl);
  return {
    name,
    cmd: process.execPath,
    args,
    env: { ...o.env, KEA_OIDC_ALLOW_HTTP_ISSUER: 'true', KEA_COOKIE_SECURE: 'false' },
    logPath: join(o.stateDir, 'logs', `${name}.log`),
    ready: async () => (await httpOk(`http://${o.host}:${o.port}/healthz`)) && (await httpOk(`http://127.0.0.1:${o.adminPort}/readyz`)),
    timeoutMs: 30000,
  };
}

/**
 * Starts the stack step by step (see the module comment) and writes `<stateDir>/stack.json`
 * after every step. On a failure, everything started so far is stopped and the error rethrown.
 * @throws Error naming the failed step.
 */
export async function startStack(opts: StackOptions = {}): Promise<Stack> {
  const t0 = Date.now();
  const log = opts.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  const stateDir = resolve(opts.stateDir ?? DEFAULT_STATE_DIR);
  const logDir = join(stateDir, 'logs');
  await mkdir(logDir, { recursive: true });
  const stackFile = join(stateDir, 'stack.json');
  if (await pathExists(stackFile)) {
    const prev = JSON.parse(await readFile(stackFile, 'utf8')) as StackInfo;
    if (alive(prev.ownerPid)) throw new Error(`a stack is already running (pid ${prev.ownerPid}); run \`kea down\` first`);
    log(`cleaning up after a previous stack that did not stop cleanly (pid ${prev.ownerPid})`);
    await cleanupLeftovers(prev, log);
  }
  const publicPort = opts.publicPort ?? 8080;
  const internalPort = opts.internalPort ?? 8081;
  const idpPort = opts.idpPort ?? 9000;
  const policyPort = opts.policyPort ?? 8000;
  const controllerPort = opts.controllerPort ?? 8082;
  const redisPort = opts.redisPort ?? 6379;
  const replicas = opts.policyReplicas ?? 2;
  if (!Number.isInteger(replicas) || replicas < 1 || replicas > 6) throw new Error(`policyReplicas must be 1..6, not ${replicas}`);
  const gatewayUrl = `http://localhost:${publicPort}`;
  const secrets = await loadSecrets(join(stateDir, 'secrets.json'));
  // Secrets reach the processes through 0600 files (or the environment), never the command
  // line, which `ps` shows to every user of the machine.
  await writeFile(join(stateDir, 'internal-token'), secrets.internalToken, { mode: 0o600 });
  const cpDir = join(stateDir, 'controlplane');
  if (opts.fresh) await rm(cpDir, { recursive: true, force: true });
  const warm = await pathExists(join(cpDir, 'etcd'));

  const info: StackInfo = {
    ownerPid: process.pid,
    startedAt: new Date().toISOString(),
    stateDir,
    kubeconfig: '',
    gatewayUrl,
    internalUrl: `http://127.0.0.1:${internalPort}`,
    docsUrl: `${gatewayUrl}/docs`,
    bridge: 'kea0',
    children: {},
    steps: [],
    warm,
    demoLogins: ['student / student', 'teacher / teacher', 'admin / admin'],
    endpoints: {},
  };
  const save = () => writeFile(stackFile, JSON.stringify(info, null, 2));

  let cp: ControlPlane | undefined;
  let bridge: Bridge | undefined;
  let gw: RunningNgf | undefined;
  let pods: LocalPods | undefined;
  const children: Array<[string, Supervised]> = [];
  let stopped = false;

  const stop = async () => {
    if (stopped) return;
    stopped = true;
    log('stopping: local pods');
    await pods?.stop().catch((e) => log(`local pods: ${String(e)}`));
    for (const [name, p] of [...children].reverse()) {
      log(`stopping: ${name}`);
      await p.stop();
    }
    log('stopping: gateway');
    await gw?.stop();
    if (bridge) {
      log('stopping: network');
      await deleteBridge(bridge).catch((e) => log(`network: ${String(e)}`));
    }
    if (cp) {
      log('stopping: control plane');
      await cp.stop();
    }
    await rm(stackFile, { force: true });
  };

  const step = async (name: string, fn: () => Promise<string | void>, skipIf?: () => Promise<string | undefined>) => {
    if (opts.signal?.aborted) {
      log(`interrupted before step ${name}: stopping what was started`);
      await stop();
      throw new Error(`kea up: interrupted before step ${name}`);
    }
    const s0 = Date.now();
    const reason = skipIf ? await skipIf() : undefined;
    if (reason) {
      info.steps.push({ step: name, status: 'skipped', ms: 0, detail: reason });
      log(`[skip] ${name}: ${reason}`);
      await save();
      return;
    }
    log(`[....] ${name}`);
    try {
      const detail = (await fn()) ?? undefined;
      info.steps.push({ step: name, status: 'ok', ms: Date.now() - s0, ...(detail ? { detail } : {}) });
      log(`[ ok ] ${name} (${Date.now() - s0} ms)${detail ? `: ${detail}` : ''}`);
      await save();
    } catch (e) {
      info.steps.push({ step: name, status: 'failed', ms: Date.now() - s0, detail: String(e) });
      await save();
      log(`[FAIL] ${name}: ${e instanceof Error ? e.message : String(e)}`);
      await stop();
      throw new Error(`kea up: step ${name} failed: ${e instanceof Error ? e.message : String(e)}`);
    }
  };
  const missing = async (rel: string) => ((await pathExists(join(REPO_ROOT, rel))) ? undefined : `${rel} not built (run \`npm run build\`)`);
  const nodeEnv = (extra: Record<string, string>): NodeJS.ProcessEnv => ({ ...process.env, KUBECONFIG: info.kubeconfig, ...extra });
  /** Starts a supervised child (restarted when it exits) and records its pid in stack.json. */
  const supervise = async (spec: ChildSpec): Promise<Supervised> => {
    const sup = new Supervised(
      spec,
      (pid) => {
        info.children[spec.name] = pid;
        void save();
      },
      log,
    );
    await sup.start();
    children.push([spec.name, sup]);
    return sup;
  };

  await save();
  const externalKubeconfig = opts.kubeconfig ?? process.env.KUBECONFIG;
  await step('control-plane', async () => {
    if (externalKubeconfig) {
      info.kubeconfig = resolve(externalKubeconfig);
      return `using KUBECONFIG ${info.kubeconfig}`;
    }
    info.controlPlaneDir = cpDir;
    await save();
    cp = await startControlPlane({ dataDir: cpDir });
    info.kubeconfig = join(stateDir, 'kubeconfig');
    await copyFile(cp.kubeconfig, info.kubeconfig);
    return `${cp.server} (${warm ? 'warm: existing etcd data' : 'cold: new etcd data'})`;
  });
  const kc = new KubeConfig();
  kc.loadFromFile(info.kubeconfig);

  await step('crds', async () => {
    for (let i = 0; ; i++) {
      try {
        await installCrds(info.kubeconfig);
        return;
      } catch (e) {
        // `kubectl wait` can race a CRD whose status is not written yet; retry briefly.
        if (i >= 4) throw e;
        await new Promise((r) => setTimeout(r, 1000));
      }
    }
  });

  await step('network', async () => {
    // Default kea0, or the first free bridge when 10.213.0.0/24 is already routed on this machine; an explicit index whose subnet is taken fails here, naming the interface.
    bridge = await createBridge(opts.bridgeIndex === 'auto' ? {} : { index: opts.bridgeIndex ?? 0, orFirstFree: opts.bridgeIndex === undefined });
    info.bridge = bridge.name;
    const extra = Array.from({ length: replicas - 1 }, (_, k) => hostAddressFor(bridge!, k + 2));
    for (const a of extra) await addHostAddress(bridge, a);
    return `${bridge.name} ${bridge.hostAddress}/24${extra.length ? ` (+ ${extra.join(', ')} for policy-server replicas)` : ''}`;
  });

  await step(
    'redis',
    async () => {
      const { spec, url, passwordFile } = await redisChild({ host: bridge!.hostAddress, port: redisPort, password: secrets.redisPassword, stateDir });
      const sup = await supervise(spec);
      info.redis = { url, passwordFile, log: spec.logPath };
      info.endpoints!.redis = url;
      return `${url} (pid ${sup.proc?.pid}, password in ${passwordFile}, no persistence)`;
    },
    redisMissing,
  );

  await step('gateway', async () => {
    // A warm start on etcd data from the Traefik era (before ADR 0010): drop what Traefik wrote.
    const stale = await removeStaleGatewayState(kc);
    if (stale) log(stale);
    gw = await startNgf({
      kubeconfig: info.kubeconfig,
      stateDir: join(stateDir, 'gateway'),
      publicPort,
      internalPort,
      log: (l) => log(`gateway: ${l}`),
      onNgfPid: (pid) => {
        info.children.ngf = pid;
        void save();
      },
    });
    info.children.gateway = gw.nginxPid;
    info.gatewayMountNs = gw.mountNs;
    return `NGF ${NGF_VERSION} pid ${gw.ngfPid()}, nginx pid ${gw.nginxPid}, Gateway kea-system/kea programmed (public :${publicPort}, internal :${internalPort}, NGF /readyz :${gw.healthPort}; logs ${gw.stateDir}/{ngf,nginx}.log)`;
  });

  await step(
    'idp',
    async () => {
      await supervise({
        name: 'idp',
        cmd: process.execPath,
        args: [join(REPO_ROOT, 'dist/dev/idp-main.js'), '--port', String(idpPort), '--gateway-url', gatewayUrl],
        env: nodeEnv({ KEA_IDP_GATEWAY_SECRET: secrets.gatewayClientSecret, KEA_IDP_SCRIPT_SECRET: secrets.scriptSecret }),
        logPath: join(logDir, 'idp.log'),
        ready: () => httpOk(`http://127.0.0.1:${idpPort}/.well-known/openid-configuration`),
        timeoutMs: 30000,
      });
      info.idpIssuer = `http://127.0.0.1:${idpPort}`;
      return info.idpIssuer;
    },
    () => missing('dist/dev/idp-main.js'),
  );

  await step(
    'policy-server',
    async () => {
      await writeFile(join(stateDir, 'gateway-client-secret'), secrets.gatewayClientSecret, { mode: 0o600 });
      await writeFile(join(stateDir, 'session-secrets'), secrets.sessionSecret, { mode: 0o600 });
      // The replicas start together, like the pods of a Deployment: each its own process, bridge
      // address, admin port, state dir and log; the same port, Redis, secrets and configuration.
      // allSettled: a replica still starting when another fails must be recorded (and stopped) too.
      const settled = await Promise.allSettled(
        Array.from({ length: replicas }, async (_, k) => {
          const host = hostAddressFor(bridge!, k + 1);
          // Probes and metrics on loopback only, like the cluster's admin port the Service does not expose.
          const adminPort = await freePort();
          const spec = policyReplicaChild({
            index: k + 1,
            host,
            port: policyPort,
            adminPort,
            stateDir,
            internalUrl: info.internalUrl,
            gatewayUrl,
            idpIssuer: info.idpIssuer,
            redisUrl: info.redis?.url,
            env: nodeEnv(info.redis ? { KEA_REDIS_PASSWORD: secrets.redisPassword } : {}),
          });
          await supervise(spec);
          info.endpoints![spec.name] = `${host}:${policyPort} (admin 127.0.0.1:${adminPort})`;
          return { name: spec.name, url: `http://${host}:${policyPort}`, adminUrl: `http://127.0.0.1:${adminPort}`, log: spec.logPath };
        }),
      );
      const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (failed) throw failed.reason;
      const started = settled.map((r) => (r as PromiseFulfilledResult<PolicyReplicaInfo>).value);
      info.policyServers = started;
      await registerService(kc, { namespace: 'kea-system', name: 'kea-policy', port: policyPort, addresses: started.map((r) => new URL(r.url).hostname) });
      return `${started.map((r) => `${r.name} ${new URL(r.url).host} (admin ${new URL(r.adminUrl).host})`).join(', ')}${info.redis ? `, Redis ${info.redis.url}` : ', no Redis'}; Service kea-system/kea-policy`;
    },
    () => missing('dist/policy-server/main.js'),
  );

  await step(
    'controller',
    async () => {
      const sup = await supervise({
        name: 'controller',
        cmd: process.execPath,
        args: [
          ...CONTROLLER_NODE_ARGS,
          join(REPO_ROOT, 'dist/controller/main.js'),
          '--kubeconfig',
          info.kubeconfig,
          '--internal-token-file',
          join(stateDir, 'internal-token'),
          '--gateway-url',
          gatewayUrl,
          '--http-port',
          String(controllerPort),
          '--http-host',
          '127.0.0.1',
          '--policy-port',
          String(policyPort),
          '--internal-gateway-url',
          info.internalUrl,
        ],
        env: nodeEnv(CONTROLLER_ENV),
        logPath: join(logDir, 'controller.log'),
        ready: () => httpOk(`http://127.0.0.1:${controllerPort}/readyz`),
        timeoutMs: 60000,
      });
      return `pid ${sup.proc?.pid}, http :${controllerPort}`;
    },
    () => missing('dist/controller/main.js'),
  );

  await step('local-pods', async () => {
    pods = await startLocalPods({ kubeconfig: info.kubeconfig, bridge: bridge!, logDir: join(logDir, 'pods'), log });
  });

  await step(
    'examples',
    async () => {
      const { apply: files, upgrades } = await exampleManifests();
      info.upgrades = upgrades;
      // kubectl's default field manager, so that a user's `kubectl apply --server-side` of an upgrade (iris-v2) does not conflict.
      const args = ['--kubeconfig', info.kubeconfig, 'apply', '--server-side', '--force-conflicts'];
      for (const f of files) args.push('-f', f);
      await run('kubectl', args, { maxBuffer: 16 << 20 });
      // The controller turns MLServices into Deployments; the local pod runner starts them.
      const deadline = Date.now() + 90000;
      await new Promise((r) => setTimeout(r, 1500));
      await pods!.syncOnce();
      await pods!.waitReady(Math.max(1000, deadline - Date.now()));
      return `${files.length} manifests, ${pods!.pods().size} local pods ready`;
    },
    async () => {
      if (opts.examples === false) return 'disabled';
      return (await exampleManifests()).apply.length ? undefined : 'no examples/*/kea.yaml yet';
    },
  );

  info.totalMs = Date.now() - t0;
  await save();
  return Object.assign(info, { stop, controlPlane: cp, ...childControls(children, log) });
}

/** The Stack's `pid`, `pauseChild` and `resumeChild` over its supervised children. */
function childControls(children: Array<[string, Supervised]>, log: (l: string) => void): Pick<Stack, 'pid' | 'pauseChild' | 'resumeChild'> {
  const child = (name: string): Supervised => {
    const c = children.find(([n]) => n === name)?.[1];
    if (!c) throw new Error(`no supervised child ${JSON.stringify(name)} (children: ${children.map(([n]) => n).join(', ')})`);
    return c;
  };
  return {
    pid: (name: string) => children.find(([n]) => n === name)?.[1].proc?.pid,
    pauseChild: async (name: string, signal: NodeJS.Signals = 'SIGKILL') => {
      const c = child(name);
      log(`${name}: taken down (${signal}), not restarted until resumed`);
      await c.pause(signal);
    },
    resumeChild: async (name: string) => {
      await child(name).resume();
      log(`${name}: resumed (pid ${child(name).proc?.pid})`);
    },
  };
}

/** Why the redis step is skipped: redis-server is not installed (undefined when it is). */
async function redisMissing(): Promise<string | undefined> {
  if (await onPath('redis-server')) return undefined;
  return 'redis-server not installed (`bash scripts/setup.sh`, or apt-get install redis-server): the policy servers run without shared state';
}

/** Whether `prog` is an executable file in a folder of PATH. */
async function onPath(prog: string): Promise<boolean> {
  for (const dir of (process.env.PATH ?? '').split(':').filter(Boolean)) {
    try {
      await access(join(dir, prog), fsConstants.X_OK);
      return true;
    } catch {
      /* not here */
    }
  }
  return false;
}

/**
 * Runs `fn`, again after 1 s while the API server answers 429 (e.g. "storage is (re)initializing"
 * for a CRD installed a moment ago), for up to `timeoutMs` (default 30000).
 * @throws the last error after the timeout, or any other error at once.
 */
export async function whenStorageReady<T>(fn: () => Promise<T>, timeoutMs = 30000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await fn();
    } catch (e) {
      if ((e as { code?: number }).code !== 429 || Date.now() > deadline) throw e;
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
}

/** `controllerName` of Traefik, the local stack's gateway before NGF (ADR 0004, superseded by docs/adr/0010-ngf-local-gateway.md). */
export const TRAEFIK_CONTROLLER_NAME = 'traefik.io/gateway-controller';
/** Traefik's GatewayClass in that era. */
const TRAEFIK_GATEWAY_CLASS = 'kea-local';

interface RouteStatusParent {
  controllerName?: string;
}

/**
 * Warm start on etcd data written while Traefik was the local gateway: removes the
 * `status.parents` entries Traefik (controllerName {@link TRAEFIK_CONTROLLER_NAME}) left on
 * HTTPRoutes, and its GatewayClass `kea-local`. NGF keeps other controllers' entries (its status
 * setter appends every parent with another controllerName), so without this a route would show
 * Traefik's stale verdict for parentRef kea-system/kea beside NGF's. Status writes use the
 * route's resourceVersion (a conflict with NGF's own write is read again and retried, 5 times).
 * @returns a line saying what was removed, or '' when nothing was stale.
 * @throws Error from the API server (other than a 409 conflict or 404 for a route deleted meanwhile).
 */
export async function removeStaleGatewayState(kc: KubeConfig, controllerName = TRAEFIK_CONTROLLER_NAME): Promise<string> {
  const api = kc.makeApiClient(CustomObjectsApi);
  const g = { group: 'gateway.networking.k8s.io', version: 'v1', plural: 'httproutes' };
  type Route = KubernetesObject & { metadata: { name: string; namespace: string; resourceVersion?: string }; status?: { parents?: RouteStatusParent[] } };
  const stale = (r: Route) => (r.status?.parents ?? []).some((p) => p.controllerName === controllerName);
  // Right after the CRDs are installed the API server may answer 429 "storage is (re)initializing" (Retry-After: 1).
  const list = (await whenStorageReady(() => api.listClusterCustomObject(g))) as { items: Route[] };
  const cleaned: string[] = [];
  for (let route of list.items.filter(stale)) {
    for (let attempt = 0; ; attempt++) {
      const body = { ...route, status: { ...route.status, parents: (route.status?.parents ?? []).filter((p) => p.controllerName !== controllerName) } };
      try {
        await api.replaceNamespacedCustomObjectStatus({ ...g, namespace: route.metadata.namespace, name: route.metadata.name, body });
        cleaned.push(`${route.metadata.namespace}/${route.metadata.name}`);
        break;
      } catch (e) {
        const code = (e as { code?: number }).code;
        if (code === 404) break;
        if (code !== 409 || attempt >= 4) throw e;
        route = (await api.getNamespacedCustomObject({ ...g, namespace: route.metadata.namespace, name: route.metadata.name })) as Route;
        if (!stale(route)) break;
      }
    }
  }
  let classGone = false;
  const gc = (await api
    .getClusterCustomObject({ group: g.group, version: g.version, plural: 'gatewayclasses', name: TRAEFIK_GATEWAY_CLASS })
    .catch(() => undefined)) as { spec?: { controllerName?: string } } | undefined;
  if (gc?.spec?.controllerName === controllerName) {
    await api.deleteClusterCustomObject({ group: g.group, version: g.version, plural: 'gatewayclasses', name: TRAEFIK_GATEWAY_CLASS });
    classGone = true;
  }
  if (!cleaned.length && !classGone) return '';
  return `removed what ${controllerName} left: status.parents of ${cleaned.length} HTTPRoute(s)${cleaned.length ? ` (${cleaned.join(', ')})` : ''}${classGone ? `, GatewayClass ${TRAEFIK_GATEWAY_CLASS}` : ''}`;
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

async function cmdline(pid: number): Promise<string> {
  return (await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')).replace(/\0/g, ' ');
}

/**
 * Programs the stack starts on the host (argv[0] basenames, versions stripped): etcd,
 * kube-apiserver, node, NGF (run as `<stateDir>/gateway/gateway`, dev/ngf.ts), nginx's master
 * (its process title, `nginx: master process nginx -g daemon off; env KEA_NGF_STATE=<dir>;`) and
 * redis-server (its title, `redis-server <addr>:<port> <stateDir>/redis/redis.conf`, see redisConfig).
 */
const STACK_PROGRAMS = /^(etcd|kube-apiserver|node|gateway|nginx:|redis-server)(-v[\d.]+)?$/;

/** Pids of stack programs (see STACK_PROGRAMS) whose command line mentions `needle` (a stack-specific path). */
async function pidsMentioning(needle: string): Promise<number[]> {
  const out: number[] = [];
  for (const d of await readdir('/proc')) {
    if (!/^\d+$/.test(d) || Number(d) === process.pid) continue;
    const cl = await cmdline(Number(d));
    const prog = (cl.split(' ')[0] ?? '').split('/').pop() ?? '';
    if (STACK_PROGRAMS.test(prog) && cl.includes(needle)) out.push(Number(d));
  }
  return out;
}

async function killAndWait(pids: number[], log: (l: string) => void): Promise<void> {
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGTERM');
      log(`sent SIGTERM to ${pid} (${(await cmdline(pid)).slice(0, 80)})`);
    } catch {
      /* gone */
    }
  }
  const deadline = Date.now() + 15000;
  while (Date.now() < deadline && pids.some(alive)) await new Promise((r) => setTimeout(r, 200));
  for (const pid of pids.filter(alive)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
}

/** Pids of every process in mount namespace `ns` (`mnt:[<inode>]`); none for the caller's own namespace. */
async function pidsInMountNs(ns: string | undefined): Promise<number[]> {
  if (!ns || ns === (await readlink('/proc/self/ns/mnt').catch(() => ''))) return [];
  const out: number[] = [];
  for (const d of await readdir('/proc')) {
    if (/^\d+$/.test(d) && (await readlink(`/proc/${d}/ns/mnt`).catch(() => '')) === ns) out.push(Number(d));
  }
  return out;
}

/**
 * Removes what a stack that died without stopping left behind: recorded children (only while
 * their command line still looks like ours), processes whose command line names the stack's
 * state dir (etcd, kube-apiserver, NGF, nginx's master), every process in the gateway's mount
 * namespace (nginx's workers, whose title names nothing; the namespace and its bind mounts go
 * with its last process), the bridge and its namespaces (with their processes).
 */
export async function cleanupLeftovers(info: StackInfo, log: (l: string) => void = () => undefined): Promise<void> {
  const recorded: number[] = [];
  for (const pid of Object.values(info.children)) {
    const cl = await cmdline(pid);
    if (cl && (cl.includes(info.stateDir) || cl.includes(REPO_ROOT))) recorded.push(pid);
  }
  const inGatewayNs = await pidsInMountNs(info.gatewayMountNs);
  await killAndWait([...new Set([...recorded, ...(await pidsMentioning(info.stateDir)), ...inGatewayNs])], log);
  const index = Number((info.bridge ?? 'kea0').replace(/^kea/, '')) || 0;
  await deleteBridge({ name: info.bridge ?? 'kea0', index, hostAddress: `10.213.${index}.1` });
}

/**
 * `kea down`: stops the stack recorded in `<stateDir>/stack.json`. Sends SIGTERM to the owning
 * `kea up` process (which stops everything in order) and waits up to 60 s; then removes any
 * leftovers (see cleanupLeftovers).
 * @returns false when no stack was recorded.
 */
export async function stopStack(stateDir = DEFAULT_STATE_DIR, log: (l: string) => void = (l) => process.stderr.write(`${l}\n`)): Promise<boolean> {
  const stackFile = join(resolve(stateDir), 'stack.json');
  if (!existsSync(stackFile)) return false;
  const info = JSON.parse(await readFile(stackFile, 'utf8')) as StackInfo;
  if (alive(info.ownerPid) && info.ownerPid !== process.pid) {
    log(`stopping kea up (pid ${info.ownerPid})`);
    process.kill(info.ownerPid, 'SIGTERM');
    const deadline = Date.now() + 60000;
    while (Date.now() < deadline && alive(info.ownerPid)) await new Promise((r) => setTimeout(r, 200));
  }
  await cleanupLeftovers(info, log);
  await rm(stackFile, { force: true });
  return true;
}

/** For `kea status`-like output: the current stack.json, if any. */
export async function readStackInfo(stateDir = DEFAULT_STATE_DIR): Promise<StackInfo | undefined> {
  try {
    return JSON.parse(await readFile(join(resolve(stateDir), 'stack.json'), 'utf8')) as StackInfo;
  } catch {
    return undefined;
  }
}
