"""cocotb testbench of the PAG (``hdl.pag``) against ``golden.pag`` with random valid/ready stalls.

The batches run through :func:`run_pag_batches`, written once on the stream harness
(``sim/streams.py``) and shared with the Amaranth tests (``tests/test_pag.py``): drivers for cs/ct,
a monitor for ap, every ap beat compared with the golden model as it arrives; payloads packed and
unpacked with the component's own ``amaranth.lib.data`` layouts.
"""

from __future__ import annotations

import json
import math
import os
import random

import cocotb
import numpy as np

from hdl.pag import ProbabilityAggregation
from hdl.registry import get_block
from sim.bench_pag import BatchRun, PagBatch, directed_batches, golden_of, random_batch
from sim.runner import tb_params, write_stats
from sim.streams import CocotbIO, Scoreboard, Sink, Source, StreamBench, StreamIO, layout_of
from sim.tbutil import start_clock_and_reset, tb_rng, timeout_us

# Timeouts (simulated us) were measured on tests/test_cocotb_pag.py's configurations (n_max <= 40,
# k1_max + k2_max <= 12); larger ones (the default, `attn-rtl bench pag`) scale the bound.
_P = {"k1_max": 64, "k2_max": 64, "n_max": 512, **json.loads(os.environ.get("ATTN_RTL_PARAMS") or "{}")}
_WORK = max(_P["n_max"] / 40, (_P["k1_max"] + _P["k2_max"]) / 12)


def _component() -> ProbabilityAggregation:
    spec = get_block("pag")
    return spec.build(**spec.resolve(tb_params()))


def pag_wait_cycles(comp: ProbabilityAggregation) -> int:
    """One bound for every wait (a beat's handshake, a whole batch's read-out): a batch takes
    about k1+k2 cs beats + n/2 ct beats + READOUT_LATENCY + k1+k2 ap beats, stalls < 2x that."""
    return 10 * (comp.k1_max + comp.k2_max + comp.n_max + comp.READOUT_LATENCY) + 100


def _cs_beats(batch: PagBatch) -> list[list[int]]:
    return [[int(v) for v in batch.cs[:, t]] for t in range(batch.cs.shape[1])]


def _ct_beats(comp: ProbabilityAggregation, batch: PagBatch) -> list[dict]:
    beats = []
    for j in range(0, batch.n, 2):
        second = j + 1 < batch.n  # unused slot of an odd batch's last beat: junk on purpose
        beats.append({
            "ct1": [int(batch.ct1[j]), int(batch.ct1[j + 1]) if second else (1 << comp.ct1_bits) - 1],
            "ct2": [int(batch.ct2[j]), int(batch.ct2[j + 1]) if second else (1 << comp.ct2_bits) - 1],
        })
    return beats


def _expected_beats(comp: ProbabilityAggregation, batch: PagBatch) -> list[dict]:
    ap = golden_of(comp, batch).ap
    k = ap.shape[1]
    return [{"ap": [int(v) for v in ap[:, t]], "last": int(t == k - 1)} for t in range(k)]


async def run_pag_batches(io: StreamIO, comp: ProbabilityAggregation, batches: list[PagBatch], *,
                          p_in: float = 0.0, p_out: float = 0.0, rng: random.Random | None = None,
                          wait_cycles: int | None = None, check: bool = True) -> list[BatchRun]:
    """Run ``batches`` back to back on either adapter: per batch, set k1/k2/n and send its k1+k2
    cs beats and ceil(n/2) ct beats once the previous batch is read out; consume ap with random
    ready gaps (``p_out``; ``p_in`` gaps on valid). With ``check`` every ap beat is compared ``==``
    with ``golden.pag`` as it arrives (``check=False``: counted only, for fault injection and
    golden-invalid inputs). No ap beat may follow the last batch's for a read-out's worth of
    cycles. Returns one :class:`BatchRun` per batch (flags sampled with its last ap beat; transfer
    cycles: first/last cs, ct, ap and first ap valid)."""
    rng = rng or random.Random(1)
    wait = wait_cycles or pag_wait_cycles(comp)
    sizes = [b.cs.shape[1] for b in batches]
    expected: list | int = ([x for b in batches for x in _expected_beats(comp, b)] if check else sum(sizes))
    cs = Source("cs", layout_of(comp.cs.payload), p_stall=p_in, rng=rng, wait_cycles=wait)
    ct = Source("ct", layout_of(comp.ct.payload), p_stall=p_in, rng=rng, wait_cycles=wait)
    ap = Sink("ap", layout_of(comp.ap.payload), Scoreboard("ap beats", expected), p_stall=p_out, rng=rng,
              wait_cycles=wait)
    flag_names = ["add_overflow", "exp_overflow", "ap_overflow", "index_error"]
    state = {"started": 0, "config": {"k1": 0, "k2": 0, "n": 0}}
    flags: list[list[int]] = []
    ends: list[int] = []  # ap beats received when each batch ended

    def before(bench: StreamBench) -> dict:
        i = state["started"]
        if i < len(batches) and len(flags) == i:  # the previous batch is read out: change the config
            batch = batches[i]
            state["config"] = {"k1": batch.k1, "k2": batch.k2, "n": batch.n}
            cs.push(_cs_beats(batch))
            ct.push(_ct_beats(comp, batch))
            state["started"] = i + 1
        return state["config"]

    def after(bench: StreamBench, s) -> None:
        if ap.transfers and ap.transfers[-1] == bench.cycle and ap.beats[-1]["last"]:
            flags.append([s[f] for f in flag_names])
            ends.append(len(ap.beats))

    bench = StreamBench(cs, ct, ap, before=before, after=after, watch=flag_names,
                        until=lambda b: len(flags) == len(batches),
                        deadline_cycles=wait * (len(batches) + 1),
                        drain_cycles=2 * (comp.k1_max + comp.k2_max) + comp.READOUT_LATENCY)
    await bench.run(io)
    assert len(flags) == len(batches), f"expected {len(batches)} batches, got {len(flags)}"
    runs, cs_at, ct_at, ap_at = [], 0, 0, 0
    for i, batch in enumerate(batches):
        n_ct = -(-batch.n // 2)
        beats = ap.beats[ap_at:ends[i]]
        log = {"first_cs": cs.transfers[cs_at], "last_cs": cs.transfers[cs_at + sizes[i] - 1],
               "first_ct": ct.transfers[ct_at], "last_ct": ct.transfers[ct_at + n_ct - 1],
               "first_ap": ap.transfers[ap_at], "last_ap": ap.transfers[ends[i] - 1]}
        prev_end = ap.transfers[ap_at - 1] if ap_at else -1
        log["first_ap_valid"] = next(c for c in ap.valid_cycles if c > prev_end)
        runs.append(BatchRun(np.array([b["ap"] for b in beats], dtype=np.int64).T, *flags[i], cycles=log))
        cs_at, ct_at, ap_at = cs_at + sizes[i], ct_at + n_ct, ends[i]
    return runs


class PagTB:
    def __init__(self, dut, comp: ProbabilityAggregation, p_in: float, p_out: float, salt: int = 0):
        self.dut = dut
        self.comp = comp
        self.p_in, self.p_out = p_in, p_out
        self.rng = tb_rng(salt)
        self.io = CocotbIO(dut)

    async def reset(self) -> None:
        idle = ("cs__valid", "ct__valid", "ap__ready", "k1", "k2", "n")
        await start_clock_and_reset(self.dut, dict.fromkeys(idle, 0))
        await self.io.start()

    async def run(self, batches: list[PagBatch]) -> list[BatchRun]:
        return await run_pag_batches(self.io, self.comp, batches, p_in=self.p_in, p_out=self.p_out, rng=self.rng)

    def check(self, batches: list[PagBatch], runs: list[BatchRun], names=None) -> None:
        assert len(runs) == len(batches), f"expected {len(batches)} batches, got {len(runs)}"
        for k, (batch, run) in enumerate(zip(batches, runs, strict=True)):
            name = names[k] if names else k
            want = golden_of(self.comp, batch)
            assert run.ap.shape == want.ap.shape, (
                f"batch {name}: expected {want.ap.shape[1]} ap beats, got {run.ap.shape[1] if run.ap.ndim == 2 else 0}")
            assert run.ap.tolist() == want.ap.tolist(), f"AP mismatch in batch {name}"
            for got, flag in ((run.add_overflow, want.flags.add), (run.exp_overflow, want.flags.exp),
                              (run.ap_overflow, want.flags.ap)):
                assert got == sum(1 << c for c, f in enumerate(flag) if f), f"flag mismatch in batch {name}"
            assert run.index_error == 0, name


@cocotb.test(**timeout_us(1.5, _WORK))
async def test_random_batches_with_stalls(dut):
    comp = _component()
    tb = PagTB(dut, comp, p_in=0.3, p_out=0.3, salt=1)
    rng = np.random.default_rng(tb.rng.randrange(1 << 30))
    k1m, k2m, nm = comp.k1_max, comp.k2_max, comp.n_max
    shapes = [(nm, k1m, k2m), (max(1, nm // 2 - 1) | 1, max(1, k1m // 2), max(1, k2m - 1)), (7 % nm + 1, 1, 1)]
    batches = [random_batch(rng, comp, n, k1, k2, cs_lo=-(6 << comp.cs_fmt.frac), cs_hi=1 << comp.cs_fmt.frac)
               for n, k1, k2 in shapes]
    await tb.reset()
    runs = await tb.run(batches)
    tb.check(batches, runs)
    write_stats({"random_batches": len(runs)})


@cocotb.test(**timeout_us(3.8, _WORK))
async def test_directed_batches_with_stalls(dut):
    comp = _component()
    tb = PagTB(dut, comp, p_in=0.3, p_out=0.3, salt=2)
    named = directed_batches(comp, np.random.default_rng(tb.rng.randrange(1 << 30)))
    await tb.reset()
    runs = await tb.run(list(named.values()))
    tb.check(list(named.values()), runs, list(named))
    write_stats({"directed_batches": len(runs),
                 "ap_saturation_exercised": bool(golden_of(comp, named["saturate"]).flags.ap.any())})


@cocotb.test(**timeout_us(0.6, _WORK))
async def test_throughput_no_stalls(dut):
    """n_max tokens: ceil(n/2) back-to-back ct beats; first AP beat READOUT_LATENCY after the last."""
    comp = _component()
    tb = PagTB(dut, comp, p_in=0.0, p_out=0.0, salt=3)
    rng = np.random.default_rng(3)
    n = comp.n_max
    batch = random_batch(rng, comp, n, comp.k1_max, comp.k2_max, cs_lo=-(4 << comp.cs_fmt.frac))
    await tb.reset()
    run, = await tb.run([batch])
    tb.check([batch], [run])
    c = run.cycles
    beats = c["last_ct"] - c["first_ct"] + 1
    latency = c["first_ap_valid"] - c["last_ct"]
    assert beats == math.ceil(n / 2), f"{beats} ct beats for n={n}"
    assert latency == comp.READOUT_LATENCY, f"readout latency {latency} != {comp.READOUT_LATENCY}"
    write_stats({"n": n, "ct_beats": beats, "ct_to_ap_cycles": c["first_ap_valid"] - c["first_ct"],
                 "ideal_ct_to_ap": math.ceil(n / 2) + comp.READOUT_LATENCY - 1,
                 "batch_cycles": c["last_ap"] - c["first_cs"] + 1, "readout_latency": latency})
