"""``sweep``: design-space sweep of the CTA accelerator on Dask distributed (see :mod:`sim.sweep`).

    attn-rtl sweep [--quick] [--set NAME=V1,V2,...] [--head random|minilm] [--scheduler ADDRESS]
                   [--workers N] [--synth generic|ecp5] [--out DIR] [--json [FILE]]

Default grid: Fig. 13 (SA width b = 2..64 x PAG parallelism 4..128 on the real MiniLM head).
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time

from attn_rtl.cli import add_json_option, add_out_option


def _sweep(args: argparse.Namespace) -> int:
    from attn_rtl.cli import UserError, emit_json, parse_sets
    from sim.sweep import SweepError, default_grid, expand_grid, format_table, run_sweep, write_outputs

    if not 1 <= args.workers <= 64:
        raise UserError(f"--workers {args.workers} out of range: expected 1..64")
    try:
        grid = expand_grid(default_grid(args.quick), parse_sets(args.set), args.head)
    except SweepError as exc:
        raise UserError(str(exc)) from None
    points = grid.points()
    if len(points) > args.max_points:
        raise UserError(f"{len(points)} sweep points > --max-points {args.max_points}")
    cache = args.cache or f"{args.out}/cache"
    quiet = args.json == "-"

    def log(msg: str) -> None:
        print(msg, file=sys.stderr if quiet else sys.stdout, flush=True)

    t0 = time.perf_counter()
    try:
        rows = run_sweep(points, cache_dir=cache, scheduler=args.scheduler, workers=args.workers,
                         synth=args.synth, synth_build=f"{args.out}/synth", progress=not args.no_progress, log=log,
                         timeout=args.timeout if args.timeout and args.timeout > 0 else None)
    except OSError as exc:  # e.g. no scheduler at --scheduler ADDRESS
        raise UserError(f"dask: {exc}") from None
    except TimeoutError:
        raise UserError(f"sweep not finished after --timeout {args.timeout:g} s (finished points are cached; "
                        "run again to resume)") from None
    axes = list(grid.axes)
    argv = sys.argv[2:] if len(sys.argv) > 1 and sys.argv[1] == "sweep" else []
    command = "attn-rtl sweep " + " ".join(shlex.quote(a) for a in argv)
    meta = {"command": command.strip(), "fixed": grid.fixed, "synth": args.synth,
            "scheduler": args.scheduler or f"LocalCluster({args.workers} workers)",
            "seconds": time.perf_counter() - t0}
    paths = write_outputs(rows, axes, args.out, meta, plots=not args.no_plots)
    emit_json(args.json, {**meta, "axes": axes, "points": rows})
    if not quiet:
        print(format_table(rows, axes))
        print(f"\nwrote {', '.join(str(p) for p in paths)}  ({time.perf_counter() - t0:.1f} s)")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sweep", help="design-space sweep (cycles, accuracy, optional area/Fmax) on Dask",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="tiny grid on a small random head (b 4,8 x pag 4,16)")
    p.add_argument("--set", action="append", metavar="NAME=V1,V2,...",
                   help="sweep an axis over values (one value fixes it); axes: b, d, pag, ap_width, l, w, "
                        "lsh_seed, n, d_in, d_h, seed, layer, head_index")
    p.add_argument("--head", choices=("random", "minilm"), default=None,
                   help="head: random (n, d_in, d_h, seed) or the built-in MiniLM text (layer, head_index)")
    p.add_argument("--scheduler", metavar="ADDRESS", default=None,
                   help="Dask scheduler to use (e.g. tcp://host:8786); default: a LocalCluster")
    p.add_argument("--workers", type=int, default=2, help="LocalCluster worker processes (default: 2)")
    p.add_argument("--synth", choices=("generic", "ecp5"), default=None,
                   help="also synthesise each point's systolic array (slow: minutes per point for ecp5)")
    p.add_argument("--timeout", type=float, default=0, help="seconds for the whole sweep (default: 0 = none)")
    p.add_argument("--max-points", type=int, default=2000, help="refuse larger grids (default: 2000)")
    add_out_option(p, "reports/sweep")
    p.add_argument("--cache", metavar="DIR", default=None, help="result cache (default: OUT/cache)")
    add_json_option(p)
    p.add_argument("--no-plots", action="store_true", help="do not write PNG plots")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_sweep)
