/**
 * {@link DocsStore} (the portal's contract, `portal/types.ts`) served from the configuration
 * snapshot: the current OpenAPI document of every API (`openapi.json` of its api-config
 * ConfigMap) and its published versions (api-version ConfigMaps).
 *
 * Cheap by construction: the list is built once per snapshot generation and memoised, so a
 * portal request costs a WeakMap lookup.
 */
import type { OpenAPIObject } from 'openapi3-ts/oas30';
import type { DocsStore, PublishedApi, PublishedVersionDoc } from './portal/types.js';
import type { Snapshot } from './snapshot/build.js';
import type { SnapshotStore } from './snapshot/store.js';

interface Built {
  list: PublishedApi[];
  byId: Map<string, PublishedApi>;
}

function build(snap: Snapshot): Built {
  const list: PublishedApi[] = [];
  for (const id of [...snap.services.keys()].sort()) {
    const svc = snap.services.get(id)!;
    if (!svc.openapi) continue;
    const openapi = svc.openapi as unknown as OpenAPIObject;
    const version = svc.def.version || String((svc.openapi.info as { version?: unknown } | undefined)?.version ?? '');
    const history: PublishedVersionDoc[] = (snap.versions.get(id) ?? []).map((v) => ({
      version: v.version,
      digest: v.digest,
      publishedAt: v.publishedAt,
      openapi: v.openapi as unknown as OpenAPIObject,
    }));
    if (!history.some((h) => h.version === version)) {
      history.push({ version, digest: svc.sourceDigest, publishedAt: new Date(snap.builtAt).toISOString(), openapi });
    }
    list.push({ id, title: svc.def.title || id, version, openapi, history });
  }
  return { list, byId: new Map(list.map((a) => [a.id, a])) };
}

/** A {@link DocsStore} that always reflects the store's current snapshot. */
export class SnapshotDocsStore implements DocsStore {
  private readonly memo = new WeakMap<Snapshot, Built>();
  private readonly store: SnapshotStore;

  constructor(store: SnapshotStore) {
    this.store = store;
  }

  private built(): Built {
    const snap = this.store.current;
    let b = this.memo.get(snap);
    if (!b) this.memo.set(snap, (b = build(snap)));
    return b;
  }

  list(): PublishedApi[] {
    return this.built().list;
  }

  get(id: string): PublishedApi | undefined {
    return this.built().byId.get(id);
  }
}
