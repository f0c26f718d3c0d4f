"""Flip-flops (and LUTs) per PE of the systolic array with the input skew / output deskew as delay
lines in memory (``skew="memory"``, the default) or as register triangles (``skew="registers"``)
(issue 13, item 4).

    python -m synth.skew_cost [--ecp5 B,D ...] [--coarse B,D ...] [--out DIR]

``--ecp5``: yosys ``synth_ecp5`` of the array (the FPGA flow of ``attn-rtl synth``): LUT4, FF and
DPR16X4 of the mapped netlist. ``--coarse``: for sizes that do not fit an FPGA (the default
b=8, d=64), word-level yosys (``proc; flatten; opt -fast``) with the flip-flops split into bits,
so flip-flop bits and memory bits are exact without a gate-level mapping; LUTs are not counted.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from amaranth.back import verilog

from golden.systolic import SystolicConfig
from hdl.primitives import ECP5_TARGET
from hdl.systolic_array import SystolicArray

from .flow import HIDE_BRACKET_ALIASES, parse_stat, run_yosys
from .tools import run_tool

__all__ = ["coarse_counts", "ecp5_counts", "main"]

SKEWS = ("registers", "memory")


def _write(out: Path, b: int, d: int, skew: str, platform: object) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    path = out / "array.v"
    dut = SystolicArray(cfg=SystolicConfig(b=b, d=d), skew=skew)
    path.write_text(verilog.convert(dut, name="array", platform=platform, emit_src=False))
    return path


def ecp5_counts(out: Path, b: int, d: int, skew: str) -> dict[str, int]:
    """Mapped ECP5 cells of a b×d array with ``skew``: ``lut4``, ``ff``, ``dram`` (DPR16X4)."""
    res, _ = run_yosys(_write(out, b, d, skew, ECP5_TARGET), "array", "ecp5")
    return {"lut4": res["lut4"], "ff": res["ff"], "dram": res["dram"]}


def coarse_counts(out: Path, b: int, d: int, skew: str) -> dict[str, int]:
    """Word-level counts of a b×d array with ``skew``: ``ff`` (flip-flop bits), ``memory_bits``."""
    _write(out, b, d, skew, None)
    (out / "coarse.ys").write_text("\n".join([
        "read_verilog -sv array.v", "hierarchy -check -top array", HIDE_BRACKET_ALIASES,
        "proc", "flatten", "opt -fast",
        # one $_DFF*_ cell per flip-flop bit (memories stay memories: their bits are counted apart)
        "simplemap t:$dff t:$dffe t:$adff t:$adffe t:$sdff t:$sdffe t:$sdffce t:$aldff t:$aldffe",
        "tee -q -o coarse.json stat -json", ""]))
    run_tool("yosys", ["-q", "-s", "coarse.ys"], out, "coarse.log")
    stat = parse_stat(out / "coarse.json")
    ff = sum(n for t, n in stat["cells"].items() if t.startswith("$_") and "DFF" in t)
    return {"ff": ff, "memory_bits": stat["num_memory_bits"]}


def _size(text: str) -> tuple[int, int]:
    b, d = (int(v) for v in text.split(","))
    return b, d


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m synth.skew_cost", description=__doc__.splitlines()[0])
    ap.add_argument("--ecp5", type=_size, nargs="*", default=[(4, 16)], metavar="B,D")
    ap.add_argument("--coarse", type=_size, nargs="*", default=[(8, 64)], metavar="B,D")
    ap.add_argument("--out", type=Path, default=None, help="work directory (default: a temporary one)")
    args = ap.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        base = args.out or Path(tmp)
        for kind, sizes, count in (("ecp5", args.ecp5, ecp5_counts), ("coarse", args.coarse, coarse_counts)):
            for b, d in sizes:
                for skew in SKEWS:
                    c = count(base / f"{kind}_{b}x{d}_{skew}", b, d, skew)
                    row = {"kind": kind, "b": b, "d": d, "skew": skew, **c,
                           **{f"{k}_per_pe": round(v / (b * d), 1) for k, v in c.items()}}
                    rows.append(row)
                    print(json.dumps(row), flush=True)
    print("| flow | b×d | skew | " + " | ".join(("FF", "FF / PE", "LUT4 / PE", "DPR16X4", "memory bits")) + " |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['kind']} | {r['b']}×{r['d']} | {r['skew']} | {r['ff']:,} | {r['ff_per_pe']} | "
              f"{r.get('lut4_per_pe', '-')} | {r.get('dram', '-')} | {r.get('memory_bits', '-')} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
