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
