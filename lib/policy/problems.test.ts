/**
 * The problem registry (lib/policy/problems.ts) against what is published: the `code` enum of
 * the Problem schema in every generated OpenAPI document, and the gateway error responses.
 * (That every code the policy server emits is registered: policy-server/contract.test.ts.)
 */
import { STATUS_CODES } from 'node:http';
import { GATEWAY_ERRORS, generateOpenApi } from '../openapi/generate.js';
import { irisV1 } from '../openapi/testdata/fixtures.js';
import { PROBLEM_CODES, PROBLEM_TYPES, problemTypeUri } from './problems.js';

const doc = generateOpenApi(irisV1, { gatewayUrl: 'https://gw.example.com' });
const problemSchema = doc.components!.schemas!.Problem as { properties: { code: { enum: string[] } } };

test('the published Problem schema lists exactly the registry codes, in registry order', () => {
  expect(problemSchema.properties.code.enum).toEqual([...PROBLEM_CODES]);
  // The codes the review found missing from the published enum (issue 12).
  for (const c of ['header-too-large', 'request-timeout', 'cluster-incomplete', 'upstream-busy', 'server-busy'])
    expect(problemSchema.properties.code.enum).toContain(c);
});

test('each code has an HTTP error status and a title; codes are URI path segments', () => {
  for (const code of PROBLEM_CODES) {
    const t = PROBLEM_TYPES[code];
    expect(t.status).toBeGreaterThanOrEqual(400);
    expect(t.status).toBeLessThan(600);
    expect(STATUS_CODES[t.status]).toBeDefined();
    expect(t.title.length).toBeGreaterThan(0);
    expect(code).toMatch(/^[a-z]+(-[a-z]+)*$/);
    expect(problemTypeUri(code)).toBe(`https://kea.dev/problems/${code}`);
  }
});

test('the documented gateway error responses take status and title from the registry', () => {
  for (const [status, e] of Object.entries(GATEWAY_ERRORS)) {
    expect(PROBLEM_TYPES[e.code]).toEqual({ status: Number(status), title: e.title });
    const response = doc.components!.responses![e.name] as
      { content: Record<string, { example: { code: string; status: number; title: string; type: string } }> } | undefined;
    if (!response) continue; // only the responses this document uses are published
    const example = response.content['application/problem+json'].example;
    expect(example).toMatchObject({ code: e.code, status: Number(status), title: e.title, type: problemTypeUri(e.code) });
  }
});
