"""Small shared helpers for Amaranth-simulator testbenches (async, ctx.set/get/tick)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from amaranth.sim import Simulator


def run_sim(dut: Any, *testbenches: Callable, vcd: str | None = None, deadline_cycles: int | None = None) -> None:
    """Simulate ``dut`` with a 1 MHz sync clock and the given async testbenches."""
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    for tb in testbenches:
        sim.add_testbench(tb)
    if vcd:
        with sim.write_vcd(vcd):
            sim.run()
    else:
        sim.run()


async def stream_put(ctx: Any, stream: Any, payload: Any) -> None:
    """Offer one payload on a stream.Interface and wait for the transfer (valid held until ready)."""
    ctx.set(stream.valid, 1)
    ctx.set(stream.payload, payload)
    await ctx.tick().until(stream.ready)
    ctx.set(stream.valid, 0)


async def stream_get(ctx: Any, stream: Any) -> Any:
    """Accept one payload from a stream.Interface (ready held until valid)."""
    ctx.set(stream.ready, 1)
    payload, = await ctx.tick().sample(stream.payload).until(stream.valid)
    ctx.set(stream.ready, 0)
    return payload


def pause_pattern(seed: int, probability: float) -> Iterable[bool]:
    """Endless reproducible pattern of 'stall this cycle' decisions for random backpressure."""
    import random

    rng = random.Random(seed)
    while True:
        yield rng.random() < probability
