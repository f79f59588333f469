"""User-facing errors and the documented exit codes of the ``avstream`` command.

A user's mistake (a missing file, a bad bundle, an unknown device) raises one of these; the CLI
prints its message as one line and exits with its code, never with a traceback.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILURE = 1  # an unexpected internal error (a bug): traceback kept
EXIT_USAGE = 2  # bad input: missing/undecodable file, bad bundle, bad option value
EXIT_DEVICE = 3  # capture devices: none usable, not found, PortAudio missing
EXIT_PROVIDER = 4  # a requested ONNX Runtime provider is not available


class AvstreamError(Exception):
    """An error caused by input the user gave; ``exit_code`` is what the CLI exits with."""

    exit_code: int = EXIT_USAGE


class BundleError(AvstreamError):
    """A model bundle that cannot be trusted or run (message names the file and the problem)."""


class MediaError(AvstreamError):
    """A media file that is missing, undecodable, or has neither audio nor video."""


class DeviceError(AvstreamError):
    exit_code = EXIT_DEVICE


class ProviderError(AvstreamError):
    exit_code = EXIT_PROVIDER
