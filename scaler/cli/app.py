"""The root `scaler` app: global options, the console, output formats. Commands live in one
module each beside this one and register themselves on `app`."""

from __future__ import annotations

from enum import Enum
from typing import Annotated

import typer
from rich.console import Console

app = typer.Typer(
    help="Compound scaling of ConvNets: count FLOPs, scale families, search (alpha, beta, gamma).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog="Examples:  scaler search --phi 1 · scaler flops b4 · scaler report searches/NAME --plot search.png",
)
console = Console(markup=False)  # paths and names are printed as they are: "[old]" is no style


class Format(str, Enum):
    table = "table"
    csv = "csv"
    json = "json"
    markdown = "markdown"

    @property
    def is_document(self) -> bool:
        """csv, json and markdown are documents on stdout, to be parsed or pasted: the command
        runs quietly (no progress bars or estimate lines mixed into them)."""
        return self is not Format.table


@app.callback()
def root(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors (also taken after the command).")] = False,
) -> None:
    """Compound scaling of ConvNets, from rounding rules to a ranked grid search."""
