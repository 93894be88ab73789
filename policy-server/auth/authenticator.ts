import type { AuthConfig, Authenticator } from './index.js';

/** Creates the authenticator (implementation in progress). */
export async function createAuthenticator(cfg: AuthConfig): Promise<Authenticator> {
  void cfg;
  throw new Error('createAuthenticator: not implemented yet');
}
