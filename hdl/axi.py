"""AXI4-Stream / AXI4-Lite wrapper around any generated block (``attn-rtl generate BLOCK --bus axi``).

:class:`AxiWrapper` takes a block's ``wiring.Component`` and classifies its top-level ports:

* an ``In(stream.Signature(...))`` member ``x`` becomes an AXI4-Stream slave ``s_axis_x_*``
  (``tdata`` = the payload bits zero-extended to whole bytes, ``tvalid``, ``tready``, ``tlast``;
  ``tlast`` is accepted and ignored: the blocks count their own rows);
* an ``Out(stream.Signature(...))`` member ``y`` becomes an AXI4-Stream master ``m_axis_y_*``;
  ``tlast`` is asserted on every ``N``-th beat, ``N`` = the register ``Y_LAST_BEATS`` (reset 1:
  every beat is a packet; 0: never), or'ed with the payload's own 1-bit ``last`` field when its
  layout has one (then the reset value of ``Y_LAST_BEATS`` is 0: packets end where the block says);
* an ``Out`` member whose signature is *valid-only* (members ``valid`` and ``payload`` only, like
  the systolic array's ``res``/``out``: the block cannot be stalled) becomes an AXI4-Stream master
  behind a ``fifo_depth``-entry FIFO. **Policy**: the block's result rate is not throttled; if the
  FIFO is full when a result arrives, the result is dropped and the sticky bit of that stream in
  ``WRAP_STATUS`` is set (write 1 to clear). The host must keep ``tready`` high or size
  ``fifo_depth`` to the longest burst it may stall (``WRAP_FIFO_FREE`` reads the free entries,
  a credit the host can check before starting work);
* every other port (plain ``In``/``Out`` signals, nested non-stream signatures flattened with
  ``__``) is a register of the AXI4-Lite slave ``s_axil_*`` (32-bit data): block inputs are
  read/write registers holding their value, except *pulse* inputs (1 bit; by default the ports named
  ``start`` or ``clear``, or those the component lists in ``axi_pulse_ports``): writing 1 drives
  the input high for exactly one cycle, reading returns 0. Block outputs are read-only. A port
  wider than 32 bits takes consecutive words, least significant first.

Register map (byte addresses, word aligned): ``0x00 ID`` (RO, :data:`AXI_ID`), ``0x04 WRAP_STATUS``
(W1C, FIFO overflow bits), ``0x08 WRAP_FIFO_FREE`` (RO, free entries of the first valid-only FIFO,
0 if none), then one ``<Y>_LAST_BEATS`` word per output stream, then the block's registers in
signature order. Responses: ``OKAY``; ``SLVERR`` for a write to a read-only register; ``DECERR``
for any access to an unmapped address. Byte strobes are honoured on writes.

The wrapper adds no cycle to the data path: ``tvalid``/``tready``/``tdata`` are wired straight to
the block's ``valid``/``ready``/``payload`` (except the FIFO of valid-only outputs).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from amaranth.hdl import Module, Mux, Shape, Signal, Value
from amaranth.lib import stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

__all__ = ["AXI_ID", "AxiStreamPort", "AxiRegister", "AxiWrapper", "register_map_markdown", "RESP_OKAY",
           "RESP_SLVERR", "RESP_DECERR"]

#: 1-bit inputs treated as pulses unless the component has an ``axi_pulse_ports`` attribute
DEFAULT_PULSE_PORTS = ("start", "clear")
#: value of the ID register at 0x00 ("ATN" + wrapper version 1)
AXI_ID = 0x41544E01
RESP_OKAY, RESP_SLVERR, RESP_DECERR = 0b00, 0b10, 0b11
DATA_WIDTH = 32
LAST_BEATS_WIDTH = 16


@dataclass(frozen=True)
class AxiStreamPort:
    """One AXI4-Stream port of the wrapper."""

    name: str         # the block's stream member
    prefix: str       # s_axis_<name> or m_axis_<name>
    direction: str    # "slave" (into the block) or "master"
    payload_width: int
    tdata_width: int  # payload_width rounded up to whole bytes
    fifo_depth: int = 0  # > 0 for valid-only outputs

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "prefix": self.prefix, "direction": self.direction,
                "payload_width": self.payload_width, "tdata_width": self.tdata_width,
                "tdata_bytes": self.tdata_width // 8, "fifo_depth": self.fifo_depth,
                "valid_only": self.fifo_depth > 0}


@dataclass(frozen=True)
class AxiRegister:
    """One register (field) of the AXI4-Lite map."""

    name: str
    offset: int     # byte address of the first word
    width: int      # bits
    access: str     # "ro", "rw", "w1c" or "pulse"
    reset: int
    description: str

    @property
    def words(self) -> int:
        return max(1, -(-self.width // DATA_WIDTH))

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "offset": self.offset, "offset_hex": f"0x{self.offset:03X}",
                "width": self.width, "words": self.words, "access": self.access, "reset": self.reset,
                "description": self.description}


def _is_valid_only(sig: wiring.Signature) -> bool:
    names = set(sig.members.keys())
    return names == {"valid", "payload"}


def _lookup(obj: Any, path: tuple) -> Any:
    for p in path:
        obj = obj[p] if isinstance(p, int) else getattr(obj, p)
    return obj


class AxiWrapper(wiring.Component):
    """AXI4-Stream data ports and an AXI4-Lite register slave around ``inner`` (see module doc)."""

    def __init__(self, inner: wiring.Component, *, fifo_depth: int = 16, addr_width: int | None = None,
                 pulse_ports: tuple[str, ...] | None = None) -> None:
        if not isinstance(inner, wiring.Component):
            raise TypeError(f"inner must be an amaranth.lib.wiring.Component, not {inner!r}")
        if isinstance(fifo_depth, bool) or not isinstance(fifo_depth, int) or fifo_depth < 2:
            raise ValueError(f"fifo_depth must be an integer >= 2, not {fifo_depth!r}")
        self._inner = inner
        self._fifo_depth = fifo_depth
        if pulse_ports is None:
            pulse_ports = tuple(getattr(inner, "axi_pulse_ports", DEFAULT_PULSE_PORTS))
        self._pulse = set(pulse_ports)
        self.streams: list[AxiStreamPort] = []
        self._block_regs: list[tuple[tuple, str, int, str, int]] = []  # path, name, width, access, reset
        members: dict[str, Any] = {}

        for name, member in inner.signature.members.items():
            if member.is_signature and isinstance(member.signature, stream.Signature):
                sig = member.signature
                width = Shape.cast(sig.members["payload"].shape).width
                tw = max(8, -(-width // 8) * 8)
                into = member.flow == In
                if into or not getattr(sig, "always_ready", False):
                    prefix = f"s_axis_{name}" if into else f"m_axis_{name}"
                    self.streams.append(AxiStreamPort(name, prefix, "slave" if into else "master", width, tw))
                else:  # Out stream that cannot be stalled: same policy as valid-only
                    prefix = f"m_axis_{name}"
                    self.streams.append(AxiStreamPort(name, prefix, "master", width, tw, fifo_depth))
            elif member.is_signature and _is_valid_only(member.signature) and member.flow == Out:
                width = Shape.cast(member.signature.members["payload"].shape).width
                tw = max(8, -(-width // 8) * 8)
                self.streams.append(AxiStreamPort(name, f"m_axis_{name}", "master", width, tw, fifo_depth))
            elif member.is_signature:
                if _is_valid_only(member.signature):
                    raise ValueError(f"port {name}: valid-only input streams cannot be wrapped as AXI4-Stream "
                                     "(no tready to the host); use a stream.Signature with ready")
                for path, sub in wiring.Signature({name: member}).members.flatten():
                    if not sub.is_signature:
                        self._add_reg(path, sub)
            else:
                self._add_reg((name,), member)

        for s in self.streams:
            p = s.prefix
            flow_in = In if s.direction == "slave" else Out
            flow_out = Out if s.direction == "slave" else In
            members[f"{p}_tdata"] = flow_in(s.tdata_width)
            members[f"{p}_tvalid"] = flow_in(1)
            members[f"{p}_tready"] = flow_out(1)
            members[f"{p}_tlast"] = flow_in(1)

        # register map
        regs: list[AxiRegister] = [
            AxiRegister("ID", 0x00, 32, "ro", AXI_ID, "wrapper identification (\"ATN\" + version)"),
            AxiRegister("WRAP_STATUS", 0x04, max(1, len(self.streams)), "w1c",
                        0, "bit i: output FIFO of stream i (valid-only outputs) overflowed; write 1 to clear"),
            AxiRegister("WRAP_FIFO_FREE", 0x08, 16, "ro", 0,
                        "free entries of the first valid-only output FIFO (credit; 0 if there is none)"),
        ]
        offset = 0x0C
        self._last_field: dict[str, bool] = {}
        for s in self.streams:
            if s.direction == "master":
                has_last = self._payload_last(s.name) is not None
                self._last_field[s.name] = has_last
                regs.append(AxiRegister(
                    f"{s.name.upper()}_LAST_BEATS", offset, LAST_BEATS_WIDTH, "rw", 0 if has_last else 1,
                    f"tlast on every N-th beat of {s.prefix} (0: never)"
                    + (", or'ed with the payload's last bit" if has_last else "")))
                offset += 4
        for _path, name, width, access, reset in self._block_regs:
            reg = AxiRegister(name.upper(), offset, width, access, reset,
                              f"block {'input' if access == 'rw' else 'output'} {name}")
            regs.append(reg)
            offset += 4 * reg.words
        self.registers = regs
        self.map_bytes = offset
        need = max(4, (offset - 1).bit_length())
        if addr_width is None:
            addr_width = max(12, need)
        if addr_width < need:
            raise ValueError(f"addr_width={addr_width} too small for a {offset}-byte register map (>= {need})")
        self.addr_width = addr_width

        members.update({
            "s_axil_awaddr": In(addr_width), "s_axil_awprot": In(3), "s_axil_awvalid": In(1),
            "s_axil_awready": Out(1),
            "s_axil_wdata": In(DATA_WIDTH), "s_axil_wstrb": In(DATA_WIDTH // 8), "s_axil_wvalid": In(1),
            "s_axil_wready": Out(1),
            "s_axil_bresp": Out(2), "s_axil_bvalid": Out(1), "s_axil_bready": In(1),
            "s_axil_araddr": In(addr_width), "s_axil_arprot": In(3), "s_axil_arvalid": In(1),
            "s_axil_arready": Out(1),
            "s_axil_rdata": Out(DATA_WIDTH), "s_axil_rresp": Out(2), "s_axil_rvalid": Out(1), "s_axil_rready": In(1),
        })
        super().__init__(members)

    def _add_reg(self, path: tuple, member: wiring.Member) -> None:
        if member.is_signature:
            raise ValueError(f"port {'__'.join(map(str, path))}: unsupported nested interface")
        shape = Shape.cast(member.shape)
        name = "__".join(str(p) for p in path)
        access = "rw" if member.flow == In else "ro"
        if access == "rw" and name in self._pulse and shape.width == 1:
            access = "pulse"
        try:
            reset = int(member.init or 0)
        except (TypeError, ValueError):
            reset = 0  # a layout-shaped port with a structured init: documented as 0
        self._block_regs.append((path, name, shape.width, access, reset & ((1 << shape.width) - 1)))

    def _payload_last(self, name: str) -> Any:
        """The 1-bit ``last`` field of an output stream's payload (a struct layout), or None."""
        member = self._inner.signature.members[name]
        sig = member.signature
        shape = sig.members["payload"].shape
        from amaranth.lib import data

        if isinstance(shape, data.StructLayout) and "last" in shape.members:
            if Shape.cast(shape["last"].shape).width == 1:
                return shape["last"]
        return None

    @property
    def inner(self) -> wiring.Component:
        return self._inner

    def register_map(self) -> list[dict[str, Any]]:
        return [r.as_dict() for r in self.registers]

    def bus_manifest(self) -> dict[str, Any]:
        return {
            "type": "axi",
            "axi_lite": {"prefix": "s_axil", "data_width": DATA_WIDTH, "addr_width": self.addr_width,
                         "map_bytes": self.map_bytes, "id": AXI_ID,
                         "responses": {"okay": RESP_OKAY, "slverr": "write to a read-only register",
                                       "decerr": "unmapped address"}},
            "streams": [s.as_dict() for s in self.streams],
            "register_map": self.register_map(),
            "valid_only_policy": ("results of valid-only outputs go through a fifo_depth FIFO; on overflow the "
                                  "result is dropped and WRAP_STATUS bit i is set (sticky, write 1 to clear)"),
        }

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        inner = self._inner
        m.submodules.inner = inner

        status = Signal(max(1, len(self.streams)), name="wrap_status")
        fifo_free = Signal(16, name="wrap_fifo_free")
        last_beats: dict[str, Signal] = {}
        overflow_set = []
        first_fifo = True

        for i, s in enumerate(self.streams):
            p = s.prefix
            tdata = getattr(self, f"{p}_tdata")
            tvalid = getattr(self, f"{p}_tvalid")
            tready = getattr(self, f"{p}_tready")
            tlast = getattr(self, f"{p}_tlast")
            port = getattr(inner, s.name)
            if s.direction == "slave":
                m.d.comb += [
                    Value.cast(port.payload).eq(tdata[:s.payload_width]),
                    port.valid.eq(tvalid),
                    tready.eq(port.ready),
                ]
                continue
            lb = Signal(LAST_BEATS_WIDTH, init=0 if self._last_field[s.name] else 1, name=f"{s.name}_last_beats")
            last_beats[s.name] = lb
            count = Signal(LAST_BEATS_WIDTH, name=f"{s.name}_beat_count")
            is_last = Signal(name=f"{s.name}_is_last")
            m.d.comb += is_last.eq((count + 1) == lb)
            if s.fifo_depth:
                fifo = SyncFIFO(width=s.payload_width, depth=s.fifo_depth)
                m.submodules[f"fifo_{s.name}"] = fifo
                m.d.comb += [
                    fifo.w_data.eq(Value.cast(port.payload)),
                    fifo.w_en.eq(port.valid),
                    tdata.eq(fifo.r_data),
                    tvalid.eq(fifo.r_rdy),
                    fifo.r_en.eq(tready),
                ]
                flag = Signal(name=f"{s.name}_fifo_overflow")
                m.d.comb += flag.eq(port.valid & ~fifo.w_rdy)
                overflow_set.append((i, flag))
                if first_fifo:
                    m.d.comb += fifo_free.eq(s.fifo_depth - fifo.level)
                    first_fifo = False
                fire = tready & fifo.r_rdy
            else:
                m.d.comb += [
                    tdata.eq(Value.cast(port.payload)),
                    tvalid.eq(port.valid),
                    port.ready.eq(tready),
                ]
                fire = tready & port.valid
            if self._last_field[s.name]:
                field = self._payload_last(s.name)
                m.d.comb += tlast.eq(is_last | tdata[field.offset])
            else:
                m.d.comb += tlast.eq(is_last)
            with m.If(fire):
                m.d.sync += count.eq(Mux(is_last, 0, count + 1))

        # block registers
        block_sigs: list[tuple[AxiRegister, Any, Signal | None]] = []
        pulses: list[tuple[AxiRegister, Signal]] = []
        regs_by_name = {r.name: r for r in self.registers}
        for path, name, width, access, reset in self._block_regs:
            port = Value.cast(_lookup(inner, path))
            reg = regs_by_name[name.upper()]
            if access == "rw":
                hold = Signal(width, init=reset, name=f"reg_{name}")
                m.d.comb += port.eq(hold)
                block_sigs.append((reg, hold, hold))
            elif access == "pulse":
                pulse = Signal(1, name=f"pulse_{name}")
                m.d.comb += port.eq(pulse)
                m.d.sync += pulse.eq(0)  # a write below sets it for one cycle
                pulses.append((reg, pulse))
            else:
                block_sigs.append((reg, port, None))

        # word table: offset -> (read value, writable target or None, kind)
        words: list[tuple[int, Value, Signal | None, str]] = [
            (0x00, Value.cast(AXI_ID), None, "ro"),
            (0x04, status, status, "w1c"),
            (0x08, fifo_free, None, "ro"),
        ]
        for r in self.registers:
            name = r.name[:-len("_LAST_BEATS")].lower() if r.name.endswith("_LAST_BEATS") else None
            if name in last_beats:
                words.append((r.offset, last_beats[name], last_beats[name], "rw"))
        for reg, value, target in block_sigs:
            for w in range(reg.words):
                lo, hi = w * DATA_WIDTH, min(reg.width, (w + 1) * DATA_WIDTH)
                words.append((reg.offset + 4 * w, value[lo:hi], target[lo:hi] if target is not None else None,
                               "rw" if target is not None else "ro"))
        for reg, pulse in pulses:
            words.append((reg.offset, Value.cast(0), pulse, "pulse"))

        # ---- AXI4-Lite write channel: accept AW and W together, then hold B until bready
        aw_ok = Signal()
        bvalid = Signal()
        bresp = Signal(2)
        m.d.comb += [
            aw_ok.eq(self.s_axil_awvalid & self.s_axil_wvalid & ~bvalid),
            self.s_axil_awready.eq(aw_ok),
            self.s_axil_wready.eq(aw_ok),
            self.s_axil_bvalid.eq(bvalid),
            self.s_axil_bresp.eq(bresp),
        ]
        with m.If(bvalid & self.s_axil_bready):
            m.d.sync += bvalid.eq(0)
        wdata, wstrb = self.s_axil_wdata, self.s_axil_wstrb
        waddr = self.s_axil_awaddr[2:]
        w1c_clear = Signal.like(status)
        with m.If(aw_ok):
            m.d.sync += bvalid.eq(1)
            with m.Switch(waddr):
                for offset, _value, target, kind in words:
                    with m.Case(offset >> 2):
                        if kind == "ro":
                            m.d.sync += bresp.eq(RESP_SLVERR)
                        else:
                            m.d.sync += bresp.eq(RESP_OKAY)
                            if kind == "w1c":
                                m.d.comb += w1c_clear.eq(Mux(wstrb.any(), wdata[:len(status)], 0))
                            elif kind == "pulse":
                                m.d.sync += target.eq(wdata[0] & wstrb[0])
                            else:
                                for byte in range(-(-len(target) // 8)):
                                    lo, hi = 8 * byte, min(len(target), 8 * byte + 8)
                                    with m.If(wstrb[byte]):
                                        m.d.sync += target[lo:hi].eq(wdata[lo:hi])
                with m.Default():
                    m.d.sync += bresp.eq(RESP_DECERR)

        # sticky FIFO overflow bits (set wins over a clear in the same cycle)
        set_bits = Signal.like(status)
        for i, flag in overflow_set:
            m.d.comb += set_bits[i].eq(flag)
        m.d.sync += status.eq((status & ~w1c_clear) | set_bits)

        # ---- AXI4-Lite read channel
        rvalid = Signal()
        rdata = Signal(DATA_WIDTH)
        rresp = Signal(2)
        m.d.comb += [
            self.s_axil_arready.eq(~rvalid),
            self.s_axil_rvalid.eq(rvalid),
            self.s_axil_rdata.eq(rdata),
            self.s_axil_rresp.eq(rresp),
        ]
        with m.If(rvalid & self.s_axil_rready):
            m.d.sync += rvalid.eq(0)
        with m.If(self.s_axil_arvalid & ~rvalid):
            m.d.sync += rvalid.eq(1)
            with m.Switch(self.s_axil_araddr[2:]):
                for offset, value, _target, _kind in words:
                    with m.Case(offset >> 2):
                        m.d.sync += [rdata.eq(value), rresp.eq(RESP_OKAY)]
                with m.Default():
                    m.d.sync += [rdata.eq(0), rresp.eq(RESP_DECERR)]
        return m


def register_map_markdown(block: str, wrapper: AxiWrapper) -> str:
    """The register map and stream ports as a Markdown document."""
    lines = [f"# `{block}` AXI register map", "",
             f"AXI4-Lite slave `s_axil_*`: {DATA_WIDTH}-bit data, {wrapper.addr_width}-bit byte address. "
             "Unmapped address: DECERR; write to a read-only register: SLVERR. RW: block input held at the "
             "written value; PULSE: writing 1 drives the input for one cycle; W1C: write 1 to clear.", "",
             "| offset | name | bits | access | reset | description |", "|---|---|---|---|---|---|"]
    for r in wrapper.registers:
        lines.append(f"| 0x{r.offset:03X} | `{r.name}` | {r.width}"
                     + (f" ({r.words} words, LS first)" if r.words > 1 else "")
                     + f" | {r.access.upper()} | 0x{r.reset:X} | {r.description} |")
    lines += ["", "## AXI4-Stream ports", "", "| port | direction | payload bits | tdata bits | FIFO |",
              "|---|---|---|---|---|"]
    for s in wrapper.streams:
        lines.append(f"| `{s.prefix}` | {s.direction} | {s.payload_width} | {s.tdata_width} | "
                     + (f"{s.fifo_depth} (valid-only output)" if s.fifo_depth else "-") + " |")
    return "\n".join(lines) + "\n"
