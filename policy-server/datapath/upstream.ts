/**
 * Upstream lanes: one undici `Pool` and one concurrency limit per service.
 *
 * Every service is reached through the same URL (the gateway's internal listener); what tells
 * them apart is the Host header (the service's internal hostname, `PolicyService.upstream.host`).
 * A lane is keyed by that host. Isolation between tenants comes from two bounds per lane:
 * - `connections` keep-alive connections (its own Pool), so one service's hanging requests
 *   hold only its own connections; its further requests queue in its own Pool;
 * - `limit` requests in flight (dispatched, not yet finished: connected or queued). Beyond it
 *   the data path answers at once with 503 `upstream-busy` (RFC 9457 problem) and
 *   `Retry-After: 1` (RFC 9110 §10.2.3) instead of queueing without bound. Queued requests are
 *   still bound in time by their operation's timeout (the data path's deadline sweep answers
 *   them 504).
 *
 * Lanes are created on a service's first request and closed (gracefully: undici's
 * `Pool.close()` lets dispatched requests finish) when their host is no longer in the
 * configuration snapshot ({@link UpstreamLanes.retain}). With several worker processes the
 * bounds are per worker.
 */
import { Pool, type Dispatcher } from 'undici';

/** One service's share of the upstream. */
export interface UpstreamLane {
  /** The service's internal hostname (the lane key). */
  readonly host: string;
  /** Requests dispatched on this lane and not finished; maintained by the data path. */
  inflight: number;
  /** Most requests in flight at once; the data path refuses more with 503. */
  readonly limit: number;
  dispatch(opts: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean;
}

/** What the data path forwards through (see {@link UpstreamLanes}). */
export interface Upstream {
  /** The lane of one internal host, created on first use (a Map lookup once it exists). */
  lane(host: string): UpstreamLane;
}

/** Options of {@link UpstreamLanes}. */
export interface UpstreamLanesOptions {
  /** Base URL of the gateway's internal listener, e.g. `http://kea-nginx.kea-system:8081`. */
  url: string;
  /** Keep-alive connections per service (default 64). */
  connectionsPerService?: number;
  /** Requests in flight per service before 503 `upstream-busy` (default 256). */
  maxInflightPerService?: number;
  /** Makes a lane's dispatcher (default: an undici Pool on `url`; tests may pass their own). */
  dispatcher?: (host: string) => Dispatcher;
}

/** Defaults of {@link UpstreamLanesOptions}. */
export const UPSTREAM_DEFAULTS = { connectionsPerService: 64, maxInflightPerService: 256 } as const;

class Lane implements UpstreamLane {
  readonly host: string;
  readonly limit: number;
  inflight = 0;
  readonly dispatcher: Dispatcher;
  constructor(host: string, limit: number, dispatcher: Dispatcher) {
    this.host = host;
    this.limit = limit;
    this.dispatcher = dispatcher;
  }
  dispatch(opts: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    return this.dispatcher.dispatch(opts, handler);
  }
}

/** The per-service lanes of one server process. */
export class UpstreamLanes implements Upstream {
  private readonly lanes = new Map<string, Lane>();
  private readonly connections: number;
  private readonly limit: number;
  private readonly make: (host: string) => Dispatcher;
  private closed = false;

  /**
   * @throws {RangeError} when a bound is not a positive integer.
   * @throws {TypeError} when `url` is not an absolute http(s) URL (checked now, not at the first request).
   */
  constructor(opts: UpstreamLanesOptions) {
    const u = new URL(opts.url);
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new TypeError(`upstream URL must be http or https, got ${opts.url}`);
    this.connections = opts.connectionsPerService ?? UPSTREAM_DEFAULTS.connectionsPerService;
    this.limit = opts.maxInflightPerService ?? UPSTREAM_DEFAULTS.maxInflightPerService;
    for (const [k, v] of [
      ['connectionsPerService', this.connections],
      ['maxInflightPerService', this.limit],
    ] as const) {
      if (!Number.isInteger(v) || v < 1) throw new RangeError(`${k} must be a positive integer, got ${v}`);
    }
    this.make =
      opts.dispatcher ??
      (() =>
        new Pool(opts.url, {
          connections: this.connections,
          pipelining: 1,
          // Idle connections are closed by this side first: below nginx's keepalive_timeout on
          // the internal listener (NGF 1.6 writes none, so nginx's default 75 s applies; a
          // ClientSettingsPolicy could lower it, the retry of the data path covers that race).
          keepAliveTimeout: 30_000,
          keepAliveMaxTimeout: 300_000,
          headersTimeout: 5_000,
          bodyTimeout: 5_000,
          connect: { timeout: 2_000 },
        }));
  }

  lane(host: string): UpstreamLane {
    let l = this.lanes.get(host);
    if (l === undefined) {
      l = new Lane(host, this.limit, this.make(host));
      // After close() (shutdown) a late request gets a closed dispatcher: it fails with 502.
      if (this.closed) void l.dispatcher.close().catch(() => undefined);
      else this.lanes.set(host, l);
    }
    return l;
  }

  /** Hosts that currently have a lane (for tests and metrics). */
  hosts(): string[] {
    return [...this.lanes.keys()];
  }

  /**
   * Closes the lanes of hosts not in `hosts` (a configuration swap removed or renamed their
   * service). Requests already dispatched on them finish; the lane is recreated if the host
   * comes back.
   */
  retain(hosts: ReadonlySet<string>): void {
    for (const [host, l] of this.lanes) {
      if (hosts.has(host)) continue;
      this.lanes.delete(host);
      void l.dispatcher.close().catch(() => undefined);
    }
  }

  /** Closes every lane (graceful: dispatched requests finish first). */
  async close(): Promise<void> {
    this.closed = true;
    const all = [...this.lanes.values()];
    this.lanes.clear();
    await Promise.all(all.map((l) => l.dispatcher.close().catch(() => undefined)));
  }
}
