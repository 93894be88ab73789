/**
 * The examples' kea.yaml files stay true to their sources: the inline operations of each
 * ApiSchema must be what `kea scan` derives from the service's code today (same operations,
 * parameters, bodies and responses; hand-added access, cache, timeout and body limits are
 * allowed on top), and the grades ApiSchema must have no operations but an OpenAPI source.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, test } from '@jest/globals';
import { parseAllDocuments } from 'yaml';
import type { ApiSchema, MLService } from '../api/types.js';
import { diffApiSchemas } from './compare.js';
import { EXAMPLES } from './examples.js';
import { scanPython } from './index.js';

function docs(dir: string): Array<Record<string, unknown>> {
  return parseAllDocuments(readFileSync(`examples/${dir}/kea.yaml`, 'utf8')).map((d) => {
    expect(d.errors).toEqual([]);
    return d.toJS() as Record<string, unknown>;
  });
}

describe('examples/*/kea.yaml', () => {
  test.each(EXAMPLES.filter((e) => e.dir !== 'grades').map((e) => [e.dir, e] as const))('%s: operations match `kea scan` of the source', async (dir, ex) => {
    const all = docs(dir);
    const api = all.find((d) => d.kind === 'ApiSchema') as unknown as ApiSchema;
    const mls = all.find((d) => d.kind === 'MLService') as unknown as MLService;
    expect(api.spec.target).toEqual({ mlService: { name: mls.metadata.name } });
    expect(mls.spec.revisions.reduce((s, r) => s + r.weight, 0)).toBe(100);
    const scanned = await scanPython(ex.scanPath, { name: api.metadata.name });
    expect(diffApiSchemas(scanned.schema, api, ['source', 'kea.yaml'])).toEqual([]);
    // Descriptions and summaries come from the docstrings too.
    expect(api.spec.operations!.map((o) => [o.operationId, o.summary, o.description])).toEqual(
      scanned.schema.spec.operations!.map((o) => [o.operationId, o.summary, o.description]),
    );
  });

  test('plain-class: the whole folder with --convention plain-class gives what model.py gives', async () => {
    const folder = await scanPython('examples/plain-class', { name: 'diabetes', convention: 'plain-class' });
    const file = await scanPython('examples/plain-class/model.py', { name: 'diabetes' });
    expect(folder.schema).toEqual(file.schema);
  });

  test('iris v2 is a canary of v1 at 80/20 that allows its breaking change', () => {
    const mls = docs('iris-v2').find((d) => d.kind === 'MLService') as unknown as MLService;
    expect(mls.metadata.name).toBe('iris');
    expect(mls.spec.revisions.map((r) => [r.name, r.weight])).toEqual([
      ['v1', 80],
      ['v2', 20],
    ]);
    expect(mls.spec.allowBreakingChanges).toBe(true);
    const v1 = docs('iris-v1').find((d) => d.kind === 'ApiSchema') as unknown as ApiSchema;
    const v2 = docs('iris-v2').find((d) => d.kind === 'ApiSchema') as unknown as ApiSchema;
    expect([v1.metadata.name, v1.spec.info.version, v2.metadata.name, v2.spec.info.version]).toEqual(['iris', 'v1', 'iris', 'v2']);
    // The API change of the story, as the comparison sees it.
    expect(diffApiSchemas(v1, v2, ['v1', 'v2'])).toEqual([
      'GET /model: only in v2',
      'POST /predict: response.schema.description: v1="Predicted species, one per input row." v2="Predicted species and class probabilities, one entry per input row."',
      'POST /predict: response.schema.properties.classes: v1={"type":"array","items":{"type":"string"},"description":"setosa, versicolor or virginica"} v2=undefined',
      'POST /predict: response.schema.properties.labels: v1=undefined v2={"type":"array","items":{"type":"string"},"description":"setosa, versicolor or virginica"}',
      'POST /predict: response.schema.properties.probabilities: v1=undefined v2={"type":"array","items":{"type":"array","items":{"type":"number"}},"description":"per row, the probability of each class in the order of GET /model classes"}',
      'POST /predict: response.schema.required: v1=["classes"] v2=["labels","probabilities"]',
    ]);
  });

  test('grades: a hand-written Service target with no inline operations, documented from its own /openapi.json', () => {
    const all = docs('grades');
    const api = all.find((d) => d.kind === 'ApiSchema') as unknown as ApiSchema;
    const svc = all.find((d) => d.kind === 'Service') as { spec: { ports: Array<{ port: number }> } };
    expect(api.spec.operations).toBeUndefined();
    expect(api.spec.target).toEqual({ service: { name: 'grades', port: svc.spec.ports[0].port } });
    expect(api.spec.source).toEqual({ openapi: { path: '/openapi.json', refresh: true, intervalSeconds: 60 } });
  });
});
