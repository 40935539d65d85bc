"""`scaler scale`: a compound family d = alpha^phi, w = beta^phi, r = base resolution x gamma^phi, beside the
official presets."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from scaler.cli.app import Format, app, console
from scaler.cli.options import FormatOption
from scaler.errors import UsageError, attributed_to
from scaler.cli.render import Column, emit, fixed, giga, integer, text
from scaler.scaling import PAPER_ALPHA, PAPER_BETA, PAPER_GAMMA, compound_product, parse_phi_list


FAMILY_COLUMNS = [
    Column("phi", "phi", integer),
    Column("depth_mult", "d", fixed(3)),
    Column("width_mult", "w", fixed(3)),
    Column("resolution", "r", integer),
    Column("params", "params", integer),
    Column("macs", "MACs G", giga, count=True),
    Column("macs_ratio", "MACs ratio", fixed(2)),
    Column("nominal_ratio", "nominal", fixed(2)),
    Column("preset", "official", text),
    Column("preset_depth", "d'", fixed(1)),
    Column("preset_width", "w'", fixed(1)),
    Column("preset_resolution", "r'", integer),
    Column("preset_params", "params'", integer),
    Column("preset_macs", "MACs G'", giga, count=True),
]


@app.command(
    epilog="Examples:  scaler scale · scaler scale --phi 1,3,5 · "
    "scaler scale --alpha 1.3 --beta 1.05 --gamma 1.2 --phi 0-4 --format csv · scaler scale --from searches/NAME --phi 1-7"
)
def scale(
    alpha: Annotated[Optional[float], typer.Option(help=f"Depth coefficient (>= 1; default: the paper's {PAPER_ALPHA}).")] = None,
    beta: Annotated[Optional[float], typer.Option(help=f"Width coefficient (>= 1; default: the paper's {PAPER_BETA}).")] = None,
    gamma: Annotated[Optional[float], typer.Option(help=f"Resolution coefficient (>= 1; default: the paper's {PAPER_GAMMA}).")] = None,
    phi: Annotated[str, typer.Option(help="Compound coefficients: 0-7, 1,3,5 or 2.")] = "0-7",
    base_resolution: Annotated[int, typer.Option(help="Resolution at phi = 0.")] = 224,
    from_search: Annotated[Optional[Path], typer.Option("--from", help="Take alpha, beta, gamma from a finished search folder's best candidate.")] = None,
    format: FormatOption = Format.table,
) -> None:
    """The compound family of B0: d = alpha^phi, w = beta^phi, r = base resolution x gamma^phi, beside B<phi>.

    Measured MACs ratios to phi = 0 sit next to the nominal (alpha*beta^2*gamma^2)^phi:
    channel, repeat and resolution rounding move them apart. The official presets were
    hand-rounded and are not exactly this family.
    """
    from scaler import reports
    from scaler.experiments.search import best_coefficients, best_notes, searched_variant

    phis = parse_phi_list(phi)
    given = [f"--{name}" for name, value in (("alpha", alpha), ("beta", beta), ("gamma", gamma)) if value is not None]
    if from_search is not None:
        if given:
            raise UsageError(f"--from takes alpha, beta and gamma from the search; drop {', '.join(given)}")
        with attributed_to("from"):
            alpha, beta, gamma = best_coefficients(from_search)
    else:
        alpha, beta, gamma = (PAPER_ALPHA if alpha is None else alpha, PAPER_BETA if beta is None else beta,
                              PAPER_GAMMA if gamma is None else gamma)
    frame = reports.family_table(alpha, beta, gamma, phis, base_resolution=base_resolution)
    if from_search is not None:  # once the table stands: a refused command prints its error alone
        for note in best_notes(from_search):
            print(f"note: {note}", file=sys.stderr)
        if (searched := searched_variant(from_search)) not in (None, reports.FAMILY_BASE):
            print(f"warning: {from_search} searched base {searched}; this table applies its coefficients to "
                  f"{reports.FAMILY_BASE} (scale builds EfficientNet's family only)", file=sys.stderr)
    title = f"Compound family: alpha={alpha:g}, beta={beta:g}, gamma={gamma:g} (product {compound_product(alpha, beta, gamma):.4f})"
    caption = (
        f"resolution = {base_resolution} x gamma^phi rounded to a multiple of 4; "
        "'official' = the released preset of the same index, d' to MACs G' its own (measured, native resolution)."
    )
    emit(frame, FAMILY_COLUMNS, format.value, console, title=title, caption=caption)
