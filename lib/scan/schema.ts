/**
 * Python type hints → JSON Schema (OpenAPI 3.0 Schema Object dialect), the way pydantic v2
 * and FastAPI would describe them, read statically from the syntax tree.
 *
 * Takes in: annotation nodes from parsed files plus a {@link SymbolTable} of every pydantic
 * model, Enum and type alias found in the scanned sources. Gives out: schemas, with models
 * and enums as `#/components/schemas/<Name>` references collected in {@link SchemaBuilder.components}.
 * Everything it cannot express is reported as a {@link ScanIssue} with file:line.
 * The mapping is documented in docs/scan-conventions.md.
 */
import type { JsonSchema } from '../api/types.js';
import {
  callArgs,
  docstringOf,
  ELLIPSIS,
  lastName,
  lineOf,
  literalValue,
  NOT_LITERAL,
  parseAnnotation,
  stringValue,
  type Node,
  type PyFile,
} from './python.js';

/** Something the scanner could not (fully) translate, with its location. */
export interface ScanIssue {
  file: string;
  /** 1-based line. */
  line: number;
  /** `unsupported`: a construct left out of the schema; `warning`: approximated; `info`: deliberately skipped. */
  level: 'unsupported' | 'warning' | 'info';
  message: string;
}

/** Collects issues, deduplicated by file:line:message. */
export class Reporter {
  readonly issues: ScanIssue[] = [];
  private readonly seen = new Set<string>();
  add(file: PyFile, node: Node, level: ScanIssue['level'], message: string): void {
    const issue = { file: file.path, line: lineOf(node), level, message };
    const key = `${issue.file}:${issue.line}:${message}`;
    if (this.seen.has(key)) return;
    this.seen.add(key);
    this.issues.push(issue);
  }
}

/** A class definition found in a scanned file. */
export interface PyClass {
  name: string;
  file: PyFile;
  node: Node;
  /** Base class expressions as written (dotted text). */
  bases: string[];
  kind: 'model' | 'enum' | 'other';
}

/** Module-level names: classes (by simple name) and type aliases, across all scanned files. */
export class SymbolTable {
  readonly classes = new Map<string, PyClass>();
  /** `<module>:<name>` and `<name>` → alias right-hand side. */
  readonly aliases = new Map<string, { file: PyFile; node: Node }>();

  constructor(
    readonly files: PyFile[],
    reporter: Reporter,
  ) {
    const all: PyClass[] = [];
    for (const file of files) {
      for (const stmt of file.root.namedChildren) {
        const def = stmt.type === 'decorated_definition' ? stmt.childForFieldName('definition') : stmt;
        if (def?.type === 'class_definition') {
          const name = def.childForFieldName('name')?.text ?? '';
          const bases = (def.childForFieldName('superclasses')?.namedChildren ?? [])
            .filter((b) => b.type !== 'keyword_argument' && b.type !== 'comment')
            .map((b) => b.text);
          const decorators = stmt.type === 'decorated_definition' ? stmt.namedChildren.filter((d) => d.type === 'decorator').map((d) => d.text) : [];
          // @dataclass classes are described like models (FastAPI accepts them as bodies).
          const isDataclass = decorators.some((d) => /^@(\w+\.)*dataclass\b/.test(d));
          all.push({ name, file, node: def, bases, kind: isDataclass ? 'model' : 'other' });
        } else if (stmt.type === 'expression_statement') {
          const a = stmt.namedChildren[0];
          if (a?.type !== 'assignment') continue;
          const left = a.childForFieldName('left');
          const right = a.childForFieldName('right');
          const annot = a.childForFieldName('type')?.text;
          if (left?.type !== 'identifier' || !right) continue;
          if (looksLikeTypeExpr(right) || annot === 'TypeAlias' || annot === 'typing.TypeAlias') {
            this.aliases.set(`${file.module}:${left.text}`, { file, node: right });
            if (!this.aliases.has(left.text)) this.aliases.set(left.text, { file, node: right });
          }
        } else if (stmt.type === 'type_alias_statement') {
          // `type X = ...` (PEP 695)
          const left = stmt.namedChildren[0];
          const right = stmt.namedChildren[stmt.namedChildren.length - 1];
          if (left && right) {
            this.aliases.set(`${file.module}:${left.text}`, { file, node: right });
            if (!this.aliases.has(left.text)) this.aliases.set(left.text, { file, node: right });
          }
        }
      }
    }
    // Classify to a fixpoint: a class is a model if a base is BaseModel or another model.
    let changed = true;
    while (changed) {
      changed = false;
      for (const c of all) {
        if (c.kind !== 'other') continue;
        const baseNames = c.bases.map((b) => lastName(b.replace(/\[.*$/, '')));
        const kind = baseNames.some((b) => b === 'BaseModel' || all.some((o) => o.kind === 'model' && o.name === b))
          ? 'model'
          : baseNames.some((b) => ['Enum', 'IntEnum', 'StrEnum'].includes(b) || all.some((o) => o.kind === 'enum' && o.name === b))
            ? 'enum'
            : 'other';
        if (kind !== 'other') {
          c.kind = kind;
          changed = true;
        }
      }
    }
    for (const c of all) {
      const prev = this.classes.get(c.name);
      if (prev && prev.kind !== 'other' && c.kind !== 'other') {
        reporter.add(c.file, c.node, 'warning', `class ${c.name} is also defined in ${prev.file.path}:${lineOf(prev.node)}; the first definition is used`);
        continue;
      }
      if (!prev || prev.kind === 'other') this.classes.set(c.name, c);
    }
  }

  model(name: string): PyClass | undefined {
    const c = this.classes.get(name);
    return c && c.kind !== 'other' ? c : undefined;
  }

  alias(file: PyFile, name: string): { file: PyFile; node: Node } | undefined {
    return this.aliases.get(`${file.module}:${name}`) ?? this.aliases.get(name);
  }
}

const TYPE_HEADS = new Set([
  'Annotated',
  'Optional',
  'Union',
  'List',
  'Dict',
  'Set',
  'FrozenSet',
  'Tuple',
  'Sequence',
  'Mapping',
  'Literal',
  'list',
  'dict',
  'set',
  'frozenset',
  'tuple',
  'conlist',
  'constr',
  'conint',
  'confloat',
]);

/** Heuristic for `X = <type>` aliases at module level: a subscript of a typing head, or a `|` union. */
function looksLikeTypeExpr(n: Node): boolean {
  if (n.type === 'subscript') return TYPE_HEADS.has(lastName(n.childForFieldName('value')?.text ?? ''));
  if (n.type === 'call') return ['conlist', 'constr', 'conint', 'confloat'].includes(lastName(n.childForFieldName('function')?.text ?? ''));
  if (n.type === 'binary_operator')
    return (
      n.child(1)?.text === '|' &&
      [n.childForFieldName('left'), n.childForFieldName('right')].every((s) => !!s && (s.type === 'identifier' || s.type === 'none' || looksLikeTypeExpr(s)))
    );
  return false;
}

/** Split of a type expression into its head (dotted name) and argument nodes. */
interface TypeParts {
  head: string;
  args: Node[];
  node: Node;
}

function unwrapType(n: Node): Node {
  let cur = n;
  while ((cur.type === 'type' || cur.type === 'parenthesized_expression') && cur.namedChildren.length === 1) cur = cur.namedChildren[0];
  return cur;
}

function typeParts(n0: Node): TypeParts | undefined {
  const n = unwrapType(n0);
  if (n.type === 'identifier' || n.type === 'attribute') return { head: n.text, args: [], node: n };
  if (n.type === 'generic_type') {
    const head = n.namedChildren[0];
    const params = n.namedChildren.find((c) => c.type === 'type_parameter');
    return { head: head?.text ?? '', args: (params?.namedChildren ?? []).filter((c) => c.type !== 'comment'), node: n };
  }
  if (n.type === 'subscript') {
    const head = n.childForFieldName('value');
    return { head: head?.text ?? '', args: n.childrenForFieldName('subscript'), node: n };
  }
  return undefined;
}

/** The keys pydantic's Field / FastAPI's Query/Path/Header/Body accept that change nothing in the schema. */
const SCHEMA_NEUTRAL = new Set([
  'title',
  'strict',
  'frozen',
  'repr',
  'init',
  'init_var',
  'kw_only',
  'validate_default',
  'union_mode',
  'allow_inf_nan',
  'validation_alias',
  'serialization_alias',
  'alias_priority',
  'coerce_numbers_to_str',
  'convert_underscores',
  'include_in_schema',
  'embed',
  'media_type',
  'default_factory',
  'default',
  'alias',
  'openapi_examples',
  'fail_fast',
  'exclude_if',
]);

const CONSTRAINT_KEYS = new Set([
  'description',
  'ge',
  'le',
  'gt',
  'lt',
  'min_length',
  'max_length',
  'pattern',
  'regex',
  'multiple_of',
  'examples',
  'example',
  'deprecated',
]);

/** Builds JSON Schemas for type hints and collects referenced models/enums as components. */
export class SchemaBuilder {
  readonly components: Record<string, JsonSchema> = {};
  private readonly building = new Set<string>();

  constructor(
    readonly symbols: SymbolTable,
    readonly reporter: Reporter,
  ) {}

  /** True when the annotation is (Optional of) a pydantic model, list/dict of one, or another non-scalar. */
  isModelType(file: PyFile, n: Node): boolean {
    const p = typeParts(n);
    if (!p) return false;
    const head = lastName(p.head);
    if (p.args.length === 0) {
      const cls = this.symbols.model(head);
      if (cls) return cls.kind === 'model';
      const alias = this.symbols.alias(file, p.head);
      return alias ? this.isModelType(alias.file, alias.node) : false;
    }
    if (head === 'Annotated') return this.isModelType(file, p.args[0]);
    if (head === 'Optional' || head === 'Union') return p.args.some((a) => this.isModelType(file, a));
    return false;
  }

  /**
   * Whether FastAPI treats a parameter of this type as a scalar (query) parameter:
   * str/int/float/bool/Enum/Literal/dates/UUID, Optional/Union of those. Containers and
   * models are body parameters unless marked with Query().
   */
  isScalarType(file: PyFile, n: Node): boolean {
    const inner = unwrapType(n);
    if (inner.type === 'binary_operator') {
      return [inner.childForFieldName('left'), inner.childForFieldName('right')].every((s) => !!s && this.isScalarType(file, s));
    }
    if (inner.type === 'none') return true;
    if (inner.type === 'string') {
      const v = stringValue(inner);
      const parsed = v ? parseAnnotation(v) : undefined;
      return parsed ? this.isScalarType(file, parsed) : false;
    }
    const p = typeParts(n);
    if (!p) return false;
    const head = lastName(p.head);
    if (p.args.length === 0) return this.isScalarName(file, p.head);
    if (head === 'Annotated') return this.isScalarType(file, p.args[0]);
    if (head === 'Optional' || head === 'Union') return p.args.every((a) => this.isScalarType(file, a));
    if (head === 'Literal') return true;
    return false;
  }

  private isScalarName(file: PyFile, dotted: string): boolean {
    const head = lastName(dotted);
    if (
      ['int', 'float', 'str', 'bool', 'None', 'datetime', 'date', 'time', 'timedelta', 'UUID', 'EmailStr', 'AnyUrl', 'HttpUrl', 'Decimal', 'bytes'].includes(
        head,
      )
    )
      return true;
    const cls = this.symbols.model(head);
    if (cls) return cls.kind === 'enum';
    const alias = this.symbols.alias(file, dotted);
    return alias ? this.isScalarType(alias.file, alias.node) : false;
  }

  /** Schema of a type annotation node (a `type` node or a type expression). */
  typeSchema(file: PyFile, n0: Node): JsonSchema {
    const n = unwrapType(n0);
    switch (n.type) {
      case 'none':
        return { nullable: true };
      case 'string': {
        // Forward reference: "Model" or "list[Model]".
        const v = stringValue(n);
        const parsed = v ? parseAnnotation(v) : undefined;
        if (parsed) return this.typeSchema(file, parsed);
        this.reporter.add(file, n, 'unsupported', `string annotation ${n.text} is not a type expression; typed as any`);
        return {};
      }
      case 'binary_operator': {
        if (n.child(1)?.text !== '|') break;
        const members = flattenUnion(n);
        return this.unionSchema(members.map((m) => this.typeSchema(file, m)));
      }
      case 'call':
        return this.conTypeSchema(file, n);
      default:
        break;
    }
    const p = typeParts(n);
    if (!p) {
      this.reporter.add(file, n, 'unsupported', `type expression ${n.text} is not supported; typed as any`);
      return {};
    }
    if (p.args.length === 0) return this.nameSchema(file, p.head, n);
    return this.genericSchema(file, p);
  }

  private nameSchema(file: PyFile, dotted: string, node: Node): JsonSchema {
    const head = lastName(dotted);
    // User classes and aliases first: they may shadow builtin names.
    const alias = this.symbols.alias(file, dotted);
    if (alias && !this.symbols.model(head)) return this.typeSchema(alias.file, alias.node);
    const cls = this.symbols.model(head);
    if (cls) return this.refTo(cls);
    switch (head) {
      case 'int':
        return { type: 'integer' };
      case 'float':
        return { type: 'number' };
      case 'str':
        return { type: 'string' };
      case 'bool':
        return { type: 'boolean' };
      case 'None':
        return { nullable: true };
      case 'Any':
      case 'object':
        return {};
      case 'list':
      case 'List':
      case 'Sequence':
        return { type: 'array', items: {} };
      case 'set':
      case 'Set':
      case 'frozenset':
      case 'FrozenSet':
        return { type: 'array', items: {}, uniqueItems: true };
      case 'dict':
      case 'Dict':
      case 'Mapping':
        return { type: 'object', additionalProperties: true };
      case 'datetime':
        return { type: 'string', format: 'date-time' };
      case 'date':
        return { type: 'string', format: 'date' };
      case 'time':
        return { type: 'string', format: 'time' };
      case 'timedelta':
        return { type: 'string', format: 'duration' };
      case 'UUID':
        return { type: 'string', format: 'uuid' };
      case 'EmailStr':
        return { type: 'string', format: 'email' };
      case 'AnyUrl':
        return { type: 'string', format: 'uri', minLength: 1 };
      case 'HttpUrl':
        return { type: 'string', format: 'uri', minLength: 1, maxLength: 2083 };
      default: {
        const other = this.symbols.classes.get(head);
        this.reporter.add(
          file,
          node,
          'unsupported',
          other
            ? `type ${dotted} is a class that is neither a pydantic BaseModel nor an Enum; typed as any`
            : `type ${dotted} is unknown (not a builtin, pydantic model, Enum or alias in the scanned sources); typed as any`,
        );
        return {};
      }
    }
  }

  private genericSchema(file: PyFile, p: TypeParts): JsonSchema {
    const head = lastName(p.head);
    const alias = this.symbols.alias(file, p.head);
    if (alias) {
      this.reporter.add(file, p.node, 'unsupported', `generic alias ${p.head}[...] is not supported; typed as any`);
      return {};
    }
    switch (head) {
      case 'Optional':
        return this.unionSchema([this.typeSchema(file, p.args[0]), { nullable: true }]);
      case 'Union':
        return this.unionSchema(p.args.map((a) => this.typeSchema(file, a)));
      case 'list':
      case 'List':
      case 'Sequence':
      case 'MutableSequence':
      case 'Iterable':
        return { type: 'array', items: this.typeSchema(file, p.args[0]) };
      case 'set':
      case 'Set':
      case 'frozenset':
      case 'FrozenSet':
        return { type: 'array', items: this.typeSchema(file, p.args[0]), uniqueItems: true };
      case 'tuple':
      case 'Tuple': {
        if (p.args.length === 2 && unwrapType(p.args[1]).type === 'ellipsis') return { type: 'array', items: this.typeSchema(file, p.args[0]) };
        this.reporter.add(
          file,
          p.node,
          'warning',
          `fixed-length tuple ${p.node.text} needs prefixItems (OpenAPI 3.1); described as an array of ${p.args.length} items, each any of the member types`,
        );
        return { type: 'array', items: tupleItems(p.args.map((a) => this.typeSchema(file, a))), minItems: p.args.length, maxItems: p.args.length };
      }
      case 'dict':
      case 'Dict':
      case 'Mapping':
      case 'MutableMapping': {
        const value = p.args[1] ? this.typeSchema(file, p.args[1]) : {};
        return { type: 'object', additionalProperties: Object.keys(value).length ? value : true };
      }
      case 'Literal':
        return this.literalSchema(file, p.args);
      case 'Annotated': {
        const base = this.typeSchema(file, p.args[0]);
        let out = base;
        for (const meta of p.args.slice(1)) {
          const call = callArgs(unwrapType(meta));
          const fn = call ? lastName(call.callee) : '';
          if (call && ['Field', 'Query', 'Path', 'Body', 'Header', 'Cookie', 'Form', 'File'].includes(fn)) {
            out = this.applyConstraints(file, out, call.keywords, call.node);
          } else if (fn === 'Doc') {
            const d = stringValue(call?.positional[0]);
            if (d) out = withKeywords(out, { description: d });
          } else {
            this.reporter.add(file, meta, 'unsupported', `Annotated metadata ${meta.text} is not understood; ignored`);
          }
        }
        return out;
      }
      case 'ClassVar':
        return {};
      default:
        this.reporter.add(file, p.node, 'unsupported', `generic type ${p.head}[...] is not supported; typed as any`);
        return {};
    }
  }

  private literalSchema(file: PyFile, args: Node[]): JsonSchema {
    const values: unknown[] = [];
    let nullable = false;
    for (const a of args) {
      const inner = unwrapType(a);
      let v = literalValue(inner);
      if (v === NOT_LITERAL && (inner.type === 'attribute' || inner.type === 'identifier')) v = this.enumMemberValue(inner.text);
      if (v === NOT_LITERAL || v === ELLIPSIS) {
        this.reporter.add(file, a, 'unsupported', `Literal value ${a.text} is not a literal; left out of the enum`);
        continue;
      }
      if (v === null) nullable = true;
      else values.push(v);
    }
    const types = new Set(
      values.map((v) => (typeof v === 'number' ? (Number.isInteger(v) ? 'integer' : 'number') : typeof v === 'boolean' ? 'boolean' : 'string')),
    );
    const out: JsonSchema = { enum: values };
    if (types.size === 1) out.type = [...types][0];
    else if (types.size === 2 && types.has('integer') && types.has('number')) out.type = 'number';
    if (nullable) out.nullable = true;
    return out;
  }

  /** `Color.red` → the value assigned to `red` in Enum class Color. */
  enumMemberValue(dotted: string): unknown {
    const parts = dotted.split('.');
    if (parts.length < 2) return NOT_LITERAL;
    const cls = this.symbols.model(parts[parts.length - 2]);
    if (!cls || cls.kind !== 'enum') return NOT_LITERAL;
    return enumMembers(cls).get(parts[parts.length - 1]) ?? NOT_LITERAL;
  }

  private conTypeSchema(file: PyFile, n: Node): JsonSchema {
    const call = callArgs(n)!;
    const fn = lastName(call.callee);
    let base: JsonSchema;
    switch (fn) {
      case 'conlist': {
        const item = call.positional[0] ?? call.keywords.get('item_type');
        base = { type: 'array', items: item ? this.typeSchema(file, item) : {} };
        break;
      }
      case 'constr':
        base = { type: 'string' };
        break;
      case 'conint':
        base = { type: 'integer' };
        break;
      case 'confloat':
        base = { type: 'number' };
        break;
      default:
        this.reporter.add(file, n, 'unsupported', `call ${call.callee}(...) used as a type is not supported; typed as any`);
        return {};
    }
    const kw = new Map(call.keywords);
    kw.delete('item_type');
    return this.applyConstraints(file, base, kw, n);
  }

  private unionSchema(members: JsonSchema[]): JsonSchema {
    const nullable = members.some((m) => isNullOnly(m));
    const rest = members.filter((m) => !isNullOnly(m));
    if (rest.length === 0) return { nullable: true };
    if (rest.length === 1) return nullable ? makeNullable(rest[0]) : rest[0];
    const out: JsonSchema = { anyOf: rest };
    if (nullable) out.nullable = true;
    return out;
  }

  /** `$ref` to a model or enum component, building the component on first use. */
  refTo(cls: PyClass): JsonSchema {
    const ref = { $ref: `#/components/schemas/${cls.name}` };
    if (this.components[cls.name] || this.building.has(cls.name)) return ref;
    this.building.add(cls.name);
    this.components[cls.name] = cls.kind === 'enum' ? this.enumComponent(cls) : this.modelComponent(cls);
    this.building.delete(cls.name);
    return ref;
  }

  private enumComponent(cls: PyClass): JsonSchema {
    const members = enumMembers(cls, this.reporter);
    const values = [...members.values()];
    const out: JsonSchema = { enum: values };
    const types = new Set(values.map((v) => typeof v));
    if (types.size === 1)
      out.type =
        typeof values[0] === 'number'
          ? values.every((v) => Number.isInteger(v))
            ? 'integer'
            : 'number'
          : typeof values[0] === 'boolean'
            ? 'boolean'
            : 'string';
    const doc = docstringOf(cls.node);
    if (doc) out.description = doc;
    return out;
  }

  /** Properties of a pydantic model (inherited fields first), as an object schema. */
  private modelComponent(cls: PyClass): JsonSchema {
    const properties: Record<string, JsonSchema> = {};
    const required: string[] = [];
    let forbidExtra = false;
    const chain: PyClass[] = [];
    const visit = (c: PyClass) => {
      for (const b of c.bases) {
        const base = this.symbols.model(lastName(b.replace(/\[.*$/, '')));
        if (base && base.kind === 'model' && !chain.includes(base)) visit(base);
        else if (/Generic\[/.test(b))
          this.reporter.add(c.file, c.node, 'unsupported', `generic model ${c.name} (${b}) is not supported; type parameters are typed as any`);
        else if (lastName(b) === 'RootModel' || /RootModel\[/.test(b)) this.reporter.add(c.file, c.node, 'unsupported', `RootModel ${c.name} is not supported`);
      }
      chain.push(c);
    };
    visit(cls);
    for (const c of chain) {
      for (const stmt of c.node.childForFieldName('body')?.namedChildren ?? []) {
        if (stmt.type === 'decorated_definition') {
          const decos = stmt.namedChildren.filter((d) => d.type === 'decorator').map((d) => d.text);
          if (decos.some((d) => /computed_field/.test(d))) {
            this.reporter.add(c.file, stmt, 'unsupported', `computed_field in ${c.name} appears only in serialized output; not described`);
          } else if (decos.some((d) => /validator\b/.test(d))) {
            const fn = stmt.childForFieldName('definition')?.childForFieldName('name')?.text;
            this.reporter.add(
              c.file,
              stmt,
              'info',
              `validator ${c.name}.${fn} checks what JSON Schema cannot express; not in the schema (the service still runs it)`,
            );
          }
          continue;
        }
        if (stmt.type !== 'expression_statement') continue;
        const a = stmt.namedChildren[0];
        if (a?.type !== 'assignment') continue;
        const left = a.childForFieldName('left');
        const type = a.childForFieldName('type');
        const right = a.childForFieldName('right');
        if (left?.type !== 'identifier') continue;
        const name = left.text;
        if (name === 'model_config') {
          const cfg = callArgs(right);
          const extra = cfg?.keywords.get('extra');
          if (extra && stringValue(extra) === 'forbid') forbidExtra = true;
          if (right?.type === 'dictionary' && /['"]extra['"]\s*:\s*['"]forbid['"]/.test(right.text)) forbidExtra = true;
          continue;
        }
        if (!type) continue; // not a field (plain class attribute)
        if (name.startsWith('_')) continue; // private attribute (pydantic PrivateAttr)
        const typeHead = typeParts(type);
        if (typeHead && lastName(typeHead.head) === 'ClassVar') continue;
        const field = this.fieldSchema(c.file, type, right ?? null);
        if (field.exclude) {
          this.reporter.add(c.file, stmt, 'info', `field ${c.name}.${name} has exclude=True; it is left out of responses but kept in the schema`);
        }
        const propName = field.alias ?? name;
        properties[propName] = field.schema;
        const idx = required.indexOf(propName);
        if (field.required && idx < 0) required.push(propName);
        if (!field.required && idx >= 0) required.splice(idx, 1);
      }
    }
    const out: JsonSchema = { type: 'object', properties };
    if (required.length) out.required = required;
    if (forbidExtra) out.additionalProperties = false;
    const doc = docstringOf(cls.node);
    if (doc) out.description = doc;
    return out;
  }

  /**
   * One model field or plain-class parameter: `name: <type> [= <default> | Field(...)]`.
   * Returns its schema, whether it is required, and its alias (property name) if any.
   */
  fieldSchema(file: PyFile, type: Node, value: Node | null): { schema: JsonSchema; required: boolean; alias?: string; exclude?: boolean } {
    let schema = this.typeSchema(file, type);
    let required = value === null;
    let alias: string | undefined;
    let exclude = false;
    const call = callArgs(value);
    const annotatedField = this.annotatedFieldDefaultState(type);
    if (annotatedField === 'factory') required = false;
    if (call && (lastName(call.callee) === 'Field' || call.callee === 'field' || call.callee === 'dataclasses.field')) {
      const kw = call.keywords;
      const defaultNode = call.positional[0] ?? kw.get('default');
      if (kw.has('default_factory')) required = false;
      else if (defaultNode) {
        const v = this.defaultValue(file, defaultNode);
        required = v === ELLIPSIS;
        if (v !== ELLIPSIS && v !== NOT_LITERAL && v !== null) schema = withKeywords(schema, { default: v });
        if (v === NOT_LITERAL) this.reporter.add(file, defaultNode, 'warning', `default ${defaultNode.text} is not a literal; left out of the schema`);
      } else required = true;
      alias = stringValue(kw.get('alias')) ?? stringValue(kw.get('validation_alias'));
      if (kw.get('exclude')?.type === 'true') exclude = true;
      schema = this.applyConstraints(file, schema, kw, call.node);
    } else if (value) {
      const v = this.defaultValue(file, value);
      required = v === ELLIPSIS;
      if (v === NOT_LITERAL) this.reporter.add(file, value, 'warning', `default ${value.text} is not a literal; left out of the schema`);
      else if (v !== ELLIPSIS && v !== null) schema = withKeywords(schema, { default: v });
    }
    return { schema, required, alias, exclude };
  }

  private annotatedFieldDefaultState(type: Node): 'factory' | undefined {
    const p = typeParts(type);
    if (!p || lastName(p.head) !== 'Annotated') return undefined;
    for (const m of p.args.slice(1)) {
      const c = callArgs(unwrapType(m));
      if (c && c.keywords.has('default_factory')) return 'factory';
    }
    return undefined;
  }

  /** Literal default, enum member (`Color.red`), `...`, or NOT_LITERAL. */
  defaultValue(_file: PyFile, n: Node): unknown {
    const v = literalValue(n);
    if (v !== NOT_LITERAL) return v;
    if (n.type === 'attribute') return this.enumMemberValue(n.text);
    return NOT_LITERAL;
  }

  /**
   * Applies pydantic Field / FastAPI Query-style keyword constraints to a schema:
   * ge/le/gt/lt/multiple_of, min_length/max_length (minItems/maxItems on arrays,
   * minLength/maxLength on strings, minProperties/maxProperties on objects), pattern/regex,
   * description, examples/example, deprecated. Non-literal values are reported and skipped.
   */
  applyConstraints(file: PyFile, schema0: JsonSchema, kw: Map<string, Node>, at: Node): JsonSchema {
    const add: JsonSchema = {};
    const target = constraintTarget(schema0);
    const t = target?.type;
    for (const [key, node] of kw) {
      if (SCHEMA_NEUTRAL.has(key)) continue;
      const v = literalValue(node);
      if (v === NOT_LITERAL || v === ELLIPSIS) {
        if (CONSTRAINT_KEYS.has(key)) this.reporter.add(file, node, 'unsupported', `${key}=${node.text} is not a literal; constraint left out`);
        else if (key === 'json_schema_extra' || key === 'discriminator') this.reporter.add(file, node, 'unsupported', `${key}= is not supported; ignored`);
        else if (key !== 'exclude') this.reporter.add(file, node, 'info', `keyword ${key}= has no effect on the schema; ignored`);
        continue;
      }
      switch (key) {
        case 'ge':
          add.minimum = v;
          break;
        case 'le':
          add.maximum = v;
          break;
        case 'gt':
          add.minimum = v;
          add.exclusiveMinimum = true;
          break;
        case 'lt':
          add.maximum = v;
          add.exclusiveMaximum = true;
          break;
        case 'multiple_of':
          add.multipleOf = v;
          break;
        case 'min_length':
          if (t === 'array') add.minItems = v;
          else if (t === 'object') add.minProperties = v;
          else add.minLength = v;
          break;
        case 'max_length':
          if (t === 'array') add.maxItems = v;
          else if (t === 'object') add.maxProperties = v;
          else add.maxLength = v;
          break;
        case 'pattern':
        case 'regex':
          add.pattern = v;
          break;
        case 'description':
          add.description = v;
          break;
        case 'examples':
          if (Array.isArray(v) && v.length) add.example = v[0];
          break;
        case 'example':
          add.example = v;
          break;
        case 'deprecated':
          if (v) add.deprecated = true;
          break;
        case 'exclude':
          break;
        case 'json_schema_extra':
        case 'discriminator':
          this.reporter.add(file, node, 'unsupported', `${key}= is not supported; ignored`);
          break;
        default:
          this.reporter.add(file, node, 'info', `keyword ${key}= has no effect on the schema; ignored`);
      }
    }
    void at;
    if (!Object.keys(add).length) return schema0;
    // Value constraints go on the non-null branch; annotations may sit next to a $ref via allOf.
    if (target && target !== schema0 && !('$ref' in target)) {
      const { description, example, deprecated, ...constraints } = add;
      Object.assign(target, constraints);
      const rest: JsonSchema = {};
      if (description !== undefined) rest.description = description;
      if (example !== undefined) rest.example = example;
      if (deprecated !== undefined) rest.deprecated = deprecated;
      return withKeywords(schema0, rest);
    }
    return withKeywords(schema0, add);
  }
}

/**
 * OpenAPI 3.0 stand-in for a tuple's `prefixItems`: `items` is the one member schema when all
 * are equal, else `anyOf` of the distinct members (shared with `kea import`).
 */
export function tupleItems(members: JsonSchema[]): JsonSchema {
  const distinct: JsonSchema[] = [];
  for (const m of members) if (!distinct.some((d) => JSON.stringify(d) === JSON.stringify(m))) distinct.push(m);
  if (distinct.length === 0) return {};
  return distinct.length === 1 ? distinct[0] : { anyOf: distinct };
}

/** `a | b | None` → [a, b, None]. */
function flattenUnion(n: Node): Node[] {
  const inner = unwrapType(n);
  if (inner.type === 'binary_operator' && inner.child(1)?.text === '|') {
    return [...flattenUnion(inner.childForFieldName('left')!), ...flattenUnion(inner.childForFieldName('right')!)];
  }
  return [inner];
}

const isNullOnly = (s: JsonSchema) => Object.keys(s).length === 1 && s.nullable === true;

/** Optional[X] in the 3.0 dialect: `nullable: true`, with `allOf` around a `$ref`. */
export function makeNullable(s: JsonSchema): JsonSchema {
  if ('$ref' in s) return { allOf: [s], nullable: true };
  return { ...s, nullable: true };
}

/** Adds keywords to a schema; a bare `$ref` is wrapped in `allOf` first (3.0 ignores $ref siblings). */
export function withKeywords(s: JsonSchema, kw: JsonSchema): JsonSchema {
  if (!Object.keys(kw).length) return s;
  if ('$ref' in s) return { allOf: [s], ...kw };
  return { ...s, ...kw };
}

/** Where value constraints apply: the schema itself, or its single non-null branch. */
function constraintTarget(s: JsonSchema): JsonSchema | undefined {
  if ('$ref' in s) return s;
  if (Array.isArray(s.allOf) && s.allOf.length === 1) return s.allOf[0] as JsonSchema;
  return s;
}

/** Members of an Enum class body: `name = literal`, in order. */
export function enumMembers(cls: PyClass, reporter?: Reporter): Map<string, unknown> {
  const out = new Map<string, unknown>();
  for (const stmt of cls.node.childForFieldName('body')?.namedChildren ?? []) {
    if (stmt.type !== 'expression_statement') continue;
    const a = stmt.namedChildren[0];
    if (a?.type !== 'assignment') continue;
    const left = a.childForFieldName('left');
    const right = a.childForFieldName('right');
    if (left?.type !== 'identifier' || left.text.startsWith('_') || !right) continue;
    const v = literalValue(right);
    if (v === NOT_LITERAL || v === ELLIPSIS) {
      reporter?.add(cls.file, stmt, 'unsupported', `enum member ${cls.name}.${left.text} = ${right.text} is not a literal; left out`);
      continue;
    }
    out.set(left.text, v);
  }
  return out;
}
