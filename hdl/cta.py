"""The CTA accelerator as one block: a whole attention head in RTL (seed 001 §IV-A Fig. 7, §V Table I;
DESIGN §4 "Mapping", §9). Golden model: :func:`golden.cta.cta_fixed_trace`; host data layout:
:mod:`golden.cta_host`.

Blocks: the b×d :class:`hdl.systolic_array.SystolicArray` (SA), the :class:`hdl.cim.ClusterIndexModule`
(CIM, whole codes per beat), the :class:`hdl.cag.CentroidAggregator` (CAG, d lanes: a token of d_in
elements is aggregated in ceil(d_in/d) runs, one per d-wide slice) and the
:class:`hdl.pag.ProbabilityAggregation` (PAG, b tiles), plus the on-chip memories of Fig. 7 (sizes
from the parameters, listed in the manifest): token buffers XQ / XKV, weights W^Q / W^K / W^V (one
d-wide word per column and pass), LSH directions, cluster tables CT0 / CT1 / CT2, centroids
C0 / C1 / C2 (one d-wide word per cluster and pass), the K̄V̄ buffer (one row per compressed key,
written b columns at a time) and the Ō buffer (one word per batch of b queries, written a row at
a time). CS and AP live in the PAG.

Sequencer (Table I): the array steps run one after another on the array issuer; the CAG and the
PAG have issuers of their own (own read ports, own FIFO credit) and run beside the array:

====== ==========================================================================================
LSH1   SA: hash X^KV with LSH_1 (d_in in passes) -> CIM -> CT1, k1
LSH0   SA: hash X^Q with LSH_0 -> CIM -> CT0, k0;  beside it the CAG: C1 = centroids of X^KV by CT1
       (one run per d-slice)
LSH2   SA: hash X^KV - C1[CT1] (left-edge subtractors) with LSH_2 -> CIM -> CT2, k2; its pass p
       needs C1's slice p only
CAG1   (the array waits for C1's next slice)
KV     SA: per b output columns of [W^K | W^V]: value registers = the weight columns, stream = the
       k1 rows of C1 with the biases b^K / b^V on the y lanes -> K̄V̄ buffer; beside it the CAG:
       C2 = centroids of the residuals by CT2
CAG2   (the array waits for C2, if the C1 half ended first)
KV     SA: the same with the k2 rows of C2 (no bias); beside it the CAG: C0 = centroids of X^Q by CT0
CAG0   (the array waits for C0, if K̄V̄ ended first)
Q      per batch of b queries: SA Q̄ = C0 W^Q + b^Q with the query shortcut,
SCORE  scores Q̄ K̄ᵀ/√d_h (max of the first k1 subtracted from the last k2) -> PAG CS,
PAG    the PAG over the n keys (two per cycle) runs beside the next batch's Q̄ (the value registers
       hold that Q̄ through the output phase, which does not use them); PAG counts the cycles the
       output phase waits for its AP
OUTPUT AP streamed straight into the SA output phase (x = V̄ rows) -> Ō buffer
READ   O[i] = Ō[CT0[i]] on the ``o`` stream, in query order
SWEEP  (not a step: cycles spent waiting for the CIM to sweep its memories, after reset and when its
       run-epoch counter wraps)
====== ==========================================================================================

The step counters count the cycles the sequencer spends in each step and add up to the run; the
cycle model is :func:`golden.cta_cycles.cta_step_cycles`.

Host interface: ``load`` (stream: target, address, up to d raw values; layout in
:mod:`golden.cta_host`), accepted while not busy; registers ``start``, ``m``, ``n``, ``d_in``,
``d_h``; ``busy``, ``done``, ``error`` (sizes refused: nothing runs); ``k0``, ``k1``, ``k2``; sticky
flags; ``cycles`` per step; ``o`` (stream, ``last`` on row m-1).

Fitting the blocks together: the SA's result stream has no ``ready``; the CIM (the only consumer
that could stall) is fed only when it is idle at the start of an LSH step and its output is always
accepted (the CT table write), so its ``ready`` cannot drop during a run; a result that arrives
while it is low would raise ``protocol_error``. The PAG's ``cs`` input is likewise only fed in its
load state. The hash width of the PPE and the CIM is one parameter (``hash_width``).
"""

from __future__ import annotations

from amaranth.hdl import Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from golden.cag import default_recip_spec
from golden.cta_host import TARGETS, CtaShape, load_layout_widths
from golden.systolic import OP_DF1, OP_DF2, OP_LOAD, PH_LINEAR, PH_LSH, PH_OUTPUT, PH_SCORE

from .cag import CentroidAggregator
from .cim import ClusterIndexModule
from .fixed import shape_of
from .pag import ProbabilityAggregation
from .systolic_array import SHORTCUT_GAP, SystolicArray, beat_layout

__all__ = ["Cta", "STEPS"]

#: sequencer steps, in order (index = cycle counter index)
STEPS = ("LSH1", "LSH0", "CAG1", "LSH2", "CAG2", "CAG0", "KV", "Q", "SCORE", "PAG", "OUTPUT", "READ", "SWEEP")
_S = {name: k for k, name in enumerate(STEPS)}


# x sources of a generated item
XS_ZERO, XS_XQ, XS_XKV, XS_W, XS_DIR, XS_C0, XS_C1, XS_C2, XS_KVK, XS_KVV = range(10)
# item kinds
K_SA, K_OUT = range(2)
# CAG runs the sequencer waits for
AUX_C2, AUX_C0 = range(2)


class Cta(wiring.Component):
    """See the module docstring. ``shape``: :class:`golden.cta_host.CtaShape` (SA configuration,
    hash length, capacities, exp unit)."""

    FIFO_DEPTH = 8
    #: cycles from the sequencer issuing an item (cycle t) to its consumer seeing it (t + 4): the CT
    #: read, the data read, the FIFO write, the FIFO's output register
    ISSUE_LATENCY = 4

    def __init__(self, *, shape: CtaShape) -> None:
        if not isinstance(shape, CtaShape):
            raise TypeError(f"shape must be a golden.cta_host.CtaShape, not {shape!r}")
        self._shape = shape
        cfg = shape.cfg
        w = load_layout_widths(shape)
        kk = shape.clusters
        super().__init__({
            "load": In(stream.Signature(data.StructLayout({
                "target": unsigned(3), "addr": unsigned(w["addr"]),
                "data": data.ArrayLayout(signed(w["lane"]), cfg.d)}))),
            "o": Out(stream.Signature(data.StructLayout({
                "data": data.ArrayLayout(shape_of(cfg.out_fmt), cfg.d), "last": unsigned(1)}))),
            "start": In(1),
            "m": In(range(shape.n_max + 1)), "n": In(range(shape.n_max + 1)),
            "d_in": In(range(cfg.d_in_max + 1)), "d_h": In(range(cfg.d + 1)),
            "busy": Out(1), "done": Out(1), "size_error": Out(1), "capacity_error": Out(1),
            "k0": Out(range(kk + 1)), "k1": Out(range(kk + 1)), "k2": Out(range(kk + 1)),
            "sa_overflow": Out(1), "cag_saturated": Out(1), "pag_overflow": Out(1), "protocol_error": Out(1),
            "cycles": Out(data.ArrayLayout(unsigned(32), len(STEPS))),
        })

    @property
    def shape(self) -> CtaShape:
        return self._shape

    def _cim(self) -> ClusterIndexModule:
        sh = self._shape
        return ClusterIndexModule(hash_len=sh.l, hash_width=sh.cfg.hash_fmt.width, max_tokens=sh.n_max,
                                  max_clusters=sh.clusters, internal_skew=True)

    def cycle_latencies(self) -> dict[str, int]:
        """The latency constants :func:`golden.cta_cycles.cta_step_cycles` models the run with."""
        from golden.cag import default_recip_spec

        from .pag import ProbabilityAggregation

        sh, cfg = self._shape, self._shape.cfg
        sa = SystolicArray(cfg=cfg)
        sa._MustUse__silence = True  # only its constants are read
        cag_block = CentroidAggregator(dim=cfg.d, max_clusters=sh.clusters, max_tokens=sh.n_max,
                                       token_fmt=cfg.token_fmt, centroid_fmt=cfg.qkv_fmt,
                                       recip_spec=default_recip_spec(sh.n_max))
        cag_block._MustUse__silence = True
        cag = cag_block.latency
        cim = self._cim()
        cim._MustUse__silence = True
        return {"cim_sweep": cim.sweep_cycles, "cim_epochs": (1 << cim.epoch_bits) - 1,
                "issue_latency": self.ISSUE_LATENCY, "fifo_depth": self.FIFO_DEPTH,
                "res_latency": sa.RES_LATENCY, "out_latency": sa.OUT_LATENCY, "cim_latency": 2 * sh.l + 1,
                "shortcut_gap": SHORTCUT_GAP,
                "cag_tail": cag["flush"] + cag["cavg"], "pag_readout": ProbabilityAggregation.READOUT_LATENCY}

    @property
    def formats(self) -> dict:
        return {**self._shape.cfg.formats(), "exp_in": self._shape.exp_spec.in_fmt,
                "exp_out": self._shape.exp_spec.out_fmt}

    def memories(self) -> dict[str, dict[str, int]]:
        """On-chip memories: words, bits per word and total bits (the manifest lists them)."""
        sh, cfg = self._shape, self._shape.cfg
        b, d, l, P, N, K, G = cfg.b, cfg.d, sh.l, cfg.max_passes, sh.n_max, sh.clusters, sh.kv_groups
        ct = K.bit_length()
        table = {
            "xq": (N * P, d * cfg.token_fmt.width), "xkv": (N * P, d * cfg.token_fmt.width),
            "w": (3 * P * d, d * cfg.weight_fmt.width), "dir": (3 * l * P, d * cfg.dir_fmt.width),
            "c0": (K * P, d * cfg.qkv_fmt.width), "c1": (K * P, d * cfg.qkv_fmt.width),
            "c2": (K * P, d * cfg.qkv_fmt.width),
            "ct0": (N, ct), "ct1": (N, ct), "ct2": (N, ct),
            "kv": (2 * K, 2 * G * b * cfg.qkv_fmt.width), "obar": (-(-K // b), d * b * cfg.out_fmt.width),
            "psum (per PPE, x b)": (cfg.psum_depth, (cfg.acc_width + 1) * b),
        }
        # read ports (a simple-dual-port block RAM has one: each further port is a copy): the array's
        # generator, the CAG issuer, the PAG issuer (two keys per item)
        ports = {"xq": 2, "xkv": 2, "c1": 2, "ct0": 2, "ct1": 4, "ct2": 3}
        return {name: {"words": w, "word_bits": bits, "bits": w * bits, "read_ports": ports.get(name, 1)}
                for name, (w, bits) in table.items()}

    def manifest_extra(self) -> dict:
        from golden.cta_host import TARGETS

        mems = self.memories()
        return {
            "memories": mems, "memory_bits_total": sum(v["bits"] for v in mems.values()),
            "steps": list(STEPS),
            "host": {
                "load_targets": TARGETS,
                "load_addresses": {"xq": "i*P + p", "xkv": "j*P + p", "w": "(w*P + p)*d + t (w: 0 Q, 1 K, 2 V)",
                                   "dir": "(h*l + c)*P + p", "lin_bias": "w*d + t (data[0])",
                                   "lsh_param": "h*l + c: bias (data[0]); 3*l + h: 1/w (data[0])",
                                   "P": self._shape.cfg.max_passes},
                "registers": ["start", "m", "n", "d_in", "d_h", "busy", "done", "size_error", "capacity_error",
                              "k0", "k1", "k2", "sa_overflow", "cag_saturated", "pag_overflow", "protocol_error",
                              "cycles[step]"],
                "output": "o: m rows of d lanes (first d_h meaningful), last on row m-1",
            },
            "decisions": [
                "SA results have no ready: the CIM is fed only from an idle start and its output is always "
                "accepted, so its ready stays high; a drop would raise protocol_error",
                "one hash width (hash_width, default 4) for the PPE saturation and the CIM: the CIM's layer "
                "memories grow as parents x 2**hash_width (8 bits: 131072 words per layer at n_max = 512)",
                "a cluster-capacity overflow ends the run after that LSH step with capacity_error and no output",
                "d_h is a generation parameter (the 1/sqrt(d_h) constant); a run with another d_h is refused",
            ],
        }

    def elaborate(self, platform):  # noqa: C901 (one sequencer)
        sh = self._shape
        cfg = sh.cfg
        b, d, l, P = cfg.b, cfg.d, sh.l, cfg.max_passes
        N, K = sh.n_max, sh.clusters
        G, d_h = sh.kv_groups, sh.d_h
        lb = (b - 1).bit_length()
        m = Module()

        # ---- blocks ------------------------------------------------------------------------------
        m.submodules.sa = sa = SystolicArray(cfg=cfg)
        m.submodules.cim = cim = self._cim()
        m.submodules.cag = cag = CentroidAggregator(dim=d, max_clusters=K, max_tokens=N, token_fmt=cfg.token_fmt,
                                                    centroid_fmt=cfg.qkv_fmt, recip_spec=default_recip_spec(N))
        m.submodules.pag = pag = ProbabilityAggregation(b=b, k1_max=K, k2_max=K, n_max=N, cs_fmt=cfg.score_fmt,
                                                        exp_spec=sh.exp_spec, ap_fmt=cfg.ap_fmt)

        # ---- memories ----------------------------------------------------------------------------
        tok = data.ArrayLayout(shape_of(cfg.token_fmt), d)
        qkv = data.ArrayLayout(shape_of(cfg.qkv_fmt), d)
        ct_shape = unsigned(K.bit_length())          # holds the "no cluster" index K
        mems = {
            "xq": Memory(shape=tok, depth=N * P, init=[]), "xkv": Memory(shape=tok, depth=N * P, init=[]),
            "w": Memory(shape=data.ArrayLayout(shape_of(cfg.weight_fmt), d), depth=3 * P * d, init=[]),
            "dir": Memory(shape=data.ArrayLayout(shape_of(cfg.dir_fmt), d), depth=3 * l * P, init=[]),
            "c0": Memory(shape=qkv, depth=K * P, init=[]), "c1": Memory(shape=qkv, depth=K * P, init=[]),
            "c2": Memory(shape=qkv, depth=K * P, init=[]),
            "ct0": Memory(shape=ct_shape, depth=N, init=[]), "ct1": Memory(shape=ct_shape, depth=N, init=[]),
            "ct2": Memory(shape=ct_shape, depth=N, init=[]),
            "kv": Memory(shape=data.ArrayLayout(data.ArrayLayout(shape_of(cfg.qkv_fmt), b), 2 * G), depth=2 * K,
                         init=[]),
            "obar": Memory(shape=data.ArrayLayout(data.ArrayLayout(shape_of(cfg.out_fmt), b), d),
                           depth=-(-K // b), init=[]),
        }
        for name, mem in mems.items():
            m.submodules[f"mem_{name}"] = mem
        lin_bias = [[Signal(shape_of(cfg.lin_bias_fmt), name=f"lin_bias{w}_{t}") for t in range(d)]
                    for w in range(3)]
        lsh_bias = [[Signal(shape_of(cfg.bias_fmt), name=f"lsh_bias{h}_{c}") for c in range(l)] for h in range(3)]
        inv_w = [Signal(unsigned(cfg.inv_w_fmt.width), name=f"inv_w{h}") for h in range(3)]

        # ---- host loading (only while not busy) -----------------------------------------------------
        busy = Signal()
        ld = self.load.payload
        ld_fire = self.load.valid & self.load.ready
        m.d.comb += self.load.ready.eq(~busy)
        for name, target in (("xq", TARGETS["xq"]), ("xkv", TARGETS["xkv"]), ("w", TARGETS["w"]),
                             ("dir", TARGETS["dir"])):
            wp = mems[name].write_port()
            m.d.comb += [wp.addr.eq(ld.addr), wp.en.eq(ld_fire & (ld.target == target))]
            m.d.comb += [wp.data[e].eq(ld.data[e]) for e in range(d)]
        with m.If(ld_fire & (ld.target == TARGETS["lin_bias"])):
            for wsel in range(3):
                for t in range(d):
                    with m.If(ld.addr == wsel * d + t):
                        m.d.sync += lin_bias[wsel][t].eq(ld.data[0])
        with m.If(ld_fire & (ld.target == TARGETS["lsh_param"])):
            for h in range(3):
                for c in range(l):
                    with m.If(ld.addr == h * l + c):
                        m.d.sync += lsh_bias[h][c].eq(ld.data[0])
                with m.If(ld.addr == 3 * l + h):
                    m.d.sync += inv_w[h].eq(ld.data[0])

        # ---- run registers ------------------------------------------------------------------------
        n_r, m_r = Signal.like(self.n), Signal.like(self.m)
        din_r = Signal.like(self.d_in)
        k0, k1, k2 = Signal(range(K + 1)), Signal(range(K + 1)), Signal(range(K + 1))
        kk = Signal(range(2 * K + 1))                       # k1 + k2
        m.d.comb += [self.busy.eq(busy), self.k0.eq(k0), self.k1.eq(k1), self.k2.eq(k2),
                     pag.k1.eq(k1), pag.k2.eq(k2), pag.n.eq(n_r)]
        step = Signal(range(len(STEPS)))
        step_on = Signal()
        cycles = [Signal(32, name=f"cycles_{s}") for s in STEPS]
        for k in range(len(STEPS)):
            m.d.comb += self.cycles[k].eq(cycles[k])
        with m.If(step_on):
            with m.Switch(step):
                for k in range(len(STEPS)):
                    with m.Case(k):
                        m.d.sync += cycles[k].eq(cycles[k] + 1)

        # ---- read ports --------------------------------------------------------------------------------
        rx = {name: mems[name].read_port() for name in ("xq", "xkv", "w", "dir", "c0", "c1", "c2")}
        rct = {name: mems[name].read_port() for name in ("ct0", "ct1")}
        rkv = mems["kv"].read_port()
        rob = mems["obar"].read_port()

        # ---- generator: gen (CT reads) -> g0 (data reads) -> g1 (assemble, FIFO write) ---------------
        bl = beat_layout(cfg)
        m.submodules.sa_fifo = sa_fifo = SyncFIFOBuffered(width=bl.size, depth=self.FIFO_DEPTH)
        cag_l = data.Layout.cast(cag.i.payload.shape())
        m.submodules.cag_fifo = cag_fifo = SyncFIFOBuffered(width=cag_l.size, depth=self.FIFO_DEPTH)
        ct_l = data.Layout.cast(pag.ct.payload.shape())
        m.submodules.ct_fifo = ct_fifo = SyncFIFOBuffered(width=ct_l.size, depth=self.FIFO_DEPTH)
        o_l = data.Layout.cast(self.o.payload.shape())
        m.submodules.o_fifo = o_fifo = SyncFIFOBuffered(width=o_l.size, depth=self.FIFO_DEPTH)
        m.d.comb += [
            sa.i.valid.eq(sa_fifo.r_rdy), sa.i.payload.as_value().eq(sa_fifo.r_data), sa_fifo.r_en.eq(sa.i.ready),
            cag.i.valid.eq(cag_fifo.r_rdy), cag.i.payload.as_value().eq(cag_fifo.r_data),
            cag_fifo.r_en.eq(cag.i.ready),
            pag.ct.valid.eq(ct_fifo.r_rdy), pag.ct.payload.as_value().eq(ct_fifo.r_data),
            ct_fifo.r_en.eq(pag.ct.ready),
            self.o.valid.eq(o_fifo.r_rdy), self.o.payload.as_value().eq(o_fifo.r_data),
            o_fifo.r_en.eq(self.o.ready),
        ]
        addr_w = max(mem.depth for mem in mems.values()).bit_length()
        desc = data.StructLayout({
            "kind": unsigned(1), "op": unsigned(2), "col": unsigned(max(1, lb)), "phase": unsigned(2),
            "first": 1, "last": 1, "sub": 1, "shortcut": 1, "residual": 1,
            "scale": unsigned(cfg.inv_w_fmt.width), "accumulate": 1, "partial": 1,
            "xsrc": unsigned(4), "addr": unsigned(addr_w), "y": data.ArrayLayout(signed(cfg.y_width), b),
        })
        gen, g0, g1 = Signal(desc), Signal(desc), Signal(desc)
        gen_v, g0_v, g1_v = Signal(), Signal(), Signal()
        gen_row = Signal(range(N + 1))
        m.d.comb += [rct[name].addr.eq(gen_row) for name in rct]
        m.d.sync += [g0.eq(gen), g0_v.eq(gen_v), g1.eq(g0), g1_v.eq(g0_v)]
        # Stage registers outside the descriptor (a comb copy of a register that stays constant from
        # time 0 is never evaluated by Icarus 11): the pass and CAG select of g0 and g1, the CT data.
        g0_pass = Signal(range(P + 1))
        g1_ct = {name: Signal(ct_shape, name=f"g1_{name}") for name in ("ct0", "ct1")}
        m.d.sync += [g1_ct["ct0"].eq(rct["ct0"].data), g1_ct["ct1"].eq(rct["ct1"].data)]
        for name, port in rx.items():
            if name != "c1":
                m.d.comb += port.addr.eq(g0.addr)
        # one C1 port: K̄V̄ reads C1 rows, LSH2 reads C1[CT1] for the residual (never in one beat)
        m.d.comb += [rx["c1"].addr.eq(Mux(g0.residual, rct["ct1"].data * P + g0_pass, g0.addr)),
                     rkv.addr.eq(g0.addr), rob.addr.eq(rct["ct0"].data >> lb)]
        fifo_level = Signal(range(4 * self.FIFO_DEPTH + 8))
        m.d.comb += fifo_level.eq(sa_fifo.level + o_fifo.level)
        space = Signal()
        m.d.comb += space.eq(fifo_level + g0_v + g1_v < self.FIFO_DEPTH)

        # assemble g1
        x_lanes = []
        xw = cfg.x_width
        kv_k = [rkv.data[gr][c] for gr in range(G) for c in range(b)][:d_h]
        kv_v = [rkv.data[G + gr][c] for gr in range(G) for c in range(b)][:d_h]
        for e in range(d):
            x = Signal(signed(xw), name=f"x_lane{e}")
            with m.Switch(g1.xsrc):
                with m.Case(XS_XQ):
                    m.d.comb += x.eq(rx["xq"].data[e])
                with m.Case(XS_XKV):
                    m.d.comb += x.eq(rx["xkv"].data[e])
                with m.Case(XS_W):
                    m.d.comb += x.eq(rx["w"].data[e])
                with m.Case(XS_DIR):
                    m.d.comb += x.eq(rx["dir"].data[e])
                with m.Case(XS_C0):
                    m.d.comb += x.eq(rx["c0"].data[e])
                with m.Case(XS_C1):
                    m.d.comb += x.eq(rx["c1"].data[e])
                with m.Case(XS_C2):
                    m.d.comb += x.eq(rx["c2"].data[e])
                with m.Case(XS_KVK):
                    m.d.comb += x.eq(kv_k[e] if e < d_h else 0)
                with m.Case(XS_KVV):
                    m.d.comb += x.eq(kv_v[e] if e < d_h else 0)
                with m.Default():
                    m.d.comb += x.eq(0)
            x_lanes.append(x)
        no_c1 = g1_ct["ct1"] == K                                  # a key without an LSH_1 cluster: centroid 0
        c_lanes = [Mux(g1.residual & ~no_c1, rx["c1"].data[e], 0) for e in range(d)]
        beat = Signal(bl)
        m.d.comb += [beat.x[e].eq(x_lanes[e]) for e in range(d)]
        m.d.comb += [beat.c[e].eq(c_lanes[e]) for e in range(d)]
        m.d.comb += [beat.y[c].eq(g1.y[c]) for c in range(b)]
        m.d.comb += [beat.op.eq(g1.op), beat.col.eq(g1.col), beat.phase.eq(g1.phase), beat.first.eq(g1.first),
                     beat.last.eq(g1.last), beat.sub.eq(g1.sub), beat.shortcut.eq(g1.shortcut),
                     beat.residual.eq(g1.residual), beat.scale.eq(g1.scale), beat.accumulate.eq(g1.accumulate),
                     beat.partial.eq(g1.partial)]
        o_item = Signal(o_l)
        lane = g1_ct["ct0"][:lb] if lb else 0
        for r in range(d):
            if r < d_h:
                m.d.comb += o_item.data[r].eq(rob.data[r].as_value().word_select(lane, cfg.out_fmt.width)
                                              if lb else rob.data[r][0])
        m.d.comb += o_item.last.eq(g1.last)
        m.d.comb += [
            sa_fifo.w_data.eq(beat.as_value()), sa_fifo.w_en.eq(g1_v & (g1.kind == K_SA)),
            o_fifo.w_data.eq(o_item.as_value()), o_fifo.w_en.eq(g1_v & (g1.kind == K_OUT)),
        ]

        # ---- result routers ------------------------------------------------------------------------
        res, outp = sa.res, sa.out
        h = Signal(2)                        # LSH level of the current LSH step
        kv_route = Signal()
        protocol = Signal()
        # LSH results -> CIM (whole codes) -> CT table of the level
        m.d.comb += [cim.i.valid.eq(res.valid & (res.payload.phase == PH_LSH)), cim.o.ready.eq(1)]
        m.d.comb += [cim.i.payload.hash[k].eq(res.payload.data[k]) for k in range(l)]
        ct_count = Signal(range(N + 1))
        for name, level in (("ct0", 0), ("ct1", 1), ("ct2", 2)):
            wp = mems[name].write_port()
            m.d.comb += [wp.addr.eq(ct_count), wp.data.eq(cim.o.payload), wp.en.eq(cim.o.valid & (h == level))]
        with m.If(cim.o.valid):
            m.d.sync += ct_count.eq(ct_count + 1)
        with m.If(cim.i.valid & ~cim.i.ready):
            m.d.comb += protocol.eq(1)
        # ---- CAG issuer: runs C1 / C2 / C0 beside the array (Table I), own read ports and credit ------
        # A run (``ca_start``, ``ca_start_sel``) aggregates its tokens one d-slice (pass) at a time; a
        # pass issues the tokens, then waits for the CAG's last centroid (``cag_done``). ``ca_busy``
        # falls the cycle after the last pass's last centroid.
        ca_start, ca_start_sel = Signal(), Signal(2)
        ca_busy, ca_issuing = Signal(), Signal()
        ca_sel = Signal(2)                   # 0 C1 (X^KV by CT1), 1 C2 (residuals by CT2), 2 C0 (X^Q by CT0)
        ca_j, ca_cnt = Signal(range(N + 1)), Signal(range(N + 1))
        ca_p, ca_pbase = Signal(range(P + 1)), Signal(range(P * d + d + 1))
        cag_done = Signal()
        m.d.comb += cag_done.eq(cag.o.valid & cag.o.payload.last)
        ca_rct = {name: mems[name].read_port() for name in ("ct0", "ct1", "ct2")}
        ca_rx = {name: mems[name].read_port() for name in ("xq", "xkv")}
        ca_rc1 = mems["c1"].read_port()
        ca_fire = Signal()
        ca0_v, ca0_last, ca0_sel, ca0_pass = Signal(), Signal(), Signal(2), Signal(range(P + 1))
        ca0_addr = Signal(range(N * P + 1))
        ca1_v, ca1_last, ca1_sel, ca1_ct, ca1_noc1 = Signal(), Signal(), Signal(2), Signal(ct_shape), Signal()
        m.d.comb += ca_fire.eq(ca_issuing & (cag_fifo.level + ca0_v + ca1_v < self.FIFO_DEPTH))
        m.d.comb += [port.addr.eq(ca_j) for port in ca_rct.values()]
        m.d.sync += [ca0_v.eq(ca_fire), ca0_last.eq(ca_j == ca_cnt - 1), ca0_sel.eq(ca_sel), ca0_pass.eq(ca_p),
                     ca0_addr.eq(ca_j * P + ca_p)]
        m.d.comb += [port.addr.eq(ca0_addr) for port in ca_rx.values()]
        m.d.comb += ca_rc1.addr.eq(ca_rct["ct1"].data * P + ca0_pass)
        m.d.sync += [ca1_v.eq(ca0_v), ca1_last.eq(ca0_last), ca1_sel.eq(ca0_sel),
                     ca1_ct.eq(Mux(ca0_sel == 2, ca_rct["ct0"].data,
                                   Mux(ca0_sel == 1, ca_rct["ct2"].data, ca_rct["ct1"].data))),
                     ca1_noc1.eq(ca_rct["ct1"].data == K)]
        ca_residual = ca1_sel == 1
        cag_item = Signal(cag_l)
        m.d.comb += [cag_item.index.eq(ca1_ct), cag_item.residual.eq(ca_residual), cag_item.last.eq(ca1_last)]
        m.d.comb += [cag_item.x[e].eq(Mux(ca1_sel == 2, ca_rx["xq"].data[e], ca_rx["xkv"].data[e]))
                     for e in range(d)]
        m.d.comb += [cag_item.centroid[e].eq(Mux(ca_residual & ~ca1_noc1, ca_rc1.data[e], 0)) for e in range(d)]
        m.d.comb += [cag_fifo.w_data.eq(cag_item.as_value()), cag_fifo.w_en.eq(ca1_v)]
        with m.If(ca_start):
            m.d.sync += [ca_busy.eq(1), ca_issuing.eq(1), ca_sel.eq(ca_start_sel), ca_j.eq(0), ca_p.eq(0),
                         ca_pbase.eq(0), ca_cnt.eq(Mux(ca_start_sel == 2, m_r, n_r))]
        with m.Elif(ca_fire):
            with m.If(ca_j == ca_cnt - 1):
                m.d.sync += [ca_issuing.eq(0), ca_j.eq(0)]
            with m.Else():
                m.d.sync += ca_j.eq(ca_j + 1)
        with m.Elif(ca_busy & ~ca_issuing & cag_done):
            with m.If(ca_pbase + d >= din_r):
                m.d.sync += ca_busy.eq(0)
            with m.Else():
                m.d.sync += [ca_p.eq(ca_p + 1), ca_pbase.eq(ca_pbase + d), ca_issuing.eq(1)]
        # CAG outputs -> C memory of the run
        m.d.comb += cag.o.ready.eq(1)
        for name, sel in (("c1", 0), ("c2", 1), ("c0", 2)):
            wp = mems[name].write_port()
            m.d.comb += [wp.addr.eq(cag.o.payload.index * P + ca_p), wp.en.eq(cag.o.valid & (ca_sel == sel))]
            m.d.comb += [wp.data[e].eq(cag.o.payload.centroid[e]) for e in range(d)]

        # ---- PAG issuer: the n keys' (CT1, CT2) pairs, two keys per item, beside the next Q̄ ---------
        pg_start, pg_busy = Signal(), Signal()
        pg_j = Signal(range(N + 2))
        pg_fire = Signal()
        pg0_v, pg1_v = Signal(), Signal()
        pg_rct = [[mems[name].read_port() for name in ("ct1", "ct2")] for _ in range(2)]   # keys j, j + 1
        for k_off in range(2):
            m.d.comb += [port.addr.eq(pg_j + k_off) for port in pg_rct[k_off]]
        pg1_ct = [[Signal(ct_shape, name=f"pg1_ct{lv}_{k_off}") for lv in (1, 2)] for k_off in range(2)]
        m.d.comb += pg_fire.eq(pg_busy & (ct_fifo.level + pg0_v + pg1_v < self.FIFO_DEPTH))
        m.d.sync += [pg0_v.eq(pg_fire), pg1_v.eq(pg0_v)]
        m.d.sync += [pg1_ct[k_off][lv].eq(pg_rct[k_off][lv].data) for k_off in range(2) for lv in range(2)]
        ct_item = Signal(ct_l)
        m.d.comb += [ct_item.ct1[k_off].eq(pg1_ct[k_off][0]) for k_off in range(2)]
        m.d.comb += [ct_item.ct2[k_off].eq(pg1_ct[k_off][1]) for k_off in range(2)]
        m.d.comb += [ct_fifo.w_data.eq(ct_item.as_value()), ct_fifo.w_en.eq(pg1_v)]
        with m.If(pg_start):
            m.d.sync += [pg_busy.eq(1), pg_j.eq(0)]
        with m.Elif(pg_fire):
            with m.If(pg_j + 2 >= n_r):
                m.d.sync += pg_busy.eq(0)
            with m.Else():
                m.d.sync += pg_j.eq(pg_j + 2)
        # K̄V̄ results -> K̄V̄ buffer (row j, group g)
        # The K̄V̄ step runs in two halves: the C1 rows of every group (beside the CAG's C2 run), then
        # the C2 rows; result group kv_grp < 2G is a C1-row group, 2G <= kv_grp < 4G a C2-row group.
        kv_row = Signal(range(2 * K + 1))
        kv_grp = Signal(range(4 * G + 1))
        kv_half = Signal()                   # issuing: 0 the C1 rows, 1 the C2 rows
        kv_c1_res = kv_grp < 2 * G
        kv_wp = mems["kv"].write_port(granularity=1)
        m.d.comb += [kv_wp.addr.eq(kv_row),
                     kv_wp.en.eq(Mux(res.valid & kv_route,
                                     1 << Mux(kv_c1_res, kv_grp, kv_grp - 2 * G).as_unsigned(), 0))]
        for gr in range(2 * G):
            m.d.comb += [kv_wp.data[gr][c].eq(res.payload.data[c]) for c in range(b)]
        with m.If(res.valid & kv_route):
            with m.If(kv_row == Mux(kv_c1_res, k1, kk) - 1):
                m.d.sync += [kv_row.eq(Mux(kv_grp + 1 >= 2 * G, k1, 0)), kv_grp.eq(kv_grp + 1)]
            with m.Else():
                m.d.sync += kv_row.eq(kv_row + 1)
        # score results -> PAG CS
        m.d.comb += pag.cs.valid.eq(res.valid & (res.payload.phase == PH_SCORE))
        m.d.comb += [pag.cs.payload[c].eq(res.payload.data[c]) for c in range(b)]
        with m.If(pag.cs.valid & ~pag.cs.ready):
            m.d.comb += protocol.eq(1)
        # output rows -> Ō buffer (batch, row)
        ob_batch = Signal(range(-(-K // b) + 1))
        ob_rows = Signal(range(d + 1))
        ob_wp = mems["obar"].write_port(granularity=1)
        m.d.comb += [ob_wp.addr.eq(ob_batch), ob_wp.en.eq(Mux(outp.valid, 1 << outp.payload.row, 0))]
        for r in range(d):
            m.d.comb += [ob_wp.data[r][c].eq(outp.payload.data[c]) for c in range(b)]
        with m.If(outp.valid):
            with m.If(ob_rows == d - 1):
                m.d.sync += [ob_rows.eq(0), ob_batch.eq(ob_batch + 1)]
            with m.Else():
                m.d.sync += ob_rows.eq(ob_rows + 1)

        # flags (sticky within a run): SA saturation on the columns that hold data
        sa_over, cag_sat, pag_over, proto = Signal(), Signal(), Signal(), Signal()
        m.d.comb += [self.sa_overflow.eq(sa_over), self.cag_saturated.eq(cag_sat), self.pag_overflow.eq(pag_over),
                     self.protocol_error.eq(proto | sa.protocol_error | cim.protocol_error)]
        res_cols = Signal(range(b + 1))     # result columns that hold data in the current step
        out_cols = Signal(range(b + 1))
        res_mask = Signal(b)
        out_mask = Signal(b)
        # score results arrive during the next batch's Q̄: their columns are those of the score phase
        sc_cols = Signal(range(b + 1))
        res_cols_now = Mux(res.payload.phase == PH_SCORE, sc_cols, res_cols)
        m.d.comb += [res_mask.eq((Const(1, b + 1) << res_cols_now) - 1),
                     out_mask.eq((Const(1, b + 1) << out_cols) - 1)]
        with m.If((res.valid & (res.payload.over & res_mask).any())
                  | (outp.valid & (outp.payload.row < d_h) & (outp.payload.over & out_mask).any())):
            m.d.sync += sa_over.eq(1)
        with m.If(cag.saturated):
            m.d.sync += cag_sat.eq(1)
        with m.If(pag.add_overflow.any() | pag.exp_overflow.any() | pag.ap_overflow.any() | pag.index_error):
            m.d.sync += pag_over.eq(1)
        with m.If(protocol):
            m.d.sync += proto.eq(1)

        # ---- sequencer ---------------------------------------------------------------------------------
        p = Signal(range(P + 1))                 # pass
        pbase = Signal(range(P * d + d + 1))      # p·d
        last_pass = Signal()
        m.d.comb += last_pass.eq(pbase + d >= din_r)
        c = Signal(range(b + 1))                 # LOAD column
        j = Signal(range(2 * N + 2))             # row / token / key / beat index
        cnt = Signal(range(2 * N + 1))           # rows of the current stream
        grp = Signal(range(2 * G + 1))           # K̄V̄ column group (< G: K̄, else V̄)
        sb = Signal(range(K + b + 1))            # first query of the current Q̄ / score batch
        out_pending = Signal()                   # a batch's output phase waits (its PAG runs beside the next Q̄)
        out_final = Signal()                     # ... and it is the last batch
        aux = Signal(2)                          # the CAG run AUX_W waits for
        wait_rows = Signal(range(d * (-(-K // b)) + 1))
        rows_seen = Signal(range(d * (-(-K // b)) + 2))
        with m.If(outp.valid):
            m.d.sync += rows_seen.eq(rows_seen + 1)
        m.d.comb += gen_row.eq(j)
        g = gen
        m.d.sync += g0_pass.eq(p)

        def issue(kind, **fields):
            m.d.comb += [gen_v.eq(1), g.kind.eq(kind)]
            for name, value in fields.items():
                m.d.comb += getattr(g, name).eq(value)

        xsrc_tok = Mux(h == 0, XS_XQ, XS_XKV)
        with m.FSM():
            with m.State("IDLE"):
                with m.If(self.start):
                    ok = (self.m >= 1) & (self.n >= 1) & (self.d_in >= 1) & (self.d_h == d_h)
                    m.d.sync += [self.done.eq(0), self.size_error.eq(~ok), self.capacity_error.eq(0)]
                    m.d.sync += [cyc.eq(0) for cyc in cycles]
                    with m.If(ok):
                        m.d.comb += cag.clear.eq(1)
                        m.d.sync += [busy.eq(1), n_r.eq(self.n), m_r.eq(self.m), din_r.eq(self.d_in),
                                     sa_over.eq(0), cag_sat.eq(0), pag_over.eq(0), proto.eq(0),
                                     h.eq(1), k0.eq(0), k1.eq(0), k2.eq(0)]
                        m.next = "LSH_CLR"
                    with m.Else():
                        m.d.sync += self.done.eq(1)
            # -- LSH steps: loads of l direction slices, then the tokens; per pass ----------------------
            lsh_step = Mux(h == 1, _S["LSH1"], Mux(h == 0, _S["LSH0"], _S["LSH2"]))
            with m.State("LSH_CLR"):   # waiting for the CIM's memory sweep (after reset) counts as SWEEP
                m.d.comb += [step_on.eq(1), step.eq(Mux(cim.idle, lsh_step, _S["SWEEP"]))]
                with m.If(cim.idle):
                    m.d.comb += cim.clear.eq(1)
                    m.d.sync += [p.eq(0), pbase.eq(0), c.eq(0), j.eq(0), ct_count.eq(0),
                                 cnt.eq(Mux(h == 0, m_r, n_r))]
                    m.next = "LSH_SWEEP"
            with m.State("LSH_SWEEP"):   # a clear that wraps the CIM's epoch counter starts a sweep
                m.d.comb += [step_on.eq(1), step.eq(Mux(cim.idle, lsh_step, _S["SWEEP"]))]
                with m.If(cim.idle):
                    m.next = "LSH_L"
            # LSH2's pass p subtracts C1's slice p: it starts when the CAG has finished that slice (the
            # cycles it waits count as CAG1)
            c1_slice_ready = (h != 2) | ~ca_busy | (ca_p > p)
            with m.State("LSH_L"):
                m.d.comb += [step_on.eq(1), step.eq(Mux(~c1_slice_ready, _S["CAG1"], lsh_step)), res_cols.eq(l)]
                with m.If(space & c1_slice_ready):
                    issue(K_SA, op=OP_LOAD, col=c, phase=PH_LSH, xsrc=XS_DIR, addr=(h * l + c) * P + p)
                    for cc in range(l):
                        with m.If(c == cc):
                            m.d.comb += g.y[cc].eq(Mux(h == 0, lsh_bias[0][cc], Mux(h == 1, lsh_bias[1][cc],
                                                                                        lsh_bias[2][cc])))
                    with m.If(c == l - 1):
                        m.d.sync += [c.eq(0), j.eq(0)]
                        m.next = "LSH_T"
                    with m.Else():
                        m.d.sync += c.eq(c + 1)
            with m.State("LSH_T"):
                m.d.comb += [step_on.eq(1), step.eq(Mux(h == 1, _S["LSH1"], Mux(h == 0, _S["LSH0"], _S["LSH2"]))),
                             res_cols.eq(l)]
                with m.If(space):
                    issue(K_SA, op=OP_DF1, phase=PH_LSH, xsrc=xsrc_tok, addr=j * P + p, first=j == 0,
                          last=j == cnt - 1, residual=h == 2,
                          scale=Mux(h == 0, inv_w[0], Mux(h == 1, inv_w[1], inv_w[2])),
                          accumulate=p != 0, partial=~last_pass)
                    with m.If(j == cnt - 1):
                        with m.If(last_pass):
                            m.next = "LSH_W"
                        with m.Else():
                            m.d.sync += [p.eq(p + 1), pbase.eq(pbase + d), c.eq(0)]
                            m.next = "LSH_L"
                    with m.Else():
                        m.d.sync += j.eq(j + 1)
            with m.State("LSH_W"):
                m.d.comb += [step_on.eq(1), step.eq(Mux(h == 1, _S["LSH1"], Mux(h == 0, _S["LSH0"], _S["LSH2"]))),
                             res_cols.eq(l)]
                with m.If((ct_count == cnt) & cim.idle):
                    with m.If(cim.overflow):   # the run stops; k of this level = its capacity
                        m.d.sync += self.capacity_error.eq(1)
                        with m.Switch(h):
                            with m.Case(1):
                                m.d.sync += k1.eq(cim.n_clusters)
                            with m.Case(0):
                                m.d.sync += k0.eq(cim.n_clusters)
                            with m.Default():
                                m.d.sync += k2.eq(cim.n_clusters)
                        m.next = "END"
                    with m.Else():
                        m.d.sync += [p.eq(0), pbase.eq(0), j.eq(0)]
                        with m.Switch(h):
                            with m.Case(1):       # CT1 is complete: C1 on the CAG beside LSH0
                                m.d.comb += [ca_start.eq(1), ca_start_sel.eq(0)]
                                m.d.sync += [k1.eq(cim.n_clusters), h.eq(0)]
                                m.next = "LSH_CLR"
                            with m.Case(0):       # LSH2 waits for C1 slice by slice (LSH_L)
                                m.d.sync += [k0.eq(cim.n_clusters), h.eq(2), c.eq(0)]
                                m.next = "LSH_CLR"
                            with m.Default():     # C2 on the CAG beside the C1 half of K̄V̄
                                m.d.comb += [ca_start.eq(1), ca_start_sel.eq(1)]
                                m.d.sync += [k2.eq(cim.n_clusters), kk.eq(k1 + cim.n_clusters), grp.eq(0),
                                             cnt.eq(k1), kv_half.eq(0), kv_row.eq(0), kv_grp.eq(0), c.eq(0)]
                                m.next = "KV_L"
            # -- waiting for a CAG run (the array is idle: these cycles count as the CAG step) ----------
            with m.State("AUX_W"):   # (results of K̄V̄'s C1 half may still arrive while it waits for C2)
                m.d.comb += [step_on.eq(1), kv_route.eq(aux == AUX_C2), res_cols.eq(Mux(aux == AUX_C2, b, 0)),
                             step.eq(Mux(aux == AUX_C2, _S["CAG2"], _S["CAG0"]))]
                with m.If(~ca_busy):
                    with m.Switch(aux):
                        with m.Case(AUX_C2):      # C0 on the CAG beside the C2 half of K̄V̄
                            m.d.comb += [ca_start.eq(1), ca_start_sel.eq(2)]
                            m.d.sync += [grp.eq(0), cnt.eq(k2), kv_half.eq(1), p.eq(0), pbase.eq(0), c.eq(0),
                                         j.eq(0)]
                            m.next = "KV_L"
                        with m.Default():
                            m.d.sync += [sb.eq(0), c.eq(0), p.eq(0), pbase.eq(0), rows_seen.eq(0), ob_batch.eq(0),
                                         ob_rows.eq(0), wait_rows.eq(0), out_pending.eq(0), out_final.eq(0)]
                            m.next = "Q_L"
            # -- K̄V̄: value registers = b weight columns, stream = the k1 + k2 centroid rows -------------
            kv_v = grp >= G
            t_base = Signal(range(2 * G * b + 1))
            m.d.comb += t_base.eq(Mux(kv_v, grp - G, grp) * b)
            wsel = Mux(kv_v, 2, 1)
            with m.State("KV_L"):
                m.d.comb += [step_on.eq(1), step.eq(_S["KV"]), kv_route.eq(1), res_cols.eq(b)]
                with m.If(space):
                    issue(K_SA, op=OP_LOAD, col=c, phase=PH_LINEAR,
                          xsrc=Mux(t_base + c < d_h, XS_W, XS_ZERO), addr=(wsel * P + p) * d + t_base + c)
                    with m.If(c == b - 1):
                        m.d.sync += [c.eq(0), j.eq(0)]
                        m.next = "KV_T"
                    with m.Else():
                        m.d.sync += c.eq(c + 1)
            with m.State("KV_T"):
                m.d.comb += [step_on.eq(1), step.eq(_S["KV"]), kv_route.eq(1), res_cols.eq(b)]
                with m.If(space):
                    c1_row = ~kv_half
                    issue(K_SA, op=OP_DF1, phase=PH_LINEAR, xsrc=Mux(c1_row, XS_C1, XS_C2),
                          addr=j * P + p, first=j == 0, last=j == cnt - 1,
                          accumulate=p != 0, partial=~last_pass)
                    for cc in range(b):
                        with m.If(last_pass & c1_row & (t_base + cc < d_h)):
                            for t in range(d_h):
                                with m.If(t_base + cc == t):
                                    m.d.comb += g.y[cc].eq(Mux(kv_v, lin_bias[2][t], lin_bias[1][t]))
                    with m.If(j == cnt - 1):
                        m.d.sync += j.eq(0)
                        with m.If(last_pass):
                            m.d.sync += [p.eq(0), pbase.eq(0), grp.eq(grp + 1)]
                            with m.If((grp == 2 * G - 1) & kv_half):
                                m.next = "KV_W"
                            with m.Elif(grp == 2 * G - 1):     # the C2 half needs C2
                                m.d.sync += aux.eq(AUX_C2)
                                m.next = "AUX_W"
                            with m.Else():
                                m.next = "KV_L"
                        with m.Else():
                            m.d.sync += [p.eq(p + 1), pbase.eq(pbase + d)]
                            m.next = "KV_L"
                    with m.Else():
                        m.d.sync += j.eq(j + 1)
            with m.State("KV_W"):
                m.d.comb += [step_on.eq(1), step.eq(_S["KV"]), kv_route.eq(1), res_cols.eq(b)]
                with m.If(kv_grp == 4 * G):     # Q̄ needs C0
                    m.d.sync += aux.eq(AUX_C0)
                    m.next = "AUX_W"
            # -- per batch of b queries: Q̄ (shortcut), scores -> PAG, PAG, output ---------------------
            real = Signal(range(b + 1))
            m.d.comb += real.eq(Mux(k0 - sb >= b, b, k0 - sb))
            with m.State("Q_L"):
                m.d.comb += [step_on.eq(1), step.eq(_S["Q"]), res_cols.eq(real), out_cols.eq(b)]
                with m.If(space):
                    issue(K_SA, op=OP_LOAD, col=c, phase=PH_LINEAR, xsrc=Mux(sb + c < k0, XS_C0, XS_ZERO),
                          addr=(sb + c) * P + p)
                    with m.If(c == b - 1):
                        m.d.sync += [c.eq(0), j.eq(0)]
                        m.next = "Q_T"
                    with m.Else():
                        m.d.sync += c.eq(c + 1)
            with m.State("Q_T"):
                m.d.comb += [step_on.eq(1), step.eq(_S["Q"]), res_cols.eq(real), out_cols.eq(b)]
                with m.If(space):
                    issue(K_SA, op=OP_DF1, phase=PH_LINEAR, xsrc=XS_W, addr=p * d + j, first=j == 0,
                          last=j == d_h - 1, shortcut=last_pass, accumulate=p != 0, partial=~last_pass)
                    for t in range(d_h):
                        with m.If(last_pass & (j == t)):
                            m.d.comb += [g.y[cc].eq(lin_bias[0][t]) for cc in range(b)]
                    with m.If(j == d_h - 1):
                        m.d.sync += j.eq(0)
                        with m.If(last_pass):
                            m.d.sync += [p.eq(0), pbase.eq(0)]
                            with m.If(out_pending):   # the previous batch's output phase comes first
                                m.next = "OUT_T"
                            with m.Else():
                                m.next = "SC_T"
                        with m.Else():
                            m.d.sync += [p.eq(p + 1), pbase.eq(pbase + d)]
                            m.next = "Q_L"
                    with m.Else():
                        m.d.sync += j.eq(j + 1)
            with m.State("SC_T"):
                m.d.comb += [step_on.eq(1), step.eq(_S["SCORE"]), res_cols.eq(real), out_cols.eq(b)]
                m.d.sync += sc_cols.eq(real)
                with m.If(space):
                    issue(K_SA, op=OP_DF1, phase=PH_SCORE, xsrc=XS_KVK, addr=j, first=j == 0, last=j == kk - 1,
                          sub=j >= k1)
                    with m.If(j == kk - 1):
                        # the PAG runs on this batch's CS beside the next batch's Q̄ (Table I)
                        m.d.comb += pg_start.eq(1)
                        m.d.sync += [j.eq(0), out_pending.eq(1)]
                        with m.If(sb + b >= k0):
                            m.d.sync += out_final.eq(1)
                            m.next = "OUT_T"
                        with m.Else():
                            m.d.sync += [sb.eq(sb + b), c.eq(0)]
                            m.next = "Q_L"
                    with m.Else():
                        m.d.sync += j.eq(j + 1)
            with m.State("OUT_T"):    # cycles waiting for the PAG's AP count as the PAG step
                m.d.comb += [step_on.eq(1), step.eq(Mux(pag.ap.valid, _S["OUTPUT"], _S["PAG"])), res_cols.eq(real),
                             out_cols.eq(b)]
                with m.If(space & pag.ap.valid):
                    m.d.comb += pag.ap.ready.eq(1)
                    issue(K_SA, op=OP_DF2, phase=PH_OUTPUT, xsrc=XS_KVV, addr=j, first=j == 0, last=j == kk - 1)
                    m.d.comb += [g.y[cc].eq(pag.ap.payload.ap[cc]) for cc in range(b)]
                    with m.If(j == kk - 1):
                        m.d.sync += [j.eq(0), wait_rows.eq(wait_rows + d), out_pending.eq(0)]
                        with m.If(out_final):
                            m.next = "OUT_W"
                        with m.Else():
                            m.next = "SC_T"
                    with m.Else():
                        m.d.sync += j.eq(j + 1)
            with m.State("OUT_W"):
                m.d.comb += [step_on.eq(1), step.eq(_S["OUTPUT"]), out_cols.eq(b)]
                with m.If(rows_seen == wait_rows):
                    m.d.sync += j.eq(0)
                    m.next = "READ"
            # -- O[i] = Ō[CT0[i]] in query order ----------------------------------------------------------
            with m.State("READ"):
                m.d.comb += [step_on.eq(1), step.eq(_S["READ"])]
                with m.If(space):
                    issue(K_OUT, last=j == m_r - 1)
                    with m.If(j == m_r - 1):
                        m.next = "READ_W"
                    with m.Else():
                        m.d.sync += j.eq(j + 1)
            with m.State("READ_W"):
                m.d.comb += [step_on.eq(1), step.eq(_S["READ"])]
                with m.If(self.o.valid & self.o.ready & self.o.payload.last):
                    m.next = "END"
            with m.State("END"):      # (a run refused after LSH0 lets the CAG finish C1 first)
                with m.If(~ca_busy & ~pg_busy):
                    m.d.sync += [busy.eq(0), self.done.eq(1)]
                    m.next = "IDLE"
        return m


# ---- registry ------------------------------------------------------------------------------------------

def _cta_params() -> tuple:
    from .ppe import ARRAY_PARAMS
    from .registry import Param

    skip = {"b", "d", "d_in_max", "psum_depth", "score_dim"}
    return (
        Param("b", 8, "SA width: columns (batch of b centroids / queries)", min=1, max=64, power_of_two=True),
        Param("d", 64, "SA height: rows (dot-product length per pass)", min=2, max=256),
        Param("l", 6, "hash length: LSH functions per level (<= b)", min=1, max=64),
        Param("n_max", 512, "longest sequence (m and n)", min=2, max=4096),
        Param("k_max", 0, "cluster capacity per LSH level (0: n_max)", min=0, max=4096),
        Param("d_in_max", 1024, "longest model dimension d_in (runs in ceil(d_in / d) passes)", min=1, max=65536),
        Param("d_h", 0, "head dimension (0: d); the run's d_h must equal it (1/sqrt(d_h) is a constant)",
              min=0, max=256),
        Param("hash_width", 4, "hash values, in the PPE (saturating) and the CIM (its layer memories hold "
              "parents x 2**hash_width entries: 4 bits keep them small)", min=2, max=12),
        *(p for p in ARRAY_PARAMS if p.name not in skip | {"hash_width"}),
    )


def shape_from_params(p: dict) -> CtaShape:
    """:class:`golden.cta_host.CtaShape` of the ``cta`` block parameters."""
    from .ppe import config_from_params

    k = p["k_max"] or p["n_max"]
    cfg = config_from_params({**p, "psum_depth": max(p["n_max"], 2 * k), "score_dim": p["d_h"]})
    return CtaShape(cfg=cfg, l=p["l"], n_max=p["n_max"], k_max=p["k_max"])


def params_from_shape(shape: CtaShape) -> dict:
    """Block parameters of ``shape`` (inverse of :func:`shape_from_params`)."""
    from .ppe import params_from_config

    p = params_from_config(shape.cfg)
    for name in ("psum_depth", "score_dim"):
        p.pop(name)
    p.update(l=shape.l, n_max=shape.n_max, k_max=shape.k_max, d_h=shape.cfg.score_dim)
    if shape_from_params(p) != shape:
        raise ValueError("CtaShape has settings that are not block parameters (psum_depth, exp unit)")
    return p


def _validate(p: dict) -> None:
    from .ppe import validate_params
    from .registry import ParamError

    if p["d_h"] > p["d"]:
        raise ParamError(f"parameter d_h={p['d_h']} out of range: expected <= d={p['d']}")
    if p["k_max"] > p["n_max"]:
        raise ParamError(f"parameter k_max={p['k_max']} out of range: expected <= n_max={p['n_max']}")
    if p["l"] > p["b"]:
        raise ParamError(f"parameter l={p['l']} out of range: expected <= b={p['b']} (one hash function per column)")
    validate_params({**p, "psum_depth": max(p["n_max"], 2 * (p["k_max"] or p["n_max"])), "score_dim": p["d_h"]})
    try:
        shape_from_params(p)
    except (TypeError, ValueError) as exc:
        raise ParamError(f"parameter {str(exc).replace('CtaShape ', '')}") from None


def _build(**p) -> Cta:
    return Cta(shape=shape_from_params(p))


def _blocks() -> list:
    from .registry import BlockSpec

    return [BlockSpec(
        name="cta",
        description="CTA accelerator: SA + CIM + CAG + PAG + on-chip memories, Table I sequencer, one head per run",
        params=_cta_params(),
        build=_build,
        cocotb_module="sim.tb_cta",
        validate=_validate,
        fpga_params={"b": 4, "d": 16, "l": 4, "n_max": 64, "d_in_max": 64},
    )]


BLOCKS = _blocks()
