"""Precisions in one bundle and the daemon's ``--precision``: auto picks int8 on the CPU and fp16
on CUDA when the bundle ships them, says which ran, and a missing one is an error, never a
quiet substitute."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from avstream.errors import EXIT_USAGE, BundleError
from avstream.inference.precision import choose_precision
from avstream.inference.session import CUDA

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def two_precisions(tiny_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model exported once more with fp32 and fp16 graphs in one bundle."""
    out = tmp_path_factory.mktemp("prec") / "bundle"
    ckpt = tiny_bundle.parent / "tiny.ckpt"
    subprocess.run([sys.executable, "-m", "export", str(ckpt), str(out), "--precisions",
                    "fp32,fp16"], check=True, capture_output=True, text=True, cwd=REPO)
    return out


class Shipped:
    """What ``choose_precision`` reads of a bundle: its folder and its precisions."""

    def __init__(self, *precisions: str) -> None:
        self.root = Path("/bundles/b")
        self._p = {p: {"audio": Path(f"audio.{p}.onnx")} for p in precisions}

    def precisions(self) -> dict[str, dict[str, Path]]:
        return self._p


def test_auto_prefers_int8_on_the_cpu_and_fp16_on_cuda() -> None:
    assert choose_precision(Shipped("fp32", "int8", "fp16"), "auto", "cpu").precision == "int8"
    assert choose_precision(Shipped("fp32", "fp16"), "auto", "cpu").precision == "fp32"
    assert choose_precision(Shipped("fp32", "int8"), "fp32", "cpu").precision == "fp32"
    if CUDA in __import__("onnxruntime").get_available_providers():
        assert choose_precision(Shipped("fp32", "int8", "fp16"), "auto", "cuda").precision == "fp16"
    with pytest.raises(BundleError, match=r"has no int8 graphs \(it ships fp32, fp16\)"):
        choose_precision(Shipped("fp32", "fp16"), "int8", "cpu")
    with pytest.raises(BundleError, match="precision 'int4'"):
        choose_precision(Shipped("fp32"), "int4", "cpu")


def test_one_bundle_carries_each_precision_with_its_measured_agreement(two_precisions: Path) -> None:
    m = json.loads((two_precisions / "manifest.json").read_text())
    assert m["variant"] == "fp32"
    fp16 = m["variants"]["fp16"]
    assert {g["file"] for g in fp16["graphs"].values()} <= set(m["files"])
    assert fp16["graphs"]["frame"]["precision"] == "fp16"
    assert 0.9 <= fp16["quantization"]["label_agreement"] <= 1.0
    assert fp16["quantization"]["evaluation_windows"] > 0


def test_the_daemon_says_which_precision_ran(two_precisions: Path, tmp_path: Path) -> None:
    from replay_helpers import write_media

    clip = write_media(tmp_path / "p.mp4", seconds=1.4)
    runs = {}
    for precision in ("auto", "fp16"):
        r = subprocess.run([sys.executable, "-m", "avstream", "replay", str(clip), "--model",
                            str(two_precisions), "--precision", precision, "--jsonl", "-"],
                           capture_output=True, text=True, cwd=REPO, timeout=300)
        assert r.returncode == 0, r.stderr
        runs[precision] = r
    assert "CPUExecutionProvider, fp32," in runs["auto"].stderr  # no int8 in this bundle
    assert "CPUExecutionProvider, fp16," in runs["fp16"].stderr
    missing = subprocess.run([sys.executable, "-m", "avstream", "replay", str(clip), "--model",
                              str(two_precisions), "--precision", "int8"],
                             capture_output=True, text=True, cwd=REPO, timeout=300)
    assert missing.returncode == EXIT_USAGE
    lines = missing.stderr.strip().splitlines()
    assert len(lines) == 1 and "has no int8 graphs" in lines[0] and "Traceback" not in missing.stderr
