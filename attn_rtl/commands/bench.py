"""``bench [NAME ...]``: run the benchmarks ``sim/bench_<name>.py`` (each has ``main(argv) -> int``).

Benchmarks print figures (cycles vs ideal, simulation speed ...); they are not timed tests.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil


def _available() -> list[str]:
    import sim

    return sorted(i.name[len("bench_"):] for i in pkgutil.iter_modules(sim.__path__) if i.name.startswith("bench_"))


def _bench(args: argparse.Namespace) -> int:
    from attn_rtl.cli import UserError

    names = args.names or _available()
    unknown = [n for n in names if n not in _available()]
    if unknown:
        raise UserError(f"unknown benchmark {unknown[0]!r}; available: {', '.join(_available()) or '(none)'}")
    status = 0
    for name in names:
        module = importlib.import_module(f"sim.bench_{name}")
        print(f"== bench {name}")
        status |= int(module.main(args.args) or 0)
    return status


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="run benchmarks that print cycle counts and simulation speed")
    p.add_argument("names", nargs="*", metavar="NAME", help="benchmark names (default: all)")
    p.add_argument("--args", nargs=argparse.REMAINDER, default=[], help="arguments passed to each benchmark")
    p.set_defaults(func=_bench)
