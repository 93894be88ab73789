/**
 * `kea up --detach`, `kea status`, `kea down` as a script or CI job runs them: the real CLI
 * (dist/cli/kea.js; `npm run build` first) as child processes, on free ports, a temp state
 * dir and the first free bridge, with its own embedded control plane (KUBECONFIG unset), so it
 * never collides with a running `kea up` or the other suites' API server. Checks that
 * `kea up --detach` returns once the stack serves, leaving it to a detached supervisor; that
 * `kea status` names every component with a live pid and an existing log; that a second
 * `kea up` on the same state dir is refused; and that `kea down` leaves no process, mount,
 * network namespace, bridge or record. Start a stack only under `flock /tmp/kea-e2e.lock`.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort } from '../lib/process.js';
import { REPO_ROOT } from '../dev/controlplane.js';
import type { StackStatus } from './commands/status.js';

const run = promisify(execFile);
const KEA = join(REPO_ROOT, 'dist', 'cli', 'kea.js');
const env = { ...process.env };
delete env.KUBECONFIG; // the embedded control plane: everything the stack runs is its own

async function kea(args: string[], timeoutMs = 180000): Promise<{ code: number; stdout: string; stderr: string; ms: number }> {
  const t0 = Date.now();
  try {
    const { stdout, stderr } = await run(process.execPath, [KEA, ...args], { env, cwd: REPO_ROOT, timeout: timeoutMs, maxBuffer: 16 << 20 });
    return { code: 0, stdout, stderr, ms: Date.now() - t0 };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: typeof err.code === 'number' ? err.code : -1, stdout: err.stdout, stderr: err.stderr, ms: Date.now() - t0 };
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Pids of processes whose command line mentions `needle` (other than this test). */
async function pidsMentioning(needle: string): Promise<number[]> {
  const out: number[] = [];
  for (const d of await readdir('/proc')) {
    if (!/^\d+$/.test(d) || Number(d) === process.pid) continue;
    const cl = (await readFile(`/proc/${d}/cmdline`, 'utf8').catch(() => '')).replace(/\0/g, ' ');
    if (cl.includes(needle)) out.push(Number(d));
  }
  return out;
}

async function links(): Promise<string[]> {
  const { stdout } = await run('ip', ['-j', 'link', 'show']);
  return (JSON.parse(stdout) as Array<{ ifname: string }>).map((l) => l.ifname);
}

let stateDir: string;
let seenPids: number[] = [];

beforeAll(async () => {
  stateDir = await mkdtemp(join(tmpdir(), 'kea-detach-'));
});

afterAll(async () => {
  await kea(['down', '--state-dir', stateDir]); // if a test failed half-way
  await rm(stateDir, { recursive: true, force: true });
});

test('kea up --detach returns once the stack is ready; kea status shows every component; kea down leaves nothing', async () => {
  const ports = {
    port: await freePort(),
    internalPort: await freePort(),
    idpPort: await freePort(),
    policyPort: await freePort(),
    controllerPort: await freePort(),
    redisPort: await freePort(),
  };
  const portArgs = [
    '--port',
    ports.port,
    '--internal-port',
    ports.internalPort,
    '--idp-port',
    ports.idpPort,
    '--policy-port',
    ports.policyPort,
    '--controller-port',
    ports.controllerPort,
    '--redis-port',
    ports.redisPort,
  ].map(String);
  const up = await kea(['up', '--detach', '--state-dir', stateDir, ...portArgs, '--bridge-index', 'auto', '--no-examples']);
  process.stdout.write(`kea up --detach returned in ${up.ms} ms (exit ${up.code})\n`);
  expect(up.stderr + up.stdout).not.toMatch(/FAIL/);
  expect(up.code).toBe(0);
  // The same summary as a foreground `kea up`, plus where the stack now runs.
  const gatewayUrl = `http://localhost:${ports.port}`;
  expect(up.stdout).toContain(`  gateway:     ${gatewayUrl}`);
  expect(up.stdout).toContain(`  docs:        ${gatewayUrl}/docs`);
  expect(up.stdout).toContain(`  kubectl:     export KUBECONFIG=${join(stateDir, 'kubeconfig')}`);
  const supPid = Number(/supervisor pid (\d+)/.exec(up.stdout)?.[1]);
  expect(supPid).toBeGreaterThan(0);
  // The progress lines of the start were shown while waiting.
  expect(up.stderr).toMatch(/\[ ok \] gateway/);

  // `kea up` has exited; the detached supervisor runs the stack and has recorded itself.
  expect(alive(supPid)).toBe(true);
  const sup = JSON.parse(await readFile(join(stateDir, 'supervisor.json'), 'utf8')) as { pid: number; state: string; log: string };
  expect(sup).toMatchObject({ pid: supPid, state: 'running', log: join(stateDir, 'logs', 'kea-up.log') });
  expect(JSON.parse(await readFile(join(stateDir, 'stack.json'), 'utf8')).ownerPid).toBe(supPid);
  // In its own session (setsid): closing the terminal of the `kea up` does not reach it.
  const stat = (await readFile(`/proc/${supPid}/stat`, 'utf8')).split(') ')[1].split(' ');
  expect(Number(stat[3])).toBe(supPid); // session id = its own pid

  // It serves: the gateway (nginx programmed by NGF) answers on the public port.
  const r = await fetch(`${gatewayUrl}/docs`, { signal: AbortSignal.timeout(5000) });
  await r.arrayBuffer();
  expect(r.status).toBeLessThan(500);

  // kea status: running, every component alive with a log that exists.
  const st = await kea(['status', '--state-dir', stateDir, '--json']);
  expect(st.code).toBe(0);
  const status = JSON.parse(st.stdout) as StackStatus;
  expect(status).toMatchObject({ state: 'running', mode: 'detached', ownerPid: supPid, gatewayUrl });
  const names = status.components.map((c) => c.name);
  expect(names).toEqual(
    expect.arrayContaining(['kea up', 'etcd', 'kube-apiserver', 'gateway (nginx)', 'ngf', 'redis', 'idp', 'policy-server-1', 'policy-server-2', 'controller']),
  );
  // Where Redis and each replica listen.
  const listen = Object.fromEntries(status.components.map((c) => [c.name, c.listen]));
  expect(listen.redis).toMatch(new RegExp(`^redis://10\\.213\\.\\d+\\.1:${ports.redisPort}$`));
  expect(listen['policy-server-1']).toMatch(new RegExp(`^10\\.213\\.\\d+\\.1:${ports.policyPort} \\(admin 127\\.0\\.0\\.1:\\d+\\)$`));
  expect(listen['policy-server-2']).toMatch(new RegExp(`^10\\.213\\.\\d+\\.254:${ports.policyPort} \\(admin 127\\.0\\.0\\.1:\\d+\\)$`));
  for (const c of status.components) {
    expect([c.name, c.alive]).toEqual([c.name, true]);
    expect([c.name, c.log && existsSync(c.log)]).toEqual([c.name, true]);
  }
  seenPids = status.components.flatMap((c) => c.pids);
  const text = await kea(['status', '--state-dir', stateDir]);
  expect(text.stdout).toMatch(new RegExp(`running \\(detached, kea up pid ${supPid}`));
  expect(text.stdout).toMatch(/\n {2}policy-server-1 +\d+ +yes +10\.213\.\d+\.1:\d+ \(admin 127\.0\.0\.1:\d+\) +\S+policy-server-1\.log/);
  expect(text.stdout).toMatch(/\n {2}policy-server-2 +\d+ +yes +10\.213\.\d+\.254:\d+ \(admin 127\.0\.0\.1:\d+\) +\S+policy-server-2\.log/);
  expect(text.stdout).toMatch(/\n {2}redis +\d+ +yes +redis:\/\/10\.213\.\d+\.1:\d+ +\S+redis\.log/);
  const bridge = status.bridge!;
  expect(bridge).toMatch(/^kea\d+$/);
  expect(await links()).toContain(bridge);

  // A second start on the same state dir is refused at once, naming the running one.
  const again = await kea(['up', '--detach', '--state-dir', stateDir, ...portArgs, '--bridge-index', 'auto', '--no-examples']);
  expect(again.code).toBe(1);
  expect(again.stderr).toContain(`a detached stack is already running (pid ${supPid})`);
  expect(alive(supPid)).toBe(true);

  // kea down: nothing left.
  const down = await kea(['down', '--state-dir', stateDir]);
  expect(down.code).toBe(0);
  expect(down.stdout).toContain('KEA stack stopped.');
  expect(seenPids.filter(alive)).toEqual([]);
  expect(await pidsMentioning(stateDir)).toEqual([]);
  expect((await readFile('/proc/self/mountinfo', 'utf8')).includes(stateDir)).toBe(false);
  expect((await links()).filter((l) => l === bridge || l.startsWith(`${bridge}h`))).toEqual([]);
  const { stdout: netns } = await run('ip', ['netns', 'list']);
  expect(netns.split('\n').filter((l) => l.startsWith(`${bridge}-`))).toEqual([]);
  expect(existsSync(join(stateDir, 'supervisor.json'))).toBe(false);
  expect(existsSync(join(stateDir, 'stack.json'))).toBe(false);
  const after = await kea(['status', '--state-dir', stateDir]);
  expect(after.code).toBe(3);
  expect(after.stdout).toContain('not running');
  // The supervisor logged its stop.
  expect(await readFile(join(stateDir, 'logs', 'kea-up.log'), 'utf8')).toMatch(/stopped: no process, mount or network namespace left/);
}, 300000);

test('a detached start that fails returns at once with the error, and leaves nothing running', async () => {
  // The IdP's port is taken: the idp step fails after the control plane, gateway and network started.
  const { createServer } = await import('node:net');
  const blocker = createServer();
  await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', () => r()));
  const idpPort = (blocker.address() as { port: number }).port;
  try {
    const args = [
      '--port',
      await freePort(),
      '--internal-port',
      await freePort(),
      '--idp-port',
      idpPort,
      '--policy-port',
      await freePort(),
      '--controller-port',
      await freePort(),
      '--redis-port',
      await freePort(),
    ].map(String);
    const up = await kea(['up', '--detach', '--state-dir', stateDir, ...args, '--bridge-index', 'auto', '--no-examples']);
    expect(up.code).toBe(1);
    expect(up.stderr).toMatch(/kea up --detach: kea up: step idp failed: .*\(log: .*kea-up\.log\)/s);
    const st = await kea(['status', '--state-dir', stateDir, '--json']);
    const status = JSON.parse(st.stdout) as StackStatus;
    expect(st.code).toBe(1);
    expect(status.state).toBe('failed');
    expect(status.error).toMatch(/step idp failed/);
    expect(await pidsMentioning(stateDir)).toEqual([]);
    expect((await kea(['down', '--state-dir', stateDir])).code).toBe(0);
    expect(existsSync(join(stateDir, 'supervisor.json'))).toBe(false);
  } finally {
    blocker.close();
  }
}, 300000);

test('kea up on a bridge subnet already routed on another interface fails at once, naming the interface', async () => {
  // A free index N, then an interface of "the user's" holding an address in 10.213.N.0/24.
  const taken = new Set(await links());
  const n = [...Array(200).keys()].map((i) => 240 - i).find((i) => !taken.has(`kea${i}`))!;
  const ifname = `kt${process.pid % 100000}`;
  await run('ip', ['link', 'add', ifname, 'type', 'bridge']);
  try {
    await run('ip', ['addr', 'add', `10.213.${n}.9/24`, 'dev', ifname]);
    const args = [
      '--port',
      await freePort(),
      '--internal-port',
      await freePort(),
      '--idp-port',
      await freePort(),
      '--policy-port',
      await freePort(),
      '--controller-port',
      await freePort(),
    ].map(String);
    for (const mode of [['--detach'], []]) {
      const up = await kea(['up', ...mode, '--state-dir', stateDir, ...args, '--bridge-index', String(n), '--no-examples'], 20000);
      expect(up.code).toBe(1);
      expect(up.stderr).toContain(`bridge subnet 10.213.${n}.0/24 (kea${n}) is already in use on this machine: interface ${ifname} (`);
      expect(up.ms).toBeLessThan(10000); // before any step: no control plane was started
      expect(up.stderr).not.toMatch(/\[\.\.\.\.\] control-plane/);
    }
    expect(await links()).not.toContain(`kea${n}`);
    expect(existsSync(join(stateDir, 'supervisor.json'))).toBe(false);
    expect(existsSync(join(stateDir, 'stack.json'))).toBe(false);
  } finally {
    await run('ip', ['link', 'del', ifname]);
  }
}, 60000);
