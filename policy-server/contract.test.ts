/**
 * Contract tests between the controller and the policy server (issue 12), in the manner of
 * fastify's errors test: what one side writes or emits, the other side (or the published
 * documents) must know.
 *
 * - Every problem code the policy server's sources can emit is in the registry
 *   (lib/policy/problems.ts), whose codes the published Problem schema lists
 *   (lib/policy/problems.test.ts), and every registered code is emitted somewhere.
 * - Every `policy.json` the controller renders in the golden files (controller/testdata) passes
 *   the policy.json JSON Schema and compiles with the real snapshot builder, without errors.
 */
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import YAML from 'yaml';
import { COMPONENT_API_CONFIG, OPENAPI_KEY, POLICY_API_VERSION, POLICY_CONFIG_KEY } from '../lib/policy/config.js';
import { PROBLEM_CODES } from '../lib/policy/problems.js';
import { checkPolicyService } from '../lib/policy/schema.js';
import { buildSnapshot, type SourceConfigMap } from './snapshot/build.js';

const ROOT = process.cwd();

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) {
      if (name !== 'testing' && name !== 'node_modules') out.push(...sources(p));
    } else if (name.endsWith('.ts') && !name.endsWith('.test.ts')) out.push(p);
  }
  return out;
}

/** Problem codes written in a source text: `problem('<code>'`, and `kea.dev/problems/<code>` URIs. */
export function emittedCodes(text: string): string[] {
  const codes = [...text.matchAll(/\bproblem\(\s*(?:\n\s*)?['"`]([^'"`]+)['"`]/g)].map((m) => m[1]);
  codes.push(...[...text.matchAll(/kea\.dev\/problems\/([a-z][a-z-]*)/g)].map((m) => m[1]));
  return codes;
}

describe('problem codes', () => {
  const emitted = new Map<string, string[]>();
  for (const file of sources(join(ROOT, 'policy-server'))) {
    for (const code of emittedCodes(readFileSync(file, 'utf8'))) emitted.set(code, [...(emitted.get(code) ?? []), relative(ROOT, file)]);
  }

  test("the scan finds the server's problem calls (it can fail)", () => {
    expect(emittedCodes(`x.fail(problem('upstream-busy', 'n'))\nsend(res, problem(\n  'teapot', 'x'))`)).toEqual(['upstream-busy', 'teapot']);
    expect(emitted.get('request-timeout')).toContain('policy-server/server.ts');
    expect(emitted.get('cluster-incomplete')).toContain('policy-server/management.ts');
    expect(emitted.size).toBeGreaterThanOrEqual(15);
  });

  test('every code the policy server can emit is registered (and so published)', () => {
    const unregistered = [...emitted]
      .filter(([code]) => !(PROBLEM_CODES as readonly string[]).includes(code))
      .map(([code, files]) => `${code} (${files.join(', ')})`);
    expect(unregistered).toEqual([]);
  });

  test('every registered code is emitted somewhere (no published code the server never sends)', () => {
    expect(PROBLEM_CODES.filter((c) => !emitted.has(c))).toEqual([]);
  });
});

describe('golden policy.json files compile with the real snapshot builder', () => {
  const dir = join(ROOT, 'controller/testdata');
  const cases: Array<[string, SourceConfigMap[]]> = [];
  for (const file of readdirSync(dir)
    .filter((f) => f.endsWith('.out.yaml'))
    .sort()) {
    const out = YAML.parse(readFileSync(join(dir, file), 'utf8')) as {
      objects?: Array<{
        kind: string;
        metadata: { name: string; labels?: Record<string, string>; annotations?: Record<string, string> };
        data?: Record<string, string>;
      }>;
    };
    const cms: SourceConfigMap[] = [];
    for (const o of out.objects ?? []) {
      if (o.kind !== 'ConfigMap' || o.metadata.labels?.['kea.dev/component'] !== COMPONENT_API_CONFIG) continue;
      // The goldens summarize openapi.json; the portal's document is not what this test is about.
      const { [OPENAPI_KEY]: _summarized, ...data } = o.data ?? {};
      cms.push({ name: o.metadata.name, labels: o.metadata.labels ?? {}, annotations: o.metadata.annotations ?? {}, data });
    }
    if (cms.length) cases.push([file, cms]);
  }

  test('the goldens hold policy.json files (the test can fail)', () => {
    expect(cases.length).toBeGreaterThanOrEqual(25);
    expect(cases.reduce((n, [, cms]) => n + cms.length, 0)).toBeGreaterThanOrEqual(35);
  });

  test.each(cases)('%s', (_file, cms) => {
    for (const cm of cms) {
      const policy: unknown = JSON.parse(cm.data[POLICY_CONFIG_KEY]);
      expect(() => checkPolicyService(policy)).not.toThrow();
      expect((policy as { apiVersion: string }).apiVersion).toBe(POLICY_API_VERSION);
    }
    const snap = buildSnapshot(cms);
    expect(snap.errors).toEqual([]);
    expect(snap.services.size).toBe(cms.length);
    for (const svc of snap.services.values()) {
      // The default operation is the controller's; the builder found it.
      expect(svc.defaultOperation?.def.operationId).toBe(svc.def.defaultOperationId);
      expect(svc.operations.size).toBe(svc.def.mode === 'enforce' ? svc.def.operations.length : 0);
    }
  });
});
