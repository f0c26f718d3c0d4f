"""Amaranth-simulator tests of the PPE's sub-components (hdl.ppe) on their own: the DF1 result
pipeline (PpeScaler) against golden.systolic, and the partial-sum buffer (PsumBuffer) against a
running total per beat, each at its stated latency."""

from __future__ import annotations

import random

import numpy as np
import pytest

from golden.fixed import QFormat, saturate
from golden.systolic import OP_DF1, PH_LSH, PH_SCORE, SystolicConfig, lsh_hash, scores
from hdl.ppe import PpeScaler, PsumBuffer
from tests.amaranth_helpers import run_sim

CFG = SystolicConfig(b=2, d=4)


def _tag(**kw) -> dict:
    base = {"op": OP_DF1, "col": 0, "phase": 0, "first": 0, "last": 0, "sub": 0, "shortcut": 0, "scale": 0,
            "accumulate": 0, "partial": 0}
    base.update(kw)
    return base


def _scale(beats: list[tuple[int, dict]]) -> list[tuple[int, int]]:
    """(a, tag) per cycle into a PpeScaler; (res, res_over) of each, read exactly LATENCY cycles later."""
    dut = PpeScaler(cfg=CFG)
    lat = PpeScaler.LATENCY
    got: list[tuple[int, int]] = []

    async def tb(ctx):
        for c in range(len(beats) + lat):
            a, tag = beats[c] if c < len(beats) else (0, _tag(op=0))
            ctx.set(dut.a, a)
            ctx.set(dut.tag, tag)
            ctx.set(dut.valid, c < len(beats))
            assert ctx.get(dut.res_valid) == (lat <= c < len(beats) + lat), f"res_valid at cycle {c}"
            if c >= lat:
                got.append((ctx.get(dut.res), ctx.get(dut.res_over)))
            await ctx.tick()

    run_sim(dut, tb, deadline_cycles=len(beats) + lat + 5)
    return got


@pytest.mark.parametrize("k1", [0, 2, 5])
def test_scaler_score_phase_matches_golden(k1):
    rng = np.random.default_rng(k1)
    qf = CFG.qkv_fmt
    q = rng.integers(qf.min_int, qf.max_int + 1, (1, CFG.d))
    ks = rng.integers(qf.min_int, qf.max_int + 1, (7, CFG.d))
    ks[0] = np.sign(q[0]) * qf.max_int       # a large score: s - m saturates for the others
    acc = (ks @ q[0]).tolist()                 # no saturation at these sizes (golden checks it too)
    beats = [(int(s), _tag(phase=PH_SCORE, first=int(t == 0), sub=int(t >= k1))) for t, s in enumerate(acc)]
    want, over = scores(q, ks, k1, CFG)
    assert _scale(beats) == list(zip(want[0].tolist(), over[0].astype(int).tolist(), strict=True))


def test_scaler_lsh_phase_matches_golden():
    rng = np.random.default_rng(3)
    tf, df = CFG.token_fmt, CFG.dir_fmt
    tokens = rng.integers(tf.min_int, tf.max_int + 1, (12, CFG.d))
    direction = rng.integers(df.min_int, df.max_int + 1, (1, CFG.d))
    bias, inv_w = -777, CFG.inv_w_fmt.max_int // 3
    aligned_bias = bias << (CFG.lsh_frac - CFG.bias_fmt.frac)   # what the PPE's bias adder adds
    beats = [(int(x @ direction[0]) + aligned_bias, _tag(phase=PH_LSH, scale=inv_w, first=int(t == 0)))
             for t, x in enumerate(tokens)]
    want, over = lsh_hash(tokens, direction, [bias], inv_w, CFG)
    assert _scale(beats) == list(zip(want[:, 0].tolist(), over[:, 0].astype(int).tolist(), strict=True))


@pytest.mark.parametrize("n", [2, 3, 5])
def test_psum_buffer_accumulates_passes(n):
    """Passes of ``n`` beats back to back (n = 2, 3: a write lands one cycle after, or in the cycle
    of, the next pass's read of that word: the forwarding paths), written back as partial totals;
    ``earlier`` is the previous passes' saturated total of the same beat (8-bit: it saturates)."""
    acc_width, passes = 8, 4
    fmt = QFormat(acc_width, 0)
    dut = PsumBuffer(acc_width=acc_width, depth=n)
    lead = PsumBuffer.READ_LEAD
    rng = random.Random(4)
    psums = [[rng.randrange(-100, 100) for _ in range(n)] for _ in range(passes)]
    beats = [(p, s) for p in range(passes) for s in range(n)]
    totals = [0] * n
    sats = [0] * n

    async def tb(ctx):
        for c in range(len(beats) + lead):
            if c < len(beats):                  # announce beat c
                p, s = beats[c]
                ctx.set(dut.rd_df1, 1)
                ctx.set(dut.rd_first, s == 0)
                ctx.set(dut.rd_tiled, passes > 1)
            else:
                ctx.set(dut.rd_df1, 0)
            k = c + 1 - lead                    # the beat whose psum comes next cycle: accumulate
            ctx.set(dut.accumulate, 0 <= k < len(beats) and beats[k][0] > 0)
            k = c - lead                        # the beat whose psum is now
            if 0 <= k < len(beats):
                p, s = beats[k]
                want_earlier = totals[s] if p > 0 else 0
                assert ctx.get(dut.earlier) == want_earlier, f"pass {p} beat {s}"
                assert ctx.get(dut.earlier_sat) == (sats[s] if p > 0 else 0)
                assert not ctx.get(dut.error)
                total, over = saturate(np.array([want_earlier + psums[p][s]]), fmt)
                totals[s], sats[s] = int(total[0]), int(bool(over[0]) or (p > 0 and sats[s]))
                ctx.set(dut.w_total, totals[s])
                ctx.set(dut.w_sat, sats[s])
                ctx.set(dut.w_en, p < passes - 1)
            else:
                ctx.set(dut.w_en, 0)
            await ctx.tick()

    run_sim(dut, tb, deadline_cycles=len(beats) + lead + 5)


def test_parts_reject_bad_parameters():
    with pytest.raises(TypeError, match="cfg"):
        PpeScaler(cfg=None)
    with pytest.raises(ValueError, match="depth"):
        PsumBuffer(acc_width=8, depth=0)
