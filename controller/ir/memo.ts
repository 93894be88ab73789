/**
 * Memoized OpenAPI generation and diffing for the pure stages.
 *
 * Takes in: an ApiSchema (as it takes effect) and generation options; or two documents
 * identified by their digests. Gives out: the same results as `generateOpenApi` /
 * `diffOpenApi` (lib/openapi), from a bounded least-recently-used cache when the inputs were
 * seen before. Reconciles re-render every ApiSchema on every batch, and without the cache a
 * steady-state reconcile of 500 MLServices with contract-checked canaries took ~5 s on this
 * machine (two documents generated and one diff per MLService, one diff per ApiSchema history);
 * cached, the unchanged ones cost one JSON.stringify + sha256 each.
 * Keys are content digests, so a hit always equals a fresh computation: the stages stay pure
 * and deterministic. Callers must not mutate returned objects (they are shared).
 */
import { createHash } from 'node:crypto';
import type { ApiSchema } from '../../lib/api/types.js';
import { type ApiDiff, diffOpenApi } from '../../lib/openapi/diff.js';
import { type GenerateOptions, type OpenAPIObject, generateOpenApi } from '../../lib/openapi/generate.js';

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

const sha256 = (s: string): string => createHash('sha256').update(s).digest('hex');

/** A generated document with its published text (`openapi.json`) and that text's sha256. */
export interface GeneratedDoc {
  /**
   * The document (shared, do not mutate). Parsed back from `text` on demand and kept in a
   * small LRU: holding 1000 parsed documents cost ~18 MB of heap at the scale benchmark
   * (docs/performance.md "Controller scale"), the texts alone ~10 MB.
   */
  readonly doc: OpenAPIObject;
  /** 2-space JSON plus a newline: exactly what is published. */
  text: string;
  /** sha256 (hex) of `text`: the version digest. */
  digest: string;
}

const generated = new Lru<GeneratedDoc>(2048);
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
