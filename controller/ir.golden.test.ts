/**
 * Golden files of the IR layer (controller/ir), next to the object goldens
 * (controller/render.golden.test.ts): every `controller/testdata/<case>.in.yaml` is taken
 * through graph → IR with the same config and clock, and the IR, serialised as YAML with
 * object keys sorted (lists keep the IR's own order, which is the graph's sorted order), must
 * equal `<case>.ir.yaml` byte for byte. `UPDATE_GOLDEN=1` rewrites them. A change of a
 * decision shows here, in the layer that makes it, before it shows in the objects.
 *
 * The serialised form is the IR as built, except: the observed status conditions (an input,
 * echoed for render), the `policy.json` and `openapi.json` texts (their digests stand for
 * them: `configVersion`, the document's sha256), the policy summarised (its operations as
 * `METHOD path operationId` lines, each rate limit appended as
 * ` limit=<name>:<requests>+<burst>/<periodMs>ms:<key>@<scope>`, and the rate-limit fail mode
 * when set; `configVersion` pins everything else), version texts
 * (functions), and the live HTTPRoutes (their keys only).
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';
import { buildGraph } from './graph/index.js';
import { type ApiSchemaIR, type IR, type MLServiceIR, buildIR } from './ir/index.js';
import { sha256Hex as sha256 } from '../lib/hash.js';
import { GOLDEN_NOW, goldenCases, loadGoldenInput } from './testing/golden-input.js';

const dataDir = join(dirname(fileURLToPath(import.meta.url)), 'testdata');

function mlServiceForm(m: MLServiceIR): unknown {
  const { observedConditions: _, ...rest } = m;
  return rest;
}

function apiSchemaForm(a: ApiSchemaIR): unknown {
  const { observedConditions: _, program, history, ...rest } = a;
  return {
    ...rest,
    ...(program
      ? {
          program: {
            ...program,
            policy: {
              configVersion: program.policy.configVersion,
              mode: program.policy.mode,
              upstream: program.policy.upstream,
              traffic: program.policy.traffic,
              defaultOperationId: program.policy.defaultOperationId ?? null,
              rateLimitFailMode: program.policy.rateLimitFailMode,
              operations: program.policy.operations.map(
                (o) =>
                  `${o.method} ${o.path} ${o.operationId}${(o.rateLimits ?? []).map((l) => ` limit=${l.name}:${l.requests}+${l.burst}/${l.periodMs}ms:${l.key}@${l.scope}`).join('')}`,
              ),
            },
            policyJson: `(sha256 ${sha256(program.policyJson)})`,
            openapi: { digest: program.openapi.digest },
          },
        }
      : {}),
    history: { ...history, kept: history.kept.map(({ text: _t, ...v }) => v) },
  };
}

/** The golden form of an IR (see the module comment). */
function irYaml(ir: IR): string {
  const form = {
    mlServices: ir.mlServices.map(mlServiceForm),
    apiSchemas: ir.apiSchemas.map(apiSchemaForm),
    policyGrantNamespaces: ir.policyGrantNamespaces,
    maxBodyBytes: ir.maxBodyBytes,
    ...(ir.routes ? { routes: [...ir.routes.keys()].sort() } : {}),
  };
  // A JSON round trip drops undefined members, as the YAML golden should.
  return YAML.stringify(JSON.parse(JSON.stringify(form)), { sortMapEntries: true, lineWidth: 0, aliasDuplicateObjects: false });
}

const cases = goldenCases(dataDir);

describe('IR golden files (graph → IR)', () => {
  it('covers every object golden case', () => {
    expect(cases.length).toBeGreaterThanOrEqual(18);
  });

  it.each(cases)('%s matches its IR golden file, and building it twice gives the same', (name) => {
    const { snapshot, config } = loadGoldenInput(join(dataDir, `${name}.in.yaml`));
    const yaml = irYaml(buildIR(buildGraph(snapshot, config), config, GOLDEN_NOW));
    expect(irYaml(buildIR(buildGraph(snapshot, config), config, GOLDEN_NOW))).toBe(yaml);
    const goldenPath = join(dataDir, `${name}.ir.yaml`);
    if (process.env.UPDATE_GOLDEN === '1' || !existsSync(goldenPath)) {
      writeFileSync(goldenPath, yaml);
      if (process.env.UPDATE_GOLDEN !== '1') throw new Error(`${goldenPath} did not exist; written, review it and re-run`);
    }
    expect(yaml).toBe(readFileSync(goldenPath, 'utf8'));
  });
});
