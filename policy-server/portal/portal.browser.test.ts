/**
 * Swagger UI renders client-side: load the service page in real headless Chromium (the
 * system's /usr/bin/chromium) and check the operations are in the DOM after scripts ran.
 * Skipped only when no Chromium binary is installed.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { irisV1, irisV2 } from '../../lib/openapi/testdata/fixtures.js';
import { memoryStore, startPortal } from './testkit.js';

const run = promisify(execFile);
const CHROMIUM = ['/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome'].find((p) => existsSync(p));

(CHROMIUM ? describe : describe.skip)('docs page in headless Chromium', () => {
  let portal: Awaited<ReturnType<typeof startPortal>>;
  let profile: string;
  beforeAll(async () => {
    portal = await startPortal(memoryStore([[irisV1, irisV2]], 'http://gw.test:8080'), { gatewayUrl: 'http://gw.test:8080' });
    profile = mkdtempSync(join(tmpdir(), 'kea-chromium-'));
  });
  afterAll(async () => {
    await portal.close();
    rmSync(profile, { recursive: true, force: true });
  });

  test('operations, the same-origin server and the rendered marker appear in the DOM', async () => {
    const { stdout } = await run(
      CHROMIUM!,
      [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-dev-shm-usage',
        `--user-data-dir=${profile}`,
        '--virtual-time-budget=15000',
        '--dump-dom',
        `${portal.url}/docs/models/iris`,
      ],
      { timeout: 90_000, maxBuffer: 64 * 1024 * 1024 },
    );
    expect(stdout).toContain('data-kea-rendered="true"');
    // Swagger UI's operation blocks, one per operation, with their paths
    for (const p of ['/predict', '/explain', '/healthz']) expect(stdout).toMatch(new RegExp(`data-path="${p}"`));
    expect(stdout).toMatch(/opblock-post/);
    // the gateway's own origin was put first in the server list (try-it-out goes same-origin)
    expect(stdout).toContain(`${portal.url}/iris`);
  }, 120_000);
});

(CHROMIUM ? describe : describe.skip)('signed-in header in headless Chromium', () => {
  test('shows who is signed in and a "Sign out" form that POSTs to /auth/logout', async () => {
    const express = (await import('express')).default;
    const { createPortalRouter } = await import('./router.js');
    const app = express();
    // The identity endpoint's answer for a signed-in user (the real one is tested in policy-server/auth).
    app.get('/auth/me', (_req, res) => {
      res.json({ subject: 'teacher', kind: 'user', via: 'session', claims: { preferred_username: 'teacher' } });
    });
    app.use(createPortalRouter(memoryStore([[irisV1]], 'http://gw.test:8080'), { gatewayUrl: 'http://gw.test:8080' }));
    const server = await new Promise<import('node:http').Server>((resolve) => {
      const s = app.listen(0, '127.0.0.1', () => resolve(s));
    });
    const url = `http://127.0.0.1:${(server.address() as import('node:net').AddressInfo).port}`;
    const profile = mkdtempSync(join(tmpdir(), 'kea-chromium-'));
    try {
      const { stdout } = await run(
        CHROMIUM!,
        [
          '--headless',
          '--no-sandbox',
          '--disable-gpu',
          '--disable-dev-shm-usage',
          `--user-data-dir=${profile}`,
          '--virtual-time-budget=15000',
          '--dump-dom',
          `${url}/docs/models/iris`,
        ],
        { timeout: 90_000, maxBuffer: 64 * 1024 * 1024 },
      );
      expect(stdout).toContain('Signed in as teacher');
      expect(stdout).toMatch(
        /<form method="post" action="\/auth\/logout\?returnTo=%2Fdocs%2Fmodels%2Firis" class="kea-signout"><button type="submit">Sign out<\/button><\/form>/,
      );
    } finally {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
      rmSync(profile, { recursive: true, force: true });
    }
  }, 120_000);
});
