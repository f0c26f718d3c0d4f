"""Amaranth-simulator tests of the CIM's sub-components (hdl.cim): the layer decoder against
golden.cim with a model of its registered-read layer memory, and the lane aligner's delays."""

from __future__ import annotations

import random

import numpy as np
import pytest

from golden.cim import cluster_index
from hdl.cim import CimDecoder, CimLaneAlign, cim_entry_layout
from tests.amaranth_helpers import run_sim


def _decode(tokens: list[int | None], *, hash_width: int, capacity: int, bypass: bool = True) -> list[int]:
    """One token (an address, or None for a bubble) enters the layer per step, as in the CIM: its
    read is issued at edge t (stage r), its word registered at edge t+1 (stage q, resolved by the
    decoder). The memory model returns the word as it was before the writes of edge t (the
    registered-read memory leaves a read at the write's own edge unspecified: the old word), so
    the allocations of edges t and t+1 must come through the decoder's bypass. Returns the index
    per token (``capacity`` when refused), as the leaf layer of the CIM would emit it."""
    epoch_bits = 2
    dut = CimDecoder(addr_bits=hash_width, capacity=capacity, epoch_bits=epoch_bits, bypass=bypass)
    layout = cim_entry_layout(capacity, epoch_bits)
    pb = layout.size - epoch_bits
    mem: dict[int, int] = {}
    got: list[int] = []
    seq = tokens + [None, None]          # two more steps drain the pipeline

    async def tb(ctx):
        ctx.set(dut.run_epoch, 1)        # zeroed memory: epoch 0 words are invalid
        ctx.set(dut.step, 1)
        snaps: list[dict[int, int]] = []
        for t in range(len(seq)):
            snaps.append(dict(mem))      # what a read issued at edge t returns (before its writes)
            r_tok = seq[t - 1] if t >= 1 else None
            q_tok = seq[t - 2] if t >= 2 else None
            ctx.set(dut.r_addr, r_tok or 0)
            ctx.set(dut.q_valid, q_tok is not None)
            ctx.set(dut.q_addr, q_tok or 0)
            word = snaps[t - 2].get(q_tok, 0) if q_tok is not None else 0
            ctx.set(dut.entry.as_value(), word)
            if q_tok is not None:
                dead, child = ctx.get(dut.dead), ctx.get(dut.child)
                got.append(capacity if dead else child)
            if ctx.get(dut.w_en):
                mem[ctx.get(dut.w_addr)] = ctx.get(dut.w_data.as_value())
                assert ctx.get(dut.w_data.as_value()) >> pb == 1, "written with the run's epoch"
            await ctx.tick()

    run_sim(dut, tb, deadline_cycles=len(seq) + 10)
    return got


def _tokens(rng: random.Random, n: int, hash_width: int) -> list[int | None]:
    # few distinct values (repeats right behind an allocation: the bypass cases) and some bubbles
    values = rng.sample(range(1 << hash_width), 5)
    return [None if rng.random() < 0.15 else rng.choice(values) for _ in range(n)]


@pytest.mark.parametrize("capacity", [8, 3])
def test_decoder_matches_golden_one_layer(capacity):
    rng = random.Random(5)
    hw = 3
    tokens = _tokens(rng, 60, hw)
    got = _decode(tokens, hash_width=hw, capacity=capacity)
    live = [t for t in tokens if t is not None]
    # golden: a one-layer tree; the address is the hash value as an unsigned field
    codes = np.array([[t - (1 << hw) if t >= 1 << (hw - 1) else t] for t in live])
    want, n_clusters, over = cluster_index(codes, k_max=capacity, hash_width=hw)
    assert got == want.tolist()
    assert over == (capacity < len(set(live)))


def test_decoder_without_bypass_misses_recent_allocations():
    # the no_bypass fault of the CIM, on its own: a repeat right behind an allocation allocates again
    tokens = [3, 3, 5, 3, 5, 5]
    want = [0, 0, 1, 0, 1, 1]
    assert _decode(tokens, hash_width=3, capacity=8) == want
    assert _decode(tokens, hash_width=3, capacity=8, bypass=False) != want


def test_decoder_rejects_bad_parameters():
    with pytest.raises(ValueError, match="capacity"):
        CimDecoder(addr_bits=3, capacity=0, epoch_bits=2)
    with pytest.raises(TypeError, match="addr_bits"):
        CimDecoder(addr_bits=2.0, capacity=4, epoch_bits=2)


@pytest.mark.parametrize("internal_skew", [False, True])
def test_lane_align_delays_lane_j_by_its_thread_offset(internal_skew):
    l, hw = 3, 4
    dut = CimLaneAlign(l=l, hash_width=hw, internal_skew=internal_skew)
    assert dut.lane_delays == tuple((2 if internal_skew else 1) * j for j in range(l))
    rng = random.Random(2)
    beats = [[rng.randrange(-8, 8) for _ in range(l)] for _ in range(12)]
    seen: list[list[int]] = []

    async def tb(ctx):
        ctx.set(dut.can_step, 1)
        for t, beat in enumerate(beats):
            ctx.set(dut.i.valid, 1)
            ctx.set(dut.i.payload.hash, beat)
            if not internal_skew:
                # skewed start: lane j carries token t-j once it exists
                ctx.set(dut.i.payload.lane_valid, (1 << min(t + 1, l)) - 1)
            assert ctx.get(dut.i.ready) and ctx.get(dut.step) and ctx.get(dut.lane0_valid)
            assert not ctx.get(dut.lane_error)
            seen.append([ctx.get(dut.hash[j]) for j in range(l)])
            await ctx.tick()

    run_sim(dut, tb, deadline_cycles=len(beats) + 5)
    for t, lanes in enumerate(seen):
        for j, delay in enumerate(dut.lane_delays):
            if t >= delay:
                assert lanes[j] == beats[t - delay][j], (t, j)
