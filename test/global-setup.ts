/**
 * Jest global setup for the integration project: starts one real etcd + kube-apiserver
 * (dev/controlplane.ts), installs the Gateway API, NGF and KEA CRDs, and exports KUBECONFIG
 * to the test files. Suites isolate themselves by namespace.
 */
import { startControlPlane, installCrds, type ControlPlane } from '../dev/controlplane.js';

declare global {
  var __KEA_CONTROL_PLANE__: ControlPlane | undefined;
}

export default async function globalSetup(): Promise<void> {
  const cp = await startControlPlane({ unsafeNoFsync: true });
  const t = Date.now();
  await installCrds(cp.kubeconfig);
  process.env.KUBECONFIG = cp.kubeconfig;
  process.env.KEA_TEST_API_SERVER = cp.server;
  globalThis.__KEA_CONTROL_PLANE__ = cp;
  process.stdout.write(`\n[global-setup] control plane ready in ${cp.startMs} ms, CRDs installed in ${Date.now() - t} ms (${cp.kubeconfig})\n`);
}
