/**
 * Building the IR of a whole graph, or of some of its owners.
 *
 * Takes in: a {@link Graph}, the {@link ControllerConfig} and the time `now` (RFC 3339).
 * Gives out: the {@link IR} ({@link buildIR}), the same with the ApiSchema IRs built lazily as
 * they are taken ({@link buildStreamIRSteps}), or, for the incremental reconcile, an
 * {@link IRBuild}: owner IRs one at a time, each with the log of what it read (ir/inputs.ts).
 * The graph-wide values (`policyGrantNamespaces`, `maxBodyBytes`, `routes`) are always
 * computed over the whole graph. Pure and deterministic: lists keep the graph's sorted order.
 */
import { type ApiSchemaNode, type Graph, isAccepted } from '../graph/index.js';
import { type ControllerConfig, PAUSE } from '../model.js';
import { apiSchemaIR, needsPolicyGrant } from './apischema.js';
import { IRInputs, type ReadLog, type TargetIR } from './inputs.js';
import { mlServiceIR } from './mlservice.js';
import { POLICY_DEFAULTS } from '../../lib/policy/config.js';
import type { ApiSchemaIR, IR, MLServiceIR, StreamIR } from './types.js';

/** An owner's IR with what its build read (empty when reads were not recorded). */
export interface BuiltIR<T> {
  ir: T;
  reads: ReadLog;
}

/**
 * The owners an IR build is asked for (incremental reconcile, controller/incremental.ts): keys
 * `<namespace>/<name>` of the ApiSchemas and MLServices whose IR is wanted. Everything else of
 * the graph is still read (contract checks, targets), but not turned into IR.
 */
export interface IRSelection {
  apiSchemas: ReadonlySet<string>;
  mlServices: ReadonlySet<string>;
}

/** Resources between two {@link PAUSE}s of an IR build. */
export const IR_PAUSE_EVERY = 100;

/**
 * One IR build over a graph: owner IRs on demand, MLService IRs memoized (an ApiSchema reads
 * its target's), each owner's reads logged when `record` is set.
 */
export class IRBuild {
  readonly inputs: IRInputs;
  private readonly mls = new Map<string, BuiltIR<MLServiceIR> | null>();

  /** @param record log every owner's reads (the incremental reconcile); off, reads cost nothing extra. */
  constructor(
    readonly graph: Graph,
    readonly config: ControllerConfig,
    readonly now: string,
    private readonly record = false,
  ) {
    this.inputs = new IRInputs(graph, (k) => this.target(k));
  }

  /** MLService `key`'s IR and reads (built once per build), undefined when the graph has none. */
  mlService(k: string): BuiltIR<MLServiceIR> | undefined {
    let b = this.mls.get(k);
    if (b === undefined) {
      const reads: ReadLog = new Map();
      const ir = mlServiceIR(k, this.inputs.reader(this.record ? reads : undefined), this.config);
      b = ir ? { ir, reads } : null;
      this.mls.set(k, b);
    }
    return b ?? undefined;
  }

  /** ApiSchema `key`'s IR and reads (built anew on each call), undefined when the graph has none. */
  apiSchema(k: string): BuiltIR<ApiSchemaIR> | undefined {
    const reads: ReadLog = new Map();
    const ir = apiSchemaIR(k, this.inputs.reader(this.record ? reads : undefined), this.config, this.now);
    return ir ? { ir, reads } : undefined;
  }

  /** What an ApiSchema reads of MLService `key`'s IR (`target:` reads). */
  target(k: string): TargetIR | undefined {
    const m = this.mlService(k)?.ir;
    return m ? { traffic: m.traffic, backends: m.backends } : undefined;
  }

  /**
   * The IR as a generator that yields {@link PAUSE} after every {@link IR_PAUSE_EVERY}
   * MLServices and returns it with the ApiSchema IRs left lazy (see {@link StreamIR}).
   * @param only when given, the IR of these owners only (see {@link IRSelection});
   *   `policyGrantNamespaces` then covers the selected ApiSchemas only.
   * @param onApiSchema called with each ApiSchema IR built (and its reads) as it is taken.
   */
  *stream(only?: IRSelection, onApiSchema?: (b: BuiltIR<ApiSchemaIR>) => void): Generator<typeof PAUSE, StreamIR, undefined> {
    const graph = this.graph;
    const mlServices: MLServiceIR[] = [];
    let done = 0;
    for (const n of graph.mlServices) {
      if (only && !only.mlServices.has(n.key)) continue;
      mlServices.push(this.mlService(n.key)!.ir);
      if (++done % IR_PAUSE_EVERY === 0) yield PAUSE;
    }
    const apiWanted = only ? graph.apiSchemas.filter((n) => only.apiSchemas.has(n.key)) : graph.apiSchemas;
    return {
      mlServices,
      apiSchemas: this.apiSchemaStream(apiWanted, onApiSchema),
      policyGrantNamespaces: grantNamespaces(apiWanted, this.config),
      maxBodyBytes: largestBodyLimit(graph.apiSchemas),
      ...(graph.routes ? { routes: graph.routes } : {}),
    };
  }

  /** The IRs of `nodes`, each built as it is taken. */
  private *apiSchemaStream(nodes: readonly ApiSchemaNode[], onApiSchema?: (b: BuiltIR<ApiSchemaIR>) => void): Generator<ApiSchemaIR, void, undefined> {
    for (const n of nodes) {
      const b = this.apiSchema(n.key)!;
      onApiSchema?.(b);
      yield b.ir;
    }
  }
}

/** See {@link IR.maxBodyBytes}: operation, else `spec.defaults`, else the default limit; accepted ApiSchemas only. */
function largestBodyLimit(nodes: readonly ApiSchemaNode[]): number {
  let max: number = POLICY_DEFAULTS.maxBodyBytes;
  for (const n of nodes) {
    if (!isAccepted(n)) continue;
    const d = n.resource.spec.defaults?.maxBodyBytes;
    for (const o of n.operations) max = Math.max(max, o.maxBodyBytes ?? d ?? POLICY_DEFAULTS.maxBodyBytes);
  }
  return max;
}

/** See {@link IR.policyGrantNamespaces}. */
function grantNamespaces(nodes: readonly ApiSchemaNode[], config: ControllerConfig): string[] {
  const out = new Set<string>();
  for (const n of nodes) {
    const ns = n.resource.metadata.namespace ?? '';
    if (ns !== config.systemNamespace && needsPolicyGrant(n)) out.add(ns);
  }
  return [...out].sort();
}

/**
 * Build the IR from the graph. Never throws on bad input (the graph has reported it).
 * @param now RFC 3339: the publication time of a version first published by this run.
 */
export function buildIR(graph: Graph, config: ControllerConfig, now: string): IR {
  const steps = new IRBuild(graph, config, now).stream();
  let r = steps.next();
  while (!r.done) r = steps.next();
  return { ...r.value, apiSchemas: [...r.value.apiSchemas] };
}

/**
 * {@link buildIR} with the ApiSchema IRs built one at a time as they are taken (see
 * {@link StreamIR}), yielding {@link PAUSE} after every {@link IR_PAUSE_EVERY} MLServices; the
 * MLService IRs and `policyGrantNamespaces` are complete. Same values as buildIR.
 */
export function* buildStreamIRSteps(graph: Graph, config: ControllerConfig, now: string): Generator<typeof PAUSE, StreamIR, undefined> {
  return yield* new IRBuild(graph, config, now).stream();
}
