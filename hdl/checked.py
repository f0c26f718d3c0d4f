"""Parameter checks that run before a component exists.

Amaranth warns about every elaboratable that is created and never elaborated. A component whose
constructor rejects its parameters would leave such an object behind, and an error would come
with a misleading warning. :class:`CheckedComponent` runs the class's :meth:`check_params` in
``__new__``, before the object is created, so a rejected configuration creates nothing (and no
Amaranth private state has to be touched to silence the warning).
"""

from __future__ import annotations

import atexit
import gc
import inspect
import re
import warnings
from typing import Any, Generic, TypeVar, overload

from amaranth.hdl import UnusedElaboratable
from amaranth.lib import wiring

__all__ = ["CheckedComponent", "ReadOnlyParam", "check_int", "check_positive_ints", "inspect_only"]


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


_T = TypeVar("_T")
_INSPECTED: list[Any] = []


class ReadOnlyParam(Generic[_T]):
    """Class attribute ``name = ReadOnlyParam[T]()``: the read-only value of ``self._name``, a
    constructor parameter (one line instead of a three-line ``@property`` per parameter).
    Assigning to it raises ``AttributeError`` like a property without a setter."""

    def __set_name__(self, owner: type, name: str) -> None:
        self._name, self._attr = name, f"_{name}"

    @overload
    def __get__(self, obj: None, owner: type | None = None) -> ReadOnlyParam[_T]: ...

    @overload
    def __get__(self, obj: object, owner: type | None = None) -> _T: ...

    def __get__(self, obj: object | None, owner: type | None = None) -> _T | ReadOnlyParam[_T]:
        if obj is None:
            return self
        return getattr(obj, self._attr)

    def __set__(self, obj: object, value: object) -> None:
        raise AttributeError(f"{self._name} is a read-only parameter")


def inspect_only(component: _T) -> _T:
    """``component``, built only to read its layouts or constants and never elaborated: Amaranth's
    "created but never used" warning is filtered for this one object (a ``warnings`` filter on its
    own repr), wherever it was created (a registry ``build`` creates it in the block's module, so
    the per-file linter line of the caller would not apply)."""
    _INSPECTED.append(component)  # kept alive: a test runner may reset the filters before it is collected
    _ignore_unused(component)
    return component


def _ignore_unused(component: Any) -> None:
    warnings.filterwarnings("ignore", message=re.escape(f"{component!r} created but never used"),
                            category=UnusedElaboratable)


@atexit.register
def _before_teardown() -> None:
    # a test runner may have restored its filters: set them again, then let the objects go here,
    # while ``warnings`` is intact (later, module teardown can collect them with its filters gone);
    # callers that cache an inspected object hold it weakly
    for component in _INSPECTED:
        _ignore_unused(component)
    _INSPECTED.clear()
    gc.collect()
