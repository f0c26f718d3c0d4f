"""``soak BLOCK``: the vector testbench on many random vectors, in batches (Verilator by default)."""

from __future__ import annotations

import argparse

from attn_rtl.cli import add_json_option, add_out_option, emit_json


def _soak(args: argparse.Namespace) -> int:
    from attn_rtl.cli import UserError, parse_sets
    from sim.vector_tb import soak

    if args.vectors < 1:
        raise UserError(f"--vectors must be >= 1, got {args.vectors}")
    if args.batch is not None and args.batch < 1:
        raise UserError(f"--batch must be >= 1, got {args.batch}")
    if args.jobs < 0:
        raise UserError(f"--jobs must be >= 0, got {args.jobs}")
    if args.min_beats < 0:
        raise UserError(f"--min-beats must be >= 0, got {args.min_beats}")
    quiet = args.json == "-"
    out = f"build/soak_{args.block}" if args.out == "build/soak_BLOCK" else args.out
    if args.vs_cocotb:
        from sim.vector_tb import speed_vs_cocotb

        if args.block != "systolic_array":
            raise UserError("--vs-cocotb compares the systolic_array only (its cocotb test times its own loop)")
        try:
            fig = speed_vs_cocotb(parse_sets(args.set), out, beats=args.vectors, seed=args.seed,
                                  log=None if quiet else print)
        except RuntimeError as exc:
            raise UserError(str(exc).splitlines()[0]) from None
        emit_json(args.json, fig)
        return 0
    try:
        res = soak(args.block, parse_sets(args.set), out, vectors=args.vectors, seed=args.seed, sim=args.sim,
                   batch=args.batch, waves=args.waves, log=None if quiet else print, stop_on_fail=not args.keep_going,
                   jobs=args.jobs, min_beats=args.min_beats)
    except RuntimeError as exc:
        raise UserError(str(exc).splitlines()[0]) from None
    emit_json(args.json, res)
    return 0 if res["ok"] else 1


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("soak", help="run a block's vector testbench on many random vectors with random stalls")
    p.add_argument("block")
    p.add_argument("--vectors", type=int, default=100_000, help="vectors in total (default: 100000)")
    p.add_argument("--seed", type=int, default=1, help="seed of every batch's vectors and stalls (default: 1)")
    p.add_argument("--sim", choices=("verilator", "icarus"), default="verilator")
    p.add_argument("--batch", type=int, default=None, help="vectors per batch (default: per block)")
    p.add_argument("--jobs", type=int, default=2,
                   help="worker processes computing the golden vectors of later batches while the simulator "
                        "runs (default: 2; 0: none)")
    p.add_argument("--min-beats", type=int, default=0,
                   help="add batches past --vectors until this many stream beats (in + out, counted by the "
                        "bench on the DUT's ports) have passed (default: 0)")
    p.add_argument("--set", action="append", metavar="NAME=VALUE", help="override a parameter")
    p.add_argument("--waves", action="store_true", help="dump waves.vcd (of the last batch run)")
    p.add_argument("--vs-cocotb", action="store_true",
                   help="systolic_array: simulation speed of this bench (no stalls, --vectors beats) against "
                        "the cocotb path on Verilator, and the ratio")
    p.add_argument("--keep-going", action="store_true", help="run every batch even after a failing one")
    add_out_option(p, "build/soak_BLOCK", "work directory")
    add_json_option(p)
    p.set_defaults(func=_soak)
