"""The presets the README promises: the paper's hyper-parameters and sizes, the branches frozen
during fusion, and a demo build that says what it trains.

The expected numbers are written out here from the README (and the seed system it follows),
not read from the code under test.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from avstream import demo
from training.checkpoint import load_checkpoint
from training.config import PRESETS
from training.train.options import RECIPES, STEPS

# README, "Training on TAU": audio Adam 1e-3, batch 32, mixup 0.4, 200 epochs, plateau 0.5/15,
# early stop 80; visual: frozen backbone at 1e-4, batch 16, then unfrozen at 1e-6; fusion with
# both branches frozen at 1e-4; fine-tuning at 1e-6.
PAPER_AUDIO = {"lr": 1e-3, "batch_size": 32, "mixup_alpha": 0.4, "max_epochs": 200,
               "plateau_factor": 0.5, "plateau_patience": 15, "early_stop_patience": 80}
PAPER_VISUAL = {"lr": 1e-4, "batch_size": 16, "unfrozen_lr": 1e-6}
PAPER_FUSION_LR = 1e-4
PAPER_FINETUNE_LR = 1e-6


def test_paper_recipe_has_the_seed_hyper_parameters() -> None:
    recipe = RECIPES["paper"]
    assert tuple(recipe) == STEPS == ("audio", "visual", "fusion", "finetune")
    audio = recipe["audio"]
    assert {k: getattr(audio, k) for k in PAPER_AUDIO} == PAPER_AUDIO
    visual = recipe["visual"]
    assert {k: getattr(visual, k) for k in PAPER_VISUAL} == PAPER_VISUAL
    assert visual.unfrozen_epochs > 0  # "then unfrozen"
    assert recipe["fusion"].lr == PAPER_FUSION_LR
    assert recipe["finetune"].lr == PAPER_FINETUNE_LR
    for step in STEPS:
        assert recipe[step].max_epochs > 0, step  # the paper runs all four steps


def test_presets_have_the_documented_sizes() -> None:
    # README: paper = 48 kHz audio, 224x224 frames, 64 gammatone bands; demo = the paper's
    # layers at 64x64 frames; small = the same layers, narrow.
    paper, small, demo_cfg = PRESETS["paper"], PRESETS["small"], PRESETS["demo"]
    assert (paper.sample_rate, paper.frame_size, paper.n_bands, paper.filterbank) == (
        48_000, 224, 64, "gammatone")
    assert (paper.stft_window_ms, paper.stft_hop_ms, paper.frames_per_window) == (40, 20, 5)
    assert demo_cfg.frame_size == 64
    assert demo_cfg.replace(frame_size=224, bn_momentum=paper.bn_momentum,
                            preset=paper.preset) == paper
    assert small.frame_size == 64 and small.sample_rate < paper.sample_rate


def test_demo_build_announces_only_the_steps_it_trains() -> None:
    trained = tuple(s for s in STEPS if RECIPES["demo"][s].max_epochs > 0)
    assert demo.DEMO_TRAINING_STEPS == trained
    source = Path(demo.__file__).read_text()
    assert "four-step" not in source or RECIPES["demo"]["finetune"].max_epochs > 0


def _branch_tensors(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k: v for k, v in state.items() if k.startswith(prefix + ".")}


@pytest.mark.parametrize("branch", ["audio", "visual"])
def test_fusion_leaves_both_branches_exactly_as_it_found_them(trained_run: Path,
                                                               branch: str) -> None:
    """The session's real recipe run: every weight and running statistic of each branch after
    the fusion step equals the one after the visual step (frozen, in eval mode)."""
    before = load_checkpoint(trained_run / "visual.ckpt").state_dict
    after = load_checkpoint(trained_run / "fusion.ckpt").state_dict
    b, a = _branch_tensors(before, branch), _branch_tensors(after, branch)
    assert b and set(b) == set(a)
    if branch == "audio":  # its batch norm statistics are compared too (VGG16 has none)
        assert any(k.endswith("running_mean") for k in b)
    for k in b:
        assert torch.equal(b[k], a[k]), k


def test_fusion_trains_the_fusion_layers(trained_run: Path) -> None:
    before = load_checkpoint(trained_run / "visual.ckpt").state_dict
    after = load_checkpoint(trained_run / "fusion.ckpt").state_dict
    for prefix in ("early", "late"):
        changed = [k for k in _branch_tensors(after, prefix)
                   if not torch.equal(before[k], after[k])]
        assert changed, prefix
