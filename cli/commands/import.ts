/**
 * `kea import URL|FILE`: an ApiSchema from an OpenAPI 3.0/3.1 document, e.g. the
 * `/openapi.json` a FastAPI service serves. Writes YAML to stdout or `--output`; everything
 * that cannot be routed or enforced is printed to stderr (and listed in the YAML's header
 * comment). `--refresh` adds `spec.source.openapi` so the controller keeps it current.
 * Exit status 0, 1 with `--strict` when anything was not routed, 2 on errors.
 */
import { writeFileSync } from 'node:fs';
import type { Command } from 'commander';
import { importOpenApi, importResultToYaml, loadOpenApi } from '../../lib/import/index.js';
import { commentSafe } from '../../lib/yaml.js';
import { parseTarget } from './scan.js';

/** Registers `kea import` on a commander program. */
export function register(program: Command): void {
  program
    .command('import')
    .description('write an ApiSchema from an OpenAPI 3.0/3.1 document (URL or file); 3.1 is converted to 3.0')
    .argument('<location>', 'http(s) URL (e.g. http://127.0.0.1:8080/openapi.json) or a JSON/YAML file')
    .option('-o, --output <file>', 'write the YAML here instead of stdout')
    .option('--name <name>', 'metadata.name (default: info.title)')
    .option('-n, --namespace <ns>', 'metadata.namespace')
    .option('--base-path <path>', 'spec.basePath (default /<name>)')
    .option('--ml-service <name>', 'target an MLService (default: one named like the schema)')
    .option('--service <name:port>', 'target an existing Service instead')
    .option('--refresh [path]', 'add spec.source.openapi (refresh on) so the controller refetches the document from the target (default path /openapi.json)')
    .option('--interval <seconds>', 'refresh period in seconds', '60')
    .option('--timeout <ms>', 'fetch timeout in ms', '10000')
    .option('--strict', 'exit 1 when anything could not be routed')
    .action(async (location: string, o: Record<string, string | boolean | undefined>) => {
      try {
        const doc = await loadOpenApi(location, Number(o.timeout));
        const refresh = o.refresh;
        const result = importOpenApi(doc, {
          name: o.name as string | undefined,
          namespace: o.namespace as string | undefined,
          basePath: o.basePath as string | undefined,
          target: parseTarget(o.mlService as string | undefined, o.service as string | undefined),
          source: refresh
            ? { openapi: { path: typeof refresh === 'string' ? refresh : '/openapi.json', refresh: true, intervalSeconds: Number(o.interval) } }
            : undefined,
        });
        const yaml = importResultToYaml(result, location);
        if (o.output) writeFileSync(String(o.output), yaml);
        else process.stdout.write(yaml);
        // Items quote the document: escape control and line-break characters for the terminal.
        for (const u of result.unroutable) process.stderr.write(`not routed: ${commentSafe(u)}\n`);
        process.stderr.write(`kea import: ${result.schema.spec.operations?.length ?? 0} operation(s); ${result.unroutable.length} item(s) not routed\n`);
        if (o.strict && result.unroutable.length) process.exitCode = 1;
      } catch (e) {
        process.stderr.write(`kea import: ${(e as Error).message}\n`);
        process.exitCode = 2;
      }
    });
}
