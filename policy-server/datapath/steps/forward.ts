/**
 * Forward step: the request to the service through the gateway's internal listener, on the
 * service's own lane (an undici Pool and an in-flight limit: datapath/upstream.ts), with
 * `Host` = the service's internal hostname and `x-kea-internal-token` (docs/adr/0009).
 *
 * Takes in: the request's headers (hop-by-hop, override, forwarding and credential headers
 * stripped: headers.ts `upstreamHeaders`; credentials put back only where the ApiSchema's
 * `spec.security.forwardCredentials` opts in), the identity headers (`x-kea-*`), the rebuilt
 * `X-Forwarded-For`, the upstream path and query, the body as read. Hands the exchange to its
 * own dispatch handler (exchange.ts), which answers and ends it. A lane at its limit ends the
 * exchange with 503 `upstream-busy` and `Retry-After: 1`. Always the last step with a request
 * phase; always synchronous.
 */
import type { Dispatcher } from 'undici';
import { INTERNAL_TOKEN_HEADER } from '../../../lib/policy/config.js';
import { identityHeaders } from '../../auth/index.js';
import type { Exchange } from '../exchange.js';
import { upstreamHeaders } from '../headers.js';
import { problem } from '../problem.js';
import type { Step, StepFactory, StepResult } from '../step.js';

class Forward implements Step {
  readonly name = 'forward';

  run(x: Exchange): StepResult {
    const { req, op, dp } = x;
    const svc = op.service;
    const lane = dp.upstream.lane(svc.def.upstream.host);
    if (lane.inflight >= lane.limit) {
      x.fail(problem('upstream-busy', `this service already has ${lane.limit} requests in flight; retry later`), 'upstream_busy', {
        headers: ['retry-after', '1'],
      });
      return undefined;
    }
    const h = req.headers;
    const fwd = x.plan.forwarding;
    // Credentials are stripped by upstreamHeaders and put back only where the ApiSchema opts in.
    const headers = upstreamHeaders(h, false);
    if (fwd.authorization && h.authorization !== undefined) headers.push('authorization', h.authorization);
    if (fwd.cookie && h.cookie !== undefined) headers.push('cookie', h.cookie);
    headers.push('host', svc.def.upstream.host, INTERNAL_TOKEN_HEADER, dp.internalToken, 'x-request-id', x.requestId, 'x-forwarded-for', x.forwardedFor());
    if (x.identity) {
      const ih = identityHeaders(x.identity, x.plan.claims);
      for (const k in ih) headers.push(k, ih[k]);
    }
    const rawQuery = x.rawQuery;
    const upstreamPath = rawQuery ? `${x.upstreamTarget()}?${rawQuery}` : x.upstreamTarget();
    if (x.clientGone) {
      if (!x.done) x.finish(499, 'client_closed');
      return undefined;
    }
    dp.track(x);
    lane.inflight++;
    x.lane = lane;
    const body = x.body;
    x.upstreamOpts = {
      path: upstreamPath,
      // HEAD on a GET operation stays HEAD upstream (RFC 9110 §9.3.2): no body is sent back.
      method: req.method === 'HEAD' ? 'HEAD' : op.method,
      // Also spares undici's per-request net.isIP() check of the Host header.
      servername: svc.def.upstream.host,
      headers,
      body: body.length > 0 ? body : null,
      // Deadlines are the sweeper's (headers, then body idle). undici's own timers allocate
      // up to three timer objects per request that stay referenced ~0.5 s (a heap snapshot at
      // 14k req/s held 15k of them).
      headersTimeout: 0,
      bodyTimeout: 0,
    } as Dispatcher.DispatchOptions;
    lane.dispatch(x.upstreamOpts, x);
    return undefined;
  }
}

/** The one forward step (it keeps no per-operation state). */
const FORWARD = new Forward();

/** Every operation. */
export const forwardStep: StepFactory = {
  name: 'forward',
  compile: () => FORWARD,
};
