"""Per-(layer, head) CTA parameter files written by ``attn-rtl calibrate cta`` (issue 14).

Schema (JSON object; version 1)::

    {
      "format": "attn-rtl/cta-params",     # fixed tag
      "version": 1,
      "model": "sentence-transformers/all-MiniLM-L6-v2",
      "l": 6,                               # LSH hash length (all heads)
      "n_layers": 6, "n_heads": 12,
      "widths": [[[w0, w1, w2], ...], ...], # n_layers x n_heads x 3 bucket widths, each finite > 0
      "budget": {"kind": "error" | "cosine", "value": 0.3},
      "seeds": [0, 1, 2],                   # LSH seeds averaged while fitting (informative)
      "calibration": {...}                  # free-form: texts, grid, achieved figures (informative)
    }

``w0`` hashes the queries (LSH_0), ``w1`` the keys/values (LSH_1), ``w2`` the residuals (LSH_2),
as ``widths`` of :func:`golden.cta.cta_float`. :func:`load` validates a file and returns a
:class:`CTAParams`; :meth:`CTAParams.settings_for` gives the keyword settings of one head for
``golden.cta.cta_float`` / ``cta_fixed`` (``{"l": ..., "widths": (w0, w1, w2)}``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["FORMAT", "VERSION", "CTAParams", "ParamsError", "load", "loads", "save", "to_dict"]

FORMAT = "attn-rtl/cta-params"
VERSION = 1


class ParamsError(ValueError):
    """A malformed CTA parameter file (the message names the file and the faulty entry)."""


@dataclass(frozen=True)
class CTAParams:
    """Per-head bucket widths: ``widths[layer, head] = (w0, w1, w2)``."""

    widths: np.ndarray  # (n_layers, n_heads, 3) float64
    l: int = 6
    budget: Mapping[str, Any] = field(default_factory=dict)
    seeds: tuple[int, ...] = ()
    calibration: Mapping[str, Any] = field(default_factory=dict)
    model: str = "sentence-transformers/all-MiniLM-L6-v2"

    @property
    def n_layers(self) -> int:
        return int(self.widths.shape[0])

    @property
    def n_heads(self) -> int:
        return int(self.widths.shape[1])

    def widths_for(self, layer: int, head: int) -> tuple[float, float, float]:
        if not (0 <= layer < self.n_layers and 0 <= head < self.n_heads):
            raise IndexError(f"(layer {layer}, head {head}) outside the {self.n_layers} x {self.n_heads} file")
        w = self.widths[layer, head]
        return float(w[0]), float(w[1]), float(w[2])

    def settings_for(self, layer: int, head: int) -> dict[str, Any]:
        """Keyword settings of ``golden.cta.cta_float`` / ``cta_fixed`` for one head."""
        return {"l": self.l, "widths": self.widths_for(layer, head)}


def to_dict(params: CTAParams) -> dict[str, Any]:
    return {"format": FORMAT, "version": VERSION, "model": params.model, "l": params.l,
            "n_layers": params.n_layers, "n_heads": params.n_heads,
            "widths": [[[float(w) for w in params.widths[li, h]] for h in range(params.n_heads)]
                       for li in range(params.n_layers)],
            "budget": dict(params.budget), "seeds": [int(s) for s in params.seeds],
            "calibration": dict(params.calibration)}


def save(params: CTAParams, path: str | Path) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(to_dict(params), indent=1) + "\n")
    load(p)  # never write a file the loader refuses
    return p


def _need(d: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in d:
        raise ParamsError(f"{where}: missing key '{key}'")
    return d[key]


def _int(v: Any, key: str, where: str, lo: int, hi: int) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise ParamsError(f"{where}: '{key}' must be an integer in [{lo}, {hi}], not {v!r}")
    return v


def loads(data: Any, where: str = "CTA parameters") -> CTAParams:
    """Validate a decoded JSON object (see the module doc) and return :class:`CTAParams`."""
    if not isinstance(data, dict):
        raise ParamsError(f"{where}: expected a JSON object, got {type(data).__name__}")
    fmt = _need(data, "format", where)
    if fmt != FORMAT:
        raise ParamsError(f"{where}: 'format' is {fmt!r}, expected {FORMAT!r}")
    version = _need(data, "version", where)
    if version != VERSION:
        raise ParamsError(f"{where}: unsupported version {version!r} (this reader knows version {VERSION})")
    l = _int(_need(data, "l", where), "l", where, 1, 64)
    n_layers = _int(_need(data, "n_layers", where), "n_layers", where, 1, 1024)
    n_heads = _int(_need(data, "n_heads", where), "n_heads", where, 1, 1024)
    raw = _need(data, "widths", where)
    try:
        arr = np.asarray(raw, dtype=np.float64)
    except (TypeError, ValueError):
        raise ParamsError(f"{where}: 'widths' must be a {n_layers} x {n_heads} x 3 array of numbers") from None
    if arr.shape != (n_layers, n_heads, 3):
        raise ParamsError(f"{where}: 'widths' has shape {arr.shape}, expected ({n_layers}, {n_heads}, 3) "
                          "(n_layers x n_heads x (w0, w1, w2))")
    bad = np.argwhere(~(np.isfinite(arr) & (arr > 0)))
    if bad.size:
        li, h, k = (int(i) for i in bad[0])
        raise ParamsError(f"{where}: width w{k} of layer {li} head {h} is {float(arr[li, h, k])}; "
                          "bucket widths must be finite and > 0")
    budget = _need(data, "budget", where)
    if not isinstance(budget, dict):
        raise ParamsError(f"{where}: 'budget' must be an object with 'kind' and 'value'")
    kind, value = _need(budget, "kind", where + " budget"), _need(budget, "value", where + " budget")
    if kind not in ("error", "cosine"):
        raise ParamsError(f"{where}: budget kind must be 'error' or 'cosine', not {kind!r}")
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
        raise ParamsError(f"{where}: budget value must be a finite number > 0, not {value!r}")
    seeds = data.get("seeds", [])
    if not isinstance(seeds, list) or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
        raise ParamsError(f"{where}: 'seeds' must be a list of integers")
    calib = data.get("calibration", {})
    if not isinstance(calib, dict):
        raise ParamsError(f"{where}: 'calibration' must be an object")
    return CTAParams(widths=arr, l=l, budget=dict(budget), seeds=tuple(seeds), calibration=calib,
                     model=str(data.get("model", CTAParams.model)))


def load(path: str | Path) -> CTAParams:
    """Read and validate a parameter file; :class:`ParamsError` (a ValueError) names what is wrong."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"CTA parameter file {p} not found")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ParamsError(f"{p}: not valid JSON ({exc})") from None
    return loads(data, str(p))
