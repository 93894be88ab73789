/**
 * The decisive test of `kea scan`: each example service in examples/ is started for real
 * (uvicorn from the project's venv, FastAPI, scikit-learn, a port chosen by the kernel on
 * 127.0.0.1), its own /openapi.json (OpenAPI 3.1) is fetched and imported with `kea import`
 * (down-converted to 3.0), and compared with what `kea scan` derives from the source without
 * running it: same operations, same parameter names and required-ness, equivalent body and
 * response schemas (lib/scan/compare.ts). Any difference is named in the failure message.
 * Then the real models are called: valid inputs give real predictions, invalid ones 422.
 *
 * Needs the Python environment from `bash scripts/setup.sh` (fails with that hint otherwise).
 */
/* eslint-disable @typescript-eslint/no-explicit-any -- JSON answers of the example services are checked field by field */
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { importOpenApi } from '../import/index.js';
import type { ApiSchema } from '../api/types.js';
import { diffApiSchemas } from './compare.js';
import { EXAMPLES, startExample, type ExampleService, type RunningService } from './examples.js';
import { formatIssues, scanPython } from './index.js';

const running = new Map<string, RunningService>();
/** Expected `kea scan` reports (besides info) per service. */
const EXPECTED_ISSUES: Record<string, string[]> = {
  'kitchen-sink': [
    'lib/scan/testdata/kitchen_sink/models.py:48: warning: fixed-length tuple tuple[float, float] needs prefixItems (OpenAPI 3.1); described as an array of 2 items, each any of the member types',
    'lib/scan/testdata/kitchen_sink/models.py:49: warning: fixed-length tuple tuple[int, str] needs prefixItems (OpenAPI 3.1); described as an array of 2 items, each any of the member types',
  ],
};
/** Not an example service: a FastAPI app that exercises many conventions at once. */
const KITCHEN_SINK: ExampleService = {
  dir: 'kitchen-sink',
  cwd: 'lib/scan/testdata/kitchen_sink',
  app: 'app:app',
  scanPath: 'lib/scan/testdata/kitchen_sink',
  servedOnly: [],
};
const ALL = [...EXAMPLES, KITCHEN_SINK];
/** Expected `kea import` reports per service (FastAPI repeats the operationId of a multi-method api_route). */
const EXPECTED_UNROUTABLE: Record<string, RegExp[]> = {
  // FastAPI picks get or head for both operations, depending on set order.
  'kitchen-sink': [
    /^schema #\/components\/schemas\/Shape\/properties\/bounds: prefixItems \(tuple\) has no OpenAPI 3\.0 equivalent/,
    /^schema #\/components\/schemas\/Shape\/properties\/pair\/anyOf\/0: prefixItems \(tuple\) has no OpenAPI 3\.0 equivalent/,
    /^HEAD \/v2\/ping: operationId ping_v2_ping_(get|head) is used twice; renamed ping_v2_ping_(get|head)_head$/,
  ],
};

beforeAll(async () => {
  // Sequential: two shared cores; each start trains its model.
  for (const ex of ALL) running.set(ex.dir, await startExample(ex));
  const times = [...running].map(([d, r]) => `${d} ${r.startMs} ms`).join(', ');
  process.stdout.write(`[compare] example services listening (start incl. training): ${times}\n`);
}, 240_000);

afterAll(async () => {
  await Promise.all([...running.values()].map((r) => r.stop()));
});

async function served(dir: string): Promise<{ doc: Record<string, unknown>; schema: ApiSchema; unroutable: string[] }> {
  const r = running.get(dir)!;
  const res = await fetch(`${r.url}/openapi.json`);
  expect(res.status).toBe(200);
  const doc = (await res.json()) as Record<string, unknown>;
  const { schema, unroutable } = importOpenApi(doc, { name: dir });
  return { doc, schema, unroutable };
}

async function post(dir: string, path: string, body: unknown): Promise<{ status: number; json: any }> {
  const res = await fetch(`${running.get(dir)!.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: res.status, json: await res.json() };
}
async function get(dir: string, path: string): Promise<{ status: number; json: any }> {
  const res = await fetch(`${running.get(dir)!.url}${path}`);
  return { status: res.status, json: await res.json() };
}

describe('kea scan (source) agrees with the OpenAPI document FastAPI serves', () => {
  test.each(ALL.map((e) => [e.dir, e] as const))('%s', async (_dir, ex) => {
    const { doc, schema: fromServed, unroutable } = await served(ex.dir);
    expect(doc.openapi).toMatch(/^3\.1\./); // FastAPI serves 3.1; import converted it
    const expected = EXPECTED_UNROUTABLE[ex.dir] ?? [];
    expect(unroutable).toHaveLength(expected.length);
    expected.forEach((re, i) => expect(unroutable[i]).toMatch(re));
    const scanned = await scanPython(ex.scanPath, { name: ex.dir });
    expect(formatIssues(scanned.issues.filter((i) => i.level !== 'info'))).toEqual((EXPECTED_ISSUES[ex.dir] ?? []).join('\n'));
    const ops = (s: ApiSchema) => (s.spec.operations ?? []).map((o) => `${o.method} ${o.path}`).sort();
    expect(ops(fromServed).filter((o) => !ex.servedOnly.includes(o))).toEqual(ops(scanned.schema));
    expect(ops(scanned.schema).length).toBeGreaterThan(0);
    const diffs = diffApiSchemas(scanned.schema, fromServed, ['scan', 'served'], ex.servedOnly);
    expect(diffs).toEqual([]);
    // Descriptions from docstrings and Field(description=...) agree as well.
    for (const op of scanned.schema.spec.operations ?? []) {
      const other = fromServed.spec.operations!.find((o) => o.method === op.method && o.path === op.path)!;
      expect(`${op.path}: ${op.description}`).toBe(`${op.path}: ${other.description}`);
    }
  });

  test('the comparison names a difference when source and served API disagree', async () => {
    const { schema: fromServed } = await served('wine');
    const scanned = (await scanPython('examples/wine', { name: 'wine' })).schema;
    // Pretend the source made `top` required and dropped a constraint on BatchItem.id.
    const explain = scanned.spec.operations!.find((o) => o.path === '/explain')!;
    explain.parameters![0].required = true;
    delete (scanned.spec.components!.schemas!.BatchItem as any).properties.id.maxLength;
    scanned.spec.operations = scanned.spec.operations!.filter((o) => o.path !== '/model');
    const diffs = diffApiSchemas(scanned, fromServed);
    expect(diffs).toEqual([
      'GET /model: only in served',
      'POST /batch: requestBody.schema.properties.items.items.properties.id.maxLength: scan=undefined served=64',
      'POST /explain: parameters.query top.required: scan=true served=false',
    ]);
  });
});

describe('the example services run real scikit-learn models', () => {
  const setosa = [5.1, 3.5, 1.4, 0.2];
  const virginica = [6.7, 3.0, 5.2, 2.3];
  const versicolor = [5.9, 3.0, 4.2, 1.5];

  test('iris v1 predicts real classes; a wrong-length row is rejected with 422', async () => {
    const ok = await post('iris-v1', '/predict', { features: [setosa, virginica, versicolor] });
    expect(ok).toEqual({ status: 200, json: { classes: ['setosa', 'virginica', 'versicolor'] } });
    const bad = await post('iris-v1', '/predict', { features: [[5.1, 3.5, 1.4]] });
    expect(bad.status).toBe(422);
    expect(bad.json.detail[0].loc).toEqual(['body', 'features', 0]);
  });

  test('iris v2 renamed classes → labels and adds probabilities and GET /model', async () => {
    const ok = await post('iris-v2', '/predict', { features: [setosa, virginica] });
    expect(ok.status).toBe(200);
    expect(ok.json.labels).toEqual(['setosa', 'virginica']);
    expect(ok.json.classes).toBeUndefined();
    for (const row of ok.json.probabilities as number[][]) {
      expect(row).toHaveLength(3);
      expect(row.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 4);
    }
    expect(ok.json.probabilities[0][0]).toBeGreaterThan(0.9);
    const model = await get('iris-v2', '/model');
    expect(model.json).toMatchObject({ name: 'iris', version: 'v2', classes: ['setosa', 'versicolor', 'virginica'] });
    expect(model.json.train_accuracy).toBeGreaterThan(0.9);
  });

  test('wine: several methods share one model instance', async () => {
    // Rows 0 and 177 of scikit-learn's wine dataset (class_0 and class_2).
    const first = [14.23, 1.71, 2.43, 15.6, 127, 2.8, 3.06, 0.28, 2.29, 5.64, 1.04, 3.92, 1065];
    const last = [14.13, 4.1, 2.74, 24.5, 96, 2.05, 0.76, 0.56, 1.35, 9.2, 0.61, 1.6, 560];
    const before = (await get('wine', '/model')).json.model_calls as number;
    expect(await post('wine', '/predict', { samples: [first, last] })).toEqual({ status: 200, json: { classes: ['class_0', 'class_2'] } });
    const proba = await post('wine', '/predict_proba', { samples: [first] });
    expect(proba.json.classes).toEqual(['class_0', 'class_1', 'class_2']);
    expect(proba.json.probabilities[0][0]).toBeGreaterThan(0.5);
    const explain = await post('wine', '/explain?top=2', { sample: first });
    expect(explain.status).toBe(200);
    expect(explain.json.predicted).toBe('class_0');
    expect(explain.json.contributions).toHaveLength(2);
    expect((await post('wine', '/explain?top=99', { sample: first })).status).toBe(422);
    const batch = await post('wine', '/batch', {
      items: [
        { id: 'a', sample: first },
        { id: 'b', sample: last },
      ],
      return_probabilities: true,
    });
    expect(batch.json.results.map((r: any) => [r.id, r.predicted])).toEqual([
      ['a', 'class_0'],
      ['b', 'class_2'],
    ]);
    expect(batch.json.results[0].probabilities).toHaveLength(3);
    // predict + predict_proba + explain + batch (2 calls) went to the same instance.
    expect(batch.json.model_calls).toBe(before + 5);
    expect((await get('wine', '/classes/2')).json).toEqual({ id: 2, name: 'class_2', support: 48 });
    expect((await get('wine', '/classes/3')).status).toBe(422);
  });

  test('grades: read, set, and the x-kea-access rules published in its own OpenAPI', async () => {
    expect((await get('grades', '/get_grades?student=alice&course=math')).json).toEqual({ student: 'alice', grades: [{ course: 'math', grade: 91 }] });
    const set = await post('grades', '/set_grades', { student: 'bob', course: 'math', grade: 72 });
    expect(set.json).toEqual({ student: 'bob', course: 'math', grade: 72, previous: 67 });
    expect((await post('grades', '/set_grades', { student: 'bob', course: 'math', grade: 101 })).status).toBe(422);
    const { schema } = await served('grades');
    const access = Object.fromEntries(schema.spec.operations!.map((o) => [o.path, o.access]));
    expect(access['/get_grades']).toEqual({ mode: 'restricted', roles: ['student', 'teacher'] });
    expect(access['/set_grades']).toEqual({ mode: 'restricted', roles: ['teacher'] });
  });

  test('plain-class: the diabetes regressor served by the convention', async () => {
    const row = [0.038, 0.05, 0.062, 0.022, -0.044, -0.035, -0.043, -0.003, 0.02, -0.018];
    const p = await post('plain-class', '/predict', { features: [row] });
    expect(p.status).toBe(200);
    expect(p.json).toHaveLength(1);
    expect(p.json[0]).toBeGreaterThan(100); // progression scores are ~25..346
    expect(p.json[0]).toBeLessThan(350);
    const e = await post('plain-class', '/explain', { features: row, top: 2 });
    expect(Object.keys(e.json)).toHaveLength(2);
    expect((await post('plain-class', '/predict', { features: [row.slice(0, 9)] })).status).toBe(422);
  });
});
