"""Iris classifier, API v1.

Trains a logistic regression on scikit-learn's bundled iris dataset at start (no download)
and serves it over HTTP. Run: ``uvicorn app:app --host 127.0.0.1 --port 8080``.
"""
import os
from typing import Annotated

from fastapi import FastAPI
from pydantic import BaseModel, Field
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

_iris = load_iris()
CLASS_NAMES: list[str] = [str(n) for n in _iris.target_names]
MODEL = LogisticRegression(max_iter=1000).fit(_iris.data, _iris.target)

app = FastAPI(title="iris", version="v1", description="Iris species classifier (API v1).")

# KEA's controller sets KEA_REVISION in each revision's pods; echoing it as x-kea-revision lets
# the gateway's audit log and cache say which revision answered (docs/architecture.md).
_REVISION = os.environ.get("KEA_REVISION")


async def _revision_header(request, call_next):
    response = await call_next(request)
    if _REVISION:
        response.headers["x-kea-revision"] = _REVISION
    return response


app.middleware("http")(_revision_header)

Measurements = Annotated[
    list[float],
    Field(
        min_length=4,
        max_length=4,
        description="sepal length, sepal width, petal length, petal width (cm)",
    ),
]


class PredictRequest(BaseModel):
    """Flowers to classify, one row of four measurements per flower."""

    features: list[Measurements] = Field(min_length=1, max_length=1000)


class PredictResponse(BaseModel):
    """Predicted species, one per input row."""

    classes: list[str] = Field(description="setosa, versicolor or virginica")


@app.get("/healthz")
def healthz() -> dict[str, str]:
    """Liveness and readiness probe."""
    return {"status": "ok"}


@app.post("/predict", response_model=PredictResponse)
def predict(req: PredictRequest) -> PredictResponse:
    """Classify iris flowers.

    Returns the predicted species for each row of measurements.
    """
    labels = MODEL.predict(req.features)
    return PredictResponse(classes=[CLASS_NAMES[int(i)] for i in labels])
