"""``calibrate``: fit per-layer/head CTA bucket widths for an accuracy budget (JSON parameter file)."""

from __future__ import annotations

import argparse
import time

from attn_rtl.cli import add_json_option


def _calibrate(args: argparse.Namespace) -> int:
    from attn_rtl.cli import UserError, emit_json
    from golden import cta_params
    from golden.calibrate import QUICK_GRID, CalibConfig, calibrate_cta
    from golden.corpus import read_text_file

    if (args.budget_error is None) == (args.budget_cosine is None):
        raise UserError("give exactly one of --budget-error E or --budget-cosine C")
    if args.seeds < 1:
        raise UserError(f"--seeds must be >= 1, not {args.seeds}")
    texts = read_text_file(args.text_file) if args.text_file else None
    cfg = CalibConfig(texts=texts, quick=args.quick, progress=not args.no_progress,
                      seeds=tuple(range(100, 100 + args.seeds)), grid=QUICK_GRID if args.quick else None)
    t0 = time.perf_counter()
    try:
        params, summary = calibrate_cta(cfg, budget_error=args.budget_error, budget_cosine=args.budget_cosine)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    path = cta_params.save(params, args.out)
    emit_json(args.json, cta_params.to_dict(params))
    if args.json != "-":
        pt = summary["calibration_point"]
        b = params.budget
        print(f"CTA calibrated for a {b['kind']} budget of {b['value']} on {summary['texts']} calibration texts, "
              f"LSH seeds {list(params.seeds)}:")
        print(f"  RA {pt['RA']:.3f}  RL {pt['RL']:.3f}  head error mean {pt['head_error_mean']:.3f} "
              f"max {pt['head_error_max']:.3f}  embedding cosine mean {pt['cosine_mean']:.4f} "
              f"(seeds {pt['cosine_seed_min']:.4f}-{pt['cosine_seed_max']:.4f}, worst text {pt['cosine_min']:.4f})")
        if summary.get("unmet_heads"):
            print(f"  {len(summary['unmet_heads'])} head(s) cannot meet the budget on the grid: "
                  "they take their most accurate point")
        if summary.get("budget_met_on_calibration") is False:
            print("  the cosine budget is not met even with the most accurate setting tried")
        print(f"wrote {path}  ({time.perf_counter() - t0:.1f} s); use it with: attn-rtl accuracy --params {path}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("calibrate", help="fit per-head CTA bucket widths for an error or cosine budget (JSON)")
    p.add_argument("method", choices=["cta"], help="method to calibrate (cta)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--budget-error", type=float, metavar="E",
                   help="per-head mean relative error of the head output vs exact float attention (e.g. 0.1)")
    g.add_argument("--budget-cosine", type=float, metavar="C",
                   help="end-to-end sentence-embedding cosine vs the exact model (e.g. 0.99)")
    p.add_argument("--out", "-o", "--output", dest="out", default="reports/cta_params.json", metavar="FILE",
                   help="parameter file to write (default: reports/cta_params.json)")
    add_json_option(p)
    p.add_argument("--quick", action="store_true", help="4 short calibration texts, a 3x2x2 width grid (seconds)")
    p.add_argument("--seeds", type=int, default=3, help="LSH seeds averaged while fitting (default: 3)")
    p.add_argument("--text-file", metavar="FILE", help="calibration texts, one per line (default: built-in split)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_calibrate)
