"""Cycle model of the CTA accelerator block's sequencer (``hdl.cta.Cta``): the cycles of every Table I
step of one run, from the blocks' latency constants (DESIGN §9 "Breakdown").

The model follows the sequencer cycle by cycle. Three issuers run side by side, each issuing one
item per cycle while fewer than ``fifo_depth`` of its items are on their way to their consumer (an
item reaches its consumer ``issue_latency`` cycles after it is issued and is accepted in order, one
per cycle, when the consumer is ready):

* the array issuer (LSH, K̄V̄, Q̄, score and output beats, then the readout rows): the systolic
  array holds its input after a shortcut (Q̄) phase for :func:`golden.systolic.shortcut_gap`
  cycles and starts an output phase no earlier than d cycles after the previous one's last beat
  (:func:`golden.systolic.issue_cycles` rules);
* the CAG issuer (Table I: the auxiliary modules beside the array): C1 starts when CT1 is complete
  and runs beside LSH0; C2 starts when CT2 is complete; C0 starts with K̄V̄ and runs beside it.
  A CAG run takes, per d-slice (pass), its tokens + ``issue_latency`` + ``cag_tail`` + k cycles;
* the PAG issuer: a batch's PAG runs beside the next batch's Q̄. The PAG takes cluster-index pairs
  from the cycle after its last CS beat (the score result of the batch's last key, ``res_latency``
  after that beat), and offers its AP column t (which the output phase's beat t carries) from
  ``pag_readout`` cycles after its last pair, one per cycle.

Per batch the array runs Q̄(i+1) between score(i) and output(i) (the value registers hold Q̄(i+1)
through the output phase, which does not use them). The step counters count the cycles the
sequencer spends in each step, so that they add up to the run: the CAG steps count only the cycles
the array waits for a CAG run (LSH2 needs C1, K̄V̄ needs C2, Q̄ needs C0), and the PAG step only
the cycles the output phase waits for its AP. LSH steps end when the CIM has written the last
cluster index (``res_latency`` + ``cim_latency`` after the last beat of the last pass, + 1), K̄V̄
with its last result, the last batch's output phase with its last normalised row, the readout with
the last row taken. The CIM's memory sweep (after reset, on epoch wrap) is not modelled (the
``SWEEP`` counter). Latencies are passed in (``golden`` does not import ``hdl``):
:meth:`hdl.cta.Cta.cycle_latencies`.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Mapping
from typing import Any

from .systolic import SystolicConfig, shortcut_gap

__all__ = ["cta_step_cycles"]


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


def cta_step_cycles(*, m: int, n: int, d_in: int, k0: int, k1: int, k2: int, cfg: SystolicConfig, l: int,  # noqa: E741
                    d_h: int, lat: Mapping[str, int]) -> dict[str, int]:
    """Cycles per step of one run (no stalls from the host on ``o``). ``lat``: ``issue_latency``,
    ``fifo_depth``, ``res_latency``, ``out_latency`` (last output-phase beat to its first row),
    ``cim_latency``, ``cag_tail`` (last token to the last centroid, without k), ``pag_readout``."""
    b, d = cfg.b, cfg.d
    passes = cfg.passes(d_in)
    kk = k1 + k2
    groups = -(-d_h // b)
    il, depth, res = lat["issue_latency"], lat["fifo_depth"], lat["res_latency"]
    cycles: dict[str, int] = {}
    sa = {"hold_until": 0, "last_df2": None, "last_accept": -1}   # array input state
    main = _Credit(depth)

    def run_array(items: list[dict[str, Any]], start: int,
                  ap_ready: list[int] | None = None) -> tuple[int, list[int], int]:
        """Issue ``items`` (dicts with op/shortcut/last/first/d_out) from ``start``; return the cycle
        of the last issue, the accept cycles and the cycles spent waiting for an AP column.
        ``ap_ready``: per item, the first cycle its AP column is offered (output phases)."""
        accepted = []
        cyc, k, ap_wait = start, 0, 0
        while k < len(items):
            gate = ap_ready is None or cyc >= ap_ready[k]
            ap_wait += not gate
            if gate and main.space(cyc):
                it = items[k]
                acc = max(cyc + il, sa["last_accept"] + 1, sa["hold_until"])
                if it["op"] == "df2" and it["first"] and sa["last_df2"] is not None:
                    acc = max(acc, sa["last_df2"] + d)
                accepted.append(acc)
                main.add(cyc, acc)
                sa["last_accept"] = acc
                if it.get("shortcut") and it["last"]:
                    sa["hold_until"] = acc + 1 + shortcut_gap(cfg, it["d_out"])
                if it["op"] == "df2" and it["last"]:
                    sa["last_df2"] = acc
                if ap_ready is not None and k + 1 < len(items):
                    ap_ready[k + 1] = max(ap_ready[k + 1], cyc + 1)   # the PAG offers the next column
                k += 1
            cyc += 1
        return cyc - 1, accepted, ap_wait

    def beats(count: int, op: str = "df1", **kw: Any) -> list[dict[str, Any]]:
        return [{"op": op, "first": i == 0, "last": i == count - 1, **kw} for i in range(count)]

    def lsh(t: int, cnt: int) -> int:
        """An LSH step from cycle t (2 cycles: clear, sweep check); the cycle it ends."""
        items = []
        for _ in range(passes):
            items += beats(l, op="load") + beats(cnt)
        _, acc, _ = run_array(items, t + 2)
        return acc[-1] + res + lat["cim_latency"] + 1

    def cag_done(start: int, cnt: int, k: int) -> int:
        """A CAG run started at cycle ``start`` (it issues from start + 1): the first cycle it is idle."""
        return start + 1 + passes * (cnt + il + lat["cag_tail"] + k)

    def wait(t: int, ready: int) -> int:
        """A wait state entered at t for a CAG run idle from cycle ``ready``: the cycle it leaves."""
        return max(t, ready)

    # -- compression: LSH1; LSH0 beside C1; LSH2; C2 -----------------------------------------------------
    t = 0
    end = lsh(t, n)
    cycles["LSH1"] = end - t + 1
    c1_ready = cag_done(end, n, k1)
    t = end + 1
    end = lsh(t, m)
    cycles["LSH0"] = end - t + 1
    t = end + 1
    x = wait(t, c1_ready)
    cycles["CAG1"] = x - t + 1
    t = x + 1
    end = lsh(t, n)
    cycles["LSH2"] = end - t + 1
    c2_ready = cag_done(end, n, k2)
    t = end + 1
    x = wait(t, c2_ready)
    cycles["CAG2"] = x - t + 1
    c0_ready = cag_done(x, m, k0)
    t = x + 1
    # -- K̄V̄ (C0 beside it): 2·groups column groups, each in passes of b loads + k1+k2 rows ---------------
    items = []
    for _ in range(2 * groups):
        for _ in range(passes):
            items += beats(b, op="load") + beats(kk)
    _, acc, _ = run_array(items, t)
    end = acc[-1] + res + 1
    cycles["KV"] = end - t + 1
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
            pag.add(cyc, max(cyc + il, pag_ready, pag.accepted[-1] + 1 if pag.accepted else 0))
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
    return cycles
