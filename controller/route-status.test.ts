/**
 * Unit tests of the gateway's verdict in `Programmed` (issue 11 item 3): the pure mapping from
 * HTTPRoute `status.parents` to the owner's condition (render/route-status.ts), the watch
 * stage's slim copy of a route (watch/index.ts `slimRoute`), and the incremental reconcile's
 * reaction to a route status change (controller/incremental.ts): exactly the route's owner is
 * rendered again, with the status a full reconcile gives, and KEA's own writes (routes, statuses)
 * do not make it render again (no write loop). The real gateway's refusals are tested in
 * controller/gateway-status.int.test.ts.
 */
import type { KubernetesObject } from '@kubernetes/client-node';
import type { ApiSchema, Condition, MLService } from '../lib/api/types.js';
import { objectKey } from '../lib/kube/objects.js';
import { APPLIED_HASH, desiredHash } from './kube/applied-hash.js';
import { canonicalJson } from '../lib/canonical-json.js';
import { IncrementalReconciler } from './incremental.js';
import type { ConditionIR } from './ir/index.js';
import { type ClusterSnapshot, type ObservedRoute, type RouteParentStatus, PAUSE } from './model.js';
import { reconcile } from './reconcile.js';
import { PENDING_REASON, gatewayParents, judgedRoute, programmedCondition, routeStatusToken, routeVerdict } from './render/route-status.js';
import { testControllerConfig } from './testing/config.js';
import { slimRoute } from './watch/index.js';

const config = testControllerConfig();
const GW = config.gateway;
const NGF = 'gateway.nginx.org/nginx-gateway-controller';
const NOW = '2026-01-01T00:00:00Z';

type Cond = { type: string; status: string; reason?: string; message?: string; observedGeneration?: number };
const parent = (conditions: Cond[], ref: Partial<RouteParentStatus['parentRef']> = {}, controllerName = NGF): RouteParentStatus => ({
  parentRef: { group: 'gateway.networking.k8s.io', kind: 'Gateway', namespace: 'kea-system', name: 'kea', sectionName: 'public', ...ref },
  controllerName,
  conditions,
});
const ok = (gen: number): Cond[] => [
  { type: 'Accepted', status: 'True', reason: 'Accepted', message: 'The route is accepted', observedGeneration: gen },
  { type: 'ResolvedRefs', status: 'True', reason: 'ResolvedRefs', message: 'All references are resolved', observedGeneration: gen },
];
const route = (generation: number, parents: RouteParentStatus[], ns = 'models', name = 'kea-api-iris'): ObservedRoute => ({
  apiVersion: 'gateway.networking.k8s.io/v1',
  kind: 'HTTPRoute',
  metadata: { name, namespace: ns, generation },
  status: { parents },
});
const IR_TRUE: ConditionIR = { type: 'Programmed', status: 'True', reason: 'Programmed', message: '2 route rule(s)' };

describe('routeVerdict: one route, for KEA parentRef', () => {
  test('accepted only with Accepted=True and ResolvedRefs=True at the route generation', () => {
    expect(routeVerdict(route(2, [parent(ok(2))]), true, GW)).toEqual({ state: 'accepted' });
    expect(routeVerdict(route(3, [parent(ok(2))]), true, GW)).toEqual({
      state: 'pending',
      why: "the gateway's status is for generation 2, the route is at generation 3",
    });
    expect(routeVerdict(route(2, [parent([ok(2)[0]])]), true, GW)).toMatchObject({ state: 'pending' });
    expect(routeVerdict(route(2, [parent([{ ...ok(2)[0], status: 'Unknown' }, ok(2)[1]])]), true, GW)).toMatchObject({ state: 'pending' });
  });

  test('not created, about to be rewritten, or no entry for KEA Gateway: pending', () => {
    // Not created, or created with no entry yet: the same words (KEA creating a route is no news).
    expect(routeVerdict(undefined, false, GW)).toEqual({ state: 'pending', why: 'no status from the gateway yet' });
    expect(routeVerdict(route(2, []), true, GW)).toEqual({ state: 'pending', why: 'no status from the gateway yet' });
    expect(routeVerdict(route(2, []), false, GW)).toEqual({ state: 'pending', why: 'no status from the gateway yet' });
    expect(routeVerdict(route(2, [parent(ok(2))]), false, GW)).toEqual({ state: 'pending', why: 'being updated by this reconcile' });
    // Entries for other parents do not count: another Gateway name or namespace, another kind.
    for (const ref of [{ name: 'other' }, { namespace: 'elsewhere' }, { kind: 'Service' }, { group: 'example.com' }]) {
      expect(routeVerdict(route(2, [parent(ok(2), ref)]), true, GW)).toMatchObject({ state: 'pending' });
    }
  });

  test('parentRef namespace defaults to the route namespace, group and kind to Gateway API Gateway', () => {
    const r = route(1, [{ parentRef: { name: 'kea' }, controllerName: NGF, conditions: ok(1) }], 'kea-system', 'iris.models.kea.internal');
    expect(gatewayParents(r, GW)).toHaveLength(1);
    expect(routeVerdict(r, true, GW)).toEqual({ state: 'accepted' });
    expect(gatewayParents(route(1, [{ parentRef: { name: 'kea' }, conditions: ok(1) }]), GW)).toHaveLength(0); // route in models: parent models/kea
  });

  test("a refusal carries the gateway's own type, reason, message and controller; Accepted before ResolvedRefs", () => {
    const notFound: Cond = {
      type: 'ResolvedRefs',
      status: 'False',
      reason: 'BackendNotFound',
      message: 'spec.rules[0].backendRefs[0].name: Not found: "kea-policy"',
      observedGeneration: 4,
    };
    expect(routeVerdict(route(4, [parent([ok(4)[0], notFound])]), true, GW)).toEqual({
      state: 'refused',
      type: 'ResolvedRefs',
      status: 'False',
      reason: 'BackendNotFound',
      message: 'spec.rules[0].backendRefs[0].name: Not found: "kea-policy"',
      controllerName: NGF,
    });
    const host: Cond = {
      type: 'Accepted',
      status: 'False',
      reason: 'NoMatchingListenerHostname',
      message: 'Listener hostname does not match the Route hostnames',
      observedGeneration: 4,
    };
    expect(routeVerdict(route(4, [parent([notFound, host])]), true, GW)).toMatchObject({ type: 'Accepted', reason: 'NoMatchingListenerHostname' });
    expect(
      routeVerdict(
        route(4, [
          parent([...ok(4), { type: 'PartiallyInvalid', status: 'True', reason: 'UnsupportedValue', message: 'rule 2 dropped', observedGeneration: 4 }]),
        ]),
        true,
        GW,
      ),
    ).toMatchObject({
      state: 'refused',
      type: 'PartiallyInvalid',
      reason: 'UnsupportedValue',
    });
    // A refusal without a reason still gets one.
    expect(routeVerdict(route(1, [parent([{ type: 'Accepted', status: 'False', observedGeneration: 1 }])]), true, GW)).toMatchObject({ reason: 'NotAccepted' });
  });

  test('several controllers: entries of an older generation are ignored, a current refusal wins', () => {
    const stale = parent(
      [{ type: 'Accepted', status: 'False', reason: 'NotAllowedByListeners', message: 'old', observedGeneration: 1 }],
      {},
      'traefik.io/gateway-controller',
    );
    expect(routeVerdict(route(2, [stale, parent(ok(2))]), true, GW)).toEqual({ state: 'accepted' });
    const refusing = parent([
      { ...ok(2)[0] },
      {
        type: 'ResolvedRefs',
        status: 'False',
        reason: 'RefNotPermitted',
        message: 'Backend ref to Service models/x not permitted by any ReferenceGrant',
        observedGeneration: 2,
      },
    ]);
    expect(routeVerdict(route(2, [parent(ok(2), {}, 'traefik.io/gateway-controller'), refusing]), true, GW)).toMatchObject({
      state: 'refused',
      reason: 'RefNotPermitted',
    });
  });
});

describe('programmedCondition: the owner condition', () => {
  const judged = (key: string, live: ObservedRoute | undefined, current = true) => ({ key, live, current });

  test("KEA's own False or Unknown is kept; no routes: unchanged", () => {
    const invalid: ConditionIR = { type: 'Programmed', status: 'False', reason: 'Invalid', message: 'nothing is routed' };
    expect(
      programmedCondition(invalid, [judged('models/a', route(1, [parent([{ type: 'Accepted', status: 'False', reason: 'X', observedGeneration: 1 }])]))], GW),
    ).toBe(invalid);
    expect(programmedCondition(IR_TRUE, [], GW)).toBe(IR_TRUE);
  });

  test('True only when every route is accepted; the message names the Gateway and the routes', () => {
    const c = programmedCondition(
      IR_TRUE,
      [judged('models/kea-api-iris', route(1, [parent(ok(1))])), judged('models/kea-api-iris-2', route(5, [parent(ok(5))], 'models', 'kea-api-iris-2'))],
      GW,
    );
    expect(c).toEqual({
      type: 'Programmed',
      status: 'True',
      reason: 'Programmed',
      message: '2 route rule(s); accepted with references resolved by Gateway kea-system/kea: HTTPRoute models/kea-api-iris, models/kea-api-iris-2',
    });
  });

  test('one refused route: False with its reason, every refused route named; refusal beats pending', () => {
    const refused = route(3, [
      parent([
        ok(3)[0],
        {
          type: 'ResolvedRefs',
          status: 'False',
          reason: 'BackendNotFound',
          message: 'no matching port for Service kea-policy and port 8000',
          observedGeneration: 3,
        },
      ]),
    ]);
    const c = programmedCondition(IR_TRUE, [judged('models/a', route(1, [parent(ok(1))])), judged('models/b', undefined), judged('models/c', refused)], GW);
    expect(c.status).toBe('False');
    expect(c.reason).toBe('BackendNotFound');
    expect(c.message).toBe(
      `Gateway kea-system/kea did not program 1 of 3 HTTPRoute(s): HTTPRoute models/c: ResolvedRefs=False (BackendNotFound, ${NGF}): no matching port for Service kea-policy and port 8000`,
    );
  });

  test('a route waiting for the gateway: Unknown, reason Pending, never True', () => {
    const c = programmedCondition(IR_TRUE, [judged('models/a', route(1, [parent(ok(1))])), judged('models/b', route(2, [parent(ok(1))]))], GW);
    expect(c).toMatchObject({ status: 'Unknown', reason: PENDING_REASON });
    expect(c.message).toContain("models/b: the gateway's status is for generation 1, the route is at generation 2");
  });

  test('a long gateway message is cut', () => {
    const long = 'x'.repeat(2000);
    const c = programmedCondition(
      IR_TRUE,
      [judged('models/a', route(1, [parent([{ type: 'Accepted', status: 'False', reason: 'R', message: long, observedGeneration: 1 }])]))],
      GW,
    );
    expect(c.message.length).toBeLessThan(700);
    expect(c.message.endsWith('…')).toBe(true);
  });

  test('judgedRoute: current only when the live applied hash is the desired one', () => {
    const desired = {
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'HTTPRoute',
      metadata: { name: 'r', namespace: 'models' },
      spec: { rules: [] },
    } as KubernetesObject;
    const live = (hash: string) =>
      new Map([
        ['models/r', { ...route(1, [], 'models', 'r'), metadata: { name: 'r', namespace: 'models', generation: 1, annotations: { [APPLIED_HASH]: hash } } }],
      ]);
    expect(judgedRoute(desired, live(desiredHash(desired)))).toMatchObject({ key: 'models/r', current: true });
    expect(judgedRoute(desired, live('other'))).toMatchObject({ current: false });
    expect(judgedRoute(desired, undefined)).toEqual({ key: 'models/r', live: undefined, current: false });
  });
});

describe('watch stage: slimRoute', () => {
  test('keeps metadata and the verdict fields of status.parents, drops the spec and the rest', () => {
    const r = {
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'HTTPRoute',
      metadata: { name: 'a', namespace: 'models', generation: 3, labels: { 'kea.dev/owner': 'ApiSchema.models.a' } },
      spec: { rules: [{ backendRefs: [{ name: 'x', port: 1 }] }] },
      status: {
        parents: [
          {
            parentRef: { group: 'gateway.networking.k8s.io', kind: 'Gateway', namespace: 'kea-system', name: 'kea', sectionName: 'public' },
            controllerName: NGF,
            conditions: [
              {
                type: 'Accepted',
                status: 'True',
                reason: 'Accepted',
                message: 'The route is accepted',
                observedGeneration: 3,
                lastTransitionTime: '2026-12-02T00:00:00Z',
              },
            ],
            extra: 'dropped',
          },
        ],
      },
    } as unknown as KubernetesObject;
    expect(slimRoute(r)).toEqual({
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'HTTPRoute',
      metadata: { name: 'a', namespace: 'models', generation: 3, labels: { 'kea.dev/owner': 'ApiSchema.models.a' } },
      status: {
        parents: [
          {
            parentRef: { group: 'gateway.networking.k8s.io', kind: 'Gateway', namespace: 'kea-system', name: 'kea', sectionName: 'public' },
            controllerName: NGF,
            conditions: [{ type: 'Accepted', status: 'True', reason: 'Accepted', message: 'The route is accepted', observedGeneration: 3 }],
          },
        ],
      },
    });
    expect(slimRoute({ kind: 'HTTPRoute', metadata: { name: 'b' }, spec: {}, status: { parents: [] } } as KubernetesObject)).toEqual({
      kind: 'HTTPRoute',
      metadata: { name: 'b' },
    });
  });

  test('routeStatusToken: empty without an entry for KEA Gateway; changes with what Programmed reads, not with lastTransitionTime', () => {
    expect(routeStatusToken(route(1, []), GW)).toBe('');
    expect(routeStatusToken(route(1, [parent(ok(1), { name: 'other' })]), GW)).toBe('');
    const base = routeStatusToken(route(1, [parent(ok(1))]), GW);
    expect(base).not.toBe('');
    expect(routeStatusToken(route(2, [parent(ok(1))]), GW)).not.toBe(base);
    expect(routeStatusToken(route(1, [parent([ok(1)[0], { ...ok(1)[1], status: 'False', reason: 'BackendNotFound' }])]), GW)).not.toBe(base);
    expect(routeStatusToken(route(1, [parent(ok(1).map((c) => ({ ...c, lastTransitionTime: 'later' })))]), GW)).toBe(base);
  });
});

/* ------------------------------------------------------------ incremental reconcile */

/**
 * A cluster with a gateway: after each run the rendered objects are "applied" (a route's live
 * copy gets the desired hash, and a new generation when it changed), statuses written back; the
 * test plays the gateway by writing route statuses. Every incremental run is checked against the
 * full reconcile of the same snapshot (objects and statuses).
 */
class GatewaySim {
  snapshot: ClusterSnapshot = { apiSchemas: [], mlServices: [], services: [], referenceGrants: [], publishedVersions: [], deployments: [], routes: [] };
  applied = new Map<string, string>();
  statusRv = new Map<string, string>();
  inc = new IncrementalReconciler();
  rv = 100;
  /** Writes counted per run: objects applied, statuses changed. */
  writes = { objects: 0, statuses: 0 };

  run(): { apiSchemas: string[]; mlServices: string[] } {
    this.writes = { objects: 0, statuses: 0 };
    const full = reconcile(this.snapshot, config, NOW);
    const stream = this.inc.stream(this.snapshot, config, (k, h) => this.applied.get(k) === h, NOW);
    const rendered: KubernetesObject[] = [];
    let r = stream.next();
    while (!r.done) {
      if (r.value !== PAUSE) {
        this.inc.observe(objectKey(r.value), desiredHash(r.value), r.value);
        rendered.push(r.value);
      }
      r = stream.next();
    }
    const fullStatus = new Map(full.statuses.map((s) => [`${s.kind}/${s.namespace}/${s.name}`, s.status]));
    for (const s of r.value.statuses) expect(canonicalJson(s.status)).toBe(canonicalJson(fullStatus.get(`${s.kind}/${s.namespace}/${s.name}`)));
    for (const o of rendered) {
      const h = desiredHash(o);
      if (this.applied.get(objectKey(o)) === h) continue;
      this.applied.set(objectKey(o), h);
      this.writes.objects++;
      if (o.kind !== 'HTTPRoute') continue;
      const routes = this.snapshot.routes!;
      const live = routes.find((x): x is ObservedRoute => x.metadata?.namespace === o.metadata?.namespace && x.metadata?.name === o.metadata?.name);
      const md = { ...o.metadata, generation: (live?.metadata?.generation ?? 0) + 1, annotations: { [APPLIED_HASH]: h } };
      this.snapshot.routes = [
        ...routes.filter((x) => x !== live),
        { apiVersion: o.apiVersion, kind: o.kind, metadata: md, ...(live?.status ? { status: live.status } : {}) },
      ];
    }
    for (const s of r.value.statuses) {
      const list: Array<ApiSchema | MLService> = s.kind === 'ApiSchema' ? this.snapshot.apiSchemas : this.snapshot.mlServices;
      const res = list.find((x) => x.metadata.namespace === s.namespace && x.metadata.name === s.name)!;
      if (canonicalJson(res.status ?? {}) === canonicalJson(s.status)) continue;
      res.status = structuredClone(s.status);
      res.metadata.resourceVersion = String(++this.rv);
      this.statusRv.set(`${s.kind}/${s.namespace}/${s.name}`, res.metadata.resourceVersion);
      this.writes.statuses++;
    }
    // Every owner, rendered or skipped, carries the status the full reconcile computes.
    for (const res of [...this.snapshot.apiSchemas, ...this.snapshot.mlServices]) {
      expect(canonicalJson(res.status ?? {})).toBe(canonicalJson(fullStatus.get(`${res.kind}/${res.metadata.namespace}/${res.metadata.name}`)));
    }
    this.inc.commit(true, (kind, ns, name) => this.statusRv.get(`${kind}/${ns}/${name}`));
    return { apiSchemas: [...this.inc.stats.renderedApiSchemas].sort(), mlServices: [...this.inc.stats.renderedMLServices].sort() };
  }

  /** The gateway writes `parents` into the status of the one route of `owner` (a `kea.dev/owner` value; KEA never writes it). */
  gatewayWrites(owner: string, conds: (generation: number) => Cond[]): void {
    const mine = this.snapshot.routes!.filter((x) => x.metadata?.labels?.['kea.dev/owner'] === owner) as ObservedRoute[];
    expect(mine).toHaveLength(1);
    const live = mine[0];
    live.status = {
      parents: [
        parent(conds(live.metadata!.generation!), { namespace: 'kea-system', sectionName: live.metadata?.namespace === 'kea-system' ? 'internal' : 'public' }),
      ],
    };
    live.metadata!.resourceVersion = String(++this.rv);
  }

  programmed(kind: 'ApiSchema' | 'MLService', name: string): Condition | undefined {
    const list: Array<ApiSchema | MLService> = kind === 'ApiSchema' ? this.snapshot.apiSchemas : this.snapshot.mlServices;
    return list.find((x) => x.metadata.name === name)!.status?.conditions?.find((c) => c.type === 'Programmed');
  }
}

test('incremental: a route status change re-renders exactly its owner; KEA writes cause no further run', () => {
  const sim = new GatewaySim();
  sim.snapshot.mlServices.push({
    apiVersion: 'kea.dev/v1alpha1',
    kind: 'MLService',
    metadata: { name: 'iris', namespace: 'models', uid: 'u1', generation: 1, resourceVersion: '1' },
    spec: { framework: 'custom', port: 8080, healthPath: '/healthz', revisions: [{ name: 'v1', weight: 100, image: 'img/iris:v1', replicas: 1 }] },
  });
  sim.snapshot.apiSchemas.push({
    apiVersion: 'kea.dev/v1alpha1',
    kind: 'ApiSchema',
    metadata: { name: 'iris', namespace: 'models', uid: 'u2', generation: 1, resourceVersion: '2' },
    spec: {
      target: { mlService: { name: 'iris' } },
      basePath: '/iris',
      info: { title: 'Iris', version: '1.0.0' },
      operations: [{ operationId: 'predict', method: 'POST', path: '/predict', responses: { '200': { description: 'ok' } } }],
    },
  });

  expect(sim.run()).toEqual({ apiSchemas: ['models/iris'], mlServices: ['models/iris'] });
  expect(sim.programmed('ApiSchema', 'iris')).toMatchObject({ status: 'Unknown', reason: 'Pending' });
  expect(sim.programmed('MLService', 'iris')).toMatchObject({ status: 'Unknown', reason: 'Pending' });
  // The routes KEA just created carry no status yet: nothing to render again, nothing written.
  expect(sim.run()).toEqual({ apiSchemas: [], mlServices: [] });
  expect(sim.writes).toEqual({ objects: 0, statuses: 0 });

  // The gateway accepts the internal route: only the MLService is rendered, Programmed=True.
  sim.gatewayWrites('MLService.models.iris', ok);
  expect(sim.run()).toEqual({ apiSchemas: [], mlServices: ['models/iris'] });
  expect(sim.programmed('MLService', 'iris')).toMatchObject({ status: 'True', reason: 'Programmed' });
  expect(sim.writes).toEqual({ objects: 0, statuses: 1 });
  // Converged: KEA's own status write is not a reason to render again (no loop).
  expect(sim.run()).toEqual({ apiSchemas: [], mlServices: [] });

  // The gateway refuses the public route: only the ApiSchema, False with the gateway's reason.
  sim.gatewayWrites('ApiSchema.models.iris', (g) => [
    ok(g)[0],
    {
      type: 'ResolvedRefs',
      status: 'False',
      reason: 'BackendNotFound',
      message: 'spec.rules[0].backendRefs[0].name: Not found: "kea-policy"',
      observedGeneration: g,
    },
  ]);
  expect(sim.run()).toEqual({ apiSchemas: ['models/iris'], mlServices: [] });
  expect(sim.programmed('ApiSchema', 'iris')).toMatchObject({ status: 'False', reason: 'BackendNotFound' });
  expect(sim.programmed('ApiSchema', 'iris')!.message).toContain('Not found: "kea-policy"');
  expect(sim.run()).toEqual({ apiSchemas: [], mlServices: [] });
  // ... then accepts it.
  sim.gatewayWrites('ApiSchema.models.iris', ok);
  expect(sim.run()).toEqual({ apiSchemas: ['models/iris'], mlServices: [] });
  expect(sim.programmed('ApiSchema', 'iris')).toMatchObject({ status: 'True', reason: 'Programmed' });

  // A spec change rewrites the internal route: Pending at once (the gateway has not judged the
  // new generation), True again once the gateway writes its status for it.
  const m = sim.snapshot.mlServices[0];
  m.spec.revisions[0].replicas = 2;
  m.spec.revisions.push({ name: 'v2', weight: 0, image: 'img/iris:v2', replicas: 1 });
  m.metadata.generation = 2;
  m.metadata.resourceVersion = String(++sim.rv);
  expect(sim.run().mlServices).toEqual(['models/iris']);
  expect(sim.programmed('MLService', 'iris')).toMatchObject({ status: 'Unknown', reason: 'Pending' });
  expect(sim.programmed('MLService', 'iris')!.message).toContain('being updated by this reconcile');
  // After the rewrite, before the gateway's new status: the route's new generation re-renders it, still Pending.
  expect(sim.run().mlServices).toEqual(['models/iris']);
  expect(sim.programmed('MLService', 'iris')).toMatchObject({ status: 'Unknown', reason: 'Pending' });
  expect(sim.programmed('MLService', 'iris')!.message).toContain("the gateway's status is for generation 1, the route is at generation 2");
  sim.gatewayWrites('MLService.models.iris', ok);
  expect(sim.run()).toEqual({ apiSchemas: [], mlServices: ['models/iris'] });
  expect(sim.programmed('MLService', 'iris')).toMatchObject({ status: 'True' });
  expect(sim.run()).toEqual({ apiSchemas: [], mlServices: [] });
});
