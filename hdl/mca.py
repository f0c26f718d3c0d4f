"""MCA unit: Monte-Carlo value encoding with per-token sample counts, then ``Y = A·H̃``
(DESIGN §7, seed 002 eqs. 5-9). Bit-exact with :func:`golden.mca.mca_encode_fixed` (and so with
:func:`golden.mca.mca_fixed`) for a given seed; formats :class:`golden.mca.MCAFormats`.

Protocol (every stream ``amaranth.lib.stream``), one head:

1. LOAD (the five input streams in any interleaving):
   ``cdf`` takes the ``d_in`` entries of the offline CDF table (``make_sampling_table(W).cdf``,
   ``cdf_bits + 1`` bits); ``ws`` the ``d_in`` pre-scaled rows ``W[k]/p(k)`` (``d`` raw values of
   ``ws_width`` bits with ``ws_frac`` fractional bits, the table's ``ws_fmt``); ``bias`` one row
   b_V in ``h_fmt``; ``a`` the attention probabilities A (``a_fmt`` UQ1.15) **column by column**
   (``n_queries`` beats per key j, j = 0..n_keys-1). At the end of each column the sample count
   ``r_j`` (eq. 9, see the golden module) is computed from the column maximum by a 6-stage
   pipeline (two multiplies by the registers ``n_keys`` and ``inv_alpha``, round up, saturate,
   square, round up and clamp to [1, d_in]).
2. The seed register ``seed`` is loaded into the xorshift32 state, which is then advanced
   ``PRNG_WARMUP`` (4) times.
3. Per key token j: ``x`` takes its ``d_in`` values (``token_fmt``); then ``r_j`` samples are
   drawn, **one per cycle**: the PRNG advances, ``u`` = its top ``cdf_bits`` bits enters a
   ``K``-stage binary search of the CDF (``K = ceil(log2 d_in)``, 2 cycles per stage, one read
   port per stage, so a new sample enters every cycle), the sampled index reads ``X[j][s]`` and
   the row ``W[s]/p(s)``, ``d`` multipliers and accumulators sum ``X[j][s]·W[s]/p(s)``; then
   a ``lanes``-wide :class:`hdl.arith.SharedReciprocalScaler` divides by ``r_j`` (``RecipSpec`` of
   ``count_fmt``), b_V is added with saturation and the row ``H̃[j]`` goes to the back end.
4. The back end (:class:`hdl.softmax_pv.SoftmaxPV`, probability mode, shared with E-ATT) takes the
   rows of A (read from the A buffer) and emits ``Y = A·H̃`` on ``o`` (``d/lanes`` beats of
   ``lanes`` ``out_fmt`` values per query row).

Registers (held by the host during a head): ``seed`` (non-zero), ``inv_alpha`` (``MCAFormats.
inv_alpha_raw(α)``), ``n_keys`` (1..n_max), ``n_queries`` (1..m_max). Outputs: ``samples_total``
(Σ r_j of the head, for the FLOPs reduction ``d_in·n / Σ r``), sticky ``acc_overflow``,
``h_overflow``, ``out_overflow`` (cleared when the head's first A beat is accepted),
``config_error`` (n_keys or n_queries out of range: the block waits in LOAD), ``idle``.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.data import ArrayLayout
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from golden.fixed import QFormat
from golden.mca import PRNG_WARMUP, MCAFormats
from golden.softmax_pv import SoftmaxPVFormats

from .arith import SharedReciprocalScaler
from .fixed import saturate, shape_of
from .softmax_pv import SoftmaxPV

__all__ = ["Mca", "xorshift32_next", "build_mca", "mca_formats"]


def xorshift32_next(x):
    """One xorshift32 step (13, 17, 5) as logic."""
    x1 = (x ^ (x << 13))[:32]
    x2 = x1 ^ (x1 >> 17)
    return (x2 ^ (x2 << 5))[:32]


def _check_int(name: str, value: object, lo: int, hi: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an integer, not {value!r}")
    if value < lo or (hi is not None and value > hi):
        raise ValueError(f"{name} must be in [{lo}, {hi if hi is not None else 'inf'}], not {value}")


class Mca(wiring.Component):
    """One MCA head (see the module docstring)."""

    #: column maximum -> r_j written: ·inv_alpha, ·n, round up, saturate, square (registered), then round up + clamp
    R_LATENCY = 5
    #: cycles per sample once the pipeline is full
    CYCLES_PER_SAMPLE = 1

    def __init__(self, *, d_in: int = 16, d: int = 4, n_max: int = 8, m_max: int = 8, lanes: int = 2,
                 cdf_bits: int = 16, ws_width: int = 18, ws_frac: int = 12,
                 fmts: MCAFormats = MCAFormats()) -> None:
        try:
            _check_int("d_in", d_in, 1, 4095)
            _check_int("d", d, 1)
            _check_int("n_max", n_max, 1)
            _check_int("m_max", m_max, 1)
            _check_int("lanes", lanes, 1)
            _check_int("cdf_bits", cdf_bits, 1, 32)
            _check_int("ws_width", ws_width, 4, 40)
            _check_int("ws_frac", ws_frac, -32, 56)
            if d % lanes:
                raise ValueError(f"lanes={lanes} must divide d={d}")
            if not isinstance(fmts, MCAFormats):
                raise TypeError(f"fmts must be an MCAFormats, not {fmts!r}")
            if d_in > fmts.count_fmt.max_int:
                raise ValueError(f"d_in={d_in} exceeds count_fmt {fmts.count_fmt}")
        except (TypeError, ValueError):
            self._MustUse__used = True
            raise
        self._d_in, self._d, self._n_max, self._m_max, self._lanes = d_in, d, n_max, m_max, lanes
        self._cdf_bits, self._ws_width, self._ws_frac, self._fmts = cdf_bits, ws_width, ws_frac, fmts
        self._back_fmts = SoftmaxPVFormats(n_max, v_fmt=fmts.h_fmt, out_fmt=fmts.out_fmt, softmax=False,
                                           p_fmt=fmts.a_fmt)
        f = fmts
        super().__init__({
            "cdf": In(stream.Signature(unsigned(cdf_bits + 1))),
            "ws": In(stream.Signature(ArrayLayout(shape_of(self.ws_fmt), d))),
            "bias": In(stream.Signature(ArrayLayout(shape_of(f.h_fmt), d))),
            "a": In(stream.Signature(shape_of(f.a_fmt))),
            "x": In(stream.Signature(shape_of(f.token_fmt))),
            "o": Out(stream.Signature(ArrayLayout(shape_of(f.out_fmt), lanes))),
            "seed": In(32),
            "inv_alpha": In(24),
            "n_keys": In(unsigned(n_max.bit_length())),
            "n_queries": In(unsigned(m_max.bit_length())),
            "samples_total": Out(32),
            "acc_overflow": Out(1),
            "h_overflow": Out(1),
            "out_overflow": Out(1),
            "config_error": Out(1),
            "idle": Out(1),
        })

    # -- parameters ------------------------------------------------------------------------------
    @property
    def fmts(self) -> MCAFormats:
        return self._fmts

    @property
    def d_in(self) -> int:
        return self._d_in

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
    def cdf_bits(self) -> int:
        return self._cdf_bits

    @property
    def ws_fmt(self) -> QFormat:
        return QFormat(self._ws_width, self._ws_frac)

    @property
    def acc_fmt(self) -> QFormat:
        return self._fmts.acc_fmt.with_(frac=self._fmts.token_fmt.frac + self._ws_frac)

    @property
    def search_steps(self) -> int:
        return max(1, (self._d_in - 1).bit_length())

    @property
    def sample_latency(self) -> int:
        """PRNG step to accumulation: u register, 2 per search step, X/W read, register, product, add."""
        return 1 + 2 * self.search_steps + 4

    @property
    def formats(self) -> dict[str, QFormat]:
        f = self._fmts
        return {"token": f.token_fmt, "a": f.a_fmt, "sqrt": f.sqrt_fmt, "ws": self.ws_fmt, "acc": self.acc_fmt,
                "count": f.count_fmt, "h": f.h_fmt, "out": f.out_fmt}

    @property
    def latency(self) -> dict[str, int]:
        return {"r": self.R_LATENCY, "sample": self.sample_latency, "div": SharedReciprocalScaler.LATENCY,
                "pv": SoftmaxPV.PV_LATENCY, "cycles_per_sample": self.CYCLES_PER_SAMPLE}

    def manifest_extra(self) -> dict:
        return {
            "lanes": self._lanes, "cdf_bits": self._cdf_bits, "search_steps": self.search_steps,
            "prng": "xorshift32 (13, 17, 5), seed register, warm-up 4 steps, one step per sample",
            "cycles_per_sample": self.CYCLES_PER_SAMPLE,
            "recip": self._fmts.recip().as_dict(),
            "protocol": "LOAD: cdf d_in, ws d_in rows, bias 1 row, a n·m column-major; per key: x d_in values; "
                        "o: m rows of d/lanes beats",
        }

    # -- hardware --------------------------------------------------------------------------------
    def elaborate(self, platform):
        f = self._fmts
        d_in, d, n_max, m_max, L, C = self._d_in, self._d, self._n_max, self._m_max, self._lanes, self.chunks
        B = self._cdf_bits
        K = self.search_steps
        m = Module()
        m.submodules.back = back = SoftmaxPV(d=d, lanes=L, fmts=self._back_fmts)
        wiring.connect(m, wiring.flipped(self.o), back.o)
        self._probe_v = back.v  # H̃ rows into the back end (probed by the unit tests)

        jb = max(1, (n_max - 1).bit_length())
        wsrow = ArrayLayout(shape_of(self.ws_fmt), d)
        m.submodules.cdfmem = cdfmem = Memory(shape=unsigned(B + 1), depth=1 << K, init=[])
        m.submodules.wsmem = wsmem = Memory(shape=wsrow, depth=d_in, init=[])
        m.submodules.xmem = xmem = Memory(shape=shape_of(f.token_fmt), depth=d_in, init=[])
        m.submodules.amem = amem = Memory(shape=shape_of(f.a_fmt), depth=m_max << jb, init=[])
        m.submodules.rmem = rmem = Memory(shape=unsigned(f.count_fmt.width), depth=n_max, init=[])
        cdf_w, ws_w, x_w, a_w, r_w = (mem.write_port() for mem in (cdfmem, wsmem, xmem, amem, rmem))
        cdf_rs = [cdfmem.read_port() for _ in range(K)]
        ws_r, x_r = wsmem.read_port(), xmem.read_port()
        r_r = rmem.read_port(domain="comb")  # small; read in the cycle the token's X load ends
        a_r = amem.read_port()
        bias = Signal(ArrayLayout(shape_of(f.h_fmt), d))

        n_keys, n_q = self.n_keys, self.n_queries
        cfg_ok = (n_keys >= 1) & (n_keys <= n_max) & (n_q >= 1) & (n_q <= m_max)
        c_cnt = Signal(range(d_in + 1))
        w_cnt = Signal(range(d_in + 1))
        b_done = Signal()
        a_i = Signal(range(m_max))
        a_j = Signal(range(n_max + 1))
        cm = Signal(shape_of(f.a_fmt))
        warm = Signal(range(PRNG_WARMUP + 1))
        state = Signal(32)
        tok = Signal(range(n_max + 1))
        xi = Signal(range(d_in))
        r_cur = Signal(unsigned(f.count_fmt.width))
        k_cnt = Signal(unsigned(f.count_fmt.width))
        s_issue = Signal()
        dv_issue = Signal()
        dv_c = Signal(range(C))
        h_cnt = Signal(range(C))
        o_i = Signal(range(m_max + 1))
        o_j = Signal(jb)
        o_issue = Signal()

        # ---- r_j pipeline (column maximum -> sample count) -------------------------------------------
        r_go = Signal()
        r_cm = Signal(shape_of(f.a_fmt))
        rv = [Signal(name=f"rv{i}") for i in range(self.R_LATENCY)]
        rj = [Signal(range(n_max), name=f"rj{i}") for i in range(self.R_LATENCY)]
        m.d.sync += [rv[0].eq(r_go), rj[0].eq(a_j)]
        m.d.sync += [rv[i].eq(rv[i - 1]) for i in range(1, self.R_LATENCY)]
        m.d.sync += [rj[i].eq(rj[i - 1]) for i in range(1, self.R_LATENCY)]
        p1 = Signal(unsigned(f.a_fmt.width + 24))
        p2 = Signal(unsigned(len(p1) + len(n_keys)))
        m.d.sync += [p1.eq(r_cm * self.inv_alpha), p2.eq(p1 * n_keys)]
        drop = f.a_fmt.frac + f.alpha_frac - f.sqrt_fmt.frac
        t_up = Signal(unsigned(len(p2) + 1))
        if drop > 0:
            m.d.sync += t_up.eq((p2 + ((1 << drop) - 1)) >> drop)
        else:
            m.d.sync += t_up.eq(p2 << -drop)
        t_sat = Signal(unsigned(f.sqrt_fmt.width))
        m.d.sync += t_sat.eq(saturate(t_up, f.sqrt_fmt)[0])
        sq = Signal(unsigned(2 * f.sqrt_fmt.width))
        m.d.sync += sq.eq(t_sat * t_sat)
        f2 = 2 * f.sqrt_fmt.frac
        r_raw = (sq + ((1 << f2) - 1)) >> f2
        r_val = Mux(r_raw < 1, 1, Mux(r_raw > d_in, d_in, r_raw))
        m.d.comb += [r_w.en.eq(rv[-1]), r_w.addr.eq(rj[-1]), r_w.data.eq(r_val)]

        # ---- sampling pipeline ------------------------------------------------------------------------
        nxt = Signal(32)
        m.d.comb += nxt.eq(xorshift32_next(state))
        u0 = Signal(B)
        sv = Signal()
        m.d.sync += [u0.eq(nxt[32 - B:]), sv.eq(s_issue)]
        s_idx, s_u, s_v = Const(0, K), u0, sv
        valids = [sv]
        for st in range(K):
            bit = K - 1 - st
            addr = Signal(K, name=f"srch_addr{st}")
            m.d.comb += [addr.eq(s_idx | ((1 << bit) - 1)), cdf_rs[st].addr.eq(addr)]
            addr_d = Signal(K, name=f"srch_addr_d{st}")
            u_d, v_d, idx_d = Signal(B, name=f"srch_u{st}"), Signal(name=f"srch_v{st}"), Signal(K, name=f"srch_i{st}")
            m.d.sync += [addr_d.eq(addr), u_d.eq(s_u), v_d.eq(s_v), idx_d.eq(s_idx)]
            take = (addr_d < d_in) & (cdf_rs[st].data <= u_d)
            idx_n = Signal(K, name=f"srch_s{st + 1}")
            u_n, v_n = Signal(B, name=f"srch_un{st}"), Signal(name=f"srch_vn{st}")
            m.d.sync += [idx_n.eq(idx_d | Mux(take, 1 << bit, 0)), u_n.eq(u_d), v_n.eq(v_d)]
            s_idx, s_u, s_v = idx_n, u_n, v_n
            valids += [v_d, v_n]
        # sampled index -> X[j][s], W[s]/p(s) read; registered; products; accumulate
        m.d.comb += [x_r.addr.eq(s_idx), ws_r.addr.eq(s_idx)]
        rd_v = Signal()
        m.d.sync += rd_v.eq(s_v)
        x_d = Signal(shape_of(f.token_fmt))
        ws_d = Signal(wsrow)
        reg_v = Signal()
        m.d.sync += [x_d.eq(x_r.data), ws_d.eq(ws_r.data), reg_v.eq(rd_v)]
        pw = f.token_fmt.width + self._ws_width
        prods = [Signal(range(-(1 << (pw - 1)), 1 << (pw - 1)), name=f"smp_prod{c}") for c in range(d)]
        prod_v = Signal()
        m.d.sync += [p.eq(x_d * ws_d[c]) for c, p in enumerate(prods)]
        m.d.sync += prod_v.eq(reg_v)
        # wide enough for r_j <= d_in products, and at least the accumulator format (saturate()
        # takes a value at least as wide as the format)
        aw = max(pw + d_in.bit_length(), self.acc_fmt.width)
        acc = [Signal(range(-(1 << (aw - 1)), 1 << (aw - 1)), name=f"smp_acc{c}") for c in range(d)]
        clear_acc = Signal()
        with m.If(clear_acc):
            m.d.sync += [a.eq(0) for a in acc]
        with m.Elif(prod_v):
            m.d.sync += [a.eq(a + p) for a, p in zip(acc, prods, strict=True)]
        pipe_busy = Cat(*valids, rd_v, reg_v, prod_v).any()

        # ---- division, bias, H̃ row to the back end ---------------------------------------------------
        stall = Signal()
        m.d.comb += stall.eq(back.v.valid & ~back.v.ready)
        acc_fmt = self.acc_fmt
        overs_acc = []
        h_overs = []
        # one reciprocal lookup of r_j shared by the lanes' multipliers
        m.submodules.recip = unit = SharedReciprocalScaler(spec=f.recip(), value_fmt=acc_fmt, out_fmt=f.h_fmt, lanes=L)
        m.d.comb += [unit.den.eq(r_cur), unit.valid_in.eq(dv_issue), unit.en.eq(~stall)]
        for lane in range(L):
            sel = acc[lane]
            for c in range(1, C):
                sel = Mux(dv_c == c, acc[c * L + lane], sel)
            val, ovf = saturate(sel, acc_fmt)
            value = Signal(shape_of(acc_fmt), name=f"div_value{lane}")
            m.d.comb += value.eq(val)
            overs_acc.append(ovf)
            m.d.comb += unit.value[lane].eq(value)
            b_sel = bias[lane]
            for c in range(1, C):
                b_sel = Mux(h_cnt == c, bias[c * L + lane], b_sel)
            h, b_over = saturate(unit.result[lane] + b_sel, f.h_fmt)
            m.d.comb += back.v.payload[lane].eq(h)
            h_overs += [unit.overflow[lane], b_over]
        m.d.comb += back.v.valid.eq(unit.valid_out)

        # ---- A rows to the back end (read buffer, stalled by back.s.ready) ----------------------------
        s_stall = Signal()
        m.d.comb += s_stall.eq(back.s.valid & ~back.s.ready)
        m.d.comb += [a_r.addr.eq(Cat(o_j, o_i)), a_r.en.eq(~s_stall),
                     back.s.payload.eq(a_r.data)]
        with m.If(~s_stall):
            m.d.sync += back.s.valid.eq(o_issue)

        # ---- control ------------------------------------------------------------------------------------
        a_take = Signal()
        with m.FSM(name="mca") as fsm:
            with m.State("LOAD"):
                m.d.sync += self.config_error.eq(~cfg_ok)
                with m.If(self.cdf.valid & self.cdf.ready):
                    m.d.sync += c_cnt.eq(c_cnt + 1)
                with m.If(self.ws.valid & self.ws.ready):
                    m.d.sync += w_cnt.eq(w_cnt + 1)
                with m.If(self.bias.valid & self.bias.ready):
                    m.d.sync += [b_done.eq(1), bias.eq(self.bias.payload)]
                with m.If(a_take):
                    new_cm = Mux((a_i == 0) | (self.a.payload > cm), self.a.payload, cm)
                    m.d.sync += cm.eq(new_cm)
                    with m.If((a_i == 0) & (a_j == 0)):
                        m.d.sync += [self.samples_total.eq(0), self.acc_overflow.eq(0), self.h_overflow.eq(0)]
                    with m.If(a_i == n_q - 1):
                        m.d.sync += [a_i.eq(0), a_j.eq(a_j + 1)]
                        m.d.comb += [r_go.eq(1), r_cm.eq(new_cm)]
                    with m.Else():
                        m.d.sync += a_i.eq(a_i + 1)
                with m.If(cfg_ok & (c_cnt == d_in) & (w_cnt == d_in) & b_done & (a_j == n_keys)
                          & ~Cat(*rv).any()):
                    m.d.sync += [c_cnt.eq(0), w_cnt.eq(0), b_done.eq(0), a_j.eq(0), state.eq(self.seed),
                                 warm.eq(0), tok.eq(0), xi.eq(0)]
                    m.next = "WARM"

            with m.State("WARM"):
                m.d.sync += [state.eq(nxt), warm.eq(warm + 1)]
                with m.If(warm == PRNG_WARMUP - 1):
                    m.next = "TOKEN_X"

            with m.State("TOKEN_X"):
                with m.If(self.x.valid):
                    m.d.sync += xi.eq(Mux(xi == d_in - 1, 0, xi + 1))
                    with m.If(xi == d_in - 1):
                        m.d.sync += [s_issue.eq(1), k_cnt.eq(0), r_cur.eq(r_r.data)]
                        m.d.comb += clear_acc.eq(1)
                        m.next = "SAMPLE"

            with m.State("SAMPLE"):
                with m.If(s_issue):
                    m.d.sync += [state.eq(nxt), k_cnt.eq(k_cnt + 1),
                                 self.samples_total.eq(self.samples_total + 1)]
                    with m.If(k_cnt == r_cur - 1):
                        m.d.sync += s_issue.eq(0)
                with m.Elif(~pipe_busy):
                    m.d.sync += [dv_issue.eq(1), dv_c.eq(0), h_cnt.eq(0)]
                    m.next = "DIV"

            with m.State("DIV"):
                with m.If(dv_issue & ~stall):
                    m.d.sync += dv_c.eq(dv_c + 1)
                    with m.If(dv_c == C - 1):
                        m.d.sync += [dv_c.eq(0), dv_issue.eq(0)]
                with m.If(back.v.valid & back.v.ready):
                    m.d.sync += h_cnt.eq(h_cnt + 1)
                    with m.If(h_cnt == C - 1):
                        m.d.sync += [h_cnt.eq(0), tok.eq(tok + 1)]
                        with m.If(tok == n_keys - 1):
                            m.d.sync += [o_issue.eq(1), o_i.eq(0), o_j.eq(0)]
                            m.next = "OUT"
                        with m.Else():
                            m.next = "TOKEN_X"

            with m.State("OUT"):
                with m.If(~s_stall):
                    with m.If(o_issue):
                        with m.If(o_j == n_keys - 1):
                            m.d.sync += [o_j.eq(0), o_i.eq(o_i + 1)]
                            with m.If(o_i == n_q - 1):
                                m.d.sync += o_issue.eq(0)
                        with m.Else():
                            m.d.sync += o_j.eq(o_j + 1)
                    with m.Elif(~back.s.valid):
                        m.next = "LOAD"

        in_load, in_x = fsm.ongoing("LOAD"), fsm.ongoing("TOKEN_X")
        m.d.comb += [
            self.cdf.ready.eq(in_load & cfg_ok & (c_cnt < d_in)),
            self.ws.ready.eq(in_load & cfg_ok & (w_cnt < d_in)),
            self.bias.ready.eq(in_load & cfg_ok & ~b_done),
            self.a.ready.eq(in_load & cfg_ok & (a_j < n_keys)),
            a_take.eq(self.a.valid & self.a.ready),
            self.x.ready.eq(in_x),
            cdf_w.en.eq(self.cdf.valid & self.cdf.ready), cdf_w.addr.eq(c_cnt), cdf_w.data.eq(self.cdf.payload),
            ws_w.en.eq(self.ws.valid & self.ws.ready), ws_w.addr.eq(w_cnt), ws_w.data.eq(self.ws.payload),
            a_w.en.eq(a_take), a_w.addr.eq(Cat(a_j.as_unsigned()[:jb], a_i)),
            a_w.data.eq(self.a.payload),
            x_w.en.eq(self.x.valid & in_x), x_w.addr.eq(xi), x_w.data.eq(self.x.payload),
            r_r.addr.eq(tok),
            back.n_keys.eq(n_keys), back.n_rows.eq(n_q),
            self.out_overflow.eq(back.overflow),
            self.idle.eq(in_load & (c_cnt == 0) & (w_cnt == 0) & ~b_done & (a_j == 0) & (a_i == 0) & back.idle),
        ]
        with m.If(back.v.valid & back.v.ready):
            with m.If(Cat(*h_overs).any()):
                m.d.sync += self.h_overflow.eq(1)
        with m.If(dv_issue & ~stall & Cat(*overs_acc).any()):
            m.d.sync += self.acc_overflow.eq(1)
        return m


# ---- registry ------------------------------------------------------------------------------------
from .registry import BlockSpec, Param, ParamError  # noqa: E402


def _validate(p: dict) -> None:
    if p["d"] % p["lanes"]:
        raise ParamError(f"parameter lanes={p['lanes']} out of range: expected a divisor of d={p['d']}")


def mca_formats(**_: object) -> MCAFormats:
    """The block's MCAFormats (the defaults; for testbenches and benchmarks)."""
    return MCAFormats()


def build_mca(*, d_in: int, d: int, n_max: int, m_max: int, lanes: int, cdf_bits: int, ws_width: int,
              ws_frac: int) -> Mca:
    return Mca(d_in=d_in, d=d, n_max=n_max, m_max=m_max, lanes=lanes, cdf_bits=cdf_bits, ws_width=ws_width,
               ws_frac=ws_frac)


BLOCKS = [
    BlockSpec(
        name="mca",
        description="MCA head: sample counts from A (eq. 9), xorshift32 inverse-CDF sampling of W/p, "
                    "1/r scaling, shared A·H̃ back end",
        params=(
            Param("d_in", 16, "token dimension (sampled rows of W_V)", min=1, max=4095),
            Param("d", 4, "head dimension (value width)", min=1, max=128),
            Param("n_max", 8, "maximum keys per head", min=1, max=1024),
            Param("m_max", 8, "maximum query rows per head (A buffer)", min=1, max=1024),
            Param("lanes", 2, "P·V multipliers / dividers and output values per beat (divides d)", min=1, max=64),
            Param("cdf_bits", 16, "CDF table resolution (bits of the uniform)", min=1, max=32),
            Param("ws_width", 18, "pre-scaled row width W/p (signed raw)", min=4, max=40),
            Param("ws_frac", 12, "pre-scaled row fractional bits (the table's ws_fmt.frac)", min=-32, max=56),
        ),
        build=build_mca,
        cocotb_module="sim.tb_mca",
        validate=_validate,
        fpga_params={"d_in": 384, "d": 32, "n_max": 128, "m_max": 128, "lanes": 8, "cdf_bits": 16,
                     "ws_width": 18, "ws_frac": 12},
    ),
]
