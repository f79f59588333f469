"""Files the decoded-clip cache writes: whole or not at all, and one builder at a time.

A file is written under a temporary name in its own folder and renamed over the target, so a
reader (or an interrupted build that resumes) never sees half of it. The cache folder's lock is
an flock, released by the kernel if its holder dies.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import numpy as np

log = logging.getLogger(__name__)


def write_atomic(path: Path, write: Callable[[IO[Any]], None], mode: str = "wb") -> None:
    """``write(f)`` into a temporary file beside ``path``, then rename it to ``path``."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_npy_atomic(path: Path, array: np.ndarray) -> None:
    write_atomic(path, lambda f: np.save(f, array, allow_pickle=False))


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    write_atomic(path, lambda f: json.dump(data, f, indent=0, sort_keys=True), mode="w")


@contextmanager
def locked(directory: Path, name: str) -> Iterator[bool]:
    """Hold an exclusive flock on ``directory/name``; yields False when the folder is read-only."""
    try:
        fd = os.open(directory / name, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        log.info("cache %s is not writable (%s): using it read-only", directory, e)
        yield False
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.warning("cache %s is being built by another process: waiting for it", directory)
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield True
    finally:
        os.close(fd)  # closing releases the lock
