"""`scaler worker`: join a study kept in a database from any machine and work on it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Optional

import typer

from scaler.cli import options
from scaler.cli.app import app, progress_console
from scaler.cli.options import CacheDir, ProcessDevice, ProcessThreads
from scaler.cli.progress import study_bars
from scaler.cli.study import check_finished
from scaler.errors import Interrupted, UsageError
from scaler.states import still_to_train


# The study's options that name something outside it (a file, a folder), which a worker in
# another folder or on another machine may not find.
STUDY_INPUTS = ("data", "base")


@app.command(
    epilog="Examples:  scaler worker --storage postgresql+psycopg2://scaler@db/scaler --study b0-phi1 --device cuda:0 · "
    "scaler worker --storage $URL --study NAME --folder searches/NAME"
)
def worker(
    storage: Annotated[str, typer.Option(envvar="SCALER_STORAGE", show_envvar=True, help="The study's database URL (as given to the --storage of `scaler search`, `compare` or `calibrate`).")],
    study: Annotated[str, typer.Option(help="Name of the study (search, comparison or calibration).")],
    device: ProcessDevice = "auto",
    threads: ProcessThreads = None,
    cache_dir: CacheDir = None,
    folder: Annotated[Optional[Path], typer.Option(help="Also refresh the study's results.csv and summary (search.json, compare.json or calibration.json) in this folder.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Log lines instead of progress bars.")] = False,
) -> None:
    """Join an existing study (a search, comparison or calibration) from any machine and
    train its work until none is left.

    The configuration comes from the storage, so no other flags are needed.
    """
    from scaler.study.create import join_study
    from scaler.study.engine import worker_id
    from scaler.study.runner import run_worker
    from scaler.study.storage import is_url
    from scaler.study.trials import count_finished, records

    if not is_url(storage):
        raise UsageError(
            f"storage {storage!r} is not a database URL: a search folder's journal belongs to its "
            "`scaler search` (use --workers N there); share a study between machines through PostgreSQL",
            param="storage",
        )
    run_on = options.runtime(device, threads, cache_dir)
    log, _ = options.logger(quiet)
    with _as_given_to_the_study():
        # checked here as its command checked it: a relative --base or --data is read from this
        # worker's folder, and a study that cannot run here must not record its items as failed
        handle = join_study(storage, study, folder)
        handle.experiment.config.validate()
    try:
        with _as_given_to_the_study():
            trained = run_worker(handle, runtime=run_on, log=log, display=None if quiet else study_bars(progress_console))
    except KeyboardInterrupt:
        noun = handle.experiment.noun
        try:  # a Ctrl-C may be what ended a wait on an unreachable database: then the count is left out
            done = f"{count_finished(handle)} of {len(handle.experiment.items())} {noun}s of study {study!r} finished; "
        except Exception:  # noqa: BLE001 - the interruption is what this command reports
            done = ""
        raise Interrupted(
            f"{done}any {noun} this worker had begun goes back to the study's queue; the same command joins it again"
        ) from None
    log(f"worker {worker_id()}: ran {trained} work item(s); none left")
    frame = handle.experiment.table(records(handle))
    if not still_to_train(frame["state"]):  # the study is done: its verdict, as its own command gives it
        check_finished(frame, handle.experiment.noun)


@contextmanager
def _as_given_to_the_study() -> Iterator[None]:
    """A study's --data or --base at fault here is the study's, as its command gave it (this
    command has no such option)."""
    try:
        yield
    except UsageError as exc:
        if exc.param not in STUDY_INPUTS:
            raise
        raise UsageError(f"the study's --{exc.param}, as its command was given it: {exc}") from None
