/**
 * Server-side HTML of the docs portal: the catalog page and the per-service page (header,
 * "What changed" section, version history, an operations table, and the `#swagger-ui` mount
 * point that Swagger UI fills client-side). Pure string rendering; every interpolated value
 * goes through {@link esc}. No inline scripts (CSP-friendly).
 */
import type { ApiChange, ApiDiff } from '../../lib/openapi/diff.js';
import type { MethodEntry } from '../../lib/openapi/generate.js';
import type { PublishedApi, PublishedVersionDoc } from './types.js';

/** HTML-escapes text for element content and double-quoted attributes. */
export function esc(s: unknown): string {
  return String(s ?? '')
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');
}

export interface PageChrome {
  title: string;
  loginHref: string;
  mePath: string;
  /** POST target of the "Sign out" button (shown once signed in). */
  logoutPath: string;
  catalogTitle: string;
}

function layout(chrome: PageChrome, main: string, extraHead = '', scripts = ''): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(chrome.title)}</title>
<link rel="icon" type="image/png" href="/docs/assets/favicon-32x32.png">
${extraHead}<link rel="stylesheet" href="/docs/assets/kea.css">
</head>
<body data-me-path="${esc(chrome.mePath)}" data-login-href="${esc(chrome.loginHref)}" data-logout-path="${esc(chrome.logoutPath)}">
<header class="kea-bar"><a href="/docs">${esc(chrome.catalogTitle)}</a><nav><a href="/openapi.json">openapi.json</a><a href="/methods">methods</a><span id="kea-who" style="margin-left:16px"></span></nav></header>
<main class="kea">
${main}
</main>
${scripts}</body>
</html>
`;
}

function accessText(a: MethodEntry['access']): string {
  if (a.mode !== 'restricted') return a.mode;
  const parts = [
    a.roles?.length ? `roles: ${a.roles.join(', ')}` : '',
    a.groups?.length ? `groups: ${a.groups.join(', ')}` : '',
    a.scopes?.length ? `scopes: ${a.scopes.join(', ')}` : '',
  ].filter(Boolean);
  return `restricted (${parts.join('; ')})`;
}

/** An operation's rate limits in short, e.g. `100/1m per caller (+20 burst); 10000/24h per API`; `none` without. */
function rateLimitText(limits: MethodEntry['rateLimit']): string {
  if (!limits?.length) return 'none';
  const who = { identity: 'per caller', address: 'per address', api: 'per API' } as const;
  return limits.map((l) => `${l.name}: ${l.requests}/${l.period}${l.burst ? ` (+${l.burst} burst)` : ''} ${who[l.key] ?? l.key}`).join('; ');
}

/** Sorted by publishedAt (oldest first); the current document is appended when its version is not the newest entry. */
export function versionsOf(api: PublishedApi): PublishedVersionDoc[] {
  const h = [...api.history].sort((a, b) => (Date.parse(a.publishedAt) || 0) - (Date.parse(b.publishedAt) || 0));
  const last = h[h.length - 1];
  if (!last || last.version !== api.version) {
    h.push({ version: api.version, digest: '', publishedAt: '', openapi: api.openapi });
  }
  return h;
}

/** The catalog page (`/docs`). */
export function renderCatalog(chrome: PageChrome, apis: PublishedApi[], methods: MethodEntry[], latest: Map<string, ApiDiff | undefined> = new Map()): string {
  const rows = apis
    .map((a) => {
      const [ns, name] = a.id.split('/');
      const ops = methods.filter((m) => m.service === a.id).length;
      const versions = versionsOf(a).map((v) => v.version);
      const href = `/docs/${encodeURIComponent(ns)}/${encodeURIComponent(name)}`;
      const desc = (a.openapi.info?.description ?? '').split('\n')[0];
      const d = latest.get(a.id);
      const change = !d
        ? '<span class="muted">first version</span>'
        : d.breaking
          ? `<a href="${esc(href)}#kea-changes"><span class="badge breaking">BREAKING</span></a>${d.changes.filter((c) => c.breaking).length} breaking since v${esc(d.from)}`
          : `<span class="badge nonbreaking">compatible</span>${d.changes.length} change${d.changes.length === 1 ? '' : 's'} since v${esc(d.from)}`;
      return `<tr data-service="${esc(a.id)}"><td><a href="${esc(href)}">${esc(a.title)}</a><div class="muted">${esc(desc)}</div></td><td><code>${esc(a.id)}</code></td><td>${esc(a.version)}</td><td>${esc(versions.join(', '))}</td><td>${change}</td><td>${ops}</td><td><a href="/openapi/${esc(encodeURIComponent(ns))}/${esc(encodeURIComponent(name))}.json">JSON</a> · <a href="/openapi/${esc(encodeURIComponent(ns))}/${esc(encodeURIComponent(name))}.yaml">YAML</a></td></tr>`;
    })
    .join('\n');
  const main = `<h1>${esc(chrome.catalogTitle)}</h1>
<p class="muted">${apis.length} API${apis.length === 1 ? '' : 's'} published at this gateway. Documents are generated from the ApiSchema resources: they always match what the gateway enforces.</p>
<table id="kea-catalog"><thead><tr><th>API</th><th>Id</th><th>Version</th><th>Published versions</th><th>Latest change</th><th>Operations</th><th>OpenAPI</th></tr></thead>
<tbody>
${rows || '<tr><td colspan="7">No APIs published yet.</td></tr>'}
</tbody></table>
<p class="muted">Aggregate document: <a href="/openapi.json">/openapi.json</a> · every operation: <a href="/methods">/methods</a></p>`;
  return layout(chrome, main, '', '<script src="/docs/assets/kea-init.js"></script>\n');
}

function changeItem(c: ApiChange): string {
  return `<li class="${c.breaking ? 'breaking' : 'nonbreaking'}" data-kind="${esc(c.kind)}"><span class="badge ${c.breaking ? 'breaking' : 'nonbreaking'}">${c.breaking ? 'BREAKING' : 'non-breaking'}</span>${esc(c.message)} <code class="muted">${esc(c.path)}</code></li>`;
}

/** The "What changed" section for a diff (or the first-version note when there is none). */
export function renderChanges(diff: ApiDiff | undefined, current: string): string {
  if (!diff) {
    return `<details id="kea-changes" open><summary>What changed in v${esc(current.replace(/^v/, ''))}</summary><p>This is the first published version.</p></details>`;
  }
  const br = diff.changes.filter((c) => c.breaking);
  const nb = diff.changes.filter((c) => !c.breaking);
  const body = diff.changes.length
    ? `<p>${br.length ? `<strong class="breaking">${br.length} breaking</strong>` : '0 breaking'}, ${nb.length} non-breaking change${nb.length === 1 ? '' : 's'}.</p>
${br.length ? `<h3 class="breaking">Breaking changes</h3><ul class="changes">${br.map(changeItem).join('')}</ul>` : ''}
${nb.length ? `<h3>Non-breaking changes</h3><ul class="changes">${nb.map(changeItem).join('')}</ul>` : ''}`
    : '<p>No changes to operations, parameters, bodies, responses or access.</p>';
  return `<details id="kea-changes" open data-breaking="${diff.breaking}"><summary>What changed in v${esc(diff.to.replace(/^v/, ''))} (since v${esc(diff.from.replace(/^v/, ''))})</summary>
${body}
</details>`;
}

/** The per-service page (`/docs/<ns>/<name>`). */
export function renderServicePage(
  chrome: PageChrome,
  api: PublishedApi,
  methods: MethodEntry[],
  diff: ApiDiff | undefined,
  basePath: string,
  curl?: string,
): string {
  const [ns, name] = api.id.split('/');
  const specPath = `/openapi/${encodeURIComponent(ns)}/${encodeURIComponent(name)}`;
  const versions = versionsOf(api);
  const history = versions
    .slice()
    .reverse()
    .map(
      (v) =>
        `<tr><td>${esc(v.version)}</td><td>${esc(v.publishedAt || 'current')}</td><td><code>${esc(v.digest.slice(0, 12))}</code></td><td><a href="${esc(specPath)}.json?version=${esc(encodeURIComponent(v.version))}">JSON</a></td></tr>`,
    )
    .join('');
  const ops = methods
    .map(
      (m) =>
        `<tr data-operation-id="${esc(m.operationId)}"><td class="method">${esc(m.method)}</td><td><code>${esc(m.path)}</code></td><td>${esc(m.summary ?? '')}${m.deprecated ? ' <em>(deprecated)</em>' : ''}</td><td class="access-${esc(m.access.mode)}">${esc(accessText(m.access))}</td><td class="rate-limit">${esc(rateLimitText(m.rateLimit))}</td><td><code>${esc(m.operationId)}</code></td></tr>`,
    )
    .join('\n');
  const desc = api.openapi.info?.description;
  const main = `<section id="kea-summary" data-service="${esc(api.id)}">
<h1>${esc(api.title)}<span class="version">v${esc(api.version.replace(/^v/, ''))}</span></h1>
${desc ? `<p>${esc(desc)}</p>` : ''}
<p class="muted">Service <code>${esc(api.id)}</code> at <code>${esc(basePath || '/')}</code> · OpenAPI 3.0: <a href="${esc(specPath)}.json">JSON</a> · <a href="${esc(specPath)}.yaml">YAML</a> · "Try it out" calls the gateway with your single sign-on session (<a href="${esc(chrome.loginHref)}">sign in</a> first) or a bearer token (Authorize).</p>
${renderChanges(diff, api.version)}
${curl ? `<details id="kea-call" open><summary>Call it</summary><p class="muted">With a bearer token in <code>$TOKEN</code> (or use "Try it out" below with your session):</p><pre><code>${esc(curl)}</code></pre></details>` : ''}
<details id="kea-operations"><summary>Operations (${methods.length})</summary>
<table><thead><tr><th>Method</th><th>Path</th><th>Summary</th><th>Access</th><th>Rate limits</th><th>operationId</th></tr></thead><tbody>
${ops}
</tbody></table></details>
<details id="kea-history"><summary>Published versions (${versions.length})</summary>
<table><thead><tr><th>Version</th><th>Published</th><th>Digest</th><th>Document</th></tr></thead><tbody>${history}</tbody></table></details>
</section>
<div id="swagger-ui" data-spec-url="${esc(specPath)}.json" data-base-path="${esc(basePath)}"></div>`;
  return layout(
    chrome,
    main,
    '<link rel="stylesheet" href="/docs/assets/swagger-ui.css">\n',
    '<script src="/docs/assets/swagger-ui-bundle.js"></script>\n<script src="/docs/assets/kea-init.js"></script>\n',
  );
}
