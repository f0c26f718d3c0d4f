"""``attn-rtl bench latte``: cycles per head vs n and kept ratio, and bit operations saved on a
real MiniLM head (RTL run, cocotb, no stalls).

Ideal cycles per head with ``lanes`` multipliers per pass: the estimate needs n²·d_h/lanes
(4-bit MACs), the compensation and P·V kept·d_h/lanes each (kept summed over the rows). The
measured figure adds the filter scan of pruned keys (one cycle each), the exp pass (one cycle per
kept key), the Q load and output beats, and the pipeline fill of every pass
(``golden.latte_cycles.latte_cycles_per_head``). The back end (exp, P·V, normalisation) of one
row overlaps the estimate of the next.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

BENCH_CONFIG = {"n_max": 64, "d_h": 32, "lanes": 8}  # MiniLM head size, FPGA-sized lanes


def _real_head_case(params: dict, tmp: Path, layer: int, head_idx: int, prune: float) -> tuple[dict, dict]:
    from golden.corpus import CALIBRATION, CORPUS
    from golden.latte import calibrate_tau, encode_score_scale, quantize_head
    from golden.minilm import MiniLM
    from hdl.latte import latte_formats

    model = MiniLM.load()
    tau = calibrate_tau([model.head_inputs(t, layer)[head_idx] for t in CALIBRATION], prune)
    text = next(t for t in CORPUS if len(model.tokenize(t)) <= params["n_max"] and len(model.tokenize(t)) >= 20)
    head = model.head_inputs(text, layer)[head_idx]
    qh = quantize_head(head)
    mant, shift = encode_score_scale(qh.score_scale, latte_formats(**params))
    path = tmp / "real_head.npz"
    np.savez(path, q=qh.q, k=qh.k, v=qh.v, tau=tau, mant=mant, shift=shift)
    info = {"text": text, "layer": layer, "head": head_idx, "tau": tau, "target_prune": prune}
    return {"npz": str(path), "label": "real"}, info


def main(argv: list[str] | None = None) -> int:
    from golden.latte import bit_operations
    from golden.latte_cycles import latte_cycles_per_head
    from hdl.latte import Latte, latte_formats
    from hdl.registry import get_block
    from sim.runner import bench_rows

    ap = argparse.ArgumentParser(prog="attn-rtl bench latte", description=__doc__.splitlines()[0])
    ap.add_argument("--sim", default="icarus", choices=("icarus", "verilator"))
    ap.add_argument("--n", type=int, nargs="+", default=[16, 32, 64], help="sequence lengths (m = n)")
    ap.add_argument("--tau", type=int, nargs="+", default=[0, 96, -1], help="τ values (-1: keep all)")
    ap.add_argument("--layer", type=int, default=2)
    ap.add_argument("--head", type=int, default=5)
    ap.add_argument("--prune", type=float, default=0.8, help="calibration target for the real head")
    ap.add_argument("--no-real", action="store_true", help="skip the MiniLM head")
    ap.add_argument("--json", type=Path, help="write the figures to this JSON file")
    args = ap.parse_args(argv)

    params = get_block("latte").resolve(BENCH_CONFIG)
    fmts, lanes = latte_formats(**params), params["lanes"]
    d_h, chunks = fmts.d_h, fmts.d_h // lanes
    latencies = Latte.latencies_for(lanes=lanes, include_ll=params["include_ll"])  # no component built
    if max(args.n) > params["n_max"]:
        print(f"bench latte: n={max(args.n)} exceeds n_max={params['n_max']}", file=sys.stderr)
        return 2
    cases = [{"n": n, "m": n, "tau": fmts.tau_max if t < 0 else t, "seed": n} for n in args.n for t in args.tau]
    real_info = None
    with tempfile.TemporaryDirectory() as tmpdir:
        if not args.no_real:
            case, real_info = _real_head_case(params, Path(tmpdir), args.layer, args.head, args.prune)
            cases.append(case)
        bench = bench_rows("latte", params, cases, sim=args.sim)
    if bench is None:
        return 1
    rows = []
    print(f"latte {params} on {args.sim}: cycles per head (m = n query rows), no stalls")
    print("ideal: n²·d_h/lanes (4-bit estimate) + 2·kept·d_h/lanes (compensation, P·V) in series; "
          "ideal∥: P·V overlapped (n²·d_h + kept·d_h)/lanes; model: golden.latte_cycles")
    print(f"{'case':>6} {'n':>4} {'tau':>6} {'kept':>6} {'cycles':>8} {'ideal':>8} {'meas/ideal':>10} "
          f"{'ideal∥':>8} {'meas/ideal∥':>11} {'model':>8} {'bitops saved':>12}")
    for r in bench:
        n, m, kept = r["n"], r["m"], r["kept"]
        ideal = (m * n * d_h + 2 * kept * d_h) / lanes
        # with P·V on its own multipliers overlapping the next row, the bound is estimate + compensation
        ideal_overlap = (m * n * d_h + kept * d_h) / lanes
        bops = bit_operations(m, n, d_h, kept)
        # timing model (exact)
        model = latte_cycles_per_head(n, r["kept_rows"], chunks=chunks, latencies=latencies)
        row = {"case": r.get("label", "random"), "n": n, "m": m, "tau": r.get("tau", None), "kept": kept,
               "kept_ratio": kept / (m * n), "cycles": r["cycles"], "ideal": ideal, "ratio": r["cycles"] / ideal,
               "ideal_overlap": ideal_overlap, "ratio_overlap": r["cycles"] / ideal_overlap,
               "model": model, **bops}
        rows.append(row)
        tau = r.get("tau", real_info["tau"] if real_info else "")
        print(f"{row['case']:>6} {n:4d} {tau!s:>6} {kept / (m * n):6.1%} {r['cycles']:8d} {ideal:8.0f} "
              f"{row['ratio']:10.2f} {ideal_overlap:8.0f} {row['ratio_overlap']:11.2f} {model:8d} "
              f"{bops['bit_op_reduction']:12.1%}")
    if real_info:
        real = rows[-1]
        print(f"real MiniLM head: layer {real_info['layer']} head {real_info['head']}, n = {real['n']} tokens "
              f"({real_info['text'][:40]}...), tau = {real_info['tau']} calibrated for {real_info['target_prune']:.0%} "
              f"pruning on held-out texts: kept {real['kept_ratio']:.1%} of the keys, "
              f"{real['bit_ops']} vs {real['bit_ops_full']} bit operations "
              f"({real['bit_op_reduction']:.1%} saved vs full 8-bit attention), {real['cycles']} cycles")
        real_info["result"] = real
    if args.json:
        args.json.write_text(json.dumps({"params": params, "sim": args.sim, "rows": rows, "real": real_info},
                                        indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
