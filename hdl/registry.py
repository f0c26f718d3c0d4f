"""Registry of generatable blocks.

Each ``hdl`` module that defines top-level blocks has a module-level ``BLOCKS`` list of
:class:`BlockSpec`. :func:`blocks` imports every module of the package and collects them, so a
new block is added by writing its module only.

A block's ``build(**params)`` returns an Amaranth ``wiring.Component``. Optional component
attributes used in the manifest: ``LATENCY`` (int) or ``latency`` (dict/int), ``formats``
(dict name -> QFormat), ``manifest_extra()`` (dict).
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Param", "BlockSpec", "ParamError", "blocks", "get_block"]


class ParamError(ValueError):
    """A block parameter is missing, unknown or outside its allowed range."""


@dataclass(frozen=True)
class Param:
    name: str
    default: Any
    help: str
    kind: type = int
    min: int | float | None = None
    max: int | float | None = None
    choices: tuple | None = None
    power_of_two: bool = False

    def allowed(self) -> str:
        if self.choices is not None:
            return "one of " + ", ".join(str(c) for c in self.choices)
        if self.kind is bool:
            return "true or false"
        lo = "-inf" if self.min is None else self.min
        hi = "inf" if self.max is None else self.max
        text = f"{self.kind.__name__} in [{lo}, {hi}]"
        if self.power_of_two:
            text += ", a power of two"
        return text

    def parse(self, text: str | Any) -> Any:
        """Parse and validate one value (a CLI string or a Python value)."""
        try:
            if isinstance(text, str):
                if self.kind is bool:
                    lowered = text.lower()
                    if lowered not in ("0", "1", "true", "false", "yes", "no"):
                        raise ValueError(text)
                    value = lowered in ("1", "true", "yes")
                elif self.kind is int:
                    value = int(text, 0)
                else:
                    value = self.kind(text)
            else:
                value = self.kind(text) if not isinstance(text, self.kind) else text
        except (TypeError, ValueError):
            raise ParamError(f"parameter {self.name}={text!r}: expected {self.allowed()}") from None
        self.check(value)
        return value

    def check(self, value: Any) -> None:
        bad = False
        if self.choices is not None and value not in self.choices:
            bad = True
        if self.min is not None and value < self.min:
            bad = True
        if self.max is not None and value > self.max:
            bad = True
        if self.power_of_two and (value <= 0 or value & (value - 1)):
            bad = True
        if bad:
            raise ParamError(f"parameter {self.name}={value!r} out of range: expected {self.allowed()}")


@dataclass(frozen=True)
class BlockSpec:
    name: str
    description: str
    params: tuple[Param, ...]
    build: Callable[..., Any]
    #: dotted module of the cocotb test for this block (``attn-rtl sim``), or None
    cocotb_module: str | None = None
    #: extra cross-parameter validation: raise ParamError naming the parameter
    validate: Callable[[dict[str, Any]], None] | None = None
    #: the FPGA-sized configuration used by synthesis reports
    fpga_params: Mapping[str, Any] = field(default_factory=dict)
    #: extra nextpnr arguments for this block (synth/flow.py), e.g. another router for a design
    #: that the default one does not route
    nextpnr_args: tuple[str, ...] = ()

    def defaults(self) -> dict[str, Any]:
        return {p.name: p.default for p in self.params}

    def resolve(self, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Defaults updated with ``overrides`` (strings or values), each validated."""
        by_name = {p.name: p for p in self.params}
        values = self.defaults()
        for key, raw in (overrides or {}).items():
            if key not in by_name:
                known = ", ".join(by_name) or "(none)"
                raise ParamError(f"block {self.name} has no parameter {key!r}; parameters: {known}")
            values[key] = by_name[key].parse(raw)
        if self.validate is not None:
            self.validate(values)
        return values

    def elaborate(self, overrides: Mapping[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        params = self.resolve(overrides)
        try:
            return self.build(**params), params
        except (ValueError, TypeError) as exc:
            raise ParamError(f"block {self.name}: {exc}") from exc


#: Where each block lives: RTL, golden model, cocotb testbench and tests. Several blocks share a
#: file where one is a part of the other or they share a datapath: ``hdl/arith.py`` holds both
#: shared units (``exp_unit``, ``recip_unit``), ``hdl/eatt.py`` the E-ATT head and its alignment
#: front end (``eatt``, ``eatt_align``), ``golden/systolic.py`` the array and its PE / PPE. Every
#: block also has an adapter in ``sim/vector_tb.py`` (``export-tb``, ``soak``).
BLOCK_FILES: dict[str, dict[str, tuple[str, ...]]] = {
    "exp_unit": {"rtl": ("hdl/arith.py",), "golden": ("golden/lut.py",), "testbench": ("sim/tb_arith.py",),
                 "tests": ("tests/test_arith.py", "tests/test_lut_math.py", "tests/test_cocotb_arith.py")},
    "recip_unit": {"rtl": ("hdl/arith.py",), "golden": ("golden/lut.py",), "testbench": ("sim/tb_arith.py",),
                   "tests": ("tests/test_arith.py", "tests/test_lut_math.py", "tests/test_cocotb_arith.py")},
    "pe": {"rtl": ("hdl/pe.py",), "golden": ("golden/systolic.py",), "testbench": ("sim/tb_pe_netlist.py",),
           "tests": ("tests/test_pe.py", "tests/test_netlist_sim.py")},
    "ppe": {"rtl": ("hdl/ppe.py",), "golden": ("golden/systolic.py",), "testbench": (),
            "tests": ("tests/test_ppe.py", "tests/test_ppe_parts.py")},
    "systolic_array": {"rtl": ("hdl/systolic_array.py", "hdl/delay_line.py"), "golden": ("golden/systolic.py",),
                       "testbench": ("sim/tb_systolic_array.py",),
                       "tests": ("tests/test_systolic_array.py", "tests/test_delay_line.py",
                                 "tests/test_cocotb_systolic_array.py")},
    "cim": {"rtl": ("hdl/cim.py",), "golden": ("golden/cim.py",), "testbench": ("sim/tb_cim.py",),
            "tests": ("tests/test_cim.py", "tests/test_cim_parts.py", "tests/test_cocotb_cim_cag.py")},
    "cag": {"rtl": ("hdl/cag.py",), "golden": ("golden/cag.py",), "testbench": ("sim/tb_cag.py",),
            "tests": ("tests/test_cag.py", "tests/test_cag_parts.py", "tests/test_cocotb_cim_cag.py")},
    "pag": {"rtl": ("hdl/pag.py",), "golden": ("golden/pag.py",), "testbench": ("sim/tb_pag.py",),
            "tests": ("tests/test_pag.py", "tests/test_pag_parts.py", "tests/test_cocotb_pag.py",
                      "tests/test_bench_pag.py")},
    "cta": {"rtl": ("hdl/cta.py",),
            "golden": ("golden/cta.py", "golden/cta_program.py", "golden/cta_cycles.py", "golden/cta_host.py",
                       "golden/cta_params.py"),
            "testbench": ("sim/tb_cta.py",),
            "tests": ("tests/test_cta.py", "tests/test_cta_parts.py", "tests/test_golden_cta.py",
                      "tests/test_cta_program.py", "tests/test_cocotb_cta.py")},
    "latte": {"rtl": ("hdl/latte.py", "hdl/softmax_pv.py"), "golden": ("golden/latte.py", "golden/latte_cycles.py"),
              "testbench": ("sim/tb_latte.py",),
              "tests": ("tests/test_latte.py", "tests/test_latte_parts.py", "tests/test_golden_latte.py",
                        "tests/test_cocotb_latte.py")},
    "eatt": {"rtl": ("hdl/eatt.py", "hdl/softmax_pv.py"), "golden": ("golden/eatt.py", "golden/softmax_pv.py"),
             "testbench": ("sim/tb_eatt.py",),
             "tests": ("tests/test_eatt.py", "tests/test_eatt_parts.py", "tests/test_golden_eatt.py",
                       "tests/test_softmax_pv.py", "tests/test_cocotb_eatt.py")},
    "eatt_align": {"rtl": ("hdl/eatt.py",), "golden": ("golden/eatt.py",), "testbench": (),
                   "tests": ("tests/test_eatt.py", "tests/test_eatt_parts.py")},
    "mca": {"rtl": ("hdl/mca.py", "hdl/softmax_pv.py"), "golden": ("golden/mca.py", "golden/softmax_pv.py"),
            "testbench": ("sim/tb_mca.py",),
            "tests": ("tests/test_mca.py", "tests/test_golden_mca.py", "tests/test_cocotb_mca.py")},
}


def block_files(name: str) -> dict[str, tuple[str, ...]]:
    """RTL, golden, testbench and test files of block ``name`` (paths from the repository root)."""
    get_block(name)  # unknown names fail with the list of blocks
    if name not in BLOCK_FILES:
        raise RuntimeError(f"block {name} has no BLOCK_FILES entry in hdl/registry.py")
    return {**BLOCK_FILES[name], "vectors": ("sim/vector_tb.py",)}


_CACHE: dict[str, BlockSpec] | None = None


def parse_overrides(items: list[str] | None) -> dict[str, str]:
    """``NAME=VALUE`` strings (``--set``) -> dict; the values are validated later by the block's
    :class:`Param` (:meth:`BlockSpec.resolve`)."""
    out: dict[str, str] = {}
    for item in items or []:
        if "=" not in item:
            raise ParamError(f"--set expects NAME=VALUE, got {item!r}")
        name, value = item.split("=", 1)
        out[name.strip()] = value.strip()
    return out


def blocks() -> dict[str, BlockSpec]:
    """All blocks defined in the ``hdl`` package, by name."""
    global _CACHE
    if _CACHE is None:
        import hdl

        found: dict[str, BlockSpec] = {}
        for info in sorted(pkgutil.iter_modules(hdl.__path__), key=lambda i: i.name):
            module = importlib.import_module(f"hdl.{info.name}")
            for spec in getattr(module, "BLOCKS", ()):
                if spec.name in found:
                    raise RuntimeError(f"block {spec.name} defined twice (hdl.{info.name})")
                found[spec.name] = spec
        _CACHE = found
    return _CACHE


def get_block(name: str) -> BlockSpec:
    table = blocks()
    if name not in table:
        raise ParamError(f"unknown block {name!r}; available: {', '.join(sorted(table)) or '(none)'}")
    return table[name]
