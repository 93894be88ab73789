/**
 * Helpers for the controller's integration tests and the scale benchmark (real API server):
 * spawn the built controller (`dist/controller/main.js`) as a child process, apply fixtures
 * with server-side apply, wait for conditions, and count writes by watching every kind KEA
 * writes (an ADDED/MODIFIED/DELETED watch event is a persisted write: the API server skips
 * no-op writes without bumping resourceVersion).
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { promisify } from 'node:util';
import { readFile, stat, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { KubernetesObject } from '@kubernetes/client-node';
import { parseAllDocuments } from 'yaml';
import { KubeClient, KubeError, RESOURCES, type ResourceRef } from '../kube/client.js';

const run = promisify(execFile);

/** Parses a multi-document YAML string into objects (empty documents dropped). */
export function parseYaml(text: string): KubernetesObject[] {
  return parseAllDocuments(text)
    .map((d) => d.toJS() as KubernetesObject | null)
    .filter((o): o is KubernetesObject => !!o && typeof o === 'object');
}

/** Server-side applies objects as field manager `kea-test`, setting `namespace` where missing. */
export async function applyAll(client: KubeClient, objs: KubernetesObject[], namespace?: string): Promise<KubernetesObject[]> {
  const out: KubernetesObject[] = [];
  for (const o of objs) {
    const c = structuredClone(o);
    const ref = await client.resource(c.apiVersion!, c.kind!);
    if (ref.namespaced && !c.metadata?.namespace && namespace) c.metadata = { ...c.metadata, namespace };
    out.push(await client.apply(c, 'kea-test'));
  }
  return out;
}

/** Creates namespaces (ignores AlreadyExists). */
export async function ensureNamespaces(client: KubeClient, ...names: string[]): Promise<void> {
  for (const name of names) {
    try {
      await client.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name } });
    } catch (err) {
      if (!(err instanceof KubeError && err.statusCode === 409)) throw err;
    }
  }
}

/** Newest mtime (ms) of the .ts files under `dirs`. */
async function newestSource(dirs: string[]): Promise<number> {
  let newest = 0;
  const walk = async (d: string): Promise<void> => {
    let entries;
    try {
      entries = await readdir(d, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      const p = join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else if (e.name.endsWith('.ts') && !e.name.endsWith('.test.ts')) newest = Math.max(newest, (await stat(p)).mtimeMs);
    }
  };
  for (const d of dirs) await walk(d);
  return newest;
}

/**
 * Builds `dist/` with `tsc -p tsconfig.build.json` when `dist/controller/main.js` is older
 * than any controller/lib source. Type errors elsewhere do not stop tsc from emitting.
 */
export async function ensureBuilt(repoRoot: string): Promise<void> {
  const main = join(repoRoot, 'dist', 'controller', 'main.js');
  const built = await stat(main).then(
    (s) => s.mtimeMs,
    () => 0,
  );
  const src = await newestSource([join(repoRoot, 'controller'), join(repoRoot, 'lib')]);
  if (built >= src) return;
  await run(join(repoRoot, 'node_modules', '.bin', 'tsc'), ['-p', 'tsconfig.build.json'], { cwd: repoRoot, maxBuffer: 64 << 20 }).catch(() => {
    /* tsc exits non-zero on type errors but still emits */
  });
  await stat(main);
}

/** A controller child process. */
export interface ControllerProcess {
  proc: ChildProcess;
  /** Health/metrics port (from the `controller started` log record). */
  port: number;
  identity: string;
  /** Parsed JSON log records so far. */
  logs: Array<Record<string, unknown>>;
  /** GET a path on the health server; resolves to status and parsed body. */
  http(path: string): Promise<{ status: number; body: string }>;
  /** Sends a signal and waits for exit. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
  /** Resolves with the first log record matching `pred`. */
  waitForLog(pred: (r: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>;
  /** Current RSS of the child in bytes (from /proc). */
  rss(): Promise<number>;
  /** Highest RSS the child has had so far, in bytes (VmHWM, from /proc): catches peaks a sampler misses. */
  rssHighWater(): Promise<number>;
}

/**
 * Sum of the values of a controller's Prometheus lines (`GET /metrics`) that start with
 * `prefix`, e.g. `kea_controller_writes_total{` for a counter over all its labels; 0 when none.
 */
export async function metricSum(p: ControllerProcess, prefix: string): Promise<number> {
  const { body } = await p.http('/metrics');
  return body
    .split('\n')
    .filter((l) => l.startsWith(prefix))
    .reduce((s, l) => s + Number(l.split(' ').pop()), 0);
}

export interface SpawnOptions {
  repoRoot: string;
  kubeconfig: string;
  identity: string;
  /** Extra controller flags. */
  args?: string[];
  /** Flags for node itself (e.g. `--max-old-space-size=96`). */
  nodeArgs?: string[];
  env?: NodeJS.ProcessEnv;
  /** Echo the child's stderr (default false). */
  echo?: boolean;
}

/** Spawns `node dist/controller/main.js` with test-friendly flags and waits for its port. */
export async function spawnController(o: SpawnOptions): Promise<ControllerProcess> {
  const node = join(o.repoRoot, 'node_modules', '.bin', 'node');
  const args = [
    ...(o.nodeArgs ?? []),
    join(o.repoRoot, 'dist', 'controller', 'main.js'),
    `--kubeconfig=${o.kubeconfig}`,
    '--http-port=0',
    '--http-host=127.0.0.1',
    `--identity=${o.identity}`,
    '--internal-token=test-internal-token',
    ...(o.args ?? []),
  ];
  const proc = spawn(node, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, KEA_LOG_LEVEL: 'info', ...o.env } });
  const logs: Array<Record<string, unknown>> = [];
  const waiters: Array<{ pred: (r: Record<string, unknown>) => boolean; resolve: (r: Record<string, unknown>) => void }> = [];
  let buf = '';
  proc.stdout.setEncoding('utf8');
  proc.stdout.on('data', (chunk: string) => {
    buf += chunk;
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      let rec: Record<string, unknown>;
      try {
        rec = JSON.parse(line);
      } catch {
        rec = { message: line };
      }
      logs.push(rec);
      for (const w of [...waiters]) {
        if (w.pred(rec)) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(rec);
        }
      }
    }
  });
  let stderr = '';
  proc.stderr.setEncoding('utf8');
  proc.stderr.on('data', (c: string) => {
    stderr += c;
    if (o.echo) process.stderr.write(c);
  });
  const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
  const waitForLog = (pred: (r: Record<string, unknown>) => boolean, timeoutMs = 30_000) => {
    const found = logs.find(pred);
    if (found) return Promise.resolve(found);
    return new Promise<Record<string, unknown>>((resolve, reject) => {
      const t = setTimeout(
        () => reject(new Error(`log record not seen in ${timeoutMs} ms; stderr: ${stderr.slice(-2000)}; last logs: ${JSON.stringify(logs.slice(-5))}`)),
        timeoutMs,
      );
      waiters.push({ pred, resolve: (r) => (clearTimeout(t), resolve(r)) });
      void exited.then((code) => {
        clearTimeout(t);
        reject(new Error(`controller exited (${code}) before the log record; stderr: ${stderr.slice(-2000)}`));
      });
    });
  };
  const started = await waitForLog((r) => r.message === 'controller started', 30_000);
  const port = Number(started.port);
  return {
    proc,
    port,
    identity: o.identity,
    logs,
    waitForLog,
    async http(path) {
      const res = await fetch(`http://127.0.0.1:${port}${path}`);
      return { status: res.status, body: await res.text() };
    },
    async stop(signal = 'SIGTERM') {
      if (proc.exitCode !== null || proc.signalCode !== null) return proc.exitCode;
      proc.kill(signal);
      return exited;
    },
    async rss() {
      const s = await readFile(`/proc/${proc.pid}/status`, 'utf8');
      const m = /VmRSS:\s+(\d+) kB/.exec(s);
      return m ? Number(m[1]) * 1024 : 0;
    },
    async rssHighWater() {
      const s = await readFile(`/proc/${proc.pid}/status`, 'utf8');
      const m = /VmHWM:\s+(\d+) kB/.exec(s);
      return m ? Number(m[1]) * 1024 : 0;
    },
  };
}

/** Kinds KEA writes (objects and status), watched by {@link WriteCounter}. */
export const WRITTEN_KINDS: ResourceRef[] = [
  RESOURCES['gateway.networking.k8s.io/v1/HTTPRoute'],
  RESOURCES['gateway.networking.k8s.io/v1beta1/ReferenceGrant'],
  RESOURCES['apps/v1/Deployment'],
  RESOURCES['v1/Service'],
  RESOURCES['v1/ConfigMap'],
  RESOURCES['kea.dev/v1alpha1/ApiSchema'],
  RESOURCES['kea.dev/v1alpha1/MLService'],
];

/** One observed write. */
export interface ObservedWrite {
  type: string;
  kind: string;
  namespace?: string;
  name?: string;
  resourceVersion?: string;
  /** `manager/operation[/subresource]` of the managedFields entry with the newest time. */
  latestManager?: string;
  /** Every managedFields entry, same format. */
  managers: string[];
}

/**
 * Watches every kind in {@link WRITTEN_KINDS} (all namespaces) from "now" (the list's
 * resourceVersion) and records each ADDED/MODIFIED/DELETED event.
 */
export class WriteCounter {
  readonly writes: ObservedWrite[] = [];
  private aborts: AbortController[] = [];
  private readonly client: KubeClient;

  constructor(client: KubeClient) {
    this.client = client;
  }

  async start(kinds: ResourceRef[] = WRITTEN_KINDS): Promise<void> {
    for (const ref of kinds) {
      const list = await this.client.request<{ metadata: { resourceVersion: string } }>('GET', this.client.collectionPath(ref), { query: { limit: 1 } });
      const ac = await this.client.watch(
        this.client.collectionPath(ref),
        { resourceVersion: list.metadata.resourceVersion },
        (type: string, obj: KubernetesObject) => {
          if (type !== 'ADDED' && type !== 'MODIFIED' && type !== 'DELETED') return;
          const fmt = (f: { manager?: string; operation?: string; subresource?: string }) =>
            `${f.manager}/${f.operation}${f.subresource ? `/${f.subresource}` : ''}`;
          const mf = [...(obj.metadata?.managedFields ?? [])].sort((a, b) => String(b.time ?? '').localeCompare(String(a.time ?? '')));
          this.writes.push({
            type,
            kind: ref.kind,
            namespace: obj.metadata?.namespace,
            name: obj.metadata?.name,
            resourceVersion: obj.metadata?.resourceVersion,
            latestManager: mf[0] ? fmt(mf[0]) : undefined,
            managers: mf.map(fmt),
          });
        },
        () => {},
      );
      this.aborts.push(ac);
    }
  }

  stop(): void {
    for (const a of this.aborts) a.abort();
    this.aborts = [];
  }
}

/** Counts writes to KEA's kinds during `ms` milliseconds. */
export async function countWrites(client: KubeClient, ms: number): Promise<ObservedWrite[]> {
  const c = new WriteCounter(client);
  await c.start();
  await new Promise((r) => setTimeout(r, ms));
  c.stop();
  return c.writes;
}
