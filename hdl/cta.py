"""The CTA accelerator as one block: a whole attention head in RTL (seed 001 §IV-A Fig. 7, §V Table I;
DESIGN §4 "Mapping", §9). Golden model: :func:`golden.cta.cta_fixed_trace`; host data layout:
:mod:`golden.cta_host`.

Blocks: the b×d :class:`hdl.systolic_array.SystolicArray` (SA), the :class:`hdl.cim.ClusterIndexModule`
(CIM, whole codes per beat), the :class:`hdl.cag.CentroidAggregator` (CAG, d lanes: a token of d_in
elements is aggregated in ceil(d_in/d) runs, one per d-wide slice) and the
:class:`hdl.pag.ProbabilityAggregation` (PAG, b tiles), plus the on-chip memories of Fig. 7 (sizes
from the parameters, listed in the manifest): token buffers XQ / XKV, weights W^Q / W^K / W^V (one
d-wide word per column and pass), LSH directions, cluster tables CT0 / CT1 / CT2, centroids
C0 / C1 / C2 (one d-wide word per cluster and pass), the K̄V̄ buffer (one row per compressed key,
written b columns at a time) and the Ō buffer (one word per batch of b queries, written a row at
a time). CS and AP live in the PAG.

Sequencer (Table I): the array steps run one after another on the array issuer; the CAG and the
PAG have issuers of their own (own read ports, own FIFO credit) and run beside the array:

====== ==========================================================================================
LSH1   SA: hash X^KV with LSH_1 (d_in in passes) -> CIM -> CT1, k1
LSH0   SA: hash X^Q with LSH_0 -> CIM -> CT0, k0;  beside it the CAG: C1 = centroids of X^KV by CT1
       (one run per d-slice)
LSH2   SA: hash X^KV - C1[CT1] (left-edge subtractors) with LSH_2 -> CIM -> CT2, k2; its pass p
       needs C1's slice p only
CAG1   (the array waits for C1's next slice)
KV     SA: per b output columns of [W^K | W^V]: value registers = the weight columns, stream = the
       k1 rows of C1 with the biases b^K / b^V on the y lanes -> K̄V̄ buffer; beside it the CAG:
       C2 = centroids of the residuals by CT2
CAG2   (the array waits for C2, if the C1 half ended first)
KV     SA: the same with the k2 rows of C2 (no bias); beside it the CAG: C0 = centroids of X^Q by CT0
CAG0   (the array waits for C0, if K̄V̄ ended first)
Q      per batch of b queries: SA Q̄ = C0 W^Q + b^Q with the query shortcut,
SCORE  scores Q̄ K̄ᵀ/√d_h (max of the first k1 subtracted from the last k2) -> PAG CS,
PAG    the PAG over the n keys (two per cycle) runs beside the next batch's Q̄ (the value registers
       hold that Q̄ through the output phase, which does not use them); PAG counts the cycles the
       output phase waits for its AP
OUTPUT AP streamed straight into the SA output phase (x = V̄ rows) -> Ō buffer
READ   O[i] = Ō[CT0[i]] on the ``o`` stream, in query order
SWEEP  (not a step: cycles spent waiting for the CIM to sweep its memories, after reset and when its
       run-epoch counter wraps)
====== ==========================================================================================

The step counters count the cycles the sequencer spends in each step and add up to the run; the
cycle model is :func:`golden.cta_cycles.cta_step_cycles`.

Host interface: ``load`` (stream: target, address, up to d raw values; layout in
:mod:`golden.cta_host`), accepted while not busy; registers ``start``, ``m``, ``n``, ``d_in``,
``d_h``; ``busy``, ``done``, ``error`` (sizes refused: nothing runs); ``k0``, ``k1``, ``k2``; sticky
flags; ``cycles`` per step; ``o`` (stream, ``last`` on row m-1).

Fitting the blocks together: the SA's result stream has no ``ready``; the CIM (the only consumer
that could stall) is fed only when it is idle at the start of an LSH step and its output is always
accepted (the CT table write), so its ``ready`` cannot drop during a run; a result that arrives
while it is low would raise ``protocol_error``. The PAG's ``cs`` input is likewise only fed in its
load state. The hash width of the PPE and the CIM is one parameter (``hash_width``).

Sub-components (each its own :class:`wiring.Component`, tested alone in tests/test_cta_parts.py):
:class:`HostLoader` (``load`` -> memories and bias registers), :class:`Sequencer` (Table I),
:class:`ArrayIssuer` (items -> SA beats / ``o`` rows), :class:`CagIssuer` (C1 / C2 / C0 runs),
:class:`PagIssuer` (the keys' CT pairs), :class:`ResultRouter` (SA results -> CIM / CT tables, K̄V̄
buffer, PAG, Ō buffer), :class:`StepCounters` and :class:`StickyFlags`. They reach the memories
through memory-port signatures (:meth:`amaranth.lib.memory.ReadPort.Signature`); the memories and
the four blocks live in :class:`Cta`, which only wires.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any

from amaranth.hdl import Cat, Const, Module, Mux, Shape, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.memory import Memory, ReadPort, WritePort
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from golden.cag import default_recip_spec
from golden.cta_host import TARGETS, CtaShape, load_layout_widths
from golden.systolic import OP_DF1, OP_DF2, OP_LOAD, PH_LINEAR, PH_LSH, PH_OUTPUT, PH_SCORE

from .cag import CentroidAggregator, cag_input_layout, cag_output_layout
from .checked import CheckedComponent, ReadOnlyParam, check_positive_ints
from .cim import ClusterIndexModule, cim_input_layout, cim_latency, cim_sweep_cycles
from .fixed import index_bits, shape_of
from .pag import ProbabilityAggregation
from .systolic_array import SHORTCUT_GAP, SystolicArray, array_latencies, beat_layout, out_layout, res_layout

__all__ = ["Cta", "STEPS", "ArrayIssuer", "CagIssuer", "HostLoader", "PagIssuer", "ResultRouter", "Sequencer",
           "StepCounters", "StickyFlags", "connect_memories", "cta_cycle_latencies", "memory_words"]

#: sequencer steps, in order (index = cycle counter index)
STEPS = ("LSH1", "LSH0", "CAG1", "LSH2", "CAG2", "CAG0", "KV", "Q", "SCORE", "PAG", "OUTPUT", "READ", "SWEEP")
_S = {name: k for k, name in enumerate(STEPS)}


# x sources of a generated item
XS_ZERO, XS_XQ, XS_XKV, XS_W, XS_DIR, XS_C0, XS_C1, XS_C2, XS_KVK, XS_KVV = range(10)
# item kinds
K_SA, K_OUT = range(2)
# CAG runs the sequencer waits for
AUX_C2, AUX_C0 = range(2)
# CAG run selects (CagIssuer.sel)
SEL_C1, SEL_C2, SEL_C0 = range(3)
#: bits of the StickyFlags of a run, in order
FLAGS = ("sa_overflow", "cag_saturated", "pag_overflow", "protocol_error")
#: run-epoch bits of the CTA's CIM (its memories are swept every 2**bits - 1 runs)
CIM_EPOCH_BITS = 3


# ---- shapes and port signatures shared by the sub-components ------------------------------------------

def _check_shape(shape: Any) -> None:
    if not isinstance(shape, CtaShape):
        raise TypeError(f"shape must be a golden.cta_host.CtaShape, not {shape!r}")


def memory_words(shape: CtaShape) -> dict[str, tuple[Any, int]]:
    """(word shape, depth) of every on-chip memory of Fig. 7 (sizes from the parameters)."""
    cfg = shape.cfg
    b, d, l, P, N, K, G = cfg.b, cfg.d, shape.l, cfg.max_passes, shape.n_max, shape.clusters, shape.kv_groups
    tok = data.ArrayLayout(shape_of(cfg.token_fmt), d)
    qkv = data.ArrayLayout(shape_of(cfg.qkv_fmt), d)
    ct = unsigned(K.bit_length())          # holds the "no cluster" index K
    return {
        "xq": (tok, N * P), "xkv": (tok, N * P),
        "w": (data.ArrayLayout(shape_of(cfg.weight_fmt), d), 3 * P * d),
        "dir": (data.ArrayLayout(shape_of(cfg.dir_fmt), d), 3 * l * P),
        "c0": (qkv, K * P), "c1": (qkv, K * P), "c2": (qkv, K * P),
        "ct0": (ct, N), "ct1": (ct, N), "ct2": (ct, N),
        "kv": (data.ArrayLayout(data.ArrayLayout(shape_of(cfg.qkv_fmt), b), 2 * G), 2 * K),
        "obar": (data.ArrayLayout(data.ArrayLayout(shape_of(cfg.out_fmt), b), d), -(-K // b)),
    }


def _rd(shape: CtaShape, name: str) -> Any:
    """A read port of memory ``name`` as seen by its user (the port's own signature, flipped)."""
    word, depth = memory_words(shape)[name]
    return In(ReadPort.Signature(addr_width=ceil_log2(depth), shape=word))


def _wr(shape: CtaShape, name: str, granularity: int | None = None) -> Any:
    """A write port of memory ``name`` as seen by its user."""
    word, depth = memory_words(shape)[name]
    return In(WritePort.Signature(addr_width=ceil_log2(depth), shape=word, granularity=granularity))


def _valid_only(layout: Any) -> wiring.Signature:
    """A source without ``ready``: the receiver takes every item (as the SA's result streams)."""
    return wiring.Signature({"valid": Out(1), "payload": Out(layout)})


def load_layout(shape: CtaShape) -> data.StructLayout:
    """Payload of the host ``load`` stream (layout in :mod:`golden.cta_host`)."""
    w = load_layout_widths(shape)
    return data.StructLayout({"target": unsigned(3), "addr": unsigned(w["addr"]),
                              "data": data.ArrayLayout(signed(w["lane"]), shape.cfg.d)})


def output_layout(shape: CtaShape) -> data.StructLayout:
    """Payload of the ``o`` stream: one output row, ``last`` on row m-1."""
    return data.StructLayout({"data": data.ArrayLayout(shape_of(shape.cfg.out_fmt), shape.cfg.d),
                              "last": unsigned(1)})


def item_layout(shape: CtaShape) -> data.StructLayout:
    """An item the sequencer issues: an SA beat's control fields and ``y`` lanes plus where its ``x``
    lanes come from (``xsrc``, ``addr``), or (``kind`` = K_OUT) one output row to read."""
    cfg = shape.cfg
    addr_w = max(depth for _, depth in memory_words(shape).values()).bit_length()
    return data.StructLayout({
        "kind": unsigned(1), "op": unsigned(2), "col": unsigned(max(1, (cfg.b - 1).bit_length())),
        "phase": unsigned(2), "first": 1, "last": 1, "sub": 1, "shortcut": 1, "residual": 1,
        "scale": unsigned(cfg.inv_w_fmt.width), "accumulate": 1, "partial": 1,
        "xsrc": unsigned(4), "addr": unsigned(addr_w), "y": data.ArrayLayout(signed(cfg.y_width), cfg.b),
    })


def _ap_layout(shape: CtaShape) -> data.StructLayout:
    return data.StructLayout({"ap": data.ArrayLayout(shape_of(shape.cfg.ap_fmt), shape.cfg.b), "last": 1})


def _pag_ct_layout(shape: CtaShape) -> data.StructLayout:
    bits = index_bits(shape.clusters)
    return data.StructLayout({"ct1": data.ArrayLayout(unsigned(bits), 2), "ct2": data.ArrayLayout(unsigned(bits), 2)})


def connect_memories(m: Module, mems: dict[str, Memory], *units: wiring.Component) -> None:
    """Give every ``rd_<memory>[_<key>]`` / ``wr_<memory>`` member of ``units`` a port of its own on
    the memory of that name in ``mems``."""
    for unit in units:
        for member in unit.signature.members:
            kind, _, rest = member.partition("_")
            if kind in ("rd", "wr"):
                mem = mems[rest.split("_")[0]]
                port = getattr(unit, member)
                wiring.connect(m, port, mem.read_port() if kind == "rd" else
                               mem.write_port(granularity=port.signature.granularity))


class _ShapeComponent(CheckedComponent):
    """A sub-component configured by the block's :class:`golden.cta_host.CtaShape` alone."""

    def __init__(self, signature: dict, *, shape: CtaShape) -> None:
        self._shape = shape
        super().__init__(signature)

    shape = ReadOnlyParam[CtaShape]()

    @classmethod
    def check_params(cls, *, shape: Any, **_: Any) -> None:
        _check_shape(shape)


# ---- small generic parts ------------------------------------------------------------------------------

class StepCounters(CheckedComponent):
    """One cycle counter per sequencer step: counter ``step`` counts the cycles ``on`` is high;
    ``clear`` zeroes them all (and wins). A count shows a cycle ``LATENCY`` after it is counted."""

    LATENCY = 1

    def __init__(self, *, steps: int, width: int = 32) -> None:
        self._steps, self._width = steps, width
        super().__init__({
            "step": In(range(steps)), "on": In(1), "clear": In(1),
            "cycles": Out(data.ArrayLayout(unsigned(width), steps)),
        })

    steps = ReadOnlyParam[int]()
    width = ReadOnlyParam[int]()

    @classmethod
    def check_params(cls, *, steps: Any, width: Any) -> None:
        check_positive_ints(steps=steps, width=width)

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        with m.If(self.clear):
            m.d.sync += [self.cycles[k].eq(0) for k in range(self._steps)]
        with m.Elif(self.on):
            with m.Switch(self.step):
                for k in range(self._steps):
                    with m.Case(k):
                        m.d.sync += self.cycles[k].eq(self.cycles[k] + 1)
        return m


class StickyFlags(CheckedComponent):
    """``width`` sticky flags: flag k is high from the cycle after ``set[k]`` (``LATENCY``) until
    ``clear`` (which wins over ``set``)."""

    LATENCY = 1

    def __init__(self, *, width: int) -> None:
        self._width = width
        super().__init__({"set": In(width), "clear": In(1), "flags": Out(width)})

    width = ReadOnlyParam[int]()

    @classmethod
    def check_params(cls, *, width: Any) -> None:
        check_positive_ints(width=width)

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        with m.If(self.clear):
            m.d.sync += self.flags.eq(0)
        with m.Else():
            m.d.sync += self.flags.eq(self.flags | self.set)
        return m


# ---- host loading ----------------------------------------------------------------------------------------

class HostLoader(_ShapeComponent):
    """Host loading (``load``, accepted while ``busy`` is low): token, weight and direction words are
    written to their memories on the edge that accepts the beat; the linear biases, LSH biases and
    1/w go to registers that hold the value from the next cycle (``LATENCY``)."""

    LATENCY = 1
    #: the memories the host writes (target names of :data:`golden.cta_host.TARGETS`)
    MEMORIES = ("xq", "xkv", "w", "dir")

    def __init__(self, *, shape: CtaShape) -> None:
        cfg = shape.cfg
        super().__init__({
            "load": In(stream.Signature(load_layout(shape))),
            "busy": In(1),
            **{f"wr_{name}": _wr(shape, name) for name in self.MEMORIES},
            "lin_bias": Out(data.ArrayLayout(data.ArrayLayout(shape_of(cfg.lin_bias_fmt), cfg.d), 3)),
            "lsh_bias": Out(data.ArrayLayout(data.ArrayLayout(shape_of(cfg.bias_fmt), shape.l), 3)),
            "inv_w": Out(data.ArrayLayout(unsigned(cfg.inv_w_fmt.width), 3)),
        }, shape=shape)

    def elaborate(self, platform: Any) -> Module:
        d, l = self.shape.cfg.d, self.shape.l
        m = Module()
        ld = self.load.payload
        fire = self.load.valid & self.load.ready
        m.d.comb += self.load.ready.eq(~self.busy)
        for name in self.MEMORIES:
            wp = getattr(self, f"wr_{name}")
            m.d.comb += [wp.addr.eq(ld.addr), wp.en.eq(fire & (ld.target == TARGETS[name]))]
            m.d.comb += [wp.data[e].eq(ld.data[e]) for e in range(d)]
        with m.If(fire & (ld.target == TARGETS["lin_bias"])):
            for wsel in range(3):
                for t in range(d):
                    with m.If(ld.addr == wsel * d + t):
                        m.d.sync += self.lin_bias[wsel][t].eq(ld.data[0])
        with m.If(fire & (ld.target == TARGETS["lsh_param"])):
            for h in range(3):
                for c in range(l):
                    with m.If(ld.addr == h * l + c):
                        m.d.sync += self.lsh_bias[h][c].eq(ld.data[0])
                with m.If(ld.addr == 3 * l + h):
                    m.d.sync += self.inv_w[h].eq(ld.data[0])
        return m


# ---- the array issuer's datapath -------------------------------------------------------------------------

#: cycles an issuer's FIFO adds from its write to its consumer seeing the item: the FIFO write, the
#: ``SyncFIFOBuffered`` output register
ISSUER_FIFO_LATENCY = 2


class ArrayIssuer(_ShapeComponent):
    """The array issuer's datapath: an ``item`` from the sequencer -> CT reads (row ``row``) -> data
    reads (stage 0) -> the assembled SA beat or output row (stage 1) -> its register (stage 2) ->
    the ``sa`` / ``o`` FIFO -> the FIFO's output register. ``LATENCY``: from the cycle an item is
    issued to the cycle its consumer sees it. ``space`` is high while the FIFOs can take every item
    in flight plus one; the sequencer issues only then."""

    #: the CT read, the data read, the beat register, then the FIFO (:data:`ISSUER_FIFO_LATENCY`)
    LATENCY = 3 + ISSUER_FIFO_LATENCY
    FIFO_DEPTH = 8
    #: memories it reads (a read port each): the CT words of the item's row, then its data words
    READS = ("ct0", "ct1", "xq", "xkv", "w", "dir", "c0", "c1", "c2", "kv", "obar")

    def __init__(self, *, shape: CtaShape) -> None:
        cfg = shape.cfg
        super().__init__({
            "item": In(_valid_only(item_layout(shape))),
            "row": In(range(shape.n_max + 1)),
            "pass_idx": In(range(cfg.max_passes + 1)),
            **{f"rd_{name}": _rd(shape, name) for name in self.READS},
            "sa": Out(stream.Signature(beat_layout(cfg))),
            "o": Out(stream.Signature(output_layout(shape))),
            "space": Out(1),
        }, shape=shape)

    def elaborate(self, platform: Any) -> Module:
        sh = self.shape
        cfg = sh.cfg
        b, d, P, K, G, d_h = cfg.b, cfg.d, cfg.max_passes, sh.clusters, sh.kv_groups, sh.d_h
        lb = (b - 1).bit_length()
        m = Module()
        bl = beat_layout(cfg)
        o_l = output_layout(sh)
        m.submodules.sa_fifo = sa_fifo = SyncFIFOBuffered(width=bl.size, depth=self.FIFO_DEPTH)
        m.submodules.o_fifo = o_fifo = SyncFIFOBuffered(width=o_l.size, depth=self.FIFO_DEPTH)
        m.d.comb += [
            self.sa.valid.eq(sa_fifo.r_rdy), self.sa.payload.as_value().eq(sa_fifo.r_data),
            sa_fifo.r_en.eq(self.sa.ready),
            self.o.valid.eq(o_fifo.r_rdy), self.o.payload.as_value().eq(o_fifo.r_data), o_fifo.r_en.eq(self.o.ready),
        ]
        # stage 0 (g0): the CT words of the item's row arrive; stage 1 (g1): its data words arrive
        gen, gen_v = self.item.payload, self.item.valid
        g0, g1 = Signal(item_layout(sh)), Signal(item_layout(sh))
        g0_v, g1_v = Signal(), Signal()
        m.d.comb += [self.rd_ct0.addr.eq(self.row), self.rd_ct1.addr.eq(self.row)]
        m.d.sync += [g0.eq(gen), g0_v.eq(gen_v), g1.eq(g0), g1_v.eq(g0_v)]
        # Stage registers outside the descriptor (a comb copy of a register that stays constant from
        # time 0 is never evaluated by Icarus 11): the pass of g0, the CT data of g1.
        g0_pass = Signal(range(P + 1))
        m.d.sync += g0_pass.eq(self.pass_idx)
        ct_shape = unsigned(K.bit_length())
        g1_ct0, g1_ct1 = Signal(ct_shape, name="g1_ct0"), Signal(ct_shape, name="g1_ct1")
        m.d.sync += [g1_ct0.eq(self.rd_ct0.data), g1_ct1.eq(self.rd_ct1.data)]
        for name in ("xq", "xkv", "w", "dir", "c0", "c2", "kv"):
            m.d.comb += getattr(self, f"rd_{name}").addr.eq(g0.addr)
        # one C1 port: K̄V̄ reads C1 rows, LSH2 reads C1[CT1] for the residual (never in one beat)
        m.d.comb += [self.rd_c1.addr.eq(Mux(g0.residual, self.rd_ct1.data * P + g0_pass, g0.addr)),
                     self.rd_obar.addr.eq(self.rd_ct0.data >> lb)]
        fifo_level = Signal(range(4 * self.FIFO_DEPTH + 8))
        m.d.comb += fifo_level.eq(sa_fifo.level + o_fifo.level)
        # stage 2: the assembled beat / output row and its write enable, registered (timing: the data
        # reads' block-RAM clock-to-out and the source select no longer run into the FIFO's LUT RAM)
        sa_we, o_we = Signal(name="sa_we"), Signal(name="o_we")
        sa_wdata, o_wdata = Signal(sa_fifo.width, name="sa_wdata"), Signal(o_fifo.width, name="o_wdata")
        m.d.comb += self.space.eq(fifo_level + g0_v + g1_v + (sa_we | o_we) < self.FIFO_DEPTH)

        # assemble g1
        rkv = self.rd_kv.data
        kv_k = [rkv[gr][c] for gr in range(G) for c in range(b)][:d_h]
        kv_v = [rkv[G + gr][c] for gr in range(G) for c in range(b)][:d_h]
        sources = {XS_XQ: "xq", XS_XKV: "xkv", XS_W: "w", XS_DIR: "dir", XS_C0: "c0", XS_C1: "c1", XS_C2: "c2"}
        beat = Signal(bl)
        for e in range(d):
            x = Signal(signed(cfg.x_width), name=f"x_lane{e}")
            with m.Switch(g1.xsrc):
                for xs, name in sources.items():
                    with m.Case(xs):
                        m.d.comb += x.eq(getattr(self, f"rd_{name}").data[e])
                with m.Case(XS_KVK):
                    m.d.comb += x.eq(kv_k[e] if e < d_h else 0)
                with m.Case(XS_KVV):
                    m.d.comb += x.eq(kv_v[e] if e < d_h else 0)
                with m.Default():
                    m.d.comb += x.eq(0)
            m.d.comb += beat.x[e].eq(x)
        no_c1 = g1_ct1 == K                                  # a key without an LSH_1 cluster: centroid 0
        m.d.comb += [beat.c[e].eq(Mux(g1.residual & ~no_c1, self.rd_c1.data[e], 0)) for e in range(d)]
        m.d.comb += [beat.y[c].eq(g1.y[c]) for c in range(b)]
        m.d.comb += [getattr(beat, f).eq(getattr(g1, f)) for f in ("op", "col", "phase", "first", "last", "sub",
                                                                    "shortcut", "residual", "scale", "accumulate",
                                                                    "partial")]
        o_item = Signal(o_l)
        lane = g1_ct0[:lb] if lb else 0
        rob = self.rd_obar.data
        for r in range(d_h):
            m.d.comb += o_item.data[r].eq(rob[r].as_value().word_select(lane, cfg.out_fmt.width) if lb else rob[r][0])
        m.d.comb += o_item.last.eq(g1.last)
        m.d.sync += [sa_wdata.eq(beat.as_value()), sa_we.eq(g1_v & (g1.kind == K_SA)),
                     o_wdata.eq(o_item.as_value()), o_we.eq(g1_v & (g1.kind == K_OUT))]
        m.d.comb += [sa_fifo.w_data.eq(sa_wdata), sa_fifo.w_en.eq(sa_we),
                     o_fifo.w_data.eq(o_wdata), o_fifo.w_en.eq(o_we)]
        return m


# ---- the CAG and PAG issuers -----------------------------------------------------------------------------

class CagIssuer(_ShapeComponent):
    """The CAG's issuer: runs C1 (X^KV by CT1), C2 (the residuals X^KV - C1[CT1] by CT2) and C0 (X^Q
    by CT0) beside the array (Table I), with read ports and FIFO credit of its own. A run (``start``,
    ``sel``) aggregates its tokens one d-slice (pass ``p``) at a time: a pass issues the tokens,
    then waits for the CAG's last centroid; the centroids go to the C memory of the run. ``busy``
    falls the cycle after the last pass's last centroid. ``LATENCY``: from a token's issue to its
    FIFO write (the CT read, the data read); ``FIFO_DEPTH`` items wait for the CAG."""

    LATENCY = 2
    FIFO_DEPTH = 8
    #: memories it reads (a read port each)
    READS = ("ct0", "ct1", "ct2", "xq", "xkv", "c1")

    def __init__(self, *, shape: CtaShape) -> None:
        cfg, N, K = shape.cfg, shape.n_max, shape.clusters
        super().__init__({
            "start": In(1), "sel": In(2),
            "n": In(range(N + 1)), "m": In(range(N + 1)), "d_in": In(range(cfg.d_in_max + 1)),
            "busy": Out(1), "p": Out(range(cfg.max_passes + 1)),
            **{f"rd_{name}": _rd(shape, name) for name in self.READS},
            "o": Out(stream.Signature(cag_input_layout(cfg.d, K, cfg.token_fmt, cfg.qkv_fmt))),
            "res": In(stream.Signature(cag_output_layout(cfg.d, K, N, cfg.qkv_fmt))),
            **{f"wr_{name}": _wr(shape, name) for name in ("c0", "c1", "c2")},
        }, shape=shape)

    def elaborate(self, platform: Any) -> Module:
        sh = self.shape
        d, P, N, K = sh.cfg.d, sh.cfg.max_passes, sh.n_max, sh.clusters
        m = Module()
        cag_l = cag_input_layout(d, K, sh.cfg.token_fmt, sh.cfg.qkv_fmt)
        m.submodules.fifo = fifo = SyncFIFOBuffered(width=cag_l.size, depth=self.FIFO_DEPTH)
        m.d.comb += [self.o.valid.eq(fifo.r_rdy), self.o.payload.as_value().eq(fifo.r_data),
                     fifo.r_en.eq(self.o.ready)]
        busy, issuing = self.busy, Signal()
        sel = Signal(2)
        j, cnt = Signal(range(N + 1)), Signal(range(N + 1))
        p, pbase = self.p, Signal(range(P * d + d + 1))
        done = Signal()
        m.d.comb += done.eq(self.res.valid & self.res.payload.last)
        fire = Signal()
        # stage 0: the CT words of token j arrive; stage 1: its token (and C1) words arrive
        s0_v, s0_last, s0_sel, s0_pass = Signal(), Signal(), Signal(2), Signal(range(P + 1))
        s0_addr = Signal(range(N * P + 1))
        s1_v, s1_last, s1_sel, s1_ct, s1_noc1 = Signal(), Signal(), Signal(2), Signal(K.bit_length()), Signal()
        m.d.comb += fire.eq(issuing & (fifo.level + s0_v + s1_v < self.FIFO_DEPTH))
        rct = {name: getattr(self, f"rd_{name}") for name in ("ct0", "ct1", "ct2")}
        m.d.comb += [port.addr.eq(j) for port in rct.values()]
        m.d.sync += [s0_v.eq(fire), s0_last.eq(j == cnt - 1), s0_sel.eq(sel), s0_pass.eq(p), s0_addr.eq(j * P + p)]
        m.d.comb += [self.rd_xq.addr.eq(s0_addr), self.rd_xkv.addr.eq(s0_addr),
                     self.rd_c1.addr.eq(rct["ct1"].data * P + s0_pass)]
        m.d.sync += [s1_v.eq(s0_v), s1_last.eq(s0_last), s1_sel.eq(s0_sel),
                     s1_ct.eq(Mux(s0_sel == SEL_C0, rct["ct0"].data,
                                  Mux(s0_sel == SEL_C2, rct["ct2"].data, rct["ct1"].data))),
                     s1_noc1.eq(rct["ct1"].data == K)]
        residual = s1_sel == SEL_C2
        item = Signal(cag_l)
        m.d.comb += [item.index.eq(s1_ct), item.residual.eq(residual), item.last.eq(s1_last)]
        m.d.comb += [item.x[e].eq(Mux(s1_sel == SEL_C0, self.rd_xq.data[e], self.rd_xkv.data[e])) for e in range(d)]
        m.d.comb += [item.centroid[e].eq(Mux(residual & ~s1_noc1, self.rd_c1.data[e], 0)) for e in range(d)]
        m.d.comb += [fifo.w_data.eq(item.as_value()), fifo.w_en.eq(s1_v)]
        with m.If(self.start):
            m.d.sync += [busy.eq(1), issuing.eq(1), sel.eq(self.sel), j.eq(0), p.eq(0), pbase.eq(0),
                         cnt.eq(Mux(self.sel == SEL_C0, self.m, self.n))]
        with m.Elif(fire):
            with m.If(j == cnt - 1):
                m.d.sync += [issuing.eq(0), j.eq(0)]
            with m.Else():
                m.d.sync += j.eq(j + 1)
        with m.Elif(busy & ~issuing & done):
            with m.If(pbase + d >= self.d_in):
                m.d.sync += busy.eq(0)
            with m.Else():
                m.d.sync += [p.eq(p + 1), pbase.eq(pbase + d), issuing.eq(1)]
        # CAG outputs -> C memory of the run
        m.d.comb += self.res.ready.eq(1)
        for name, s in (("c1", SEL_C1), ("c2", SEL_C2), ("c0", SEL_C0)):
            wp = getattr(self, f"wr_{name}")
            m.d.comb += [wp.addr.eq(self.res.payload.index * P + p), wp.en.eq(self.res.valid & (sel == s))]
            m.d.comb += [wp.data[e].eq(self.res.payload.centroid[e]) for e in range(d)]
        return m


class PagIssuer(_ShapeComponent):
    """The PAG's issuer: the n keys' (CT1, CT2) index pairs, two keys per item, into the PAG's ``ct``
    stream through a FIFO, beside the next batch's Q̄ (Table I); ``busy`` from ``start`` until the
    last pair is issued. ``LATENCY``: from an item's issue to its FIFO write (the CT read, a
    register)."""

    LATENCY = 2
    FIFO_DEPTH = 8
    #: memories it reads (a read port each): CT1 and CT2 of keys j (a) and j + 1 (b)
    READS = ("ct1", "ct2", "ct1", "ct2")

    def __init__(self, *, shape: CtaShape) -> None:
        super().__init__({
            "start": In(1), "n": In(range(shape.n_max + 1)), "busy": Out(1),
            **{f"rd_{name}_{key}": _rd(shape, name) for key in "ab" for name in ("ct1", "ct2")},
            "o": Out(stream.Signature(_pag_ct_layout(shape))),
        }, shape=shape)

    def elaborate(self, platform: Any) -> Module:
        sh = self.shape
        m = Module()
        ct_l = _pag_ct_layout(sh)
        m.submodules.fifo = fifo = SyncFIFOBuffered(width=ct_l.size, depth=self.FIFO_DEPTH)
        m.d.comb += [self.o.valid.eq(fifo.r_rdy), self.o.payload.as_value().eq(fifo.r_data),
                     fifo.r_en.eq(self.o.ready)]
        busy = self.busy
        j = Signal(range(sh.n_max + 2))
        fire = Signal()
        s0_v, s1_v = Signal(), Signal()
        ct_shape = unsigned(sh.clusters.bit_length())
        item = Signal(ct_l)
        for k_off, key in enumerate("ab"):     # keys j, j + 1
            for lv in (1, 2):
                port = getattr(self, f"rd_ct{lv}_{key}")
                reg = Signal(ct_shape, name=f"s1_ct{lv}_{k_off}")
                m.d.comb += port.addr.eq(j + k_off)
                m.d.sync += reg.eq(port.data)
                m.d.comb += getattr(item, f"ct{lv}")[k_off].eq(reg)
        m.d.comb += fire.eq(busy & (fifo.level + s0_v + s1_v < self.FIFO_DEPTH))
        m.d.sync += [s0_v.eq(fire), s1_v.eq(s0_v)]
        m.d.comb += [fifo.w_data.eq(item.as_value()), fifo.w_en.eq(s1_v)]
        with m.If(self.start):
            m.d.sync += [busy.eq(1), j.eq(0)]
        with m.Elif(fire):
            with m.If(j + 2 >= self.n):
                m.d.sync += busy.eq(0)
            with m.Else():
                m.d.sync += j.eq(j + 2)
        return m


# ---- result routing --------------------------------------------------------------------------------------

class ResultRouter(_ShapeComponent):
    """The SA's results to their consumers: LSH codes -> CIM -> the CT table of level ``h`` (row
    ``ct_count``); K̄V̄ results (``kv_route``) -> the K̄V̄ buffer (row, column group ``kv_grp``: the
    k1 C1 rows of every group, then the k2 C2 rows); scores -> the PAG's ``cs``; output rows -> the
    Ō buffer (``rows_seen``). The counters move the cycle after a result (``LATENCY``) and their
    ``*_clear`` strobes win. ``sa_over``: an SA saturation on a column that holds data;
    ``protocol``: a consumer was not ready for a result."""

    LATENCY = 1

    def __init__(self, *, shape: CtaShape) -> None:
        cfg, N, K, G = shape.cfg, shape.n_max, shape.clusters, shape.kv_groups
        b = cfg.b
        super().__init__({
            "res": In(_valid_only(res_layout(cfg))), "out": In(_valid_only(out_layout(cfg))),
            "cim_i": Out(stream.Signature(cim_input_layout(shape.l, cfg.hash_fmt.width, True))),
            "cim_o": In(stream.Signature(unsigned(K.bit_length()))),
            "pag_cs": Out(stream.Signature(data.ArrayLayout(shape_of(cfg.score_fmt), b))),
            **{f"wr_{name}": _wr(shape, name) for name in ("ct0", "ct1", "ct2")},
            "wr_kv": _wr(shape, "kv", granularity=1), "wr_obar": _wr(shape, "obar", granularity=1),
            "h": In(2), "kv_route": In(1), "k1": In(range(K + 1)), "kk": In(range(2 * K + 1)),
            "ct_clear": In(1), "kv_clear": In(1), "ob_clear": In(1),
            "ct_count": Out(range(N + 1)), "kv_grp": Out(range(4 * G + 1)),
            "rows_seen": Out(range(cfg.d * (-(-K // b)) + 2)),
            "res_cols": In(range(b + 1)), "out_cols": In(range(b + 1)), "sc_cols": In(range(b + 1)),
            "sa_over": Out(1), "protocol": Out(1),
        }, shape=shape)

    def elaborate(self, platform: Any) -> Module:
        sh = self.shape
        b, d, l, K, G, d_h = sh.cfg.b, sh.cfg.d, sh.l, sh.clusters, sh.kv_groups, sh.d_h
        m = Module()
        res, outp = self.res, self.out
        # LSH results -> CIM (whole codes) -> CT table of the level
        m.d.comb += [self.cim_i.valid.eq(res.valid & (res.payload.phase == PH_LSH)), self.cim_o.ready.eq(1)]
        m.d.comb += [self.cim_i.payload.hash[k].eq(res.payload.data[k]) for k in range(l)]
        for level in range(3):
            wp = getattr(self, f"wr_ct{level}")
            m.d.comb += [wp.addr.eq(self.ct_count), wp.data.eq(self.cim_o.payload),
                         wp.en.eq(self.cim_o.valid & (self.h == level))]
        with m.If(self.ct_clear):
            m.d.sync += self.ct_count.eq(0)
        with m.Elif(self.cim_o.valid):
            m.d.sync += self.ct_count.eq(self.ct_count + 1)
        # K̄V̄ results -> K̄V̄ buffer (row, group): result group kv_grp < 2G is a C1-row group,
        # 2G <= kv_grp < 4G a C2-row group
        kv_row, kv_grp = Signal(range(2 * K + 1)), self.kv_grp
        kv_c1_res = kv_grp < 2 * G
        m.d.comb += [self.wr_kv.addr.eq(kv_row),
                     self.wr_kv.en.eq(Mux(res.valid & self.kv_route,
                                          1 << Mux(kv_c1_res, kv_grp, kv_grp - 2 * G).as_unsigned(), 0))]
        for gr in range(2 * G):
            m.d.comb += [self.wr_kv.data[gr][c].eq(res.payload.data[c]) for c in range(b)]
        with m.If(self.kv_clear):
            m.d.sync += [kv_row.eq(0), kv_grp.eq(0)]
        with m.Elif(res.valid & self.kv_route):
            with m.If(kv_row == Mux(kv_c1_res, self.k1, self.kk) - 1):
                m.d.sync += [kv_row.eq(Mux(kv_grp + 1 >= 2 * G, self.k1, 0)), kv_grp.eq(kv_grp + 1)]
            with m.Else():
                m.d.sync += kv_row.eq(kv_row + 1)
        # score results -> PAG CS
        m.d.comb += self.pag_cs.valid.eq(res.valid & (res.payload.phase == PH_SCORE))
        m.d.comb += [self.pag_cs.payload[c].eq(res.payload.data[c]) for c in range(b)]
        m.d.comb += self.protocol.eq((self.cim_i.valid & ~self.cim_i.ready) | (self.pag_cs.valid & ~self.pag_cs.ready))
        # output rows -> Ō buffer (batch, row)
        ob_batch, ob_rows = Signal(range(-(-K // b) + 1)), Signal(range(d + 1))
        m.d.comb += [self.wr_obar.addr.eq(ob_batch), self.wr_obar.en.eq(Mux(outp.valid, 1 << outp.payload.row, 0))]
        for r in range(d):
            m.d.comb += [self.wr_obar.data[r][c].eq(outp.payload.data[c]) for c in range(b)]
        with m.If(self.ob_clear):
            m.d.sync += [ob_batch.eq(0), ob_rows.eq(0), self.rows_seen.eq(0)]
        with m.Elif(outp.valid):
            m.d.sync += self.rows_seen.eq(self.rows_seen + 1)
            with m.If(ob_rows == d - 1):
                m.d.sync += [ob_rows.eq(0), ob_batch.eq(ob_batch + 1)]
            with m.Else():
                m.d.sync += ob_rows.eq(ob_rows + 1)
        # SA saturation on the columns that hold data; score results arrive during the next batch's
        # Q̄: their columns are those of the score phase
        res_cols_now = Mux(res.payload.phase == PH_SCORE, self.sc_cols, self.res_cols)
        res_mask = (Const(1, b + 1) << res_cols_now) - 1
        out_mask = (Const(1, b + 1) << self.out_cols) - 1
        out_over = outp.valid & (outp.payload.row < d_h) & (outp.payload.over & out_mask[:b]).any()
        m.d.comb += self.sa_over.eq((res.valid & (res.payload.over & res_mask[:b]).any()) | out_over)
        return m


# ---- the Table I sequencer -------------------------------------------------------------------------------

class Sequencer(_ShapeComponent):
    """The Table I sequencer (see the module docstring): the array steps one after another, issuing
    one ``item`` per cycle while the issuer has ``space``; it starts the CAG runs (``ca_start``,
    ``ca_sel``) and the PAG runs (``pg_start``) that run beside the array, and waits for them. It
    holds the run's sizes and cluster counts, says which step the cycle belongs to (``step``,
    ``step_on``), routes the results (``h``, ``kv_route``, ``*_cols``) and clears the router's
    counters, the step counters and the flags when a run starts. ``done`` / ``size_error`` /
    ``capacity_error`` / ``busy`` are registers (they change the cycle after ``start``)."""

    def __init__(self, *, shape: CtaShape) -> None:
        cfg, N, K, G = shape.cfg, shape.n_max, shape.clusters, shape.kv_groups
        b = cfg.b
        super().__init__({
            "start": In(1), "m": In(range(N + 1)), "n": In(range(N + 1)),
            "d_in": In(range(cfg.d_in_max + 1)), "d_h": In(range(cfg.d + 1)),
            "busy": Out(1), "done": Out(1), "size_error": Out(1), "capacity_error": Out(1),
            "k0": Out(range(K + 1)), "k1": Out(range(K + 1)), "k2": Out(range(K + 1)), "kk": Out(range(2 * K + 1)),
            "run_m": Out(range(N + 1)), "run_n": Out(range(N + 1)), "run_d_in": Out(range(cfg.d_in_max + 1)),
            "h": Out(2),
            "item": Out(_valid_only(item_layout(shape))), "row": Out(range(N + 1)),
            "p": Out(range(cfg.max_passes + 1)), "space": In(1),
            "lin_bias": In(data.ArrayLayout(data.ArrayLayout(shape_of(cfg.lin_bias_fmt), cfg.d), 3)),
            "lsh_bias": In(data.ArrayLayout(data.ArrayLayout(shape_of(cfg.bias_fmt), shape.l), 3)),
            "inv_w": In(data.ArrayLayout(unsigned(cfg.inv_w_fmt.width), 3)),
            "cim_idle": In(1), "cim_overflow": In(1), "cim_clusters": In(range(K + 1)),
            "cim_clear": Out(1), "cag_clear": Out(1),
            "ca_start": Out(1), "ca_sel": Out(2), "ca_busy": In(1), "ca_p": In(range(cfg.max_passes + 1)),
            "pg_start": Out(1), "pg_busy": In(1),
            "ap": In(stream.Signature(_ap_layout(shape))),
            "o_last": In(1),
            "ct_count": In(range(N + 1)), "kv_grp": In(range(4 * G + 1)),
            "rows_seen": In(range(cfg.d * (-(-K // b)) + 2)),
            "ct_clear": Out(1), "kv_clear": Out(1), "ob_clear": Out(1),
            "kv_route": Out(1), "res_cols": Out(range(b + 1)), "out_cols": Out(range(b + 1)),
            "sc_cols": Out(range(b + 1)),
            "step": Out(range(len(STEPS))), "step_on": Out(1), "cycles_clear": Out(1), "flags_clear": Out(1),
        }, shape=shape)

    def elaborate(self, platform: Any) -> Module:
        sh = self.shape
        cfg = sh.cfg
        d, P, N, K = cfg.d, cfg.max_passes, sh.n_max, sh.clusters
        m = Module()
        s = SimpleNamespace(
            p=self.p,                                 # pass
            pbase=Signal(range(P * d + d + 1)),       # p·d
            last_pass=Signal(),
            c=Signal(range(cfg.b + 1)),               # LOAD column
            j=Signal(range(2 * N + 2)),               # row / token / key / beat index
            cnt=Signal(range(2 * N + 1)),             # rows of the current stream
            grp=Signal(range(2 * sh.kv_groups + 1)),  # K̄V̄ column group (< G: K̄, else V̄)
            sb=Signal(range(K + cfg.b + 1)),          # first query of the current Q̄ / score batch
            out_pending=Signal(),      # a batch's output phase waits (its PAG runs beside the next Q̄)
            out_final=Signal(),        # ... and it is the last batch
            aux=Signal(2),             # the CAG run AUX_W waits for
            wait_rows=Signal(range(d * (-(-K // cfg.b)) + 1)),
            kv_half=Signal(),          # K̄V̄ issuing: 0 the C1 rows, 1 the C2 rows
        )
        m.d.comb += [s.last_pass.eq(s.pbase + d >= self.run_d_in), self.row.eq(s.j)]
        with m.FSM():
            self._idle(m)
            self._lsh_steps(m, s)
            self._kv_steps(m, s)
            self._batch_steps(m, s)
            self._read_steps(m, s)
        return m

    def _issue(self, m: Module, kind: int, **fields: Any) -> None:
        """Issue an item this cycle (fields not named are 0)."""
        m.d.comb += [self.item.valid.eq(1), self.item.payload.kind.eq(kind)]
        for name, value in fields.items():
            m.d.comb += getattr(self.item.payload, name).eq(value)

    @contextmanager
    def _after_last_pass(self, m: Module, s: SimpleNamespace, reload: str) -> Iterator[None]:
        """At the end of a pass of d_in: the body runs after the last pass (``p`` back to 0);
        otherwise the next pass starts in state ``reload``."""
        with m.If(s.last_pass):
            m.d.sync += [s.p.eq(0), s.pbase.eq(0)]
            yield
        with m.Else():
            m.d.sync += [s.p.eq(s.p + 1), s.pbase.eq(s.pbase + self.shape.cfg.d)]
            m.next = reload

    @contextmanager
    def _count_to(self, m: Module, ctr: Signal, last: Any) -> Iterator[None]:
        """One step of a loop over ``ctr`` = 0..``last``: ``ctr`` counts up; the body runs at ``last``
        (and resets or leaves)."""
        with m.If(ctr == last):
            yield
        with m.Else():
            m.d.sync += ctr.eq(ctr + 1)

    def _on(self, m: Module, step: Any) -> None:
        """This cycle counts towards ``step``."""
        m.d.comb += [self.step_on.eq(1), self.step.eq(step)]

    def _idle(self, m: Module) -> None:
        with m.State("IDLE"):
            with m.If(self.start):
                ok = (self.m >= 1) & (self.n >= 1) & (self.d_in >= 1) & (self.d_h == self.shape.d_h)
                m.d.comb += self.cycles_clear.eq(1)
                m.d.sync += [self.done.eq(0), self.size_error.eq(~ok), self.capacity_error.eq(0)]
                with m.If(ok):
                    m.d.comb += [self.cag_clear.eq(1), self.flags_clear.eq(1)]
                    m.d.sync += [self.busy.eq(1), self.run_n.eq(self.n), self.run_m.eq(self.m),
                                 self.run_d_in.eq(self.d_in), self.h.eq(1),
                                 self.k0.eq(0), self.k1.eq(0), self.k2.eq(0)]
                    m.next = "LSH_CLR"
                with m.Else():
                    m.d.sync += self.done.eq(1)
        with m.State("END"):      # (a run refused after LSH0 lets the CAG finish C1 first)
            with m.If(~self.ca_busy & ~self.pg_busy):
                m.d.sync += [self.busy.eq(0), self.done.eq(1)]
                m.next = "IDLE"

    def _lsh_steps(self, m: Module, s: SimpleNamespace) -> None:
        """LSH1, LSH0, LSH2: per pass, loads of l direction slices, then the tokens; then the CIM's
        result (k of the level, or a capacity overflow that ends the run)."""
        l, P, d = self.shape.l, self.shape.cfg.max_passes, self.shape.cfg.d
        h, p, c, j, cnt = self.h, s.p, s.c, s.j, s.cnt
        lsh_step = Mux(h == 1, _S["LSH1"], Mux(h == 0, _S["LSH0"], _S["LSH2"]))
        with m.State("LSH_CLR"):   # waiting for the CIM's memory sweep (after reset) counts as SWEEP
            self._on(m, Mux(self.cim_idle, lsh_step, _S["SWEEP"]))
            with m.If(self.cim_idle):
                m.d.comb += [self.cim_clear.eq(1), self.ct_clear.eq(1)]
                m.d.sync += [p.eq(0), s.pbase.eq(0), c.eq(0), j.eq(0), cnt.eq(Mux(h == 0, self.run_m, self.run_n))]
                m.next = "LSH_SWEEP"
        with m.State("LSH_SWEEP"):   # a clear that wraps the CIM's epoch counter starts a sweep
            self._on(m, Mux(self.cim_idle, lsh_step, _S["SWEEP"]))
            with m.If(self.cim_idle):
                m.next = "LSH_L"
        # LSH2's pass p subtracts C1's slice p: it starts when the CAG has finished that slice (the
        # cycles it waits count as CAG1)
        c1_slice_ready = (h != 2) | ~self.ca_busy | (self.ca_p > p)
        with m.State("LSH_L"):
            self._on(m, Mux(~c1_slice_ready, _S["CAG1"], lsh_step))
            m.d.comb += self.res_cols.eq(l)
            with m.If(self.space & c1_slice_ready):
                self._issue(m, K_SA, op=OP_LOAD, col=c, phase=PH_LSH, xsrc=XS_DIR, addr=(h * l + c) * P + p)
                for cc in range(l):
                    with m.If(c == cc):
                        m.d.comb += self.item.payload.y[cc].eq(
                            Mux(h == 0, self.lsh_bias[0][cc], Mux(h == 1, self.lsh_bias[1][cc], self.lsh_bias[2][cc])))
                with self._count_to(m, c, l - 1):
                    m.d.sync += [c.eq(0), j.eq(0)]
                    m.next = "LSH_T"
        with m.State("LSH_T"):
            self._on(m, lsh_step)
            m.d.comb += self.res_cols.eq(l)
            with m.If(self.space):
                self._issue(m, K_SA, op=OP_DF1, phase=PH_LSH, xsrc=Mux(h == 0, XS_XQ, XS_XKV), addr=j * P + p,
                            first=j == 0, last=j == cnt - 1, residual=h == 2,
                            scale=Mux(h == 0, self.inv_w[0], Mux(h == 1, self.inv_w[1], self.inv_w[2])),
                            accumulate=p != 0, partial=~s.last_pass)
                with self._count_to(m, j, cnt - 1):
                    with m.If(s.last_pass):
                        m.next = "LSH_W"
                    with m.Else():
                        m.d.sync += [p.eq(p + 1), s.pbase.eq(s.pbase + d), c.eq(0)]
                        m.next = "LSH_L"
        with m.State("LSH_W"):
            self._on(m, lsh_step)
            m.d.comb += self.res_cols.eq(l)
            with m.If((self.ct_count == cnt) & self.cim_idle):
                ks = {1: self.k1, 0: self.k0, 2: self.k2}
                with m.If(self.cim_overflow):   # the run stops; k of this level = its capacity
                    m.d.sync += self.capacity_error.eq(1)
                    with m.Switch(h):
                        for level in (1, 0):
                            with m.Case(level):
                                m.d.sync += ks[level].eq(self.cim_clusters)
                        with m.Default():
                            m.d.sync += ks[2].eq(self.cim_clusters)
                    m.next = "END"
                with m.Else():
                    m.d.sync += [p.eq(0), s.pbase.eq(0), j.eq(0)]
                    with m.Switch(h):
                        with m.Case(1):       # CT1 is complete: C1 on the CAG beside LSH0
                            m.d.comb += [self.ca_start.eq(1), self.ca_sel.eq(SEL_C1)]
                            m.d.sync += [self.k1.eq(self.cim_clusters), h.eq(0)]
                            m.next = "LSH_CLR"
                        with m.Case(0):       # LSH2 waits for C1 slice by slice (LSH_L)
                            m.d.sync += [self.k0.eq(self.cim_clusters), h.eq(2), c.eq(0)]
                            m.next = "LSH_CLR"
                        with m.Default():     # C2 on the CAG beside the C1 half of K̄V̄
                            m.d.comb += [self.ca_start.eq(1), self.ca_sel.eq(SEL_C2), self.kv_clear.eq(1)]
                            m.d.sync += [self.k2.eq(self.cim_clusters), self.kk.eq(self.k1 + self.cim_clusters),
                                         s.grp.eq(0), cnt.eq(self.k1), s.kv_half.eq(0), c.eq(0)]
                            m.next = "KV_L"

    def _kv_steps(self, m: Module, s: SimpleNamespace) -> None:
        """K̄V̄ (value registers = b weight columns, stream = the k1 + k2 centroid rows) and the waits
        for a CAG run (the array is idle: these cycles count as the CAG step)."""
        b, d, P, G, d_h = self.shape.cfg.b, self.shape.cfg.d, self.shape.cfg.max_passes, self.shape.kv_groups, \
            self.shape.d_h
        p, c, j, cnt, grp = s.p, s.c, s.j, s.cnt, s.grp
        with m.State("AUX_W"):   # (results of K̄V̄'s C1 half may still arrive while it waits for C2)
            c2 = s.aux == AUX_C2
            self._on(m, Mux(c2, _S["CAG2"], _S["CAG0"]))
            m.d.comb += [self.kv_route.eq(c2), self.res_cols.eq(Mux(c2, b, 0))]
            with m.If(~self.ca_busy):
                with m.Switch(s.aux):
                    with m.Case(AUX_C2):      # C0 on the CAG beside the C2 half of K̄V̄
                        m.d.comb += [self.ca_start.eq(1), self.ca_sel.eq(SEL_C0)]
                        m.d.sync += [grp.eq(0), cnt.eq(self.k2), s.kv_half.eq(1), p.eq(0), s.pbase.eq(0), c.eq(0),
                                     j.eq(0)]
                        m.next = "KV_L"
                    with m.Default():
                        m.d.comb += self.ob_clear.eq(1)
                        m.d.sync += [s.sb.eq(0), c.eq(0), p.eq(0), s.pbase.eq(0), s.wait_rows.eq(0),
                                     s.out_pending.eq(0), s.out_final.eq(0)]
                        m.next = "Q_L"
        kv_v = grp >= G
        t_base = Signal(range(2 * G * b + 1))
        m.d.comb += t_base.eq(Mux(kv_v, grp - G, grp) * b)
        wsel = Mux(kv_v, 2, 1)
        with m.State("KV_L"):
            self._on(m, _S["KV"])
            m.d.comb += [self.kv_route.eq(1), self.res_cols.eq(b)]
            with m.If(self.space):
                self._issue(m, K_SA, op=OP_LOAD, col=c, phase=PH_LINEAR,
                            xsrc=Mux(t_base + c < d_h, XS_W, XS_ZERO), addr=(wsel * P + p) * d + t_base + c)
                with self._count_to(m, c, b - 1):
                    m.d.sync += [c.eq(0), j.eq(0)]
                    m.next = "KV_T"
        with m.State("KV_T"):
            self._on(m, _S["KV"])
            m.d.comb += [self.kv_route.eq(1), self.res_cols.eq(b)]
            with m.If(self.space):
                c1_row = ~s.kv_half
                self._issue(m, K_SA, op=OP_DF1, phase=PH_LINEAR, xsrc=Mux(c1_row, XS_C1, XS_C2),
                            addr=j * P + p, first=j == 0, last=j == cnt - 1,
                            accumulate=p != 0, partial=~s.last_pass)
                for cc in range(b):
                    with m.If(s.last_pass & c1_row & (t_base + cc < d_h)):
                        for t in range(d_h):
                            with m.If(t_base + cc == t):
                                m.d.comb += self.item.payload.y[cc].eq(
                                    Mux(kv_v, self.lin_bias[2][t], self.lin_bias[1][t]))
                with self._count_to(m, j, cnt - 1):
                    m.d.sync += j.eq(0)
                    with self._after_last_pass(m, s, reload="KV_L"):
                        m.d.sync += grp.eq(grp + 1)
                        with m.If((grp == 2 * G - 1) & s.kv_half):
                            m.next = "KV_W"
                        with m.Elif(grp == 2 * G - 1):     # the C2 half needs C2
                            m.d.sync += s.aux.eq(AUX_C2)
                            m.next = "AUX_W"
                        with m.Else():
                            m.next = "KV_L"
        with m.State("KV_W"):
            self._on(m, _S["KV"])
            m.d.comb += [self.kv_route.eq(1), self.res_cols.eq(b)]
            with m.If(self.kv_grp == 4 * G):     # Q̄ needs C0
                m.d.sync += s.aux.eq(AUX_C0)
                m.next = "AUX_W"

    def _batch_steps(self, m: Module, s: SimpleNamespace) -> None:
        """Per batch of b queries: Q̄ (shortcut), scores -> PAG, the PAG beside the next Q̄, output."""
        b, d, d_h = self.shape.cfg.b, self.shape.cfg.d, self.shape.d_h
        P = self.shape.cfg.max_passes
        p, c, j, sb = s.p, s.c, s.j, s.sb
        k0, k1, kk = self.k0, self.k1, self.kk
        real = Signal(range(b + 1))
        m.d.comb += real.eq(Mux(k0 - sb >= b, b, k0 - sb))
        with m.State("Q_L"):
            self._on(m, _S["Q"])
            m.d.comb += [self.res_cols.eq(real), self.out_cols.eq(b)]
            with m.If(self.space):
                self._issue(m, K_SA, op=OP_LOAD, col=c, phase=PH_LINEAR, xsrc=Mux(sb + c < k0, XS_C0, XS_ZERO),
                            addr=(sb + c) * P + p)
                with self._count_to(m, c, b - 1):
                    m.d.sync += [c.eq(0), j.eq(0)]
                    m.next = "Q_T"
        with m.State("Q_T"):
            self._on(m, _S["Q"])
            m.d.comb += [self.res_cols.eq(real), self.out_cols.eq(b)]
            with m.If(self.space):
                self._issue(m, K_SA, op=OP_DF1, phase=PH_LINEAR, xsrc=XS_W, addr=p * d + j, first=j == 0,
                            last=j == d_h - 1, shortcut=s.last_pass, accumulate=p != 0, partial=~s.last_pass)
                for t in range(d_h):
                    with m.If(s.last_pass & (j == t)):
                        m.d.comb += [self.item.payload.y[cc].eq(self.lin_bias[0][t]) for cc in range(b)]
                with self._count_to(m, j, d_h - 1):
                    m.d.sync += j.eq(0)
                    with self._after_last_pass(m, s, reload="Q_L"):
                        with m.If(s.out_pending):   # the previous batch's output phase comes first
                            m.next = "OUT_T"
                        with m.Else():
                            m.next = "SC_T"
        with m.State("SC_T"):
            self._on(m, _S["SCORE"])
            m.d.comb += [self.res_cols.eq(real), self.out_cols.eq(b)]
            m.d.sync += self.sc_cols.eq(real)
            with m.If(self.space):
                self._issue(m, K_SA, op=OP_DF1, phase=PH_SCORE, xsrc=XS_KVK, addr=j, first=j == 0, last=j == kk - 1,
                            sub=j >= k1)
                with self._count_to(m, j, kk - 1):
                    # the PAG runs on this batch's CS beside the next batch's Q̄ (Table I)
                    m.d.comb += self.pg_start.eq(1)
                    m.d.sync += [j.eq(0), s.out_pending.eq(1)]
                    with m.If(sb + b >= k0):
                        m.d.sync += s.out_final.eq(1)
                        m.next = "OUT_T"
                    with m.Else():
                        m.d.sync += [sb.eq(sb + b), c.eq(0)]
                        m.next = "Q_L"
        with m.State("OUT_T"):    # cycles waiting for the PAG's AP count as the PAG step
            self._on(m, Mux(self.ap.valid, _S["OUTPUT"], _S["PAG"]))
            m.d.comb += [self.res_cols.eq(real), self.out_cols.eq(b)]
            with m.If(self.space & self.ap.valid):
                m.d.comb += self.ap.ready.eq(1)
                self._issue(m, K_SA, op=OP_DF2, phase=PH_OUTPUT, xsrc=XS_KVV, addr=j, first=j == 0, last=j == kk - 1)
                m.d.comb += [self.item.payload.y[cc].eq(self.ap.payload.ap[cc]) for cc in range(b)]
                with self._count_to(m, j, kk - 1):
                    m.d.sync += [j.eq(0), s.wait_rows.eq(s.wait_rows + d), s.out_pending.eq(0)]
                    with m.If(s.out_final):
                        m.next = "OUT_W"
                    with m.Else():
                        m.next = "SC_T"
        with m.State("OUT_W"):
            self._on(m, _S["OUTPUT"])
            m.d.comb += self.out_cols.eq(b)
            with m.If(self.rows_seen == s.wait_rows):
                m.d.sync += j.eq(0)
                m.next = "READ"

    def _read_steps(self, m: Module, s: SimpleNamespace) -> None:
        """O[i] = Ō[CT0[i]] in query order."""
        j = s.j
        with m.State("READ"):
            self._on(m, _S["READ"])
            with m.If(self.space):
                self._issue(m, K_OUT, last=j == self.run_m - 1)
                with self._count_to(m, j, self.run_m - 1):
                    m.next = "READ_W"
        with m.State("READ_W"):
            self._on(m, _S["READ"])
            with m.If(self.o_last):
                m.next = "END"


# ---- the block -------------------------------------------------------------------------------------------

def cta_cycle_latencies(shape: CtaShape) -> dict[str, int]:
    """The latency constants :func:`golden.cta_cycles.cta_step_cycles` models a run of a block of
    ``shape`` with (read without building any block)."""
    _check_shape(shape)
    cfg = shape.cfg
    arr = array_latencies(cfg)
    return {"cim_sweep": cim_sweep_cycles(l=shape.l, hash_width=cfg.hash_fmt.width, k_max=shape.clusters),
            "cim_epochs": (1 << CIM_EPOCH_BITS) - 1,
            "issue_latency": ArrayIssuer.LATENCY, "fifo_depth": ArrayIssuer.FIFO_DEPTH,
            "cag_issue_latency": CagIssuer.LATENCY + ISSUER_FIFO_LATENCY,
            "pag_issue_latency": PagIssuer.LATENCY + ISSUER_FIFO_LATENCY,
            "res_latency": arr["res"], "out_latency": arr["out"],
            "cim_latency": cim_latency(shape.l), "shortcut_gap": SHORTCUT_GAP,
            "cag_tail": CentroidAggregator.FLUSH_LATENCY + CentroidAggregator.CAVG_LATENCY,
            "pag_readout": ProbabilityAggregation.READOUT_LATENCY}


class Cta(_ShapeComponent):
    """See the module docstring. ``shape``: :class:`golden.cta_host.CtaShape` (SA configuration,
    hash length, capacities, exp unit)."""

    FIFO_DEPTH = ArrayIssuer.FIFO_DEPTH
    #: cycles from the sequencer issuing an item (cycle t) to its consumer seeing it (t + 5): the CT
    #: read, the data read, the beat register, the FIFO write, the FIFO's output register
    ISSUE_LATENCY = ArrayIssuer.LATENCY

    def __init__(self, *, shape: CtaShape) -> None:
        cfg = shape.cfg
        kk = shape.clusters
        super().__init__({
            "load": In(stream.Signature(load_layout(shape))),
            "o": Out(stream.Signature(output_layout(shape))),
            "start": In(1),
            "m": In(range(shape.n_max + 1)), "n": In(range(shape.n_max + 1)),
            "d_in": In(range(cfg.d_in_max + 1)), "d_h": In(range(cfg.d + 1)),
            "busy": Out(1), "done": Out(1), "size_error": Out(1), "capacity_error": Out(1),
            "k0": Out(range(kk + 1)), "k1": Out(range(kk + 1)), "k2": Out(range(kk + 1)),
            "sa_overflow": Out(1), "cag_saturated": Out(1), "pag_overflow": Out(1), "protocol_error": Out(1),
            "cycles": Out(data.ArrayLayout(unsigned(32), len(STEPS))),
        }, shape=shape)

    def cycle_latencies(self) -> dict[str, int]:
        """The latency constants :func:`golden.cta_cycles.cta_step_cycles` models the run with
        (:func:`cta_cycle_latencies` gives them without a block)."""
        return cta_cycle_latencies(self._shape)

    @property
    def formats(self) -> dict:
        return {**self._shape.cfg.formats(), "exp_in": self._shape.exp_spec.in_fmt,
                "exp_out": self._shape.exp_spec.out_fmt}

    def memories(self) -> dict[str, dict[str, int]]:
        """On-chip memories: words, bits per word and total bits (the manifest lists them)."""
        cfg = self._shape.cfg
        table = {name: (depth, Shape.cast(word).width) for name, (word, depth) in memory_words(self._shape).items()}
        table["psum (per PPE, x b)"] = (cfg.psum_depth, (cfg.acc_width + 1) * cfg.b)
        # read ports (a simple-dual-port block RAM has one: each further port is a copy): the array's
        # generator, the CAG issuer, the PAG issuer (two keys per item)
        reads = [*ArrayIssuer.READS, *CagIssuer.READS, *PagIssuer.READS]
        return {name: {"words": w, "word_bits": bits, "bits": w * bits, "read_ports": max(1, reads.count(name))}
                for name, (w, bits) in table.items()}

    def manifest_extra(self) -> dict:
        from golden.cta_host import TARGETS

        mems = self.memories()
        return {
            "memories": mems, "memory_bits_total": sum(v["bits"] for v in mems.values()),
            "steps": list(STEPS),
            "host": {
                "load_targets": TARGETS,
                "load_addresses": {"xq": "i*P + p", "xkv": "j*P + p", "w": "(w*P + p)*d + t (w: 0 Q, 1 K, 2 V)",
                                   "dir": "(h*l + c)*P + p", "lin_bias": "w*d + t (data[0])",
                                   "lsh_param": "h*l + c: bias (data[0]); 3*l + h: 1/w (data[0])",
                                   "P": self._shape.cfg.max_passes},
                "registers": ["start", "m", "n", "d_in", "d_h", "busy", "done", "size_error", "capacity_error",
                              "k0", "k1", "k2", "sa_overflow", "cag_saturated", "pag_overflow", "protocol_error",
                              "cycles[step]"],
                "output": "o: m rows of d lanes (first d_h meaningful), last on row m-1",
            },
            "decisions": [
                "SA results have no ready: the CIM is fed only from an idle start and its output is always "
                "accepted, so its ready stays high; a drop would raise protocol_error",
                "one hash width (hash_width, default 4) for the PPE saturation and the CIM: the CIM's layer "
                "memories grow as parents x 2**hash_width (8 bits: 131072 words per layer at n_max = 512)",
                "a cluster-capacity overflow ends the run after that LSH step with capacity_error and no output",
                "d_h is a generation parameter (the 1/sqrt(d_h) constant); a run with another d_h is refused",
            ],
        }

    def elaborate(self, platform: Any) -> Module:
        sh = self._shape
        cfg = sh.cfg
        N, K = sh.n_max, sh.clusters
        m = Module()

        # ---- blocks and memories (Fig. 7) --------------------------------------------------------------
        m.submodules.sa = sa = SystolicArray(cfg=cfg)
        m.submodules.cim = cim = ClusterIndexModule(l=sh.l, hash_width=cfg.hash_fmt.width, n_max=N, k_max=K,
                                                    epoch_bits=CIM_EPOCH_BITS, internal_skew=True)
        m.submodules.cag = cag = CentroidAggregator(d=cfg.d, k_max=K, n_max=N, token_fmt=cfg.token_fmt,
                                                    centroid_fmt=cfg.qkv_fmt, recip_spec=default_recip_spec(N))
        m.submodules.pag = pag = ProbabilityAggregation(b=cfg.b, k1_max=K, k2_max=K, n_max=N, cs_fmt=cfg.score_fmt,
                                                        exp_spec=sh.exp_spec, ap_fmt=cfg.ap_fmt)
        mems = {name: Memory(shape=word, depth=depth, init=[]) for name, (word, depth) in memory_words(sh).items()}
        for name, mem in mems.items():
            m.submodules[f"mem_{name}"] = mem

        # ---- sub-components ------------------------------------------------------------------------------
        m.submodules.loader = loader = HostLoader(shape=sh)
        m.submodules.seq = seq = Sequencer(shape=sh)
        m.submodules.issuer = issuer = ArrayIssuer(shape=sh)
        m.submodules.cag_issuer = cag_issuer = CagIssuer(shape=sh)
        m.submodules.pag_issuer = pag_issuer = PagIssuer(shape=sh)
        m.submodules.router = router = ResultRouter(shape=sh)
        m.submodules.counters = counters = StepCounters(steps=len(STEPS))
        m.submodules.flags = flags = StickyFlags(width=len(FLAGS))

        connect_memories(m, mems, loader, issuer, cag_issuer, pag_issuer, router)

        # ---- streams --------------------------------------------------------------------------------------
        wiring.connect(m, wiring.flipped(self.load), loader.load)
        wiring.connect(m, seq.item, issuer.item)
        wiring.connect(m, issuer.sa, sa.i)
        wiring.connect(m, issuer.o, wiring.flipped(self.o))
        wiring.connect(m, sa.res, router.res)
        wiring.connect(m, sa.out, router.out)
        wiring.connect(m, router.cim_i, cim.i)
        wiring.connect(m, cim.o, router.cim_o)
        wiring.connect(m, router.pag_cs, pag.cs)
        wiring.connect(m, cag_issuer.o, cag.i)
        wiring.connect(m, cag.o, cag_issuer.res)
        wiring.connect(m, pag_issuer.o, pag.ct)
        wiring.connect(m, pag.ap, seq.ap)

        # ---- control ----------------------------------------------------------------------------------------
        m.d.comb += [
            # host registers and status
            seq.start.eq(self.start), seq.m.eq(self.m), seq.n.eq(self.n), seq.d_in.eq(self.d_in),
            seq.d_h.eq(self.d_h),
            self.busy.eq(seq.busy), self.done.eq(seq.done), self.size_error.eq(seq.size_error),
            self.capacity_error.eq(seq.capacity_error),
            self.k0.eq(seq.k0), self.k1.eq(seq.k1), self.k2.eq(seq.k2),
            loader.busy.eq(seq.busy),
            seq.lin_bias.eq(loader.lin_bias), seq.lsh_bias.eq(loader.lsh_bias), seq.inv_w.eq(loader.inv_w),
            seq.o_last.eq(self.o.valid & self.o.ready & self.o.payload.last),
            # array issuer
            issuer.row.eq(seq.row), issuer.pass_idx.eq(seq.p), seq.space.eq(issuer.space),
            # CIM
            cim.clear.eq(seq.cim_clear), seq.cim_idle.eq(cim.idle), seq.cim_overflow.eq(cim.overflow),
            seq.cim_clusters.eq(cim.n_clusters),
            # CAG runs
            cag.clear.eq(seq.cag_clear),
            cag_issuer.start.eq(seq.ca_start), cag_issuer.sel.eq(seq.ca_sel), cag_issuer.n.eq(seq.run_n),
            cag_issuer.m.eq(seq.run_m), cag_issuer.d_in.eq(seq.run_d_in),
            seq.ca_busy.eq(cag_issuer.busy), seq.ca_p.eq(cag_issuer.p),
            # PAG runs
            pag.k1.eq(seq.k1), pag.k2.eq(seq.k2), pag.n.eq(seq.run_n),
            pag_issuer.start.eq(seq.pg_start), pag_issuer.n.eq(seq.run_n), seq.pg_busy.eq(pag_issuer.busy),
            # result routing
            router.h.eq(seq.h), router.kv_route.eq(seq.kv_route), router.k1.eq(seq.k1), router.kk.eq(seq.kk),
            router.ct_clear.eq(seq.ct_clear), router.kv_clear.eq(seq.kv_clear), router.ob_clear.eq(seq.ob_clear),
            seq.ct_count.eq(router.ct_count), seq.kv_grp.eq(router.kv_grp), seq.rows_seen.eq(router.rows_seen),
            router.res_cols.eq(seq.res_cols), router.out_cols.eq(seq.out_cols), router.sc_cols.eq(seq.sc_cols),
            # step counters and flags (sticky within a run)
            counters.step.eq(seq.step), counters.on.eq(seq.step_on), counters.clear.eq(seq.cycles_clear),
            self.cycles.eq(counters.cycles),
            flags.clear.eq(seq.flags_clear),
            flags.set.eq(Cat(router.sa_over, cag.saturated,
                             pag.add_overflow.any() | pag.exp_overflow.any() | pag.ap_overflow.any() | pag.index_error,
                             router.protocol)),
            self.sa_overflow.eq(flags.flags[0]), self.cag_saturated.eq(flags.flags[1]),
            self.pag_overflow.eq(flags.flags[2]),
            self.protocol_error.eq(flags.flags[3] | sa.protocol_error | cim.protocol_error),
        ]
        return m


# ---- registry ------------------------------------------------------------------------------------------

def _cta_params() -> tuple:
    from .registry import Param
    from .systolic_array import ARRAY_PARAMS

    skip = {"b", "d", "d_in_max", "psum_depth", "d_h"}
    return (
        Param("b", 8, "SA width: columns (batch of b centroids / queries)", min=1, max=64, power_of_two=True),
        Param("d", 64, "SA height: rows (dot-product length per pass)", min=2, max=256),
        Param("l", 6, "hash length: LSH functions per level (<= b)", min=1, max=64),
        Param("n_max", 512, "longest sequence (m and n)", min=2, max=4096),
        Param("k_max", 0, "cluster capacity per LSH level (0: n_max)", min=0, max=4096),
        Param("d_in_max", 1024, "longest model dimension d_in (runs in ceil(d_in / d) passes)", min=1, max=65536),
        Param("d_h", 0, "head dimension (0: d); the run's d_h must equal it (1/sqrt(d_h) is a constant)",
              min=0, max=256),
        Param("hash_width", 4, "hash values, in the PPE (saturating) and the CIM (its layer memories hold "
              "parents x 2**hash_width entries: 4 bits keep them small)", min=2, max=12),
        *(p for p in ARRAY_PARAMS if p.name not in skip | {"hash_width"}),
    )


def shape_from_params(p: dict) -> CtaShape:
    """:class:`golden.cta_host.CtaShape` of the ``cta`` block parameters."""
    from .systolic_array import config_from_params

    k = p["k_max"] or p["n_max"]
    cfg = config_from_params({**p, "psum_depth": max(p["n_max"], 2 * k)})
    return CtaShape(cfg=cfg, l=p["l"], n_max=p["n_max"], k_max=p["k_max"])


def params_from_shape(shape: CtaShape) -> dict:
    """Block parameters of ``shape`` (inverse of :func:`shape_from_params`)."""
    from .systolic_array import params_from_config

    p = params_from_config(shape.cfg)
    p.pop("psum_depth")
    p.update(l=shape.l, n_max=shape.n_max, k_max=shape.k_max)
    if shape_from_params(p) != shape:
        raise ValueError("CtaShape has settings that are not block parameters (psum_depth, exp unit)")
    return p


def _validate(p: dict) -> None:
    from .registry import ParamError
    from .systolic_array import validate_params

    if p["d_h"] > p["d"]:
        raise ParamError(f"parameter d_h={p['d_h']} out of range: expected <= d={p['d']}")
    if p["k_max"] > p["n_max"]:
        raise ParamError(f"parameter k_max={p['k_max']} out of range: expected <= n_max={p['n_max']}")
    if p["l"] > p["b"]:
        raise ParamError(f"parameter l={p['l']} out of range: expected <= b={p['b']} (one hash function per column)")
    validate_params({**p, "psum_depth": max(p["n_max"], 2 * (p["k_max"] or p["n_max"]))})
    try:
        shape_from_params(p)
    except (TypeError, ValueError) as exc:
        raise ParamError(f"parameter {str(exc).replace('CtaShape ', '')}") from None


def _build(**p) -> Cta:
    return Cta(shape=shape_from_params(p))


def _blocks() -> list:
    from .registry import BlockSpec

    return [BlockSpec(
        name="cta",
        description="CTA accelerator: SA + CIM + CAG + PAG + on-chip memories, Table I sequencer, one head per run",
        params=_cta_params(),
        build=_build,
        cocotb_module="sim.tb_cta",
        validate=_validate,
        # b=2, d=8 routes with router2 on every seed since the PAG's AP memories are LUT-RAM banks
        # (synth/REPORT.md run 16: 64.4-68.4 MHz; before, with the AP memories in flip-flops, it
        # filled 40 % of the LFE5U-85F's comb sites and router2 diverged on most seeds); b=4, d=8
        # and b=4, d=16 did not route then (64 % / 84 %)
        fpga_params={"b": 2, "d": 8, "l": 2, "n_max": 64, "d_in_max": 64},
        # nextpnr's default router (router1) still had ~226,000 overused wires after 47,000
        # iterations on b=4, d=8; router2 gets much further, synth/REPORT.md
        nextpnr_args=("--router", "router2"),
    )]


BLOCKS = _blocks()
