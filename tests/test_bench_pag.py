# amaranth: UnusedElaboratable=no
"""The Amaranth PAG driver ``sim.bench_pag.simulate_pag``: every wait is bounded and a stuck stream
fails naming what was awaited (deliberately broken PAG wrappers), a correct PAG passes."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.hdl import Module
from amaranth.lib import wiring

from hdl.pag import ProbabilityAggregation, pag_formats_from_params
from hdl.registry import get_block
from sim.bench_pag import default_wait_cycles, golden_of, random_batch, simulate_pag


def _pag() -> ProbabilityAggregation:
    params = get_block("pag").resolve({"b": 2, "k1_max": 4, "k2_max": 3, "n_max": 8})
    cs_fmt, exp_spec, ap_fmt = pag_formats_from_params(**params)
    return ProbabilityAggregation(b=params["b"], k1_max=params["k1_max"], k2_max=params["k2_max"],
                                  n_max=params["n_max"], cs_fmt=cs_fmt, exp_spec=exp_spec, ap_fmt=ap_fmt)


class _Stuck(wiring.Component):
    """A PAG with one handshake signal (``cs.ready``, ``ct.ready`` or ``ap.valid``) tied to 0 on the
    outside, and its partner (``valid`` / ``ready``) tied to 0 on the inside, so no beat passes."""

    def __init__(self, pag: ProbabilityAggregation, stuck: str) -> None:
        self._pag, self._stuck = pag, stuck
        self.ct1_bits, self.ct2_bits = pag.ct1_bits, pag.ct2_bits
        self.READOUT_LATENCY = pag.READOUT_LATENCY
        super().__init__(pag.signature)

    def elaborate(self, platform):
        m = Module()
        m.submodules.pag = pag = self._pag
        port, sig = self._stuck.split(".")
        partner = f"{port}.{'valid' if sig == 'ready' else 'ready'}"
        for name, member in self.signature.members.items():
            ours, theirs = getattr(self, name), getattr(pag, name)
            if member.is_signature:
                for sub, sub_member in member.signature.members.items():
                    a, b = getattr(ours, sub), getattr(theirs, sub)
                    inward = sub_member.flow == wiring.In  # (an In member's signature is already flipped)
                    if f"{name}.{sub}" in (self._stuck, partner):
                        m.d.comb += (b.eq(0) if inward else a.eq(0))
                    else:
                        m.d.comb += (b.eq(a) if inward else a.eq(b))
            elif member.flow == wiring.In:
                m.d.comb += theirs.eq(ours)
            else:
                m.d.comb += ours.eq(theirs)
        return m


def _batches(dut: ProbabilityAggregation):
    rng = np.random.default_rng(5)
    return [random_batch(rng, dut, 7, 3, 2, cs_lo=-(4 << dut.cs_fmt.frac)),
            random_batch(rng, dut, 8, 4, 3, cs_lo=-(4 << dut.cs_fmt.frac))]


def test_correct_pag_within_the_default_deadlines():
    dut = _pag()
    batches = _batches(dut)
    assert default_wait_cycles(dut, batches, 0.3, 0.3) < 2_000  # a stuck wait fails in seconds
    runs = simulate_pag(dut, batches, p_in=0.3, p_out=0.3, seed=2)
    for batch, run in zip(batches, runs, strict=True):
        assert run.ap.tolist() == golden_of(dut, batch).ap.tolist()


@pytest.mark.parametrize("stuck,message", [
    ("cs.ready", "cs.ready for batch 0's CS beat 0 of 5"),
    ("ct.ready", "ct.ready for batch 0's CT beat 0 of 4"),
    ("ap.valid", "ap.valid for batch 0's AP beat 0 of 5"),
])
def test_stuck_stream_fails_naming_the_wait(stuck, message):
    dut = _pag()
    with pytest.raises(AssertionError, match="timeout: waited 300 cycles for " + message):
        simulate_pag(_Stuck(dut, stuck), _batches(dut), p_in=0.2, p_out=0.2, wait_cycles=300)


def test_wait_cycles_must_be_positive():
    dut = _pag()
    with pytest.raises(ValueError, match="wait_cycles"):
        simulate_pag(dut, _batches(dut), wait_cycles=0)
