/**
 * Shared-state benchmark (`npm run bench -- shared`; issue 13): what rate limits and the
 * response cache's second level in Redis cost, against plain nginx and KEA without them, in
 * the same interleaved rounds on the same machine.
 *
 * Topology (every piece a separate process, all on loopback; wrk → nginx 1.22, 1 worker, which
 * sets `x-kea-operation` as the public HTTPRoute does):
 *   plain:        nginx → backend (node:http, ~60 B JSON: bench/children/backend.ts)
 *   P local:      nginx → policy server, no Redis ─────────────────▶ backend
 *   P redis:      nginx → policy server, --redis-url, first level ──▶ backend
 *                         off (--cache-max-bytes 1: the LRU refuses every entry)
 *   iris plain:   nginx → uvicorn examples/iris-v1 (FastAPI + scikit-learn, 1 process)
 *   P iris:       nginx → policy server, --redis-url ──────────────▶ uvicorn
 *   redis-server (Debian package, no persistence: dev/testing/redis.ts)
 * The policy servers run `dist/policy-server/main.js` with the real OIDC authenticator (a JWT
 * of the dev IdP, client credentials), JSON Schema validation, the audit log; the body is the
 * 1 KB JSON POST of the data-path bench (bench/policy.ts).
 *
 * Scenarios (one rotation, wrk -t1 -c32, `KEA_BENCH_SHARED_ROUNDS` (default 6) rounds of
 * `KEA_BENCH_SECONDS` (default 3) s, the order rotated each round, each run after 1 s of
 * unmeasured load on the same path; ratios = median of per-round ratios):
 * - `plain`: nginx → backend.
 * - `limitsOff`: P local, the `predict` operation (no rate limit).
 * - `limitsLocal`: P local, `predict_limited`: one `identity` limit of 10⁹ requests per second
 *   (counted on every request, never reached), counted in the process (rate-limiter-flexible
 *   `RateLimiterMemory`).
 * - `limitsRedis`: P redis, `predict_limited`: the same limit counted in Redis.
 * - `cacheL1`: P local, `predict_cached`: every request a first-level hit.
 * - `cacheL2`: P redis, `predict_cached`: every request a second-level hit (the first level
 *   refuses entries, so each request is one Redis `MGET`).
 * - `irisPlain`: nginx → uvicorn; `irisKea`: P iris, `predict` (no limit); `irisLimitsRedis`:
 *   P iris, `predict_limited`, the limit counted in Redis.
 * Each run records the CPU time per request of every process (/proc), so the cost of a
 * feature can be split between the policy server, Redis and the rest.
 *
 * Targets (issue 13): per-process limits cost ≤ 5 % of throughput on the trivial backend
 * (`limitsLocal` ≥ 0.95 × `limitsOff`); Redis limits ≤ 15 % with iris (`irisLimitsRedis` ≥
 * 0.85 × `irisKea`); a second-level hit ≥ 3× a real model call (`cacheL2` ≥ 3 × `irisKea`).
 *
 * Results: the returned object (bench/run.ts writes bench/results/shared.json) and the section
 * "Rate limits and shared cache (issue 13)" of docs/performance.md (between its markers).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, openSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import * as oidc from 'openid-client';
import { REPO_ROOT } from '../dev/controlplane.js';
import { gatewayClient, scriptsClient, startDevIdp } from '../dev/idp.js';
import { startRedis, type TestRedis } from '../dev/testing/redis.js';
import { waitFor } from '../dev/testing/wait.js';
import type { PolicyRateLimit, PolicyService } from '../lib/policy/config.js';
import { freePort, stopProcess } from '../lib/process.js';
import { POLICY_NODE_ARGS } from '../policy-server/runtime-flags.js';
import {
  benchBody,
  benchService,
  CHILDREN,
  childPids,
  median,
  NODE,
  op,
  PREWARM_SECONDS,
  roundOrder,
  SCHEMA,
  VENV,
  waitHttp,
  waitReady,
  withCpu,
  wrk,
  type WrkRun,
} from './policy.js';

const DURATION = Number(process.env.KEA_BENCH_SECONDS ?? 3);
const ROUNDS = Number(process.env.KEA_BENCH_SHARED_ROUNDS ?? 6);

/** The scenarios, in the order of the first round. */
const NAMES = ['plain', 'limitsOff', 'limitsLocal', 'limitsRedis', 'cacheL1', 'cacheL2', 'irisPlain', 'irisKea', 'irisLimitsRedis'] as const;
type Name = (typeof NAMES)[number];

/** What {@link runSharedStateBench} returns (also written to bench/results/shared.json). */
export interface SharedStateBenchResult {
  benchmark: 'shared';
  date: string;
  machine: { cpus: number; loadavgBefore: number[]; loadavgAfter: number[]; node: string };
  setup: { wrk: string; bodyBytes: number; durationSeconds: number; rounds: number; redis: string; rateLimit: PolicyRateLimit; redisTimeoutMs: number };
  throughput: Record<Name, { medianRps: number; rounds: WrkRun[] }>;
  /** Median over the rounds of each run's CPU µs per request, by process. */
  cpuUsPerRequest: Record<Name, Record<string, number>>;
  ratios: {
    limitsLocalVsOff: number;
    limitsRedisVsOff: number;
    irisLimitsRedisVsOff: number;
    cacheL2VsIrisKea: number;
    cacheL2VsIrisPlain: number;
    cacheL2VsL1: number;
    cacheL1VsPlain: number;
    limitsOffVsPlain: number;
  };
  /** The policy servers' own counters after the runs (that the paths measured really were L2 hits and Redis-counted limits). */
  counters: { redisServer: Record<string, number>; irisServer: Record<string, number> };
  targets: { limitsLocalVsOff: number; irisLimitsRedisVsOff: number; cacheL2VsIrisKea: number };
  met: { limitsLocalVsOff: boolean; irisLimitsRedisVsOff: boolean; cacheL2VsIrisKea: boolean };
}

/** The limit of the `*_limited` operations: counted on every request, never reached. */
function benchLimit(scope: string): PolicyRateLimit {
  return { name: 'bench', requests: 1_000_000_000, periodMs: 1000, burst: 0, key: 'identity', scope };
}

/** The bench service of bench/policy.ts plus `predict_limited` (the same operation with {@link benchLimit}). */
function sharedService(): PolicyService {
  const s = benchService();
  const body = { required: true, contentType: 'application/json', schema: SCHEMA };
  return {
    ...s,
    configVersion: 'bench-shared-1',
    rateLimitFailMode: 'open',
    operations: [...s.operations, op('predict_limited', '/echo/limited', { requestBody: body, rateLimits: [benchLimit('bench/echo/predict_limited')] })],
  };
}

/** The redis-server's pid (`INFO server` → `process_id`), for its CPU time. */
async function redisPid(url: string): Promise<number> {
  const c = new Redis(url);
  try {
    const pid = Number(/process_id:(\d+)/.exec(await c.info('server'))?.[1]);
    if (!pid) throw new Error('INFO server gave no process_id');
    return pid;
  } finally {
    c.disconnect();
  }
}

/** `name{labels} value` lines of a Prometheus text exposition whose name starts with one of `prefixes`. */
function pickMetrics(text: string, prefixes: string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of text.split('\n')) {
    if (line.startsWith('#') || !prefixes.some((p) => line.startsWith(p))) continue;
    const i = line.lastIndexOf(' ');
    out[line.slice(0, i)] = Number(line.slice(i + 1));
  }
  return out;
}

/** nginx.conf: one server per path (see the module comment). */
function nginxConf(dir: string, ports: Record<string, number>): string {
  const server = (listen: number, upstream: string, op = false) =>
    `  server {\n    listen 127.0.0.1:${listen};\n    location / {\n      proxy_pass http://${upstream}; proxy_http_version 1.1; proxy_set_header Connection "";${op ? '\n      proxy_set_header x-kea-operation $kea_operation;' : ''}\n    }\n  }\n`;
  const up = (name: string, port: number) => `  upstream ${name} { server 127.0.0.1:${port}; keepalive 64; }\n`;
  return `worker_processes 1;
daemon off;
pid ${join(dir, 'nginx.pid')};
error_log ${join(dir, 'error.log')} warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${dir};
  proxy_temp_path ${dir};
  fastcgi_temp_path ${dir};
  uwsgi_temp_path ${dir};
  scgi_temp_path ${dir};
${up('backend', ports.backend)}${up('plocal', ports.pLocal)}${up('predis', ports.pRedis)}${up('iris', ports.iris)}${up('piris', ports.pIris)}  map $uri $kea_operation {
    /echo/predict bench/echo/predict;
    /echo/limited bench/echo/predict_limited;
    /echo/cached bench/echo/predict_cached;
    default "";
  }
${server(ports.plain, 'backend')}${server(ports.local, 'plocal', true)}${server(ports.redis, 'predis', true)}${server(ports.irisPlain, 'iris')}${server(ports.irisKea, 'piris', true)}}
`;
}

/**
 * Replaces (or adds, before "## Controller scale") the generated "Rate limits and shared cache
 * (issue 13)" section of docs/performance.md. Also runnable on a saved result:
 * `node -e "import('./dist/bench/shared-state.js').then(async (m) => m.writeDocs(JSON.parse(require('fs').readFileSync('bench/results/shared.json'))))"`.
 */
export async function writeDocs(r: SharedStateBenchResult): Promise<void> {
  const file = join(REPO_ROOT, 'docs', 'performance.md');
  const pct = (x: number): string => `${(x * 100).toFixed(0)}%`;
  const t = r.throughput;
  const cpu = (n: Name, ...procs: string[]) => procs.map((p) => `${p} ${(r.cpuUsPerRequest[n][p] ?? NaN).toFixed(1)}`).join(', ');
  const yes = (b: boolean) => (b ? 'yes' : '**no**');
  // A counter never incremented is absent from the exposition: the errors are given as a sum (0 when absent).
  const list = (m: Record<string, number>) => {
    const errors = Object.entries(m).reduce((n, [k, v]) => (k.startsWith('kea_redis_errors_total') ? n + v : n), 0);
    return [...Object.entries(m), ['kea_redis_errors_total (sum over op)', errors] as const].map(([k, v]) => `\`${k}\` ${v}`).join(', ');
  };
  const section = `<!-- shared-state:begin (generated by bench/shared-state.ts; do not edit by hand) -->
## Rate limits and shared cache (issue 13)

Measured ${r.date.slice(0, 16).replace('T', ' ')} UTC by \`npm run bench -- shared\` on ${r.machine.cpus} shared vCPUs (load average
before/after: ${r.machine.loadavgBefore.map((x) => x.toFixed(1)).join(' ')} / ${r.machine.loadavgAfter.map((x) => x.toFixed(1)).join(' ')}; other sessions were running tests on the same machine).
wrk -t1 -c32, ${r.setup.durationSeconds} s × ${r.setup.rounds} interleaved rounds of all nine scenarios (the order rotates every round,
each run follows ${PREWARM_SECONDS} s of unmeasured load on the same path; ratios are medians of per-round ratios), the
${r.setup.bodyBytes}-byte JSON POST with a bearer JWT of the data-path bench, nginx 1.22 (1 worker) in front, redis-server
${r.setup.redis} on loopback, \`--redis-timeout-ms ${r.setup.redisTimeoutMs}\`. The limit of the limited operation:
${r.setup.rateLimit.requests} requests per ${r.setup.rateLimit.periodMs / 1000} s per identity (counted on every request, never reached).

| path | req/s (median) | ratio | target | met | CPU µs/request (median) |
|---|---|---|---|---|---|
| nginx → backend (plain) | ${t.plain.medianRps.toFixed(0)} | 100% | | | ${cpu('plain', 'nginx', 'backend')} |
| nginx → KEA → backend, limits off | ${t.limitsOff.medianRps.toFixed(0)} | ${pct(r.ratios.limitsOffVsPlain)} of plain | | | ${cpu('limitsOff', 'policyLocal', 'nginx', 'backend')} |
| same, limit counted per process | ${t.limitsLocal.medianRps.toFixed(0)} | ${pct(r.ratios.limitsLocalVsOff)} of limits off | ≥ 95% | ${yes(r.met.limitsLocalVsOff)} | ${cpu('limitsLocal', 'policyLocal', 'nginx', 'backend')} |
| same, limit counted in Redis | ${t.limitsRedis.medianRps.toFixed(0)} | ${pct(r.ratios.limitsRedisVsOff)} of limits off | | | ${cpu('limitsRedis', 'policyRedis', 'redis', 'nginx', 'backend')} |
| KEA cache hit, first level (process LRU) | ${t.cacheL1.medianRps.toFixed(0)} | ${pct(r.ratios.cacheL1VsPlain)} of plain | | | ${cpu('cacheL1', 'policyLocal', 'nginx')} |
| KEA cache hit, second level (Redis; first level off) | ${t.cacheL2.medianRps.toFixed(0)} | ${pct(r.ratios.cacheL2VsL1)} of a first-level hit; ${r.ratios.cacheL2VsIrisKea.toFixed(1)}× an iris call through KEA (${r.ratios.cacheL2VsIrisPlain.toFixed(1)}× direct) | ≥ 3× iris | ${yes(r.met.cacheL2VsIrisKea)} | ${cpu('cacheL2', 'policyRedis', 'redis', 'nginx')} |
| nginx → iris-v1 (plain) | ${t.irisPlain.medianRps.toFixed(0)} | 100% | | | ${cpu('irisPlain', 'iris', 'nginx')} |
| nginx → KEA → iris-v1, limits off | ${t.irisKea.medianRps.toFixed(0)} | ${pct(t.irisKea.medianRps / t.irisPlain.medianRps)} of plain | | | ${cpu('irisKea', 'policyIris', 'iris', 'nginx')} |
| same, limit counted in Redis | ${t.irisLimitsRedis.medianRps.toFixed(0)} | ${pct(r.ratios.irisLimitsRedisVsOff)} of limits off | ≥ 85% | ${yes(r.met.irisLimitsRedisVsOff)} | ${cpu('irisLimitsRedis', 'policyIris', 'redis', 'iris', 'nginx')} |

Counters read from the policy servers after the runs (the measured paths really were second-level
hits and Redis-counted limits): the trivial backend's Redis-backed server ${list(r.counters.redisServer)}; the iris one
${list(r.counters.irisServer)}.
Raw numbers: \`bench/results/shared.json\`.
<!-- shared-state:end -->`;
  let doc = await readFile(file, 'utf8');
  const re = /<!-- shared-state:begin[\s\S]*?<!-- shared-state:end -->/;
  if (re.test(doc)) doc = doc.replace(re, section);
  else {
    // Before "## Controller scale", the next top-level section after the data path's.
    const at = doc.indexOf('\n## Controller scale');
    doc = at < 0 ? `${doc.trimEnd()}\n\n${section}\n` : `${doc.slice(0, at)}\n${section}\n${doc.slice(at)}`;
  }
  await writeFile(file, doc);
}

/** What the running topology offers the measurement. */
interface Topology {
  scenarios: Record<Name, string>;
  /** The wrk Lua script (POST, body, bearer token). */
  script: string;
  token: string;
  body: string;
  /** The processes whose CPU time is accounted, by name. */
  cpuOf: Record<string, number[]>;
  /** Admin ports of the Redis-backed policy servers (`/metrics`). */
  admin: { redis: number; iris: number };
  redisVersion: string;
}

/** What the bench started (stopped in its `finally`). */
interface Started {
  children: ChildProcess[];
  redis?: TestRedis;
  idp?: Awaited<ReturnType<typeof startDevIdp>>;
}

const REDIS_TIMEOUT_MS = 50;

/** The dev IdP with the gateway and a scripts client, and a client-credentials token of the latter. */
async function startIdp(started: Started, gatewayUrl: string, gwSecret: string): Promise<string> {
  const idp = (started.idp = await startDevIdp({
    clients: [gatewayClient(gatewayUrl, gwSecret), scriptsClient('bench-script', 'bench-script-secret', ['student'])],
    ttl: { accessToken: 3600 },
  }));
  const client = await oidc.discovery(new URL(idp.issuer), 'bench-script', 'bench-script-secret', undefined, { execute: [oidc.allowInsecureRequests] });
  return (await oidc.clientCredentialsGrant(client, { scope: 'api:read', resource: idp.audience })).access_token;
}

/** Starts one policy server (dist/policy-server/main.js, 1 worker, the config dir of `dir`). */
function startPolicy(
  dir: string,
  started: Started,
  o: { label: string; port: number; adminPort: number; upstreamUrl: string; extra: string[]; env: NodeJS.ProcessEnv },
): ChildProcess {
  const nodeArgs = process.env.KEA_BENCH_POLICY_NODE_ARGS?.split(' ').filter(Boolean) ?? POLICY_NODE_ARGS;
  const args = ['--workers', '1', '--host', '127.0.0.1', '--port', String(o.port), '--upstream-url', o.upstreamUrl, '--internal-token', 'bench-token'];
  args.push('--config-dir', join(dir, 'cfg'), '--state-dir', join(dir, `state-${o.label}`), ...o.extra);
  const p = spawn(NODE, [...nodeArgs, join(REPO_ROOT, 'dist/policy-server/main.js'), ...args], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, ...o.env, KEA_LOG_LEVEL: 'info', KEA_ADMIN_PORT: String(o.adminPort), KEA_ADMIN_HOST: '127.0.0.1' },
  });
  started.children.push(p);
  let stderr = '';
  p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  p.on('exit', (code) => {
    if (code) process.stderr.write(`[bench shared] policy server (${o.label}) exited ${code}: ${stderr}\n`);
  });
  return p;
}

/** Starts every process of the topology (module comment) and waits until each answers. */
async function startTopology(dir: string, started: Started): Promise<Topology> {
  const names = ['backend', 'pLocal', 'pRedis', 'iris', 'pIris', 'plain', 'local', 'redis', 'irisPlain', 'irisKea', 'aLocal', 'aRedis', 'aIris'];
  const ports: Record<string, number> = {};
  for (const k of names) ports[k] = await freePort();
  const redis = (started.redis = await startRedis());
  const gatewayUrl = `http://127.0.0.1:${ports.local}`;
  const gwSecret = randomBytes(16).toString('hex');
  const token = await startIdp(started, gatewayUrl, gwSecret);
  const body = benchBody();
  await writeFile(join(dir, 'body.json'), body);
  const script = join(dir, 'post.lua');
  const lua = `wrk.method = "POST"\nwrk.body = io.open("${join(dir, 'body.json')}"):read("*a")\nwrk.headers["Content-Type"] = "application/json"\nwrk.headers["Authorization"] = "Bearer ${token}"\n`;
  await writeFile(script, lua);
  await mkdir(join(dir, 'cfg', 'bench-echo'), { recursive: true });
  await writeFile(join(dir, 'cfg', 'bench-echo', 'policy.json'), JSON.stringify(sharedService()));

  const devNull = openSync('/dev/null', 'w');
  const backend = spawn(NODE, [CHILDREN.backend, String(ports.backend)], { stdio: 'ignore' });
  const iris = spawn(join(VENV, 'bin', 'uvicorn'), ['app:app', '--host', '127.0.0.1', '--port', String(ports.iris)], {
    cwd: join(REPO_ROOT, 'examples', 'iris-v1'),
    stdio: ['ignore', devNull, devNull],
  });
  started.children.push(backend, iris);
  const env = {
    KEA_OIDC_ISSUER: started.idp!.issuer,
    KEA_OIDC_CLIENT_ID: 'kea-gateway',
    KEA_OIDC_CLIENT_SECRET: gwSecret,
    KEA_OIDC_AUDIENCE: started.idp!.audience,
    KEA_GATEWAY_URL: gatewayUrl,
    KEA_SESSION_SECRETS: randomBytes(24).toString('hex'),
    KEA_COOKIE_SECURE: 'false',
  };
  const withRedis = ['--redis-url', redis.url, '--redis-timeout-ms', String(REDIS_TIMEOUT_MS)];
  const toBackend = `http://127.0.0.1:${ports.backend}`;
  const pLocal = startPolicy(dir, started, { label: 'local', port: ports.pLocal, adminPort: ports.aLocal, upstreamUrl: toBackend, extra: [], env });
  // First level off: the LRU's size bound (1 byte) is below any entry, so every hit comes from Redis.
  const extra = [...withRedis, '--cache-max-bytes', '1'];
  const pRedis = startPolicy(dir, started, { label: 'redis', port: ports.pRedis, adminPort: ports.aRedis, upstreamUrl: toBackend, extra, env });
  const toIris = `http://127.0.0.1:${ports.iris}`;
  const pIris = startPolicy(dir, started, { label: 'iris', port: ports.pIris, adminPort: ports.aIris, upstreamUrl: toIris, extra: withRedis, env });
  await mkdir(join(dir, 'nginx'), { recursive: true });
  await writeFile(join(dir, 'nginx', 'nginx.conf'), nginxConf(join(dir, 'nginx'), ports));
  const nginx = spawn('nginx', ['-c', join(dir, 'nginx', 'nginx.conf'), '-p', join(dir, 'nginx')], { stdio: 'ignore' });
  started.children.push(nginx);
  await Promise.all([
    waitReady(ports.pLocal, ports.aLocal),
    waitReady(ports.pRedis, ports.aRedis),
    waitReady(ports.pIris, ports.aIris),
    waitHttp(`http://127.0.0.1:${ports.plain}/`, 10_000),
    waitHttp(`http://127.0.0.1:${ports.iris}/healthz`, 60_000, 200),
  ]);
  const url = (port: number, path: string) => `http://127.0.0.1:${port}${path}`;
  return {
    scenarios: {
      plain: url(ports.plain, '/echo/predict'),
      limitsOff: url(ports.local, '/echo/predict'),
      limitsLocal: url(ports.local, '/echo/limited'),
      limitsRedis: url(ports.redis, '/echo/limited'),
      cacheL1: url(ports.local, '/echo/cached'),
      cacheL2: url(ports.redis, '/echo/cached'),
      irisPlain: url(ports.irisPlain, '/predict'),
      irisKea: url(ports.irisKea, '/echo/predict'),
      irisLimitsRedis: url(ports.irisKea, '/echo/limited'),
    },
    script,
    token,
    body,
    cpuOf: {
      nginx: childPids(nginx.pid!),
      backend: [backend.pid!],
      iris: [iris.pid!],
      policyLocal: [pLocal.pid!],
      policyRedis: [pRedis.pid!],
      policyIris: [pIris.pid!],
      redis: [await redisPid(redis.url)],
    },
    admin: { redis: ports.aRedis, iris: ports.aIris },
    redisVersion: spawnSync('redis-server', ['--version']).stdout.toString().split(' ')[2] ?? '?',
  };
}

/**
 * Every path answers 200 with what it is meant to measure: the limited ones with
 * `RateLimit-Policy` (the rate-limit step ran), the cached ones from the level they name.
 * @throws naming the path that does not.
 */
async function sanityCheck(t: Topology): Promise<void> {
  // Redis is connected (readiness does not wait for it).
  for (const port of [t.admin.redis, t.admin.iris]) {
    await waitFor(
      `policy server :${port} connected to Redis`,
      10_000,
      async () => /^kea_redis_available 1$/m.test(await (await fetch(`http://127.0.0.1:${port}/metrics`)).text()),
      100,
    );
  }
  const post = async (url: string): Promise<Response> => {
    const r = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${t.token}` }, body: t.body });
    await r.arrayBuffer();
    if (r.status !== 200) throw new Error(`sanity check ${url}: ${r.status}`);
    return r;
  };
  for (const url of Object.values(t.scenarios)) await post(url);
  await new Promise((r) => setTimeout(r, 200)); // the second-level store follows the first answer
  for (const name of ['limitsLocal', 'limitsRedis', 'irisLimitsRedis'] as const) {
    if (!(await post(t.scenarios[name])).headers.get('ratelimit-policy')) throw new Error(`${name}: no RateLimit-Policy header: is the rate-limit step built?`);
  }
  for (const [name, status] of [
    ['cacheL1', 'kea; hit'],
    ['cacheL2', 'kea-shared; hit, kea; fwd=uri-miss'],
  ] as const) {
    const got = (await post(t.scenarios[name])).headers.get('cache-status');
    if (got !== status) throw new Error(`${name}: Cache-Status ${got}, expected ${status}`);
  }
}

/** The interleaved rounds: every scenario once per round, the order rotated. */
async function measure(t: Topology): Promise<Record<Name, WrkRun[]>> {
  const runs = Object.fromEntries(NAMES.map((n) => [n, [] as WrkRun[]])) as Record<Name, WrkRun[]>;
  for (const url of Object.values(t.scenarios)) await wrk(url, t.script, 2); // warm-up (JIT, pools, token cache)
  for (let round = 0; round < ROUNDS; round++) {
    for (const name of roundOrder([...NAMES], round)) {
      await wrk(t.scenarios[name], t.script, PREWARM_SECONDS);
      const r = await withCpu(t.cpuOf, () => wrk(t.scenarios[name], t.script, DURATION));
      if (r.non2xx > 0 || r.errors > 0) process.stderr.write(`[bench shared] ${name}: ${r.non2xx} non-2xx, ${r.errors} socket errors\n`);
      runs[name].push(r);
      const cpu = JSON.stringify(r.cpuUsPerRequest);
      process.stdout.write(`[bench shared] round ${round + 1} ${name}: ${r.rps.toFixed(0)} req/s, CPU µs/req ${cpu}, idle ${r.idlePercent}%\n`);
    }
  }
  return runs;
}

/** The result: medians, per-round ratios, targets, and the Redis-backed servers' counters. */
async function summarise(t: Topology, runs: Record<Name, WrkRun[]>, loadBefore: number[]): Promise<SharedStateBenchResult> {
  const metrics = async (adminPort: number) =>
    pickMetrics(await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text(), [
      'kea_cache_l2_total',
      'kea_redis_errors_total',
      'kea_redis_available',
      'kea_rate_limited_total',
    ]);
  const perRound = (a: Name, b: Name) => median(runs[a].map((r, i) => r.rps / runs[b][i].rps));
  const ratios = {
    limitsLocalVsOff: perRound('limitsLocal', 'limitsOff'),
    limitsRedisVsOff: perRound('limitsRedis', 'limitsOff'),
    irisLimitsRedisVsOff: perRound('irisLimitsRedis', 'irisKea'),
    cacheL2VsIrisKea: perRound('cacheL2', 'irisKea'),
    cacheL2VsIrisPlain: perRound('cacheL2', 'irisPlain'),
    cacheL2VsL1: perRound('cacheL2', 'cacheL1'),
    cacheL1VsPlain: perRound('cacheL1', 'plain'),
    limitsOffVsPlain: perRound('limitsOff', 'plain'),
  };
  const targets = { limitsLocalVsOff: 0.95, irisLimitsRedisVsOff: 0.85, cacheL2VsIrisKea: 3 };
  const cpuMedian = (n: Name) =>
    Object.fromEntries(Object.keys(t.cpuOf).map((p) => [p, Math.round(10 * median(runs[n].map((r) => r.cpuUsPerRequest?.[p] ?? NaN))) / 10]));
  return {
    benchmark: 'shared',
    date: new Date().toISOString(),
    machine: { cpus: cpus().length, loadavgBefore: loadBefore, loadavgAfter: loadavg(), node: process.version },
    setup: {
      wrk: 'wrk -t1 -c32 --latency',
      bodyBytes: Buffer.byteLength(t.body),
      durationSeconds: DURATION,
      rounds: ROUNDS,
      redis: t.redisVersion,
      rateLimit: benchLimit('bench/echo/predict_limited'),
      redisTimeoutMs: REDIS_TIMEOUT_MS,
    },
    throughput: Object.fromEntries(
      NAMES.map((n) => [n, { medianRps: median(runs[n].map((r) => r.rps)), rounds: runs[n] }]),
    ) as SharedStateBenchResult['throughput'],
    cpuUsPerRequest: Object.fromEntries(NAMES.map((n) => [n, cpuMedian(n)])) as SharedStateBenchResult['cpuUsPerRequest'],
    ratios,
    counters: { redisServer: await metrics(t.admin.redis), irisServer: await metrics(t.admin.iris) },
    targets,
    met: {
      limitsLocalVsOff: ratios.limitsLocalVsOff >= targets.limitsLocalVsOff,
      irisLimitsRedisVsOff: ratios.irisLimitsRedisVsOff >= targets.irisLimitsRedisVsOff,
      cacheL2VsIrisKea: ratios.cacheL2VsIrisKea >= targets.cacheL2VsIrisKea,
    },
  };
}

/**
 * Runs the shared-state benchmark. Needs `wrk`, `nginx`, `redis-server` (scripts/setup.sh), a
 * build (`dist/`) and the examples venv (`$KEA_CACHE/venv`, uvicorn). Takes about
 * 9 scenarios × rounds × (duration + 1 s) + 1 min.
 * @returns the measurements, ratios and targets (and writes its section of docs/performance.md).
 * @throws when a tool is missing or a path does not answer as expected before measuring.
 */
export async function runSharedStateBench(): Promise<SharedStateBenchResult> {
  for (const bin of ['wrk', 'nginx', 'redis-server']) {
    if (spawnSync('which', [bin]).status !== 0) throw new Error(`${bin} not found: run scripts/setup.sh`);
  }
  if (!existsSync(join(REPO_ROOT, 'dist/policy-server/main.js'))) throw new Error('dist/policy-server/main.js missing: run npm run build');
  if (!existsSync(join(VENV, 'bin', 'uvicorn'))) throw new Error(`${VENV}/bin/uvicorn missing: run scripts/setup.sh (Python venv for examples/)`);
  const dir = await mkdtemp(join(tmpdir(), 'kea-bench-shared-'));
  const started: Started = { children: [] };
  const loadBefore = loadavg();
  try {
    const t = await startTopology(dir, started);
    await sanityCheck(t);
    const result = await summarise(t, await measure(t), loadBefore);
    await writeDocs(result);
    return result;
  } finally {
    for (const c of started.children.reverse()) await stopProcess(c, 5000);
    await started.redis?.stop();
    await started.idp?.stop();
    await rm(dir, { recursive: true, force: true });
  }
}
