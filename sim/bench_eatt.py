"""``attn-rtl bench eatt``: cycles per head of the E-ATT unit against the ideal, on random heads
and a real all-MiniLM-L6-v2 head (RTL run, cocotb, no stalls).

Ideal (every unit of the datapath busy every cycle, perfect overlap): the select-accumulate bank
takes one W row per cycle, ``(m + n)·d_in`` cycles; the L1 unit one key per cycle, ``m·n``; the
exp unit one score per cycle, ``m·n``; the ``lanes`` P·V multipliers ``m·n·d_h/lanes``. The ideal
is the largest of these (the unit's bottleneck); ``serial`` is their sum (no overlap at all).
The measured figure adds the pipeline fills and the passes the design runs in series (within a
row, the back end runs SCORE, EXP, PV, NORM one after the other; the next row's query tokens and
L1 pass overlap the back end).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

BENCH_CONFIG = {"d_in": 384, "d_h": 32, "n_max": 32, "lanes": 8, "weight_width": 12}  # MiniLM head sizes


def main(argv: list[str] | None = None) -> int:
    from hdl.registry import get_block
    from sim.real_heads import eatt_real_head_npz
    from sim.runner import bench_rows

    ap = argparse.ArgumentParser(prog="attn-rtl bench eatt", description=__doc__.splitlines()[0])
    ap.add_argument("--sim", default="verilator", choices=("icarus", "verilator"))
    ap.add_argument("--n", type=int, nargs="+", default=[8, 16, 32], help="sequence lengths (m = n)")
    ap.add_argument("--no-real", action="store_true", help="skip the MiniLM head")
    ap.add_argument("--json", type=Path, help="write the figures to this JSON file")
    args = ap.parse_args(argv)

    params = get_block("eatt").resolve(BENCH_CONFIG)
    if max(args.n) > params["n_max"]:
        print(f"bench eatt: n={max(args.n)} exceeds n_max={params['n_max']}", file=sys.stderr)
        return 2
    d_in, d_h, lanes = params["d_in"], params["d_h"], params["lanes"]
    cases = [{"n": n, "m": n, "seed": n, "label": "random"} for n in args.n]
    with tempfile.TemporaryDirectory() as tmpdir:
        if not args.no_real:
            path = Path(tmpdir) / "real.npz"
            eatt_real_head_npz(path, n=params["n_max"], m=params["n_max"], n_max=params["n_max"])
            cases.append({"npz": str(path), "label": "MiniLM"})
        bench = bench_rows("eatt", params, cases, sim=args.sim)
    if bench is None:
        return 1
    print(f"eatt {params} on {args.sim}: cycles per head (first weight beat to last output beat), no stalls")
    print("ideal: max((m+n)·d_in, m·n, m·n·d_h/lanes) (bottleneck unit busy every cycle); "
          "serial: (m+n)·d_in + 2·m·n + m·n·d_h/lanes")
    print(f"{'case':>7} {'m':>4} {'n':>4} {'cycles':>8} {'ideal':>8} {'meas/ideal':>10} {'serial':>8} "
          f"{'meas/serial':>11}")
    rows = []
    for r in bench:
        m, n = r["m"], r["n"]
        parts = [(m + n) * d_in, m * n, m * n * d_h // lanes]
        ideal, serial = max(parts), sum(parts) + m * n
        row = {"case": r["label"], "m": m, "n": n, "cycles": r["cycles"], "ideal": ideal, "serial": serial,
               "ratio": r["cycles"] / ideal, "ratio_serial": r["cycles"] / serial}
        rows.append(row)
        print(f"{row['case']:>7} {m:4d} {n:4d} {r['cycles']:8d} {ideal:8d} {row['ratio']:10.2f} {serial:8d} "
              f"{row['ratio_serial']:11.2f}")
    if args.json:
        args.json.write_text(json.dumps({"params": params, "sim": args.sim, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
