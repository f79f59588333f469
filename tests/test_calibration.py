"""Temperature scaling, calibration error, the location-split validation set and mono feeding:
the pieces the recipe uses, on data built here."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from training.calibrate import fit_temperature, fit_temperatures
from training.data.crops import to_mid
from training.data.locations import location_of, split_by_location
from training.data.tau import ClipRow
from training.errors import DataError
from training.metrics import expected_calibration_error, score
from training.model.calibration import Temperatures, temper


def _sampled(n: int, temperature: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities softmax(z) whose labels were drawn from softmax(z / temperature)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0.0, 3.0, size=(n, 10))
    true = torch.softmax(torch.from_numpy(z / temperature), dim=-1).numpy()
    labels = np.array([rng.choice(10, p=p / p.sum()) for p in true])
    return torch.softmax(torch.from_numpy(z), dim=-1).numpy(), labels


def test_temper_scales_logits_and_is_undone_by_the_inverse_temperature() -> None:
    z = torch.randn(4, 10, dtype=torch.float64).float()
    p = torch.softmax(z, dim=-1)
    assert torch.allclose(temper(p, 2.0), torch.softmax(z / 2.0, dim=-1), atol=1e-6)
    assert torch.allclose(temper(temper(p, 2.5), 1 / 2.5), p, atol=1e-6)
    assert temper(p, 1.0) is p
    zero = torch.zeros(1, 10)  # the engine feeds zeros as audio_probs when there is no audio
    assert torch.isfinite(temper(zero, 0.5)).all()


def test_fitted_temperature_recovers_an_overconfident_model() -> None:
    probs, labels = _sampled(2000, temperature=2.0)
    t = fit_temperature(probs, labels)
    assert 1.7 < t < 2.3
    calibrated = temper(torch.from_numpy(probs), t).numpy()
    classes = tuple(str(i) for i in range(10))
    assert score(calibrated, labels, classes).log_loss < score(probs, labels, classes).log_loss
    assert expected_calibration_error(calibrated, labels) < expected_calibration_error(probs, labels)


def test_a_calibrated_model_keeps_temperature_one() -> None:
    probs, labels = _sampled(2000, temperature=1.0, seed=1)
    assert 0.9 < fit_temperature(probs, labels) < 1.1
    temps = fit_temperatures({k: probs for k in ("final", "early", "audio", "visual")}, labels)
    assert set(temps.to_dict()) == {"final", "early", "audio", "visual"}


def test_expected_calibration_error_is_the_gap_between_confidence_and_accuracy() -> None:
    # Every example 0.9 confident: all right -> gap 0.1; half right -> gap 0.4.
    probs = np.full((10, 2), 0.1)
    probs[:, 0] = 0.9
    assert expected_calibration_error(probs, np.zeros(10, dtype=int)) == pytest.approx(0.1)
    assert expected_calibration_error(probs, np.array([0, 1] * 5)) == pytest.approx(0.4)


def test_temperatures_refuse_non_positive_values_and_unknown_outputs() -> None:
    with pytest.raises(ValueError, match="final=0"):
        Temperatures(final=0.0)
    with pytest.raises(ValueError, match="unknown outputs"):
        Temperatures.from_dict({"fused": 1.0})


def _rows(spec: dict[str, list[str]]) -> list[ClipRow]:
    """label -> locations (one clip per <city>-<location> listed; repeats give more clips)."""
    rows = []
    for label, locations in spec.items():
        for i, loc in enumerate(locations):
            stem = f"{label}-{loc}-{i * 10}"
            rows.append(ClipRow(stem, Path(f"{stem}.wav"), Path(f"{stem}.mp4"), label))
    return rows


def test_validation_split_holds_out_whole_locations_of_every_class() -> None:
    rows = _rows({
        "airport": ["lisbon-1000"] * 3 + ["lisbon-1001"] * 3 + ["paris-1002"] * 2 + ["paris-1003"] * 2,
        "bus": ["lisbon-2000"] * 4 + ["prague-2001"] * 4 + ["prague-2002"] * 2,
        "park": ["vienna-3000"] * 5 + ["vienna-3001"] * 5,
    })
    cut = split_by_location(rows, share=0.2, seed=3)
    train_locs = {location_of(r.stem) for r in cut.train}
    val_locs = {location_of(r.stem) for r in cut.validation}
    assert not train_locs & val_locs
    assert val_locs == set(cut.validation_locations)
    for label in ("airport", "bus", "park"):
        assert any(r.label == label for r in cut.train)
        assert any(r.label == label for r in cut.validation)
    assert len(cut.train) + len(cut.validation) == len(rows)
    assert split_by_location(rows, share=0.2, seed=3) == cut  # repeatable


def test_validation_split_shares_locations_across_classes_like_the_synthetic_set() -> None:
    # The synthetic set numbers locations the same in every class: a held-out location is
    # held out for all of them.
    locs = ["synthcity1-1000", "synthcity2-1001", "synthcity3-1002"]
    rows = _rows({c: locs * 2 for c in ("airport", "bus", "tram")})
    cut = split_by_location(rows)
    assert len(cut.validation_locations) == 1
    assert {r.label for r in cut.validation} == {"airport", "bus", "tram"}


def test_validation_split_needs_two_locations_per_class() -> None:
    rows = _rows({"airport": ["lisbon-1"] * 4, "bus": ["lisbon-2", "paris-3"]})
    with pytest.raises(DataError, match=r"\['airport'\] have fewer than two training locations"):
        split_by_location(rows)
    with pytest.raises(DataError, match="no location in its name"):
        location_of("airport_lisbon")


def test_to_mid_gives_both_channels_the_mid_signal() -> None:
    x = torch.stack([torch.ones(2, 8), torch.zeros(2, 8)], dim=1)  # L = 1, R = 0
    mono = to_mid(x)
    assert mono.shape == x.shape
    assert torch.equal(mono, torch.full_like(x, 0.5))


def test_a_perfect_validation_set_does_not_drive_the_temperature_to_zero() -> None:
    """Every segment right: the plain log loss keeps falling as T -> 0; the fit must stop at the
    confidence N right answers support, not at the search's bound."""
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 10, size=200)
    z = rng.normal(0.0, 1.0, size=(200, 10))
    z[np.arange(200), labels] += 6.0  # always right, about 0.95 confident
    probs = torch.softmax(torch.from_numpy(z), dim=-1).numpy()
    t = fit_temperature(probs, labels)
    assert t > 0.2
    calibrated = temper(torch.from_numpy(probs), t).numpy()
    assert calibrated[np.arange(200), labels].mean() == pytest.approx(201 / 202, abs=0.01)


def test_a_perfect_and_very_confident_model_is_left_alone() -> None:
    """Every segment right at 0.9999: neither sharpened (no evidence of errors to fit) nor
    softened (the smoothing bounds sharpening only), so its log loss cannot get worse."""
    labels = np.arange(100) % 10
    z = np.zeros((100, 10))
    z[np.arange(100), labels] = 12.0
    probs = torch.softmax(torch.from_numpy(z), dim=-1).numpy()
    assert fit_temperature(probs, labels) == 1.0
