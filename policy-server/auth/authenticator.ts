/**
 * The authenticator: OIDC browser login (authorization code + PKCE, state, nonce) with
 * `openid-client`, sealed session cookies with transparent refresh, and bearer JWTs via
 * {@link BearerVerifier}. See docs/adr/0003-sessions-and-tokens.md.
 */
import type { IncomingMessage } from 'node:http';
import { hash } from 'node:crypto';
import express, { type Request, type Response, type Router } from 'express';
import * as oidc from 'openid-client';
import { decodeJwt } from 'jose';
import { LRUCache } from 'lru-cache';
import { AuthError } from './errors.js';
import type { AuthConfig, Authenticator, Identity } from './types.js';
import { BearerVerifier, CLIENT_SUBJECT_PREFIX } from './bearer.js';
import { Sealer, serializeCookie, readCookie, type SessionData, type LoginTx } from './session.js';
import { safeReturnTo } from './redirect.js';

const LOOPBACK = new Set(['localhost', '127.0.0.1', '[::1]', '::1']);
/** Protocol claims not copied into the session's identity claims. */
const PROTOCOL_CLAIMS = new Set([
  'iss',
  'aud',
  'exp',
  'iat',
  'nbf',
  'jti',
  'nonce',
  'at_hash',
  'c_hash',
  's_hash',
  'azp',
  'auth_time',
  'sid',
  'acr',
  'amr',
  'client_id',
]);
/** Login transactions live this long (s). */
const TX_TTL = 600;
const TX_COOKIE = 'kea_auth_tx';
/** Browsers cap a cookie at 4096 bytes (RFC 6265 §6.1). */
const MAX_COOKIE_BYTES = 4000;
/** After a transient refresh failure, retry no sooner than this (ms). */
const REFRESH_RETRY_MS = 10_000;
/** An old cookie keeps mapping to its refreshed session this long (ms), for requests in flight. */
const REFRESH_GRACE_MS = 30_000;

interface SessionEntry {
  identity: Identity;
  data: SessionData;
  /** When set, this (old) cookie was superseded: answer with the refreshed identity until `untilMs`. */
  untilMs?: number;
  /** Earliest time for the next refresh attempt (epoch ms), after a transient failure. */
  retryAtMs?: number;
}

function problem(res: Response, status: number, title: string, detail: string, extraHeaders: Record<string, string | string[]> = {}): void {
  res.status(status);
  for (const [k, v] of Object.entries(extraHeaders)) res.append(k, v);
  res.set('cache-control', 'no-store');
  res.type('application/problem+json').send(JSON.stringify({ type: 'about:blank', title, status, detail }));
}

/**
 * Whether a state-changing request comes from a page of the gateway itself: by Fetch Metadata
 * (`Sec-Fetch-Site: same-origin`) when the browser sends it, else by `Origin` (RFC 6454 §7),
 * which browsers send on every cross-site POST. A request with neither header is not from a
 * browser page (curl, scripts) and is allowed; older browsers that send neither also withhold
 * the `SameSite=Lax` session cookie from cross-site POSTs.
 * @param headers request headers (lower-case names).
 * @param origin the gateway's origin, e.g. `https://gw.example.com`.
 */
export function sameOriginRequest(headers: IncomingMessage['headers'], origin: string): boolean {
  const site = headers['sec-fetch-site'];
  if (site !== undefined) return site === 'same-origin';
  const o = headers.origin;
  if (o !== undefined) return o === origin;
  return true;
}

/** The GET /auth/logout confirmation page: a button that POSTs to `action` (a same-origin path, escaped here). */
function logoutPage(action: string): string {
  const a = action.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>Sign out</title></head>
<body><h1>Sign out of KEA?</h1><form method="post" action="${a}"><button type="submit">Sign out</button></form></body></html>
`;
}

function nowS(): number {
  return Math.floor(Date.now() / 1000);
}

/**
 * Claims of a session identity: access-token claims (if a JWT), overlaid by ID-token claims,
 * minus protocol claims. Built from one token response only: on refresh, a claim the new tokens
 * omit (roles taken away at the IdP) is gone, never carried over from the previous tokens. An
 * IdP that answers a refresh without an ID token and with an opaque access token therefore
 * leaves the session with its `scope` only (fail closed: the user logs in again for roles).
 */
function sessionClaims(tokens: oidc.TokenEndpointResponse & oidc.TokenEndpointResponseHelpers): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  try {
    // The access token came straight from the token endpoint over the back channel; its
    // claims (scope, roles) are trusted as the IdP's statement about this session.
    const at = decodeJwt(tokens.access_token);
    for (const [k, v] of Object.entries(at)) if (!PROTOCOL_CLAIMS.has(k)) out[k] = v;
  } catch {
    /* opaque access token: no claims from it */
  }
  if (typeof tokens.scope === 'string' && out.scope === undefined) out.scope = tokens.scope;
  const id = tokens.claims();
  if (id) for (const [k, v] of Object.entries(id)) if (!PROTOCOL_CLAIMS.has(k)) out[k] = v;
  return out;
}

/**
 * Creates the authenticator. Performs OIDC discovery (`/.well-known/openid-configuration`)
 * once; if the IdP is unreachable it retries lazily (at most every 5 s) on the next login
 * or bearer verification, so the policy server can start before its IdP.
 * @throws Error on invalid configuration (short secrets, Secure cookies off on a non-loopback
 * gateway, `http:` issuer on a non-loopback host without `allowHttpIssuer`, HS/none algorithms).
 */
export async function createAuthenticator(cfg: AuthConfig): Promise<Authenticator> {
  const issuerUrl = new URL(cfg.issuer);
  for (const a of cfg.algorithms ?? []) {
    if (a === 'none' || /^HS/i.test(a)) throw new Error(`auth: algorithm ${a} is not allowed for bearer tokens (asymmetric only)`);
  }
  const redirectUri = new URL(cfg.redirectUri);
  if (issuerUrl.protocol === 'http:' && !LOOPBACK.has(issuerUrl.hostname) && !cfg.allowHttpIssuer) {
    throw new Error(`auth: issuer ${cfg.issuer} uses http on a non-loopback host; set allowHttpIssuer for an in-cluster dev IdP`);
  }
  const secure = cfg.cookieSecure ?? true;
  if (!secure && !(redirectUri.protocol === 'http:' && LOOPBACK.has(redirectUri.hostname))) {
    throw new Error('auth: cookieSecure=false is only allowed when the gateway is http://localhost or http://127.0.0.1');
  }
  const cookieName = cfg.cookieName ?? (secure ? '__Host-kea_session' : 'kea_session');
  const sealer = new Sealer(cfg.sessionSecrets);
  const sessionTtl = cfg.sessionTtlSeconds ?? 8 * 3600;
  const refreshSkew = cfg.refreshSkewSeconds ?? 60;
  const scope = cfg.scope ?? 'openid profile email roles offline_access';
  const audiences = Array.isArray(cfg.audience) ? cfg.audience : [cfg.audience];
  const resource = cfg.resource === undefined ? audiences[0] : cfg.resource;
  const gatewayOrigin = redirectUri.origin;
  const extraReturnHosts = new Set((cfg.allowedReturnHosts ?? []).map((h) => h.toLowerCase()));
  const gatewayRoot = `${gatewayOrigin}/`;
  const postLogout = cfg.postLogoutRedirectUri ?? gatewayRoot;
  const callbackPath = redirectUri.pathname;
  const clearSession = serializeCookie(cookieName, '', { secure, maxAge: 0 });

  // ---- discovery (lazy retry) -------------------------------------------------------
  let config: oidc.Configuration | undefined;
  let bearer: BearerVerifier | undefined;
  let discovering: Promise<void> | undefined;
  let lastAttempt = 0;
  let closed = false;
  const insecure = issuerUrl.protocol === 'http:';

  async function discover(): Promise<void> {
    const c = await oidc.discovery(issuerUrl, cfg.clientId, cfg.clientSecret, undefined, {
      ...(insecure ? { execute: [oidc.allowInsecureRequests] } : {}),
      timeout: 5,
    });
    const jwksUri = c.serverMetadata().jwks_uri;
    if (!jwksUri) throw new Error('auth: issuer metadata has no jwks_uri');
    bearer = new BearerVerifier({
      issuer: c.serverMetadata().issuer,
      audience: cfg.audience,
      jwksUri: new URL(jwksUri),
      ...(cfg.algorithms ? { algorithms: cfg.algorithms } : {}),
      ...(cfg.clockToleranceSeconds !== undefined ? { clockTolerance: cfg.clockToleranceSeconds } : {}),
      ...(cfg.tokenCacheMax !== undefined ? { cacheMax: cfg.tokenCacheMax } : {}),
      ...(cfg.jwksCooldownMs !== undefined ? { jwksCooldownMs: cfg.jwksCooldownMs } : {}),
    });
    config = c;
  }
  async function ready(): Promise<oidc.Configuration> {
    if (config) return config;
    if (!discovering) {
      if (Date.now() - lastAttempt < 5000) throw new Error('identity provider unavailable (discovery failed recently)');
      lastAttempt = Date.now();
      discovering = discover().finally(() => {
        discovering = undefined;
      });
    }
    await discovering;
    return config!;
  }
  try {
    await ready();
  } catch {
    /* retried lazily */
  }

  // ---- sessions ----------------------------------------------------------------------
  const sessions = new LRUCache<string, SessionEntry>({ max: cfg.tokenCacheMax ?? 10000 });
  const refreshing = new Map<string, Promise<SessionEntry>>();

  function identityOf(d: SessionData, setCookie?: string): Identity {
    const id: Identity = { subject: d.sub, kind: 'user', claims: Object.freeze({ ...d.claims }), via: 'session' };
    if (setCookie) id.setCookie = setCookie;
    return Object.freeze(id);
  }

  async function sealSession(d: SessionData): Promise<string> {
    const v = await sealer.seal(d);
    const cookie = serializeCookie(cookieName, v, { secure, maxAge: d.exp - nowS() });
    if (cookie.length > MAX_COOKIE_BYTES) {
      throw new Error(`session cookie would be ${cookie.length} bytes (> ${MAX_COOKIE_BYTES}): the IdP's claims are too large`);
    }
    return cookie;
  }

  function newSession(tokens: oidc.TokenEndpointResponse & oidc.TokenEndpointResponseHelpers, prev?: SessionData): SessionData {
    const claims = sessionClaims(tokens);
    const sub = tokens.claims()?.sub ?? prev?.sub;
    if (!sub) throw new Error('token response has no ID token subject');
    // Subjects with this prefix name machine clients (bearer.ts): a user may not take one.
    if (sub.startsWith(CLIENT_SUBJECT_PREFIX)) throw new Error(`ID token subject uses the reserved prefix ${CLIENT_SUBJECT_PREFIX}`);
    if (prev && sub !== prev.sub) throw new Error('refreshed ID token has a different subject');
    const t = nowS();
    const d: SessionData = {
      t: 'session',
      sub,
      claims,
      iat: prev?.iat ?? t,
      exp: prev?.exp ?? t + sessionTtl,
      atExp: t + (tokens.expiresIn() ?? 300),
    };
    const rt = tokens.refresh_token ?? prev?.rt;
    if (rt) d.rt = rt;
    return d;
  }

  async function refresh(key: string, entry: SessionEntry): Promise<SessionEntry> {
    const c = await ready();
    let tokens;
    try {
      tokens = await oidc.refreshTokenGrant(c, entry.data.rt!, resource ? { resource } : undefined);
    } catch (err) {
      if (err instanceof oidc.ResponseBodyError && (err.error === 'invalid_grant' || err.error === 'unauthorized_client')) {
        sessions.delete(key);
        throw new AuthError('expired_session', 'the identity provider refused to refresh the session; log in again', clearSession);
      }
      // Transient (IdP down, timeout): keep the current session, retry later.
      entry.retryAtMs = Date.now() + REFRESH_RETRY_MS;
      return entry;
    }
    const data = newSession(tokens, entry.data);
    const setCookie = await sealSession(data);
    const fresh: SessionEntry = { identity: identityOf(data), data };
    const newKey = hash('sha256', setCookie.slice(cookieName.length + 1, setCookie.indexOf(';')), 'base64url');
    sessions.set(newKey, fresh);
    // The old cookie answers with the refreshed identity (and the new cookie) for a grace period.
    sessions.set(key, { identity: identityOf(data, setCookie), data, untilMs: Date.now() + REFRESH_GRACE_MS });
    return { identity: identityOf(data, setCookie), data };
  }

  /** A current session whose access token is due for refresh (and not waiting out a failed attempt). */
  function needsRefresh(entry: SessionEntry, t: number): boolean {
    return entry.untilMs === undefined && !!entry.data.rt && entry.data.atExp - refreshSkew <= t && (entry.retryAtMs ?? 0) <= Date.now();
  }

  async function fromSession(raw: string): Promise<Identity> {
    const key = hash('sha256', raw, 'base64url');
    let entry = sessions.get(key);
    const t = nowS();
    if (entry?.untilMs !== undefined && entry.untilMs < Date.now()) {
      sessions.delete(key);
      throw new AuthError('expired_session', 'superseded session cookie', clearSession);
    }
    if (!entry) {
      const v = await sealer.unseal(raw);
      if (
        !v ||
        v.t !== 'session' ||
        typeof v.sub !== 'string' ||
        typeof v.exp !== 'number' ||
        typeof v.atExp !== 'number' ||
        typeof v.claims !== 'object' ||
        v.claims === null
      ) {
        throw new AuthError('invalid_session', 'session cookie is invalid', clearSession);
      }
      const data = v as unknown as SessionData;
      entry = { identity: identityOf(data), data };
      if (data.exp > t) sessions.set(key, entry);
    }
    if (entry.data.exp <= t) {
      sessions.delete(key);
      throw new AuthError('expired_session', 'session expired; log in again', clearSession);
    }
    if (needsRefresh(entry, t)) {
      let p = refreshing.get(key);
      if (!p) {
        p = refresh(key, entry).finally(() => refreshing.delete(key));
        refreshing.set(key, p);
      }
      entry = await p;
    }
    return entry.identity;
  }

  // ---- authenticate --------------------------------------------------------------------
  /** The common case answered without a promise: a cached bearer token or a cached, current session. */
  function authenticateCached(req: IncomingMessage): Identity | null | undefined {
    const authz = req.headers.authorization;
    if (authz !== undefined) {
      if (!bearer || authz.length <= 7 || !authz.startsWith('Bearer ')) return undefined;
      const token = authz.slice(7).trim();
      return token ? bearer.lookup(token) : undefined;
    }
    const raw = readCookie(req.headers.cookie, cookieName);
    if (raw === undefined || raw === '') return null;
    const entry = sessions.get(hash('sha256', raw, 'base64url'));
    if (!entry || entry.untilMs !== undefined) return undefined;
    const t = nowS();
    if (entry.data.exp <= t || needsRefresh(entry, t)) return undefined;
    return entry.identity;
  }

  async function authenticate(req: IncomingMessage): Promise<Identity | null> {
    const authz = req.headers.authorization;
    if (authz !== undefined) {
      // RFC 7235: the scheme is case-insensitive ("Bearer" is the common spelling: checked first).
      if (authz.length > 7 && (authz.startsWith('Bearer ') || (authz.charCodeAt(6) === 32 && authz.slice(0, 6).toLowerCase() === 'bearer'))) {
        const token = authz.slice(7).trim();
        if (!token) throw new AuthError('invalid_request', 'empty bearer token');
        if (bearer) {
          // Hot path: a cached token costs one hash and one lookup, no parsing.
          const hit = bearer.lookup(token);
          if (hit) return hit;
        } else {
          try {
            await ready();
          } catch {
            throw new AuthError('invalid_token', 'token cannot be verified: identity provider unavailable');
          }
        }
        return bearer!.verify(token);
      }
      if (/^bearer\s*$/i.test(authz)) throw new AuthError('invalid_request', 'empty bearer token');
      // Other schemes (Basic, ...) are not ours: fall through to the cookie.
    }
    const raw = readCookie(req.headers.cookie, cookieName);
    if (raw === undefined || raw === '') return null;
    return fromSession(raw);
  }

  // ---- router ----------------------------------------------------------------------------
  function router(): Router {
    const r = express.Router();

    r.get('/auth/login', async (req: Request, res: Response) => {
      const returnTo = safeReturnTo(req.query.returnTo, gatewayOrigin, extraReturnHosts);
      let c: oidc.Configuration;
      try {
        c = await ready();
      } catch (err) {
        problem(res, 503, 'Identity provider unavailable', (err as Error).message);
        return;
      }
      const cv = oidc.randomPKCECodeVerifier();
      const tx: LoginTx = { t: 'tx', state: oidc.randomState(), nonce: oidc.randomNonce(), cv, rt: returnTo, exp: nowS() + TX_TTL };
      const params: Record<string, string> = {
        redirect_uri: redirectUri.href,
        scope,
        response_type: 'code',
        code_challenge: await oidc.calculatePKCECodeChallenge(cv),
        code_challenge_method: 'S256',
        state: tx.state,
        nonce: tx.nonce,
      };
      if (resource) params.resource = resource;
      const url = oidc.buildAuthorizationUrl(c, params);
      res.append('set-cookie', serializeCookie(TX_COOKIE, await sealer.seal(tx), { secure, path: callbackPath, maxAge: TX_TTL }));
      res.set('cache-control', 'no-store');
      res.redirect(302, url.href);
    });

    r.get(callbackPath, async (req: Request, res: Response) => {
      const clearTx = serializeCookie(TX_COOKIE, '', { secure, path: callbackPath, maxAge: 0 });
      const rawTx = readCookie(req.headers.cookie, TX_COOKIE);
      const tx = rawTx ? await sealer.unseal(rawTx) : null;
      if (!tx || tx.t !== 'tx' || typeof tx.exp !== 'number' || tx.exp < nowS()) {
        problem(res, 400, 'Login transaction missing or expired', 'start again at /auth/login', { 'set-cookie': clearTx });
        return;
      }
      const t = tx as unknown as LoginTx;
      const q = new URL(req.originalUrl, 'http://x').search;
      if (new URLSearchParams(q).has('error')) {
        const p = new URLSearchParams(q);
        problem(res, 401, 'Login failed', `${p.get('error')}: ${p.get('error_description') ?? ''}`.slice(0, 300), { 'set-cookie': clearTx });
        return;
      }
      let tokens;
      try {
        const c = await ready();
        const current = new URL(redirectUri.href);
        current.search = q;
        tokens = await oidc.authorizationCodeGrant(
          c,
          current,
          { pkceCodeVerifier: t.cv, expectedState: t.state, expectedNonce: t.nonce, idTokenExpected: true },
          resource ? { resource } : undefined,
        );
      } catch (err) {
        const e = err as Error & { error?: string; code?: string };
        problem(res, 400, 'Login failed', `${e.error ?? e.code ?? 'error'}: ${e.message}`.slice(0, 300), { 'set-cookie': clearTx });
        return;
      }
      let cookie: string;
      try {
        cookie = await sealSession(newSession(tokens));
      } catch (err) {
        problem(res, 500, 'Session could not be created', (err as Error).message, { 'set-cookie': clearTx });
        return;
      }
      res.append('set-cookie', [clearTx, cookie]);
      res.set('cache-control', 'no-store');
      res.redirect(303, t.rt);
    });

    const logout = async (req: Request, res: Response) => {
      const raw = readCookie(req.headers.cookie, cookieName);
      let rt: string | undefined;
      if (raw) {
        const key = hash('sha256', raw, 'base64url');
        const v = sessions.get(key)?.data ?? ((await sealer.unseal(raw)) as SessionData | null);
        sessions.delete(key);
        if (v && v.t === 'session' && typeof v.rt === 'string') rt = v.rt;
      }
      res.append('set-cookie', clearSession);
      res.set('cache-control', 'no-store');
      const c = config;
      if (c && rt) {
        // Best effort: revoke the refresh token (RFC 7009) so the session cannot be revived.
        await oidc.tokenRevocation(c, rt, { token_type_hint: 'refresh_token' }).catch(() => undefined);
      }
      if (c?.serverMetadata().end_session_endpoint) {
        // RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0).
        res.redirect(303, oidc.buildEndSessionUrl(c, { post_logout_redirect_uri: postLogout }).href);
        return;
      }
      res.redirect(303, safeReturnTo(req.query.returnTo, gatewayOrigin, extraReturnHosts));
    };
    // Logging out changes state, so only a same-origin POST does it (a cross-site <img> or
    // link must not end the session). GET shows a page whose button makes that POST.
    r.get('/auth/logout', (req: Request, res: Response) => {
      const rt = safeReturnTo(req.query.returnTo, gatewayOrigin, extraReturnHosts);
      res.set({
        'cache-control': 'no-store',
        'content-security-policy': "default-src 'none'; frame-ancestors 'none'; base-uri 'none'",
        'x-frame-options': 'DENY',
        'x-content-type-options': 'nosniff',
        'referrer-policy': 'no-referrer',
      });
      res.type('text/html').send(logoutPage(`/auth/logout?returnTo=${encodeURIComponent(rt)}`));
    });
    r.post('/auth/logout', async (req: Request, res: Response) => {
      if (!sameOriginRequest(req.headers, gatewayOrigin)) {
        problem(res, 403, 'Cross-site logout refused', 'log out from a page of this gateway (POST /auth/logout from the same origin)');
        return;
      }
      await logout(req, res);
    });

    r.get('/auth/me', async (req: Request, res: Response) => {
      let id: Identity | null;
      try {
        id = await authenticate(req);
      } catch (err) {
        if (err instanceof AuthError) {
          problem(res, 401, 'Unauthorized', err.message, {
            'www-authenticate': err.wwwAuthenticate,
            ...(err.setCookie ? { 'set-cookie': err.setCookie } : {}),
          });
          return;
        }
        throw err;
      }
      if (!id) {
        problem(res, 401, 'Unauthorized', 'not logged in', { 'www-authenticate': 'Bearer realm="kea"' });
        return;
      }
      if (id.setCookie) res.append('set-cookie', id.setCookie);
      res.set('cache-control', 'no-store');
      res.json({ subject: id.subject, kind: id.kind ?? 'user', via: id.via, claims: id.claims });
    });
    return r;
  }

  return {
    authenticate,
    authenticateCached,
    router,
    loginUrl(returnTo: string): string {
      return `/auth/login?returnTo=${encodeURIComponent(returnTo)}`;
    },
    async close(): Promise<void> {
      if (closed) return;
      closed = true;
      sessions.clear();
      bearer?.clear();
    },
  };
}
