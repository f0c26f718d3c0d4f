"""hdl.multiport.MultiPortMemory: the live-value-table memory reads exactly as a multi-port
``amaranth.lib.memory.Memory`` (random traffic, read-during-write, enables), resolves same-edge
writes to one address to the highest port, refuses bad parameters, and synthesises to RAM."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.back import verilog
from amaranth.hdl import Module, unsigned
from amaranth.lib.memory import Memory

from hdl.multiport import MultiPortMemory
from synth.flow import run_yosys
from tests.amaranth_helpers import run_sim


def _reference(m: Module, dut: MultiPortMemory) -> list:
    """A plain multi-port Memory driven by the same ports as ``dut``; its read data ports."""
    m.submodules.ref = ref = Memory(shape=unsigned(dut.width), depth=dut.depth, init=[])
    for w in range(dut.write_ports):
        port = ref.write_port()
        m.d.comb += [port.addr.eq(dut.w_addr[w]), port.data.eq(dut.w_data[w]), port.en.eq(dut.w_en[w])]
    out = []
    for r in range(dut.read_ports):
        port = ref.read_port(domain="sync")
        m.d.comb += [port.addr.eq(dut.r_addr[r]), port.en.eq(dut.r_en[r])]
        out.append(port.data)
    return out


@pytest.mark.parametrize("width,depth,nw,nr", [(7, 5, 2, 2), (12, 16, 3, 1), (5, 1, 2, 3), (9, 8, 1, 2)])
def test_reads_as_a_multiport_memory(width, depth, nw, nr):
    """Random writes at distinct addresses, random reads (often at a word being written in the
    same edge), random enables: every read port equals the plain Memory's after every edge."""
    rng = np.random.default_rng(width * 100 + depth)
    m = Module()
    m.submodules.dut = dut = MultiPortMemory(width=width, depth=depth, write_ports=nw, read_ports=nr)
    ref = _reference(m, dut)
    cycles, compared = 400, []

    async def tb(ctx):
        for _ in range(cycles):
            addrs = rng.permutation(max(depth, nw))[:nw] % depth   # distinct when depth >= nw
            for w in range(nw):
                en = int(rng.random() < 0.7) if depth >= nw or w == 0 else 0
                ctx.set(dut.w_addr[w], int(addrs[w]))
                ctx.set(dut.w_data[w], int(rng.integers(0, 1 << width)))
                ctx.set(dut.w_en[w], en)
            for r in range(nr):
                hit = rng.random() < 0.4
                ctx.set(dut.r_addr[r], int(addrs[0]) if hit else int(rng.integers(0, depth)))
                ctx.set(dut.r_en[r], int(rng.random() < 0.8))
            await ctx.tick()
            for r in range(nr):
                got, want = ctx.get(dut.r_data[r]), ctx.get(ref[r])
                assert got == want, f"read port {r}: {got} != Memory's {want}"
                compared.append(want)

    run_sim(m, tb, deadline_cycles=cycles + 10)
    assert len(set(compared)) > depth // 2  # the traffic really moved data


def test_same_edge_writes_to_one_address_highest_port_wins():
    m = Module()
    m.submodules.dut = dut = MultiPortMemory(width=8, depth=4, write_ports=3, read_ports=1)
    # (enables of ports 0, 1, 2) -> the port whose data is read back
    cases = [((1, 1, 1), 2), ((1, 1, 0), 1), ((1, 0, 1), 2), ((0, 1, 1), 2), ((1, 0, 0), 0), ((0, 1, 0), 1)]
    seen = []

    async def tb(ctx):
        ctx.set(dut.r_en[0], 1)
        for k, (ens, _) in enumerate(cases):
            for w in range(3):
                ctx.set(dut.w_addr[w], 2)
                ctx.set(dut.w_data[w], 10 * k + w)
                ctx.set(dut.w_en[w], ens[w])
            ctx.set(dut.r_addr[0], 2)
            await ctx.tick()
            for w in range(3):
                ctx.set(dut.w_en[w], 0)
            await ctx.tick()       # the read of this edge sees the write of the previous one
            seen.append(ctx.get(dut.r_data[0]))

    run_sim(m, tb, deadline_cycles=40)
    assert seen == [10 * k + winner for k, (_, winner) in enumerate(cases)]


def test_parameters_refused():
    for kwargs, word in [(dict(width=0), "width"), (dict(depth=0), "depth"), (dict(write_ports=0), "write_ports"),
                         (dict(read_ports=True), "read_ports"), (dict(ram_style="auto"), "ram_style")]:
        full = dict(width=8, depth=4, write_ports=2, read_ports=2) | kwargs
        with pytest.raises((TypeError, ValueError), match=word):
            MultiPortMemory(**full)


def _ecp5_cells(tmp_path, name: str, dut: MultiPortMemory) -> dict[str, int]:
    """The ECP5 resources of ``dut`` through the project's own yosys flow (``synth.flow.run_yosys``)."""
    out = tmp_path / name
    out.mkdir()
    (out / "mp.v").write_text(verilog.convert(dut, name="mp"))
    resources, _ = run_yosys(out / "mp.v", "mp", "ecp5")
    return resources


def test_ecp5_synthesis_puts_the_words_in_ram(tmp_path):
    """The point of the LVT: yosys maps the banks to RAM; only the LVT (depth x 1 bit here) stays
    in flip-flops, where a 2-write-port Memory of the same size takes depth x width of them."""
    # shallow, no style: LUT RAM, 4 banks of 16 x 28 bits = 4 x 7 DPR16X4; FFs: the 4 x 28 bank
    # read registers, the LVT's 16 bits and its 2 read registers
    cells = _ecp5_cells(tmp_path, "shallow", MultiPortMemory(width=28, depth=16, write_ports=2, read_ports=2))
    assert cells["dram"] == 4 * 7 and cells["bram"] == 0, cells
    assert cells["ff"] <= 4 * 28 + 16 + 2 + 8, cells
    # 64 deep: yosys alone would pick block RAM; ram_style="distributed" keeps LUT RAM (the PAG's
    # choice), "block" gives block RAM
    lut = _ecp5_cells(tmp_path, "lut", MultiPortMemory(width=20, depth=64, write_ports=2, read_ports=2,
                                                       ram_style="distributed"))
    assert lut["dram"] == 4 * 4 * 5 and lut["bram"] == 0, lut
    bram = _ecp5_cells(tmp_path, "bram", MultiPortMemory(width=20, depth=64, write_ports=2, read_ports=2,
                                                         ram_style="block"))
    assert bram["bram"] == 4 and bram["dram"] == 0, bram
