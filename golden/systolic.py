"""Bit-exact model of the CTA systolic array (SA): the four phases, the beat schedule and its timing.

Matrix-level functions, one per phase (DESIGN §3, §4; seed 001 §IV-B(1)), on raw integer arrays
(``np.int64``, the raw two's-complement values of the formats in :class:`SystolicConfig`):

* :func:`residual_tokens` - the left-edge subtractor column: ``x - C1[CT1[i]]`` (token format).
* :func:`lsh_hash` - ``floor((A·x + b) / w)`` per token and hash function, saturated to the hash format.
* :func:`linear` - ``inputs @ weights`` rounded (half up) and saturated to the Q̄K̄V̄ format.
* :func:`scores` - ``q @ kᵀ / √d`` in the score format, the max of the first ``k1`` scores of a row
  subtracted from the following ``k2``.
* :func:`output` - ``(ap @ v) / (Σ ap / 2)`` per row via :class:`golden.lut.RecipSpec`.

Each returns ``(values, overflow_mask)`` (``output`` also the div-by-zero mask). The overflow mask
of a result is set when any saturation happened on its way: a PE accumulator step, a PPE stage.

Arithmetic contract (what the RTL does, step by step):

* A PE multiplies a left operand (token / weight / K̄ / V̄, ``x_width`` bits) by its value register
  (DF1) or by the operand coming from below (DF2: AP), and adds the product to the partial sum coming
  from the PE below (DF1) or to its result register (DF2). Every addition saturates to the
  ``acc_width``-bit accumulator; the binary point is the sum of the operands' (per phase).
  DF1 accumulates rows 0, 1, ..., d-1 in this order (bottom to top); DF2 accumulates t = 0, 1, ...
* Rows beyond the data (``d_in < d``) hold zeros. A dot product longer than the array (``d_in > d``,
  DESIGN §9 "d_in tiling") runs in ``ceil(d_in / d)`` passes of at most d elements; each pass
  accumulates its slice up the column from zero as above, and the PPE adds the pass's partial
  sum to the sum of the previous passes (held in its partial-sum buffer) with the same saturating
  ``acc_width``-bit add: ``total = sat(total + pass_sum)``. Nothing is rounded between passes; the
  PPE rounds / hashes once, after the last pass.
* Linear bias: a linear phase may add a per-output-column bias (W^Q/W^K/W^V biases) carried on the
  beat's bottom lanes ``y`` (``lin_bias_fmt``: the y-lane width, the weights' binary point) and
  added exactly by the PPE after the last pass: ``total + bias·2^qkv.frac``, then rounded.
* PPE, LSH: ``a = psum + bias·2^(lsh_frac - bias.frac)`` (exact), ``a·inv_w``, floor to an integer,
  saturate to ``hash_fmt``.  Linear: round half up to ``qkv_fmt``, saturate.  Score: multiply by
  ``inv_sqrt_d`` (``2^score_scale_frac/√d`` rounded half up), round half up to ``score_fmt``,
  saturate; then keep the max ``m`` of the first ``k1`` (``m = 0`` when ``k1 = 0``) and output
  ``sat(s - m)`` for the following ``k2``.  Output: ``Σ AP`` accumulated saturating in
  ``UQ(den_width, ap.frac)``; the raw sum read with one more fractional bit is ``Σ AP / 2``, the
  denominator of :meth:`RecipSpec.scale`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .fixed import QFormat, Rounding, check_in_range, requantize, saturate, shift_round
from .lut import RecipSpec

__all__ = [
    "SystolicConfig",
    "residual_tokens",
    "lsh_hash",
    "linear",
    "scores",
    "output",
    "LshPhase",
    "LinearPhase",
    "ScorePhase",
    "OutputPhase",
    "OP_NOP",
    "OP_LOAD",
    "OP_DF1",
    "OP_DF2",
    "PH_LSH",
    "PH_LINEAR",
    "PH_SCORE",
    "PH_OUTPUT",
    "Program",
    "build_program",
    "issue_cycles",
    "shortcut_gap",
    "res_latency",
    "out_latency",
    "ideal_cycles",
    "expected_phase_cycles",
]

# Beat operations (what each PE does with a beat) and phases (what the PPE does).
OP_NOP, OP_LOAD, OP_DF1, OP_DF2 = 0, 1, 2, 3
PH_LSH, PH_LINEAR, PH_SCORE, PH_OUTPUT = 0, 1, 2, 3



def _round_half_up(x: float) -> int:
    return math.floor(x + 0.5)


class ConfigError(ValueError):
    """A :class:`SystolicConfig` setting out of range; ``field`` names the setting (``acc_width``,
    ``token_fmt``, ...), so that callers can name the block parameter without parsing the text."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class SystolicConfig:
    """Array size and number formats (defaults: DESIGN §2 / seed 001 §IV-C)."""

    b: int = 8
    d: int = 64
    token_fmt: QFormat = QFormat(13, 7)          # X^Q, X^KV, residual tokens: Q6.7 (paper notation)
    dir_fmt: QFormat = QFormat(12, 9)            # LSH directions A: Q3.9
    weight_fmt: QFormat = QFormat(12, 10)        # W^Q, W^K, W^V: |w| < 2
    bias_fmt: QFormat = QFormat(12, 8)           # LSH bias b: |b| < 8
    inv_w_fmt: QFormat = QFormat(12, 10, signed=False)  # LSH 1/w: [0, 4)
    qkv_fmt: QFormat = QFormat(12, 6)            # centroids, Q̄ K̄ V̄: Q6.6
    acc_width: int = 36                          # PE accumulators (binary point per phase), saturating
    score_fmt: QFormat = QFormat(16, 8)          # compressed scores CS
    ap_fmt: QFormat = QFormat(16, 10, signed=False)  # aggregated probabilities AP
    den_width: int = 24                          # Σ AP (unsigned, ap.frac fractional bits), saturating
    hash_fmt: QFormat = QFormat(8, 0, rounding=Rounding.TRUNCATE)  # hash values (signed integers)
    out_fmt: QFormat = QFormat(12, 6)            # normalized outputs Ō
    score_scale_frac: int = 16                   # fractional bits of the 1/√d constant
    recip_lut_bits: int = 10
    recip_mant_bits: int = 16
    d_in_max: int = 1024                         # longest dot product (LSH / linear), in passes of d
    psum_depth: int = 512                        # PPE partial-sum buffer: beats per pass of a tiled phase
    d_h: int = 0                                 # head dimension of the 1/√d_h score scale (0: d)

    def __post_init__(self) -> None:
        for name in ("b", "d", "acc_width", "den_width", "score_scale_frac", "recip_lut_bits", "recip_mant_bits",
                     "d_in_max", "psum_depth", "d_h"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise TypeError(f"SystolicConfig {name} must be an int, not {value!r}")
        if not 1 <= self.b <= 64:
            raise ConfigError("b", f"SystolicConfig b={self.b} out of range [1, 64]")
        if not 2 <= self.d <= 256:
            raise ConfigError("d", f"SystolicConfig d={self.d} out of range [2, 256]")
        if not 1 <= self.d_in_max <= 65536:
            raise ConfigError("d_in_max", f"SystolicConfig d_in_max={self.d_in_max} out of range [1, 65536]")
        if not 0 <= self.d_h <= self.d:
            raise ConfigError("d_h", f"SystolicConfig d_h={self.d_h} out of range [0, d={self.d}]")
        if not 1 <= self.psum_depth <= 65536:
            raise ConfigError("psum_depth", f"SystolicConfig psum_depth={self.psum_depth} out of range [1, 65536]")
        for name in ("token_fmt", "dir_fmt", "weight_fmt", "bias_fmt", "qkv_fmt", "score_fmt", "hash_fmt", "out_fmt"):
            fmt = getattr(self, name)
            if not isinstance(fmt, QFormat):
                raise TypeError(f"SystolicConfig {name} must be a QFormat")
            if not fmt.signed:
                raise ConfigError(name, f"SystolicConfig {name} must be signed")
        for name in ("inv_w_fmt", "ap_fmt"):
            if getattr(self, name).signed:
                raise ConfigError(name, f"SystolicConfig {name} must be unsigned")
        if self.token_fmt.frac < self.qkv_fmt.frac:
            raise ConfigError("token_fmt.frac",
                              "SystolicConfig token_fmt.frac must be >= qkv_fmt.frac (residual x - C aligns C up)")
        if self.bias_fmt.frac > self.lsh_frac:
            raise ConfigError("bias_fmt.frac",
                              f"SystolicConfig bias_fmt.frac must be <= token.frac + dir.frac = {self.lsh_frac}")
        if self.hash_fmt.frac != 0:
            raise ConfigError("hash_fmt.frac", "SystolicConfig hash_fmt must be an integer format (frac = 0)")
        if self.acc_width < self.x_width + self.y_width or self.acc_width > 60:
            raise ConfigError("acc_width", f"SystolicConfig acc_width={self.acc_width} out of range "
                             f"[{self.x_width + self.y_width}, 60] (products must fit)")
        if not self.ap_fmt.width < self.den_width <= 48:
            raise ConfigError("den_width",
                              f"SystolicConfig den_width={self.den_width} out of range [{self.ap_fmt.width + 1}, 48]")
        if not 1 <= self.score_scale_frac <= 24:
            raise ConfigError("score_scale_frac",
                              f"SystolicConfig score_scale_frac={self.score_scale_frac} out of range [1, 24]")

    # -- derived widths and binary points -----------------------------------------------------
    @property
    def x_width(self) -> int:
        """Left-operand lanes (tokens, weights, K̄/V̄ and value-register loads); value registers."""
        return max(self.token_fmt.width, self.weight_fmt.width, self.qkv_fmt.width, self.dir_fmt.width)

    @property
    def y_width(self) -> int:
        """Bottom-operand lanes (signed): AP in the output phase, the PPE bias in value loads."""
        return max(self.ap_fmt.width + 1, self.bias_fmt.width)

    @property
    def res_width(self) -> int:
        return max(self.hash_fmt.width, self.qkv_fmt.width, self.score_fmt.width)

    @property
    def lsh_frac(self) -> int:
        return self.token_fmt.frac + self.dir_fmt.frac

    @property
    def linear_frac(self) -> int:
        return self.qkv_fmt.frac + self.weight_fmt.frac

    @property
    def score_frac(self) -> int:
        return 2 * self.qkv_fmt.frac

    @property
    def output_frac(self) -> int:
        return self.ap_fmt.frac + self.qkv_fmt.frac

    @property
    def lin_bias_fmt(self) -> QFormat:
        """Linear biases on the y lanes: ``y_width`` bits, the weights' binary point."""
        return QFormat(self.y_width, self.weight_fmt.frac)

    @property
    def max_passes(self) -> int:
        """Passes of the longest dot product (``ceil(d_in_max / d)``)."""
        return -(-self.d_in_max // self.d)

    @property
    def psum_bits(self) -> int:
        """Partial-sum buffer size in bits (b columns x psum_depth words of acc_width + flag)."""
        return self.b * self.psum_depth * (self.acc_width + 1)

    def passes(self, d_in: int) -> int:
        """Passes of a dot product of length ``d_in`` (at least 1)."""
        return max(1, -(-d_in // self.d))

    def acc_fmt(self, frac: int) -> QFormat:
        return QFormat(self.acc_width, frac)

    @property
    def sum_fmt(self) -> QFormat:
        """Σ AP accumulator."""
        return QFormat(self.den_width, self.ap_fmt.frac, signed=False)

    @property
    def recip(self) -> RecipSpec:
        """Σ AP raw read with one more fractional bit = Σ AP / 2 (every e is counted twice)."""
        return RecipSpec(QFormat(self.den_width, self.ap_fmt.frac + 1, signed=False),
                         lut_bits=self.recip_lut_bits, mant_bits=self.recip_mant_bits)

    @property
    def inv_sqrt_d(self) -> int:
        """Raw 1/√d_h (d_h = ``d_h``, or d when 0) with ``score_scale_frac`` fractional bits."""
        return _round_half_up(2.0 ** self.score_scale_frac / math.sqrt(self.d_h or self.d))

    @property
    def out_value_fmt(self) -> QFormat:
        return self.acc_fmt(self.output_frac)

    def formats(self) -> dict[str, QFormat]:
        return {
            "token": self.token_fmt, "direction": self.dir_fmt, "weight": self.weight_fmt,
            "bias": self.bias_fmt, "inv_width": self.inv_w_fmt, "qkv": self.qkv_fmt,
            "acc_lsh": self.acc_fmt(self.lsh_frac), "acc_linear": self.acc_fmt(self.linear_frac),
            "acc_score": self.acc_fmt(self.score_frac), "acc_output": self.out_value_fmt,
            "score": self.score_fmt, "ap": self.ap_fmt, "ap_sum": self.sum_fmt,
            "softmax_den": self.recip.den_fmt, "hash": self.hash_fmt, "out": self.out_fmt,
            "inv_sqrt_d": QFormat(self.score_scale_frac + 1, self.score_scale_frac, signed=False),
            "linear_bias": self.lin_bias_fmt,
        }


# ---- phase models ------------------------------------------------------------------------------

def _dot_chain(values: np.ndarray, stream: np.ndarray, acc_fmt: QFormat, d: int) -> tuple[np.ndarray, np.ndarray]:
    """DF1: column c holds ``values[c]``; each stream row s passes up the column accumulating
    ``values[c][j]*stream[s][j]`` for j = 0, 1, ... with a saturating add. A dot product longer than
    the column height ``d`` runs in passes of d elements: each pass starts from zero, and its sum is
    added (saturating) to the previous passes' total. Returns (S x C) sums and overflow."""
    n, dim = stream.shape
    total = np.zeros((n, values.shape[0]), dtype=np.int64)
    over = np.zeros(total.shape, dtype=bool)
    for p0 in range(0, max(dim, 1), d):
        acc = np.zeros_like(total)
        for j in range(p0, min(p0 + d, dim)):
            acc, o = saturate(acc + stream[:, j:j + 1] * values[None, :, j], acc_fmt)
            over |= o
        if p0 == 0:
            total = acc
        else:
            total, o = saturate(total + acc, acc_fmt)
            over |= o
    return total, over


def _check_dim(name: str, dim: int, cfg: SystolicConfig) -> None:
    if dim > cfg.d_in_max:
        raise ValueError(f"{name}: dot-product length {dim} > d_in_max = {cfg.d_in_max}")


def residual_tokens(tokens: Any, centroids: Any, cfg: SystolicConfig) -> tuple[np.ndarray, np.ndarray]:
    """Left-edge subtractors: ``sat(x - C)`` in the token format (C aligned from the qkv format)."""
    x = check_in_range(tokens, cfg.token_fmt, "tokens")
    c = check_in_range(centroids, cfg.qkv_fmt, "centroids")
    if x.shape != c.shape:
        raise ValueError(f"tokens {x.shape} and centroids {c.shape} must have the same shape")
    return saturate(x - np.left_shift(c, cfg.token_fmt.frac - cfg.qkv_fmt.frac), cfg.token_fmt)


def lsh_hash(tokens: Any, directions: Any, bias: Any, inv_width: int, cfg: SystolicConfig
             ) -> tuple[np.ndarray, np.ndarray]:
    """Hash codes ``floor((A·x + b) / w)`` of a token stream.

    tokens (n, d_in) raw ``token_fmt``; directions (l, d_in) raw ``dir_fmt`` (l <= b);
    bias (l,) raw ``bias_fmt``; inv_width raw ``inv_w_fmt`` (1/w). Returns (hash (n, l) raw
    ``hash_fmt`` integers, overflow (n, l)).
    """
    x = check_in_range(np.atleast_2d(tokens), cfg.token_fmt, "tokens")
    a = check_in_range(np.atleast_2d(directions), cfg.dir_fmt, "directions")
    bias = check_in_range(np.asarray(bias).reshape(-1), cfg.bias_fmt, "bias")
    inv = int(check_in_range(np.asarray([inv_width]), cfg.inv_w_fmt, "inv_width")[0])
    if a.shape[1] != x.shape[1] or bias.shape[0] != a.shape[0]:
        raise ValueError(f"shapes: tokens {x.shape}, directions {a.shape}, bias {bias.shape} do not match")
    if a.shape[0] > cfg.b:
        raise ValueError(f"lsh_hash: {a.shape[0]} hash functions > b = {cfg.b} columns")
    _check_dim("lsh_hash", x.shape[1], cfg)
    acc, over = _dot_chain(a, x, cfg.acc_fmt(cfg.lsh_frac), cfg.d)
    biased = acc + np.left_shift(bias, cfg.lsh_frac - cfg.bias_fmt.frac)[None, :]
    h = shift_round(biased * inv, cfg.lsh_frac + cfg.inv_w_fmt.frac, Rounding.TRUNCATE)
    h, o = saturate(h, cfg.hash_fmt)
    return h, over | o


def linear(inputs: Any, weights: Any, cfg: SystolicConfig, bias: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """``inputs @ weights (+ bias)`` in the Q̄K̄V̄ format: inputs (k, d_in) raw ``qkv_fmt`` (centroids,
    held in value registers, b per batch), weights (d_in, d_out) raw ``weight_fmt`` (streamed, one
    column per cycle), bias None or (k, d_out) raw ``lin_bias_fmt`` (per input row and output
    column: the y lane of that column in that beat). Returns ((k, d_out) raw ``qkv_fmt``, overflow)."""
    c = check_in_range(np.atleast_2d(inputs), cfg.qkv_fmt, "inputs")
    w = check_in_range(np.atleast_2d(weights), cfg.weight_fmt, "weights")
    if c.shape[1] != w.shape[0]:
        raise ValueError(f"shapes: inputs {c.shape} @ weights {w.shape}")
    _check_dim("linear", c.shape[1], cfg)
    acc, over = _dot_chain(c, w.T, cfg.acc_fmt(cfg.linear_frac), cfg.d)
    if bias is not None:
        bb = check_in_range(np.atleast_2d(bias), cfg.lin_bias_fmt, "bias")
        if bb.shape != (c.shape[0], w.shape[1]):
            raise ValueError(f"shapes: bias {bb.shape}, expected {(c.shape[0], w.shape[1])}")
        acc = acc + np.left_shift(bb.T, cfg.linear_frac - cfg.lin_bias_fmt.frac)   # exact (PPE adder)
    q, o = requantize(acc, cfg.linear_frac, cfg.qkv_fmt)
    return q.T, (over | o).T


def scores(q: Any, k: Any, k1: int, cfg: SystolicConfig) -> tuple[np.ndarray, np.ndarray]:
    """Compressed scores ``q @ kᵀ / √d`` (score format) with the max of the first ``k1`` columns
    of each row subtracted from the remaining ones. q (b', d) and k (k1+k2, d) raw ``qkv_fmt``.
    Returns ((b', k1+k2) raw ``score_fmt``, overflow)."""
    qq = check_in_range(np.atleast_2d(q), cfg.qkv_fmt, "q")
    kk = check_in_range(np.atleast_2d(k), cfg.qkv_fmt, "k")
    if qq.shape[1] != kk.shape[1]:
        raise ValueError(f"shapes: q {qq.shape}, k {kk.shape}")
    if not 0 <= k1 <= kk.shape[0]:
        raise ValueError(f"k1={k1} out of range [0, {kk.shape[0]}]")
    if qq.shape[1] > cfg.d:
        raise ValueError(f"scores: dot-product length {qq.shape[1]} > d = {cfg.d} (q is held in the value registers)")
    acc, over = _dot_chain(qq, kk, cfg.acc_fmt(cfg.score_frac), cfg.d)
    s, o = requantize(acc * cfg.inv_sqrt_d, cfg.score_frac + cfg.score_scale_frac, cfg.score_fmt)
    s, over = s.T, (over | o).T
    m = s[:, :k1].max(axis=1) if k1 > 0 else np.zeros(s.shape[0], dtype=np.int64)
    sub, o = saturate(s[:, k1:] - m[:, None], cfg.score_fmt)
    s = np.concatenate([s[:, :k1], sub], axis=1)
    over = over | np.concatenate([np.zeros((s.shape[0], k1), dtype=bool), o], axis=1)
    return s, over


def output(ap: Any, v: Any, cfg: SystolicConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Normalized outputs ``(ap @ v) / (Σ_t ap[c][t] / 2)``: ap (b', T) raw ``ap_fmt``, v (T, d)
    raw ``qkv_fmt``. Returns ((b', d) raw ``out_fmt``, overflow, div_by_zero)."""
    p = check_in_range(np.atleast_2d(ap), cfg.ap_fmt, "ap")
    vv = check_in_range(np.atleast_2d(v), cfg.qkv_fmt, "v")
    if p.shape[1] != vv.shape[0]:
        raise ValueError(f"shapes: ap {p.shape} @ v {vv.shape}")
    if vv.shape[1] > cfg.d:
        raise ValueError(f"output: v has {vv.shape[1]} columns > d = {cfg.d}")
    acc = np.zeros((p.shape[0], vv.shape[1]), dtype=np.int64)
    over = np.zeros(acc.shape, dtype=bool)
    total = np.zeros(p.shape[0], dtype=np.int64)
    den_over = np.zeros(p.shape[0], dtype=bool)
    for t in range(p.shape[1]):
        acc, o = saturate(acc + p[:, t:t + 1] * vv[None, t, :], cfg.out_value_fmt)
        over |= o
        total, o = saturate(total + p[:, t], cfg.sum_fmt)
        den_over |= o
    res, o, zero = cfg.recip.scale(acc, cfg.output_frac, np.broadcast_to(total[:, None], acc.shape), cfg.out_fmt)
    return res, over | o | den_over[:, None], zero


# ---- the beat program (what enters the array, one beat per cycle) and its timing ---------------

@dataclass
class LshPhase:
    """Hash a token stream. ``directions`` None keeps the value registers (Fig. 10 (a)) of the
    previous LSH phase (with d_in > d the slices are reloaded every pass);
    ``centroids`` (n, d_in) makes the left-edge subtractors hash ``tokens - centroids`` (LSH_2)."""

    tokens: np.ndarray
    directions: np.ndarray | None
    bias: np.ndarray | None
    inv_width: int
    centroids: np.ndarray | None = None


@dataclass
class LinearPhase:
    """``inputs @ weights (+ bias)``; ``inputs`` None keeps the value registers of the previous linear
    phase (with d_in > d the slices are reloaded every pass). ``bias`` None or (k, d_out) raw
    ``lin_bias_fmt``. ``shortcut`` feeds Q̄ back into the value registers (requires d_out <= d and
    k == b; value-register rows >= d_out keep the last pass's operands)."""

    inputs: np.ndarray | None
    weights: np.ndarray
    shortcut: bool = False
    bias: np.ndarray | None = None


@dataclass
class ScorePhase:
    """Scores of the queries in the value registers (None: kept, e.g. from the shortcut) against k."""

    q: np.ndarray | None
    k: np.ndarray
    k1: int


@dataclass
class OutputPhase:
    ap: np.ndarray
    v: np.ndarray


@dataclass
class Program:
    """Beats (dicts of raw ints/lists) plus, per phase, the expected results and beat ranges."""

    beats: list[dict] = field(default_factory=list)
    phases: list[dict] = field(default_factory=list)


def _pad(vec: Any, n: int) -> list[int]:
    arr = [int(v) for v in np.asarray(vec).reshape(-1)]
    if len(arr) > n:
        raise ValueError(f"vector of {len(arr)} > {n} lanes")
    return arr + [0] * (n - len(arr))


def build_program(phases: list[Any], cfg: SystolicConfig) -> Program:
    """Turn a list of phases into array beats and their golden results.

    Every phase contributes its value-register loads (LOAD beats, one per column, Fig. 10 (b))
    then its compute beats; phases follow each other back to back. Expected results per phase:
    ``kind``, ``cols`` (columns compared), ``values``/``overflow`` ((beats, cols) for DF1 phases
    in stream order; (cols, d) for the output phase), ``first_beat``/``last_beat`` indices.
    """
    prog = Program()
    b, d = cfg.b, cfg.d
    values = np.zeros((b, d), dtype=np.int64)  # value registers (model), column x row
    lsh_state: dict[str, Any] = {}  # directions and biases last loaded for an LSH phase
    lin_state: dict[str, Any] = {}  # inputs last loaded for a linear phase (all d_in columns)

    def beat(**kw: Any) -> dict:
        base = {"x": [0] * d, "c": [0] * d, "y": [0] * b, "op": OP_NOP, "col": 0, "phase": 0, "first": 0,
                "last": 0, "sub": 0, "shortcut": 0, "residual": 0, "scale": 0, "accumulate": 0, "partial": 0}
        base.update(kw)
        prog.beats.append(base)
        return base

    def load(rows: np.ndarray, phase: int, ys: np.ndarray | None = None) -> None:
        for col, row in enumerate(np.atleast_2d(rows)):
            y = [0] * b
            if ys is not None:
                y[col] = int(ys[col])
            beat(x=_pad(row, d), y=y, op=OP_LOAD, col=col, phase=phase)
            values[col] = _pad(row, d)

    def passes_of(d_in: int, what: str) -> int:
        if d_in > cfg.d_in_max:
            raise ValueError(f"{what}: dot-product length {d_in} > d_in_max = {cfg.d_in_max}")
        return cfg.passes(d_in)

    def check_depth(n_beats: int, n_passes: int, what: str) -> None:
        if n_passes > 1 and n_beats > cfg.psum_depth:
            raise ValueError(f"{what}: {n_beats} beats per pass of a tiled phase > psum_depth = {cfg.psum_depth}")

    for ph in phases:
        start = len(prog.beats)
        if isinstance(ph, LshPhase):
            if ph.directions is not None:
                a = np.atleast_2d(check_in_range(ph.directions, cfg.dir_fmt, "directions"))
                bias = check_in_range(np.asarray(ph.bias).reshape(-1), cfg.bias_fmt, "bias")
                lsh_state.update(a=a, bias=bias, loaded=False)
            elif not lsh_state:
                raise ValueError("LshPhase: directions None keeps the value registers of a previous LSH phase")
            a, bias = lsh_state["a"], lsh_state["bias"]
            tokens = np.atleast_2d(ph.tokens)
            d_in = tokens.shape[1]
            n_pass = passes_of(d_in, "LshPhase")
            check_depth(len(tokens), n_pass, "LshPhase")
            res_over = np.zeros(tokens.shape, dtype=bool)
            hashed = tokens
            if ph.centroids is not None:
                hashed, res_over = residual_tokens(tokens, ph.centroids, cfg)
            h, over = lsh_hash(hashed, a, bias, ph.inv_width, cfg)
            cents = np.zeros_like(tokens) if ph.centroids is None else np.atleast_2d(ph.centroids)
            # one pass keeps the registers when asked to (Fig. 10 (a)); tiled phases reload every pass
            keep = ph.directions is None and n_pass == 1 and lsh_state.get("loaded")
            for p in range(n_pass):
                sl = slice(p * d, (p + 1) * d)
                if not keep:
                    load(a[:, sl], PH_LSH, bias)
                if p == 0:
                    first = len(prog.beats)
                for t, (x, c) in enumerate(zip(tokens, cents, strict=True)):
                    beat(x=_pad(x[sl], d), c=_pad(c[sl], d), op=OP_DF1, phase=PH_LSH, first=int(t == 0),
                         last=int(t == len(tokens) - 1), residual=int(ph.centroids is not None),
                         scale=int(ph.inv_width), accumulate=int(p > 0), partial=int(p < n_pass - 1))
            lsh_state["loaded"] = n_pass == 1
            prog.phases.append({"kind": "lsh", "cols": a.shape[0], "values": h, "overflow": over,
                                "residual_overflow": res_over, "macs": tokens.shape[0] * a.shape[0] * a.shape[1],
                                "passes": n_pass, "load_beat": start, "first_beat": first,
                                "last_pass_beat": len(prog.beats) - len(tokens), "last_beat": len(prog.beats) - 1})
        elif isinstance(ph, LinearPhase):
            w = np.atleast_2d(ph.weights)
            d_in, d_out = w.shape
            n_pass = passes_of(d_in, "LinearPhase")
            if ph.inputs is not None:
                inputs = np.atleast_2d(check_in_range(ph.inputs, cfg.qkv_fmt, "inputs"))
                if inputs.shape[1] != d_in:
                    raise ValueError(f"shapes: inputs {inputs.shape} @ weights {w.shape}")
                lin_state["inputs"] = inputs
            elif n_pass == 1:
                inputs = values[:, :d_in].copy()      # one pass: the registers as they are (Fig. 10 (a))
            elif "inputs" in lin_state and lin_state["inputs"].shape[1] == d_in:
                inputs = lin_state["inputs"]          # tiled: the slices of the last loaded inputs again
            else:
                raise ValueError("LinearPhase: inputs None with d_in > d needs the inputs of a previous linear phase")
            k = inputs.shape[0]
            check_depth(d_out, n_pass, "LinearPhase")
            if ph.shortcut and (d_out > d or k != b):
                raise ValueError(f"LinearPhase shortcut needs d_out <= d ({d_out} vs {d}) and b inputs ({k})")
            bias = None if ph.bias is None else check_in_range(np.atleast_2d(ph.bias), cfg.lin_bias_fmt, "bias")
            if bias is not None and bias.shape != (k, d_out):
                raise ValueError(f"LinearPhase bias {bias.shape}, expected {(k, d_out)}")
            q, over = linear(inputs, w, cfg, bias)
            keep = ph.inputs is None and n_pass == 1
            for p in range(n_pass):
                sl = slice(p * d, (p + 1) * d)
                if not keep:
                    load(inputs[:, sl], PH_LINEAR)
                if p == 0:
                    first = len(prog.beats)
                final = p == n_pass - 1
                for t in range(d_out):
                    y = _pad(bias[:, t], b) if bias is not None and final else [0] * b
                    beat(x=_pad(w[sl, t], d), y=y, op=OP_DF1, phase=PH_LINEAR, first=int(t == 0),
                         last=int(t == d_out - 1), shortcut=int(ph.shortcut and final), accumulate=int(p > 0),
                         partial=int(not final))
            if ph.shortcut:
                values[:, :d_out] = q
            prog.phases.append({"kind": "linear", "cols": k, "values": q.T, "overflow": over.T,
                                "macs": k * d_in * d_out, "passes": n_pass, "load_beat": start, "first_beat": first,
                                "last_pass_beat": len(prog.beats) - d_out, "last_beat": len(prog.beats) - 1,
                                "shortcut": ph.shortcut})
        elif isinstance(ph, ScorePhase):
            if ph.q is not None:
                load(check_in_range(ph.q, cfg.qkv_fmt, "q"), PH_SCORE)
                nq = np.atleast_2d(ph.q).shape[0]
            else:
                nq = b
            kk = np.atleast_2d(ph.k)
            s, over = scores(values[:nq, :kk.shape[1]], kk, ph.k1, cfg)
            first = len(prog.beats)
            for t, row in enumerate(kk):
                beat(x=_pad(row, d), op=OP_DF1, phase=PH_SCORE, first=int(t == 0), last=int(t == len(kk) - 1),
                     sub=int(t >= ph.k1))
            prog.phases.append({"kind": "score", "cols": nq, "values": s.T, "overflow": over.T,
                                "macs": nq * kk.shape[0] * kk.shape[1], "load_beat": start, "first_beat": first,
                                "last_beat": len(prog.beats) - 1})
        elif isinstance(ph, OutputPhase):
            ap = np.atleast_2d(ph.ap)
            v = np.atleast_2d(ph.v)
            o, over, zero = output(ap, v, cfg)
            first = len(prog.beats)
            for t in range(ap.shape[1]):
                beat(x=_pad(v[t], d), y=_pad(ap[:, t], b), op=OP_DF2, phase=PH_OUTPUT, first=int(t == 0),
                     last=int(t == ap.shape[1] - 1))
            prog.phases.append({"kind": "output", "cols": ap.shape[0], "values": o, "overflow": over,
                                "div_by_zero": zero, "macs": ap.shape[0] * ap.shape[1] * v.shape[1],
                                "load_beat": start, "first_beat": first, "last_beat": len(prog.beats) - 1})
        else:
            raise TypeError(f"unknown phase {ph!r}")
    return prog


def issue_cycles(beats: list[dict], cfg: SystolicConfig, *, gap: int) -> list[int]:
    """Cycle at which each beat is accepted when the source offers one beat every cycle.

    ``gap``: the array's hand-over gap after a shortcut phase of d beats
    (``hdl.systolic_array.SHORTCUT_GAP``, passed in: golden does not import hdl).
    The array holds ``ready`` low for :func:`shortcut_gap` cycles after the last beat of a shortcut
    phase, and accepts the first beat of an output phase no earlier than ``d`` cycles after the
    last beat of the previous output phase (its result registers must first be copied to the
    result chain)."""
    cycles = []
    cycle = 0
    last_df2 = None
    hold_until = 0
    sc_beats = 0
    for bt in beats:
        cycle = max(cycle, hold_until)
        if bt["op"] == OP_DF2 and bt["first"] and last_df2 is not None:
            cycle = max(cycle, last_df2 + cfg.d)
        cycles.append(cycle)
        if bt["op"] == OP_DF1 and bt["shortcut"]:
            sc_beats = 1 if bt["first"] else sc_beats + 1
            if bt["last"]:
                hold_until = cycle + 1 + shortcut_gap(cfg, sc_beats, gap)
        if bt["op"] == OP_DF2 and bt["last"]:
            last_df2 = cycle
        cycle += 1
    return cycles


def shortcut_gap(cfg: SystolicConfig, d_out: int, gap: int) -> int:
    """Idle input cycles after the last beat of a shortcut phase of ``d_out`` beats: the next phase
    may reach row f only after Q̄ column f was latched there, d + ``gap`` cycles after the phase's
    first beat, whatever d_out is. ``gap``: ``hdl.systolic_array.SHORTCUT_GAP`` (the hand-over
    after a full phase of d beats; golden does not import hdl)."""
    return gap + cfg.d - d_out


def res_latency(cfg: SystolicConfig) -> int:
    """Cycles from accepting a DF1 beat to its b results on the result stream (skew d + b,
    input/skew registers 2, PE operand + multiply + add 3, PPE 6, less the column deskew overlap)."""
    return cfg.b + cfg.d + 9


def out_latency(cfg: SystolicConfig, recip_latency: int) -> int:
    """Cycles from accepting the last beat of an output phase to its first normalized row (row
    d-1; rows d-1 .. 0 follow on consecutive cycles): skew d + b, copy into the result chain 4,
    the reciprocal scaler (``hdl.arith.ReciprocalScaler.LATENCY``, passed in: golden does not
    import hdl)."""
    return cfg.b + cfg.d + 4 + recip_latency


def ideal_cycles(macs: int, cfg: SystolicConfig) -> float:
    """The ideal cycle count of a phase: its MACs spread over all b·d PEs."""
    return macs / (cfg.b * cfg.d)


def expected_phase_cycles(prog: Program, cfg: SystolicConfig, recip_latency: int, *, gap: int) -> list[dict]:
    """Per phase of ``prog`` (source never pausing): ``ideal`` (MACs/(b·d)), ``issue`` (cycles the
    phase occupies the array input, value loads included), ``bubbles_before`` (idle input cycles
    after the previous phase), ``start`` (accept cycle of its first beat) and ``done`` (cycle of its
    last result: DF1 phases ``res_latency`` after their last beat; output phases the last row,
    row 0, ``out_latency + d - 1`` after theirs) and ``passes`` (of tiled phases).
    ``recip_latency``: ``hdl.arith.ReciprocalScaler.LATENCY``; ``gap``:
    ``hdl.systolic_array.SHORTCUT_GAP``."""
    cyc = issue_cycles(prog.beats, cfg, gap=gap)
    out = []
    for n, ph in enumerate(prog.phases):
        start, last = cyc[ph["load_beat"]], cyc[ph["last_beat"]]
        if ph["kind"] == "output":
            done = last + out_latency(cfg, recip_latency) + cfg.d - 1
        else:
            done = last + res_latency(cfg)
        prev = prog.phases[n - 1]["last_beat"] if n else None
        out.append({"phase": ph["kind"], "ideal": ideal_cycles(ph["macs"], cfg), "issue": last - start + 1,
                    "passes": ph.get("passes", 1),
                    "bubbles_before": None if prev is None else start - cyc[prev] - 1, "start": start, "done": done})
    return out
