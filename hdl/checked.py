"""Parameter checks that run before a component exists.

Amaranth warns about every elaboratable that is created and never elaborated. A component whose
constructor rejects its parameters would leave such an object behind, and an error would come
with a misleading warning. :class:`CheckedComponent` runs the class's :meth:`check_params` in
``__new__``, before the object is created, so a rejected configuration creates nothing (and no
Amaranth private state has to be touched to silence the warning).
"""

from __future__ import annotations

import inspect
from typing import Any

from amaranth.lib import wiring

__all__ = ["CheckedComponent", "check_int", "check_positive_ints"]


class CheckedComponent(wiring.Component):
    """A :class:`wiring.Component` whose constructor arguments are checked before creation.

    Subclasses override :meth:`check_params`; it receives every ``__init__`` argument by name
    (defaults filled in) and raises ``TypeError`` / ``ValueError`` naming the bad parameter.
    ``__init__`` may then assume valid parameters.
    """

    def __new__(cls, *args: Any, src_loc_at: int = 0, **kwargs: Any) -> CheckedComponent:
        bound = inspect.signature(cls.__init__).bind(None, *args, **kwargs)  # unknown names: TypeError
        bound.apply_defaults()
        params = dict(bound.arguments)
        params.pop(next(iter(params)))  # self
        cls.check_params(**params)
        return super().__new__(cls, *args, src_loc_at=src_loc_at + 1, **kwargs)

    @classmethod
    def check_params(cls, **params: Any) -> None:
        """Raise ``TypeError`` / ``ValueError`` naming the first bad parameter (default: accept)."""


def check_int(name: str, value: object, lo: int = 1, hi: int | None = None) -> int:
    """``value`` if it is an integer in [lo, hi] (``hi=None``: no upper bound); otherwise
    ``TypeError`` (not an integer; ``bool`` is refused) or ``ValueError``, naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an integer, not {value!r}")
    if value < lo or (hi is not None and value > hi):
        expected = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
        raise ValueError(f"{name}={value} out of range: expected an integer {expected}")
    return value


def check_positive_ints(**values: object) -> None:
    """:func:`check_int` with lower bound 1 for every keyword, in order."""
    for name, value in values.items():
        check_int(name, value)
