"""Per-step hyper-parameters as frozen dataclasses; the defaults are the seed's (seed-system.md).

Each preset of the model config has a recipe profile: ``paper`` is the seed's recipe verbatim;
``small`` and ``demo`` shorten it (fewer epochs, more crops per epoch, higher head learning
rates) so that a from-scratch run finishes in minutes on 2 CPU cores.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

Step = Literal["audio", "visual", "fusion", "finetune"]
SelectBy = Literal["accuracy", "loss"]
LateStart = Literal["random", "better_branch"]
STEPS: tuple[Step, ...] = ("audio", "visual", "fusion", "finetune")
MONO_STEPS: tuple[Step, ...] = ("audio", "fusion", "finetune")
"""Steps whose examples carry audio, where ``mono_share`` applies: audio and finetune train the
audio branch on waveforms, fusion trains the heads on the frozen audio branch's outputs."""


@dataclass(frozen=True)
class StepOptions:
    lr: float
    batch_size: int
    max_epochs: int
    early_stop_patience: int
    """Epochs without a better validation accuracy before the step stops."""
    plateau_patience: int
    plateau_factor: float = 0.5
    mixup_alpha: float = 0.0
    crops_per_clip: int = 1
    """Random aligned 1-s crops drawn from every training clip per epoch."""
    unfrozen_epochs: int = 0
    """Visual step only: epochs with the backbone unfrozen after the frozen phase."""
    unfrozen_lr: float = 1e-6
    select_by: SelectBy = "accuracy"
    """Which epoch is best: ``accuracy`` (the seed's rule; loss breaks ties) or ``loss`` (the
    lowest validation log loss among epochs at least as accurate as the starting weights)."""
    frame_jitter: float = 0.0
    """Visual step, unfrozen phase: each training example's brightness, contrast and
    saturation scaled by up to this share (0: none, the seed's recipe)."""
    mono_share: float = 0.0
    """Share of training examples fed as mono (both channels the mid signal), in the steps
    whose examples carry audio (``MONO_STEPS``); 0 is the seed's recipe, the other presets use
    ``MONO_SHARE``."""
    late_start: LateStart = "random"
    """Fusion step: where the late-fusion dense starts. ``random`` is the seed's initialisation;
    ``better_branch`` starts it as the branch (audio or visual) more accurate on validation,
    passed through, so that a phase which never returns weights less accurate than its start
    cannot leave the fused output below that branch. Trained on a few takes, a branch that
    learned the training takes by heart (typically audio, which memorises each take's sound)
    is perfect on them; from a random start the dense learns to trust it and the fused output
    ends below the other branch on unseen takes."""

    def __post_init__(self) -> None:
        if self.lr <= 0 or self.unfrozen_lr <= 0:
            raise ValueError(f"lr={self.lr}, unfrozen_lr={self.unfrozen_lr}; expected > 0")
        if self.batch_size < 1 or self.crops_per_clip < 1:
            raise ValueError(
                f"batch_size={self.batch_size}, crops_per_clip={self.crops_per_clip}; expected >= 1"
            )
        if self.max_epochs < 0 or self.unfrozen_epochs < 0:
            raise ValueError(
                f"max_epochs={self.max_epochs}, unfrozen_epochs={self.unfrozen_epochs}; expected >= 0"
            )
        if self.select_by not in ("accuracy", "loss"):
            raise ValueError(f"select_by={self.select_by!r}; expected 'accuracy' or 'loss'")
        if not 0 <= self.frame_jitter < 1:
            raise ValueError(f"frame_jitter={self.frame_jitter}; expected in [0, 1)")
        if not 0 <= self.mono_share <= 1:
            raise ValueError(f"mono_share={self.mono_share}; expected in [0, 1]")
        if self.late_start not in ("random", "better_branch"):
            raise ValueError(f"late_start={self.late_start!r}; expected 'random' or 'better_branch'")
        if not 0 < self.plateau_factor < 1:
            raise ValueError(f"plateau_factor={self.plateau_factor}; expected in (0, 1)")

    def replace(self, **changes: object) -> StepOptions:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


PAPER_RECIPE: dict[Step, StepOptions] = {
    "audio": StepOptions(lr=1e-3, batch_size=32, max_epochs=200, early_stop_patience=80,
                         plateau_patience=15, mixup_alpha=0.4),
    "visual": StepOptions(lr=1e-4, batch_size=16, max_epochs=200, early_stop_patience=40,
                          plateau_patience=20, unfrozen_epochs=20, unfrozen_lr=1e-6),
    "fusion": StepOptions(lr=1e-4, batch_size=16, max_epochs=200, early_stop_patience=80,
                          plateau_patience=15),
    "finetune": StepOptions(lr=1e-6, batch_size=16, max_epochs=20, early_stop_patience=10,
                            plateau_patience=5),
}

MONO_SHARE = 0.5
"""Share of mono examples in the steps that carry audio (MONO_STEPS), in every recipe but the
paper's. Most webcams have one microphone: a model trained on stereo alone leans on inter-channel
cues a down-mix removes (small preset fed mono: 0.600 final accuracy against 1.000 fed stereo on
the synthetic set, seed 11; demo preset 0.200 against 0.950), one trained on half mono examples
keeps them both (small 1.000 / 1.000, demo 0.985 / 0.980, lite 0.915 / 0.920; docs/training.md).
The paper's recipe stays the seed's: TAU is stereo and its figures must stay exact."""

SMALL_RECIPE: dict[Step, StepOptions] = {
    "audio": PAPER_RECIPE["audio"].replace(max_epochs=25, early_stop_patience=10,
                                           plateau_patience=5, crops_per_clip=6,
                                           mono_share=MONO_SHARE),
    # The backbone has no pre-trained weights here: it must learn in the unfrozen phase, and with
    # a few recording places per class only the light jitter keeps it from learning the places.
    # On the synthetic set a branch alone cannot tell the two classes of a look-alike pair, so
    # its accuracy is capped near 0.5 and moves by chance between epochs; its log loss shows
    # what it learned (the look of each pair).
    "visual": PAPER_RECIPE["visual"].replace(lr=3e-3, max_epochs=40, early_stop_patience=15,
                                             plateau_patience=5, crops_per_clip=6,
                                             unfrozen_epochs=30, unfrozen_lr=3e-4,
                                             frame_jitter=0.5, select_by="loss"),
    # The late-fusion dense sees probabilities in [0, 1]: it needs large weights to become
    # confident, so a short run needs a high rate and patience past the first accuracy plateau.
    "fusion": PAPER_RECIPE["fusion"].replace(lr=1e-2, max_epochs=100, early_stop_patience=30,
                                             plateau_patience=8, crops_per_clip=6,
                                             mono_share=MONO_SHARE),
    "finetune": PAPER_RECIPE["finetune"].replace(lr=1e-5, max_epochs=1, crops_per_clip=2,
                                                 mono_share=MONO_SHARE),
}

DEMO_RECIPE: dict[Step, StepOptions] = {
    **SMALL_RECIPE,
    "audio": SMALL_RECIPE["audio"].replace(max_epochs=10, crops_per_clip=4),
    # The demo's backbone stays frozen (its build must stay short), so it keeps the seed's rule.
    "visual": SMALL_RECIPE["visual"].replace(lr=1e-3, unfrozen_epochs=0, frame_jitter=0.0,
                                             select_by="accuracy"),
    "finetune": SMALL_RECIPE["finetune"].replace(max_epochs=0),
}

LITE_CROPS_PER_TAKE = 12
"""Own places come as a few long takes (minutes), not TAU's many 10-s clips: more random 1-s
crops per take and epoch, or an epoch is a single batch."""

LITE_RECIPE: dict[Step, StepOptions] = {
    "audio": SMALL_RECIPE["audio"].replace(crops_per_clip=LITE_CROPS_PER_TAKE),
    "fusion": SMALL_RECIPE["fusion"].replace(crops_per_clip=LITE_CROPS_PER_TAKE,
                                             late_start="better_branch"),
    # Pretrained ImageNet features, kept frozen: the frames are encoded once and the BiGRU head
    # trains on the cached features in seconds; no unfrozen phase (an EfficientNet step on
    # 2 cores would take longer than the rest of the recipe).
    "visual": SMALL_RECIPE["visual"].replace(lr=1e-3, unfrozen_epochs=0, frame_jitter=0.0,
                                             select_by="accuracy",
                                             crops_per_clip=LITE_CROPS_PER_TAKE),
    "finetune": SMALL_RECIPE["finetune"].replace(max_epochs=0),
}

RECIPES: dict[str, dict[Step, StepOptions]] = {
    "paper": PAPER_RECIPE,
    "small": SMALL_RECIPE,
    "demo": DEMO_RECIPE,
    "lite": LITE_RECIPE,
}
