/** Unit tests of the apply stage's pure helpers (hashing, status merge, kubeconfig parsing). */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { KubernetesObject } from '@kubernetes/client-node';
import { Applier, mergeStatus, pool } from './index.js';
import type { KubeClient } from '../kube/client.js';
import { APPLIED_HASH, desiredHash } from '../kube/applied-hash.js';
import { objectKey } from '../../lib/kube/objects.js';
import { canonicalJson } from '../../lib/canonical-json.js';
import { PAUSE, type RenderOutput } from '../model.js';
import { loadKubeconfigFile } from '../kube/kubeconfig.js';

const obj = (weight: number): KubernetesObject =>
  ({
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'HTTPRoute',
    metadata: { name: 'r', namespace: 'n', labels: { a: 'b' } },
    spec: { rules: [{ backendRefs: [{ name: 's', weight }] }] },
  }) as KubernetesObject;

test('desiredHash: stable, sensitive to content, blind to its own annotation, does not mutate', () => {
  const a = obj(80);
  const before = JSON.stringify(a);
  const h = desiredHash(a);
  expect(h).toMatch(/^[0-9a-f]{64}$/);
  expect(JSON.stringify(a)).toBe(before);
  expect(desiredHash(obj(80))).toBe(h);
  expect(desiredHash(obj(20))).not.toBe(h);
  const annotated = obj(80);
  annotated.metadata!.annotations = { [APPLIED_HASH]: 'whatever' };
  expect(desiredHash(annotated)).toBe(h);
});

test('canonicalJson ignores key order and undefined', () => {
  expect(canonicalJson({ b: 1, a: { d: [1, { y: 2, x: 1 }], c: undefined } })).toBe(canonicalJson({ a: { d: [1, { x: 1, y: 2 }] }, b: 1 }));
});

test('mergeStatus keeps lastTransitionTime when a condition keeps its status, sets now when it flips', () => {
  const now = Date.parse('2026-01-02T03:04:05.678Z');
  const live = {
    conditions: [
      { type: 'Accepted', status: 'True' as const, reason: 'A', message: 'a', lastTransitionTime: '2025-01-01T00:00:00Z' },
      { type: 'ResolvedRefs', status: 'True' as const, reason: 'R', message: 'r', lastTransitionTime: '2025-01-01T00:00:00Z' },
    ],
  };
  const merged = mergeStatus(
    {
      observedGeneration: 2,
      conditions: [
        { type: 'Accepted', status: 'True', reason: 'A', message: 'changed text', lastTransitionTime: '2026-09-09T00:00:00Z' },
        { type: 'ResolvedRefs', status: 'False', reason: 'RefNotPermitted', message: 'no grant' },
        { type: 'Programmed', status: 'True', reason: 'P', message: 'p' },
      ],
    },
    live,
    now,
  ) as { conditions: Array<{ type: string; lastTransitionTime: string }> };
  const ltt = Object.fromEntries(merged.conditions.map((c) => [c.type, c.lastTransitionTime]));
  expect(ltt).toEqual({ Accepted: '2025-01-01T00:00:00Z', ResolvedRefs: '2026-01-02T03:04:05Z', Programmed: '2026-01-02T03:04:05Z' });
});

test('pool runs everything with bounded concurrency', async () => {
  let active = 0;
  let max = 0;
  const done: number[] = [];
  await pool([...Array(50).keys()], 4, async (i) => {
    active++;
    max = Math.max(max, active);
    await new Promise((r) => setTimeout(r, 1));
    done.push(i);
    active--;
  });
  expect(max).toBe(4);
  expect(done.sort((a, b) => a - b)).toEqual([...Array(50).keys()]);
});

test('kubeconfig: data and file credentials, token, unsupported exec rejected with a clear error', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kea-kc-'));
  writeFileSync(join(dir, 'ca.pem'), 'CA-PEM');
  const b64 = (s: string) => Buffer.from(s).toString('base64');
  writeFileSync(
    join(dir, 'config'),
    `apiVersion: v1
kind: Config
current-context: b
contexts:
- {name: a, context: {cluster: c1, user: u1}}
- {name: b, context: {cluster: c2, user: u2}}
clusters:
- {name: c1, cluster: {server: "https://a:6443/", certificate-authority-data: ${b64('CA-DATA')}}}
- {name: c2, cluster: {server: "https://b:6443", certificate-authority: ca.pem, insecure-skip-tls-verify: true}}
users:
- {name: u1, user: {client-certificate-data: ${b64('CERT')}, client-key-data: ${b64('KEY')}}}
- {name: u2, user: {token: tok}}
- {name: u3, user: {exec: {command: aws}}}
`,
  );
  const b = loadKubeconfigFile(join(dir, 'config'));
  expect(b).toMatchObject({ server: 'https://b:6443', ca: 'CA-PEM', token: 'tok', insecureSkipTlsVerify: true });
  const a = loadKubeconfigFile(join(dir, 'config'), 'a');
  expect(a).toMatchObject({ server: 'https://a:6443', ca: 'CA-DATA', cert: 'CERT', key: 'KEY' });
  writeFileSync(
    join(dir, 'exec'),
    `current-context: x
contexts: [{name: x, context: {cluster: c, user: u}}]
clusters: [{name: c, cluster: {server: "https://c"}}]
users: [{name: u, user: {exec: {command: aws}}}]
`,
  );
  expect(() => loadKubeconfigFile(join(dir, 'exec'))).toThrow(/"exec" authentication is not supported/);
  expect(() => loadKubeconfigFile(join(dir, 'config'), 'nope')).toThrow(/context "nope" not found/);
});

describe('Applier with a render stream (fake API client: request order and results only)', () => {
  type Call = { verb: string; key: string };
  function fakeClient(calls: Call[]) {
    let rv = 100;
    return {
      async apply(o: KubernetesObject) {
        calls.push({ verb: 'apply', key: objectKey(o) });
        await new Promise((r) => setTimeout(r, 1));
        return { ...o, metadata: { ...o.metadata, resourceVersion: String(++rv), generation: 1 } };
      },
      async replaceStatus(_ref: unknown, ns: string, name: string) {
        calls.push({ verb: 'status', key: `${ns}/${name}` });
        return { metadata: { resourceVersion: String(++rv) } };
      },
      async resource() {
        throw new Error('not used');
      },
      async delete() {},
      async create() {},
    };
  }
  const cm = (owner: string, name: string): KubernetesObject =>
    ({
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name, namespace: 'kea-system', labels: { 'kea.dev/owner': owner } },
      data: { a: name },
    }) as KubernetesObject;
  const route = (owner: string, name: string): KubernetesObject =>
    ({
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'HTTPRoute',
      metadata: { name, namespace: 'n', labels: { 'kea.dev/owner': owner } },
      spec: {},
    }) as KubernetesObject;

  test('applies every streamed object once, each owner ConfigMap before its route, skips up-to-date ones, and recognises its own echoes', async () => {
    const calls: Call[] = [];
    const client = fakeClient(calls);
    const applier = new Applier(client as unknown as KubeClient, { concurrency: 4 });
    const owners = Array.from({ length: 300 }, (_, i) => `ApiSchema.n.s${i}`);
    function* stream(): Generator<KubernetesObject | typeof PAUSE, Omit<RenderOutput, 'objects'>, undefined> {
      yield PAUSE;
      for (const o of owners) {
        yield cm(o, `cm-${o}`);
        yield route(o, `r-${o}`);
      }
      return { statuses: [], events: [] };
    }
    const live = { ownedIndex: () => new Map<string, KubernetesObject>(), getResource: () => undefined, apiSchemas: () => [] };
    const res = await applier.apply(stream(), live);
    expect(res.errors).toEqual([]);
    expect(res.applied).toBe(600);
    expect(res.desired).toBe(600);
    const order = calls.map((c) => c.key);
    expect(new Set(order).size).toBe(600);
    for (const o of owners)
      expect(order.indexOf(`core/ConfigMap/kea-system/cm-${o}`)).toBeLessThan(order.indexOf(`gateway.networking.k8s.io/HTTPRoute/n/r-${o}`));

    // Its own write's resourceVersion is an echo; another resourceVersion is not.
    const anyKey = `core/ConfigMap/kea-system/cm-${owners[0]}`;
    const rv = (applier as unknown as { written: Map<string, { rv?: string }> }).written.get(anyKey)!.rv!;
    const base = cm(owners[0], `cm-${owners[0]}`);
    expect(applier.isOwnEcho({ ...base, metadata: { ...base.metadata, resourceVersion: rv } })).toBe(true);
    expect(applier.isOwnEcho({ ...base, metadata: { ...base.metadata, resourceVersion: '1' } })).toBe(false);

    // Live copies carrying the applied hash (as the server returns them): nothing is written.
    const returned = new Map<string, KubernetesObject>();
    for (const o of owners) {
      for (const x of [cm(o, `cm-${o}`), route(o, `r-${o}`)]) {
        returned.set(objectKey(x), { ...x, metadata: { ...x.metadata, annotations: { [APPLIED_HASH]: desiredHash(x) }, generation: 1 } });
      }
    }
    calls.length = 0;
    const again = await new Applier(client as unknown as KubeClient, { concurrency: 4 }).apply(stream(), { ...live, ownedIndex: () => returned });
    expect(again.applied).toBe(0);
    expect(again.unchanged).toBe(600);
    expect(calls).toEqual([]);
  });
});
