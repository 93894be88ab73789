/**
 * Constants of the controller ↔ policy server contract (lib/policy/config.ts) checked against
 * their other sources: the CRD's documented defaults and bounds, and each other.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseDurationMs } from '../api/duration.js';
import {
  GATEWAY_BODY_SLACK_BYTES,
  MAX_DRAINED_BODY_BYTES,
  MAX_OPERATION_BODY_BYTES,
  POLICY_DEFAULTS,
  gatewayBodyCapBytes,
  gatewayBodyMaxSize,
  policyOperation,
} from './config.js';

const MIB = 1024 * 1024;
const crd = readFileSync(join(process.cwd(), 'manifests/crds/kea.dev_apischemas.yaml'), 'utf8');

test('the drain bound is the gateway cap for the largest limit the CRD admits (128 MiB)', () => {
  const maxima = [...crd.matchAll(/maxBodyBytes:\n(?:\s+[a-z].*\n)*?\s+maximum: (\d+)/g)].map((m) => Number(m[1]));
  expect(maxima).toHaveLength(2); // spec.defaults.maxBodyBytes and operations[].maxBodyBytes
  for (const m of maxima) expect(m).toBe(MAX_OPERATION_BODY_BYTES);
  expect(MAX_DRAINED_BODY_BYTES).toBe(gatewayBodyCapBytes(MAX_OPERATION_BODY_BYTES));
  expect(MAX_DRAINED_BODY_BYTES).toBe(128 * MIB);
  expect(gatewayBodyMaxSize(MAX_OPERATION_BODY_BYTES)).toBe(`${MAX_DRAINED_BODY_BYTES / MIB}m`);
});

test('gatewayBodyMaxSize: largest + max(largest, 8 MiB), whole MiB, an NGF Size', () => {
  expect(gatewayBodyMaxSize(MIB)).toBe('9m');
  expect(gatewayBodyMaxSize(8 * MIB)).toBe('16m');
  expect(gatewayBodyMaxSize(64 * MIB)).toBe('128m');
  expect(gatewayBodyMaxSize(1)).toBe('9m');
  for (const n of [1, 1000, MIB - 1, MIB + 1, 3 * MIB + 7, 9 * MIB, MAX_OPERATION_BODY_BYTES]) {
    const cap = gatewayBodyCapBytes(n);
    expect(cap % MIB).toBe(0);
    expect(cap).toBeGreaterThanOrEqual(n + Math.max(n, GATEWAY_BODY_SLACK_BYTES));
    expect(cap - (n + Math.max(n, GATEWAY_BODY_SLACK_BYTES))).toBeLessThan(MIB);
    expect(gatewayBodyMaxSize(n)).toMatch(/^\d{1,4}(k|m|g)?$/);
  }
});

test('POLICY_DEFAULTS are what the CRD documents', () => {
  expect(parseDurationMs(POLICY_DEFAULTS.timeout)).toBe(POLICY_DEFAULTS.timeoutMs);
  expect(crd).toContain(`Defaults to ${POLICY_DEFAULTS.timeout}.`);
  expect(crd).toContain(`Defaults to ${POLICY_DEFAULTS.maxBodyBytes} (1 MiB).`);
  expect(POLICY_DEFAULTS.maxBodyBytes).toBe(MIB);
  expect(POLICY_DEFAULTS.maxBodyBytes).toBeLessThanOrEqual(MAX_OPERATION_BODY_BYTES);
});

test("policyOperation fills the defaults and the path parameters' required for hand-written configurations", () => {
  const op = policyOperation({
    operationId: 'get',
    method: 'GET',
    path: '/x/{id}',
    upstreamPath: '/{id}',
    parameters: [
      { name: 'id', in: 'path' },
      { name: 'q', in: 'query' },
    ],
  });
  expect(op).toEqual({
    operationId: 'get',
    method: 'GET',
    path: '/x/{id}',
    upstreamPath: '/{id}',
    access: { mode: 'authenticated' },
    timeoutMs: 5000,
    maxBodyBytes: 1048576,
    responseValidation: 'off',
    responses: {},
    parameters: [
      { name: 'id', in: 'path', required: true },
      { name: 'q', in: 'query', required: false },
    ],
  });
  // A copy: the defaults are not shared mutable state.
  (op.access as { mode: string }).mode = 'public';
  expect(POLICY_DEFAULTS.access.mode).toBe('authenticated');
});
