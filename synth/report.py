"""Hardware-cost report: the FPGA-sized configuration of every registered block, one table.

``run_report()`` synthesises each block's ``BlockSpec.fpga_params`` (defaults when empty) and
writes ``<out_dir>/synth_<target>.json`` (every figure, per seed, with critical paths) and
``<out_dir>/synth_<target>.md`` (the table, tool versions, and the critical path of every block
below the Fmax goal). A block that fails is reported as a row with its error; it does not stop
the others.
"""

from __future__ import annotations

import datetime
import json
import platform
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from amaranth.hdl import Value

from hdl.registry import blocks, get_block

from .flow import DEFAULT_BUILD_ROOT, TARGET_MHZ, DoesNotFit, SynthResult, add_seed, synth_block
from .tools import ToolFailed, tool_versions

__all__ = ["run_report", "write_report", "render_markdown", "DEFAULT_REPORT_DIR"]

DEFAULT_REPORT_DIR = Path("reports") / "synth"

#: resource columns per target: (key in SynthResult.resources, column title)
COLUMNS = {
    "generic": [("cells", "cells"), ("ff", "FF"), ("mul", "$mul"), ("memories", "memories"),
                ("memory_bits", "memory bits")],
    "ecp5": [("lut4", "LUT4"), ("ff", "FF"), ("ccu2c", "CCU2C"), ("dsp", "MULT18X18D"), ("bram", "DP16KD"),
             ("dram", "DPR16X4"), ("mul", "$mul")],
    "ice40": [("lut4", "SB_LUT4"), ("ff", "FF"), ("carry", "SB_CARRY"), ("dsp", "SB_MAC16"),
              ("bram", "SB_RAM40_4K"), ("mul", "$mul")],
}


def _config_text(overrides: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in overrides.items()) or "defaults"


def run_report(names: Iterable[str] | None = None, *, target: str = "ecp5", seeds: int = 3,
               out_dir: str | Path = DEFAULT_REPORT_DIR, build_root: str | Path = DEFAULT_BUILD_ROOT,
               freq_mhz: float = TARGET_MHZ, command: str | None = None,
               log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Synthesise every block (or ``names``) in its FPGA-sized configuration; write the report.

    Returns the JSON document that was written (``rows``: one dict per block).
    """
    say = log or (lambda _msg: None)
    selected = list(names) if names else _by_size(sorted(blocks()))
    seeds = seeds if target != "generic" else 0
    rows: dict[str, dict[str, Any]] = {}
    results: dict[str, SynthResult] = {}
    doc = {
        "target": target,
        "seeds": seeds,
        "goal_mhz": freq_mhz,
        "command": command or f"attn-rtl synth --report --target {target} --seeds {seeds}",
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "host": {"python": sys.version.split()[0], "platform": platform.platform()},
        "tool_versions": tool_versions(),
        "rows": [],
    }

    def fail(name: str, overrides: dict, exc: Exception) -> None:
        say(f"[{name}/{target}] FAILED: {exc}")
        rows[name] = {"block": name, "target": target, "fpga_params": overrides, "error": str(exc),
                      "tool_log": getattr(exc, "log", "")}

    def flush() -> None:
        # rewritten after every step, so a long run leaves a usable partial report
        doc["rows"] = [rows[n] for n in selected if n in rows]
        write_report(doc, out_dir)

    # Seed-major: every block gets its first seed before any block gets its second.
    for name in selected:
        overrides = dict(get_block(name).fpga_params)
        try:
            results[name] = synth_block(name, overrides, target=target, seeds=min(seeds, 1),
                                        freq_mhz=freq_mhz, build_root=build_root, log=say)
        except (DoesNotFit, ToolFailed, ValueError) as exc:
            fail(name, overrides, exc)
        else:
            rows[name] = dict(results[name].as_dict(), fpga_params=overrides)
        flush()
    for seed in range(2, seeds + 1):
        for name, result in results.items():
            if name in rows and "error" in rows[name]:
                continue
            try:
                add_seed(result, seed, freq_mhz=freq_mhz, log=say)
            except (DoesNotFit, ToolFailed) as exc:
                fail(name, dict(get_block(name).fpga_params), exc)
            else:
                rows[name] = dict(result.as_dict(), fpga_params=dict(get_block(name).fpga_params))
            flush()
    for name, result in results.items():
        fmax = result.fmax
        say(f"[{name}/{target}] {result.resources}" + (f", Fmax median {fmax['median']:.1f} MHz" if fmax else ""))
    return doc


def _by_size(names: list[str]) -> list[str]:
    """Blocks ordered by port bits (a cheap proxy for size), so small ones report first."""
    sizes = {}
    for name in names:
        try:
            spec = get_block(name)
            component, _ = spec.elaborate(spec.fpga_params)
            sizes[name] = sum(len(Value.cast(v)) for _, _, v in component.signature.flatten(component))
            component._MustUse__silence = True  # only inspected, never elaborated
        except (TypeError, ValueError):
            sizes[name] = 0
    return sorted(names, key=lambda n: (sizes[n], n))


def write_report(doc: dict[str, Any], out_dir: str | Path = DEFAULT_REPORT_DIR) -> tuple[Path, Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"synth_{doc['target']}"
    j_path, m_path = out / f"{stem}.json", out / f"{stem}.md"
    j_path.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    m_path.write_text(render_markdown(doc))
    return j_path, m_path


def _fmt_fmax(fmax: dict[str, float] | None) -> str:
    if not fmax:
        return "-"
    return f"{fmax['median']:.1f} ({fmax['min']:.1f}–{fmax['max']:.1f})"


def render_markdown(doc: dict[str, Any]) -> str:
    target = doc["target"]
    columns = COLUMNS[target]
    goal = doc.get("goal_mhz", TARGET_MHZ)
    has_pnr = target != "generic"
    lines = [f"# Synthesis report: {target}", "",
             f"Command: `{doc['command']}`  ", f"Date: {doc['date']}  ",
             "Tools: " + ", ".join(f"{k} {v}" for k, v in doc["tool_versions"].items()), ""]
    if target == "ecp5":
        lines += [f"Device LFE5U-85F, CABGA381, speed grade 6, nextpnr `--out-of-context`, "
                  f"{doc['seeds']} seeds, target {goal:g} MHz. Fmax: median (min–max) over seeds.", ""]
    elif target == "ice40":
        lines += [f"Device iCE40 UP5K (SG48), {doc['seeds']} seeds; blocks with more port bits than pins "
                  "are wrapped in the 4-pin SerialWrapper (its registers are included).", ""]
    header = ["block", "configuration"] + [title for _, title in columns]
    if has_pnr:
        header += ["Fmax MHz", f"≥{goal:g}"]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    misses = []
    for row in doc["rows"]:
        config = _config_text(row.get("overrides", row.get("fpga_params", {})))
        if "error" in row:
            cells = [row["block"], config, f"**failed**: {row['error']}"] + [""] * (len(header) - 3)
            lines.append("| " + " | ".join(cells) + " |")
            continue
        res = row["resources"]
        cells = [row["block"], config] + [str(res.get(key, 0)) for key, _ in columns]
        if has_pnr:
            fmax = row.get("fmax")
            ok = bool(fmax) and fmax["median"] >= goal
            cells += [_fmt_fmax(fmax), "yes" if ok else "**no**"]
            if not ok:
                misses.append(row)
        lines.append("| " + " | ".join(cells) + " |")
    if misses:
        lines += ["", f"## Critical paths below {goal:g} MHz", "",
                  "Worst seed of each block; signals are the RTL names the routed nets derive from, "
                  "sources the lines of the generated Verilog (`build/synth/<block>/<config>/<target>/`).", ""]
        for row in misses:
            done = [s for s in row["seeds"] if s.get("fmax_mhz") is not None and s.get("critical_path")]
            if not done:
                continue
            worst = min(done, key=lambda s: s["fmax_mhz"])
            path = worst["critical_path"]
            lines += [f"### {row['block']}: {worst['fmax_mhz']:.1f} MHz (seed {worst['seed']})", "",
                      f"- from `{path['source_cell']}` to `{path['sink_cell']}`",
                      f"- {path['delay_ns']:.2f} ns ({path['routing_ns']:.2f} ns routing), "
                      f"{path['logic_levels']} logic elements",
                      "- signals: " + " → ".join(f"`{s}`" for s in path["signals"][:12]),
                      "- Verilog: " + ", ".join(path["sources"][:8]), ""]
    return "\n".join(lines) + "\n"


def result_row(result: SynthResult) -> dict[str, Any]:
    """A single :class:`SynthResult` as a report row (used by ``attn-rtl synth BLOCK --json``)."""
    return result.as_dict()
