"""avstream: a real-time audio-visual scene classifier running on ONNX Runtime.

The package never imports torch: it runs model bundles written by ``export/``.
"""

__version__ = "0.1.0"
