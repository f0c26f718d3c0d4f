"""golden.systolic: phase models vs float arithmetic, input checks, the beat schedule, and the
Amaranth-simulator run of the whole array against the golden model (small configurations)."""

import math

import numpy as np
import pytest

from golden.fixed import QFormat
from golden.systolic import (
    OP_DF1,
    LinearPhase,
    LshPhase,
    OutputPhase,
    ScorePhase,
    SystolicConfig,
    build_program,
    expected_phase_cycles,
    issue_cycles,
    linear,
    lsh_hash,
    output,
    residual_tokens,
    scores,
)
from hdl.arith import ReciprocalScaler
from hdl.systolic_array import (
    SHORTCUT_GAP,
    ArrayInputGate,
    ArrayInputStage,
    SystolicArray,
    beat_layout,
    out_layout,
    res_layout,
)
from sim.streams import pack, unpack
from sim.tb_systolic_array import DRAIN_CYCLES, check_records, corner_program, random_program, timing_matches_model
from tests.amaranth_helpers import run_sim

CFG = SystolicConfig(b=4, d=8)


def _q(fmt: QFormat, x):
    return fmt.quantize(x)


def test_lsh_matches_float_floor():
    rng = np.random.default_rng(1)
    x = _q(CFG.token_fmt, rng.normal(0, 2, (50, 8)))
    a = _q(CFG.dir_fmt, rng.normal(0, 1, (4, 8)))
    bias = _q(CFG.bias_fmt, rng.uniform(0, 4, 4))
    inv_w = int(_q(CFG.inv_w_fmt, 0.25))
    h, over = lsh_hash(x, a, bias, inv_w, CFG)
    xf, af, bf = CFG.token_fmt.to_float(x), CFG.dir_fmt.to_float(a), CFG.bias_fmt.to_float(bias)
    exact = np.floor((xf @ af.T + bf) * CFG.inv_w_fmt.to_float(inv_w))
    assert not over.any()
    assert np.array_equal(h, exact.astype(np.int64))  # the fixed-point sum is exact, so is the floor


def test_linear_within_half_lsb_of_float():
    rng = np.random.default_rng(2)
    c = _q(CFG.qkv_fmt, rng.normal(0, 4, (4, 8)))
    w = _q(CFG.weight_fmt, rng.normal(0, 0.3, (8, 6)))
    q, over = linear(c, w, CFG)
    exact = CFG.qkv_fmt.to_float(c) @ CFG.weight_fmt.to_float(w)
    assert not over.any()
    assert np.max(np.abs(CFG.qkv_fmt.to_float(q) - exact)) <= CFG.qkv_fmt.lsb / 2


def test_scores_scale_and_max_subtraction():
    rng = np.random.default_rng(3)
    q = _q(CFG.qkv_fmt, rng.normal(0, 2, (4, 8)))
    k = _q(CFG.qkv_fmt, rng.normal(0, 2, (7, 8)))
    s, over = scores(q, k, 3, CFG)
    exact = CFG.qkv_fmt.to_float(q) @ CFG.qkv_fmt.to_float(k).T / math.sqrt(CFG.d)
    exact[:, 3:] -= exact[:, :3].max(axis=1, keepdims=True)
    assert not over.any()
    assert np.max(np.abs(CFG.score_fmt.to_float(s) - exact)) <= 2 * CFG.score_fmt.lsb
    s0, _ = scores(q, k, 0, CFG)   # k1 = 0: nothing subtracted
    s_all, _ = scores(q, k, 7, CFG)
    assert np.array_equal(s0, s_all)


def test_output_is_weighted_average():
    rng = np.random.default_rng(4)
    ap = rng.integers(1, 4000, (4, 6))
    v = _q(CFG.qkv_fmt, rng.normal(0, 4, (6, CFG.d)))
    o, over, zero = output(ap, v, CFG)
    exact = (ap @ CFG.qkv_fmt.to_float(v)) / (ap.sum(axis=1, keepdims=True) / 2)  # = 2 x weighted average
    assert not over.any() and not zero.any()
    err = np.abs(CFG.out_fmt.to_float(o) - exact)
    assert np.max(err) <= 2 * CFG.out_fmt.lsb + np.max(np.abs(exact)) * 2.0 ** -CFG.recip_lut_bits


def test_saturation_flags_and_residuals():
    tf, qf = CFG.token_fmt, CFG.qkv_fmt
    r, over = residual_tokens([[tf.max_int, tf.min_int, 5]], [[qf.min_int, qf.max_int, 1]], CFG)
    assert r.tolist() == [[tf.max_int, tf.min_int, 3]] and over.tolist() == [[True, True, False]]
    h, over = lsh_hash(np.full((1, 8), tf.max_int), np.full((1, 8), CFG.dir_fmt.max_int), [0],
                       CFG.inv_w_fmt.max_int, CFG)
    assert h[0, 0] == CFG.hash_fmt.max_int and over[0, 0]
    q, over = linear(np.full((1, 8), qf.min_int), np.full((8, 1), CFG.weight_fmt.min_int), CFG)
    assert q[0, 0] == qf.max_int and over[0, 0]
    o, over, zero = output(np.zeros((1, 2), dtype=np.int64), np.ones((2, CFG.d), dtype=np.int64), CFG)
    assert zero.all() and over.all()


def test_bad_inputs_name_the_argument():
    with pytest.raises(ValueError, match="tokens"):
        lsh_hash([[1 << 20]], [[1]], [0], 1, CFG)
    with pytest.raises(TypeError, match="weights"):
        linear([[1]], [[0.5]], CFG)
    with pytest.raises(ValueError, match="d_in_max"):
        linear(np.zeros((1, 1025), dtype=np.int64), np.zeros((1025, 1), dtype=np.int64), CFG)
    with pytest.raises(ValueError, match="d_in_max"):
        SystolicConfig(d_in_max=0)
    with pytest.raises(ValueError, match="k1"):
        scores([[1]], [[1]], 2, CFG)
    with pytest.raises(ValueError, match="ap"):
        output([[-1]], [[1]], CFG)
    with pytest.raises(ValueError, match="d="):
        SystolicConfig(d=1)


def test_schedule_gaps():
    rng = np.random.default_rng(5)
    cfg = SystolicConfig(b=2, d=4)
    qf = cfg.qkv_fmt
    phases = [
        LinearPhase(inputs=rng.integers(-9, 9, (2, 4)), weights=rng.integers(-9, 9, (4, 4)), shortcut=True),
        ScorePhase(q=None, k=rng.integers(qf.min_int, qf.max_int, (2, 4)), k1=1),
        OutputPhase(ap=rng.integers(0, 9, (2, 2)), v=rng.integers(-9, 9, (2, 4))),
        OutputPhase(ap=rng.integers(0, 9, (2, 3)), v=rng.integers(-9, 9, (3, 4))),
    ]
    prog = build_program(phases, cfg)
    cyc = issue_cycles(prog.beats, cfg, gap=SHORTCUT_GAP)
    p = prog.phases
    assert cyc[p[0]["last_beat"]] == 2 + 3                       # 2 loads + 4 weight columns
    assert cyc[p[1]["first_beat"]] == cyc[p[0]["last_beat"]] + 1 + SHORTCUT_GAP
    assert cyc[p[2]["first_beat"]] == cyc[p[1]["last_beat"]] + 1  # no bubble before an output phase
    assert cyc[p[3]["first_beat"]] == cyc[p[2]["last_beat"]] + cfg.d  # result registers copied first


# ---- the RTL array on the Amaranth simulator ------------------------------------------------------

def run_array(cfg: SystolicConfig, prog, gap_probability: float = 0.0, seed: int = 0):
    dut = SystolicArray(cfg=cfg)
    bl, rl, ol = beat_layout(cfg), res_layout(cfg), out_layout(cfg)
    raws = [pack(bl, bt) for bt in prog.beats]
    shortcut = [bool(bt["shortcut"]) and not bt["first"] for bt in prog.beats]
    accepted, res, out, flags = [], [], [], {}
    n_out = sum(1 for p in prog.phases if p["kind"] == "output") * cfg.d
    n_res = sum(1 for bt in prog.beats if bt["op"] == OP_DF1 and not bt["partial"])
    rng = np.random.default_rng(seed)

    async def tb(ctx):
        cycle, offered = 0, None
        while len(res) < n_res or len(out) < n_out or len(accepted) < len(raws):
            k = len(accepted)
            pause = (k < len(raws) and offered != k and gap_probability and not shortcut[k]
                     and rng.random() < gap_probability)
            ctx.set(dut.i.valid, int(k < len(raws) and not pause))
            if k < len(raws) and not pause:
                ctx.set(dut.i.payload.as_value(), raws[k])
                offered = k
            if k < len(raws) and not pause and ctx.get(dut.i.ready):
                accepted.append(cycle)
            if ctx.get(dut.res.valid):
                res.append((cycle, unpack(rl, ctx.get(dut.res.payload.as_value()))))
            if ctx.get(dut.out.valid):
                out.append((cycle, unpack(ol, ctx.get(dut.out.payload.as_value()))))
            await ctx.tick()
            cycle += 1
        for name in ("overflow", "residual_overflow", "protocol_error"):
            flags[name] = ctx.get(getattr(dut, name))
        # drain window: any result after the last expected one fails, with the counts
        ctx.set(dut.i.valid, 0)
        for _ in range(DRAIN_CYCLES):
            extra_res, extra_out = ctx.get(dut.res.valid), ctx.get(dut.out.valid)
            if extra_res or extra_out:
                raise AssertionError(f"item after the last expected one at cycle {cycle}: res expected {n_res}, "
                                     f"got {len(res) + extra_res}; out expected {n_out}, got {len(out) + extra_out}")
            await ctx.tick()
            cycle += 1

    # one watchdog (sim.streams.add_watchdog via run_sim): the same budget the old inline assert had
    run_sim(dut, tb, deadline_cycles=20 * len(raws) + 200 + DRAIN_CYCLES)
    return accepted, res, out, flags


NARROW = dict(acc_width=30, score_fmt=QFormat(10, 4), hash_fmt=SystolicConfig().hash_fmt.with_(width=4), den_width=18)


@pytest.mark.parametrize("cfg", [SystolicConfig(b=2, d=4), SystolicConfig(b=3, d=5, **NARROW)],
                         ids=["2x4", "3x5-narrow"])
def test_array_random_program_back_to_back(cfg):
    _, prog = random_program(cfg, np.random.default_rng(11), n_tokens=5, n_keys=4)
    accepted, res, out, flags = run_array(cfg, prog)
    figures = check_records(cfg, prog, accepted, res, out)
    assert timing_matches_model(cfg, prog, accepted)
    model = expected_phase_cycles(prog, cfg, ReciprocalScaler.LATENCY, gap=SHORTCUT_GAP)
    for got, want in zip(figures["phases"], model, strict=True):
        assert (got["issue_cycles"], got["bubbles_before"]) == (want["issue"], want["bubbles_before"])
        assert got["cycles"] == want["done"] - want["start"] + 1
    assert all(f["bubbles_before"] in (None, 0, SHORTCUT_GAP, SHORTCUT_GAP + 1) for f in figures["phases"])
    assert flags["protocol_error"] == 0


@pytest.mark.parametrize("cfg", [SystolicConfig(b=2, d=4, **NARROW), SystolicConfig(b=3, d=5)], ids=["2x4", "3x5"])
def test_array_corners_and_source_gaps(cfg):
    rng = np.random.default_rng(12)
    _, prog = corner_program(cfg, rng)
    accepted, res, out, flags = run_array(cfg, prog)
    check_records(cfg, prog, accepted, res, out)
    assert flags["overflow"] == 1 and flags["residual_overflow"] == 1
    _, prog = random_program(cfg, rng, n_tokens=4, n_keys=3, extremes=True)
    accepted, res, out, flags = run_array(cfg, prog, gap_probability=0.3, seed=3)
    check_records(cfg, prog, accepted, res, out)
    assert flags["protocol_error"] == 0


# ---- d_in tiling (dot products longer than the array) ----------------------------------------------

def test_tiled_dot_products_equal_the_single_long_chain():
    """Without saturation, a tiled phase equals the same phase on an array tall enough for one pass,
    and both equal plain integer arithmetic."""
    rng = np.random.default_rng(21)
    short, tall = SystolicConfig(b=2, d=4), SystolicConfig(b=2, d=64)
    x = rng.integers(-4096, 4096, (7, 45))
    a = rng.integers(-2048, 2048, (2, 45))
    bias = rng.integers(-2048, 2048, 2)
    assert all(np.array_equal(u, v) for u, v in zip(lsh_hash(x, a, bias, 300, short), lsh_hash(x, a, bias, 300, tall),
                                                    strict=True))
    c = rng.integers(-2048, 2048, (2, 45))
    w = rng.integers(-100, 100, (45, 5))
    lb = rng.integers(-5000, 5000, (2, 5))
    q_short, o_short = linear(c, w, short, lb)
    q_tall, o_tall = linear(c, w, tall, lb)
    assert np.array_equal(q_short, q_tall) and not o_short.any() and not o_tall.any()
    exact = c @ w + (lb << short.qkv_fmt.frac)
    shift = short.linear_frac - short.qkv_fmt.frac
    assert np.array_equal(q_short, np.clip((exact + (1 << (shift - 1))) >> shift, -2048, 2047))


SAT_CFG = SystolicConfig(b=2, d=16, acc_width=30)   # 30 bits: 2^29 - 1 is the largest partial sum


def _saturating_lsh(d_in: int) -> LshPhase:
    # every product is (-4096)·(-2048) = 2^23: a pass of 16 sums to 2^27, four passes to 2^29
    return LshPhase(tokens=np.full((2, d_in), -4096), directions=np.full((1, d_in), -2048),
                    bias=np.zeros(1, dtype=np.int64), inv_width=1)


def test_saturation_only_across_passes_golden():
    h3, o3 = lsh_hash(np.full((1, 48), -4096), np.full((1, 48), -2048), [0], 1, SAT_CFG)
    h4, o4 = lsh_hash(np.full((1, 64), -4096), np.full((1, 64), -2048), [0], 1, SAT_CFG)
    assert not o3.any() and o4.all()     # no single pass saturates; the fourth pass's add does


@pytest.mark.parametrize("d_in", [48, 64], ids=["3-passes-exact", "4-passes-saturating"])
def test_array_saturation_across_passes(d_in):
    prog = build_program([_saturating_lsh(d_in)], SAT_CFG)
    assert prog.phases[0]["passes"] == d_in // 16
    accepted, res, out, flags = run_array(SAT_CFG, prog)
    check_records(SAT_CFG, prog, accepted, res, out)
    assert bool(prog.phases[0]["overflow"].any()) == (d_in == 64)
    assert flags["overflow"] == int(d_in == 64) and flags["protocol_error"] == 0


TILED = [SystolicConfig(b=2, d=4), SystolicConfig(b=3, d=5, **NARROW)]


@pytest.mark.parametrize("cfg,d_in", [(TILED[0], 5), (TILED[0], 8), (TILED[1], 14)], ids=["2x4-d+1", "2x4-2d",
                                                                                         "3x5-3d-1"])
def test_array_tiled_program(cfg, d_in):
    """Every phase with d_in > d (several passes, reloads per pass, the shortcut after a tiled Q̄,
    linear biases), back to back, results and cycles == golden; then with random source bubbles."""
    _, prog = random_program(cfg, np.random.default_rng(d_in), n_tokens=5, n_keys=4, d_in=d_in)
    assert {p.get("passes", 1) for p in prog.phases} == {1, cfg.passes(d_in)}
    accepted, res, out, flags = run_array(cfg, prog)
    figures = check_records(cfg, prog, accepted, res, out)
    assert timing_matches_model(cfg, prog, accepted)
    model = expected_phase_cycles(prog, cfg, ReciprocalScaler.LATENCY, gap=SHORTCUT_GAP)
    for got, want in zip(figures["phases"], model, strict=True):
        assert got["cycles"] == want["done"] - want["start"] + 1
    assert flags["protocol_error"] == 0
    _, prog = random_program(cfg, np.random.default_rng(d_in + 1), n_tokens=3, n_keys=3, d_in=d_in, extremes=True)
    accepted, res, out, flags = run_array(cfg, prog, gap_probability=0.3, seed=d_in)
    check_records(cfg, prog, accepted, res, out)
    assert flags["protocol_error"] == 0


@pytest.mark.parametrize("n,l", [(1, 1), (1, 2), (2, 1), (2, 2), (3, 1)],
                         ids=["spacing2", "spacing3-loads", "spacing3-beats", "spacing4", "spacing4-beats"])
def test_tiled_short_passes_read_their_own_last_write(n, l):
    """Passes of n beats after l value loads: pass p+1 reaches beat s only n + l cycles after pass p
    wrote its total, so the PPE's partial-sum read (issued three cycles ahead) must forward the
    writes of its own cycle and the next one. Large values so a lost pass shows in the hash."""
    cfg = SystolicConfig(b=2, d=4)
    rng = np.random.default_rng(100 + 10 * n + l)
    d_in = 16   # four passes
    phases = [LshPhase(tokens=rng.integers(-4096, 4096, (n, d_in)), directions=rng.integers(-2048, 2048, (l, d_in)),
                       bias=rng.integers(-2048, 2048, l), inv_width=40) for _ in range(2)]
    prog = build_program(phases, cfg)
    assert prog.phases[0]["passes"] == 4
    accepted, res, out, flags = run_array(cfg, prog)
    check_records(cfg, prog, accepted, res, out)
    assert timing_matches_model(cfg, prog, accepted)
    assert flags["protocol_error"] == 0


def test_tiled_pass_longer_than_the_buffer_is_refused():
    cfg = SystolicConfig(b=2, d=4, psum_depth=3)
    zeros = lambda *shape: np.zeros(shape, dtype=np.int64)  # noqa: E731
    phase = LshPhase(tokens=zeros(4, 6), directions=zeros(1, 6), bias=zeros(1), inv_width=1)
    with pytest.raises(ValueError, match="psum_depth"):
        build_program([phase], cfg)
    # driven anyway (a program built for a deeper buffer): the RTL flags it
    prog = build_program([phase], SystolicConfig(b=2, d=4))
    _, _, _, flags = run_array(cfg, prog)
    assert flags["protocol_error"] == 1


# ---- the array's sub-components alone ---------------------------------------------------------------

def test_input_gate_issues_beats_when_golden_issue_cycles_says():
    """ArrayInputGate with a source that always offers the next beat: each beat fires in the cycle
    golden.systolic.issue_cycles models (shortcut gap for d_out = d and d - 1, output-phase spacing)."""
    cfg = SystolicConfig(b=2, d=4)
    _, prog = random_program(cfg, np.random.default_rng(21), n_tokens=4, n_keys=3)
    want = issue_cycles(prog.beats, cfg, gap=SHORTCUT_GAP)
    dut = ArrayInputGate(cfg=cfg, gap=SHORTCUT_GAP)
    fired: list[int] = []

    async def tb(ctx):
        cycle = 0
        for bt in prog.beats:
            ctx.set(dut.valid, 1)
            ctx.set(dut.beat, bt)
            for _ in range(cfg.d + SHORTCUT_GAP + 2):     # the longest hold
                if ctx.get(dut.fire):
                    break
                assert not ctx.get(dut.error)
                await ctx.tick()
                cycle += 1
            else:
                raise AssertionError(f"beat {len(fired)} never accepted")
            assert not ctx.get(dut.error)
            fired.append(cycle)
            await ctx.tick()
            cycle += 1

    run_sim(dut, tb, deadline_cycles=want[-1] + 10)
    assert fired == want


def test_input_gate_flags_a_bubble_inside_a_shortcut_phase():
    cfg = SystolicConfig(b=2, d=4)
    dut = ArrayInputGate(cfg=cfg, gap=SHORTCUT_GAP)
    beat = {"op": OP_DF1, "shortcut": 1, "first": 1, "last": 0}
    errors: list[int] = []

    async def tb(ctx):
        for valid in (1, 0):                                # first Q̄ beat, then a bubble
            ctx.set(dut.beat, {**beat, "first": valid})
            ctx.set(dut.valid, valid)
            errors.append(ctx.get(dut.error))
            await ctx.tick()

    run_sim(dut, tb, deadline_cycles=5)
    assert errors == [0, 1]


def test_input_stage_residuals_match_golden():
    """ArrayInputStage: x - c of residual beats (saturated) LATENCY cycles later, as
    golden.systolic.residual_tokens; other beats pass x; a NOP when the beat does not fire."""
    cfg = SystolicConfig(b=2, d=4)
    rng = np.random.default_rng(22)
    tf, qf = cfg.token_fmt, cfg.qkv_fmt
    xs = rng.integers(tf.min_int, tf.max_int + 1, (10, cfg.d))
    cs = rng.integers(qf.min_int, qf.max_int + 1, (10, cfg.d))
    xs[0], cs[0] = tf.min_int, qf.max_int                  # saturates low
    want, over = residual_tokens(xs, cs, cfg)
    dut = ArrayInputStage(cfg=cfg)
    xw = cfg.x_width
    got: list[tuple[list[int], list[int], int]] = []

    async def tb(ctx):
        for t in range(len(xs) + ArrayInputStage.LATENCY):
            if t < len(xs):
                ctx.set(dut.beat, {"x": xs[t].tolist(), "c": cs[t].tolist(), "y": [0] * cfg.b, "op": OP_DF1,
                                   "residual": t % 3 != 2})
                ctx.set(dut.fire, 1)
                got_over = ctx.get(dut.residual_over)
                assert got_over == int(t % 3 != 2 and bool(over[t].any())), f"beat {t}"
            if t >= ArrayInputStage.LATENCY:
                packed = ctx.get(dut.x)
                lanes = [(packed >> (j * xw)) & ((1 << xw) - 1) for j in range(cfg.d)]
                got.append([v - (1 << xw) if v >> (xw - 1) else v for v in lanes])
            await ctx.tick()

    run_sim(dut, tb, deadline_cycles=len(xs) + 5)
    for t, lanes in enumerate(got):
        assert lanes == (xs[t] if t % 3 == 2 else want[t]).tolist(), f"beat {t}"
    assert over[0].any()
