"""Synthetic data with complementary modalities: a TAU-layout dataset and a scene-changing stream
rendered by the same scene renderers (scenes)."""

from training.synth.dataset import SynthDataset, write_synthetic_dataset
from training.synth.stream import truth_csv_path, write_synthetic_stream

__all__ = ["SynthDataset", "truth_csv_path", "write_synthetic_dataset", "write_synthetic_stream"]
