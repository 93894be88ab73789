/**
 * `kea init --framework sklearn|pytorch|tensorflow|onnx|custom [--name N] [--input name:FP32:-1,4]...
 * [--output name:INT64:-1]... [--protocol v2|tfserving] [--out DIR]`: writes `<name>-mlservice.yaml`
 * and `<name>-apischema.yaml` templates (lib/templates). For predefined runtimes the declared
 * tensors become `spec.inference`; the command then generates the OpenAPI document from the
 * template (lib/openapi) and prints the typed operations it yields, so a bad signature fails
 * here rather than at admission. Existing files are kept unless `--force`.
 * Exit status 0, 2 on errors (bad options, existing files, unwritable directory).
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Option, type Command } from 'commander';
import type { Framework, TensorSpec } from '../../lib/api/types.js';
import { generateOpenApi, listMethods, apiSchemaId } from '../../lib/openapi/generate.js';
import { FRAMEWORKS, parseTensorArg, renderInitTemplates, type InitOptions } from '../../lib/templates/index.js';

export interface InitCliOptions {
  framework: Framework;
  name?: string;
  namespace?: string;
  input?: string[];
  output?: string[];
  protocol?: 'v2' | 'tfserving';
  basePath?: string;
  modelUri?: string;
  image?: string;
  out?: string;
  force?: boolean;
}

/**
 * Runs `kea init` without touching process state: returns the report text and the exit code.
 * Writes files into `opts.out` (created if missing).
 */
export function runInit(opts: InitCliOptions): { exitCode: number; stdout: string; stderr: string } {
  try {
    const toTensors = (xs: string[] | undefined): TensorSpec[] | undefined => xs?.map(parseTensorArg);
    const initOpts: InitOptions = {
      framework: opts.framework,
      name: opts.name,
      namespace: opts.namespace,
      inputs: toTensors(opts.input),
      outputs: toTensors(opts.output),
      protocol: opts.protocol,
      basePath: opts.basePath,
      modelUri: opts.modelUri,
      image: opts.image,
    };
    const result = renderInitTemplates(initOpts);
    // Prove the template yields a valid document before writing anything.
    const doc = generateOpenApi(result.apiSchema, { gatewayUrl: 'http://localhost:8080' });
    const dir = opts.out ?? '.';
    const existing = result.files.map((f) => join(dir, f.name)).filter((p) => existsSync(p));
    if (existing.length && !opts.force) {
      return { exitCode: 2, stdout: '', stderr: `kea init: ${existing.join(', ')} already exist(s); use --force to overwrite\n` };
    }
    mkdirSync(dir, { recursive: true });
    const lines: string[] = [];
    for (const f of result.files) {
      writeFileSync(join(dir, f.name), f.content);
      lines.push(`wrote ${join(dir, f.name)}`);
    }
    lines.push(`operations of ${result.apiSchema.spec.info.title} (${doc.info.version}):`);
    for (const m of listMethods([{ id: apiSchemaId(result.apiSchema), doc }])) {
      lines.push(`  ${m.method.padEnd(6)} ${m.path}  ${m.operationId}${m.summary ? ` - ${m.summary}` : ''}`);
    }
    return { exitCode: 0, stdout: lines.join('\n') + '\n', stderr: '' };
  } catch (e) {
    return { exitCode: 2, stdout: '', stderr: `kea init: ${(e as Error).message}\n` };
  }
}

const collect = (v: string, prev: string[] = []) => [...prev, v];

/** Registers `kea init` on a commander program. */
export function register(program: Command): void {
  program
    .command('init')
    .description('write MLService and ApiSchema templates; for predefined runtimes the tensor signature becomes typed operations')
    .addOption(new Option('-f, --framework <framework>', 'model runtime').choices(FRAMEWORKS).makeOptionMandatory())
    .option('--name <name>', 'metadata.name of both resources', 'my-model')
    .option('-n, --namespace <ns>', 'metadata.namespace')
    .option('--input <tensor>', 'declared input tensor name:DATATYPE:dims, e.g. input-0:FP32:-1,4 (repeatable)', collect)
    .option('--output <tensor>', 'declared output tensor, e.g. output-0:INT64:-1 (repeatable)', collect)
    .addOption(new Option('--protocol <protocol>', 'inference protocol (default: v2; tensorflow: tfserving)').choices(['v2', 'tfserving']))
    .option('--base-path <path>', 'spec.basePath (default /<name>)')
    .option('--model-uri <uri>', 'modelUri of revision v1 (predefined runtimes)')
    .option('--image <image>', 'container image of revision v1')
    .option('-o, --out <dir>', 'directory to write into', '.')
    .option('--force', 'overwrite existing files')
    .action((o: InitCliOptions) => {
      const r = runInit(o);
      if (r.stdout) process.stdout.write(r.stdout);
      if (r.stderr) process.stderr.write(r.stderr);
      process.exitCode = r.exitCode;
    });
}
