/**
 * Test fixtures for the policy server's own tests and benchmark (not used in production):
 * a sample configuration (the seed's school example plus an inference service), a real
 * `node:http` backend standing in for the gateway's internal listener, and a deterministic
 * authenticator double for unit tests of the data path (the real OIDC/JWT authenticator is
 * tested in policy-server/auth/).
 */
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { AuthError, type Identity } from '../auth/index.js';
import type { PolicyOperation, PolicyService } from '../../lib/policy/config.js';
import type { RequestAuthenticator } from '../datapath/handler.js';
import { POLICY_API_VERSION, COMPONENT_API_CONFIG, OPENAPI_KEY, POLICY_CONFIG_KEY, policyOperation as op } from '../../lib/policy/config.js';
import type { SourceConfigMap } from '../snapshot/build.js';

export const INTERNAL_TOKEN = 'test-internal-token';

/** The seed's example: students may call get_grades, only teachers set_grades. */
export function schoolService(configVersion = 'cv1'): PolicyService {
  return {
    apiVersion: POLICY_API_VERSION,
    id: 'school/grades',
    namespace: 'school',
    name: 'grades',
    title: 'Grades',
    version: '1.0.0',
    basePath: '/school',
    configVersion,
    mode: 'enforce',
    upstream: { host: 'grades.school.kea.internal' },
    traffic: [{ revision: 'v1', weight: 100 }],
    authorization: {},
    operations: [
      op({
        operationId: 'get_grades',
        method: 'GET',
        path: '/school/grades/{student}',
        upstreamPath: '/grades/{student}',
        access: { mode: 'restricted', roles: ['student', 'teacher'] },
        parameters: [
          { name: 'student', in: 'path', required: true, schema: { type: 'string', pattern: '^[a-z]{1,20}$' } },
          { name: 'term', in: 'query', required: false, schema: { type: 'integer', minimum: 1, maximum: 4 } },
          { name: 'x-school', in: 'header', required: false, schema: { type: 'string', enum: ['north', 'south'] } },
        ],
      }),
      op({
        operationId: 'set_grades',
        method: 'POST',
        path: '/school/grades/{student}',
        upstreamPath: '/grades/{student}',
        access: { mode: 'restricted', roles: ['teacher'] },
        parameters: [{ name: 'student', in: 'path', required: true, schema: { type: 'string', pattern: '^[a-z]{1,20}$' } }],
        requestBody: {
          required: true,
          contentType: 'application/json',
          schema: {
            type: 'object',
            required: ['subject', 'grade'],
            additionalProperties: false,
            properties: {
              subject: { type: 'string', minLength: 1, maxLength: 40 },
              grade: { type: 'integer', minimum: 1, maximum: 5 },
              comment: { type: 'string', maxLength: 200, nullable: true },
            },
          },
        },
      }),
    ],
  };
}

/** 1 KB-ish JSON inference body used by tests and the benchmark. */
export function irisBody(n = 24): { features: number[][]; model: string; options: { explain: boolean; tag: string } } {
  const features: number[][] = [];
  for (let i = 0; i < n; i++) features.push([5.1 + i / 100, 3.5, 1.4, 0.2 + i / 1000]);
  return { model: 'iris', options: { explain: false, tag: 'bench' }, features };
}

const irisSchema = {
  type: 'object',
  required: ['features'],
  additionalProperties: false,
  properties: {
    model: { type: 'string', maxLength: 64 },
    options: { type: 'object', properties: { explain: { type: 'boolean' }, tag: { type: 'string', maxLength: 32 } }, additionalProperties: false },
    features: {
      type: 'array',
      minItems: 1,
      maxItems: 1000,
      items: { type: 'array', minItems: 4, maxItems: 4, items: { type: 'number', minimum: 0, exclusiveMaximum: 100 } },
    },
  },
};

/**
 * A `POST` operation of the iris service forwarded to the backend's `/predict`, its JSON body
 * required and validated against the iris schema; `cache` as given (absent: not cached).
 */
function irisPredict(operationId: string, path: string, cache?: PolicyOperation['cache']): PolicyOperation {
  return op({
    operationId,
    method: 'POST',
    path,
    upstreamPath: '/predict',
    requestBody: { required: true, contentType: 'application/json', schema: irisSchema },
    ...(cache ? { cache } : {}),
  });
}

/** An inference service with cached, identity-cached, slow, validated-response and streaming operations. */
export function irisService(configVersion = 'iv1', extra: Partial<PolicyService> = {}): PolicyService {
  return {
    apiVersion: POLICY_API_VERSION,
    id: 'ml/iris',
    namespace: 'ml',
    name: 'iris',
    title: 'Iris classifier',
    version: '2.1.0',
    basePath: '/iris',
    configVersion,
    mode: 'enforce',
    upstream: { host: 'iris.ml.kea.internal' },
    traffic: [
      { revision: 'v1', weight: 80 },
      { revision: 'v2', weight: 20 },
    ],
    authorization: {},
    defaultOperationId: 'predict',
    operations: [
      irisPredict('predict', '/iris/predict', { ttlSeconds: 60, scope: 'shared' }),
      irisPredict('predict_mine', '/iris/predict-mine', { ttlSeconds: 60, scope: 'identity' }),
      irisPredict('predict_nocache', '/iris/predict-nocache'),
      op({
        operationId: 'predict_novalidate',
        method: 'POST',
        path: '/iris/predict-raw',
        upstreamPath: '/predict',
        requestBody: { required: true, contentType: 'application/json', schema: {} },
      }),
      op({ operationId: 'health', method: 'GET', path: '/iris/health', upstreamPath: '/health', access: { mode: 'public' } }),
      op({ operationId: 'slow', method: 'GET', path: '/iris/slow', upstreamPath: '/slow', access: { mode: 'public' }, timeoutMs: 300 }),
      op({ operationId: 'slow_ok', method: 'GET', path: '/iris/slow-ok', upstreamPath: '/slow', access: { mode: 'public' } }),
      op({ operationId: 'stall', method: 'GET', path: '/iris/stall', upstreamPath: '/stall', access: { mode: 'public' }, timeoutMs: 300 }),
      op({
        operationId: 'stall_cached',
        method: 'GET',
        path: '/iris/stall-cached',
        upstreamPath: '/stall',
        access: { mode: 'public' },
        timeoutMs: 300,
        cache: { ttlSeconds: 60, scope: 'shared' },
      }),
      op({
        operationId: 'info',
        method: 'GET',
        path: '/iris/info',
        upstreamPath: '/info',
        access: { mode: 'public' },
        parameters: [{ name: 'shape', in: 'query', schema: { type: 'string' } }],
        responseValidation: 'enforce',
        responses: {
          '200': {
            type: 'object',
            required: ['name', 'classes'],
            properties: { name: { type: 'string' }, classes: { type: 'array', items: { type: 'string' } } },
          },
        },
      }),
      op({
        operationId: 'info_log',
        method: 'GET',
        path: '/iris/info-log',
        upstreamPath: '/info',
        access: { mode: 'public' },
        parameters: [{ name: 'shape', in: 'query', schema: { type: 'string' } }],
        responseValidation: 'log',
        responses: { '200': { type: 'object', required: ['name', 'classes'] } },
      }),
      op({
        operationId: 'big',
        method: 'GET',
        path: '/iris/big',
        upstreamPath: '/big',
        access: { mode: 'public' },
        parameters: [{ name: 'mb', in: 'query', schema: { type: 'integer', minimum: 1, maximum: 64 } }],
      }),
      op({
        operationId: 'small_body',
        method: 'POST',
        path: '/iris/small',
        upstreamPath: '/predict',
        access: { mode: 'public' },
        maxBodyBytes: 64,
        requestBody: { required: false, contentType: 'application/json', schema: {} },
      }),
      op({
        operationId: 'items',
        method: 'GET',
        path: '/iris/items/{id}',
        upstreamPath: '/items/{id}',
        access: { mode: 'public' },
        parameters: [
          { name: 'id', in: 'path', required: true, schema: { type: 'integer', minimum: 1 } },
          { name: 'tags', in: 'query', schema: { type: 'array', items: { type: 'string', enum: ['a', 'b', 'c'] } } },
          { name: 'limit', in: 'query', required: true, schema: { type: 'integer', minimum: 1, maximum: 100 } },
        ],
      }),
    ],
    ...extra,
  };
}

/** Minimal OpenAPI doc for a policy service (enough for the DocsStore). */
export function openapiFor(p: PolicyService): Record<string, unknown> {
  return { openapi: '3.0.3', info: { title: p.title, version: p.version }, paths: {} };
}

/** The ConfigMaps the controller would render for these services. */
export function configMapsFor(...services: PolicyService[]): SourceConfigMap[] {
  return services.map((s) => ({
    name: `kea-api-${s.namespace}-${s.name}`,
    labels: { 'kea.dev/component': COMPONENT_API_CONFIG },
    annotations: { 'kea.dev/api-schema': s.id },
    data: { [POLICY_CONFIG_KEY]: JSON.stringify(s), [OPENAPI_KEY]: JSON.stringify(openapiFor(s)) },
  }));
}

/** Writes services as a `--config-dir` directory (one subdirectory per service). */
export async function writeConfigDir(dir: string, ...services: PolicyService[]): Promise<void> {
  for (const s of services) {
    const d = join(dir, `${s.namespace}-${s.name}`);
    await mkdir(d, { recursive: true });
    await writeFile(join(d, POLICY_CONFIG_KEY), JSON.stringify(s, null, 2));
    await writeFile(join(d, OPENAPI_KEY), JSON.stringify(openapiFor(s)));
  }
}

/**
 * The flags of a policy server a test runs as a process (`node dist/policy-server/main.js
 * ...flags`): data and admin ports ephemeral on 127.0.0.1, `upstreamUrl` as the internal
 * listener with {@link INTERNAL_TOKEN}, and the configuration read from `configDir` (see
 * {@link writeConfigDir}) with its last good snapshot kept in `stateDir`. Append more flags
 * after them (`--workers`, `--cache-max-bytes`, ...).
 */
export function policyServerArgs(opts: { upstreamUrl: string; configDir: string; stateDir: string }): string[] {
  return [
    '--host',
    '127.0.0.1',
    '--port',
    '0',
    '--upstream-url',
    opts.upstreamUrl,
    '--internal-token',
    INTERNAL_TOKEN,
    '--config-dir',
    opts.configDir,
    '--state-dir',
    opts.stateDir,
    '--admin-port',
    '0',
  ];
}

/** What the backend saw. */
export interface SeenRequest {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  body: string;
}

/** A real HTTP backend playing the gateway's internal listener + model. */
export interface Backend {
  url: string;
  port: number;
  seen: SeenRequest[];
  /** Requests whose body was read (count). */
  count(): number;
  close(): Promise<void>;
  server: Server;
}

/**
 * Starts the backend on 127.0.0.1:0. Routes (upstream paths):
 * - `POST /predict`: echoes `{ n, class, received }` (n = request counter), sets
 *   `x-kea-revision: v1`.
 * - `GET /grades/{student}`, `POST /grades/{student}`: echo method, path and identity headers.
 * - `GET /health`: `{"ok":true}`; `GET /slow`: answers after 1 s; `GET /stall`: sends headers
 *   and half the body at once, the rest after 1 s.
 * - `GET /info?shape=good|bad|notjson`: a body matching / not matching the documented schema.
 * - `GET /big?mb=N`: N MiB streamed in 64 KiB chunks.
 * - `GET /items/{id}`: echo.
 * - anything else: 404 JSON.
 * If `requireToken` is set, requests without the right `x-kea-internal-token` get 403 (like
 * the internal HTTPRoute's header match).
 */
export async function startBackend(opts: { requireToken?: string; quiet?: boolean } = {}): Promise<Backend> {
  const seen: SeenRequest[] = [];
  let n = 0;
  const server = createServer((req: IncomingMessage, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      if (!opts.quiet) seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body });
      n++;
      if (opts.requireToken && req.headers['x-kea-internal-token'] !== opts.requireToken) {
        res.writeHead(403, { 'content-type': 'application/json' }).end('{"error":"no route"}');
        return;
      }
      const url = new URL(req.url ?? '/', 'http://x');
      const json = (status: number, v: unknown, extra: Record<string, string> = {}) => {
        const s = JSON.stringify(v);
        res.writeHead(status, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(s)), ...extra });
        res.end(s);
      };
      if (url.pathname === '/predict' && req.method === 'POST') {
        return json(200, { n, class: 'setosa', received: body.length }, { 'x-kea-revision': 'v1' });
      }
      if (url.pathname.startsWith('/grades/')) {
        return json(200, {
          method: req.method,
          path: url.pathname,
          user: req.headers['x-kea-user'] ?? null,
          roles: req.headers['x-kea-roles'] ?? null,
          body: body || null,
        });
      }
      if (url.pathname === '/health') return json(200, { ok: true });
      if (url.pathname === '/slow') {
        const t = setTimeout(() => json(200, { slow: true }), 1000);
        res.on('close', () => clearTimeout(t));
        return;
      }
      if (url.pathname === '/stall') {
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': '16' });
        res.write('{"stalled":');
        const t = setTimeout(() => res.end('true}'), 1000);
        res.on('close', () => clearTimeout(t));
        return;
      }
      if (url.pathname === '/info') {
        const shape = url.searchParams.get('shape') ?? 'good';
        if (shape === 'notjson') {
          res.writeHead(200, { 'content-type': 'application/json' }).end('{not json');
          return;
        }
        return json(200, shape === 'good' ? { name: 'iris', classes: ['setosa', 'versicolor'] } : { name: 42 });
      }
      if (url.pathname === '/big') {
        const mb = Number(url.searchParams.get('mb') ?? '8');
        const chunk = Buffer.alloc(64 * 1024, 'x');
        let left = (mb * 1024 * 1024) / chunk.length;
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(mb * 1024 * 1024) });
        const pump = (): void => {
          while (left > 0) {
            left--;
            if (!res.write(chunk)) {
              res.once('drain', pump);
              return;
            }
          }
          res.end();
        };
        pump();
        return;
      }
      if (url.pathname.startsWith('/items/')) return json(200, { path: url.pathname, query: url.search });
      json(404, { error: 'not found' });
    });
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    seen,
    count: () => n,
    server,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

/**
 * Authenticator double for data-path unit tests: `Authorization: Bearer test:<sub>:<role,role>`
 * yields that identity (via bearer), `Bearer bad` throws AuthError, `Bearer boom` throws a
 * plain Error (backend failure), no header yields null. Identities are cached per token like
 * the real authenticator's cache.
 */
export function testAuthenticator(): RequestAuthenticator & { calls: number } {
  const cache = new Map<string, Identity>();
  const a = {
    calls: 0,
    async authenticate(req: IncomingMessage): Promise<Identity | null> {
      a.calls++;
      const h = req.headers.authorization;
      if (h === undefined) return null;
      if (!h.startsWith('Bearer ')) throw new AuthError('invalid_request', 'malformed Authorization header');
      const tok = h.slice(7);
      if (tok === 'boom') throw new Error('jwks unreachable');
      const hit = cache.get(tok);
      if (hit) return hit;
      const m = /^test:([a-z0-9-]+):([a-z,]*)$/.exec(tok);
      if (!m) throw new AuthError('invalid_token', 'token rejected');
      const id: Identity = { subject: m[1], claims: { sub: m[1], roles: m[2] ? m[2].split(',') : [] }, via: 'bearer' };
      cache.set(tok, id);
      return id;
    },
    loginUrl: (returnTo: string) => `/auth/login?returnTo=${encodeURIComponent(returnTo)}`,
  };
  return a;
}

/** `Authorization` header value for the test authenticator. */
export const bearer = (sub: string, ...roles: string[]): string => `Bearer test:${sub}:${roles.join(',')}`;
