"""`scaler flops`: params and MACs of a variant with fvcore, beside the paper's figures."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from scaler.cli.app import PRESETS, Format, app, console
from scaler.cli.options import FormatOption
from scaler.cli.render import Column, emit, giga, integer, percent, published, share


FLOPS_COLUMNS = [
    Column("model", "model"),
    Column("resolution", "res", integer),
    Column("params", "params", integer),
    Column("macs", "MACs G", giga, count=True),
    Column("flops", "FLOPs G", giga, count=True),
    Column("fvcore_total", "fvcore G", giga, count=True),
    Column("paper_macs", "MACs paper†", published("B"), count=True),
    Column("macs_deviation", "Δ MACs", percent),
    Column("paper_params", "params paper†", published("M"), count=True),
    Column("params_deviation", "Δ params", percent),
]
STAGE_COLUMNS = [
    Column("model", "model"),
    Column("part", "part"),
    Column("output_resolution", "out res", integer),
    Column("params", "params", integer),
    Column("macs", "MACs G", giga, count=True),
    Column("macs_share", "share", share),
]


@app.command(
    epilog="Examples:  scaler flops b4 · scaler flops all · "
    "scaler flops --width 1.2 --depth 1.4 --resolution 300 --by-stage · scaler flops b0 --format json · "
    "scaler flops net.py:make --width 1.2 --resolution 128"
)
def flops(
    variant: Annotated[
        Optional[str], typer.Argument(help=f"A preset ({PRESETS}), a factory package.module:make or path/to/file.py:make, or 'all' (B0-B7); omit for B0 with custom multipliers.")
    ] = None,
    width: Annotated[Optional[float], typer.Option(help="Width multiplier (overrides a preset's).")] = None,
    depth: Annotated[Optional[float], typer.Option(help="Depth multiplier (overrides a preset's).")] = None,
    resolution: Annotated[Optional[int], typer.Option(help="Input side in pixels (overrides a preset's).")] = None,
    classes: Annotated[int, typer.Option(help="Number of classes of the classifier.")] = 1000,
    by_stage: Annotated[bool, typer.Option("--by-stage", help="Also break params and MACs down by stem, stage and head (with --format csv or json: those rows instead of the totals, so the output stays one document; each model's rows sum to its totals).")] = False,
    format: FormatOption = Format.table,
) -> None:
    """Count params and MACs of a network with fvcore, beside the figures its paper printed.

    MACs follow the paper's convention (multiply-adds of convolutions and the final linear
    layer); FLOPs = 2 x MACs; the fvcore total also counts BatchNorm and adaptive average pooling.
    """
    from scaler import reports

    models = reports.choose_models(
        variant, width=width, depth=depth, resolution=resolution, num_classes=classes
    )
    frame = reports.flops_table(models)
    missing = reports.unsupported_ops(models)
    caption = (
        "MACs: conv + linear multiply-adds, measured with fvcore (the papers' convention).\n"
        "FLOPs = 2 x MACs. fvcore G: fvcore's full total (adds BatchNorm and adaptive average pooling)."
    )
    sources = sorted({m.preset.paper for m in models if m.preset is not None and m.preset.paper})
    if sources:
        caption += f"\n† as printed in {'; '.join(sources)}; Δ = measured vs printed."
    if missing:
        over = f" (over the {len(models)} models)" if len(models) > 1 else ""
        caption += f"\nfvcore counts 0 for{over}: " + ", ".join(
            f"{op.removeprefix('aten::')} x{n}" for op, n in sorted(missing.items())
        )
    machine = format in (Format.csv, Format.json)
    stages = reports.stage_table(models) if by_stage else None  # refused before anything is printed
    if not (by_stage and machine):
        emit(frame, FLOPS_COLUMNS, format.value, console, title="Params and MACs", caption=caption)
    if stages is not None:
        if format is Format.table:
            console.print()
        emit(stages, STAGE_COLUMNS, format.value, console, title="By stage")
