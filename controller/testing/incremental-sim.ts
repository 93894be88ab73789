/**
 * A simulated cluster for tests of the incremental reconcile (controller/incremental.ts)
 * against the full one (controller/reconcile.ts `reconcile`): controller/incremental.test.ts
 * and controller/incremental.property.test.ts.
 *
 * After every run the rendered objects are "applied" (key → desired hash), statuses written
 * back into the resources (with a new resourceVersion, as the API server does), new
 * version-history ConfigMaps added to the snapshot and dropped ones removed, and (with
 * `routes`) the live HTTPRoutes the gateway judges kept up to date (generation bumped when
 * KEA writes a new spec, `kea.dev/applied-hash`, `status.parents` as the gateway last wrote
 * them). Each run checks that the incremental run's desired state (rendered objects plus the
 * unchanged ones it names) equals the full reconcile's object for object and hash for hash,
 * that its retained owners and dropped versions are the same, that the statuses it sends are
 * the full run's for those owners, and that every owner it skips already carries the status
 * the full run computes. A failed check throws (Jest's `expect`).
 */
import { expect } from '@jest/globals';
import type { KubernetesObject } from '@kubernetes/client-node';
import { LABELS, type ApiSchema, type MLService, type Operation } from '../../lib/api/types.js';
import { canonicalJson } from '../../lib/canonical-json.js';
import { objectKey } from '../../lib/kube/objects.js';
import { COMPONENT_API_VERSION } from '../../lib/policy/config.js';
import { GraphMemo, type GraphInput } from '../graph/index.js';
import { IncrementalReconciler, IncrementalRestart } from '../incremental.js';
import { APPLIED_HASH, desiredHash } from '../kube/applied-hash.js';
import { type ControllerConfig, PAUSE } from '../model.js';
import { reconcile } from '../reconcile.js';

/** resourceVersion and uid counters (one per simulated cluster, so a replayed run is identical). */
export class Counters {
  rv = 100;
  uid = 0;
  nextRv = (): string => String(++this.rv);
  nextUid = (): string => `uid-${++this.uid}`;
}

/** An MLService `ns/name`, framework custom, one image per revision. */
export function mls(
  c: Counters,
  ns: string,
  name: string,
  revisions: Array<{ name: string; weight: number; apiSchema?: string; replicas?: number }>,
): MLService {
  return {
    apiVersion: 'kea.dev/v1alpha1',
    kind: 'MLService',
    metadata: { name, namespace: ns, uid: c.nextUid(), generation: 1, resourceVersion: c.nextRv(), creationTimestamp: '2025-01-01T00:00:00Z' },
    spec: { framework: 'custom', port: 8080, healthPath: '/healthz', revisions: revisions.map((r) => ({ replicas: 1, ...r, image: `img/${name}:${r.name}` })) },
  };
}

/** An operation with a 200 response of type object. */
export function op(id: string, method: 'GET' | 'POST', path: string): Operation {
  return { operationId: id, method, path, summary: id, responses: { '200': { description: 'ok', schema: { type: 'object' } } } };
}

/** An ApiSchema `ns/name` on `target`, basePath `/<ns>/<name>` unless given. */
export function api(
  c: Counters,
  ns: string,
  name: string,
  target: ApiSchema['spec']['target'],
  opts: { basePath?: string; created?: string; ops?: Operation[]; mode?: 'enforce' | 'passthrough' } = {},
): ApiSchema {
  return {
    apiVersion: 'kea.dev/v1alpha1',
    kind: 'ApiSchema',
    metadata: { name, namespace: ns, uid: c.nextUid(), generation: 1, resourceVersion: c.nextRv(), creationTimestamp: opts.created ?? '2025-01-01T00:00:00Z' },
    spec: {
      target,
      basePath: opts.basePath ?? `/${ns}/${name}`,
      info: { title: name, version: '1.0.0' },
      ...(opts.mode ? { policy: { mode: opts.mode } } : {}),
      operations: opts.ops ?? [op('predict', 'POST', '/predict'), op('info', 'GET', '/info')],
    },
  };
}

/** What one run rendered. */
export interface RunSummary {
  apiSchemas: string[];
  mlServices: string[];
  skipped: number;
}

/** A cluster: the snapshot the controller sees, and what apply left (object key → hash). */
export class Sim {
  snapshot: GraphInput = {
    apiSchemas: [],
    mlServices: [],
    services: [],
    referenceGrants: [],
    publishedVersions: [],
    deployments: [],
    graphMemo: new GraphMemo(),
  };
  applied = new Map<string, string>();
  /** Object keys changed by another field manager since KEA applied them. */
  drifted = new Set<string>();
  /** resourceVersion KEA's last status write returned, per `<kind>/<ns>/<name>`. */
  statusRv = new Map<string, string>();
  inc = new IncrementalReconciler();
  /** Runs the incremental reconcile gave up on (IncrementalRestart) and redid in full. */
  restarts = 0;

  readonly c: Counters;
  private readonly routes: boolean;

  /**
   * @param opts.routes keep `snapshot.routes` as the live HTTPRoutes (for gateway verdicts);
   *   off (default), no route is ever observed.
   * @param opts.counters resourceVersion and uid counters (default: new ones).
   */
  constructor(
    readonly config: ControllerConfig,
    readonly now: string,
    opts: { routes?: boolean; counters?: Counters } = {},
  ) {
    this.c = opts.counters ?? new Counters();
    this.routes = opts.routes ?? false;
    if (this.routes) this.snapshot.routes = [];
  }

  /** One incremental run, checked against the full reconcile of the same snapshot. */
  run(): RunSummary {
    const { config, now } = this;
    const full = reconcile(this.snapshot, config, now);
    const isCurrent = (k: string, h: string) => this.applied.get(k) === h && !this.drifted.has(k);
    const rendered: KubernetesObject[] = [];
    let rest;
    for (let attempt = 0; ; attempt++) {
      const stream = this.inc.stream(this.snapshot, config, isCurrent, now);
      rendered.length = 0;
      try {
        let r = stream.next();
        while (!r.done) {
          if (r.value !== PAUSE) {
            const o = r.value;
            this.inc.observe(objectKey(o), desiredHash(o), o);
            rendered.push(o);
          }
          r = stream.next();
        }
        rest = r.value;
        break;
      } catch (e) {
        // What the controller does: forget every owner and run in full.
        if (!(e instanceof IncrementalRestart) || attempt > 0) throw e;
        this.restarts++;
        this.inc.reset();
      }
    }
    // Desired state: rendered ∪ unchanged (with what was applied for them).
    const desired = new Map<string, string>();
    for (const o of rendered) desired.set(objectKey(o), desiredHash(o));
    // (Each check calls Jest's expect only on a mismatch, for its message: expect is slow, and
    // the property test makes ~10^5 of these checks.)
    for (const k of rest.unchangedKeys ?? []) {
      if (desired.has(k)) expect([k, 'rendered and unchanged']).toEqual([k, 'not both']);
      desired.set(k, this.applied.get(k)!);
    }
    // A version ConfigMap an owner published is not rendered again by a full run once it is
    // live (apply keeps it while its ApiSchema exists), but stays among a skipped owner's keys.
    const versionKey = (k: string) => k.startsWith(`core/ConfigMap/${config.systemNamespace}/kea-apiver-`);
    const fullMap = new Map(full.objects.map((o) => [objectKey(o), desiredHash(o)]));
    for (const k of rest.unchangedKeys ?? []) {
      if (fullMap.has(k) || !versionKey(k)) continue;
      if (!this.snapshot.publishedVersions.some((v) => `core/ConfigMap/${v.metadata?.namespace}/${v.metadata?.name}` === k))
        expect([k, 'unchanged, not live']).toEqual([k, 'live']);
      desired.delete(k);
    }
    if (desired.size !== fullMap.size || [...desired].some(([k, h]) => fullMap.get(k) !== h))
      expect(Object.fromEntries([...desired].sort())).toEqual(Object.fromEntries([...fullMap].sort()));
    if ((rest.retainOwners ?? []).join() !== (full.retainOwners ?? []).join()) expect(rest.retainOwners ?? []).toEqual(full.retainOwners ?? []);
    if ((rest.droppedVersions ?? []).join() !== (full.droppedVersions ?? []).join()) expect(rest.droppedVersions ?? []).toEqual(full.droppedVersions ?? []);
    const fullStatus = new Map(full.statuses.map((s) => [`${s.kind}/${s.namespace}/${s.name}`, s.status]));
    const sent = new Set<string>();
    for (const s of rest.statuses) {
      const k = `${s.kind}/${s.namespace}/${s.name}`;
      sent.add(k);
      const [mine, theirs] = [canonicalJson(s.status), canonicalJson(fullStatus.get(k))];
      if (mine !== theirs) expect([k, mine]).toEqual([k, theirs]);
    }
    // A skipped owner already carries the status the full run computes.
    for (const res of [...this.snapshot.apiSchemas, ...this.snapshot.mlServices]) {
      const k = `${res.kind}/${res.metadata.namespace}/${res.metadata.name}`;
      if (sent.has(k) || res.metadata.deletionTimestamp) continue;
      const [live, theirs] = [canonicalJson(res.status ?? {}), canonicalJson(fullStatus.get(k))];
      if (live !== theirs) expect([k, live]).toEqual([k, theirs]);
    }
    this.apply(rendered, desired, rest.droppedVersions ?? []);
    for (const s of rest.statuses) {
      const list: Array<ApiSchema | MLService> = s.kind === 'ApiSchema' ? this.snapshot.apiSchemas : this.snapshot.mlServices;
      const res = list.find((x) => x.metadata.namespace === s.namespace && x.metadata.name === s.name)!;
      if (canonicalJson(res.status ?? {}) === canonicalJson(s.status)) continue;
      res.status = structuredClone(s.status);
      res.metadata.resourceVersion = this.c.nextRv();
      this.statusRv.set(`${s.kind}/${s.namespace}/${s.name}`, res.metadata.resourceVersion);
    }
    this.inc.commit(true, (kind, ns, name) => this.statusRv.get(`${kind}/${ns}/${name}`));
    const st = this.inc.stats;
    return { apiSchemas: [...st.renderedApiSchemas].sort(), mlServices: [...st.renderedMLServices].sort(), skipped: st.skipped };
  }

  /** "Apply": objects, version ConfigMaps (new ones in, dropped ones out), live HTTPRoutes. */
  private apply(rendered: KubernetesObject[], desired: Map<string, string>, dropped: string[]): void {
    const versionKey = (k: string) => k.startsWith(`core/ConfigMap/${this.config.systemNamespace}/kea-apiver-`);
    for (const o of rendered) {
      this.applied.set(objectKey(o), desiredHash(o));
      this.drifted.delete(objectKey(o));
      if (o.kind === 'ConfigMap' && o.metadata?.labels?.[LABELS.component] === COMPONENT_API_VERSION) {
        this.snapshot.publishedVersions = [...this.snapshot.publishedVersions.filter((v) => v.metadata?.name !== o.metadata?.name), structuredClone(o)];
      }
    }
    const gone = new Set(dropped);
    if (gone.size) {
      this.snapshot.publishedVersions = this.snapshot.publishedVersions.filter((v) => !gone.has(`${v.metadata?.namespace}/${v.metadata?.name}`));
      for (const k of gone) this.applied.delete(`core/ConfigMap/${k}`);
    }
    for (const k of [...this.applied.keys()]) if (!desired.has(k) && !versionKey(k)) this.applied.delete(k);
    if (!this.routes) return;
    const live = new Map((this.snapshot.routes ?? []).map((r) => [objectKey(r), r]));
    const next: KubernetesObject[] = [];
    for (const [k, hash] of desired) {
      if (!k.startsWith('gateway.networking.k8s.io/HTTPRoute/')) continue;
      const [, , ns, name] = k.split('/');
      const old = live.get(k);
      const labels = rendered.find((o) => objectKey(o) === k)?.metadata?.labels ?? old?.metadata?.labels;
      if (old && old.metadata?.annotations?.[APPLIED_HASH] === hash) next.push(old);
      else
        next.push({
          apiVersion: 'gateway.networking.k8s.io/v1',
          kind: 'HTTPRoute',
          metadata: { name, namespace: ns, labels, generation: (old?.metadata?.generation ?? 0) + 1, annotations: { [APPLIED_HASH]: hash } },
          ...((old as { status?: unknown } | undefined)?.status ? { status: structuredClone((old as { status?: unknown }).status) } : {}),
        });
    }
    this.snapshot.routes = next;
  }

  /** A spec edit, as the API server records it. */
  edit<T extends ApiSchema | MLService>(list: T[], ns: string, name: string, fn: (x: T) => void): void {
    const x = list.find((r) => r.metadata.namespace === ns && r.metadata.name === name)!;
    fn(x);
    x.metadata.generation = (x.metadata.generation ?? 1) + 1;
    x.metadata.resourceVersion = this.c.nextRv();
  }
}
