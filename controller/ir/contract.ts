/**
 * Contract-checked rollout of an MLService's canary revisions.
 *
 * Takes in: an MLService, its ApiSchemas as a contract check reads them (ir/inputs.ts
 * `contract:` reads, or any lookup by `<namespace>/<name>`), and the generation options.
 * Gives out: the `ContractChecked` condition and the {@link ContractCheckIR} (stable revision,
 * refused canaries, one diff per checked canary). Pure; documents and diffs come from the
 * content-keyed caches of ./memo.ts.
 */
import type { ApiSchema, MLService } from '../../lib/api/types.js';
import type { ApiDiff } from '../../lib/openapi/diff.js';
import { isAccepted, key } from '../graph/index.js';
import type { ControllerConfig } from '../model.js';
import type { ContractApiSchema } from './inputs.js';
import { diffCached, generateCached } from './memo.js';
import { genOptions } from './policy.js';
import type { ConditionIR, ContractCheckIR } from './types.js';

/** How many breaking changes a ContractChecked message quotes per refused revision. */
const QUOTED_CHANGES = 3;

/** ApiSchemas by `<namespace>/<name>`, as a contract check reads them (a Map of graph nodes will do). */
export interface ContractLookup {
  get(key: string): ContractApiSchema | undefined;
}

/**
 * Contract-checked rollout. The stable revision is the one with the highest weight (ties: the
 * first in spec order). Every other revision with weight > 0 whose `apiSchema` names another
 * ApiSchema than the stable revision's has its API compared with the stable one: both
 * ApiSchemas are turned into OpenAPI documents (lib/openapi/generate.ts; the canary's under the
 * stable one's basePath, since two ApiSchemas cannot share a basePath and only the contract
 * matters here) and diffed (lib/openapi/diff.ts, rules in docs/api-diff.md). A canary with a
 * breaking change is refused unless `spec.allowBreakingChanges` is true: its weight moves to
 * the stable revision (its Deployment and Service stay, so it can warm up).
 * Returns the `ContractChecked` condition (undefined when no revision names an apiSchema)
 * and the check result.
 */
export function contractCheck(
  m: MLService,
  apis: ContractLookup,
  config: Pick<ControllerConfig, 'gatewayUrl' | 'issuerUrl'>,
): { condition?: ConditionIR; check?: ContractCheckIR } {
  const revs = m.spec.revisions ?? [];
  if (!revs.some((r) => r.apiSchema)) return {};
  const ns = m.metadata.namespace ?? '';
  const stable = revs.reduce((best, r) => (r.weight > best.weight ? r : best), revs[0]);
  const canaries = revs.filter((r) => r !== stable && r.weight > 0 && r.apiSchema && r.apiSchema !== stable.apiSchema);
  const diffs: Array<{ revision: string; apiSchema: string; diff: ApiDiff }> = [];
  const cond = (status: ConditionIR['status'], reason: string, message: string, refused: string[] = []) => ({
    condition: { type: 'ContractChecked', status, reason, message },
    check: { stable: stable.name, refused, diffs },
  });
  const stableRef = `stable revision ${stable.name}${stable.apiSchema ? ` (ApiSchema ${stable.apiSchema})` : ''}`;
  if (!canaries.length) {
    return cond('True', 'NoApiChange', `every revision with traffic serves the API of the ${stableRef}`);
  }
  const usable = (name: string | undefined): { node?: ContractApiSchema; why?: string } => {
    if (!name) return { why: 'names no apiSchema' };
    const n = apis.get(key(ns, name));
    if (!n) return { why: `names ApiSchema ${key(ns, name)}, which does not exist` };
    const tm = n.resource.spec.target?.mlService;
    if (!tm || tm.name !== m.metadata.name || (tm.namespace ?? ns) !== ns)
      return { why: `names ApiSchema ${key(ns, name)}, which does not target this MLService` };
    if (!isAccepted(n)) return { why: `names ApiSchema ${key(ns, name)}, which is not accepted` };
    return { node: n };
  };
  const gen = (a: ApiSchema) => generateCached(a, genOptions(config));
  const s = usable(stable.apiSchema);
  const names = canaries.map((r) => r.name).join(', ');
  if (!s.node)
    return cond(
      'Unknown',
      'NotChecked',
      `the API of revision(s) ${names} is not checked: the stable revision ${stable.name} ${s.why}; traffic is routed as declared`,
    );
  let stableDoc: ReturnType<typeof generateCached>;
  try {
    stableDoc = gen(s.node.resource);
  } catch (e) {
    return cond(
      'Unknown',
      'NotChecked',
      `the API of revision(s) ${names} is not checked: the OpenAPI document of ApiSchema ${s.node.key} cannot be generated: ${(e as Error).message}; traffic is routed as declared`,
    );
  }
  const unchecked: string[] = [];
  for (const r of canaries) {
    const c = usable(r.apiSchema);
    if (!c.node) {
      unchecked.push(`revision ${r.name} ${c.why}`);
      continue;
    }
    try {
      const canary: ApiSchema = { ...c.node.resource, spec: { ...c.node.resource.spec, basePath: s.node.resource.spec.basePath } };
      const canaryDoc = gen(canary);
      diffs.push({
        revision: r.name,
        apiSchema: r.apiSchema!,
        diff: diffCached(stableDoc.digest, canaryDoc.digest, () => ({ oldDoc: stableDoc.doc, newDoc: canaryDoc.doc })),
      });
    } catch (e) {
      unchecked.push(`revision ${r.name}: the OpenAPI document of ApiSchema ${c.node.key} cannot be generated: ${(e as Error).message}`);
    }
  }
  const breaking = diffs.filter((d) => d.diff.breaking);
  const describe = (d: ContractCheckIR['diffs'][number]) => {
    const br = d.diff.changes.filter((c) => c.breaking);
    const quoted = br
      .slice(0, QUOTED_CHANGES)
      .map((c) => c.message)
      .join('; ');
    const more = br.length > QUOTED_CHANGES ? `; and ${br.length - QUOTED_CHANGES} more` : '';
    return `revision ${d.revision} (ApiSchema ${d.apiSchema}, version ${d.diff.to}) has ${br.length} breaking change(s) against stable revision ${stable.name} (ApiSchema ${stable.apiSchema}, version ${d.diff.from}): ${quoted}${more}`;
  };
  const tail = unchecked.length ? `; not checked, routed as declared: ${unchecked.join('; ')}` : '';
  if (breaking.length && !m.spec.allowBreakingChanges) {
    const refused = breaking.map((d) => d.revision);
    const moved = revs.filter((r) => refused.includes(r.name)).reduce((sum, r) => sum + r.weight, 0);
    return cond(
      'False',
      'BreakingApiChange',
      `canary refused: ${breaking.map(describe).join('; ')}. Its ${moved}% of traffic is routed to revision ${stable.name} instead; its Deployment still runs. ` +
        `Make the change backward compatible, or set spec.allowBreakingChanges: true to route it as declared (rules: docs/api-diff.md)${tail}`,
      refused,
    );
  }
  if (breaking.length) {
    return cond('True', 'BreakingChangeAllowed', `routed as declared because spec.allowBreakingChanges is true: ${breaking.map(describe).join('; ')}${tail}`);
  }
  if (unchecked.length) return cond('Unknown', 'NotChecked', `${unchecked.join('; ')}; traffic is routed as declared`);
  const summary = diffs
    .map((d) => `revision ${d.revision} (ApiSchema ${d.apiSchema}, version ${d.diff.to}): ${d.diff.changes.length} non-breaking change(s)`)
    .join('; ');
  return cond('True', 'Compatible', `no breaking change against the ${stableRef}: ${summary}`);
}
