/**
 * Support for the real-cluster suite (e2e/cluster/*.test.ts, `npm run test:cluster`, not part of
 * `npm test`): a running one-node cluster (dev/cluster.ts), reused when one is already up (a
 * warm run) or started here and stopped at the end; test images built with buildah and imported
 * into the node; kubectl; what the host looks like (to prove a stop restores it).
 * Test-only code; not part of the build (tsconfig.build.json excludes e2e/).
 */
import { execFile } from 'node:child_process';
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

/** Polls `check` every 250 ms. @throws Error naming `what` (and the last error seen) after `timeoutMs`. */
export async function waitFor<T>(what: string, timeoutMs: number, check: () => Promise<T | undefined | false>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    try {
      const v = await check();
      if (v) return v;
    } catch (e) {
      last = e instanceof Error ? e.message : String(e);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`${what}: not after ${timeoutMs} ms${last ? ` (last error: ${last})` : ''}`);
}

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
