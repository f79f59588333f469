"""Smoothing, hysteresis and the unknown floor."""

from __future__ import annotations

import numpy as np
import pytest

from avstream.scenes import UNKNOWN
from avstream.stream.smoothing import Smoother, SmoothingConfig

CLASSES = ("a", "b", "c", "d")


def onehot(i: int, p: float = 0.9) -> np.ndarray:
    v = np.full(len(CLASSES), (1.0 - p) / (len(CLASSES) - 1))
    v[i] = p
    return v


def test_mean_is_over_the_last_n_windows() -> None:
    s = Smoother(SmoothingConfig(windows=3, hold_hops=1, margin=0.0, floor=0.0), CLASSES)
    seq = [onehot(0), onehot(1), onehot(2), onehot(3)]
    outs = [s.update(x).probs.copy() for x in seq]
    np.testing.assert_allclose(outs[0], seq[0])
    np.testing.assert_allclose(outs[1], (seq[0] + seq[1]) / 2)
    np.testing.assert_allclose(outs[3], (seq[1] + seq[2] + seq[3]) / 3)


def test_ema_follows_its_alpha() -> None:
    cfg = SmoothingConfig(method="ema", windows=3, hold_hops=1, margin=0.0, floor=0.0)
    s = Smoother(cfg, CLASSES)
    a, b = onehot(0), onehot(1)
    s.update(a)
    out = s.update(b).probs
    np.testing.assert_allclose(out, (1 - cfg.ema_alpha) * a + cfg.ema_alpha * b)
    assert cfg.ema_alpha == pytest.approx(0.5)


def test_label_changes_only_after_k_hops_with_a_margin() -> None:
    s = Smoother(SmoothingConfig(windows=1, hold_hops=3, margin=0.2, floor=0.0), CLASSES)
    assert s.update(onehot(0)).label == "a"
    labels = [s.update(onehot(1)).label for _ in range(4)]
    assert labels == ["a", "a", "b", "b"]  # third consecutive lead switches


def test_a_lead_below_the_margin_never_switches() -> None:
    s = Smoother(SmoothingConfig(windows=1, hold_hops=1, margin=0.2, floor=0.0), CLASSES)
    s.update(np.array([0.5, 0.4, 0.05, 0.05]))
    for _ in range(10):
        out = s.update(np.array([0.42, 0.48, 0.05, 0.05]))
    assert out.label == "a"
    assert out.raw_label == "b"


def test_alternating_windows_do_not_flap() -> None:
    s = Smoother(SmoothingConfig(floor=0.0), CLASSES)
    labels = {s.update(onehot(i % 2, 0.6)).label for i in range(40)}
    raw = {s.update(onehot(i % 2, 0.6)).raw_label for i in range(2)}
    assert raw == {"a", "b"}
    assert len(labels) == 1


def test_a_change_holds_the_old_label_then_shows_the_new_one() -> None:
    """During a change the old label is held by hysteresis, never replaced by ``unknown`` while
    some class is believed."""
    s = Smoother(SmoothingConfig(), CLASSES)
    labels = [s.update(onehot(0, 0.7)).label for _ in range(6)]
    labels += [s.update(onehot(1, 0.7)).label for _ in range(6)]
    assert UNKNOWN not in labels
    assert labels[:6] == ["a"] * 6 and labels[-1] == "b"
    switch = labels.index("b")
    assert labels[switch:] == ["b"] * (len(labels) - switch)  # one clean switch
    assert 6 + 2 <= switch <= 6 + 4  # averaging and holding delay it by a few hops, not more


def test_a_broken_streak_starts_over() -> None:
    s = Smoother(SmoothingConfig(windows=1, hold_hops=3, margin=0.1, floor=0.0), CLASSES)
    s.update(onehot(0))
    s.update(onehot(1))
    s.update(onehot(1))
    s.update(onehot(0))  # streak broken
    s.update(onehot(1))
    assert s.update(onehot(1)).label == "a"
    assert s.update(onehot(1)).label == "b"


def test_unknown_below_the_floor_and_back() -> None:
    s = Smoother(SmoothingConfig(windows=1, hold_hops=1, margin=0.0, floor=0.5), CLASSES)
    assert s.update(onehot(2, 0.8)).label == "c"
    flat = s.update(np.full(4, 0.25))
    assert flat.label == UNKNOWN
    assert flat.confidence == pytest.approx(0.25)
    assert s.current == "c"  # hysteresis state survives the low-confidence spell
    assert s.update(onehot(2, 0.8)).label == "c"


def test_reset_returns_to_a_fresh_smoother() -> None:
    cfg = SmoothingConfig(windows=4, hold_hops=3, margin=0.1, floor=0.3)
    s, fresh = Smoother(cfg, CLASSES), Smoother(cfg, CLASSES)
    for i in range(7):
        s.update(onehot(i % 3))
    s.reset()
    assert s.current is None
    for x in (onehot(3), onehot(1), onehot(1)):
        a, b = s.update(x), fresh.update(x)
        np.testing.assert_array_equal(a.probs, b.probs)
        assert a.label == b.label


def test_results_repeat_exactly() -> None:
    rng = np.random.default_rng(3)
    xs = rng.dirichlet(np.ones(4), size=50)
    runs = []
    for _ in range(2):
        s = Smoother(SmoothingConfig(), CLASSES)
        runs.append([(s.update(x).label, s.update(x).probs.tobytes()) for x in xs])
    assert runs[0] == runs[1]


@pytest.mark.parametrize("kwargs, field", [
    ({"method": "median"}, "method"),
    ({"windows": 0}, "windows"),
    ({"margin": 1.5}, "margin"),
    ({"hold_hops": 0}, "hold"),
    ({"floor": -0.1}, "floor"),
])
def test_config_names_the_bad_field(kwargs: dict, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        SmoothingConfig(**kwargs)
