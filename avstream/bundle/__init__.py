"""Model bundles: a directory of ONNX graphs described by ``manifest.json``."""
