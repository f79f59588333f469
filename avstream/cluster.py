"""Ray, the optional cluster engine: import it, connect to it, label an archive on it.

Ray is the ``cluster`` extra (``pip install -e ".[cluster]"``); without it ``--ray`` fails with
that line, never by running locally instead. ``--ray`` alone starts a private Ray instance on
this machine; ``--ray ADDRESS`` joins a running cluster (``auto``, ``HOST:PORT`` or
``ray://HOST:PORT``), where inputs and ``--out`` must be paths every node sees (a shared mount).
"""

from __future__ import annotations

import logging
import re
from types import ModuleType
from typing import TYPE_CHECKING

from avstream.errors import AvstreamError

if TYPE_CHECKING:
    from avstream.batch import BatchJob, BatchPlan, OnResult

log = logging.getLogger(__name__)

INSTALL_HINT = 'pip install -e ".[cluster]"'
LOCAL = "local"
"""The value of a bare ``--ray``: start a Ray instance on this machine."""
_ADDRESS = re.compile(r"^(auto|local|ray://[\w.\-]+(:\d+)?|[\w.\-]+:\d+)$")


def require_ray() -> ModuleType:
    """``import ray`` or one line saying what to install."""
    try:
        import ray
    except ImportError as e:
        raise AvstreamError(f"--ray needs Ray, which is not installed ({e.msg}); install it "
                            f"with: {INSTALL_HINT}") from e
    return ray


def check_address(address: str) -> str:
    """``--ray`` values: local, auto, HOST:PORT or ray://HOST:PORT (one line if not)."""
    if not _ADDRESS.match(address):
        raise AvstreamError(
            f"--ray {address!r}; expected nothing (a local Ray instance), 'auto', HOST:PORT or "
            f"ray://HOST:PORT (write --ray=ADDRESS, or --ray after the inputs)")
    return address


def check_ray_option(address: str) -> None:
    """Before anything slow: the ``--ray`` value is an address and Ray is installed."""
    check_address(address)
    require_ray()


def connect(address: str, num_cpus: int | None = None) -> ModuleType:
    """``ray.init`` for ``--ray [ADDRESS]`` (reusing a connection this process already has)."""
    ray = require_ray()
    check_address(address)
    if not ray.is_initialized():
        if address == LOCAL:
            ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)
        else:
            try:
                ray.init(address=address, log_to_driver=False)
            except ConnectionError as e:
                raise AvstreamError(f"--ray {address}: no Ray cluster there ({e}); expected the "
                                    f"address of a running one (`ray start --head`)") from e
    return ray


def run_ray_batch(job: BatchJob, plan: BatchPlan, on_result: OnResult, address: str) -> None:
    """One Ray task per file of ``plan.todo``, each asking for ``job.threads`` CPUs; results are
    reported as they finish. A Ray worker keeps the engine it opened for its next task."""
    from avstream.batch import label_file

    ray = require_ray()
    started_here = address == LOCAL and not ray.is_initialized()
    connect(address)
    try:
        task = ray.remote(num_cpus=job.threads, max_retries=1)(label_file)
        pending = [task.remote(job, str(f), str(plan.out), plan.names[f]) for f in plan.todo]
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            on_result(ray.get(done[0]))
    finally:
        if started_here:
            ray.shutdown()
