"""``run``: the main job on the default configuration (``make run``).

``attn-rtl run`` (target ``cta``, the default): a real all-MiniLM-L6-v2 head (built-in 256-token
text, layer 2, head 5) through the generated CTA accelerator block (``hdl.cta``: b = 8, d = 64,
d_in = 384 in six passes) on Verilator, every output row ``==`` golden.cta.cta_fixed, with k0/k1/k2,
the cycles per Table I step and Fig. 12 group, the ratio to the ideal exact-attention accelerator
and the head's error; ``--json`` writes the figures with ``"bit_exact"``.

``--params FILE`` (a per-head file of ``attn-rtl calibrate cta``, :mod:`golden.cta_params`) runs the
head with its calibrated widths and hash length instead of ``--widths``.

``attn-rtl run sa-head``: the same head's systolic-array program alone (:mod:`sim.run_head`), every
SA result at the exact cycle of the golden cycle model.

``attn-rtl run systolic_array``: the array check on random data (every phase back to back: LSH
with value-register reload and keep, LSH on residual tokens, K̄/V̄ linear, Q̄ with the query
shortcut, scores, two output phases, plus corner cases and random source bubbles) with the
cycles per phase vs ideal.
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path
from typing import Any


def _run(args: argparse.Namespace) -> int:
    from attn_rtl.cli import UserError, parse_sets

    if args.target in ("cta", "sa-head"):
        from sim.run_head import run_cta_head, run_head
        from sim.runner import SimulatorMissing

        text = args.text
        if args.text_file is not None:
            try:
                text = Path(args.text_file).read_text()
            except OSError as exc:
                raise UserError(f"--text-file: {exc}") from None
        if text is not None and not text.strip():
            raise UserError("--text: empty text")
        try:
            hs = _head_settings(args)
            overrides = parse_sets(args.set)
            if args.target == "cta":
                if hs.l is not None:   # the parameter file's hash length is the block's l
                    if overrides.get("l", hs.l) != hs.l:
                        raise ValueError(f"--set l={overrides['l']} differs from l={hs.l} of {hs.source}")
                    overrides["l"] = hs.l
                return run_cta_head(text=text, layer=args.layer, head=args.head, widths=hs.widths,
                                    lsh_seed=args.lsh_seed, overrides=overrides, sim=args.sim, out_dir=args.output,
                                    json_path=args.json)
            return run_head(text=text, layer=args.layer, head=args.head, widths=hs.widths, lsh_seed=args.lsh_seed,
                            overrides=overrides, sim=args.sim, out_dir=args.output, json_path=args.json, l=hs.l)
        except SimulatorMissing as exc:
            raise UserError(str(exc)) from None
        except (ValueError, FileNotFoundError) as exc:
            raise UserError(str(exc)) from None
    return _run_array(args)


def _head_settings(args: argparse.Namespace) -> Any:
    """``--params FILE`` / ``--widths`` -> :class:`sim.run_head.HeadSettings` of (--layer, --head)."""
    from sim.run_head import resolve_head_settings

    hs = resolve_head_settings(layer=args.layer, head=args.head, widths=args.widths, params=args.params)
    if hs.source not in ("default", "--widths"):
        print(f"attn-rtl run: widths of layer {args.layer} head {args.head} from {hs.source}: {hs.widths}, "
              f"l = {hs.l}", flush=True)
    return hs


def _run_array(args: argparse.Namespace) -> int:
    from attn_rtl.cli import UserError, parse_sets
    from golden.systolic import out_latency, res_latency
    from hdl.arith import ReciprocalScaler
    from hdl.registry import get_block
    from hdl.systolic_array import SHORTCUT_GAP, config_from_params
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
    from sim.run_head import DEFAULT_HEAD, DEFAULT_LAYER, DEFAULT_WIDTHS

    p = sub.add_parser("run", help="run a real MiniLM head through the CTA accelerator RTL (or the array alone)")
    p.add_argument("target", nargs="?", default="cta", choices=("cta", "sa-head", "systolic_array"),
                   help="cta (default): a MiniLM head through the CTA accelerator block; sa-head: the head's "
                   "systolic-array program alone (cycles == golden model); systolic_array: random programs")
    p.add_argument("--sim", default="verilator", choices=("verilator", "icarus"))
    p.add_argument("--text", default=None, help="text of the head (default: the built-in 256-token text)")
    p.add_argument("--text-file", default=None, help="read the text from a file")
    p.add_argument("--layer", type=int, default=DEFAULT_LAYER, help=f"MiniLM layer 0-5 (default {DEFAULT_LAYER})")
    p.add_argument("--head", type=int, default=DEFAULT_HEAD, help=f"head 0-11 (default {DEFAULT_HEAD})")
    p.add_argument("--widths", type=float, nargs=3, default=None, metavar=("W0", "W1", "W2"),
                   help="LSH bucket widths of LSH_0, LSH_1, LSH_2 (default "
                   f"{' '.join(f'{w:g}' for w in DEFAULT_WIDTHS)})")
    p.add_argument("--params", default=None, metavar="FILE",
                   help="per-head CTA parameter file (attn-rtl calibrate cta): the widths and hash length of "
                   "--layer/--head (not with --widths)")
    p.add_argument("--lsh-seed", type=int, default=0, help="seed of the LSH parameters")
    p.add_argument("--json", default=None, metavar="FILE", help="write the printed figures (and bit_exact) as JSON")
    p.add_argument("--set", action="append", metavar="NAME=VALUE", help="override a parameter")
    p.add_argument("-o", "--output", default="build", help="output directory (default: build)")
    p.add_argument("--tokens", type=int, default=24, help="systolic_array: tokens per LSH phase (default 24)")
    p.add_argument("--keys", type=int, default=24, help="systolic_array: compressed keys k1+k2 (default 24)")
    p.add_argument("--seed", type=int, default=1, help="systolic_array: random seed")
    p.set_defaults(func=_run)
