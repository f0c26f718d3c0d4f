"""hdl.checked: a rejected configuration raises before any object exists (no unused warning)."""

from __future__ import annotations

import gc
import warnings

import pytest
from amaranth.hdl import Fragment, Module, UnusedElaboratable
from amaranth.lib import wiring
from amaranth.lib.wiring import Out

from hdl.checked import CheckedComponent


class _Widget(CheckedComponent):
    def __init__(self, *, width: int = 4) -> None:
        self.seen = width
        super().__init__({"o": Out(width)})

    def elaborate(self, platform):
        m = Module()
        m.d.comb += self.o.eq(0)
        return m

    @classmethod
    def check_params(cls, *, width: int) -> None:
        if not isinstance(width, int) or width < 1:
            raise ValueError(f"width={width!r} must be a positive int")


class _Plain(wiring.Component):
    def __init__(self, *, width: int = 4) -> None:
        if width < 1:
            raise ValueError("width")
        super().__init__({"o": Out(width)})

    def elaborate(self, platform):
        return Module()


def _unused_warnings(make) -> list[warnings.WarningMessage]:
    # Amaranth turns the warning on when the first elaboration starts; objects other tests left
    # behind are collected first and only this file's classes count
    Fragment.get(_Widget(), None)
    gc.collect()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            make()
        except ValueError:
            pass  # leaving the except block drops the traceback and with it the frame's object
        else:
            raise AssertionError("the bad parameter was accepted")
        gc.collect()
    return [w for w in caught if issubclass(w.category, UnusedElaboratable)
            and ("_Widget" in str(w.message) or "_Plain" in str(w.message))]


def test_rejected_parameters_leave_no_unused_elaboratable():
    assert _unused_warnings(lambda: _Widget(width=0)) == []


def test_the_warning_exists_without_the_check():
    # The check above can fail: a plain component rejected in __init__ does warn.
    assert len(_unused_warnings(lambda: _Plain(width=0))) == 1


def test_defaults_are_filled_in_and_the_component_works():
    w = _Widget()
    Fragment.get(w, None)
    assert w.seen == 4 and len(w.o) == 4
    w7 = _Widget(width=7)
    Fragment.get(w7, None)
    assert w7.signature.members["o"].shape == 7


def test_unknown_parameter_is_a_type_error_naming_it():
    with pytest.raises(TypeError, match="widht"):
        _Widget(widht=3)


def test_inspect_only_filters_the_warning_of_that_object_only():
    from hdl.checked import inspect_only

    def make_pair():
        inspect_only(_Plain(width=2))
        _Plain(width=3)  # not marked: still warns

    Fragment.get(_Widget(), None)
    gc.collect()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        inspect_only(_Plain(width=2))  # the filter is installed inside this block too
        make_pair()
        gc.collect()
    plain = [w for w in caught if issubclass(w.category, UnusedElaboratable) and "_Plain" in str(w.message)]
    assert len(plain) == 1


def test_read_only_param_reads_the_constructor_value_and_refuses_assignment() -> None:
    from hdl.checked import ReadOnlyParam

    class Holder:
        width = ReadOnlyParam[int]()

        def __init__(self, width: int) -> None:
            self._width = width

    a, b = Holder(3), Holder(5)
    assert (a.width, b.width) == (3, 5)  # per instance, from ``_width``
    assert isinstance(Holder.width, ReadOnlyParam)
    with pytest.raises(AttributeError, match="width is a read-only parameter"):
        a.width = 4
    assert a.width == 3
