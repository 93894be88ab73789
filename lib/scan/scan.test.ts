/**
 * Unit tests of `kea scan` conventions (docs/scan-conventions.md) on small Python sources
 * written to a temporary folder: routers and prefixes, parameter classification, KEA
 * extensions, the plain-class convention, and above all that every unsupported construct is
 * reported with file:line (never dropped silently). The agreement with what FastAPI itself
 * publishes is tested on real services in compare.test.ts.
 */
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, describe, expect, test } from '@jest/globals';
import YAML from 'yaml';
import type { Operation } from '../api/types.js';
import { formatIssues, scanPython, scanResultToYaml } from './index.js';

const roots: string[] = [];
afterAll(() => roots.forEach((r) => rmSync(r, { recursive: true, force: true })));

/** Writes files (path → source) into a fresh temp dir and returns it. */
function tree(files: Record<string, string>): string {
  const root = mkdtempSync(join(tmpdir(), 'kea-scan-'));
  roots.push(root);
  for (const [p, src] of Object.entries(files)) {
    mkdirSync(dirname(join(root, p)), { recursive: true });
    writeFileSync(join(root, p), src.replace(/^\n/, ''));
  }
  return root;
}

const opOf = (ops: Operation[] | undefined, key: string) => ops!.find((o) => `${o.method} ${o.path}` === key)!;

describe('FastAPI convention', () => {
  test('nested routers, relative imports and include prefixes compose paths and tags', async () => {
    const root = tree({
      'svc/__init__.py': '',
      'svc/main.py': `
from fastapi import FastAPI
from .api import api
app = FastAPI(title="Demo", version="2.1.0", description="A demo.")
app.include_router(api, prefix="/api", tags=["api"])
`,
      'svc/api.py': `
from fastapi import APIRouter
from . import items
api = APIRouter(prefix="/v1")
api.include_router(items.router)
`,
      'svc/items.py': `
from fastapi import APIRouter
router = APIRouter(prefix="/items", tags=["items"])

@router.get("/{item_id}", summary="Fetch", operation_id="fetchItem", tags=["read"])
def get_item(item_id: int) -> dict[str, int]:
    """Ignored for the summary because summary= is given."""
    return {}
`,
    });
    const r = await scanPython(root, { name: 'demo' });
    expect(formatIssues(r.issues)).toBe('');
    expect(r.schema.spec.info).toEqual({ title: 'Demo', version: '2.1.0', description: 'A demo.' });
    const op = r.schema.spec.operations![0];
    expect(op).toMatchObject({
      operationId: 'fetchItem',
      method: 'GET',
      path: '/api/v1/items/{item_id}',
      summary: 'Fetch',
      tags: ['api', 'items', 'read'],
      parameters: [{ name: 'item_id', in: 'path', required: true, schema: { type: 'integer' } }],
      responses: {
        '200': { description: 'Successful Response', contentType: 'application/json', schema: { type: 'object', additionalProperties: { type: 'integer' } } },
      },
    });
  });

  test('parameters: path/query/header/body classification, required-ness, constraints, x-kea extensions', async () => {
    const root = tree({
      'app.py': `
from typing import Annotated, Optional
from fastapi import Body, FastAPI, Header, Query
from pydantic import BaseModel, Field

class Item(BaseModel):
    """An item."""
    name: str = Field(min_length=1)
    price: float = Field(gt=0)
    tags: list[str] = Field(default_factory=list)
    parent: Optional["Item"] = None

app = FastAPI()

@app.patch(
    "/items/{item_id}",
    status_code=202,
    response_description="Accepted",
    openapi_extra={"x-kea-access": {"mode": "restricted", "roles": ["editor"]}, "x-kea-cache": {"ttlSeconds": 30, "scope": "identity"}, "x-kea-timeout": "2s"},
)
async def patch_item(
    item_id: str,
    item: Item,
    dry_run: bool = False,
    limit: int = Query(..., ge=1, le=10, description="max"),
    x_trace_id: Annotated[Optional[str], Header()] = None,
) -> Item:
    """Patch an item.

    Second paragraph.
    \\f
    Hidden.
    """
    return item
`,
    });
    const r = await scanPython(root);
    expect(formatIssues(r.issues)).toBe('');
    const op = opOf(r.schema.spec.operations, 'PATCH /items/{item_id}');
    expect(op.summary).toBe('Patch an item.');
    expect(op.description).toBe('Patch an item.\n\nSecond paragraph.');
    expect(op.parameters).toEqual([
      { name: 'item_id', in: 'path', required: true, schema: { type: 'string' } },
      { name: 'dry_run', in: 'query', required: false, schema: { type: 'boolean', default: false } },
      { name: 'limit', in: 'query', required: true, description: 'max', schema: { type: 'integer', minimum: 1, maximum: 10, description: 'max' } },
      { name: 'x-trace-id', in: 'header', required: false, schema: { type: 'string', nullable: true } },
    ]);
    expect(op.requestBody).toEqual({ required: true, contentType: 'application/json', schema: { $ref: '#/components/schemas/Item' } });
    expect(op.responses).toEqual({ '202': { description: 'Accepted', contentType: 'application/json', schema: { $ref: '#/components/schemas/Item' } } });
    expect(op.access).toEqual({ mode: 'restricted', roles: ['editor'] });
    expect(op.cache).toEqual({ ttlSeconds: 30, scope: 'identity' });
    expect(op.timeout).toBe('2s');
    expect(r.schema.spec.components!.schemas!.Item).toEqual({
      type: 'object',
      description: 'An item.',
      properties: {
        name: { type: 'string', minLength: 1 },
        price: { type: 'number', minimum: 0, exclusiveMinimum: true },
        tags: { type: 'array', items: { type: 'string' } },
        parent: { allOf: [{ $ref: '#/components/schemas/Item' }], nullable: true },
      },
      required: ['name', 'price'],
    });
  });

  test('every unsupported construct is reported with file:line, and the YAML header lists it', async () => {
    const root = tree({
      'app.py': `
from fastapi import Cookie, Depends, FastAPI, Form, Body
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field, computed_field
from other import Thing

LIMIT = 10
app = FastAPI()

class M(BaseModel):
    pair: tuple[int, str]
    thing: Thing
    n: int = Field(le=LIMIT)
    x: int = Field(json_schema_extra={"a": 1})

    @computed_field
    def double(self) -> int:
        return 2

def auth():
    return 1

@app.websocket("/ws")
async def ws(sock):
    pass

@app.post("/login")
def login(user: str = Form(...), session: str = Cookie(None), who=Depends(auth)) -> M:
    return M()

@app.get("/page", response_class=HTMLResponse)
def page(m: M = Body(...)) -> str:
    return "<p/>"

@app.get("/trailing/")
def trailing() -> int:
    return 1

@app.trace("/t")
def t():
    pass

@app.get("/x", openapi_extra={"x-other": 1})
def x(q):
    return 1

app.add_api_route("/dyn", x)
app.include_router(missing_router)
`,
    });
    const r = await scanPython(root);
    const f = join(root, 'app.py');
    const lines = formatIssues(r.issues.filter((i) => i.level !== 'info')).split('\n');
    expect(lines).toEqual([
      `${f}:10: warning: fixed-length tuple tuple[int, str] needs prefixItems (OpenAPI 3.1); described as an array of 2 items, each any of the member types`,
      `${f}:11: unsupported: type Thing is unknown (not a builtin, pydantic model, Enum or alias in the scanned sources); typed as any`,
      `${f}:12: unsupported: le=LIMIT is not a literal; constraint left out`,
      `${f}:13: unsupported: json_schema_extra= is not supported; ignored`,
      `${f}:15: unsupported: computed_field in M appears only in serialized output; not described`,
      `${f}:22: unsupported: @app.websocket routes are not supported (only JSON HTTP operations); ws left out`,
      `${f}:27: unsupported: login: form/file parameter user is not a JSON body; left out`,
      `${f}:27: unsupported: login: cookie parameter session cannot be described in an ApiSchema (path, query and header only); left out`,
      `${f}:27: warning: login: dependency who=Depends(...) is not followed; parameters it reads are not described`,
      `${f}:30: warning: page: response_class=HTMLResponse is not JSON; the response is described without a schema`,
      `${f}:30: unsupported: GET /page: a GET request body cannot be routed; body left out`,
      `${f}:34: unsupported: GET /trailing/: path is not a valid ApiSchema path template (segments of [A-Za-z0-9._~:@-] or {name}, no trailing slash); operation left out`,
      `${f}:38: unsupported: @app.trace routes are not supported (only JSON HTTP operations); t left out`,
      `${f}:42: unsupported: x: openapi_extra key x-other is not supported; ignored`,
      `${f}:43: warning: x: parameter q has no type hint; typed as any`,
      `${f}:46: unsupported: app.add_api_route(...) registers routes dynamically; the scanner only reads decorators`,
      `${f}:47: unsupported: cannot resolve app.include_router(missing_router) to a FastAPI app/APIRouter in the scanned sources`,
    ]);
    // What could be described still is.
    expect(r.schema.spec.operations!.map((o) => `${o.method} ${o.path}`)).toEqual(['POST /login', 'GET /page', 'GET /x']);
    expect(opOf(r.schema.spec.operations, 'GET /page').responses!['200']).toEqual({ description: 'Successful Response', contentType: 'text/html' });
    const yaml = scanResultToYaml(r);
    expect(yaml.split('\n')[1]).toBe('# 17 construct(s) not (fully) translated:');
    expect(yaml).toContain(`#   ${f}:46: unsupported: app.add_api_route(...)`);
    expect(YAML.parse(yaml).kind).toBe('ApiSchema');
  });

  test('enums, literals, unions, dicts, aliases and inheritance', async () => {
    const root = tree({
      'app.py': `
from enum import Enum
from typing import Literal, Union
from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict, Field

class Mode(str, Enum):
    """How to run."""
    fast = "fast"
    slow = "slow"

class Base(BaseModel):
    id: int

class Job(Base):
    model_config = ConfigDict(extra="forbid")
    mode: Mode = Mode.fast
    kind: Literal["a", "b"]
    one: Literal[3]
    size: Union[int, str, None]
    env: dict[str, float] = {}
    display: str = Field("x", alias="displayName")
    _secret: str = "s"

app = FastAPI()

@app.put("/jobs")
def put_job(job: Job) -> Job:
    return job
`,
    });
    const r = await scanPython(root);
    expect(formatIssues(r.issues)).toBe('');
    expect(r.schema.spec.components!.schemas).toEqual({
      Mode: { enum: ['fast', 'slow'], type: 'string', description: 'How to run.' },
      Job: {
        type: 'object',
        additionalProperties: false,
        properties: {
          id: { type: 'integer' },
          mode: { allOf: [{ $ref: '#/components/schemas/Mode' }], default: 'fast' },
          kind: { enum: ['a', 'b'], type: 'string' },
          one: { enum: [3], type: 'integer' },
          size: { anyOf: [{ type: 'integer' }, { type: 'string' }], nullable: true },
          env: { type: 'object', additionalProperties: { type: 'number' }, default: {} },
          displayName: { type: 'string', default: 'x' },
        },
        required: ['id', 'kind', 'one', 'size'],
      },
    });
  });
});

describe('plain-class convention', () => {
  test('public typed methods become POST operations; what cannot be described is reported', async () => {
    const root = tree({
      'model.py': `
from typing import Optional

class Scaler:
    """Scales numbers."""

    def __init__(self, k: float = 2.0):
        self.k = k

    def scale(self, values: list[float], offset: Optional[float] = None) -> list[float]:
        """Multiply every value by k.

        Then add the offset.
        """
        return values

    def reset(self) -> None:
        """Forget state."""

    @staticmethod
    def version() -> str:
        return "1"

    @property
    def factor(self) -> float:
        return self.k

    def untyped(self, x):
        return x

    def star(self, *xs: float) -> float:
        return 0.0

    def _private(self, y: int) -> int:
        return y
`,
    });
    const r = await scanPython(join(root, 'model.py'), { name: 'scaler' });
    expect(r.convention).toBe('plain-class');
    const f = join(root, 'model.py');
    expect(formatIssues(r.issues).split('\n')).toEqual([
      `${f}:23: info: Scaler.factor is a property, not a method; not an operation`,
      `${f}:27: unsupported: Scaler.untyped: parameter x has no type hint; method left out`,
      `${f}:30: unsupported: Scaler.star: *xs cannot be a JSON body property; method left out`,
    ]);
    expect(r.schema.spec.info).toEqual({ title: 'Scaler', version: '0.1.0', description: 'Scales numbers.' });
    expect(r.schema.spec.operations).toEqual([
      {
        operationId: 'scale',
        method: 'POST',
        path: '/scale',
        summary: 'Multiply every value by k.',
        description: 'Multiply every value by k.\n\nThen add the offset.',
        requestBody: {
          required: true,
          contentType: 'application/json',
          schema: {
            type: 'object',
            properties: { values: { type: 'array', items: { type: 'number' } }, offset: { type: 'number', nullable: true } },
            required: ['values'],
          },
        },
        responses: { '200': { description: 'Successful Response', contentType: 'application/json', schema: { type: 'array', items: { type: 'number' } } } },
      },
      {
        operationId: 'reset',
        method: 'POST',
        path: '/reset',
        summary: 'Forget state.',
        description: 'Forget state.',
        responses: { '200': { description: 'Successful Response' } },
      },
      {
        operationId: 'version',
        method: 'POST',
        path: '/version',
        summary: 'Version',
        responses: { '200': { description: 'Successful Response', contentType: 'application/json', schema: { type: 'string' } } },
      },
    ]);
  });

  test('several classes get class-prefixed paths and operationIds', async () => {
    const root = tree({
      'models.py': `
class TextModel:
    def embed(self, text: str) -> list[float]:
        return []

class ImageModel:
    def classify(self, pixels: list[list[int]]) -> str:
        return ""
`,
    });
    const r = await scanPython(root, { convention: 'plain-class' });
    expect(r.schema.spec.operations!.map((o) => [o.operationId, o.path])).toEqual([
      ['TextModel.embed', '/text_model/embed'],
      ['ImageModel.classify', '/image_model/classify'],
    ]);
    const only = await scanPython(root, { className: 'ImageModel' });
    expect(only.schema.spec.operations!.map((o) => o.path)).toEqual(['/classify']);
  });

  test('a directory with neither routes nor classes is reported, not silently empty', async () => {
    const root = tree({ 'util.py': 'def helper(x):\n    return x\n' });
    const r = await scanPython(root);
    expect(r.schema.spec.operations).toEqual([]);
    expect(formatIssues(r.issues)).toBe(`${join(root, 'util.py')}:1: unsupported: no operation found by the plain-class convention`);
    await expect(scanPython(tree({ 'README.md': 'x' }))).rejects.toThrow(/no Python/);
  });
});

describe('validators', () => {
  test('are reported as info: the service still runs them, the schema cannot say so', async () => {
    const root = tree({
      'app.py': `
from fastapi import FastAPI
from pydantic import BaseModel, field_validator

class Order(BaseModel):
    qty: int

    @field_validator("qty")
    @classmethod
    def even(cls, v):
        return v

app = FastAPI()

@app.post("/orders")
def order(o: Order) -> Order:
    return o
`,
    });
    const r = await scanPython(root);
    expect(formatIssues(r.issues)).toBe(
      `${join(root, 'app.py')}:7: info: validator Order.even checks what JSON Schema cannot express; not in the schema (the service still runs it)`,
    );
  });
});

describe('where routes are declared', () => {
  test('app factories work; route-like decorators on unknown objects are reported', async () => {
    const root = tree({
      'factory.py': `
from fastapi import FastAPI

def create_app() -> FastAPI:
    app = FastAPI(title="made")

    @app.get("/inside")
    def inside() -> int:
        return 1

    return app
`,
      'flaskish.py': `
from flask import Blueprint
bp = Blueprint("x", __name__)

@bp.get("/flask")
def f():
    return "x"
`,
    });
    const r = await scanPython(root);
    expect(r.schema.spec.operations!.map((o) => `${o.method} ${o.path}`)).toEqual(['GET /inside']);
    expect(formatIssues(r.issues)).toBe(
      `${join(root, 'flaskish.py')}:4: unsupported: @bp.get(...) is not on a FastAPI app or APIRouter of the scanned sources; f left out`,
    );
  });
});
