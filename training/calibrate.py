"""Fit temperature scaling (one temperature per output) on the selection split's 1-s segments.

The log loss of ``softmax(log p / T)`` is convex in 1/T, so a golden-section search over
1/T in [1/20, 20] finds the minimum: deterministic, no learning rate, and T = 1 is kept unless
the search found a strictly lower loss on the fitting split.

The targets are smoothed by Laplace's rule of succession, alpha = 1 / (N + 2) for N segments:
when the model gets every validation segment right (common on a small synthetic set), the plain
log loss falls without limit as T -> 0, and a temperature of 0.05 would turn the first error on
new data into a log loss of 30. With the smoothing the fit assumes the confidence that N
correct answers out of N support, (N + 1) / (N + 2), and is unchanged where errors are real.
"""

from __future__ import annotations

import logging
import math

import numpy as np

from training.model.calibration import OUTPUT_NAMES, Temperatures

log = logging.getLogger(__name__)

T_MIN, T_MAX = 0.05, 20.0
SEARCH_STEPS = 80
"""Golden-section steps: the bracket shrinks by 0.618 each, to ~1e-15 of its width."""
FIT_FLOOR = np.finfo(np.float64).tiny
GOLDEN = (math.sqrt(5.0) - 1.0) / 2.0


def _nll(logp: np.ndarray, labels: np.ndarray, inv_t: float) -> float:
    """Cross-entropy of softmax(logp * inv_t) against the rule-of-succession smoothed targets."""
    n, k = logp.shape
    alpha = 1.0 / (n + 2)
    z = logp * inv_t
    top = z.max(axis=1, keepdims=True)
    lse = top[:, 0] + np.log(np.exp(z - top).sum(axis=1))
    target = (1.0 - alpha) * z[np.arange(n), labels] + alpha * z.mean(axis=1)
    return float((lse - target).mean())


def fit_temperature(probs: np.ndarray, labels: np.ndarray) -> float:
    """The temperature with the lowest (smoothed) log loss of ``softmax(log p / T)``."""
    if probs.ndim != 2 or len(probs) != len(labels) or not len(labels):
        raise ValueError(f"probs {probs.shape} and labels {labels.shape}; expected (N, K) and (N,), N > 0")
    logp = np.log(np.maximum(probs.astype(np.float64), FIT_FLOOR))
    y = labels.astype(np.int64)
    lo, hi = 1.0 / T_MAX, 1.0 / T_MIN
    a, b = hi - GOLDEN * (hi - lo), lo + GOLDEN * (hi - lo)
    fa, fb = _nll(logp, y, a), _nll(logp, y, b)
    for _ in range(SEARCH_STEPS):
        if fa <= fb:
            hi, b, fb = b, a, fa
            a = hi - GOLDEN * (hi - lo)
            fa = _nll(logp, y, a)
        else:
            lo, a, fa = a, b, fb
            b = lo + GOLDEN * (hi - lo)
            fb = _nll(logp, y, b)
    inv_t = (lo + hi) / 2.0
    if _nll(logp, y, inv_t) >= _nll(logp, y, 1.0):
        return 1.0
    return 1.0 / inv_t


def fit_temperatures(probs: dict[str, np.ndarray], labels: np.ndarray) -> Temperatures:
    """One temperature for each of the four outputs (raw probabilities in ``probs``)."""
    fitted = {name: fit_temperature(probs[name], labels) for name in OUTPUT_NAMES}
    log.info("temperatures fitted on %d segments: %s", len(labels),
             ", ".join(f"{k} {v:.3f}" for k, v in fitted.items()))
    return Temperatures(**fitted)
