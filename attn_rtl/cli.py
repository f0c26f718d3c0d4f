"""``attn-rtl`` entry point: discovers subcommands in :mod:`attn_rtl.commands`."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from hdl.registry import ParamError
from hdl.registry import parse_overrides as parse_sets  # noqa: F401 - the commands' spelling


class UserError(Exception):
    """An error caused by the user's input: printed as one line, exit status 2."""


def add_out_option(p: argparse.ArgumentParser, default: str, what: str = "output directory") -> None:
    """The one spelling of an output directory in every subcommand: ``--out DIR`` (old spellings
    ``-o`` and ``--output`` kept as aliases)."""
    p.add_argument("--out", "-o", "--output", dest="out", default=default, metavar="DIR",
                   help=f"{what} (default: {default})")


def add_json_option(p: argparse.ArgumentParser) -> None:
    """``--json`` prints the figures as JSON on stdout; ``--json FILE`` writes them to FILE."""
    p.add_argument("--json", nargs="?", const="-", default=None, metavar="FILE",
                   help="figures as JSON: on stdout, or into FILE")


def emit_json(target: str | None, data: object) -> None:
    """Write ``data`` for ``--json [FILE]`` (nothing when the option was not given)."""
    import json
    from pathlib import Path

    if target is None:
        return
    text = json.dumps(data, indent=2, default=str)
    if target == "-":
        print(text)
    else:
        Path(target).parent.mkdir(parents=True, exist_ok=True)
        Path(target).write_text(text + "\n")


class _Parser(argparse.ArgumentParser):
    """Usage errors: one line on stderr, exit status 2 (argparse's default prints the usage too)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    import attn_rtl.commands as commands

    parser = _Parser(prog="attn-rtl", description=__doc__.splitlines()[0] if __doc__ else None)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda i: i.name):
        module = importlib.import_module(f"attn_rtl.commands.{info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(sub)
    for sp in sub.choices.values():
        _unify_out(sp)
    return parser


def _unify_out(p: argparse.ArgumentParser) -> None:
    """A subcommand that still spells its output directory ``-o/--output`` also accepts ``--out``."""
    opts = {s: a for a in p._actions for s in a.option_strings}
    if "--output" in opts and "--out" not in opts:
        p.add_argument("--out", dest=opts["--output"].dest, default=argparse.SUPPRESS, metavar="DIR",
                       help="same as --output")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ParamError, UserError) as exc:
        print(f"attn-rtl {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError) as exc:
        print(f"attn-rtl {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    # `python -m attn_rtl.cli`: run the imported module's main, so that the commands' UserError
    # (attn_rtl.cli.UserError) is the class caught there, not a second copy in __main__
    from attn_rtl.cli import main as _main

    sys.exit(_main())
