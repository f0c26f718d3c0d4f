"""``attn-rtl bench mca``: cycles per head of the MCA unit against the ideal and the measured FLOPs
reduction ``d_in / mean r_j`` (from the RTL's ``samples_total``), on random heads and a real
all-MiniLM-L6-v2 head (RTL run, cocotb, no stalls).

Ideal (every unit busy every cycle, perfect overlap): the input stream of X takes one value per
cycle, ``n·d_in``; the sampler draws one sample per cycle (``d_h`` multipliers), ``Σ r_j``; the
``lanes`` back-end multipliers do ``Y = A·H̃`` in ``m·n·d_h/lanes``. The ideal is the largest of these;
``serial`` is their sum plus the A load ``m·n``. The exact MCA encoding alone would need
``n·d_in`` cycles on the same ``d_h`` multipliers: the sampler's share drops by the FLOPs reduction.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

BENCH_CONFIG = {"d_in": 384, "d_h": 32, "n_max": 32, "m_max": 32, "lanes": 8, "cdf_bits": 16, "ws_width": 18}


def main(argv: list[str] | None = None) -> int:
    from hdl.registry import get_block
    from sim.real_heads import mca_real_head_npz
    from sim.runner import bench_rows

    ap = argparse.ArgumentParser(prog="attn-rtl bench mca", description=__doc__.splitlines()[0])
    ap.add_argument("--sim", default="verilator", choices=("icarus", "verilator"))
    ap.add_argument("--n", type=int, nargs="+", default=[8, 16, 32], help="sequence lengths (m = n)")
    ap.add_argument("--alpha", type=float, default=0.4)
    ap.add_argument("--json", type=Path, help="write the figures to this JSON file")
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmpdir:
        path = Path(tmpdir) / "real.npz"
        n_real = BENCH_CONFIG["n_max"]
        info = mca_real_head_npz(path, n=n_real, m=n_real, alpha=args.alpha)
        # the block is built for the real head's table format; the random heads use the same one
        params = get_block("mca").resolve({**BENCH_CONFIG, "ws_frac": info["params"]["ws_frac"]})
        if max(args.n) > params["n_max"]:
            print(f"bench mca: n={max(args.n)} exceeds n_max={params['n_max']}", file=sys.stderr)
            return 2
        cases = [{"n": n, "m": n, "seed": n, "alpha": args.alpha, "a_scale": 2.0, "label": "random"} for n in args.n]
        cases.append({"npz": str(path), "label": "MiniLM"})
        bench = bench_rows("mca", params, cases, sim=args.sim)
    if bench is None:
        return 1
    d_in, d_h, lanes = params["d_in"], params["d_h"], params["lanes"]
    print(f"mca {params} on {args.sim}, alpha = {args.alpha}: cycles per head (first input beat to last output "
          "beat), no stalls; 1 sample per cycle")
    print("ideal: max(n·d_in, Σr, m·n·d_h/lanes); serial: n·d_in + Σr + m·n·d_h/lanes + m·n; "
          "FLOPs reduction = d_in / mean r (RTL samples_total)")
    print(f"{'case':>7} {'m':>4} {'n':>4} {'Σr':>6} {'mean r':>7} {'FLOPs red.':>10} {'cycles':>8} {'ideal':>8} "
          f"{'meas/ideal':>10} {'serial':>8} {'meas/serial':>11}")
    rows = []
    for r in bench:
        m, n, samples = r["m"], r["n"], r["samples"]
        parts = [n * d_in, samples, m * n * d_h // lanes]
        ideal, serial = max(parts), sum(parts) + m * n
        row = {"case": r["label"], "m": m, "n": n, "samples": samples, "mean_r": samples / n,
               "flops_reduction": d_in * n / samples, "cycles": r["cycles"], "ideal": ideal, "serial": serial,
               "ratio": r["cycles"] / ideal, "ratio_serial": r["cycles"] / serial}
        rows.append(row)
        print(f"{row['case']:>7} {m:4d} {n:4d} {samples:6d} {row['mean_r']:7.2f} {row['flops_reduction']:10.2f} "
              f"{r['cycles']:8d} {ideal:8d} {row['ratio']:10.2f} {serial:8d} {row['ratio_serial']:11.2f}")
    if args.json:
        args.json.write_text(json.dumps({"params": params, "sim": args.sim, "alpha": args.alpha, "rows": rows},
                                        indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
