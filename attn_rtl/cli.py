"""``attn-rtl`` entry point: discovers subcommands in :mod:`attn_rtl.commands`."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from hdl.registry import ParamError


class UserError(Exception):
    """An error caused by the user's input: printed as one line, exit status 2."""


def parse_sets(items: list[str] | None) -> dict[str, str]:
    """``--set NAME=VALUE`` pairs -> dict (values validated later by the block's Param)."""
    out: dict[str, str] = {}
    for item in items or []:
        if "=" not in item:
            raise UserError(f"--set expects NAME=VALUE, got {item!r}")
        name, value = item.split("=", 1)
        out[name.strip()] = value.strip()
    return out


def build_parser() -> argparse.ArgumentParser:
    import attn_rtl.commands as commands

    parser = argparse.ArgumentParser(prog="attn-rtl", description=__doc__.splitlines()[0] if __doc__ else None)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda i: i.name):
        module = importlib.import_module(f"attn_rtl.commands.{info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ParamError, UserError) as exc:
        print(f"attn-rtl {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
