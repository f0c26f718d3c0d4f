"""Post-processing element (PPE) on top of each systolic-array column (DESIGN §4, seed 001 §IV-B(1)).

Inputs from the column: the partial sum leaving the top PE (``psum``, DF1), the bottom operand
leaving the top PE (``y_top``: AP in the output phase, the bias in LSH value loads), the result
chain (``chain``), and the beat's ``tag`` aligned with ``y_top`` (the PPE delays it by
``TAG_DELAY`` = PE.SUM_LATENCY - PE.PORT_LATENCY = 3 cycles to align it with ``psum``). Per phase (``tag.phase``):

* LSH: ``a = psum + bias`` (bias latched from ``y_top`` by this column's LSH value-load beat,
  aligned to the product's binary point), ``a · (1/w)`` (``tag.scale``), floor, saturate to the
  hash format (overflow flagged).
* Linear: round half up / saturate to the Q̄K̄V̄ format. With ``tag.shortcut`` the rounded value is
  also broadcast on the column's shortcut bus (``sc_valid``/``sc_row``/``sc_value``, and ``sc_sel``,
  the row one-hot, for the PEs) ``SHORTCUT_LATENCY`` = 2 cycles after ``psum``, row = index of the beat in the phase.
* Score: multiply by 1/√d (constant, ``score_scale_frac`` fractional bits), round/saturate to the
  score format; the max ``m`` of the beats without ``tag.sub`` (the first k1) is tracked and
  ``sat(s - m)`` is output for beats with ``tag.sub`` (the following k2); ``m = 0`` if no max beat.
* Output: ``Σ AP`` of the ``y_top`` values of DF2 beats (saturating), latched as the denominator
  when the column copies its result registers into the chain (``copy``, driven by the PPE one cycle
  after the last DF2 beat's tag is aligned with ``psum``); each of the d chain values that follows
  is divided by ``Σ AP / 2`` in a :class:`hdl.arith.ReciprocalScaler` (LUT from golden.lut).

d_in tiling (DESIGN §9): a dot product longer than d arrives as passes of the same beats; a beat
flagged ``partial`` (not the last pass) stores ``sat(psum + earlier)`` in the column's partial-sum
buffer (``psum_depth`` words of ``acc_width`` + 1 flag bits, indexed by the beat's position in its
pass) and gives no result; one flagged ``accumulate`` (not the first pass) adds the stored total.
The last pass then goes through the stages above: the result is rounded / hashed once. Linear
beats may carry a bias on ``y_top`` (``lin_bias_fmt``), added exactly with the LSH bias's adder.

Latencies: ``res`` holds a DF1 result ``LATENCY`` = 6 cycles after ``psum``; the ``out`` row k
(k = 0 for row d-1) holds ``1 + ReciprocalScaler.LATENCY + k`` cycles after ``copy``.

Parts (each a component with its own latency, tested alone in tests/test_ppe_parts.py):
:class:`PsumBuffer` (d_in tiling), :class:`PpeBiasAdder` (pass total and bias, combinational),
:class:`PpeScaler` (the DF1 pipeline A..D), :class:`PpeShortcut` (the shortcut bus) and
:class:`PpeNormalizer` (Σ AP and the reciprocal scaler); :class:`PPE` keeps the tag delay line
and ``copy``, and derives its latencies from theirs.
"""

from __future__ import annotations

from typing import Any

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data
from amaranth.lib.wiring import In, Out

from golden.lut import RecipSpec
from golden.systolic import OP_DF1, OP_DF2, OP_LOAD, PH_LINEAR, PH_LSH, PH_SCORE, SystolicConfig

from .arith import ReciprocalScaler, _dsp_pieces
from .checked import CheckedComponent
from .fixed import index_bits, round_shift_const, saturate, shape_of
from .pe import PE as _PE
from .primitives import RegisteredReadMemory, registered_multiply
from .registry import BlockSpec, Param, ParamError

__all__ = ["PPE", "tag_layout"]


def tag_layout(cfg: SystolicConfig) -> data.StructLayout:
    """Per-beat control seen by the PPEs."""
    return data.StructLayout({
        "op": unsigned(2), "col": unsigned(index_bits(cfg.b)), "phase": unsigned(2), "first": unsigned(1),
        "last": unsigned(1), "sub": unsigned(1), "shortcut": unsigned(1), "scale": unsigned(cfg.inv_w_fmt.width),
        "accumulate": unsigned(1), "partial": unsigned(1),
    })


def _saturated(m: Module, value, fmt, name: str) -> tuple[Signal, Signal]:
    """saturate() into named signals (so the expression is built once)."""
    raw = Signal(signed(len(value) + 1), name=f"{name}_raw")
    m.d.comb += raw.eq(value)
    sat, over = saturate(raw, fmt)
    out, flag = Signal(shape_of(fmt), name=name), Signal(name=f"{name}_over")
    m.d.comb += [out.eq(sat), flag.eq(over)]
    return out, flag


def _checked_cfg(cfg: object) -> None:
    if not isinstance(cfg, SystolicConfig):
        raise TypeError(f"cfg must be a SystolicConfig, not {cfg!r}")


class PsumBuffer(CheckedComponent):
    """The PPE's partial-sum buffer for d_in tiling (DESIGN §9): one word (``acc_width`` bits and
    a saturation flag) per beat of a pass, indexed by the beat's position in its pass.

    A beat is announced ``READ_LEAD`` cycles before its psum (``rd_df1`` / ``rd_first`` /
    ``rd_tiled`` from the PPE's input tag); the word is read then into a RegisteredReadMemory
    (address and word registered: on ECP5 the DP16KD output register, so block-RAM clock-to-out
    never feeds logic) and appears on ``earlier`` / ``earlier_sat`` with the psum, masked by
    ``accumulate`` (given one cycle before the psum). ``w_en`` with the psum writes ``w_total`` /
    ``w_sat`` back to the beat's word. Pass p+1 reaches beat s at least N + loads >= 2 cycles
    after pass p did, so the write of that word may fall in the read's cycle or the next one:
    those two writes are forwarded (the primitive leaves a same-cycle read-during-write
    unspecified; it is never used). ``error`` (with the psum): a tiled beat past ``depth``.
    """

    #: cycles from the announcement (rd_*) to the psum the word is added to
    READ_LEAD = 3

    def __init__(self, *, acc_width: int, depth: int) -> None:
        self._acc_width, self._depth = acc_width, depth
        super().__init__({
            "rd_df1": In(1), "rd_first": In(1), "rd_tiled": In(1), "accumulate": In(1),
            "w_total": In(signed(acc_width)), "w_sat": In(1), "w_en": In(1),
            "earlier": Out(signed(acc_width)), "earlier_sat": Out(1), "error": Out(1),
        })

    @classmethod
    def check_params(cls, *, acc_width: int, depth: int) -> None:
        for name, value in (("acc_width", acc_width), ("depth", depth)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"PsumBuffer {name}={value!r} must be a positive int")

    acc_width = property(lambda self: self._acc_width)
    depth = property(lambda self: self._depth)

    def elaborate(self, platform):
        m = Module()
        depth, aw = self._depth, self._acc_width
        word = unsigned(aw + 1)
        # (on ECP5 a DP16KD when deeper than LUTRAM_MAX_DEPTH, else LUT RAM + fabric register)
        m.submodules.mem = buf = RegisteredReadMemory(width=aw + 1, depth=depth)
        beat_count = Signal(range(depth + 1))
        beat_index = Mux(self.rd_first, 0, beat_count)
        index = [beat_index] + [Signal(range(depth + 1), name=f"index{k}") for k in range(1, self.READ_LEAD + 1)]
        errors = [Signal(name=f"error{k}") for k in range(1, self.READ_LEAD)]
        with m.If(self.rd_df1):
            m.d.sync += beat_count.eq(Mux(beat_index == depth, depth, beat_index + 1))
            m.d.sync += errors[0].eq(self.rd_tiled & (beat_index == depth))
        with m.Else():
            m.d.sync += errors[0].eq(0)
        m.d.sync += [errors[k].eq(errors[k - 1]) for k in range(1, len(errors))]
        m.d.sync += self.error.eq(errors[-1])
        m.d.sync += [index[k].eq(index[k - 1]) for k in range(1, len(index))]
        rd_addr = Signal(range(depth + 1), name="rd_addr")
        m.d.comb += [rd_addr.eq(beat_index), buf.r_addr.eq(rd_addr), buf.r_en.eq(1), buf.r_data_en.eq(1)]
        # c (read issued): a write to the same word now is not seen by the read -> remember it.
        # c+1: the word in the output register next; a write to it now is remembered as the newer one.
        # c+2: earlier = newest of (forwarded write, word), masked by accumulate.
        hit_now, data_now = Signal(), Signal(word)
        m.d.sync += [hit_now.eq(buf.w_en & (buf.w_addr == buf.r_addr)), data_now.eq(buf.w_data)]
        fwd_hit, fwd_word = Signal(), Signal(word)
        hit_next = buf.w_en & (buf.w_addr == index[1])
        m.d.sync += [fwd_hit.eq(hit_now | hit_next), fwd_word.eq(Mux(hit_next, buf.w_data, data_now))]
        newest = Mux(fwd_hit, fwd_word, buf.r_data)
        m.d.sync += [self.earlier.eq(Mux(self.accumulate, newest[:aw].as_signed(), 0)),
                     self.earlier_sat.eq(self.accumulate & newest[aw])]
        m.d.comb += [buf.w_addr.eq(index[-1]), buf.w_data.eq(Cat(self.w_total, self.w_sat)),
                     buf.w_en.eq(self.w_en & (index[-1] != depth))]
        return m


class PpeBiasAdder(CheckedComponent):
    """The PPE's first adder: ``a = sat(psum + earlier) + bias`` (exact), and the pass total
    ``sat(psum + earlier)`` with its saturation flag for the partial-sum buffer; combinational
    (``LATENCY`` = 0 from ``psum`` / ``earlier``).

    The bias of the beat is selected a cycle ahead from ``tag1`` / ``y1`` (tag and bottom operand
    one cycle before psum) and registered: LSH beats use the column's bias, latched from ``y2``
    (the operand aligned with psum) by this column's LSH value-load beat (bypassed when that beat
    is the one just before, so a bias change never overtakes the previous phase's last beats);
    linear beats their own ``y`` lane; other phases none. psum + earlier + bias is one carry chain
    (a carry-save layer first); when the pass total saturates the limit + bias is taken instead.
    """

    LATENCY = 0

    def __init__(self, *, cfg: SystolicConfig, col: int = 0) -> None:
        self._cfg, self._col = cfg, col
        super().__init__({
            "psum": In(signed(cfg.acc_width)), "psum_sat": In(1),
            "earlier": In(signed(cfg.acc_width)), "earlier_sat": In(1),
            "tag1": In(tag_layout(cfg)), "y1": In(signed(cfg.y_width)), "y2": In(signed(cfg.y_width)),
            "a": Out(signed(cfg.acc_width + 1)),
            "total": Out(shape_of(cfg.acc_fmt(0))), "total_sat": Out(1),
        })

    @classmethod
    def check_params(cls, *, cfg: SystolicConfig, col: int) -> None:
        _checked_cfg(cfg)
        if not isinstance(col, int) or not 0 <= col < cfg.b:
            raise ValueError(f"PPE col={col!r} out of range [0, {cfg.b - 1}]")

    cfg = property(lambda self: self._cfg)
    col = property(lambda self: self._col)

    def elaborate(self, platform):
        cfg, tag1 = self._cfg, self.tag1
        m = Module()
        acc_max, acc_min = (1 << (cfg.acc_width - 1)) - 1, -(1 << (cfg.acc_width - 1))
        bias = Signal(shape_of(cfg.bias_fmt))
        bias_load = Signal()   # y2 is this column's LSH value load (decided a cycle ahead)
        m.d.sync += bias_load.eq((tag1.op == OP_LOAD) & (tag1.col == self._col) & (tag1.phase == PH_LSH))
        with m.If(bias_load):
            m.d.sync += bias.eq(self.y2)
        bias_now = Mux(bias_load, self.y2, bias)
        bias_sel_comb = Signal(signed(cfg.acc_width + 1), name="bias_sel_comb")
        m.d.comb += bias_sel_comb.eq(Mux(tag1.phase == PH_LSH, bias_now << (cfg.lsh_frac - cfg.bias_fmt.frac),
                                         Mux(tag1.phase == PH_LINEAR,
                                             self.y1 << (cfg.linear_frac - cfg.lin_bias_fmt.frac), 0)))
        bias_sel = Signal(signed(cfg.acc_width + 1))
        m.d.sync += bias_sel.eq(bias_sel_comb)

        pass_sum = Signal(signed(cfg.acc_width + 1))
        m.d.comb += pass_sum.eq(self.psum + self.earlier)
        total, o_total = _saturated(m, pass_sum, cfg.acc_fmt(0), "pass_total")
        m.d.comb += [self.total.eq(total), self.total_sat.eq(self.psum_sat | self.earlier_sat | o_total)]
        wide = signed(cfg.acc_width + 3)
        csa_x, csa_c = Signal(wide), Signal(wide)
        ops = [Signal(wide, name=f"csa_in{k}") for k in range(3)]
        m.d.comb += [ops[0].eq(self.psum), ops[1].eq(self.earlier), ops[2].eq(bias_sel)]
        m.d.comb += [csa_x.eq(ops[0] ^ ops[1] ^ ops[2]),
                     csa_c.eq(((ops[0] & ops[1]) | (ops[0] & ops[2]) | (ops[1] & ops[2])) << 1)]
        biased = Signal(wide)
        m.d.comb += biased.eq(csa_x + csa_c)
        max_plus_bias, min_plus_bias = Signal(signed(cfg.acc_width + 2)), Signal(signed(cfg.acc_width + 2))
        m.d.comb += [max_plus_bias.eq(acc_max + bias_sel), min_plus_bias.eq(acc_min + bias_sel)]
        # (the pass total's own overflow flag; the wide sum's sign says which limit)
        m.d.comb += self.a.eq(Mux(o_total, Mux(pass_sum[-1], min_plus_bias, max_plus_bias), biased))
        return m


class _CfgPart(CheckedComponent):
    """A part of the PPE configured by the array's :class:`SystolicConfig` alone (``cfg``)."""

    @classmethod
    def check_params(cls, *, cfg: SystolicConfig) -> None:
        _checked_cfg(cfg)

    cfg = property(lambda self: self._cfg)


class PpeScaler(_CfgPart):
    """The PPE's DF1 result pipeline: A register ``a``, P partial products (DSP-sized, registered),
    B sum, R per-phase rounding shift, C saturation and phase select (LSH: ``a · scale`` floored
    to the hash format; linear: rounded to Q̄K̄V̄; score: ``a · 1/√d`` rounded to the score
    format), D score max: the running max of the beats without ``sub`` is subtracted (saturating)
    from the beats with ``sub``. ``res*`` hold the result ``LATENCY`` cycles after ``a``;
    ``a_reg`` / ``tag_a`` are the A stage (``A_LATENCY``), for the shortcut bus.
    """

    #: a (with tag, sat, valid) -> res
    LATENCY = 6
    #: a -> a_reg / tag_a
    A_LATENCY = 1

    def __init__(self, *, cfg: SystolicConfig) -> None:
        self._cfg = cfg
        tl = tag_layout(cfg)
        super().__init__({
            "a": In(signed(cfg.acc_width + 1)), "tag": In(tl), "sat": In(1), "valid": In(1),
            "a_reg": Out(signed(cfg.acc_width + 1)), "tag_a": Out(tl),
            "res_valid": Out(1), "res": Out(signed(cfg.res_width)), "res_over": Out(1), "res_tag": Out(tl),
        })

    def elaborate(self, platform):
        cfg = self._cfg
        m = Module()
        tl = tag_layout(cfg)
        sat_a, val_a = Signal(), Signal()
        m.d.sync += [self.a_reg.eq(self.a), self.tag_a.eq(self.tag), sat_a.eq(self.sat), val_a.eq(self.valid)]

        # The multiplier operands (``a`` and the phase's scale) are registered inside the
        # multiplier (a DSP's input registers on ECP5); the wide product is split into DSP-sized
        # partial products with registered outputs, summed in the next stage.
        mult_width = max(cfg.inv_w_fmt.width, cfg.score_scale_frac + 1)
        mult_comb = Signal(unsigned(mult_width))
        m.d.comb += mult_comb.eq(Mux(self.tag.phase == PH_LSH, self.tag.scale,
                                     Mux(self.tag.phase == PH_SCORE, cfg.inv_sqrt_d, 1)))
        partials = []
        for a_lo, a_piece in _dsp_pieces(self.a):
            for m_lo, m_piece in _dsp_pieces(mult_comb):
                part, _ = registered_multiply(m, a_piece, m_piece, platform=platform, name=f"part_{a_lo}_{m_lo}_")
                partials.append((a_lo + m_lo, part))
        tag_p, sat_p, val_p = Signal(tl), Signal(), Signal()
        m.d.sync += [tag_p.eq(self.tag_a), sat_p.eq(sat_a), val_p.eq(val_a)]
        prod = Signal(signed(cfg.acc_width + 1 + mult_width + 1))
        total = partials[0][1] << partials[0][0]
        for shift_by, part in partials[1:]:
            total = total + (part << shift_by)
        tag_b, sat_b, val_b = Signal(tl), Signal(), Signal()
        m.d.sync += [prod.eq(total), tag_b.eq(tag_p), sat_b.eq(sat_p), val_b.eq(val_p)]

        # R: the per-phase rounding shifts (wide carry chains), registered; C: saturation (bit
        # tests) and the phase select.
        rounded = []
        for name, value in (
                ("hash", prod >> (cfg.lsh_frac + cfg.inv_w_fmt.frac)),
                ("lin", round_shift_const(prod, cfg.linear_frac - cfg.qkv_fmt.frac, cfg.qkv_fmt.rounding)),
                ("score", round_shift_const(prod, cfg.score_frac + cfg.score_scale_frac - cfg.score_fmt.frac,
                                            cfg.score_fmt.rounding))):
            reg = Signal(value.shape(), name=f"{name}_rounded")
            m.d.sync += reg.eq(value)
            rounded.append(reg)
        tag_r, sat_r, val_r = Signal(tl), Signal(), Signal()
        m.d.sync += [tag_r.eq(tag_b), sat_r.eq(sat_b), val_r.eq(val_b)]

        hashed, o_hash = _saturated(m, rounded[0], cfg.hash_fmt, "hash")
        lin, o_lin = _saturated(m, rounded[1], cfg.qkv_fmt, "lin")
        score, o_score = _saturated(m, rounded[2], cfg.score_fmt, "score")
        r = Signal(signed(cfg.res_width))
        tag_c, over_c, val_c = Signal(tl), Signal(), Signal()
        with m.Switch(tag_r.phase):
            with m.Case(PH_LSH):
                m.d.sync += [r.eq(hashed), over_c.eq(sat_r | o_hash)]
            with m.Case(PH_LINEAR):
                m.d.sync += [r.eq(lin), over_c.eq(sat_r | o_lin)]
            with m.Default():
                m.d.sync += [r.eq(score), over_c.eq(sat_r | o_score)]
        m.d.sync += [tag_c.eq(tag_r), val_c.eq(val_r)]

        # Score: running max of the first k1 scores, subtracted from the following k2.
        run_max = Signal(shape_of(cfg.score_fmt))
        have_max = Signal()
        prev_max, prev_have = Signal(shape_of(cfg.score_fmt)), Signal()
        m.d.comb += [prev_max.eq(Mux(tag_c.first, 0, run_max)), prev_have.eq(~tag_c.first & have_max)]
        diff, o_diff = _saturated(m, r - prev_max, cfg.score_fmt, "diff")
        is_score = val_c & (tag_c.phase == PH_SCORE)
        with m.If(is_score):
            with m.If(tag_c.sub):
                with m.If(tag_c.first):
                    m.d.sync += [run_max.eq(0), have_max.eq(0)]
            with m.Else():
                m.d.sync += [run_max.eq(Mux(prev_have & (prev_max > r), prev_max, r)), have_max.eq(1)]
        m.d.sync += [
            self.res.eq(Mux(is_score & tag_c.sub, diff, r)),
            self.res_over.eq(Mux(is_score & tag_c.sub, over_c | o_diff, over_c)),
            self.res_valid.eq(val_c),
            self.res_tag.eq(tag_c),
        ]
        return m


class PpeShortcut(_CfgPart):
    """The column's query shortcut bus: a linear DF1 beat with ``shortcut`` (not ``partial``)
    broadcasts ``a`` rounded / saturated to the Q̄K̄V̄ format as row ``sc_row`` (the beat's index
    in its phase; ``sc_sel`` is the row one-hot for the PEs), ``LATENCY`` cycles after ``a`` /
    ``tag`` (the PPE's registered biased sum and its tag)."""

    LATENCY = 1

    def __init__(self, *, cfg: SystolicConfig) -> None:
        self._cfg = cfg
        super().__init__({
            "a": In(signed(cfg.acc_width + 1)), "tag": In(tag_layout(cfg)),
            "sc_valid": Out(1), "sc_row": Out(unsigned(index_bits(cfg.d))), "sc_sel": Out(unsigned(cfg.d)),
            "sc_value": Out(shape_of(cfg.qkv_fmt)),
        })

    def elaborate(self, platform):
        cfg, tag = self._cfg, self.tag
        m = Module()
        sc_value, _ = _saturated(
            m, round_shift_const(self.a, cfg.linear_frac - cfg.qkv_fmt.frac, cfg.qkv_fmt.rounding), cfg.qkv_fmt, "sc")
        sc_count = Signal(unsigned(index_bits(cfg.d) + 1))
        sc_beat = (tag.op == OP_DF1) & (tag.phase == PH_LINEAR) & tag.shortcut & ~tag.partial
        m.d.sync += [self.sc_valid.eq(sc_beat), self.sc_value.eq(sc_value)]
        sc_row = Mux(tag.first, 0, sc_count)
        m.d.sync += self.sc_sel.eq(Mux(sc_beat, Const(1, cfg.d) << sc_row, 0))  # one-hot row select for the PEs
        with m.If(sc_beat):
            m.d.sync += [self.sc_row.eq(sc_row), sc_count.eq(Mux(tag.first, 1, sc_count + 1))]
        return m


class PpeNormalizer(_CfgPart):
    """The PPE's output phase: ``Σ AP`` of the ``y_top`` values of DF2 beats (``df2`` / ``first``
    aligned with ``y_top``; saturating), latched as the denominator by ``copy``; each of the d
    chain values that follow is divided by ``Σ AP / 2`` in a :class:`hdl.arith.ReciprocalScaler`.
    Row k (k = 0 for row d-1) is on ``out`` ``LATENCY + k`` cycles after ``copy``."""

    #: copy -> first out row
    LATENCY = 1 + ReciprocalScaler.LATENCY

    def __init__(self, *, cfg: SystolicConfig) -> None:
        self._cfg = cfg
        super().__init__({
            "y_top": In(signed(cfg.y_width)), "df2": In(1), "first": In(1), "copy": In(1),
            "chain": In(signed(cfg.acc_width)), "chain_sat": In(1),
            "out_valid": Out(1), "out": Out(shape_of(cfg.out_fmt)), "out_over": Out(1), "out_dbz": Out(1),
            "out_row": Out(unsigned(index_bits(cfg.d))),
        })

    def elaborate(self, platform):
        cfg = self._cfg
        m = Module()
        ap_sum = Signal(unsigned(cfg.den_width))
        ap_sat = Signal()
        total, o_sum = _saturated(m, Mux(self.first, 0, ap_sum) + self.y_top, cfg.sum_fmt, "ap_total")
        with m.If(self.df2):
            m.d.sync += [ap_sum.eq(total), ap_sat.eq((ap_sat & ~self.first) | o_sum)]

        den, den_sat = Signal(unsigned(cfg.den_width)), Signal()
        left = Signal(range(cfg.d + 1))
        with m.If(self.copy):
            m.d.sync += [den.eq(ap_sum), den_sat.eq(ap_sat), left.eq(cfg.d)]
        with m.Elif(left != 0):
            m.d.sync += left.eq(left - 1)

        m.submodules.recip = recip = ReciprocalScaler(spec=cfg.recip, value_fmt=cfg.out_value_fmt,
                                                      out_fmt=cfg.out_fmt)
        m.d.comb += [recip.value.eq(self.chain), recip.den.eq(den), recip.valid_in.eq(left != 0),
                     recip.en.eq(1)]
        side = [(Signal(unsigned(index_bits(cfg.d))), Signal()) for _ in range(ReciprocalScaler.LATENCY)]
        m.d.sync += [side[0][0].eq(left - 1), side[0][1].eq(self.chain_sat | den_sat)]
        for k in range(1, len(side)):
            m.d.sync += [side[k][0].eq(side[k - 1][0]), side[k][1].eq(side[k - 1][1])]
        m.d.comb += [
            self.out_valid.eq(recip.valid_out), self.out.eq(recip.result),
            self.out_over.eq(recip.overflow | side[-1][1]), self.out_dbz.eq(recip.div_by_zero),
            self.out_row.eq(side[-1][0]),
        ]
        return m


class PPE(CheckedComponent):
    """The PPE of column ``col``; see the module docstring. Parts: :class:`PsumBuffer`,
    :class:`PpeBiasAdder`, :class:`PpeScaler`, :class:`PpeShortcut`, :class:`PpeNormalizer`."""

    LATENCY = PpeBiasAdder.LATENCY + PpeScaler.LATENCY   # psum -> res
    SHORTCUT_LATENCY = PpeBiasAdder.LATENCY + PpeScaler.A_LATENCY + PpeShortcut.LATENCY  # psum -> sc_value
    TAG_DELAY = _PE.SUM_LATENCY - _PE.PORT_LATENCY  # y_top -> psum of the same beat
    COPY_DELAY = TAG_DELAY  # tag (aligned with y_top) of the last DF2 beat -> copy (after its acc write)
    OUT_LATENCY = PpeNormalizer.LATENCY  # copy -> first out row

    def __init__(self, *, cfg: SystolicConfig, col: int = 0) -> None:
        self._cfg, self._col = cfg, col
        tl = tag_layout(cfg)
        super().__init__({
            "psum": In(signed(cfg.acc_width)), "psum_sat": In(1),
            "y_top": In(signed(cfg.y_width)), "tag": In(tl),
            "chain": In(signed(cfg.acc_width)), "chain_sat": In(1),
            "copy": Out(1),
            "sc_valid": Out(1), "sc_row": Out(unsigned(index_bits(cfg.d))), "sc_sel": Out(unsigned(cfg.d)),
            "sc_value": Out(shape_of(cfg.qkv_fmt)),
            "res_valid": Out(1), "res": Out(signed(cfg.res_width)), "res_over": Out(1), "res_tag": Out(tl),
            "out_valid": Out(1), "out": Out(shape_of(cfg.out_fmt)), "out_over": Out(1), "out_dbz": Out(1),
            "out_row": Out(unsigned(index_bits(cfg.d))),
            "psum_error": Out(1),
        })

    @classmethod
    def check_params(cls, *, cfg: SystolicConfig, col: int) -> None:
        PpeBiasAdder.check_params(cfg=cfg, col=col)

    cfg = property(lambda self: self._cfg)
    col = property(lambda self: self._col)

    @property
    def formats(self) -> dict:
        return self._cfg.formats()

    @property
    def latency(self) -> dict[str, int]:
        return {"res": self.LATENCY, "shortcut": self.SHORTCUT_LATENCY, "copy": self.COPY_DELAY,
                "out": self.OUT_LATENCY}

    @property
    def recip_spec(self) -> RecipSpec:
        return self._cfg.recip

    def elaborate(self, platform):
        cfg = self._cfg
        m = Module()
        tl = tag_layout(cfg)

        # Tag (and y_top) delayed to line up with psum: tags[k] / ys[k] are k cycles after the input.
        tags, ys = [self.tag], [self.y_top]
        for k in range(1, self.TAG_DELAY + 1):
            tags.append(Signal(tl, name=f"tag{k}"))
            ys.append(Signal(signed(cfg.y_width), name=f"y{k}"))
            m.d.sync += [tags[k].eq(tags[k - 1]), ys[k].eq(ys[k - 1])]
        tag2, y2 = tags[self.TAG_DELAY], ys[self.TAG_DELAY]                # lined up with psum
        tag1, y1 = tags[self.TAG_DELAY - 1], ys[self.TAG_DELAY - 1]        # one cycle before psum
        tag_rd = tags[self.TAG_DELAY - PsumBuffer.READ_LEAD]             # the buffer's read lead

        m.submodules.psum_buf = buf = PsumBuffer(acc_width=cfg.acc_width, depth=cfg.psum_depth)
        m.submodules.bias_add = add = PpeBiasAdder(cfg=cfg, col=self._col)
        m.submodules.scaler = scaler = PpeScaler(cfg=cfg)
        m.submodules.shortcut = sc = PpeShortcut(cfg=cfg)
        m.submodules.normalizer = norm = PpeNormalizer(cfg=cfg)
        df1 = tag2.op == OP_DF1
        m.d.comb += [
            # d_in tiling: read the earlier passes' total ahead of psum, write the new one back
            buf.rd_df1.eq(tag_rd.op == OP_DF1), buf.rd_first.eq(tag_rd.first),
            buf.rd_tiled.eq(tag_rd.accumulate | tag_rd.partial), buf.accumulate.eq(tag1.accumulate),
            buf.w_total.eq(add.total), buf.w_sat.eq(add.total_sat), buf.w_en.eq(df1 & tag2.partial),
            self.psum_error.eq(buf.error),
            add.psum.eq(self.psum), add.psum_sat.eq(self.psum_sat), add.earlier.eq(buf.earlier),
            add.earlier_sat.eq(buf.earlier_sat), add.tag1.eq(tag1), add.y1.eq(y1), add.y2.eq(y2),
            # DF1 results (a partial pass gives none)
            scaler.a.eq(add.a), scaler.tag.eq(tag2), scaler.sat.eq(add.total_sat), scaler.valid.eq(df1 & ~tag2.partial),
            self.res_valid.eq(scaler.res_valid), self.res.eq(scaler.res), self.res_over.eq(scaler.res_over),
            self.res_tag.eq(scaler.res_tag),
            # query shortcut bus, from the registered ``a``
            sc.a.eq(scaler.a_reg), sc.tag.eq(scaler.tag_a),
            self.sc_valid.eq(sc.sc_valid), self.sc_row.eq(sc.sc_row), self.sc_sel.eq(sc.sc_sel),
            self.sc_value.eq(sc.sc_value),
            # output phase: Σ AP of the DF2 beats as they arrive, copy, chain through the scaler
            norm.y_top.eq(self.y_top), norm.df2.eq(self.tag.op == OP_DF2), norm.first.eq(self.tag.first),
            norm.copy.eq(self.copy), norm.chain.eq(self.chain), norm.chain_sat.eq(self.chain_sat),
            self.out_valid.eq(norm.out_valid), self.out.eq(norm.out), self.out_over.eq(norm.out_over),
            self.out_dbz.eq(norm.out_dbz), self.out_row.eq(norm.out_row),
        ]
        tag_copy = tags[self.COPY_DELAY - 1]
        m.d.sync += self.copy.eq((tag_copy.op == OP_DF2) & tag_copy.last)
        return m


# ---- registry ------------------------------------------------------------------------------------------
# The array's parameters (formats, DESIGN §2) live in hdl.systolic_array, which imports this module:
# the PPE block's entry (and the old import path of those names) are resolved on first use.
_ARRAY_NAMES = ("ARRAY_PARAMS", "config_from_params", "params_from_config", "validate_params")


def _blocks() -> list[BlockSpec]:
    from .systolic_array import ARRAY_PARAMS, config_from_params, validate_params

    def validate(p: dict) -> None:
        validate_params(p)
        if p["col"] >= p["b"]:
            raise ParamError(f"parameter col={p['col']} out of range: expected < b={p['b']}")

    return [
        BlockSpec(
            name="ppe",
            description="CTA post-processing element: LSH hash, linear rounding + shortcut, score max, output scaling",
            params=ARRAY_PARAMS + (Param("col", 0, "column index (selects the LSH bias load)", min=0, max=63),),
            build=lambda **p: PPE(cfg=config_from_params(p), col=p["col"]),
            validate=validate,
            fpga_params={"b": 8, "d": 16},
        ),
    ]


def __getattr__(name: str) -> Any:
    if name == "BLOCKS":
        globals()["BLOCKS"] = blocks = _blocks()
        return blocks
    if name in _ARRAY_NAMES:
        from . import systolic_array

        return getattr(systolic_array, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
