/**
 * `kea up --detach`: the stack runs in a detached supervisor process (a `kea up --supervised`
 * in its own session, so closing the terminal does not stop it) whose output goes to
 * `<stateDir>/logs/kea-up.log`. The supervisor records its pid and state in
 * `<stateDir>/supervisor.json`; `kea up --detach` streams the log while waiting, returns once
 * the state is `running` (the stack is ready) and prints the same URLs as a foreground
 * `kea up`; `kea status` reads the file; `kea down` stops the supervisor like a foreground
 * `kea up` (SIGTERM to the stack's owner pid, dev/stack.ts stopStack).
 *
 * States: `starting` → `running` → `stopping` (file removed when the supervisor exits), or
 * `starting` → `failed` (kept, with the error, until the next `kea up` or `kea down`).
 */
import { spawn } from 'node:child_process';
import { closeSync, openSync, readSync, fstatSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile, rename } from 'node:fs/promises';
import { join, resolve } from 'node:path';

/** What `<stateDir>/supervisor.json` holds. */
export interface SupervisorState {
  /** Pid of the detached supervisor (the `kea up --supervised` process; also stack.json's ownerPid). */
  pid: number;
  state: 'starting' | 'running' | 'stopping' | 'failed';
  /** ISO 8601 times. */
  startedAt: string;
  updatedAt: string;
  /** The supervisor's own log (stdout and stderr): progress lines, restarts, the stop. */
  log: string;
  /** Why the start failed (state `failed`). */
  error?: string;
}

/** `<stateDir>/supervisor.json`. */
export function supervisorFile(stateDir: string): string {
  return join(resolve(stateDir), 'supervisor.json');
}

/** `<stateDir>/logs/kea-up.log`. */
export function supervisorLog(stateDir: string): string {
  return join(resolve(stateDir), 'logs', 'kea-up.log');
}

/** The recorded supervisor state, or undefined when none is recorded (or the file is unreadable). */
export async function readSupervisorState(stateDir: string): Promise<SupervisorState | undefined> {
  try {
    return JSON.parse(await readFile(supervisorFile(stateDir), 'utf8')) as SupervisorState;
  } catch {
    return undefined;
  }
}

/** Writes the state atomically (temp file + rename), so a reader never sees half a file. */
export async function writeSupervisorState(stateDir: string, s: Omit<SupervisorState, 'updatedAt'>): Promise<void> {
  const f = supervisorFile(stateDir);
  await writeFile(`${f}.tmp`, JSON.stringify({ ...s, updatedAt: new Date().toISOString() }, null, 2));
  await rename(`${f}.tmp`, f);
}

export async function removeSupervisorState(stateDir: string): Promise<void> {
  await rm(supervisorFile(stateDir), { force: true });
}

/** Whether a process with this pid exists (signal 0). */
export function alive(pid: number | undefined): boolean {
  if (!pid) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Options of {@link startDetached}. */
export interface DetachOptions {
  stateDir: string;
  /** Arguments of the supervisor after `kea`, e.g. `['up', '--port', '8080', '--supervised']`. */
  args: string[];
  /** Where the supervisor's log lines are echoed while waiting; default stderr. */
  echo?: (chunk: string) => void;
  /** Aborting stops the supervisor (SIGTERM: it stops what it started) and rejects. */
  signal?: AbortSignal;
}

/**
 * Spawns the supervisor detached (new session, stdin closed, output appended to its log),
 * echoes its log while it starts, and resolves with its state once it is `running`.
 * @throws Error with the supervisor's error (state `failed`) or exit status, and the log path.
 */
export async function startDetached(opts: DetachOptions): Promise<SupervisorState> {
  const stateDir = resolve(opts.stateDir);
  const echo = opts.echo ?? ((c: string) => process.stderr.write(c));
  const logPath = supervisorLog(stateDir);
  await mkdir(join(stateDir, 'logs'), { recursive: true });
  await removeSupervisorState(stateDir); // a `failed` record of an earlier try
  const fd = openSync(logPath, 'a');
  const from = fstatSync(fd).size;
  const child = spawn(process.execPath, [...process.execArgv, process.argv[1], ...opts.args], {
    detached: true,
    stdio: ['ignore', fd, fd],
    cwd: process.cwd(),
    env: process.env,
  });
  closeSync(fd);
  child.unref();
  let exit: string | undefined;
  child.once('exit', (code, sig) => (exit = sig ? `signal ${sig}` : `exit status ${code}`));
  child.once('error', (e) => (exit = `spawn error: ${e.message}`));

  // Echo the log from where this start began.
  const rfd = openSync(logPath, 'r');
  let offset = from;
  const pump = () => {
    const buf = Buffer.alloc(64 << 10);
    for (;;) {
      const n = readSync(rfd, buf, 0, buf.length, offset);
      if (n <= 0) return;
      offset += n;
      echo(buf.subarray(0, n).toString('utf8'));
    }
  };
  try {
    for (;;) {
      pump();
      if (opts.signal?.aborted) {
        if (child.pid && alive(child.pid)) process.kill(child.pid, 'SIGTERM');
        while (child.pid && alive(child.pid) && exit === undefined) await new Promise((r) => setTimeout(r, 200));
        pump();
        throw new Error('kea up --detach: interrupted; the supervisor stopped what it had started');
      }
      const s = await readSupervisorState(stateDir);
      if (s && s.pid === child.pid && s.state === 'running') return s;
      if (s && s.pid === child.pid && s.state === 'failed') throw new Error(`${s.error ?? 'the stack failed to start'} (log: ${logPath})`);
      if (exit !== undefined) {
        await new Promise((r) => setTimeout(r, 100));
        pump();
        throw new Error(`the detached kea up exited during start (${exit}); log: ${logPath}`);
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  } finally {
    closeSync(rfd);
  }
}
