/**
 * The reserved portal paths: the code's one list (lib/policy/reserved-paths.ts) against the copy
 * that cannot import it, the CRD's CEL rule on `spec.basePath`
 * (manifests/crds/kea.dev_apischemas.yaml), its message and its field description.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import YAML from 'yaml';
import { PORTAL_EXACT_PATHS, PORTAL_PATH_PREFIXES, RESERVED_BASE_PATHS, reservedBasePath } from './reserved-paths.js';

interface Rule {
  rule: string;
  message: string;
}

/** The CRD's `spec.basePath` schema (first served version). */
function basePathSchema(): { description: string; 'x-kubernetes-validations': Rule[] } {
  const crd = YAML.parse(readFileSync(join(process.cwd(), 'manifests/crds/kea.dev_apischemas.yaml'), 'utf8')) as {
    spec: {
      versions: Array<{
        schema: { openAPIV3Schema: { properties: { spec: { properties: { basePath: { description: string; 'x-kubernetes-validations': Rule[] } } } } } };
      }>;
    };
  };
  return crd.spec.versions[0].schema.openAPIV3Schema.properties.spec.properties.basePath;
}

/** The CEL rule `![<list>].exists(p, self == p || self.startsWith(p + '/'))` and its list. */
function celReserved(): { rule: Rule; list: string[] } {
  const rules = basePathSchema()['x-kubernetes-validations'].filter((r) => r.rule.includes('.exists(p,'));
  expect(rules).toHaveLength(1);
  const m = /^!\[((?:'[^']*'(?:,\s*)?)*)\]\.exists\(p, self == p \|\| self\.startsWith\(p \+ '\/'\)\)$/.exec(rules[0].rule);
  if (!m) throw new Error(`the CRD's reserved-path rule has an unexpected form: ${rules[0].rule}`);
  return { rule: rules[0], list: [...m[1].matchAll(/'([^']*)'/g)].map((x) => x[1]) };
}

test("the CRD's CEL rule reserves exactly the code's paths", () => {
  expect(celReserved().list).toEqual([...RESERVED_BASE_PATHS]);
  expect(celReserved().list).toContain('/openapi.json');
});

test("the CRD rule's message and the field description name every reserved path", () => {
  const { rule } = celReserved();
  expect(rule.message).toBe(`basePath must not be under a gateway path reserved by KEA (${RESERVED_BASE_PATHS.join(', ')})`);
  const description = basePathSchema().description.replace(/\s+/g, ' ');
  expect(description).toContain(`(${RESERVED_BASE_PATHS.join(', ')})`);
});

test('reservedBasePath: equal to or under a reserved path, as the CEL rule evaluates it', () => {
  expect(RESERVED_BASE_PATHS).toEqual([...PORTAL_PATH_PREFIXES, ...PORTAL_EXACT_PATHS]);
  expect(reservedBasePath('/docs')).toBe('/docs');
  expect(reservedBasePath('/docs/iris')).toBe('/docs');
  expect(reservedBasePath('/openapi.json')).toBe('/openapi.json');
  expect(reservedBasePath('/openapi.json/x')).toBe('/openapi.json');
  expect(reservedBasePath('/openapi')).toBe('/openapi');
  expect(reservedBasePath('/docsx')).toBeUndefined();
  expect(reservedBasePath('/iris')).toBeUndefined();
  expect(reservedBasePath('/openapi.yaml')).toBeUndefined();
});
