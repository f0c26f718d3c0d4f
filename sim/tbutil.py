"""Small helpers shared by the cocotb testbenches."""

from __future__ import annotations

import os
import random
from collections.abc import Iterator

from cocotb.types import Logic


def read_unsigned(handle) -> int:
    value = handle.value
    if isinstance(value, Logic):
        return int(value)
    return value.to_unsigned()


def read_signed(handle) -> int:
    """Amaranth exports every port unsigned: reinterpret as two's complement."""
    value = handle.value
    if isinstance(value, Logic):
        return -int(value)
    return value.to_signed()


def tb_rng(salt: int = 0) -> random.Random:
    """Reproducible RNG from cocotb's RANDOM_SEED (printed in the log) plus a salt."""
    return random.Random(int(os.environ.get("RANDOM_SEED", "1")) * 7919 + salt)


def pause_pattern(rng: random.Random, probability: float) -> Iterator[bool]:
    """Endless 'stall this cycle' decisions for random valid/ready backpressure."""
    while True:
        yield rng.random() < probability
