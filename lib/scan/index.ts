/**
 * `kea scan`: derives an ApiSchema from Python sources without running them.
 *
 * Takes in: a directory (every `*.py` below it, skipping virtualenvs, caches and hidden
 * folders) or a single `.py` file. Parses each with tree-sitter, then applies one convention:
 *   - `fastapi`: FastAPI/APIRouter route decorators ({@link scanFastApi});
 *   - `plain-class`: public methods of plain classes ({@link scanPlainClasses});
 *   - `auto` (default): `fastapi` when any route decorator is found, else `plain-class`.
 * Gives out: an `ApiSchema` (kea.dev/v1alpha1) whose operations, parameters, bodies and
 * components follow docs/scan-conventions.md, plus every construct it could not translate as
 * a {@link ScanIssue} with file:line. Operations the CRD would reject (e.g. a trailing slash
 * path) are left out *and reported*; nothing is dropped silently.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, join, relative, resolve, sep } from 'node:path';
import { commentSafe, toKubeYaml } from '../yaml.js';
import { derivedApiSchema, type ApiSchema, type Operation, type Target } from '../api/types.js';
import { scanFastApi, type ScannedOperation } from './fastapi.js';
import { scanPlainClasses } from './plainclass.js';
import { parsePython, type PyFile } from './python.js';
import { Reporter, SchemaBuilder, SymbolTable, type ScanIssue } from './schema.js';

export type { ScanIssue } from './schema.js';

export interface ScanOptions {
  /** metadata.name (default: the directory or file name, as a DNS label). */
  name?: string;
  namespace?: string;
  /** spec.basePath (default `/<name>`). */
  basePath?: string;
  /** spec.target (default `{ mlService: { name } }`). */
  target?: Target;
  /** info.title / info.version (default: FastAPI(title=, version=), else name / `0.1.0`). */
  title?: string;
  version?: string;
  convention?: 'auto' | 'fastapi' | 'plain-class';
  /** Plain-class convention: only this class. */
  className?: string;
}

export interface ScanResult {
  schema: ApiSchema;
  issues: ScanIssue[];
  /** Scanned files, relative to the scan root. */
  files: string[];
  convention: 'fastapi' | 'plain-class';
}

const SKIP_DIRS = new Set(['__pycache__', 'node_modules', 'venv', '.venv', 'env', 'site-packages', 'dist', 'build']);

function pythonFiles(root: string): string[] {
  const st = statSync(root);
  if (st.isFile()) return [root];
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      if (e.name.startsWith('.')) continue;
      const p = join(dir, e.name);
      if (e.isDirectory()) {
        if (!SKIP_DIRS.has(e.name) && !existsPyvenv(p)) walk(p);
      } else if (e.isFile() && e.name.endsWith('.py')) out.push(p);
    }
  };
  walk(root);
  return out;
}

function existsPyvenv(dir: string): boolean {
  try {
    return statSync(join(dir, 'pyvenv.cfg')).isFile();
  } catch {
    return false;
  }
}

/** A DNS-1123 label from any name (`Iris_V1` → `iris-v1`). */
export function dnsLabel(s: string): string {
  const out = s
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 63)
    .replace(/-+$/, '');
  return out || 'api';
}

const PATH_RE = /^(\/([A-Za-z0-9._~:@-]+|[{][A-Za-z_][A-Za-z0-9_]*[}]))+$/;
const OPID_RE = /^[A-Za-z_][A-Za-z0-9_.-]*$/;

/**
 * Scans Python sources and returns the derived ApiSchema and issues.
 * @param root a directory or a `.py` file.
 * @throws Error when `root` does not exist or holds no Python file.
 */
export async function scanPython(root: string, opts: ScanOptions = {}): Promise<ScanResult> {
  const abs = resolve(root);
  const isFile = statSync(abs).isFile();
  const base = isFile ? resolve(abs, '..') : abs;
  const paths = pythonFiles(abs);
  if (!paths.length) throw new Error(`${root}: no Python (*.py) files found`);
  const files: PyFile[] = [];
  for (const p of paths) {
    const rel = relative(base, p);
    const module = rel
      .replace(/\.py$/, '')
      .split(sep)
      .filter((s) => s !== '__init__')
      .join('.');
    files.push(await parsePython(isFile ? root : join(root, rel), module, readFileSync(p, 'utf8')));
  }
  const reporter = new Reporter();
  for (const f of files) {
    if (f.root.hasError) {
      const err = f.root.descendantsOfType('ERROR')[0] ?? f.root;
      reporter.add(f, err, 'warning', 'syntax error; constructs near it may be missed');
    }
  }
  const symbols = new SymbolTable(files, reporter);
  const builder = new SchemaBuilder(symbols, reporter);

  let convention: 'fastapi' | 'plain-class';
  let scanned: ScannedOperation[];
  let info: { title?: string; version?: string; description?: string } | undefined;
  const fast = opts.convention === 'plain-class' ? undefined : scanFastApi(files, symbols, builder, reporter);
  if (fast && (fast.operations.length || opts.convention === 'fastapi')) {
    convention = 'fastapi';
    scanned = fast.operations;
    info = fast.info;
  } else {
    convention = 'plain-class';
    const plain = scanPlainClasses(files, symbols, builder, reporter, opts.className);
    scanned = plain.operations;
    if (plain.classes.length === 1) info = { title: plain.classes[0].name, description: plain.classes[0].doc };
  }

  // Admission checks the CRD would enforce: report and leave out instead of failing apply.
  const operations: Operation[] = [];
  const ids = new Set<string>();
  const routes = new Set<string>();
  for (const { op, file, node } of scanned) {
    const where = `${op.method} ${op.path}`;
    if (!(op.path === '/' || PATH_RE.test(op.path))) {
      reporter.add(
        file,
        node,
        'unsupported',
        `${where}: path is not a valid ApiSchema path template (segments of [A-Za-z0-9._~:@-] or {name}, no trailing slash); operation left out`,
      );
      continue;
    }
    if (routes.has(where)) {
      reporter.add(file, node, 'unsupported', `${where}: declared twice; the later declaration is left out`);
      continue;
    }
    let id = op.operationId.replace(/[^A-Za-z0-9_.-]/g, '_');
    if (!OPID_RE.test(id)) id = `op_${id}`;
    id = id.slice(0, 64);
    if (ids.has(id)) {
      const alt = `${id.slice(0, 56)}_${op.method.toLowerCase()}`;
      reporter.add(file, node, 'info', `${where}: operationId ${id} is already used; renamed ${alt}`);
      id = alt;
    }
    if (ids.has(id)) {
      reporter.add(file, node, 'unsupported', `${where}: operationId ${id} is not unique; operation left out`);
      continue;
    }
    op.operationId = id;
    if (op.requestBody && (op.method === 'GET' || op.method === 'HEAD')) {
      reporter.add(file, node, 'unsupported', `${where}: a ${op.method} request body cannot be routed; body left out`);
      delete op.requestBody;
    }
    for (const p of op.parameters ?? []) {
      if (p.name.length > 48) reporter.add(file, node, 'unsupported', `${where}: parameter name ${p.name} is longer than 48 characters`);
    }
    if (op.description && op.description.length > 16384) {
      reporter.add(file, node, 'warning', `${where}: description longer than 16384 characters; truncated`);
      op.description = op.description.slice(0, 16384);
    }
    if (op.summary && op.summary.length > 512) op.summary = op.summary.slice(0, 512);
    ids.add(id);
    routes.add(where);
    const { operationId, method, path, ...rest } = op;
    operations.push({ operationId, method, path, ...rest });
  }
  if (!operations.length) {
    reporter.add(files[0], files[0].root, 'unsupported', `no operation found by the ${convention} convention`);
  }

  const name = dnsLabel(opts.name ?? basename(isFile ? base : abs));
  const schema = derivedApiSchema({
    name,
    namespace: opts.namespace,
    target: opts.target,
    basePath: opts.basePath,
    title: opts.title ?? info?.title ?? name,
    version: opts.version ?? info?.version ?? '0.1.0',
    description: info?.description,
    schemas: sortKeys(builder.components),
    operations,
  });

  return {
    schema,
    issues: reporter.issues.sort((a, b) => a.file.localeCompare(b.file) || a.line - b.line),
    files: files.map((f) => f.path),
    convention,
  };
}

function sortKeys<T>(o: Record<string, T>): Record<string, T> {
  return Object.fromEntries(Object.entries(o).sort(([a], [b]) => a.localeCompare(b)));
}

/** `file:line: level: message`, one per line; control and line-break characters escaped (they come from the sources). */
export function formatIssues(issues: ScanIssue[]): string {
  return issues.map((i) => commentSafe(`${i.file}:${i.line}: ${i.level}: ${i.message}`)).join('\n');
}

/**
 * The ApiSchema as YAML (lib/yaml.ts: safe for go-yaml, so kubectl reads exactly this one
 * object), headed by a comment listing every issue (so nothing is dropped silently). File names
 * and messages go into the comment escaped, one line per issue.
 */
export function scanResultToYaml(result: ScanResult): string {
  const head = [`Generated by \`kea scan\` (${result.convention} convention) from ${result.files.length} file(s).`];
  const notable = result.issues.filter((i) => i.level !== 'info');
  if (notable.length) {
    head.push(`${notable.length} construct(s) not (fully) translated:`);
    for (const i of notable) head.push(`  ${commentSafe(`${i.file}:${i.line}: ${i.level}: ${i.message}`)}`);
  }
  return toKubeYaml(result.schema, head);
}
