"""The bundle contract shared by ``export/`` (writer) and the daemon (reader).

A bundle is a directory holding ``manifest.json`` and three ONNX graphs, split for streaming:

- ``audio``: ``waveform`` float32 (batch, channels, window_samples) ->
  ``audio_probs`` (batch, classes), ``audio_steps`` (batch, frames_per_window, audio_dim)
- ``frame``: ``frames`` uint8 RGB (batch, H, W, 3) -> ``frame_features`` (batch, frame_dim)
- ``head``: ``frame_features`` (batch, frames_per_window, frame_dim), ``audio_steps``,
  ``audio_probs`` -> ``visual_probs``, ``early_probs``, ``final_probs`` (batch, classes)

Every graph has a dynamic batch axis named ``batch``. The visual head does not read the audio
inputs, so a video-only stream feeds zeros there and uses ``visual_probs``.
"""

from typing import Final

MANIFEST_NAME: Final[str] = "manifest.json"
FORMAT_NAME: Final[str] = "avstream-bundle"
FORMAT_VERSION: Final[int] = 2
"""2: the manifest records the audio front end's scaling rule (``frontend``); version 1 has no
such field and its graphs carry FRONTEND_V1."""
SUPPORTED_FORMAT_VERSIONS: Final[tuple[int, ...]] = (1, 2)

# The audio front end's per-window scaling rule, inside the audio graph (so a bundle always runs
# the rule it was trained with; the daemon only reports it). training/model/frontend.py has both.
FRONTEND_V1: Final[str] = "minmax-lrs-v1"
"""Min-max over L, R and L-R together: a mono source's silent L-R squeezes L and R."""
FRONTEND_V2: Final[str] = "minmax-lr-v2"
"""Min-max over L and R only, L-R clamped into their range: mono leaves L and R where they were."""
FRONTENDS: Final[tuple[str, ...]] = (FRONTEND_V1, FRONTEND_V2)
PRECISIONS: Final[tuple[str, ...]] = ("fp32", "int8", "fp16")
"""Every precision a bundle's graphs may have (the main variant or an extra one), in the order
they are listed to users: the reference first, then the CPU's and the GPU's reduced one."""
AUTO: Final[str] = "auto"
"""``--precision auto``: the run picks among the precisions the bundle ships
(avstream/inference/precision.py says how)."""
BATCH_AXIS: Final[str] = "batch"

AUDIO_GRAPH: Final[str] = "audio"
FRAME_GRAPH: Final[str] = "frame"
HEAD_GRAPH: Final[str] = "head"
GRAPHS: Final[tuple[str, ...]] = (AUDIO_GRAPH, FRAME_GRAPH, HEAD_GRAPH)

# Tensor names, the same in every graph that carries them.
WAVEFORM: Final[str] = "waveform"
AUDIO_PROBS: Final[str] = "audio_probs"
AUDIO_STEPS: Final[str] = "audio_steps"
FRAMES: Final[str] = "frames"
FRAME_FEATURES: Final[str] = "frame_features"
VISUAL_PROBS: Final[str] = "visual_probs"
EARLY_PROBS: Final[str] = "early_probs"
FINAL_PROBS: Final[str] = "final_probs"

GRAPH_IO: Final[dict[str, tuple[tuple[str, ...], tuple[str, ...]]]] = {
    AUDIO_GRAPH: ((WAVEFORM,), (AUDIO_PROBS, AUDIO_STEPS)),
    FRAME_GRAPH: ((FRAMES,), (FRAME_FEATURES,)),
    HEAD_GRAPH: ((FRAME_FEATURES, AUDIO_STEPS, AUDIO_PROBS), (VISUAL_PROBS, EARLY_PROBS, FINAL_PROBS)),
}
PIXEL_FORMAT: Final[str] = "rgb24"

# manifest.json, format_version 2 (JSON object; version 1 is the same without "frontend"):
# {
#   "format": "avstream-bundle", "format_version": 2, "variant": "fp32"|"fp16"|"int8",
#   "frontend": "minmax-lrs-v1"|"minmax-lr-v2",
#   "classes": [10 names in output order],
#   "audio": {"sample_rate": 48000, "channels": 2, "window_samples": 48000, "window_seconds": 1.0},
#   "video": {"frames_per_window": 5, "fps": 5, "frame_width": 224, "frame_height": 224,
#             "pixel_format": "rgb24", "layout": "NHWC"},
#   "graphs": {"audio": {"file": "audio.onnx",
#                        "inputs": [{"name": "waveform", "shape": ["batch", 2, 48000], "dtype": "float32"}],
#                        "outputs": [...same form...]}, "frame": {...}, "head": {...}},
#   "files": {"audio.onnx": "<sha256 hex>", "frame.onnx": "...", "head.onnx": "..."},
#   "export": {"opset": 18, "exporter": "...", "torch": "...", "onnx": "...", "created_utc": "..."},
#   "provenance": {"checkpoint": "...", "checkpoint_sha256": "...", "config": {...ModelConfig...},
#                  "training_data": {...}, "metrics": {...checkpoint metrics...}},
#   "quantization": null | {"method": "...", "graphs": [...], "kept_fp32": "...",
#                           "calibration_windows": N, "label_agreement": 0.98, "max_abs_diff": ...,
#                           "accuracy_fp32": ..., "accuracy_variant": ..., "accuracy_change": ...},
#   "variants": {"int8": {"graphs": {...as above...}, "quantization": {...}}, "fp16": {...}}
#               (optional: further precisions in the same bundle; --precision chooses)
# }
