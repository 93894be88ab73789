/**
 * Test helpers for the portal: an in-memory {@link DocsStore} built from ApiSchemas with the real
 * generator, and an express app listening on an ephemeral port.
 */
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import express from 'express';
import type { ApiSchema } from '../../lib/api/types.js';
import { apiSchemaId, canonicalDigest, generateOpenApi } from '../../lib/openapi/generate.js';
import { createPortalRouter } from './router.js';
import type { DocsStore, PortalOptions, PublishedApi } from './types.js';

/** Builds PublishedApis: each entry is the list of versions of one API, oldest first (the last is current). */
export function memoryStore(versionsPerApi: ApiSchema[][], gatewayUrl: string, issuerUrl?: string): DocsStore & { apis: PublishedApi[] } {
  const apis: PublishedApi[] = versionsPerApi.map((versions) => {
    const history = versions.map((s, i) => {
      const openapi = generateOpenApi(s, { gatewayUrl, issuerUrl });
      return { version: s.spec.info.version, digest: canonicalDigest(openapi), publishedAt: new Date(Date.UTC(2026, 0, 1 + i)).toISOString(), openapi };
    });
    const cur = versions[versions.length - 1];
    return { id: apiSchemaId(cur), title: cur.spec.info.title, version: cur.spec.info.version, openapi: history[history.length - 1].openapi, history };
  });
  return {
    apis,
    list: () => apis,
    get: (id: string) => apis.find((a) => a.id === id),
  };
}

/** Starts express with the portal router on 127.0.0.1:0. */
export async function startPortal(store: DocsStore, opts: PortalOptions): Promise<{ url: string; server: Server; close(): Promise<void> }> {
  const app = express();
  app.use(createPortalRouter(store, opts));
  const server = await new Promise<Server>((resolve) => {
    const s = app.listen(0, '127.0.0.1', () => resolve(s));
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    server,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
