"""Serve a plain model class over HTTP by KEA's plain-class convention.

For every public method of the class (name not starting with ``_``):
``POST /<method>``; the JSON body is an object whose properties are the method's parameters
(required when they have no default); the response is the method's return value, validated
against its return annotation. Summary is the docstring's first line, description the whole
docstring. ``GET /healthz`` answers ``{"status": "ok"}``.

Run: ``KEA_MODEL=model:DiabetesModel uvicorn app:app --host 127.0.0.1 --port 8080``
(``KEA_MODEL`` defaults to ``model:DiabetesModel``).
"""
import importlib
import inspect
import os
from typing import Any, get_type_hints

from fastapi import FastAPI
from pydantic import create_model

module_name, _, class_name = os.environ.get("KEA_MODEL", "model:DiabetesModel").partition(":")
cls = getattr(importlib.import_module(module_name), class_name)
instance = cls()

app = FastAPI(title=class_name, version="1.0.0", description=inspect.cleandoc(cls.__doc__ or ""))


@app.get("/healthz")
def healthz() -> dict[str, str]:
    """Liveness and readiness probe."""
    return {"status": "ok"}


def _route(name: str, method: Any) -> None:
    hints = get_type_hints(method, include_extras=True)
    sig = inspect.signature(method)
    fields: dict[str, Any] = {}
    for p in sig.parameters.values():
        default = ... if p.default is inspect.Parameter.empty else p.default
        fields[p.name] = (hints[p.name], default)
    doc = inspect.cleandoc(method.__doc__ or "")
    summary = doc.splitlines()[0] if doc else None
    returns = hints.get("return", Any)

    if fields:
        body_model = create_model(f"{class_name}_{name}", **fields)

        def endpoint(body: body_model):  # type: ignore[valid-type]
            return method(**{k: getattr(body, k) for k in fields})

        endpoint.__annotations__ = {"body": body_model}
    else:

        def endpoint():
            return method()

    app.add_api_route(
        f"/{name}", endpoint, methods=["POST"], response_model=returns, summary=summary,
        description=doc or None, operation_id=name,
    )


for _name, _member in inspect.getmembers(instance, predicate=inspect.ismethod):
    if not _name.startswith("_"):
        _route(_name, _member)
