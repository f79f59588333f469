"""A device as a user names it: an index (``0``, ``"0"``) or a name or URL (any other text).

``--mic``/``--camera`` on the command line and ``mic``/``camera`` in serve's config are read by
this one function, so "2" means input 2 everywhere and a name is never taken for an index.
"""

from __future__ import annotations


def parse_device(spec: int | str) -> int | str:
    """An int (or all-digit text) is an index; any other text, stripped, is a name or URL."""
    if isinstance(spec, int):
        return spec
    text = spec.strip()
    return int(text) if text.isdigit() else text
