/**
 * A service's settings as the data path reads them, derived once from its `policy.json` when an
 * operation's step chain is compiled (datapath/chain.ts), never per request.
 *
 * Takes in: a {@link CompiledService} (and the server's default claim paths).
 * Gives out: its {@link Forwarding} settings and its {@link ClaimPaths}.
 */
import type { ClaimPaths } from '../auth/index.js';
import type { CompiledService } from '../snapshot/build.js';
import { securityHeaders } from './headers.js';

/** A service's forwarding settings, from its policy.json. */
export interface Forwarding {
  /** Forward the caller's `Authorization` header (`spec.security.forwardCredentials`). */
  readonly authorization: boolean;
  /** Forward the caller's `Cookie` header, KEA's session cookie included. */
  readonly cookie: boolean;
  /**
   * The forwarded credential headers (lower-case, in `authorization`, `cookie` order), which
   * join the response cache key (datapath/cache.ts `keyHeaders`); empty when none is forwarded.
   */
  readonly credentialHeaders: readonly string[];
  /** Flat `[name, value, ...]` added to every proxied response (headers.ts `securityHeaders`). */
  readonly responseHeaders: readonly string[];
}

/** The {@link Forwarding} settings of a service (`forwardCredentials`, `contentSecurityPolicy`). */
export function forwardingOf(svc: CompiledService): Forwarding {
  const creds = svc.def.forwardCredentials ?? [];
  const authorization = creds.includes('authorization');
  const cookie = creds.includes('cookie');
  const credentialHeaders: string[] = [];
  if (authorization) credentialHeaders.push('authorization');
  if (cookie) credentialHeaders.push('cookie');
  return { authorization, cookie, credentialHeaders, responseHeaders: securityHeaders(svc.def.contentSecurityPolicy) };
}

/**
 * Claim paths of a service (`authorization.rolesClaim`/`groupsClaim`/`scopesClaim` of its
 * policy.json), each falling back to the server's default (`--roles-claim` etc.).
 */
export function claimPathsOf(svc: CompiledService, defaults: ClaimPaths): ClaimPaths {
  const a = svc.def.authorization ?? {};
  return {
    rolesClaim: a.rolesClaim || defaults.rolesClaim,
    groupsClaim: a.groupsClaim || defaults.groupsClaim,
    scopesClaim: a.scopesClaim || defaults.scopesClaim,
  };
}
