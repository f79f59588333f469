"""The terminal view (rich): label, confidence, a bar per class, latency, drops, providers.

Redrawn at most ``MAX_FPS`` times a second whatever the hop, so a fast replay spends its time
on inference, not on the terminal.
"""

from __future__ import annotations

import time

from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from avstream.results.records import HopRecord, RunInfo
from avstream.results.summary import RunSummary

MAX_FPS = 8.0
BAR_WIDTH = 30


class LiveView:
    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console()
        self._live: Live | None = None
        self._info: RunInfo | None = None
        self._last_draw = 0.0
        self._pending: HopRecord | None = None

    def start(self, info: RunInfo) -> None:
        self._info = info
        self._live = Live(self._render(None), console=self.console, auto_refresh=False,
                          transient=False)
        self._live.start()

    def hop(self, record: HopRecord) -> None:
        now = time.monotonic()
        self._pending = record
        if now - self._last_draw >= 1.0 / MAX_FPS and self._live is not None:
            self._live.update(self._render(record), refresh=True)
            self._last_draw = now
            self._pending = None

    def end(self, summary: RunSummary) -> None:
        if self._live is None:
            return
        if self._pending is not None:
            self._live.update(self._render(self._pending), refresh=True)
        self._live.stop()
        self._live = None

    def _render(self, r: HopRecord | None) -> Panel:
        info = self._info
        title = "avstream"
        if info is not None:
            title = f"avstream - {info.source} ({info.paced})"
        if r is None:
            return Panel(Text("waiting for the first window..."), title=title)
        head = Text()
        head.append(f"{r.label}", style="bold green" if r.label != "unknown" else "bold yellow")
        head.append(f"  {r.confidence:.0%}", style="bold")
        head.append(f"   t={r.t:.1f} s   raw: {r.raw_label} {r.raw_confidence:.0%}   "
                    f"[{'+'.join(r.modalities)} -> {r.branch}]")
        bars = Table.grid(padding=(0, 1))
        bars.add_column(justify="right")
        bars.add_column()
        bars.add_column(justify="right")
        for name, p in zip(r.classes, r.probs, strict=True):
            n = int(round(float(p) * BAR_WIDTH))
            style = "green" if name == r.label else "blue"
            bars.add_row(name, Text("#" * n + "." * (BAR_WIDTH - n), style=style), f"{p:.2f}")
        lat = "  ".join(f"{k} {v:.1f}" for k, v in r.latency_ms.items())
        c = r.counters
        drops = (f"hops dropped {c.hops_dropped}  corrupt {c.corrupt_packets}  frames skipped "
                 f"{c.frames_skipped}  audio overflows {c.audio_overflows}  gaps {c.audio_gaps}  "
                 f"no media {c.windows_without_media}")
        lines = [head, bars, Text(f"latency ms: {lat}"), Text(drops)]
        if info is not None:
            lines.append(Text(f"providers: {info.providers_line()}   hop {info.hop_s:g} s"))
        return Panel(Group(*lines), title=title)
