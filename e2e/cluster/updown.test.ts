/**
 * `npm run cluster -- down` (dev/cluster.ts stopCluster) gives the host back exactly as the start
 * found it (issue 15: "a clean stop restores every host setting the node changed"): sysctls,
 * iptables/ip6tables (chains, rules, tables), mounts, links, the fixed paths of field notes §7, the
 * kubelet's cgroup root and the node's processes, after a run with pods and a Service (CNI
 * chains, kube-proxy rules, pod network namespaces, volume mounts). Also measures a start and a
 * stop. A cluster running before the test is stopped first and started again at the end.
 */
import { join } from 'node:path';
import { REPO_ROOT } from '../../dev/controlplane.js';
import { startCluster, stopCluster, readClusterInfo, clusterHealthy, kubectl, DEFAULT_CLUSTER_DIR } from '../../dev/cluster.js';
import { hostFacts, buildAndImport, waitFor, measure } from './support.js';

const log = (l: string) => process.stderr.write(`[cluster] ${l}\n`);
let wasRunning = false;

beforeAll(async () => {
  wasRunning = await clusterHealthy(await readClusterInfo());
  if (wasRunning) {
    const t0 = Date.now();
    await stopCluster(DEFAULT_CLUSTER_DIR, log);
    measure('stop of the running cluster (ms)', Date.now() - t0);
  }
}, 300000);

afterAll(async () => {
  if (wasRunning && !(await clusterHealthy(await readClusterInfo()))) await startCluster({ log });
}, 300000);

it('down restores every host setting the node changed', async () => {
  const before = await hostFacts();
  let t0 = Date.now();
  const info = await startCluster({ log });
  measure(`start (${info.warm ? 'warm' : 'cold'}, ms)`, Date.now() - t0);
  const fixture = join(REPO_ROOT, 'e2e/cluster/fixtures/httpd');
  await buildAndImport(DEFAULT_CLUSTER_DIR, 'localhost/kea/test-httpd:1', join(fixture, 'Dockerfile'), fixture, ['BASE_IMAGE=localhost/kea/debian:bookworm']);
  const k = (args: string[], input?: string) => kubectl(DEFAULT_CLUSTER_DIR, args, input);
  await k(
    ['apply', '--server-side', '-f', '-'],
    `apiVersion: v1
kind: Pod
metadata: { name: updown, namespace: default, labels: { app: updown } }
spec:
  containers:
  - { name: httpd, image: localhost/kea/test-httpd:1, imagePullPolicy: Never, ports: [{ containerPort: 8080 }] }
---
apiVersion: v1
kind: Service
metadata: { name: updown, namespace: default }
spec:
  selector: { app: updown }
  ports: [{ port: 80, targetPort: 8080 }]
`,
  );
  await k(['wait', '--for=condition=Ready', 'pod/updown', '--timeout=60s']);
  const ip = (await k(['get', 'service', 'updown', '-o', 'jsonpath={.spec.clusterIP}'])).trim();
  await waitFor('Service updown from the host', 15000, async () => (await fetch(`http://${ip}/`)).status === 200);
  // The running node did change the host (else the comparison below would prove nothing).
  const during = await hostFacts();
  for (const key of ['sysctls', 'iptables', 'mounts', 'links', 'paths', 'cgroups', 'processes']) expect(during[key]).not.toEqual(before[key]);

  t0 = Date.now();
  expect(await stopCluster(DEFAULT_CLUSTER_DIR, log)).toBe(true);
  measure('stop + host restore (ms)', Date.now() - t0);
  const after = await hostFacts();
  for (const key of Object.keys(before)) expect({ [key]: after[key] }).toEqual({ [key]: before[key] });
});
