/**
 * Python source access for `kea scan`: parsing with tree-sitter (web-tree-sitter + the
 * `tree-sitter-python.wasm` grammar shipped in the `tree-sitter-python` package) and small
 * helpers that read *literal* values out of the syntax tree. Nothing here executes Python.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { Language, Parser, type Node } from 'web-tree-sitter';

export type { Node } from 'web-tree-sitter';

let parserPromise: Promise<Parser> | undefined;
let parserReady: Parser | undefined;

/**
 * The shared tree-sitter parser for Python, initialised once per process (loads two WASM
 * modules, ~1 MB).
 * @throws Error when the grammar cannot be found in node_modules/tree-sitter-python.
 */
export function pythonParser(): Promise<Parser> {
  parserPromise ??= (async () => {
    const require = createRequire(import.meta.url);
    await Parser.init();
    const wasm = require.resolve('tree-sitter-python/tree-sitter-python.wasm');
    const language = await Language.load(new Uint8Array(readFileSync(wasm)));
    const parser = new Parser();
    parser.setLanguage(language);
    parserReady = parser;
    return parser;
  })();
  return parserPromise;
}

/**
 * Parses a string annotation (a forward reference such as `"Optional[Item]"`) into its type
 * node. Needs {@link pythonParser} to have been initialised (it is, once any file is parsed).
 */
export function parseAnnotation(text: string): Node | undefined {
  if (!parserReady || /[\n\r]/.test(text)) return undefined;
  const tree = parserReady.parse(`_: ${text}\n`);
  const a = tree?.rootNode.namedChildren[0]?.namedChildren[0];
  if (!tree || tree.rootNode.hasError || a?.type !== 'assignment') return undefined;
  return a.childForFieldName('type') ?? undefined;
}

/** A parsed Python file. `line` numbers in reports are 1-based. */
export interface PyFile {
  /** Path as given to the scanner (relative to the scan root when scanning a directory). */
  path: string;
  /** Dotted module name relative to the scan root, e.g. `routes` or `pkg.models`. */
  module: string;
  root: Node;
}

/** Parses Python source text. @throws Error if tree-sitter returns no tree. */
export async function parsePython(path: string, module: string, source: string): Promise<PyFile> {
  const parser = await pythonParser();
  const tree = parser.parse(source);
  if (!tree) throw new Error(`${path}: tree-sitter could not parse the file`);
  return { path, module, root: tree.rootNode };
}

/** 1-based line of a node. */
export const lineOf = (n: Node): number => n.startPosition.row + 1;

/** Sentinel for a Python value that is not a literal (or `...`). */
export const NOT_LITERAL = Symbol('not-literal');
/** The Python `...` (Ellipsis) literal, FastAPI/pydantic's old "required" marker. */
export const ELLIPSIS = Symbol('ellipsis');
export type PyValue = unknown;

/** Content of a Python string literal (handles prefixes r/b/f-less, concatenation, escapes). */
export function stringValue(n: Node | null | undefined): string | undefined {
  if (!n) return undefined;
  if (n.type === 'concatenated_string') {
    const parts = n.namedChildren.map((c) => stringValue(c));
    return parts.every((p) => p !== undefined) ? parts.join('') : undefined;
  }
  if (n.type !== 'string') return undefined;
  const start = n.namedChildren.find((c) => c.type === 'string_start')?.text ?? '"';
  const prefix = start.replace(/["']/g, '').toLowerCase();
  if (prefix.includes('f')) {
    // f-strings are only literal when they hold no replacement fields.
    if (n.namedChildren.some((c) => c.type === 'interpolation')) return undefined;
  }
  const end = n.namedChildren.find((c) => c.type === 'string_end')?.text ?? '"';
  const text = n.text.slice(start.length, n.text.length - end.length);
  return prefix.includes('r') ? text : unescapePython(text);
}

function unescapePython(s: string): string {
  return s.replace(/\\(x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|N\{[^}]*\}|[0-7]{1,3}|\n|.)/g, (_m, e: string) => {
    switch (e[0]) {
      case 'n':
        return '\n';
      case 't':
        return '\t';
      case 'r':
        return '\r';
      case '\\':
        return '\\';
      case "'":
        return "'";
      case '"':
        return '"';
      case '\n':
        return '';
      case 'a':
        return '\x07';
      case 'b':
        return '\b';
      case 'f':
        return '\f';
      case 'v':
        return '\v';
      case 'x':
      case 'u':
      case 'U':
        return String.fromCodePoint(parseInt(e.slice(1), 16));
      default:
        if (/^[0-7]/.test(e)) return String.fromCodePoint(parseInt(e, 8));
        return '\\' + e;
    }
  });
}

/**
 * Evaluates a literal Python expression: numbers, strings, True/False/None, `...`, unary
 * minus, and lists/tuples/sets/dicts of literals. Anything else gives {@link NOT_LITERAL}.
 */
export function literalValue(n: Node | null | undefined): PyValue | typeof NOT_LITERAL {
  if (!n) return NOT_LITERAL;
  switch (n.type) {
    case 'integer': {
      const t = n.text.replace(/_/g, '').toLowerCase();
      if (t.endsWith('j') || t.endsWith('l')) return NOT_LITERAL;
      const v = t.startsWith('0x') || t.startsWith('0o') || t.startsWith('0b') ? Number(t) : parseInt(t, 10);
      return Number.isFinite(v) ? v : NOT_LITERAL;
    }
    case 'float': {
      const t = n.text.replace(/_/g, '');
      if (t.toLowerCase().endsWith('j')) return NOT_LITERAL;
      return Number(t);
    }
    case 'true':
      return true;
    case 'false':
      return false;
    case 'none':
      return null;
    case 'ellipsis':
      return ELLIPSIS;
    case 'string':
    case 'concatenated_string': {
      const s = stringValue(n);
      return s === undefined ? NOT_LITERAL : s;
    }
    case 'unary_operator': {
      const op = n.child(0)?.text;
      const v = literalValue(n.childForFieldName('argument'));
      if (typeof v !== 'number') return NOT_LITERAL;
      return op === '-' ? -v : op === '+' ? v : NOT_LITERAL;
    }
    case 'parenthesized_expression':
      return literalValue(n.namedChildren[0]);
    case 'list':
    case 'tuple':
    case 'set': {
      const out: unknown[] = [];
      for (const c of n.namedChildren) {
        if (c.type === 'comment') continue;
        const v = literalValue(c);
        if (v === NOT_LITERAL || v === ELLIPSIS) return NOT_LITERAL;
        out.push(v);
      }
      return out;
    }
    case 'dictionary': {
      const out: Record<string, unknown> = {};
      for (const pair of n.namedChildren) {
        if (pair.type === 'comment') continue;
        if (pair.type !== 'pair') return NOT_LITERAL;
        const k = literalValue(pair.childForFieldName('key'));
        const v = literalValue(pair.childForFieldName('value'));
        if ((typeof k !== 'string' && typeof k !== 'number') || v === NOT_LITERAL || v === ELLIPSIS) return NOT_LITERAL;
        out[String(k)] = v;
      }
      return out;
    }
    default:
      return NOT_LITERAL;
  }
}

/** Positional and keyword arguments of a `call` node. */
export interface CallArgs {
  /** Dotted callee text, e.g. `Field`, `fastapi.Query`, `app.get`. */
  callee: string;
  positional: Node[];
  keywords: Map<string, Node>;
  /** `*args` / `**kwargs` present: the argument list is not fully known. */
  hasSplat: boolean;
  node: Node;
}

/** Splits a `call` node into callee and arguments; undefined if `n` is not a call. */
export function callArgs(n: Node | null | undefined): CallArgs | undefined {
  if (!n || n.type !== 'call') return undefined;
  const fn = n.childForFieldName('function');
  const args = n.childForFieldName('arguments');
  const out: CallArgs = { callee: fn?.text ?? '', positional: [], keywords: new Map(), hasSplat: false, node: n };
  for (const a of args?.namedChildren ?? []) {
    if (a.type === 'comment') continue;
    if (a.type === 'keyword_argument') {
      const name = a.childForFieldName('name')?.text;
      const value = a.childForFieldName('value');
      if (name && value) out.keywords.set(name, value);
    } else if (a.type === 'list_splat' || a.type === 'dictionary_splat') {
      out.hasSplat = true;
    } else {
      out.positional.push(a);
    }
  }
  return out;
}

/** Last segment of a dotted name: `fastapi.Query` → `Query`. */
export const lastName = (dotted: string): string => dotted.slice(dotted.lastIndexOf('.') + 1);

/**
 * The docstring of a function or class body, cleaned like Python's `inspect.cleandoc`
 * (common indentation removed, leading/trailing blank lines dropped). Undefined if none.
 */
export function docstringOf(def: Node): string | undefined {
  const body = def.childForFieldName('body');
  const first = body?.namedChildren.find((c) => c.type !== 'comment');
  if (!first || first.type !== 'expression_statement') return undefined;
  const s = first.namedChildren[0];
  if (!s || s.type !== 'string') return undefined;
  const v = stringValue(s);
  return v === undefined ? undefined : cleandoc(v);
}

/** Python's `inspect.cleandoc` (PEP 257 trim). */
export function cleandoc(doc: string): string {
  const lines = doc.replace(/\t/g, '        ').split('\n');
  let margin = Infinity;
  for (const l of lines.slice(1)) {
    const stripped = l.trimStart();
    if (stripped) margin = Math.min(margin, l.length - stripped.length);
  }
  const out = [lines[0].trimStart(), ...lines.slice(1).map((l) => (margin === Infinity ? l : l.slice(margin)))];
  while (out.length && !out[0].trim()) out.shift();
  while (out.length && !out[out.length - 1].trim()) out.pop();
  return out.join('\n');
}
