"""The `scaler` command line: parses options, calls the library, renders the results.

Run as the console script `scaler`, or `python cli.py` from a checkout.
"""

from __future__ import annotations

import sys
from enum import Enum
from typing import Annotated, Optional

import typer
from rich.console import Console

from scaler import reports
from scaler.errors import ScalerError
from scaler.render import Column, emit, fixed, giga, integer, percent, published, share, text
from scaler.scaling import PAPER_ALPHA, PAPER_BETA, PAPER_GAMMA, parse_phi_list

app = typer.Typer(
    help="Compound scaling of EfficientNet: count FLOPs, scale families, search (alpha, beta, gamma).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
console = Console()


class Format(str, Enum):
    table = "table"
    csv = "csv"
    json = "json"
    markdown = "markdown"


@app.callback()
def root(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False,
) -> None:
    """Compound scaling of EfficientNet, from rounding rules to a ranked grid search."""


FLOPS_COLUMNS = [
    Column("model", "model"),
    Column("resolution", "res", integer),
    Column("params", "params", integer),
    Column("macs", "MACs G", giga),
    Column("flops", "FLOPs G", giga),
    Column("fvcore_total", "fvcore G", giga),
    Column("paper_macs", "paper†", published("B")),
    Column("macs_deviation", "Δ", percent),
    Column("paper_params", "paper†", published("M")),
    Column("params_deviation", "Δ", percent),
]
STAGE_COLUMNS = [
    Column("model", "model"),
    Column("part", "part"),
    Column("output_resolution", "out res", integer),
    Column("params", "params", integer),
    Column("macs", "MACs (G)", giga),
    Column("macs_share", "share", share),
]


@app.command(
    epilog="Examples:  scaler flops b4 · scaler flops all · "
    "scaler flops --width 1.2 --depth 1.4 --resolution 300 --by-stage · scaler flops b0 --format json"
)
def flops(
    variant: Annotated[
        Optional[str], typer.Argument(help="b0..b8, l2, or 'all' (B0-B7); omit for custom multipliers.")
    ] = None,
    width: Annotated[Optional[float], typer.Option(help="Width multiplier (overrides a preset's).")] = None,
    depth: Annotated[Optional[float], typer.Option(help="Depth multiplier (overrides a preset's).")] = None,
    resolution: Annotated[Optional[int], typer.Option(help="Input side in pixels (overrides a preset's).")] = None,
    classes: Annotated[int, typer.Option(help="Number of classes of the classifier.")] = 1000,
    by_stage: Annotated[bool, typer.Option("--by-stage", help="Also break params and MACs down by stem, stage and head.")] = False,
    format: Annotated[Format, typer.Option("--format", "-f", help="Output format.")] = Format.table,
) -> None:
    """Count params and MACs of a variant with fvcore, beside the paper's published figures.

    MACs follow the paper's convention (multiply-adds of convolutions and the final linear
    layer); FLOPs = 2 x MACs; the fvcore total also counts BatchNorm and pooling.
    """
    models = reports.choose_models(
        variant, width=width, depth=depth, resolution=resolution, num_classes=classes
    )
    frame = reports.flops_table(models)
    missing = reports.unsupported_ops(models)
    caption = (
        "MACs: conv + linear multiply-adds, measured with fvcore (the paper's convention).\n"
        "FLOPs = 2 x MACs. fvcore G: fvcore's full total (adds BatchNorm and pooling).\n"
        "† as printed in Tan & Le 2019, Table 2 (FLOPS there are MACs); Δ = measured vs printed."
    )
    if missing:
        caption += "\nfvcore counts 0 for: " + ", ".join(
            f"{op.removeprefix('aten::')} x{n}" for op, n in sorted(missing.items())
        )
    emit(frame, FLOPS_COLUMNS, format.value, console, title="EfficientNet params and MACs", caption=caption)
    if by_stage:
        if format is Format.table:
            console.print()
        emit(reports.stage_table(models), STAGE_COLUMNS, format.value, console, title="By stage")


FAMILY_COLUMNS = [
    Column("phi", "phi", integer),
    Column("depth_mult", "d", fixed(3)),
    Column("width_mult", "w", fixed(3)),
    Column("resolution", "r", integer),
    Column("params", "params", integer),
    Column("macs", "MACs (G)", giga),
    Column("macs_ratio", "MACs ratio", fixed(2)),
    Column("nominal_ratio", "nominal", fixed(2)),
    Column("preset", "official", text),
    Column("preset_depth", "d", fixed(1)),
    Column("preset_width", "w", fixed(1)),
    Column("preset_resolution", "r", integer),
    Column("preset_params", "params", integer),
    Column("preset_macs", "MACs (G)", giga),
]


@app.command(
    epilog="Examples:  scaler scale · scaler scale --phi 1,3,5 · "
    "scaler scale --alpha 1.3 --beta 1.05 --gamma 1.2 --phi 0-4 --format csv"
)
def scale(
    alpha: Annotated[float, typer.Option(help="Depth coefficient (>= 1).")] = PAPER_ALPHA,
    beta: Annotated[float, typer.Option(help="Width coefficient (>= 1).")] = PAPER_BETA,
    gamma: Annotated[float, typer.Option(help="Resolution coefficient (>= 1).")] = PAPER_GAMMA,
    phi: Annotated[str, typer.Option(help="Compound coefficients: 0-7, 1,3,5 or 2.")] = "0-7",
    base_resolution: Annotated[int, typer.Option(help="Resolution at phi = 0.")] = 224,
    format: Annotated[Format, typer.Option("--format", "-f", help="Output format.")] = Format.table,
) -> None:
    """The compound family of B0: d = alpha^phi, w = beta^phi, r = gamma^phi, beside B<phi>.

    Measured MACs ratios to phi = 0 sit next to the nominal (alpha*beta^2*gamma^2)^phi:
    channel, repeat and resolution rounding move them apart. The official presets were
    hand-rounded and are not exactly this family.
    """
    phis = parse_phi_list(phi)
    frame = reports.family_table(alpha, beta, gamma, phis, base_resolution=base_resolution)
    title = f"Compound family: alpha={alpha:g}, beta={beta:g}, gamma={gamma:g} (product {alpha * beta**2 * gamma**2:.4f})"
    caption = (
        f"resolution = {base_resolution} x gamma^phi rounded to a multiple of 4; "
        "'official' = the released preset of the same index (measured, native resolution)."
    )
    emit(frame, FAMILY_COLUMNS, format.value, console, title=title, caption=caption)


def main(argv: list[str] | None = None) -> int:
    """Run the app; map errors to one line and an exit code (2 usage, 1 runtime)."""
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args
    try:
        result = app(args=args, prog_name="scaler", standalone_mode=False)
        return result if isinstance(result, int) else 0
    except ScalerError as exc:
        if debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if hasattr(exc, "format_message") and hasattr(exc, "exit_code"):
            # The parser's own errors (unknown option, wrong type): one line, exit 2.
            print(f"error: {exc.format_message()}", file=sys.stderr)
            return int(exc.exit_code)
        if debug:
            raise
        print(f"error: {type(exc).__name__}: {exc} (run with --debug for the traceback)", file=sys.stderr)
        return 1


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
