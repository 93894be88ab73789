/**
 * Development OpenID Provider: a real, certified OP (`oidc-provider` 9) with demo users, for
 * tests and the local stack (`kea up`). Not for production: users and clients live in memory,
 * signing keys are generated at start unless given.
 *
 * Demo users (username / password → `roles` claim):
 * - `student` / `student` → `['student']`
 * - `teacher` / `teacher` → `['teacher']`
 * - `admin`   / `admin`   → `['admin']`
 *
 * The `roles` claim is in the ID token (scope `roles`, requested by default by KEA's gateway
 * client) and in every JWT access token (added by `extraTokenClaims`). Client-credentials
 * clients get the roles configured on the client.
 *
 * JWT access tokens (RFC 9068) are issued for the resource indicator (RFC 8707) `audience`,
 * which is the gateway: `resource=<audience>` in the authorization/token request, or by
 * default when the client asks for none.
 *
 * Login is a plain HTML form (`POST /interaction/:uid/login`, fields `username`,
 * `password`), then a consent form (`POST /interaction/:uid/confirm`); both work from a
 * cookie-jar test with no browser.
 *
 * "Dev mode": the issuer may be `http://` (oidc-provider only marks cookies Secure on https
 * requests and accepts `http:` redirect URIs for web clients); `devInteractions` is off (we
 * render our own forms); cookie keys are random per start.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';
import Provider, { errors as oidcErrors } from 'oidc-provider';
import type { Configuration, KoaContextWithOIDC, ClientMetadata } from 'oidc-provider';
import { exportJWK, generateKeyPair, type JWK } from 'jose';

/** A demo user. */
export interface DevUser {
  username: string;
  password: string;
  roles: string[];
  groups?: string[];
  name?: string;
  email?: string;
}

/** Users every dev IdP knows (passwords equal usernames; documented in docs/adr/0003). */
export const DEMO_USERS: readonly DevUser[] = Object.freeze([
  { username: 'student', password: 'student', roles: ['student'], groups: ['class-a'], name: 'Sam Student', email: 'student@kea.test' },
  { username: 'teacher', password: 'teacher', roles: ['teacher'], groups: ['staff'], name: 'Tess Teacher', email: 'teacher@kea.test' },
  { username: 'admin', password: 'admin', roles: ['admin'], groups: ['staff'], name: 'Ada Admin', email: 'admin@kea.test' },
]);

/** An OAuth client registered at the dev IdP. */
export interface DevClient {
  clientId: string;
  /** Omit for a public client (`token_endpoint_auth_method: none`, PKCE mandatory). */
  clientSecret?: string;
  /** Default `['authorization_code', 'refresh_token']`. */
  grantTypes?: Array<'authorization_code' | 'refresh_token' | 'client_credentials'>;
  redirectUris?: string[];
  postLogoutRedirectUris?: string[];
  /** `roles` claim of client-credentials access tokens (machine identities). */
  roles?: string[];
  /** Scopes this client may request (resource scopes for client credentials). Default: all. */
  scope?: string;
}

/** Options of {@link startDevIdp}. */
export interface DevIdpOptions {
  /** TCP port, default 0 (ephemeral). */
  port?: number;
  /** Listen address, default `127.0.0.1`. */
  host?: string;
  /** Issuer URL. Default `http://<host>:<port>`. Use it when the IdP is reached through another name. */
  issuer?: string;
  clients: DevClient[];
  /** Resource indicator of the gateway = `aud` of JWT access tokens. Default `urn:kea:gateway`. */
  audience?: string;
  /** Resource scopes offered for the gateway. Default `api:read api:write`. */
  resourceScopes?: string;
  /** Users; default {@link DEMO_USERS}. */
  users?: readonly DevUser[];
  /** Private signing JWKs (with `kid`). Default: one fresh RS256 key. */
  jwks?: { keys: JWK[] };
  /** Token lifetimes in seconds. */
  ttl?: { accessToken?: number; idToken?: number; refreshToken?: number; session?: number };
  /** Observer for every HTTP request (tests count JWKS fetches with it). */
  onRequest?: (method: string, path: string) => void;
}

/** A running dev IdP. */
export interface DevIdp {
  issuer: string;
  /** Resource indicator / access token audience. */
  audience: string;
  /** Public JWKS served at `/jwks`. */
  publicJwks: { keys: JWK[] };
  provider: Provider;
  stop(): Promise<void>;
}

/** Helper: the confidential client KEA's gateway uses for browser login (code + PKCE + refresh). */
export function gatewayClient(gatewayUrl: string, clientSecret: string, clientId = 'kea-gateway'): DevClient {
  const base = gatewayUrl.replace(/\/+$/, '');
  return {
    clientId,
    clientSecret,
    grantTypes: ['authorization_code', 'refresh_token'],
    redirectUris: [`${base}/auth/callback`],
    postLogoutRedirectUris: [`${base}/`],
  };
}

/** Helper: a client-credentials client for scripts. */
export function scriptsClient(clientId: string, clientSecret: string, roles: string[] = []): DevClient {
  return { clientId, clientSecret, grantTypes: ['client_credentials'], roles };
}

function esc(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function page(title: string, body: string): string {
  return `<!doctype html><html><head><meta charset="utf-8"><title>${esc(title)}</title>
<style>body{font-family:system-ui,sans-serif;max-width:28rem;margin:4rem auto}input,button{display:block;margin:.5rem 0;padding:.4rem;width:100%}</style>
</head><body><h1>${esc(title)}</h1>${body}</body></html>`;
}

async function readForm(req: http.IncomingMessage): Promise<URLSearchParams> {
  let size = 0;
  const chunks: Buffer[] = [];
  for await (const c of req) {
    size += (c as Buffer).length;
    if (size > 64 * 1024) throw new Error('form too large');
    chunks.push(c as Buffer);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

/**
 * Starts the dev OpenID Provider on `host:port`.
 * @returns the issuer URL and `stop()`; resolves once listening.
 * @throws if the port is taken or the configuration is rejected by oidc-provider.
 */
export async function startDevIdp(opts: DevIdpOptions): Promise<DevIdp> {
  const host = opts.host ?? '127.0.0.1';
  const audience = opts.audience ?? 'urn:kea:gateway';
  const resourceScopes = opts.resourceScopes ?? 'api:read api:write';
  const users = new Map((opts.users ?? DEMO_USERS).map((u) => [u.username, u]));
  const clientRoles = new Map(opts.clients.map((c) => [c.clientId, c.roles ?? []]));

  let jwks = opts.jwks;
  if (!jwks) {
    const { privateKey } = await generateKeyPair('RS256', { extractable: true });
    const jwk = await exportJWK(privateKey);
    jwks = { keys: [{ ...jwk, kid: `dev-${randomBytes(6).toString('hex')}`, alg: 'RS256', use: 'sig' }] };
  }
  const publicJwks = {
    keys: jwks.keys.map((k) => {
      const { d: _d, p: _p, q: _q, dp: _dp, dq: _dq, qi: _qi, ...pub } = k;
      return pub;
    }),
  };

  const server = http.createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const issuer = (opts.issuer ?? `http://${host.includes(':') ? `[${host}]` : host}:${port}`).replace(/\/+$/, '');

  const clients: ClientMetadata[] = opts.clients.map((c) => {
    const grants = c.grantTypes ?? ['authorization_code', 'refresh_token'];
    const codeFlow = grants.includes('authorization_code');
    return {
      client_id: c.clientId,
      ...(c.clientSecret ? { client_secret: c.clientSecret } : { token_endpoint_auth_method: 'none' }),
      grant_types: grants,
      response_types: codeFlow ? ['code'] : [],
      redirect_uris: c.redirectUris ?? [],
      post_logout_redirect_uris: c.postLogoutRedirectUris ?? [],
      ...(c.scope ? { scope: c.scope } : {}),
    };
  });

  const configuration: Configuration = {
    clients,
    jwks: jwks,
    cookies: { keys: [randomBytes(32).toString('hex')] },
    claims: {
      openid: ['sub'],
      profile: ['name', 'preferred_username'],
      email: ['email'],
      roles: ['roles', 'groups'],
    },
    scopes: ['openid', 'offline_access', 'profile', 'email', 'roles'],
    // Put scope claims (roles) into the ID token of the code flow too.
    conformIdTokenClaims: false,
    pkce: { required: () => true },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      introspection: { enabled: true },
      revocation: {
        enabled: true,
        // A client may revoke only its own tokens.
        allowedPolicy: async (_ctx, client, token) => token.clientId === client.clientId,
      },
      rpInitiatedLogout: {
        enabled: true,
        logoutSource: async (ctx, form) => {
          ctx.type = 'html';
          ctx.body = page(
            'Sign out of KEA (dev IdP)',
            `${form}<button autofocus type="submit" form="op.logoutForm" value="yes" name="logout">Sign out</button>`,
          );
        },
        postLogoutSuccessSource: async (ctx) => {
          ctx.type = 'html';
          ctx.body = page('Signed out', '<p>You are signed out of the dev IdP.</p>');
        },
      },
      resourceIndicators: {
        enabled: true,
        defaultResource: async (_ctx, _client, oneOf) => oneOf ?? audience,
        useGrantedResource: async () => true,
        getResourceServerInfo: async (_ctx, resourceIndicator) => {
          if (resourceIndicator !== audience) throw new oidcErrors.InvalidTarget();
          return {
            scope: resourceScopes,
            audience,
            accessTokenTTL: opts.ttl?.accessToken ?? 600,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg: 'RS256' } },
          };
        },
      },
    },
    issueRefreshToken: async (_ctx, client, code) =>
      client.grantTypeAllowed('refresh_token') && (code.scopes.has('offline_access') || code.scopes.has('openid')),
    extraTokenClaims: async (_ctx, token) => {
      const t = token as unknown as { accountId?: string; clientId?: string; kind: string };
      if (t.accountId) {
        const u = users.get(t.accountId);
        if (u) return { roles: u.roles, groups: u.groups ?? [], preferred_username: u.username };
      } else if (t.clientId) {
        return { roles: clientRoles.get(t.clientId) ?? [] };
      }
      return undefined;
    },
    findAccount: async (_ctx, sub) => {
      const u = users.get(sub);
      if (!u) return undefined;
      return {
        accountId: sub,
        claims: async () => ({
          sub,
          name: u.name ?? u.username,
          preferred_username: u.username,
          email: u.email,
          roles: u.roles,
          groups: u.groups ?? [],
        }),
      };
    },
    interactions: { url: async (_ctx, interaction) => `/interaction/${interaction.uid}` },
    ttl: {
      AccessToken: opts.ttl?.accessToken ?? 600,
      ClientCredentials: opts.ttl?.accessToken ?? 600,
      IdToken: opts.ttl?.idToken ?? 3600,
      RefreshToken: opts.ttl?.refreshToken ?? 86400,
      Session: opts.ttl?.session ?? 86400,
      Grant: 86400 * 14,
      Interaction: 3600,
      AuthorizationCode: 60,
    },
    renderError: async (ctx, out) => {
      ctx.type = 'html';
      ctx.body = page('Error', `<pre>${esc(JSON.stringify(out, null, 2))}</pre>`);
    },
  };

  const provider = new Provider(issuer, configuration);
  provider.proxy = true;
  const callback = provider.callback();

  async function interaction(req: http.IncomingMessage, res: http.ServerResponse, path: string): Promise<void> {
    const m = /^\/interaction\/([\w-]+)(?:\/(login|confirm|abort))?$/.exec(path);
    if (!m) {
      res.writeHead(404).end();
      return;
    }
    const action = m[2];
    const details = await provider.interactionDetails(req, res);
    if (details.uid !== m[1]) throw new Error('interaction uid mismatch');
    const { prompt, params } = details;
    const send = (status: number, html: string) => {
      res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' }).end(html);
    };
    if (!action && req.method === 'GET') {
      if (prompt.name === 'login') {
        send(
          200,
          page(
            'Sign in to KEA (dev IdP)',
            `
<form method="post" action="/interaction/${esc(details.uid)}/login">
<label>Username <input name="username" autocomplete="username" autofocus></label>
<label>Password <input name="password" type="password" autocomplete="current-password"></label>
<button type="submit">Sign in</button></form>
<p>Demo users: student/student, teacher/teacher, admin/admin.</p>`,
          ),
        );
      } else {
        send(
          200,
          page(
            'Authorize',
            `<p>Client <b>${esc(String(params.client_id))}</b> asks for: ${esc(String(params.scope ?? ''))}</p>
<form method="post" action="/interaction/${esc(details.uid)}/confirm"><button type="submit">Authorize</button></form>
<form method="post" action="/interaction/${esc(details.uid)}/abort"><button type="submit">Cancel</button></form>`,
          ),
        );
      }
      return;
    }
    if (req.method !== 'POST') {
      res.writeHead(405).end();
      return;
    }
    if (action === 'login') {
      const form = await readForm(req);
      const u = users.get(form.get('username') ?? '');
      if (!u || u.password !== form.get('password')) {
        send(
          401,
          page(
            'Sign in to KEA (dev IdP)',
            `<p role="alert">Invalid username or password.</p>
<form method="post" action="/interaction/${esc(details.uid)}/login">
<label>Username <input name="username"></label><label>Password <input name="password" type="password"></label>
<button type="submit">Sign in</button></form>`,
          ),
        );
        return;
      }
      await provider.interactionFinished(req, res, { login: { accountId: u.username } }, { mergeWithLastSubmission: false });
      return;
    }
    if (action === 'confirm') {
      await readForm(req);
      const { grantId, session } = details;
      const accountId = session?.accountId;
      const clientId = String(params.client_id);
      const grant = grantId ? await provider.Grant.find(grantId) : new provider.Grant({ accountId, clientId });
      if (!grant) throw new Error('grant not found');
      const missing = (details.prompt.details ?? {}) as {
        missingOIDCScope?: string[];
        missingOIDCClaims?: string[];
        missingResourceScopes?: Record<string, string[]>;
      };
      if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
      if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
      for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes ?? {})) {
        grant.addResourceScope(indicator, scopes.join(' '));
      }
      const savedId = await grant.save();
      await provider.interactionFinished(req, res, { consent: { grantId: savedId } }, { mergeWithLastSubmission: true });
      return;
    }
    // abort
    await readForm(req);
    await provider.interactionFinished(
      req,
      res,
      { error: 'access_denied', error_description: 'End-user aborted interaction' },
      { mergeWithLastSubmission: false },
    );
  }

  server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
    const path = (req.url ?? '/').split('?')[0];
    opts.onRequest?.(req.method ?? 'GET', path);
    if (path.startsWith('/interaction/')) {
      interaction(req, res, path).catch((err: unknown) => {
        if (!res.headersSent) {
          res.writeHead(400, { 'content-type': 'text/html; charset=utf-8' }).end(page('Error', `<pre>${esc(String((err as Error)?.message ?? err))}</pre>`));
        } else res.end();
      });
      return;
    }
    // oidc-provider's callback answers its own errors; nothing is left to await.
    void callback(req, res);
  });

  let stopped = false;
  return {
    issuer,
    audience,
    publicJwks,
    provider,
    async stop() {
      if (stopped) return;
      stopped = true;
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

export type { KoaContextWithOIDC };
