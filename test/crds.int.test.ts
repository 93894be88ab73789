/**
 * Admission tests for KEA's CRDs (manifests/crds) on the real kube-apiserver started by
 * test/global-setup.ts (which installs the CRDs, so a CEL rule over the API server's cost
 * budget fails the whole suite there).
 *
 * - Every fixture in test/fixtures/invalid is created and must be rejected with HTTP 422 and
 *   exactly the causes (field + message) listed in EXPECTED below.
 * - The samples in manifests/samples are accepted, stored verbatim (free-form JSON Schema
 *   kept), and their status subresource feeds the printer columns.
 * - `kubectl explain` prints the field descriptions, and every field of both CRDs has one.
 */
import { execFile } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ApiException, KubeConfig, KubernetesObjectApi, type KubernetesObject } from '@kubernetes/client-node';
import { parseAllDocuments, parse } from 'yaml';

const run = promisify(execFile);
const ROOT = process.cwd();
/** A fresh namespace per run: without kube-controller-manager a deleted namespace never goes away. */
const NS = `kea-crds-${Date.now().toString(36)}`;
const INVALID_DIR = join(ROOT, 'test/fixtures/invalid');
const SAMPLES_DIR = join(ROOT, 'manifests/samples');
const CRD_DIR = join(ROOT, 'manifests/crds');

interface Cause {
  field: string;
  message: string;
}

const RESERVED = 'basePath must not be under a gateway path reserved by KEA (/docs, /openapi, /auth, /services, /router, /logs, /methods, /openapi.json)';

/** fixture file → the exact causes the API server must return (order-insensitive). */
const EXPECTED: Record<string, Cause[]> = {
  // ------------------------------------------------------------------ MLService
  'mls-weights-sum.yaml': [{ field: 'spec.revisions', message: 'Invalid value: "array": revision weights must sum to 100 (percent), got 90' }],
  'mls-duplicate-revision.yaml': [{ field: 'spec.revisions', message: 'Invalid value: "array": revision names must be unique: v1 is used more than once' }],
  'mls-custom-without-image.yaml': [
    { field: 'spec.revisions', message: 'Required value: image is required on every revision when framework is custom; missing on: ["v2"]' },
  ],
  'mls-no-revisions.yaml': [{ field: 'spec.revisions', message: 'Invalid value: "array": at least one revision is required' }],
  'mls-unknown-framework.yaml': [
    { field: 'spec.framework', message: 'Unsupported value: "keras": supported values: "sklearn", "pytorch", "tensorflow", "onnx", "custom"' },
  ],
  'mls-bad-model-uri.yaml': [
    { field: 'spec.revisions[0].modelUri', message: 'Invalid value: "string": modelUri must be an s3://, gs://, pvc:// or file:// URI' },
  ],
  'mls-name-too-long.yaml': [
    {
      // A rule on the root object can read metadata.name but cannot point fieldPath at it.
      field: '<nil>',
      message:
        'Invalid value: "object": metadata.name must be a DNS-1035 label (lower case, starting with a letter) of at most 42 characters, so that <name>-<revision> fits in 63 characters',
    },
  ],
  // ------------------------------------------------------------------ ApiSchema
  'apis-two-targets.yaml': [{ field: 'spec.target', message: 'Invalid value: "object": exactly one of target.mlService or target.service must be set' }],
  'apis-no-target.yaml': [{ field: 'spec.target', message: 'Invalid value: "object": exactly one of target.mlService or target.service must be set' }],
  'apis-duplicate-operation-id.yaml': [
    { field: 'spec.operations', message: 'Invalid value: "array": operationIds must be unique: predict is used more than once' },
  ],
  'apis-duplicate-method-path.yaml': [
    { field: 'spec.operations', message: 'Invalid value: "array": method and path must be unique across operations: POST /predict is declared more than once' },
  ],
  'apis-undeclared-path-param.yaml': [
    {
      field: 'spec.operations[0].path',
      message:
        'Invalid value: "object": every {param} in path must be declared once in parameters with in: path; /items/{id} has 1 template parameter(s) but only 0 in: path parameter(s)',
    },
  ],
  'apis-duplicate-parameter.yaml': [{ field: 'spec.operations[0].parameters[1]', message: 'Duplicate value: {"in":"query","name":"student"}' }],
  'apis-path-param-not-required.yaml': [
    { field: 'spec.operations[0].parameters[0].required', message: 'Required value: path parameter id must set required: true' },
  ],
  'apis-path-param-not-in-path.yaml': [
    {
      field: 'spec.operations[0].parameters',
      message: 'Invalid value: "object": every parameter with in: path must appear in path as {name}; not in /items/{id}: ["version"]',
    },
  ],
  'apis-basepath-trailing-slash.yaml': [{ field: 'spec.basePath', message: `Invalid value: "string": basePath must not end with '/'` }],
  'apis-basepath-no-leading-slash.yaml': [{ field: 'spec.basePath', message: `Invalid value: "string": basePath must start with '/'` }],
  'apis-basepath-reserved.yaml': [{ field: 'spec.basePath', message: `Invalid value: "string": ${RESERVED}` }],
  'apis-basepath-reserved-openapi-json.yaml': [{ field: 'spec.basePath', message: `Invalid value: "string": ${RESERVED}` }],
  'apis-cache-ttl-too-long.yaml': [
    {
      field: 'spec.operations[0].cache.ttlSeconds',
      message: 'Invalid value: 172800: spec.operations[0].cache.ttlSeconds in body should be less than or equal to 86400',
    },
  ],
  'apis-bad-timeout.yaml': [
    { field: 'spec.operations[0].timeout', message: 'Invalid value: "string": timeout must be a Gateway API Duration (GEP-2257) such as 5s, 500ms or 1m30s' },
  ],
  'apis-timeout-too-long.yaml': [{ field: 'spec.defaults.timeout', message: 'Invalid value: "string": timeout must be greater than 0s and at most 1h' }],
  'apis-no-operations.yaml': [
    {
      field: 'spec.operations',
      message: 'Required value: spec.operations must list at least one operation unless spec.source.openapi or spec.inference is set',
    },
  ],
  'apis-bad-method.yaml': [
    { field: 'spec.operations[0].method', message: 'Unsupported value: "FETCH": supported values: "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"' },
  ],
  'apis-path-no-leading-slash.yaml': [{ field: 'spec.operations[0].path', message: `Invalid value: "string": path must start with '/'` }],
  'apis-partial-segment-template.yaml': [
    {
      field: 'spec.operations[0].path',
      message: `Invalid value: "string": path segments must be literal (letters, digits, '.', '_', '~', ':', '@', '-') or one whole template parameter such as {id}, with no empty segments or trailing '/'`,
    },
  ],
  'apis-restricted-without-roles.yaml': [
    { field: 'spec.operations[0].access', message: 'Invalid value: "object": access.mode restricted requires at least one of roles, groups or scopes' },
  ],
  'apis-roles-without-restricted.yaml': [
    { field: 'spec.operations[0].access', message: 'Invalid value: "object": roles, groups and scopes are only allowed with access.mode restricted' },
  ],
  'apis-get-with-body.yaml': [{ field: 'spec.operations[0].requestBody', message: 'Forbidden: requestBody is not allowed on GET or HEAD operations' }],
  'apis-bad-response-key.yaml': [
    {
      field: 'spec.operations[0].responses',
      message: 'Invalid value: "object": responses keys must be HTTP status codes such as "200" or "4XX", or "default"',
    },
  ],
  'apis-openapi-path-double-slash.yaml': [
    {
      field: 'spec.source.openapi.path',
      message: `Invalid value: "string": source.openapi.path must not contain '//' (a URL parser reads a leading '//host' as another host)`,
    },
  ],
  'apis-openapi-path-backslash.yaml': [
    {
      field: 'spec.source.openapi.path',
      message: `Invalid value: "string": source.openapi.path must not contain a backslash (a URL parser reads it as '/', so '/\\host' names another host)`,
    },
  ],
  'apis-inference-on-service.yaml': [
    {
      field: 'spec.inference',
      message: `Invalid value: "object": spec.inference requires spec.target.mlService: an inference signature describes an MLService's predefined runtime`,
    },
  ],
};

/** The API server adds this note when schema errors kept CEL rules from running; not a rule of ours. */
const NOT_CHECKED = 'some validation rules were not checked because the object was invalid';

let kc: KubeConfig;
let client: KubernetesObjectApi;

function kubectl(...args: string[]): Promise<{ stdout: string; stderr: string }> {
  return run('kubectl', args, { env: process.env, maxBuffer: 16 << 20 });
}

function loadYaml(path: string): KubernetesObject[] {
  return parseAllDocuments(readFileSync(path, 'utf8'))
    .map((d) => d.toJS() as KubernetesObject | null)
    .filter((o): o is KubernetesObject => o !== null);
}

function withNs<T extends KubernetesObject>(o: T): T {
  return { ...o, metadata: { ...o.metadata, namespace: NS } };
}

/** Creates the object; resolves to the API server's rejection causes, or throws if it was accepted. */
async function rejectionOf(obj: KubernetesObject): Promise<{ code: number; causes: Cause[] }> {
  try {
    await client.create(withNs(obj));
  } catch (e) {
    if (!(e instanceof ApiException)) throw e;
    const status = JSON.parse(String(e.body)) as { details?: { causes?: Array<{ field?: string; message: string }> } };
    const causes = (status.details?.causes ?? []).filter((c) => !c.message.includes(NOT_CHECKED)).map((c) => ({ field: c.field ?? '', message: c.message }));
    return { code: e.code, causes };
  }
  throw new Error(`${obj.kind} ${obj.metadata?.name} was accepted, but it is invalid`);
}

const byField = (a: Cause, b: Cause) => (a.field + a.message).localeCompare(b.field + b.message);

beforeAll(async () => {
  if (!process.env.KUBECONFIG) throw new Error('KUBECONFIG is not set: run with the integration project (test/global-setup.ts)');
  kc = new KubeConfig();
  kc.loadFromDefault();
  client = KubernetesObjectApi.makeApiClient(kc);
  try {
    await client.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } });
  } catch (e) {
    if (!(e instanceof ApiException && e.code === 409)) throw e;
  }
});

/**
 * The API server is shared by every integration suite, and the samples stored here claim the
 * gateway paths (/grades, /iris) that other suites' controllers expect to own: delete them.
 */
afterAll(async () => {
  await kubectl('delete', 'apischemas,mlservices,services', '--all', '-n', NS, '--wait=false');
});

describe('CRD installation', () => {
  test('both CRDs are Established with their short names and status subresource', async () => {
    for (const [crd, short] of [
      ['apischemas.kea.dev', 'apis'],
      ['mlservices.kea.dev', 'mls'],
    ] as const) {
      const { stdout } = await kubectl('get', 'crd', crd, '-o', 'json');
      const obj = JSON.parse(stdout);
      const established = obj.status.conditions.find((c: { type: string }) => c.type === 'Established');
      expect(established?.status).toBe('True');
      expect(obj.spec.names.shortNames).toEqual([short]);
      expect(obj.spec.versions).toHaveLength(1);
      expect(obj.spec.versions[0]).toMatchObject({ name: 'v1alpha1', served: true, storage: true, subresources: { status: {} } });
      expect(obj.spec.scope).toBe('Namespaced');
    }
  });

  test('every field of both CRDs has a description', () => {
    const missing: string[] = [];
    const walk = (schema: Record<string, unknown>, path: string) => {
      const props = (schema.properties ?? {}) as Record<string, Record<string, unknown>>;
      for (const [name, sub] of Object.entries(props)) {
        const p = `${path}.${name}`;
        if (name !== 'metadata' && typeof sub.description !== 'string') missing.push(p);
        walk(sub, p);
      }
      if (schema.items) walk(schema.items as Record<string, unknown>, `${path}[]`);
      if (schema.additionalProperties && typeof schema.additionalProperties === 'object') {
        walk(schema.additionalProperties as Record<string, unknown>, `${path}{}`);
      }
    };
    const files = readdirSync(CRD_DIR).filter((f) => f.endsWith('.yaml'));
    expect(files.sort()).toEqual(['kea.dev_apischemas.yaml', 'kea.dev_mlservices.yaml']);
    let fields = 0;
    for (const f of files) {
      const crd = parse(readFileSync(join(CRD_DIR, f), 'utf8'));
      const root = crd.spec.versions[0].schema.openAPIV3Schema;
      expect(typeof root.description).toBe('string');
      const before = missing.length;
      walk(root, crd.spec.names.kind);
      fields += JSON.stringify(root).split('"description"').length;
      expect(missing.slice(before)).toEqual([]);
    }
    expect(fields).toBeGreaterThan(150);
  });
});

describe('invalid resources are rejected at admission with precise messages', () => {
  const files = readdirSync(INVALID_DIR)
    .filter((f) => f.endsWith('.yaml'))
    .sort();

  test('every fixture has an expectation and vice versa (at least 12 distinct cases)', () => {
    expect(files).toEqual(Object.keys(EXPECTED).sort());
    expect(files.length).toBeGreaterThanOrEqual(12);
  });

  test.each(files)('%s', async (file) => {
    const docs = loadYaml(join(INVALID_DIR, file));
    expect(docs).toHaveLength(1);
    const { code, causes } = await rejectionOf(docs[0]);
    expect(code).toBe(422);
    expect([...causes].sort(byField)).toEqual([...EXPECTED[file]].sort(byField));
  });

  test('the largest allowed ApiSchema (64 operations, 16 parameters and 4 rate limits each) fits the runtime CEL budget; 65 do not', async () => {
    // The longest names and Durations the schema admits, so every CEL rule runs at its largest.
    const rateLimits = (prefix: string) =>
      ['1', '2', '3', '4'].map((n) => ({ name: `${prefix}-${n}`.padEnd(31, 'x') + n, requests: 1_000_000_000, period: '1h59m59s999ms', burst: 1_000_000_000 }));
    const operation = (i: number) => ({
      operationId: `op_${i}`,
      method: 'POST',
      path: `/models/{model}/versions/{version}/items_${i}/{p2}/{p3}/{p4}/{p5}/{p6}/{p7}`,
      parameters: [
        ...['model', 'version', 'p2', 'p3', 'p4', 'p5', 'p6', 'p7'].map((name) => ({ name, in: 'path', required: true, schema: { type: 'string' } })),
        ...Array.from({ length: 8 }, (_, j) => ({ name: `q${j}`, in: 'query', schema: { type: 'integer' } })),
      ],
      requestBody: { schema: { type: 'object' } },
      access: { mode: 'restricted', roles: ['a', 'b'], scopes: ['s'] },
      cache: { ttlSeconds: 60, scope: 'identity' },
      timeout: '1m30s',
      rateLimit: rateLimits(`op-${i}`),
    });
    const big = (n: number, name: string) => ({
      apiVersion: 'kea.dev/v1alpha1',
      kind: 'ApiSchema',
      metadata: { name, namespace: NS },
      spec: {
        target: { mlService: { name: 'iris' } },
        basePath: `/${name}`,
        info: { title: name, version: '1' },
        defaults: { rateLimit: rateLimits('default'), rateLimitFailMode: 'closed' },
        operations: Array.from({ length: n }, (_, i) => operation(i)),
      },
    });
    const t = Date.now();
    await client.create(big(64, 'big-64'));
    const ms = Date.now() - t;
    process.stdout.write(`[crds] create of a 64-operation ApiSchema took ${ms} ms\n`);
    const { code, causes } = await rejectionOf(big(65, 'big-65'));
    expect(code).toBe(422);
    expect(causes).toEqual([{ field: 'spec.operations', message: 'Too many: 65: must have at most 64 items' }]);
  });

  test('none of the invalid resources was stored', async () => {
    const { stdout } = await kubectl('get', 'apischemas,mlservices', '-n', NS, '-o', 'name');
    const stored = stdout.split('\n').filter(Boolean);
    const invalidNames = files.map((f) => `${loadYaml(join(INVALID_DIR, f))[0].metadata?.name}`);
    for (const s of stored) expect(invalidNames).not.toContain(s.split('/')[1]);
  });
});

describe('the samples are accepted', () => {
  const sampleFiles = readdirSync(SAMPLES_DIR)
    .filter((f) => f.endsWith('.yaml'))
    .sort();

  test('kubectl apply --server-side accepts every sample', async () => {
    expect(sampleFiles).toEqual(expect.arrayContaining(['grades-apischema.yaml', 'iris-apischema.yaml', 'iris-mlservice.yaml']));
    const args = ['apply', '--server-side', '--field-manager=kea-crds-test', '-n', NS];
    for (const f of sampleFiles) args.push('-f', join(SAMPLES_DIR, f));
    const { stdout } = await kubectl(...args);
    expect(stdout).toContain('mlservice.kea.dev/iris serverside-applied');
    expect(stdout).toContain('apischema.kea.dev/iris serverside-applied');
    expect(stdout).toContain('apischema.kea.dev/grades serverside-applied');
    expect(stdout).toContain('apischema.kea.dev/translator serverside-applied');
  });

  test('the iris MLService is stored with its 80/20 split', async () => {
    const mls = await client.read<
      KubernetesObject & {
        spec: { framework: string; revisions: Array<{ name: string; weight: number; image?: string }> };
      }
    >({ apiVersion: 'kea.dev/v1alpha1', kind: 'MLService', metadata: { name: 'iris', namespace: NS } });
    expect(mls.spec.framework).toBe('custom');
    expect(mls.spec.revisions.map((r) => [r.name, r.weight])).toEqual([
      ['v1', 80],
      ['v2', 20],
    ]);
  });

  test('free-form JSON Schema in the iris ApiSchema is kept verbatim', async () => {
    const { stdout } = await kubectl('get', 'apischema', 'iris', '-n', NS, '-o', 'json');
    const stored = JSON.parse(stdout);
    const sample = loadYaml(join(SAMPLES_DIR, 'iris-apischema.yaml'))[0] as KubernetesObject & { spec: Record<string, unknown> };
    expect(stored.spec).toEqual(sample.spec);
    const op = stored.spec.operations[0];
    expect(op.operationId).toBe('predict');
    expect(op.requestBody.schema.additionalProperties).toBe(false);
    expect(op.requestBody.schema.properties.features.items).toEqual({ $ref: '#/components/schemas/Measurements' });
    expect(stored.spec.components.schemas.Measurements.minItems).toBe(4);
  });

  test('the grades ApiSchema targets the hand-written Service with per-operation roles', async () => {
    const { stdout } = await kubectl('get', 'apis', 'grades', '-n', NS, '-o', 'json');
    const spec = JSON.parse(stdout).spec;
    expect(spec.target).toEqual({ service: { name: 'grades', port: 8080 } });
    const access = Object.fromEntries(spec.operations.map((o: { operationId: string; access: unknown }) => [o.operationId, o.access]));
    expect(access).toEqual({
      get_grades: { mode: 'restricted', roles: ['student', 'teacher'] },
      set_grades: { mode: 'restricted', roles: ['teacher'] },
    });
    await kubectl('get', 'service', 'grades', '-n', NS);
  });

  test('status is a subresource: it feeds the printer columns and a spec write cannot change it', async () => {
    const status = {
      status: {
        observedGeneration: 1,
        operationCount: 1,
        docsUrl: `http://gateway.example/docs/${NS}/iris`,
        conditions: [
          { type: 'Accepted', status: 'True', reason: 'Accepted', message: 'ok', observedGeneration: 1, lastTransitionTime: '2026-01-01T00:00:00Z' },
          {
            type: 'Programmed',
            status: 'False',
            reason: 'BackendNotFound',
            message: 'refused by the gateway',
            observedGeneration: 1,
            lastTransitionTime: '2026-01-01T00:00:00Z',
          },
        ],
      },
    };
    await kubectl('patch', 'apischema', 'iris', '-n', NS, '--subresource=status', '--type=merge', '-p', JSON.stringify(status));
    await kubectl(
      'patch',
      'mlservice',
      'iris',
      '-n',
      NS,
      '--subresource=status',
      '--type=merge',
      '-p',
      JSON.stringify({
        status: {
          trafficSplit: 'v1=80,v2=20',
          conditions: [
            { type: 'Programmed', status: 'Unknown', reason: 'Pending', message: 'waiting for the gateway', lastTransitionTime: '2026-01-01T00:00:00Z' },
            { type: 'Ready', status: 'False', reason: 'Progressing', message: 'waiting', lastTransitionTime: '2026-01-01T00:00:00Z' },
          ],
        },
      }),
    );
    const apis = (await kubectl('get', 'apis', 'iris', '-n', NS)).stdout.split('\n');
    expect(apis[0].split(/\s{2,}/)).toEqual(['NAME', 'BASE PATH', 'VERSION', 'OPERATIONS', 'ACCEPTED', 'PROGRAMMED', 'REASON', 'DOCS URL', 'AGE']);
    expect(apis[1].split(/\s+/).slice(0, 8)).toEqual([
      'iris',
      '/iris',
      '1.0.0',
      '1',
      'True',
      'False',
      'BackendNotFound',
      `http://gateway.example/docs/${NS}/iris`,
    ]);
    // -o wide adds the Programmed message.
    const wide = (await kubectl('get', 'apis', 'iris', '-n', NS, '-o', 'wide')).stdout.split('\n');
    expect(wide[0].split(/\s{2,}/)).toContain('MESSAGE');
    expect(wide[1]).toContain('refused by the gateway');
    const mls = (await kubectl('get', 'mls', 'iris', '-n', NS)).stdout.split('\n');
    expect(mls[0].split(/\s+/)).toEqual(['NAME', 'FRAMEWORK', 'TRAFFIC', 'PROGRAMMED', 'REASON', 'READY', 'AGE']);
    expect(mls[1].split(/\s+/).slice(0, 6)).toEqual(['iris', 'custom', 'v1=80,v2=20', 'Unknown', 'Pending', 'False']);

    // A status written through the main resource is ignored (status subresource semantics).
    await kubectl('patch', 'apischema', 'iris', '-n', NS, '--type=merge', '-p', JSON.stringify({ status: { operationCount: 99 } }));
    const after = JSON.parse((await kubectl('get', 'apis', 'iris', '-n', NS, '-o', 'json')).stdout);
    expect(after.status.operationCount).toBe(1);
  });
});

/**
 * Issue 10 item 3: `spec.source.openapi.path` is fetched by the controller with the internal
 * token, so admission accepts only a plain absolute path on the target. Each rejected path
 * names the rule it breaks (the same rules as controller/discover `openApiPathProblem`).
 */
describe('spec.source.openapi.path admits only a plain path on the target', () => {
  const withPath = (name: string, path: string, extra: Record<string, unknown> = {}) => ({
    apiVersion: 'kea.dev/v1alpha1',
    kind: 'ApiSchema',
    metadata: { name, namespace: NS },
    spec: {
      target: { service: { name: 'legacy', port: 8000 } },
      basePath: `/${name}`,
      info: { title: name, version: '1' },
      source: { openapi: { path, ...extra } },
    },
  });
  const rule = (m: string) => `Invalid value: "string": source.openapi.path ${m}`;
  const DOUBLE = rule("must not contain '//' (a URL parser reads a leading '//host' as another host)");
  const BACKSLASH = rule("must not contain a backslash (a URL parser reads it as '/', so '/\\host' names another host)");
  const ASCII = rule('may contain only printable ASCII characters (no spaces, control or non-ASCII characters)');
  const ENCODED = rule("must not contain a percent-encoded '/', backslash or NUL (%2F, %5C, %00)");
  const DOTS = rule("must not contain '.' or '..' segments");
  const ABSOLUTE = rule("must be an absolute path on the target starting with '/', not a URL");

  test.each<[string, string[]]>([
    ['//evil.example/x', [DOUBLE]],
    ['/\\evil.example/x', [BACKSLASH]],
    ['\\\\evil.example/x', [ABSOLUTE, BACKSLASH]],
    ['http://evil.example/x', [ABSOLUTE, DOUBLE]],
    ['/\t/evil.example/x', [ASCII]],
    ['/\n/evil.example/x', [ASCII]],
    ['/x y', [ASCII]],
    ['/%2F%2Fevil.example/x', [ENCODED]],
    ['/%5cevil.example', [ENCODED]],
    ['/../admin', [DOTS]],
    ['/a/./openapi.json', [DOTS]],
  ])('%j is rejected', async (path, messages) => {
    const { code, causes } = await rejectionOf(withPath('bad-path', path));
    expect(code).toBe(422);
    expect(causes.map((c) => c.field)).toEqual(messages.map(() => 'spec.source.openapi.path'));
    expect(causes.map((c) => c.message).sort()).toEqual([...messages].sort());
  });

  test('plain paths are accepted, and so is trustAccess', async () => {
    await client.create(withPath('path-plain', '/openapi.json'));
    await client.create(withPath('path-nested', '/api/v1/openapi.json?format=json', { trustAccess: true }));
    const { stdout } = await kubectl('get', 'apischema', 'path-nested', '-n', NS, '-o', 'json');
    expect(JSON.parse(stdout).spec.source.openapi).toEqual({ path: '/api/v1/openapi.json?format=json', trustAccess: true });
  });
});

describe('kubectl explain reads the descriptions', () => {
  test('apischema.spec.operations', async () => {
    const { stdout } = await kubectl('explain', 'apischema.spec.operations');
    expect(stdout).toContain('KIND:       ApiSchema');
    expect(stdout).toMatch(/operationIds are unique, and so is each method and\s+path pair/);
    expect(stdout).toMatch(/operationId\s+<string> -required-\s+Unique name of the operation within the ApiSchema/);
    expect(stdout).toMatch(/cache\s+<Object>\s+Response caching for the operation/);
    expect(stdout).toMatch(/timeout\s+<string>\s+Upstream timeout, a Gateway API Duration/);
  });

  test('mlservice.spec.revisions.weight', async () => {
    const { stdout } = await kubectl('explain', 'mlservice.spec.revisions.weight');
    expect(stdout).toMatch(/Share of traffic routed to this revision, in percent \(0-100\)/);
  });
});

/**
 * Issue 10 item 5: `spec.security`. The Content-Security-Policy is copied into an HTTPRoute
 * ResponseHeaderModifier in passthrough mode, whose values nginx-gateway-fabric refuses when
 * they hold `"`, `$` or `\`; header values must not carry control characters (RFC 9110 §5.5).
 */
describe('spec.security admits only well-formed credential names and CSP values', () => {
  const withSecurity = (name: string, security: Record<string, unknown>) => ({
    apiVersion: 'kea.dev/v1alpha1',
    kind: 'ApiSchema',
    metadata: { name, namespace: NS },
    spec: {
      target: { service: { name: 'legacy', port: 8000 } },
      basePath: `/${name}`,
      info: { title: name, version: '1' },
      policy: { mode: 'passthrough' },
      security,
      operations: [{ operationId: 'page', method: 'GET', path: '/page' }],
    },
  });
  const CSP = 'Invalid value: "string": contentSecurityPolicy must be printable ASCII without double quotes, dollar signs or backslashes';

  test.each(["default-src 'none'\nX-Injected: 1", 'default-src "self"', "script-src 'nonce-$request_id'", "default-src 'none' \\"])(
    'contentSecurityPolicy %j is rejected',
    async (csp) => {
      const { code, causes } = await rejectionOf(withSecurity('bad-csp', { contentSecurityPolicy: csp }));
      expect(code).toBe(422);
      expect(causes).toEqual([{ field: 'spec.security.contentSecurityPolicy', message: CSP }]);
    },
  );

  test('forwardCredentials names only Authorization and Cookie', async () => {
    const { code, causes } = await rejectionOf(withSecurity('bad-creds', { forwardCredentials: ['X-Api-Key'] }));
    expect(code).toBe(422);
    expect(causes.map((c) => c.field)).toEqual(['spec.security.forwardCredentials[0]']);
    expect(causes[0].message).toMatch(/Unsupported value: "X-Api-Key": supported values: "Authorization", "Cookie"/);
  });

  test('a valid spec.security is stored as written', async () => {
    const security = {
      forwardCredentials: ['Cookie', 'Authorization'],
      contentSecurityPolicy: "default-src 'self'; img-src https://cdn.example; frame-ancestors 'none'",
    };
    await client.create(withSecurity('security-ok', security));
    const { stdout } = await kubectl('get', 'apischema', 'security-ok', '-n', NS, '-o', 'json');
    expect(JSON.parse(stdout).spec.security).toEqual(security);
  });
});

/**
 * Issue 13: `rateLimit` on an operation and in `spec.defaults`, and
 * `spec.defaults.rateLimitFailMode`. Each refused limit names the field and the rule it breaks.
 */
describe('rate limits are admitted only within their bounds', () => {
  type Limit = Record<string, unknown>;
  const ok: Limit = { name: 'per-minute', requests: 100, period: '1m' };
  const withLimits = (name: string, defaults: Record<string, unknown> | undefined, own?: Limit[]) => ({
    apiVersion: 'kea.dev/v1alpha1',
    kind: 'ApiSchema',
    metadata: { name, namespace: NS },
    spec: {
      target: { service: { name: 'legacy', port: 8000 } },
      basePath: `/${name}`,
      info: { title: name, version: '1' },
      ...(defaults ? { defaults } : {}),
      operations: [
        { operationId: 'predict', method: 'POST', path: '/predict', ...(own ? { rateLimit: own } : {}) },
        { operationId: 'health', method: 'GET', path: '/health', rateLimit: [] },
      ],
    },
  });
  const OP = 'spec.operations[0].rateLimit';
  const FORMAT = 'Invalid value: "string": period must be a Gateway API Duration (GEP-2257) such as 1s, 1m or 24h';
  const RANGE = 'Invalid value: "string": period must be at least 1s and at most 24h';

  test.each<[string, Limit[], Cause[]]>([
    [
      'a duplicate name',
      [ok, { ...ok, period: '1h' }],
      [{ field: OP, message: 'Invalid value: "array": rateLimit names must be unique: per-minute is used more than once' }],
    ],
    ['a period below 1s', [{ ...ok, period: '999ms' }], [{ field: `${OP}[0].period`, message: RANGE }]],
    ['a period above 24h', [{ ...ok, period: '24h1s' }], [{ field: `${OP}[0].period`, message: RANGE }]],
    ['a period that is not a Duration', [{ ...ok, period: '1 minute' }], [{ field: `${OP}[0].period`, message: FORMAT }]],
    ['a period in days', [{ ...ok, period: '1d' }], [{ field: `${OP}[0].period`, message: FORMAT }]],
    [
      'an upper-case name',
      [{ ...ok, name: 'Per_Minute' }],
      [{ field: `${OP}[0].name`, message: `Invalid value: "Per_Minute": ${OP}[0].name in body should match '^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$'` }],
    ],
    [
      'a name ending in -',
      [{ ...ok, name: 'per-' }],
      [{ field: `${OP}[0].name`, message: `Invalid value: "per-": ${OP}[0].name in body should match '^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$'` }],
    ],
    [
      'zero requests',
      [{ ...ok, requests: 0 }],
      [{ field: `${OP}[0].requests`, message: `Invalid value: 0: ${OP}[0].requests in body should be greater than or equal to 1` }],
    ],
    [
      'more than 1e9 requests',
      [{ ...ok, requests: 1_000_000_001 }],
      [{ field: `${OP}[0].requests`, message: `Invalid value: 1000000001: ${OP}[0].requests in body should be less than or equal to 1000000000` }],
    ],
    [
      'a negative burst',
      [{ ...ok, burst: -1 }],
      [{ field: `${OP}[0].burst`, message: `Invalid value: -1: ${OP}[0].burst in body should be greater than or equal to 0` }],
    ],
    [
      'an unknown key',
      [{ ...ok, key: 'tenant' }],
      [{ field: `${OP}[0].key`, message: 'Unsupported value: "tenant": supported values: "identity", "address", "api"' }],
    ],
    ['no period', [{ name: 'x', requests: 1 }], [{ field: `${OP}[0].period`, message: 'Required value' }]],
    ['five limits', ['a', 'b', 'c', 'd', 'e'].map((name) => ({ ...ok, name })), [{ field: OP, message: 'Too many: 5: must have at most 4 items' }]],
  ])('an operation limit with %s is refused', async (_, limits, expected) => {
    const { code, causes } = await rejectionOf(withLimits('bad-limit', undefined, limits));
    expect(code).toBe(422);
    expect([...causes].sort(byField)).toEqual([...expected].sort(byField));
  });

  test('spec.defaults is checked the same way, and rateLimitFailMode is open or closed', async () => {
    const dup = await rejectionOf(
      withLimits('bad-default', {
        rateLimit: [
          { ...ok, name: 'day', period: '24h' },
          { ...ok, name: 'day' },
        ],
      }),
    );
    expect(dup.causes).toEqual([
      { field: 'spec.defaults.rateLimit', message: 'Invalid value: "array": rateLimit names must be unique: day is used more than once' },
    ]);
    const period = await rejectionOf(withLimits('bad-default', { rateLimit: [{ ...ok, period: '0s' }] }));
    expect(period.causes).toEqual([{ field: 'spec.defaults.rateLimit[0].period', message: RANGE }]);
    const mode = await rejectionOf(withLimits('bad-default', { rateLimitFailMode: 'sometimes' }));
    expect(mode.causes).toEqual([{ field: 'spec.defaults.rateLimitFailMode', message: 'Unsupported value: "sometimes": supported values: "open", "closed"' }]);
  });

  test('limits within the bounds are stored as written: defaults, an operation of its own, and [] for none', async () => {
    const defaults = {
      rateLimit: [
        { name: 'per-second', requests: 10, period: '1s', burst: 5, key: 'identity' },
        { name: 'per-day', requests: 1_000_000_000, period: '24h', key: 'api' },
      ],
      rateLimitFailMode: 'closed',
    };
    // The same name as in the defaults is fine: uniqueness is per list.
    const own = [
      { name: 'per-second', requests: 1, period: '1000ms', burst: 0, key: 'address' },
      { name: 'a', requests: 1, period: '23h59m59s' },
      { name: '0', requests: 1, period: '1m30s' },
      { name: 'x'.repeat(32), requests: 1, period: '86400s' },
    ];
    await client.create(withLimits('limits-ok', defaults, own));
    const { stdout } = await kubectl('get', 'apischema', 'limits-ok', '-n', NS, '-o', 'json');
    const spec = JSON.parse(stdout).spec;
    expect(spec.defaults).toEqual(defaults);
    expect(spec.operations[0].rateLimit).toEqual(own);
    expect(spec.operations[1].rateLimit).toEqual([]);
  });

  test('kubectl explain describes the fields', async () => {
    const { stdout } = await kubectl('explain', 'apischema.spec.defaults.rateLimit');
    expect(stdout).toMatch(/Each is one counter shared by all those operations/);
    expect(stdout).toMatch(/period\s+<string> -required-\s+The period, a Gateway API Duration \(GEP-2257\) from 1s to 24h/);
    const op = await kubectl('explain', 'apischema.spec.operations.rateLimit.key');
    expect(op.stdout).toMatch(/ENUM:\s+identity\s+address\s+api/);
  });
});
