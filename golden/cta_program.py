"""The systolic-array work of one CTA head in Table I order (seed 001 §V, DESIGN §4 "Mapping", §9).

:func:`head_program` turns a bit-exact CTA run (:func:`golden.cta.cta_fixed_trace`) into the SA
phases the accelerator issues for that head, back to back, every dot product longer than d tiled
into passes (:mod:`golden.systolic`):

1. ``lsh1``: LSH_1 over X^KV (its hashes feed the CIM -> CT1, and CACC alongside);
2. ``lsh0``: LSH_0 over X^Q (-> CT0);
3. ``lsh2``: LSH_2 over the residuals X^KV - C^1[CT1] (the left-edge subtractors; -> CT2);
4. ``kv``: K̄ and V̄ in batches of b centroids of C^cat = [C^1; C^2], one linear phase per batch with
   the weights side by side ([W^K | W^V], 2·d_h beats per pass), biases on the y lanes;
5. per batch of b compressed queries: ``q`` (Q̄ with the query shortcut), ``score`` (S̄ into CS,
   the max of the first k1 subtracted from the last k2), ``output`` (AP·V̄ normalised).

Batches shorter than b are padded with zero rows (their columns are computed and not compared).
The CIM, CAG and PAG results between the phases come from the trace (the golden block models);
the phases' expected results are the trace's h1, h0, h2, K̄V̄, Q̄, CS and Ō (checked by the tests).
Step groups follow Fig. 12: compression (lsh*), linear (kv, q), attention (score, output).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .cta import CTAFixedTrace
from .systolic import (
    LinearPhase,
    LshPhase,
    OutputPhase,
    Program,
    ScorePhase,
    SystolicConfig,
    build_program,
    expected_phase_cycles,
)

__all__ = ["STEP_GROUPS", "HeadProgram", "head_program", "ideal_exact_cycles", "step_cycles"]

#: Table I step -> Fig. 12 group
STEP_GROUPS = {"lsh1": "compression", "lsh0": "compression", "lsh2": "compression", "kv": "linear",
               "q": "linear", "score": "attention", "output": "attention"}


@dataclass
class HeadProgram:
    """One head's SA program: ``phases`` (golden.systolic phases), their Table I ``steps``, the
    columns that hold real data (``cols``; the rest is batch padding), the beat ``program`` and the
    SA configuration ``cfg`` (the trace's, with ``d_h`` = d_h)."""

    trace: CTAFixedTrace
    cfg: SystolicConfig
    phases: list[Any]
    steps: list[str]
    cols: list[int]
    program: Program


def _pad_rows(rows: np.ndarray, b: int) -> np.ndarray:
    rows = np.atleast_2d(rows)
    return np.vstack([rows, np.zeros((b - rows.shape[0], rows.shape[1]), dtype=np.int64)])


def head_program(trace: CTAFixedTrace) -> HeadProgram:
    """The SA phases of ``trace``'s head in Table I order (see the module doc)."""
    if not isinstance(trace, CTAFixedTrace):
        raise TypeError(f"trace must be a golden.cta.CTAFixedTrace, not {type(trace).__name__}")
    sa = trace.sa_inputs
    cfg = sa["score_cfg"]
    b = cfg.b
    (a0, b0, i0), (a1, b1, i1), (a2, b2, i2) = sa["lsh"]
    phases: list[Any] = [
        LshPhase(tokens=trace.x_kv, directions=a1, bias=b1, inv_width=i1),
        LshPhase(tokens=trace.x_q, directions=a0, bias=b0, inv_width=i0),
        LshPhase(tokens=trace.x_kv, directions=a2, bias=b2, inv_width=i2, centroids=sa["gathered"]),
    ]
    steps = ["lsh1", "lsh0", "lsh2"]
    cols = [a1.shape[0], a0.shape[0], a2.shape[0]]
    ccat = np.vstack([trace.c1, trace.c2])
    for s in range(0, ccat.shape[0], b):
        rows = ccat[s:s + b]
        phases.append(LinearPhase(inputs=_pad_rows(rows, b), weights=sa["w_kv"],
                                  bias=_pad_rows(sa["bias_kv"][s:s + b], b)))
        steps.append("kv")
        cols.append(rows.shape[0])
    kbar, vbar = trace.kbar, trace.vbar
    for s in range(0, trace.c0.shape[0], b):
        rows = trace.c0[s:s + b]
        k = rows.shape[0]
        phases += [
            LinearPhase(inputs=_pad_rows(rows, b), weights=sa["w_q"], bias=_pad_rows(sa["bias_q"][s:s + b], b),
                        shortcut=True),
            ScorePhase(q=None, k=kbar, k1=trace.k1),
            OutputPhase(ap=_pad_rows(trace.ap[s:s + k], b), v=vbar),
        ]
        steps += ["q", "score", "output"]
        cols += [k, k, k]
    program = build_program(phases, cfg)
    for ph, c in zip(program.phases, cols, strict=True):
        ph["cols"] = c
    return HeadProgram(trace, cfg, phases, steps, cols, program)


def step_cycles(hp: HeadProgram, recip_latency: int, *, gap: int) -> dict[str, Any]:
    """The golden cycle model of ``hp`` (source never pausing): per Table I step and per Fig. 12
    group the cycles the step holds the array input (value loads included), its ideal MACs/(b·d),
    and the total from the first beat to the last result. ``recip_latency``:
    ``hdl.arith.ReciprocalScaler.LATENCY``; ``gap``: ``hdl.systolic_array.SHORTCUT_GAP``."""
    model = expected_phase_cycles(hp.program, hp.cfg, recip_latency, gap=gap)
    steps: dict[str, dict[str, float]] = {}
    for step, ph in zip(hp.steps, model, strict=True):
        entry = steps.setdefault(step, {"issue": 0, "ideal": 0.0, "phases": 0, "bubbles": 0})
        entry["issue"] += ph["issue"]
        entry["ideal"] += ph["ideal"]
        entry["phases"] += 1
        entry["bubbles"] += ph["bubbles_before"] or 0
    groups: dict[str, dict[str, float]] = {}
    for step, entry in steps.items():
        g = groups.setdefault(STEP_GROUPS[step], {"issue": 0, "ideal": 0.0, "bubbles": 0})
        for key in g:
            g[key] += entry[key]
    return {"steps": steps, "groups": groups, "phases": model,
            "total": model[-1]["done"] - model[0]["start"] + 1}


def ideal_exact_cycles(m: int, n: int, d_in: int, d_h: int, cfg: SystolicConfig) -> float:
    """DESIGN §9 ideal accelerator: the head's exact attention (linears m·d_in·d_h + 2·n·d_in·d_h,
    scores m·n·d_h, output m·n·d_h MACs) on b·d multipliers always busy."""
    macs = m * d_in * d_h + 2 * n * d_in * d_h + 2 * m * n * d_h
    return macs / (cfg.b * cfg.d)
