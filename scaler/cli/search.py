"""`scaler search`: the compound-scaling grid search (a study of the `search` experiment)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from scaler.cli import options
from scaler.cli.app import Format, app
from scaler.cli.options import BASE_OPTIONS, DATA_OPTIONS, SPACE_OPTIONS, TRAIN_OPTIONS, Device, FormatOption, StudyCacheDir, Threads
from scaler.cli.results import legend, reliability_lines, search_title, show_results
from scaler.cli.study import check_finished, run_command_study, showing
from scaler.experiments.choices import PRUNERS
from scaler.cli.render import counted, elapsed

if TYPE_CHECKING:
    from scaler.experiments.search import SearchConfig


@app.command(
    epilog="Examples:  scaler search --phi 1 · scaler search --pruner halving --epochs 6 · "
    "scaler search --data ./images --base-resolution 96 --workers 2 · "
    "scaler search --storage postgresql+psycopg2://scaler@db/scaler --name b0-phi1   # then `scaler worker` elsewhere"
)
@options.with_options(SPACE_OPTIONS, BASE_OPTIONS, DATA_OPTIONS, TRAIN_OPTIONS)
def search(
    pruner: Annotated[str, typer.Option(metavar="|".join(PRUNERS), help="none, halving (successive halving) or hyperband, on val top-1 per epoch.")] = "none",
    name: Annotated[Optional[str], typer.Option(help="Search name (default: derived from the configuration).")] = None,
    root: Annotated[Path, typer.Option("--root", help="Folder that holds the search folders.")] = Path("searches"),
    storage: Annotated[Optional[str], typer.Option(help="Database URL for the study, e.g. postgresql://user@host/db (password in ~/.pgpass, or --storage \"$SCALER_STORAGE\"; default: a journal file in the search folder).")] = None,
    workers: Annotated[int, typer.Option(help="Local worker processes.")] = 1,
    repeats: Annotated[int, typer.Option(help="Trainings per candidate with independent seeds; raising it on an existing search trains only the missing repeats.")] = 1,
    retry_failed: Annotated[bool, typer.Option("--retry-failed", help="Train failed candidates again.")] = False,
    device: Device = "auto",
    threads: Threads = None,
    cache_dir: StudyCacheDir = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Log lines instead of progress bars.")] = False,
    format: FormatOption = Format.table,
    **proxy: Any,
) -> None:
    """Grid-search (alpha, beta, gamma) under alpha*beta^2*gamma^2 ~= T with proxy trainings.

    Writes <root>/<name>/results.csv (ranked) and search.json as every candidate starts and ends. Running
    the same command again resumes: finished candidates are kept, interrupted ones retrained.
    """
    from scaler.experiments.search import CompoundSearch, SUMMARY_NAME

    as_typed = build_search_config(**proxy, pruner=pruner, canonical=False)
    config = build_search_config(**proxy, pruner=pruner).resumable(root, name, as_typed)
    if config.pruner in ("halving", "hyperband") and (one := _one_epoch(config)):
        options.note(f"--pruner {pruner} stops a training between its epochs: with {one} it stops none")
    outcome, handle = run_command_study(
        CompoundSearch, config, name=name if name is not None else config.default_name(), root=root, storage=storage, workers=workers,
        settings={"repeats": repeats}, retry_failed=retry_failed, device=device, threads=threads, cache_dir=cache_dir,
        quiet=quiet or format.is_document, counting="counting candidates with fvcore...",
    )  # fmt: skip
    frame, folder = outcome.frame, handle.folder
    with showing(outcome, handle):
        info = json.loads((folder / SUMMARY_NAME).read_text())
        caption = "\n".join([
            " · ".join(filter(None, [
                f"{folder}/results.csv", f"{counted(len(frame), 'candidate')} x {info['repeats']} repeat(s)", f"this run {elapsed(outcome.seconds)}",
                legend(frame, format), "top-1 (mean over repeats) on the proxy's validation split",
            ])),
            *reliability_lines(info),
        ])
        show_results(frame, format, search_title(info), caption)
    check_finished(frame, "candidate")


def _one_epoch(config: SearchConfig) -> str | None:
    """How the trainings come to one epoch, where they do (--epochs 1, or --steps that fit in
    one epoch of the training images); None otherwise, or where the count is not known yet."""
    train = config.train
    if train.steps is None:
        return "--epochs 1" if train.epochs == 1 else None
    images = config.data.training_images()
    if images is None or train.planned_epochs(images) > 1:
        return None
    return f"--steps {train.steps} (an epoch of {images} images is {counted(train.steps_per_epoch(images), 'step')})"


def build_search_config(
    *, phi: float, mode: str, alpha_range: str, beta_range: str, gamma_range: str, target: float, tolerance: float,
    flops_tolerance: Optional[float], pruner: str = "none", **proxy: Any,
) -> SearchConfig:
    """The search's flags (`options.SPACE_OPTIONS` and the proxy's groups) as a SearchConfig;
    what `scaler search` and `scaler calibrate` share."""
    from scaler.experiments.search import SearchConfig

    canonical = proxy.get("canonical", True)
    space = options.space(mode=mode, alpha_range=alpha_range, beta_range=beta_range, gamma_range=gamma_range,
                          target=target, tolerance=tolerance, phi=phi, with_note=canonical)  # checked first, as the flags come
    base, data, train = options.proxy_parts(**proxy)
    return SearchConfig(
        space=space.canonical() if canonical else space,
        base=base,
        data=data,
        train=train,
        pruner=pruner,
        flops_tolerance=flops_tolerance,
    )
