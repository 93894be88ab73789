// Jest runs three projects: unit (no API server: pure logic, in-process servers such as the dev
// OpenID provider, and local processes a test starts and stops itself: the built policy server
// and its workers, Chromium, bash, kubectl kustomize; some need dist/, which `npm test` builds
// first), integration (a real kube-apiserver + etcd started once by test/global-setup.mjs) and
// e2e (the whole stack through real NGF/nginx). `npm test` runs all three in band.
const common = {
  extensionsToTreatAsEsm: ['.ts'],
  moduleNameMapper: { '^(\\.{1,2}/.*)\\.js$': '$1' },
  transform: { '^.+\\.ts$': ['ts-jest', { useESM: true, diagnostics: false }] },
  testEnvironment: 'node',
  modulePathIgnorePatterns: ['<rootDir>/dist/'],
};
export default {
  testTimeout: 120000,
  reporters: ['default', '<rootDir>/test/summary-reporter.cjs'],
  projects: [
    {
      ...common,
      displayName: 'unit',
      testMatch: ['<rootDir>/**/*.test.ts'],
      testPathIgnorePatterns: ['/node_modules/', '/dist/', '\\.int\\.test\\.ts$', '\\.e2e\\.test\\.ts$', '/e2e/cluster/'],
    },
    {
      ...common,
      displayName: 'integration',
      testMatch: ['<rootDir>/**/*.int.test.ts'],
      testPathIgnorePatterns: ['/node_modules/', '/dist/'],
      globalSetup: '<rootDir>/test/global-setup.mjs',
      globalTeardown: '<rootDir>/test/global-teardown.mjs',
    },
    { ...common, displayName: 'e2e', testMatch: ['<rootDir>/e2e/**/*.e2e.test.ts'], testPathIgnorePatterns: ['/node_modules/', '/dist/'] },
  ],
};
