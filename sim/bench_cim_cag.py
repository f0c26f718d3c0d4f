"""``attn-rtl bench cim_cag``: CIM and CAG throughput measured in RTL simulation (the generated
Verilog on Verilator or Icarus, via the cocotb testbenches' ``bench_throughput`` tests).

CIM ideal: n + l cycles for n tokens (one token per cycle, l-cycle thread pipeline); measured
from the first hash beat to the last cluster index (the RTL spends two cycles per layer, so
n + 2l + 1 is its exact figure). CAG ideal: CACC n cycles (one token per
cycle), CAVG k + pipeline depth (one centroid per cycle); CAVG is measured from the last token
to the last centroid.
"""

from __future__ import annotations

import argparse

from hdl.arith import ReciprocalScaler
from sim.runner import run_cocotb


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="attn-rtl bench cim_cag")
    parser.add_argument("--n", type=int, nargs="+", default=[128, 512], help="tokens per run")
    parser.add_argument("--sim", default="verilator", choices=("icarus", "verilator"))
    parser.add_argument("--cim-set", nargs="*", default=[], metavar="NAME=VALUE", help="CIM parameters")
    parser.add_argument("--cag-set", nargs="*", default=["dim=16"], metavar="NAME=VALUE",
                        help="CAG parameters (default dim=16 keeps the simulation small)")
    args = parser.parse_args(argv or [])
    cim_over = dict(kv.split("=", 1) for kv in args.cim_set)
    cag_over = dict(kv.split("=", 1) for kv in args.cag_set)
    status = 0
    print(f"simulator: {args.sim}")
    print(f"{'block':5} {'n':>5} {'l/k':>5} {'measured':>9} {'ideal':>7} {'ratio':>6}  note")
    for n in args.n:
        cim_params = {**cim_over, "max_tokens": max(n, int(cim_over.get("max_tokens", n)))}
        res = run_cocotb("cim", cim_params, sim=args.sim, testcase="bench_throughput",
                         extra_env={"ATTN_RTL_BENCH_N": str(n)})
        if not res.ok:
            print(f"cim n={n}: simulation failed (see {res.build_dir}/test.log)")
            status = 1
            continue
        l = res.params["hash_len"]
        cyc = res.stats["cycles"]
        print(f"{'cim':5} {n:>5} {l:>5} {cyc:>9} {n + l:>7} {cyc / (n + l):>6.3f}  "
              f"first hash beat -> last index, {res.stats['clusters']} clusters; latency 2l+1 = {2 * l + 1}"
              " (two cycles per layer for timing)")

        cag_params = {**cag_over, "max_tokens": max(n, int(cag_over.get("max_tokens", n)))}
        res = run_cocotb("cag", cag_params, sim=args.sim, testcase="bench_throughput",
                         extra_env={"ATTN_RTL_BENCH_N": str(n)})
        if not res.ok:
            print(f"cag n={n}: simulation failed (see {res.build_dir}/test.log)")
            status = 1
            continue
        k, cacc, cavg = res.stats["k"], res.stats["cacc_cycles"], res.stats["cavg_cycles"]
        depth = ReciprocalScaler.LATENCY + 2  # memory read + word register + shared divider
        print(f"{'cacc':5} {n:>5} {'':>5} {cacc:>9} {n:>7} {cacc / n:>6.3f}  first token -> last token accepted")
        print(f"{'cavg':5} {n:>5} {k:>5} {cavg:>9} {k + depth:>7} {cavg / (k + depth):>6.3f}  "
              f"last token -> last centroid (k + {depth}; +3 for the CACC stages and write-back)")
        print(f"{'cag':5} {n:>5} {k:>5} {cacc + cavg:>9} {n + k + depth:>7} {(cacc + cavg) / (n + k + depth):>6.3f}"
              f"  whole run, d={res.params['dim']}")
    return status


if __name__ == "__main__":
    raise SystemExit(main())
