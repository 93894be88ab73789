/**
 * What `kea scan` and `kea import` write is accepted by the real kube-apiserver (started by
 * test/global-setup.ts with KEA's CRDs installed): every output is sent with
 * `kubectl apply --dry-run=server`, which runs the CRD's structural schema and CEL rules.
 * Inputs: every example's source (scan), every example's own OpenAPI document as FastAPI
 * generates it (import, via the project's venv Python, without starting a server), the
 * kitchen-sink test app, and the examples' kea.yaml files. A broken schema is rejected, so
 * the dry run is shown to validate.
 */
import { execFile, spawn } from 'node:child_process';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, test } from '@jest/globals';
import YAML from 'yaml';
import { importOpenApi } from '../import/index.js';
import { EXAMPLES, venvDir, type ExampleService } from './examples.js';
import { scanPython } from './index.js';

const run = promisify(execFile);
const NS = 'kea-scan-test';
const KITCHEN_SINK: ExampleService = {
  dir: 'kitchen-sink',
  cwd: 'lib/scan/testdata/kitchen_sink',
  app: 'app:app',
  scanPath: 'lib/scan/testdata/kitchen_sink',
  servedOnly: [],
};

/** `kubectl apply --dry-run=server -f -` with `yaml` on stdin; resolves with stdout or rejects with stderr. */
function dryRun(yaml: string): Promise<string> {
  return new Promise((res, rej) => {
    const p = spawn('kubectl', ['apply', '--dry-run=server', '-n', NS, '-f', '-'], { env: process.env });
    let out = '';
    let err = '';
    p.stdout.on('data', (b: Buffer) => (out += b.toString()));
    p.stderr.on('data', (b: Buffer) => (err += b.toString()));
    p.on('close', (code) => (code === 0 ? res(out) : rej(new Error(err || `kubectl exited ${code}`))));
    p.stdin.end(yaml);
  });
}

/** The OpenAPI document FastAPI generates for a service, without serving it. */
async function fastApiDoc(ex: ExampleService): Promise<unknown> {
  const [mod, attr] = ex.app.split(':');
  const { stdout } = await run(join(venvDir(), 'bin', 'python'), ['-c', `import json, ${mod}; print(json.dumps(${mod}.${attr}.openapi()))`], {
    cwd: resolve(ex.cwd ?? join('examples', ex.dir)),
    env: { ...process.env, PYTHONDONTWRITEBYTECODE: '1' },
    maxBuffer: 16 << 20,
  });
  return JSON.parse(stdout);
}

beforeAll(async () => {
  expect(process.env.KUBECONFIG).toBeTruthy();
  await run('kubectl', ['create', 'namespace', NS], { env: process.env }).catch((e: Error) => {
    if (!/AlreadyExists/.test(e.message)) throw e;
  });
});

const ALL = [...EXAMPLES, KITCHEN_SINK];

describe('the API server accepts what kea scan and kea import write', () => {
  test.each(ALL.map((e) => [e.dir, e] as const))('kea scan %s', async (_d, ex) => {
    const r = await scanPython(ex.scanPath, { name: ex.dir, namespace: NS });
    const out = await dryRun(YAML.stringify(r.schema));
    expect(out.trim()).toBe(`apischema.kea.dev/${ex.dir} created (server dry run)`);
  });

  test.each(ALL.map((e) => [e.dir, e] as const))('kea import of the OpenAPI document %s generates', async (_d, ex) => {
    const { schema } = importOpenApi(await fastApiDoc(ex), { name: ex.dir, namespace: NS, target: { service: { name: ex.dir, port: 8080 } } });
    expect(schema.spec.operations!.length).toBeGreaterThan(0);
    const out = await dryRun(YAML.stringify(schema));
    expect(out.trim()).toBe(`apischema.kea.dev/${ex.dir} created (server dry run)`);
  });

  test.each(EXAMPLES.map((e) => [e.dir] as const))('examples/%s/kea.yaml', async (dir) => {
    const { readFileSync } = await import('node:fs');
    const out = await dryRun(readFileSync(`examples/${dir}/kea.yaml`, 'utf8'));
    const kinds = out
      .trim()
      .split('\n')
      .map((l) => l.split(' ')[0].split('/')[0]);
    expect(kinds).toEqual(dir === 'grades' ? ['service', 'apischema.kea.dev'] : ['mlservice.kea.dev', 'apischema.kea.dev']);
  });

  test('the dry run validates: a schema the scanner would never write is rejected', async () => {
    const r = await scanPython('examples/wine', { name: 'broken', namespace: NS });
    r.schema.spec.operations![0].path = '/predict/';
    r.schema.spec.operations![1].operationId = r.schema.spec.operations![2].operationId;
    await expect(dryRun(YAML.stringify(r.schema))).rejects.toThrow(/operationIds must be unique/);
  });
});
