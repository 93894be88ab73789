/**
 * Incremental reconcile: graph → IR → render for the owners whose inputs changed, and only
 * for them.
 *
 * Takes in: the same {@link ClusterSnapshot} and {@link ControllerConfig} as
 * controller/reconcile.ts's `reconcileStream`, plus `isCurrent(objectKey, hash)` (does the
 * live copy of an object still carry what KEA's apply of that desired hash left: apply's
 * `Applier.isCurrent` over the owned-object cache).
 * Gives out: a stream like `reconcileStream`'s (objects, {@link PAUSE}s, then the rest), in
 * which owners (ApiSchemas, MLServices) that need no work are left out. Their objects' keys are
 * returned in `unchangedKeys` (apply neither writes nor prunes them), their statuses and
 * Events are not re-sent, and their retained-owner and ReferenceGrant facts are carried over.
 *
 * The graph stage always runs over the whole snapshot: every cross-owner question (basePath
 * and route conflicts, target resolution, ReferenceGrants, revision `apiSchema` references)
 * is answered afresh every run. An owner is then **skipped** only when all of these hold:
 *  - its resource's resourceVersion is the one of its last render, or the one KEA's own
 *    status write returned after it (any edit, of spec, labels or status, makes it dirty);
 *  - its **input token** is unchanged: the graph's verdict on it (every problem message), its
 *    resolved target, and for an ApiSchema the target MLService's spec token (uid, generation,
 *    problems, contract inputs) and readiness gating (which of its revisions with weight are
 *    available, when some are and some are not: ir/index.ts gateWeights), its discovered
 *    OpenAPI document (digest, error) and its
 *    published version history (names, digests, times, live labels and annotations; less
 *    the versions its own last render published, which are live and current, since render
 *    gives the same cluster state before and after they arrive); for an
 *    MLService its problems, the ApiSchemas its revisions name (uid, generation, discovered
 *    document, acceptance, target) and the readiness of its Deployments; for both, the
 *    gateway's verdict on its HTTPRoutes (`status.parents` entries for KEA's Gateway, with
 *    the route's generation and applied hash: render/route-status.ts `routeStatusToken`),
 *    found by the routes' `kea.dev/owner` label (the internal routes live in the system
 *    namespace);
 *  - every object it got at its last render is live and current (`isCurrent`): a drift edit
 *    by another field manager, or a deletion, makes the owner dirty and is repaired;
 *  - its last render gave no NameConflict loss and dropped no version (such owners render
 *    every run), and that run's apply had no error (a failed run forgets every owner).
 * When a re-rendered owner claims an object that a skipped owner holds and would win it in a
 * full render (it comes first in owner order), the stream throws {@link IncrementalRestart}:
 * the caller forgets every owner ({@link reset}) and runs a full reconcile.
 * The controller's configuration is fixed for the life of a process; the clock only matters
 * for conditions that change, which belong to dirty owners. Leaving an owner out therefore
 * gives the same cluster state as rendering it: `controller/incremental.test.ts` checks that
 * against the full `reconcile()` over a sequence of edits.
 *
 * Memory: per owner, a 40-character token, one or two resourceVersions and its objects' keys
 * and desired hashes (~8000 at the scale benchmark).
 */
import { createHash } from 'node:crypto';
import type { KubernetesObject } from '@kubernetes/client-node';
import { LABELS } from '../lib/api/types.js';
import { type ApiSchemaNode, type Graph, type MLServiceNode, buildGraph, isAccepted, key, revisionObjectName } from './graph/index.js';
import { buildStreamIRSteps } from './ir/index.js';
import { objectKey } from './apply/kube.js';
import { type ClusterSnapshot, type ControllerConfig, PAUSE, type StatusUpdate, ownerLabelValue } from './model.js';
import { type RenderRest, type RenderTrace, renderStream } from './render/index.js';
import { routeStatusToken } from './render/route-status.js';

/** Thrown by the stream when a partial render could differ from a full one; reset and run in full. */
export class IncrementalRestart extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'IncrementalRestart';
  }
}

/** What is remembered of an owner after a successful apply of its render. */
interface OwnerEntry {
  token: string;
  /** resourceVersions of the owner's resource for which the render is still valid. */
  rvs: string[];
  /** Its rendered objects: `[objectKey, desiredHash]`. */
  objects: Array<[string, string]>;
  /** Listed in RenderOutput.retainOwners. */
  retain: boolean;
  /** Namespace whose policy ReferenceGrant this ApiSchema needs. */
  grantNamespace?: string;
}

interface OwnerRun {
  kind: 'ApiSchema' | 'MLService';
  namespace: string;
  name: string;
  token: string;
  rv?: string;
  dirty: boolean;
  retain: boolean;
  grantNamespace?: string;
  /**
   * Version-history ConfigMaps this ApiSchema published in an earlier render that are live
   * and current: kept among its objects even when a new render does not emit them again.
   */
  carry?: Array<[string, string]>;
}

/** Counts of the last stream (tests and metrics). */
export interface IncrementalStats {
  /** Keys `<namespace>/<name>` of the ApiSchemas and MLServices rendered. */
  renderedApiSchemas: string[];
  renderedMLServices: string[];
  /** Owners left out. */
  skipped: number;
}

const SEP = '\u0000';
const sha1 = (s: string): string => createHash('sha1').update(s).digest('hex');

/** One instance per controller process (the leader's apply loop). */
export class IncrementalReconciler {
  private entries = new Map<string, OwnerEntry>();
  private current?: { owners: Map<string, OwnerRun>; objects: Map<string, Array<[string, string]>>; trace: RenderTrace };
  /** Of the last stream. */
  stats: IncrementalStats = { renderedApiSchemas: [], renderedMLServices: [], skipped: 0 };

  /** Forget every owner: the next stream renders everything. */
  reset(): void {
    this.entries.clear();
    this.current = undefined;
  }

  /** Number of owners remembered. */
  get size(): number {
    return this.entries.size;
  }

  /**
   * Records a desired object as apply hashed it (pass as `Applier.apply`'s `observe`).
   * Objects of owners that were not rendered in the current stream are ignored.
   */
  readonly observe = (objectKey: string, hash: string, obj: KubernetesObject): void => {
    const run = this.current;
    const owner = obj.metadata?.labels?.[LABELS.owner];
    if (!run || owner === undefined || !run.owners.get(owner)?.dirty) return;
    let list = run.objects.get(owner);
    if (!list) run.objects.set(owner, (list = []));
    list.push([objectKey, hash]);
  };

  /**
   * Ends the current stream once apply has finished. `ok` false (any failed request, a run
   * cut short): every owner is forgotten. Otherwise the rendered owners are remembered with
   * the resourceVersion `statusRv` gives (KEA's own status write) besides the one rendered.
   */
  commit(ok: boolean, statusRv: (kind: 'ApiSchema' | 'MLService', namespace: string, name: string) => string | undefined): void {
    const run = this.current;
    this.current = undefined;
    if (!run) return;
    if (!ok) {
      this.entries.clear();
      return;
    }
    const next = new Map<string, OwnerEntry>();
    for (const [label, o] of run.owners) {
      if (!o.dirty) {
        const e = this.entries.get(label);
        if (e) next.set(label, e);
        continue;
      }
      if (!o.rv || run.trace.conflictLosers.has(label) || run.trace.droppedOwners.has(label)) continue;
      const rvs = [o.rv];
      const s = statusRv(o.kind, o.namespace, o.name);
      if (s && s !== o.rv) rvs.push(s);
      const objects = run.objects.get(label) ?? [];
      for (const c of o.carry ?? []) if (!objects.some(([k]) => k === c[0])) objects.push(c);
      next.set(label, { token: o.token, rvs, objects, retain: o.retain, ...(o.grantNamespace ? { grantNamespace: o.grantNamespace } : {}) });
    }
    this.entries = next;
  }

  /**
   * The desired state as a stream, leaving out owners that need no work (see the module
   * comment). Call {@link commit} after applying it. With `onStatus`, statuses go there as
   * they are rendered (render's `RenderStreamOptions.onStatus`) instead of into the result.
   * @throws IncrementalRestart (from `next()`) when a partial render could differ from a full one.
   */
  *stream(
    snapshot: ClusterSnapshot,
    config: ControllerConfig,
    isCurrent: (objectKey: string, hash: string) => boolean,
    now: string = new Date().toISOString(),
    onStatus?: (s: StatusUpdate) => void,
  ): Generator<KubernetesObject | typeof PAUSE, RenderRest, undefined> {
    this.current = undefined;
    const graph = buildGraph(snapshot, config);
    yield PAUSE;
    const owners = this.plan(graph, snapshot, config, isCurrent);
    yield PAUSE;
    const dirtyApi = new Set<string>();
    const dirtyMls = new Set<string>();
    const rank = new Map<string, number>();
    for (const [label, o] of owners) {
      rank.set(label, rank.size);
      if (o.dirty) (o.kind === 'ApiSchema' ? dirtyApi : dirtyMls).add(key(o.namespace, o.name));
    }
    // ApiSchema IRs are built one at a time as render takes them (never all held at once);
    // what is remembered of each is noted on the way.
    const ir = yield* buildStreamIRSteps(graph, config, { apiSchemas: dirtyApi, mlServices: dirtyMls });
    for (const m of ir.mlServices) owners.get(ownerLabelValue('MLService', m.namespace, m.name))!.retain = !m.accepted;
    const lazy = ir.apiSchemas;
    ir.apiSchemas = (function* () {
      for (const a of lazy) {
        const o = owners.get(ownerLabelValue('ApiSchema', a.namespace, a.name))!;
        o.retain = a.retain;
        if (((a.programmed && a.mode === 'enforce') || a.retain) && a.namespace !== config.systemNamespace) o.grantNamespace = a.namespace;
        yield a;
      }
    })();
    // Skipped owners: their objects stay claimed and desired; their facts carry over.
    const claimed = new Map<string, string>();
    const unchangedKeys: string[] = [];
    const retained: string[] = [];
    const grantNamespaces = new Set(ir.policyGrantNamespaces);
    for (const [label, o] of owners) {
      if (o.dirty) continue;
      const e = this.entries.get(label)!;
      for (const [k] of e.objects) {
        claimed.set(k, label);
        unchangedKeys.push(k);
      }
      if (e.retain) retained.push(label);
      if (e.grantNamespace) grantNamespaces.add(e.grantNamespace);
    }
    ir.policyGrantNamespaces = [...grantNamespaces].sort();
    const trace: RenderTrace = { conflictLosers: new Set(), droppedOwners: new Set() };
    this.current = { owners, objects: new Map(), trace };
    this.stats = { renderedApiSchemas: [...dirtyApi], renderedMLServices: [...dirtyMls], skipped: owners.size - dirtyApi.size - dirtyMls.size };
    const rest = yield* renderStream(ir, config, now, {
      claimed: claimed.size ? (o) => claimed.get(objectKey(o)) : undefined,
      trace,
      onStatus,
      onClaimed: (o, by) => {
        const mine = o.metadata?.labels?.[LABELS.owner] ?? '';
        // A full render gives the object to the owner that comes first.
        if ((rank.get(mine) ?? -1) < (rank.get(by) ?? -1)) {
          this.current = undefined;
          throw new IncrementalRestart(`${o.kind} ${o.metadata?.namespace}/${o.metadata?.name} of ${mine} is held by ${by}, which was not re-rendered`);
        }
      },
    });
    return { ...rest, retainOwners: [...(rest.retainOwners ?? []), ...retained].sort(), unchangedKeys };
  }

  /** Every owner of the graph, in render order (MLServices, then ApiSchemas), with its token and whether it must be rendered. */
  private plan(graph: Graph, snapshot: ClusterSnapshot, config: ControllerConfig, isCurrent: (objectKey: string, hash: string) => boolean): Map<string, OwnerRun> {
    const apiByKey = new Map(graph.apiSchemas.map((n) => [n.key, n]));
    const discovered = snapshot.discovered ?? {};
    const docToken = (k: string): string => {
      const d = discovered[k];
      return d ? `${d.digest ?? ''}${SEP}${d.error ?? ''}${SEP}${d.doc === undefined ? 0 : 1}` : '-';
    };
    const problems = (n: { problems: Array<{ condition: string; reason: string; message: string }> }): string =>
      n.problems.map((p) => `${p.condition}${SEP}${p.reason}${SEP}${p.message}`).join(SEP);
    const target = (n: ApiSchemaNode): string =>
      n.target ? `${n.target.kind}${SEP}${n.target.namespace}${SEP}${n.target.name}${SEP}${n.target.kind === 'Service' ? n.target.port : ''}` : '-';
    // What a contract check reads of an ApiSchema named by a revision.
    const contractInput = (n: ApiSchemaNode | undefined): string =>
      n ? `${n.resource.metadata.uid}${SEP}${n.resource.metadata.generation ?? `r${n.resource.metadata.resourceVersion}`}${SEP}${docToken(n.key)}${SEP}${isAccepted(n)}${SEP}${target(n)}` : '-';
    const mlSpec = new Map<string, string>();
    for (const m of graph.mlServices) mlSpec.set(m.key, this.mlSpecToken(m, apiByKey, contractInput, problems));
    // Readiness gating of each MLService's revisions: the IR routes no weight to a revision
    // whose Deployment has no available replica (ir/index.ts gateWeights), so the traffic an
    // ApiSchema routes (passthrough backends, policy.json traffic) depends on it too.
    const readiness = new Map<string, string>();

    // The gateway's verdict on each owner's HTTPRoutes (status.parents for KEA's Gateway, with
    // the route's generation and applied hash), mapped to the owner by its kea.dev/owner label:
    // the Programmed condition reads it (render/route-status.ts). Only the gateway writes it
    // (KEA never writes a route's status), so it changes when the gateway speaks; a route with
    // no entry for KEA's Gateway adds nothing (KEA creating it changes no token).
    const routeTokens = new Map<string, string[]>();
    for (const r of snapshot.routes ?? []) {
      const owner = r.metadata?.labels?.[LABELS.owner];
      const t = owner === undefined ? '' : routeStatusToken(r, config.gateway);
      if (t) routeTokens.set(owner!, [...(routeTokens.get(owner!) ?? []), t]);
    }

    const owners = new Map<string, OwnerRun>();
    const decide = (kind: 'ApiSchema' | 'MLService', ns: string, name: string, inputToken: string, rv: string | undefined, carry?: Array<[string, string]>) => {
      const label = ownerLabelValue(kind, ns, name);
      const routes = routeTokens.get(label);
      const token = routes ? sha1(`${inputToken}${SEP}${routes.sort().join(SEP)}`) : inputToken;
      const e = this.entries.get(label);
      let dirty = !e || !rv || e.token !== token || !e.rvs.includes(rv);
      if (!dirty) for (const [k, h] of e!.objects) if (!isCurrent(k, h)) { dirty = true; break; }
      owners.set(label, { kind, namespace: ns, name, token, rv, dirty, retain: false, ...(carry?.length ? { carry } : {}) });
    };
    for (const m of graph.mlServices) {
      const md = m.resource.metadata;
      const ns = md.namespace ?? '';
      let ready = 'u';
      if (graph.deployments) {
        ready = (m.resource.spec.revisions ?? [])
          .map((r) => {
            const d = graph.deployments!.get(key(ns, revisionObjectName(md.name, r.name))) as (KubernetesObject & { status?: { availableReplicas?: number } }) | undefined;
            return d ? String(d.status?.availableReplicas ?? 0) : '-';
          })
          .join(',');
      }
      // What of it the ApiSchema's IR reads: which revisions with weight are available, and
      // only when that is mixed (all or none available: the weights are routed as declared).
      let gate = '';
      if (graph.deployments) {
        const flags = (m.resource.spec.revisions ?? []).map((r) => {
          if (!(r.weight > 0)) return '-';
          const d = graph.deployments!.get(key(ns, revisionObjectName(md.name, r.name))) as (KubernetesObject & { status?: { availableReplicas?: number } }) | undefined;
          return (r.replicas ?? 1) > 0 && (d?.status?.availableReplicas ?? 0) >= 1 ? 'a' : 'n';
        });
        if (flags.includes('a') && flags.includes('n')) gate = flags.join('');
      }
      readiness.set(m.key, gate);
      decide('MLService', ns, md.name, sha1(`${mlSpec.get(m.key)}${SEP}${ready}`), md.resourceVersion);
    }
    for (const a of graph.apiSchemas) {
      const md = a.resource.metadata;
      const t = a.target?.kind === 'MLService' ? `${mlSpec.get(key(a.target.namespace, a.target.name)) ?? '-'}${SEP}${readiness.get(key(a.target.namespace, a.target.name)) ?? '-'}` : '';
      // Version history, less the versions this owner's last render published itself (keys
      // among its objects, which must be current, see decide): render found them missing then
      // and finds them live now, and gives the same cluster state either way (the new version
      // is kept, with the same publishedAt), so their arrival is not a change.
      const own = this.entries.get(ownerLabelValue('ApiSchema', md.namespace ?? '', md.name))?.objects;
      const carry: Array<[string, string]> = [];
      const published = a.published
        .filter((e) => {
          const mine = own?.find(([k]) => k === `core/ConfigMap/${config.systemNamespace}/${e.name}`);
          if (mine && isCurrent(mine[0], mine[1])) carry.push(mine);
          return !mine;
        })
        .map((e) => `${e.name}${SEP}${e.version}${SEP}${e.digest}${SEP}${e.publishedAt}${SEP}${e.live ? JSON.stringify(e.live) : ''}`)
        .join(SEP);
      decide('ApiSchema', md.namespace ?? '', md.name, sha1([docToken(a.key), problems(a), target(a), t, published].join(`${SEP}${SEP}`)), md.resourceVersion, carry);
    }
    return owners;
  }

  /** What an ApiSchema's IR reads of its target MLService: everything its revisions, traffic and contract check derive from. */
  private mlSpecToken(
    m: MLServiceNode,
    apiByKey: Map<string, ApiSchemaNode>,
    contractInput: (n: ApiSchemaNode | undefined) => string,
    problems: (n: MLServiceNode) => string,
  ): string {
    const md = m.resource.metadata;
    const ns = md.namespace ?? '';
    const refs = (m.resource.spec.revisions ?? []).filter((r) => r.apiSchema).map((r) => contractInput(apiByKey.get(key(ns, r.apiSchema!))));
    return [md.uid, md.generation ?? `r${md.resourceVersion}`, problems(m), ...refs].join(SEP);
  }
}
