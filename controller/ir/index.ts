/**
 * Stage 4 of the controller pipeline: **IR** (intermediate representation), the whole desired
 * state. Every decision is made here; render (stage 5) only serialises it.
 *
 * Takes in: a {@link Graph} (validated resources with resolved references), the
 * {@link ControllerConfig} and the time `now` (RFC 3339; stamps a version published this run).
 * Gives out: an {@link IR} (./types.ts), independent of Kubernetes object shapes:
 *   - per MLService (./mlservice.ts): its revisions with every default applied and the weights
 *     actually routed (a refused canary's weight moved to the stable revision, ./contract.ts;
 *     a revision not available yet while another is gets none, `gateWeights`), its revision
 *     backends, hostname and `status.url`, its conditions and the Events they raise;
 *   - per ApiSchema (./apischema.ts): its conditions (including `RenderFailed` when its
 *     policy.json and openapi.json exceed the ConfigMap limit) and Events, and when programmed
 *     its route rules or passthrough route, upstream host, {@link PolicyService} and its
 *     published text (./policy.ts), OpenAPI document, call example and docs URLs; its internal
 *     route; its version history: versions kept, written or dropped, `status.lastDiff`, or an
 *     Event when that diff cannot be made (./history.ts); whether its objects are retained and
 *     whether its namespace needs the policy server's ReferenceGrant;
 *   - the namespaces that need that ReferenceGrant and the largest request body limit of any
 *     operation (whole graph, ./build.ts).
 * Each owner's IR is built through {@link OwnerReads} (./inputs.ts), which can log what it
 * read: the incremental reconcile's input token. Pure and deterministic: lists keep the
 * graph's sorted order; values are built complete and never changed afterwards.
 */
export * from './types.js';
export { IRBuild, IR_PAUSE_EVERY, buildIR, buildStreamIRSteps, type BuiltIR, type IRSelection } from './build.js';
export { IRInputs, fingerprint, readToken, type ApiSchemaView, type ContractApiSchema, type OwnerReads, type ReadLog, type TargetIR } from './inputs.js';
export {
  DEFAULT_CUSTOM_HEALTH_PATH,
  DEFAULT_INTERNAL_PORT,
  DEFAULT_PORT,
  type GatedRevision,
  type HeldRevision,
  gateWeights,
  mlServiceIR,
} from './mlservice.js';
export { type ContractLookup, contractCheck } from './contract.js';
export { MAX_CONFIGMAP_BYTES, MAX_RULES_PER_ROUTE, apiSchemaIR, needsPolicyGrant } from './apischema.js';
export { genOptions, policyOperation, policyService } from './policy.js';
export { MAX_STATUS_CHANGES, type VersionOwner, versionAnnotations, versionHistory, versionLabels, versionOwnerRef } from './history.js';
export { type OwnerRef, ownerLabels, ownerReference } from './ownership.js';
export { conditionEvents, problemCondition, raisesEvent, regardingOf } from './conditions.js';
