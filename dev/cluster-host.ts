/**
 * The host side of the one-node cluster (dev/cluster.ts): what a kubelet, containerd, the CNI
 * bridge plugin and kube-proxy change on the machine, recorded before the node starts and put back
 * when it stops (field notes §7, "Host side effects to undo on stop").
 *
 *   sysctls     {@link TRACKED_SYSCTLS}: the kubelet sets kernel.panic, kernel.panic_on_oops,
 *               vm.overcommit_memory, vm.panic_on_oom and the root key quotas
 *               (pkg/kubelet/cm setupKernelTunables); the bridge plugin sets ip_forward; kube-proxy
 *               may set route_localnet and conntrack limits (all switched off in its configuration,
 *               tracked anyway).
 *   iptables    chains named KUBE-* (kubelet canaries, kube-proxy) and CNI-* (bridge `ipMasq`,
 *               portmap) in every table of iptables and ip6tables, and the rules of other chains
 *               that jump to them. Only chains that did not exist before the start are removed;
 *               then the tables iptables-nft created on first use (`ip nat`, ...) if empty.
 *   paths       {@link FIXED_PATHS}: folders the components create at fixed places whatever their
 *               configuration says. Each is removed on stop when the start found it missing
 *               (the highest missing ancestor goes), or, for shared folders such as /run/netns,
 *               only when it is empty.
 *   mounts      everything mounted under the state dir, /run/containerd, /var/lib/kubelet and the
 *               pod network namespaces /run/netns/cni-* (unmounted, deepest first).
 *   cgroups     the kubelet's `cgroupRoot` (`/<name>`), created by hand in every mounted cgroup
 *               hierarchy (v1 hybrid: no systemd, field notes §7) and removed depth-first on stop.
 *
 * The parsing and planning functions are pure and unit-tested (dev/cluster-host.test.ts); the
 * others read or write the host (root only).
 */
import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import { readFile, writeFile, readdir, rm, rmdir, mkdir, access, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';

const run = promisify(execFile);

/** sysctls (paths under /proc/sys) the node may change; their values are restored on stop. */
export const TRACKED_SYSCTLS = [
  'kernel/panic',
  'kernel/panic_on_oops',
  'kernel/keys/root_maxkeys',
  'kernel/keys/root_maxbytes',
  'vm/overcommit_memory',
  'vm/panic_on_oom',
  'net/ipv4/ip_forward',
  'net/ipv6/conf/all/forwarding',
  'net/ipv4/conf/all/route_localnet',
  'net/bridge/bridge-nf-call-iptables',
  'net/bridge/bridge-nf-call-ip6tables',
  'net/netfilter/nf_conntrack_max',
  'net/netfilter/nf_conntrack_tcp_timeout_established',
  'net/netfilter/nf_conntrack_tcp_timeout_close_wait',
  'net/netfilter/nf_conntrack_tcp_be_liberal',
] as const;

/**
 * Fixed paths written by the node's components whatever their configuration (field notes §7):
 * `tree` ones are removed with their content when the start found them missing; `ifEmpty` ones
 * (shared with other programs: `ip netns` uses /run/netns) only when empty by then.
 */
export const FIXED_PATHS: ReadonlyArray<{ path: string; remove: 'tree' | 'ifEmpty' }> = [
  { path: '/run/containerd', remove: 'tree' }, // shim sockets (/run/containerd/s), containerd 1.6
  { path: '/run/runc', remove: 'tree' },
  { path: '/run/netns', remove: 'ifEmpty' }, // pod network namespaces cni-<uuid> (removed one by one first)
  { path: '/var/lib/kubelet', remove: 'tree' }, // device-plugins/ (pluginapi.DevicePluginPath), whatever --root-dir says
  { path: '/var/log/containers', remove: 'tree' }, // the kubelet's symlinks to container logs
  { path: '/var/log/pods', remove: 'tree' },
  { path: '/var/lib/cni', remove: 'tree' }, // libcni's result cache
  { path: '/etc/cni/net.d/cni.lock', remove: 'tree' },
  { path: '/etc/cni/net.d', remove: 'ifEmpty' },
  { path: '/var/lib/containers', remove: 'tree' },
  { path: '/var/lib/containerd', remove: 'tree' },
  { path: '/usr/libexec/kubernetes', remove: 'tree' }, // flex volume dirs (kept out by flags; checked anyway)
  { path: '/opt/cni', remove: 'tree' },
];

/** Chain name prefixes owned by the node (kubelet, kube-proxy, CNI plugins). */
export const OWNED_CHAIN = /^(KUBE|CNI)-/;

/** One table of `iptables-save` output. */
export interface SavedTable {
  name: string;
  /** Every chain, built-in or not. */
  chains: string[];
  /** `-A CHAIN ...` lines, as printed. */
  rules: string[];
}

/** Parses `iptables-save` / `ip6tables-save` output into tables (comments and counters ignored). */
export function parseIptablesSave(text: string): SavedTable[] {
  const tables: SavedTable[] = [];
  let cur: SavedTable | undefined;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line.startsWith('*')) tables.push((cur = { name: line.slice(1), chains: [], rules: [] }));
    else if (cur && line.startsWith(':')) cur.chains.push(line.slice(1).split(' ')[0]);
    else if (cur && line.startsWith('-A ')) cur.rules.push(line);
  }
  return tables;
}

/** Chains per family (`iptables`, `ip6tables`) and table. */
export type ChainSnapshot = Record<string, Record<string, string[]>>;

/** The chain a rule jumps or goes to (`-j X` / `-g X`), if any. */
export function ruleTarget(rule: string): string | undefined {
  const m = / -[jg] (\S+)/.exec(rule);
  return m?.[1];
}

/**
 * Pure: the `iptables-restore --noflush` input that removes, from one table, the owned chains
 * ({@link OWNED_CHAIN}) absent from `before`, and the rules of the remaining chains that jump to
 * them. Empty string when there is nothing to remove.
 */
export function iptablesCleanupPlan(table: SavedTable, before: string[] | undefined): string {
  const existed = new Set(before ?? []);
  const ours = new Set(table.chains.filter((c) => OWNED_CHAIN.test(c) && !existed.has(c)));
  if (!ours.size) return '';
  const lines = [`*${table.name}`];
  for (const rule of table.rules) {
    const chain = rule.split(' ')[1];
    const target = ruleTarget(rule);
    if (!ours.has(chain) && target && ours.has(target)) lines.push(`-D${rule.slice(2)}`);
  }
  for (const c of ours) lines.push(`-F ${c}`);
  for (const c of ours) lines.push(`-X ${c}`);
  lines.push('COMMIT', '');
  return lines.join('\n');
}

/** One line of /proc/self/mountinfo that matters here. */
export interface MountEntry {
  mountPoint: string;
  fsType: string;
}

/** Parses /proc/self/mountinfo (octal escapes such as `\040` decoded). */
export function parseMountinfo(text: string): MountEntry[] {
  const unescape = (s: string) => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
  return text
    .split('\n')
    .filter(Boolean)
    .map((l) => {
      const f = l.split(' ');
      const sep = f.indexOf('-');
      return { mountPoint: unescape(f[4]), fsType: f[sep + 1] ?? '' };
    });
}

/**
 * Pure: the mount points to unmount, deepest first: those at or under one of `roots` (a root
 * ending in `-`, such as `/run/netns/cni-`, matches by prefix). Each appears once per mount
 * (stacked mounts repeat).
 */
export function mountsUnder(mounts: MountEntry[], roots: string[]): string[] {
  const hit = (p: string) => roots.some((r) => (r.endsWith('-') ? p.startsWith(r) : p === r || p.startsWith(`${r}/`)));
  return mounts
    .map((m) => m.mountPoint)
    .filter(hit)
    .sort((a, b) => b.split('/').length - a.split('/').length || b.length - a.length);
}

/** What the host looked like before the node started (`<stateDir>/host.json`). */
export interface HostSnapshot {
  takenAt: string;
  /** sysctl path → value; null when the file does not exist. */
  sysctls: Record<string, string | null>;
  /** Fixed path → the highest ancestor that was missing (to remove on stop), or null when it existed. */
  missing: Record<string, string | null>;
  chains: ChainSnapshot;
  /** cgroup folders created for the kubelet's cgroupRoot (one per hierarchy). */
  cgroups: string[];
}

async function exists(p: string): Promise<boolean> {
  try {
    await access(p);
    return true;
  } catch {
    return false;
  }
}

/** The highest missing ancestor of `p` (p itself when only p is missing), or null when `p` exists. */
export async function highestMissing(p: string): Promise<string | null> {
  if (await exists(p)) return null;
  let cur = p;
  while (dirname(cur) !== cur && !(await exists(dirname(cur)))) cur = dirname(cur);
  return cur;
}

/** Current `iptables-save` chains per table, for iptables and ip6tables (a missing tool counts as no chains). */
export async function snapshotChains(): Promise<ChainSnapshot> {
  const out: ChainSnapshot = {};
  for (const fam of ['iptables', 'ip6tables']) {
    out[fam] = {};
    const text = await run(`${fam}-save`, [], { maxBuffer: 64 << 20 }).then(
      (r) => r.stdout,
      () => '',
    );
    for (const t of parseIptablesSave(text)) out[fam][t.name] = t.chains;
  }
  return out;
}

/** Mount points of every cgroup hierarchy (v1 controllers, named hierarchies and the v2 `unified`). */
export async function cgroupMounts(): Promise<string[]> {
  const mounts = parseMountinfo(await readFile('/proc/self/mountinfo', 'utf8'));
  return mounts.filter((m) => m.fsType === 'cgroup' || m.fsType === 'cgroup2').map((m) => m.mountPoint);
}

/**
 * Records the host's state before the node starts (see {@link HostSnapshot}) and creates the
 * kubelet's `cgroupRoot` `/<cgroupName>` in each hierarchy (cpuset's gets its parent's cpus and
 * mems, which a new cpuset cgroup lacks).
 */
export async function snapshotHost(cgroupName: string): Promise<HostSnapshot> {
  const sysctls: Record<string, string | null> = {};
  for (const s of TRACKED_SYSCTLS)
    sysctls[s] = await readFile(`/proc/sys/${s}`, 'utf8').then(
      (v) => v.trim(),
      () => null,
    );
  const missing: Record<string, string | null> = {};
  for (const f of FIXED_PATHS) missing[f.path] = await highestMissing(f.path);
  const cgroups: string[] = [];
  for (const m of await cgroupMounts()) {
    const dir = join(m, cgroupName);
    if (!(await exists(dir))) cgroups.push(dir);
  }
  return { takenAt: new Date().toISOString(), sysctls, missing, chains: await snapshotChains(), cgroups };
}

/** Creates the cgroup folders of the snapshot (idempotent). */
export async function createCgroups(dirs: string[]): Promise<void> {
  for (const dir of dirs) {
    await mkdir(dir, { recursive: true });
    if (/\/cpuset\//.test(dir)) {
      for (const f of ['cpuset.cpus', 'cpuset.mems']) {
        const cur = await readFile(join(dir, f), 'utf8').catch(() => '');
        if (!cur.trim()) await writeFile(join(dir, f), await readFile(join(dirname(dir), f), 'utf8'));
      }
    }
  }
}

/** Pids in `dir` and every cgroup below it. */
export async function cgroupPids(dir: string): Promise<number[]> {
  const out: number[] = [];
  const walk = async (d: string) => {
    const procs = await readFile(join(d, 'cgroup.procs'), 'utf8').catch(() => '');
    for (const l of procs.split('\n')) if (l.trim()) out.push(Number(l));
    for (const e of await readdir(d, { withFileTypes: true }).catch(() => [])) if (e.isDirectory()) await walk(join(d, e.name));
  };
  await walk(dir);
  return [...new Set(out)];
}

/** Removes a cgroup folder and its children, deepest first (cgroup folders are removed with rmdir). */
export async function removeCgroupTree(dir: string): Promise<void> {
  for (const e of await readdir(dir, { withFileTypes: true }).catch(() => [])) if (e.isDirectory()) await removeCgroupTree(join(dir, e.name));
  await rmdir(dir).catch((e: NodeJS.ErrnoException) => {
    if (e.code !== 'ENOENT') throw e;
  });
}

/** Feeds `input` to `iptables-restore --noflush` (or ip6tables-restore). @throws Error with its stderr. */
async function restore(fam: string, input: string): Promise<void> {
  await new Promise<void>((res, rej) => {
    const p = spawn(`${fam}-restore`, ['--noflush'], { stdio: ['pipe', 'ignore', 'pipe'] });
    let err = '';
    p.stderr.on('data', (d: Buffer) => (err += d.toString()));
    p.on('error', rej);
    p.on('exit', (code) => (code === 0 ? res() : rej(new Error(`${fam}-restore: exit ${code}: ${err.trim()}\ninput:\n${input}`))));
    p.stdin.end(input);
  });
}

/** Removes the owned chains created since `before` (see {@link iptablesCleanupPlan}) in every table of both families. */
export async function cleanupChains(before: ChainSnapshot, log: (l: string) => void): Promise<void> {
  for (const fam of ['iptables', 'ip6tables']) {
    const text = await run(`${fam}-save`, [], { maxBuffer: 64 << 20 }).then(
      (r) => r.stdout,
      () => '',
    );
    for (const t of parseIptablesSave(text)) {
      const plan = iptablesCleanupPlan(t, before[fam]?.[t.name]);
      if (!plan) continue;
      const n = plan.split('\n').filter((l) => l.startsWith('-X ')).length;
      log(`${fam} -t ${t.name}: removing ${n} chain(s)`);
      await restore(fam, plan);
    }
  }
}

/** The nftables family of an iptables command (iptables-nft keeps its tables there). */
const NFT_FAMILY: Record<string, string> = { iptables: 'ip', ip6tables: 'ip6' };

/**
 * Pure: the tables to drop after the chain cleanup: absent from `before`, and now holding no rule
 * and only built-in chains (iptables-nft creates a whole table, e.g. `ip nat`, on first use and
 * never removes it).
 */
export function createdEmptyTables(now: SavedTable[], before: Record<string, string[]> | undefined): string[] {
  const builtin = /^(PREROUTING|INPUT|FORWARD|OUTPUT|POSTROUTING)$/;
  return now.filter((t) => !(before && t.name in before) && !t.rules.length && t.chains.every((c) => builtin.test(c))).map((t) => t.name);
}

/** Drops the empty tables the node created (see {@link createdEmptyTables}) with `nft`; logs when nft is missing. */
export async function dropCreatedTables(before: ChainSnapshot, log: (l: string) => void): Promise<void> {
  for (const fam of ['iptables', 'ip6tables']) {
    const text = await run(`${fam}-save`, [], { maxBuffer: 64 << 20 }).then(
      (r) => r.stdout,
      () => '',
    );
    for (const t of createdEmptyTables(parseIptablesSave(text), before[fam])) {
      await run('nft', ['delete', 'table', NFT_FAMILY[fam], t]).then(
        () => log(`dropped the empty table ${NFT_FAMILY[fam]} ${t}`),
        (e: { stderr?: string; message: string }) => log(`nft delete table ${NFT_FAMILY[fam]} ${t}: ${(e.stderr ?? e.message).trim()}`),
      );
    }
  }
}

/** Unmounts every mount at or under `roots` (see {@link mountsUnder}), lazily when a plain umount fails. */
export async function unmountUnder(roots: string[], log: (l: string) => void): Promise<number> {
  let count = 0;
  // Stacked mounts and propagation can surface new entries: a few passes.
  for (let pass = 0; pass < 5; pass++) {
    const points = mountsUnder(parseMountinfo(await readFile('/proc/self/mountinfo', 'utf8')), roots);
    if (!points.length) break;
    for (const p of points) {
      try {
        await run('umount', [p]);
      } catch {
        await run('umount', ['-l', p]).catch((e: { stderr?: string }) => log(`umount -l ${p}: ${e.stderr?.trim() ?? e}`));
      }
      count++;
    }
  }
  return count;
}

/** Writes back every tracked sysctl whose value changed since the snapshot. */
export async function restoreSysctls(snap: HostSnapshot, log: (l: string) => void): Promise<void> {
  for (const [s, v] of Object.entries(snap.sysctls)) {
    if (v === null) continue;
    const cur = await readFile(`/proc/sys/${s}`, 'utf8').then(
      (x) => x.trim(),
      () => null,
    );
    if (cur !== null && cur !== v) {
      await writeFile(`/proc/sys/${s}`, v).then(
        () => log(`sysctl ${s.replace(/\//g, '.')}: ${cur} -> ${v}`),
        (e: Error) => log(`sysctl ${s}: cannot restore ${v}: ${e.message}`),
      );
    }
  }
}

/** Removes the fixed paths the start found missing (see {@link FIXED_PATHS}). */
export async function removeCreatedPaths(snap: HostSnapshot, log: (l: string) => void): Promise<void> {
  for (const f of FIXED_PATHS) {
    const top = snap.missing[f.path];
    if (!top || !(await exists(top))) continue;
    if (f.remove === 'ifEmpty') {
      const st = await stat(top);
      if (st.isDirectory() && (await readdir(top)).length) {
        log(`${top}: not empty, left in place`);
        continue;
      }
    }
    await rm(top, { recursive: true, force: true });
    log(`removed ${top}`);
  }
}
