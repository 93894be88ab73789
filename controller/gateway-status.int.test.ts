/**
 * The gateway's verdict in KEA's status (issue 11 item 3), with real refusals: the real
 * controller (startController: watch → batch → graph → IR → render → apply) on the real
 * kube-apiserver of test/global-setup.mjs, its routes programmed by a real
 * nginx-gateway-fabric 1.6.2 + nginx (dev/ngf.ts `startNgf`), which writes their
 * `status.parents`. KEA must carry NGF's own verdict into `Programmed`:
 *  - the Gateway's internal listener admits `*.other.internal` while KEA's internal hosts end
 *    in `kea.internal`: NGF writes Accepted=False NoMatchingListenerHostname on the MLService's
 *    internal route → MLService Programmed=False with that reason and NGF's message; the
 *    listener fixed (a change on the gateway side only) → Programmed=True;
 *  - the policy server Service the ApiSchema's public route points at does not exist, then
 *    exists with the wrong port: NGF writes ResolvedRefs=False BackendNotFound (two different
 *    messages) → ApiSchema Programmed=False with NGF's reason and message, shown by
 *    `kubectl get apischema`; the Service fixed → Programmed=True;
 *  - once converged, KEA writes nothing more (KEA writes only its own resources' status, the
 *    gateway only the routes': no write loop).
 *
 * The Gateway lives in a namespace of its own, which is also the controller's system
 * namespace (the internal listener admits routes of the Gateway's namespace only, ADR 0009).
 * Needs root and the NGF binary (scripts/setup.sh builds it), like dev/ngf.int.test.ts.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { KubeConfig, type KubernetesObject } from '@kubernetes/client-node';
import { FIELD_MANAGER, type Condition } from '../lib/api/types.js';
import { createLogger } from '../lib/log.js';
import { KEA_CACHE, KUBE_VERSION } from '../dev/controlplane.js';
import { NGF_CONTROLLER_NAME, NGF_VERSION, applyNgfObjects, startNgf, type RunningNgf } from '../dev/ngf.js';
import { KubeClient, RESOURCES } from './kube/client.js';
import { loadClusterAuth } from './kube/kubeconfig.js';
import { applyAll, countWrites, ensureNamespaces } from './testing/testkit.js';
import { QUICK_RECONCILE_FLAGS, testControllerArgs } from './testing/config.js';
import { waitFor } from '../dev/testing/wait.js';
import { loadConfig } from './config.js';
import { startController, type ControllerHandle } from './main.js';

const run = promisify(execFile);

// Skip only when setup has never run here (as dev/ngf.int.test.ts): after setup the NGF binary must exist.
const ngfBin = process.env.KEA_NGF_BIN ?? join(KEA_CACHE, 'bin', `ngf-${NGF_VERSION}`);
const skip = !existsSync(ngfBin) && !existsSync(join(KEA_CACHE, 'bin', `kube-apiserver-${KUBE_VERSION}`));
if (skip) process.stdout.write(`\n[gateway-status.int.test] SKIPPED: ${ngfBin} is missing and scripts/setup.sh has not run here.\n`);

const suffix = Math.random().toString(36).slice(2, 7);
const SYS = `kgs-gw-${suffix}`;
const APPS = `kgs-apps-${suffix}`;
const TOKEN = 'gateway-status-token';
const R = {
  route: RESOURCES['gateway.networking.k8s.io/v1/HTTPRoute'],
  schema: RESOURCES['kea.dev/v1alpha1/ApiSchema'],
  mls: RESOURCES['kea.dev/v1alpha1/MLService'],
};

type Status = { conditions?: Condition[] };
type Route = KubernetesObject & {
  metadata: { generation?: number };
  status?: {
    parents?: Array<{
      parentRef: { name: string; namespace?: string };
      controllerName: string;
      conditions?: Array<Condition & { observedGeneration?: number }>;
    }>;
  };
};

let client: KubeClient;
let gw: RunningNgf;
let controller: ControllerHandle | undefined;
let stateDir: string;

const programmed = async (ref: (typeof R)['schema' | 'mls'], name: string): Promise<Condition | undefined> =>
  ((await client.get<KubernetesObject & { status?: Status }>(ref, APPS, name)).status?.conditions ?? []).find((c) => c.type === 'Programmed');

/** Waits until `Programmed` of the resource has `status` (and `reason`, when given); returns it. */
const waitProgrammed = (ref: (typeof R)['schema' | 'mls'], name: string, status: string, reason?: string, timeoutMs = 30_000): Promise<Condition> =>
  waitFor(
    `${ref.kind} ${name} Programmed=${status}${reason ? ` ${reason}` : ''}`,
    timeoutMs,
    async () => {
      const c = await programmed(ref, name);
      return c?.status === status && (reason === undefined || c.reason === reason) ? c : undefined;
    },
    100,
  ).catch(async (e: Error) => {
    throw new Error(`${e.message}; last: ${JSON.stringify(await programmed(ref, name))}`);
  });

/** NGF's condition of `type` on the route, for its current generation (undefined until written). */
async function ngfCondition(namespace: string, name: string, type: string): Promise<(Condition & { observedGeneration?: number }) | undefined> {
  const r = await client.get<Route>(R.route, namespace, name);
  const p = r.status?.parents?.find(
    (x) => x.parentRef.name === 'kea' && (x.parentRef.namespace ?? namespace) === SYS && x.controllerName === NGF_CONTROLLER_NAME,
  );
  const c = p?.conditions?.find((x) => x.type === type);
  return c && c.observedGeneration === r.metadata.generation ? c : undefined;
}

async function kubectlRow(kind: string, name: string): Promise<Record<string, string>> {
  const { stdout } = await run('kubectl', ['--kubeconfig', process.env.KUBECONFIG!, 'get', kind, name, '-n', APPS], { env: process.env });
  const [head, row] = stdout.trim().split('\n');
  // Columns start where the header's words do; values may not contain two spaces.
  const starts = [...head.matchAll(/\S+( \S+)*/g)].map((m) => ({ name: m[0], at: m.index }));
  return Object.fromEntries(starts.map((c, i) => [c.name, row.slice(c.at, starts[i + 1]?.at ?? row.length).trim()]));
}

const policyService = (port: number): KubernetesObject =>
  ({
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: 'kea-policy', namespace: SYS },
    spec: { ports: [{ name: 'http', port, targetPort: 8000 }] },
  }) as KubernetesObject;

(skip ? describe.skip : describe)('the gateway verdict in Programmed, with real NGF refusals', () => {
  beforeAll(async () => {
    client = new KubeClient(loadClusterAuth(process.env.KUBECONFIG));
    stateDir = await mkdtemp(join(tmpdir(), 'kea-gws-'));
    // The internal listener admits another domain than KEA's internal hosts: a hostname mismatch.
    gw = await startNgf({ kubeconfig: process.env.KUBECONFIG!, stateDir, namespace: SYS, internalHostname: '*.other.internal' });
    await ensureNamespaces(client, APPS);
    const loaded = loadConfig(testControllerArgs(SYS, `--internal-token=${TOKEN}`, ...QUICK_RECONCILE_FLAGS, '--internal-listener-check-ms=0'));
    controller = await startController(loaded, { cluster: loadClusterAuth(process.env.KUBECONFIG), logger: createLogger('test', { level: 'silent' }) });
  }, 120_000);

  afterAll(async () => {
    await controller?.stop();
    for (const ref of [R.schema, R.mls]) for (const o of (await client.list(ref, { namespace: APPS })).items) await client.delete(ref, APPS, o.metadata!.name!);
    await client.delete(RESOURCES['v1/Service'], SYS, 'kea-policy');
    await gw?.stop();
    if (stateDir) await rm(stateDir, { recursive: true, force: true });
  });

  test("NGF's refusals (NoMatchingListenerHostname, BackendNotFound: no Service, wrong port) are Programmed=False with NGF's reason and message; fixed, Programmed=True; then no write", async () => {
    await applyAll(
      client,
      [
        {
          apiVersion: 'kea.dev/v1alpha1',
          kind: 'MLService',
          metadata: { name: 'iris' },
          spec: { framework: 'custom', port: 8080, healthPath: '/healthz', revisions: [{ name: 'v1', image: 'example.test/iris:1', weight: 100 }] },
        } as KubernetesObject,
        {
          apiVersion: 'kea.dev/v1alpha1',
          kind: 'ApiSchema',
          metadata: { name: 'iris' },
          spec: {
            target: { mlService: { name: 'iris' } },
            basePath: '/iris',
            info: { title: 'Iris', version: '1.0.0' },
            operations: [
              {
                operationId: 'predict',
                method: 'POST',
                path: '/predict',
                requestBody: { schema: { type: 'object' } },
                responses: { '200': { description: 'ok' } },
              },
            ],
          },
        } as KubernetesObject,
      ],
      APPS,
    );
    // 1. Listener hostname mismatch on the MLService's internal route (found by its owner label).
    const host = await waitProgrammed(R.mls, 'iris', 'False', 'NoMatchingListenerHostname');
    const owned = (await client.list(R.route, { namespace: SYS, labelSelector: `kea.dev/owner=MLService.${APPS}.iris` })).items;
    expect(owned).toHaveLength(1);
    const internalRoute = owned[0].metadata!.name!;
    const ngfHost = await ngfCondition(SYS, internalRoute, 'Accepted');
    expect(ngfHost).toMatchObject({ status: 'False', reason: 'NoMatchingListenerHostname' });
    expect(host.message).toContain(
      `HTTPRoute ${SYS}/${internalRoute}: Accepted=False (NoMatchingListenerHostname, ${NGF_CONTROLLER_NAME}): ${ngfHost!.message}`,
    );

    // 2. The public route's backend (the policy server Service) does not exist.
    const missing = await waitProgrammed(R.schema, 'iris', 'False', 'BackendNotFound');
    const ngfMissing = await ngfCondition(APPS, 'kea-api-iris', 'ResolvedRefs');
    expect(ngfMissing).toMatchObject({ status: 'False', reason: 'BackendNotFound' });
    expect(ngfMissing!.message).toContain('kea-policy');
    expect(missing.message).toContain(`HTTPRoute ${APPS}/kea-api-iris: ResolvedRefs=False (BackendNotFound, ${NGF_CONTROLLER_NAME}): ${ngfMissing!.message}`);
    // kubectl get apischema shows the verdict.
    expect(await kubectlRow('apischema', 'iris')).toMatchObject({ ACCEPTED: 'True', PROGRAMMED: 'False', REASON: 'BackendNotFound' });
    expect(await kubectlRow('mlservice', 'iris')).toMatchObject({ PROGRAMMED: 'False', REASON: 'NoMatchingListenerHostname' });

    // 3. The Service exists, with the wrong port: NGF's other BackendNotFound message.
    await applyAll(client, [policyService(9000)]);
    const wrongPort = await waitFor(
      'the wrong-port message',
      30_000,
      async () => {
        const c = await programmed(R.schema, 'iris');
        return c?.status === 'False' && c.message.includes('no matching port') ? c : undefined;
      },
      100,
    );
    expect(wrongPort.reason).toBe('BackendNotFound');
    expect(wrongPort.message).toContain(`${(await ngfCondition(APPS, 'kea-api-iris', 'ResolvedRefs'))!.message}`);
    expect(wrongPort.message).toContain('no matching port for Service kea-policy and port 8000');

    // 4. The right port: accepted, references resolved.
    const t4 = Date.now();
    await applyAll(client, [policyService(8000)]);
    const ok = await waitProgrammed(R.schema, 'iris', 'True', 'Programmed');
    const serviceFixedMs = Date.now() - t4;
    expect(await ngfCondition(APPS, 'kea-api-iris', 'ResolvedRefs')).toMatchObject({ status: 'True' });
    expect(ok.message).toContain(`accepted with references resolved by Gateway ${SYS}/kea: HTTPRoute ${APPS}/kea-api-iris`);
    expect(await kubectlRow('apischema', 'iris')).toMatchObject({ PROGRAMMED: 'True', REASON: 'Programmed' });

    // 5. The gateway side fixed (the listener admits KEA's internal hosts): nothing of KEA's
    // changed, only the route's status; the MLService follows.
    const kc = new KubeConfig();
    kc.loadFromFile(process.env.KUBECONFIG!);
    const t5 = Date.now();
    await applyNgfObjects(kc, { namespace: SYS, publicPort: gw.publicPort, internalPort: gw.internalPort, internalHostname: '*.kea.internal' });
    await waitProgrammed(R.mls, 'iris', 'True', 'Programmed');
    process.stdout.write(
      `gateway verdict: MLService ${JSON.stringify(host.message)}; ApiSchema ${JSON.stringify(missing.message)}; then ${JSON.stringify(wrongPort.message)}; ` +
        `Service fixed → ApiSchema Programmed=True in ${serviceFixedMs} ms, listener fixed → MLService Programmed=True in ${Date.now() - t5} ms\n`,
    );
    expect(await ngfCondition(SYS, internalRoute, 'Accepted')).toMatchObject({ status: 'True' });
    expect(await kubectlRow('mlservice', 'iris')).toMatchObject({ PROGRAMMED: 'True', REASON: 'Programmed' });

    // 6. Converged: no write by KEA (and so no route change for NGF to answer) for 3 s.
    await controller!.idle();
    const writes = (await countWrites(client, 3000)).filter((w) => w.latestManager?.startsWith(`${FIELD_MANAGER}/`));
    expect(writes).toEqual([]);
  }, 120_000);
});
