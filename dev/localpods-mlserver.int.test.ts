/**
 * The predefined `sklearn` runtime runs locally (issue 14, part 1): the Deployment and Service
 * that `reconcile()` renders for examples/iris-sklearn/kea.yaml (`framework: sklearn`,
 * `modelUri: file:///models/iris-sklearn/v1/model.joblib`, no image, no server code) are applied
 * to a real kube-apiserver; dev/localpods.ts runs them as a real MLServer 1.7.1 process
 * (mlserver-sklearn) in a network namespace, serving the joblib file scripts/setup.sh trained
 * into $KEA_CACHE. The pod becomes ready on OIP v2 `/v2/health/ready`, the Service gets an
 * EndpointSlice with it, the Deployment's status says available, and a real OIP v2 inference
 * request answers the model's predictions, in the shape the ApiSchema's derived operation
 * declares (checked with the same generated OpenAPI document the docs serve).
 *
 * Needs root (ip netns), the MLServer venv and the trained model (scripts/setup.sh);
 * KUBECONFIG comes from the integration project's global setup (test/global-setup.mjs).
 */
import { existsSync, readFileSync } from 'node:fs';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AppsV1Api, KubeConfig, KubernetesObjectApi, PatchStrategy, type KubernetesObject } from '@kubernetes/client-node';
import YAML from 'yaml';
import { Ajv } from 'ajv';
import type { ApiSchema, MLService } from '../lib/api/types.js';
import { generateOpenApi } from '../lib/openapi/generate.js';
import { oas30ToJsonSchema } from '../lib/openapi/jsonschema.js';
import { reconcile } from '../controller/reconcile.js';
import { testControllerConfig } from '../controller/testing/config.js';
import { KEA_CACHE, REPO_ROOT } from './controlplane.js';
import { createBridge, deleteBridge, type Bridge } from './netns.js';
import { startLocalPods, type LocalPods } from './localpods.js';

const mlserver = join(KEA_CACHE, 'venv-mlserver', 'bin', 'mlserver');
const model = join(KEA_CACHE, 'models', 'iris-sklearn', 'v1', 'model.joblib');
const maybe = existsSync(mlserver) && existsSync(model) ? describe : describe.skip;

const NS = `lp-mlserver-${Math.random().toString(36).slice(2, 7)}`;
const FM = 'kea-localpods-mlserver-test';

/** examples/iris-sklearn/kea.yaml as the controller sees it in namespace {@link NS}. */
function example(): { mls: MLService; api: ApiSchema } {
  const docs = YAML.parseAllDocuments(readFileSync(join(REPO_ROOT, 'examples', 'iris-sklearn', 'kea.yaml'), 'utf8')).map((d) => d.toJS() as KubernetesObject);
  const meta = (o: KubernetesObject, uid: string) => ({ ...o.metadata, namespace: NS, uid, generation: 1, creationTimestamp: '2026-01-01T00:00:00Z' });
  const mls = docs.find((d) => d.kind === 'MLService')!;
  const api = docs.find((d) => d.kind === 'ApiSchema')!;
  return {
    mls: { ...mls, metadata: meta(mls, 'uid-mls') } as unknown as MLService,
    api: { ...api, metadata: meta(api, 'uid-api') } as unknown as ApiSchema,
  };
}

maybe('framework sklearn runs locally as MLServer (real process, real model file)', () => {
  let kc: KubeConfig;
  let objects: KubernetesObjectApi;
  let bridge: Bridge;
  let pods: LocalPods;
  let api: ApiSchema;
  const logDir = mkdtempSync(join(tmpdir(), 'kea-lp-mlserver-'));

  beforeAll(async () => {
    kc = new KubeConfig();
    kc.loadFromFile(process.env.KUBECONFIG!);
    objects = KubernetesObjectApi.makeApiClient(kc);
    const ex = example();
    api = ex.api;
    const out = reconcile({ apiSchemas: [ex.api], mlServices: [ex.mls], services: [], referenceGrants: [], publishedVersions: [] }, testControllerConfig());
    const rendered = out.objects.filter((o) => (o.kind === 'Deployment' || o.kind === 'Service') && o.metadata?.namespace === NS);
    expect(rendered.map((o) => `${o.kind}/${o.metadata!.name}`).sort()).toEqual(['Deployment/iris-sklearn-v1', 'Service/iris-sklearn-v1']);
    await objects.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } });
    for (const o of rendered) {
      // No MLService exists in this API server: drop the owner reference (nothing else changes).
      const body = { ...o, metadata: { ...o.metadata, ownerReferences: undefined } };
      await objects.patch(body, undefined, undefined, FM, true, PatchStrategy.ServerSideApply);
    }
    bridge = await createBridge();
    // Only this test's namespace: the integration API server is shared with other tests' Deployments.
    pods = await startLocalPods({ kubeconfig: process.env.KUBECONFIG!, bridge, logDir, namespaces: [NS], pollMs: 500 });
  }, 60_000);

  afterAll(async () => {
    await pods?.stop();
    if (bridge) await deleteBridge(bridge);
    await objects?.delete({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } }).catch(() => undefined);
  }, 60_000);

  test('ready on /v2/health/ready, in an EndpointSlice, Deployment available; real predictions', async () => {
    const key = `${NS}/iris-sklearn-v1`;
    const pod = pods.pods().get(key);
    expect(pod?.runtime).toEqual({ framework: 'sklearn', model: 'iris-sklearn', modelPath: '/models/iris-sklearn/v1/model.joblib' });
    await pods.waitReady(60_000);
    await pods.syncOnce();
    const base = `http://${pod!.host.address}:${pod!.port}`;

    // EndpointSlice of the revision Service lists the ready pod; the Deployment reports it.
    const slice = (await objects.read({
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: { name: 'iris-sklearn-v1-kea', namespace: NS },
    })) as unknown as {
      endpoints: Array<{ addresses: string[]; conditions: { ready: boolean } }>;
    };
    expect(slice.endpoints).toEqual([{ addresses: [pod!.host.address], conditions: { ready: true, serving: true, terminating: false } }]);
    const dep = await kc.makeApiClient(AppsV1Api).readNamespacedDeploymentStatus({ name: 'iris-sklearn-v1', namespace: NS });
    expect(dep.status?.availableReplicas).toBe(1);

    // OIP v2 server metadata and model readiness: it is MLServer.
    const server = (await (await fetch(`${base}/v2`)).json()) as { name: string; version: string };
    expect(server).toMatchObject({ name: 'mlserver', version: '1.7.1' });
    expect((await fetch(`${base}/v2/models/iris-sklearn/ready`)).status).toBe(200);

    // A real prediction, validated against the response schema KEA derived from the ApiSchema.
    const doc = generateOpenApi(api, { gatewayUrl: 'http://gw.test' });
    const infer = doc.paths['/v2/models/iris-sklearn/infer'].post!;
    const ajv = new Ajv({ strict: false, allErrors: true, validateFormats: false });
    const schemaOf = (o: unknown) => oas30ToJsonSchema((o as { content: Record<string, { schema: unknown }> }).content['application/json'].schema) as object;
    const reqOk = ajv.compile(schemaOf(infer.requestBody));
    const respOk = ajv.compile(schemaOf(infer.responses['200']));
    const body = {
      inputs: [
        {
          name: 'input-0',
          shape: [3, 4],
          datatype: 'FP64',
          data: [
            [5.1, 3.5, 1.4, 0.2],
            [6.0, 2.9, 4.5, 1.5],
            [6.7, 3.0, 5.2, 2.3],
          ],
        },
      ],
    };
    expect(reqOk(body)).toBe(true);
    const r = await fetch(`${base}/v2/models/iris-sklearn/infer`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    expect(r.status).toBe(200);
    const out = (await r.json()) as { model_name: string; outputs: Array<{ name: string; datatype: string; shape: number[]; data: number[] }> };
    expect(respOk(out)).toBe(true);
    expect(out.model_name).toBe('iris-sklearn');
    expect(out.outputs).toEqual([expect.objectContaining({ name: 'predict', datatype: 'INT64', shape: [3, 1], data: [0, 1, 2] })]);

    // The wrong shape (3 features): the derived request schema refuses it (the policy server
    // answers 400 with it); MLServer itself fails with a 500 traceback.
    const wrong = { inputs: [{ name: 'input-0', shape: [1, 3], datatype: 'FP64', data: [[5.1, 3.5, 1.4]] }] };
    expect(reqOk(wrong)).toBe(false);
    const bad = await fetch(`${base}/v2/models/iris-sklearn/infer`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(wrong),
    });
    expect(bad.status).toBeGreaterThanOrEqual(400);
    await bad.arrayBuffer();
  }, 120_000);
});
