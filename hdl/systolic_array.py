"""The CTA systolic array: b columns x d rows of PEs, a PPE per column and the left-edge column of
subtractors for residual tokens (DESIGN §4, seed 001 §IV-B(1), §V-B, Fig. 8, Fig. 10).

Interface (``amaranth.lib.stream``):

* ``i`` (sink, with ``ready``): one *beat* per transfer, the wavefront entering the array: ``x`` (d
  left operands, one per row), ``c`` (d centroid values for the residual subtractors), ``y`` (b
  bottom operands, one per column) and the control of the beat: ``op`` (LOAD / DF1 / DF2 / NOP),
  ``col`` (LOAD target column), ``phase`` (LSH / LINEAR / SCORE / OUTPUT, for the PPEs), ``first`` /
  ``last`` of a phase, ``sub`` (score beats after the first k1), ``shortcut`` (linear Q̄ beats
  feeding the query shortcut), ``residual`` (hash ``x - c``) and ``scale`` (LSH 1/w).
  :func:`golden.systolic.build_program` produces these beats from matrices.
* ``res`` (source, ``valid``/``payload`` without ``ready``): per DF1 beat, the b PPE results (hash / Q̄K̄V̄ / score) with
  per-column overflow flags and the beat's phase/first/last, ``RES_LATENCY`` = b + d + 9 cycles
  after the beat's transfer.
* ``out`` (source, ``valid``/``payload`` without ``ready``): per output phase, d beats (rows d-1,
  d-2, ..., 0) of b normalized outputs with overflow and div-by-zero flags; row d-1 appears ``OUT_LATENCY`` cycles
  after the transfer of the phase's last beat (``OUT_LATENCY`` = b + d + 4 + the reciprocal
  scaler's latency).
* ``overflow`` (sticky: any flagged result or residual), ``residual_overflow`` (sticky),
  ``protocol_error`` (sticky: a shortcut phase was interrupted by a bubble).

Timing: a beat transferred in cycle t sits in the input register (residual subtractors) at t+1,
reaches PE (i, j) at t+2+i+j (row skew j at the left edge, column skew i at the bottom), its partial
sum leaves the top of column i at t+i+d+4, and the PPE result is deskewed to line up the b columns.
The row/column skew, the tag line and the deskew are fixed delay lines (:mod:`hdl.delay_line`: LUT RAM
with one shared write pointer, registers for delays <= 2; ``skew="memory"``, the default) or the
register triangles (``skew="registers"``); same cycles and results.
Consecutive phases are issued back to back (Fig. 10): keeping value registers (a) costs nothing,
reloading them (b) costs one LOAD beat per column, the query shortcut (c) holds ``ready`` low for
``SHORTCUT_GAP`` = 4 cycles after the last Q̄ beat, and an output phase (d) shifts its results up
the separate result chain while the next phases run; only a second output phase must start at
least d cycles after the previous output phase's last beat (``ready`` is held low until then).

d_in tiling (DESIGN §9): an LSH or linear dot product longer than d (up to ``d_in_max``) is issued
as ``ceil(d_in / d)`` passes, each reloading the value registers with its slice and re-sending the
phase's stream beats with that slice; beats carry ``accumulate`` (not the first pass) and ``partial``
(not the last pass). Each PPE keeps the running totals in its partial-sum buffer (``psum_depth``
words, see :mod:`hdl.ppe`); only the last pass produces results. A pass costs its beats plus one
LOAD beat per loaded column. Score dot products stay at most d long (the queries sit in the value
registers). A shortcut (Q̄) phase may have d_out < d beats; the input is then held
``SHORTCUT_GAP + d - d_out`` cycles (:func:`golden.systolic.shortcut_gap` with ``gap=SHORTCUT_GAP``).
``protocol_error`` also reports a tiled pass longer than ``psum_depth`` beats.

Parts: :class:`ArrayInputGate` (the ``ready`` holds above) and :class:`ArrayInputStage` (input
register and residual subtractors), tested alone in tests/test_systolic_array.py; the PEs are
inlined (:func:`hdl.pe.pe_logic`), the PPEs are :class:`hdl.ppe.PPE` submodules. The array's block
parameters (``ARRAY_PARAMS``, :func:`config_from_params`, ...) are defined here and shared with
the ``ppe`` and ``cta`` blocks.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from golden.systolic import OP_DF1, OP_DF2, OP_LOAD, ConfigError, SystolicConfig

from .checked import CheckedComponent
from .delay_line import DelayLine, DelayTimebase
from .fixed import index_bits, shape_of
from .pe import PE, op_layout, pe_logic
from .ppe import PPE, tag_layout
from .registry import BlockSpec, Param, ParamError

__all__ = ["SystolicArray", "ArrayInputGate", "ArrayInputStage", "SHORTCUT_GAP", "beat_layout", "res_layout",
           "out_layout", "array_latencies",
           "ARRAY_PARAMS", "config_from_params", "params_from_config", "validate_params"]

#: idle input cycles after the last beat of a shortcut (Q̄) phase of d beats: row f must latch
#: Q̄[i][f] from its column's shortcut bus (``PPE.SHORTCUT_LATENCY`` after the partial sum) before
#: the next phase's first beat selects that row's operand (the PE's bypass takes it in the cycle it
#: arrives). One cycle less lets a score beat multiply a stale query (tests/test_systolic_array.py
#: fails); the paper's unregistered PE needs 1. Golden cycle models take it as ``gap``.
SHORTCUT_GAP = PPE.SHORTCUT_LATENCY + 2


def beat_layout(cfg: SystolicConfig) -> data.StructLayout:
    return data.StructLayout({
        "x": data.ArrayLayout(signed(cfg.x_width), cfg.d),
        "c": data.ArrayLayout(signed(cfg.qkv_fmt.width), cfg.d),
        "y": data.ArrayLayout(signed(cfg.y_width), cfg.b),
        "op": unsigned(2), "col": unsigned(index_bits(cfg.b)), "phase": unsigned(2), "first": unsigned(1),
        "last": unsigned(1), "sub": unsigned(1), "shortcut": unsigned(1), "residual": unsigned(1),
        "scale": unsigned(cfg.inv_w_fmt.width), "accumulate": unsigned(1), "partial": unsigned(1),
    })


def res_layout(cfg: SystolicConfig) -> data.StructLayout:
    return data.StructLayout({
        "data": data.ArrayLayout(signed(cfg.res_width), cfg.b), "over": unsigned(cfg.b),
        "phase": unsigned(2), "first": unsigned(1), "last": unsigned(1),
    })


def out_layout(cfg: SystolicConfig) -> data.StructLayout:
    return data.StructLayout({
        "data": data.ArrayLayout(shape_of(cfg.out_fmt), cfg.b), "over": unsigned(cfg.b), "dbz": unsigned(cfg.b),
        "row": unsigned(index_bits(cfg.d)),
    })


def _valid_only(layout: data.Layout) -> wiring.Signature:
    """A source without backpressure (results appear at a fixed latency; consumers always accept).
    A ``stream.Signature(always_ready=True)`` would have a constant ``ready`` that cannot be a port."""
    return wiring.Signature({"valid": Out(1), "payload": Out(layout)})


class ArrayInputGate(CheckedComponent):
    """The array's input gate (Fig. 10 (c), (d)): ``ready`` is held low ``gap + d - d_out`` cycles
    after the last beat of a shortcut (Q̄) phase of d_out <= d beats, and an output phase's first
    DF2 beat waits until ``d`` cycles after the previous output phase's last beat.
    ``error`` (combinational, for the sticky ``protocol_error``): a shortcut phase interrupted by
    a bubble or longer than d beats. ``beat`` is the offered beat (its control fields are read)."""

    def __init__(self, *, cfg: SystolicConfig, gap: int) -> None:
        self._cfg, self._gap = cfg, gap
        super().__init__({"valid": In(1), "beat": In(beat_layout(cfg)),
                          "ready": Out(1), "fire": Out(1), "error": Out(1)})

    @classmethod
    def check_params(cls, *, cfg: SystolicConfig, gap: int) -> None:
        if not isinstance(cfg, SystolicConfig):
            raise TypeError(f"cfg must be a SystolicConfig, not {cfg!r}")
        if not isinstance(gap, int) or isinstance(gap, bool) or gap < 0:
            raise ValueError(f"gap={gap!r} must be an int >= 0")

    cfg = property(lambda self: self._cfg)
    gap = property(lambda self: self._gap)

    def elaborate(self, platform):
        m = Module()
        d, gap, beat, fire = self._cfg.d, self._gap, self.beat, self.fire
        hold = Signal(range(gap + d + 1))
        since_df2 = Signal(range(d + 1), init=d)
        df2_blocked = (beat.op == OP_DF2) & beat.first & (since_df2 < d)
        m.d.comb += [self.ready.eq((hold == 0) & ~df2_blocked), fire.eq(self.valid & self.ready)]
        sc_beat = fire & (beat.op == OP_DF1) & beat.shortcut
        sc_beats = Signal(range(d + 2))
        sc_now = Mux(beat.first, 1, sc_beats + 1)
        with m.If(sc_beat):
            m.d.sync += sc_beats.eq(Mux(sc_now > d, d + 1, sc_now))
        with m.If(sc_beat & beat.last):
            m.d.sync += hold.eq(gap + d - Mux(sc_now > d, d, sc_now))
        with m.Elif(hold != 0):
            m.d.sync += hold.eq(hold - 1)
        with m.If(fire & (beat.op == OP_DF2) & beat.last):
            m.d.sync += since_df2.eq(1)
        with m.Elif(since_df2 != d):
            m.d.sync += since_df2.eq(since_df2 + 1)
        sc_open = Signal()
        with m.If(sc_beat):
            m.d.sync += sc_open.eq(~beat.last)
        m.d.comb += self.error.eq((sc_open & ~fire) | (sc_beat & (sc_now > d)))
        return m


class ArrayInputStage(CheckedComponent):
    """The array's input register with the left-edge residual subtractors (seed 001 Fig. 8):
    ``x - c`` (``c`` aligned to the token format, saturating; ``residual_over`` flags a lane
    that saturated, combinationally with ``fire``) replaces ``x`` in residual beats. Registers,
    ``LATENCY`` cycles after the beat: ``x`` (d lanes), ``y`` (b lanes), ``op`` (the
    :func:`hdl.pe.op_layout` of the beat, NOP when ``fire`` is low) and ``tag`` (the
    :func:`hdl.ppe.tag_layout`), as plain packed vectors (few named signals in the netlist)."""

    LATENCY = 1

    def __init__(self, *, cfg: SystolicConfig) -> None:
        self._cfg = cfg
        super().__init__({
            "beat": In(beat_layout(cfg)), "fire": In(1),
            "x": Out(cfg.x_width * cfg.d), "y": Out(cfg.y_width * cfg.b),
            "op": Out(op_layout(cfg.b).size), "tag": Out(tag_layout(cfg).size), "residual_over": Out(1),
        })

    @classmethod
    def check_params(cls, *, cfg: SystolicConfig) -> None:
        ArrayInputGate.check_params(cfg=cfg, gap=0)

    cfg = property(lambda self: self._cfg)

    def elaborate(self, platform):
        cfg, beat = self._cfg, self.beat
        m = Module()
        xw, tw = cfg.x_width, cfg.token_fmt.width
        shift = cfg.token_fmt.frac - cfg.qkv_fmt.frac
        lanes, res_over = [], []
        tmin, tmax = Const(cfg.token_fmt.min_int, tw), Const(cfg.token_fmt.max_int, tw)
        for j in range(cfg.d):
            diff = Signal(signed(tw + 1), name=f"residual{j}")
            m.d.comb += diff.eq(beat.x[j] - (beat.c[j] << shift))
            over = diff[tw] ^ diff[tw - 1]   # a (tw+1)-bit difference overflowed iff its top bits differ
            res_over.append(over)
            sat = Mux(over, Mux(diff[tw], tmin, tmax), diff[:tw]).as_signed()
            lanes.append(Mux(beat.residual, sat, beat.x[j])[:xw])
        m.d.sync += self.x.eq(Cat(*lanes))
        m.d.comb += self.residual_over.eq(self.fire & beat.residual & Cat(*res_over).any())
        m.d.sync += self.y.eq(beat.y.as_value())
        op = Mux(self.fire, beat.op, 0)
        col_hot = (Const(1, cfg.b) << beat.col)[:cfg.b]
        m.d.sync += [
            self.op.eq(Cat(op == OP_LOAD, op == OP_DF1, op == OP_DF2, beat.first, col_hot)),
            self.tag.eq(Cat(op, beat.col, beat.phase, beat.first, beat.last, beat.sub, beat.shortcut, beat.scale,
                            beat.accumulate, beat.partial)),
        ]
        return m


class SystolicArray(CheckedComponent):
    """See the module docstring."""

    #: implementations of the input skew / output deskew (``skew=``): delay lines in memory, or the
    #: register triangles (the previous implementation; same cycles and results)
    SKEWS = ("memory", "registers")

    def __init__(self, *, cfg: SystolicConfig, skew: str = "memory") -> None:
        self._cfg = cfg
        self._skew = skew
        super().__init__({
            "i": In(stream.Signature(beat_layout(cfg))),
            "res": Out(_valid_only(res_layout(cfg))),
            "out": Out(_valid_only(out_layout(cfg))),
            "overflow": Out(1), "residual_overflow": Out(1), "protocol_error": Out(1),
        })

    @classmethod
    def check_params(cls, *, cfg: SystolicConfig, skew: str) -> None:
        ArrayInputStage.check_params(cfg=cfg)
        if skew not in cls.SKEWS:
            raise ValueError(f"skew={skew!r}: expected one of {', '.join(cls.SKEWS)}")

    @property
    def cfg(self) -> SystolicConfig:
        return self._cfg

    @property
    def RES_LATENCY(self) -> int:  # noqa: N802 (a constant of this configuration)
        return array_latencies(self._cfg)["res"]

    @property
    def OUT_LATENCY(self) -> int:  # noqa: N802
        return array_latencies(self._cfg)["out"]

    @property
    def latency(self) -> dict[str, int]:
        return {"res": self.RES_LATENCY, "out_first_row": self.OUT_LATENCY, "shortcut_gap": SHORTCUT_GAP,
                "output_phase_spacing": self._cfg.d}

    @property
    def formats(self) -> dict:
        return self._cfg.formats()

    @property
    def exact_accumulation(self) -> bool:
        """True when ``acc_width`` holds d_in_max DF1 products of x_width-bit operands (no saturation)."""
        cfg = self._cfg
        biggest = (1 << (cfg.x_width - 1)) ** 2 * cfg.d_in_max
        return biggest <= (1 << (cfg.acc_width - 1)) - 1

    def manifest_extra(self) -> dict:
        cfg = self._cfg
        return {
            "beat_layout": {name: {"offset": f.offset, "width": f.width} for name, f in beat_layout(cfg)},
            "res_layout": {name: {"offset": f.offset, "width": f.width} for name, f in res_layout(cfg)},
            "out_layout": {name: {"offset": f.offset, "width": f.width} for name, f in out_layout(cfg)},
            "inv_sqrt_d_raw": cfg.inv_sqrt_d,
            "recip": cfg.recip.as_dict(),
            "d_in_tiling": {
                "d_in_max": cfg.d_in_max, "max_passes": cfg.max_passes,
                "psum_buffer": {"where": "one memory per PPE (column)", "words": cfg.psum_depth,
                                "word_bits": cfg.acc_width + 1, "total_bits": cfg.psum_bits},
                "exact_without_saturation": self.exact_accumulation,
                "per_pass_overhead_cycles": "one LOAD beat per loaded column (b for linear, l for LSH)",
            },
            "restrictions": ["LSH / linear dot products d_in <= d_in_max, beats per pass <= psum_depth when tiled",
                             "score dot products <= d", "shortcut phases: d_out <= d beats, k = b, no bubbles"],
        }

    def elaborate(self, platform):
        cfg = self._cfg
        b, d = cfg.b, cfg.d
        m = Module()
        xw, yw = cfg.x_width, cfg.y_width

        # ---- input gate (shortcut hand-over gap, output-phase spacing) and input register --------
        m.submodules.gate = gate = ArrayInputGate(cfg=cfg, gap=SHORTCUT_GAP)
        m.submodules.input = inp = ArrayInputStage(cfg=cfg)
        m.d.comb += [gate.valid.eq(self.i.valid), gate.beat.eq(self.i.payload), self.i.ready.eq(gate.ready),
                     inp.beat.eq(self.i.payload), inp.fire.eq(gate.fire)]
        with m.If(inp.residual_over):
            m.d.sync += self.residual_overflow.eq(1)
        in_x, in_y, in_op, in_tag = inp.x, inp.y, inp.op, inp.tag

        # ---- row skew (left edge) and column skew (bottom edge) ---------------------------------
        # skew="memory": fixed delay lines (hdl.delay_line) in LUT RAM sharing one write pointer;
        # those that are 2 cycles or less stay registers. The operations (one register chain)
        # and the tags (their line's output forced to 0 until written since reset) reset as the
        # triangles did; x, y and the deskewed results are not reset: they are only used with
        # the operation, tag or valid travelling with them. skew="registers": the triangles.
        def delayed(value: Value, delay: int, ungated: int, name: str) -> Value:
            if self._skew == "registers":
                for k in range(delay):
                    nxt = Signal(len(value), name=f"{name}_{k}")
                    m.d.sync += nxt.eq(value)
                    value = nxt
                return value
            line = DelayLine(width=len(value), delay=delay, ungated=ungated, ptr_width=timebase.ptr_width)
            m.submodules[name] = line
            m.d.comb += [line.i.eq(value), line.ptr.eq(timebase.ptr), line.primed.eq(timebase.primed[delay])]
            return line.o

        if self._skew == "memory":
            m.submodules.skew_timebase = timebase = DelayTimebase(max_delay=max(d, b - 1, 1))
        row_xo = []
        if self._skew == "registers":
            for j in range(d):
                row_xo.append(delayed(Cat(in_x[j * xw:(j + 1) * xw], in_op), j, xw, f"skew_row{j}"))
        else:
            # the operation is the same in every row: one register chain tapped per row (what
            # yosys merges the triangle's operation bits into) beside each row's x delay line
            op_line = [in_op]
            for k in range(1, d):
                nxt = Signal(len(in_op), name=f"skew_op{k}")
                m.d.sync += nxt.eq(op_line[-1])
                op_line.append(nxt)
            for j in range(d):
                row_xo.append(Cat(delayed(in_x[j * xw:(j + 1) * xw], j, xw, f"skew_row{j}"), op_line[j]))
        col_y = []
        for i in range(b):
            col_y.append(delayed(in_y[i * yw:(i + 1) * yw], i, yw, f"skew_col{i}").as_signed())

        # Tag line: PPE i takes the beat's tag i + d cycles after the input register (aligned with the
        # bottom operand leaving the top PE of column i): a d-cycle line, then a register per column.
        ppe_tags = [delayed(in_tag, d, 0, "tag_line")]
        for i in range(1, b):
            t = Signal(len(in_tag), name=f"tag{i + d}")
            m.d.sync += t.eq(ppe_tags[-1])
            ppe_tags.append(t)

        # ---- PEs (flat) and PPEs -----------------------------------------------------------------
        ppe_res, ppe_out, psum_errors = [], [], []
        grid: list[list] = [[] for _ in range(b)]
        for i in range(b):
            ppe = PPE(cfg=cfg, col=i)
            m.submodules[f"ppe_{i}"] = ppe
            below = None
            for j in range(d):
                left = row_xo[j] if i == 0 else Cat(grid[i - 1][j].x_out, grid[i - 1][j].op_out)
                regs = pe_logic(
                    m, x_in=left[:xw].as_signed(), op_in=left[xw:], y_in=col_y[i] if below is None else below.y_out,
                    s_in=0 if below is None else below.s_out, s_sat_in=0 if below is None else below.s_sat_out,
                    chain_in=0 if below is None else below.chain_out,
                    chain_sat_in=0 if below is None else below.chain_sat_out,
                    copy=ppe.copy, sc_hit=ppe.sc_sel[j], sc_value=ppe.sc_value, col=i,
                    x_width=xw, y_width=yw, acc_width=cfg.acc_width, cols=b, name=f"pe_{i}_{j}_", platform=platform)
                grid[i].append(regs)
                below = regs
            m.d.comb += [
                ppe.psum.eq(below.s_out), ppe.psum_sat.eq(below.s_sat_out), ppe.y_top.eq(below.y_out),
                ppe.tag.as_value().eq(ppe_tags[i]), ppe.chain.eq(below.chain_out),
                ppe.chain_sat.eq(below.chain_sat_out),
            ]

            # Column deskew: delay column i by b-1-i so the b results of a beat line up (valid, tags
            # and row index are taken from column b-1, which needs no delay).
            # (one delay line for both words; their bits are only read with column b-1's valid)
            res_word = Cat(ppe.res, ppe.res_over)
            out_word = Cat(ppe.out, ppe.out_over, ppe.out_dbz)
            both = Cat(res_word, out_word)
            both = delayed(both, b - 1 - i, len(both), f"deskew{i}")
            res_word, out_word = both[:len(res_word)], both[len(res_word):]
            rw, ow = cfg.res_width, cfg.out_fmt.width
            ppe_res.append([ppe.res_valid, res_word[:rw], res_word[rw], ppe.res_tag])
            psum_errors.append(ppe.psum_error)
            ppe_out.append([ppe.out_valid, out_word[:ow], out_word[ow], out_word[ow + 1], ppe.out_row])

        # ---- output streams ------------------------------------------------------------------------
        last_res, last_out = ppe_res[-1], ppe_out[-1]
        m.d.comb += [
            self.res.valid.eq(last_res[0]),
            self.res.payload.phase.eq(last_res[3].phase), self.res.payload.first.eq(last_res[3].first),
            self.res.payload.last.eq(last_res[3].last),
            self.res.payload.over.eq(Cat(*(r[2] for r in ppe_res))),
            self.out.valid.eq(last_out[0]), self.out.payload.row.eq(last_out[4]),
            self.out.payload.over.eq(Cat(*(o[2] for o in ppe_out))),
            self.out.payload.dbz.eq(Cat(*(o[3] for o in ppe_out))),
        ]
        for i in range(b):
            m.d.comb += [self.res.payload.data[i].eq(ppe_res[i][1]), self.out.payload.data[i].eq(ppe_out[i][1])]
        with m.If(gate.error | Cat(*psum_errors).any()):
            m.d.sync += self.protocol_error.eq(1)
        with m.If((self.res.valid & self.res.payload.over.any()) | (self.out.valid & self.out.payload.over.any())
                  | self.residual_overflow):
            m.d.sync += self.overflow.eq(1)
        return m


def array_latencies(cfg: SystolicConfig) -> dict[str, int]:
    """``RES_LATENCY`` and ``OUT_LATENCY`` of an array of ``cfg`` without building one (the CTA block reads
    them for its cycle model)."""
    return {"res": ArrayInputStage.LATENCY + (cfg.d - 1) + PE.SUM_LATENCY + PPE.LATENCY + (cfg.b - 1),
            "out": ArrayInputStage.LATENCY + cfg.d + PPE.COPY_DELAY + PPE.OUT_LATENCY + cfg.b - 1}


# ---- registry: the array's parameters (also the PPE's, hdl.ppe, and the CTA's, hdl.cta) ---------------

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
        d_h=p.get("d_h", 0),
    )


def params_from_config(cfg: SystolicConfig) -> dict:
    """Block parameters of ``cfg`` (inverse of :func:`config_from_params`)."""
    p = {"b": cfg.b, "d": cfg.d, "acc_width": cfg.acc_width, "den_width": cfg.den_width,
         "hash_width": cfg.hash_fmt.width, "d_in_max": cfg.d_in_max, "psum_depth": cfg.psum_depth,
         "d_h": cfg.d_h}
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
    Param("d_h", 0, "head dimension d_h of the 1/sqrt(d_h) score scale (0: d)", min=0, max=256),
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


BLOCKS = [
    BlockSpec(
        name="systolic_array",
        description="CTA systolic array: b x d PEs, PPE row, residual subtractors; LSH/linear/score/output phases",
        params=ARRAY_PARAMS,
        build=lambda **p: SystolicArray(cfg=config_from_params(p)),
        cocotb_module="sim.tb_systolic_array",
        validate=validate_params,
        fpga_params={"b": 4, "d": 16},
    ),
]

