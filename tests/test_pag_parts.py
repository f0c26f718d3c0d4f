"""The PAG's control parts alone in the Amaranth simulator (hdl.pag.PagIssue, PagApControl,
PagSequencer), cycle by cycle against independent Python expectations of the module doc's pipeline."""

from __future__ import annotations

import math
import random

import pytest

from golden.fixed import QFormat
from hdl import faults
from hdl.pag import SEL_MEM, SEL_W2_A, SEL_W_A, PagApControl, PagIssue, PagSequencer
from tests.amaranth_helpers import run_sim

LANES = 4


def _lanes(view) -> list:
    return [view.ct1[0], view.ct1[1], view.ct2[0], view.ct2[1]]


# ---- PagIssue: c0 -> c1 (valid) and cM (addresses, merges, lane valids) --------------------------------

def _issue_expect(beat: dict) -> dict:
    """What cM shows for one c0 beat: ``x`` lanes, ``tv`` tokens present, ``k1``/``k2``."""
    x = beat["x"]
    ok = [x[i] < beat["k1"] and x[2 + i] < beat["k2"] for i in range(2)]
    tok = [beat["tv"][i] and ok[i] for i in range(2)]
    merge = [tok[0] and tok[1] and x[2 * r] == x[2 * r + 1] for r in range(2)]
    return {"addr": x, "tok": tok, "merge": merge,
            "act": [tok[0], tok[1] and not merge[0], tok[0], tok[1] and not merge[1]],
            "bad": any(beat["tv"][i] and not ok[i] for i in range(2))}


def _run_issue(dut: PagIssue, beats: list[dict]) -> list[dict]:
    got = []

    async def tb(ctx):
        for beat in beats:
            ctx.set(dut.k1, beat["k1"])
            ctx.set(dut.k2, beat["k2"])
            for sig, value in zip(_lanes(dut.ct), beat["x"], strict=True):
                ctx.set(sig, value)
            ctx.set(dut.tok_valid, beat["tv"][0] | beat["tv"][1] << 1)
            ctx.set(dut.batch_start, beat["start"])
            *_, valid, addr, tok, merge, act, err = await ctx.tick().sample(
                dut.valid, dut.addr, dut.tok, dut.merge, dut.act, dut.index_error)
            got.append({"valid": [valid & 1, valid >> 1 & 1], "addr": [int(a) for a in _lanes(addr)],
                        "tok": [tok & 1, tok >> 1 & 1], "merge": [merge & 1, merge >> 1 & 1],
                        "act": [act >> i & 1 for i in range(LANES)], "index_error": err})

    run_sim(dut, tb, deadline_cycles=len(beats) + 5)
    return got


def _random_beats(rng: random.Random, n: int, k1_max: int, k2_max: int) -> list[dict]:
    beats = []
    for t in range(n):
        k1, k2 = rng.randint(1, k1_max), rng.randint(1, k2_max)
        first = rng.random() < 0.8
        # small index ranges: equal pairs (merges) are common; k1/k2 themselves are out of range
        x = [rng.randint(0, min(k1, k1_max - 1)) for _ in range(2)] + [rng.randint(0, min(k2, k2_max - 1))
                                                                       for _ in range(2)]
        beats.append({"k1": k1, "k2": k2, "x": x, "tv": [first, first and rng.random() < 0.8],
                      "start": t == 40})
    return beats


def test_issue_pipeline_matches_expectation():
    rng = random.Random(3)
    dut = PagIssue(k1_max=3, k2_max=2)
    beats = _random_beats(rng, 120, 3, 2)
    got = _run_issue(dut, beats)
    L, V = PagIssue.LATENCY, PagIssue.VALID_LATENCY
    want = [_issue_expect(b) for b in beats]
    assert sum(w["merge"][0] or w["merge"][1] for w in want) > 10 and sum(w["bad"] for w in want) > 5
    for t, w in enumerate(want[:len(want) - L]):
        assert got[t + V]["valid"] == [int(v) for v in w["tok"]], t
        g = got[t + L]
        assert (g["addr"], g["tok"], g["merge"], g["act"]) == (
            w["addr"], [int(v) for v in w["tok"]], [int(v) for v in w["merge"]], [int(v) for v in w["act"]]), t
    # index_error: sticky two cycles after a bad token, cleared by batch_start (beat 40: the cycle after)
    for t in range(len(beats)):
        since = [u for u in range(t - 1) if not any(beats[s]["start"] for s in range(u + 1, t))]
        assert got[t]["index_error"] == int(any(want[u]["bad"] for u in since)), t


def test_issue_no_merge_fault_keeps_both_lanes():
    rng = random.Random(4)
    with faults.injected(PagIssue, "no_merge"):
        dut = PagIssue(k1_max=3, k2_max=2)
    got = _run_issue(dut, _random_beats(rng, 40, 3, 2))
    assert not any(g["merge"] != [0, 0] for g in got)


# ---- PagApControl: operand selects (newest in-flight copy wins), write-back, written bitmap ------------

def _ap_beats(rng: random.Random, n: int, k1_max: int, k2_max: int) -> list[dict]:
    beats = []
    for t in range(n):
        x = [rng.randrange(k1_max) for _ in range(2)] + [rng.randrange(k2_max) for _ in range(2)]
        act = [rng.random() < 0.8 for _ in range(LANES)]
        for r in range(2):  # merged upstream: lane b never carries lane a's address in the same cycle
            act[2 * r + 1] = act[2 * r + 1] and not (act[2 * r] and x[2 * r] == x[2 * r + 1])
        beats.append({"x": x, "act": act, "start": t == 30})
    return beats


def _sel_expect(beats: list[dict], t: int, i: int) -> int:
    """The one-hot operand select of lane ``i`` for the beat at cM = ``t`` (as seen at cM+1)."""
    region, x = i // 2, beats[t]["x"][i]
    for age, first_sel in ((1, SEL_W_A), (2, SEL_W2_A)):  # ACC now -> W next; W now -> W2 next
        u = t - age
        if u >= 0:
            hits = [beats[u]["act"][2 * region + j] and beats[u]["x"][2 * region + j] == x for j in range(2)]
            if any(hits):
                return sum(1 << (first_sel + j) for j in range(2) if hits[j])
    # written by a beat old enough to be in memory, since the batch started (start at s: clears after s)
    start = max([s + 1 for s in range(t) if beats[s]["start"]] or [0])
    older = [u for u in range(start - 2, t - 2) if u >= 0]
    return (1 << SEL_MEM) if any(beats[u]["act"][2 * region + j] and beats[u]["x"][2 * region + j] == x
                                 for u in older for j in range(2)) else 0


@pytest.mark.parametrize("fault", [None, "no_forward"])
def test_ap_control_selects_and_write_back(fault):
    rng = random.Random(5)
    with faults.injected(PagApControl, *([fault] if fault else [])):
        dut = PagApControl(k1_max=3, k2_max=2)
    beats = _ap_beats(rng, 150, 3, 2)
    got = []

    async def tb(ctx):
        for beat in beats:
            for sig, value in zip(_lanes(dut.addr), beat["x"], strict=True):
                ctx.set(sig, value)
            ctx.set(dut.act, sum(int(a) << i for i, a in enumerate(beat["act"])))
            ctx.set(dut.batch_start, beat["start"])
            *_, sel, wr_addr, wr_en, rd_en = await ctx.tick().sample(dut.sel, dut.wr_addr, dut.wr_en, dut.rd_en)
            got.append({"sel": [int(sel[i]) for i in range(LANES)], "wr_addr": [int(a) for a in _lanes(wr_addr)],
                        "wr_en": [wr_en >> i & 1 for i in range(LANES)], "rd_en": rd_en})

    run_sim(dut, tb, deadline_cycles=len(beats) + 5)
    forwarded = 0
    for t in range(len(beats) - PagApControl.WRITE_LATENCY):
        want = [_sel_expect(beats, t, i) for i in range(LANES)]
        forwarded += sum(s not in (0, 1 << SEL_MEM) for s in want)
        if fault:
            continue
        assert got[t + PagApControl.SEL_LATENCY]["sel"] == want, t
        w = got[t + PagApControl.WRITE_LATENCY]
        assert w["wr_en"] == [int(a) for a in beats[t]["act"]], t
        assert [a for a, e in zip(w["wr_addr"], w["wr_en"], strict=True) if e] == [
            x for x, a in zip(beats[t]["x"], beats[t]["act"], strict=True) if a], t
        assert got[t]["rd_en"] == 0b1111
    assert forwarded > 20
    if fault:  # without forwarding the in-flight copies are never selected: the expectation fails
        assert any(got[t + 1]["sel"] != [_sel_expect(beats, t, i) for i in range(LANES)]
                   for t in range(len(beats) - 2))


# ---- PagSequencer: phases, CS writes, ct acceptance, readout walk and latency ---------------------------

def test_sequencer_batch_protocol():
    cs_fmt = QFormat(8, 4)
    upd = 9
    dut = PagSequencer(b=2, k1_max=4, k2_max=3, n_max=9, cs_fmt=cs_fmt, update_latency=upd)
    rng = random.Random(6)
    log: dict = {"cs_writes": [], "ct_cycles": [], "tok": [], "ap": [], "reads": [], "starts": []}

    async def tb(ctx):
        ctx.set(dut.k1, 0)  # a bad configuration: no cs beat is taken
        ctx.set(dut.k2, 2)
        ctx.set(dut.n, 5)
        ctx.set(dut.cs.valid, 1)
        *_, ready, err = await ctx.tick().sample(dut.cs.ready, dut.config_error)
        assert (ready, err) == (0, 1)
        cycle = 0
        for k1, k2, n in ((3, 2, 5), (4, 3, 8), (1, 1, 1)):
            ctx.set(dut.k1, k1)
            ctx.set(dut.k2, k2)
            ctx.set(dut.n, n)
            beats = [[rng.randint(-128, 127) for _ in range(2)] for _ in range(k1 + k2)]
            sent = 0
            for _ in range(200):
                valid = sent < len(beats) and rng.random() < 0.7
                ctx.set(dut.cs.valid, valid)
                if sent < len(beats):
                    ctx.set(dut.cs.payload, beats[sent])
                ctx.set(dut.ct_valid, rng.random() < 0.7)
                ready_ap = rng.random() < 0.7
                ctx.set(dut.ap_ready, ready_ap)
                *_, cs_ready, we, addr, wdata, ct_ready, ct_valid, tok, start, readout, adv, ro_idx, ap_valid, \
                    ap_last, ap2 = await ctx.tick().sample(
                        dut.cs.ready, dut.cs_we, dut.cs_addr, dut.cs_data, dut.ct_ready, dut.ct_valid,
                        dut.tok_valid, dut.batch_start, dut.readout, dut.advance, dut.ro_idx, dut.ap_valid,
                        dut.ap_last, dut.ap_region2)
                cycle += 1
                if we:
                    log["cs_writes"].append((we, addr, wdata, cycle))
                if start:
                    log["starts"].append(cycle)
                if valid and cs_ready:
                    log.setdefault("cs_cycles", []).append(cycle)
                    sent += 1
                if ct_valid and ct_ready:
                    log["ct_cycles"].append(cycle)
                    log["tok"].append(tok)
                if readout and adv:
                    log["reads"].append(ro_idx)
                if ap_valid and not log["ap"] or ap_valid and log["ap"][-1][-1]:
                    log.setdefault("first_ap", []).append(cycle)
                if ap_valid and ready_ap:
                    log["ap"].append((ap2, ap_last))
                    if ap_last:
                        break
            else:
                raise AssertionError("batch did not finish in 200 cycles")
            # CS: beat t -> region 1 address t (t < k1) else region 2 address t - k1, one cycle later
            cs_cycles, writes = log.pop("cs_cycles"), log["cs_writes"]
            mask = (1 << cs_fmt.width) - 1
            assert [(w[0], w[1], w[2], w[3]) for w in writes] == [
                (1 if t < k1 else 2, t if t < k1 else t - k1, (beats[t][0] & mask) | (beats[t][1] & mask) << 8,
                 cs_cycles[t] + 1) for t in range(k1 + k2)]
            assert log["starts"] == [cs_cycles[0] + 1]
            beats_ct = math.ceil(n / 2)
            assert len(log["ct_cycles"]) == beats_ct
            assert log["tok"] == [0b11] * (n // 2) + [0b01] * (n % 2)
            assert log.pop("first_ap")[0] - log["ct_cycles"][-1] == dut.readout_latency == upd + 1
            assert log["reads"][:k1 + k2] == list(range(k1)) + list(range(k2))
            assert log["ap"] == [(0, 0)] * k1 + [(1, 0)] * (k2 - 1) + [(1, 1)]
            for key in ("cs_writes", "ct_cycles", "tok", "ap", "reads", "starts"):
                log[key] = []
            ctx.set(dut.cs.valid, 0)
            ctx.set(dut.ap_ready, 0)

    run_sim(dut, tb, deadline_cycles=1000)


@pytest.mark.parametrize("cls,kw,name", [
    (PagIssue, {"k1_max": 0, "k2_max": 2}, "k1_max"),
    (PagApControl, {"k1_max": 2, "k2_max": True}, "k2_max"),
    (PagSequencer, {"b": 1, "k1_max": 2, "k2_max": 2, "n_max": 4, "cs_fmt": QFormat(8, 4), "update_latency": 1},
     "update_latency"),
])
def test_parts_reject_bad_parameters(cls, kw, name):
    with pytest.raises((TypeError, ValueError), match=name):
        cls(**kw)
