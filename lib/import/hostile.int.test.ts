/**
 * Issue 10, item 8: a hostile OpenAPI document (`kea import`) or hostile Python sources
 * (`kea scan`) cannot make the YAML KEA writes carry another Kubernetes object.
 *
 * The payload is a ClusterRoleBinding granting cluster-admin to every authenticated user,
 * written after a line break that YAML 1.2 (the `yaml` library) does not treat as one but
 * go-yaml does (a lone `\r` in a comment, U+0085, U+2028, U+2029), and followed by `---` so
 * go-yaml drops the rest. The output of the real commands (cli/commands/import.ts, scan.ts) is
 * decoded the way Kubernetes does: `kubectl apply --dry-run=server -o json` reads the file with
 * the Kubernetes YAML decoder (sigs.k8s.io/yaml, go-yaml) and sends each object to the real
 * kube-apiserver (test/global-setup.ts) for a server-side dry run. Passing means: exactly one
 * object comes back, the ApiSchema, and every hostile string in it is unchanged.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { Command } from 'commander';
import { register as registerImport } from '../../cli/commands/import.js';
import { register as registerScan } from '../../cli/commands/scan.js';
import type { ApiSchema } from '../api/types.js';
import { scanPython } from '../scan/index.js';

const NS = 'kea-hostile-yaml';
const dir = mkdtempSync(join(tmpdir(), 'kea-hostile-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A ClusterRoleBinding (cluster-admin for every authenticated user) after the line break `br`, then `---`: go-yaml reads only what comes before. */
function crb(br: string): string {
  return [
    '',
    'apiVersion: rbac.authorization.k8s.io/v1',
    'kind: ClusterRoleBinding',
    'metadata: {name: kea-pwned}',
    'roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin}',
    'subjects: [{kind: Group, apiGroup: rbac.authorization.k8s.io, name: "system:authenticated"}]',
    '---',
    '#',
  ].join(br);
}
/** The short form, for fields the CRD caps at 64 bytes (tags, info.version): the object's kind changes. */
const shortCrb = (br: string) => `x${br}kind: ClusterRoleBinding${br}---${br}#`;
const BREAKS = { cr: '\r', nel: '\u0085', ls: '\u2028', ps: '\u2029' } as const;

/** Runs `kea <args>` in-process (the real commander commands); returns stdout, stderr and the exit code. */
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
  const code = Number(process.exitCode ?? 0);
  process.exitCode = undefined;
  return { out, err, code };
}

/** `kubectl apply --dry-run=server -o json -f FILE`: the objects as Kubernetes decodes and would store them. */
function applyDryRun(file: string): Promise<Array<Record<string, unknown>>> {
  return new Promise((res, rej) => {
    const p = spawn('kubectl', ['apply', '--dry-run=server', '-n', NS, '-o', 'json', '-f', file], { env: process.env });
    let out = '';
    let err = '';
    p.stdout.on('data', (b: Buffer) => (out += b.toString()));
    p.stderr.on('data', (b: Buffer) => (err += b.toString()));
    p.on('close', (code) => {
      if (code !== 0) return rej(new Error(`kubectl exited ${code}: ${err}`));
      const v = JSON.parse(out) as Record<string, unknown>;
      res(v.kind === 'List' ? (v.items as Array<Record<string, unknown>>) : [v]);
    });
  });
}

function kubectl(...args: string[]): Promise<string> {
  return new Promise((res, rej) => {
    const p = spawn('kubectl', args, { env: process.env });
    let out = '';
    let err = '';
    p.stdout.on('data', (b: Buffer) => (out += b.toString()));
    p.stderr.on('data', (b: Buffer) => (err += b.toString()));
    p.on('close', (code) => (code === 0 ? res(out) : rej(new Error(err))));
  });
}

beforeAll(async () => {
  expect(process.env.KUBECONFIG).toBeTruthy();
  await kubectl('create', 'namespace', NS).catch((e: Error) => {
    if (!/AlreadyExists/.test(e.message)) throw e;
  });
});

/** Exactly one object, an ApiSchema named `name`; returns it. */
function onlyApiSchema(objects: Array<Record<string, unknown>>, name: string): ApiSchema {
  expect(objects.map((o) => `${String(o.apiVersion)}/${String(o.kind)}/${String((o.metadata as { name?: string } | undefined)?.name)}`)).toEqual([
    `kea.dev/v1alpha1/ApiSchema/${name}`,
  ]);
  return objects[0] as unknown as ApiSchema;
}

describe('kea import: a hostile OpenAPI document yields exactly one ApiSchema', () => {
  test('line breaks in path keys (header comment) and in summaries, descriptions and tags (values)', async () => {
    const paths: Record<string, unknown> = {};
    // Not routable: each lands in the "not routed" header comment, with the payload.
    for (const [k, br] of Object.entries(BREAKS)) paths[`/evil-${k}${crb(br)}`] = { get: { responses: { '200': { description: 'ok' } } } };
    // Routable: the payload lands in values.
    const texts: Record<string, string> = {};
    for (const [k, br] of Object.entries(BREAKS)) {
      texts[k] = `Hello ${k}${crb(br)}`;
      paths[`/ok-${k}`] = {
        get: {
          operationId: `ok_${k}`,
          summary: texts[k],
          description: `line one${br}${texts[k]}`,
          tags: [shortCrb(br)],
          responses: { '200': { description: texts[k] } },
        },
      };
    }
    const doc = { openapi: '3.0.3', info: { title: 'Hostile', version: shortCrb('\u2028') }, paths };
    const src = join(dir, 'hostile.json');
    writeFileSync(src, JSON.stringify(doc));
    const outFile = join(dir, 'import.yaml');
    const r = await kea('import', src, '--name', 'hostile', '-n', NS, '--service', 'hostile:8080', '-o', outFile);
    expect(r.code).toBe(0);
    expect(r.err).toMatch(/4 operation\(s\); 4 item\(s\) not routed/);
    expect(r.err).not.toMatch(/[\r\u0085\u2028\u2029]/); // the terminal report is escaped too

    const schema = onlyApiSchema(await applyDryRun(outFile), 'hostile');
    const ops = schema.spec.operations!;
    expect(ops.map((o) => o.operationId)).toEqual(['ok_cr', 'ok_nel', 'ok_ls', 'ok_ps']);
    for (const [k, br] of Object.entries(BREAKS)) {
      const op = ops.find((o) => o.operationId === `ok_${k}`)!;
      expect(op.summary).toBe(texts[k]);
      expect(op.description).toBe(`line one${br}${texts[k]}`);
      expect(op.tags).toEqual([shortCrb(br)]);
      expect(op.responses!['200'].description).toBe(texts[k]);
    }
    expect(schema.spec.info?.version).toBe(shortCrb('\u2028'));
    // The header still lists every unroutable path, each on one escaped comment line.
    const text = readFileSync(outFile, 'utf8');
    const header = text.split('\n').filter((l) => l.startsWith('#'));
    expect(header.filter((l) => l.includes('/evil-'))).toHaveLength(4);
    expect(header.join('\n')).toContain('/evil-cr\\u000dapiVersion: rbac.authorization.k8s.io/v1\\u000dkind: ClusterRoleBinding');
  });
});

describe('kea scan: hostile Python sources yield exactly one ApiSchema', () => {
  test('line breaks in docstrings (values) and in source text quoted by an issue (header comment)', async () => {
    const py = [
      'from fastapi import FastAPI',
      'app = FastAPI()',
      '',
      // Unresolvable router: the issue quotes the call's first line, string literal included.
      `app.include_router(nowhere, prefix="""${crb('\r')}""")`,
      `app.include_router(nowhere, prefix="""${crb('\u0085')}""")`,
      '',
      ...Object.entries(BREAKS).flatMap(([k, br]) => [
        `@app.get("/hello-${k}")`,
        `def hello_${k}() -> int:`,
        `    """Hello ${k}${crb(br)}`,
        '',
        `    More ${k}.`,
        '    """',
        '    return 1',
        '',
      ]),
    ].join('\n');
    const srcDir = join(dir, 'svc');
    rmSync(srcDir, { recursive: true, force: true });
    mkdirSync(srcDir);
    writeFileSync(join(srcDir, 'app.py'), py);
    const outFile = join(dir, 'scan.yaml');
    const r = await kea('scan', srcDir, '--name', 'hostile-scan', '-n', NS, '--service', 'svc:8080', '-o', outFile);
    expect(r.code).toBe(0);
    expect(r.err).toMatch(/cannot resolve app\.include_router/);
    expect(r.err).not.toMatch(/[\r\u0085\u2028\u2029]/);

    const schema = onlyApiSchema(await applyDryRun(outFile), 'hostile-scan');
    const ops = schema.spec.operations!;
    expect(ops.map((o) => o.path)).toEqual(['/hello-cr', '/hello-nel', '/hello-ls', '/hello-ps']);
    // What the scanner read from each docstring (its summary and description) reaches
    // Kubernetes unchanged: the payload stays text inside the ApiSchema.
    const scanned = (await scanPython(srcDir, { name: 'hostile-scan', namespace: NS })).schema.spec.operations!;
    expect(ops.map((o) => [o.summary, o.description])).toEqual(scanned.map((o) => [o.summary, o.description]));
    for (const o of ops) expect(`${o.summary}\n${o.description}`).toContain('kind: ClusterRoleBinding');
    const text = readFileSync(outFile, 'utf8');
    expect(text.split('\n').filter((l) => l.startsWith('#') && l.includes('cannot resolve app.include_router'))).toHaveLength(2);
  });
});
