/**
 * Contract between the docs portal ({@link createPortalRouter}) and whoever owns the published
 * documents (the policy server implements {@link DocsStore} from its configuration snapshot).
 */
import type { OpenAPIObject } from 'openapi3-ts/oas30';

/** One published version of an API (from an `api-version` ConfigMap). */
export interface PublishedVersionDoc {
  /** info.version of that document. */
  version: string;
  /** sha256 of the canonical document, hex. */
  digest: string;
  /** RFC 3339 timestamp of publication. */
  publishedAt: string;
  openapi: OpenAPIObject;
}

/** An API as the portal shows it. */
export interface PublishedApi {
  /** `<namespace>/<name>` of the ApiSchema. */
  id: string;
  title: string;
  /** Current info.version. */
  version: string;
  /** The current published OpenAPI 3.0.3 document (servers = gateway URL + basePath). */
  openapi: OpenAPIObject;
  /** Published versions, any order (the portal sorts by publishedAt); usually includes the current one. */
  history: PublishedVersionDoc[];
}

/** Read access to the published APIs. Must be cheap: it is called once per portal request. */
export interface DocsStore {
  list(): PublishedApi[];
  get(id: string): PublishedApi | undefined;
}

/** Options of {@link createPortalRouter}. */
export interface PortalOptions {
  /** Public base URL of the gateway (servers of the aggregate `/openapi.json`). */
  gatewayUrl: string;
  /** Title of the catalog page (default "KEA API catalog"). */
  title?: string;
  /** Path of the login endpoint (default `/auth/login`); the page links `?returnTo=<page>`. */
  loginPath?: string;
  /** Path that returns the caller's identity as JSON or 401 (default `/auth/me`); shown in the page header. */
  mePath?: string;
  /** Path of the logout endpoint (default `/auth/logout`); signed-in pages show a "Sign out" button that POSTs there (same origin). */
  logoutPath?: string;
}
