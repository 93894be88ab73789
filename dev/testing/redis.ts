/**
 * A real Redis for tests: the Debian package's `redis-server` (scripts/setup.sh installs it;
 * the Debian service itself is never used) started on a free port of 127.0.0.1 with its own
 * temporary folder and no persistence (`--save '' --appendonly no`), optionally with a password
 * (`--requirepass`). Tests can kill it (a crash: SIGKILL), restart it on the same port, or
 * freeze it (SIGSTOP: the connection stays open but nothing answers, a slow Redis) and thaw it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, stopProcess } from '../../lib/process.js';
import { waitFor } from './wait.js';

/** The binary (Debian package `redis-server`). */
export const REDIS_SERVER = process.env.KEA_REDIS_SERVER ?? 'redis-server';

/** A running test Redis; see {@link startRedis}. */
export interface TestRedis {
  readonly port: number;
  /** `redis://127.0.0.1:<port>` (no password in it, even when one is required). */
  readonly url: string;
  /** The password `--requirepass` was given, if any. */
  readonly password?: string;
  /** Kills the server (SIGKILL, as a crash) and waits for its exit; its data is gone. */
  kill(): Promise<void>;
  /** Starts it again on the same port (after {@link TestRedis.kill}) and waits until it answers PING. */
  restart(): Promise<void>;
  /** Freezes the server (SIGSTOP): connections stay open, no call is answered. */
  freeze(): void;
  /** Thaws a frozen server (SIGCONT). */
  thaw(): void;
  /** Stops the server (if running) and removes its folder. */
  stop(): Promise<void>;
}

/** Sends one PING; resolves the first reply line (`+PONG`, or `-NOAUTH ...` with a password). */
function ping(port: number, timeoutMs = 500): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port });
    let buf = '';
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error('PING timed out'));
    }, timeoutMs);
    s.on('connect', () => s.write('*1\r\n$4\r\nPING\r\n'));
    s.on('data', (d) => {
      buf += d.toString('latin1');
      const i = buf.indexOf('\r\n');
      if (i < 0) return;
      clearTimeout(timer);
      s.destroy();
      resolve(buf.slice(0, i));
    });
    s.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
}

/**
 * Starts a `redis-server` on a free port and waits (≤ 10 s) until it answers PING.
 * @param opts.password - require this password (`--requirepass`).
 * @throws when the binary is missing or the server does not answer in time.
 */
export async function startRedis(opts: { password?: string } = {}): Promise<TestRedis> {
  const dir = await mkdtemp(join(tmpdir(), 'kea-redis-'));
  const port = await freePort();
  let proc: ChildProcess | undefined;
  let output = '';
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--daemonize', 'no'];
  if (opts.password) args.push('--requirepass', opts.password);

  const launch = async (): Promise<void> => {
    output = '';
    const p = spawn(REDIS_SERVER, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    proc = p;
    p.stdout.on('data', (d: Buffer) => (output = (output + d.toString()).slice(-4000)));
    p.stderr.on('data', (d: Buffer) => (output = (output + d.toString()).slice(-4000)));
    const failed = new Promise<never>((_, reject) => {
      p.once('error', (e) => reject(new Error(`${REDIS_SERVER} could not start (apt-get install redis-server; scripts/setup.sh does): ${e.message}`)));
      p.once('exit', (code, sig) => reject(new Error(`${REDIS_SERVER} exited (${code ?? sig}) before answering: ${output.trim()}`)));
    });
    failed.catch(() => undefined);
    await Promise.race([waitFor(`redis-server on :${port} answers PING`, 10_000, async () => /^(\+PONG|-NOAUTH)/.test(await ping(port)), 25), failed]);
  };
  const onExit = (): void => {
    proc?.kill('SIGKILL');
  };
  process.once('exit', onExit);
  await launch();

  const kill = async (): Promise<void> => {
    const p = proc;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    const exited = new Promise<void>((r) => p.once('exit', () => r()));
    p.kill('SIGCONT');
    p.kill('SIGKILL');
    await exited;
  };
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    password: opts.password,
    kill,
    restart: async () => {
      await kill();
      await launch();
    },
    freeze: () => {
      proc?.kill('SIGSTOP');
    },
    thaw: () => {
      proc?.kill('SIGCONT');
    },
    stop: async () => {
      process.off('exit', onExit);
      proc?.kill('SIGCONT');
      await stopProcess(proc, 5000);
      await rm(dir, { recursive: true, force: true });
    },
  };
}
