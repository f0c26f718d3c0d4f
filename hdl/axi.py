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

from amaranth.hdl import Cat, Const, Module, Mux, Shape, Signal, Value
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

from .checked import CheckedComponent

__all__ = ["AXI_ID", "AxiStreamPort", "AxiRegister", "AxiLiteRegisters", "AxisMaster", "AxiWrapper",
           "check_fifo_depth", "register_map_markdown", "RESP_OKAY",
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


def _check_int(name: str, value: object, lo: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < lo:
        raise ValueError(f"{name} must be an integer >= {lo}, not {value!r}")


def _payload_last(inner_sig: wiring.Signature, name: str) -> Any:
    """The 1-bit ``last`` field of output stream ``name``'s payload (a struct layout), or None."""
    shape = inner_sig.members[name].signature.members["payload"].shape
    if isinstance(shape, data.StructLayout) and "last" in shape.members:
        if Shape.cast(shape["last"].shape).width == 1:
            return shape["last"]
    return None


def _reg_of(path: tuple, member: wiring.Member, pulse: set[str]) -> tuple[tuple, str, int, str, int]:
    """(path, name, width, access, reset) of a block port that becomes a register."""
    if member.is_signature:
        raise ValueError(f"port {'__'.join(map(str, path))}: unsupported nested interface")
    shape = Shape.cast(member.shape)
    name = "__".join(str(p) for p in path)
    access = "rw" if member.flow == In else "ro"
    if access == "rw" and name in pulse and shape.width == 1:
        access = "pulse"
    try:
        reset = int(member.init or 0)
    except (TypeError, ValueError):
        reset = 0  # a layout-shaped port with a structured init: documented as 0
    return path, name, shape.width, access, reset & ((1 << shape.width) - 1)


@dataclass(frozen=True)
class _Plan:
    """How :class:`AxiWrapper` maps a block: its streams, its registers and the address map."""

    streams: tuple[AxiStreamPort, ...]
    block_regs: tuple[tuple[tuple, str, int, str, int], ...]  # path, name, width, access, reset
    last_field: dict[str, bool]  # output stream -> its payload has a 1-bit last field
    registers: tuple[AxiRegister, ...]
    map_bytes: int
    addr_width: int


def check_fifo_depth(fifo_depth: object) -> None:
    """ValueError unless ``fifo_depth`` is a valid :class:`AxiWrapper` FIFO depth (an integer >= 2):
    callers check it before they build the block, so a bad option leaves no unused block behind."""
    if isinstance(fifo_depth, bool) or not isinstance(fifo_depth, int) or fifo_depth < 2:
        raise ValueError(f"fifo_depth must be an integer >= 2, not {fifo_depth!r}")


def _plan(inner: Any, fifo_depth: Any, addr_width: Any, pulse_ports: Any) -> _Plan:
    """Classify ``inner``'s ports (see the module docstring); ValueError/TypeError if it cannot be wrapped."""
    if not isinstance(inner, wiring.Component):
        raise TypeError(f"inner must be an amaranth.lib.wiring.Component, not {inner!r}")
    check_fifo_depth(fifo_depth)
    if pulse_ports is None:
        pulse_ports = tuple(getattr(inner, "axi_pulse_ports", DEFAULT_PULSE_PORTS))
    pulse = set(pulse_ports)
    streams: list[AxiStreamPort] = []
    block_regs: list[tuple[tuple, str, int, str, int]] = []
    for name, member in inner.signature.members.items():
        if member.is_signature and isinstance(member.signature, stream.Signature):
            sig = member.signature
            width = Shape.cast(sig.members["payload"].shape).width
            tw = max(8, -(-width // 8) * 8)
            into = member.flow == In
            if into or not getattr(sig, "always_ready", False):
                prefix = f"s_axis_{name}" if into else f"m_axis_{name}"
                streams.append(AxiStreamPort(name, prefix, "slave" if into else "master", width, tw))
            else:  # Out stream that cannot be stalled: same policy as valid-only
                streams.append(AxiStreamPort(name, f"m_axis_{name}", "master", width, tw, fifo_depth))
        elif member.is_signature and _is_valid_only(member.signature) and member.flow == Out:
            width = Shape.cast(member.signature.members["payload"].shape).width
            tw = max(8, -(-width // 8) * 8)
            streams.append(AxiStreamPort(name, f"m_axis_{name}", "master", width, tw, fifo_depth))
        elif member.is_signature:
            if _is_valid_only(member.signature):
                raise ValueError(f"port {name}: valid-only input streams cannot be wrapped as AXI4-Stream "
                                 "(no tready to the host); use a stream.Signature with ready")
            for path, sub in wiring.Signature({name: member}).members.flatten():
                if not sub.is_signature:
                    block_regs.append(_reg_of(path, sub, pulse))
        else:
            block_regs.append(_reg_of((name,), member, pulse))

    regs: list[AxiRegister] = [
        AxiRegister("ID", 0x00, 32, "ro", AXI_ID, "wrapper identification (\"ATN\" + version)"),
        AxiRegister("WRAP_STATUS", 0x04, max(1, len(streams)), "w1c",
                    0, "bit i: output FIFO of stream i (valid-only outputs) overflowed; write 1 to clear"),
        AxiRegister("WRAP_FIFO_FREE", 0x08, 16, "ro", 0,
                    "free entries of the first valid-only output FIFO (credit; 0 if there is none)"),
    ]
    offset = 0x0C
    last_field: dict[str, bool] = {}
    for s in streams:
        if s.direction == "master":
            has_last = _payload_last(inner.signature, s.name) is not None
            last_field[s.name] = has_last
            regs.append(AxiRegister(
                f"{s.name.upper()}_LAST_BEATS", offset, LAST_BEATS_WIDTH, "rw", 0 if has_last else 1,
                f"tlast on every N-th beat of {s.prefix} (0: never)"
                + (", or'ed with the payload's last bit" if has_last else "")))
            offset += 4
    for _path, name, width, access, reset in block_regs:
        reg = AxiRegister(name.upper(), offset, width, access, reset,
                          f"block {'input' if access == 'rw' else 'output'} {name}")
        regs.append(reg)
        offset += 4 * reg.words
    need = max(4, (offset - 1).bit_length())
    if addr_width is None:
        addr_width = max(12, need)
    if addr_width < need:
        raise ValueError(f"addr_width={addr_width} too small for a {offset}-byte register map (>= {need})")
    return _Plan(tuple(streams), tuple(block_regs), last_field, tuple(regs), offset, addr_width)


def _axil_members(addr_width: int) -> dict[str, wiring.Member]:
    """The AXI4-Lite slave ports ``s_axil_*`` (32-bit data, ``addr_width``-bit byte address)."""
    return {
        "s_axil_awaddr": In(addr_width), "s_axil_awprot": In(3), "s_axil_awvalid": In(1),
        "s_axil_awready": Out(1),
        "s_axil_wdata": In(DATA_WIDTH), "s_axil_wstrb": In(DATA_WIDTH // 8), "s_axil_wvalid": In(1),
        "s_axil_wready": Out(1),
        "s_axil_bresp": Out(2), "s_axil_bvalid": Out(1), "s_axil_bready": In(1),
        "s_axil_araddr": In(addr_width), "s_axil_arprot": In(3), "s_axil_arvalid": In(1),
        "s_axil_arready": Out(1),
        "s_axil_rdata": Out(DATA_WIDTH), "s_axil_rresp": Out(2), "s_axil_rvalid": Out(1), "s_axil_rready": In(1),
    }


def _field_name(reg: AxiRegister) -> str:
    return reg.name.lower()


class AxiLiteRegisters(CheckedComponent):
    """An AXI4-Lite slave (``s_axil_*``, 32-bit data) holding a register map.

    ``registers``: the map (:class:`AxiRegister`, word-aligned, non-overlapping offsets); each is a
    member of ``fields`` named after it in lower case: ``rw`` -> ``Out`` (the register, reset
    ``reset``, written through the byte strobes); ``pulse`` -> ``Out(1)``, high for the one cycle
    after a write of 1; ``ro`` -> ``In`` (the value a read returns); ``w1c`` -> ``Out`` (the sticky
    register) and ``In`` ``<name>_set`` (bits to set; a set wins over a clear in the same cycle).
    Pulse registers read 0. Responses: OKAY; SLVERR for a write to a ``ro`` register; DECERR for an
    unmapped address. One write (AW and W together) and one read in flight: the response comes
    ``WRITE_LATENCY`` / ``READ_LATENCY`` cycles after the request is accepted and is held until taken.
    """

    #: edges from the AW+W handshake to ``bvalid`` (the write lands on the same edge)
    WRITE_LATENCY = 1
    #: edges from the AR handshake to ``rvalid`` with the data
    READ_LATENCY = 1

    def __init__(self, *, registers: tuple[AxiRegister, ...], addr_width: int) -> None:
        self._registers = tuple(registers)
        self._addr_width = addr_width
        fields: dict[str, wiring.Member] = {}
        for r in self._registers:
            name = _field_name(r)
            if r.access == "ro":
                fields[name] = In(r.width)
            elif r.access == "w1c":
                fields[name] = Out(r.width)
                fields[f"{name}_set"] = In(r.width)
            else:
                fields[name] = Out(r.width, init=r.reset if r.access == "rw" else 0)
        super().__init__({**_axil_members(addr_width), "fields": Out(wiring.Signature(fields))})

    @classmethod
    def check_params(cls, *, registers: tuple[AxiRegister, ...], addr_width: int) -> None:
        _check_int("addr_width", addr_width, 3)
        words: set[int] = set()
        names: set[str] = set()
        for r in registers:
            if not isinstance(r, AxiRegister):
                raise TypeError(f"registers must be AxiRegister, not {r!r}")
            if r.access not in ("ro", "rw", "w1c", "pulse") or r.width < 1 or r.offset % 4:
                raise ValueError(f"register {r.name}: access {r.access!r}, width {r.width}, offset {r.offset:#x}")
            if r.access == "pulse" and r.width != 1:
                raise ValueError(f"register {r.name}: a pulse register has 1 bit, not {r.width}")
            span = {r.offset // 4 + w for w in range(r.words)}
            if span & words or _field_name(r) in names or max(span) >= 1 << (addr_width - 2):
                raise ValueError(f"register {r.name} at {r.offset:#x} overlaps another, repeats a name "
                                 f"or lies beyond the {addr_width}-bit address space")
            words |= span
            names.add(_field_name(r))

    @property
    def registers(self) -> tuple[AxiRegister, ...]:
        return self._registers

    @property
    def addr_width(self) -> int:
        return self._addr_width

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        # word table: word address -> (read value, write target or None, access)
        words: list[tuple[int, Value, Value | None, str]] = []
        clears: list[tuple[Value, Value]] = []
        for r in self._registers:
            field = getattr(self.fields, _field_name(r))
            if r.access == "pulse":
                m.d.sync += field.eq(0)  # a write below sets it for one cycle
                words.append((r.offset >> 2, Const(0, 1), field, "pulse"))
                continue
            if r.access == "w1c":
                clear = Signal(r.width, name=f"{_field_name(r)}_clear")
                clears.append((field, clear, getattr(self.fields, f"{_field_name(r)}_set")))
                words.append((r.offset >> 2, field, clear, "w1c"))
                continue
            for w in range(r.words):
                lo, hi = w * DATA_WIDTH, min(r.width, (w + 1) * DATA_WIDTH)
                words.append(((r.offset >> 2) + w, field[lo:hi], field[lo:hi] if r.access == "rw" else None,
                              r.access))

        # ---- write channel: accept AW and W together, then hold B until bready
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
        with m.If(aw_ok):
            m.d.sync += bvalid.eq(1)
            with m.Switch(self.s_axil_awaddr[2:]):
                for word, _value, target, access in words:
                    with m.Case(word):
                        if access == "ro":
                            m.d.sync += bresp.eq(RESP_SLVERR)
                            continue
                        m.d.sync += bresp.eq(RESP_OKAY)
                        if access == "w1c":
                            m.d.comb += target.eq(Mux(wstrb.any(), wdata[:len(target)], 0))
                        elif access == "pulse":
                            m.d.sync += target.eq(wdata[0] & wstrb[0])
                        else:
                            for byte in range(-(-len(target) // 8)):
                                lo, hi = 8 * byte, min(len(target), 8 * byte + 8)
                                with m.If(wstrb[byte]):
                                    m.d.sync += target[lo:hi].eq(wdata[lo:hi])
                with m.Default():
                    m.d.sync += bresp.eq(RESP_DECERR)
        for field, clear, set_bits in clears:  # set wins over a clear in the same cycle
            m.d.sync += field.eq((field & ~clear) | set_bits)

        # ---- read channel
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
                for word, value, _target, _access in words:
                    with m.Case(word):
                        m.d.sync += [rdata.eq(value), rresp.eq(RESP_OKAY)]
                with m.Default():
                    m.d.sync += [rdata.eq(0), rresp.eq(RESP_DECERR)]
        return m


class AxisMaster(CheckedComponent):
    """One AXI4-Stream master ``tdata/tvalid/tready/tlast`` fed by a block's output stream ``i``
    (payload of ``payload_shape``: a shape or a layout).

    ``tdata`` is the payload extended to ``tdata_width`` (sign-extended if the shape is signed and
    there is no FIFO, as an Amaranth assignment does; zero-extended otherwise); ``tlast`` is set on every
    ``last_beats``-th transfer (0: never), or'ed with payload bit ``last_bit`` when given. With
    ``fifo_depth`` = 0 the stream is wired straight through (``LATENCY`` 0, ``i.ready`` = ``tready``);
    with ``fifo_depth`` >= 2, ``i`` cannot be stalled (``always_ready``) and goes through a
    ``fifo_depth``-entry FIFO (``FIFO_LATENCY``): a beat arriving while it is full is dropped and
    ``overflow`` is high in that cycle; ``free`` is the number of free entries (0 without FIFO).
    """

    #: cycles from ``i`` to ``tdata`` without FIFO
    LATENCY = 0
    #: cycles from ``i`` to ``tdata`` through the FIFO (first-word fall-through after the write)
    FIFO_LATENCY = 1

    def __init__(self, *, payload_shape: Any, tdata_width: int, fifo_depth: int = 0,
                 last_bit: int | None = None) -> None:
        self._payload_width, self._tdata_width = Shape.cast(payload_shape).width, tdata_width
        self._fifo_depth, self._last_bit = fifo_depth, last_bit
        super().__init__({
            "i": In(stream.Signature(payload_shape, always_ready=fifo_depth > 0)),
            "tdata": Out(tdata_width), "tvalid": Out(1), "tready": In(1), "tlast": Out(1),
            "last_beats": In(LAST_BEATS_WIDTH),
            "overflow": Out(1),
            "free": Out(LAST_BEATS_WIDTH),
        })

    @classmethod
    def check_params(cls, *, payload_shape: Any, tdata_width: int, fifo_depth: int, last_bit: int | None) -> None:
        payload_width = Shape.cast(payload_shape).width  # TypeError if it is no shape
        _check_int("payload width", payload_width, 1)
        _check_int("tdata_width", tdata_width, payload_width)
        if fifo_depth != 0:
            _check_int("fifo_depth", fifo_depth, 2)
        if last_bit is not None:
            _check_int("last_bit", last_bit, 0)
            if last_bit >= payload_width:
                raise ValueError(f"last_bit={last_bit} must be below payload_width={payload_width}")

    @property
    def fifo_depth(self) -> int:
        return self._fifo_depth

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        count = Signal(LAST_BEATS_WIDTH, name="beat_count")
        is_last = Signal()
        m.d.comb += is_last.eq((count + 1) == self.last_beats)
        if self._fifo_depth:
            m.submodules.fifo = fifo = SyncFIFO(width=self._payload_width, depth=self._fifo_depth)
            m.d.comb += [
                fifo.w_data.eq(Value.cast(self.i.payload)),
                fifo.w_en.eq(self.i.valid),
                self.tdata.eq(fifo.r_data),
                self.tvalid.eq(fifo.r_rdy),
                fifo.r_en.eq(self.tready),
                self.overflow.eq(self.i.valid & ~fifo.w_rdy),
                self.free.eq(self._fifo_depth - fifo.level),
            ]
            fire = self.tready & fifo.r_rdy
        else:
            # a signed payload is sign-extended to tdata (Value.cast keeps its signedness)
            m.d.comb += [self.tdata.eq(Value.cast(self.i.payload)), self.tvalid.eq(self.i.valid),
                         self.i.ready.eq(self.tready)]
            fire = self.tready & self.i.valid
        if self._last_bit is None:
            m.d.comb += self.tlast.eq(is_last)
        else:
            m.d.comb += self.tlast.eq(is_last | self.tdata[self._last_bit])
        with m.If(fire):
            m.d.sync += count.eq(Mux(is_last, 0, count + 1))
        return m


class AxiWrapper(CheckedComponent):
    """AXI4-Stream data ports and an AXI4-Lite register slave around ``inner`` (see module doc):
    an :class:`AxiLiteRegisters` (``regs``) and one :class:`AxisMaster` per output stream
    (``axis_<name>``); input streams are wired straight to the block."""

    def __init__(self, inner: wiring.Component, *, fifo_depth: int = 16, addr_width: int | None = None,
                 pulse_ports: tuple[str, ...] | None = None) -> None:
        plan = _plan(inner, fifo_depth, addr_width, pulse_ports)
        self._inner = inner
        self._fifo_depth = fifo_depth
        self._block_regs = plan.block_regs
        self._last_field = plan.last_field
        self.streams: list[AxiStreamPort] = list(plan.streams)
        self.registers: list[AxiRegister] = list(plan.registers)
        self.map_bytes = plan.map_bytes
        self.addr_width = plan.addr_width
        members: dict[str, Any] = {}
        for s in self.streams:
            p = s.prefix
            flow_in = In if s.direction == "slave" else Out
            flow_out = Out if s.direction == "slave" else In
            members[f"{p}_tdata"] = flow_in(s.tdata_width)
            members[f"{p}_tvalid"] = flow_in(1)
            members[f"{p}_tready"] = flow_out(1)
            members[f"{p}_tlast"] = flow_in(1)
        members.update(_axil_members(self.addr_width))
        super().__init__(members)

    @classmethod
    def check_params(cls, *, inner: wiring.Component, fifo_depth: int, addr_width: int | None,
                     pulse_ports: tuple[str, ...] | None) -> None:
        _plan(inner, fifo_depth, addr_width, pulse_ports)

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
        m.submodules.regs = regs = AxiLiteRegisters(registers=tuple(self.registers), addr_width=self.addr_width)
        for name in _axil_members(self.addr_width):
            ours, theirs = getattr(self, name), getattr(regs, name)
            m.d.comb += theirs.eq(ours) if self.signature.members[name].flow == In else ours.eq(theirs)
        fields = regs.fields
        m.d.comb += fields.id.eq(AXI_ID)

        overflow = [Const(0, 1)] * len(fields.wrap_status_set)
        free: Value | None = None  # free entries of the first FIFO
        for i, s in enumerate(self.streams):
            port = getattr(inner, s.name)
            tdata, tvalid, tready, tlast = (getattr(self, f"{s.prefix}_{x}") for x in ("tdata", "tvalid", "tready",
                                                                                       "tlast"))
            if s.direction == "slave":  # tlast is ignored: the blocks count their own rows
                m.d.comb += [Value.cast(port.payload).eq(tdata[:s.payload_width]), port.valid.eq(tvalid),
                             tready.eq(port.ready)]
                continue
            field = _payload_last(inner.signature, s.name) if self._last_field[s.name] else None
            axm = AxisMaster(payload_shape=inner.signature.members[s.name].signature.members["payload"].shape,
                             tdata_width=s.tdata_width, fifo_depth=s.fifo_depth,
                             last_bit=None if field is None else field.offset)
            m.submodules[f"axis_{s.name}"] = axm
            m.d.comb += [axm.i.payload.eq(port.payload), axm.i.valid.eq(port.valid),
                         tdata.eq(axm.tdata), tvalid.eq(axm.tvalid), axm.tready.eq(tready), tlast.eq(axm.tlast),
                         axm.last_beats.eq(getattr(fields, f"{s.name}_last_beats"))]
            if s.fifo_depth:
                overflow[i] = axm.overflow
                free = axm.free if free is None else free
            else:
                m.d.comb += port.ready.eq(axm.i.ready)
        m.d.comb += [fields.wrap_status_set.eq(Cat(*overflow)),
                     fields.wrap_fifo_free.eq(0 if free is None else free)]

        by_name = {r.name: r for r in self.registers}
        for path, name, _width, access, _reset in self._block_regs:
            port, field = Value.cast(_lookup(inner, path)), getattr(fields, _field_name(by_name[name.upper()]))
            m.d.comb += field.eq(port) if access == "ro" else port.eq(field)
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
