/**
 * `kea init` output is admitted by the real kube-apiserver (test/global-setup.ts installs the
 * KEA CRDs, so the structural schema *and* the CEL rules run). Server-side dry run: nothing is
 * persisted. A tensor name the CRD forbids is rejected there too, proving the check can fail.
 */
import { ApiException, KubeConfig, KubernetesObjectApi, type KubernetesObject } from '@kubernetes/client-node';
import YAML from 'yaml';
import { FRAMEWORKS, renderInitTemplates } from './index.js';

const NS = `kea-init-${Date.now().toString(36)}`;
let client: KubernetesObjectApi;

beforeAll(async () => {
  const kc = new KubeConfig();
  kc.loadFromFile(process.env.KUBECONFIG!);
  client = KubernetesObjectApi.makeApiClient(kc);
  await client.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } });
});

test.each(FRAMEWORKS)('%s templates are admitted (schema + CEL)', async (framework) => {
  const r = renderInitTemplates({ framework, name: `demo-${framework}`, namespace: NS });
  for (const f of r.files) {
    const obj = YAML.parse(f.content) as KubernetesObject;
    const created = await client.create(obj, undefined, 'All');
    expect(created.metadata?.name).toBe(`demo-${framework}`);
    expect((created as unknown as { spec: unknown }).spec).toEqual((obj as unknown as { spec: unknown }).spec);
  }
});

test('with custom tensors and protocol, and the API server still rejects what the CRD forbids', async () => {
  const r = renderInitTemplates({
    framework: 'onnx',
    name: 'multi',
    namespace: NS,
    protocol: 'tfserving',
    inputs: [
      { name: 'a', datatype: 'INT8', shape: [-1, 2] },
      { name: 'b', datatype: 'BYTES', shape: [-1] },
    ],
    outputs: [{ name: 'y', datatype: 'FP64', shape: [-1, 3] }],
  });
  await client.create(YAML.parse(r.files[1].content), undefined, 'All');
  const bad = YAML.parse(r.files[1].content);
  bad.spec.inference.inputs.push({ ...bad.spec.inference.inputs[0] }); // duplicate tensor name
  const err = await client.create(bad, undefined, 'All').then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ApiException);
  expect(String((err as ApiException<unknown>).body)).toContain('input tensor names must be unique');
});
