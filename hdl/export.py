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

__all__ = ["port_list", "manifest", "generate", "generate_files", "to_verilog", "core_file", "BUSES"]

#: values of ``attn-rtl generate --bus``
BUSES = ("none", "axi")


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


def core_file(top: str, files: list[str], data: Mapping[str, Any], version: str = "0.1.0") -> str:
    """A FuseSoC CAPI2 core for the generated Verilog: fileset, toplevel, and a Verilator lint target.

    The generator parameters are fixed in the Verilog (Amaranth emits no Verilog parameters), so
    they are listed as documentation: in the description and as comments."""
    params = data.get("parameters", {})
    desc = f"{data.get('description', top)} (attn-rtl generated; " + ", ".join(
        f"{k}={v}" for k, v in params.items()) + ")"
    lines = ["CAPI=2:", "",
             f"name: attn-rtl:generated:{top}:{version}",
             f"description: {json.dumps(desc)}", "",
             "# generator parameters (fixed in the Verilog; regenerate to change them):"]
    lines += [f"#   {k} = {v}" for k, v in params.items()]
    if data.get("bus"):
        lines.append(f"#   bus = {data['bus'].get('type')}")
    lines += ["", "filesets:", "  rtl:", "    files:"]
    lines += [f"      - {f}" for f in files]
    lines += ["    file_type: verilogSource", "",
              "targets:", "  default: &default",
              "    filesets: [rtl]", f"    toplevel: {top}", "",
              "  lint:", "    <<: *default", "    default_tool: verilator",
              "    tools:", "      verilator:", "        mode: lint-only",
              "        verilator_options: [-Wno-fatal, -Wno-lint, -Wno-style]", ""]
    return "\n".join(lines)


def generate_files(block: str, overrides: Mapping[str, Any] | None = None, out_dir: str | Path = ".", *,
                   bus: str = "none", fusesoc: bool = False, fifo_depth: int = 16) -> dict[str, Path]:
    """Write the Verilog and the manifest of ``block`` (and, with ``bus="axi"``, of its AXI wrapper
    ``<block>_axi`` with a Markdown register map; with ``fusesoc``, a CAPI2 ``.core``).

    Returns the written paths by kind: ``verilog``, ``manifest``, ``registers``, ``core``."""
    if bus not in BUSES:
        from .registry import ParamError

        raise ParamError(f"unknown bus {bus!r}; choose one of {', '.join(BUSES)}")
    spec = get_block(block)
    if bus == "axi":
        from .axi import check_fifo_depth
        from .registry import ParamError

        try:  # before the block exists: a bad option leaves no unused elaboratable behind
            check_fifo_depth(fifo_depth)
        except ValueError as exc:
            raise ParamError(f"block {block}: --bus axi: {exc}") from exc
    component, params = spec.elaborate(overrides)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    data = manifest(spec, component, params)
    paths: dict[str, Path] = {}
    top = block
    if bus == "axi":
        from .axi import AxiWrapper, register_map_markdown
        from .registry import ParamError

        try:
            wrapper = AxiWrapper(component, fifo_depth=fifo_depth)
        except (ValueError, TypeError) as exc:  # the block's ports cannot be wrapped (a design error)
            raise ParamError(f"block {block}: --bus axi: {exc}") from exc
        top = f"{block}_axi"
        data["inner_ports"] = data["ports"]
        data["ports"] = data["ports"][:2] + port_list(wrapper)
        data["toplevel"] = top
        data["bus"] = wrapper.bus_manifest()
        component = wrapper
        paths["registers"] = out / f"{top}_regs.md"
        paths["registers"].write_text(register_map_markdown(block, wrapper))
    else:
        data["toplevel"] = top
    paths["verilog"] = out / f"{top}.v"
    paths["manifest"] = out / f"{top}.json"
    paths["verilog"].write_text(to_verilog(component, top))
    paths["manifest"].write_text(json.dumps(data, indent=2) + "\n")
    if fusesoc:
        paths["core"] = out / f"{top}.core"
        paths["core"].write_text(core_file(top, [paths["verilog"].name], data))
    return paths


def generate(block: str, overrides: Mapping[str, Any] | None = None, out_dir: str | Path = ".", *,
             bus: str = "none", fusesoc: bool = False) -> tuple[Path, Path]:
    """Write ``out_dir/<block>.v`` and ``out_dir/<block>.json`` (``<block>_axi.*`` with
    ``bus="axi"``); returns both paths (see :func:`generate_files` for every file)."""
    paths = generate_files(block, overrides, out_dir, bus=bus, fusesoc=fusesoc)
    return paths["verilog"], paths["manifest"]
