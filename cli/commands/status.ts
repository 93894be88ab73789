/**
 * `kea status`: what the local stack of a state dir runs: each component (the `kea up`
 * supervisor, etcd, kube-apiserver, nginx and NGF, Redis, the dev IdP, each policy-server
 * replica, the controller, every local pod), its pid, whether it is alive, where it listens
 * (Redis, the policy-server replicas) and where its log is. Reads
 * `<stateDir>/stack.json` (dev/stack.ts) and `<stateDir>/supervisor.json` (cli/detach.ts);
 * changes nothing.
 * Output: a table, or the StackStatus object with `--json`.
 * Exit status (for scripts, like `systemctl status`): 0 running with every component alive;
 * 1 degraded (a component is not alive), the detached start failed, or a dead stack left its
 * records (`kea down` cleans up); 2 starting or stopping; 3 no stack.
 */
import { readdir, readFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { readStackInfo, DEFAULT_STATE_DIR, type StackInfo } from '../../dev/stack.js';
import { listNetns, netnsPids } from '../../dev/netns.js';
import { alive, readSupervisorState, supervisorLog } from '../detach.js';

/** One running (or expected) process of the stack. */
export interface ComponentStatus {
  name: string;
  /** Pids (several for a pod's namespace); empty when none was found. */
  pids: number[];
  alive: boolean;
  /** Where it listens, when the stack recorded it (e.g. `redis://10.213.0.1:6379`, `10.213.0.254:8000 (admin 127.0.0.1:41234)`). */
  listen?: string;
  /** Log file or folder; undefined when it goes to the terminal of a foreground `kea up`. */
  log?: string;
}

/** What `kea status` reports. */
export interface StackStatus {
  stateDir: string;
  /** `stopped`: nothing recorded; `dead`: records left by a stack whose owner is gone. */
  state: 'running' | 'degraded' | 'starting' | 'stopping' | 'failed' | 'dead' | 'stopped';
  /** How the stack runs: a detached supervisor (`kea up --detach`) or a foreground `kea up`. */
  mode?: 'detached' | 'foreground';
  ownerPid?: number;
  startedAt?: string;
  gatewayUrl?: string;
  docsUrl?: string;
  kubeconfig?: string;
  bridge?: string;
  /** Why a detached start failed. */
  error?: string;
  components: ComponentStatus[];
}

async function cmdline(pid: number): Promise<string> {
  return (await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')).replace(/\0/g, ' ');
}

/** Pids of program `prog` (argv[0] basename, version suffix allowed) whose command line mentions `needle`. */
async function findPids(prog: string, needle: string): Promise<number[]> {
  const out: number[] = [];
  for (const d of await readdir('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    const cl = await cmdline(Number(d));
    const name = (cl.split(' ')[0] ?? '').split('/').pop() ?? '';
    if ((name === prog || name.startsWith(`${prog}-v`)) && cl.includes(needle)) out.push(Number(d));
  }
  return out;
}

/** The log of a recorded child: `logs/<name>.log`, or the gateway's own folder (nginx and NGF). */
function childLog(stateDir: string, name: string): string | undefined {
  const candidates = [
    join(stateDir, 'logs', `${name}.log`),
    join(stateDir, 'gateway', `${name}.log`),
    ...(name === 'gateway' ? [join(stateDir, 'gateway', 'nginx.log')] : []),
  ];
  return candidates.find((f) => existsSync(f));
}

/** The host children the stack recorded (name → pid), with where they listen and log. */
function childComponents(stateDir: string, info: StackInfo): ComponentStatus[] {
  return Object.entries(info.children).map(([name, pid]) => {
    const listen = info.endpoints?.[name];
    return {
      name: name === 'gateway' ? 'gateway (nginx)' : name,
      pids: [pid],
      alive: alive(pid),
      ...(listen ? { listen } : {}),
      log: childLog(stateDir, name),
    };
  });
}

/** Collects the status of the stack recorded in `stateDir` (see the module comment). */
export async function stackStatus(stateDirIn = DEFAULT_STATE_DIR): Promise<StackStatus> {
  const stateDir = resolve(stateDirIn);
  const sup = await readSupervisorState(stateDir);
  const info = await readStackInfo(stateDir);
  if (!sup && !info) return { stateDir, state: 'stopped', components: [] };
  const ownerPid = info?.ownerPid ?? sup?.pid;
  const detached = !!sup && sup.pid === ownerPid;
  const status: StackStatus = {
    stateDir,
    state: 'running',
    mode: detached ? 'detached' : 'foreground',
    ownerPid,
    startedAt: info?.startedAt ?? sup?.startedAt,
    gatewayUrl: info?.gatewayUrl,
    docsUrl: info?.docsUrl,
    kubeconfig: info?.kubeconfig,
    bridge: info?.bridge,
    components: [],
  };
  if (sup?.state === 'failed')
    return { ...status, state: 'failed', error: sup.error, components: [{ name: 'kea up', pids: [sup.pid], alive: alive(sup.pid), log: sup.log }] };

  const c = status.components;
  c.push({ name: 'kea up', pids: ownerPid ? [ownerPid] : [], alive: alive(ownerPid), log: detached ? supervisorLog(stateDir) : undefined });
  if (info?.controlPlaneDir) {
    for (const prog of ['etcd', 'kube-apiserver']) {
      const pids = await findPids(prog, info.controlPlaneDir);
      c.push({ name: prog, pids, alive: pids.length > 0, log: join(info.controlPlaneDir, `${prog}.log`) });
    }
  }
  if (info) c.push(...childComponents(stateDir, info));
  if (info?.bridge) {
    const index = Number(info.bridge.replace(/^kea/, '')) || 0;
    for (const ns of await listNetns({ name: info.bridge, index, hostAddress: `10.213.${index}.1` }).catch(() => [])) {
      const pids = await netnsPids(ns);
      c.push({ name: `pod ${ns.slice(info.bridge.length + 1)}`, pids, alive: pids.length > 0, log: join(stateDir, 'logs', 'pods') });
    }
  }

  if (!alive(ownerPid)) status.state = 'dead';
  else if (sup && detached && (sup.state === 'starting' || sup.state === 'stopping')) status.state = sup.state;
  else if (!detached && info && info.totalMs === undefined) status.state = 'starting';
  else if (c.some((x) => !x.alive)) status.state = 'degraded';
  return status;
}

const EXIT: Record<StackStatus['state'], number> = { running: 0, degraded: 1, failed: 1, dead: 1, starting: 2, stopping: 2, stopped: 3 };

/** The human-readable report. */
export function renderStatus(s: StackStatus): string {
  if (s.state === 'stopped') return `no KEA stack recorded in ${s.stateDir} (not running)`;
  const lines = [
    `KEA stack in ${s.stateDir}: ${s.state}${s.mode ? ` (${s.mode}, kea up pid ${s.ownerPid}${s.startedAt ? `, since ${s.startedAt}` : ''})` : ''}`,
  ];
  if (s.error) lines.push(`  error: ${s.error}`);
  if (s.state === 'dead') lines.push('  its kea up process is gone: `kea down` removes what it left');
  if (s.gatewayUrl) lines.push(`  gateway: ${s.gatewayUrl}   docs: ${s.docsUrl}`);
  if (s.kubeconfig) lines.push(`  kubectl: export KUBECONFIG=${s.kubeconfig}`);
  if (s.components.length) {
    const w = Math.max(9, ...s.components.map((x) => x.name.length));
    const lw = Math.max(6, ...s.components.map((x) => (x.listen ?? '-').length));
    lines.push(`  ${'component'.padEnd(w)}  ${'pid'.padEnd(15)} alive  ${'listen'.padEnd(lw)}  log`);
    for (const x of s.components) {
      lines.push(
        `  ${x.name.padEnd(w)}  ${(x.pids.join(',') || '-').padEnd(15)} ${(x.alive ? 'yes' : 'NO').padEnd(5)}  ${(x.listen ?? '-').padEnd(lw)}  ${x.log ?? (x.name === 'kea up' ? '(its terminal)' : '-')}`,
      );
    }
  }
  return lines.join('\n');
}

/** Registers `kea status` on the program. */
export function register(program: Command): void {
  program
    .command('status')
    .description('what the local stack runs: each component, its pid, whether it is alive, and its log')
    .option('--state-dir <dir>', 'state dir of `kea up`', DEFAULT_STATE_DIR)
    .option('--json', 'print the status as JSON')
    .action(async (o: { stateDir: string; json?: boolean }) => {
      const s = await stackStatus(o.stateDir);
      process.stdout.write(`${o.json ? JSON.stringify(s, null, 2) : renderStatus(s)}\n`);
      process.exitCode = EXIT[s.state];
    });
}
