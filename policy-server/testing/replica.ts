/**
 * One policy-server replica of a shared-state test (issue 13): its own snapshot store, first
 * level cache and audit ring, and its own connection to a real Redis (dev/testing/redis.ts),
 * listening on an ephemeral port of 127.0.0.1. Several of them on one Redis are the replicas of
 * a Deployment. Test-only.
 */
import type { Logger } from '../../lib/log.js';
import type { PolicyService } from '../../lib/policy/config.js';
import { openSharedStore, type SharedStore } from '../redis.js';
import { createPolicyServer, type PolicyServer, type PolicyServerOptions } from '../server.js';
import { SnapshotStore } from '../snapshot/store.js';
import { configMapsFor, INTERNAL_TOKEN, testAuthenticator } from './fixtures.js';

/** A running replica. */
export interface Replica {
  ps: PolicyServer;
  store: SnapshotStore;
  shared: SharedStore;
  /** Base URL of its data port. */
  url: string;
}

/** Options of {@link startReplica}. */
export interface ReplicaOptions {
  /** The services of its configuration. */
  services: PolicyService[];
  redisUrl: string;
  /** The internal listener it forwards to (e.g. an echo upstream). */
  upstreamUrl: string;
  /** `--redis-timeout-ms`, ms. */
  timeoutMs: number;
  logger: Logger;
  /** More options of the server (cache bounds, audit ring, shared audit log built from `shared`). */
  extra?: (shared: SharedStore) => Partial<PolicyServerOptions>;
}

/** Starts one replica; close it with `ps.close()` then `shared.close()`. */
export async function startReplica(o: ReplicaOptions): Promise<Replica> {
  const store = new SnapshotStore({ logger: o.logger });
  store.apply(configMapsFor(...o.services), 'source');
  const shared = openSharedStore({ url: o.redisUrl, timeoutMs: o.timeoutMs, log: o.logger });
  const ps = createPolicyServer({
    store,
    auth: testAuthenticator(),
    upstreamUrl: o.upstreamUrl,
    internalToken: INTERNAL_TOKEN,
    logger: o.logger,
    sharedStore: shared,
    ...o.extra?.(shared),
  });
  return { ps, store, shared, url: `http://127.0.0.1:${await ps.listen(0, '127.0.0.1')}` };
}
