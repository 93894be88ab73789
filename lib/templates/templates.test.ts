import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Ajv } from 'ajv';
import YAML from 'yaml';
import type { ApiSchema, MLService } from '../api/types.js';
import { generateOpenApi } from '../openapi/generate.js';
import { requestValidator, validateOpenApi } from '../openapi/testdata/validate.js';
import { FRAMEWORKS, parseTensorArg, renderInitTemplates } from './index.js';

/** The structural (OpenAPI v3) schema of a CRD's served version, for an admission-like check without CEL. */
function crdValidator(file: string) {
  const crd = YAML.parse(readFileSync(join(process.cwd(), 'manifests/crds', file), 'utf8'));
  const schema = crd.spec.versions.find((v: { served: boolean }) => v.served).schema.openAPIV3Schema;
  const v = new Ajv({ strict: false, allErrors: true, validateFormats: false, logger: false }).compile(schema);
  return (obj: unknown) => (v(obj) ? [] : v.errors!.map((e) => `${e.instancePath} ${e.message}`));
}
const mlsValid = crdValidator('kea.dev_mlservices.yaml');
const apiValid = crdValidator('kea.dev_apischemas.yaml');

describe('kea init templates', () => {
  test.each(FRAMEWORKS)('%s: YAML parses back to the objects, fits the CRD schemas, and yields a valid OpenAPI document', async (framework) => {
    const r = renderInitTemplates({ framework, name: 'demo', namespace: 'ml' });
    expect(r.files.map((f) => f.name)).toEqual(['demo-mlservice.yaml', 'demo-apischema.yaml']);
    const mls = YAML.parse(r.files[0].content) as MLService;
    const apis = YAML.parse(r.files[1].content) as ApiSchema;
    expect(mls).toEqual(r.mlService);
    expect(apis).toEqual(r.apiSchema);
    expect(r.files[1].content.startsWith('# ApiSchema demo')).toBe(true);
    expect(mlsValid(mls)).toEqual([]);
    expect(apiValid(apis)).toEqual([]);
    expect(mls.spec.revisions.reduce((n, x) => n + x.weight, 0)).toBe(100);
    const doc = generateOpenApi(apis, { gatewayUrl: 'http://gw.test', issuerUrl: 'http://idp.test' });
    expect(await validateOpenApi(doc)).toEqual([]);
    if (framework === 'custom') {
      expect(apis.spec.inference).toBeUndefined();
      expect(mls.spec.revisions[0].image).toBe('registry.example.com/demo:v1');
    } else {
      expect(apis.spec.inference).toBeDefined();
      expect(mls.spec.revisions[0].modelUri).toBe('pvc://models/demo/v1');
    }
  });

  test('sklearn with --input petal:FP32:-1,4: the docs show an array of arrays of 4 numbers named petal', async () => {
    const r = renderInitTemplates({
      framework: 'sklearn',
      name: 'iris',
      inputs: [parseTensorArg('petal:fp32:-1,4')],
      outputs: [parseTensorArg('label:INT64:-1')],
    });
    expect(r.apiSchema.spec.inference).toEqual({
      protocol: 'v2',
      modelName: 'iris',
      inputs: [{ name: 'petal', datatype: 'FP32', shape: [-1, 4] }],
      outputs: [{ name: 'label', datatype: 'INT64', shape: [-1] }],
    });
    const doc = generateOpenApi(YAML.parse(r.files[1].content), { gatewayUrl: 'http://gw.test' });
    const ok = await requestValidator(doc, 'post', '/v2/models/iris/infer');
    expect(ok({ inputs: [{ name: 'petal', shape: [1, 4], datatype: 'FP32', data: [[1, 2, 3, 4]] }] })).toBe(true);
    expect(ok({ inputs: [{ name: 'petal', shape: [1, 5], datatype: 'FP32', data: [[1, 2, 3, 4, 5]] }] })).toBe(false);
  });

  test('tensorflow defaults to TF Serving; --protocol v2 overrides', () => {
    const tf = generateOpenApi(renderInitTemplates({ framework: 'tensorflow', name: 'mnist' }).apiSchema, { gatewayUrl: 'http://gw' });
    expect(Object.keys(tf.paths)).toContain('/v1/models/mnist:predict');
    const v2 = generateOpenApi(renderInitTemplates({ framework: 'tensorflow', name: 'mnist', protocol: 'v2' }).apiSchema, { gatewayUrl: 'http://gw' });
    expect(Object.keys(v2.paths)).toContain('/v2/models/mnist/infer');
  });

  test('parseTensorArg accepts name:DATATYPE:dims and rejects bad input with the expected form', () => {
    expect(parseTensorArg('input-0:FP32:-1,4')).toEqual({ name: 'input-0', datatype: 'FP32', shape: [-1, 4] });
    expect(parseTensorArg('x:bool:[2, 3]')).toEqual({ name: 'x', datatype: 'BOOL', shape: [2, 3] });
    expect(parseTensorArg('s:BYTES:')).toEqual({ name: 's', datatype: 'BYTES', shape: [] });
    expect(() => parseTensorArg('x:FLOAT32:-1')).toThrow('bad tensor "x:FLOAT32:-1": unknown datatype FLOAT32');
    expect(() => parseTensorArg('x:FP32:-1,a')).toThrow(/bad tensor "x:FP32:-1,a": shape of "x" must be integers ≥ -1.*expected name:DATATYPE:dims/);
    expect(() => parseTensorArg('justaname')).toThrow(/expected name:DATATYPE:dims, e.g. input-0:FP32:-1,4/);
  });

  test('bad names and tensor options for custom are rejected', () => {
    expect(() => renderInitTemplates({ framework: 'sklearn', name: 'My_Model' })).toThrow(/bad name "My_Model": must be a DNS-1035 label/);
    expect(() => renderInitTemplates({ framework: 'custom', inputs: [parseTensorArg('x:FP32:-1')] })).toThrow(/apply to predefined runtimes/);
  });

  test('deterministic output', () => {
    expect(renderInitTemplates({ framework: 'onnx', name: 'a' })).toEqual(renderInitTemplates({ framework: 'onnx', name: 'a' }));
  });
});
