/**
 * Node.js flags the policy server runs with everywhere (kea up, the benchmark, Dockerfile.policy,
 * the `policy-server` npm script). A 64 MiB young generation means fewer scavenges on the
 * allocation-heavy request path; measured, it cut GC pauses and the p99 tail at 1000 req/s
 * (docs/performance.md, "Data path").
 */
export const POLICY_NODE_ARGS = ['--max-semi-space-size=64'];
