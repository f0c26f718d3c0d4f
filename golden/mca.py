"""MCA golden model: Monte-Carlo value encoding with per-token sample counts (DESIGN §7, seed 002).

The exact head computes ``Y = A·(X W + b)`` with ``A = softmax(Q Kᵀ/√d)`` (m × n) and X = X^KV
(n × d_in). MCA replaces each encoded row ``X[j] W`` by a sampled estimate (eq. 5 with the
paper's typo ``X[i, s]`` read as ``X[j, s]``):

``H̃[j] = (1/r_j) Σ_{k<r_j} X[j][s_k] · W[s_k] / p(s_k)``, ``Y = A·(H̃ + b)``.

Everything that makes a run reproducible in hardware is specified here:

* **Sampling table** (offline, :func:`make_sampling_table`): ``p(k) = ‖W[k]‖² / ‖W‖_F²`` (eq. 6)
  quantized to integer counts ``c[k]`` out of ``2**cdf_bits``: ``c[k] = round_half_up(p(k)·2**B)``,
  at least 1 for every non-zero row (so every row that matters can be drawn and the estimator
  stays unbiased), 0 for all-zero rows; the rounding surplus/deficit is added to the first row
  with the largest count. The CDF table holds ``cdf[k] = Σ_{i<=k} c[k]`` (last entry ``2**B``).
  The effective probability is ``p_q(k) = c[k] / 2**B`` and the pre-scaled rows
  ``W[k] / p_q(k)`` are stored raw in ``ws_fmt`` (``ws_width`` bits, the most fractional bits
  that cover the largest entry). Both the float and the fixed model use ``p_q``.
* **PRNG** (:func:`xorshift32`): Marsaglia's 32-bit xorshift with shifts (13, 17, 5):
  ``x ^= x << 13; x ^= x >> 17; x ^= x << 5`` (all mod 2**32). The seed register holds a
  non-zero 32-bit state. After the seed is loaded the generator is advanced ``PRNG_WARMUP`` (4)
  times without drawing (the first states of small seeds have empty top bits). Every draw then
  first advances the state and uses the new state; one draw per sample, consumed in token order
  j = 0..n-1 and, within a token, sample order k = 0..r_j-1.
* **Inverse CDF**: the uniform is the top ``cdf_bits`` bits of the state, ``u = x >> (32 − B)``
  (bit 31 is its MSB); the sampled row is ``s = #{k : cdf[k] <= u}`` (first k with u < cdf[k]).
* **Sample counts** (eq. 9): ``√r_j = n · max_i A[i][j] / α``, ``r_j = ceil((√r_j)²)`` clamped to
  [1, d_in] (d = d_in, the dimension that is sampled). Fixed point: A raw in ``a_fmt`` (UQ1.15);
  ``inv_alpha_raw = round_half_up(2**alpha_frac / α)``; ``t = n · colmax_raw · inv_alpha_raw``
  (frac ``a_fmt.frac + alpha_frac``) is rounded *up* to ``sqrt_fmt`` (UQ8.8, saturating), then
  ``r_j = ceil(t_raw² / 2**(2·sqrt_fmt.frac))`` clamped to [1, d_in].
* **Accumulate and scale**: ``acc_j = Σ X_raw[j][s]·Ws_raw[s]`` in ``acc_fmt`` (saturating,
  flagged), then ``H̃_j = acc_j / r_j`` with :class:`golden.lut.RecipSpec` (the project's one
  division) into ``h_fmt``; the bias b_V (quantized to ``h_fmt``) is added with saturation.
* **Output**: ``Y = A_raw · H̃_raw`` (exact integer sum) requantized to ``out_fmt``.

FLOPs reduction as in the paper: ``d_in / mean(r_j)`` (encoding multiplications per token).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .fixed import QFormat, check_in_range, requantize, saturate
from .lut import RecipSpec
from .reference import HeadInputs, MethodResult, softmax

__all__ = [
    "XORSHIFT_MASK",
    "PRNG_WARMUP",
    "xorshift32",
    "xorshift32_draws",
    "SamplingTable",
    "make_sampling_table",
    "sample_counts_float",
    "sample_counts_fixed",
    "draw_indices",
    "MCAFormats",
    "MCAFixedResult",
    "mca_encode_fixed",
    "mca_encode_float",
    "mca_fixed",
    "mca_float",
    "mca",
    "theorem2_bound",
]

XORSHIFT_MASK = 0xFFFFFFFF
#: PRNG steps discarded after loading the seed, before the first draw.
PRNG_WARMUP = 4


# --------------------------------------------------------------------------------------------
# PRNG
# --------------------------------------------------------------------------------------------
def _check_seed(seed: Any) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
        raise TypeError(f"seed must be an integer, not {type(seed).__name__}")
    seed = int(seed)
    if not 1 <= seed <= XORSHIFT_MASK:
        raise ValueError(f"seed must be a non-zero 32-bit value in [1, 2**32-1], not {seed}")
    return seed


def xorshift32(state: int) -> int:
    """One step of the hardware PRNG (returns the new 32-bit state)."""
    x = state
    x ^= (x << 13) & XORSHIFT_MASK
    x ^= x >> 17
    x ^= (x << 5) & XORSHIFT_MASK
    return x


def xorshift32_draws(seed: int | np.ndarray, count: int) -> np.ndarray:
    """The next ``count`` states after ``seed`` (``np.int64``).

    ``seed`` may be an array of seeds (shape S): the result is then (S, count), one stream per
    seed, computed in lock-step (for statistics over many seeds).
    """
    if not isinstance(count, int | np.integer) or count < 0:
        raise ValueError(f"count must be an integer >= 0, not {count!r}")
    if np.ndim(seed) == 0:
        x = _check_seed(seed)
        out = [0] * int(count)
        for i in range(int(count)):
            x ^= (x << 13) & XORSHIFT_MASK
            x ^= x >> 17
            x ^= (x << 5) & XORSHIFT_MASK
            out[i] = x
        return np.array(out, dtype=np.int64)
    seeds = np.asarray(seed)
    if seeds.dtype.kind not in "iu" or np.any(seeds < 1) or np.any(seeds > XORSHIFT_MASK):
        raise ValueError("seeds must be non-zero 32-bit integers")
    x = seeds.astype(np.uint32)
    out = np.empty((seeds.size, int(count)), dtype=np.int64)
    for i in range(int(count)):
        x ^= x << np.uint32(13)
        x ^= x >> np.uint32(17)
        x ^= x << np.uint32(5)
        out[:, i] = x
    return out


# --------------------------------------------------------------------------------------------
# Offline tables
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SamplingTable:
    """Offline MCA tables for one weight matrix W (d_in × d)."""

    cdf_bits: int
    counts: np.ndarray        # c[k], integers summing to 2**cdf_bits
    cdf: np.ndarray           # inclusive cumulative counts (the hardware CDF ROM)
    ws_fmt: QFormat           # format of the pre-scaled rows
    ws_raw: np.ndarray        # W[k] / p_q(k), raw in ws_fmt (0 for rows never drawn)
    ws_float: np.ndarray      # the same in float64 (used by the float model)

    @property
    def p(self) -> np.ndarray:
        """Effective (quantized) sampling probabilities p_q(k)."""
        return self.counts / float(1 << self.cdf_bits)

    @property
    def d_in(self) -> int:
        return self.counts.shape[0]


def make_sampling_table(w: np.ndarray, *, cdf_bits: int = 16, ws_width: int = 18) -> SamplingTable:
    """p(k) = ‖W[k]‖²/‖W‖_F² as an integer CDF table plus the pre-scaled rows (see module doc)."""
    w = np.asarray(w, dtype=np.float64)
    if w.ndim != 2:
        raise ValueError(f"W must be 2-D (d_in × d), got shape {w.shape}")
    if not np.all(np.isfinite(w)):
        raise ValueError("W must be finite")
    if not isinstance(cdf_bits, int) or not 1 <= cdf_bits <= 32:
        raise ValueError(f"cdf_bits must be an integer in [1, 32], not {cdf_bits!r}")
    if not isinstance(ws_width, int) or not 4 <= ws_width <= 40:
        raise ValueError(f"ws_width must be an integer in [4, 40], not {ws_width!r}")
    d_in = w.shape[0]
    norms2 = np.sum(w * w, axis=1)
    total = float(norms2.sum())
    if total == 0.0:
        raise ValueError("W is all zeros: no sampling distribution")
    nonzero = norms2 > 0
    if int(nonzero.sum()) > (1 << cdf_bits):
        raise ValueError(f"cdf_bits={cdf_bits} too small for {int(nonzero.sum())} non-zero rows of W")
    one = 1 << cdf_bits
    counts = np.floor(norms2 / total * one + 0.5).astype(np.int64)
    counts = np.where(nonzero, np.maximum(counts, 1), 0)
    top = int(np.argmax(counts))
    counts[top] += one - int(counts.sum())
    if counts[top] < 1:
        raise ValueError(f"cdf_bits={cdf_bits} too small to give every non-zero row of W a count")
    cdf = np.cumsum(counts)
    assert cdf[-1] == one and d_in == counts.shape[0]
    p_q = counts / float(one)
    ws = np.where(nonzero[:, None], w / np.where(p_q > 0, p_q, 1.0)[:, None], 0.0)
    ws_fmt = QFormat.covering(max(float(np.max(np.abs(ws))), 2.0 ** -30), ws_width)
    return SamplingTable(cdf_bits, counts, cdf, ws_fmt, ws_fmt.quantize(ws), ws)


# --------------------------------------------------------------------------------------------
# Sample counts and indices
# --------------------------------------------------------------------------------------------
def _check_alpha(alpha: Any) -> float:
    if isinstance(alpha, bool) or not isinstance(alpha, int | float | np.floating | np.integer):
        raise TypeError(f"alpha must be a real number, not {type(alpha).__name__}")
    alpha = float(alpha)
    if not (0.0 < alpha <= 1.0):
        raise ValueError(f"alpha must be in (0, 1], not {alpha}")
    return alpha


def sample_counts_float(a: np.ndarray, alpha: float, d_in: int) -> np.ndarray:
    """r_j = clip(ceil((n·max_i A[i][j]/α)²), 1, d_in) (eq. 9) from a float attention matrix."""
    alpha = _check_alpha(alpha)
    a = np.asarray(a, dtype=np.float64)
    if a.ndim != 2:
        raise ValueError(f"A must be 2-D (m × n), got shape {a.shape}")
    n = a.shape[1]
    sqrt_r = n * a.max(axis=0) / alpha
    return np.clip(np.ceil(sqrt_r * sqrt_r), 1, d_in).astype(np.int64)


def sample_counts_fixed(a_raw: np.ndarray, alpha: float, d_in: int, fmts: MCAFormats) -> np.ndarray:
    """Bit-exact r_j from raw A (``fmts.a_fmt``); see the module doc for the arithmetic."""
    alpha = _check_alpha(alpha)
    a_raw = check_in_range(a_raw, fmts.a_fmt, "a_raw")
    if a_raw.ndim != 2:
        raise ValueError(f"a_raw must be 2-D (m × n), got shape {a_raw.shape}")
    n = a_raw.shape[1]
    inv_alpha = fmts.inv_alpha_raw(alpha)
    t = n * a_raw.max(axis=0) * inv_alpha
    drop = fmts.a_fmt.frac + fmts.alpha_frac - fmts.sqrt_fmt.frac
    t_up = np.right_shift(t + ((1 << drop) - 1), drop) if drop > 0 else np.left_shift(t, -drop)
    t_up, _ = saturate(t_up, fmts.sqrt_fmt)
    sq = t_up * t_up
    f2 = 2 * fmts.sqrt_fmt.frac
    r = np.right_shift(sq + ((1 << f2) - 1), f2)
    return np.clip(r, 1, d_in).astype(np.int64)


def draw_indices(table: SamplingTable, r: np.ndarray, seed: int | np.ndarray) -> np.ndarray:
    """Row indices for all samples, concatenated in token order (length Σ r_j).

    With an array of seeds the result is (S, Σ r_j).
    """
    r = np.asarray(r, dtype=np.int64)
    if r.ndim != 1 or np.any(r < 1):
        raise ValueError("r must be a 1-D array of sample counts >= 1")
    states = xorshift32_draws(seed, PRNG_WARMUP + int(r.sum()))[..., PRNG_WARMUP:]
    u = np.right_shift(states, 32 - table.cdf_bits)
    return np.searchsorted(table.cdf, u, side="right").astype(np.int64)


# --------------------------------------------------------------------------------------------
# Formats and the bit-exact encoder
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MCAFormats:
    """Number formats of the MCA datapath (defaults documented in the module doc)."""

    token_fmt: QFormat = QFormat(13, 7)
    a_fmt: QFormat = QFormat(16, 15, signed=False)
    alpha_frac: int = 8
    sqrt_fmt: QFormat = QFormat(16, 8, signed=False)
    acc_fmt: QFormat = QFormat(48, 0)          # frac is set from token and ws formats at use
    h_fmt: QFormat = QFormat(16, 8)
    out_fmt: QFormat = QFormat(16, 8)
    count_fmt: QFormat = QFormat(12, 0, signed=False)
    recip_lut_bits: int = 10
    recip_mant_bits: int = 16

    def __post_init__(self) -> None:
        if self.a_fmt.signed:
            raise ValueError("MCAFormats.a_fmt must be unsigned (attention probabilities)")
        if self.a_fmt.max_value < 1.0:
            raise ValueError("MCAFormats.a_fmt must represent 1.0")
        if not isinstance(self.alpha_frac, int) or not 0 <= self.alpha_frac <= 24:
            raise ValueError(f"MCAFormats.alpha_frac must be an integer in [0, 24], not {self.alpha_frac!r}")
        if self.sqrt_fmt.signed or self.count_fmt.signed or self.count_fmt.frac != 0:
            raise ValueError("MCAFormats.sqrt_fmt and count_fmt must be unsigned (count_fmt an integer)")

    def inv_alpha_raw(self, alpha: float) -> int:
        raw = math.floor((1 << self.alpha_frac) / _check_alpha(alpha) + 0.5)
        if raw >= 1 << 24:
            raise ValueError(f"alpha={alpha} too small: 1/alpha must fit 24 bits with alpha_frac={self.alpha_frac}")
        return raw

    def recip(self) -> RecipSpec:
        return RecipSpec(self.count_fmt, self.recip_lut_bits, self.recip_mant_bits)


@dataclass
class MCAFixedResult:
    """Everything the MCA RTL produces for one head (raw integers) plus the overflow flags."""

    r: np.ndarray               # sample count per token (n)
    indices: np.ndarray         # sampled rows, concatenated in token order (Σ r)
    h_raw: np.ndarray           # H̃ + b in h_fmt (n × d)
    y_raw: np.ndarray           # output in out_fmt (m × d)
    acc_frac: int
    flags: dict[str, bool] = field(default_factory=dict)


def _segment_sum(values: np.ndarray, r: np.ndarray) -> np.ndarray:
    starts = np.concatenate(([0], np.cumsum(r)[:-1]))
    return np.add.reduceat(values, starts, axis=-2)


def mca_encode_fixed(
    x_raw: np.ndarray, a_raw: np.ndarray, table: SamplingTable, alpha: float, seed: int,
    bias_raw: np.ndarray | None = None, fmts: MCAFormats = MCAFormats(),
) -> MCAFixedResult:
    """Bit-exact MCA for one head: X raw (n × d_in, token_fmt), A raw (m × n, a_fmt)."""
    seed = _check_seed(seed)
    x = check_in_range(x_raw, fmts.token_fmt, "x_raw")
    a = check_in_range(a_raw, fmts.a_fmt, "a_raw")
    if x.ndim != 2 or a.ndim != 2:
        raise ValueError(f"x_raw and a_raw must be 2-D, got {x.shape} and {a.shape}")
    n, d_in = x.shape
    if a.shape[1] != n:
        raise ValueError(f"a_raw has {a.shape[1]} columns but there are n={n} tokens")
    if table.d_in != d_in:
        raise ValueError(f"sampling table is for d_in={table.d_in}, tokens have d_in={d_in}")
    if d_in > fmts.count_fmt.max_int:
        raise ValueError(f"d_in={d_in} exceeds count_fmt {fmts.count_fmt} (max {fmts.count_fmt.max_int})")
    d = table.ws_raw.shape[1]
    bias = np.zeros(d, dtype=np.int64) if bias_raw is None else check_in_range(bias_raw, fmts.h_fmt, "bias_raw")
    if bias.shape != (d,):
        raise ValueError(f"bias_raw must have shape ({d},), got {bias.shape}")
    r = sample_counts_fixed(a, alpha, d_in, fmts)
    idx = draw_indices(table, r, seed)
    token = np.repeat(np.arange(n), r)
    prod = x[token, idx][:, None] * table.ws_raw[idx]
    acc_frac = fmts.token_fmt.frac + table.ws_fmt.frac
    acc_fmt = fmts.acc_fmt.with_(frac=acc_frac)
    # Sequential saturating accumulation equals one saturation at the end only if no partial sum
    # overflows; the accumulator is wide (48 bits) and the flag reports any overflow of the total.
    acc, acc_over = acc_fmt.fit(_segment_sum(prod, r))
    h, h_over, _ = fmts.recip().scale(acc, acc_frac, r[:, None], fmts.h_fmt)
    h, b_over = saturate(h + bias, fmts.h_fmt)
    y_full = a @ h
    y, y_over = requantize(y_full, fmts.a_fmt.frac + fmts.h_fmt.frac, fmts.out_fmt)
    flags = {
        "acc_overflow": bool(acc_over.any()),
        "h_overflow": bool(h_over.any() or b_over.any()),
        "out_overflow": bool(y_over.any()),
    }
    return MCAFixedResult(r, idx, h, y, acc_frac, flags)


def mca_encode_float(
    x: np.ndarray, a: np.ndarray, table: SamplingTable, alpha: float, seed: int | np.ndarray,
    bias: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Float MCA with the hardware's sampling table and PRNG: returns (Y, H̃ + b, r).

    With an array of S seeds, Y is (S × m × d) and H̃ (S × n × d): one estimate per seed.
    """
    x = np.asarray(x, dtype=np.float64)
    a = np.asarray(a, dtype=np.float64)
    if x.ndim != 2 or a.ndim != 2 or a.shape[1] != x.shape[0]:
        raise ValueError(f"need X (n × d_in) and A (m × n), got {x.shape} and {a.shape}")
    if table.d_in != x.shape[1]:
        raise ValueError(f"sampling table is for d_in={table.d_in}, tokens have d_in={x.shape[1]}")
    n = x.shape[0]
    d = table.ws_float.shape[1]
    b = np.zeros(d) if bias is None else np.asarray(bias, dtype=np.float64)
    if b.shape != (d,):
        raise ValueError(f"bias must have shape ({d},), got {b.shape}")
    r = sample_counts_float(a, alpha, x.shape[1])
    idx = draw_indices(table, r, seed)
    token = np.repeat(np.arange(n), r)
    prod = x[token, idx][..., None] * table.ws_float[idx]
    h = _segment_sum(prod, r) / r[:, None] + b
    return a @ h, h, r


# --------------------------------------------------------------------------------------------
# Method interface
# --------------------------------------------------------------------------------------------
def theorem2_bound(x: np.ndarray, w: np.ndarray, alpha: float, delta: float | None = None) -> float:
    """αβ‖W‖_F (eq. 10), or αβ‖W‖_F/δ (eq. 11) when δ is given; β = mean ‖X[i]‖₂."""
    alpha = _check_alpha(alpha)
    beta = float(np.mean(np.linalg.norm(np.asarray(x, dtype=np.float64), axis=1)))
    bound = alpha * beta * float(np.linalg.norm(w))
    if delta is None:
        return bound
    if not 0.0 < delta < 1.0:
        raise ValueError(f"delta must be in (0, 1), not {delta}")
    return bound / delta


def _attention(head: HeadInputs) -> np.ndarray:
    q, k, _ = head.qkv()
    return softmax(q @ k.T / math.sqrt(q.shape[1]))


def _work(r: np.ndarray, d_in: int, alpha: float) -> dict[str, Any]:
    mean_r = float(np.mean(r))
    return {
        "alpha": alpha,
        "mean_r": mean_r,
        "min_r": int(r.min()),
        "max_r": int(r.max()),
        "d": d_in,
        "flops_reduction": d_in / mean_r,
    }


def mca_float(head: HeadInputs, *, alpha: float = 0.4, seed: int = 1, cdf_bits: int = 16,
              **settings: Any) -> MethodResult:
    """MCA in float64 (exact A, hardware sampling table and PRNG)."""
    if settings:
        raise TypeError(f"mca_float got unknown settings: {sorted(settings)}")
    alpha = _check_alpha(alpha)
    table = make_sampling_table(head.wv, cdf_bits=cdf_bits)
    y, _, r = mca_encode_float(head.x_kv, _attention(head), table, alpha, seed, head.bv)
    return MethodResult(y, _work(r, head.d_in, alpha))


def mca_fixed(head: HeadInputs, *, alpha: float = 0.4, seed: int = 1, cdf_bits: int = 16, ws_width: int = 18,
              fmts: MCAFormats = MCAFormats(), **settings: Any) -> MethodResult:
    """Bit-exact MCA: quantizes X^KV, A and b_V, runs :func:`mca_encode_fixed`, returns float Y."""
    if settings:
        raise TypeError(f"mca_fixed got unknown settings: {sorted(settings)}")
    alpha = _check_alpha(alpha)
    table = make_sampling_table(head.wv, cdf_bits=cdf_bits, ws_width=ws_width)
    x_raw = fmts.token_fmt.quantize(head.x_kv)
    a_raw = fmts.a_fmt.quantize(_attention(head))
    res = mca_encode_fixed(x_raw, a_raw, table, alpha, seed, fmts.h_fmt.quantize(head.bv), fmts)
    work = _work(res.r, head.d_in, alpha)
    work.update(res.flags)
    work["ws_fmt"] = str(table.ws_fmt)
    return MethodResult(fmts.out_fmt.to_float(res.y_raw), work)


def mca(head: HeadInputs, *, fixed: bool = True, **settings: Any) -> MethodResult:
    """MCA method entry point: ``fixed`` selects :func:`mca_fixed` or :func:`mca_float`."""
    return mca_fixed(head, **settings) if fixed else mca_float(head, **settings)

