/**
 * The policy step: one policy of the data path (authenticate, authorize, parameters, body,
 * cache, forward, audit, ...), compiled once per operation into the operation's chain
 * (datapath/chain.ts) and run for each of its requests.
 *
 * A step is an object made once per operation (per snapshot and server), never per request:
 * whatever it needs of the operation (its access rule, its validators, its cache policy) it
 * reads when it is made, and everything per request lives on the {@link Exchange}.
 */
import type { CompiledOperation } from '../snapshot/build.js';
import type { DataPathContext, Exchange, OperationPlan } from './exchange.js';

/**
 * What a step's {@link Step.run} returns.
 * - `undefined`: the step is done synchronously; the chain goes on with the next step at once
 *   (unless the step ended the exchange). The fast path of every step: no promise, no microtask.
 * - a `Promise`: the step waits for something (an uncached token, the request body); the chain
 *   goes on with the next step when it resolves (its value is ignored; unless the step ended the
 *   exchange meanwhile).
 *   A rejection is an unexpected error: logged, answered 500 `internal`. Return one only when
 *   the step really waits.
 */
export type StepResult = undefined | Promise<unknown>;

/** One policy of an operation's chain. */
export interface Step {
  /** The step's name in the chain (`authenticate`, `cache`, ...): what tests, docs and logs call it. */
  readonly name: string;
  /**
   * The request phase: checks or transforms the exchange `x` (its request, its identity, its
   * body), in chain order.
   *
   * To end the exchange (refuse the request, answer from the cache) the step answers through
   * the exchange: `x.fail(problem(code, detail), outcome)` for an RFC 9457 problem (the code
   * from datapath/problem.ts), or writes the response itself and calls `x.finish(status,
   * outcome)`. `x.done` is then true and no later step runs. A step that hands the exchange to
   * another owner (forward: the upstream's dispatch handler, `Exchange`) must be the last step
   * with a request phase. A throw is an unexpected error (500 `internal`); errors the client
   * caused are problems, never throws.
   *
   * Absent for steps that act only when the exchange ends.
   * @returns see {@link StepResult}.
   */
  run?(x: Exchange): StepResult;
  /**
   * Called once when the exchange has ended, however it ended (a problem from any step, a
   * cache hit, the upstream's response, a client that left): `x.endStatus`, `x.outcome`,
   * `x.cacheStatus`, `x.validation`, `x.error` say how. Synchronous; must not throw. Steps' end
   * hooks run in chain order.
   */
  end?(x: Exchange): void;
}

/** A {@link Step} with a request phase (the chain's runnable steps). */
export type RequestStep = Step & Required<Pick<Step, 'run'>>;

/** What a step factory may use when it makes a step: the server's data path and the operation's plan. */
export interface StepContext {
  readonly dp: DataPathContext;
  /** Claim paths and forwarding settings of the operation's service. */
  readonly plan: Omit<OperationPlan, 'ends'>;
}

/**
 * Makes a policy's step for one operation, or decides that the operation does not need it.
 * One per policy, registered in datapath/chain.ts `STEPS` (whose order is the chain's).
 */
export interface StepFactory {
  /** The step's name ({@link Step.name}). */
  readonly name: string;
  /**
   * @returns the step for `op`, or `undefined` when `op`'s configuration does not call for it
   *   (e.g. no cache step for an operation without `cache`): the operation's chain then skips
   *   it at no cost per request.
   */
  compile(op: CompiledOperation, ctx: StepContext): Step | undefined;
}
