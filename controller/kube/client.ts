/**
 * A thin JSON REST client for the Kubernetes API over undici (`fetch` with one keep-alive
 * connection pool), authenticated from a {@link ClusterAuth} (kubeconfig or in-cluster).
 *
 * Why not `@kubernetes/client-node` at run time (its types are still used):
 *  - `KubernetesObjectApi` round-trips every body through the generated `ObjectSerializer`,
 *    which turns timestamps into `Date`s and drops fields unknown to the typed models; KEA
 *    hashes desired objects and compares live copies, so it needs the JSON exactly as served;
 *  - its KubeConfig builds a new undici Agent (a new TLS connection) per request, and
 *    importing it costs +82 MiB RSS (see kubeconfig.ts and docs/performance.md).
 */
import { readFileSync } from 'node:fs';
import type { KubernetesObject } from '@kubernetes/client-node';
import { Agent, fetch, type Dispatcher } from 'undici';
import type { ClusterAuth } from './kubeconfig.js';

/** Where a kind lives in the REST API. */
export interface ResourceRef {
  /** `v1`, `apps/v1`, `gateway.networking.k8s.io/v1`, ... */
  apiVersion: string;
  kind: string;
  /** Lower-case plural resource name, e.g. `httproutes`. */
  plural: string;
  namespaced: boolean;
}

/** Kinds KEA reads or writes. Unknown kinds are resolved by API discovery. */
export const RESOURCES: Record<string, ResourceRef> = Object.fromEntries(
  (
    [
      ['kea.dev/v1alpha1', 'ApiSchema', 'apischemas', true],
      ['kea.dev/v1alpha1', 'MLService', 'mlservices', true],
      ['v1', 'Service', 'services', true],
      ['v1', 'ConfigMap', 'configmaps', true],
      ['v1', 'Secret', 'secrets', true],
      ['v1', 'Namespace', 'namespaces', false],
      ['v1', 'Event', 'events', true],
      ['apps/v1', 'Deployment', 'deployments', true],
      ['gateway.networking.k8s.io/v1', 'HTTPRoute', 'httproutes', true],
      ['gateway.networking.k8s.io/v1', 'Gateway', 'gateways', true],
      ['gateway.networking.k8s.io/v1beta1', 'ReferenceGrant', 'referencegrants', true],
      ['coordination.k8s.io/v1', 'Lease', 'leases', true],
      ['policy/v1', 'PodDisruptionBudget', 'poddisruptionbudgets', true],
      ['gateway.nginx.org/v1alpha1', 'ClientSettingsPolicy', 'clientsettingspolicies', true],
      ['gateway.nginx.org/v1alpha1', 'UpstreamSettingsPolicy', 'upstreamsettingspolicies', true],
    ] as Array<[string, string, string, boolean]>
  ).map(([apiVersion, kind, plural, namespaced]) => [`${apiVersion}/${kind}`, { apiVersion, kind, plural, namespaced }]),
);

/** An HTTP error from the API server, carrying its `Status` reason and message. */
export class KubeError extends Error {
  /** HTTP status code (404, 409, 410, 422, 500, ...); 0 for a transport error. */
  readonly statusCode: number;
  /** metav1.Status reason, e.g. `NotFound`, `AlreadyExists`, `Conflict`, `Invalid`. */
  readonly reason: string;
  readonly body?: unknown;

  constructor(statusCode: number, reason: string, message: string, body?: unknown) {
    super(message);
    this.name = 'KubeError';
    this.statusCode = statusCode;
    this.reason = reason;
    this.body = body;
  }
}

/** A list response with its resourceVersion (for starting a watch). */
export interface ObjectList<T = KubernetesObject> {
  items: T[];
  metadata: { resourceVersion?: string; continue?: string };
}

export interface RequestOptions {
  query?: Record<string, string | number | boolean | undefined>;
  /** Accept header (default application/json). */
  accept?: string;
  body?: unknown;
  /** Content-Type of the body; default application/json. */
  contentType?: string;
  signal?: AbortSignal;
}

/** Counts requests by verb, for metrics and tests. */
export type RequestObserver = (method: string, path: string, status: number, ms: number) => void;

/**
 * JSON client for one cluster. All methods throw {@link KubeError} on a non-2xx answer or a
 * transport failure (statusCode 0).
 */
export class KubeClient {
  private discovered = new Map<string, ResourceRef>();
  private server: string;
  readonly cluster: ClusterAuth;
  observer?: RequestObserver;
  /**
   * ONE undici dispatcher for the client's lifetime (kept-alive TLS connections) and the auth
   * headers, re-read every minute (rotating token files). Measured with client-node's
   * per-request Agent instead: a TLS handshake per write and ~+110 MiB RSS at 100 ApiSchemas.
   */
  private readonly dispatcher: Dispatcher;
  private auth?: { headers: Record<string, string>; at: number };

  constructor(cluster: ClusterAuth) {
    this.cluster = cluster;
    this.server = cluster.server.replace(/\/$/, '');
    this.dispatcher = new Agent({
      connect: {
        ca: cluster.ca,
        cert: cluster.cert,
        key: cluster.key,
        rejectUnauthorized: !cluster.insecureSkipTlsVerify,
        servername: cluster.tlsServerName,
        keepAlive: true,
        keepAliveInitialDelay: 30_000,
      },
      keepAliveTimeout: 30_000,
    });
  }

  /** Closes the connection pool. */
  async close(): Promise<void> {
    await this.dispatcher.close();
  }

  /** Sends one request; returns the parsed JSON body (or undefined for an empty body). */
  async request<T = unknown>(method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE', path: string, opts: RequestOptions = {}): Promise<T> {
    const url = new URL(this.server + path);
    for (const [k, v] of Object.entries(opts.query ?? {})) if (v !== undefined) url.searchParams.set(k, String(v));
    const auth = await this.authentication();
    const headers: Record<string, string> = { ...auth.headers, accept: opts.accept ?? 'application/json' };
    let body: string | undefined;
    if (opts.body !== undefined) {
      body = typeof opts.body === 'string' ? opts.body : JSON.stringify(opts.body);
      headers['content-type'] = opts.contentType ?? 'application/json';
    }
    const started = performance.now();
    let res;
    try {
      res = await fetch(url, {
        method,
        headers,
        body,
        dispatcher: auth.dispatcher,
        signal: opts.signal ?? AbortSignal.timeout(30_000),
      });
    } catch (err) {
      this.observer?.(method, path, 0, performance.now() - started);
      const cause = (err as { cause?: { code?: string } }).cause?.code;
      throw new KubeError(0, 'Transport', `${method} ${path}: ${(err as Error).message}${cause ? ` (${cause})` : ''}`);
    }
    const text = await res.text();
    this.observer?.(method, path, res.status, performance.now() - started);
    let json: unknown;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      json = text;
    }
    if (res.status < 200 || res.status > 299) {
      const st = (json ?? {}) as { reason?: string; message?: string };
      throw new KubeError(res.status, st.reason ?? 'Unknown', `${method} ${path}: ${res.status} ${st.message ?? text.slice(0, 500)}`, json);
    }
    return json as T;
  }

  private async authentication(): Promise<{ headers: Record<string, string>; dispatcher: Dispatcher }> {
    const now = Date.now();
    if (!this.auth || now - this.auth.at > 60_000) {
      let token = this.cluster.token;
      if (this.cluster.tokenFile) token = readFileSync(this.cluster.tokenFile, 'utf8').trim();
      this.auth = { headers: token ? { authorization: `Bearer ${token}` } : {}, at: now };
    }
    return { headers: this.auth.headers, dispatcher: this.dispatcher };
  }

  /** Resolves where a kind lives; uses the static table, then API discovery (cached). */
  async resource(apiVersion: string, kind: string): Promise<ResourceRef> {
    const key = `${apiVersion}/${kind}`;
    const known = RESOURCES[key] ?? this.discovered.get(key);
    if (known) return known;
    const list = await this.request<{ resources: Array<{ name: string; kind: string; namespaced: boolean }> }>('GET', groupPath(apiVersion));
    const r = list.resources.find((x) => x.kind === kind && !x.name.includes('/'));
    if (!r) throw new KubeError(404, 'NotFound', `no resource for ${key}`);
    const ref = { apiVersion, kind, plural: r.name, namespaced: r.namespaced };
    this.discovered.set(key, ref);
    return ref;
  }

  /** Collection path, e.g. `/apis/apps/v1/namespaces/x/deployments` (all namespaces when ns is undefined). */
  collectionPath(ref: ResourceRef, namespace?: string): string {
    const ns = ref.namespaced && namespace ? `/namespaces/${encodeURIComponent(namespace)}` : '';
    return `${groupPath(ref.apiVersion)}${ns}/${ref.plural}`;
  }

  /** Object path, optionally with a subresource (`status`). */
  objectPath(ref: ResourceRef, namespace: string | undefined, name: string, sub?: string): string {
    return `${this.collectionPath(ref, namespace)}/${encodeURIComponent(name)}${sub ? `/${sub}` : ''}`;
  }

  /**
   * Lists every object of a kind (following `continue` pages of `pageSize`), returning the
   * items and the list's resourceVersion.
   */
  async list(ref: ResourceRef, opts: { namespace?: string; labelSelector?: string; pageSize?: number; metadataOnly?: boolean } = {}): Promise<ObjectList> {
    const items: KubernetesObject[] = [];
    let cont: string | undefined;
    let rv: string | undefined;
    do {
      const page = await this.request<ObjectList>('GET', this.collectionPath(ref, opts.namespace), {
        query: { labelSelector: opts.labelSelector, limit: opts.pageSize ?? 500, continue: cont },
        accept: opts.metadataOnly ? ACCEPT_METADATA_LIST : undefined,
      });
      for (const it of page.items ?? []) {
        // List items carry no apiVersion/kind; watch events do. Make both alike.
        it.apiVersion = ref.apiVersion;
        it.kind = ref.kind;
        items.push(it);
      }
      cont = page.metadata?.continue || undefined;
      rv = page.metadata?.resourceVersion;
    } while (cont);
    return { items, metadata: { resourceVersion: rv } };
  }

  /**
   * Starts a watch (`?watch=true`) on a collection path, with the same contract as
   * client-node's `Watch.watch` (so it can drive a `ListWatch`): `callback(type, object)` per
   * event, `done(err|null)` exactly once when the stream ends, fails or is aborted. Uses the
   * client's shared connection pool, asks for bookmarks and a server-side timeout (5–10 min,
   * like client-go), and aborts after `inactivityMs` without a byte (dead connections).
   * With `metadataOnly`, events carry PartialObjectMetadata (meta.k8s.io/v1) only.
   */
  async watch(
    path: string,
    query: Record<string, string | number | boolean | undefined>,
    callback: (type: string, obj: KubernetesObject) => void,
    done: (err: unknown) => void,
    opts: { metadataOnly?: boolean; inactivityMs?: number } = {},
  ): Promise<AbortController> {
    const url = new URL(this.server + path);
    const timeoutSeconds = 300 + Math.floor(Math.random() * 300);
    for (const [k, v] of Object.entries({ ...query, watch: true, allowWatchBookmarks: true, timeoutSeconds })) {
      if (v !== undefined) url.searchParams.set(k, String(v));
    }
    const ac = new AbortController();
    let finished = false;
    let timer: NodeJS.Timeout | undefined;
    const finish = (err: unknown) => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      ac.abort();
      done(err);
    };
    const inactivityMs = opts.inactivityMs ?? (timeoutSeconds + 60) * 1000;
    const touch = () => {
      clearTimeout(timer);
      timer = setTimeout(() => finish(Object.assign(new Error('watch inactive'), { name: 'TimeoutError' })), inactivityMs);
      timer.unref();
    };
    try {
      const auth = await this.authentication();
      touch();
      const res = await fetch(url, {
        method: 'GET',
        headers: { ...auth.headers, accept: opts.metadataOnly ? ACCEPT_METADATA : 'application/json' },
        dispatcher: auth.dispatcher,
        signal: ac.signal,
      });
      if (res.status !== 200) {
        const text = await res.text().catch(() => '');
        throw Object.assign(new KubeError(res.status, 'WatchFailed', `watch ${path}: ${res.status} ${text.slice(0, 300)}`), { code: res.status });
      }
      touch();
      void (async () => {
        let buf = '';
        const decoder = new TextDecoder();
        try {
          for await (const chunk of res.body as AsyncIterable<Uint8Array>) {
            touch();
            buf += decoder.decode(chunk, { stream: true });
            let i;
            while ((i = buf.indexOf('\n')) >= 0) {
              const line = buf.slice(0, i);
              buf = buf.slice(i + 1);
              if (!line.trim()) continue;
              let ev: { type: string; object: KubernetesObject };
              try {
                ev = JSON.parse(line);
              } catch {
                continue;
              }
              callback(ev.type, ev.object);
            }
          }
          finish(null);
        } catch (err) {
          finish(finished ? null : err);
        }
      })();
    } catch (err) {
      finish(err);
    }
    return ac;
  }

  async get<T = KubernetesObject>(ref: ResourceRef, namespace: string | undefined, name: string): Promise<T> {
    return this.request<T>('GET', this.objectPath(ref, namespace, name));
  }

  /**
   * Server-side apply (Kubernetes "Server-Side Apply", PATCH application/apply-patch+yaml;
   * JSON is valid YAML) with the given field manager, `force=true`. With `metadataOnly`, the
   * response is the applied object's PartialObjectMetadata (meta.k8s.io/v1: name,
   * resourceVersion, generation, labels, annotations, managedFields) instead of the whole
   * object: the controller reads only those, and a ConfigMap's echoed `openapi.json` is not
   * parsed for nothing.
   */
  async apply<T = KubernetesObject>(obj: KubernetesObject, fieldManager: string, opts: { metadataOnly?: boolean } = {}): Promise<T> {
    const ref = await this.resource(obj.apiVersion!, obj.kind!);
    return this.request<T>('PATCH', this.objectPath(ref, obj.metadata?.namespace, obj.metadata!.name!), {
      query: { fieldManager, force: true },
      body: obj,
      contentType: 'application/apply-patch+yaml',
      ...(opts.metadataOnly ? { accept: ACCEPT_METADATA } : {}),
    });
  }

  /**
   * Replaces `.status` via the status subresource (JSON Patch `add /status`).
   * With `metadataOnly` (as for {@link apply}), the response is the object's
   * PartialObjectMetadata (meta.k8s.io/v1) instead of the whole object.
   */
  async replaceStatus<T = KubernetesObject>(
    ref: ResourceRef,
    namespace: string,
    name: string,
    status: unknown,
    fieldManager: string,
    opts: { metadataOnly?: boolean } = {},
  ): Promise<T> {
    return this.request<T>('PATCH', this.objectPath(ref, namespace, name, 'status'), {
      query: { fieldManager },
      body: [{ op: 'add', path: '/status', value: status }],
      contentType: 'application/json-patch+json',
      ...(opts.metadataOnly ? { accept: ACCEPT_METADATA } : {}),
    });
  }

  /** Deletes an object; a 404 is not an error. Background propagation. */
  async delete(ref: ResourceRef, namespace: string | undefined, name: string, opts: { uid?: string } = {}): Promise<void> {
    try {
      await this.request('DELETE', this.objectPath(ref, namespace, name), {
        body: { kind: 'DeleteOptions', apiVersion: 'v1', propagationPolicy: 'Background', ...(opts.uid ? { preconditions: { uid: opts.uid } } : {}) },
      });
    } catch (err) {
      if (err instanceof KubeError && err.statusCode === 404) return;
      throw err;
    }
  }

  async create<T = KubernetesObject>(obj: KubernetesObject, fieldManager?: string): Promise<T> {
    const ref = await this.resource(obj.apiVersion!, obj.kind!);
    return this.request<T>('POST', this.collectionPath(ref, obj.metadata?.namespace), { query: { fieldManager }, body: obj });
  }

  async replace<T = KubernetesObject>(obj: KubernetesObject, fieldManager?: string): Promise<T> {
    const ref = await this.resource(obj.apiVersion!, obj.kind!);
    return this.request<T>('PUT', this.objectPath(ref, obj.metadata?.namespace, obj.metadata!.name!), { query: { fieldManager }, body: obj });
  }
}

/** Accept headers for metadata-only lists and watches (PartialObjectMetadata, meta.k8s.io/v1). */
export const ACCEPT_METADATA_LIST = 'application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json';
export const ACCEPT_METADATA = 'application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json';

function groupPath(apiVersion: string): string {
  return apiVersion.includes('/') ? `/apis/${apiVersion}` : `/api/${apiVersion}`;
}
