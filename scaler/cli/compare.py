"""`scaler compare`: compound against single-dimension scaling at equal nominal FLOPs (a study
of the `compare` experiment), with a table per phi, a CSV and a plot."""

from __future__ import annotations

import contextlib
import json
import shlex
import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from scaler.cli import options
from scaler.cli.app import Format, app, console
from scaler.cli.options import BASE_OPTIONS, DATA_OPTIONS, TRAIN_OPTIONS, Device, FormatOption, StudyCacheDir, Threads
from scaler.cli.study import check_finished, run_command_study, showing
from scaler.errors import Interrupted, RunError, UsageError, attributed_to
from scaler.experiments.choices import COMPOUND, DEFAULT_STRATEGIES
from scaler.cli.render import Column, counted, elapsed, emit, failure_of, fixed, integer, interval, markdown_text, mega, missing, p_phrase, seconds, share, text
from scaler.scaling import PAPER_ALPHA, PAPER_BETA, PAPER_GAMMA
from scaler.states import State

if TYPE_CHECKING:
    import pandas as pd

    from scaler.experiments.search import SearchFolder

# On a terminal too narrow for the table, the columns left out first (`Column.gives_way`; the
# coefficients together): what is left (strategy, r, MACs, top-1 and the two verdicts) fits 80
# columns, the longest verdicts ('better (p < 0.001)') included.
COLUMNS = [
    Column("strategy", "strategy", text),
    Column("alpha", "alpha", fixed(2), gives_way=5),
    Column("beta", "beta", fixed(3), gives_way=5),
    Column("gamma", "gamma", fixed(3), gives_way=5),
    Column("resolution", "r", integer),
    Column("params", "params", integer, gives_way=3),
    Column("macs", "MACs M", mega, count=True),
    Column("macs_ratio", "MACs ratio", fixed(2), gives_way=4),
    Column("top1", "top-1", share),
    Column("interval", "95% interval", text, gives_way=9),
    Column("repeats", "n", integer, gives_way=2),
    Column("versus_base", "vs base", text),
    Column("versus_compound", "compound vs it", text),
    Column("compound_macs", "compound MACs", text, gives_way=8),
    Column("train_seconds", "s", seconds, gives_way=1),
    Column("state", "state", text, gives_way=10),
]


def _coefficients(text: str) -> tuple[float, float, float]:
    try:
        alpha, beta, gamma = (float(v) for v in text.replace(":", ",").split(","))
    except ValueError:
        raise UsageError(f"--compound {text!r} is malformed; use alpha,beta,gamma, e.g. 1.2,1.1,1.15") from None
    return alpha, beta, gamma


def verdict_text(p: object, word: object) -> str:
    """A duel's verdict and its p-value ('better (p < 0.001)', never 'p = 0.000')."""
    if not word:
        return ""
    if not isinstance(p, float) or missing(p):
        return str(word)
    return f"{word} ({p_phrase(p)})"


def shown(frame: pd.DataFrame) -> pd.DataFrame:
    """Display-only columns: the interval and the two paired tests in words."""
    import pandas as pd
    from scaler.experiments.comparison import BASE

    out = frame.copy()
    out["interval"] = [interval(low, high) for low, high in zip(out["top1_low"], out["top1_high"])]
    out["versus_base"] = [verdict_text(p, w) for p, w in zip(out["vs_base_p"], out["vs_base"])]
    out["versus_compound"] = [verdict_text(p, w) for p, w in zip(out["compound_vs_it_p"], out["compound_vs_it"])]
    out["compound_macs"] = [  # as calibrate's cost; blank without a duel (a results.csv before 2026-12-05 held 1.0 on compound's rows)
        "" if pd.isna(r) or s in (BASE, COMPOUND) else f"{r:.2f}x" for r, s in zip(out["compound_macs_ratio"], out["strategy"])]
    return out


@app.command(
    epilog="Examples:  scaler compare · scaler compare --from searches/NAME --repeats 3 · "
    "scaler compare --base resnet50 --base-width 0.25 --phis 2 · "
    "scaler compare --strategies width,depth,resolution,fast=1.07:1.32:1.035"
)
@options.with_options(BASE_OPTIONS, DATA_OPTIONS, TRAIN_OPTIONS, after="strategy_list")
def compare(
    ctx: typer.Context,
    phis: Annotated[int, typer.Option("--phis", metavar="K", help="Compare at phi = 1, 2, ..., K (nominal FLOPs T^phi): one number, not a range.")] = 3,
    target: Annotated[float, typer.Option(help="T: FLOPs growth per step of phi.")] = 2.0,
    compound: Annotated[Optional[str], typer.Option(help=f"Compound coefficients alpha,beta,gamma (default: the paper's {PAPER_ALPHA},{PAPER_BETA},{PAPER_GAMMA}).")] = None,
    from_search: Annotated[Optional[Path], typer.Option("--from", help="Take compound's coefficients from a finished search folder's best candidate, its base unless --base is given, and the proxy it trained (base size, data, training) for each option not given here.")] = None,
    strategy_list: Annotated[str, typer.Option("--strategies", help="Comma-separated: compound, width, depth, resolution, or name=alpha:beta:gamma (product within 10% of T).")] = ",".join(DEFAULT_STRATEGIES),
    repeats: Annotated[int, typer.Option(help="Trainings per network with independent seeds (all networks of a repeat share its seed); 3 or more give the paired test over repeats some power.")] = 3,
    name: Annotated[Optional[str], typer.Option(help="Comparison name (default: derived from the configuration).")] = None,
    root: Annotated[Path, typer.Option("--root", help="Folder that holds the study folders.")] = Path("searches"),
    storage: Annotated[Optional[str], typer.Option(help="Database URL for the study (default: a journal file in its folder); `scaler worker` can join it.")] = None,
    workers: Annotated[int, typer.Option(help="Local worker processes.")] = 1,
    retry_failed: Annotated[bool, typer.Option("--retry-failed", help="Train failed networks again.")] = False,
    plot: Annotated[Optional[Path], typer.Option(help="Where to draw top-1 against MACs per strategy (default: <folder>/compare.png).")] = None,
    device: Device = "auto",
    threads: Threads = None,
    cache_dir: StudyCacheDir = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Log lines instead of progress bars.")] = False,
    format: FormatOption = Format.table,
    **proxy: Any,
) -> None:
    """Compound scaling against width-, depth- and resolution-only scaling at equal FLOPs.

    Trains the unscaled base and, for phi = 1..K, the base scaled by each strategy (FLOPs grow
    by T^phi for all of them), `--repeats` times each, with the search's proxy training. Prints
    a table per phi (top-1 with its interval; paired tests against the base and of compound
    against each strategy), writes <root>/<name>/results.csv, compare.json and a plot. Running
    the same command again resumes.
    """
    from scaler.experiments.comparison import CompareConfig, Comparison, SUMMARY_NAME, read_comparison, strategies
    from scaler.experiments.search import SearchFolder
    from scaler.plots import check_plot_path
    from scaler.study.create import recorded_spelling
    from scaler.study.results import RESULTS_NAME

    if compound is not None and from_search is not None:
        raise UsageError("--compound and --from both set compound's coefficients; give one")
    said: list[str] = []  # what --from's search tells, printed once the options are all accepted
    searched = None  # the base --from's search scaled, taken where no --base is given
    search = None
    if from_search is not None:
        with attributed_to("from"):
            search = SearchFolder.read(from_search)
            coefficients, said, searched = _from_search(search, proxy["base"] if options.given(ctx, "base") else None)
            said += _searched_proxy(ctx, search, proxy)
        proxy["base"] = searched or proxy["base"]
    else:
        coefficients = _coefficients(compound if compound is not None else f"{PAPER_ALPHA},{PAPER_BETA},{PAPER_GAMMA}")
    taken_data = proxy["data"] if from_search is not None and not options.given(ctx, "data") else None
    with options.recorded_inputs(from_search, base=searched, data=taken_data):
        base, data, train = options.proxy_parts(**proxy)
        if searched and search is not None:
            base.spec()  # found here (a factory imported), or --from's fault; a size it cannot take stays the size's
            search.check_base()  # and the network searched, not another file of its name
    try:
        chosen = strategies(strategy_list, target, coefficients)
    except UsageError as exc:  # compound's coefficients came from --from's search or the default, not --compound
        if exc.param == "compound" and from_search is not None:
            raise UsageError(f"the best candidate of {from_search}: {exc}", param="from") from None
        if exc.param == "compound" and compound is None:  # the paper's coefficients do not fit this --target
            raise UsageError(f"{exc}; give --compound coefficients for T = {target:g} (or --from a search run with --target {target:g})", param="target") from None
        raise
    if search is not None and (other_data := search.data_notice(data.source, data.val_fraction)):
        said.append(other_data)  # once the options are checked: it reads every file's size and time
    config = CompareConfig(
        base=base,
        data=data,
        train=train,
        target=target,
        max_phi=phis,
        strategies=chosen,
    )
    typed_base, typed_data, typed_train = options.proxy_parts(**proxy, canonical=False)
    typed = replace(config, base=typed_base, data=typed_data, train=typed_train)
    kept_before = replace(config, data=config.data.as_kept_before(typed_data.val_fraction))  # see DataOptions.as_kept_before
    config = recorded_spelling([config, typed, kept_before], root=root, name=name, summary_name=Comparison.summary_name)
    if plot is not None:
        check_plot_path(plot)
    name = name if name is not None else config.default_name()  # '' is refused, not the default
    plot_path = plot or root / name / "compare.png"
    try:
        outcome, handle = run_command_study(
            Comparison, config, name=name, root=root, storage=storage, workers=workers,
            settings={"repeats": repeats, "compound_from": str(from_search.resolve()) if from_search is not None else None},
            retry_failed=retry_failed, device=device, threads=threads, cache_dir=cache_dir,
            quiet=quiet or format.is_document, counting="counting networks with fvcore...", said=said,
        )  # fmt: skip
    except Interrupted:  # what finished so far is drawn too, read as `scaler report` reads it
        if (root / name / RESULTS_NAME).exists():
            with contextlib.suppress(UsageError):  # a table that cannot be read leaves the interrupt as it is
                frame = read_comparison(root / name)[0]
                failure_of(lambda: draw(frame, plot_path, name, config.base.num_classes))  # and so does a plot that cannot be written
        raise
    frame, folder = outcome.frame, handle.folder
    with showing(outcome, handle):
        info = json.loads((folder / SUMMARY_NAME).read_text())
        unplotted = failure_of(lambda: draw(frame, plot_path, name, config.base.num_classes))
        drawn = "" if unplotted else f" · plot {plot_path}"
        show_comparison(frame, info, format, name, f"{folder}/results.csv{drawn} · this run {elapsed(outcome.seconds)}")
    if unplotted:
        raise unplotted
    check_finished(frame, "network")
    if not frame.loc[frame["strategy"] == COMPOUND, "state"].map(lambda s: State(s).is_scored).any():
        raise RunError("no compound network finished training: there is nothing to compare; fix the cause, then rerun with --retry-failed")


def _from_search(search: SearchFolder, base: str | None) -> tuple[tuple[float, float, float], list[str], str | None]:
    """Compound's coefficients from a finished search (every candidate finished), the lines
    for stderr (one naming them, its notes, and a warning when `base`, the one given, is not
    the one the search scaled), and the base the search scaled when none is given (None where
    its summary does not say)."""
    from scaler.models import same_variant

    folder = search.folder
    coefficients = search.best_coefficients()
    searched = search.variant()
    taken = f" and its base {searched}" if base is None and searched is not None else ""
    said = [f"compound coefficients from {folder}: ({coefficients[0]:g}, {coefficients[1]:g}, {coefficients[2]:g}){taken}"]
    said += [f"note: {note}" for note in search.best_notes()]
    if base is not None and searched is not None and not same_variant(searched, base):
        said.append(f"warning: {folder} searched base {searched}, this comparison scales {base}")
    return coefficients, said, searched if base is None else None


# Options that go together: one of a group given here, the search's others are not taken
# (--steps beside the search's --epochs is refused; a --val-fraction belongs to its data, a
# --lr to its optimizer).
_TOGETHER = ({"epochs", "steps"}, {"data", "val_fraction"}, {"optimizer", "lr"})


def _searched_proxy(ctx: typer.Context, search: SearchFolder, proxy: dict[str, Any]) -> list[str]:
    """Put into `proxy` the search's own base size, data and training (`option_values`) for
    every option not given here (see _TOGETHER), so that compound is compared on the proxy that
    chose it; and the line naming those that differ from this command's defaults. The base
    itself is `_from_search`'s. Data the search named by a relative path is not taken: where
    it ran is not recorded, and another folder of that name here would be trained on unnoticed."""
    from scaler.data.dataset import CIFAR_PREFIX, SYNTHETIC_SOURCE
    from scaler.experiments.proxy import option_values

    folder, config = search.folder, search.config()
    if config is None:
        return []
    kept = {name for name in proxy if options.given(ctx, name)}
    kept |= {name for group in _TOGETHER if group & kept for name in group}
    taken = {name: value for name, value in option_values(config).items()
             if name != "base" and name not in kept and value != proxy[name]}  # fmt: skip
    source = str(taken.get("data", ""))
    path = source.removeprefix(CIFAR_PREFIX) if source != SYNTHETIC_SOURCE else ""
    if path and not Path(path).expanduser().is_absolute():
        raise UsageError(f"{folder} trained on --data {source}, a path relative to the folder it ran in, which is not "
                         "recorded: give --data (its path from here)", param="from")
    proxy.update(taken)
    flags = options.as_flags(ctx, {name: value for name, value in taken.items() if value is not None})
    return [f"proxy from {folder}, as it trained (options given here win): {shlex.join(flags)}"] if flags else []


def draw(frame: pd.DataFrame, path: Path, name: str, classes: int | None) -> None:
    """The comparison's picture (chance drawn where `classes` is known); RunError when it
    cannot be written."""
    from scaler.plots import plot_comparison

    plot_comparison(frame, path, f"{name}: top-1 against MACs per strategy", classes=classes)


def show_comparison(frame: pd.DataFrame, info: dict, format: Format, name: str, footer: str) -> None:
    """A comparison's results (its table and compare.json) as `format` asks: the tables per
    phi, the tally and `footer` (where the files are); or the CSV or JSON document alone on
    stdout, with the tally beside it on stderr."""
    lines = tally_lines(info) + verdict_notes(frame) + chance_lines(frame, info)
    if origin := info.get("compound_from"):  # where compound came from, for a comparison read later
        alpha, beta, gamma = info["strategies"]["compound"]
        lines.insert(0, f"compound ({alpha:g}, {beta:g}, {gamma:g}) is the best candidate of search {origin}")
    if format in (Format.csv, Format.json):
        emit(frame, [Column(c, c) for c in frame.columns], format.value, console)
        for line in lines:
            print(line, file=sys.stderr)
        return
    show_tables(frame, format, info, name)
    for line in lines:
        say(format, line)
    say(format, footer)


def verdict_notes(frame: pd.DataFrame) -> list[str]:
    """A line for each verdict word in the table that is not a test's outcome
    (`scaler.experiments.comparison.verdict`): what it means."""
    from scaler.experiments.comparison import NO_RESULT, UNKNOWN

    notes = {
        UNKNOWN: f"{UNKNOWN}: a network of the pair stopped at --max-seconds, after fewer epochs than planned (or stored "
                 "no per-image results), so the two are not compared head-on",
        NO_RESULT: f"{NO_RESULT}: a network of the pair finished without a score in every repeat (see its state and "
                   "reason in results.csv)",
    }
    shown = set(frame["vs_base"]) | set(frame["compound_vs_it"])
    return [note for word, note in notes.items() if word in shown]


def chance_lines(frame: pd.DataFrame, info: dict) -> list[str]:
    """A line where the comparison's best finished network (by mean top-1) is not above chance
    (`best_reaches_chance`): every network is then within a guess, and its ties say nothing of the
    strategies (as a search at chance says of its ranking)."""
    import pandas as pd
    from scaler.cli.results import classes_of
    from scaler.experiments.search import length_option
    from scaler.statistics import best_reaches_chance

    done = frame[frame["state"].map(lambda s: State(s).is_scored)]
    if (reached := best_reaches_chance(pd.to_numeric(done["top1"], errors="coerce"), done["top1_low"], classes_of(info))) is None:
        return []
    return [f"the best network is not above chance: {reached}, so its ties tell nothing of the strategies; "
            f"train longer ({length_option(info)}), on more images or at a larger --base-resolution"]


def show_tables(frame: pd.DataFrame, format: Format, info: dict, name: str) -> None:
    """A table per phi, the unscaled base on top of each."""
    import pandas as pd
    from scaler.experiments.comparison import BASE

    display = shown(frame)
    base_row = display[display["strategy"] == BASE]
    for phi in sorted(p for p in display["phi"].unique() if p > 0):
        rows = pd.concat([base_row, display[display["phi"] == phi]])
        emit(
            rows, COLUMNS, format.value, console,
            title=f"{name} · phi = {phi}: nominal FLOPs x{info['config']['target'] ** phi:g}",
            highlight=lambda row: "bold green" if row["strategy"] == COMPOUND else ("dim" if row["strategy"] == BASE else None),
        )  # fmt: skip


def tally_lines(info: dict) -> list[str]:
    """Compound's tally against each single dimension (from compare.json), and a word on the
    duels whose measured MACs differ and on those of one network."""
    tally, unequal = info.get("tally", {}), info.get("unequal_macs", 0)
    duels = sum(tally.values())
    test = "t-test of seed and validation-image noise" if info.get("repeats", 1) >= 2 else "McNemar on the validation images, validation noise only"
    same = [f"{d['strategy']} at phi {d['phi']}" for d in info.get("compound_vs_single", []) if d.get("same_network")]
    same_line = [f"compound builds the very network of {', '.join(same)} (the same resolution, parameters and MACs, as rounding "
                 "made them): such a duel compares a network with itself, trained with the same seeds, and its tie says nothing "
                 "of compound"] if same else []
    if not duels:  # only compound and custom strategies were asked for
        return ["compound against a single dimension: no duel (this comparison has no width-, depth- or resolution-only strategy)",
                *same_line]
    lines = [f"compound against a single dimension, {counted(duels, 'duel')} ({test}, 95%): " + ", ".join(f"{word} in {n}" for word, n in tally.items())]
    if unequal:
        equal = info.get("tally_equal_macs")  # absent from comparisons made before it was written
        at_equal = "" if equal is None else (
            f"; at equal MACs ({counted(duels - unequal, 'duel')}): " + ", ".join(f"{word} in {n}" for word, n in equal.items()) if equal
            else "; no duel is at equal MACs"
        )  # fmt: skip
        lines.append(f"{unequal} of the {duels} duels are not at equal measured MACs (more than 10% apart; 'compound MACs' column, compound_macs_ratio in CSV and JSON): "
                     f"rounding gives compound more or less compute than nominal; read them against MACs in the plot{at_equal}")
    return lines + same_line


def say(format: Format, text: str) -> None:
    """A line after the tables: a paragraph of its own in markdown, one unbroken line on the
    terminal (a pipe's 80 columns would cut it mid-sentence)."""
    if format is Format.markdown:
        print(f"{markdown_text(text)}\n")
    else:
        console.print(text, highlight=False, soft_wrap=True)
