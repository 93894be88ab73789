/**
 * The docs portal: an express Router serving, from a {@link DocsStore},
 *   - `GET /docs`                       catalog page (services, versions, links);
 *   - `GET /docs/<ns>/<name>`           interactive docs (Swagger UI) + "What changed in v<N>"
 *                                       (diff of the two newest published versions; `?from=<version>`
 *                                       compares the current version against an earlier one);
 *   - `GET /docs/assets/*`              Swagger UI from the `swagger-ui-dist` package (no CDN) and
 *                                       the portal's own init script and stylesheet;
 *   - `GET /openapi/<ns>/<name>.json`   the published document (`.yaml` too; bare `<name>` gives JSON,
 *                                       or YAML for `Accept: application/yaml`; `?version=` for an
 *                                       earlier published one);
 *   - `GET /openapi.json` (`.yaml`)     the aggregated catalog document (lib/openapi buildCatalog);
 *   - `GET /methods`                    JSON list of operations (service, operationId, method,
 *                                       path, summary, access).
 * Unknown ids and versions get 404 `application/problem+json` (RFC 9457). Express is fine here:
 * these are management endpoints, off the per-request data path (docs/field-notes §1).
 */
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import express, { type Request, type Response, type Router } from 'express';
import YAML from 'yaml';
import type { OpenAPIObject } from 'openapi3-ts/oas30';
import { diffOpenApi, type ApiDiff } from '../../lib/openapi/diff.js';
import { curlExample } from '../../lib/openapi/examples.js';
import { buildCatalog, docBasePath, listMethods, type MethodEntry } from '../../lib/openapi/generate.js';
import { problem, sendProblem } from '../datapath/problem.js';
import { KEA_CSS, KEA_INIT_JS } from './assets.js';
import { renderCatalog, renderServicePage, versionsOf, type PageChrome } from './html.js';
import type { DocsStore, PortalOptions, PublishedApi } from './types.js';

/** Files of swagger-ui-dist the portal serves (its sample index.html and petstore initializer are not). */
const SWAGGER_FILES = new Set([
  'swagger-ui-bundle.js',
  'swagger-ui-bundle.js.map',
  'swagger-ui.css',
  'swagger-ui.css.map',
  'swagger-ui-standalone-preset.js',
  'swagger-ui-standalone-preset.js.map',
  'oauth2-redirect.html',
  'oauth2-redirect.js',
  'favicon-16x16.png',
  'favicon-32x32.png',
]);

/** Directory of the installed swagger-ui-dist package. */
export function swaggerUiDistDir(): string {
  const require = createRequire(import.meta.url);
  return dirname(require.resolve('swagger-ui-dist/package.json'));
}

function notFound(res: Response, detail: string): void {
  sendProblem(res, problem('not-found', detail));
}

/** Diff between the two newest published versions (undefined for a first version). */
function latestDiff(api: PublishedApi): ApiDiff | undefined {
  const versions = versionsOf(api);
  if (versions.length < 2) return undefined;
  return diffOpenApi(versions[versions.length - 2].openapi, versions[versions.length - 1].openapi);
}

/** YAML text of a document: no anchors/aliases (shared sub-objects are written out in full). */
export function toYaml(doc: unknown): string {
  return YAML.stringify(doc, { aliasDuplicateObjects: false, lineWidth: 0 });
}

/**
 * Creates the portal router. Mount it at the root of the policy server's management app.
 * @param store - read access to published APIs; called on every request (keep it cheap).
 * @param opts - gateway URL (for the aggregate document's servers) and page options.
 */
export function createPortalRouter(store: DocsStore, opts: PortalOptions): Router {
  const r = express.Router();
  const distDir = swaggerUiDistDir();
  const loginPath = opts.loginPath ?? '/auth/login';
  const mePath = opts.mePath ?? '/auth/me';
  const logoutPath = opts.logoutPath ?? '/auth/logout';
  const catalogTitle = opts.title ?? 'KEA API catalog';
  const chrome = (title: string, returnTo: string): PageChrome => ({
    title,
    catalogTitle,
    mePath,
    loginHref: `${loginPath}?returnTo=${encodeURIComponent(returnTo)}`,
    logoutPath,
  });

  // Aggregates are recomputed only when the published documents change (compared by identity:
  // the store hands out the same objects until its snapshot is swapped).
  let cachedDocs: OpenAPIObject[] = [];
  let cache: { catalog: OpenAPIObject; methods: MethodEntry[]; latest: Map<string, ApiDiff | undefined> } | undefined;
  const aggregates = (): { catalog: OpenAPIObject; methods: MethodEntry[]; latest: Map<string, ApiDiff | undefined>; apis: PublishedApi[] } => {
    const apis = [...store.list()].sort((a, b) => a.id.localeCompare(b.id));
    const same = cache && cachedDocs.length === apis.length && apis.every((a, i) => cachedDocs[i] === a.openapi);
    if (!same) {
      const docs = apis.map((a) => ({ id: a.id, doc: a.openapi }));
      cache = { catalog: buildCatalog(docs, opts.gatewayUrl), methods: listMethods(docs), latest: new Map(apis.map((a) => [a.id, latestDiff(a)])) };
      cachedDocs = apis.map((a) => a.openapi);
    }
    return { ...cache!, apis };
  };

  r.get('/docs/assets/kea-init.js', (_req, res) => {
    res.type('application/javascript').set('cache-control', 'public, max-age=300').send(KEA_INIT_JS);
  });
  r.get('/docs/assets/kea.css', (_req, res) => {
    res.type('text/css').set('cache-control', 'public, max-age=300').send(KEA_CSS);
  });
  r.get('/docs/assets/:file', (req, res) => {
    const file = String(req.params.file);
    if (!SWAGGER_FILES.has(file)) return notFound(res, `no asset ${JSON.stringify(file)}`);
    res.sendFile(file, { root: distDir, maxAge: '1d', dotfiles: 'deny' });
  });

  r.get(['/docs', '/docs/'], (_req, res) => {
    const { apis, methods, latest } = aggregates();
    res
      .type('html')
      .set('cache-control', 'no-cache')
      .send(renderCatalog(chrome(catalogTitle, '/docs'), apis, methods, latest));
  });

  r.get('/docs/:ns/:name', (req: Request, res: Response) => {
    const id = `${req.params.ns}/${req.params.name}`;
    const api = store.get(id);
    if (!api) return notFound(res, `no published API ${JSON.stringify(id)}`);
    const versions = versionsOf(api);
    let diff: ApiDiff | undefined;
    const from = typeof req.query.from === 'string' ? req.query.from : undefined;
    if (from !== undefined) {
      const old = versions.find((v) => v.version === from);
      if (!old) return notFound(res, `API ${JSON.stringify(id)} has no published version ${JSON.stringify(from)}`);
      diff = diffOpenApi(old.openapi, api.openapi);
    } else diff = latestDiff(api);
    const methods = listMethods([{ id, doc: api.openapi }]);
    let curl: string | undefined;
    try {
      curl = curlExample(api.openapi);
    } catch {
      curl = undefined; // a third-party document the sample builder cannot handle: no snippet
    }
    const html = renderServicePage(
      chrome(`${api.title} ${api.version} · ${catalogTitle}`, req.originalUrl),
      api,
      methods,
      diff,
      docBasePath(api.openapi),
      curl,
    );
    res.type('html').set('cache-control', 'no-cache').send(html);
  });

  r.get('/openapi/:ns/:file', (req: Request, res: Response) => {
    const file = String(req.params.file);
    // `<name>.json`, `<name>.yaml`, or a bare `<name>` (seed path /openapi/{serviceId}: JSON unless YAML is asked for).
    let m = /^(.+)\.(json|yaml|yml)$/.exec(file);
    if (!m || !store.get(`${req.params.ns}/${m[1]}`)) {
      const bare = store.get(`${req.params.ns}/${file}`);
      if (bare) m = ['', file, /\b(application|text)\/(x-)?yaml\b/.test(String(req.headers.accept ?? '')) ? 'yaml' : 'json'] as unknown as RegExpExecArray;
    }
    if (!m) return notFound(res, `no published API ${JSON.stringify(`${req.params.ns}/${file}`)} (use /openapi/<namespace>/<name>.json or .yaml)`);
    const id = `${req.params.ns}/${m[1]}`;
    const api = store.get(id);
    if (!api) return notFound(res, `no published API ${JSON.stringify(id)}`);
    let doc = api.openapi;
    const version = typeof req.query.version === 'string' ? req.query.version : undefined;
    if (version !== undefined) {
      const v = versionsOf(api).find((x) => x.version === version);
      if (!v) return notFound(res, `API ${JSON.stringify(id)} has no published version ${JSON.stringify(version)}`);
      doc = v.openapi;
    }
    res.set('cache-control', 'no-cache');
    if (m[2] === 'json') res.type('application/json').send(JSON.stringify(doc, null, 2));
    else res.type('application/yaml').send(toYaml(doc));
  });

  r.get('/openapi.json', (_req, res) => {
    res
      .set('cache-control', 'no-cache')
      .type('application/json')
      .send(JSON.stringify(aggregates().catalog, null, 2));
  });
  r.get('/openapi.yaml', (_req, res) => {
    res.set('cache-control', 'no-cache').type('application/yaml').send(toYaml(aggregates().catalog));
  });

  r.get('/methods', (req, res) => {
    const service = typeof req.query.service === 'string' ? req.query.service : undefined;
    const all = aggregates().methods;
    res.set('cache-control', 'no-cache').json(service ? all.filter((m) => m.service === service) : all);
  });

  r.use(['/docs', '/openapi'], (req, res) => notFound(res, `no such page ${JSON.stringify(req.originalUrl.split('?')[0])}`));
  return r;
}
