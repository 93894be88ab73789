/**
 * Memoized OpenAPI generation and diffing for the pure stages.
 *
 * Takes in: an ApiSchema (as it takes effect) and generation options; or two documents
 * identified by their digests. Gives out: the same results as `generateOpenApi` /
 * `diffOpenApi` (lib/openapi), from a bounded least-recently-used cache when the inputs were
 * seen before. Full reconciles (a restart, a new leader, a run after a failed one) render every
 * ApiSchema, and without the cache a steady-state reconcile of 500 MLServices with contract-checked canaries took ~5 s on this
 * machine (two documents generated and one diff per MLService, one diff per ApiSchema history);
 * cached, the unchanged ones cost one JSON.stringify + sha256 each.
 * Keys are content digests, so a hit always equals a fresh computation: the stages stay pure
 * and deterministic. Callers must not mutate returned objects (they are shared).
 */
import type { ApiSchema } from '../../lib/api/types.js';
import { type ApiDiff, diffOpenApi } from '../../lib/openapi/diff.js';
import { type GenerateOptions, type OpenAPIObject, generateOpenApi } from '../../lib/openapi/generate.js';
import { curlExample } from '../../lib/openapi/examples.js';
import { canonicalJson } from '../../lib/canonical-json.js';
import { sha256Hex as sha256 } from '../../lib/hash.js';

/** A small least-recently-used map (Map keeps insertion order; a hit re-inserts). */
export class Lru<V> {
  private readonly m = new Map<string, V>();
  constructor(private readonly max: number) {}
  get(k: string): V | undefined {
    const v = this.m.get(k);
    if (v !== undefined) {
      this.m.delete(k);
      this.m.set(k, v);
    }
    return v;
  }
  set(k: string, v: V): void {
    this.m.delete(k);
    this.m.set(k, v);
    if (this.m.size > this.max) this.m.delete(this.m.keys().next().value as string);
  }
  get size(): number {
    return this.m.size;
  }
}

/** A generated document with its published text (`openapi.json`) and that text's sha256. */
export interface GeneratedDoc {
  /**
   * The document (shared, do not mutate). Parsed back from `text` on demand and kept in a
   * small LRU: holding 1000 parsed documents cost ~18 MB of heap at the scale benchmark
   * (docs/performance.md "Controller scale"), the texts alone ~10 MB. (Keeping the texts
   * deflated was tried and measured worse: each read inflates into a Buffer, and a run's
   * 1000 dead Buffers wait for a major GC as external memory, +30–50 MB of peak RSS.)
   */
  readonly doc: OpenAPIObject;
  /** 2-space JSON plus a newline: exactly what is published. */
  text: string;
  /** sha256 (hex) of `text`: the version digest. */
  digest: string;
}

/**
 * Sizes: the incremental reconcile (controller/incremental.ts) renders only owners whose
 * inputs changed, so a cached document serves mostly the few owners rendered again soon
 * (contract checks, an edit); 2048 entries held every ApiSchema's text (~10 MB at the scale
 * benchmark) for the life of the process.
 */
const generated = new Lru<GeneratedDoc>(256);
/** Parsed documents by digest: the few a run uses twice (canary checks, call examples). */
const parsedDocs = new Lru<OpenAPIObject>(64);

/** A cached generation: text and digest held, the document parsed again when asked for. */
class Generated implements GeneratedDoc {
  constructor(
    readonly text: string,
    readonly digest: string,
  ) {}
  get doc(): OpenAPIObject {
    let d = parsedDocs.get(this.digest);
    if (!d) {
      d = JSON.parse(this.text) as OpenAPIObject;
      parsedDocs.set(this.digest, d);
    }
    return d;
  }
}
const diffs = new Lru<ApiDiff>(4096);

/** The published text of an OpenAPI document (2-space JSON plus a newline). */
export function openApiText(doc: unknown): string {
  return `${JSON.stringify(doc, null, 2)}\n`;
}

/**
 * `generateOpenApi(schema, opts)` with its text and digest, cached by the digest of
 * (namespace, name, spec, opts).
 * @throws what generateOpenApi throws (failures are not cached).
 */
export function generateCached(schema: ApiSchema, opts: GenerateOptions): GeneratedDoc {
  const key = sha256(JSON.stringify([schema.metadata.namespace ?? null, schema.metadata.name, schema.spec, opts.gatewayUrl, opts.issuerUrl ?? null]));
  const hit = generated.get(key);
  if (hit) return hit;
  const doc = generateOpenApi(schema, opts);
  const text = openApiText(doc);
  const out = new Generated(text, sha256(text));
  // The document as published (JSON round trip: no undefined members), like every later read.
  parsedDocs.set(out.digest, JSON.parse(text) as OpenAPIObject);
  generated.set(key, out);
  return out;
}

/**
 * `diffOpenApi(old, new)` cached by the two documents' digests. `load` gives the documents
 * on a miss (so callers holding only text parse it only then).
 */
export function diffCached(oldDigest: string, newDigest: string, load: () => { oldDoc: OpenAPIObject; newDoc: OpenAPIObject }): ApiDiff {
  const key = `${oldDigest}:${newDigest}`;
  const hit = diffs.get(key);
  if (hit) return hit;
  const { oldDoc, newDoc } = load();
  const d = diffOpenApi(oldDoc, newDoc);
  diffs.set(key, d);
  return d;
}

/** Call examples by document digest and operationId; `null` = the document has no example operation. */
const curls = new Lru<string | null>(4096);

/**
 * `curlExample(gen.doc, { operationId })` (lib/openapi/examples.ts), cached by the document's
 * digest and the operationId. Without it every reconcile parsed every ApiSchema's document
 * back from its text (the parsed-document LRU holds 64): at 1000 ApiSchemas ~10 MB of
 * short-lived trees per run, promoted to the old generation before they died.
 */
export function curlExampleCached(gen: GeneratedDoc, operationId: string | undefined): string | undefined {
  const key = `${gen.digest}\0${operationId ?? ''}`;
  const hit = curls.get(key);
  if (hit !== undefined) return hit ?? undefined;
  const curl = curlExample(gen.doc, { operationId });
  curls.set(key, curl ?? null);
  return curl;
}

/** Policy digests by the sha256 of the policy's plain JSON (insertion order). */
const policyVersions = new Lru<string>(4096);
/** Published policy.json texts by configVersion. */
const policyTexts = new Lru<string>(256);

/**
 * sha256 (hex) of the canonical JSON of a PolicyService without its configVersion: its
 * `configVersion` (lib/policy/config.ts). Cached by the sha256 of the value's plain
 * `JSON.stringify` text, which determines the value and so its canonical form: a run that
 * rebuilds an unchanged policy pays one native stringify instead of a canonicalization.
 */
export function policyConfigVersion(withoutVersion: object): string {
  const fp = sha256(JSON.stringify(withoutVersion));
  let v = policyVersions.get(fp);
  if (v === undefined) {
    v = sha256(canonicalJson(withoutVersion));
    policyVersions.set(fp, v);
  }
  return v;
}

/**
 * The published `policy.json` text of a PolicyService (canonical JSON, 2-space indent, and a
 * newline), cached by its `configVersion`, the digest of everything else in it.
 */
export function policyJsonText(policy: { configVersion: string }): string {
  let t = policyTexts.get(policy.configVersion);
  if (t === undefined) {
    t = `${canonicalJson(policy, 2)}\n`;
    policyTexts.set(policy.configVersion, t);
  }
  return t;
}
