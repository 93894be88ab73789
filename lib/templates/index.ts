/**
 * `kea init` templates: takes a framework, a name and (for predefined runtimes) a declared
 * tensor signature, and gives an MLService and an ApiSchema (objects and commented YAML) that
 * the CRDs accept. For sklearn/pytorch/tensorflow/onnx the signature becomes
 * `spec.inference` (protocol v2 = Open Inference Protocol REST; tensorflow defaults to TF
 * Serving REST); the typed request/response schemas are not written into the YAML but derived
 * from it by lib/openapi (generateOpenApi), so the docs always show the model's real inputs.
 * For `custom` the ApiSchema lists example operations to edit. Pure and deterministic.
 */
import { toKubeYaml } from '../yaml.js';
import type { ApiSchema, Framework, InferenceSignature, MLService, TensorSpec } from '../api/types.js';
import { API_VERSION } from '../api/types.js';
import { checkTensor, TENSOR_DATATYPES } from '../openapi/inference.js';

export const FRAMEWORKS: Framework[] = ['sklearn', 'pytorch', 'tensorflow', 'onnx', 'custom'];

/** Per predefined runtime: default protocol and an example signature (edit it to your model's). */
export const FRAMEWORK_DEFAULTS: Record<
  Exclude<Framework, 'custom'>,
  { protocol: InferenceSignature['protocol']; inputs: TensorSpec[]; outputs: TensorSpec[]; note: string }
> = {
  sklearn: {
    protocol: 'v2',
    inputs: [{ name: 'input-0', datatype: 'FP32', shape: [-1, 4] }],
    outputs: [{ name: 'output-0', datatype: 'INT64', shape: [-1] }],
    note: 'scikit-learn model served by the runtime over the Open Inference Protocol (v2)',
  },
  pytorch: {
    protocol: 'v2',
    inputs: [{ name: 'input-0', datatype: 'FP32', shape: [-1, 3, 224, 224] }],
    outputs: [{ name: 'output-0', datatype: 'FP32', shape: [-1, 1000] }],
    note: 'PyTorch model served by the runtime over the Open Inference Protocol (v2)',
  },
  tensorflow: {
    protocol: 'tfserving',
    inputs: [{ name: 'x', datatype: 'FP32', shape: [-1, 28, 28] }],
    outputs: [{ name: 'probabilities', datatype: 'FP32', shape: [-1, 10] }],
    note: 'TensorFlow SavedModel served by TensorFlow Serving (REST predict API)',
  },
  onnx: {
    protocol: 'v2',
    inputs: [{ name: 'input', datatype: 'FP32', shape: [-1, 4] }],
    outputs: [{ name: 'output', datatype: 'FP32', shape: [-1, 3] }],
    note: 'ONNX model served by the runtime over the Open Inference Protocol (v2)',
  },
};

/** Options of {@link renderInitTemplates}. */
export interface InitOptions {
  framework: Framework;
  /** metadata.name of both resources (DNS-1035 label, ≤ 42 characters). Default `my-model`. */
  name?: string;
  namespace?: string;
  /** Declared input tensors (predefined runtimes only). Default: the framework's example. */
  inputs?: TensorSpec[];
  outputs?: TensorSpec[];
  /** Inference protocol (predefined runtimes only). Default: the framework's. */
  protocol?: InferenceSignature['protocol'];
  /** spec.basePath, default `/<name>`. */
  basePath?: string;
  /** Model location of revision v1 (predefined runtimes). Default `pvc://models/<name>/v1`. */
  modelUri?: string;
  /** Container image of revision v1 (required for custom; default a placeholder). */
  image?: string;
}

export interface InitResult {
  mlService: MLService;
  apiSchema: ApiSchema;
  /** File name (relative) → YAML text. */
  files: Array<{ name: string; content: string }>;
}

/**
 * Parses a tensor argument `name:DATATYPE:dims`, e.g. `input-0:FP32:-1,4` (dims comma-separated,
 * -1 = variable, empty = scalar). The datatype is case-insensitive (OIP v2 names).
 * @throws Error with the offending text and the expected form.
 */
export function parseTensorArg(text: string): TensorSpec {
  const m = /^([^:]+):([A-Za-z0-9]+):(.*)$/.exec(text.trim());
  const expected = 'expected name:DATATYPE:dims, e.g. input-0:FP32:-1,4';
  if (!m) throw new Error(`bad tensor "${text}": ${expected}`);
  const datatype = m[2].toUpperCase();
  if (!(TENSOR_DATATYPES as readonly string[]).includes(datatype)) {
    throw new Error(`bad tensor "${text}": unknown datatype ${m[2]} (one of ${TENSOR_DATATYPES.join(', ')})`);
  }
  const dimsText = m[3].trim().replace(/^\[|\]$/g, '');
  const shape = dimsText === '' ? [] : dimsText.split(',').map((d) => Number(d.trim()));
  const t: TensorSpec = { name: m[1].trim(), datatype, shape };
  try {
    checkTensor(t, 'tensor');
  } catch (e) {
    throw new Error(`bad tensor "${text}": ${(e as Error).message.replace(/^tensor: /, '')}; ${expected}`);
  }
  return t;
}

const NAME_RE = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;

/** One object as YAML headed by comment lines, through lib/yaml.ts (escaped comments, safe for go-yaml). */
function yamlFile(obj: unknown, header: string): string {
  return toKubeYaml(obj, header.split('\n'));
}

/** The two template files (MLService, ApiSchema), each opening with its explanatory header. */
function initResult(name: string, mlService: MLService, apiSchema: ApiSchema, mlHeader: string, apiHeader: string): InitResult {
  return {
    mlService,
    apiSchema,
    files: [
      { name: `${name}-mlservice.yaml`, content: yamlFile(mlService, mlHeader) },
      { name: `${name}-apischema.yaml`, content: yamlFile(apiSchema, apiHeader) },
    ],
  };
}

function describeTensors(ts: TensorSpec[]): string {
  return ts.map((t) => `${t.name} ${t.datatype} [${t.shape.join(', ')}]`).join(', ');
}

/**
 * Renders the templates.
 * @throws Error on a bad name, an unknown framework, or tensor options given for `custom`.
 */
export function renderInitTemplates(opts: InitOptions): InitResult {
  const name = opts.name ?? 'my-model';
  if (!NAME_RE.test(name) || name.length > 42) {
    throw new Error(`bad name "${name}": must be a DNS-1035 label (lower case letters, digits and '-', starting with a letter) of at most 42 characters`);
  }
  if (!FRAMEWORKS.includes(opts.framework)) throw new Error(`unknown framework "${opts.framework}" (one of ${FRAMEWORKS.join(', ')})`);
  const basePath = opts.basePath ?? `/${name}`;
  const metadata = { name, ...(opts.namespace ? { namespace: opts.namespace } : {}) };

  if (opts.framework === 'custom') {
    if (opts.inputs?.length || opts.outputs?.length || opts.protocol) {
      throw new Error(
        '--input, --output and --protocol apply to predefined runtimes (sklearn, pytorch, tensorflow, onnx); for custom, edit the operations in the ApiSchema',
      );
    }
    const mlService: MLService = {
      apiVersion: API_VERSION,
      kind: 'MLService',
      metadata,
      spec: {
        framework: 'custom',
        port: 8080,
        healthPath: '/healthz',
        revisions: [{ name: 'v1', image: opts.image ?? `registry.example.com/${name}:v1`, replicas: 1, weight: 100 }],
      },
    };
    const apiSchema: ApiSchema = {
      apiVersion: API_VERSION,
      kind: 'ApiSchema',
      metadata,
      spec: {
        target: { mlService: { name } },
        basePath,
        info: { title: `${name} API`, version: '1.0.0', description: `The public API of ${name}.` },
        defaults: { access: { mode: 'authenticated' }, timeout: '5s' },
        operations: [
          {
            operationId: 'predict',
            method: 'POST',
            path: '/predict',
            summary: 'Predict for a batch of rows',
            requestBody: {
              required: true,
              schema: {
                type: 'object',
                additionalProperties: false,
                required: ['features'],
                properties: {
                  features: { type: 'array', minItems: 1, items: { type: 'array', items: { type: 'number' }, minItems: 4, maxItems: 4 } },
                },
              },
              example: { features: [[5.1, 3.5, 1.4, 0.2]] },
            },
            responses: {
              '200': {
                description: 'One prediction per row.',
                schema: { type: 'object', required: ['predictions'], properties: { predictions: { type: 'array', items: { type: 'integer' } } } },
                example: { predictions: [0] },
              },
            },
          },
          {
            operationId: 'health',
            method: 'GET',
            path: '/healthz',
            summary: 'Liveness',
            access: { mode: 'public' },
            responses: { '200': { description: 'The service is up.' } },
          },
        ],
      },
    };
    return initResult(
      name,
      mlService,
      apiSchema,
      `MLService ${name}: your own container image (framework custom) serving HTTP on port 8080.\nEdit the image; add revisions with weights (percent, summing to 100) for a canary.\nApply with: kubectl apply -f ${name}-mlservice.yaml`,
      `ApiSchema ${name}: the public API at <gateway>${basePath}. Describe each method your service\nexposes: path, inputs (parameters, requestBody JSON Schema), outputs (responses) and who may\ncall it (access: public | authenticated | restricted with roles/groups/scopes).\nDocs appear at <gateway>/docs/<namespace>/${name}; check changes with: kea diff OLD NEW`,
    );
  }

  const defaults = FRAMEWORK_DEFAULTS[opts.framework];
  const inputs = opts.inputs?.length ? opts.inputs : defaults.inputs;
  const outputs = opts.outputs?.length ? opts.outputs : defaults.outputs;
  const protocol = opts.protocol ?? defaults.protocol;
  inputs.forEach((t, i) => checkTensor(t, `input ${i + 1}`));
  outputs.forEach((t, i) => checkTensor(t, `output ${i + 1}`));
  const mlService: MLService = {
    apiVersion: API_VERSION,
    kind: 'MLService',
    metadata,
    spec: {
      framework: opts.framework,
      revisions: [{ name: 'v1', modelUri: opts.modelUri ?? `pvc://models/${name}/v1`, ...(opts.image ? { image: opts.image } : {}), replicas: 1, weight: 100 }],
    },
  };
  const apiSchema: ApiSchema = {
    apiVersion: API_VERSION,
    kind: 'ApiSchema',
    metadata,
    spec: {
      target: { mlService: { name } },
      basePath,
      info: {
        title: `${name} model`,
        version: '1.0.0',
        description: `${defaults.note}. Inputs: ${describeTensors(inputs)}. Outputs: ${describeTensors(outputs)}.`,
      },
      defaults: { access: { mode: 'authenticated' }, timeout: '5s' },
      inference: {
        protocol,
        modelName: name,
        inputs: inputs.map((t) => ({ ...t, shape: [...t.shape] })),
        outputs: outputs.map((t) => ({ ...t, shape: [...t.shape] })),
      },
    },
  };
  const route = protocol === 'v2' ? `POST ${basePath}/v2/models/${name}/infer` : `POST ${basePath}/v1/models/${name}:predict`;
  return initResult(
    name,
    mlService,
    apiSchema,
    `MLService ${name}: ${defaults.note}.\nPoint modelUri at your model (s3://, gs://, pvc:// or file://); add revisions with weights\n(percent, summing to 100) for a canary. Apply with: kubectl apply -f ${name}-mlservice.yaml`,
    `ApiSchema ${name}: the declared tensor signature (names, datatypes, shapes; -1 = variable)\nbecomes typed operations, e.g. ${route} whose inputs are checked\nagainst these shapes at the gateway and documented at <gateway>/docs/<namespace>/${name}.\nEdit spec.inference to match your model; add spec.operations for extra methods.`,
  );
}
