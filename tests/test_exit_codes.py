"""The README's exit codes, through the real command: 1 for a bug (traceback kept), 2 for bad
input, 4 for a provider that is asked for and does not run, each error one line.

The faults are made in the child process only (tests/cli_run.py's ``patch``): a library call
that raises as a bug would, a command module that cannot be imported, an onnxruntime that lists
CUDA it cannot start (onnxruntime-gpu on a machine without a usable GPU).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_run import avstream, replay
from crafted_media import frame_times, write_crafted


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Audio 0-4 s, video 0-2 s: 16 windows (tests/test_promises.py works them out)."""
    return write_crafted(tmp_path_factory.mktemp("crafted") / "clip.mkv", audio=[(0.0, 4.0)],
                         frames=frame_times(0.0, 2.0, 10))


def test_an_internal_error_exits_1_with_its_traceback(clip: Path,
                                                      trained_bundle: Path,
                                                      tmp_path: Path) -> None:
    bug = ("import av\n"
           "def broken(*args, **kwargs):\n"
           "    raise RuntimeError('deliberate internal error')\n"
           "av.open = broken\n")
    run = replay(clip, trained_bundle, tmp_path, patch=bug)
    assert run.code == 1, run.stderr
    assert "Traceback (most recent call last)" in run.stderr
    assert run.stderr.rstrip().endswith("RuntimeError: deliberate internal error")
    assert run.error_lines() == []  # a bug is not dressed up as a user error


def test_a_missing_command_module_is_an_error_not_a_missing_command() -> None:
    done = avstream("--help", patch="sys.modules['avstream.commands.demo'] = None\n")
    assert done.returncode == 1, done.stdout
    assert "Traceback" in done.stderr and "avstream.commands.demo" in done.stderr


CUDA_LISTED = ("import onnxruntime\n"
               "real = onnxruntime.get_available_providers\n"
               "onnxruntime.get_available_providers = "
               "lambda: ['CUDAExecutionProvider', *real()]\n")
"""onnxruntime-gpu on a host without a usable GPU: CUDA is listed, and does not start."""


def test_cuda_listed_but_failing_exits_4_when_asked_for(clip: Path,
                                                        trained_bundle: Path,
                                                        tmp_path: Path) -> None:
    run = replay(clip, trained_bundle, tmp_path, "--provider", "cuda",
                 patch=CUDA_LISTED)
    assert run.code == 4, run.stderr
    assert "Traceback" not in run.stderr
    (line,) = run.error_lines()
    assert "CUDAExecutionProvider" in line and "CPUExecutionProvider" in line
    assert run.lines == [] and run.summary is None


def test_cuda_listed_but_failing_by_default_runs_on_cpu_and_says_so(
        clip: Path, trained_bundle: Path, tmp_path: Path) -> None:
    run = replay(clip, trained_bundle, tmp_path, patch=CUDA_LISTED)
    assert run.code == 0, run.stderr
    assert "CUDAExecutionProvider is listed but did not start" in run.stderr
    assert "on CPUExecutionProvider" in run.stderr  # the start-up line: what really runs
    assert run.summary is not None
    assert run.summary["info"]["providers"] == {g: ["CPUExecutionProvider"]
                                                for g in ("audio", "frame", "head")}
    assert len(run.lines) == 16


@pytest.mark.parametrize("option", ["--jsonl", "--summary-json"])
def test_an_unwritable_output_path_exits_2_in_one_line(option: str, clip: Path,
                                                       trained_bundle: Path,
                                                       tmp_path: Path) -> None:
    target = tmp_path / "no-such-dir" / "out.json"
    args = ["replay", str(clip), "--model", str(trained_bundle), "--fast",
            "--no-view", option, str(target)]
    done = avstream(*args)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    lines = [ln for ln in done.stderr.splitlines() if ln.startswith("avstream: error:")]
    assert len(lines) == 1 and option in lines[0] and str(target) in lines[0]
    assert "summary:" not in done.stdout + done.stderr  # refused before the run, not after it


MODEL_LOAD_FAILS = ("import avstream.driver\n"
                    "def loaded(*args, **kwargs):\n"
                    "    raise RuntimeError('the model was loaded')\n"
                    "avstream.driver.open_engine = loaded\n")
"""Loading the model is a bug in the child: a mistake checked after it would exit 1, not 2."""


@pytest.mark.parametrize(("extra", "named"), [
    (("--jsonl", "{tmp}/no-such-dir/out.jsonl"), "--jsonl"),
    (("--mqtt", "ftp://localhost"), "--mqtt"),
    (("--http", "localhost:notaport"), "--http"),
    (("--http", "0.0.0.0:8080"), "--http"),  # a non-loopback page without --http-token
    (("--audio", "{tmp}/missing.wav"), "missing.wav"),
])
def test_replay_checks_its_options_before_the_model_loads(extra: tuple[str, str], named: str,
                                                          clip: Path, tmp_path: Path) -> None:
    args = [a.format(tmp=tmp_path) for a in extra]
    done = avstream("replay", str(clip), "--model", str(tmp_path), "--fast", "--no-view", *args,
                    patch=MODEL_LOAD_FAILS)
    assert done.returncode == 2, done.stderr
    lines = [ln for ln in done.stderr.splitlines() if ln.startswith("avstream: error:")]
    assert len(lines) == 1 and named in lines[0], done.stderr
    assert "Traceback" not in done.stderr and "model was loaded" not in done.stderr


def test_replay_of_a_missing_file_fails_before_the_model_loads(tmp_path: Path) -> None:
    missing = tmp_path / "missing.mp4"
    done = avstream("replay", str(missing), "--model", str(tmp_path), "--fast",
                    patch=MODEL_LOAD_FAILS)
    assert done.returncode == 2, done.stderr
    lines = [ln for ln in done.stderr.splitlines() if ln.startswith("avstream: error:")]
    assert len(lines) == 1 and str(missing) in lines[0] and "does not exist" in lines[0]


def test_live_with_no_mic_and_no_camera_is_a_usage_error(tmp_path: Path) -> None:
    done = avstream("live", "--model", str(tmp_path), "--no-mic", "--no-camera",
                    patch=MODEL_LOAD_FAILS)
    assert done.returncode == 2, done.stderr
    lines = [ln for ln in done.stderr.splitlines() if ln.startswith("avstream: error:")]
    assert len(lines) == 1 and "--no-mic" in lines[0] and "--no-camera" in lines[0]
    assert "Traceback" not in done.stderr
