/**
 * The docs UI keeps credentials out of the origin's storage (issue 10, item 5): every API is
 * served on the gateway's one origin, so anything in localStorage is readable by a backend's
 * page there. Real headless Chromium (the system's /usr/bin/chromium) driven over the Chrome
 * DevTools Protocol: authorize in Swagger UI with a bearer token, then read the page's
 * localStorage and sessionStorage. Skipped only when no Chromium binary is installed.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { irisV1 } from '../../lib/openapi/testdata/fixtures.js';
import { memoryStore, startPortal } from './testkit.js';

const CHROMIUM = ['/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome'].find((p) => existsSync(p));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A minimal CDP client over the page target's WebSocket (Node's global WebSocket). */
class Page {
  private id = 0;
  private readonly pending = new Map<number, (v: { result?: { result?: { value?: unknown } }; error?: unknown }) => void>();
  private constructor(private readonly ws: WebSocket) {
    ws.addEventListener('message', (e) => {
      const m = JSON.parse(String(e.data)) as { id?: number };
      if (m.id !== undefined) this.pending.get(m.id)?.(m as never);
    });
  }
  static async open(wsUrl: string): Promise<Page> {
    const ws = new WebSocket(wsUrl);
    await new Promise<void>((res, rej) => {
      ws.addEventListener('open', () => res());
      ws.addEventListener('error', () => rej(new Error(`cannot connect to ${wsUrl}`)));
    });
    return new Page(ws);
  }
  send(method: string, params: Record<string, unknown> = {}): Promise<{ result?: { result?: { value?: unknown } }; error?: unknown }> {
    const id = ++this.id;
    return new Promise((res) => {
      this.pending.set(id, res);
      this.ws.send(JSON.stringify({ id, method, params }));
    });
  }
  /** Evaluates an expression in the page; its value (JSON-able, promises awaited). */
  async eval<T>(expression: string): Promise<T> {
    const r = await this.send('Runtime.evaluate', { expression, returnByValue: true, awaitPromise: true });
    if (r.error) throw new Error(JSON.stringify(r.error));
    return r.result?.result?.value as T;
  }
  async until(what: string, expression: string, ms = 30_000): Promise<void> {
    const end = Date.now() + ms;
    while (!(await this.eval<boolean>(expression).catch(() => false))) {
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
      await sleep(100);
    }
  }
  close(): void {
    this.ws.close();
  }
}

(CHROMIUM ? describe : describe.skip)('docs UI credential storage in headless Chromium', () => {
  let portal: Awaited<ReturnType<typeof startPortal>>;
  let profile: string;
  let browser: ChildProcess;
  let page: Page;

  beforeAll(async () => {
    portal = await startPortal(memoryStore([[irisV1]], 'http://gw.test:8080'), { gatewayUrl: 'http://gw.test:8080' });
    profile = mkdtempSync(join(tmpdir(), 'kea-chromium-'));
    browser = spawn(
      CHROMIUM!,
      ['--headless', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', `--user-data-dir=${profile}`, '--remote-debugging-port=0', 'about:blank'],
      { stdio: 'ignore' },
    );
    const portFile = join(profile, 'DevToolsActivePort');
    for (let i = 0; i < 300 && !existsSync(portFile); i++) await sleep(100);
    const port = Number(readFileSync(portFile, 'utf8').split('\n')[0]);
    const targets = (await (await fetch(`http://127.0.0.1:${port}/json/list`)).json()) as Array<{ type: string; webSocketDebuggerUrl: string }>;
    page = await Page.open(targets.find((t) => t.type === 'page')!.webSocketDebuggerUrl);
  }, 60_000);
  afterAll(async () => {
    page?.close();
    browser?.kill('SIGKILL');
    await portal?.close();
    rmSync(profile, { recursive: true, force: true });
  });

  const load = async (): Promise<void> => {
    await page.send('Page.navigate', { url: `${portal.url}/docs/models/iris` });
    await page.until('Swagger UI rendered', "document.body && document.body.getAttribute('data-kea-rendered') === 'true' && !!window.ui");
  };

  test('a bearer token entered in Authorize is used but never written to localStorage or sessionStorage', async () => {
    await load();
    const token = 'eyJ-secret-bearer-token-of-the-user';
    await page.eval(
      `window.ui.authActions.authorizeWithPersistOption({ kea_bearer: { name: 'kea_bearer', schema: { type: 'http', scheme: 'bearer' }, value: '${token}' } })`,
    );
    // Swagger UI holds it (in memory) for try-it-out...
    expect(await page.eval<string>('JSON.stringify(window.ui.authSelectors.authorized().toJS())')).toContain(token);
    // ...and nothing a page on this origin can read has it.
    const storage = await page.eval<string>('JSON.stringify({ local: Object.assign({}, localStorage), session: Object.assign({}, sessionStorage) })');
    expect(storage).not.toContain(token);
    expect(JSON.parse(storage).local.authorized).toBeUndefined();
  }, 90_000);

  test('an authorization persisted by an older version is removed on load', async () => {
    await page.eval(`localStorage.setItem('authorized', JSON.stringify({ kea_bearer: { name: 'kea_bearer', value: 'left-by-old-version' } }))`);
    await load();
    expect(await page.eval<string | null>("localStorage.getItem('authorized')")).toBeNull();
  }, 90_000);
});
