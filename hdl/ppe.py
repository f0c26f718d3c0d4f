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
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from golden.lut import RecipSpec
from golden.systolic import OP_DF1, OP_DF2, OP_LOAD, PH_LINEAR, PH_LSH, PH_SCORE, ConfigError, SystolicConfig

from .arith import ReciprocalScaler, _dsp_pieces
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


class PPE(wiring.Component):
    """The PPE of column ``col``; see the module docstring."""

    LATENCY = 6          # psum -> res
    SHORTCUT_LATENCY = 2  # psum -> sc_value (from the registered biased sum)
    TAG_DELAY = _PE.SUM_LATENCY - _PE.PORT_LATENCY  # y_top -> psum of the same beat
    COPY_DELAY = TAG_DELAY  # tag (aligned with y_top) of the last DF2 beat -> copy (after its acc write)
    OUT_LATENCY = 1 + ReciprocalScaler.LATENCY  # copy -> first out row

    def __init__(self, *, cfg: SystolicConfig, col: int = 0) -> None:
        self._MustUse__silence = True  # no 'never used' warning when a parameter is rejected
        if not isinstance(cfg, SystolicConfig):
            raise TypeError(f"cfg must be a SystolicConfig, not {cfg!r}")
        if not isinstance(col, int) or not 0 <= col < cfg.b:
            raise ValueError(f"PPE col={col!r} out of range [0, {cfg.b - 1}]")
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
        self._MustUse__silence = False

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

        # Tag (and y_top) delayed to line up with psum.
        tags, ys = [self.tag], [self.y_top]
        for k in range(1, self.TAG_DELAY + 1):
            tags.append(Signal(tl, name=f"tag{k}"))
            ys.append(Signal(signed(cfg.y_width), name=f"y{k}"))
            m.d.sync += [tags[k].eq(tags[k - 1]), ys[k].eq(ys[k - 1])]
        tag2, y2 = tags[self.TAG_DELAY], ys[self.TAG_DELAY]  # lined up with psum

        # ---- d_in tiling: partial-sum buffer (one word per beat of a pass) --------------------------
        # A beat with ``accumulate`` adds the previous passes' total read from the buffer; one with
        # ``partial`` writes the new total back and produces no result. The read is issued three
        # cycles ahead of psum (from the PPE's input tag) into a RegisteredReadMemory (address and
        # word registered: on ECP5 the DP16KD output register, so block-RAM clock-to-out never
        # feeds logic), then is selected into ``earlier``. Pass p+1 reaches beat s at least
        # N + loads >= 2 cycles after pass p did, so the write of that word may fall in the read's
        # cycle or the next one: those two writes are forwarded (the primitive leaves a same-cycle
        # read-during-write unspecified; it is never used).
        depth = cfg.psum_depth
        word = unsigned(cfg.acc_width + 1)
        # (on ECP5 a DP16KD when deeper than LUTRAM_MAX_DEPTH, else LUT RAM + fabric register)
        m.submodules.psum_buf = buf = RegisteredReadMemory(width=cfg.acc_width + 1, depth=depth)
        tag_rd = tags[self.TAG_DELAY - 3]   # three cycles before psum (the input tag)
        beat_count = Signal(range(depth + 1))
        beat_index = Mux(tag_rd.first, 0, beat_count)
        index = [beat_index] + [Signal(range(depth + 1), name=f"index{k}") for k in range(1, 4)]
        errors = [Signal(name=f"psum_error{k}") for k in range(1, 3)]
        with m.If(tag_rd.op == OP_DF1):
            m.d.sync += beat_count.eq(Mux(beat_index == depth, depth, beat_index + 1))
            m.d.sync += errors[0].eq((tag_rd.accumulate | tag_rd.partial) & (beat_index == depth))
        with m.Else():
            m.d.sync += errors[0].eq(0)
        m.d.sync += [errors[1].eq(errors[0]), self.psum_error.eq(errors[1])]
        m.d.sync += [index[k].eq(index[k - 1]) for k in range(1, 4)]
        rd_addr = Signal(range(depth + 1), name="psum_rd_addr")
        m.d.comb += [rd_addr.eq(beat_index), buf.r_addr.eq(rd_addr), buf.r_en.eq(1), buf.r_data_en.eq(1)]
        # c (read issued): a write to the same word now is not seen by the read -> remember it.
        # c+1: the word in the output register next; a write to it now is remembered as the newer one.
        # c+2: earlier = newest of (forwarded write, word), masked by accumulate.
        hit_now, data_now = Signal(), Signal(word)
        m.d.sync += [hit_now.eq(buf.w_en & (buf.w_addr == buf.r_addr)), data_now.eq(buf.w_data)]
        read_word, fwd_hit, fwd_word = buf.r_data, Signal(), Signal(word)
        hit_next = buf.w_en & (buf.w_addr == index[1])
        m.d.sync += [fwd_hit.eq(hit_now | hit_next), fwd_word.eq(Mux(hit_next, buf.w_data, data_now))]
        tag1, y1 = tags[self.TAG_DELAY - 1], ys[self.TAG_DELAY - 1]   # one cycle before psum
        newest = Mux(fwd_hit, fwd_word, read_word)
        earlier, earlier_sat = Signal(signed(cfg.acc_width)), Signal()
        m.d.sync += [earlier.eq(Mux(tag1.accumulate, newest[:cfg.acc_width].as_signed(), 0)),
                     earlier_sat.eq(tag1.accumulate & newest[cfg.acc_width])]

        # The bias of the beat (LSH: latched per column, bypassed when the load beat is the one
        # just before; linear: the beat's y lane), selected a cycle ahead and registered beside
        # ``earlier``.
        acc_fmt = cfg.acc_fmt(0)
        acc_max, acc_min = (1 << (cfg.acc_width - 1)) - 1, -(1 << (cfg.acc_width - 1))
        # LSH bias: latched when this column's LSH value-load beat lines up with psum (so a bias
        # change never overtakes the previous phase's last beats).
        bias = Signal(shape_of(cfg.bias_fmt))
        bias_load = Signal()   # tag2 is this column's LSH value load (decided a cycle ahead)
        m.d.sync += bias_load.eq((tag1.op == OP_LOAD) & (tag1.col == self._col) & (tag1.phase == PH_LSH))
        with m.If(bias_load):
            m.d.sync += bias.eq(y2)
        bias_now = Mux(bias_load, y2, bias)
        bias_sel_comb = Signal(signed(cfg.acc_width + 1), name="bias_sel_comb")
        m.d.comb += bias_sel_comb.eq(Mux(tag1.phase == PH_LSH, bias_now << (cfg.lsh_frac - cfg.bias_fmt.frac),
                                         Mux(tag1.phase == PH_LINEAR, y1 << (cfg.linear_frac - cfg.lin_bias_fmt.frac),
                                             0)))
        bias_sel = Signal(signed(cfg.acc_width + 1))
        m.d.sync += bias_sel.eq(bias_sel_comb)

        # Pass total sat(psum + earlier) (written back, and its overflow) beside the biased sum
        # psum + earlier + bias in one carry chain (a carry-save layer first); the saturated case
        # takes limit + bias (adders beside them): a = sat(psum + earlier) + bias, exact.
        pass_sum = Signal(signed(cfg.acc_width + 1))
        m.d.comb += pass_sum.eq(self.psum + earlier)
        total, o_total = _saturated(m, pass_sum, acc_fmt, "pass_total")
        total_sat = Signal()
        m.d.comb += total_sat.eq(self.psum_sat | earlier_sat | o_total)
        m.d.comb += [buf.w_addr.eq(index[3]), buf.w_data.eq(Cat(total, total_sat)),
                     buf.w_en.eq((tag2.op == OP_DF1) & tag2.partial & (index[3] != depth))]
        wide = signed(cfg.acc_width + 3)
        csa_x, csa_c = Signal(wide), Signal(wide)
        ops = [Signal(wide, name=f"csa_in{k}") for k in range(3)]
        m.d.comb += [ops[0].eq(self.psum), ops[1].eq(earlier), ops[2].eq(bias_sel)]
        m.d.comb += [csa_x.eq(ops[0] ^ ops[1] ^ ops[2]),
                     csa_c.eq(((ops[0] & ops[1]) | (ops[0] & ops[2]) | (ops[1] & ops[2])) << 1)]
        biased = Signal(wide)
        m.d.comb += biased.eq(csa_x + csa_c)

        # ---- DF1 pipeline: A add bias, P partial products, B sum, R round, C saturate, D score max -
        df1 = tag2.op == OP_DF1
        a_comb = Signal(signed(cfg.acc_width + 1))
        a = Signal(signed(cfg.acc_width + 1))
        tag_a, sat_a, val_a = Signal(tl), Signal(), Signal()
        max_plus_bias, min_plus_bias = Signal(signed(cfg.acc_width + 2)), Signal(signed(cfg.acc_width + 2))
        m.d.comb += [max_plus_bias.eq(acc_max + bias_sel), min_plus_bias.eq(acc_min + bias_sel)]
        # (the pass total's own overflow flag; the wide sum's sign says which limit)
        m.d.comb += a_comb.eq(Mux(o_total, Mux(pass_sum[-1], min_plus_bias, max_plus_bias), biased))
        m.d.sync += [
            a.eq(a_comb), tag_a.eq(tag2), sat_a.eq(total_sat), val_a.eq(df1 & ~tag2.partial),
        ]

        # The multiplier operands (``a`` and the phase's scale) are registered inside the
        # multiplier (a DSP's input registers on ECP5); the wide product is split into DSP-sized
        # partial products with registered outputs, summed in the next stage.
        mult_width = max(cfg.inv_w_fmt.width, cfg.score_scale_frac + 1)
        mult_comb = Signal(unsigned(mult_width))
        m.d.comb += mult_comb.eq(Mux(tag2.phase == PH_LSH, tag2.scale,
                                     Mux(tag2.phase == PH_SCORE, cfg.inv_sqrt_d, 1)))
        partials = []
        for a_lo, a_piece in _dsp_pieces(a_comb):
            for m_lo, m_piece in _dsp_pieces(mult_comb):
                part, _ = registered_multiply(m, a_piece, m_piece, platform=platform, name=f"part_{a_lo}_{m_lo}_")
                partials.append((a_lo + m_lo, part))
        tag_p, sat_p, val_p = Signal(tl), Signal(), Signal()
        m.d.sync += [tag_p.eq(tag_a), sat_p.eq(sat_a), val_p.eq(val_a)]
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

        # ---- query shortcut bus (linear phase with shortcut), from the registered ``a`` ----------
        sc_value, _ = _saturated(
            m, round_shift_const(a, cfg.linear_frac - cfg.qkv_fmt.frac, cfg.qkv_fmt.rounding), cfg.qkv_fmt, "sc")
        sc_count = Signal(unsigned(index_bits(cfg.d) + 1))
        sc_beat = (tag_a.op == OP_DF1) & (tag_a.phase == PH_LINEAR) & tag_a.shortcut & ~tag_a.partial
        m.d.sync += [self.sc_valid.eq(sc_beat), self.sc_value.eq(sc_value)]
        sc_row = Mux(tag_a.first, 0, sc_count)
        m.d.sync += self.sc_sel.eq(Mux(sc_beat, Const(1, cfg.d) << sc_row, 0))  # one-hot row select for the PEs
        with m.If(sc_beat):
            m.d.sync += [self.sc_row.eq(sc_row), sc_count.eq(Mux(tag_a.first, 1, sc_count + 1))]

        # ---- output phase: Σ AP, copy, chain through the reciprocal scaler ----------------------
        ap_sum = Signal(unsigned(cfg.den_width))
        ap_sat = Signal()
        total, o_sum = _saturated(m, Mux(self.tag.first, 0, ap_sum) + self.y_top, cfg.sum_fmt, "ap_total")
        with m.If(self.tag.op == OP_DF2):
            m.d.sync += [ap_sum.eq(total), ap_sat.eq((ap_sat & ~self.tag.first) | o_sum)]
        tag_copy = tags[self.COPY_DELAY - 1]
        m.d.sync += self.copy.eq((tag_copy.op == OP_DF2) & tag_copy.last)

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


def config_from_params(p: dict) -> SystolicConfig:
    """SystolicConfig from block parameters (shared by pe / ppe / systolic_array)."""
    from golden.fixed import QFormat, Rounding

    return SystolicConfig(
        b=p["b"], d=p["d"],
        token_fmt=QFormat(p["token_width"], p["token_frac"]),
        dir_fmt=QFormat(p["dir_width"], p["dir_frac"]),
        weight_fmt=QFormat(p["weight_width"], p["weight_frac"]),
        bias_fmt=QFormat(p["bias_width"], p["bias_frac"]),
        inv_w_fmt=QFormat(p["inv_w_width"], p["inv_w_frac"], signed=False),
        qkv_fmt=QFormat(p["qkv_width"], p["qkv_frac"]),
        acc_width=p["acc_width"],
        score_fmt=QFormat(p["score_width"], p["score_frac"]),
        ap_fmt=QFormat(p["ap_width"], p["ap_frac"], signed=False),
        den_width=p["den_width"],
        hash_fmt=QFormat(p["hash_width"], 0, rounding=Rounding.TRUNCATE),
        out_fmt=QFormat(p["out_width"], p["out_frac"]),
        d_in_max=p.get("d_in_max", 1024),
        psum_depth=p.get("psum_depth", 512),
        score_dim=p.get("score_dim", 0),
    )


def params_from_config(cfg: SystolicConfig) -> dict:
    """Block parameters of ``cfg`` (inverse of :func:`config_from_params`)."""
    p = {"b": cfg.b, "d": cfg.d, "acc_width": cfg.acc_width, "den_width": cfg.den_width,
         "hash_width": cfg.hash_fmt.width, "d_in_max": cfg.d_in_max, "psum_depth": cfg.psum_depth,
         "score_dim": cfg.score_dim}
    for name, fmt in (("token", cfg.token_fmt), ("dir", cfg.dir_fmt), ("weight", cfg.weight_fmt),
                      ("bias", cfg.bias_fmt), ("inv_w", cfg.inv_w_fmt), ("qkv", cfg.qkv_fmt),
                      ("score", cfg.score_fmt), ("ap", cfg.ap_fmt), ("out", cfg.out_fmt)):
        p[f"{name}_width"], p[f"{name}_frac"] = fmt.width, fmt.frac
    if config_from_params(p) != cfg:
        raise ValueError("configuration has settings that are not block parameters (rounding modes, scale bits)")
    return p


def _fmt_params(width: int, frac: int, name: str, what: str, lo: int = 2, hi: int = 27) -> tuple[Param, Param]:
    return (Param(f"{name}_width", width, f"{what}: width", min=lo, max=hi),
            Param(f"{name}_frac", frac, f"{what}: fractional bits", min=0, max=hi))


#: parameters shared by ppe and systolic_array (formats, DESIGN §2)
ARRAY_PARAMS: tuple[Param, ...] = (
    Param("b", 8, "array width: columns (batch of b centroids / queries)", min=1, max=64),
    Param("d", 64, "array height: rows (dot-product length per pass, head dimension)", min=2, max=256),
    Param("d_in_max", 1024, "longest LSH / linear dot product (runs in ceil(d_in / d) passes)", min=1, max=65536),
    Param("psum_depth", 512, "PPE partial-sum buffer words: beats per pass of a tiled phase", min=1, max=65536),
    Param("score_dim", 0, "head dimension d_h of the 1/sqrt(d_h) score scale (0: d)", min=0, max=256),
    *_fmt_params(13, 7, "token", "tokens X^Q, X^KV, residuals (signed)"),
    *_fmt_params(12, 9, "dir", "LSH directions A (signed)"),
    *_fmt_params(12, 10, "weight", "weights W^Q, W^K, W^V (signed)"),
    *_fmt_params(12, 8, "bias", "LSH bias b (signed)"),
    *_fmt_params(12, 10, "inv_w", "LSH 1/w (unsigned)"),
    *_fmt_params(12, 6, "qkv", "centroids and Q̄ K̄ V̄ (signed)"),
    Param("acc_width", 36, "PE accumulators / partial sums (signed, saturating)", min=16, max=60),
    *_fmt_params(16, 8, "score", "compressed scores (signed, saturating)"),
    *_fmt_params(16, 10, "ap", "aggregated probabilities AP (unsigned)", hi=26),
    Param("den_width", 24, "Σ AP accumulator width (unsigned, saturating)", min=4, max=48),
    Param("hash_width", 8, "hash values (signed integers, saturating)", min=2, max=27),
    *_fmt_params(12, 6, "out", "normalized outputs (signed, saturating)"),
)


def validate_params(p: dict) -> None:
    for name in ("token", "dir", "weight", "bias", "inv_w", "qkv", "score", "ap", "out"):
        if p[f"{name}_frac"] >= p[f"{name}_width"] + (1 if name in ("inv_w", "ap") else 0):
            raise ParamError(f"parameter {name}_frac={p[f'{name}_frac']} out of range: expected < {name}_width")
    try:
        config_from_params(p)
    except ConfigError as exc:  # its field is a SystolicConfig setting: token_fmt.frac -> token_frac
        name = exc.field.replace("_fmt.", "_").replace("_fmt", "")
        raise ParamError(f"parameter {name}: {str(exc).removeprefix('SystolicConfig ')}") from None


def _validate_ppe(p: dict) -> None:
    validate_params(p)
    if p["col"] >= p["b"]:
        raise ParamError(f"parameter col={p['col']} out of range: expected < b={p['b']}")


BLOCKS = [
    BlockSpec(
        name="ppe",
        description="CTA post-processing element: LSH hash, linear rounding + shortcut, score max, output scaling",
        params=ARRAY_PARAMS + (Param("col", 0, "column index (selects the LSH bias load)", min=0, max=63),),
        build=lambda **p: PPE(cfg=config_from_params(p), col=p["col"]),
        validate=lambda p: _validate_ppe(p),
        fpga_params={"b": 8, "d": 16},
    ),
]
