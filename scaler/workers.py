"""Running a search: this process as the only worker, or N local worker processes.

The library pieces (reconcile, work, write_outputs) live in `scaler.search`; this module
drives them for the command line, with progress shown through `scaler.progress`.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from optuna.trial import TrialState
from rich.console import Console

from scaler.progress import SearchBars, describe, make_progress
from scaler.search import (
    SearchHandle,
    WorkerEvents,
    dataset_for,
    estimate_seconds,
    join_search,
    count_finished,
    reconcile,
    with_runtime,
    work,
    write_outputs,
)

MAX_ROUNDS = 3  # rounds of local workers; a round after the first retrains candidates of dead workers


@dataclass(frozen=True)
class SearchOutcome:
    frame: pd.DataFrame
    seconds: float
    finished: int
    interrupted: bool


def _threads_per_worker(workers: int, threads: int | None, log: Callable[[str], None]) -> int | None:
    cores = os.cpu_count() or 1
    per_worker = threads if threads is not None else (None if workers == 1 else max(1, cores // workers))
    if workers * (per_worker or cores) > cores:
        log(f"warning: {workers} worker(s) x {per_worker or cores} thread(s) on {cores} cores: they will compete")
    return per_worker


def _events(bars: SearchBars | None, log: Callable[[str], None]) -> WorkerEvents:
    if bars is not None:
        return WorkerEvents(bars.on_start, bars.on_step, bars.on_epoch, bars.on_finish)

    def finished(candidate, state: str, reason: str) -> None:  # noqa: ANN001
        log(f"{describe(candidate)}: {state}{' (' + reason + ')' if reason else ''}")

    return WorkerEvents(on_start=lambda c: log(f"{describe(c)}: training"), on_finish=finished)


def run_search(
    handle: SearchHandle,
    *,
    workers: int,
    device: str | None,
    threads: int | None,
    cache_dir: Path | None,
    retry_failed: bool,
    quiet: bool,
    log: Callable[[str], None],
    progress_console: Console,
) -> SearchOutcome:
    """Reconcile, estimate, train what is left (in-process or in worker processes), write."""
    start = time.perf_counter()
    plan = reconcile(handle, retry_failed=retry_failed)
    dataset = dataset_for(handle, cache_dir)
    if dataset.skipped:
        log(f"warning: skipped {dataset.skipped} unreadable image file(s) in {dataset.source}")
    write_outputs(handle)
    if plan.interrupted:
        log(f"{plan.interrupted} candidate(s) interrupted last time will be trained again")
    if plan.failed:
        log(f"{len(plan.failed)} failed candidate(s) stay failed (--retry-failed trains them again)")
    per_worker = _threads_per_worker(workers, threads, log)
    train_config = with_runtime(handle.config.train, device, per_worker)
    seconds, images_per_s = estimate_seconds(handle, dataset, train_config, plan.queued)
    log(
        f"search {handle.name}: {plan.total} candidates, {plan.finished} already finished, "
        f"{len(plan.queued)} to train on {len(dataset.train)} + {len(dataset.val)} images; "
        f"estimated {seconds / max(1, min(workers, len(plan.queued) or 1)) / 60:.1f} min "
        f"(measured {images_per_s:.0f} img/s on the median candidate)"
    )
    interrupted = False
    try:
        if plan.queued and workers == 1:
            with make_progress(progress_console, disable=quiet) as progress:
                bars = None if quiet else SearchBars(progress, plan.total, plan.total - len(plan.queued), train_config.planned_epochs(len(dataset.train)))
                work(handle, dataset, train_config, _events(bars, log))
        elif plan.queued:
            _run_processes(handle, workers, device, per_worker, cache_dir, quiet, log, progress_console)
    except KeyboardInterrupt:
        interrupted = True
    frame = write_outputs(handle)
    return SearchOutcome(frame, time.perf_counter() - start, count_finished(handle), interrupted)


def _worker_process(storage_url: str, name: str, folder: Path | None, device: str | None, threads: int | None, cache_dir: Path | None) -> None:
    """Body of one local worker process: join the study and work until the queue is empty."""
    try:
        handle = join_search(storage_url, name, folder)
        dataset = dataset_for(handle, cache_dir)
        work(handle, dataset, with_runtime(handle.config.train, device, threads))
    except KeyboardInterrupt:  # the parent reports the interruption; no traceback per worker
        raise SystemExit(130) from None


def _run_processes(
    handle: SearchHandle,
    workers: int,
    device: str | None,
    threads: int | None,
    cache_dir: Path | None,
    quiet: bool,
    log: Callable[[str], None],
    progress_console: Console,
) -> None:
    context = multiprocessing.get_context("spawn")
    total = len(handle.candidates)
    with make_progress(progress_console, disable=quiet) as progress:
        bars = None if quiet else SearchBars(progress, total, count_finished(handle), handle.config.train.epochs)
        for round_number in range(MAX_ROUNDS):
            processes = [
                context.Process(
                    target=_worker_process,
                    args=(handle.storage_url, handle.name, handle.folder, device, threads, cache_dir),
                    name=f"scaler-worker-{i}",
                )
                for i in range(workers)
            ]
            for process in processes:
                process.start()
            try:
                last = -1
                while any(p.is_alive() for p in processes):
                    done = count_finished(handle)
                    running = [
                        f"#{t.user_attrs.get('candidate', '?')} epoch {max(t.intermediate_values, default=0)}"
                        for t in handle.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
                    ]
                    if bars is not None:
                        bars.set_counts(done, "running: " + ", ".join(running) if running else "")
                    elif done != last:
                        log(f"{done}/{total} candidates finished; running: {', '.join(running) or 'none'}")
                    last = done
                    time.sleep(1.0)
            except KeyboardInterrupt:
                for process in processes:  # workers mark their candidates interrupted, then exit
                    process.join(timeout=30)
                for process in processes:
                    if process.is_alive():
                        process.terminate()
                        process.join()
                raise
            for process in processes:
                process.join()
            lost = [p.name for p in processes if p.exitcode != 0]
            if lost:
                log(f"warning: worker(s) {', '.join(lost)} ended abnormally")
            if not handle.exclusive:
                return
            plan = reconcile(handle)  # candidates of dead workers go back in the queue
            if not plan.queued:
                return
            log(f"round {round_number + 2}: retraining {len(plan.queued)} candidate(s) left by dead workers")


def run_worker(
    handle: SearchHandle,
    *,
    device: str | None,
    threads: int | None,
    cache_dir: Path | None,
    quiet: bool,
    log: Callable[[str], None],
    progress_console: Console,
) -> int:
    """`scaler worker`: train candidates of a joined search until none are left."""
    dataset = dataset_for(handle, cache_dir)
    train_config = with_runtime(handle.config.train, device, threads)
    log(f"joined search {handle.name}: {len(handle.candidates)} candidates; data {dataset.fingerprint[:12]}")
    with make_progress(progress_console, disable=quiet) as progress:
        bars = None if quiet else SearchBars(progress, len(handle.candidates), count_finished(handle), train_config.planned_epochs(len(dataset.train)))
        trained = work(handle, dataset, train_config, _events(bars, log), write_results=handle.folder is not None)
    if handle.folder is not None:
        write_outputs(handle)
    return trained
