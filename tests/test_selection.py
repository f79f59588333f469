"""Which epoch a training phase keeps: the seed's rule and the small recipe's branch rule."""

from __future__ import annotations

import pytest

from training.train.loop import Validation, better
from training.train.options import DEMO_RECIPE, PAPER_RECIPE, SMALL_RECIPE, StepOptions

START = Validation(loss=1.70, accuracy=0.53)


def test_accuracy_rule_is_the_seeds() -> None:
    best = START
    assert better(Validation(2.00, 0.55), best, START, "accuracy")  # more accurate, worse loss
    assert not better(Validation(0.70, 0.50), best, START, "accuracy")  # far better loss, less accurate
    assert better(Validation(1.00, 0.53), best, START, "accuracy")  # a tie goes to the lower loss


def test_loss_rule_never_ends_less_accurate_than_the_start() -> None:
    best = START
    assert better(Validation(0.70, 0.53), best, START, "loss")
    assert not better(Validation(0.70, 0.52), best, START, "loss")  # lower loss, but below the start
    assert not better(Validation(1.80, 0.90), best, START, "loss")  # more accurate, higher loss


def test_presets_choose_their_rule() -> None:
    assert all(o.select_by == "accuracy" for o in PAPER_RECIPE.values())  # the seed's recipe
    assert SMALL_RECIPE["visual"].select_by == "loss"
    # The demo's frozen-backbone recipe, and so its published model, is what it was.
    assert DEMO_RECIPE["visual"].select_by == "accuracy" and DEMO_RECIPE["visual"].frame_jitter == 0
    with pytest.raises(ValueError, match="select_by"):
        StepOptions(lr=1e-3, batch_size=1, max_epochs=1, early_stop_patience=1,
                    plateau_patience=1, select_by="f1")  # type: ignore[arg-type]
