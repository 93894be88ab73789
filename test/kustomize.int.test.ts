/**
 * The kustomize base and overlays (kustomize/), and the overlays with components/redis, render
 * with `kubectl kustomize` and are accepted by the real kube-apiserver of test/global-setup.ts
 * with `kubectl apply --server-side --dry-run=server` (Gateway API CRDs installed by the setup).
 * The RBAC is checked for least privilege with `kubectl auth can-i` as the service accounts,
 * after a real apply of just the RBAC objects into a throw-away namespace, and for
 * sufficiency by running the real controller with its service account's token on a
 * separate control plane (so it cannot touch other suites' objects).
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { PassThrough } from 'node:stream';
import { promisify } from 'node:util';
import { parseAllDocuments, stringify } from 'yaml';
import { installCrds, startControlPlane, type ControlPlane } from '../dev/controlplane.js';
import { loadConfig } from '../controller/config.js';
import { startController, type ControllerHandle } from '../controller/main.js';
import { createLogger } from '../lib/log.js';
import { apiConfigMapName } from '../lib/policy/config.js';

const run = promisify(execFile);
const ROOT = process.cwd();

interface Obj {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  [k: string]: unknown;
}
// Loose accessors for rendered objects.
/* eslint-disable @typescript-eslint/no-explicit-any */
type Any = any;

/**
 * The dry runs get a control plane of their own: other suites leave objects on the shared one
 * (the local stack's Gateway and policy Service), and a dry-run apply would conflict with them.
 */
let dryRunCp: ControlPlane | undefined;

function kubectl(args: string[], input?: string): Promise<{ stdout: string; stderr: string }> {
  const env = dryRunCp ? { ...process.env, KUBECONFIG: dryRunCp.kubeconfig } : process.env;
  return new Promise((resolve, reject) => {
    const child = execFile('kubectl', args, { env, maxBuffer: 32 << 20 }, (err, stdout, stderr) => {
      if (err) reject(Object.assign(err, { stdout, stderr }));
      else resolve({ stdout, stderr });
    });
    if (input !== undefined) child.stdin!.end(input);
  });
}

/** Temporary kustomizations made by {@link withComponents}, removed after the suite. */
const tempDirs: string[] = [];

/**
 * A user's overlay as docs/install.md describes it: `resources: [<overlay>]` plus
 * `components: [...]` (paths relative to the repository), written to a temporary directory.
 * kustomize accepts only relative paths there, so they are made relative to that directory.
 * @returns the directory's absolute path, for {@link render}.
 */
function withComponents(overlay: string, components: string[]): string {
  const dir = mkdtempSync(join(tmpdir(), 'kea-kustomize-'));
  tempDirs.push(dir);
  const rel = (p: string) => relative(dir, join(ROOT, p));
  writeFileSync(
    join(dir, 'kustomization.yaml'),
    stringify({ apiVersion: 'kustomize.config.k8s.io/v1beta1', kind: 'Kustomization', resources: [rel(overlay)], components: components.map(rel) }),
  );
  return dir;
}
const PROD_REDIS = withComponents('kustomize/overlays/prod', ['kustomize/components/redis']);
const DEV_REDIS = withComponents('kustomize/overlays/dev', ['kustomize/components/redis']);
afterAll(() => {
  for (const d of tempDirs) rmSync(d, { recursive: true, force: true });
});

/** Renders a kustomization: `dir` relative to the repository, or absolute. */
async function render(dir: string): Promise<{ text: string; objects: Obj[] }> {
  const { stdout } = await run('kubectl', ['kustomize', resolve(ROOT, dir)], { maxBuffer: 32 << 20 });
  const objects = parseAllDocuments(stdout)
    .map((d) => d.toJS() as Obj | null)
    .filter((o): o is Obj => o !== null);
  return { text: stdout, objects };
}

const find = (objs: Obj[], kind: string, name: string, namespace?: string): Any => {
  const o = objs.find((x) => x.kind === kind && x.metadata.name === name && (namespace === undefined || x.metadata.namespace === namespace));
  if (!o) throw new Error(`${kind} ${namespace ?? ''}/${name} not rendered`);
  return o;
};

/**
 * Whether a Kubernetes label selector (matchLabels and matchExpressions, as in NetworkPolicy,
 * PodDisruptionBudget and Deployment selectors) selects a pod with `labels`. An empty selector
 * selects every pod.
 */
function selects(selector: Any, labels: Record<string, string>): boolean {
  const has = (key: string) => Object.hasOwn(labels, key);
  const okLabels = Object.entries(selector.matchLabels ?? {}).every(([key, value]) => labels[key] === value);
  const okExprs = (selector.matchExpressions ?? []).every((e: Any) => {
    switch (e.operator) {
      case 'In':
        return has(e.key) && e.values.includes(labels[e.key]);
      case 'NotIn':
        return !has(e.key) || !e.values.includes(labels[e.key]);
      case 'Exists':
        return has(e.key);
      case 'DoesNotExist':
        return !has(e.key);
      default:
        throw new Error(`unknown selector operator ${e.operator}`);
    }
  });
  return okLabels && okExprs;
}

/** Namespaces the rendered objects live in must exist for a server-side dry run (NamespaceLifecycle admission). */
async function ensureNamespace(name: string): Promise<void> {
  try {
    await kubectl(['get', 'namespace', name]);
  } catch {
    await kubectl(['create', 'namespace', name]).catch((e) => {
      if (!String(e.stderr).includes('AlreadyExists')) throw e;
    });
  }
}

/** `kubectl apply --server-side --dry-run=server` of a rendered overlay; resolves to one output line per object. */
async function dryRunApply(text: string): Promise<string[]> {
  const { stdout } = await kubectl(['apply', '--server-side', '--dry-run=server', '--field-manager=kea-kustomize-test', '-f', '-'], text);
  return stdout.split('\n').filter(Boolean);
}

beforeAll(async () => {
  dryRunCp = await startControlPlane({ unsafeNoFsync: true });
  await installCrds(dryRunCp.kubeconfig);
  // The Gateway's data plane namespace (prod NetworkPolicy) and kea-system itself.
  await ensureNamespace('kea-system');
  await ensureNamespace('nginx-gateway');
}, 120000);

afterAll(async () => {
  await dryRunCp?.stop();
});

describe.each([
  ['kustomize/base', 'kustomize/base'],
  ['kustomize/overlays/dev', 'kustomize/overlays/dev'],
  ['kustomize/overlays/prod', 'kustomize/overlays/prod'],
  ['kustomize/overlays/prod-ngf1', 'kustomize/overlays/prod-ngf1'],
  ['overlays/prod + components/redis', PROD_REDIS],
  ['overlays/dev + components/redis', DEV_REDIS],
])('%s', (_name, dir) => {
  let rendered: { text: string; objects: Obj[] };

  beforeAll(async () => {
    rendered = await render(dir);
  });

  test('renders the CRDs, RBAC, both components, the policy Service and the Gateway', () => {
    const objs = rendered.objects;
    find(objs, 'CustomResourceDefinition', 'apischemas.kea.dev');
    find(objs, 'CustomResourceDefinition', 'mlservices.kea.dev');
    find(objs, 'Namespace', 'kea-system');
    for (const sa of ['kea-controller', 'kea-policy']) find(objs, 'ServiceAccount', sa, 'kea-system');
    const ctrl = find(objs, 'Deployment', 'kea-controller', 'kea-system');
    expect(ctrl.spec.template.spec.serviceAccountName).toBe('kea-controller');
    expect(ctrl.spec.template.spec.containers[0].image).toMatch(/^ghcr\.io\/kea-dev\/kea-controller:/);
    const policy = find(objs, 'Deployment', 'kea-policy', 'kea-system');
    expect(policy.spec.template.spec.serviceAccountName).toBe('kea-policy');
    const svc = find(objs, 'Service', 'kea-policy', 'kea-system');
    expect(svc.spec.ports).toEqual([{ name: 'http', port: 8000, targetPort: 'http', protocol: 'TCP' }]);
    expect(svc.spec.selector).toEqual(policy.spec.selector.matchLabels);
    // Probes and metrics are on the admin port, which the Service (what HTTPRoutes reference) does not expose.
    const pc = policy.spec.template.spec.containers[0];
    expect(pc.ports).toContainEqual({ name: 'admin', containerPort: 8001, protocol: 'TCP' });
    expect(pc.env).toContainEqual({ name: 'KEA_ADMIN_PORT', value: '8001' });
    expect([pc.readinessProbe.httpGet.port, pc.livenessProbe.httpGet.port]).toEqual(['admin', 'admin']);
    const gw = find(objs, 'Gateway', 'kea', 'kea-system');
    expect(gw.spec.gatewayClassName).toBe('nginx');
    expect(gw.spec.listeners.map((l: Any) => [l.name, l.protocol, l.port, l.hostname])).toEqual([
      ['public', 'HTTP', 80, undefined],
      ['internal', 'HTTP', 8081, '*.kea.internal'],
    ]);
    // Only kea-system routes attach to the internal listener (docs/adr/0009-internal-routes.md).
    expect(gw.spec.listeners.map((l: Any) => l.allowedRoutes.namespaces.from)).toEqual(['All', 'Same']);
    // Every Secret and ConfigMap a pod reads is either rendered or documented as created by the operator.
    for (const d of [ctrl, policy]) {
      const c = d.spec.template.spec.containers[0];
      expect(c.envFrom).toEqual([{ configMapRef: { name: find(objs, 'ConfigMap', 'kea-config', 'kea-system').metadata.name } }]);
      expect(c.readinessProbe.httpGet.path).toBe('/readyz');
      expect(c.livenessProbe.httpGet.path).toBe('/healthz');
      expect(d.spec.template.spec.securityContext.runAsNonRoot).toBe(true);
    }
  });

  test('the real API server accepts it (server-side apply, dry run)', async () => {
    const lines = await dryRunApply(rendered.text);
    expect(lines).toHaveLength(rendered.objects.length);
    for (const l of lines) expect(l).toMatch(/ serverside-applied \(server dry run\)$/);
  });
});

describe('overlay specifics', () => {
  test('dev: one replica each, a generated internal token wired into both pods, local gateway URL', async () => {
    const { objects } = await render('kustomize/overlays/dev');
    const secret = objects.find((o) => o.kind === 'Secret' && o.metadata.name.startsWith('kea-internal-token-')) as Any;
    expect(secret).toBeDefined();
    for (const name of ['kea-controller', 'kea-policy']) {
      const d = find(objects, 'Deployment', name, 'kea-system');
      expect(d.spec.replicas).toBe(1);
      const env = (n: string) => d.spec.template.spec.containers[0].env.find((e: Any) => e.name === n);
      if (name === 'kea-controller') {
        // Current token, plus the previous/next of a rotation (docs/adr/0009-internal-routes.md).
        expect(env('KEA_INTERNAL_TOKEN').valueFrom.secretKeyRef).toEqual({ name: secret.metadata.name, key: 'token' });
        expect(env('KEA_INTERNAL_TOKEN_PREVIOUS').valueFrom.secretKeyRef).toEqual({ name: secret.metadata.name, key: 'previous', optional: true });
        expect(env('KEA_INTERNAL_TOKEN_NEXT').valueFrom.secretKeyRef).toEqual({ name: secret.metadata.name, key: 'next', optional: true });
      } else {
        // The policy server follows the mounted Secret's file (re-read while running).
        expect(env('KEA_INTERNAL_TOKEN')).toBeUndefined();
        expect(env('KEA_INTERNAL_TOKEN_FILE').value).toBe('/etc/kea/internal-token/token');
        const vol = d.spec.template.spec.volumes.find((v: Any) => v.name === 'internal-token');
        expect(vol.secret.secretName).toBe(secret.metadata.name);
        expect(d.spec.template.spec.containers[0].volumeMounts).toContainEqual({
          name: 'internal-token',
          mountPath: '/etc/kea/internal-token',
          readOnly: true,
        });
      }
      expect(d.spec.template.spec.containers[0].image).toMatch(/:dev$/);
    }
    expect(find(objects, 'ConfigMap', 'kea-config', 'kea-system').data.KEA_GATEWAY_URL).toBe('http://localhost:8080');
  });

  test('prod: 2 replicas (the policy server: its HPA), PDBs, limits, hardened pods, NetworkPolicies', async () => {
    const { objects } = await render('kustomize/overlays/prod');
    for (const [name, container] of [
      ['kea-controller', 'controller'],
      ['kea-policy', 'policy-server'],
    ]) {
      const d = find(objects, 'Deployment', name, 'kea-system');
      // The policy server's count belongs to its HorizontalPodAutoscaler (next test).
      expect(d.spec.replicas).toBe(name === 'kea-policy' ? undefined : 2);
      const pod = d.spec.template.spec;
      expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 1000, seccompProfile: { type: 'RuntimeDefault' } });
      expect(pod.containers).toHaveLength(1);
      const c = pod.containers[0];
      expect(c.name).toBe(container);
      expect(c.securityContext).toEqual({
        allowPrivilegeEscalation: false,
        readOnlyRootFilesystem: true,
        runAsNonRoot: true,
        capabilities: { drop: ['ALL'] },
      });
      expect(Object.keys(c.resources.limits).sort()).toEqual(['cpu', 'memory']);
      expect(Object.keys(c.resources.requests).sort()).toEqual(['cpu', 'memory']);
      // A read-only root needs writable mounts for /tmp (and the policy server's snapshot dir).
      const mounts = c.volumeMounts.map((m: Any) => m.mountPath).sort();
      expect(mounts).toEqual(name === 'kea-policy' ? ['/etc/kea/internal-token', '/tmp', '/var/lib/kea-policy'] : ['/tmp']);
      const pdb = find(objects, 'PodDisruptionBudget', name, 'kea-system');
      expect(pdb.spec.minAvailable).toBe(1);
      expect(pdb.spec.selector.matchLabels).toEqual(d.spec.selector.matchLabels);
      expect(pod.affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].podAffinityTerm.labelSelector.matchLabels).toEqual(
        d.spec.selector.matchLabels,
      );
    }
    const np = find(objects, 'NetworkPolicy', 'kea-policy', 'kea-system');
    expect(np.spec.podSelector.matchLabels).toEqual({ 'app.kubernetes.io/name': 'kea-policy' });
    // The data plane: NGF 1.x (nginx in the control-plane pod, namespace nginx-gateway) and
    // NGF 2.x (the Gateway's own nginx pods in kea-system, labelled by NGF with the Gateway's name).
    const dataPlane = [
      { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'nginx-gateway' } } },
      { podSelector: { matchLabels: { 'gateway.networking.k8s.io/gateway-name': 'kea' } } },
    ];
    expect(np.spec.ingress).toEqual([{ from: dataPlane, ports: [{ protocol: 'TCP', port: 8000 }] }]);
    for (const who of ['kea-policy', 'kea-controller']) {
      const egress = find(objects, 'NetworkPolicy', who, 'kea-system').spec.egress;
      expect(egress).toContainEqual({ to: dataPlane, ports: [{ protocol: 'TCP', port: 8081 }] });
    }
    expect(find(objects, 'NetworkPolicy', 'kea-controller', 'kea-system').spec.ingress).toEqual([]);
    const callers = { matchExpressions: [{ key: 'app.kubernetes.io/name', operator: 'In', values: ['kea-policy', 'kea-controller'] }] };
    for (const [ns, selector, from] of [
      ['nginx-gateway', {}, { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'kea-system' } }, podSelector: callers }],
      ['kea-system', { matchLabels: { 'gateway.networking.k8s.io/gateway-name': 'kea' } }, { podSelector: callers }],
    ] as const) {
      const gwnp = find(objects, 'NetworkPolicy', 'kea-gateway-internal-listener', ns);
      expect(gwnp.spec.podSelector).toEqual(selector);
      const internal = gwnp.spec.ingress.find((r: Any) => r.ports.some((p: Any) => p.port === 8081));
      expect(internal.from).toEqual([from]);
      // Nothing else on the data plane opens 8081.
      expect(gwnp.spec.ingress.filter((r: Any) => r.ports.some((p: Any) => p.port === 8081))).toHaveLength(1);
    }
    // NGF 2.x: the control plane in nginx-gateway keeps accepting its agents' gRPC (8443) from
    // every Gateway's pods, or the policy would cut every data plane off its configuration.
    const ngfNs = find(objects, 'NetworkPolicy', 'kea-gateway-internal-listener', 'nginx-gateway');
    expect(ngfNs.spec.ingress).toContainEqual({ ports: [{ protocol: 'TCP', port: 8443 }] });
  });
});

describe('prod: the policy server autoscales (HorizontalPodAutoscaler)', () => {
  test('autoscaling/v2 on CPU, 2 to 10 pods at 70 %, scale-down stabilised 300 s, on the rendered kea-policy Deployment', async () => {
    const { objects } = await render('kustomize/overlays/prod');
    const hpa = find(objects, 'HorizontalPodAutoscaler', 'kea-policy', 'kea-system');
    expect(hpa.apiVersion).toBe('autoscaling/v2');
    // dev/cluster-kea.ts finds KEA's HPAs by this label.
    expect(hpa.metadata.labels['app.kubernetes.io/part-of']).toBe('kea');
    expect(hpa.spec.scaleTargetRef).toEqual({ apiVersion: 'apps/v1', kind: 'Deployment', name: 'kea-policy' });
    const target = find(objects, 'Deployment', hpa.spec.scaleTargetRef.name, hpa.metadata.namespace);
    expect(target.apiVersion).toBe(hpa.spec.scaleTargetRef.apiVersion);
    expect([hpa.spec.minReplicas, hpa.spec.maxReplicas]).toEqual([2, 10]);
    expect(hpa.spec.metrics).toEqual([{ type: 'Resource', resource: { name: 'cpu', target: { type: 'Utilization', averageUtilization: 70 } } }]);
    expect(hpa.spec.behavior).toEqual({ scaleDown: { stabilizationWindowSeconds: 300 } });
    // Utilization is a share of requests.cpu: the HPA computes none unless every container of
    // the target's pods requests CPU.
    const containers = [...target.spec.template.spec.containers, ...(target.spec.template.spec.initContainers ?? [])];
    for (const c of containers) expect(c.resources?.requests?.cpu).toBeDefined();
    // No spec.replicas for an apply to reset the HPA's count with.
    expect(target.spec.replicas).toBeUndefined();
    // The PodDisruptionBudget can still let one pod be evicted at the HPA's floor.
    expect(find(objects, 'PodDisruptionBudget', 'kea-policy', 'kea-system').spec.minAvailable).toBeLessThan(hpa.spec.minReplicas);
    // prod-ngf1 builds on prod: the same HPA; dev has none.
    expect(find((await render('kustomize/overlays/prod-ngf1')).objects, 'HorizontalPodAutoscaler', 'kea-policy', 'kea-system').spec).toEqual(hpa.spec);
    expect((await render('kustomize/overlays/dev')).objects.filter((o) => o.kind === 'HorizontalPodAutoscaler')).toEqual([]);
  });
});

describe('components/redis (docs/install.md, "Redis (rate limits and the shared cache)")', () => {
  describe.each([
    ['overlays/prod', PROD_REDIS],
    ['overlays/dev', DEV_REDIS],
  ])('on %s', (_overlay, dir) => {
    let objects: Obj[];
    let redis: Any;
    beforeAll(async () => {
      objects = (await render(dir)).objects;
      redis = find(objects, 'Deployment', 'kea-redis', 'kea-system');
    });

    test('one non-root Redis, read-only root, no persistence, its password from the Secret kea-redis', () => {
      expect(redis.spec.replicas).toBe(1);
      const pod = redis.spec.template.spec;
      expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 999, runAsGroup: 999, seccompProfile: { type: 'RuntimeDefault' } });
      expect(pod.automountServiceAccountToken).toBe(false);
      expect(pod.containers).toHaveLength(1);
      const c = pod.containers[0];
      expect(c.image).toBe('redis:7.0');
      expect(c.securityContext).toEqual({ allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, runAsNonRoot: true, capabilities: { drop: ['ALL'] } });
      // redis-server's flags, each followed by its value.
      expect(c.command).toEqual(['redis-server']);
      const flag = (name: string): string | undefined => (c.args.includes(name) ? c.args[c.args.indexOf(name) + 1] : undefined);
      expect([flag('--save'), flag('--appendonly')]).toEqual(['', 'no']);
      // The kubelet expands $(REDIS_PASSWORD) from the container's env, which the Secret fills;
      // not optional: no Redis without a password.
      expect(flag('--requirepass')).toBe('$(REDIS_PASSWORD)');
      expect(c.env.find((e: Any) => e.name === 'REDIS_PASSWORD').valueFrom.secretKeyRef).toEqual({ name: 'kea-redis', key: 'password' });
      // The only writable path is its working directory, an emptyDir.
      expect(flag('--dir')).toBe('/data');
      expect(c.volumeMounts).toEqual([{ name: 'data', mountPath: '/data' }]);
      expect(pod.volumes).toEqual([{ name: 'data', emptyDir: expect.any(Object) }]);
      for (const probe of [c.readinessProbe, c.livenessProbe])
        expect(probe.exec.command.join(' ')).toMatch(/REDISCLI_AUTH="\$REDIS_PASSWORD" redis-cli .*ping/);
      // Requests and limits; Redis's data (--maxmemory, "mb" = MiB) fits under the memory limit.
      expect(Object.keys(c.resources.requests).sort()).toEqual(['cpu', 'memory']);
      expect(Object.keys(c.resources.limits).sort()).toEqual(['cpu', 'memory']);
      const maxmemory = /^(\d+)mb$/.exec(flag('--maxmemory') ?? '');
      const limit = /^(\d+)Mi$/.exec(c.resources.limits.memory);
      expect(maxmemory && limit && Number(maxmemory[1]) < Number(limit[1])).toBe(true);
      expect(flag('--maxmemory-policy')).toBe('allkeys-lru');
    });

    test('the Service kea-redis selects it, and KEA_REDIS_URL in kea-config names that Service', () => {
      const svc = find(objects, 'Service', 'kea-redis', 'kea-system');
      expect(selects({ matchLabels: svc.spec.selector }, redis.spec.template.metadata.labels)).toBe(true);
      expect(svc.spec.ports).toEqual([{ name: 'redis', port: 6379, targetPort: 'redis', protocol: 'TCP' }]);
      expect(redis.spec.template.spec.containers[0].ports).toEqual([{ name: 'redis', containerPort: 6379, protocol: 'TCP' }]);
      const url = new URL(find(objects, 'ConfigMap', 'kea-config', 'kea-system').data.KEA_REDIS_URL);
      expect([url.protocol, url.hostname, Number(url.port)]).toEqual(['redis:', `${svc.metadata.name}.${svc.metadata.namespace}.svc`, 6379]);
    });

    test('the policy server reads the password from the same Secret, optionally', () => {
      const policy = find(objects, 'Deployment', 'kea-policy', 'kea-system').spec.template.spec.containers[0];
      const redisSecret = redis.spec.template.spec.containers[0].env.find((e: Any) => e.name === 'REDIS_PASSWORD').valueFrom.secretKeyRef;
      expect(policy.env.find((e: Any) => e.name === 'KEA_REDIS_PASSWORD').valueFrom.secretKeyRef).toEqual({ ...redisSecret, optional: true });
    });

    test("its NetworkPolicy admits the policy server's pods only (as the Deployments label them), on 6379, and no egress", () => {
      const np = find(objects, 'NetworkPolicy', 'kea-redis', 'kea-system');
      expect(selects(np.spec.podSelector, redis.spec.template.metadata.labels)).toBe(true);
      expect(np.spec.policyTypes).toEqual(['Ingress', 'Egress']);
      expect(np.spec.egress).toEqual([]);
      expect(np.spec.ingress).toHaveLength(1);
      const [rule] = np.spec.ingress;
      expect(rule.ports).toEqual([{ protocol: 'TCP', port: 6379 }]);
      // One peer, a pod selector alone: pods of kea-system only.
      expect(rule.from).toHaveLength(1);
      expect(Object.keys(rule.from[0])).toEqual(['podSelector']);
      const selected = objects
        .filter((o) => o.kind === 'Deployment' && o.metadata.namespace === np.metadata.namespace)
        .filter((d: Any) => selects(rule.from[0].podSelector, d.spec.template.metadata.labels))
        .map((d) => d.metadata.name);
      expect(selected).toEqual(['kea-policy']);
    });
  });

  test('under prod, the policy server may reach Redis (its egress); without the component nothing of Redis but the optional password', async () => {
    const { objects } = await render(PROD_REDIS);
    const prod = (await render('kustomize/overlays/prod')).objects;
    const redisPod = find(objects, 'Deployment', 'kea-redis', 'kea-system').spec.template.metadata.labels;
    const egress = find(objects, 'NetworkPolicy', 'kea-policy', 'kea-system').spec.egress;
    const toRedis = egress.filter((r: Any) => r.to?.some((p: Any) => p.podSelector && !p.namespaceSelector && selects(p.podSelector, redisPod)));
    expect(toRedis).toEqual([{ to: [{ podSelector: expect.any(Object) }], ports: [{ protocol: 'TCP', port: 6379 }] }]);
    // prod's own rules are kept, the Redis rule added after them.
    expect(egress.slice(0, -1)).toEqual(find(prod, 'NetworkPolicy', 'kea-policy', 'kea-system').spec.egress);
    // The component adds exactly its Deployment, Service and NetworkPolicy.
    expect(objects.length).toBe(prod.length + 3);
    expect(find(prod, 'ConfigMap', 'kea-config', 'kea-system').data.KEA_REDIS_URL).toBeUndefined();
    expect(prod.filter((o) => o.metadata.name === 'kea-redis')).toEqual([]);
    const policy = find(prod, 'Deployment', 'kea-policy', 'kea-system').spec.template.spec.containers[0];
    expect(policy.env.find((e: Any) => e.name === 'KEA_REDIS_PASSWORD').valueFrom.secretKeyRef.optional).toBe(true);
  });
});

describe('NGF 1.x vs 2.x (docs/install.md)', () => {
  test('prod targets NGF 2.x: the internal listener is the per-Gateway Service NGF provisions (kea-nginx in kea-system)', async () => {
    const { objects } = await render('kustomize/overlays/prod');
    expect(find(objects, 'ConfigMap', 'kea-config', 'kea-system').data.KEA_INTERNAL_GATEWAY_URL).toBe('http://kea-nginx.kea-system.svc.cluster.local:8081');
    expect(objects.filter((o) => o.kind === 'Service' && o.metadata.namespace === 'nginx-gateway')).toEqual([]);
  });

  test('prod-ngf1: a ClusterIP Service on NGF 1.x pods for the internal listener only, and KEA pointed at it', async () => {
    const { objects } = await render('kustomize/overlays/prod-ngf1');
    const svc = find(objects, 'Service', 'kea-gateway-internal', 'nginx-gateway');
    expect(svc.spec.type).toBe('ClusterIP');
    expect(svc.spec.selector).toEqual({ 'app.kubernetes.io/name': 'nginx-gateway-fabric' });
    expect(svc.spec.ports).toEqual([{ name: 'internal', port: 8081, targetPort: 8081, protocol: 'TCP' }]);
    expect(find(objects, 'ConfigMap', 'kea-config', 'kea-system').data.KEA_INTERNAL_GATEWAY_URL).toBe(
      'http://kea-gateway-internal.nginx-gateway.svc.cluster.local:8081',
    );
    // Everything else is prod's: same objects plus that Service.
    const prod = (await render('kustomize/overlays/prod')).objects;
    expect(objects.length).toBe(prod.length + 1);
    expect(find(objects, 'NetworkPolicy', 'kea-gateway-internal-listener', 'nginx-gateway').spec).toEqual(
      find(prod, 'NetworkPolicy', 'kea-gateway-internal-listener', 'nginx-gateway').spec,
    );
  });
});

describe('RBAC is least privilege', () => {
  const ns = `kea-rbac-${Date.now().toString(36)}`;
  const prefix = `${ns}-`;
  const sa = (name: string) => `system:serviceaccount:${ns}:${name}`;

  beforeAll(async () => {
    // Only the RBAC objects of the prod overlay, moved into a throw-away namespace with
    // cluster-scoped names prefixed, so the check runs on the real authorizer.
    const { objects } = await render('kustomize/overlays/prod');
    const kinds = new Set(['ServiceAccount', 'Role', 'RoleBinding', 'ClusterRole', 'ClusterRoleBinding']);
    const rbac = objects
      .filter((o) => kinds.has(o.kind))
      .map((o) => {
        const c = structuredClone(o) as Any;
        if (c.metadata.namespace) c.metadata.namespace = ns;
        if (c.kind.startsWith('Cluster')) c.metadata.name = prefix + c.metadata.name;
        if (c.kind === 'ClusterRoleBinding') c.roleRef.name = prefix + c.roleRef.name;
        for (const s of c.subjects ?? []) s.namespace = ns;
        return c;
      });
    expect(rbac.map((o) => o.kind).sort()).toEqual([
      'ClusterRole',
      'ClusterRoleBinding',
      'Role',
      'Role',
      'RoleBinding',
      'RoleBinding',
      'ServiceAccount',
      'ServiceAccount',
    ]);
    await kubectl(['create', 'namespace', ns]);
    await kubectl(['apply', '--server-side', '--field-manager=kea-kustomize-test', '-f', '-'], rbac.map((o) => stringify(o)).join('---\n'));
  });

  async function canI(who: string, verb: string, resource: string, namespace: string | 'ALL', subresource?: string): Promise<boolean> {
    const args = ['auth', 'can-i', verb, resource, `--as=${who}`, ...(namespace === 'ALL' ? ['--all-namespaces'] : ['-n', namespace])];
    if (subresource) args.push(`--subresource=${subresource}`);
    try {
      const { stdout } = await kubectl(args);
      return stdout.trim() === 'yes';
    } catch (e) {
      if (String((e as { stdout?: string }).stdout).trim() === 'no') return false;
      throw e;
    }
  }

  const controller: Array<[string, string, string, string | undefined, boolean]> = [
    // verb, resource, namespace (SYSTEM = the system namespace, ALL = cluster-wide), subresource, allowed
    ['watch', 'apischemas.kea.dev', 'ALL', undefined, true],
    ['list', 'mlservices.kea.dev', 'ALL', undefined, true],
    ['update', 'apischemas.kea.dev', 'default', 'status', true],
    ['update', 'mlservices.kea.dev', 'default', 'status', true],
    ['update', 'apischemas.kea.dev', 'default', undefined, false],
    ['delete', 'mlservices.kea.dev', 'default', undefined, false],
    ['patch', 'httproutes.gateway.networking.k8s.io', 'default', undefined, true],
    ['delete', 'httproutes.gateway.networking.k8s.io', 'default', undefined, true],
    ['create', 'deployments.apps', 'default', undefined, true],
    ['patch', 'services', 'default', undefined, true],
    ['create', 'events', 'default', undefined, true],
    ['list', 'referencegrants.gateway.networking.k8s.io', 'ALL', undefined, true],
    ['create', 'referencegrants.gateway.networking.k8s.io', 'SYSTEM', undefined, true],
    // Its internal routes (kea-system) reach revision Services through grants in the users' namespaces.
    ['create', 'referencegrants.gateway.networking.k8s.io', 'default', undefined, true],
    ['delete', 'referencegrants.gateway.networking.k8s.io', 'default', undefined, true],
    ['patch', 'configmaps', 'SYSTEM', undefined, true],
    ['patch', 'configmaps', 'default', undefined, false],
    ['update', 'leases.coordination.k8s.io', 'SYSTEM', undefined, true],
    ['create', 'leases.coordination.k8s.io', 'default', undefined, false],
    ['get', 'secrets', 'SYSTEM', undefined, false],
    ['list', 'pods', 'default', undefined, false],
    ['create', 'gateways.gateway.networking.k8s.io', 'SYSTEM', undefined, false],
    ['delete', 'namespaces', 'default', undefined, false],
    ['create', 'clusterroles.rbac.authorization.k8s.io', 'default', undefined, false],
  ];
  test.each(controller)('controller: %s %s in %s (subresource %s) → allowed %s', async (verb, resource, namespace, sub, allowed) => {
    expect(await canI(sa('kea-controller'), verb, resource, namespace === 'SYSTEM' ? ns : namespace, sub)).toBe(allowed);
  });

  const policy: Array<[string, string, string, boolean]> = [
    ['list', 'configmaps', 'SYSTEM', true],
    ['watch', 'configmaps', 'SYSTEM', true],
    ['get', 'configmaps', 'SYSTEM', true],
    ['create', 'configmaps', 'SYSTEM', false],
    ['patch', 'configmaps', 'SYSTEM', false],
    ['list', 'configmaps', 'default', false],
    ['get', 'secrets', 'SYSTEM', false],
    ['list', 'apischemas.kea.dev', 'ALL', false],
    ['create', 'events', 'SYSTEM', false],
  ];
  test.each(policy)('policy server: %s %s in %s → allowed %s', async (verb, resource, namespace, allowed) => {
    expect(await canI(sa('kea-policy'), verb, resource, namespace === 'SYSTEM' ? ns : namespace)).toBe(allowed);
  });
});

describe('the controller works with exactly the prod RBAC (its service account token, own control plane)', () => {
  let cp: ControlPlane;
  let ctrl: ControllerHandle | undefined;
  const logs: string[] = [];
  const kc = (args: string[], input?: string) => kubectl(['--kubeconfig', cp.kubeconfig, ...args], input);

  beforeAll(async () => {
    cp = await startControlPlane({ unsafeNoFsync: true });
    await installCrds(cp.kubeconfig);
    const { objects } = await render('kustomize/overlays/prod');
    const rbac = objects.filter((o) => ['Namespace', 'ServiceAccount', 'Role', 'RoleBinding', 'ClusterRole', 'ClusterRoleBinding'].includes(o.kind));
    await kc(['apply', '--server-side', '-f', '-'], rbac.map((o) => stringify(o)).join('---\n'));
    await kc(['create', 'namespace', 'models']);
    await kc(['apply', '--server-side', '-n', 'models', '-f', join(ROOT, 'manifests/samples')]);
    const token = (await kc(['create', 'token', 'kea-controller', '-n', 'kea-system', '--duration=1h'])).stdout.trim();
    const admin = parseAllDocuments((await kc(['config', 'view', '--raw', '-o', 'yaml'])).stdout)[0].toJS();
    const saKubeconfig = join(cp.dataDir, 'kea-controller.kubeconfig');
    await writeFile(
      saKubeconfig,
      stringify({
        apiVersion: 'v1',
        kind: 'Config',
        clusters: admin.clusters,
        users: [{ name: 'kea-controller', user: { token } }],
        contexts: [{ name: 'sa', context: { cluster: admin.clusters[0].name, user: 'kea-controller' } }],
        'current-context': 'sa',
      }),
      { mode: 0o600 },
    );
    const stream = new PassThrough();
    stream.on('data', (b: Buffer) => logs.push(...b.toString().split('\n').filter(Boolean)));
    ctrl = await startController(
      loadConfig(['node', 'kea-controller', `--kubeconfig=${saKubeconfig}`, '--internal-token=rbac-test', '--http-port=0', '--http-host=127.0.0.1']),
      { logger: createLogger('controller', { level: 'warn', stream }) },
    );
  }, 180000);

  afterAll(async () => {
    await ctrl?.stop();
    await cp?.stop();
  });

  test('it takes the Lease, reconciles the samples and writes status, with no request forbidden', async () => {
    const deadline = Date.now() + 90000;
    while (!(ctrl!.isLeader() && ctrl!.isSynced() && ctrl!.lastApply()) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
    await ctrl!.idle();
    expect(ctrl!.isLeader()).toBe(true);
    const res = ctrl!.lastApply()!;
    expect(res.errors).toEqual([]);
    expect(res.applied + res.unchanged).toBeGreaterThan(0); // the last run may be a no-op one (converged)
    expect(logs.filter((l) => /forbidden|403/i.test(l))).toEqual([]);
    const lease = JSON.parse((await kc(['get', 'lease', 'kea-controller', '-n', 'kea-system', '-o', 'json'])).stdout);
    expect(lease.spec.holderIdentity).toBeTruthy();
    // What it wrote, each with its least-privilege grant: routes and revision objects in the
    // models namespace, policy ConfigMaps and the policy ReferenceGrant in kea-system, status.
    await kc(['get', 'deployment', 'iris-v1', '-n', 'models']);
    await kc(['get', 'service', 'iris-v2', '-n', 'models']);
    const routes = JSON.parse((await kc(['get', 'httproutes', '-n', 'models', '-o', 'json'])).stdout).items;
    expect(routes.length).toBeGreaterThan(0);
    const cms = JSON.parse((await kc(['get', 'configmaps', '-n', 'kea-system', '-l', 'kea.dev/managed-by=kea', '-o', 'json'])).stdout).items;
    expect(cms.map((c: Any) => c.metadata.name)).toEqual(expect.arrayContaining([apiConfigMapName('models', 'iris'), apiConfigMapName('models', 'grades')]));
    const grants = JSON.parse((await kc(['get', 'referencegrants', '-n', 'kea-system', '-o', 'json'])).stdout).items;
    expect(grants.length).toBeGreaterThan(0);
    const apis = JSON.parse((await kc(['get', 'apischema', 'iris', '-n', 'models', '-o', 'json'])).stdout);
    expect(apis.status.observedGeneration).toBe(apis.metadata.generation);
    expect(apis.status.conditions.map((c: Any) => c.type)).toContain('Accepted');
  }, 120000);
});
