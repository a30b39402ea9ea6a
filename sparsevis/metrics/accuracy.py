"""Classification accuracy: top-1 on the model's own classes (prune stage) or the 16-class
decision of model-vs-human (alignment), the paper's twin-axis reference for every study."""
from __future__ import annotations

import numpy as np

from .base import MetricInfo, as_bool_vector


def accuracy(correct) -> float:
    """Fraction of correct trials; ``correct`` a 1-D bool vector (tensor, array or sequence).

    NaN for zero trials.
    """
    c = as_bool_vector(correct, "correct")
    return float(np.mean(c)) if len(c) else float("nan")


INFO = MetricInfo(
    name="accuracy",
    studies=("prune", "alignment"),
    higher_is_better=True,
    label="accuracy",
    long_label="top-1 accuracy",
    paper=True,
    color="#4c4c4c",
    value_range=(0.0, 1.0),
    scale="ratio",
    inputs="correct",
    kernel=accuracy,
    reference="Top-1 accuracy; the 16-class decision of Geirhos et al. 2021 (model-vs-human) "
              "on its datasets.",
)
