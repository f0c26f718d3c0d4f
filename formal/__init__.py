"""Formal proofs (SymbiYosys) of the ``lib.stream`` contracts of the blocks: ``python -m formal``
or ``make formal``; see :mod:`formal.harness` and :mod:`formal.jobs`."""

from .harness import SOLVER, FormalResult, StreamHarness, check, stream_ports

__all__ = ["SOLVER", "FormalResult", "StreamHarness", "check", "stream_ports"]
