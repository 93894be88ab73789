"""Grades: a hand-written web service (no ML model) that KEA fronts and documents.

Its ApiSchema lists no operations: KEA takes them from this service's own /openapi.json
(``source.openapi``) or from ``kea scan examples/grades``.
Run: ``uvicorn app:app --host 127.0.0.1 --port 8080``.
"""
from fastapi import FastAPI

from routes import router

app = FastAPI(title="grades", version="1.0.0", description="Course grades of students.")
app.include_router(router)


@app.get("/healthz")
def healthz() -> dict[str, str]:
    """Liveness and readiness probe."""
    return {"status": "ok"}
