"""AXI wrapper (``hdl.axi``, ``generate --bus axi``): every registered block wraps; Amaranth-simulator
tests of the AXI4-Lite slave (responses, strobes) and of the valid-only output policy (FIFO, sticky
overflow, credit); cocotbext-axi regressions on Icarus and Verilator."""

from __future__ import annotations

import gc
import json
import warnings
from collections.abc import Callable
from types import SimpleNamespace

import pytest
from amaranth.hdl import Fragment, Module, UnusedElaboratable
from amaranth.lib import stream, wiring
from amaranth.lib.data import StructLayout
from amaranth.lib.wiring import In, Out

from attn_rtl.cli import main
from hdl.axi import AXI_ID, RESP_DECERR, RESP_OKAY, RESP_SLVERR, AxiWrapper
from hdl.registry import blocks
from tests.amaranth_helpers import run_sim

DEADLINE = 50  # cycles for one AXI4-Lite access


class _Toy(wiring.Component):
    """A block with a stream in, a stream out, a valid-only out and registers of several widths."""

    def __init__(self) -> None:
        super().__init__({
            "i": In(stream.Signature(12)),
            "o": Out(stream.Signature(12)),
            "res": Out(wiring.Signature({"valid": Out(1), "payload": Out(20)})),
            "e": Out(stream.Signature(StructLayout({"x": 4, "last": 1}))),
            "start": In(1),
            "starts": Out(8),
            "gain": In(8, init=3),
            "wide": In(40),
            "count": Out(16),
        })

    def elaborate(self, platform):
        m = Module()
        m.d.comb += [self.o.payload.eq(self.i.payload + self.gain), self.o.valid.eq(self.i.valid),
                     self.i.ready.eq(self.o.ready)]
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += self.count.eq(self.count + 1)
        m.d.comb += [self.e.valid.eq(1), self.e.payload.x.eq(self.count[:4]), self.e.payload.last.eq(self.count[0])]
        with m.If(self.start):
            m.d.sync += self.starts.eq(self.starts + 1)
        # one valid-only result every cycle while 'wide' bit 0 is set
        m.d.comb += [self.res.valid.eq(self.wide[0]), self.res.payload.eq(self.wide[8:28])]
        return m


async def _write(ctx, w: AxiWrapper, addr: int, data: int, strb: int = 0xF) -> int:
    ctx.set(w.s_axil_awaddr, addr)
    ctx.set(w.s_axil_wdata, data)
    ctx.set(w.s_axil_wstrb, strb)
    ctx.set(w.s_axil_awvalid, 1)
    ctx.set(w.s_axil_wvalid, 1)
    ctx.set(w.s_axil_bready, 1)
    for _ in range(DEADLINE):
        if ctx.get(w.s_axil_awready):
            await ctx.tick()
            break
        await ctx.tick()
    else:
        raise AssertionError("awready deadline")
    ctx.set(w.s_axil_awvalid, 0)
    ctx.set(w.s_axil_wvalid, 0)
    for _ in range(DEADLINE):
        if ctx.get(w.s_axil_bvalid):
            resp = ctx.get(w.s_axil_bresp)
            await ctx.tick()
            ctx.set(w.s_axil_bready, 0)
            return resp
        await ctx.tick()
    raise AssertionError("bvalid deadline")


async def _read(ctx, w: AxiWrapper, addr: int) -> tuple[int, int]:
    ctx.set(w.s_axil_araddr, addr)
    ctx.set(w.s_axil_arvalid, 1)
    ctx.set(w.s_axil_rready, 1)
    for _ in range(DEADLINE):
        if ctx.get(w.s_axil_arready):
            await ctx.tick()
            break
        await ctx.tick()
    else:
        raise AssertionError("arready deadline")
    ctx.set(w.s_axil_arvalid, 0)
    for _ in range(DEADLINE):
        if ctx.get(w.s_axil_rvalid):
            value = (ctx.get(w.s_axil_rdata), ctx.get(w.s_axil_rresp))
            await ctx.tick()
            ctx.set(w.s_axil_rready, 0)
            return value
        await ctx.tick()
    raise AssertionError("rvalid deadline")


def test_toy_register_map_and_streams():
    w = AxiWrapper(_Toy(), fifo_depth=4)
    regs = {r.name: r for r in w.registers}
    assert [s.prefix for s in w.streams] == ["s_axis_i", "m_axis_o", "m_axis_res", "m_axis_e"]
    assert [s.tdata_width for s in w.streams] == [16, 16, 24, 8]
    assert regs["START"].access == "pulse" and regs["E_LAST_BEATS"].reset == 0 and regs["O_LAST_BEATS"].reset == 1
    assert regs["GAIN"].access == "rw" and regs["GAIN"].reset == 3
    assert regs["WIDE"].words == 2 and regs["COUNT"].access == "ro"
    offsets = [r.offset for r in w.registers]
    assert offsets == sorted(offsets) and len(set(offsets)) == len(offsets)
    seen: dict = {}

    async def tb(ctx):
        assert await _read(ctx, w, 0x00) == (AXI_ID, RESP_OKAY)
        assert await _read(ctx, w, regs["GAIN"].offset) == (3, RESP_OKAY)
        # byte strobes: only byte 0 of GAIN exists; WIDE's second word holds bits 32..39
        assert await _write(ctx, w, regs["WIDE"].offset + 4, 0xAB, strb=0x1) == RESP_OKAY
        assert await _read(ctx, w, regs["WIDE"].offset + 4) == (0xAB, RESP_OKAY)
        assert await _write(ctx, w, regs["GAIN"].offset, 0x5A5A5A05, strb=0x2) == RESP_OKAY
        assert await _read(ctx, w, regs["GAIN"].offset) == (3, RESP_OKAY)  # byte 1 only: nothing changes
        assert await _write(ctx, w, regs["GAIN"].offset, 0x5A5A5A05) == RESP_OKAY
        assert await _read(ctx, w, regs["GAIN"].offset) == (5, RESP_OKAY)
        # errors
        assert await _write(ctx, w, regs["COUNT"].offset, 1) == RESP_SLVERR
        assert await _write(ctx, w, 0x00, 1) == RESP_SLVERR
        assert await _read(ctx, w, w.map_bytes) == (0, RESP_DECERR)
        assert await _write(ctx, w, w.map_bytes, 1) == RESP_DECERR
        assert await _read(ctx, w, (1 << w.addr_width) - 4) == (0, RESP_DECERR)
        # stream through the wrapper: payload + gain, tlast every 2 beats
        assert await _write(ctx, w, regs["O_LAST_BEATS"].offset, 2) == RESP_OKAY
        ctx.set(w.m_axis_o_tready, 1)
        lasts = []
        for x in range(4):
            ctx.set(w.s_axis_i_tdata, 100 + x)
            ctx.set(w.s_axis_i_tvalid, 1)
            assert ctx.get(w.s_axis_i_tready) and ctx.get(w.m_axis_o_tvalid)
            assert ctx.get(w.m_axis_o_tdata) == 105 + x
            lasts.append(ctx.get(w.m_axis_o_tlast))
            await ctx.tick()
        ctx.set(w.s_axis_i_tvalid, 0)
        assert lasts == [0, 1, 0, 1]
        assert await _read(ctx, w, regs["COUNT"].offset) == (4, RESP_OKAY)
        # the payload's own last bit is tlast (E_LAST_BEATS = 0)
        assert ctx.get(w.m_axis_e_tdata) == 4 and ctx.get(w.m_axis_e_tlast) == 0
        assert await _write(ctx, w, regs["E_LAST_BEATS"].offset, 1) == RESP_OKAY
        assert ctx.get(w.m_axis_e_tlast) == 1  # every beat ends a packet now
        # pulse input: each write of 1 is one cycle high; reads 0
        for _ in range(3):
            assert await _write(ctx, w, regs["START"].offset, 1) == RESP_OKAY
        assert await _write(ctx, w, regs["START"].offset, 0) == RESP_OKAY
        assert await _read(ctx, w, regs["STARTS"].offset) == (3, RESP_OKAY)
        assert await _read(ctx, w, regs["START"].offset) == (0, RESP_OKAY)
        # valid-only output: tready low, > 4 results into a 4-entry FIFO -> dropped, sticky bit 2
        assert await _read(ctx, w, 0x08) == (4, RESP_OKAY)
        ctx.set(w.m_axis_res_tready, 0)
        assert await _write(ctx, w, regs["WIDE"].offset, (0x123 << 8) | 1) == RESP_OKAY
        # one result per cycle from the write on: > 4 results before the next write stops them
        for _ in range(8):
            await ctx.tick()
        assert await _write(ctx, w, regs["WIDE"].offset, 0) == RESP_OKAY
        free, _ = await _read(ctx, w, 0x08)
        status, _ = await _read(ctx, w, 0x04)
        seen["free"], seen["status"] = free, status
        assert free == 0 and status == 0b100
        got = []
        ctx.set(w.m_axis_res_tready, 1)
        for _ in range(10):
            if ctx.get(w.m_axis_res_tvalid):
                got.append(ctx.get(w.m_axis_res_tdata))
            await ctx.tick()
        assert got == [0x123] * 4
        assert await _write(ctx, w, 0x04, 0b100) == RESP_OKAY  # W1C
        assert await _read(ctx, w, 0x04) == (0, RESP_OKAY)
        assert await _read(ctx, w, 0x08) == (4, RESP_OKAY)

    run_sim(w, tb)
    assert seen == {"free": 0, "status": 0b100}


#: blocks converted to RTLIL in the default suite (the others only build their wrapper's map; the
#: slow test converts every block: cta alone takes ~2 minutes)
CONVERT_DEFAULT = {"latte", "pag", "eatt", "mca", "exp_unit", "cim"}


def _map_only(make: Callable[[], AxiWrapper]) -> SimpleNamespace:
    """Build a wrapper only for its map: its data is kept, the wrapper and its block are dropped
    and collected here, never elaborated, with Amaranth's unused-elaboratable warning (expected for
    them) ignored while they are collected."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnusedElaboratable)
        w = make()
        info = SimpleNamespace(registers=list(w.registers), streams=list(w.streams), map_bytes=w.map_bytes,
                               addr_width=w.addr_width)
        del w
        gc.collect()
    return info


def _wrap(name: str, convert: bool) -> AxiWrapper | SimpleNamespace:
    from amaranth.back import rtlil

    if convert:
        w = AxiWrapper(blocks()[name].elaborate({})[0])
        rtlil.convert(w)  # elaborates
    else:
        w = _map_only(lambda: AxiWrapper(blocks()[name].elaborate({})[0]))
    assert w.registers[0].name == "ID"
    offsets = [r.offset for r in w.registers]
    assert offsets == sorted(offsets) and all(o % 4 == 0 for o in offsets)
    assert w.map_bytes <= 1 << w.addr_width
    for s in w.streams:
        assert s.tdata_width % 8 == 0 and s.tdata_width >= s.payload_width
    return w


@pytest.mark.parametrize("name", sorted(blocks()))
def test_every_block_wraps(name):
    """Generic: every registered block (and any added later) gets an AXI wrapper with a consistent
    map; blocks with valid-only outputs get the FIFO policy."""
    _wrap(name, name in CONVERT_DEFAULT)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(set(blocks()) - CONVERT_DEFAULT))
def test_every_block_wrapper_elaborates(name):
    _wrap(name, True)


def test_cta_map_start_is_a_pulse_and_o_ends_packets_on_last():
    if "cta" not in blocks():
        pytest.skip("cta block not registered in this tree")
    w = _wrap("cta", False)
    regs = {r.name: r for r in w.registers}
    assert regs["START"].access == "pulse"
    assert regs["O_LAST_BEATS"].reset == 0  # tlast = the payload's last bit (row m-1)
    assert {s.prefix for s in w.streams} == {"s_axis_load", "m_axis_o"}


def test_generate_bus_axi_writes_wrapper_manifest_and_table(tmp_path):
    assert main(["generate", "latte", "--bus", "axi", "--fusesoc", "--out", str(tmp_path)]) == 0
    man = json.loads((tmp_path / "latte_axi.json").read_text())
    assert man["toplevel"] == "latte_axi" and man["bus"]["type"] == "axi"
    names = [r["name"] for r in man["bus"]["register_map"]]
    assert names[:3] == ["ID", "WRAP_STATUS", "WRAP_FIFO_FREE"] and "N_KEYS" in names and "KEPT_TOTAL" in names
    ports = {p["name"] for p in man["ports"]}
    assert {"s_axis_q_tdata", "m_axis_o_tlast", "s_axil_rresp", "clk", "rst"} <= ports
    table = (tmp_path / "latte_axi_regs.md").read_text()
    assert "| 0x010 | `N_KEYS` |" in table
    assert "module latte_axi" in (tmp_path / "latte_axi.v").read_text()
    assert (tmp_path / "latte_axi.core").exists()


def test_systolic_array_valid_only_outputs_get_fifos():
    w = _map_only(lambda: AxiWrapper(blocks()["systolic_array"].elaborate({})[0], fifo_depth=8))
    fifo = {s.name: s.fifo_depth for s in w.streams}
    assert fifo == {"i": 0, "res": 8, "out": 8}


def test_bad_fifo_depth_is_a_user_error(capsys, tmp_path):
    assert main(["generate", "latte", "--bus", "axi", "--fifo-depth", "1", "--out", str(tmp_path)]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("attn-rtl")]
    assert len(err) == 1 and "fifo_depth" in err[0]
    with pytest.raises(TypeError):
        AxiWrapper("latte")  # type: ignore[arg-type]
    toy = _Toy()
    with pytest.raises(ValueError, match="fifo_depth"):
        AxiWrapper(toy, fifo_depth=0)
    Fragment.get(toy, None)  # a rejected wrapper is never created; the block stays usable
