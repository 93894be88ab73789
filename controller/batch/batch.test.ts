/** Unit tests of the batch stage (pure timing logic, real timers with small delays). */
import { Batcher } from './index.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('a burst of triggers becomes one run after the debounce', async () => {
  let runs = 0;
  const b = new Batcher(async () => void runs++, { debounceMs: 30, maxDelayMs: 1000 });
  for (let i = 0; i < 50; i++) b.trigger();
  await sleep(10);
  expect(runs).toBe(0);
  await b.idle();
  expect(runs).toBe(1);
  expect(b.triggers).toBe(50);
  await b.close();
});

test('a continuous stream still runs by maxDelay', async () => {
  const at: number[] = [];
  const t0 = Date.now();
  const b = new Batcher(async () => void at.push(Date.now() - t0), { debounceMs: 40, maxDelayMs: 120 });
  const iv = setInterval(() => b.trigger(), 10);
  await sleep(400);
  clearInterval(iv);
  await b.idle();
  await b.close();
  // Without maxDelay the first run would come only after the stream stopped (~440 ms).
  expect(at[0]).toBeLessThan(250);
  expect(at.length).toBeGreaterThanOrEqual(2);
});

test('runs never overlap; a trigger during a run gives exactly one follow-up run', async () => {
  let active = 0;
  let maxActive = 0;
  let runs = 0;
  const b = new Batcher(
    async () => {
      active++;
      maxActive = Math.max(maxActive, active);
      runs++;
      await sleep(60);
      active--;
    },
    { debounceMs: 5, maxDelayMs: 50 },
  );
  b.trigger();
  await sleep(20); // first run in progress
  for (let i = 0; i < 10; i++) b.trigger();
  await b.idle();
  expect(maxActive).toBe(1);
  expect(runs).toBe(2);
  await b.close();
});

test('a failed run is retried with backoff until it succeeds', async () => {
  let calls = 0;
  const errors: number[] = [];
  const b = new Batcher(
    async () => {
      calls++;
      if (calls < 3) throw new Error('boom');
    },
    { debounceMs: 5, retryMs: 20, onError: (_e, retry) => errors.push(retry) },
  );
  b.trigger();
  await b.idle();
  expect(calls).toBe(3);
  expect(errors).toEqual([20, 40]);
  await b.close();
});

test('close stops scheduling', async () => {
  let runs = 0;
  const b = new Batcher(async () => void runs++, { debounceMs: 20 });
  b.trigger();
  await b.close();
  b.trigger();
  await sleep(60);
  expect(runs).toBe(0);
});
