/**
 * The one polling helper of the test suites (integration, e2e, unit tests that run processes).
 * Tests wait for state that real components reach in their own time (a route programmed by
 * NGF, a status written by the controller, a process restarted); each such wait is a bounded
 * poll with a name that says what was awaited.
 */

/** What a check returns: a truthy value ends the wait; `undefined`, `null` or `false` keep polling. */
export type Check<T> = () => T | undefined | null | false | Promise<T | undefined | null | false>;

/**
 * Calls `check` every `everyMs` until it returns a truthy value, and resolves that value.
 * A check that throws counts as "not yet"; its last error is quoted when the wait times out.
 * @param what - what is awaited, for the error message (e.g. `'route served'`)
 * @param timeoutMs - the longest wait, ms (the check runs at least once)
 * @param check - polled; may be synchronous or async
 * @param everyMs - pause between two checks, ms (default 100)
 * @throws Error `<what>: not reached after <timeoutMs> ms (last error: …)` when the time is up
 */
export async function waitFor<T>(what: string, timeoutMs: number, check: Check<T>, everyMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() >= deadline) throw new Error(`${what}: not reached after ${timeoutMs} ms${last ? ` (last error: ${String(last)})` : ''}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/**
 * {@link waitFor}, also giving how long the wait took.
 * @returns the check's value and the elapsed time, ms
 * @throws as {@link waitFor}
 */
export async function waitForTimed<T>(what: string, timeoutMs: number, check: Check<T>, everyMs = 100): Promise<{ value: T; ms: number }> {
  const t0 = Date.now();
  const value = await waitFor(what, timeoutMs, check, everyMs);
  return { value, ms: Date.now() - t0 };
}
