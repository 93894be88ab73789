// Jest global setup for the integration project: starts one real etcd + kube-apiserver
// (dev/controlplane.ts), installs the Gateway API and KEA CRDs, and exports KUBECONFIG to the
// test files. Suites isolate themselves by namespace.
//
// Plain JS on purpose: Jest 30 imports an ESM globalSetup natively, without the ts-jest
// transform, so it loads the compiled module from dist/ (`npm test` builds first).
import { access } from 'node:fs/promises';

const compiled = new URL('../dist/dev/controlplane.js', import.meta.url);

export default async function globalSetup() {
  await access(compiled).catch(() => {
    throw new Error(`${compiled.pathname} is missing: run \`npm run build\` before the integration tests`);
  });
  const { startControlPlane, installCrds } = await import(compiled.href);
  const cp = await startControlPlane({ unsafeNoFsync: true });
  const t = Date.now();
  await installCrds(cp.kubeconfig);
  process.env.KUBECONFIG = cp.kubeconfig;
  process.env.KEA_TEST_API_SERVER = cp.server;
  globalThis.__KEA_CONTROL_PLANE__ = cp;
  process.stdout.write(`\n[global-setup] control plane ready in ${cp.startMs} ms, CRDs installed in ${Date.now() - t} ms (${cp.kubeconfig})\n`);
}
