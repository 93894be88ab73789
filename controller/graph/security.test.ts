/**
 * Unit tests of the graph's tenant-isolation rules (issue 10): which discovery targets the
 * controller may fetch (item 3), how an imported document's `x-kea-access` combines with the
 * ApiSchema's (item 13), nested basePaths across namespaces (item 6) and collision-free
 * policy ConfigMap names (item 14). The golden cases nested-basepath-conflict,
 * discovery-cross-ns, discovered-access and configmap-names show the same through render.
 */
import type { KubernetesObject } from '@kubernetes/client-node';
import type { Access, ApiSchema, MLService } from '../../lib/api/types.js';
import { apiConfigMapName, apiVersionConfigMapName } from '../../lib/policy/config.js';
import { testControllerConfig } from '../testing/config.js';
import { buildGraph, discoverableApiSchemas, discoveryRefusal, isAccepted, tightenAccess, withDiscovered } from './index.js';

const mls = (ns: string, name: string): MLService => ({
  apiVersion: 'kea.dev/v1alpha1',
  kind: 'MLService',
  metadata: { name, namespace: ns, uid: `uid-${ns}-${name}`, generation: 1 },
  spec: { framework: 'sklearn', revisions: [{ name: 'v1', modelUri: 's3://m/1', weight: 100 }] },
});

const api = (ns: string, name: string, spec: Partial<ApiSchema['spec']>, created = '2026-01-01T00:00:00Z'): ApiSchema => ({
  apiVersion: 'kea.dev/v1alpha1',
  kind: 'ApiSchema',
  metadata: { name, namespace: ns, uid: `uid-${ns}-${name}`, generation: 1, creationTimestamp: created },
  spec: {
    target: { service: { name: 'svc', port: 80 } },
    basePath: `/${name}`,
    info: { title: name, version: '1.0.0' },
    operations: [{ operationId: 'get', method: 'GET', path: '/x', access: { mode: 'public' } }],
    ...spec,
  },
});

const grant = (ns: string, fromNs: string, name?: string): KubernetesObject =>
  ({
    apiVersion: 'gateway.networking.k8s.io/v1beta1',
    kind: 'ReferenceGrant',
    metadata: { name: `allow-${fromNs}`, namespace: ns },
    spec: {
      from: [{ group: 'gateway.networking.k8s.io', kind: 'HTTPRoute', namespace: fromNs }],
      to: [{ group: '', kind: 'Service', ...(name ? { name } : {}) }],
    },
  }) as KubernetesObject;

describe('discovery targets are checked like any other cross-namespace reference (issue 10 item 3)', () => {
  const victim = mls('victim', 'iris');
  const peek = api('evil', 'peek', { target: { mlService: { name: 'iris', namespace: 'victim' } }, source: { openapi: {} }, operations: [] });
  const own = api('victim', 'own', { target: { mlService: { name: 'iris' } }, source: { openapi: {} }, operations: [] });
  const viaService = api('apps', 'legacy', {
    target: { service: { name: 'legacy', namespace: 'backends', port: 80 } },
    source: { openapi: {} },
    operations: [],
  });
  const badPath = api('victim', 'bad', { target: { mlService: { name: 'iris' } }, source: { openapi: { path: '/\\evil/x' } }, operations: [] });
  const inline = api('evil', 'inline', { target: { mlService: { name: 'iris', namespace: 'victim' } } });

  it('fetches same-namespace targets, refuses ungranted cross-namespace ones and non-plain paths', () => {
    const snapshot = { apiSchemas: [peek, own, viaService, badPath, inline], mlServices: [victim], referenceGrants: [] };
    expect(discoverableApiSchemas(snapshot).map((a) => a.metadata.name)).toEqual(['own']);
    const byKey = new Map([['victim/iris', victim]]);
    expect(discoveryRefusal(peek, [], byKey)).toMatch(
      /victim\/iris-v1 in another namespace is fetched only when a ReferenceGrant in namespace victim allows HTTPRoutes of namespace evil/,
    );
    expect(discoveryRefusal(viaService, [], byKey)).toMatch(/backends\/legacy/);
    expect(discoveryRefusal(badPath, [], byKey)).toMatch(/must not contain a backslash/);
    expect(discoveryRefusal(inline, [], byKey)).toBeUndefined(); // no spec.source.openapi: nothing to fetch
  });

  it('fetches a cross-namespace target once a ReferenceGrant allows it (by name or for every Service)', () => {
    const grants = [grant('victim', 'evil', 'iris-v1'), grant('backends', 'apps')];
    const snapshot = { apiSchemas: [peek, own, viaService], mlServices: [victim], referenceGrants: grants };
    expect(discoverableApiSchemas(snapshot).map((a) => a.metadata.name)).toEqual(['peek', 'own', 'legacy']);
    // A grant for another namespace, or another Service, does not count.
    expect(
      discoverableApiSchemas({ ...snapshot, referenceGrants: [grant('victim', 'other'), grant('backends', 'apps', 'not-legacy')] }).map((a) => a.metadata.name),
    ).toEqual(['own']);
  });

  it('refuses a cross-namespace MLService that does not exist (its grants cannot be checked)', () => {
    expect(discoveryRefusal(peek, [grant('victim', 'evil')], new Map())).toMatch(/MLService victim\/iris in another namespace was not found/);
  });

  it('imports nothing for a refused ApiSchema, even when a document was found', () => {
    const g = buildGraph(
      {
        apiSchemas: [peek],
        mlServices: [victim],
        services: [],
        referenceGrants: [],
        publishedVersions: [],
        discovered: {
          'evil/peek': {
            fetchedAt: '2026-01-01T00:00:00Z',
            digest: 'd',
            doc: {
              openapi: '3.0.3',
              info: { title: 't', version: '1' },
              paths: { '/admin': { get: { operationId: 'admin', responses: { 200: { description: 'OK' } } } } },
            },
          },
        },
      },
      testControllerConfig(),
    );
    const n = g.apiSchemas[0];
    expect(n.operations).toEqual([]);
    expect(n.imported).toMatchObject({ state: 'refused', imported: 0 });
    expect(n.problems.map((p) => p.reason)).toContain('RefNotPermitted');
  });
});

describe('tightenAccess: an imported x-kea-access only tightens (issue 10 item 13)', () => {
  const pub: Access = { mode: 'public' };
  const auth: Access = { mode: 'authenticated' };
  const teacher: Access = { mode: 'restricted', roles: ['teacher', 'admin'], scopes: ['read'] };
  it.each<[string, Access, Access, Access, RegExp | undefined]>([
    ['public over authenticated is ignored', auth, pub, auth, /would loosen/],
    ['authenticated over restricted is ignored', teacher, auth, teacher, /would loosen/],
    ['public over restricted is ignored', teacher, pub, teacher, /would loosen/],
    ['authenticated over public applies', pub, auth, auth, undefined],
    ['restricted over authenticated applies', auth, { mode: 'restricted', groups: ['staff'] }, { mode: 'restricted', groups: ['staff'] }, undefined],
    [
      'both restricted: roles intersected, scopes united',
      teacher,
      { mode: 'restricted', roles: ['teacher', 'dean'], scopes: ['write'] },
      { mode: 'restricted', roles: ['teacher'], scopes: ['read', 'write'] },
      undefined,
    ],
    [
      'both restricted, no common role: the ApiSchema keeps its roles, scopes united',
      teacher,
      { mode: 'restricted', roles: ['dean'], scopes: ['write'] },
      { mode: 'restricted', roles: ['teacher', 'admin'], scopes: ['read', 'write'] },
      /share none/,
    ],
    [
      'ApiSchema scopes only, document roles: both hold',
      { mode: 'restricted', scopes: ['read'] },
      { mode: 'restricted', roles: ['dean'] },
      { mode: 'restricted', roles: ['dean'], scopes: ['read'] },
      undefined,
    ],
    ['an unknown mode keeps the ApiSchema access', auth, { mode: 'everyone' } as unknown as Access, auth, /unknown/],
    [
      'non-string list items are dropped',
      auth,
      { mode: 'restricted', roles: 'admin', groups: ['staff', 7] } as unknown as Access,
      { mode: 'restricted', groups: ['staff'] },
      undefined,
    ],
  ])('%s', (_name, base, wanted, expected, note) => {
    const got = tightenAccess(base, wanted);
    expect(got.access).toEqual(expected);
    if (note) expect(got.note).toMatch(note);
    else expect(got.note).toBeUndefined();
  });
});

describe('withDiscovered: the served document cannot loosen access unless trustAccess (issue 10 item 13)', () => {
  const doc = {
    openapi: '3.0.3',
    info: { title: 't', version: '1' },
    paths: {
      '/open': { get: { operationId: 'open', 'x-kea-access': { mode: 'public' }, responses: { 200: { description: 'OK' } } } },
      '/feed': { get: { operationId: 'feed', 'x-kea-cache': { ttlSeconds: 60, scope: 'shared' }, responses: { 200: { description: 'OK' } } } },
    },
  };
  const found = { fetchedAt: '2026-01-01T00:00:00Z', digest: 'd', doc };
  const ops = (trustAccess?: boolean) => {
    const a = api('apps', 'svc', { source: { openapi: trustAccess ? { trustAccess } : {} }, operations: [] });
    const { resource, info } = withDiscovered(a, found);
    return { ops: Object.fromEntries((resource.spec.operations ?? []).map((o) => [o.operationId, o])), unroutable: info!.unroutable };
  };
  it('by default: public is ignored (authenticated applies), a shared cache becomes per identity, both listed', () => {
    const { ops: o, unroutable } = ops();
    expect(o.open.access).toEqual({ mode: 'authenticated' });
    expect(o.feed.cache).toEqual({ ttlSeconds: 60, scope: 'identity' });
    expect(unroutable).toEqual([
      expect.stringMatching(/^GET \/open: x-kea-access public would loosen the ApiSchema's authenticated; ignored/),
      expect.stringMatching(/^GET \/feed: x-kea-cache scope shared on an operation with access authenticated would answer/),
    ]);
  });
  it('with trustAccess: the document decides', () => {
    const { ops: o, unroutable } = ops(true);
    expect(o.open.access).toEqual({ mode: 'public' });
    expect(o.feed.cache).toEqual({ ttlSeconds: 60, scope: 'shared' });
    expect(unroutable).toEqual([]);
  });
});

describe('nested basePaths across namespaces are a conflict (issue 10 item 6)', () => {
  const graph = (...apis: ApiSchema[]) =>
    buildGraph(
      {
        apiSchemas: apis,
        mlServices: [],
        services: [{ apiVersion: 'v1', kind: 'Service', metadata: { name: 'svc', namespace: 'x' } }],
        referenceGrants: [],
        publishedVersions: [],
      },
      testControllerConfig(),
    );
  const accepted = (g: ReturnType<typeof graph>) => g.apiSchemas.filter(isAccepted).map((n) => n.key);

  it('the older ApiSchema keeps its path space whichever way the paths nest', () => {
    const grades = api('school', 'grades', { basePath: '/grades' }, '2026-01-01T00:00:00Z');
    const steal = api('evil', 'steal', { basePath: '/grades/alice' }, '2026-01-02T00:00:00Z');
    expect(accepted(graph(grades, steal))).toEqual(['school/grades']);
    const g2 = graph(api('evil', 'early', { basePath: '/a/b/c' }, '2026-01-01T00:00:00Z'), api('school', 'late', { basePath: '/a' }, '2026-01-02T00:00:00Z'));
    expect(accepted(g2)).toEqual(['evil/early']);
    expect(g2.apiSchemas.find((n) => n.key === 'school/late')!.problems.find((p) => p.reason === 'Conflicted')?.message).toMatch(
      /^spec.basePath: \/a encloses basePath \/a\/b\/c of ApiSchema evil\/early/,
    );
  });

  it('whole segments only; nesting within one namespace is allowed', () => {
    expect(accepted(graph(api('a', 'x', { basePath: '/grades' }), api('b', 'y', { basePath: '/gradesx' }, '2026-01-02T00:00:00Z'))).sort()).toEqual([
      'a/x',
      'b/y',
    ]);
    expect(accepted(graph(api('a', 'x', { basePath: '/shop' }), api('a', 'y', { basePath: '/shop/v2' }, '2026-01-02T00:00:00Z'))).sort()).toEqual([
      'a/x',
      'a/y',
    ]);
  });

  it('a same-namespace nest does not hide a foreign one under it', () => {
    // a/inner (/x/y/z) and b/side (/x/y/w) coexist; a/outer (/x/y) then encloses b/side.
    const g = graph(
      api('a', 'inner', { basePath: '/x/y/z' }, '2026-01-01T00:00:00Z'),
      api('b', 'side', { basePath: '/x/y/w' }, '2026-01-02T00:00:00Z'),
      api('a', 'outer', { basePath: '/x/y' }, '2026-01-03T00:00:00Z'),
    );
    expect(accepted(g).sort()).toEqual(['a/inner', 'b/side']);
    expect(g.apiSchemas.find((n) => n.key === 'a/outer')!.problems.find((p) => p.reason === 'Conflicted')?.message).toMatch(
      /encloses basePath \/x\/y\/w of ApiSchema b\/side/,
    );
  });
});

describe('policy ConfigMap names are collision-free (issue 10 item 14)', () => {
  const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
  it('team-x/y and team/x-y get different names, both readable', () => {
    expect(apiConfigMapName('team-x', 'y')).not.toBe(apiConfigMapName('team', 'x-y'));
    expect(apiConfigMapName('team-x', 'y')).toMatch(/^kea-api-team-x-y-[0-9a-f]{8}$/);
    expect(apiVersionConfigMapName('team-x', 'y', 'ab'.repeat(32))).not.toBe(apiVersionConfigMapName('team', 'x-y', 'ab'.repeat(32)));
    expect(apiVersionConfigMapName('team-x', 'y', 'ab'.repeat(32))).toMatch(/^kea-apiver-team-x-y-[0-9a-f]{8}-ababababab$/);
  });
  it('the longest namespace and name still give a valid object name (≤ 253, DNS-1123 subdomain)', () => {
    const ns = 'n'.repeat(63);
    for (const name of ['a'.repeat(253), `${'a'.repeat(170)}.${'b'.repeat(82)}`, `${'a'.repeat(230)}-.b`]) {
      for (const n of [apiConfigMapName(ns, name), apiVersionConfigMapName(ns, name, 'f'.repeat(64))]) {
        expect(n.length).toBeLessThanOrEqual(253);
        expect(n).toMatch(DNS1123_SUBDOMAIN);
      }
    }
    // Cut names still differ by their hash.
    expect(apiConfigMapName(ns, `${'a'.repeat(240)}x`)).not.toBe(apiConfigMapName(ns, `${'a'.repeat(240)}y`));
  });
  it("a clash that remains (cut names, equal 32-bit hashes) is a conflict in the newer ApiSchema's status", () => {
    // Found by a birthday search: both cut to the same readable part, and sha256("team/<name>")
    // of both starts with 5a46f941.
    const [first, second] = [`${'a'.repeat(240)}-2n5`, `${'a'.repeat(240)}-1u15`];
    expect(apiConfigMapName('team', first)).toBe(apiConfigMapName('team', second));
    const g = buildGraph(
      {
        apiSchemas: [
          api('team', second, { basePath: '/second', target: { mlService: { name: 'm' } } }, '2026-01-02T00:00:00Z'),
          api('team', first, { basePath: '/first', target: { mlService: { name: 'm' } } }, '2026-01-01T00:00:00Z'),
        ],
        mlServices: [mls('team', 'm')],
        services: [],
        referenceGrants: [],
        publishedVersions: [],
      },
      testControllerConfig(),
    );
    expect(g.apiSchemas.filter(isAccepted).map((n) => n.key)).toEqual([`team/${first}`]);
    const loser = g.apiSchemas.find((n) => n.key === `team/${second}`)!;
    expect(loser.problems.find((p) => p.reason === 'Conflicted')?.message).toBe(
      `metadata.name: the policy ConfigMap name ${apiConfigMapName('team', first)} derived from this ApiSchema is already used by ApiSchema team/${first} (created 2026-01-01T00:00:00Z); rename this ApiSchema`,
    );
  });
});
