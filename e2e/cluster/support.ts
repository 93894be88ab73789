/**
 * Support for the real-cluster suite (e2e/cluster/*.test.ts, run by scripts/test-cluster.sh in
 * `npm test` and by `npm run test:cluster`): a running one-node cluster (dev/cluster.ts), reused
 * when one is already up (the script starts one for all files) or started here and stopped at the
 * end; test images built with buildah and imported into the node; kubectl; tokens, requests and a
 * steady load through the gateway; what the host looks like (to prove a stop restores it).
 * Test-only code; not part of the build (tsconfig.build.json excludes e2e/).
 */
import { execFile } from 'node:child_process';
import { Agent, fetch as undiciFetch } from 'undici';
import { promisify } from 'node:util';
import { readFile, readdir, access } from 'node:fs/promises';
import { join } from 'node:path';
import { REPO_ROOT } from '../../dev/controlplane.js';
import {
  startCluster,
  stopCluster,
  readClusterInfo,
  clusterHealthy,
  importImages,
  kubectl as clusterKubectl,
  DEFAULT_CLUSTER_DIR,
  NODE_BRIDGE,
  CGROUP_ROOT,
  type ClusterInfo,
} from '../../dev/cluster.js';
import { TRACKED_SYSCTLS, FIXED_PATHS, parseMountinfo, cgroupMounts } from '../../dev/cluster-host.js';

const run = promisify(execFile);

/** Prints one measured number (stderr, so jest shows it live). */
export function measure(key: string, value: unknown): void {
  process.stderr.write(`[cluster-e2e] ${key} = ${typeof value === 'string' ? value : JSON.stringify(value)}\n`);
}

/** The cluster a test file uses; `stop()` stops it only if this file started it. */
export interface TestCluster {
  info: ClusterInfo;
  stateDir: string;
  /** Whether it was already running (nothing started here). */
  reused: boolean;
  /** kubectl with the cluster's admin kubeconfig. @throws Error with kubectl's stderr. */
  kubectl(args: string[], input?: string): Promise<string>;
  stop(): Promise<void>;
}

/** A healthy cluster of `stateDir` (default: the `npm run cluster` one), started when none runs. */
export async function ensureCluster(stateDir = DEFAULT_CLUSTER_DIR): Promise<TestCluster> {
  const t0 = Date.now();
  let info = await readClusterInfo(stateDir);
  const reused = await clusterHealthy(info);
  if (!reused) info = await startCluster({ stateDir, log: (l) => process.stderr.write(`[cluster] ${l}\n`) });
  measure(reused ? 'cluster reused (ms)' : `cluster started, ${info!.warm ? 'warm' : 'cold'} (ms)`, Date.now() - t0);
  return {
    info: info!,
    stateDir,
    reused,
    kubectl: (args, input) => clusterKubectl(stateDir, args, input),
    stop: async () => {
      if (!reused) await stopCluster(stateDir, (l) => process.stderr.write(`[cluster] ${l}\n`));
    },
  };
}

/**
 * Builds `ref` from `dockerfile` with `scripts/build-images.sh bud` (cached by its inputs) and
 * imports it into the node's containerd. @returns the time both took, ms.
 */
export async function buildAndImport(stateDir: string, ref: string, dockerfile: string, context: string, buildArgs: string[] = []): Promise<number> {
  const t0 = Date.now();
  await run('bash', [join(REPO_ROOT, 'scripts/build-images.sh'), 'bud', ref, dockerfile, context, ...buildArgs], { cwd: REPO_ROOT, maxBuffer: 16 << 20 });
  await importImages(stateDir, [ref]);
  return Date.now() - t0;
}

/** A client-credentials access token of the dev IdP's `kea-script-<role>` client (audience the gateway). @throws Error with the IdP's answer. */
export async function scriptToken(idpIssuer: string, role: 'student' | 'teacher' | 'admin', secret: string): Promise<string> {
  const r = await fetch(`${idpIssuer}/token`, {
    method: 'POST',
    headers: {
      authorization: `Basic ${Buffer.from(`kea-script-${role}:${secret}`).toString('base64')}`,
      'content-type': 'application/x-www-form-urlencoded',
    },
    body: new URLSearchParams({ grant_type: 'client_credentials', resource: 'urn:kea:gateway' }).toString(),
  });
  const body = (await r.json()) as { access_token?: string };
  if (!body.access_token) throw new Error(`token: ${r.status} ${JSON.stringify(body)}`);
  return body.access_token;
}

/** One answer: status, headers, body text. */
export interface Answer {
  status: number;
  headers: Headers;
  text: string;
}

/**
 * POSTs `body` as JSON to `url` (15 s timeout), on a kept-alive connection of the shared pool,
 * or with `fresh` on a new connection of its own (closed after the answer).
 */
export async function postJson(url: string, body: unknown, headers: Record<string, string> = {}, fresh = false): Promise<Answer> {
  const dispatcher = fresh ? new Agent({ pipelining: 0 }) : undefined;
  try {
    const r = await undiciFetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(15000),
      dispatcher,
    });
    return { status: r.status, headers: r.headers as unknown as Headers, text: await r.text() };
  } finally {
    await dispatcher?.close();
  }
}

/** What {@link startLoad} measured. */
export interface LoadResult {
  sent: number;
  ok: number;
  /** Every answer that was not `expected`, or failed to arrive: ms since the start and the status or error. */
  failures: Array<{ atMs: number; outcome: string }>;
  /**
   * Requests sent again once, on a new connection, because the gateway closed the kept-alive
   * connection they were sent on before answering (an nginx reload ends its old workers' idle
   * connections), as browsers do (RFC 9112 §9.3.1). Their second outcome is counted above.
   */
  retried: Array<{ atMs: number; cause: string }>;
  durationMs: number;
}

/** The low-level cause of a failed fetch (undici puts it in `cause`), e.g. `UND_ERR_SOCKET other side closed`. */
function causeOf(e: unknown): string {
  const c = (e as { cause?: { code?: string; message?: string } }).cause;
  return c ? `${c.code ?? ''} ${c.message ?? ''}`.trim() : e instanceof Error ? e.message : String(e);
}

/** A kept-alive connection closed under a request that got no answer: safe to send once more. */
export const CLOSED_BEFORE_ANSWER = /^(UND_ERR_SOCKET|ECONNRESET)\b/;

/**
 * Sends requests without pause from `concurrency` loops until `stop()`: a steady load during a
 * rollout, a pod deletion or a node restart. `send(fresh)` resolves to the answer's status (a
 * rejection counts as a failure with its cause, after one retry on a new connection (`fresh`)
 * when the connection was closed before any answer, see {@link LoadResult.retried}).
 */
export function startLoad(send: (fresh: boolean) => Promise<number>, concurrency = 4, expected = 200): { stop(): Promise<LoadResult> } {
  const t0 = Date.now();
  const res: LoadResult = { sent: 0, ok: 0, failures: [], retried: [], durationMs: 0 };
  let running = true;
  const once = (fresh: boolean) =>
    send(fresh).then(
      (s) => ({ outcome: String(s), closed: false }),
      (e: unknown) => ({ outcome: causeOf(e), closed: CLOSED_BEFORE_ANSWER.test(causeOf(e)) }),
    );
  const loop = async () => {
    while (running) {
      res.sent++;
      let r = await once(false);
      if (r.closed) {
        res.retried.push({ atMs: Date.now() - t0, cause: r.outcome });
        r = await once(true);
      }
      if (r.outcome === String(expected)) res.ok++;
      else res.failures.push({ atMs: Date.now() - t0, outcome: r.outcome });
    }
  };
  const loops = Array.from({ length: concurrency }, loop);
  return {
    stop: async () => {
      running = false;
      await Promise.all(loops);
      res.durationMs = Date.now() - t0;
      return res;
    },
  };
}

export { waitFor } from '../../dev/testing/wait.js';

/**
 * What a cluster changes on the host, as comparable text: the tracked sysctls, every iptables and
 * ip6tables table (chains and rules, counters dropped), the mount points and network links
 * (other KEA tests' `kea<N>` bridges, veths and namespaces left out: they come and go
 * concurrently), the fixed paths, the cgroup roots and the node's processes.
 */
export async function hostFacts(): Promise<Record<string, string[]>> {
  const sysctls = await Promise.all(TRACKED_SYSCTLS.map(async (s) => `${s}=${(await readFile(`/proc/sys/${s}`, 'utf8').catch(() => 'absent')).trim()}`));
  const tables = async (fam: string) =>
    (
      await run(`${fam}-save`, [], { maxBuffer: 64 << 20 }).then(
        (r) => r.stdout,
        () => '',
      )
    )
      .split('\n')
      .filter((l) => l && !l.startsWith('#'))
      .map((l) => l.replace(/ \[\d+:\d+\]$/, ''));
  const others = /^(kea\d+|kea\d+h\d+|veth\w+)$|^\/run\/netns\/kea/;
  const mounts = parseMountinfo(await readFile('/proc/self/mountinfo', 'utf8'))
    .map((m) => m.mountPoint)
    .filter((m) => !others.test(m))
    .sort();
  const links = (await readdir('/sys/class/net')).filter((l) => !others.test(l)).sort();
  const paths = await Promise.all(
    FIXED_PATHS.map(
      async (f) =>
        `${f.path} ${await access(f.path).then(
          () => 'present',
          () => 'absent',
        )}`,
    ),
  );
  const cgroups = await Promise.all(
    (await cgroupMounts()).map(
      async (m) =>
        `${m}/${CGROUP_ROOT} ${await access(join(m, CGROUP_ROOT)).then(
          () => 'present',
          () => 'absent',
        )}`,
    ),
  );
  const procs: string[] = [];
  for (const d of await readdir('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    const argv0 = (await readFile(`/proc/${d}/cmdline`, 'utf8').catch(() => '')).split('\0')[0].split('/').pop() ?? '';
    if (/^(kubelet|kube-proxy|kube-scheduler|kube-controller-manager|containerd|containerd-shim-runc-v2|coredns|pause)(-v[\d.]+)?$/.test(argv0))
      procs.push(argv0);
  }
  return { sysctls, iptables: await tables('iptables'), ip6tables: await tables('ip6tables'), mounts, links, paths, cgroups, processes: procs.sort() };
}

export { NODE_BRIDGE };
