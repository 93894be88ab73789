/**
 * Prometheus metrics of the policy server (prom-client, own registry, text format 0.0.4).
 *
 * - `kea_policy_requests_total{operation,outcome,code}`: data-path requests.
 * - `kea_policy_request_duration_seconds{operation,outcome}`: histogram, seconds.
 * - `kea_policy_cache_lookups_total{result}` (`hit` | `miss`) and the gauge
 *   `kea_policy_cache_hit_ratio` (0..1), `kea_policy_cache_bytes`, `kea_policy_cache_entries`.
 * - `kea_cache_l2_total{result}` (`hit` | `miss` | `error` | `store`): the response cache's
 *   second level in Redis (datapath/shared-cache.ts). Its hits are among the `hit` lookups
 *   above (an answer from either level is a hit), so first-level hits = those − L2 hits.
 * - `kea_cache_l1_resyncs_total`: whole first levels dropped because the purge subscription
 *   (Redis pub/sub, datapath/shared-cache.ts `followPurges`) was re-established after a loss
 *   (or first made while the first level already held entries): purges may have been missed.
 * - `kea_policy_validation_failures_total{operation,in}`: failing pointers by location.
 * - `kea_rate_limited_total{service,operation,identity_class}`: requests refused 429 by a rate
 *   limit (datapath/steps/rate-limit.ts); `identity_class` is `user`, `client` or `anonymous`.
 * - with a shared store (`--redis-url`, policy-server/redis.ts): the gauge `kea_redis_available`
 *   (1 while this process uses Redis; over workers the minimum) and
 *   `kea_redis_errors_total{op}` (failed or slow Redis calls by operation).
 * - `kea_policy_config_generation`, `kea_policy_config_errors`, `kea_policy_config_services`,
 *   `kea_policy_config_source_up`, `kea_policy_config_last_sync_seconds`.
 * - default Node process metrics (`process_*`, `nodejs_*`).
 *
 * Hot path: label children are resolved once per (operation, outcome) and memoised, so a
 * request costs two map lookups and two increments, no label hashing.
 *
 * Multi-process mode (`--workers n`, policy-server/cluster.ts): every worker keeps this
 * registry; a scrape is answered by {@link aggregateWorkerMetrics} over all workers' JSON, with
 * prom-client's `AggregatorRegistry.aggregate`. Counters and histograms are summed, and so are
 * `kea_policy_cache_bytes` / `_entries` and the process metrics whose aggregator prom-client
 * sets (`process_resident_memory_bytes` is the sum over workers). Each per-process gauge
 * declares its aggregator below: `kea_policy_config_source_up` = `min` (1 only when every
 * worker is in sync), `kea_policy_config_last_sync_seconds` = `min` (the stalest worker),
 * `kea_policy_config_generation` / `_errors` / `_services` = `max` (generations are
 * per-process counters), `kea_policy_cache_hit_ratio` is recomputed from the summed lookups.
 * The aggregated text adds `kea_policy_workers`, `kea_policy_workers_answered` and
 * `kea_policy_worker_restarts_total`.
 */
import client from 'prom-client';
import type { SharedStoreStats } from './redis.js';

/** `identity_class` of `kea_rate_limited_total`: who was refused. */
export type IdentityClass = 'user' | 'client' | 'anonymous';

/** Metric handles used by the data path. */
export class Metrics {
  readonly registry = new client.Registry();
  readonly requests: client.Counter<'operation' | 'outcome' | 'code'>;
  readonly duration: client.Histogram<'operation' | 'outcome'>;
  readonly cacheLookups: client.Counter<'result'>;
  /** `kea_cache_l2_total{result}`: lookups and stores of the cache's second level (Redis). */
  readonly cacheL2: client.Counter<'result'>;
  /** `kea_cache_l1_resyncs_total`: first levels dropped on a re-established purge subscription. */
  readonly cacheL1Resyncs: client.Counter;
  readonly validationFailures: client.Counter<'operation' | 'in'>;
  readonly configGeneration: client.Gauge;
  readonly configErrors: client.Gauge;
  readonly configServices: client.Gauge;
  readonly sourceUp: client.Gauge;
  readonly lastSync: client.Gauge;
  private readonly children = new Map<string, { count: client.Counter.Internal; hist: client.Histogram.Internal<'operation' | 'outcome'> }>();
  private readonly cacheHit: client.Counter.Internal;
  /** `kea_rate_limited_total{service,operation,identity_class}`. */
  readonly rateLimitedTotal: client.Counter<'service' | 'operation' | 'identity_class'>;
  private readonly rateLimitedChildren = new Map<string, client.Counter.Internal>();
  private readonly cacheMiss: client.Counter.Internal;

  /**
   * @param cacheStats - read at scrape time for the cache gauges.
   * @param sourceStats - read at scrape time for the config source gauges.
   */
  constructor(cacheStats?: () => { hitRatio: number; bytes: number; entries: number }, sourceStats?: () => { up: boolean; lastSyncAt: number }) {
    const r = this.registry;
    client.collectDefaultMetrics({ register: r });
    this.requests = new client.Counter({
      name: 'kea_policy_requests_total',
      help: 'Data-path requests by operation, outcome and HTTP status',
      labelNames: ['operation', 'outcome', 'code'],
      registers: [r],
    });
    this.duration = new client.Histogram({
      name: 'kea_policy_request_duration_seconds',
      help: 'Data-path request latency in seconds (request start to response end)',
      labelNames: ['operation', 'outcome'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [r],
    });
    this.cacheLookups = new client.Counter({
      name: 'kea_policy_cache_lookups_total',
      help: 'Response cache lookups by result',
      labelNames: ['result'],
      registers: [r],
    });
    this.cacheHit = this.cacheLookups.labels('hit');
    this.cacheMiss = this.cacheLookups.labels('miss');
    this.cacheL2 = new client.Counter({
      name: 'kea_cache_l2_total',
      help: 'Response cache second level (Redis): hit, miss, error (Redis failed or slow, or an unreadable entry), store',
      labelNames: ['result'],
      registers: [r],
    });
    this.cacheL1Resyncs = new client.Counter({
      name: 'kea_cache_l1_resyncs_total',
      help: 'Response cache first levels dropped whole because the purge subscription (Redis pub/sub) was (re)established while purges may have been missed',
      registers: [r],
    });
    this.rateLimitedTotal = new client.Counter({
      name: 'kea_rate_limited_total',
      help: 'Requests refused (429) by a rate limit, by service, operation and identity class (user, client, anonymous)',
      labelNames: ['service', 'operation', 'identity_class'],
      registers: [r],
    });
    this.validationFailures = new client.Counter({
      name: 'kea_policy_validation_failures_total',
      help: 'Failing JSON pointers in rejected requests and responses, by location',
      labelNames: ['operation', 'in'],
      registers: [r],
    });
    new client.Gauge({
      name: 'kea_policy_cache_hit_ratio',
      help: 'Response cache hits / lookups since start (0..1)',
      registers: [r],
      aggregator: 'omit', // recomputed from the summed lookups (aggregateWorkerMetrics)
      collect() {
        if (cacheStats) this.set(cacheStats().hitRatio);
      },
    });
    new client.Gauge({
      name: 'kea_policy_cache_bytes',
      help: 'Bytes held by the response cache',
      registers: [r],
      collect() {
        if (cacheStats) this.set(cacheStats().bytes);
      },
    });
    new client.Gauge({
      name: 'kea_policy_cache_entries',
      help: 'Entries in the response cache',
      registers: [r],
      collect() {
        if (cacheStats) this.set(cacheStats().entries);
      },
    });
    this.configGeneration = new client.Gauge({
      name: 'kea_policy_config_generation',
      help: 'Generation of the configuration snapshot being served',
      registers: [r],
      aggregator: 'max',
    });
    this.configErrors = new client.Gauge({
      name: 'kea_policy_config_errors',
      help: 'Configuration errors in the current snapshot',
      registers: [r],
      aggregator: 'max',
    });
    this.configServices = new client.Gauge({ name: 'kea_policy_config_services', help: 'Services in the current snapshot', registers: [r], aggregator: 'max' });
    this.sourceUp = new client.Gauge({
      name: 'kea_policy_config_source_up',
      help: '1 while the configuration source is in sync',
      registers: [r],
      aggregator: 'min',
      collect() {
        if (sourceStats) this.set(sourceStats().up ? 1 : 0);
      },
    });
    this.lastSync = new client.Gauge({
      name: 'kea_policy_config_last_sync_seconds',
      help: 'Unix time of the last configuration list or event seen',
      registers: [r],
      aggregator: 'min',
      collect() {
        if (sourceStats) this.set(sourceStats().lastSyncAt / 1000);
      },
    });
  }

  /**
   * Records one finished request.
   * @param seconds - latency in seconds.
   */
  observe(operation: string, outcome: string, status: number, seconds: number): void {
    const k = `${operation}\n${outcome}\n${status}`;
    let c = this.children.get(k);
    if (!c) {
      c = { count: this.requests.labels(operation, outcome, String(status)), hist: this.duration.labels(operation, outcome) };
      this.children.set(k, c);
    }
    c.count.inc();
    c.hist.observe(seconds);
  }

  /** Counts a cache lookup. */
  cache(hit: boolean): void {
    (hit ? this.cacheHit : this.cacheMiss).inc();
  }

  /** Counts a request refused by a rate limit (`kea_rate_limited_total`). */
  rateLimited(service: string, operation: string, identityClass: IdentityClass): void {
    const k = `${service}\n${operation}\n${identityClass}`;
    let c = this.rateLimitedChildren.get(k);
    if (!c) {
      c = this.rateLimitedTotal.labels(service, operation, identityClass);
      this.rateLimitedChildren.set(k, c);
    }
    c.inc();
  }

  /**
   * Exposes the shared store's state (policy-server/redis.ts), read at scrape time:
   * `kea_redis_available` (gauge, 1/0; aggregated over workers as the minimum) and
   * `kea_redis_errors_total{op}` (counter). Called once, when the server has a store.
   */
  watchSharedStore(stats: () => SharedStoreStats): void {
    const r = this.registry;
    new client.Gauge({
      name: 'kea_redis_available',
      help: '1 while the shared store (Redis) is connected and answering in time, else 0 (rate limits per process, cache first level only)',
      registers: [r],
      aggregator: 'min',
      collect() {
        this.set(stats().available ? 1 : 0);
      },
    });
    new client.Counter({
      name: 'kea_redis_errors_total',
      help: 'Shared store (Redis) calls that failed or exceeded --redis-timeout-ms, by operation (connection: connection errors)',
      labelNames: ['op'],
      registers: [r],
      collect() {
        // The store counts; the exposition copies its totals (monotonic, as a counter's must be).
        this.reset();
        for (const [op, n] of stats().errors) this.labels(op).inc(n);
      },
    });
  }

  /** Counts validation failures by location. */
  validation(operation: string, errors: ReadonlyArray<{ in: string }>): void {
    for (const e of errors) this.validationFailures.labels(operation, e.in).inc();
  }
}

/** What the cluster primary reports with the workers' metrics (policy-server/cluster.ts). */
export interface ClusterMetricsInfo {
  /** Configured worker count. */
  workers: number;
  /** Workers whose metrics are in this answer. */
  answered: number;
  /** Unexpected worker exits since the primary started (each one restarted). */
  restarts: number;
}

/**
 * Aggregates the metrics of every worker into one Prometheus text exposition (0.0.4).
 * @param perWorker - `registry.getMetricsAsJSON()` of each worker that answered.
 * @param info - worker counts from the primary; exposed as `kea_policy_workers`,
 *   `kea_policy_workers_answered` (fewer than `workers` when one did not answer in time or is
 *   restarting: the sums are then partial) and `kea_policy_worker_restarts_total`.
 * @returns the text and its content type.
 * @throws if a metric declares an aggregator prom-client does not know (programming error).
 */
export async function aggregateWorkerMetrics(
  perWorker: client.MetricObjectWithValues<client.MetricValue<string>>[][],
  info: ClusterMetricsInfo,
): Promise<{ text: string; contentType: string }> {
  const reg = client.AggregatorRegistry.aggregate(perWorker);
  const lookups = reg.getSingleMetric('kea_policy_cache_lookups_total') as unknown as
    { get(): { values: Array<{ labels: { result?: string }; value: number }> } } | undefined;
  let hits = 0;
  let all = 0;
  for (const v of lookups?.get().values ?? []) {
    all += v.value;
    if (v.labels.result === 'hit') hits += v.value;
  }
  new client.Gauge({ name: 'kea_policy_cache_hit_ratio', help: 'Response cache hits / lookups since start (0..1), over all workers', registers: [reg] }).set(
    all ? hits / all : 0,
  );
  new client.Gauge({ name: 'kea_policy_workers', help: 'Configured policy server worker processes', registers: [reg] }).set(info.workers);
  new client.Gauge({ name: 'kea_policy_workers_answered', help: 'Workers whose metrics are included in this scrape', registers: [reg] }).set(info.answered);
  new client.Counter({ name: 'kea_policy_worker_restarts_total', help: 'Worker processes restarted after an unexpected exit', registers: [reg] }).inc(
    info.restarts,
  );
  return { text: await reg.metrics(), contentType: reg.contentType };
}
