/**
 * Predefined model runtimes: the container KEA runs for `spec.framework` when a revision
 * gives no image of its own, with the arguments and health paths of that runtime. Images and
 * flags follow KServe v0.14's ClusterServingRuntimes (kserve/config/runtimes):
 *   - sklearn: `kserve/sklearnserver:v0.14.0` (KServe Python model server, v1+v2 REST). On the
 *     local stack, dev/localpods.ts runs a Deployment of this image as MLServer 1.7 with
 *     mlserver-sklearn instead: both serve the Open Inference Protocol v2 REST API
 *     (`/v2/models/{model}/infer`, `/v2/health/ready`) on the same model file, so the typed
 *     `protocol: v2` operations of an ApiSchema hold for both;
 *   - pytorch: `pytorch/torchserve-kfs:0.9.0` (TorchServe with the KServe wrapper, v2 REST);
 *   - tensorflow: `tensorflow/serving:2.6.2` (TF Serving REST API);
 *   - onnx: `nvcr.io/nvidia/tritonserver:23.05-py3` (Triton, Open Inference Protocol v2).
 * Model files: `s3://` and `gs://` URIs are downloaded before start by KServe's storage
 * initializer into an emptyDir at {@link MODEL_MOUNT}; `pvc://<claim>/<path>` mounts the claim
 * read-only at {@link PVC_MOUNT}; `file://<path>` is a path inside the image.
 */
import type { Framework } from '../../lib/api/types.js';

export const MODEL_MOUNT = '/mnt/models';
export const PVC_MOUNT = '/mnt/pvc';
export const STORAGE_INITIALIZER_IMAGE = 'kserve/storage-initializer:v0.14.0';

export interface RuntimeContext {
  /** Model name in the runtime's URLs (the MLService name). */
  model: string;
  /** Directory the runtime loads the model from. */
  dir: string;
  /** HTTP port the runtime listens on. */
  port: number;
}

export interface Runtime {
  image: string;
  command?: string[];
  args(ctx: RuntimeContext): string[];
  env?: Array<{ name: string; value: string }>;
  /** Readiness probe path. */
  readinessPath(model: string): string;
  /** Liveness probe path. */
  livenessPath(model: string): string;
}

const v2Ready = (): string => '/v2/health/ready';
const v2Live = (): string => '/v2/health/live';

/** Runtime per predefined framework (not `custom`). */
export const RUNTIMES: Record<Exclude<Framework, 'custom'>, Runtime> = {
  sklearn: {
    image: 'kserve/sklearnserver:v0.14.0',
    args: ({ model, dir, port }) => [`--model_name=${model}`, `--model_dir=${dir}`, `--http_port=${port}`],
    readinessPath: v2Ready,
    livenessPath: v2Live,
  },
  pytorch: {
    image: 'pytorch/torchserve-kfs:0.9.0',
    args: ({ dir }) => ['torchserve', '--start', `--model-store=${dir}/model-store`, `--ts-config=${dir}/config/config.properties`],
    env: [{ name: 'PROTOCOL_VERSION', value: 'v2' }],
    readinessPath: v2Ready,
    livenessPath: v2Live,
  },
  tensorflow: {
    image: 'tensorflow/serving:2.6.2',
    command: ['/usr/bin/tensorflow_model_server'],
    args: ({ model, dir, port }) => ['--port=9000', `--rest_api_port=${port}`, `--model_name=${model}`, `--model_base_path=${dir}`],
    readinessPath: (model) => `/v1/models/${model}`,
    livenessPath: (model) => `/v1/models/${model}`,
  },
  onnx: {
    image: 'nvcr.io/nvidia/tritonserver:23.05-py3',
    command: ['tritonserver'],
    args: ({ dir, port }) => [`--model-repository=${dir}`, `--http-port=${port}`, '--grpc-port=9000', '--allow-http=true', '--allow-grpc=true'],
    readinessPath: v2Ready,
    livenessPath: v2Live,
  },
};

/** Where a revision's model files come from, and what the pod needs to see them. */
export interface ModelLocation {
  /** Directory inside the container. */
  dir: string;
  /** KServe storage initializer download (remote object stores). */
  download?: { uri: string };
  /** PersistentVolumeClaim mounted read-only at {@link PVC_MOUNT}. */
  pvcClaim?: string;
}

/** Resolve a model URI (`s3://`, `gs://`, `pvc://`, `file://`) to a {@link ModelLocation}. */
export function modelLocation(uri: string): ModelLocation {
  if (uri.startsWith('pvc://')) {
    const rest = uri.slice('pvc://'.length);
    const slash = rest.indexOf('/');
    const claim = slash < 0 ? rest : rest.slice(0, slash);
    const sub = slash < 0 ? '' : rest.slice(slash + 1).replace(/\/+$/, '');
    return { dir: sub ? `${PVC_MOUNT}/${sub}` : PVC_MOUNT, pvcClaim: claim };
  }
  if (uri.startsWith('file://')) {
    const p = uri.slice('file://'.length);
    return { dir: p.startsWith('/') ? p : `/${p}` };
  }
  return { dir: MODEL_MOUNT, download: { uri } };
}
