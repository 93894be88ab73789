/**
 * Shared support for the end-to-end suite (e2e/*.e2e.test.ts): starts ONE whole KEA stack
 * (dev/stack.ts `startStack`: kube-apiserver + etcd, nginx-gateway-fabric 1.6.2 + nginx as the
 * Gateway API implementation (dev/ngf.ts), Redis, dev OIDC provider, two policy-server
 * replicas behind the gateway, controller,
 * example FastAPI/scikit-learn services in network namespaces) on free ports with a temp state
 * dir, and gives the tests
 * plain HTTP, token, kubectl, headless-Chromium and process-fault helpers.
 *
 * Every request a test asserts on goes to the gateway's public port (`stack.gatewayUrl`).
 * Test-only code; not part of the build (tsconfig.build.json excludes e2e/).
 */
import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdtemp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startStack, type PolicyReplicaInfo, type Stack, type StackOptions } from '../dev/stack.js';
import { REPO_ROOT } from '../dev/controlplane.js';
import { freePort } from '../lib/process.js';

const run = promisify(execFile);

/** Where screenshots, DOM dumps and measurements go (gitignored). */
export const ARTIFACTS = join(REPO_ROOT, 'e2e', 'artifacts');

/** Measured numbers, printed as they come and written to artifacts/measurements.json at the end. */
export const measurements: Record<string, unknown> = {};

/** Prints one measured number (stderr, so jest shows it live) and records it. */
export function measure(key: string, value: unknown, note = ''): void {
  measurements[key] = value;
  process.stderr.write(`[e2e] ${key} = ${typeof value === 'string' ? value : JSON.stringify(value)}${note ? `  (${note})` : ''}\n`);
}

/** Writes artifacts/<file> (default measurements.json): the measurements of this test file. */
export async function saveMeasurements(file = 'measurements.json'): Promise<void> {
  await mkdir(ARTIFACTS, { recursive: true });
  await writeFile(join(ARTIFACTS, file), JSON.stringify(measurements, null, 2));
}

/** The running stack plus what the tests need to reach it. */
export interface E2EStack {
  stack: Stack;
  /** `http://localhost:<public port>` */
  gw: string;
  stateDir: string;
  kubeconfig: string;
  idpIssuer: string;
  scriptSecret: string;
  controllerPort: number;
  startMs: number;
}

/**
 * Starts the stack on free, non-default ports with a fresh temp state dir (never the
 * `<repo>/.kea` of a `kea up`), on the first free bridge. Always uses the embedded control
 * plane (the fault tests restart its API server), whatever KUBECONFIG says.
 * @throws Error from startStack naming the failed step.
 */
export async function startE2EStack(extra: Pick<StackOptions, 'examples' | 'policyReplicas'> = {}): Promise<E2EStack> {
  const stateDir = await mkdtemp(join(tmpdir(), 'kea-e2e-'));
  const ports = {
    publicPort: await freePort(),
    internalPort: await freePort(),
    idpPort: await freePort(),
    policyPort: await freePort(),
    controllerPort: await freePort(),
  };
  const savedKubeconfig = process.env.KUBECONFIG;
  delete process.env.KUBECONFIG;
  const t0 = Date.now();
  let stack: Stack;
  try {
    stack = await startStack({
      stateDir,
      ...ports,
      bridgeIndex: 'auto',
      fresh: true,
      redisPort: await freePort(),
      ...extra,
      log: (l) => process.stderr.write(`[stack] ${l}\n`),
    });
  } finally {
    if (savedKubeconfig !== undefined) process.env.KUBECONFIG = savedKubeconfig;
  }
  const startMs = Date.now() - t0;
  const failed = stack.steps.filter((s) => s.status !== 'ok');
  if (failed.length) {
    await stack.stop();
    throw new Error(`stack steps not ok: ${JSON.stringify(failed)}`);
  }
  const secrets = JSON.parse(await readFile(join(stateDir, 'secrets.json'), 'utf8')) as { scriptSecret: string };
  return {
    stack,
    gw: stack.gatewayUrl,
    stateDir,
    kubeconfig: stack.kubeconfig,
    idpIssuer: stack.idpIssuer!,
    scriptSecret: secrets.scriptSecret,
    controllerPort: ports.controllerPort,
    startMs,
  };
}

/** Removes the temp state dir (after stop). */
export async function removeStateDir(dir: string): Promise<void> {
  if (dir.startsWith(tmpdir())) await rm(dir, { recursive: true, force: true });
}

// ---- tokens -----------------------------------------------------------------------------

const tokenCache = new Map<string, { token: string; exp: number }>();

/**
 * A bearer access token (JWT, audience urn:kea:gateway) for a demo role, from the dev IdP's
 * client-credentials clients `kea-script-<role>` (dev/idp-main.ts). Cached until 60 s before expiry.
 */
export async function bearer(s: E2EStack, role: 'student' | 'teacher' | 'admin'): Promise<string> {
  const hit = tokenCache.get(role);
  if (hit && hit.exp > Date.now() + 60000) return hit.token;
  const r = await fetch(`${s.idpIssuer}/token`, {
    method: 'POST',
    headers: {
      authorization: `Basic ${Buffer.from(`kea-script-${role}:${s.scriptSecret}`).toString('base64')}`,
      'content-type': 'application/x-www-form-urlencoded',
    },
    body: new URLSearchParams({ grant_type: 'client_credentials', resource: 'urn:kea:gateway' }).toString(),
  });
  const body = (await r.json()) as { access_token?: string; expires_in?: number };
  if (!r.ok || !body.access_token) throw new Error(`token for ${role}: ${r.status} ${JSON.stringify(body)}`);
  tokenCache.set(role, { token: body.access_token, exp: Date.now() + (body.expires_in ?? 300) * 1000 });
  return body.access_token;
}

// ---- HTTP -------------------------------------------------------------------------------

/** A finished exchange. `ms` is wall time to the full body. `error` is set when fetch threw. */
export interface Hit {
  status: number;
  headers: Headers;
  text: string;
  ms: number;
  t0: number;
  t1: number;
  error?: string;
}

/** fetch with a timeout (ms) that never throws: network errors come back as status 0. */
export async function hit(url: string, init: RequestInit & { timeoutMs?: number } = {}): Promise<Hit> {
  const t0 = performance.now();
  try {
    const r = await fetch(url, { redirect: 'manual', ...init, signal: AbortSignal.timeout(init.timeoutMs ?? 10000) });
    const text = await r.text();
    const t1 = performance.now();
    return { status: r.status, headers: r.headers, text, ms: t1 - t0, t0, t1 };
  } catch (e) {
    const t1 = performance.now();
    const err = e as Error & { cause?: { code?: string } };
    return {
      status: 0,
      headers: new Headers(),
      text: '',
      ms: t1 - t0,
      t0,
      t1,
      error: `${err.name}: ${err.message}${err.cause?.code ? ` (${err.cause.code})` : ''}`,
    };
  }
}

/** JSON POST helper. */
export function postJson(url: string, body: unknown, headers: Record<string, string> = {}, timeoutMs?: number): Promise<Hit> {
  return hit(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
    ...(timeoutMs ? { timeoutMs } : {}),
  });
}

/** Runs `fn(i)` for i in [0, n) with `concurrency` workers; results in index order. */
export async function pool<T>(n: number, concurrency: number, fn: (i: number) => Promise<T>): Promise<T[]> {
  const out = new Array<T>(n);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, n) }, async () => {
      for (let i = next++; i < n; i = next++) out[i] = await fn(i);
    }),
  );
  return out;
}

/** Percentile (0–100) of a list of numbers (nearest rank). */
export function pct(xs: number[], p: number): number {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
}

/** Rounds ms for printing. */
export const r1 = (x: number): number => Math.round(x * 10) / 10;

/** Polls until a truthy value; the value and the wait, ms (test/wait.ts). */
export { waitForTimed as until } from '../dev/testing/wait.js';

// ---- kubectl ----------------------------------------------------------------------------

/** Runs kubectl against the stack; resolves stdout, throws with stderr. */
export async function kubectl(s: E2EStack, args: string[], input?: string): Promise<string> {
  if (input === undefined) {
    const { stdout } = await run('kubectl', ['--kubeconfig', s.kubeconfig, ...args], { maxBuffer: 16 << 20, timeout: 30000 });
    return stdout;
  }
  return new Promise((res, rej) => {
    const p = spawn('kubectl', ['--kubeconfig', s.kubeconfig, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.on('data', (d: Buffer) => (out += d));
    p.stderr.on('data', (d: Buffer) => (err += d));
    p.on('close', (code) => (code === 0 ? res(out) : rej(new Error(`kubectl ${args.join(' ')}: exit ${code}: ${err}`))));
    p.stdin.end(input);
  });
}

/** `kubectl apply --server-side -f -` of YAML text, as a user would (kubectl's default field manager, no forcing). */
export function serverSideApply(s: E2EStack, yamlText: string): Promise<string> {
  return kubectl(s, ['apply', '--server-side', '-f', '-'], yamlText);
}

// ---- headless Chromium --------------------------------------------------------------------

const CHROMIUM = '/usr/bin/chromium';

/**
 * Runs Debian's headless Chromium once on `url` with a fresh profile: `--dump-dom` (returns the
 * DOM serialised after `budgetMs` of virtual time, so client-side rendering has run) or
 * `--screenshot=<png>` (returns '').
 * @throws Error when Chromium exits non-zero or takes longer than 60 s.
 */
export async function chromium(
  url: string,
  mode: { dumpDom: true } | { screenshot: string },
  opts: { windowSize?: string; budgetMs?: number } = {},
): Promise<string> {
  const profile = await mkdtemp(join(tmpdir(), 'kea-e2e-chromium-'));
  try {
    const args = [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
      '--hide-scrollbars',
      `--user-data-dir=${profile}`,
      `--window-size=${opts.windowSize ?? '1280,1800'}`,
      `--virtual-time-budget=${opts.budgetMs ?? 10000}`,
      'dumpDom' in mode ? '--dump-dom' : `--screenshot=${mode.screenshot}`,
      url,
    ];
    const { stdout } = await run(CHROMIUM, args, { maxBuffer: 64 << 20, timeout: 60000 });
    return stdout;
  } finally {
    await rm(profile, { recursive: true, force: true });
  }
}

/** Width and height of a PNG file (IHDR), or throws when it is not a PNG. */
export async function pngSize(path: string): Promise<{ width: number; height: number; bytes: number }> {
  const b = await readFile(path);
  if (b.length < 24 || b.readUInt32BE(0) !== 0x89504e47 || b.toString('ascii', 12, 16) !== 'IHDR') throw new Error(`${path} is not a PNG`);
  return { width: b.readUInt32BE(16), height: b.readUInt32BE(20), bytes: b.length };
}

// ---- processes (fault tests; the stack's supervisor restarts what the tests kill) ---------

/** Pids of processes whose argv[0] basename matches `prog` and whose command line contains `needle`. */
export function findPids(prog: RegExp, needle: string): number[] {
  const out: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    let cl = '';
    try {
      cl = readFileSync(`/proc/${d}/cmdline`, 'utf8');
    } catch {
      continue;
    }
    const argv = cl.split('\0');
    if (prog.test((argv[0] ?? '').split('/').pop() ?? '') && cl.includes(needle)) out.push(Number(d));
  }
  return out;
}

/** True while `pid` exists and is not a zombie. */
export function alive(pid: number): boolean {
  try {
    const st = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !/^\d+ \(.*\) Z/.test(st);
  } catch {
    return false;
  }
}

/** Sends `signal` and waits (≤ timeoutMs) until the process is gone; SIGKILL after that. */
export async function killAndWait(pid: number, signal: NodeJS.Signals, timeoutMs = 10000): Promise<number> {
  const t0 = Date.now();
  try {
    process.kill(pid, signal);
  } catch {
    return 0;
  }
  while (alive(pid) && Date.now() - t0 < timeoutMs) await new Promise((r) => setTimeout(r, 20));
  if (alive(pid)) {
    process.kill(pid, 'SIGKILL');
    while (alive(pid)) await new Promise((r) => setTimeout(r, 20));
  }
  return Date.now() - t0;
}

// ---- policy-server replicas -------------------------------------------------------------

/** The stack's policy-server replicas (dev/stack.ts); throws when the stack recorded none. */
export function replicas(s: E2EStack): PolicyReplicaInfo[] {
  const r = s.stack.policyServers ?? [];
  if (!r.length) throw new Error('the stack recorded no policy-server replica');
  return r;
}

/**
 * Which replica answered each request, by request id (`x-request-id`, which the policy server
 * keeps when a client sends a valid one): the replica whose log (its stdout: the audit `request
 * end` records, one JSON line each) holds the id. Waits up to `timeoutMs` for records still in
 * a replica's 20 ms write batch.
 * @returns request id → replica name (`policy-server-<i>`); ids not found are missing.
 */
export async function answeredBy(s: E2EStack, ids: string[], timeoutMs = 5000): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const want = new Set(ids);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    for (const r of replicas(s)) {
      const text = await readFile(r.log, 'utf8').catch(() => '');
      for (const line of text.split('\n')) {
        if (!line.includes('"request end"')) continue;
        const m = /"requestId":"([^"]+)"/.exec(line);
        if (m && want.has(m[1])) out.set(m[1], r.name);
      }
    }
    if (out.size === want.size || Date.now() > deadline) return out;
    await new Promise((res) => setTimeout(res, 100));
  }
}

/** A replica's Prometheus text (its admin port's `/metrics`). */
export async function scrape(r: PolicyReplicaInfo): Promise<string> {
  const h = await hit(`${r.adminUrl}/metrics`, { timeoutMs: 5000 });
  if (h.status !== 200) throw new Error(`${r.name} /metrics: ${h.status} ${h.error ?? h.text.slice(0, 200)}`);
  return h.text;
}

/** Sum of the samples of metric `name` (exact name, any labels) whose line contains every one of `labelParts` (e.g. `result="hit"`). */
export function metricSum(text: string, name: string, ...labelParts: string[]): number {
  return text
    .split('\n')
    .filter((l) => l.startsWith(name) && (l[name.length] === '{' || l[name.length] === ' ') && labelParts.every((p) => l.includes(p)))
    .reduce((n, l) => n + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
}
