/**
 * Audit step: one audit record and the request metrics per exchange, however it ended (a
 * problem from any step, a cache hit, the upstream's answer, a client that left).
 *
 * Takes in: the ended exchange (`x.endStatus`, `x.outcome`, `x.cacheStatus`, `x.validation`,
 * `x.error`, the identity, the upstream's revision). Gives out: the record written through
 * audit.ts `AuditLog.end` (the log line and the service's `/logs` ring; request id, user,
 * operation, revision, canonical path, status, latency in ms) and `Metrics.observe` (latency in
 * seconds). Acts only when the exchange ends; never ends one.
 */
import { performance } from 'node:perf_hooks';
import type { AuditRecord } from '../../audit.js';
import type { Exchange } from '../exchange.js';
import type { Step, StepFactory } from '../step.js';

class Audit implements Step {
  readonly name = 'audit';

  end(x: Exchange): void {
    const latencyMs = performance.now() - x.t0;
    const op = x.op;
    const status = x.endStatus;
    x.dp.metrics.observe(op.key, x.outcome, status, latencyMs / 1000);
    const rec: AuditRecord = {
      requestId: x.requestId,
      user: x.identity ? x.identity.subject : null,
      operation: op.key,
      service: op.service.id,
      revision: x.revision,
      method: op.method,
      path: x.path,
      status,
      latencyMs: Math.round(latencyMs * 1000) / 1000,
      cache: x.cacheStatus,
      outcome: x.outcome,
      validation: x.validation,
      error: x.error,
    };
    x.dp.audit.end(rec);
  }
}

/** The one audit step (it keeps no per-operation state). */
const AUDIT = new Audit();

/** Every operation. */
export const auditStep: StepFactory = {
  name: 'audit',
  compile: () => AUDIT,
};
