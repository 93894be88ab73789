// Layer rules and cycle checks, run by `npm run depcheck` (part of `npm test`): the structure
// docs/architecture.md describes, checked by a tool rather than by memory.
//
// The controller is a pipeline of stages, each a folder (docs/architecture.md, DEVELOPERS.md):
//   watch (and discover, a side input) → batch → graph → ir → render → apply.
// A stage imports only itself, earlier stages and the shared modules below; never a later stage
// and never the wiring around the stages (main.ts, reconcile.ts, incremental.ts, leader/, ...).
// Shared by every stage: lib/, controller/model.ts (the shapes that flow between stages),
// controller/kube/ (the Kubernetes API client, kubeconfig loading, the applied-hash annotation).
// Type-only imports count: tsPreCompilationDeps keeps them in the graph.

/** Stage folders under controller/, by rank: a stage may import stages of a lower rank. */
const STAGES = [
  ['watch', 0],
  ['discover', 0],
  ['batch', 1],
  ['graph', 2],
  ['ir', 3],
  ['render', 4],
  ['apply', 5],
];
/** Shared controller modules (paths relative to the repository, as regular expressions). */
const SHARED = ['^controller/model\\.ts$', '^controller/kube/'];
const TEST = '\\.test\\.ts$';

const stageRules = STAGES.map(([stage, rank]) => {
  const allowed = STAGES.filter(([s, r]) => s === stage || r < rank).map(([s]) => s);
  return {
    name: `stage-${stage}`,
    comment: `controller/${stage}/ imports only ${allowed.map((s) => `${s}/`).join(', ')}, controller/model.ts, controller/kube/ and lib/ (pipeline order: watch → batch → graph → ir → render → apply)`,
    severity: 'error',
    from: { path: `^controller/${stage}/`, pathNot: TEST },
    to: { path: '^controller/', pathNot: [`^controller/(${allowed.join('|')})/`, ...SHARED] },
  };
});

/** @type {import('dependency-cruiser').IConfiguration} */
export default {
  forbidden: [
    {
      name: 'no-circular',
      comment: 'no import cycles, type-only imports included (a cycle hides which module owns a concept)',
      severity: 'error',
      from: {},
      to: { circular: true },
    },
    ...stageRules,
    {
      name: 'shared-is-shared',
      comment: 'controller/model.ts and controller/kube/ are shared by every stage: they import no stage and none of the wiring',
      severity: 'error',
      from: { path: SHARED, pathNot: TEST },
      to: { path: '^controller/', pathNot: SHARED },
    },
    {
      name: 'policy-server-not-controller',
      comment: 'the policy server is deployed apart from the controller: it shares only lib/ with it (tests may drive both)',
      severity: 'error',
      from: { path: '^policy-server/', pathNot: TEST },
      to: { path: '^controller/' },
    },
    {
      name: 'controller-not-policy-server',
      comment: 'the controller is deployed apart from the policy server: it shares only lib/ with it (tests may drive both)',
      severity: 'error',
      from: { path: '^controller/', pathNot: TEST },
      to: { path: '^policy-server/' },
    },
    {
      name: 'lib-not-programs',
      comment: 'lib/ is shared by both programs and imports neither',
      severity: 'error',
      from: { path: '^lib/' },
      to: { path: '^(controller|policy-server)/' },
    },
    {
      name: 'programs-not-tooling',
      comment:
        'the images ship lib/, controller/ and policy-server/ only (Dockerfile.*): they import nothing from cli/, dev/, bench/, e2e/ or test/ (tests may)',
      severity: 'error',
      from: { path: '^(lib|controller|policy-server)/', pathNot: TEST },
      to: { path: '^(cli|dev|bench|e2e|test)/' },
    },
    {
      name: 'not-to-unresolvable',
      comment: 'every relative import resolves to a file',
      severity: 'error',
      from: {},
      to: { couldNotResolve: true },
    },
  ],
  options: {
    doNotFollow: { path: ['node_modules'] },
    exclude: { path: ['^dist/', '^node_modules/', '^examples/'] },
    tsConfig: { fileName: 'tsconfig.json' },
    tsPreCompilationDeps: true,
    moduleSystems: ['es6'],
    // Resolve packages through their `exports` as Node does for an ES module.
    enhancedResolveOptions: { exportsFields: ['exports'], conditionNames: ['import', 'node', 'default', 'types'] },
  },
};
