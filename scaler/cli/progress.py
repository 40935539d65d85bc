"""Progress displays for long work (rich): one training, or a whole study.

The library reports progress through callbacks (`scaler.training.train`'s on_step/on_epoch, a
study's `scaler.study.runner.Display`); these draw them on the terminal."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from scaler.states import State

if TYPE_CHECKING:
    from scaler.study.runner import Display
    from scaler.training import EpochMetrics


@contextmanager
def make_progress(console: Console, quiet: bool = False) -> Iterator[Progress]:
    """A progress display with bar, counts, elapsed and remaining time and a stats field, on
    `console` (stderr's): stdout's own writes are left alone, as they carry the results.
    `quiet`: the lines printed through it only, no bar (as in a log file)."""
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        Count(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        TextColumn("{task.fields[stats]}"),
        console=console,
        disable=quiet or not drawn(console),  # a log file gets the lines printed above the bars, not a bar drawn once
        transient=False,
        redirect_stdout=False,
    )
    with progress:
        yield progress


class Count(MofNCompleteColumn):
    """Done / in all; blank while the total is unknown (a training before its first step has
    counted its steps), where rich would draw '0/?'."""

    def render(self, task: Task) -> Text:
        return Text("") if task.total is None else super().render(task)


def drawn(console: Console) -> bool:
    """Whether bars are drawn on `console`: on a terminal, a real one (FORCE_COLOR makes rich
    take a log file for one, which would then collect a bar at every refresh)."""
    isatty = getattr(console.file, "isatty", None)
    return console.is_terminal and callable(isatty) and bool(isatty())


class StepBar:
    """One training as a bar of optimizer steps: loss, images/s, and a line per epoch."""

    def __init__(self, progress: Progress, label: str, epochs: int) -> None:
        self.progress, self.label, self.epochs = progress, label, epochs
        self.task = progress.add_task(f"{label} epoch 1/{epochs}", total=None, stats="")

    def on_step(self, step: int, total: int, loss: float, images_per_s: float) -> None:
        epoch = min(self.epochs, 1 + (step - 1) * self.epochs // max(total, 1))
        self.progress.update(
            self.task,
            completed=step,
            total=total,
            description=f"{self.label} epoch {epoch}/{self.epochs}",
            stats=f"loss {loss:.3f} · {images_per_s:.0f} img/s",
        )

    def on_epoch(self, metrics: EpochMetrics) -> bool:
        top5 = f" top-5 {metrics.top5:.1%}" if metrics.top5 is not None else ""
        self.progress.console.print(
            f"  {self.label} epoch {metrics.epoch}: train loss {metrics.train_loss:.3f} · "
            f"val top-1 {metrics.top1:.1%}{top5} · val loss {metrics.val_loss:.3f} · "
            f"{metrics.images_per_s:.0f} img/s · {metrics.seconds:.1f} s",
            highlight=False,
            soft_wrap=True,  # a log line: whole in a pipe or a file, the terminal wraps it on screen
        )
        return False

    def done(self) -> None:
        self.progress.remove_task(self.task)


class StudyBars:
    """A study: items done / total with ETA, plus the running item's steps."""

    def __init__(self, progress: Progress, total: int, done: int, noun: str = "candidate") -> None:
        self.progress = progress
        self.overall = progress.add_task(f"{noun}s", total=total, completed=done, stats="")
        self.current: StepBar | None = None

    def on_start(self, label: str, epochs: int) -> None:
        if self.current:
            self.current.done()
        self.current = StepBar(self.progress, label, epochs)

    def on_step(self, step: int, total: int, loss: float, images_per_s: float) -> None:
        if self.current:
            self.current.on_step(step, total, loss, images_per_s)

    def on_epoch(self, metrics: EpochMetrics) -> None:
        if self.current:
            self.current.on_epoch(metrics)

    def on_finish(self, label: str, state: State, reason: str) -> None:
        if self.current:
            self.current.done()
            self.current = None
        if state.is_finished:  # an interrupted item is still to do, a lost one another worker's
            self.progress.advance(self.overall)
        self.progress.console.print(f"{label}: {state}{' (' + reason + ')' if reason else ''}", highlight=False, soft_wrap=True)

    def set_counts(self, done: int, running: str) -> None:
        """For a study run by worker processes: refresh from the study's state."""
        self.progress.update(self.overall, completed=done, stats=running)


def study_bars(console: Console) -> Display:
    """A study's progress as rich bars on `console` (what `scaler.study.runner` draws with)."""

    @contextmanager
    def shown(total: int, done: int, noun: str) -> Iterator[StudyBars]:
        with make_progress(console) as progress:
            yield StudyBars(progress, total, done, noun)

    return shown
