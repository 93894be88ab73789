/**
 * v1 ConfigMaps in the system namespace, read by the policy server and the portal.
 *
 * Takes in: an ApiSchema's IR ({@link ProgramIR}: policy and OpenAPI texts; {@link VersionIR}s
 * of its history) and the {@link ControllerConfig}.
 * Gives out:
 *   - per programmed ApiSchema, `kea-api-<ns>-<name>-<hash8>` (lib/policy/config.ts
 *     apiConfigMapName: collision-free across namespaces), label `kea.dev/component=api-config`,
 *     annotated with the ApiSchema id and `kea.dev/config-version`, data `policy.json` and
 *     `openapi.json` ({@link policyConfigMap});
 *   - per version to write, `kea-apiver-<ns>-<name>-<hash8>-<digest10>` with label
 *     `kea.dev/component=api-version` and the labels and annotations ir/history.ts decides,
 *     data `openapi.json` ({@link versionConfigMap}).
 * Pure.
 */
import type { V1ConfigMap } from '@kubernetes/client-node';
import { LABELS } from '../../lib/api/types.js';
import { COMPONENT_API_CONFIG, OPENAPI_KEY, POLICY_CONFIG_KEY, apiConfigMapName, apiVersionConfigMapName } from '../../lib/policy/config.js';
import { type ApiSchemaIR, type ProgramIR, type VersionOwner, versionAnnotations, versionLabels, versionOwnerRef } from '../ir/index.js';
import type { ControllerConfig } from '../model.js';
import { apiOwner, metadata } from './metadata.js';

export { openApiText } from '../ir/memo.js';

/** The policy ConfigMap of a programmed ApiSchema (see the module comment). */
export function policyConfigMap(a: ApiSchemaIR, p: ProgramIR, config: ControllerConfig): V1ConfigMap {
  return {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: metadata(
      apiConfigMapName(a.namespace, a.name),
      config.systemNamespace,
      apiOwner(a),
      { [LABELS.component]: COMPONENT_API_CONFIG },
      {
        'kea.dev/api-schema': a.key,
        'kea.dev/config-version': p.policy.configVersion,
      },
    ),
    data: {
      [OPENAPI_KEY]: p.openapi.text,
      [POLICY_CONFIG_KEY]: p.policyJson,
    },
  };
}

/**
 * One version-history ConfigMap (lib/policy/config.ts): in the system namespace, named
 * `name` (for a new version {@link apiVersionConfigMapName}), labelled
 * `kea.dev/component=api-version`, `kea.dev/owner` and `kea.dev/api-version=<info.version>`
 * (label-safe), annotated with the ApiSchema id, the exact version, the digest (sha256 hex
 * of the `openapi.json` text) and `kea.dev/published-at` (RFC 3339); data `openapi.json`.
 */
export function versionConfigMap(
  owner: VersionOwner,
  config: Pick<ControllerConfig, 'systemNamespace'>,
  entry: { name?: string; version: string; digest: string; publishedAt: string; openapi: string },
): V1ConfigMap {
  const name = entry.name ?? apiVersionConfigMapName(owner.namespace, owner.name, entry.digest);
  return {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: metadata(name, config.systemNamespace, versionOwnerRef(owner), versionLabels(entry.version), versionAnnotations(owner, entry)),
    data: { [OPENAPI_KEY]: entry.openapi },
  };
}
