/**
 * The inputs of the controller's golden tests (controller/render.golden.test.ts for the
 * objects, controller/ir.golden.test.ts for the IR): `controller/testdata/<case>.in.yaml`
 * files, multi-document snapshots reconciled with a fixed config ({@link GOLDEN_CONFIG}) and
 * clock ({@link GOLDEN_NOW}).
 */
import { readFileSync, readdirSync } from 'node:fs';
import type { KubernetesObject } from '@kubernetes/client-node';
import YAML from 'yaml';
import type { ApiSchema, MLService } from '../../lib/api/types.js';
import { generateOpenApi } from '../../lib/openapi/generate.js';
import { sha256Hex as sha256 } from '../../lib/hash.js';
import { desiredHash } from '../kube/applied-hash.js';
import type { ClusterSnapshot, ControllerConfig, DiscoveredDoc } from '../model.js';
import { reconcile } from '../reconcile.js';
import { openApiText, versionConfigMap } from '../render/index.js';
import { testControllerConfig } from './config.js';

/** The clock of every golden case (RFC 3339). */
export const GOLDEN_NOW = '2026-01-01T00:00:00Z';
/** The configuration of every golden case, before its `TestConfig` overrides. */
export const GOLDEN_CONFIG = testControllerConfig({ internalToken: 'golden-internal-token' });
const NOW = GOLDEN_NOW;
const BASE_CONFIG = GOLDEN_CONFIG;

/** The case names of a testdata directory: each `<case>.in.yaml`, sorted. */
export function goldenCases(dataDir: string): string[] {
  return readdirSync(dataDir)
    .filter((f) => f.endsWith('.in.yaml'))
    .map((f) => f.slice(0, -'.in.yaml'.length))
    .sort();
}

/**
 * Test-only kinds in `.in.yaml` files:
 *   - `TestConfig` (`config`: ControllerConfig overrides);
 *   - `TestPublishedVersion` (`of`: name of an ApiSchema in the file, `namespace` (default
 *     `default`... as the ApiSchema's), `publishedAt`, optional `version` and `operations`
 *     replacing its info.version / spec.operations): an earlier published version, rendered
 *     into a version-history ConfigMap by the same code render uses (generateOpenApi +
 *     versionConfigMap), so history cases need no hand-written OpenAPI JSON;
 *   - `TestDiscovered` (`key`: `<ns>/<name>`, and the DiscoveredDoc fields `doc`, `error`,
 *     `fetchedAt`; `digest` defaults to the sha256 of the doc's JSON): what controller/discover
 *     found for an ApiSchema with spec.source.openapi;
 *   - `TestRouteStatus` (`route`: `<ns>/<name>` of an HTTPRoute the case renders, or `owner`:
 *     the `kea.dev/owner` label of the one HTTPRoute rendered for that owner; `generation`
 *     (default 1), `stale` (default false: the live copy carries the desired object's
 *     `kea.dev/applied-hash`; true: another one, so this run's apply rewrites it), `parents`:
 *     `status.parents` as the gateway wrote them): the live route as the watch stage caches it
 *     (metadata and status, render/route-status.ts), built from what the case renders.
 */
export function loadGoldenInput(file: string): { snapshot: ClusterSnapshot; config: ControllerConfig } {
  const snapshot: ClusterSnapshot = { apiSchemas: [], mlServices: [], services: [], referenceGrants: [], publishedVersions: [] };
  let config = BASE_CONFIG;
  const pendingVersions: Array<Record<string, unknown>> = [];
  const pendingRoutes: Array<Record<string, unknown>> = [];
  for (const doc of YAML.parseAllDocuments(readFileSync(file, 'utf8'))) {
    if (doc.errors.length) throw new Error(`${file}: ${doc.errors[0].message}`);
    const o = doc.toJS() as KubernetesObject & Record<string, unknown>;
    if (!o) continue;
    switch (o.kind) {
      case 'ApiSchema':
        snapshot.apiSchemas.push(o as unknown as ApiSchema);
        break;
      case 'MLService':
        snapshot.mlServices.push(o as unknown as MLService);
        break;
      case 'Service':
        snapshot.services.push(o);
        break;
      case 'ReferenceGrant':
        snapshot.referenceGrants.push(o);
        break;
      case 'ConfigMap':
        snapshot.publishedVersions.push(o);
        break;
      case 'Deployment':
        (snapshot.deployments ??= []).push(o);
        break;
      case 'TestConfig':
        config = { ...BASE_CONFIG, ...(o.config as Partial<ControllerConfig>) };
        break;
      case 'TestPublishedVersion':
        pendingVersions.push(o);
        break;
      case 'TestRouteStatus':
        pendingRoutes.push(o);
        break;
      case 'TestDiscovered': {
        const { key, doc, error, fetchedAt, digest } = o as unknown as { key: string } & DiscoveredDoc;
        const d: DiscoveredDoc = { fetchedAt: fetchedAt ?? '2025-12-31T23:59:00Z' };
        if (doc !== undefined) {
          d.doc = doc;
          d.digest = digest ?? sha256(JSON.stringify(doc));
        }
        if (error) d.error = error;
        (snapshot.discovered ??= {})[key] = d;
        break;
      }
      default:
        throw new Error(`${file}: unexpected kind ${o.kind}`);
    }
  }
  for (const v of pendingVersions) {
    const base = snapshot.apiSchemas.find((a) => a.metadata.name === v.of && (v.namespace === undefined || a.metadata.namespace === v.namespace));
    if (!base) throw new Error(`${file}: TestPublishedVersion of unknown ApiSchema ${String(v.of)}`);
    const spec = structuredClone(base.spec);
    if (typeof v.version === 'string') spec.info.version = v.version;
    if (Array.isArray(v.operations)) spec.operations = v.operations as ApiSchema['spec']['operations'];
    const text = openApiText(
      generateOpenApi({ ...base, spec }, { gatewayUrl: config.gatewayUrl, ...(config.issuerUrl ? { issuerUrl: config.issuerUrl } : {}) }),
    );
    const owner = { namespace: base.metadata.namespace ?? '', name: base.metadata.name, uid: base.metadata.uid };
    const cm = versionConfigMap(owner, config, { version: spec.info.version, digest: sha256(text), publishedAt: String(v.publishedAt), openapi: text });
    snapshot.publishedVersions.push({ ...cm, metadata: { ...cm.metadata, annotations: { ...cm.metadata!.annotations, 'kea.dev/applied-hash': 'x' } } });
  }
  if (pendingRoutes.length) {
    const desired = reconcile(snapshot, config, NOW).objects.filter((o) => o.kind === 'HTTPRoute');
    for (const t of pendingRoutes) {
      const found = desired.filter((o) =>
        t.route !== undefined ? `${o.metadata?.namespace}/${o.metadata?.name}` === t.route : o.metadata?.labels?.['kea.dev/owner'] === t.owner,
      );
      if (found.length !== 1)
        throw new Error(`${file}: TestRouteStatus of ${String(t.route ?? t.owner)}: the case renders ${found.length} such HTTPRoute(s), not one`);
      const d = found[0];
      const md = d.metadata!;
      snapshot.routes = [
        ...(snapshot.routes ?? []),
        {
          apiVersion: d.apiVersion,
          kind: d.kind,
          metadata: {
            name: md.name,
            namespace: md.namespace,
            labels: md.labels,
            generation: (t.generation as number | undefined) ?? 1,
            annotations: { 'kea.dev/applied-hash': t.stale ? 'stale' : desiredHash(d) },
          },
          status: { parents: t.parents ?? [] },
        } as KubernetesObject,
      ];
    }
  }
  return { snapshot, config };
}
