"""PyTorch side of avstream: the DCASE2021 Task 1B SE-CRNN, its data and its four-step recipe."""

import os

# Seeded CPU runs are repeatable bit for bit only if MKL's GEMM takes the same code path every
# run; by default it picks one by the memory alignment of its inputs, which varies from run to
# run (two seeded runs once differed by 1e-8 in a GRU weight). Strict conditional numerical
# reproducibility fixes the path. Set before torch loads MKL; a user's own MKL_CBWR wins.
os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")
