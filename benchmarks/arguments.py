"""Argument types the benchmark scripts share, so that argparse refuses a bad value in one line
(exit 2) rather than a traceback further on."""

from __future__ import annotations

import argparse


def positive_ints(text: str) -> list[int]:
    """A comma-separated list of integers >= 1, such as '1,4' (worker or repeat counts)."""
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        values = [0]
    if min(values) < 1:
        raise argparse.ArgumentTypeError(f"{text}: give integers >= 1 separated by ',', e.g. 1,4")
    return values
