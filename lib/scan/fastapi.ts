/**
 * FastAPI convention of `kea scan`: routes declared with decorators on a `FastAPI()` app or an
 * `APIRouter()` (`@app.get(...)`, `@router.post(...)`, `@app.api_route(..., methods=[...])`),
 * mounted with `include_router(router, prefix=...)`.
 *
 * Takes in: parsed files, their {@link SymbolTable} and a {@link SchemaBuilder}.
 * Gives out: KEA {@link Operation}s (paths as FastAPI serves them) and the app's title/version.
 * Parameter classification follows FastAPI's rules (path if named in the path template;
 * scalar → query; model/container → body; explicit Query/Path/Header/Cookie/Body/Form/File
 * markers win). See docs/scan-conventions.md for the full list.
 */
import type { Access, CachePolicy, HttpMethod, JsonSchema, Operation, Parameter, ResponseSpec } from '../api/types.js';
import {
  callArgs,
  cleandoc,
  docstringOf,
  ELLIPSIS,
  lastName,
  literalValue,
  NOT_LITERAL,
  stringValue,
  type CallArgs,
  type Node,
  type PyFile,
} from './python.js';
import { type Reporter, type SchemaBuilder, type SymbolTable, withKeywords } from './schema.js';

/** An operation found in source, with where it came from. */
export interface ScannedOperation {
  op: Operation;
  file: PyFile;
  node: Node;
}

interface Router {
  file: PyFile;
  name: string;
  kind: 'app' | 'router';
  prefix: string;
  tags: string[];
  node: Node;
  /** FastAPI(title=..., version=..., description=...) */
  info?: { title?: string; version?: string; description?: string };
}

interface Include {
  parent: Router;
  child: Router;
  prefix: string;
  tags: string[];
}

const ROUTE_METHODS: Record<string, HttpMethod[] | 'api_route' | 'unsupported'> = {
  get: ['GET'],
  post: ['POST'],
  put: ['PUT'],
  patch: ['PATCH'],
  delete: ['DELETE'],
  head: ['HEAD'],
  options: ['OPTIONS'],
  api_route: 'api_route',
  trace: 'unsupported',
  websocket: 'unsupported',
  websocket_route: 'unsupported',
  route: 'unsupported',
};

const INJECTED_TYPES = new Set(['Request', 'Response', 'WebSocket', 'BackgroundTasks', 'HTTPConnection', 'SecurityScopes']);
const MARKERS = new Set(['Query', 'Path', 'Header', 'Cookie', 'Body', 'Form', 'File', 'Depends', 'Security']);

/** Import map of one file: local name → (module, imported name). */
function importsOf(file: PyFile): Map<string, { module: string; name?: string }> {
  const out = new Map<string, { module: string; name?: string }>();
  for (const stmt of file.root.namedChildren) {
    if (stmt.type === 'import_from_statement') {
      const mod = stmt.childForFieldName('module_name')?.text ?? '';
      for (const n of stmt.childrenForFieldName('name')) {
        if (n.type === 'aliased_import') {
          out.set(n.childForFieldName('alias')?.text ?? '', { module: mod, name: n.childForFieldName('name')?.text });
        } else out.set(n.text, { module: mod, name: n.text });
      }
    } else if (stmt.type === 'import_statement') {
      for (const n of stmt.childrenForFieldName('name')) {
        if (n.type === 'aliased_import') out.set(n.childForFieldName('alias')?.text ?? '', { module: n.childForFieldName('name')?.text ?? '' });
        else out.set(n.text.split('.')[0], { module: n.text });
      }
    }
  }
  return out;
}

function moduleMatches(file: PyFile, importer: PyFile, mod: string): boolean {
  const rel = mod.replace(/^\.+/, '');
  if (mod.startsWith('.')) {
    const pkg = importer.module.split('.').slice(0, -1);
    const up = mod.length - mod.replace(/^\.+/, '').length - 1;
    const base = pkg.slice(0, pkg.length - up);
    return file.module === [...base, ...(rel ? rel.split('.') : [])].join('.');
  }
  return file.module === rel || file.module.endsWith('.' + rel);
}

/** Scans FastAPI routes in all files. */
export function scanFastApi(
  files: PyFile[],
  symbols: SymbolTable,
  builder: SchemaBuilder,
  reporter: Reporter,
): { operations: ScannedOperation[]; info?: Router['info'] } {
  // 1. apps and routers
  const routers: Router[] = [];
  for (const file of files) {
    // Anywhere in the file, so that app factories (`def create_app(): app = FastAPI() ...`) work too.
    for (const a of file.root.descendantsOfType('assignment')) {
      const left = a.childForFieldName('left');
      const call = callArgs(a.childForFieldName('right'));
      if (left?.type !== 'identifier' || !call) continue;
      const fn = lastName(call.callee);
      if (fn !== 'FastAPI' && fn !== 'APIRouter') continue;
      const prefix = stringValue(call.keywords.get('prefix')) ?? '';
      const tags = stringList(call.keywords.get('tags'));
      const r: Router = { file, name: left.text, kind: fn === 'FastAPI' ? 'app' : 'router', prefix, tags, node: a };
      if (fn === 'FastAPI') {
        r.info = {
          title: stringValue(call.keywords.get('title')),
          version: stringValue(call.keywords.get('version')),
          description: stringValue(call.keywords.get('description')),
        };
        const root = stringValue(call.keywords.get('root_path'));
        if (root) reporter.add(file, a, 'warning', `root_path=${JSON.stringify(root)} is not prepended to paths; set spec.basePath instead`);
      }
      for (const k of ['dependencies', 'default_response_class', 'callbacks']) {
        if (call.keywords.has(k)) reporter.add(file, call.keywords.get(k)!, 'unsupported', `${fn}(${k}=...) is not followed by the scanner`);
      }
      routers.push(r);
    }
  }
  const findRouter = (file: PyFile, expr: Node): Router | undefined => {
    const text = expr.text;
    const local = routers.find((r) => r.file === file && r.name === text);
    if (local) return local;
    const imports = importsOf(file);
    if (expr.type === 'identifier') {
      const imp = imports.get(text);
      if (imp?.name) return routers.find((r) => r.name === imp.name && moduleMatches(r.file, file, imp.module));
      return undefined;
    }
    if (expr.type === 'attribute') {
      const obj = expr.childForFieldName('object')?.text ?? '';
      const attr = expr.childForFieldName('attribute')?.text ?? '';
      const imp = imports.get(obj.split('.')[0]);
      const join = (m: string, n: string) => (/^\.+$/.test(m) ? m + n : `${m}.${n}`);
      const mod = imp ? (imp.name ? join(imp.module, imp.name) : imp.module) + obj.slice(obj.split('.')[0].length) : obj;
      return routers.find((r) => r.name === attr && moduleMatches(r.file, file, mod));
    }
    return undefined;
  };

  // 2. include_router edges
  const includes: Include[] = [];
  for (const file of files) {
    for (const callNode of file.root.descendantsOfType('call')) {
      const fn = callNode.childForFieldName('function');
      if (fn?.type !== 'attribute') continue;
      const method = fn.childForFieldName('attribute')?.text;
      const obj = fn.childForFieldName('object');
      if (!obj) continue;
      if (method === 'include_router') {
        const call = callArgs(callNode)!;
        const parent = findRouter(file, obj);
        const childExpr = call.positional[0] ?? call.keywords.get('router');
        const child = childExpr ? findRouter(file, childExpr) : undefined;
        if (!parent || !child) {
          reporter.add(file, callNode, 'unsupported', `cannot resolve ${callNode.text.split('\n')[0]} to a FastAPI app/APIRouter in the scanned sources`);
          continue;
        }
        const prefixNode = call.keywords.get('prefix');
        const prefix = prefixNode ? stringValue(prefixNode) : '';
        if (prefix === undefined) reporter.add(file, prefixNode!, 'unsupported', `include_router prefix ${prefixNode!.text} is not a literal string; ignored`);
        for (const k of ['dependencies', 'callbacks', 'default_response_class']) {
          if (call.keywords.has(k)) reporter.add(file, call.keywords.get(k)!, 'unsupported', `include_router(${k}=...) is not followed by the scanner`);
        }
        includes.push({ parent, child, prefix: prefix ?? '', tags: stringList(call.keywords.get('tags')) });
      } else if (['add_api_route', 'add_route', 'mount', 'add_api_websocket_route', 'add_websocket_route'].includes(method ?? '') && findRouter(file, obj)) {
        reporter.add(file, callNode, 'unsupported', `${obj.text}.${method}(...) registers routes dynamically; the scanner only reads decorators`);
      }
    }
  }

  const hasApp = routers.some((r) => r.kind === 'app');
  /** Every (prefix, tags) under which a router's routes are served. */
  const mounts = (r: Router, seen: Set<Router> = new Set()): Array<{ prefix: string; tags: string[] }> => {
    if (r.kind === 'app') return [{ prefix: '', tags: [] }];
    if (seen.has(r)) return [];
    seen.add(r);
    const out: Array<{ prefix: string; tags: string[] }> = [];
    for (const inc of includes.filter((i) => i.child === r)) {
      for (const m of mounts(inc.parent, new Set(seen))) out.push({ prefix: m.prefix + inc.prefix + r.prefix, tags: [...m.tags, ...inc.tags, ...r.tags] });
    }
    return out;
  };

  // 3. routes
  const operations: ScannedOperation[] = [];
  for (const file of files) {
    for (const dd of file.root.descendantsOfType('decorated_definition')) {
      const def = dd.childForFieldName('definition');
      if (def?.type !== 'function_definition') continue;
      for (const deco of dd.namedChildren.filter((c) => c.type === 'decorator')) {
        const expr = deco.namedChildren[0];
        const call = callArgs(expr);
        const target = call ? expr.childForFieldName('function') : expr;
        if (target?.type !== 'attribute') continue;
        const obj = target.childForFieldName('object');
        const attr = target.childForFieldName('attribute')?.text ?? '';
        if (!(attr in ROUTE_METHODS)) {
          if (['middleware', 'exception_handler', 'on_event'].includes(attr) && obj && findRouter(file, obj)) {
            reporter.add(
              file,
              deco,
              'info',
              `@${target.text}: ${def.childForFieldName('name')?.text} may change requests or responses at run time; not part of the description`,
            );
          }
          continue;
        }
        const router = obj ? findRouter(file, obj) : undefined;
        if (!router) {
          // Looks like a route (`@x.get("/path")`) on something that is not a FastAPI app/router we know.
          const first = call?.positional[0];
          if (first && stringValue(first)?.startsWith('/')) {
            reporter.add(
              file,
              deco,
              'unsupported',
              `@${target.text}(...) is not on a FastAPI app or APIRouter of the scanned sources; ${def.childForFieldName('name')?.text} left out`,
            );
          }
          continue;
        }
        const kind = ROUTE_METHODS[attr];
        if (kind === 'unsupported' || !call) {
          reporter.add(
            file,
            deco,
            'unsupported',
            `@${router.name}.${attr} routes are not supported (only JSON HTTP operations); ${def.childForFieldName('name')?.text} left out`,
          );
          continue;
        }
        let list = mounts(router);
        if (list.length === 0) {
          if (hasApp) {
            reporter.add(
              file,
              deco,
              'warning',
              `router ${router.name} is never included in a FastAPI app in the scanned sources; its routes are described at its own prefix`,
            );
          }
          list = [{ prefix: router.prefix, tags: router.tags }];
        }
        for (const m of list) {
          const ops = routeOperations(file, def, call, kind, m, builder, reporter, symbols);
          for (const op of ops) operations.push({ op, file, node: deco });
        }
      }
    }
  }
  const app = routers.find((r) => r.kind === 'app');
  return { operations, info: app?.info };
}

function stringList(n: Node | undefined): string[] {
  const v = literalValue(n);
  return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : [];
}

interface PyParam {
  name: string;
  type?: Node;
  default?: Node;
  node: Node;
  splat?: boolean;
}

/** Parameters of a function definition (self/cls included; callers skip them). */
export function functionParams(def: Node): PyParam[] {
  const out: PyParam[] = [];
  for (const p of def.childForFieldName('parameters')?.namedChildren ?? []) {
    switch (p.type) {
      case 'identifier':
        out.push({ name: p.text, node: p });
        break;
      case 'typed_parameter': {
        const first = p.namedChildren[0];
        const splat = first?.type === 'list_splat_pattern' || first?.type === 'dictionary_splat_pattern';
        out.push({ name: first?.text ?? '', type: p.childForFieldName('type') ?? undefined, node: p, splat });
        break;
      }
      case 'default_parameter':
        out.push({ name: p.childForFieldName('name')?.text ?? '', default: p.childForFieldName('value') ?? undefined, node: p });
        break;
      case 'typed_default_parameter':
        out.push({
          name: p.childForFieldName('name')?.text ?? '',
          type: p.childForFieldName('type') ?? undefined,
          default: p.childForFieldName('value') ?? undefined,
          node: p,
        });
        break;
      case 'list_splat_pattern':
      case 'dictionary_splat_pattern':
        out.push({ name: p.text, node: p, splat: true });
        break;
      default:
        break; // keyword_separator, positional_separator, comment
    }
  }
  return out;
}

/** The FastAPI marker call of a parameter: `= Query(...)` or `Annotated[T, Query(...)]`. */
function markerOf(p: PyParam): { call: CallArgs; fn: string; inAnnotated: boolean } | undefined {
  const d = callArgs(p.default);
  if (d && MARKERS.has(lastName(d.callee))) return { call: d, fn: lastName(d.callee), inAnnotated: false };
  if (p.type) {
    let t = p.type;
    while (t.type === 'type' && t.namedChildren.length === 1) t = t.namedChildren[0];
    const head = t.type === 'generic_type' ? t.namedChildren[0]?.text : t.type === 'subscript' ? t.childForFieldName('value')?.text : undefined;
    if (head && lastName(head) === 'Annotated') {
      const args =
        t.type === 'generic_type' ? (t.namedChildren.find((c) => c.type === 'type_parameter')?.namedChildren ?? []) : t.childrenForFieldName('subscript');
      for (const a of args.slice(1)) {
        let inner = a;
        while (inner.type === 'type' && inner.namedChildren.length === 1) inner = inner.namedChildren[0];
        const c = callArgs(inner);
        if (c && MARKERS.has(lastName(c.callee))) return { call: c, fn: lastName(c.callee), inAnnotated: true };
      }
    }
  }
  return undefined;
}

function typeHeadName(t: Node | undefined): string | undefined {
  if (!t) return undefined;
  let n = t;
  while (n.type === 'type' && n.namedChildren.length === 1) n = n.namedChildren[0];
  if (n.type === 'identifier' || n.type === 'attribute') return lastName(n.text);
  return undefined;
}

const httpStatus = (n: Node | undefined): string | undefined => {
  if (!n) return undefined;
  const v = literalValue(n);
  if (typeof v === 'number') return String(v);
  const m = /HTTP_(\d{3})/.exec(n.text);
  return m ? m[1] : undefined;
};

/** Builds the operation(s) of one decorated route function. */
function routeOperations(
  file: PyFile,
  def: Node,
  call: CallArgs,
  kind: HttpMethod[] | 'api_route',
  mount: { prefix: string; tags: string[] },
  builder: SchemaBuilder,
  reporter: Reporter,
  symbols: SymbolTable,
): Operation[] {
  const fname = def.childForFieldName('name')?.text ?? 'operation';
  const kw = call.keywords;
  const pathNode = call.positional[0] ?? kw.get('path');
  const rawPath = stringValue(pathNode);
  if (rawPath === undefined) {
    reporter.add(file, call.node, 'unsupported', `route path of ${fname} is not a literal string; operation left out`);
    return [];
  }
  const include = kw.get('include_in_schema');
  if (include?.type === 'false') {
    reporter.add(file, call.node, 'info', `${fname}: include_in_schema=False; not described (not part of the published API)`);
    return [];
  }
  let methods: HttpMethod[];
  if (kind === 'api_route') {
    const v = literalValue(kw.get('methods'));
    methods = Array.isArray(v) ? v.map((m) => String(m).toUpperCase() as HttpMethod) : ['GET'];
    const bad = methods.filter((m) => !['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD', 'OPTIONS'].includes(m));
    if (bad.length) reporter.add(file, call.node, 'unsupported', `${fname}: methods ${bad.join(', ')} cannot be routed; left out`);
    methods = methods.filter((m) => !bad.includes(m));
  } else methods = kind;

  // Path template: strip Starlette convertors ({x:path} → {x}).
  let path = mount.prefix + rawPath;
  path = path.replace(/\{([A-Za-z_][A-Za-z0-9_]*):([a-z]+)\}/g, (_m, name: string, conv: string) => {
    reporter.add(
      file,
      pathNode,
      conv === 'path' ? 'warning' : 'info',
      `path convertor {${name}:${conv}} is published as {${name}}${conv === 'path' ? ' (a single path segment at the gateway)' : ''}`,
    );
    return `{${name}}`;
  });
  const pathParams = [...path.matchAll(/\{([A-Za-z_][A-Za-z0-9_]*)\}/g)].map((m) => m[1]);

  const parameters: Parameter[] = [];
  const bodyParams: Array<{ name: string; schema: JsonSchema; required: boolean; embed: boolean }> = [];
  for (const p of functionParams(def)) {
    if (p.splat) {
      reporter.add(file, p.node, 'info', `${fname}: ${p.name} is not an API parameter; ignored`);
      continue;
    }
    const head = typeHeadName(p.type);
    if (head && INJECTED_TYPES.has(head)) continue; // framework-injected, not an API input
    const marker = markerOf(p);
    if (marker && (marker.fn === 'Depends' || marker.fn === 'Security')) {
      reporter.add(file, p.node, 'warning', `${fname}: dependency ${p.name}=${marker.call.callee}(...) is not followed; parameters it reads are not described`);
      continue;
    }
    if (!p.type) reporter.add(file, p.node, 'warning', `${fname}: parameter ${p.name} has no type hint; typed as any`);
    let where: 'path' | 'query' | 'header' | 'cookie' | 'body' | 'form';
    if (marker) {
      const m = marker.fn.toLowerCase();
      where = m === 'file' ? 'form' : (m as typeof where);
    } else if (pathParams.includes(p.name)) where = 'path';
    else if (p.type && !builder.isScalarType(file, p.type)) where = 'body';
    else where = 'query';
    if (where === 'path' && !pathParams.includes(p.name)) {
      reporter.add(file, p.node, 'warning', `${fname}: Path() parameter ${p.name} is not in the path template ${path}`);
    }

    // Required and default.
    let defaultNode: Node | undefined;
    let hasDefault: boolean;
    if (marker && !marker.inAnnotated) {
      defaultNode = marker.call.positional[0] ?? marker.call.keywords.get('default');
      hasDefault = marker.call.keywords.has('default_factory') || (!!defaultNode && literalValue(defaultNode) !== ELLIPSIS);
    } else {
      defaultNode = p.default;
      hasDefault = !!defaultNode && literalValue(defaultNode) !== ELLIPSIS;
    }
    let schema = p.type ? builder.typeSchema(file, p.type) : {};
    if (marker && !marker.inAnnotated) schema = builder.applyConstraints(file, schema, marker.call.keywords, marker.call.node);
    if (hasDefault && defaultNode) {
      const v = builder.defaultValue(file, defaultNode);
      if (v === NOT_LITERAL)
        reporter.add(file, defaultNode, 'warning', `${fname}: default ${defaultNode.text} of ${p.name} is not a literal; left out of the schema`);
      else if (v !== null && v !== ELLIPSIS) schema = withKeywords(schema, { default: v });
    }
    const required = where === 'path' ? true : !hasDefault;
    const aliasNode = marker?.call.keywords.get('alias');
    let name = stringValue(aliasNode) ?? p.name;
    if (where === 'header' && !aliasNode && marker?.call.keywords.get('convert_underscores')?.type !== 'false') name = name.replace(/_/g, '-');
    if (marker?.call.keywords.get('include_in_schema')?.type === 'false') {
      reporter.add(file, p.node, 'info', `${fname}: parameter ${p.name} has include_in_schema=False; not described`);
      continue;
    }

    if (where === 'cookie') {
      reporter.add(
        file,
        p.node,
        'unsupported',
        `${fname}: cookie parameter ${p.name} cannot be described in an ApiSchema (path, query and header only); left out`,
      );
      continue;
    }
    if (where === 'form') {
      reporter.add(file, p.node, 'unsupported', `${fname}: form/file parameter ${p.name} is not a JSON body; left out`);
      continue;
    }
    if (where === 'body') {
      const embed = marker?.call.keywords.get('embed')?.type === 'true';
      const media = stringValue(marker?.call.keywords.get('media_type'));
      if (media && !/json/.test(media))
        reporter.add(file, p.node, 'unsupported', `${fname}: body media_type ${media} is not JSON; described as application/json`);
      bodyParams.push({ name, schema, required, embed });
      continue;
    }
    const param: Parameter = { name, in: where, required };
    const desc = typeof schema.description === 'string' ? schema.description : undefined;
    if (desc) param.description = desc;
    param.schema = schema;
    parameters.push(param);
  }
  for (const name of pathParams) {
    if (!parameters.some((p) => p.in === 'path' && p.name === name)) {
      reporter.add(file, def, 'warning', `${fname}: path parameter {${name}} has no function argument; described as a string`);
      parameters.push({ name, in: 'path', required: true, schema: { type: 'string' } });
    }
  }

  let requestBody: Operation['requestBody'];
  if (bodyParams.length === 1 && !bodyParams[0].embed) {
    requestBody = { required: bodyParams[0].required, contentType: 'application/json', schema: bodyParams[0].schema };
  } else if (bodyParams.length) {
    const properties: Record<string, JsonSchema> = {};
    const required: string[] = [];
    for (const b of bodyParams) {
      properties[b.name] = b.schema;
      if (b.required) required.push(b.name);
    }
    const schema: JsonSchema = { type: 'object', properties };
    if (required.length) schema.required = required;
    requestBody = { required: required.length > 0, contentType: 'application/json', schema };
  }

  // Responses.
  const status = httpStatus(kw.get('status_code')) ?? '200';
  const response: ResponseSpec = { description: stringValue(kw.get('response_description')) ?? 'Successful Response' };
  const rm = kw.get('response_model');
  const returns = def.childForFieldName('return_type');
  let respSchema: JsonSchema | undefined;
  if (rm) {
    if (rm.type !== 'none') respSchema = builder.typeSchema(file, rm);
  } else if (returns && !INJECTED_TYPES.has(typeHeadName(returns) ?? '') && !/Response$/.test(typeHeadName(returns) ?? '') && unwrap(returns).type !== 'none') {
    respSchema = builder.typeSchema(file, returns);
  }
  const rc = kw.get('response_class');
  if (rc) {
    const cls = lastName(rc.text);
    const media: Record<string, string> = {
      HTMLResponse: 'text/html',
      PlainTextResponse: 'text/plain',
      StreamingResponse: 'application/octet-stream',
      FileResponse: 'application/octet-stream',
      RedirectResponse: '',
    };
    if (cls in media) {
      reporter.add(file, rc, 'warning', `${fname}: response_class=${cls} is not JSON; the response is described without a schema`);
      respSchema = undefined;
      if (media[cls]) response.contentType = media[cls];
    }
  }
  if (respSchema && !['204', '304'].includes(status) && !status.startsWith('1')) {
    response.contentType ??= 'application/json';
    response.schema = respSchema;
  }
  const responses: Record<string, ResponseSpec> = { [status]: response };
  const extra = kw.get('responses');
  if (extra) parseResponses(file, extra, builder, reporter, fname, responses);

  const doc = docstringOf(def);
  const docText = doc?.split('\f')[0].trim();
  const summary =
    stringValue(kw.get('summary')) ?? (docText ? docText.split('\n')[0].trim() : fname.replace(/_/g, ' ').replace(/\b\w/g, (c) => c.toUpperCase()));
  const description = stringValue(kw.get('description')) ?? (docText ? cleandoc(docText) : undefined);
  const tags = [...mount.tags, ...stringList(kw.get('tags'))];
  const operationId = stringValue(kw.get('operation_id')) ?? fname;

  const op: Omit<Operation, 'method'> = { operationId, path, summary };
  if (description) op.description = description;
  if (tags.length) op.tags = [...new Set(tags)];
  if (kw.get('deprecated')?.type === 'true') op.deprecated = true;
  if (parameters.length) op.parameters = parameters;
  if (requestBody) op.requestBody = requestBody;
  op.responses = responses;
  const oe = kw.get('openapi_extra');
  if (oe) applyOpenApiExtra(file, oe, op, reporter, fname);
  for (const k of ['dependencies', 'callbacks']) {
    if (kw.has(k)) reporter.add(file, kw.get(k)!, k === 'callbacks' ? 'unsupported' : 'warning', `${fname}: ${k}=... is not followed by the scanner`);
  }
  void symbols;
  return methods.map((method) => ({
    ...structuredClone(op),
    method,
    operationId: methods.length > 1 ? `${operationId}_${method.toLowerCase()}` : operationId,
  }));
}

const unwrap = (n: Node): Node => (n.type === 'type' && n.namedChildren.length === 1 ? unwrap(n.namedChildren[0]) : n);

/** `responses={404: {"description": "...", "model": Problem}}` */
function parseResponses(file: PyFile, n: Node, builder: SchemaBuilder, reporter: Reporter, fname: string, out: Record<string, ResponseSpec>): void {
  if (n.type !== 'dictionary') {
    reporter.add(file, n, 'unsupported', `${fname}: responses=${n.text.slice(0, 40)} is not a dict literal; left out`);
    return;
  }
  for (const pair of n.namedChildren.filter((c) => c.type === 'pair')) {
    const k = literalValue(pair.childForFieldName('key'));
    const v = pair.childForFieldName('value');
    if ((typeof k !== 'number' && typeof k !== 'string') || v?.type !== 'dictionary') {
      reporter.add(file, pair, 'unsupported', `${fname}: response entry ${pair.text.slice(0, 40)} is not literal; left out`);
      continue;
    }
    const spec: ResponseSpec = out[String(k)] ?? { description: '' };
    for (const e of v.namedChildren.filter((c) => c.type === 'pair')) {
      const key = stringValue(e.childForFieldName('key'));
      const val = e.childForFieldName('value')!;
      if (key === 'description') spec.description = stringValue(val) ?? spec.description;
      else if (key === 'model') {
        spec.schema = builder.typeSchema(file, val);
        spec.contentType = 'application/json';
      } else reporter.add(file, e, 'unsupported', `${fname}: response key ${key} is not supported; ignored`);
    }
    if (!spec.description) spec.description = String(k) === '200' ? 'Successful Response' : 'Additional Response';
    out[String(k)] = spec;
  }
}

/**
 * `openapi_extra={...}`: KEA extensions `x-kea-access` (Access), `x-kea-cache` (CachePolicy)
 * and `x-kea-timeout` (Duration) become the operation's access, cache and timeout. Other keys
 * are reported (they are not part of an ApiSchema operation).
 */
function applyOpenApiExtra(file: PyFile, n: Node, op: Omit<Operation, 'method'>, reporter: Reporter, fname: string): void {
  const v = literalValue(n);
  if (v === NOT_LITERAL || typeof v !== 'object' || v === null || Array.isArray(v)) {
    reporter.add(file, n, 'unsupported', `${fname}: openapi_extra is not a dict literal; ignored`);
    return;
  }
  for (const [k, val] of Object.entries(v as Record<string, unknown>)) {
    if (k === 'x-kea-access') op.access = val as Access;
    else if (k === 'x-kea-cache') op.cache = val as CachePolicy;
    else if (k === 'x-kea-timeout' && typeof val === 'string') op.timeout = val;
    else reporter.add(file, n, 'unsupported', `${fname}: openapi_extra key ${k} is not supported; ignored`);
  }
}
