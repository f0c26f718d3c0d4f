"""Deliberate design faults, for the tests that must see a broken design fail.

A test that claims to catch a bug has to be shown catching it: the PAG merge unit removed, the
CIM write bypass removed, the CAG run register or its forwarding removed. Those broken variants are
built through this one mechanism, never through constructor parameters, ports or registry
parameters, so that nothing test-only reaches a block's interface, ``attn-rtl generate`` or the
generated Verilog:

- a block that can be broken lists its faults in a class attribute ``FAULTS`` (name -> what the
  fault removes) and reads the ones in force with :func:`active` when it is constructed;
- a test builds the broken variant inside :func:`injected`::

      with faults.injected(ClusterIndexModule, "no_bypass"):
          dut = ClusterIndexModule(...)

Outside the ``with`` block the same class builds the correct design. Unknown fault names are an
error, so that a renamed fault cannot silently turn a deliberate-break test into a plain one.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from types import MappingProxyType

__all__ = ["active", "injected"]

_IN_FORCE: ContextVar[Mapping[type, frozenset[str]]] = ContextVar("attn_rtl_faults",
                                                                default=MappingProxyType({}))


def _known(cls: type) -> Mapping[str, str]:
    known = getattr(cls, "FAULTS", None)
    if not isinstance(known, Mapping) or not known:
        raise TypeError(f"{cls.__name__} declares no FAULTS: it cannot be built with a deliberate fault")
    return known


@contextmanager
def injected(cls: type, *names: str) -> Iterator[None]:
    """Within the block, instances of ``cls`` are built with the faults ``names`` (none: correct)."""
    known = _known(cls)
    unknown = sorted(set(names) - set(known))
    if unknown:
        raise ValueError(f"{cls.__name__} has no fault {', '.join(map(repr, unknown))}; "
                         f"its faults: {', '.join(sorted(known))}")
    token = _IN_FORCE.set({**_IN_FORCE.get(), cls: frozenset(names)})
    try:
        yield
    finally:
        _IN_FORCE.reset(token)


def active(component: object) -> frozenset[str]:
    """The faults in force for ``component``'s class (read once, in its constructor)."""
    cls = type(component)
    _known(cls)
    return _IN_FORCE.get().get(cls, frozenset())
