# amaranth: UnusedElaboratable=no
"""The stream harness (sim/streams.py): packing, scoreboard, and both adapters on a tiny FIFO,
including a deliberately broken DUT that must fail within its deadline instead of hanging."""

from __future__ import annotations

import pytest
from amaranth.hdl import signed, unsigned
from amaranth.lib import data

from sim.streams import Scoreboard, Sink, Source, StreamBench, StreamError, pack, run_amaranth, unpack
from sim.tb_streams import ITEM, StreamFifo, fifo_items, fifo_script

# ---- packing and scoreboard (no simulator) --------------------------------------------------------


def test_pack_unpack_round_trip_nested_signed():
    layout = data.StructLayout({"a": data.ArrayLayout(signed(5), 3), "b": unsigned(3),
                                "c": data.StructLayout({"x": signed(4)})})
    value = {"a": [-16, 15, -1], "b": 7, "c": {"x": -8}}
    bits = pack(layout, value)
    assert bits == 16 | 15 << 5 | 31 << 10 | 7 << 15 | 8 << 18  # two's complement fields, LSB first
    assert unpack(layout, bits) == value
    assert unpack(signed(6), pack(signed(6), -3)) == -3 and pack(unsigned(4), 17) == 1


def _const_bits(layout, value) -> int:
    from amaranth.hdl import Value

    return int(Value.cast(layout.const(value)).value) & ((1 << layout.size) - 1)


def test_pack_fast_path_equals_layout_const():
    """:func:`pack` builds a packer per layout (``layout.const`` is too slow for the soak): random
    nested values, numpy ints and arrays, missing keys and short lists give ``layout.const``'s bits,
    and its errors stay its errors."""
    import random

    import numpy as np

    rng = random.Random(7)
    layout = data.StructLayout({"t": unsigned(3), "a": data.ArrayLayout(signed(7), 4),
                                "s": data.StructLayout({"x": signed(4), "y": data.ArrayLayout(unsigned(2), 3)})})
    for _ in range(300):
        value = {"t": rng.randrange(-20, 20), "a": [rng.randrange(-200, 200) for _ in range(rng.randrange(5))],
                 "s": {"x": np.int64(rng.randrange(-9, 9)), "y": np.array([rng.randrange(4) for _ in range(3)])}}
        for drop in ("", "t", "s"):
            v = {k: x for k, x in value.items() if k != drop}
            assert pack(layout, v) == _const_bits(layout, {**v, "s": {**v["s"], "y": list(v["s"]["y"])}}
                                                  if "s" in v else v)
    with pytest.raises(ValueError, match="key 'z'"):
        pack(layout, {"z": 1})
    with pytest.raises(ValueError, match="key 4"):
        pack(layout, {"a": [1, 2, 3, 4, 5]})
    with pytest.raises(TypeError, match="mapping or a sequence"):
        pack(layout, 5)


def test_vector_tb_bulk_packing_is_the_same_path():
    """The soak's bulk row packer (``sim.vector_tb.pack_rows``) and ``pack`` give the same bits."""
    import numpy as np

    from sim import vector_tb

    rng = np.random.default_rng(3)
    for width, cols in ((8, 1), (5, 13), (16, 8), (31, 3), (40, 2), (70, 2)):
        rows = rng.integers(-(1 << min(width - 1, 62)), 1 << min(width - 1, 62), (20, cols))
        layout = data.ArrayLayout(signed(width), cols)
        assert vector_tb.pack_rows(rows, width) == [pack(layout, r) for r in rows], (width, cols)
        assert [vector_tb.pack(layout, r) for r in rows] == [pack(layout, r.tolist()) for r in rows]


def test_scoreboard_messages():
    sb = Scoreboard("o", [1, 2, 3])
    sb.add(1)
    with pytest.raises(StreamError, match=r"o: mismatch at index 1: got 5, expected 2"):
        sb.add(5)
    with pytest.raises(StreamError, match="o: expected 3, got 1"):
        sb.check_complete()
    count = Scoreboard("rows", 1)
    count.add("x")
    with pytest.raises(StreamError, match="item 2 arrived after the last expected one"):
        count.add("y")


def test_bad_parameters_rejected():
    with pytest.raises(ValueError, match="stall probability"):
        Source("i", p_stall=1.0)
    with pytest.raises(ValueError, match="wait_cycles"):
        Sink("o", wait_cycles=0)
    with pytest.raises(ValueError, match="deadline_cycles"):
        StreamBench(deadline_cycles=0)
    with pytest.raises(ValueError, match="expected count"):
        Scoreboard("o", -1)
    with pytest.raises(ValueError, match="depth"):
        StreamFifo(depth=0)


# ---- Amaranth adapter --------------------------------------------------------------------------


def _run(items, **kw) -> StreamBench:
    dut = StreamFifo()
    return run_amaranth(dut, lambda io: fifo_script(io, dut, items, **kw), deadline_cycles=5_000)


@pytest.mark.parametrize("p", [0.0, 0.4])
def test_fifo_passes_with_random_stalls(p):
    items = fifo_items(40, 1)
    bench = _run(items, p_in=p, p_out=p, seed=7)
    _, sink, seen = bench.agents
    assert sink.beats == items and seen.beats == items
    if p == 0.0:  # no stalls: one item per cycle after the FIFO's 2-cycle latency
        assert sink.transfers == list(range(2, 42))


def test_dropped_middle_item_is_a_mismatch():
    with pytest.raises(StreamError, match=r"o: mismatch at index 6"):
        _run(fifo_items(20, 2), drop_at=7)


def test_dropped_last_item_fails_within_its_deadline():
    items = fifo_items(20, 2)
    with pytest.raises(StreamError, match=r"waited 50 cycles for o item 20 \(expected 20, got 19"):
        _run(items, drop_at=20, wait_cycles=50)


def test_extra_item_in_the_drain_window_is_caught():
    items = fifo_items(12, 3)
    with pytest.raises(StreamError, match=r"o: item 12 arrived after the last expected one \(expected 11\)"):
        _run(items, expected=items[:-1], p_in=0.0, p_out=0.0)


def test_run_deadline_is_caught():
    with pytest.raises(StreamError, match=r"run exceeded deadline_cycles=20 \(i: .* beats sent; o: expected 30"):
        _run(fifo_items(30, 4), deadline_cycles=20)


def test_harness_payload_layout_is_the_port_layout():
    dut = StreamFifo()
    assert data.Layout.cast(dut.i.payload.shape()) == ITEM


# ---- cocotb adapter: the same script on the exported Verilog (Icarus) -----------------------------


@pytest.mark.cocotb
def test_cocotb_adapter_on_icarus(tmp_path):
    import json
    import os

    from amaranth.back import verilog
    from cocotb_tools.runner import get_results, get_runner

    from sim.runner import check_simulator

    check_simulator("icarus")
    dut = StreamFifo()
    src = tmp_path / "stream_fifo.v"
    src.write_text(verilog.convert(dut, name="stream_fifo"))
    runner = get_runner("icarus")
    runner.build(sources=[src], hdl_toplevel="stream_fifo", build_dir=tmp_path, timescale=("1ns", "1ps"),
                 log_file=tmp_path / "build.log")
    stats = tmp_path / "stats.json"
    env = {"ATTN_RTL_STATS": str(stats), "PYTHONPATH": os.environ["PYTHONPATH"]}
    xml = runner.test(test_module="sim.tb_streams", hdl_toplevel="stream_fifo", build_dir=tmp_path, test_dir=tmp_path,
                      extra_env=env, results_xml=str(tmp_path / "results.xml"), log_file=tmp_path / "test.log")
    tests, failed = get_results(xml)
    assert (tests, failed) == (5, 0), f"see {tmp_path / 'test.log'}"
    got = json.loads(stats.read_text())
    assert got["passed_items"] == 40
    assert "o: mismatch at index 6" in got["drop"]
    assert "waited 50 cycles for o item 20 (expected 20, got 19" in got["drop_last"]
    assert "o: item 12 arrived after the last expected one (expected 11)" in got["extra"]
    assert "run exceeded deadline_cycles=20" in got["deadline"]


# ---- clock-enable pipelines (PipelineSource + ValidMonitor(enable=)) ------------------------------


def _exp_pipeline(p_stall: float, expected=None, wait_cycles: int = 30):
    import random

    import numpy as np

    from golden.fixed import QFormat
    from golden.lut import ExpSpec
    from hdl.arith import ExpUnit
    from sim.streams import PipelineSource, ValidMonitor

    spec = ExpSpec(QFormat(12, 6), QFormat(16, 12, signed=False), lut_bits=6, lut_frac=14)
    dut = ExpUnit(spec=spec)
    xs = np.arange(-40, 20)
    y, over = spec(xs)
    want = [{"y": int(a), "overflow": int(b)} for a, b in zip(y, over, strict=True)] if expected is None else expected
    ports = dut.signature.members
    src = PipelineSource("in", {"x": ("x", ports["x"].shape)}, [{"x": int(x)} for x in xs], p_stall=p_stall,
                         rng=random.Random(5))
    mon = ValidMonitor("out", valid="valid_out", enable="en", scoreboard=Scoreboard("results", want),
                       fields={"y": ("y", ports["y"].shape), "overflow": ("overflow", 1)}, wait_cycles=wait_cycles)
    bench = StreamBench(src, mon, deadline_cycles=1_000, drain_cycles=ExpUnit.LATENCY + 4)
    run_amaranth(dut, bench.run, deadline_cycles=2_000)
    return src, mon


@pytest.mark.parametrize("p", [0.0, 0.4])
def test_pipeline_results_once_each_with_enable_stalls(p):
    """A held output register under en = 0 is not a second result; latency counts enabled edges."""
    from hdl.arith import ExpUnit

    src, mon = _exp_pipeline(p)
    assert len(mon.scoreboard.items) == 60
    assert sum(1 for c in src.enabled if c < mon.transfers[0]) == ExpUnit.LATENCY
    if p == 0.0:
        assert mon.transfers == list(range(ExpUnit.LATENCY, ExpUnit.LATENCY + 60))


def test_pipeline_missing_and_extra_results_fail():
    import numpy as np

    from golden.fixed import QFormat
    from golden.lut import ExpSpec

    spec = ExpSpec(QFormat(12, 6), QFormat(16, 12, signed=False), lut_bits=6, lut_frac=14)
    y, over = spec(np.arange(-40, 20))
    want = [{"y": int(a), "overflow": int(b)} for a, b in zip(y, over, strict=True)]
    with pytest.raises(StreamError, match=r"results: item 60 arrived after the last expected one \(expected 59\)"):
        _exp_pipeline(0.3, expected=want[:-1])
    with pytest.raises(StreamError, match=r"timeout: waited 30 cycles for results item 61 \(expected 61, got 60"):
        _exp_pipeline(0.3, expected=want + [want[-1]])
    shifted = [dict(w) for w in want]
    shifted[17]["y"] += 1
    with pytest.raises(StreamError, match=r"results: mismatch at index 17: got \{'y': \d+, 'overflow': 0\}"):
        _exp_pipeline(0.3, expected=shifted)
