"""What the study commands (search, compare, calibrate) share: check the flags, create or
resume the study, run it to the end, and judge how it ended."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from scaler import entry, process
from scaler.cli import options
from scaler.cli.app import progress_console
from scaler.cli.progress import study_bars
from scaler.errors import Interrupted, RunError, UsageError
from scaler.states import State

if TYPE_CHECKING:
    import pandas as pd
    from scaler.study.experiment import Experiment, ExperimentConfig
    from scaler.study.handle import StudyHandle
    from scaler.study.runner import RunOutcome


def run_command_study(
    kind: type[Experiment], config: ExperimentConfig, *, name: str, root: Path, storage: Optional[str], workers: int,
    settings: dict, retry_failed: bool, device: str, threads: Optional[int], cache_dir: Optional[Path], quiet: bool,
    counting: str, said: Sequence[str] = (),
) -> tuple[RunOutcome, StudyHandle]:
    """Check the flags, then create or resume the study `name` under `root` and run it to the
    end (Interrupted on Ctrl-C, with how to resume); `counting` is what the spinner says while
    a new study is planned, `said` lines for stderr once the study is open (notes on what it
    runs: a refused command prints its error alone). What the study commands share."""
    from scaler.train_config import check_repeats
    from scaler.study.create import open_study, validate_name
    from scaler.study.lock import folder_lock
    from scaler.runtime import check_workers
    from scaler.study.runner import run_study
    from scaler.study.storage import check_url

    above = next((p for p in (root, *root.parents) if p.exists()), None)  # the part of the path that exists
    if above is not None and not above.is_dir():
        what = "is a file" if above == root else f"lies under a file, {above}"
        raise UsageError(f"root {root} {what}; give a folder (it is created if missing)", param="root")
    run_on = options.runtime(device, threads, cache_dir or root / ".cache")
    config.validate()  # everything checked before the study folder is created
    if "repeats" in settings:
        check_repeats(settings["repeats"])
    check_workers(workers)
    if storage is not None:
        check_url(storage)
    validate_name(name)
    # scipy.stats (about 1 s) imported with Ctrl-C held back: an import cut short leaves scipy half
    # made, and the table written on the way out failed with a NameError instead of saying how to resume
    process.held_back(lambda: importlib.import_module("scipy.stats"))
    folder = root / name
    log, status = options.logger(quiet)
    with folder_lock(folder):
        with status(counting):
            handle = open_study(kind, config, folder=folder, storage_url=storage, name=name, settings=settings)
        options.say_notes()  # every option accepted: what they do not use
        for line in said:
            print(line, file=sys.stderr)
        outcome = run_study(
            handle, workers=workers, runtime=run_on, retry_failed=retry_failed, log=log,
            display=None if quiet else study_bars(progress_console), fresh_process=entry.STARTED_FOR_ONE_COMMAND,
        )  # fmt: skip
    if outcome.interrupted:
        raise Interrupted(_how_to_go_on(outcome, handle))
    return outcome, handle


def _how_to_go_on(outcome: RunOutcome, handle: StudyHandle) -> str:
    """What a Ctrl-C says: what finished, and that the same command resumes, or, once all
    had finished (the last table being made), that it shows the results."""
    noun, folder = handle.experiment.noun, handle.folder
    if outcome.finished == outcome.total:
        return f"all {outcome.total} {noun}s had finished; the same command shows the results (in {folder})"
    kept = f"results so far in {folder}" if folder.exists() else "nothing written to its folder yet"  # a database study's folder holds only outputs
    return f"{outcome.finished} of {outcome.total} {noun}s finished; resume with the same command ({kept})"


@contextmanager
def showing(outcome: RunOutcome, handle: StudyHandle) -> Iterator[None]:
    """Around what a study command does once its study has run (tables, plots): a Ctrl-C there
    says what finished and how to go on, as one during the study does, not a bare
    'interrupted'."""
    try:
        yield
    except KeyboardInterrupt:
        raise Interrupted(_how_to_go_on(outcome, handle)) from None


# What to do when time-capped trainings left nothing complete: the cap is part of the configuration.
NO_TIME_LEFT = ("give --max-seconds more room (or drop it) and run again under a new --name "
                "(the cap is part of the configuration, so this name refuses another)")


def check_finished(frame: pd.DataFrame, noun: str) -> None:
    """RunError when no row of a study's table was scored (all failed), some are unfinished, or
    none completed (every one stopped by the time cap or a pruner)."""
    from scaler.experiments.repeats import diverged_only

    unfinished = frame[[not State(s).is_finished for s in frame["state"]]]
    scored = frame[[State(s).is_scored for s in frame["state"]]]
    if len(unfinished) == 0 and len(scored) == 0:
        reasons = frame["reason"].replace("", None).dropna()
        # A diverged training (a study's failure "diverged: ...") diverges again with the same
        # settings (it is seeded); others, e.g. a lower --lr, are another configuration, which
        # the same --name refuses.
        diverged = len(reasons) == len(frame) and all(map(diverged_only, reasons))
        advice = ("other training settings (a lower --lr, say) are another configuration: run them "
                  "without --name or under a new one") if diverged else "fix the cause, then rerun with --retry-failed"
        raise RunError(
            f"no {noun} finished: all {len(frame)} failed"
            + (f" (first: {reasons.iloc[0]})" if len(reasons) else "")
            + f"; {advice}"
        )
    if len(unfinished):
        raise RunError(
            f"{len(unfinished)} {noun}(s) still {', '.join(sorted(set(unfinished['state'])))}; "
            "run the same command again to finish them"
        )
    if not (frame["state"] == State.COMPLETE.value).any():  # all stopped early: nothing to rank
        counts = ", ".join(f"{n} {s}" for s, n in frame["state"].value_counts().items())
        raise RunError(
            f"no {noun} completed ({counts}): a ranking needs complete trainings; "
            + (NO_TIME_LEFT if (frame["state"] == State.TIMEOUT.value).any() else "run again without --pruner under a new --name")
        )
