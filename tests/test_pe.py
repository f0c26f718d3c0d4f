"""Amaranth-simulator unit tests of the systolic-array PE (hdl.pe) against golden.fixed arithmetic."""

import numpy as np
import pytest

from golden.fixed import QFormat, mac
from golden.systolic import OP_DF1, OP_DF2, OP_LOAD, OP_NOP
from hdl.pe import PE
from hdl.registry import ParamError, get_block
from tests.amaranth_helpers import run_sim

XW, YW, AW = 5, 6, 12        # small widths so that saturation is easy to reach
ACC = QFormat(AW, 0)
XMIN, XMAX = -(1 << (XW - 1)), (1 << (XW - 1)) - 1
YMIN, YMAX = -(1 << (YW - 1)), (1 << (YW - 1)) - 1


def _op(op: int, col: int, first: int) -> dict:
    return {"load": int(op == OP_LOAD), "df1": int(op == OP_DF1), "df2": int(op == OP_DF2), "first": first,
            "col": 1 << col}


def _run(beats: list[dict], cycles: int, sc: dict[int, tuple[int, int]] | None = None, row: int = 1,
         col: int = 0, copy_at: tuple[int, ...] = (), chain_in: int = 0) -> list[dict]:
    """Beat k enters x_in at cycle k; its s_in is presented at cycle k+2 (SUM_LATENCY - 1).
    Returns the outputs seen in every cycle."""
    dut = PE(x_width=XW, y_width=YW, acc_width=AW, col=col, cols=2)
    seen: list[dict] = []

    async def tb(ctx):
        for c in range(cycles):
            if c < len(beats):
                bt = beats[c]
                ctx.set(dut.x_in, bt.get("x", 0))
                ctx.set(dut.y_in, bt.get("y", 0))
                ctx.set(dut.op_in, _op(bt.get("op", OP_NOP), bt.get("col", 0), bt.get("first", 0)))
            else:
                ctx.set(dut.op_in, _op(OP_NOP, 0, 0))
            k = c - (PE.SUM_LATENCY - 1)
            s_in = beats[k].get("s", 0) if 0 <= k < len(beats) else 0
            ctx.set(dut.s_in, s_in)
            ctx.set(dut.s_sat_in, beats[k].get("s_sat", 0) if 0 <= k < len(beats) else 0)
            valid, row_, value = (1, *sc[c]) if sc and c in sc else (0, 0, 0)
            ctx.set(dut.sc_hit, int(valid and row_ == row))  # the PPE's one-hot row select, this PE's bit
            ctx.set(dut.sc_value, value)
            ctx.set(dut.copy, int(c in copy_at))
            ctx.set(dut.chain_in, chain_in)
            seen.append({name: ctx.get(getattr(dut, name)) for name in
                         ("x_out", "y_out", "s_out", "s_sat_out", "value", "acc", "acc_sat", "chain_out",
                          "chain_sat_out")})
            await ctx.tick()

    run_sim(dut, tb)
    return seen


def test_df1_multiply_add_and_latency():
    rng = np.random.default_rng(3)
    value = -7
    xs = rng.integers(XMIN, XMAX + 1, 12)
    ss = rng.integers(-300, 300, 12)
    beats = [{"op": OP_LOAD, "col": 0, "x": value}] + [{"op": OP_DF1, "x": int(x), "s": int(s)}
                                                       for x, s in zip(xs, ss, strict=True)]
    seen = _run(beats, len(beats) + 4)
    want, over = mac(ss, xs, np.full(12, value), ACC)
    got = [seen[k + PE.SUM_LATENCY]["s_out"] for k in range(1, len(beats))]
    assert got == want.tolist()
    assert not over.any()
    # port registers: one cycle
    assert [seen[k + PE.PORT_LATENCY]["x_out"] for k in range(1, len(beats))] == xs.tolist()


def test_load_targets_only_its_column_and_passes_on():
    beats = [{"op": OP_LOAD, "col": 0, "x": 9}, {"op": OP_LOAD, "col": 1, "x": -3}, {"op": OP_DF1, "x": 2, "s": 1}]
    seen = _run(beats, 7, col=0)
    assert seen[2]["value"] == 9 and seen[3]["value"] == 9  # col 1 load ignored
    assert seen[2 + PE.SUM_LATENCY]["s_out"] == 1 + 9 * 2
    assert seen[2]["x_out"] == -3                             # the load beat moves right


@pytest.mark.parametrize("s_in,x,value,expect", [
    ((1 << (AW - 1)) - 10, XMAX, XMAX, (1 << (AW - 1)) - 1),     # saturate high
    (-(1 << (AW - 1)) + 10, XMAX, XMIN, -(1 << (AW - 1))),       # saturate low
    (0, XMIN, XMIN, XMIN * XMIN),                                  # most negative x most negative
    ((1 << (AW - 1)) - 1 - XMIN * XMIN, XMIN, XMIN, (1 << (AW - 1)) - 1),  # exactly max: no flag
])
def test_df1_saturation_and_most_negative(s_in, x, value, expect):
    beats = [{"op": OP_LOAD, "col": 0, "x": value}, {"op": OP_DF1, "x": x, "s": s_in}]
    seen = _run(beats, 6)
    want, over = mac([s_in], [x], [value], ACC)
    out = seen[1 + PE.SUM_LATENCY]
    assert out["s_out"] == int(want[0]) == expect
    assert out["s_sat_out"] == int(over[0])


def test_df1_saturation_flag_propagates_from_below():
    beats = [{"op": OP_LOAD, "col": 0, "x": 1}, {"op": OP_DF1, "x": 1, "s": 5, "s_sat": 1}]
    seen = _run(beats, 6)
    assert seen[1 + PE.SUM_LATENCY]["s_sat_out"] == 1


def test_df2_accumulate_first_clears_and_saturates():
    rng = np.random.default_rng(4)
    xs = rng.integers(XMIN, XMAX + 1, 6)
    ys = rng.integers(0, YMAX + 1, 6)
    extreme = [(XMIN, YMIN)] * 6  # most negative operands: positive products, saturate high
    beats = [{"op": OP_DF2, "x": int(x), "y": int(y), "first": int(k == 0)}
             for k, (x, y) in enumerate(zip(xs, ys, strict=True))]
    beats += [{"op": OP_DF2, "x": x, "y": y, "first": int(k == 0)} for k, (x, y) in enumerate(extreme)]
    seen = _run(beats, len(beats) + 4)
    acc, sat = 0, False
    for k, bt in enumerate(beats):
        if bt["first"]:
            acc, sat = 0, False
        a, o = mac([acc], [bt["x"]], [bt["y"]], ACC)
        acc, sat = int(a[0]), sat or bool(o[0])
        out = seen[k + PE.SUM_LATENCY]
        assert (out["acc"], out["acc_sat"]) == (acc, int(sat)), f"beat {k}"
        assert seen[k + PE.PORT_LATENCY]["y_out"] == bt["y"]
    assert sat  # the extreme phase saturated


def test_df2_does_not_disturb_partial_sum_path():
    beats = [{"op": OP_DF2, "x": 3, "y": 4, "first": 1, "s": 77}]
    seen = _run(beats, 5)
    assert seen[PE.SUM_LATENCY]["s_out"] == 77 and seen[PE.SUM_LATENCY]["acc"] == 12


def test_shortcut_latch_with_bypass():
    beats = [{"op": OP_LOAD, "col": 0, "x": 2}, {"op": OP_DF1, "x": 3, "s": 0}, {"op": OP_DF1, "x": 3, "s": 0},
             {"op": OP_DF1, "x": 3, "s": 0}]
    # beat 2 sits in the port register at cycle 3: the bus carries row 1 then (bypass), row 0 at cycle 2
    seen = _run(beats, 9, sc={2: (0, 5), 3: (1, -4)}, row=1)
    assert seen[3]["value"] == 2 and seen[4]["value"] == -4
    assert [seen[k + PE.SUM_LATENCY]["s_out"] for k in (1, 2, 3)] == [2 * 3, -4 * 3, -4 * 3]


def test_result_chain_copy_and_shift():
    beats = [{"op": OP_DF2, "x": 3, "y": 5, "first": 1}]
    seen = _run(beats, 8, copy_at=(PE.SUM_LATENCY,), chain_in=-9)
    assert seen[PE.SUM_LATENCY]["chain_out"] == -9        # shifting from below
    assert seen[PE.SUM_LATENCY + 1]["chain_out"] == 15    # copied result register
    assert seen[PE.SUM_LATENCY + 2]["chain_out"] == -9


def test_bad_parameters():
    with pytest.raises(ValueError, match="acc_width"):
        PE(x_width=13, y_width=17, acc_width=20)
    with pytest.raises(ValueError, match="col"):
        PE(x_width=5, y_width=6, acc_width=12, col=4, cols=4)
    with pytest.raises(TypeError, match="x_width"):
        PE(x_width=5.0, y_width=6, acc_width=12)
    with pytest.raises(ParamError, match="acc_width"):
        get_block("pe").resolve({"acc_width": "20"})
