# amaranth: UnusedElaboratable=no
"""hdl.faults: the one way to build a deliberately broken block (see its module docstring)."""

from __future__ import annotations

import pytest

from hdl import faults
from hdl.cag import CentroidAggregator
from hdl.cim import ClusterIndexModule
from hdl.latte import Latte
from hdl.pag import ProbabilityAggregation
from hdl.registry import blocks


def test_faults_hold_only_inside_the_block_and_only_for_their_class() -> None:
    with faults.injected(CentroidAggregator, "no_forward"):
        broken = CentroidAggregator(d=2, k_max=8, n_max=32)
        assert faults.active(broken) == {"no_forward"}
        other = ClusterIndexModule(l=3, hash_width=2, n_max=16, k_max=16)
    correct = CentroidAggregator(d=2, k_max=8, n_max=32)
    assert faults.active(correct) == frozenset()
    # read once at construction: the broken instance stays broken outside the block
    assert correct._forward and correct._run_register and not broken._forward and broken._run_register
    assert other._bypass


def test_unknown_fault_and_class_without_faults_are_errors() -> None:
    with pytest.raises(ValueError, match="ProbabilityAggregation has no fault .merge.; its faults: no_forward, no_m"):
        with faults.injected(ProbabilityAggregation, "merge"):
            pass
    with pytest.raises(TypeError, match="declares no FAULTS"):
        with faults.injected(int, "x"):
            pass


def test_no_block_parameter_or_constructor_argument_is_a_fault_switch() -> None:
    """Faults never reach the registry (hence never `generate` or the Verilog interface)."""
    for name, spec in blocks().items():
        for p in spec.params:
            assert not p.name.startswith("_") and "fault" not in p.name, (name, p.name)
    import inspect

    for cls in (CentroidAggregator, ClusterIndexModule, ProbabilityAggregation, Latte):
        params = inspect.signature(cls.__init__).parameters
        assert not [n for n in params if n.startswith("_") or "fault" in n], cls


def test_latte_fault_reaches_the_back_engine_built_later() -> None:
    """LATTE builds its back engine on first use: the fault in force at construction reaches it."""
    with faults.injected(Latte, "no_stall"):
        broken = Latte(n_max=4, d_h=4, lanes=2)
    correct = Latte(n_max=4, d_h=4, lanes=2)
    assert not broken.back._stall and correct.back._stall
