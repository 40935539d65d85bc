"""`scaler report`: re-render a search's results from its folder, with a plot."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from scaler import reports
from scaler.cli.app import Format, app, console
from scaler.cli.options import FormatOption
from scaler.cli.results import show_results
from scaler.errors import RunError
from scaler.experiments.search import read_results
from scaler.plots import check_plot_path, plot_search


@app.command(
    epilog="Examples:  scaler report searches/NAME · scaler report searches/NAME --pareto --format markdown · "
    "scaler report searches/NAME --plot search.png"
)
def report(
    folder: Annotated[Path, typer.Argument(help="A search folder (holds results.csv and search.json).")],
    pareto: Annotated[bool, typer.Option("--pareto", help="Keep only rows no other beats on both top-1 and MACs.")] = False,
    plot: Annotated[Optional[Path], typer.Option(help="Write a picture: top-1 against MACs with the Pareto front, and a heat map over (alpha, beta).")] = None,
    format: FormatOption = Format.table,
) -> None:
    """Re-render a search's results from its folder."""
    if plot is not None:
        check_plot_path(plot)
    frame, info = read_results(folder)
    shown = reports.pareto_front(frame) if pareto else frame
    if plot is not None:
        try:
            plot_search(frame, plot, title=f"{info['name']}")
        except (OSError, ValueError) as exc:
            raise RunError(f"cannot write plot {plot}: {exc}") from None
        if format is Format.table:
            console.print(f"plot written to {plot}", highlight=False)
    states = ", ".join(f"{n} {s}" for s, n in info.get("states", {}).items())
    caption = f"{folder}/results.csv · {states} · ★ best · ◆ the paper's point" + (" · Pareto front of finished candidates" if pareto else "")
    show_results(shown.reset_index(drop=True), format, f"Search {info['name']}", caption)
