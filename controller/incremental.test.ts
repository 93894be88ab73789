/**
 * Unit tests of the incremental reconcile (controller/incremental.ts) against the full one
 * (controller/reconcile.ts `reconcile`), over a simulated cluster: after every run the
 * rendered objects are "applied" (key → desired hash), statuses written back into the
 * resources (with a new resourceVersion, as the API server does) and new version-history
 * ConfigMaps added to the snapshot. After every edit, the incremental run's desired state
 * (rendered objects plus the unchanged ones it names) must equal the full reconcile's object
 * for object and hash for hash, its retained owners and dropped versions must be the same, the
 * statuses it sends must be the full run's for those owners, and every owner it skips must
 * already carry the status the full run computes. And it must render exactly the owners the
 * edit concerns.
 */
import type { KubernetesObject } from '@kubernetes/client-node';
import type { ApiSchema } from '../lib/api/types.js';
import { objectKey } from '../lib/kube/objects.js';
import { IncrementalReconciler, IncrementalRestart } from './incremental.js';
import { PAUSE, type RenderOutput } from './model.js';
import { reconcile } from './reconcile.js';
import { testControllerConfig } from './testing/config.js';
import { Counters, Sim as BaseSim, api as apiOf, mls as mlsOf, op } from './testing/incremental-sim.js';

const config = testControllerConfig();
const NOW = '2026-01-01T00:00:00Z';
const counters = new Counters();
const nextRv = counters.nextRv;
const mls = (ns: string, name: string, revisions: Array<{ name: string; weight: number; apiSchema?: string }>) => mlsOf(counters, ns, name, revisions);
const api = (ns: string, name: string, target: ApiSchema['spec']['target'], opts: Parameters<typeof apiOf>[4] = {}) => apiOf(counters, ns, name, target, opts);

class Sim extends BaseSim {
  constructor() {
    super(config, NOW, { counters });
  }
}

function fleet(): Sim {
  const sim = new Sim();
  const s = sim.snapshot;
  for (const ns of ['a', 'b']) {
    for (const n of ['m1', 'm2', 'm3']) {
      s.mlServices.push(mls(ns, n, [{ name: 'v1', weight: 100 }]));
      s.apiSchemas.push(api(ns, n, { mlService: { name: n } }));
    }
  }
  // A canary whose revision names an ApiSchema (contract check), a passthrough schema, a
  // hand-written Service in another namespace behind a ReferenceGrant, an invalid MLService.
  s.mlServices.push(
    mls('a', 'canary', [
      { name: 'v1', weight: 90, apiSchema: 'canary' },
      { name: 'v2', weight: 10, apiSchema: 'canary-v2' },
    ]),
  );
  s.apiSchemas.push(api('a', 'canary', { mlService: { name: 'canary' } }));
  s.apiSchemas.push(api('a', 'canary-v2', { mlService: { name: 'canary' } }, { basePath: '/a/canary-v2' }));
  s.apiSchemas.push(api('b', 'pass', { mlService: { name: 'm1' } }, { mode: 'passthrough', basePath: '/b/pass' }));
  s.services.push({
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: 'legacy', namespace: 'c', resourceVersion: nextRv() },
    spec: { ports: [{ port: 80, protocol: 'TCP' }] },
  } as KubernetesObject);
  s.referenceGrants.push({
    apiVersion: 'gateway.networking.k8s.io/v1beta1',
    kind: 'ReferenceGrant',
    metadata: { name: 'allow-b', namespace: 'c', resourceVersion: nextRv() },
    spec: { from: [{ group: 'gateway.networking.k8s.io', kind: 'HTTPRoute', namespace: 'b' }], to: [{ group: '', kind: 'Service' }] },
  } as KubernetesObject);
  s.apiSchemas.push(api('b', 'legacy', { service: { name: 'legacy', namespace: 'c', port: 80 } }));
  s.mlServices.push(mls('b', 'broken', [{ name: 'v1', weight: 60 }]));
  s.apiSchemas.push(api('b', 'broken', { mlService: { name: 'broken' } }));
  return sim;
}

const ALL = 6 + 2 + 1 + 1 + 1; // ApiSchemas
const ALL_MLS = 6 + 1 + 1;

test('first run renders everything; an unchanged fleet renders no owner at all', () => {
  const sim = fleet();
  const first = sim.run();
  expect(first.apiSchemas).toHaveLength(ALL);
  expect(first.mlServices).toHaveLength(ALL_MLS);
  // The run after status write-back: every owner's resourceVersion is KEA's own status write.
  // The run after status write-back (every owner's resourceVersion is KEA's own status write)
  // and the arrival of the version-history ConfigMaps the first run published: nothing.
  const second = sim.run();
  expect(second).toEqual({ apiSchemas: [], mlServices: [], skipped: ALL + ALL_MLS });
  expect(sim.run()).toEqual({ apiSchemas: [], mlServices: [], skipped: ALL + ALL_MLS });
});

test('a changed input re-renders exactly the owners that depend on it', () => {
  const sim = fleet();
  sim.run();
  sim.run();
  // MLService weights: the MLService and the ApiSchemas fronting it (a/m1 only; b/pass targets b/m1).
  sim.edit(sim.snapshot.mlServices, 'a', 'm1', (m) => {
    m.spec.revisions = [
      { name: 'v1', weight: 70, image: 'img/m1:v1', replicas: 1 },
      { name: 'v2', weight: 30, image: 'img/m1:v2', replicas: 1 },
    ];
  });
  expect(sim.run()).toMatchObject({ mlServices: ['a/m1'], apiSchemas: ['a/m1'] });
  expect(sim.run()).toMatchObject({ mlServices: [], apiSchemas: [] }); // after the status echo
  // An ApiSchema's operations: that ApiSchema only.
  sim.edit(sim.snapshot.apiSchemas, 'b', 'm2', (a) => {
    a.spec.operations = [op('predict', 'POST', '/predict'), op('explain', 'POST', '/explain')];
  });
  expect(sim.run()).toMatchObject({ mlServices: [], apiSchemas: ['b/m2'] });
  sim.run();
  // b/m1's MLService feeds two ApiSchemas (b/m1 and passthrough b/pass).
  sim.edit(sim.snapshot.mlServices, 'b', 'm1', (m) => {
    m.spec.revisions[0].image = 'img/m1:v1.1';
  });
  expect(sim.run()).toMatchObject({ mlServices: ['b/m1'], apiSchemas: ['b/m1', 'b/pass'] });
  sim.run();
  // The canary's second ApiSchema changes its API: the canary MLService (contract check) and
  // that ApiSchema; the stable ApiSchema a/canary's traffic may change too (it targets the MLService).
  sim.edit(sim.snapshot.apiSchemas, 'a', 'canary-v2', (a) => {
    a.spec.operations = [op('predict', 'POST', '/predict')];
  });
  expect(sim.run()).toMatchObject({ mlServices: ['a/canary'], apiSchemas: ['a/canary', 'a/canary-v2'] });
  sim.run();
  // Revoking the ReferenceGrant: the ApiSchema behind it only (ResolvedRefs=False, pruned objects).
  sim.snapshot.referenceGrants = [];
  expect(sim.run()).toMatchObject({ mlServices: [], apiSchemas: ['b/legacy'] });
  sim.run();
  // A newer ApiSchema claiming a/m2's basePath loses (Conflicted); a/m2 is untouched. Then a/m2
  // is deleted: the newcomer wins and is re-rendered; nothing else is.
  sim.snapshot.apiSchemas.push(api('b', 'late', { mlService: { name: 'm3' } }, { basePath: '/a/m2', created: '2025-06-01T00:00:00Z' }));
  expect(sim.run()).toMatchObject({ mlServices: [], apiSchemas: ['b/late'] });
  sim.run();
  sim.snapshot.apiSchemas = sim.snapshot.apiSchemas.filter((a) => !(a.metadata.namespace === 'a' && a.metadata.name === 'm2'));
  expect(sim.run()).toMatchObject({ mlServices: [], apiSchemas: ['b/late'] });
  sim.run();
  // A discovered-document change of an ApiSchema without spec.source.openapi changes nothing.
  sim.snapshot.discovered = { 'a/m3': { fetchedAt: NOW, error: 'x' } };
  // Its IR build never reads it (the graph imports nothing without spec.source.openapi), so
  // its input token, derived from what the build read, does not change: nothing is rendered.
  expect(sim.run()).toMatchObject({ apiSchemas: [], mlServices: [] });
  // Deployment readiness: the MLService only (its Ready condition), not its ApiSchema.
  sim.snapshot.deployments = [
    { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'm3-v1', namespace: 'b' }, status: { availableReplicas: 1 } } as KubernetesObject,
  ];
  expect(sim.run()).toMatchObject({ mlServices: ['b/m3'], apiSchemas: [] });
});

test('a drifted or deleted object makes its owner (only) render again', () => {
  const sim = fleet();
  sim.run();
  sim.run();
  const route = [...sim.applied.keys()].find((k) => k.endsWith('/HTTPRoute/a/kea-api-m3'))!;
  expect(route).toBeDefined();
  sim.drifted.add(route);
  expect(sim.run()).toMatchObject({ apiSchemas: ['a/m3'], mlServices: [] });
  expect(sim.drifted.has(route)).toBe(false); // rendered again, so applied again
  const dep = [...sim.applied.keys()].find((k) => k.endsWith('/Deployment/b/m2-v1'))!;
  sim.applied.delete(dep);
  expect(sim.run()).toMatchObject({ apiSchemas: [], mlServices: ['b/m2'] });
  expect(sim.applied.has(dep)).toBe(true);
});

test('a failed apply forgets every owner; a name claimed from a skipped owner restarts in full', () => {
  const sim = fleet();
  sim.run();
  sim.run();
  // Failed run: next run renders everything.
  const stream = sim.inc.stream(sim.snapshot, config, () => true, NOW);
  while (!stream.next().done);
  sim.inc.commit(false, () => undefined);
  expect(sim.inc.size).toBe(0);
  expect(sim.run().apiSchemas).toHaveLength(ALL);
  sim.run();
  // A name conflict between two MLServices: a/m1 gains revision "x-v1" (objects m1-x-v1) and
  // a new a/m1-x has revision "v1" (the same names). a/m1 comes first and keeps them; a/m1-x
  // gets NameConflict and, as a loser, renders every run, without restarting anything.
  sim.snapshot.mlServices.push(mls('a', 'm1-x', [{ name: 'v1', weight: 100 }]));
  sim.edit(sim.snapshot.mlServices, 'a', 'm1', (m) => {
    m.spec.revisions = [{ name: 'x-v1', weight: 100, image: 'i', replicas: 1 }];
  });
  sim.run();
  sim.run();
  expect(sim.run().mlServices).toEqual(['a/m1-x']);
  // A new MLService that sorts before a skipped one and claims its names would win them in a
  // full render: a/q (revision r-s) and a/q-r (revision s) both make q-r-s. The incremental
  // stream gives up (IncrementalRestart) instead of deciding.
  sim.snapshot.mlServices.push(mls('a', 'q-r', [{ name: 's', weight: 100 }]));
  sim.run();
  expect(sim.run().mlServices).toEqual(['a/m1-x']);
  sim.snapshot.mlServices.push(mls('a', 'q', [{ name: 'r-s', weight: 100 }]));
  const s2 = sim.inc.stream(sim.snapshot, config, (k, h) => sim.applied.get(k) === h, NOW);
  expect(() => {
    while (!s2.next().done);
  }).toThrow(IncrementalRestart);
  sim.inc.reset();
  expect(sim.run().mlServices).toHaveLength(sim.snapshot.mlServices.length); // in full: a/q takes q-r-s
  sim.run();
  expect(sim.run().mlServices).toEqual(['a/m1-x', 'a/q-r']); // the two losers
});

/** The whole-output helper used by golden tests agrees with the stream on a fleet's first run. */
test('first incremental run = full reconcile, object for object', () => {
  const sim = fleet();
  const full: RenderOutput = reconcile(sim.snapshot, config, NOW);
  const stream = sim.inc.stream(sim.snapshot, config, () => true, NOW);
  const objs: KubernetesObject[] = [];
  let r = stream.next();
  while (!r.done) {
    if (r.value !== PAUSE) objs.push(r.value);
    r = stream.next();
  }
  expect(objs.map(objectKey).sort()).toEqual(full.objects.map(objectKey).sort());
  expect(r.value.events).toEqual(full.events);
  expect(r.value.unchangedKeys).toEqual([]);
  // With onStatus, each status is handed over right after its owner's objects, none returned.
  const handed: Array<{ at: number; key: string; status: unknown }> = [];
  const fresh = new IncrementalReconciler();
  const s2 = fresh.stream(
    sim.snapshot,
    config,
    () => true,
    NOW,
    (st) => handed.push({ at: seen.length, key: `${st.kind}/${st.namespace}/${st.name}`, status: st.status }),
  );
  const seen: KubernetesObject[] = [];
  let r2 = s2.next();
  while (!r2.done) {
    if (r2.value !== PAUSE) seen.push(r2.value);
    r2 = s2.next();
  }
  expect(r2.value.statuses).toEqual([]);
  expect(handed.map((h) => h.key).sort()).toEqual(full.statuses.map((st) => `${st.kind}/${st.namespace}/${st.name}`).sort());
  for (const h of handed) {
    const [kind, ns, name] = h.key.split('/');
    expect(h.status).toEqual(full.statuses.find((st) => st.kind === kind && st.namespace === ns && st.name === name)!.status);
    // Every object of that owner was yielded before its status.
    const label = `${kind}.${ns}.${name}`;
    const all = full.objects.filter((o) => o.metadata?.labels?.['kea.dev/owner'] === label).length;
    expect(seen.slice(0, h.at).filter((o) => o.metadata?.labels?.['kea.dev/owner'] === label).length).toBe(all);
  }
});
