"""Small shared helpers for Amaranth-simulator testbenches (async, ctx.set/get/tick)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from amaranth.sim import Simulator

from sim.streams import StreamError, add_watchdog

# The longest caller today needs 841 cycles (tests/test_cim.py directed runs, measured 2026-12-03);
# 20k leaves >20x margin yet turns a dropped output into a failure in seconds, not a hung CI job.
DEFAULT_DEADLINE_CYCLES = 20_000


class SimDeadlineError(StreamError):
    """The critical testbenches were still running after ``deadline_cycles`` sync clock cycles."""


def run_sim(dut: Any, *testbenches: Callable, vcd: str | None = None,
            deadline_cycles: int = DEFAULT_DEADLINE_CYCLES) -> int:
    """Simulate ``dut`` with a 1 MHz sync clock and the given async testbenches.

    Fails with :class:`SimDeadlineError` if the testbenches have not all returned within
    ``deadline_cycles`` sync clock cycles; returns the number of cycles simulated.
    """
    if deadline_cycles < 1:
        raise ValueError(f"deadline_cycles must be >= 1, got {deadline_cycles}")
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    for tb in testbenches:
        sim.add_testbench(tb)
    cycles = add_watchdog(sim, deadline_cycles, error=SimDeadlineError,
                          hint=" sync cycles (a testbench is still waiting: dropped output or stalled stream?)")
    if vcd:
        with sim.write_vcd(vcd):
            sim.run()
    else:
        sim.run()
    return cycles[0]


async def wait_until(ctx: Any, signal: Any, deadline_cycles: int, what: str) -> int:
    """Tick until ``signal`` is 1 after an edge; fail naming ``what`` after ``deadline_cycles`` edges.

    Returns the number of edges waited (>= 1), like ``await ctx.tick().until(signal)`` but bounded.
    """
    for waited in range(1, deadline_cycles + 1):
        # sampled at the edge, as ``tick().until()`` does: 1 here means the transfer happened
        *_, value = await ctx.tick().sample(signal)
        if value:
            return waited
    raise SimDeadlineError(f"waited {deadline_cycles} cycles for {what}")
