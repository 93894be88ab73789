/**
 * An {@link InferenceSignature} from Open Inference Protocol (OIP, KServe v2) model metadata:
 * the JSON a runtime answers on `GET /v2/models/{model}` ("Model Metadata Response":
 * `name`, `versions?`, `platform`, `inputs[]` and `outputs[]` of `{name, datatype, shape}`,
 * shape dimensions -1 where variable). With it, the typed operations of
 * lib/openapi/inference.ts can be derived from what a served model declares
 * (e.g. MLServer with `inputs`/`outputs` in its model-settings.json, Triton from its model
 * config). Pure.
 */
import { Ajv, type ValidateFunction } from 'ajv';
import type { InferenceSignature, TensorSpec } from '../api/types.js';
import { checkTensor } from './inference.js';

/** OIP v2 "Model Metadata Response" (only what a signature needs; other members are allowed). */
export interface ModelMetadataV2 {
  name: string;
  versions?: string[];
  platform: string;
  inputs: Array<{ name: string; datatype: string; shape: number[] }>;
  outputs: Array<{ name: string; datatype: string; shape: number[] }>;
}

const TENSOR = {
  type: 'object',
  required: ['name', 'datatype', 'shape'],
  properties: { name: { type: 'string', minLength: 1 }, datatype: { type: 'string' }, shape: { type: 'array', items: { type: 'integer' } } },
};
const METADATA = {
  type: 'object',
  required: ['name', 'inputs', 'outputs'],
  properties: {
    name: { type: 'string', minLength: 1 },
    platform: { type: 'string' },
    inputs: { type: 'array', items: TENSOR },
    outputs: { type: 'array', items: TENSOR },
  },
};
let validate: ValidateFunction<ModelMetadataV2> | undefined;

/**
 * The signature of a model from its OIP v2 metadata (`protocol: v2`, `modelName` = the
 * metadata's `name`; datatypes upper-cased; shapes as given).
 * @param metadata the parsed JSON body of `GET /v2/models/{model}`.
 * @throws Error when the body is not OIP v2 model metadata (naming the first wrong member), a
 *   tensor has an unknown datatype or a bad shape, or the model declares no input or no output
 *   (as mlserver-sklearn answers unless model-settings.json declares them: then write
 *   `spec.inference` in the ApiSchema instead).
 */
export function signatureFromModelMetadata(metadata: unknown): InferenceSignature {
  validate ??= new Ajv({ allErrors: false, strict: true }).compile<ModelMetadataV2>(METADATA);
  if (!validate(metadata)) {
    const e = validate.errors![0];
    throw new Error(`not OIP v2 model metadata: ${e.instancePath || '/'} ${e.message ?? 'is invalid'}`);
  }
  const tensors = (list: ModelMetadataV2['inputs'], where: string): TensorSpec[] =>
    list.map((t, i) => {
      const spec: TensorSpec = { name: t.name, datatype: t.datatype.toUpperCase(), shape: [...t.shape] };
      checkTensor(spec, `${where}[${i}]`);
      return spec;
    });
  const inputs = tensors(metadata.inputs, 'inputs');
  const outputs = tensors(metadata.outputs, 'outputs');
  if (!inputs.length || !outputs.length) {
    throw new Error(
      `model "${metadata.name}" declares no ${inputs.length ? 'outputs' : 'inputs'} in its metadata: declare the signature in the ApiSchema's spec.inference`,
    );
  }
  return { protocol: 'v2', modelName: metadata.name, inputs, outputs };
}
