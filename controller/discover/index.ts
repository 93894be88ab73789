/**
 * Stage: discover (a side input of batch).
 *
 * Takes in: the ApiSchemas whose `spec.source.openapi` is set (hand-written services that
 * already serve an OpenAPI document, e.g. FastAPI's `/openapi.json`) and that the controller
 * may fetch for (graph `discoverableApiSchemas`: a plain path, a target in the ApiSchema's
 * namespace or granted by ReferenceGrants), since every fetch carries the internal token.
 * Gives out: the documents their targets serve, keyed `<namespace>/<name>`, for the
 * {@link ClusterSnapshot}; calls `onChange` whenever a document (by digest) or an error changes,
 * so that batch schedules a reconcile.
 *
 * Fetches go through the gateway's internal listener (the same internal HTTPRoute the policy
 * server forwards to), so they work the same in a cluster and in the local stack. A schema is
 * fetched once per generation, then every `intervalSeconds` (default 60) when `refresh` is on.
 * Failures retry with exponential backoff from 1 s up to the interval.
 */
import { request } from 'undici';
import type { ApiSchema } from '../../lib/api/types.js';
import type { DiscoveredDoc } from '../model.js';
import { sha256Hex } from '../../lib/hash.js';

/** Fetches the OpenAPI document an ApiSchema's target serves. Rejects with a readable Error. */
export type DocFetcher = (schema: ApiSchema) => Promise<unknown>;

export interface DiscoveryOptions {
  fetchDoc: DocFetcher;
  onChange: () => void;
  /** First retry delay after a failure, ms (default 1000). */
  minBackoffMs?: number;
}

interface Entry {
  generation: number;
  timer?: NodeJS.Timeout;
  failures: number;
  result?: DiscoveredDoc;
  stopped: boolean;
}

const keyOf = (s: ApiSchema) => `${s.metadata.namespace ?? 'default'}/${s.metadata.name}`;

/** Keeps one fetch loop per ApiSchema with `spec.source.openapi`. */
export class OpenApiDiscovery {
  private readonly entries = new Map<string, Entry>();
  private readonly schemas = new Map<string, ApiSchema>();
  constructor(private readonly opts: DiscoveryOptions) {}

  /** Starts loops for new or changed (by generation) schemas and stops loops of removed ones. */
  sync(all: ApiSchema[]): void {
    const wanted = new Map(all.filter((s) => s.spec.source?.openapi).map((s) => [keyOf(s), s]));
    for (const [key, entry] of this.entries) {
      if (!wanted.has(key)) {
        this.stopEntry(entry);
        this.entries.delete(key);
        this.schemas.delete(key);
      }
    }
    for (const [key, schema] of wanted) {
      this.schemas.set(key, schema);
      const generation = schema.metadata.generation ?? 0;
      const entry = this.entries.get(key);
      if (entry && entry.generation === generation) continue;
      if (entry) this.stopEntry(entry);
      const fresh: Entry = { generation, failures: 0, result: entry?.result, stopped: false };
      this.entries.set(key, fresh);
      void this.fetchNow(key, fresh);
    }
  }

  /** The current results, keyed `<namespace>/<name>`. */
  snapshot(): Record<string, DiscoveredDoc> {
    const out: Record<string, DiscoveredDoc> = {};
    for (const [key, entry] of [...this.entries].sort(([a], [b]) => a.localeCompare(b))) {
      if (entry.result) out[key] = entry.result;
    }
    return out;
  }

  /** Stops every loop. */
  stop(): void {
    for (const entry of this.entries.values()) this.stopEntry(entry);
    this.entries.clear();
  }

  private stopEntry(entry: Entry): void {
    entry.stopped = true;
    if (entry.timer) clearTimeout(entry.timer);
  }

  private async fetchNow(key: string, entry: Entry): Promise<void> {
    const schema = this.schemas.get(key);
    if (!schema || entry.stopped) return;
    const source = schema.spec.source!.openapi!;
    const intervalMs = Math.max(1, source.intervalSeconds ?? 60) * 1000;
    let next: DiscoveredDoc;
    try {
      const doc = await this.opts.fetchDoc(schema);
      const digest = sha256Hex(JSON.stringify(doc));
      next = { fetchedAt: new Date().toISOString(), doc, digest };
      entry.failures = 0;
    } catch (e) {
      entry.failures++;
      next = { fetchedAt: new Date().toISOString(), error: (e as Error).message, doc: entry.result?.doc, digest: entry.result?.digest };
    }
    if (entry.stopped) return;
    const changed = next.digest !== entry.result?.digest || next.error !== entry.result?.error;
    entry.result = next;
    if (changed) this.opts.onChange();
    const backoff = Math.min(intervalMs, (this.opts.minBackoffMs ?? 1000) * 2 ** Math.min(entry.failures - 1, 16));
    const delay = entry.failures > 0 ? backoff : source.refresh ? intervalMs : undefined;
    if (delay !== undefined) entry.timer = setTimeout(() => void this.fetchNow(key, entry), delay);
  }
}

export interface GatewayFetcherOptions {
  /** Base URL of the gateway's internal listener, e.g. `http://127.0.0.1:8081`; only its origin is used. */
  internalGatewayUrl: string;
  /** Value of the `x-kea-internal-token` header the internal HTTPRoutes require. */
  internalToken: string;
  /** The internal hostname that selects the schema's internal HTTPRoute. */
  hostFor: (schema: ApiSchema) => string;
  /** Per-request timeout, ms (default 5000, the seeds' inner-network timeout). */
  timeoutMs?: number;
}

/** Longest `spec.source.openapi.path`, in characters (the CRD's maxLength). */
export const MAX_OPENAPI_PATH = 256;

/**
 * Why `path` is not an acceptable `spec.source.openapi.path`, or undefined when it is: the
 * same rules as the CRD's admission (CEL) rules, so that objects stored before those rules, or
 * written around them, are refused here too. The path must be an absolute path on the target:
 * a single leading `/`, no `//` (WHATWG URL reads `//host/x` as another host), no `\` (read as
 * `/` in http(s) URLs, so `/\host/x` is `//host/x`), only printable ASCII (no spaces, control
 * or non-ASCII characters), no percent-encoded `/`, `\` or NUL (`%2F`, `%5C`, `%00`), no `.` or
 * `..` segment, at most {@link MAX_OPENAPI_PATH} characters.
 */
export function openApiPathProblem(path: string): string | undefined {
  if (path.length > MAX_OPENAPI_PATH) return `is ${path.length} characters long; at most ${MAX_OPENAPI_PATH} are allowed`;
  if (!path.startsWith('/')) return "must be an absolute path on the target starting with '/', not a URL";
  if (path.includes('//')) return "must not contain '//' (a URL parser reads a leading '//host' as another host)";
  if (path.includes('\\')) return "must not contain a backslash (a URL parser reads it as '/', so '/\\host' names another host)";
  if (!/^[!-~]*$/.test(path)) return 'may contain only printable ASCII characters (no spaces, control or non-ASCII characters)';
  if (/%(2f|5c|00)/i.test(path)) return "must not contain a percent-encoded '/', backslash or NUL (%2F, %5C, %00)";
  if (/(^|\/)\.\.?([/?#]|$)/.test(path)) return "must not contain '.' or '..' segments";
  return undefined;
}

/**
 * The URL of `path` on the gateway's internal listener `base`: `path` appended to the base's
 * origin (never resolved against it as a reference, which would let `//host/x` or `/\host/x`
 * name another host), then checked to keep that origin.
 * @throws Error when `path` fails {@link openApiPathProblem} or the URL would leave the origin.
 */
export function internalDocUrl(base: string, path: string): URL {
  const problem = openApiPathProblem(path);
  if (problem) throw new Error(`refusing to fetch spec.source.openapi.path ${JSON.stringify(path)}: it ${problem}`);
  const origin = new URL(base).origin;
  const url = new URL(`${origin}${path}`);
  if (url.origin !== origin)
    throw new Error(`refusing to fetch spec.source.openapi.path ${JSON.stringify(path)}: it resolves to ${url.origin}, not the internal gateway ${origin}`);
  return url;
}

/**
 * A {@link DocFetcher} that GETs `spec.source.openapi.path` (default `/openapi.json`) through the
 * gateway's internal listener with the schema's internal Host header. The request (which
 * carries the internal token) only ever goes to the internal listener's origin
 * ({@link internalDocUrl}); redirects are not followed.
 * @throws Error naming the URL and HTTP status, the network error, or why the path is refused.
 */
export function gatewayFetcher(opts: GatewayFetcherOptions): DocFetcher {
  return async (schema) => {
    const path = schema.spec.source?.openapi?.path ?? '/openapi.json';
    const url = internalDocUrl(opts.internalGatewayUrl, path);
    const host = opts.hostFor(schema);
    // undici's request, not fetch: fetch drops a caller-set Host header (a forbidden header name).
    const res = await request(url, {
      headers: { host, 'x-kea-internal-token': opts.internalToken, accept: 'application/json' },
      signal: AbortSignal.timeout(opts.timeoutMs ?? 5000),
    }).catch((e: Error) => {
      throw new Error(`GET ${path} on ${host}: ${describeCause(e)}`);
    });
    if (res.statusCode !== 200) {
      await res.body.dump();
      throw new Error(`GET ${path} on ${host}: HTTP ${res.statusCode}`);
    }
    try {
      return await res.body.json();
    } catch {
      throw new Error(`GET ${path} on ${host}: the response is not JSON`);
    }
  };
}

/** The most specific message of a fetch failure (undici wraps the socket error in `cause`). */
function describeCause(e: Error): string {
  const cause = e.cause as { message?: string; code?: string; errors?: Array<{ message?: string }> } | undefined;
  return cause?.errors?.[0]?.message ?? cause?.message ?? cause?.code ?? e.message;
}
