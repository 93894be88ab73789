/**
 * The example ML services in `examples/` and a launcher that runs one with uvicorn from the
 * project's Python virtual environment (`$KEA_CACHE/venv`, default `~/.cache/kea/venv`,
 * created by scripts/setup.sh). Used by the scan-vs-served comparison tests and reusable by
 * the local stack.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { stopProcess } from '../process.js';

export interface ExampleService {
  /** Folder under examples/ (also the service's short name). */
  dir: string;
  /** Working directory relative to the repository root, when not `examples/<dir>`. */
  cwd?: string;
  /** uvicorn application, `module:attribute`. */
  app: string;
  /** What `kea scan` reads: the folder, or one file for the plain-class convention. */
  scanPath: string;
  /** Operations the running service adds that the scanned convention does not describe (`METHOD /path`). */
  servedOnly: string[];
}

/** Every example service. */
export const EXAMPLES: ExampleService[] = [
  { dir: 'iris-v1', app: 'app:app', scanPath: 'examples/iris-v1', servedOnly: [] },
  { dir: 'iris-v2', app: 'app:app', scanPath: 'examples/iris-v2', servedOnly: [] },
  { dir: 'wine', app: 'app:app', scanPath: 'examples/wine', servedOnly: [] },
  { dir: 'grades', app: 'app:app', scanPath: 'examples/grades', servedOnly: [] },
  // app.py adds the health probe around the plain class.
  { dir: 'plain-class', app: 'app:app', scanPath: 'examples/plain-class/model.py', servedOnly: ['GET /healthz'] },
];

/** `$KEA_CACHE/venv` (default `~/.cache/kea/venv`). */
export function venvDir(): string {
  return join(process.env.KEA_CACHE ?? join(homedir(), '.cache', 'kea'), 'venv');
}

export interface RunningService {
  /** `http://127.0.0.1:<port>` */
  url: string;
  port: number;
  pid: number;
  /** Time from spawn to "Uvicorn running", ms (includes training the model). */
  startMs: number;
  /** stdout+stderr so far (for failure messages). */
  output(): string;
  /** SIGTERM, then SIGKILL after 5 s; resolves when the process has exited. */
  stop(): Promise<void>;
}

/**
 * Starts `uvicorn <app> --host 127.0.0.1 --port 0` in `examples/<dir>` and waits for it to
 * listen. The kernel picks the port (read back from uvicorn's log line).
 * @param timeoutMs how long to wait for startup (default 60000 ms).
 * @throws Error if the venv is missing, or the process exits or times out before listening.
 */
export function startExample(ex: ExampleService, opts: { root?: string; timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): Promise<RunningService> {
  const root = opts.root ?? process.cwd();
  const uvicorn = join(venvDir(), 'bin', 'uvicorn');
  if (!existsSync(uvicorn)) {
    return Promise.reject(new Error(`${uvicorn} not found: run \`bash scripts/setup.sh\` to create the examples' Python environment`));
  }
  const t0 = Date.now();
  const child: ChildProcess = spawn(uvicorn, [ex.app, '--host', '127.0.0.1', '--port', '0', '--log-level', 'info'], {
    cwd: resolve(root, ex.cwd ?? join('examples', ex.dir)),
    env: { ...process.env, PYTHONDONTWRITEBYTECODE: '1', ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const stop = () => stopProcess(child, 5000);
  return new Promise((resolvePromise, reject) => {
    const timer = setTimeout(() => {
      void stop();
      reject(new Error(`${ex.dir}: uvicorn did not listen within ${opts.timeoutMs ?? 60000} ms:\n${out}`));
    }, opts.timeoutMs ?? 60000);
    const onData = (b: Buffer) => {
      out += b.toString();
      const m = /Uvicorn running on http:\/\/127\.0\.0\.1:(\d+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        child.stdout?.removeAllListeners('data');
        child.stderr?.removeAllListeners('data');
        child.stdout?.on('data', (x: Buffer) => (out += x.toString()));
        child.stderr?.on('data', (x: Buffer) => (out += x.toString()));
        const port = Number(m[1]);
        resolvePromise({ url: `http://127.0.0.1:${port}`, port, pid: child.pid!, startMs: Date.now() - t0, output: () => out, stop });
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.once('exit', (code, sig) => {
      clearTimeout(timer);
      reject(new Error(`${ex.dir}: uvicorn exited (${code ?? sig}) before listening:\n${out}`));
    });
  });
}
