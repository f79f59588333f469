"""Every command the README shows exists, with every option it is shown with, and is run.

The README's code blocks are what a newcomer types. Two checks keep them true:

- Each `avstream ...`, `python -m training|export` and `python -m bench.NAME` line is checked
  against the real command's own `--help`: the sub-command must exist and every `--option`
  written on the line must be one it takes (a renamed flag, a removed command).
- Each command line is run somewhere, as ``WHERE`` says: by this file (``Here``: the cheap ones,
  the README's placeholders filled with the suite's bundles and recordings), by a test
  (``By("tests/FILE.py::TEST")``: the test must exist and it, or a helper it calls, must hold
  the command's sub-command and the options that matter), or by CI (``By(".ci/run")``). A line
  that cannot run in CI (a real webcam, a host's systemd, TAU, a GPU day) is ``NotInCI`` with
  the reason, and its test is skipped saying so. A README command with no entry fails here.
"""

from __future__ import annotations

import ast
import re
import shlex
import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest
from cli_run import REPO, avstream, child_env, module

HELP_COLUMNS = "300"  # wide enough that rich never wraps or truncates an option name
TESTS = REPO / "tests"


INLINE_COMMAND = re.compile(r"`((?:avstream|python3? -m|pip install|bash) [^`]+)`")
"""A command written inline in the prose (```avstream history PATH --since 24h```): held like
the lines of the code blocks."""


def readme_commands() -> list[str]:
    """Each command line of the README's bash blocks, continuation lines joined, comments cut,
    ``&&`` chains split, runs of spaces made one; then the commands written inline."""
    text = (REPO / "README.md").read_text()
    commands: list[str] = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        joined = block.replace("\\\n", " ")
        for line in joined.splitlines():
            line = line.split(" #", 1)[0].strip()
            if line and not line.startswith("#"):
                commands.extend(" ".join(part.split()) for part in line.split("&&"))
    outside = re.sub(r"```.*?```", "", text, flags=re.S)
    commands.extend(" ".join(m.split()) for m in INLINE_COMMAND.findall(outside))
    return list(dict.fromkeys(commands))


def words_of(command: str) -> list[str]:
    return shlex.split(command.replace("<", "").replace(">", ""))


def program_of(words: list[str]) -> tuple[str, list[str]] | None:
    """The Python module that runs the line and the words ``--help`` is asked of after it."""
    if words[:1] == ["avstream"] and len(words) > 1:
        return "avstream", [] if words[1].startswith("-") else [words[1]]
    if words[:3] == ["python", "-m", "training"] and len(words) > 3:
        return "training", [words[3]]
    if words[:3] == ["python", "-m", "export"]:
        return "export", []
    if words[:2] == ["python", "-m"] and len(words) > 2 and words[2].startswith("bench."):
        return words[2], []
    return None


def subcommand_of(command: str) -> str | None:
    """What a test that runs the line must name: ``replay`` for ``avstream replay ...``,
    ``recipe`` for ``python -m training recipe``, ``export``, ``soak`` for ``bench.soak``."""
    found = program_of(words_of(command))
    if found is None:
        return None
    name, sub = found
    return sub[0] if sub else name.removeprefix("bench.")


@cache
def help_text(name: str, sub: tuple[str, ...]) -> str:
    env = child_env(COLUMNS=HELP_COLUMNS, TERM="dumb", NO_COLOR="1")
    done = (avstream(*sub, "--help", env=env) if name == "avstream"
            else module(name, *sub, "--help", env=env))
    assert done.returncode == 0, f"{name} {' '.join(sub)} --help: {done.stderr[-2000:]}"
    return done.stdout


# ----------------------------------------------------------------- where each line is run

PLACEHOLDERS = {"BUNDLE": "tiny_bundle", "recording.mp4": "av_file", "RECORDING": "synth_stream"}
"""The README's placeholders (and this file's, for a recording with its true scenes beside it)
and the suite's fixtures that ``Here`` fills them with."""


@dataclass(frozen=True)
class Here:
    """Run by this file (``test_the_cheap_readme_commands_run_here``). ``args``: the words it
    runs instead of the line's own, when the line as written takes too long (same program, same
    options, a shorter run)."""

    args: tuple[str, ...] = ()


@dataclass(frozen=True)
class By:
    """Run by a test (``tests/FILE.py::TEST``) or by a CI script (a file). The test (or a helper
    it calls) or the file must contain each of ``needles`` (default: the line's sub-command)."""

    where: str
    needles: tuple[str, ...] = ()


@dataclass(frozen=True)
class NotInCI:
    """Cannot run in CI: why, and what does run in its place."""

    why: str


WEBCAM = ("a real microphone and webcam (camera 0, the default microphone): CI has neither; "
          "tests/test_live.py runs `live` on a PulseAudio microphone and a UDP camera stream")
HOST = ("changes the host (a system user, /opt, /etc, systemd): not in CI; tests/test_deploy.py "
        "verifies both units offline with systemd-analyze and their commands against --help")
TAU = ("needs TAU Urban Audio-Visual Scenes 2021 and a GPU day; tests/test_recipe.py runs the "
       "recipe and tests/test_precision.py the export on the synthetic set")
CI_SUITE = By(".ci/run", ("scripts/test.sh",))
"""CI runs the whole suite through the README's test command."""

WHERE: dict[str, Here | By | NotInCI] = {
    # Quick start
    "git clone this repository avstream": By(".ci/run", ("a fresh clone",)),
    "cd avstream": By(".ci/run", ('cd "$(dirname "$0")/.."',)),
    'pip install -e ".[train]"': By("scripts/test.sh", ('pip install', '-e ".[dev]"')),
    "avstream demo": By("tests/test_demo.py::test_demo_replays_a_cached_build_and_reports_accuracy"),
    "bash scripts/test.sh": CI_SUITE,
    # Your own places
    'pip install -e ".[live,train,lite]"': By("scripts/test.sh", ('pip install', '-e ".[dev]"')),
    "avstream record DATASET --scene kitchen --seconds 60": NotInCI(
        f"{WEBCAM}; tests/test_record.py and test_own_places_e2e.py run `record` on them"),
    "avstream record DATASET --scene office --seconds 60": NotInCI(
        f"{WEBCAM}; tests/test_record.py and test_own_places_e2e.py run `record` on them"),
    "python -m training recipe --preset lite --data DATASET --out runs/home": By(
        "tests/test_own_places_e2e.py::test_record_two_takes_train_lite_export_and_label_an_unseen_take",
        ("recipe", "--preset", "lite")),
    "python -m export runs/home/finetune.ckpt bundles/home --precisions fp32,int8 --calibrate DATASET":
        By("tests/test_precision.py::test_one_bundle_carries_each_precision_with_its_measured_agreement",
           ("export", "--precisions", "--calibrate")),
    "avstream live --model bundles/home": NotInCI(WEBCAM),
    # Live use
    'pip install -e ".[live]"': By("scripts/test.sh", ('pip install', '-e ".[dev]"')),
    "avstream devices": By("tests/test_devices.py::test_devices_table_names_the_pulseaudio_source"),
    "avstream devices --camera rtsp://127.0.0.1:8554/cam": By(
        "tests/test_devices.py::test_devices_json_lists_a_camera_that_opens_and_says_why_others_did_not",
        ("devices", "--camera", "rtsp://")),
    'avstream live --model BUNDLE --mic "USB" --camera 0': NotInCI(WEBCAM),
    "avstream live --model BUNDLE --camera rtsp://127.0.0.1:8554/cam --jsonl labels.jsonl": By(
        "tests/test_live.py::test_live_follows_scenes_survives_the_camera_dying_and_stops_cleanly",
        ("live", "--camera", "--jsonl")),
    "avstream live --model BUNDLE --no-camera": By(
        "tests/test_live.py::test_live_audio_only_labels_every_window_from_the_microphone",
        ("live", "--no-camera")),
    "avstream replay recording.mp4 --model BUNDLE --realtime": By(
        "tests/test_replay_cli.py::test_sigterm_stops_cleanly_with_a_summary",
        ("replay", "--realtime")),
    "avstream replay recording.mp4 --model BUNDLE --jsonl -": Here(),
    "avstream info BUNDLE": Here(),
    # Running unattended
    "sudo useradd --system --groups audio,video avstream": NotInCI(HOST),
    "sudo python3 -m venv /opt/avstream/venv": By(
        "tests/test_python312.py::test_the_daemon_installs_on_python_312_and_replays_exactly_as_here",
        ("venv",)),
    'sudo /opt/avstream/venv/bin/pip install "/path/to/avstream[live,mqtt,http]"': By(
        "tests/test_python312.py::test_the_daemon_installs_on_python_312_and_replays_exactly_as_here",
        ("pip", "install", "[live,mqtt,http]")),
    "sudo cp -r /path/to/avstream /opt/avstream/src": NotInCI(HOST),
    "sudo mkdir -p /var/lib/avstream /etc/avstream": NotInCI(HOST),
    "sudo cp -r BUNDLE /var/lib/avstream/bundle": NotInCI(HOST),
    "sudo install -m 600 deploy/avstream.env.example /etc/avstream/avstream.env": NotInCI(HOST),
    "sudo cp deploy/avstream.service /etc/systemd/system/": NotInCI(HOST),
    "sudo systemctl daemon-reload": NotInCI(HOST),
    "sudo systemctl enable --now avstream": NotInCI(HOST),
    "journalctl -u avstream -f": NotInCI(HOST),
    "curl -s http://127.0.0.1:8765/status": By(
        "tests/test_outputs_http.py::test_status_page_and_unknown_path", ("status",)),
    # Many streams and archives
    "avstream batch recordings/ --model BUNDLE --out labels/ --workers 2": By(
        "tests/test_batch.py::test_batch_labels_a_folder_records_the_corrupt_file_and_resumes",
        ("batch", "--out", "--workers")),
    "avstream serve examples/serve.toml": NotInCI(
        "examples/serve.toml names a webcam, a USB microphone and RTSP cameras; tests/test_serve.py "
        "runs `serve` on file and UDP camera streams, tests/test_serve_site.py checks the example "
        "against the published schema"),
    "avstream serve examples/serve.toml --ray": NotInCI(
        "examples/serve.toml's cameras, as above; tests/test_serve_ray.py runs `serve --ray` on "
        "file streams"),
    # Training on TAU
    "python -m training recipe --data /data/TAU-urban-audio-visual-scenes-2021-development --out "
    "runs/paper --backbone-weights vgg16_places365_weights_tf_dim_ordering_tf_kernels_notop.h5":
        NotInCI(TAU),
    "python -m export runs/paper/finetune.ckpt bundles/paper --precisions fp32,int8 --calibrate "
    "/data/TAU...": NotInCI(TAU),
    "avstream live --model bundles/paper": NotInCI(f"{TAU}; and {WEBCAM}"),
    # Benchmarks
    "python -m bench.latency --json": By("tests/test_bench.py::test_latency_reports_every_figure",
                                         ("latency", "--json")),
    "python -m bench.throughput --json": By("tests/test_bench.py::test_stream_reports_every_figure",
                                            ("throughput", "--json")),
    "python -m bench.streams --json": By(
        "tests/test_bench_streams.py::test_bench_streams_reports_every_figure",
        ("bench.streams", "--json")),
    "python -m bench.soak --minutes 30": Here(
        ("python", "-m", "bench.soak", "--minutes", "0.2", "--camera-every", "5",
         "--camera-gap", "1", "--model", "BUNDLE", "--recording", "RECORDING", "--json")),
    "python -m bench.gpu --json": By(
        "tests/test_bench.py::test_gpu_bench_without_a_gpu_says_so_in_one_line_and_exits_0",
        ("bench.gpu", "--json")),
    # Development
    'python -m pytest -m "not live"': CI_SUITE,
    "bash scripts/test.sh -m slow": NotInCI(
        "the slow tests (training runs, the benchmark scripts' own checks, torchrun; minutes "
        "each on 2 cores): tests/conftest.py deselects them unless -m names slow, and CI does not"),
    "AVSTREAM_TEST_CACHE=/tmp/avs python -m pytest": NotInCI(
        "a developer's fixture cache kept between runs; CI builds the fixtures fresh"),
    "AVSTREAM_TEST_CACHE=/tmp/avs python scripts/mutants.py": NotInCI(
        "runs the suite's tests once per mutant: hours on 2 cores, run by hand before a release"),
    "ruff check .": Here(("python", "-m", "ruff", "check", ".")),
    # Written inline in the prose
    "avstream record": By("tests/test_record.py::test_record_writes_one_complete_take_at_the_devices_own_format"),
    "avstream live": By(
        "tests/test_live.py::test_live_follows_scenes_survives_the_camera_dying_and_stops_cleanly"),
    "avstream info": Here(("avstream", "info", "BUNDLE")),
    "avstream --version": Here(),
    "python -m training evaluate --data D --checkpoint RUN/finetune.ckpt --mono": By(
        "tests/test_recipe.py::test_evaluate_cli_feeds_mono_audio", ("evaluate", "--mono")),
    "avstream --log-level DEBUG|INFO|WARNING|ERROR CMD ...": By(
        "tests/test_cli.py::test_log_level_and_v_set_the_library_loggers", ("--log-level",)),
    "avstream history PATH --since 24h": By(
        "tests/test_history.py::test_history_command_prints_the_timeline", ("history", "--since")),
    "avstream history /var/lib/avstream/history.db --since 24h": By(
        "tests/test_history.py::test_history_command_prints_the_timeline", ("history", "--since")),
    "avstream serve /etc/avstream/serve.toml": By(
        "tests/test_deploy.py::test_serve_unit_runs_serve_on_one_config", ("serve /etc/avstream",)),
    "pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu": NotInCI(
        "CI's machine comes with the CPU build of torch 2.13.0, which `pip install -e .[dev]` keeps"),
    'pip install -e ".[gpu,train]"': NotInCI(
        "a GPU host (onnxruntime-gpu replaces onnxruntime); CI has no GPU: tests/test_bench.py runs "
        "`python -m bench.gpu --json` on its CPU path"),
}


def _readme_keys() -> list[str]:
    """The README's lines as ``WHERE`` spells them (``<this repository>`` without brackets)."""
    return [c.replace("<", "").replace(">", "") for c in readme_commands()]


# ----------------------------------------------------------------- the checks


CHECKED = [c for c in readme_commands() if program_of(words_of(c))]


def test_the_readme_shows_the_commands_a_newcomer_needs() -> None:
    firsts = {shlex.split(c)[1] for c in CHECKED if c.startswith("avstream ")}
    assert {"demo", "live", "replay", "devices", "info", "batch", "serve"} <= firsts
    assert "bash scripts/test.sh" in readme_commands()


@pytest.mark.parametrize("command", CHECKED)
def test_each_readme_command_exists_with_the_options_it_is_shown_with(command: str) -> None:
    words = words_of(command)
    found = program_of(words)
    assert found is not None
    name, sub = found
    text = help_text(name, tuple(sub))
    for option in (w.split("=", 1)[0] for w in words if w.startswith("--")):
        assert re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", text), (
            f"README: `{command}`: {option} is not an option of {name} {' '.join(sub)}")


def test_every_readme_command_says_where_it_is_run() -> None:
    """A new README command needs a line in ``WHERE``; a line the README no longer shows goes."""
    shown = _readme_keys()
    missing = [c for c in shown if c not in WHERE]
    assert not missing, ("README commands that no test, CI step or reason covers; add each to "
                         f"WHERE in tests/test_readme.py: {missing}")
    stale = [c for c in WHERE if c not in shown]
    assert not stale, f"WHERE names commands the README no longer shows: {stale}"


@dataclass(frozen=True)
class Function:
    params: tuple[str, ...]
    """Its parameters: a test's fixtures."""
    body: str
    """Its decorators' and body's source without the docstring, so that a name or a docstring
    never counts as running anything."""


def _functions(path: Path) -> dict[str, Function]:
    """Module-level functions (tests, helpers, fixtures) of a tests/ file by name."""
    text = path.read_text()
    out: dict[str, Function] = {}
    for node in ast.parse(text).body:
        if isinstance(node, ast.FunctionDef):
            body = node.body[1:] if ast.get_docstring(node) else node.body
            # Decorators too: a parametrized test runs the arguments its decorator lists.
            parts = [*node.decorator_list, *body]
            out[node.name] = Function(tuple(a.arg for a in node.args.args),
                                      "\n".join(ast.get_source_segment(text, s) or "" for s in parts))
    return out


def _helpers(path: Path) -> dict[str, Function]:
    """What a test may call: its own file's functions and those of the tests/ modules it
    imports from (``from live_env import start_daemon``)."""
    found = _functions(path)
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.ImportFrom) and node.module:
            helper = TESTS / f"{node.module.removeprefix('tests.')}.py"
            if helper.is_file():
                theirs = _functions(helper)
                found.update({a.name: theirs[a.name] for a in node.names if a.name in theirs})
    return found


def _test_source(where: str) -> str:
    """The test's body and the bodies of the helpers and fixtures of its file it names (one
    level down)."""
    file, _, name = where.partition("::")
    helpers = _helpers(REPO / file)
    assert name in helpers, f"{where}: no such test"
    test = helpers[name]
    called = [h for h in helpers if h != name and (
        h in test.params or re.search(rf"\b{re.escape(h)}\b", test.body))]
    return "\n".join([test.body, *(helpers[h].body for h in called)])


@pytest.mark.parametrize("command", [c for c, w in WHERE.items() if isinstance(w, By)])
def test_the_named_test_or_ci_step_runs_the_command(command: str) -> None:
    where = WHERE[command]
    assert isinstance(where, By)
    needles = where.needles or (subcommand_of(command) or "",)
    assert all(needles), f"`{command}`: say what its test must contain"
    if "::" in where.where:
        source = _test_source(where.where)
    else:
        assert (REPO / where.where).is_file(), where.where
        source = (REPO / where.where).read_text()
    absent = [n for n in needles if n not in source]
    assert not absent, f"README `{command}`: {where.where} does not contain {absent}"


def test_the_extras_the_readme_installs_are_the_ones_ci_installs() -> None:
    """`pip install -e ".[X,Y]"` lines are run by CI's `pip install -e ".[dev]"`: every extra
    they name exists and is part of `dev`."""
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    dev = set(re.search(r"avstream\[([\w,]+)\]", " ".join(extras["dev"])).group(1).split(","))
    for command in readme_commands():
        m = re.fullmatch(r'pip install -e "\.\[([\w,]+)\]"', command)
        if m and not isinstance(WHERE.get(command), NotInCI):
            named = set(m.group(1).split(","))
            assert named <= set(extras), f"`{command}`: no extra {named - set(extras)}"
            assert named <= dev, f"`{command}`: CI's dev extra lacks {named - dev}"


@pytest.mark.parametrize("command", [c for c, w in WHERE.items() if isinstance(w, NotInCI)])
def test_readme_commands_that_cannot_run_in_ci(command: str) -> None:
    where = WHERE[command]
    assert isinstance(where, NotInCI) and where.why
    pytest.skip(f"README `{command}` is not run in CI: {where.why}")


@pytest.mark.parametrize("command", [c for c, w in WHERE.items() if isinstance(w, Here)])
def test_the_cheap_readme_commands_run_here(command: str, request: pytest.FixtureRequest) -> None:
    where = WHERE[command]
    assert isinstance(where, Here)

    def fill(word: str) -> str:
        if word not in PLACEHOLDERS:
            return word
        value = request.getfixturevalue(PLACEHOLDERS[word])
        return str(value[0] if isinstance(value, tuple) else value)  # synth_stream: (mp4, csv)

    words = [fill(w) for w in (where.args or tuple(words_of(command)))]
    if words[:2] == ["python", "-m"]:
        done = module(words[2], *words[3:], timeout=300)
    else:
        assert words[0] == "avstream", command
        done = avstream(*words[1:])
    assert done.returncode == 0, f"`{' '.join(words)}`: {done.stderr[-3000:]}"
    if "--jsonl" in words and words[words.index("--jsonl") + 1] == "-":
        assert done.stdout.strip() and all(line.startswith("{")
                                           for line in done.stdout.splitlines())
