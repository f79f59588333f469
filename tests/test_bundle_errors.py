"""A bad bundle is refused by the real ``avstream info`` before anything else starts: one line on
stderr naming the file and the problem, exit code 2, no traceback, nothing on stdout.

The session's real SMALL bundle (``tiny_bundle``) is the good one; each case copies it and breaks
one thing.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cli_run import avstream

from avstream.bundle.loader import load_bundle, sha256_file
from avstream.errors import EXIT_USAGE, BundleError
from training.config import SMALL


@pytest.fixture(scope="module")
def good_bundle(tiny_bundle: Path) -> Path:
    """The session's untrained SMALL bundle (real exporter), never changed here."""
    return tiny_bundle


@pytest.fixture
def bundle(good_bundle: Path, tmp_path: Path) -> Path:
    """A private copy to break."""
    return Path(shutil.copytree(good_bundle, tmp_path / "bundle"))


def _info(path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return avstream("info", str(path), *args)


def _edit_manifest(bundle: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    path = bundle / "manifest.json"
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data, indent=2))


def _assert_refused(bundle: Path, file_name: str, *words: str) -> str:
    proc = _info(bundle)
    assert proc.returncode == EXIT_USAGE, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    line = lines[0]
    assert file_name in line, line
    for word in words:
        assert word in line, line
    assert proc.stdout == ""  # refused before anything is printed
    # The library raises the same single-line BundleError the CLI printed.
    with pytest.raises(BundleError) as err:
        load_bundle(bundle)
    assert str(err.value) in line and "\n" not in str(err.value)
    return line


def test_good_bundle_verifies_and_prints_json(good_bundle: Path) -> None:
    proc = _info(good_bundle, "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["verified"] is True
    assert data["variant"] == "fp32" and len(data["classes"]) == SMALL.n_classes
    assert data["files"]["frame.onnx"] == sha256_file(good_bundle / "frame.onnx")
    human = _info(good_bundle)
    assert human.returncode == 0
    assert "airport" in human.stdout and "[batch, 2, 16000]" in human.stdout


def test_info_imports_no_torch(good_bundle: Path) -> None:
    code = (
        "import sys\n"
        f"sys.argv = ['avstream', 'info', {str(good_bundle)!r}, '--json']\n"
        "from avstream.cli import main\n"
        "try:\n    main()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
        "bad = sorted(m for m in sys.modules if m == 'torch' or m.startswith(('torch.', 'onnx.')))\n"
        "print('HEAVY', bad)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "HEAVY []" in proc.stdout


def test_missing_manifest(bundle: Path) -> None:
    (bundle / "manifest.json").unlink()
    _assert_refused(bundle, "manifest.json", "missing")


def test_not_a_directory(tmp_path: Path) -> None:
    nowhere = tmp_path / "no-bundle-here"
    _assert_refused(nowhere, "no-bundle-here", "not a bundle directory")


def test_manifest_not_json(bundle: Path) -> None:
    (bundle / "manifest.json").write_text("{not json")
    _assert_refused(bundle, "manifest.json", "not valid JSON")


@pytest.mark.parametrize("graph_file", ["audio.onnx", "frame.onnx", "head.onnx"])
def test_missing_graph_file(bundle: Path, graph_file: str) -> None:
    (bundle / graph_file).unlink()
    _assert_refused(bundle, graph_file, "missing")


def test_checksum_mismatch(bundle: Path) -> None:
    with open(bundle / "head.onnx", "ab") as f:
        f.write(b"\0")
    _assert_refused(bundle, "head.onnx", "sha256 mismatch")


def test_unknown_format_version(bundle: Path) -> None:
    _edit_manifest(bundle, lambda d: d.update(format_version=99))
    _assert_refused(bundle, "manifest.json", "format_version 99", "not supported")


def test_unknown_format_name(bundle: Path) -> None:
    _edit_manifest(bundle, lambda d: d.update(format="something-else"))
    _assert_refused(bundle, "manifest.json", "something-else")


def test_class_count_differs_from_graph(bundle: Path) -> None:
    _edit_manifest(bundle, lambda d: d.update(classes=d["classes"][:-1]))
    line = _assert_refused(bundle, "audio.onnx", "10 classes", "9 classes")
    assert "audio_probs" in line


def test_class_count_differs_in_a_later_graph(bundle: Path) -> None:
    """Only the head's outputs disagree (manifest and the other graphs say 10)."""
    def edit(d: dict[str, Any]) -> None:
        for out in d["graphs"]["head"]["outputs"]:
            out["shape"] = ["batch", 12]
    _edit_manifest(bundle, edit)
    _assert_refused(bundle, "head.onnx", "visual_probs", "[batch, 12]")


def test_graph_input_shape_differs_from_manifest(bundle: Path) -> None:
    """The manifest claims 32x32 frames (consistently) but frame.onnx takes 64x64."""
    def edit(d: dict[str, Any]) -> None:
        d["video"]["frame_width"] = d["video"]["frame_height"] = 32
        d["graphs"]["frame"]["inputs"][0]["shape"] = ["batch", 32, 32, 3]
    _edit_manifest(bundle, edit)
    _assert_refused(bundle, "frame.onnx", "'frames'", "[batch, 64, 64, 3]", "[batch, 32, 32, 3]")


def test_graph_input_dtype_differs_from_manifest(bundle: Path) -> None:
    _edit_manifest(bundle, lambda d: d["graphs"]["frame"]["inputs"][0].update(dtype="float32"))
    _assert_refused(bundle, "frame.onnx", "'frames'", "uint8", "float32")


def test_graph_inputs_differ_from_manifest(bundle: Path) -> None:
    """frame.onnx replaced by another graph (its checksum updated): its inputs are not frames."""
    shutil.copyfile(bundle / "audio.onnx", bundle / "frame.onnx")
    _edit_manifest(bundle, lambda d: d["files"].update({"frame.onnx": sha256_file(bundle / "frame.onnx")}))
    _assert_refused(bundle, "frame.onnx", "waveform", "frames")


def test_manifest_names_do_not_follow_the_contract(bundle: Path) -> None:
    _edit_manifest(bundle, lambda d: d["graphs"]["audio"]["inputs"][0].update(name="wave"))
    _assert_refused(bundle, "manifest.json", "graphs.audio.inputs", "waveform")


def test_manifest_field_of_wrong_type(bundle: Path) -> None:
    _edit_manifest(bundle, lambda d: d["audio"].update(sample_rate="16k"))
    _assert_refused(bundle, "manifest.json", "audio.sample_rate", "16k")


def test_unloadable_graph_with_matching_checksum(bundle: Path) -> None:
    (bundle / "head.onnx").write_bytes(b"not an onnx graph")
    _edit_manifest(bundle, lambda d: d["files"].update({"head.onnx": sha256_file(bundle / "head.onnx")}))
    _assert_refused(bundle, "head.onnx", "not a loadable ONNX graph")
