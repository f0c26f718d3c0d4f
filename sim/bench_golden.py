"""Golden-model speed benchmark (``attn-rtl bench golden``): time per method per head.

Runs every method of the accuracy report (float and, where it exists, fixed-point model) at its
default setting on the 12 heads of one MiniLM layer for a short (12-token) and a long
(256-token) text, and on random heads, and prints the median wall time per head call. Methods
whose module is missing are listed as not available. Timing is single-threaded: the benchmark
re-runs itself with ``OPENBLAS_NUM_THREADS=1`` (threaded BLAS on these small matrices mostly
measures thread contention).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence

import numpy as np

from golden.accuracy import builtin_methods
from golden.corpus import CALIBRATION, CORPUS, LONG_TEXT
from golden.minilm import MiniLM
from golden.reference import HeadInputs

__all__ = ["time_per_head", "main"]


def time_per_head(fn: Callable, heads: Sequence[HeadInputs], settings: Sequence[dict], repeat: int) -> float:
    """Median over ``repeat`` passes of the mean time of one head call, in seconds."""
    passes = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for head, kw in zip(heads, settings, strict=True):
            fn(head, **kw)
        passes.append((time.perf_counter() - t0) / len(heads))
    return statistics.median(passes)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="attn-rtl bench golden", description=__doc__.splitlines()[0])
    parser.add_argument("--layer", type=int, default=2, help="MiniLM layer whose 12 heads are timed")
    parser.add_argument("--repeat", type=int, default=3, help="passes per measurement (median)")
    parser.add_argument("--random-n", type=int, default=128, help="tokens of the random heads")
    args = parser.parse_args(argv)
    if os.environ.get("OPENBLAS_NUM_THREADS") != "1":
        env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        argv_list = list(argv) if argv is not None else sys.argv[1:]
        return subprocess.run([sys.executable, "-m", "sim.bench_golden", *argv_list], env=env).returncode

    model = MiniLM.load()
    rng = np.random.default_rng(0)
    # Random heads with d_in = 128, within the height of CTA's bit-exact systolic model.
    x = rng.normal(size=(args.random_n, 128))
    rand = [HeadInputs(x, x, *(rng.normal(size=(128, 32)) / np.sqrt(128),) * 3) for _ in range(4)]
    cases = {
        f"MiniLM n={len(model.tokenize(CORPUS[0]))}": model.head_inputs(CORPUS[0], args.layer),
        f"MiniLM n={len(model.tokenize(LONG_TEXT))}": model.head_inputs(LONG_TEXT, args.layer),
        f"random n={args.random_n} d_in=128": rand,
    }
    calib = model.head_inputs(CALIBRATION[-1], args.layer)
    calib_rand = [HeadInputs(x, x, *(rng.normal(size=(128, 32)) / np.sqrt(128),) * 3)]
    print(f"time per head call (ms), median of {args.repeat}; MiniLM layer {args.layer}, d_in=384, d_h=32")
    print(f"{'method':<10} {'model':<6} " + " ".join(f"{c:>22}" for c in cases))
    for spec in builtin_methods():
        try:
            fn, fixed = spec.load()
        except (ImportError, AttributeError) as exc:
            print(f"{spec.name:<10} not available ({exc})")
            continue
        for kind, f in (("float", fn), ("fixed", fixed)):
            if f is None:
                continue
            cells = []
            for heads in cases.values():
                if spec.calibrate is not None:
                    pool = calib if heads[0].d_in == calib[0].d_in else calib_rand
                    kws = [spec.calibrate([pool[i % len(pool)]], spec.default.settings) for i in range(len(heads))]
                else:
                    kws = [dict(spec.default.settings)] * len(heads)
                try:
                    cells.append(f"{1e3 * time_per_head(f, heads, kws, args.repeat):>22.2f}")
                except NotImplementedError:
                    cells.append(f"{'n/a':>22}")
            print(f"{spec.name:<10} {kind:<6} " + " ".join(cells))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
