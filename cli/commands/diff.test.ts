import { jest } from '@jest/globals';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import YAML from 'yaml';
import { generateOpenApi } from '../../lib/openapi/generate.js';
import { irisV1, irisV2 } from '../../lib/openapi/testdata/fixtures.js';
import { register, runDiff } from './diff.js';

let dir: string;
const f = (name: string, content: string) => {
  const p = join(dir, name);
  writeFileSync(p, content);
  return p;
};
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'kea-diff-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

test('ApiSchema YAML v1 → v2: breaking, exit 1, text names the renamed field', async () => {
  const a = f(
    'v1.yaml',
    `# comment\n---\n${YAML.stringify({ apiVersion: 'kea.dev/v1alpha1', kind: 'MLService', metadata: { name: 'iris' } })}---\n${YAML.stringify(irisV1)}`,
  );
  const b = f('v2.yaml', YAML.stringify(irisV2));
  const r = await runDiff(a, b);
  expect(r.exitCode).toBe(1);
  expect(r.stdout).toContain('API diff 1.0.0 → 2.0.0: 3 change(s), 1 breaking');
  expect(r.stdout).toMatch(/BREAKING\s+POST \/predict: request body: property "features" renamed to "measurements"/);
  expect(r.stderr).toBe('kea diff: 1 breaking change(s)\n');
  const soft = await runDiff(a, b, { failOnBreaking: false });
  expect(soft.exitCode).toBe(0);
});

test('OpenAPI JSON vs ApiSchema YAML, json and markdown formats', async () => {
  const a = f('v1.json', JSON.stringify(generateOpenApi(irisV1, { gatewayUrl: 'http://localhost:8080' })));
  const b = f('v2b.yaml', YAML.stringify(irisV2));
  const j = await runDiff(a, b, { format: 'json' });
  const parsed = JSON.parse(j.stdout);
  expect(parsed).toMatchObject({ from: '1.0.0', to: '2.0.0', breaking: true });
  expect(parsed.changes).toHaveLength(3);
  const md = await runDiff(a, b, { format: 'markdown' });
  expect(md.stdout).toMatch(/^## What changed in v2\.0\.0/);
});

test('no breaking change → exit 0', async () => {
  const a = f('same1.yaml', YAML.stringify(irisV1));
  const r = await runDiff(a, a);
  expect(r).toEqual({ exitCode: 0, stdout: 'API diff 1.0.0 → 1.0.0: 0 change(s), 0 breaking\n', stderr: '' });
  const r2 = await runDiff(
    f('v2c.yaml', YAML.stringify(irisV2)),
    f(
      'v2d.yaml',
      YAML.stringify({ ...irisV2, spec: { ...irisV2.spec, operations: [...irisV2.spec.operations!, { operationId: 'more', method: 'GET', path: '/more' }] } }),
    ),
  );
  expect(r2.exitCode).toBe(0);
  expect(r2.stdout).toMatch(/non-breaking\s+GET \/more: operation more added/);
});

test('errors exit 2 with the location named', async () => {
  expect(await runDiff(join(dir, 'missing.yaml'), join(dir, 'missing.yaml'))).toMatchObject({
    exitCode: 2,
    stderr: `kea diff: ${join(dir, 'missing.yaml')}: no such file\n`,
  });
  const junk = f('junk.yaml', 'a: [unclosed');
  expect((await runDiff(junk, junk)).stderr).toMatch(/junk\.yaml: not JSON or YAML/);
  const other = f('other.yaml', 'kind: ConfigMap\n');
  expect((await runDiff(other, other)).stderr).toMatch(/other\.yaml: neither an OpenAPI 3 document nor an ApiSchema/);
  const swagger2 = f('s2.yaml', 'swagger: "2.0"\nopenapi: "2.0"\n');
  expect((await runDiff(swagger2, swagger2)).stderr).toMatch(/OpenAPI 2\.0 is not supported/);
});

test('reads documents from URLs (e.g. the gateway /openapi endpoint)', async () => {
  const docs: Record<string, unknown> = {
    '/openapi/models/iris.json': generateOpenApi(irisV2, { gatewayUrl: 'http://gw' }),
  };
  const server: Server = createServer((req, res) => {
    const d = docs[req.url ?? ''];
    if (!d) return void res.writeHead(404).end();
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(d));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const { port } = server.address() as AddressInfo;
  try {
    const r = await runDiff(f('old.yaml', YAML.stringify(irisV1)), `http://127.0.0.1:${port}/openapi/models/iris.json`);
    expect(r.exitCode).toBe(1);
    const nf = await runDiff(`http://127.0.0.1:${port}/nope.json`, `http://127.0.0.1:${port}/nope.json`);
    expect(nf.stderr).toMatch(/nope\.json: HTTP 404/);
  } finally {
    await new Promise<void>((r) => server.close(() => r()));
  }
});

test('commander wiring sets the exit code and honours --no-fail-on-breaking', async () => {
  const a = f('w1.yaml', YAML.stringify(irisV1));
  const b = f('w2.yaml', YAML.stringify(irisV2));
  const prev = process.exitCode;
  const out = jest.spyOn(process.stdout, 'write').mockImplementation(() => true);
  const err = jest.spyOn(process.stderr, 'write').mockImplementation(() => true);
  try {
    const p1 = new Command().exitOverride();
    register(p1);
    await p1.parseAsync(['diff', a, b], { from: 'user' });
    expect(process.exitCode).toBe(1);
    const p2 = new Command().exitOverride();
    register(p2);
    await p2.parseAsync(['diff', a, b, '--no-fail-on-breaking', '--format', 'json'], { from: 'user' });
    expect(process.exitCode).toBe(0);
    expect(JSON.parse(String(out.mock.calls.at(-1)![0])).breaking).toBe(true);
  } finally {
    out.mockRestore();
    err.mockRestore();
    process.exitCode = prev;
  }
});
