/**
 * `npm run bench`: runs KEA's benchmarks in one process, one after the other, each comparing a
 * KEA path with plain nginx or with KEA's own baseline in the same run, and writes
 * bench/results/<name>.json. Select some with `npm run bench -- policy scale`.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { REPO_ROOT } from '../dev/controlplane.js';

type Bench = () => Promise<unknown>;
const benches: Record<string, () => Promise<Bench>> = {
  policy: async () => (await import('./policy.js')).runPolicyBench,
  scale: async () => (await import('./scale.js')).runScaleBench,
  shared: async () => (await import('./shared-state.js')).runSharedStateBench,
};

const wanted = process.argv.slice(2).length ? process.argv.slice(2) : Object.keys(benches);
const outDir = join(REPO_ROOT, 'bench', 'results');
await mkdir(outDir, { recursive: true });
for (const name of wanted) {
  const load = benches[name];
  if (!load) throw new Error(`unknown benchmark ${name}; known: ${Object.keys(benches).join(', ')}`);
  process.stdout.write(`\n=== bench ${name}\n`);
  const result = await (await load())();
  await writeFile(join(outDir, `${name}.json`), JSON.stringify(result, null, 2) + '\n');
  process.stdout.write(JSON.stringify(result, null, 2) + '\n');
}
