"""golden.fixed helpers checked against plain definitions."""

from __future__ import annotations

import pytest

from golden.fixed import signed_width


@pytest.mark.parametrize("lo, hi", [(0, 0), (-1, 0), (0, 1), (-128, 127), (-129, 127), (-128, 128), (-5, 3),
                                    (-(1 << 40), 1), (7, 9)])
def test_signed_width_is_the_smallest_twos_complement_width(lo, hi):
    w = signed_width(lo, hi)
    assert -(2 ** (w - 1)) <= lo and hi <= 2 ** (w - 1) - 1
    if w > 1:
        assert not (-(2 ** (w - 2)) <= lo and hi <= 2 ** (w - 2) - 1)
