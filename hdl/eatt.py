"""E-ATT unit: binarized selection-sum projections, L1 scores, shared softmax·V back end
(DESIGN §6, seed 000 §3). Bit-exact with :func:`golden.eatt.eatt_fixed_raw`; formats in
:class:`golden.eatt.EattFormats`.

Two components:

* :class:`EattAlign` (block ``eatt_align``), the multiplier-free alignment datapath: binarize,
  select-accumulate, L1. Adders, comparators and multiplexers only (no ``$mul`` cell: tested).
* :class:`Eatt` (block ``eatt``), one head: ``EattAlign`` feeding the shared
  :class:`hdl.softmax_pv.SoftmaxPV` back end (softmax mode) through its score stream.

Protocol of ``eatt_align`` (every stream ``amaranth.lib.stream``):

1. LOAD_W: ``wq`` and ``wk`` each take ``d_in + 1`` rows of ``d_h`` raw weights (``weight_width``
   bits): rows 0..d_in-1 of W, then the bias row;
2. LOAD_K: ``xkv`` takes the ``n_keys`` key tokens, ``d_in`` raw values (``token_fmt``) per token,
   one value per beat: ``K[j] = b_K + Σ_{i: x[j][i] > τ} W_K[i]`` (one W row per cycle, exact);
3. ``n_queries`` times: ``xq`` takes one query token (``d_in`` beats, same selection-sum with
   W_Q), then the L1 pass emits the row's ``n_keys`` scores ``-‖Q − K_j‖₁`` on ``s`` in key order
   (one key per cycle: ``d_h`` subtract/abs units and an adder tree, stalled by ``s.ready``);
4. back to LOAD_W (the next head loads its weights again).

``eatt`` adds ``v`` (the head's V rows, ``d_h/lanes`` beats of ``lanes`` Q8.8 values per key, taken
while the alignment works) and ``o`` (output rows, ``d_h/lanes`` beats of ``lanes`` Q8.8 values),
with the scale registers ``scale_mant``/``scale_shift`` (:func:`golden.eatt.eatt_score_scale`,
:func:`golden.softmax_pv.encode_scale`). ``tau`` (raw, >= 0), ``n_keys`` (1..n_max) and
``n_queries`` are registers held stable by the host during a head; ``config_error`` is set while
``n_keys`` is out of range; ``overflow`` is the back end's sticky output saturation.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.data import ArrayLayout, StructLayout
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from golden.eatt import EattFormats
from golden.fixed import QFormat

from .arith import ReciprocalScaler
from .checked import CheckedComponent, ReadOnlyParam, check_int
from .fixed import shape_of
from .primitives import RegisteredReadMemory
from .softmax_pv import LaneSplit, SoftmaxPV, adder_tree, delay_line, tree_stages

__all__ = ["EattSelectSum", "EattL1", "EattAlign", "Eatt", "tree_stages", "build_eatt", "build_eatt_align",
           "eatt_formats"]


def _check_fmts(fmts: object) -> None:
    if not isinstance(fmts, EattFormats):
        raise TypeError(f"fmts must be an EattFormats, not {fmts!r}")


def _w_row(f: EattFormats) -> ArrayLayout:
    """One row of W_Q / W_K or a bias: ``d_h`` raw weights."""
    return ArrayLayout(signed(f.weight_width), f.d_h)


def _row_layout(f: EattFormats) -> StructLayout:
    """A selection-sum row leaving :class:`EattSelectSum`: the row, whether it is the query's, and
    the key index it belongs to (meaningful for key rows)."""
    return StructLayout({"acc": ArrayLayout(signed(f.acc_width), f.d_h), "q": 1, "j": range(f.n_max + 1)})


class _EattPart(CheckedComponent):
    """Base of the alignment's components: built from one :class:`EattFormats` ``fmts`` (checked
    before the object exists)."""

    _fmts: EattFormats

    fmts = ReadOnlyParam[EattFormats]()

    @classmethod
    def check_params(cls, *, fmts: EattFormats) -> None:
        _check_fmts(fmts)


class EattSelectSum(_EattPart):
    """The binarized selection-sum projection of E-ATT: ``row = b + Σ_{i: x[i] > τ} W[i]``.

    Holds W_Q, W_K (``d_in`` rows each, memories) and their bias rows (registers). While ``load``
    is high, ``wq`` and ``wk`` each take ``d_in`` W rows then the bias row; ``loaded`` says both are
    complete, ``empty`` that neither has started; ``restart`` (one cycle) empties them for the next
    head and resets the feature index.

    A token is ``d_in`` beats on ``x`` (never stalled: ``always_ready``), one raw value each, with
    ``q`` (a query token: W_Q and b_Q, else W_K and b_K) and ``j`` (the key index, carried to
    ``row``); the feature index is counted here and ``last`` says the next beat ends a token. The
    token's row leaves on ``row`` (valid-only) ``LATENCY`` cycles after its last beat was taken,
    exact (one W row added per beat).
    """

    #: beat registered with the W read address (1), W row in the read register (2), accumulate
    #: (3): a token's row is on ``row`` in the cycle after the edge that registered its last
    #: beat's W row, and is stored at the next edge
    LATENCY = 3

    def __init__(self, *, fmts: EattFormats) -> None:
        self._fmts = f = fmts
        super().__init__({
            "wq": In(stream.Signature(_w_row(f))),
            "wk": In(stream.Signature(_w_row(f))),
            "load": In(1),
            "restart": In(1),
            "loaded": Out(1),
            "empty": Out(1),
            "x": In(stream.Signature(StructLayout({"value": shape_of(f.token_fmt), "q": 1, "j": range(f.n_max + 1)}),
                                     always_ready=True)),
            "tau": In(unsigned(f.token_fmt.width - 1)),
            "last": Out(1),
            "row": Out(stream.Signature(_row_layout(f), always_ready=True)),
        })

    def elaborate(self, platform):
        f = self._fmts
        d_h, d_in = f.d_h, f.d_in
        m = Module()
        wrow, arow = _w_row(f), _row_layout(f)["acc"].shape
        # W_Q / W_K rows: read, then the output register (the block RAM's own on ECP5)
        m.submodules.wqmem = wqmem = RegisteredReadMemory(width=wrow.size, depth=d_in)
        m.submodules.wkmem = wkmem = RegisteredReadMemory(width=wrow.size, depth=d_in)
        bq, bk = Signal(wrow), Signal(wrow)

        # ---- loading: d_in W rows into the memory, then the bias row into its register
        wq_cnt = Signal(range(d_in + 2))
        wk_cnt = Signal(range(d_in + 2))
        # full: a flip-flop equal to ``cnt == d_in + 1`` (timing: loaded -> restart -> the W read
        # address starts from registers, not from the counters' compare)
        fulls = []
        # The W rows land one edge after their beat, through a register stage (timing: the ready →
        # counter → write-enable path no longer reaches the memories' pins). Nothing reads W before
        # ``loaded``, which the bias beat sets at the earliest on the edge that writes the last row.
        for name, port, cnt, mem, bias in (("wq", self.wq, wq_cnt, wqmem, bq), ("wk", self.wk, wk_cnt, wkmem, bk)):
            full = Signal(name=f"{name}_full")
            w_en, w_addr, w_data = (Signal(name=f"{name}_w_en"), Signal.like(mem.w_addr, name=f"{name}_w_addr"),
                                    Signal.like(mem.w_data, name=f"{name}_w_data"))
            m.d.comb += [port.ready.eq(self.load & ~full),
                         mem.w_en.eq(w_en), mem.w_addr.eq(w_addr), mem.w_data.eq(w_data)]
            m.d.sync += [w_en.eq(port.valid & port.ready & (cnt < d_in)), w_addr.eq(cnt), w_data.eq(port.payload)]
            with m.If(port.valid & port.ready):
                m.d.sync += cnt.eq(cnt + 1)
                with m.If(cnt == d_in):
                    m.d.sync += [bias.eq(port.payload), full.eq(1)]
            fulls.append(full)
        with m.If(self.restart):
            m.d.sync += [wq_cnt.eq(0), wk_cnt.eq(0)] + [full.eq(0) for full in fulls]
        m.d.comb += [self.loaded.eq(fulls[0] & fulls[1]),
                     self.empty.eq((wq_cnt == 0) & (wk_cnt == 0))]

        # ---- feature index, advanced by each taken beat
        take, x = self.x.valid, self.x.payload
        i_cnt = Signal(range(d_in))
        last_feat, first_feat = i_cnt == d_in - 1, i_cnt == 0
        m.d.comb += self.last.eq(last_feat)
        with m.If(take):
            m.d.sync += i_cnt.eq(Mux(last_feat, 0, i_cnt + 1))
        with m.Elif(self.restart):
            m.d.sync += i_cnt.eq(0)

        # ---- select-accumulate: stage 0 the beat (and i_cnt into the W memories' address
        # registers), stage 1 the W rows from their read registers, stage 2 add. Only routing lies
        # between the i_cnt register and the block RAMs' address pins: the next-index logic
        # (align state, take, wrap) once drove all the W tiles' address pins directly (eatt_align's
        # worst path), and the RAMs' clock-to-out stays out of the adders (output registers).
        # W is written only while nothing is taken (load, before ``loaded``): no read-during-write
        # that matters (the idle reads' words are never used).
        for mem in (wqmem, wkmem):
            m.d.comb += [mem.r_addr.eq(i_cnt), mem.r_en.eq(1), mem.r_data_en.eq(1)]
        sel0, first0, last0, q0, v0 = Signal(), Signal(), Signal(), Signal(), Signal()
        j0 = Signal(range(f.n_max + 1))
        m.d.sync += [sel0.eq(x.value > self.tau), first0.eq(first_feat), last0.eq(last_feat), q0.eq(x.q),
                     v0.eq(take), j0.eq(x.j)]
        # Plain bit vectors, not views: the ArrayLayout view emits per-element alias wires
        # ``wq1[c]`` beside the register ``wq1``, and yosys 0.70's ABC9 reintegration maps the
        # name "wq1[c]" of both (bit c of wq1, element c) and aborts on eatt (size assertion).
        wq1, wk1 = wqmem.r_data, wkmem.r_data
        sel1, first1, last1, q1, v1 = Signal(), Signal(), Signal(), Signal(), Signal()
        j1 = Signal(range(f.n_max + 1))
        m.d.sync += [sel1.eq(sel0), first1.eq(first0), last1.eq(last0), q1.eq(q0), v1.eq(v0), j1.eq(j0)]
        w_row = Mux(q1, wq1, wk1)  # raw bits of the selected W row
        acc = Signal(arow)  # the token's partial row
        new_acc = Signal(arow)
        for c in range(d_h):
            w_c = w_row[c * f.weight_width:(c + 1) * f.weight_width].as_signed()
            base = Mux(first1, Mux(q1, bq[c], bk[c]), acc[c])
            m.d.comb += new_acc[c].eq(base + Mux(sel1, w_c, 0))
        with m.If(v1):
            m.d.sync += acc.eq(new_acc)
        m.d.comb += [self.row.valid.eq(v1 & last1), self.row.payload.acc.eq(new_acc),
                     self.row.payload.q.eq(q1), self.row.payload.j.eq(j1)]
        return m


class EattL1(_EattPart):
    """The E-ATT score engine: the K buffer (``n_max`` rows), the query row and the L1 pass
    ``s = -‖q − K_j‖₁`` over keys ``j = 0 .. n_keys-1``, one key per cycle, stalled by ``s.ready``.

    A ``row`` beat (valid-only) stores a key row at its index ``j``, or becomes the query row when
    its ``q`` bit is set. ``start`` (one cycle, no pass running) issues the keys in order; a key's
    score reaches ``s`` :meth:`latency_of` ``(d_h)`` cycles after its issue (fewer transfers if
    ``s.ready`` stalls). ``drained``: no key being issued, in the pipeline or waiting on ``s``.
    ``d_h`` subtract/abs units and a 4-input adder tree; no multiplier.
    """

    #: cycles before the adder tree: K read (1), K register (2), |q − k| (3)
    FRONT_LATENCY = 3
    #: the score register after the tree
    OUT_LATENCY = 1

    def __init__(self, *, fmts: EattFormats) -> None:
        self._fmts = f = fmts
        super().__init__({
            "row": In(stream.Signature(_row_layout(f), always_ready=True)),
            "start": In(1),
            "n_keys": In(unsigned(f.n_max.bit_length())),
            "s": Out(stream.Signature(signed(f.score_width))),
            "drained": Out(1),
        })

    @classmethod
    def latency_of(cls, d_h: int) -> int:
        """Issue of a key to its score on ``s`` for head dimension ``d_h`` (no stall)."""
        return cls.FRONT_LATENCY + tree_stages(d_h) + cls.OUT_LATENCY

    @property
    def latency(self) -> int:
        return self.latency_of(self._fmts.d_h)

    def elaborate(self, platform):
        f = self._fmts
        m = Module()
        arow = _row_layout(f)["acc"].shape
        m.submodules.kmem = kmem = Memory(shape=arow, depth=f.n_max, init=[])
        k_w, k_r = kmem.write_port(), kmem.read_port()
        q_row = Signal(arow)
        row = self.row
        m.d.comb += [k_w.addr.eq(row.payload.j), k_w.data.eq(row.payload.acc)]
        with m.If(row.valid):
            with m.If(row.payload.q):
                m.d.sync += q_row.eq(row.payload.acc)
            with m.Else():
                m.d.comb += k_w.en.eq(1)

        # key issue (the whole pipeline holds while a score waits on s)
        stall, en = Signal(), Signal()
        m.d.comb += [stall.eq(self.s.valid & ~self.s.ready), en.eq(~stall)]
        l_issue = Signal()
        l_j = Signal(range(f.n_max))
        lv = delay_line(m, l_issue, self.latency - 1, "lv", en)
        with m.If(self.start):
            m.d.sync += [l_issue.eq(1), l_j.eq(0)]
        with m.Elif(en & l_issue):
            m.d.sync += l_j.eq(l_j + 1)
            with m.If(l_j == self.n_keys - 1):
                m.d.sync += l_issue.eq(0)
        m.d.comb += self.drained.eq(~l_issue & ~Cat(*lv[1:]).any() & ~self.s.valid)

        # K read, register, |q − k|, adder tree, score out
        m.d.comb += [k_r.addr.eq(l_j), k_r.en.eq(en)]
        k_d = Signal(arow)
        with m.If(en):
            m.d.sync += k_d.eq(k_r.data)
        absd = []
        for c in range(f.d_h):
            diff = q_row[c] - k_d[c]
            reg = Signal(unsigned(f.acc_width), name=f"absd{c}")
            with m.If(en):
                m.d.sync += reg.eq(Mux(diff < 0, -diff, diff))
            absd.append(reg)
        l1 = adder_tree(m, absd, "l1_tree", en)
        with m.If(en):
            m.d.sync += [self.s.valid.eq(lv[-1]), self.s.payload.eq(-l1)]
        return m


class EattAlign(_EattPart):
    """Multiplier-free E-ATT alignment (see the module docstring): the head's sequencer around an
    :class:`EattSelectSum` (``select``: W loading, Q and K rows) and an :class:`EattL1` (``l1``:
    K buffer, scores)."""

    #: token's last value accepted -> its row stored (see :class:`EattSelectSum`)
    SELECT_LATENCY = EattSelectSum.LATENCY

    def __init__(self, *, fmts: EattFormats) -> None:
        self._fmts = f = fmts
        super().__init__({
            "wq": In(stream.Signature(_w_row(f))),
            "wk": In(stream.Signature(_w_row(f))),
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
    def l1_latency(self) -> int:
        """Issue of key j to its score on ``s`` (:meth:`EattL1.latency_of`)."""
        return EattL1.latency_of(self._fmts.d_h)

    def elaborate(self, platform):
        f = self._fmts
        m = Module()
        m.submodules.select = sel = EattSelectSum(fmts=f)
        m.submodules.l1 = l1 = EattL1(fmts=f)
        wiring.connect(m, wiring.flipped(self.wq), sel.wq)
        wiring.connect(m, wiring.flipped(self.wk), sel.wk)
        wiring.connect(m, sel.row, l1.row)
        wiring.connect(m, l1.s, wiring.flipped(self.s))

        n_keys = self.n_keys
        keys_ok = (n_keys >= 1) & (n_keys <= f.n_max)
        j_cnt = Signal(range(f.n_max + 1))   # key token index
        row_cnt = Signal(16)
        take = Signal()
        row_done = sel.row.valid  # a token's row is stored at the next edge

        with m.FSM(name="align") as fsm:
            with m.State("LOAD_W"):
                m.d.sync += self.config_error.eq(~keys_ok)
                with m.If(keys_ok & sel.loaded):
                    m.d.comb += sel.restart.eq(1)
                    m.d.sync += [j_cnt.eq(0), row_cnt.eq(0)]
                    m.next = "LOAD_K"

            with m.State("LOAD_K"):
                with m.If(take & sel.last):
                    m.d.sync += j_cnt.eq(j_cnt + 1)
                with m.If(row_done & (sel.row.payload.j == n_keys - 1)):
                    with m.If(self.n_queries == 0):
                        m.next = "LOAD_W"
                    with m.Else():
                        m.next = "ROW_Q"

            with m.State("ROW_Q"):
                with m.If(take & sel.last):
                    m.next = "WAIT_Q"

            with m.State("WAIT_Q"):
                with m.If(row_done):
                    m.d.comb += l1.start.eq(1)
                    m.next = "L1"

            with m.State("L1"):
                with m.If(l1.drained):
                    m.d.sync += row_cnt.eq(row_cnt + 1)
                    with m.If(row_cnt + 1 == self.n_queries):
                        m.next = "LOAD_W"
                    with m.Else():
                        m.next = "ROW_Q"

        in_w, in_k, in_q = fsm.ongoing("LOAD_W"), fsm.ongoing("LOAD_K"), fsm.ongoing("ROW_Q")
        # xkv.ready is a flip-flop holding the next value of "LOAD_K and j_cnt < n_keys" (timing: the
        # key compare's carry chain stays out of take -> W read address); keys_ok only closes the port
        # if the host breaks n_keys mid-head (n_keys is held during a head).
        rdy_k = Signal()
        leave_k = row_done & (sel.row.payload.j == n_keys - 1)
        j_next_lt = Mux(take & sel.last, j_cnt + 1 < n_keys, j_cnt < n_keys)
        m.d.sync += rdy_k.eq(Mux(in_w, keys_ok & sel.loaded, in_k & ~leave_k & j_next_lt))
        m.d.comb += [
            sel.load.eq(in_w),
            self.xkv.ready.eq(rdy_k & keys_ok),
            self.xq.ready.eq(in_q),
            take.eq((self.xkv.valid & self.xkv.ready) | (self.xq.valid & self.xq.ready)),
            sel.x.valid.eq(take),
            sel.x.payload.value.eq(Mux(in_q, self.xq.payload, self.xkv.payload)),
            sel.x.payload.q.eq(in_q),
            sel.x.payload.j.eq(j_cnt),
            sel.tau.eq(self.tau),
            l1.n_keys.eq(n_keys),
            self.idle.eq(in_w & sel.empty),
        ]
        return m


class Eatt(LaneSplit, CheckedComponent):
    """One E-ATT head: :class:`EattAlign` and the shared :class:`SoftmaxPV` back end."""

    LANE_DIM = "_fmts.d_h"
    fmts = ReadOnlyParam[EattFormats]()

    def __init__(self, *, d_in: int = 16, d_h: int = 8, n_max: int = 8, lanes: int = 2, weight_width: int = 12,
                 token_fmt: QFormat = QFormat(13, 7), v_fmt: QFormat = QFormat(16, 8),
                 out_fmt: QFormat = QFormat(16, 8)) -> None:
        self._fmts = EattFormats(d_in=d_in, d_h=d_h, n_max=n_max, token_fmt=token_fmt, weight_width=weight_width,
                                 v_fmt=v_fmt, out_fmt=out_fmt)
        self._lanes = lanes
        f = self._fmts
        bf = f.backend
        super().__init__({
            "wq": In(stream.Signature(_w_row(f))),
            "wk": In(stream.Signature(_w_row(f))),
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

    @classmethod
    def check_params(cls, *, d_in: int, d_h: int, n_max: int, lanes: int, weight_width: int, token_fmt: QFormat,
                     v_fmt: QFormat, out_fmt: QFormat) -> None:
        for name, value in (("d_in", d_in), ("d_h", d_h), ("n_max", n_max), ("lanes", lanes)):
            check_int(name, value, 1)
        check_int("weight_width", weight_width, 2)
        if d_h % lanes:
            raise ValueError(f"lanes={lanes} must divide d_h={d_h}")
        for name, fmt in (("token_fmt", token_fmt), ("v_fmt", v_fmt), ("out_fmt", out_fmt)):
            if not isinstance(fmt, QFormat):
                raise TypeError(f"{name} must be a QFormat, not {fmt!r}")
        # the formats' own checks (token_fmt signed, weight_width bound), before the object exists
        EattFormats(d_in=d_in, d_h=d_h, n_max=n_max, token_fmt=token_fmt, weight_width=weight_width,
                    v_fmt=v_fmt, out_fmt=out_fmt)

    @property
    def formats(self) -> dict[str, QFormat]:
        return self._fmts.formats()

    @property
    def latency(self) -> dict[str, int]:
        return {"select": EattAlign.SELECT_LATENCY, "l1": EattL1.latency_of(self._fmts.d_h),
                "exp": SoftmaxPV.EXP_LATENCY, "pv": SoftmaxPV.PV_LATENCY, "norm": ReciprocalScaler.LATENCY}

    def manifest_extra(self) -> dict:
        f = self._fmts
        return {
            "lanes": self._lanes, "chunks": self.chunks, "acc_width": f.acc_width, "score_width": f.score_width,
            "exp": f.backend.exp_spec.as_dict(), "recip": f.backend.recip_spec.as_dict(),
            "protocol": "wq, wk: d_in+1 rows (W then bias); xkv: n·d_in values; v: n·d_h/lanes beats; "
                        "per query: xq d_in values -> o d_h/lanes beats",
            "cycles_per_head": "load max(d_in+1, n·d_in + 2); per row: d_in + 2 + n + l1 latency, then the back "
                               "end (n + exp + n·d_h/lanes + d_h/lanes + fill), overlapping the next row's xq",
        }

    def elaborate(self, platform):
        f = self._fmts
        m = Module()
        m.submodules.align = align = EattAlign(fmts=f)
        m.submodules.back = back = SoftmaxPV(d=f.d_h, lanes=self._lanes, fmts=f.backend)
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
    if "lanes" in p and p["d_h"] % p["lanes"]:
        raise ParamError(f"parameter lanes={p['lanes']} out of range: expected a divisor of d_h={p['d_h']}")


def eatt_formats(*, d_in: int, d_h: int, n_max: int, weight_width: int, **_: object) -> EattFormats:
    """The block's formats from its registry parameters (testbenches, benchmarks)."""
    return EattFormats(d_in=d_in, d_h=d_h, n_max=n_max, weight_width=weight_width)


def build_eatt(*, d_in: int, d_h: int, n_max: int, lanes: int, weight_width: int) -> Eatt:
    return Eatt(d_in=d_in, d_h=d_h, n_max=n_max, lanes=lanes, weight_width=weight_width)


def build_eatt_align(*, d_in: int, d_h: int, n_max: int, weight_width: int) -> EattAlign:
    return EattAlign(fmts=eatt_formats(d_in=d_in, d_h=d_h, n_max=n_max, weight_width=weight_width))


_COMMON = (
    Param("d_in", 16, "token dimension (features binarized per token)", min=1, max=1024),
    Param("d_h", 8, "head dimension (Q/K/V width)", min=1, max=128),
    Param("n_max", 8, "maximum keys per head (K and V buffer depth)", min=1, max=1024),
    Param("weight_width", 12, "W_Q / W_K / bias width (signed raw)", min=2, max=24),
)

BLOCKS = [
    BlockSpec(
        name="eatt",
        description="E-ATT head: binarized selection-sum Q/K, L1 scores, shared softmax·V back end",
        params=_COMMON + (Param("lanes", 2, "P·V multipliers, output values per beat (divides d_h)", min=1, max=64),),
        build=build_eatt,
        cocotb_module="sim.tb_eatt",
        validate=_validate,
        fpga_params={"d_in": 384, "d_h": 32, "n_max": 128, "lanes": 8, "weight_width": 12},
    ),
    BlockSpec(
        name="eatt_align",
        description="E-ATT alignment datapath: binarize, select-accumulate, L1 (adders only, no multiplier)",
        params=_COMMON,
        build=build_eatt_align,
        fpga_params={"d_in": 384, "d_h": 32, "n_max": 128, "weight_width": 12},
    ),
]
