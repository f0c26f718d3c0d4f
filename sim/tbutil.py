"""Small helpers shared by the cocotb testbenches."""

from __future__ import annotations

import os
import random
from collections.abc import Iterator

from cocotb.types import Logic


def read_unsigned(handle) -> int:
    value = handle.value
    if isinstance(value, Logic):
        return int(value)
    return value.to_unsigned()


def read_signed(handle) -> int:
    """Amaranth exports every port unsigned: reinterpret as two's complement."""
    value = handle.value
    if isinstance(value, Logic):
        return -int(value)
    return value.to_signed()


def tb_rng(salt: int = 0) -> random.Random:
    """Reproducible RNG from cocotb's RANDOM_SEED (printed in the log) plus a salt."""
    return random.Random(int(os.environ.get("RANDOM_SEED", "1")) * 7919 + salt)


def pause_pattern(rng: random.Random, probability: float) -> Iterator[bool]:
    """Endless 'stall this cycle' decisions for random valid/ready backpressure."""
    while True:
        yield rng.random() < probability


def block_component(block: str):
    """The Amaranth component the simulated Verilog was generated from (same parameters), so a
    testbench packs payloads with the component's own ``lib.data`` layouts and reads its constants."""
    from hdl.registry import get_block
    from sim.runner import tb_params

    spec = get_block(block)
    return spec.build(**spec.resolve(tb_params()))


async def start_clock_and_reset(dut, idle: dict[str, int], cycles: int = 2) -> None:
    """Start a 100 MHz clock on ``dut.clk``, drive ``idle`` values and hold ``rst`` for ``cycles``."""
    import cocotb
    from cocotb.clock import Clock
    from cocotb.triggers import RisingEdge

    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.rst.value = 1
    for name, value in idle.items():
        getattr(dut, name).value = value
    for _ in range(cycles):
        await RisingEdge(dut.clk)
    dut.rst.value = 0
