"""``avstream serve --ray`` and ``avstream batch --ray`` on a local Ray instance (CPU only),
started once for the module: records per stream equal to single replays, a corrupt stream or
file that leaves the others going."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from live_env import missing
from streams_env import (  # noqa: F401
    assert_same_records,
    file_stream,
    read_records,
    replay_fast,
    three_streams,
    write_config,
)

from avstream.batch import BatchJob, FileResult, expand_inputs, plan_batch, write_summary
from avstream.serve.config import load_serve_config
from avstream.stream.pipeline import PipelineConfig

pytestmark = pytest.mark.ray
RAY_CPUS = 2


@pytest.fixture(scope="module")
def ray_local() -> Iterator[Any]:
    try:
        import ray
        from ray import serve
    except ImportError:
        missing('Ray is not installed (pip install -e ".[cluster]")')
    ray.init(num_cpus=RAY_CPUS, include_dashboard=False, log_to_driver=False)
    try:
        yield ray
    finally:
        serve.shutdown()
        ray.shutdown()


def test_three_file_streams_on_ray_give_the_records_of_three_replays(
        ray_local: Any, three_streams: list[Path], tiny_bundle: Path,  # noqa: F811
        tmp_path: Path) -> None:
    from avstream.serve.ray_backend import serve_ray

    names = ["north", "south", "west"]
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(three_streams[0].read_bytes()[:3000])
    streams = {n: file_stream(m) for n, m in zip(names, three_streams, strict=True)}
    streams["dead"] = file_stream(broken)
    cfg = write_config(tmp_path / "serve.toml", tiny_bundle, streams)
    report = serve_ray(load_serve_config(cfg), "local", threading.Event())
    outcomes = {o.name: o for o in report.outcomes}
    assert "broken.mp4" in (outcomes["dead"].error or "")
    for name, media in zip(names, three_streams, strict=True):
        assert outcomes[name].error is None and outcomes[name].stopped == "end of stream"
        lines = (tmp_path / f"{name}.jsonl").read_text().splitlines()
        assert {json.loads(line)["stream"] for line in lines} == {name}
        assert_same_records(read_records(tmp_path / f"{name}.jsonl"),
                            replay_fast(media, tiny_bundle, tmp_path / f"{name}.replay.jsonl"))


def test_two_replicas_share_the_streams_and_each_reports_its_batches(
        ray_local: Any, three_streams: list[Path], tiny_bundle: Path,  # noqa: F811
        tmp_path: Path) -> None:
    """``num_replicas = 2``: both replicas of the inference deployment run batches of the
    streams' requests (each half a CPU here, so that both and the three streams' actors fit on
    the instance's two), and the summary says how many each ran."""
    from avstream.serve.ray_backend import serve_ray

    names = ["north", "south", "west"]
    streams = {n: file_stream(m) for n, m in zip(names, three_streams, strict=True)}
    cfg = write_config(tmp_path / "serve.toml", tiny_bundle, streams,
                       extra="num_replicas = 2\nreplica_cpus = 0.5")
    report = serve_ray(load_serve_config(cfg), "local", threading.Event())
    assert all(o.error is None for o in report.outcomes), [o.line() for o in report.outcomes]
    assert len(report.replicas) == 2
    assert all(s.batches > 0 for s in report.replicas.values()), report.replicas
    assert report.batching is not None
    assert report.batching.requests == sum(s.requests for s in report.replicas.values())
    lines = report.batch_lines()
    assert len(lines) == 3 and all(line.startswith("replica ") for line in lines[1:])
    for name in names:
        assert {r["stream"] for r in map(json.loads, (tmp_path / f"{name}.jsonl").read_text()
                                         .splitlines())} == {name}


def test_batch_on_ray_records_the_corrupt_file_and_labels_the_rest(
        ray_local: Any, three_streams: list[Path], tiny_bundle: Path,  # noqa: F811
        tmp_path: Path) -> None:
    from avstream.bundle.loader import load_bundle
    from avstream.cluster import run_ray_batch

    archive = tmp_path / "archive"
    archive.mkdir()
    for m in three_streams[:2]:
        (archive / m.name).write_bytes(m.read_bytes())
    (archive / "corrupt.mp4").write_bytes(b"\x00" * 2048)
    plan = plan_batch(expand_inputs([archive]), tmp_path / "out")
    results: list[FileResult] = []
    run_ray_batch(BatchJob(model=str(tiny_bundle), pipeline=PipelineConfig(), threads=1), plan,
                  results.append, "local")
    assert ray_local.is_initialized()  # the module's instance is reused, not shut down
    by_name = {Path(r.file).name: r for r in results}
    assert set(by_name) == {"s0.mp4", "s1.mp4", "corrupt.mp4"}
    assert "corrupt.mp4" in (by_name["corrupt.mp4"].error or "")
    summary = write_summary(plan, load_bundle(tiny_bundle).classes)
    text = summary.read_text()
    assert "corrupt.mp4" in text and text.count("\n") == 4
    assert read_records(tmp_path / "out" / "s0.mp4.jsonl") == replay_fast(
        archive / "s0.mp4", tiny_bundle, tmp_path / "s0.replay.jsonl")
