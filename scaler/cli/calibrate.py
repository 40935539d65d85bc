"""`scaler calibrate`: does the search's cheap ranking predict the ranking under longer
training? (A study of the `calibration` experiment.)"""

from __future__ import annotations

import inspect
import json
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from scaler.cli import options
from scaler.cli import search as search_command
from scaler.cli.app import Format, app, console
from scaler.cli.options import BASE_OPTIONS, DATA_OPTIONS, SPACE_OPTIONS, EPOCH_TRAIN_OPTIONS, Device, FormatOption, StudyCacheDir, Threads
from scaler.cli.search import build_search_config
from scaler.cli.study import check_finished, run_command_study, showing
from scaler.cli.results import classes_of
from scaler.experiments.choices import DEFAULT_FACTOR, DEFAULT_K
from scaler.candidates import point_name
from scaler.files import whole_numbers
from scaler.cli.render import Column, counted, elapsed, emit, failure_of, fixed, integer, markdown_text, missing, p_phrase, p_value, seconds, text

if TYPE_CHECKING:
    import pandas as pd

# Options of `scaler calibrate` that are not the search's to repeat in the recommended command.
NOT_SEARCH_OPTIONS = {"name", "storage", "repeats", "format", "quiet", "retry_failed"}

SETTING_COLUMNS = [
    Column("mark", ""),
    Column("label", "setting", text),
    Column("epochs", "epochs", integer),
    Column("train_images", "images", integer),
    Column("base_resolution", "base r", integer, gives_way=4),
    Column("base_width", "base w", fixed(3), gives_way=3),
    Column("cost", "cost", lambda v: "" if missing(v) else f"{v:.2f}x"),
    Column("train_seconds", "s", seconds, gives_way=1),
    Column("scored", "scored", integer),  # candidates scored under both: "n" counts repeats elsewhere
    Column("spearman_text", "Spearman [95%]", text),
    Column("spearman_p", "p", p_value),
    Column("kendall_text", "Kendall [95%]", text, gives_way=2),
    Column("reliability_text", "repeats agree [range]", text),
    Column("pairs_text", "pairs kept", text),
]


@app.command(
    epilog="Examples:  scaler calibrate --epochs 3 --try epochs=1 --try train-images=500 --try base-resolution=48 · "
    "scaler calibrate --candidates 8 --reference-epochs 30 --repeats 3 · "
    "scaler calibrate --data ./images --reference-train-images 20000 --train-images 5000 --try epochs=1,base-width=0.25 · "
    "scaler calibrate --storage postgresql+psycopg2://scaler@db/scaler --name cal-b0   # then `scaler worker --study cal-b0` elsewhere"
)
@options.with_options(SPACE_OPTIONS, BASE_OPTIONS, DATA_OPTIONS, EPOCH_TRAIN_OPTIONS, after="ctx")
def calibrate(
    ctx: typer.Context,
    candidates: Annotated[int, typer.Option("--candidates", help="How many candidates to train, spread over the search's set: the largest alpha, beta and gamma, then the points farthest from those picked (at least 3).")] = DEFAULT_K,
    reference_factor: Annotated[Optional[float], typer.Option(help=f"The reference trains this many times the proxy's --epochs, to the nearest whole epoch (a half rounds up), on the same data (default {DEFAULT_FACTOR:g}).")] = None,
    reference_epochs: Annotated[Optional[int], typer.Option(help="The reference's epochs (instead of --reference-factor).")] = None,
    reference_train_images: Annotated[Optional[int], typer.Option(help="The reference's training images (default: the proxy's); the proxy and the tries train on the first of them.")] = None,
    tries: Annotated[Optional[list[str]], typer.Option("--try", metavar="KEY=VALUE[,KEY=VALUE]", help="A cheaper setting to compare; keys epochs, train-images, base-resolution, base-width (repeatable). Asked of an existing calibration, a try is added to it and only its own trainings run.")] = None,
    repeats: Annotated[int, typer.Option(help="Trainings per candidate and setting with independent seeds (the search's seeds); raising it on an existing calibration trains only the missing repeats.")] = 2,
    name: Annotated[Optional[str], typer.Option(help="Calibration name (default: derived from the configuration).")] = None,
    root: Annotated[Path, typer.Option("--root", help="Folder that holds the study folders.")] = Path("searches"),
    storage: Annotated[Optional[str], typer.Option(help="Database URL for the study (default: a journal file in its folder); `scaler worker` can join it there.")] = None,
    workers: Annotated[int, typer.Option(help="Local worker processes.")] = 1,
    retry_failed: Annotated[bool, typer.Option("--retry-failed", help="Train failed trainings again.")] = False,
    plot: Annotated[Optional[Path], typer.Option(help="Picture of each setting's top-1 against the reference's (default: <folder>/calibration.png).")] = None,
    device: Device = "auto",
    threads: Threads = None,
    cache_dir: StudyCacheDir = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Log lines instead of progress bars.")] = False,
    format: FormatOption = Format.table,
    **proxy: Any,
) -> None:
    """Check a search's proxy: train a few candidates under it and under a longer reference,
    and measure how well the two rankings agree (Spearman, Kendall, 95% bootstrap intervals;
    with --repeats 2 or more, how many of the pairs the reference tells apart keep its order).

    With --try, cheaper settings are measured too; the cheapest one whose Spearman with the
    reference is at least 0.8 at p < 0.05 (never with 3 candidates) is recommended, as the
    `scaler search` command to run. Writes
    <root>/<name>/results.csv (one row per setting and candidate), calibration.json and the
    plot. Running the same command again resumes, and with another --try adds that setting
    and trains only it; `scaler worker` can join a database study.
    """
    from scaler.experiments.calibration import Calibration, CalibrationConfig, SUMMARY_NAME, parse_try, reference_setting
    from scaler.plots import check_plot_path

    if plot is not None:
        check_plot_path(plot)
    settings = tuple(parse_try(t) for t in tries or ())
    search = build_search_config(**proxy, steps=None, max_seconds=None)
    reference = reference_setting(search, reference_factor, reference_epochs, reference_train_images)
    config = CalibrationConfig(search=search, reference=reference, k=candidates, tries=settings).resumable(
        root, name, reference_train_images, proxy["tolerance"], proxy["val_fraction"])
    outcome, handle = run_command_study(
        Calibration, config, name=name if name is not None else config.name_under(root), root=root, storage=storage, workers=workers,
        settings={"repeats": repeats}, retry_failed=retry_failed, device=device, threads=threads, cache_dir=cache_dir,
        quiet=quiet or format.is_document, counting="counting the candidates' networks with fvcore...",
    )  # fmt: skip
    folder = handle.folder
    with showing(outcome, handle):
        info = json.loads((folder / SUMMARY_NAME).read_text())
        plot = plot or folder / "calibration.png"
        unplotted = failure_of(lambda: draw(outcome.frame, plot, handle.name, classes_of(info)))
        show_calibration(outcome.frame, info, format, folder, None if unplotted else plot, search_commands(ctx, info),
                         f"this run {elapsed(outcome.seconds)}")
    if unplotted:
        raise unplotted
    check_finished(outcome.frame, "setting-candidate pair")


def draw(table: pd.DataFrame, path: Path, name: str, classes: int | None) -> None:
    """The calibration's picture (chance drawn where `classes` is known); RunError when it
    cannot be written."""
    from scaler.plots import plot_calibration

    plot_calibration(table, path, title=name, classes=classes)


def show_calibration(table: pd.DataFrame, info: dict, format: Format, folder: Path, plot: Path | None,
                     commands: list[str] | None, when: str = "") -> None:
    """A calibration's results (its table and calibration.json) as `format` asks: one row per
    setting with its caption (`when`: a note for the title) and the recommendation; or the CSV
    or JSON document alone on stdout, with the recommendation beside it on stderr. `commands`:
    each setting's `scaler search` command, where the options given to calibrate are known.
    A reference at chance is said below the recommendation (`reference_at_chance`)."""
    from scaler.experiments.calibration import reference_at_chance

    frame = setting_frame(info, commands)
    advice = recommendation_line(frame, whole_set=has_whole_set(info),
                                 repeats=int(info.get("repeats") or 2))
    if chance := reference_at_chance(table, classes_of(info)):
        advice += "\n" + chance
    if format in (Format.csv, Format.json):
        emit(frame.drop(columns=["mark", "spearman_text", "kendall_text", "reliability_text", "pairs_text"]), SETTING_COLUMNS, format.value, console)
        print(advice, file=sys.stderr)
        return
    title = f"Calibration {info['name']}: {len(info['candidates'])} candidates x {counted(info['repeats'], 'repeat')}"
    emit(
        frame, SETTING_COLUMNS, format.value, console, caption="\n".join(caption_lines(info, table, folder, plot)),
        title=f"{title}, {when}" if when else title, highlight=lambda row: "bold green" if row["mark"] else None,
    )  # fmt: skip
    if format is Format.markdown:  # paragraphs as written, the command as code
        advice = "\n\n".join(f"`{line.strip()}`" if line.startswith("  scaler ") else markdown_text(line) for line in advice.splitlines())
    print(advice)


def _interval(value: Any, low: Any, high: Any) -> str:
    if value is None:
        return "undefined"
    bounds = "" if low is None or high is None else f" [{low:.2f}, {high:.2f}]"
    return f"{value:.2f}{bounds}"


def setting_frame(info: dict, commands: list[str] | None) -> pd.DataFrame:
    """One row per setting from the summary, with display columns and its `scaler search`
    (no command column where `commands` is None)."""
    import pandas as pd

    frame = pd.DataFrame(info["settings"])
    frame.insert(0, "mark", ["★ recommended" if r else "" for r in frame["recommended"]])
    frame["spearman_text"] = [
        "reference" if s["role"] == "reference" else _interval(s["spearman"], s["spearman_low"], s["spearman_high"]) for s in info["settings"]
    ]  # fmt: skip
    frame["kendall_text"] = [
        "" if s["role"] == "reference" else _interval(s["kendall"], s["kendall_low"], s["kendall_high"]) for s in info["settings"]
    ]  # fmt: skip
    frame["reliability_text"] = [
        "" if info["repeats"] < 2 else _interval(s.get("reliability"), s.get("reliability_low"), s.get("reliability_high"))
        for s in info["settings"]
    ]  # fmt: skip
    frame["pairs_text"] = [_pairs(s) for s in info["settings"]]
    if commands is not None:  # each with the setting's overrides
        frame["command"] = commands
    else:
        frame["flags"] = [_flags(s.get("overrides") or {}, info["repeats"]) for s in info["settings"]]
    frame = frame.drop(columns=["overrides"], errors="ignore")
    # counts that only some rows have: 2 in CSV and JSON, not 2.0
    return whole_numbers(frame, ["compared", "pairs_apart", "pairs_tested", "pairs_judged", "pairs_kept"])


def _pairs(setting: dict) -> str:
    """'A of T apart' for the reference, 'K of N' for the others; blank when not measured."""
    if setting["role"] == "reference":
        apart = setting.get("pairs_apart")
        return "" if apart is None else f"{apart} of {setting['pairs_tested']} apart"
    judged = setting.get("pairs_judged")
    return "" if judged is None else f"{setting['pairs_kept']} of {judged}"


def caption_lines(info: dict, table: pd.DataFrame, folder: Path, plot: Path | None) -> list[str]:
    """The lines under a calibration's table: which candidates (named by their points, from
    its results `table`), where the files are, what the marks mean and how far the figures
    can be believed."""
    from scaler.experiments.calibration import THRESHOLD
    from scaler.statistics import LEVEL

    points = {int(r["candidate"]): point_name(r["alpha"], r["beta"], r["gamma"]) for _, r in table.iterrows()}
    picked = ", ".join(points.get(c, f"#{c}") for c in info["candidates"])
    asked = info["config"].get("k", DEFAULT_K)
    more = f" (--candidates {asked} asked for more)" if asked > len(info["candidates"]) else ""
    which = f"all {len(info['candidates'])} of the search's set{more}" if has_whole_set(info) else "of the search's set"
    return [
        " · ".join([f"{folder}/results.csv", f"candidates {picked} {which}", *([f"plot {plot}"] if plot else [])]),
        "cost: MACs x epochs x training images over the candidates, relative to the proxy's; s: measured training seconds",
        f"Spearman and Kendall of each setting's mean top-1 with the reference's, 95% bootstrap intervals over candidates; "
        f"p: how often rankings unrelated to the reference's agree as well (permutations of the candidates); "
        f"★ the cheapest setting with Spearman >= {THRESHOLD:g} at p < {1 - LEVEL:.2g}; undefined: fewer than 3 candidates scored under both, "
        "or one of them scores all alike",
        "repeats agree: split-half Spearman of the setting's own ranking between two halves of its repeats (with --repeats 2 "
        "or more), the median and 2.5-97.5% range over random splits; the reference's says how stable the target itself is",
        "pairs kept: of the pairs of candidates the reference tells apart (mean top-1 differs at p < 0.05 for each pair, "
        "the seed's noise included; with --repeats 2 or more), how many the setting orders as the reference does",
    ]


def has_whole_set(info: dict) -> bool:
    """Whether a calibration (its calibration.json) trains every candidate of the search's set,
    so asking for more --candidates cannot help. A calibration made before the set's size was
    stored tells it only where --candidates asked for more than it got."""
    picked = len(info["candidates"])
    size = info.get("set_size")
    return picked >= size if size is not None else info["config"].get("k", DEFAULT_K) > picked


def recommendation_line(frame: pd.DataFrame, whole_set: bool = False, repeats: int = 2) -> str:
    """The setting to use as a `scaler search` command, or why there is none (`whole_set`: the
    calibration already has all of the search's candidates, so more cannot be asked for); and
    a warning when the reference disagrees with itself (a Spearman with it then says little):
    where the agreement Spearman-Brown predicts for two rankings of all its `repeats` from its
    split-half figure is below the threshold (a half of the repeats ranks less reliably than
    the whole reference every setting is measured against)."""
    import pandas as pd
    from scaler.experiments.calibration import THRESHOLD, keeps_threshold
    from scaler.statistics import LEVEL, spearman_brown

    chosen = frame[frame["recommended"]]
    measured = frame[(frame["role"] != "reference") & frame["spearman"].notna()]
    if not len(measured):
        lines = [
            "no agreement could be measured: the reference or every setting scored fewer than 3 candidates, "
            "or scored them all alike (see the state column of results.csv)"
        ]
    elif not len(chosen):
        lines = [f"no setting keeps Spearman >= {THRESHOLD:g} with the reference beyond chance (p < {1 - LEVEL:.2g}): "
                 "trust the proxy's ranking less" + (" or train it longer" if whole_set else
                                                     ", train it longer, or calibrate on more --candidates where the search's set has more")]
    else:
        row = chosen.iloc[0]
        lines = [
            f"recommended ({row['label']}, Spearman {row['spearman_text']} over {int(row.get('compared', row['scored']))} candidates, "
            f"{p_phrase(row['spearman_p'])}; a wide interval is weak evidence):\n  {_search_to_run(row)}"
        ]
    reference = frame[frame["role"] == "reference"].iloc[0]
    split_half = reference.get("reliability")
    whole = spearman_brown(split_half, repeats) if pd.notna(split_half) else None
    if pd.notna(split_half) and (whole is None or not keeps_threshold(whole)):
        predicted = f"; about {whole:.2f} for all {repeats} of them, by Spearman-Brown" if whole is not None else ""
        lines.append(
            f"the reference's own repeats agree at only {reference['reliability_text']} (split-half Spearman{predicted}, below {THRESHOLD:g}): "
            "its ranking is itself uncertain, so any setting's Spearman with it says little; "
            "a longer reference (--reference-factor), more --repeats or candidates farther apart would help"
        )
        pairs = _pairs_line(reference, frame[frame["role"] == "proxy"].iloc[0])
        lines += [pairs] if pairs else []
    return "\n".join(lines)


def _flags(overrides: dict, repeats: int) -> str:
    """What a setting's `scaler search` adds to the options calibrate was given: its overrides,
    and --repeats where the agreement was measured on means over repeats."""
    from scaler.experiments.calibration import override_text

    flags = [f"--{flag} {override_text(value)}" for flag, value in overrides.items()]
    return " ".join(flags + (["--repeats", str(repeats)] if repeats > 1 else []))


def _search_to_run(setting: pd.Series) -> str:
    """The setting's `scaler search` command; where the options given to calibrate are not
    known (a calibration read back from its folder), the flags it adds to them."""
    if "command" in setting:
        return str(setting["command"])
    given = "the search options this calibration was given"
    return (f"{given}, with {setting['flags']}" if setting["flags"] else f"{given}, unchanged") + \
        " (the `scaler calibrate` command that made it prints the whole command)"


def _pairs_line(reference: pd.Series, proxy: pd.Series) -> str:
    """What the reference can still tell, and how much of it the proxy keeps ('' when unmeasured)."""
    import pandas as pd
    from scaler.statistics import LEVEL

    if pd.isna(reference.get("pairs_apart")) or pd.isna(proxy.get("pairs_judged")):
        return ""
    apart, tested = int(reference["pairs_apart"]), int(reference["pairs_tested"])
    if apart == 0:
        return f"the reference tells none of its {tested} pairs of candidates apart (p < {1 - LEVEL:.2g} for each)"
    judged, kept = int(proxy["pairs_judged"]), int(proxy["pairs_kept"])
    which = f"{kept}" if judged == apart else f"{kept} of the {judged} it scored"
    return (f"the reference tells {apart} of its {tested} pairs of candidates apart (p < {1 - LEVEL:.2g} for each); "
            f"the proxy orders {which} as the reference does")


def search_commands(ctx: typer.Context, info: dict) -> list[str]:
    """Per setting: the `scaler search` command that runs it: the search options given to this
    command, with the setting's overrides."""
    from scaler.experiments.calibration import OVERRIDES

    shared = [p for p in inspect.signature(search_command.search).parameters if p not in NOT_SEARCH_OPTIONS]
    given = {name: ctx.params[name] for name in shared if name in ctx.params and options.given(ctx, name)}
    out = []
    for setting in info["settings"]:
        values = {**given, **{OVERRIDES[flag]: value for flag, value in setting["overrides"].items()}}
        args = ["scaler", "search", *options.as_flags(ctx, {name: values[name] for name in shared if name in values})]
        if info["repeats"] > 1:  # the agreement was measured on means over this many repeats
            args += ["--repeats", str(info["repeats"])]
        out.append(shlex.join(args))
    return out
