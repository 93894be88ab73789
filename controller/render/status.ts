/**
 * The status subresources of ApiSchemas and MLServices (lib/api/types.ts).
 *
 * Takes in: an owner's IR, its conditions as finally decided (the IR's, with `Programmed`
 * qualified by the gateway's verdict, ./route-status.ts) and the time `now` (RFC 3339).
 * Gives out: the status: conditions with `observedGeneration` and `lastTransitionTime` (kept
 * from the observed condition of the same type while its status is unchanged, else `now`),
 * and the IR's status fields. Pure.
 */
import type { ApiSchemaStatus, Condition, MLServiceStatus } from '../../lib/api/types.js';
import type { ApiSchemaIR, ConditionIR, MLServiceIR } from '../ir/index.js';

/** Conditions as written: observedGeneration and lastTransitionTime added. */
export function statusConditions(
  conds: readonly ConditionIR[],
  observed: readonly Condition[] | undefined,
  generation: number | undefined,
  now: string,
): Condition[] {
  return conds.map((c) => {
    const prev = observed?.find((e) => e.type === c.type);
    return {
      type: c.type,
      status: c.status,
      reason: c.reason,
      message: c.message,
      ...(generation !== undefined ? { observedGeneration: generation } : {}),
      lastTransitionTime: prev && prev.status === c.status && prev.lastTransitionTime ? prev.lastTransitionTime : now,
    };
  });
}

/** An MLService's status: conditions, `traffic` and `trafficSplit` (`v1=90,v2=10`), `url` when accepted. */
export function mlServiceStatus(m: MLServiceIR, conds: readonly ConditionIR[], now: string): MLServiceStatus {
  return {
    ...(m.generation !== undefined ? { observedGeneration: m.generation } : {}),
    conditions: statusConditions(conds, m.observedConditions, m.generation, now),
    traffic: m.traffic.map((t) => ({ revision: t.revision, weight: t.weight })),
    ...(m.traffic.length ? { trafficSplit: m.traffic.map((t) => `${t.revision}=${t.weight}`).join(',') } : {}),
    ...(m.url ? { url: m.url } : {}),
  };
}

/** An ApiSchema's status: conditions, operation count, docs URLs and call example when programmed, versions, lastDiff, unroutable items. */
export function apiSchemaStatus(a: ApiSchemaIR, conds: readonly ConditionIR[], now: string): ApiSchemaStatus {
  const p = a.program;
  const h = a.history;
  return {
    ...(a.generation !== undefined ? { observedGeneration: a.generation } : {}),
    conditions: statusConditions(conds, a.observedConditions, a.generation, now),
    operationCount: a.operationCount,
    ...(p ? { docsUrl: p.docsUrl, openapiUrl: p.openapiUrl, ...(p.curlExample ? { curlExample: p.curlExample } : {}) } : {}),
    ...(h.kept.length ? { versions: h.kept.map((e) => ({ version: e.version, digest: e.digest, publishedAt: e.publishedAt })) } : {}),
    ...(h.lastDiff ? { lastDiff: h.lastDiff } : {}),
    ...(a.unroutable ? { unroutable: [...a.unroutable] } : {}),
  };
}
