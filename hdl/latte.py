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
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.data import ArrayLayout, StructLayout
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from golden.fixed import QFormat
from golden.latte import LatteFormats

from .arith import ReciprocalScaler
from .fixed import shape_of
from .softmax_pv import Normalizer, PVAccumulator, ScoreExp

__all__ = ["Latte", "EstimateLanes", "CompensationLanes", "tree_stages", "output_layout", "latte_formats",
           "build_latte"]


def output_layout(fmts: LatteFormats, lanes: int) -> StructLayout:
    """Payload of the ``o`` stream: ``lanes`` outputs and the row's kept-key count."""
    return StructLayout({"data": ArrayLayout(shape_of(fmts.out_fmt), lanes), "kept": unsigned(fmts.count_width)})


def tree_stages(count: int) -> int:
    """Register stages of the adder tree over ``count`` values (4-input adds per stage, >= 1)."""
    stages = 1
    while count > 4:
        count = -(-count // 4)
        stages += 1
    return stages


def _adder_tree(m: Module, values: list[Value], name: str) -> Signal:
    """Sum ``values`` with 4-input adders, one register per level (``tree_stages`` cycles)."""
    level = 0
    while True:
        groups = [values[i:i + 4] for i in range(0, len(values), 4)]
        regs = []
        for gi, group in enumerate(groups):
            expr = group[0]
            for item in group[1:]:
                expr = expr + item
            reg = Signal(Value.cast(expr).shape(), name=f"{name}_l{level}_{gi}")
            m.d.sync += reg.eq(expr)
            regs.append(reg)
        values = regs
        level += 1
        if len(values) == 1:
            return values[0]


def _small_mul(a: Value, b: Value) -> Value:
    """``a * b`` for a 4-bit ``b`` as shift-and-add (logic, not a DSP block: a MULT18X18D per
    4×4 product would waste the FPGA's multipliers). A signed ``b`` has weight -8 on its MSB."""
    a, b = Value.cast(a), Value.cast(b)
    terms = [Mux(b[i], a << i, 0) for i in range(len(b))]
    total = terms[0]
    for i, term in enumerate(terms[1:], start=1):
        total = total - term if (b.shape().signed and i == len(b) - 1) else total + term
    return total


def _delay(m: Module, value: Value, cycles: int, name: str) -> list[Value]:
    """``[value, value delayed by 1, ..., delayed by cycles]`` (plain registers)."""
    out = [Value.cast(value)]
    for i in range(cycles):
        reg = Signal(out[-1].shape(), name=f"{name}_d{i + 1}")
        m.d.sync += reg.eq(out[-1])
        out.append(reg)
    return out


def _any(values: list[Value]) -> Value:
    return Cat(*values).any()


class EstimateLanes(wiring.Component):
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

    def elaborate(self, platform):
        m = Module()
        lat = self.latency(self._lanes)
        ev = _delay(m, self.issue, lat, "ev")
        ej = _delay(m, self.j, lat, "ej")
        efirst = _delay(m, self.first, lat, "efirst")
        elastc = _delay(m, self.last, lat, "elastc")
        e_prod = []
        for lane in range(self._lanes):
            reg = Signal(signed(8), name=f"est_prod{lane}")
            m.d.sync += reg.eq(_small_mul(self.q[lane][4:8].as_signed(), self.k[lane][4:8].as_signed()))
            e_prod.append(reg)
        e_sum = _adder_tree(m, e_prod, "est_tree")
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


class CompensationLanes(wiring.Component):
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
        self.entry_layout = StructLayout({"kb": unsigned(aw), "a": signed(est_width)})
        super().__init__({
            "issue": In(1), "c": In(range(chunks)), "entry": In(self.entry_layout),
            "k_addr": Out(aw), "q_addr": Out(range(chunks)),
            "q": In(chunk), "k": In(chunk),
            "s_valid": Out(1), "score": Out(signed(score_width)), "kb": Out(aw), "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        C = self._chunks
        c_lat = self.latency(self._lanes, self._include_ll) - 1  # to the accumulate stage
        fv = _delay(m, self.issue, c_lat, "fv")
        fc = _delay(m, self.c, c_lat, "fc")
        kl_d = Signal(self.entry_layout)  # list entry of the item at stage 2
        m.d.sync += kl_d.eq(self.entry)
        m.d.comb += [self.k_addr.eq(kl_d.kb + fc[2]), self.q_addr.eq(fc[2])]
        fa = _delay(m, kl_d.a, c_lat - 2, "fa")
        fkb = _delay(m, kl_d.kb, c_lat - 2, "fkb")
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
        c_sum = _adder_tree(m, c_terms, "comp_tree")
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


class Latte(wiring.Component):
    """One LATTE head (see the module docstring for the protocol and the passes)."""

    def __init__(self, *, n_max: int = 16, d_h: int = 16, lanes: int = 4, out_fmt: QFormat = QFormat(16, 8),
                 include_ll: bool = False) -> None:
        for name, value in (("n_max", n_max), ("d_h", d_h), ("lanes", lanes)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{name} must be an integer, not {value!r}")
            if value < 1:
                raise ValueError(f"{name} must be >= 1, not {value}")
        if d_h % lanes:
            raise ValueError(f"lanes={lanes} must divide d_h={d_h}")
        if not isinstance(out_fmt, QFormat):
            raise TypeError(f"out_fmt must be a QFormat, not {out_fmt!r}")
        if not out_fmt.signed:
            raise ValueError("out_fmt must be signed")
        if not isinstance(include_ll, bool):
            raise TypeError(f"include_ll must be a bool, not {include_ll!r}")
        self._fmts = LatteFormats(d_h=d_h, n_max=n_max, out_fmt=out_fmt, include_ll=include_ll)
        self._lanes = lanes
        f = self._fmts
        chunk = ArrayLayout(signed(8), lanes)
        out_layout = output_layout(f, lanes)
        super().__init__({
            "q": In(stream.Signature(chunk)),
            "k": In(stream.Signature(chunk)),
            "v": In(stream.Signature(chunk)),
            "o": Out(stream.Signature(out_layout)),
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

    # -- parameters ------------------------------------------------------------------------------
    @property
    def fmts(self) -> LatteFormats:
        return self._fmts

    @property
    def n_max(self) -> int:
        return self._fmts.n_max

    @property
    def d_h(self) -> int:
        return self._fmts.d_h

    @property
    def lanes(self) -> int:
        return self._lanes

    @property
    def chunks(self) -> int:
        return self.d_h // self.lanes

    @property
    def out_fmt(self) -> QFormat:
        return self._fmts.out_fmt

    @property
    def include_ll(self) -> bool:
        return self._fmts.include_ll

    @property
    def formats(self) -> dict[str, QFormat]:
        return self._fmts.formats()

    # pipeline depths (cycles from issuing an item to its result being written); every memory
    # read is registered before it feeds logic (timing)
    @property
    def est_latency(self) -> int:
        return EstimateLanes.latency(self.lanes)

    @property
    def comp_latency(self) -> int:
        return CompensationLanes.latency(self.lanes, self.include_ll)

    FLAG_LATENCY = 2
    MAX_LATENCY = EstimateLanes.MAX_LATENCY

    EXP_LATENCY = 1 + ScoreExp.LATENCY      # score list read, then the shared ScoreExp (8 + ExpUnit.LATENCY)
    PV_LATENCY = 3 + PVAccumulator.LATENCY  # list read, register, V read, register, then PVAccumulator

    def cycle_latencies(self) -> dict[str, int]:
        """The pipeline latencies of :func:`golden.latte_cycles.latte_cycles_per_head` (the head's
        cycle model without stalls): ``latte_cycles_per_head(n, kept_rows, chunks=self.chunks,
        latencies=self.cycle_latencies())``."""
        return {"est": self.est_latency, "max": self.MAX_LATENCY, "flag": self.FLAG_LATENCY,
                "comp": self.comp_latency, "exp": self.EXP_LATENCY, "pv": self.PV_LATENCY,
                "norm": ReciprocalScaler.LATENCY}

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
        f = self._fmts
        L, C, n_max = self.lanes, self.chunks, self.n_max
        m = Module()

        aw = max(1, (n_max * C - 1).bit_length())     # K/V buffer address (key base j·C + chunk)
        chunk = ArrayLayout(signed(8), L)

        m.submodules.kmem = kmem = Memory(shape=chunk, depth=n_max * C, init=[])
        m.submodules.vmem = vmem = Memory(shape=chunk, depth=n_max * C, init=[])
        m.submodules.qmem = qmem = Memory(shape=chunk, depth=C, init=[])
        m.submodules.estmem = estmem = Memory(shape=signed(f.est_width), depth=n_max, init=[])
        score_layout = StructLayout({"score": signed(f.score_width), "kb": unsigned(aw)})
        m.submodules.scoremem = scoremem = Memory(shape=score_layout, depth=n_max, init=[])
        ek_layout = StructLayout({"e": shape_of(f.exp_out_fmt), "kb": unsigned(aw)})
        m.submodules.ekmem = ekmem = Memory(shape=ek_layout, depth=n_max, init=[])
        k_w, v_w, q_w = kmem.write_port(), vmem.write_port(), qmem.write_port()
        k_r, v_r, q_r = kmem.read_port(), vmem.read_port(), qmem.read_port()
        est_w, est_r = estmem.write_port(), estmem.read_port()
        self._est_w = est_w  # probe for the unit tests of the estimate lanes
        sc_w, sc_r = scoremem.write_port(), scoremem.read_port()
        ek_w, ek_r = ekmem.write_port(), ekmem.read_port()


        # ---- head-level state ----------------------------------------------------------------
        n_keys = self.n_keys
        n_chunks_total = Signal(range(n_max * C + 1))
        m.d.comb += n_chunks_total.eq(n_keys * C)
        keys_ok = (n_keys >= 1) & (n_keys <= n_max)
        k_cnt = Signal(range(n_max * C + 1))
        v_cnt = Signal(range(n_max * C + 1))
        row_cnt = Signal(16)
        q_cnt = Signal(range(C))

        # row-level registers
        kept_cnt = Signal(range(n_max + 1))             # kept keys written to the score list
        smax = Signal(signed(f.score_width))            # running max of the kept scores
        den = Signal(shape_of(f.den_fmt))
        # the shared back-end datapath (hdl.softmax_pv, also used by E-ATT and MCA)
        m.submodules.pvacc = pvacc = PVAccumulator(p_shape=shape_of(f.exp_out_fmt), v_shape=signed(8),
                                                   acc_shape=shape_of(f.acc_fmt), d=self.d_h, lanes=L)
        m.submodules.norm = norm = Normalizer(recip_spec=f.recip_spec, acc_fmt=f.acc_fmt, out_fmt=f.out_fmt,
                                              d=self.d_h, lanes=L)
        m.submodules.sexp = sexp = ScoreExp(score_width=f.score_width, diff_width=f.diff_width,
                                            scale_mant_bits=f.scale_mant_bits, scale_shift_bits=f.scale_shift_bits,
                                            exp_spec=f.exp_spec)

        # ---- EST pass: issue (j, c) ----------------------------------------------------------
        e_issue = Signal()
        e_j = Signal(range(n_max))
        e_c = Signal(range(C))
        e_base = Signal(aw)
        e_last_issue = (e_j == n_keys - 1) & (e_c == C - 1)
        m.submodules.est = est = EstimateLanes(lanes=L, n_max=n_max, est_width=f.est_width)
        m.d.comb += [est.issue.eq(e_issue), est.j.eq(e_j), est.first.eq(e_c == 0), est.last.eq(e_c == C - 1)]

        # ---- FLAG and COMP passes ------------------------------------------------------------
        # FLAG: scan A_est one key per cycle (addresses never depend on read data: no memory ->
        # logic -> memory-address loop), append kept keys to a compact list; keep iff
        # max - A_est <= tau, i.e. A_est >= theta = max - tau (registered once per row)
        f_theta = Signal(signed(max(f.est_width, f.tau_width + 1) + 1))
        g_issue = Signal()
        g_j = Signal(range(n_max))
        g_base = Signal(aw)
        gv = _delay(m, g_issue, self.FLAG_LATENCY, "gv")
        gkb = _delay(m, g_base, self.FLAG_LATENCY, "gkb")
        g_est = Signal(signed(f.est_width))
        m.submodules.comp = comp = CompensationLanes(
            lanes=L, chunks=C, n_max=n_max, aw=aw, est_width=f.est_width, cross_width=f.cross_width,
            score_width=f.score_width, include_ll=f.include_ll)
        m.submodules.klist = klist = Memory(shape=comp.entry_layout, depth=n_max, init=[])
        kl_w, kl_r = klist.write_port(), klist.read_port()
        list_len = Signal(range(n_max + 1))
        # COMP: for each listed key, C chunks of compensation products
        f_issue = Signal()
        f_t = Signal(range(n_max))
        f_c = Signal(range(C))
        m.d.comb += [comp.issue.eq(f_issue), comp.c.eq(f_c), comp.entry.eq(kl_r.data)]

        # ---- EXP pass ------------------------------------------------------------------------
        x_issue = Signal()
        x_t = Signal(range(n_max))
        xv = _delay(m, x_issue, self.EXP_LATENCY, "xv")
        x_w = Signal(range(n_max))

        # ---- PV pass -------------------------------------------------------------------------
        p_issue = Signal()
        p_t = Signal(range(n_max))
        p_c = Signal(range(C))
        pv = _delay(m, p_issue, self.PV_LATENCY, "pv")
        pc = _delay(m, p_c, self.PV_LATENCY, "pc")

        # ---- NORM pass -----------------------------------------------------------------------
        n_issue = Signal()
        n_c = Signal(range(C))
        o_cnt = Signal(range(C))
        stall = Signal()
        m.d.comb += stall.eq(self.o.valid & ~self.o.ready)

        # ---- shared read-port addressing (by state) --------------------------------------------
        m.d.comb += [
            k_w.data.eq(self.k.payload), k_w.addr.eq(k_cnt),
            v_w.data.eq(self.v.payload), v_w.addr.eq(v_cnt),
            q_w.data.eq(self.q.payload), q_w.addr.eq(q_cnt),
        ]

        # Two engines: the front (Q load, EST, FLAG, COMP) works on row i+1 while the back (EXP, PV,
        # NORM) finishes row i. The back owns copies of the row's kept count and score maximum; the
        # front starts FLAG/COMP (COMP rewrites the score list) only while the back is not in EXP
        # (an interlock: with the present latencies EXP always ends first), and hands a
        # row over only to an idle back. A new head (LOAD overwrites K/V) waits for the back.
        back_idle, back_in_exp = Signal(), Signal()
        start_back = Signal()
        kept_b = Signal(range(n_max + 1))
        smax_b = Signal(signed(f.score_width))

        with m.FSM(name="front") as front:
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
                    with m.If((q_cnt == 0) & (row_cnt == 0)):
                        m.d.sync += [self.kept_total.eq(0), self.overflow.eq(0)]
                    with m.If(q_cnt == C - 1):
                        m.d.sync += [e_issue.eq(1), e_j.eq(0), e_c.eq(0), e_base.eq(0), kept_cnt.eq(0)]
                        m.next = "EST"

            with m.State("EST"):
                m.d.comb += [k_r.addr.eq(e_base + e_c), q_r.addr.eq(e_c)]
                with m.If(e_issue):
                    with m.If(e_c == C - 1):
                        m.d.sync += [e_c.eq(0), e_j.eq(e_j + 1), e_base.eq(e_base + C)]
                    with m.Else():
                        m.d.sync += e_c.eq(e_c + 1)
                    with m.If(e_last_issue):
                        m.d.sync += e_issue.eq(0)
                with m.Elif(~est.busy & ~back_in_exp):
                    m.d.sync += [g_issue.eq(1), g_j.eq(0), g_base.eq(0), list_len.eq(0),
                                 f_theta.eq(est.emax - self.tau)]
                    m.next = "FLAG"

            with m.State("FLAG"):
                m.d.comb += est_r.addr.eq(g_j)
                with m.If(g_issue):
                    m.d.sync += [g_j.eq(g_j + 1), g_base.eq(g_base + C)]
                    with m.If(g_j == n_keys - 1):
                        m.d.sync += g_issue.eq(0)
                with m.Elif(~_any(gv[1:])):
                    m.d.sync += [f_issue.eq(1), f_t.eq(0), f_c.eq(0)]
                    m.next = "COMP"

            with m.State("COMP"):
                m.d.comb += [kl_r.addr.eq(f_t), k_r.addr.eq(comp.k_addr), q_r.addr.eq(comp.q_addr)]
                with m.If(f_issue):
                    with m.If(f_c == C - 1):
                        m.d.sync += [f_c.eq(0), f_t.eq(f_t + 1)]
                        with m.If(f_t == list_len - 1):
                            m.d.sync += f_issue.eq(0)
                    with m.Else():
                        m.d.sync += f_c.eq(f_c + 1)
                with m.Elif(~comp.busy):
                    m.next = "HAND"

            with m.State("HAND"):
                with m.If(back_idle):
                    m.d.comb += start_back.eq(1)
                    m.d.sync += [x_issue.eq(1), x_t.eq(0), x_w.eq(0), kept_b.eq(kept_cnt), smax_b.eq(smax),
                                 self.kept_count.eq(kept_cnt), den.eq(0), row_cnt.eq(row_cnt + 1)]
                    m.d.comb += pvacc.clear.eq(1)
                    with m.If(row_cnt + 1 == self.n_queries):
                        m.next = "DRAIN"
                    with m.Else():
                        m.next = "ROW_Q"

            with m.State("DRAIN"):
                with m.If(back_idle):
                    m.next = "LOAD"

        with m.FSM(name="back") as back:
            with m.State("IDLE"):
                with m.If(start_back):
                    m.next = "EXP"

            with m.State("EXP"):
                m.d.comb += sc_r.addr.eq(x_t)
                with m.If(x_issue):
                    m.d.sync += x_t.eq(x_t + 1)
                    with m.If(x_t == kept_b - 1):
                        m.d.sync += x_issue.eq(0)
                with m.Elif(~_any(xv[1:])):
                    m.d.sync += [p_issue.eq(1), p_t.eq(0), p_c.eq(0)]
                    m.next = "PV"

            with m.State("PV"):
                m.d.comb += ek_r.addr.eq(p_t)
                with m.If(p_issue):
                    with m.If(p_c == C - 1):
                        m.d.sync += [p_c.eq(0), p_t.eq(p_t + 1)]
                        with m.If(p_t == kept_b - 1):
                            m.d.sync += p_issue.eq(0)
                    with m.Else():
                        m.d.sync += p_c.eq(p_c + 1)
                with m.Elif(~_any(pv[1:])):
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
                        m.d.sync += [o_cnt.eq(0), self.kept_total.eq(self.kept_total + kept_b)]
                        m.next = "IDLE"
        m.d.comb += [back_idle.eq(back.ongoing("IDLE")), back_in_exp.eq(back.ongoing("EXP"))]
        fsm = front

        # Handshakes as plain assignments, outside the FSM's case statements: Icarus never runs an
        # ``always @*`` block whose inputs do not change after time 0 (the state stays LOAD).
        in_load, in_row_q = fsm.ongoing("LOAD"), fsm.ongoing("ROW_Q")
        m.d.comb += [
            self.k.ready.eq(in_load & keys_ok & (k_cnt < n_chunks_total)),
            self.v.ready.eq(in_load & keys_ok & (v_cnt < n_chunks_total)),
            k_w.en.eq(self.k.valid & self.k.ready),
            v_w.en.eq(self.v.valid & self.v.ready),
            self.idle.eq(in_load & (k_cnt == 0) & (v_cnt == 0)),
            self.q.ready.eq(in_row_q),
            q_w.en.eq(self.q.valid & in_row_q),
        ]

        # ---- K/Q reads registered (shared by EST and COMP) ----------------------------------------
        k_d = Signal(chunk)
        q_d = Signal(chunk)
        m.d.sync += [k_d.eq(k_r.data), q_d.eq(q_r.data)]

        # ---- EST datapath (EstimateLanes) writes A_est ------------------------------------------
        m.d.comb += [est.q.eq(q_d), est.k.eq(k_d),
                     est_w.en.eq(est.est_en), est_w.addr.eq(est.est_addr), est_w.data.eq(est.est_data)]

        # ---- FLAG datapath: registered A_est, threshold compare, append to the kept list ----------
        m.d.sync += g_est.eq(est_r.data)
        with m.If(gv[-1] & (g_est >= f_theta)):
            m.d.comb += [kl_w.en.eq(1), kl_w.addr.eq(list_len), kl_w.data.kb.eq(gkb[-1]), kl_w.data.a.eq(g_est)]
            m.d.sync += list_len.eq(list_len + 1)

        # ---- COMP datapath (CompensationLanes): scores into the score list, running max ---------
        m.d.comb += [comp.q.eq(q_d), comp.k.eq(k_d)]
        s_score = comp.score
        with m.If(comp.s_valid):
            m.d.comb += [sc_w.en.eq(1), sc_w.addr.eq(kept_cnt), sc_w.data.score.eq(s_score), sc_w.data.kb.eq(comp.kb)]
            m.d.sync += kept_cnt.eq(kept_cnt + 1)
            with m.If((kept_cnt == 0) | (s_score > smax)):
                m.d.sync += smax.eq(s_score)

        # ---- EXP datapath: ScoreExp (diff, ×scale, rounding shift, saturate, exp), den -------------
        sc_d = Signal(score_layout)
        m.d.sync += sc_d.eq(sc_r.data)
        m.d.comb += [sexp.score.eq(sc_r.data.score), sexp.smax.eq(smax_b), sexp.scale_mant.eq(self.scale_mant),
                     sexp.scale_shift.eq(self.scale_shift), sexp.valid_in.eq(xv[1])]
        x_kb = _delay(m, sc_d.kb, self.EXP_LATENCY - 2, "xkb")
        with m.If(sexp.valid_out):
            m.d.comb += [ek_w.en.eq(1), ek_w.addr.eq(x_w), ek_w.data.e.eq(sexp.y), ek_w.data.kb.eq(x_kb[-1])]
            m.d.sync += [x_w.eq(x_w + 1), den.eq(den + sexp.y)]

        # ---- PV datapath: e·V over kept keys into the accumulators (PVAccumulator) ----------------
        # t1 ek data -> t2 registered -> V address -> t3 V data -> t4 registered -> t5 products
        ek_d = Signal(ek_layout)
        m.d.sync += ek_d.eq(ek_r.data)
        m.d.comb += v_r.addr.eq(ek_d.kb + pc[2])
        p_e = _delay(m, ek_d.e, 2, "pv_e")[-1]
        v_d = Signal(chunk)
        m.d.sync += v_d.eq(v_r.data)
        m.d.comb += [pvacc.p.eq(p_e), pvacc.v.eq(v_d), pvacc.chunk.eq(pc[4]), pvacc.valid.eq(pv[4])]

        # ---- NORM datapath: the Normalizer's reciprocal scalers straight into the output stream ----
        m.d.comb += [norm.acc.eq(pvacc.acc), norm.den.eq(den), norm.chunk.eq(n_c), norm.valid_in.eq(n_issue),
                     norm.en.eq(~stall), self.o.payload.data.eq(norm.result), self.o.valid.eq(norm.valid_out),
                     self.o.payload.kept.eq(kept_b)]
        with m.If(self.o.valid & self.o.ready & norm.overflow):
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
