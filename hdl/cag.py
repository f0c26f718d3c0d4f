"""Centroid aggregation (CAG), seed 001 §IV-B(3), Fig. 4b / 9a-b; golden model ``golden.cag``.

CACC accumulates one token per cycle into per-cluster sums and counts held in one memory
(``{sum[d], count}`` per cluster, exact: the accumulator is ``bits(n_max)`` wider than a
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

Refused tokens (index >= k_max, e.g. the CIM "no cluster" sentinel, or beyond
``n_max`` in a run) are dropped and raise the sticky ``overflow`` flag; a saturated
residual or centroid raises the sticky ``saturated`` flag; ``clear`` resets both (assert it
between runs, when ``idle``). ``idle`` is high while tokens can be accepted and no token is in
the CACC stage (i.e. not flushing or averaging); ``n_clusters`` is the k of the last finished
accumulation.

Parts (submodules ``cacc``, ``cavg``; the parent holds the ``sums`` memory and the sticky flags):
:class:`CentroidAccumulator` (CACC, ``LATENCY`` 3) and :class:`CentroidAverager` (CAVG,
``LATENCY`` = SharedReciprocalScaler.LATENCY + 2).
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
from .checked import CheckedComponent
from .fixed import index_bits, round_shift_const, saturate, shape_of
from .registry import BlockSpec, Param, ParamError

__all__ = ["CentroidAccumulator", "CentroidAggregator", "CentroidAverager", "cag_entry_layout", "cag_input_layout",
           "cag_output_layout"]


def cag_input_layout(d: int, k_max: int, token_fmt: QFormat, centroid_fmt: QFormat) -> data.StructLayout:
    return data.StructLayout({
        "index": unsigned(k_max.bit_length()),  # holds the "no cluster" sentinel k_max
        "x": data.ArrayLayout(shape_of(token_fmt), d),
        "centroid": data.ArrayLayout(shape_of(centroid_fmt), d),  # C1[CT1[i]] when residual
        "residual": unsigned(1),
        "last": unsigned(1),
    })


def cag_output_layout(d: int, k_max: int, n_max: int, centroid_fmt: QFormat) -> data.StructLayout:
    return data.StructLayout({
        "index": unsigned(index_bits(k_max)),
        "count": unsigned(count_bits(n_max)),
        "centroid": data.ArrayLayout(shape_of(centroid_fmt), d),
        "last": unsigned(1),
    })


def cag_entry_layout(d: int, n_max: int, token_fmt: QFormat) -> data.StructLayout:
    """One word of the ``sums`` memory: a cluster's ``{sum[d], count}`` (exact for up to ``n_max`` tokens)."""
    return data.StructLayout({"sum": data.ArrayLayout(signed(accumulator_format(token_fmt, n_max).width), d),
                              "count": unsigned(count_bits(n_max))})


def _check_sizes(d: object, k_max: object, n_max: object, token_fmt: object, centroid_fmt: object) -> None:
    for name, value in (("d", d), ("k_max", k_max), ("n_max", n_max)):
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError(f"{name} must be an integer, not {value!r}")
        if value < 1:
            raise ValueError(f"{name} must be >= 1, not {value}")
    for name, fmt in (("token_fmt", token_fmt), ("centroid_fmt", centroid_fmt)):
        if not isinstance(fmt, QFormat) or not fmt.signed:
            raise TypeError(f"{name} must be a signed QFormat, not {fmt!r}")


def _check_recip_spec(spec: object, n_max: int) -> None:
    if not isinstance(spec, RecipSpec):
        raise TypeError(f"recip_spec must be a RecipSpec, not {spec!r}")
    if spec.den_fmt != count_format(n_max):
        raise ValueError(f"recip_spec.den_fmt must be {count_format(n_max)} (counts up to n_max)")
    if spec.lut_bits < count_bits(n_max) - 1:
        raise ValueError(f"recip_spec.lut_bits must be >= {count_bits(n_max) - 1} so every count "
                         f"up to n_max={n_max} indexes the LUT exactly")


class _CagPart(CheckedComponent):
    """Parameters shared by the CAG and its parts (validated before the object exists)."""

    def _keep(self, d: int, k_max: int, n_max: int, token_fmt: QFormat, centroid_fmt: QFormat) -> None:
        self._d, self._k_max, self._n_max = d, k_max, n_max
        self._token_fmt, self._centroid_fmt = token_fmt, centroid_fmt
        self._acc_fmt = accumulator_format(token_fmt, n_max)
        self._entry = cag_entry_layout(d, n_max, token_fmt)

    @property
    def d(self) -> int:
        return self._d

    @property
    def k_max(self) -> int:
        return self._k_max

    @property
    def n_max(self) -> int:
        return self._n_max

    @property
    def entry_layout(self) -> data.StructLayout:
        return self._entry


class CentroidAccumulator(_CagPart):
    """CACC: accepts the ``i`` stream one token per cycle and accumulates it into its cluster's
    ``{sum, count}`` (module doc): stage 0 residual and memory read, stage 1 memory-word register
    and base select, stage 2 run register. It owns the write port of the shared ``sums`` memory
    and reads it while accumulating; the cluster bitmap ``touched`` and ``k`` are outputs for CAVG.

    After the beat flagged ``last`` it spends one ``flush`` cycle (run register written back),
    then waits until ``restart`` (CAVG done), which starts a new run (bitmap, k and count cleared).
    ``overflow_event`` / ``saturated_event`` are single-cycle: a refused token, a saturated residual.
    """

    #: deliberate faults for the tests (:mod:`hdl.faults`); :class:`CentroidAggregator` passes its own down
    FAULTS = {"no_run_register": "no run register: every token is added to the sum read from memory",
              "no_forward": "no same-edge forwarding of the sum being written back"}
    #: cycles from a token's beat to its sum being in the run register
    LATENCY = 3
    #: cycles from the ``last`` beat to the ``flush`` cycle
    FLUSH_LATENCY = 3

    def __init__(self, *, d: int, k_max: int, n_max: int, token_fmt: QFormat = TOKEN_FMT,
                 centroid_fmt: QFormat = CENTROID_FMT) -> None:
        self._keep(d, k_max, n_max, token_fmt, centroid_fmt)
        in_force = faults.active(self)
        self._run_register = "no_run_register" not in in_force
        self._forward = "no_forward" not in in_force
        super().__init__({
            "i": In(stream.Signature(cag_input_layout(d, k_max, token_fmt, centroid_fmt))),
            "clear": In(1),
            "rd_addr": Out(range(k_max)), "rd_en": Out(1), "rd_data": In(self._entry),
            "wr_addr": Out(range(k_max)), "wr_en": Out(1), "wr_data": Out(self._entry),
            "touched": Out(k_max),
            "k": Out(range(k_max + 1)),
            "flush": Out(1),
            "restart": In(1),
            "idle": Out(1),
            "overflow_event": Out(1),
            "saturated_event": Out(1),
        })

    @classmethod
    def check_params(cls, *, d: int, k_max: int, n_max: int, token_fmt: QFormat, centroid_fmt: QFormat) -> None:
        _check_sizes(d, k_max, n_max, token_fmt, centroid_fmt)

    def elaborate(self, platform):
        m = Module()
        d, K, entry = self._d, self._k_max, self._entry
        tfmt, cfmt, afmt = self._token_fmt, self._centroid_fmt, self._acc_fmt
        ACC, FLUSH, WAIT = 0, 1, 2  # WAIT: CAVG reads the sums
        state = Signal(range(3))
        tok_count = Signal(range(self._n_max + 1))

        # ---- stage 0: accept, residual, issue the memory read --------------------------------------
        s1_valid, s1_last, s1_fresh, s1_fwd = Signal(), Signal(), Signal(), Signal()
        s1_idx = Signal(range(K))
        s1_x = Signal(data.ArrayLayout(signed(afmt.width), d))
        s1_fwd_data = Signal(entry)

        s2_valid, s2_last = Signal(), Signal()
        # ready is a flip-flop (the next value of "ACC, no run end in stages 1-2"), gated only by
        # ``clear``: timing, the state decode stays out of the accept fan-out (rdy is set below)
        rdy = Signal(init=1)
        m.d.comb += self.i.ready.eq(rdy & ~self.clear)
        accept = self.i.valid & self.i.ready
        p = self.i.payload
        idx_ok = (p.index < K) & (tok_count < self._n_max)
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

        # Comb outputs are plain assigns, not ``m.If`` processes: Icarus does not run an ``always @*``
        # whose inputs keep their initial values, and an X read address would poison the memory word.
        m.d.comb += [self.rd_addr.eq(Mux(state == ACC, idx, 0)), self.rd_en.eq(accept)]
        m.d.comb += [self.overflow_event.eq(accept & ~idx_ok), self.saturated_event.eq(take & res_sat.any())]
        # Stage-1 data registers load every cycle (only s1_valid/s1_last qualify them): timing, the
        # accept net then drives a few flip-flops, not the d token words.
        m.d.sync += [s1_idx.eq(idx), s1_fresh.eq(~self.touched.bit_select(idx, 1)),
                     s1_fwd.eq(self.wr_en & (self.wr_addr == idx) if self._forward else 0),
                     s1_fwd_data.eq(self.wr_data)]
        m.d.sync += [s1_x[e].eq(x_eff[e]) for e in range(d)]
        with m.If(accept):
            m.d.sync += [s1_valid.eq(idx_ok), s1_last.eq(p.last)]
            with m.If(tok_count < self._n_max):
                m.d.sync += tok_count.eq(tok_count + 1)
        with m.Else():
            m.d.sync += [s1_valid.eq(0), s1_last.eq(0)]
        # touched and k follow stage 1 (from registers; timing). A token's fresh bit misses only the
        # token one beat ahead of it, and a same-cluster token there continues its run (s2_sel_run
        # wins over fresh); CAVG reads touched and k after the flush, two cycles after stage 1.
        with m.If(s1_valid):
            m.d.sync += self.touched.bit_select(s1_idx, 1).eq(1)
            with m.If(s1_idx >= self.k):
                m.d.sync += self.k.eq(s1_idx + 1)

        # ---- stage 1: register the memory word (timing: block-RAM output straight into flip-flops);
        # note a write-back landing at this edge, after the stage-0 read.
        # The source of the stage-2 base is decided here, one stage early (timing: the run-register
        # compare and the select priority stay out of the adder path): the run register if the
        # token continues the run held in stage 2 (or, with stage 2 empty, in the run register);
        # else zero for a fresh cluster; else a forwarded write-back (this edge's, else the one at
        # the read's edge); else the memory word.
        s2_idx = Signal(range(K))
        s2_x = Signal(data.ArrayLayout(signed(afmt.width), d))
        # Memory-word registers are reset-less (qualified by their selects/valids): an ECP5 flip-flop's
        # sync reset only acts with its clock enable, so a reset would add a LUT after the block RAM.
        s2_mem, s2_fwd_data = Signal(entry, reset_less=True), Signal(entry)
        s2_sel_run, s2_sel_fwd, s2_sel_mem = Signal(), Signal(), Signal()
        r_valid = Signal()
        r_idx = Signal(range(K))
        r_sum = Signal(data.ArrayLayout(signed(afmt.width), d))
        r_cnt = Signal(count_bits(self._n_max))
        same_next = Signal()
        fwd_now = Signal()
        if self._run_register:
            m.d.comb += same_next.eq(Mux(s2_valid, s2_idx == s1_idx, r_valid & (r_idx == s1_idx)))
        m.d.comb += fwd_now.eq(self.wr_en & (self.wr_addr == s1_idx) if self._forward else 0)
        m.d.sync += [
            s2_valid.eq(s1_valid), s2_last.eq(s1_last), s2_idx.eq(s1_idx), s2_x.eq(s1_x), s2_mem.eq(self.rd_data),
            s2_sel_run.eq(same_next),
            s2_sel_fwd.eq(~same_next & ~s1_fresh & (fwd_now | s1_fwd)),
            s2_sel_mem.eq(~same_next & ~s1_fresh & ~fwd_now & ~s1_fwd),
            s2_fwd_data.eq(Mux(fwd_now, self.wr_data, s1_fwd_data)),
        ]

        # ---- stage 2: run register ---------------------------------------------------------------
        base = Signal(entry)
        run_entry = Signal(entry)
        m.d.comb += [run_entry.sum.eq(r_sum), run_entry.count.eq(r_cnt)]
        # One-hot AND-OR (none selected: a fresh cluster starts from zero).
        m.d.comb += base.eq(run_entry.as_value() & s2_sel_run.replicate(len(base.as_value()))
                            | s2_fwd_data.as_value() & s2_sel_fwd.replicate(len(base.as_value()))
                            | s2_mem.as_value() & s2_sel_mem.replicate(len(base.as_value())))
        m.d.comb += [self.wr_addr.eq(r_idx), self.wr_data.eq(run_entry)]
        with m.If(s2_valid):
            m.d.sync += [r_sum[e].eq(base.sum[e] + s2_x[e]) for e in range(d)]
            m.d.sync += [r_cnt.eq(base.count + 1), r_idx.eq(s2_idx), r_valid.eq(1)]
        # write the run register back when its run ends (a new token elsewhere) and at the flush
        m.d.comb += [self.wr_en.eq(r_valid & ((s2_valid & ~s2_sel_run) | (state == FLUSH))),
                     self.flush.eq(state == FLUSH)]
        with m.If(s2_last):
            m.d.sync += state.eq(FLUSH)

        # ---- flush (the run register's last write-back), then wait for CAVG ------------------------
        with m.If(state == FLUSH):
            m.d.sync += [r_valid.eq(0), state.eq(WAIT)]
        with m.If((state == WAIT) & self.restart):
            m.d.sync += [state.eq(ACC), self.touched.eq(0), self.k.eq(0), tok_count.eq(0)]
        # next ready: next state ACC (ACC without a run end in stage 2, or WAIT left by restart) and
        # no run end entering stage 1 or 2 at this edge (the comb ready of the earlier RTL, one edge early)
        next_acc = Mux(state == ACC, ~s2_last, (state == WAIT) & self.restart)
        m.d.sync += rdy.eq(next_acc & ~(accept & p.last) & ~s1_last)
        m.d.comb += self.idle.eq((state == ACC) & ~s1_valid & ~s1_last & ~s2_valid & ~s2_last)
        return m


class CentroidAverager(_CagPart):
    """CAVG: after ``start`` (one cycle; ``k`` and ``touched`` held until ``done``) reads clusters
    0 .. k-1 of the ``sums`` memory, one per cycle while ``o`` can move, and sends each sum times
    the reciprocal of its count (:class:`hdl.arith.SharedReciprocalScaler`) as a beat of ``o``;
    a cluster not in ``touched`` reads as empty (count 0, centroid 0). ``done`` is high in the
    cycle the last beat leaves (or at once for k = 0); ``n_clusters`` is the k of the last start.
    ``saturated_event``: a beat with a saturated centroid leaves.
    """

    #: cycles from a read being issued to its centroid beat being valid (the memory word lands in
    #: flip-flops before the divider)
    LATENCY = SharedReciprocalScaler.LATENCY + 2

    def __init__(self, *, d: int, k_max: int, n_max: int, recip_spec: RecipSpec, token_fmt: QFormat = TOKEN_FMT,
                 centroid_fmt: QFormat = CENTROID_FMT) -> None:
        self._keep(d, k_max, n_max, token_fmt, centroid_fmt)
        self._spec = recip_spec
        super().__init__({
            "start": In(1),
            "k": In(range(k_max + 1)),
            "touched": In(k_max),
            "rd_addr": Out(range(k_max)), "rd_en": Out(1), "rd_data": In(self._entry),
            "o": Out(stream.Signature(cag_output_layout(d, k_max, n_max, centroid_fmt))),
            "done": Out(1),
            "n_clusters": Out(range(k_max + 1)),
            "saturated_event": Out(1),
        })

    @classmethod
    def check_params(cls, *, d: int, k_max: int, n_max: int, recip_spec: RecipSpec, token_fmt: QFormat,
                     centroid_fmt: QFormat) -> None:
        _check_sizes(d, k_max, n_max, token_fmt, centroid_fmt)
        _check_recip_spec(recip_spec, n_max)

    @property
    def recip_spec(self) -> RecipSpec:
        return self._spec

    def elaborate(self, platform):
        m = Module()
        d, K, entry = self._d, self._k_max, self._entry
        cb = count_bits(self._n_max)
        active = Signal()
        avg_en = Signal()
        m.d.comb += avg_en.eq(~self.o.valid | self.o.ready)
        j = Signal(range(K + 1))
        # Beats still to leave and the last index, set at start (timing: the end-of-run test is a
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
        b_valid, b_touched, b_data = Signal(), Signal(), Signal(entry, reset_less=True)
        b_idx = Signal(range(K))
        rd_count = Signal(cb)
        m.d.comb += rd_count.eq(Mux(b_touched, b_data.count, 0))
        vfmt = QFormat(self._acc_fmt.width, self._token_fmt.frac)
        # one reciprocal of the count (ROM, leading-one detect) shared by the d lanes' multipliers
        m.submodules.recip = recip = SharedReciprocalScaler(spec=self._spec, value_fmt=vfmt,
                                                            out_fmt=self._centroid_fmt, lanes=d)
        m.d.comb += [recip.value[e].eq(Mux(b_touched, b_data.sum[e], 0)) for e in range(d)]
        m.d.comb += [recip.den.eq(rd_count), recip.valid_in.eq(b_valid), recip.en.eq(avg_en)]

        with m.If(self.start):
            m.d.sync += [active.eq(1), j.eq(0), n_left.eq(self.k), k_last.eq(self.k - 1),
                         self.n_clusters.eq(self.k)]
        reading = active & avg_en
        # plain assigns (see CentroidAccumulator: no Icarus ``always @*`` left unevaluated)
        m.d.comb += [self.rd_addr.eq(Mux(reading, j, 0)), self.rd_en.eq(reading & (j < self.k)),
                     self.done.eq(active & ((n_left == 0) | ((n_left == 1) & self.o.valid & self.o.ready)))]
        with m.If(active):
            with m.If(avg_en):
                m.d.sync += [v_rd.eq(j < self.k), b_idx.eq(j), rd_touched.eq(self.touched.bit_select(j, 1)),
                             b_valid.eq(v_rd), b_touched.eq(rd_touched), b_data.eq(self.rd_data),
                             side_idx[0].eq(b_idx)]
                with m.If(j < self.k):
                    m.d.sync += j.eq(j + 1)
            with m.If(self.o.valid & self.o.ready):
                m.d.sync += n_left.eq(n_left - 1)
            with m.If(self.done):
                m.d.sync += [active.eq(0), v_rd.eq(0), b_valid.eq(0)]
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
        m.d.comb += self.saturated_event.eq(self.o.valid & self.o.ready & (cnt_out != 0) & recip.overflow.any())
        return m


class CentroidAggregator(_CagPart):
    """CACC + CAVG for ``d``-element tokens and up to ``k_max`` clusters per run: a
    :class:`CentroidAccumulator` and a :class:`CentroidAverager` sharing the ``sums`` memory
    (one read port, used by CACC while it accumulates and by CAVG while it averages)."""

    #: deliberate faults for the tests (:mod:`hdl.faults`), passed down to the CACC
    FAULTS = CentroidAccumulator.FAULTS
    #: a token is in the run register CACC_LATENCY cycles after its beat
    CACC_LATENCY = CentroidAccumulator.LATENCY
    #: a centroid leaves CAVG_LATENCY cycles after its read is issued
    CAVG_LATENCY = CentroidAverager.LATENCY
    #: cycles from the last beat to the flush cycle (CAVG issues its first read the cycle after)
    FLUSH_LATENCY = CentroidAccumulator.FLUSH_LATENCY

    def __init__(self, *, d: int = 64, k_max: int = 256, n_max: int = 512,
                 token_fmt: QFormat = TOKEN_FMT, centroid_fmt: QFormat = CENTROID_FMT,
                 recip_spec: RecipSpec | None = None) -> None:
        self._keep(d, k_max, n_max, token_fmt, centroid_fmt)
        self._spec = recip_spec or default_recip_spec(n_max)
        self._faults = faults.active(self)
        self._run_register = "no_run_register" not in self._faults
        self._forward = "no_forward" not in self._faults
        super().__init__({
            "i": In(stream.Signature(cag_input_layout(d, k_max, token_fmt, centroid_fmt))),
            "o": Out(stream.Signature(cag_output_layout(d, k_max, n_max, centroid_fmt))),
            "clear": In(1),
            "idle": Out(1),
            "n_clusters": Out(range(k_max + 1)),
            "overflow": Out(1),
            "saturated": Out(1),
        })

    @classmethod
    def check_params(cls, *, d: int, k_max: int, n_max: int, token_fmt: QFormat, centroid_fmt: QFormat,
                     recip_spec: RecipSpec | None) -> None:
        _check_sizes(d, k_max, n_max, token_fmt, centroid_fmt)
        _check_recip_spec(recip_spec or default_recip_spec(n_max), n_max)

    @property
    def recip_spec(self) -> RecipSpec:
        return self._spec

    @property
    def formats(self) -> dict:
        return {"token": self._token_fmt, "residual": self._token_fmt, "centroid": self._centroid_fmt,
                "accumulator": self._acc_fmt, "count": self._spec.den_fmt}

    @property
    def latency(self) -> dict:
        """CACC: a token is in the run register ``cacc`` cycles after its beat; CAVG: a centroid
        leaves ``cavg`` cycles after its read is issued; ``flush``: last beat to the flush cycle."""
        return {"cacc": self.CACC_LATENCY, "cavg": self.CAVG_LATENCY, "flush": self.FLUSH_LATENCY}

    def manifest_extra(self) -> dict:
        return {"recip_spec": self._spec.as_dict()}

    def elaborate(self, platform):
        m = Module()
        sizes = dict(d=self._d, k_max=self._k_max, n_max=self._n_max, token_fmt=self._token_fmt,
                     centroid_fmt=self._centroid_fmt)
        m.submodules.sums = mem = Memory(shape=self._entry, depth=self._k_max, init=[])
        rd = mem.read_port(domain="sync")
        wr = mem.write_port()
        with faults.injected(CentroidAccumulator, *self._faults):
            m.submodules.cacc = cacc = CentroidAccumulator(**sizes)
        m.submodules.cavg = cavg = CentroidAverager(**sizes, recip_spec=self._spec)
        wiring.connect(m, wiring.flipped(self.i), cacc.i)
        wiring.connect(m, cavg.o, wiring.flipped(self.o))
        m.d.comb += [
            # one read port shared in time: each part drives 0 outside its phase (the port's enable
            # defaults to 1: the data is held unless a read is issued)
            rd.addr.eq(cacc.rd_addr | cavg.rd_addr), rd.en.eq(cacc.rd_en | cavg.rd_en),
            cacc.rd_data.eq(rd.data), cavg.rd_data.eq(rd.data),
            wr.addr.eq(cacc.wr_addr), wr.en.eq(cacc.wr_en), wr.data.eq(cacc.wr_data),
            cacc.clear.eq(self.clear),
            cavg.start.eq(cacc.flush), cavg.k.eq(cacc.k), cavg.touched.eq(cacc.touched),
            cacc.restart.eq(cavg.done),
        ]
        with m.If(self.clear):
            m.d.sync += [self.overflow.eq(0), self.saturated.eq(0)]
        with m.Else():
            with m.If(cacc.overflow_event):
                m.d.sync += self.overflow.eq(1)
            with m.If(cacc.saturated_event | cavg.saturated_event):
                m.d.sync += self.saturated.eq(1)
        m.d.comb += [self.idle.eq(cacc.idle), self.n_clusters.eq(cavg.n_clusters)]
        return m


# ---- registry ---------------------------------------------------------------------------------------

def _formats(p: dict) -> tuple[QFormat, QFormat]:
    return QFormat(p["token_width"], p["token_frac"]), QFormat(p["centroid_width"], p["centroid_frac"])


def _count_recip_spec(p: dict) -> RecipSpec:
    """The reciprocal of the CAVG count: exact for counts up to n_max (lut_bits 0: auto)."""
    spec = default_recip_spec(p["n_max"], mant_bits=p["mant_bits"])
    if p["lut_bits"]:
        spec = RecipSpec(spec.den_fmt, lut_bits=p["lut_bits"], mant_bits=p["mant_bits"])
    return spec


def _validate(p: dict) -> None:
    for fmt in ("token", "centroid"):
        if p[f"{fmt}_frac"] >= p[f"{fmt}_width"]:
            raise ParamError(f"parameter {fmt}_frac={p[f'{fmt}_frac']} out of range: expected < "
                             f"{fmt}_width={p[f'{fmt}_width']}")
    need = count_bits(p["n_max"]) - 1
    if p["lut_bits"] and p["lut_bits"] < need:
        raise ParamError(f"parameter lut_bits={p['lut_bits']} out of range: expected 0 (auto) or >= {need} "
                         f"for exact reciprocals of counts up to n_max={p['n_max']}")
    if need > 12:
        raise ParamError(f"parameter n_max={p['n_max']} out of range: expected < 8192 "
                         "(reciprocal LUT index of at most 12 bits)")


def _build(**p):
    tfmt, cfmt = _formats(p)
    return CentroidAggregator(d=p["d"], k_max=p["k_max"], n_max=p["n_max"],
                              token_fmt=tfmt, centroid_fmt=cfmt, recip_spec=_count_recip_spec(p))


BLOCKS = [
    BlockSpec(
        name="cag",
        description="CTA centroid aggregation: CACC run-register accumulation + CAVG reciprocal-of-count",
        params=(
            Param("d", 64, "token dimension d", min=1, max=1024),
            Param("k_max", 256, "clusters per run", min=1, max=1 << 16),
            Param("n_max", 512, "tokens per run (sizes counts and sums)", min=1, max=8191),
            Param("token_width", 13, "token / residual width (signed)", min=2, max=32),
            Param("token_frac", 7, "token fractional bits", min=0, max=31),
            Param("centroid_width", 12, "centroid width (signed)", min=2, max=32),
            Param("centroid_frac", 6, "centroid fractional bits", min=0, max=31),
            Param("lut_bits", 0, "reciprocal LUT index bits (0: bits(n_max)-1)", min=0, max=12),
            Param("mant_bits", 16, "reciprocal mantissa bits", min=2, max=24),
        ),
        build=_build,
        cocotb_module="sim.tb_cag",
        validate=_validate,
        fpga_params={"d": 16, "k_max": 128, "n_max": 512},
    ),
]
