"""How a search's ranked results are shown: columns, the best row (★) and the paper's point (◆)."""

from __future__ import annotations

import sys
from collections import Counter
from typing import TYPE_CHECKING

from scaler.cli.app import Format, console
from scaler.scaling import PAPER_ALPHA, PAPER_BETA, PAPER_GAMMA, is_paper_point
from scaler.files import whole_numbers
from scaler.cli.render import Column, emit, fixed, integer, interval, mega, seconds, share, text
from scaler.states import State, still_to_train

if TYPE_CHECKING:
    import pandas as pd

PRODUCT_HEADER = "a*b²*g²"  # alpha * beta^2 * gamma^2, the compound FLOPs factor

SEARCH_COLUMNS = [
    Column("rank", "rank", integer),
    Column("mark", ""),
    Column("candidate", "#", integer, gives_way=6),  # the number progress lines give it (#5 a=2 b=1 g=1)
    Column("alpha", "alpha", fixed(2)),
    Column("beta", "beta", fixed(2)),
    Column("gamma", "gamma", fixed(3)),
    Column("product", PRODUCT_HEADER, fixed(3), gives_way=5),
    Column("resolution", "r", integer),
    Column("params", "params", integer, gives_way=8),
    Column("macs", "MACs M", mega, count=True),
    Column("macs_ratio", "ratio", fixed(2), gives_way=7),
    Column("top1", "top-1", share),
    Column("interval", "95% interval", text),
    Column("repeats", "n", integer, gives_way=9),
    Column("top5", "top-5", share, gives_way=1),
    Column("val_loss", "val loss", fixed(3), gives_way=2),
    Column("train_seconds", "s", seconds, gives_way=4),
    Column("images_per_s", "img/s", fixed(0), gives_way=3),
    Column("state", "state", text, gives_way=10),
    Column("reason", "reason", text),
]


def legend(frame: pd.DataFrame, fmt: Format = Format.table) -> str:
    """The marks a table of `frame` shows, each named once: ★ where a row is complete, ≈ where
    one is tied with it, ◆ where the paper's point is a row; "" when no row carries a mark, and
    beside a csv or json document, which has no marks (its `rank` and `tied_with_best` say it)."""
    marks = " ".join(marked(frame)["mark"]) if len(frame) and fmt not in (Format.csv, Format.json) else ""
    parts = [("★", "★ best"), ("≈", "≈ tied with it"), ("◆", f"◆ the paper's ({PAPER_ALPHA:g}, {PAPER_BETA:g}, {PAPER_GAMMA:g})")]
    return " · ".join(name for symbol, name in parts if symbol in marks)


def marked(frame: pd.DataFrame) -> pd.DataFrame:
    """Add display-only columns: 'mark' (★ the best complete row, ≈ rows the data cannot tell
    from it, ◆ the paper's point) and 'interval' (top-1's 95% interval)."""
    from scaler.reports import truth

    shown = frame.copy()
    best = shown.index[shown["state"] == State.COMPLETE.value]
    marks = []
    for i, row in shown.iterrows():
        mark = "★ best" if len(best) and i == best[0] else ("≈ tied" if truth(row.get("tied_with_best")) else "")
        marks.append(f"{mark} ◆ paper".strip() if is_paper_point(row["alpha"], row["beta"], row["gamma"]) else mark)
    shown.insert(1, "mark", marks)
    shown["interval"] = [interval(row.get("top1_low"), row.get("top1_high")) for _, row in shown.iterrows()]
    return shown


def unfinished_line(frame: pd.DataFrame) -> str | None:
    """A warning for a search table with candidates still to train: its best is the best so
    far, which the rest may change. None when every row is finished."""
    waiting = waiting_line(frame, "candidate")
    if waiting is None:
        return None
    best = "its best is the best so far, which they may change; " if (frame["state"] == State.COMPLETE.value).any() else ""
    return f"unfinished: {waiting}; {best}the search's own command finishes it"


def waiting_line(frame: pd.DataFrame, noun: str) -> str | None:
    """How many rows of a study's table are still to train, by state ('2 of 5 networks still
    to train (1 interrupted, 1 queued)'); None when every row is finished."""
    waiting = still_to_train(frame["state"])
    if not waiting:
        return None
    counts = ", ".join(f"{n} {s}" for s, n in Counter(waiting).most_common())
    return f"{len(waiting)} of {len(frame)} {noun}s still to train ({counts})"


def search_title(info: dict) -> str:
    """A search's table title from its summary: its name, phi and T, and the proxy's base
    (variant as given, width, resolution), where the summary says them: a table read later, or
    beside another family's, names what was searched."""
    space = (info.get("config") or {}).get("space") or {}
    title = f"Search {info['name']}"
    if "phi" in space and "target" in space:
        title += f": phi={space['phi']:g}, T={space['target']:g}"
    if base := base_words(info):
        title += f" on {base}"
    return title


def classes_of(info: dict) -> int | None:
    """How many classes a study's summary says its networks tell apart (a search's or a
    comparison's base, a calibration's search's); None where it does not say."""
    config = info.get("config") or {}
    base = config.get("base") or (config.get("search") or {}).get("base") or {}
    classes = base.get("num_classes")
    return int(classes) if isinstance(classes, int) and classes > 0 else None


def base_words(info: dict) -> str | None:
    """The proxy's base a study's summary records, as 'b0 w0.5 at 64px'; None where it does not."""
    base = (info.get("config") or {}).get("base") or {}
    if not {"variant", "width", "resolution"} <= base.keys():
        return None
    return f"{base['variant']} w{base['width']:g} at {base['resolution']}px"


def reliability_lines(info: dict, shown: pd.DataFrame | None = None) -> list[str]:
    """What the summary says about how far the ranking can be believed, in plain words; with
    `shown`, a part of the table (the Pareto front), also how many of the ties it holds."""
    from scaler.experiments.search import at_chance, length_option, survivors_note

    reliability = info.get("reliability")
    tied = info.get("tied_best") or []
    lines = [note for note in (at_chance(info), survivors_note(info)) if note]
    complete = int(info.get("states", {}).get(State.COMPLETE.value, len(tied)))
    if info.get("best") and complete == 1:  # no tie, no ranking to trust or doubt
        if info.get("candidates") == 1:
            surface = ((info.get("config") or {}).get("space") or {}).get("mode") == "surface"  # solves gamma: no --tolerance
            widen = "widen the alpha and beta ranges" if surface else "widen the ranges or raise --tolerance"
            return [*lines, f"one candidate: the search has nothing to rank it against; {widen} "
                            "(`scaler candidates` lists the candidates of a space)"]
        return [*lines, "no other candidate completed, so no tie with the best could be tested"]
    if tied:
        noise = "validation and seed noise" if info.get("repeats", 1) >= 2 else "validation images only"
        others = max(0, complete - 1)  # the rows a tie was tested on
        in_part = ""
        if shown is not None and len(tied) > 1:
            best = int(info["best"]["candidate"]) if info.get("best") else None
            here = sum(int(c) in tied and int(c) != best for c in shown["candidate"])
            in_part = f"; {here} of them shown here"
        lines.append(f"≈ tied with the best: {len(tied) - 1} of the {others} other complete candidate(s) the data cannot tell from it ({noise}, 95%){in_part}")
    elif info.get("best"):
        lines.append("ties with the best: unknown (these runs stored no per-image results; runs from scaler 0.2 on do)")
    if reliability:
        from scaler.statistics import spearman_brown

        value, low, high = reliability["spearman"], reliability["low"], reliability["high"]
        repeats = int(info.get("repeats") or 2)
        whole = spearman_brown(value, repeats)
        predicted = f"; two searches of {repeats} repeats would agree at about {whole:.2f} (Spearman-Brown)" if whole is not None else ""
        lines.append(f"ranking reliability (split-half Spearman over {repeats} repeats): {value:.2f} [{low:.2f}, {high:.2f}]{predicted}")
        if whole is None or whole < 0.5:
            lines.append(
                "the ranking is mostly noise: two halves of the repeats order the candidates differently; "
                f"more --repeats, more {length_option(info)} or more --train-images would help"
            )
    elif info.get("repeats", 1) >= 2:
        lines.append("ranking reliability: undefined (too few candidates with 2 repeats, or the halves score them all alike)")
    else:
        lines.append("one run per candidate: intervals and ties come from the validation sample only; --repeats 3 measures seed noise and ranking reliability")
    return lines


def show_results(frame: pd.DataFrame, fmt: Format, title: str, caption: str | None = None) -> None:
    """Print a search's ranked table: marked and formatted for people, every column for programs
    (the document alone on stdout, the caption's lines beside it on stderr)."""
    from scaler.study.results import INTEGER_COLUMNS

    if fmt in (Format.csv, Format.json):  # every column, the counts as integers, as results.csv has them
        emit(whole_numbers(frame, INTEGER_COLUMNS), SEARCH_COLUMNS, fmt.value, console)
        if caption:
            print(caption, file=sys.stderr)
        return
    emit(
        marked(frame), SEARCH_COLUMNS, fmt.value, console, title=title, caption=caption,
        highlight=lambda row: "bold green" if row["mark"].startswith("★") else ("yellow" if "◆" in row["mark"] else None),
    )  # fmt: skip
