"""`scaler scale`: a compound family d = alpha^phi, w = beta^phi, r = base resolution x gamma^phi of any base,
B0's beside the official presets."""

from __future__ import annotations

import sys
from contextlib import nullcontext
from pathlib import Path
from typing import Annotated, Optional

import typer

from scaler.cli import options
from scaler.cli.app import Format, app, console, progress_console
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
    "scaler scale --alpha 1.3 --beta 1.05 --gamma 1.2 --phi 0-4 --format csv · scaler scale --from searches/NAME --phi 1-7 · "
    "scaler scale --base resnet50 --phi 0-3"
)
def scale(
    ctx: typer.Context,
    alpha: Annotated[Optional[float], typer.Option(help=f"Depth coefficient (>= 1; default: the paper's {PAPER_ALPHA}).")] = None,
    beta: Annotated[Optional[float], typer.Option(help=f"Width coefficient (>= 1; default: the paper's {PAPER_BETA}).")] = None,
    gamma: Annotated[Optional[float], typer.Option(help=f"Resolution coefficient (>= 1; default: the paper's {PAPER_GAMMA}).")] = None,
    phi: Annotated[str, typer.Option(help="Compound coefficients: 0-7, 1,3,5 or 2.")] = "0-7",
    base: Annotated[Optional[str], typer.Option(help="The network at phi = 0: a preset (b0, resnet50, ...: `scaler flops --help` lists them) or a factory package.module:make or path/to/file.py:make (default: b0; with --from, the base the search scaled).")] = None,
    base_resolution: Annotated[Optional[int], typer.Option(help="Resolution at phi = 0 (default: the base's native resolution, as `scaler flops` counts it).")] = None,
    from_search: Annotated[Optional[Path], typer.Option("--from", help="Take alpha, beta, gamma (and the base) from a finished search folder's best candidate.")] = None,
    format: FormatOption = Format.table,
) -> None:
    """A compound family: d = alpha^phi, w = beta^phi, r = base resolution x gamma^phi (B0's beside B<phi>).

    Measured MACs ratios to phi = 0 sit next to the nominal (alpha*beta^2*gamma^2)^phi:
    channel, repeat and resolution rounding move them apart. The official presets were
    hand-rounded and are not exactly this family. The base is taken at its own width and
    depth: a search's proxy base width is not applied.
    """
    from scaler import reports
    from scaler.experiments.search import SearchFolder
    from scaler.models import get_preset, same_variant

    phis = parse_phi_list(phi)
    given = [f"--{name}" for name, value in (("alpha", alpha), ("beta", beta), ("gamma", gamma)) if value is not None]
    searched, search = None, None
    if from_search is not None:
        if given:
            raise UsageError(f"--from takes alpha, beta and gamma from the search; drop {', '.join(given)}")
        with attributed_to("from"):
            search = SearchFolder.read(from_search)
            alpha, beta, gamma = search.best_coefficients()
        searched = search.variant()
    else:
        alpha, beta, gamma = (PAPER_ALPHA if alpha is None else alpha, PAPER_BETA if beta is None else beta,
                              PAPER_GAMMA if gamma is None else gamma)
    with options.recorded_inputs(from_search, base=searched if base is None else None):
        variant, resolution = reports.family_base(base if base is not None else searched or reports.FAMILY_BASE, base_resolution)
        if search is not None and base is None:  # the network searched, not another file of its name
            search.check_base()
    counting = nullcontext() if format.is_document else progress_console.status("counting the family with fvcore...")
    beyond, asked = None, phis
    if not options.given(ctx, "phi"):  # the default 0-7: as far as the family can be built
        phis, beyond = reports.phis_that_fit(alpha, beta, gamma, phis, resolution)
    with counting:  # B7-sized networks take seconds each
        frame = reports.family_table(alpha, beta, gamma, phis, base=variant, base_resolution=resolution)
    if search is not None:  # once the table stands: a refused command prints its error alone
        for note in search.best_notes():
            print(f"note: {note}", file=sys.stderr)
        if searched is not None and not same_variant(searched, variant):
            print(f"warning: {from_search} searched base {searched}; this table scales {variant}", file=sys.stderr)
    title = f"Compound family of {variant}: alpha={alpha:g}, beta={beta:g}, gamma={gamma:g} (product {compound_product(alpha, beta, gamma):.4f})"
    caption = f"resolution = {resolution} x gamma^phi rounded to a multiple of 4"
    if (own := get_preset(variant)).depth != 1 or own.width != 1:  # `flops --width --depth` take the product
        caption += f"; d and w multiply {variant}'s own depth {own.depth:g} and width {own.width:g}"
    if "preset" in frame:
        caption += "; 'official' = the released preset of the same index, d' to MACs G' its own (measured, native resolution)."
    emit(frame, [c for c in FAMILY_COLUMNS if c.key in frame], format.value, console, title=title, caption=caption)
    if beyond is not None:
        left = asked[len(phis):]
        print(f"note: phi {left[0]}{f'-{left[-1]}' if len(left) > 1 else ''} of the default {phi} left out: {beyond}", file=sys.stderr)
