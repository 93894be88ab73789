/**
 * Test fixtures: varied ApiSchemas for generation/validation tests, and the iris v1 → v2 story
 * used by the diff tests. Not shipped code.
 */
import type { ApiSchema, ApiSchemaSpec } from '../../api/types.js';

export function api(name: string, spec: Partial<ApiSchemaSpec>, namespace = 'models'): ApiSchema {
  return {
    apiVersion: 'kea.dev/v1alpha1',
    kind: 'ApiSchema',
    metadata: { name, namespace },
    spec: {
      target: { mlService: { name } },
      basePath: `/${name}`,
      info: { title: `${name} API`, version: '1.0.0' },
      ...spec,
    },
  };
}

const features = { type: 'array', items: { type: 'array', items: { type: 'number' }, minItems: 4, maxItems: 4 }, minItems: 1 };

/** Iris v1: POST /predict {features} → {classes}. */
export const irisV1 = api('iris', {
  info: { title: 'Iris classifier', version: '1.0.0', description: 'Predicts iris species.' },
  defaults: { access: { mode: 'authenticated' } },
  operations: [
    {
      operationId: 'predict',
      method: 'POST',
      path: '/predict',
      summary: 'Classify iris flowers',
      requestBody: {
        schema: { type: 'object', required: ['features'], properties: { features }, additionalProperties: false },
        example: { features: [[5.1, 3.5, 1.4, 0.2]] },
      },
      responses: {
        '200': {
          description: 'Predicted classes',
          schema: { type: 'object', required: ['classes'], properties: { classes: { type: 'array', items: { type: 'integer', enum: [0, 1, 2] } } } },
          example: { classes: [0] },
        },
      },
    },
    { operationId: 'health', method: 'GET', path: '/healthz', access: { mode: 'public' }, responses: { '200': { description: 'OK' } } },
  ],
});

/** Iris v2: renames features → measurements (breaking), adds probabilities and a method (non-breaking). */
export const irisV2 = api('iris', {
  info: { title: 'Iris classifier', version: '2.0.0', description: 'Predicts iris species.' },
  defaults: { access: { mode: 'authenticated' } },
  operations: [
    {
      operationId: 'predict',
      method: 'POST',
      path: '/predict',
      summary: 'Classify iris flowers',
      requestBody: {
        schema: { type: 'object', required: ['measurements'], properties: { measurements: features }, additionalProperties: false },
        example: { measurements: [[5.1, 3.5, 1.4, 0.2]] },
      },
      responses: {
        '200': {
          description: 'Predicted classes',
          schema: {
            type: 'object',
            required: ['classes'],
            properties: {
              classes: { type: 'array', items: { type: 'integer', enum: [0, 1, 2] } },
              probabilities: { type: 'array', items: { type: 'array', items: { type: 'number', minimum: 0, maximum: 1 } } },
            },
          },
        },
      },
    },
    {
      operationId: 'explain',
      method: 'POST',
      path: '/explain',
      summary: 'Feature importances for one prediction',
      requestBody: { schema: { type: 'object', required: ['measurements'], properties: { measurements: features } } },
      responses: { '200': { description: 'Importances', schema: { type: 'object', additionalProperties: { type: 'number' } } } },
    },
    { operationId: 'health', method: 'GET', path: '/healthz', access: { mode: 'public' }, responses: { '200': { description: 'OK' } } },
  ],
});

/** ≥ 20 varied ApiSchemas covering the generator's branches. */
export const VARIED: ApiSchema[] = [
  irisV1,
  irisV2,
  // 3: nested objects, arrays of objects, nullable, enums
  api('nested', {
    operations: [
      {
        operationId: 'createOrder',
        method: 'POST',
        path: '/orders',
        requestBody: {
          schema: {
            type: 'object',
            required: ['customer', 'lines'],
            properties: {
              customer: {
                type: 'object',
                required: ['id'],
                properties: { id: { type: 'string', format: 'uuid' }, email: { type: 'string', format: 'email', nullable: true } },
              },
              lines: {
                type: 'array',
                minItems: 1,
                items: { type: 'object', properties: { sku: { type: 'string', pattern: '^[A-Z]{3}-\\d+$' }, qty: { type: 'integer', minimum: 1 } } },
              },
              priority: { type: 'string', enum: ['low', 'normal', 'high'], default: 'normal' },
            },
          },
        },
        responses: { '201': { description: 'Created', schema: { type: 'object', properties: { orderId: { type: 'string' } } } } },
      },
    ],
  }),
  // 4: oneOf + discriminator via components refs
  api('shapes', {
    components: {
      schemas: {
        Circle: {
          type: 'object',
          required: ['kind', 'r'],
          properties: { kind: { type: 'string', enum: ['circle'] }, r: { type: 'number', exclusiveMinimum: 0 } },
        },
        Square: { type: 'object', required: ['kind', 'side'], properties: { kind: { type: 'string', enum: ['square'] }, side: { type: 'number' } } },
        Shape: { oneOf: [{ $ref: '#/components/schemas/Circle' }, { $ref: '#/components/schemas/Square' }], discriminator: { propertyName: 'kind' } },
      },
    },
    operations: [
      {
        operationId: 'area',
        method: 'POST',
        path: '/area',
        requestBody: { schema: { $ref: '#/components/schemas/Shape' } },
        responses: { '200': { description: 'Area', schema: { type: 'number' } } },
      },
    ],
  }),
  // 5: path, query, header params; GET without body
  api('items', {
    operations: [
      {
        operationId: 'getItem',
        method: 'GET',
        path: '/items/{itemId}',
        parameters: [
          { name: 'itemId', in: 'path', required: true, schema: { type: 'integer', minimum: 1 } },
          { name: 'fields', in: 'query', schema: { type: 'array', items: { type: 'string' } } },
          { name: 'X-Request-Source', in: 'header', required: false, schema: { type: 'string' }, example: 'cli' },
        ],
        responses: { '200': { description: 'Item', schema: { type: 'object', properties: { id: { type: 'integer' } } } }, '404': { description: 'Not found' } },
      },
      // undeclared path param gets synthesized
      { operationId: 'deleteItem', method: 'DELETE', path: '/items/{itemId}', responses: { '204': { description: 'Deleted' } } },
    ],
  }),
  // 6: every access mode + cache
  api('grades', {
    operations: [
      { operationId: 'listCourses', method: 'GET', path: '/courses', access: { mode: 'public' }, cache: { ttlSeconds: 60, scope: 'shared' } },
      {
        operationId: 'getGrades',
        method: 'GET',
        path: '/get_grades',
        access: { mode: 'restricted', roles: ['student', 'teacher'] },
        cache: { ttlSeconds: 10, scope: 'identity' },
      },
      {
        operationId: 'setGrades',
        method: 'POST',
        path: '/set_grades',
        access: { mode: 'restricted', roles: ['teacher'], scopes: ['grades:write'] },
        requestBody: { schema: { type: 'object', additionalProperties: { type: 'integer', minimum: 1, maximum: 5 } } },
      },
      { operationId: 'me', method: 'GET', path: '/me', access: { mode: 'authenticated' } },
      { operationId: 'groupOnly', method: 'GET', path: '/staff', access: { mode: 'restricted', groups: ['staff'] } },
    ],
  }),
  // 7: non-JSON content types
  api('texts', {
    operations: [
      {
        operationId: 'summarize',
        method: 'POST',
        path: '/summarize',
        requestBody: { contentType: 'text/plain', schema: { type: 'string', maxLength: 10000 }, example: 'Long text...' },
        responses: { '200': { description: 'Summary', contentType: 'text/plain', schema: { type: 'string' } } },
      },
      {
        operationId: 'upload',
        method: 'PUT',
        path: '/images/{name}',
        parameters: [{ name: 'name', in: 'path', schema: { type: 'string' } }],
        requestBody: { contentType: 'application/octet-stream', schema: { type: 'string', format: 'binary' } },
        responses: { '204': { description: 'Stored' } },
      },
    ],
  }),
  // 8: no responses declared, no body, PATCH/OPTIONS/HEAD
  api('misc', {
    operations: [
      { operationId: 'ping', method: 'HEAD', path: '/ping' },
      { operationId: 'opts', method: 'OPTIONS', path: '/ping' },
      {
        operationId: 'patchIt',
        method: 'PATCH',
        path: '/thing',
        requestBody: { required: false, schema: { type: 'object', properties: { a: { type: 'boolean' } } } },
      },
    ],
  }),
  // 9: JSON Schema 2020-isms that must be normalized to 3.0
  api('modern', {
    operations: [
      {
        operationId: 'echo',
        method: 'POST',
        path: '/echo',
        requestBody: {
          schema: {
            $schema: 'https://json-schema.org/draft/2020-12/schema',
            type: 'object',
            properties: {
              mode: { const: 'fast' },
              note: { type: ['string', 'null'] },
              score: { type: 'number', exclusiveMinimum: 0, exclusiveMaximum: 1 },
              tags: { type: 'array', items: { type: 'string' }, examples: [['a']] },
            },
          },
        },
      },
    ],
  }),
  // 10: allOf composition, readOnly, additionalProperties false
  api('compose', {
    components: {
      schemas: {
        Base: { type: 'object', properties: { id: { type: 'string', readOnly: true }, created: { type: 'string', format: 'date-time' } } },
        Model: {
          allOf: [
            { $ref: '#/components/schemas/Base' },
            { type: 'object', required: ['name'], properties: { name: { type: 'string', minLength: 1 } }, additionalProperties: false },
          ],
        },
      },
    },
    operations: [
      {
        operationId: 'listModels',
        method: 'GET',
        path: '/models',
        responses: { '200': { description: 'Models', schema: { type: 'array', items: { $ref: '#/components/schemas/Model' } } } },
      },
      {
        operationId: 'addModel',
        method: 'POST',
        path: '/models',
        requestBody: { schema: { $ref: '#/components/schemas/Model' } },
        responses: { '201': { description: 'Created', schema: { $ref: '#/components/schemas/Model' } } },
      },
    ],
  }),
  // 11: user-defined Problem schema (name collision with the gateway's)
  api('collide', {
    components: { schemas: { Problem: { type: 'object', properties: { question: { type: 'string' } } } } },
    operations: [{ operationId: 'solve', method: 'POST', path: '/solve', requestBody: { schema: { $ref: '#/components/schemas/Problem' } } }],
  }),
  // 12: user overrides a gateway status, default response, deprecated
  api('legacy', {
    operations: [
      {
        operationId: 'oldPredict',
        method: 'POST',
        path: '/v0/predict',
        deprecated: true,
        requestBody: { schema: { type: 'object' } },
        responses: {
          '400': { description: 'Model-specific error', schema: { type: 'object', properties: { reason: { type: 'string' } } } },
          default: { description: 'Anything else' },
        },
      },
    ],
  }),
  // 13-18: inference v2, several dtypes/shapes
  api('iris-v2', {
    inference: {
      protocol: 'v2',
      inputs: [{ name: 'input-0', datatype: 'FP32', shape: [-1, 4] }],
      outputs: [{ name: 'output-0', datatype: 'INT64', shape: [-1] }],
    },
  }),
  api('resnet', {
    inference: {
      protocol: 'v2',
      modelName: 'resnet50',
      inputs: [{ name: 'image', datatype: 'FP32', shape: [-1, 3, 224, 224] }],
      outputs: [{ name: 'logits', datatype: 'FP16', shape: [-1, 1000] }],
    },
  }),
  api('multi', {
    inference: {
      protocol: 'v2',
      inputs: [
        { name: 'tokens', datatype: 'INT32', shape: [-1, 128] },
        { name: 'mask', datatype: 'BOOL', shape: [-1, 128] },
        { name: 'text', datatype: 'BYTES', shape: [-1], description: 'raw text' },
      ],
      outputs: [
        { name: 'label', datatype: 'BYTES', shape: [-1] },
        { name: 'score', datatype: 'FP64', shape: [-1, 1] },
      ],
    },
  }),
  api('bytes-v2', {
    inference: { protocol: 'v2', inputs: [{ name: 'u8', datatype: 'UINT8', shape: [2, 2] }], outputs: [{ name: 'i8', datatype: 'INT8', shape: [] }] },
  }),
  api('uint', {
    inference: {
      protocol: 'v2',
      inputs: [
        { name: 'a', datatype: 'UINT16', shape: [-1, 2] },
        { name: 'b', datatype: 'UINT32', shape: [-1] },
      ],
      outputs: [
        { name: 'c', datatype: 'UINT64', shape: [-1] },
        { name: 'd', datatype: 'INT16', shape: [-1] },
      ],
    },
  }),
  // inline op overrides derived infer + extra inline op
  api('mixed', {
    defaults: { access: { mode: 'public' } },
    inference: { protocol: 'v2', inputs: [{ name: 'x', datatype: 'FP64', shape: [-1, 2] }], outputs: [{ name: 'y', datatype: 'FP64', shape: [-1] }] },
    operations: [{ operationId: 'info', method: 'GET', path: '/info', responses: { '200': { description: 'Info', schema: { type: 'object' } } } }],
  }),
  // 19-22: tfserving
  api('mnist', {
    inference: {
      protocol: 'tfserving',
      inputs: [{ name: 'images', datatype: 'FP32', shape: [-1, 28, 28] }],
      outputs: [{ name: 'probs', datatype: 'FP32', shape: [-1, 10] }],
    },
  }),
  api('tf-multi', {
    inference: {
      protocol: 'tfserving',
      modelName: 'wide_deep',
      inputs: [
        { name: 'age', datatype: 'INT64', shape: [-1] },
        { name: 'occupation', datatype: 'BYTES', shape: [-1] },
      ],
      outputs: [
        { name: 'score', datatype: 'FP32', shape: [-1, 1] },
        { name: 'cls', datatype: 'INT32', shape: [-1] },
      ],
    },
  }),
  api('tf-fixed-batch', {
    inference: { protocol: 'tfserving', inputs: [{ name: 'x', datatype: 'FP64', shape: [2, 3] }], outputs: [{ name: 'y', datatype: 'BOOL', shape: [2] }] },
  }),
  api('tf-image', {
    inference: {
      protocol: 'tfserving',
      inputs: [{ name: 'img', datatype: 'UINT8', shape: [-1, 32, 32, 3] }],
      outputs: [{ name: 'cls', datatype: 'INT64', shape: [-1] }],
    },
  }),
  // 23: root basePath, hand-written service target, passthrough
  {
    ...api(
      'root',
      {
        basePath: '/',
        target: { service: { name: 'legacy-svc', port: 8080 } },
        policy: { mode: 'passthrough' },
        operations: [{ operationId: 'index', method: 'GET', path: '/', access: { mode: 'public' } }],
      },
      'apps',
    ),
  },
  // 24: header and query params only, strings with formats, integer enums
  api('search', {
    operations: [
      {
        operationId: 'search',
        method: 'GET',
        path: '/search',
        parameters: [
          { name: 'q', in: 'query', required: true, schema: { type: 'string', minLength: 1 } },
          { name: 'limit', in: 'query', schema: { type: 'integer', enum: [10, 20, 50], default: 10 } },
          { name: 'since', in: 'query', schema: { type: 'string', format: 'date' } },
          { name: 'Accept-Language', in: 'header', schema: { type: 'string' } },
        ],
        responses: {
          '200': {
            description: 'Hits',
            schema: {
              type: 'object',
              properties: { hits: { type: 'array', items: { type: 'object', properties: { id: { type: 'string' }, score: { type: 'number' } } } } },
            },
          },
        },
      },
    ],
  }),
  // 22: rate limits (issue 13): defaults shared by the operations without their own, an
  // operation of its own, one with none ([]), failing closed
  api('limited', {
    defaults: {
      access: { mode: 'public' },
      rateLimit: [
        { name: 'per-second', requests: 10, period: '1s', burst: 5 },
        { name: 'per-day', requests: 10000, period: '24h', key: 'api' },
      ],
      rateLimitFailMode: 'closed',
    },
    operations: [
      {
        operationId: 'predict',
        method: 'POST',
        path: '/predict',
        requestBody: { schema: { type: 'object' } },
        responses: { '200': { description: 'Prediction', schema: { type: 'object' } } },
      },
      { operationId: 'explain', method: 'POST', path: '/explain', rateLimit: [{ name: 'per-minute', requests: 6, period: '1m', key: 'address' }] },
      { operationId: 'health', method: 'GET', path: '/health', rateLimit: [] },
    ],
  }),
];
