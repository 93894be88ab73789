/**
 * Golden-file tests of the pure controller stages graph → IR → render.
 *
 * Each `controller/testdata/<case>.in.yaml` is a multi-document snapshot (ApiSchema,
 * MLService, Service, ReferenceGrant, Deployment, ConfigMap documents; an optional
 * `kind: TestConfig` document overrides ControllerConfig fields). It is reconciled with a
 * fixed config and clock, and the output (objects, statuses, events) rendered as YAML must
 * equal `<case>.out.yaml` byte for byte. `UPDATE_GOLDEN=1` rewrites the out files.
 *
 * Beyond the recorded output, every case is checked for invariants that hold whatever the
 * golden says: determinism under shuffled input, labels and ownerReferences, Gateway API
 * schema validity of emitted routes and grants (@kubernetes-models/gateway-api validators),
 * the 16-rule limit, and configVersion = sha256(canonical JSON of the policy).
 */
import { readFileSync, readdirSync, writeFileSync, existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { KubernetesObject } from '@kubernetes/client-node';
import { HTTPRoute } from '@kubernetes-models/gateway-api/gateway.networking.k8s.io/v1';
import { ReferenceGrant } from '@kubernetes-models/gateway-api/gateway.networking.k8s.io/v1beta1';
import YAML from 'yaml';
import type { ApiSchemaStatus } from '../lib/api/types.js';
import type { PolicyService } from '../lib/policy/config.js';
import { canonicalJson } from '../lib/canonical-json.js';
import { sha256Hex as sha256 } from '../lib/hash.js';
import { type ClusterSnapshot, MAX_PUBLISHED_VERSIONS, PAUSE, type RenderOutput } from './model.js';
import { reconcile, reconcileStream } from './reconcile.js';
import { GOLDEN_NOW, loadGoldenInput } from './testing/golden-input.js';

const here = dirname(fileURLToPath(import.meta.url));
const dataDir = join(here, 'testdata');
const NOW = GOLDEN_NOW;

const load = loadGoldenInput;

/**
 * The golden form of a RenderOutput. The `openapi.json` of each ConfigMap is the OpenAPI
 * generator's output (lib/openapi has its own golden tests), so here it is summarized as its
 * servers and its `METHOD path operationId` lines; everything else is recorded verbatim.
 */
function toYaml(out: RenderOutput): string {
  const objects = out.objects.map((o) => {
    const data = (o as { data?: Record<string, string> }).data;
    if (o.kind !== 'ConfigMap' || !data?.['openapi.json']) return o;
    const doc = JSON.parse(data['openapi.json']) as {
      openapi: string;
      servers?: Array<{ url: string }>;
      paths: Record<string, Record<string, { operationId?: string }>>;
    };
    const ops = Object.entries(doc.paths).flatMap(([p, item]) =>
      Object.entries(item)
        .filter(([m]) => ['get', 'put', 'post', 'delete', 'options', 'head', 'patch'].includes(m))
        .map(([m, op]) => `${m.toUpperCase()} ${p} ${op.operationId}`),
    );
    const summary = { openapi: doc.openapi, servers: (doc.servers ?? []).map((s) => s.url), operations: ops };
    return { ...o, data: { ...data, 'openapi.json': `(summarized) ${JSON.stringify(summary)}` } };
  });
  return YAML.stringify({ ...out, objects }, { lineWidth: 0, aliasDuplicateObjects: false });
}

/** Deterministic Fisher–Yates with a small LCG, so a failing shuffle is reproducible. */
function shuffled<T>(xs: T[], seed: number): T[] {
  const a = [...xs];
  let s = seed;
  for (let i = a.length - 1; i > 0; i--) {
    s = (s * 1103515245 + 12345) % 2 ** 31;
    const j = s % (i + 1);
    [a[i], a[j]] = [a[j], a[i]];
  }
  return a;
}

const cases = readdirSync(dataDir)
  .filter((f) => f.endsWith('.in.yaml'))
  .map((f) => f.slice(0, -'.in.yaml'.length))
  .sort();

describe('controller golden files (graph → IR → render)', () => {
  it('has at least 18 cases', () => {
    expect(cases.length).toBeGreaterThanOrEqual(18);
  });

  describe.each(cases)('%s', (name) => {
    const { snapshot, config } = load(join(dataDir, `${name}.in.yaml`));
    const out = reconcile(snapshot, config, NOW);
    const yaml = toYaml(out);

    it('matches the golden file', () => {
      const goldenPath = join(dataDir, `${name}.out.yaml`);
      if (process.env.UPDATE_GOLDEN === '1' || !existsSync(goldenPath)) {
        writeFileSync(goldenPath, yaml);
        if (process.env.UPDATE_GOLDEN !== '1') throw new Error(`${goldenPath} did not exist; written, review it and re-run`);
      }
      expect(yaml).toBe(readFileSync(goldenPath, 'utf8'));
    });

    it("the stream the controller applies carries the same desired state, each owner's ConfigMap before its routes", () => {
      const stream = reconcileStream(snapshot, config, NOW);
      const objects: KubernetesObject[] = [];
      let r = stream.next();
      while (!r.done) {
        if (r.value !== PAUSE) objects.push(r.value);
        r = stream.next();
      }
      const keyOf = (o: KubernetesObject) => `${o.apiVersion}/${o.kind}/${o.metadata?.namespace}/${o.metadata?.name}`;
      expect(objects.map(keyOf).sort()).toEqual(out.objects.map(keyOf).sort());
      expect(new Set(objects.map(keyOf)).size).toBe(objects.length);
      expect(
        toYaml({
          objects: [...objects].sort((a, b) => out.objects.findIndex((o) => keyOf(o) === keyOf(a)) - out.objects.findIndex((o) => keyOf(o) === keyOf(b))),
          ...r.value,
        }),
      ).toBe(yaml);
      // Per owner: its policy ConfigMap is streamed before any of its HTTPRoutes.
      const firstRoute = new Map<string, number>();
      objects.forEach((o, i) => {
        const owner = o.metadata?.labels?.['kea.dev/owner'] ?? '';
        if (o.kind === 'HTTPRoute' && !firstRoute.has(owner)) firstRoute.set(owner, i);
      });
      objects.forEach((o, i) => {
        const owner = o.metadata?.labels?.['kea.dev/owner'] ?? '';
        if (o.kind === 'ConfigMap' && o.metadata?.labels?.['kea.dev/component'] !== 'api-version' && firstRoute.has(owner))
          expect(i).toBeLessThan(firstRoute.get(owner)!);
      });
    });

    it('no two programmed ApiSchemas of different namespaces have nested basePaths, nor one policy ConfigMap (issue 10 items 6, 14)', () => {
      const programmed = out.statuses
        // Programmed by KEA: routes rendered (True, or Unknown while the gateway's verdict is pending, or False with the gateway's refusal: docsUrl set).
        .filter((st) => st.kind === 'ApiSchema' && (st.status as ApiSchemaStatus).docsUrl !== undefined)
        .map((st) => snapshot.apiSchemas.find((a) => a.metadata.namespace === st.namespace && a.metadata.name === st.name)!);
      const nests = (a: string, b: string) => a === b || b.startsWith(`${a}/`);
      for (const a of programmed) {
        for (const b of programmed) {
          if (a === b || a.metadata.namespace === b.metadata.namespace) continue;
          expect(
            `${a.metadata.namespace}/${a.metadata.name} ${a.spec.basePath} nests ${b.metadata.namespace}/${b.metadata.name} ${b.spec.basePath}: ${nests(a.spec.basePath, b.spec.basePath)}`,
          ).toMatch(/: false$/);
        }
      }
      const policyMaps = out.objects.filter((o) => o.kind === 'ConfigMap' && o.metadata?.labels?.['kea.dev/component'] === 'api-config');
      const owners = policyMaps.map((o) => o.metadata?.annotations?.['kea.dev/api-schema']);
      expect(new Set(owners).size).toBe(owners.length);
    });

    it('is deterministic: shuffled input lists give identical output', () => {
      for (const seed of [1, 7, 42, 1234]) {
        const s: ClusterSnapshot = {
          apiSchemas: shuffled(snapshot.apiSchemas, seed),
          mlServices: shuffled(snapshot.mlServices, seed + 1),
          services: shuffled(snapshot.services, seed + 2),
          referenceGrants: shuffled(snapshot.referenceGrants, seed + 3),
          publishedVersions: shuffled(snapshot.publishedVersions, seed + 4),
          ...(snapshot.deployments ? { deployments: shuffled(snapshot.deployments, seed + 5) } : {}),
          ...(snapshot.routes ? { routes: shuffled(snapshot.routes, seed + 6) } : {}),
          ...(snapshot.discovered ? { discovered: snapshot.discovered } : {}),
        };
        expect(toYaml(reconcile(s, config, NOW))).toBe(yaml);
      }
    });

    it('labels every object, owns only same-namespace objects, and emits valid Gateway API objects', () => {
      const keys = new Set<string>();
      for (const o of out.objects) {
        const k = `${o.kind}/${o.metadata?.namespace}/${o.metadata?.name}`;
        expect(keys.has(k)).toBe(false);
        keys.add(k);
        const labels = o.metadata?.labels ?? {};
        expect(labels['kea.dev/managed-by']).toBe('kea');
        expect(labels['kea.dev/owner']).toMatch(/^[A-Za-z]+\.[a-z0-9-]+\.[a-z0-9.-]+$/);
        expect(labels['kea.dev/owner'].length).toBeLessThanOrEqual(63);
        for (const ref of o.metadata?.ownerReferences ?? []) {
          // ownerReferences only to a CR of the same namespace, with its uid from the snapshot.
          const pool = ref.kind === 'ApiSchema' ? snapshot.apiSchemas : snapshot.mlServices;
          const owner = pool.find((x) => x.metadata.uid === ref.uid);
          expect(owner?.metadata.namespace).toBe(o.metadata?.namespace);
          expect(owner?.metadata.name).toBe(ref.name);
        }
        if (o.kind === 'HTTPRoute') {
          expect(() => new HTTPRoute(o as never).validate()).not.toThrow();
          const spec = (o as unknown as { spec: { rules: unknown[] } }).spec;
          expect(spec.rules.length).toBeGreaterThan(0);
          expect(spec.rules.length).toBeLessThanOrEqual(16);
        }
        if (o.kind === 'ReferenceGrant') expect(() => new ReferenceGrant(o as never).validate()).not.toThrow();
        if (o.kind === 'ConfigMap' && labels['kea.dev/component'] === 'api-version') {
          const data = (o as unknown as { data: Record<string, string> }).data;
          expect(o.metadata?.annotations?.['kea.dev/digest']).toBe(sha256(data['openapi.json']));
          JSON.parse(data['openapi.json']);
        } else if (o.kind === 'ConfigMap') {
          const policy = JSON.parse((o as unknown as { data: Record<string, string> }).data['policy.json']) as PolicyService;
          const { configVersion, ...rest } = policy;
          expect(configVersion).toBe(sha256(canonicalJson(rest)));
          expect(o.metadata?.annotations?.['kea.dev/config-version']).toBe(configVersion);
          JSON.parse((o as unknown as { data: Record<string, string> }).data['openapi.json']);
        }
      }
      // Issue 10 item 4 (docs/adr/0009-internal-routes.md): the internal token is written only
      // into objects of the system namespace (tenants cannot read it), and only HTTPRoutes of
      // the system namespace attach to the Gateway's internal listener.
      for (const o of out.objects) {
        if (o.metadata?.namespace !== config.systemNamespace) {
          for (const t of [config.internalToken, ...(config.acceptedInternalTokens ?? [])]) expect(JSON.stringify(o)).not.toContain(t);
        }
        const parents = (o as unknown as { spec?: { parentRefs?: Array<{ sectionName?: string }> } }).spec?.parentRefs ?? [];
        if (o.kind === 'HTTPRoute' && parents.some((p) => p.sectionName === config.gateway.internalListener)) {
          expect(o.metadata?.namespace).toBe(config.systemNamespace);
        }
      }
      // Every live CR gets exactly one status, with observedGeneration = metadata.generation.
      for (const r of [...snapshot.apiSchemas, ...snapshot.mlServices]) {
        const st = out.statuses.filter((s) => s.kind === r.kind && s.namespace === r.metadata.namespace && s.name === r.metadata.name);
        if (r.metadata.deletionTimestamp) {
          // Being deleted: no status, no objects.
          expect(st).toHaveLength(0);
          expect(out.objects.filter((o) => o.metadata?.labels?.['kea.dev/owner'] === `${r.kind}.${r.metadata.namespace}.${r.metadata.name}`)).toHaveLength(0);
          continue;
        }
        expect(st).toHaveLength(1);
        expect(st[0].status.observedGeneration).toBe(r.metadata.generation);
        for (const c of st[0].status.conditions ?? []) expect(c.observedGeneration).toBe(r.metadata.generation);
      }
      // Version history: at most MAX_PUBLISHED_VERSIONS per ApiSchema, newest first, each
      // rendered as a ConfigMap; a programmed ApiSchema's current document is the newest.
      for (const s of out.statuses.filter((x) => x.kind === 'ApiSchema')) {
        const st = s.status as ApiSchemaStatus;
        const versions = st.versions ?? [];
        expect(versions.length).toBeLessThanOrEqual(MAX_PUBLISHED_VERSIONS);
        for (let i = 1; i < versions.length; i++) expect(versions[i - 1].publishedAt >= versions[i].publishedAt).toBe(true);
        const cms = out.objects.filter(
          (o) => o.metadata?.labels?.['kea.dev/component'] === 'api-version' && o.metadata?.annotations?.['kea.dev/api-schema'] === `${s.namespace}/${s.name}`,
        );
        // Render emits a version's ConfigMap only when it is new or its live one lacks what
        // render would write (apply never prunes a kept one): every other kept version is live
        // with the same digest and publishedAt.
        const rendered = cms.map((o) => o.metadata?.annotations?.['kea.dev/digest']);
        for (const d of rendered) expect(versions.map((v) => v.digest)).toContain(d);
        const livePublishedAt = new Map(
          snapshot.publishedVersions.map((o) => [o.metadata?.annotations?.['kea.dev/digest'], o.metadata?.annotations?.['kea.dev/published-at']]),
        );
        for (const v of versions) if (!rendered.includes(v.digest)) expect([v.digest, livePublishedAt.get(v.digest)]).toEqual([v.digest, v.publishedAt]);
        const current = out.objects.find(
          (o) => o.metadata?.labels?.['kea.dev/component'] === 'api-config' && o.metadata?.annotations?.['kea.dev/api-schema'] === `${s.namespace}/${s.name}`,
        );
        if (current) expect(versions[0].digest).toBe(sha256((current as unknown as { data: Record<string, string> }).data['openapi.json']));
        // Two versions that cannot be compared (a hand-made document that is not JSON): no lastDiff, and an Event says why.
        const diffFailed = out.events.some(
          (e) => e.reason === 'VersionDiffFailed' && e.regarding.kind === 'ApiSchema' && e.regarding.namespace === s.namespace && e.regarding.name === s.name,
        );
        if (versions.length < 2 || diffFailed) expect(st.lastDiff).toBeUndefined();
        else expect(st.lastDiff?.to).toBe(versions[0].version);
      }
      // Every False Accepted/ResolvedRefs condition raised a Warning event.
      for (const s of out.statuses) {
        for (const c of s.status.conditions ?? []) {
          if (c.status === 'False' && (c.type === 'Accepted' || c.type === 'ResolvedRefs')) {
            expect(out.events.some((e) => e.regarding.name === s.name && e.regarding.kind === s.kind && e.reason === c.reason && e.type === 'Warning')).toBe(
              true,
            );
          }
        }
      }
    });
  });
});
