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


_CACHE: dict[str, BlockSpec] | None = None


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
