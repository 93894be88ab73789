/**
 * Authorize step: may this caller call this operation (policy.json `operations[].access`:
 * `authenticated`, or `restricted` to roles, groups or scopes at the service's claim paths;
 * auth/authorize.ts `authorize`).
 *
 * Takes in: `x.identity` (authenticate step). Ends the exchange when the answer is no: an
 * anonymous caller gets 401 `unauthenticated` (`WWW-Authenticate: Bearer realm="kea"`), or a
 * 302 to the login page when it is a browser asking for HTML with GET; an identity without the
 * role, group or scope gets 403 `forbidden`. Always synchronous.
 */
import type { Access } from '../../../lib/api/types.js';
import { authorize as decide, type ClaimPaths } from '../../auth/index.js';
import type { CompiledOperation } from '../../snapshot/build.js';
import type { Exchange, RequestAuthenticator } from '../exchange.js';
import { problem } from '../problem.js';
import type { Step, StepContext, StepFactory, StepResult } from '../step.js';

class Authorize implements Step {
  readonly name = 'authorize';
  private readonly access: Access;
  private readonly claims: ClaimPaths;
  private readonly auth: RequestAuthenticator;

  constructor(access: Access, claims: ClaimPaths, auth: RequestAuthenticator) {
    this.access = access;
    this.claims = claims;
    this.auth = auth;
  }

  run(x: Exchange): StepResult {
    const decision = decide(x.identity, this.access, this.claims);
    if (decision === 'allow') return undefined;
    if (decision === 'unauthenticated') {
      const req = x.req;
      const accept = req.headers.accept;
      if (req.method === 'GET' && typeof accept === 'string' && accept.includes('text/html')) {
        x.identity = null;
        x.res.writeHead(302, ['location', this.auth.loginUrl(req.url ?? '/'), 'cache-control', 'no-store', 'x-request-id', x.requestId, 'content-length', '0']);
        x.res.end();
        x.finish(302, 'login_redirect');
        return undefined;
      }
      x.fail(problem('unauthenticated', 'this operation requires authentication'), 'unauthenticated', { headers: ['www-authenticate', 'Bearer realm="kea"'] });
      return undefined;
    }
    x.fail(problem('forbidden', 'your identity lacks the role, group or scope this operation requires'), 'forbidden');
    return undefined;
  }
}

/** Operations whose access is not `public` (for `public` ones `authorize` always allows). */
export const authorizeStep: StepFactory = {
  name: 'authorize',
  compile: (op: CompiledOperation, ctx: StepContext) =>
    op.def.access.mode === 'public' ? undefined : new Authorize(op.def.access, ctx.plan.claims, ctx.dp.auth),
};
