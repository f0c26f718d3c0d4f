"""The CTA accelerator block (hdl.cta.Cta) on the Amaranth simulator: whole heads == golden.cta."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from golden.cta import cta_fixed_config, cta_fixed_trace
from golden.cta_host import CtaShape, load_beats
from golden.lsh import make_lsh_params
from golden.reference import HeadInputs
from golden.systolic import SystolicConfig
from hdl.cta import STEPS, Cta


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
    cfg = replace(base, score_dim=d_h, d_in_max=d_in_max, psum_depth=max(2 * n_max, 2))
    shape = CtaShape(cfg=cfg, l=l, n_max=n_max)
    trace = cta_fixed_trace(head, lsh=params, cfg=cfg, max_clusters=shape.clusters, exp_spec=shape.exp_spec,
                            max_tokens=n_max)
    return shape, trace


def run_cta(shape, trace, deadline=200_000):
    dut = Cta(shape=shape)
    beats = load_beats(trace, shape)
    lay = dut.load.payload.shape()
    m, n, d_in = trace.x_q.shape[0], trace.x_kv.shape[0], trace.x_q.shape[1]
    rows, status = [], {}

    async def tb(ctx):
        for bt in beats:
            ctx.set(dut.load.valid, 1)
            ctx.set(dut.load.payload, lay.const({"target": bt["target"], "addr": bt["addr"], "data": bt["data"]}))
            await ctx.tick().until(dut.load.ready)
        ctx.set(dut.load.valid, 0)
        ctx.set(dut.m, m)
        ctx.set(dut.n, n)
        ctx.set(dut.d_in, d_in)
        ctx.set(dut.d_h, shape.d_h)
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        ctx.set(dut.o.ready, 1)
        for _ in range(deadline):
            if ctx.get(dut.o.valid):
                rows.append([int(v) for v in ctx.get(dut.o.payload.data)])
            if ctx.get(dut.done):
                break
            await ctx.tick()
        else:
            raise AssertionError(f"no done within {deadline} cycles")
        for name in ("k0", "k1", "k2", "size_error", "capacity_error", "sa_overflow", "protocol_error"):
            status[name] = ctx.get(getattr(dut, name))
        status["cycles"] = {s: ctx.get(dut.cycles[k]) for k, s in enumerate(STEPS)}

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    return rows, status


def test_small_head_bit_exact():
    shape, trace = make_case()
    rows, st = run_cta(shape, trace)
    print(st)
    assert (st["k0"], st["k1"], st["k2"]) == (trace.k0, trace.k1, trace.k2)
    want = trace.out.tolist()
    got = [r[:shape.d_h] for r in rows]
    assert got == want
