"""Trains the iris classifiers of examples/iris-sklearn and saves them with joblib.

Not a server: MLServer's scikit-learn runtime (mlserver-sklearn) serves the saved files.
Usage: python train.py OUT_DIR  (writes OUT_DIR/v1/model.joblib and OUT_DIR/v2/model.joblib)
  v1: logistic regression; v2: random forest (same signature: FP64 [-1, 4] in, INT64 [-1] out).
The data set is bundled inside scikit-learn (no download). Deterministic (fixed random_state).
"""

import sys
from pathlib import Path

import joblib
from sklearn.datasets import load_iris
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression


def main(out: Path) -> None:
    x, y = load_iris(return_X_y=True)
    models = {
        "v1": LogisticRegression(max_iter=1000, random_state=0),
        "v2": RandomForestClassifier(n_estimators=20, random_state=0),
    }
    for name, model in models.items():
        model.fit(x, y)
        (out / name).mkdir(parents=True, exist_ok=True)
        tmp = out / name / "model.joblib.tmp"
        joblib.dump(model, tmp)
        tmp.replace(out / name / "model.joblib")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
