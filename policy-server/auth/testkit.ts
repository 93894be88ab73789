/**
 * Test helpers for auth tests: a minimal cookie jar and a non-interactive browser login that
 * follows redirects by hand through the real dev IdP (login form → consent form → callback).
 * Test-only; not imported by production code.
 */

interface StoredCookie {
  name: string;
  value: string;
  host: string;
  path: string;
}

/** A cookie jar keyed by host name (RFC 6265 ignores ports) and path prefix. */
export class CookieJar {
  private cookies: StoredCookie[] = [];

  /** Stores the `Set-Cookie` headers of a response from `url`. */
  store(url: URL, res: Response): void {
    for (const sc of res.headers.getSetCookie()) {
      const [pair, ...attrs] = sc.split(';').map((s) => s.trim());
      const eq = pair.indexOf('=');
      const name = pair.slice(0, eq);
      const value = pair.slice(eq + 1);
      let path = '/';
      let maxAge: number | undefined;
      for (const a of attrs) {
        const [k, v] = a.split('=');
        if (k.toLowerCase() === 'path') path = v;
        if (k.toLowerCase() === 'max-age') maxAge = Number(v);
        if (k.toLowerCase() === 'expires' && Date.parse(v) < Date.now()) maxAge = 0;
      }
      this.cookies = this.cookies.filter((c) => !(c.name === name && c.host === url.hostname && c.path === path));
      if (maxAge === undefined || maxAge > 0) this.cookies.push({ name, value, host: url.hostname, path });
    }
  }

  /** The `Cookie` header for a request to `url`. */
  header(url: URL): string {
    return this.cookies
      .filter((c) => c.host === url.hostname && (url.pathname === c.path || url.pathname.startsWith(c.path.endsWith('/') ? c.path : c.path + '/')))
      .map((c) => `${c.name}=${c.value}`)
      .join('; ');
  }

  get(name: string): string | undefined {
    return this.cookies.find((c) => c.name === name)?.value;
  }

  set(name: string, value: string, host: string, path = '/'): void {
    this.cookies = this.cookies.filter((c) => !(c.name === name && c.host === host));
    this.cookies.push({ name, value, host, path });
  }
}

/** One step of a manual redirect walk. */
export interface Hop {
  method: string;
  url: string;
  status: number;
}

/** fetch with the jar, no automatic redirects. */
export async function jarFetch(jar: CookieJar, url: string | URL, init: RequestInit = {}): Promise<Response> {
  const u = new URL(url);
  const headers = new Headers(init.headers);
  const c = jar.header(u);
  if (c) headers.set('cookie', c);
  const res = await fetch(u, { ...init, headers, redirect: 'manual' });
  jar.store(u, res);
  return res;
}

/**
 * Walks a browser login: GET `startUrl`, follows redirects, fills the IdP login form with
 * `username`/`password`, approves the consent form, and stops at the first response that
 * is not a redirect to a known host or whose redirect leaves `stopAtOrigin`'s callback.
 * @returns the final response (not followed further if it redirects to `stopAtOrigin` outside
 * `/auth/callback`) and the hops taken.
 */
export async function browserLogin(
  jar: CookieJar,
  startUrl: string,
  username: string,
  password: string,
  stopAtOrigin: string,
): Promise<{ final: Response; finalUrl: string; hops: Hop[] }> {
  const hops: Hop[] = [];
  let url = startUrl;
  let init: RequestInit = {};
  for (let i = 0; i < 20; i++) {
    const res = await jarFetch(jar, url, init);
    hops.push({ method: init.method ?? 'GET', url, status: res.status });
    if (res.status >= 300 && res.status < 400) {
      const next = new URL(res.headers.get('location')!, url);
      await res.arrayBuffer();
      if (next.origin === stopAtOrigin && !next.pathname.startsWith('/auth/')) {
        return { final: res, finalUrl: url, hops };
      }
      url = next.href;
      init = {};
      continue;
    }
    const body = await res.text();
    const loginForm = /action="([^"]*\/login)"/.exec(body);
    const confirmForm = /action="([^"]*\/confirm)"/.exec(body);
    if (res.status === 200 && loginForm) {
      url = new URL(loginForm[1], url).href;
      init = { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ username, password }).toString() };
      continue;
    }
    if (res.status === 200 && confirmForm) {
      url = new URL(confirmForm[1], url).href;
      init = { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: '' };
      continue;
    }
    return { final: new Response(body, { status: res.status, headers: res.headers }), finalUrl: url, hops };
  }
  throw new Error(`too many hops: ${JSON.stringify(hops)}`);
}
