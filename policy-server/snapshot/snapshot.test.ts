/**
 * Snapshot building, path matching, atomic swap, persistence (restart with the source down
 * serves the last good snapshot), the file source (change visible ≤ 2 s), and the DocsStore.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SnapshotDocsStore } from '../docs-store.js';
import { matchOperationPath } from '../server.js';
import { FileSource } from '../sources/file.js';
import type { ConfigSource } from '../sources/types.js';
import { configMapsFor, irisService, schoolService, writeConfigDir } from '../testing/fixtures.js';
import { PassThrough } from 'node:stream';
import { createLogger, flushLogs } from '../../lib/log.js';
import { POLICY_API_VERSION } from '../../lib/policy/config.js';
import { buildSnapshot, type SourceConfigMap } from './build.js';
import { PathRouter } from './path-router.js';
import { SnapshotStore } from './store.js';

describe('buildSnapshot', () => {
  test('indexes operations by key and by method + template; compiles validators once', () => {
    const snap = buildSnapshot(configMapsFor(schoolService(), irisService()));
    expect([...snap.services.keys()].sort()).toEqual(['ml/iris', 'school/grades']);
    const get = snap.operations.get('school/grades/get_grades')!;
    expect(get.validateParams).toBeDefined();
    expect(snap.router.match('GET', '/school/grades/bob')).toEqual({ value: get, params: ['bob'] });
    expect(snap.router.match('POST', '/school/grades/bob')!.value.key).toBe('school/grades/set_grades');
    expect(snap.router.match('PUT', '/school/grades/bob')).toBeUndefined();
    expect(snap.router.hasPath('/school/grades/bob')).toBe(true);
    expect(snap.router.match('GET', '/school/grades')).toBeUndefined();
    expect(snap.router.match('GET', '/school/grades/bob/x')).toBeUndefined();
    expect(snap.services.get('ml/iris')!.defaultOperation!.key).toBe('ml/iris/predict');
    expect(snap.errors).toEqual([]);
  });

  test('unchanged services are reused across snapshots (no recompilation); changed ones are rebuilt', () => {
    const a = buildSnapshot(configMapsFor(schoolService(), irisService()));
    const b = buildSnapshot(configMapsFor(schoolService(), irisService('iv2')), a);
    expect(b.services.get('school/grades')).toBe(a.services.get('school/grades'));
    expect(b.services.get('ml/iris')).not.toBe(a.services.get('ml/iris'));
    expect(b.generation).toBeGreaterThan(a.generation);
  });

  test('a broken update keeps the previous compiled service and reports a precise error', () => {
    const a = buildSnapshot(configMapsFor(schoolService(), irisService()));
    const broken = configMapsFor(schoolService(), irisService());
    broken[1].data['policy.json'] = '{"id": "ml/iris", "oops"';
    const bad = schoolService();
    (bad.operations[1].requestBody!.schema as Record<string, unknown>).type = 'not-a-type';
    const cms = [configMapsFor(bad)[0], broken[1]];
    const b = buildSnapshot(cms, a);
    expect(b.services.get('ml/iris')).toBe(a.services.get('ml/iris'));
    expect(b.services.get('school/grades')).toBe(a.services.get('school/grades'));
    expect(b.errors.map((e) => e.keptPrevious)).toEqual([true, true]);
    expect(b.errors.find((e) => e.configMap === 'kea-api-ml-iris')!.message).toMatch(/policy\.json: invalid JSON/);
    expect(b.errors.find((e) => e.configMap === 'kea-api-school-grades')!.message).toMatch(/operation "set_grades"/);
    // The persisted source holds the last good ConfigMaps, not the broken ones.
    expect(b.source.map((c) => c.data['policy.json'])).toEqual(a.source.map((c) => c.data['policy.json']));
    // Without a previous version, a broken service is simply absent.
    expect(buildSnapshot(cms).services.size).toBe(0);
  });

  test('policy.json is checked against its JSON Schema; the message names the field', () => {
    const withPolicy = (edit: (p: Record<string, unknown>) => void): SourceConfigMap => {
      const cm = configMapsFor(irisService())[0];
      const p = JSON.parse(cm.data['policy.json']) as Record<string, unknown>;
      edit(p);
      cm.data['policy.json'] = JSON.stringify(p);
      return cm;
    };
    const errorOf = (edit: (p: Record<string, unknown>) => void) => buildSnapshot([withPolicy(edit)]).errors.map((e) => e.message);
    expect(errorOf((p) => delete p.upstream)).toEqual(["policy.json: (root) must have required property 'upstream'"]);
    expect(errorOf((p) => ((p.operations as Array<Record<string, unknown>>)[5].timeoutMs = 0))).toEqual(['policy.json: /operations/5/timeoutMs must be >= 1']);
    expect(errorOf((p) => delete (p.operations as Array<Record<string, unknown>>)[0].maxBodyBytes)).toEqual([
      "policy.json: /operations/0 must have required property 'maxBodyBytes'",
    ]);
    expect(errorOf((p) => (p.rateLimit = { rps: 1 }))).toEqual(['policy.json: (root) has unknown field "rateLimit"']);
    expect(errorOf((p) => ((p.operations as Array<Record<string, unknown>>)[0].access = { mode: 'everyone' }))).toEqual([
      'policy.json: /operations/0/access/mode must be one of "public", "authenticated", "restricted"',
    ]);
    expect(errorOf((p) => (p.id = 'ml/other'))).toEqual(['policy.json: /id must be "<namespace>/<name>"']);
    // A path parameter the controller did not mark required is refused, not re-decided here.
    expect(
      errorOf(
        (p) =>
          ((p.operations as Array<{ parameters: Array<Record<string, unknown>> }>).find((o) =>
            o.parameters.some((x) => x.in === 'path'),
          )!.parameters[0].required = false),
      ),
    ).toEqual(['policy.json: /operations/13/parameters/0/required must be equal to constant; /operations/13/parameters/0 must match "then" schema']);
  });

  test('a policy.json of another (or no) apiVersion is refused with both versions named; the previous service stays', () => {
    const a = buildSnapshot(configMapsFor(irisService('iv1')));
    const next = configMapsFor(irisService('iv2'))[0];
    const p = JSON.parse(next.data['policy.json']) as Record<string, unknown>;
    next.data['policy.json'] = JSON.stringify({ ...p, apiVersion: 'policy.kea.dev/v2' });
    const b = buildSnapshot([next], a);
    expect(b.errors).toEqual([
      {
        configMap: 'kea-api-ml-iris',
        serviceId: 'ml/iris',
        keptPrevious: true,
        message: `policy.json: apiVersion "policy.kea.dev/v2" is not supported: this policy server reads apiVersion "${POLICY_API_VERSION}" only (controller and policy server are at different versions; upgrade the older one)`,
      },
    ]);
    expect(b.services.get('ml/iris')).toBe(a.services.get('ml/iris'));
    delete p.apiVersion;
    next.data['policy.json'] = JSON.stringify(p);
    expect(buildSnapshot([next]).errors[0].message).toMatch(
      /^policy\.json: no apiVersion is not supported: this policy server reads apiVersion "policy\.kea\.dev\/v1" only/,
    );
    expect(buildSnapshot([next]).services.size).toBe(0);
  });

  test('the store logs the refused version and keeps serving the previous service', () => {
    const out = new PassThrough();
    const lines: string[] = [];
    out.on('data', (c: Buffer) => lines.push(...c.toString('utf8').split('\n').filter(Boolean)));
    const store = new SnapshotStore({ logger: createLogger('test', { stream: out, level: 'info' }) });
    store.apply(configMapsFor(irisService('iv1')));
    const next = configMapsFor(irisService('iv2'))[0];
    next.data['policy.json'] = JSON.stringify({ ...(JSON.parse(next.data['policy.json']) as object), apiVersion: 'policy.kea.dev/v9' });
    store.apply([next]);
    flushLogs();
    const rejected = lines.map((l) => JSON.parse(l) as Record<string, unknown>).find((r) => r.message === 'config rejected');
    expect(rejected).toMatchObject({ level: 'warn', configMap: 'kea-api-ml-iris', serviceId: 'ml/iris', keptPrevious: true });
    expect(rejected!.error).toMatch(/apiVersion "policy\.kea\.dev\/v9" is not supported: this policy server reads apiVersion "policy\.kea\.dev\/v1" only/);
    expect(store.current.services.get('ml/iris')!.def.configVersion).toBe('iv1');
    expect(store.current.errors).toHaveLength(1); // what /readyz lists and kea_policy_config_errors counts
  });

  test('the default operation is the one policy.json names, never re-derived', () => {
    expect(buildSnapshot(configMapsFor(irisService('iv1', { defaultOperationId: 'predict_mine' }))).services.get('ml/iris')!.defaultOperation!.key).toBe(
      'ml/iris/predict_mine',
    );
    // No defaultOperationId: no default operation, even with POST operations named predict*.
    expect(buildSnapshot(configMapsFor(irisService('iv1', { defaultOperationId: undefined }))).services.get('ml/iris')!.defaultOperation).toBeUndefined();
    expect(buildSnapshot(configMapsFor(irisService('iv1', { defaultOperationId: 'nope' }))).errors[0].message).toBe(
      'policy.json: /defaultOperationId "nope" is not an operation of this service',
    );
  });

  test('limits and timeouts are used as written (the controller applied the defaults)', () => {
    const op = buildSnapshot(configMapsFor(irisService())).operations;
    expect(op.get('ml/iris/slow')!.timeoutMs).toBe(300);
    expect(op.get('ml/iris/small_body')!.maxBodyBytes).toBe(64);
    expect(op.get('ml/iris/predict')!.timeoutMs).toBe(5000);
  });

  test('schemas are compiled as written (JSON Schema as ajv compiles it), components refs resolved', () => {
    const svc = irisService();
    svc.operations[0].requestBody!.schema = {
      type: 'object',
      properties: { x: { $ref: '#/components/schemas/X' } },
      components: { schemas: { X: { type: 'integer', nullable: true } } },
    };
    const op = buildSnapshot(configMapsFor(svc)).operations.get('ml/iris/predict')!;
    expect(op.body!.validate!({ x: null })).toBe(true);
    expect(op.body!.validate!({ x: 1.5 })).toBe(false);
  });

  test('version ConfigMaps become per-service history', () => {
    const v: SourceConfigMap = {
      name: 'kea-apiver-ml-iris-abc',
      labels: { 'kea.dev/component': 'api-version', 'kea.dev/owner': 'ApiSchema.ml.iris' },
      annotations: {},
      creationTimestamp: '2026-01-01T00:00:00Z',
      data: { 'openapi.json': JSON.stringify({ openapi: '3.0.3', info: { title: 'Iris', version: '1.0.0' }, paths: {} }) },
    };
    const snap = buildSnapshot([...configMapsFor(irisService()), v]);
    expect(snap.versions.get('ml/iris')!.map((x) => x.version)).toEqual(['1.0.0']);
    const docs = new SnapshotDocsStore({ current: snap } as unknown as SnapshotStore);
    const api = docs.get('ml/iris')!;
    expect(api.version).toBe('2.1.0');
    expect(api.history.map((h) => h.version).sort()).toEqual(['1.0.0', '2.1.0']);
    expect(docs.list().map((a) => a.id)).toEqual(['ml/iris']);
    expect(docs.list()).toBe(docs.list()); // memoised per snapshot
  });
});

describe('path matching', () => {
  test('literal segments win over parameters', () => {
    const r = new PathRouter<string>();
    r.add('GET', '/a/{id}', 'param');
    r.add('GET', '/a/me', 'literal');
    r.add('GET', '/a/{id}/b', 'deep');
    expect(r.match('GET', '/a/me')!.value).toBe('literal');
    expect(r.match('GET', '/a/you')).toEqual({ value: 'param', params: ['you'] });
    expect(r.match('GET', '/a/me/b')).toEqual({ value: 'deep', params: ['me'] });
    expect(r.match('GET', '/a/')).toBeUndefined();
  });
  test('x-kea-operation path check', () => {
    const op = buildSnapshot(configMapsFor(schoolService())).operations.get('school/grades/get_grades')!;
    expect(matchOperationPath(op, '/school/grades/bob')).toEqual(['bob']);
    expect(matchOperationPath(op, '/school/grades/')).toBeUndefined();
    expect(matchOperationPath(op, '/school/grades')).toBeUndefined();
    expect(matchOperationPath(op, '/school/grades/bob/x')).toBeUndefined();
    expect(matchOperationPath(op, '/school/other/bob')).toBeUndefined();
  });
});

describe('SnapshotStore', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kea-store-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test('persists the last good snapshot and serves it on restart while the source is down', async () => {
    const swaps: number[] = [];
    const a = new SnapshotStore({ stateDir: dir, debounceMs: 5 });
    a.onSwap((n) => swaps.push(n.generation));
    a.offer(configMapsFor(schoolService(), irisService()));
    a.offer(configMapsFor(schoolService(), irisService('iv3'))); // coalesced with the first
    await new Promise((r) => setTimeout(r, 30));
    await a.flush();
    expect(swaps.length).toBe(1);
    expect(a.current.services.get('ml/iris')!.def.configVersion).toBe('iv3');
    const persisted = JSON.parse(await readFile(join(dir, 'snapshot.json'), 'utf8')) as { configMaps: unknown[] };
    expect(persisted.configMaps.length).toBe(2);

    // "Restart": a new store whose source never connects (API server down).
    const down: ConfigSource = {
      start: async () => undefined,
      stop: async () => undefined,
      health: () => ({ kind: 'test', connected: false, lastSyncAt: 0, restarts: 3, lastError: 'connect ECONNREFUSED' }),
    };
    const b = new SnapshotStore({ stateDir: dir });
    await b.start(down);
    expect(b.ready).toBe(true);
    expect(b.origin).toBe('disk');
    expect(b.current.services.get('ml/iris')!.def.configVersion).toBe('iv3');
    expect(b.current.operations.get('school/grades/set_grades')!.body!.validate!({ subject: 'm', grade: 9 })).toBe(false);
  });

  test('a corrupt state file is ignored, not fatal', async () => {
    await writeFile(join(dir, 'snapshot.json'), '{garbage');
    const s = new SnapshotStore({ stateDir: dir });
    expect(await s.loadPersisted()).toBe(false);
    expect(s.ready).toBe(false);
  });
});

describe('FileSource', () => {
  test('a changed file takes effect within 2 s', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kea-files-'));
    try {
      await writeConfigDir(dir, irisService('f1'));
      const store = new SnapshotStore({ debounceMs: 20 });
      const src = new FileSource(dir, 100);
      await store.start(src);
      await new Promise((r) => setTimeout(r, 100));
      expect(store.current.services.get('ml/iris')!.def.configVersion).toBe('f1');
      const t0 = Date.now();
      await writeConfigDir(dir, irisService('f2'), schoolService());
      while (store.current.services.get('ml/iris')!.def.configVersion !== 'f2' && Date.now() - t0 < 5000) await new Promise((r) => setTimeout(r, 10));
      const took = Date.now() - t0;
      expect(store.current.services.get('ml/iris')!.def.configVersion).toBe('f2');
      expect(store.current.services.has('school/grades')).toBe(true);
      expect(took).toBeLessThan(2000);
      expect(src.health().connected).toBe(true);
      await store.stop();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
