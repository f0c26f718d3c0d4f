"""Small helpers shared by the cocotb testbenches."""

from __future__ import annotations

import os
import random

import numpy as np
from cocotb.types import Logic

from sim.streams import CocotbIO, Scoreboard  # the one scoreboard (sim/streams.py); re-exported for older testbenches

__all__ = ["Scoreboard", "CycleDeadline", "read_unsigned", "read_signed", "tb_rng",
           "block_component", "start_clock_and_reset", "timeout_us", "env_int", "bench_work", "npz_work"]


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


def tb_np_rng() -> np.random.Generator:
    """NumPy generator from cocotb's RANDOM_SEED (printed in the log), for the random heads."""
    return np.random.default_rng(int(os.environ.get("RANDOM_SEED", "1")) & 0xFFFF)


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


class CycleDeadline:
    """A budget of clock cycles for one wait; :meth:`tick` fails naming what was awaited."""

    def __init__(self, cycles: int, what: str) -> None:
        self.cycles = cycles
        self.what = what
        self.spent = 0

    def tick(self, progress: str = "") -> None:
        self.spent += 1
        assert self.spent <= self.cycles, (
            f"timeout: waited {self.cycles} cycles for {self.what}" + (f" ({progress})" if progress else ""))


def timeout_us(measured_us: float, work: float = 1.0, margin: float = 20.0, floor_us: float = 50.0) -> dict:
    """``@cocotb.test`` keyword arguments bounding a test in simulated time.

    ``measured_us``: the longest simulated time the test took over the configurations pytest runs;
    ``work``: how much larger this run's workload is (env/parameter-driven tests), so the bound
    scales with it instead of going flaky; ``margin`` keeps the bound far from a slow but correct run.
    """
    return {"timeout_time": round(max(floor_us, measured_us * max(1.0, work) * margin), 1), "timeout_unit": "us"}


def env_int(name: str, default: int) -> int:
    """An integer knob from the environment (read at import, for :func:`timeout_us`)."""
    return int(os.environ.get(name) or default)


def bench_work(cases: list[dict], ref_mn: int) -> float:
    """Workload of a JSON bench case list relative to one measured head of ``ref_mn`` query x key
    pairs (npz cases, of unknown size until loaded, count as a 64 x 64 head)."""
    return sum((c.get("m", c.get("n", 64)) * c.get("n", 64) if "npz" not in c else 64 * 64) / ref_mn for c in cases)


def npz_work(env: str, ref_mn: int, q_key: str, k_key: str) -> float:
    """Workload of the head in the .npz named by ``env`` relative to a measured head of ``ref_mn`` pairs."""
    path = os.environ.get(env)
    if not path:
        return 1.0
    import numpy as np

    with np.load(path) as data:
        return data[q_key].shape[0] * data[k_key].shape[0] / ref_mn


class BlockTB:
    """The common part of a one-stream-in, one-stream-out block's cocotb TB: the DUT, its component
    (whose ``lib.data`` layouts pack the payloads), seeded Python / NumPy RNGs and the cocotb
    stream adapter. Subclasses name the registry ``BLOCK`` and the ``IDLE`` input values."""

    BLOCK: str = ""
    IDLE: dict[str, int] = {"i__valid": 0, "i__payload": 0, "o__ready": 0, "clear": 0}

    def __init__(self, dut, salt: int = 0) -> None:
        self.dut = dut
        self.comp = block_component(self.BLOCK)
        self.rng = tb_rng(salt)
        self.nprng = np.random.default_rng(self.rng.randrange(1 << 30))
        self.io = CocotbIO(dut)

    async def reset(self) -> None:
        await start_clock_and_reset(self.dut, self.IDLE)
        await self.io.start()
