/**
 * {@link AuthConfig} from environment variables (for `policy-server/main` and the manifests).
 *
 * | variable | AuthConfig field | default |
 * |---|---|---|
 * | `KEA_OIDC_ISSUER` (required) | issuer | |
 * | `KEA_OIDC_CLIENT_ID` | clientId | `kea-gateway` |
 * | `KEA_OIDC_CLIENT_SECRET` | clientSecret | |
 * | `KEA_GATEWAY_URL` (required) | redirectUri = URL + `/auth/callback` | |
 * | `KEA_OIDC_AUDIENCE` (comma-separated) | audience | `urn:kea:gateway` |
 * | `KEA_OIDC_RESOURCE` (`none` = send none) | resource | first audience |
 * | `KEA_OIDC_ALGORITHMS` (comma-separated) | algorithms | RS256,ES256,PS256,EdDSA |
 * | `KEA_OIDC_SCOPE` | scope | `openid profile email roles offline_access` |
 * | `KEA_OIDC_ALLOW_HTTP_ISSUER` (`true`) | allowHttpIssuer | false |
 * | `KEA_SESSION_SECRETS` (required, comma-separated, first seals) | sessionSecrets | |
 * | `KEA_SESSION_TTL_SECONDS` | sessionTtlSeconds | 28800 |
 * | `KEA_COOKIE_NAME` | cookieName | `__Host-kea_session` / `kea_session` |
 * | `KEA_COOKIE_SECURE` (`false` only for http://localhost) | cookieSecure | true |
 * | `KEA_ALLOWED_RETURN_HOSTS` (comma-separated host[:port]) | allowedReturnHosts | |
 * | `KEA_POST_LOGOUT_REDIRECT_URI` | postLogoutRedirectUri | gateway root |
 */
import type { AuthConfig } from './types.js';

const list = (v: string | undefined): string[] | undefined =>
  v === undefined
    ? undefined
    : v
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean);

function int(env: NodeJS.ProcessEnv, name: string): number | undefined {
  const v = env[name];
  if (v === undefined || v === '') return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`${name} must be a positive integer (seconds), got ${JSON.stringify(v)}`);
  return n;
}

/**
 * Reads the auth configuration from `env`.
 * @returns the config, or `null` when `KEA_OIDC_ISSUER` is unset (authentication disabled:
 * only `public` operations can succeed).
 * @throws Error naming the variable when a required one is missing or malformed.
 */
export function authConfigFromEnv(env: NodeJS.ProcessEnv = process.env): AuthConfig | null {
  const issuer = env.KEA_OIDC_ISSUER;
  if (!issuer) return null;
  const gateway = env.KEA_GATEWAY_URL;
  if (!gateway) throw new Error('KEA_GATEWAY_URL is required when KEA_OIDC_ISSUER is set');
  const secrets = list(env.KEA_SESSION_SECRETS);
  if (!secrets?.length) throw new Error('KEA_SESSION_SECRETS is required when KEA_OIDC_ISSUER is set');
  const cfg: AuthConfig = {
    issuer,
    clientId: env.KEA_OIDC_CLIENT_ID || 'kea-gateway',
    redirectUri: `${gateway.replace(/\/+$/, '')}/auth/callback`,
    audience: list(env.KEA_OIDC_AUDIENCE) ?? 'urn:kea:gateway',
    sessionSecrets: secrets,
  };
  if (env.KEA_OIDC_CLIENT_SECRET) cfg.clientSecret = env.KEA_OIDC_CLIENT_SECRET;
  if (env.KEA_OIDC_RESOURCE) cfg.resource = env.KEA_OIDC_RESOURCE === 'none' ? null : env.KEA_OIDC_RESOURCE;
  const algs = list(env.KEA_OIDC_ALGORITHMS);
  if (algs?.length) cfg.algorithms = algs;
  if (env.KEA_OIDC_SCOPE) cfg.scope = env.KEA_OIDC_SCOPE;
  if (env.KEA_OIDC_ALLOW_HTTP_ISSUER === 'true') cfg.allowHttpIssuer = true;
  const ttl = int(env, 'KEA_SESSION_TTL_SECONDS');
  if (ttl) cfg.sessionTtlSeconds = ttl;
  if (env.KEA_COOKIE_NAME) cfg.cookieName = env.KEA_COOKIE_NAME;
  if (env.KEA_COOKIE_SECURE !== undefined) {
    if (env.KEA_COOKIE_SECURE !== 'true' && env.KEA_COOKIE_SECURE !== 'false') throw new Error('KEA_COOKIE_SECURE must be true or false');
    cfg.cookieSecure = env.KEA_COOKIE_SECURE === 'true';
  }
  const hosts = list(env.KEA_ALLOWED_RETURN_HOSTS);
  if (hosts?.length) cfg.allowedReturnHosts = hosts;
  if (env.KEA_POST_LOGOUT_REDIRECT_URI) cfg.postLogoutRedirectUri = env.KEA_POST_LOGOUT_REDIRECT_URI;
  return cfg;
}
