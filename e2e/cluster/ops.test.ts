/**
 * Day-2 operations on the real one-node cluster with KEA's prod overlay (issue 15, milestone 4):
 * `kubectl apply -k` of overlays/prod-ngf1 with components/redis (dev/cluster/kea-prod-ngf1: two
 * replicas of each component, the policy server's HorizontalPodAutoscaler, PodDisruptionBudgets,
 * NetworkPolicies, hardened pods, Redis), then:
 *   - a rate limit of an ApiSchema holds across both policy-server replicas (Redis, issue 13);
 * and, each under a steady load of predicts through NGF's Service:
 *   - a rollout of a new policy-server image: no failed request;
 *   - a policy-server pod deleted (graceful, as a drain or an eviction does): no failed request,
 *     and the Deployment is back to two ready replicas;
 *   - a policy-server pod killed at once (`--grace-period=0 --force`, as a crash): the failures are
 *     counted and reported, and the service recovers;
 *   - a node reboot (kubelet and containerd stopped, every container killed, both started again):
 *     every KEA pod comes back and predicts answer 200 again.
 * Reuses a running `npm run cluster`, else starts one and stops it at the end.
 */
import { ensureCluster, measure, waitFor, scriptToken, postJson, startLoad, CLOSED_BEFORE_ANSWER, type TestCluster, type LoadResult } from './support.js';
import { buildImages, installKea, applyExample, describeKea, SCRIPT_SECRET, KEA_IMAGES, type KeaInstall } from '../../dev/cluster-kea.js';
import { restartNode, tagImage } from '../../dev/cluster.js';

let c: TestCluster;
let kea: KeaInstall;
let auth: Record<string, string>;
const SETOSA = [5.1, 3.5, 1.4, 0.2];

const predict = async (fresh = false) => (await postJson(`${kea.gatewayUrl}/iris/predict`, { features: [SETOSA] }, auth, fresh)).status;

interface DeploymentStatus {
  spec: { replicas: number; template: { spec: { containers: Array<{ image: string }> } } };
  status: { readyReplicas?: number; updatedReplicas?: number; availableReplicas?: number };
}

async function policyDeployment(): Promise<DeploymentStatus> {
  return JSON.parse(await c.kubectl(['-n', 'kea-system', 'get', 'deployment', 'kea-policy', '-o', 'json'])) as DeploymentStatus;
}

/** The policy server's pods that are not terminating. */
async function policyPods(): Promise<string[]> {
  const list = JSON.parse(await c.kubectl(['-n', 'kea-system', 'get', 'pods', '-l', 'app.kubernetes.io/name=kea-policy', '-o', 'json'])) as {
    items: Array<{ metadata: { name: string; deletionTimestamp?: string } }>;
  };
  return list.items.filter((p) => !p.metadata.deletionTimestamp).map((p) => p.metadata.name);
}

/** Waits until exactly the two replicas are left: no pod of an earlier rollout or deletion still terminating. */
async function settled(): Promise<void> {
  await waitFor(
    'two policy-server pods, none terminating',
    120000,
    async () => {
      const all = (await c.kubectl(['-n', 'kea-system', 'get', 'pods', '-l', 'app.kubernetes.io/name=kea-policy', '-o', 'name'])).split('\n').filter(Boolean);
      return all.length === 2 && (await policyDeployment()).status.readyReplicas === 2;
    },
    250,
  );
}

/**
 * The sum of a counter over all its series on one policy-server pod, read from its admin port
 * through the API server's pod proxy (`/api/v1/namespaces/kea-system/pods/<pod>:8001/proxy/metrics`).
 */
async function policyCounter(pod: string, metric: string): Promise<number> {
  const text = await c.kubectl(['get', '--raw', `/api/v1/namespaces/kea-system/pods/${pod}:8001/proxy/metrics`]);
  let sum = 0;
  for (const line of text.split('\n')) if (line.startsWith(`${metric}{`) || line.startsWith(`${metric} `)) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  return sum;
}

/** Runs `during` under load; returns what the load saw, after `settleMs` more of load. */
async function underLoad(what: string, during: () => Promise<void>, settleMs = 3000): Promise<LoadResult> {
  await settled();
  const load = startLoad(predict, 4);
  await new Promise((r) => setTimeout(r, 1000));
  await during();
  await new Promise((r) => setTimeout(r, settleMs));
  const res = await load.stop();
  measure(`${what}: requests, failures, retried, duration (ms)`, {
    sent: res.sent,
    ok: res.ok,
    failed: res.failures.length,
    retried: res.retried.length,
    ms: res.durationMs,
  });
  if (res.failures.length) measure(`${what}: failures`, res.failures.slice(0, 20));
  if (res.retried.length) measure(`${what}: retried`, res.retried.slice(0, 20));
  return res;
}

beforeAll(async () => {
  c = await ensureCluster();
  await buildImages(['kea', 'ngf', 'examples', 'redis'], (l) => process.stderr.write(`${l}\n`));
  const t0 = Date.now();
  kea = await installKea(c.stateDir, (l) => process.stderr.write(`[install] ${l}\n`), { overlay: 'prod' });
  measure('prod overlay installed (ms)', Date.now() - t0);
  await applyExample(c.stateDir, 'iris-v1');
  auth = { authorization: `Bearer ${await scriptToken(kea.idpIssuer, 'student', SCRIPT_SECRET)}` };
  try {
    // prod sets no replica count for kea-policy: its HorizontalPodAutoscaler (minReplicas 2) raises a new install from 1 to 2.
    await waitFor('two ready policy-server replicas (the HPA minimum)', 180000, async () => (await policyDeployment()).status.readyReplicas === 2, 500);
    await waitFor('iris predict through the gateway', 240000, async () => (await predict()) === 200, 250);
  } catch (e) {
    throw new Error(`${(e as Error).message}\n${await describeKea(c.stateDir)}`);
  }
}, 1800000);

afterAll(async () => {
  await c?.stop();
}, 120000);

describe('KEA with the prod overlay on the real cluster', () => {
  it('runs two replicas of each component, with PodDisruptionBudgets and NetworkPolicies', async () => {
    for (const d of ['kea-controller', 'kea-policy']) {
      const s = JSON.parse(await c.kubectl(['-n', 'kea-system', 'get', 'deployment', d, '-o', 'json'])) as DeploymentStatus;
      expect({ d, replicas: s.spec.replicas, ready: s.status.readyReplicas }).toEqual({ d, replicas: 2, ready: 2 });
    }
    const pdbs = JSON.parse(await c.kubectl(['-n', 'kea-system', 'get', 'pdb', '-o', 'json'])) as {
      items: Array<{ metadata: { name: string }; status: { disruptionsAllowed: number } }>;
    };
    expect(pdbs.items.map((p) => [p.metadata.name, p.status.disruptionsAllowed]).sort()).toEqual([
      ['kea-controller', 1],
      ['kea-policy', 1],
    ]);
    const nps = await c.kubectl(['get', 'networkpolicies', '-A', '-l', 'app.kubernetes.io/part-of=kea', '-o', 'name']);
    expect(nps.split('\n').filter(Boolean).length).toBeGreaterThanOrEqual(2);
    const hpa = JSON.parse(await c.kubectl(['-n', 'kea-system', 'get', 'hpa', 'kea-policy', '-o', 'json'])) as {
      spec: { scaleTargetRef: { kind: string; name: string }; minReplicas: number };
    };
    expect(hpa.spec).toMatchObject({ scaleTargetRef: { kind: 'Deployment', name: 'kea-policy' }, minReplicas: 2 });
  });

  it('holds one rate limit across both policy-server replicas through Redis', async () => {
    // A limit of its own name each run: counters live in Redis for their period (1 h here, so no
    // window rolls over during the test).
    const name = `e2e-${Date.now().toString(36)}`;
    const patch = (limit: unknown) =>
      c.kubectl(['-n', 'default', 'patch', 'apischema', 'iris', '--type', 'merge', '-p', JSON.stringify({ spec: { defaults: { rateLimit: limit } } })]);
    await patch([{ name, requests: 30, period: '1h', key: 'identity' }]);
    try {
      const teacher = { authorization: `Bearer ${await scriptToken(kea.idpIssuer, 'teacher', SCRIPT_SECRET)}` };
      const ask = (headers: Record<string, string>) => postJson(`${kea.gatewayUrl}/iris/predict`, { features: [SETOSA] }, headers, true);
      // Both replicas have the new configuration once ten answers in a row name the limit (the
      // teacher's own counter is spent on that, the student's is untouched).
      let inARow = 0;
      await waitFor(
        'the limit on every replica',
        120000,
        async () => {
          inARow = (await ask(teacher)).headers.get('ratelimit-policy')?.includes(`"${name}"`) ? inARow + 1 : 0;
          return inARow >= 10;
        },
        100,
      );
      const statuses: number[] = [];
      const served = await Promise.all((await policyPods()).map((p) => policyCounter(p, 'kea_policy_requests_total')));
      for (let i = 0; i < 40; i++) {
        const r = await ask(auth);
        statuses.push(r.status);
        if (r.status === 429) {
          expect(r.headers.get('content-type')).toMatch(/^application\/problem\+json/);
          expect(Number(r.headers.get('retry-after'))).toBeGreaterThan(0);
          expect(r.headers.get('ratelimit')).toMatch(new RegExp(`^"${name}";r=0;t=\\d+`));
        }
      }
      const after = await Promise.all((await policyPods()).map((p) => policyCounter(p, 'kea_policy_requests_total')));
      const perReplica = after.map((n, i) => n - served[i]);
      measure('rate limit 30/h over 40 calls: 200s, 429s, calls per replica', {
        ok: statuses.filter((s) => s === 200).length,
        limited: statuses.filter((s) => s === 429).length,
        perReplica,
      });
      // Each replica alone would have let 30 through (40 in all); shared, exactly 30 pass.
      expect(perReplica.every((n) => n > 0)).toBe(true);
      expect(statuses.filter((s) => s === 200).length).toBe(30);
      expect(statuses.slice(30).every((s) => s === 429)).toBe(true);
    } finally {
      await patch(null);
      // The later tests' load must not meet the limit on a replica that has not dropped it yet.
      let free = 0;
      await waitFor(
        'the limit gone from every replica',
        120000,
        async () => {
          free = (await postJson(`${kea.gatewayUrl}/iris/predict`, { features: [SETOSA] }, auth, true)).headers.get('ratelimit-policy') ? 0 : free + 1;
          return free >= 10;
        },
        100,
      );
    }
  });

  it('rolls out a new policy-server image under load without a failed request', async () => {
    const current = (await policyDeployment()).spec.template.spec.containers[0].image;
    // A new image reference for the same build: the rollout replaces every pod, one at a time.
    const next = current === KEA_IMAGES[1] ? `${KEA_IMAGES[1]}-rollout` : KEA_IMAGES[1];
    await tagImage(c.stateDir, KEA_IMAGES[1], next);
    const res = await underLoad('rollout', async () => {
      const t0 = Date.now();
      await c.kubectl(['-n', 'kea-system', 'set', 'image', 'deployment/kea-policy', `policy-server=${next}`]);
      await c.kubectl(['-n', 'kea-system', 'rollout', 'status', 'deployment/kea-policy', '--timeout=240s']);
      measure('rollout of two replicas (ms)', Date.now() - t0);
    });
    expect((await policyDeployment()).spec.template.spec.containers[0].image).toBe(next);
    expect(res.ok).toBeGreaterThan(50);
    expect(res.failures).toEqual([]);
  });

  it('keeps answering when a policy-server pod is deleted under load, and recovers two replicas', async () => {
    const [victim] = await policyPods();
    const res = await underLoad('graceful pod delete', async () => {
      const t0 = Date.now();
      await c.kubectl(['-n', 'kea-system', 'delete', 'pod', victim, '--wait=true']);
      await waitFor('two ready policy-server replicas', 120000, async () => (await policyDeployment()).status.readyReplicas === 2, 250);
      measure('pod deleted to two ready replicas (ms)', Date.now() - t0);
    });
    expect(await policyPods()).not.toContain(victim);
    expect(res.failures).toEqual([]);
  });

  it('recovers from a policy-server pod killed at once (a crash), counting what failed', async () => {
    const [victim] = await policyPods();
    let recoveredMs = 0;
    const res = await underLoad('forced pod kill', async () => {
      const t0 = Date.now();
      await c.kubectl(['-n', 'kea-system', 'delete', 'pod', victim, '--grace-period=0', '--force']);
      await waitFor('two ready policy-server replicas', 120000, async () => (await policyDeployment()).status.readyReplicas === 2, 250);
      recoveredMs = Date.now() - t0;
      measure('pod killed to two ready replicas (ms)', recoveredMs);
    });
    // Requests in flight on the killed pod fail (nginx does not retry a POST it has sent), and
    // NGF's reloads close kept-alive connections (a retry can meet a second one); the gateway
    // stops choosing the pod once NGF has its EndpointSlice change.
    expect(res.failures.filter((f) => !/^50[234]$/.test(f.outcome) && !CLOSED_BEFORE_ANSWER.test(f.outcome))).toEqual([]);
    expect(res.failures.filter((f) => f.atMs > 1000 + recoveredMs)).toEqual([]);
    expect(await predict()).toBe(200);
  });

  it('comes back after a node reboot (kubelet and containerd restarted, every container killed)', async () => {
    const t0 = Date.now();
    await restartNode(c.stateDir, (l) => process.stderr.write(`[reboot] ${l}\n`));
    measure('node Ready after the reboot (ms)', Date.now() - t0);
    try {
      await waitFor('iris predict after the reboot', 300000, async () => (await predict()) === 200, 500);
    } catch (e) {
      throw new Error(`${(e as Error).message}\n${await describeKea(c.stateDir)}`);
    }
    measure('reboot to first 200 predict (ms)', Date.now() - t0);
    await c.kubectl(['-n', 'kea-system', 'rollout', 'status', 'deployment/kea-controller', 'deployment/kea-policy', '--timeout=180s']);
    await c.kubectl(['-n', 'nginx-gateway', 'rollout', 'status', 'deployment/ngf-nginx-gateway-fabric', '--timeout=180s']);
    measure('reboot to every KEA Deployment available (ms)', Date.now() - t0);
    // The controller is back and its verdict stands.
    const status = JSON.parse(await c.kubectl(['-n', 'default', 'get', 'apischema', 'iris', '-o', 'json'])) as {
      status: { conditions: Array<{ type: string; status: string }> };
    };
    expect(status.status.conditions.find((x) => x.type === 'Accepted')?.status).toBe('True');
    const after = startLoad(predict, 2);
    await new Promise((r) => setTimeout(r, 3000));
    const res = await after.stop();
    expect(res.failures).toEqual([]);
  });
});
