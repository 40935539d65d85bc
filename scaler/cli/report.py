"""`scaler report`: re-render a study's results from its folder (a search's with a plot, a
comparison's or a calibration's), or compare two searches."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from scaler.cli.app import Format, app, console
from scaler.cli.options import FormatOption
from scaler.cli.render import Column, emit, fixed, integer, interval, missing, p_phrase, share, text, to_json
from scaler.cli.calibrate import draw as draw_calibration, show_calibration
from scaler.cli.compare import draw as draw_comparison, show_comparison
from scaler.cli.results import base_words, classes_of, legend, reliability_lines, search_title, show_results, unfinished_line, waiting_line
from scaler.errors import UsageError
from scaler.states import State, still_to_train
from scaler.files import json_ready

if TYPE_CHECKING:
    import pandas as pd
    from scaler import reports


COMPARE_COLUMNS = [
    Column("alpha", "alpha", fixed(2)),
    Column("beta", "beta", fixed(2)),
    Column("gamma", "gamma", fixed(3)),
    Column("resolution", "r", integer),
    Column("rank_a", "rank A", integer),
    Column("top1_a", "top-1 A", share),
    Column("interval_a", "95% A", text),
    Column("rank_b", "rank B", integer),
    Column("top1_b", "top-1 B", share),
    Column("interval_b", "95% B", text),
    Column("difference", "B - A pts", lambda v: "" if missing(v) else f"{v * 100:+.1f}"),  # top-1 points
]


@app.command(
    epilog="Examples:  scaler report searches/NAME · scaler report searches/NAME --pareto --format markdown · "
    "scaler report searches/NAME --plot search.png · scaler report searches/SEED0 searches/SEED1 · "
    "scaler report searches/COMPARISON · scaler report searches/CALIBRATION --format json"
)
def report(
    folders: Annotated[list[Path], typer.Argument(metavar="FOLDER", help="A study folder: a search's, a comparison's or a calibration's (holds results.csv and search.json, compare.json or calibration.json); give two search folders to compare them.")],
    pareto: Annotated[bool, typer.Option("--pareto", help="Keep only rows no other beats on both top-1 and MACs.")] = False,
    plot: Annotated[Optional[Path], typer.Option(help="Write a picture: top-1 (with 95% intervals) against MACs with the Pareto front, and a heat map of mean top-1 over (alpha, beta).")] = None,
    format: FormatOption = Format.table,
) -> None:
    """Re-render a study's results from its folder (a search, a comparison or a calibration:
    the tables its command prints, from the files, training nothing), or compare two searches
    of the same candidates (two seeds, two machines, two training settings): rank
    correlations, best vs best."""
    from scaler import reports
    from scaler.experiments.search import read_results
    from scaler.plots import check_plot_path, plot_search
    from scaler.study.experiment import kind_in, summary_names
    from scaler.study.results import RESULTS_NAME
    from scaler.study.storage import JOURNAL_NAME

    if len(folders) > 2:
        raise UsageError(f"report takes one search folder, or two to compare; got {len(folders)}", param="folders")
    if len(folders) == 2 and (plot is not None or pareto):
        raise UsageError("--plot and --pareto show one study folder; to compare two searches, drop them")
    if plot is not None:
        check_plot_path(plot)
    if len(folders) == 2:
        _compare(folders[0], folders[1], format)
        return
    folder = folders[0]
    kind = kind_in(folder)
    if kind is None and folder.is_dir() and not (folder / JOURNAL_NAME).is_file():  # no study of any kind
        lacks = " or ".join([RESULTS_NAME] * (not (folder / RESULTS_NAME).exists()) + ["summary"])
        raise UsageError(f"{folder} is not a study folder: it holds no {lacks} (a study folder holds {RESULTS_NAME} and "
                         f"one of {' / '.join(summary_names())}, as a search, a calibration or a comparison writes them)")
    if kind in OTHER_KINDS:
        if pareto:
            raise UsageError(f"--pareto takes a search folder; {folder} is a {kind} folder")
        OTHER_KINDS[kind](folder, plot, format)
        return
    frame, info = read_results(folder)
    shown = reports.pareto_front(frame) if pareto else frame
    if plot is not None:
        plot_search(frame, plot, title=search_title(info), classes=classes_of(info))  # RunError when it cannot be written
        print(f"plot written to {plot}", file=sys.stderr)  # a log line: stdout holds the table alone
    states = ", ".join(f"{n} {s}" for s, n in info.get("states", {}).items())
    caption = "\n".join(filter(None, [
        " · ".join(filter(None, [f"{folder}/results.csv", states, legend(shown, format),
                                 ("Pareto front of finished candidates" + ("" if len(shown) else ": none has finished")) if pareto else ""])),
        unfinished_line(frame),
        *reliability_lines(info, shown if pareto else None),
    ]))
    show_results(shown.reset_index(drop=True), format, search_title(info), caption)  # as the search titled it


def _comparison(folder: Path, plot: Optional[Path], format: Format) -> None:
    """A compare folder's tables and tally, as `scaler compare` prints them."""
    from scaler.experiments.comparison import read_comparison

    frame, info = read_comparison(folder)
    if plot is not None:
        draw_comparison(frame, plot, info["name"], classes_of(info))
        print(f"plot written to {plot}", file=sys.stderr)
    show_comparison(frame, info, format, info["name"], f"{folder}/results.csv" + (f" · plot {plot}" if plot else ""))
    _warn_unfinished(frame, "network")


def _calibration(folder: Path, plot: Optional[Path], format: Format) -> None:
    """A calibration folder's table and recommendation, as `scaler calibrate` prints them (the
    recommended setting named by its flags: the options calibrate was given are not stored)."""
    from scaler.experiments.calibration import read_calibration

    frame, info = read_calibration(folder)
    if plot is not None:
        draw_calibration(frame, plot, info["name"], classes_of(info))
        print(f"plot written to {plot}", file=sys.stderr)
    show_calibration(frame, info, format, folder, plot, commands=None)
    _warn_unfinished(frame, "setting-candidate pair")


def _warn_unfinished(frame: pd.DataFrame, noun: str) -> None:
    """A warning on stderr when rows of a study's table are still to train: its figures are
    partial (a search's table says so in its caption, `unfinished_line`)."""
    if waiting := waiting_line(frame, noun):
        print(f"warning: unfinished: {waiting}; the figures are partial, and the command that made the folder finishes it",
              file=sys.stderr)


# The kinds of study folder other than a search's that `report` renders, by kind name.
OTHER_KINDS = {"compare": _comparison, "calibration": _calibration}


def _agreement_fields(comparison: reports.SearchComparison) -> dict:
    """The rank agreement for JSON: each correlation with its 95% bootstrap bounds, and the
    permutation p-value (all null where the agreement is undefined)."""
    fields: dict = {"spearman_p": comparison.spearman_p}
    for name, value in (("spearman", comparison.spearman), ("kendall", comparison.kendall)):
        point, low, high = value if value is not None else (None, None, None)
        fields |= {name: point, f"{name}_low": low, f"{name}_high": high}
    return fields


def shown_compare_columns(frame: pd.DataFrame) -> list[Column]:
    """The side-by-side table's columns, with each side's state where a row of either is not
    complete: a timed-out or pruned row's top-1 is from a shorter training, not a match."""
    import pandas as pd

    states = pd.concat([frame["state_a"], frame["state_b"]]).dropna()
    if (states == State.COMPLETE.value).all():
        return COMPARE_COLUMNS
    columns = []
    for column in COMPARE_COLUMNS:  # each side's state after its interval
        columns.append(column)
        if column.key.startswith("interval_"):
            side = column.key.removeprefix("interval_")
            columns.append(Column(f"state_{side}", f"state {side.upper()}", text))
    return columns


def _compare(folder_a: Path, folder_b: Path, format: Format) -> None:
    from scaler import reports
    from scaler.experiments.search import read_results

    (frame_a, info_a), (frame_b, info_b) = read_results(folder_a), read_results(folder_b)
    comparison = reports.compare_searches(frame_a, frame_b)
    if format is Format.csv:  # one table, the rows, on stdout; the figures beside it on stderr
        emit(comparison.frame, COMPARE_COLUMNS, format.value, console)
        print("\n".join(_compare_lines(comparison, folder_a, folder_b, info_a, info_b, frame_a, frame_b)), file=sys.stderr)
        return
    if format is Format.json:
        print(json.dumps(json_ready({
            "a": str(folder_a),
            "b": str(folder_b),
            "shared": comparison.shared,
            "scored": comparison.scored,
            "other_networks": comparison.other_networks,  # points both trained, as other networks: not compared
            **_agreement_fields(comparison),
            "best": comparison.best_lines,
            # candidates still to train on each side: where > 0, that side's best is the best so far
            "unfinished": {"a": len(still_to_train(frame_a["state"])), "b": len(still_to_train(frame_b["state"]))},
            "candidates": json.loads(to_json(comparison.frame)),  # the rows as `emit` writes them
        }), indent=2))
        return
    shown = comparison.frame.copy()
    for side in ("a", "b"):
        shown[f"interval_{side}"] = [interval(lo, hi) for lo, hi in zip(shown[f"top1_low_{side}"], shown[f"top1_high_{side}"])]
        shown[f"state_{side}"] = shown[f"state_{side}"].fillna("")
    emit(shown, shown_compare_columns(comparison.frame), format.value, console, title="Two searches, candidate by candidate",
         caption="\n".join(_compare_lines(comparison, folder_a, folder_b, info_a, info_b, frame_a, frame_b)))


def _other_bases(info_a: dict, info_b: dict) -> str:
    """': A's base is X, B's Y' where two searches' summaries record other proxy bases."""
    a, b = base_words(info_a), base_words(info_b)
    return f": A's base is {a}, B's {b}" if a and b and a != b else ""


def _ties_line(frame: pd.DataFrame) -> list[str]:
    """A word where either search scores candidates complete in both alike: the rank columns
    order equal top-1s by MACs, the correlations count them as ties, so ranks that read the
    same in both columns can come with a Spearman below 1."""
    both = frame[(frame["state_a"] == State.COMPLETE.value) & (frame["state_b"] == State.COMPLETE.value)]
    tied = [f"{side} {int(top1.duplicated(keep=False).sum())}" for side, top1 in (("A", both["top1_a"]), ("B", both["top1_b"]))
            if top1.duplicated().any()]
    return [f"equal top-1s ({', '.join(tied)} candidates share one with another): the rank columns order them by MACs, "
            "the correlations count them as ties"] if tied else []


def _compare_lines(comparison: reports.SearchComparison, folder_a: Path, folder_b: Path, info_a: dict, info_b: dict,
                   frame_a: pd.DataFrame, frame_b: pd.DataFrame) -> list[str]:
    """What the rows of two searches add up to: the searches, the rank agreement, where each
    best stands in the other, a best not above chance, and what is unfinished."""
    from scaler.experiments.search import at_chance

    named = [f"{side} = {folder}" + ("" if info["name"] == folder.name else f" ({info['name']})")  # a study named apart from its folder
             for side, folder, info in (("A", folder_a, info_a), ("B", folder_b, info_b))]
    lines = [f"{', '.join(named)}; {comparison.shared} candidates in both, {comparison.scored} complete in both"
             + (f"; {comparison.other_networks} point(s) of both were trained as other networks (another resolution, "
                f"width, depth or size{_other_bases(info_a, info_b)}), so are not compared (report compares searches of one "
                "proxy; `scaler calibrate` compares proxies)" if comparison.other_networks else "")
             + ("; A and B are one folder, so they agree by construction" if folder_a.resolve() == folder_b.resolve() else "")]
    if comparison.spearman is not None and comparison.kendall is not None:
        (rho, rho_low, rho_high), (tau, tau_low, tau_high) = comparison.spearman, comparison.kendall
        lines.append(
            f"rank agreement over {comparison.scored} candidates: Spearman {rho:.2f} [{rho_low:.2f}, {rho_high:.2f}], "
            f"Kendall {tau:.2f} [{tau_low:.2f}, {tau_high:.2f}] (95% bootstrap over candidates); "
            f"unrelated rankings agree as well with {p_phrase(comparison.spearman_p)}"
        )
        lines += _ties_line(comparison.frame)
    else:
        why = (f"only {comparison.scored} candidate(s) complete in both, and it takes 3" if comparison.scored < 3
               else "one search scores them all alike")
        lines.append(f"rank agreement: undefined ({why})")
    lines += comparison.best_lines
    lines += [f"{side}: {chance}" for side, info in (("A", info_a), ("B", info_b)) if (chance := at_chance(info))]
    lines += [f"{side} {line}" for side, frame in (("A", frame_a), ("B", frame_b)) if (line := unfinished_line(frame))]
    return lines
