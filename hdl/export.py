"""Verilog export and the JSON manifest written beside it (``attn-rtl generate``)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from amaranth.back import verilog
from amaranth.hdl import Shape
from amaranth.lib import wiring

from golden.fixed import QFormat

from .registry import BlockSpec, get_block

__all__ = ["port_list", "manifest", "generate", "to_verilog"]


def port_list(component: wiring.Component) -> list[dict[str, Any]]:
    """Flattened ports as they appear in the Verilog (``a__b`` for nested members)."""
    ports = []
    for path, member in component.signature.members.flatten():
        if not member.is_port:
            continue
        shape = Shape.cast(member.shape)
        ports.append({
            "name": "__".join(str(p) for p in path),
            "direction": "input" if member.flow == wiring.In else "output",
            "width": shape.width,
            "signed": shape.signed,
        })
    return ports


def _jsonable(value: Any) -> Any:
    if isinstance(value, QFormat):
        return value.as_dict()
    if hasattr(value, "as_dict"):
        return value.as_dict()
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item"):
        return value.item()
    return value


def manifest(spec: BlockSpec, component: wiring.Component, params: Mapping[str, Any]) -> dict[str, Any]:
    latency = getattr(component, "latency", getattr(component, "LATENCY", None))
    data: dict[str, Any] = {
        "block": spec.name,
        "description": spec.description,
        "parameters": dict(params),
        "formats": _jsonable(getattr(component, "formats", {})),
        "ports": [{"name": "clk", "direction": "input", "width": 1, "signed": False},
                  {"name": "rst", "direction": "input", "width": 1, "signed": False}] + port_list(component),
        "latency": _jsonable(latency),
    }
    extra = getattr(component, "manifest_extra", None)
    if callable(extra):
        data.update(_jsonable(extra()))
    return data


def to_verilog(component: wiring.Component, name: str) -> str:
    return verilog.convert(component, name=name, emit_src=False)


def generate(block: str, overrides: Mapping[str, Any] | None = None, out_dir: str | Path = ".") -> tuple[Path, Path]:
    """Write ``out_dir/<block>.v`` and ``out_dir/<block>.json``; returns both paths."""
    spec = get_block(block)
    component, params = spec.elaborate(overrides)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    v_path = out / f"{block}.v"
    j_path = out / f"{block}.json"
    v_path.write_text(to_verilog(component, block))
    j_path.write_text(json.dumps(manifest(spec, component, params), indent=2) + "\n")
    return v_path, j_path
