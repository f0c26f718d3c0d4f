"""The AXI wrapper's sub-components alone (Amaranth simulator): the AXI4-Lite register slave
(:class:`hdl.axi.AxiLiteRegisters`) against a Python model of the register map, and one stream
master (:class:`hdl.axi.AxisMaster`: tlast counting, FIFO drop policy, tdata extension)."""

from __future__ import annotations

import random

import pytest
from amaranth.hdl import signed

from hdl.axi import RESP_DECERR, RESP_OKAY, RESP_SLVERR, AxiLiteRegisters, AxiRegister, AxisMaster
from tests.amaranth_helpers import run_sim
from tests.test_axi import _read, _write

#: a map with every access kind; WIDE spans two words, GAIN has a reset value
REGS = (
    AxiRegister("ID", 0x00, 32, "ro", 0, "id"),
    AxiRegister("STATUS", 0x04, 3, "w1c", 0, "sticky"),
    AxiRegister("GAIN", 0x08, 12, "rw", 0x5A3, "gain"),
    AxiRegister("WIDE", 0x0C, 40, "rw", 0, "two words"),
    AxiRegister("GO", 0x14, 1, "pulse", 0, "pulse"),
    AxiRegister("COUNT", 0x18, 16, "ro", 0, "count"),
)


class _Model:
    """What a register map does with one access (independent of the RTL)."""

    def __init__(self) -> None:
        self.rw = {r.name: r.reset for r in REGS if r.access == "rw"}
        self.status = 0

    def write(self, addr: int, data: int, strb: int) -> int:
        for r in REGS:
            for w in range(r.words):
                if addr >> 2 != (r.offset >> 2) + w:
                    continue
                if r.access == "ro":
                    return RESP_SLVERR
                if r.access == "w1c" and strb:
                    self.status &= ~data
                elif r.access == "rw":
                    for byte in range(4):
                        lo = 32 * w + 8 * byte
                        if strb >> byte & 1 and lo < r.width:
                            mask = ((1 << min(8, r.width - lo)) - 1) << lo
                            self.rw[r.name] = (self.rw[r.name] & ~mask) | ((data >> (8 * byte)) << lo & mask)
                return RESP_OKAY
        return RESP_DECERR

    def read(self, addr: int, ro: dict[str, int]) -> tuple[int, int]:
        for r in REGS:
            for w in range(r.words):
                if addr >> 2 == (r.offset >> 2) + w:
                    value = {"ro": ro.get(r.name, 0), "w1c": self.status, "pulse": 0}.get(
                        r.access, self.rw.get(r.name, 0))
                    return (value >> (32 * w)) & 0xFFFFFFFF, RESP_OKAY
        return 0, RESP_DECERR


def test_register_slave_matches_the_model():
    """Random writes (random strobes) and reads over mapped and unmapped words: every response and
    read value == the model; pulses last one cycle; a set wins over a clear in the same cycle."""
    dut = AxiLiteRegisters(registers=REGS, addr_width=8)
    model = _Model()
    rng = random.Random(16)
    ro = {"ID": 0x41544E01, "COUNT": 0xBEEF}
    checked = {"reads": 0, "writes": 0}

    async def tb(ctx):
        ctx.set(dut.fields.id, ro["ID"])
        ctx.set(dut.fields.count, ro["COUNT"])
        for _ in range(150):
            addr = 4 * rng.randrange(0x24 // 4)
            if rng.random() < 0.5:
                data, strb = rng.getrandbits(32), rng.choice([0xF, 0xF, rng.getrandbits(4)])
                if addr == 0x14:  # GO: the pulse is high for exactly the cycle after the write edge
                    data |= 1
                    strb |= 1
                assert await _write(ctx, dut, addr, data, strb) == model.write(addr, data, strb), hex(addr)
                checked["writes"] += 1
            else:
                assert await _read(ctx, dut, addr) == model.read(addr, ro), hex(addr)
                checked["reads"] += 1
            assert ctx.get(dut.fields.gain) == model.rw["GAIN"] and ctx.get(dut.fields.wide) == model.rw["WIDE"]
        # sticky bits: set, then a clear of bit 0 in the cycle bit 0 is set again: set wins
        ctx.set(dut.fields.status_set, 0b101)
        await ctx.tick()
        ctx.set(dut.fields.status_set, 0)
        assert ctx.get(dut.fields.status) == 0b101
        ctx.set(dut.s_axil_awaddr, 0x04)
        ctx.set(dut.s_axil_wdata, 0b101)
        ctx.set(dut.s_axil_wstrb, 0xF)
        ctx.set(dut.s_axil_awvalid, 1)
        ctx.set(dut.s_axil_wvalid, 1)
        ctx.set(dut.fields.status_set, 0b001)
        assert ctx.get(dut.s_axil_awready)
        await ctx.tick()
        ctx.set(dut.s_axil_awvalid, 0)
        ctx.set(dut.s_axil_wvalid, 0)
        ctx.set(dut.fields.status_set, 0)
        # WRITE_LATENCY: the response is valid after one edge
        assert AxiLiteRegisters.WRITE_LATENCY == 1 and ctx.get(dut.s_axil_bvalid)
        assert ctx.get(dut.fields.status) == 0b001
        ctx.set(dut.s_axil_bready, 1)
        await ctx.tick()
        # pulse: one cycle
        ctx.set(dut.s_axil_bready, 0)
        ctx.set(dut.s_axil_awaddr, 0x14)
        ctx.set(dut.s_axil_wdata, 1)
        ctx.set(dut.s_axil_awvalid, 1)
        ctx.set(dut.s_axil_wvalid, 1)
        await ctx.tick()
        ctx.set(dut.s_axil_awvalid, 0)
        ctx.set(dut.s_axil_wvalid, 0)
        assert ctx.get(dut.fields.go) == 1
        await ctx.tick()
        assert ctx.get(dut.fields.go) == 0
        # READ_LATENCY: data valid one edge after the AR handshake
        ctx.set(dut.s_axil_bready, 1)
        await ctx.tick()
        ctx.set(dut.s_axil_araddr, 0x08)
        ctx.set(dut.s_axil_arvalid, 1)
        assert ctx.get(dut.s_axil_arready)
        await ctx.tick()
        ctx.set(dut.s_axil_arvalid, 0)
        assert AxiLiteRegisters.READ_LATENCY == 1 and ctx.get(dut.s_axil_rvalid)
        assert ctx.get(dut.s_axil_rdata) == model.rw["GAIN"]

    run_sim(dut, tb)
    assert checked["reads"] > 40 and checked["writes"] > 40


def test_stream_master_tlast_fifo_and_extension():
    """No FIFO: tdata = the signed payload sign-extended, tlast every last_beats-th transfer (0:
    never). FIFO of 3: beats arriving while full are dropped with ``overflow``, the rest come out in
    order one edge later (FIFO_LATENCY); ``free`` counts the free entries."""
    direct = AxisMaster(payload_shape=signed(10), tdata_width=16)
    fifo = AxisMaster(payload_shape=8, tdata_width=8, fifo_depth=3, last_bit=7)

    async def tb_direct(ctx):
        ctx.set(direct.last_beats, 3)
        ctx.set(direct.tready, 1)
        lasts = []
        for k in range(7):
            ctx.set(direct.i.valid, 1)
            ctx.set(direct.i.payload, -k)
            assert ctx.get(direct.i.ready) and ctx.get(direct.tvalid)
            assert ctx.get(direct.tdata) == (-k) & 0xFFFF  # sign-extended to 16 bits
            lasts.append(ctx.get(direct.tlast))
            await ctx.tick()
        assert lasts == [0, 0, 1, 0, 0, 1, 0]
        ctx.set(direct.last_beats, 0)
        for _ in range(3):
            assert ctx.get(direct.tlast) == 0
            await ctx.tick()

    async def tb_fifo(ctx):
        ctx.set(fifo.last_beats, 0)
        ctx.set(fifo.tready, 0)
        assert ctx.get(fifo.free) == 3
        drops = []
        for k in range(5):  # 5 beats into 3 entries, tready low
            ctx.set(fifo.i.valid, 1)
            ctx.set(fifo.i.payload, 0x10 + k + (0x80 if k == 1 else 0))
            drops.append(ctx.get(fifo.overflow))
            await ctx.tick()
            if k == 0:
                assert ctx.get(fifo.tvalid) and AxisMaster.FIFO_LATENCY == 1
        ctx.set(fifo.i.valid, 0)
        assert drops == [0, 0, 0, 1, 1] and ctx.get(fifo.free) == 0
        ctx.set(fifo.tready, 1)
        out = []
        for _ in range(6):
            if ctx.get(fifo.tvalid):
                out.append((ctx.get(fifo.tdata), ctx.get(fifo.tlast)))
            await ctx.tick()
        assert out == [(0x10, 0), (0x91, 1), (0x12, 0)]  # tlast = payload bit 7
        assert ctx.get(fifo.free) == 3

    run_sim(direct, tb_direct)
    run_sim(fifo, tb_fifo)


def test_bad_parameters_create_nothing():
    with pytest.raises(ValueError, match="overlaps"):
        AxiLiteRegisters(registers=REGS + (AxiRegister("X", 0x10, 8, "rw", 0, "in WIDE"),), addr_width=8)
    with pytest.raises(ValueError, match="pulse"):
        AxiLiteRegisters(registers=(AxiRegister("P", 0, 2, "pulse", 0, ""),), addr_width=8)
    with pytest.raises(ValueError, match="fifo_depth"):
        AxisMaster(payload_shape=8, tdata_width=8, fifo_depth=1)
    with pytest.raises(ValueError, match="last_bit"):
        AxisMaster(payload_shape=8, tdata_width=8, last_bit=8)
