"""golden.cta_program: the SA phases of a CTA head reproduce the bit-exact CTA trace, and the RTL
systolic array runs such a program (tiled d_in, shortcut with d_h < d, biases) == golden."""

import numpy as np
import pytest

from golden.cta import cta_fixed_config, cta_fixed_trace
from golden.cta_program import STEP_GROUPS, head_program, ideal_exact_cycles, step_cycles
from golden.lsh import make_lsh_params
from golden.reference import HeadInputs
from hdl.arith import ReciprocalScaler
from hdl.systolic_array import SHORTCUT_GAP


def _head(rng, m, n, d_in, d_h, clusters):
    centres = rng.normal(size=(clusters, d_in)) * 2
    x_q = centres[rng.integers(0, clusters, m)] + 0.1 * rng.normal(size=(m, d_in))
    x_kv = centres[rng.integers(0, clusters, n)] + 0.1 * rng.normal(size=(n, d_in))
    w = [rng.normal(size=(d_in, d_h)) / np.sqrt(d_in) for _ in range(3)]
    return HeadInputs(x_q, x_kv, *w, *(rng.normal(size=d_h) * 0.5 for _ in range(3)))


def _trace(m=9, n=13, d_in=19, d_h=6, d=8, b=2, clusters=4, seed=0):
    head = _head(np.random.default_rng(seed), m, n, d_in, d_h, clusters)
    params = make_lsh_params(d_in, l=2, widths=(1.5, 1.5, 0.7), seed=seed)
    cfg = cta_fixed_config(head, params, d=d, b=b)
    return cta_fixed_trace(head, lsh=params, cfg=cfg)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_program_results_are_the_trace(seed):
    tr = _trace(seed=seed)
    hp = head_program(tr)
    by_step: dict[str, list] = {}
    for step, ph in zip(hp.steps, hp.program.phases, strict=True):
        by_step.setdefault(step, []).append(ph)
    assert np.array_equal(by_step["lsh1"][0]["values"], tr.h1)
    assert np.array_equal(by_step["lsh0"][0]["values"], tr.h0)
    assert np.array_equal(by_step["lsh2"][0]["values"], tr.h2)
    kv = np.vstack([ph["values"][:, :ph["cols"]].T for ph in by_step["kv"]])
    assert np.array_equal(kv, np.hstack([tr.kbar, tr.vbar]))
    q = np.vstack([ph["values"][:, :ph["cols"]].T for ph in by_step["q"]])
    assert np.array_equal(q, tr.qbar)
    cs = np.vstack([ph["values"][:, :ph["cols"]].T for ph in by_step["score"]])
    assert np.array_equal(cs, tr.cs)
    obar = np.vstack([ph["values"][:ph["cols"], :tr.vbar.shape[1]] for ph in by_step["output"]])
    assert np.array_equal(obar, tr.obar)
    assert all(ph.get("passes", 1) == 3 for ph in by_step["lsh1"] + by_step["kv"] + by_step["q"])  # 19 on d=8
    assert len(by_step["q"]) == -(-tr.k0 // 2) and len(by_step["kv"]) == -(-(tr.k1 + tr.k2) // 2)


def test_cycle_model_groups_and_ideal():
    tr = _trace()
    hp = head_program(tr)
    cyc = step_cycles(hp, ReciprocalScaler.LATENCY, gap=SHORTCUT_GAP)
    assert set(cyc["groups"]) == set(STEP_GROUPS.values())
    assert sum(g["issue"] for g in cyc["groups"].values()) == sum(p["issue"] for p in cyc["phases"])
    assert cyc["total"] >= sum(p["issue"] for p in cyc["phases"])
    assert ideal_exact_cycles(9, 13, 19, 6, hp.cfg) == (9 * 19 * 6 + 2 * 13 * 19 * 6 + 2 * 9 * 13 * 6) / 16


def test_array_runs_a_head_program():
    """The RTL array (Amaranth simulator) on a whole small head: every compared result == golden
    at the cycle the golden model predicts."""
    from sim.tb_systolic_array import check_records, timing_matches_model
    from tests.test_systolic_array import run_array

    hp = head_program(_trace(m=5, n=7, d_in=11, d_h=3, d=4, b=2, clusters=3, seed=9))
    assert hp.trace.k0 % 2 == 1   # the last query batch is padded
    accepted, res, out, _ = run_array(hp.cfg, hp.program)
    check_records(hp.cfg, hp.program, accepted, res, out)
    assert timing_matches_model(hp.cfg, hp.program, accepted)
