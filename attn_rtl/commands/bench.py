"""``bench [NAME ...]``: run the benchmarks ``sim/bench_<name>.py`` (each has ``main(argv) -> int``).

Benchmarks print figures (cycles vs ideal, simulation speed ...); they are not timed tests.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import pkgutil
import sys
import tempfile
from pathlib import Path

from attn_rtl.cli import add_json_option


def _available() -> list[str]:
    import sim

    return sorted(i.name[len("bench_"):] for i in pkgutil.iter_modules(sim.__path__) if i.name.startswith("bench_"))


def _bench(args: argparse.Namespace) -> int:
    from attn_rtl.cli import UserError, emit_json

    names = args.names or _available()
    unknown = [n for n in names if n not in _available()]
    if unknown:
        raise UserError(f"unknown benchmark {unknown[0]!r}; available: {', '.join(_available()) or '(none)'}")
    if args.json is not None:
        import inspect

        def has_json(name: str) -> bool:
            return '"--json"' in inspect.getsource(importlib.import_module(f"sim.bench_{name}"))

        lacking = [n for n in names if not has_json(n)]
        if lacking:
            raise UserError(f"--json: benchmark {lacking[0]!r} writes no JSON; benchmarks with JSON: "
                            + ", ".join(n for n in _available() if has_json(n)))
    status = 0
    figures: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            module = importlib.import_module(f"sim.bench_{name}")
            print(f"== bench {name}", file=sys.stderr if args.json == "-" else sys.stdout)
            extra = ["--json", f"{tmp}/{name}.json"] if args.json is not None else []
            if args.json == "-":
                with contextlib.redirect_stdout(sys.stderr):
                    status |= int(module.main(args.args + extra) or 0)
            else:
                status |= int(module.main(args.args + extra) or 0)
            if extra:
                figures[name] = json.loads(Path(extra[1]).read_text())
    emit_json(args.json, figures)
    return status


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="run benchmarks that print cycle counts and simulation speed")
    p.add_argument("names", nargs="*", metavar="NAME", help="benchmark names (default: all)")
    add_json_option(p)
    p.add_argument("--args", nargs=argparse.REMAINDER, default=[], help="arguments passed to each benchmark")
    p.set_defaults(func=_bench)
