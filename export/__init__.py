"""Checkpoint -> model bundle (ONNX graphs + manifest.json) that avstream runs on ONNX Runtime.

Public API (import from the submodules; this package imports nothing so ``--help`` is quick):

- ``export.bundle_writer.export_bundle(ckpt_path, out_dir, ExportOptions(...)) -> ExportResult``
- ``export.parity.compare_bundle_to_checkpoint(bundle_dir, ckpt_path, windows) -> ParityReport``
- ``export.onnx_export.export_graphs(model, out_dir) -> {name: ExportedGraph}``
- ``export.graphs.AudioGraph / FrameGraph / HeadGraph``: the streaming graphs as nn.Modules.

Command line: ``python -m export CHECKPOINT OUT_DIR [--fp16] [--int8 --calibrate DATA_DIR]``.
"""
