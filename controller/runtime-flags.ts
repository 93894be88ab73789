/**
 * Node.js flags and environment the controller runs with everywhere (kea up, the scale
 * benchmark, Dockerfile.controller, the `controller` npm script). Measured at 1000 ApiSchemas
 * + 1000 MLServices (docs/performance.md, "Controller scale"):
 *  - without flags the V8 heap fills with garbage between reconciles: 450 MiB peak;
 *  - `--max-semi-space-size=1 --max-old-space-size=192 --optimize-for-size`: a small young
 *    generation and a memory-reducing old generation; peak (VmHWM) 161–197 MiB, steady
 *    135–142 MiB;
 *  - plus `--no-opt --no-maglev` (no optimizing compilers: no TurboFan/Maglev code or compile
 *    zones; the interpreter and the Sparkplug baseline compiler stay): the reconcile's JavaScript
 *    slower, the benchmark's convergence time unchanged (it is bound by API server writes).
 *    Not `--lite-mode`: it implies `--jitless`, which removes WebAssembly, and undici's HTTP
 *    parser (llhttp) is WebAssembly: every `fetch` of OpenAPI discovery failed with
 *    "WebAssembly is not defined" (caught by the e2e run; controller/runtime-flags.test.ts).
 * None of them caps what a larger fleet may use: `--max-old-space-size=192` is the only limit
 * and the live heap at 1000 ApiSchemas is ~50 MB.
 */
export const CONTROLLER_NODE_ARGS = ['--max-semi-space-size=1', '--max-old-space-size=192', '--optimize-for-size', '--no-opt', '--no-maglev'];
/** glibc malloc arenas: fewer arenas, less fragmentation on a mostly single-threaded process. */
export const CONTROLLER_ENV = { MALLOC_ARENA_MAX: '2' };
