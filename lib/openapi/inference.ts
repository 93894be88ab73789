/**
 * Typed operations from a predefined runtime's inference signature (`spec.inference`).
 *
 * Takes an {@link InferenceSignature} (declared tensors: name, datatype, shape) and gives
 * ApiSchema {@link Operation}s whose request/response schemas are typed per tensor, wrapped
 * in the runtime's protocol envelope:
 *   - `v2`: Open Inference Protocol REST (KServe v2 / Triton / MLServer),
 *     `POST /v2/models/{model}/infer` with `inputs[{name, shape, datatype, data}]`,
 *     plus `GET /v2/models/{model}` (metadata) and `GET /v2/models/{model}/ready`;
 *   - `tfserving`: TensorFlow Serving REST API, `POST /v1/models/{model}:predict` with
 *     `instances` (row format), plus `GET /v1/models/{model}` and `.../metadata`.
 *
 * The operations are ordinary ApiSchema operations, so the controller can hand them to the
 * policy server for validation exactly like inline ones ({@link effectiveOperations}); every
 * schema is self-contained (no `$ref`). Pure and deterministic.
 */
import type { ApiSchemaSpec, InferenceSignature, JsonSchema, Operation, TensorSpec } from '../api/types.js';

/** OIP v2 datatypes (Open Inference Protocol, "Tensor Data Types"). */
export const TENSOR_DATATYPES = ['BOOL', 'UINT8', 'UINT16', 'UINT32', 'UINT64', 'INT8', 'INT16', 'INT32', 'INT64', 'FP16', 'FP32', 'FP64', 'BYTES'] as const;
export type TensorDatatype = (typeof TENSOR_DATATYPES)[number];

const INT_BOUNDS: Record<string, [number, number, string?]> = {
  INT8: [-128, 127, 'int32'],
  INT16: [-32768, 32767, 'int32'],
  INT32: [-2147483648, 2147483647, 'int32'],
  INT64: [Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER, 'int64'],
  UINT8: [0, 255, 'int32'],
  UINT16: [0, 65535, 'int32'],
  UINT32: [0, 4294967295, 'int64'],
  UINT64: [0, Number.MAX_SAFE_INTEGER, 'int64'],
};

/**
 * JSON Schema (OpenAPI 3.0 dialect) of one scalar element of a tensor.
 * BOOL → boolean; INTn and UINTn → integer with the dtype's bounds (64-bit types bounded to the
 * IEEE-754 safe-integer range, since JSON numbers are doubles); FP16/FP32 → number/float;
 * FP64 → number/double; BYTES → string.
 * @throws Error for an unknown datatype.
 */
export function scalarSchema(datatype: string): JsonSchema {
  const dt = datatype.toUpperCase();
  if (dt === 'BOOL') return { type: 'boolean' };
  if (dt === 'BYTES') return { type: 'string' };
  if (dt === 'FP16' || dt === 'FP32') return { type: 'number', format: 'float' };
  if (dt === 'FP64') return { type: 'number', format: 'double' };
  const b = INT_BOUNDS[dt];
  if (b) return { type: 'integer', format: b[2], minimum: b[0], maximum: b[1] };
  throw new Error(`unknown tensor datatype "${datatype}" (expected one of ${TENSOR_DATATYPES.join(', ')})`);
}

/** An example scalar value for a datatype. */
function scalarExample(datatype: string): unknown {
  const dt = datatype.toUpperCase();
  if (dt === 'BOOL') return true;
  if (dt === 'BYTES') return 'text';
  if (dt.startsWith('FP')) return 0.5;
  return 1;
}

/**
 * Nested-array schema for the given dimensions (row-major): dims [-1, 4] of FP32 → an array
 * (any length) of arrays of exactly 4 numbers. A dimension of -1 is variable (no item-count
 * bounds); a fixed dimension d ≥ 0 gives `minItems = maxItems = d`. Empty dims give the scalar.
 */
export function nestedSchema(dims: number[], datatype: string): JsonSchema {
  let schema: JsonSchema = scalarSchema(datatype);
  for (let i = dims.length - 1; i >= 0; i--) {
    const d = dims[i];
    const arr: JsonSchema = { type: 'array', items: schema };
    if (d >= 0) {
      arr.minItems = d;
      arr.maxItems = d;
    }
    schema = arr;
  }
  return schema;
}

/** Example value of the given dims (variable dims take 1 element). */
function nestedExample(dims: number[], datatype: string): unknown {
  let v: unknown = scalarExample(datatype);
  for (let i = dims.length - 1; i >= 0; i--) {
    const d = dims[i] < 0 ? 1 : dims[i];
    v = Array.from({ length: d }, () => structuredClone(v));
  }
  return v;
}

function exampleTooLarge(dims: number[]): boolean {
  return dims.reduce((n, d) => n * (d < 0 ? 1 : d), 1) > 64;
}

function describeTensor(t: TensorSpec): string {
  const shape = `[${t.shape.join(', ')}]`;
  const base = `${t.datatype} tensor of shape ${shape}${t.shape.includes(-1) ? ' (-1 = variable)' : ''}`;
  return t.description ? `${t.description} (${base})` : base;
}

/** Validates a tensor declaration; throws Error with a precise message. */
export function checkTensor(t: TensorSpec, where: string): void {
  if (!t.name) throw new Error(`${where}: tensor name is empty`);
  scalarSchema(t.datatype);
  if (!Array.isArray(t.shape) || t.shape.some((d) => !Number.isInteger(d) || d < -1)) {
    throw new Error(`${where}: shape of "${t.name}" must be integers ≥ -1, got ${JSON.stringify(t.shape)}`);
  }
}

/** OIP v2 tensor object schema for one declared tensor: {name, shape, datatype, data, parameters?}. */
function v2TensorSchema(t: TensorSpec): JsonSchema {
  const rank = t.shape.length;
  const nested = nestedSchema(t.shape, t.datatype);
  // OIP v2 JSON allows tensor data either nested (row-major) or flattened; nested is the primary form.
  const flat: JsonSchema = { type: 'array', items: scalarSchema(t.datatype) };
  const data: JsonSchema =
    rank >= 2
      ? { anyOf: [nested, flat], description: 'Tensor data, nested per shape (or flattened row-major).' }
      : rank === 1
        ? nested
        : { ...flat, minItems: 1, maxItems: 1 };
  const schema: JsonSchema = {
    type: 'object',
    description: describeTensor(t),
    required: ['name', 'shape', 'datatype', 'data'],
    properties: {
      name: { type: 'string', enum: [t.name] },
      shape: {
        type: 'array',
        items: { type: 'integer', minimum: 0 },
        minItems: rank,
        maxItems: rank,
        description: `Actual shape; declared [${t.shape.join(', ')}].`,
      },
      datatype: { type: 'string', enum: [t.datatype.toUpperCase()] },
      parameters: { type: 'object', additionalProperties: true },
      data,
    },
  };
  return schema;
}

function v2TensorExample(t: TensorSpec): unknown {
  return {
    name: t.name,
    shape: t.shape.map((d) => (d < 0 ? 1 : d)),
    datatype: t.datatype.toUpperCase(),
    data: t.shape.length === 0 ? [scalarExample(t.datatype)] : nestedExample(t.shape, t.datatype),
  };
}

/** Examples only when every tensor is small (≤ 64 elements with variable dims as 1). */
function v2ListExample(tensors: TensorSpec[]): unknown[] | undefined {
  return tensors.some((t) => exampleTooLarge(t.shape)) ? undefined : tensors.map(v2TensorExample);
}

function tensorListSchema(tensors: TensorSpec[], requireAll: boolean): JsonSchema {
  const items = tensors.length === 1 ? v2TensorSchema(tensors[0]) : { oneOf: tensors.map(v2TensorSchema) };
  const s: JsonSchema = { type: 'array', items, minItems: requireAll ? tensors.length : 1, maxItems: tensors.length };
  return s;
}

/** JSON Schema of the tensor metadata the v2 metadata endpoint returns. */
const V2_TENSOR_META: JsonSchema = {
  type: 'object',
  required: ['name', 'datatype', 'shape'],
  properties: {
    name: { type: 'string' },
    datatype: { type: 'string' },
    shape: { type: 'array', items: { type: 'integer' } },
  },
};

function v2Operations(sig: InferenceSignature, model: string): Operation[] {
  const prefix = `/v2/models/${model}`;
  const inEx = v2ListExample(sig.inputs);
  const outEx = v2ListExample(sig.outputs);
  return [
    {
      operationId: 'infer',
      method: 'POST',
      path: `${prefix}/infer`,
      summary: `Run inference on ${model}`,
      description: 'Open Inference Protocol (v2) REST inference request. ' + describeSignature(sig),
      tags: ['inference'],
      requestBody: {
        required: true,
        contentType: 'application/json',
        schema: {
          type: 'object',
          required: ['inputs'],
          properties: {
            id: { type: 'string', description: 'Request identifier, echoed in the response.' },
            parameters: { type: 'object', additionalProperties: true },
            inputs: tensorListSchema(sig.inputs, true),
            outputs: {
              type: 'array',
              description: 'Requested outputs (default: all).',
              items: {
                type: 'object',
                required: ['name'],
                properties: {
                  name: { type: 'string', enum: sig.outputs.map((t) => t.name) },
                  parameters: { type: 'object', additionalProperties: true },
                },
              },
            },
          },
        },
        ...(inEx ? { example: { inputs: inEx } } : {}),
      },
      responses: {
        '200': {
          description: 'Inference result.',
          contentType: 'application/json',
          schema: {
            type: 'object',
            required: ['model_name', 'outputs'],
            properties: {
              model_name: { type: 'string' },
              model_version: { type: 'string' },
              id: { type: 'string' },
              parameters: { type: 'object', additionalProperties: true },
              outputs: tensorListSchema(sig.outputs, false),
            },
          },
          ...(outEx ? { example: { model_name: model, outputs: outEx } } : {}),
        },
      },
    },
    {
      operationId: 'modelMetadata',
      method: 'GET',
      path: prefix,
      summary: `Metadata of ${model}: declared inputs and outputs`,
      tags: ['inference'],
      responses: {
        '200': {
          description: 'Model metadata (OIP v2).',
          contentType: 'application/json',
          schema: {
            type: 'object',
            required: ['name', 'platform', 'inputs', 'outputs'],
            properties: {
              name: { type: 'string' },
              versions: { type: 'array', items: { type: 'string' } },
              platform: { type: 'string' },
              inputs: { type: 'array', items: V2_TENSOR_META },
              outputs: { type: 'array', items: V2_TENSOR_META },
            },
          },
          example: {
            name: model,
            platform: '',
            inputs: sig.inputs.map((t) => ({ name: t.name, datatype: t.datatype.toUpperCase(), shape: t.shape })),
            outputs: sig.outputs.map((t) => ({ name: t.name, datatype: t.datatype.toUpperCase(), shape: t.shape })),
          },
        },
      },
    },
    {
      operationId: 'modelReady',
      method: 'GET',
      path: `${prefix}/ready`,
      summary: `Whether ${model} is ready for inference`,
      tags: ['inference'],
      responses: { '200': { description: 'The model is ready.' } },
    },
  ];
}

/** TF Serving: one instance = the tensor without its first (batch) dimension. */
function tfInstanceSchema(t: TensorSpec): JsonSchema {
  return { ...nestedSchema(t.shape.slice(1), t.datatype), description: describeTensor(t) + '; one row of the batch.' };
}

function tfRows(tensors: TensorSpec[]): { schema: JsonSchema; example: unknown; batchDim: number } {
  const batchDim = tensors[0]?.shape[0] ?? -1;
  if (tensors.length === 1) {
    const t = tensors[0];
    return { schema: tfInstanceSchema(t), example: exampleTooLarge(t.shape.slice(1)) ? undefined : nestedExample(t.shape.slice(1), t.datatype), batchDim };
  }
  const properties: Record<string, JsonSchema> = {};
  const example: Record<string, unknown> = {};
  for (const t of tensors) {
    properties[t.name] = tfInstanceSchema(t);
    example[t.name] = nestedExample(t.shape.slice(1), t.datatype);
  }
  const big = tensors.some((t) => exampleTooLarge(t.shape.slice(1)));
  return { schema: { type: 'object', required: tensors.map((t) => t.name), properties }, example: big ? undefined : example, batchDim };
}

function tfservingOperations(sig: InferenceSignature, model: string): Operation[] {
  const prefix = `/v1/models/${model}`;
  const inRows = tfRows(sig.inputs);
  const outRows = tfRows(sig.outputs);
  const instances: JsonSchema = { type: 'array', items: inRows.schema, minItems: 1 };
  if (inRows.batchDim >= 0) {
    instances.minItems = inRows.batchDim;
    instances.maxItems = inRows.batchDim;
  }
  const predictions: JsonSchema = { type: 'array', items: outRows.schema };
  return [
    {
      operationId: 'predict',
      method: 'POST',
      path: `${prefix}:predict`,
      summary: `Predict with ${model}`,
      description: 'TensorFlow Serving REST predict API, row ("instances") format. ' + describeSignature(sig),
      tags: ['inference'],
      requestBody: {
        required: true,
        contentType: 'application/json',
        schema: {
          type: 'object',
          required: ['instances'],
          properties: { signature_name: { type: 'string' }, instances },
        },
        ...(inRows.example === undefined
          ? {}
          : { example: { instances: Array.from({ length: inRows.batchDim > 0 ? inRows.batchDim : 1 }, () => inRows.example) } }),
      },
      responses: {
        '200': {
          description: 'Predictions, one per instance.',
          contentType: 'application/json',
          schema: { type: 'object', required: ['predictions'], properties: { predictions } },
          ...(outRows.example === undefined ? {} : { example: { predictions: [outRows.example] } }),
        },
      },
    },
    {
      operationId: 'modelStatus',
      method: 'GET',
      path: prefix,
      summary: `Version status of ${model}`,
      tags: ['inference'],
      responses: {
        '200': {
          description: 'Model version status (TF Serving).',
          contentType: 'application/json',
          schema: {
            type: 'object',
            properties: {
              model_version_status: {
                type: 'array',
                items: {
                  type: 'object',
                  properties: {
                    version: { type: 'string' },
                    state: { type: 'string' },
                    status: { type: 'object', properties: { error_code: { type: 'string' }, error_message: { type: 'string' } } },
                  },
                },
              },
            },
          },
        },
      },
    },
    {
      operationId: 'modelMetadata',
      method: 'GET',
      path: `${prefix}/metadata`,
      summary: `Signature metadata of ${model}`,
      tags: ['inference'],
      responses: {
        '200': {
          description: 'Model metadata (TF Serving SignatureDefs).',
          contentType: 'application/json',
          schema: { type: 'object', properties: { model_spec: { type: 'object' }, metadata: { type: 'object' } } },
        },
      },
    },
  ];
}

/** The model name used in the runtime's URLs: signature.modelName, else the target MLService's name, else the fallback. */
export function inferenceModelName(spec: ApiSchemaSpec, fallback: string): string {
  return spec.inference?.modelName ?? spec.target?.mlService?.name ?? fallback;
}

/**
 * Operations derived from `spec.inference` (none when absent). The access defaults of the spec
 * apply (operations carry no `access` of their own).
 * @param fallbackModelName used when neither `inference.modelName` nor `target.mlService` names the model.
 * @throws Error on an unknown datatype, a bad shape, or an unknown protocol.
 */
export function inferenceOperations(spec: ApiSchemaSpec, fallbackModelName: string): Operation[] {
  const sig = spec.inference;
  if (!sig) return [];
  sig.inputs.forEach((t, i) => checkTensor(t, `spec.inference.inputs[${i}]`));
  sig.outputs.forEach((t, i) => checkTensor(t, `spec.inference.outputs[${i}]`));
  if (sig.inputs.length === 0) throw new Error('spec.inference.inputs: at least one input tensor is required');
  if (sig.outputs.length === 0) throw new Error('spec.inference.outputs: at least one output tensor is required');
  const model = inferenceModelName(spec, fallbackModelName);
  if (sig.protocol === 'v2') return v2Operations(sig, model);
  if (sig.protocol === 'tfserving') return tfservingOperations(sig, model);
  throw new Error(`spec.inference.protocol: unknown protocol "${(sig as { protocol: string }).protocol}" (expected v2 or tfserving)`);
}

/**
 * All operations of an ApiSchema: inline `spec.operations` plus those derived from
 * `spec.inference`. An inline operation wins over a derived one with the same operationId or
 * the same method + path (so Anton can override, e.g., the summary or access of `infer`).
 * Order: inline operations first (as written), then derived ones.
 */
export function effectiveOperations(spec: ApiSchemaSpec, fallbackModelName: string): Operation[] {
  const inline = spec.operations ?? [];
  const ids = new Set(inline.map((o) => o.operationId));
  const routes = new Set(inline.map((o) => `${o.method} ${o.path}`));
  const derived = inferenceOperations(spec, fallbackModelName).filter((o) => !ids.has(o.operationId) && !routes.has(`${o.method} ${o.path}`));
  return [...inline, ...derived];
}

/** `Inputs: \`x\` FP32 [-1, 4]. Outputs: \`y\` INT64 [-1].` for an operation description. */
function describeSignature(sig: InferenceSignature): string {
  const list = (ts: InferenceSignature['inputs']) => ts.map((t) => `\`${t.name}\` ${t.datatype} [${t.shape.join(', ')}]`).join(', ');
  return `Inputs: ${list(sig.inputs)}. Outputs: ${list(sig.outputs)}.`;
}
