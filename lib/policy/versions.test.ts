/**
 * Reading version-history ConfigMaps (lib/policy/versions.ts): the one rule set the controller
 * and the policy server share.
 */
import { sha256Hex } from '../hash.js';
import { EPOCH, newestPerDigest, sortNewestFirst, versionFields, versionOwnerId } from './versions.js';

const doc = JSON.stringify({ openapi: '3.0.3', info: { title: 'Iris', version: '2.0.0' }, paths: {} });

test('annotations win; nothing else is read when all are present', () => {
  let reads = 0;
  const text = () => {
    reads++;
    return doc;
  };
  const a = { 'kea.dev/version': '1.0.0+b', 'kea.dev/digest': 'd1', 'kea.dev/published-at': '2026-01-02T00:00:00Z' };
  expect(versionFields({ annotations: a, labels: { 'kea.dev/api-version': '1.0.0-b' }, creationTimestamp: '2025-01-01T00:00:00Z' }, text)).toEqual({
    version: '1.0.0+b',
    digest: 'd1',
    publishedAt: '2026-01-02T00:00:00Z',
  });
  expect(reads).toBe(0);
});

test('fallbacks: label, then info.version; sha256 of the text; creationTimestamp, then the epoch', () => {
  expect(versionFields({ labels: { 'kea.dev/api-version': '1.0.0-b' } }, () => doc).version).toBe('1.0.0-b');
  expect(versionFields({}, () => doc)).toEqual({ version: '2.0.0', digest: sha256Hex(doc), publishedAt: EPOCH });
  expect(versionFields({ creationTimestamp: new Date(Date.UTC(2026, 0, 3)) }, () => doc).publishedAt).toBe('2026-01-03T00:00:00.000Z');
  expect(versionFields({ creationTimestamp: '2026-01-04T00:00:00Z' }, () => doc).publishedAt).toBe('2026-01-04T00:00:00Z');
  expect(versionFields({}, () => '{not json').version).toBe('');
  expect(versionFields({}, () => '{"info":{"version":3}}').version).toBe('');
});

test('the owning ApiSchema: annotation, else an owner label that was not shortened', () => {
  expect(versionOwnerId({ annotations: { 'kea.dev/api-schema': 'models/iris' }, labels: { 'kea.dev/owner': 'ApiSchema.x.y' } })).toBe('models/iris');
  expect(versionOwnerId({ labels: { 'kea.dev/owner': 'ApiSchema.models.iris.v2' } })).toBe('models/iris.v2');
  expect(versionOwnerId({ labels: { 'kea.dev/owner': 'ApiSchema.models.a-very-long-name-cut-short-0123456789-0a1b2c3d4e' } })).toBeUndefined();
  expect(versionOwnerId({ labels: { 'kea.dev/owner': 'MLService.models.iris' } })).toBeUndefined();
  expect(versionOwnerId({})).toBeUndefined();
});

test('newest first by instant (not text), ties by preferred digest then name; one per digest, the newest', () => {
  const e = (name: string, digest: string, publishedAt: string) => ({ name, digest, publishedAt });
  const list = [
    e('a', 'd1', '2026-01-01T00:00:40Z'),
    e('b', 'd2', '2026-01-01T00:00:40.5Z'),
    e('c', 'd3', '2026-01-01T00:00:40Z'),
    e('d', 'd1', '2026-01-02T00:00:00Z'),
  ];
  expect(sortNewestFirst(list).map((x) => x.name)).toEqual(['d', 'b', 'a', 'c']);
  expect(sortNewestFirst(list, 'd3').map((x) => x.name)).toEqual(['d', 'b', 'c', 'a']);
  expect(newestPerDigest(list).map((x) => x.name)).toEqual(['d', 'b', 'c']);
  expect(newestPerDigest([...list].reverse()).map((x) => x.name)).toEqual(['d', 'b', 'c']);
});
