"""Request and response models of the wine service (pydantic v2)."""
from enum import Enum
from typing import Annotated, Optional

from pydantic import BaseModel, Field

Sample = Annotated[
    list[float],
    Field(min_length=13, max_length=13, description="the 13 chemical measurements of one wine, in dataset order"),
]


class Cultivar(str, Enum):
    """The three cultivars of the wine dataset."""

    class_0 = "class_0"
    class_1 = "class_1"
    class_2 = "class_2"


class Samples(BaseModel):
    """Wines to score."""

    samples: list[Sample] = Field(min_length=1, max_length=500)


class Prediction(BaseModel):
    """Predicted cultivar per sample."""

    classes: list[Cultivar]


class Probabilities(BaseModel):
    """Class probabilities per sample, in the order of `classes`."""

    classes: list[Cultivar]
    probabilities: list[list[float]]


class ExplainRequest(BaseModel):
    """One wine to explain."""

    sample: Sample


class Contribution(BaseModel):
    feature: str
    contribution: float = Field(description="coefficient times standardised value (logit units)")


class Explanation(BaseModel):
    """Why the model chose a cultivar: the features that moved the decision most."""

    predicted: Cultivar
    contributions: list[Contribution]


class BatchItem(BaseModel):
    id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    sample: Sample


class BatchRequest(BaseModel):
    """Many wines, each with the caller's id, in one call."""

    items: list[BatchItem] = Field(min_length=1, max_length=1000)
    return_probabilities: bool = False


class BatchResult(BaseModel):
    id: str
    predicted: Cultivar
    probabilities: Optional[list[float]] = None


class BatchResponse(BaseModel):
    results: list[BatchResult]
    model_calls: int = Field(ge=0, description="calls served by the shared model instance so far")


class ClassInfo(BaseModel):
    id: int
    name: Cultivar
    support: int = Field(ge=0, description="training samples of this class")


class ModelInfo(BaseModel):
    """The shared model behind every method."""

    algorithm: str
    features: list[str]
    classes: list[Cultivar]
    train_accuracy: float = Field(ge=0, le=1)
    model_calls: int
