# amaranth: UnusedElaboratable=no
"""Formal (SymbiYosys) stream-contract proofs: a fast subset of ``make formal`` and proofs that the
harness can fail (deliberately broken sources defined here)."""

import shutil
import sys
from pathlib import Path

import pytest
from amaranth.hdl import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from formal import check, stream_ports
from formal.harness import SOLVER
from formal.jobs import JOBS, MUTANTS, run_job, select
from hdl.checked import inspect_only

_BIN = Path(sys.executable).parent
pytestmark = pytest.mark.skipif(
    not (_BIN / "yowasp-sby").exists() or (shutil.which(SOLVER) is None and not (_BIN / SOLVER).exists()),
    reason=f"yowasp-sby or the {SOLVER} solver is not installed (make setup)")


class _Source(wiring.Component):
    """A counter source. ``bug="drop"`` lowers valid one cycle after raising it, ready or not;
    ``bug="payload"`` changes the payload while valid waits for ready; ``bug=None`` is correct."""

    o: Out(stream.Signature(8))

    def __init__(self, bug: str | None) -> None:
        self._bug = bug
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        count = Signal(8)
        take = self.o.valid & self.o.ready
        m.d.comb += self.o.payload.eq(count)
        if self._bug == "drop":
            m.d.sync += self.o.valid.eq(~self.o.valid)
            with m.If(take):
                m.d.sync += count.eq(count + 1)
        elif self._bug == "payload":
            m.d.sync += [self.o.valid.eq(1), count.eq(count + 1)]
        else:
            m.d.sync += self.o.valid.eq(1)
            with m.If(take):
                m.d.sync += count.eq(count + 1)
        return m


def _wire(plain_input: bool) -> wiring.Component:
    """A combinational pass-through: its output obeys the stream rules exactly when its source
    does. With ``plain_input`` the input is a plain signature (not ``lib.stream``), so the harness
    assumes nothing about it."""
    members = {"valid": Out(1), "payload": Out(8), "ready": In(1)}
    in_sig = wiring.Signature(members) if plain_input else stream.Signature(8)

    class Wire(wiring.Component):
        def __init__(self):
            super().__init__({"i": In(in_sig), "o": Out(stream.Signature(8))})

        def elaborate(self, platform):
            m = Module()
            m.d.comb += [self.o.valid.eq(self.i.valid), self.o.payload.eq(self.i.payload),
                         self.i.ready.eq(self.o.ready)]
            return m

    return Wire()


@pytest.mark.parametrize("bug,message", [("drop", "valid dropped before ready"),
                                         ("payload", "payload changed before ready")])
def test_broken_source_fails(bug, message):
    res = check(_Source(bug), f"broken_{bug}", mode="prove", depth=4, timeout=120)
    assert res.status == "FAIL", (res.status, res.detail, res.log[-2000:])
    assert f"o: {message}" in res.detail, res.detail


def test_correct_source_proves():
    res = check(_Source(None), "good_source", mode="prove", depth=4, timeout=120)
    assert res.status == "PASS", (res.status, res.detail)
    assert res.ports == [("o", "out")]


def test_input_assumptions_are_applied():
    """A pass-through proves with the input assumptions and fails from an unconstrained source."""
    res = check(_wire(False), "wire", mode="prove", depth=4, timeout=120)
    assert res.status == "PASS", (res.status, res.detail)
    assert res.ports == [("i", "in"), ("o", "out")]
    res = check(_wire(True), "wire_plain", mode="prove", depth=4, timeout=120)
    assert res.status == "FAIL", (res.status, res.detail)
    assert res.ports == [("o", "out")]


def test_stream_ports_of_blocks():
    by_name = {j.name: j for j in JOBS}
    found = {}
    for name in ("systolic_array", "pag"):
        component = inspect_only(by_name[name].component())
        found[name] = stream_ports(component)
    assert found["systolic_array"] == [("i", "in"), ("res", "valid-only"), ("out", "valid-only")]
    assert found["pag"] == [("cs", "in"), ("ct", "in"), ("ap", "out")]


@pytest.mark.parametrize("job", select(fast=True), ids=lambda j: j.name)
def test_fast_subset(job):
    res = run_job(job, timeout=120)
    assert res.status == "PASS", (res.status, res.detail)


def test_cag_count_invariant_sees_a_missing_forward():
    """The CAG count invariant (``make formal`` checks it on the real CAG to depth 20) fails on the
    ablation without write-back forwarding: the property is not vacuous."""
    job = next(j for j in MUTANTS if j.name == "cag_counts_no_forward")
    res = run_job(job, timeout=120, depth=20)  # first failure at step 19
    assert res.status == "FAIL", (res.status, res.detail)
    assert "count of the watched cluster" in res.detail


@pytest.mark.slow  # ~50 s on a loaded machine; make formal runs this mutant every time
def test_pag_update_invariant_sees_a_missing_merge():
    """The PAG no-lost-update invariant (``make formal``: bounded to depth 18 on the real PAG) fails
    on the ablation without the merge of equal clusters (first failure at step 14)."""
    job = next(j for j in MUTANTS if j.name == "pag_updates_no_merge")
    res = run_job(job, timeout=240, depth=15)
    assert res.status == "FAIL", (res.status, res.detail)
    assert "AP of the watched cluster" in res.detail


def test_find_signal_names_the_missing_signal():
    from amaranth.hdl import Fragment

    from formal.harness import find_signal

    component = next(j for j in JOBS if j.name == "cim_bypass").component()
    fragment = Fragment.get(component, None)
    assert find_signal(fragment, "q0_hit").name == "q0_hit"
    with pytest.raises(LookupError, match="no_such_signal"):
        find_signal(fragment, "no_such_signal")


def test_cim_bypass_invariant_sees_a_missing_bypass():
    """Without the write bypass (fault ``no_bypass``) a token reads a node whose allocation is still
    in flight: the invariant fails (step 7: two tokens in a row with one layer-0 hash value)."""
    job = next(j for j in MUTANTS if j.name == "cim_bypass_no_bypass")
    res = run_job(job, timeout=120, depth=9)
    assert res.status == "FAIL", (res.status, res.detail)
    assert "cim layer 0: node valid flag is stale" in res.detail


def test_cim_bypass_invariant_shallow():
    """The real CIM passes the same bounded check (``make formal`` runs it to the job's depth)."""
    job = next(j for j in JOBS if j.name == "cim_bypass")
    res = run_job(job, timeout=120, depth=9)
    assert res.status == "PASS", (res.status, res.detail)


@pytest.mark.slow
def test_cim_bypass_invariant_full_depth():
    job = next(j for j in JOBS if j.name == "cim_bypass")
    res = run_job(job, timeout=1800)
    assert res.status == "PASS", (res.status, res.detail)


def test_ready_check_sees_ready_waiting_for_valid():
    """The ready promise check (the ``ready`` job is in the fast subset) fails on a CAG whose
    ``ready`` is gated by ``valid``."""
    job = next(j for j in MUTANTS if j.name == "ready_waits_for_valid")
    res = run_job(job)
    assert res.status == "FAIL", (res.status, res.detail)
    assert "i.ready depends combinationally on i.valid" in res.detail


def test_ready_fanin_of_a_plain_pass_through():
    """The fan-in of a combinational pass-through's ready is the downstream ready (and no valid)."""
    from formal.ready import ready_fanin

    assert ready_fanin(_wire(False)) == {"i": frozenset({"o.ready"})}


def test_every_stream_block_has_a_job():
    """Each registered block with ``lib.stream`` ports (default configuration) has a stream-rule
    job or a stated reason in ``SKIPPED``."""
    from formal.jobs import SKIPPED
    from hdl.registry import blocks

    jobbed = {j.block for j in JOBS} | set(SKIPPED)
    missing = []
    for name, spec in blocks().items():
        component = inspect_only(spec.elaborate({})[0])
        if stream_ports(component) and name not in jobbed:
            missing.append(name)
    assert not missing, f"blocks with stream ports and no formal job: {missing}"


def test_latte_mutant_depth_reaches_an_output_beat():
    """The bmc of the LATTE mutant (pinned inputs: one key, one query) runs past the cycle model's
    first output beat of its configuration, so the dropped beat is inside the bound."""
    from formal.jobs import LATTE_MUTANT_DEPTH
    from golden.latte_cycles import latte_cycles_per_head

    job = next(j for j in JOBS if j.name == "latte")
    dut = inspect_only(job.component())
    first = latte_cycles_per_head(1, [1], chunks=dut.chunks, latencies=dut.cycle_latencies())
    mutant = next(j for j in MUTANTS if j.name == "latte_no_stall")
    assert mutant.depth == LATTE_MUTANT_DEPTH >= first + 2, (mutant.depth, first)


def test_latte_output_proof_sees_an_ignored_ready():
    """The LATTE o proof (k-induction with formal.invariants.latte_output, in the fast subset) does
    not go through for a LATTE whose Normalizer ignores o.ready (make formal also runs the mutant's
    bmc from reset, which FAILs at step 57)."""
    from formal.invariants import latte_output

    job = next(j for j in MUTANTS if j.name == "latte_no_stall")
    res = check(job.component(), "latte_no_stall_induction", mode="prove", depth=2, static=job.static,
                properties=latte_output, memory_map=True, timeout=120)
    assert res.status == "UNKNOWN", (res.status, res.detail)
    # the induction counterexample breaks the stream rule or the pipe-count invariant, whichever the
    # solver reports first (the mutant's bmc from reset breaks both at the same step)
    assert any(f"{what} (induction)" in res.detail for what in (
        "o: valid dropped before ready", "latte invariant: beats sent + in the pipe + to issue = chunks")), res.detail
