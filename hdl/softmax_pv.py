"""Shared attention back end: (exp,) P·V and normalisation over a row of scores (E-ATT, MCA).

Bit-exact with :func:`golden.softmax_pv.softmax_pv_fixed` (softmax mode) and
:func:`golden.softmax_pv.weighted_sum_fixed` (probability mode); formats in
:class:`golden.softmax_pv.SoftmaxPVFormats`.

Protocol (streams ``amaranth.lib.stream``):

* LOAD: ``v`` takes ``n_keys`` value rows, each as ``d/lanes`` beats of ``lanes`` raw values
  (``v_fmt``), row-major;
* then, ``n_rows`` times: ``s`` takes the row's ``n_keys`` weights in key order (softmax mode: a
  signed integer score, larger = more attention; probability mode: a raw ``p_fmt`` probability)
  and the block emits the output row on ``o`` (``d/lanes`` beats of ``lanes`` ``out_fmt`` values);
* then back to LOAD.

``n_keys``, ``n_rows`` and (softmax mode) ``scale_mant``/``scale_shift`` are registers held stable
by the host during a head. ``overflow`` (sticky output saturation) is cleared when a head's V load
completes; ``config_error`` is set (and the block waits in LOAD) while ``n_keys`` is 0 or above
``n_max``.

Passes per row (``C = d/lanes``), one item per cycle each, in series:

1. SCORE: ``n`` beats of ``s`` into a buffer, running maximum (n cycles, stalled by ``s.valid``);
2. EXP (softmax mode only): ``x = sat(round((S - S_max)·scale))`` and the shared
   :class:`hdl.arith.ExpUnit` into the weight buffer, ``den = Σ e`` (n + ``EXP_LATENCY`` cycles);
3. PV: ``lanes`` multipliers ``p·V`` into ``d`` accumulators (n·C + ``PV_LATENCY`` cycles);
4. NORM: one :class:`hdl.arith.SharedReciprocalScaler` (softmax: one lookup, ``lanes``
   multipliers) or a rounding shift and saturation (probability mode, :class:`ProbNormalizer`)
   straight into ``o`` (C beats, stalled by ``o.ready``).

:class:`SoftmaxPV` holds the buffers and the datapaths; :class:`SoftmaxPVControl` [ctrl] is its
control (the FSM, the pass counters, the handshakes).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from operator import attrgetter
from typing import ClassVar

from amaranth.hdl import C, Cat, Module, Mux, Shape, Signal, Value, signed, unsigned
from amaranth.lib import stream
from amaranth.lib.data import ArrayLayout
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Member, Out

from golden.fixed import QFormat
from golden.lut import ExpSpec, RecipSpec
from golden.softmax_pv import SoftmaxPVFormats

from .arith import ExpUnit, SharedReciprocalScaler
from .checked import CheckedComponent, ReadOnlyParam, check_positive_ints
from .fixed import round_shift_const, saturate, shape_of
from .primitives import RegisteredMultiplier, RegisteredReadMemory, registered_multiply

__all__ = ["SoftmaxPV", "SoftmaxPVControl", "ScoreExp", "PVAccumulator", "Normalizer", "ProbNormalizer", "LaneSplit",
           "adder_tree", "delay_line", "issue_pass", "norm_pass", "tree_stages"]


def _check_d_lanes(d: object, lanes: object) -> None:
    check_positive_ints(d=d, lanes=lanes)
    if d % lanes:
        raise ValueError(f"lanes={lanes} must divide d={d}")


class LaneSplit:
    """Mixin of the heads and back end that move a vector ``lanes`` elements a beat: ``lanes`` and
    ``chunks`` (beats a vector). The class sets ``_lanes``; ``LANE_DIM`` is the attribute path from
    ``self`` to the vector length (the heads keep it in different places)."""

    LANE_DIM: ClassVar[str] = "_d"
    _lanes: int
    lanes = ReadOnlyParam[int]()

    @property
    def chunks(self) -> int:
        return attrgetter(self.LANE_DIM)(self) // self._lanes


def delay_line(m: Module, value: Value, cycles: int, name: str, en: Value | None = None) -> list[Value]:
    """``[value, value delayed by 1, ..., by cycles]`` (registers, updated while ``en``)."""
    out = [Value.cast(value)]
    for i in range(cycles):
        reg = Signal(out[-1].shape(), name=f"{name}_d{i + 1}")
        if en is None:
            m.d.sync += reg.eq(out[-1])
        else:
            with m.If(en):
                m.d.sync += reg.eq(out[-1])
        out.append(reg)
    return out


def tree_stages(count: int) -> int:
    """Register stages of the adder tree over ``count`` values (4-input adds per stage, >= 1)."""
    stages = 1
    while count > 4:
        count = -(-count // 4)
        stages += 1
    return stages


def adder_tree(m: Module, values: list[Value], name: str, en: Value | None = None) -> Signal:
    """Sum ``values`` with 4-input adders, one register per level (``tree_stages`` cycles, updated
    while ``en``): the LATTE estimate / compensation lanes and the E-ATT L1 unit."""
    level = 0
    while True:
        regs = []
        for gi in range(0, len(values), 4):
            group = values[gi:gi + 4]
            expr = group[0]
            for item in group[1:]:
                expr = expr + item
            reg = Signal(Value.cast(expr).shape(), name=f"{name}_l{level}_{gi // 4}")
            if en is None:
                m.d.sync += reg.eq(expr)
            else:
                with m.If(en):
                    m.d.sync += reg.eq(expr)
            regs.append(reg)
        values = regs
        level += 1
        if len(values) == 1:
            return values[0]


@contextmanager
def issue_pass(m: Module, *, issue: Signal, t: Signal, last: Value, pipe: list[Value], c: Signal | None = None,
               chunks: int = 1, step: tuple = ()) -> Iterator[None]:
    """The body of an EXP or PV state (the back ends of :class:`SoftmaxPVControl` and LATTE):
    while ``issue``, one item a cycle for keys ``t`` = 0..``last`` (with ``c``: ``chunks`` chunks
    a key, the ``step`` statements once a key); the ``with`` body runs once the pipeline behind
    (valid bits ``pipe[1:]``) has drained."""
    with m.If(issue):
        if c is None:
            m.d.sync += t.eq(t + 1)
            with m.If(t == last):
                m.d.sync += issue.eq(0)
        else:
            with m.If(c == chunks - 1):
                m.d.sync += [c.eq(0), t.eq(t + 1), *step]
                with m.If(t == last):
                    m.d.sync += issue.eq(0)
            with m.Else():
                m.d.sync += c.eq(c + 1)
    with m.Elif(~Cat(*pipe[1:]).any()):
        yield


@contextmanager
def norm_pass(m: Module, *, issue: Signal, c: Signal, o_cnt: Signal, stall: Value, o_fire: Value,
              chunks: int) -> Iterator[None]:
    """The body of a NORM state: chunks ``c`` = 0..``chunks``-1 into the normaliser while ``issue``
    (held by ``stall``), output beats counted in ``o_cnt``; the ``with`` body runs at the row's
    last beat."""
    with m.If(issue & ~stall):
        m.d.sync += c.eq(c + 1)
        with m.If(c == chunks - 1):
            m.d.sync += [c.eq(0), issue.eq(0)]
    with m.If(o_fire):
        m.d.sync += o_cnt.eq(o_cnt + 1)
        with m.If(o_cnt == chunks - 1):
            yield


class ScoreExp(CheckedComponent):
    """``e = exp(sat(round_half_up((score − smax)·scale_mant / 2^scale_shift)))``: the softmax
    input scaling and the shared :class:`hdl.arith.ExpUnit`, one score per cycle (LATTE, E-ATT).

    Stages: (1) score registered, (2) difference, (3) the product as two partial products that each
    fit an 18×18 DSP, (4) their sum, (5) rounding pre-shift by ``scale_shift − 1``, (6) rounding
    increment, (7) saturation to the exp input format, then the exp unit.
    """

    LATENCY = 7 + ExpUnit.LATENCY

    def __init__(self, *, score_width: int, diff_width: int, scale_mant_bits: int, scale_shift_bits: int,
                 exp_spec: ExpSpec) -> None:
        self._diff_width, self._spec = diff_width, exp_spec
        super().__init__({
            "score": In(signed(score_width)),
            "smax": In(signed(score_width)),
            "scale_mant": In(unsigned(scale_mant_bits)),
            "scale_shift": In(unsigned(scale_shift_bits)),
            "valid_in": In(1),
            "y": Out(shape_of(exp_spec.out_fmt)),
            "valid_out": Out(1),
        })

    @classmethod
    def check_params(cls, *, score_width: int, diff_width: int, scale_mant_bits: int, scale_shift_bits: int,
                     exp_spec: ExpSpec) -> None:
        check_positive_ints(score_width=score_width, diff_width=diff_width, scale_mant_bits=scale_mant_bits,
                            scale_shift_bits=scale_shift_bits)
        if not isinstance(exp_spec, ExpSpec):
            raise TypeError(f"exp_spec must be an ExpSpec, not {exp_spec!r}")

    def elaborate(self, platform):
        m = Module()
        spec = self._spec
        m.submodules.exp = exp = ExpUnit(spec=spec)
        mant_bits = len(self.scale_mant)
        sc_d = Signal.like(self.score, name="sc_d")
        x_diff = Signal(signed(self._diff_width))
        m.d.sync += [sc_d.eq(self.score), x_diff.eq(sc_d - self.smax)]
        # diff × scale as two partial products that each fit an 18×18 DSP (registered), then summed
        lo_bits = 17
        x_lo = Signal(unsigned(lo_bits + mant_bits), name="x_prod_lo")
        x_hi = Signal(signed(max(self._diff_width - lo_bits, 1) + mant_bits + 1), name="x_prod_hi")
        m.d.sync += [x_lo.eq(x_diff.as_unsigned()[:lo_bits] * self.scale_mant),
                     x_hi.eq((x_diff >> lo_bits) * self.scale_mant)]
        x_prod = Signal(signed(self._diff_width + mant_bits + 1))
        m.d.sync += x_prod.eq((x_hi << lo_bits) + x_lo)
        # round half up by a variable shift s: floor((floor(p / 2^(s-1)) + 1) / 2); s = 0 via p·2
        x_pre = Signal(signed(len(x_prod) + 1))
        sh_m1 = (self.scale_shift - 1).as_unsigned()[:len(self.scale_shift)]
        m.d.sync += x_pre.eq(Mux(self.scale_shift == 0, x_prod << 1, x_prod >> sh_m1))
        x_round = Signal(signed(len(x_pre)))  # rounding add and saturation in separate stages
        m.d.sync += x_round.eq((x_pre + 1) >> 1)
        x_in, _ = saturate(x_round, spec.in_fmt)
        x_reg = Signal(shape_of(spec.in_fmt))
        m.d.sync += x_reg.eq(x_in)
        valid = delay_line(m, self.valid_in, 7, "sev")
        m.d.comb += [exp.x.eq(x_reg), exp.valid_in.eq(valid[-1]), exp.en.eq(1),
                     self.y.eq(exp.y), self.valid_out.eq(exp.valid_out)]
        return m


class PVAccumulator(CheckedComponent):
    """``acc[c·lanes + l] += p · v[l]`` for the chunk ``c`` of the item: ``lanes`` registered
    multipliers (:func:`hdl.primitives.registered_multiply`: operand and product registers, on
    ECP5 a MULT18X18D's own input and output registers), then ``d`` accumulators; ``clear`` zeroes
    them (LATTE, E-ATT, MCA).

    The operand register sits in the DSP rather than in the fabric in front of it: a fabric
    register → DSP (combinational, 3.9 ns) → fabric register product was the worst path of LATTE
    and E-ATT (8.9–10.1 ns on LFE5U-85F-6, synth/REPORT.md). As every registered multiplier, it
    refuses operands wider than a DSP port when elaborated for ECP5.
    """

    #: operands → products (:attr:`~hdl.primitives.RegisteredMultiplier.LATENCY`), then accumulate
    LATENCY = RegisteredMultiplier.LATENCY + 1

    def __init__(self, *, p_shape, v_shape, acc_shape, d: int, lanes: int) -> None:
        self._d, self._lanes = d, lanes
        self._p_shape, self._v_shape = p_shape, v_shape
        super().__init__({
            "p": In(p_shape),
            "v": In(ArrayLayout(v_shape, lanes)),
            "chunk": In(range(max(d // lanes, 2))),
            "valid": In(1),
            "clear": In(1),
            "acc": Out(ArrayLayout(acc_shape, d)),
        })

    @classmethod
    def check_params(cls, *, p_shape, v_shape, acc_shape, d: int, lanes: int) -> None:
        _check_d_lanes(d, lanes)

    def elaborate(self, platform):
        m = Module()
        L, C = self._lanes, self._d // self._lanes
        prods = [registered_multiply(m, self.p, self.v[lane], platform=platform, name=f"pv{lane}_")[0]
                 for lane in range(L)]
        # chunk and valid ride along with the operands (the multipliers' two registers)
        chunk_d = delay_line(m, self.chunk, RegisteredMultiplier.LATENCY, "pv_chunk")[-1]
        valid_d = delay_line(m, self.valid, RegisteredMultiplier.LATENCY, "pv_valid")[-1]
        with m.If(self.clear):
            m.d.sync += [self.acc[i].eq(0) for i in range(self._d)]
        with m.Elif(valid_d):
            with m.Switch(chunk_d):
                for c in range(C):
                    with m.Case(c):
                        for lane in range(L):
                            m.d.sync += self.acc[c * L + lane].eq(self.acc[c * L + lane] + prods[lane])
        return m


def _normalizer_ports(acc_fmt: QFormat, out_fmt: QFormat, d: int, lanes: int, **extra: Member) -> dict:
    """The ports of :class:`Normalizer` and :class:`ProbNormalizer`: chunk ``chunk`` of the ``d``
    accumulators ``acc`` to ``lanes`` results; ``extra`` inputs stand after ``acc`` (port order)."""
    return {
        "acc": In(ArrayLayout(shape_of(acc_fmt), d)),
        **extra,
        "chunk": In(range(max(d // lanes, 2))),
        "valid_in": In(1),
        "en": In(1, init=1),
        "result": Out(ArrayLayout(shape_of(out_fmt), lanes)),
        "overflow": Out(1),
        "valid_out": Out(1),
    }


def chunk_select(acc: Value, chunk: Value, *, lane: int, lanes: int) -> Value:
    """``acc[chunk * lanes + lane]``: lane ``lane`` of chunk ``chunk`` of the accumulator array, as a
    balanced multiplexer (a variable part-select, a continuous assignment: Icarus never evaluates
    an ``always @*`` case block whose inputs keep their time-0 values). A priority ``Mux`` chain
    over the chunks was the worst path of the LATTE back end. Chunk slots up to the next power of
    two read 0, so no index of ``chunk`` selects X."""
    words = [acc[c * lanes + lane] for c in range(len(acc) // lanes)]
    if len(words) == 1:
        return words[0]
    width = len(Value.cast(words[0]))
    padded = [Value.cast(w) for w in words] + [C(0, width)] * ((1 << len(chunk)) - len(words))
    selected = Cat(*padded).word_select(chunk, width)
    return selected.as_signed() if Value.cast(words[0]).shape().signed else selected


class Normalizer(CheckedComponent):
    """Output normalisation: one :class:`hdl.arith.SharedReciprocalScaler` (one reciprocal lookup,
    ``lanes`` multipliers) divides the accumulators of chunk ``chunk`` by ``den`` (clock enable
    ``en`` for output back-pressure)."""

    LATENCY = SharedReciprocalScaler.LATENCY

    def __init__(self, *, recip_spec: RecipSpec, acc_fmt, out_fmt, d: int, lanes: int) -> None:
        self._spec, self._acc_fmt, self._out_fmt, self._d, self._lanes = recip_spec, acc_fmt, out_fmt, d, lanes
        super().__init__(_normalizer_ports(acc_fmt, out_fmt, d, lanes, den=In(shape_of(recip_spec.den_fmt))))

    @classmethod
    def check_params(cls, *, recip_spec: RecipSpec, acc_fmt, out_fmt, d: int, lanes: int) -> None:
        _check_d_lanes(d, lanes)
        if not isinstance(recip_spec, RecipSpec):
            raise TypeError(f"recip_spec must be a RecipSpec, not {recip_spec!r}")

    def elaborate(self, platform):
        m = Module()
        L = self._lanes
        # One reciprocal lookup (leading-one detect, ROM) for the one denominator, shared by the
        # lanes' multipliers: a lookup per lane made yosys merge the identical stage registers
        # into one that fanned out to every lane's ROM address bus (the worst path of latte/eatt).
        m.submodules.recip = unit = SharedReciprocalScaler(spec=self._spec, value_fmt=self._acc_fmt,
                                                           out_fmt=self._out_fmt, lanes=L)
        for lane in range(L):
            value = Signal(shape_of(self._acc_fmt), name=f"norm_value{lane}")
            m.d.comb += [value.eq(chunk_select(self.acc, self.chunk, lane=lane, lanes=L)),
                         unit.value[lane].eq(value), self.result[lane].eq(unit.result[lane])]
        m.d.comb += [unit.den.eq(self.den), unit.valid_in.eq(self.valid_in), unit.en.eq(self.en),
                     self.valid_out.eq(unit.valid_out), self.overflow.eq(unit.overflow.any())]
        return m


class ProbNormalizer(CheckedComponent):
    """Output normalisation in probability mode: per lane, the accumulator of chunk ``chunk`` by a
    rounding shift to ``out_fmt`` and saturation, registered (clock enable ``en`` for output
    back-pressure); ``overflow`` flags a saturated lane of the registered result (MCA)."""

    LATENCY = 1

    def __init__(self, *, acc_fmt: QFormat, out_fmt: QFormat, d: int, lanes: int) -> None:
        self._acc_fmt, self._out_fmt, self._d, self._lanes = acc_fmt, out_fmt, d, lanes
        super().__init__(_normalizer_ports(acc_fmt, out_fmt, d, lanes))

    @classmethod
    def check_params(cls, *, acc_fmt: QFormat, out_fmt: QFormat, d: int, lanes: int) -> None:
        _check_d_lanes(d, lanes)
        for name, fmt in (("acc_fmt", acc_fmt), ("out_fmt", out_fmt)):
            if not isinstance(fmt, QFormat):
                raise TypeError(f"{name} must be a QFormat, not {fmt!r}")

    def elaborate(self, platform):
        m = Module()
        L, acc_fmt, out_fmt = self._lanes, self._acc_fmt, self._out_fmt
        overs = []
        with m.If(self.en):
            m.d.sync += self.valid_out.eq(self.valid_in)
        for lane in range(L):
            value = Signal(shape_of(acc_fmt), name=f"norm_value{lane}")
            m.d.comb += value.eq(chunk_select(self.acc, self.chunk, lane=lane, lanes=L))
            res, over = saturate(round_shift_const(value, acc_fmt.frac - out_fmt.frac, out_fmt.rounding), out_fmt)
            over_reg = Signal(name=f"prob_over{lane}")
            with m.If(self.en):
                m.d.sync += [self.result[lane].eq(res), over_reg.eq(over)]
            overs.append(over_reg)
        m.d.comb += self.overflow.eq(Cat(*overs).any())
        return m


class SoftmaxPVControl(CheckedComponent):
    """The control of :class:`SoftmaxPV`: the ``backend`` FSM (LOAD, SCORE, EXP, PV, NORM), its
    counters and the stream handshakes; the parent holds the buffers and the datapaths.

    LOAD counts ``n_keys·C`` V beats (``v_we``/``v_waddr``; ``load_done`` pulses when it ends);
    SCORE takes ``n_keys`` weights (``s_take``/``s_addr``; ``row_start`` pulses with the last);
    EXP (softmax mode) issues the score reads ``x_addr``, ``x_valid`` one cycle later with their
    data; PV issues (weight ``p_addr``, V ``v_raddr``) reads and hands the accumulator the item's
    ``pv_chunk``/``pv_valid`` after the reads' register (:attr:`PV_ISSUE_DELAY`); NORM issues
    ``n_valid``/``n_chunk`` per chunk while ``o`` is not stalled. Each pass waits for its pipeline
    (``exp_latency``, ``pv_latency`` cycles) to drain before the next starts."""

    #: PV: weight and V reads, their register, then the accumulator's inputs
    PV_ISSUE_DELAY = 2

    def __init__(self, *, n_max: int, chunks: int, softmax: bool, exp_latency: int, pv_latency: int) -> None:
        self._n_max, self._chunks, self._softmax = n_max, chunks, softmax
        self._exp_latency, self._pv_latency = exp_latency, pv_latency
        vdepth = n_max * chunks
        super().__init__({
            "n_keys": In(unsigned(n_max.bit_length())), "n_rows": In(unsigned(16)),
            "v_valid": In(1), "v_ready": Out(1), "v_we": Out(1), "v_waddr": Out(range(vdepth + 1)),
            "s_valid": In(1), "s_ready": Out(1), "s_take": Out(1), "s_addr": Out(range(n_max)),
            "o_valid": In(1), "o_ready": In(1),
            "load_done": Out(1), "row_start": Out(1),
            "x_addr": Out(range(n_max)), "x_valid": Out(1),
            "p_addr": Out(range(n_max)), "v_raddr": Out(range(vdepth)), "pv_chunk": Out(range(chunks)),
            "pv_valid": Out(1),
            "n_valid": Out(1), "n_chunk": Out(range(chunks)),
            "idle": Out(1), "config_error": Out(1),
        })

    @classmethod
    def check_params(cls, *, n_max: int, chunks: int, softmax: bool, exp_latency: int, pv_latency: int) -> None:
        check_positive_ints(n_max=n_max, chunks=chunks, exp_latency=exp_latency)
        if not isinstance(softmax, bool):
            raise TypeError(f"softmax must be a bool, not {softmax!r}")
        check_positive_ints(pv_latency=pv_latency)
        if pv_latency < cls.PV_ISSUE_DELAY:
            raise ValueError(f"pv_latency must be >= {cls.PV_ISSUE_DELAY}, not {pv_latency}")

    def elaborate(self, platform):
        m = Module()
        n_max, C, vdepth = self._n_max, self._chunks, self._n_max * self._chunks
        n_keys = self.n_keys
        keys_ok = (n_keys >= 1) & (n_keys <= n_max)
        v_total = Signal(range(vdepth + 1))
        m.d.comb += v_total.eq(n_keys * C)
        v_cnt = self.v_waddr
        row_cnt = Signal(16)
        s_cnt = self.s_addr
        x_issue = Signal()
        x_t = self.x_addr
        xv = delay_line(m, x_issue, self._exp_latency, "xv")
        p_issue = Signal()
        p_t = self.p_addr
        p_c = Signal(range(C))
        p_base = Signal(range(vdepth))
        pv = delay_line(m, p_issue, self._pv_latency, "pv")
        pc = delay_line(m, p_c, self._pv_latency, "pc")
        n_issue = self.n_valid
        n_c = self.n_chunk
        o_cnt = Signal(range(C))
        stall = Signal()
        m.d.comb += stall.eq(self.o_valid & ~self.o_ready)

        with m.FSM(name="backend") as fsm:
            with m.State("LOAD"):
                m.d.sync += self.config_error.eq(~keys_ok)
                with m.If(self.v_valid & self.v_ready):
                    m.d.sync += v_cnt.eq(v_cnt + 1)
                with m.If(keys_ok & (v_cnt == v_total)):
                    m.d.sync += [v_cnt.eq(0), row_cnt.eq(0), s_cnt.eq(0)]
                    m.d.comb += self.load_done.eq(1)
                    with m.If(self.n_rows != 0):
                        m.next = "SCORE"

            with m.State("SCORE"):
                with m.If(self.s_valid):
                    m.d.sync += s_cnt.eq(s_cnt + 1)
                    with m.If(s_cnt == n_keys - 1):
                        m.d.sync += s_cnt.eq(0)
                        m.d.comb += self.row_start.eq(1)
                        if self._softmax:
                            m.d.sync += [x_issue.eq(1), x_t.eq(0)]
                            m.next = "EXP"
                        else:
                            m.d.sync += [p_issue.eq(1), p_t.eq(0), p_c.eq(0), p_base.eq(0)]
                            m.next = "PV"

            with m.State("EXP"), issue_pass(m, issue=x_issue, t=x_t, last=n_keys - 1, pipe=xv):
                m.d.sync += [p_issue.eq(1), p_t.eq(0), p_c.eq(0), p_base.eq(0)]
                m.next = "PV"

            with m.State("PV"), issue_pass(m, issue=p_issue, t=p_t, last=n_keys - 1, pipe=pv, c=p_c, chunks=C,
                                           step=(p_base.eq(p_base + C),)):
                m.d.sync += [n_issue.eq(1), n_c.eq(0), o_cnt.eq(0)]
                m.next = "NORM"

            with m.State("NORM"), norm_pass(m, issue=n_issue, c=n_c, o_cnt=o_cnt, stall=stall,
                                            o_fire=self.o_valid & self.o_ready, chunks=C):
                m.d.sync += [o_cnt.eq(0), row_cnt.eq(row_cnt + 1)]
                with m.If(row_cnt + 1 == self.n_rows):
                    m.next = "LOAD"
                with m.Else():
                    m.next = "SCORE"

        # Handshakes as plain assignments outside the FSM (Icarus, see LATTE).
        in_load, in_score = fsm.ongoing("LOAD"), fsm.ongoing("SCORE")
        # v_ready's count compare comes from a flip-flop holding "v_cnt < v_total" for the count's
        # next value (timing: the compare with n_keys·C stays out of v_ready -> the transfer ->
        # v_waddr, eatt's worst path); v_cnt only moves in LOAD. It equals the compare on v_cnt
        # while n_keys is held (as during a head); reset value 1: v_cnt is 0 and keys_ok gates it.
        v_lt = Signal(init=1, name="v_lt")
        v_fire, v_done = self.v_valid & self.v_ready, keys_ok & (v_cnt == v_total)
        m.d.sync += v_lt.eq(Mux(in_load & v_done, v_total != 0,
                                Mux(in_load & v_fire, v_cnt + 1 < v_total, v_cnt < v_total)))
        m.d.comb += [
            self.v_ready.eq(in_load & keys_ok & v_lt),
            self.v_we.eq(self.v_valid & self.v_ready),
            self.s_ready.eq(in_score), self.s_take.eq(self.s_valid & in_score),
            self.idle.eq(in_load & (v_cnt == 0)),
            self.x_valid.eq(xv[1]),
            self.v_raddr.eq(p_base + p_c),
            self.pv_chunk.eq(pc[self.PV_ISSUE_DELAY]), self.pv_valid.eq(pv[self.PV_ISSUE_DELAY]),
        ]
        return m


class SoftmaxPV(LaneSplit, CheckedComponent):
    """The back end of one attention head (see the module docstring): the V, score and weight
    buffers and the datapaths (:class:`ScoreExp`, :class:`PVAccumulator`, :class:`Normalizer` or
    :class:`ProbNormalizer`), sequenced by :class:`SoftmaxPVControl`."""

    #: EXP: score buffer read, then :class:`ScoreExp`
    EXP_LATENCY = 1 + ScoreExp.LATENCY
    #: PV: read, register (a :class:`~hdl.primitives.RegisteredReadMemory`), then
    #: :class:`PVAccumulator` (operands, product, accumulate)
    PV_LATENCY = 1 + PVAccumulator.LATENCY
    #: NORM in probability mode: :class:`ProbNormalizer` (round + saturate, registered)
    PROB_NORM_LATENCY = ProbNormalizer.LATENCY

    def __init__(self, *, d: int, lanes: int, fmts: SoftmaxPVFormats) -> None:
        self._d, self._lanes, self._fmts = d, lanes, fmts
        f = fmts
        ports = {
            "v": In(stream.Signature(ArrayLayout(shape_of(f.v_fmt), lanes))),
            "s": In(stream.Signature(signed(f.score_width) if f.softmax else shape_of(f.p_fmt))),
            "o": Out(stream.Signature(ArrayLayout(shape_of(f.out_fmt), lanes))),
            "n_keys": In(unsigned(f.count_width)),
            "n_rows": In(unsigned(16)),
            "overflow": Out(1),
            "config_error": Out(1),
            "idle": Out(1),
        }
        if f.softmax:
            ports["scale_mant"] = In(unsigned(f.scale_mant_bits))
            ports["scale_shift"] = In(unsigned(f.scale_shift_bits))
        super().__init__(ports)

    @classmethod
    def check_params(cls, *, d: int, lanes: int, fmts: SoftmaxPVFormats) -> None:
        _check_d_lanes(d, lanes)
        if not isinstance(fmts, SoftmaxPVFormats):
            raise TypeError(f"fmts must be a SoftmaxPVFormats, not {fmts!r}")

    fmts = ReadOnlyParam[SoftmaxPVFormats]()
    d = ReadOnlyParam[int]()

    @property
    def norm_latency(self) -> int:
        return Normalizer.LATENCY if self._fmts.softmax else self.PROB_NORM_LATENCY

    def row_cycles(self, n: int) -> int:
        """Clock edges of one row without stalls (scores offered back to back, ``o`` always
        ready), counting from the edge that accepts the first score to the edge that accepts the
        last output beat, both included: SCORE n, EXP n + fill + 1, PV n·C + fill + 1, NORM C + fill.
        Exact (the unit tests compare it with ``==``)."""
        c = self.chunks
        exp = (n + self.EXP_LATENCY + 1) if self._fmts.softmax else 0
        return n + exp + (n * c + self.PV_LATENCY + 1) + (c + self.norm_latency)

    def elaborate(self, platform):
        f = self._fmts
        L, C, n_max = self._lanes, self.chunks, f.n_max
        m = Module()
        chunk = ArrayLayout(shape_of(f.v_fmt), L)
        # V and weight buffers: read, then the output register (the block RAM's own on ECP5)
        m.submodules.vmem = vmem = RegisteredReadMemory(width=chunk.size, depth=n_max * C)
        m.submodules.pmem = pmem = RegisteredReadMemory(width=Shape.cast(shape_of(f.p_fmt)).width, depth=n_max)
        m.submodules.ctrl = ctrl = SoftmaxPVControl(n_max=n_max, chunks=C, softmax=f.softmax,
                                                    exp_latency=self.EXP_LATENCY, pv_latency=self.PV_LATENCY)
        m.submodules.pv = pvacc = PVAccumulator(p_shape=shape_of(f.p_fmt), v_shape=shape_of(f.v_fmt),
                                                acc_shape=shape_of(f.acc_fmt), d=self._d, lanes=L)
        stall = Signal()
        m.d.comb += [
            stall.eq(self.o.valid & ~self.o.ready),
            ctrl.n_keys.eq(self.n_keys), ctrl.n_rows.eq(self.n_rows),
            ctrl.v_valid.eq(self.v.valid), self.v.ready.eq(ctrl.v_ready),
            ctrl.s_valid.eq(self.s.valid), self.s.ready.eq(ctrl.s_ready),
            ctrl.o_valid.eq(self.o.valid), ctrl.o_ready.eq(self.o.ready),
            self.idle.eq(ctrl.idle), self.config_error.eq(ctrl.config_error),
            pvacc.clear.eq(ctrl.row_start),
        ]
        # V writes land one edge after their beat, through a register stage (timing: the producer's
        # datapath into the block RAM's data pins was MCA's worst path): the last beat is written
        # at the edge that leaves LOAD, and V is first read in PV, after SCORE (n_keys >= 1 edges)
        v_we, v_waddr = Signal(name="v_we"), Signal.like(ctrl.v_waddr, name="v_waddr")
        v_wdata = Signal(chunk.size, name="v_wdata")
        m.d.sync += [v_we.eq(ctrl.v_we), v_waddr.eq(ctrl.v_waddr), v_wdata.eq(self.v.payload)]
        m.d.comb += [vmem.w_en.eq(v_we), vmem.w_addr.eq(v_waddr), vmem.w_data.eq(v_wdata)]

        if f.softmax:
            # SCORE: buffer and running maximum; EXP: ScoreExp, weights into the buffer, den = Σ e
            m.submodules.smem = smem = Memory(shape=signed(f.score_width), depth=n_max, init=[])
            s_w, s_r = smem.write_port(), smem.read_port()
            m.submodules.sexp = sexp = ScoreExp(score_width=f.score_width, diff_width=f.diff_width,
                                                scale_mant_bits=f.scale_mant_bits,
                                                scale_shift_bits=f.scale_shift_bits, exp_spec=f.exp_spec)
            smax = Signal(signed(f.score_width))
            den = Signal(shape_of(f.den_fmt))
            x_w = Signal(range(n_max))
            m.d.comb += [s_w.en.eq(ctrl.s_take), s_w.addr.eq(ctrl.s_addr), s_w.data.eq(self.s.payload)]
            with m.If(ctrl.s_take & ((ctrl.s_addr == 0) | (self.s.payload > smax))):
                m.d.sync += smax.eq(self.s.payload)
            with m.If(ctrl.row_start):
                m.d.sync += [den.eq(0), x_w.eq(0)]
            m.d.comb += [s_r.addr.eq(ctrl.x_addr),
                         sexp.score.eq(s_r.data), sexp.smax.eq(smax), sexp.scale_mant.eq(self.scale_mant),
                         sexp.scale_shift.eq(self.scale_shift), sexp.valid_in.eq(ctrl.x_valid)]
            with m.If(sexp.valid_out):
                m.d.comb += [pmem.w_en.eq(1), pmem.w_addr.eq(x_w), pmem.w_data.eq(sexp.y)]
                m.d.sync += [x_w.eq(x_w + 1), den.eq(den + sexp.y)]
        else:
            m.d.comb += [pmem.w_en.eq(ctrl.s_take), pmem.w_addr.eq(ctrl.s_addr), pmem.w_data.eq(self.s.payload)]

        # PV datapath: t0 addresses, t2 words from the read registers (PV_ISSUE_DELAY), then the
        # PVAccumulator's operand and product registers and the accumulate
        m.d.comb += [pmem.r_addr.eq(ctrl.p_addr), vmem.r_addr.eq(ctrl.v_raddr),
                     pmem.r_en.eq(1), pmem.r_data_en.eq(1), vmem.r_en.eq(1), vmem.r_data_en.eq(1)]
        m.d.comb += [pvacc.p.eq(pmem.r_data), pvacc.v.eq(vmem.r_data),
                     pvacc.chunk.eq(ctrl.pv_chunk), pvacc.valid.eq(ctrl.pv_valid)]

        # NORM datapath: straight into the output stream, clock-enabled by o.ready
        if f.softmax:
            m.submodules.norm = norm = Normalizer(recip_spec=f.recip_spec, acc_fmt=f.acc_fmt, out_fmt=f.out_fmt,
                                                  d=self._d, lanes=L)
            m.d.comb += norm.den.eq(den)
        else:
            m.submodules.norm = norm = ProbNormalizer(acc_fmt=f.acc_fmt, out_fmt=f.out_fmt, d=self._d, lanes=L)
        m.d.comb += [norm.acc.eq(pvacc.acc), norm.chunk.eq(ctrl.n_chunk), norm.valid_in.eq(ctrl.n_valid),
                     norm.en.eq(~stall), self.o.payload.eq(norm.result), self.o.valid.eq(norm.valid_out)]
        with m.If(ctrl.load_done):
            m.d.sync += self.overflow.eq(0)
        with m.If(self.o.valid & self.o.ready & norm.overflow):
            m.d.sync += self.overflow.eq(1)
        return m
