/**
 * The pure part of the controller: `reconcile(snapshot, config, now)` runs
 * graph → IR → render and returns the complete desired state; `reconcileStream` gives the
 * same desired state as a stream of objects (what the running controller applies, a few at a
 * time, so it never holds the whole render output at once).
 *
 * Takes in: a {@link ClusterSnapshot} (lists in any order), the {@link ControllerConfig} and
 * the current time (RFC 3339) for condition lastTransitionTime.
 * Gives out: a {@link RenderOutput} (objects, statuses, events), sorted, with stable names;
 * the same inputs always give the same output, whatever the order of the snapshot's lists.
 * Never throws on bad resources: problems become status conditions and Events.
 */
import type { KubernetesObject } from '@kubernetes/client-node';
import { buildGraph, type GraphInput } from './graph/index.js';
import { buildIR, buildStreamIRSteps } from './ir/index.js';
import { type ControllerConfig, PAUSE, type RenderOutput } from './model.js';
import { type RenderRest, render, renderStream } from './render/index.js';

export type { RenderRest } from './render/index.js';

/**
 * Compute the desired state for a snapshot.
 * @param now RFC 3339 timestamp for conditions that change status. Defaults to the current
 *   time: the only impure input, so pass it explicitly for reproducible output (tests do).
 */
export function reconcile(snapshot: GraphInput, config: ControllerConfig, now: string = new Date().toISOString()): RenderOutput {
  const graph = buildGraph(snapshot, config);
  const ir = buildIR(graph, config, now);
  return render(ir, config, now);
}

/**
 * The same desired state as {@link reconcile}, as a stream: the graph is built at the first
 * `next()`, then the IR (with a {@link PAUSE} after the graph and after every hundred
 * resources), then every object is yielded once (owner order, see render's `renderStream`),
 * and the generator returns the statuses, events, retained owners and dropped versions.
 * Collecting the objects (skipping PAUSEs) and sorting them gives exactly `reconcile`'s output.
 */
export function* reconcileStream(
  snapshot: GraphInput,
  config: ControllerConfig,
  now: string = new Date().toISOString(),
): Generator<KubernetesObject | typeof PAUSE, RenderRest, undefined> {
  const graph = buildGraph(snapshot, config);
  yield PAUSE;
  // ApiSchema IRs are built as render takes them: the stream never holds them all.
  const ir = yield* buildStreamIRSteps(graph, config, now);
  return yield* renderStream(ir, config, now);
}
