"""Errors for bad training data: a missing dataset folder, a malformed CSV, an unknown label.

DataError is a ValueError (what callers of a reader expect) and an AvstreamError, so the CLI
prints its one-line message and exits with EXIT_USAGE instead of a traceback.
"""

from __future__ import annotations

from avstream.errors import EXIT_USAGE, AvstreamError


class DataError(AvstreamError, ValueError):
    """A dataset that cannot be read as given; the message names the file, the problem and what
    was expected."""

    exit_code = EXIT_USAGE


class CacheError(DataError):
    """An on-disk clip cache that does not match what was asked for (rate, frame size, layout)."""
