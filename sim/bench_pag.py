"""PAG throughput benchmark (``attn-rtl bench pag``) and the Amaranth-simulator driver of the PAG.

:func:`simulate_pag` drives :class:`hdl.pag.ProbabilityAggregation` in the Amaranth simulator
through the same transaction script as the cocotb testbench (:func:`sim.tb_pag.run_pag_batches`
on :mod:`sim.streams`: CS and CT sources, an AP sink, optional random valid/ready stalls) and
records the transfer cycles of every batch; the unit tests and this benchmark use it.
The benchmark measures, for n = 128 and 512, the cycles of one batch of ``b`` rows from the first
CT beat to the first AP beat (ideal ``ceil(n/2)`` + the update pipeline depth)
and the whole batch including the CS load and AP readout, and checks AP bit-exactly.
"""

from __future__ import annotations

import argparse
import random
from dataclasses import dataclass, field

import numpy as np

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
                 seed: int = 1, max_cycles: int | None = None, wait_cycles: int | None = None,
                 check: bool = True) -> list[BatchRun]:
    """Run ``batches`` back to back in the Amaranth simulator; ``p_in``: probability a producer
    withholds valid in a cycle, ``p_out``: probability the AP consumer withholds ready. Returns one
    :class:`BatchRun` each.

    The transaction script is the cocotb testbench's (:func:`sim.tb_pag.run_pag_batches`, on the
    shared stream harness :mod:`sim.streams`): ``check`` compares every AP beat ``==`` with
    :func:`golden_of` as it arrives (``False``: counted only). Every wait is bounded
    (:class:`sim.streams.StreamError` naming the stream and beat): a beat's handshake or an AP beat
    after ``wait_cycles`` (default :func:`default_wait_cycles`), the run after ``wait_cycles`` per
    batch plus one, the simulation after ``max_cycles`` (default: one wait more); AP beats past the
    expected ones fail, also in the drain window after the last batch."""
    from sim.streams import run_amaranth
    from sim.tb_pag import run_pag_batches  # (imports this module: not at the top)

    if wait_cycles is None:
        wait_cycles = default_wait_cycles(dut, batches, p_in, p_out)
    if wait_cycles < 1:
        raise ValueError(f"wait_cycles must be >= 1, not {wait_cycles}")
    script = lambda io: run_pag_batches(io, dut, batches, p_in=p_in, p_out=p_out,  # noqa: E731
                                        rng=random.Random(seed), wait_cycles=wait_cycles, check=check)
    # the script ends its run after wait_cycles per batch plus one, and the drain window (< one wait)
    return run_amaranth(dut, script, deadline_cycles=max_cycles or wait_cycles * (len(batches) + 2))


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
    run, = simulate_pag(dut, [batch], check=False)  # compared below: a mismatch prints NO
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
