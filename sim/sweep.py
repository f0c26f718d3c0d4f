"""Design-space sweep of the CTA accelerator (``attn-rtl sweep``) on Dask distributed.

A *point* is a dict of hardware parameters and algorithm settings:

* ``b`` (SA width = queries per batch), ``d`` (SA height), ``pag`` (PAG parallelism: ADD_EXP units;
  the RTL has 2 per tile, b tiles -> 2·b), ``ap_width`` (AP format bits);
* ``l`` (LSH hash length), ``w`` (LSH bucket width, the same for LSH_0/1/2), ``lsh_seed``;
* the head: ``head = "random"`` (``n`` tokens, ``d_in``, ``d_h``, ``seed``) or ``"minilm"`` (the
  built-in 256-token text, ``layer``, ``head_index``).

Per point (:func:`evaluate_point`, pure, picklable; runs on a Dask worker):

* the bit-exact CTA run (:func:`golden.cta.cta_fixed_trace`) and its SA program
  (:func:`golden.cta_program.head_program`); cycles from the golden cycle model
  (:func:`golden.cta_program.step_cycles`, i.e. :func:`golden.systolic.expected_phase_cycles`,
  equal to the RTL's cycles by the ``attn-rtl run`` check) per Fig. 12 group;
* the PAG of each query batch: ``ceil(k·n / pag)`` cycles (k queries of the batch, n keys, one
  ADD_EXP iteration per unit per cycle). It overlaps the next batch's Q̄ and score phases on the SA
  (the array does not need the AP until the output phase); only the part it does not hide stalls
  the array (the last batch's PAG is never hidden). This is the model of Fig. 13;
* throughput = queries per 1000 cycles (and per second at Fmax when synthesised), the ratio to the
  ideal exact-attention accelerator (DESIGN §9);
* accuracy: relative Frobenius error and cosine of the fixed-point CTA output vs exact float
  attention on the same head;
* optionally (``synth``: ``generic`` or ``ecp5``) the systolic array's cost through :mod:`synth.flow`
  (yosys cells / nextpnr LUTs and Fmax) for the point's b, d (formats of the FPGA-sized block).

Results are cached by configuration (one JSON per point in the cache directory, named by a hash of
the point), so an interrupted sweep resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import product
from pathlib import Path
from typing import Any

__all__ = ["AXES", "SweepError", "default_grid", "expand_grid", "point_key", "evaluate_point", "run_sweep",
           "pareto_front", "format_table", "write_outputs"]

#: sweep axes: name -> (type, min, max, help)
AXES: dict[str, tuple[type, float, float, str]] = {
    "b": (int, 1, 64, "SA width (queries per batch, PAG tiles)"),
    "d": (int, 2, 256, "SA height"),
    "pag": (int, 1, 4096, "PAG parallelism (ADD_EXP units; RTL: 2 per tile = 2·b)"),
    "ap_width": (int, 8, 32, "AP format width (bits)"),
    "l": (int, 1, 16, "LSH hash length"),
    "w": (float, 0.01, 1000.0, "LSH bucket width (LSH_0, LSH_1, LSH_2)"),
    "lsh_seed": (int, 0, 2**31 - 1, "LSH seed"),
    "n": (int, 4, 4096, "tokens of the random head (m = n)"),
    "d_in": (int, 1, 4096, "input width of the random head"),
    "d_h": (int, 1, 256, "head width of the random head"),
    "seed": (int, 0, 2**31 - 1, "seed of the random head"),
    "layer": (int, 0, 5, "MiniLM layer (head=minilm)"),
    "head_index": (int, 0, 11, "MiniLM head (head=minilm)"),
}
BASE: dict[str, Any] = {"b": 8, "d": 64, "pag": 16, "ap_width": 17, "l": 6, "w": 24.0, "lsh_seed": 0, "n": 256,
                        "d_in": 384, "d_h": 32, "seed": 0, "layer": 2, "head_index": 5, "head": "minilm"}
MODEL_VERSION = 1  # bump when the evaluation changes (invalidates the cache)


class SweepError(ValueError):
    """A bad sweep axis or value (the CLI prints it as one line, exit status 2)."""


@dataclass(frozen=True)
class Grid:
    axes: dict[str, list[Any]]
    fixed: dict[str, Any]

    def points(self) -> list[dict[str, Any]]:
        names = list(self.axes)
        out = []
        for values in product(*(self.axes[n] for n in names)):
            point = {**self.fixed, **dict(zip(names, values, strict=True))}
            out.append(point)
        return out


def default_grid(quick: bool = False) -> Grid:
    """Fig. 13: SA width b = 8..64 (b >= l = 6) x PAG parallelism 4..128 on the real MiniLM head
    (quick: a tiny random head, 4 points)."""
    if quick:
        return Grid({"b": [4, 8], "pag": [4, 16]},
                    {**BASE, "head": "random", "n": 48, "d_in": 32, "d_h": 16, "d": 16, "l": 4})
    return Grid({"b": [8, 16, 32, 64], "pag": [4, 8, 16, 32, 64, 128]}, dict(BASE))


def _parse_value(name: str, text: str) -> Any:
    kind, lo, hi, _ = AXES[name]
    try:
        value = kind(text) if kind is float else int(text, 0)
    except ValueError:
        raise SweepError(f"sweep axis {name}={text!r}: expected {kind.__name__} in [{lo:g}, {hi:g}]") from None
    if not lo <= value <= hi:
        raise SweepError(f"sweep axis {name}={value!r} out of range: expected {kind.__name__} in [{lo:g}, {hi:g}]")
    return value


def expand_grid(base: Grid, sets: Mapping[str, str], head: str | None = None) -> Grid:
    """``--set NAME=V1,V2,...`` over ``base``: a list sweeps the axis, a single value fixes it."""
    axes = {k: list(v) for k, v in base.axes.items()}
    fixed = dict(base.fixed)
    if head is not None:
        if head not in ("random", "minilm"):
            raise SweepError(f"--head {head!r}: expected random or minilm")
        fixed["head"] = head
    for name, text in sets.items():
        if name not in AXES:
            raise SweepError(f"unknown sweep axis {name!r}; axes: {', '.join(AXES)}")
        values = [_parse_value(name, t.strip()) for t in text.split(",") if t.strip()]
        if not values:
            raise SweepError(f"sweep axis {name}: no value")
        axes.pop(name, None)
        if len(values) == 1:
            fixed[name] = values[0]
        else:
            axes[name] = values
    grid = Grid(axes, fixed)
    for p in grid.points():
        _check_point(p)
    return grid


def _check_point(p: Mapping[str, Any]) -> None:
    d_h = 32 if p["head"] == "minilm" else p["d_h"]
    if d_h > p["d"]:
        raise SweepError(f"sweep point d={p['d']}: SA height must be >= the head width d_h={d_h}")
    if p["l"] > p["b"]:
        raise SweepError(f"sweep point l={p['l']} > b={p['b']}: each LSH direction occupies one SA column")
    n = 256 if p["head"] == "minilm" else p["n"]
    if p["ap_width"] - max(1, n.bit_length()) < 1:
        raise SweepError(f"sweep point ap_width={p['ap_width']} leaves no fractional bits for n={n}")


def point_key(point: Mapping[str, Any], synth: str | None = None) -> str:
    """Cache key of a point: hash of its configuration (and the synthesis target, the model version)."""
    blob = json.dumps({"point": dict(point), "synth": synth, "v": MODEL_VERSION}, sort_keys=True, default=str)
    return hashlib.sha1(blob.encode()).hexdigest()[:16]


def _head_inputs(p: Mapping[str, Any]):
    import numpy as np

    from golden.reference import HeadInputs

    if p["head"] == "minilm":
        from golden.corpus import LONG_TEXT
        from golden.minilm import _load_cached

        return _load_cached().head_inputs(LONG_TEXT, p["layer"])[p["head_index"]]
    rng = np.random.default_rng(p["seed"])
    n, d_in, d_h = p["n"], p["d_in"], p["d_h"]
    # clustered tokens (a few centres plus noise), as in real activations, so LSH has work to do
    centres = rng.normal(0.0, 1.0, (max(2, n // 8), d_in))
    x = centres[rng.integers(0, centres.shape[0], n)] + rng.normal(0.0, 0.1, (n, d_in))
    w = [rng.normal(0.0, 1.0 / math.sqrt(d_in), (d_in, d_h)) for _ in range(3)]
    bias = [rng.normal(0.0, 0.02, d_h) for _ in range(3)]
    return HeadInputs(x, x, *w, *bias)


def pag_cycles(batch_queries: Sequence[int], n: int, pag: int) -> list[int]:
    """PAG cycles of each query batch: ceil(k·n / pag) ADD_EXP iterations (k queries, n keys)."""
    return [-(-k * n // pag) for k in batch_queries]


def evaluate_point(point: Mapping[str, Any], synth: str | None = None,
                   synth_build: str = "build/sweep_synth") -> dict[str, Any]:
    """Cycles, throughput, accuracy (and optionally area / Fmax) of one point (see module doc)."""
    import numpy as np

    from golden.cta import cta_fixed_config, cta_fixed_trace
    from golden.cta_program import head_program, ideal_exact_cycles, step_cycles
    from golden.lsh import make_lsh_params
    from golden.reference import exact_head, relative_error
    from hdl.arith import ReciprocalScaler
    from hdl.systolic_array import SHORTCUT_GAP

    t0 = time.perf_counter()
    p = dict(point)
    hin = _head_inputs(p)
    lsh = make_lsh_params(hin.d_in, l=p["l"], widths=p["w"], seed=p["lsh_seed"])
    cfg = cta_fixed_config(hin, lsh, d=p["d"], b=p["b"], ap_width=p["ap_width"])
    trace = cta_fixed_trace(hin, lsh=lsh, cfg=cfg)
    hp = head_program(trace)
    model = step_cycles(hp, ReciprocalScaler.LATENCY, gap=SHORTCUT_GAP)
    phases = model["phases"]
    # per query batch: the q and score phases (SA time that can hide the previous batch's PAG)
    batches: list[dict[str, int]] = []
    for step, ph, cols in zip(hp.steps, phases, hp.cols, strict=True):
        if step == "q":
            batches.append({"k": cols, "hide": 0})
        if step in ("q", "score"):
            batches[-1]["hide"] += ph["issue"]
    pag = pag_cycles([bt["k"] for bt in batches], hin.n, p["pag"])
    stall = sum(max(0, pag[i] - (batches[i + 1]["hide"] if i + 1 < len(batches) else 0))
                for i in range(len(batches)))
    sa_total = int(model["total"])
    total = sa_total + stall
    ideal = ideal_exact_cycles(hin.m, hin.n, hin.d_in, hin.d_h, hp.cfg)
    out = trace.cfg.out_fmt.to_float(trace.out)
    exact = exact_head(hin).out
    rel = float(relative_error(out, exact))
    cos = float(np.sum(out * exact) / max(1e-30, np.linalg.norm(out) * np.linalg.norm(exact)))
    res: dict[str, Any] = {
        **p, "m": hin.m, "n_tokens": hin.n, "k0": trace.k0, "k1": trace.k1, "k2": trace.k2,
        "batches": len(batches), "sa_cycles": sa_total, "pag_cycles": int(sum(pag)), "pag_stall": int(stall),
        "cycles": int(total), "groups": {g: int(v["issue"]) for g, v in model["groups"].items()},
        "throughput_q_per_kcycle": 1000.0 * hin.m / total, "ideal_exact_cycles": float(ideal),
        "ratio_to_ideal": total / ideal, "rel_error": rel, "cosine": cos, "pe": p["b"] * p["d"],
    }
    if synth:
        res.update(_synth_point(p, hp.cfg, synth, synth_build))
    res["seconds"] = time.perf_counter() - t0
    return res


def _synth_point(p: Mapping[str, Any], cfg: Any, target: str, build_root: str) -> dict[str, Any]:
    """The systolic array of the point (b, d; other parameters as the block's FPGA-sized ones)."""
    from hdl.registry import get_block
    from synth.flow import synth_block

    spec = get_block("systolic_array")
    overrides = {**dict(spec.fpga_params), "b": p["b"], "d": p["d"]}
    try:
        result = synth_block("systolic_array", overrides, target=target, seeds=1 if target != "generic" else 0,
                             build_root=build_root, log=lambda _msg: None)
    except Exception as exc:  # a point that does not fit is a result, not a crash of the sweep
        return {"synth_error": f"{type(exc).__name__}: {exc}"}
    out: dict[str, Any] = {"resources": dict(result.resources)}
    fmax = result.fmax
    if fmax:
        out["fmax_mhz"] = fmax["median"]
    return out


def run_sweep(points: Sequence[Mapping[str, Any]], *, cache_dir: str | Path, scheduler: str | None = None,
              workers: int = 2, synth: str | None = None, synth_build: str | Path = "build/sweep_synth",
              progress: bool = True,
              timeout: float | None = None, log: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """Evaluate ``points`` on Dask (a LocalCluster of ``workers`` processes, or the scheduler at
    ``scheduler``), skipping points whose result is in ``cache_dir``; returns results in order.
    ``timeout`` (seconds, None: none) bounds the whole run (a ``TimeoutError`` after it)."""
    from dask.distributed import Client, LocalCluster, as_completed

    cache = Path(cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    keys = [point_key(p, synth) for p in points]
    results: dict[str, dict[str, Any]] = {}
    for key in keys:
        path = cache / f"{key}.json"
        if path.exists():
            try:
                results[key] = json.loads(path.read_text())
            except json.JSONDecodeError:
                path.unlink()  # a half-written file from an interrupted run
    todo = [(k, p) for k, p in zip(keys, points, strict=True) if k not in results]
    log(f"sweep: {len(points)} points, {len(points) - len(todo)} cached, {len(todo)} to run")
    if todo:
        cluster = None
        if scheduler:
            client = Client(scheduler, timeout="30s")
        else:
            cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                   dashboard_address=None, silence_logs=40)
            client = Client(cluster)
        try:
            futures = {client.submit(evaluate_point, dict(p), synth, str(Path(synth_build).resolve()),
                                     key=f"sweep-{k}", pure=False): k
                       for k, p in todo}
            bar = None
            if progress:
                from tqdm import tqdm

                bar = tqdm(total=len(futures), desc="sweep", unit="pt")
            for fut in as_completed(futures, timeout=timeout):
                k = futures[fut]
                res = fut.result()
                res["key"] = k
                tmp = cache / f"{k}.json.tmp"
                tmp.write_text(json.dumps(res, default=str))
                tmp.replace(cache / f"{k}.json")
                results[k] = res
                if bar is not None:
                    bar.update(1)
            if bar is not None:
                bar.close()
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
    return [results[k] for k in keys]


def pareto_front(rows: Iterable[Mapping[str, Any]], x: str, y: str) -> list[Mapping[str, Any]]:
    """Points not dominated when minimising ``x`` and maximising ``y``."""
    pts = sorted(rows, key=lambda r: (r[x], -r[y]))
    front, best = [], -math.inf
    for r in pts:
        if r[y] > best:
            front.append(r)
            best = r[y]
    return front


def format_table(rows: Sequence[Mapping[str, Any]], axes: Sequence[str]) -> str:
    cols = ["b", "pag"] + [a for a in axes if a not in ("b", "pag")]
    cols += ["k0", "k1", "k2", "sa_cycles", "pag_stall", "cycles", "throughput_q_per_kcycle", "ratio_to_ideal",
             "rel_error"]
    for key in ("lut4", "cells", "mul", "dsp"):
        if any(key in r.get("resources", {}) for r in rows):
            cols.append(key)
    if any(r.get("fmax_mhz") for r in rows):
        cols.append("fmax_mhz")
    head = {"throughput_q_per_kcycle": "q/kcycle", "ratio_to_ideal": "vs ideal", "rel_error": "rel err",
            "sa_cycles": "SA cycles", "pag_stall": "PAG stall", "fmax_mhz": "Fmax"}
    lines = ["| " + " | ".join(head.get(c, c) for c in cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        cells = []
        for c in cols:
            v = r.get(c, r.get("resources", {}).get(c, ""))
            cells.append(f"{v:.4g}" if isinstance(v, float) else str(v))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_outputs(rows: Sequence[Mapping[str, Any]], axes: Sequence[str], out_dir: str | Path,
                  meta: Mapping[str, Any], plots: bool = True) -> list[Path]:
    """``sweep.json``, ``sweep.md`` and the plots (``fig13.png``, ``pareto.png``)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "sweep.json", out / "sweep.md"]
    paths[0].write_text(json.dumps({**meta, "axes": list(axes), "points": list(rows)}, indent=1, default=str) + "\n")
    paths[1].write_text(f"# attn-rtl sweep\n\n`{meta.get('command', '')}`\n\n" + format_table(rows, axes) + "\n")
    if not plots:
        return paths
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def finish(ax: Any) -> None:
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)

    def save(fig: Any, name: str) -> None:
        fig.tight_layout()
        fig.savefig(out / name, dpi=120)
        plt.close(fig)
        paths.append(out / name)

    # Fig. 13: throughput vs SA width, one line per PAG parallelism (other axes at their first value)
    fig, ax = plt.subplots(figsize=(6, 4))
    others = [a for a in axes if a not in ("b", "pag")]
    first = {a: rows[0][a] for a in others} if rows else {}
    sel = [r for r in rows if all(r[a] == v for a, v in first.items())]
    for pag in sorted({r["pag"] for r in sel}):
        line = sorted((r["b"], r["throughput_q_per_kcycle"]) for r in sel if r["pag"] == pag)
        ax.plot([b for b, _ in line], [t for _, t in line], marker="o", label=f"PAG {pag}")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("SA width b")
    ax.set_ylabel("throughput (queries / 1000 cycles)")
    ax.set_title("Fig. 13: throughput vs SA width for PAG parallelism")
    finish(ax)
    save(fig, "fig13.png")

    # Pareto: cost (Fmax-less: PEs + PAG units; with synthesis: LUTs/cells) vs throughput, and error
    fig, axs = plt.subplots(1, 2, figsize=(10, 4))
    for r in rows:
        r_cost = r.get("resources", {}).get("lut4") or r.get("resources", {}).get("cells") or None
        r["_cost"] = float(r_cost) if r_cost else float(r["pe"] + r["pag"])
    cost_label = "LUTs / cells" if any(r.get("resources") for r in rows) else "PEs + PAG units (b·d + pag)"
    for ax, y, ylab in ((axs[0], "throughput_q_per_kcycle", "queries / 1000 cycles"),
                        (axs[1], "_neg_err", "−relative error")):
        for r in rows:
            r["_neg_err"] = -r["rel_error"]
        ax.scatter([r["_cost"] for r in rows], [r[y] for r in rows], s=14, alpha=0.6, label="points")
        front = pareto_front(rows, "_cost", y)
        ax.plot([r["_cost"] for r in front], [r[y] for r in front], "r-o", ms=4, label="Pareto front")
        ax.set_xlabel(cost_label)
        ax.set_ylabel(ylab)
        ax.set_xscale("log")
        finish(ax)
    save(fig, "pareto.png")
    for r in rows:
        r.pop("_cost", None)
        r.pop("_neg_err", None)
    return paths
