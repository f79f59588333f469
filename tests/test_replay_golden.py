"""One way to run a stream: the command line and the library give the same JSON lines.

``avstream replay --fast --jsonl -`` must print, byte for byte apart from the clock fields
(``latency_ms``, ``wall_time``), the lines that ``avstream.driver.drive`` writes when a program
calls it with the same file and model. The recordings cover a whole multi-scene stream on the
trained model, a short H.264 + AAC clip, and a file whose video ends before its audio. No
golden file is committed: the models are built by the test session and their floats depend on
the CPU, so the reference is the library run on the same machine.

A ``Pipeline`` also gives the same lines and summary when ``run()`` twice on one file: every
run starts from a fresh smoother, counters and reporter.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from crafted_media import frame_times, write_crafted
from replay_helpers import VOLATILE, Collect, cli

from avstream.driver import drive, open_engine
from avstream.outputs.jsonl import JsonlSink
from avstream.sources.media_file import MediaFileSource
from avstream.stream.pipeline import Pipeline, PipelineConfig


def without_clock(line: str) -> str:
    """The line re-serialised as the sink writes it, without the clock-dependent fields."""
    d = json.loads(line)
    for key in VOLATILE:
        del d[key]
    return json.dumps(d, separators=(",", ":"), allow_nan=False)


@pytest.fixture(scope="module")
def video_ends(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Audio 0-4 s, video 0-2 s: fused windows, then audio-only ones."""
    return write_crafted(tmp_path_factory.mktemp("golden") / "video_ends.mkv",
                         audio=[(0.0, 4.0)], frames=frame_times(0.0, 2.0, 10))


@pytest.mark.parametrize("case", ["stream", "clip", "video_ends"])
def test_cli_lines_equal_the_library_run(case: str, request: pytest.FixtureRequest,
                                         tmp_path: Path) -> None:
    if case == "stream":
        media, bundle = request.getfixturevalue("synth_stream")[0], "trained_bundle"
    elif case == "clip":
        media, bundle = request.getfixturevalue("av_file"), "tiny_bundle"
    else:
        media, bundle = request.getfixturevalue("video_ends"), "trained_bundle"
    model = request.getfixturevalue(bundle)
    done = cli("replay", str(media), "--model", str(model), "--fast", "--jsonl", "-")
    assert done.returncode == 0, done.stderr
    from_cli = [without_clock(line) for line in done.stdout.splitlines()]

    path = tmp_path / "library.jsonl"
    drive(MediaFileSource(media), open_engine(model), PipelineConfig(), [JsonlSink(path)])
    from_library = [without_clock(line) for line in path.read_text().splitlines()]

    assert len(from_cli) > 10
    assert from_cli == from_library


def test_two_runs_of_one_pipeline_give_equal_lines_and_summaries(trained_bundle: Path,
                                                                 synth_stream: tuple[Path, Path]
                                                                 ) -> None:
    media = synth_stream[0]
    sink = Collect()
    pipeline = Pipeline(open_engine(trained_bundle), PipelineConfig(), [sink])
    runs = []
    for _ in range(2):
        summary = pipeline.run(MediaFileSource(media))
        lines = [without_clock(json.dumps(r.to_json())) for r in sink.records]
        sink.records.clear()
        d = summary.to_dict()
        del d["wall_seconds"], d["latency_ms"]  # the clock's
        runs.append((lines, d))
    assert runs[0][1]["windows"] > 100 and runs[0][1]["stopped"] == "end of stream"
    assert runs[1] == runs[0]
