import YAML from 'yaml';
import { api, irisV1, irisV2, VARIED } from '../../lib/openapi/testdata/fixtures.js';
import { validateOpenApi } from '../../lib/openapi/testdata/validate.js';
import type { OpenAPIObject } from '../../lib/openapi/generate.js';
import { memoryStore, startPortal } from './testkit.js';

const grades = VARIED.find((s) => s.metadata.name === 'grades')!;
const mnist = VARIED.find((s) => s.metadata.name === 'mnist')!;
const evil = api('evil', {
  info: { title: '<script>alert(1)</script>', version: '1.0.0', description: '"><img src=x onerror=alert(1)>' },
  operations: [{ operationId: 'x', method: 'GET', path: '/x', summary: '<b>bold</b>' }],
});

let portal: Awaited<ReturnType<typeof startPortal>>;
const store = memoryStore([[irisV1, irisV2], [grades], [mnist], [evil]], 'http://gw.test:8080', 'http://idp.test');

beforeAll(async () => {
  portal = await startPortal(store, { gatewayUrl: 'http://gw.test:8080' });
});
afterAll(async () => {
  await portal.close();
});

const get = (p: string, init?: RequestInit) => fetch(portal.url + p, init);

async function expectProblem(p: string, re: RegExp) {
  const r = await get(p);
  expect(r.status).toBe(404);
  expect(r.headers.get('content-type')).toMatch(/^application\/problem\+json/);
  const body = (await r.json()) as { detail: string };
  expect(body).toMatchObject({ status: 404, code: 'not-found', title: 'Not found', type: 'https://kea.dev/problems/not-found' });
  expect(body.detail).toMatch(re);
}

describe('catalog page /docs', () => {
  test('lists every service with version, versions, operation count and links', async () => {
    const r = await get('/docs');
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toMatch(/^text\/html/);
    const html = await r.text();
    for (const id of ['models/iris', 'models/grades', 'models/mnist', 'models/evil']) expect(html).toContain(`data-service="${id}"`);
    expect(html).toContain('<a href="/docs/models/iris">Iris classifier</a>');
    expect(html).toMatch(
      /<td>2\.0\.0<\/td><td>1\.0\.0, 2\.0\.0<\/td><td><a href="\/docs\/models\/iris#kea-changes"><span class="badge breaking">BREAKING<\/span><\/a>1 breaking since v1\.0\.0<\/td><td>3<\/td>/,
    );
    expect(html).toMatch(/data-service="models\/grades">.*first version/);
    expect(html).toContain('href="/openapi/models/iris.json"');
    expect(html).toContain('href="/openapi/models/iris.yaml"');
    expect(html).toContain('4 APIs published');
  });
  test('escapes user-controlled text (no HTML injection)', async () => {
    const html = await (await get('/docs')).text();
    expect(html).not.toContain('<script>alert(1)</script>');
    expect(html).toContain('&lt;script&gt;alert(1)&lt;/script&gt;');
    const page = await (await get('/docs/models/evil')).text();
    expect(page).not.toContain('<img src=x');
    expect(page).not.toContain('<b>bold</b>');
  });
});

describe('service page /docs/<ns>/<name>', () => {
  test('embeds Swagger UI from local assets with the spec URL and the base path', async () => {
    const r = await get('/docs/models/iris');
    expect(r.status).toBe(200);
    const html = await r.text();
    expect(html).toContain('<div id="swagger-ui" data-spec-url="/openapi/models/iris.json" data-base-path="/iris"></div>');
    expect(html).toContain('<script src="/docs/assets/swagger-ui-bundle.js"></script>');
    expect(html).toContain('<script src="/docs/assets/kea-init.js"></script>');
    expect(html).toContain('href="/docs/assets/swagger-ui.css"');
    expect(html).not.toMatch(/https?:\/\/(cdn|unpkg|cdnjs|jsdelivr)/);
    expect(html).not.toMatch(/<script>(?!<\/script>)/); // no inline scripts
    expect(html).toContain('href="/auth/login?returnTo=%2Fdocs%2Fmodels%2Firis"');
  });
  test('"What changed in v2.0.0" shows the diff of the two newest versions, breaking changes highlighted', async () => {
    const html = await (await get('/docs/models/iris')).text();
    expect(html).toContain('What changed in v2.0.0 (since v1.0.0)');
    expect(html).toContain('data-breaking="true"');
    expect(html).toMatch(
      /<li class="breaking" data-kind="schema.property.renamed"><span class="badge breaking">BREAKING<\/span>POST \/predict: request body: property &quot;features&quot; renamed to &quot;measurements&quot;/,
    );
    expect(html).toMatch(/<li class="nonbreaking" data-kind="operation.added">.*POST \/explain: operation explain added/);
    expect(html).toContain('<strong class="breaking">1 breaking</strong>, 2 non-breaking changes');
  });
  test('shows a curl command for the main operation', async () => {
    const html = await (await get('/docs/models/iris')).text();
    expect(html).toContain(`curl -sS -X POST &#39;http://gw.test:8080/iris/predict&#39; -H &quot;Authorization: Bearer $TOKEN&quot;`);
  });
  test('server-side operations table lists every operation with access', async () => {
    const html = await (await get('/docs/models/grades')).text();
    for (const id of ['listCourses', 'getGrades', 'setGrades', 'me', 'groupOnly']) expect(html).toContain(`data-operation-id="${id}"`);
    expect(html).toMatch(/restricted \(roles: teacher; scopes: grades:write\)/);
    expect(html).toContain('This is the first published version.');
  });
  test("the operations table shows each operation's rate limits", async () => {
    const limited = memoryStore([[VARIED.find((s) => s.metadata.name === 'limited')!]], 'http://gw.test:8080');
    store.apis.push(limited.apis[0]);
    try {
      const html = await (await get('/docs/models/limited')).text();
      expect(html).toContain('<th>Rate limits</th>');
      expect(html).toMatch(
        /data-operation-id="predict">.*<td class="rate-limit">per-second: 10\/1s \(\+5 burst\) per caller; per-day: 10000\/24h per API<\/td>/,
      );
      expect(html).toMatch(/data-operation-id="explain">.*<td class="rate-limit">per-minute: 6\/1m per address<\/td>/);
      expect(html).toMatch(/data-operation-id="health">.*<td class="rate-limit">none<\/td>/);
    } finally {
      store.apis.pop();
    }
  });
  test('?from=<version> compares against an earlier version; unknown version → 404', async () => {
    const html = await (await get('/docs/models/iris?from=2.0.0')).text();
    expect(html).toContain('No changes to operations');
    await expectProblem('/docs/models/iris?from=0.9', /no published version "0.9"/);
  });
  test('unknown service → 404 problem+json', async () => {
    await expectProblem('/docs/models/nope', /no published API "models\/nope"/);
    await expectProblem('/docs/models/nope/extra', /no such page/);
  });
});

describe('assets from swagger-ui-dist (no CDN)', () => {
  test('bundle and css are served with caching; the petstore initializer is not', async () => {
    const js = await get('/docs/assets/swagger-ui-bundle.js');
    expect(js.status).toBe(200);
    expect(js.headers.get('content-type')).toMatch(/javascript/);
    expect(js.headers.get('cache-control')).toMatch(/max-age=86400/);
    const text = await js.text();
    expect(text.length).toBeGreaterThan(1_000_000);
    expect(text).toContain('SwaggerUIBundle');
    expect((await get('/docs/assets/swagger-ui.css')).status).toBe(200);
    await expectProblem('/docs/assets/swagger-initializer.js', /no asset/);
    await expectProblem('/docs/assets/..%2Fpackage.json', /no asset/);
  });
  test('kea-init.js enables credentials (SSO cookie) and waits on the spec URL', async () => {
    const r = await get('/docs/assets/kea-init.js');
    expect(r.headers.get('content-type')).toMatch(/javascript/);
    const js = await r.text();
    expect(js).toContain('withCredentials: true');
    expect(js).toContain("getAttribute('data-spec-url')");
    expect(() => new Function(js)).not.toThrow(); // syntactically valid
  });
});

describe('/openapi documents', () => {
  test('.json is the published document', async () => {
    const r = await get('/openapi/models/iris.json');
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toMatch(/^application\/json/);
    expect(await r.json()).toEqual(JSON.parse(JSON.stringify(store.get('models/iris')!.openapi)));
  });
  test('.yaml parses to the same document (no YAML aliases)', async () => {
    const r = await get('/openapi/models/mnist.yaml');
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toMatch(/^application\/yaml/);
    const text = await r.text();
    expect(text).not.toMatch(/[&*]a\d+\b/);
    expect(YAML.parse(text)).toEqual(JSON.parse(JSON.stringify(store.get('models/mnist')!.openapi)));
  });
  test('bare /openapi/<ns>/<name> (seed path) gives JSON, or YAML when asked', async () => {
    const j = await get('/openapi/models/iris');
    expect(j.headers.get('content-type')).toMatch(/^application\/json/);
    expect(((await j.json()) as OpenAPIObject).info.version).toBe('2.0.0');
    const y = await get('/openapi/models/iris', { headers: { accept: 'application/yaml' } });
    expect(y.headers.get('content-type')).toMatch(/^application\/yaml/);
    expect(YAML.parse(await y.text()).info.version).toBe('2.0.0');
  });
  test('?version= serves an earlier published document', async () => {
    const doc = (await (await get('/openapi/models/iris.json?version=1.0.0')).json()) as OpenAPIObject;
    expect(doc.info.version).toBe('1.0.0');
    expect(doc.paths['/explain']).toBeUndefined();
    await expectProblem('/openapi/models/iris.json?version=3', /no published version/);
  });
  test('unknown ids and bad names → 404 problem+json', async () => {
    await expectProblem('/openapi/models/nope.json', /no published API "models\/nope"/);
    await expectProblem('/openapi/models/iris.txt', /no published API "models\/iris.txt" \(use \/openapi/);
    await expectProblem('/openapi/models', /no such page/);
  });
  test('/openapi.json aggregates every service and validates as OpenAPI 3.0', async () => {
    const r = await get('/openapi.json');
    expect(r.status).toBe(200);
    const doc = (await r.json()) as OpenAPIObject;
    expect(await validateOpenApi(doc)).toEqual([]);
    expect(doc.servers![0].url).toBe('http://gw.test:8080');
    expect(Object.keys(doc.paths)).toEqual(expect.arrayContaining(['/iris/predict', '/iris/explain', '/grades/set_grades', '/mnist/v1/models/mnist:predict']));
    expect(doc.paths['/iris/predict'].post!.operationId).toBe('models.iris.predict');
    const y = await get('/openapi.yaml');
    expect(YAML.parse(await y.text())).toEqual(doc);
  });
});

describe('/methods', () => {
  test('lists operations with service, operationId, method, path, summary, access', async () => {
    const r = await get('/methods');
    expect(r.status).toBe(200);
    const list = (await r.json()) as Array<Record<string, unknown>>;
    expect(list).toContainEqual({
      service: 'models/iris',
      operationId: 'explain',
      method: 'POST',
      path: '/iris/explain',
      summary: 'Feature importances for one prediction',
      access: { mode: 'authenticated' },
    });
    expect(list).toContainEqual(
      expect.objectContaining({
        service: 'models/grades',
        operationId: 'getGrades',
        path: '/grades/get_grades',
        access: { mode: 'restricted', roles: ['student', 'teacher'] },
      }),
    );
    expect(
      list
        .filter((m) => m.service === 'models/mnist')
        .map((m) => m.operationId)
        .sort(),
    ).toEqual(['modelMetadata', 'modelStatus', 'predict']);
    const only = (await (await get('/methods?service=models/grades')).json()) as unknown[];
    expect(only).toHaveLength(5);
  });
  test('reflects store changes (a newly published API appears)', async () => {
    const before = ((await (await get('/methods')).json()) as unknown[]).length;
    const extra = memoryStore([[api('late', { operations: [{ operationId: 'hello', method: 'GET', path: '/hello' }] })]], 'http://gw.test:8080');
    store.apis.push(extra.apis[0]);
    try {
      const after = (await (await get('/methods')).json()) as Array<{ service: string }>;
      expect(after.length).toBe(before + 1);
      expect(after.some((m) => m.service === 'models/late')).toBe(true);
      expect((await get('/docs')).ok).toBe(true);
    } finally {
      store.apis.pop();
    }
  });
});
