/**
 * Multi-process mode (`--workers n`, policy-server/cluster.ts) with real parts: the compiled
 * server (dist/, build first: `node_modules/.bin/tsc -p tsconfig.build.json`) run as
 * `node dist/policy-server/main.js --workers 2`, a real node:http backend, and the dev OpenID
 * Provider (dev/idp.ts) issuing an admin client-credentials token for the admin endpoints.
 * Workers are told apart by the `pid` of their audit records on stdout.
 */
import { execFileSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { REPO_ROOT } from '../dev/controlplane.js';
import { scriptsClient, startDevIdp, type DevIdp } from '../dev/idp.js';
import { cgroupCpuQuota, cpuBudget, resolveWorkers } from './cluster.js';
import { mergeAuditRecords } from './management.js';
import { SnapshotStore } from './snapshot/store.js';
import { irisBody, irisService, INTERNAL_TOKEN, policyServerArgs, startBackend, writeConfigDir, type Backend } from './testing/fixtures.js';
import { configMapsFor } from './testing/fixtures.js';
import { send, type RawResponse } from './testing/http.js';
import { spawnPolicyServer } from './testing/process.js';
import { waitFor } from '../dev/testing/wait.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('worker count', () => {
  test('resolveWorkers: integers, auto, and clear errors', () => {
    expect(resolveWorkers(undefined)).toBe(1);
    expect(resolveWorkers('1')).toBe(1);
    expect(resolveWorkers('3')).toBe(3);
    expect(resolveWorkers('auto')).toBe(cpuBudget());
    expect(cpuBudget()).toBeGreaterThanOrEqual(1);
    for (const bad of ['0', '-2', '1.5', 'many', '1000']) expect(() => resolveWorkers(bad)).toThrow(/--workers must be "auto" or an integer/);
  });

  async function fakeRoot(files: Record<string, string>): Promise<string> {
    const root = await mkdtemp(join(tmpdir(), 'kea-cgroup-'));
    for (const [p, text] of Object.entries(files)) {
      await mkdir(join(root, p, '..'), { recursive: true });
      await writeFile(join(root, p), text);
    }
    return `${root}/`;
  }

  test('cgroupCpuQuota: v1 with a separate cpu hierarchy (this machine), v2 cpu.max with a tighter parent, no limit', async () => {
    const v1 = await fakeRoot({
      'proc/self/cgroup': '4:memory:/x\n1:cpu:/kea/pod\n0::/\n',
      'sys/fs/cgroup/cpu/kea/pod/cpu.cfs_quota_us': '150000',
      'sys/fs/cgroup/cpu/kea/pod/cpu.cfs_period_us': '100000',
      'sys/fs/cgroup/cpu/kea/cpu.cfs_quota_us': '-1',
      'sys/fs/cgroup/cpu/kea/cpu.cfs_period_us': '100000',
    });
    expect(cgroupCpuQuota(v1)).toBe(1.5);
    expect(cpuBudget(v1)).toBe(1); // floor: a second worker would only be throttled
    const v2 = await fakeRoot({
      'proc/self/cgroup': '0::/kubepods/pod1/c1\n',
      'sys/fs/cgroup/kubepods/pod1/c1/cpu.max': 'max 100000',
      'sys/fs/cgroup/kubepods/pod1/cpu.max': '300000 100000',
      'sys/fs/cgroup/kubepods/cpu.max': '800000 100000',
    });
    expect(cgroupCpuQuota(v2)).toBe(3);
    const none = await fakeRoot({ 'proc/self/cgroup': '0::/\n', 'sys/fs/cgroup/cpu.max': 'max 100000' });
    expect(cgroupCpuQuota(none)).toBeUndefined();
    for (const r of [v1, v2, none]) await rm(r, { recursive: true, force: true });
  });
});

test('two stores persisting into one state dir never leave a torn snapshot.json', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'kea-state-'));
  try {
    // Same process, same pid: the temp name must still be unique per write.
    const a = new SnapshotStore({ stateDir: dir });
    const b = new SnapshotStore({ stateDir: dir });
    let torn = 0;
    let reads = 0;
    for (let i = 0; i < 40; i++) {
      a.apply(configMapsFor(irisService(`a${i}`)), 'source');
      b.apply(configMapsFor(irisService(`b${i}`)), 'source');
      await sleep(1);
      try {
        const st = JSON.parse(await readFile(join(dir, 'snapshot.json'), 'utf8')) as { configMaps: unknown[] };
        expect(st.configMaps).toHaveLength(1);
        reads++;
      } catch (err) {
        if (!(err as NodeJS.ErrnoException).code) torn++; // ENOENT before the first rename is fine
      }
    }
    await a.flush();
    await b.flush();
    expect(torn).toBe(0);
    expect(reads).toBeGreaterThan(0);
    const last = JSON.parse(await readFile(join(dir, 'snapshot.json'), 'utf8')) as { configMaps: Array<{ data: { 'policy.json': string } }> };
    expect(['a39', 'b39']).toContain((JSON.parse(last.configMaps[0].data['policy.json']) as { configVersion: string }).configVersion);
    expect((await readdir(dir)).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('mergeAuditRecords: newest first over workers, tagged, limited', () => {
  const rec = (id: string, time: string) => ({
    requestId: id,
    user: null,
    operation: 'a/b/c',
    service: 'a/b',
    method: 'GET',
    path: '/',
    status: 200,
    latencyMs: 1,
    outcome: 'forwarded',
    time,
  });
  const merged = mergeAuditRecords(
    [
      { worker: 1, pid: 11, value: [rec('w1-b', '2026-01-01T00:00:03.000Z'), rec('w1-a', '2026-01-01T00:00:01.000Z')] },
      { worker: 2, pid: 22, value: [rec('w2-b', '2026-01-01T00:00:04.000Z'), rec('w2-a', '2026-01-01T00:00:02.000Z')] },
    ],
    3,
  );
  expect(merged.map((r) => [r.requestId, r.worker])).toEqual([
    ['w2-b', 2],
    ['w1-b', 1],
    ['w2-a', 2],
  ]);
});

/** A running `main.js --workers n` with its parsed stdout. */
interface Running {
  child: ChildProcessWithoutNullStreams;
  url: string;
  records: () => Array<Record<string, unknown>>;
  stderr: () => string;
  exited: Promise<number | null>;
  /** Pid of each slot's current worker, from "worker listening" records. */
  workerPids: () => Map<number, number>;
}

function startMain(args: string[], env: Record<string, string>): Running {
  const { child, records: recs, stderr, exited } = spawnPolicyServer(args, env);
  return {
    child,
    url: '',
    records: () => recs,
    stderr,
    exited,
    workerPids: () => {
      const m = new Map<number, number>();
      for (const r of recs) if (r.message === 'worker listening') m.set(r.worker as number, r.pid as number);
      return m;
    },
  };
}

describe('--workers 2: one server over two processes', () => {
  const CACHE_TOTAL = 10_000_000;
  let dir: string;
  let backend: Backend;
  let idp: DevIdp;
  let run: Running;
  let url: string;
  /** The admin port (`/metrics`), shared by the workers like the data port. */
  let adminUrl: string;
  let admin: Record<string, string>;
  /** Data-path requests sent so far (every one is audited). */
  const sent: string[] = [];

  const fresh = (method: string, path: string, opts: Parameters<typeof send>[2] = {}): Promise<RawResponse> =>
    send(method, `${url}${path}`, { agent: false, ...opts });
  /** Pid of the worker that served a request, from its audit record on stdout. */
  const servedBy = (requestId: string): Promise<number> =>
    waitFor(
      `audit record ${requestId}`,
      5000,
      () => run.records().find((r) => r.message === 'request end' && r.requestId === requestId)?.pid as number | undefined,
      25,
    );
  const health = async (): Promise<string> => {
    const r = await fresh('GET', '/iris/health');
    expect(r.status).toBe(200);
    const id = r.headers['x-request-id'] as string;
    sent.push(id);
    return id;
  };
  const predict = async (): Promise<{ id: string; cache: string }> => {
    const r = await fresh('POST', '/iris/predict', { body: irisBody(), headers: admin });
    expect(r.status).toBe(200);
    const id = r.headers['x-request-id'] as string;
    sent.push(id);
    return { id, cache: r.headers['x-cache'] as string };
  };
  const scrape = async (): Promise<string> => {
    const r = await send('GET', `${adminUrl}/metrics`, { agent: false });
    expect(r.status).toBe(200);
    return r.text;
  };
  const metricSum = (text: string, name: string, labelPart = ''): number =>
    text
      .split('\n')
      .filter((l) => l.startsWith(name) && (l[name.length] === '{' || l[name.length] === ' ') && l.includes(labelPart))
      .reduce((n, l) => n + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kea-cluster-'));
    backend = await startBackend({ requireToken: INTERNAL_TOKEN });
    idp = await startDevIdp({ clients: [scriptsClient('ops', 'ops-secret', ['admin'])] });
    const tok = await fetch(`${idp.issuer}/token`, {
      method: 'POST',
      headers: { authorization: `Basic ${Buffer.from('ops:ops-secret').toString('base64')}`, 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'client_credentials', scope: 'api:read', resource: idp.audience }),
    });
    expect(tok.status).toBe(200);
    admin = { authorization: `Bearer ${((await tok.json()) as { access_token: string }).access_token}` };
    await writeConfigDir(join(dir, 'cfg'), irisService());
    run = startMain(
      [
        '--workers',
        '2',
        ...policyServerArgs({ upstreamUrl: backend.url, configDir: join(dir, 'cfg'), stateDir: join(dir, 'state') }),
        '--cache-max-bytes',
        String(CACHE_TOTAL),
        '--ipc-timeout-ms',
        '500',
      ],
      {
        KEA_OIDC_ISSUER: idp.issuer,
        KEA_OIDC_ALLOW_HTTP_ISSUER: 'true',
        KEA_GATEWAY_URL: 'http://127.0.0.1',
        KEA_SESSION_SECRETS: 'cluster-test-session-secret-0123456789abcdef',
        KEA_COOKIE_SECURE: 'false',
      },
    );
    await waitFor(
      'both workers listening',
      60_000,
      () => run.workerPids().size === 2 || (run.child.exitCode !== null && Promise.reject(new Error(run.stderr()))),
      25,
    );
    const port = run.records().find((r) => r.message === 'worker listening')!.port as number;
    url = `http://127.0.0.1:${port}`;
    adminUrl = `http://127.0.0.1:${await waitFor('admin port', 30_000, () => run.records().find((r) => r.message === 'policy server listening')?.adminPort as number | undefined, 25)}`;
    // Both workers have loaded the config directory.
    await waitFor(
      'config in both workers',
      30_000,
      () => run.records().filter((r) => r.message === 'config snapshot swapped' && r.services === 1).length >= 2,
      25,
    );
  }, 90_000);

  afterAll(async () => {
    if (run && run.child.exitCode === null) {
      run.child.kill('SIGKILL');
      await run.exited;
    }
    await backend?.close();
    await idp?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('requests are served by both workers; the primary serves none', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 40; i++) ids.push(await health());
    const pids = new Set(await Promise.all(ids.map(servedBy)));
    const workers = new Set(run.workerPids().values());
    expect(pids).toEqual(workers);
    expect(pids.has(run.child.pid!)).toBe(false);
    // The snapshot each worker persisted is one complete file, no temp files left.
    const st = JSON.parse(await readFile(join(dir, 'state', 'snapshot.json'), 'utf8')) as { format: string; configMaps: unknown[] };
    expect(st.format).toBe('kea-policy-snapshot/v1');
    expect(st.configMaps).toHaveLength(1);
    expect((await readdir(join(dir, 'state'))).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });

  test('/metrics aggregates every worker: the request count equals the number sent, on any worker', async () => {
    for (let i = 0; i < 4; i++) {
      const text = await scrape();
      expect(metricSum(text, 'kea_policy_requests_total', 'operation="ml/iris/health"')).toBe(sent.length);
      expect(metricSum(text, 'kea_policy_request_duration_seconds_count', 'operation="ml/iris/health"')).toBe(sent.length);
      expect(metricSum(text, 'kea_policy_workers')).toBe(2);
      expect(metricSum(text, 'kea_policy_workers_answered')).toBe(2);
      expect(metricSum(text, 'kea_policy_config_source_up')).toBe(1);
      expect(text.match(/^kea_policy_requests_total\{/gm)?.length).toBe(1); // one series, not one per worker
    }
  });

  test("/logs merges every worker's records, newest first, limit respected; admin only", async () => {
    expect((await fresh('GET', '/logs/ml/iris')).status).toBe(401);
    const r = await fresh('GET', '/logs/ml/iris?limit=1000', { headers: admin });
    expect(r.status).toBe(200);
    const recs = r.json.records as Array<{ requestId: string; worker: number; time: string }>;
    expect(recs.map((x) => x.requestId).sort()).toEqual([...sent].sort());
    expect(new Set(recs.map((x) => x.worker))).toEqual(new Set([1, 2]));
    for (let i = 1; i < recs.length; i++) expect(recs[i - 1].time >= recs[i].time).toBe(true);
    expect(r.json.cluster.answered).toHaveLength(2);
    const five = await fresh('GET', '/logs/ml/iris?limit=5', { headers: admin });
    expect(five.json.records.map((x: { requestId: string }) => x.requestId)).toEqual(recs.slice(0, 5).map((x) => x.requestId));
  });

  test('cache: stats summed over workers, and a purge makes the next request a MISS on every worker', async () => {
    const firstByPid = async (n: number): Promise<Map<number, string[]>> => {
      const seen = new Map<number, string[]>();
      for (let i = 0; i < n; i++) {
        const p = await predict();
        const pid = await servedBy(p.id);
        seen.set(pid, [...(seen.get(pid) ?? []), p.cache]);
      }
      return seen;
    };
    const before = await firstByPid(12);
    expect(before.size).toBe(2);
    for (const results of before.values()) expect(results).toEqual(['MISS', ...results.slice(1).map(() => 'HIT')]);

    const stats = await fresh('GET', '/router/cache', { headers: admin });
    expect(stats.status).toBe(200);
    expect(stats.json.entries).toBe(2); // one entry per worker: caches are per process
    expect(stats.json.maxBytes).toBe(CACHE_TOTAL); // the configured bound is the total
    expect(stats.json.perWorker.map((w: { maxBytes: number }) => w.maxBytes)).toEqual([CACHE_TOTAL / 2, CACHE_TOTAL / 2]);
    expect(stats.json.hits + stats.json.misses).toBe(12);
    expect(stats.json.misses).toBe(2);
    expect(stats.json.perService['ml/iris']).toEqual({ entries: 2, hits: 10, misses: 2 });

    const purge = await fresh('DELETE', '/router/cache/ml/iris', { headers: admin });
    expect(purge.status).toBe(200);
    expect(purge.json.purged).toBe(2);
    expect(purge.json.perWorker.map((w: { purged: number }) => w.purged)).toEqual([1, 1]);

    const after = await firstByPid(12);
    expect(after.size).toBe(2);
    for (const results of after.values()) expect(results[0]).toBe('MISS');
    expect(metricSum(await scrape(), 'kea_policy_cache_lookups_total', 'result="miss"')).toBe(4);
  });

  test('a worker that does not answer is reported, not waited on', async () => {
    const stopped = run.workerPids().get(2)!;
    process.kill(stopped, 'SIGSTOP');
    try {
      // A connection handed to the stopped worker hangs; the primary then hands new ones to the other.
      let text: string | undefined;
      const t0 = Date.now();
      for (let i = 0; i < 6 && !text; i++) {
        const r = await send('GET', `${adminUrl}/metrics`, { agent: false, timeoutMs: 3000 }).catch(() => undefined);
        if (r?.status === 200) text = r.text;
      }
      expect(text).toBeDefined();
      expect(metricSum(text!, 'kea_policy_workers_answered')).toBe(1);
      expect(metricSum(text!, 'kea_policy_workers')).toBe(2);
      let purge: RawResponse | undefined;
      for (let i = 0; i < 4 && !purge; i++) purge = await fresh('DELETE', '/router/cache', { headers: admin, timeoutMs: 3000 }).catch(() => undefined);
      if (!purge) throw new Error('no answer to the purge');
      expect(purge.status).toBe(503);
      expect(purge.json.code).toBe('cluster-incomplete');
      expect(purge.json.cluster.missing).toEqual([expect.objectContaining({ worker: 2, pid: stopped })]);
      expect(Date.now() - t0).toBeLessThan(12_000);
    } finally {
      process.kill(stopped, 'SIGCONT');
    }
    await waitFor('worker 2 answers again', 30_000, async () => metricSum(await scrape(), 'kea_policy_workers_answered') === 2, 25);
  });

  test('a killed worker is restarted and traffic continues', async () => {
    const old = run.workerPids().get(1)!;
    process.kill(old, 'SIGKILL');
    const fresh1 = await waitFor(
      'worker 1 restarted',
      30_000,
      () => {
        const p = run.workerPids().get(1);
        return p !== undefined && p !== old ? p : undefined;
      },
      25,
    );
    expect(run.records().some((r) => r.message === 'worker exited unexpectedly; restarting' && r.pid === old && r.signal === 'SIGKILL')).toBe(true);
    await waitFor('config in the new worker', 30_000, () => run.records().some((r) => r.message === 'config snapshot swapped' && r.pid === fresh1), 25);
    const ids: string[] = [];
    for (let i = 0; i < 20; i++) ids.push(await health());
    const pids = new Set(await Promise.all(ids.map(servedBy)));
    expect(pids.has(fresh1)).toBe(true);
    expect(pids.has(old)).toBe(false);
    expect(metricSum(await scrape(), 'kea_policy_worker_restarts_total')).toBe(1);
  });

  test('SIGTERM: in-flight requests drain on every worker, the primary exits 0', async () => {
    // One slow request per worker (fresh connections alternate between the workers).
    const slow = [fresh('GET', '/iris/slow-ok'), fresh('GET', '/iris/slow-ok')];
    await waitFor('both slow requests in flight', 5000, () => backend.seen.filter((s) => s.url === '/slow').length >= 2, 25);
    run.child.kill('SIGTERM');
    const answers = await Promise.all(slow);
    expect(answers.map((a) => a.status)).toEqual([200, 200]);
    expect(await run.exited).toBe(0);
    const recs = run.records();
    expect(recs.filter((r) => r.message === 'shutdown complete').length).toBe(2);
    expect(recs.some((r) => r.message === 'all workers exited; primary exits' && r.forced === false)).toBe(true);
    const slowEnds = recs.filter((r) => r.message === 'request end' && r.path === '/iris/slow-ok');
    expect(new Set(slowEnds.map((r) => r.pid)).size).toBe(2);
    expect(slowEnds.every((r) => r.status === 200)).toBe(true);
  });
});

test('a worker that cannot start makes the primary give up with exit 1 (no endless restart loop)', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'kea-cluster-bad-'));
  try {
    await writeConfigDir(join(dir, 'cfg'), irisService());
    const run = startMain(['--workers', '2', ...policyServerArgs({ upstreamUrl: 'not a url', configDir: join(dir, 'cfg'), stateDir: join(dir, 'state') })], {
      KEA_OIDC_ISSUER: '',
    });
    expect(await run.exited).toBe(1);
    const recs = run.records();
    expect(recs.some((r) => r.message === 'worker keeps failing before it listens; giving up')).toBe(true);
    expect(recs.filter((r) => r.message === 'worker exited unexpectedly; restarting').length).toBeGreaterThanOrEqual(4);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}, 120_000);

describe('deployment wiring (kubectl kustomize)', () => {
  type Container = {
    name: string;
    env?: Array<{ name: string; value?: string }>;
    resources?: { limits?: { cpu?: string; memory?: string }; requests?: { cpu?: string } };
  };
  const policyContainer = (overlay: string): Container => {
    const docs = parseAllDocuments(execFileSync('kubectl', ['kustomize', join(REPO_ROOT, overlay)], { maxBuffer: 64 << 20 }).toString()).map(
      (d) => d.toJSON() as { kind: string; metadata: { name: string }; spec: { template: { spec: { containers: Container[] } } } },
    );
    const dep = docs.find((d) => d.kind === 'Deployment' && d.metadata.name === 'kea-policy')!;
    return dep.spec.template.spec.containers.find((c) => c.name === 'policy-server')!;
  };
  const workersEnv = (c: Container) => c.env?.filter((e) => e.name === 'KEA_POLICY_WORKERS').map((e) => e.value);

  test('base/dev run one process (no CPU reserved); prod follows its reserved CPU with auto and sizes memory for it', () => {
    expect(workersEnv(policyContainer('kustomize/overlays/dev'))).toEqual(['1']);
    const prod = policyContainer('kustomize/overlays/prod');
    expect(workersEnv(prod)).toEqual(['auto']);
    const cpus = Number(prod.resources?.limits?.cpu);
    expect(cpus).toBeGreaterThanOrEqual(2);
    expect(prod.resources?.requests?.cpu).toBe(prod.resources?.limits?.cpu); // workers need CPU the pod owns
    // Measured per worker under load ~290 MiB (+ the primary ~60 MiB): the limit must cover it.
    const mem = prod.resources!.limits!.memory!;
    const mib = mem.endsWith('Gi') ? Number(mem.slice(0, -2)) * 1024 : Number(mem.slice(0, -2));
    expect(mib).toBeGreaterThanOrEqual(64 + 300 * Math.floor(cpus));
  });
});
