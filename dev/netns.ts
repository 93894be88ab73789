/**
 * Test hosts for the local stack: a Linux bridge on the host and network namespaces joined to it
 * by veth pairs, so that backends get real, non-loopback addresses that an EndpointSlice accepts
 * (EndpointSlice validation rejects 127.0.0.0/8, field notes §4). Needs root (`ip`, iproute2).
 *
 * Layout for bridge `kea<N>` (N = 0 for `kea up`, 1..254 for tests):
 *   host: bridge `kea<N>` with 10.213.N.1/24
 *   host `<bridge>-<name>`: netns of that name, `eth0` = 10.213.N.<k>/24 (k ≥ 2), host-side veth `kea<N>h<k>`
 * Namespaces get no default route: their processes reach only the bridge subnet (the host is
 * 10.213.N.1), never anything beyond this machine.
 *
 * Also registers such hosts with the API server as a Service + discovery.k8s.io/v1 EndpointSlice,
 * since no kubelet or controller-manager runs locally to do it.
 */
import { execFile, spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { promisify } from 'node:util';
import { KubeConfig, KubernetesObjectApi, PatchStrategy, type KubernetesObject } from '@kubernetes/client-node';

const run = promisify(execFile);

async function ip(...args: string[]): Promise<string> {
  try {
    const { stdout } = await run('ip', args, { maxBuffer: 8 << 20 });
    return stdout;
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    throw new Error(`ip ${args.join(' ')}: ${(err.stderr ?? err.message).trim()}`);
  }
}

/** A bridge with its /24 subnet 10.213.N.0/24. */
export interface Bridge {
  /** Interface name, `kea<N>`. */
  name: string;
  /** Third octet N of the subnet. */
  index: number;
  /** The host's address on the bridge, 10.213.N.1 (where host processes such as the policy server listen). */
  hostAddress: string;
}

/** A network namespace attached to a bridge. */
export interface NetnsHost {
  /** Namespace name, `<bridge>-<name>`. */
  netns: string;
  /** The host's address inside the namespace (eth0), e.g. 10.213.0.2. */
  address: string;
  bridge: Bridge;
  /** Host-side veth interface name. */
  veth: string;
}

/** First two octets of every KEA test subnet. */
export const SUBNET_PREFIX = '10.213';

function bridgeFor(index: number): Bridge {
  return { name: `kea${index}`, index, hostAddress: `${SUBNET_PREFIX}.${index}.1` };
}

async function linkExists(name: string): Promise<boolean> {
  try {
    await run('ip', ['link', 'show', 'dev', name]);
    return true;
  } catch {
    return false;
  }
}

/**
 * Creates (or reuses, when `index` is given and it exists) bridge `kea<index>` with
 * 10.213.<index>.1/24. Without `index`, takes the first free one in 1..254 (creation is atomic:
 * `ip link add` fails when the name is taken, so concurrent test runs get different bridges).
 * @throws Error when no bridge could be created (not root, or all 254 taken).
 */
export async function createBridge(opts: { index?: number } = {}): Promise<Bridge> {
  const candidates = opts.index !== undefined ? [opts.index] : Array.from({ length: 254 }, (_, i) => i + 1);
  for (const index of candidates) {
    const b = bridgeFor(index);
    try {
      await ip('link', 'add', b.name, 'type', 'bridge');
    } catch (e) {
      if (opts.index !== undefined && (await linkExists(b.name))) {
        await ensureBridgeUp(b);
        return b;
      }
      if (opts.index !== undefined) throw e;
      continue;
    }
    await ensureBridgeUp(b);
    return b;
  }
  throw new Error('createBridge: no free bridge kea1..kea254');
}

async function ensureBridgeUp(b: Bridge): Promise<void> {
  const addrs = await ip('-j', 'addr', 'show', 'dev', b.name);
  if (!addrs.includes(`"${b.hostAddress}"`)) await ip('addr', 'add', `${b.hostAddress}/24`, 'dev', b.name);
  await ip('link', 'set', b.name, 'up');
}

/** Namespaces (names) that belong to a bridge: `ip netns list` entries starting with `<bridge>-`. */
export async function listNetns(bridge: Bridge): Promise<string[]> {
  const out = await ip('netns', 'list');
  return out
    .split('\n')
    .map((l) => l.split(' ')[0])
    .filter((n) => n && n.startsWith(`${bridge.name}-`));
}

/**
 * Creates network namespace `<bridge>-<name>` joined to the bridge, with the next free address
 * (10.213.N.2 and up; free = no host-side veth `kea<N>h<k>` exists). Loopback is up inside.
 * @param name short name, [a-z0-9-], so that `<bridge>-<name>` is a valid netns name.
 * @throws Error when the namespace exists already or an `ip` command fails.
 */
export async function createHost(bridge: Bridge, name: string): Promise<NetnsHost> {
  if (!/^[a-z0-9][a-z0-9-]*$/.test(name)) throw new Error(`createHost: invalid name ${JSON.stringify(name)}`);
  const netns = `${bridge.name}-${name}`;
  await ip('netns', 'add', netns);
  try {
    for (let k = 2; k < 255; k++) {
      const veth = `${bridge.name}h${k}`;
      const peer = `${bridge.name}p${k}`;
      try {
        await ip('link', 'add', veth, 'type', 'veth', 'peer', 'name', peer);
      } catch {
        continue; // taken by another host of this bridge
      }
      const address = `${SUBNET_PREFIX}.${bridge.index}.${k}`;
      await ip('link', 'set', peer, 'netns', netns);
      await ip('link', 'set', veth, 'master', bridge.name);
      await ip('link', 'set', veth, 'up');
      await ip('-n', netns, 'link', 'set', peer, 'name', 'eth0');
      await ip('-n', netns, 'addr', 'add', `${address}/24`, 'dev', 'eth0');
      await ip('-n', netns, 'link', 'set', 'eth0', 'up');
      await ip('-n', netns, 'link', 'set', 'lo', 'up');
      return { netns, address, bridge, veth };
    }
    throw new Error(`createHost: no free address on ${bridge.name}`);
  } catch (e) {
    await ip('netns', 'del', netns).catch(() => undefined);
    throw e;
  }
}

/**
 * Spawns `command args` inside the host's namespace (`ip netns exec`, which execs the command,
 * so the returned child's pid is the command's own).
 */
export function spawnInNetns(host: NetnsHost, command: string, args: string[], opts: SpawnOptions = {}): ChildProcess {
  return spawn('ip', ['netns', 'exec', host.netns, command, ...args], opts);
}

/** Runs a command to completion inside the namespace; resolves to its stdout. */
export async function execInNetns(host: NetnsHost, command: string, args: string[]): Promise<string> {
  const { stdout } = await run('ip', ['netns', 'exec', host.netns, command, ...args], { maxBuffer: 8 << 20 });
  return stdout;
}

async function killNetnsPids(netns: string): Promise<void> {
  let pids: number[] = [];
  try {
    pids = (await ip('netns', 'pids', netns)).split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return;
  }
  if (!pids.length) return;
  for (const p of pids) {
    try {
      process.kill(p, 'SIGTERM');
    } catch {
      /* gone */
    }
  }
  const deadline = Date.now() + 5000;
  while (Date.now() < deadline) {
    const alive = pids.filter((p) => {
      try {
        process.kill(p, 0);
        return true;
      } catch {
        return false;
      }
    });
    if (!alive.length) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  for (const p of pids) {
    try {
      process.kill(p, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
}

/** Kills every process still inside the namespace (SIGTERM, then SIGKILL after 5 s) and deletes it; its veth pair goes with it. */
export async function deleteHost(host: NetnsHost | string): Promise<void> {
  const netns = typeof host === 'string' ? host : host.netns;
  await killNetnsPids(netns);
  // Delete the veth pair explicitly: the kernel frees a namespace's devices asynchronously, and
  // a host-side veth could otherwise outlive `ip netns del` for a while.
  await ip('-n', netns, 'link', 'del', 'eth0').catch(() => undefined);
  await ip('netns', 'del', netns).catch(() => undefined);
}

/** Deletes every namespace of the bridge (see deleteHost), then the bridge itself. Safe to call twice. */
export async function deleteBridge(bridge: Bridge): Promise<void> {
  for (const ns of await listNetns(bridge).catch(() => [])) await deleteHost(ns);
  // Host-side veths of this bridge whose namespace is already gone.
  const links = JSON.parse(await ip('-j', 'link', 'show').catch(() => '[]')) as Array<{ ifname: string }>;
  for (const l of links) if (new RegExp(`^${bridge.name}h\\d+$`).test(l.ifname)) await ip('link', 'del', l.ifname).catch(() => undefined);
  if (await linkExists(bridge.name)) await ip('link', 'del', bridge.name);
}

/** What registerService creates. */
export interface ServiceRegistration {
  namespace: string;
  name: string;
  /** Service port (what backendRefs name), e.g. 80. */
  port: number;
  /** Port the process listens on at each address; default `port`. */
  targetPort?: number;
  /** Endpoint IPv4 addresses (netns hosts or the bridge address; never 127.0.0.0/8). */
  addresses: string[];
  /** Service port name; default `http`. */
  portName?: string;
  labels?: Record<string, string>;
}

/** Field manager of every object this module writes. */
export const FIELD_MANAGER = 'kea-dev-netns';

/**
 * Creates or updates, by server-side apply, a ClusterIP Service and its EndpointSlice
 * (`<name>-kea`, label `kubernetes.io/service-name`, every endpoint ready and serving), creating
 * the namespace too if missing. This stands in for the kubelet + EndpointSlice controller.
 * @throws Error from the API server (e.g. 422 for a loopback address).
 */
export async function registerService(kc: KubeConfig, reg: ServiceRegistration): Promise<void> {
  const api = KubernetesObjectApi.makeApiClient(kc);
  const portName = reg.portName ?? 'http';
  const target = reg.targetPort ?? reg.port;
  const apply = (o: KubernetesObject) => api.patch(o, undefined, undefined, FIELD_MANAGER, true, PatchStrategy.ServerSideApply);
  await apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: reg.namespace } });
  await apply({
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: reg.name, namespace: reg.namespace, labels: reg.labels },
    spec: { type: 'ClusterIP', ports: [{ name: portName, port: reg.port, targetPort: target, protocol: 'TCP' }] },
  } as KubernetesObject);
  await apply({
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: {
      name: `${reg.name}-kea`,
      namespace: reg.namespace,
      labels: { ...reg.labels, 'kubernetes.io/service-name': reg.name, 'endpointslice.kubernetes.io/managed-by': 'kea.dev-local' },
    },
    addressType: 'IPv4',
    ports: [{ name: portName, port: target, protocol: 'TCP' }],
    endpoints: reg.addresses.map((a) => ({ addresses: [a], conditions: { ready: true, serving: true, terminating: false } })),
  } as KubernetesObject);
}

/** Deletes the Service and EndpointSlice made by registerService (404s ignored). */
export async function unregisterService(kc: KubeConfig, namespace: string, name: string): Promise<void> {
  const api = KubernetesObjectApi.makeApiClient(kc);
  const del = (o: KubernetesObject) => api.delete(o).catch((e: { code?: number }) => {
    if (e.code !== 404) throw e;
  });
  await del({ apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', metadata: { name: `${name}-kea`, namespace } });
  await del({ apiVersion: 'v1', kind: 'Service', metadata: { name, namespace } });
}
