"""PAG throughput benchmark (``attn-rtl bench pag``) and the Amaranth-simulator driver of the PAG.

:func:`simulate_pag` drives :class:`hdl.pag.ProbabilityAggregation` in the Amaranth simulator
with one process per stream (CS producer, CT producer, AP consumer; optional random valid/ready
stalls) and records the transfer cycles of every batch; the unit tests and this benchmark use it.
The benchmark measures, for n = 128 and 512, the cycles of one batch of ``b`` rows from the first
CT beat to the first AP beat (ideal ``ceil(n/2)`` + the update pipeline depth)
and the whole batch including the CS load and AP readout, and checks AP bit-exactly.
"""

from __future__ import annotations

import argparse
import random
from dataclasses import dataclass, field

import numpy as np
from amaranth.sim import Simulator

from golden.pag import probability_aggregation
from hdl.pag import ProbabilityAggregation, pag_formats_from_params

__all__ = ["PagBatch", "BatchRun", "default_wait_cycles", "simulate_pag", "random_batch", "main"]


@dataclass
class PagBatch:
    cs: np.ndarray  #: raw scores, b × (k1 + k2)
    ct1: np.ndarray  #: (n,)
    ct2: np.ndarray  #: (n,)
    k1: int

    @property
    def k2(self) -> int:
        return self.cs.shape[1] - self.k1

    @property
    def n(self) -> int:
        return int(self.ct1.size)


@dataclass
class BatchRun:
    ap: np.ndarray  #: b × (k1+k2) read from the ap stream
    add_overflow: int
    exp_overflow: int
    ap_overflow: int
    index_error: int
    cycles: dict[str, int] = field(default_factory=dict)  #: transfer cycles of the batch


def random_batch(rng: np.random.Generator, dut: ProbabilityAggregation, n: int, k1: int, k2: int,
                 cs_lo: int | None = None, cs_hi: int | None = None) -> PagBatch:
    fmt = dut.cs_fmt
    lo = fmt.min_int if cs_lo is None else cs_lo
    hi = 0 if cs_hi is None else cs_hi
    cs = rng.integers(lo, hi + 1, (dut.b, k1 + k2))
    return PagBatch(cs, rng.integers(0, k1, n), rng.integers(0, k2, n), k1)


def directed_batches(dut: ProbabilityAggregation, rng: np.random.Generator) -> dict[str, PagBatch]:
    """Corner-case batches for a PAG configuration (``dut`` supplies the parameters only)."""
    k1, k2 = min(4, dut.k1_max), min(3, dut.k2_max)
    n = min(dut.n_max, 40)
    odd = n - 1 if n % 2 == 0 else n
    j = np.arange(n)
    cs_small = dict(cs_lo=-(3 << dut.cs_fmt.frac), cs_hi=1 << max(dut.cs_fmt.frac - 2, 0))
    out: dict[str, PagBatch] = {}
    # One cluster for every token: x1 == x3 and x2 == x4 on every beat (maximal merging) and
    # back-to-back updates of the same entry (forwarding from W every cycle).
    out["same"] = PagBatch(random_batch(rng, dut, n, k1, k2, **cs_small).cs, np.zeros(n, int), np.zeros(n, int), k1)
    # Every token its own cluster, k1 = k1_max and k2 = k2_max (capacity exactly reached).
    nd = min(dut.k1_max, dut.k2_max, dut.n_max)
    out["distinct"] = PagBatch(random_batch(rng, dut, 1, dut.k1_max, dut.k2_max, **cs_small).cs,
                               rng.permutation(dut.k1_max)[:nd], rng.permutation(dut.k2_max)[:nd], dut.k1_max)
    # Alternating clusters: x1 != x3 but equal across beats (W forwarding across lanes) ...
    out["alternate"] = PagBatch(random_batch(rng, dut, n, k1, k2, **cs_small).cs, j % 2, (j // 2) % 2, k1)
    # ... equal two beats apart (W2 forwarding) and periodic mixtures of merges and forwards.
    out["period"] = PagBatch(random_batch(rng, dut, n, k1, k2, **cs_small).cs, (j // 4) % 2, (j // 3) % min(3, k2),
                             k1)
    out["odd"] = PagBatch(random_batch(rng, dut, odd, k1, k2, **cs_small).cs, rng.integers(0, 2, odd),
                          rng.integers(0, k2, odd), k1)
    out["single"] = PagBatch(random_batch(rng, dut, 1, k1, k2).cs, np.array([k1 - 1]), np.array([k2 - 1]), k1)
    # Saturation: the largest scores saturate the exp input / output; all in one cluster pushes AP
    # towards its maximum (it saturates when n * max(e) exceeds the AP format).
    sat = np.full((dut.b, k1 + k2), dut.cs_fmt.max_int, dtype=np.int64)
    sat[0, :] = 0  # row 0 stays in range: per-row flags must differ
    nm = dut.n_max
    out["saturate"] = PagBatch(sat, np.zeros(nm, int), np.zeros(nm, int), k1)
    return out


def default_wait_cycles(dut: ProbabilityAggregation, batches: list[PagBatch], p_in: float, p_out: float) -> int:
    """The longest any stream wait of :func:`simulate_pag` may take: one whole batch (its CS load,
    ceil(n/2) CT beats, the update pipeline and the AP readout, each beat slowed by the stall
    probabilities) with a margin of 8 and 64 cycles of slack. A correct PAG needs at most one batch
    time for any single wait (the longest: a producer waiting for the previous batch's readout)."""
    if not batches:
        return 64
    worst = max(2 * (b.cs.shape[1]) + -(-b.n // 2) for b in batches) + dut.READOUT_LATENCY
    slow = 1.0 / max(1e-3, 1.0 - max(p_in, p_out))
    return int(8 * worst * slow) + 64


def simulate_pag(dut: ProbabilityAggregation, batches: list[PagBatch], *, p_in: float = 0.0, p_out: float = 0.0,
                 seed: int = 1, max_cycles: int = 200_000, wait_cycles: int | None = None) -> list[BatchRun]:
    """Run ``batches`` back to back; ``p_in``: probability a producer withholds valid in a cycle,
    ``p_out``: probability the AP consumer withholds ready. Returns one :class:`BatchRun` each.

    Every wait is bounded: a producer waiting for the previous batch's readout or for ``ready`` on
    one beat, and the consumer waiting for one AP beat, fail (``AssertionError`` from
    :class:`sim.tbutil.CycleDeadline`, naming the stream, batch and beat awaited) after
    ``wait_cycles`` cycles (default :func:`default_wait_cycles`); the whole run after ``max_cycles``."""
    from sim.tbutil import CycleDeadline

    if wait_cycles is None:
        wait_cycles = default_wait_cycles(dut, batches, p_in, p_out)
    if wait_cycles < 1:
        raise ValueError(f"wait_cycles must be >= 1, not {wait_cycles}")
    rng = random.Random(seed)
    started = [0]  # batches whose CS load the producer has begun
    finished = [0]  # batches fully read out
    runs: list[BatchRun] = []
    log: list[dict[str, int]] = [dict() for _ in batches]

    def note(i: int, key: str, cycle: int) -> None:
        log[i].setdefault(f"first_{key}", cycle)
        log[i][f"last_{key}"] = cycle

    async def cs_producer(ctx):
        cycle = 0
        for i, batch in enumerate(batches):
            wait = CycleDeadline(wait_cycles, f"batch {i - 1}'s AP readout before batch {i}'s CS load")
            while finished[0] < i:  # the previous batch must be read out before the config changes
                await ctx.tick()
                cycle += 1
                wait.tick(f"{finished[0]} batches read out")
            ctx.set(dut.k1, batch.k1)
            ctx.set(dut.k2, batch.k2)
            ctx.set(dut.n, batch.n)
            started[0] = i + 1
            t = 0
            wait = CycleDeadline(wait_cycles, f"cs.ready for batch {i}'s CS beat 0 of {batch.cs.shape[1]}")
            while t < batch.cs.shape[1]:
                offer = ctx.get(dut.cs.valid) or rng.random() >= p_in
                ctx.set(dut.cs.valid, offer)
                if offer:
                    ctx.set(dut.cs.payload, [int(v) for v in batch.cs[:, t]])
                ready = ctx.get(dut.cs.ready)
                await ctx.tick()
                if offer and ready:
                    note(i, "cs", cycle)
                    t += 1
                    ctx.set(dut.cs.valid, 0)
                    wait = CycleDeadline(wait_cycles, f"cs.ready for batch {i}'s CS beat {t} of {batch.cs.shape[1]}")
                else:
                    wait.tick()
                cycle += 1
            ctx.set(dut.cs.valid, 0)

    async def ct_producer(ctx):
        cycle = 0
        for i, batch in enumerate(batches):
            wait = CycleDeadline(wait_cycles, f"the start of batch {i}'s CS load before its CT beats")
            while started[0] <= i:
                await ctx.tick()
                cycle += 1
                wait.tick()
            j = 0
            beats = -(-batch.n // 2)
            wait = CycleDeadline(wait_cycles, f"ct.ready for batch {i}'s CT beat 0 of {beats}")
            while j < batch.n:
                offer = ctx.get(dut.ct.valid) or rng.random() >= p_in
                ctx.set(dut.ct.valid, offer)
                if offer:
                    second = j + 1 < batch.n
                    # The unused second slot of an odd batch's last beat carries junk on purpose.
                    ctx.set(dut.ct.payload, {
                        "ct1": [int(batch.ct1[j]), int(batch.ct1[j + 1]) if second else (1 << dut.ct1_bits) - 1],
                        "ct2": [int(batch.ct2[j]), int(batch.ct2[j + 1]) if second else (1 << dut.ct2_bits) - 1],
                    })
                ready = ctx.get(dut.ct.ready)
                await ctx.tick()
                if offer and ready:
                    note(i, "ct", cycle)
                    j += 2
                    ctx.set(dut.ct.valid, 0)
                    wait = CycleDeadline(wait_cycles, f"ct.ready for batch {i}'s CT beat {j // 2} of {beats}")
                else:
                    wait.tick()
                cycle += 1
            ctx.set(dut.ct.valid, 0)

    async def ap_consumer(ctx):
        cycle = 0
        for i, batch in enumerate(batches):
            rows = []
            k = batch.cs.shape[1]
            wait = CycleDeadline(wait_cycles, f"ap.valid for batch {i}'s AP beat 0 of {k}")
            while True:
                take = rng.random() >= p_out
                ctx.set(dut.ap.ready, take)
                valid = ctx.get(dut.ap.valid)
                if valid:
                    log[i].setdefault("first_ap_valid", cycle)
                payload = ctx.get(dut.ap.payload)
                flags = [ctx.get(s) for s in (dut.add_overflow, dut.exp_overflow, dut.ap_overflow, dut.index_error)]
                await ctx.tick()
                cycle += 1
                if cycle > max_cycles:
                    raise TimeoutError(f"PAG batch {i}: no completion after {max_cycles} cycles")
                if valid and take:
                    note(i, "ap", cycle - 1)
                    rows.append([int(v) for v in payload.ap])
                    if payload.last:
                        break
                    wait = CycleDeadline(wait_cycles, f"ap.valid for batch {i}'s AP beat {len(rows)} of {k}")
                elif not valid:  # cycles the consumer itself withholds ready are not the PAG's
                    wait.tick()
            ctx.set(dut.ap.ready, 0)
            runs.append(BatchRun(np.array(rows, dtype=np.int64).T, *flags, cycles=log[i]))
            finished[0] = i + 1

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(cs_producer, background=True)
    sim.add_testbench(ct_producer, background=True)
    sim.add_testbench(ap_consumer)
    sim.run()
    return runs


def golden_of(dut: ProbabilityAggregation, batch: PagBatch):
    return probability_aggregation(batch.cs, batch.ct1, batch.ct2, batch.k1, cs_fmt=dut.cs_fmt,
                                   exp_spec=dut.exp_spec, ap_fmt=dut.ap_fmt)


def _bench_cocotb(sim: str, b: int, k: int, n: int) -> dict:
    """The cocotb throughput test on the generated Verilog (k1 = k1_max = k, k2 = k2_max = k, n = n_max)."""
    from sim.runner import run_cocotb

    res = run_cocotb("pag", {"b": b, "k1_max": k, "k2_max": k, "n_max": n}, sim=sim,
                     testcase="test_throughput_no_stalls")
    if not res.ok:
        raise RuntimeError(f"pag throughput test failed on {sim} (see {res.build_dir}/test.log)")
    return {"beats": res.stats["ct_beats"], "compute": res.stats["ct_to_ap_cycles"],
            "whole": res.stats["batch_cycles"], "exact": True}


def _bench_amaranth(b: int, k: int, n: int) -> dict:
    from hdl.registry import get_block

    params = get_block("pag").resolve({"b": b})
    cs_fmt, exp_spec, ap_fmt = pag_formats_from_params(**params)
    dut = ProbabilityAggregation(b=b, k1_max=max(k, params["k1_max"]), k2_max=max(k, params["k2_max"]),
                                 n_max=max(n, params["n_max"]), cs_fmt=cs_fmt, exp_spec=exp_spec, ap_fmt=ap_fmt)
    batch = random_batch(np.random.default_rng(n), dut, n, k, k, cs_lo=-4 << cs_fmt.frac)
    run, = simulate_pag(dut, [batch])
    c = run.cycles
    return {"beats": c["last_ct"] - c["first_ct"] + 1, "compute": c["first_ap_valid"] - c["first_ct"],
            "whole": c["last_ap"] - c["first_cs"] + 1,
            "exact": bool(np.array_equal(run.ap, golden_of(dut, batch).ap))}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="attn-rtl bench pag", description=__doc__.splitlines()[0])
    ap.add_argument("--b", type=int, default=8, help="tiles (rows per batch)")
    ap.add_argument("--k", type=int, default=32, help="k1 = k2 = K clusters")
    ap.add_argument("--n", type=int, nargs="*", default=[128, 512])
    ap.add_argument("--sim", choices=("amaranth", "icarus", "verilator"), default="amaranth",
                    help="Amaranth simulator (default) or the cocotb throughput test on the generated Verilog")
    args = ap.parse_args(argv or [])
    depth = ProbabilityAggregation.UPDATE_LATENCY
    print(f"PAG b={args.b} k1=k2={args.k}, {args.sim} simulation, no stalls; cycles per batch of b rows")
    print(f"{'n':>5} {'ct beats':>9} {'compute meas':>13} {'ideal n/2+depth':>16} {'batch meas':>11} "
          f"{'batch ideal':>12}  bit-exact")
    status = 0
    for n in args.n:
        r = _bench_amaranth(args.b, args.k, n) if args.sim == "amaranth" else _bench_cocotb(args.sim, args.b,
                                                                                            args.k, n)
        ideal = -(-n // 2) + depth
        ideal_whole = 2 * args.k + ideal + 2 * args.k
        status |= not r["exact"]
        print(f"{n:>5} {r['beats']:>9} {r['compute']:>13} {ideal:>16} {r['whole']:>11} {ideal_whole:>12}  "
              f"{'yes' if r['exact'] else 'NO'}")
    print(f"compute = first CT beat to first AP beat (all updates written); depth = UPDATE_LATENCY = {depth}; "
          "batch = k1+k2 CS beats + compute + k1+k2 AP beats")
    return status


if __name__ == "__main__":
    raise SystemExit(main())
