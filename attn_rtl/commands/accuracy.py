"""``accuracy``: every attention method on real MiniLM activations and random data (table, JSON, plots)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from attn_rtl.cli import add_json_option, add_out_option


def _accuracy(args: argparse.Namespace) -> int:
    from attn_rtl.cli import UserError, emit_json
    from golden.accuracy import AccuracyConfig, default_jobs, format_table, run_accuracy, write_report

    methods = tuple(m.strip() for m in args.methods.split(",") if m.strip()) if args.methods else None
    jobs = args.jobs if args.jobs is not None else default_jobs()
    if jobs < 1:
        raise UserError(f"--jobs must be >= 1, not {jobs}")
    if args.seeds < 1:
        raise UserError(f"--seeds must be >= 1, not {args.seeds}")
    texts = None
    files: list[str] = []
    try:
        from golden.cta_params import load_params

        for item in args.params or []:
            for part in (x.strip() for x in item.split(",") if x.strip()):
                path = Path(part)
                found = sorted(str(f) for f in path.glob("*.json")) if path.is_dir() else [part]
                if path.is_dir() and not found:
                    raise ValueError(f"--params {part}: no *.json parameter files in the directory")
                files += found
        for f in files:
            load_params(f)  # fail early, with the loader's message
        budgets = tuple(float(b) for b in args.budgets.split(",") if b.strip())
        if not budgets or not all(0 < b < 1 for b in budgets):
            raise ValueError(f"--budgets must be cosines in (0, 1), not {args.budgets!r}")
        if args.text_file is not None:
            from golden.corpus import read_text_file

            texts = read_text_file(args.text_file)
    except (ValueError, FileNotFoundError) as exc:
        raise UserError(str(exc)) from None
    base = AccuracyConfig.quick_config() if args.quick else AccuracyConfig()
    cfg = AccuracyConfig(**{**base.__dict__, "methods": methods, "jobs": jobs, "sweep": not args.no_sweep,
                            "end_to_end": not args.no_end_to_end, "progress": not args.no_progress,
                            "seed": args.seed, "seeds": tuple(range(args.seeds)), "params": tuple(files),
                            "budgets": budgets,
                            "texts": texts, "fixed": not args.no_fixed, "full": args.full})
    t0 = time.perf_counter()
    try:
        report = run_accuracy(cfg)
    except (ValueError, FileNotFoundError) as exc:
        raise UserError(str(exc)) from None
    paths = write_report(report, args.out, plots=not args.no_plots)
    if args.json is not None:
        import json

        emit_json(args.json, json.loads(paths[0].read_text()))  # the accuracy.json just written
    if args.json != "-":
        print(format_table(report))
        print(f"\nwrote {', '.join(str(p) for p in paths)}  ({time.perf_counter() - t0:.1f} s)")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("accuracy", help="accuracy of CTA/LATTE/E-ATT/MCA vs exact attention (table, JSON, plots)")
    add_out_option(p, "reports/accuracy")
    add_json_option(p)
    p.add_argument("--quick", action="store_true", help="reduced run: 6 short texts, short sweeps, few random heads")
    p.add_argument("--full", action="store_true",
                   help="all 34 evaluation texts (default: the 13-text CORPUS part of the evaluation split)")
    p.add_argument("--methods", help="comma-separated subset, e.g. CTA,LATTE (default: all)")
    p.add_argument("--jobs", type=int, default=None, help="worker processes (default: min(2, CPUs))")
    p.add_argument("--seed", type=int, default=2024, help="seed of the random-data heads")
    p.add_argument("--seeds", type=int, default=5,
                   help="seeds averaged for every CTA point (LSH 0..N-1) and MCA point (PRNG 1..N) (default: 5)")
    p.add_argument("--params", metavar="FILE", action="append",
                   help="per-head parameter file from 'attn-rtl calibrate cta|latte|mca' (or a directory of them; "
                   "repeatable, comma-separated): each adds a calibrated row to its method")
    p.add_argument("--budgets", default="0.999,0.995,0.99", metavar="C,C,...",
                   help="sentence-embedding cosine budgets of the operating-point table (default 0.999,0.995,0.99)")
    p.add_argument("--text-file", metavar="FILE",
                   help="evaluate on these texts, one per line (default: the built-in evaluation split)")
    p.add_argument("--no-sweep", action="store_true", help="only the default setting of each method")
    p.add_argument("--no-end-to-end", action="store_true", help="skip the sentence-embedding runs")
    p.add_argument("--no-plots", action="store_true", help="do not write PNG plots")
    p.add_argument("--no-fixed", action="store_true", help="skip the bit-exact (fixed-point) models")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_accuracy)
