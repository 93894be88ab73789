/**
 * `kea diff OLD NEW`: the classified difference between two versions of an API.
 * OLD and NEW are each a file (JSON or YAML; an OpenAPI 3.x document, or an ApiSchema —
 * the first ApiSchema of a multi-document YAML — which is turned into OpenAPI with
 * lib/openapi generateOpenApi) or an http(s) URL of a document (e.g. the gateway's
 * `/openapi/<ns>/<name>.json`). Rules: docs/api-diff.md.
 * Output: `--format text` (default), `markdown` or `json` (the ApiDiff object).
 * Exit status: 0 no breaking change; 1 breaking changes (unless `--no-fail-on-breaking`, then 0);
 * 2 errors (unreadable or invalid input). Like `diff(1)` and `git diff --exit-code`, so CI can gate on it.
 */
import { readFileSync } from 'node:fs';
import { Option, type Command } from 'commander';
import YAML from 'yaml';
import type { ApiSchema } from '../../lib/api/types.js';
import { diffOpenApi, renderDiffMarkdown, renderDiffText } from '../../lib/openapi/diff.js';
import { generateOpenApi, type OpenAPIObject } from '../../lib/openapi/generate.js';

export interface DiffCliOptions {
  format?: 'text' | 'markdown' | 'json';
  failOnBreaking?: boolean;
  gatewayUrl?: string;
  timeout?: string;
}

/**
 * Loads an OpenAPI document from a file or URL; ApiSchemas are converted with generateOpenApi.
 * @throws Error naming the location when it cannot be read or is neither OpenAPI 3 nor an ApiSchema.
 */
export async function loadApiDocument(location: string, gatewayUrl = 'http://localhost:8080', timeoutMs = 10000): Promise<OpenAPIObject> {
  let text: string;
  if (/^https?:\/\//i.test(location)) {
    const r = await fetch(location, { signal: AbortSignal.timeout(timeoutMs), headers: { accept: 'application/json, application/yaml;q=0.9' } });
    if (!r.ok) throw new Error(`${location}: HTTP ${r.status}`);
    text = await r.text();
  } else {
    try {
      text = readFileSync(location, 'utf8');
    } catch (e) {
      throw new Error(`${location}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`);
    }
  }
  let docs: unknown[];
  try {
    docs = YAML.parseAllDocuments(text).map((d) => {
      if (d.errors.length) throw d.errors[0];
      return d.toJS({ maxAliasCount: -1 });
    });
  } catch (e) {
    throw new Error(`${location}: not JSON or YAML: ${(e as Error).message.split('\n')[0]}`);
  }
  const objs = docs.filter((d): d is Record<string, unknown> => !!d && typeof d === 'object' && !Array.isArray(d));
  const openapi = objs.find((d) => typeof d.openapi === 'string');
  if (openapi) {
    if (!String(openapi.openapi).startsWith('3.')) throw new Error(`${location}: OpenAPI ${openapi.openapi} is not supported (3.0 or 3.1)`);
    return openapi as unknown as OpenAPIObject;
  }
  const schema = objs.find((d) => d.kind === 'ApiSchema');
  if (schema) {
    try {
      return generateOpenApi(schema as unknown as ApiSchema, { gatewayUrl });
    } catch (e) {
      throw new Error(`${location}: ApiSchema ${(schema as { metadata?: { name?: string } }).metadata?.name ?? ''}: ${(e as Error).message}`);
    }
  }
  throw new Error(`${location}: neither an OpenAPI 3 document nor an ApiSchema (kind: ApiSchema)`);
}

/** Runs `kea diff` without touching process state: returns output and exit code. */
export async function runDiff(oldLoc: string, newLoc: string, opts: DiffCliOptions = {}): Promise<{ exitCode: number; stdout: string; stderr: string }> {
  try {
    const timeout = Number(opts.timeout ?? 10000);
    const [a, b] = await Promise.all([loadApiDocument(oldLoc, opts.gatewayUrl, timeout), loadApiDocument(newLoc, opts.gatewayUrl, timeout)]);
    const diff = diffOpenApi(a, b);
    const format = opts.format ?? 'text';
    const stdout = format === 'json' ? JSON.stringify(diff, null, 2) + '\n' : format === 'markdown' ? renderDiffMarkdown(diff) : renderDiffText(diff);
    const fail = opts.failOnBreaking !== false;
    return {
      exitCode: diff.breaking && fail ? 1 : 0,
      stdout,
      stderr: diff.breaking ? `kea diff: ${diff.changes.filter((c) => c.breaking).length} breaking change(s)\n` : '',
    };
  } catch (e) {
    return { exitCode: 2, stdout: '', stderr: `kea diff: ${(e as Error).message}\n` };
  }
}

/** Registers `kea diff` on a commander program. */
export function register(program: Command): void {
  program
    .command('diff')
    .description('classify the changes between two API versions (OpenAPI documents or ApiSchema YAML); exit 1 on breaking changes')
    .argument('<old>', 'old version: file (OpenAPI JSON/YAML or ApiSchema YAML) or http(s) URL')
    .argument('<new>', 'new version: same forms')
    .addOption(new Option('--format <format>', 'output format').choices(['text', 'markdown', 'json']).default('text'))
    .option('--no-fail-on-breaking', 'exit 0 even when there are breaking changes')
    .option('--gateway-url <url>', 'gateway URL used when converting ApiSchemas', 'http://localhost:8080')
    .option('--timeout <ms>', 'fetch timeout for URLs in ms', '10000')
    .action(async (oldLoc: string, newLoc: string, o: DiffCliOptions) => {
      const r = await runDiff(oldLoc, newLoc, o);
      if (r.stdout) process.stdout.write(r.stdout);
      if (r.stderr) process.stderr.write(r.stderr);
      process.exitCode = r.exitCode;
    });
}
