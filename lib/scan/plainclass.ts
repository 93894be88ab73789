/**
 * Plain-class convention of `kea scan`: model code written as an ordinary Python class.
 *
 * Takes in: parsed files, their {@link SymbolTable} and a {@link SchemaBuilder}.
 * Gives out: one operation per public method (name not starting with `_`) of every top-level
 * class that is neither a pydantic model nor an Enum:
 *   - `POST /<method>` (`POST /<class_snake>/<method>` when several classes qualify),
 *     operationId `<method>` (`<Class>.<method>` when several classes qualify);
 *   - request body (JSON, required): an object with one property per parameter after
 *     `self`, typed from its hint, required when it has no default; no body when the
 *     method has no parameters;
 *   - response 200: the schema of the return annotation, as is (not wrapped);
 *   - summary: the docstring's first line; description: the whole docstring.
 * `examples/plain-class/app.py` serves a class by exactly this convention.
 */
import type { JsonSchema, Operation } from '../api/types.js';
import { docstringOf, lastName, type Node, type PyFile } from './python.js';
import { functionParams, type ScannedOperation } from './fastapi.js';
import type { Reporter, SchemaBuilder, SymbolTable } from './schema.js';

const snake = (s: string) => s.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toLowerCase();

/** Scans plain model classes; `onlyClass` restricts to one class name. */
export function scanPlainClasses(
  files: PyFile[],
  symbols: SymbolTable,
  builder: SchemaBuilder,
  reporter: Reporter,
  onlyClass?: string,
): { operations: ScannedOperation[]; classes: Array<{ name: string; doc?: string }> } {
  const candidates: Array<{ file: PyFile; node: Node; name: string; methods: Node[] }> = [];
  for (const file of files) {
    for (const stmt of file.root.namedChildren) {
      const def = stmt.type === 'decorated_definition' ? stmt.childForFieldName('definition') : stmt;
      if (def?.type !== 'class_definition') continue;
      const name = def.childForFieldName('name')?.text ?? '';
      if (onlyClass && name !== onlyClass) continue;
      if (symbols.model(name)) continue; // pydantic models and enums are data, not services
      if (name.startsWith('_')) continue;
      const methods: Node[] = [];
      for (const m of def.childForFieldName('body')?.namedChildren ?? []) {
        const fn = m.type === 'decorated_definition' ? m.childForFieldName('definition') : m;
        if (fn?.type !== 'function_definition') continue;
        const mname = fn.childForFieldName('name')?.text ?? '';
        if (mname.startsWith('_')) continue;
        methods.push(m);
      }
      if (methods.length) candidates.push({ file, node: def, name, methods });
    }
  }
  const several = candidates.length > 1;
  const operations: ScannedOperation[] = [];
  for (const c of candidates) {
    for (const m of c.methods) {
      const decorators =
        m.type === 'decorated_definition'
          ? m.namedChildren.filter((d) => d.type === 'decorator').map((d) => lastName(d.text.replace(/^@/, '').replace(/\(.*$/s, '')))
          : [];
      const fn = m.type === 'decorated_definition' ? m.childForFieldName('definition')! : m;
      const mname = fn.childForFieldName('name')?.text ?? '';
      if (decorators.includes('property') || decorators.some((d) => d.endsWith('setter'))) {
        reporter.add(c.file, m, 'info', `${c.name}.${mname} is a property, not a method; not an operation`);
        continue;
      }
      const isStatic = decorators.includes('staticmethod');
      let params = functionParams(fn);
      if (!isStatic && params.length && !params[0].type) params = params.slice(1); // self / cls
      const bad = params.filter((p) => p.splat || !p.type);
      if (bad.length) {
        for (const p of bad) {
          reporter.add(
            c.file,
            p.node,
            'unsupported',
            p.splat
              ? `${c.name}.${mname}: ${p.name} cannot be a JSON body property; method left out`
              : `${c.name}.${mname}: parameter ${p.name} has no type hint; method left out`,
          );
        }
        continue;
      }
      const properties: Record<string, JsonSchema> = {};
      const required: string[] = [];
      for (const p of params) {
        const f = builder.fieldSchema(c.file, p.type!, p.default ?? null);
        properties[p.name] = f.schema;
        if (f.required) required.push(p.name);
      }
      const doc = docstringOf(fn);
      const returns = fn.childForFieldName('return_type');
      if (!returns) reporter.add(c.file, fn, 'warning', `${c.name}.${mname} has no return annotation; response described without a schema`);
      const op: Operation = {
        operationId: several ? `${c.name}.${mname}` : mname,
        method: 'POST',
        path: several ? `/${snake(c.name)}/${mname}` : `/${mname}`,
        summary: doc ? doc.split('\n')[0] : mname.replace(/_/g, ' ').replace(/\b\w/g, (x) => x.toUpperCase()),
      };
      if (doc) op.description = doc;
      if (params.length) {
        const schema: JsonSchema = { type: 'object', properties };
        if (required.length) schema.required = required;
        op.requestBody = { required: true, contentType: 'application/json', schema };
      }
      const response: Operation['responses'] = { '200': { description: 'Successful Response' } };
      const unwrapped = returns?.namedChildren.length === 1 ? returns.namedChildren[0] : returns;
      if (returns && unwrapped?.type !== 'none') {
        response['200'].contentType = 'application/json';
        response['200'].schema = builder.typeSchema(c.file, returns);
      }
      op.responses = response;
      operations.push({ op, file: c.file, node: m });
    }
  }
  return { operations, classes: candidates.map((c) => ({ name: c.name, doc: docstringOf(c.node) })) };
}
