"""The README's promises about ``avstream replay``, held through the real command.

Every run here is a child process on a Matroska file written by tests/crafted_media.py with
chosen timestamps, so each counter has a value that can be worked out by hand from the file
(the working is next to each expectation). The model is the session's trained SMALL bundle
(16 kHz, 5 frames per 1-s window): the values below do not depend on what it says, only on
the stream, so any bundle of that format gives them.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from cli_run import REPO, Run, bundle_classes, replay
from crafted_media import frame_times, with_nan_output, write_crafted

from avstream import schemas
from avstream.timebase import MS_PER_S

HOP_S = 0.2  # the default hop
FPS = 10  # crafted video: every 0.2-s slot falls exactly on a frame
FILL_SAMPLES = 1600  # a 0.1-s gap at 16 kHz
LATE_SAMPLES = 800  # one 0.05-s audio block written again
FRAMES_WHILE_VIDEO_LASTS = 11  # "video_ends": frames encoded by its 9 fused windows (below)
DOCUMENTED_COUNTERS = schemas.load(schemas.HOP)["$defs"]["counters"]["required"]


def assert_counters(actual: dict[str, int], **nonzero: int) -> None:
    """``actual`` has every documented counter; the ones named have these values and every
    other one is 0 (a counter a later version adds, once in the schema, is held at 0 too)."""
    assert set(DOCUMENTED_COUNTERS) <= set(actual)
    assert actual == {**dict.fromkeys(actual, 0), **nonzero}


# ------------------------------------------------------------------------------ the streams


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("crafted")
    return {
        # Audio 0-2 s, a 0.1-s gap, 2.1-4 s; video at 10 fps over 0-4 s with the 1.9-s frame
        # sent twice (the second is not after the first: out of order).
        "gap_and_repeat": write_crafted(
            d / "gap_and_repeat.mkv", audio=[(0.0, 2.0), (2.1, 1.9)],
            frames=[*frame_times(0.0, 2.0, FPS), 1.9, *frame_times(2.0, 4.0, FPS)]),
        # Audio only: 0-2 s; 1.95-3 s (its first 0.05-s block repeats time already written:
        # late); a 0.1-s gap; 3.1-4 s; a 2-s gap; 6-8 s.
        "audio_gaps": write_crafted(
            d / "audio_gaps.mkv", audio=[(0.0, 2.0), (1.95, 1.05), (3.1, 0.9), (6.0, 2.0)]),
        # Audio 0-4 s, video 0-2 s: fused windows, then audio-only ones.
        "video_ends": write_crafted(d / "video_ends.mkv", audio=[(0.0, 4.0)],
                                    frames=frame_times(0.0, 2.0, FPS)),
        # Audio 0-2 s, video 0-4 s: fused windows, then video-only ones.
        "audio_ends": write_crafted(d / "audio_ends.mkv", audio=[(0.0, 2.0)],
                                    frames=frame_times(0.0, 4.0, FPS)),
    }


@pytest.fixture(scope="module")
def runs(media: dict[str, Path], trained_bundle: Path,
         tmp_path_factory: pytest.TempPathFactory) -> dict[str, Run]:
    out = tmp_path_factory.mktemp("runs")
    done = {name: replay(path, trained_bundle, out, name=name) for name, path in media.items()}
    done["half_second_hop"] = replay(media["gap_and_repeat"], trained_bundle, out, "--hop", "0.5",
                                     name="half_second_hop")
    for name, run in done.items():
        assert run.code == 0, (name, run.stderr)
    return done


def windows_of(run: Run) -> list[int]:
    return [line["window"] for line in run.lines]


# ---------------------------------------------------------------------- schema and fields


def readme_table(heading: str) -> list[str]:
    """The backticked names in the first column of the table in docs/outputs.md (the README's
    reference for every field and counter) whose header row starts with ``| heading |``."""
    text = (REPO / "docs" / "outputs.md").read_text()
    start = text.index(f"| {heading} |")
    rows = text[start:].split("\n\n", 1)[0].splitlines()[2:]
    names: list[str] = []
    for row in rows:
        names += re.findall(r"`([a-z_]+)`", row.split("|")[1])
    return names


def test_every_line_and_summary_match_the_shipped_schemas(runs: dict[str, Run]) -> None:
    hop, summary = schemas.validator(schemas.HOP), schemas.validator(schemas.SUMMARY)
    branches = set()
    for name, run in runs.items():
        assert run.lines, name
        for line in run.lines:
            errors = [e.message for e in hop.iter_errors(line)]
            assert not errors, (name, line["window"], errors)
            branches.add(line["branch"])
        assert run.summary is not None
        errors = [e.message for e in summary.iter_errors(run.summary)]
        assert not errors, (name, errors)
    assert branches == {"final", "audio", "visual"}  # every per-branch rule was exercised


def test_the_schema_refuses_what_the_readme_rules_out(runs: dict[str, Run]) -> None:
    """The schema can fail: each documented rule, broken on a real line, is an error."""
    hop = schemas.validator(schemas.HOP)
    fused = runs["video_ends"].lines[0]
    audio_only = runs["video_ends"].lines[-1]
    assert (fused["branch"], audio_only["branch"]) == ("final", "audio")

    def broken(line: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
        copy = json.loads(json.dumps(line))
        target = copy
        for key in path[:-1]:
            target = target[key]
        if value is KeyError:
            del target[path[-1]]
        else:
            target[path[-1]] = value
        return copy

    first_class = next(iter(fused["probs"]))
    for bad in (
        broken(fused, ("probs", first_class), 0.1234567),  # 7 decimals
        broken(fused, ("latency_ms", "total"), 1.0001),  # 4 decimals
        broken(fused, ("latency_ms", "head"), KeyError),  # final needs head
        broken(audio_only, ("latency_ms", "head"), 1.0),  # audio-only has no head
        broken(fused, ("counters", "windows_lost"), 0),  # an undocumented counter
        broken(fused, ("extra",), 1),  # an undocumented field
        broken(fused, ("modalities",), ["video", "audio"]),
        broken(fused, ("wall_time",), KeyError),
    ):
        assert not hop.is_valid(bad), bad


def test_readme_tables_name_exactly_the_fields_written(runs: dict[str, Run]) -> None:
    line = runs["gap_and_repeat"].lines[0]
    documented = readme_table("field")
    serve_only = {"stream"}  # written by `avstream serve` alone (a replay serves one stream)
    assert set(documented) - serve_only == set(line)
    assert set(readme_table("counter")) == set(line["counters"])
    required = schemas.load(schemas.HOP)["required"]
    assert set(required) == set(documented) - serve_only


def test_probs_follow_the_bundle_class_order_rounded_to_6_decimals(
        runs: dict[str, Run], trained_bundle: Path) -> None:
    classes = bundle_classes(trained_bundle)
    for run in runs.values():
        for line in run.lines:
            assert list(line["probs"]) == classes
            assert list(line["raw_probs"]) == classes
            for p in (*line["probs"].values(), *line["raw_probs"].values(),
                      line["confidence"], line["raw_confidence"]):
                assert round(p, 6) == p
            raw_best = max(classes, key=lambda c: line["raw_probs"][c])
            assert line["raw_label"] == raw_best
            assert line["raw_confidence"] == line["raw_probs"][raw_best]
            for ms in line["latency_ms"].values():
                assert round(ms, 3) == ms


def test_latency_keys_follow_the_branch(runs: dict[str, Run]) -> None:
    expected = {"final": {"frame", "audio", "head", "smooth", "total"},
                "audio": {"audio", "smooth", "total"},
                "visual": {"frame", "head", "smooth", "total"}}
    seen = set()
    for run in runs.values():
        for line in run.lines:
            # --fast: no wall clock, so no lag; a 'delay' key may be added by later versions.
            assert set(line["latency_ms"]) - {"delay"} == expected[line["branch"]], line
            seen.add(line["branch"])
    assert seen == set(expected)


def test_fast_replays_repeat_apart_from_the_clock_fields(media: dict[str, Path],
                                                         trained_bundle: Path,
                                                         runs: dict[str, Run],
                                                         tmp_path: Path) -> None:
    again = replay(media["video_ends"], trained_bundle, tmp_path)
    first = runs["video_ends"]
    assert again.code == 0 and len(again.lines) == len(first.lines) == 16

    def stable(line: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in line.items() if k not in ("latency_ms", "wall_time")}

    assert [stable(x) for x in again.lines] == [stable(x) for x in first.lines]


# ------------------------------------------------------------------ windows, hops, counters


def test_windows_on_the_hop_grid_and_one_new_frame_per_hop(runs: dict[str, Run]) -> None:
    run = runs["gap_and_repeat"]
    # Media starts at 0: the first full window ends at 1.0 s (k = 5); the last at 4.0 s (k = 20).
    assert windows_of(run) == list(range(5, 21))
    assert [line["t"] for line in run.lines] == [round(k * HOP_S, 6) for k in range(5, 21)]
    # The first window encodes its 5 frames; each later one only the frame that is new.
    assert [line["frames_encoded"] for line in run.lines] == [5] + [1] * 15
    assert all(line["modalities"] == ["audio", "video"] for line in run.lines)
    assert all(line["branch"] == "final" for line in run.lines)
    assert [line["counters"]["windows"] for line in run.lines] == list(range(1, 17))
    # 41 frames decoded (20 + the repeat + 20); the repeat is out of order; 5 + 15 sampled.
    # The 0.1-s audio gap is filled: 1600 samples at 16 kHz.
    want = dict(windows=16, frames_received=41, frames_out_of_order=1, frames_sampled=20,
                frames_encoded=20, audio_gaps=1, audio_filled_samples=FILL_SAMPLES)
    assert_counters(run.lines[-1]["counters"], **want)
    assert run.summary is not None
    assert_counters(run.summary["counters"], **want)
    assert run.summary["windows"] == 16 and run.summary["stopped"] == "end of stream"


def test_half_second_hop_encodes_five_new_frames_every_hop(runs: dict[str, Run]) -> None:
    run = runs["half_second_hop"]
    # Ends 1.0, 1.5, ..., 4.0 s; slots at end - 1.0, ..., end - 0.2: no two windows share a
    # slot time (0.5 s is not a multiple of the 0.2-s slot spacing), so all 5 frames are new.
    assert windows_of(run) == list(range(2, 9))
    assert [line["t"] for line in run.lines] == [1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0]
    assert [line["frames_encoded"] for line in run.lines] == [5] * 7
    assert run.lines[-1]["counters"]["frames_encoded"] == 35


def test_audio_gaps_fills_late_samples_and_windows_without_media(runs: dict[str, Run]) -> None:
    run = runs["audio_gaps"]
    # Windows ending 1.0-4.0 s run on audio. Audio stops at 4.0 and resumes at 6.0 (a 2-s gap
    # restarts it): windows ending 4.2-5.8 s end inside the gap, and those ending 6.0-6.6 s
    # reach more than 0.25 s into it; with no video either, those 13 have no media. The window
    # ending 6.8 s lacks only 0.2 s at its start (within the 0.25-s fill) and runs.
    assert windows_of(run) == [*range(5, 21), *range(34, 41)]
    missing = sorted(set(range(5, 41)) - set(windows_of(run)))
    assert missing == list(range(21, 34))
    assert all(line["branch"] == "audio" and line["modalities"] == ["audio"]
               for line in run.lines)
    # Gaps: 2.0 -> 1.95 (back), 3.0 -> 3.1 (filled), 4.0 -> 6.0 (restart).
    want = dict(windows=23, windows_without_media=13, audio_gaps=3,
                audio_filled_samples=FILL_SAMPLES, audio_late_samples=LATE_SAMPLES)
    assert_counters(run.lines[-1]["counters"], **want)
    assert run.summary is not None
    assert_counters(run.summary["counters"], **want)
    # The lines after the hole already carry the count of the windows missing before them.
    assert run.lines[16]["counters"]["windows_without_media"] == 13


def test_a_modality_that_ends_changes_branch_and_is_counted(runs: dict[str, Run]) -> None:
    # Video 0-1.9 s: a slot takes a frame at most 0.5 s away, so the last slot (end - 0.2) of a
    # fused window is at most 2.4 s: windows ending 1.0-2.6 s are fused (9), 2.8-4.0 audio (7).
    run = runs["video_ends"]
    assert [line["branch"] for line in run.lines] == ["final"] * 9 + ["audio"] * 7
    assert [line["modalities"] for line in run.lines] == [["audio", "video"]] * 9 + [["audio"]] * 7
    assert run.lines[-1]["counters"]["modality_changes"] == 1
    # Frames: 5 for the first window; one new slot frame for each window ending 1.2-2.0 s
    # (frames 1.0-1.8 s); the window ending 2.2 s takes the 1.9-s frame for its 2.0-s slot;
    # those ending 2.4 and 2.6 s take it again (cached): 5 + 5 + 1.
    assert [line["frames_encoded"] for line in run.lines] == [5] + [1] * 6 + [0] * 9
    assert run.lines[-1]["counters"]["frames_encoded"] == FRAMES_WHILE_VIDEO_LASTS
    # Audio 0-2 s, video 0-3.9 s: windows ending 1.0-2.0 s are fused (6), the rest run on
    # video alone up to the end of the stream (4.0 s): 10 more, one new frame each.
    run = runs["audio_ends"]
    assert windows_of(run) == list(range(5, 21))
    assert [line["branch"] for line in run.lines] == ["final"] * 6 + ["visual"] * 10
    assert [line["modalities"] for line in run.lines] == [["audio", "video"]] * 6 + [["video"]] * 10
    assert [line["frames_encoded"] for line in run.lines] == [5] + [1] * 15
    assert_counters(run.lines[-1]["counters"], windows=16, frames_received=40,
                    frames_sampled=20, frames_encoded=20, modality_changes=1)


SMOOTH_WINDOWS = 4  # README: "default mean of 4"
FLOOR = 0.3  # README: "--floor, default 0.3"
ROUNDING = 1e-6  # both sides are rounded to 6 decimals


def test_probs_are_the_mean_of_the_last_4_windows_and_the_floor_says_unknown(
        runs: dict[str, Run], trained_bundle: Path) -> None:
    classes = bundle_classes(trained_bundle)
    for name in ("gap_and_repeat", "video_ends", "audio_ends"):
        lines = runs[name].lines
        for i, line in enumerate(lines):
            held = lines[max(0, i - SMOOTH_WINDOWS + 1): i + 1]
            for c in classes:
                mean = sum(h["raw_probs"][c] for h in held) / len(held)
                assert line["probs"][c] == pytest.approx(mean, abs=2 * ROUNDING), (name, i, c)
            best = max(line["probs"].values())
            if best < FLOOR - ROUNDING:
                assert line["label"] == "unknown" and line["confidence"] == best
            elif best > FLOOR + ROUNDING:
                assert line["label"] in classes
                assert line["confidence"] == line["probs"][line["label"]]


def test_realtime_replay_releases_each_window_no_earlier_than_its_stream_time(
        media: dict[str, Path], trained_bundle: Path, tmp_path: Path) -> None:
    """--realtime paces the file to the wall clock: a window's result cannot come before the
    wall-clock moment its end happens, so ``lag`` is never negative (a replay that does not
    wait has lags of minus the stream's length). Slower machines only add lag or drop hops."""
    run = replay(media["video_ends"], trained_bundle, tmp_path, pace="--realtime")
    assert run.code == 0, run.stderr
    assert run.summary is not None and run.summary["info"]["paced"] == "realtime"
    assert run.lines
    anchors = []
    for line in run.lines:
        lag_s = line["latency_ms"]["lag"] / MS_PER_S
        assert lag_s >= -PACING_SLACK_S, line
        # wall_time - lag is when stream time t happened: one moment for the whole run.
        anchors.append(line["wall_time"] - lag_s - line["t"])
    assert max(anchors) - min(anchors) < ANCHOR_SLACK_S
    # A window that is not written was counted: dropped hops fill every hole in `window`.
    c = run.lines[-1]["counters"]
    holes = len(set(range(5, run.lines[-1]["window"] + 1)) - set(windows_of(run)))
    assert holes == c["hops_dropped"] + c["windows_without_media"] + c["windows_invalid"]
    assert len(run.lines) + run.summary["counters"]["hops_dropped"] == 16


PACING_SLACK_S = 0.05
"""Sleep granularity of the pacing (it polls) and the rounding of ``wall_time``."""
ANCHOR_SLACK_S = 0.25
"""``lag`` and ``wall_time`` are read a moment apart; on a loaded machine the process can be
descheduled in between."""


def test_non_finite_model_output_is_counted_skipped_and_never_smoothed(
        runs: dict[str, Run], media: dict[str, Path], trained_bundle: Path,
        tmp_path: Path) -> None:
    faulty = with_nan_output(trained_bundle, tmp_path / "nan-bundle", "head", "final_probs")
    run = replay(media["video_ends"], faulty, tmp_path, name="nan")
    assert run.code == 0, run.stderr
    clean = runs["video_ends"]
    fused = [line for line in clean.lines if line["branch"] == "final"]
    assert len(fused) == 9  # see test_a_modality_that_ends_changes_branch_and_is_counted
    # Every fused window is skipped; the audio-only ones are written as in the clean run.
    assert windows_of(run) == [line["window"] for line in clean.lines if line["branch"] == "audio"]
    for got, want in zip(run.lines, clean.lines[9:], strict=True):
        assert got["raw_probs"] == want["raw_probs"]
    # Nothing non-finite reached the smoother: the first line written is its first window.
    assert run.lines[0]["probs"] == run.lines[0]["raw_probs"]
    assert run.lines[-1]["counters"]["windows_invalid"] == 9
    assert run.summary is not None and run.summary["counters"]["windows_invalid"] == 9
    assert run.summary["counters"]["windows"] == 7
    assert "non-finite" in run.stderr


def test_frames_encoded_counts_frames_of_invalid_windows_too(media: dict[str, Path],
                                                             trained_bundle: Path,
                                                             tmp_path: Path) -> None:
    faulty = with_nan_output(trained_bundle, tmp_path / "nan-bundle", "head", "final_probs")
    run = replay(media["video_ends"], faulty, tmp_path, name="nan")
    assert run.summary is not None
    c = run.summary["counters"]
    assert c["frames_encoded"] == c["frames_sampled"] == FRAMES_WHILE_VIDEO_LASTS
