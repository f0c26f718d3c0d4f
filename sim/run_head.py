"""One real all-MiniLM-L6-v2 attention head through the RTL systolic array (``attn-rtl run``).

The head (built-in text, layer, head) is computed bit-exactly by :func:`golden.cta.cta_fixed_trace`;
:func:`golden.cta_program.head_program` turns it into the SA's Table I phases (LSH_1, LSH_0, LSH_2,
K̄V̄ batches, then per query batch Q̄ with the shortcut, scores, output; d_in tiled into passes).
The generated array runs that program on Verilator (or Icarus); every SA result is compared ``==``
with the golden model at the cycle the golden cycle model predicts. The CIM, CAG and PAG results
between the SA phases come from their golden models (the single-block ``cta`` top that runs them in
RTL beside the array is issue 10's remaining work).
"""

from __future__ import annotations

import json
import pickle
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["DEFAULT_LAYER", "DEFAULT_HEAD", "DEFAULT_WIDTHS", "HeadSettings", "resolve_head_settings", "run_head"]

DEFAULT_LAYER = 2
DEFAULT_HEAD = 5
DEFAULT_WIDTHS = (24.0, 24.0, 24.0)


@dataclass(frozen=True)
class HeadSettings:
    """LSH settings of the head run: widths (w0, w1, w2), hash length (None: the block's) and where
    they come from (``"default"``, ``"--widths"`` or the parameter file)."""

    widths: tuple[float, float, float]
    l: int | None
    source: str


def resolve_head_settings(*, layer: int, head: int, widths: Sequence[float] | None = None,
                          params: str | Path | None = None) -> HeadSettings:
    """The widths of ``attn-rtl run``: ``--params FILE`` (a :mod:`golden.cta_params` file from
    ``attn-rtl calibrate cta``) gives the calibrated widths and hash length of (layer, head);
    ``--widths`` explicit ones; neither :data:`DEFAULT_WIDTHS`. Both at once is an error."""
    if not 0 <= layer < 6:
        raise ValueError(f"--layer {layer} out of range [0, 5]")
    if not 0 <= head < 12:
        raise ValueError(f"--head {head} out of range [0, 11]")
    if params is not None:
        from golden.cta_params import load

        if widths is not None:
            raise ValueError("give --widths or --params, not both")
        p = load(params)
        if not (layer < p.n_layers and head < p.n_heads):
            raise ValueError(f"{params}: (layer {layer}, head {head}) outside its {p.n_layers} x {p.n_heads} widths")
        s = p.settings_for(layer, head)
        return HeadSettings(tuple(float(w) for w in s["widths"]), int(s["l"]), str(params))  # type: ignore[arg-type]
    if widths is None:
        return HeadSettings(DEFAULT_WIDTHS, None, "default")
    w = tuple(float(x) for x in widths)
    if len(w) != 3 or not all(x > 0 and x < float("inf") for x in w):
        raise ValueError(f"--widths must be three finite numbers > 0, not {list(widths)}")
    return HeadSettings(w, None, "--widths")  # type: ignore[arg-type]


def run_head(*, text: str | None = None, layer: int = DEFAULT_LAYER, head: int = DEFAULT_HEAD,
             widths: Sequence[float] = DEFAULT_WIDTHS, lsh_seed: int = 0, overrides: dict[str, Any] | None = None,
             sim: str = "verilator", out_dir: str | Path = "build", json_path: str | Path | None = None,
             l: int | None = None) -> int:
    """Run the head and print the figures; returns 0 when every result was bit-exact (``l``: hash
    length, default min(6, b))."""

    from golden.corpus import LONG_TEXT
    from golden.cta import cta_fixed_config, cta_fixed_trace
    from golden.cta_program import head_program, ideal_exact_cycles, step_cycles
    from golden.lsh import make_lsh_params
    from golden.minilm import _load_cached
    from hdl.arith import ReciprocalScaler
    from hdl.registry import get_block
    from hdl.systolic_array import SHORTCUT_GAP, params_from_config
    from sim.runner import run_cocotb

    t0 = time.monotonic()
    text = LONG_TEXT if text is None else text
    model = _load_cached()
    n_tokens = len(model.tokenize(text))
    if not 0 <= layer < 6:
        raise ValueError(f"--layer {layer} out of range [0, 5]")
    if not 0 <= head < 12:
        raise ValueError(f"--head {head} out of range [0, 11]")
    hin = model.head_inputs(text, layer)[head]
    base = get_block("systolic_array").resolve(dict(overrides or {}))
    if l is not None and not 1 <= l <= base["b"]:
        raise ValueError(f"hash length l={l} out of range [1, b={base['b']}]")
    params = make_lsh_params(hin.d_in, l=min(6, base["b"]) if l is None else l, widths=tuple(widths), seed=lsh_seed)
    cfg = cta_fixed_config(hin, params, d=base["d"], b=base["b"])
    trace = cta_fixed_trace(hin, lsh=params, cfg=cfg)
    hp = head_program(trace)
    sa_params = params_from_config(hp.cfg)
    print(f"attn-rtl run: all-MiniLM-L6-v2 layer {layer} head {head}, {n_tokens} tokens (m = n = {hin.n}, "
          f"d_in = {hin.d_in}, d_h = {hin.d_h}); LSH widths {tuple(widths)}, l = {params[0].length}, seed {lsh_seed}")
    print(f"  SA b={hp.cfg.b} d={hp.cfg.d}: d_in in {hp.cfg.passes(hin.d_in)} passes, psum buffer "
          f"{hp.cfg.psum_depth} x {hp.cfg.acc_width + 1} bits per column; formats: weights {hp.cfg.weight_fmt}, "
          f"AP {hp.cfg.ap_fmt}, scores {hp.cfg.score_fmt}, 1/sqrt(d_h) for d_h = {hin.d_h}")
    print(f"  clusters k0 = {trace.k0}, k1 = {trace.k1}, k2 = {trace.k2}; {len(hp.phases)} SA phases, "
          f"{len(hp.program.beats)} beats", flush=True)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    prog_path = (out / "cta_head_program.pkl").resolve()
    with open(prog_path, "wb") as fh:
        pickle.dump((hp.cfg, hp.program), fh)
    res = run_cocotb("systolic_array", sa_params, sim=sim, testcase="test_head_program",
                     extra_env={"SA_HEAD_PROGRAM": str(prog_path)})
    st = res.stats.get("head") or {}
    bit_exact = bool(res.ok and st.get("phases"))
    print(f"  {sim}: build {res.build_seconds:.0f} s; {'PASS' if bit_exact else 'FAIL'}: every SA result == "
          f"golden (hashes, K̄V̄, Q̄, CS, Ō) at the cycle of the golden model ({res.build_dir}/test.log)")
    model_cyc = step_cycles(hp, ReciprocalScaler.LATENCY, gap=SHORTCUT_GAP)
    figures: dict[str, Any] = {
        "text_tokens": n_tokens, "layer": layer, "head": head, "m": hin.m, "n": hin.n, "d_in": hin.d_in,
        "d_h": hin.d_h, "widths": list(widths), "lsh_seed": lsh_seed, "b": hp.cfg.b, "d": hp.cfg.d,
        "k0": trace.k0, "k1": trace.k1, "k2": trace.k2, "bit_exact": bit_exact, "scope": "systolic array RTL; "
        "CIM/CAG/PAG from their golden models",
    }
    if bit_exact:
        measured = st["phases"]
        total_rtl = st["sim_cycles"]
        groups: dict[str, dict[str, float]] = {}
        for step, ph in zip(hp.steps, measured, strict=True):
            from golden.cta_program import STEP_GROUPS

            g = groups.setdefault(STEP_GROUPS[step], {"issue": 0, "ideal": 0.0})
            g["issue"] += ph["issue_cycles"]
            g["ideal"] += ph["ideal"]
        span = measured[-1]["cycles"] + sum(p["issue_cycles"] + (p["bubbles_before"] or 0)
                                            for p in measured[:-1])
        ideal = ideal_exact_cycles(hin.m, hin.n, hin.d_in, hin.d_h, hp.cfg)
        print("  cycles the array is held, per Fig. 12 group (RTL == golden model):")
        for name in ("compression", "linear", "attention"):
            g, gm = groups.get(name, {"issue": 0, "ideal": 0}), model_cyc["groups"].get(name, {"issue": 0})
            print(f"    {name:<12} {g['issue']:>7} cycles (model {gm['issue']}), ideal MACs/(b·d) {g['ideal']:>9.1f}")
        print(f"  SA program: {span} cycles first beat to last result (golden model {model_cyc['total']}); "
              f"simulated {total_rtl} cycles in {st['sim_seconds']:.1f} s = {total_rtl / st['sim_seconds']:.0f} "
              "cycles/s")
        print(f"  ideal exact-attention accelerator (same b·d multipliers, DESIGN §9): {ideal:.0f} cycles; "
              f"CTA SA program / ideal = {span / ideal:.1%} (the paper reports 26-41 % for its accelerator)")
        figures.update({"sa_cycles": span, "model_cycles": model_cyc["total"], "cycles_equal_model":
                        span == model_cyc["total"], "groups": groups, "ideal_exact_cycles": ideal,
                        "ratio_to_ideal": span / ideal, "sim_cycles_per_s": total_rtl / st["sim_seconds"]})
    return _finish(hin, params, hp.cfg, trace, figures, bit_exact, t0, json_path)


def _finish(hin: Any, lsh: Any, cfg: Any, trace: Any, figures: dict[str, Any], bit_exact: bool, t0: float,
            json_path: str | Path | None) -> int:
    """The head's error against exact float attention, the flags, ``bit_exact`` and the JSON file."""
    import numpy as np

    from golden.cta import cta_float
    from golden.reference import exact_head, relative_error

    exact = exact_head(hin).out
    flt = cta_float(hin, lsh=lsh).out
    fixed = cfg.out_fmt.to_float(trace.out)
    err = {"fixed_vs_exact": relative_error(fixed, exact), "float_vs_exact": relative_error(flt, exact),
           "fixed_vs_float": relative_error(fixed, flt)}
    print(f"  head error (relative Frobenius): CTA fixed (= RTL) vs exact float {err['fixed_vs_exact']:.3f}, CTA "
          f"float vs exact {err['float_vs_exact']:.3f}, fixed vs float {err['fixed_vs_float']:.3f}; flags set: "
          f"{sorted(k for k, v in trace.flags.items() if v) or 'none'}")
    figures["error"] = err
    figures["flags"] = {k: bool(v) for k, v in trace.flags.items()}
    figures["seconds"] = time.monotonic() - t0
    print(f"  bit_exact: {str(bit_exact).lower()}; total {figures['seconds']:.0f} s")
    if json_path is not None:
        Path(json_path).write_text(json.dumps(figures, indent=2, default=lambda o: np.asarray(o).tolist()))
        print(f"  wrote {json_path}")
    return 0 if bit_exact else 1


def cta_head_setup(*, text: str | None = None, layer: int = DEFAULT_LAYER, head: int = DEFAULT_HEAD,
                   widths: Sequence[float] = DEFAULT_WIDTHS, lsh_seed: int = 0,
                   overrides: dict[str, Any] | None = None) -> tuple[Any, Any, Any, dict[str, Any], int]:
    """A MiniLM head and the ``cta`` block for it: (head inputs, shape, trace, block params, tokens).
    The block's formats for W, b_LSH, 1/w and AP are those :func:`golden.cta.cta_fixed_config` picks
    for the head; d_h is the head's; everything else comes from the block parameters."""
    from dataclasses import replace

    from golden.corpus import LONG_TEXT
    from golden.cta import cta_fixed_config
    from golden.cta_host import CtaShape
    from golden.fixed import QFormat
    from golden.lsh import make_lsh_params
    from golden.minilm import _load_cached
    from hdl.cta import params_from_shape, shape_from_params
    from hdl.registry import get_block
    from sim.tb_cta import make_trace

    text = LONG_TEXT if text is None else text
    if not 0 <= layer < 6:
        raise ValueError(f"--layer {layer} out of range [0, 5]")
    if not 0 <= head < 12:
        raise ValueError(f"--head {head} out of range [0, 11]")
    model = _load_cached()
    n_tokens = len(model.tokenize(text))
    hin = model.head_inputs(text, layer)[head]
    overrides = dict(overrides or {})
    overrides.setdefault("d_h", hin.d_h)
    base = get_block("cta").resolve(overrides)
    if max(hin.m, hin.n) > base["n_max"]:
        raise ValueError(f"the text has {max(hin.m, hin.n)} tokens > n_max = {base['n_max']}")
    if hin.d_in > base["d_in_max"]:
        raise ValueError(f"d_in = {hin.d_in} > d_in_max = {base['d_in_max']}")
    if hin.d_h != base["d_h"]:
        raise ValueError(f"the head has d_h = {hin.d_h}, the block d_h = {base['d_h']}")
    block_shape = shape_from_params(base)
    params = make_lsh_params(hin.d_in, l=base["l"], widths=tuple(widths), seed=lsh_seed)
    fitted = cta_fixed_config(hin, params, d=base["d"], b=base["b"])
    cfg = replace(block_shape.cfg, weight_fmt=fitted.weight_fmt, bias_fmt=fitted.bias_fmt,
                  inv_w_fmt=fitted.inv_w_fmt, ap_fmt=fitted.ap_fmt,
                  hash_fmt=QFormat(base["hash_width"], 0, rounding="truncate"))
    shape = CtaShape(cfg=cfg, l=block_shape.l, n_max=block_shape.n_max, k_max=block_shape.k_max)
    trace = make_trace(shape, hin, widths=tuple(widths), seed=lsh_seed)
    return hin, shape, trace, params_from_shape(shape), n_tokens


#: Fig. 12 groups of the cta block's steps
CTA_GROUPS = {"compression": ("LSH1", "LSH0", "CAG1", "LSH2", "CAG2", "CAG0"), "linear": ("KV", "Q"),
              "attention": ("SCORE", "PAG", "OUTPUT"), "readout": ("READ",), "CIM sweep": ("SWEEP",)}


def run_cta_head(*, text: str | None = None, layer: int = DEFAULT_LAYER, head: int = DEFAULT_HEAD,
                 widths: Sequence[float] = DEFAULT_WIDTHS, lsh_seed: int = 0,
                 overrides: dict[str, Any] | None = None, sim: str = "verilator", out_dir: str | Path = "build",
                 json_path: str | Path | None = None) -> int:
    """Generate the ``cta`` block, run a MiniLM head through it, print the figures; 0 when bit-exact."""
    import shutil

    from golden.cta_program import ideal_exact_cycles
    from sim.runner import run_cocotb

    t0 = time.monotonic()
    hin, shape, trace, params, n_tokens = cta_head_setup(text=text, layer=layer, head=head, widths=widths,
                                                         lsh_seed=lsh_seed, overrides=overrides)
    cfg = shape.cfg
    print(f"attn-rtl run: CTA accelerator (block cta) on all-MiniLM-L6-v2 layer {layer} head {head}: "
          f"{n_tokens} tokens (m = n = {hin.n}), d_in = {hin.d_in} ({cfg.passes(hin.d_in)} passes of d = {cfg.d}), "
          f"d_h = {hin.d_h}; LSH widths {tuple(widths)}, l = {shape.l}, seed {lsh_seed}")
    print(f"  block: b = {cfg.b}, d = {cfg.d}, n_max = {shape.n_max}, clusters <= {shape.clusters}, "
          f"d_in_max = {cfg.d_in_max}, hash {cfg.hash_fmt.width} bits; formats: weights {cfg.weight_fmt}, "
          f"AP {cfg.ap_fmt}, scores {cfg.score_fmt}", flush=True)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    head_path = (out / "cta_head.pkl").resolve()
    with open(head_path, "wb") as fh:
        pickle.dump((shape, trace), fh)
    res = run_cocotb("cta", params, sim=sim, testcase="test_head_file", extra_env={"CTA_HEAD": str(head_path)})
    for suffix in (".v", ".json"):
        src = res.build_dir / f"cta{suffix}"
        if src.exists():
            shutil.copyfile(src, out / f"cta{suffix}")
    st = res.stats.get("head") or {}
    bit_exact = bool(res.ok and st.get("rows") == hin.m)   # the testbench also checks cycles == model
    print(f"  generated {out / 'cta.v'} and {out / 'cta.json'}; {sim} build {res.build_seconds:.0f} s")
    print(f"  {'PASS' if bit_exact else 'FAIL'}: {st.get('rows', 0)} output rows == golden.cta.cta_fixed "
          f"(and k0/k1/k2, flags) ({res.build_dir}/test.log)")
    print(f"  clusters: k0 = {trace.k0}, k1 = {trace.k1}, k2 = {trace.k2} (RTL {st.get('k')})")
    figures: dict[str, Any] = {
        "block": "cta", "text_tokens": n_tokens, "layer": layer, "head": head, "m": hin.m, "n": hin.n,
        "d_in": hin.d_in, "d_h": hin.d_h, "widths": list(widths), "lsh_seed": lsh_seed, "parameters": params,
        "k0": trace.k0, "k1": trace.k1, "k2": trace.k2, "bit_exact": bit_exact,
    }
    if bit_exact:
        cyc = st["cycles"]
        total = sum(v for k, v in cyc.items() if k != "SWEEP")   # the CIM's reset sweep is not the head's work
        ideal = ideal_exact_cycles(hin.m, hin.n, hin.d_in, hin.d_h, cfg)
        print("  cycles per Table I step (the step's counter runs while the sequencer is in it):")
        groups = {}
        for group, steps in CTA_GROUPS.items():
            groups[group] = sum(cyc[s] for s in steps)
            print(f"    {group:<12} {groups[group]:>8}  " + ", ".join(f"{s} {cyc[s]}" for s in steps))
        print(f"  total {total} cycles (start to last output row, without the CIM sweep); ideal exact-attention "
              f"accelerator with the same b·d = {cfg.b * cfg.d} multipliers: {ideal:.0f} cycles; "
              f"ratio {total / ideal:.1%} (the paper: 26-41 %)")
        from sim.tb_cta import model_cycles

        # one run after reset: its SWEEP is the sweep after reset, which the model does not place
        model = {k: v for k, v in model_cycles(shape, trace).items() if k != "SWEEP"}
        model_total = sum(model.values())
        equal = all(cyc[k] == v for k, v in model.items())
        print(f"  golden cycle model (golden.cta_cycles from the blocks' latency constants): {model_total} cycles; "
              f"every step counter {'==' if equal else '!='} model")
        bounds = model_cycles(shape, trace, bounds=True)
        bound = sum(bounds.values())
        print(f"  the array's own limit (input beats at one per cycle, value loads included, + documented fill; "
              f"golden.cta_cycles.cta_step_bounds): {bound} cycles; total / limit {total / bound:.2f}x")
        figures.update({"cycles": cyc, "groups": groups, "total_cycles": total, "ideal_exact_cycles": ideal,
                        "ratio_to_ideal": total / ideal, "model_cycles": model, "cycles_equal_model": equal,
                        "step_bounds": bounds, "ratio_to_bound": total / bound})
        if st.get("sim_seconds"):
            simulated = sum(cyc.values())
            figures["sim_cycles_per_s"] = simulated / st["sim_seconds"]
            print(f"  {sim}: {simulated} cycles (sweep included) simulated in {st['sim_seconds']:.1f} s = "
                  f"{figures['sim_cycles_per_s']:.0f} cycles/s (cocotb, Python testbench included)")
    from golden.lsh import make_lsh_params

    lsh = make_lsh_params(hin.d_in, l=shape.l, widths=tuple(widths), seed=lsh_seed)
    return _finish(hin, lsh, cfg, trace, figures, bit_exact, t0, json_path)
