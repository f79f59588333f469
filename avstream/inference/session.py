"""ONNX Runtime sessions, configured explicitly and honest about where they run.

- Providers: CUDA then CPU by default (whichever this onnxruntime offers); ``--provider``
  forces one, and a forced provider that is missing, or that fails to start, is a
  ProviderError (exit 4), never a quiet fallback. The providers reported are the ones the
  session really runs (``get_providers()``): onnxruntime-gpu on a host without CUDA lists the
  CUDA provider as available and then falls back to the CPU.
- Threads: explicit intra-op count (default: the CPUs this process may use, at most 4), one
  inter-op thread with sequential execution (each graph is a chain), and no spinning: idle ORT
  workers otherwise burn a core each between hops.
- IO binding where CUDA runs: inputs are bound from host memory and outputs allocated by ORT,
  saving the per-run copies and synchronisation of ``run()``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from avstream.errors import BundleError, ProviderError

log = logging.getLogger(__name__)

CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"
DEFAULT_PROVIDERS: tuple[str, ...] = (CUDA, CPU)
PROVIDER_ALIASES: dict[str, str] = {
    "cpu": CPU,
    "cuda": CUDA,
    "tensorrt": "TensorrtExecutionProvider",
    "openvino": "OpenVINOExecutionProvider",
    "dml": "DmlExecutionProvider",
    "coreml": "CoreMLExecutionProvider",
}
MAX_DEFAULT_THREADS = 4
"""Beyond 4 threads these small per-hop graphs gain little and take cores from decoding."""
LOG_ERRORS_ONLY = 3

ORT_NUMPY_TYPES: dict[str, type[np.generic]] = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(uint8)": np.uint8,
    "tensor(int64)": np.int64,
}


def usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def default_intra_threads() -> int:
    return max(1, min(usable_cpus(), MAX_DEFAULT_THREADS))


@dataclass(frozen=True)
class SessionConfig:
    provider: str | None = None
    """None: CUDA then CPU, whichever are available. Else a provider name or alias (cpu, cuda)."""
    intra_threads: int = 0
    """0: ``default_intra_threads()``."""
    inter_threads: int = 1
    log_severity: int = LOG_ERRORS_ONLY
    io_binding: bool | None = None
    """None: IO binding exactly when the CUDA provider runs (on the CPU it only adds calls)."""

    def __post_init__(self) -> None:
        if self.intra_threads < 0 or self.inter_threads < 1:
            raise ValueError(
                f"threads intra={self.intra_threads} inter={self.inter_threads}; expected "
                f"intra >= 0 (0 = automatic) and inter >= 1"
            )


def resolve_providers(provider: str | None) -> tuple[list[str], bool]:
    """The provider list to ask for, and whether it was forced by the user."""
    available = ort.get_available_providers()
    if provider is None:
        wanted = [p for p in DEFAULT_PROVIDERS if p in available]
        if not wanted:
            raise ProviderError(
                f"none of the default providers {list(DEFAULT_PROVIDERS)} is available in this "
                f"onnxruntime; available: {available}"
            )
        return wanted, False
    name = PROVIDER_ALIASES.get(provider.strip().lower(), provider.strip())
    if name not in available:
        raise ProviderError(
            f"provider '{provider}' ({name}) is not available in this onnxruntime "
            f"{ort.__version__}; available: {available} (for CUDA install onnxruntime-gpu "
            f"instead of onnxruntime)"
        )
    return [name], True


def session_options(config: SessionConfig) -> ort.SessionOptions:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = config.intra_threads or default_intra_threads()
    opts.inter_op_num_threads = config.inter_threads
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
    opts.log_severity_level = config.log_severity
    return opts


class GraphSession:
    """One graph: named inputs with their numpy dtypes, and ``run`` on host arrays."""

    def __init__(self, name: str, path: Path, config: SessionConfig) -> None:
        providers, forced = resolve_providers(config.provider)
        try:
            self.session = ort.InferenceSession(
                str(path), session_options(config), providers=providers
            )
        except Exception as e:  # ORT's pybind errors have no common public base class
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            if forced:
                raise ProviderError(f"provider {providers[0]} could not run graph {path}: {first}") from e
            raise BundleError(f"graph {path} could not be loaded by onnxruntime: {first}") from e
        self.name = name
        self.providers: tuple[str, ...] = tuple(self.session.get_providers())
        if forced and providers[0] not in self.providers:
            raise ProviderError(
                f"provider {providers[0]} was requested but onnxruntime runs graph '{name}' on "
                f"{list(self.providers)} (its libraries failed to load; see the log above)"
            )
        if not forced and providers[0] not in self.providers:
            log.warning("graph %s: %s is listed but did not start; running on %s", name,
                        providers[0], list(self.providers))
        self.output_names = tuple(o.name for o in self.session.get_outputs())
        self.input_types: dict[str, type[np.generic]] = {}
        for i in self.session.get_inputs():
            if i.type not in ORT_NUMPY_TYPES:
                raise BundleError(f"graph {path} input '{i.name}' is {i.type}; expected one of "
                                  f"{list(ORT_NUMPY_TYPES)}")
            self.input_types[i.name] = ORT_NUMPY_TYPES[i.type]
        self.input_shapes = {i.name: tuple(i.shape) for i in self.session.get_inputs()}
        self.uses_io_binding = (CUDA in self.providers if config.io_binding is None
                                else config.io_binding)
        self._binding = self.session.io_binding() if self.uses_io_binding else None

    def run(self, feeds: Mapping[str, np.ndarray]) -> Sequence[np.ndarray]:
        """Outputs in ``output_names`` order, as host arrays."""
        if self._binding is None:
            return self.session.run(None, feeds)
        binding = self._binding
        binding.clear_binding_inputs()
        binding.clear_binding_outputs()
        for name, value in feeds.items():
            binding.bind_cpu_input(name, value)
        for name in self.output_names:
            binding.bind_output(name, "cpu")
        self.session.run_with_iobinding(binding)
        return binding.copy_outputs_to_cpu()
