/**
 * Status conditions and the Events they raise, as the IR decides them.
 *
 * Takes in: a graph node's problems (graph/index.ts `Problem`), or the conditions an owner's
 * IR carries.
 * Gives out: `Accepted` / `ResolvedRefs` conditions (Gateway API style: `True` with a summary,
 * or `False` with the first problem's reason and every problem's message), and the Warning
 * Events conditions raise ({@link conditionEvents}). Pure.
 */
import type { Problem } from '../graph/index.js';
import type { EventRecord } from '../model.js';
import type { ConditionIR } from './types.js';

/** `type` from the node's problems of that condition: `True` (okReason, okMessage) when there are none. */
export function problemCondition(problems: readonly Problem[], type: 'Accepted' | 'ResolvedRefs', okReason: string, okMessage: string): ConditionIR {
  const mine = problems.filter((p) => p.condition === type);
  if (!mine.length) return { type, status: 'True', reason: okReason, message: okMessage };
  return { type, status: 'False', reason: mine[0].reason, message: mine.map((p) => p.message).join('; ') };
}

/**
 * `Programmed=False` reasons that are consequences of another condition (which raises its own
 * Event), not errors of their own.
 */
const CONSEQUENCES = new Set(['Invalid', 'RefsNotResolved', 'AwaitingOpenApi']);

/** Whether a condition is an error worth a Warning Event: `False`, not `Ready`, and not a consequence of another condition. */
export function raisesEvent(c: ConditionIR): boolean {
  return c.status === 'False' && c.type !== 'Ready' && !(c.type === 'Programmed' && CONSEQUENCES.has(c.reason));
}

/**
 * The Warning Events of an owner's conditions ({@link raisesEvent}): reason the condition's,
 * message `<type>: <message>`, in the conditions' order.
 */
export function conditionEvents(regarding: EventRecord['regarding'], conds: readonly ConditionIR[]): EventRecord[] {
  return conds.filter(raisesEvent).map((c) => ({ regarding, type: 'Warning' as const, reason: c.reason, message: `${c.type}: ${c.message}` }));
}

/** The `regarding` of an owner's Events (its uid when known). */
export function regardingOf(kind: 'ApiSchema' | 'MLService', o: { namespace: string; name: string; uid?: string }): EventRecord['regarding'] {
  return { kind, namespace: o.namespace, name: o.name, ...(o.uid ? { uid: o.uid } : {}) };
}
