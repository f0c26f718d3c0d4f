"""A tiny stream DUT and its transaction script, run on both adapters of :mod:`sim.streams`.

``StreamFifo`` passes ``i`` (``lib.stream``, struct payload) through a buffered FIFO to ``o`` and
copies every input transfer to a valid-only result stream ``seen`` one cycle later. The runtime
input ``drop_at`` (0 = off) makes it a deliberately broken DUT: input item ``drop_at`` (1-based)
is accepted but never reaches ``o``. The cocotb tests below run the same :func:`fifo_script` as
``tests/test_streams.py`` does on the Amaranth simulator; ``tests/test_streams.py`` builds the
Verilog and runs them on Icarus.
"""

from __future__ import annotations

import os
import random

import cocotb
from amaranth.hdl import Module, Signal, signed, unsigned
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from sim.streams import CocotbIO, Scoreboard, Sink, Source, StreamBench, StreamError, StreamIO, ValidMonitor, layout_of

ITEM = data.StructLayout({"data": signed(8), "tag": unsigned(4)})
MAX_DROP = 255


class StreamFifo(wiring.Component):
    """``depth``-entry FIFO from ``i`` to ``o``; ``seen`` = valid-only copy of ``i`` transfers."""

    def __init__(self, depth: int = 4) -> None:
        if not isinstance(depth, int) or depth < 1:
            raise ValueError(f"depth must be an int >= 1, got {depth!r}")
        self.depth = depth
        super().__init__({
            "i": In(stream.Signature(ITEM)),
            "o": Out(stream.Signature(ITEM)),
            "seen_valid": Out(1),
            "seen_payload": Out(ITEM),
            "drop_at": In(range(MAX_DROP + 1)),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.q = q = fifo.SyncFIFOBuffered(width=ITEM.size, depth=self.depth)
        count = Signal(range(MAX_DROP + 2))
        take = self.i.valid & q.w_rdy
        drop = (count + 1 == self.drop_at) & (self.drop_at != 0)
        m.d.comb += [
            self.i.ready.eq(q.w_rdy),
            q.w_data.eq(self.i.payload),
            q.w_en.eq(take & ~drop),
            self.o.valid.eq(q.r_rdy),
            self.o.payload.eq(q.r_data),
            q.r_en.eq(self.o.ready),
        ]
        with m.If(take & (count != MAX_DROP + 1)):
            m.d.sync += count.eq(count + 1)
        m.d.sync += [self.seen_valid.eq(take), self.seen_payload.eq(self.i.payload)]
        return m


def fifo_items(n: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    return [{"data": rng.randrange(-128, 128), "tag": i % 16} for i in range(n)]


async def fifo_script(io: StreamIO, comp: StreamFifo, items: list[dict], *, expected: list[dict] | None = None,
                      p_in: float = 0.3, p_out: float = 0.3, seed: int = 1, drop_at: int = 0,
                      wait_cycles: int = 50, deadline_cycles: int = 2_000, drain_cycles: int = 8) -> StreamBench:
    """Send ``items`` with random stalls; ``o`` must return ``expected`` (default: ``items``) and
    ``seen`` must report every input item."""
    layout = layout_of(comp.i.payload)
    rng = random.Random(seed)
    want = items if expected is None else expected
    bench = StreamBench(
        Source("i", layout, items, p_stall=p_in, rng=rng, wait_cycles=wait_cycles),
        Sink("o", layout_of(comp.o.payload), Scoreboard("o", want), p_stall=p_out, rng=rng, wait_cycles=wait_cycles),
        ValidMonitor("seen", valid="seen_valid", payload="seen_payload", layout=ITEM,
                     scoreboard=Scoreboard("seen", items), wait_cycles=wait_cycles),
        before=lambda b: {"drop_at": drop_at},
        deadline_cycles=deadline_cycles, drain_cycles=drain_cycles)
    return await bench.run(io)


# ---- cocotb side (tests/test_streams.py runs this module on the exported Verilog) --------------


async def _start(dut) -> CocotbIO:
    from sim.tbutil import start_clock_and_reset

    await start_clock_and_reset(dut, {"i__valid": 0, "o__ready": 0, "drop_at": 0})
    io = CocotbIO(dut)
    await io.start()
    return io

async def _must_fail(dut, kind: str, what: str, **script) -> None:
    """Run the FIFO script with a fault or a tight bound that the harness must report; the message
    goes to the stats under ``kind`` (tests/test_streams.py checks its text)."""
    from sim.runner import write_stats

    io = await _start(dut)
    try:
        await fifo_script(io, StreamFifo(), **script)
    except StreamError as exc:
        write_stats({kind: str(exc)})
        return
    raise AssertionError(f"{what} was not caught")


@cocotb.test(timeout_time=2, timeout_unit="ms")
async def passes_with_stalls(dut):
    io = await _start(dut)
    items = fifo_items(40, 3)
    seed = int(os.environ.get("RANDOM_SEED", "1"))
    bench = await fifo_script(io, StreamFifo(), items, p_in=0.4, p_out=0.4, seed=seed)
    from sim.runner import write_stats

    write_stats({"passed_items": len(bench.agents[1].scoreboard.items), "cycles": bench.cycle})

@cocotb.test(timeout_time=2, timeout_unit="ms")
async def dropped_item_is_caught(dut):
    await _must_fail(dut, "drop", "dropping item 7", items=fifo_items(20, 4), drop_at=7)


@cocotb.test(timeout_time=2, timeout_unit="ms")
async def dropped_last_item_fails_within_its_deadline(dut):
    await _must_fail(dut, "drop_last", "dropping the last item", items=fifo_items(20, 4), drop_at=20, wait_cycles=50)


@cocotb.test(timeout_time=2, timeout_unit="ms")
async def extra_item_is_caught(dut):
    items = fifo_items(12, 5)
    await _must_fail(dut, "extra", "an item after the last expected one", items=items, expected=items[:-1])


@cocotb.test(timeout_time=2, timeout_unit="ms")
async def deadline_is_caught(dut):
    await _must_fail(dut, "deadline", "a run longer than deadline_cycles", items=fifo_items(30, 6),
                     deadline_cycles=20)
