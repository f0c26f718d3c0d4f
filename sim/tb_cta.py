# amaranth: UnusedElaboratable=no
"""cocotb testbench of the ``cta`` block (the whole CTA accelerator) against golden.cta.

:class:`CtaTB` owns the clock, reset, the ``load`` driver (random valid gaps), the ``o`` monitor
(random ready drops, every row compared ``==`` with the golden one as it arrives) and the register
interface, all on the shared stream harness (:mod:`sim.streams`); heads come from the golden package
(:func:`golden.cta.cta_fixed_trace`, :func:`golden.cta_host.load_beats`). Tests: random heads back to
back (m != n, d_in over several passes, stalls), a refused run (wrong d_h) between them, and a head
handed over in a pickle (``CTA_HEAD``: (shape, trace), written by ``attn-rtl run``). Every wait has a
cycle deadline; the row count is explicit; a row after the last one, also within the drain window
after ``done``, fails the test.
"""

from __future__ import annotations

import os
import pickle
import random
import time
from typing import Any

import numpy as np

from golden.cta import CTAFixedTrace, cta_fixed_trace
from golden.cta_host import CtaShape, load_beats
from golden.lsh import make_lsh_params
from golden.reference import HeadInputs

__all__ = ["random_head", "make_trace", "expected_rows", "CtaTB"]

SA_FLAGS = ("hash_saturated", "linear_saturated", "score_saturated", "output_saturated")


def random_head(rng: np.random.Generator, m: int, n: int, d_in: int, d_h: int, clusters: int,
                noise: float = 0.1) -> HeadInputs:
    """Tokens around ``clusters`` random centres (so that LSH finds clusters), small weights."""
    centres = rng.normal(size=(clusters, d_in)) * 2
    x_q = centres[rng.integers(0, clusters, m)] + noise * rng.normal(size=(m, d_in))
    x_kv = centres[rng.integers(0, clusters, n)] + noise * rng.normal(size=(n, d_in))
    w = [rng.normal(size=(d_in, d_h)) / np.sqrt(d_in) for _ in range(3)]
    return HeadInputs(x_q, x_kv, *w, *(rng.normal(size=d_h) * 0.5 for _ in range(3)))


def make_trace(shape: CtaShape, head: HeadInputs, *, widths: Any = (1.5, 1.5, 0.7), seed: int = 0) -> CTAFixedTrace:
    """The bit-exact golden run of ``head`` on a block of ``shape`` (its formats and capacities)."""
    params = make_lsh_params(head.d_in, l=shape.l, widths=widths, seed=seed)
    return cta_fixed_trace(head, lsh=params, cfg=shape.cfg, k_max=shape.clusters, exp_spec=shape.exp_spec,
                           n_max=shape.n_max)


def _latencies(shape: CtaShape) -> dict[str, int]:
    from hdl.cta import cta_cycle_latencies

    return cta_cycle_latencies(shape)


def lsh_steps_run(trace: CTAFixedTrace) -> int:
    """How many LSH steps (CIM clears) a run does: a capacity overflow ends it after that step."""
    for steps, level in enumerate((1, 0, 2), start=1):
        if trace.flags.get(f"cim{level}_overflow"):
            return steps
    return 3


def model_cycles(shape: CtaShape, trace: CTAFixedTrace, *, bounds: bool = False,
                 clears_before: int = 0) -> dict[str, int]:
    """Cycles per step of the run from :func:`golden.cta_cycles.cta_step_cycles` and the block's
    latency constants (:meth:`hdl.cta.Cta.cycle_latencies`), with the CIM sweeps of the run's epoch
    wraps after ``clears_before`` CIM clears since reset; ``bounds``: the array's own limit per step
    instead (:func:`golden.cta_cycles.cta_step_bounds`)."""
    from golden.cta_cycles import cta_step_bounds, cta_step_cycles, wrap_sweeps

    lat = _latencies(shape)
    sizes = dict(m=trace.x_q.shape[0], n=trace.x_kv.shape[0], d_in=trace.x_q.shape[1], k0=trace.k0, k1=trace.k1,
                 k2=trace.k2, cfg=shape.cfg, l=shape.l, d_h=shape.d_h, lat=lat)
    if bounds:
        return cta_step_bounds(**sizes)
    return cta_step_cycles(**sizes, sweeps=wrap_sweeps(clears_before, lsh_steps_run(trace), lat))


def check_cycles(shape: CtaShape, trace: CTAFixedTrace, cycles: dict[str, int], host_stalls: bool,
                 clears_before: int = 0) -> None:
    """Every step counter == the golden cycle model (READ only without host stalls on ``o``; SWEEP
    includes the CIM's sweep after reset in the first run after it, so is a lower bound there)."""
    model = model_cycles(shape, trace, clears_before=clears_before)
    for step, want in model.items():
        if (step == "READ" and host_stalls) or (step == "SWEEP" and clears_before == 0):
            assert cycles[step] >= want, f"{step} {cycles[step]} cycles < model {want}"
            continue
        assert cycles[step] == want, (f"step {step}: RTL {cycles[step]} cycles != golden cycle model {want} "
                                      f"(RTL {cycles}, model {model})")


def expected_status(trace: CTAFixedTrace) -> dict[str, int]:
    """The status registers after the run. A cluster-capacity overflow stops the run after the first
    LSH step (in order LSH1, LSH0, LSH2) that overflows: the k of the steps that ran are those of the
    golden model (the overflowing one at its capacity), the others 0, and the array flags are not
    compared (the later steps did not run)."""
    want = {"k0": trace.k0, "k1": trace.k1, "k2": trace.k2,
            "sa_overflow": int(any(trace.flags[k] for k in SA_FLAGS)),
            "capacity_error": int(trace.flags["cim_overflow"])}
    if want["capacity_error"]:
        del want["sa_overflow"]
        ran = ["k1", "k0", "k2"]
        stop = next(level for level in (1, 0, 2) if trace.flags[f"cim{level}_overflow"])
        for k in ran[ran.index(f"k{stop}") + 1:]:
            want[k] = 0
    return want


try:
    import cocotb
except ImportError:  # pragma: no cover - cocotb is a dependency
    cocotb = None


def expected_rows(shape: CtaShape, trace: CTAFixedTrace) -> list[list[int]]:
    """The ``o`` rows of a run as the monitor collates them (``d`` lanes, then ``last``): the golden
    output in the first ``d_h`` lanes, zeros past it, ``last`` on row m-1; none after a capacity error."""
    if trace.flags["cim_overflow"]:
        return []
    d, d_h, m = shape.cfg.d, shape.d_h, trace.out.shape[0]
    return [[int(v) for v in trace.out[i]] + [0] * (d - d_h) + [int(i == m - 1)] for i in range(m)]


class CtaTB:
    """Clock, reset, the ``load`` driver, the ``o`` monitor and the registers of one ``cta`` DUT, on
    the shared stream harness (:mod:`sim.streams`, cocotb adapter); payloads packed and unpacked
    with the component's own ``lib.data`` layouts."""

    #: cycles after ``done`` in which ``o`` is ready and any further row fails the run
    DRAIN_CYCLES = 16

    def __init__(self, dut, shape: CtaShape, stall: float = 0.0, rng: random.Random | None = None) -> None:
        from hdl.cta import Cta
        from sim.streams import CocotbIO, layout_of

        self.dut, self.shape, self.stall = dut, shape, stall
        self.rng = rng or random.Random(1)
        self.clears = 0     # CIM clears since reset (the cycle model places the epoch-wrap sweeps by it)
        comp = Cta(shape=shape)
        self.load_layout = layout_of(comp.load.payload)
        self.o_layout = layout_of(comp.o.payload)
        self.cycles_layout = layout_of(comp.cycles)
        self.io = CocotbIO(dut)

    async def reset(self) -> None:
        from sim.tbutil import start_clock_and_reset

        await start_clock_and_reset(self.dut, {"load__valid": 0, "o__ready": 0, "start": 0})
        await self.io.start()
        self.clears = 0

    async def load(self, beats: list[dict[str, Any]], deadline_per_beat: int = 50) -> None:
        """Send ``beats`` on ``load`` (random valid gaps); each beat must be taken within
        ``deadline_per_beat`` cycles of being offered."""
        from sim.streams import Source, StreamBench

        src = Source("load", self.load_layout, beats, p_stall=self.stall, rng=self.rng, wait_cycles=deadline_per_beat)
        gaps = int(len(beats) / (1.0 - self.stall)) * 2 + 64   # valid gaps of the driver itself
        await StreamBench(src, deadline_cycles=len(beats) * deadline_per_beat + gaps).run(self.io)

    async def run(self, m: int, n: int, d_in: int, d_h: int, deadline: int,
                  expected: list[list[int]] | int = 0) -> tuple[list[list[int]], dict]:
        """Start a run, receive its ``o`` rows (random ready), return (rows, status).

        ``expected``: the rows (compared ``==`` as they arrive, see :func:`expected_rows`) or their
        count; fails on a row past the last expected one (also in the drain window after ``done``),
        on fewer rows than expected once the run is done, and when ``done`` is not reached within
        ``deadline`` cycles. The default 0: no row may arrive (a refused run)."""
        from hdl.cta import STEPS
        from sim.streams import Scoreboard, Sink, StreamBench, StreamError, unpack

        config = {"m": m, "n": n, "d_in": d_in, "d_h": d_h}
        rows = Scoreboard("o rows", expected)
        sink = Sink("o", self.o_layout, rows, p_stall=self.stall, rng=self.rng, wait_cycles=deadline,
                    collate=lambda beats: beats[0]["data"] + [beats[0]["last"]])

        def finished(bench: StreamBench) -> bool:
            return bool(bench.samples.get("done")) and not bench.samples.get("busy")

        def after(bench: StreamBench, s) -> None:
            # no row follows done (the drain window checks it), so missing rows fail right here
            if finished(bench) and not rows.complete:
                raise StreamError(f"o rows: run done (cycle {bench.cycle}) with {len(rows.items)} rows, "
                                  f"expected {rows.expected}")

        await self.io.step({**config, "start": 1}, [])  # the registers hold their values after it
        bench = StreamBench(sink, deadline_cycles=deadline, drain_cycles=self.DRAIN_CYCLES,
                            before=lambda b: None if b.cycle else {"start": 0}, after=after, until=finished,
                            watch=["done", "busy"])
        try:
            await bench.run(self.io)
        except StreamError as exc:
            if not hasattr(self.dut, "fsm_state"):  # (only where the simulator exposes the sequencer)
                raise
            state = (await self.io.peek(["fsm_state"]))["fsm_state"]
            raise StreamError(f"{exc} (sequencer state {state})") from None
        names = ("k0", "k1", "k2", "size_error", "capacity_error", "sa_overflow", "protocol_error", "busy")
        status: dict[str, Any] = await self.io.peek(names + ("cycles",))
        status["cycles"] = dict(zip(STEPS, unpack(self.cycles_layout, status["cycles"]), strict=True))
        return rows.items, status

    def check(self, trace: CTAFixedTrace, rows: list[list[int]], status: dict) -> None:
        """Status, cycle counters and rows of a run == the golden run (rows also when they came
        through another path, e.g. the AXI testbench)."""
        want = expected_status(trace)
        got = {k: status[k] for k in want}
        assert got == want, f"status {got} != golden {want}"
        assert status["size_error"] == 0 and status["protocol_error"] == 0 and status["busy"] == 0, status
        clears_before, self.clears = self.clears, self.clears + lsh_steps_run(trace)
        if want["capacity_error"]:
            assert rows == [], "rows after a capacity error"
            return
        check_cycles(self.shape, trace, status["cycles"], host_stalls=bool(self.stall), clears_before=clears_before)
        golden = expected_rows(self.shape, trace)
        assert len(rows) == len(golden), f"expected {len(golden)} rows, got {len(rows)}"
        for i, (row, want_row) in enumerate(zip(rows, golden, strict=True)):
            assert row == want_row, f"row {i}: RTL {row} != golden {want_row} (d lanes, then last)"


def _shape_from_env() -> CtaShape:
    from hdl.cta import shape_from_params
    from sim.runner import tb_params

    return shape_from_params(tb_params())


def _deadline(shape: CtaShape, m: int, n: int, d_in: int) -> int:
    """Generous bound on a run's cycles (the sequential steps, each with its fill and drain)."""
    cfg = shape.cfg
    passes = cfg.passes(d_in)
    k = shape.clusters
    per_pass = (shape.l + max(m, n)) * 3 + 3 * max(m, n) + 2 * shape.kv_groups * (cfg.b + 2 * k)
    batches = -(-k // cfg.b)
    attention = batches * (passes * (cfg.b + shape.d_h) + 2 * k + n + 4 * (cfg.b + cfg.d) + 100)
    from golden.cim import layer_capacities

    caps = layer_capacities(shape.l, cfg.hash_fmt.width, k)
    sweep = max(p << cfg.hash_fmt.width for p in [1] + caps[:-1])    # CIM memory sweep (reset, epoch wrap)
    return 4 * (passes * per_pass + attention + m) + 20 * (cfg.b + cfg.d + 50) + 4 * sweep


#: directed cases of test_random_heads (the clusters entry): one cluster for everything, every token its own
ONE_CLUSTER, OWN_CLUSTERS = 1001, 1002


if cocotb is not None:

    @cocotb.test(timeout_time=50, timeout_unit="ms")
    async def test_random_heads(dut):
        """Random heads back to back with random stalls, a refused run in between; rows == golden."""
        from sim.runner import write_stats

        shape = _shape_from_env()
        seed = int(os.environ.get("RANDOM_SEED", "1"))
        stall = float(os.environ.get("CTA_STALL", "0.25"))
        cocotb.log.info(f"RANDOM_SEED={seed} stall probability {stall} (load valid gaps, o ready drops)")
        tb = CtaTB(dut, shape, stall=stall, rng=random.Random(seed))
        rng = np.random.default_rng(seed & 0xFFFFFFFF)
        await tb.reset()
        d, n_max = shape.cfg.d, shape.n_max
        cases = [(min(n_max, 6), min(n_max, 7), 2 * d + 1, 3), (min(n_max, 7), min(n_max, 5), d, 3),
                 (min(n_max, 5), min(n_max, 8), 3 * d - 1, 3)]
        # directed: one cluster for everything (wide buckets), every token its own cluster (narrow)
        cases += [(5, 6, d + 1, ONE_CLUSTER), (min(n_max, 5), min(n_max, 6), d + 1, OWN_CLUSTERS)]
        if n_max > 16:      # a long run: n = n_max, m != n, many clusters
            cases.append((n_max - 3, n_max, 3 * d - 1, 9))
        if shape.k_max and shape.k_max < n_max:
            # more query clusters than k_max: refused after LSH0 (with C1 on the CAG beside it), then a
            # normal head (nothing corrupted)
            cases += [(n_max, min(n_max, 8), 2 * d + 1, -1), cases[0]]
        figures = []
        for k, (m, n, d_in, clusters) in enumerate(cases):
            d_in = min(d_in, shape.cfg.d_in_max)
            for _attempt in range(20):     # (directed cases: draw until the wanted clustering)
                centres = 1 if clusters == ONE_CLUSTER else max(clusters, 1)
                head = random_head(rng, m, n, d_in, shape.d_h, clusters=centres, noise=0.1 if clusters > 0 else 3)
                widths = {-1: (3.0, 1e3, 0.7), ONE_CLUSTER: (1e3, 1e3, 1e3),
                          OWN_CLUSTERS: (0.3, 0.3, 0.3)}.get(clusters, (1.5, 1.5, 0.7))
                trace = make_trace(shape, head, widths=widths, seed=seed + k)
                wanted = {-1: trace.flags["cim_overflow"] and trace.k1 <= shape.k_max,
                          ONE_CLUSTER: (trace.k0, trace.k1, trace.k2) == (1, 1, 1),
                          OWN_CLUSTERS: (trace.k0, trace.k1) == (m, n)}
                if wanted.get(clusters, True):
                    break
            else:
                raise AssertionError(f"case {k}: no head with the wanted clustering in 20 draws")
            await tb.load(load_beats(trace, shape))
            rows, status = await tb.run(m, n, d_in, shape.d_h, _deadline(shape, m, n, d_in),
                                        expected_rows(shape, trace))
            cocotb.log.info(f"case {k}: m {m} n {n} d_in {d_in} k {[trace.k0, trace.k1, trace.k2]}")
            tb.check(trace, rows, status)
            # the figures are what the RTL reported (tb.check compared them with the golden model)
            figures.append({"m": m, "n": n, "d_in": d_in, "k": [status["k0"], status["k1"], status["k2"]],
                            "capacity_error": status["capacity_error"],
                            "cycles": status["cycles"]})
            if k == 0:   # a refused run: nothing runs, nothing is corrupted (the next head still passes)
                rows, status = await tb.run(m, n, d_in, shape.d_h - 1 if shape.d_h > 1 else 2, 100)
                assert status["size_error"] == 1 and rows == [] and sum(status["cycles"].values()) == 0
        write_stats({"heads": figures})

    @cocotb.test(skip=not os.environ.get("CTA_HEAD"), timeout_time=1000, timeout_unit="ms")
    async def test_head_file(dut):
        """The head in ``CTA_HEAD`` (pickled (shape, trace)): rows and status == golden."""
        from sim.runner import write_stats

        with open(os.environ["CTA_HEAD"], "rb") as fh:
            shape, trace = pickle.load(fh)
        assert shape == _shape_from_env(), "the pickled head is for another cta configuration"
        tb = CtaTB(dut, shape, stall=0.0)
        await tb.reset()
        await tb.load(load_beats(trace, shape))
        m, n, d_in = trace.x_q.shape[0], trace.x_kv.shape[0], trace.x_q.shape[1]
        t0 = time.monotonic()
        rows, status = await tb.run(m, n, d_in, shape.d_h, _deadline(shape, m, n, d_in), expected_rows(shape, trace))
        seconds = time.monotonic() - t0
        tb.check(trace, rows, status)
        write_stats({"head": {"cycles": status["cycles"], "k": [status["k0"], status["k1"], status["k2"]],
                              "rows": len(rows), "sim_seconds": seconds}})

