"""``run``: the main job on the default configuration (``make run``).

Generates the default CTA systolic array (b = 8, d = 64) into ``build/``, simulates it on Verilator
against golden.systolic (every phase back to back: LSH with value-register reload and keep, LSH on
residual tokens, K̄/V̄ linear, Q̄ with the query shortcut, scores, two output phases, plus corner
cases and random source bubbles) and prints what was checked and the cycles per phase vs ideal.
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path


def _run(args: argparse.Namespace) -> int:
    from attn_rtl.cli import UserError, parse_sets
    from golden.systolic import SHORTCUT_GAP, out_latency, res_latency
    from hdl.arith import ReciprocalScaler
    from hdl.ppe import config_from_params
    from hdl.registry import get_block
    from sim.runner import SimulatorMissing, run_cocotb

    t0 = time.monotonic()
    overrides = parse_sets(args.set)
    params = get_block("systolic_array").resolve(overrides)
    cfg = config_from_params(params)
    print(f"attn-rtl run: CTA systolic array b={cfg.b} d={cfg.d} (acc {cfg.acc_width} bits, tokens {cfg.token_fmt}, "
          f"Q̄K̄V̄ {cfg.qkv_fmt}, scores {cfg.score_fmt}, AP {cfg.ap_fmt})", flush=True)
    env = {"SA_TOKENS": str(args.tokens), "SA_KEYS": str(args.keys), "SA_DIN": str(cfg.d)}
    try:
        res = run_cocotb("systolic_array", params, sim=args.sim, extra_env=env, seed=args.seed)
    except SimulatorMissing as exc:
        raise UserError(str(exc)) from None
    # run_cocotb generated the same Verilog + manifest for its build: copy them to the output directory.
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    for suffix in (".v", ".json"):
        shutil.copyfile(res.build_dir / f"systolic_array{suffix}", out / f"systolic_array{suffix}")
    v_path, j_path = out / "systolic_array.v", out / "systolic_array.json"
    print(f"  generated {v_path} ({v_path.read_text().count(chr(10))} lines) and {j_path}")
    st = res.stats
    status = "PASS" if res.ok else "FAIL"
    print(f"  {args.sim}: build {res.build_seconds:.0f} s, {res.tests - res.failed}/{res.tests} cocotb tests {status} "
          f"({res.build_dir}/test.log)")
    if not st.get("phases"):
        return 1
    print(f"  checked bit-exact (==) against golden.systolic: {st['checked_beats']} beats of the CTA step sequence "
          f"+ {st.get('corner_beats', 0)} corner/stall beats; every result at its exact cycle")
    fill = res_latency(cfg) - cfg.b - cfg.d
    print(f"  result latency: {res_latency(cfg)} cycles after a beat (b+d+{fill}); normalized row d-1: "
          f"{out_latency(cfg, ReciprocalScaler.LATENCY)} cycles after an output phase's last beat")
    print(f"  {'#':>2} {'phase':<7} {'beats':>5} {'issue':>5} {'ideal':>6} {'issue-ideal':>11} {'to last result':>14} "
          f"{'bubbles before':>14}")
    for n, ph in enumerate(st["phases"]):
        bub = "-" if ph["bubbles_before"] is None else str(ph["bubbles_before"])
        print(f"  {n:>2} {ph['phase']:<7} {ph['beats']:>5} {ph['issue_cycles']:>5} {ph['ideal']:>6.1f} "
              f"{ph['issue_cycles'] - ph['ideal']:>11.1f} {ph['cycles']:>14} {bub:>14}")
    print("  issue = cycles the phase occupies the array input (value loads included, b per reload; LSH uses "
          f"l={min(6, cfg.b)} of b columns); bubbles: 0 between phases, {SHORTCUT_GAP} after a shortcut (Q̄) phase")
    cycles, seconds = st.get("sim_cycles", 0), st.get("sim_seconds", 0.0)
    if seconds:
        print(f"  simulation: {cycles} cycles in {seconds:.1f} s = {cycles / seconds:.0f} cycles/s; "
              f"total {time.monotonic() - t0:.0f} s")
    return 0 if res.ok else 1


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="generate the default systolic array and check it against the golden model")
    p.add_argument("--sim", default="verilator", choices=("verilator", "icarus"))
    p.add_argument("--set", action="append", metavar="NAME=VALUE", help="override a parameter")
    p.add_argument("-o", "--output", default="build", help="output directory (default: build)")
    p.add_argument("--tokens", type=int, default=24, help="tokens per LSH phase (default 24)")
    p.add_argument("--keys", type=int, default=24, help="compressed keys k1+k2 (default 24)")
    p.add_argument("--seed", type=int, default=1)
    p.set_defaults(func=_run)
