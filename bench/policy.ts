/**
 * Data-path benchmark (`npm run bench -- policy`): plain nginx vs the KEA path, same run,
 * same backend, same machine.
 *
 * Topology (every piece a separate process, all on loopback):
 *   wrk ──▶ nginx :plain ──────────────────────────────▶ backend (node:http, ~60 B JSON)
 *   wrk ──▶ nginx :kea ──▶ policy server (dist/, real ──▶ backend
 *                          OIDC authenticator, JWT
 *                          from the dev IdP, ajv)
 * nginx (Debian 1.22, 1 worker, keepalive upstreams) sets `x-kea-operation` on the KEA server
 * like the public HTTPRoute does. Body: a 1 KB JSON POST (24×4 feature matrix) with
 * `Authorization: Bearer <JWT>` on both paths.
 *
 * Scenarios (wrk -t1 -c32, 8 interleaved rounds of 3 s by default, the order rotated each round and
 * each run preceded by 1 s of unmeasured load on the same path; ratios = median of per-round ratios):
 * - `plain`: nginx → backend.
 * - `kea`: nginx → policy (bearer JWT, cached after the first request; JSON Schema
 *   validation; no cache) → backend.
 * - `keaNoValidation`: same operation without a request body schema (no parse, no ajv).
 * - `keaCacheHit`: same with a shared response cache, every request a hit.
 * - `forwarder` / `forwarderParse`: nginx → the reference forwarder (bench/children/forwarder.ts: node:http +
 *   undici, no policy; the second also `JSON.parse`s the body) → backend: the ceilings, on this
 *   machine and runtime, of the KEA/plain and validation on/off ratios.
 * - `irisPlain` / `irisKea`: the same pair (same body, same token, same wrk settings) with the real
 *   FastAPI + scikit-learn example `examples/iris-v1` (uvicorn, 1 process, from `$KEA_CACHE/venv`)
 *   as the backend instead of node:http; fewer rounds (`KEA_BENCH_IRIS_ROUNDS`, default 6). A
 *   second policy server process (same config) forwards to uvicorn.
 * - `ngfPlain` / `ngfKea` (when NGF runs here: root and scripts/setup.sh's NGF build; skip with
 *   `KEA_BENCH_NGF=0`): nginx programmed by NGF 1.6.2 from the routes KEA renders (bench/ngf.ts),
 *   the passthrough route to the backend against public listener → policy server → internal
 *   listener → backend, in the same rounds. Then the full-stack real-model pair on that gateway:
 *   iris-v1 behind a passthrough vs an enforce route, a 3-row body, `KEA_BENCH_NGF_IRIS_ROUNDS`
 *   (default 3) alternating rounds of `KEA_BENCH_NGF_IRIS_SECONDS` (default 8) s.
 * Latency at a fixed 1000 req/s: an open-loop client of our own (wrk2 is not in Debian):
 * requests are scheduled every 1 ms over 16 keep-alive connections, latency is measured from
 * the scheduled send time (no coordinated omission), p50/p99/max for plain and KEA, in
 * `KEA_BENCH_LATENCY_PAIRS` (default 7) interleaved pairs; "p99 added" is the median over the
 * pairs of the difference of p99.
 *
 * Results: the returned object (bench/run.ts writes bench/results/policy.json) and the table
 * in the "Data path" section of docs/performance.md.
 *
 * Profiling aids (no measurement, no results written): `KEA_BENCH_HOLD=<s>` sets the topology up,
 * prints its ports, script and pids as one JSON line and keeps it up for that many seconds (run
 * wrk, perf or strace against it); with `KEA_BENCH_POLICY_NODE_ARGS_B="<node flags>"` (and
 * optionally `KEA_BENCH_POLICY_MAIN_B=<another build's main.js>`) a second policy server with the
 * same configuration and backend starts beside the first, for interleaved A/B runs;
 * `KEA_BENCH_POLICY_STDOUT=<path>` writes the policy servers' stdout (e.g. `--trace-gc`) to
 * `<path>.<label>` instead of /dev/null.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, openSync, readFileSync, rmSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { loadavg, tmpdir, cpus } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as oidc from 'openid-client';
import { KEA_CACHE, REPO_ROOT } from '../dev/controlplane.js';
import { gatewayClient, scriptsClient, startDevIdp } from '../dev/idp.js';
import { POLICY_API_VERSION, policyOperation, type PolicyOperation, type PolicyService } from '../lib/policy/config.js';
import { freePort, stopProcess } from '../lib/process.js';
import { POLICY_NODE_ARGS } from '../policy-server/runtime-flags.js';
import { NGF_VERSION } from '../dev/ngf.js';
import { ngfAvailable, startNgfTopology, type NgfTopology } from './ngf.js';

/** One wrk measurement. */
export interface WrkRun {
  rps: number;
  requests: number;
  non2xx: number;
  errors: number;
  latencyP50Ms?: number;
  latencyP99Ms?: number;
  /** CPU time per request of each process during the run, µs (utime + stime from /proc). */
  cpuUsPerRequest?: Record<string, number>;
  /** Share of the machine's CPU time left idle during the run, percent. */
  idlePercent?: number;
}

/** One open-loop run at 1000 req/s: latency percentiles from the scheduled send time, ms. */
export interface LatencyRun {
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  maxMs: number;
  sent: number;
  failed: number;
}

/** What {@link runPolicyBench} returns (also written to bench/results/policy.json). */
export interface PolicyBenchResult {
  benchmark: 'policy';
  date: string;
  machine: { cpus: number; loadavgBefore: number[]; loadavgAfter: number[]; node: string };
  setup: {
    wrk: string;
    bodyBytes: number;
    durationSeconds: number;
    rounds: number;
    backend: string;
    nginx: string;
    policyNodeArgs: string[];
    policyWorkers: string;
  };
  /** Per scenario; `ngfPlain`/`ngfKea` only when the NGF pair ran (see `ngf`). */
  throughput: Record<MainName | 'irisPlain' | 'irisKea', { medianRps: number; rounds: WrkRun[] }>;
  /**
   * The NGF pair (bench/ngf.ts), when NGF could run here: the KEA path through NGF-programmed
   * nginx (public → policy server → internal → backend) against the passthrough route
   * (public → backend) in the same rounds, and each against the plain-nginx scenarios.
   */
  ngf?: {
    setup: string;
    keaVsPassthrough: number;
    keaVsPlainNginx: number;
    passthroughVsPlainNginx: number;
    keaNgfVsKeaPlainNginx: number;
    /** The full-stack real-model pair: enforce vs passthrough ApiSchema on the same NGF gateway, iris-v1, 3-row body. */
    iris: {
      body: string;
      rounds: number;
      durationSeconds: number;
      passthroughRps: number;
      keaRps: number;
      keaVsPassthrough: number;
      runs: Record<'passthrough' | 'kea', WrkRun[]>;
    };
  };
  /** Setup of the `iris*` pair: backend command and rounds. */
  irisSetup: { backend: string; rounds: number; durationSeconds: number };
  /** Per path: the median of each percentile over its runs (sent/failed: sums); `pairs`: every run. */
  latencyAt1000rps: Record<'plain' | 'kea', LatencyRun> & { p99AddedMs: number; pairs: Array<Record<'plain' | 'kea', LatencyRun>> };
  ratios: { keaVsPlain: number; cacheHitVsUncached: number; validationOnVsOff: number; irisKeaVsPlain: number };
  /**
   * The reference forwarder (no policy; bench/children/forwarder.ts) against plain nginx; the same with
   * `JSON.parse` of the body (the least validation does) against plain nginx; KEA against the
   * forwarder; and parse against no parse. The first two bound `keaVsPlain`, the last bounds
   * `validationOnVsOff`, for a Node.js server on this machine. `cacheHitVsPlain`: a cache hit
   * does at least what the trivial backend does (read the request, answer ~60 bytes) in a
   * Node.js process, so it stays under plain nginx, and `cacheHitVsUncached` ≥ 2 then needs
   * `keaVsPlain` ≤ 0.5 (docs/adr/0007).
   */
  reference: { forwarderVsPlain: number; forwarderParseVsPlain: number; keaVsForwarder: number; parseVsNoParse: number; cacheHitVsPlain: number };
  targets: { keaVsPlain: number; cacheHitVsUncached: number; validationOnVsOff: number; p99AddedMs: number; irisKeaVsPlain: number };
  met: { keaVsPlain: boolean; cacheHitVsUncached: boolean; validationOnVsOff: boolean; p99AddedMs: boolean; irisKeaVsPlain: boolean };
}

/** The scenarios of the main rotation (`ngfPlain`/`ngfKea` only when NGF runs). */
type MainName = 'plain' | 'kea' | 'keaNoValidation' | 'keaCacheHit' | 'forwarder' | 'forwarderParse' | 'ngfPlain' | 'ngfKea';

export const NODE = join(REPO_ROOT, 'node_modules/.bin/node');
const DURATION = Number(process.env.KEA_BENCH_SECONDS ?? 3);
const ROUNDS = Number(process.env.KEA_BENCH_ROUNDS ?? 8);
const IRIS_ROUNDS = Number(process.env.KEA_BENCH_IRIS_ROUNDS ?? 6);
/** Rounds and round length of the NGF full-stack iris pair (issue 11: 8 s rounds, median of 3). */
const NGF_IRIS_ROUNDS = Number(process.env.KEA_BENCH_NGF_IRIS_ROUNDS ?? 3);
const NGF_IRIS_SECONDS = Number(process.env.KEA_BENCH_NGF_IRIS_SECONDS ?? 8);
/** Interleaved plain/KEA pairs of the fixed-rate latency runs (5 s each). */
const LATENCY_PAIRS = Number(process.env.KEA_BENCH_LATENCY_PAIRS ?? 7);
/** Length of one fixed-rate latency run, s. */
const LATENCY_SECONDS = Math.max(5, Math.min(DURATION, 6));
/**
 * Policy server processes (`--workers`). Default 1: on a 2-CPU machine that also runs wrk,
 * nginx and the backend, a second worker only adds contention (docs/adr/0006).
 */
const WORKERS = process.env.KEA_BENCH_POLICY_WORKERS ?? '1';
export const VENV = join(KEA_CACHE, 'venv');

/**
 * Waits for a policy server's readiness: `/readyz` on its admin port, or on its data port for
 * a build from before the admin port (KEA_BENCH_POLICY_MAIN_B may be one).
 */
export function waitReady(port: number, adminPort: number): Promise<void> {
  return Promise.any([waitHttp(`http://127.0.0.1:${adminPort}/readyz`, 30_000, 200), waitHttp(`http://127.0.0.1:${port}/readyz`, 30_000, 200)]);
}

/** Polls `url` until it answers (with `okStatus`, when given), at most `timeoutMs` ms. @throws on timeout. */
export async function waitHttp(url: string, timeoutMs = 20_000, okStatus?: number): Promise<void> {
  const t0 = Date.now();
  for (;;) {
    try {
      const r = await fetch(url);
      await r.arrayBuffer();
      if (okStatus === undefined || r.status === okStatus) return;
    } catch {
      /* not yet */
    }
    if (Date.now() - t0 > timeoutMs) throw new Error(`timeout waiting for ${url}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * The child programs the bench spawns, compiled with the rest (bench/children/*.ts → dist/): the
 * trivial backend, the reference forwarder (no policy: the ceiling of a Node.js server in the
 * policy server's position, see bench/children/forwarder.ts) and the open-loop fixed-rate client.
 */
export const CHILDREN = {
  backend: fileURLToPath(new URL('./children/backend.js', import.meta.url)),
  forwarder: fileURLToPath(new URL('./children/forwarder.js', import.meta.url)),
  rate: fileURLToPath(new URL('./children/rate.js', import.meta.url)),
};

/** A POST operation of the bench service, forwarded to `/predict`. */
export function op(id: string, path: string, extra: Partial<PolicyOperation> = {}): PolicyOperation {
  return policyOperation({ operationId: id, method: 'POST', path, upstreamPath: '/predict', ...extra });
}

export const SCHEMA = {
  type: 'object',
  required: ['features'],
  additionalProperties: false,
  properties: {
    model: { type: 'string', maxLength: 64 },
    options: { type: 'object', additionalProperties: false, properties: { explain: { type: 'boolean' }, tag: { type: 'string', maxLength: 32 } } },
    features: {
      type: 'array',
      minItems: 1,
      maxItems: 1000,
      items: { type: 'array', minItems: 4, maxItems: 4, items: { type: 'number', minimum: 0, maximum: 100 } },
    },
  },
};

/** The bench's ApiSchema as policy.json: `predict` (validated), `predict_novalidate`, `predict_cached`. */
export function benchService(): PolicyService {
  const body = { required: true, contentType: 'application/json', schema: SCHEMA };
  return {
    apiVersion: POLICY_API_VERSION,
    id: 'bench/echo',
    namespace: 'bench',
    name: 'echo',
    title: 'Bench echo',
    version: '1.0.0',
    basePath: '/echo',
    configVersion: 'bench-1',
    mode: 'enforce',
    upstream: { host: 'echo.bench.kea.internal' },
    traffic: [{ revision: 'v1', weight: 100 }],
    authorization: {},
    defaultOperationId: 'predict',
    operations: [
      op('predict', '/echo/predict', { requestBody: body }),
      op('predict_novalidate', '/echo/novalidate'),
      op('predict_cached', '/echo/cached', { requestBody: body, cache: { ttlSeconds: 3600, scope: 'shared' } }),
    ],
  };
}

/** The iris-v1 ApiSchema of the NGF full-stack pair (enforce mode, the same body schema). */
function irisService(): PolicyService {
  return {
    ...benchService(),
    apiVersion: POLICY_API_VERSION,
    id: 'bench/iris',
    name: 'iris',
    title: 'Bench iris-v1',
    basePath: '/iris',
    configVersion: 'bench-iris-1',
    upstream: { host: 'iris.bench.kea.internal' },
    defaultOperationId: 'predict',
    operations: [op('predict', '/iris/predict', { requestBody: { required: true, contentType: 'application/json', schema: SCHEMA } })],
  };
}

/** The bench's request body: 28 rows of 4 iris features (~1 KB of JSON). */
export function benchBody(): string {
  const features: number[][] = [];
  for (let i = 0; i < 28; i++) features.push([5.1 + i / 100, 3.5, 1.4, 0.2 + i / 1000]);
  return JSON.stringify({ model: 'iris', options: { explain: false, tag: 'bench' }, features });
}

function parseWrk(out: string): WrkRun {
  const num = (re: RegExp): number => Number(re.exec(out)?.[1] ?? NaN);
  const lat = (label: string): number | undefined => {
    const m = new RegExp(`\\s${label}%\\s+([\\d.]+)(us|ms|s)`).exec(out);
    if (!m) return undefined;
    const v = Number(m[1]);
    return m[2] === 'us' ? v / 1000 : m[2] === 's' ? v * 1000 : v;
  };
  const errs = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  return {
    rps: num(/Requests\/sec:\s+([\d.]+)/),
    requests: num(/(\d+) requests in/),
    non2xx: Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0),
    errors: errs ? errs.slice(1).reduce((a, b) => a + Number(b), 0) : 0,
    latencyP50Ms: lat('50'),
    latencyP99Ms: lat('99'),
  };
}

/** utime + stime of a process, clock ticks (proc(5): fields 14 and 15 of /proc/<pid>/stat). */
function cpuTicks(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(f[11]) + Number(f[12]);
  } catch {
    return NaN;
  }
}

/** Busy and total ticks of the whole machine (proc(5): first line of /proc/stat). */
function machineTicks(): { idle: number; total: number } {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1, 9).map(Number);
  return { idle: f[3] + f[4], total: f.reduce((a, b) => a + b, 0) };
}

/** Child pids of a process (e.g. the nginx workers of the master). */
export function childPids(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

const TICK_US = 1e6 / 100; // USER_HZ is 100 on Linux

/**
 * Runs `measure` while accounting the CPU time of the named processes; adds µs of CPU per
 * request and the machine's idle share to the run.
 */
export async function withCpu(pids: Record<string, number[]>, measure: () => Promise<WrkRun>): Promise<WrkRun> {
  const before = Object.fromEntries(Object.entries(pids).map(([k, ps]) => [k, ps.reduce((a, p) => a + cpuTicks(p), 0)]));
  const m0 = machineTicks();
  const r = await measure();
  const m1 = machineTicks();
  r.cpuUsPerRequest = Object.fromEntries(
    Object.entries(pids).map(([k, ps]) => [
      k,
      Math.round(((ps.reduce((a, p) => a + cpuTicks(p), 0) - before[k]) * TICK_US * 10) / Math.max(1, r.requests)) / 10,
    ]),
  );
  r.idlePercent = Math.round((1000 * (m1.idle - m0.idle)) / Math.max(1, m1.total - m0.total)) / 10;
  return r;
}

/** Runs a command asynchronously (the bench process keeps draining the policy server's log pipe). */
function run(cmd: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const c = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    c.stdout.on('data', (d: Buffer) => (out += d.toString()));
    c.stderr.on('data', (d: Buffer) => (err += d.toString()));
    c.on('error', reject);
    c.on('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`${cmd} exited ${code}: ${err}`))));
  });
}

/** One `wrk -t1 -c32` run of `seconds` s with a Lua `script`, parsed. */
export async function wrk(url: string, script: string, seconds: number): Promise<WrkRun> {
  return parseWrk(await run('wrk', ['-t1', '-c32', `-d${seconds}s`, '--latency', '-s', script, url]));
}

/**
 * Unmeasured load right before each measured run, s. A server that sat idle during the previous
 * scenario (e.g. the policy server during `plain`) ran its first seconds ~10% slower than it runs
 * after load (measured: KEA right after plain 17.5k req/s, right after KEA 19.5k); without this,
 * whichever scenario follows an idle period is penalised.
 */
export const PREWARM_SECONDS = 1;

/** The scenarios of round `round` in rotated order, so that no scenario always runs first or after the same one. */
export function roundOrder<T>(names: T[], round: number): T[] {
  const k = round % names.length;
  return [...names.slice(k), ...names.slice(0, k)];
}

/** The median of `xs` (the mean of the two middle values for an even count). */
export const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

/** Replaces (or appends) the "Data path" section of docs/performance.md. */
async function writeDocs(r: PolicyBenchResult): Promise<void> {
  const file = join(REPO_ROOT, 'docs', 'performance.md');
  const pct = (x: number): string => `${(x * 100).toFixed(0)}%`;
  const t = r.throughput;
  const section = `<!-- data-path:begin (generated by bench/policy.ts; do not edit by hand) -->
## Data path

Measured ${r.date.slice(0, 16).replace('T', ' ')} UTC by \`npm run bench -- policy\` on ${r.machine.cpus} shared vCPUs
(load average before/after: ${r.machine.loadavgBefore.map((x) => x.toFixed(1)).join(' ')} / ${r.machine.loadavgAfter.map((x) => x.toFixed(1)).join(' ')}).
wrk -t1 -c32, ${r.setup.durationSeconds} s × ${r.setup.rounds} interleaved rounds (median; the order rotates every round, and each
measured run follows ${PREWARM_SECONDS} s of unmeasured load on the same path), ${r.setup.bodyBytes}-byte JSON POST with a
bearer JWT, nginx 1.22 (1 worker) in front, a node:http backend answering ~60 bytes. Only the ratios are
meaningful: every scenario ran in the same run on the same, noisy machine; each ratio is the median of
per-round ratios (the scenarios of one round ran back to back).

| path | req/s (median) | ratio | target | met |
|---|---|---|---|---|
| nginx → backend (plain) | ${t.plain.medianRps.toFixed(0)} | 100% | | |
| nginx → KEA (JWT + validation) → backend | ${t.kea.medianRps.toFixed(0)} | ${pct(r.ratios.keaVsPlain)} of plain | ≥ 50% | ${r.met.keaVsPlain ? 'yes' : '**no**'} |
| same, validation off | ${t.keaNoValidation.medianRps.toFixed(0)} | on = ${pct(r.ratios.validationOnVsOff)} of off | ≥ 90% | ${r.met.validationOnVsOff ? 'yes' : '**no**'} |
| same, cache hit | ${t.keaCacheHit.medianRps.toFixed(0)} | ${r.ratios.cacheHitVsUncached.toFixed(2)}× uncached; ${pct(r.reference.cacheHitVsPlain)} of plain | ≥ 2× | ${r.met.cacheHitVsUncached ? 'yes' : '**no**'} |
| nginx → reference forwarder (no policy) → backend | ${t.forwarder.medianRps.toFixed(0)} | ${pct(r.reference.forwarderVsPlain)} of plain; KEA = ${pct(r.reference.keaVsForwarder)} of it | | |
| same, forwarder also runs \`JSON.parse\` on the body | ${t.forwarderParse.medianRps.toFixed(0)} | ${pct(r.reference.forwarderParseVsPlain)} of plain; ${pct(r.reference.parseVsNoParse)} of without | | |
| nginx → iris-v1 (FastAPI + scikit-learn, plain) | ${t.irisPlain.medianRps.toFixed(0)} | 100% | | |
| nginx → KEA (JWT + validation) → iris-v1 | ${t.irisKea.medianRps.toFixed(0)} | ${pct(r.ratios.irisKeaVsPlain)} of plain | ≥ 90% | ${r.met.irisKeaVsPlain ? 'yes' : '**no**'} |
${
  r.ngf && t.ngfPlain && t.ngfKea
    ? `| NGF nginx → backend (passthrough ApiSchema route) | ${t.ngfPlain.medianRps.toFixed(0)} | 100%; ${pct(r.ngf.passthroughVsPlainNginx)} of plain nginx | | |
| NGF nginx → KEA → NGF internal listener → backend | ${t.ngfKea.medianRps.toFixed(0)} | ${pct(r.ngf.keaVsPassthrough)} of passthrough; ${pct(r.ngf.keaVsPlainNginx)} of plain nginx; ${pct(r.ngf.keaNgfVsKeaPlainNginx)} of KEA behind plain nginx | | |
| NGF nginx → iris-v1 (passthrough ApiSchema, 3-row body) | ${r.ngf.iris.passthroughRps.toFixed(0)} | 100% | | |
| NGF nginx → KEA → NGF internal listener → iris-v1 (enforce ApiSchema, 3-row body) | ${r.ngf.iris.keaRps.toFixed(0)} | ${pct(r.ngf.iris.keaVsPassthrough)} of passthrough | ≥ 90% | ${r.ngf.iris.keaVsPassthrough >= 0.9 ? 'yes' : '**no**'} |
`
    : '| NGF rows | not run (no NGF binary here, or not root) | | | |\n'
}
The reference forwarder is the least a Node.js server in the policy server's place can do: the
same runtime, node flags, node:http server and undici Pool, and nothing else (no authentication,
validation, audit, metrics, request id or deadlines). Its ratio to plain nginx bounds what any
Node.js policy server reaches here; with the body parsed (which validation cannot skip) it bounds
the KEA path; its parse/no-parse ratio bounds validation on/off. A cache hit does at least what the
trivial backend does, in a Node.js process, so it stays under plain nginx: "cache hit ≥ 2× uncached"
then needs the uncached KEA path at ≤ 50% of plain, the opposite of the first target. See
docs/adr/0007.

${
  r.ngf
    ? `The NGF pair ran in the same rounds: ${r.ngf.setup} (bench/ngf.ts). The KEA path crosses
nginx twice (public listener → policy server → internal listener, Host and token matched → backend),
the passthrough route once.

`
    : ''
}The iris-v1 pair: \`examples/iris-v1\` served by ${r.irisSetup.backend}, the same body, token and
wrk settings, ${r.irisSetup.durationSeconds} s × ${r.irisSetup.rounds} interleaved rounds (median of per-round ratios); a second policy
server process with the same configuration forwards to it. Every request runs a real \`predict\` on all
rows of the body (pydantic ignores its extra \`model\`/\`options\` fields); the bench checks one class per row.

Latency at a fixed 1000 req/s (open-loop client, 16 connections, a first second of warm-up not recorded,
latency from the scheduled send time;
${r.latencyAt1000rps.pairs.length} interleaved pairs of ${LATENCY_SECONDS} s runs, each cell the median over a path's runs):

| path | p50 ms | p90 ms | p99 ms | max ms |
|---|---|---|---|---|
| plain | ${r.latencyAt1000rps.plain.p50Ms.toFixed(2)} | ${r.latencyAt1000rps.plain.p90Ms.toFixed(2)} | ${r.latencyAt1000rps.plain.p99Ms.toFixed(2)} | ${r.latencyAt1000rps.plain.maxMs.toFixed(2)} |
| KEA | ${r.latencyAt1000rps.kea.p50Ms.toFixed(2)} | ${r.latencyAt1000rps.kea.p90Ms.toFixed(2)} | ${r.latencyAt1000rps.kea.p99Ms.toFixed(2)} | ${r.latencyAt1000rps.kea.maxMs.toFixed(2)} |

p99 added by KEA (median over the pairs of KEA p99 − plain p99; per pair:
${r.latencyAt1000rps.pairs.map((x) => (x.kea.p99Ms - x.plain.p99Ms).toFixed(2)).join(', ')} ms): **${r.latencyAt1000rps.p99AddedMs.toFixed(2)} ms** (target ≤ 1.5 ms: ${r.met.p99AddedMs ? 'met' : '**not met**'}).
Raw numbers: \`bench/results/policy.json\`.
<!-- data-path:end -->`;
  let doc = existsSync(file)
    ? await readFile(file, 'utf8')
    : '# Performance\n\nBenchmarks run with `npm run bench`; each compares a KEA path with a baseline in the same run.\n';
  const re = /<!-- data-path:begin[\s\S]*?<!-- data-path:end -->/;
  doc = re.test(doc) ? doc.replace(re, section) : `${doc.trimEnd()}\n\n${section}\n`;
  await mkdir(join(REPO_ROOT, 'docs'), { recursive: true });
  await writeFile(file, doc);
}

/**
 * Runs the data-path benchmark. Needs `wrk` and `nginx` (scripts/setup.sh installs them) and
 * a build (`dist/policy-server/main.js`) and the examples venv (`$KEA_CACHE/venv`, uvicorn). Takes about
 * (6 scenarios × rounds + 2 × iris rounds) × (duration + 1 s) + latency pairs × 2 × 6 s + 1 min.
 * @returns the measurements, ratios and targets.
 */
export async function runPolicyBench(): Promise<PolicyBenchResult> {
  for (const bin of ['wrk', 'nginx']) {
    if (spawnSync('which', [bin]).status !== 0) throw new Error(`${bin} not found: run scripts/setup.sh`);
  }
  const mainJs = join(REPO_ROOT, 'dist/policy-server/main.js');
  if (!existsSync(mainJs)) throw new Error('dist/policy-server/main.js missing: run npm run build');
  const dir = await mkdtemp(join(tmpdir(), 'kea-bench-policy-'));
  const children: ChildProcess[] = [];
  const loadBefore = loadavg();
  const stopAll = async (): Promise<void> => {
    for (const c of children.reverse()) await stopProcess(c, 5000);
  };
  // Ctrl-C or a kill of the bench (e.g. ending a KEA_BENCH_HOLD early) takes its children along:
  // nginx, the policy servers, the forwarders, the backend and uvicorn would otherwise outlive it.
  let stopNgf: (() => Promise<void>) | undefined;
  const onSignal = (sig: NodeJS.Signals): void => {
    for (const c of children) c.kill('SIGTERM');
    // NGF, nginx, the bridge and the control plane of the NGF pair (bench/ngf.ts) too.
    void (stopNgf?.() ?? Promise.resolve()).finally(() => {
      rmSync(dir, { recursive: true, force: true });
      process.exit(sig === 'SIGINT' ? 130 : 143);
    });
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  let idp: Awaited<ReturnType<typeof startDevIdp>> | undefined;
  try {
    const [backendPort, policyPort, plainPort, keaPort] = [await freePort(), await freePort(), await freePort(), await freePort()];
    const [irisPort, irisPolicyPort, irisPlainPort, irisKeaPort] = [await freePort(), await freePort(), await freePort(), await freePort()];
    const [fwdPort, fwdParsePort, fwdFrontPort, fwdParseFrontPort] = [await freePort(), await freePort(), await freePort(), await freePort()];
    const adminPorts: Record<string, number> = { node: await freePort(), iris: await freePort(), b: await freePort(), ngf: await freePort() };
    const gatewayUrl = `http://127.0.0.1:${keaPort}`;
    const gwSecret = randomBytes(16).toString('hex');
    idp = await startDevIdp({
      clients: [
        gatewayClient(gatewayUrl, gwSecret),
        scriptsClient('bench-script', 'bench-script-secret', ['student']),
        scriptsClient('bench-admin', 'bench-admin-secret', ['admin']),
      ],
      ttl: { accessToken: 3600 },
    });
    const tokenFor = async (id: string, secret: string): Promise<string> => {
      const client = await oidc.discovery(new URL(idp!.issuer), id, secret, undefined, { execute: [oidc.allowInsecureRequests] });
      return (await oidc.clientCredentialsGrant(client, { scope: 'api:read', resource: idp!.audience })).access_token;
    };
    const token = await tokenFor('bench-script', 'bench-script-secret');
    const adminToken = await tokenFor('bench-admin', 'bench-admin-secret');

    const body = benchBody();
    await writeFile(join(dir, 'body.json'), body);
    for (const child of Object.values(CHILDREN)) if (!existsSync(child)) throw new Error(`${child} missing: run npm run build`);
    const script = join(dir, 'post.lua');
    await writeFile(
      script,
      `wrk.method = "POST"\nwrk.body = io.open("${join(dir, 'body.json')}"):read("*a")\nwrk.headers["Content-Type"] = "application/json"\nwrk.headers["Authorization"] = "Bearer ${token}"\n`,
    );
    const cfg = join(dir, 'cfg', 'bench-echo');
    await mkdir(cfg, { recursive: true });
    await writeFile(join(cfg, 'policy.json'), JSON.stringify(benchService()));

    const backend = spawn(NODE, [CHILDREN.backend, String(backendPort)], { stdio: 'ignore' });
    children.push(backend);
    // The audit stream (info level, one JSON line per request) goes to /dev/null: the policy
    // server still pays for building, serialising and writing every record, but neither a
    // disk's write-back stalls nor a log shipper's CPU are charged to the KEA path. That the
    // records were produced is checked through /logs (same call that writes them).
    const devNull = openSync('/dev/null', 'w');
    // Same V8 tuning as Dockerfile.policy should use (NODE_OPTIONS): a larger young generation
    // means fewer scavenges on the per-request allocation churn.
    const nodeArgs = process.env.KEA_BENCH_POLICY_NODE_ARGS?.split(' ').filter(Boolean) ?? POLICY_NODE_ARGS;
    const startPolicy = (
      port: number,
      upstreamUrl: string,
      label: string,
      args = nodeArgs,
      main = mainJs,
      host = '127.0.0.1',
      cfgDir = join(dir, 'cfg'),
    ): ChildProcess => {
      const p = spawn(
        NODE,
        [
          ...args,
          main,
          '--workers',
          WORKERS,
          '--host',
          host,
          '--port',
          String(port),
          '--upstream-url',
          upstreamUrl,
          '--internal-token',
          'bench-token',
          '--config-dir',
          cfgDir,
          '--state-dir',
          join(dir, `state-${label}`),
        ],
        {
          // KEA_BENCH_POLICY_STDOUT: a file for the policy servers' stdout (profiling, e.g. --trace-gc).
          stdio: ['ignore', process.env.KEA_BENCH_POLICY_STDOUT ? openSync(`${process.env.KEA_BENCH_POLICY_STDOUT}.${label}`, 'w') : devNull, 'pipe'],
          env: {
            ...process.env,
            KEA_LOG_LEVEL: 'info',
            KEA_OIDC_ISSUER: idp!.issuer,
            KEA_OIDC_CLIENT_ID: 'kea-gateway',
            KEA_OIDC_CLIENT_SECRET: gwSecret,
            KEA_OIDC_AUDIENCE: idp!.audience,
            KEA_GATEWAY_URL: gatewayUrl,
            KEA_SESSION_SECRETS: randomBytes(24).toString('hex'),
            KEA_COOKIE_SECURE: 'false',
            // Probes and metrics are on the admin port (/readyz: the configuration is loaded).
            KEA_ADMIN_PORT: String(adminPorts[label]),
            KEA_ADMIN_HOST: '127.0.0.1',
          },
        },
      );
      children.push(p);
      let stderr = '';
      p.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
      p.on('exit', (code) => {
        if (code) process.stderr.write(`[bench policy] policy server (${label}) exited ${code}: ${stderr}\n`);
      });
      return p;
    };
    const policy = startPolicy(policyPort, `http://127.0.0.1:${backendPort}`, 'node');
    // The reference forwarders (same node flags as the policy server), in front of the same backend.
    const forwarders = [
      spawn(NODE, [...nodeArgs, CHILDREN.forwarder, String(fwdPort), `http://127.0.0.1:${backendPort}`, 'forward'], { stdio: 'ignore' }),
      spawn(NODE, [...nodeArgs, CHILDREN.forwarder, String(fwdParsePort), `http://127.0.0.1:${backendPort}`, 'parse'], { stdio: 'ignore' }),
    ];
    children.push(...forwarders);
    // The real example model: FastAPI + scikit-learn under uvicorn (1 process), and a second
    // policy server (same configuration) whose upstream is that uvicorn.
    const uvicornBin = join(VENV, 'bin', 'uvicorn');
    if (!existsSync(uvicornBin)) throw new Error(`${uvicornBin} missing: run scripts/setup.sh (Python venv for examples/)`);
    const iris = spawn(uvicornBin, ['app:app', '--host', '127.0.0.1', '--port', String(irisPort)], {
      cwd: join(REPO_ROOT, 'examples', 'iris-v1'),
      stdio: ['ignore', devNull, devNull],
    });
    children.push(iris);
    const irisPolicy = startPolicy(irisPolicyPort, `http://127.0.0.1:${irisPort}`, 'iris');
    await mkdir(join(dir, 'nginx', 'logs'), { recursive: true });
    const nginxConf = join(dir, 'nginx', 'nginx.conf');
    await writeFile(
      nginxConf,
      `worker_processes 1;
daemon off;
pid ${join(dir, 'nginx', 'nginx.pid')};
error_log ${join(dir, 'nginx', 'logs', 'error.log')} warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${join(dir, 'nginx')};
  proxy_temp_path ${join(dir, 'nginx')};
  fastcgi_temp_path ${join(dir, 'nginx')};
  uwsgi_temp_path ${join(dir, 'nginx')};
  scgi_temp_path ${join(dir, 'nginx')};
  upstream backend { server 127.0.0.1:${backendPort}; keepalive 64; }
  upstream policy { server 127.0.0.1:${policyPort}; keepalive 64; }
  upstream iris { server 127.0.0.1:${irisPort}; keepalive 64; }
  upstream irispolicy { server 127.0.0.1:${irisPolicyPort}; keepalive 64; }
  upstream fwd { server 127.0.0.1:${fwdPort}; keepalive 64; }
  upstream fwdparse { server 127.0.0.1:${fwdParsePort}; keepalive 64; }
  map $uri $kea_operation {
    /echo/predict bench/echo/predict;
    /echo/novalidate bench/echo/predict_novalidate;
    /echo/cached bench/echo/predict_cached;
    default "";
  }
  server {
    listen 127.0.0.1:${plainPort};
    location / { proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
  server {
    listen 127.0.0.1:${keaPort};
    location / {
      proxy_pass http://policy; proxy_http_version 1.1; proxy_set_header Connection "";
      proxy_set_header x-kea-operation $kea_operation;
    }
  }
  server {
    listen 127.0.0.1:${irisKeaPort};
    location / {
      proxy_pass http://irispolicy; proxy_http_version 1.1; proxy_set_header Connection "";
      proxy_set_header x-kea-operation $kea_operation;
    }
  }
  server {
    listen 127.0.0.1:${fwdFrontPort};
    location / { proxy_pass http://fwd; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
  server {
    listen 127.0.0.1:${fwdParseFrontPort};
    location / { proxy_pass http://fwdparse; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
  server {
    listen 127.0.0.1:${irisPlainPort};
    location / { proxy_pass http://iris; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
`,
    );
    const nginx = spawn('nginx', ['-c', nginxConf, '-p', join(dir, 'nginx')], { stdio: 'ignore' });
    children.push(nginx);
    await waitReady(policyPort, adminPorts.node);
    await waitHttp(`http://127.0.0.1:${plainPort}/`, 10_000);
    await waitReady(irisPolicyPort, adminPorts.iris);
    await waitHttp(`http://127.0.0.1:${irisPort}/healthz`, 60_000, 200);
    // Sanity: each path answers 200 through nginx with the token.
    for (const [port, path] of [
      [plainPort, '/echo/predict'],
      [keaPort, '/echo/predict'],
      [keaPort, '/echo/novalidate'],
      [keaPort, '/echo/cached'],
      [fwdFrontPort, '/echo/predict'],
      [fwdParseFrontPort, '/echo/predict'],
      [irisPlainPort, '/predict'],
      [irisKeaPort, '/echo/predict'],
    ] as const) {
      const r = await fetch(`http://127.0.0.1:${port}${path}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
        body,
      });
      const text = await r.text();
      if (r.status !== 200) throw new Error(`sanity check ${path} on ${port}: ${r.status} ${text}`);
      // Both iris paths really ran the model: one predicted class per input row.
      if (port === irisPlainPort || port === irisKeaPort) {
        const classes = (JSON.parse(text) as { classes?: unknown[] }).classes;
        const rows = (JSON.parse(body) as { features: unknown[] }).features.length;
        if (!Array.isArray(classes) || classes.length !== rows) throw new Error(`iris-v1 sanity check on ${port}: expected ${rows} classes, got ${text}`);
      }
    }
    // A bad body is rejected on the validated path (the validator is really on).
    const bad = await fetch(`http://127.0.0.1:${keaPort}/echo/predict`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body: '{"features":"x"}',
    });
    if (bad.status !== 400) throw new Error(`validation is not active: got ${bad.status}`);

    // The NGF pair (bench/ngf.ts): nginx programmed by NGF from KEA's routes, the KEA path
    // crossing it twice (public listener → policy server → internal listener → backend).
    let ngf: NgfTopology | undefined;
    let ngfPids: { nginx: number[]; policy: number[]; backend: number[]; model: number[] } | undefined;
    // The full-stack real-model pair through NGF: a 3-row body (as a new user sends), iris-v1.
    const irisBody = JSON.stringify({
      features: [
        [5.1, 3.5, 1.4, 0.2],
        [6.2, 2.9, 4.3, 1.3],
        [7.7, 3.0, 6.1, 2.3],
      ],
    });
    const irisScript = join(dir, 'iris3.lua');
    await writeFile(join(dir, 'iris3.json'), irisBody);
    await writeFile(
      irisScript,
      `wrk.method = "POST"\nwrk.body = io.open("${join(dir, 'iris3.json')}"):read("*a")\nwrk.headers["Content-Type"] = "application/json"\nwrk.headers["Authorization"] = "Bearer ${token}"\n`,
    );
    if (process.env.KEA_BENCH_NGF !== '0' && ngfAvailable()) {
      const [ngfBackendPort, ngfPolicyPort, ngfIrisPort] = [await freePort(), await freePort(), await freePort()];
      ngf = await startNgfTopology({
        dir: join(dir, 'ngf'),
        internalToken: 'bench-token',
        backends: [
          {
            name: 'bench-echo',
            port: ngfBackendPort,
            internalHost: benchService().upstream.host,
            operation: 'bench/echo/predict',
            keaPath: '/echo/predict',
            passthroughPrefix: '/plain',
            model: true,
          },
          {
            name: 'bench-iris',
            port: ngfIrisPort,
            internalHost: irisService().upstream.host,
            operation: 'bench/iris/predict',
            keaPath: '/iris/predict',
            passthroughPrefix: '/irisplain',
            model: true,
          },
        ],
        policyPort: ngfPolicyPort,
        keepAlive: process.env.KEA_BENCH_NGF_KEEPALIVE !== '0',
      });
      const ngfTopology = ngf;
      stopNgf = () => ngfTopology.stop();
      const ngfBackend = spawn(NODE, [CHILDREN.backend, String(ngfBackendPort), ngf.hostAddress], { stdio: 'ignore' });
      children.push(ngfBackend);
      const ngfIris = spawn(uvicornBin, ['app:app', '--host', ngf.hostAddress, '--port', String(ngfIrisPort)], {
        cwd: join(REPO_ROOT, 'examples', 'iris-v1'),
        stdio: ['ignore', devNull, devNull],
      });
      children.push(ngfIris);
      // One policy server for both services (as in a cluster): the echo and iris ApiSchemas.
      const ngfCfg = join(dir, 'cfg-ngf');
      await mkdir(join(ngfCfg, 'bench-echo'), { recursive: true });
      await mkdir(join(ngfCfg, 'bench-iris'), { recursive: true });
      await writeFile(join(ngfCfg, 'bench-echo', 'policy.json'), JSON.stringify(benchService()));
      await writeFile(join(ngfCfg, 'bench-iris', 'policy.json'), JSON.stringify(irisService()));
      const ngfPolicy = startPolicy(ngfPolicyPort, ngf.internalUrl, 'ngf', nodeArgs, mainJs, ngf.hostAddress, ngfCfg);
      await waitReady(ngfPolicyPort, adminPorts.ngf);
      await waitHttp(`http://${ngf.hostAddress}:${ngfIrisPort}/healthz`, 60_000, 200);
      await ngf.program(async (url) => {
        const r = await fetch(url, {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
          body: url.includes('/iris') ? irisBody : body,
        });
        await r.arrayBuffer();
        return r.status === 200;
      });
      ngfPids = { nginx: childPids(ngf.nginxPid), policy: [ngfPolicy.pid!, ...childPids(ngfPolicy.pid!)], backend: [ngfBackend.pid!], model: [ngfIris.pid!] };
    } else {
      process.stderr.write('[bench policy] NGF rows skipped (KEA_BENCH_NGF=0, no NGF binary, or not root)\n');
    }

    if (process.env.KEA_BENCH_HOLD) {
      // Profiling aid: keep the whole topology up for KEA_BENCH_HOLD seconds, print where it is.
      // KEA_BENCH_POLICY_NODE_ARGS_B: a second policy server (same config, same backend, other node flags) for A/B runs.
      const argsB = process.env.KEA_BENCH_POLICY_NODE_ARGS_B?.split(' ').filter(Boolean);
      const portB = argsB ? await freePort() : undefined;
      const policyB = argsB ? startPolicy(portB!, `http://127.0.0.1:${backendPort}`, 'b', argsB, process.env.KEA_BENCH_POLICY_MAIN_B) : undefined;
      if (portB) await waitReady(portB, adminPorts.b);
      process.stdout.write(
        JSON.stringify({
          plainPort,
          keaPort,
          policyPort,
          backendPort,
          portB,
          script,
          pids: { policy: policy.pid, policyB: policyB?.pid, nginx: childPids(nginx.pid!), backend: backend.pid },
        }) + '\n',
      );
      await new Promise((r) => setTimeout(r, Number(process.env.KEA_BENCH_HOLD) * 1000));
      throw new Error('KEA_BENCH_HOLD: held, no measurement');
    }
    const scenarios = {
      plain: `http://127.0.0.1:${plainPort}/echo/predict`,
      kea: `http://127.0.0.1:${keaPort}/echo/predict`,
      keaNoValidation: `http://127.0.0.1:${keaPort}/echo/novalidate`,
      keaCacheHit: `http://127.0.0.1:${keaPort}/echo/cached`,
      forwarder: `http://127.0.0.1:${fwdFrontPort}/echo/predict`,
      forwarderParse: `http://127.0.0.1:${fwdParseFrontPort}/echo/predict`,
      ...(ngf ? { ngfPlain: `${ngf.publicUrl}/plain/predict`, ngfKea: `${ngf.publicUrl}/echo/predict` } : {}),
    } as Record<MainName, string>;
    type Name = MainName;
    const names = Object.keys(scenarios) as Name[];
    const runs = Object.fromEntries(names.map((n) => [n, [] as WrkRun[]])) as Record<Name, WrkRun[]>;
    for (const url of Object.values(scenarios)) await wrk(url, script, 2); // warm-up (JIT, pools, token cache)
    const nginxWorkers = childPids(nginx.pid!);
    // The policy server's own process plus its workers (--workers > 1).
    const cpuOf = {
      nginx: nginxWorkers,
      policy: [policy.pid!, ...childPids(policy.pid!)],
      backend: [backend.pid!],
      forwarder: forwarders.map((f) => f.pid!),
      ...(ngfPids ? { ngfNginx: ngfPids.nginx, ngfPolicy: ngfPids.policy, ngfBackend: ngfPids.backend } : {}),
    };
    const irisCpuOf = { nginx: nginxWorkers, policy: [irisPolicy.pid!, ...childPids(irisPolicy.pid!)], backend: [iris.pid!] };
    for (let round = 0; round < ROUNDS; round++) {
      for (const name of roundOrder(names, round)) {
        await wrk(scenarios[name], script, PREWARM_SECONDS);
        const r = await withCpu(cpuOf, () => wrk(scenarios[name], script, DURATION));
        if (r.non2xx > 0 || r.errors > 0) process.stderr.write(`[bench policy] ${name}: ${r.non2xx} non-2xx, ${r.errors} socket errors\n`);
        runs[name].push(r);
        process.stdout.write(
          `[bench policy] round ${round + 1} ${name}: ${r.rps.toFixed(0)} req/s, CPU µs/req ${JSON.stringify(r.cpuUsPerRequest)}, idle ${r.idlePercent}%\n`,
        );
      }
    }
    // The iris-v1 pair: same wrk settings, fewer rounds (each scenario is one uvicorn process's worth).
    const irisScenarios = { irisPlain: `http://127.0.0.1:${irisPlainPort}/predict`, irisKea: `http://127.0.0.1:${irisKeaPort}/echo/predict` } as const;
    type IrisName = keyof typeof irisScenarios;
    const irisRuns: Record<IrisName, WrkRun[]> = { irisPlain: [], irisKea: [] };
    for (const url of Object.values(irisScenarios)) await wrk(url, script, 2); // warm-up
    for (let round = 0; round < IRIS_ROUNDS; round++) {
      for (const name of roundOrder(Object.keys(irisScenarios) as IrisName[], round)) {
        await wrk(irisScenarios[name], script, PREWARM_SECONDS);
        const r = await withCpu(irisCpuOf, () => wrk(irisScenarios[name], script, DURATION));
        if (r.non2xx > 0 || r.errors > 0) process.stderr.write(`[bench policy] ${name}: ${r.non2xx} non-2xx, ${r.errors} socket errors\n`);
        irisRuns[name].push(r);
        process.stdout.write(`[bench policy] iris round ${round + 1} ${name}: ${r.rps.toFixed(0)} req/s\n`);
      }
    }
    // The full-stack real-model pair through NGF (issue 11 item 5): enforce vs passthrough on
    // the same gateway, iris-v1, 3-row body, wrk -t1 -c32, NGF_IRIS_SECONDS rounds alternating.
    const ngfIrisRuns: Record<'passthrough' | 'kea', WrkRun[]> = { passthrough: [], kea: [] };
    if (ngf && ngfPids) {
      const urls = { passthrough: `${ngf.publicUrl}/irisplain/predict`, kea: `${ngf.publicUrl}/iris/predict` } as const;
      const cpu = { ngfNginx: ngfPids.nginx, ngfPolicy: ngfPids.policy, model: ngfPids.model };
      for (const url of Object.values(urls)) await wrk(url, irisScript, 2); // warm-up
      for (let round = 0; round < NGF_IRIS_ROUNDS; round++) {
        for (const name of roundOrder(['passthrough', 'kea'] as const, round)) {
          await wrk(urls[name], irisScript, PREWARM_SECONDS);
          const r = await withCpu(cpu, () => wrk(urls[name], irisScript, NGF_IRIS_SECONDS));
          if (r.non2xx > 0 || r.errors > 0) process.stderr.write(`[bench policy] NGF iris ${name}: ${r.non2xx} non-2xx, ${r.errors} socket errors\n`);
          ngfIrisRuns[name].push(r);
          process.stdout.write(
            `[bench policy] NGF iris round ${round + 1} ${name}: ${r.rps.toFixed(0)} req/s, CPU µs/req ${JSON.stringify(r.cpuUsPerRequest)}, idle ${r.idlePercent}%\n`,
          );
        }
      }
    }
    const rate = async (port: number, path: string) => {
      const out = await run(NODE, [CHILDREN.rate, `http://127.0.0.1:${port}`, path, '1000', String(LATENCY_SECONDS), token, join(dir, 'body.json')]);
      return JSON.parse(out) as LatencyRun;
    };
    // LATENCY_PAIRS interleaved pairs (the order alternates within pairs). The p99 of one 5 s
    // run on this shared 2-vCPU machine swings by several ms with the neighbours' scheduling, so
    // "p99 added" is the median over pairs of (KEA p99 − plain p99), and the table shows each
    // path's per-percentile median over its runs.
    type Lat = Awaited<ReturnType<typeof rate>>;
    const pairs: Array<{ plain: Lat; kea: Lat }> = [];
    for (let i = 0; i < LATENCY_PAIRS; i++) {
      const first = await rate(i % 2 ? keaPort : plainPort, '/echo/predict');
      const second = await rate(i % 2 ? plainPort : keaPort, '/echo/predict');
      pairs.push(i % 2 ? { plain: second, kea: first } : { plain: first, kea: second });
    }
    const medianRun = (xs: Lat[]): Lat => ({
      p50Ms: median(xs.map((x) => x.p50Ms)),
      p90Ms: median(xs.map((x) => x.p90Ms)),
      p99Ms: median(xs.map((x) => x.p99Ms)),
      maxMs: median(xs.map((x) => x.maxMs)),
      sent: xs.reduce((a, x) => a + x.sent, 0),
      failed: xs.reduce((a, x) => a + x.failed, 0),
    });
    const lp = medianRun(pairs.map((x) => x.plain));
    const lk = medianRun(pairs.map((x) => x.kea));

    const allRuns = { ...runs, ...irisRuns } as Record<Name | IrisName, WrkRun[]>;
    const throughput = Object.fromEntries(
      (Object.keys(allRuns) as Array<Name | IrisName>).map((n) => [n, { medianRps: median(allRuns[n].map((r) => r.rps)), rounds: allRuns[n] }]),
    ) as PolicyBenchResult['throughput'];
    // Ratios are taken per round (scenarios of one round ran back to back, under the same
    // neighbours' load) and the median over rounds is reported.
    const perRound = (a: Name | IrisName, b: Name | IrisName) => allRuns[a].map((r, i) => r.rps / allRuns[b][i].rps);
    const ratios = {
      keaVsPlain: median(perRound('kea', 'plain')),
      cacheHitVsUncached: median(perRound('keaCacheHit', 'kea')),
      validationOnVsOff: median(perRound('kea', 'keaNoValidation')),
      irisKeaVsPlain: median(perRound('irisKea', 'irisPlain')),
    };
    const reference = {
      forwarderVsPlain: median(perRound('forwarder', 'plain')),
      forwarderParseVsPlain: median(perRound('forwarderParse', 'plain')),
      keaVsForwarder: median(perRound('kea', 'forwarder')),
      parseVsNoParse: median(perRound('forwarderParse', 'forwarder')),
      cacheHitVsPlain: median(perRound('keaCacheHit', 'plain')),
    };
    const ngfResult: PolicyBenchResult['ngf'] = ngf
      ? {
          setup: `NGF ${NGF_VERSION} static mode, Debian nginx (worker_processes auto), routes as KEA renders them, UpstreamSettingsPolicy keep-alive ${process.env.KEA_BENCH_NGF_KEEPALIVE !== '0' ? 'on' : 'off'}`,
          keaVsPassthrough: median(perRound('ngfKea', 'ngfPlain')),
          keaVsPlainNginx: median(perRound('ngfKea', 'plain')),
          passthroughVsPlainNginx: median(perRound('ngfPlain', 'plain')),
          keaNgfVsKeaPlainNginx: median(perRound('ngfKea', 'kea')),
          iris: {
            body: '3 rows',
            rounds: NGF_IRIS_ROUNDS,
            durationSeconds: NGF_IRIS_SECONDS,
            passthroughRps: median(ngfIrisRuns.passthrough.map((r) => r.rps)),
            keaRps: median(ngfIrisRuns.kea.map((r) => r.rps)),
            keaVsPassthrough: median(ngfIrisRuns.kea.map((r, i) => r.rps / ngfIrisRuns.passthrough[i].rps)),
            runs: ngfIrisRuns,
          },
        }
      : undefined;
    const targets = { keaVsPlain: 0.5, cacheHitVsUncached: 2, validationOnVsOff: 0.9, p99AddedMs: 1.5, irisKeaVsPlain: 0.9 };
    const p99AddedMs = median(pairs.map((x) => x.kea.p99Ms - x.plain.p99Ms));
    const result: PolicyBenchResult = {
      benchmark: 'policy',
      date: new Date().toISOString(),
      machine: { cpus: cpus().length, loadavgBefore: loadBefore, loadavgAfter: loadavg(), node: process.version },
      setup: {
        wrk: 'wrk -t1 -c32 --latency',
        bodyBytes: Buffer.byteLength(body),
        durationSeconds: DURATION,
        rounds: ROUNDS,
        backend: 'node:http, 63-byte JSON',
        nginx: 'nginx 1.22, 1 worker, keepalive 64',
        policyNodeArgs: nodeArgs,
        policyWorkers: WORKERS,
      },
      throughput,
      irisSetup: {
        backend: 'uvicorn app:app (1 process; FastAPI + pydantic + scikit-learn LogisticRegression)',
        rounds: IRIS_ROUNDS,
        durationSeconds: DURATION,
      },
      latencyAt1000rps: { plain: lp, kea: lk, p99AddedMs, pairs },
      ratios,
      reference,
      ...(ngfResult ? { ngf: ngfResult } : {}),
      targets,
      met: {
        keaVsPlain: ratios.keaVsPlain >= targets.keaVsPlain,
        cacheHitVsUncached: ratios.cacheHitVsUncached >= targets.cacheHitVsUncached,
        validationOnVsOff: ratios.validationOnVsOff >= targets.validationOnVsOff,
        p99AddedMs: p99AddedMs <= targets.p99AddedMs,
        irisKeaVsPlain: ratios.irisKeaVsPlain >= targets.irisKeaVsPlain,
      },
    };
    // The audit log really recorded the traffic (the KEA path was not short-circuited).
    const logs = await fetch(`http://127.0.0.1:${policyPort}/logs/bench/echo?limit=5`, { headers: { authorization: `Bearer ${adminToken}` } });
    const recent = (await logs.json()) as { records?: Array<{ operation: string; status: number; user: string }> };
    if (logs.status !== 200 || !recent.records?.length) throw new Error(`policy server kept no audit records: ${logs.status} ${JSON.stringify(recent)}`);
    await writeDocs(result);
    return result;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await stopAll();
    await stopNgf?.();
    await idp?.stop();
    await rm(dir, { recursive: true, force: true });
  }
}
