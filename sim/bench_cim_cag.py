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

from hdl.cag import CentroidAggregator
from sim.runner import run_cocotb


def _bench(block: str, overrides: dict, n: int, sim: str):
    """One ``bench_throughput`` run of ``block`` over n tokens (n_max raised to n), or None if it failed."""
    params = {**overrides, "n_max": max(n, int(overrides.get("n_max", n)))}
    res = run_cocotb(block, params, sim=sim, testcase="bench_throughput", extra_env={"ATTN_RTL_BENCH_N": str(n)})
    if not res.ok:
        print(f"{block} n={n}: simulation failed (see {res.build_dir}/test.log)")
        return None
    return res


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="attn-rtl bench cim_cag")
    parser.add_argument("--n", type=int, nargs="+", default=[128, 512], help="tokens per run")
    parser.add_argument("--sim", default="verilator", choices=("icarus", "verilator"))
    parser.add_argument("--cim-set", nargs="*", default=[], metavar="NAME=VALUE", help="CIM parameters")
    parser.add_argument("--cag-set", nargs="*", default=["d=16"], metavar="NAME=VALUE",
                        help="CAG parameters (default d=16 keeps the simulation small)")
    args = parser.parse_args(argv or [])
    cim_over = dict(kv.split("=", 1) for kv in args.cim_set)
    cag_over = dict(kv.split("=", 1) for kv in args.cag_set)
    status = 0
    print(f"simulator: {args.sim}")
    print(f"{'block':5} {'n':>5} {'l/k':>5} {'measured':>9} {'ideal':>7} {'ratio':>6}  note")
    for n in args.n:
        res = _bench("cim", cim_over, n, args.sim)
        if res is None:
            status = 1
            continue
        l = res.params["l"]
        cyc = res.stats["cycles"]
        print(f"{'cim':5} {n:>5} {l:>5} {cyc:>9} {n + l:>7} {cyc / (n + l):>6.3f}  "
              f"first hash beat -> last index, {res.stats['clusters']} clusters; latency 2l+1 = {2 * l + 1}"
              " (two cycles per layer for timing)")

        res = _bench("cag", cag_over, n, args.sim)
        if res is None:
            status = 1
            continue
        k, cacc, cavg = res.stats["k"], res.stats["cacc_cycles"], res.stats["cavg_cycles"]
        depth = CentroidAggregator.CAVG_LATENCY  # memory read + word register + shared divider
        print(f"{'cacc':5} {n:>5} {'':>5} {cacc:>9} {n:>7} {cacc / n:>6.3f}  first token -> last token accepted")
        print(f"{'cavg':5} {n:>5} {k:>5} {cavg:>9} {k + depth:>7} {cavg / (k + depth):>6.3f}  "
              f"last token -> last centroid (k + {depth}; +3 for the CACC stages and write-back)")
        print(f"{'cag':5} {n:>5} {k:>5} {cacc + cavg:>9} {n + k + depth:>7} {(cacc + cavg) / (n + k + depth):>6.3f}"
              f"  whole run, d={res.params['d']}")
    return status


if __name__ == "__main__":
    raise SystemExit(main())
