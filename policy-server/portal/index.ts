/**
 * The docs portal (`/docs`, `/openapi/...`, `/openapi.json`, `/methods`): takes a
 * {@link DocsStore} of published OpenAPI documents and gives an express Router.
 */
export { createPortalRouter, swaggerUiDistDir, toYaml } from './router.js';
export type { DocsStore, PortalOptions, PublishedApi, PublishedVersionDoc } from './types.js';
