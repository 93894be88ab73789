/**
 * Multi-process mode of the policy server (`--workers <n|auto>`, `KEA_POLICY_WORKERS`).
 *
 * With n > 1, `main.ts` runs {@link runPrimary} in the first process: it forks n workers with
 * `node:cluster` (same script, argv and execArgv), which share the listening port (the primary
 * accepts and hands connections round-robin, `cluster.SCHED_RR`, Node's default on Linux).
 * The primary serves no HTTP. It
 * - restarts a worker that exits unexpectedly, per slot, after a backoff (100 ms doubling to
 *   10 s; reset once a worker has run 30 s), and logs each exit and restart;
 * - gives up (stops the others, exits 1) when one slot fails 5 times in a row before its
 *   worker ever listened: a configuration error, better surfaced as CrashLoopBackOff;
 * - relays SIGTERM / SIGINT to every worker, which drains (`PolicyServer.close()`), and exits
 *   0 once all workers have exited (1 if it had to SIGKILL one after `drainTimeoutMs` + 5 s);
 * - answers the workers' cluster requests (below).
 *
 * Each worker is the ordinary single-process server (own snapshot source, caches, audit
 * rings, metrics). What must see the whole server goes over cluster IPC as request/response
 * messages with ids: a worker asks the primary ({@link WorkerPeer.ask}); the primary sends the
 * operation to every running worker, the asker included, waits at most `ipcTimeoutMs` for
 * each answer, and replies with the answers plus the workers that did not answer (`missing`,
 * alive but silent) or are not running (`down`, restarting: their in-memory state is empty).
 * Nothing waits forever: a silent worker is reported, the asker times out after
 * `ipcTimeoutMs` + 1 s if the primary itself does not answer.
 *
 * Operations (`ClusterOp`): `metrics` (each worker's `getMetricsAsJSON()`), `logs` (a
 * service's audit ring), `cacheStats`, `purge` (one service or all). Merging is done by the
 * asking worker (management.ts), so the primary stays a dumb relay and never parses state.
 *
 * `auto` = {@link cpuBudget}: `os.availableParallelism()` capped by the cgroup CPU quota.
 * Node 24.21 (libuv 1.52.1, src/unix/linux.c `uv__get_constrained_cpu`) applies the quota
 * itself only where libuv finds it: pure cgroup v2 (`/proc/self/cgroup` starting `0::/`, then
 * `cpu.max` up the hierarchy), or cgroup v1 when the controller line reads `:cpu,` (`cpu,cpuacct`
 * mounted together; leaf only). Hybrid hosts and a separately mounted `cpu` controller are
 * missed: measured on this machine (cgroup v1, `1:cpu:/...`), a 1-CPU quota still gave
 * `availableParallelism() = 2`. So KEA reads the quota itself, both versions, walking up.
 */
import cluster, { type Worker } from 'node:cluster';
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import type { Logger } from '../lib/log.js';

/** Message tag: every cluster message of KEA carries it (prom-client or others use other shapes). */
const TAG = 'kea-cluster/v1';

/** Operations a worker can ask of the whole cluster. */
export type ClusterOp = 'metrics' | 'logs' | 'cacheStats' | 'purge';

/** One worker's answer. */
export interface WorkerAnswer<T = unknown> {
  /** Slot number 1..n (stable across restarts). */
  worker: number;
  pid: number;
  value: T;
}

/** What {@link WorkerPeer.ask} resolves to. */
export interface Gathered<T = unknown> {
  answers: WorkerAnswer<T>[];
  /** Running workers that did not answer within the IPC timeout (or failed). */
  missing: Array<{ worker: number; pid: number; reason: string }>;
  /** Slots whose worker is not running right now (being restarted). */
  down: number[];
  /** Configured worker count. */
  workers: number;
  /** Unexpected worker exits since start. */
  restarts: number;
}

type Msg =
  | { tag: typeof TAG; type: 'ready'; port: number }
  | { tag: typeof TAG; type: 'ask'; id: number; op: ClusterOp; args: unknown }
  | { tag: typeof TAG; type: 'ask-res'; id: number; ok: true; value: Gathered }
  | { tag: typeof TAG; type: 'ask-res'; id: number; ok: false; error: string }
  | { tag: typeof TAG; type: 'local'; id: number; op: ClusterOp; args: unknown }
  | { tag: typeof TAG; type: 'local-res'; id: number; ok: true; value: unknown }
  | { tag: typeof TAG; type: 'local-res'; id: number; ok: false; error: string };

const isMsg = (m: unknown): m is Msg => typeof m === 'object' && m !== null && (m as { tag?: unknown }).tag === TAG;

/**
 * The CPU quota of this process's cgroup, in CPUs (quota / period), or undefined when none is
 * set or readable. cgroup v2: `cpu.max` (`<quota> <period>` or `max <period>`); cgroup v1:
 * `cpu.cfs_quota_us` / `cpu.cfs_period_us` (-1 = none). The tightest level from the process's
 * cgroup up to the root counts (the kernel enforces every ancestor's limit).
 * @param root - file system root (tests pass a fake tree). Default `/`.
 */
export function cgroupCpuQuota(root = '/'): number | undefined {
  const read = (p: string): string | undefined => {
    try {
      return readFileSync(root + p.replace(/^\/+/, ''), 'utf8').trim();
    } catch {
      return undefined;
    }
  };
  const self = read('/proc/self/cgroup');
  if (!self) return undefined;
  let best: number | undefined;
  const take = (q: number): void => {
    if (Number.isFinite(q) && q > 0 && (best === undefined || q < best)) best = q;
  };
  const ancestors = (path: string): string[] => {
    const out: string[] = [];
    let p = path.replace(/\/+$/, '');
    for (;;) {
      out.push(p);
      if (p === '') break;
      p = p.slice(0, p.lastIndexOf('/'));
    }
    return out;
  };
  for (const line of self.split('\n')) {
    const [, controllers, path] = /^\d+:([^:]*):(.*)$/.exec(line) ?? [];
    if (path === undefined) continue;
    if (controllers === '') {
      // cgroup v2 (unified); in hybrid setups it is mounted at /sys/fs/cgroup/unified.
      for (const base of ['/sys/fs/cgroup', '/sys/fs/cgroup/unified']) {
        for (const dir of ancestors(path)) {
          const [q, period] = (read(`${base}${dir}/cpu.max`) ?? '').split(/\s+/);
          if (q && q !== 'max' && Number(period) > 0) take(Number(q) / Number(period));
        }
      }
    } else if (controllers.split(',').includes('cpu')) {
      for (const base of [`/sys/fs/cgroup/${controllers}`, '/sys/fs/cgroup/cpu', '/sys/fs/cgroup/cpu,cpuacct']) {
        for (const dir of ancestors(path)) {
          const q = Number(read(`${base}${dir}/cpu.cfs_quota_us`));
          const period = Number(read(`${base}${dir}/cpu.cfs_period_us`));
          if (q > 0 && period > 0) take(q / period);
        }
      }
    }
  }
  return best;
}

/**
 * CPUs this process may use: `os.availableParallelism()` (CPU affinity) capped by
 * {@link cgroupCpuQuota}, rounded down (a 1.5-CPU limit gives 1: a second worker would only be
 * throttled), at least 1.
 */
export function cpuBudget(root?: string): number {
  const quota = cgroupCpuQuota(root);
  const n = availableParallelism();
  return Math.max(1, quota === undefined ? n : Math.min(n, Math.floor(quota)));
}

/**
 * Parses `--workers` / `KEA_POLICY_WORKERS`.
 * @param spec - a positive integer, or `auto` ({@link cpuBudget}).
 * @throws Error for anything else.
 */
export function resolveWorkers(spec: string | number | undefined): number {
  if (spec === undefined || spec === '') return 1;
  if (spec === 'auto') return cpuBudget();
  const n = Number(spec);
  if (!Number.isInteger(n) || n < 1 || n > 256) throw new Error(`--workers must be "auto" or an integer 1..256 (got "${spec}")`);
  return n;
}

/** Options of {@link runPrimary}. */
export interface PrimaryOptions {
  workers: number;
  logger: Logger;
  /** Drain time the workers use (their `--drain-timeout-ms`); the primary SIGKILLs a worker 5 s after it. */
  drainTimeoutMs: number;
  /** Longest wait for one worker's IPC answer, ms (default 2000). */
  ipcTimeoutMs?: number;
  /** Extra environment for the workers. */
  env?: Record<string, string>;
  /** Called instead of `process.exit` (tests). */
  exit?: (code: number) => void;
}

/** Environment variables the primary sets for each worker. */
export const WORKER_ENV = { slot: 'KEA_POLICY_WORKER_SLOT', count: 'KEA_POLICY_WORKER_COUNT', ipcTimeout: 'KEA_POLICY_IPC_TIMEOUT_MS' } as const;

interface Slot {
  index: number;
  worker?: Worker;
  startedAt: number;
  ready: boolean;
  /** Consecutive exits before listening. */
  startFailures: number;
  /** Consecutive quick exits (for the backoff). */
  quickExits: number;
  timer?: NodeJS.Timeout;
}

/**
 * Runs the cluster primary until every worker has exited after SIGTERM/SIGINT (see module doc).
 * @returns once the workers are forked; the process exits from the signal path.
 */
export function runPrimary(opts: PrimaryOptions): void {
  const log = opts.logger;
  const ipcTimeoutMs = opts.ipcTimeoutMs ?? 2000;
  const exit = opts.exit ?? ((code: number) => process.exit(code));
  const slots: Slot[] = [];
  let restarts = 0;
  let stopping = false;
  let nextId = 1;
  // Pending fan-out answers: id → resolver per worker.
  const pending = new Map<number, (m: Extract<Msg, { type: 'local-res' }>) => void>();

  const fork = (slot: Slot): void => {
    slot.timer = undefined;
    const w = cluster.fork({
      ...opts.env,
      [WORKER_ENV.slot]: String(slot.index),
      [WORKER_ENV.count]: String(opts.workers),
      [WORKER_ENV.ipcTimeout]: String(ipcTimeoutMs),
    });
    slot.worker = w;
    slot.startedAt = Date.now();
    slot.ready = false;
    w.on('message', (m: unknown) => {
      if (!isMsg(m)) return;
      if (m.type === 'ready') {
        slot.ready = true;
        slot.startFailures = 0;
        log.info('worker listening', { worker: slot.index, pid: w.process.pid, port: m.port });
        if (slots.every((s) => s.ready)) log.info('all workers listening', { workers: opts.workers, pids: slots.map((s) => s.worker?.process.pid) });
      } else if (m.type === 'ask') {
        void gather(m.op, m.args).then(
          (value) => safeSend(w, { tag: TAG, type: 'ask-res', id: m.id, ok: true, value }),
          (err: Error) => safeSend(w, { tag: TAG, type: 'ask-res', id: m.id, ok: false, error: err.message }),
        );
      } else if (m.type === 'local-res') {
        pending.get(m.id)?.(m);
      }
    });
    w.on('exit', (code, signal) => onExit(slot, w, code, signal));
  };

  const onExit = (slot: Slot, w: Worker, code: number | null, signal: string | null): void => {
    if (slot.worker !== w) return;
    slot.worker = undefined;
    const pid = w.process.pid;
    if (stopping) {
      log.info('worker exited', { worker: slot.index, pid, code, signal });
      if (slots.every((s) => !s.worker)) {
        clearTimeout(killTimer);
        log.info('all workers exited; primary exits', { forced: killed });
        exit(killed ? 1 : 0);
      }
      return;
    }
    restarts++;
    const lived = Date.now() - slot.startedAt;
    if (!slot.ready) slot.startFailures++;
    slot.quickExits = lived > 30_000 ? 0 : slot.quickExits + 1;
    if (slot.startFailures >= 5) {
      log.error('worker keeps failing before it listens; giving up', { worker: slot.index, pid, code, signal, attempts: slot.startFailures });
      shutdown('startup-failure', 1);
      return;
    }
    const delay = Math.min(10_000, 100 * 2 ** Math.max(0, slot.quickExits - 1));
    log.error('worker exited unexpectedly; restarting', { worker: slot.index, pid, code, signal, livedMs: lived, restartInMs: delay, restarts });
    slot.timer = setTimeout(() => fork(slot), delay);
  };

  const safeSend = (w: Worker, m: Msg): boolean => {
    try {
      if (!w.isConnected()) return false;
      w.send(m);
      return true;
    } catch {
      return false;
    }
  };

  /** Sends `op` to every running worker and collects the answers (at most ipcTimeoutMs). */
  const gather = async (op: ClusterOp, args: unknown): Promise<Gathered> => {
    const answers: WorkerAnswer[] = [];
    const missing: Gathered['missing'] = [];
    const down: number[] = [];
    const waits: Promise<void>[] = [];
    for (const slot of slots) {
      const w = slot.worker;
      if (!w || !slot.ready) {
        down.push(slot.index);
        continue;
      }
      const pid = w.process.pid ?? 0;
      const id = nextId++;
      waits.push(
        new Promise<void>((resolve) => {
          const timer = setTimeout(() => {
            pending.delete(id);
            missing.push({ worker: slot.index, pid, reason: `no answer within ${ipcTimeoutMs} ms` });
            resolve();
          }, ipcTimeoutMs);
          pending.set(id, (res) => {
            clearTimeout(timer);
            pending.delete(id);
            if (res.ok) answers.push({ worker: slot.index, pid, value: res.value });
            else missing.push({ worker: slot.index, pid, reason: res.error });
            resolve();
          });
          if (!safeSend(w, { tag: TAG, type: 'local', id, op, args })) {
            clearTimeout(timer);
            pending.delete(id);
            missing.push({ worker: slot.index, pid, reason: 'IPC channel closed' });
            resolve();
          }
        }),
      );
    }
    await Promise.all(waits);
    answers.sort((a, b) => a.worker - b.worker);
    if (missing.length) log.warn('workers did not answer a cluster request', { op, missing });
    return { answers, missing, down, workers: opts.workers, restarts };
  };

  let killTimer: NodeJS.Timeout | undefined;
  let killed = false;
  const shutdown = (reason: string, code = 0): void => {
    if (stopping) return;
    stopping = true;
    log.info('primary stopping: draining workers', { reason, workers: slots.filter((s) => s.worker).length });
    for (const s of slots) {
      if (s.timer) clearTimeout(s.timer);
      s.timer = undefined;
    }
    if (code !== 0) killed = true; // exit code reports the failure
    const live = slots.filter((s) => s.worker);
    if (live.length === 0) {
      exit(code);
      return;
    }
    for (const s of live) s.worker!.process.kill('SIGTERM');
    killTimer = setTimeout(() => {
      for (const s of slots) {
        if (s.worker) {
          killed = true;
          log.error('worker did not exit after drain; killing it', { worker: s.index, pid: s.worker.process.pid });
          s.worker.process.kill('SIGKILL');
        }
      }
    }, opts.drainTimeoutMs + 5000);
  };

  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
  log.info('policy server primary starting workers', { workers: opts.workers, pid: process.pid });
  for (let i = 1; i <= opts.workers; i++) {
    const slot: Slot = { index: i, startedAt: 0, ready: false, startFailures: 0, quickExits: 0 };
    slots.push(slot);
    fork(slot);
  }
}

/** A worker's handlers for the operations the primary fans out. */
export type LocalHandlers = Record<ClusterOp, (args: unknown) => unknown>;

/** The worker's side of the cluster IPC. */
export interface WorkerPeer {
  /** Slot number 1..n. */
  readonly worker: number;
  /** Configured worker count. */
  readonly workers: number;
  /**
   * Asks every worker (this one included) through the primary.
   * @throws Error when the primary does not answer within the IPC timeout + 1 s.
   */
  ask<T>(op: ClusterOp, args?: unknown): Promise<Gathered<T>>;
  /** Tells the primary this worker listens (starts counting it for fan-outs). */
  ready(port: number): void;
}

/**
 * Installs the worker side: answers the primary's fan-outs with `handlers` and returns the
 * peer used to ask. Call only in a cluster worker.
 * @throws Error when not running as a cluster worker.
 */
export function startWorkerPeer(handlers: LocalHandlers): WorkerPeer {
  if (!cluster.isWorker || !process.send) throw new Error('startWorkerPeer: not a cluster worker');
  const worker = Number(process.env[WORKER_ENV.slot] ?? cluster.worker?.id ?? 0);
  const workers = Number(process.env[WORKER_ENV.count] ?? 1);
  const timeoutMs = Number(process.env[WORKER_ENV.ipcTimeout] ?? 2000) + 1000;
  const send = (m: Msg): void => {
    process.send!(m);
  };
  let nextId = 1;
  const waiting = new Map<number, { resolve: (g: Gathered) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }>();
  process.on('message', (m: unknown) => {
    if (!isMsg(m)) return;
    if (m.type === 'local') {
      void (async () => {
        try {
          const value = await handlers[m.op](m.args);
          send({ tag: TAG, type: 'local-res', id: m.id, ok: true, value });
        } catch (err) {
          send({ tag: TAG, type: 'local-res', id: m.id, ok: false, error: (err as Error).message ?? String(err) });
        }
      })();
    } else if (m.type === 'ask-res') {
      const w = waiting.get(m.id);
      if (!w) return;
      waiting.delete(m.id);
      clearTimeout(w.timer);
      if (m.ok) w.resolve(m.value);
      else w.reject(new Error(m.error));
    }
  });
  return {
    worker,
    workers,
    ask: <T>(op: ClusterOp, args?: unknown) =>
      new Promise<Gathered<T>>((resolve, reject) => {
        const id = nextId++;
        const timer = setTimeout(() => {
          waiting.delete(id);
          reject(new Error(`the cluster primary did not answer within ${timeoutMs} ms`));
        }, timeoutMs);
        waiting.set(id, { resolve: resolve as (g: Gathered) => void, reject, timer });
        try {
          send({ tag: TAG, type: 'ask', id, op, args });
        } catch (err) {
          clearTimeout(timer);
          waiting.delete(id);
          reject(err);
        }
      }),
    ready: (port) => send({ tag: TAG, type: 'ready', port }),
  };
}
