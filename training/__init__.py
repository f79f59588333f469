"""PyTorch side of avstream: the DCASE2021 Task 1B SE-CRNN, its data and its four-step recipe."""

import os

# Seeded CPU runs should repeat. Without MKL's strict conditional numerical reproducibility,
# its GEMM results can depend on the memory alignment of the inputs, which changes from run to
# run (two seeded runs once differed by 1e-8 in a GRU weight). Set before torch loads MKL; a
# user's own MKL_CBWR wins.
os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")
