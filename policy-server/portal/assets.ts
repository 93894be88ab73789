/**
 * The portal's own static assets, kept as strings so `tsc` output needs no copy step:
 * the Swagger UI initializer (`/docs/assets/kea-init.js`, an external script so pages need no
 * inline JavaScript and work under a strict Content-Security-Policy) and a small stylesheet.
 * Swagger UI itself is served from the `swagger-ui-dist` package (see docs/adr/0002-docs-ui.md).
 */

/**
 * Browser script. Reads `data-spec-url` / `data-base-path` from `#swagger-ui`, fetches the
 * document same-origin, puts "this gateway" (location.origin + basePath) first in `servers`
 * when no server is same-origin (so try-it-out carries the SSO session cookie), and starts
 * SwaggerUIBundle with `withCredentials: true` and `persistAuthorization: false` (tokens entered
 * in "Authorize" stay in memory; the `authorized` entry older versions left in localStorage is
 * removed). Sets `data-kea-rendered="true"` on `<body>` when
 * Swagger UI has rendered (e2e tests wait on it). Also fills `#kea-who` from the identity endpoint: "Signed in as …" with a
 * "Sign out" button (a form POSTing to `data-logout-path`, same origin), or a "Sign in" link.
 */
export const KEA_INIT_JS = `(function () {
  'use strict';
  var body = document.body;
  var who = document.getElementById('kea-who');
  var mePath = body.getAttribute('data-me-path');
  var loginHref = body.getAttribute('data-login-href');
  // Logout is a same-origin POST (a GET only shows a confirmation page): a form, not a link.
  var logoutPath = body.getAttribute('data-logout-path');
  function signOutForm() {
    if (!who || !logoutPath) return;
    var f = document.createElement('form');
    f.method = 'post';
    f.action = logoutPath + '?returnTo=' + encodeURIComponent(location.pathname);
    f.className = 'kea-signout';
    var b = document.createElement('button');
    b.type = 'submit';
    b.textContent = 'Sign out';
    f.appendChild(b);
    who.appendChild(f);
  }
  function signInLink() {
    if (!who || !loginHref) return;
    who.textContent = '';
    var a = document.createElement('a');
    a.href = loginHref;
    a.textContent = 'Sign in';
    who.appendChild(a);
  }
  if (who && mePath) {
    fetch(mePath, { credentials: 'same-origin', headers: { accept: 'application/json' } })
      .then(function (r) {
        if (!r.ok) return signInLink();
        return r.json().then(function (j) {
          var c = j.claims || {};
          who.textContent = 'Signed in as ' + (c.preferred_username || c.email || c.name || j.subject || 'unknown');
          signOutForm();
        });
      })
      .catch(signInLink);
  }
  // Earlier versions persisted Swagger UI's authorizations: drop what they left behind.
  try { window.localStorage.removeItem('authorized'); } catch (e) { /* storage disabled */ }
  var el = document.getElementById('swagger-ui');
  if (!el) return;
  var specUrl = el.getAttribute('data-spec-url');
  var base = el.getAttribute('data-base-path') || '';
  fetch(specUrl, { credentials: 'same-origin', headers: { accept: 'application/json' } })
    .then(function (r) {
      if (!r.ok) throw new Error('GET ' + specUrl + ': HTTP ' + r.status);
      return r.json();
    })
    .then(function (spec) {
      var servers = spec.servers || [];
      var sameOrigin = servers.some(function (s) {
        try { return new URL(s.url, location.href).origin === location.origin; } catch (e) { return false; }
      });
      if (!sameOrigin) {
        spec.servers = [{ url: location.origin + base, description: 'This gateway (same origin: uses your SSO session)' }].concat(servers);
      }
      window.ui = SwaggerUIBundle({
        spec: spec,
        dom_id: '#swagger-ui',
        deepLinking: true,
        withCredentials: true,
        // Tokens typed into "Authorize" live in memory only: localStorage is shared by every
        // page of the gateway's origin, backends' included (docs/security.md, browser origin).
        persistAuthorization: false,
        displayRequestDuration: true,
        docExpansion: 'list',
        defaultModelsExpandDepth: 0,
        presets: [SwaggerUIBundle.presets.apis],
        layout: 'BaseLayout',
        onComplete: function () { body.setAttribute('data-kea-rendered', 'true'); }
      });
    })
    .catch(function (err) {
      el.textContent = 'Could not load the API document: ' + err.message;
      body.setAttribute('data-kea-rendered', 'error');
    });
})();
`;

/** Stylesheet of the portal's own markup (Swagger UI brings its own). */
export const KEA_CSS = `
body { margin: 0; font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1f2933; background: #fff; }
.kea-bar { display: flex; justify-content: space-between; align-items: center; padding: 10px 24px; background: #17324d; color: #fff; }
.kea-bar a { color: #fff; text-decoration: none; font-weight: 600; }
.kea-bar nav a { font-weight: 400; margin-left: 16px; }
.kea-signout { display: inline; margin-left: 12px; }
main.kea { max-width: 1460px; margin: 0 auto; padding: 8px 24px; }
.kea h1 { margin: 16px 0 4px; font-size: 28px; }
.kea .version { display: inline-block; margin-left: 8px; padding: 2px 8px; border-radius: 10px; background: #e3ecf5; font-size: 14px; vertical-align: middle; }
.kea table { border-collapse: collapse; width: 100%; margin: 8px 0 16px; }
.kea th, .kea td { text-align: left; padding: 6px 10px; border-bottom: 1px solid #e5e9ee; vertical-align: top; }
.kea th { background: #f5f7fa; font-weight: 600; }
.kea code { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 13px; }
.kea .method { font-family: ui-monospace, Menlo, Consolas, monospace; font-weight: 700; }
.kea details { margin: 12px 0; padding: 8px 12px; border: 1px solid #e5e9ee; border-radius: 6px; }
.kea details > summary { cursor: pointer; font-weight: 600; font-size: 16px; }
.kea .changes li { margin: 4px 0; }
.kea .breaking { color: #8a1c1c; }
.kea .badge { display: inline-block; padding: 1px 6px; border-radius: 4px; font-size: 12px; font-weight: 700; margin-right: 6px; }
.kea .badge.breaking { background: #fde2e1; color: #8a1c1c; border: 1px solid #f5a3a0; }
.kea .badge.nonbreaking { background: #e3f5e6; color: #1d5d2a; border: 1px solid #a6d8b0; }
.kea .muted { color: #616e7c; font-size: 13px; }
.kea .access-public { color: #1d5d2a; } .kea .access-authenticated { color: #17324d; } .kea .access-restricted { color: #8a1c1c; }
`;
