"""``calibrate``: fit per-layer/head CTA bucket widths, LATTE thresholds τ or MCA α for an accuracy
budget (JSON parameter file, :mod:`golden.cta_params`)."""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

from attn_rtl.cli import add_json_option


def _calibrate(args: argparse.Namespace) -> int:
    from attn_rtl.cli import UserError
    from golden.calibrate import QUICK_GRID, CalibConfig, calibrate_cta
    from golden.corpus import read_text_file

    if args.contributions is not None:
        return _contributions(args)
    if (args.budget_error is None) == (args.budget_cosine is None):
        raise UserError("give exactly one of --budget-error E or --budget-cosine C")
    if args.seeds < 1:
        raise UserError(f"--seeds must be >= 1, not {args.seeds}")
    try:
        texts = read_text_file(args.text_file) if args.text_file else None
    except (ValueError, FileNotFoundError) as exc:
        raise UserError(str(exc)) from None
    if args.method != "cta":
        return _calibrate_knob(args, texts)
    cfg = CalibConfig(texts=texts, quick=args.quick, progress=not args.no_progress,
                      seeds=tuple(range(100, 100 + args.seeds)), grid=QUICK_GRID if args.quick else None)
    from golden.calibrate import build_table, single_thread_blas

    def build(model):
        with single_thread_blas():
            return build_table(model, cfg)

    def fit(budget_error, budget_cosine, model, table):
        return calibrate_cta(cfg, budget_error=budget_error, budget_cosine=budget_cosine, model=model, table=table)

    def describe(params, summary) -> None:
        pt = summary["calibration_point"]
        b = params.budget
        print(f"CTA calibrated for a {b['kind']} budget of {b['value']} on {summary['texts']} calibration texts, "
              f"LSH seeds {list(params.seeds)}:")
        print(f"  RA {pt['RA']:.3f}  RL {pt['RL']:.3f}  head error mean {pt['head_error_mean']:.3f} "
              f"max {pt['head_error_max']:.3f}  embedding cosine mean {pt['cosine_mean']:.4f} "
              f"(seeds {pt['cosine_seed_min']:.4f}-{pt['cosine_seed_max']:.4f}, worst text {pt['cosine_min']:.4f})")
        _print_unmet(summary, "budget on the grid: they take their most accurate point",
                     "most accurate setting tried")

    return _calibrate_each(args, build, fit, describe)


def _contributions(args: argparse.Namespace) -> int:
    """Where a CTA parameter file's end-to-end error comes from, on held-out texts."""
    import json

    from attn_rtl.cli import UserError, emit_json
    from golden import cta_params
    from golden.calibrate import cta_error_contributions, single_thread_blas
    from golden.corpus import evaluation_texts, read_text_file
    from golden.minilm import MiniLM

    if args.method != "cta":
        raise UserError("--contributions is for 'calibrate cta' (a CTA widths file)")
    if args.seeds < 1:
        raise UserError(f"--seeds must be >= 1, not {args.seeds}")
    try:
        params = cta_params.load(args.contributions)
        texts = read_text_file(args.text_file) if args.text_file else evaluation_texts(args.quick)
    except (ValueError, FileNotFoundError) as exc:
        raise UserError(str(exc)) from None
    t0 = time.perf_counter()
    with single_thread_blas():
        res = cta_error_contributions(MiniLM.load(), texts, params.widths, tuple(range(args.seeds)), params.l)
    res["params_file"] = str(args.contributions)
    res["seconds"] = time.perf_counter() - t0
    out = args.out or "reports/cta_contributions.json"
    from pathlib import Path

    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(res, indent=1) + "\n")
    emit_json(args.json, res)
    if args.json == "-":
        return 0
    print(f"{args.contributions} on {res['texts']} held-out texts, LSH seeds {res['seeds']}: RA {res['RA']:.3f}, "
          f"embedding cosine {res['cosine_everywhere']:.4f}")
    print("layer  RA    work share  cosine (CTA in this layer only)  cosine (all layers but this one)")
    for li in range(len(res["RA_per_layer"])):
        print(f"{li:>5}  {res['RA_per_layer'][li]:.3f} {res['work_share_per_layer'][li]:>10.3f}  "
              f"{res['cosine_only_layer'][li]:>31.4f}  {res['cosine_all_but_layer'][li]:>32.4f}")
    worst = sorted(zip(res["cosine_per_text"], res["tokens"], strict=True))[:5]
    print("worst texts (cosine, tokens): " + ", ".join(f"{c:.4f} ({n})" for c, n in worst))
    print(f"wrote {out}  ({res['seconds']:.1f} s)")
    return 0


def _print_unmet(summary: dict, heads_text: str, cosine_text: str) -> None:
    """The notes of a calibration summary: heads that cannot meet their budget, an unmet cosine budget."""
    if summary.get("unmet_heads"):
        print(f"  {len(summary['unmet_heads'])} head(s) cannot meet the {heads_text}")
    if summary.get("budget_met_on_calibration") is False:
        print(f"  the cosine budget is not met even with the {cosine_text}")


def _check(budget_error: float | None, budget_cosine: float | None) -> None:
    """The budget checks of golden.calibrate, before the (long) table is built."""
    from golden.calibrate import check_budgets

    check_budgets(budget_error, budget_cosine)


def _calibrate_knob(args: argparse.Namespace, texts: tuple[str, ...] | None) -> int:
    from golden.calibrate import MCA_CALIB_SEEDS, KnobConfig, calibrate_knob

    seeds = tuple(MCA_CALIB_SEEDS[0] + i for i in range(args.seeds))
    cfg = KnobConfig(method=args.method, texts=texts, quick=args.quick, progress=not args.no_progress, seeds=seeds)
    from golden.calibrate import build_knob_table

    def fit(budget_error, budget_cosine, model, table):
        return calibrate_knob(cfg, budget_error=budget_error, budget_cosine=budget_cosine, model=model, table=table)

    def describe(params, summary) -> None:
        pt, b = summary["calibration_point"], params.budget
        seeds_text = f", PRNG seeds {list(params.seeds)}" if params.seeds else ""
        work = (f"kept keys {pt['kept_ratio']:.3f}  bit ops {pt['bit_ops_fraction']:.3f}" if params.method == "LATTE"
                else f"encoding FLOPs {pt['flops_fraction']:.3f}")
        print(f"{params.method} {params.key} calibrated for a {b['kind']} budget of {b['value']} on "
              f"{summary['texts']} calibration texts{seeds_text}:")
        print(f"  {work}  head error mean {pt['head_error_mean']:.3f} max {pt['head_error_max']:.3f}  embedding "
              f"cosine mean {pt['cosine_mean']:.4f} (worst text {pt['cosine_min']:.4f}); {params.key} per head "
              f"{float(params.values.min()):g}..{float(params.values.max()):g}")
        _print_unmet(summary, "budget: they take their most accurate candidate", "most accurate candidates")

    return _calibrate_each(args, lambda model: build_knob_table(model, cfg), fit, describe)


def _calibrate_each(args: argparse.Namespace, build: Callable[[Any], Any], fit: Callable[..., tuple[Any, dict]],
                    describe: Callable[[Any, dict], None]) -> int:
    """Every requested budget of one method: the table is built once (on the first budget, after the
    budget checks), then ``fit`` per budget; each parameter file is saved, emitted and described."""
    from attn_rtl.cli import UserError, emit_json
    from golden import cta_params

    t0 = time.perf_counter()
    model = table = None
    for budget_error, budget_cosine, out in _jobs(args):
        try:
            if table is None:
                from golden.minilm import MiniLM

                _check(budget_error, budget_cosine)
                model = MiniLM.load()
                table = build(model)
            params, summary = fit(budget_error, budget_cosine, model, table)
        except ValueError as exc:
            raise UserError(str(exc)) from None
        path = cta_params.save(params, out)
        emit_json(args.json, cta_params.to_dict(params))
        if args.json == "-":
            continue
        describe(params, summary)
        print(f"wrote {path}  ({time.perf_counter() - t0:.1f} s); use it with: attn-rtl accuracy --params {path}")
    return 0


def _budgets(text: str) -> tuple[float, ...]:
    try:
        vals = tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers separated by commas, not {text!r}") from None
    if not vals:
        raise argparse.ArgumentTypeError("expected at least one budget")
    return vals


def _jobs(args: argparse.Namespace) -> list[tuple[float | None, float | None, str]]:
    """(budget_error, budget_cosine, output path) per budget given."""
    default = f"reports/{args.method}_params.json"
    out = args.out or default
    kind, vals = ("err", args.budget_error) if args.budget_error is not None else ("cos", args.budget_cosine)
    jobs = []
    for v in vals:
        path = out if len(vals) == 1 else (out[:-5] if out.endswith(".json") else out) + f"_{kind}{v:g}.json"
        jobs.append((v, None, path) if kind == "err" else (None, v, path))
    return jobs


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("calibrate", help="fit per-head CTA widths / LATTE tau / MCA alpha for an error or cosine "
                       "budget (JSON)")
    p.add_argument("method", choices=["cta", "latte", "mca"],
                   help="cta: bucket widths per LSH level; latte: threshold tau; mca: alpha (per layer and head)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--budget-error", type=_budgets, metavar="E[,E...]",
                   help="per-head mean relative error of the head output vs exact float attention (e.g. 0.1); "
                   "several: one file each (OUT with _errE before .json), one shared table")
    g.add_argument("--budget-cosine", type=_budgets, metavar="C[,C...]",
                   help="end-to-end sentence-embedding cosine vs the exact model (e.g. 0.99 or 0.999,0.995,0.99; "
                   "several: one file each, OUT with _cosC before .json)")
    p.add_argument("--out", "-o", "--output", dest="out", default=None, metavar="FILE",
                   help="parameter file to write (default: reports/METHOD_params.json)")
    add_json_option(p)
    p.add_argument("--quick", action="store_true", help="4 short calibration texts, a small grid (seconds)")
    p.add_argument("--seeds", type=int, default=3,
                   help="LSH (cta) or PRNG (mca) seeds averaged while fitting (default: 3)")
    p.add_argument("--text-file", metavar="FILE", help="calibration texts, one per line (default: built-in split)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--contributions", metavar="PARAMS", default=None,
                   help="instead of fitting: where the end-to-end error of this CTA widths file comes from, on "
                   "the held-out evaluation texts (or --text-file), LSH seeds 0..--seeds-1: cosine with CTA in "
                   "one layer only / in all but one layer, RA per layer, per-text cosines (JSON to --out)")
    p.set_defaults(func=_calibrate)
