/**
 * Prometheus metrics of the policy server (prom-client, own registry, text format 0.0.4).
 *
 * - `kea_policy_requests_total{operation,outcome,code}`: data-path requests.
 * - `kea_policy_request_duration_seconds{operation,outcome}`: histogram, seconds.
 * - `kea_policy_cache_lookups_total{result}` (`hit` | `miss`) and the gauge
 *   `kea_policy_cache_hit_ratio` (0..1), `kea_policy_cache_bytes`, `kea_policy_cache_entries`.
 * - `kea_policy_validation_failures_total{operation,in}`: failing pointers by location.
 * - `kea_policy_config_generation`, `kea_policy_config_errors`, `kea_policy_config_services`,
 *   `kea_policy_config_source_up`, `kea_policy_config_last_sync_seconds`.
 * - default Node process metrics (`process_*`, `nodejs_*`).
 *
 * Hot path: label children are resolved once per (operation, outcome) and memoised, so a
 * request costs two map lookups and two increments, no label hashing.
 */
import client from 'prom-client';

/** Metric handles used by the data path. */
export class Metrics {
  readonly registry = new client.Registry();
  readonly requests: client.Counter<'operation' | 'outcome' | 'code'>;
  readonly duration: client.Histogram<'operation' | 'outcome'>;
  readonly cacheLookups: client.Counter<'result'>;
  readonly validationFailures: client.Counter<'operation' | 'in'>;
  readonly configGeneration: client.Gauge;
  readonly configErrors: client.Gauge;
  readonly configServices: client.Gauge;
  readonly sourceUp: client.Gauge;
  readonly lastSync: client.Gauge;
  private readonly children = new Map<string, { count: client.Counter.Internal; hist: client.Histogram.Internal<'operation' | 'outcome'> }>();
  private readonly cacheHit: client.Counter.Internal;
  private readonly cacheMiss: client.Counter.Internal;

  /**
   * @param cacheStats - read at scrape time for the cache gauges.
   * @param sourceStats - read at scrape time for the config source gauges.
   */
  constructor(
    cacheStats?: () => { hitRatio: number; bytes: number; entries: number },
    sourceStats?: () => { up: boolean; lastSyncAt: number },
  ) {
    const r = this.registry;
    client.collectDefaultMetrics({ register: r });
    this.requests = new client.Counter({ name: 'kea_policy_requests_total', help: 'Data-path requests by operation, outcome and HTTP status', labelNames: ['operation', 'outcome', 'code'], registers: [r] });
    this.duration = new client.Histogram({
      name: 'kea_policy_request_duration_seconds',
      help: 'Data-path request latency in seconds (request start to response end)',
      labelNames: ['operation', 'outcome'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [r],
    });
    this.cacheLookups = new client.Counter({ name: 'kea_policy_cache_lookups_total', help: 'Response cache lookups by result', labelNames: ['result'], registers: [r] });
    this.cacheHit = this.cacheLookups.labels('hit');
    this.cacheMiss = this.cacheLookups.labels('miss');
    this.validationFailures = new client.Counter({ name: 'kea_policy_validation_failures_total', help: 'Failing JSON pointers in rejected requests and responses, by location', labelNames: ['operation', 'in'], registers: [r] });
    new client.Gauge({
      name: 'kea_policy_cache_hit_ratio',
      help: 'Response cache hits / lookups since start (0..1)',
      registers: [r],
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
    this.configGeneration = new client.Gauge({ name: 'kea_policy_config_generation', help: 'Generation of the configuration snapshot being served', registers: [r] });
    this.configErrors = new client.Gauge({ name: 'kea_policy_config_errors', help: 'Configuration errors in the current snapshot', registers: [r] });
    this.configServices = new client.Gauge({ name: 'kea_policy_config_services', help: 'Services in the current snapshot', registers: [r] });
    this.sourceUp = new client.Gauge({
      name: 'kea_policy_config_source_up',
      help: '1 while the configuration source is in sync',
      registers: [r],
      collect() {
        if (sourceStats) this.set(sourceStats().up ? 1 : 0);
      },
    });
    this.lastSync = new client.Gauge({
      name: 'kea_policy_config_last_sync_seconds',
      help: 'Unix time of the last configuration list or event seen',
      registers: [r],
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

  /** Counts validation failures by location. */
  validation(operation: string, errors: ReadonlyArray<{ in: string }>): void {
    for (const e of errors) this.validationFailures.labels(operation, e.in).inc();
  }
}
