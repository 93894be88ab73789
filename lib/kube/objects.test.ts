/** Object identity and order shared by render, apply and the incremental reconcile (lib/kube/objects.ts). */
import { KIND_ORDER, compareObjects, kindRank, objectKey } from './objects.js';

test('objectKey is version-free: group/kind/namespace/name', () => {
  expect(objectKey({ apiVersion: 'gateway.networking.k8s.io/v1beta1', kind: 'HTTPRoute', metadata: { namespace: 'n', name: 'r' } })).toBe(
    objectKey({ apiVersion: 'gateway.networking.k8s.io/v1', kind: 'HTTPRoute', metadata: { namespace: 'n', name: 'r' } }),
  );
  expect(objectKey({ apiVersion: 'gateway.networking.k8s.io/v1', kind: 'HTTPRoute', metadata: { namespace: 'n', name: 'r' } })).toBe(
    'gateway.networking.k8s.io/HTTPRoute/n/r',
  );
  expect(objectKey({ apiVersion: 'v1', kind: 'Service', metadata: { namespace: 'n', name: 'r' } })).toBe('core/Service/n/r');
  expect(objectKey({ kind: 'Namespace', metadata: { name: 'x' } })).toBe('core/Namespace//x');
});

test('every kind KEA renders or applies has a rank; referenced kinds come before what refers to them', () => {
  const rendered = ['ConfigMap', 'Secret', 'Service', 'Deployment', 'ReferenceGrant', 'HTTPRoute', 'ClientSettingsPolicy', 'UpstreamSettingsPolicy'];
  for (const k of rendered) expect(kindRank(k)).toBeLessThan(KIND_ORDER.length);
  expect(new Set(KIND_ORDER).size).toBe(KIND_ORDER.length);
  expect(kindRank('ConfigMap')).toBeLessThan(kindRank('HTTPRoute'));
  expect(kindRank('Service')).toBeLessThan(kindRank('HTTPRoute'));
  expect(kindRank('ReferenceGrant')).toBeLessThan(kindRank('HTTPRoute'));
  expect(kindRank('HTTPRoute')).toBeLessThan(kindRank('ClientSettingsPolicy'));
  expect(kindRank('Gateway')).toBe(KIND_ORDER.length);
  expect(kindRank(undefined)).toBe(KIND_ORDER.length);
});

test('compareObjects orders by kind rank, then namespace/name', () => {
  const o = (kind: string, namespace: string, name: string) => ({ kind, metadata: { namespace, name } });
  const sorted = [o('HTTPRoute', 'a', 'r'), o('Service', 'b', 's'), o('ConfigMap', 'z', 'c'), o('Service', 'a', 't'), o('Unknown', 'a', 'a')].sort(
    compareObjects,
  );
  expect(sorted.map((x) => `${x.kind}/${x.metadata.namespace}/${x.metadata.name}`)).toEqual([
    'ConfigMap/z/c',
    'Service/a/t',
    'Service/b/s',
    'HTTPRoute/a/r',
    'Unknown/a/a',
  ]);
});
