"""The formal jobs: every block with ``lib.stream`` ports at a small configuration.

``cta`` (the whole head: systolic array, CIM, CAG, PAG, on-chip memories, sequencer) is proved at
:data:`CTA_SMALL`: its ``load`` / ``o`` rules close by k-induction at depth 3 (its registers
``m``, ``n``, ``d_in``, ``d_h`` free every cycle); its stream sub-blocks are also proved alone.
``pe``, ``ppe``, ``exp_unit`` and ``recip_unit`` have
no stream ports (fixed-latency valid/operand pipes).
``softmax_pv`` is not a registry block (the shared back end of LATTE and E-ATT) and is built
directly."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from amaranth.lib import wiring

from hdl import faults as hdl_faults

from .harness import FormalResult, check
from .invariants import (
    cag_counts,
    cag_counts_free,
    cim_bypass,
    cim_bypass_free,
    latte_cover_run,
    latte_output,
    latte_output_pinned,
    pag_updates,
    pag_updates_free,
)
from .ready import READY_FANIN, ReadyWaitsForValid, check_ready

__all__ = ["Job", "JOBS", "MUTANTS", "SKIPPED", "run_job", "select"]


@dataclass(frozen=True)
class Job:
    name: str
    block: str
    params: dict[str, Any] = field(default_factory=dict)
    mode: str = "prove"
    depth: int = 4
    #: run-configuration inputs held outside reset (see formal.harness)
    static: tuple[str, ...] = ()
    #: in the fast subset run by the default test suite
    fast: bool = False
    #: builds the component when the block is not in hdl.registry
    build: Callable[[], wiring.Component] | None = None
    #: a block invariant (formal.invariants): its property function and free constants
    properties: Callable[..., None] | None = None
    free: Callable[[wiring.Component], dict[str, Any]] | None = None
    #: what the job proves, for the table
    what: str = "stream rules"
    #: depth of the reachability run of ``--cover`` (0: none; a k-induction proof needs none)
    cover_depth: int = 0
    #: memories as flip-flops in the solver model (small memories: much faster, see formal.harness)
    memory_map: bool = False
    #: assumptions added for the ``--cover`` run only (pins a configuration the search reaches fast)
    cover_assume: Callable[..., None] | None = None
    #: "sby" (SymbiYosys on the harness) or "ready" (the structural ready fan-in check of
    #: formal.ready; ``build`` gives the components and their documented fan-in)
    kind: str = "sby"

    def component(self) -> wiring.Component:
        if self.build is not None:
            return self.build()
        from hdl.registry import get_block

        component, _ = get_block(self.block).elaborate(self.params)
        return component


def _cag(faults: tuple[str, ...] = (), **kwargs: Any) -> Callable[[], wiring.Component]:
    def build() -> wiring.Component:
        from hdl.cag import CentroidAggregator

        with hdl_faults.injected(CentroidAggregator, *faults):
            return CentroidAggregator(**kwargs)

    return build


def _cim(faults: tuple[str, ...] = (), **kwargs: Any) -> Callable[[], wiring.Component]:
    def build() -> wiring.Component:
        from hdl.cim import ClusterIndexModule

        with hdl_faults.injected(ClusterIndexModule, *faults):
            return ClusterIndexModule(**kwargs)

    return build


def _latte_no_stall() -> wiring.Component:
    """The mutant of the ``latte`` job: a LATTE whose Normalizer ignores ``o.ready`` (fault
    ``no_stall`` of :class:`hdl.latte.LatteBack`), so a beat waiting for ready is replaced by the
    next one or dropped."""
    from hdl.latte import Latte

    with hdl_faults.injected(Latte, "no_stall"):
        return Latte(**LATTE_SMALL)


def _pag(faults: frozenset[str] = frozenset(), **params: Any) -> Callable[[], wiring.Component]:
    def build() -> wiring.Component:
        from hdl.pag import ProbabilityAggregation, pag_formats_from_params
        from hdl.registry import get_block

        p = get_block("pag").resolve(params)
        cs_fmt, exp_spec, ap_fmt = pag_formats_from_params(**p)
        with hdl_faults.injected(ProbabilityAggregation, *faults):
            return ProbabilityAggregation(b=p["b"], k1_max=p["k1_max"], k2_max=p["k2_max"], n_max=p["n_max"],
                                          cs_fmt=cs_fmt, exp_spec=exp_spec, ap_fmt=ap_fmt)

    return build


def _softmax_pv(softmax: bool) -> Callable[[], wiring.Component]:
    def build() -> wiring.Component:
        from golden.softmax_pv import SoftmaxPVFormats
        from hdl.softmax_pv import SoftmaxPV

        return SoftmaxPV(d=2, lanes=1, fmts=SoftmaxPVFormats(4, softmax=softmax))

    return build


def _ready_all() -> list[tuple[str, wiring.Component, dict]]:
    """Every job's block with a documented ready promise (formal.ready.READY_FANIN)."""
    return [(j.name, j.component(), READY_FANIN[j.name]) for j in JOBS if j.name in READY_FANIN]


def _ready_mutant() -> list[tuple[str, wiring.Component, dict]]:
    return [("cag", ReadyWaitsForValid(_cag(**CAG_SMALL)(), "i"), READY_FANIN["cag"])]


def _run_ready(job: Job) -> FormalResult:
    assert job.build is not None
    results = [check_ready(component, name, fanin) for name, component, fanin in job.build()]
    failed = [f"{r.name}: {r.detail}" for r in results if r.status != "PASS"]
    ports = [(f"{r.name}.{p}", k) for r in results for p, k in r.ports]
    return FormalResult(job.name, ports if len(results) == 1 else [(f"{len(ports)} sinks", "in")], "struct", 0,
                        "FAIL" if failed else "PASS", sum(r.seconds for r in results), "; ".join(failed))


#: small configurations (those of tests/test_cocotb_*.py or smaller)
# (CIM: few nodes, so that its memory sweep after reset ends within the cover depth)
CIM_SMALL = {"l": 3, "hash_width": 2, "n_max": 8, "k_max": 4, "epoch_bits": 1}
CAG_SMALL = {"d": 4, "k_max": 16, "n_max": 64}
PAG_SMALL = {"b": 2, "k1_max": 4, "k2_max": 3, "n_max": 8, "ap_width": 20}
LATTE_SMALL = {"n_max": 2, "d_h": 2, "lanes": 2}
LATTE_STATIC = ("n_keys", "n_queries", "tau", "scale_mant", "scale_shift")
# golden.latte_cycles.latte_cycles_per_head(1, [1], ...) of LATTE_SMALL is 58: first o beat at step
# 59 (tests/test_formal.py checks the margin against the cycle model), in the cover run and in the
# pinned bmc of the mutant (56 / 57 before the PV operand register and the reciprocal index register)
LATTE_COVER_DEPTH = 62
LATTE_MUTANT_DEPTH = 60
MCA_SMALL = {"d_in": 4, "d_h": 2, "n_max": 4, "m_max": 4, "lanes": 1}
EATT_SMALL = {"d_in": 4, "d_h": 2, "n_max": 4}
CAG_COUNTS = {"d": 1, "k_max": 4, "n_max": 32}
# depth 24 did not answer in 900 s on the loaded machine; the ablations fail at steps 18 and 19
# (since the reciprocal lookup took its fifth stage; 17 and 18 before)
CAG_COUNTS_DEPTH = 20
# 1-bit hashes: every token shares nodes, so reads of in-flight allocations are common; a 4-entry
# sweep after reset; 2 epoch bits, so a second run sees the first run's entries as stale
CIM_BYPASS = {"l": 3, "hash_width": 1, "n_max": 8, "k_max": 4, "nodes_per_layer": 2,
              "epoch_bits": 2}
CIM_BYPASS_DEPTH = 16  # steps 0-15 in ~2 min; each further step about doubles the time
PAG_UPDATES_DEPTH = 18  # the ablations fail at steps 14 and 15
PAG_UPDATES = {"b": 1, "k1_max": 2, "k2_max": 2, "n_max": 4, "ap_width": 20}
# a small CTA at the default formats: 4-column array, 4 hash functions, 16 tokens, d_in up to 16
CTA_SMALL = {"b": 4, "d": 8, "l": 4, "n_max": 16, "d_in_max": 16}
SA_SMALL = {"b": 2, "d": 4, "acc_width": 30, "score_width": 10, "score_frac": 4, "hash_width": 4, "den_width": 18}

JOBS: list[Job] = [
    Job("cim", "cim", CIM_SMALL, "prove", 4),
    Job("cim_skew", "cim", {**CIM_SMALL, "internal_skew": True, "nodes_per_layer": 3}, "prove", 4, fast=True),
    Job("cag", "cag", CAG_SMALL, "bmc", 20, cover_depth=20),
    Job("pag", "pag", PAG_SMALL, "bmc", 20, cover_depth=20, static=("k1", "k2", "n")),
    # k-induction closes with the helper invariants of formal.invariants.latte_output (asserted,
    # so proved too). No --cover run (an induction proof needs none; the pinned cover at depth 62
    # took 901 s): the mutant latte_no_stall's failing trace is a real run from reset to an o beat.
    Job("latte", "latte", LATTE_SMALL, "prove", 3, cover_assume=latte_cover_run,
        static=LATTE_STATIC, properties=latte_output, what="stream rules + output pipe invariant",
        memory_map=True, fast=True),
    Job("mca", "mca", MCA_SMALL, "prove", 4, static=("seed", "inv_alpha", "n_keys", "n_queries")),
    Job("eatt", "eatt", {**EATT_SMALL, "lanes": 1}, "prove", 4,
        static=("tau", "n_keys", "n_queries", "scale_mant", "scale_shift")),
    Job("eatt_align", "eatt_align", EATT_SMALL, "prove", 4, static=("tau", "n_keys", "n_queries"), fast=True),
    Job("softmax_pv", "softmax_pv", mode="prove", depth=4,
        static=("n_keys", "n_rows", "scale_mant", "scale_shift"), fast=True, build=_softmax_pv(True)),
    Job("softmax_pv_prob", "softmax_pv", mode="prove", depth=4, static=("n_keys", "n_rows"),
        build=_softmax_pv(False)),
    Job("systolic_array", "systolic_array", SA_SMALL, "prove", 4),
    Job("cta", "cta", CTA_SMALL, "prove", 3),
    # the CAG run register never double-counts or loses a token (n_max > depth)
    Job("cag_counts", "cag", mode="bmc", depth=CAG_COUNTS_DEPTH, build=_cag(**CAG_COUNTS), properties=cag_counts,
        free=cag_counts_free, what="stream rules + per-cluster count", cover_depth=CAG_COUNTS_DEPTH),
    # the PAG merge / forwarding never loses an update (AP counts tokens when every score is 0)
    Job("pag_updates", "pag", mode="bmc", depth=PAG_UPDATES_DEPTH, build=_pag(**PAG_UPDATES), static=("k1", "k2", "n"),
        properties=pag_updates, free=pag_updates_free, what="stream rules + no lost AP update",
        cover_depth=PAG_UPDATES_DEPTH),
    # a CIM token never reads a stale node (the write bypass covers in-flight allocations)
    Job("cim_bypass", "cim", mode="bmc", depth=CIM_BYPASS_DEPTH, build=_cim(**CIM_BYPASS), properties=cim_bypass,
        free=cim_bypass_free, what="stream rules + no stale node read", cover_depth=CIM_BYPASS_DEPTH,
        memory_map=True),
    # what every sink promises about ready: its combinational fan-in (formal.ready), structural
    Job("ready", "(all)", mode="struct", depth=0, build=_ready_all, kind="ready", fast=True,
        what="ready fan-in (formal.ready table)"),
]

#: the invariants on the hdl.cag, hdl.pag, hdl.cim ablations and the LATTE / ready mutants: each must
#: FAIL (the properties can see the bugs)
MUTANTS: list[Job] = [
    Job("cag_counts_no_forward", "cag", mode="bmc", depth=20, build=_cag(**CAG_COUNTS, faults=("no_forward",)),
        properties=cag_counts, free=cag_counts_free, what="must FAIL: no write-back forwarding"),
    Job("cag_counts_no_run_register", "cag", mode="bmc", depth=20,
        build=_cag(**CAG_COUNTS, faults=("no_run_register",)),
        properties=cag_counts, free=cag_counts_free, what="must FAIL: no run register"),
    Job("pag_updates_no_merge", "pag", mode="bmc", depth=PAG_UPDATES_DEPTH,
        build=_pag(frozenset({"no_merge"}), **PAG_UPDATES), static=("k1", "k2", "n"), properties=pag_updates,
        free=pag_updates_free, what="must FAIL: no merge of equal clusters"),
    Job("pag_updates_no_forward", "pag", mode="bmc", depth=PAG_UPDATES_DEPTH,
        build=_pag(frozenset({"no_forward"}), **PAG_UPDATES), static=("k1", "k2", "n"), properties=pag_updates,
        free=pag_updates_free, what="must FAIL: no write-back forwarding"),
    Job("cim_bypass_no_bypass", "cim", mode="bmc", depth=CIM_BYPASS_DEPTH,
        build=_cim(**CIM_BYPASS, faults=("no_bypass",)),
        properties=cim_bypass, free=cim_bypass_free, what="must FAIL: no write bypass", memory_map=True),
    # a real trace from reset (bmc, pinned inputs as in the cover run) to the dropped beat at step 57
    Job("latte_no_stall", "latte", mode="bmc", depth=LATTE_MUTANT_DEPTH, build=_latte_no_stall, static=LATTE_STATIC,
        properties=latte_output_pinned, memory_map=True, what="must FAIL: Normalizer ignores o.ready"),
    Job("ready_waits_for_valid", "cag", mode="struct", depth=0, build=_ready_mutant, kind="ready",
        what="must FAIL: cag i.ready & i.valid"),
]

#: blocks with stream ports left out, and why
SKIPPED: dict[str, str] = {}


def select(names: list[str] | None = None, *, fast: bool = False, mutants: bool = False) -> list[Job]:
    pool = JOBS + MUTANTS if mutants else JOBS
    jobs = [j for j in pool if not fast or j.fast]
    if names:
        unknown = set(names) - {j.name for j in pool} - {j.block for j in pool}
        if unknown:
            raise ValueError(f"unknown formal job(s) {', '.join(sorted(unknown))}; "
                             f"available: {', '.join(j.name for j in pool)}")
        jobs = [j for j in jobs if j.name in names or j.block in names]
    return jobs


def run_job(job: Job, *, timeout: float = 900.0, mode: str | None = None, depth: int | None = None) -> FormalResult:
    if job.kind == "ready":
        return _run_ready(job)
    dut = job.component()
    return check(dut, job.name, mode=mode or job.mode, depth=depth or job.depth, static=job.static,
                 timeout=timeout, properties=job.properties, free=job.free(dut) if job.free else None,
                 memory_map=job.memory_map)
