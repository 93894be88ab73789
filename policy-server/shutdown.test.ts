/**
 * Graceful shutdown: in-flight requests complete, new connections are refused, and the real
 * process (policy-server/main.ts, compiled) exits 0 on SIGTERM after draining.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { REPO_ROOT } from '../dev/controlplane.js';
import { irisService, INTERNAL_TOKEN, policyServerArgs, startBackend, writeConfigDir } from './testing/fixtures.js';
import { send } from './testing/http.js';
import { startStack } from './testing/stack.js';

test('close(): in-flight request completes, then new connections are refused', async () => {
  const s = await startStack({ services: [irisService()] });
  const inflight = send('GET', `${s.url}/iris/slow-ok`, { agent: false });
  for (let i = 0; i < 300 && s.ps.dataPath.inflight === 0; i++) await new Promise((r) => setTimeout(r, 10));
  expect(s.ps.dataPath.inflight).toBe(1);
  const t0 = Date.now();
  const closing = s.ps.close();
  await new Promise((r) => setTimeout(r, 50));
  // The admin port stays open during the drain and reports not ready.
  const ready = await send('GET', `${s.adminUrl}/readyz`, { agent: false });
  expect(ready.status).toBe(503);
  const r = await inflight;
  expect(r.status).toBe(200);
  expect(r.json).toEqual({ slow: true });
  await closing;
  expect(Date.now() - t0).toBeGreaterThan(300); // waited for the backend's 1 s answer
  await expect(send('GET', `${s.url}/healthz`, { agent: false })).rejects.toThrow(/ECONNREFUSED/);
  await s.backend.close();
});

test('SIGTERM on the real process drains and exits 0', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'kea-sigterm-'));
  const backend = await startBackend({ requireToken: INTERNAL_TOKEN });
  try {
    // Compile the server (what `npm run build` does) into a private directory.
    const out = join(dir, 'dist');
    try {
      execFileSync(join(REPO_ROOT, 'node_modules/.bin/tsc'), ['-p', join(REPO_ROOT, 'tsconfig.build.json'), '--outDir', out], { stdio: 'pipe' });
    } catch {
      // Type errors elsewhere in the repository do not stop emission; the file check below decides.
    }
    await symlink(join(REPO_ROOT, 'node_modules'), join(out, 'node_modules'));
    await writeFile(join(out, 'package.json'), '{"type":"module"}');
    const cfg = join(dir, 'cfg');
    await writeConfigDir(cfg, irisService());
    const child = spawn(
      join(REPO_ROOT, 'node_modules/.bin/node'),
      [join(out, 'policy-server/main.js'), ...policyServerArgs({ upstreamUrl: backend.url, configDir: cfg, stateDir: join(dir, 'state') })],
      { env: { ...process.env, KEA_LOG_LEVEL: 'info', KEA_OIDC_ISSUER: '' }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stdout = '';
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const port = await new Promise<number>((resolve, reject) => {
      child.stdout.on('data', (d: Buffer) => {
        stdout += d.toString();
        const m = /"port":(\d+)[^\n]*"message":"policy server listening"/.exec(stdout);
        if (m) resolve(Number(m[1]));
      });
      child.on('exit', (code) => reject(new Error(`exited ${code}: ${stderr}`)));
    });
    const url = `http://127.0.0.1:${port}`;
    // Wait until the file source has delivered.
    for (let i = 0; i < 100 && (await send('GET', `${url}/iris/health`, { agent: false })).status !== 200; i++) await new Promise((r) => setTimeout(r, 50));
    const inflight = send('GET', `${url}/iris/slow-ok`, { agent: false });
    await new Promise((r) => setTimeout(r, 200));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    child.kill('SIGTERM');
    const r = await inflight;
    expect(r.status).toBe(200);
    expect(await exited).toBe(0);
    expect(stdout).toContain('"message":"shutdown complete"');
    const end = stdout.split('\n').filter((l) => l.includes('"request end"') && l.includes('/iris/slow-ok'));
    expect(end.length).toBe(1);
  } finally {
    await backend.close();
    await rm(dir, { recursive: true, force: true });
  }
}, 180_000);
