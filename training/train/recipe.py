"""Runs steps of the recipe against a TAU-layout data root, with checkpoints that resume.

Layout of a run directory:
  <step>.ckpt        the step's best model (complete); a rerun skips a step that has one
  <step>.last.ckpt   the state after the latest epoch, for resuming an interrupted step
  metrics.json       evaluation of the final checkpoint (recipe only)

Selection: every step early-stops and keeps its best epoch on a validation split. By default
("validation") that is a subset of fold1_train held out by location (training/data/locations.py),
and fold1_evaluate is only reported on; "evaluate" selects on fold1_evaluate, as the seed did.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from training.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from training.config import ModelConfig
from training.data.cache import ClipCache, build_cache
from training.data.crops import CropIndex
from training.data.locations import location_of, split_by_location
from training.data.places import (
    KIND as OWN_PLACES,
)
from training.data.places import (
    is_places_root,
    keep_decoded,
    places_splits,
    scan_places,
)
from training.data.tau import TauSplit, read_tau_split, tau_classes
from training.errors import DataError
from training.model import AVSceneNet
from training.model.calibration import UNCALIBRATED
from training.progress import Progress
from training.train.distributed import Runtime, init_runtime
from training.train.options import MONO_STEPS, STEPS, Step, StepOptions
from training.train.steps import STEP_FUNCTIONS, StepContext

log = logging.getLogger(__name__)

Selection = Literal["validation", "evaluate"]
SELECTIONS: tuple[Selection, ...] = ("validation", "evaluate")
VALIDATION = "validation"
CACHE_STEP = "cache"
CALIBRATION_STEP = "calibration"
EVALUATE_STEP = "evaluate"
"""The recipe's steps around the training steps, as its progress and timings name them."""

@dataclass(frozen=True)
class RunOptions:
    data: Path
    out: Path
    config: ModelConfig
    steps: dict[Step, StepOptions]
    seed: int = 0
    device: str = "auto"
    cache_root: Path | None = None
    """Where decoded clips are cached; default ~/.cache/avstream/<hash of the data path>."""
    backbone_weights: Path | None = None
    progress: bool = True
    """Show each step's progress on stderr (training/progress.py)."""
    threads: int = 0
    """torch intra-op threads (0: torch's default, one per core)."""
    selection: Selection = "validation"
    """Which split chooses each step's best epoch and early-stops it: "validation" (fold1_train
    locations held out) or "evaluate" (fold1_evaluate, the seed's protocol)."""

    def __post_init__(self) -> None:
        if self.selection not in SELECTIONS:
            raise ValueError(f"selection={self.selection!r}; expected one of {list(SELECTIONS)}")


@dataclass(frozen=True)
class Split:
    """One fold list, its decoded cache and the crops over it."""

    tau: TauSplit
    cache: ClipCache
    index: CropIndex


def default_cache_root(data: Path) -> Path:
    digest = hashlib.sha1(str(data.resolve()).encode()).hexdigest()[:12]
    return Path.home() / ".cache" / "avstream" / f"{data.resolve().name}-{digest}"


def run_progress(opts: RunOptions, runtime: Runtime | None = None) -> Progress:
    """What a run shows: ``opts.progress``, on the main process only."""
    return Progress(enabled=opts.progress and (runtime is None or runtime.is_main))


def prepare_data(opts: RunOptions, splits: tuple[str, ...] = ("train", "evaluate"),
                 progress: Progress | None = None) -> dict[str, Split]:
    """Read the fold lists and decode each clip once into the shared cache.

    With ``opts.selection == "validation"`` and "train" among the splits, fold1_train is cut by
    location into "train" and "validation"."""
    root = opts.cache_root or default_cache_root(opts.data)
    progress = progress if progress is not None else run_progress(opts)
    if is_places_root(opts.data):
        return _prepare_places(opts, splits, root, progress)
    taus = [read_tau_split(opts.data, split, classes=opts.config.classes) for split in splits]
    if opts.selection == VALIDATION and "train" in splits:
        full = taus[splits.index("train")]
        cut = split_by_location(full.rows, seed=opts.seed)
        log.info("validation split: %d clips at locations %s held out of fold1_train's %d",
                 len(cut.validation), ", ".join(cut.validation_locations), len(full.rows))
        taus[splits.index("train")] = dataclasses.replace(full, rows=cut.train)
        taus.append(TauSplit(VALIDATION, full.csv_path, cut.validation, full.report))
    out: dict[str, Split] = {}
    for tau in taus:
        cache = build_cache(tau.rows, root, opts.config.sample_rate, opts.config.frame_size,
                            progress=progress, classes=opts.config.classes)
        out[tau.name] = Split(tau, cache, CropIndex(cache, opts.config.sample_rate))
    return out


def _prepare_places(opts: RunOptions, splits: tuple[str, ...], root: Path,
                    progress: Progress) -> dict[str, Split]:
    """A folder of own places: decode every take once, then split by take (places.py's rule)
    among those that decoded. With two takes in some class there is no validation take: the
    evaluation takes stand in for it, and the log says the held-out figures are optimistic."""
    dataset = scan_places(opts.data)
    cfg = opts.config
    if tuple(cfg.classes) != dataset.classes:
        raise DataError(f"dataset {opts.data} holds scenes {list(dataset.classes)} but the model "
                        f"config has classes {list(cfg.classes)}; expected the same list")
    every = build_cache(dataset.rows(), root, cfg.sample_rate, cfg.frame_size,
                        progress=progress, classes=cfg.classes)
    takes = keep_decoded(dataset, [c.stem for c in every.clips], every.report)
    parts = places_splits(dataset, takes, opts.seed)
    if VALIDATION not in parts:
        log.warning("%s: some scene has only 2 takes, so no take is left for validation: the "
                    "evaluation takes also choose the epochs and the calibration, and the "
                    "accuracy reported on them is optimistic (record a third take per scene)",
                    opts.data)
        parts[VALIDATION] = dataclasses.replace(parts["evaluate"], name=VALIDATION)
    missing = [s for s in splits if s not in parts]
    if missing:
        raise DataError(f"dataset {opts.data} ({OWN_PLACES} places) has no {missing} split; "
                        f"expected one of {sorted(parts)}")
    wanted = [*splits, VALIDATION] if opts.selection == VALIDATION and "train" in splits else splits
    out: dict[str, Split] = {}
    skipped = every.report
    train_report = dataclasses.replace(parts["train"].report, rows=skipped.rows - len(
        every.clips) + len(parts["train"].rows), skipped=skipped.skipped, counts=skipped.counts)
    parts["train"] = dataclasses.replace(parts["train"], report=train_report)
    for name in wanted:
        tau = parts[name]
        cache = build_cache(tau.rows, root, cfg.sample_rate, cfg.frame_size, progress=False,
                            classes=cfg.classes)
        out[name] = Split(tau, cache, CropIndex(cache, cfg.sample_rate))
    return out


def data_classes(data: Path) -> tuple[str, ...]:
    """The classes a dataset holds: its scene folders (own places) or its train list's labels."""
    if is_places_root(data):
        return scan_places(data).classes
    return tau_classes(data)


def data_kind(data: Path) -> str:
    """What the bundle will say it knows: "own" places, "synthetic" (training/synth's
    cities) or "tau"."""
    if is_places_root(data):
        return OWN_PLACES
    from training.synth.dataset import CITIES

    try:
        stems = [r.stem for r in read_tau_split(data, "train", classes=None).rows]
    except DataError:
        return "tau"
    synthetic = bool(stems) and all(location_of(s).split("-")[0] in CITIES for s in stems)
    return "synthetic" if synthetic else "tau"


def selection_split(opts: RunOptions) -> str:
    """The prepared split that chooses checkpoints (and fits the calibration)."""
    return VALIDATION if opts.selection == VALIDATION else "evaluate"


def data_provenance(opts: RunOptions, prepared: dict[str, Split]) -> dict[str, Any]:
    classes = opts.config.classes
    seconds: dict[str, int] = dict.fromkeys(classes, 0)
    if "train" in prepared:
        for c in prepared["train"].cache.clips:
            seconds[classes[c.label_index]] += c.seconds
    info: dict[str, Any] = {"kind": data_kind(opts.data), "classes": list(classes),
                            "seconds_per_class": seconds,
                            "root": str(opts.data.resolve()), "selection": opts.selection,
                            "mono_share": max(opts.steps[s].mono_share for s in MONO_STEPS)}
    for split, part in prepared.items():
        tau, cache = part.tau, part.cache
        info[split] = {"csv": str(tau.csv_path), "rows": tau.report.rows,
                       "clips": len(cache.clips), "list_report": tau.report.summary(),
                       "cache_report": cache.report.summary()}
        if split == VALIDATION and info["kind"] == OWN_PLACES:
            info[split]["takes"] = sorted(c.stem for c in cache.clips)
        elif split == VALIDATION:
            locations = sorted({location_of(c.stem) for c in cache.clips})
            info[split]["locations"] = locations
    return info


def new_model(opts: RunOptions) -> AVSceneNet:
    from training.weights.load import backbone_status_message, load_backbone

    torch.manual_seed(opts.seed)
    model = AVSceneNet(opts.config)
    if opts.config.visual_backbone == "efficientnet_lite0":
        from training.weights.efficientnet_lite0 import load_into

        n = load_into(model.visual.encoder.backbone, opts.backbone_weights)
        message = f"backbone weights: EfficientNet-Lite0 ImageNet, {n} tensors (SHA-256 checked)"
        log.info(message)
        print(message, flush=True)
        return model
    report = load_backbone(opts.backbone_weights, model) if opts.backbone_weights else None
    message = backbone_status_message(report)
    (log.info if report else log.warning)(message)
    if report is None:
        print(message, flush=True)
    return model


def previous_step(step: Step) -> Step | None:
    i = STEPS.index(step)
    return STEPS[i - 1] if i else None


def run_step(step: Step, opts: RunOptions, prepared: dict[str, Split], runtime: Runtime,
             init: Path | None = None, progress: Progress | None = None) -> Checkpoint:
    """Train one step; resumes from <step>.last.ckpt, and is skipped if <step>.ckpt is complete."""
    done = opts.out / f"{step}.ckpt"
    if done.is_file():
        ckpt = load_checkpoint(done)
        if ckpt.train_state.get("complete"):
            log.info("%s: already complete in %s, skipped", step, done)
            return ckpt
    last = opts.out / f"{step}.last.ckpt"
    resume = None
    if last.is_file():
        ckpt = load_checkpoint(last)
        model, resume = ckpt.build_model(), ckpt.train_state
        log.info("%s: resuming from %s", step, last)
    else:
        prev = previous_step(step)
        init = init or (opts.out / f"{prev}.ckpt" if prev else None)
        if init is not None and init.is_file():
            model = load_checkpoint(init).build_model()
            model.calibration = UNCALIBRATED  # fitted for those weights; refitted after training
            log.info("%s: starting from %s", step, init)
        else:
            if init is not None:
                log.warning("%s: no checkpoint %s from the previous step; starting from a new model",
                            step, init)
            model = new_model(opts)
    model.to(runtime.device)
    provenance = data_provenance(opts, prepared)
    completed: list[str] = list(resume.get("completed_phases", [])) if resume else []

    def save_state(state: dict[str, Any]) -> None:
        if runtime.is_main:
            state = {**state, "completed_phases": completed}
            save_checkpoint(last, Checkpoint(opts.config, _cpu_state(model), step, {}, provenance, state))

    ctx = StepContext(cfg=opts.config, train=prepared["train"].index,
                      val=prepared[selection_split(opts)].index, runtime=runtime, seed=opts.seed,
                      save_state=save_state, resume=resume,
                      progress=progress if progress is not None else run_progress(opts, runtime))
    t0 = time.perf_counter()
    results = STEP_FUNCTIONS[step](model, ctx, opts.steps[step])
    metrics = {"selection": opts.selection,
               "phases": [{"best_epoch": r.best_epoch, "epochs_run": r.epochs_run,
                           "start_accuracy": r.start.accuracy, "start_loss": r.start.loss,
                           "val_accuracy": r.best.accuracy, "val_loss": r.best.loss,
                           "stopped_early": r.stopped_early} for r in results],
               "seconds": time.perf_counter() - t0}
    ckpt = Checkpoint(opts.config, _cpu_state(model), step, metrics, provenance,
                      {"complete": True, "history": [r.history for r in results]})
    if runtime.is_main:
        save_checkpoint(done, ckpt)
        last.unlink(missing_ok=True)
    runtime.barrier()
    return ckpt


def _cpu_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu() for k, v in model.state_dict().items()}


def run_recipe(opts: RunOptions, steps: tuple[Step, ...] = STEPS) -> dict[str, Any]:
    """The steps, then temperature scaling fitted on the selection split, then the evaluation
    of the calibrated final checkpoint on fold1_evaluate (OUT/metrics.json, with the wall time
    of each step, decoding the cache included, in ``wall_seconds``)."""
    from training.calibrate import fit_temperatures
    from training.evaluate import evaluate_model, n_batches, predict

    started = time.perf_counter()
    runtime = init_runtime(opts.device, opts.threads)
    progress = run_progress(opts, runtime)
    opts.out.mkdir(parents=True, exist_ok=True)
    seconds: dict[str, float] = {}
    with _timed(seconds, CACHE_STEP):
        prepared = prepare_data(opts, progress=progress)
    t0 = time.perf_counter()
    ckpt = None
    step_metrics: dict[str, Any] = {}
    for step in steps:
        log.info("recipe: step %s", step)
        with _timed(seconds, step):
            ckpt = run_step(step, opts, prepared, runtime, progress=progress)
        step_metrics[step] = ckpt.metrics.get("phases", [])
    if ckpt is None:
        raise ValueError("no steps to run; expected at least one of " + ", ".join(STEPS))
    model = ckpt.build_model().to(runtime.device)
    fit_split = selection_split(opts)
    fit_index = prepared[fit_split].index
    with (_timed(seconds, CALIBRATION_STEP),
          progress.task(CALIBRATION_STEP, n_batches(fit_index), "batches") as task):
        rows, raw = predict(model, fit_index, runtime.device, calibrated=False,
                            on_batch=task.advance)
        model.calibration = fit_temperatures(raw, fit_index.label_of[rows[:, 0]])
    ckpt.calibration = model.calibration.to_dict()
    eval_index = prepared["evaluate"].index
    with (_timed(seconds, EVALUATE_STEP),
          progress.task(EVALUATE_STEP, n_batches(eval_index), "batches") as task):
        result = evaluate_model(model, eval_index, runtime.device, on_batch=task.advance)
    metrics = result.metrics()
    metrics["selection"] = opts.selection
    metrics["calibration"] = {"split": fit_split, "segments": int(len(rows)),
                              "temperatures": ckpt.calibration}
    metrics["steps"] = step_metrics
    metrics["train_seconds"] = time.perf_counter() - t0
    metrics["config"] = opts.config.to_dict()
    metrics["data"] = data_provenance(opts, prepared)
    metrics["checkpoint"] = str(opts.out / f"{steps[-1]}.ckpt")
    metrics["skipped"] = skipped_clips(prepared)
    if runtime.is_main:
        final = opts.out / f"{steps[-1]}.ckpt"
        ckpt.metrics = {**ckpt.metrics, "evaluation": {k: metrics[k] for k in
                                                       ("final", "early", "audio", "visual")},
                        "selection": opts.selection, "calibration": metrics["calibration"]}
        save_checkpoint(final, ckpt)
        result.save_confusion(opts.out / "confusion.png")
    metrics["wall_seconds"] = {**seconds, "total": time.perf_counter() - started}
    if runtime.is_main:
        (opts.out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return metrics


@contextmanager
def _timed(seconds: dict[str, float], name: str) -> Iterator[None]:
    """Adds the block's wall time to ``seconds[name]``."""
    t0 = time.perf_counter()
    try:
        yield
    finally:
        seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - t0


def skipped_clips(prepared: dict[str, Split]) -> dict[str, str]:
    """Every clip or take left out (missing, undecodable, too short) -> why, over all splits."""
    out: dict[str, str] = {}
    for part in prepared.values():
        for report in (part.tau.report, part.cache.report):
            out.update(report.skipped)
    return dict(sorted(out.items()))
