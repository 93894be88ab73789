// Stops the control plane started by test/global-setup.mjs.
export default async function globalTeardown() {
  await globalThis.__KEA_CONTROL_PLANE__?.stop();
}
