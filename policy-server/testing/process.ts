/**
 * The built policy server (`dist/policy-server/main.js`) run as a process by a test, with its
 * JSON log records parsed as they arrive. Test-only; needs `npm run build` first.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root: two levels above this source file (policy-server/testing/; used by tests, which run the sources). */
const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** The built entrypoint. */
export const POLICY_MAIN = join(REPO_ROOT, 'dist/policy-server/main.js');
/** The project's Node (24, from the `node` npm package). */
const NODE = join(REPO_ROOT, 'node_modules/.bin/node');

/** A running policy-server process. */
export interface PolicyProcess {
  child: ChildProcessWithoutNullStreams;
  /** Every JSON line of its stdout so far (a live array: it grows as the process logs). */
  records: Array<Record<string, unknown>>;
  /** Its stderr so far. */
  stderr: () => string;
  /** Resolves with its exit code. */
  exited: Promise<number | null>;
}

/**
 * Starts `node dist/policy-server/main.js ...args` with `KEA_LOG_LEVEL=info` and `env` added to
 * this process's environment.
 * @throws Error when dist/ has not been built.
 */
export function spawnPolicyServer(args: string[], env: Record<string, string> = {}): PolicyProcess {
  if (!existsSync(POLICY_MAIN)) throw new Error(`${POLICY_MAIN} missing: build first (npm run build)`);
  const child = spawn(NODE, [POLICY_MAIN, ...args], { env: { ...process.env, KEA_LOG_LEVEL: 'info', ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
  const records: Array<Record<string, unknown>> = [];
  let buf = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => {
    buf += d.toString();
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      try {
        records.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        /* not a record */
      }
    }
  });
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, records, stderr: () => err, exited };
}
