"""The root `scaler` app: global options, the console, output formats. Commands live in one
module each beside this one and register themselves on `app`."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from enum import Enum
from typing import Annotated, Any

import typer
from rich.console import Console

from scaler import process

# A help text's placeholder for the presets of every family ('efficientnet: b0, b1, ...'),
# filled in when the help is shown: the families' modules import torch.
PRESETS = "{presets}"


def _presets() -> str:
    from scaler.models import presets_by_family

    return presets_by_family()


class ExamplesEpilog:
    """Help whose epilog ('Examples:  a · b') shows one example a line, never wrapped:
    wrapped, an example broke inside a flag or a path ('--alpha-' / 'range 1:1.6:0.1'), and
    copied, no longer ran."""

    epilog: str | None

    def format_epilog(self, ctx: typer.Context, formatter: Any) -> None:
        head, _, examples = (self.epilog or "").partition(":  ")
        if not examples:
            super().format_epilog(ctx, formatter)  # type: ignore[misc]
            return
        formatter.write_paragraph()
        formatter.write_text(f"{head}:")
        with formatter.indentation():
            for example in examples.split(" · "):
                formatter.write(f"{'':>{formatter.current_indent}}{example}\n")


class RootGroup(ExamplesEpilog, typer.core.TyperGroup):
    """The root `scaler` group."""


class LibraryCommand(ExamplesEpilog, typer.core.TyperCommand):
    """A scaler command whose flags are parsed, whose help is shown and whose bad space or
    training values are refused without torch (in a fraction of a second): the library is
    imported when the command runs."""

    def invoke(self, ctx: typer.Context) -> Any:
        from scaler.cli.options import refuse_early

        refuse_early(ctx.params)
        process.held_back(lambda: importlib.import_module("torch"))
        return super().invoke(ctx)

    def format_help(self, ctx: typer.Context, formatter: Any) -> None:
        """The help, with the presets of every family where a text names them (PRESETS)."""
        naming = [p for p in self.params if PRESETS in (getattr(p, "help", None) or "")]
        if naming:
            presets = process.held_back(_presets)
            for parameter in naming:
                parameter.help = parameter.help.replace(PRESETS, presets)  # type: ignore[attr-defined]
        super().format_help(ctx, formatter)


class App(typer.Typer):
    """The root app, whose commands are `LibraryCommand`s."""

    def command(self, *args: Any, **kwargs: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        return super().command(*args, cls=LibraryCommand, **kwargs)


app = App(
    cls=RootGroup,
    help="Compound scaling of ConvNets: count FLOPs, scale families, search (alpha, beta, gamma).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog="Examples:  scaler search --phi 1 · scaler flops b4 · scaler report searches/NAME --plot search.png",
)
console = Console(markup=False)  # paths and names are printed as they are: "[old]" is no style
# Progress bars, spinners and log lines go to stderr, so that stdout holds the results alone
# (`scaler search > table.txt`); on a terminal both show alike.
progress_console = Console(stderr=True, markup=False)


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


def _show_version(asked: bool) -> None:
    """`scaler --version`: the installed version, and the checkout's commit where there is one
    (what a result's environment records)."""
    if not asked:
        return
    from importlib import metadata

    from scaler.files import git_commit

    try:
        version = metadata.version("scaler")
    except metadata.PackageNotFoundError:  # run from a checkout (`python cli.py`), not installed
        version = "(not installed)"
    commit = git_commit()
    console.print(f"scaler {version}" + (f" (git {commit[:10]}{'+dirty' if commit.endswith('+dirty') else ''})" if commit else ""))
    raise typer.Exit()


@app.callback()
def root(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors (also taken after the command).")] = False,
    version: Annotated[bool, typer.Option("--version", help="Show the version and exit.", callback=_show_version, is_eager=True)] = False,
) -> None:
    """Compound scaling of ConvNets, from rounding rules to a ranked grid search."""
