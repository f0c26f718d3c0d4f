"""CTA probability aggregation module (PAG, seed 001 §IV-B(4), Fig. 9 right; DESIGN §3 step 7).

``b`` tiles, one per compressed-query row of the current batch, all driven by the same cluster
tables: a beat of the ``ct`` stream carries two tokens ``j, j+1`` (``x1 = CT1[j]``,
``x2 = k1 + CT2[j]``, ``x3 = CT1[j+1]``, ``x4 = k1 + CT2[j+1]``), so each tile runs two
inner-loop iterations per cycle with two ADD_EXP units (saturating add of two CS values, then
the shared :class:`hdl.arith.ExpUnit`) and two probability-merge units.

Storage is split by region: ``CS1``/``AP1`` hold columns ``[0, k1)`` (addressed by CT1) and
``CS2``/``AP2`` columns ``[k1, k1+k2)`` (addressed by CT2), so ``x1``/``x3`` only ever meet in
region 1 and ``x2``/``x4`` in region 2 (``x1 != x4`` always). One word of each memory holds the
entries of all ``b`` tiles (they share every address; only the values differ).

Per batch: (LOAD) ``k1 + k2`` beats of the ``cs`` stream, beat ``t`` = ``CS[0..b-1][t]``;
(RUN) ``ceil(n/2)`` beats of the ``ct`` stream, the last one holding one token if ``n`` is odd;
(DRAIN) until the last update is written; (READOUT) ``k1 + k2`` beats of the ``ap`` stream,
beat ``t`` = ``AP[0..b-1][t]`` with ``last`` on the final one. The config ports ``k1``, ``k2``,
``n`` must be stable from the first CS beat of a batch to its last AP beat.

Update pipeline (cycle 0 = the ct beat's transfer; no stalls, bubbles carry valid = 0):

====  =====================================================================================
 c0   CS read addresses = the beat's cluster indices (sync read ports)
 c1   ADD: CS1[x] + CS2[y], requantise/saturate into the exp input format (registered)
 c2.. ExpUnit (``L = ExpUnit.LATENCY`` cycles, c2 .. c1+L), merge decisions ``x1 == x3`` /
      ``x2 == x4`` computed alongside
 cM   (M = 2 + L) MERGE: lane a carries ``e0 + e1`` when the addresses match, lane b is
      dropped; AP reads; one-hot operand selects for cM+1 (address compares against the ACC
      and W stages)
 cM+1 ACC: operand = AP read data, or forwarded in-flight value (W or W2 stage), + update,
      saturate on the carry out (sticky flag one cycle later)
 cM+2 W: write both lanes (distinct addresses after merging); W2 keeps them one more cycle
====  =====================================================================================

``UPDATE_LATENCY`` = M + 3 = 5 + ``ExpUnit.LATENCY`` (``PagIssue.LATENCY`` = M, then
``PagApControl.WRITE_LATENCY`` = 2 to the write, committed at the end of that cycle).
A read issued at cM sees writes committed up to the end of cM-1 (read ports are not
transparent), so the two younger in-flight writes (stage W: written at the end of this cycle;
stage W2: written at the end of the previous cycle, after our read) are forwarded. AP entries
never written in the current batch read as 0 through a ``written`` bitmap cleared at batch start.

Parts (submodules; the parent holds the CS1/CS2/AP1/AP2 memories and wires them; AP1/AP2 have
two write and two read ports each and are :class:`hdl.multiport.MultiPortMemory` banks with a
live-value table, which go to FPGA RAM where a two-write-port ``Memory`` would be flip-flops):
:class:`PagSequencer` ``seq`` (LOAD/RUN/DRAIN/READOUT, CS writes, readout walk),
:class:`PagIssue` ``issue`` (control c0 .. cM: index checks, merge decisions),
:class:`PagApControl` ``apctl`` (control cM .. cM+2: AP reads, forwarding selects, write-back,
``written`` bitmaps) and ``b`` :class:`PagTile` ``tile<c>`` (the values: ADD_EXP, MERGE, ACC).
"""

from __future__ import annotations

import functools
import operator

from amaranth.hdl import Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from golden.fixed import QFormat
from golden.lut import ExpSpec
from golden.pag import check_pag_formats

from . import faults
from .arith import ExpUnit
from .checked import CheckedComponent
from .fixed import index_bits, round_shift_const, saturate, shape_of
from .multiport import MultiPortMemory
from .primitives import LUTRAM_MAX_DEPTH

__all__ = ["PagApControl", "PagIssue", "PagSequencer", "PagTile", "ProbabilityAggregation", "pag_ct_layout",
           "pag_formats_from_params"]

# One-hot operand sources of the ACC stage (per lane; none set = never written = 0): memory,
# in-flight writes of the same region's lanes a/b in stage W, then in stage W2.
SEL_MEM, SEL_W_A, SEL_W_B, SEL_W2_A, SEL_W2_B = range(5)
SEL_BITS = 5
# Lanes: 0 = region 1 / token j (x1), 1 = region 1 / token j+1 (x3),
#        2 = region 2 / token j (x2), 3 = region 2 / token j+1 (x4).
LANES = 4
#: the CS memories' read latency (c0 address -> c1 data)
CS_READ_LATENCY = 1


def pag_ct_layout(k1_max: int, k2_max: int) -> data.StructLayout:
    """A ``ct`` beat (two tokens' cluster indices); also the four lane addresses of the AP control."""
    return data.StructLayout({"ct1": data.ArrayLayout(unsigned(index_bits(k1_max)), 2),
                              "ct2": data.ArrayLayout(unsigned(index_bits(k2_max)), 2)})


def _lane(view: data.View, lane: int):
    """Lane ``lane`` (order of ``LANES``) of a :func:`pag_ct_layout` view."""
    return (view.ct1, view.ct2)[lane // 2][lane % 2]


def _check_ints(**values: object) -> None:
    for name, value in values.items():
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError(f"{name} must be an int, not {value!r}")
        if value < 1:
            raise ValueError(f"{name}={value} out of range: expected >= 1")


class PagTile(CheckedComponent):
    """Datapath of one PAG tile: two ADD_EXP units, two merge units, four AP accumulate lanes.

    Addresses, merge decisions and forwarding selects come from the shared control
    (:class:`PagIssue`, :class:`PagApControl`); the tile holds the values. Port timing (see module
    doc): ``cs*``/``valid_*`` at c1, ``merge*`` at cM = c1 + ``MERGE_DELAY``, ``rd``/``sel``/``act``
    at cM+1, ``new`` = stage W (c1 + ``LATENCY``).
    """

    #: cycles from the CS words (c1) to the merge inputs (cM): the ADD register and the ExpUnit
    MERGE_DELAY = 1 + ExpUnit.LATENCY
    #: cycles from the CS words (c1) to the updated AP words on ``new`` (stage W = cM+2)
    LATENCY = MERGE_DELAY + 2

    def __init__(self, *, cs_fmt: QFormat, exp_spec: ExpSpec, ap_fmt: QFormat) -> None:
        self._cs_fmt, self._exp_spec, self._ap_fmt = cs_fmt, exp_spec, ap_fmt
        cs_shape, ap_shape = shape_of(cs_fmt), shape_of(ap_fmt)
        super().__init__({
            "cs1_a": In(cs_shape), "cs2_a": In(cs_shape), "cs1_b": In(cs_shape), "cs2_b": In(cs_shape),
            "valid_a": In(1), "valid_b": In(1),
            "merge1": In(1), "merge2": In(1),
            "rd": In(data.ArrayLayout(ap_shape, LANES)),
            "sel": In(data.ArrayLayout(unsigned(SEL_BITS), LANES)),
            "act": In(LANES),
            "new": Out(data.ArrayLayout(ap_shape, LANES)),
            "clear_flags": In(1),
            "add_overflow": Out(1), "exp_overflow": Out(1), "ap_overflow": Out(1),
        })

    @classmethod
    def check_params(cls, *, cs_fmt: QFormat, exp_spec: ExpSpec, ap_fmt: QFormat) -> None:
        check_pag_formats(cs_fmt, exp_spec, ap_fmt)

    def elaborate(self, platform):
        m = Module()
        cs_fmt, spec, ap_fmt = self._cs_fmt, self._exp_spec, self._ap_fmt

        # ADD (c1): exact sum, requantised into the exp input format, registered.
        add_events = []
        exps = []
        for lane, (s1, s2, valid) in enumerate(((self.cs1_a, self.cs2_a, self.valid_a),
                                               (self.cs1_b, self.cs2_b, self.valid_b))):
            total = s1 + s2
            shifted = round_shift_const(total, cs_fmt.frac - spec.in_fmt.frac, spec.in_fmt.rounding)
            x, over = saturate(shifted, spec.in_fmt)
            x_q = Signal(shape_of(spec.in_fmt), name=f"exp_in_{lane}")
            v_q = Signal(name=f"exp_valid_{lane}")
            over_q = Signal(name=f"add_over_{lane}")
            m.d.sync += [x_q.eq(x), v_q.eq(valid), over_q.eq(over & valid)]
            add_events.append(over_q)
            unit = ExpUnit(spec=spec)
            m.submodules[f"add_exp{lane}"] = unit
            m.d.comb += [unit.x.eq(x_q), unit.valid_in.eq(v_q)]
            exps.append(unit)

        # MERGE (cM): same-address updates of one cycle become one update on lane a.
        e0, e1 = exps[0].y, exps[1].y
        both = Signal(unsigned(spec.out_fmt.width + 1))
        m.d.comb += both.eq(e0 + e1)
        upd = Signal(data.ArrayLayout(unsigned(spec.out_fmt.width + 1), LANES))
        m.d.sync += [
            upd[0].eq(Mux(self.merge1, both, e0)),
            upd[1].eq(e1),
            upd[2].eq(Mux(self.merge2, both, e0)),
            upd[3].eq(e1),
        ]
        exp_event = Signal()
        m.d.comb += exp_event.eq((exps[0].overflow & exps[0].valid_out) | (exps[1].overflow & exps[1].valid_out))

        # ACC (cM+1): operand = AND-OR of the registered one-hot select (memory / in-flight W, W2
        # values; 0 if none), add, saturate on the carry out -> stage W. Timing-critical loop.
        w2 = Signal(data.ArrayLayout(shape_of(ap_fmt), LANES))
        m.d.sync += w2.eq(self.new)
        ap_w = ap_fmt.width
        max_raw = Const(ap_fmt.max_int, unsigned(ap_w))
        ap_events = []
        for lane in range(LANES):
            base = lane & ~1  # first lane of this lane's region
            sources = (self.rd[lane], self.new[base], self.new[base + 1], w2[base], w2[base + 1])
            operand = Signal(unsigned(ap_w), name=f"operand_{lane}")
            m.d.comb += operand.eq(functools.reduce(
                operator.or_, [src & self.sel[lane][k].replicate(ap_w) for k, src in enumerate(sources)]))
            total = Signal(unsigned(ap_w + 1), name=f"sum_{lane}")
            m.d.comb += total.eq(operand + upd[lane])
            over = total[ap_w]  # operand <= max and upd < 2**ap_w: the carry out is the overflow
            m.d.sync += self.new[lane].eq(Mux(over, max_raw, total[:ap_w]))
            event = Signal(name=f"ap_over_{lane}")
            m.d.sync += event.eq(over & self.act[lane])
            ap_events.append(event)
        ap_event = Signal()
        m.d.comb += ap_event.eq(Cat(*ap_events).any())

        for flag, event in ((self.add_overflow, Cat(*add_events).any()), (self.exp_overflow, exp_event),
                            (self.ap_overflow, ap_event)):
            with m.If(self.clear_flags):
                m.d.sync += flag.eq(0)
            with m.Elif(event):
                m.d.sync += flag.eq(1)
        return m


def _pipeline_stage(m: Module, name: str, xs: list, vs: list, v_name: str) -> tuple[list[Signal], list[Signal]]:
    """One register stage of lane addresses ``xs`` and valids ``vs`` (``{name}_x<i>``, ``{name}_<v_name><i>``)."""
    xr = [Signal(len(x), name=f"{name}_x{i}") for i, x in enumerate(xs)]
    vr = [Signal(name=f"{name}_{v_name}{i}") for i in range(len(vs))]
    m.d.sync += [a.eq(b) for a, b in zip(xr + vr, list(xs) + list(vs), strict=True)]
    return xr, vr


class _PagCapacities(CheckedComponent):
    """Capacities ``k1_max``/``k2_max`` shared by the PAG and its control parts (checked before creation)."""

    def _keep(self, k1_max: int, k2_max: int) -> None:
        self._k1_max, self._k2_max = k1_max, k2_max
        self._ct_layout = pag_ct_layout(k1_max, k2_max)

    @classmethod
    def check_params(cls, *, k1_max: int, k2_max: int) -> None:
        _check_ints(k1_max=k1_max, k2_max=k2_max)

    @property
    def k1_max(self) -> int:
        return self._k1_max

    @property
    def k2_max(self) -> int:
        return self._k2_max


class PagSequencer(_PagCapacities):
    """Batch phases of the PAG (LOAD, RUN, DRAIN, READOUT; module doc) and the CS load.

    LOAD accepts ``k1 + k2`` ``cs`` beats (only with a valid configuration, else ``config_error``)
    and writes beat ``t`` to CS1[t] / CS2[t - k1] one cycle later (``cs_we`` bit = region,
    ``cs_addr``, ``cs_data``); ``batch_start`` is high the cycle after the first beat. RUN accepts
    ``ceil(n/2)`` ct beats (``ct_ready``); ``tok_valid`` marks the tokens of the beat being
    transferred. DRAIN waits ``update_latency - 1`` cycles. READOUT walks ``ro_idx`` over region 1
    then region 2 while ``advance`` (the ``ap`` register can load); ``ap_valid`` / ``ap_last`` /
    ``ap_region2`` describe the word read one cycle earlier. The first ``ap`` beat is valid
    :attr:`readout_latency` cycles after the last ct beat.
    """

    #: cycles from the end of DRAIN to the first ``ap`` beat being valid (the AP read is registered)
    READOUT_DELAY = 1

    def __init__(self, *, b: int, k1_max: int, k2_max: int, n_max: int, cs_fmt: QFormat,
                 update_latency: int) -> None:
        self._keep(k1_max, k2_max)
        self._b, self._n_max, self._update_latency = b, n_max, update_latency
        depth = max(k1_max, k2_max)
        super().__init__({
            "k1": In(range(k1_max + 1)), "k2": In(range(k2_max + 1)), "n": In(range(n_max + 1)),
            "config_error": Out(1),
            "cs": In(stream.Signature(data.ArrayLayout(shape_of(cs_fmt), b))),
            "cs_we": Out(2), "cs_addr": Out(range(depth)), "cs_data": Out(b * cs_fmt.width),
            "ct_valid": In(1), "ct_ready": Out(1), "tok_valid": Out(2),
            "batch_start": Out(1),
            "readout": Out(1), "advance": Out(1), "ro_idx": Out(range(depth)),
            "ap_valid": Out(1), "ap_ready": In(1), "ap_last": Out(1), "ap_region2": Out(1),
        })

    @classmethod
    def check_params(cls, *, b: int, k1_max: int, k2_max: int, n_max: int, cs_fmt: QFormat,
                     update_latency: int) -> None:
        _check_ints(b=b, k1_max=k1_max, k2_max=k2_max, n_max=n_max, update_latency=update_latency)
        if update_latency < 2:
            raise ValueError(f"update_latency={update_latency} out of range: expected >= 2")
        if not isinstance(cs_fmt, QFormat):
            raise TypeError(f"cs_fmt must be a QFormat, not {cs_fmt!r}")

    @property
    def readout_latency(self) -> int:
        """Cycles from the last ct beat's transfer to the first ``ap`` beat being valid."""
        return self._update_latency + self.READOUT_DELAY

    def elaborate(self, platform):
        m = Module()
        cfg_ok = ((self.k1 >= 1) & (self.k1 <= self._k1_max) & (self.k2 >= 1) & (self.k2 <= self._k2_max)
                  & (self.n >= 1) & (self.n <= self._n_max))
        m.d.comb += self.config_error.eq(~cfg_ok)
        load_idx = Signal.like(self.cs_addr, name="load_idx")
        load_in2 = Signal()
        tokens = Signal(range(self._n_max + 2))
        drain = Signal(range(self._update_latency))
        ro_in2 = Signal()
        ro_done = Signal()
        m.d.comb += self.advance.eq(~self.ap_valid | self.ap_ready)
        take_cs = self.cs.valid & self.cs.ready
        take_ct = self.ct_valid & self.ct_ready
        last_beat = tokens + 2 >= self.n
        m.d.comb += self.tok_valid.eq(Cat(take_ct, take_ct & (tokens + 1 < self.n)))

        with m.FSM(name="phase") as fsm:
            with m.State("LOAD"):
                with m.If(take_cs):
                    with m.If(~load_in2 & (load_idx == self.k1 - 1)):
                        m.d.sync += [load_in2.eq(1), load_idx.eq(0)]
                    with m.Elif(load_in2 & (load_idx == self.k2 - 1)):
                        m.d.sync += [load_in2.eq(0), load_idx.eq(0), tokens.eq(0)]
                        m.next = "RUN"
                    with m.Else():
                        m.d.sync += load_idx.eq(load_idx + 1)
            with m.State("RUN"):
                with m.If(take_ct):
                    m.d.sync += tokens.eq(tokens + 2)
                    with m.If(last_beat):
                        m.d.sync += drain.eq(self._update_latency - 2)
                        m.next = "DRAIN"
            with m.State("DRAIN"):
                m.d.sync += drain.eq(drain - 1)
                with m.If(drain == 0):
                    m.d.sync += [self.ro_idx.eq(0), ro_in2.eq(0), ro_done.eq(0)]
                    m.next = "READOUT"
            with m.State("READOUT"):
                with m.If(self.advance):
                    m.d.sync += [self.ap_valid.eq(~ro_done), self.ap_region2.eq(ro_in2),
                                 self.ap_last.eq(ro_in2 & (self.ro_idx == self.k2 - 1))]
                    with m.If(~ro_done):
                        with m.If(~ro_in2 & (self.ro_idx == self.k1 - 1)):
                            m.d.sync += [ro_in2.eq(1), self.ro_idx.eq(0)]
                        with m.Elif(ro_in2 & (self.ro_idx == self.k2 - 1)):
                            m.d.sync += ro_done.eq(1)
                        with m.Else():
                            m.d.sync += self.ro_idx.eq(self.ro_idx + 1)
                with m.If(self.ap_valid & self.ap_ready & self.ap_last):
                    m.d.sync += self.ap_valid.eq(0)
                    m.next = "LOAD"

        # Plain assigns (not FSM-case processes): Icarus does not run an ``always @*`` whose only
        # inputs keep their initial values, which would leave a ready output X until the state moves.
        m.d.comb += [
            self.cs.ready.eq(fsm.ongoing("LOAD") & cfg_ok),
            self.ct_ready.eq(fsm.ongoing("RUN")),
            self.readout.eq(fsm.ongoing("READOUT")),
        ]
        # Registered (high fanout: every bitmap bit and flag); takes effect the cycle after the
        # first CS beat, still before the earliest ct beat (k1 + k2 >= 2 CS beats).
        m.d.sync += self.batch_start.eq(take_cs & ~load_in2 & (load_idx == 0))
        # The CS write is registered (timing: the LUT-RAM write enables fan out widely; they no
        # longer hang off the phase FSM and cs.ready).
        m.d.sync += [self.cs_we.eq(Cat(take_cs & ~load_in2, take_cs & load_in2)), self.cs_addr.eq(load_idx),
                     self.cs_data.eq(self.cs.payload.as_value())]
        return m


class PagIssue(_PagCapacities):
    """Shared control pipeline c0 .. cM of the PAG tiles (module doc): checks the ct beat's
    indices against ``k1``/``k2`` (a bad token is dropped and raises the sticky ``index_error``,
    cleared by ``batch_start``), carries the four lane addresses and the two token valids to cM
    and decides the merges (``x1 == x3``, ``x2 == x4``) on the way.

    Outputs: ``valid`` at c1 (the tiles' ADD stage); ``addr``, ``tok``, ``merge`` and ``act`` (lane
    valids after merging: lane b of a merged region carries nothing) at cM = c0 + ``LATENCY``.
    """

    #: deliberate faults (:mod:`hdl.faults`); :class:`ProbabilityAggregation` passes its own down
    FAULTS = {"no_merge": "equal clusters of the two halves are not merged (two updates of one word)"}
    #: cycles from the ct beat (c0) to its tokens' valids at the tiles' ADD stage (c1)
    VALID_LATENCY = CS_READ_LATENCY
    #: cycles from the ct beat (c0) to cM, where the tiles merge: M = 2 + ExpUnit.LATENCY
    LATENCY = VALID_LATENCY + PagTile.MERGE_DELAY

    def __init__(self, *, k1_max: int, k2_max: int) -> None:
        self._keep(k1_max, k2_max)
        self._merge = "no_merge" not in faults.active(self)
        super().__init__({
            "k1": In(range(k1_max + 1)), "k2": In(range(k2_max + 1)),
            "ct": In(self._ct_layout), "tok_valid": In(2),
            "batch_start": In(1),
            "valid": Out(2),
            "addr": Out(self._ct_layout), "tok": Out(2), "merge": Out(2), "act": Out(LANES),
            "index_error": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        ct, k1, k2 = self.ct, self.k1, self.k2
        ok = [(ct.ct1[i] < k1) & (ct.ct2[i] < k2) for i in range(2)]
        bad = Cat(*[self.tok_valid[i] & ~ok[i] for i in range(2)]).any()
        bad_q = Signal()
        m.d.sync += bad_q.eq(bad)
        with m.If(self.batch_start):
            m.d.sync += self.index_error.eq(0)
        with m.Elif(bad_q):
            m.d.sync += self.index_error.eq(1)

        def stage(name: str, xs, vs):
            return _pipeline_stage(m, name, xs, vs, "v")

        x1s, v1s = stage("p1", [_lane(ct, i) for i in range(LANES)],
                         [self.tok_valid[i] & ok[i] for i in range(2)])
        x2s, v2s = stage("p2", x1s, v1s)
        mg2 = [Signal(name=f"p2_merge{r + 1}") for r in range(2)]
        m.d.sync += [mg2[r].eq(v1s[0] & v1s[1] & (x1s[2 * r] == x1s[2 * r + 1]) & self._merge) for r in range(2)]
        xs, vs, mg = x2s, v2s, mg2
        for s in range(3, self.LATENCY + 1):  # follow the tiles' ExpUnit to cM
            xs, vs = stage(f"p{s}", xs, vs)
            mgn = [Signal(name=f"p{s}_merge{r + 1}") for r in range(2)]
            m.d.sync += [mgn[r].eq(mg[r]) for r in range(2)]
            mg = mgn
        m.d.comb += [self.valid.eq(Cat(*v1s)), self.tok.eq(Cat(*vs)), self.merge.eq(Cat(*mg)),
                     self.act.eq(Cat(vs[0], vs[1] & ~mg[0], vs[0], vs[1] & ~mg[1]))]
        m.d.comb += [_lane(self.addr, i).eq(xs[i]) for i in range(LANES)]
        return m


class PagApControl(_PagCapacities):
    """AP memory control of the PAG (cM .. cM+2, module doc): AP read addresses at cM (port a of
    each region also serves the readout at ``ro_idx``), the one-hot operand selects ``sel`` of
    the tiles' ACC stage at cM+1 (memory word, or the newest in-flight write of the same address
    in stage W or W2; none: never written this batch, 0), the write-back addresses and enables
    at cM+2, and the per-region ``written`` bitmaps (cleared by ``batch_start``).
    ``ro_written``: the readout word read at the previous ``advance`` was written this batch.
    """

    #: deliberate faults (:mod:`hdl.faults`); :class:`ProbabilityAggregation` passes its own down
    FAULTS = {"no_forward": "no forwarding of the AP word being written back"}
    #: cycles from the lane addresses (cM) to the operand selects / ACC stage (cM+1)
    SEL_LATENCY = 1
    #: cycles from the lane addresses (cM) to their write-back (cM+2, committed at its end)
    WRITE_LATENCY = 2

    def __init__(self, *, k1_max: int, k2_max: int) -> None:
        self._keep(k1_max, k2_max)
        self._forward = "no_forward" not in faults.active(self)
        depth = max(k1_max, k2_max)
        super().__init__({
            "addr": In(self._ct_layout), "act": In(LANES),
            "batch_start": In(1),
            "readout": In(1), "advance": In(1), "ro_idx": In(range(depth)),
            "rd_addr": Out(self._ct_layout), "rd_en": Out(LANES),
            "sel": Out(data.ArrayLayout(unsigned(SEL_BITS), LANES)), "acc_act": Out(LANES),
            "wr_addr": Out(self._ct_layout), "wr_en": Out(LANES),
            "ro_written": Out(2),
        })

    def elaborate(self, platform):
        m = Module()
        depths = (self._k1_max, self._k2_max)
        xms = [_lane(self.addr, i) for i in range(LANES)]

        # ---- cM: AP reads ----------------------------------------------------------------------
        written = [Signal(d, name=f"written{r + 1}") for r, d in enumerate(depths)]
        for i in range(LANES):
            region = i // 2
            if i % 2 == 0:  # port a also serves the readout (entries never written read as 0)
                addr = Mux(self.readout, self.ro_idx, xms[i])
                en = Mux(self.readout, self.advance, 1)
                with m.If(en):
                    m.d.sync += self.ro_written[region].eq(written[region].bit_select(addr, 1))
            else:
                addr, en = xms[i], Const(1)
            m.d.comb += [_lane(self.rd_addr, i).eq(addr), self.rd_en[i].eq(en)]

        # ---- cM+1 / cM+2: the lanes' addresses and valids in stages ACC, W, W2 --------------------
        def stage(name: str, xs, ls):
            return _pipeline_stage(m, name, xs, ls, "act")

        xa, la = stage("acc", xms, list(self.act))
        xw, lw = stage("w", xa, la)
        # One-hot operand selects, decided at cM for the next cycle (registered, off the ACC
        # loop): the update now in ACC will be in W, the one now in W will be in W2; newest wins.
        for i in range(LANES):
            base, region = i & ~1, i // 2
            hit = lambda xr, lr, j, i=i: lr[j] & (xr[j] == xms[i])  # noqa: E731
            if self._forward:
                hw = [hit(xa, la, base), hit(xa, la, base + 1)]
                hw2 = [hit(xw, lw, base), hit(xw, lw, base + 1)]
            else:
                hw = hw2 = [Const(0), Const(0)]
            any_w = hw[0] | hw[1]
            any_w2 = ~any_w & (hw2[0] | hw2[1])
            mem = ~any_w & ~(hw2[0] | hw2[1]) & written[region].bit_select(xms[i], 1)
            m.d.sync += self.sel[i].eq(Cat(mem, hw[0], hw[1], any_w2 & hw2[0], any_w2 & hw2[1]))
        m.d.comb += self.acc_act.eq(Cat(*la))

        # ---- cM+2: write back, mark written ---------------------------------------------------------
        m.d.comb += [_lane(self.wr_addr, i).eq(xw[i]) for i in range(LANES)] + [self.wr_en.eq(Cat(*lw))]
        for region in range(2):
            with m.If(self.batch_start):
                m.d.sync += written[region].eq(0)
            with m.Else():
                sets = Cat(*[(lw[2 * region] & (xw[2 * region] == a)) | (lw[2 * region + 1] & (xw[2 * region + 1] == a))
                             for a in range(depths[region])])
                m.d.sync += written[region].eq(written[region] | sets)
        return m


class ProbabilityAggregation(_PagCapacities):
    """PAG: ``b`` tiles computing AP (DESIGN §3 step 7) bit-exactly as
    :func:`golden.pag.probability_aggregation`; see the module doc for the protocol and pipeline.

    Ports: ``cs`` (in stream, ``b`` signed scores per beat), ``ct`` (in stream, ``ct1[2]``,
    ``ct2[2]``), ``ap`` (out stream, ``ap[b]`` + ``last``), config ``k1``, ``k2``, ``n``; per-tile
    sticky flags ``add_overflow``, ``exp_overflow``, ``ap_overflow`` (bit c = tile c, cleared by
    the first CS beat of a batch), sticky ``index_error`` (a CT value >= k1/k2: that update is
    dropped), combinational ``config_error`` (k1, k2 or n out of range: ``cs`` is not accepted).

    Parts: :class:`PagSequencer` (``seq``: phases, CS load, readout walk), :class:`PagIssue`
    (``issue``: c0 .. cM), :class:`PagApControl` (``apctl``: AP reads, forwarding, write-back),
    ``b`` :class:`PagTile` (``tile<c>``); the parent holds the CS1/CS2/AP1/AP2 memories.
    """

    #: cycles from a ct beat's transfer to its AP updates being written (end of that cycle)
    UPDATE_LATENCY = PagIssue.LATENCY + PagApControl.WRITE_LATENCY + 1
    #: cycles from the last ct beat's transfer to the first ``ap`` beat being valid
    READOUT_LATENCY = UPDATE_LATENCY + PagSequencer.READOUT_DELAY

    #: deliberate faults for the tests (:mod:`hdl.faults`), passed down to the part that holds them
    FAULTS = {**PagIssue.FAULTS, **PagApControl.FAULTS}

    def __init__(self, *, b: int, k1_max: int, k2_max: int, n_max: int, cs_fmt: QFormat, exp_spec: ExpSpec,
                 ap_fmt: QFormat) -> None:
        self._keep(k1_max, k2_max)
        self._b, self._n_max = b, n_max
        self._cs_fmt, self._exp_spec, self._ap_fmt = cs_fmt, exp_spec, ap_fmt
        self._faults = faults.active(self)
        self.ct1_bits, self.ct2_bits = index_bits(k1_max), index_bits(k2_max)
        ap_layout = data.StructLayout({"ap": data.ArrayLayout(shape_of(ap_fmt), b), "last": 1})
        super().__init__({
            "k1": In(range(k1_max + 1)),
            "k2": In(range(k2_max + 1)),
            "n": In(range(n_max + 1)),
            "cs": In(stream.Signature(data.ArrayLayout(shape_of(cs_fmt), b))),
            "ct": In(stream.Signature(self._ct_layout)),
            "ap": Out(stream.Signature(ap_layout)),
            "add_overflow": Out(b),
            "exp_overflow": Out(b),
            "ap_overflow": Out(b),
            "index_error": Out(1),
            "config_error": Out(1),
        })

    @classmethod
    def check_params(cls, *, b: int, k1_max: int, k2_max: int, n_max: int, cs_fmt: QFormat, exp_spec: ExpSpec,
                     ap_fmt: QFormat) -> None:
        _check_ints(b=b, k1_max=k1_max, k2_max=k2_max, n_max=n_max)
        check_pag_formats(cs_fmt, exp_spec, ap_fmt)

    # -- read-only parameters ----------------------------------------------------------------
    @property
    def b(self) -> int:
        return self._b

    @property
    def n_max(self) -> int:
        return self._n_max

    @property
    def cs_fmt(self) -> QFormat:
        return self._cs_fmt

    @property
    def exp_spec(self) -> ExpSpec:
        return self._exp_spec

    @property
    def ap_fmt(self) -> QFormat:
        return self._ap_fmt

    @property
    def formats(self) -> dict[str, QFormat]:
        return {"cs": self._cs_fmt, "exp_in": self._exp_spec.in_fmt, "exp_out": self._exp_spec.out_fmt,
                "ap": self._ap_fmt}

    @property
    def latency(self) -> dict[str, int]:
        return {"update": self.UPDATE_LATENCY, "readout": self.READOUT_LATENCY}

    def manifest_extra(self) -> dict:
        return {"exp_spec": self._exp_spec.as_dict(),
                "protocol": "per batch: k1+k2 cs beats, ceil(n/2) ct beats (2 tokens each), k1+k2 ap beats"}

    # -- hardware ------------------------------------------------------------------------------
    def elaborate(self, platform):
        m = Module()
        b, cs_w, ap_w = self._b, self._cs_fmt.width, self._ap_fmt.width
        caps = dict(k1_max=self._k1_max, k2_max=self._k2_max)
        cs_mem = [Memory(shape=unsigned(b * cs_w), depth=d, init=[]) for d in caps.values()]
        # AP: two write and two read ports per region (lanes a, b), as banks of one-write /
        # one-read memories with a live-value table (a multi-write-port Memory would be flip-flops).
        # The banks are LUT RAM where shallow enough: the read word enters the tiles'
        # read-modify-write adder in the next cycle, and a block RAM's clock-to-out (5.8 ns on
        # ECP5) in that path was cta's worst path (62.8 MHz, cta seed 1 of 2026-12-04 19:17 UTC).
        ap_mem = [MultiPortMemory(width=b * ap_w, depth=d, write_ports=2, read_ports=2,
                                  ram_style="distributed" if d <= LUTRAM_MAX_DEPTH else None)
                  for d in caps.values()]
        m.submodules.cs1, m.submodules.cs2 = cs_mem
        m.submodules.ap1, m.submodules.ap2 = ap_mem
        cs_wr = [mem.write_port() for mem in cs_mem]
        # [lane]; transparent for the (registered) CS write: a ct beat right after the last CS beat
        # reads the word that write lands
        cs_rd = [cs_mem[i // 2].read_port(domain="sync", transparent_for=(cs_wr[i // 2],)) for i in range(LANES)]
        # [lane]: (memory, port) of the region, port = lane within the region
        ap_port = [(ap_mem[i // 2], i % 2) for i in range(LANES)]

        m.submodules.seq = seq = PagSequencer(b=b, n_max=self._n_max, cs_fmt=self._cs_fmt,
                                              update_latency=self.UPDATE_LATENCY, **caps)
        with faults.injected(PagIssue, *(self._faults & PagIssue.FAULTS.keys())):
            m.submodules.issue = issue = PagIssue(**caps)
        with faults.injected(PagApControl, *(self._faults & PagApControl.FAULTS.keys())):
            m.submodules.apctl = apctl = PagApControl(**caps)
        tiles = []
        for c in range(b):
            m.submodules[f"tile{c}"] = tile = PagTile(cs_fmt=self._cs_fmt, exp_spec=self._exp_spec,
                                                      ap_fmt=self._ap_fmt)
            tiles.append(tile)

        # ---- sequencer: config, streams, CS load ------------------------------------------------
        wiring.connect(m, wiring.flipped(self.cs), seq.cs)
        m.d.comb += [
            seq.k1.eq(self.k1), seq.k2.eq(self.k2), seq.n.eq(self.n), self.config_error.eq(seq.config_error),
            seq.ct_valid.eq(self.ct.valid), self.ct.ready.eq(seq.ct_ready),
            self.ap.valid.eq(seq.ap_valid), seq.ap_ready.eq(self.ap.ready), self.ap.payload.last.eq(seq.ap_last),
        ]
        for region, port in enumerate(cs_wr):
            m.d.comb += [port.addr.eq(seq.cs_addr), port.data.eq(seq.cs_data), port.en.eq(seq.cs_we[region])]

        # ---- c0: CS reads at the beat's cluster indices; the issue pipeline to cM -----------------
        m.d.comb += [cs_rd[i].addr.eq(_lane(self.ct.payload, i)) for i in range(LANES)]
        m.d.comb += [cs_rd[i].en.eq(1) for i in range(LANES)]
        m.d.comb += [issue.k1.eq(self.k1), issue.k2.eq(self.k2), issue.ct.eq(self.ct.payload),
                     issue.tok_valid.eq(seq.tok_valid), issue.batch_start.eq(seq.batch_start),
                     self.index_error.eq(issue.index_error)]

        # ---- cM .. cM+2: AP control; the readout shares port a of each region --------------------
        m.d.comb += [apctl.addr.eq(issue.addr), apctl.act.eq(issue.act), apctl.batch_start.eq(seq.batch_start),
                     apctl.readout.eq(seq.readout), apctl.advance.eq(seq.advance), apctl.ro_idx.eq(seq.ro_idx)]
        for i, (mem, p) in enumerate(ap_port):
            m.d.comb += [mem.r_addr[p].eq(_lane(apctl.rd_addr, i)), mem.r_en[p].eq(apctl.rd_en[i]),
                         mem.w_addr[p].eq(_lane(apctl.wr_addr, i)), mem.w_en[p].eq(apctl.wr_en[i]),
                         mem.w_data[p].eq(Cat(*[tile.new[i] for tile in tiles]))]
        ap_rd = [mem.r_data[p] for mem, p in ap_port]

        # ---- tiles: word slices of the shared memories, control from issue / apctl -----------------
        for c, tile in enumerate(tiles):
            cs_sl, ap_sl = slice(c * cs_w, (c + 1) * cs_w), slice(c * ap_w, (c + 1) * ap_w)
            m.d.comb += [
                tile.cs1_a.eq(cs_rd[0].data[cs_sl]), tile.cs1_b.eq(cs_rd[1].data[cs_sl]),
                tile.cs2_a.eq(cs_rd[2].data[cs_sl]), tile.cs2_b.eq(cs_rd[3].data[cs_sl]),
                tile.valid_a.eq(issue.valid[0]), tile.valid_b.eq(issue.valid[1]),
                tile.merge1.eq(issue.merge[0]), tile.merge2.eq(issue.merge[1]),
                tile.sel.eq(apctl.sel), tile.act.eq(apctl.acc_act), tile.clear_flags.eq(seq.batch_start),
            ]
            m.d.comb += [tile.rd[i].eq(ap_rd[i][ap_sl]) for i in range(LANES)]
            # readout payload: port a of the region being read out, 0 where never written
            v1 = Mux(apctl.ro_written[0], ap_rd[0][ap_sl], 0)
            v2 = Mux(apctl.ro_written[1], ap_rd[2][ap_sl], 0)
            m.d.comb += self.ap.payload.ap[c].eq(Mux(seq.ap_region2, v2, v1))
        m.d.comb += [
            self.add_overflow.eq(Cat(*[t.add_overflow for t in tiles])),
            self.exp_overflow.eq(Cat(*[t.exp_overflow for t in tiles])),
            self.ap_overflow.eq(Cat(*[t.ap_overflow for t in tiles])),
        ]
        return m


# ---- registry ------------------------------------------------------------------------------------
from .registry import BlockSpec, Param, ParamError  # noqa: E402


def pag_formats_from_params(*, cs_width: int, cs_frac: int, exp_in_width: int, exp_in_frac: int,
                            exp_out_width: int, exp_out_frac: int, lut_bits: int, lut_frac: int, ap_width: int,
                            **_: object) -> tuple[QFormat, ExpSpec, QFormat]:
    """(cs_fmt, exp_spec, ap_fmt) of a ``pag`` block parameter set (for tests and the CTA model)."""
    cs_fmt = QFormat(cs_width, cs_frac)
    exp_spec = ExpSpec(QFormat(exp_in_width, exp_in_frac), QFormat(exp_out_width, exp_out_frac, signed=False),
                       lut_bits=lut_bits, lut_frac=lut_frac)
    return cs_fmt, exp_spec, QFormat(ap_width, exp_out_frac, signed=False)


def _validate(p: dict) -> None:
    for frac, width, strict in (("cs_frac", "cs_width", True), ("exp_in_frac", "exp_in_width", True),
                                ("exp_out_frac", "exp_out_width", False)):
        if p[frac] > p[width] or (strict and p[frac] == p[width]):
            rel = "<" if strict else "<="
            raise ParamError(f"parameter {frac}={p[frac]} out of range: expected {rel} {width}={p[width]}")
    if p["lut_frac"] < p["exp_out_frac"]:
        raise ParamError(f"parameter lut_frac={p['lut_frac']} out of range: expected >= exp_out_frac="
                         f"{p['exp_out_frac']}")
    if p["ap_width"] <= p["exp_out_width"]:
        raise ParamError(f"parameter ap_width={p['ap_width']} out of range: expected > exp_out_width="
                         f"{p['exp_out_width']}")
    if p["exp_in_frac"] + 15 < p["lut_bits"]:
        raise ParamError(f"parameter lut_bits={p['lut_bits']} out of range: expected <= exp_in_frac + 15")


def _build(**p) -> ProbabilityAggregation:
    cs_fmt, exp_spec, ap_fmt = pag_formats_from_params(**p)
    return ProbabilityAggregation(b=p["b"], k1_max=p["k1_max"], k2_max=p["k2_max"], n_max=p["n_max"],
                                  cs_fmt=cs_fmt, exp_spec=exp_spec, ap_fmt=ap_fmt)


BLOCKS = [
    BlockSpec(
        name="pag",
        description="CTA probability aggregation: b tiles × 2 ADD_EXP + merge units, AP = Σ exp(CS1+CS2)",
        params=(
            Param("b", 8, "tiles (compressed-query rows per batch)", min=1, max=64),
            Param("k1_max", 64, "capacity of LSH_1 clusters (CS1/AP1 depth)", min=1, max=4096),
            Param("k2_max", 64, "capacity of LSH_2 clusters (CS2/AP2 depth)", min=1, max=4096),
            Param("n_max", 512, "maximum tokens per batch", min=1, max=1 << 20),
            Param("cs_width", 16, "compressed-score width (signed)", min=2, max=32),
            Param("cs_frac", 8, "compressed-score fractional bits", min=0, max=31),
            Param("exp_in_width", 16, "exp input width (signed, saturating)", min=4, max=32),
            Param("exp_in_frac", 8, "exp input fractional bits", min=0, max=31),
            Param("exp_out_width", 18, "exp output width (unsigned, saturating)", min=2, max=32),
            Param("exp_out_frac", 14, "exp output / AP fractional bits", min=0, max=32),
            Param("lut_bits", 8, "exp fraction LUT index bits", min=1, max=12),
            Param("lut_frac", 16, "exp LUT entry fractional bits", min=1, max=24),
            Param("ap_width", 28, "AP width (unsigned, saturating; frac = exp_out_frac)", min=3, max=48),
        ),
        build=_build,
        cocotb_module="sim.tb_pag",
        validate=_validate,
        # b=4, k=16 trips a yosys 0.70 ABC9 assertion (ABC_OPS_REINTEGRATE); b=4, k=8 synthesises.
        fpga_params={"b": 4, "k1_max": 8, "k2_max": 8, "n_max": 512},
    ),
]
