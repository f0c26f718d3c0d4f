# amaranth: UnusedElaboratable=no
"""cocotb testbench of the shared exp / reciprocal units against golden.lut (random + corners), on the
shared stream harness (sim/streams.py): explicit result count, every result ``==`` golden as it
arrives, a drain window, a cycle deadline on every wait, random clock-enable stalls (seed logged)."""

from __future__ import annotations

import os
import random
from typing import Any

import cocotb
import numpy as np

from golden.fixed import QFormat, Rounding
from hdl.arith import ExpUnit, ReciprocalScaler, exp_spec_from_params, recip_spec_from_params
from sim.runner import tb_params, write_stats
from sim.streams import CocotbIO, PipelineSource, Scoreboard, StreamBench, ValidMonitor
from sim.tbutil import start_clock_and_reset


class PipelineTB:
    """Clock, reset and the shared stream harness (:mod:`sim.streams`) on a clock-enable pipeline:
    a :class:`~sim.streams.PipelineSource` feeds one input per enabled cycle (random clock-enable
    stalls), a :class:`~sim.streams.ValidMonitor` takes ``valid_out`` on enabled edges and compares
    every result ``==`` with the golden one as it arrives; values packed / unpacked with the port
    shapes of ``comp``, the component the Verilog was generated from (same parameters)."""

    def __init__(self, dut, comp: Any, inputs: tuple[str, ...], outputs: tuple[str, ...]):
        self.dut = dut
        self.latency = comp.LATENCY
        seed = int(os.environ.get("RANDOM_SEED", "1"))
        self.rng = np.random.default_rng(seed & 0xFFFF)  # the test's operands
        self.stall_rng = random.Random(seed)  # the clock-enable stalls
        cocotb.log.info(f"RANDOM_SEED={seed}")
        members = comp.signature.members
        self.inputs = {name: (name, members[name].shape) for name in inputs}
        self.outputs = {name: (name, members[name].shape) for name in outputs}
        self.io = CocotbIO(dut)

    async def reset(self) -> None:
        await start_clock_and_reset(self.dut, {"en": 1, "valid_in": 0})
        await self.io.start()

    async def run(self, inputs: list[dict[str, int]], expected: list[tuple], stall_probability: float) -> tuple[
            list[tuple], int]:
        """One result per input, each ``==`` the expected one (a tuple in ``outputs`` order): fails
        on a mismatch at index i, on a result past the last expected one (also in a drain window of
        ``latency + 4`` enabled cycles), on ``latency`` + 16 enabled cycles without an owed result,
        and on the run exceeding its deadline. Returns (results, latency of the first one in enabled
        cycles)."""
        keys = list(self.outputs)
        src = PipelineSource("in", self.inputs, inputs, p_stall=stall_probability, rng=self.stall_rng)
        board = Scoreboard("valid_out results", [dict(zip(keys, e, strict=True)) for e in expected])
        mon = ValidMonitor("out", valid="valid_out", fields=self.outputs, enable="en", scoreboard=board,
                           wait_cycles=self.latency + 16)
        # one result per input after `latency` enabled cycles; stalls (p < 0.5) at most double that
        await StreamBench(src, mon, deadline_cycles=4 * (len(inputs) + self.latency) + 64,
                          drain_cycles=self.latency + 4).run(self.io)
        first = sum(1 for c in src.enabled if c < mon.transfers[0])  # enabled edges to the first result
        return [tuple(item[k] for k in keys) for item in board.items], first


@cocotb.test(timeout_time=200, timeout_unit="us")  # measured <= 4.1 us over the tested configurations
async def test_matches_golden(dut):
    block = os.environ["ATTN_RTL_BLOCK"]
    params = tb_params()
    if block == "exp_unit":
        spec = exp_spec_from_params(**params)
        tb = PipelineTB(dut, ExpUnit(spec=spec), ("x",), ("y", "overflow"))
        lo, hi = spec.in_fmt.min_int, spec.in_fmt.max_int
        xs = np.concatenate([[lo, hi, 0, -1, 1], tb.rng.integers(lo, hi + 1, 300)])
        want, over = spec(xs)
        await tb.reset()
        got, first = await tb.run([{"x": int(x)} for x in xs], list(zip(want.tolist(), over.astype(int).tolist(),
                                                                         strict=True)), stall_probability=0.25)
    else:
        spec = recip_spec_from_params(**params)
        vfmt = QFormat(params["value_width"], params["value_frac"])
        ofmt = QFormat(params["out_width"], params["out_frac"], rounding=Rounding(params["rounding"]))
        tb = PipelineTB(dut, ReciprocalScaler(spec=spec, value_fmt=vfmt, out_fmt=ofmt), ("value", "den"),
                        ("result", "overflow", "div_by_zero"))
        dens = np.concatenate([[0, 1, spec.den_fmt.max_int, 3], tb.rng.integers(0, spec.den_fmt.max_int + 1, 300)])
        vals = np.concatenate([[5, vfmt.min_int, vfmt.max_int, -1],
                               tb.rng.integers(vfmt.min_int, vfmt.max_int + 1, 300)])
        want, over, zero = spec.scale(vals, vfmt.frac, dens, ofmt)
        await tb.reset()
        got, first = await tb.run([{"value": int(v), "den": int(d)} for v, d in zip(vals, dens, strict=True)],
                                  list(zip(want.tolist(), over.astype(int).tolist(), zero.astype(int).tolist(),
                                           strict=True)), 0.25)
    assert first == tb.latency, f"latency {first} != {tb.latency}"
    write_stats({"latency": first, "checked": len(got)})
