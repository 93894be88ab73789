/**
 * Starts a policy server wired to a real backend, on ephemeral ports, for tests and benches.
 */
import { createLogger, type Logger } from '../../lib/log.js';
import type { PolicyService } from '../../lib/policy/config.js';
import type { RequestAuthenticator } from '../datapath/handler.js';
import { createPolicyServer, type PolicyServer } from '../server.js';
import { SnapshotStore } from '../snapshot/store.js';
import { configMapsFor, INTERNAL_TOKEN, startBackend, testAuthenticator, type Backend } from './fixtures.js';
import { Writable } from 'node:stream';
import type { Router } from 'express';
import type { SharedStore } from '../redis.js';

/** A running test stack. */
export interface Stack {
  ps: PolicyServer;
  store: SnapshotStore;
  backend: Backend;
  /** Base URL of the policy server. */
  url: string;
  /** Base URL of its admin port (`/healthz`, `/readyz`, `/metrics`). */
  adminUrl: string;
  /** Audit/log records written so far (parsed JSON lines). */
  logs: Array<Record<string, unknown>>;
  logger: Logger;
  /** Replaces the configuration (immediate swap). */
  configure(...services: PolicyService[]): void;
  close(): Promise<void>;
}

/** Options of {@link startStack}. */
export interface StackOptions {
  services: PolicyService[];
  auth?: RequestAuthenticator;
  logLevel?: string;
  /** Keep logs in memory (default true). */
  captureLogs?: boolean;
  backendQuiet?: boolean;
  drainTimeoutMs?: number;
  /** Extra express routers (e.g. the portal), built from the store. */
  routers?: (store: SnapshotStore) => Router[];
  /** The shared store (policy-server/redis.ts) to give the server; the caller closes it. */
  sharedStore?: SharedStore;
}

/** Starts backend + policy server. */
export async function startStack(opts: StackOptions): Promise<Stack> {
  const backend = await startBackend({ requireToken: INTERNAL_TOKEN, quiet: opts.backendQuiet });
  const logs: Array<Record<string, unknown>> = [];
  const capture = opts.captureLogs ?? true;
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      if (capture) for (const line of chunk.toString('utf8').split('\n')) if (line) logs.push(JSON.parse(line) as Record<string, unknown>);
      cb();
    },
  });
  const logger = createLogger('policy-server', { level: opts.logLevel ?? 'info', stream: sink });
  const store = new SnapshotStore({ logger });
  store.apply(configMapsFor(...opts.services), 'source');
  const ps = createPolicyServer({
    store,
    auth: opts.auth ?? testAuthenticator(),
    upstreamUrl: backend.url,
    internalToken: INTERNAL_TOKEN,
    logger,
    drainTimeoutMs: opts.drainTimeoutMs,
    routers: opts.routers?.(store),
    sharedStore: opts.sharedStore,
  });
  const port = await ps.listen(0, '127.0.0.1');
  const adminPort = await ps.listenAdmin(0, '127.0.0.1');
  return {
    ps,
    store,
    backend,
    url: `http://127.0.0.1:${port}`,
    adminUrl: `http://127.0.0.1:${adminPort}`,
    logs,
    logger,
    configure: (...services) => void store.apply(configMapsFor(...services), 'source'),
    close: async () => {
      await ps.close();
      await backend.close();
    },
  };
}
