"""Benchmark of the CTA accelerator block (``attn-rtl bench cta``).

Real all-MiniLM-L6-v2 heads (the built-in text cut to n = 64, 128, 256 tokens, layer 2, head 5)
through the generated ``cta`` block on Verilator (outputs == golden.cta, as in ``attn-rtl run``);
prints per Table I step the cycles against the ideal MACs/(b·d) of the step's array work, the
total against the sum of those ideals and against the ideal exact-attention accelerator (DESIGN
§9), and the Verilator simulation speed.

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
    from attn_rtl.cli import parse_sets
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
                              overrides=parse_sets(args.set), out_dir=Path(tmp) / f"n{tokens}", json_path=out)
            status |= rc
            fig = json.loads(out.read_text())
            results.append(fig)
            if not fig["bit_exact"]:
                continue
            ideal = step_ideals(fig)
            print(f"  n = {fig['n']}: {'step':<7} {'cycles':>8} {'ideal':>9} {'ratio':>7}")
            for step, cyc in fig["cycles"].items():
                i = ideal.get(step)
                print(f"  {'':>{len(str(fig['n'])) + 5}} {step:<7} {cyc:>8} {'-' if i is None else f'{i:.0f}':>9} "
                      f"{'-' if not i else f'{cyc / i:.2f}':>7}")
            total_ideal = sum(ideal.values())
            print(f"    total {fig['total_cycles']} cycles vs sum of the step ideals {total_ideal:.0f} "
                  f"({fig['total_cycles'] / total_ideal:.2f}x; target <= 1.10x); vs the ideal exact-attention "
                  f"accelerator {fig['ratio_to_ideal']:.1%}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return status
