"""How a search's ranked results are shown: columns, the best row (★) and the paper's point (◆)."""

from __future__ import annotations

import pandas as pd

from scaler.cli.app import Format, console
from scaler.experiments.search import is_paper_point
from scaler.render import Column, emit, fixed, integer, share, text
from scaler.states import State

SEARCH_COLUMNS = [
    Column("rank", "rank", integer),
    Column("mark", ""),
    Column("alpha", "alpha", fixed(2)),
    Column("beta", "beta", fixed(2)),
    Column("gamma", "gamma", fixed(3)),
    Column("product", "a*b²*g²", fixed(3)),
    Column("resolution", "r", integer),
    Column("params", "params", integer),
    Column("macs", "MACs M", lambda v: f"{v / 1e6:.1f}"),
    Column("macs_ratio", "ratio", fixed(2)),
    Column("top1", "top-1", share),
    Column("top5", "top-5", share),
    Column("val_loss", "val loss", fixed(3)),
    Column("train_seconds", "s", fixed(0)),
    Column("images_per_s", "img/s", fixed(0)),
    Column("state", "state", text),
    Column("reason", "reason", text),
]


def marked(frame: pd.DataFrame) -> pd.DataFrame:
    """Add a display-only 'mark' column: ★ the best complete row, ◆ the paper's point."""
    shown = frame.copy()
    best = shown.index[shown["state"] == State.COMPLETE.value]
    marks = ["◆ paper" if is_paper_point(row) else "" for _, row in shown.iterrows()]
    if len(best):
        marks[best[0]] = ("★ best " + marks[best[0]]).strip()
    shown.insert(1, "mark", marks)
    return shown


def show_results(frame: pd.DataFrame, fmt: Format, title: str, caption: str | None = None) -> None:
    if fmt in (Format.csv, Format.json):
        emit(frame, SEARCH_COLUMNS, fmt.value, console)
        return
    emit(
        marked(frame), SEARCH_COLUMNS, fmt.value, console, title=title, caption=caption,
        highlight=lambda row: "bold green" if row["mark"].startswith("★") else ("yellow" if row["mark"] else None),
    )  # fmt: skip
