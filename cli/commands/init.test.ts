import { jest } from '@jest/globals';
import { mkdtempSync, readFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import YAML from 'yaml';
import type { ApiSchema } from '../../lib/api/types.js';
import { generateOpenApi } from '../../lib/openapi/generate.js';
import { validateOpenApi } from '../../lib/openapi/testdata/validate.js';
import { register, runInit } from './init.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'kea-init-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

test('writes both files, lists the typed operations, and the ApiSchema generates a valid document', async () => {
  const r = runInit({ framework: 'pytorch', name: 'resnet', input: ['image:FP32:-1,3,32,32'], output: ['logits:FP32:-1,10'], out: join(dir, 'sub') });
  expect(r.stderr).toBe('');
  expect(r.exitCode).toBe(0);
  expect(r.stdout).toContain(`wrote ${join(dir, 'sub', 'resnet-apischema.yaml')}`);
  expect(r.stdout).toMatch(/POST\s+\/resnet\/v2\/models\/resnet\/infer\s+infer/);
  const apis = YAML.parse(readFileSync(join(dir, 'sub', 'resnet-apischema.yaml'), 'utf8')) as ApiSchema;
  expect(apis.spec.inference!.inputs).toEqual([{ name: 'image', datatype: 'FP32', shape: [-1, 3, 32, 32] }]);
  expect(await validateOpenApi(generateOpenApi(apis, { gatewayUrl: 'http://gw' }))).toEqual([]);
  expect(existsSync(join(dir, 'sub', 'resnet-mlservice.yaml'))).toBe(true);
});

test('keeps existing files unless --force', () => {
  expect(runInit({ framework: 'custom', name: 'svc', out: dir }).exitCode).toBe(0);
  const again = runInit({ framework: 'custom', name: 'svc', out: dir });
  expect(again.exitCode).toBe(2);
  expect(again.stderr).toMatch(/already exist.*--force/);
  expect(runInit({ framework: 'custom', name: 'svc', out: dir, force: true }).exitCode).toBe(0);
});

test('bad tensors fail with exit 2 and a clear message, writing nothing', () => {
  const r = runInit({ framework: 'sklearn', input: ['x:FP33:-1'], out: dir });
  expect(r.exitCode).toBe(2);
  expect(r.stderr).toBe(
    'kea init: bad tensor "x:FP33:-1": unknown datatype FP33 (one of BOOL, UINT8, UINT16, UINT32, UINT64, INT8, INT16, INT32, INT64, FP16, FP32, FP64, BYTES)\n',
  );
  expect(existsSync(join(dir, 'my-model-apischema.yaml'))).toBe(false);
});

test('commander wiring: repeatable --input, framework choices, exit code', async () => {
  const program = new Command().exitOverride();
  register(program);
  const out: string[] = [];
  const spy = jest.spyOn(process.stdout, 'write').mockImplementation((s: string | Uint8Array) => (out.push(String(s)), true));
  const prev = process.exitCode;
  try {
    await program.parseAsync(['init', '--framework', 'onnx', '--name', 'two', '--input', 'a:FP32:-1,2', '--input', 'b:INT8:-1', '--out', dir], {
      from: 'user',
    });
    expect(process.exitCode).toBe(0);
  } finally {
    spy.mockRestore();
    process.exitCode = prev;
  }
  const apis = YAML.parse(readFileSync(join(dir, 'two-apischema.yaml'), 'utf8')) as ApiSchema;
  expect(apis.spec.inference!.inputs.map((t) => t.name)).toEqual(['a', 'b']);
  const p2 = new Command().exitOverride().configureOutput({ writeErr: () => undefined });
  register(p2);
  await expect(p2.parseAsync(['init', '--framework', 'keras'], { from: 'user' })).rejects.toThrow(
    /Allowed choices are sklearn, pytorch, tensorflow, onnx, custom/,
  );
});
