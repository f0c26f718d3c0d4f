"""Bitstream-ready build of a block through Amaranth's build flow on a ULX3S 85F board.

The block goes behind :class:`synth.wrapper.SerialWrapper`; its four pins are a new resource
``synth_serial`` on GPIO header 0 (``sin`` 0+, ``shift`` 0-, ``load`` 1+, ``sout`` 1-). The
``sync`` domain is the board's 25 MHz clock (Amaranth creates it with a reset synchroniser).

Amaranth's Lattice flow runs ``$YOSYS``, ``$NEXTPNR_ECP5`` and ``$ECPPACK`` (its toolchain
variables, ``amaranth._toolchain.tool_env_var``); they are pointed at the yowasp tools, so
everything comes from PyPI. The result is ``<build_dir>/<block>.bit`` (and ``.svf``), ready for
``openFPGALoader -b ulx3s``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from amaranth.build import Attrs, Pins, Resource, Subsignal
from amaranth.hdl import Elaboratable, Module

from hdl.registry import get_block

from .flow import DEFAULT_BUILD_ROOT, config_key, summarise_critical_path
from .tools import tool_env, tool_path
from .wrapper import SerialWrapper

__all__ = ["build_board", "BOARD_BLOCK", "SERIAL_RESOURCE"]

#: the block built by default (the CTA systolic array once registered)
BOARD_BLOCK = "systolic_array"

SERIAL_RESOURCE = Resource(
    "synth_serial", 0,
    Subsignal("sin", Pins("0+", dir="i", conn=("gpio", 0))),
    Subsignal("shift", Pins("0-", dir="i", conn=("gpio", 0))),
    Subsignal("load", Pins("1+", dir="i", conn=("gpio", 0))),
    Subsignal("sout", Pins("1-", dir="o", conn=("gpio", 0))),
    Attrs(IO_TYPE="LVCMOS33"),
)


class BoardTop(Elaboratable):
    """The wrapped block connected to the ``synth_serial`` pins."""

    def __init__(self, wrapper: SerialWrapper) -> None:
        self.wrapper = wrapper

    def elaborate(self, platform):
        m = Module()
        m.submodules.wrapper = wrapper = self.wrapper
        pins = platform.request("synth_serial", 0)
        m.d.comb += [
            wrapper.sin.eq(pins.sin.i),
            wrapper.shift.eq(pins.shift.i),
            wrapper.load.eq(pins.load.i),
            pins.sout.o.eq(wrapper.sout),
        ]
        return m


def build_board(block: str, overrides: Mapping[str, Any] | None = None, *, seed: int = 1,
                build_root: str | Path = DEFAULT_BUILD_ROOT,
                log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Build ``block`` for the ULX3S 85F; returns paths, utilisation and Fmax (nextpnr report)."""
    from amaranth_boards.ulx3s import ULX3S_85F_Platform

    say = log or (lambda _msg: None)
    spec = get_block(block)
    params = spec.resolve(overrides)
    component, _ = spec.elaborate(params)
    wrapper = SerialWrapper(component)
    out = Path(build_root) / block / config_key(block, params) / "ulx3s"
    platform = ULX3S_85F_Platform()
    platform.add_resources([SERIAL_RESOURCE])
    report = f"{block}.report.json"
    plan = platform.build(BoardTop(wrapper), name=block, build_dir=str(out), do_build=False,
                          nextpnr_opts=f"--seed {seed} --report {report} --timing-allow-fail")
    env = tool_env()
    # Amaranth's toolchain variables: the build script runs "$YOSYS" etc.
    for tool in ("yosys", "nextpnr-ecp5", "ecppack"):
        env[tool.upper().replace("-", "_")] = tool_path(tool)
    say(f"[{block}/ulx3s] Amaranth build in {out} (in {wrapper.in_bits} bits, out {wrapper.out_bits} bits)")
    # build(do_build=False) skips Amaranth's up-front tool check (which wants openFPGALoader).
    plan.execute_local(str(out), env=env)
    data = json.loads((out / report).read_text())
    fmax = min((float(v["achieved"]) for v in data.get("fmax", {}).values()), default=None)
    paths = data.get("critical_paths", [])
    critical = None
    if paths:
        worst = max(paths, key=lambda p: sum(float(s.get("delay", 0.0)) for s in p.get("path", [])))
        critical = summarise_critical_path(worst, f"{block}.il")
    return {
        "block": block,
        "params": params,
        "bitstream": str(out / f"{block}.bit"),
        "build_dir": str(out),
        "in_bits": wrapper.in_bits,
        "out_bits": wrapper.out_bits,
        "fmax_mhz": None if fmax is None else round(fmax, 2),
        "utilization": {k: int(v["used"]) for k, v in data.get("utilization", {}).items() if int(v["used"])},
        "critical_path": critical,
    }
