/**
 * Body steps: the request body, read whole (validation, the cache key and one upstream write
 * need all of it) within the operation's `maxBodyBytes` and the server's buffered-bytes budget.
 *
 * - `body` (operations with a `requestBody`, policy.json `operations[].requestBody`): the
 *   media type (415 `unsupported-media-type`: another type, a JSON charset other than UTF-8,
 *   an encoded body that is to be validated), the size (413 `payload-too-large`), then for
 *   JSON the structure (nesting depth, prototype-pollution keys) and the schema (400
 *   `validation-failed` with the failing pointers). A required body that is absent is 400.
 * - `read-body` (every other operation): a body the client sends anyway is read within the
 *   same bounds and forwarded as it is.
 *
 * Takes in: the request stream. Gives out: `x.body` and, on cacheable operations, `x.bodyDigest`
 * (the canonical JSON's SHA-256, for the cache key). Synchronous when there is no body;
 * reading one returns a promise. Past the budget (handler.ts `maxBufferedRequestBytes`) a new
 * body gets 503 `server-busy` with `Retry-After: 1` before a byte is read.
 */
import { hash } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { LRUCache } from 'lru-cache';
import { isJsonMediaType, mediaTypeOf, type CompiledOperation } from '../../snapshot/build.js';
import { canonicalJson } from '../../../lib/canonical-json.js';
import { MAX_DRAINED_BODY_BYTES } from '../../../lib/policy/config.js';
import { BodyError, charsetOf, findPollution, guardJson, jsonCharsetOk, readBody } from '../body.js';
import type { Exchange } from '../exchange.js';
import { explainErrors, validationDetail } from '../params.js';
import { problem, type FieldError } from '../problem.js';
import type { Step, StepContext, StepFactory, StepResult } from '../step.js';

/** Raw-body memo entries per cacheable operation (see {@link Body.digestOf}). */
const BODY_MEMO_ENTRIES = 4096;

type CompiledBody = NonNullable<CompiledOperation['body']>;

/** The request announces a body (a non-zero `Content-Length`, or `Transfer-Encoding`). */
function announcesBody(h: IncomingHttpHeaders): boolean {
  return (h['content-length'] !== undefined && h['content-length'] !== '0') || h['transfer-encoding'] !== undefined;
}

/**
 * Reserves the body's bytes in the server's budget (its declared `Content-Length`, a chunked
 * one the operation's limit); ends the exchange with 503 `server-busy` when they do not fit
 * (one request alone is always admitted).
 * @returns false when the exchange ended.
 */
function reserve(x: Exchange): boolean {
  const dp = x.dp;
  const limit = x.op.maxBodyBytes;
  const cl = x.req.headers['content-length'];
  // A declared length over the limit reserves nothing: readBody refuses it before reading.
  const want = cl === undefined ? limit : Number(cl) <= limit ? Number(cl) : 0;
  if (want > 0 && dp.bufferedRequestBytes > 0 && dp.bufferedRequestBytes + want > dp.maxBufferedRequestBytes) {
    x.fail(problem('server-busy', 'too many request bodies are being received right now; retry later'), 'server_busy', {
      headers: ['retry-after', '1'],
      close: true,
    });
    return false;
  }
  dp.bufferedRequestBytes += want;
  x.bodyReserved = want;
  return true;
}

/** What checks a body once it is read ({@link read}). */
interface BodyCheck {
  check(x: Exchange): void;
}

/**
 * Reads the body into `x.body` (after {@link reserve}), then has `then` check it, in the same
 * async function (one promise per body besides readBody's). Over the limit: 413; a declared
 * `Content-Length` up to `MAX_DRAINED_BODY_BYTES` (lib/policy/config.ts, 128 MiB) is read and discarded first. A client
 * that leaves while sending: 499.
 */
async function read(x: Exchange, then?: BodyCheck): Promise<void> {
  const { req, op } = x;
  try {
    x.body = await readBody(req, op.maxBodyBytes);
  } catch (err) {
    if (err instanceof BodyError && err.reason === 'too-large') {
      // A declared Content-Length (what nginx sends: it buffers the body, bounded by the
      // gateway's client_max_body_size) over the limit: the body is read and discarded,
      // then answered, on a connection kept open. Answering at once and closing reset the
      // connection under nginx while it still sent the body (nginx answered 502 instead of
      // this 413: 14 of 40 in dev/ngf-policies.int.test.ts); answering at once without
      // closing still gave 2 of 320. A chunked body, or a declared one over the largest
      // gateway cap (128 MiB, controller render gatewayBodyMaxSize for the 64 MiB
      // maximum), is not worth reading: answered at once, connection closed.
      const cl = req.headers['content-length'];
      const drain = cl !== undefined && Number(cl) <= MAX_DRAINED_BODY_BYTES;
      if (drain) {
        await new Promise<void>((done) => {
          req.once('end', done);
          req.once('close', done);
          req.once('error', done);
          req.resume();
        });
      }
      x.fail(problem('payload-too-large', err.message, { limit: op.maxBodyBytes }), 'payload_too_large', { close: !drain });
      return;
    }
    if (!x.done) x.finish(499, 'client_closed');
    return;
  }
  if (!x.done && then !== undefined) then.check(x);
}

/** A body that failed the JSON checks, with its field errors (the problem's `errors`). */
class Rejected {
  readonly errors: FieldError[];
  constructor(errors: FieldError[]) {
    this.errors = errors;
  }
}

/** `read-body`: an operation without a `requestBody`; a body the client sends anyway is read and forwarded. */
class ReadBody implements Step {
  readonly name = 'read-body';

  run(x: Exchange): StepResult {
    if (!announcesBody(x.req.headers) || !reserve(x)) return undefined;
    return read(x);
  }
}

/** `body`: an operation with a `requestBody`. */
class Body implements Step, BodyCheck {
  readonly name = 'body';
  private readonly spec: CompiledBody;
  private readonly maxJsonDepth: number;
  /**
   * Cacheable JSON operations remember the canonical digest of every body that passed
   * validation, keyed by the raw bytes' SHA-256: a repeated body (the common inference retry)
   * skips parse, guards, ajv and canonicalisation. Undefined on other operations.
   */
  private readonly memo?: LRUCache<string, string>;

  constructor(spec: CompiledBody, op: CompiledOperation, maxJsonDepth: number) {
    this.spec = spec;
    this.maxJsonDepth = maxJsonDepth;
    if (op.cache && spec.isJson) this.memo = new LRUCache<string, string>({ max: BODY_MEMO_ENTRIES });
  }

  run(x: Exchange): StepResult {
    const h = x.req.headers;
    if (!announcesBody(h)) {
      this.check(x);
      return undefined;
    }
    const spec = this.spec;
    const ct = h['content-type'];
    const mt = ct ? mediaTypeOf(ct) : '';
    if (!(mt === spec.mediaType || (spec.isJson && isJsonMediaType(mt)))) {
      x.fail(
        problem('unsupported-media-type', `expected Content-Type ${spec.mediaType}${ct ? `, got ${mt}` : ''}`, { accept: spec.mediaType }),
        'unsupported_media_type',
        {
          headers: ['accept-post', spec.mediaType],
          close: true,
        },
      );
      return undefined;
    }
    if (spec.isJson && ct !== undefined && !jsonCharsetOk(ct)) {
      x.fail(
        problem('unsupported-media-type', `JSON bodies must be UTF-8 (RFC 8259 §8.1), got charset=${charsetOf(ct)}`, {
          accept: `${spec.mediaType}; charset=utf-8`,
        }),
        'unsupported_media_type',
        {
          headers: ['accept-post', spec.mediaType],
          close: true,
        },
      );
      return undefined;
    }
    const ce = h['content-encoding'];
    if (ce !== undefined && ce.toLowerCase() !== 'identity' && spec.validate) {
      x.fail(problem('unsupported-media-type', `Content-Encoding ${ce} is not accepted for validated bodies`), 'unsupported_media_type', { close: true });
      return undefined;
    }
    if (!reserve(x)) return undefined;
    return read(x, this);
  }

  /** The body as read (`x.body`): present if required, then the JSON checks; sets `x.bodyDigest` on cacheable operations. */
  check(x: Exchange): void {
    const body = x.body;
    const spec = this.spec;
    if (body.length === 0) {
      if (spec.required) {
        const errors: FieldError[] = [{ in: 'body', pointer: '', message: 'is required' }];
        x.dp.metrics.validation(x.op.key, errors);
        x.fail(problem('validation-failed', 'a request body is required', { errors }), 'invalid_request', { validation: errors });
      }
      return;
    }
    if (!spec.isJson) return;
    const memo = this.memo;
    let rawKey: string | undefined;
    if (memo !== undefined) {
      rawKey = hash('sha256', body, 'base64url');
      const known = memo.get(rawKey);
      if (known !== undefined) {
        x.bodyDigest = known;
        return;
      }
    }
    const parsed = this.parse(body);
    if (parsed instanceof Rejected) {
      const errors = parsed.errors;
      x.dp.metrics.validation(x.op.key, errors);
      x.fail(
        problem('validation-failed', errors[0].message === 'is not valid JSON' ? 'the body is not valid JSON' : validationDetail(errors, 'body'), { errors }),
        'invalid_request',
        {
          validation: errors,
        },
      );
      return;
    }
    if (memo !== undefined && rawKey !== undefined) {
      const digest = hash('sha256', canonicalJson(parsed), 'base64url');
      memo.set(rawKey, digest);
      x.bodyDigest = digest;
    }
  }

  /**
   * Parse, depth and prototype-pollution guard, schema.
   * @returns the parsed value, or {@link Rejected} with the field errors.
   */
  private parse(body: Buffer): unknown {
    let value: unknown;
    try {
      value = JSON.parse(body.toString('utf8'));
    } catch {
      return new Rejected([{ in: 'body', pointer: '', message: 'is not valid JSON' }]);
    }
    const { validate, closedDepth } = this.spec;
    // A closed schema (bounded nesting, no pollution keys admitted) implies the structural
    // guard: validate first, and walk the value only to explain a rejection. ajv cannot recurse
    // deeper than such a schema, so deep input is safe to hand it.
    const closed = validate !== undefined && closedDepth !== undefined && closedDepth <= this.maxJsonDepth;
    if (!closed) {
      const bad = this.guard(value);
      if (bad) return new Rejected(bad);
    }
    if (validate) {
      let ok: boolean;
      try {
        ok = validate(value);
      } catch {
        // A recursive schema on pathological data can exhaust the stack: still the client's fault.
        return new Rejected([{ in: 'body', pointer: '', message: 'cannot be validated (too complex)' }]);
      }
      if (!ok) return new Rejected((closed && this.guard(value)) || explainErrors(validate, value, body.length, 'body'));
    }
    return value;
  }

  /** Depth and prototype-pollution guard of a parsed body; the field errors, or undefined. */
  private guard(value: unknown): FieldError[] | undefined {
    const bad = guardJson(value, this.maxJsonDepth);
    if (bad === 'depth') return [{ in: 'body', pointer: '', message: `nesting deeper than ${this.maxJsonDepth} levels` }];
    if (bad === 'key') return [{ in: 'body', pointer: findPollution(value) ?? '', message: 'is a forbidden key (prototype pollution)' }];
    return undefined;
  }
}

/** Operations with a `requestBody`. */
export const bodyStep: StepFactory = {
  name: 'body',
  compile: (op: CompiledOperation, ctx: StepContext) => (op.body ? new Body(op.body, op, ctx.dp.maxJsonDepth) : undefined),
};

/** The same `read-body` step for every operation without a `requestBody` (it keeps no per-operation state). */
const READ_BODY = new ReadBody();

/** Operations without a `requestBody`. */
export const readBodyStep: StepFactory = {
  name: 'read-body',
  compile: (op: CompiledOperation) => (op.body ? undefined : READ_BODY),
};
