/**
 * Test hosts for the local stack: a Linux bridge on the host and network namespaces joined to it
 * by veth pairs, so that backends get real, non-loopback addresses that an EndpointSlice accepts
 * (EndpointSlice validation rejects 127.0.0.0/8, field notes §4). Needs root (`ip`, iproute2).
 *
 * Layout for bridge `kea<N>` (N = 0 for `kea up`, 1..254 for tests):
 *   host: bridge `kea<N>` with 10.213.N.1/24, and on demand more host addresses 10.213.N.254,
 *         .253, ... down to .250 (hostAddressFor / addHostAddress: one per policy-server replica)
 *   host `<bridge>-<name>`: netns of that name, `eth0` = 10.213.N.<k>/24 (2 ≤ k ≤ 249), host-side veth `kea<N>h<k>`
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

/** Last octet of the highest address createHost gives a namespace; .250–.254 are kept for the host (see hostAddressFor). */
export const LAST_NETNS_OCTET = 249;

/**
 * The host's `i`-th address on the bridge (i ≥ 1): 10.213.N.1 for i = 1 (the bridge's own
 * address), then 10.213.N.254, .253, ... (i = 2, 3, ...), the top of the subnet, which
 * createHost never hands out. Host processes that must be distinct endpoints of one
 * EndpointSlice (one port for every address) listen on these, e.g. the policy-server replicas.
 * @throws RangeError for i outside 1..6.
 */
export function hostAddressFor(bridge: Bridge, i: number): string {
  if (!Number.isInteger(i) || i < 1 || i > 255 - LAST_NETNS_OCTET) throw new RangeError(`hostAddressFor: replica ${i} outside 1..${255 - LAST_NETNS_OCTET}`);
  return i === 1 ? bridge.hostAddress : `${SUBNET_PREFIX}.${bridge.index}.${256 - i}`;
}

/**
 * Adds `address` (from {@link hostAddressFor}) to the bridge as a /24 secondary address, unless it
 * is there already. It goes with the bridge (deleteBridge).
 * @throws Error when `ip addr add` fails (not root, the bridge is gone).
 */
export async function addHostAddress(bridge: Bridge, address: string): Promise<void> {
  const addrs = await ip('-j', 'addr', 'show', 'dev', bridge.name);
  if (!addrs.includes(`"${address}"`)) await ip('addr', 'add', `${address}/24`, 'dev', bridge.name);
}

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

/** The /24 subnet of bridge `kea<index>`: `10.213.<index>.0/24`. */
export function bridgeSubnet(index: number): string {
  return `${SUBNET_PREFIX}.${index}.0/24`;
}

/** An IPv4 prefix the host already uses: a route (any table) or an interface address. */
export interface HostPrefix {
  /** CIDR, e.g. `10.213.0.0/16` (a host route or address without a length is /32). */
  prefix: string;
  /** Interface it is on (`dev`); for a route with no device, its type (`blackhole`, `unreachable`, ...). */
  dev: string;
  /** Where it was seen. */
  source: 'route' | 'address';
}

/** Parses `ip -j -4 route show table all`; skips default routes (0.0.0.0/0 overlaps everything and is no conflict). */
export function parseIpRoutes(json: string): HostPrefix[] {
  const routes = JSON.parse(json || '[]') as Array<{ dst?: string; dev?: string; type?: string }>;
  return routes
    .filter((r) => r.dst && r.dst !== 'default' && r.dst !== '0.0.0.0/0' && /^\d+\.\d+\.\d+\.\d+(\/\d+)?$/.test(r.dst))
    .map((r) => ({ prefix: r.dst!.includes('/') ? r.dst! : `${r.dst}/32`, dev: r.dev ?? r.type ?? 'unknown', source: 'route' as const }));
}

/** Parses `ip -j -4 addr`: each IPv4 address as the network prefix it sits in (`local`/`prefixlen`). */
export function parseIpAddrs(json: string): HostPrefix[] {
  const links = JSON.parse(json || '[]') as Array<{ ifname: string; addr_info?: Array<{ family?: string; local?: string; prefixlen?: number }> }>;
  return links.flatMap((l) =>
    (l.addr_info ?? [])
      .filter((a) => a.family === 'inet' && a.local)
      .map((a) => ({ prefix: `${a.local}/${a.prefixlen ?? 32}`, dev: l.ifname, source: 'address' as const })),
  );
}

function parseCidr(cidr: string): { base: number; len: number } {
  const [addr, lenText] = cidr.split('/');
  const len = Number(lenText ?? 32);
  const n = addr.split('.').reduce((acc, o) => acc * 256 + Number(o), 0);
  const mask = len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0;
  return { base: (n & mask) >>> 0, len };
}

/** Whether two IPv4 CIDRs share any address (one contains the other). */
export function prefixesOverlap(a: string, b: string): boolean {
  const x = parseCidr(a);
  const y = parseCidr(b);
  const len = Math.min(x.len, y.len);
  const mask = len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0;
  return (x.base & mask) >>> 0 === (y.base & mask) >>> 0;
}

/**
 * The host prefixes that collide with bridge `kea<index>`'s subnet: every route or address
 * overlapping 10.213.<index>.0/24 on another interface than `kea<index>` itself (a leftover
 * bridge of ours is reused, not a conflict). Default routes never count (see parseIpRoutes).
 */
export function subnetConflicts(index: number, used: HostPrefix[]): HostPrefix[] {
  const subnet = bridgeSubnet(index);
  const own = `kea${index}`;
  return used.filter((u) => u.dev !== own && prefixesOverlap(u.prefix, subnet));
}

/** How createBridge chooses the bridge (see {@link chooseBridgeIndex}). */
export interface BridgeChoice {
  /** Wanted index; undefined = the first free one in 1..254. */
  index?: number;
  /** When `index`'s subnet is taken, fall back to the first free one in 1..254 instead of failing. */
  orFirstFree?: boolean;
}

/**
 * Pure: the bridge indexes to try, in order, given the host's routes and addresses. Indexes
 * whose subnet overlaps a prefix on another interface are left out.
 * @throws Error naming the interface(s), route(s) or address(es) in the way, when `index` is
 *   taken and `orFirstFree` is not set, or when every candidate is taken.
 */
export function chooseBridgeIndex(choice: BridgeChoice, used: HostPrefix[]): number[] {
  // Grouped by interface: `interface tun0 (route 10.0.0.0/8), interface eth1 (route 10.213.0.0/24, address 10.213.0.9/24)`.
  const describe = (cs: HostPrefix[]) => {
    const byDev = new Map<string, Set<string>>();
    for (const c of cs) byDev.set(c.dev, (byDev.get(c.dev) ?? new Set()).add(`${c.source} ${c.prefix}`));
    return [...byDev].map(([dev, ps]) => `interface ${dev} (${[...ps].join(', ')})`).join(', ');
  };
  const all = Array.from({ length: 254 }, (_, i) => i + 1);
  if (choice.index !== undefined) {
    const conflicts = subnetConflicts(choice.index, used);
    if (!conflicts.length) return [choice.index];
    if (!choice.orFirstFree) {
      throw new Error(
        `bridge subnet ${bridgeSubnet(choice.index)} (kea${choice.index}) is already in use on this machine: ${describe(conflicts)}. ` +
          'Choose another bridge index (kea up --bridge-index <1..254>|auto) or remove that route.',
      );
    }
    const free = all.filter((i) => i !== choice.index && !subnetConflicts(i, used).length);
    if (free.length) return free;
    throw new Error(`no free bridge subnet in ${SUBNET_PREFIX}.0.0/16 on this machine: ${bridgeSubnet(choice.index)} overlaps ${describe(conflicts)}`);
  }
  const free = all.filter((i) => !subnetConflicts(i, used).length);
  if (free.length) return free;
  throw new Error(`no free bridge subnet in ${SUBNET_PREFIX}.0.0/16 on this machine: ${describe(all.flatMap((i) => subnetConflicts(i, used)))}`);
}

/** The host's IPv4 routes (all tables) and addresses, from `ip -j`. */
export async function hostPrefixes(): Promise<HostPrefix[]> {
  return [...parseIpRoutes(await ip('-j', '-4', 'route', 'show', 'table', 'all')), ...parseIpAddrs(await ip('-j', '-4', 'addr', 'show'))];
}

/**
 * Creates (or reuses, when `index` is given and it exists) bridge `kea<index>` with
 * 10.213.<index>.1/24. Without `index`, takes the first free one in 1..254 (creation is atomic:
 * `ip link add` fails when the name is taken, so concurrent test runs get different bridges).
 * A subnet that is already routed or addressed on another interface (a VPN, a docker network,
 * a LAN in 10.213.x) is never used: with `index` the call fails at once naming the interface,
 * unless `orFirstFree` lets it fall back to the first free one (see chooseBridgeIndex).
 * @throws Error when no bridge could be created (not root, subnet in use, or all 254 taken).
 */
export async function createBridge(opts: BridgeChoice = {}): Promise<Bridge> {
  const candidates = chooseBridgeIndex(opts, await hostPrefixes());
  const explicit = opts.index !== undefined && candidates.length === 1 && candidates[0] === opts.index;
  for (const index of candidates) {
    const b = bridgeFor(index);
    try {
      await ip('link', 'add', b.name, 'type', 'bridge');
    } catch (e) {
      if (explicit && (await linkExists(b.name))) {
        await ensureBridgeUp(b);
        return b;
      }
      if (explicit) throw e;
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
 * (10.213.N.2 to .249; free = no host-side veth `kea<N>h<k>` exists). Loopback is up inside.
 * @param name short name, [a-z0-9-], so that `<bridge>-<name>` is a valid netns name.
 * @throws Error when the namespace exists already or an `ip` command fails.
 */
export async function createHost(bridge: Bridge, name: string): Promise<NetnsHost> {
  if (!/^[a-z0-9][a-z0-9-]*$/.test(name)) throw new Error(`createHost: invalid name ${JSON.stringify(name)}`);
  const netns = `${bridge.name}-${name}`;
  await ip('netns', 'add', netns);
  try {
    for (let k = 2; k <= LAST_NETNS_OCTET; k++) {
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

/** Pids of the processes inside a network namespace (`ip netns pids`); none when it does not exist. */
export async function netnsPids(netns: string): Promise<number[]> {
  try {
    return (await ip('netns', 'pids', netns)).split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

async function killNetnsPids(netns: string): Promise<void> {
  const pids = await netnsPids(netns);
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
  const del = (o: KubernetesObject) =>
    api.delete(o).catch((e: { code?: number }) => {
      if (e.code !== 404) throw e;
    });
  await del({ apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', metadata: { name: `${name}-kea`, namespace } });
  await del({ apiVersion: 'v1', kind: 'Service', metadata: { name, namespace } });
}
