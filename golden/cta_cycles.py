"""Cycle model of the CTA accelerator block's sequencer (``hdl.cta.Cta``): the cycles of every Table I
step of one run, from the blocks' latency constants (DESIGN §9 "Breakdown").

The model follows the sequencer cycle by cycle. A step issues its items (array beats, CAG tokens,
PAG cluster-index pairs, output rows) one per cycle while fewer than ``fifo_depth`` items are on
their way to their consumer; an item reaches its consumer ``issue_latency`` cycles after it is
issued and is accepted in order, one per cycle, when the consumer is ready:

* the systolic array holds its input after a shortcut (Q̄) phase for
  :func:`golden.systolic.shortcut_gap` cycles and starts an output phase no earlier than d cycles
  after the previous one's last beat (:func:`golden.systolic.issue_cycles` rules);
* the PAG takes cluster-index pairs from the cycle after its last CS beat (the score result of the
  batch's last key, ``res_latency`` after that beat), and offers its AP column t (which the output
  phase's beat t carries) from ``pag_readout`` cycles after its last pair, one per cycle.

A step ends when its results are in: LSH steps when the CIM has written the last cluster index
(``res_latency`` + ``cim_latency`` after the last beat of the last pass, + 1), CAG runs with the
last centroid (``cag_tail`` + k after the last token), K̄V̄ with its last result, the last batch's
output phase with its last normalised row, the readout with the last row taken. The CIM's memory
sweep (after reset, on epoch wrap) is not modelled (the ``SWEEP`` counter). Latencies are passed in
(``golden`` does not import ``hdl``): :meth:`hdl.cta.Cta.cycle_latencies`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .systolic import SystolicConfig, shortcut_gap

__all__ = ["cta_step_cycles"]


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
    t = 0                                   # first cycle of the current step
    # array input state (shared by all array steps)
    sa = {"hold_until": 0, "last_df2": None, "last_accept": -1}
    # every item on its way (all consumers share the sequencer's credit: FIFO levels + stages)
    all_issued: list[int] = []
    all_accepted: list[int] = []

    def outstanding(cyc: int) -> int:
        return sum(1 for x in all_issued if x < cyc) - sum(1 for x in all_accepted if x < cyc)

    def run_array(items: list[dict[str, Any]], start: int, ap_ready: list[int] | None = None) -> tuple[int, list[int]]:
        """Issue ``items`` (dicts with op/shortcut/last/first/d_out) from ``start``; return the cycle
        of the last issue and the accept cycles. ``ap_ready``: per item, the first cycle its AP
        column is offered (output phases)."""
        accepted = []
        cyc = start
        k = 0
        while k < len(items):
            gate = ap_ready is None or cyc >= ap_ready[k]
            if outstanding(cyc) < depth and gate:
                all_issued.append(cyc)
                # acceptance: available il cycles later, in order, input gate rules
                it = items[k]
                acc = max(cyc + il, sa["last_accept"] + 1, sa["hold_until"])
                if it["op"] == "df2" and it["first"] and sa["last_df2"] is not None:
                    acc = max(acc, sa["last_df2"] + d)
                accepted.append(acc)
                all_accepted.append(acc)
                sa["last_accept"] = acc
                if it.get("shortcut") and it["last"]:
                    sa["hold_until"] = acc + 1 + shortcut_gap(cfg, it["d_out"])
                if it["op"] == "df2" and it["last"]:
                    sa["last_df2"] = acc
                if ap_ready is not None and k + 1 < len(items):
                    ap_ready[k + 1] = max(ap_ready[k + 1], cyc + 1)   # the PAG offers the next column
                k += 1
            cyc += 1
        return cyc - 1, accepted

    def beats(count: int, op: str = "df1", **kw: Any) -> list[dict[str, Any]]:
        return [{"op": op, "first": i == 0, "last": i == count - 1, **kw} for i in range(count)]

    # -- LSH steps: 2 cycles (clear, sweep check), the passes, then the CIM's last index + 1 --------
    for name, cnt in (("LSH1", n), ("LSH0", m)):
        items = []
        for _ in range(passes):
            items += beats(l, op="load") + beats(cnt)
        last_issue, acc = run_array(items, t + 2)
        end = acc[-1] + res + lat["cim_latency"] + 1
        cycles[name] = end - t + 1
        t = end + 1
        if name == "LSH0":
            # CAG C1 runs before LSH2 (it needs C1)
            start = t
            for _ in range(passes):
                start = start + n + il + lat["cag_tail"] + k1
            cycles["CAG1"] = start - t
            t = start
    items = []
    for _ in range(passes):
        items += beats(l, op="load") + beats(n)
    last_issue, acc = run_array(items, t + 2)
    end = acc[-1] + res + lat["cim_latency"] + 1
    cycles["LSH2"] = end - t + 1
    t = end + 1
    for name, cnt, k in (("CAG2", n, k2), ("CAG0", m, k0)):
        cycles[name] = passes * (cnt + il + lat["cag_tail"] + k)
        t += cycles[name]
    # -- K̄V̄: 2·groups column groups, each in passes of b loads + k1+k2 rows -------------------------
    items = []
    for _ in range(2 * groups):
        for _ in range(passes):
            items += beats(b, op="load") + beats(kk)
    last_issue, acc = run_array(items, t)
    end = acc[-1] + res + 1
    cycles["KV"] = end - t + 1
    t = end + 1
    # -- per batch of b queries: Q̄ (shortcut), scores, PAG, output -------------------------------------
    for name in ("Q", "SCORE", "PAG", "OUTPUT"):
        cycles[name] = 0
    batches = -(-k0 // b)
    last_rows = 0
    for _batch in range(batches):
        items = []
        for p in range(passes):
            final = p == passes - 1
            items += beats(b, op="load") + beats(d_h, shortcut=final, d_out=d_h)
        last_q, _ = run_array(items, t)
        cycles["Q"] += last_q - t + 1
        t = last_q + 1
        last_s, acc_s = run_array(beats(kk), t)
        cycles["SCORE"] += last_s - t + 1
        t = last_s + 1
        # PAG: pairs accepted from the cycle after the last CS beat; issued while < depth outstanding
        pag_ready = acc_s[-1] + res + 1
        pairs = -(-n // 2)
        issued, accepted = [], []
        cyc = t
        while len(issued) < pairs:
            if outstanding(cyc) < depth:
                issued.append(cyc)
                accepted.append(max(cyc + il, pag_ready, (accepted[-1] + 1) if accepted else 0))
                all_issued.append(cyc)
                all_accepted.append(accepted[-1])
            cyc += 1
        cycles["PAG"] += issued[-1] - t + 1
        t = issued[-1] + 1
        first_ap = accepted[-1] + lat["pag_readout"]
        ap_ready = [first_ap] + [0] * (kk - 1)
        last_o, acc_o = run_array(beats(kk, op="df2"), t, ap_ready)
        cycles["OUTPUT"] += last_o - t + 1
        t = last_o + 1
        last_rows = acc_o[-1] + lat["out_latency"] + d - 1
    end = last_rows + 1                    # OUT_W: the last row counted
    cycles["OUTPUT"] += end - t + 1
    t = end + 1
    cycles["READ"] = m + il
    return cycles
