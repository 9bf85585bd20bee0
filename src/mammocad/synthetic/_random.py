"""Deterministic random streams: one independent generator per (seed, purpose) key.

Every random choice of the generator draws from a stream keyed by what it is for (the study
index, the breast, the view, the lesion), so adding a draw in one place never shifts the
numbers drawn anywhere else, and the same seed always gives the same study.
"""

from __future__ import annotations

import zlib

import numpy as np


def _key(part: int | str) -> int:
    if isinstance(part, str):
        # crc32 is stable across processes, unlike hash() of a str
        return zlib.crc32(part.encode("utf-8"))
    if part < 0:
        raise ValueError(f"random stream keys must be non-negative, got {part}")
    return part


def stream(seed: int, *parts: int | str) -> np.random.Generator:
    """A generator for ``seed`` and the purpose named by ``parts``."""
    return np.random.default_rng(np.random.SeedSequence([_key(seed), *map(_key, parts)]))


def child_seed(rng: np.random.Generator) -> int:
    """A seed below 2**53 drawn from ``rng``: it survives JSON readers that parse numbers as
    doubles (JavaScript), so a ``truth.json`` seed always regenerates its study."""
    return int(rng.integers(0, 2**53))
