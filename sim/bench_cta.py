"""Benchmark of the CTA accelerator block (``attn-rtl bench cta``).

Real all-MiniLM-L6-v2 heads (the built-in text cut to n = 64, 128, 256 tokens, layer 2, head 5)
through the generated ``cta`` block on Verilator (outputs == golden.cta, as in ``attn-rtl run``);
prints per Table I step the cycles against the ideal MACs/(b·d) of the step's array work and
against the array's own limit (input beats at one per cycle, value loads included, plus the
documented fill: :func:`golden.cta_cycles.cta_step_bounds`), the totals against the sums of both
(target: at most 1.10x the sum of the limits) and against the ideal exact-attention accelerator
(DESIGN §9), and the Verilator simulation speed.

    attn-rtl bench cta --args --tokens 64 128 256
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path


def text_of(tokens: int) -> str:
    """The built-in long text cut (at a word) to at most ``tokens`` tokens ([CLS] and [SEP] included)."""
    from golden.corpus import LONG_TEXT
    from golden.minilm import _load_cached

    model = _load_cached()
    words = LONG_TEXT.split()
    lo, hi = 1, len(words)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if len(model.tokenize(" ".join(words[:mid]))) <= tokens:
            lo = mid
        else:
            hi = mid - 1
    return " ".join(words[:lo])


def step_ideals(fig: dict) -> dict[str, float]:
    """Ideal cycles (array MACs / (b·d)) of the steps that use the array."""
    p = fig["parameters"]
    bd = p["b"] * p["d"]
    m, n, d_in, d_h, l = fig["m"], fig["n"], fig["d_in"], fig["d_h"], p["l"]
    k0, k1, k2 = fig["k0"], fig["k1"], fig["k2"]
    return {"LSH1": n * l * d_in / bd, "LSH0": m * l * d_in / bd, "LSH2": n * l * d_in / bd,
            "KV": (k1 + k2) * d_in * 2 * d_h / bd, "Q": k0 * d_in * d_h / bd,
            "SCORE": k0 * (k1 + k2) * d_h / bd, "OUTPUT": k0 * (k1 + k2) * d_h / bd}


def main(argv: list[str] | None = None) -> int:
    from hdl.registry import parse_overrides
    from sim.run_head import run_cta_head

    ap = argparse.ArgumentParser(prog="bench cta")
    ap.add_argument("--tokens", type=int, nargs="+", default=[64, 128, 256])
    ap.add_argument("--layer", type=int, default=2)
    ap.add_argument("--head", type=int, default=5)
    ap.add_argument("--set", action="append", metavar="NAME=VALUE")
    ap.add_argument("--json", default=None, metavar="FILE")
    args = ap.parse_args(argv)
    results, status = [], 0
    with tempfile.TemporaryDirectory() as tmp:
        for tokens in args.tokens:
            out = Path(tmp) / f"n{tokens}.json"
            rc = run_cta_head(text=text_of(tokens), layer=args.layer, head=args.head,
                              overrides=parse_overrides(args.set), out_dir=Path(tmp) / f"n{tokens}", json_path=out)
            status |= rc
            fig = json.loads(out.read_text())
            results.append(fig)
            if not fig["bit_exact"]:
                continue
            ideal = step_ideals(fig)
            bound = fig["step_bounds"]
            pad = " " * (len(str(fig["n"])) + 5)
            print(f"  n = {fig['n']}: {'step':<7} {'cycles':>8} {'MACs/bd':>9} {'ratio':>7} {'limit':>8} {'ratio':>7}")
            for step, cyc in fig["cycles"].items():
                i, lim = ideal.get(step), bound.get(step)
                print(f"  {pad} {step:<7} {cyc:>8} {'-' if i is None else f'{i:.0f}':>9} "
                      f"{'-' if not i else f'{cyc / i:.2f}':>7} {'-' if lim is None else lim:>8} "
                      f"{'-' if not lim else f'{cyc / lim:.2f}':>7}")
            total, total_ideal, total_bound = fig["total_cycles"], sum(ideal.values()), sum(bound.values())
            print(f"    total {total} cycles: {total / total_bound:.2f}x the sum of the array's limits {total_bound} "
                  f"(target <= 1.10x); {total / total_ideal:.2f}x the sum of the MACs/(b·d) ideals "
                  f"{total_ideal:.0f}; {fig['ratio_to_ideal']:.1%} of the ideal exact-attention accelerator; "
                  f"simulated at {fig.get('sim_cycles_per_s', 0):.0f} cycles/s")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return status
