/**
 * Internal token rotation on the policy server (issue 10 item 4, docs/adr/0009-internal-routes.md):
 * the real process (dist/policy-server/main.js; `npm run build` first) reads the token from
 * `--internal-token-file` and re-reads it while running. The file is replaced the way the
 * kubelet updates a Secret volume (a new file renamed over the old one), while a client keeps
 * calling. The upstream stands in for the gateway's internal route during the overlap: it
 * accepts the old and the new token (two `matches`), anything else gets 404 as from the
 * gateway. No request may fail, and once the file changed the new token is sent.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { REPO_ROOT } from '../dev/controlplane.js';
import { irisService, writeConfigDir } from './testing/fixtures.js';
import { send } from './testing/http.js';

const OLD = 'old-internal-token-0123456789';
const NEW = 'new-internal-token-9876543210';

let dir: string;
let upstream: Server;
let child: ChildProcess | undefined;
let stdout = '';
/** Tokens the upstream accepts (the internal route's matches). */
let accepted = new Set([OLD, NEW]);
const seen: string[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kea-token-rotation-'));
  upstream = createServer((req, res) => {
    const t = String(req.headers['x-kea-internal-token'] ?? '');
    seen.push(t);
    if (!accepted.has(t)) return void res.writeHead(404).end('no route');
    res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
});

afterAll(async () => {
  child?.kill('SIGTERM');
  await new Promise((r) => upstream.close(r));
  await rm(dir, { recursive: true, force: true });
});

test('a new token in --internal-token-file is sent within the reload period, with no failed request', async () => {
  const cfg = join(dir, 'cfg');
  await writeConfigDir(cfg, irisService());
  const tokenFile = join(dir, 'token');
  await writeFile(tokenFile, `${OLD}\n`, { mode: 0o600 });
  const upstreamUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
  child = spawn(
    join(REPO_ROOT, 'node_modules/.bin/node'),
    [
      join(REPO_ROOT, 'dist/policy-server/main.js'),
      '--host',
      '127.0.0.1',
      '--port',
      '0',
      '--upstream-url',
      upstreamUrl,
      '--internal-token-file',
      tokenFile,
      '--internal-token-reload-ms',
      '200',
      '--config-dir',
      cfg,
      '--state-dir',
      join(dir, 'state'),
    ],
    {
      env: { ...Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== 'KEA_INTERNAL_TOKEN')), KEA_LOG_LEVEL: 'info', KEA_OIDC_ISSUER: '' },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const port = await new Promise<number>((resolve, reject) => {
    child!.stdout!.on('data', (d: Buffer) => {
      stdout += d.toString();
      const m = /"port":(\d+)[^\n]*"message":"policy server listening"/.exec(stdout);
      if (m) resolve(Number(m[1]));
    });
    child!.on('exit', (code) => reject(new Error(`exited ${code}: ${stderr}`)));
  });
  const url = `http://127.0.0.1:${port}/iris/health`;
  for (let i = 0; i < 100 && (await send('GET', url, { agent: false })).status !== 200; i++) await new Promise((r) => setTimeout(r, 50));
  expect(seen.at(-1)).toBe(OLD);

  // A client calling without pause through the rotation.
  let stop = false;
  let sent = 0;
  const failures: number[] = [];
  const client = (async () => {
    while (!stop) {
      const r = await send('GET', url).catch(() => ({ status: 0 }));
      sent++;
      if (r.status !== 200) failures.push(r.status);
    }
  })();
  await new Promise((r) => setTimeout(r, 300));
  // The kubelet's way: write the new content elsewhere, then rename it over the file.
  await writeFile(join(dir, 'token.new'), `${NEW}\n`, { mode: 0o600 });
  await rename(join(dir, 'token.new'), tokenFile);
  const t0 = Date.now();
  while (seen.at(-1) !== NEW && Date.now() - t0 < 5000) await new Promise((r) => setTimeout(r, 20));
  const switchMs = Date.now() - t0;
  expect(seen.at(-1)).toBe(NEW);
  // The previous token is dropped from the route: every request still succeeds.
  accepted = new Set([NEW]);
  await new Promise((r) => setTimeout(r, 300));
  // An empty file (a swap in progress) keeps the current token.
  await writeFile(tokenFile, '');
  await new Promise((r) => setTimeout(r, 500));
  stop = true;
  await client;
  process.stdout.write(`token rotation: switched after ${switchMs} ms, ${sent} requests, ${failures.length} failed\n`);
  expect(switchMs).toBeLessThan(2000);
  expect(sent).toBeGreaterThan(50);
  expect(failures).toEqual([]);
  expect(seen.at(-1)).toBe(NEW);
  // The log names the new token by fingerprint, never by value.
  expect(stdout).toContain('"message":"internal token reloaded"');
  expect(stdout).not.toContain(NEW);
  expect(stdout).toContain('internal token file not usable');
}, 60_000);
