"""Cycle model of the LATTE head (``hdl.latte.Latte``): cycles from the first K/V beat to the last
output beat of a head without stalls (K and V offered together, every Q row available when the
block asks for it).

The model walks the block's two engines row by row: the *front* (Q row load, EST, FLAG, COMP,
hand-over) of row i+1 overlaps the *back* (EXP, P·V, NORM) of row i; COMP of the next row waits for
the previous row's EXP to finish, the hand-over waits for the back end to be idle. With C =
d_h/lanes chunks per row and n keys:

* load: n·C beats, then one state change;
* front of a row: C (Q row) + n·C (EST) + ``est`` + ``max`` latency, 1, n (FLAG scan) + ``flag`` + 1,
  kept·C (COMP) + ``comp`` + 1;
* back of a row: kept + ``exp`` + 1 (EXP), kept·C + ``pv`` + 1 (P·V), C + ``norm`` (NORM).

The pipeline latencies are microarchitectural constants of the RTL, passed in (``golden`` does not
import ``hdl``): :meth:`hdl.latte.Latte.cycle_latencies`. The model is exact: the tests compare it
with the RTL's cycle count using ``==``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

__all__ = ["LATENCY_KEYS", "latte_cycles_per_head"]

#: the latencies the model needs (cycles from issuing an item to its result being written)
LATENCY_KEYS = ("est", "max", "flag", "comp", "exp", "pv", "norm")


def latte_cycles_per_head(n: int, kept_rows: Sequence[int], *, chunks: int, latencies: Mapping[str, int]) -> int:
    """Cycles of one head of ``len(kept_rows)`` query rows over ``n`` keys (``kept_rows[i]``: the
    keys row i keeps), ``chunks`` = d_h/lanes beats per row; ``latencies`` has the keys of
    :data:`LATENCY_KEYS` (``norm``: the normaliser's divider latency)."""
    missing = [k for k in LATENCY_KEYS if k not in latencies]
    if missing:
        raise ValueError(f"latencies is missing {', '.join(missing)}")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be an integer >= 1, not {n!r}")
    if isinstance(chunks, bool) or not isinstance(chunks, int) or chunks < 1:
        raise ValueError(f"chunks must be an integer >= 1, not {chunks!r}")
    for kept in kept_rows:
        if not 0 <= kept <= n:
            raise ValueError(f"a row keeps {kept} keys: expected 0..n={n}")
    lat = {k: int(latencies[k]) for k in LATENCY_KEYS}
    c = chunks
    t = n * c + 1                       # K/V load, then the state change: first cycle of ROW_Q
    exp_end = back_idle_from = end = 0
    for kept in kept_rows:
        est_start = t + c
        est_exit = max(est_start + n * c + lat["est"] + lat["max"], exp_end + 1)  # COMP waits for EXP
        comp_start = est_exit + 1 + n + lat["flag"] + 1
        hand_start = comp_start + kept * c + lat["comp"] + 1
        hand = max(hand_start, back_idle_from)
        exp_end = hand + kept + lat["exp"] + 1
        end = exp_end + kept * c + lat["pv"] + 1 + c + lat["norm"]
        back_idle_from = end + 1
        t = hand + 1
    return end + 1  # cycles counted from 1
