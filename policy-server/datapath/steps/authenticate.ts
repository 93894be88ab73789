/**
 * Authenticate step: who is calling (policy.json `operations[].access`; docs/adr/0003).
 *
 * Takes in: the request's `Authorization: Bearer` header or session cookie. Gives out:
 * `x.identity` (null = anonymous). On an operation that is not `public`, invalid credentials
 * end the exchange with 401 `unauthenticated` (RFC 6750 §3 `WWW-Authenticate`, and a
 * `Set-Cookie` clearing a dead session); on a `public` one they are ignored (the caller is
 * anonymous), and a request without credentials is not looked at at all. A failing identity
 * backend (JWKS or IdP unreachable) is 503 `auth-unavailable` with `Retry-After: 1`.
 *
 * Synchronous when the authenticator knows the answer without waiting (a cached bearer token,
 * a current cached session: `RequestAuthenticator.authenticateCached`); a promise otherwise.
 */
import type { Access } from '../../../lib/api/types.js';
import { AuthError } from '../../auth/index.js';
import type { CompiledOperation } from '../../snapshot/build.js';
import type { Exchange, RequestAuthenticator } from '../exchange.js';
import { problem } from '../problem.js';
import type { Step, StepContext, StepFactory, StepResult } from '../step.js';

class Authenticate implements Step {
  readonly name = 'authenticate';
  private readonly auth: RequestAuthenticator;
  /** `access.mode === 'public'`: credentials are optional and bad ones are ignored. */
  private readonly optional: boolean;

  constructor(auth: RequestAuthenticator, access: Access) {
    this.auth = auth;
    this.optional = access.mode === 'public';
  }

  run(x: Exchange): StepResult {
    const h = x.req.headers;
    if (this.optional && h.authorization === undefined && h.cookie === undefined) return undefined;
    let cached: ReturnType<NonNullable<RequestAuthenticator['authenticateCached']>>;
    try {
      cached = this.auth.authenticateCached?.(x.req);
    } catch (err) {
      this.refuse(x, err);
      return undefined;
    }
    if (cached !== undefined) {
      x.identity = cached;
      return undefined;
    }
    return this.authenticate(x);
  }

  /** The slow path: the authenticator verifies the credentials (JWKS, session unsealing or refresh). */
  private async authenticate(x: Exchange): Promise<void> {
    try {
      x.identity = await this.auth.authenticate(x.req);
    } catch (err) {
      this.refuse(x, err);
    }
  }

  private refuse(x: Exchange, err: unknown): void {
    if (err instanceof AuthError) {
      // Public operation: bad credentials are ignored; the caller is anonymous.
      if (this.optional) return;
      const headers = ['www-authenticate', err.wwwAuthenticate];
      if (err.setCookie) headers.push('set-cookie', err.setCookie);
      x.fail(problem('unauthenticated', err.message, { authError: err.code }), 'unauthenticated', { headers });
      return;
    }
    x.dp.audit.logger.error('authentication backend failure', { requestId: x.requestId, error: (err as Error)?.message });
    x.fail(problem('auth-unavailable', 'credentials could not be checked right now'), 'auth_unavailable', { headers: ['retry-after', '1'] });
  }
}

/** Every operation: `public` ones with credentials optional (the identity still reaches the backend and the cache key). */
export const authenticateStep: StepFactory = {
  name: 'authenticate',
  compile: (op: CompiledOperation, ctx: StepContext) => new Authenticate(ctx.dp.auth, op.def.access),
};
