/**
 * `kea scan` and `kea import` as commands (cli/commands/scan.ts, import.ts) registered on a
 * commander program: output YAML, the report on stderr, and exit codes.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, test } from '@jest/globals';
import { Command } from 'commander';
import YAML from 'yaml';
import { register as registerImport } from '../../cli/commands/import.js';
import { register as registerScan, parseTarget } from '../../cli/commands/scan.js';
import type { ApiSchema } from '../api/types.js';

const dir = mkdtempSync(join(tmpdir(), 'kea-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
afterEach(() => {
  process.exitCode = undefined;
});

/** Runs `kea <args>` in-process; returns stdout, stderr and the exit code it set. */
async function kea(...args: string[]): Promise<{ out: string; err: string; code: number }> {
  const program = new Command('kea').exitOverride();
  registerScan(program);
  registerImport(program);
  let out = '';
  let err = '';
  const ow = process.stdout.write.bind(process.stdout);
  const ew = process.stderr.write.bind(process.stderr);
  process.stdout.write = (s: string) => ((out += s), true);
  process.stderr.write = (s: string) => ((err += s), true);
  try {
    await program.parseAsync(['node', 'kea', ...args]);
  } finally {
    process.stdout.write = ow;
    process.stderr.write = ew;
  }
  // Node's own warnings (e.g. the VM-modules ExperimentalWarning) may land in the capture.
  err = err.replace(/^\(node:\d+\) .*\n(\(Use `node --trace-warnings.*\n)?/gm, '');
  const code = Number(process.exitCode ?? 0);
  process.exitCode = undefined;
  return { out, err, code };
}

describe('kea scan', () => {
  test('writes the ApiSchema for a Service target and summarises on stderr', async () => {
    const r = await kea('scan', 'examples/grades', '--service', 'grades:8080', '-n', 'school', '--base-path', '/school/grades');
    expect(r.code).toBe(0);
    const s = YAML.parse(r.out) as ApiSchema;
    expect(s.metadata).toEqual({ name: 'grades', namespace: 'school' });
    expect(s.spec.target).toEqual({ service: { name: 'grades', port: 8080 } });
    expect(s.spec.basePath).toBe('/school/grades');
    expect(s.spec.operations!.map((o) => `${o.method} ${o.path} ${JSON.stringify(o.access ?? null)}`)).toEqual([
      'GET /healthz null',
      'GET /get_grades {"mode":"restricted","roles":["student","teacher"]}',
      'POST /set_grades {"mode":"restricted","roles":["teacher"]}',
    ]);
    expect(r.err).toBe('kea scan: 3 operation(s), 4 component(s) from 2 file(s) (fastapi); 0 issue(s)\n');
  });

  test('--strict exits 1 when something was left out; the issues go to stderr and the -o file header', async () => {
    writeFileSync(
      join(dir, 'app.py'),
      'from fastapi import FastAPI, Cookie\napp = FastAPI()\n\n@app.get("/a")\ndef a(s: str = Cookie(None)) -> int:\n    return 1\n',
    );
    const outFile = join(dir, 'out.yaml');
    const r = await kea('scan', join(dir, 'app.py'), '--strict', '-o', outFile);
    expect(r.code).toBe(1);
    expect(r.out).toBe('');
    const issue = `${join(dir, 'app.py')}:5: unsupported: a: cookie parameter s cannot be described in an ApiSchema (path, query and header only); left out`;
    expect(r.err.split('\n')[0]).toBe(issue);
    expect(readFileSync(outFile, 'utf8')).toContain(`#   ${issue}\n`);
    expect((await kea('scan', join(dir, 'app.py'))).code).toBe(0);
  });

  test('errors exit 2 with a message', async () => {
    const r = await kea('scan', join(dir, 'nothing-here'));
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/^kea scan: ENOENT/);
    expect((await kea('scan', 'examples/wine', '--convention', 'django')).err).toBe('kea scan: --convention must be auto, fastapi or plain-class\n');
    expect(() => parseTarget(undefined, 'grades')).toThrow('--service must be NAME:PORT, got grades');
  });
});

describe('kea import', () => {
  test('from a file, with --refresh; unroutable items on stderr and --strict', async () => {
    const doc = {
      openapi: '3.1.0',
      info: { title: 'Up', version: '1.0' },
      paths: {
        '/upload': { post: { operationId: 'up', requestBody: { content: { 'multipart/form-data': {} } }, responses: {} } },
        '/ok': { get: { operationId: 'ok', responses: { '200': { description: 'fine' } } } },
      },
    };
    writeFileSync(join(dir, 'up.json'), JSON.stringify(doc));
    const r = await kea('import', join(dir, 'up.json'), '--service', 'up:9000', '--refresh', '--strict');
    expect(r.code).toBe(1);
    const s = YAML.parse(r.out) as ApiSchema;
    expect(s.spec.source).toEqual({ openapi: { path: '/openapi.json', refresh: true, intervalSeconds: 60 } });
    expect(s.spec.operations!.map((o) => o.operationId)).toEqual(['ok']);
    expect(r.err).toBe(
      'not routed: POST /upload: request body is not JSON (multipart/form-data); KEA validates and forwards JSON bodies only; operation skipped\n' +
        'kea import: 1 operation(s); 1 item(s) not routed\n',
    );
    const bad = await kea('import', join(dir, 'missing.json'));
    expect(bad.code).toBe(2);
  });
});
