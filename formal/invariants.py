"""Block invariants stated on the ports only (end to end), for :func:`formal.harness.check`.

``cag_counts`` — the CAG run register never double-counts or loses a token: for a watched
cluster ``watch`` (a free constant of the proof, so every cluster index is covered), the
``count`` of the output beat for ``watch`` equals the number of accepted input beats with index
``watch`` in the run (up to and including its ``last`` beat; the output beats of a run leave
before the first beat of the next run is accepted). Back-to-back tokens of one cluster go
through the run register, the patterns a, b, a through the write-back forwarding, so both
paths are in the property. ``n_max`` must exceed the depth, so that no token is refused
for the token budget. With the faults ``no_forward`` or ``no_run_register`` (:mod:`hdl.faults`, the ablations of
``hdl.cag``) the property fails.

``pag_updates`` — the PAG merge and write-back forwarding never lose (or double) an update: with
every CS score assumed 0 (so each token's ``e = exp(0 + 0)`` is exactly 1.0 and ``AP`` counts
tokens), for a watched CT1 cluster ``watch`` (a free constant) the ``ap[0]`` of the output beat of
column ``watch`` equals 1.0 times the tokens of the batch with ``ct1 == watch`` (both slots of a
beat, the second only while the batch has tokens left). Pairs x1 == x3 in one beat go through the
merge unit, the same cluster on consecutive beats through the forwarding, so both are in the
property; the faults ``no_merge`` / ``no_forward`` (the ablations of ``hdl.pag``) fail it.

``cim_bypass`` — a CIM token never reads a stale node: in every layer ``j``, for a watched
address ``watch<j>`` of memory ``j`` (free constants, so every address is covered), a shadow
register follows the memory's write port (sweep and allocations; reset does not clear a memory,
so neither is the shadow, and both start at zero) and, whenever a live token (``q<j>_valid`` and
not dead) is resolved at that address, the node it uses (``q<j>_hit``, ``q<j>_ptr``: the
registered memory word or one of the two bypassed allocations) equals the shadow: the entry is
valid exactly when the shadow's epoch is the current run's, and then its child pointer is the
shadow's (the source keeps the CIM protocol: ``protocol_error`` stays low). These are internal
signals of ``hdl.cim`` (found by name in the elaborated fragment).
The fault ``no_bypass`` (the ablation: the word read before an earlier token's write landed) fails it:
two tokens in a row with the same hash value at layer 0 already see it."""

from __future__ import annotations

from amaranth.hdl import Assert, Assume, Cover, Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring

from .harness import HarnessEnv, register_chain

__all__ = ["cag_counts", "cag_counts_free", "cim_bypass", "cim_bypass_free", "latte_cover_run", "latte_output",
           "latte_output_pinned", "pag_updates", "pag_updates_free"]


def cag_counts_free(dut: wiring.Component) -> dict[str, object]:
    """The free constant of :func:`cag_counts`: one cluster index."""
    return {"watch": unsigned(len(dut.i.payload.index))}


def cag_counts(m: Module, dut: wiring.Component, env: HarnessEnv) -> None:
    watch = env.free["watch"]
    i, o = dut.i, dut.o
    m.d.comb += Assume(watch < dut._k_max, "watch is a cluster index")
    width = len(o.payload.count) + 1
    seen = Signal(width)       # accepted beats of the watched cluster in the current run
    run_count = Signal(width)  # the same for the last finished run (its outputs follow it)
    with m.If(i.valid & i.ready):
        hit = i.payload.index == watch
        with m.If(i.payload.last):
            m.d.sync += [run_count.eq(seen + hit), seen.eq(0)]
        with m.Elif(hit):
            m.d.sync += seen.eq(seen + 1)
    watched_out = env.running & o.valid & (o.payload.index == watch)
    with m.If(watched_out):
        m.d.comb += Assert(o.payload.count == run_count, "cag: count of the watched cluster is its tokens in the run")
    # reachability: an output with a count built by the run register and/or the forwarding
    m.d.comb += Cover(watched_out & (o.payload.count >= 3), "cover o: count >= 3")


def pag_updates_free(dut: wiring.Component) -> dict[str, object]:
    """The free constant of :func:`pag_updates`: one CT1 cluster index."""
    return {"watch": unsigned(dut.ct1_bits)}


def pag_updates(m: Module, dut: wiring.Component, env: HarnessEnv) -> None:
    watch = env.free["watch"]
    cs, ct, ap = dut.cs, dut.ct, dut.ap
    m.d.comb += [Assume(watch < dut.k1, "watch is a CT1 cluster of the batch"),
                 Assume(~dut.config_error, "a valid configuration")]
    with m.If(cs.valid):
        m.d.comb += Assume(cs.payload.as_value() == 0, "every CS score is 0: each token adds exp(0) = 1.0")
    one = 1 << dut.exp_spec.out_fmt.frac
    width = len(dut.n) + 1
    tokens = Signal(width)     # tokens accepted in the current batch
    seen = Signal(width)       # of them with ct1 == watch
    batch_count = Signal(width)  # the same for the last complete batch (its AP beats follow it)
    beat = Signal(len(dut.k1) + len(dut.k2) + 1)  # AP beat (column) of the readout
    with m.If(ct.valid & ct.ready):
        two = tokens + 1 < dut.n
        m.d.comb += [Assume((ct.payload.ct1[0] < dut.k1) & (ct.payload.ct2[0] < dut.k2), "CT indices in range"),
                     Assume(~two | ((ct.payload.ct1[1] < dut.k1) & (ct.payload.ct2[1] < dut.k2)), "CT indices ok")]
        hits = (ct.payload.ct1[0] == watch) + (two & (ct.payload.ct1[1] == watch))
        taken = tokens + 1 + two
        with m.If(taken >= dut.n):
            m.d.sync += [batch_count.eq(seen + hits), seen.eq(0), tokens.eq(0)]
        with m.Else():
            m.d.sync += [seen.eq(seen + hits), tokens.eq(taken)]
    with m.If(ap.valid & ap.ready):
        m.d.sync += beat.eq(Mux(ap.payload.last, 0, beat + 1))
    watched_out = env.running & ap.valid & (beat == watch)
    with m.If(watched_out):
        m.d.comb += Assert(ap.payload.ap[0] == batch_count * one,
                           "pag: AP of the watched cluster is 1.0 per token of the batch")
    m.d.comb += Cover(watched_out & (batch_count >= 2), "cover ap: watched AP of 2 or more tokens")


def cim_bypass_free(dut: wiring.Component) -> dict[str, object]:
    """The free constants of :func:`cim_bypass`: one address per layer memory."""
    return {f"watch{j}": unsigned(max(1, (depth - 1).bit_length())) for j, depth in enumerate(dut.layer_depths)}


def _memory_write_port(env: HarnessEnv, name: str):
    """The (only) write port of the dut's memory submodule ``name`` (its ``MemoryInstance`` may sit
    one level down, under ``lib.memory.Memory``'s own fragment)."""
    assert env.fragment is not None
    todo = [sub for sub, sub_name, _ in env.fragment.subfragments if sub_name == name]
    while todo:
        frag = todo.pop()
        if hasattr(frag, "_write_ports"):
            (port,) = frag._write_ports  # one write port per layer memory (hdl.cim)
            return port
        todo += [sub for sub, _, _ in frag.subfragments]
    raise LookupError(f"no memory {name!r} in the dut")


def cim_bypass(m: Module, dut: wiring.Component, env: HarnessEnv) -> None:
    epoch = env.signal("epoch")
    # the documented contract: clear only while idle, each lane continues its token (a violation
    # raises the sticky protocol_error; clear while busy also drops the bypass registers)
    m.d.comb += Assume(~dut.protocol_error, "cim: the source keeps the protocol")
    for j, depth in enumerate(dut.layer_depths):
        watch = env.free[f"watch{j}"]
        m.d.comb += Assume(watch < depth, f"watch{j} is an address of memory {j}")
        port = _memory_write_port(env, f"layer{j}")
        shadow = Signal(len(port._data), name=f"shadow{j}", reset_less=True)  # memory init: zeros
        with m.If(port._en.any() & (port._addr == watch)):
            m.d.sync += shadow.eq(port._data)
        ptr = env.signal(f"q{j}_ptr")
        sh_ptr, sh_epoch = shadow[:len(ptr)], shadow[len(ptr):]  # entry layout {ptr, epoch}
        hit = env.signal(f"q{j}_hit")
        live = (env.running & env.signal(f"q{j}_valid") & ~env.signal(f"q{j}_dead")
                & (env.signal(f"q{j}_addr") == watch))
        with m.If(live):
            m.d.comb += [Assert(hit == (sh_epoch == epoch), f"cim layer {j}: node valid flag is stale"),
                         Assert(~hit | (ptr == sh_ptr), f"cim layer {j}: child pointer is stale")]
        if j == 0:
            # reachability: a token resolved at an address written in this run (the bypass cases)
            m.d.comb += Cover(live & hit, "cover q0: token uses a node of this run")


def _fsm_state(state: Signal, name: str) -> int:
    """The encoding of state ``name`` of an ``m.FSM`` state signal (its decoder gives ``NAME/n``)."""
    for value in range(1 << len(state)):
        if state.decoder(value).split("/")[0] == name:
            return value
    raise LookupError(f"FSM {state.name!r} has no state {name!r}")


def latte_output(m: Module, dut: wiring.Component, env: HarnessEnv) -> None:
    """Helper invariants that make LATTE's ``o`` rules inductive (asserted, so proved with them).

    ``o.valid`` is the last flip-flop of the Normalizer's valid pipe (found by
    :func:`formal.harness.register_chain`, fed by the back FSM's ``n_issue``); the pipe, the
    output payload registers and the valid pipe all advance only with ``en = ~(o.valid & ~o.ready)``,
    so a waiting beat keeps its data. The one payload field outside the pipe, ``kept`` (the back
    end's ``kept_b``), is rewritten only when the back FSM hands over a row, in state IDLE. The
    invariant: outside NORM nothing is issued or in the pipe; in NORM the beats sent (``o_cnt``),
    in the pipe and still to issue (``C - n_c`` while ``n_issue``) add up to the row's ``C``
    chunks, so the back FSM leaves NORM (after the C-th transfer) with an empty pipe and ``o.valid``
    implies NORM. Without it, k-induction starts from a frozen (stalled) beat with the back FSM
    idle and never closes."""
    from hdl.softmax_pv import Normalizer

    assert env.fragment is not None
    pipe, head = register_chain(env.fragment, dut.o.valid)
    if head.name != "n_issue" or len(pipe) != Normalizer.LATENCY:
        raise LookupError(f"latte: o.valid is not the {Normalizer.LATENCY}-register pipe from n_issue "
                          f"(found {len(pipe)} registers from {head.name!r})")
    chunks = dut.chunks
    state = env.signal("back_state", deep=True)
    in_norm = state == _fsm_state(state, "NORM")
    n_c, o_cnt = env.signal("n_c", deep=True), env.signal("o_cnt", deep=True)
    width = (2 * chunks + len(pipe)).bit_length() + 1
    in_pipe = Signal(width, name="latte_in_pipe")
    to_issue = Signal(signed(width + 1), name="latte_to_issue")
    m.d.comb += [in_pipe.eq(sum(pipe)), to_issue.eq(Mux(head, chunks - n_c, 0))]
    with m.If(in_norm):
        m.d.comb += [Assert((o_cnt < chunks) & (n_c < chunks), "latte invariant: chunk counters in range"),
                     Assert(o_cnt + in_pipe + to_issue == chunks,
                            "latte invariant: beats sent + in the pipe + to issue = chunks")]
    with m.Else():
        m.d.comb += Assert(~head & (in_pipe == 0), "latte invariant: nothing in the output pipe outside NORM")


def latte_cover_run(m: Module, dut: wiring.Component, env: HarnessEnv) -> None:
    """Pinned inputs for a LATTE run to its first output beat (never for the proof): no reset after
    the first cycle, one key, one query row, zero data, sources always valid (only ``o.ready`` is
    free). The first output beat leaves ~57 cycles after reset (golden.latte_cycles); a search
    with free inputs does not get there in minutes. Used by the bmc of the mutant
    ``latte_no_stall`` (:func:`latte_output_pinned`) and by a cover run of the ``latte`` job."""
    first = Signal(init=1, reset_less=True)
    m.d.sync += first.eq(0)
    m.d.comb += Assume(first | ~env.reset, "pinned (cover run): reset only in the first cycle")
    m.d.comb += [Assume(dut.n_keys == 1, "pinned (cover run): one key"),
                 Assume(dut.n_queries == 1, "pinned (cover run): one query"),
                 Assume(dut.tau == 0, "pinned (cover run): tau 0"),
                 Assume(dut.scale_mant == 0, "pinned (cover run): scale 0"),
                 Assume(dut.scale_shift == 0, "pinned (cover run): scale 0")]
    for port in (dut.q, dut.k, dut.v):
        m.d.comb += Assume(port.payload.as_value() == 0, "pinned (cover run): zero data")
        with m.If(env.running):
            m.d.comb += Assume(port.valid, "pinned (cover run): sources always valid")


def latte_output_pinned(m: Module, dut: wiring.Component, env: HarnessEnv) -> None:
    """:func:`latte_output` on the pinned run of :func:`latte_cover_run`: the bmc of the LATTE
    mutant (a search with free inputs does not reach the first output beat, step 57, in minutes)."""
    latte_output(m, dut, env)
    latte_cover_run(m, dut, env)
