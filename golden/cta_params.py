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

Per-head scalar knobs of the other methods (``attn-rtl calibrate latte`` / ``mca``) use the same
conventions with another tag and one number per head instead of ``l`` and ``widths``::

    {"format": "attn-rtl/latte-params", "version": 1, "n_layers": 6, "n_heads": 12,
     "tau": [[τ, ...], ...],              # n_layers x n_heads LATTE thresholds, finite >= 0
     "budget": {...}, "seeds": [...], "calibration": {...}}
    {"format": "attn-rtl/mca-params", ..., "alpha": [[α, ...], ...]}   # MCA α, each in (0, 1]

:func:`load_params` reads any of the three (:class:`CTAParams` or :class:`HeadParams`); both
have ``method``, ``budget`` and ``settings_for(layer, head)`` (``{"tau": τ}`` / ``{"alpha": α}``
for :func:`golden.latte.latte_float` / :func:`golden.mca.mca_float` and their fixed models).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["FORMAT", "VERSION", "CTAParams", "HeadParams", "KNOBS", "ParamsError", "load", "loads", "save",
           "to_dict", "load_params", "loads_params"]

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

    @property
    def method(self) -> str:
        return "CTA"

    def median_settings(self) -> dict[str, Any]:
        """Settings for a head outside the model (random heads): the per-level median widths."""
        return {"l": self.l, "widths": tuple(float(w) for w in np.median(self.widths.reshape(-1, 3), axis=0))}


#: per-head scalar knobs: format tag -> (method name, JSON key, lowest value, lowest value allowed?, highest)
KNOBS: dict[str, tuple[str, str, float, bool, float]] = {
    "attn-rtl/latte-params": ("LATTE", "tau", 0.0, True, math.inf),
    "attn-rtl/mca-params": ("MCA", "alpha", 0.0, False, 1.0),
}


@dataclass(frozen=True)
class HeadParams:
    """One calibrated number per head: ``values[layer, head]`` of the knob ``key`` of ``method``."""

    method: str                 # "LATTE" or "MCA"
    key: str                    # "tau" or "alpha"
    values: np.ndarray          # (n_layers, n_heads) float64
    budget: Mapping[str, Any] = field(default_factory=dict)
    seeds: tuple[int, ...] = ()
    calibration: Mapping[str, Any] = field(default_factory=dict)
    model: str = "sentence-transformers/all-MiniLM-L6-v2"

    @property
    def format(self) -> str:
        return next(tag for tag, (m, _, _, _, _) in KNOBS.items() if m == self.method)

    @property
    def n_layers(self) -> int:
        return int(self.values.shape[0])

    @property
    def n_heads(self) -> int:
        return int(self.values.shape[1])

    def value_for(self, layer: int, head: int) -> float:
        if not (0 <= layer < self.n_layers and 0 <= head < self.n_heads):
            raise IndexError(f"(layer {layer}, head {head}) outside the {self.n_layers} x {self.n_heads} file")
        return float(self.values[layer, head])

    def settings_for(self, layer: int, head: int) -> dict[str, Any]:
        return {self.key: self.value_for(layer, head)}

    def median_settings(self) -> dict[str, Any]:
        return {self.key: float(np.median(self.values))}


def to_dict(params: CTAParams | HeadParams) -> dict[str, Any]:
    if isinstance(params, HeadParams):
        return {"format": params.format, "version": VERSION, "model": params.model, "n_layers": params.n_layers,
                "n_heads": params.n_heads, params.key: [[float(v) for v in row] for row in params.values],
                "budget": dict(params.budget), "seeds": [int(s) for s in params.seeds],
                "calibration": dict(params.calibration)}
    return {"format": FORMAT, "version": VERSION, "model": params.model, "l": params.l,
            "n_layers": params.n_layers, "n_heads": params.n_heads,
            "widths": [[[float(w) for w in params.widths[li, h]] for h in range(params.n_heads)]
                       for li in range(params.n_layers)],
            "budget": dict(params.budget), "seeds": [int(s) for s in params.seeds],
            "calibration": dict(params.calibration)}


def save(params: CTAParams | HeadParams, path: str | Path) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(to_dict(params), indent=1) + "\n")
    load_params(p)  # never write a file the loader refuses
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
    budget, seeds, calib = _common(data, where)
    return CTAParams(widths=arr, l=l, budget=dict(budget), seeds=tuple(seeds), calibration=calib,
                     model=str(data.get("model", CTAParams.model)))


def _common(data: Mapping[str, Any], where: str) -> tuple[dict[str, Any], list[int], dict[str, Any]]:
    """budget, seeds, calibration (shared by every parameter file)."""
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
    return dict(budget), seeds, calib


def loads_params(data: Any, where: str = "parameters") -> CTAParams | HeadParams:
    """Validate any parameter file (CTA widths, LATTE τ or MCA α; see the module doc)."""
    if not isinstance(data, dict):
        raise ParamsError(f"{where}: expected a JSON object, got {type(data).__name__}")
    fmt = _need(data, "format", where)
    if fmt == FORMAT:
        return loads(data, where)
    if fmt not in KNOBS:
        raise ParamsError(f"{where}: 'format' is {fmt!r}, expected one of {[FORMAT, *KNOBS]}")
    method, key, lo, lo_ok, hi = KNOBS[fmt]
    version = _need(data, "version", where)
    if version != VERSION:
        raise ParamsError(f"{where}: unsupported version {version!r} (this reader knows version {VERSION})")
    n_layers = _int(_need(data, "n_layers", where), "n_layers", where, 1, 1024)
    n_heads = _int(_need(data, "n_heads", where), "n_heads", where, 1, 1024)
    raw = _need(data, key, where)
    try:
        arr = np.asarray(raw, dtype=np.float64)
    except (TypeError, ValueError):
        raise ParamsError(f"{where}: '{key}' must be a {n_layers} x {n_heads} array of numbers") from None
    if arr.shape != (n_layers, n_heads):
        raise ParamsError(f"{where}: '{key}' has shape {arr.shape}, expected ({n_layers}, {n_heads}) "
                          "(n_layers x n_heads)")
    ok = np.isfinite(arr) & ((arr >= lo) if lo_ok else (arr > lo)) & (arr <= hi)
    bad = np.argwhere(~ok)
    if bad.size:
        li, h = (int(i) for i in bad[0])
        rng = f"{'[' if lo_ok else '('}{lo:g}, {hi:g}{']' if math.isfinite(hi) else ')'}"
        raise ParamsError(f"{where}: {key} of layer {li} head {h} is {float(arr[li, h])}; {method} {key} must be "
                          f"finite and in {rng}")
    budget, seeds, calib = _common(data, where)
    return HeadParams(method=method, key=key, values=arr, budget=budget, seeds=tuple(seeds), calibration=calib,
                      model=str(data.get("model", HeadParams.model)))


def _read_json(path: str | Path, what: str) -> tuple[Any, str]:
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{what} {p} not found")
    try:
        return json.loads(p.read_text(encoding="utf-8")), str(p)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ParamsError(f"{p}: not valid JSON ({exc})") from None


def load_params(path: str | Path) -> CTAParams | HeadParams:
    """Read and validate any parameter file (CTA, LATTE or MCA); errors as :func:`load`."""
    return loads_params(*_read_json(path, "parameter file"))


def load(path: str | Path) -> CTAParams:
    """Read and validate a parameter file; :class:`ParamsError` (a ValueError) names what is wrong."""
    return loads(*_read_json(path, "CTA parameter file"))
