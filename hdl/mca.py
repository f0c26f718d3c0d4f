"""MCA unit: Monte-Carlo value encoding with per-token sample counts, then ``Y = A·H̃``
(DESIGN §7, seed 002 eqs. 5-9). Bit-exact with :func:`golden.mca.mca_encode_fixed` (and so with
:func:`golden.mca.mca_fixed`) for a given seed; formats :class:`golden.mca.MCAFormats`.

Protocol (every stream ``amaranth.lib.stream``), one head:

1. LOAD (the five input streams in any interleaving):
   ``cdf`` takes the ``d_in`` entries of the offline CDF table (``make_sampling_table(W).cdf``,
   ``cdf_bits + 1`` bits); ``ws`` the ``d_in`` pre-scaled rows ``W[k]/p(k)`` (``d_h`` raw values of
   ``ws_width`` bits with ``ws_frac`` fractional bits, the table's ``ws_fmt``); ``bias`` one row
   b_V in ``h_fmt``; ``a`` the attention probabilities A (``a_fmt`` UQ1.15) **column by column**
   (``n_queries`` beats per key j, j = 0..n_keys-1). At the end of each column the sample count
   ``r_j`` (eq. 9, see the golden module) is computed from the column maximum by
   :class:`SampleCount` (``R_LATENCY`` = 10 cycles: two registered multiplies by the registers
   ``inv_alpha`` and ``n_keys``, round up, saturate, registered square, round up and clamp to
   [1, d_in]).
2. The seed register ``seed`` is loaded into the xorshift32 state, which is then advanced
   ``PRNG_WARMUP`` (4) times.
3. Per key token j: ``x`` takes its ``d_in`` values (``token_fmt``); then ``r_j`` samples are
   drawn, **one per cycle**: the PRNG advances, ``u`` = its top ``cdf_bits`` bits enters a
   ``K``-stage binary search of the CDF (``K = ceil(log2 d_in)``, 2 cycles per stage, one read
   port per stage, so a new sample enters every cycle: :class:`CdfSearch`), the sampled index reads
   ``X[j][s]`` and the row ``W[s]/p(s)``, ``d_h`` registered multipliers and accumulators sum
   ``X[j][s]·W[s]/p(s)`` (:class:`SampleAccumulator`); then
   a ``lanes``-wide :class:`hdl.arith.SharedReciprocalScaler` divides by ``r_j`` (``RecipSpec`` of
   ``count_fmt``), b_V is added with saturation and the row ``H̃[j]`` goes to the back end.
4. The back end (:class:`hdl.softmax_pv.SoftmaxPV`, probability mode, shared with E-ATT) takes the
   rows of A (read from the A buffer) and emits ``Y = A·H̃`` on ``o`` (``d_h/lanes`` beats of
   ``lanes`` ``out_fmt`` values per query row).

Registers (held by the host during a head): ``seed`` (non-zero), ``inv_alpha`` (``MCAFormats.
inv_alpha_raw(α)``), ``n_keys`` (1..n_max), ``n_queries`` (1..m_max). Outputs: ``samples_total``
(Σ r_j of the head, for the FLOPs reduction ``d_in·n / Σ r``), sticky ``acc_overflow``,
``h_overflow``, ``out_overflow`` (cleared when the head's first A beat is accepted),
``config_error`` (n_keys or n_queries out of range: the block waits in LOAD), ``idle``.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Shape, Signal, signed, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.data import ArrayLayout
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from golden.fixed import QFormat
from golden.mca import PRNG_WARMUP, MCAFormats
from golden.softmax_pv import SoftmaxPVFormats

from .arith import SharedReciprocalScaler
from .checked import CheckedComponent, ReadOnlyParam
from .fixed import saturate, shape_of
from .primitives import WIDE_MULTIPLY_LATENCY, RegisteredMultiplier, RegisteredReadMemory, registered_multiply
from .primitives import registered_wide_multiply as wide_multiply
from .softmax_pv import LaneSplit, SoftmaxPV, chunk_select

__all__ = ["Mca", "SampleCount", "CdfSearch", "SampleAccumulator", "RowScaler", "ABuffer", "xorshift32_next",
           "build_mca", "mca_formats"]


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


class SampleCount(wiring.Component):
    """Column maximum -> sample count r_j (eq. 9, :func:`golden.mca.sample_counts_fixed`), one column
    per cycle: ``cm·inv_alpha`` and ``·n_keys`` (registered wide multiplies), round up, saturate to
    ``sqrt_fmt``, square (registered multiply), round up and clamp to [1, d_in].

    ``go`` with ``col`` and ``cm`` at an edge: ``w_en`` with ``w_addr = col`` and ``r`` is high in the
    cycle after :attr:`LATENCY` edges (the r memory's write port samples it). ``busy``: a column in
    flight. ``inv_alpha`` and ``n_keys`` are held during a head (registers of the host).
    """

    #: ``go`` to ``w_en``: 2 wide multiplies (3 each), round up, saturate, square (2)
    LATENCY = 2 * WIDE_MULTIPLY_LATENCY + 2 + RegisteredMultiplier.LATENCY

    def __init__(self, *, d_in: int, n_max: int, fmts: MCAFormats) -> None:
        self._d_in, self._fmts = d_in, fmts
        super().__init__({
            "go": In(1), "col": In(range(n_max)), "cm": In(shape_of(fmts.a_fmt)),
            "inv_alpha": In(24), "n_keys": In(unsigned(n_max.bit_length())),
            "w_en": Out(1), "w_addr": Out(range(n_max)), "r": Out(unsigned(fmts.count_fmt.width)), "busy": Out(1),
        })

    def elaborate(self, platform):
        f, m = self._fmts, Module()
        # (valid, column) travel beside the arithmetic
        rv = [Signal(name=f"rv{i}") for i in range(self.LATENCY)]
        rj = [Signal.like(self.col, name=f"rj{i}") for i in range(self.LATENCY)]
        m.d.sync += [rv[0].eq(self.go), rj[0].eq(self.col)]
        m.d.sync += [b.eq(a) for a, b in zip(rv[:-1] + rj[:-1], rv[1:] + rj[1:], strict=True)]
        # every product on a registered multiplier (DSP registers on ECP5); the 24- and 40-bit
        # operands are cut into 18-bit chunks summed one register later
        p1 = wide_multiply(m, self.cm, self.inv_alpha, platform=platform, name="alpha_")
        p2 = wide_multiply(m, self.n_keys, p1, platform=platform, name="n_")
        drop = f.a_fmt.frac + f.alpha_frac - f.sqrt_fmt.frac
        t_up = Signal(unsigned(len(p2) + 1))
        m.d.sync += t_up.eq((p2 + ((1 << drop) - 1)) >> drop if drop > 0 else p2 << -drop)
        t_sat = Signal(unsigned(f.sqrt_fmt.width))
        m.d.sync += t_sat.eq(saturate(t_up, f.sqrt_fmt)[0])
        sq, _ = registered_multiply(m, t_sat, t_sat, platform=platform, name="sq_")
        f2 = 2 * f.sqrt_fmt.frac
        r_raw = (sq + ((1 << f2) - 1)) >> f2
        m.d.comb += [self.r.eq(Mux(r_raw < 1, 1, Mux(r_raw > self._d_in, self._d_in, r_raw))),
                     self.w_en.eq(rv[-1]), self.w_addr.eq(rj[-1]), self.busy.eq(Cat(*rv).any())]
        return m


class CdfSearch(wiring.Component):
    """Inverse-CDF sampling: ``u`` -> row index s with ``cdf[s] <= u < cdf[s + 1]``, a new ``u``
    every cycle: the u register, then ``K = ceil(log2 d_in)`` binary-search stages of 2 cycles
    (read of the stage's own CDF copy, a :class:`hdl.primitives.RegisteredReadMemory` addressed one
    edge early with the index the previous stage is registering; compare). Owns the CDF copies (``w_*``).

    ``valid`` with ``u`` at an edge: ``index`` / ``index_valid`` after :attr:`latency` edges.
    ``busy``: a sample in flight.
    """

    def __init__(self, *, d_in: int, cdf_bits: int) -> None:
        self._d_in, self._B = d_in, cdf_bits
        self._K = max(1, (d_in - 1).bit_length())
        super().__init__({
            "w_en": In(1), "w_addr": In(self._K), "w_data": In(cdf_bits + 1),
            "u": In(cdf_bits), "valid": In(1),
            "index": Out(self._K), "index_valid": Out(1), "busy": Out(1),
        })

    @property
    def latency(self) -> int:
        return 1 + 2 * self._K

    def elaborate(self, platform):
        K, B, m = self._K, self._B, Module()
        # one CDF copy per stage, each read through the block RAM's output register (timing: the
        # compare starts from a register, not from the RAM's ~5.8 ns clock-to-out); the address of
        # stage st + 1 is the index stage st is about to register, so each stage still takes 2 cycles
        mems = [RegisteredReadMemory(width=B + 1, depth=1 << K) for _ in range(K)]
        for st, mem in enumerate(mems):
            m.submodules[f"cdfmem{st}"] = mem
            m.d.comb += [mem.w_en.eq(self.w_en), mem.w_addr.eq(self.w_addr), mem.w_data.eq(self.w_data),
                         mem.r_en.eq(1), mem.r_data_en.eq(1)]
        m.d.comb += mems[0].r_addr.eq((1 << (K - 1)) - 1)
        u0, sv = Signal(B), Signal()
        m.d.sync += [u0.eq(self.u), sv.eq(self.valid)]
        s_idx, s_u, s_v = Const(0, K), u0, sv
        valids = [sv]
        for st in range(K):
            bit, rd = K - 1 - st, mems[st]
            u_d, v_d, idx_d = Signal(B, name=f"srch_u{st}"), Signal(name=f"srch_v{st}"), Signal(K, name=f"srch_i{st}")
            m.d.sync += [u_d.eq(s_u), v_d.eq(s_v), idx_d.eq(s_idx)]
            take = ((idx_d | ((1 << bit) - 1)) < self._d_in) & (rd.r_data <= u_d)
            idx_c = Signal(K, name=f"srch_c{st}")
            m.d.comb += idx_c.eq(idx_d | Mux(take, 1 << bit, 0))
            if st + 1 < K:
                m.d.comb += mems[st + 1].r_addr.eq(idx_c | ((1 << (bit - 1)) - 1))
            idx_n = Signal(K, name=f"srch_s{st + 1}")
            u_n, v_n = Signal(B, name=f"srch_un{st}"), Signal(name=f"srch_vn{st}")
            m.d.sync += [idx_n.eq(idx_c), u_n.eq(u_d), v_n.eq(v_d)]
            s_idx, s_u, s_v = idx_n, u_n, v_n
            valids += [v_d, v_n]
        m.d.comb += [self.index.eq(s_idx), self.index_valid.eq(s_v),
                     self.busy.eq(Cat(*valids).any())]
        return m


class SampleAccumulator(wiring.Component):
    """``acc[c] += X[s]·(W[s]/p(s))[c]`` for each sampled ``index`` s, one per cycle. Owns the token
    memory X (``x_w_*``) and the pre-scaled rows (``ws_w_*``).

    ``valid`` with ``index`` (both registers: the search's last stage) at an edge: ``acc``
    includes the sample after :attr:`LATENCY` edges (the X/W memories' address registers, their
    block-RAM output registers, operand registers, product register: the registered multipliers,
    add). Nothing but routing lies between a register and the memories' address pins (the search's
    compare once drove the address of all d_h W tiles directly: mca's worst path), and the RAMs'
    clock-to-out stays out of the path into the d_h multipliers. ``clear`` zeroes ``acc`` (priority
    over an add). ``busy``: a sample in flight.
    """

    #: index to accumulator: address register, read register, operand register, product register, add
    LATENCY = 3 + RegisteredMultiplier.LATENCY

    def __init__(self, *, d_in: int, d_h: int, token_fmt: QFormat, ws_fmt: QFormat, acc_width: int) -> None:
        self._d_in, self._d_h, self._token_fmt, self._ws_fmt = d_in, d_h, token_fmt, ws_fmt
        row = ArrayLayout(shape_of(ws_fmt), d_h)
        k = max(1, (d_in - 1).bit_length())
        super().__init__({
            "x_w_en": In(1), "x_w_addr": In(range(d_in)), "x_w_data": In(shape_of(token_fmt)),
            "ws_w_en": In(1), "ws_w_addr": In(range(d_in)), "ws_w_data": In(row),
            "index": In(k), "valid": In(1), "clear": In(1),
            "acc": Out(ArrayLayout(signed(acc_width), d_h)), "busy": Out(1),
        })

    def elaborate(self, platform):
        m, d_in = Module(), self._d_in
        row = ArrayLayout(shape_of(self._ws_fmt), self._d_h)
        m.submodules.wsmem = wsmem = RegisteredReadMemory(width=row.size, depth=d_in)
        m.submodules.xmem = xmem = RegisteredReadMemory(width=shape_of(self._token_fmt).width, depth=d_in)
        # X and W are written while no sample is read (LOAD / TOKEN_X vs SAMPLE): no read-during-write
        for mem, en, addr, wdata in ((wsmem, self.ws_w_en, self.ws_w_addr, self.ws_w_data),
                                     (xmem, self.x_w_en, self.x_w_addr, self.x_w_data)):
            m.d.comb += [mem.w_en.eq(en), mem.w_addr.eq(addr), mem.w_data.eq(wdata),
                         mem.r_addr.eq(self.index), mem.r_en.eq(1), mem.r_data_en.eq(1)]
        ws_row = row(wsmem.r_data)
        x_word = xmem.r_data.as_signed() if shape_of(self._token_fmt).signed else xmem.r_data
        addr_v, rd_v, reg_v, prod_v = Signal(), Signal(), Signal(), Signal()
        m.d.sync += [addr_v.eq(self.valid), rd_v.eq(addr_v), reg_v.eq(rd_v), prod_v.eq(reg_v)]
        # the read data enter the multipliers' operand registers (the DSP's own on ECP5)
        prods = [registered_multiply(m, x_word, ws_row[c], platform=platform, name=f"smp{c}_")[0]
                 for c in range(self._d_h)]
        with m.If(self.clear):
            m.d.sync += self.acc.eq(0)
        with m.Elif(prod_v):
            m.d.sync += [self.acc[c].eq(self.acc[c] + p) for c, p in enumerate(prods)]
        m.d.comb += self.busy.eq(addr_v | rd_v | reg_v | prod_v)
        return m


class RowScaler(wiring.Component):
    """H̃ row of a token: ``acc / r`` (one :class:`hdl.arith.SharedReciprocalScaler` lookup of ``r``
    for the ``lanes`` multipliers) + bias with saturation, ``d_h/lanes`` beats on ``v``.

    ``start`` at an edge begins a row (``acc``, ``bias``, ``r`` held until ``done``); ``done`` is
    high with the handshake of the row's last beat. ``acc_overflow`` / ``h_overflow``: a lane's
    accumulator saturated to ``acc_fmt`` as it entered the divider / a beat's quotient or bias add
    saturated, in that cycle.
    """

    def __init__(self, *, d_h: int, lanes: int, acc_width: int, acc_fmt: QFormat, fmts: MCAFormats) -> None:
        self._d_h, self._L, self._C, self._acc_fmt, self._fmts = d_h, lanes, d_h // lanes, acc_fmt, fmts
        super().__init__({
            "acc": In(ArrayLayout(signed(acc_width), d_h)), "bias": In(ArrayLayout(shape_of(fmts.h_fmt), d_h)),
            "r": In(unsigned(fmts.count_fmt.width)), "start": In(1),
            "v": Out(stream.Signature(ArrayLayout(shape_of(fmts.h_fmt), lanes))),
            "done": Out(1), "acc_overflow": Out(1), "h_overflow": Out(1),
        })

    def elaborate(self, platform):
        f, L, C, m = self._fmts, self._L, self._C, Module()
        issue, dv_c, h_cnt, stall = Signal(), Signal(range(C)), Signal(range(C)), Signal()
        m.d.comb += stall.eq(self.v.valid & ~self.v.ready)
        m.submodules.recip = unit = SharedReciprocalScaler(spec=f.recip(), value_fmt=self._acc_fmt,
                                                           out_fmt=f.h_fmt, lanes=L)
        m.d.comb += [unit.den.eq(self.r), unit.valid_in.eq(issue), unit.en.eq(~stall),
                     self.v.valid.eq(unit.valid_out)]
        overs_acc, h_overs = [], []
        for lane in range(L):
            # chunk c of the row: lanes c·L .. c·L + L - 1 (balanced selects: timing)
            sel = chunk_select(self.acc, dv_c, lane=lane, lanes=L)
            b_sel = chunk_select(self.bias, h_cnt, lane=lane, lanes=L)
            val, ovf = saturate(sel, self._acc_fmt)
            value = Signal(shape_of(self._acc_fmt), name=f"div_value{lane}")
            m.d.comb += [value.eq(val), unit.value[lane].eq(value)]
            h, b_over = saturate(unit.result[lane] + b_sel, f.h_fmt)
            m.d.comb += self.v.payload[lane].eq(h)
            overs_acc.append(ovf)
            h_overs += [unit.overflow[lane], b_over]
        with m.If(self.start):
            m.d.sync += [issue.eq(1), dv_c.eq(0), h_cnt.eq(0)]
        with m.Elif(issue & ~stall):
            m.d.sync += dv_c.eq(dv_c + 1)
            with m.If(dv_c == C - 1):
                m.d.sync += [dv_c.eq(0), issue.eq(0)]
        took = self.v.valid & self.v.ready
        with m.If(took):
            m.d.sync += h_cnt.eq(Mux(h_cnt == C - 1, 0, h_cnt + 1))
        m.d.comb += [self.done.eq(took & (h_cnt == C - 1)),
                     self.h_overflow.eq(took & Cat(*h_overs).any()),
                     self.acc_overflow.eq(issue & ~stall & Cat(*overs_acc).any())]
        return m


class ABuffer(wiring.Component):
    """The A matrix of a head: written column by column in LOAD (``w_*``: row ``w_row`` of column
    ``w_col``), read row by row onto ``s`` (``n_rows`` rows of ``n_keys`` beats) after ``start``.
    ``done``: no read in flight (high before the first ``start`` and after the last beat)."""

    def __init__(self, *, n_max: int, m_max: int, a_shape: Shape) -> None:
        self._jb = max(1, (n_max - 1).bit_length())
        self._n_max, self._m_max = n_max, m_max
        super().__init__({
            "w_en": In(1), "w_col": In(self._jb), "w_row": In(range(m_max)), "w_data": In(a_shape),
            "n_keys": In(unsigned(n_max.bit_length())), "n_rows": In(unsigned(m_max.bit_length())),
            "start": In(1), "s": Out(stream.Signature(a_shape)), "done": Out(1),
        })

    def elaborate(self, platform):
        m, jb = Module(), self._jb
        m.submodules.amem = amem = Memory(shape=self.w_data.shape(), depth=self._m_max << jb, init=[])
        a_w, a_r = amem.write_port(), amem.read_port()
        issue, o_i, o_j, stall = Signal(), Signal(range(self._m_max + 1)), Signal(jb), Signal()
        m.d.comb += [a_w.en.eq(self.w_en), a_w.addr.eq(Cat(self.w_col, self.w_row)), a_w.data.eq(self.w_data),
                     stall.eq(self.s.valid & ~self.s.ready),
                     a_r.addr.eq(Cat(o_j, o_i)), a_r.en.eq(~stall), self.s.payload.eq(a_r.data),
                     self.done.eq(~issue & ~self.s.valid)]
        with m.If(~stall):
            m.d.sync += self.s.valid.eq(issue)
        with m.If(self.start):
            m.d.sync += [issue.eq(1), o_i.eq(0), o_j.eq(0)]
        with m.Elif(~stall & issue):
            with m.If(o_j == self.n_keys - 1):
                m.d.sync += [o_j.eq(0), o_i.eq(o_i + 1)]
                with m.If(o_i == self.n_rows - 1):
                    m.d.sync += issue.eq(0)
            with m.Else():
                m.d.sync += o_j.eq(o_j + 1)
        return m


class Mca(LaneSplit, CheckedComponent):
    """One MCA head (see the module docstring)."""

    LANE_DIM = "_d_h"
    #: column maximum -> r_j written (:class:`SampleCount`)
    R_LATENCY = SampleCount.LATENCY
    #: cycles per sample once the pipeline is full
    CYCLES_PER_SAMPLE = 1

    @classmethod
    def check_params(cls, *, d_in: int, d_h: int, n_max: int, m_max: int, lanes: int, cdf_bits: int,
                     ws_width: int, ws_frac: int, fmts: MCAFormats) -> None:
        _check_int("d_in", d_in, 1, 4095)
        _check_int("d_h", d_h, 1)
        _check_int("n_max", n_max, 1)
        _check_int("m_max", m_max, 1)
        _check_int("lanes", lanes, 1)
        _check_int("cdf_bits", cdf_bits, 1, 32)
        _check_int("ws_width", ws_width, 4, 40)
        _check_int("ws_frac", ws_frac, -32, 56)
        if d_h % lanes:
            raise ValueError(f"lanes={lanes} must divide d_h={d_h}")
        if not isinstance(fmts, MCAFormats):
            raise TypeError(f"fmts must be an MCAFormats, not {fmts!r}")
        if d_in > fmts.count_fmt.max_int:
            raise ValueError(f"d_in={d_in} exceeds count_fmt {fmts.count_fmt}")

    def __init__(self, *, d_in: int = 16, d_h: int = 4, n_max: int = 8, m_max: int = 8, lanes: int = 2,
                 cdf_bits: int = 16, ws_width: int = 18, ws_frac: int = 12,
                 fmts: MCAFormats = MCAFormats()) -> None:
        self._d_in, self._d_h, self._n_max, self._m_max, self._lanes = d_in, d_h, n_max, m_max, lanes
        self._cdf_bits, self._ws_width, self._ws_frac, self._fmts = cdf_bits, ws_width, ws_frac, fmts
        self._back_fmts = SoftmaxPVFormats(n_max, v_fmt=fmts.h_fmt, out_fmt=fmts.out_fmt, softmax=False,
                                           p_fmt=fmts.a_fmt)
        f = fmts
        super().__init__({
            "cdf": In(stream.Signature(unsigned(cdf_bits + 1))),
            "ws": In(stream.Signature(ArrayLayout(shape_of(self.ws_fmt), d_h))),
            "bias": In(stream.Signature(ArrayLayout(shape_of(f.h_fmt), d_h))),
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

    # -- parameters (``lanes``, ``chunks``: :class:`LaneSplit`) -----------------------------------
    fmts = ReadOnlyParam[MCAFormats]()
    d_in = ReadOnlyParam[int]()
    d_h = ReadOnlyParam[int]()
    cdf_bits = ReadOnlyParam[int]()

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
        """PRNG step to accumulation: u register, 2 per search step, X/W address and read registers,
        operand and product registers, add (:class:`CdfSearch`, :class:`SampleAccumulator`)."""
        return 1 + 2 * self.search_steps + SampleAccumulator.LATENCY

    @property
    def acc_width(self) -> int:
        """Accumulator bits: r_j <= d_in products, and at least the accumulator format (saturate()
        takes a value at least as wide as the format)."""
        return max(self._fmts.token_fmt.width + self._ws_width + self._d_in.bit_length(), self.acc_fmt.width)

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
                        "o: m rows of d_h/lanes beats",
        }

    # -- hardware --------------------------------------------------------------------------------
    def elaborate(self, platform):
        f = self._fmts
        d_in, d_h, n_max, m_max, L = self._d_in, self._d_h, self._n_max, self._m_max, self._lanes
        m = Module()
        m.submodules.back = back = SoftmaxPV(d=d_h, lanes=L, fmts=self._back_fmts)
        wiring.connect(m, wiring.flipped(self.o), back.o)
        self._probe_v = back.v  # H̃ rows into the back end (probed by the unit tests)
        m.submodules.rcount = rcount = SampleCount(d_in=d_in, n_max=n_max, fmts=f)
        m.submodules.search = search = CdfSearch(d_in=d_in, cdf_bits=self._cdf_bits)
        m.submodules.accum = accum = SampleAccumulator(d_in=d_in, d_h=d_h, token_fmt=f.token_fmt, ws_fmt=self.ws_fmt,
                                                       acc_width=self.acc_width)
        m.submodules.scaler = scaler = RowScaler(d_h=d_h, lanes=L, acc_width=self.acc_width, acc_fmt=self.acc_fmt,
                                                 fmts=f)
        m.submodules.abuf = abuf = ABuffer(n_max=n_max, m_max=m_max, a_shape=shape_of(f.a_fmt))
        wiring.connect(m, scaler.v, back.v)
        wiring.connect(m, abuf.s, back.s)
        m.submodules.rmem = rmem = Memory(shape=unsigned(f.count_fmt.width), depth=n_max, init=[])
        # synchronous read addressed by the token of the next cycle, so r_r.data == rmem[tok] in every
        # TOKEN_X cycle and r_cur loads from a register, not from the RAM's address-to-data path
        r_w, r_r = rmem.write_port(), rmem.read_port()
        bias = Signal(ArrayLayout(shape_of(f.h_fmt), d_h))

        n_keys, n_q = self.n_keys, self.n_queries
        cfg_ok = (n_keys >= 1) & (n_keys <= n_max) & (n_q >= 1) & (n_q <= m_max)
        c_cnt, w_cnt, b_done = Signal(range(d_in + 1)), Signal(range(d_in + 1)), Signal()
        a_i, a_j, cm = Signal(range(m_max)), Signal(range(n_max + 1)), Signal(shape_of(f.a_fmt))
        warm, state, nxt = Signal(range(PRNG_WARMUP + 1)), Signal(32), Signal(32)
        tok, xi = Signal(range(n_max + 1)), Signal(range(d_in))
        r_cur, k_cnt = Signal(unsigned(f.count_fmt.width)), Signal(unsigned(f.count_fmt.width))
        s_issue, a_take = Signal(), Signal()
        m.d.comb += [nxt.eq(xorshift32_next(state)),
                     search.u.eq(nxt[32 - self._cdf_bits:]), search.valid.eq(s_issue),
                     accum.index.eq(search.index), accum.valid.eq(search.index_valid),
                     scaler.acc.eq(accum.acc), scaler.bias.eq(bias), scaler.r.eq(r_cur),
                     rcount.inv_alpha.eq(self.inv_alpha), rcount.n_keys.eq(n_keys), rcount.col.eq(a_j),
                     r_w.en.eq(rcount.w_en), r_w.addr.eq(rcount.w_addr), r_w.data.eq(rcount.r),
                     abuf.n_keys.eq(n_keys), abuf.n_rows.eq(n_q)]

        with m.FSM(name="mca") as fsm:
            with m.State("LOAD"):
                m.d.sync += self.config_error.eq(~cfg_ok)
                with m.If(self.cdf.valid & self.cdf.ready):
                    m.d.sync += c_cnt.eq(c_cnt + 1)
                with m.If(self.ws.valid & self.ws.ready):
                    m.d.sync += w_cnt.eq(w_cnt + 1)
                with m.If(self.bias.valid & self.bias.ready):
                    m.d.sync += b_done.eq(1)
                with m.If(a_take):
                    new_cm = Mux((a_i == 0) | (self.a.payload > cm), self.a.payload, cm)  # column maximum
                    m.d.sync += cm.eq(new_cm)
                    with m.If((a_i == 0) & (a_j == 0)):
                        m.d.sync += [self.samples_total.eq(0), self.acc_overflow.eq(0), self.h_overflow.eq(0)]
                    with m.If(a_i == n_q - 1):
                        m.d.sync += [a_i.eq(0), a_j.eq(a_j + 1)]
                        m.d.comb += [rcount.go.eq(1), rcount.cm.eq(new_cm)]
                    with m.Else():
                        m.d.sync += a_i.eq(a_i + 1)
                with m.If(cfg_ok & (c_cnt == d_in) & (w_cnt == d_in) & b_done & (a_j == n_keys) & ~rcount.busy):
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
                        m.d.comb += accum.clear.eq(1)
                        m.next = "SAMPLE"

            with m.State("SAMPLE"):  # r_cur samples, one per cycle, then wait for the pipeline to drain
                with m.If(s_issue):
                    m.d.sync += [state.eq(nxt), k_cnt.eq(k_cnt + 1), self.samples_total.eq(self.samples_total + 1)]
                    with m.If(k_cnt == r_cur - 1):
                        m.d.sync += s_issue.eq(0)
                with m.Elif(~search.busy & ~accum.busy):
                    m.d.comb += scaler.start.eq(1)
                    m.next = "DIV"

            with m.State("DIV"):
                with m.If(scaler.done):
                    m.d.sync += tok.eq(tok + 1)
                    with m.If(tok == n_keys - 1):
                        m.d.comb += abuf.start.eq(1)
                        m.next = "OUT"
                    with m.Else():
                        m.next = "TOKEN_X"

            with m.State("OUT"):
                with m.If(abuf.done):
                    m.next = "LOAD"

        in_load, in_x = fsm.ongoing("LOAD"), fsm.ongoing("TOKEN_X")
        m.d.comb += [
            self.cdf.ready.eq(in_load & cfg_ok & (c_cnt < d_in)),
            self.ws.ready.eq(in_load & cfg_ok & (w_cnt < d_in)),
            self.bias.ready.eq(in_load & cfg_ok & ~b_done),
            self.a.ready.eq(in_load & cfg_ok & (a_j < n_keys)),
            a_take.eq(self.a.valid & self.a.ready),
            self.x.ready.eq(in_x),
            accum.x_w_en.eq(self.x.valid & in_x), accum.x_w_addr.eq(xi), accum.x_w_data.eq(self.x.payload),
            abuf.w_en.eq(a_take), abuf.w_col.eq(a_j), abuf.w_row.eq(a_i), abuf.w_data.eq(self.a.payload),
            # DIV only leaves to TOKEN_X with tok + 1: read that one a cycle ahead (no handshake in the address)
            r_r.addr.eq(Mux(fsm.ongoing("DIV"), tok + 1, tok)),
            back.n_keys.eq(n_keys), back.n_rows.eq(n_q),
            self.out_overflow.eq(back.overflow),
            self.idle.eq(in_load & (c_cnt == 0) & (w_cnt == 0) & ~b_done & (a_j == 0) & (a_i == 0) & back.idle),
        ]
        # The LOAD writes (CDF copies, W rows, bias) land one edge after their beat, through a register
        # stage (timing: the handshake decode drives a few flip-flops, not the enables of the 512-bit
        # bias register and of every CDF / W block RAM). Nothing reads them before WARM, which LOAD
        # can enter at that edge at the earliest (its exit tests the counters the beats advanced).
        bias_in, bias_take = Signal.like(bias, reset_less=True, name="bias_in"), Signal()
        m.d.sync += [
            search.w_en.eq(self.cdf.valid & self.cdf.ready), search.w_addr.eq(c_cnt),
            search.w_data.eq(self.cdf.payload),
            accum.ws_w_en.eq(self.ws.valid & self.ws.ready), accum.ws_w_addr.eq(w_cnt),
            accum.ws_w_data.eq(self.ws.payload),
            bias_take.eq(self.bias.valid & self.bias.ready), bias_in.eq(self.bias.payload),
        ]
        with m.If(bias_take):
            m.d.sync += bias.eq(bias_in)
        with m.If(scaler.h_overflow):
            m.d.sync += self.h_overflow.eq(1)
        with m.If(scaler.acc_overflow):
            m.d.sync += self.acc_overflow.eq(1)
        return m


# ---- registry ------------------------------------------------------------------------------------
from .registry import BlockSpec, Param, ParamError  # noqa: E402


def _validate(p: dict) -> None:
    if p["d_h"] % p["lanes"]:
        raise ParamError(f"parameter lanes={p['lanes']} out of range: expected a divisor of d_h={p['d_h']}")


def mca_formats(**_: object) -> MCAFormats:
    """The block's MCAFormats (the defaults; for testbenches and benchmarks)."""
    return MCAFormats()


def build_mca(*, d_in: int, d_h: int, n_max: int, m_max: int, lanes: int, cdf_bits: int, ws_width: int,
              ws_frac: int) -> Mca:
    return Mca(d_in=d_in, d_h=d_h, n_max=n_max, m_max=m_max, lanes=lanes, cdf_bits=cdf_bits, ws_width=ws_width,
               ws_frac=ws_frac)


BLOCKS = [
    BlockSpec(
        name="mca",
        description="MCA head: sample counts from A (eq. 9), xorshift32 inverse-CDF sampling of W/p, "
                    "1/r scaling, shared A·H̃ back end",
        params=(
            Param("d_in", 16, "token dimension (sampled rows of W_V)", min=1, max=4095),
            Param("d_h", 4, "head dimension (value width)", min=1, max=128),
            Param("n_max", 8, "maximum keys per head", min=1, max=1024),
            Param("m_max", 8, "maximum query rows per head (A buffer)", min=1, max=1024),
            Param("lanes", 2, "P·V multipliers / dividers and output values per beat (divides d_h)", min=1, max=64),
            Param("cdf_bits", 16, "CDF table resolution (bits of the uniform)", min=1, max=32),
            Param("ws_width", 18, "pre-scaled row width W/p (signed raw)", min=4, max=40),
            Param("ws_frac", 12, "pre-scaled row fractional bits (the table's ws_fmt.frac)", min=-32, max=56),
        ),
        build=build_mca,
        cocotb_module="sim.tb_mca",
        validate=_validate,
        fpga_params={"d_in": 384, "d_h": 32, "n_max": 128, "m_max": 128, "lanes": 8, "cdf_bits": 16,
                     "ws_width": 18, "ws_frac": 12},
    ),
]
