"""Sub-components of the CTA block (hdl.cta) alone on the Amaranth simulator: the CAG issuer with the
real CAG against golden.cta's centroids, the PAG issuer's CT pairs, the host loader's registers and
memory words, the step counters and sticky flags; parameter checks."""

from __future__ import annotations

import random
import warnings
from typing import Any

import numpy as np
import pytest
from amaranth.hdl import Elaboratable, Module
from amaranth.lib import wiring
from amaranth.lib.memory import Memory

from golden.cag import default_recip_spec
from golden.cta_host import load_beats
from hdl.cag import CentroidAggregator
from hdl.cta import (
    SEL_C0,
    SEL_C1,
    SEL_C2,
    STEPS,
    CagIssuer,
    Cta,
    HostLoader,
    PagIssuer,
    StepCounters,
    StickyFlags,
    connect_memories,
    cta_cycle_latencies,
    memory_words,
)
from sim.streams import AmaranthIO, Scoreboard, Sink, Source, StreamBench, layout_of
from tests.amaranth_helpers import run_sim, wait_until
from tests.test_cta import make_case


class _Harness(Elaboratable):
    """``unit`` with the memories it reads and writes (``init``: memory name -> words); its ports
    are reachable as attributes of the harness (for :class:`sim.streams.AmaranthIO`)."""

    def __init__(self, unit: Any, shape: Any, init: dict[str, list], extra: dict[str, Any] | None = None,
                 streams: tuple = ()) -> None:
        self.unit, self.extra, self.streams = unit, extra or {}, streams
        words = memory_words(shape)
        names = {member.split("_")[1] for member in unit.signature.members if member[:3] in ("rd_", "wr_")}
        self.mems = {name: Memory(shape=words[name][0], depth=words[name][1], init=init.get(name, []))
                     for name in sorted(names)}

    def __getattr__(self, name: str) -> Any:
        if name in ("unit", "extra", "mems", "streams"):
            raise AttributeError(name)
        return getattr(self.unit, name)

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        m.submodules.unit = self.unit
        for name, mem in self.mems.items():
            m.submodules[f"mem_{name}"] = mem
        for name, sub in self.extra.items():
            m.submodules[name] = sub
        connect_memories(m, self.mems, self.unit)
        for source, sink in self.streams:
            wiring.connect(m, source, sink)
        return m


def _token_words(x: np.ndarray, shape: Any) -> list[list[int]]:
    """Rows of ``x`` as memory words i*P + p (the host layout of golden.cta_host)."""
    d, P = shape.cfg.d, shape.cfg.max_passes
    words = [[0] * d for _ in range(shape.n_max * P)]
    for i, row in enumerate(x):
        for p in range(-(-len(row) // d)):
            part = [int(v) for v in row[p * d:(p + 1) * d]]
            words[i * P + p] = part + [0] * (d - len(part))
    return words


def _ct_words(ct: np.ndarray, shape: Any) -> list[int]:
    return [int(v) for v in ct] + [0] * (shape.n_max - len(ct))


@pytest.mark.parametrize("m,n,d_in,seed", [(6, 7, 9, 0), (5, 9, 5, 2), (7, 6, 4, 1)])
def test_cag_issuer_runs_match_golden_centroids(m, n, d_in, seed):
    """C1, then C2 (residuals against the C1 just written), then C0, as the sequencer runs them:
    every C memory word == golden.cta's centroid slice (bit-exact), through the real CAG."""
    shape, trace = make_case(m=m, n=n, d_in=d_in, seed=seed)
    cfg, K, N, P, d = shape.cfg, shape.clusters, shape.n_max, shape.cfg.max_passes, shape.cfg.d
    cag = CentroidAggregator(d=d, k_max=K, n_max=N, token_fmt=cfg.token_fmt, centroid_fmt=cfg.qkv_fmt,
                             recip_spec=default_recip_spec(N))
    unit = CagIssuer(shape=shape)
    dut = _Harness(unit, shape, {"xq": _token_words(trace.x_q, shape), "xkv": _token_words(trace.x_kv, shape),
                                 **{f"ct{lv}": _ct_words(getattr(trace, f"ct{lv}"), shape) for lv in range(3)}},
                   extra={"cag": cag}, streams=((unit.o, cag.i), (cag.o, unit.res)))
    got: dict[str, list] = {}

    async def tb(ctx):
        ctx.set(unit.n, n)
        ctx.set(unit.m, m)
        ctx.set(unit.d_in, d_in)
        ctx.set(cag.clear, 1)
        await ctx.tick()
        ctx.set(cag.clear, 0)
        for sel in (SEL_C1, SEL_C2, SEL_C0):
            ctx.set(unit.start, 1)
            ctx.set(unit.sel, sel)
            await ctx.tick()
            ctx.set(unit.start, 0)
            assert ctx.get(unit.busy)
            # a run: passes x (tokens + the CAG's tail), far below the deadline
            await wait_until(ctx, ~unit.busy, 40 * (N + K) * P, f"CAG run {sel} to finish")
        for name in ("c0", "c1", "c2"):
            mem = dut.mems[name]
            got[name] = [[int(v) for v in ctx.get(mem.data[i])] for i in range(K * P)]

    run_sim(dut, tb, deadline_cycles=200 * (N + K) * P)
    passes = -(-d_in // d)
    for name in ("c0", "c1", "c2"):
        want = getattr(trace, name)
        rows = [sum((got[name][k * P + p] for p in range(passes)), [])[:d_in] for k in range(want.shape[0])]
        assert rows == want.tolist(), f"{name} differs from golden.cta"


@pytest.mark.parametrize("n,p_stall,seed", [(7, 0.3, 0), (6, 0.5, 1), (1, 0.0, 2)])
def test_pag_issuer_pairs_every_key(n, p_stall, seed):
    """The n keys' (CT1, CT2) in pairs (j, j + 1), ceil(n/2) items, under random ready stalls; none after."""
    shape, trace = make_case(n=7, seed=seed)      # a run may take fewer keys than the tables hold
    ct1, ct2 = _ct_words(trace.ct1, shape), _ct_words(trace.ct2, shape)
    unit = PagIssuer(shape=shape)
    dut = _Harness(unit, shape, {"ct1": ct1, "ct2": ct2})
    expected = [{"ct1": [ct1[j], ct1[j + 1]], "ct2": [ct2[j], ct2[j + 1]]} for j in range(0, n, 2)]
    sink = Sink("o", layout_of(unit.o.payload), Scoreboard("pag ct", expected), p_stall=p_stall, seed=seed,
                wait_cycles=200)
    starts = iter([1])

    def before(bench):
        return {"start": next(starts, 0), "n": n}

    async def tb(ctx):
        bench = StreamBench(sink, deadline_cycles=40 * n + 100, drain_cycles=30, before=before)
        await bench.run(AmaranthIO(ctx, dut))
        assert not ctx.get(unit.busy)

    run_sim(dut, tb, deadline_cycles=40 * n + 400)


def test_host_loader_fills_memories_and_registers():
    """Every load beat of a head (random source gaps) lands where golden.cta_host puts it: token
    words == the golden inputs, bias / 1/w registers == the golden SA operands."""
    shape, trace = make_case(seed=3)
    unit = HostLoader(shape=shape)
    dut = _Harness(unit, shape, {})
    beats = load_beats(trace, shape)
    src = Source("load", layout_of(unit.load.payload), beats, p_stall=0.3, seed=3)
    sa, l = trace.sa_inputs, shape.l

    async def tb(ctx):
        bench = StreamBench(src, deadline_cycles=4 * len(beats) + 100, drain_cycles=2)
        await bench.run(AmaranthIO(ctx, dut))
        assert len(src.transfers) == len(beats)
        for name, x in (("xq", trace.x_q), ("xkv", trace.x_kv)):
            words = _token_words(x, shape)
            mem = dut.mems[name]
            assert [[int(v) for v in ctx.get(mem.data[i])] for i in range(len(words))] == words, name
        for w, vec in enumerate((sa["b_q"], sa["b_k"], sa["b_v"])):
            assert [int(v) for v in ctx.get(unit.lin_bias[w])][:len(vec)] == [int(v) for v in vec]
        for h, (_, bias, inv) in enumerate(sa["lsh"]):
            assert [int(v) for v in ctx.get(unit.lsh_bias[h])][:l] == [int(v) for v in bias]
            assert ctx.get(unit.inv_w[h]) == int(inv)
        # busy refuses beats
        ctx.set(unit.busy, 1)
        ctx.set(unit.load.valid, 1)
        assert ctx.get(unit.load.ready) == 0

    run_sim(dut, tb, deadline_cycles=4 * len(beats) + 400)


def test_step_counters_and_sticky_flags_match_a_model():
    """Random step / on / clear and set / clear sequences against a Python model, cycle by cycle."""
    rng = random.Random(5)
    cnt, flags = StepCounters(steps=len(STEPS), width=8), StickyFlags(width=4)
    model_c, model_f = [0] * len(STEPS), 0

    class _Both(Elaboratable):
        def elaborate(self, platform):
            m = Module()
            m.submodules.cnt, m.submodules.flags = cnt, flags
            return m

    async def tb(ctx):
        nonlocal model_f
        for _ in range(600):
            step, on, clear = rng.randrange(len(STEPS)), rng.random() < 0.8, rng.random() < 0.02
            fset, fclear = rng.randrange(16) if rng.random() < 0.1 else 0, rng.random() < 0.05
            for sig, v in ((cnt.step, step), (cnt.on, on), (cnt.clear, clear), (flags.set, fset),
                           (flags.clear, fclear)):
                ctx.set(sig, v)
            await ctx.tick()
            if clear:
                model_c[:] = [0] * len(STEPS)
            elif on:
                model_c[step] = (model_c[step] + 1) % 256
            model_f = 0 if fclear else model_f | fset
            assert [int(v) for v in ctx.get(cnt.cycles)] == model_c
            assert ctx.get(flags.flags) == model_f

    run_sim(_Both(), tb, deadline_cycles=1000)


def test_parameters_are_checked_before_creation():
    """Bad parameters raise before any component exists (no 'never elaborated' warning)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for build in (lambda: HostLoader(shape=3), lambda: Cta(shape=None), lambda: StepCounters(steps=0),
                      lambda: StickyFlags(width=True), lambda: PagIssuer(shape="x")):
            with pytest.raises((TypeError, ValueError)):
                build()
    shape, _ = make_case()
    assert cta_cycle_latencies(shape)["issue_latency"] == Cta.ISSUE_LATENCY == 5
