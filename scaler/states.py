"""The one vocabulary of outcomes, shared by the trainer, the study engine, results and plots.

A state knows what it means for the work: whether it needs no more training (`is_finished`),
whether its metrics are a finished evaluation that can be ranked (`is_scored`), and where it
sorts in a ranked table (`rank_group`).
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import Enum


class State(str, Enum):
    """How a piece of work (a training, a trial, a candidate) stands or ended."""

    QUEUED = "queued"  # waiting for a worker
    RUNNING = "running"  # a worker has it
    COMPLETE = "complete"  # trained to the end
    TIMEOUT = "timeout"  # stopped by a time cap after a partial schedule, then evaluated
    PRUNED = "pruned"  # stopped early on purpose (a pruner, or the caller)
    DIVERGED = "diverged"  # the loss became NaN or infinite
    FAILED = "failed"  # an error (out of memory, a bug, a diverged run in a search)
    INTERRUPTED = "interrupted"  # its process ended mid-work (kill, Ctrl-C): to be redone
    DUPLICATE = "duplicate"  # the same work was already finished elsewhere: dropped
    LOST = "lost"  # closed by another process (stale heartbeat) while this one worked on it

    def __str__(self) -> str:
        return self.value

    @property
    def is_finished(self) -> bool:
        """Needs no more training (failures included: they are retried only on request)."""
        return self in _FINISHED

    @property
    def is_scored(self) -> bool:
        """Its metrics come from a finished evaluation, so it can be ranked."""
        return self in _RANK_GROUP

    @property
    def rank_group(self) -> int:
        """Sort key of ranked tables: complete, then timed out, then pruned, then the rest."""
        return _RANK_GROUP.get(self, len(_RANK_GROUP))


def still_to_train(states: Iterable[str]) -> list[str]:
    """The recorded state values (a results table's column, a summary's counts) that still
    need training: queued, running, interrupted...; values of no known state are left out."""
    return [s for s in states if s in State._value2member_map_ and not State(s).is_finished]


_RANK_GROUP = {State.COMPLETE: 0, State.TIMEOUT: 1, State.PRUNED: 2}
_FINISHED = frozenset({State.COMPLETE, State.TIMEOUT, State.PRUNED, State.FAILED, State.DIVERGED})
