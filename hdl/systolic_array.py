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
  per-column overflow flags and the beat's phase/first/last, ``RES_LATENCY`` = b + d + 6 cycles
  after the beat's transfer.
* ``out`` (source, ``valid``/``payload`` without ``ready``): per output phase, d beats (rows d-1,
  d-2, ..., 0) of b normalized outputs with overflow and div-by-zero flags; row d-1 appears ``OUT_LATENCY`` cycles
  after the transfer of the phase's last beat (``OUT_LATENCY`` = b + d + 3 + the reciprocal
  scaler's latency).
* ``overflow`` (sticky: any flagged result or residual), ``residual_overflow`` (sticky),
  ``protocol_error`` (sticky: a shortcut phase was interrupted by a bubble).

Timing: a beat transferred in cycle t sits in the input register (residual subtractors) at t+1,
reaches PE (i, j) at t+2+i+j (row skew j at the left edge, column skew i at the bottom), its partial
sum leaves the top of column i at t+i+d+3, and the PPE result is deskewed to line up the b columns.
Consecutive phases are issued back to back (Fig. 10): keeping value registers (a) costs nothing,
reloading them (b) costs one LOAD beat per column, the query shortcut (c) holds ``ready`` low for
``SHORTCUT_GAP`` = 2 cycles after the last Q̄ beat, and an output phase (d) shifts its results up
the separate result chain while the next phases run; only a second output phase must start at
least d cycles after the previous output phase's last beat (``ready`` is held low until then).

Restriction: dot products are at most d long (``d_in <= d``; shorter ones are zero-padded).
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from golden.systolic import OP_DF1, OP_DF2, SHORTCUT_GAP, SystolicConfig

from .fixed import saturate, shape_of
from .pe import PE, _bits, op_layout
from .ppe import ARRAY_PARAMS, PPE, config_from_params, tag_layout, validate_params
from .registry import BlockSpec

__all__ = ["SystolicArray", "beat_layout", "res_layout", "out_layout", "pack", "unpack"]


def beat_layout(cfg: SystolicConfig) -> data.StructLayout:
    return data.StructLayout({
        "x": data.ArrayLayout(signed(cfg.x_width), cfg.d),
        "c": data.ArrayLayout(signed(cfg.qkv_fmt.width), cfg.d),
        "y": data.ArrayLayout(signed(cfg.y_width), cfg.b),
        "op": unsigned(2), "col": unsigned(_bits(cfg.b)), "phase": unsigned(2), "first": unsigned(1),
        "last": unsigned(1), "sub": unsigned(1), "shortcut": unsigned(1), "residual": unsigned(1),
        "scale": unsigned(cfg.inv_w_fmt.width),
    })


def res_layout(cfg: SystolicConfig) -> data.StructLayout:
    return data.StructLayout({
        "data": data.ArrayLayout(signed(cfg.res_width), cfg.b), "over": unsigned(cfg.b),
        "phase": unsigned(2), "first": unsigned(1), "last": unsigned(1),
    })


def out_layout(cfg: SystolicConfig) -> data.StructLayout:
    return data.StructLayout({
        "data": data.ArrayLayout(shape_of(cfg.out_fmt), cfg.b), "over": unsigned(cfg.b), "dbz": unsigned(cfg.b),
        "row": unsigned(_bits(cfg.d)),
    })


def pack(layout: data.Layout, values: dict) -> int:
    """Flat integer of a struct layout from a dict (arrays as lists; signed values two's complement)."""
    raw = 0
    for name, fld in layout:
        value = values.get(name, 0)
        shape = fld.shape
        if isinstance(shape, data.ArrayLayout):
            elem = shape.elem_shape
            ew = data.Layout.cast(elem).size if isinstance(elem, data.Layout) else elem.width
            for k, v in enumerate(value):
                raw |= (int(v) & ((1 << ew) - 1)) << (fld.offset + k * ew)
        else:
            raw |= (int(value) & ((1 << fld.width) - 1)) << fld.offset
    return raw


def unpack(layout: data.Layout, raw: int) -> dict:
    """Inverse of :func:`pack` (signed elements sign-extended)."""
    out: dict = {}
    for name, fld in layout:
        shape = fld.shape
        if isinstance(shape, data.ArrayLayout):
            elem = shape.elem_shape
            vals = []
            for k in range(shape.length):
                v = (raw >> (fld.offset + k * elem.width)) & ((1 << elem.width) - 1)
                if elem.signed and v >> (elem.width - 1):
                    v -= 1 << elem.width
                vals.append(v)
            out[name] = vals
        else:
            out[name] = (raw >> fld.offset) & ((1 << fld.width) - 1)
    return out


def _valid_only(layout: data.Layout) -> wiring.Signature:
    """A source without backpressure (results appear at a fixed latency; consumers always accept).
    A ``stream.Signature(always_ready=True)`` would have a constant ``ready`` that cannot be a port."""
    return wiring.Signature({"valid": Out(1), "payload": Out(layout)})


class SystolicArray(wiring.Component):
    """See the module docstring."""

    def __init__(self, *, cfg: SystolicConfig) -> None:
        self._MustUse__silence = True  # no 'never used' warning when a parameter is rejected
        if not isinstance(cfg, SystolicConfig):
            raise TypeError(f"cfg must be a SystolicConfig, not {cfg!r}")
        self._cfg = cfg
        super().__init__({
            "i": In(stream.Signature(beat_layout(cfg))),
            "res": Out(_valid_only(res_layout(cfg))),
            "out": Out(_valid_only(out_layout(cfg))),
            "overflow": Out(1), "residual_overflow": Out(1), "protocol_error": Out(1),
        })
        self._MustUse__silence = False

    @property
    def cfg(self) -> SystolicConfig:
        return self._cfg

    @property
    def RES_LATENCY(self) -> int:  # noqa: N802 (a constant of this configuration)
        return 1 + (self._cfg.d - 1) + PE.SUM_LATENCY + PPE.LATENCY + (self._cfg.b - 1)

    @property
    def OUT_LATENCY(self) -> int:  # noqa: N802
        return 1 + self._cfg.d + PPE.COPY_DELAY + PPE.OUT_LATENCY + self._cfg.b - 1

    @property
    def latency(self) -> dict[str, int]:
        return {"res": self.RES_LATENCY, "out_first_row": self.OUT_LATENCY, "shortcut_gap": SHORTCUT_GAP,
                "output_phase_spacing": self._cfg.d}

    @property
    def formats(self) -> dict:
        return self._cfg.formats()

    def manifest_extra(self) -> dict:
        cfg = self._cfg
        return {
            "beat_layout": {name: {"offset": f.offset, "width": f.width} for name, f in beat_layout(cfg)},
            "res_layout": {name: {"offset": f.offset, "width": f.width} for name, f in res_layout(cfg)},
            "out_layout": {name: {"offset": f.offset, "width": f.width} for name, f in out_layout(cfg)},
            "inv_sqrt_d_raw": cfg.inv_sqrt_d,
            "recip": cfg.recip.as_dict(),
            "restrictions": ["dot products d_in <= d", "shortcut phases: d beats, k = b, no bubbles"],
        }

    def elaborate(self, platform):
        cfg = self._cfg
        b, d = cfg.b, cfg.d
        m = Module()
        beat = self.i.payload
        tl = tag_layout(cfg)
        ol = op_layout(b)

        # ---- input gate: shortcut hand-over gap, output-phase spacing ----------------------------
        hold = Signal(range(SHORTCUT_GAP + 1))
        since_df2 = Signal(range(d + 1), init=d)
        df2_blocked = (beat.op == OP_DF2) & beat.first & (since_df2 < d)
        m.d.comb += self.i.ready.eq((hold == 0) & ~df2_blocked)
        fire = self.i.valid & self.i.ready
        with m.If(fire & (beat.op == OP_DF1) & beat.shortcut & beat.last):
            m.d.sync += hold.eq(SHORTCUT_GAP)
        with m.Elif(hold != 0):
            m.d.sync += hold.eq(hold - 1)
        with m.If(fire & (beat.op == OP_DF2) & beat.last):
            m.d.sync += since_df2.eq(1)
        with m.Elif(since_df2 != d):
            m.d.sync += since_df2.eq(since_df2 + 1)
        sc_open = Signal()
        with m.If(fire & (beat.op == OP_DF1) & beat.shortcut):
            m.d.sync += sc_open.eq(~beat.last)
        with m.If(sc_open & ~fire):
            m.d.sync += self.protocol_error.eq(1)

        # ---- input register with the left-edge residual subtractors -----------------------------
        in_x = [Signal(signed(cfg.x_width), name=f"in_x{j}") for j in range(d)]
        in_y = [Signal(signed(cfg.y_width), name=f"in_y{i}") for i in range(b)]
        in_op = Signal(ol)
        in_tag = Signal(tl)
        res_over = []
        shift = cfg.token_fmt.frac - cfg.qkv_fmt.frac
        for j in range(d):
            diff, over = saturate(beat.x[j] - (beat.c[j] << shift), cfg.token_fmt)
            res_over.append(over)
            with m.If(fire & beat.residual):
                m.d.sync += in_x[j].eq(diff)
            with m.Else():
                m.d.sync += in_x[j].eq(beat.x[j])
        with m.If(fire & beat.residual & Cat(*res_over).any()):
            m.d.sync += self.residual_overflow.eq(1)
        m.d.sync += [in_y[i].eq(beat.y[i]) for i in range(b)]
        m.d.sync += [
            in_op.op.eq(Mux(fire, beat.op, 0)), in_op.col.eq(beat.col), in_op.first.eq(beat.first),
            in_tag.op.eq(Mux(fire, beat.op, 0)), in_tag.col.eq(beat.col),
            in_tag.phase.eq(beat.phase), in_tag.first.eq(beat.first), in_tag.last.eq(beat.last),
            in_tag.sub.eq(beat.sub), in_tag.shortcut.eq(beat.shortcut), in_tag.scale.eq(beat.scale),
        ]

        # ---- row skew (left edge) and column skew (bottom edge) ---------------------------------
        row_x, row_op = [], []
        for j in range(d):
            x, op = in_x[j], in_op
            for k in range(j):
                nx, nop = Signal(signed(cfg.x_width), name=f"skx{j}_{k}"), Signal(ol, name=f"sko{j}_{k}")
                m.d.sync += [nx.eq(x), nop.eq(op)]
                x, op = nx, nop
            row_x.append(x)
            row_op.append(op)
        col_y = []
        for i in range(b):
            y = in_y[i]
            for k in range(i):
                ny = Signal(signed(cfg.y_width), name=f"sky{i}_{k}")
                m.d.sync += ny.eq(y)
                y = ny
            col_y.append(y)

        # Tag line: tags[k] holds a beat's tag k+1 cycles after its transfer; PPE i takes tags[i+d]
        # (aligned with the bottom operand leaving the top PE of column i).
        tags = [in_tag]
        for k in range(1, b + d):
            t = Signal(tl, name=f"tag{k}")
            m.d.sync += t.eq(tags[-1])
            tags.append(t)

        # ---- PEs and PPEs -------------------------------------------------------------------------
        ppe_res, ppe_out = [], []
        for i in range(b):
            ppe = PPE(cfg=cfg, col=i)
            m.submodules[f"ppe_{i}"] = ppe
            below = None
            for j in range(d):
                pe = PE(x_width=cfg.x_width, y_width=cfg.y_width, acc_width=cfg.acc_width, row=j, col=i, rows=d, cols=b)
                m.submodules[f"pe_{i}_{j}"] = pe
                if i == 0:
                    m.d.comb += [pe.x_in.eq(row_x[j]), pe.op_in.eq(row_op[j])]
                else:
                    left = m.submodules[f"pe_{i - 1}_{j}"]
                    m.d.comb += [pe.x_in.eq(left.x_out), pe.op_in.eq(left.op_out)]
                if below is None:
                    m.d.comb += [pe.y_in.eq(col_y[i]), pe.s_in.eq(0), pe.s_sat_in.eq(0), pe.chain_in.eq(0),
                                 pe.chain_sat_in.eq(0)]
                else:
                    m.d.comb += [pe.y_in.eq(below.y_out), pe.s_in.eq(below.s_out), pe.s_sat_in.eq(below.s_sat_out),
                                 pe.chain_in.eq(below.chain_out), pe.chain_sat_in.eq(below.chain_sat_out)]
                m.d.comb += [pe.copy.eq(ppe.copy), pe.sc_valid.eq(ppe.sc_valid), pe.sc_row.eq(ppe.sc_row),
                             pe.sc_value.eq(ppe.sc_value)]
                below = pe
            m.d.comb += [
                ppe.psum.eq(below.s_out), ppe.psum_sat.eq(below.s_sat_out), ppe.y_top.eq(below.y_out),
                ppe.tag.eq(tags[i + d]), ppe.chain.eq(below.chain_out), ppe.chain_sat.eq(below.chain_sat_out),
            ]

            # Column deskew: delay column i by b-1-i so the b results of a beat line up.
            res_sigs = [ppe.res_valid, ppe.res, ppe.res_over, ppe.res_tag]
            out_sigs = [ppe.out_valid, ppe.out, ppe.out_over, ppe.out_dbz, ppe.out_row]
            for k in range(b - 1 - i):
                nres = [Signal.like(s, name=f"dsr{i}_{k}_{n}") for n, s in enumerate(res_sigs)]
                nout = [Signal.like(s, name=f"dso{i}_{k}_{n}") for n, s in enumerate(out_sigs)]
                m.d.sync += [a.eq(s) for a, s in zip(nres, res_sigs)] + [a.eq(s) for a, s in zip(nout, out_sigs)]
                res_sigs, out_sigs = nres, nout
            ppe_res.append(res_sigs)
            ppe_out.append(out_sigs)

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
        with m.If((self.res.valid & self.res.payload.over.any()) | (self.out.valid & self.out.payload.over.any())
                  | self.residual_overflow):
            m.d.sync += self.overflow.eq(1)
        return m


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
