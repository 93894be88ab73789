"""Diabetes progression model written as a plain Python class (no web framework).

This file follows KEA's plain-class convention (docs/scan-conventions.md): every public
method with type hints becomes an operation ``POST /<method>`` whose JSON body holds the
method's parameters by name, and whose response is the method's return value.
``kea scan examples/plain-class/model.py`` derives the ApiSchema; ``app.py`` serves the
class over HTTP by the same convention.

Trains a ridge regression on scikit-learn's bundled diabetes dataset (no download).
"""
from typing import Annotated

from pydantic import Field
from sklearn.datasets import load_diabetes
from sklearn.linear_model import Ridge

Row = Annotated[list[float], Field(min_length=10, max_length=10)]


class DiabetesModel:
    """Predicts disease progression one year after baseline from ten baseline variables."""

    def __init__(self) -> None:
        data = load_diabetes()
        self._features = [str(n) for n in data.feature_names]
        self._model = Ridge(alpha=0.1).fit(data.data, data.target)
        self._r2 = float(self._model.score(data.data, data.target))

    def predict(self, features: Annotated[list[Row], Field(min_length=1, max_length=1000)]) -> list[float]:
        """Predict disease progression.

        Each row holds the ten standardised baseline variables (age, sex, bmi, bp, s1-s6)
        in dataset order; the result is one progression score per row.
        """
        return [round(float(v), 4) for v in self._model.predict(features)]

    def explain(self, features: Row, top: Annotated[int, Field(ge=1, le=10)] = 3) -> dict[str, float]:
        """Contribution of the strongest features to one prediction (coefficient times value)."""
        contrib = {n: float(c * x) for n, c, x in zip(self._features, self._model.coef_, features)}
        best = sorted(contrib, key=lambda n: -abs(contrib[n]))[:top]
        return {n: round(contrib[n], 4) for n in best}

    def info(self) -> dict[str, str]:
        """Describe the model."""
        return {"algorithm": "Ridge", "r2_train": f"{self._r2:.4f}", "features": ",".join(self._features)}

    def _unused_helper(self, x):
        return x
