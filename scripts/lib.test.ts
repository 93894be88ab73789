/**
 * scripts/lib.sh, run by the real bash: `run_with_progress` (the periodic elapsed-time lines a
 * cold build prints) and `without_service_starts` (the policy-rc.d that keeps an apt install
 * from starting or restarting the host's nginx; setup.sh).
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile, access } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
const LIB = join(process.cwd(), 'scripts', 'lib.sh');

async function bash(script: string, env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run('bash', ['-c', `set -euo pipefail; source '${LIB}'; ${script}`], { env: { ...process.env, ...env } });
    return { code: 0, stdout, stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
}

const exists = (p: string) =>
  access(p).then(
    () => true,
    () => false,
  );

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kea-lib-sh-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('run_with_progress', () => {
  test('prints the expectation, elapsed time while the command runs, and its outcome', async () => {
    const r = await bash(`run_with_progress build-x "building x" "about 3 s" sleep 2.6`, { KEA_PROGRESS_EVERY: '1' });
    expect(r.code).toBe(0);
    const lines = r.stderr.trim().split('\n');
    expect(lines[0]).toBe('[build-x] building x (expected: about 3 s)');
    expect(lines.filter((l) => /^\[build-x\] building x still running: \d+ s elapsed \(expected: about 3 s\)$/.test(l)).length).toBeGreaterThanOrEqual(2);
    expect(lines.at(-1)).toMatch(/^\[build-x\] building x done after [23] s$/);
  });

  test("returns the command's exit status and says it failed", async () => {
    const r = await bash(`f() { return 7; }; run_with_progress b "building y" "1 s" f`);
    expect(r.code).toBe(7);
    expect(r.stderr).toMatch(/\[b\] building y failed \(exit 7\) after 0 s/);
  });
});

describe('without_service_starts', () => {
  test('the command runs with a policy-rc.d that forbids every service action (exit 101); it is removed afterwards', async () => {
    const policy = join(dir, 'policy-rc.d');
    // What invoke-rc.d does: run the policy with the service and action; 101 = forbidden.
    const r = await bash(`without_service_starts bash -c '"$KEA_POLICY_RC_D" nginx start; echo "policy=$?"'`, { KEA_POLICY_RC_D: policy });
    expect(r.stdout.trim()).toBe('policy=101');
    expect(r.code).toBe(0);
    expect(await exists(policy)).toBe(false);
  });

  test('it is removed also when the command fails, whose status is returned', async () => {
    const policy = join(dir, 'policy-rc.d');
    const r = await bash(`without_service_starts bash -c 'test -x "$KEA_POLICY_RC_D" && exit 3'`, { KEA_POLICY_RC_D: policy });
    expect(r.code).toBe(3);
    expect(await exists(policy)).toBe(false);
  });

  test("an existing policy-rc.d (the administrator's) is used as it is and kept", async () => {
    const policy = join(dir, 'policy-rc.d');
    const mine = '#!/bin/sh\nexit 0\n';
    await writeFile(policy, mine, { mode: 0o755 });
    const r = await bash(`without_service_starts bash -c '"$KEA_POLICY_RC_D" nginx start; echo "policy=$?"'`, { KEA_POLICY_RC_D: policy });
    expect(r.stdout.trim()).toBe('policy=0');
    expect(await readFile(policy, 'utf8')).toBe(mine);
  });

  test('setup.sh installs packages through it and never kills or stops an nginx it did not start', async () => {
    const setup = await readFile(join(process.cwd(), 'scripts', 'setup.sh'), 'utf8');
    expect(setup).toMatch(/without_service_starts bash -c 'apt-get update -qq && apt-get install/);
    expect(setup).not.toMatch(/pkill|killall|nginx stop|--now nginx/);
  });
});
