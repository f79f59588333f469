"""Fit temperature scaling (one temperature per output) on the selection split's 1-s segments.

The log loss of ``softmax(log p / T)`` is convex in 1/T, so a golden-section search over
1/T in [1/20, 20] finds the minimum: deterministic, no learning rate, and T = 1 is kept unless
the search found a strictly lower loss on the fitting split.

Sharpening (T < 1) is bounded by a second fit against targets smoothed by Laplace's rule of
succession, alpha = 1 / (N + 2) for N segments: when the model gets every validation segment
right (common on a small synthetic set), the plain log loss falls without limit as T -> 0, and a
temperature of 0.05 would turn the first error on new data into a log loss of 30. The smoothed
fit sharpens only up to the confidence that N right answers out of N support, (N + 1) / (N + 2).
The temperature used is max(T_plain, min(T_smoothed, 1)): the plain fit wherever it softens or
sharpens less, never a softening that only the smoothing asked for.
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


def _nll(logp: np.ndarray, labels: np.ndarray, inv_t: float, alpha: float) -> float:
    """Cross-entropy of softmax(logp * inv_t) against targets smoothed by ``alpha``."""
    n = len(labels)
    z = logp * inv_t
    top = z.max(axis=1, keepdims=True)
    lse = top[:, 0] + np.log(np.exp(z - top).sum(axis=1))
    target = (1.0 - alpha) * z[np.arange(n), labels] + alpha * z.mean(axis=1)
    return float((lse - target).mean())


def _search(logp: np.ndarray, y: np.ndarray, alpha: float) -> float:
    """The temperature minimising ``_nll`` (golden section over 1/T; T = 1 unless better)."""
    lo, hi = 1.0 / T_MAX, 1.0 / T_MIN
    a, b = hi - GOLDEN * (hi - lo), lo + GOLDEN * (hi - lo)
    fa, fb = _nll(logp, y, a, alpha), _nll(logp, y, b, alpha)
    for _ in range(SEARCH_STEPS):
        if fa <= fb:
            hi, b, fb = b, a, fa
            a = hi - GOLDEN * (hi - lo)
            fa = _nll(logp, y, a, alpha)
        else:
            lo, a, fa = a, b, fb
            b = lo + GOLDEN * (hi - lo)
            fb = _nll(logp, y, b, alpha)
    inv_t = (lo + hi) / 2.0
    return 1.0 if _nll(logp, y, inv_t, alpha) >= _nll(logp, y, 1.0, alpha) else 1.0 / inv_t


def fit_temperature(probs: np.ndarray, labels: np.ndarray) -> float:
    """max(T_plain, min(T_smoothed, 1)) for ``softmax(log p / T)`` on ``labels``."""
    if probs.ndim != 2 or len(probs) != len(labels) or not len(labels):
        raise ValueError(f"probs {probs.shape} and labels {labels.shape}; expected (N, K) and (N,), N > 0")
    logp = np.log(np.maximum(probs.astype(np.float64), FIT_FLOOR))
    y = labels.astype(np.int64)
    plain = _search(logp, y, 0.0)
    smoothed = _search(logp, y, 1.0 / (len(y) + 2))
    return max(plain, min(smoothed, 1.0))


def fit_temperatures(probs: dict[str, np.ndarray], labels: np.ndarray) -> Temperatures:
    """One temperature for each of the four outputs (raw probabilities in ``probs``)."""
    fitted = {name: fit_temperature(probs[name], labels) for name in OUTPUT_NAMES}
    log.info("temperatures fitted on %d segments: %s", len(labels),
             ", ".join(f"{k} {v:.3f}" for k, v in fitted.items()))
    return Temperatures(**fitted)
