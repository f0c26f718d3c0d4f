# amaranth: UnusedElaboratable=no
"""PAG: golden model checks and Amaranth-simulator tests of hdl.pag against golden.pag (bit-exact)."""

import math

import numpy as np
import pytest

from golden.fixed import QFormat
from golden.lut import ExpSpec
from golden.pag import add_exp, probability_aggregation
from hdl import faults as hdl_faults
from hdl.pag import ProbabilityAggregation, pag_formats_from_params
from hdl.registry import ParamError, get_block
from sim.bench_pag import PagBatch, directed_batches, golden_of, random_batch, simulate_pag
from sim.streams import StreamError

CS_FMT = QFormat(16, 8)
EXP = ExpSpec(QFormat(16, 8), QFormat(18, 14, signed=False))
AP_FMT = QFormat(28, 14, signed=False)


def _mask(flags: np.ndarray) -> int:
    return sum(1 << i for i, f in enumerate(flags) if f)


def make_dut(faults=frozenset(), **over) -> ProbabilityAggregation:
    params = get_block("pag").resolve({"b": 3, "k1_max": 8, "k2_max": 6, "n_max": 48, **over})
    cs_fmt, exp_spec, ap_fmt = pag_formats_from_params(**params)
    with hdl_faults.injected(ProbabilityAggregation, *faults):
        return ProbabilityAggregation(b=params["b"], k1_max=params["k1_max"], k2_max=params["k2_max"],
                                      n_max=params["n_max"], cs_fmt=cs_fmt, exp_spec=exp_spec, ap_fmt=ap_fmt)


def check_runs(dut, batches, runs):
    for name, batch, run in zip([getattr(b, "name", i) for i, b in enumerate(batches)], batches, runs, strict=True):
        want = golden_of(dut, batch)
        assert run.ap.shape == want.ap.shape, name
        assert run.ap.tolist() == want.ap.tolist(), f"AP mismatch in batch {name}"
        assert run.add_overflow == _mask(want.flags.add), name
        assert run.exp_overflow == _mask(want.flags.exp), name
        assert run.ap_overflow == _mask(want.flags.ap), name
        assert run.index_error == 0, name


# ---- golden model ---------------------------------------------------------------------------------

def test_golden_equals_fig6_sequential_saturating_loop():
    """Fig. 6 literally: one saturating add per update, in order (the RTL's order differs; the
    model's exact-sum-then-saturate is only valid because every update is >= 0)."""
    rng = np.random.default_rng(5)
    ap_small = QFormat(19, 14, signed=False)  # saturates at 32
    k1, k2, n = 5, 3, 60
    cs = rng.integers(-100, 300, (4, k1 + k2))
    cs[0] -= 800  # row 0 stays below saturation
    ct1, ct2 = rng.integers(0, k1, n), rng.integers(0, k2, n)
    got = probability_aggregation(cs, ct1, ct2, k1, cs_fmt=CS_FMT, exp_spec=EXP, ap_fmt=ap_small)
    for c in range(cs.shape[0]):
        acc = [0] * (k1 + k2)
        sat = False
        for j in range(n):
            e = int(add_exp(cs[c, ct1[j]], cs[c, k1 + ct2[j]], cs_fmt=CS_FMT, exp_spec=EXP)[0])
            for col in (ct1[j], k1 + ct2[j]):
                acc[col] += e
                if acc[col] > ap_small.max_int:
                    acc[col], sat = ap_small.max_int, True
        assert got.ap[c].tolist() == acc
        assert bool(got.flags.ap[c]) == sat
    assert got.flags.ap.any() and not got.flags.ap.all()


def test_golden_close_to_float():
    rng = np.random.default_rng(6)
    k1, k2, n = 6, 4, 200
    cs = rng.integers(-4 * 256, 256, (2, k1 + k2))
    ct1, ct2 = rng.integers(0, k1, n), rng.integers(0, k2, n)
    got = probability_aggregation(cs, ct1, ct2, k1, cs_fmt=CS_FMT, exp_spec=EXP, ap_fmt=AP_FMT)
    ref = np.zeros(cs.shape)
    s = cs / 256.0
    for j in range(n):
        e = np.exp(s[:, ct1[j]] + s[:, k1 + ct2[j]])
        ref[:, ct1[j]] += e
        ref[:, k1 + ct2[j]] += e
    rel = np.abs(AP_FMT.to_float(got.ap) - ref) / np.maximum(ref, 1e-3)
    assert rel.max() < 3e-3  # 8-bit fraction LUT index: <= 2**(1/256) - 1
    assert not any(f.any() for f in got.flags)


def test_golden_rejects_bad_inputs():
    cs = np.zeros((2, 5), dtype=np.int64)
    kw = dict(cs_fmt=CS_FMT, exp_spec=EXP, ap_fmt=AP_FMT)
    with pytest.raises(ValueError, match="ct1"):
        probability_aggregation(cs, np.array([3]), np.array([0]), 3, **kw)
    with pytest.raises(ValueError, match="ct2"):
        probability_aggregation(cs, np.array([0]), np.array([2]), 3, **kw)
    with pytest.raises(ValueError, match="k1"):
        probability_aggregation(cs, np.array([0]), np.array([0]), 5, **kw)
    with pytest.raises(ValueError, match="cs"):
        probability_aggregation(cs + 40000, np.array([0]), np.array([0]), 3, **kw)
    with pytest.raises(ValueError, match="ap_fmt.frac"):
        probability_aggregation(cs, np.array([0]), np.array([0]), 3, cs_fmt=CS_FMT, exp_spec=EXP,
                                ap_fmt=QFormat(28, 12, signed=False))
    with pytest.raises(ValueError, match="ap_fmt"):
        probability_aggregation(cs, np.array([0]), np.array([0]), 3, cs_fmt=CS_FMT, exp_spec=EXP,
                                ap_fmt=QFormat(28, 14))
    with pytest.raises(TypeError, match="exp_spec"):
        probability_aggregation(cs, np.array([0]), np.array([0]), 3, cs_fmt=CS_FMT, exp_spec=None, ap_fmt=AP_FMT)


# ---- RTL in the Amaranth simulator ------------------------------------------------------------------

@pytest.mark.parametrize("p", [0.0, 0.35])
def test_random_batches_with_stalls(p):
    dut = make_dut()
    rng = np.random.default_rng(11)
    batches = [random_batch(rng, dut, n, k1, k2, cs_lo=-(6 << 8), cs_hi=128)
               for n, k1, k2 in ((13, 3, 2), (48, 8, 6), (7, 1, 1), (30, 5, 4))]  # n odd / not a multiple of b
    runs = simulate_pag(dut, batches, p_in=p, p_out=p, seed=int(p * 100) + 3)
    check_runs(dut, batches, runs)


def test_directed_batches():
    dut = make_dut(ap_width=20)  # AP saturates at 64: reachable with n_max tokens of e = 16
    batches = directed_batches(dut, np.random.default_rng(12))
    runs = simulate_pag(dut, list(batches.values()), p_in=0.3, p_out=0.3, seed=4)
    check_runs(dut, list(batches.values()), runs)
    sat = golden_of(dut, batches["saturate"]).flags
    assert sat.add[1:].all() and sat.exp[1:].all() and sat.ap[1:].all() and not (sat.add[0] or sat.ap[0])


def test_throughput_and_latency_constants():
    """Two tokens per cycle: ceil(n/2) consecutive ct beats; the first AP beat is valid exactly
    READOUT_LATENCY cycles after the last ct beat; load / readout take k1+k2 beats each."""
    dut = make_dut()
    rng = np.random.default_rng(13)
    batch = random_batch(rng, dut, 45, 7, 5, cs_lo=-1000)
    run, = simulate_pag(dut, [batch])
    c = run.cycles
    assert c["last_ct"] - c["first_ct"] + 1 == math.ceil(45 / 2)
    assert c["first_ap_valid"] - c["last_ct"] == ProbabilityAggregation.READOUT_LATENCY
    assert ProbabilityAggregation.READOUT_LATENCY == ProbabilityAggregation.UPDATE_LATENCY + 1
    assert c["last_cs"] - c["first_cs"] + 1 == 12 and c["last_ap"] - c["first_ap"] + 1 == 12
    assert c["first_ct"] == c["last_cs"] + 1
    check_runs(dut, [batch], [run])


@pytest.mark.parametrize("fault,kind", [("no_merge", "same"), ("no_forward", "alternate"), ("no_forward", "period")])
def test_fault_injection_is_caught(fault, kind):
    """Disabling the merge units or the in-flight forwarding must break bit-exactness."""
    dut = make_dut(faults={fault})
    batch = directed_batches(dut, np.random.default_rng(12))[kind]
    run, = simulate_pag(dut, [batch], check=False)
    assert run.ap.tolist() != golden_of(dut, batch).ap.tolist()
    with pytest.raises(StreamError, match="ap beats: mismatch at index"):  # the checked harness stops at once
        simulate_pag(make_dut(faults={fault}), [batch])


def test_index_error_drops_token_and_flags():
    dut = make_dut()
    rng = np.random.default_rng(14)
    good = random_batch(rng, dut, 10, 3, 2, cs_lo=-800)
    bad_ct1 = good.ct1.copy()
    bad_ct1[4] = 3  # == k1: out of range
    run, = simulate_pag(dut, [PagBatch(good.cs, bad_ct1, good.ct2, 3)], check=False)
    keep = np.arange(10) != 4
    want = probability_aggregation(good.cs, good.ct1[keep], good.ct2[keep], 3, cs_fmt=dut.cs_fmt,
                                   exp_spec=dut.exp_spec, ap_fmt=dut.ap_fmt)
    assert run.index_error == 1
    assert run.ap.tolist() == want.ap.tolist()


def test_config_error_blocks_cs():
    from amaranth.sim import Simulator

    dut = make_dut()
    seen = {}

    async def tb(ctx):
        for name, (k1, k2, n) in {"k1=0": (0, 2, 4), "k2>max": (2, 7, 4), "n=0": (2, 2, 0), "ok": (2, 2, 4)}.items():
            ctx.set(dut.k1, k1)
            ctx.set(dut.k2, k2)
            ctx.set(dut.n, n)
            ctx.set(dut.cs.valid, 1)
            await ctx.tick()
            seen[name] = (ctx.get(dut.config_error), ctx.get(dut.cs.ready))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()
    assert seen == {"k1=0": (1, 0), "k2>max": (1, 0), "n=0": (1, 0), "ok": (0, 1)}


def test_bad_parameters_rejected():
    with pytest.raises(ValueError, match="b="):
        ProbabilityAggregation(b=0, k1_max=4, k2_max=4, n_max=8, cs_fmt=CS_FMT, exp_spec=EXP, ap_fmt=AP_FMT)
    with pytest.raises(TypeError, match="k1_max"):
        ProbabilityAggregation(b=1, k1_max=4.0, k2_max=4, n_max=8, cs_fmt=CS_FMT, exp_spec=EXP, ap_fmt=AP_FMT)
    with pytest.raises(ValueError, match="ap_fmt.width"):
        ProbabilityAggregation(b=1, k1_max=4, k2_max=4, n_max=8, cs_fmt=CS_FMT, exp_spec=EXP,
                               ap_fmt=QFormat(18, 14, signed=False))
    spec = get_block("pag")
    with pytest.raises(ParamError, match="ap_width"):
        spec.resolve({"ap_width": 16})
    with pytest.raises(ParamError, match="cs_frac"):
        spec.resolve({"cs_frac": 16})
    with pytest.raises(ParamError, match=r"\bb\b"):
        spec.resolve({"b": 0})


def test_generate_cli(tmp_path):
    import json

    from attn_rtl.cli import main

    assert main(["generate", "pag", "--set", "b=2", "--set", "k1_max=8", "-o", str(tmp_path)]) == 0
    assert "module pag" in (tmp_path / "pag.v").read_text()
    man = json.loads((tmp_path / "pag.json").read_text())
    assert man["latency"] == {"update": 10, "readout": 11}
    assert man["formats"]["ap"]["width"] == 28
    assert get_block("pag").fpga_params["b"] >= 1


def test_minimal_capacity_and_tiny_batches():
    """k1_max = k2_max = 1, one tile, n = 1, 2, 3 (single-token beats, merges on every full beat)."""
    dut = make_dut(b=1, k1_max=1, k2_max=1, n_max=3)
    batches = [PagBatch(np.array([[-100, 50]]), np.zeros(n, int), np.zeros(n, int), 1) for n in (1, 2, 3)]
    check_runs(dut, batches, simulate_pag(dut, batches, p_in=0.3, p_out=0.3, seed=9))
