"""Rendering frames for people (rich tables, markdown) and for programs (CSV, JSON).

CSV and JSON carry the frame's exact values (integers stay integers; in CSV a whole-number
column shown as an integer is written as one even beside blanks); the table and markdown
formats apply each column's display format.
"""

from __future__ import annotations

import json
import math
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rich import box
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table

from scaler.errors import RunError
from scaler.files import json_ready, whole_numbers

if TYPE_CHECKING:  # frames come from the library, which imports pandas
    import pandas as pd


@dataclass(frozen=True)
class Column:
    """How one frame column is shown: its header and a formatter for a single value; `count`:
    whole numbers (shown as integers, or as MACs in G), which CSV and JSON write as integers
    even where pandas holds them as floats (default: the columns shown with `integer`);
    `gives_way`: on a terminal too narrow for the table, the order in which the column is
    left out (1 first; None: always shown)."""

    key: str
    header: str
    fmt: Callable[[object], str] = str
    count: bool | None = None
    gives_way: int | None = None

    @property
    def whole(self) -> bool:
        return self.fmt is integer if self.count is None else self.count


def missing(value: object) -> bool:
    """A blank cell: None or NaN."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def integer(value: object) -> str:
    return "" if missing(value) else f"{int(value):,}"


def mega(value: object) -> str:
    """Millions with one decimal; under 10 M, three significant digits (a tiny network's
    0.0456 M read '0.0', and two such networks looked equally cheap)."""
    if missing(value):
        return ""
    millions = value / 1e6  # type: ignore[operator]
    return f"{millions:.1f}" if millions == 0 or abs(millions) >= 9.995 else f"{millions:#.3g}"


def giga(value: object) -> str:
    """Billions with four decimals; under 0.1 G, three significant digits (a proxy's stages
    read 0.0003 and 0.0004 G, one digit each)."""
    if missing(value):
        return ""
    billions = value / 1e9  # type: ignore[operator]
    if billions == 0 or abs(billions) >= 0.09995:
        return f"{billions:.4f}"
    digits = 2 - math.floor(math.log10(abs(float(f"{billions:.3g}"))))  # fixed point: 0.0000138, not 1.38e-05
    return f"{billions:.{digits}f}"


def fixed(digits: int) -> Callable[[object], str]:
    return lambda value: "" if missing(value) else f"{value:.{digits}f}"


def seconds(value: object) -> str:
    """A column of training times: tenths under 10 s, where whole seconds would read 0 or 1
    for a tiny proxy's runs, whole seconds above."""
    if missing(value):
        return ""
    return f"{value:.1f}" if value < 9.95 else f"{value:.0f}"  # type: ignore[operator]


def percent(value: object) -> str:
    """A signed share ('+4.6%'); one that rounds to zero reads '0.0%', not '-0.0%'."""
    if missing(value):
        return ""
    shown = f"{value * 100:+.1f}%"  # type: ignore[operator]
    return "0.0%" if shown in ("+0.0%", "-0.0%") else shown


def share(value: object) -> str:
    return "" if missing(value) else f"{value * 100:.1f}%"


def interval(low: object, high: object) -> str:
    """A share's 95% interval as 'low-high%' (empty where a bound is missing)."""
    return "" if missing(low) or missing(high) else f"{low * 100:.1f}-{high * 100:.1f}%"  # type: ignore[operator]


def p_value(p: object) -> str:
    """A p-value as '0.016', or '<0.001' (never '0.000', which would claim certainty)."""
    if missing(p):
        return ""
    return "<0.001" if p < 0.001 else f"{p:.3f}"  # type: ignore[operator]


def p_phrase(p: object) -> str:
    """A p-value in a sentence: 'p = 0.016', 'p < 0.001'."""
    shown = p_value(p)
    return f"p < {shown[1:]}" if shown.startswith("<") else f"p = {shown}"


def counted(n: int, noun: str) -> str:
    """'1 candidate', '6 candidates': a count with its noun in the number it takes."""
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def elapsed(seconds: float) -> str:
    """A measured span to the second ('48 s', '6 min 02 s'): the wall time a command took.
    Estimates use `scaler.study.runner.duration`, whose rounding says they are approximate."""
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


def published(unit: str) -> Callable[[object], str]:
    """A published figure as the papers print it: at least two significant digits, more where
    the figure has them (0.39B, 0.70B, 1.0B, 19B, 4.09B, 25.6M)."""
    scale = {"B": 1e9, "M": 1e6}[unit]

    def fmt(value: object) -> str:
        if missing(value):
            return ""
        digits = f"{value / scale:g}"  # type: ignore[operator]
        if len(digits.replace(".", "").lstrip("0")) < 2 and "e" not in digits:
            digits += "0" if "." in digits else ".0"
        return f"{digits}{unit}"

    return fmt


def text(value: object) -> str:
    return "" if missing(value) else str(value)


def to_json(frame: pd.DataFrame) -> str:
    """Records with exact values: integers stay integers; NaN and infinities, which JSON
    cannot hold, become null."""
    return json.dumps(json_ready(frame.to_dict(orient="records")), indent=2)


def markdown_text(text: str) -> str:
    """`text` as a markdown renderer shows it as written: a*b^2*g^2 is not emphasis, a | in a
    cell does not split it."""
    return re.sub(r"([\\`*_\[\]<>|~])", r"\\\1", text)


def to_markdown(frame: pd.DataFrame, columns: list[Column]) -> str:
    """A markdown table of `columns`, each value in its display format and escaped."""
    lines = [
        "| " + " | ".join(markdown_text(c.header) for c in columns) + " |",
        "|" + "|".join("---" for _ in columns) + "|",
    ]
    for _, row in frame.iterrows():
        lines.append("| " + " | ".join(markdown_text(c.fmt(row[c.key])) for c in columns) + " |")
    return "\n".join(lines)


def rich_table(
    frame: pd.DataFrame,
    columns: list[Column],
    *,
    title: str | None = None,
    caption: str | None = None,
    highlight: Callable[[pd.Series], str | None] | None = None,
) -> Table:
    """A rich Table; `highlight(row)` may return a style for a row (e.g. the best one)."""
    import pandas as pd

    table = Table(
        title=title,
        caption=caption,
        caption_justify="left",
        header_style="bold",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    for column in columns:
        numeric = pd.api.types.is_numeric_dtype(frame[column.key]) if column.key in frame else False
        table.add_column(column.header, justify="right" if numeric else "left")
    for _, row in frame.iterrows():
        style = highlight(row) if highlight else None
        table.add_row(*(column.fmt(row[column.key]) for column in columns), style=style)
    return table


def emit(
    frame: pd.DataFrame,
    columns: list[Column],
    fmt: str,
    console: Console,
    *,
    title: str | None = None,
    caption: str | None = None,
    highlight: Callable[[pd.Series], str | None] | None = None,
) -> None:
    """Print `frame` in `fmt`: table, csv, json or markdown."""
    if fmt == "csv":
        sys.stdout.write(whole_numbers(frame, [c.key for c in columns if c.whole]).to_csv(index=False))
    elif fmt == "json":
        print(to_json(whole_numbers(frame, [c.key for c in columns if c.whole])))
    elif fmt == "markdown":  # blocks apart by blank lines: a line right after a table is one of its rows
        if title:
            print(f"**{markdown_text(title)}**\n")
        print(to_markdown(frame, columns), end="\n\n")
        if caption:
            print(f"{markdown_text(caption)}\n")
    else:
        table = rich_table(frame, columns, title=title, caption=caption, highlight=highlight)
        if console.is_terminal and _natural_width(console, table) > console.width:
            table = _fitted(frame, columns, console, title, caption, highlight) or table
        # Never squeeze numbers into ellipses: widen past a narrow (or piped) console instead.
        if (natural := _natural_width(console, table)) > console.width:
            console = Console(file=console.file, width=natural, markup=False)  # data, never styles
        console.print(table)


def _fitted(frame: pd.DataFrame, columns: list[Column], console: Console, title: str | None, caption: str | None,
            highlight: Callable[[pd.Series], str | None] | None) -> Table | None:
    """The table with columns left out until it fits the terminal: the empty ones first, then
    those that give way, in their order (columns of one `gives_way` together); the caption
    names the left-out ones that held values. None where even the narrowest does not fit:
    then nothing is left out, since it wraps anyway (and piped, every column is kept: a file
    is read by programs too)."""
    empty = {c.key for c in columns if all(c.fmt(v) == "" for v in frame.get(c.key, []))}

    def order(column: Column) -> tuple[bool, int]:
        return column.key not in empty, column.gives_way or 0

    giving_way = sorted((c for c in columns if c.gives_way is not None or c.key in empty), key=order)
    steps = [n for n in range(1, len(giving_way) + 1) if n == len(giving_way) or order(giving_way[n]) != order(giving_way[n - 1])]
    for n in steps:
        hidden = giving_way[:n]
        named = [c.header for c in hidden if c.key not in empty]  # an empty column is not missed
        note = f"left out to fit {console.width} columns: {', '.join(named)} (a wider terminal, or --format csv, shows them)"
        table = rich_table(frame, [c for c in columns if c not in hidden], title=title,
                           caption="\n".join(filter(None, [caption, note if named else ""])), highlight=highlight)
        if _natural_width(console, table) <= console.width:
            return table
    return None


def _natural_width(console: Console, table: Table) -> int:
    """The width `table` takes unwrapped."""
    return Measurement.get(console, console.options.update(max_width=10_000), table).maximum


def failure_of(action: Callable[[], object]) -> RunError | None:
    """Run `action`; the RunError that stopped it, None when none did. For a side product (a
    study's plot) whose failure must neither hide the results nor be named as written."""
    try:
        action()
    except RunError as exc:
        return exc
    return None
