"""``synth``: yosys / nextpnr synthesis of a block, the hardware-cost report, and a board build.

    attn-rtl synth BLOCK [--set N=V ...] [--target generic|ecp5|ice40] [--seeds N]
    attn-rtl synth --report [--target ecp5|ice40] [--seeds 3] [--jobs N] [--blocks A B ...] [--update [JSON]]
               (--update: merge the rows into synth/report.json, or JSON, and regenerate the
                generated part of the REPORT.md beside it; rows of other blocks/targets are kept)
    attn-rtl synth --board [BLOCK] [--set N=V ...]     # ULX3S 85F bitstream via Amaranth's build
"""

from __future__ import annotations

import argparse
import shlex
import sys

from attn_rtl.cli import add_json_option, add_out_option


def _print_result(result, as_json: str | None) -> None:
    if as_json is not None:
        from attn_rtl.cli import emit_json

        emit_json(as_json, result.as_dict())
        if as_json == "-":
            return
    res = result.resources
    print(f"{result.block} [{result.target}, {result.device}] "
          f"config: {', '.join(f'{k}={v}' for k, v in result.overrides.items()) or 'defaults'}"
          + (" (serial-wrapped)" if result.wrapped else ""))
    print("  resources: " + ", ".join(f"{k}={v}" for k, v in res.items()))
    for seed in result.seeds:
        path = seed.critical_path or {}
        print(f"  seed {seed.seed}: Fmax {seed.fmax_mhz} MHz  ({seed.seconds:.1f}s)"
              + (f"  critical: {path.get('source_signal')} -> {path.get('sink_signal')} "
                 f"{path.get('delay_ns')} ns" if path else ""))
    fmax = result.fmax
    if fmax:
        print(f"  Fmax median {fmax['median']:.2f} MHz (min {fmax['min']:.2f}, max {fmax['max']:.2f})")
        worst = result.worst_seed
        if worst and worst.critical_path:
            path = worst.critical_path
            print(f"  critical path (seed {worst.seed}): {path['source_cell']} -> {path['sink_cell']}, "
                  f"{path['delay_ns']} ns, {path['logic_levels']} logic elements")
            print("    signals: " + " -> ".join(path["signals"][:12]))
            print("    verilog: " + ", ".join(path["sources"][:8]))
    print(f"  build dir: {result.build_dir}")


def _synth(args: argparse.Namespace) -> int:
    from attn_rtl.cli import UserError, parse_sets
    from hdl.registry import blocks, get_block
    from synth.flow import TARGETS, DoesNotFit, SynthError, synth_block
    from synth.tools import ToolFailed, ToolMissing

    def log(msg: str) -> None:
        if not args.quiet:
            print(msg, file=sys.stderr, flush=True)

    target = args.target or ("ecp5" if args.report else "generic")
    if target not in TARGETS:  # argparse checks too; kept for programmatic callers
        raise UserError(f"unknown target {target!r}; available: {', '.join(TARGETS)}")
    if args.seeds is not None and not 1 <= args.seeds <= 20:
        raise UserError(f"--seeds {args.seeds} out of range: expected 1..20")
    if args.jobs < 1:
        raise UserError(f"--jobs must be >= 1, got {args.jobs}")
    if args.jobs > 1 and not args.report:
        raise UserError("--jobs runs report blocks in parallel: use it with --report")
    if args.update is not None and not args.report:
        raise UserError("--update merges a report run: use it with --report")
    try:
        if args.report:
            from synth.report import run_report

            if args.block:
                raise UserError("--report covers every block; use --blocks to select some")
            if args.update and not args.update.endswith(".json"):
                raise UserError(f"--update {args.update}: expected the merged report's .json file")
            names = args.blocks or None
            for name in names or []:
                get_block(name)
            seeds = args.seeds or 3
            command = "attn-rtl synth " + " ".join(shlex.quote(a) for a in sys.argv[2:]) \
                if len(sys.argv) > 2 and sys.argv[1] == "synth" else None
            doc = run_report(names, target=target, seeds=seeds, out_dir=args.out, build_root=args.build_dir,
                             freq_mhz=args.freq, command=command, log=None if args.quiet else log,
                             jobs=args.jobs)
            from synth.report import render_markdown

            if args.json is not None:
                from attn_rtl.cli import emit_json

                emit_json(args.json, doc)
            if args.json != "-":
                print(render_markdown(doc))
            failed = [r["block"] for r in doc["rows"] if "error" in r and not r.get("does_not_fit")]
            print(f"wrote {args.out}/synth_{target}.md and .json"
                  + (f"; failed: {', '.join(failed)}" if failed else ""),
                  file=sys.stderr if args.json == "-" else sys.stdout)
            if args.update is not None:
                from pathlib import Path

                from synth.report import PROJECT_REPORT_JSON, update_report

                json_path = Path(args.update) if args.update else PROJECT_REPORT_JSON
                update_report(doc, json_path, json_path.with_name("REPORT.md"))
                print(f"merged {len(doc['rows'])} row(s) into {json_path} and {json_path.with_name('REPORT.md')}",
                      file=sys.stderr if args.json == "-" else sys.stdout)
            return 1 if failed else 0
        if args.board:
            from synth.board import BOARD_BLOCK, build_board

            name = args.block or (BOARD_BLOCK if BOARD_BLOCK in blocks() else None)
            if name is None:
                raise UserError(f"--board: block {BOARD_BLOCK!r} is not registered yet; name a block")
            spec = get_block(name)
            overrides = parse_sets(args.set) if args.set else dict(spec.fpga_params)
            info = build_board(name, overrides, seed=args.seeds or 1, build_root=args.build_dir, log=log)
            from attn_rtl.cli import emit_json

            emit_json(args.json, info)
            if args.json != "-":
                print(f"{name} on ULX3S 85F: bitstream {info['bitstream']}, Fmax {info['fmax_mhz']} MHz, "
                      f"utilisation {info['utilization']}")
            return 0
        if not args.block:
            raise UserError("name a BLOCK, or use --report / --board")
        overrides = parse_sets(args.set)
        result = synth_block(args.block, overrides, target=target,
                             seeds=(args.seeds or 1) if target != "generic" else 0,
                             freq_mhz=args.freq, build_root=args.build_dir, log=log)
    except (SynthError, DoesNotFit, ToolMissing) as exc:
        raise UserError(str(exc)) from None
    except ToolFailed as exc:
        print(exc.log, file=sys.stderr)
        raise UserError(str(exc)) from None
    _print_result(result, args.json)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    # Kept import-free (the CLI imports every command module); synth.flow has the same values.
    TARGETS, TARGET_MHZ = ("generic", "ecp5", "ice40"), 200.0
    DEFAULT_BUILD_ROOT, DEFAULT_REPORT_DIR = "build/synth", "reports/synth"
    p = sub.add_parser("synth", help="synthesise a block with yosys/nextpnr (yowasp) or write the cost report",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("block", nargs="?", metavar="BLOCK")
    p.add_argument("--set", action="append", metavar="NAME=VALUE", help="override a parameter")
    p.add_argument("--target", choices=TARGETS, default=None,
                   help="generic (yosys only), ecp5 (LFE5U-85F) or ice40 (UP5K); default generic, ecp5 with --report")
    p.add_argument("--seeds", type=int, default=None,
                   help="nextpnr seeds, run one at a time (default 1; 3 for --report)")
    p.add_argument("--freq", type=float, default=TARGET_MHZ, help=f"nextpnr target MHz (default {TARGET_MHZ:g})")
    p.add_argument("--report", action="store_true", help="synthesise the FPGA-sized configuration of every block")
    p.add_argument("--blocks", nargs="+", metavar="BLOCK", help="with --report: only these blocks")
    p.add_argument("--jobs", type=int, default=1,
                   help="with --report: tool processes at once (yosys or one nextpnr seed each; default 1)")
    p.add_argument("--update", nargs="?", const="", default=None, metavar="JSON",
                   help="with --report: merge the rows into JSON (default synth/report.json) and regenerate "
                        "the generated part of the REPORT.md beside it, keeping the rows of other blocks")
    p.add_argument("--board", action="store_true",
                   help="build a ULX3S 85F bitstream through Amaranth's build flow (default block: systolic_array)")
    add_out_option(p, str(DEFAULT_REPORT_DIR), "report directory")
    p.add_argument("--build-dir", default=str(DEFAULT_BUILD_ROOT), help="work directory (default build/synth)")
    add_json_option(p)
    p.add_argument("-q", "--quiet", action="store_true", help="no progress messages")
    p.set_defaults(func=_synth)
