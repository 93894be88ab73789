// Jest configuration of the real-cluster suite (e2e/cluster/*.test.ts): `npm run test:cluster`.
// Not part of `npm test` (its unit project ignores e2e/cluster/): the suite needs root, the
// one-node cluster of dev/cluster.ts and minutes of image builds on a cold machine.
export default {
  rootDir: '../..',
  testTimeout: 300000,
  extensionsToTreatAsEsm: ['.ts'],
  moduleNameMapper: { '^(\\.{1,2}/.*)\\.js$': '$1' },
  transform: { '^.+\\.ts$': ['ts-jest', { useESM: true, diagnostics: false }] },
  testEnvironment: 'node',
  modulePathIgnorePatterns: ['<rootDir>/dist/'],
  testMatch: ['<rootDir>/e2e/cluster/**/*.test.ts'],
  testPathIgnorePatterns: ['/node_modules/', '/dist/'],
};
