import { execFile } from 'node:child_process';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { promisify } from 'node:util';
import { Validator } from '@seriousme/openapi-schema-validator';
import { Ajv } from 'ajv';
import addFormatsModule from 'ajv-formats';
import type { ApiSchema } from '../api/types.js';
import { curlExample, pickExampleOperation, sampleFromSchema } from './examples.js';
import { apiSchemaId, generateOpenApi, type OpenAPIObject } from './generate.js';
import { oas30ToJsonSchema } from './jsonschema.js';
import { VARIED } from './testdata/fixtures.js';

const addFormats = addFormatsModule as unknown as (ajv: Ajv) => Ajv;
const run = promisify(execFile);
const gen = (s: ApiSchema) => generateOpenApi(s, { gatewayUrl: 'http://gw.test', issuerUrl: 'http://idp.test' });

async function resolved(doc: OpenAPIObject): Promise<any> {
  const v = new Validator();
  await v.validate(structuredClone(doc) as unknown as Record<string, unknown>);
  return v.resolveRefs();
}
function ajv() {
  const a = new Ajv({ strict: false, allErrors: true, discriminator: true });
  addFormats(a);
  for (const f of ['int32', 'int64', 'float', 'double', 'binary']) a.addFormat(f, true);
  return a;
}

describe('sampleFromSchema', () => {
  const cases: Array<[string, string, string, unknown]> = [];
  for (const s of VARIED) {
    const doc = gen(s);
    for (const [p, item] of Object.entries(doc.paths)) {
      for (const [m, op] of Object.entries(item as Record<string, any>)) {
        const json = op.requestBody?.content?.['application/json'];
        if (json) cases.push([`${apiSchemaId(s)}@${s.spec.info.version} ${m.toUpperCase()} ${p}`, p, m, doc]);
      }
    }
  }
  test('covers many request bodies', () => expect(cases.length).toBeGreaterThanOrEqual(20));
  test.each(cases)('%s: a sample built from the schema (ignoring examples) validates', async (_n, p, m, doc) => {
    const r = await resolved(doc as OpenAPIObject);
    const schema = r.paths[p][m].requestBody.content['application/json'].schema;
    const stripped = JSON.parse(JSON.stringify(schema, (k, v) => (k === 'example' ? undefined : v)));
    const sample = sampleFromSchema(stripped);
    const validate = ajv().compile(oas30ToJsonSchema(schema) as object);
    expect(validate(sample) ? [] : validate.errors).toEqual([]);
  });
  test('bounds, formats and cycles', () => {
    expect(sampleFromSchema({ type: 'integer', minimum: 5, exclusiveMinimum: true })).toBe(6);
    expect(sampleFromSchema({ type: 'number', maximum: -2 })).toBe(-2);
    expect(sampleFromSchema({ type: 'integer', minimum: 3, multipleOf: 5 })).toBe(5);
    expect(sampleFromSchema({ type: 'string', format: 'date' })).toBe('2026-01-01');
    expect(sampleFromSchema({ type: 'string', minLength: 8 })).toBe('textxxxx');
    expect(sampleFromSchema({ type: 'array', items: { type: 'boolean' }, minItems: 3 })).toEqual([true, true, true]);
    const doc = {
      components: { schemas: { N: { type: 'object', required: ['next'], properties: { next: { $ref: '#/components/schemas/N' } } } } },
    } as unknown as OpenAPIObject;
    expect(() => sampleFromSchema({ $ref: '#/components/schemas/N' }, doc)).not.toThrow();
  });
});

describe('curlExample', () => {
  test('picks predict*, then infer*, then the first POST', () => {
    expect(pickExampleOperation(gen(VARIED[0]))!.op.operationId).toBe('predict');
    expect(pickExampleOperation(gen(VARIED.find((s) => s.metadata.name === 'iris-v2')!))!.op.operationId).toBe('infer');
    expect(pickExampleOperation(gen(VARIED.find((s) => s.metadata.name === 'items')!))!.op.operationId).toBe('getItem');
  });
  test('iris: the exact command', () => {
    expect(curlExample(gen(VARIED[0]))).toBe(
      `curl -sS -X POST 'http://gw.test/iris/predict' -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' -d '{"features":[[5.1,3.5,1.4,0.2]]}'`,
    );
  });

  // Run the generated commands with the real curl against a server that checks them.
  let server: Server;
  let port = 0;
  const docs: Record<string, any> = {};
  beforeAll(async () => {
    const check = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
      const chunks: Buffer[] = [];
      for await (const c of req) chunks.push(c as Buffer);
      const [, svc, ...rest] = (req.url ?? '').split('?')[0].split('/');
      const r = docs[svc];
      const path = '/' + rest.join('/');
      const match = Object.entries(r?.paths ?? {}).find(([p]) => new RegExp(`^${p.replace(/\{[^}]+\}/g, '[^/]+')}$`).test(path));
      const op = match && (match[1] as any)[req.method!.toLowerCase()];
      if (!op) return void res.writeHead(404).end('no such operation');
      if (op.security.length && req.headers.authorization !== 'Bearer tok-123') return void res.writeHead(401).end('no token');
      const q = new URL(req.url!, 'http://x').searchParams;
      for (const p of op.parameters ?? []) if (p.in === 'query' && p.required && !q.has(p.name)) return void res.writeHead(400).end(`missing ${p.name}`);
      const media = op.requestBody?.content?.[String(req.headers['content-type'])];
      if (op.requestBody && !media) return void res.writeHead(415).end(String(req.headers['content-type']));
      if (media && /json/.test(String(req.headers['content-type']))) {
        const v = ajv().compile(oas30ToJsonSchema(media.schema) as object);
        if (!v(JSON.parse(Buffer.concat(chunks).toString()))) return void res.writeHead(400).end(JSON.stringify(v.errors));
      }
      res.writeHead(200).end('ok');
    };
    server = createServer((req, res) => void check(req, res).catch((e: Error) => res.writeHead(500).end(e.message)));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    port = (server.address() as AddressInfo).port;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  test.each(['iris', 'iris-v2', 'items', 'search', 'texts', 'mnist', 'tf-multi', 'shapes', 'compose', 'multi'])(
    '%s: the command runs with curl and passes the checks',
    async (name) => {
      const s = VARIED.find((x) => x.metadata.name === name)!;
      const doc = gen(s);
      docs[name] = await resolved(doc);
      const cmd = curlExample(doc, { serverUrl: `http://127.0.0.1:${port}/${name}` })!;
      const { stdout } = await run('bash', ['-c', `${cmd} -w ' %{http_code}'`], { env: { PATH: process.env.PATH, TOKEN: 'tok-123' } });
      expect(stdout).toBe('ok 200');
    },
  );
});
