/**
 * Authentication against a real OpenID provider (dev/idp.ts: oidc-provider 9) started
 * in-process on 127.0.0.1:0, and a real express app mounting the auth router on localhost:0.
 * No mocks of the IdP: logins walk the real authorization endpoint, interaction forms,
 * consent, token endpoint and JWKS.
 */
import http, { type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import * as oidc from 'openid-client';
import { SignJWT, exportJWK, exportSPKI, generateKeyPair, type JWK, type CryptoKey } from 'jose';
import { startDevIdp, gatewayClient, scriptsClient, DEMO_USERS, type DevIdp, type DevUser } from '../../dev/idp.js';
import { createAuthenticator, authorize, identityHeaders, AuthError, type Authenticator, type AuthConfig, type Identity } from './index.js';
import { Sealer } from './session.js';
import { CookieJar, browserLogin, jarFetch } from './testkit.js';
import type { Access } from '../../lib/api/types.js';

const GW_SECRET = 'gateway-client-secret-for-tests-0123456789';
const SESSION_SECRET = 'session-secret-for-tests-0123456789abcdef';
const getGrades: Access = { mode: 'restricted', roles: ['student', 'teacher'] };
const setGrades: Access = { mode: 'restricted', roles: ['teacher'] };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const req = (headers: Record<string, string>) => ({ headers }) as unknown as IncomingMessage;
const nowS = () => Math.floor(Date.now() / 1000);

interface Gateway {
  url: string;
  server: http.Server;
  setAuth(a: Authenticator): void;
  close(): Promise<void>;
}

/** An express "gateway" on localhost:0 that mounts the auth router and a /whoami endpoint. */
async function startGateway(): Promise<Gateway> {
  let auth: Authenticator | undefined;
  const app = express();
  app.use((rq, rs, next) => (auth ? auth.router()(rq, rs, next) : next()));
  app.get('/whoami', async (rq, rs) => {
    try {
      const id = await auth!.authenticate(rq);
      if (id?.setCookie) rs.append('set-cookie', id.setCookie);
      rs.json({ id: id && { subject: id.subject, via: id.via, claims: id.claims }, refreshed: !!id?.setCookie });
    } catch (err) {
      if (!(err instanceof AuthError)) throw err;
      if (err.setCookie) rs.append('set-cookie', err.setCookie);
      rs.status(401).set('www-authenticate', err.wwwAuthenticate).json({ code: err.code });
    }
  });
  app.get('/docs', (_rq, rs) => rs.send('docs'));
  const server = http.createServer(app);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://localhost:${(server.address() as AddressInfo).port}`;
  return {
    url,
    server,
    setAuth(a) {
      auth = a;
    },
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

function counter() {
  const counts = new Map<string, number>();
  return {
    onRequest: (m: string, p: string) => counts.set(`${m} ${p}`, (counts.get(`${m} ${p}`) ?? 0) + 1),
    get: (k: string) => counts.get(k) ?? 0,
  };
}

let gw: Gateway;
let idp: DevIdp;
let auth: Authenticator;
let privateKey: CryptoKey;
let publicKey: CryptoKey;
const KID = 'test-k1';
const requests = counter();
let baseCfg: AuthConfig;

beforeAll(async () => {
  gw = await startGateway();
  ({ privateKey, publicKey } = await generateKeyPair('RS256', { extractable: true }));
  const jwk: JWK = { ...(await exportJWK(privateKey)), kid: KID, alg: 'RS256', use: 'sig' };
  idp = await startDevIdp({
    clients: [
      gatewayClient(gw.url, GW_SECRET),
      scriptsClient('script-student', 'script-student-secret', ['student']),
      scriptsClient('script-teacher', 'script-teacher-secret', ['teacher']),
      // A machine client whose id equals a user's sub (issue 10: client_id vs sub).
      scriptsClient('teacher', 'teacher-client-secret', []),
      { clientId: 'kea-cli', grantTypes: ['authorization_code'], redirectUris: ['http://127.0.0.1/cli-callback'] },
    ],
    jwks: { keys: [jwk] },
    onRequest: requests.onRequest,
  });
  baseCfg = {
    issuer: idp.issuer,
    clientId: 'kea-gateway',
    clientSecret: GW_SECRET,
    redirectUri: `${gw.url}/auth/callback`,
    audience: idp.audience,
    sessionSecrets: [SESSION_SECRET],
    cookieSecure: false,
    jwksCooldownMs: 0,
  };
  auth = await createAuthenticator(baseCfg);
  gw.setAuth(auth);
});

afterAll(async () => {
  await auth?.close();
  await gw?.close();
  await idp?.stop();
});

async function loginAs(user: string, returnTo = '/docs', jar = new CookieJar(), base = gw.url) {
  const r = await browserLogin(jar, `${base}/auth/login?returnTo=${encodeURIComponent(returnTo)}`, user, user, base);
  return { jar, ...r };
}

describe('browser login (OIDC code + PKCE) through the express router', () => {
  test('teacher logs in with a cookie jar; session cookie authenticates', async () => {
    const { jar, final, hops } = await loginAs('teacher');
    // login → IdP authorize → interaction → form POST → consent → callback → /docs
    expect(hops[0].status).toBe(302);
    expect(hops.some((h) => h.method === 'POST' && h.url.includes('/interaction/') && h.url.endsWith('/login'))).toBe(true);
    expect(hops.some((h) => h.url.startsWith(`${gw.url}/auth/callback?code=`))).toBe(true);
    expect(final.status).toBe(303);
    expect(final.headers.get('location')).toBe('/docs');
    const setCookies = final.headers.getSetCookie();
    const session = setCookies.find((c) => c.startsWith('kea_session='))!;
    expect(session).toMatch(/; Path=\/; HttpOnly; SameSite=Lax/);
    expect(session).not.toMatch(/Secure/); // dev: cookieSecure=false on http://localhost
    expect(setCookies.some((c) => c.startsWith('kea_auth_tx=;'))).toBe(true); // transaction cleared

    // The authorization request carried PKCE S256, state and nonce.
    const authorizeHop = new URL(hops[1].url);
    expect(authorizeHop.searchParams.get('code_challenge_method')).toBe('S256');
    expect(authorizeHop.searchParams.get('state')).toBeTruthy();
    expect(authorizeHop.searchParams.get('nonce')).toBeTruthy();

    const who = (await (await jarFetch(jar, `${gw.url}/whoami`)).json()) as { id: { subject: string; via: string; claims: Record<string, unknown> } };
    expect(who.id.subject).toBe('teacher');
    expect(who.id.via).toBe('session');
    expect(who.id.claims.roles).toEqual(['teacher']);
    expect(who.id.claims.iss).toBeUndefined(); // protocol claims are not identity claims

    const id = (await auth.authenticate(req({ cookie: `kea_session=${jar.get('kea_session')}` })))!;
    expect(authorize(id, getGrades, {})).toBe('allow');
    expect(authorize(id, setGrades, {})).toBe('allow');
    expect(identityHeaders(id)['x-kea-user']).toBe('teacher');

    const me = await jarFetch(jar, `${gw.url}/auth/me`);
    expect(me.status).toBe(200);
    expect(((await me.json()) as { subject: string }).subject).toBe('teacher');
  });

  test('student session: get_grades allowed, set_grades forbidden', async () => {
    const { jar } = await loginAs('student');
    const id = (await auth.authenticate(req({ cookie: `kea_session=${jar.get('kea_session')}` })))!;
    expect(id.subject).toBe('student');
    expect(auth.authenticateCached!(req({ cookie: `kea_session=${jar.get('kea_session')}` }))).toBe(id); // cached session: no promise
    expect(auth.authenticateCached!(req({ cookie: `kea_session=${jar.get('kea_session')}x` }))).toBeUndefined(); // unknown cookie: unseal (async)
    expect(authorize(id, getGrades, {})).toBe('allow');
    expect(authorize(id, setGrades, {})).toBe('forbidden');
  });

  test('wrong password: IdP refuses, no session', async () => {
    const jar = new CookieJar();
    const r = await browserLogin(jar, `${gw.url}/auth/login`, 'teacher', 'not-the-password', gw.url);
    expect(r.final.status).toBe(401);
    expect(jar.get('kea_session')).toBeUndefined();
  });

  test('no cookie and no token: anonymous (null)', async () => {
    expect(await auth.authenticate(req({}))).toBeNull();
    expect(await auth.authenticate(req({ cookie: 'other=1' }))).toBeNull();
    expect(await auth.authenticate(req({ authorization: 'Basic dTpw' }))).toBeNull();
    expect(auth.authenticateCached!(req({}))).toBeNull();
    expect(auth.authenticateCached!(req({ authorization: 'Basic dTpw' }))).toBeUndefined(); // other schemes: the async path decides
    const me = await fetch(`${gw.url}/auth/me`);
    expect(me.status).toBe(401);
    expect(me.headers.get('content-type')).toMatch(/application\/problem\+json/);
  });

  test('tampered or foreign session cookie → invalid_session and the cookie is cleared', async () => {
    const { jar } = await loginAs('student');
    const raw = jar.get('kea_session')!;
    const parts = raw.split('.');
    const ct = Buffer.from(parts[3], 'base64url');
    ct[0] ^= 1;
    parts[3] = ct.toString('base64url');
    for (const bad of [
      parts.join('.'),
      'garbage',
      await new Sealer(['another-secret-another-secret-0123456789']).seal({
        t: 'session',
        sub: 'admin',
        claims: { roles: ['admin'] },
        iat: nowS(),
        exp: nowS() + 999,
        atExp: nowS() + 999,
      }),
    ]) {
      const err = await auth.authenticate(req({ cookie: `kea_session=${bad}` })).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(AuthError);
      expect((err as AuthError).code).toBe('invalid_session');
      expect((err as AuthError).status).toBe(401);
      expect((err as AuthError).setCookie).toMatch(/^kea_session=; .*Max-Age=0/);
    }
  });

  test('login transaction cookie cannot be replayed as a session', async () => {
    const jar = new CookieJar();
    const r = await jarFetch(jar, `${gw.url}/auth/login?returnTo=/docs`);
    expect(r.status).toBe(302);
    const tx = jar.get('kea_auth_tx')!;
    await expect(auth.authenticate(req({ cookie: `kea_session=${tx}` }))).rejects.toMatchObject({ code: 'invalid_session' });
  });

  test('callback without the transaction cookie, or with a forged state, is refused', async () => {
    const jar = new CookieJar();
    const start = await jarFetch(jar, `${gw.url}/auth/login?returnTo=/docs`);
    const state = new URL(start.headers.get('location')!).searchParams.get('state');
    expect(state).toBeTruthy();
    const noTx = await fetch(`${gw.url}/auth/callback?code=x&state=${state}`, { redirect: 'manual' });
    expect(noTx.status).toBe(400);
    // Walk the real flow but swap the state on the way back.
    const walk = await browserLogin(jar, start.headers.get('location')!, 'teacher', 'teacher', 'http://never.invalid');
    // browserLogin follows the callback too; redo it by hand with a forged state.
    const cb = walk.hops.find((h) => h.url.startsWith(`${gw.url}/auth/callback?`));
    expect(cb).toBeDefined();
    expect(cb!.status).toBe(303); // the honest callback succeeded
    const jar2 = new CookieJar();
    const start2 = await jarFetch(jar2, `${gw.url}/auth/login?returnTo=/docs`);
    const forged = new URL(start2.headers.get('location')!);
    forged.searchParams.set('state', 'forged-state');
    const w2 = await browserLogin(jar2, forged.href, 'teacher', 'teacher', 'http://never.invalid');
    const cb2 = w2.hops.find((h) => h.url.startsWith(`${gw.url}/auth/callback?`));
    expect(cb2?.status).toBe(400);
    expect(jar2.get('kea_session')).toBeUndefined();
  });

  test.each([
    ['//evil.com', '/'],
    ['/\\evil.com', '/'],
    ['https://evil.com/x', '/'],
    ['javascript:alert(1)', '/'],
    ['/services?x=1', '/services?x=1'],
  ])('open redirect: returnTo=%j ends at %j', async (returnTo, want) => {
    const { final } = await loginAs('student', returnTo);
    expect(final.status).toBe(303);
    expect(final.headers.get('location')).toBe(want);
  });

  // Issue 10 item 7: dot segments that the URL parser collapses into `//evil` after the old check.
  test.each(['/.//evil.com', '/..//evil.com', '/%2e%2e//evil.com', '/a/..//evil.com', '/%2e//evil.com/x?y=1', '/./..//evil.com'])(
    'open redirect after normalisation: returnTo=%j ends on the gateway origin',
    async (returnTo) => {
      const { final, jar } = await loginAs('student', returnTo);
      expect(final.status).toBe(303);
      const loc = final.headers.get('location')!;
      // Resolved as the browser resolves a Location header: still this gateway.
      expect(new URL(loc, `${gw.url}/auth/callback`).origin).toBe(gw.url);
      expect(loc).toBe('/');
      expect(jar.get('kea_session')).toBeTruthy(); // the login itself succeeded
    },
  );

  test('absolute return-to on the gateway host is kept', async () => {
    const { final } = await loginAs('student', `${gw.url}/docs?x=1`);
    expect(final.headers.get('location')).toBe(`${gw.url}/docs?x=1`);
  });

  test('GET /auth/logout only shows a confirmation form; a cross-site POST is refused (403); neither ends the session', async () => {
    const { jar } = await loginAs('teacher');
    const cookie = jar.get('kea_session')!;
    const revocations = requests.get('POST /token/revocation');
    // What an <img src="https://gw/auth/logout"> on another site makes the browser send.
    const img = await jarFetch(jar, `${gw.url}/auth/logout?returnTo=/..//evil.com`, { headers: { 'sec-fetch-site': 'cross-site', 'sec-fetch-dest': 'image' } });
    expect(img.status).toBe(200);
    expect(img.headers.get('content-type')).toMatch(/^text\/html/);
    expect(img.headers.get('content-security-policy')).toContain("frame-ancestors 'none'");
    expect(img.headers.getSetCookie()).toEqual([]);
    const page = await img.text();
    expect(page).toContain('<form method="post" action="/auth/logout?returnTo=%2F">');
    // Cross-site form POSTs, by Fetch Metadata or by Origin.
    for (const headers of [{ 'sec-fetch-site': 'cross-site' }, { 'sec-fetch-site': 'same-site' }, { origin: 'https://evil.example' }, { origin: 'null' }]) {
      const post = await jarFetch(jar, `${gw.url}/auth/logout`, { method: 'POST', headers });
      expect(post.status).toBe(403);
      expect(post.headers.get('content-type')).toMatch(/application\/problem\+json/);
      expect(post.headers.getSetCookie()).toEqual([]);
    }
    expect(jar.get('kea_session')).toBe(cookie);
    expect((await auth.authenticate(req({ cookie: `kea_session=${cookie}` })))?.subject).toBe('teacher');
    expect(requests.get('POST /token/revocation')).toBe(revocations);
    // The form's own POST (same origin) logs out.
    const ok = await jarFetch(jar, new URL('/auth/logout?returnTo=%2F', gw.url), {
      method: 'POST',
      headers: { 'sec-fetch-site': 'same-origin', origin: gw.url },
    });
    expect(ok.status).toBe(303);
    expect(jar.get('kea_session')).toBeUndefined();
  });

  test('logout without an IdP end-session endpoint: the returnTo fallback is parsed, then held to the gateway origin', async () => {
    // An authenticator whose IdP is unreachable has no end_session_endpoint: logout answers with returnTo.
    const dead = http.createServer();
    await new Promise<void>((r) => dead.listen(0, '127.0.0.1', r));
    const deadIssuer = `http://127.0.0.1:${(dead.address() as AddressInfo).port}`;
    await new Promise<void>((r) => dead.close(() => r()));
    const a = await createAuthenticator({ ...baseCfg, issuer: deadIssuer });
    const srv = http.createServer(express().use(a.router()));
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const base = `http://localhost:${(srv.address() as AddressInfo).port}`;
    try {
      for (const [returnTo, want] of [
        ['/..//evil.com', '/'],
        ['/.//evil.com', '/'],
        ['/%2e%2e//evil.com', '/'],
        ['/a/..//evil.com', '/'],
        ['https://evil.com/', '/'],
        ['/docs?x=1', '/docs?x=1'],
      ]) {
        const r = await fetch(`${base}/auth/logout?returnTo=${encodeURIComponent(returnTo)}`, {
          method: 'POST',
          headers: { origin: gw.url },
          redirect: 'manual',
        });
        expect(r.status).toBe(303);
        expect(r.headers.get('location')).toBe(want);
      }
    } finally {
      srv.closeAllConnections();
      await new Promise<void>((r) => srv.close(() => r()));
      await a.close();
    }
  });

  test('logout clears the cookie and does RP-initiated logout at the IdP', async () => {
    const { jar } = await loginAs('teacher');
    const revocations = requests.get('POST /token/revocation');
    const r = await jarFetch(jar, `${gw.url}/auth/logout`, { method: 'POST', headers: { origin: gw.url } });
    expect(r.status).toBe(303);
    const loc = new URL(r.headers.get('location')!);
    expect(loc.origin + loc.pathname).toBe(`${idp.issuer}/session/end`);
    expect(loc.searchParams.get('client_id')).toBe('kea-gateway');
    expect(loc.searchParams.get('post_logout_redirect_uri')).toBe(`${new URL(gw.url).origin}/`);
    expect(jar.get('kea_session')).toBeUndefined();
    expect(requests.get('POST /token/revocation')).toBe(revocations + 1);
    // The IdP accepts the end-session request (renders its logout confirmation).
    const end = await jarFetch(jar, loc);
    expect(end.status).toBe(200);
  });
});

describe('config validation', () => {
  test('Secure off only for localhost; secrets ≥ 32 chars; no HS/none algorithms', async () => {
    await expect(createAuthenticator({ ...baseCfg, redirectUri: 'https://gw.example.com/auth/callback', cookieSecure: false })).rejects.toThrow(
      /cookieSecure=false/,
    );
    await expect(createAuthenticator({ ...baseCfg, sessionSecrets: ['short'] })).rejects.toThrow(/32 characters/);
    await expect(createAuthenticator({ ...baseCfg, issuer: 'http://idp.example.com' })).rejects.toThrow(/allowHttpIssuer/);
    await expect(createAuthenticator({ ...baseCfg, algorithms: ['RS256', 'HS256'] })).rejects.toThrow(/HS256/);
  });

  test('session secret rotation: a cookie sealed with the old secret is read after rotation', async () => {
    const { jar } = await loginAs('student');
    const cookie = `kea_session=${jar.get('kea_session')}`;
    const rotated = await createAuthenticator({ ...baseCfg, sessionSecrets: ['brand-new-session-secret-0123456789abcdef', SESSION_SECRET] });
    expect((await rotated.authenticate(req({ cookie })))?.subject).toBe('student');
    const dropped = await createAuthenticator({ ...baseCfg, sessionSecrets: ['brand-new-session-secret-0123456789abcdef'] });
    await expect(dropped.authenticate(req({ cookie }))).rejects.toMatchObject({ code: 'invalid_session' });
    await rotated.close();
    await dropped.close();
  });
});

async function clientCredentials(id: string, secret: string, scope = 'api:read'): Promise<string> {
  const c = await oidc.discovery(new URL(idp.issuer), id, secret, undefined, { execute: [oidc.allowInsecureRequests] });
  const t = await oidc.clientCredentialsGrant(c, { scope, resource: idp.audience });
  return t.access_token;
}

describe('bearer tokens', () => {
  test('client-credentials tokens: identity, roles, grades matrix', async () => {
    const st = await clientCredentials('script-student', 'script-student-secret');
    const te = await clientCredentials('script-teacher', 'script-teacher-secret', 'api:read api:write');
    const s = (await auth.authenticate(req({ authorization: `Bearer ${st}` })))!;
    const t = (await auth.authenticate(req({ authorization: `bearer ${te}` })))!; // scheme is case-insensitive
    expect(s).toMatchObject({ subject: 'client:script-student', kind: 'client', via: 'bearer' });
    expect(s.claims.roles).toEqual(['student']);
    expect(authorize(s, getGrades, {})).toBe('allow');
    expect(authorize(s, setGrades, {})).toBe('forbidden');
    expect(authorize(t, getGrades, {})).toBe('allow');
    expect(authorize(t, setGrades, {})).toBe('allow');
    expect(authorize(s, { mode: 'restricted', scopes: ['api:write'] }, {})).toBe('forbidden');
    expect(authorize(t, { mode: 'restricted', scopes: ['api:write'] }, {})).toBe('allow');
    expect(authorize(null, { mode: 'public' }, {})).toBe('allow');
    expect(authorize(null, { mode: 'authenticated' }, {})).toBe('unauthenticated');
    expect(identityHeaders(t)).toMatchObject({
      'x-kea-user': 'client:script-teacher',
      'x-kea-roles': 'teacher',
      'x-kea-scopes': 'api:read api:write',
      'x-kea-auth': 'bearer',
    });
    // Bearer wins over a cookie; the same token twice gives the cached (same) identity.
    expect(await auth.authenticate(req({ authorization: `Bearer ${st}`, cookie: 'kea_session=junk' }))).toBe(s);
  });

  test("a client whose id equals a user's sub never gets that user's subject (issue 10: client_id vs sub)", async () => {
    const machine = (await auth.authenticate(req({ authorization: `Bearer ${await clientCredentials('teacher', 'teacher-client-secret')}` })))!;
    const { jar } = await loginAs('teacher');
    const person = (await auth.authenticate(req({ cookie: `kea_session=${jar.get('kea_session')}` })))!;
    // The IdP gives both the same sub (RFC 9068 §2.2: a client-credentials token's sub is the client id).
    expect(machine.claims.sub).toBe('teacher');
    expect(person.claims.sub).toBe('teacher');
    expect(machine).toMatchObject({ subject: 'client:teacher', kind: 'client' });
    expect(person).toMatchObject({ subject: 'teacher', kind: 'user' });
    // Upstream, in audit lines and in per-identity cache keys the two never coincide.
    expect(identityHeaders(machine)['x-kea-user']).toBe('client:teacher');
    expect(identityHeaders(person)['x-kea-user']).toBe('teacher');
    // Role rules go by the roles claim: the client has none, the user has teacher.
    expect(authorize(machine, setGrades, {})).toBe('forbidden');
    expect(authorize(person, setGrades, {})).toBe('allow');
    const me = (await (
      await fetch(`${gw.url}/auth/me`, { headers: { authorization: `Bearer ${await clientCredentials('teacher', 'teacher-client-secret')}` } })
    ).json()) as { subject: string; kind: string };
    expect(me).toMatchObject({ subject: 'client:teacher', kind: 'client' });
  });

  test('classification of bearer subjects: user tokens keep sub; client markers; the reserved prefix is refused', async () => {
    const sign = (p: Record<string, unknown>) =>
      new SignJWT({ iss: idp.issuer, aud: idp.audience, iat: nowS(), exp: nowS() + 300, ...p }).setProtectedHeader({ alg: 'RS256', kid: KID }).sign(privateKey);
    const who = async (p: Record<string, unknown>) => {
      const id = (await auth.authenticate(req({ authorization: `Bearer ${await sign(p)}` })))!;
      return { subject: id.subject, kind: id.kind };
    };
    expect(await who({ sub: 'alice', client_id: 'kea-cli' })).toEqual({ subject: 'alice', kind: 'user' });
    expect(await who({ sub: 'svc', client_id: 'svc' })).toEqual({ subject: 'client:svc', kind: 'client' });
    expect(await who({ client_id: 'svc2' })).toEqual({ subject: 'client:svc2', kind: 'client' });
    expect(await who({ sub: 'abc@clients', gty: 'client-credentials' })).toEqual({ subject: 'client:abc@clients', kind: 'client' });
    expect(await who({ sub: 'app-oid', idtyp: 'app' })).toEqual({ subject: 'client:app-oid', kind: 'client' });
    // A user sub cannot pose as a client's subject.
    const err = await auth.authenticate(req({ authorization: `Bearer ${await sign({ sub: 'client:svc', client_id: 'kea-cli' })}` })).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'invalid_token', status: 401 });
  });

  test('user access token from a login flow (public CLI client, PKCE) works as bearer', async () => {
    const c = await oidc.discovery(new URL(idp.issuer), 'kea-cli', undefined, oidc.None(), { execute: [oidc.allowInsecureRequests] });
    const cv = oidc.randomPKCECodeVerifier();
    const state = oidc.randomState();
    const url = oidc.buildAuthorizationUrl(c, {
      redirect_uri: 'http://127.0.0.1/cli-callback',
      scope: 'openid api:read api:write',
      code_challenge: await oidc.calculatePKCECodeChallenge(cv),
      code_challenge_method: 'S256',
      state,
      resource: idp.audience,
    });
    // Walk login + consent; stop at the redirect to the CLI's loopback callback.
    const walk = await browserLogin(new CookieJar(), url.href, 'teacher', 'teacher', 'http://127.0.0.1');
    const cb = new URL(walk.final.headers.get('location')!, walk.finalUrl);
    expect(cb.pathname).toBe('/cli-callback');
    const tokens = await oidc.authorizationCodeGrant(c, cb, { pkceCodeVerifier: cv, expectedState: state }, { resource: idp.audience });
    const id = (await auth.authenticate(req({ authorization: `Bearer ${tokens.access_token}` })))!;
    expect(id.subject).toBe('teacher');
    expect(id.claims.roles).toEqual(['teacher']);
    expect(authorize(id, setGrades, {})).toBe('allow');
    expect(authorize(id, { mode: 'restricted', scopes: ['api:read', 'api:write'] }, {})).toBe('allow');
    // The ID token of the same login is not an access token for the gateway (aud = client id).
    expect(tokens.id_token).toBeTruthy();
    await expect(auth.authenticate(req({ authorization: `Bearer ${tokens.id_token}` }))).rejects.toMatchObject({ code: 'invalid_token', status: 401 });
  });

  describe('JWT attack list: each is a 401 AuthError', () => {
    const claims = () => ({ sub: 'mallory', roles: ['admin'], iss: idp.issuer, aud: idp.audience, iat: nowS(), exp: nowS() + 300 });
    const sign = (
      payload: Record<string, unknown>,
      key: CryptoKey | Uint8Array = privateKey,
      header: Record<string, unknown> = { alg: 'RS256', kid: KID, typ: 'at+jwt' },
    ) => new SignJWT(payload).setProtectedHeader(header as { alg: string }).sign(key);
    const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');

    async function rejects(token: string, code = 'invalid_token'): Promise<AuthError> {
      const err = await auth.authenticate(req({ authorization: `Bearer ${token}` })).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(AuthError);
      expect((err as AuthError).status).toBe(401);
      expect((err as AuthError).code).toBe(code);
      expect((err as AuthError).wwwAuthenticate).toMatch(/^Bearer realm="kea", error="invalid_token"/);
      return err as AuthError;
    }

    test('control: a well-formed token signed with the IdP key is accepted', async () => {
      const id = await auth.authenticate(req({ authorization: `Bearer ${await sign(claims())}` }));
      expect(id?.subject).toBe('mallory');
    });
    test('alg: none', async () => {
      await rejects(`${b64({ alg: 'none', typ: 'JWT' })}.${b64(claims())}.`);
      await rejects(`${b64({ alg: 'none', kid: KID })}.${b64(claims())}.c2ln`);
    });
    test('HS256 signed with the RSA public key (key confusion)', async () => {
      const pem = await exportSPKI(publicKey);
      await rejects(await sign(claims(), new TextEncoder().encode(pem), { alg: 'HS256', kid: KID }));
      const jwkN = new TextEncoder().encode(JSON.stringify(await exportJWK(publicKey)));
      await rejects(await sign(claims(), jwkN, { alg: 'HS256', kid: KID }));
    });
    test('expired', async () => {
      await rejects(await sign({ ...claims(), iat: nowS() - 7200, exp: nowS() - 3600 }), 'expired_token');
    });
    test('not yet valid (nbf)', async () => {
      await rejects(await sign({ ...claims(), nbf: nowS() + 3600 }));
    });
    test('missing exp', async () => {
      const { exp: _exp, ...noExp } = claims();
      await rejects(await sign(noExp));
    });
    test('wrong iss', async () => {
      await rejects(await sign({ ...claims(), iss: 'http://evil.example' }));
    });
    test('wrong aud', async () => {
      await rejects(await sign({ ...claims(), aud: 'urn:someone-else' }));
    });
    test('unknown kid forces a JWKS refetch, then fails', async () => {
      const rogue = await generateKeyPair('RS256');
      const before = requests.get('GET /jwks');
      await rejects(await sign(claims(), rogue.privateKey, { alg: 'RS256', kid: 'rogue-kid' }));
      expect(requests.get('GET /jwks')).toBeGreaterThan(before);
      // Known kid but signed by another key: signature failure.
      await rejects(await sign(claims(), rogue.privateKey, { alg: 'RS256', kid: KID }));
    });
    test('tampered payload (signature kept)', async () => {
      const good = await sign({ ...claims(), sub: 'eve', roles: ['student'] });
      const [h, , s] = good.split('.');
      await rejects(`${h}.${b64({ ...claims(), sub: 'eve', roles: ['teacher'] })}.${s}`);
    });
    test('garbage and empty', async () => {
      await rejects('not-a-jwt');
      await rejects('a.b.c');
      const e = await auth.authenticate(req({ authorization: 'Bearer ' })).catch((x: unknown) => x);
      expect(e).toMatchObject({ code: 'invalid_request', status: 401 });
    });
  });

  test('token cache honours exp: a cached token stops working when it expires', async () => {
    const strict = await createAuthenticator({ ...baseCfg, clockToleranceSeconds: 0 });
    const exp = nowS() + 2;
    const token = await new SignJWT({ sub: 'short-lived', iss: idp.issuer, aud: idp.audience, iat: nowS(), exp })
      .setProtectedHeader({ alg: 'RS256', kid: KID })
      .sign(privateKey);
    const r = req({ authorization: `Bearer ${token}` });
    expect(strict.authenticateCached!(r)).toBeUndefined(); // not verified yet: the caller must await authenticate
    const a = await strict.authenticate(r);
    expect(a?.subject).toBe('short-lived');
    expect(await strict.authenticate(r)).toBe(a); // served from the cache
    expect(strict.authenticateCached!(r)).toBe(a); // and without a promise
    await sleep(exp * 1000 - Date.now() + 50);
    expect(strict.authenticateCached!(r)).toBeUndefined(); // expired: the async path answers (and rejects)
    await expect(strict.authenticate(r)).rejects.toMatchObject({ code: 'expired_token', status: 401 });
    await strict.close();
  });

  test('IdP down at start: createAuthenticator resolves; bearer → 401, login → 503', async () => {
    const dead = http.createServer();
    await new Promise<void>((r) => dead.listen(0, '127.0.0.1', r));
    const deadIssuer = `http://127.0.0.1:${(dead.address() as AddressInfo).port}`;
    await new Promise<void>((r) => dead.close(() => r()));
    const a = await createAuthenticator({ ...baseCfg, issuer: deadIssuer });
    const token = await clientCredentials('script-student', 'script-student-secret');
    await expect(a.authenticate(req({ authorization: `Bearer ${token}` }))).rejects.toMatchObject({ code: 'invalid_token', status: 401 });
    const app = express().use(a.router());
    const srv = http.createServer(app);
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const res = await fetch(`http://127.0.0.1:${(srv.address() as AddressInfo).port}/auth/login`, { redirect: 'manual' });
    expect(res.status).toBe(503);
    expect(res.headers.get('content-type')).toMatch(/application\/problem\+json/);
    srv.closeAllConnections();
    await new Promise<void>((r) => srv.close(() => r()));
    await a.close();
  });

  test('micro-benchmark: cached session authenticate (report)', async () => {
    const { jar } = await loginAs('teacher');
    const r = req({ cookie: `theme=dark; kea_session=${jar.get('kea_session')}; other=1` });
    expect((await auth.authenticate(r))?.subject).toBe('teacher');
    const N = 100_000;
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < N; i++) await auth.authenticate(r);
    const ops = N / (Number(process.hrtime.bigint() - t0) / 1e9);
    console.log(`cached session authenticate: ${Math.round(ops).toLocaleString('en')} ops/s (cookie ${jar.get('kea_session')!.length} bytes)`);
    expect(ops).toBeGreaterThan(50_000);
  });

  test('micro-benchmark: cached bearer authenticate ≥ 200k ops/s', async () => {
    const token = await clientCredentials('script-teacher', 'script-teacher-secret');
    const r = req({ authorization: `Bearer ${token}` });
    await auth.authenticate(r);
    const N = 200_000;
    let best = 0;
    for (let round = 0; round < 3; round++) {
      const t0 = process.hrtime.bigint();
      for (let i = 0; i < N; i++) await auth.authenticate(r);
      const s = Number(process.hrtime.bigint() - t0) / 1e9;
      best = Math.max(best, N / s);
    }
    console.log(`cached bearer authenticate: ${Math.round(best).toLocaleString('en')} ops/s (token ${token.length} bytes)`);
    expect(best).toBeGreaterThanOrEqual(200_000);
  });
});

describe('session refresh and lifetime (IdP with 4 s access tokens)', () => {
  let gw2: Gateway;
  let idp2: DevIdp;
  let auth2: Authenticator;
  const req2 = counter();
  // Mutable copies: a test changes a user's roles at the IdP between login and refresh.
  const users2: DevUser[] = [
    ...DEMO_USERS.map((u) => ({ ...u, roles: [...u.roles] })),
    { username: 'dana', password: 'dana', roles: ['teacher'], groups: ['staff'] },
  ];

  beforeAll(async () => {
    gw2 = await startGateway();
    idp2 = await startDevIdp({ clients: [gatewayClient(gw2.url, GW_SECRET)], ttl: { accessToken: 4 }, onRequest: req2.onRequest, users: users2 });
    auth2 = await createAuthenticator({
      ...baseCfg,
      issuer: idp2.issuer,
      redirectUri: `${gw2.url}/auth/callback`,
      audience: idp2.audience,
      refreshSkewSeconds: 2,
    });
    gw2.setAuth(auth2);
  });
  afterAll(async () => {
    await auth2?.close();
    await gw2?.close();
    await idp2?.stop();
  });

  test('near expiry the session is refreshed once (even under concurrency) and the cookie re-issued', async () => {
    const { jar } = await loginAs('teacher', '/docs', new CookieJar(), gw2.url);
    const first = await (await jarFetch(jar, `${gw2.url}/whoami`)).json();
    expect(first).toMatchObject({ id: { subject: 'teacher' }, refreshed: false });
    const oldCookie = jar.get('kea_session')!;
    await sleep(2300); // now within refreshSkew (2 s) of the 4 s access-token expiry
    const tokenCalls = req2.get('POST /token');
    const results = await Promise.all(Array.from({ length: 5 }, () => auth2.authenticate(req({ cookie: `kea_session=${oldCookie}` }))));
    expect(req2.get('POST /token')).toBe(tokenCalls + 1); // one refresh_token grant for 5 requests
    for (const id of results) {
      expect(id?.subject).toBe('teacher');
      expect(id?.setCookie).toMatch(/^kea_session=[^;]+; Path=\/; HttpOnly; SameSite=Lax; Max-Age=\d+/);
    }
    const newCookie = /^kea_session=([^;]+)/.exec(results[0]!.setCookie!)![1];
    expect(newCookie).not.toBe(oldCookie);
    const again = await auth2.authenticate(req({ cookie: `kea_session=${newCookie}` }));
    expect(again?.subject).toBe('teacher');
    expect(again?.setCookie).toBeUndefined();
    expect(again?.claims.roles).toEqual(['teacher']);
    // Through HTTP, within the grace period: the old cookie still answers, with the new cookie attached.
    const viaHttp = await jarFetch(jar, `${gw2.url}/whoami`);
    expect(((await viaHttp.json()) as { refreshed: boolean }).refreshed).toBe(true);
    expect(jar.get('kea_session')).toBe(newCookie);
    expect(req2.get('POST /token')).toBe(tokenCalls + 1);
  });

  test('a refresh whose tokens omit roles and groups leaves the session without them (no stale roles)', async () => {
    const dana = users2.find((u) => u.username === 'dana')!;
    const { jar } = await loginAs('dana', '/docs', new CookieJar(), gw2.url);
    const cookie = `kea_session=${jar.get('kea_session')}`;
    const before = (await auth2.authenticate(req({ cookie })))!;
    expect(before.claims).toMatchObject({ roles: ['teacher'], groups: ['staff'] });
    expect(authorize(before, setGrades, {})).toBe('allow');
    // The IdP takes the roles away: its next tokens carry no roles claim and an empty groups claim.
    delete (dana as Partial<DevUser>).roles;
    dana.groups = undefined;
    await sleep(2300); // within refreshSkew of the 4 s access-token expiry
    const tokenCalls = req2.get('POST /token');
    const after = (await auth2.authenticate(req({ cookie })))!;
    expect(req2.get('POST /token')).toBe(tokenCalls + 1); // refreshed with the real IdP
    expect(after.setCookie).toBeTruthy();
    expect(after.subject).toBe('dana');
    expect(after.claims.roles).toBeUndefined();
    expect(after.claims.groups).toEqual([]);
    expect(authorize(after, setGrades, {})).toBe('forbidden');
    expect(authorize(after, { mode: 'restricted', groups: ['staff'] }, {})).toBe('forbidden');
    expect(identityHeaders(after)['x-kea-roles']).toBe('');
    // The re-sealed cookie holds the new claims too.
    const fresh = /^kea_session=([^;]+)/.exec(after.setCookie!)![1];
    const sealed = (await new Sealer([SESSION_SECRET]).unseal(fresh))!;
    expect((sealed.claims as Record<string, unknown>).roles).toBeUndefined();
  });

  test('after logout (refresh token revoked) an expiring session dies with expired_session', async () => {
    const { jar } = await loginAs('student', '/docs', new CookieJar(), gw2.url);
    const cookie = jar.get('kea_session')!;
    expect((await auth2.authenticate(req({ cookie: `kea_session=${cookie}` })))?.subject).toBe('student');
    const out = await jarFetch(jar, `${gw2.url}/auth/logout`, { method: 'POST', headers: { origin: gw2.url } });
    expect(out.status).toBe(303);
    await sleep(2300);
    // A stolen copy of the cookie cannot be revived: the refresh token was revoked at logout.
    const err = await auth2.authenticate(req({ cookie: `kea_session=${cookie}` })).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'expired_session', status: 401 });
    expect((err as AuthError).setCookie).toMatch(/Max-Age=0/);
  });

  test('absolute session lifetime', async () => {
    const short = await createAuthenticator({
      ...baseCfg,
      issuer: idp2.issuer,
      redirectUri: `${gw2.url}/auth/callback`,
      audience: idp2.audience,
      sessionTtlSeconds: 2,
    });
    gw2.setAuth(short);
    try {
      const { jar } = await loginAs('student', '/docs', new CookieJar(), gw2.url);
      const cookie = jar.get('kea_session')!;
      expect((await short.authenticate(req({ cookie: `kea_session=${cookie}` })))?.subject).toBe('student');
      const sealed = (await new Sealer([SESSION_SECRET]).unseal(cookie))!;
      expect((sealed.exp as number) - (sealed.iat as number)).toBe(2);
      await sleep((sealed.exp as number) * 1000 - Date.now() + 50);
      await expect(short.authenticate(req({ cookie: `kea_session=${cookie}` }))).rejects.toMatchObject({ code: 'expired_session' });
    } finally {
      gw2.setAuth(auth2);
      await short.close();
    }
  });

  test('IdP unreachable at refresh time: the session is kept (no cookie change), retried later', async () => {
    const { jar } = await loginAs('teacher', '/docs', new CookieJar(), gw2.url);
    const cookie = jar.get('kea_session')!;
    await idp2.stop(); // the IdP goes away (this is the last test of this IdP)
    await sleep(2300);
    const id = await auth2.authenticate(req({ cookie: `kea_session=${cookie}` }));
    expect(id?.subject).toBe('teacher');
    expect(id?.setCookie).toBeUndefined();
  });
});

export type { Identity };
