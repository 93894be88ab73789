/**
 * The `kea.dev/applied-hash` annotation: how KEA marks, on each object it server-side applies,
 * which desired object it last wrote. The apply stage writes it (and skips an object whose live
 * copy carries the desired hash); render reads it on the live HTTPRoutes to tell a route that
 * this run's apply is about to rewrite (render/route-status.ts). Shared by both stages, so it
 * lives here and not in either of them.
 */
import type { KubernetesObject } from '@kubernetes/client-node';
import { sha256Hex } from '../../lib/hash.js';

/** Annotation carrying the sha256 (hex) of the desired object KEA last applied. */
export const APPLIED_HASH = 'kea.dev/applied-hash';

/**
 * sha256 (64 lower-case hex digits) of a desired object's JSON, ignoring any
 * {@link APPLIED_HASH} annotation. Render output is deterministic down to key order (same
 * inputs, same code → same JSON), so plain `JSON.stringify` is used: about 3× cheaper than
 * sorting keys, which matters at 5000 objects per run. Does not copy or modify `obj`.
 * @throws TypeError for a cyclic or BigInt-holding object (as `JSON.stringify` does).
 */
export function desiredHash(obj: KubernetesObject): string {
  let c: KubernetesObject = obj;
  const ann = obj.metadata?.annotations;
  if (ann && APPLIED_HASH in ann) {
    const rest = { ...ann };
    delete rest[APPLIED_HASH];
    c = { ...obj, metadata: { ...obj.metadata, annotations: Object.keys(rest).length ? rest : undefined } };
  }
  return sha256Hex(JSON.stringify(c));
}
