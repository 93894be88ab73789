/**
 * Operations imported from the OpenAPI document an ApiSchema's target serves
 * (`spec.source.openapi`, fetched by controller/discover).
 *
 * Takes in: an ApiSchema and the {@link DiscoveredDoc} for it (if any).
 * Gives out: the *effective* ApiSchema (a copy whose `spec.operations` are the inline
 * operations followed by the imported ones, and whose `spec.components.schemas` add the
 * imported components) and an {@link ImportInfo} saying what happened. Inline operations win:
 * an imported operation with the operationId, or the method and path template, of an inline
 * one is left out (listed in `shadowed`); inline components win by name. The document is
 * converted by lib/import (`importOpenApi`: 3.1 → 3.0, pydantic idioms); whatever it cannot
 * route is listed in `unroutable`, never dropped silently. Pure.
 */
import type { ApiSchema, Operation } from '../../lib/api/types.js';
import { importOpenApi } from '../../lib/import/index.js';
import type { DiscoveredDoc } from '../discover/index.js';

/** Outcome of importing an ApiSchema's served OpenAPI document. */
export interface ImportInfo {
  /**
   * `pending`: nothing fetched yet; `failed`: every fetch so far failed; `invalid`: the fetched
   * document cannot be imported; `imported`: imported from the latest fetch; `stale`: the
   * latest fetch failed, the document of an earlier fetch is used.
   */
  state: 'pending' | 'failed' | 'invalid' | 'imported' | 'stale';
  /** Path of the document on the target (default `/openapi.json`). */
  path: string;
  /** sha256 (hex) of the document used (or rejected). */
  digest?: string;
  /** The fetch error (failed, stale) or import error (invalid). */
  error?: string;
  /** Operations taken from the document. */
  imported: number;
  /** operationIds of imported operations replaced by inline ones. */
  shadowed: string[];
  /** What the document holds that is not routed (lib/import `unroutable`). */
  unroutable: string[];
}

const routeKey = (o: Operation): string => `${o.method} ${o.path.replace(/\{[^}]+\}/g, '{}')}`;

/**
 * The effective ApiSchema with imported operations, and what the import did. ApiSchemas
 * without `spec.source.openapi` are returned as they are, with no info.
 */
export function withDiscovered(a: ApiSchema, found: DiscoveredDoc | undefined): { resource: ApiSchema; info?: ImportInfo } {
  const src = a.spec.source?.openapi;
  if (!src) return { resource: a };
  const path = src.path ?? '/openapi.json';
  const base = { path, imported: 0, shadowed: [], unroutable: [] };
  if (!found || found.doc === undefined) {
    return { resource: a, info: { ...base, state: found?.error ? 'failed' : 'pending', ...(found?.error ? { error: found.error } : {}) } };
  }
  const digest = found.digest;
  let result: ReturnType<typeof importOpenApi>;
  try {
    result = importOpenApi(found.doc, { name: a.metadata.name, namespace: a.metadata.namespace, basePath: a.spec.basePath, target: a.spec.target });
  } catch (e) {
    return { resource: a, info: { ...base, state: 'invalid', digest, error: (e as Error).message } };
  }
  const inline = a.spec.operations ?? [];
  const ids = new Set(inline.map((o) => o.operationId));
  const routes = new Set(inline.map(routeKey));
  const shadowed: string[] = [];
  const imported = (result.schema.spec.operations ?? []).filter((o) => {
    if (ids.has(o.operationId) || routes.has(routeKey(o))) {
      shadowed.push(o.operationId);
      return false;
    }
    return true;
  });
  const schemas = { ...(result.schema.spec.components?.schemas ?? {}), ...(a.spec.components?.schemas ?? {}) };
  const resource: ApiSchema = {
    ...a,
    spec: {
      ...a.spec,
      operations: [...inline, ...imported],
      ...(Object.keys(schemas).length ? { components: { ...(a.spec.components ?? {}), schemas } } : {}),
    },
  };
  return {
    resource,
    info: {
      state: found.error ? 'stale' : 'imported',
      path,
      ...(digest ? { digest } : {}),
      ...(found.error ? { error: found.error } : {}),
      imported: imported.length,
      shadowed,
      unroutable: [...result.unroutable],
    },
  };
}
