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

Capacity: nodes per depth ``min(nodes_per_layer, 2**(hash_width*j))``, ``k_max`` leaves,
``n_max`` tokens per run. A token that does not fit gets index ``k_max`` and raises
the sticky ``overflow`` flag (cleared by ``clear``); ``n_clusters`` and ``n_tokens`` are readable.
Protocol errors (a lane that does not continue a token in flight, ``clear`` while busy) raise the
sticky ``protocol_error`` flag (cleared by reset only).

Parts (tested alone in tests/test_cim_parts.py): :class:`CimLaneAlign` (the threads' front end:
when the pipeline steps, the lane protocol check, the lane delays) and one :class:`CimDecoder` per
layer (hit / bypass / allocate / refuse, the allocation counter, the memory's write port). The
layer memories (``layer{j}``), the thread stages r / q and the run state (epoch, sweep, token
count) stay in :class:`ClusterIndexModule`, which wires them.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from golden.cim import hash_format, layer_capacities

from . import faults
from .checked import CheckedComponent, check_positive_ints
from .fixed import index_bits
from .primitives import RegisteredReadMemory
from .registry import BlockSpec, Param, ParamError

__all__ = ["ClusterIndexModule", "CimDecoder", "CimLaneAlign", "cim_entry_layout", "cim_input_layout",
           "cim_latency", "cim_layer_depths", "cim_sweep_cycles"]


def cim_input_layout(l: int, hash_width: int, internal_skew: bool = False) -> data.StructLayout:
    """Skewed beats (``hash`` lanes + ``lane_valid``), or one token's whole code per beat."""
    fields = {"hash": data.ArrayLayout(signed(hash_width), l)}
    if not internal_skew:
        fields["lane_valid"] = unsigned(l)
    return data.StructLayout(fields)


def cim_entry_layout(capacity: int, epoch_bits: int) -> data.StructLayout:
    """A layer-memory word: the child pointer and the epoch of the run that wrote it."""
    return data.StructLayout({"ptr": unsigned(index_bits(capacity, min_bits=0)), "epoch": unsigned(epoch_bits)})


def cim_layer_depths(*, l: int, hash_width: int, k_max: int, nodes_per_layer: int = 0) -> list[int]:
    """Words of each layer memory: the parents at its depth x 2**hash_width."""
    caps = layer_capacities(l, hash_width, k_max, nodes_per_layer or k_max)
    return [p << hash_width for p in [1] + caps[:-1]]


def cim_latency(l: int) -> int:
    """:attr:`ClusterIndexModule.latency` of an ``l``-layer CIM without building one: each layer
    takes two cycles (memory read, then the decoder), plus the output register."""
    return 2 * l + 1


def cim_sweep_cycles(*, l: int, hash_width: int, k_max: int, nodes_per_layer: int = 0) -> int:
    """``ClusterIndexModule.sweep_cycles`` of a configuration without building one (the CTA block reads it
    for its cycle model): the deepest layer memory."""
    return max(cim_layer_depths(l=l, hash_width=hash_width, k_max=k_max, nodes_per_layer=nodes_per_layer))


class CimLaneAlign(CheckedComponent):
    """Thread front end of the CIM: takes the input beats, decides when the thread pipeline steps
    and lines the hash lanes up with their thread units.

    A step moves every thread stage on by one. With ``internal_skew`` a beat carries one token's
    whole code and the pipeline steps whenever ``can_step``; lane j is delayed ``2j`` steps (a
    token spends two steps per layer). Otherwise lane j of a beat continues the token that sent
    lane j-1 one beat earlier (a mismatch pulses ``lane_error``), lane j is delayed ``j`` steps,
    and without a beat the pipeline steps (a bubble) only while tokens are in flight (``busy``)
    and none of them still waits for a lane (``awaiting``).
    ``hash[j]`` is the lane that thread j reads with this step; ``lane0_valid`` starts a token.
    """

    def __init__(self, *, l: int, hash_width: int, internal_skew: bool) -> None:
        self._l, self._hw, self._internal_skew = l, hash_width, bool(internal_skew)
        super().__init__({
            "i": In(stream.Signature(cim_input_layout(l, hash_width, internal_skew))),
            "can_step": In(1),   # the output has room, no sweep, no clear
            "busy": In(1),       # a token is in a thread stage
            "step": Out(1),
            "lane0_valid": Out(1),
            "awaiting": Out(1),
            "lane_error": Out(1),
            "hash": Out(data.ArrayLayout(signed(hash_width), l)),
        })

    @classmethod
    def check_params(cls, *, l: int, hash_width: int, internal_skew: bool) -> None:
        check_positive_ints(l=l, hash_width=hash_width)

    l = property(lambda self: self._l)
    hash_width = property(lambda self: self._hw)
    internal_skew = property(lambda self: self._internal_skew)

    @property
    def lane_delays(self) -> tuple[int, ...]:
        """Steps lane j is delayed by (its thread reads it that many steps after lane 0's)."""
        return tuple((2 if self._internal_skew else 1) * j for j in range(self._l))

    def elaborate(self, platform):
        m = Module()
        l = self._l
        accept = Signal()
        m.d.comb += [self.i.ready.eq(self.can_step), accept.eq(self.i.valid & self.i.ready)]
        if self._internal_skew:
            m.d.comb += [self.step.eq(self.can_step), self.lane0_valid.eq(accept)]
        else:
            lanes = self.i.payload.lane_valid
            prev_lanes = Signal(l)
            with m.If(accept):
                m.d.sync += prev_lanes.eq(lanes)
            # Each lane must continue exactly the token that sent lane j-1 in the last beat.
            m.d.comb += self.lane_error.eq(accept & (lanes[1:] != prev_lanes[: l - 1]))
            m.d.comb += self.awaiting.eq(prev_lanes[: l - 1].any() if l > 1 else 0)
            # Without a beat the pipeline may only step when no token waits for a hash value.
            bubble = ~self.i.valid & self.can_step & ~self.awaiting & self.busy
            m.d.comb += [self.step.eq(accept | bubble), self.lane0_valid.eq(accept & lanes[0])]
        for j, delay in enumerate(self.lane_delays):
            h = self.i.payload.hash[j]
            for k in range(delay):
                nxt = Signal(signed(self._hw), name=f"lane{j}_delay{k}")
                with m.If(self.step):
                    m.d.sync += nxt.eq(h)
                h = nxt
            m.d.comb += self.hash[j].eq(h)
        return m


class CimDecoder(CheckedComponent):
    """Read/write decoder of one CIM layer memory (seed 001 Fig. 4a).

    Resolves the thread token in stage q (``q_valid`` / ``q_dead`` / ``q_addr``) from the
    registered memory word ``entry``: a hit (the word's epoch is the run's, or one of the last two
    allocations at that address, bypassed), else it allocates the next free node (``alloc``) and
    writes it, or refuses when the layer is full (``refuse``: the token and its followers are
    dead). ``child`` / ``dead`` are combinational (``LATENCY`` = 0, decided in the step that sees
    the word); the allocation counter and the bypass registers advance with ``step``. While
    ``sweeping`` the write port clears address ``sweep_addr`` (``sweep_en``) instead. ``restart``
    (a new run) zeroes the counter. ``bypass=False`` is the ``no_bypass`` fault of the CIM.
    """

    #: cycles from the registered word to ``child`` / ``dead``
    LATENCY = 0

    def __init__(self, *, addr_bits: int, capacity: int, epoch_bits: int, bypass: bool = True) -> None:
        self._abits, self._cap, self._epoch_bits, self._bypass = addr_bits, capacity, epoch_bits, bool(bypass)
        layout = cim_entry_layout(capacity, epoch_bits)
        ptr = unsigned(index_bits(capacity, min_bits=0))
        super().__init__({
            "step": In(1), "sweeping": In(1), "clear": In(1), "restart": In(1),
            "run_epoch": In(epoch_bits),
            "q_valid": In(1), "q_dead": In(1), "q_addr": In(addr_bits),
            "r_addr": In(addr_bits),   # the token behind (stage r): bypass decisions for it
            "entry": In(layout),
            "sweep_addr": In(addr_bits), "sweep_en": In(1),
            "hit": Out(1), "ptr": Out(ptr), "child": Out(ptr), "dead": Out(1), "refuse": Out(1),
            "alloc": Out(range(capacity + 1)),
            "w_addr": Out(addr_bits), "w_data": Out(layout), "w_en": Out(1),
        })

    @classmethod
    def check_params(cls, *, addr_bits: int, capacity: int, epoch_bits: int, bypass: bool) -> None:
        check_positive_ints(addr_bits=addr_bits, capacity=capacity, epoch_bits=epoch_bits)

    addr_bits = property(lambda self: self._abits)
    capacity = property(lambda self: self._cap)
    epoch_bits = property(lambda self: self._epoch_bits)
    bypass = property(lambda self: self._bypass)

    def elaborate(self, platform):
        m = Module()
        pb = len(self.ptr)
        entry, alloc, qa = self.entry, self.alloc, self.q_addr
        live = self.q_valid & ~self.q_dead
        # Bypass decisions for the q token, registered when it leaves r (timing: the decoder only
        # sees flip-flops and the memory word goes straight into the entry register): [0] the
        # allocation of the step it left r, [1] the one before (w_*: the last allocation).
        byp = [Signal(name=f"bypass{h}") for h in range(2)]
        byp_ptr = [Signal(pb, name=f"bypass{h}_ptr") for h in range(2)]
        wv, wa, wp = Signal(name="w_valid"), Signal(self._abits, name="w_addr_last"), Signal(pb, name="w_ptr")
        full, do_alloc = Signal(), Signal()
        m.d.comb += [
            self.hit.eq(byp[0] | byp[1] | (entry.epoch == self.run_epoch)),
            self.ptr.eq(Mux(byp[0], byp_ptr[0], Mux(byp[1], byp_ptr[1], entry.ptr))),
            full.eq(alloc == self._cap),
            do_alloc.eq(live & ~self.hit & ~full),
            self.refuse.eq(live & ~self.hit & full),
            self.dead.eq(self.q_dead | self.refuse),
            self.child.eq(Mux(self.hit, self.ptr, alloc[:pb])),
        ]
        # Write port: sweep, else the allocation of this step. (Mux expressions, not m.If: a
        # Verilog always @* whose inputs stay constant from time 0 is never evaluated by Icarus.)
        m.d.comb += [
            self.w_addr.eq(Mux(self.sweeping, self.sweep_addr, qa)),
            self.w_data.as_value().eq(Mux(self.sweeping, 0, Cat(alloc[:pb], self.run_epoch))),
            self.w_en.eq(Mux(self.sweeping, self.sweep_en, self.step & do_alloc)),
        ]
        with m.If(self.step):
            m.d.sync += [wv.eq(do_alloc), wa.eq(qa), wp.eq(alloc[:pb])]
            m.d.sync += [
                byp[0].eq(do_alloc & (qa == self.r_addr) if self._bypass else 0),
                byp_ptr[0].eq(alloc[:pb]),
                byp[1].eq(wv & (wa == self.r_addr) if self._bypass else 0),
                byp_ptr[1].eq(wp),
            ]
            with m.If(do_alloc):
                m.d.sync += alloc.eq(alloc + 1)
        with m.If(self.sweeping | self.clear):
            m.d.sync += wv.eq(0)
        with m.If(self.restart):
            m.d.sync += alloc.eq(0)
        return m


class ClusterIndexModule(CheckedComponent):
    """l thread units over l layer memories; one cluster index per token, in token order."""

    #: deliberate faults for the tests (:mod:`hdl.faults`)
    FAULTS = {"no_bypass": "no write bypass: a token reads a layer word before an earlier token's "
                           "allocation has landed in it"}

    def __init__(self, *, l: int = 6, hash_width: int = 4, n_max: int = 512,
                 k_max: int = 256, nodes_per_layer: int = 0, epoch_bits: int = 3,
                 internal_skew: bool = False) -> None:
        nodes_per_layer = nodes_per_layer or k_max  # 0: auto, as in the registry
        self._l = l
        self._hw = hash_width
        self._n_max = n_max
        self._k_max = k_max
        self._nodes = nodes_per_layer
        self._epoch_bits = epoch_bits
        self._internal_skew = bool(internal_skew)
        self._bypass = "no_bypass" not in faults.active(self)
        self._caps = layer_capacities(l, hash_width, k_max, nodes_per_layer)
        self._depths = cim_layer_depths(l=l, hash_width=hash_width, k_max=k_max, nodes_per_layer=nodes_per_layer)
        super().__init__({
            "i": In(stream.Signature(cim_input_layout(l, hash_width, internal_skew))),
            "o": Out(stream.Signature(unsigned(k_max.bit_length()))),
            "clear": In(1),
            "idle": Out(1),
            "n_clusters": Out(range(k_max + 1)),
            "n_tokens": Out(range(n_max + 1)),
            "overflow": Out(1),
            "protocol_error": Out(1),
        })

    @classmethod
    def check_params(cls, *, l: int, hash_width: int, n_max: int, k_max: int, nodes_per_layer: int,
                     epoch_bits: int, internal_skew: bool) -> None:
        check_positive_ints(l=l, hash_width=hash_width, n_max=n_max, k_max=k_max,
                            epoch_bits=epoch_bits)
        if hash_width > 12:
            raise ValueError(f"hash_width must be <= 12 (memory depth 2**hash_width per node), not {hash_width}")
        if (not isinstance(nodes_per_layer, int) or isinstance(nodes_per_layer, bool)
                or not 0 <= nodes_per_layer <= k_max):
            raise ValueError(f"nodes_per_layer must be an integer in [0, k_max={k_max}] (0: k_max), "
                             f"not {nodes_per_layer!r}")

    # ---- read-only parameters --------------------------------------------------------------
    @property
    def l(self) -> int:
        return self._l

    @property
    def hash_width(self) -> int:
        return self._hw

    @property
    def n_max(self) -> int:
        return self._n_max

    @property
    def k_max(self) -> int:
        return self._k_max

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
        return cim_latency(self._l)

    @property
    def formats(self) -> dict:
        return {"hash": hash_format(self._hw)}

    def manifest_extra(self) -> dict:
        return {"layer_depths": self.layer_depths, "layer_capacities": list(self._caps),
                "sweep_cycles": self.sweep_cycles, "no_cluster_index": self._k_max}

    # ---- hardware ------------------------------------------------------------------------------
    def elaborate(self, platform):
        m = Module()
        l, caps, E = self._l, self._caps, self._epoch_bits
        # Layer memories with a registered read (hdl.primitives: on ECP5 a DP16KD with its output
        # register when deeper than LUTRAM_MAX_DEPTH): the decoder's entry register *is* that
        # output register, so latency and cycle counts are unchanged.
        mems, decs = [], []
        for j in range(l):
            mem = RegisteredReadMemory(width=cim_entry_layout(caps[j], E).size, depth=self._depths[j])
            m.submodules[f"layer{j}"] = mem
            m.submodules[f"decoder{j}"] = dec = CimDecoder(addr_bits=len(mem.r_addr), capacity=caps[j],
                                                           epoch_bits=E, bypass=self._bypass)
            mems.append(mem)
            decs.append(dec)
        abits = [len(mm.r_addr) for mm in mems]

        # Run state.
        sweeping = Signal(init=1)
        sweep_addr = Signal(range(self.sweep_cycles))
        epoch = Signal(E, init=1)
        tok_count = Signal(range(self._n_max + 1))
        overflow = Signal()
        protocol_error = Signal()
        idle = Signal()

        # Per layer, two thread stages: r = read issued at the last step, q = read issued two
        # steps ago, its memory word registered; q is resolved by the layer's decoder in this step.
        def stage(prefix, j):
            return (Signal(name=f"{prefix}{j}_valid"), Signal(name=f"{prefix}{j}_dead"),
                    Signal(abits[j], name=f"{prefix}{j}_addr"))
        r = [stage("r", j) for j in range(l)]
        q = [stage("q", j) for j in range(l)]
        busy = Cat(*[s[0] for s in r + q]).any()

        m.submodules.lanes = lanes = CimLaneAlign(l=l, hash_width=self._hw, internal_skew=self._internal_skew)
        wiring.connect(m, wiring.flipped(self.i), lanes.i)
        out_space = ~self.o.valid | self.o.ready
        m.d.comb += [lanes.can_step.eq(out_space & ~sweeping & ~self.clear), lanes.busy.eq(busy)]
        step = lanes.step
        with m.If(lanes.lane_error):
            m.d.sync += protocol_error.eq(1)

        for j, (mem, dec) in enumerate(zip(mems, decs, strict=True)):
            sweep_in_range = (Const(1) if self._depths[j] == self.sweep_cycles
                              else sweep_addr < Const(self._depths[j], unsigned(len(sweep_addr))))
            # q{j}_hit / q{j}_ptr: named here, where formal/invariants.cim_bypass looks for them
            hit, ptr = Signal(name=f"q{j}_hit"), Signal(len(dec.ptr), name=f"q{j}_ptr")
            m.d.comb += [
                dec.step.eq(step), dec.sweeping.eq(sweeping), dec.clear.eq(self.clear),
                dec.restart.eq(self.clear & idle), dec.run_epoch.eq(epoch),
                dec.q_valid.eq(q[j][0]), dec.q_dead.eq(q[j][1]), dec.q_addr.eq(q[j][2]), dec.r_addr.eq(r[j][2]),
                dec.entry.eq(mem.r_data), dec.sweep_addr.eq(sweep_addr[: abits[j]]), dec.sweep_en.eq(sweep_in_range),
                mem.w_addr.eq(dec.w_addr), mem.w_data.eq(dec.w_data), mem.w_en.eq(dec.w_en),
                hit.eq(dec.hit), ptr.eq(dec.ptr),
            ]
            with m.If(step & dec.refuse):
                m.d.sync += overflow.eq(1)

            # Read port: the token entering layer j this step (new token for j = 0).
            addr = Signal(abits[j], name=f"r{j}_rd_addr")
            hj = lanes.hash[j].as_unsigned()
            m.d.comb += addr.eq(hj if j == 0 else Cat(hj, decs[j - 1].child))
            # read issued with step; its word enters the entry register at the next step (r -> q); a
            # read of the word written at the same step is never used (the decoder's bypass covers it)
            m.d.comb += [mem.r_addr.eq(addr), mem.r_en.eq(step), mem.r_data_en.eq(step)]
            rv, rdd, ra = r[j]
            with m.If(step):
                m.d.sync += [q[j][0].eq(rv), q[j][1].eq(rdd), q[j][2].eq(ra), ra.eq(addr)]
                if j == 0:
                    m.d.sync += [rv.eq(lanes.lane0_valid), rdd.eq(tok_count == self._n_max)]
                    with m.If(lanes.lane0_valid):
                        with m.If(tok_count == self._n_max):
                            m.d.sync += overflow.eq(1)
                        with m.Else():
                            m.d.sync += tok_count.eq(tok_count + 1)
                else:
                    m.d.sync += [rv.eq(q[j - 1][0]), rdd.eq(decs[j - 1].dead)]

        # Leaf layer resolved: the cluster index (or "no cluster") leaves on the output stream.
        with m.If(step & q[l - 1][0]):
            m.d.sync += [self.o.valid.eq(1),
                         self.o.payload.eq(Mux(decs[-1].dead, self._k_max, decs[-1].child))]
        with m.Elif(self.o.ready):
            m.d.sync += self.o.valid.eq(0)

        # Sweep (after reset, and when the epoch counter wraps).
        with m.If(sweeping):
            m.d.sync += sweep_addr.eq(sweep_addr + 1)
            with m.If(sweep_addr == self.sweep_cycles - 1):
                m.d.sync += [sweeping.eq(0), sweep_addr.eq(0)]

        m.d.comb += idle.eq(~sweeping & ~busy & ~self.o.valid & ~lanes.awaiting)
        with m.If(self.clear):
            with m.If(idle):   # a new run (the decoders zero their allocation counters)
                m.d.sync += [tok_count.eq(0), overflow.eq(0)]
                with m.If(epoch == (1 << E) - 1):
                    m.d.sync += [epoch.eq(1), sweeping.eq(1)]
                with m.Else():
                    m.d.sync += epoch.eq(epoch + 1)
            with m.Else():
                m.d.sync += protocol_error.eq(1)

        m.d.comb += [
            self.idle.eq(idle),
            self.n_clusters.eq(decs[-1].alloc),
            self.n_tokens.eq(tok_count),
            self.overflow.eq(overflow),
            self.protocol_error.eq(protocol_error),
        ]
        return m


# ---- registry ---------------------------------------------------------------------------------------

def _validate(p: dict) -> None:
    if p["nodes_per_layer"] > p["k_max"]:
        raise ParamError(f"parameter nodes_per_layer={p['nodes_per_layer']} out of range: expected "
                         f"<= k_max={p['k_max']} (0 means k_max)")
    depth = max(1, min(p["nodes_per_layer"] or p["k_max"], 1 << (p["hash_width"] * (p["l"] - 1))))
    if depth << p["hash_width"] > 1 << 20:
        raise ParamError(f"parameter hash_width={p['hash_width']} out of range: a layer memory would have "
                         f"{depth << p['hash_width']} entries (> 2**20); reduce hash_width or nodes_per_layer")


def _build(*, l, hash_width, n_max, k_max, nodes_per_layer, epoch_bits, internal_skew):
    return ClusterIndexModule(l=l, hash_width=hash_width, n_max=n_max,
                              k_max=k_max, nodes_per_layer=nodes_per_layer,
                              epoch_bits=epoch_bits, internal_skew=internal_skew)


BLOCKS = [
    BlockSpec(
        name="cim",
        description="CTA cluster index module: l cluster-tree threads, one memory per layer, bypass",
        params=(
            Param("l", 6, "hash code length l (threads, layer memories)", min=1, max=16),
            Param("hash_width", 4, "hash value width (signed)", min=1, max=12),
            Param("n_max", 512, "tokens per run", min=1, max=1 << 16),
            Param("k_max", 256, "cluster indices (leaves)", min=1, max=1 << 16),
            Param("nodes_per_layer", 0, "internal nodes per layer (0: k_max)", min=0, max=1 << 16),
            Param("internal_skew", False, "input beats carry whole codes (deskewed SA results); skew inside",
                  kind=bool),
            Param("epoch_bits", 3, "run epoch bits (memories are swept every 2**epoch_bits-1 runs)", min=1, max=8),
        ),
        build=_build,
        cocotb_module="sim.tb_cim",
        validate=_validate,
        fpga_params={"l": 6, "hash_width": 4, "n_max": 512, "k_max": 128},
    ),
]

