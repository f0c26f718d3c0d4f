"""Synthesis of one registry block: yosys (generic / ECP5 / iCE40) and nextpnr over N seeds.

``synth_block(block, overrides, target=...)`` generates the block's Verilog with
:mod:`hdl.export`, runs yosys, and for the FPGA targets runs nextpnr once per seed (one at a
time: the machine is shared). Resources come from yosys ``stat -json`` and nextpnr's
``--report`` JSON; Fmax and the critical path come from that report, not from scraping logs.

Targets:

- ``generic``: ``synth -flatten`` + ``stat``; no place and route.
- ``ecp5``: ``synth_ecp5`` + ``nextpnr-ecp5`` on LFE5U-85F, CABGA381, speed grade 6,
  ``--out-of-context`` (no IO buffers, so ports of any width fit). The Verilog is elaborated with
  ``platform=hdl.primitives.ECP5_TARGET`` (a marker with ``family="ecp5"``), so platform-aware
  primitives instantiate ECP5 hard blocks (``MULT18X18D`` with its registers); the other targets
  synthesise the Verilog ``attn-rtl generate`` writes.
- ``ice40``: ``synth_ice40 -dsp`` + ``nextpnr-ice40`` on iCE40 UP5K (SG48). nextpnr-ice40 has no
  out-of-context mode, so a block with more port bits than the package has pins is wrapped in
  :class:`synth.wrapper.SerialWrapper` (4 pins). Blocks larger than the device are reported as not
  fitting before place and route.

Every target also records the number of multipliers (``$mul`` cells after ``proc; flatten; opt;
wreduce; peepopt`` - i.e. before any multiplier is mapped to DSPs or gates - plus the
``MULT18X18D`` that platform-aware primitives instantiate directly) and memories.
"""

from __future__ import annotations

import hashlib
import json
import re
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from amaranth.back import verilog

from hdl.export import generate
from hdl.primitives import ECP5_TARGET
from hdl.registry import get_block

from .tools import ToolFailed, run_tool, tool_versions

__all__ = ["TARGETS", "SynthError", "DoesNotFit", "SeedResult", "SynthResult", "synth_block",
           "summarise_critical_path", "parse_stat", "run_yosys", "rtl_name", "add_seed", "DEFAULT_BUILD_ROOT",
           "TARGET_MHZ", "TARGET_PLATFORMS"]

TARGETS = ("generic", "ecp5", "ice40")
DEFAULT_BUILD_ROOT = Path("build") / "synth"
#: the project's timing goal on LFE5U-85F speed grade 6 (issue 13)
TARGET_MHZ = 200.0
#: the ``platform`` each target's Verilog is elaborated with (hdl.primitives): the ECP5 marker
#: selects MULT18X18D multipliers; generic and iCE40 get the vendor-neutral RTL (platform None),
#: i.e. exactly the Verilog ``attn-rtl generate`` writes.
TARGET_PLATFORMS = {"generic": None, "ecp5": ECP5_TARGET, "ice40": None}

ECP5_DEVICE = {"device": "LFE5U-85F", "nextpnr": ["--85k", "--package", "CABGA381", "--speed", "6"],
               "capacity": {"lut4": 83640, "ff": 83640, "dsp": 156, "bram": 208}}
ICE40_DEVICE = {"device": "iCE40UP5K-SG48", "nextpnr": ["--up5k", "--package", "sg48"],
                "capacity": {"lut4": 5280, "ff": 5280, "dsp": 8, "bram": 30, "spram": 4},
                # SG48 has 39 user IOs; keep a few spare for the clock and reset.
                "max_port_bits": 34}

# yosys cell type -> resource key, per target
_ECP5_CELLS = {"LUT4": "lut4", "TRELLIS_FF": "ff", "CCU2C": "ccu2c", "MULT18X18D": "dsp", "ALU54B": "alu54",
               "DP16KD": "bram", "TRELLIS_DPR16X4": "dram", "PFUMX": "pfumx", "L6MUX21": "l6mux"}
_ICE40_CELLS = {"SB_LUT4": "lut4", "SB_CARRY": "carry", "SB_MAC16": "dsp", "SB_RAM40_4K": "bram",
                "SB_SPRAM256KA": "spram"}


class SynthError(ValueError):
    """Bad synthesis request (unknown target, bad seed count ...)."""


class DoesNotFit(RuntimeError):
    """The block needs more resources than the target device has; ``resources`` holds yosys'
    counts (what the report lists for a block that does not fit), empty when unknown."""

    def __init__(self, message: str, resources: Mapping[str, int] | None = None) -> None:
        super().__init__(message)
        self.resources = dict(resources or {})


@dataclass
class SeedResult:
    seed: int
    fmax_mhz: float | None
    #: nextpnr utilisation: bel type -> used (only non-zero entries)
    utilization: dict[str, int]
    critical_path: dict[str, Any] | None
    seconds: float


@dataclass
class SynthResult:
    block: str
    target: str
    device: str
    params: dict[str, Any]
    #: parameters that differ from the block's defaults
    overrides: dict[str, Any]
    #: normalised resource counts (keys depend on the target, see module doc)
    resources: dict[str, int]
    #: every cell type after technology mapping -> count
    cells: dict[str, int]
    seeds: list[SeedResult] = field(default_factory=list)
    wrapped: bool = False
    build_dir: str = ""
    tool_versions: dict[str, str] = field(default_factory=dict)
    yosys_seconds: float = 0.0
    #: top-level module synthesised (the block, or ``<block>_serial`` when wrapped)
    top: str = ""

    @property
    def fmax(self) -> dict[str, float] | None:
        """median / min / max Fmax over the seeds in MHz (None without place and route)."""
        values = [s.fmax_mhz for s in self.seeds if s.fmax_mhz is not None]
        if not values:
            return None
        return {"median": statistics.median(values), "min": min(values), "max": max(values)}

    @property
    def worst_seed(self) -> SeedResult | None:
        done = [s for s in self.seeds if s.fmax_mhz is not None]
        return min(done, key=lambda s: s.fmax_mhz) if done else None

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["fmax"] = self.fmax
        return data


# ---- parsing ------------------------------------------------------------------------------------

def parse_stat(path: Path) -> dict[str, Any]:
    """yosys ``stat -json`` -> {"cells": {type: n}, "num_cells", "num_memories", "num_memory_bits"}."""
    data = json.loads(path.read_text())
    design = data.get("design") or next(iter(data["modules"].values()))
    cells = design.get("num_cells_by_type", design.get("cells", {}))
    # $meminit_v2 cells are a memory's initial contents, not logic.
    cells = {k: int(v) for k, v in cells.items() if not k.startswith(("$meminit", "$scopeinfo"))}
    return {"cells": cells, "num_cells": sum(cells.values()),
            "num_memories": int(design.get("num_memories", 0)),
            "num_memory_bits": int(design.get("num_memory_bits", 0))}


#: markers yosys/nextpnr append to a net or cell name derived from the RTL signal it drives
_DERIVED = re.compile(r"_(TRELLIS_[A-Z0-9]+|LUT4|CCU2C|PFUMX|L6MUX21|DP16KD|MULT18X18D|ALU54B|SB_[A-Z0-9_]+)(_|$)"
                      r"|\$CCU2")


def rtl_name(name: str) -> str:
    """The RTL signal a mapped net/cell name derives from (``y_TRELLIS_FF_Q_14_DI..`` -> ``y``)."""
    name = name.lstrip("\\")
    match = _DERIVED.search(name)
    return name[: match.start()] if match and match.start() > 0 else name


def summarise_critical_path(entry: Mapping[str, Any], verilog_name: str | None = None) -> dict[str, Any]:
    """One ``critical_paths`` entry of a nextpnr report -> source/sink cells, nets, delays.

    ``nets`` are the routed nets along the path in order (the RTL signal names survive in most of
    them); ``sources`` are the lines of the generated Verilog the path's cells came from.
    """
    segments = entry.get("path", [])
    total = sum(float(s.get("delay", 0.0)) for s in segments)
    routing = sum(float(s.get("delay", 0.0)) for s in segments if s.get("type") == "routing")
    nets: list[str] = []
    signals: list[str] = []
    sources: list[str] = []
    for seg in segments:
        net = seg.get("net")
        if seg.get("type") == "routing" and net and net not in nets:
            nets.append(net)
            if rtl_name(net) not in signals:
                signals.append(rtl_name(net))
        for src in seg.get("sources", []) or []:
            if verilog_name and not src.startswith(verilog_name):
                continue
            if src not in sources:
                sources.append(src)
    return {
        "from": entry.get("from"),
        "to": entry.get("to"),
        "source_cell": segments[0]["from"]["cell"] if segments else None,
        "sink_cell": segments[-1]["to"]["cell"] if segments else None,
        "delay_ns": round(total, 3),
        "routing_ns": round(routing, 3),
        "logic_levels": sum(1 for s in segments if s.get("type") == "logic"),
        "source_signal": rtl_name(segments[0]["from"]["cell"]) if segments else None,
        "sink_signal": rtl_name(segments[-1]["to"]["cell"]) if segments else None,
        #: RTL signals the path runs through, in order (derived from the net names)
        "signals": signals,
        "nets": nets,
        "sources": sources,
    }


def _parse_pnr_report(path: Path, verilog_name: str) -> tuple[float | None, dict[str, int], dict | None]:
    data = json.loads(path.read_text())
    fmax_by_clock = data.get("fmax", {})
    fmax = min((float(v["achieved"]) for v in fmax_by_clock.values()), default=None)
    util = {k: int(v["used"]) for k, v in data.get("utilization", {}).items() if int(v.get("used", 0))}
    paths = data.get("critical_paths", [])
    critical = None
    if paths:
        worst = max(paths, key=lambda p: sum(float(s.get("delay", 0.0)) for s in p.get("path", [])))
        critical = summarise_critical_path(worst, verilog_name)
    return fmax, util, critical


# ---- the flow -----------------------------------------------------------------------------------

# yosys selection: non-port wires whose name contains "[" ("[[]" is a class holding "[").
HIDE_BRACKET_ALIASES = "rename -hide w:*[[]* x:* %d"

_COARSE = "proc; flatten; opt_expr; opt_clean; opt -nodffe -nosdff; wreduce; peepopt; opt_clean"


def _yosys_script(top: str, verilog: str, target: str, abc9: bool = True) -> str:
    if target == "generic":
        mapping = f"synth -flatten -top {top}"
    elif target == "ecp5":
        mapping = f"synth_ecp5 -top {top} -json {top}.netlist.json" + ("" if abc9 else " -noabc9")
    else:
        mapping = f"synth_ice40 -dsp -top {top} -json {top}.netlist.json"
    # Hard blocks instantiated by hdl.primitives (MULT18X18D ...) are known to hierarchy -check.
    cells = ["read_verilog -lib -specify +/ecp5/cells_bb.v +/ecp5/cells_sim.v"] if target == "ecp5" else []
    return "\n".join([
        *cells,
        f"read_verilog -sv {verilog}",
        f"hierarchy -check -top {top}",
        # Amaranth names the element aliases of an ArrayLayout view "x[c]", the same text yosys uses for
        # bit c of a wire "x"; ABC reintegration (abc9 and, in 0.70, the -noabc9 abc too) then resolves
        # bit "x[c]" to the alias wire and asserts GetSize(conn.first) == GetSize(conn.second) (cta,
        # eatt before 2f86173). Hiding public names that contain "[" removes the clash; only names change.
        HIDE_BRACKET_ALIASES,
        "design -save original",
        # Multipliers counted at word level, before DSP / gate mapping.
        _COARSE,
        "tee -q -o coarse_stat.json stat -json",
        "design -load original",
        mapping,
        "tee -q -o stat.json stat -json",
        "",
    ])


def _resources(target: str, coarse: dict[str, Any], mapped: dict[str, Any]) -> dict[str, int]:
    cells = mapped["cells"]
    # multipliers: word-level $mul cells plus hard multipliers instantiated by hdl.primitives
    res: dict[str, int] = {"mul": coarse["cells"].get("$mul", 0) + coarse["cells"].get("MULT18X18D", 0),
                           "memories": coarse["num_memories"],
                           "memory_bits": coarse["num_memory_bits"]}
    if target == "generic":
        res["cells"] = mapped["num_cells"]
        res["ff"] = sum(n for t, n in cells.items() if "DFF" in t.upper() or "DLATCH" in t.upper())
        return res
    table = _ECP5_CELLS if target == "ecp5" else _ICE40_CELLS
    for key in table.values():
        res.setdefault(key, 0)
    for cell_type, n in cells.items():
        if cell_type in table:
            res[table[cell_type]] += n
    if target == "ice40":
        res["ff"] = sum(n for t, n in cells.items() if t.startswith("SB_DFF"))
    return res


def run_yosys(verilog: Path, top: str, target: str) -> tuple[dict[str, int], dict[str, Any]]:
    """Run yosys on ``verilog`` (in its directory) for ``target``.

    Returns (normalised resources, parsed ``stat`` of the mapped netlist); for ecp5/ice40 the
    netlist for nextpnr is ``<top>.netlist.json`` beside the Verilog.
    """
    if target not in TARGETS:
        raise SynthError(f"unknown target {target!r}; available: {', '.join(TARGETS)}")
    out = verilog.parent
    script = out / "synth.ys"
    script.write_text(_yosys_script(top, verilog.name, target))
    fallback = False
    try:
        _run_yosys_script(out, script)
    except ToolFailed:
        if target != "ecp5":
            raise
        # yosys 0.70's ABC9 flow trips an internal assertion on some large designs (seen on pag):
        # retry with the classic ABC mapping and record that in the resources.
        script.write_text(_yosys_script(top, verilog.name, target, abc9=False))
        _run_yosys_script(out, script)
        fallback = True
    coarse = parse_stat(out / "coarse_stat.json")
    mapped = parse_stat(out / "stat.json")
    resources = _resources(target, coarse, mapped)
    if fallback:
        resources["noabc9"] = 1
    return resources, mapped


def _run_yosys_script(out: Path, script: Path) -> None:
    try:
        run_tool("yosys", ["-q", "-l", "yosys.full.log", "-s", script.name], out, "yosys.log")
    except ToolFailed as exc:
        full = out / "yosys.full.log"
        tail = "\n".join(full.read_text(errors="replace").splitlines()[-15:]) if full.exists() else exc.log
        raise ToolFailed(str(exc).replace("yosys.log", "yosys.full.log"), tail) from None


def _check_fits(target: str, res: Mapping[str, int], block: str) -> None:
    capacity = (ECP5_DEVICE if target == "ecp5" else ICE40_DEVICE)["capacity"]
    device = (ECP5_DEVICE if target == "ecp5" else ICE40_DEVICE)["device"]
    over = [f"{key} {res.get(key, 0)} > {cap}" for key, cap in capacity.items() if res.get(key, 0) > cap]
    if over:
        raise DoesNotFit(f"{block} does not fit {device}: " + ", ".join(over)
                         + " (try a smaller configuration with --set, or --target ecp5)", res)


def config_key(block: str, params: Mapping[str, Any]) -> str:
    text = json.dumps({"block": block, "params": dict(params)}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def synth_block(block: str, overrides: Mapping[str, Any] | None = None, *, target: str = "generic",
                seeds: int = 1, freq_mhz: float = TARGET_MHZ, build_root: str | Path = DEFAULT_BUILD_ROOT,
                wrap: bool | None = None, log: Callable[[str], None] | None = None) -> SynthResult:
    """Synthesise ``block`` (registry name) with ``overrides`` for ``target``; see the module doc.

    Raises :class:`hdl.registry.ParamError` for a bad block / parameter, :class:`SynthError` for a
    bad target or seed count, :class:`DoesNotFit` when the device is too small and
    :class:`synth.tools.ToolFailed` when a tool fails.
    """
    if target not in TARGETS:
        raise SynthError(f"unknown target {target!r}; available: {', '.join(TARGETS)}")
    if not isinstance(seeds, int) or seeds < (0 if target == "generic" else 1) or seeds > 20:
        raise SynthError(f"seeds={seeds!r} out of range: expected an int in [1, 20]")
    say = log or (lambda _msg: None)
    spec = get_block(block)
    params = spec.resolve(overrides)
    defaults = spec.defaults()
    changed = {k: v for k, v in params.items() if defaults.get(k) != v}
    out = Path(build_root) / block / config_key(block, params) / target
    out.mkdir(parents=True, exist_ok=True)

    generate(block, params, out)
    top = block
    platform = TARGET_PLATFORMS.get(target)
    if platform is not None:
        # Re-elaborate for the FPGA family: platform-aware primitives (hdl.primitives) use its hard
        # blocks; the manifest written by generate() stays valid (same ports, same latencies).
        component, _ = spec.elaborate(params)
        try:
            text = verilog.convert(component, name=block, platform=platform, emit_src=False)
        except ValueError as exc:  # e.g. a multiplier operand wider than the DSP (hdl.primitives)
            raise SynthError(f"{block} cannot be elaborated for {target}: {exc}") from exc
        (out / f"{block}.v").write_text(text)
    if wrap is None:
        ports = json.loads((out / f"{block}.json").read_text())["ports"]
        wrap = target == "ice40" and sum(p["width"] for p in ports) > ICE40_DEVICE["max_port_bits"]
    if wrap:
        from .wrapper import SerialWrapper

        component, _ = spec.elaborate(params)
        top = f"{block}_serial"
        (out / f"{top}.v").write_text(verilog.convert(SerialWrapper(component), name=top, platform=platform,
                                                      emit_src=False))

    say(f"[{block}/{target}] yosys ({out})")
    t0 = time.monotonic()
    resources, mapped = run_yosys(out / f"{top}.v", top, target)
    yosys_seconds = time.monotonic() - t0
    device = {"generic": "generic", "ecp5": ECP5_DEVICE["device"], "ice40": ICE40_DEVICE["device"]}[target]
    result = SynthResult(block=block, target=target, device=device, params=dict(params), overrides=changed,
                         resources=resources, cells=mapped["cells"], wrapped=bool(wrap), build_dir=str(out),
                         tool_versions=tool_versions(), yosys_seconds=round(yosys_seconds, 2), top=top)
    if target == "generic":
        return result

    _check_fits(target, resources, block)
    result.top = top
    for seed in range(1, seeds + 1):
        add_seed(result, seed, freq_mhz=freq_mhz, log=say)
    return result


def add_seed(result: SynthResult, seed: int, *, freq_mhz: float = TARGET_MHZ,
             log: Callable[[str], None] | None = None) -> SeedResult:
    """Place and route ``result``'s netlist once more with ``seed``; appends to ``result.seeds``."""
    if result.target not in ("ecp5", "ice40"):
        raise SynthError(f"target {result.target} has no place and route")
    say = log or (lambda _msg: None)
    out, top, target = Path(result.build_dir), result.top, result.target
    dev = ECP5_DEVICE if target == "ecp5" else ICE40_DEVICE
    report = f"pnr_seed{seed}.json"
    args = [*dev["nextpnr"], "--json", f"{top}.netlist.json", "--report", report, "--seed", str(seed),
            "--freq", str(freq_mhz), "--timing-allow-fail", "--log", f"pnr_seed{seed}.log", "-q"]
    args += ["--out-of-context"] if target == "ecp5" else ["--pcf-allow-unconstrained"]
    args += list(get_block(result.block).nextpnr_args)
    say(f"[{result.block}/{target}] nextpnr seed {seed}")
    t0 = time.monotonic()
    try:
        run_tool(f"nextpnr-{target}", args, out, f"pnr_seed{seed}.out")
    except ToolFailed as exc:
        if any(s in exc.log for s in ("Unable to place", "no Bels", "not enough", "Failed to find")):
            raise DoesNotFit(f"{result.block} does not fit {result.device}: nextpnr could not place it "
                             f"(see {out / f'pnr_seed{seed}.log'})", result.resources) from exc
        raise
    fmax, util, critical = _parse_pnr_report(out / report, f"{top}.v")
    seed_result = SeedResult(seed=seed, fmax_mhz=None if fmax is None else round(fmax, 2), utilization=util,
                             critical_path=critical, seconds=round(time.monotonic() - t0, 2))
    result.seeds.append(seed_result)
    (out / "result.json").write_text(json.dumps(result.as_dict(), indent=2, default=str) + "\n")
    return seed_result
