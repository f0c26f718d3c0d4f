"""Cluster index module (CIM), seed 001 §IV-B(2) and Fig. 4a; golden model ``golden.cim``.

One memory per tree layer: memory ``j`` (j = 0 .. l-1) maps (parent at depth j, hash value h_j)
to the child at depth j+1 (memory 0 is the root memory: the root is the only depth-0 node;
memory l-1 is the leaf memory: its entries are cluster indices). Each entry holds
``{epoch, ptr}``; it is valid when ``epoch`` equals the current run's epoch, so starting a new
clustering run (``clear``) costs one cycle; only when the epoch counter wraps are the memories
swept to zero (one write per address, ``sweep_cycles`` cycles, also after reset).

Input stream: one beat carries one hash value per thread, skewed as the systolic array
produces them: lane j of beat t is layer j of token t-j (``lane_valid[j]`` marks lanes that
carry a token). Thread units: a token spends two steps per layer (timing: a block-RAM output
never feeds the next memory's address in the same cycle): it issues a (synchronous) read of
memory j, the word is registered, and in the second step the read/write decoder resolves it
(hit, or allocate the next free node / cluster index and write it) while the child addresses
memory j+1 together with the token's next hash value (lane j is delayed by j steps inside to
line up). With ``internal_skew`` a beat carries one token's whole code instead (as the systolic
array's deskewed PPE results do) and lane j is delayed by 2j steps inside.
The two tokens behind a token that allocates read the memory before its write lands; the
decoder keeps the last two allocations of each layer and bypasses them to those readers. One
token completes per step; after the last beat the pipeline drains by itself, so n tokens take
n + 2l + 1 cycles from the first beat to the last index (``latency`` = 2l + 1).

Capacity: nodes per depth ``min(nodes_per_layer, 2**(hash_width*j))``, ``max_clusters`` leaves,
``max_tokens`` tokens per run. A token that does not fit gets index ``max_clusters`` and raises
the sticky ``overflow`` flag (cleared by ``clear``); ``n_clusters`` and ``n_tokens`` are readable.
Protocol errors (a lane that does not continue a token in flight, ``clear`` while busy) raise the
sticky ``protocol_error`` flag (cleared by reset only).
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from golden.cim import hash_format, layer_capacities

from . import faults
from .fixed import index_bits
from .primitives import RegisteredReadMemory
from .registry import BlockSpec, Param, ParamError

__all__ = ["ClusterIndexModule", "cim_input_layout"]




def cim_input_layout(hash_len: int, hash_width: int, internal_skew: bool = False) -> data.StructLayout:
    """Skewed beats (``hash`` lanes + ``lane_valid``), or one token's whole code per beat."""
    fields = {"hash": data.ArrayLayout(signed(hash_width), hash_len)}
    if not internal_skew:
        fields["lane_valid"] = unsigned(hash_len)
    return data.StructLayout(fields)


class ClusterIndexModule(wiring.Component):
    """l thread units over l layer memories; one cluster index per token, in token order."""

    #: deliberate faults for the tests (:mod:`hdl.faults`)
    FAULTS = {"no_bypass": "no write bypass: a token reads a layer word before an earlier token's "
                           "allocation has landed in it"}

    def __init__(self, *, hash_len: int = 6, hash_width: int = 4, max_tokens: int = 512,
                 max_clusters: int = 256, nodes_per_layer: int | None = None, epoch_bits: int = 3,
                 internal_skew: bool = False) -> None:
        try:
            nodes_per_layer = self._check(hash_len, hash_width, max_tokens, max_clusters, nodes_per_layer,
                                          epoch_bits)
        except (TypeError, ValueError):
            self._MustUse__used = True  # a rejected configuration is not an unused elaboratable
            raise
        self._l = hash_len
        self._hw = hash_width
        self._max_tokens = max_tokens
        self._max_clusters = max_clusters
        self._nodes = nodes_per_layer
        self._epoch_bits = epoch_bits
        self._internal_skew = bool(internal_skew)
        self._bypass = "no_bypass" not in faults.active(self)
        self._caps = layer_capacities(hash_len, hash_width, max_clusters, nodes_per_layer)
        parents = [1] + self._caps[:-1]
        self._depths = [p << hash_width for p in parents]
        super().__init__({
            "i": In(stream.Signature(cim_input_layout(hash_len, hash_width, internal_skew))),
            "o": Out(stream.Signature(unsigned(max_clusters.bit_length()))),
            "clear": In(1),
            "idle": Out(1),
            "n_clusters": Out(range(max_clusters + 1)),
            "n_tokens": Out(range(max_tokens + 1)),
            "overflow": Out(1),
            "protocol_error": Out(1),
        })

    @staticmethod
    def _check(hash_len, hash_width, max_tokens, max_clusters, nodes_per_layer, epoch_bits) -> int:
        for name, value, lo in (("hash_len", hash_len, 1), ("hash_width", hash_width, 1),
                                ("max_tokens", max_tokens, 1), ("max_clusters", max_clusters, 1),
                                ("epoch_bits", epoch_bits, 1)):
            if not isinstance(value, int) or isinstance(value, bool):
                raise TypeError(f"{name} must be an integer, not {value!r}")
            if value < lo:
                raise ValueError(f"{name} must be >= {lo}, not {value}")
        if hash_width > 12:
            raise ValueError(f"hash_width must be <= 12 (memory depth 2**hash_width per node), not {hash_width}")
        if nodes_per_layer is None:
            nodes_per_layer = max_clusters
        if not isinstance(nodes_per_layer, int) or not 1 <= nodes_per_layer <= max_clusters:
            raise ValueError(f"nodes_per_layer must be an integer in [1, max_clusters={max_clusters}], "
                             f"not {nodes_per_layer!r}")
        return nodes_per_layer

    # ---- read-only parameters --------------------------------------------------------------
    @property
    def hash_len(self) -> int:
        return self._l

    @property
    def hash_width(self) -> int:
        return self._hw

    @property
    def max_tokens(self) -> int:
        return self._max_tokens

    @property
    def max_clusters(self) -> int:
        return self._max_clusters

    @property
    def nodes_per_layer(self) -> int:
        return self._nodes

    @property
    def epoch_bits(self) -> int:
        return self._epoch_bits

    @property
    def internal_skew(self) -> bool:
        return self._internal_skew

    @property
    def layer_depths(self) -> list[int]:
        return list(self._depths)

    @property
    def sweep_cycles(self) -> int:
        return max(self._depths)

    @property
    def latency(self) -> int:
        """Cycles from the edge accepting a token's first lane to its index on ``o`` (2 per layer)."""
        return 2 * self._l + 1

    @property
    def formats(self) -> dict:
        return {"hash": hash_format(self._hw)}

    def manifest_extra(self) -> dict:
        return {"layer_depths": self.layer_depths, "layer_capacities": list(self._caps),
                "sweep_cycles": self.sweep_cycles, "no_cluster_index": self._max_clusters}

    # ---- hardware ------------------------------------------------------------------------------
    def elaborate(self, platform):
        m = Module()
        l, caps, E = self._l, self._caps, self._epoch_bits
        ptr_bits = [index_bits(c, min_bits=0) for c in caps]
        layouts = [data.StructLayout({"ptr": unsigned(pb), "epoch": unsigned(E)}) for pb in ptr_bits]
        # Layer memories with a registered read (hdl.primitives: on ECP5 a DP16KD with its output
        # register when deeper than LUTRAM_MAX_DEPTH): the thread's q_entry register *is* that
        # output register, so latency and cycle counts are unchanged.
        mems = []
        for j in range(l):
            mem = RegisteredReadMemory(width=layouts[j].size, depth=self._depths[j])
            m.submodules[f"layer{j}"] = mem
            mems.append(mem)
        abits = [len(mm.r_addr) for mm in mems]

        # Run state.
        sweeping = Signal(init=1)
        sweep_addr = Signal(range(self.sweep_cycles))
        epoch = Signal(E, init=1)
        alloc = [Signal(range(c + 1), name=f"alloc{j}") for j, c in enumerate(caps)]
        tok_count = Signal(range(self._max_tokens + 1))
        overflow = Signal()
        protocol_error = Signal()

        # Per layer, two thread stages: r = read issued at the last step, q = read issued two
        # steps ago, its memory word registered (q_entry); q is resolved in this step.
        def stage(prefix, j):
            return (Signal(name=f"{prefix}{j}_valid"), Signal(name=f"{prefix}{j}_dead"),
                    Signal(abits[j], name=f"{prefix}{j}_addr"))
        r = [stage("r", j) for j in range(l)]
        q = [stage("q", j) for j in range(l)]
        q_entry = [data.View(layouts[j], mems[j].r_data) for j in range(l)]   # loaded with step
        # The last allocation of each layer (its write lands after the r token's read).
        last_w = [(Signal(name=f"w{j}_valid"), Signal(abits[j], name=f"w{j}_addr"),
                   Signal(ptr_bits[j], name=f"w{j}_ptr")) for j in range(l)]
        # Bypass decisions for the q token, registered when it leaves r (timing: the decoder only
        # sees flip-flops and the memory word goes straight into q_entry): [0] the allocation of
        # the step it left r, [1] the one before.
        q_byp = [[Signal(name=f"q{j}_bypass{h}") for h in range(2)] for j in range(l)]
        q_byp_ptr = [[Signal(ptr_bits[j], name=f"q{j}_bypass{h}_ptr") for h in range(2)] for j in range(l)]

        out_space = ~self.o.valid | self.o.ready
        accept = Signal()
        step = Signal()
        lane0_valid = Signal()
        awaiting = Signal()  # external skew: a token of the last beat still expects lanes
        m.d.comb += [
            self.i.ready.eq(out_space & ~sweeping & ~self.clear),
            accept.eq(self.i.valid & self.i.ready),
        ]
        busy = Cat(*[s[0] for s in r + q]).any()
        if self._internal_skew:
            m.d.comb += [step.eq(out_space & ~sweeping & ~self.clear), lane0_valid.eq(accept)]
            delays = [2 * j for j in range(l)]
        else:
            lanes = self.i.payload.lane_valid
            prev_lanes = Signal(l)
            with m.If(accept):
                m.d.sync += prev_lanes.eq(lanes)
                # Each lane must continue exactly the token that sent lane j-1 in the last beat.
                with m.If(lanes[1:] != prev_lanes[: l - 1]):
                    m.d.sync += protocol_error.eq(1)
            m.d.comb += awaiting.eq(prev_lanes[: l - 1].any() if l > 1 else 0)
            # Without a beat the pipeline may only step when no token waits for a hash value.
            bubble = ~self.i.valid & ~self.clear & out_space & ~sweeping & ~awaiting & busy
            m.d.comb += [step.eq(accept | bubble), lane0_valid.eq(accept & lanes[0])]
            delays = [j for j in range(l)]
        # Lane j is needed 2j steps after the token's first lane: delay it to line up.
        hashes = []
        for j in range(l):
            h = self.i.payload.hash[j]
            for k in range(delays[j]):
                nxt = Signal(signed(self._hw), name=f"lane{j}_delay{k}")
                with m.If(step):
                    m.d.sync += nxt.eq(h)
                h = nxt
            hashes.append(h)

        # Decoder: resolve each layer's q token (hit, bypassed allocation, allocate, refuse).
        child, dead_out = [], []
        for j in range(l):
            qv, qd, qa = q[j]
            entry = q_entry[j]
            byp = q_byp[j]
            hit = Signal(name=f"q{j}_hit")
            full = Signal(name=f"q{j}_full")
            do_alloc = Signal(name=f"q{j}_alloc")
            refuse = Signal(name=f"q{j}_refuse")
            ptr = Signal(ptr_bits[j], name=f"q{j}_ptr")
            ch = Signal(ptr_bits[j], name=f"q{j}_child")
            dd = Signal(name=f"q{j}_dead_out")
            m.d.comb += [
                hit.eq(byp[0] | byp[1] | (entry.epoch == epoch)),
                ptr.eq(Mux(byp[0], q_byp_ptr[j][0], Mux(byp[1], q_byp_ptr[j][1], entry.ptr))),
                full.eq(alloc[j] == caps[j]),
                do_alloc.eq(qv & ~qd & ~hit & ~full),
                refuse.eq(qv & ~qd & ~hit & full),
                dd.eq(qd | refuse),
                ch.eq(Mux(hit, ptr, alloc[j][: ptr_bits[j]])),
            ]
            child.append(ch)
            dead_out.append(dd)

            sweep_in_range = (Const(1) if self._depths[j] == self.sweep_cycles
                              else sweep_addr < Const(self._depths[j], unsigned(len(sweep_addr))))
            # Write port: sweep, else the allocation of this step. (Mux expressions, not m.If: a
            # Verilog always @* whose inputs stay constant from time 0 is never evaluated by Icarus.)
            m.d.comb += [
                mems[j].w_addr.eq(Mux(sweeping, sweep_addr[: abits[j]], qa)),
                mems[j].w_data.eq(Mux(sweeping, 0, Cat(alloc[j][: ptr_bits[j]], epoch))),
                mems[j].w_en.eq(Mux(sweeping, sweep_in_range, step & do_alloc)),
            ]
            wv, wa, wp = last_w[j]
            with m.If(step):
                m.d.sync += [wv.eq(do_alloc), wa.eq(qa), wp.eq(alloc[j][: ptr_bits[j]])]
                m.d.sync += [
                    q_byp[j][0].eq(do_alloc & (qa == r[j][2]) if self._bypass else 0),
                    q_byp_ptr[j][0].eq(alloc[j][: ptr_bits[j]]),
                    q_byp[j][1].eq(wv & (wa == r[j][2]) if self._bypass else 0),
                    q_byp_ptr[j][1].eq(wp),
                ]
                with m.If(do_alloc):
                    m.d.sync += alloc[j].eq(alloc[j] + 1)
                with m.If(refuse):
                    m.d.sync += overflow.eq(1)
            with m.If(sweeping | self.clear):
                m.d.sync += wv.eq(0)

            # Read port: the token entering layer j this step (new token for j = 0).
            addr = Signal(abits[j], name=f"r{j}_rd_addr")
            hj = hashes[j].as_unsigned()
            m.d.comb += addr.eq(hj if j == 0 else Cat(hj, child[j - 1]))
            # read issued with step; its word enters q_entry at the next step (r -> q); a read of
            # the word written at the same step is never used (q_bypass[1] covers it)
            m.d.comb += [mems[j].r_addr.eq(addr), mems[j].r_en.eq(step), mems[j].r_data_en.eq(step)]
            rv, rdd, ra = r[j]
            with m.If(step):
                m.d.sync += [q[j][0].eq(rv), q[j][1].eq(rdd), q[j][2].eq(ra), ra.eq(addr)]
                if j == 0:
                    m.d.sync += [rv.eq(lane0_valid), rdd.eq(tok_count == self._max_tokens)]
                    with m.If(lane0_valid):
                        with m.If(tok_count == self._max_tokens):
                            m.d.sync += overflow.eq(1)
                        with m.Else():
                            m.d.sync += tok_count.eq(tok_count + 1)
                else:
                    m.d.sync += [rv.eq(q[j - 1][0]), rdd.eq(dead_out[j - 1])]

        # Leaf layer resolved: the cluster index (or "no cluster") leaves on the output stream.
        with m.If(step & q[l - 1][0]):
            m.d.sync += [self.o.valid.eq(1),
                         self.o.payload.eq(Mux(dead_out[l - 1], self._max_clusters, child[l - 1]))]
        with m.Elif(self.o.ready):
            m.d.sync += self.o.valid.eq(0)

        # Sweep (after reset, and when the epoch counter wraps).
        with m.If(sweeping):
            m.d.sync += sweep_addr.eq(sweep_addr + 1)
            with m.If(sweep_addr == self.sweep_cycles - 1):
                m.d.sync += [sweeping.eq(0), sweep_addr.eq(0)]

        idle = Signal()
        m.d.comb += idle.eq(~sweeping & ~busy & ~self.o.valid & ~awaiting)
        with m.If(self.clear):
            with m.If(idle):
                m.d.sync += [tok_count.eq(0), overflow.eq(0)] + [a.eq(0) for a in alloc]
                with m.If(epoch == (1 << E) - 1):
                    m.d.sync += [epoch.eq(1), sweeping.eq(1)]
                with m.Else():
                    m.d.sync += epoch.eq(epoch + 1)
            with m.Else():
                m.d.sync += protocol_error.eq(1)

        m.d.comb += [
            self.idle.eq(idle),
            self.n_clusters.eq(alloc[l - 1]),
            self.n_tokens.eq(tok_count),
            self.overflow.eq(overflow),
            self.protocol_error.eq(protocol_error),
        ]
        return m


# ---- registry ---------------------------------------------------------------------------------------

def _validate(p: dict) -> None:
    if p["nodes_per_layer"] > p["max_clusters"]:
        raise ParamError(f"parameter nodes_per_layer={p['nodes_per_layer']} out of range: expected "
                         f"<= max_clusters={p['max_clusters']} (0 means max_clusters)")
    depth = max(1, min(p["nodes_per_layer"] or p["max_clusters"], 1 << (p["hash_width"] * (p["hash_len"] - 1))))
    if depth << p["hash_width"] > 1 << 20:
        raise ParamError(f"parameter hash_width={p['hash_width']} out of range: a layer memory would have "
                         f"{depth << p['hash_width']} entries (> 2**20); reduce hash_width or nodes_per_layer")


def _build(*, hash_len, hash_width, max_tokens, max_clusters, nodes_per_layer, epoch_bits, internal_skew):
    return ClusterIndexModule(hash_len=hash_len, hash_width=hash_width, max_tokens=max_tokens,
                              max_clusters=max_clusters, nodes_per_layer=nodes_per_layer or None,
                              epoch_bits=epoch_bits, internal_skew=internal_skew)


BLOCKS = [
    BlockSpec(
        name="cim",
        description="CTA cluster index module: l cluster-tree threads, one memory per layer, bypass",
        params=(
            Param("hash_len", 6, "hash code length l (threads, layer memories)", min=1, max=16),
            Param("hash_width", 4, "hash value width (signed)", min=1, max=12),
            Param("max_tokens", 512, "tokens per run", min=1, max=1 << 16),
            Param("max_clusters", 256, "cluster indices (leaves)", min=1, max=1 << 16),
            Param("nodes_per_layer", 0, "internal nodes per layer (0: max_clusters)", min=0, max=1 << 16),
            Param("internal_skew", False, "input beats carry whole codes (deskewed SA results); skew inside",
                  kind=bool),
            Param("epoch_bits", 3, "run epoch bits (memories are swept every 2**epoch_bits-1 runs)", min=1, max=8),
        ),
        build=_build,
        cocotb_module="sim.tb_cim",
        validate=_validate,
        fpga_params={"hash_len": 6, "hash_width": 4, "max_tokens": 512, "max_clusters": 128},
    ),
]
