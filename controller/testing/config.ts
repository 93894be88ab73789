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
