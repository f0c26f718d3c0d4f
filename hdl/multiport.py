"""A memory with several write ports, built from simple dual-port memories (live-value table).

An ``amaranth.lib.memory.Memory`` with more than one write port has no FPGA RAM to go to: yosys
maps it to flip-flops with a write multiplexer per bit and a read multiplexer per port. The PAG's
AP memories (two write and two read ports per region) became a large part of the CTA accelerator's
logic that way (about 10,000 of its 26,400 ECP5 LUT4s at b=2, d=8) and the congestion nextpnr's
router could not resolve.

:class:`MultiPortMemory` behaves exactly as that ``Memory`` (``write_ports`` write ports,
``read_ports`` synchronous, non-transparent read ports with enables; read latency
:attr:`MultiPortMemory.LATENCY` = 1) but is made of ``write_ports × read_ports`` banks, each a
one-write / one-read ``Memory`` that yosys maps to LUT RAM or block RAM: bank ``(w, r)`` takes
every write of port ``w`` and serves read port ``r``. A live-value table (LVT, ``depth`` entries of
``ceil(log2(write_ports))`` bits, in flip-flops) records which write port wrote each word last; a
read returns the word of that port's bank. The LVT is read like the banks (same address, enable
and edge), so its entry and the bank words belong to the same cycle.

``ram_style`` (``None``, or one of :data:`RAM_STYLES`) is put on every bank as the
``ram_style`` attribute, which yosys' memory mapping honours ("distributed": LUT RAM, "block":
block RAM, "logic": flip-flops); ``None`` leaves the choice to the synthesis tool. Simulation and
behaviour do not depend on it.

Writes of several ports to one address in one cycle: the highest-numbered port wins (its data is
stored; the lower ports' LVT writes are masked), explicitly, rather than by the declaration order
of ``Memory`` write ports. Words never written read as 0 (the banks start at 0, the LVT at port 0).
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Shape, Signal, unsigned
from amaranth.lib import data
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .checked import CheckedComponent, check_int

__all__ = ["MultiPortMemory", "RAM_STYLES"]

#: values of ``ram_style`` (yosys' ``memory_libmap`` attribute)
RAM_STYLES = ("distributed", "block", "logic")


class MultiPortMemory(CheckedComponent):
    """``depth`` words of ``width`` bits, ``write_ports`` write ports and ``read_ports`` read ports
    (module doc). Ports: ``w_addr[w]``, ``w_data[w]``, ``w_en[w]`` (a write at the clock edge);
    ``r_addr[r]``, ``r_en[r]`` (the address is sampled at an edge with ``r_en``) and ``r_data[r]``
    (the word, after that edge; held while ``r_en`` is low). A read sees the writes of earlier
    edges, not those of its own edge (not transparent).
    """

    #: clock edges from a read address (with ``r_en``) to its word on ``r_data``
    LATENCY = 1

    def __init__(self, *, width: int, depth: int, write_ports: int, read_ports: int,
                 ram_style: str | None = None) -> None:
        self._width, self._depth, self._ram_style = width, depth, ram_style
        self._write_ports, self._read_ports = write_ports, read_ports
        addr = Shape.cast(range(depth))
        super().__init__({
            "w_addr": In(data.ArrayLayout(addr, write_ports)),
            "w_data": In(data.ArrayLayout(unsigned(width), write_ports)),
            "w_en": In(write_ports),
            "r_addr": In(data.ArrayLayout(addr, read_ports)),
            "r_en": In(read_ports),
            "r_data": Out(data.ArrayLayout(unsigned(width), read_ports)),
        })

    @classmethod
    def check_params(cls, *, width: int, depth: int, write_ports: int, read_ports: int,
                     ram_style: str | None) -> None:
        for name, value in (("width", width), ("depth", depth), ("write_ports", write_ports),
                            ("read_ports", read_ports)):
            check_int(f"MultiPortMemory: {name}", value)
        if ram_style is not None and ram_style not in RAM_STYLES:
            raise ValueError(f"MultiPortMemory: ram_style={ram_style!r} is not None or one of {RAM_STYLES}")

    width = property(lambda self: self._width)
    depth = property(lambda self: self._depth)
    write_ports = property(lambda self: self._write_ports)
    read_ports = property(lambda self: self._read_ports)
    ram_style = property(lambda self: self._ram_style)

    def elaborate(self, platform):
        m = Module()
        nw, nr = self._write_ports, self._read_ports
        # bank (w, r): all writes of port w, read by port r
        bank_data = {}
        attrs = {"ram_style": self._ram_style} if self._ram_style else None
        for w in range(nw):
            for r in range(nr):
                bank = Memory(shape=unsigned(self._width), depth=self._depth, init=[], attrs=attrs)
                m.submodules[f"bank{w}_{r}"] = bank
                wr, rd = bank.write_port(), bank.read_port(domain="sync")
                m.d.comb += [wr.addr.eq(self.w_addr[w]), wr.data.eq(self.w_data[w]), wr.en.eq(self.w_en[w]),
                             rd.addr.eq(self.r_addr[r]), rd.en.eq(self.r_en[r])]
                bank_data[w, r] = rd.data
        if nw == 1:
            m.d.comb += [self.r_data[r].eq(bank_data[0, r]) for r in range(nr)]
            return m

        # live-value table: the last writer of each word; a port's entry is not written when a
        # higher-numbered port writes the same address in the same edge (that port wins)
        lvt = Memory(shape=range(nw), depth=self._depth, init=[])
        m.submodules.lvt = lvt
        for w in range(nw):
            port = lvt.write_port()
            beaten = Signal(name=f"lvt_beaten{w}")
            m.d.comb += beaten.eq(Cat(*[self.w_en[v] & (self.w_addr[v] == self.w_addr[w])
                                        for v in range(w + 1, nw)]).any())
            m.d.comb += [port.addr.eq(self.w_addr[w]), port.data.eq(w), port.en.eq(self.w_en[w] & ~beaten)]
        for r in range(nr):
            port = lvt.read_port(domain="sync")
            m.d.comb += [port.addr.eq(self.r_addr[r]), port.en.eq(self.r_en[r])]
            # a balanced select of the banks by the last writer (a plain assignment, not a case process)
            sel = bank_data[nw - 1, r]
            for w in reversed(range(nw - 1)):
                sel = Mux(port.data == w, bank_data[w, r], sel)
            m.d.comb += self.r_data[r].eq(sel)
        return m
