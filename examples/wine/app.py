"""Wine cultivar service: several HTTP methods hiding one shared model.

"A bigger function hiding the model": /predict, /predict_proba, /explain, /batch and the
read-only /classes/{class_id} and /model all use the same WineModel instance.
Run: ``uvicorn app:app --host 127.0.0.1 --port 8080``.
"""
from fastapi import FastAPI, HTTPException, Path, Query

from model import WineModel
from schemas import (
    BatchRequest,
    BatchResponse,
    BatchResult,
    ClassInfo,
    Contribution,
    Cultivar,
    Explanation,
    ExplainRequest,
    ModelInfo,
    Prediction,
    Probabilities,
    Samples,
)

MODEL = WineModel()

app = FastAPI(title="wine", version="1.0.0", description="Wine cultivar classifier with several methods sharing one model.")


@app.get("/healthz")
def healthz() -> dict[str, str]:
    """Liveness and readiness probe."""
    return {"status": "ok"}


@app.post("/predict", response_model=Prediction, tags=["inference"])
def predict(body: Samples) -> Prediction:
    """Predict the cultivar of each wine."""
    return Prediction(classes=[Cultivar(MODEL.class_names[c]) for c in MODEL.predict(body.samples)])


@app.post("/predict_proba", response_model=Probabilities, tags=["inference"])
def predict_proba(body: Samples) -> Probabilities:
    """Class probabilities of each wine."""
    return Probabilities(
        classes=[Cultivar(n) for n in MODEL.class_names],
        probabilities=MODEL.predict_proba(body.samples),
    )


@app.post("/explain", response_model=Explanation, tags=["inference"])
def explain(
    body: ExplainRequest,
    top: int = Query(3, ge=1, le=13, description="how many features to return"),
) -> Explanation:
    """Explain one prediction.

    Returns the features with the largest contribution to the predicted class's logit.
    """
    cls, contribs = MODEL.explain(body.sample, top)
    return Explanation(
        predicted=Cultivar(MODEL.class_names[cls]),
        contributions=[Contribution(feature=f, contribution=c) for f, c in contribs],
    )


@app.post("/batch", response_model=BatchResponse, tags=["inference"])
def batch(body: BatchRequest) -> BatchResponse:
    """Score many wines, each tagged with the caller's id."""
    rows = [it.sample for it in body.items]
    classes = MODEL.predict(rows)
    probas = MODEL.predict_proba(rows) if body.return_probabilities else [None] * len(rows)
    return BatchResponse(
        results=[
            BatchResult(id=it.id, predicted=Cultivar(MODEL.class_names[c]), probabilities=p)
            for it, c, p in zip(body.items, classes, probas)
        ],
        model_calls=MODEL.calls,
    )


@app.get("/classes/{class_id}", response_model=ClassInfo, tags=["model"])
def get_class(class_id: int = Path(ge=0, le=2, description="class index")) -> ClassInfo:
    """Describe one class of the model."""
    if class_id >= len(MODEL.class_names):
        raise HTTPException(status_code=404, detail="no such class")
    return ClassInfo(id=class_id, name=Cultivar(MODEL.class_names[class_id]), support=MODEL.class_support[class_id])


@app.get("/model", response_model=ModelInfo, tags=["model"])
def model_info() -> ModelInfo:
    """Describe the shared model."""
    return ModelInfo(
        algorithm="StandardScaler + LogisticRegression",
        features=MODEL.feature_names,
        classes=[Cultivar(n) for n in MODEL.class_names],
        train_accuracy=MODEL.train_accuracy,
        model_calls=MODEL.calls,
    )
