"""Deliberate breakages of the code, one at a time, each run against the tests meant to catch it.

    python scripts/mutants.py                 # every mutant; a table mutant -> killed/survived
    python scripts/mutants.py --only pacing   # some of them (names below, comma-separated)
    python scripts/mutants.py --list          # the mutants and the tests each one runs

Each mutant is an exact (file, old snippet, new snippet) replacement applied to a temporary copy
of the tree (the files git tracks plus the untracked ones it does not ignore), never to the
working tree. A snippet that is not found exactly once is reported as ``stale`` (the code moved:
re-target it in MUTANTS below) rather than silently skipped. The selected tests run with ``-x``
in the copy (``PYTHONPATH`` set to it, so child processes such as ``avstream ...`` run the mutant
too); a mutant is *killed* when they fail. First the same tests run once on the unbroken copy
(they must pass). Exit status 1 when any mutant survived or is stale, 2 when the baseline fails.

Set ``AVSTREAM_TEST_CACHE`` to reuse the trained test model between mutants (otherwise each run
trains it again, minutes each).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PYTEST_TIMEOUT_S = 1200


@dataclass(frozen=True)
class Mutant:
    name: str
    what: str
    file: str
    old: str
    new: str
    tests: tuple[str, ...]
    """pytest node ids or files; ``-k`` expressions as ``-k=EXPR``."""


_INT8_CONSTANT = '''    prepared.unlink(missing_ok=True)
    from onnx import helper as _helper
    _m = onnx.load(str(dst))
    _outs = {o.name: o.name + "_live" for o in _m.graph.output}
    for _n in _m.graph.node:
        _n.output[:] = [_outs.get(o, o) for o in _n.output]
        _n.input[:] = [_outs.get(i, i) for i in _n.input]
    _m.graph.initializer.append(_helper.make_tensor("mutant_zero", onnx.TensorProto.FLOAT, [], [0.0]))
    for _name, _live in _outs.items():
        _m.graph.node.append(_helper.make_node("Mul", [_live, "mutant_zero"], [_name]))
    onnx.save(_m, str(dst))
'''

# One table to re-target when the code moves: (file, exact old snippet, new snippet, tests).
MUTANTS: tuple[Mutant, ...] = (
    Mutant("pacing", "--realtime does not wait for the wall clock",
           "avstream/sources/paced.py",
           "                if not self._clock.sleep_until(key, self._stop):\n                    return",
           "                if False:\n                    return",
           ("tests/test_promises.py::test_realtime_replay_releases_each_window_no_earlier_than_its_stream_time",)),
    Mutant("drop-all", "every hop is dropped as stale",
           "avstream/stream/arrivals.py",
           "        if self.clock is None:\n            return False, False\n"
           "        deadline = self.deadline(complete)\n"
           "        if deadline is not None and taken > deadline:",
           "        if True:",
           ("tests/test_promises.py::test_windows_on_the_hop_grid_and_one_new_frame_per_hop",)),
    Mutant("late-media-dropped", "a window whose media arrived late is dropped, not run and counted",
           "avstream/stream/arrivals.py",
           "        return False, self.clock.now() - (taken - complete) - t_end > self.hop_s",
           "        return self.clock.now() - (taken - complete) - t_end > self.hop_s, False",
           ("tests/test_replay_pacing.py::test_late_media_in_a_realtime_replay_runs_every_window_and_is_counted_not_dropped",)),
    Mutant("no-feature-cache", "every frame of every window is encoded again",
           "avstream/stream/features.py",
           "                row = self._cache.get(ref.seq)",
           "                row = None",
           ("tests/test_promises.py::test_windows_on_the_hop_grid_and_one_new_frame_per_hop",)),
    Mutant("no-nan-guard", "non-finite model output goes into the smoother",
           "avstream/results/reporter.py",
           "if not np.isfinite(probs).all():",
           "if False:",
           ("tests/test_promises.py::test_non_finite_model_output_is_counted_skipped_and_never_smoothed",)),
    Mutant("counter-without-media", "windows without media are not counted",
           "avstream/stream/assembly.py",
           "self.windows_without_media += 1",
           "pass",
           ("tests/test_promises.py::test_audio_gaps_fills_late_samples_and_windows_without_media",)),
    Mutant("counter-late", "late audio samples are not reported",
           "avstream/stream/assembly.py",
           "audio_late_samples=self.ring.late_samples,",
           "audio_late_samples=0,",
           ("tests/test_promises.py::test_audio_gaps_fills_late_samples_and_windows_without_media",)),
    Mutant("summary-frames-are-encodes", "the summary's frames_encoded counts every encode, "
           "frames encoded ahead for dropped windows included, not the frames the windows used",
           "avstream/results/reporter.py",
           "timeline_forgotten=self.timeline.forgotten, counters=self.counters(),",
           "timeline_forgotten=self.timeline.forgotten,\n"
           "            counters=replace(self.counters(), frames_encoded=frame_encodes),",
           ("tests/test_counters.py::test_frames_encoded_ahead_for_dropped_windows_are_encodes_not_frames_used",)),
    Mutant("smoothing-off", "the smoothed probabilities are this window's own",
           "avstream/stream/smoothing.py",
           "np.sum(self._history[:filled], axis=0, out=self._probs)\n            self._probs /= filled",
           "self._probs[:] = raw",
           ("tests/test_promises.py::test_probs_are_the_mean_of_the_last_4_windows_and_the_floor_says_unknown",
            "tests/test_smoothing.py")),
    Mutant("class-order", "class names paired with the probabilities in reverse order",
           "avstream/results/records.py",
           "zip(classes, p, strict=True)",
           "zip(classes[::-1], p, strict=True)",
           ("tests/test_promises.py::test_probs_follow_the_bundle_class_order_rounded_to_6_decimals",)),
    Mutant("provider-fallback", "a forced provider that does not start falls back to the CPU quietly",
           "avstream/inference/session.py",
           "if forced and providers[0] not in self.providers:",
           "if False:",
           ("tests/test_exit_codes.py::test_cuda_listed_but_failing_exits_4_when_asked_for",)),
    Mutant("rounding", "probabilities written with all their decimals",
           "avstream/results/records.py",
           "return {c: round(float(x), PROB_DECIMALS) for c, x in zip(classes, p, strict=True)}",
           "return {c: float(x) for c, x in zip(classes, p, strict=True)}",
           ("tests/test_promises.py::test_every_line_and_summary_match_the_shipped_schemas",)),
    Mutant("int8-constant", "the int8 graphs output zeros whatever the input",
           "export/quantize.py",
           "    prepared.unlink(missing_ok=True)\n",
           _INT8_CONSTANT,
           ("tests/test_export.py::test_int8_is_calibrated_on_data_and_reports_its_cost",)),
    Mutant("variant-agreement-copied", "an extra precision's manifest record keeps the main "
           "precision's agreement, largest difference and accuracy change",
           "export/bundle_writer.py",
           "            variants[extra], extra_report = measure_variant(",
           "            _, extra_report = measure_variant(",
           ("tests/test_export.py::test_each_precision_records_its_own_agreement_and_timings",)),
    Mutant("checksum-main-graphs-only", "only the main precision's graphs are checksummed",
           "avstream/bundle/loader.py",
           "    for name, expected in manifest.files.items():",
           "    for name, expected in {g.file: manifest.files[g.file]\n"
           "                           for g in manifest.graphs.values()}.items():",
           ("tests/test_export.py::test_an_altered_extra_precision_graph_is_refused_by_every_loader",)),
)


@dataclass(frozen=True)
class Outcome:
    mutant: Mutant
    status: str
    """killed, survived, stale (snippet not found once) or error (tests could not run)."""
    detail: str
    seconds: float


def tree_files(repo: Path) -> list[str]:
    """Tracked files plus untracked ones git does not ignore (the work in progress too)."""
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                         cwd=repo, check=True, capture_output=True).stdout
    return [f for f in out.decode().split("\0") if f and (repo / f).is_file()]


def copy_tree(repo: Path, dst: Path) -> None:
    for f in tree_files(repo):
        target = dst / f
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(repo / f, target)


def apply(root: Path, m: Mutant) -> str | None:
    """Apply ``m`` in ``root``; None when done, else why it could not be."""
    path = root / m.file
    if not path.is_file():
        return f"{m.file} does not exist"
    text = path.read_text()
    n = text.count(m.old)
    if n != 1:
        return f"old snippet found {n} times in {m.file}; expected exactly once"
    path.write_text(text.replace(m.old, m.new))
    return None


FAILED = re.compile(r"^(FAILED|ERROR) (\S+)", re.MULTILINE)
REASON = re.compile(r"^E +(.+)$", re.MULTILINE)
"""pytest's first ``E`` line: why the test failed (an assertion, or an error in the mutant)."""


def pytest_args(tests: tuple[str, ...]) -> list[str]:
    return [a for t in tests for a in (["-k", t[3:]] if t.startswith("-k=") else [t])]


def run_tests(root: Path, tests: tuple[str, ...], python: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([python, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider",
                           "-o", "addopts=-ra", *pytest_args(tests)], cwd=root, env=env,
                          capture_output=True, text=True, timeout=PYTEST_TIMEOUT_S)


def run_mutant(m: Mutant, base: Path, python: str) -> Outcome:
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=f"mutant-{m.name}-") as tmp:
        root = Path(tmp) / "tree"
        shutil.copytree(base, root)
        problem = apply(root, m)
        if problem is not None:
            return Outcome(m, "stale", problem, time.monotonic() - t0)
        try:
            done = run_tests(root, m.tests, python)
        except subprocess.TimeoutExpired:
            return Outcome(m, "killed", f"tests timed out after {PYTEST_TIMEOUT_S} s",
                           time.monotonic() - t0)
    seconds = time.monotonic() - t0
    if done.returncode == 0:
        return Outcome(m, "survived", "all selected tests passed", seconds)
    if done.returncode == 1:
        failed = FAILED.findall(done.stdout)
        why = REASON.search(done.stdout)
        test = failed[0][1] if failed else "tests failed"
        return Outcome(m, "killed", test + (f": {why.group(1)[:120]}" if why else ""), seconds)
    tail = (done.stdout + done.stderr).strip().splitlines()[-3:]
    return Outcome(m, "error", f"pytest exit {done.returncode}: {' | '.join(tail)}", seconds)


def table(outcomes: list[Outcome]) -> str:
    rows = ["| mutant | what it breaks | result | first failing test | s |",
            "| --- | --- | --- | --- | --- |"]
    for o in outcomes:
        rows.append(f"| {o.mutant.name} | {o.mutant.what} | {o.status} | {o.detail} | "
                    f"{o.seconds:.0f} |")
    return "\n".join(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", help="comma-separated mutant names")
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    parser.add_argument("--no-baseline", action="store_true",
                        help="skip the run of the selected tests on the unbroken tree")
    args = parser.parse_args()
    chosen = list(MUTANTS)
    if args.only:
        wanted = set(args.only.split(","))
        unknown = wanted - {m.name for m in MUTANTS}
        if unknown:
            parser.error(f"unknown mutants {sorted(unknown)}; expected some of "
                         f"{[m.name for m in MUTANTS]}")
        chosen = [m for m in MUTANTS if m.name in wanted]
    if args.list:
        for m in chosen:
            print(f"{m.name}: {m.what}\n  {m.file}\n  tests: {' '.join(m.tests)}")
        return 0
    outcomes = []
    with tempfile.TemporaryDirectory(prefix="mutants-base-") as tmp:
        base = Path(tmp) / "tree"
        copy_tree(REPO, base)
        if not args.no_baseline:
            # The selected tests must pass on the unbroken tree, or "killed" would mean nothing.
            tests = tuple(dict.fromkeys(t for m in chosen for t in m.tests))
            done = run_tests(base, tests, sys.executable)
            if done.returncode != 0:
                print(f"baseline: the selected tests fail on the unbroken tree:\n"
                      f"{done.stdout[-3000:]}", file=sys.stderr)
                return 2
            print("baseline: the selected tests pass on the unbroken tree", flush=True)
        for m in chosen:
            o = run_mutant(m, base, sys.executable)
            print(f"{m.name}: {o.status} ({o.detail}, {o.seconds:.0f} s)", flush=True)
            outcomes.append(o)
    print()
    print(table(outcomes))
    return 0 if all(o.status == "killed" for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
