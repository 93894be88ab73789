/**
 * Unit tests of the pure helpers behind graph and IR: path matches, durations, quantities,
 * ReferenceGrant matching, self-contained schemas, examples, owner labels.
 */
import { ownerLabelValue } from '../model.js';
import { selfContained } from '../ir/schemas.js';
import { canonicalJson } from '../../lib/canonical-json.js';
import { isGranted, operationPathMatch, parseQuantity, templateParams } from './index.js';
import { parseDurationMs } from '../../lib/api/duration.js';

describe('operationPathMatch (NGF 1.6.2: Exact and PathPrefix only)', () => {
  it.each([
    ['/iris', '/predict', 'Exact', '/iris/predict'],
    ['/iris', '/', 'Exact', '/iris/'],
    ['/iris', '/items/{id}', 'PathPrefix', '/iris/items'],
    ['/iris', '/items/{id}/details', 'PathPrefix', '/iris/items'],
    ['/iris', '/{tenant}/stats', 'PathPrefix', '/iris'],
    ['/iris', '/a/b/file-{name}.json', 'PathPrefix', '/iris/a/b'],
  ])('%s + %s → %s %s', (base, path, type, value) => {
    expect(operationPathMatch(base, path)).toEqual({ type, value });
  });
  it('lists template parameters in order', () => {
    expect(templateParams('/a/{x}/b/{y}')).toEqual(['x', 'y']);
  });
});

describe('parseDurationMs (GEP-2257)', () => {
  it.each([
    ['5s', 5000],
    ['500ms', 500],
    ['1m30s', 90_000],
    ['1h', 3_600_000],
    ['1h2m3s4ms', 3_723_004],
  ])('%s = %d ms', (d, ms) => expect(parseDurationMs(d)).toBe(ms));
  it.each(['', '5', '1d', '1.5s', '-1s', '123456s'])('rejects %p', (d) => expect(parseDurationMs(d)).toBeUndefined());
});

describe('parseQuantity (resource.Quantity)', () => {
  it.each([
    ['500m', 0.5],
    ['2', 2],
    ['1Ki', 1024],
    ['1Gi', 2 ** 30],
    ['1G', 1e9],
    ['1e3', 1000],
    ['1.5', 1.5],
  ])('%s = %d', (q, n) => expect(parseQuantity(q)).toBeCloseTo(n));
  it.each(['', 'abc', '1 Gi', '1gi', '1.2.3'])('rejects %p', (q) => expect(parseQuantity(q)).toBeUndefined());
});

describe('isGranted (GEP-709 ReferenceGrant)', () => {
  const grant = (ns: string, fromNs: string, to: Record<string, string>) => ({
    apiVersion: 'gateway.networking.k8s.io/v1beta1',
    kind: 'ReferenceGrant',
    metadata: { name: 'g', namespace: ns },
    spec: { from: [{ group: 'gateway.networking.k8s.io', kind: 'HTTPRoute', namespace: fromNs }], to: [to] },
  });
  it('same namespace needs no grant', () => expect(isGranted([], 'a', 'a', 'svc')).toBe(true));
  it('grant in the target namespace, any Service', () => expect(isGranted([grant('b', 'a', { group: '', kind: 'Service' })], 'a', 'b', 'svc')).toBe(true));
  it('grant naming the Service', () => expect(isGranted([grant('b', 'a', { group: '', kind: 'Service', name: 'svc' })], 'a', 'b', 'svc')).toBe(true));
  it('grant naming another Service', () => expect(isGranted([grant('b', 'a', { group: '', kind: 'Service', name: 'other' })], 'a', 'b', 'svc')).toBe(false));
  it('grant for another source namespace', () => expect(isGranted([grant('b', 'c', { group: '', kind: 'Service' })], 'a', 'b', 'svc')).toBe(false));
  it('grant in the wrong namespace (the source)', () => expect(isGranted([grant('a', 'a', { group: '', kind: 'Service' })], 'a', 'b', 'svc')).toBe(false));
  it('grant to another kind', () => expect(isGranted([grant('b', 'a', { group: 'kea.dev', kind: 'MLService' })], 'a', 'b', 'svc')).toBe(false));
});

describe('selfContained', () => {
  const comps = {
    A: { type: 'object', properties: { b: { $ref: '#/components/schemas/B' } } },
    B: { type: 'string', minLength: 2 },
    Node: { type: 'object', properties: { next: { $ref: '#/components/schemas/Node' }, label: { $ref: '#/components/schemas/B' } } },
  };
  it('inlines non-recursive components and drops $ref siblings', () => {
    expect(selfContained({ $ref: '#/components/schemas/A', description: 'ignored' }, comps)).toEqual({
      type: 'object',
      properties: { b: { type: 'string', minLength: 2 } },
    });
  });
  it('moves recursive components under $defs', () => {
    expect(selfContained({ type: 'array', items: { $ref: '#/components/schemas/Node' } }, comps)).toEqual({
      type: 'array',
      items: { type: 'object', properties: { next: { $ref: '#/$defs/Node' }, label: { type: 'string', minLength: 2 } } },
      $defs: { Node: { type: 'object', properties: { next: { $ref: '#/$defs/Node' }, label: { type: 'string', minLength: 2 } } } },
    });
  });
  it('does not alias the input', () => {
    const out = selfContained({ $ref: '#/components/schemas/B' }, comps);
    (out as { minLength: number }).minLength = 99;
    expect(comps.B.minLength).toBe(2);
  });
});

describe('ownerLabelValue', () => {
  it('is <kind>.<ns>.<name> when short', () => expect(ownerLabelValue('ApiSchema', 'models', 'iris')).toBe('ApiSchema.models.iris'));
  it('stays a valid, unique label value of ≤ 63 characters when long', () => {
    const a = ownerLabelValue('ApiSchema', 'a-very-long-namespace-name-for-testing', 'an-equally-long-api-schema-name-1');
    const b = ownerLabelValue('ApiSchema', 'a-very-long-namespace-name-for-testing', 'an-equally-long-api-schema-name-2');
    expect(a.length).toBeLessThanOrEqual(63);
    expect(a).toMatch(/^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/);
    expect(a).not.toBe(b);
  });
});

describe('canonicalJson', () => {
  it('sorts keys recursively and drops undefined', () => {
    expect(canonicalJson({ b: 1, a: { d: [{ z: 1, y: 2 }], c: undefined } })).toBe('{"a":{"d":[{"y":2,"z":1}]},"b":1}');
  });
});
