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
import type { ApiSchema, MLService } from '../lib/api/types.js';
import type { PolicyService } from '../lib/policy/config.js';
import { canonicalJson, sha256 } from './ir/index.js';
import type { ClusterSnapshot, ControllerConfig, RenderOutput } from './model.js';
import { reconcile } from './reconcile.js';

const here = dirname(fileURLToPath(import.meta.url));
const dataDir = join(here, 'testdata');
const NOW = '2026-01-01T00:00:00Z';
const BASE_CONFIG: ControllerConfig = {
  systemNamespace: 'kea-system',
  gateway: { namespace: 'kea-system', name: 'kea', publicListener: 'public', internalListener: 'internal' },
  policyServer: { name: 'kea-policy', port: 8000 },
  internalToken: 'golden-internal-token',
  gatewayUrl: 'http://gateway.test:8080',
  internalDomain: 'kea.internal',
};

function load(file: string): { snapshot: ClusterSnapshot; config: ControllerConfig } {
  const snapshot: ClusterSnapshot = { apiSchemas: [], mlServices: [], services: [], referenceGrants: [], publishedVersions: [] };
  let config = BASE_CONFIG;
  for (const doc of YAML.parseAllDocuments(readFileSync(file, 'utf8'))) {
    if (doc.errors.length) throw new Error(`${file}: ${doc.errors[0].message}`);
    const o = doc.toJS() as KubernetesObject & Record<string, unknown>;
    if (!o) continue;
    switch (o.kind) {
      case 'ApiSchema': snapshot.apiSchemas.push(o as unknown as ApiSchema); break;
      case 'MLService': snapshot.mlServices.push(o as unknown as MLService); break;
      case 'Service': snapshot.services.push(o); break;
      case 'ReferenceGrant': snapshot.referenceGrants.push(o); break;
      case 'ConfigMap': snapshot.publishedVersions.push(o); break;
      case 'Deployment': (snapshot.deployments ??= []).push(o); break;
      case 'TestConfig': config = { ...BASE_CONFIG, ...(o.config as Partial<ControllerConfig>) }; break;
      default: throw new Error(`${file}: unexpected kind ${o.kind}`);
    }
  }
  return { snapshot, config };
}

/**
 * The golden form of a RenderOutput. The `openapi.json` of each ConfigMap is the OpenAPI
 * generator's output (lib/openapi has its own golden tests), so here it is summarized as its
 * servers and its `METHOD path operationId` lines; everything else is recorded verbatim.
 */
function toYaml(out: RenderOutput): string {
  const objects = out.objects.map((o) => {
    const data = (o as { data?: Record<string, string> }).data;
    if (o.kind !== 'ConfigMap' || !data?.['openapi.json']) return o;
    const doc = JSON.parse(data['openapi.json']) as { openapi: string; servers?: Array<{ url: string }>; paths: Record<string, Record<string, { operationId?: string }>> };
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

    it('is deterministic: shuffled input lists give identical output', () => {
      for (const seed of [1, 7, 42, 1234]) {
        const s: ClusterSnapshot = {
          apiSchemas: shuffled(snapshot.apiSchemas, seed),
          mlServices: shuffled(snapshot.mlServices, seed + 1),
          services: shuffled(snapshot.services, seed + 2),
          referenceGrants: shuffled(snapshot.referenceGrants, seed + 3),
          publishedVersions: shuffled(snapshot.publishedVersions, seed + 4),
          ...(snapshot.deployments ? { deployments: shuffled(snapshot.deployments, seed + 5) } : {}),
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
        if (o.kind === 'ConfigMap') {
          const policy = JSON.parse((o as unknown as { data: Record<string, string> }).data['policy.json']) as PolicyService;
          const { configVersion, ...rest } = policy;
          expect(configVersion).toBe(sha256(canonicalJson(rest)));
          expect(o.metadata?.annotations?.['kea.dev/config-version']).toBe(configVersion);
          JSON.parse((o as unknown as { data: Record<string, string> }).data['openapi.json']);
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
      // Every False Accepted/ResolvedRefs condition raised a Warning event.
      for (const s of out.statuses) {
        for (const c of s.status.conditions ?? []) {
          if (c.status === 'False' && (c.type === 'Accepted' || c.type === 'ResolvedRefs')) {
            expect(out.events.some((e) => e.regarding.name === s.name && e.regarding.kind === s.kind && e.reason === c.reason && e.type === 'Warning')).toBe(true);
          }
        }
      }
    });
  });
});
