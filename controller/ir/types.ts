/**
 * The shapes of the IR, the controller's whole desired state (stage 4): what controller/ir
 * builds and controller/render serialises. Every value is built complete and never changed
 * afterwards (readonly throughout); lists keep the graph's sorted order. Nothing here is a
 * Kubernetes object: render turns these into objects, statuses and Events without deciding
 * anything (it adds names, labels, `observedGeneration`, `lastTransitionTime` and the
 * gateway's verdict on the routes it rendered, render/route-status.ts).
 */
import type { KubernetesObject } from '@kubernetes/client-node';
import type { ApiSchemaStatus, Condition, ResourceRequirements } from '../../lib/api/types.js';
import type { ApiDiff } from '../../lib/openapi/diff.js';
import type { PolicyService } from '../../lib/policy/config.js';
import type { ImportInfo, PathMatch } from '../graph/index.js';
import type { EventRecord } from '../model.js';
import type { GeneratedDoc } from './memo.js';
import type { ModelLocation } from './runtimes.js';

/** A condition as the IR decides it (render adds observedGeneration and lastTransitionTime). */
export interface ConditionIR {
  readonly type: string;
  readonly status: 'True' | 'False' | 'Unknown';
  readonly reason: string;
  readonly message: string;
}

/** One model revision, ready to become a Deployment and a Service. */
export interface RevisionIR {
  readonly name: string;
  /** Deployment and Service name, `<mls>-<revision>`. */
  readonly objectName: string;
  /** Share of traffic in percent, as routed (after a refused canary's move and readiness gating). */
  readonly weight: number;
  readonly replicas: number;
  /** Container port (= Service port). */
  readonly port: number;
  readonly image: string;
  readonly command?: readonly string[];
  readonly args: readonly string[];
  readonly env: ReadonlyArray<{ readonly name: string; readonly value: string }>;
  readonly resources?: ResourceRequirements;
  readonly readinessPath: string;
  readonly livenessPath: string;
  readonly model?: ModelLocation;
}

/** A backend of an HTTPRoute rule (a core Service port). */
export interface BackendIR {
  readonly namespace: string;
  readonly name: string;
  readonly port: number;
  /** Gateway API weight; percent for model revisions, 1 for a single backend. */
  readonly weight: number;
}

/** One entry of a weighted split (MLService `status.traffic`, policy.json `traffic`), weight in percent. */
export interface TrafficIR {
  readonly revision: string;
  readonly weight: number;
}

/** Result of checking canary revisions' APIs against the stable revision's API. */
export interface ContractCheckIR {
  /** The revision with the highest weight (ties: the first). */
  readonly stable: string;
  /** Revisions whose traffic was moved to the stable revision because their API change is breaking. */
  readonly refused: readonly string[];
  /** One diff per canary revision with another API than the stable one, in spec order. */
  readonly diffs: ReadonlyArray<{ readonly revision: string; readonly apiSchema: string; readonly diff: ApiDiff }>;
}

/** Who an IR owner is, as render labels its objects and addresses its status and Events. */
export interface OwnerIdentity {
  /** `<namespace>/<name>`. */
  readonly key: string;
  readonly namespace: string;
  readonly name: string;
  readonly uid?: string;
  /** `metadata.generation`: the status's `observedGeneration`. */
  readonly generation?: number;
  /**
   * The owner's status conditions as observed: render keeps a condition's
   * `lastTransitionTime` while its status does not change. Read from the owner's own resource
   * (an input, echoed here; not a decision).
   */
  readonly observedConditions?: readonly Condition[];
}

/** The desired state of one MLService: its revisions as routed, its internal route's backends, its status. */
export interface MLServiceIR extends OwnerIdentity {
  /** False: nothing is rendered for it, only its status. */
  readonly accepted: boolean;
  /** Its existing objects are kept as they are (not accepted: RenderOutput.retainOwners). */
  readonly retain: boolean;
  /** `<mls>.<ns>.<internalDomain>`. */
  readonly host: string;
  /** `status.url`: `http://<host>:<internal listener port>`; absent when not accepted. */
  readonly url?: string;
  /** Empty when not accepted. */
  readonly revisions: readonly RevisionIR[];
  /** The revision Services as weighted backends (its internal HTTPRoute, passthrough routes), spec order. */
  readonly backends: readonly BackendIR[];
  /** What is routed, per revision (`status.traffic`); empty when not accepted. */
  readonly traffic: readonly TrafficIR[];
  readonly conditions: readonly ConditionIR[];
  /** Warning Events its conditions raise (ir/conditions.ts `conditionEvents`). */
  readonly events: readonly EventRecord[];
  /** Contract check of canary revisions (see ir/contract.ts); absent when no revision names an apiSchema. */
  readonly contract?: ContractCheckIR;
}

/** One public route rule in enforce mode: a method + path match for one (or more) operations. */
export interface OperationRouteIR {
  readonly method: string;
  readonly match: PathMatch;
  /** Operations sharing this match (several only for templates with the same static prefix). */
  readonly operationIds: readonly string[];
  /** Value of the x-kea-operation header: `<ns>/<name>/<operationId>[,<operationId>...]`. */
  readonly headerValue: string;
}

/** The public route of a passthrough-mode ApiSchema: no policy server, so the route isolates. */
export interface PassthroughIR {
  /** The target's backends (model revisions, weights in percent, or the Service, weight 1). */
  readonly backends: readonly BackendIR[];
  /** Request headers the route removes (`Authorization`, `Cookie`, less `spec.security.forwardCredentials`). */
  readonly removeRequestHeaders: readonly string[];
  /** Response headers the route sets: `X-Content-Type-Options: nosniff` and the Content-Security-Policy. */
  readonly responseHeaders: ReadonlyArray<{ readonly name: string; readonly value: string }>;
}

/** What a programmed ApiSchema publishes and routes. */
export interface ProgramIR {
  /** Host the policy server forwards to (`Host` of the internal route). */
  readonly upstreamHost: string;
  /** Enforce mode: one rule per distinct method + match (render splits them, 16 per HTTPRoute). Empty in passthrough mode. */
  readonly routes: readonly OperationRouteIR[];
  /** Passthrough mode only. */
  readonly passthrough?: PassthroughIR;
  /** The policy server's configuration of this ApiSchema (lib/policy/config.ts). */
  readonly policy: PolicyService;
  /** `policy.json` as published: canonical JSON of {@link policy}, 2-space indent, newline. */
  readonly policyJson: string;
  /** The published OpenAPI document (`openapi.json` text and its sha256). */
  readonly openapi: Pick<GeneratedDoc, 'text' | 'digest'>;
  /** `status.curlExample`: a call of the default operation, when there is an example operation. */
  readonly curlExample?: string;
  /** `status.docsUrl`: `<gatewayUrl>/docs/<ns>/<name>`. */
  readonly docsUrl: string;
  /** `status.openapiUrl`: `<gatewayUrl>/openapi/<ns>/<name>.json`. */
  readonly openapiUrl: string;
}

/** The internal HTTPRoute of an ApiSchema with a hand-written Service target (and the ReferenceGrant beside the Service). */
export interface InternalRouteIR {
  /** `<name>.<ns>.api.<internalDomain>`. */
  readonly host: string;
  readonly backends: readonly BackendIR[];
}

/** One published version of an ApiSchema's OpenAPI document, after this run. */
export interface VersionIR {
  /** ConfigMap name (system namespace). */
  readonly name: string;
  /** `info.version`. */
  readonly version: string;
  /** sha256 (hex) of the published `openapi.json` text. */
  readonly digest: string;
  /** RFC 3339. */
  readonly publishedAt: string;
  /**
   * True when render emits its ConfigMap: a new version, or a kept one whose live labels,
   * annotations or owner reference differ from what it should carry (apply never prunes a kept
   * version, so the others need not be rendered).
   */
  readonly apply: boolean;
  /** The `openapi.json` text (loaded on demand: kept versions' texts stay packed in the watch cache). */
  readonly text: () => string;
}

/** An ApiSchema's version history after this run (ir/history.ts). */
export interface HistoryIR {
  /** At most MAX_PUBLISHED_VERSIONS, newest first (`status.versions`). */
  readonly kept: readonly VersionIR[];
  /** Version ConfigMaps beyond the cap, `<namespace>/<name>` (RenderOutput.droppedVersions). */
  readonly dropped: readonly string[];
  /** `status.lastDiff`: the two newest versions compared; absent with fewer than two, or when they cannot be compared (then an Event says why). */
  readonly lastDiff?: NonNullable<ApiSchemaStatus['lastDiff']>;
}

/** The desired state of one ApiSchema: what it publishes and routes (if programmed), its version history, its status. */
export interface ApiSchemaIR extends OwnerIdentity {
  readonly mode: 'enforce' | 'passthrough';
  readonly basePath: string;
  readonly accepted: boolean;
  readonly resolved: boolean;
  /** Effective operations (inline + imported + inference-derived): `status.operationCount`. */
  readonly operationCount: number;
  /** Import of the served OpenAPI document (`spec.source.openapi` only). */
  readonly imported?: ImportInfo;
  /** `status.unroutable`: present when a served document was imported (state `imported` or `stale`). */
  readonly unroutable?: readonly string[];
  /** Nothing rendered, but existing objects must be kept (RenderOutput.retainOwners). */
  readonly retain: boolean;
  /** Its namespace needs the ReferenceGrant to the policy server (ir/apischema.ts `needsPolicyGrant`). */
  readonly policyGrant: boolean;
  /** Present when its routes and policy ConfigMap are rendered (condition `Programmed=True`). */
  readonly program?: ProgramIR;
  /** Its internal route (hand-written Service target: enforce mode, or discovery of a served document). */
  readonly internalRoute?: InternalRouteIR;
  readonly history: HistoryIR;
  readonly conditions: readonly ConditionIR[];
  /** Warning Events: its error conditions (ir/conditions.ts `conditionEvents`) and what the version history could not record. */
  readonly events: readonly EventRecord[];
}

/** The whole desired state of the cluster's ApiSchemas and MLServices (see ./index.ts). */
export interface IR {
  readonly mlServices: readonly MLServiceIR[];
  readonly apiSchemas: readonly ApiSchemaIR[];
  /**
   * Namespaces (other than the system namespace) with enforce-mode public routes, or with
   * retained ApiSchemas (whose existing routes may still point at the policy server). Sorted.
   */
  readonly policyGrantNamespaces: readonly string[];
  /**
   * The largest request body limit (bytes) of any operation of an accepted ApiSchema in the
   * whole graph (also when only some owners are built), at least POLICY_DEFAULTS.maxBodyBytes (lib/policy/config.ts):
   * what the gateway must let through so the policy server, not nginx, answers 413 (render's
   * ClientSettingsPolicy).
   */
  readonly maxBodyBytes: number;
  /**
   * KEA's live HTTPRoutes by `<ns>/<name>` (graph `routes`: metadata and `status.parents`):
   * render qualifies a `Programmed=True` with the gateway's verdict on the routes it renders
   * (render/route-status.ts). Absent = none observed.
   */
  readonly routes?: ReadonlyMap<string, KubernetesObject>;
}

/**
 * An {@link IR} whose ApiSchema IRs are built one at a time as they are taken (once, in
 * order), so a consumer that renders each and lets it go never holds them all (their policy
 * and OpenAPI text are the bulk of an IR).
 */
export interface StreamIR extends Omit<IR, 'apiSchemas'> {
  readonly apiSchemas: Iterable<ApiSchemaIR>;
}
