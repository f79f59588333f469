"""The import graph stays layered: no circle, the numpy core imports no result, output or
command, and the results import no sink.

Read from the source with ``ast`` (nothing is imported): every ``import`` and ``from ... import``
of a module of avstream/, training/ or export/, at any depth in the file (imports inside
functions count: they still tie the modules together). A circle makes the order of imports
matter and hides which module owns a name; the core importing ``avstream.results``,
``avstream.outputs`` or ``avstream.commands`` would let results flow backwards from the reporter
and the sinks into the stream code, and ``avstream.results`` importing a sink would tie what a
run produced to where it goes.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("avstream", "training", "export")
CORE = "avstream.stream"
"""The stream core: media in, windows, features and labels out."""
CORE_TO_RESULTS = ("avstream.stream.pipeline",)
"""The one core module that hands each window to the reporter (and so imports results)."""
NOT_FROM_CORE = ("avstream.results", "avstream.outputs", "avstream.commands", "avstream.cli")
RESULTS = "avstream.results"
"""Records, summary, counters, reporter: what a run produced, apart from where it goes."""
NOT_FROM_RESULTS = ("avstream.outputs", "avstream.commands", "avstream.cli", "avstream.driver",
                    "avstream.serve")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for pkg in PACKAGES for p in sorted((REPO / pkg).rglob("*.py"))}


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The project modules ``name`` imports (``from a.b import c`` is a.b.c when that is a
    module, else a.b)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base
                       for a in node.names]
        else:
            continue
        for t in targets:
            while t and t not in known:  # a name inside a module -> the module
                t = t.rpartition(".")[0]
            if t and t != name:
                out.add(t)
    return out


def graph() -> dict[str, set[str]]:
    found = modules()
    known = set(found)
    return {name: imports_of(name, path, known) for name, path in found.items()}


def circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return groups


def package_edges(edges: dict[str, set[str]]) -> dict[str, set[str]]:
    """Edges without those from a package's ``__init__`` to its own modules (re-exports)."""
    return {m: {t for t in ts if not t.startswith(m + ".")} for m, ts in edges.items()}


def test_the_walker_finds_a_circle_and_a_backward_import() -> None:
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert circles(edges) == [["a", "b", "c"]]
    assert circles({"a": {"b"}, "b": set()}) == []
    found = graph()
    assert "avstream.stream.pipeline" in found["avstream.driver"]  # a real edge is seen
    assert "avstream.results.reporter" in found["avstream.stream.pipeline"]


def test_no_import_circle() -> None:
    assert circles(package_edges(graph())) == []


def in_package(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def test_the_numpy_core_imports_no_result_output_or_command() -> None:
    edges = graph()
    core = [m for m in edges if in_package(m, CORE) and m not in CORE_TO_RESULTS]
    assert "avstream.stream.assembly" in core and "avstream.stream.smoothing" in core
    bad = {m: sorted(t for t in edges[m] if t.startswith(NOT_FROM_CORE)) for m in core}
    assert {m: ts for m, ts in bad.items() if ts} == {}
    hub = {m: sorted(t for t in edges[m] if t.startswith(NOT_FROM_CORE[1:]))
           for m in CORE_TO_RESULTS}
    assert {m: ts for m, ts in hub.items() if ts} == {}


def test_results_import_no_sink_command_or_server() -> None:
    edges = graph()
    results = [m for m in edges if in_package(m, RESULTS)]
    assert "avstream.results.reporter" in results and "avstream.results.counters" in results
    bad = {m: sorted(t for t in edges[m] if t.startswith(NOT_FROM_RESULTS)) for m in results}
    assert {m: ts for m, ts in bad.items() if ts} == {}
