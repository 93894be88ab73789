/**
 * The one-node cluster (dev/cluster.ts) runs real pods from a locally built image, and Services
 * and cluster DNS work as in any cluster (issue 15, milestones 1 and 2):
 *   - a Deployment of busybox httpd (e2e/cluster/fixtures/httpd, built FROM the mmdebstrap base
 *     with buildah) becomes Available and each pod answers on its pod IP; logs and exec work;
 *   - a ClusterIP Service (kube-proxy, iptables mode) answers from the host and from a pod, by
 *     IP and by its DNS names (CoreDNS at 10.96.0.10), a headless-free path through the same
 *     bridge (the hairpin: a pod reaching its own Service).
 * Reuses a running `npm run cluster`, else starts one and stops it at the end.
 */
import { Resolver } from 'node:dns/promises';
import { join } from 'node:path';
import { REPO_ROOT } from '../../dev/controlplane.js';
import { DNS_IP } from '../../dev/cluster.js';
import { ensureCluster, buildAndImport, waitFor, measure, type TestCluster } from './support.js';

const NS = 'kea-node-test';
const IMAGE = 'localhost/kea/test-httpd:1';
let c: TestCluster;

interface PodList {
  items: Array<{ metadata: { name: string }; status: { podIP?: string; phase?: string } }>;
}

beforeAll(async () => {
  c = await ensureCluster();
  const fixture = join(REPO_ROOT, 'e2e/cluster/fixtures/httpd');
  measure(
    'test image build + import (ms)',
    await buildAndImport(c.stateDir, IMAGE, join(fixture, 'Dockerfile'), fixture, ['BASE_IMAGE=localhost/kea/debian:bookworm']),
  );
  await c.kubectl(['delete', 'namespace', NS, '--ignore-not-found', '--wait=true']);
}, 600000);

afterAll(async () => {
  await c?.kubectl(['delete', 'namespace', NS, '--ignore-not-found', '--wait=false']).catch(() => undefined);
  await c?.stop();
}, 120000);

const manifest = `apiVersion: v1
kind: Namespace
metadata: { name: ${NS} }
---
apiVersion: apps/v1
kind: Deployment
metadata: { name: web, namespace: ${NS} }
spec:
  replicas: 2
  selector: { matchLabels: { app: web } }
  template:
    metadata: { labels: { app: web } }
    spec:
      securityContext: { runAsNonRoot: true }
      containers:
      - name: httpd
        image: ${IMAGE}
        imagePullPolicy: Never
        ports: [{ name: http, containerPort: 8080 }]
        readinessProbe:
          httpGet: { path: /, port: http }
          periodSeconds: 1
---
apiVersion: v1
kind: Service
metadata: { name: web, namespace: ${NS} }
spec:
  selector: { app: web }
  ports: [{ name: http, port: 80, targetPort: http }]
`;

describe('one-node cluster', () => {
  let pods: PodList['items'] = [];

  it('runs a Deployment of a locally built image; each pod answers on its pod IP', async () => {
    const t0 = Date.now();
    await c.kubectl(['apply', '--server-side', '-f', '-'], manifest);
    await c.kubectl(['-n', NS, 'rollout', 'status', 'deployment/web', '--timeout=120s']);
    measure('2-replica rollout (ms)', Date.now() - t0);
    pods = (JSON.parse(await c.kubectl(['-n', NS, 'get', 'pods', '-l', 'app=web', '-o', 'json'])) as PodList).items;
    expect(pods).toHaveLength(2);
    for (const p of pods) {
      expect(p.status.podIP).toMatch(/^10\.244\.0\.\d+$/);
      const r = await fetch(`http://${p.status.podIP}:8080/`);
      expect(r.status).toBe(200);
      expect(await r.text()).toBe('hello from kea-node\n');
    }
    // The API server reaches the kubelet (InternalIP): logs and exec.
    expect(await c.kubectl(['-n', NS, 'logs', pods[0].metadata.name])).toMatch(/response:200/);
    expect(await c.kubectl(['-n', NS, 'exec', pods[0].metadata.name, '--', 'busybox', 'wget', '-qO-', `http://${pods[1].status.podIP}:8080/`])).toBe(
      'hello from kea-node\n',
    );
  });

  it('routes a ClusterIP Service from the host, by IP and by the name cluster DNS gives it', async () => {
    const ip = (await c.kubectl(['-n', NS, 'get', 'service', 'web', '-o', 'jsonpath={.spec.clusterIP}'])).trim();
    expect(ip).toMatch(/^10\.96\./);
    const resolver = new Resolver();
    resolver.setServers([DNS_IP]);
    expect(await resolver.resolve4(`web.${NS}.svc.cluster.local`)).toEqual([ip]);
    // kube-proxy programs a new Service within its sync period (about a second): wait for the first answer.
    const t0 = Date.now();
    await waitFor('Service web from the host', 15000, async () => (await fetch(`http://${ip}/`)).status === 200);
    measure('Service routable from the host after (ms)', Date.now() - t0);
    for (let i = 0; i < 20; i++) {
      const r = await fetch(`http://${ip}/`);
      expect(r.status).toBe(200);
      expect(await r.text()).toBe('hello from kea-node\n');
    }
  });

  it('routes the Service from a pod, by short name, full name and ClusterIP, and a pod to itself (hairpin)', async () => {
    const pod = pods[0].metadata.name;
    const exec = (args: string[]) => c.kubectl(['-n', NS, 'exec', pod, '--', 'busybox', ...args]);
    const ip = (await c.kubectl(['-n', NS, 'get', 'service', 'web', '-o', 'jsonpath={.spec.clusterIP}'])).trim();
    // (busybox 1.35's `wget -T` crashes: no timeout flag.)
    for (const url of ['http://web/', `http://web.${NS}.svc.cluster.local/`, `http://${ip}/`])
      expect(await exec(['wget', '-qO-', url])).toBe('hello from kea-node\n');
    // Hairpin: a Service whose only endpoint is the calling pod (the reply crosses the same bridge port).
    await c.kubectl(['-n', NS, 'label', 'pod', pod, 'self=yes']);
    await c.kubectl(
      ['apply', '--server-side', '-f', '-'],
      `apiVersion: v1
kind: Service
metadata: { name: self, namespace: ${NS} }
spec:
  selector: { app: web, self: "yes" }
  ports: [{ name: http, port: 80, targetPort: http }]
`,
    );
    await waitFor('hairpin through Service self', 20000, async () => (await exec(['wget', '-qO-', 'http://self/'])) === 'hello from kea-node\n');
    // Every in-cluster client finds the API server as kubernetes.default.
    expect(await exec(['nslookup', 'kubernetes.default.svc.cluster.local'])).toMatch(/Address:\s+10\.96\.0\.1\b/);
    const resolv = await exec(['cat', '/etc/resolv.conf']);
    expect(resolv).toContain(`nameserver ${DNS_IP}`);
    expect(resolv).toContain(`search ${NS}.svc.cluster.local svc.cluster.local cluster.local`);
  });
});
