"""``export-tb BLOCK``: a portable, self-checking vector testbench (no Python needed to run it)."""

from __future__ import annotations

import argparse

from attn_rtl.cli import add_json_option, add_out_option, emit_json


def _export_tb(args: argparse.Namespace) -> int:
    from attn_rtl.cli import UserError, parse_sets
    from sim.vector_tb import build_bench, export_tb, plural, run_bench

    if args.vectors < 1:
        raise UserError(f"--vectors must be >= 1, got {args.vectors}")
    out = f"build/tb_{args.block}" if args.out == "build/tb_BLOCK" else args.out
    res = export_tb(args.block, parse_sets(args.set), out, vectors=args.vectors, seed=args.seed)
    cmds = res.commands()
    if args.waves:
        cmds = {k: v + " +waves" for k, v in cmds.items()}
        cmds["verilator"] = cmds["verilator"].replace("verilator --binary", "verilator --binary --trace")
    info = {"out": str(res.out_dir), "block": res.block, "params": res.params, "vectors": res.vectors,
            "unit": res.unit, "seed": args.seed, "files": {k: v for k, v in res.counts.items()},
            "testbench": str(res.testbench), "verilog": str(res.verilog), "commands": cmds}
    quiet = args.json == "-"
    if not quiet:
        print(f"wrote {res.testbench}, {res.verilog.name}, {res.manifest.name} and the vectors into {res.out_dir}: "
              f"{res.vectors} {plural(res.unit)}, {res.counts['ctl']} run(s), seed {args.seed}")
        print("items per stream: " + ", ".join(f"{k} {v}" for k, v in res.counts.items() if k != "ctl"))
        print("run on Icarus:    " + cmds["icarus"])
        print("run on Verilator: " + cmds["verilator"])
        print("plusargs: +seed=S (gaps/stalls), +gap=P +stall=P (per 256), +waves (waves.vcd); "
              "last line PASS/FAIL, exit status 1 on FAIL")
    status = 0
    if args.run:
        for sim in args.run:
            try:
                build_bench(res.out_dir, sim, waves=args.waves)
            except (FileNotFoundError, RuntimeError) as exc:
                raise UserError(str(exc).splitlines()[0]) from None
            r = run_bench(res.out_dir, sim, seed=args.seed, waves=args.waves)
            if not quiet:
                print(f"[{sim}] {r.line} ({r.run_seconds:.2f} s)")
                if args.waves:
                    print(f"[{sim}] waves: {res.out_dir / 'waves.vcd'}")
            info.setdefault("runs", {})[sim] = {"ok": r.ok, "line": r.line, "cycles": r.cycles,
                                                "seconds": r.run_seconds}
            status |= not r.ok
    emit_json(args.json, info)
    return 1 if status else 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export-tb", help="write a self-checking SystemVerilog vector testbench of a block "
                                         "(hex stimulus/expected from the golden model)")
    p.add_argument("block")
    p.add_argument("--set", action="append", metavar="NAME=VALUE", help="override a parameter")
    add_out_option(p, "build/tb_BLOCK", "output directory")
    p.add_argument("--vectors", type=int, default=64, help="random vectors (default: 64)")
    p.add_argument("--seed", type=int, default=1, help="seed of the vectors and the default +seed (default: 1)")
    p.add_argument("--waves", action="store_true", help="print the commands with +waves (waves.vcd)")
    p.add_argument("--run", action="append", choices=("icarus", "verilator"),
                   help="also build and run the bench on this simulator (repeatable)")
    add_json_option(p)
    p.set_defaults(func=_export_tb)
