"""Benchmark of the CTA systolic array (``attn-rtl bench systolic_array``).

Runs the CTA step sequence (LSH x4 with reload/keep/residuals, K̄, V̄, Q̄ + shortcut, scores,
output, Q̄, scores, output) back to back on the generated RTL (cocotb, results checked ``==``
against golden.systolic) and prints, per phase, the cycles measured in RTL simulation against the
ideal MACs/(b·d), the bubble cycles between phases, and the simulation speed per simulator.

    attn-rtl bench systolic_array --args --sims verilator icarus --tokens 16 --keys 16 --din 64 384 1024
"""

from __future__ import annotations

import argparse
import os

from golden.systolic import SystolicConfig, out_latency, res_latency


def _table(cfg: SystolicConfig, stats: dict, recip_latency: int) -> None:
    print(f"    {'#':>2} {'phase':<7} {'passes':>6} {'beats':>5} {'issue':>5} {'ideal':>7} {'issue-ideal':>11} "
          f"{'per pass':>8} {'to last result':>14} {'fill/drain':>10} {'bubbles before':>14}")
    for n, ph in enumerate(stats["phases"]):
        bub = "-" if ph["bubbles_before"] is None else str(ph["bubbles_before"])
        over = ph["issue_cycles"] - ph["ideal"]
        passes = ph.get("passes", 1)
        print(f"    {n:>2} {ph['phase']:<7} {passes:>6} {ph['beats']:>5} {ph['issue_cycles']:>5} {ph['ideal']:>7.1f} "
              f"{over:>11.1f} {over / passes:>8.1f} {ph['cycles']:>14} {ph['cycles'] - ph['issue_cycles']:>10} "
              f"{bub:>14}")
    extra = res_latency(cfg) - cfg.b - cfg.d
    print(f"    fill/drain: DF1 results {res_latency(cfg)} = b+d+{extra} cycles after their beat; "
          f"output rows d-1..0 from {out_latency(cfg, recip_latency)} = b+d+4+{recip_latency} cycles "
          "after the last beat (+d-1 for row 0)")


def main(argv: list[str] | None = None) -> int:
    from hdl.arith import ReciprocalScaler
    from hdl.registry import get_block, parse_overrides
    from hdl.systolic_array import config_from_params
    from sim.runner import run_cocotb

    ap = argparse.ArgumentParser(prog="bench systolic_array")
    ap.add_argument("--sims", nargs="+", default=["verilator", "icarus"], choices=("verilator", "icarus"))
    ap.add_argument("--tokens", type=int, default=16, help="tokens per LSH phase")
    ap.add_argument("--keys", type=int, default=16, help="k1+k2 keys of the score/output phases")
    ap.add_argument("--icarus-tokens", type=int, default=4, help="tokens on Icarus (slow at 8x64)")
    ap.add_argument("--set", action="append", metavar="NAME=VALUE")
    ap.add_argument("--opt", default="-O0", help="C++ optimisation of the Verilator build (default -O0)")
    ap.add_argument("--din", type=int, nargs="+", default=None,
                    help="dot-product lengths of the LSH/linear phases (default: d, 384, 1024 on Verilator; "
                    "d on Icarus)")
    args = ap.parse_args(argv)
    params = get_block("systolic_array").resolve(parse_overrides(args.set))
    cfg = config_from_params(params)
    status = 0
    print(f"  systolic array b={cfg.b} d={cfg.d}; ideal = MACs/(b*d); issue = cycles the phase occupies the input "
          "(incl. b value loads per reload); LSH uses l=6 of b columns")
    for sim in args.sims:
        tokens = args.tokens if sim == "verilator" else min(args.tokens, args.icarus_tokens)
        keys = args.keys if sim == "verilator" else min(args.keys, args.icarus_tokens)
        dins = args.din or ([cfg.d, 384, 1024] if sim == "verilator" else [cfg.d])
        os.environ["ATTN_RTL_VERILATOR_OPT"] = args.opt  # read by sim.runner.verilator_make_flags
        for din in dins:
            res = run_cocotb("systolic_array", params, sim=sim, testcase="test_phases_back_to_back",
                             extra_env={"SA_TOKENS": str(tokens), "SA_KEYS": str(keys), "SA_DIN": str(din)})
            st = res.stats
            ok = res.ok and bool(st.get("phases"))
            status |= 0 if ok else 1
            print(f"  [{sim}] d_in {din} ({cfg.passes(din)} passes): {'PASS' if ok else 'FAIL'} (results == golden, "
                  f"accept cycles == golden schedule): tokens {tokens}, keys {keys}; build {res.build_seconds:.0f} s"
                  + (f" (C++ {args.opt})" if sim == "verilator" else ""))
            if not ok:
                continue
            _table(cfg, st, ReciprocalScaler.LATENCY)
            worst = max(p["issue_cycles"] - p["ideal"] for p in st["phases"] if p["phase"] != "lsh")
            bubbles = sum(p["bubbles_before"] or 0 for p in st["phases"])
            print(f"    worst issue-ideal per phase (non-LSH) {worst:.1f} cycles (target <= b+d = {cfg.b + cfg.d}); "
                  f"bubbles between phases {bubbles} (all from the "
                  f"{sum(1 for p in st['phases'] if p['bubbles_before'])} shortcut hand-overs)")
            print(f"    simulation speed: {st['sim_cycles']} cycles in {st['sim_seconds']:.2f} s = "
                  f"{st['sim_cycles'] / st['sim_seconds']:.0f} cycles/s (cocotb, including the Python testbench)")
    return status
