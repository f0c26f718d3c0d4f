"""``list``, ``generate`` and ``sim``."""

from __future__ import annotations

import argparse


def _list(args: argparse.Namespace) -> int:
    from hdl.registry import blocks

    for name, spec in sorted(blocks().items()):
        print(f"{name}: {spec.description}")
        for p in spec.params:
            default = str(p.default).lower() if p.kind is bool else repr(p.default)
            print(f"    {p.name + ' = ' + default:<28} {p.allowed():<30} {p.help}")
    return 0


def _generate(args: argparse.Namespace) -> int:
    from attn_rtl.cli import parse_sets
    from hdl.export import generate

    v_path, j_path = generate(args.block, parse_sets(args.set), args.output)
    print(f"wrote {v_path} and {j_path}")
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
    for name in names:
        for sim in args.sim:
            try:
                res = run_cocotb(name, overrides if args.blocks else {}, sim=sim, seed=args.seed)
            except SimulatorMissing as exc:
                raise UserError(str(exc)) from None
            status = "PASS" if res.ok else "FAIL"
            print(f"{status} {name} [{sim}] {res.tests - res.failed}/{res.tests} tests, "
                  f"build {res.build_seconds:.1f}s, run {res.run_seconds:.1f}s  ({res.build_dir})")
            for key, value in res.stats.items():
                print(f"    {key}: {value}")
            failed += not res.ok
    return 1 if failed else 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("list", help="list the blocks that can be generated and their parameters")
    p.set_defaults(func=_list)

    p = sub.add_parser("generate", help="write BLOCK.v and a JSON manifest")
    p.add_argument("block")
    p.add_argument("--set", action="append", metavar="NAME=VALUE", help="override a parameter")
    p.add_argument("-o", "--output", default="build", help="output directory (default: build)")
    p.set_defaults(func=_generate)

    p = sub.add_parser("sim", help="run the cocotb regression of blocks (default: all)")
    p.add_argument("blocks", nargs="*", metavar="BLOCK")
    p.add_argument("--sim", action="append", choices=("icarus", "verilator"),
                   help="simulator (repeatable; default: icarus and verilator)")
    p.add_argument("--set", action="append", metavar="NAME=VALUE", help="override a parameter")
    p.add_argument("--seed", type=int, default=None)
    p.set_defaults(func=lambda a: _sim_default(a))


def _sim_default(args: argparse.Namespace) -> int:
    args.sim = args.sim or ["icarus", "verilator"]
    return _sim(args)


