"""The random generators work draws from (Python's, NumPy's, torch's CPU one), kept as they
were across work that must not change what a seeded training draws next: a factory's check,
a memory count."""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch


@contextmanager
def generators_kept() -> Iterator[None]:
    """Run the body, then restore Python's, NumPy's and torch's CPU generators: whatever it
    draws (dropout, stochastic depth, a factory's own coin), a seeded build or training that
    follows draws the same numbers as without it."""
    python_state, numpy_state = random.getstate(), np.random.get_state()
    try:
        with torch.random.fork_rng(devices=[]):
            yield
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)
