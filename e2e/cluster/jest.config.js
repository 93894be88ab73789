// Jest configuration of the real-cluster suite (e2e/cluster/*.test.ts), run by
// scripts/test-cluster.sh: last in `npm test`, alone with `npm run test:cluster`. The main jest
// run ignores e2e/cluster/: this suite needs root, the one-node cluster of dev/cluster.ts (which
// the script starts once for all files) and minutes of image builds on a cold machine.
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
