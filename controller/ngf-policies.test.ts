/**
 * Issue 11, controller side: readiness gating of weights (ir/index.ts `gateWeights`) and
 * nginx-gateway-fabric's policies (render/index.ts: ClientSettingsPolicy on the Gateway,
 * UpstreamSettingsPolicy for the policy server and the revision Services), through the pure
 * stages graph → IR → render. Golden form: controller/testdata/ngf-policies.*.yaml.
 */
import type { KubernetesObject } from '@kubernetes/client-node';
import type { ApiSchema, MLService, MLServiceStatus } from '../lib/api/types.js';
import { loadConfig } from './config.js';
import { internalRouteName } from './graph/names.js';
import { IncrementalReconciler } from './incremental.js';
import { type GatedRevision, gateWeights } from './ir/index.js';
import type { ClusterSnapshot } from './model.js';
import { reconcile } from './reconcile.js';
import { CLIENT_SETTINGS_NAME } from './render/index.js';
import { gatewayBodyMaxSize } from '../lib/policy/config.js';
import { testControllerConfig } from './testing/config.js';

const NOW = '2026-01-01T00:00:00Z';
const MIB = 1024 * 1024;
/** NGF 1.6.2 Size pattern (config/crd/bases/gateway.nginx.org_clientsettingspolicies.yaml). */
const NGF_SIZE = /^\d{1,4}(k|m|g)?$/;

function rev(name: string, weight: number, replicas = 1): GatedRevision {
  return { name, objectName: `m-${name}`, weight, replicas };
}

/** Available replicas by Deployment name `m-<revision>`: a listed revision's Deployment exists (undefined: no status yet). */
function deployments(available: Record<string, number | undefined>): (objectName: string) => number | undefined {
  return (objectName) => {
    const name = objectName.slice('m-'.length);
    return Object.hasOwn(available, name) ? (available[name] ?? 0) : undefined;
  };
}

/** gateWeights, checked not to modify its input; the gated weights by revision name and the held revisions. */
function gate(rs: GatedRevision[], available: ((objectName: string) => number | undefined) | undefined) {
  const before = rs.map((r) => r.weight);
  const { weights, held } = gateWeights(rs, available);
  expect(rs.map((r) => r.weight)).toEqual(before);
  return { weights: Object.fromEntries(rs.map((r, i) => [r.name, weights[i]])), held, sum: weights.reduce((s, w) => s + w, 0) };
}

describe('readiness gating of revision weights (gateWeights)', () => {
  it('moves the share of a revision without an available replica to the available ones', () => {
    const g = gate([rev('v1', 80), rev('v2', 20)], deployments({ v1: 1, v2: 0 }));
    expect(g.weights).toEqual({ v1: 100, v2: 0 });
    expect(g.held).toEqual([{ revision: 'v2', weight: 20 }]);
  });

  it('holds back a revision whose Deployment does not exist yet or has replicas 0', () => {
    const g = gate([rev('v1', 60), rev('v2', 20), rev('v3', 20, 0)], deployments({ v1: 2, v3: 1 }));
    expect(g.weights).toEqual({ v1: 100, v2: 0, v3: 0 });
    expect(g.held.map((h) => h.revision)).toEqual(['v2', 'v3']);
  });

  it('splits the moved share in proportion, largest remainder, ties to the earlier revision; the sum stays 100', () => {
    // 20 × 50/80 = 12.5, 20 × 30/80 = 7.5: both remainders .5, the tie goes to a.
    expect(gate([rev('a', 50), rev('b', 30), rev('c', 20)], deployments({ a: 1, b: 1, c: 0 })).weights).toEqual({ a: 63, b: 37, c: 0 });
    const g = gate([rev('a', 33), rev('b', 33), rev('c', 34)], deployments({ a: 1, b: 1 }));
    expect(g.weights).toEqual({ a: 50, b: 50, c: 0 });
    expect(g.sum).toBe(100);
  });

  it('keeps the configured weights when every serving revision is available, when none is, and when Deployments were not observed', () => {
    for (const [avail, label] of [
      [{ v1: 1, v2: 3 }, 'all'],
      [{ v1: 0, v2: undefined }, 'none'],
    ] as const) {
      const g = gate([rev('v1', 70), rev('v2', 30)], deployments(avail));
      expect([label, g.held]).toEqual([label, []]);
      expect(g.weights).toEqual({ v1: 70, v2: 30 });
    }
    const g = gate([rev('v1', 70), rev('v2', 30)], undefined);
    expect(g.held).toEqual([]);
    expect(g.weights).toEqual({ v1: 70, v2: 30 });
  });

  it('never gives weight to a revision configured with weight 0, available or not', () => {
    expect(gate([rev('v1', 90), rev('v2', 10), rev('v3', 0)], deployments({ v1: 0, v2: 1, v3: 1 })).weights).toEqual({ v1: 0, v2: 100, v3: 0 });
  });
});

/* ------------------------------------------------------------ through the pipeline */

const mls: MLService = {
  apiVersion: 'kea.dev/v1alpha1',
  kind: 'MLService',
  metadata: { name: 'iris', namespace: 'models', uid: 'u1', generation: 1, resourceVersion: '10' },
  spec: {
    framework: 'sklearn',
    revisions: [
      { name: 'v1', modelUri: 's3://m/iris/1', weight: 80 },
      { name: 'v2', modelUri: 's3://m/iris/2', weight: 20 },
    ],
  },
};

function api(mode: 'enforce' | 'passthrough', maxBodyBytes?: number): ApiSchema {
  return {
    apiVersion: 'kea.dev/v1alpha1',
    kind: 'ApiSchema',
    metadata: { name: 'iris', namespace: 'models', uid: 'u2', generation: 1, resourceVersion: '11' },
    spec: {
      target: { mlService: { name: 'iris' } },
      basePath: '/iris',
      info: { title: 'Iris', version: '1.0.0' },
      policy: { mode },
      operations: [
        { operationId: 'predict', method: 'POST', path: '/predict', ...(maxBodyBytes ? { maxBodyBytes } : {}), requestBody: { schema: { type: 'object' } } },
      ],
    },
  };
}

function snapshot(a: ApiSchema, avail: Record<string, number>): ClusterSnapshot {
  return {
    apiSchemas: [a],
    mlServices: [mls],
    services: [],
    referenceGrants: [],
    publishedVersions: [],
    deployments: Object.entries(avail).map(
      ([r, n]) =>
        ({
          apiVersion: 'apps/v1',
          kind: 'Deployment',
          metadata: { name: `iris-${r}`, namespace: 'models', resourceVersion: String(n + 1) },
          status: { availableReplicas: n },
        }) as KubernetesObject,
    ),
  };
}

const find = (objs: KubernetesObject[], kind: string, name: string) =>
  objs.find((o) => o.kind === kind && o.metadata?.name === name) as (KubernetesObject & { spec: Record<string, unknown> }) | undefined;
type Rule = { backendRefs: Array<{ name: string; weight: number }> };
const backendWeights = (o: { spec: Record<string, unknown> } | undefined) =>
  Object.fromEntries((o!.spec.rules as Rule[])[0].backendRefs.map((b) => [b.name, b.weight]));

describe('readiness gating through graph → IR → render', () => {
  it('the internal route, a passthrough route and the MLService status route nothing to a revision until its Deployment is available', () => {
    const cfg = testControllerConfig();
    const starting = reconcile(snapshot(api('passthrough'), { v1: 1, v2: 0 }), cfg, NOW);
    expect(backendWeights(find(starting.objects, 'HTTPRoute', internalRouteName('iris.models.kea.internal')))).toEqual({ 'iris-v1': 100, 'iris-v2': 0 });
    expect(backendWeights(find(starting.objects, 'HTTPRoute', 'kea-api-iris'))).toEqual({ 'iris-v1': 100, 'iris-v2': 0 });
    const st = starting.statuses.find((s) => s.kind === 'MLService')!.status as MLServiceStatus;
    expect(st.trafficSplit).toBe('v1=100,v2=0');
    const ready = st.conditions!.find((c) => c.type === 'Ready')!;
    expect(ready.status).toBe('False');
    expect(ready.message).toContain('held back from routing until available: revision v2 (weight 20%)');

    const up = reconcile(snapshot(api('passthrough'), { v1: 1, v2: 1 }), cfg, NOW);
    expect(backendWeights(find(up.objects, 'HTTPRoute', internalRouteName('iris.models.kea.internal')))).toEqual({ 'iris-v1': 80, 'iris-v2': 20 });
    expect(backendWeights(find(up.objects, 'HTTPRoute', 'kea-api-iris'))).toEqual({ 'iris-v1': 80, 'iris-v2': 20 });
  });

  it('the incremental reconcile re-renders the ApiSchema when only the readiness of its MLService changes', () => {
    const cfg = testControllerConfig();
    const inc = new IncrementalReconciler();
    const drain = (s: ClusterSnapshot) => {
      const objs: KubernetesObject[] = [];
      const gen = inc.stream(s, cfg, () => true, NOW);
      let r = gen.next();
      while (!r.done) {
        if (typeof r.value !== 'symbol') objs.push(r.value);
        r = gen.next();
      }
      inc.commit(true, () => undefined);
      return objs;
    };
    drain(snapshot(api('passthrough'), { v1: 1, v2: 0 }));
    const next = drain(snapshot(api('passthrough'), { v1: 1, v2: 1 }));
    expect(backendWeights(find(next, 'HTTPRoute', 'kea-api-iris'))).toEqual({ 'iris-v1': 80, 'iris-v2': 20 });
  });
});

describe("nginx-gateway-fabric's policies", () => {
  it('the gateway body cap lets a body over the largest operation limit reach the policy server, as an NGF Size', () => {
    expect(gatewayBodyMaxSize(MIB)).toBe('9m');
    expect(gatewayBodyMaxSize(8 * MIB)).toBe('16m');
    expect(gatewayBodyMaxSize(64 * MIB)).toBe('128m');
    expect(gatewayBodyMaxSize(1)).toBe('9m');
    for (const n of [1, 1000, MIB, 3 * MIB + 1, 8 * MIB, 64 * MIB]) {
      const s = gatewayBodyMaxSize(n);
      expect(s).toMatch(NGF_SIZE);
      expect(Number(s.slice(0, -1)) * MIB).toBeGreaterThanOrEqual(n + Math.min(n, 8 * MIB));
    }
  });

  it('are emitted with gatewayImplementation ngf only, the cap following the largest operation limit', () => {
    const generic = reconcile(snapshot(api('enforce', 8 * MIB), { v1: 1, v2: 1 }), testControllerConfig(), NOW);
    expect(generic.objects.filter((o) => o.apiVersion === 'gateway.nginx.org/v1alpha1')).toEqual([]);
    const ngf = reconcile(snapshot(api('enforce', 8 * MIB), { v1: 1, v2: 1 }), testControllerConfig({ gatewayImplementation: 'ngf' }), NOW);
    const csp = find(ngf.objects, 'ClientSettingsPolicy', CLIENT_SETTINGS_NAME)!;
    expect(csp.metadata?.namespace).toBe('kea-system');
    expect(csp.spec).toEqual({ targetRef: { group: 'gateway.networking.k8s.io', kind: 'Gateway', name: 'kea' }, body: { maxSize: '16m' } });
    const policyUps = find(ngf.objects, 'UpstreamSettingsPolicy', 'kea-policy-upstream')!;
    expect(policyUps.spec.targetRefs).toEqual([{ group: '', kind: 'Service', name: 'kea-policy' }]);
    const modelUps = find(ngf.objects, 'UpstreamSettingsPolicy', 'kea-upstream-iris')!;
    expect(modelUps.metadata?.namespace).toBe('models');
    expect(modelUps.spec.targetRefs).toEqual([
      { group: '', kind: 'Service', name: 'iris-v1' },
      { group: '', kind: 'Service', name: 'iris-v2' },
    ]);
    // Without an operation over the default limit, the cap is the default's.
    const small = reconcile(snapshot(api('enforce'), { v1: 1, v2: 1 }), testControllerConfig({ gatewayImplementation: 'ngf' }), NOW);
    expect(find(small.objects, 'ClientSettingsPolicy', CLIENT_SETTINGS_NAME)!.spec.body).toEqual({ maxSize: '9m' });
  });
});

describe('--gateway-implementation', () => {
  const base = ['node', 'main', '--internal-token=t'];
  it('defaults to ngf, takes generic, refuses anything else naming the flag', () => {
    expect(loadConfig(base).config.gatewayImplementation).toBe('ngf');
    expect(loadConfig([...base, '--gateway-implementation=generic']).config.gatewayImplementation).toBe('generic');
    expect(() => loadConfig([...base, '--gateway-implementation=traefik'])).toThrow(/gateway-implementation/);
  });
});
