"""cocotb testbench of the PAG (``hdl.pag``) against ``golden.pag`` with random valid/ready stalls.

One coroutine per stream (CS producer, CT producer, AP consumer), driving after the falling edge
and sampling valid/ready in the read-only phase before the rising edge. Payloads are packed and
unpacked with the component's own ``amaranth.lib.data`` layouts.
"""

from __future__ import annotations

import json
import math
import os

import cocotb
import numpy as np
from amaranth.lib import data
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge

from hdl.pag import ProbabilityAggregation
from hdl.registry import get_block
from sim.bench_pag import BatchRun, PagBatch, directed_batches, golden_of, random_batch
from sim.runner import tb_params, write_stats
from sim.tbutil import CycleDeadline, read_unsigned, start_clock_and_reset, tb_rng, timeout_us

# Timeouts (simulated us) were measured on tests/test_cocotb_pag.py's configurations (n_max <= 40,
# k1_max + k2_max <= 12); larger ones (the default, `attn-rtl bench pag`) scale the bound.
_P = {"k1_max": 64, "k2_max": 64, "n_max": 512, **json.loads(os.environ.get("ATTN_RTL_PARAMS") or "{}")}
_WORK = max(_P["n_max"] / 40, (_P["k1_max"] + _P["k2_max"]) / 12)


def _component() -> ProbabilityAggregation:
    spec = get_block("pag")
    return spec.build(**spec.resolve(tb_params()))


class PagTB:
    def __init__(self, dut, comp: ProbabilityAggregation, p_in: float, p_out: float, salt: int = 0):
        self.dut = dut
        self.comp = comp
        self.p_in, self.p_out = p_in, p_out
        self.rng = tb_rng(salt)
        self.cs_layout = data.Layout.cast(comp.cs.payload.shape())
        self.ct_layout = data.Layout.cast(comp.ct.payload.shape())
        self.ap_layout = data.Layout.cast(comp.ap.payload.shape())
        self.cycle = 0
        # one bound for every wait (a beat's handshake, a whole batch's read-out): a batch takes
        # about k1+k2 cs beats + n/2 ct beats + READOUT_LATENCY + k1+k2 ap beats, stalls < 2x that
        self.wait_cycles = 10 * (comp.k1_max + comp.k2_max + comp.n_max + comp.READOUT_LATENCY) + 100

    async def reset(self) -> None:
        idle = ("cs__valid", "ct__valid", "ap__ready", "k1", "k2", "n")
        await start_clock_and_reset(self.dut, dict.fromkeys(idle, 0))
        cocotb.start_soon(self._count())

    async def _count(self) -> None:
        while True:
            await RisingEdge(self.dut.clk)
            self.cycle += 1

    async def _produce(self, name: str, beats_of, batches, started, finished, log, is_cs: bool) -> None:
        d = self.dut
        valid, ready, payload = (getattr(d, f"{name}__{s}") for s in ("valid", "ready", "payload"))
        for i, batch in enumerate(batches):
            turn = CycleDeadline(self.wait_cycles, f"batch {i} to start before driving {name}")
            while (finished[0] < i) if is_cs else (started[0] <= i):
                await FallingEdge(d.clk)
                turn.tick()
            if is_cs:
                d.k1.value, d.k2.value, d.n.value = batch.k1, batch.k2, batch.n
                started[0] = i + 1
            beats = beats_of(batch)
            t = 0
            holding = False
            deadline = CycleDeadline(self.wait_cycles, f"{name}.ready")
            while t < len(beats):
                await FallingEdge(d.clk)
                deadline.tick(f"batch {i}, beat {t + 1} of {len(beats)}")
                if not holding and self.rng.random() >= self.p_in:
                    payload.value = beats[t]
                    holding = True
                valid.value = int(holding)
                await ReadOnly()
                fire = holding and read_unsigned(ready)
                cycle = self.cycle
                await RisingEdge(d.clk)
                if fire:
                    log[i].setdefault(f"first_{name}", cycle)
                    log[i][f"last_{name}"] = cycle
                    t += 1
                    holding = False
                    deadline = CycleDeadline(self.wait_cycles, f"{name}.ready")
            await FallingEdge(d.clk)
            valid.value = 0

    def _cs_beats(self, batch: PagBatch) -> list[int]:
        return [self.cs_layout.const([int(v) for v in batch.cs[:, t]]).as_value().value
                for t in range(batch.cs.shape[1])]

    def _ct_beats(self, batch: PagBatch) -> list[int]:
        c = self.comp
        beats = []
        for j in range(0, batch.n, 2):
            second = j + 1 < batch.n  # unused slot of an odd batch's last beat: junk on purpose
            beats.append(self.ct_layout.const({
                "ct1": [int(batch.ct1[j]), int(batch.ct1[j + 1]) if second else (1 << c.ct1_bits) - 1],
                "ct2": [int(batch.ct2[j]), int(batch.ct2[j + 1]) if second else (1 << c.ct2_bits) - 1],
            }).as_value().value)
        return beats

    async def _consume(self, batches, finished, log, runs) -> None:
        d = self.dut
        for i in range(len(batches)):
            rows = []
            deadline = CycleDeadline(self.wait_cycles, f"ap beats of batch {i} up to last")
            while True:
                await FallingEdge(d.clk)
                deadline.tick(f"got {len(rows)}")
                take = self.rng.random() >= self.p_out
                d.ap__ready.value = int(take)
                await ReadOnly()
                valid = read_unsigned(d.ap__valid)
                cycle = self.cycle
                if valid:
                    log[i].setdefault("first_ap_valid", cycle)
                fire = valid and take
                if fire:
                    beat = self.ap_layout.from_bits(read_unsigned(d.ap__payload))
                    rows.append([int(v) for v in beat.ap])
                    flags = [read_unsigned(getattr(d, f)) for f in
                             ("add_overflow", "exp_overflow", "ap_overflow", "index_error")]
                    log[i].setdefault("first_ap", cycle)
                    log[i]["last_ap"] = cycle
                await RisingEdge(d.clk)
                if fire and beat.last:
                    break
            runs.append(BatchRun(np.array(rows, dtype=np.int64).T, *flags, cycles=log[i]))
            finished[0] = i + 1
        # nothing may follow the last expected beat: keep ready high for a read-out's worth of cycles
        for _ in range(2 * (self.comp.k1_max + self.comp.k2_max) + self.comp.READOUT_LATENCY):
            await FallingEdge(d.clk)
            d.ap__ready.value = 1
            await ReadOnly()
            assert not read_unsigned(d.ap__valid), f"ap beat after the last expected one ({len(batches)} batches)"
        await FallingEdge(d.clk)
        d.ap__ready.value = 0

    async def run(self, batches: list[PagBatch]) -> list[BatchRun]:
        started, finished = [0], [0]
        log: list[dict] = [dict() for _ in batches]
        runs: list[BatchRun] = []
        cocotb.start_soon(self._produce("cs", self._cs_beats, batches, started, finished, log, True))
        cocotb.start_soon(self._produce("ct", self._ct_beats, batches, started, finished, log, False))
        await self._consume(batches, finished, log, runs)
        return runs

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
