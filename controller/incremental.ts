/**
 * Incremental reconcile: graph → IR → render for the owners whose inputs changed, and only
 * for them.
 *
 * Takes in: the same {@link GraphInput} and {@link ControllerConfig} as
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
 *  - its **input token** is unchanged. The token is not a list of inputs someone keeps up to
 *    date: it is derived from what the owner's last IR build and render actually read. The IR
 *    builds an owner only through the reads of ir/inputs.ts (its graph node, version history,
 *    the ApiSchemas a contract check compares, Deployments' available replicas, its target
 *    MLService's traffic and backends), each logged with a fingerprint of the value it
 *    returned; render adds the live HTTPRoutes whose gateway verdict qualified `Programmed`
 *    (render/route-status.ts `routeStatusToken`: what that verdict reads of a route). The
 *    owner is remembered with the keys of those reads and the sha1 of their fingerprints; the
 *    next run asks the same reads of the new graph and compares. The IR and render are pure
 *    and deterministic, so the same reads give the same output; and a read that is not logged
 *    cannot be made, so a new input needs no one to remember to add it here. Two refinements:
 *    an ApiSchema's `target:` read of an MLService whose own inputs are unchanged is answered
 *    from what that MLService's last build gave (its IR is the same), so the MLService's IR is
 *    not rebuilt to check it; and versions an ApiSchema's last render published itself are left
 *    out of its history read when checking (their arrival is its own output, which render gives
 *    the same cluster state with or without; they stay among its objects, which must be current);
 *  - every object it got at its last render is live and current (`isCurrent`): a drift edit
 *    by another field manager, or a deletion, makes the owner dirty and is repaired;
 *  - its last render gave no NameConflict loss and dropped no version (such owners render
 *    every run), and that run's apply had no error (a failed run forgets every owner).
 * When a re-rendered owner claims an object that a skipped owner holds and would win it in a
 * full render (it comes first in owner order), the stream throws {@link IncrementalRestart}:
 * the caller forgets every owner ({@link reset}) and runs a full reconcile.
 * The controller's configuration is fixed for the life of a process; the clock only matters
 * for conditions that change and versions published, which belong to dirty owners. Leaving an
 * owner out therefore gives the same cluster state as rendering it:
 * `controller/incremental.property.test.ts` checks that against the full `reconcile()` over
 * long random edit sequences, and `controller/incremental.test.ts` that exactly the dependent
 * owners are rendered.
 *
 * Memory: per owner, its read keys (a few, ~40 characters each), a 40-character token, one or
 * two resourceVersions and its objects' keys and desired hashes (~8000 at the scale benchmark).
 */
import type { KubernetesObject } from '@kubernetes/client-node';
import { LABELS } from '../lib/api/types.js';
import { type Graph, type GraphInput, buildGraph, key } from './graph/index.js';
import { type ApiSchemaIR, type BuiltIR, IRBuild, type ReadLog, type StreamIR, fingerprint, readToken } from './ir/index.js';
import { objectKey } from '../lib/kube/objects.js';
import { type ControllerConfig, PAUSE, type StatusUpdate, ownerLabelValue } from './model.js';
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
  /** Read keys of its last IR build and render (ir/inputs.ts, plus `route:<ns>/<name>`). */
  reads: string[];
  /** {@link readToken} of those reads' fingerprints then. */
  token: string;
  /** resourceVersions of the owner's resource for which the render is still valid. */
  rvs: string[];
  /** Its rendered objects: `[objectKey, desiredHash]`. */
  objects: Array<[string, string]>;
  /** Listed in RenderOutput.retainOwners. */
  retain: boolean;
  /** Namespace whose policy ReferenceGrant this ApiSchema needs. */
  grantNamespace?: string;
  /** MLService: fingerprint of what an ApiSchema reads of its IR (`target:`), at its last build. */
  targetFp?: string;
  /** ApiSchema: names of the version ConfigMaps its last render wrote. */
  ownVersions?: string[];
}

interface OwnerRun {
  kind: 'ApiSchema' | 'MLService';
  namespace: string;
  name: string;
  rv?: string;
  /** Its resourceVersion and reads are those of its last render (its IR would be the same). */
  same: boolean;
  dirty: boolean;
  retain: boolean;
  grantNamespace?: string;
  /** Filled when it is built: what its IR build (then its render) read. */
  reads?: ReadLog;
  targetFp?: string;
  ownVersions?: string[];
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

/** Fingerprint of what the gateway-verdict read of a route sees (`route:` reads). */
function routeFp(graph: Graph, routeKey: string, config: ControllerConfig): string {
  const r = graph.routes?.get(routeKey);
  return r ? routeStatusToken(r, config.gateway) : '';
}

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
      if (!o.rv || !o.reads || run.trace.conflictLosers.has(label) || run.trace.droppedOwners.has(label)) continue;
      const rvs = [o.rv];
      const s = statusRv(o.kind, o.namespace, o.name);
      if (s && s !== o.rv) rvs.push(s);
      const objects = run.objects.get(label) ?? [];
      for (const c of o.carry ?? []) if (!objects.some(([k]) => k === c[0])) objects.push(c);
      next.set(label, {
        reads: [...o.reads.keys()],
        token: readToken(o.reads),
        rvs,
        objects,
        retain: o.retain,
        ...(o.grantNamespace ? { grantNamespace: o.grantNamespace } : {}),
        ...(o.targetFp !== undefined ? { targetFp: o.targetFp } : {}),
        ...(o.ownVersions?.length ? { ownVersions: o.ownVersions } : {}),
      });
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
    snapshot: GraphInput,
    config: ControllerConfig,
    isCurrent: (objectKey: string, hash: string) => boolean,
    now: string = new Date().toISOString(),
    onStatus?: (s: StatusUpdate) => void,
  ): Generator<KubernetesObject | typeof PAUSE, RenderRest, undefined> {
    this.current = undefined;
    const graph = buildGraph(snapshot, config);
    yield PAUSE;
    const build = new IRBuild(graph, config, now, true);
    const owners = this.plan(graph, build, config, isCurrent);
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
    const onApiSchema = ({ ir: a, reads }: BuiltIR<ApiSchemaIR>): void => {
      const o = owners.get(ownerLabelValue('ApiSchema', a.namespace, a.name))!;
      o.reads = reads;
      o.retain = a.retain;
      if (a.policyGrant && a.namespace !== config.systemNamespace) o.grantNamespace = a.namespace;
      o.ownVersions = a.history.kept.filter((v) => v.apply).map((v) => v.name);
    };
    const built: StreamIR = yield* build.stream({ apiSchemas: dirtyApi, mlServices: dirtyMls }, onApiSchema);
    for (const m of built.mlServices) {
      const o = owners.get(ownerLabelValue('MLService', m.namespace, m.name))!;
      o.retain = m.retain;
      o.reads = build.mlService(m.key)!.reads;
      o.targetFp = fingerprint(build.target(m.key));
    }
    // Skipped owners: their objects stay claimed and desired; their facts carry over.
    const claimed = new Map<string, string>();
    const unchangedKeys: string[] = [];
    const retained: string[] = [];
    const grantNamespaces = new Set(built.policyGrantNamespaces);
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
    const ir: StreamIR = { ...built, policyGrantNamespaces: [...grantNamespaces].sort() };
    const trace: RenderTrace = { conflictLosers: new Set(), droppedOwners: new Set(), routeReads: new Map() };
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
    // What render read besides the IR: the live routes behind each owner's gateway verdict.
    for (const [label, routes] of trace.routeReads) {
      const reads = owners.get(label)?.reads;
      if (reads) for (const r of routes) reads.set(`route:${r}`, routeFp(graph, r, config));
    }
    return { ...rest, retainOwners: [...(rest.retainOwners ?? []), ...retained].sort(), unchangedKeys };
  }

  /**
   * Every owner of the graph, in render order (MLServices, then ApiSchemas), with whether its
   * inputs are those of its last render and whether it must be rendered.
   */
  private plan(graph: Graph, build: IRBuild, config: ControllerConfig, isCurrent: (objectKey: string, hash: string) => boolean): Map<string, OwnerRun> {
    const owners = new Map<string, OwnerRun>();
    /** The token an entry's reads give now. */
    const tokenNow = (e: OwnerEntry): string => {
      const log: ReadLog = new Map();
      const except = new Set(e.ownVersions ?? []);
      for (const k of e.reads) {
        let fp: string;
        if (k.startsWith('route:')) fp = routeFp(graph, k.slice('route:'.length), config);
        else if (k.startsWith('target:')) {
          // Early cutoff: an MLService whose inputs are unchanged has the same IR as at its last build.
          const [ns, ...rest] = k.slice('target:'.length).split('/');
          const label = ownerLabelValue('MLService', ns, rest.join('/'));
          const stored = owners.get(label)?.same ? this.entries.get(label)?.targetFp : undefined;
          fp = stored ?? build.inputs.current(k);
        } else fp = build.inputs.current(k, except);
        log.set(k, fp);
      }
      return readToken(log);
    };
    const decide = (kind: 'ApiSchema' | 'MLService', ns: string, name: string, rv: string | undefined, carry?: Array<[string, string]>) => {
      const label = ownerLabelValue(kind, ns, name);
      const e = this.entries.get(label);
      const same = !!e && !!rv && e.rvs.includes(rv) && tokenNow(e) === e.token;
      let dirty = !same;
      if (!dirty)
        for (const [k, h] of e!.objects)
          if (!isCurrent(k, h)) {
            dirty = true;
            break;
          }
      owners.set(label, { kind, namespace: ns, name, rv, same, dirty, retain: false, ...(carry?.length ? { carry } : {}) });
    };
    for (const m of graph.mlServices) {
      const md = m.resource.metadata;
      decide('MLService', md.namespace ?? '', md.name, md.resourceVersion);
    }
    for (const a of graph.apiSchemas) {
      const md = a.resource.metadata;
      // Versions this owner's last render published that are live and current stay among its objects.
      const own = this.entries.get(ownerLabelValue('ApiSchema', md.namespace ?? '', md.name))?.objects;
      const carry: Array<[string, string]> = [];
      for (const e of a.published) {
        const mine = own?.find(([k]) => k === `core/ConfigMap/${config.systemNamespace}/${e.name}`);
        if (mine && isCurrent(mine[0], mine[1])) carry.push(mine);
      }
      decide('ApiSchema', md.namespace ?? '', md.name, md.resourceVersion, carry);
    }
    return owners;
  }
}
