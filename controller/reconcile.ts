/**
 * The pure part of the controller: `reconcile(snapshot, config, now)` runs
 * graph → IR → render and returns the complete desired state.
 *
 * Takes in: a {@link ClusterSnapshot} (lists in any order), the {@link ControllerConfig} and
 * the current time (RFC 3339) for condition lastTransitionTime.
 * Gives out: a {@link RenderOutput} (objects, statuses, events), sorted, with stable names;
 * the same inputs always give the same output, whatever the order of the snapshot's lists.
 * Never throws on bad resources: problems become status conditions and Events.
 */
import { buildGraph } from './graph/index.js';
import { buildIR } from './ir/index.js';
import type { ClusterSnapshot, ControllerConfig, RenderOutput } from './model.js';
import { render } from './render/index.js';

/**
 * Compute the desired state for a snapshot.
 * @param now RFC 3339 timestamp for conditions that change status. Defaults to the current
 *   time: the only impure input, so pass it explicitly for reproducible output (tests do).
 */
export function reconcile(snapshot: ClusterSnapshot, config: ControllerConfig, now: string = new Date().toISOString()): RenderOutput {
  const graph = buildGraph(snapshot, config);
  const ir = buildIR(graph, config);
  return render(ir, config, now);
}
