/**
 * Runs the development OpenID Provider (dev/idp.ts) standalone, for `kea up` and manual tries.
 *
 *   node dist/dev/idp-main.js [--port 9000] [--host 127.0.0.1] [--issuer URL]
 *        [--gateway-url http://localhost:8080] [--audience urn:kea:gateway]
 *
 * Environment (flags win): `KEA_IDP_PORT`, `KEA_IDP_HOST`, `KEA_IDP_ISSUER`, `KEA_GATEWAY_URL`,
 * `KEA_IDP_AUDIENCE`, `KEA_IDP_GATEWAY_SECRET` (secret of client `kea-gateway`, default
 * `kea-dev-gateway-secret-change-me`), `KEA_IDP_SCRIPT_SECRET` (secret of the client-credentials
 * clients, default `kea-dev-script-secret`).
 *
 * Registered clients:
 * - `kea-gateway` (confidential; code + PKCE + refresh_token; redirect `<gateway>/auth/callback`)
 * - `kea-script-student`, `kea-script-teacher`, `kea-script-admin` (client credentials, with
 *   `roles` `['student']`, `['teacher']`, `['admin']`)
 * - `kea-cli` (public client, PKCE; redirect URI exactly `http://127.0.0.1/callback`)
 *
 * Prints one JSON line `{"msg":"dev-idp ready","issuer":...}` on stdout when listening; stops
 * on SIGINT/SIGTERM.
 */
import { Command } from 'commander';
import { startDevIdp, gatewayClient, scriptsClient, DEMO_USERS } from './idp.js';

const program = new Command()
  .name('kea-dev-idp')
  .description('development OpenID Provider for KEA (oidc-provider, in-memory)')
  .option('--port <n>', 'TCP port', process.env.KEA_IDP_PORT ?? '9000')
  .option('--host <addr>', 'listen address', process.env.KEA_IDP_HOST ?? '127.0.0.1')
  .option('--issuer <url>', 'issuer URL (default http://<host>:<port>)', process.env.KEA_IDP_ISSUER)
  .option('--gateway-url <url>', 'gateway base URL (redirect URI host)', process.env.KEA_GATEWAY_URL ?? 'http://localhost:8080')
  .option('--audience <uri>', 'resource indicator / access token audience', process.env.KEA_IDP_AUDIENCE ?? 'urn:kea:gateway')
  .parse();

const o = program.opts<{ port: string; host: string; issuer?: string; gatewayUrl: string; audience: string }>();
const gatewaySecret = process.env.KEA_IDP_GATEWAY_SECRET ?? 'kea-dev-gateway-secret-change-me';
const scriptSecret = process.env.KEA_IDP_SCRIPT_SECRET ?? 'kea-dev-script-secret';

const idp = await startDevIdp({
  port: Number(o.port),
  host: o.host,
  ...(o.issuer ? { issuer: o.issuer } : {}),
  audience: o.audience,
  clients: [
    gatewayClient(o.gatewayUrl, gatewaySecret),
    scriptsClient('kea-script-student', scriptSecret, ['student']),
    scriptsClient('kea-script-teacher', scriptSecret, ['teacher']),
    scriptsClient('kea-script-admin', scriptSecret, ['admin']),
    { clientId: 'kea-cli', grantTypes: ['authorization_code', 'refresh_token'], redirectUris: ['http://127.0.0.1/callback'] },
  ],
});

process.stdout.write(
  `${JSON.stringify({
    msg: 'dev-idp ready',
    issuer: idp.issuer,
    audience: idp.audience,
    users: DEMO_USERS.map((u) => `${u.username}/${u.password}`),
    clients: ['kea-gateway', 'kea-script-student', 'kea-script-teacher', 'kea-script-admin', 'kea-cli'],
  })}\n`,
);

for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    void idp.stop().then(() => process.exit(0));
  });
}
