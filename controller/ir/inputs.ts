/**
 * What an owner's IR build reads, recorded: the IR builds an ApiSchema's or an MLService's IR
 * from the graph through an {@link OwnerReads} handed to it, never from the graph itself, and
 * every read is logged with a fingerprint of the value it returned. The incremental reconcile
 * (controller/incremental.ts) keeps that log per owner and skips the owner's next build when
 * every logged read, asked again of the new graph, gives the same fingerprint: the IR build is
 * a pure, deterministic function of what it reads, so the same reads give the same IR (the
 * "verifying trace" of build systems: a read that is not logged cannot be made, so no input
 * can be left out of the comparison by omission).
 *
 * Takes in: a {@link Graph}, and how to get an MLService's IR (for an ApiSchema's target).
 * Gives out: {@link OwnerReads} (optionally logging into a {@link ReadLog}) and, for a read key
 * of an earlier log, the fingerprint of what that read gives now ({@link IRInputs.current}).
 *
 * The reads (read key → value):
 *  - `api:<ns>/<name>`: an ApiSchema's graph node without its version history (the owner's
 *    own node: problems, effective operations, import, resolved target);
 *  - `published:<ns>/<name>`: its published version history (graph/versions.ts entries);
 *  - `mls:<ns>/<name>`: an MLService's graph node;
 *  - `contract:<ns>/<name>`: an ApiSchema as a contract check reads it (key, effective
 *    resource without status, problems, import);
 *  - `deployments`: whether Deployments were observed at all;
 *  - `deployment:<ns>/<name>`: a Deployment's `status.availableReplicas` (undefined when it
 *    does not exist);
 *  - `target:<ns>/<name>`: what an ApiSchema takes from its target MLService's IR (the traffic
 *    and the revision backends), so a change of the MLService that does not change those (a
 *    Deployment's replica count) does not touch the ApiSchema.
 *
 * Fingerprints ({@link fingerprint}) cover the whole value returned, generically (a field added
 * to a graph node later is covered without anyone listing it), with three reductions, each
 * resting on a contract:
 *  - a Kubernetes object inside a value (an ApiSchema or MLService resource) counts without
 *    `status` (the IR reads no status; an owner's own status is KEA's output, and any change to
 *    the owner's own resource is caught by its resourceVersion, controller/incremental.ts),
 *    `metadata.resourceVersion` and `metadata.managedFields`, and its `spec` counts as its
 *    `metadata.generation` when it has one (the API server increments `generation` on every
 *    spec change of a custom resource with a status subresource). An ApiSchema's effective
 *    resource may hold operations and components imported from a served document: every read
 *    that returns it also returns the `imported` info, which names that document by its
 *    sha256 (or the fetch error or refusal);
 *  - a function inside a value counts as nothing: a published version's `text` is named by its
 *    `digest`, which the same entry carries;
 *  - a Map or Set inside a value is refused (TypeError): it would hash as nothing; expose plain
 *    values.
 * Not recorded, by design: the {@link ControllerConfig} (fixed for the life of a process) and
 * the clock (the IR stamps `now` only on a version it publishes, and the incremental reconcile
 * treats a version an owner published itself as its own output, see controller/incremental.ts).
 */
import { createHash } from 'node:crypto';
import type { Graph, ApiSchemaNode, MLServiceNode, PublishedEntry } from '../graph/index.js';
import type { BackendIR, TrafficIR } from './types.js';

/** An ApiSchema's graph node as its own IR build reads it (the version history is read apart: `published`). */
export type ApiSchemaView = Omit<ApiSchemaNode, 'published'>;

/** An ApiSchema as a contract check reads it: its resource without `status`. */
export type ContractApiSchema = Pick<ApiSchemaNode, 'key' | 'resource' | 'problems' | 'imported'>;

/** What an ApiSchema's IR takes from its target MLService's IR. */
export interface TargetIR {
  readonly traffic: readonly TrafficIR[];
  readonly backends: readonly BackendIR[];
}

/** The only way an owner's IR build reads the graph (see the module comment). */
export interface OwnerReads {
  /** `api:` an ApiSchema's node without its version history. */
  apiSchema(key: string): ApiSchemaView | undefined;
  /** `published:` an ApiSchema's published versions, newest first (empty when it has none or does not exist). */
  published(key: string): readonly PublishedEntry[];
  /** `mls:` an MLService's node. */
  mlService(key: string): MLServiceNode | undefined;
  /** `contract:` an ApiSchema as a contract check reads it. */
  contractApiSchema(key: string): ContractApiSchema | undefined;
  /** `deployments`: whether the snapshot carried Deployments (else readiness is unknown). */
  deploymentsObserved(): boolean;
  /** `deployment:` a Deployment's `status.availableReplicas` (0 when unset), undefined when it does not exist. */
  availableReplicas(namespace: string, name: string): number | undefined;
  /** `target:` an MLService IR's traffic and backends (undefined when it does not exist). */
  target(key: string): TargetIR | undefined;
}

/** Read key → fingerprint of what the read returned ({@link fingerprint}), in the order of first read. */
export type ReadLog = Map<string, string>;

/** Hex sha1 of the read log (keys and fingerprints), sorted by read key: an owner's input token. */
export function readToken(log: ReadLog): string {
  const lines = [...log].map(([k, v]) => `${k}\u0000${v}`).sort();
  return createHash('sha1').update(lines.join('\u0001')).digest('hex');
}

/** Per-run access to the graph for owner IR builds, with fingerprints cached per read key. */
export class IRInputs {
  private readonly apis: Map<string, ApiSchemaNode>;
  private readonly mlss: Map<string, MLServiceNode>;
  private readonly fps = new Map<string, string>();

  /**
   * @param targetOf the IR of an MLService as an ApiSchema reads it (the IR build's own,
   *   memoized per run); undefined when it does not exist.
   */
  constructor(
    private readonly graph: Graph,
    private readonly targetOf: (key: string) => TargetIR | undefined,
  ) {
    this.apis = new Map(graph.apiSchemas.map((n) => [n.key, n]));
    this.mlss = new Map(graph.mlServices.map((n) => [n.key, n]));
  }

  /** What `readKey` gives in this graph. @throws Error for an unknown read kind. */
  private value(readKey: string): unknown {
    const at = readKey.indexOf(':');
    const kind = at < 0 ? readKey : readKey.slice(0, at);
    const arg = at < 0 ? '' : readKey.slice(at + 1);
    switch (kind) {
      case 'api': {
        const n = this.apis.get(arg);
        if (!n) return undefined;
        const { published: _, ...view } = n;
        return view;
      }
      case 'published':
        return this.apis.get(arg)?.published ?? [];
      case 'mls':
        return this.mlss.get(arg);
      case 'contract': {
        const n = this.apis.get(arg);
        if (!n) return undefined;
        const { status: _, ...resource } = n.resource;
        return { key: n.key, resource, problems: n.problems, ...(n.imported ? { imported: n.imported } : {}) };
      }
      case 'deployments':
        return this.graph.deployments !== undefined;
      case 'deployment': {
        const d = this.graph.deployments?.get(arg) as { status?: { availableReplicas?: number } } | undefined;
        return d ? (d.status?.availableReplicas ?? 0) : undefined;
      }
      case 'target':
        return this.targetOf(arg);
      default:
        throw new Error(`unknown IR read ${readKey}`);
    }
  }

  private fp(readKey: string, v: unknown): string {
    let f = this.fps.get(readKey);
    if (f === undefined) {
      f = fingerprint(v);
      this.fps.set(readKey, f);
    }
    return f;
  }

  /**
   * The fingerprint of what `readKey` (a key of an earlier {@link ReadLog}) reads in this graph.
   * @param exceptVersions for a `published:` read: ConfigMap names of entries to leave out.
   */
  current(readKey: string, exceptVersions?: ReadonlySet<string>): string {
    const v = this.value(readKey);
    if (exceptVersions?.size && readKey.startsWith('published:')) return fingerprint((v as PublishedEntry[]).filter((e) => !exceptVersions.has(e.name)));
    return this.fp(readKey, v);
  }

  /** An {@link OwnerReads} over this graph; with `log`, every read is recorded into it. */
  reader(log?: ReadLog): OwnerReads {
    const read = <T>(readKey: string): T => {
      const v = this.value(readKey) as T;
      if (log && !log.has(readKey)) log.set(readKey, this.fp(readKey, v));
      return v;
    };
    return {
      apiSchema: (k) => read(`api:${k}`),
      published: (k) => read(`published:${k}`),
      mlService: (k) => read(`mls:${k}`),
      contractApiSchema: (k) => read(`contract:${k}`),
      deploymentsObserved: () => read('deployments'),
      availableReplicas: (ns, name) => read(`deployment:${ns}/${name}`),
      target: (k) => read(`target:${k}`),
    };
  }
}

/* ------------------------------------------------------------ fingerprints */

/**
 * A value's content as JSON sees it (see the module comment for what counts), as text:
 * `JSON.stringify` with the reductions applied on the way, so members in the same order give
 * the same text (graph nodes and informer objects keep their key order from run to run; a
 * different order costs at most an owner rendered again, never a change missed). As in JSON,
 * an `undefined` member counts as absent and a non-finite number as `null`. Not hashed here:
 * an owner's reads are hashed together ({@link readToken}), once.
 * @throws TypeError for a Map or Set inside the value, a cyclic value, or a BigInt.
 */
export function fingerprint(v: unknown): string {
  return JSON.stringify(v, reduce) ?? 'u';
}

/** The JSON.stringify replacer of {@link fingerprint}. */
function reduce(this: unknown, _key: string, v: unknown): unknown {
  if (typeof v !== 'object' || v === null) return v;
  const o = v as Record<string, unknown>;
  if (typeof o.kind !== 'string' || typeof o.apiVersion !== 'string' || o.metadata === null || typeof o.metadata !== 'object') {
    if (v instanceof Map || v instanceof Set) throw new TypeError('fingerprint: a Map or Set is not a recordable input; read plain values');
    return v;
  }
  // A Kubernetes object: without status, resourceVersion and managedFields; spec as its generation.
  const { status: _s, metadata, spec, ...rest } = o;
  const { resourceVersion: _rv, managedFields: _mf, ...md } = metadata as Record<string, unknown>;
  return { ...rest, metadata: md, ...(spec === undefined ? {} : { spec: typeof md.generation === 'number' ? { generation: md.generation } : spec }) };
}
