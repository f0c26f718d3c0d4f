"""Shared pieces of the cocotb testbenches of AXI-wrapped blocks (``generate BLOCK --bus axi``).

Works for any wrapped block: it reads the register map and the stream ports from the manifest the
runner hands over (``ATTN_RTL_MANIFEST``), so a new block needs no change here.
"""

from __future__ import annotations

import json
import os
import random
from typing import Any

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import RisingEdge, with_timeout
from cocotbext.axi import AxiLiteBus, AxiLiteMaster, AxiResp

RESP_OK = AxiResp.OKAY
RESP_SLVERR = AxiResp.SLVERR
RESP_DECERR = AxiResp.DECERR
#: deadline of one AXI4-Lite access (cycles of 10 ns)
AXIL_DEADLINE_CYCLES = 200


def manifest() -> dict[str, Any]:
    return json.loads(open(os.environ["ATTN_RTL_MANIFEST"]).read())


def pause(rng: random.Random, probability: float):
    """Endless pause decisions for cocotbext-axi ``set_pause_generator`` (random backpressure)."""
    while True:
        yield rng.random() < probability


class AxiHarness:
    """Clock, reset, an AXI4-Lite master and register access by name (from the manifest)."""

    def __init__(self, dut) -> None:
        self.dut = dut
        self.manifest = manifest()
        self.bus = self.manifest["bus"]
        self.regs = {r["name"]: r for r in self.bus["register_map"]}
        self.streams = {s["name"]: s for s in self.bus["streams"]}
        self.axil = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "s_axil"), dut.clk, dut.rst)

    async def start(self) -> None:
        dut = self.dut
        cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
        dut.rst.value = 1
        for _ in range(3):
            await RisingEdge(dut.clk)
        dut.rst.value = 0
        await RisingEdge(dut.clk)

    async def write_word(self, address: int, value: int) -> AxiResp:
        resp = await with_timeout(self.axil.write(address, (value & 0xFFFFFFFF).to_bytes(4, "little")),
                                  AXIL_DEADLINE_CYCLES * 10, "ns")
        return resp.resp

    async def read_word(self, address: int) -> tuple[int, AxiResp]:
        resp = await with_timeout(self.axil.read(address, 4), AXIL_DEADLINE_CYCLES * 10, "ns")
        return int.from_bytes(resp.data, "little"), resp.resp

    async def write(self, name: str, value: int) -> None:
        reg = self.regs[name]
        for w in range(reg["words"]):
            resp = await self.write_word(reg["offset"] + 4 * w, value >> (32 * w))
            assert resp == RESP_OK, f"write {name}: {resp}"

    async def read(self, name: str) -> int:
        reg = self.regs[name]
        value = 0
        for w in range(reg["words"]):
            word, resp = await self.read_word(reg["offset"] + 4 * w)
            assert resp == RESP_OK, f"read {name}: {resp}"
            value |= word << (32 * w)
        return value

    async def check_register_map(self, rng: random.Random) -> dict[str, int]:
        """ID, read-back of every RW register, SLVERR on RO writes, DECERR on unmapped addresses."""
        from hdl.axi import AXI_ID

        assert await self.read("ID") == AXI_ID
        checked = {"rw": 0, "ro": 0, "unmapped": 0}
        for reg in self.bus["register_map"]:
            if reg["access"] == "rw":
                mask = (1 << reg["width"]) - 1
                for pattern in (mask, 0, rng.getrandbits(reg["width"])):
                    await self.write(reg["name"], pattern)
                    got = await self.read(reg["name"])
                    assert got == pattern & mask, f"{reg['name']}: wrote {pattern:#x}, read {got:#x}"
                await self.write(reg["name"], reg["reset"])
                checked["rw"] += 1
            elif reg["access"] == "pulse":
                assert await self.write_word(reg["offset"], 0) == RESP_OK, f"write 0 to pulse {reg['name']}"
                assert await self.read(reg["name"]) == 0
                checked["pulse"] = checked.get("pulse", 0) + 1
            elif reg["access"] == "ro":
                resp = await self.write_word(reg["offset"], 0xFFFFFFFF)
                assert resp == RESP_SLVERR, f"write to read-only {reg['name']}: {resp}, expected SLVERR"
                checked["ro"] += 1
        assert await self.read("ID") == AXI_ID  # RO writes changed nothing
        map_bytes = self.bus["axi_lite"]["map_bytes"]
        top = 1 << self.bus["axi_lite"]["addr_width"]
        for address in sorted({map_bytes, map_bytes + 4, top - 4}):
            value, resp = await self.read_word(address)
            assert resp == RESP_DECERR, f"read of unmapped 0x{address:x}: {resp}, expected DECERR"
            assert value == 0
            resp = await self.write_word(address, 0x12345678)
            assert resp == RESP_DECERR, f"write to unmapped 0x{address:x}: {resp}, expected DECERR"
            checked["unmapped"] += 1
        return checked


class AxiStreamsHarness(AxiHarness):
    """:class:`AxiHarness` plus an AxiStreamSource per input stream and an AxiStreamSink on ``o``,
    each with random pauses (``stall``); beats are packed and unpacked with the wrapped block's own
    port layouts (``block_component(block)``: the one packing path, :mod:`sim.streams`)."""

    def __init__(self, dut, block: str, inputs: tuple[str, ...], stall: float, salt: int) -> None:
        from cocotbext.axi import AxiStreamBus, AxiStreamSink, AxiStreamSource

        from sim.streams import layout_of
        from sim.tbutil import block_component, tb_rng

        super().__init__(dut)
        self.inputs = inputs
        comp = block_component(block)
        self.layouts = {name: layout_of(getattr(comp, name).payload) for name in (*inputs, "o")}
        rng = tb_rng(salt)
        self.src = {}
        for name in inputs:
            self.src[name] = AxiStreamSource(AxiStreamBus.from_prefix(dut, f"s_axis_{name}"), dut.clk, dut.rst)
            if stall:
                self.src[name].set_pause_generator(pause(rng, stall))
        self.sink = AxiStreamSink(AxiStreamBus.from_prefix(dut, "m_axis_o"), dut.clk, dut.rst)
        if stall:
            self.sink.set_pause_generator(pause(rng, stall))

    async def send_items(self, items: dict[str, list]) -> None:
        """One frame per input stream: every item packed with the stream's layout, in ``inputs`` order."""
        from sim.streams import pack

        for name in self.inputs:
            nbytes = self.streams[name]["tdata_bytes"]
            mask = (1 << (8 * nbytes)) - 1
            await self.src[name].send(b"".join((pack(self.layouts[name], item) & mask).to_bytes(nbytes, "little")
                                               for item in items[name]))

    async def recv_rows(self, rows: int, beats_per_row: int, deadline_cycles: int) -> list[list]:
        """``rows`` output packets of ``beats_per_row`` beats each, unpacked; each packet within
        ``deadline_cycles`` (10 ns) of the previous."""
        from sim.streams import unpack

        nbytes = self.streams["o"]["tdata_bytes"]
        out = []
        for _ in range(rows):
            frame = bytes((await with_timeout(self.sink.recv(), deadline_cycles * 10, "ns")).tdata)
            assert len(frame) == nbytes * beats_per_row, f"output packet of {len(frame)} bytes"
            out.append([unpack(self.layouts["o"], int.from_bytes(frame[c * nbytes:(c + 1) * nbytes], "little"))
                        for c in range(beats_per_row)])
        return out

    async def recv_matrix(self, rows: int, beats_per_row: int, deadline_cycles: int) -> np.ndarray:
        """:meth:`recv_rows` of array payloads, each packet's beats joined into one row."""
        packets = await self.recv_rows(rows, beats_per_row, deadline_cycles)
        return np.array([[x for beat in packet for x in beat] for packet in packets])

    async def finish(self, polls: int = 20) -> None:
        """The block is idle after the head, and no beat follows the last expected row (the IDLE
        polls, at least 4 cycles each, are the drain window)."""
        for _ in range(polls):
            if await self.read("IDLE"):
                break
        assert await self.read("IDLE") == 1, "block not idle after the head"
        assert self.sink.empty(), "output beats after the last expected row"
