/**
 * The policy server's configuration of one ApiSchema (`policy.json`, lib/policy/config.ts
 * {@link PolicyService}), decided by the IR.
 *
 * Takes in: an ApiSchema (as it takes effect), its effective operations, the upstream host and
 * the traffic its target routes.
 * Gives out: the {@link PolicyService} (`apiVersion` {@link POLICY_API_VERSION}) with each
 * operation in the form lib/policy/operation.ts decides (every default applied, every schema
 * self-contained, components inlined by ./schemas.ts, and converted to the JSON Schema ajv
 * compiles), the default operation of `/services/{id}/predict`, the `spec.security` fields, the
 * rate-limit fail mode, and
 * `configVersion`: the sha256 of the canonical JSON of everything else (./memo.ts
 * `policyConfigVersion`). Pure.
 */
import type { ApiSchema, Operation } from '../../lib/api/types.js';
import type { GenerateOptions } from '../../lib/openapi/generate.js';
import { POLICY_API_VERSION, POLICY_DEFAULTS, type PolicyOperation, type PolicyService } from '../../lib/policy/config.js';
import { defaultOperationId, policyOperationOf } from '../../lib/policy/operation.js';
import type { ControllerConfig } from '../model.js';
import { policyConfigVersion } from './memo.js';
import { selfContained } from './schemas.js';
import type { TrafficIR } from './types.js';

/** Options of the published OpenAPI document, the same for docs, diffs and call examples. */
export function genOptions(config: Pick<ControllerConfig, 'gatewayUrl' | 'issuerUrl'>): GenerateOptions {
  return { gatewayUrl: config.gatewayUrl.replace(/\/+$/, ''), ...(config.issuerUrl ? { issuerUrl: config.issuerUrl } : {}) };
}

/** One operation as policy.json carries it: lib/policy/operation.ts, with this ApiSchema's components inlined. */
export function policyOperation(a: ApiSchema, o: Operation): PolicyOperation {
  return policyOperationOf(
    {
      id: `${a.metadata.namespace ?? ''}/${a.metadata.name}`,
      basePath: a.spec.basePath,
      defaults: a.spec.defaults,
      inline: (s) => selfContained(s, a.spec.components?.schemas ?? {}),
    },
    o,
  );
}

/**
 * The policy.json fields of `spec.security` (lib/policy/config.ts): credential header names
 * lower-cased, sorted and de-duplicated; nothing when the ApiSchema sets nothing (the policy
 * server's defaults apply), so ApiSchemas without the field keep their configVersion.
 */
function securityPolicy(a: ApiSchema): Pick<PolicyService, 'forwardCredentials' | 'contentSecurityPolicy'> {
  const s = a.spec.security;
  const out: Pick<PolicyService, 'forwardCredentials' | 'contentSecurityPolicy'> = {};
  if (s?.forwardCredentials?.length)
    out.forwardCredentials = [...new Set(s.forwardCredentials.map((h) => h.toLowerCase() as 'authorization' | 'cookie'))].sort();
  if (s?.contentSecurityPolicy !== undefined) out.contentSecurityPolicy = s.contentSecurityPolicy;
  return out;
}

/**
 * The policy.json `rateLimitFailMode` (`spec.defaults.rateLimitFailMode`, else
 * {@link POLICY_DEFAULTS}): written when an enforced operation has a rate limit (the only case
 * where it matters), so ApiSchemas without limits keep their configVersion.
 */
function rateLimitPolicy(a: ApiSchema, ops: readonly PolicyOperation[]): Pick<PolicyService, 'rateLimitFailMode'> {
  if (!ops.some((o) => o.rateLimits?.length)) return {};
  return { rateLimitFailMode: a.spec.defaults?.rateLimitFailMode === 'closed' ? 'closed' : POLICY_DEFAULTS.rateLimitFailMode };
}

/**
 * The {@link PolicyService} of an ApiSchema (see the module comment).
 * @param id `<namespace>/<name>`.
 * @param ops the effective operations, in spec order.
 * @param traffic what the target routes per revision, in percent (empty for a Service target).
 */
export function policyService(id: string, a: ApiSchema, ops: readonly Operation[], upstreamHost: string, traffic: readonly TrafficIR[]): PolicyService {
  const mode = a.spec.policy?.mode ?? 'enforce';
  const allPolicyOps = ops.map((o) => policyOperation(a, o));
  const withoutVersion: Omit<PolicyService, 'configVersion'> = {
    apiVersion: POLICY_API_VERSION,
    id,
    namespace: a.metadata.namespace ?? '',
    name: a.metadata.name,
    title: a.spec.info.title,
    version: a.spec.info.version,
    basePath: a.spec.basePath,
    mode,
    upstream: { host: upstreamHost },
    traffic: traffic.map((t) => ({ revision: t.revision, weight: t.weight })),
    authorization: { ...(a.spec.authorization ?? {}) },
    defaultOperationId: mode === 'enforce' ? defaultOperationId(allPolicyOps) : undefined,
    operations: mode === 'enforce' ? allPolicyOps : [],
    ...securityPolicy(a),
    ...rateLimitPolicy(a, mode === 'enforce' ? allPolicyOps : []),
  };
  return { ...withoutVersion, configVersion: policyConfigVersion(withoutVersion) };
}
