"""``python -m training``: thin commands over the model, the data tools and the recipe."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Annotated

import typer

from avstream.errors import AvstreamError
from training.config import PRESETS, preset
from training.train.options import MONO_STEPS, RECIPES, STEPS, StepOptions

app = typer.Typer(name="training", no_args_is_help=True, add_completion=False,
                  pretty_exceptions_enable=False,
                  help="Train the DCASE2021 Task 1B SE-CRNN on TAU AV 2021 (or a synthetic set).")

ConfigOpt = Annotated[str, typer.Option("--config", "--preset",
                                        help=f"model preset: {', '.join(PRESETS)}")]


class UsageError(AvstreamError):
    """A bad option value; the message says what was expected."""


@app.command()
def summary(config: ConfigOpt = "paper",
            as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False) -> None:
    """Trainable parameter counts of a configuration (paper: 15,414,804)."""
    from training.model import AVSceneNet, count_parameters

    cfg = _config(config)
    counts = count_parameters(AVSceneNet(cfg))
    if as_json:
        print(json.dumps(counts))
    else:
        for k, v in counts.items():
            print(f"{k:16s} {v:>12,d}")


@app.command()
def synth(out_dir: Path,
          clips_per_class: Annotated[int, typer.Option(min=2)] = 8,
          seed: int = 0,
          side_cue: Annotated[bool, typer.Option(
              "--side-cue", help="the two classes sharing a sound differ in L-R (channel "
              "coherence), a cue a mono microphone loses")] = False,
          hard: Annotated[bool, typer.Option(
              "--hard", help="what makes TAU hard: another microphone and camera for the "
              "evaluate split, babble noise at 5-15 dB SNR, each place's light and viewpoint")]
          = False) -> None:
    """Write a synthetic dataset in the TAU AV 2021 layout (complementary modalities)."""
    from training.synth.dataset import write_synthetic_dataset
    from training.synth.hard import HARD

    write_synthetic_dataset(out_dir, clips_per_class=clips_per_class, seed=seed,
                            side_cue=side_cue, difficulty=HARD if hard else None)
    print(f"synthetic dataset written to {out_dir}")


@app.command("synth-stream")
def synth_stream(out_mp4: Path,
                 scenes: Annotated[str, typer.Option(help="comma-separated scene names, in order")],
                 seconds_per_scene: Annotated[float, typer.Option(min=1.0)] = 8.0,
                 seed: int = 0,
                 audio_codec: Annotated[str, typer.Option(
                     help="aac (128 kbps, as a camera writes it) or flac (lossless: for "
                     "scoring a model)")] = "aac") -> None:
    """Write one mp4 (H.264 + AAC or FLAC) moving through the given scenes, plus a CSV of true
    intervals."""
    from training.synth.stream import AUDIO_BIT_RATES, write_synthetic_stream

    if audio_codec not in AUDIO_BIT_RATES:
        raise UsageError(f"--audio-codec {audio_codec!r}; expected one of {sorted(AUDIO_BIT_RATES)}")
    names = [s.strip() for s in scenes.split(",") if s.strip()]
    try:
        csv = write_synthetic_stream(out_mp4, names, seconds_per_scene=seconds_per_scene,
                                     seed=seed, audio_codec=audio_codec)
    except ValueError as e:
        raise UsageError(str(e)) from None
    print(f"stream written to {out_mp4}; true scene intervals in {csv}")


def _config(name: str, backbone_weights: Path | None = None):  # noqa: ANN202
    try:
        cfg = preset(name)
    except ValueError as e:
        raise UsageError(str(e)) from None
    if backbone_weights is not None:
        from training.weights.load import required_pixel_norm

        cfg = cfg.replace(pixel_norm=required_pixel_norm(backbone_weights))
    return cfg


def _run_options(data: Path, out: Path, config: str, seed: int, device: str, cache: Path | None,
                 backbone_weights: Path | None, overrides: dict[str, dict[str, object]],
                 threads: int = 0, select_on: str = "validation",
                 max_epochs: int | None = None, progress: bool = True):  # noqa: ANN202
    from training.train.recipe import SELECTIONS, RunOptions

    if select_on not in SELECTIONS:
        raise UsageError(f"--select-on {select_on!r}; expected one of {', '.join(SELECTIONS)}")

    from training.train.recipe import data_classes

    cfg = _config(config, backbone_weights)
    classes = data_classes(data)
    if classes != cfg.classes:
        cfg = cfg.replace(classes=classes)
    steps: dict = {}
    for step, base in RECIPES[cfg.preset].items():
        changes = {k: v for k, v in overrides.get(step, {}).items() if v is not None}
        if max_epochs is not None:
            for field in ("max_epochs", "unfrozen_epochs"):
                changes[field] = min(max_epochs, changes.get(field, getattr(base, field)))
        try:
            steps[step] = base.replace(**changes) if changes else base
        except ValueError as e:
            raise UsageError(f"--step {step}: {e}") from None
    return RunOptions(data=data, out=out, config=cfg, steps=steps, seed=seed, device=device,
                      cache_root=cache, backbone_weights=backbone_weights, threads=threads,
                      selection=select_on, progress=progress)  # type: ignore[arg-type]


DataOpt = Annotated[Path, typer.Option(
    "--data", help="TAU AV 2021 development root, or DATASET/<scene>/<take>.mp4 (own places)")]
OutOpt = Annotated[Path, typer.Option("--out", help="run directory (checkpoints, metrics)")]
CacheOpt = Annotated[Path | None, typer.Option("--cache", help="decoded-clip cache root")]
WeightsOpt = Annotated[Path | None, typer.Option(
    "--backbone-weights", help="VGG16 weights: torchvision .pth or Keras Places365 notop .h5")]
DeviceOpt = Annotated[str, typer.Option(help="auto (CUDA if present), cuda or cpu")]
ThreadsOpt = Annotated[int, typer.Option(min=0, help="torch CPU threads (0: one per core)")]
SelectOpt = Annotated[str, typer.Option(
    "--select-on", help="split that picks each step's best epoch and fits the calibration: "
    "validation (fold1_train locations held out; default) or evaluate (the seed's protocol)")]
MonoOpt = Annotated[float | None, typer.Option(
    "--mono-share", min=0.0, max=1.0,
    help="share of training examples fed as mono (both channels L+R/2) in the audio, fusion and "
    "finetune steps (default: the preset's: 0.5, the paper's 0)")]
ProgressOpt = Annotated[bool, typer.Option(
    "--progress/--no-progress", help="each step's progress with an ETA on stderr: a bar on a "
    "terminal, a plain line every 10 s otherwise")]


@app.command()
def train(step: Annotated[str, typer.Option("--step", help="audio, visual, fusion or finetune")],
          data: DataOpt, out: OutOpt, config: ConfigOpt = "paper", seed: int = 0,
          device: DeviceOpt = "auto", threads: ThreadsOpt = 0, cache: CacheOpt = None,
          backbone_weights: WeightsOpt = None,
          init: Annotated[Path | None, typer.Option(help="start from this checkpoint")] = None,
          lr: float | None = None, batch_size: int | None = None,
          epochs: Annotated[int | None, typer.Option(help="max epochs")] = None,
          patience: Annotated[int | None, typer.Option(help="early-stopping patience")] = None,
          mixup: Annotated[float | None, typer.Option(help="mixup alpha")] = None,
          crops_per_clip: int | None = None,
          unfrozen_epochs: int | None = None, unfrozen_lr: float | None = None,
          frame_jitter: Annotated[float | None, typer.Option(
              help="visual step, unfrozen phase: brightness/contrast/saturation jitter share")] = None,
          select_on: SelectOpt = "validation", mono_share: MonoOpt = None,
          progress: ProgressOpt = True) -> None:
    """Run one step of the recipe (defaults: the seed's hyper-parameters for that step)."""
    from training.train.distributed import init_runtime
    from training.train.recipe import prepare_data, run_step

    if step not in STEPS:
        raise UsageError(f"--step {step!r}; expected one of {', '.join(STEPS)}")
    overrides = {step: {"lr": lr, "batch_size": batch_size, "max_epochs": epochs,
                        "early_stop_patience": patience, "mixup_alpha": mixup,
                        "crops_per_clip": crops_per_clip, "unfrozen_epochs": unfrozen_epochs,
                        "unfrozen_lr": unfrozen_lr, "frame_jitter": frame_jitter,
                        "mono_share": mono_share}}
    opts = _run_options(data, out, config, seed, device, cache, backbone_weights, overrides, threads,
                        select_on, progress=progress)
    runtime = init_runtime(device, threads)
    ckpt = run_step(step, opts, prepare_data(opts), runtime, init=init)  # type: ignore[arg-type]
    print(json.dumps(ckpt.metrics, indent=2))


@app.command()
def recipe(data: DataOpt, out: OutOpt, config: ConfigOpt = "paper", seed: int = 0,
           device: DeviceOpt = "auto", threads: ThreadsOpt = 0, cache: CacheOpt = None,
           backbone_weights: WeightsOpt = None, select_on: SelectOpt = "validation",
           mono_share: MonoOpt = None,
           max_epochs: Annotated[int | None, typer.Option(
               "--max-epochs", min=0, help="cap every step's epochs (a quick trial run)")] = None,
           progress: ProgressOpt = True) -> None:
    """The four steps, temperature scaling, then the evaluation; writes OUT/metrics.json.
    DATA is a TAU-layout root or a folder of own places (DATASET/<scene>/<take>.mp4).
    Rerun to resume."""
    from training.train.recipe import run_recipe
    from training.train.report import held_out_lines, run_lines

    overrides = {step: {"mono_share": mono_share} for step in MONO_STEPS}
    opts = _run_options(data, out, config, seed, device, cache, backbone_weights, overrides,
                        threads, select_on, max_epochs, progress)
    metrics = run_recipe(opts)
    print(json.dumps({k: metrics[k] for k in ("final", "early", "audio", "visual")}, indent=2))
    print("\n".join(held_out_lines(metrics) + run_lines(metrics)))
    print(f"metrics written to {out / 'metrics.json'}")


@app.command()
def evaluate(data: DataOpt,
             checkpoint: Annotated[Path, typer.Option("--checkpoint", help="a step checkpoint")],
             as_json: Annotated[bool, typer.Option("--json")] = False,
             submission: Annotated[Path | None, typer.Option(help="write a DCASE submission")] = None,
             confusion: Annotated[Path | None, typer.Option(help="confusion matrix PNG")] = None,
             cache: CacheOpt = None, device: DeviceOpt = "auto",
             mono: Annotated[bool, typer.Option(
                 "--mono", help="feed the audio as mono (both channels L+R/2), as a mono "
                 "microphone gives it")] = False) -> None:
    """Accuracy, log loss and calibration error on 1-s segments of the evaluate split, for all
    four outputs (calibrated; log loss and ECE before calibration too)."""
    from training.checkpoint import load_checkpoint
    from training.data.crops import to_mid
    from training.evaluate import OUTPUTS, evaluate_model, predict, write_submission
    from training.train.distributed import init_runtime
    from training.train.recipe import RunOptions, prepare_data

    try:
        ckpt = load_checkpoint(checkpoint)
    except (FileNotFoundError, ValueError) as e:
        raise UsageError(str(e)) from None
    opts = RunOptions(data=data, out=checkpoint.parent, config=ckpt.config, steps={},
                      device=device, cache_root=cache)
    runtime = init_runtime(device)
    splits = ("evaluate", "test") if submission else ("evaluate",)
    prepared = prepare_data(opts, splits)
    model = ckpt.build_model().to(runtime.device)
    index = prepared["evaluate"].index
    waves = (lambda rows: to_mid(index.waves(rows))) if mono else None
    result = evaluate_model(model, index, runtime.device, waves=waves)
    metrics = result.metrics()
    metrics["audio_input"] = "mono" if mono else "stereo"
    png = confusion or checkpoint.with_suffix(".confusion.png")
    result.save_confusion(png)
    if submission:
        test = prepared["test"]
        rows, probs = predict(model, test.index, runtime.device)
        write_submission(submission, [c.stem for c in test.cache.clips], rows, probs["final"],
                         ckpt.config.classes)
    if as_json:
        print(json.dumps(metrics, indent=2))
        return
    print(f"{'output':8s} {'accuracy':>9s} {'log loss':>9s} {'(raw)':>7s} {'ECE':>7s} {'(raw)':>7s} "
          f"{'T':>6s}   ({metrics['segments']} 1-s segments, {metrics['audio_input']} audio)")
    for name in OUTPUTS:
        m = metrics[name]
        print(f"{name:8s} {m['accuracy']:9.4f} {m['log_loss']:9.4f} {m['log_loss_uncalibrated']:7.4f} "
              f"{m['ece']:7.4f} {m['ece_uncalibrated']:7.4f} {m['temperature']:6.3f}")
    print("per-class accuracy (final):")
    for c, a in metrics["per_class_accuracy"].items():
        print(f"  {c:18s} {a:.3f}")
    cm = metrics["confusion"]
    print("confusion (rows true, columns predicted):")
    for c, row in zip(ckpt.config.classes, cm, strict=True):
        print(f"  {c[:14]:14s} " + " ".join(f"{v:4d}" for v in row))
    print(f"confusion matrix saved to {png}")


def _maybe_relaunch_distributed() -> None:
    """Several GPUs and not under torchrun yet: rerun train/recipe through torchrun (DDP)."""
    argv = sys.argv[1:]
    if not argv or argv[0] not in ("train", "recipe"):
        return
    from training.train.distributed import relaunch_command

    device = argv[argv.index("--device") + 1] if "--device" in argv[:-1] else "auto"
    cmd = relaunch_command(argv, device)
    if cmd:
        import subprocess

        print("several GPUs: running under torchrun -> " + " ".join(cmd), file=sys.stderr)
        raise SystemExit(subprocess.call(cmd))


def main() -> None:
    from training.progress import log_handler

    logging.basicConfig(level=logging.INFO, handlers=[log_handler()])
    try:
        _maybe_relaunch_distributed()
        app()
    except AvstreamError as e:
        print(f"training: error: {e}", file=sys.stderr)
        raise SystemExit(e.exit_code) from None


__all__ = ["app", "main", "StepOptions"]
