/**
 * `kea scan DIR|FILE`: derives an ApiSchema from Python sources by KEA's conventions
 * (docs/scan-conventions.md) without running them. Writes YAML to stdout or `--output`;
 * every construct it could not translate is printed to stderr as `file:line: level: message`
 * (and listed in the YAML's header comment). Exit status 0, or 1 with `--strict` when any
 * construct was left out, or 2 on errors (no Python files, unreadable path).
 */
import { writeFileSync } from 'node:fs';
import type { Command } from 'commander';
import type { Target } from '../../lib/api/types.js';
import { formatIssues, scanPython, scanResultToYaml } from '../../lib/scan/index.js';

/** `name` → `{ mlService: { name } }`; `name:port` with `--service` → `{ service: { name, port } }`. */
export function parseTarget(mlService?: string, service?: string): Target | undefined {
  if (service) {
    const m = /^([a-z0-9]([-a-z0-9]*[a-z0-9])?):(\d{1,5})$/.exec(service);
    if (!m) throw new Error(`--service must be NAME:PORT, got ${service}`);
    return { service: { name: m[1], port: Number(m[3]) } };
  }
  if (mlService) return { mlService: { name: mlService } };
  return undefined;
}

/** Registers `kea scan` on a commander program. */
export function register(program: Command): void {
  program
    .command('scan')
    .description('derive an ApiSchema from Python sources (FastAPI routes or a plain model class), without running them')
    .argument('<path>', 'a directory (all *.py below it) or one .py file')
    .option('-o, --output <file>', 'write the YAML here instead of stdout')
    .option('--name <name>', 'metadata.name (default: the directory name)')
    .option('-n, --namespace <ns>', 'metadata.namespace')
    .option('--base-path <path>', 'spec.basePath (default /<name>)')
    .option('--ml-service <name>', 'target an MLService (default: one named like the schema)')
    .option('--service <name:port>', 'target an existing Service instead')
    .option('--title <title>', 'info.title (default: FastAPI(title=...) or the name)')
    .option('--api-version <version>', 'info.version (default: FastAPI(version=...) or 0.1.0)')
    .option('--convention <c>', 'auto | fastapi | plain-class', 'auto')
    .option('--class <name>', 'plain-class convention: only this class')
    .option('--strict', 'exit 1 when any construct could not be translated')
    .action(async (path: string, o: Record<string, string | boolean | undefined>) => {
      try {
        const convention = String(o.convention);
        if (!['auto', 'fastapi', 'plain-class'].includes(convention)) throw new Error(`--convention must be auto, fastapi or plain-class`);
        const result = await scanPython(path, {
          name: o.name as string | undefined,
          namespace: o.namespace as string | undefined,
          basePath: o.basePath as string | undefined,
          target: parseTarget(o.mlService as string | undefined, o.service as string | undefined),
          title: o.title as string | undefined,
          version: o.apiVersion as string | undefined,
          convention: convention as 'auto' | 'fastapi' | 'plain-class',
          className: o.class as string | undefined,
        });
        const yaml = scanResultToYaml(result);
        if (o.output) writeFileSync(String(o.output), yaml);
        else process.stdout.write(yaml);
        if (result.issues.length) process.stderr.write(formatIssues(result.issues) + '\n');
        process.stderr.write(
          `kea scan: ${result.schema.spec.operations?.length ?? 0} operation(s), ${Object.keys(result.schema.spec.components?.schemas ?? {}).length} component(s) from ${result.files.length} file(s) (${result.convention}); ${result.issues.filter((i) => i.level !== 'info').length} issue(s)\n`,
        );
        if (o.strict && result.issues.some((i) => i.level === 'unsupported')) process.exitCode = 1;
      } catch (e) {
        process.stderr.write(`kea scan: ${(e as Error).message}\n`);
        process.exitCode = 2;
      }
    });
}
