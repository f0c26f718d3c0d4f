"""cocotb regression of the CTA systolic array against golden.systolic (all phases back to back).

The program (beats + expected results) comes from :func:`golden.systolic.build_program`; this file
only drives beats, records what comes out and when, and compares with ``==``
(:func:`check_records`). Also used by the Amaranth-simulator test, ``attn-rtl run`` and the bench.

Environment knobs (besides the block parameters): ``SA_TOKENS`` (tokens per LSH phase), ``SA_KEYS``
(k1+k2 of the score/output phases), ``SA_DIN`` (dot-product length of the LSH/linear phases;
default d, or d-1 when d > 8 to exercise zero-padded rows), ``SA_GAPS`` (probability of a source
bubble before a beat outside shortcut phases, in the corner test).
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import numpy as np

from golden.systolic import (
    OP_DF1,
    LinearPhase,
    LshPhase,
    OutputPhase,
    Program,
    ScorePhase,
    SystolicConfig,
    build_program,
    ideal_cycles,
    issue_cycles,
    out_latency,
    res_latency,
)
from hdl.arith import ReciprocalScaler  # noqa: E402
from hdl.systolic_array import SHORTCUT_GAP  # noqa: E402

RECIP_LATENCY = ReciprocalScaler.LATENCY

# ---- programs ---------------------------------------------------------------------------------------


def _rand(rng: np.random.Generator, fmt, shape, extremes: bool = False, scale: float = 1.0) -> np.ndarray:
    lo, hi = fmt.min_int, fmt.max_int
    if scale < 1.0:
        lo, hi = max(lo, int(lo * scale)), int(hi * scale)
    vals = rng.integers(lo, hi + 1, size=shape)
    if extremes:
        mask = rng.random(shape) < 0.25
        vals = np.where(mask, rng.choice([fmt.min_int, fmt.max_int], size=shape), vals)
    return vals.astype(np.int64)


def random_program(cfg: SystolicConfig, rng: np.random.Generator, n_tokens: int = 6, n_keys: int = 5,
                   extremes: bool = False, d_in: int | None = None) -> tuple[list[Any], Program]:
    """The CTA sequence of SA steps (Table I) with random data, back to back:
    LSH_1 (load A) -> LSH_0 (reload A, Fig. 10 b) -> LSH_0' (keep A, a) -> LSH_2 on residuals ->
    K̄ with bias (load centroids) -> V̄ (keep) -> Q̄ with shortcut (c) -> scores -> output (d) ->
    Q̄ (c, d_out = d - 1 when d > 2) -> scores -> output (second output phase). ``d_in`` > d makes
    the LSH and linear phases run in ceil(d_in / d) passes."""
    b, d = cfg.b, cfg.d
    l_hash = min(6, b)
    if d_in is None:
        d_in = d if d <= 8 else d - 1   # exercise zero-padded rows on the larger arrays
    tf, qf = cfg.token_fmt, cfg.qkv_fmt
    ex = extremes

    def lsh(dirs: bool, residual: bool = False) -> LshPhase:
        tokens = _rand(rng, tf, (n_tokens, d_in), ex)
        cents = _rand(rng, qf, (n_tokens, d_in), ex) if residual else None
        return LshPhase(tokens=tokens, directions=_rand(rng, cfg.dir_fmt, (l_hash, d_in), ex) if dirs else None,
                        bias=_rand(rng, cfg.bias_fmt, l_hash, ex), inv_width=int(_rand(rng, cfg.inv_w_fmt, (), ex)),
                        centroids=cents)

    n_keys = max(n_keys, 1)
    k1 = int(rng.integers(0, n_keys + 1))
    scale = 1.0 if ex else 0.25  # keep Q̄ mostly unsaturated in the random program
    if not ex:
        scale = min(scale, 0.25 * d / d_in)  # longer dot products: smaller weights
    d_out2 = d - 1 if d > 2 else d

    def weights(d_out: int) -> np.ndarray:
        return _rand(rng, cfg.weight_fmt, (d_in, d_out), ex, scale)

    def bias(d_out: int) -> np.ndarray:
        lb = cfg.lin_bias_fmt
        row = _rand(rng, lb, (1, d_out), ex, 1.0 if ex else 2.0 ** -(lb.width - cfg.weight_fmt.width))
        return np.repeat(row, b, axis=0)

    phases: list[Any] = [
        lsh(True), lsh(True), lsh(False), lsh(True, residual=True),
        LinearPhase(inputs=_rand(rng, qf, (b, d_in), ex), weights=weights(d), bias=bias(d)),
        LinearPhase(inputs=None, weights=weights(d)),
        LinearPhase(inputs=_rand(rng, qf, (b, d_in), ex), weights=weights(d), shortcut=True),
        ScorePhase(q=None, k=_rand(rng, qf, (n_keys, d), ex), k1=k1),
        OutputPhase(ap=_ap(rng, cfg, b, n_keys, ex), v=_rand(rng, qf, (n_keys, d), ex)),
        LinearPhase(inputs=_rand(rng, qf, (b, d_in), ex), weights=weights(d_out2), shortcut=True, bias=bias(d_out2)),
        ScorePhase(q=None, k=_rand(rng, qf, (n_keys, d), ex), k1=int(rng.integers(0, n_keys + 1))),
        OutputPhase(ap=_ap(rng, cfg, b, n_keys, ex), v=_rand(rng, qf, (n_keys, d), ex)),
    ]
    return phases, build_program(phases, cfg)


def _ap(rng: np.random.Generator, cfg: SystolicConfig, rows: int, t: int, extremes: bool) -> np.ndarray:
    ap = rng.integers(0, cfg.ap_fmt.max_int + 1, size=(rows, t)).astype(np.int64)
    if extremes:
        ap[0, :] = 0                       # Σ AP = 0: division by zero flagged
        if rows > 1:
            ap[1, :] = cfg.ap_fmt.max_int  # Σ AP saturates on small den widths
    else:
        ap[0, :] = rng.integers(0, 4, size=t)  # tiny denominators
    return ap


def corner_program(cfg: SystolicConfig, rng: np.random.Generator) -> tuple[list[Any], Program]:
    """Most-negative operands everywhere, all-equal tokens, k1 = 0 and k1 = k."""
    b, d = cfg.b, cfg.d
    l_hash = min(6, b)
    tf, qf = cfg.token_fmt, cfg.qkv_fmt
    full = lambda fmt, shape: np.full(shape, fmt.min_int, dtype=np.int64)  # noqa: E731
    phases: list[Any] = [
        LshPhase(tokens=full(tf, (3, d)), directions=full(cfg.dir_fmt, (l_hash, d)), bias=full(cfg.bias_fmt, l_hash),
                 inv_width=cfg.inv_w_fmt.max_int),
        LshPhase(tokens=np.full((3, d), tf.max_int), directions=full(cfg.dir_fmt, (l_hash, d)),
                 bias=np.full(l_hash, cfg.bias_fmt.max_int), inv_width=cfg.inv_w_fmt.max_int,
                 centroids=full(qf, (3, d))),
        LinearPhase(inputs=full(qf, (b, d)), weights=full(cfg.weight_fmt, (d, d)), shortcut=True),
        ScorePhase(q=None, k=full(qf, (3, d)), k1=0),
        ScorePhase(q=full(qf, (b, d)), k=np.concatenate([full(qf, (2, d)), np.full((1, d), qf.max_int)]), k1=3),
        ScorePhase(q=None, k=_rand(rng, qf, (4, d), True), k1=2),
        OutputPhase(ap=np.full((b, 3), cfg.ap_fmt.max_int), v=full(qf, (3, d))),
    ]
    return phases, build_program(phases, cfg)


# ---- checking -----------------------------------------------------------------------------------------


def check_records(cfg: SystolicConfig, prog: Program, accepted: list[int], res: list[tuple[int, dict]],
                  out: list[tuple[int, dict]]) -> dict[str, Any]:
    """Compare recorded transfers/results with the program's golden results and timing (``==``).

    ``accepted``: the cycle each beat was transferred; ``res``/``out``: (cycle, unpacked payload).
    Returns per-phase figures. Raises AssertionError on the first mismatch.
    """
    beats = prog.beats
    assert len(accepted) == len(beats), f"{len(accepted)} beats accepted of {len(beats)}"
    df1 = [k for k, bt in enumerate(beats) if bt["op"] == OP_DF1 and not bt["partial"]]
    assert len(res) == len(df1), f"{len(res)} DF1 results for {len(df1)} DF1 beats of last passes"
    n_out = sum(1 for p in prog.phases if p["kind"] == "output")
    assert len(out) == n_out * cfg.d, f"{len(out)} output rows for {n_out} output phases of d={cfg.d}"
    res_at = dict(zip(df1, res, strict=True))
    out_iter = iter(out)
    figures = []
    for idx, ph in enumerate(prog.phases):
        cols = ph["cols"]
        first, last, load = ph["first_beat"], ph["last_beat"], ph["load_beat"]
        if ph["kind"] == "output":
            rows = []
            for r in range(cfg.d):
                cyc, pay = next(out_iter)
                row = cfg.d - 1 - r
                when = accepted[last] + out_latency(cfg, RECIP_LATENCY) + r
                assert cyc == when, f"phase {idx} (output) row {row} at cycle {cyc}, expected {when}"
                assert pay["row"] == row, f"phase {idx} output row tag {pay['row']} != {row}"
                got = pay["data"][:cols]
                want = ph["values"][:cols, row].tolist() if row < ph["values"].shape[1] else None
                if want is not None:
                    assert got == want, f"phase {idx} (output) row {row}: RTL {got} != golden {want}"
                    over = [(pay["over"] >> c) & 1 for c in range(cols)]
                    want_over = ph["overflow"][:cols, row].astype(int).tolist()
                    assert over == want_over, f"phase {idx} (output) row {row} overflow {over} != {want_over}"
                    dbz = [(pay["dbz"] >> c) & 1 for c in range(cols)]
                    assert dbz == ph["div_by_zero"][:cols, row].astype(int).tolist(), f"phase {idx} row {row} dbz {dbz}"
                rows.append(cyc)
            done = rows[-1]
        else:
            for t, k in enumerate(range(ph.get("last_pass_beat", first), last + 1)):
                cyc, pay = res_at[k]
                assert cyc == accepted[k] + res_latency(cfg), (
                    f"phase {idx} ({ph['kind']}) beat {t}: result at cycle {cyc}, "
                    f"expected {accepted[k] + res_latency(cfg)}")
                got = pay["data"][:cols]
                want = ph["values"][t][:cols].tolist()
                assert got == want, f"phase {idx} ({ph['kind']}) beat {t}: RTL {got} != golden {want}"
                over = [(pay["over"] >> c) & 1 for c in range(cols)]
                want_over = ph["overflow"][t][:cols].astype(int).tolist()
                assert over == want_over, f"phase {idx} ({ph['kind']}) beat {t}: overflow {over} != {want_over}"
                assert (pay["first"], pay["last"]) == (int(t == 0), int(k == last)), f"phase {idx} beat {t} tags"
            done = res_at[last][0]
        prev_last = prog.phases[idx - 1]["last_beat"] if idx else None
        figures.append({
            "phase": ph["kind"], "beats": last - load + 1, "passes": ph.get("passes", 1),
            "issue_cycles": accepted[last] - accepted[load] + 1,
            "cycles": done - accepted[load] + 1,
            "ideal": ideal_cycles(ph["macs"], cfg),
            "bubbles_before": None if prev_last is None else accepted[load] - accepted[prev_last] - 1,
        })
    return {"phases": figures}


def timing_matches_model(cfg: SystolicConfig, prog: Program, accepted: list[int]) -> bool:
    """With a source that never pauses, the accept cycles are exactly those of the golden model."""
    model = issue_cycles(prog.beats, cfg, gap=SHORTCUT_GAP)
    return [a - accepted[0] for a in accepted] == model


# ---- cocotb -------------------------------------------------------------------------------------------

try:
    import cocotb
    from cocotb.clock import Clock
    from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge
except ImportError:  # pragma: no cover - cocotb is a dependency; keep the helpers importable
    cocotb = None


# longer than the array's deepest pipeline (b + d + shortcut gap at the sizes tested) so a late
# extra result would land inside it
DRAIN_CYCLES = 64


async def run_program(dut, cfg: SystolicConfig, prog: Program, gap_probability: float = 0.0,
                      rng: np.random.Generator | None = None) -> dict[str, Any]:
    """Drive ``prog`` into the DUT, record transfers and results, check them; returns figures."""
    from hdl.systolic_array import beat_layout, out_layout, res_layout
    from sim.streams import pack, unpack
    from sim.tbutil import read_unsigned

    bl, rl, ol = beat_layout(cfg), res_layout(cfg), out_layout(cfg)
    raws = [pack(bl, bt) for bt in prog.beats]
    in_shortcut = [bool(bt["shortcut"]) and not bt["first"] for bt in prog.beats]
    rng = rng or np.random.default_rng(0)
    accepted: list[int] = []
    res: list[tuple[int, dict]] = []
    out: list[tuple[int, dict]] = []
    n_out = sum(1 for p in prog.phases if p["kind"] == "output") * cfg.d
    n_res = sum(1 for bt in prog.beats if bt["op"] == OP_DF1 and not bt["partial"])
    cycle = 0
    idle = 0
    # every beat accepted within ~3 cycles on average (random pauses, shortcut and output-phase holds)
    deadline = 3 * len(raws) + 2 * (cfg.b + cfg.d) * (n_out // cfg.d + 2) + 200
    t0 = time.monotonic()
    offered = None
    while len(res) < n_res or len(out) < n_out or len(accepted) < len(raws):
        await FallingEdge(dut.clk)
        k = len(accepted)
        if k < len(raws):
            if offered != k:  # a new beat: maybe pause first (never inside a shortcut phase)
                if gap_probability and not in_shortcut[k] and rng.random() < gap_probability:
                    dut.i__valid.value = 0
                    await ReadOnly()
                    _collect(dut, cycle, rl, ol, res, out, unpack, read_unsigned)
                    await RisingEdge(dut.clk)
                    cycle += 1
                    continue
                dut.i__payload.value = raws[k]
                offered = k
            dut.i__valid.value = 1
        else:
            dut.i__valid.value = 0
        await ReadOnly()
        if k < len(raws) and read_unsigned(dut.i__ready):
            accepted.append(cycle)
        _collect(dut, cycle, rl, ol, res, out, unpack, read_unsigned)
        await RisingEdge(dut.clk)
        cycle += 1
        idle = idle + 1 if k >= len(raws) else 0
        assert idle < 4 * (cfg.b + cfg.d) + 64, "results missing: the array went quiet"
        assert cycle < deadline, f"no end after {cycle} cycles (deadline {deadline}): input or results stuck"
    # drain window: anything after the last expected item is an error, not silently ignored
    dut.i__valid.value = 0
    n_seen = (len(res), len(out))
    for _ in range(DRAIN_CYCLES):
        await ReadOnly()
        _collect(dut, cycle, rl, ol, res, out, unpack, read_unsigned)
        await RisingEdge(dut.clk)
        cycle += 1
    if (len(res), len(out)) != n_seen:
        raise AssertionError(f"items after the last expected one: res expected {n_res}, got {len(res)}; "
                             f"out expected {n_out}, got {len(out)} (within {DRAIN_CYCLES} drain cycles)")
    seconds = time.monotonic() - t0
    figures = check_records(cfg, prog, accepted, res, out)
    figures.update({"sim_cycles": cycle, "sim_seconds": seconds, "accepted": accepted})
    return figures


def _collect(dut, cycle, rl, ol, res, out, unpack, read_unsigned) -> None:
    if read_unsigned(dut.res__valid):
        res.append((cycle, unpack(rl, dut.res__payload.value.to_unsigned())))
    if read_unsigned(dut.out__valid):
        out.append((cycle, unpack(ol, dut.out__payload.value.to_unsigned())))


async def _reset(dut) -> None:
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.rst.value = 1
    dut.i__valid.value = 0
    await RisingEdge(dut.clk)
    await RisingEdge(dut.clk)
    await FallingEdge(dut.clk)
    dut.rst.value = 0


def _cfg_from_env() -> SystolicConfig:
    from hdl.systolic_array import config_from_params
    from sim.runner import tb_params

    return config_from_params(tb_params())


def _timeouts() -> tuple[dict, dict, dict]:
    """Timeouts of the three tests, from simulated times measured on tests/test_cocotb_systolic_array.py
    (<= 7.9 us with SA_TOKENS <= 6, SA_KEYS <= 5, <= 3 passes; a 3392-beat head program: 34.8 us),
    scaled by this run's tokens, keys, passes and program length."""
    from sim.tbutil import env_int, timeout_us

    params = json.loads(os.environ.get("ATTN_RTL_PARAMS") or "{}")
    passes = -(-env_int("SA_DIN", 0) // params.get("d", 64))
    work = max(1, env_int("SA_TOKENS", 6) / 6) * max(1, env_int("SA_KEYS", 5) / 5) * max(1, passes / 3)
    beats = 3392
    if os.environ.get("SA_HEAD_PROGRAM"):
        import pickle

        with open(os.environ["SA_HEAD_PROGRAM"], "rb") as fh:
            beats = len(pickle.load(fh)[1].beats)
    return timeout_us(4.8, work), timeout_us(7.9, work), timeout_us(34.8, beats / 3392)


if cocotb is not None:
    _PHASES_TIMEOUT, _CORNERS_TIMEOUT, _HEAD_TIMEOUT = _timeouts()

    @cocotb.test(**_PHASES_TIMEOUT)
    async def test_phases_back_to_back(dut):
        """Random CTA program: every phase, value-register keep/reload, shortcut, output phases."""
        from sim.runner import write_stats
        from sim.tbutil import read_unsigned

        cfg = _cfg_from_env()
        seed = int(os.environ.get("RANDOM_SEED", "1"))
        rng = np.random.default_rng(seed & 0xFFFFFFFF)
        din = os.environ.get("SA_DIN")
        _, prog = random_program(cfg, rng, n_tokens=int(os.environ.get("SA_TOKENS", "6")),
                                 n_keys=int(os.environ.get("SA_KEYS", "5")), d_in=int(din) if din else None)
        await _reset(dut)
        figures = await run_program(dut, cfg, prog)
        assert timing_matches_model(cfg, prog, figures["accepted"]), "accept cycles differ from the golden schedule"
        assert read_unsigned(dut.protocol_error) == 0
        figures.pop("accepted")
        write_stats({"checked_beats": len(prog.beats), **figures})

    @cocotb.test(**_CORNERS_TIMEOUT)
    async def test_corners_and_source_gaps(dut):
        """Saturation/corner program, then a random extreme program with random source bubbles."""
        from sim.runner import write_stats
        from sim.tbutil import read_unsigned

        cfg = _cfg_from_env()
        seed = int(os.environ.get("RANDOM_SEED", "1"))
        rng = np.random.default_rng((seed * 31 + 7) & 0xFFFFFFFF)
        await _reset(dut)
        _, prog = corner_program(cfg, rng)
        fig1 = await run_program(dut, cfg, prog)
        din = os.environ.get("SA_DIN")
        _, prog2 = random_program(cfg, rng, n_tokens=int(os.environ.get("SA_TOKENS", "6")),
                                  n_keys=int(os.environ.get("SA_KEYS", "5")), extremes=True,
                                  d_in=int(din) if din else None)
        fig2 = await run_program(dut, cfg, prog2, gap_probability=float(os.environ.get("SA_GAPS", "0.2")), rng=rng)
        assert read_unsigned(dut.overflow) == 1, "saturation happened but the sticky overflow flag is low"
        assert read_unsigned(dut.protocol_error) == 0
        write_stats({"corner_beats": len(prog.beats) + len(prog2.beats), "corner_cycles": fig1["sim_cycles"]
                     + fig2["sim_cycles"]})

    @cocotb.test(skip=not os.environ.get("SA_HEAD_PROGRAM"), **_HEAD_TIMEOUT)
    async def test_head_program(dut):
        """One CTA head's SA program (golden.cta_program, pickled by ``attn-rtl run`` into
        ``SA_HEAD_PROGRAM``): every result == golden at its exact cycle, accept cycles == the
        golden schedule."""
        import pickle

        from sim.runner import write_stats
        from sim.tbutil import read_unsigned

        with open(os.environ["SA_HEAD_PROGRAM"], "rb") as fh:
            cfg, prog = pickle.load(fh)
        assert cfg == _cfg_from_env(), "the pickled program is for another array configuration"
        await _reset(dut)
        figures = await run_program(dut, cfg, prog)
        assert timing_matches_model(cfg, prog, figures.pop("accepted")), "accept cycles differ from the golden model"
        assert read_unsigned(dut.protocol_error) == 0
        write_stats({"head_beats": len(prog.beats), "head": figures})
