"""Block invariants stated on the ports only (end to end), for :func:`formal.harness.check`.

``cag_counts`` — the CAG run register never double-counts or loses a token: for a watched
cluster ``watch`` (a free constant of the proof, so every cluster index is covered), the
``count`` of the output beat for ``watch`` equals the number of accepted input beats with index
``watch`` in the run (up to and including its ``last`` beat; the output beats of a run leave
before the first beat of the next run is accepted). Back-to-back tokens of one cluster go
through the run register, the patterns a, b, a through the write-back forwarding, so both
paths are in the property. ``max_tokens`` must exceed the depth, so that no token is refused
for the token budget. With ``_forward=False`` or ``_run_register=False`` (the ablations of
``hdl.cag``) the property fails."""

from __future__ import annotations

from amaranth.hdl import Assert, Assume, Cover, Module, Signal, unsigned
from amaranth.lib import wiring

from .harness import HarnessEnv

__all__ = ["cag_counts", "cag_counts_free"]


def cag_counts_free(dut: wiring.Component) -> dict[str, object]:
    """The free constant of :func:`cag_counts`: one cluster index."""
    return {"watch": unsigned(len(dut.i.payload.index))}


def cag_counts(m: Module, dut: wiring.Component, env: HarnessEnv) -> None:
    watch = env.free["watch"]
    i, o = dut.i, dut.o
    m.d.comb += Assume(watch < dut._max_clusters, "watch is a cluster index")
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
