/**
 * OIP v2 model metadata → inference signature → typed operations, with a golden file:
 * testdata/oip/iris-sklearn.metadata.json is what MLServer 1.7.1 + mlserver-sklearn answers on
 * `GET /v2/models/iris-sklearn` for examples/iris-sklearn's v1 model when its model-settings.json
 * declares the tensors; testdata/oip/iris-sklearn.operations.json are the operations KEA derives
 * from it (`UPDATE_GOLDEN=1` rewrites it). The example's declared signature must be that one.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from '@jest/globals';
import YAML from 'yaml';
import type { ApiSchema } from '../api/types.js';
import { inferenceOperations } from './inference.js';
import { signatureFromModelMetadata } from './oip-metadata.js';

const DIR = join('lib', 'openapi', 'testdata', 'oip');
const metadata = JSON.parse(readFileSync(join(DIR, 'iris-sklearn.metadata.json'), 'utf8')) as unknown;

describe('signatureFromModelMetadata', () => {
  test('MLServer metadata of the iris model → the signature examples/iris-sklearn declares', () => {
    const sig = signatureFromModelMetadata(metadata);
    expect(sig).toEqual({
      protocol: 'v2',
      modelName: 'iris-sklearn',
      inputs: [{ name: 'input-0', datatype: 'FP64', shape: [-1, 4] }],
      outputs: [{ name: 'predict', datatype: 'INT64', shape: [-1, 1] }],
    });
    const docs = YAML.parseAllDocuments(readFileSync(join('examples', 'iris-sklearn', 'kea.yaml'), 'utf8')).map((d) => d.toJS() as { kind: string });
    const api = docs.find((d) => d.kind === 'ApiSchema') as unknown as ApiSchema;
    const strip = (ts: Array<{ name: string; datatype: string; shape: number[] }>) => ts.map(({ name, datatype, shape }) => ({ name, datatype, shape }));
    expect({ inputs: strip(api.spec.inference!.inputs), outputs: strip(api.spec.inference!.outputs) }).toEqual({ inputs: sig.inputs, outputs: sig.outputs });
  });

  test('golden: the typed operations derived from it', () => {
    const ops = inferenceOperations(
      { target: {}, basePath: '/iris-sklearn', info: { title: 't', version: 'v1' }, inference: signatureFromModelMetadata(metadata) },
      'unused',
    );
    const text = JSON.stringify(ops, null, 2) + '\n';
    const golden = join(DIR, 'iris-sklearn.operations.json');
    if (process.env.UPDATE_GOLDEN === '1' || !existsSync(golden)) {
      writeFileSync(golden, text);
      if (process.env.UPDATE_GOLDEN !== '1') throw new Error(`${golden} did not exist; written, review it and re-run`);
    }
    expect(text).toBe(readFileSync(golden, 'utf8'));
    expect(ops.map((o) => `${o.method} ${o.path}`)).toEqual([
      'POST /v2/models/iris-sklearn/infer',
      'GET /v2/models/iris-sklearn',
      'GET /v2/models/iris-sklearn/ready',
    ]);
  });

  test.each([
    [{ name: 'm', platform: '', inputs: [], outputs: [] }, /declares no inputs.*spec\.inference/],
    [{ name: 'm', platform: '', inputs: [{ name: 'x', datatype: 'FP32', shape: [-1] }], outputs: [] }, /declares no outputs/],
    [
      { name: 'm', inputs: [{ name: 'x', datatype: 'FLOAT', shape: [1] }], outputs: [{ name: 'y', datatype: 'FP32', shape: [1] }] },
      /inputs\[0\]|unknown tensor datatype "FLOAT"/,
    ],
    [
      { name: 'm', inputs: [{ name: 'x', datatype: 'FP32', shape: [-2] }], outputs: [{ name: 'y', datatype: 'FP32', shape: [1] }] },
      /inputs\[0\]: shape of "x"/,
    ],
    [{ name: 'm', inputs: [{ name: 'x', datatype: 'FP32', shape: ['a'] }], outputs: [] }, /not OIP v2 model metadata: \/inputs\/0\/shape\/0 must be integer/],
    [{ error: 'Model m not found' }, /not OIP v2 model metadata: \/ must have required property 'name'/],
  ])('refuses %j', (meta, message) => {
    expect(() => signatureFromModelMetadata(meta)).toThrow(message);
  });
});
