"""Export: checkpoint -> bundle, and the proof that ONNX Runtime computes what PyTorch computes.

A SMALL-config AVSceneNet with fixed random weights is saved with the real save_checkpoint and
exported by the real exporter; ORT (CPU) and torch then see the same windows.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from cli_run import avstream, module

from avstream.bundle import schema
from avstream.bundle.loader import load_bundle, sha256_file
from avstream.scenes import SCENES
from export.bundle_writer import ExportOptions, export_bundle
from export.onnx_export import export_graph
from export.parity import FP32_PROB_ATOL, BundleRunner, compare_bundle_to_checkpoint, random_windows
from export.quantize import frontend_nodes, load_split_windows
from training.checkpoint import Checkpoint, save_checkpoint
from training.config import SMALL, ModelConfig
from training.model import AVSceneNet

MODEL_SEED = 7
PARITY_WINDOWS = 12
METRICS = {"val_accuracy": 0.42, "val_loss": 1.7}
DATA = {"root": "synthetic", "fold": 1, "train_clips": 20}


def _save_small_checkpoint(path: Path) -> Path:
    torch.manual_seed(MODEL_SEED)
    model = AVSceneNet(SMALL)
    save_checkpoint(path, Checkpoint(config=SMALL, state_dict=model.state_dict(), step="finetune",
                                     metrics=dict(METRICS), data=dict(DATA)))
    return path


@pytest.fixture(scope="module")
def small_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _save_small_checkpoint(tmp_path_factory.mktemp("ckpt") / "small.ckpt")


@pytest.fixture(scope="module")
def fp32_bundle(small_ckpt: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bundles") / "fp32"
    export_bundle(small_ckpt, out, ExportOptions())
    return out


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real TAU-layout folder (WAV + H.264) from the synthetic generator, kept tiny."""
    from training.synth.dataset import write_synthetic_dataset

    root = tmp_path_factory.mktemp("data") / "synth"
    write_synthetic_dataset(root, clips_per_class=2, seed=3, seconds=2)
    return root


def _op_types(path: Path) -> set[str]:
    return {n.op_type for n in onnx.load(str(path)).graph.node}


# ------------------------------------------------------------------------------------ fp32


def test_fp32_matches_torch_on_every_output(fp32_bundle: Path, small_ckpt: Path) -> None:
    windows = random_windows(SMALL, PARITY_WINDOWS, seed=11)
    report = compare_bundle_to_checkpoint(fp32_bundle, small_ckpt, windows)
    assert report.windows == PARITY_WINDOWS
    assert report.checkpoint_matches
    assert set(report.outputs) == {"final", "early", "audio", "visual"}
    for name, out in report.outputs.items():
        assert out.max_abs_diff <= FP32_PROB_ATOL, (name, out)
        assert out.disagreements == 0 and out.label_agreement == 1.0, (name, out)
    assert report.passes()


def test_parity_detects_a_different_model(fp32_bundle: Path, tmp_path: Path) -> None:
    """The comparison can fail: other weights give other probabilities."""
    torch.manual_seed(MODEL_SEED + 1)
    other = tmp_path / "other.ckpt"
    save_checkpoint(other, Checkpoint(config=SMALL, state_dict=AVSceneNet(SMALL).state_dict()))
    report = compare_bundle_to_checkpoint(fp32_bundle, other, random_windows(SMALL, 4, seed=1))
    assert not report.checkpoint_matches
    assert not report.passes()
    assert report.max_abs_diff > 1e-3


def test_every_graph_has_a_dynamic_batch_axis(fp32_bundle: Path) -> None:
    bundle = load_bundle(fp32_bundle)
    runner = BundleRunner(bundle)
    for name, session in runner.sessions.items():
        for arg in (*session.get_inputs(), *session.get_outputs()):
            assert isinstance(arg.shape[0], str), (name, arg.name, arg.shape)
    windows = random_windows(SMALL, 3, seed=2)
    for batch in (1, 3):
        waves = np.stack([w[0] for w in windows[:batch]])
        frames = np.stack([w[1] for w in windows[:batch]])
        out = runner.run(waves, frames)
        for probs in out.values():
            assert probs.shape == (batch, SMALL.n_classes)
            np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)


def test_audio_graph_has_no_stft_op_and_frame_graph_takes_uint8(fp32_bundle: Path) -> None:
    ops = _op_types(fp32_bundle / "audio.onnx")
    assert not ops & {"STFT", "DFT"}
    assert "Conv" in ops
    graph = onnx.load(str(fp32_bundle / "frame.onnx")).graph
    assert graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8
    assert not any(n.op_type == "Resize" for n in graph.node)  # resizing stays outside


def test_manifest_describes_the_model(fp32_bundle: Path, small_ckpt: Path) -> None:
    m = load_bundle(fp32_bundle).manifest
    assert (m.format, m.format_version, m.variant) == (schema.FORMAT_NAME, 2, "fp32")
    assert m.frontend == SMALL.frontend == schema.FRONTEND_V2
    assert m.classes == SCENES
    assert (m.audio.sample_rate, m.audio.channels, m.audio.window_samples) == (16000, 2, 16000)
    assert (m.video.frames_per_window, m.video.frame_width, m.video.frame_height) == (5, 64, 64)
    assert m.video.pixel_format == "rgb24"
    for name in schema.GRAPHS:
        g = m.graphs[name]
        assert g.file == f"{name}.onnx" and g.precision == "fp32"
        assert m.files[g.file] == sha256_file(fp32_bundle / g.file)
        assert tuple(t.name for t in g.inputs) == schema.GRAPH_IO[name][0]
    assert m.graphs["head"].inputs[0].shape == ("batch", 5, SMALL.frame_feature_dim)
    assert m.export.opset >= 17
    assert set(m.export.exporters) == set(schema.GRAPHS)
    assert m.export.exporter == "dynamo"
    assert {"torch", "onnx", "onnxruntime", "onnxscript"} <= set(m.export.versions)
    assert m.export.check["windows"] > 0 and m.export.check["max_abs_diff"] <= FP32_PROB_ATOL
    p = m.provenance
    assert p.checkpoint_sha256 == sha256_file(small_ckpt)
    assert ModelConfig.from_dict(json.loads(json.dumps(dict(p.config), default=list))) == SMALL
    assert dict(p.metrics) == METRICS and dict(p.training_data) == DATA
    assert m.quantization is None
    raw = json.loads((fp32_bundle / "manifest.json").read_text())
    assert raw["format_version"] == 2 and raw["variant"] == "fp32"
    assert raw["frontend"] == schema.FRONTEND_V2


def test_shipped_graphs_carry_no_local_paths(fp32_bundle: Path) -> None:
    model = onnx.load(str(fp32_bundle / "audio.onnx"))
    assert all(len(n.metadata_props) == 0 for n in model.graph.node)


def test_legacy_exporter_fallback_keeps_dynamic_batch(tmp_path: Path) -> None:
    torch.manual_seed(MODEL_SEED)
    model = AVSceneNet(SMALL).eval()
    for name in ("head", "audio"):
        g = export_graph(name, model, tmp_path / f"{name}.onnx", exporters=("legacy",))
        assert g.exporter == "legacy" and g.max_abs_diff < 1e-5
    # The front end is found by the legacy exporter's node names too (never converted blindly).
    keep = frontend_nodes(onnx.load(str(tmp_path / "audio.onnx")))
    assert keep and all("/frontend/" in n for n in keep)


# ------------------------------------------------------------------------------- variants


def test_int8_is_calibrated_on_data_and_reports_its_cost(small_ckpt: Path, tiny_data: Path,
                                                        tmp_path: Path) -> None:
    out = tmp_path / "int8"
    cache = tmp_path / "cache"
    result = export_bundle(small_ckpt, out, ExportOptions(
        variant="int8", data_dir=tiny_data, calibration_windows=16, evaluation_windows=20,
        cache_dir=cache))
    m = load_bundle(out).manifest
    assert m.variant == "int8"
    assert {n: g.precision for n, g in m.graphs.items()} == {"audio": "int8", "frame": "int8",
                                                             "head": "fp32"}
    q = m.quantization
    assert q is not None
    assert q.calibration_split == "train" and q.calibration_windows == 16
    assert q.evaluation_split == "evaluate" and q.evaluation_windows == 20
    assert q.accuracy_fp32 is not None and q.accuracy_variant is not None
    assert q.accuracy_change == pytest.approx(q.accuracy_variant - q.accuracy_fp32)
    assert "QuantizeLinear" in _op_types(out / "frame.onnx")
    # The STFT conv keeps float weights: no DequantizeLinear feeds the first Conv of audio.onnx.
    audio = onnx.load(str(out / "audio.onnx")).graph
    produced_by = {o: n.op_type for n in audio.node for o in n.output}
    first_conv = next(n for n in audio.node if n.op_type == "Conv")
    assert all(produced_by.get(i) != "DequantizeLinear" for i in first_conv.input)
    # The figures written in the manifest, recomputed here without the exporter's parity code:
    # plain ONNX Runtime sessions on the three graphs, composed by hand, against torch.
    windows = load_split_windows(tiny_data, "evaluate", SMALL, 20, cache)
    got, want, labels = _int8_and_torch_final_probs(out, windows)
    assert len(labels) == 20
    agreement = float(np.mean(got.argmax(1) == want.argmax(1)))
    assert agreement == pytest.approx(q.label_agreement)
    assert float(np.mean(want.argmax(1) == labels)) == pytest.approx(q.accuracy_fp32)
    assert float(np.mean(got.argmax(1) == labels)) == pytest.approx(q.accuracy_variant)
    assert result.parity.label_agreement == pytest.approx(q.label_agreement)
    # int8 computes the same function, not a constant: its probabilities move with the input
    # as torch's do, and stay close to them.
    assert np.abs(got - want).max() < INT8_PROB_ATOL
    spread_got, spread_want = got.std(axis=0).mean(), want.std(axis=0).mean()
    assert spread_want > 0 and spread_got > 0.5 * spread_want
    assert np.corrcoef(got.ravel(), want.ravel())[0, 1] > INT8_MIN_CORRELATION
    print(f"int8 label agreement {agreement:.3f}, max |diff| {np.abs(got - want).max():.3g}")


INT8_PROB_ATOL = 0.1
INT8_MIN_CORRELATION = 0.9


def _int8_and_torch_final_probs(bundle: Path, windows: list, suffix: str = "") -> tuple[
        np.ndarray, np.ndarray, np.ndarray]:
    """Final probabilities of ``bundle`` (onnxruntime, graphs composed here; ``suffix`` ".int8"
    for an extra precision's files) and of the model it was exported from (torch, rebuilt from
    its seed) on ``windows``, and their labels."""
    import onnxruntime as ort

    sessions = {g: ort.InferenceSession(str(bundle / f"{g}{suffix}.onnx"),
                                        providers=["CPUExecutionProvider"])
                for g in ("audio", "frame", "head")}
    torch.manual_seed(MODEL_SEED)  # the model _save_small_checkpoint saved
    model = AVSceneNet(SMALL).eval()
    got, want, labels = [], [], []
    for w in windows:
        wave, frames, label = np.asarray(w[0], np.float32), np.asarray(w[1], np.uint8), int(w[2])
        audio_probs, audio_steps = sessions["audio"].run(
            ["audio_probs", "audio_steps"], {"waveform": wave[None]})
        feats = sessions["frame"].run(["frame_features"], {"frames": frames})[0]
        final = sessions["head"].run(["final_probs"], {
            "frame_features": feats[None], "audio_steps": audio_steps,
            "audio_probs": audio_probs})[0]
        got.append(final[0])
        with torch.no_grad():
            want.append(model(torch.from_numpy(wave[None]), torch.from_numpy(frames[None]))
                        .final[0].numpy())
        labels.append(label)
    return np.array(got), np.array(want), np.array(labels)


@pytest.fixture(scope="module")
def fp32_int8_bundle(small_ckpt: Path, tiny_data: Path,
                     tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """fp32 graphs with int8 ones beside them in one bundle, and the clip cache it used."""
    work = tmp_path_factory.mktemp("multi")
    export_bundle(small_ckpt, work / "bundle", ExportOptions(
        variant="fp32", extra=("int8",), data_dir=tiny_data, calibration_windows=8,
        evaluation_windows=MULTI_EVALUATION_WINDOWS, cache_dir=work / "cache"))
    return work / "bundle", work / "cache"


MULTI_EVALUATION_WINDOWS = 12


def test_each_precision_records_its_own_agreement_and_timings(
        fp32_int8_bundle: tuple[Path, Path], tiny_data: Path) -> None:
    bundle, cache = fp32_int8_bundle
    m = load_bundle(bundle).manifest
    q = m.variants["int8"].quantization
    # int8's figures are int8's own: recomputed here on its files, not fp32's copied over.
    windows = load_split_windows(tiny_data, "evaluate", SMALL, MULTI_EVALUATION_WINDOWS, cache)
    got, want, labels = _int8_and_torch_final_probs(bundle, windows, suffix=".int8")
    assert q.evaluation_windows == len(labels) == MULTI_EVALUATION_WINDOWS
    assert q.label_agreement == pytest.approx(float(np.mean(got.argmax(1) == want.argmax(1))))
    assert q.max_abs_diff == pytest.approx(float(np.abs(got - want).max()), rel=1e-3)
    assert q.accuracy_variant == pytest.approx(float(np.mean(got.argmax(1) == labels)))
    assert q.accuracy_fp32 == pytest.approx(float(np.mean(want.argmax(1) == labels)))
    assert m.export.check["max_abs_diff"] <= FP32_PROB_ATOL < q.max_abs_diff
    # Every graph of both precisions timed on this machine, as a live hop runs them.
    t = m.timings
    assert t is not None and t.provider == "CPUExecutionProvider" and t.batch == 1
    assert {g: set(by) for g, by in t.median_ms.items()} == {
        g: {"fp32", "int8"} for g in ("audio", "frame", "head")}
    assert all(ms > 0 for by in t.median_ms.values() for ms in by.values())


def test_an_altered_extra_precision_graph_is_refused_by_every_loader(
        fp32_int8_bundle: tuple[Path, Path], tmp_path: Path) -> None:
    """The checksum of every file is verified, the extra precisions' graphs included, even by a
    run that would not use them."""
    import shutil

    from avstream.driver import open_engine
    from avstream.errors import BundleError

    bundle = tmp_path / "bundle"
    shutil.copytree(fp32_int8_bundle[0], bundle)
    altered = onnx.load(str(bundle / "frame.int8.onnx"))  # still a graph ORT loads and runs
    altered.doc_string += " (altered after export)"
    onnx.save(altered, str(bundle / "frame.int8.onnx"))
    with pytest.raises(BundleError, match=r"frame\.int8\.onnx: sha256 mismatch"):
        load_bundle(bundle)
    with pytest.raises(BundleError, match=r"frame\.int8\.onnx: sha256 mismatch"):
        open_engine(bundle, provider="cpu", precision="fp32")
    info = avstream("info", str(bundle))
    _one_line_error(info, "frame.int8.onnx", "sha256 mismatch")
    assert info.stdout == ""


def test_fp16_keeps_front_end_and_io_in_fp32(small_ckpt: Path, tmp_path: Path) -> None:
    out = tmp_path / "fp16"
    export_bundle(small_ckpt, out, ExportOptions(variant="fp16"))
    m = load_bundle(out).manifest
    assert {n: g.precision for n, g in m.graphs.items()} == {"audio": "fp16", "frame": "fp16",
                                                             "head": "fp32"}
    audio = onnx.load(str(out / "audio.onnx")).graph
    inits = {i.name: i.data_type for i in audio.initializer}
    first_conv = next(n for n in audio.node if n.op_type == "Conv")
    assert inits[first_conv.input[1]] == onnx.TensorProto.FLOAT  # the STFT kernel
    assert onnx.TensorProto.FLOAT16 in inits.values()  # the blocks were converted
    assert audio.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    # The waveform enters the front end as float32, never through an fp16 cast.
    assert not any(n.op_type == "Cast" and "waveform" in n.input for n in audio.node)
    report = compare_bundle_to_checkpoint(out, small_ckpt, random_windows(SMALL, 8, seed=4))
    assert report.label_agreement == 1.0 and report.max_abs_diff < 1e-2
    assert m.quantization is not None and m.quantization.label_agreement == 1.0


# ------------------------------------------------------------------------------------ CLI


def _run_export(*args: str) -> subprocess.CompletedProcess[str]:
    return module("export", *args)


def _one_line_error(proc: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for needle in needles:
        assert needle in lines[0]


def test_cli_help() -> None:
    proc = _run_export("--help")
    assert proc.returncode == 0
    assert "--int8" in proc.stdout and "--calibrate" in proc.stdout and "--fp16" in proc.stdout


def test_cli_missing_checkpoint(tmp_path: Path) -> None:
    missing = tmp_path / "nope.ckpt"
    _one_line_error(_run_export(str(missing), str(tmp_path / "out")), str(missing), "no such file")
    assert not (tmp_path / "out").exists()


def test_cli_unreadable_checkpoint(tmp_path: Path) -> None:
    bad = tmp_path / "garbage.ckpt"
    bad.write_bytes(b"this is not a checkpoint")
    _one_line_error(_run_export(str(bad), str(tmp_path / "out")), str(bad))
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    _one_line_error(_run_export(str(foreign), str(tmp_path / "out")), str(foreign),
                    "not an avstream checkpoint")
    pickled = tmp_path / "pickled.pt"
    torch.save({"format": "avstream-checkpoint", "obj": ValueError("x")}, pickled)
    _one_line_error(_run_export(str(pickled), str(tmp_path / "out")), str(pickled))


def test_cli_option_errors(small_ckpt: Path, tmp_path: Path) -> None:
    _one_line_error(_run_export(str(small_ckpt), str(tmp_path / "a"), "--int8"), "--calibrate")
    _one_line_error(_run_export(str(small_ckpt), str(tmp_path / "b"), "--int8", "--fp16"), "--fp16")
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    _one_line_error(_run_export(str(small_ckpt), str(busy)), str(busy), "--force")
    assert (busy / "notes.txt").read_text() == "mine"
