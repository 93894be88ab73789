/**
 * An operation's chain of policy steps, and the loop that runs it.
 *
 * Takes in: a {@link CompiledOperation} (its policy.json settings, validators compiled by the
 * snapshot) and the server's data path. Gives out: a {@link Chain}, the ordered steps the
 * operation needs, compiled once per operation and data path (handler.ts `DataPath.chainOf`,
 * lazily on the operation's first request; an operation object lives as long as its snapshot's
 * service, so a new configuration means new chains), never per request.
 *
 * {@link STEPS} is the registry: one {@link StepFactory} per policy, in chain order. Each
 * factory decides from the operation's configuration whether the operation gets its step, so
 * an operation pays nothing per request for a policy it does not use. Adding a policy: one
 * file in `steps/`, one entry here, its field in the CRD (docs/architecture.md, "Adding a
 * policy").
 */
import type { CompiledOperation } from '../snapshot/build.js';
import type { DataPathContext, EndHook, Exchange, OperationPlan } from './exchange.js';
import type { ClaimPaths } from '../auth/index.js';
import { claimPathsOf, forwardingOf, type Forwarding } from './service-settings.js';
import type { RequestStep, Step, StepFactory, StepResult } from './step.js';
import { auditStep } from './steps/audit.js';
import { authenticateStep } from './steps/authenticate.js';
import { authorizeStep } from './steps/authorize.js';
import { bodyStep, readBodyStep } from './steps/body.js';
import { cacheStep } from './steps/cache.js';
import { forwardStep } from './steps/forward.js';
import { parametersStep } from './steps/parameters.js';
import { rateLimitStep } from './steps/rate-limit.js';

/**
 * The policies of the data path, in the order their steps run: who is calling, may they,
 * are they within their rate limits (counted for known callers, before any work is spent on
 * the request), are the parameters and the body acceptable, is the answer cached, forward,
 * and the audit record when the exchange ends.
 */
export const STEPS: readonly StepFactory[] = [
  authenticateStep,
  authorizeStep,
  rateLimitStep,
  parametersStep,
  readBodyStep,
  bodyStep,
  cacheStep,
  forwardStep,
  auditStep,
];

/** An operation's compiled chain (also the {@link OperationPlan} of its exchanges). */
export interface Chain extends OperationPlan {
  readonly op: CompiledOperation;
  /** Every step of the operation, in chain order. */
  readonly steps: readonly Step[];
  /** The steps with a request phase, in chain order (what {@link runChain} runs). */
  readonly request: readonly RequestStep[];
}

function hasRun(s: Step): s is RequestStep {
  return s.run !== undefined;
}

function hasEnd(s: Step): s is Step & EndHook {
  return s.end !== undefined;
}

/**
 * Compiles an operation's chain: each registered policy's step, when the operation needs it.
 * @param factories - the registry (default {@link STEPS}; tests pass their own).
 * @throws {Error} when a step with a request phase follows `forward` (it could never run:
 *   forward hands the exchange to the upstream).
 */
export function compileChain(op: CompiledOperation, dp: DataPathContext, claimDefaults: ClaimPaths, factories: readonly StepFactory[] = STEPS): Chain {
  const forwarding: Forwarding = forwardingOf(op.service);
  const claims = claimPathsOf(op.service, claimDefaults);
  const ctx = { dp, plan: { claims, forwarding } };
  const steps: Step[] = [];
  for (const f of factories) {
    const s = f.compile(op, ctx);
    if (s !== undefined) steps.push(s);
  }
  const request = steps.filter(hasRun);
  const last = request.findIndex((s) => s.name === 'forward');
  if (last >= 0 && last !== request.length - 1) throw new Error(`step "${request[last + 1].name}" follows "forward" and could never run`);
  return { op, steps, request, ends: steps.filter(hasEnd), claims, forwarding };
}

/**
 * Runs an exchange's request steps from `from` on, in order, until one ends the exchange or
 * hands it over (forward). Synchronous as long as every step is; after a step that waits it
 * goes on when the wait is over. Never throws: an unexpected error ends the exchange with 500
 * `internal` (exchange.ts `crash`).
 */
export function runChain(x: Exchange, steps: readonly RequestStep[], from = 0): void {
  try {
    for (let i = from; i < steps.length; i++) {
      const wait = steps[i].run(x);
      if (wait !== undefined) {
        void resume(x, steps, wait, i + 1);
        return;
      }
      if (x.done) return;
    }
  } catch (err) {
    x.crash(err);
  }
}

/** Goes on with the chain once a step's wait is over (unless the exchange ended meanwhile). */
async function resume(x: Exchange, steps: readonly RequestStep[], wait: NonNullable<StepResult>, next: number): Promise<void> {
  try {
    await wait;
  } catch (err) {
    x.crash(err);
    return;
  }
  if (!x.done) runChain(x, steps, next);
}
