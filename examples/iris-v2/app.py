"""Iris classifier, API v2.

Changes from v1 (Anton's v1 -> v2 story):
- the response field ``classes`` is renamed ``labels`` (breaking for callers that read it);
- the response adds ``probabilities`` (one row of per-class probabilities per input row);
- a new method ``GET /model`` describes the model and its classes.
The request body is unchanged, so one request can reach either revision of a canary.

Trains on scikit-learn's bundled iris dataset at start (no download).
Run: ``uvicorn app:app --host 127.0.0.1 --port 8080``.
"""
import os
from typing import Annotated, Literal

from fastapi import FastAPI
from pydantic import BaseModel, Field
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

_iris = load_iris()
CLASS_NAMES: list[str] = [str(n) for n in _iris.target_names]
FEATURE_NAMES: list[str] = [str(n) for n in _iris.feature_names]
MODEL = LogisticRegression(max_iter=1000).fit(_iris.data, _iris.target)
TRAIN_ACCURACY = float(MODEL.score(_iris.data, _iris.target))

app = FastAPI(title="iris", version="v2", description="Iris species classifier (API v2).")

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
    """Predicted species and class probabilities, one entry per input row."""

    labels: list[str] = Field(description="setosa, versicolor or virginica")
    probabilities: list[list[float]] = Field(
        description="per row, the probability of each class in the order of GET /model classes"
    )


class ModelInfo(BaseModel):
    """What the served model is."""

    name: str
    version: Literal["v2"] = "v2"
    algorithm: str
    classes: list[str]
    features: list[str]
    train_accuracy: float = Field(ge=0, le=1)


@app.get("/healthz")
def healthz() -> dict[str, str]:
    """Liveness and readiness probe."""
    return {"status": "ok"}


@app.post("/predict", response_model=PredictResponse)
def predict(req: PredictRequest) -> PredictResponse:
    """Classify iris flowers.

    Returns the predicted species and the class probabilities for each row.
    """
    proba = MODEL.predict_proba(req.features)
    return PredictResponse(
        labels=[CLASS_NAMES[int(row.argmax())] for row in proba],
        probabilities=[[round(float(p), 6) for p in row] for row in proba],
    )


@app.get("/model", response_model=ModelInfo)
def model_info() -> ModelInfo:
    """Describe the model: algorithm, classes and input features."""
    return ModelInfo(
        name="iris",
        algorithm="LogisticRegression",
        classes=CLASS_NAMES,
        features=FEATURE_NAMES,
        train_accuracy=TRAIN_ACCURACY,
    )
