"""One training loop for every step: Adam, reduce-LR-on-plateau on validation loss, early
stopping when no epoch is better, best weights kept, and a resumable state saved every epoch.

"Better" is the step's ``select_by``: the seed's rule, ``accuracy`` (validation accuracy, loss
breaking ties), or ``loss`` (lower validation loss among epochs at least as accurate as the
starting weights). The starting weights are validated before the first epoch and compete with
every epoch: a phase never returns weights less accurate on validation than those it was given
(``FitResult.best_epoch == -1`` when it kept them)."""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from training.progress import SILENT, Progress, Task
from training.train.options import SelectBy, StepOptions

log = logging.getLogger(__name__)

PROB_FLOOR = 1e-7  # clamps log(p) like Keras' categorical cross-entropy (epsilon 1e-7)

Batch = tuple[torch.Tensor, ...]
LossFn = Callable[[Batch], torch.Tensor]


def soft_cross_entropy(probs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of probabilities against one-hot or mixup targets (the seed's Keras loss)."""
    return -(target * probs.clamp_min(PROB_FLOOR).log()).sum(dim=-1).mean()


@dataclass
class Validation:
    loss: float
    accuracy: float


@dataclass
class FitResult:
    best_epoch: int
    """-1 when no epoch beat the starting weights (they are what the phase returns)."""
    best: Validation
    epochs_run: int
    stopped_early: bool
    start: Validation
    """Validation of the weights the phase started from."""
    history: list[dict[str, float]] = field(default_factory=list)


@dataclass
class FitSpec:
    """What one phase trains and how it is measured."""

    name: str
    module: nn.Module
    """Put in train() for the epoch and eval() for validation; its state is what is kept."""
    params: list[nn.Parameter]
    batches: Callable[[int], Iterable[Batch]]
    """Epoch number -> the batches of that epoch (seeded by the epoch, so resumes repeat)."""
    loss: LossFn
    validate: Callable[[], Validation]
    options: StepOptions
    lr: float
    max_epochs: int
    frozen: list[nn.Module] = field(default_factory=list)
    """Sub-modules kept in eval() during training (frozen BN statistics and dropout)."""
    batches_per_epoch: int = 0
    """How many batches ``batches`` yields an epoch: the progress total (0: not known)."""


def better(val: Validation, best: Validation, start: Validation, select_by: SelectBy) -> bool:
    """Whether an epoch's validation beats the best so far (see the module docstring)."""
    if select_by == "loss":
        return val.loss < best.loss and val.accuracy >= start.accuracy
    return val.accuracy > best.accuracy or (val.accuracy == best.accuracy and val.loss < best.loss)


def fit(spec: FitSpec, *, seed: int, save_state: Callable[[dict[str, Any]], None],
        resume: dict[str, Any] | None = None, progress: Progress = SILENT) -> FitResult:
    """Train ``spec`` until its max epochs or its early stop; ``progress`` counts its batches
    against those its remaining epochs hold (early stopping may end it sooner)."""
    start_epoch = resume["epoch"] + 1 if resume and resume.get("phase") == spec.name else 0
    total = max(spec.max_epochs - start_epoch, 0) * spec.batches_per_epoch
    with progress.task(spec.name, total, "batches") as task:
        return _fit(spec, seed=seed, save_state=save_state, resume=resume, task=task)


def _fit(spec: FitSpec, *, seed: int, save_state: Callable[[dict[str, Any]], None],
         resume: dict[str, Any] | None, task: Task) -> FitResult:
    opt = torch.optim.Adam(spec.params, lr=spec.lr)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
        opt, mode="min", factor=spec.options.plateau_factor, patience=spec.options.plateau_patience)
    start_epoch, best_epoch, bad_epochs = 0, -1, 0
    best_state = copy.deepcopy(spec.module.state_dict())
    history: list[dict[str, float]] = []
    if resume and resume.get("phase") == spec.name:
        opt.load_state_dict(resume["optimizer"])
        sched.load_state_dict(resume["scheduler"])
        start_epoch = resume["epoch"] + 1
        best = Validation(loss=resume["best_loss"], accuracy=resume["best_accuracy"])
        best_epoch, bad_epochs = resume["best_epoch"], resume["bad_epochs"]
        best_state = resume["best_state"]
        history = resume["history"]
        start = Validation(**resume.get("start", {"loss": math.inf, "accuracy": -math.inf}))
        log.info("%s: resuming at epoch %d (best accuracy %.4f at epoch %d)", spec.name,
                 start_epoch, best.accuracy, best_epoch)
    else:
        # The weights the phase starts from are a candidate like any epoch's: a phase whose
        # epochs are all worse (a harmful lr, a bad augmentation) hands its start back.
        spec.module.eval()
        with torch.no_grad():
            start = spec.validate()
        best = start
        log.info("%s start: val loss %.4f, val acc %.4f", spec.name, start.loss, start.accuracy)

    stopped_early = False
    epoch = start_epoch - 1
    for epoch in range(start_epoch, spec.max_epochs):
        torch.manual_seed(seed * 100_003 + epoch)
        task.note(f"epoch {epoch + 1}/{spec.max_epochs}")
        t0 = time.perf_counter()
        spec.module.train()
        for m in spec.frozen:
            m.eval()
        total, n = 0.0, 0
        for batch in spec.batches(epoch):
            loss = spec.loss(batch)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * batch[0].shape[0]
            n += batch[0].shape[0]
            task.advance()
        spec.module.eval()
        with torch.no_grad():
            val = spec.validate()
        sched.step(val.loss)
        if better(val, best, start, spec.options.select_by):
            best, best_epoch, bad_epochs = val, epoch, 0
            best_state = copy.deepcopy(spec.module.state_dict())
        else:
            bad_epochs += 1
        row = {"epoch": epoch, "train_loss": total / max(n, 1), "val_loss": val.loss,
               "val_accuracy": val.accuracy, "lr": opt.param_groups[0]["lr"],
               "seconds": time.perf_counter() - t0}
        history.append(row)
        log.info("%s epoch %d: train loss %.4f, val loss %.4f, val acc %.4f, lr %.2e (%.1fs)",
                 spec.name, epoch, row["train_loss"], val.loss, val.accuracy, row["lr"], row["seconds"])
        save_state({"phase": spec.name, "epoch": epoch, "optimizer": opt.state_dict(),
                    "scheduler": sched.state_dict(), "best_accuracy": best.accuracy,
                    "best_loss": best.loss, "best_epoch": best_epoch, "bad_epochs": bad_epochs,
                    "best_state": best_state, "history": history,
                    "start": {"loss": start.loss, "accuracy": start.accuracy}})
        if bad_epochs >= spec.options.early_stop_patience:
            stopped_early = True
            log.info("%s: early stop at epoch %d (no better %s for %d epochs)", spec.name,
                     epoch, spec.options.select_by, bad_epochs)
            break
    spec.module.load_state_dict(best_state)
    spec.module.eval()
    if best_epoch < 0:
        log.info("%s: no epoch beat the starting weights (val acc %.4f); kept them", spec.name,
                 start.accuracy)
    return FitResult(best_epoch=best_epoch, best=best,
                     epochs_run=epoch + 1, stopped_early=stopped_early, start=start,
                     history=history)
