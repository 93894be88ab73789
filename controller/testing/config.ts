/**
 * The documented topology (docs/TEAM.md) as a {@link ControllerConfig} for tests of the pure
 * stages, with per-test overrides. Not read from flags or env, so tests stay deterministic.
 */
import type { ControllerConfig } from '../model.js';

export function testControllerConfig(overrides: Partial<ControllerConfig> = {}): ControllerConfig {
  return {
    systemNamespace: 'kea-system',
    gateway: { namespace: 'kea-system', name: 'kea', publicListener: 'public', internalListener: 'internal' },
    policyServer: { name: 'kea-policy', port: 8000 },
    internalToken: 't',
    gatewayUrl: 'http://gateway.test:8080',
    internalDomain: 'kea.internal',
    ...overrides,
  };
}

/**
 * The command line (`process.argv` shape, for `loadConfig`) of a controller a test starts in
 * its own process (`startController`): its HTTP server on an ephemeral loopback port, no leader
 * election, and
 * `systemNamespace` as the system namespace, followed by `flags` (the internal token and
 * whatever else the test sets).
 */
export function testControllerArgs(systemNamespace: string, ...flags: string[]): string[] {
  return ['node', 'main', '--http-port=0', '--http-host=127.0.0.1', `--system-namespace=${systemNamespace}`, '--leader-election=false', ...flags];
}

/** Flags for quick reconciles in tests: 50 ms debounce, at most 300 ms delay. */
export const QUICK_RECONCILE_FLAGS: readonly string[] = ['--debounce-ms=50', '--max-delay-ms=300'];
