"""Training data: TAU list reading (tau), the decode-once clip cache (cache), and aligned 1-s
torch examples (datasets)."""

from training.data.cache import CachedClip, ClipCache, build_cache, cache_subdir
from training.data.datasets import CropDataset, CropItem
from training.data.tau import ClipRow, DataReport, TauSplit, read_tau_csv, read_tau_split

__all__ = [
    "CachedClip",
    "ClipCache",
    "ClipRow",
    "CropDataset",
    "CropItem",
    "DataReport",
    "TauSplit",
    "build_cache",
    "cache_subdir",
    "read_tau_csv",
    "read_tau_split",
]
