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
      ['--headless', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', `--user-data-dir=${profile}`, '--virtual-time-budget=15000', '--dump-dom', `${portal.url}/docs/models/iris`],
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
