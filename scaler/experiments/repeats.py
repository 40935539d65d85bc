"""How the repeats of one trained configuration become one row: which repeats count, their
mean top-1 with its interval, the configuration's state, and the test of a difference on
the shared validation images. Every experiment that trains a network several times (search, comparison,
calibration) aggregates this way."""

from __future__ import annotations

import math
import re
from collections.abc import Hashable, Mapping, Sequence
from itertools import combinations
from typing import Any

import numpy as np

from scaler.states import State
from scaler.statistics import LEVEL, difference_test, mean_interval, unpack_correct
from scaler.study.experiment import Record

ATTR_REPEATS = "scaler_repeats"  # the study attribute that holds how many repeats it asks for


def repeats_in(attrs: Mapping[str, Any], asked: int | None = None) -> int:
    """How many repeats a study with attributes `attrs` trains when `asked` for some (None: as
    many as it has): repeats never shrink, so asking for fewer keeps the ones it has, and a
    worker that sees them raised by another process takes the new ones up."""
    return max(int(attrs.get(ATTR_REPEATS, 1)), asked or 1)


def group_by(records: list[Record], key: str) -> dict[Hashable, list[Record]]:
    """Records grouped by one item parameter (e.g. 'candidate'), in first-seen order."""
    groups: dict[Hashable, list[Record]] = {}
    for record in records:
        groups.setdefault(record.item[key], []).append(record)
    return groups


def candidate_state(records: list[Record]) -> State:
    """A configuration's state from its repeats': unfinished while any repeat runs or waits;
    then complete if any repeat completed, else timeout, else pruned, else failed."""
    states = [r.state for r in records] or [State.QUEUED]
    for waiting in (State.RUNNING, State.INTERRUPTED, State.QUEUED):
        if waiting in states:
            return waiting
    for finished in (State.COMPLETE, State.TIMEOUT, State.PRUNED):
        if finished in states:
            return finished
    return State.FAILED


def counted_repeats(records: list[Record]) -> list[Record]:
    """The repeats a configuration's figures are made of: those in its own state (a complete
    configuration's complete repeats; a pruned repeat's partial accuracy never enters a
    complete one's mean), with a top-1."""
    state = candidate_state(records)
    return [r for r in records if r.state is state and state.is_scored and r.attrs.get("top1") is not None]


def diverged_only(reason: str) -> bool:
    """Whether a failed row's reason (as `aggregate` writes it) is divergence alone: "diverged:
    ..." for one run (the proxy's failure), "2 of 2 repeats failed (diverged: ..., diverged:
    ...)" for repeats. Such a run diverges again with the same, seeded, settings."""
    causes = re.fullmatch(r"\d+ of \d+ repeats failed \((.*)\)", reason)
    return all(part.startswith("diverged:") for part in (causes[1] if causes else reason).split(", "))


def aggregate(records: list[Record]) -> dict[str, Any]:
    """The table's fields of one configuration from its repeats: means over the counted ones
    (see `counted_repeats`; while repeats still wait or run, over those complete so far, so that a
    resumed search, or one whose --repeats was raised, keeps showing what it has), the 95%
    interval of top-1 (over repeats when there are 2 or more, else from the validation
    sample), the repeats counted, the state, and what happened to the others."""
    state = candidate_state(records)
    scored = counted_repeats(records) if state.is_finished else [
        r for r in records if r.state is State.COMPLETE and r.attrs.get("top1") is not None
    ]  # fmt: skip
    top1 = [float(r.attrs["top1"]) for r in scored]
    images = {int(r.attrs["val_images"]) for r in scored if r.attrs.get("val_images")}
    n = images.pop() if len(images) == 1 else None  # the repeats' shared validation images
    mean, std, low, high = mean_interval(top1, images=n)  # an exact mean: see mean_accuracy
    if math.isfinite(low) and math.isfinite(high):  # an accuracy's interval stays in [0, 1]
        low, high = max(0.0, low), min(1.0, high)

    def average(key: str) -> float | None:
        values = [float(r.attrs[key]) for r in scored if r.attrs.get(key) is not None]
        return float(np.mean(values)) if values else None

    reason = records[0].reason if len(records) == 1 else ""
    # What happened to the repeats that do not count: beside a scored mean, or, where none
    # counts (all failed), to all of them; and to those that do, where they stopped short
    # (pruned or timed out: each says at which epoch, as a single run's reason does).
    others = [r for r in records if r.state.is_finished and (r not in scored or state is not State.COMPLETE)] if state.is_finished else []
    if len(records) > 1 and others:
        reason = "; ".join(
            f"{sum(r.state is s for r in others)} of {len(records)} repeats {'timed out' if s is State.TIMEOUT else s.value}"
            + (f" ({', '.join(dict.fromkeys(r.reason for r in others if r.state is s and r.reason))})"
               if any(r.reason for r in others if r.state is s) else "")
            for s in dict.fromkeys(r.state for r in others)
        )
    return {
        "top1": mean if scored else None,
        "top5": average("top5"),
        "val_loss": average("val_loss"),
        "epochs": max((int(r.attrs["epochs"]) for r in scored if r.attrs.get("epochs") is not None), default=None),
        "train_seconds": sum(float(r.attrs["train_seconds"]) for r in scored if r.attrs.get("train_seconds") is not None) if scored else None,
        "images_per_s": average("images_per_s"),
        "state": state.value,
        "reason": reason,
        "top1_std": std if scored else None,
        "top1_low": low if scored else None,
        "top1_high": high if scored else None,
        "repeats": len(scored),
    }


def correctness(records: list[Record]) -> list[np.ndarray] | None:
    """Per-repeat correctness arrays of a configuration's counted repeats (None when not
    stored: runs from before per-image results were kept, or nothing counted)."""
    out = []
    for r in counted_repeats(records):
        if not r.attrs.get("val_correct") or not r.attrs.get("val_images"):
            return None
        out.append(unpack_correct(r.attrs["val_correct"], int(r.attrs["val_images"])))
    return out or None


def difference_of(a: list[Record], b: list[Record], paired: bool = False) -> tuple[float, float] | None:
    """(difference of mean top-1, p) of two configurations trained on the same validation
    images, from their counted repeats (see `difference_test`; `paired` when a's repeat r and
    b's share a seed); None when either has no per-image results."""
    mine, theirs = correctness(a), correctness(b)
    if mine is None or theirs is None or len(mine[0]) != len(theirs[0]):
        return None
    return difference_test(mine, theirs, paired=paired)


def separated_pairs(groups: Mapping[Hashable, list[Record]]) -> tuple[list[tuple[Hashable, Hashable]], int] | None:
    """(apart, tested): the pairs (higher, lower) of configurations whose mean top-1 the data
    tells apart, and how many pairs were tested. Each pair is tested by `difference_of` at the 5%
    level, the seed's noise included, with no correction for the number of pairs. Only
    configurations with 2 or more counted repeats are tested (with one run the seed's noise is
    unmeasured, and a gap that another seed would undo could pass). None when fewer than two
    such configurations, or when one has no per-image results."""
    tested = [key for key, group in groups.items() if len(counted_repeats(group)) >= 2]
    if len(tested) < 2:
        return None
    apart = []
    for a, b in combinations(tested, 2):
        found = difference_of(groups[a], groups[b])
        if found is None:
            return None
        difference, p = found
        if p < 1 - LEVEL:
            apart.append((a, b) if difference > 0 else (b, a))
    return apart, len(tested) * (len(tested) - 1) // 2


def per_repeat_top1(groups: Sequence[list[Record]]) -> list[list[float]]:
    """Each group's counted per-repeat top-1 values."""
    return [[float(r.attrs["top1"]) for r in counted_repeats(group)] for group in groups]
