"""The SE-CRNN audio-visual network of Naranjo-Alcazar et al. (DCASE2021 Task 1B), in plain torch."""

from training.model.avnet import AVSceneNet, BranchOutputs, count_parameters

__all__ = ["AVSceneNet", "BranchOutputs", "count_parameters"]
