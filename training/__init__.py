"""PyTorch side of avstream: the DCASE2021 Task 1B SE-CRNN, its data and its four-step recipe."""
