/**
 * Unit tests of decisions the IR makes (controller/ir) that render used to make, through the
 * real pure stages (graph → IR → render): the version history's `lastDiff` error reported,
 * the current document always the newest version, the ConfigMap size check, the backend list
 * built once, and render serialising a frozen IR without changing it.
 */
import type { KubernetesObject } from '@kubernetes/client-node';
import type { ApiSchema, ApiSchemaStatus, MLService } from '../../lib/api/types.js';
import { buildGraph, type GraphInput } from '../graph/index.js';
import { reconcile } from '../reconcile.js';
import { render } from '../render/index.js';
import { testControllerConfig } from '../testing/config.js';
import { MAX_CONFIGMAP_BYTES, buildIR } from './index.js';

const config = testControllerConfig();
const NOW = '2026-01-01T00:00:00Z';

const iris = (mode: 'enforce' | 'passthrough' = 'enforce', description = 'Predict'): ApiSchema => ({
  apiVersion: 'kea.dev/v1alpha1',
  kind: 'ApiSchema',
  metadata: { name: 'iris', namespace: 'models', uid: 'uid-api', generation: 1 },
  spec: {
    target: { mlService: { name: 'iris' } },
    basePath: '/iris',
    info: { title: 'Iris', version: '1.1.0' },
    policy: { mode },
    operations: [
      {
        operationId: 'predict',
        method: 'POST',
        path: '/predict',
        summary: 'Predict',
        description,
        requestBody: { required: true, schema: { type: 'object' } },
      },
    ],
  },
});

const mls: MLService = {
  apiVersion: 'kea.dev/v1alpha1',
  kind: 'MLService',
  metadata: { name: 'iris', namespace: 'models', uid: 'uid-mls', generation: 1 },
  spec: {
    framework: 'sklearn',
    revisions: [
      { name: 'v1', modelUri: 's3://m/iris/1', weight: 70 },
      { name: 'v2', modelUri: 's3://m/iris/2', weight: 30 },
    ],
  },
};

/** A version-history ConfigMap as KEA writes it, with any `openapi.json` text. */
function versionCm(name: string, version: string, digest: string, publishedAt: string, text: string): KubernetesObject {
  return {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: {
      name,
      namespace: config.systemNamespace,
      labels: {
        'kea.dev/managed-by': 'kea',
        'kea.dev/owner': 'ApiSchema.models.iris',
        'kea.dev/owner-kind': 'ApiSchema',
        'kea.dev/component': 'api-version',
        'kea.dev/api-version': version,
      },
      annotations: { 'kea.dev/api-schema': 'models/iris', 'kea.dev/version': version, 'kea.dev/digest': digest, 'kea.dev/published-at': publishedAt },
    },
    data: { 'openapi.json': text },
  } as KubernetesObject;
}

const snapshot = (apiSchemas: ApiSchema[], publishedVersions: KubernetesObject[] = []): GraphInput => ({
  apiSchemas,
  mlServices: [structuredClone(mls)],
  services: [],
  referenceGrants: [],
  publishedVersions,
});
const versionMaps = (objects: KubernetesObject[]) => objects.filter((o) => o.metadata?.labels?.['kea.dev/component'] === 'api-version');
const apiStatus = (out: ReturnType<typeof reconcile>) => out.statuses.find((s) => s.kind === 'ApiSchema')!.status as ApiSchemaStatus;

describe('version history (ir/history.ts)', () => {
  it('reports two versions that cannot be compared as a Warning Event instead of dropping lastDiff silently', () => {
    const hand = versionCm('iris-by-hand', '1.0.0', 'f'.repeat(64), '2025-06-01T00:00:00Z', 'not json');
    const out = reconcile(snapshot([iris()], [hand]), config, NOW);
    expect(apiStatus(out).versions?.map((v) => v.version)).toEqual(['1.1.0', '1.0.0']);
    expect(apiStatus(out).lastDiff).toBeUndefined();
    const ev = out.events.filter((e) => e.reason === 'VersionDiffFailed');
    expect(ev).toHaveLength(1);
    expect(ev[0]).toMatchObject({ type: 'Warning', regarding: { kind: 'ApiSchema', namespace: 'models', name: 'iris' } });
    expect(ev[0].message).toMatch(
      /^status\.lastDiff is not recorded: version 1\.1\.0 \(ConfigMap kea-system\/kea-apiver-models-iris-[0-9a-f-]+\) cannot be compared with version 1\.0\.0 \(ConfigMap kea-system\/iris-by-hand\): .*not valid JSON/,
    );
  });

  it('publishes the current document as the newest version even when a published one is dated later, so the next run writes nothing', () => {
    const future = versionCm(
      'iris-by-hand',
      '1.0.0',
      'f'.repeat(64),
      '2026-06-01T00:00:00Z',
      JSON.stringify({ openapi: '3.0.3', info: { title: 'Iris', version: '1.0.0' }, paths: {} }),
    );
    const first = reconcile(snapshot([iris()], [future]), config, NOW);
    const published = versionMaps(first.objects);
    expect(published).toHaveLength(1);
    expect(published[0].metadata?.annotations?.['kea.dev/published-at']).toBe('2026-06-01T00:00:00Z');
    expect(apiStatus(first).versions?.map((v) => v.version)).toEqual(['1.1.0', '1.0.0']);
    // The next run, with that ConfigMap live: nothing to publish or republish, same history.
    const second = reconcile(snapshot([iris()], [future, ...published]), config, NOW);
    expect(versionMaps(second.objects)).toEqual([]);
    expect(apiStatus(second).versions).toEqual(apiStatus(first).versions);
  });
});

describe('decisions render used to make', () => {
  it('the ConfigMap size check: an ApiSchema whose policy.json and openapi.json exceed the limit is not programmed, with an Event', () => {
    const big = iris('enforce', 'x'.repeat(MAX_CONFIGMAP_BYTES));
    const ir = buildIR(buildGraph(snapshot([big]), config), config, NOW);
    const a = ir.apiSchemas[0];
    expect(a.program).toBeUndefined();
    expect(a.conditions.find((c) => c.type === 'Programmed')).toMatchObject({ status: 'False', reason: 'RenderFailed' });
    expect(a.conditions.find((c) => c.type === 'Programmed')?.message).toMatch(
      /^nothing is routed: its policy\.json and openapi\.json take \d+ bytes, over the ConfigMap limit of 1000000$/,
    );
    expect(a.events.map((e) => e.reason)).toEqual(['RenderFailed']);
    expect(a.history.kept).toEqual([]);
    const out = render(ir, config, NOW);
    expect(out.objects.filter((o) => o.metadata?.labels?.['kea.dev/owner'] === 'ApiSchema.models.iris')).toEqual([]);
    expect(apiStatus(out).docsUrl).toBeUndefined();
  });

  it("builds an MLService's backend list once: the passthrough route of its ApiSchema takes that very list", () => {
    const ir = buildIR(buildGraph(snapshot([iris('passthrough')]), config), config, NOW);
    const m = ir.mlServices[0];
    expect(m.backends.map((b) => [b.name, b.weight])).toEqual([
      ['iris-v1', 70],
      ['iris-v2', 30],
    ]);
    expect(ir.apiSchemas[0].program?.passthrough?.backends).toBe(m.backends);
  });

  it('render only serialises: a deeply frozen IR renders to exactly what reconcile gives', () => {
    const deepFreeze = <T>(v: T): T => {
      if (v && typeof v === 'object' && !Object.isFrozen(v)) {
        Object.freeze(v);
        for (const x of Object.values(v)) deepFreeze(x);
      }
      return v;
    };
    for (const mode of ['enforce', 'passthrough'] as const) {
      const s = snapshot([iris(mode)]);
      const ir = deepFreeze(buildIR(buildGraph(s, config), config, NOW));
      expect(render(ir, config, NOW)).toEqual(reconcile(s, config, NOW));
    }
  });
});
