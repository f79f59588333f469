"""ONNX Runtime sessions for a bundle's three graphs, and the per-hop inference on them."""
