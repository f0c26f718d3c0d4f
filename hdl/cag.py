"""Centroid aggregation (CAG), seed 001 §IV-B(3), Fig. 4b / 9a-b; golden model ``golden.cag``.

CACC accumulates one token per cycle into per-cluster sums and counts held in one memory
(``{sum[d], count}`` per cluster, exact: the accumulator is ``bits(max_tokens)`` wider than a
token). A run of tokens with the same cluster index stays in the run register and is written
back only when the index changes, so back-to-back tokens never read a stale entry; the write
of the run register at the same edge as the next token's read is forwarded (index pattern
a, b, a; the memory word is registered before use, so the write-backs of the two edges after
the read are forwarded). A "touched" bit per cluster makes a cluster's first token start from zero, so a new run
needs no memory clearing. With ``residual`` set on a beat the token accumulated is
``x - centroid`` (the residual of two-level LSH), rounded/saturated to the token format.

After the beat flagged ``last``, the run register is written back and CAVG reads the clusters
0 .. k-1 (k = largest index seen + 1) one per cycle and multiplies each sum by the reciprocal
of its count (:class:`hdl.arith.SharedReciprocalScaler`: one reciprocal-LUT lookup of the count
shared by ``d`` multipliers; LUT from ``golden.lut``), rounding to the centroid format; output
beats carry ``{index, count, centroid[d], last}``. Cycles per run: n (CACC) + 3 + k +
SharedReciprocalScaler.LATENCY + 2 (a memory word always lands in flip-flops before any logic:
CACC and CAVG each register it once).

Refused tokens (index >= max_clusters, e.g. the CIM "no cluster" sentinel, or beyond
``max_tokens`` in a run) are dropped and raise the sticky ``overflow`` flag; a saturated
residual or centroid raises the sticky ``saturated`` flag; ``clear`` resets both (assert it
between runs, when ``idle``). ``idle`` is high while tokens can be accepted and no token is in
the CACC stage (i.e. not flushing or averaging); ``n_clusters`` is the k of the last finished
accumulation.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from golden.cag import CENTROID_FMT, TOKEN_FMT, accumulator_format, count_bits, count_format, default_recip_spec
from golden.fixed import QFormat
from golden.lut import RecipSpec

from . import faults
from .arith import SharedReciprocalScaler
from .fixed import index_bits, round_shift_const, saturate, shape_of
from .registry import BlockSpec, Param, ParamError

__all__ = ["CentroidAggregator", "cag_input_layout", "cag_output_layout"]


def cag_input_layout(dim: int, max_clusters: int, token_fmt: QFormat, centroid_fmt: QFormat) -> data.StructLayout:
    return data.StructLayout({
        "index": unsigned(max_clusters.bit_length()),  # holds the "no cluster" sentinel max_clusters
        "x": data.ArrayLayout(shape_of(token_fmt), dim),
        "centroid": data.ArrayLayout(shape_of(centroid_fmt), dim),  # C1[CT1[i]] when residual
        "residual": unsigned(1),
        "last": unsigned(1),
    })


def cag_output_layout(dim: int, max_clusters: int, max_tokens: int, centroid_fmt: QFormat) -> data.StructLayout:
    return data.StructLayout({
        "index": unsigned(index_bits(max_clusters)),
        "count": unsigned(count_bits(max_tokens)),
        "centroid": data.ArrayLayout(shape_of(centroid_fmt), dim),
        "last": unsigned(1),
    })


class CentroidAggregator(wiring.Component):
    """CACC + CAVG for ``dim``-element tokens and up to ``max_clusters`` clusters per run."""

    #: deliberate faults for the tests (:mod:`hdl.faults`)
    FAULTS = {"no_run_register": "no run register: every token is added to the sum read from memory",
              "no_forward": "no same-edge forwarding of the sum being written back"}

    def __init__(self, *, dim: int = 64, max_clusters: int = 256, max_tokens: int = 512,
                 token_fmt: QFormat = TOKEN_FMT, centroid_fmt: QFormat = CENTROID_FMT,
                 recip_spec: RecipSpec | None = None) -> None:
        try:
            for name, value in (("dim", dim), ("max_clusters", max_clusters), ("max_tokens", max_tokens)):
                if not isinstance(value, int) or isinstance(value, bool):
                    raise TypeError(f"{name} must be an integer, not {value!r}")
                if value < 1:
                    raise ValueError(f"{name} must be >= 1, not {value}")
            for name, fmt in (("token_fmt", token_fmt), ("centroid_fmt", centroid_fmt)):
                if not isinstance(fmt, QFormat) or not fmt.signed:
                    raise TypeError(f"{name} must be a signed QFormat, not {fmt!r}")
            spec = recip_spec or default_recip_spec(max_tokens)
            if not isinstance(spec, RecipSpec):
                raise TypeError(f"recip_spec must be a RecipSpec, not {spec!r}")
            if spec.den_fmt != count_format(max_tokens):
                raise ValueError(f"recip_spec.den_fmt must be {count_format(max_tokens)} (counts up to max_tokens)")
            if spec.lut_bits < count_bits(max_tokens) - 1:
                raise ValueError(f"recip_spec.lut_bits must be >= {count_bits(max_tokens) - 1} so every count "
                                 f"up to max_tokens={max_tokens} indexes the LUT exactly")
        except (TypeError, ValueError):
            self._MustUse__used = True  # a rejected configuration is not an unused elaboratable
            raise
        self._dim = dim
        self._max_clusters = max_clusters
        self._max_tokens = max_tokens
        self._token_fmt = token_fmt
        self._centroid_fmt = centroid_fmt
        self._spec = spec
        self._acc_fmt = accumulator_format(token_fmt, max_tokens)
        in_force = faults.active(self)
        self._run_register = "no_run_register" not in in_force
        self._forward = "no_forward" not in in_force
        super().__init__({
            "i": In(stream.Signature(cag_input_layout(dim, max_clusters, token_fmt, centroid_fmt))),
            "o": Out(stream.Signature(cag_output_layout(dim, max_clusters, max_tokens, centroid_fmt))),
            "clear": In(1),
            "idle": Out(1),
            "n_clusters": Out(range(max_clusters + 1)),
            "overflow": Out(1),
            "saturated": Out(1),
        })

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def max_clusters(self) -> int:
        return self._max_clusters

    @property
    def max_tokens(self) -> int:
        return self._max_tokens

    @property
    def recip_spec(self) -> RecipSpec:
        return self._spec

    @property
    def formats(self) -> dict:
        return {"token": self._token_fmt, "residual": self._token_fmt, "centroid": self._centroid_fmt,
                "accumulator": self._acc_fmt, "count": self._spec.den_fmt}

    @property
    def latency(self) -> dict:
        """CACC: a token is in the run register 3 cycles after its beat; CAVG: a centroid leaves
        ``cavg`` cycles after its read is issued."""
        return {"cacc": 3, "cavg": SharedReciprocalScaler.LATENCY + 2, "flush": 3}

    def manifest_extra(self) -> dict:
        return {"recip_spec": self._spec.as_dict()}

    def elaborate(self, platform):
        m = Module()
        d, K = self._dim, self._max_clusters
        tfmt, cfmt, afmt = self._token_fmt, self._centroid_fmt, self._acc_fmt
        cb = count_bits(self._max_tokens)
        entry_layout = data.StructLayout({"sum": data.ArrayLayout(signed(afmt.width), d), "count": unsigned(cb)})
        m.submodules.sums = mem = Memory(shape=entry_layout, depth=K, init=[])
        rd = mem.read_port(domain="sync")
        wr = mem.write_port()
        rd_data = entry_layout(rd.data)

        ACC, FLUSH, AVG = 0, 1, 2
        state = Signal(range(3))
        touched = Signal(K)
        k = Signal(range(K + 1))
        tok_count = Signal(range(self._max_tokens + 1))
        overflow = Signal()
        saturated = Signal()

        # ---- CACC stage 0: accept, residual, issue the memory read ------------------------------
        s1_valid, s1_last, s1_fresh, s1_fwd = Signal(), Signal(), Signal(), Signal()
        s1_idx = Signal(range(K))
        s1_x = Signal(data.ArrayLayout(signed(afmt.width), d))
        s1_fwd_data = Signal(entry_layout)

        s2_valid, s2_last = Signal(), Signal()
        m.d.comb += self.i.ready.eq((state == ACC) & ~s1_last & ~s2_last & ~self.clear)
        accept = self.i.valid & self.i.ready
        p = self.i.payload
        idx_ok = (p.index < K) & (tok_count < self._max_tokens)
        take = accept & idx_ok
        idx = p.index[: index_bits(K)]

        frac = max(tfmt.frac, cfmt.frac)
        res_sat = Signal(d)
        x_eff = []
        for e in range(d):
            diff = (p.x[e] << (frac - tfmt.frac)) - (p.centroid[e] << (frac - cfmt.frac))
            r, r_over = saturate(round_shift_const(diff, frac - tfmt.frac, tfmt.rounding), tfmt)
            x_eff.append(Mux(p.residual, r, p.x[e]))
            m.d.comb += res_sat[e].eq(p.residual & r_over)

        m.d.comb += rd.en.eq(0)  # the port's enable defaults to 1: hold the data unless a read is issued
        with m.If(state == ACC):
            m.d.comb += [rd.addr.eq(idx), rd.en.eq(accept)]
        with m.If(accept):
            m.d.sync += [s1_valid.eq(idx_ok), s1_last.eq(p.last), s1_idx.eq(idx),
                         s1_fresh.eq(~touched.bit_select(idx, 1)),
                         s1_fwd.eq(wr.en & (wr.addr == idx) if self._forward else 0),
                         s1_fwd_data.eq(wr.data)]
            m.d.sync += [s1_x[e].eq(x_eff[e]) for e in range(d)]
            with m.If(tok_count < self._max_tokens):
                m.d.sync += tok_count.eq(tok_count + 1)
            with m.If(~idx_ok):
                m.d.sync += overflow.eq(1)
            with m.If(take):
                m.d.sync += touched.bit_select(idx, 1).eq(1)
                with m.If(p.index >= k):
                    m.d.sync += k.eq(p.index + 1)
                with m.If(res_sat.any()):
                    m.d.sync += saturated.eq(1)
        with m.Else():
            m.d.sync += [s1_valid.eq(0), s1_last.eq(0)]

        # ---- CACC stage 1: register the memory word (timing: block-RAM output straight into flip-
        # flops); note a write-back landing at this edge, after the stage-0 read.
        # The source of the stage-2 base is decided here, one stage early (timing: the run-register
        # compare and the select priority stay out of the adder path): the run register if the
        # token continues the run held in stage 2 (or, with stage 2 empty, in the run register);
        # else zero for a fresh cluster; else a forwarded write-back (this edge's, else the one at
        # the read's edge); else the memory word.
        s2_idx = Signal(range(K))
        s2_x = Signal(data.ArrayLayout(signed(afmt.width), d))
        # Memory-word registers are reset-less (qualified by their selects/valids): an ECP5 flip-flop's
        # sync reset only acts with its clock enable, so a reset would add a LUT after the block RAM.
        s2_mem, s2_fwd_data = Signal(entry_layout, reset_less=True), Signal(entry_layout)
        s2_sel_run, s2_sel_fwd, s2_sel_mem = Signal(), Signal(), Signal()
        r_valid = Signal()
        r_idx = Signal(range(K))
        r_sum = Signal(data.ArrayLayout(signed(afmt.width), d))
        r_cnt = Signal(cb)
        same_next = Signal()
        fwd_now = Signal()
        if self._run_register:
            m.d.comb += same_next.eq(Mux(s2_valid, s2_idx == s1_idx, r_valid & (r_idx == s1_idx)))
        m.d.comb += fwd_now.eq(wr.en & (wr.addr == s1_idx) if self._forward else 0)
        m.d.sync += [
            s2_valid.eq(s1_valid), s2_last.eq(s1_last), s2_idx.eq(s1_idx), s2_x.eq(s1_x), s2_mem.eq(rd_data),
            s2_sel_run.eq(same_next),
            s2_sel_fwd.eq(~same_next & ~s1_fresh & (fwd_now | s1_fwd)),
            s2_sel_mem.eq(~same_next & ~s1_fresh & ~fwd_now & ~s1_fwd),
            s2_fwd_data.eq(Mux(fwd_now, wr.data, s1_fwd_data)),
        ]

        # ---- CACC stage 2: run register ---------------------------------------------------------
        same = s2_sel_run
        base = Signal(entry_layout)
        run_entry = Signal(entry_layout)
        m.d.comb += [run_entry.sum.eq(r_sum), run_entry.count.eq(r_cnt)]
        # One-hot AND-OR (none selected: a fresh cluster starts from zero).
        m.d.comb += base.eq(run_entry.as_value() & s2_sel_run.replicate(len(base.as_value()))
                            | s2_fwd_data.as_value() & s2_sel_fwd.replicate(len(base.as_value()))
                            | s2_mem.as_value() & s2_sel_mem.replicate(len(base.as_value())))
        m.d.comb += wr.addr.eq(r_idx)
        m.d.comb += [wr.data.sum[e].eq(r_sum[e]) for e in range(d)]
        m.d.comb += wr.data.count.eq(r_cnt)
        with m.If(s2_valid):
            m.d.sync += [r_sum[e].eq(base.sum[e] + s2_x[e]) for e in range(d)]
            m.d.sync += [r_cnt.eq(base.count + 1), r_idx.eq(s2_idx), r_valid.eq(1)]
            m.d.comb += wr.en.eq(r_valid & ~same)  # the previous run ends: write it back
        with m.If(s2_last):
            m.d.sync += state.eq(FLUSH)

        # ---- CAVG: read clusters 0 .. k-1, multiply by the reciprocal of the count ----------------
        avg_en = Signal()
        m.d.comb += avg_en.eq(~self.o.valid | self.o.ready)
        j = Signal(range(K + 1))
        # Beats still to leave and the last index, set at FLUSH (timing: the end-of-run test is a
        # zero/one detect, not a compare with k - 1).
        n_left = Signal(range(K + 1))
        k_last = Signal(range(K))
        v_rd = Signal()
        lat = SharedReciprocalScaler.LATENCY
        side_idx = [Signal(range(K), name=f"cavg_idx{s}") for s in range(lat + 1)]
        side_cnt = [Signal(cb, name=f"cavg_cnt{s}") for s in range(lat + 1)]
        # A cluster without tokens in this run holds a stale entry: read it as empty.
        rd_touched = Signal()
        # The memory word is registered before the dividers (timing), with its valid/index/touched.
        b_valid, b_touched, b_data = Signal(), Signal(), Signal(entry_layout, reset_less=True)
        b_idx = Signal(range(K))
        rd_count = Signal(cb)
        m.d.comb += rd_count.eq(Mux(b_touched, b_data.count, 0))
        vfmt = QFormat(afmt.width, tfmt.frac)
        # one reciprocal of the count (ROM, leading-one detect) shared by the d lanes' multipliers
        m.submodules.recip = recip = SharedReciprocalScaler(spec=self._spec, value_fmt=vfmt, out_fmt=cfmt, lanes=d)
        m.d.comb += [recip.value[e].eq(Mux(b_touched, b_data.sum[e], 0)) for e in range(d)]
        m.d.comb += [recip.den.eq(rd_count), recip.valid_in.eq(b_valid), recip.en.eq(avg_en)]

        with m.If(state == FLUSH):
            with m.If(r_valid):
                m.d.comb += wr.en.eq(1)
            m.d.sync += [r_valid.eq(0), state.eq(AVG), j.eq(0), n_left.eq(k), k_last.eq(k - 1)]
        with m.If(state == AVG):
            with m.If(avg_en):
                m.d.comb += [rd.addr.eq(j), rd.en.eq(j < k)]
                m.d.sync += [v_rd.eq(j < k), b_idx.eq(j), rd_touched.eq(touched.bit_select(j, 1)),
                             b_valid.eq(v_rd), b_touched.eq(rd_touched), b_data.eq(rd_data), side_idx[0].eq(b_idx)]
                with m.If(j < k):
                    m.d.sync += j.eq(j + 1)
            with m.If(self.o.valid & self.o.ready):
                m.d.sync += n_left.eq(n_left - 1)
            with m.If((n_left == 0) | ((n_left == 1) & self.o.valid & self.o.ready)):
                m.d.sync += [state.eq(ACC), touched.eq(0), k.eq(0), tok_count.eq(0), v_rd.eq(0), b_valid.eq(0)]
        m.d.comb += side_cnt[0].eq(rd_count)
        with m.If(avg_en):
            m.d.sync += [side_idx[s + 1].eq(side_idx[s]) for s in range(lat)]
            m.d.sync += [side_cnt[s + 1].eq(side_cnt[s]) for s in range(lat)]

        out = self.o.payload
        cnt_out = side_cnt[lat]
        m.d.comb += [
            self.o.valid.eq(recip.valid_out),
            out.index.eq(side_idx[lat]),
            out.count.eq(cnt_out),
            out.last.eq(side_idx[lat] == k_last),
        ]
        for e in range(d):
            m.d.comb += out.centroid[e].eq(Mux(cnt_out == 0, 0, recip.result[e]))
        any_sat = Signal()
        m.d.comb += any_sat.eq((cnt_out != 0) & recip.overflow.any())
        with m.If(self.o.valid & self.o.ready & any_sat):
            m.d.sync += saturated.eq(1)

        n_clusters = Signal(range(K + 1))
        with m.If(state == FLUSH):
            m.d.sync += n_clusters.eq(k)
        with m.If(self.clear):
            m.d.sync += [overflow.eq(0), saturated.eq(0)]
        m.d.comb += [
            self.idle.eq((state == ACC) & ~s1_valid & ~s1_last & ~s2_valid & ~s2_last),
            self.n_clusters.eq(n_clusters),
            self.overflow.eq(overflow),
            self.saturated.eq(saturated),
        ]
        return m


# ---- registry ---------------------------------------------------------------------------------------

def _formats(p: dict) -> tuple[QFormat, QFormat]:
    return QFormat(p["token_width"], p["token_frac"]), QFormat(p["centroid_width"], p["centroid_frac"])


def _count_recip_spec(p: dict) -> RecipSpec:
    """The reciprocal of the CAVG count: exact for counts up to max_tokens (lut_bits 0: auto)."""
    spec = default_recip_spec(p["max_tokens"], mant_bits=p["mant_bits"])
    if p["lut_bits"]:
        spec = RecipSpec(spec.den_fmt, lut_bits=p["lut_bits"], mant_bits=p["mant_bits"])
    return spec


def _validate(p: dict) -> None:
    for fmt in ("token", "centroid"):
        if p[f"{fmt}_frac"] >= p[f"{fmt}_width"]:
            raise ParamError(f"parameter {fmt}_frac={p[f'{fmt}_frac']} out of range: expected < "
                             f"{fmt}_width={p[f'{fmt}_width']}")
    need = count_bits(p["max_tokens"]) - 1
    if p["lut_bits"] and p["lut_bits"] < need:
        raise ParamError(f"parameter lut_bits={p['lut_bits']} out of range: expected 0 (auto) or >= {need} "
                         f"for exact reciprocals of counts up to max_tokens={p['max_tokens']}")
    if need > 12:
        raise ParamError(f"parameter max_tokens={p['max_tokens']} out of range: expected < 8192 "
                         "(reciprocal LUT index of at most 12 bits)")


def _build(**p):
    tfmt, cfmt = _formats(p)
    return CentroidAggregator(dim=p["dim"], max_clusters=p["max_clusters"], max_tokens=p["max_tokens"],
                              token_fmt=tfmt, centroid_fmt=cfmt, recip_spec=_count_recip_spec(p))


BLOCKS = [
    BlockSpec(
        name="cag",
        description="CTA centroid aggregation: CACC run-register accumulation + CAVG reciprocal-of-count",
        params=(
            Param("dim", 64, "token dimension d", min=1, max=1024),
            Param("max_clusters", 256, "clusters per run", min=1, max=1 << 16),
            Param("max_tokens", 512, "tokens per run (sizes counts and sums)", min=1, max=8191),
            Param("token_width", 13, "token / residual width (signed)", min=2, max=32),
            Param("token_frac", 7, "token fractional bits", min=0, max=31),
            Param("centroid_width", 12, "centroid width (signed)", min=2, max=32),
            Param("centroid_frac", 6, "centroid fractional bits", min=0, max=31),
            Param("lut_bits", 0, "reciprocal LUT index bits (0: bits(max_tokens)-1)", min=0, max=12),
            Param("mant_bits", 16, "reciprocal mantissa bits", min=2, max=24),
        ),
        build=_build,
        cocotb_module="sim.tb_cag",
        validate=_validate,
        fpga_params={"dim": 16, "max_clusters": 128, "max_tokens": 512},
    ),
]
