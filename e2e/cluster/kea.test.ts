/**
 * KEA on the real one-node cluster, installed as a user installs it (issue 15, milestone 4):
 * NGF 1.6.2 as pods (dev/cluster/ngf-1.6.2.yaml), `kubectl apply --server-side -k` of the dev
 * overlay with the NGF 1.x component (dev/cluster/kea-dev-ngf1), the controller and the policy
 * server as Deployments from images built here with buildah, the examples' MLService/ApiSchema.
 * Then the README quick start through NGF's Service (kube-proxy → nginx in NGF's pod → policy
 * server pod → nginx's internal listener → model pods): /docs, 200, 400, 401, X-Cache MISS/HIT.
 * Then the iris canary of examples/iris-v2 (v1 80 %, v2 20 %): the split NGF applies, measured.
 * Reuses a running `npm run cluster`, else starts one and stops it at the end.
 */
import { ensureCluster, measure, waitFor, scriptToken, postJson, type TestCluster } from './support.js';
import { buildImages, installKea, applyExample, describeKea, SCRIPT_SECRET, type KeaInstall } from '../../dev/cluster-kea.js';

let c: TestCluster;
let kea: KeaInstall;
const SETOSA = [5.1, 3.5, 1.4, 0.2];
const VERSICOLOR = [7.0, 3.2, 4.7, 1.4];
const VIRGINICA = [6.3, 3.3, 6.0, 2.5];

const token = (role: 'student' | 'teacher') => scriptToken(kea.idpIssuer, role, SCRIPT_SECRET);
const post = (path: string, body: unknown, headers: Record<string, string> = {}) => postJson(`${kea.gatewayUrl}${path}`, body, headers);

beforeAll(async () => {
  c = await ensureCluster();
  let t0 = Date.now();
  await buildImages(['kea', 'ngf', 'examples'], (l) => process.stderr.write(`${l}\n`));
  measure('images built or found cached (ms)', Date.now() - t0);
  t0 = Date.now();
  kea = await installKea(c.stateDir, (l) => process.stderr.write(`[install] ${l}\n`), { overlay: 'dev' });
  measure('KEA + NGF installed (ms)', Date.now() - t0);
  t0 = Date.now();
  for (const e of ['iris-v1', 'wine']) await applyExample(c.stateDir, e);
  const student = await token('student');
  try {
    await waitFor(
      'iris predict through the gateway',
      240000,
      async () => (await post('/iris/predict', { features: [SETOSA] }, { authorization: `Bearer ${student}` })).status === 200,
    );
    await waitFor(
      'wine model through the gateway',
      120000,
      async () => (await fetch(`${kea.gatewayUrl}/wine/model`, { headers: { authorization: `Bearer ${await token('teacher')}` } })).status === 200,
    );
  } catch (e) {
    throw new Error(`${(e as Error).message}\n${await describeKea(c.stateDir)}`);
  }
  measure('examples applied to first 200 (ms)', Date.now() - t0);
}, 1800000);

afterAll(async () => {
  await c?.stop();
}, 120000);

describe('the README quick start on the real cluster', () => {
  it('serves the docs catalog and each service page', async () => {
    for (const path of ['/docs', '/docs/default/iris']) {
      const r = await fetch(`${kea.gatewayUrl}${path}`);
      expect(r.status).toBe(200);
      expect(r.headers.get('content-type')).toMatch(/^text\/html/);
      await r.text();
    }
  });

  it('answers a valid predict with the real model output (200)', async () => {
    const r = await post('/iris/predict', { features: [SETOSA, VERSICOLOR, VIRGINICA] }, { authorization: `Bearer ${await token('student')}` });
    expect(r.status).toBe(200);
    expect(JSON.parse(r.text)).toEqual({ classes: ['setosa', 'versicolor', 'virginica'] });
  });

  it('refuses bad input with 400 problem+json naming the field', async () => {
    const r = await post('/iris/predict', { features: [[5.1, 'x', 1.4]] }, { authorization: `Bearer ${await token('student')}` });
    expect(r.status).toBe(400);
    expect(r.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(JSON.stringify(JSON.parse(r.text).errors)).toContain('/features/0');
  });

  it('refuses a script without credentials with 401', async () => {
    const r = await post('/iris/predict', {});
    expect(r.status).toBe(401);
    expect(r.headers.get('www-authenticate')).toMatch(/^Bearer/);
  });

  it('answers a repeated cacheable call from the cache (X-Cache MISS, then HIT)', async () => {
    const auth = { authorization: `Bearer ${await token('teacher')}` };
    const sample = [14.23 + Math.round(Math.random() * 1000) / 10000, 1.71, 2.43, 15.6, 127, 2.8, 3.06, 0.28, 2.29, 5.64, 1.04, 3.92, 1065];
    const a = await post('/wine/predict', { samples: [sample] }, auth);
    const b = await post('/wine/predict', { samples: [sample] }, auth);
    expect(a.status).toBe(200);
    expect(a.headers.get('x-cache')).toBe('MISS');
    expect(b.status).toBe(200);
    expect(b.headers.get('x-cache')).toBe('HIT');
    expect(b.text).toBe(a.text);
  });
});

describe('an 80/20 canary on the real cluster (examples/iris-v2)', () => {
  afterAll(async () => {
    await applyExample(c.stateDir, 'iris-v1');
  }, 60000);

  it('splits predicts about 80/20 between revisions v1 and v2', async () => {
    await applyExample(c.stateDir, 'iris-v2');
    const auth = { authorization: `Bearer ${await token('student')}` };
    const revisionOf = (text: string) => ('labels' in (JSON.parse(text) as object) ? 'v2' : 'v1');
    // v2's pod must be Ready and its weight programmed before the split can be measured.
    const t0 = Date.now();
    await waitFor(
      'a predict answered by v2',
      240000,
      async () => {
        const r = await post('/iris/predict', { features: [SETOSA] }, auth);
        return r.status === 200 && revisionOf(r.text) === 'v2';
      },
      200,
    );
    measure('canary applied to first v2 answer (ms)', Date.now() - t0);
    const n = 300;
    const counts = { v1: 0, v2: 0 };
    for (let i = 0; i < n; i++) {
      const r = await post('/iris/predict', { features: [SETOSA] }, auth);
      expect(r.status).toBe(200);
      counts[revisionOf(r.text)]++;
    }
    measure('canary split of 300 predicts', counts);
    // 300 draws at p = 0.2: standard deviation 6.9 answers (2.3 %); ±8 % is 3.5 sigma.
    expect(Math.abs(counts.v2 / n - 0.2)).toBeLessThanOrEqual(0.08);
  });
});
