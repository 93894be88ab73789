"""The one model behind every method of the wine service.

A standardised logistic regression trained at import time on scikit-learn's bundled wine
dataset (178 samples, 13 features, 3 cultivars; no download).
"""
import numpy as np
from sklearn.datasets import load_wine
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


class WineModel:
    """Holds one fitted pipeline; every HTTP method of the service calls into this instance."""

    def __init__(self) -> None:
        data = load_wine()
        self.feature_names: list[str] = [str(n) for n in data.feature_names]
        self.class_names: list[str] = [str(n) for n in data.target_names]
        self.class_support: list[int] = [int((data.target == i).sum()) for i in range(len(self.class_names))]
        self.pipeline = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
        self.pipeline.fit(data.data, data.target)
        self.train_accuracy = float(self.pipeline.score(data.data, data.target))
        self.calls = 0

    def predict(self, rows: list[list[float]]) -> list[int]:
        self.calls += 1
        return [int(c) for c in self.pipeline.predict(np.asarray(rows))]

    def predict_proba(self, rows: list[list[float]]) -> list[list[float]]:
        self.calls += 1
        return [[round(float(p), 6) for p in r] for r in self.pipeline.predict_proba(np.asarray(rows))]

    def explain(self, row: list[float], top: int) -> tuple[int, list[tuple[str, float]]]:
        """Per-feature contribution to the predicted class's logit: coef * standardised value."""
        self.calls += 1
        scaler, clf = self.pipeline[0], self.pipeline[1]
        z = scaler.transform(np.asarray([row]))[0]
        cls = int(clf.predict([z])[0])
        contrib = clf.coef_[cls] * z
        order = np.argsort(-np.abs(contrib))[:top]
        return cls, [(self.feature_names[i], round(float(contrib[i]), 6)) for i in order]
