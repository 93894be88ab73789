/** Stops the control plane started by test/global-setup.ts. */
export default async function globalTeardown(): Promise<void> {
  await globalThis.__KEA_CONTROL_PLANE__?.stop();
}
