"""The CTA accelerator block (hdl.cta.Cta) on the Amaranth simulator: whole heads == golden.cta."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from golden.cta import cta_fixed_config, cta_fixed_trace
from golden.cta_host import CtaShape, load_beats
from golden.lsh import make_lsh_params
from golden.reference import HeadInputs
from hdl.cta import STEPS, Cta
from sim.tb_cta import check_cycles


def _head(rng, m, n, d_in, d_h, clusters, noise=0.1):
    centres = rng.normal(size=(clusters, d_in)) * 2
    x_q = centres[rng.integers(0, clusters, m)] + noise * rng.normal(size=(m, d_in))
    x_kv = centres[rng.integers(0, clusters, n)] + noise * rng.normal(size=(n, d_in))
    w = [rng.normal(size=(d_in, d_h)) / np.sqrt(d_in) for _ in range(3)]
    return HeadInputs(x_q, x_kv, *w, *(rng.normal(size=d_h) * 0.5 for _ in range(3)))


def make_case(*, m=6, n=7, d_in=9, d_h=3, b=2, d=4, l=2, n_max=16, d_in_max=12, clusters=3, widths=(1.5, 1.5, 0.7),
              seed=0):
    rng = np.random.default_rng(seed)
    head = _head(rng, m, n, d_in, d_h, clusters)
    params = make_lsh_params(d_in, l=l, widths=widths, seed=seed)
    base = cta_fixed_config(head, params, d=d, b=b)
    from dataclasses import replace
    cfg = replace(base, d_h=d_h, d_in_max=d_in_max, psum_depth=max(2 * n_max, 2))
    shape = CtaShape(cfg=cfg, l=l, n_max=n_max)
    trace = cta_fixed_trace(head, lsh=params, cfg=cfg, k_max=shape.clusters, exp_spec=shape.exp_spec,
                            n_max=n_max)
    return shape, trace


def run_cta(shape, trace, *, deadline=200_000, stall=0.0, seed=0, sizes=None):
    """Load the head (random source gaps with probability ``stall``), start, read the output rows
    (random ``ready`` drops); returns (rows, status). Every wait is bounded by ``deadline`` cycles."""
    dut = Cta(shape=shape)
    beats = load_beats(trace, shape)
    lay = dut.load.payload.shape()
    m, n, d_in = trace.x_q.shape[0], trace.x_kv.shape[0], trace.x_q.shape[1]
    sizes = {"m": m, "n": n, "d_in": d_in, "d_h": shape.d_h, **(sizes or {})}
    rng = np.random.default_rng(seed)
    rows, status = [], {}

    async def tb(ctx):
        for bt in beats:
            while stall and rng.random() < stall:
                ctx.set(dut.load.valid, 0)
                await ctx.tick()
            ctx.set(dut.load.valid, 1)
            ctx.set(dut.load.payload, lay.const({"target": bt["target"], "addr": bt["addr"], "data": bt["data"]}))
            await ctx.tick().until(dut.load.ready)
        ctx.set(dut.load.valid, 0)
        for name, value in sizes.items():
            ctx.set(getattr(dut, name), value)
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        for _ in range(deadline):
            ready = int(not stall or rng.random() >= stall)
            ctx.set(dut.o.ready, ready)
            if ready and ctx.get(dut.o.valid):
                rows.append([int(v) for v in ctx.get(dut.o.payload.data)] + [ctx.get(dut.o.payload.last)])
            if ctx.get(dut.done):
                break
            await ctx.tick()
        else:
            raise AssertionError(f"no done within {deadline} cycles")
        for _ in range(20):   # nothing arrives after done
            assert not ctx.get(dut.o.valid)
            await ctx.tick()
        for name in ("k0", "k1", "k2", "size_error", "capacity_error", "sa_overflow", "protocol_error", "busy"):
            status[name] = ctx.get(getattr(dut, name))
        status["cycles"] = {s: ctx.get(dut.cycles[k]) for k, s in enumerate(STEPS)}

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    return rows, status


def check_run(shape, trace, rows, st, stalled=False):
    assert st["size_error"] == 0 and st["capacity_error"] == 0 and st["protocol_error"] == 0 and st["busy"] == 0
    assert (st["k0"], st["k1"], st["k2"]) == (trace.k0, trace.k1, trace.k2)
    assert len(rows) == trace.out.shape[0], f"expected {trace.out.shape[0]} output rows, got {len(rows)}"
    got = [r[:shape.d_h] for r in rows]
    assert got == trace.out.tolist()
    assert all(r[shape.d_h:-1] == [0] * (shape.cfg.d - shape.d_h) for r in rows)
    assert [r[-1] for r in rows] == [0] * (len(rows) - 1) + [1]
    sat = any(trace.flags[k] for k in ("hash_saturated", "linear_saturated", "score_saturated", "output_saturated"))
    assert st["sa_overflow"] == int(sat)
    check_cycles(shape, trace, st["cycles"], host_stalls=stalled)


CASES = [  # m, n, d_in (d = 4), d_h, seed
    (6, 7, 9, 3, 0),      # m != n, n odd, d_in = 2d + 1
    (7, 6, 4, 3, 1),      # one pass
    (5, 9, 5, 4, 2),      # d_in = d + 1, d_h = d
    (8, 8, 11, 2, 3),     # d_in = 3d - 1
]


@pytest.mark.parametrize("m,n,d_in,d_h,seed", CASES, ids=[f"m{c[0]}-n{c[1]}-din{c[2]}-dh{c[3]}" for c in CASES])
def test_random_heads_bit_exact(m, n, d_in, d_h, seed):
    shape, trace = make_case(m=m, n=n, d_in=d_in, d_h=d_h, seed=seed)
    rows, st = run_cta(shape, trace, stall=0.2, seed=seed)
    check_run(shape, trace, rows, st, stalled=True)


def test_one_cluster_and_every_token_its_own():
    shape, trace = make_case(widths=(1e3, 1e3, 1e3), seed=5)
    assert (trace.k0, trace.k1, trace.k2) == (1, 1, 1)
    check_run(shape, trace, *run_cta(shape, trace))
    shape, trace = make_case(m=5, n=6, widths=(0.3, 0.3, 0.3), clusters=6, seed=6)
    assert (trace.k0, trace.k1) == (5, 6)
    check_run(shape, trace, *run_cta(shape, trace))


def test_capacity_exceeded_stops_with_a_status():
    shape, trace = make_case(m=6, n=7, widths=(1e-3, 1e-3, 1e-3), clusters=7, seed=7)
    small = CtaShape(cfg=shape.cfg, l=shape.l, n_max=shape.n_max, k_max=4)
    trace = cta_fixed_trace(_head(np.random.default_rng(7), 6, 7, 9, 3, 7), lsh=make_lsh_params(9, l=2, widths=1e-3,
                            seed=7), cfg=shape.cfg, k_max=4, exp_spec=small.exp_spec, n_max=16)
    assert trace.flags["cim_overflow"]
    rows, st = run_cta(small, trace)
    assert st["capacity_error"] == 1 and rows == [] and st["busy"] == 0


def test_bad_sizes_are_refused():
    shape, trace = make_case(seed=8)
    rows, st = run_cta(shape, trace, sizes={"d_h": shape.d_h - 1})
    assert st["size_error"] == 1 and rows == [] and st["busy"] == 0 and sum(st["cycles"].values()) == 0
    rows, st = run_cta(shape, trace, sizes={"n": 0})
    assert st["size_error"] == 1 and rows == []


@pytest.mark.parametrize("m,n,d_in,d_h,seed", CASES, ids=[f"m{c[0]}-n{c[1]}-din{c[2]}-dh{c[3]}" for c in CASES])
def test_cycle_model_respects_the_array_limit(m, n, d_in, d_h, seed):
    """The cycle model (== the RTL counters, checked above) never beats the array's own limit."""
    from sim.tb_cta import model_cycles

    shape, trace = make_case(m=m, n=n, d_in=d_in, d_h=d_h, seed=seed)
    model, bound = model_cycles(shape, trace), model_cycles(shape, trace, bounds=True)
    assert set(model) - {"SWEEP"} == set(bound)      # (no wrap sweep in one run after reset)
    assert model["SWEEP"] == 0
    assert sum(model.values()) >= sum(bound.values())
    for step in ("LSH1", "LSH0", "KV", "Q", "SCORE", "READ"):
        assert model[step] >= bound[step], step
