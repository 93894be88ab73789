/**
 * The bridge subnet choice of the local stack (dev/netns.ts), pure logic: which 10.213.N.0/24
 * is free given the host's routes and addresses (`ip -j` output as the machine prints it), and
 * the error naming the interface when the wanted one is taken.
 */
import {
  chooseBridgeIndex,
  hostAddressFor,
  LAST_NETNS_OCTET,
  parseIpAddrs,
  parseIpRoutes,
  prefixesOverlap,
  subnetConflicts,
  type HostPrefix,
} from './netns.js';

// `ip -j -4 route show table all` of a laptop with a VPN on 10.213.0.0/16 and a docker bridge.
const ROUTES = JSON.stringify([
  { dst: 'default', gateway: '192.168.1.1', dev: 'wlan0', flags: [] },
  { dst: '192.168.1.0/24', dev: 'wlan0', protocol: 'kernel', scope: 'link', prefsrc: '192.168.1.20', flags: [] },
  { dst: '172.17.0.0/16', dev: 'docker0', protocol: 'kernel', scope: 'link', flags: ['linkdown'] },
  { dst: '10.213.0.0/16', dev: 'tun0', scope: 'link', flags: [] },
  { type: 'local', dst: '192.168.1.20', dev: 'wlan0', table: 'local', protocol: 'kernel', scope: 'host', flags: [] },
  { type: 'blackhole', dst: '10.99.0.0/16', flags: [] },
]);
// `ip -j -4 addr`: an address in 10.213.7.x on eth1 (no route printed for it, e.g. noprefixroute).
const ADDRS = JSON.stringify([
  { ifindex: 1, ifname: 'lo', addr_info: [{ family: 'inet', local: '127.0.0.1', prefixlen: 8 }] },
  {
    ifindex: 3,
    ifname: 'eth1',
    addr_info: [
      { family: 'inet', local: '10.213.7.5', prefixlen: 28 },
      { family: 'inet6', local: 'fe80::1', prefixlen: 64 },
    ],
  },
]);

describe('parsing ip -j', () => {
  test('routes: default routes are skipped, host routes become /32, a route without a device is named by its type', () => {
    expect(parseIpRoutes(ROUTES)).toEqual([
      { prefix: '192.168.1.0/24', dev: 'wlan0', source: 'route' },
      { prefix: '172.17.0.0/16', dev: 'docker0', source: 'route' },
      { prefix: '10.213.0.0/16', dev: 'tun0', source: 'route' },
      { prefix: '192.168.1.20/32', dev: 'wlan0', source: 'route' },
      { prefix: '10.99.0.0/16', dev: 'blackhole', source: 'route' },
    ]);
  });

  test('addresses: IPv4 only, with their prefix length', () => {
    expect(parseIpAddrs(ADDRS)).toEqual([
      { prefix: '127.0.0.1/8', dev: 'lo', source: 'address' },
      { prefix: '10.213.7.5/28', dev: 'eth1', source: 'address' },
    ]);
  });
});

test('prefixesOverlap: containment either way, disjoint prefixes do not overlap', () => {
  expect(prefixesOverlap('10.213.0.0/24', '10.213.0.0/16')).toBe(true);
  expect(prefixesOverlap('10.0.0.0/8', '10.213.4.0/24')).toBe(true);
  expect(prefixesOverlap('10.213.0.128/25', '10.213.0.0/24')).toBe(true);
  expect(prefixesOverlap('10.213.0.9/32', '10.213.0.0/24')).toBe(true);
  expect(prefixesOverlap('10.213.1.0/24', '10.213.0.0/24')).toBe(false);
  expect(prefixesOverlap('10.212.0.0/16', '10.213.0.0/24')).toBe(false);
});

describe('choosing the bridge', () => {
  const clean: HostPrefix[] = parseIpRoutes(
    JSON.stringify([
      { dst: 'default', dev: 'eth0' },
      { dst: '192.0.2.0/24', dev: 'eth0' },
    ]),
  );

  test('a machine with nothing in 10.213.0.0/16 gets the wanted index; auto gets 1..254 in order', () => {
    expect(chooseBridgeIndex({ index: 0 }, clean)).toEqual([0]);
    expect(chooseBridgeIndex({}, clean)).toEqual(Array.from({ length: 254 }, (_, i) => i + 1));
  });

  test("our own bridge's routes and address (a leftover kea0) are no conflict", () => {
    const own = [
      { prefix: '10.213.0.0/24', dev: 'kea0', source: 'route' as const },
      { prefix: '10.213.0.1/24', dev: 'kea0', source: 'address' as const },
    ];
    expect(chooseBridgeIndex({ index: 0 }, [...clean, ...own])).toEqual([0]);
    // ...but kea0's subnet is a conflict for any other bridge name overlapping it (none here).
    expect(subnetConflicts(1, own)).toEqual([]);
  });

  test('the wanted subnet routed on another interface fails at once, naming the interface and the route', () => {
    const used = [...clean, { prefix: '10.213.0.0/24', dev: 'eth1', source: 'route' as const }];
    expect(() => chooseBridgeIndex({ index: 0 }, used)).toThrow(
      'bridge subnet 10.213.0.0/24 (kea0) is already in use on this machine: interface eth1 (route 10.213.0.0/24). Choose another bridge index (kea up --bridge-index <1..254>|auto) or remove that route.',
    );
  });

  test('orFirstFree (kea up by default): falls back to the first free subnet, skipping taken ones', () => {
    const used = [
      { prefix: '10.213.0.0/24', dev: 'eth1', source: 'route' as const },
      { prefix: '10.213.1.0/24', dev: 'br-lan', source: 'route' as const },
      { prefix: '10.213.2.7/28', dev: 'eth2', source: 'address' as const },
    ];
    expect(chooseBridgeIndex({ index: 0, orFirstFree: true }, used).slice(0, 2)).toEqual([3, 4]);
    expect(chooseBridgeIndex({}, used)[0]).toBe(3);
  });

  test('a wide route covering every candidate (a VPN on 10.0.0.0/8) fails, naming its interface', () => {
    const used = parseIpRoutes(JSON.stringify([{ dst: '10.0.0.0/8', dev: 'tun0' }]));
    expect(() => chooseBridgeIndex({ index: 0, orFirstFree: true }, used)).toThrow(
      /no free bridge subnet in 10\.213\.0\.0\/16 on this machine: 10\.213\.0\.0\/24 overlaps interface tun0 \(route 10\.0\.0\.0\/8\)$/,
    );
    expect(() => chooseBridgeIndex({}, used)).toThrow(/interface tun0/);
  });

  test('the machine of the fixtures: VPN on 10.213.0.0/16 takes every index, eth1 also 10.213.7.0/28', () => {
    const used = [...parseIpRoutes(ROUTES), ...parseIpAddrs(ADDRS)];
    expect(subnetConflicts(7, used).map((c) => c.dev)).toEqual(['tun0', 'eth1']);
    expect(() => chooseBridgeIndex({ index: 0 }, used)).toThrow(/interface tun0 \(route 10\.213\.0\.0\/16\)/);
  });
});

describe('host addresses of the policy-server replicas', () => {
  const bridge = { name: 'kea3', index: 3, hostAddress: '10.213.3.1' };

  test('replica 1 is the bridge address, then the top of the subnet down to .250, never a namespace address', () => {
    expect([1, 2, 3, 6].map((i) => hostAddressFor(bridge, i))).toEqual(['10.213.3.1', '10.213.3.254', '10.213.3.253', '10.213.3.250']);
    for (let i = 2; i <= 6; i++) expect(Number(hostAddressFor(bridge, i).split('.')[3])).toBeGreaterThan(LAST_NETNS_OCTET);
  });

  test('outside 1..6 is refused', () => {
    for (const i of [0, 7, 1.5]) expect(() => hostAddressFor(bridge, i)).toThrow(RangeError);
  });
});
