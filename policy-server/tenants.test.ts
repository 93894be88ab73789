/**
 * Multi-tenant isolation (issue 10, "make the next hole visible"): two tenants' APIs in two
 * namespaces with the same operations, paths and inputs, called by two people logged in
 * through a real OpenID provider (dev/idp.ts, `oidc-provider`: browser login, session cookie)
 * and one machine client (client-credentials bearer JWT), through a real policy server
 * (`createPolicyServer`, real authenticator) to a real upstream that echoes which tenant was
 * called, by whom and with what (testing/echo-upstream.ts).
 *
 * Every operation kind is covered: `scope: shared` cache, `scope: identity` cache and no cache;
 * GET with path, query (repeated values in both orders) and header parameters; POST with a
 * body; a shared answer the backend personalises and says so (`Vary: X-Kea-User`); a gzip
 * answer (`Vary: Accept-Encoding`). Every request is sent in three rounds (sequential, again,
 * then all at once) and every answer must be the one produced for that tenant, that request's
 * inputs and, for personal answers, that caller; cached kinds must also be served from the
 * cache (so hits are exercised, not only misses).
 *
 * In-process servers only (no child processes): part of the unit project of `npm test`.
 */
import express from 'express';
import type { IncomingMessage } from 'node:http';
import { gunzipSync } from 'node:zlib';
import { scriptsClient, gatewayClient, startDevIdp, type DevIdp } from '../dev/idp.js';
import { createLogger } from '../lib/log.js';
import { POLICY_API_VERSION, policyOperation as op, type PolicyOperation, type PolicyService } from '../lib/policy/config.js';
import { createAuthenticator, type Authenticator } from './auth/index.js';
import { browserLogin, CookieJar } from './auth/testkit.js';
import type { RequestAuthenticator } from './datapath/handler.js';
import { createPolicyServer, type PolicyServer } from './server.js';
import { SnapshotStore } from './snapshot/store.js';
import { startEchoUpstream, type Echo, type EchoUpstream } from './testing/echo-upstream.js';
import { configMapsFor, INTERNAL_TOKEN } from './testing/fixtures.js';
import { send, type RawResponse } from './testing/http.js';

const TENANTS = ['acme', 'globex'] as const;
type Tenant = (typeof TENANTS)[number];
const hostOf = (t: Tenant) => `api.${t}.kea.internal`;
const GW_SECRET = 'tenants-gateway-secret-0123456789abcdef';
const SESSION_SECRET = 'tenants-session-secret-0123456789abcdef';

/** How an operation caches and whether its backend answer is personal (carries the caller). */
interface Kind {
  operationId: string;
  method: 'GET' | 'POST';
  /** Public path after the tenant's basePath; `{id}` is the path parameter. */
  path: string;
  upstreamPath: string;
  cache?: 'shared' | 'identity';
  personal: boolean;
  /** Sent with and without `Accept-Encoding: gzip`. */
  gzip?: boolean;
}

const getParams: PolicyOperation['parameters'] = [
  { name: 'id', in: 'path', required: true, schema: { type: 'string', pattern: '^[0-9]{1,4}$' } },
  { name: 'lang', in: 'query', required: false, schema: { type: 'array', items: { type: 'string', enum: ['en', 'fr'] } } },
  { name: 'x-lang', in: 'header', required: false, schema: { type: 'string', enum: ['en', 'fr'] } },
];
const bodySchema = { type: 'object', required: ['input'], additionalProperties: false, properties: { input: { type: 'string', maxLength: 16 } } };

const KINDS: Kind[] = [
  { operationId: 'item_shared', method: 'GET', path: '/items/{id}', upstreamPath: '/items/{id}', cache: 'shared', personal: false },
  { operationId: 'item_mine', method: 'GET', path: '/mine/{id}', upstreamPath: '/mine/{id}', cache: 'identity', personal: true },
  { operationId: 'item_live', method: 'GET', path: '/live/{id}', upstreamPath: '/live/{id}', personal: true },
  { operationId: 'predict_shared', method: 'POST', path: '/predict', upstreamPath: '/predict', cache: 'shared', personal: false },
  { operationId: 'predict_mine', method: 'POST', path: '/predict-mine', upstreamPath: '/predict-mine', cache: 'identity', personal: true },
  { operationId: 'predict_live', method: 'POST', path: '/predict-live', upstreamPath: '/predict-live', personal: true },
  { operationId: 'whoami_shared', method: 'GET', path: '/whoami', upstreamPath: '/vary-user/whoami', cache: 'shared', personal: true },
  { operationId: 'report_shared', method: 'GET', path: '/report', upstreamPath: '/gzip/report', cache: 'shared', personal: false, gzip: true },
];

function tenantService(t: Tenant): PolicyService {
  return {
    apiVersion: POLICY_API_VERSION,
    id: `${t}/api`,
    namespace: t,
    name: 'api',
    title: `${t} API`,
    version: '1.0.0',
    basePath: `/${t}`,
    // The same configuration in both tenants may well digest alike: the key must still tell them apart.
    configVersion: 'v1',
    mode: 'enforce',
    upstream: { host: hostOf(t) },
    traffic: [{ revision: 'v1', weight: 100 }],
    authorization: {},
    operations: KINDS.map((k) =>
      op({
        operationId: k.operationId,
        method: k.method,
        path: `/${t}${k.path}`,
        upstreamPath: k.upstreamPath,
        access: { mode: 'restricted', roles: ['analyst'] },
        parameters: k.path.includes('{id}') ? getParams : [],
        requestBody: k.method === 'POST' ? { required: true, contentType: 'application/json', schema: bodySchema } : undefined,
        cache: k.cache ? { ttlSeconds: 300, scope: k.cache } : undefined,
      }),
    ),
  };
}

/** One caller: a logged-in person (session cookie) or a machine (bearer JWT). */
interface Caller {
  name: string;
  /** The `sub` the policy server derives (`x-kea-user` upstream). */
  subject: string;
  headers: Record<string, string>;
}

/** One request and what its answer must echo. */
interface Case {
  tenant: Tenant;
  caller: Caller;
  kind: Kind;
  method: string;
  url: string;
  headers: Record<string, string>;
  body?: string;
  expect: { path: string; query: string; xLang?: string; body: string; user: string | null; gzip: boolean };
}

/** Inputs per operation kind: each pair differs in exactly one input the answer depends on. */
function inputs(k: Kind): Array<{ id?: string; query: string; xLang?: string; body?: string; gzip: boolean }> {
  if (k.method === 'POST')
    return [
      { query: '', body: '{"input":"a"}', gzip: false },
      { query: '', body: '{"input":"b"}', gzip: false },
    ];
  if (k.gzip)
    return [
      { query: '', gzip: true },
      { query: '', gzip: false },
    ];
  if (!k.path.includes('{id}')) return [{ query: '', gzip: false }];
  return [
    { id: '1', query: 'lang=en', xLang: 'en', gzip: false },
    { id: '2', query: 'lang=en', xLang: 'en', gzip: false },
    { id: '1', query: 'lang=en&lang=fr', xLang: 'en', gzip: false },
    { id: '1', query: 'lang=fr&lang=en', xLang: 'en', gzip: false },
    { id: '1', query: 'lang=en', xLang: 'fr', gzip: false },
    { id: '1', query: 'lang=en', gzip: false },
  ];
}

let idp: DevIdp;
let upstream: EchoUpstream;
let ps: PolicyServer;
let auth: Authenticator;
let url: string;
const callers: Caller[] = [];

beforeAll(async () => {
  upstream = await startEchoUpstream({ token: INTERNAL_TOKEN, hosts: Object.fromEntries(TENANTS.map((t) => [hostOf(t), t])) });
  const logger = createLogger('policy-server', { level: 'error' });
  const store = new SnapshotStore({ logger });
  store.apply(configMapsFor(...TENANTS.map(tenantService)), 'source');
  // The IdP needs the policy server's callback URL and the authenticator needs the IdP: the
  // server starts with a delegate that forwards to the real authenticator once it exists.
  let router: express.Router | undefined;
  const delegate: RequestAuthenticator & { router: () => express.Router } = {
    authenticate: (req) => auth.authenticate(req),
    authenticateCached: (req) => auth.authenticateCached?.(req),
    loginUrl: (returnTo) => auth.loginUrl(returnTo),
    router: () => express.Router().use((req, res, next) => (router ??= auth.router())(req, res, next)),
  };
  ps = createPolicyServer({ store, auth: delegate, upstreamUrl: upstream.url, internalToken: INTERNAL_TOKEN, logger });
  url = `http://127.0.0.1:${await ps.listen(0, '127.0.0.1')}`;
  idp = await startDevIdp({
    clients: [gatewayClient(url, GW_SECRET), scriptsClient('batch-job', 'batch-job-secret', ['analyst'])],
    users: [
      { username: 'alice', password: 'alice', roles: ['analyst'] },
      { username: 'bob', password: 'bob', roles: ['analyst'] },
    ],
  });
  auth = await createAuthenticator({
    issuer: idp.issuer,
    clientId: 'kea-gateway',
    clientSecret: GW_SECRET,
    redirectUri: `${url}/auth/callback`,
    audience: idp.audience,
    sessionSecrets: [SESSION_SECRET],
    cookieSecure: false,
  });
  for (const person of ['alice', 'bob']) {
    const jar = new CookieJar();
    const { final } = await browserLogin(jar, `${url}/auth/login?returnTo=/acme/whoami`, person, person, url);
    expect(final.status).toBe(303);
    const cookie = jar.header(new URL(`${url}/acme/whoami`));
    expect(cookie).toMatch(/kea_session=/);
    callers.push({ name: person, subject: person, headers: { cookie } });
  }
  const tok = await fetch(`${idp.issuer}/token`, {
    method: 'POST',
    headers: { authorization: `Basic ${Buffer.from('batch-job:batch-job-secret').toString('base64')}`, 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'client_credentials', resource: idp.audience }),
  });
  expect(tok.status).toBe(200);
  const accessToken = ((await tok.json()) as { access_token: string }).access_token;
  const machine = { authorization: `Bearer ${accessToken}` };
  // The subject the authenticator derives for a client-credentials token (its own rule).
  const subject = (await auth.authenticate({ headers: machine } as unknown as IncomingMessage))!.subject;
  expect(subject).toMatch(/batch-job/);
  callers.push({ name: 'batch-job', subject, headers: machine });
}, 60_000);

afterAll(async () => {
  await ps?.close();
  await auth?.close();
  await idp?.stop();
  await upstream?.close();
});

function cases(): Case[] {
  const out: Case[] = [];
  for (const kind of KINDS) {
    for (const inp of inputs(kind)) {
      for (const tenant of TENANTS) {
        for (const caller of callers) {
          const path = kind.path.replace('{id}', inp.id ?? '');
          const headers: Record<string, string> = { ...caller.headers };
          if (inp.xLang) headers['x-lang'] = inp.xLang;
          if (inp.gzip) headers['accept-encoding'] = 'gzip';
          if (inp.body) headers['content-type'] = 'application/json';
          out.push({
            tenant,
            caller,
            kind,
            method: kind.method,
            url: `${url}/${tenant}${path}${inp.query ? `?${inp.query}` : ''}`,
            headers,
            body: inp.body,
            expect: {
              path: kind.upstreamPath.replace('{id}', inp.id ?? ''),
              query: inp.query,
              xLang: inp.xLang,
              body: inp.body ?? '',
              user: kind.personal ? caller.subject : null,
              gzip: inp.gzip,
            },
          });
        }
      }
    }
  }
  return out;
}

/** Sends one case and checks that the answer is the one produced for it. @returns the answer's `x-cache` and upstream call number. */
async function check(c: Case): Promise<{ cache?: string; n: number }> {
  const r: RawResponse = await send(c.method, c.url, { headers: c.headers, body: c.body });
  const where = `${c.method} ${c.url} as ${c.caller.name}`;
  expect({ where, status: r.status }).toEqual({ where, status: 200 });
  expect({ where, encoding: r.headers['content-encoding'] }).toEqual({ where, encoding: c.expect.gzip ? 'gzip' : undefined });
  const echo = JSON.parse((c.expect.gzip ? gunzipSync(r.body) : r.body).toString('utf8')) as Echo;
  const got = { where, tenant: echo.tenant, path: echo.path, query: echo.query, xLang: echo.headers['x-lang'], body: echo.body, user: echo.user };
  const { gzip: _gzip, ...want } = c.expect;
  expect(got).toEqual({ where, tenant: c.tenant, ...want });
  return { cache: r.headers['x-cache'] as string | undefined, n: echo.n };
}

test('no answer of one tenant or identity ever reaches another, for every cached and uncached operation kind', async () => {
  const all = cases();
  expect(all.length).toBeGreaterThan(100);
  // Round 1, one at a time: every cached kind is stored.
  const first = new Map<Case, { cache?: string; n: number }>();
  for (const c of all) first.set(c, await check(c));
  // Round 2, again in order: cached kinds are served from the cache, each to its own audience.
  for (const c of all) {
    const r = await check(c);
    if (c.kind.cache) expect({ c: c.url, caller: c.caller.name, cache: r.cache }).toEqual({ c: c.url, caller: c.caller.name, cache: 'HIT' });
    else {
      expect(r.cache).toBeUndefined();
      expect(r.n).not.toBe(first.get(c)!.n);
    }
  }
  // Round 3, everything at once (shuffled): still every answer is its own.
  const shuffled = [...all].sort(() => Math.random() - 0.5);
  const results = await Promise.all(shuffled.map((c) => check(c)));
  expect(results.filter((r, i) => shuffled[i].kind.cache && r.cache !== 'HIT')).toEqual([]);
  // Within one tenant, a shared answer was reused across callers and an identity one was not.
  const n = (kind: string, caller: string) => first.get(all.find((c) => c.tenant === 'acme' && c.kind.operationId === kind && c.caller.name === caller)!)!;
  expect(n('item_shared', 'bob').cache).toBe('HIT');
  expect(n('item_shared', 'bob').n).toBe(n('item_shared', 'alice').n);
  expect(n('item_mine', 'bob').cache).toBe('MISS');
  expect(n('whoami_shared', 'bob').cache).toBe('MISS'); // Vary: X-Kea-User
}, 120_000);
