/**
 * The bench's open-loop fixed-rate client (bench/policy.ts; wrk2 is not in Debian): POSTs a body
 * with a bearer token every `1000 / rate` ms over 16 keep-alive connections, and measures each
 * request's latency from its scheduled send time (no coordinated omission). The first second is
 * a warm-up (JIT, connections) and is not recorded.
 *
 * Run: `node dist/bench/children/rate.js <base URL> <path> <rate per s> <seconds> <token> <body file>`.
 * Prints one JSON line and exits: `{ sent, failed, p50Ms, p90Ms, p99Ms, maxMs }` (ms; `sent`
 * excludes the warm-up; a request failed when it errored or its status was not 200).
 */
import { readFileSync } from 'node:fs';
import { Pool } from 'undici';

const [url, path, rate, seconds, token, bodyFile] = process.argv.slice(2);
const body = readFileSync(bodyFile);
const pool = new Pool(url, { connections: 16, pipelining: 1 });
const interval = 1000 / Number(rate);
// The first second warms this client up (JIT, connections) and is not recorded: a stall of the
// client itself would count as latency of whichever path it happened to measure.
const warm = Math.round(Number(rate));
const total = warm + Math.round(Number(rate) * Number(seconds));
const lat: number[] = [];
let failed = 0;
const t0 = performance.now();
let sent = 0;
await new Promise<void>((resolve) => {
  let outstanding = 0;
  const tick = (): void => {
    const now = performance.now();
    while (sent < total && t0 + sent * interval <= now) {
      const scheduled = t0 + sent * interval;
      const recorded = sent >= warm;
      sent++;
      outstanding++;
      pool
        .request({ path, method: 'POST', headers: { 'content-type': 'application/json', authorization: 'Bearer ' + token }, body })
        .then(async (r) => {
          await r.body.dump();
          if (r.statusCode !== 200) failed++;
          if (recorded) lat.push(performance.now() - scheduled);
        })
        .catch(() => {
          failed++;
        })
        .finally(() => {
          outstanding--;
          if (sent >= total && outstanding === 0) resolve();
        });
    }
    if (sent < total) setTimeout(tick, Math.max(0, t0 + sent * interval - performance.now()));
  };
  tick();
});
lat.sort((a, b) => a - b);
const q = (p: number): number => (lat.length ? lat[Math.min(lat.length - 1, Math.floor(p * lat.length))] : NaN);
process.stdout.write(JSON.stringify({ sent: sent - warm, failed, p50Ms: q(0.5), p90Ms: q(0.9), p99Ms: q(0.99), maxMs: lat[lat.length - 1] ?? NaN }));
await pool.close();
