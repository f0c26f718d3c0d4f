"""Subcommands: each module defines ``register(subparsers)`` which adds one or more parsers whose
``func(args) -> int`` runs the command. Modules are discovered, so a new subcommand is a new file."""
