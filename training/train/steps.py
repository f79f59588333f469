"""The four steps of the seed's recipe, each a sequence of ``fit`` phases.

1. audio: the audio branch alone, with mixup.
2. visual: the head on a frozen backbone (features computed once, since a frozen VGG16 gives
   the same features every epoch), then optionally everything unfrozen at a tiny lr.
3. fusion: early + late fusion with both branches frozen (their outputs computed once).
4. finetune: everything, at a tiny lr.
Fusion and fine-tuning train on final + early losses (fine-tuning adds the branch losses too) so
that every output the daemon may fall back on stays a calibrated classifier.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from training.config import ModelConfig
from training.data.crops import CropIndex, batched, jitter_frames, to_mid
from training.model import AVSceneNet
from training.progress import SILENT, Progress
from training.train.distributed import Runtime
from training.train.loop import Batch, FitResult, FitSpec, Validation, fit, soft_cross_entropy
from training.train.options import Step, StepOptions

log = logging.getLogger(__name__)

FEATURE_BATCH = 64  # frames / crops per forward pass when precomputing frozen outputs


@dataclass
class StepContext:
    cfg: ModelConfig
    train: CropIndex
    val: CropIndex
    runtime: Runtime
    seed: int
    save_state: Callable[[dict[str, Any]], None]
    resume: dict[str, Any] | None = None
    progress: Progress = SILENT


def one_hot(labels: torch.Tensor, n: int) -> torch.Tensor:
    return torch.nn.functional.one_hot(labels, n).float()


def set_trainable(module: nn.Module, flag: bool) -> None:
    for p in module.parameters():
        p.requires_grad_(flag)


def trainable(module: nn.Module) -> list[nn.Parameter]:
    return [p for p in module.parameters() if p.requires_grad]


# ----------------------------------------------------------------------------- frozen features
@dataclass
class FrozenOutputs:
    """Outputs of frozen branches, computed once per clip and reused every epoch."""

    frame_features: list[torch.Tensor]  # per clip (n_frames, F)
    audio_probs: list[torch.Tensor] | None = None  # per clip (n_starts, C)
    audio_steps: list[torch.Tensor] | None = None  # per clip (n_starts, 5, A)
    mono_probs: list[torch.Tensor] | None = None
    """The same of the clip's down-mix (both channels the mid), where the step trains on a share
    of mono examples."""
    mono_steps: list[torch.Tensor] | None = None

    def frames(self, rows: np.ndarray) -> torch.Tensor:
        return torch.stack([self.frame_features[i][k:k + 5] for i, k in rows])

    def audio(self, rows: np.ndarray, mono: torch.Tensor | None = None
              ) -> tuple[torch.Tensor, torch.Tensor]:
        """Audio outputs of ``rows``; where ``mono`` (one flag per row) is set, the down-mix's."""
        if self.audio_probs is None or self.audio_steps is None:
            raise RuntimeError("audio outputs were not precomputed for this step")
        probs = torch.stack([self.audio_probs[i][k] for i, k in rows])
        steps = torch.stack([self.audio_steps[i][k] for i, k in rows])
        if mono is None or not bool(mono.any()):
            return probs, steps
        if self.mono_probs is None or self.mono_steps is None:
            raise RuntimeError("mono audio outputs were not precomputed for this step")
        mono_probs = torch.stack([self.mono_probs[i][k] for i, k in rows])
        mono_steps = torch.stack([self.mono_steps[i][k] for i, k in rows])
        return (torch.where(mono[:, None], mono_probs, probs),
                torch.where(mono[:, None, None], mono_steps, steps))


class FrameFeatureMemo:
    """Frame features of a cache under given backbone weights, kept between the steps of one
    recipe process: the visual step's frozen phase and the fusion step encode the same frames
    with the same frozen backbone, and encoding every frame is the costliest part of both.
    Bounded to the last few (cache, weights) pairs."""

    def __init__(self, capacity: int = 2) -> None:
        self.capacity = capacity
        self._items: dict[tuple[str, str], list[torch.Tensor]] = {}

    @staticmethod
    def key(model: AVSceneNet, index: CropIndex) -> tuple[str, str]:
        """(the clips, the weights): splits share one cache directory, so name the clips."""
        clips = hashlib.sha1("\n".join(c.stem for c in index.cache.clips).encode())
        h = hashlib.sha1()
        for name, t in model.visual.encoder.state_dict().items():
            h.update(name.encode())
            h.update(t.detach().cpu().contiguous().numpy().tobytes())
        return f"{index.cache.directory}:{clips.hexdigest()[:12]}", h.hexdigest()

    def get(self, key: tuple[str, str]) -> list[torch.Tensor] | None:
        return self._items.get(key)

    def put(self, key: tuple[str, str], value: list[torch.Tensor]) -> None:
        self._items[key] = value
        while len(self._items) > self.capacity:
            self._items.pop(next(iter(self._items)))


FRAME_MEMO = FrameFeatureMemo()


@torch.no_grad()
def encode_all_frames(model: AVSceneNet, index: CropIndex, device: torch.device,
                      progress: Progress = SILENT, label: str = "frame features"
                      ) -> list[torch.Tensor]:
    model.eval()
    key = FRAME_MEMO.key(model, index)
    memo = FRAME_MEMO.get(key)
    if memo is not None:
        log.info("frame features of %s reused (same backbone weights)", key[0])
        return memo
    out = []
    with progress.task(label, len(index), "clips") as task:
        for i in range(len(index)):
            frames = index.cache.frames(i)
            feats = [model.encode_frames(torch.from_numpy(np.array(frames[j:j + FEATURE_BATCH]))
                                         .to(device))
                     for j in range(0, len(frames), FEATURE_BATCH)]
            out.append(torch.cat(feats).cpu())
            task.advance()
    FRAME_MEMO.put(key, out)
    return out


@torch.no_grad()
def audio_all_starts(model: AVSceneNet, index: CropIndex, device: torch.device,
                     progress: Progress = SILENT, label: str = "audio outputs", mono: bool = False
                     ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """The audio branch's outputs at every start of every clip (of its down-mix if ``mono``)."""
    model.eval()
    probs, steps = [], []
    with progress.task(label, len(index), "clips") as task:
        for i in range(len(index)):
            rows = np.stack([np.full(index.n_starts[i], i), np.arange(index.n_starts[i])], axis=1)
            p, s = zip(*(model.audio((to_mid(w) if mono else w).to(device))
                         for w in (index.waves(b) for b in batched(rows, FEATURE_BATCH))),
                       strict=True)
            probs.append(torch.cat(p).cpu())
            steps.append(torch.cat(s).cpu())
            task.advance()
    return probs, steps


# ----------------------------------------------------------------------------- helpers
def _validate(index: CropIndex, predict: Callable[[np.ndarray], torch.Tensor], n_classes: int,
              batch_size: int) -> Validation:
    rows = index.eval()
    losses, correct = 0.0, 0
    for b in batched(rows, batch_size):
        probs = predict(b).cpu()
        y = index.labels(b)
        losses += float(soft_cross_entropy(probs, one_hot(y, n_classes))) * len(b)
        correct += int((probs.argmax(-1) == y).sum())
    return Validation(loss=losses / max(len(rows), 1), accuracy=correct / max(len(rows), 1))


def _mixup(x: torch.Tensor, y: torch.Tensor, alpha: float, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-example mixing weights from Beta(alpha, alpha), partners from a shuffled batch."""
    if alpha <= 0:
        return x, y
    lam = torch.distributions.Beta(alpha, alpha).sample((x.shape[0],))
    perm = torch.randperm(x.shape[0], generator=gen)
    lx = lam.view(-1, *([1] * (x.dim() - 1)))
    return lx * x + (1 - lx) * x[perm], lam[:, None] * y + (1 - lam[:, None]) * y[perm]


def _mono_picks(n: int, share: float, gen: torch.Generator) -> torch.Tensor | None:
    """Which of ``n`` examples are fed as mono, each with probability ``share``; None at 0."""
    if share <= 0:
        return None
    return torch.rand(n, generator=gen) < share


def _some_mono(x: torch.Tensor, share: float, gen: torch.Generator) -> torch.Tensor:
    """Each example of the batch, with probability ``share``, as mono (both channels the mid)."""
    pick = _mono_picks(x.shape[0], share, gen)
    return x if pick is None else torch.where(pick[:, None, None], to_mid(x), x)


def _epoch_rows(ctx: StepContext, opt: StepOptions, epoch: int) -> np.ndarray:
    """This rank's share of the epoch's random crops."""
    total = len(ctx.train) * opt.crops_per_clip
    return ctx.train.train(epoch, opt.crops_per_clip, ctx.seed, ctx.runtime.shard(total))


def _batches_per_epoch(ctx: StepContext, opt: StepOptions) -> int:
    """Batches in this rank's share of an epoch's crops (as ``_epoch_rows`` cuts them)."""
    total = len(ctx.train) * opt.crops_per_clip
    return math.ceil(len(range(total)[ctx.runtime.shard(total)]) / opt.batch_size)


def _phase(ctx: StepContext, spec: FitSpec, opt: StepOptions) -> FitResult:
    resume = ctx.resume if ctx.resume and ctx.resume.get("phase") == spec.name else None
    spec = dataclasses.replace(spec, batches_per_epoch=_batches_per_epoch(ctx, opt))
    return fit(spec, seed=ctx.seed, save_state=ctx.save_state, resume=resume,
               progress=ctx.progress)


def _done(ctx: StepContext, name: str) -> bool:
    return bool(ctx.resume) and name in ctx.resume.get("completed_phases", [])


# ----------------------------------------------------------------------------- the steps
def audio_step(model: AVSceneNet, ctx: StepContext, opt: StepOptions) -> list[FitResult]:
    dev, n = ctx.runtime.device, ctx.cfg.n_classes
    set_trainable(model, False)
    set_trainable(model.audio, True)
    net = ctx.runtime.wrap(model.audio)
    gen = torch.Generator().manual_seed(ctx.seed)

    def batches(epoch: int) -> Iterator[Batch]:
        rows = _epoch_rows(ctx, opt, epoch)
        for b in batched(rows, opt.batch_size):
            waves = _some_mono(ctx.train.waves(b), opt.mono_share, gen)
            x, y = _mixup(waves, one_hot(ctx.train.labels(b), n), opt.mixup_alpha, gen)
            yield x.to(dev), y.to(dev)

    spec = FitSpec(
        name="audio", module=model.audio, params=trainable(model.audio), batches=batches,
        loss=lambda b: soft_cross_entropy(net(b[0])[0], b[1]),
        validate=lambda: _validate(ctx.val, lambda r: model.audio(ctx.val.waves(r).to(dev))[0], n, 64),
        options=opt, lr=opt.lr, max_epochs=opt.max_epochs)
    return [_phase(ctx, spec, opt)]


def visual_step(model: AVSceneNet, ctx: StepContext, opt: StepOptions) -> list[FitResult]:
    dev, n = ctx.runtime.device, ctx.cfg.n_classes
    results = []
    set_trainable(model, False)
    if not _done(ctx, "visual_frozen"):
        log.info("visual step: encoding every cached frame once with the frozen backbone")
        train_f = FrozenOutputs(encode_all_frames(model, ctx.train, dev, ctx.progress,
                                                  "visual: frame features (train)"))
        val_f = FrozenOutputs(encode_all_frames(model, ctx.val, dev, ctx.progress,
                                                "visual: frame features (validation)"))
        set_trainable(model.visual.head, True)
        net = ctx.runtime.wrap(model.visual.head)

        def batches(epoch: int) -> Iterator[Batch]:
            rows = _epoch_rows(ctx, opt, epoch)
            for b in batched(rows, opt.batch_size):
                yield train_f.frames(b).to(dev), one_hot(ctx.train.labels(b), n).to(dev)

        spec = FitSpec(
            name="visual_frozen", module=model.visual.head, params=trainable(model.visual.head),
            batches=batches, loss=lambda b: soft_cross_entropy(net(b[0]), b[1]),
            validate=lambda: _validate(ctx.val, lambda r: model.visual.head(val_f.frames(r).to(dev)), n, 256),
            options=opt, lr=opt.lr, max_epochs=opt.max_epochs)
        results.append(_phase(ctx, spec, opt))
        ctx.resume = {"completed_phases": ["visual_frozen"]}
    if opt.unfrozen_epochs > 0:
        set_trainable(model.visual, True)
        net = ctx.runtime.wrap(model.visual)
        gen = torch.Generator().manual_seed(ctx.seed)

        def batches_unfrozen(epoch: int) -> Iterator[Batch]:
            rows = _epoch_rows(ctx, opt, epoch)
            for b in batched(rows, opt.batch_size):
                frames = jitter_frames(ctx.train.frames(b), opt.frame_jitter, gen)
                yield frames.to(dev), one_hot(ctx.train.labels(b), n).to(dev)

        spec = FitSpec(
            name="visual_unfrozen", module=model.visual, params=trainable(model.visual),
            batches=batches_unfrozen, loss=lambda b: soft_cross_entropy(net(b[0]), b[1]),
            validate=lambda: _validate(ctx.val, lambda r: model.visual(ctx.val.frames(r).to(dev)), n, 32),
            options=opt, lr=opt.unfrozen_lr, max_epochs=opt.unfrozen_epochs)
        results.append(_phase(ctx, spec, opt))
    return results


class _FusionLoss(nn.Module):
    """The fusion step's loss as a module, so DDP can wrap it. Only early and late fusion are
    registered; the whole model is held in a list so DDP neither syncs the frozen branches'
    buffers nor counts their parameters."""

    def __init__(self, model: AVSceneNet) -> None:
        super().__init__()
        self.early, self.late, self.model = model.early, model.late, [model]

    def forward(self, feats: torch.Tensor, steps: torch.Tensor, aprobs: torch.Tensor,
                target: torch.Tensor) -> torch.Tensor:
        _, early, final = self.model[0].head(feats, steps, aprobs)
        return soft_cross_entropy(final, target) + soft_cross_entropy(early, target)


def fusion_step(model: AVSceneNet, ctx: StepContext, opt: StepOptions) -> list[FitResult]:
    dev, n = ctx.runtime.device, ctx.cfg.n_classes
    set_trainable(model, False)
    log.info("fusion step: computing the frozen branches' outputs once")
    out = {}
    for name, idx in (("train", ctx.train), ("validation", ctx.val)):
        probs, steps = audio_all_starts(model, idx, dev, ctx.progress,
                                        f"fusion: audio outputs ({name})")
        frames = encode_all_frames(model, idx, dev, ctx.progress, f"fusion: frame features ({name})")
        out[name] = FrozenOutputs(frames, probs, steps)
    if opt.mono_share > 0:  # the heads must also meet the audio features of a down-mix
        out["train"].mono_probs, out["train"].mono_steps = audio_all_starts(
            model, ctx.train, dev, ctx.progress, "fusion: audio outputs (train, mono)", mono=True)
    if opt.late_start == "better_branch":
        _start_late_fusion(model, ctx.val, out["validation"], n, dev)
    fusion = nn.ModuleList([model.early, model.late])
    set_trainable(fusion, True)
    net = ctx.runtime.wrap(_FusionLoss(model))
    gen = torch.Generator().manual_seed(ctx.seed)

    def batches(epoch: int) -> Iterator[Batch]:
        rows = _epoch_rows(ctx, opt, epoch)
        for b in batched(rows, opt.batch_size):
            probs, steps = out["train"].audio(b, _mono_picks(len(b), opt.mono_share, gen))
            yield (out["train"].frames(b).to(dev), steps.to(dev), probs.to(dev),
                   one_hot(ctx.train.labels(b), n).to(dev))

    def predict(rows: np.ndarray) -> torch.Tensor:
        probs, steps = out["validation"].audio(rows)
        return model.head(out["validation"].frames(rows).to(dev), steps.to(dev), probs.to(dev))[2]

    spec = FitSpec(
        name="fusion", module=fusion, params=trainable(fusion), batches=batches,
        loss=lambda b: net(*b), validate=lambda: _validate(ctx.val, predict, n, 256),
        options=opt, lr=opt.lr, max_epochs=opt.max_epochs, frozen=[model.audio, model.visual])
    return [_phase(ctx, spec, opt)]


@torch.no_grad()
def _start_late_fusion(model: AVSceneNet, val: CropIndex, frozen: FrozenOutputs,
                       n_classes: int, device: torch.device) -> None:
    """Late fusion starts as the frozen branch more accurate on validation (``late_start``)."""
    model.eval()
    scores = {
        "audio": _validate(val, lambda r: frozen.audio(r)[0], n_classes, 256),
        "visual": _validate(val, lambda r: model.visual.head(frozen.frames(r).to(device)),
                            n_classes, 256),
    }
    branch = max(scores, key=lambda b: (scores[b].accuracy, -scores[b].loss))
    model.late.pass_through(branch)
    log.info("fusion step: late fusion starts as the %s branch (validation accuracy: audio "
             "%.3f, visual %.3f)", branch, scores["audio"].accuracy, scores["visual"].accuracy)


class _FinetuneLoss(nn.Module):
    def __init__(self, model: AVSceneNet) -> None:
        super().__init__()
        self.model = model

    def forward(self, wave: torch.Tensor, frames: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        outputs = self.model(wave, frames, calibrated=False)
        return sum(soft_cross_entropy(p, target) for p in outputs)  # type: ignore[return-value]


def batch_norms(module: nn.Module) -> list[nn.Module]:
    return [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def finetune_step(model: AVSceneNet, ctx: StepContext, opt: StepOptions) -> list[FitResult]:
    """Everything trains, but batch-norm layers keep their running statistics (eval mode):
    late fusion was fitted on the audio branch's outputs under those statistics, and train-mode
    passes would re-estimate them from clean (not mixup) batches, shifting every audio output
    the fusion layers rely on (issue 10: one epoch at lr 1e-5 cost 9 points that way)."""
    dev, n = ctx.runtime.device, ctx.cfg.n_classes
    set_trainable(model, True)
    net = ctx.runtime.wrap(_FinetuneLoss(model))
    gen = torch.Generator().manual_seed(ctx.seed)

    def batches(epoch: int) -> Iterator[Batch]:
        rows = _epoch_rows(ctx, opt, epoch)
        for b in batched(rows, opt.batch_size):
            waves = _some_mono(ctx.train.waves(b), opt.mono_share, gen)
            yield (waves.to(dev), ctx.train.frames(b).to(dev),
                   one_hot(ctx.train.labels(b), n).to(dev))

    spec = FitSpec(
        name="finetune", module=model, params=trainable(model), batches=batches,
        loss=lambda b: net(*b),
        validate=lambda: _validate(
            ctx.val, lambda r: model(ctx.val.waves(r).to(dev), ctx.val.frames(r).to(dev),
                                     calibrated=False).final, n, 32),
        options=opt, lr=opt.lr, max_epochs=opt.max_epochs, frozen=batch_norms(model))
    return [_phase(ctx, spec, opt)]


STEP_FUNCTIONS: dict[Step, Callable[[AVSceneNet, StepContext, StepOptions], list[FitResult]]] = {
    "audio": audio_step,
    "visual": visual_step,
    "fusion": fusion_step,
    "finetune": finetune_step,
}
