import { authConfigFromEnv } from './index.js';

describe('authConfigFromEnv', () => {
  test('unset issuer disables auth', () => {
    expect(authConfigFromEnv({})).toBeNull();
  });
  test('required variables are named when missing', () => {
    expect(() => authConfigFromEnv({ KEA_OIDC_ISSUER: 'https://idp' })).toThrow(/KEA_GATEWAY_URL/);
    expect(() => authConfigFromEnv({ KEA_OIDC_ISSUER: 'https://idp', KEA_GATEWAY_URL: 'https://gw' })).toThrow(/KEA_SESSION_SECRETS/);
    expect(() =>
      authConfigFromEnv({ KEA_OIDC_ISSUER: 'https://idp', KEA_GATEWAY_URL: 'https://gw', KEA_SESSION_SECRETS: 'x', KEA_SESSION_TTL_SECONDS: '1h' }),
    ).toThrow(/KEA_SESSION_TTL_SECONDS/);
    expect(() =>
      authConfigFromEnv({ KEA_OIDC_ISSUER: 'https://idp', KEA_GATEWAY_URL: 'https://gw', KEA_SESSION_SECRETS: 'x', KEA_COOKIE_SECURE: 'no' }),
    ).toThrow(/KEA_COOKIE_SECURE/);
  });
  test('full mapping', () => {
    expect(
      authConfigFromEnv({
        KEA_OIDC_ISSUER: 'http://kea-idp.kea-system:9000',
        KEA_OIDC_CLIENT_SECRET: 's',
        KEA_GATEWAY_URL: 'http://localhost:8080/',
        KEA_OIDC_AUDIENCE: 'urn:a, urn:b',
        KEA_OIDC_ALGORITHMS: 'RS256,ES256',
        KEA_OIDC_ALLOW_HTTP_ISSUER: 'true',
        KEA_SESSION_SECRETS: 'new-secret, old-secret',
        KEA_SESSION_TTL_SECONDS: '3600',
        KEA_COOKIE_SECURE: 'false',
        KEA_ALLOWED_RETURN_HOSTS: 'docs.example.com',
        KEA_OIDC_RESOURCE: 'none',
      }),
    ).toEqual({
      issuer: 'http://kea-idp.kea-system:9000',
      clientId: 'kea-gateway',
      clientSecret: 's',
      redirectUri: 'http://localhost:8080/auth/callback',
      audience: ['urn:a', 'urn:b'],
      resource: null,
      algorithms: ['RS256', 'ES256'],
      allowHttpIssuer: true,
      sessionSecrets: ['new-secret', 'old-secret'],
      sessionTtlSeconds: 3600,
      cookieSecure: false,
      allowedReturnHosts: ['docs.example.com'],
    });
  });
});
