"""Host view of the CTA accelerator block (``hdl.cta.Cta``): its generation parameters
(:class:`CtaShape`), the ``load`` stream layout (targets and addresses), the load beats of one head
and the results the block must return (from :func:`golden.cta.cta_fixed_trace`).

``load`` beat = ``{target, addr, data[d]}`` (raw two's-complement values; a d-wide word holds one
pass, i.e. elements ``p·d .. p·d + d - 1`` of a row, zero-padded past d_in):

====== ===================== ========================================================================
target what                  addr
====== ===================== ========================================================================
0      X^Q row i, pass p     ``i·P + p`` (P = ``cfg.max_passes``)
1      X^KV row j, pass p    ``j·P + p``
2      weights column t      ``(w·P + p)·d + t``; w = 0 (W^Q), 1 (W^K), 2 (W^V); data = W[p·d.., t]
3      LSH_h direction c     ``(h·l + c)·P + p``
4      linear bias           ``w·d + t``: data[0] = b^Q / b^K / b^V [t] (``lin_bias_fmt``)
5      LSH_h bias / 1/w      ``h·l + c``: data[0] = b_h[c]; ``3·l + h``: data[0] = 1/w_h
====== ===================== ========================================================================
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .cta import CTAFixedTrace
from .fixed import QFormat
from .lut import ExpSpec
from .systolic import SystolicConfig

__all__ = ["CtaShape", "load_layout_widths", "load_beats", "TARGETS"]

TARGETS = {"xq": 0, "xkv": 1, "w": 2, "dir": 3, "lin_bias": 4, "lsh_param": 5}


def _pow2(x: int) -> bool:
    return x >= 1 and x & (x - 1) == 0


@dataclass(frozen=True)
class CtaShape:
    """Generation parameters of the CTA block: the SA configuration ``cfg`` (its ``d_h`` is
    the head dimension d_h), the hash length ``l``, the longest sequence ``n_max`` (m and n), the
    cluster capacity ``k_max`` (CIM / CAG / PAG per LSH level), and the PAG's exp unit."""

    cfg: SystolicConfig
    l: int = 6  # noqa: E741 (the paper's name)
    n_max: int = 512
    k_max: int = 0                  # 0: n_max
    exp_spec: ExpSpec | None = field(default=None)

    def __post_init__(self) -> None:
        cfg = self.cfg
        if not isinstance(cfg, SystolicConfig):
            raise TypeError(f"cfg must be a SystolicConfig, not {cfg!r}")
        for name in ("l", "n_max", "k_max"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool):
                raise TypeError(f"CtaShape {name} must be an int, not {v!r}")
        if not 1 <= self.l <= cfg.b:
            raise ValueError(f"CtaShape l={self.l} out of range [1, b={cfg.b}] (one hash function per SA column)")
        if not _pow2(cfg.b):
            raise ValueError(f"CtaShape b={cfg.b} must be a power of two (Ō rows are addressed by query // b)")
        if not 2 <= self.n_max <= cfg.psum_depth:
            raise ValueError(f"CtaShape n_max={self.n_max} out of range [2, psum_depth={cfg.psum_depth}] "
                             "(a tiled LSH pass holds n partial sums per column)")
        if not 0 <= self.k_max <= self.n_max:
            raise ValueError(f"CtaShape k_max={self.k_max} out of range [0 (= n_max), n_max={self.n_max}]")
        if 2 * self.clusters > cfg.psum_depth:
            raise ValueError(f"CtaShape k_max={self.clusters}: 2·k_max > psum_depth={cfg.psum_depth} "
                             "(the K̄V̄ passes stream k1 + k2 rows)")
        if self.exp_spec is None:
            object.__setattr__(self, "exp_spec", default_exp_spec(cfg))

    @property
    def clusters(self) -> int:
        """Cluster capacity per LSH level (k_max, or n_max when 0)."""
        return self.k_max or self.n_max

    @property
    def d_h(self) -> int:
        return self.cfg.d_h or self.cfg.d

    @property
    def kv_groups(self) -> int:
        """Groups of b output columns in each of K̄ and V̄."""
        return -(-self.d_h // self.cfg.b)


def default_exp_spec(cfg: SystolicConfig) -> ExpSpec:
    """The PAG exp unit of :func:`golden.cta.cta_fixed_trace` (score format in, AP fraction + 2 integer bits)."""
    return ExpSpec(QFormat(16, 8), QFormat(cfg.ap_fmt.frac + 2, cfg.ap_fmt.frac, signed=False))


def load_layout_widths(shape: CtaShape) -> dict[str, int]:
    """Widths of the ``load`` beat fields: ``lane`` (signed, holds every loaded format) and ``addr``."""
    cfg, P, d, l = shape.cfg, shape.cfg.max_passes, shape.cfg.d, shape.l
    lane = max(cfg.x_width, cfg.lin_bias_fmt.width, cfg.bias_fmt.width, cfg.inv_w_fmt.width + 1)
    depth = max(shape.n_max * P, 3 * P * d, 3 * l * P, 3 * d, 3 * l + 3)
    return {"lane": lane, "addr": max(1, (depth - 1).bit_length())}


def load_beats(trace: CTAFixedTrace, shape: CtaShape) -> list[dict[str, Any]]:
    """The ``load`` beats of one head (every memory word and register a run reads)."""
    cfg, d, P, l = shape.cfg, shape.cfg.d, shape.cfg.max_passes, shape.l
    sa = trace.sa_inputs
    d_in = trace.x_q.shape[1]
    passes = cfg.passes(d_in)
    beats: list[dict[str, Any]] = []

    def word(vec: np.ndarray, p: int) -> list[int]:
        part = [int(v) for v in np.asarray(vec)[p * d:(p + 1) * d]]
        return part + [0] * (d - len(part))

    def scalar(v: int) -> list[int]:
        return [int(v)] + [0] * (d - 1)

    for target, x in ((TARGETS["xq"], trace.x_q), (TARGETS["xkv"], trace.x_kv)):
        for i, row in enumerate(x):
            for p in range(passes):
                beats.append({"target": target, "addr": i * P + p, "data": word(row, p)})
    d_h = sa["w_q"].shape[1]
    weights = (sa["w_q"], sa["w_kv"][:, :d_h], sa["w_kv"][:, d_h:])
    for w, mat in enumerate(weights):
        for p in range(passes):
            for t in range(mat.shape[1]):
                beats.append({"target": TARGETS["w"], "addr": (w * P + p) * d + t, "data": word(mat[:, t], p)})
    for w, vec in enumerate((sa["b_q"], sa["b_k"], sa["b_v"])):
        for t, v in enumerate(vec):
            beats.append({"target": TARGETS["lin_bias"], "addr": w * d + t, "data": scalar(v)})
    for h, (dirs, bias, inv) in enumerate(sa["lsh"]):
        for c in range(dirs.shape[0]):
            for p in range(passes):
                beats.append({"target": TARGETS["dir"], "addr": (h * l + c) * P + p, "data": word(dirs[c], p)})
            beats.append({"target": TARGETS["lsh_param"], "addr": h * l + c, "data": scalar(bias[c])})
        beats.append({"target": TARGETS["lsh_param"], "addr": 3 * l + h, "data": scalar(inv)})
    return beats
