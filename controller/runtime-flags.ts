/**
 * Node.js flags and environment the controller runs with everywhere (kea up, tests, the scale
 * benchmark, Dockerfile.controller, the `controller` npm script, manifests). Without them the
 * V8 heap fills with garbage between reconciles: 450 MiB peak at 1000 ApiSchemas, against
 * about 200 MiB with them (docs/performance.md, "Controller scale").
 */
export const CONTROLLER_NODE_ARGS = ['--max-semi-space-size=1', '--max-old-space-size=192', '--optimize-for-size'];
/** glibc malloc arenas: fewer arenas, less fragmentation on a mostly single-threaded process. */
export const CONTROLLER_ENV = { MALLOC_ARENA_MAX: '2' };
