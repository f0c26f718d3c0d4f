# amaranth: UnusedElaboratable=no
"""The Amaranth PAG driver ``sim.bench_pag.simulate_pag`` (the shared stream harness, the cocotb
testbench's script): every wait is bounded and a stuck stream fails naming what was awaited, a lost
AP beat or a shifted golden value fails at that beat (deliberately broken PAG wrappers), a correct
PAG passes."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.hdl import Module, Signal
from amaranth.lib import wiring

from hdl.pag import ProbabilityAggregation, pag_formats_from_params
from hdl.registry import get_block
from sim.bench_pag import default_wait_cycles, golden_of, random_batch, simulate_pag


def _pag() -> ProbabilityAggregation:
    params = get_block("pag").resolve({"b": 2, "k1_max": 4, "k2_max": 3, "n_max": 8})
    cs_fmt, exp_spec, ap_fmt = pag_formats_from_params(**params)
    return ProbabilityAggregation(b=params["b"], k1_max=params["k1_max"], k2_max=params["k2_max"],
                                  n_max=params["n_max"], cs_fmt=cs_fmt, exp_spec=exp_spec, ap_fmt=ap_fmt)


#: what the driver (sim.tb_pag.run_pag_batches) and golden_of read from a PAG besides its ports
_CONSTANTS = ("ct1_bits", "ct2_bits", "READOUT_LATENCY", "k1_max", "k2_max", "n_max", "b", "cs_fmt", "exp_spec",
              "ap_fmt")


class _Stuck(wiring.Component):
    """A PAG with one handshake signal (``cs.ready``, ``ct.ready`` or ``ap.valid``) tied to 0 on the
    outside, and its partner (``valid`` / ``ready``) tied to 0 on the inside, so no beat passes."""

    def __init__(self, pag: ProbabilityAggregation, stuck: str) -> None:
        self._pag, self._stuck = pag, stuck
        for name in _CONSTANTS:
            setattr(self, name, getattr(pag, name))
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
    # ct waits for the CS load, so its source times out first: the message names cs as outstanding
    ("cs.ready", r"ct\.ready low for 300 cycles \(beat 1 of 4, cycle 299\); also outstanding: cs: 0 of 5 beats"),
    ("ct.ready", r"ct\.ready low for 300 cycles \(beat 1 of 4, cycle 299\)"),
    ("ap.valid", r"waited 300 cycles for ap beats item 1 \(expected 12, got 0; cycle 299\)"),
])
def test_stuck_stream_fails_naming_the_wait(stuck, message):
    dut = _pag()
    with pytest.raises(AssertionError, match="timeout: " + message):
        simulate_pag(_Stuck(dut, stuck), _batches(dut), p_in=0.2, p_out=0.2, wait_cycles=300)


class _DropAp(wiring.Component):
    """A PAG whose AP beat ``index`` (counted from reset) is lost: hidden outside, taken inside."""

    def __init__(self, pag: ProbabilityAggregation, index: int) -> None:
        self._pag, self._index = pag, index
        for name in _CONSTANTS:
            setattr(self, name, getattr(pag, name))
        super().__init__(pag.signature)

    def elaborate(self, platform):
        m = Module()
        m.submodules.pag = pag = self._pag
        wiring.connect(m, wiring.flipped(self.cs), pag.cs)
        wiring.connect(m, wiring.flipped(self.ct), pag.ct)
        for name in ("k1", "k2", "n"):
            m.d.comb += getattr(pag, name).eq(getattr(self, name))
        for name in ("add_overflow", "exp_overflow", "ap_overflow", "index_error"):
            m.d.comb += getattr(self, name).eq(getattr(pag, name))
        beats = Signal(range(64))
        drop = beats == self._index
        m.d.comb += [self.ap.payload.eq(pag.ap.payload), self.ap.valid.eq(pag.ap.valid & ~drop),
                     pag.ap.ready.eq(self.ap.ready | drop)]
        with m.If(pag.ap.valid & pag.ap.ready):
            m.d.sync += beats.eq(beats + 1)
        return m


@pytest.mark.parametrize("index,message", [
    (2, r"ap beats: mismatch at index 2: got \{'ap': \[.*\], 'last': 0\}, expected"),
    (11, r"timeout: waited 300 cycles for ap beats item 12 \(expected 12, got 11"),
])
def test_dropped_ap_beat_fails(index, message):
    """The DUT loses one AP beat: the next one fails its compare, or the last one is missed."""
    dut = _pag()
    with pytest.raises(AssertionError, match=message):
        simulate_pag(_DropAp(dut, index), _batches(dut), p_in=0.2, p_out=0.2, wait_cycles=300)


def test_shifted_golden_value_fails_at_its_beat(monkeypatch):
    """One golden AP value shifted by one LSB fails at that beat (``==``, not a tolerance)."""
    import sim.tb_pag

    real = sim.tb_pag.golden_of

    def shifted(comp, batch):
        want = real(comp, batch)
        want.ap[0, 1] += 1
        return want

    monkeypatch.setattr(sim.tb_pag, "golden_of", shifted)
    dut = _pag()
    with pytest.raises(AssertionError, match=r"ap beats: mismatch at index 1: "):
        simulate_pag(dut, _batches(dut), p_in=0.2, p_out=0.2, seed=3)


def test_wait_cycles_must_be_positive():
    dut = _pag()
    with pytest.raises(ValueError, match="wait_cycles"):
        simulate_pag(dut, _batches(dut), wait_cycles=0)
