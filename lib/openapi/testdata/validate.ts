/**
 * Test helper: validates an OpenAPI 3.0 document with a real validator library
 * (@seriousme/openapi-schema-validator: the OAS 3.0 JSON Schema + $ref resolution), then
 * checks what that schema cannot: unique operationIds, path template variables ↔ path
 * parameters, every schema compiles with ajv, and every example validates against its schema.
 */
import { Validator } from '@seriousme/openapi-schema-validator';
import { Ajv } from 'ajv';
import addFormatsModule from 'ajv-formats';
import type { OpenAPIObject } from 'openapi3-ts/oas30';
import { oas30ToJsonSchema } from '../jsonschema.js';

const addFormats = addFormatsModule as unknown as (ajv: Ajv) => Ajv;

function newAjv(): Ajv {
  const ajv = new Ajv({ strict: false, allErrors: true, discriminator: true, validateFormats: true });
  addFormats(ajv);
  ajv.addFormat('int32', true).addFormat('int64', true).addFormat('float', true).addFormat('double', true).addFormat('binary', true);
  return ajv;
}

export async function validateOpenApi(doc: OpenAPIObject): Promise<string[]> {
  const problems: string[] = [];
  const validator = new Validator();
  const res = await validator.validate(structuredClone(doc) as unknown as Record<string, unknown>);
  if (!res.valid) {
    problems.push(`schema: ${typeof res.errors === 'string' ? res.errors : JSON.stringify(res.errors?.slice(0, 5))}`);
    return problems;
  }
  if (validator.version !== '3.0') problems.push(`version ${validator.version}`);
  const resolved = validator.resolveRefs() as unknown as OpenAPIObject;
  const ajv = newAjv();
  const ids = new Set<string>();
  for (const [p, item] of Object.entries(resolved.paths ?? {})) {
    const vars = [...p.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]).sort();
    for (const [m, op] of Object.entries(item as Record<string, any>)) {
      if (!['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'].includes(m)) continue;
      const where = `${m.toUpperCase()} ${p}`;
      if (!op.operationId) problems.push(`${where}: no operationId`);
      else if (ids.has(op.operationId)) problems.push(`${where}: duplicate operationId ${op.operationId}`);
      ids.add(op.operationId);
      const pathParams = (op.parameters ?? [])
        .filter((x: any) => x.in === 'path')
        .map((x: any) => x.name)
        .sort();
      if (JSON.stringify(pathParams) !== JSON.stringify(vars)) problems.push(`${where}: path params ${pathParams} != template ${vars}`);
      const check = (schema: unknown, example: unknown, label: string) => {
        if (schema === undefined) return;
        let validate;
        try {
          validate = ajv.compile(oas30ToJsonSchema(schema) as object);
        } catch (e) {
          problems.push(`${where} ${label}: schema does not compile: ${(e as Error).message}`);
          return;
        }
        if (example !== undefined && !validate(example)) {
          problems.push(`${where} ${label}: example invalid: ${ajv.errorsText(validate.errors)}`);
        }
      };
      for (const prm of op.parameters ?? []) check(prm.schema, prm.example, `parameter ${prm.name}`);
      for (const [ct, media] of Object.entries((op.requestBody?.content ?? {}) as Record<string, any>)) check(media.schema, media.example, `requestBody ${ct}`);
      for (const [code, resp] of Object.entries((op.responses ?? {}) as Record<string, any>)) {
        for (const [ct, media] of Object.entries((resp.content ?? {}) as Record<string, any>)) check(media.schema, media.example, `response ${code} ${ct}`);
      }
    }
  }
  return problems;
}

/** Compiles the (dereferenced) schema of an operation's JSON request body, for value-level tests. */
export async function requestValidator(doc: OpenAPIObject, method: string, path: string): Promise<(v: unknown) => boolean> {
  const validator = new Validator();
  await validator.validate(structuredClone(doc) as unknown as Record<string, unknown>);
  const resolved = validator.resolveRefs() as any;
  const schema = resolved.paths[path][method.toLowerCase()].requestBody.content['application/json'].schema;
  const v = newAjv().compile(oas30ToJsonSchema(schema) as object);
  return (x: unknown) => v(x);
}

export async function responseValidator(doc: OpenAPIObject, method: string, path: string, code = '200'): Promise<(v: unknown) => boolean> {
  const validator = new Validator();
  await validator.validate(structuredClone(doc) as unknown as Record<string, unknown>);
  const resolved = validator.resolveRefs() as any;
  const schema = resolved.paths[path][method.toLowerCase()].responses[code].content['application/json'].schema;
  const v = newAjv().compile(oas30ToJsonSchema(schema) as object);
  return (x: unknown) => v(x);
}
