"""The machine's fp32 matrix-multiply rate: the ceiling for a VGG16 frame encode on the CPU.

    python -m bench.matmul [--size 2048] [--repeats 10] [--json]

Times numpy's float32 ``a @ b`` for two size x size matrices (BLAS SGEMM, all cores it uses)
and reports the best of ``repeats`` runs as GFLOP/s (2 x size^3 floating-point operations each).
bench/RESULTS.md compares the frame graph's rate with it.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

DEFAULT_SIZE = 2048
DEFAULT_REPEATS = 10
FLOP_PER_MULTIPLY_ADD = 2


def sgemm_gflops(size: int, repeats: int, seed: int = 0) -> float:
    """Best-of-``repeats`` GFLOP/s of a size x size float32 matrix product."""
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((size, size), dtype=np.float32)
    b = rng.standard_normal((size, size), dtype=np.float32)
    a @ b  # warm-up: thread pool start, page faults
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return FLOP_PER_MULTIPLY_ADD * size**3 / best / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=DEFAULT_SIZE)
    parser.add_argument("--repeats", type=int, default=DEFAULT_REPEATS)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    rate = sgemm_gflops(args.size, args.repeats)
    if args.json:
        print(json.dumps({"size": args.size, "repeats": args.repeats, "sgemm_gflops": round(rate, 1)}))
    else:
        print(f"float32 {args.size}x{args.size} matmul: {rate:.1f} GFLOP/s (best of {args.repeats})")


if __name__ == "__main__":
    main()
