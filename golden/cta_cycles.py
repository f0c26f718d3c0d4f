"""Cycle model of the CTA accelerator block's sequencer (``hdl.cta.Cta``): the cycles of every Table I
step of one run, from the blocks' latency constants (DESIGN §9 "Breakdown").

The model follows the sequencer cycle by cycle. Three issuers run side by side, each issuing one
item per cycle while fewer than ``fifo_depth`` of its items are on their way to their consumer (an
item reaches its consumer ``issue_latency`` cycles after it is issued, ``cag_issue_latency`` /
``pag_issue_latency`` for the CAG and PAG issuers, and is accepted in order, one per cycle, when
the consumer is ready):

* the array issuer (LSH, K̄V̄, Q̄, score and output beats, then the readout rows): the systolic
  array holds its input after a shortcut (Q̄) phase for :func:`golden.systolic.shortcut_gap`
  cycles and starts an output phase no earlier than d cycles after the previous one's last beat
  (:func:`golden.systolic.issue_cycles` rules);
* the CAG issuer (Table I: the auxiliary modules beside the array): C1 starts when CT1 is complete
  and runs beside LSH0; C2 starts when CT2 is complete and runs beside the first half of K̄V̄ (the
  C1 rows of every column group); C0 starts when C2 is done and runs beside the second half (the
  C2 rows).
  A CAG run takes, per d-slice (pass), its tokens + ``cag_issue_latency`` + ``cag_tail`` + k cycles;
* the PAG issuer: a batch's PAG runs beside the next batch's Q̄. The PAG takes cluster-index pairs
  from the cycle after its last CS beat (the score result of the batch's last key, ``res_latency``
  after that beat), and offers its AP column t (which the output phase's beat t carries) from
  ``pag_readout`` cycles after its last pair, one per cycle.

Per batch the array runs Q̄(i+1) between score(i) and output(i) (the value registers hold Q̄(i+1)
through the output phase, which does not use them). The step counters count the cycles the
sequencer spends in each step, so that they add up to the run: the CAG steps count only the cycles
the array waits for a CAG run (LSH2's pass p needs C1's slice p, K̄V̄'s second half needs C2, Q̄
needs C0), and the PAG step only
the cycles the output phase waits for its AP. LSH steps end when the CIM has written the last
cluster index (``res_latency`` + ``cim_latency`` after the last beat of the last pass, + 1), K̄V̄
with its last result, the last batch's output phase with its last normalised row, the readout with
the last row taken. The CIM's memory sweeps on an epoch wrap (:func:`wrap_sweeps`) delay the LSH
step's array issue and count as ``SWEEP``; the sweep after reset is not modelled. Latencies are
passed in (``golden`` does not import ``hdl``):
:meth:`hdl.cta.Cta.cycle_latencies`.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Mapping
from typing import Any

from .systolic import SystolicConfig, shortcut_gap

__all__ = ["cta_step_bounds", "cta_step_cycles"]


class _Credit:
    """One issuer's items on their way: issue and accept cycles, both increasing (in-order FIFO)."""

    def __init__(self, depth: int) -> None:
        self.depth = depth
        self.issued: list[int] = []
        self.accepted: list[int] = []

    def space(self, cyc: int) -> bool:
        return bisect_left(self.issued, cyc) - bisect_left(self.accepted, cyc) < self.depth

    def add(self, issue: int, accept: int) -> None:
        self.issued.append(issue)
        self.accepted.append(accept)


LSH_ORDER = ("LSH1", "LSH0", "LSH2")


def wrap_sweeps(clears_before: int, lsh_steps: int, lat: Mapping[str, int]) -> dict[str, int]:
    """The CIM sweeps a run's LSH steps start with when the CIM's epoch counter wraps: ``clears_before``
    clears since reset (one per LSH step that ran), ``lsh_steps`` LSH steps in this run (3, or fewer
    when a capacity overflow ends the run). ``lat``: ``cim_epochs`` (clears between two wraps: epoch
    values 1 .. 2^epoch_bits - 1) and ``cim_sweep`` (cycles of a sweep). The sweep after reset is not
    included: it ends before the first step issues, whatever its length."""
    period = lat["cim_epochs"]
    return {LSH_ORDER[s]: lat["cim_sweep"] for s in range(lsh_steps) if (clears_before + s + 1) % period == 0}


def cta_step_cycles(*, m: int, n: int, d_in: int, k0: int, k1: int, k2: int, cfg: SystolicConfig, l: int,  # noqa: E741
                    d_h: int, lat: Mapping[str, int], sweeps: Mapping[str, int] | None = None) -> dict[str, int]:
    """Cycles per step of one run (no stalls from the host on ``o``). ``lat``: ``issue_latency``,
    ``cag_issue_latency``, ``pag_issue_latency``, ``fifo_depth``, ``res_latency``, ``out_latency``
    (last output-phase beat to its first row),
    ``cim_latency``, ``cag_tail`` (last token to the last centroid, without k), ``pag_readout``,
    ``shortcut_gap`` (the array's hand-over after a Q̄ phase of d beats).
    ``sweeps``: the CIM sweep cycles an LSH step waits after its clear (:func:`wrap_sweeps`); they count
    as ``SWEEP`` and delay the array, not the CAG beside it."""
    sweeps = dict(sweeps or {})
    b, d = cfg.b, cfg.d
    passes = cfg.passes(d_in)
    kk = k1 + k2
    groups = -(-d_h // b)
    il, depth, res = lat["issue_latency"], lat["fifo_depth"], lat["res_latency"]
    cycles: dict[str, int] = {}
    sa = {"hold_until": 0, "last_df2": None, "last_accept": -1}   # array input state
    main = _Credit(depth)

    def run_array(items: list[dict[str, Any]], start: int,
                  not_before: list[int] | None = None) -> tuple[int, list[int], int]:
        """Issue ``items`` (dicts with op/shortcut/last/first/d_out) from ``start``; return the cycle
        of the last issue, the accept cycles and the cycles spent waiting for ``not_before``: per item,
        the first cycle it may issue (output phases: its AP column is offered; LSH2: its C1 slice is
        ready)."""
        accepted = []
        cyc, k, waited = start, 0, 0
        while k < len(items):
            gate = not_before is None or cyc >= not_before[k]
            waited += not gate
            if gate and main.space(cyc):
                it = items[k]
                acc = max(cyc + il, sa["last_accept"] + 1, sa["hold_until"])
                if it["op"] == "df2" and it["first"] and sa["last_df2"] is not None:
                    acc = max(acc, sa["last_df2"] + d)
                accepted.append(acc)
                main.add(cyc, acc)
                sa["last_accept"] = acc
                if it.get("shortcut") and it["last"]:
                    sa["hold_until"] = acc + 1 + shortcut_gap(cfg, it["d_out"], lat["shortcut_gap"])
                if it["op"] == "df2" and it["last"]:
                    sa["last_df2"] = acc
                if not_before is not None and k + 1 < len(items):   # (the PAG offers the next column)
                    not_before[k + 1] = max(not_before[k + 1], cyc + 1)
                k += 1
            cyc += 1
        return cyc - 1, accepted, waited

    def beats(count: int, op: str = "df1", **kw: Any) -> list[dict[str, Any]]:
        return [{"op": op, "first": i == 0, "last": i == count - 1, **kw} for i in range(count)]

    def lsh(t: int, cnt: int, name: str, pass_ready: list[int] | None = None) -> tuple[int, int]:
        """An LSH step from cycle t (2 cycles: clear, sweep check, plus the step's sweep); the cycle it
        ends and the cycles it waited (the sweep, and for ``pass_ready``: per pass, the first cycle its
        value loads may issue)."""
        items, ready = [], []
        for p in range(passes):
            items += beats(l, op="load") + beats(cnt)
            ready += [pass_ready[p] if pass_ready else 0] + [0] * (l + cnt - 1)
        sweep = sweeps.get(name, 0)
        _, acc, waited = run_array(items, t + 2 + sweep, ready)
        return acc[-1] + res + lat["cim_latency"] + 1, waited + sweep

    def cag_pass_done(start: int, cnt: int, k: int) -> list[int]:
        """A CAG run started at cycle ``start`` (it issues from start + 1): per pass, the first cycle
        after it (the next pass's first issue; after the last, the first cycle the CAG is idle)."""
        return [start + 1 + (p + 1) * (cnt + lat["cag_issue_latency"] + lat["cag_tail"] + k) for p in range(passes)]

    def cag_done(start: int, cnt: int, k: int) -> int:
        return cag_pass_done(start, cnt, k)[-1]

    def wait(t: int, ready: int) -> int:
        """A wait state entered at t for a CAG run idle from cycle ``ready``: the cycle it leaves."""
        return max(t, ready)

    # -- compression: LSH1; LSH0 beside C1; LSH2 (pass p after C1's slice p) ----------------------------
    t = 0
    end, swept = lsh(t, n, "LSH1")
    cycles["LSH1"] = end - t + 1 - swept
    c1_slices = cag_pass_done(end, n, k1)
    t = end + 1
    end, swept = lsh(t, m, "LSH0")
    cycles["LSH0"] = end - t + 1 - swept
    t = end + 1
    end, waited = lsh(t, n, "LSH2", c1_slices)      # pass p waits for C1's slice p
    cycles["CAG1"] = waited - sweeps.get("LSH2", 0)
    cycles["LSH2"] = end - t + 1 - waited
    c2_ready = cag_done(end, n, k2)
    t = end + 1

    # -- K̄V̄ in two halves: 2·groups column groups, each in passes of b loads + the k1 C1 rows (C2
    # beside it on the CAG), then the same with the k2 C2 rows (C0 beside it) ----------------------------
    def kv_half(t: int, rows: int) -> tuple[int, list[int]]:
        items = []
        for _ in range(2 * groups):
            for _ in range(passes):
                items += beats(b, op="load") + beats(rows)
        last, acc, _ = run_array(items, t)
        return last, acc

    last, _ = kv_half(t, k1)
    cycles["KV"] = last - t + 1
    t = last + 1
    x = wait(t, c2_ready)
    cycles["CAG2"] = x - t + 1
    c0_ready = cag_done(x, m, k0)
    t = x + 1
    _, acc = kv_half(t, k2)
    end = acc[-1] + res + 1
    cycles["KV"] += end - t + 1
    t = end + 1
    x = wait(t, c0_ready)
    cycles["CAG0"] = x - t + 1
    t = x + 1
    # -- per batch of b queries: Q̄ (shortcut), scores; the PAG beside the next Q̄; output -----------------
    for name in ("Q", "SCORE", "PAG", "OUTPUT"):
        cycles[name] = 0
    batches = -(-k0 // b)

    def q_bar(t: int) -> int:
        items = []
        for p in range(passes):
            items += beats(b, op="load") + beats(d_h, shortcut=p == passes - 1, d_out=d_h)
        last_q, _, _ = run_array(items, t)
        cycles["Q"] += last_q - t + 1
        return last_q + 1

    t = q_bar(t)
    last_rows = 0
    for batch in range(batches):
        last_s, acc_s, _ = run_array(beats(kk), t)
        cycles["SCORE"] += last_s - t + 1
        t = last_s + 1
        # PAG issuer from t: pairs accepted from the cycle after the last CS beat
        pag_ready = acc_s[-1] + res + 1
        pag = _Credit(depth)
        cyc = t
        for _ in range(-(-n // 2)):
            while not pag.space(cyc):
                cyc += 1
            pag.add(cyc, max(cyc + lat["pag_issue_latency"], pag_ready, pag.accepted[-1] + 1 if pag.accepted else 0))
            cyc += 1
        first_ap = pag.accepted[-1] + lat["pag_readout"]
        if batch + 1 < batches:
            t = q_bar(t)
        ap_ready = [first_ap] + [0] * (kk - 1)
        last_o, acc_o, ap_wait = run_array(beats(kk, op="df2"), t, ap_ready)
        cycles["PAG"] += ap_wait
        cycles["OUTPUT"] += last_o - t + 1 - ap_wait
        t = last_o + 1
        last_rows = acc_o[-1] + lat["out_latency"] + d - 1
    end = last_rows + 1                    # OUT_W: the last row counted
    cycles["OUTPUT"] += end - t + 1
    cycles["READ"] = m + il
    cycles["SWEEP"] = sum(sweeps.values())
    return cycles


def cta_step_bounds(*, m: int, n: int, d_in: int, k0: int, k1: int, k2: int, cfg: SystolicConfig,
                    l: int, d_h: int, lat: Mapping[str, int]) -> dict[str, int]:  # noqa: E741
    """Per step, the cycles the array itself needs at one input beat per cycle, value loads included
    (the array's limits: l of b columns hash, d_h of d rows hold a query), plus the documented fill
    that no overlap can hide: an LSH step's clear (2 cycles) and its last hash through the array and
    the CIM, K̄V̄'s last result, the array's hold after the first Q̄ (:func:`golden.systolic.shortcut_gap`,
    less what the issuer's FIFO credit hides; the later holds overlap the previous batch's output
    phase) and the last output row. The CAG and PAG steps are 0 (they can run wholly beside the array);
    READ is the m rows. :func:`cta_step_cycles` against this sum is the sequencer's overhead."""
    b, d = cfg.b, cfg.d
    passes = cfg.passes(d_in)
    kk = k1 + k2
    groups = -(-d_h // b)
    batches = -(-k0 // b)
    il, res = lat["issue_latency"], lat["res_latency"]
    lsh_fill = 2 + il + res + lat["cim_latency"] + 1
    # the first scores wait for the hold after the first Q̄, less what the issuer's FIFO credit hides
    hold = 0
    if kk > lat["fifo_depth"]:
        hold = max(0, shortcut_gap(cfg, d_h, lat["shortcut_gap"]) - (lat["fifo_depth"] - il))
    return {
        "LSH1": passes * (l + n) + lsh_fill, "LSH0": passes * (l + m) + lsh_fill,
        "CAG1": 0, "LSH2": passes * (l + n) + lsh_fill, "CAG2": 0,
        "KV": 2 * groups * passes * (2 * b + kk) + il + res + 1, "CAG0": 0,
        "Q": batches * passes * (b + d_h),
        "SCORE": batches * kk + hold, "PAG": 0,
        "OUTPUT": batches * kk + il + lat["out_latency"] + d,
        "READ": m + il,
    }
