"""``avstream batch``: an archive folder with a corrupt file, resumed runs, and the JSON lines
of each file equal to a single ``replay --fast`` of it."""

from __future__ import annotations

import csv
import json
import subprocess
from pathlib import Path

import pytest
from cli_run import avstream
from streams_env import read_records, replay_fast, three_streams  # noqa: F401

from avstream.batch import RESULT_SUFFIX, FileResult, expand_inputs, output_names
from avstream.errors import EXIT_OK, EXIT_USAGE

BATCH_TIMEOUT_S = 180


def run_batch(*args: str) -> subprocess.CompletedProcess[str]:
    return avstream("batch", *args, timeout=BATCH_TIMEOUT_S)


def summary_rows(out: Path) -> dict[str, dict[str, str]]:
    with (out / "summary.csv").open(newline="") as f:
        return {Path(r["file"]).name: r for r in csv.DictReader(f)}


@pytest.fixture()
def archive(tmp_path: Path, three_streams: list[Path]) -> Path:  # noqa: F811
    """A folder: two good recordings (one in a sub-folder), a truncated one, a text file."""
    root = tmp_path / "archive"
    (root / "day2").mkdir(parents=True)
    (root / "a.mp4").write_bytes(three_streams[0].read_bytes())
    (root / "day2" / "b.mp4").write_bytes(three_streams[1].read_bytes())
    (root / "corrupt.mp4").write_bytes(three_streams[2].read_bytes()[:4096])
    (root / "notes.txt").write_text("not media\n")
    return root


def test_batch_labels_a_folder_records_the_corrupt_file_and_resumes(
        archive: Path, tiny_bundle: Path, tmp_path: Path) -> None:
    out = tmp_path / "labels"
    r = run_batch(str(archive), "--model", str(tiny_bundle), "--out", str(out), "--workers", "2")
    assert r.returncode == EXIT_USAGE, r.stderr
    assert "Traceback" not in r.stderr
    rows = summary_rows(out)
    assert set(rows) == {"a.mp4", "b.mp4", "corrupt.mp4"}  # notes.txt is not media
    bad = rows["corrupt.mp4"]
    assert "corrupt.mp4" in bad["error"] and bad["windows"] == "0"
    for name in ("a.mp4", "b.mp4"):
        row = rows[name]
        assert row["error"] == ""
        assert float(row["seconds"]) == pytest.approx(6.0, abs=0.1)
        windows = int(row["windows"])
        labels = [rec["label"] for rec in read_records(out / f"{name}.jsonl")]
        assert windows == len(labels) > 20
        assert row["majority_label"] == max(sorted(set(labels)), key=labels.count)
        shares = {k[len("share_"):]: float(v) for k, v in row.items() if k.startswith("share_")}
        assert sum(shares.values()) == pytest.approx(1.0, abs=1e-3)
        assert shares[row["majority_label"]] == pytest.approx(
            labels.count(row["majority_label"]) / windows, abs=1e-4)
    # Each file's JSON lines are those of a single `replay --fast` of it.
    assert read_records(out / "a.mp4.jsonl") == replay_fast(archive / "a.mp4", tiny_bundle,
                                                            tmp_path / "a.replay.jsonl")

    # Resume: b.mp4 cut off half-way (its result gone, a partial .part left), a.mp4 done.
    a_mtime = (out / "a.mp4.jsonl").stat().st_mtime_ns
    (out / f"b.mp4{RESULT_SUFFIX}").unlink()
    (out / "b.mp4.jsonl").rename(out / "b.mp4.jsonl.part")
    r2 = run_batch(str(archive), "--model", str(tiny_bundle), "--out", str(out))
    assert r2.returncode == EXIT_USAGE, r2.stderr
    assert "1 already done, 2 to label" in r2.stderr
    assert (out / "a.mp4.jsonl").stat().st_mtime_ns == a_mtime
    assert not (out / "b.mp4.jsonl.part").exists()
    assert summary_rows(out)["b.mp4"]["windows"] == rows["b.mp4"]["windows"]

    # Without the corrupt file: everything done, exit 0, nothing relabelled.
    (archive / "corrupt.mp4").unlink()
    r3 = run_batch(str(archive), "--model", str(tiny_bundle), "--out", str(out))
    assert r3.returncode == EXIT_OK, r3.stderr
    assert "2 already done, 0 to label" in r3.stderr


def test_batch_rejects_a_missing_input_in_one_line(tiny_bundle: Path, tmp_path: Path) -> None:
    r = run_batch(str(tmp_path / "nope"), "--model", str(tiny_bundle), "--out", str(tmp_path))
    assert r.returncode == EXIT_USAGE
    assert r.stderr.strip().splitlines() == [
        f"avstream: error: input {tmp_path / 'nope'} does not exist; expected media files or "
        f"folders"]


def test_output_names_tell_apart_inputs_with_the_same_name(tmp_path: Path) -> None:
    for d in ("x", "y"):
        (tmp_path / d).mkdir()
        (tmp_path / d / "clip.wav").write_bytes(b"")
    files = expand_inputs([tmp_path])
    names = output_names(files)
    assert len(set(names.values())) == 2
    assert all(n.startswith("clip.wav-") for n in names.values())
    assert output_names(files) == names  # the same on a rerun


def test_result_rows_share_and_majority() -> None:
    r = FileResult(file="f.mp4", seconds=2.0, windows=4, labels={"park": 3, "unknown": 1})
    row = r.row(("park", "tram"))
    assert (row["majority_label"], row["share_park"], row["share_tram"], row["share_unknown"]) \
        == ("park", 0.75, 0.0, 0.25)
    assert json.loads(json.dumps(row))["error"] == ""
