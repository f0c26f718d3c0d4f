"""LATTE low-precision filter unit: one attention head from 8-bit Q, K, V (DESIGN §5, seed 003).

Bit-exact with :func:`golden.latte.latte_fixed_raw` (formats: :class:`golden.latte.LatteFormats`).

Interface (all streams ``amaranth.lib.stream``, one *chunk* of ``lanes`` 8-bit elements per beat,
rows sent as ``d_h/lanes`` consecutive beats, row-major):

* a head starts in the LOAD phase: ``k`` and ``v`` each take ``n_keys`` rows (in any interleaving);
* then ``q`` takes one row at a time; for each query row the block runs the passes below and
  emits the output row on ``o`` (``d_h/lanes`` beats, payload ``data`` = ``lanes`` outputs in
  ``out_fmt``, in units of V's raw values, and ``kept`` = the row's kept-key count);
* after ``n_queries`` rows the block returns to LOAD for the next head.

``tau``, ``scale_mant``/``scale_shift`` (the head's score scale, see
:func:`golden.latte.encode_score_scale`), ``n_keys`` (1..n_max) and ``n_queries`` are registers
held stable by the host during a head. ``overflow`` (output saturation) and ``kept_total`` are
per head: cleared when the head's first query row is accepted. ``config_error`` is set (and the
block waits in LOAD) while ``n_keys`` is 0 or above ``n_max``.

Passes per query row (``C = d_h/lanes`` chunks; each pass is a fixed pipeline fed one item per
cycle, so the cycle count depends only on n and the kept counts, see
:func:`golden.latte_cycles.latte_cycles_per_head` with :meth:`Latte.cycle_latencies`).
Passes 1-2 (the *front*, with the Q row load) of row i+1 run while passes 3-5 (the *back*) finish
row i:

1. EST: ``lanes`` signed 4×4 multipliers, pipelined adder tree, accumulation over the C chunks:
   ``A_est[j]`` into a buffer and the running row maximum (n·C cycles).
2. FLAG: scan the buffer, one key per cycle, against the row threshold ``max - tau`` (kept iff
   ``max - A_est <= tau``) and append kept keys to a compact list.
   COMP: for each kept key the compensation ``16·(Q_M·K_L + Q_L·K_M) [+ Q_L·K_L]`` is computed
   by 2 (3) ``lanes`` 4×4 multipliers over C cycles and added to ``256·A_est`` (computation
   reuse, eq. 9); score and key address go to the score list, with the running score maximum.
3. EXP: per kept key ``x = (S - S_max)·scale`` (DSP, rounding shift, saturation), shared
   :class:`hdl.arith.ExpUnit`, exp values into a buffer, denominator accumulation (kept cycles).
4. PV: ``lanes`` multipliers ``e·V`` over the kept keys only into d_h accumulators (kept·C).
5. NORM: ``lanes`` shared :class:`hdl.arith.ReciprocalScaler` units divide the accumulators by
   the denominator straight into the output stream (C beats, stalled by ``o.ready``).

The datapaths of passes 3-5 are the shared back-end components of :mod:`hdl.softmax_pv`
(:class:`~hdl.softmax_pv.ScoreExp`, :class:`~hdl.softmax_pv.PVAccumulator`,
:class:`~hdl.softmax_pv.Normalizer`), also used by E-ATT and MCA; LATTE keeps its own control
(compacted kept-key list, indirect V addresses, back end overlapping the next row's front).

Structure (Verilog submodule names in brackets): :class:`Latte` wires the front engine
:class:`LatteFront` [front] (K/V/Q and score-list buffers, the ``front`` FSM, and the passes
:class:`EstimatePass` [est] around :class:`EstimateLanes` [lanes], :class:`FilterPass` [flag] with
the A_est buffer and kept list, :class:`CompensationPass` [comp] around :class:`CompensationLanes`
[lanes]) to the back engine :class:`LatteBack` [back] (the ``back`` FSM and the shared datapaths).
Each part states its latency; :meth:`Latte.cycle_latencies` collects them.
"""

from __future__ import annotations

from functools import cached_property

from amaranth.hdl import Cat, Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.data import ArrayLayout, StructLayout
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from golden.fixed import QFormat
from golden.latte import LatteFormats

from . import faults
from .checked import CheckedComponent, ReadOnlyParam, check_positive_ints
from .fixed import shape_of
from .primitives import RegisteredReadMemory
from .softmax_pv import (
    LaneSplit,
    Normalizer,
    PVAccumulator,
    ScoreExp,
    adder_tree,
    delay_line,
    issue_pass,
    norm_pass,
    tree_stages,
)

__all__ = ["Latte", "LatteFront", "LatteBack", "EstimatePass", "FilterPass", "CompensationPass", "EstimateLanes",
           "CompensationLanes", "tree_stages", "output_layout", "key_addr_width", "kept_entry_layout",
           "score_entry_layout", "latte_formats", "build_latte"]


def output_layout(fmts: LatteFormats, lanes: int) -> StructLayout:
    """Payload of the ``o`` stream: ``lanes`` outputs and the row's kept-key count."""
    return StructLayout({"data": ArrayLayout(shape_of(fmts.out_fmt), lanes), "kept": unsigned(fmts.count_width)})


def _small_mul(a: Value, b: Value) -> Value:
    """``a * b`` for a 4-bit ``b`` as shift-and-add (logic, not a DSP block: a MULT18X18D per
    4×4 product would waste the FPGA's multipliers). A signed ``b`` has weight -8 on its MSB."""
    a, b = Value.cast(a), Value.cast(b)
    terms = [Mux(b[i], a << i, 0) for i in range(len(b))]
    total = terms[0]
    for i, term in enumerate(terms[1:], start=1):
        total = total - term if (b.shape().signed and i == len(b) - 1) else total + term
    return total


def _any(values: list[Value]) -> Value:
    return Cat(*values).any()


def _check_fmts_lanes(fmts: object, lanes: object) -> None:
    """The checks shared by LATTE's engines: a :class:`LatteFormats` and a lane count dividing d_h."""
    if not isinstance(fmts, LatteFormats):
        raise TypeError(f"fmts must be a LatteFormats, not {fmts!r}")
    check_positive_ints(lanes=lanes)
    if fmts.d_h % lanes:
        raise ValueError(f"lanes={lanes} must divide d_h={fmts.d_h}")


def key_addr_width(n_max: int, chunks: int) -> int:
    """Bits of a K/V buffer address (key base ``j·chunks`` + chunk)."""
    return max(1, (n_max * chunks - 1).bit_length())


def kept_entry_layout(aw: int, est_width: int) -> StructLayout:
    """A kept-list word: the key's K/V base address and its estimate ``A_est``."""
    return StructLayout({"kb": unsigned(aw), "a": signed(est_width)})


def score_entry_layout(aw: int, score_width: int) -> StructLayout:
    """A score-list word: the compensated score of a kept key and its K/V base address."""
    return StructLayout({"score": signed(score_width), "kb": unsigned(aw)})


class _LatteParams(LaneSplit):
    """Read-only parameters of LATTE and its parts: the head's formats and lane count."""

    LANE_DIM = "_fmts.d_h"
    fmts = ReadOnlyParam[LatteFormats]()

    @property
    def aw(self) -> int:
        """K/V buffer address width."""
        return key_addr_width(self._fmts.n_max, self.chunks)

    @property
    def chunk_layout(self) -> ArrayLayout:
        """One beat of Q, K or V: ``lanes`` signed 8-bit elements."""
        return ArrayLayout(signed(8), self._lanes)


class _LatteEngine(_LatteParams, CheckedComponent):
    """A part of LATTE built from the head's formats and lane count."""

    def __init__(self, ports: dict, *, fmts: LatteFormats, lanes: int) -> None:
        self._fmts, self._lanes = fmts, lanes
        super().__init__(ports)

    @classmethod
    def check_params(cls, *, fmts: LatteFormats, lanes: int) -> None:
        _check_fmts_lanes(fmts, lanes)


class EstimateLanes(CheckedComponent):
    """Front engine, EST datapath: ``lanes`` signed 4×4 MSB products, adder tree, accumulation of
    ``A_est[j]`` over a key's chunks, and the running row maximum (DESIGN §5, eq. 8).

    Control (``issue``, key index ``j``, ``first``/``last`` chunk flags) enters at the cycle the
    chunk's K/Q addresses are issued; ``q``/``k`` are the registered memory reads (two cycles
    later). ``est_en``/``est_addr``/``est_data`` (the A_est buffer write) follow the issue by
    :meth:`latency` cycles; ``emax`` is valid :attr:`MAX_LATENCY` cycles after the last write.
    ``busy`` is high while any issued chunk is still in flight (the FLAG pass waits for it)."""

    MAX_LATENCY = 1     # the row maximum: one register after the last estimate (timing)

    @staticmethod
    def latency(lanes: int) -> int:
        """Issue -> estimate write: K/Q read, its register, products, tree, accumulate."""
        return 3 + tree_stages(lanes)

    def __init__(self, *, lanes: int, n_max: int, est_width: int) -> None:
        self._lanes, self._est_width = lanes, est_width
        chunk = ArrayLayout(signed(8), lanes)
        super().__init__({
            "issue": In(1), "j": In(range(n_max)), "first": In(1), "last": In(1),
            "q": In(chunk), "k": In(chunk),
            "est_en": Out(1), "est_addr": Out(range(n_max)), "est_data": Out(signed(est_width)),
            "emax": Out(signed(est_width)), "busy": Out(1),
        })

    @classmethod
    def check_params(cls, *, lanes: int, n_max: int, est_width: int) -> None:
        check_positive_ints(lanes=lanes, n_max=n_max, est_width=est_width)

    def elaborate(self, platform):
        m = Module()
        lat = self.latency(self._lanes)
        ev = delay_line(m, self.issue, lat, "ev")
        ej = delay_line(m, self.j, lat, "ej")
        efirst = delay_line(m, self.first, lat, "efirst")
        elastc = delay_line(m, self.last, lat, "elastc")
        e_prod = []
        for lane in range(self._lanes):
            reg = Signal(signed(8), name=f"est_prod{lane}")
            m.d.sync += reg.eq(_small_mul(self.q[lane][4:8].as_signed(), self.k[lane][4:8].as_signed()))
            e_prod.append(reg)
        e_sum = adder_tree(m, e_prod, "est_tree")
        e_acc = Signal(signed(self._est_width))
        e_new = Signal(signed(self._est_width))
        m.d.comb += e_new.eq(Mux(efirst[-1], e_sum, e_acc + e_sum))
        with m.If(ev[-1]):
            m.d.sync += e_acc.eq(e_new)
            with m.If(elastc[-1]):
                m.d.comb += [self.est_en.eq(1), self.est_addr.eq(ej[-1]), self.est_data.eq(e_new)]
        # the row maximum one register later: the accumulator add and the max compare in separate cycles
        mx_v, mx_first = Signal(), Signal()
        mx_est = Signal(signed(self._est_width))
        m.d.sync += [mx_v.eq(ev[-1] & elastc[-1]), mx_first.eq(ej[-1] == 0), mx_est.eq(e_new)]
        with m.If(mx_v & (mx_first | (mx_est > self.emax))):
            m.d.sync += self.emax.eq(mx_est)
        m.d.comb += self.busy.eq(_any(ev[1:]) | mx_v)
        return m


class CompensationLanes(CheckedComponent):
    """Front engine, COMP datapath: per kept key, the compensation ``16·(Q_M·K_L + Q_L·K_M)``
    ``[+ Q_L·K_L]`` summed over its chunks and added to ``256·A_est`` (computation reuse, eq. 9).

    ``issue``/``c`` enter at the cycle the kept-list address is issued; ``entry`` is the list
    read data (one cycle later); ``k_addr``/``q_addr`` are the K/Q buffer addresses to drive (from
    the registered entry, stage 2); ``q``/``k`` the registered reads (stage 4). ``s_valid`` with
    ``score``/``kb`` follows the issue of a key's last chunk by :meth:`latency` cycles. ``busy``
    is high while any issued chunk or score is in flight."""

    @staticmethod
    def latency(lanes: int, include_ll: bool) -> int:
        """list read, its register, K read, its register, products, tree, accumulate, score"""
        return 6 + tree_stages(lanes * (3 if include_ll else 2))

    def __init__(self, *, lanes: int, chunks: int, n_max: int, aw: int, est_width: int, cross_width: int,
                 score_width: int, include_ll: bool) -> None:
        self._lanes, self._chunks, self._include_ll = lanes, chunks, include_ll
        self._est_width, self._cross_width = est_width, cross_width
        chunk = ArrayLayout(signed(8), lanes)
        self._entry_layout = kept_entry_layout(aw, est_width)
        super().__init__({
            "issue": In(1), "c": In(range(chunks)), "entry": In(self._entry_layout),
            "k_addr": Out(aw), "q_addr": Out(range(chunks)),
            "q": In(chunk), "k": In(chunk),
            "s_valid": Out(1), "score": Out(signed(score_width)), "kb": Out(aw), "busy": Out(1),
        })

    @classmethod
    def check_params(cls, *, lanes: int, chunks: int, n_max: int, aw: int, est_width: int, cross_width: int,
                     score_width: int, include_ll: bool) -> None:
        check_positive_ints(lanes=lanes, chunks=chunks, n_max=n_max, aw=aw, est_width=est_width,
                            cross_width=cross_width, score_width=score_width)
        if not isinstance(include_ll, bool):
            raise TypeError(f"include_ll must be a bool, not {include_ll!r}")

    @property
    def entry_layout(self) -> StructLayout:
        """The kept-list word read on ``entry`` (:func:`kept_entry_layout`)."""
        return self._entry_layout

    def elaborate(self, platform):
        m = Module()
        C = self._chunks
        c_lat = self.latency(self._lanes, self._include_ll) - 1  # to the accumulate stage
        fv = delay_line(m, self.issue, c_lat, "fv")
        fc = delay_line(m, self.c, c_lat, "fc")
        kl_d = Signal(self._entry_layout)  # list entry of the item at stage 2
        m.d.sync += kl_d.eq(self.entry)
        m.d.comb += [self.k_addr.eq(kl_d.kb + fc[2]), self.q_addr.eq(fc[2])]
        fa = delay_line(m, kl_d.a, c_lat - 2, "fa")
        fkb = delay_line(m, kl_d.kb, c_lat - 2, "fkb")
        c_terms = []
        for lane in range(self._lanes):
            qm, ql = self.q[lane][4:8].as_signed(), self.q[lane][0:4]
            km, kl = self.k[lane][4:8].as_signed(), self.k[lane][0:4]
            p_mk = Signal(signed(9), name=f"comp_mk{lane}")
            p_lm = Signal(signed(9), name=f"comp_lm{lane}")
            m.d.sync += [p_mk.eq(_small_mul(qm, kl)), p_lm.eq(_small_mul(ql, km))]
            c_terms += [p_mk << 4, p_lm << 4]
            if self._include_ll:
                p_ll = Signal(unsigned(8), name=f"comp_ll{lane}")
                m.d.sync += p_ll.eq(_small_mul(ql, kl))
                c_terms.append(p_ll)
        c_sum = adder_tree(m, c_terms, "comp_tree")
        c_acc = Signal(signed(self._cross_width))
        c_new = Signal(signed(self._cross_width))
        m.d.comb += c_new.eq(Mux(fc[-1] == 0, c_sum, c_acc + c_sum))
        s_cross = Signal(signed(self._cross_width))
        s_a = Signal(signed(self._est_width))
        m.d.sync += self.s_valid.eq(0)
        with m.If(fv[-1]):
            m.d.sync += c_acc.eq(c_new)
            with m.If(fc[-1] == C - 1):
                m.d.sync += [self.s_valid.eq(1), s_cross.eq(c_new), s_a.eq(fa[-1]), self.kb.eq(fkb[-1])]
        m.d.comb += [self.score.eq((s_a << 8) + s_cross), self.busy.eq(_any(fv[1:]) | self.s_valid)]
        return m


class EstimatePass(_LatteEngine):
    """Front engine, pass 1 (EST): issues the ``n_keys·C`` (key, chunk) items of a row, one per
    cycle, to the K/Q buffers and :class:`EstimateLanes`.

    ``start`` (a one-cycle pulse) begins a row; the K/Q read addresses ``k_addr``/``q_addr`` are
    for the buffers' read ports, whose registered data returns on ``k``/``q`` two cycles later.
    The A_est writes ``est_en``/``est_addr``/``est_data`` follow an item's issue by :attr:`latency`
    cycles; ``emax`` (the row maximum) is final when ``busy`` falls, :attr:`MAX_LATENCY` cycles
    after the last write."""

    MAX_LATENCY = EstimateLanes.MAX_LATENCY

    def __init__(self, *, fmts: LatteFormats, lanes: int) -> None:
        n_max, chunk = fmts.n_max, ArrayLayout(signed(8), lanes)
        super().__init__({
            "start": In(1), "n_keys": In(unsigned(fmts.count_width)),
            "k_addr": Out(key_addr_width(n_max, fmts.d_h // lanes)), "q_addr": Out(range(fmts.d_h // lanes)),
            "q": In(chunk), "k": In(chunk),
            "est_en": Out(1), "est_addr": Out(range(n_max)), "est_data": Out(signed(fmts.est_width)),
            "emax": Out(signed(fmts.est_width)), "busy": Out(1),
        }, fmts=fmts, lanes=lanes)

    @property
    def latency(self) -> int:
        """Issue -> A_est write (:meth:`EstimateLanes.latency`)."""
        return EstimateLanes.latency(self._lanes)

    def elaborate(self, platform):
        m = Module()
        C, n_max = self.chunks, self._fmts.n_max
        m.submodules.lanes = lanes = EstimateLanes(lanes=self._lanes, n_max=n_max, est_width=self._fmts.est_width)
        issue = Signal()
        j = Signal(range(n_max))
        c = Signal(range(C))
        base = Signal(self.aw)
        with m.If(self.start):
            m.d.sync += [issue.eq(1), j.eq(0), c.eq(0), base.eq(0)]
        with m.Elif(issue):
            with m.If(c == C - 1):
                m.d.sync += [c.eq(0), j.eq(j + 1), base.eq(base + C)]
            with m.Else():
                m.d.sync += c.eq(c + 1)
            with m.If((j == self.n_keys - 1) & (c == C - 1)):
                m.d.sync += issue.eq(0)
        m.d.comb += [
            self.k_addr.eq(base + c), self.q_addr.eq(c),
            lanes.issue.eq(issue), lanes.j.eq(j), lanes.first.eq(c == 0), lanes.last.eq(c == C - 1),
            lanes.q.eq(self.q), lanes.k.eq(self.k),
            self.est_en.eq(lanes.est_en), self.est_addr.eq(lanes.est_addr), self.est_data.eq(lanes.est_data),
            self.emax.eq(lanes.emax), self.busy.eq(issue | lanes.busy),
        ]
        return m


class FilterPass(_LatteEngine):
    """Front engine, pass 2 (FLAG): the A_est buffer, the threshold scan and the kept-key list.

    The buffer is written through ``est_en``/``est_addr``/``est_data`` (from :class:`EstimatePass`).
    ``start`` (a one-cycle pulse) registers the row threshold ``theta = emax - tau`` and scans the
    ``n_keys`` estimates, one per cycle (addresses never depend on read data: no memory -> logic
    -> memory-address loop); a key is kept iff ``max - A_est <= tau``, i.e. ``A_est >= theta``, and
    appended to the list (:func:`kept_entry_layout`), :attr:`LATENCY` cycles after its read is
    issued. ``list_len`` counts the row's kept keys; ``list_addr``/``list_entry`` is the list's read
    port (registered, one cycle). ``busy`` is high until the last append."""

    LATENCY = 2  # A_est read, its register (timing), then the compare and the list write

    def __init__(self, *, fmts: LatteFormats, lanes: int) -> None:
        n_max, aw = fmts.n_max, key_addr_width(fmts.n_max, fmts.d_h // lanes)
        super().__init__({
            "est_en": In(1), "est_addr": In(range(n_max)), "est_data": In(signed(fmts.est_width)),
            "start": In(1), "emax": In(signed(fmts.est_width)), "tau": In(unsigned(fmts.tau_width)),
            "n_keys": In(unsigned(fmts.count_width)),
            "list_len": Out(range(n_max + 1)), "list_addr": In(range(n_max)),
            "list_entry": Out(kept_entry_layout(aw, fmts.est_width)), "busy": Out(1),
        }, fmts=fmts, lanes=lanes)

    def elaborate(self, platform):
        m = Module()
        f, C = self._fmts, self.chunks
        m.submodules.estmem = estmem = Memory(shape=signed(f.est_width), depth=f.n_max, init=[])
        m.submodules.klist = klist = Memory(shape=kept_entry_layout(self.aw, f.est_width), depth=f.n_max, init=[])
        est_w, est_r = estmem.write_port(), estmem.read_port()
        kl_w, kl_r = klist.write_port(), klist.read_port()
        m.d.comb += [est_w.en.eq(self.est_en), est_w.addr.eq(self.est_addr), est_w.data.eq(self.est_data),
                     kl_r.addr.eq(self.list_addr), self.list_entry.eq(kl_r.data)]
        theta = Signal(signed(max(f.est_width, f.tau_width + 1) + 1))
        issue = Signal()
        j = Signal(range(f.n_max))
        base = Signal(self.aw)
        gv = delay_line(m, issue, self.LATENCY, "gv")
        gkb = delay_line(m, base, self.LATENCY, "gkb")
        with m.If(self.start):
            m.d.sync += [issue.eq(1), j.eq(0), base.eq(0), self.list_len.eq(0), theta.eq(self.emax - self.tau)]
        with m.Elif(issue):
            m.d.sync += [j.eq(j + 1), base.eq(base + C)]
            with m.If(j == self.n_keys - 1):
                m.d.sync += issue.eq(0)
        m.d.comb += est_r.addr.eq(j)
        g_est = Signal(signed(f.est_width))
        m.d.sync += g_est.eq(est_r.data)
        with m.If(gv[-1] & (g_est >= theta)):
            m.d.comb += [kl_w.en.eq(1), kl_w.addr.eq(self.list_len), kl_w.data.kb.eq(gkb[-1]), kl_w.data.a.eq(g_est)]
            m.d.sync += self.list_len.eq(self.list_len + 1)
        m.d.comb += self.busy.eq(issue | _any(gv[1:]))
        return m


class CompensationPass(_LatteEngine):
    """Front engine, pass 2 (COMP): issues the ``list_len·C`` (kept key, chunk) items of a row to
    :class:`CompensationLanes` and writes each compensated score to the score list.

    ``start`` (a one-cycle pulse) begins a row; ``list_addr`` drives the kept list's read port,
    whose data returns on ``entry``; ``k_addr``/``q_addr`` drive the K/Q read ports (registered
    data on ``k``/``q``). Score-list writes (``sc_en``/``sc_addr``/``sc_data``,
    :func:`score_entry_layout`) follow a key's last issue by :attr:`latency` cycles; ``kept``
    counts them and ``smax`` is their running maximum. ``busy`` is high until the last write."""

    def __init__(self, *, fmts: LatteFormats, lanes: int) -> None:
        n_max, C = fmts.n_max, fmts.d_h // lanes
        aw, chunk = key_addr_width(n_max, C), ArrayLayout(signed(8), lanes)
        super().__init__({
            "start": In(1), "list_len": In(range(n_max + 1)),
            "list_addr": Out(range(n_max)), "entry": In(kept_entry_layout(aw, fmts.est_width)),
            "k_addr": Out(aw), "q_addr": Out(range(C)), "q": In(chunk), "k": In(chunk),
            "sc_en": Out(1), "sc_addr": Out(range(n_max)), "sc_data": Out(score_entry_layout(aw, fmts.score_width)),
            "kept": Out(range(n_max + 1)), "smax": Out(signed(fmts.score_width)), "busy": Out(1),
        }, fmts=fmts, lanes=lanes)

    @property
    def latency(self) -> int:
        """Issue of a key's last chunk -> its score (:meth:`CompensationLanes.latency`)."""
        return CompensationLanes.latency(self._lanes, self._fmts.include_ll)

    def elaborate(self, platform):
        m = Module()
        f, C = self._fmts, self.chunks
        m.submodules.lanes = lanes = CompensationLanes(
            lanes=self._lanes, chunks=C, n_max=f.n_max, aw=self.aw, est_width=f.est_width,
            cross_width=f.cross_width, score_width=f.score_width, include_ll=f.include_ll)
        issue = Signal()
        t = Signal(range(f.n_max))
        c = Signal(range(C))
        with m.If(self.start):
            m.d.sync += [issue.eq(1), t.eq(0), c.eq(0), self.kept.eq(0)]
        with m.Elif(issue):
            with m.If(c == C - 1):
                m.d.sync += [c.eq(0), t.eq(t + 1)]
                with m.If(t == self.list_len - 1):
                    m.d.sync += issue.eq(0)
            with m.Else():
                m.d.sync += c.eq(c + 1)
        m.d.comb += [lanes.issue.eq(issue), lanes.c.eq(c), lanes.entry.eq(self.entry), self.list_addr.eq(t),
                     self.k_addr.eq(lanes.k_addr), self.q_addr.eq(lanes.q_addr),
                     lanes.q.eq(self.q), lanes.k.eq(self.k), self.busy.eq(issue | lanes.busy)]
        with m.If(lanes.s_valid):
            m.d.comb += [self.sc_en.eq(1), self.sc_addr.eq(self.kept),
                         self.sc_data.score.eq(lanes.score), self.sc_data.kb.eq(lanes.kb)]
            m.d.sync += self.kept.eq(self.kept + 1)
            with m.If((self.kept == 0) | (lanes.score > self.smax)):
                m.d.sync += self.smax.eq(lanes.score)
        return m


class LatteFront(_LatteEngine):
    """The front engine: the K/V/Q and score-list buffers, the head's LOAD phase and, per query row,
    the Q row load and passes 1-2 (:class:`EstimatePass`, :class:`FilterPass`,
    :class:`CompensationPass`, run in series by the ``front`` FSM).

    A finished row waits in HAND for an idle back engine (``back_idle``), then ``start_back``
    pulses with the row's ``kept`` count and score maximum ``smax``. FLAG (whose COMP rewrites the
    score list) starts only while the back is not in EXP (``back_in_exp``: an interlock, with the
    present latencies EXP always ends first); a new head waits (DRAIN) for the back to finish.
    ``sc_addr``/``sc_data`` and ``v_addr``/``v_data`` are the read ports of the score list and the
    V buffer for the back engine (registered, one cycle). ``head_start`` pulses when the head's
    first Q beat is accepted."""

    def __init__(self, *, fmts: LatteFormats, lanes: int) -> None:
        n_max, C = fmts.n_max, fmts.d_h // lanes
        aw, chunk = key_addr_width(n_max, C), ArrayLayout(signed(8), lanes)
        super().__init__({
            "q": In(stream.Signature(chunk)), "k": In(stream.Signature(chunk)), "v": In(stream.Signature(chunk)),
            "n_keys": In(unsigned(fmts.count_width)), "n_queries": In(unsigned(16)),
            "tau": In(unsigned(fmts.tau_width)),
            "config_error": Out(1), "idle": Out(1), "head_start": Out(1),
            "back_idle": In(1), "back_in_exp": In(1),
            "start_back": Out(1), "kept": Out(range(n_max + 1)), "smax": Out(signed(fmts.score_width)),
            "sc_addr": In(range(n_max)), "sc_data": Out(score_entry_layout(aw, fmts.score_width)),
            "v_addr": In(aw), "v_data": Out(chunk),
        }, fmts=fmts, lanes=lanes)

    # the passes are built on first use (by elaborate or a test probing their ports), so that an
    # inspected-only component creates no sub-components
    @cached_property
    def est(self) -> EstimatePass:
        return EstimatePass(fmts=self._fmts, lanes=self._lanes)

    @cached_property
    def flag(self) -> FilterPass:
        return FilterPass(fmts=self._fmts, lanes=self._lanes)

    @cached_property
    def comp(self) -> CompensationPass:
        return CompensationPass(fmts=self._fmts, lanes=self._lanes)

    def elaborate(self, platform):
        f, C, n_max = self._fmts, self.chunks, self._fmts.n_max
        m = Module()
        chunk = self.chunk_layout
        # K and V: read, then the output register (the block RAM's own on ECP5); the K word feeds
        # EST and COMP, the V word the back engine's PVAccumulator
        m.submodules.kmem = kmem = RegisteredReadMemory(width=chunk.size, depth=n_max * C)
        m.submodules.vmem = vmem = RegisteredReadMemory(width=chunk.size, depth=n_max * C)
        m.submodules.qmem = qmem = Memory(shape=chunk, depth=C, init=[])
        m.submodules.scoremem = scoremem = Memory(shape=score_entry_layout(self.aw, f.score_width), depth=n_max,
                                                  init=[])
        q_w, q_r = qmem.write_port(), qmem.read_port()
        sc_w, sc_r = scoremem.write_port(), scoremem.read_port()
        m.submodules.est = est = self.est
        m.submodules.flag = flag = self.flag
        m.submodules.comp = comp = self.comp

        n_keys = self.n_keys
        n_chunks_total = Signal(range(n_max * C + 1))
        m.d.comb += n_chunks_total.eq(n_keys * C)
        keys_ok = (n_keys >= 1) & (n_keys <= n_max)
        k_cnt = Signal(range(n_max * C + 1))
        v_cnt = Signal(range(n_max * C + 1))
        row_cnt = Signal(16)
        q_cnt = Signal(range(C))

        with m.FSM(name="front") as fsm:
            with m.State("LOAD"):
                m.d.sync += self.config_error.eq(~keys_ok)
                with m.If(self.k.valid & self.k.ready):
                    m.d.sync += k_cnt.eq(k_cnt + 1)
                with m.If(self.v.valid & self.v.ready):
                    m.d.sync += v_cnt.eq(v_cnt + 1)
                with m.If(keys_ok & (k_cnt == n_chunks_total) & (v_cnt == n_chunks_total)):
                    m.d.sync += [k_cnt.eq(0), v_cnt.eq(0), row_cnt.eq(0)]
                    with m.If(self.n_queries != 0):
                        m.next = "ROW_Q"

            with m.State("ROW_Q"):
                with m.If(self.q.valid):
                    m.d.sync += q_cnt.eq(Mux(q_cnt == C - 1, 0, q_cnt + 1))
                    m.d.comb += self.head_start.eq((q_cnt == 0) & (row_cnt == 0))
                    with m.If(q_cnt == C - 1):
                        m.d.comb += est.start.eq(1)
                        m.next = "EST"

            with m.State("EST"):
                m.d.comb += [kmem.r_addr.eq(est.k_addr), q_r.addr.eq(est.q_addr)]
                with m.If(~est.busy & ~self.back_in_exp):
                    m.d.comb += flag.start.eq(1)
                    m.next = "FLAG"

            with m.State("FLAG"):
                with m.If(~flag.busy):
                    m.d.comb += comp.start.eq(1)
                    m.next = "COMP"

            with m.State("COMP"):
                m.d.comb += [kmem.r_addr.eq(comp.k_addr), q_r.addr.eq(comp.q_addr)]
                with m.If(~comp.busy):
                    m.next = "HAND"

            with m.State("HAND"):
                with m.If(self.back_idle):
                    m.d.comb += self.start_back.eq(1)
                    m.d.sync += row_cnt.eq(row_cnt + 1)
                    with m.If(row_cnt + 1 == self.n_queries):
                        m.next = "DRAIN"
                    with m.Else():
                        m.next = "ROW_Q"

            with m.State("DRAIN"):
                with m.If(self.back_idle):
                    m.next = "LOAD"

        # Handshakes as plain assignments, outside the FSM's case statements: Icarus never runs an
        # ``always @*`` block whose inputs do not change after time 0 (the state stays LOAD).
        in_load, in_row_q = fsm.ongoing("LOAD"), fsm.ongoing("ROW_Q")
        m.d.comb += [
            self.k.ready.eq(in_load & keys_ok & (k_cnt < n_chunks_total)),
            self.v.ready.eq(in_load & keys_ok & (v_cnt < n_chunks_total)),
            kmem.w_en.eq(self.k.valid & self.k.ready), kmem.w_addr.eq(k_cnt), kmem.w_data.eq(self.k.payload),
            vmem.w_en.eq(self.v.valid & self.v.ready), vmem.w_addr.eq(v_cnt), vmem.w_data.eq(self.v.payload),
            self.idle.eq(in_load & (k_cnt == 0) & (v_cnt == 0)),
            self.q.ready.eq(in_row_q),
            q_w.en.eq(self.q.valid & in_row_q), q_w.addr.eq(q_cnt), q_w.data.eq(self.q.payload),
        ]
        # K/Q reads registered (timing), shared by EST and COMP; K's register is kmem's own
        k_d = chunk(kmem.r_data)
        q_d = Signal(chunk)
        m.d.sync += q_d.eq(q_r.data)
        m.d.comb += [
            est.n_keys.eq(n_keys), est.q.eq(q_d), est.k.eq(k_d),
            flag.est_en.eq(est.est_en), flag.est_addr.eq(est.est_addr), flag.est_data.eq(est.est_data),
            flag.emax.eq(est.emax), flag.tau.eq(self.tau), flag.n_keys.eq(n_keys),
            comp.list_len.eq(flag.list_len), flag.list_addr.eq(comp.list_addr), comp.entry.eq(flag.list_entry),
            comp.q.eq(q_d), comp.k.eq(k_d),
            sc_w.en.eq(comp.sc_en), sc_w.addr.eq(comp.sc_addr), sc_w.data.eq(comp.sc_data),
            self.kept.eq(comp.kept), self.smax.eq(comp.smax),
            sc_r.addr.eq(self.sc_addr), self.sc_data.eq(sc_r.data), vmem.r_addr.eq(self.v_addr),
            self.v_data.eq(vmem.r_data),
            kmem.r_en.eq(1), kmem.r_data_en.eq(1), vmem.r_en.eq(1), vmem.r_data_en.eq(1),
        ]
        return m


class LatteBack(_LatteEngine):
    """The back engine: passes 3-5 of a row over its kept keys, on the shared datapaths of
    :mod:`hdl.softmax_pv` (:class:`~hdl.softmax_pv.ScoreExp`, :class:`~hdl.softmax_pv.PVAccumulator`,
    :class:`~hdl.softmax_pv.Normalizer`), sequenced by the ``back`` FSM (IDLE, EXP, PV, NORM).

    ``start`` (a one-cycle pulse, accepted in IDLE) takes the row's ``kept`` count and score maximum
    ``smax``. EXP reads the score list (``sc_addr``/``sc_data``, a registered read port) into the
    exp list; PV reads V indirectly at each kept key's base (``v_addr``/``v_data``); NORM streams
    the row on ``o`` (``kept`` payload = :attr:`row_kept`). ``row_done`` pulses with the row's last
    ``o`` transfer, ``o_overflow`` on a transfer with a saturated output."""

    #: EXP: score list read, then :class:`~hdl.softmax_pv.ScoreExp`
    EXP_LATENCY = 1 + ScoreExp.LATENCY
    #: PV: exp list read, register, V read, register, then :class:`~hdl.softmax_pv.PVAccumulator`
    PV_LATENCY = 3 + PVAccumulator.LATENCY
    #: NORM: the :class:`~hdl.softmax_pv.Normalizer`
    NORM_LATENCY = Normalizer.LATENCY
    #: deliberate faults (:mod:`hdl.faults`), for the formal mutant ``latte_no_stall``
    FAULTS = {"no_stall": "the Normalizer ignores o.ready (clock enable tied high): a beat waiting "
                          "for ready is replaced by the next one or dropped"}

    def __init__(self, *, fmts: LatteFormats, lanes: int) -> None:
        self._stall = "no_stall" not in faults.active(self)
        n_max, C = fmts.n_max, fmts.d_h // lanes
        aw = key_addr_width(n_max, C)
        super().__init__({
            "start": In(1), "kept": In(range(n_max + 1)), "smax": In(signed(fmts.score_width)),
            "scale_mant": In(unsigned(fmts.scale_mant_bits)), "scale_shift": In(unsigned(fmts.scale_shift_bits)),
            "sc_addr": Out(range(n_max)), "sc_data": In(score_entry_layout(aw, fmts.score_width)),
            "v_addr": Out(aw), "v_data": In(ArrayLayout(signed(8), lanes)),
            "o": Out(stream.Signature(output_layout(fmts, lanes))),
            "row_kept": Out(range(n_max + 1)), "idle": Out(1), "in_exp": Out(1),
            "row_done": Out(1), "o_overflow": Out(1),
        }, fmts=fmts, lanes=lanes)

    def elaborate(self, platform):
        f, L, C, n_max = self._fmts, self._lanes, self.chunks, self._fmts.n_max
        m = Module()
        ek_layout = StructLayout({"e": shape_of(f.exp_out_fmt), "kb": unsigned(self.aw)})
        # exp list: read, then the output register (the block RAM's own on ECP5)
        m.submodules.ekmem = ekmem = RegisteredReadMemory(width=ek_layout.size, depth=n_max)
        ek_in = Signal(ek_layout)
        m.d.comb += [ekmem.r_en.eq(1), ekmem.r_data_en.eq(1), ekmem.w_data.eq(ek_in)]
        m.submodules.sexp = sexp = ScoreExp(score_width=f.score_width, diff_width=f.diff_width,
                                            scale_mant_bits=f.scale_mant_bits, scale_shift_bits=f.scale_shift_bits,
                                            exp_spec=f.exp_spec)
        m.submodules.pvacc = pvacc = PVAccumulator(p_shape=shape_of(f.exp_out_fmt), v_shape=signed(8),
                                                   acc_shape=shape_of(f.acc_fmt), d=f.d_h, lanes=L)
        m.submodules.norm = norm = Normalizer(recip_spec=f.recip_spec, acc_fmt=f.acc_fmt, out_fmt=f.out_fmt,
                                              d=f.d_h, lanes=L)
        smax = Signal(signed(f.score_width))
        den = Signal(shape_of(f.den_fmt))
        x_issue = Signal()                      # EXP: one kept key per cycle
        x_t = Signal(range(n_max))
        x_w = Signal(range(n_max))
        xv = delay_line(m, x_issue, self.EXP_LATENCY, "xv")
        p_issue = Signal()                      # PV: (kept key, chunk) per cycle
        p_t = Signal(range(n_max))
        p_c = Signal(range(C))
        pv = delay_line(m, p_issue, self.PV_LATENCY, "pv")
        pc = delay_line(m, p_c, self.PV_LATENCY, "pc")
        n_issue = Signal()                      # NORM: one chunk per cycle, stalled by o.ready
        n_c = Signal(range(C))
        o_cnt = Signal(range(C))
        stall = Signal()
        m.d.comb += stall.eq(self.o.valid & ~self.o.ready)
        kept = self.row_kept

        with m.FSM(name="back") as fsm:
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.sync += [x_issue.eq(1), x_t.eq(0), x_w.eq(0), kept.eq(self.kept), smax.eq(self.smax),
                                 den.eq(0)]
                    m.d.comb += pvacc.clear.eq(1)
                    m.next = "EXP"

            with m.State("EXP"):
                m.d.comb += self.sc_addr.eq(x_t)
                with issue_pass(m, issue=x_issue, t=x_t, last=kept - 1, pipe=xv):
                    m.d.sync += [p_issue.eq(1), p_t.eq(0), p_c.eq(0)]
                    m.next = "PV"

            with m.State("PV"):
                m.d.comb += ekmem.r_addr.eq(p_t)
                with issue_pass(m, issue=p_issue, t=p_t, last=kept - 1, pipe=pv, c=p_c, chunks=C):
                    m.d.sync += [n_issue.eq(1), n_c.eq(0), o_cnt.eq(0)]
                    m.next = "NORM"

            with m.State("NORM"), norm_pass(m, issue=n_issue, c=n_c, o_cnt=o_cnt, stall=stall,
                                            o_fire=self.o.valid & self.o.ready, chunks=C):
                m.d.comb += self.row_done.eq(1)
                m.d.sync += o_cnt.eq(0)
                m.next = "IDLE"
        m.d.comb += [self.idle.eq(fsm.ongoing("IDLE")), self.in_exp.eq(fsm.ongoing("EXP"))]

        # EXP datapath: ScoreExp (diff, ×scale, rounding shift, saturate, exp), exp list, den
        sc_d = Signal(score_entry_layout(self.aw, f.score_width))
        m.d.sync += sc_d.eq(self.sc_data)
        m.d.comb += [sexp.score.eq(self.sc_data.score), sexp.smax.eq(smax), sexp.scale_mant.eq(self.scale_mant),
                     sexp.scale_shift.eq(self.scale_shift), sexp.valid_in.eq(xv[1])]
        x_kb = delay_line(m, sc_d.kb, self.EXP_LATENCY - 2, "xkb")
        with m.If(sexp.valid_out):
            m.d.comb += [ekmem.w_en.eq(1), ekmem.w_addr.eq(x_w), ek_in.e.eq(sexp.y), ek_in.kb.eq(x_kb[-1])]
            m.d.sync += [x_w.eq(x_w + 1), den.eq(den + sexp.y)]

        # PV datapath: t2 ek word (ekmem's read register) -> V address -> t4 V word (vmem's read
        # register) -> the PVAccumulator's operand and product registers -> accumulate
        ek_d = ek_layout(ekmem.r_data)
        m.d.comb += self.v_addr.eq(ek_d.kb + pc[2])
        p_e = delay_line(m, ek_d.e, 2, "pv_e")[-1]
        m.d.comb += [pvacc.p.eq(p_e), pvacc.v.eq(self.v_data), pvacc.chunk.eq(pc[4]), pvacc.valid.eq(pv[4])]

        # NORM datapath: the Normalizer's reciprocal scalers straight into the output stream
        m.d.comb += [norm.acc.eq(pvacc.acc), norm.den.eq(den), norm.chunk.eq(n_c), norm.valid_in.eq(n_issue),
                     norm.en.eq(~stall if self._stall else 1), self.o.payload.data.eq(norm.result),
                     self.o.valid.eq(norm.valid_out),
                     self.o.payload.kept.eq(kept),
                     self.o_overflow.eq(self.o.valid & self.o.ready & norm.overflow)]
        return m


class Latte(_LatteParams, CheckedComponent):
    """One LATTE head (see the module docstring for the protocol and the passes): the front engine
    (:class:`LatteFront`) works on row i+1 while the back engine (:class:`LatteBack`) finishes row i."""

    FAULTS = LatteBack.FAULTS

    def __init__(self, *, n_max: int = 16, d_h: int = 16, lanes: int = 4, out_fmt: QFormat = QFormat(16, 8),
                 include_ll: bool = False) -> None:
        self._faults = faults.active(self)  # passed to the back engine, which is built later
        self._fmts = LatteFormats(d_h=d_h, n_max=n_max, out_fmt=out_fmt, include_ll=include_ll)
        self._lanes = lanes
        f = self._fmts
        chunk = ArrayLayout(signed(8), lanes)
        super().__init__({
            "q": In(stream.Signature(chunk)),
            "k": In(stream.Signature(chunk)),
            "v": In(stream.Signature(chunk)),
            "o": Out(stream.Signature(output_layout(f, lanes))),
            "n_keys": In(unsigned(f.count_width)),
            "n_queries": In(unsigned(16)),
            "tau": In(unsigned(f.tau_width)),
            "scale_mant": In(unsigned(f.scale_mant_bits)),
            "scale_shift": In(unsigned(f.scale_shift_bits)),
            "kept_count": Out(unsigned(f.count_width)),
            "kept_total": Out(unsigned(32)),
            "overflow": Out(1),
            "config_error": Out(1),
            "idle": Out(1),
        })

    @classmethod
    def check_params(cls, *, n_max: int, d_h: int, lanes: int, out_fmt: QFormat, include_ll: bool) -> None:
        check_positive_ints(n_max=n_max, d_h=d_h, lanes=lanes)
        if d_h % lanes:
            raise ValueError(f"lanes={lanes} must divide d_h={d_h}")
        if not isinstance(out_fmt, QFormat):
            raise TypeError(f"out_fmt must be a QFormat, not {out_fmt!r}")
        if not out_fmt.signed:
            raise ValueError("out_fmt must be signed")
        if not isinstance(include_ll, bool):
            raise TypeError(f"include_ll must be a bool, not {include_ll!r}")

    # -- parameters (fmts, lanes, chunks: _LatteParams) --------------------------------------------
    @property
    def n_max(self) -> int:
        return self._fmts.n_max

    @property
    def d_h(self) -> int:
        return self._fmts.d_h

    @property
    def out_fmt(self) -> QFormat:
        return self._fmts.out_fmt

    @property
    def include_ll(self) -> bool:
        return self._fmts.include_ll

    @property
    def formats(self) -> dict[str, QFormat]:
        return self._fmts.formats()

    # the engines are built on first use (by elaborate, or a test probing their ports, e.g.
    # ``front.est.est_en``), so that an inspected-only Latte creates no sub-components
    @cached_property
    def front(self) -> LatteFront:
        return LatteFront(fmts=self._fmts, lanes=self._lanes)

    @cached_property
    def back(self) -> LatteBack:
        with faults.injected(LatteBack, *self._faults):
            return LatteBack(fmts=self._fmts, lanes=self._lanes)

    # pipeline depths (cycles from issuing an item to its result being written); every memory
    # read is registered before it feeds logic (timing)
    @property
    def est_latency(self) -> int:
        return EstimateLanes.latency(self.lanes)

    @property
    def comp_latency(self) -> int:
        return CompensationLanes.latency(self.lanes, self.include_ll)

    FLAG_LATENCY = FilterPass.LATENCY
    MAX_LATENCY = EstimatePass.MAX_LATENCY
    EXP_LATENCY = LatteBack.EXP_LATENCY    # score list read, then the shared ScoreExp (8 + ExpUnit.LATENCY)
    PV_LATENCY = LatteBack.PV_LATENCY      # list read, register, V read, register, then PVAccumulator

    @classmethod
    def latencies_for(cls, *, lanes: int, include_ll: bool) -> dict[str, int]:
        """:meth:`cycle_latencies` from the two parameters it depends on (no component built)."""
        return {"est": EstimateLanes.latency(lanes), "max": cls.MAX_LATENCY, "flag": cls.FLAG_LATENCY,
                "comp": CompensationLanes.latency(lanes, include_ll), "exp": cls.EXP_LATENCY,
                "pv": cls.PV_LATENCY, "norm": LatteBack.NORM_LATENCY}

    def cycle_latencies(self) -> dict[str, int]:
        """The pipeline latencies of :func:`golden.latte_cycles.latte_cycles_per_head` (the head's
        cycle model without stalls): ``latte_cycles_per_head(n, kept_rows, chunks=self.chunks,
        latencies=self.cycle_latencies())``."""
        return self.latencies_for(lanes=self.lanes, include_ll=self.include_ll)

    def manifest_extra(self) -> dict:
        return {
            "lanes": self.lanes,
            "chunks": self.chunks,
            "exp": self._fmts.exp_spec.as_dict(),
            "recip": self._fmts.recip_spec.as_dict(),
            "tau_width": self._fmts.tau_width,
            "cycles_per_row": "max(front, back): front C + n*C + n + kept*C, back kept + kept*C + C, "
                              "plus pipeline fill (C = d_h/lanes)",
        }

    # -- hardware --------------------------------------------------------------------------------
    def elaborate(self, platform):
        m = Module()
        m.submodules.front = front = self.front
        m.submodules.back = back = self.back
        for name in ("q", "k", "v"):
            wiring.connect(m, wiring.flipped(getattr(self, name)), getattr(front, name))
        wiring.connect(m, back.o, wiring.flipped(self.o))
        m.d.comb += [
            front.n_keys.eq(self.n_keys), front.n_queries.eq(self.n_queries), front.tau.eq(self.tau),
            back.scale_mant.eq(self.scale_mant), back.scale_shift.eq(self.scale_shift),
            # the hand-over: an idle back takes the row's kept count and score maximum
            front.back_idle.eq(back.idle), front.back_in_exp.eq(back.in_exp),
            back.start.eq(front.start_back), back.kept.eq(front.kept), back.smax.eq(front.smax),
            # the back reads the front's score list and V buffer
            front.sc_addr.eq(back.sc_addr), back.sc_data.eq(front.sc_data),
            front.v_addr.eq(back.v_addr), back.v_data.eq(front.v_data),
            self.config_error.eq(front.config_error), self.idle.eq(front.idle),
            self.kept_count.eq(back.row_kept),
        ]
        # per-head figures: cleared by the head's first Q beat (before the first row can end)
        with m.If(front.head_start):
            m.d.sync += [self.kept_total.eq(0), self.overflow.eq(0)]
        with m.If(back.row_done):
            m.d.sync += self.kept_total.eq(self.kept_total + back.row_kept)
        with m.If(back.o_overflow):
            m.d.sync += self.overflow.eq(1)
        return m


# ---- registry ------------------------------------------------------------------------------------
from .registry import BlockSpec, Param, ParamError  # noqa: E402


def _validate(p: dict) -> None:
    if p["d_h"] % p["lanes"]:
        raise ParamError(f"parameter lanes={p['lanes']} out of range: expected a divisor of d_h={p['d_h']}")
    if p["out_frac"] >= p["out_width"]:
        raise ParamError(f"parameter out_frac={p['out_frac']} out of range: expected < out_width={p['out_width']}")


def latte_formats(*, n_max: int, d_h: int, out_width: int, out_frac: int, include_ll: bool,
                  **_: object) -> LatteFormats:
    """The block's formats from its registry parameters (for testbenches and benchmarks)."""
    return LatteFormats(d_h=d_h, n_max=n_max, out_fmt=QFormat(out_width, out_frac), include_ll=include_ll)


def build_latte(*, n_max: int, d_h: int, lanes: int, out_width: int, out_frac: int, include_ll: bool) -> Latte:
    return Latte(n_max=n_max, d_h=d_h, lanes=lanes, out_fmt=QFormat(out_width, out_frac), include_ll=include_ll)


BLOCKS = [
    BlockSpec(
        name="latte",
        description="LATTE head: 4-bit MSB estimate, threshold max - tau filter, compensated softmax·V",
        params=(
            Param("n_max", 16, "maximum keys per head (buffer depth)", min=1, max=1024),
            Param("d_h", 16, "head dimension", min=1, max=256),
            Param("lanes", 4, "estimation lanes (4x4 multipliers per cycle; divides d_h)", min=1, max=64),
            Param("out_width", 16, "output width (signed, saturating)", min=4, max=32),
            Param("out_frac", 8, "output fractional bits (units of V's raw values)", min=0, max=30),
            Param("include_ll", False, "add the Q_L·K_L term to the compensated score", kind=bool),
        ),
        build=build_latte,
        cocotb_module="sim.tb_latte",
        validate=_validate,
        fpga_params={"n_max": 128, "d_h": 64, "lanes": 8, "out_width": 16, "out_frac": 8, "include_ll": False},
    ),
]
