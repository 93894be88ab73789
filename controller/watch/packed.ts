/**
 * The watch stage's compact form of version-history ConfigMaps (`kea.dev/component=api-version`):
 * their `openapi.json` text cached raw-deflated (~10.5 KB of text → ~1.5 KB), and the loader the
 * graph stage reads it back with (graph/versions.ts), inflating only when a diff or a ConfigMap
 * written by hand needs the text. Both directions live here, next to the cache that holds the
 * packed form.
 */
import { deflateRawSync, inflateRawSync } from 'node:zlib';
import type { KubernetesObject } from '@kubernetes/client-node';
import { OPENAPI_KEY } from '../../lib/policy/config.js';

/** Where {@link packVersionConfigMap} keeps the deflated `openapi.json` (not a Kubernetes field). */
export const PACKED_OPENAPI: unique symbol = Symbol('kea.packedOpenapi');

/**
 * Replaces a version-history ConfigMap's `openapi.json` text by its raw-deflated UTF-8 bytes
 * (RFC 1951, under {@link PACKED_OPENAPI}), in place; other keys stay. For the watch stage's
 * cache (an informer transform).
 * @returns `cm` itself.
 */
export function packVersionConfigMap<T extends KubernetesObject>(cm: T): T {
  const data = (cm as { data?: Record<string, string> }).data;
  const text = data?.[OPENAPI_KEY];
  if (data && typeof text === 'string') {
    // An exact-size copy: zlib's result is a view of its 64 KB output chunk, and a pooled
    // copy (Buffer.from) would pin a whole 64 KB pool slab per cached ConfigMap.
    const deflated = deflateRawSync(Buffer.from(text, 'utf8'), { chunkSize: 16 * 1024 });
    const packed = Buffer.allocUnsafeSlow(deflated.length);
    deflated.copy(packed);
    (cm as unknown as Record<symbol, Buffer>)[PACKED_OPENAPI] = packed;
    delete data[OPENAPI_KEY];
  }
  return cm;
}

/**
 * A version ConfigMap's `openapi.json` text as a loader, whether packed by
 * {@link packVersionConfigMap} or plain (a ConfigMap not read through the watch cache).
 * @returns a function giving the text (inflated on each call when packed), or undefined when
 *   the ConfigMap has no `openapi.json`.
 */
export function openapiLoader(cm: KubernetesObject): (() => string) | undefined {
  const packed = (cm as unknown as Record<symbol, Buffer | undefined>)[PACKED_OPENAPI];
  if (packed) return () => inflateRawSync(packed, { chunkSize: 32 * 1024 }).toString('utf8');
  const text = (cm as { data?: Record<string, string> }).data?.[OPENAPI_KEY];
  return typeof text === 'string' ? () => text : undefined;
}
