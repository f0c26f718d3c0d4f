"""``list``, ``generate`` and ``sim``."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from attn_rtl.cli import add_json_option, add_out_option, emit_json


def _list(args: argparse.Namespace) -> int:
    from hdl.registry import block_files, blocks

    if args.json:
        emit_json(args.json, {name: {"description": spec.description,
                                     "params": [{"name": p.name, "default": p.default, "allowed": p.allowed(),
                                                 "help": p.help} for p in spec.params],
                                     "files": block_files(name)}
                              for name, spec in sorted(blocks().items())})
        return 0
    for name, spec in sorted(blocks().items()):
        print(f"{name}: {spec.description}")
        for kind, paths in block_files(name).items():
            print(f"    {kind + ':':<28} {', '.join(paths) or '-'}")
        for p in spec.params:
            default = str(p.default).lower() if p.kind is bool else repr(p.default)
            print(f"    {p.name + ' = ' + default:<28} {p.allowed():<30} {p.help}")
    return 0


def _generate(args: argparse.Namespace) -> int:
    from attn_rtl.cli import parse_sets
    from hdl.export import generate_files

    paths = generate_files(args.block, parse_sets(args.set), args.out, bus=args.bus, fusesoc=args.fusesoc,
                           fifo_depth=args.fifo_depth)
    if args.json:
        emit_json(args.json, {k: str(v) for k, v in paths.items()})
    else:
        print("wrote " + ", ".join(str(p) for p in paths.values()))
    return 0


def _sim(args: argparse.Namespace) -> int:
    from attn_rtl.cli import UserError, parse_sets
    from hdl.registry import blocks, get_block
    from sim.runner import SimulatorMissing, run_cocotb

    names = args.blocks or sorted(n for n, s in blocks().items() if s.cocotb_module)
    overrides = parse_sets(args.set)
    for name in names:
        get_block(name).resolve(overrides if args.blocks else {})
    failed = 0
    results: list[dict] = []
    for name in names:
        for sim in args.sim:
            try:
                if args.waves:
                    res, waves = _sim_waves(name, overrides if args.blocks else {}, sim, args.seed)
                else:
                    res, waves = run_cocotb(name, overrides if args.blocks else {}, sim=sim, seed=args.seed), []
            except SimulatorMissing as exc:
                raise UserError(str(exc)) from None
            status = "PASS" if res.ok else "FAIL"
            print(f"{status} {name} [{sim}] {res.tests - res.failed}/{res.tests} tests, "
                  f"build {res.build_seconds:.1f}s, run {res.run_seconds:.1f}s  ({res.build_dir})",
                  file=sys.stderr if args.json == "-" else sys.stdout)
            if args.json != "-":
                for key, value in res.stats.items():
                    print(f"    {key}: {value}")
                for path in waves:
                    print(f"    waves: {path}")
            results.append({"block": name, "sim": sim, "ok": res.ok, "tests": res.tests, "failed": res.failed,
                            "build_seconds": res.build_seconds, "run_seconds": res.run_seconds,
                            "build_dir": str(res.build_dir), "stats": res.stats,
                            **({"waves": [str(w) for w in waves]} if args.waves else {})})
            failed += not res.ok
    emit_json(args.json, results)
    return 1 if failed else 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("list", help="list the blocks that can be generated and their parameters")
    add_json_option(p)
    p.set_defaults(func=_list)

    p = sub.add_parser("generate", help="write BLOCK.v and a JSON manifest")
    p.add_argument("block")
    p.add_argument("--set", action="append", metavar="NAME=VALUE", help="override a parameter")
    add_out_option(p, "build")
    p.add_argument("--bus", choices=("none", "axi"), default="none",
                   help="axi: wrap streams as AXI4-Stream and registers behind an AXI4-Lite slave (BLOCK_axi.v, "
                        "register map in the manifest and BLOCK_axi_regs.md)")
    p.add_argument("--fifo-depth", type=int, default=16,
                   help="with --bus axi: FIFO depth of outputs that cannot be stalled (default: 16)")
    p.add_argument("--fusesoc", action="store_true", help="also write a FuseSoC CAPI2 .core file")
    add_json_option(p)
    p.set_defaults(func=_generate)

    p = sub.add_parser("sim", help="run the cocotb regression of blocks (default: all)")
    p.add_argument("blocks", nargs="*", metavar="BLOCK")
    p.add_argument("--sim", action="append", choices=("icarus", "verilator"),
                   help="simulator (repeatable; default: icarus and verilator)")
    p.add_argument("--set", action="append", metavar="NAME=VALUE", help="override a parameter")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--waves", action="store_true",
                   help="dump waveforms (FST on Icarus, VCD/FST on Verilator) and print their paths")
    add_json_option(p)
    p.set_defaults(func=lambda a: _sim_default(a))


def _wave_files(build_dir: Path, since: float) -> list[Path]:
    """The waveform files a run wrote (cocotb names them per simulator: ``*.fst`` / ``*.vcd``)."""
    found = [p for ext in ("fst", "vcd") for p in build_dir.glob(f"*.{ext}") if p.stat().st_mtime >= since - 1]
    return sorted(found)


def cocotb_test_names(module: str) -> list[str]:
    """The cocotb tests of a testbench module that a plain run executes, in definition order
    (``@cocotb.test`` objects; skipped ones left out, since naming a test runs it even if skipped)."""
    import importlib

    from cocotb._decorators import TestGenerator

    mod = importlib.import_module(module)
    return [name for name, obj in vars(mod).items() if isinstance(obj, TestGenerator) and not obj.skip]


def _sim_waves(block: str, overrides: dict, sim: str, seed: int | None) -> tuple[Any, list[Path]]:
    """Run each cocotb test of ``block`` alone (one simulator run each, on the same build), so that
    every test has its own waveform file: ``<build>/waves/<test>.<fst|vcd>``. Returns the summed
    result and the files."""
    from dataclasses import replace

    from hdl.registry import get_block
    from sim.runner import run_cocotb

    names = cocotb_test_names(get_block(block).cocotb_module)
    if not names:
        raise RuntimeError(f"{block}: its testbench module defines no cocotb test")
    total, files = None, []
    for test in names:
        started = time.time()
        res = run_cocotb(block, overrides, sim=sim, seed=seed, waves=True, testcase=test)
        if res.tests != 1:  # cocotb's filter matches names by suffix: a test must not end another's name
            raise RuntimeError(f"{block} [{sim}]: selecting test {test} ran {res.tests} tests")
        written = _wave_files(res.build_dir, started)
        if len(written) != 1:
            raise RuntimeError(f"{block} [{sim}] test {test}: expected one waveform file in {res.build_dir}, "
                               f"found {[p.name for p in written]}")
        dest = res.build_dir / "waves" / f"{test}{written[0].suffix}"
        dest.parent.mkdir(exist_ok=True)
        written[0].replace(dest)
        files.append(dest)
        total = res if total is None else replace(
            total, tests=total.tests + res.tests, failed=total.failed + res.failed,
            build_seconds=total.build_seconds + res.build_seconds, run_seconds=total.run_seconds + res.run_seconds,
            stats={**total.stats, **res.stats})
    return total, files


def _sim_default(args: argparse.Namespace) -> int:
    args.sim = args.sim or ["icarus", "verilator"]
    return _sim(args)


