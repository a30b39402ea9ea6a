"""Trial-by-trial agreement of two decision makers (Geirhos, Meding, Wichmann, NeurIPS 2020).

The three metrics take two aligned 1-D bool vectors, ``correct_a[i]`` and ``correct_b[i]``
telling whether each decision maker answered trial i correctly (e.g. a model and one human
observer on the same images), and return a Python float. Each is a function of three rates
(:func:`agreement_rates`), which also come for many resamples or observers at once.
"""
from __future__ import annotations

import numpy as np

from .base import MetricInfo, as_bool_vector

_GEIRHOS_2020 = ("Geirhos, Meding, Wichmann. Beyond accuracy: quantifying trial-by-trial behaviour "
                 "of CNNs and humans by measuring error consistency. NeurIPS 2020.")
_GEIRHOS_2021 = ("Geirhos et al. Partial success in closing the gap between human and machine "
                 "vision. NeurIPS 2021 (model-vs-human).")

def _pair(correct_a, correct_b) -> tuple[np.ndarray, np.ndarray]:
    a = as_bool_vector(correct_a, "correct_a")
    b = as_bool_vector(correct_b, "correct_b")
    if len(a) == 0:
        raise ValueError("correct_a: expected at least one trial, got an empty vector")
    if len(a) != len(b):
        raise ValueError(f"correct_b: expected the same number of trials as correct_a ({len(a)}), got {len(b)}")
    return a, b


def observed_consistency(correct_a, correct_b) -> float:
    """c_obs: fraction of trials on which both are correct or both are wrong."""
    return float(observed_from_rates(*_rates(correct_a, correct_b)))


def error_consistency(correct_a, correct_b) -> float:
    """Error consistency, Cohen's kappa of the two correctness vectors.

    kappa = (c_obs - c_exp) / (1 - c_exp), with c_exp = p_a p_b + (1 - p_a)(1 - p_b) the
    agreement expected from the accuracies p_a, p_b alone. 1: identical errors; 0: no more
    agreement than chance; negative: fewer shared errors than chance. When c_exp = 1 (both
    always right, or both always wrong) kappa is undefined and NaN is returned (model-vs-human
    returns 1.0 there).
    """
    return float(kappa_from_rates(*_rates(correct_a, correct_b)))


def accuracy_difference(correct_a, correct_b) -> float:
    """Squared accuracy difference (p_a - p_b)^2, as model-vs-human's accuracy difference.

    Squared, not signed, so that it has a direction (0 = same accuracy, lower is better).
    """
    return float(difference_from_rates(*_rates(correct_a, correct_b)))


def _rates(correct_a, correct_b):
    a, b = _pair(correct_a, correct_b)
    rates = agreement_rates(a, b[:, None], np.ones((len(a), 1), dtype=bool), np.ones((1, len(a))))
    return tuple(r[0, 0] for r in rates)


def agreement_rates(correct_a: np.ndarray, correct_b: np.ndarray, seen: np.ndarray, weights: np.ndarray):
    """(p_a, p_b, c_obs), each (R, J): the two accuracies and the fraction of trials on which
    both are right or both wrong, for J second decision makers at once (``correct_b`` and
    ``seen``, (n, J) bool: the trials each one took) and R weightings of the n trials
    (``weights`` (R, n): how often each trial counts, e.g. a bootstrap resample's counts).
    NaN where no trial counts. The three metrics above are functions of these rates (the
    ``*_from_rates`` functions), so that a bootstrap evaluates all its replicates at once."""
    a = np.asarray(correct_a, dtype=bool)[:, None]
    w = np.asarray(weights, dtype=np.float64)
    count = w @ seen.astype(np.float64)               # integer counts: exact in float64
    with np.errstate(invalid="ignore", divide="ignore"):
        return tuple(w @ (x & seen).astype(np.float64) / count for x in (a, correct_b, a == correct_b))


def observed_from_rates(p_a, p_b, c_obs):
    return c_obs


def kappa_from_rates(p_a, p_b, c_obs):
    c_exp = p_a * p_b + (1 - p_a) * (1 - p_b)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(c_exp == 1, np.nan, (c_obs - c_exp) / (1 - c_exp))


def difference_from_rates(p_a, p_b, c_obs):
    return (p_a - p_b) ** 2


# The human-likeness metrics of model-vs-human; the paper's scripts compute none of them.
ERROR_CONSISTENCY = MetricInfo(
    name="error_consistency", studies=("alignment",), higher_is_better=True,
    label="error consistency", long_label="error consistency (Cohen's kappa)", paper=False,
    color="#cc78bc", value_range=(-1.0, 1.0), scale="difference", inputs="correct_pair",
    kernel=error_consistency, reference=_GEIRHOS_2020)
OBSERVED_CONSISTENCY = MetricInfo(
    name="observed_consistency", studies=("alignment",), higher_is_better=True,
    label="observed consistency", long_label="observed consistency (trials both right or both wrong)",
    paper=False, color="#56b4e9", value_range=(0.0, 1.0), scale="ratio", inputs="correct_pair",
    kernel=observed_consistency, reference=_GEIRHOS_2021)
# squared, 0 at equal accuracy: a ratio to the dense value would divide by ~0
ACCURACY_DIFFERENCE = MetricInfo(
    name="accuracy_difference", studies=("alignment",), higher_is_better=False,
    label="accuracy difference", long_label="squared accuracy difference to the observers",
    paper=False, color="#ca9161", value_range=(0.0, 1.0), scale="difference", inputs="correct_pair",
    kernel=accuracy_difference, reference=_GEIRHOS_2021)
