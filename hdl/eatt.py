"""E-ATT unit: binarized selection-sum projections, L1 scores, shared softmax·V back end
(DESIGN §6, seed 000 §3). Bit-exact with :func:`golden.eatt.eatt_fixed_raw`; formats in
:class:`golden.eatt.EattFormats`.

Two components:

* :class:`EattAlign` (block ``eatt_align``), the multiplier-free alignment datapath: binarize,
  select-accumulate, L1. Adders, comparators and multiplexers only (no ``$mul`` cell: tested).
* :class:`Eatt` (block ``eatt``), one head: ``EattAlign`` feeding the shared
  :class:`hdl.softmax_pv.SoftmaxPV` back end (softmax mode) through its score stream.

Protocol of ``eatt_align`` (every stream ``amaranth.lib.stream``):

1. LOAD_W: ``wq`` and ``wk`` each take ``d_in + 1`` rows of ``d`` raw weights (``weight_width``
   bits): rows 0..d_in-1 of W, then the bias row;
2. LOAD_K: ``xkv`` takes the ``n_keys`` key tokens, ``d_in`` raw values (``token_fmt``) per token,
   one value per beat: ``K[j] = b_K + Σ_{i: x[j][i] > τ} W_K[i]`` (one W row per cycle, exact);
3. ``n_queries`` times: ``xq`` takes one query token (``d_in`` beats, same selection-sum with
   W_Q), then the L1 pass emits the row's ``n_keys`` scores ``-‖Q − K_j‖₁`` on ``s`` in key order
   (one key per cycle: ``d`` subtract/abs units and an adder tree, stalled by ``s.ready``);
4. back to LOAD_W (the next head loads its weights again).

``eatt`` adds ``v`` (the head's V rows, ``d/lanes`` beats of ``lanes`` Q8.8 values per key, taken
while the alignment works) and ``o`` (output rows, ``d/lanes`` beats of ``lanes`` Q8.8 values),
with the scale registers ``scale_mant``/``scale_shift`` (:func:`golden.eatt.eatt_score_scale`,
:func:`golden.softmax_pv.encode_scale`). ``tau`` (raw, >= 0), ``n_keys`` (1..n_max) and
``n_queries`` are registers held stable by the host during a head; ``config_error`` is set while
``n_keys`` is out of range; ``overflow`` is the back end's sticky output saturation.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.data import ArrayLayout
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from golden.eatt import EattFormats
from golden.fixed import QFormat

from .arith import ReciprocalScaler
from .fixed import shape_of
from .softmax_pv import SoftmaxPV, delay_line

__all__ = ["EattAlign", "Eatt", "tree_stages", "build_eatt", "build_eatt_align", "eatt_formats"]


def tree_stages(count: int) -> int:
    """Register stages of a 4-input adder tree over ``count`` values (>= 1)."""
    stages = 1
    while count > 4:
        count = -(-count // 4)
        stages += 1
    return stages


def _adder_tree(m: Module, values: list[Value], name: str, en: Value) -> Signal:
    level = 0
    while True:
        regs = []
        for gi in range(0, len(values), 4):
            group = values[gi:gi + 4]
            expr = group[0]
            for item in group[1:]:
                expr = expr + item
            reg = Signal(Value.cast(expr).shape(), name=f"{name}_l{level}_{gi // 4}")
            with m.If(en):
                m.d.sync += reg.eq(expr)
            regs.append(reg)
        values = regs
        level += 1
        if len(values) == 1:
            return values[0]


def _check_int(name: str, value: object, lo: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an integer, not {value!r}")
    if value < lo:
        raise ValueError(f"{name} must be >= {lo}, not {value}")


class EattAlign(wiring.Component):
    """Multiplier-free E-ATT alignment (see the module docstring)."""

    #: select-accumulate: W row read (1), accumulate (2): a token's row is ready 2 cycles after
    #: its last value was accepted
    SELECT_LATENCY = 2

    def __init__(self, *, fmts: EattFormats) -> None:
        if not isinstance(fmts, EattFormats):
            self._MustUse__used = True
            raise TypeError(f"fmts must be an EattFormats, not {fmts!r}")
        self._fmts = f = fmts
        wrow = ArrayLayout(signed(f.weight_width), f.d)
        super().__init__({
            "wq": In(stream.Signature(wrow)),
            "wk": In(stream.Signature(wrow)),
            "xkv": In(stream.Signature(shape_of(f.token_fmt))),
            "xq": In(stream.Signature(shape_of(f.token_fmt))),
            "s": Out(stream.Signature(signed(f.score_width))),
            "tau": In(unsigned(f.token_fmt.width - 1)),
            "n_keys": In(unsigned(f.n_max.bit_length())),
            "n_queries": In(unsigned(16)),
            "config_error": Out(1),
            "idle": Out(1),
        })

    @property
    def fmts(self) -> EattFormats:
        return self._fmts

    @property
    def l1_latency(self) -> int:
        """Issue of key j to its score on ``s``: K read (1), register (2), |q − k| (3), tree, output."""
        return 3 + tree_stages(self._fmts.d) + 1

    def elaborate(self, platform):
        f = self._fmts
        d, d_in, n_max = f.d, f.d_in, f.n_max
        m = Module()
        aw = f.acc_width
        wrow = ArrayLayout(signed(f.weight_width), d)
        arow = ArrayLayout(signed(aw), d)
        m.submodules.wqmem = wqmem = Memory(shape=wrow, depth=d_in, init=[])
        m.submodules.wkmem = wkmem = Memory(shape=wrow, depth=d_in, init=[])
        m.submodules.kmem = kmem = Memory(shape=arow, depth=n_max, init=[])
        wq_w, wk_w, wq_r, wk_r = wqmem.write_port(), wkmem.write_port(), wqmem.read_port(), wkmem.read_port()
        k_w, k_r = kmem.write_port(), kmem.read_port()
        bq, bk = Signal(wrow), Signal(wrow)

        n_keys = self.n_keys
        keys_ok = (n_keys >= 1) & (n_keys <= n_max)
        wq_cnt = Signal(range(d_in + 2))
        wk_cnt = Signal(range(d_in + 2))
        i_cnt = Signal(range(d_in))        # feature index within a token
        i_next = Signal(range(d_in))       # i_cnt after this clock edge (the W read address)
        j_cnt = Signal(range(n_max + 1))   # key token index
        row_cnt = Signal(16)
        acc = Signal(arow)                 # selection-sum row (K row or the Q row)
        q_row = Signal(arow)

        # L1 pass (pipeline stalled by s.ready)
        stall = Signal()
        en = Signal()
        m.d.comb += [stall.eq(self.s.valid & ~self.s.ready), en.eq(~stall)]
        l_issue = Signal()
        l_j = Signal(range(n_max))
        lat = self.l1_latency
        lv = delay_line(m, l_issue, lat - 1, "lv", en)

        # select-accumulate pipeline (the token streams are never stalled from behind)
        take = Signal()
        last_feat = Signal()
        first_feat = Signal()
        is_q = Signal()
        sel1, first1, last1, q1, v1 = Signal(), Signal(), Signal(), Signal(), Signal()
        j1 = Signal(range(n_max + 1))
        sel_done = Signal()   # the last token's row was written this cycle

        # i_cnt only moves through i_next (assigned in the FSM below), so the W memories can be
        # read at i_next: their outputs then always hold row i_cnt and land in fabric registers on
        # the cycle a value is taken (see the select-accumulate below).
        m.d.comb += i_next.eq(i_cnt)
        m.d.sync += i_cnt.eq(i_next)
        with m.FSM(name="align") as fsm:
            with m.State("LOAD_W"):
                m.d.sync += self.config_error.eq(~keys_ok)
                with m.If(self.wq.valid & self.wq.ready):
                    m.d.sync += wq_cnt.eq(wq_cnt + 1)
                    with m.If(wq_cnt == d_in):
                        m.d.sync += bq.eq(self.wq.payload)
                with m.If(self.wk.valid & self.wk.ready):
                    m.d.sync += wk_cnt.eq(wk_cnt + 1)
                    with m.If(wk_cnt == d_in):
                        m.d.sync += bk.eq(self.wk.payload)
                with m.If(keys_ok & (wq_cnt == d_in + 1) & (wk_cnt == d_in + 1)):
                    m.d.sync += [wq_cnt.eq(0), wk_cnt.eq(0), j_cnt.eq(0), row_cnt.eq(0)]
                    m.d.comb += i_next.eq(0)
                    m.next = "LOAD_K"

            with m.State("LOAD_K"):
                with m.If(take):
                    m.d.comb += i_next.eq(Mux(last_feat, 0, i_cnt + 1))
                    with m.If(last_feat):
                        m.d.sync += j_cnt.eq(j_cnt + 1)
                with m.If(sel_done & (j1 == n_keys - 1)):
                    with m.If(self.n_queries == 0):
                        m.next = "LOAD_W"
                    with m.Else():
                        m.next = "ROW_Q"

            with m.State("ROW_Q"):
                with m.If(take):
                    m.d.comb += i_next.eq(Mux(last_feat, 0, i_cnt + 1))
                    with m.If(last_feat):
                        m.next = "WAIT_Q"

            with m.State("WAIT_Q"):
                with m.If(sel_done):
                    m.d.sync += [l_issue.eq(1), l_j.eq(0)]
                    m.next = "L1"

            with m.State("L1"):
                with m.If(en):
                    with m.If(l_issue):
                        m.d.sync += l_j.eq(l_j + 1)
                        with m.If(l_j == n_keys - 1):
                            m.d.sync += l_issue.eq(0)
                    with m.Elif(~Cat(*lv[1:]).any() & ~self.s.valid):
                        m.d.sync += row_cnt.eq(row_cnt + 1)
                        with m.If(row_cnt + 1 == self.n_queries):
                            m.next = "LOAD_W"
                        with m.Else():
                            m.next = "ROW_Q"

        in_w, in_k, in_q = fsm.ongoing("LOAD_W"), fsm.ongoing("LOAD_K"), fsm.ongoing("ROW_Q")
        m.d.comb += [
            self.wq.ready.eq(in_w & (wq_cnt <= d_in)),
            self.wk.ready.eq(in_w & (wk_cnt <= d_in)),
            wq_w.en.eq(self.wq.valid & self.wq.ready & (wq_cnt < d_in)),
            wk_w.en.eq(self.wk.valid & self.wk.ready & (wk_cnt < d_in)),
            wq_w.addr.eq(wq_cnt), wk_w.addr.eq(wk_cnt),
            wq_w.data.eq(self.wq.payload), wk_w.data.eq(self.wk.payload),
            self.xkv.ready.eq(in_k & (j_cnt < n_keys)),
            self.xq.ready.eq(in_q),
            take.eq((self.xkv.valid & self.xkv.ready) | (self.xq.valid & self.xq.ready)),
            last_feat.eq(i_cnt == d_in - 1),
            first_feat.eq(i_cnt == 0),
            is_q.eq(in_q),
            self.idle.eq(in_w & (wq_cnt == 0) & (wk_cnt == 0)),
        ]

        # ---- select-accumulate: stage 0 accept + W row registered, stage 1 add --------------------
        # The W memories are read one cycle ahead (address i_next), so in stage 0 their outputs
        # already hold row i_cnt: a block-RAM read has most of an ECP5 cycle as clock-to-out
        # (~5.8 ns, no DP16KD output register through yosys), so it goes straight into fabric
        # registers (both rows: a W_Q/W_K multiplexer before them would sit on that path) and the
        # adders of stage 1 start from flip-flops. Same cycle as the synchronous read at i_cnt.
        x_in = Mux(in_q, self.xq.payload, self.xkv.payload)
        m.d.comb += [wq_r.addr.eq(i_next), wk_r.addr.eq(i_next)]
        # Plain bit vectors, not ``Signal(wrow)``: the ArrayLayout view emits per-element alias wires
        # ``wq1[c]`` beside the register ``wq1``, and yosys 0.70's ABC9 reintegration maps the
        # name "wq1[c]" of both (bit c of wq1, element c) and aborts on eatt (size assertion).
        wq1, wk1 = Signal(wrow.size, name="wq1"), Signal(wrow.size, name="wk1")
        m.d.sync += [sel1.eq(x_in > self.tau), first1.eq(first_feat), last1.eq(last_feat), q1.eq(is_q),
                     v1.eq(take), j1.eq(j_cnt), wq1.eq(wq_r.data), wk1.eq(wk_r.data)]
        w_row = Mux(q1, wq1, wk1)  # raw bits of the selected W row
        new_acc = Signal(arow)
        for c in range(d):
            w_c = w_row[c * f.weight_width:(c + 1) * f.weight_width].as_signed()
            base = Mux(first1, Mux(q1, bq[c], bk[c]), acc[c])
            m.d.comb += new_acc[c].eq(base + Mux(sel1, w_c, 0))
        m.d.comb += sel_done.eq(0)
        with m.If(v1):
            m.d.sync += acc.eq(new_acc)
            with m.If(last1):
                m.d.comb += sel_done.eq(1)
                with m.If(q1):
                    m.d.sync += q_row.eq(new_acc)
                with m.Else():
                    m.d.comb += [k_w.en.eq(1), k_w.addr.eq(j1), k_w.data.eq(new_acc)]

        # ---- L1 pass: K read, register, |q − k|, adder tree, score out ----------------------------
        m.d.comb += [k_r.addr.eq(l_j), k_r.en.eq(en)]
        k_d = Signal(arow)
        with m.If(en):
            m.d.sync += k_d.eq(k_r.data)
        absd = []
        for c in range(d):
            diff = q_row[c] - k_d[c]
            reg = Signal(unsigned(aw), name=f"absd{c}")
            with m.If(en):
                m.d.sync += reg.eq(Mux(diff < 0, -diff, diff))
            absd.append(reg)
        l1 = _adder_tree(m, absd, "l1_tree", en)
        with m.If(en):
            m.d.sync += [self.s.valid.eq(lv[-1]), self.s.payload.eq(-l1)]
        return m


class Eatt(wiring.Component):
    """One E-ATT head: :class:`EattAlign` and the shared :class:`SoftmaxPV` back end."""

    def __init__(self, *, d_in: int = 16, d: int = 8, n_max: int = 8, lanes: int = 2, weight_width: int = 12,
                 token_fmt: QFormat = QFormat(13, 7), v_fmt: QFormat = QFormat(16, 8),
                 out_fmt: QFormat = QFormat(16, 8)) -> None:
        try:
            for name, value in (("d_in", d_in), ("d", d), ("n_max", n_max), ("lanes", lanes)):
                _check_int(name, value, 1)
            _check_int("weight_width", weight_width, 2)
            if d % lanes:
                raise ValueError(f"lanes={lanes} must divide d={d}")
            for name, fmt in (("token_fmt", token_fmt), ("v_fmt", v_fmt), ("out_fmt", out_fmt)):
                if not isinstance(fmt, QFormat):
                    raise TypeError(f"{name} must be a QFormat, not {fmt!r}")
            self._fmts = EattFormats(d_in=d_in, d=d, n_max=n_max, token_fmt=token_fmt, weight_width=weight_width,
                                     v_fmt=v_fmt, out_fmt=out_fmt)
        except (TypeError, ValueError):
            self._MustUse__used = True
            raise
        self._lanes = lanes
        f = self._fmts
        bf = f.backend
        wrow = ArrayLayout(signed(f.weight_width), d)
        super().__init__({
            "wq": In(stream.Signature(wrow)),
            "wk": In(stream.Signature(wrow)),
            "xkv": In(stream.Signature(shape_of(f.token_fmt))),
            "xq": In(stream.Signature(shape_of(f.token_fmt))),
            "v": In(stream.Signature(ArrayLayout(shape_of(bf.v_fmt), lanes))),
            "o": Out(stream.Signature(ArrayLayout(shape_of(bf.out_fmt), lanes))),
            "tau": In(unsigned(f.token_fmt.width - 1)),
            "n_keys": In(unsigned(n_max.bit_length())),
            "n_queries": In(unsigned(16)),
            "scale_mant": In(unsigned(bf.scale_mant_bits)),
            "scale_shift": In(unsigned(bf.scale_shift_bits)),
            "overflow": Out(1),
            "config_error": Out(1),
            "idle": Out(1),
        })

    @property
    def fmts(self) -> EattFormats:
        return self._fmts

    @property
    def lanes(self) -> int:
        return self._lanes

    @property
    def chunks(self) -> int:
        return self._fmts.d // self._lanes

    @property
    def formats(self) -> dict[str, QFormat]:
        return self._fmts.formats()

    @property
    def latency(self) -> dict[str, int]:
        return {"select": EattAlign.SELECT_LATENCY, "l1": 3 + tree_stages(self._fmts.d) + 1,
                "exp": SoftmaxPV.EXP_LATENCY, "pv": SoftmaxPV.PV_LATENCY, "norm": ReciprocalScaler.LATENCY}

    def manifest_extra(self) -> dict:
        f = self._fmts
        return {
            "lanes": self._lanes, "chunks": self.chunks, "acc_width": f.acc_width, "score_width": f.score_width,
            "exp": f.backend.exp_spec.as_dict(), "recip": f.backend.recip_spec.as_dict(),
            "protocol": "wq, wk: d_in+1 rows (W then bias); xkv: n·d_in values; v: n·d/lanes beats; "
                        "per query: xq d_in values -> o d/lanes beats",
            "cycles_per_head": "load max(d_in+1, n·d_in + 2); per row: d_in + 2 + n + l1 latency, then the back "
                               "end (n + exp + n·d/lanes + d/lanes + fill), overlapping the next row's xq",
        }

    def elaborate(self, platform):
        f = self._fmts
        m = Module()
        m.submodules.align = align = EattAlign(fmts=f)
        m.submodules.back = back = SoftmaxPV(d=f.d, lanes=self._lanes, fmts=f.backend)
        for name in ("wq", "wk", "xkv", "xq"):
            wiring.connect(m, wiring.flipped(getattr(self, name)), getattr(align, name))
        wiring.connect(m, wiring.flipped(self.v), back.v)
        wiring.connect(m, wiring.flipped(self.o), back.o)
        wiring.connect(m, align.s, back.s)
        m.d.comb += [
            align.tau.eq(self.tau), align.n_keys.eq(self.n_keys), align.n_queries.eq(self.n_queries),
            back.n_keys.eq(self.n_keys), back.n_rows.eq(self.n_queries),
            back.scale_mant.eq(self.scale_mant), back.scale_shift.eq(self.scale_shift),
            self.overflow.eq(back.overflow), self.config_error.eq(align.config_error | back.config_error),
            self.idle.eq(align.idle & back.idle),
        ]
        return m


# ---- registry ------------------------------------------------------------------------------------
from .registry import BlockSpec, Param, ParamError  # noqa: E402


def _validate(p: dict) -> None:
    if "lanes" in p and p["d"] % p["lanes"]:
        raise ParamError(f"parameter lanes={p['lanes']} out of range: expected a divisor of d={p['d']}")


def eatt_formats(*, d_in: int, d: int, n_max: int, weight_width: int, **_: object) -> EattFormats:
    """The block's formats from its registry parameters (testbenches, benchmarks)."""
    return EattFormats(d_in=d_in, d=d, n_max=n_max, weight_width=weight_width)


def build_eatt(*, d_in: int, d: int, n_max: int, lanes: int, weight_width: int) -> Eatt:
    return Eatt(d_in=d_in, d=d, n_max=n_max, lanes=lanes, weight_width=weight_width)


def build_eatt_align(*, d_in: int, d: int, n_max: int, weight_width: int) -> EattAlign:
    return EattAlign(fmts=eatt_formats(d_in=d_in, d=d, n_max=n_max, weight_width=weight_width))


_COMMON = (
    Param("d_in", 16, "token dimension (features binarized per token)", min=1, max=1024),
    Param("d", 8, "head dimension (Q/K/V width)", min=1, max=128),
    Param("n_max", 8, "maximum keys per head (K and V buffer depth)", min=1, max=1024),
    Param("weight_width", 12, "W_Q / W_K / bias width (signed raw)", min=2, max=24),
)

BLOCKS = [
    BlockSpec(
        name="eatt",
        description="E-ATT head: binarized selection-sum Q/K, L1 scores, shared softmax·V back end",
        params=_COMMON + (Param("lanes", 2, "P·V multipliers and output values per beat (divides d)", min=1, max=64),),
        build=build_eatt,
        cocotb_module="sim.tb_eatt",
        validate=_validate,
        fpga_params={"d_in": 384, "d": 32, "n_max": 128, "lanes": 8, "weight_width": 12},
    ),
    BlockSpec(
        name="eatt_align",
        description="E-ATT alignment datapath: binarize, select-accumulate, L1 (adders only, no multiplier)",
        params=_COMMON,
        build=build_eatt_align,
        fpga_params={"d_in": 384, "d": 32, "n_max": 128, "weight_width": 12},
    ),
]
